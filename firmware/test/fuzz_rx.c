/* libFuzzer harness for the frame receiver (build: make fuzz; run: bench/fuzz.py).
 * With -DQP_FLIGHT_APP it is the flight build's (make fuzz-flight CRAZYFLIE_APP=dir;
 * bench/fuzz.py --flight): the same checks, and the FLIGHT_* messages' below.
 *
 * Feeds arbitrary bytes to a fresh device the way the boards do: each byte goes into
 * the receive ring (the UART interrupt's job) and the main loop polls the device. The
 * device is modelled as busy after each reply for as many byte times as the reply is
 * long (it transmits at the rate bytes arrive) plus a few for a policy call, so bytes
 * pile up in the ring, and a flood of short frames overflows it. Besides memory safety
 * (ASan, UBSan) the harness checks, on the bytes that entered the ring:
 *   - a reply comes only on a 0x00 that ends a non-empty frame, and then always;
 *   - it is one well-formed frame: no inner 0x00, valid COBS, length, CRC;
 *   - ACTION only for an intact STEP of the right size with finite inputs, after an
 *     intact RESET, or for a repeat of the last stepped seq (then the same bytes);
 *   - READY only for an intact, empty RESET; NOT_RESET only before the first READY;
 *   - every action finite; the kept blocks step once per new ACTION and never on an
 *     ERROR or a repeat, the integral within its limit, the past actions in [-1, 1];
 *   - integrity errors carry seq 0, every other reply echoes the request's seq;
 *   - the ring counts every byte it drops, and INFO reports that count, and its flags
 *     the build (bit 1 only in the flight build, which alone answers FLIGHT_*).
 * The flight build (docs/protocol.md section 12), on top:
 *   - an intact FLIGHT_* request gets its reply, or the ERROR the checks' order gives
 *     (BAD_LENGTH with the type as detail, then NOT_STARTED with detail 0) and no other;
 *   - FLIGHT_STARTED says the self-test passed (the app's, fixed at build time);
 *   - FLIGHT_FORCES only after it, for a FLIGHT_TICKS of 70 bytes, or for a repeat of
 *     the last ticked seq (then the same bytes, whatever the repeat's length);
 *   - in FLIGHT_FORCES: forces finite and in [0, 1], all 0 with the motors off (mode
 *     off or fault, and a fault kind exactly in fault mode), the action finite and in
 *     [-1, 1], policy and idle ticks adding up to the ticks asked, policy_calls growing
 *     by the policy ticks from 0 at the start, a cost maximum within its sum;
 *   - a state the app must refuse (a non-finite estimate or gyro, a quaternion far from
 *     unit norm) ticked leaves the motors off: the app's fault, not a crash;
 *   - the VALUE replies: found 0 or 1, value 0 when not found, and a name without a
 *     dot never found.
 * A fresh device per input: an input is a session from boot. The flight build boots
 * the app too (its controller state and its parameters' values at the first input).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "qp_cobs.h"
#include "qp_crc16.h"
#include "qp_device.h"
#include "qp_ring.h"
#include "qp_wire.h"
#ifdef QP_FLIGHT_APP
#include "param.h"
#include "shim_app.h"
#include "shim_vars.h"
/* FLIGHT_FORCES' numbers as docs/protocol.md section 12 gives them. */
#define FLIGHT_CONTROL_FORCE 2 /* control_t's controlModeForce */
#define FLIGHT_MODE_OFF 0
#define FLIGHT_MODE_FAULT 3
#define FLIGHT_FAULT_LAST 4
/* A quaternion norm this far from 1 is "far from unit norm": three times the app's
 * default tolerance (qp_flight.h QP_FLIGHT_QUAT_NORM_TOL, 0.1), clear of rounding. */
#define FLIGHT_QUAT_FAR 0.3
#define FUZZ_INFO_FLAGS QP_INFO_FLAG_FLIGHT
#define FUZZ_LAST_ERROR QP_ERROR_NOT_STARTED
#else
#define FUZZ_INFO_FLAGS 0
#define FUZZ_LAST_ERROR QP_ERROR_NOT_RESET
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint32_t clock_now;
static uint32_t fuzz_ticks(void)
{
    return clock_now += 3;
}
static qp_ring_t ring;
static const qp_board_t FUZZ_BOARD = {"fuzz", fuzz_ticks, 1000000u, QP_TICK_HOST_CLOCK,
                                      QP_RESET_POWER_ON, 0x0E, 250, &ring};

#define MAX_INPUT (1u << 16)
#define POLICY_BYTE_TIMES 8 /* ~80 us of inference at 921600 baud */

