/* libFuzzer harness for the frame receiver (build: make fuzz; run: bench/fuzz.py).
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
 *   - the ring counts every byte it drops, and INFO reports that count.
 * A fresh device per input: an input is a session from boot.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "qp_cobs.h"
#include "qp_crc16.h"
#include "qp_device.h"
#include "qp_ring.h"
#include "qp_wire.h"

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
} request_t;

/* The harness's model of the session: what the device has been told so far. */
typedef struct {
    int ready;              /* a READY was sent since boot */
    uint32_t steps;         /* ACTIONs that stepped since that READY */
    int have_last;          /* the last stepped ACTION, for repeats */
    uint16_t last_seq;
    uint8_t last[QP_MAX_PACKET];
    long last_len;
} session_t;

static session_t session;

static request_t inspect(const uint8_t *frame, size_t n, int overflow)
{
    static uint8_t packet[QP_MAX_ENCODED];
    request_t r = {0, 0, 0, 0, 0};
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
        REQUIRE(code >= QP_ERROR_BAD_FRAME && code <= QP_ERROR_NOT_RESET);
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
    if (packet[0] == QP_MSG_INFO) {
        const uint8_t *v2 = &packet[QP_HEADER_SIZE + QP_INFO_V1_SIZE];
        REQUIRE(len == QP_MIN_PACKET + QP_INFO_SIZE);
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
        }
    }
    REQUIRE(accounted == accepted && accepted + dropped == size);
    return 0;
}