#define REQUIRE(cond)          \
    do {                       \
        if (!(cond)) {         \
            __builtin_trap();  \
        }                      \
    } while (0)

/* What the harness independently knows about the frame just received. */
typedef struct {
    int intact; /* COBS, size and CRC all good */
    uint8_t type;
    uint16_t seq;
    size_t len;    /* payload bytes */
    int good_step; /* intact STEP, right count and length, all inputs finite */
    const uint8_t *payload; /* valid until the next inspect */
} request_t;

/* The harness's model of the session: what the device has been told so far. */
typedef struct {
    int ready;              /* a READY was sent since boot */
    uint32_t steps;         /* ACTIONs that stepped since that READY */
    int have_last;          /* the last stepped ACTION, for repeats */
    uint16_t last_seq;
    uint8_t last[QP_MAX_PACKET];
    long last_len;
#ifdef QP_FLIGHT_APP
    int flight_started;        /* a FLIGHT_STARTED since boot */
    int flight_ticked;         /* a tick since it: the app has set controlMode */
    uint32_t policy_calls;     /* as the last FLIGHT_FORCES said */
    int flight_have_last;      /* the last FLIGHT_FORCES that ticked, for repeats */
    uint16_t flight_last_seq;
    uint8_t flight_last[QP_MAX_PACKET];
    long flight_last_len;
    size_t flight_busy;        /* byte times the last request's ticks took */
#endif
} session_t;

static session_t session;

static request_t inspect(const uint8_t *frame, size_t n, int overflow)
{
    static uint8_t packet[QP_MAX_ENCODED];
    request_t r = {0, 0, 0, 0, 0, NULL};
    long len;
    if (overflow) {
        return r;
    }
    len = qp_cobs_decode(frame, n, packet, sizeof packet);
    if (len < QP_MIN_PACKET || len > QP_MAX_PACKET ||
        qp_crc16(packet, (size_t)len - 2) != qp_get_u16(&packet[len - 2])) {
        return r;
    }
    r.intact = 1;
    r.type = packet[0];
    r.seq = qp_get_u16(&packet[1]);
    r.len = (size_t)len - QP_MIN_PACKET;
    r.payload = &packet[QP_HEADER_SIZE];
    if (r.type == QP_MSG_STEP && len == QP_MIN_PACKET + 1 + 4 * QP_IN_DIM &&
        packet[3] == QP_IN_DIM) {
        size_t i;
        r.good_step = 1;
        for (i = 0; i < QP_IN_DIM; i++) {
            r.good_step &= qp_is_finite(qp_get_f32(&packet[4 + 4 * i]));
        }
    }
    return r;
}

#ifdef QP_FLIGHT_APP
static int is_flight_request(uint8_t type)
{
    return type >= QP_MSG_FLIGHT_START && type <= QP_MSG_FLIGHT_LOG;
}

/* The ERROR code docs/protocol.md section 12's checks give an intact flight request that
 * is not a repeat, or 0 when it is to be answered. */
static uint8_t flight_refusal(request_t req)
{
    switch (req.type) {
    case QP_MSG_FLIGHT_START:
        return req.len == 0 ? 0 : QP_ERROR_BAD_LENGTH;
    case QP_MSG_FLIGHT_TICKS:
        if (req.len != QP_FLIGHT_TICKS_SIZE) {
            return QP_ERROR_BAD_LENGTH;
        }
        return session.flight_started ? 0 : QP_ERROR_NOT_STARTED;
    case QP_MSG_FLIGHT_PARAM:
        return req.len > 8 && req.len <= 8 + QP_FLIGHT_NAME_MAX ? 0 : QP_ERROR_BAD_LENGTH;
    default:
        return req.len > 0 && req.len <= QP_FLIGHT_NAME_MAX ? 0 : QP_ERROR_BAD_LENGTH;
    }
}

/* A state the app must refuse: non-finite position, velocity, quaternion or gyro (the
 * target is not checked: a non-finite one is ignored), or a quaternion far from unit
 * norm. */
static int refused_state(const uint8_t *payload)
{
    double n2 = 0.0;
    int i;
    for (i = 0; i < 13; i++) {
        if (!qp_is_finite(qp_get_f32(&payload[QP_FLIGHT_TICKS_HEADER + 4 * i]))) {
            return 1;
        }
    }
    for (i = 6; i < 10; i++) {
        double q = qp_get_f32(&payload[QP_FLIGHT_TICKS_HEADER + 4 * i]);
        n2 += q * q;
    }
    return n2 < (1.0 - FLIGHT_QUAT_FAR) * (1.0 - FLIGHT_QUAT_FAR) ||
           n2 > (1.0 + FLIGHT_QUAT_FAR) * (1.0 + FLIGHT_QUAT_FAR);
}

/* A FLIGHT_FORCES that ticked (not a repeat): p is its payload. */
static void check_forces(const uint8_t *p, request_t req)
{
    unsigned ticks = req.payload[0];
    unsigned mode = p[1], fault = p[2];
    uint32_t calls = qp_get_u32(&p[5]);
    int i, off = mode == FLIGHT_MODE_OFF || mode == FLIGHT_MODE_FAULT;

    session.flight_ticked |= ticks > 0;
    REQUIRE(p[0] == (session.flight_ticked ? FLIGHT_CONTROL_FORCE : 0)); /* 0: never set */
    REQUIRE(mode <= FLIGHT_MODE_FAULT && fault <= FLIGHT_FAULT_LAST);
    REQUIRE((mode == FLIGHT_MODE_FAULT) == (fault != 0));
    REQUIRE(p[3] + p[4] == ticks);
    REQUIRE(calls == session.policy_calls + p[3]);
    session.policy_calls = calls;
    REQUIRE(qp_get_u32(&p[13]) <= qp_get_u32(&p[9]) && qp_get_u32(&p[21]) <= qp_get_u32(&p[17]));
    REQUIRE(p[3] > 0 || qp_get_u32(&p[9]) == 0);
    REQUIRE(p[4] > 0 || qp_get_u32(&p[17]) == 0);
    for (i = 0; i < 4; i++) {
        float force = qp_get_f32(&p[25 + 4 * i]);
        float action = qp_get_f32(&p[41 + 4 * i]);
        REQUIRE(qp_is_finite(force) && force >= 0.0f && force <= 1.0f);
        REQUIRE(!off || force == 0.0f);
        REQUIRE(qp_is_finite(action) && action >= -1.0f && action <= 1.0f);
    }
    REQUIRE(p[57] == QP_OBS_DIM);
    REQUIRE(ticks == 0 || !refused_state(req.payload) || off);
    session.flight_busy = ticks;
}

/* The reply to an intact flight request: packet and len as check_reply has them. */
static void check_flight(const uint8_t *packet, long len, request_t req)
{
    const uint8_t *p = &packet[QP_HEADER_SIZE];
    uint8_t refusal = flight_refusal(req);
    int repeat = req.type == QP_MSG_FLIGHT_TICKS && session.flight_have_last &&
                 req.seq == session.flight_last_seq;

    session.flight_busy = 0;
    if (packet[0] == QP_MSG_ERROR) {
        REQUIRE(!repeat && refusal != 0 && p[0] == refusal);
        REQUIRE(p[1] == (refusal == QP_ERROR_NOT_STARTED ? 0 : req.type));
        return;
    }
    REQUIRE(refusal == 0 || repeat);
    if (packet[0] == QP_MSG_FLIGHT_STARTED) {
        REQUIRE(len == QP_MIN_PACKET + 1 && p[0] == QP_SELFTEST_PASSED);
        session.flight_started = 1;
        session.flight_ticked = 0;
        session.policy_calls = 0;
        session.flight_have_last = 0;
    } else if (packet[0] == QP_MSG_FLIGHT_FORCES) {
        if (repeat) {
            /* A retry: the bytes of the first answer, nothing ticked. */
            REQUIRE(len == session.flight_last_len &&
                    memcmp(packet, session.flight_last, (size_t)len) == 0);
            return;
        }
        REQUIRE(len == QP_MIN_PACKET + QP_FLIGHT_FORCES_PAYLOAD);
        check_forces(p, req);
        session.flight_have_last = 1;
        session.flight_last_seq = req.seq;
        session.flight_last_len = len;
        memcpy(session.flight_last, packet, (size_t)len);
    } else {
        size_t head = req.type == QP_MSG_FLIGHT_PARAM ? 8u : 0u;
        uint8_t zero[8] = {0};
        REQUIRE(len == QP_MIN_PACKET + QP_FLIGHT_VALUE_SIZE && p[0] <= 1);
        REQUIRE(p[0] == 1 || memcmp(&p[1], zero, sizeof zero) == 0);
        REQUIRE(p[0] == 0 || memchr(req.payload + head, '.', req.len - head) != NULL);
    }
}

/* The app's parameters as the first input found them: each input boots with these. */
extern const struct shim_var __start_qp_shim_param[], __stop_qp_shim_param[];
#define MAX_PARAMS 64
static uint8_t param_boot[MAX_PARAMS][4];

static size_t param_size(uint32_t type)
{
    switch (type) {
    case PARAM_UINT8:
    case PARAM_INT8:
        return 1;
    case PARAM_UINT16:
    case PARAM_INT16:
        return 2;
    default:
        return 4;
    }
}

/* Saves every parameter's value at the first call, puts them back at every later one. */
static void boot_params(const struct shim_var *start, const struct shim_var *stop)
{
    static int saved;
    const struct shim_var *v;
    size_t k = 0;
    for (v = start; v < stop; v++) {
        if (v->name == NULL || v->type == SHIM_GROUP || v->type == SHIM_END) {
            continue;
        }
        REQUIRE(k < MAX_PARAMS);
        if (saved) {
            memcpy(v->address, param_boot[k], param_size(v->type));
        } else {
            memcpy(param_boot[k], v->address, param_size(v->type));
        }
        k++;
    }
    saved = 1;
}

/* The app as a boot leaves it: controllerOutOfTreeInit's state and every parameter's
 * first value, so that no input flies on what an earlier one set. */
static void boot_app(void)
{
    boot_params(__start_qp_shim_param, __stop_qp_shim_param);
    (void)shim_start(1);
}
#endif

/* Returns the reply's type. */
static uint8_t check_reply(const uint8_t *reply, size_t n, request_t req, uint32_t dropped)
{
    static uint8_t packet[QP_MAX_ENCODED];
    long len;
    uint16_t seq;
    REQUIRE(n >= 2 && n <= QP_MAX_FRAME && reply[n - 1] == 0);
    REQUIRE(memchr(reply, 0, n - 1) == NULL);
    len = qp_cobs_decode(reply, n - 1, packet, sizeof packet);
    REQUIRE(len >= QP_MIN_PACKET && len <= QP_MAX_PACKET);
    REQUIRE(qp_crc16(packet, (size_t)len - 2) == qp_get_u16(&packet[len - 2]));
    seq = qp_get_u16(&packet[1]);
    if (packet[0] == QP_MSG_ACTION) {
        size_t i;
        REQUIRE(session.ready && req.intact && req.type == QP_MSG_STEP);
        REQUIRE(len == QP_MIN_PACKET + QP_ACTION_PAYLOAD && packet[QP_HEADER_SIZE + QP_ACTION_HEADER - 1] == QP_ACT_DIM);
        for (i = 0; i < QP_ACT_DIM; i++) {
            REQUIRE(qp_is_finite(qp_get_f32(&packet[QP_HEADER_SIZE + QP_ACTION_HEADER + 4 * i])));
        }
        if (session.have_last && req.seq == session.last_seq) {
            /* A retry: the bytes of the first answer, nothing stepped. */
            REQUIRE(len == session.last_len && memcmp(packet, session.last, (size_t)len) == 0);
        } else {
            REQUIRE(req.good_step);
            session.steps++;
            session.have_last = 1;
            session.last_seq = req.seq;
            session.last_len = len;
            memcpy(session.last, packet, (size_t)len);
        }
    }
    if (packet[0] == QP_MSG_READY) {
        REQUIRE(req.intact && req.type == QP_MSG_RESET && req.len == 0 &&
                len == QP_MIN_PACKET);
        session.ready = 1;
        session.steps = 0;
        session.have_last = 0;
    }
    if (packet[0] == QP_MSG_ERROR) {
        uint8_t code = packet[3];
        REQUIRE(len == QP_MIN_PACKET + 2);
        REQUIRE(code >= QP_ERROR_BAD_FRAME && code <= FUZZ_LAST_ERROR);
        REQUIRE(code != QP_ERROR_NOT_RESET || !session.ready);
        REQUIRE(!(req.intact && req.type == QP_MSG_STEP && session.have_last &&
                  req.seq == session.last_seq)); /* a repeat is always answered */
        if (code <= QP_ERROR_OVERSIZE) {
            REQUIRE(!req.intact && seq == 0);
        } else {
            REQUIRE(req.intact && seq == req.seq);
        }
    } else {
        REQUIRE(req.intact && seq == req.seq && packet[0] == (req.type | 0x80));
    }
#ifdef QP_FLIGHT_APP
    if (req.intact && is_flight_request(req.type)) {
        check_flight(packet, len, req);
    }
#else
    /* Only the flight build knows the FLIGHT_* types. */
    REQUIRE(!(req.intact && req.type >= 0x05 && req.type <= 0x08) ||
            (packet[0] == QP_MSG_ERROR && packet[3] == QP_ERROR_UNKNOWN_TYPE));
#endif
    if (packet[0] == QP_MSG_INFO) {
        const uint8_t *v2 = &packet[QP_HEADER_SIZE + QP_INFO_V1_SIZE];
        REQUIRE(len == QP_MIN_PACKET + QP_INFO_SIZE);
        REQUIRE(packet[QP_HEADER_SIZE + 4] == FUZZ_INFO_FLAGS);
        REQUIRE(v2[0] == QP_RESET_POWER_ON && v2[1] == 0x0E && qp_get_u16(&v2[2]) == 250);
        REQUIRE(qp_get_u32(&v2[4]) == dropped && qp_get_u32(&v2[8]) == 0);
        REQUIRE(packet[QP_HEADER_SIZE + QP_INFO_V3_SIZE + QP_HASH_SIZE] == QP_IN_DIM);
    }
    return packet[0];
}

/* The device's kept blocks agree with the session and stay in range. */
static void check_state(const qp_device_t *dev)
{
    int i;
    REQUIRE(dev->state.ready == session.ready);
    REQUIRE(dev->state.steps == session.steps);
    for (i = 0; i < 3; i++) {
        REQUIRE(dev->state.integral[i] >= -QP_INTEGRAL_LIMIT &&
                dev->state.integral[i] <= QP_INTEGRAL_LIMIT);
    }
    for (i = 0; i < QP_HISTORY * QP_ACT_DIM; i++) {
        REQUIRE(dev->state.past[i] >= -1.0f && dev->state.past[i] <= 1.0f);
    }
}

/* The harness's own view of the frame the device is receiving. */
typedef struct {
    uint8_t frame[QP_MAX_ENCODED];
    size_t len;
    int overflow;
} tracker_t;

/* Account for the bytes the device consumed in one poll, seen[from..to), given what
 * the poll returned; returns the reply's type, or 0 without a reply. */
static uint8_t account(tracker_t *t, const uint8_t *seen, size_t from, size_t to,
                       const uint8_t *reply, size_t n, uint32_t dropped)
{
    uint8_t type = 0;
    size_t i;
    REQUIRE(n == 0 || (to > from && seen[to - 1] == 0));
    for (i = from; i < to; i++) {
        if (seen[i] != 0) {
            if (t->len < sizeof t->frame) {
                t->frame[t->len++] = seen[i];
            } else {
                t->overflow = 1;
            }
            continue;
        }
        if (n > 0 && i == to - 1) {
            REQUIRE(t->len > 0 || t->overflow);
            type = check_reply(reply, n, inspect(t->frame, t->len, t->overflow), dropped);
        } else {
            REQUIRE(t->len == 0 && !t->overflow); /* a non-empty frame left unanswered */
        }
        t->len = 0;
        t->overflow = 0;
    }
    return type;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static qp_device_t dev;
    static uint8_t reply[QP_MAX_FRAME];
    static uint8_t seen[MAX_INPUT]; /* the bytes that entered the ring, in order */
    static tracker_t tracker;
    size_t accepted = 0, accounted = 0, busy_until = 0, i;
    uint32_t dropped = 0;

    if (size > MAX_INPUT) {
        return 0;
    }
    qp_ring_init(&ring);
#ifdef QP_FLIGHT_APP
    boot_app();
#endif
    qp_device_init(&dev, &FUZZ_BOARD);
    memset(&session, 0, sizeof session);
    tracker.len = 0;
    tracker.overflow = 0;
    /* Byte time i: byte i arrives; if the device is not busy, its main loop polls.
     * After the input ends, the main loop drains the ring. */
    for (i = 0; i < size || qp_ring_count(&ring) > 0; i++) {
        size_t n, consumed;
        uint8_t type;
        if (i < size) {
            if (qp_ring_push(&ring, data[i])) {
                seen[accepted++] = data[i];
            } else {
                dropped++;
            }
            REQUIRE(ring.dropped == dropped);
            if (i < busy_until) {
                continue;
            }
        }
        n = qp_device_poll(&dev, reply);
        consumed = accepted - qp_ring_count(&ring);
        REQUIRE(n > 0 || consumed == accepted); /* no reply: the ring was drained */
        type = account(&tracker, seen, accounted, consumed, reply, n, dropped);
        check_state(&dev);
        accounted = consumed;
        if (n > 0) {
            busy_until = i + n + (type == QP_MSG_ACTION ? POLICY_BYTE_TIMES : 0);
#ifdef QP_FLIGHT_APP
            /* About a byte time per stabiliser tick: ~1,500 cycles of 168 MHz on
             * average (docs/benchmarks.md, the app on the board). */
            busy_until += type == QP_MSG_FLIGHT_FORCES ? session.flight_busy : 0;
#endif
        }
    }
    REQUIRE(accounted == accepted && accepted + dropped == size);
    return 0;
}
