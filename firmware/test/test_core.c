/* Unit tests for the portable core: CRC, COBS, the receive ring, receiver and
 * dispatch, the board's kept blocks (qp_state.h) as the device drives them, the
 * STM32F405's reset-cause decoding, and the shared protocol vectors
 * (tests/vectors/protocol.jsonl, path given as argv[1]).
 *
 * The device under test runs the fixture policy with a fake tick counter that advances
 * 7 per read at 1 MHz, build id "vectors", reset cause WATCHDOG (flags 0x24), a 250 ms
 * watchdog and receive counters preset to 258 dropped and 3 overruns, exactly as the
 * vector file assumes. Its input goes through the receive ring, as on the boards.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qp_cobs.h"
#include "qp_crc16.h"
#include "qp_device.h"
#include "qp_wire.h"
#include "../boards/stm32f405/reset_cause.h"

static int checks, failures;

#define CHECK(cond, ...)                                                  \
    do {                                                                  \
        checks++;                                                         \
        if (!(cond)) {                                                    \
            failures++;                                                   \
            printf("FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);        \
            printf(__VA_ARGS__);                                          \
            printf("\n");                                                 \
        }                                                                 \
    } while (0)

static uint32_t fake_clock;
static uint32_t fake_ticks(void)
{
    fake_clock += 7;
    return fake_clock;
}
static qp_ring_t vec_ring;
static const qp_board_t TEST_BOARD = {"vectors",          fake_ticks, 1000000u,
                                      QP_TICK_HOST_CLOCK, QP_RESET_WATCHDOG, 0x24,
                                      250,                &vec_ring};

/* ---------------------------------------------------------------- helpers */

#define BIG 4096

/* Copy the string value of "key": "..." from a JSON line; returns 0 if absent. */
static int json_string(const char *line, const char *key, char *out, size_t cap)
{
    char pattern[64];
    const char *start, *end;
    sprintf(pattern, "\"%s\": \"", key);
    start = strstr(line, pattern);
    if (start == NULL) {
        return 0;
    }
    start += strlen(pattern);
    end = strchr(start, '"');
    if (end == NULL || (size_t)(end - start) >= cap) {
        return 0;
    }
    memcpy(out, start, (size_t)(end - start));
    out[end - start] = '\0';
    return 1;
}

static size_t from_hex(const char *hex, uint8_t *out, size_t cap)
{
    size_t n = strlen(hex) / 2, i;
    unsigned v;
    if (n > cap) {
        return (size_t)-1;
    }
    for (i = 0; i < n; i++) {
        sscanf(&hex[2 * i], "%2x", &v);
        out[i] = (uint8_t)v;
    }
    return n;
}

static void to_hex(const uint8_t *data, size_t n, char *out)
{
    size_t i;
    for (i = 0; i < n; i++) {
        sprintf(&out[2 * i], "%02x", data[i]);
    }
    out[2 * n] = '\0';
}

/* Feed bytes to a fresh device through its ring, as much as fits at a time, as an
 * interrupt handler would between two polls; concatenate every reply into out. */
static size_t run_device(const uint8_t *in, size_t n, uint8_t *out, size_t cap)
{
    static qp_device_t dev;
    uint8_t reply[QP_MAX_FRAME];
    size_t i = 0, total = 0;
    qp_ring_init(&vec_ring);
    vec_ring.dropped = 258;
    vec_ring.overruns = 3;
    qp_device_init(&dev, &TEST_BOARD);
    while (i < n || qp_ring_count(&vec_ring) > 0) {
        while (i < n && qp_ring_push(&vec_ring, in[i])) {
            i++;
        }
        vec_ring.dropped = 258; /* a full ring is not part of the vectors */
        for (;;) {
            size_t r = qp_device_poll(&dev, reply);
            if (r == 0) {
                break;
            }
            if (total + r <= cap) {
                memcpy(&out[total], reply, r);
            }
            total += r;
        }
    }
    return total;
}

/* ---------------------------------------------------------------- vectors */

static void run_vectors(const char *path)
{
    static char line[65536], name[256], kind[32], a[BIG * 2 + 1], b[BIG * 2 + 1], got[BIG * 2 + 1];
    static uint8_t raw[BIG], enc[BIG], out[BIG];
    int count = 0;
    FILE *f = fopen(path, "r");
    CHECK(f != NULL, "cannot open %s", path);
    if (f == NULL) {
        return;
    }
    while (fgets(line, sizeof line, f) != NULL) {
        if (!json_string(line, "kind", kind, sizeof kind) ||
            !json_string(line, "name", name, sizeof name)) {
            continue;
        }
        count++;
        if (strcmp(kind, "crc16") == 0) {
            size_t n;
            json_string(line, "data", a, sizeof a);
            json_string(line, "crc", b, sizeof b);
            n = from_hex(a, raw, sizeof raw);
            sprintf(got, "%04x", qp_crc16(raw, n));
            CHECK(strcmp(got, b) == 0, "crc16 %s: got %s want %s", name, got, b);
        } else if (strcmp(kind, "cobs") == 0) {
            size_t n, m, e;
            long d;
            json_string(line, "raw", a, sizeof a);
            json_string(line, "encoded", b, sizeof b);
            n = from_hex(a, raw, sizeof raw);
            m = from_hex(b, enc, sizeof enc);
            e = qp_cobs_encode(raw, n, out, sizeof out);
            to_hex(out, e, got);
            CHECK(strcmp(got, b) == 0, "cobs encode %s: got %s", name, got);
            d = qp_cobs_decode(enc, m, out, sizeof out);
            CHECK(d == (long)n && memcmp(out, raw, n) == 0, "cobs decode %s: %ld", name, d);
        } else if (strcmp(kind, "cobs_invalid") == 0) {
            size_t m;
            json_string(line, "encoded", b, sizeof b);
            m = from_hex(b, enc, sizeof enc);
            CHECK(qp_cobs_decode(enc, m, out, sizeof out) < 0, "cobs_invalid %s accepted", name);
        } else if (strcmp(kind, "exchange") == 0) {
            size_t n, r;
            json_string(line, "input", a, sizeof a);
            json_string(line, "output", b, sizeof b);
            n = from_hex(a, raw, sizeof raw);
            r = run_device(raw, n, out, sizeof out);
            CHECK(r <= sizeof out, "exchange %s: reply too long", name);
            if (r <= sizeof out) {
                to_hex(out, r, got);
                CHECK(strcmp(got, b) == 0, "exchange %s:\n  got  %s\n  want %s", name, got, b);
            }
        } else {
            CHECK(0, "unknown vector kind %s", kind);
        }
    }
    fclose(f);
    CHECK(count >= 40, "only %d vectors read from %s", count, path);
    printf("vectors: %d read\n", count);
}

/* ---------------------------------------------------------------- unit tests */

static uint32_t lcg_state = 12345u;
static uint32_t lcg(void)
{
    lcg_state = lcg_state * 1664525u + 1013904223u;
    return lcg_state >> 8;
}

static void test_crc(void)
{
    const uint8_t check[] = "123456789";
    uint16_t crc = qp_crc16(check, 9);
    CHECK(crc == QP_CRC16_CHECK, "crc16(123456789) = %04x", crc);
    crc = qp_crc16_update(QP_CRC16_INIT, check, 4);
    crc = qp_crc16_update(crc, check + 4, 5);
    CHECK(crc == QP_CRC16_CHECK, "incremental crc = %04x", crc);
}

static void test_cobs_roundtrip(void)
{
    static uint8_t raw[700], enc[720], dec[700];
    int round;
    for (round = 0; round < 2000; round++) {
        size_t n = lcg() % sizeof raw, i, e;
        long d;
        int zero_odds = 1 + (int)(lcg() % 64);
        for (i = 0; i < n; i++) {
            raw[i] = (lcg() % (uint32_t)zero_odds == 0) ? 0 : (uint8_t)(1 + lcg() % 255);
        }
        e = qp_cobs_encode(raw, n, enc, sizeof enc);
        CHECK(e > 0 && e <= QP_COBS_MAX_ENCODED(n), "encoded length %zu for %zu", e, n);
        CHECK(memchr(enc, 0, e) == NULL, "0x00 in COBS output");
        d = qp_cobs_decode(enc, e, dec, sizeof dec);
        CHECK(d == (long)n && memcmp(raw, dec, n) == 0, "roundtrip of %zu bytes", n);
        /* Too little room must be refused, never overrun. */
        CHECK(qp_cobs_encode(raw, n, enc, QP_COBS_MAX_ENCODED(n) - 1) == 0, "short buffer");
        if (n > 0) {
            CHECK(qp_cobs_decode(enc, e, dec, n - 1) < 0, "short decode buffer accepted");
        }
    }
}

static void test_fixture_policy(void)
{
    float obs[QP_OBS_DIM] = {0}, action[QP_ACT_DIM] = {5.0f, 5.0f, 5.0f, 5.0f};
    int i;
    CHECK(qp_policy_selftest() == QP_OK, "the fixture's self-test failed");
    CHECK(qp_policy_act(obs, action) == QP_OK, "zero obs");
    for (i = 0; i < QP_ACT_DIM; i++) {
        CHECK(action[i] > -1.0f && action[i] < 1.0f, "action[%d] = %f", i, action[i]);
    }
    for (i = 0; i < QP_ACT_DIM; i++) {
        action[i] = 5.0f;
    }
    obs[2] = NAN;
    CHECK(qp_policy_act(obs, action) == QP_ERR_NONFINITE, "NaN accepted");
    obs[2] = -INFINITY;
    CHECK(qp_policy_act(obs, action) == QP_ERR_NONFINITE, "-Inf accepted");
    for (i = 0; i < QP_ACT_DIM; i++) {
        CHECK(action[i] == 5.0f, "action[%d] touched on error", i);
    }
}

/* Decode a reply frame the device produced (including its delimiter). */
static int decode_reply(const uint8_t *frame, size_t n, uint8_t *packet, size_t *len)
{
    long d;
    if (n < 2 || frame[n - 1] != 0 || memchr(frame, 0, n - 1) != NULL) {
        return 0;
    }
    d = qp_cobs_decode(frame, n - 1, packet, QP_MAX_ENCODED);
    if (d < QP_MIN_PACKET || d > QP_MAX_PACKET) {
        return 0;
    }
    *len = (size_t)d;
    return qp_crc16(packet, *len - 2) == qp_get_u16(&packet[*len - 2]);
}

/* Random garbage, with and without delimiters: every reply is a well-formed frame, no
 * ACTION ever comes back (random bytes essentially never pass a CRC), and a good frame
 * afterwards gets its ACTION. */
static void test_garbage_then_good(void)
{
    static qp_device_t dev;
    static uint8_t reply[QP_MAX_FRAME], packet[QP_MAX_ENCODED], good[QP_MAX_FRAME];
    static uint8_t body[QP_MAX_PACKET];
    size_t i, n, len, good_len;
    int actions = 0, errors = 0;

    qp_device_init(&dev, &TEST_BOARD);
    for (i = 0; i < 200000; i++) {
        uint8_t byte = (lcg() % 50 == 0) ? 0 : (uint8_t)lcg();
        n = qp_device_rx(&dev, byte, reply);
        if (n > 0) {
            CHECK(decode_reply(reply, n, packet, &len), "malformed reply after byte %zu", i);
            actions += packet[0] == QP_MSG_ACTION;
            errors += packet[0] == QP_MSG_ERROR;
        }
    }
    CHECK(actions == 0, "%d actions from garbage", actions);
    CHECK(errors > 100, "only %d errors from garbage", errors);

    CHECK(!dev.state.ready, "garbage reset the kept blocks");
    qp_state_reset(&dev.state); /* the RESET the host would send first */
    /* A STEP of zeros, built by hand. */
    body[0] = QP_MSG_STEP;
    qp_put_u16(&body[1], 77);
    body[3] = QP_IN_DIM;
    memset(&body[4], 0, 4 * QP_IN_DIM);
    n = 4 + 4 * QP_IN_DIM;
    qp_put_u16(&body[n], qp_crc16(body, n));
    good_len = qp_cobs_encode(body, n + 2, good, sizeof good);
    good[good_len++] = 0;
    qp_device_rx(&dev, 0, reply); /* end whatever partial frame the garbage left */
    n = 0;
    for (i = 0; i < good_len; i++) {
        n = qp_device_rx(&dev, good[i], reply);
        CHECK(n == 0 || i == good_len - 1, "reply before the frame ended");
    }
    CHECK(decode_reply(reply, n, packet, &len) && packet[0] == QP_MSG_ACTION &&
              qp_get_u16(&packet[1]) == 77,
          "good frame after garbage not answered with ACTION");
    CHECK(dev.stats.steps == 1, "steps = %u", (unsigned)dev.stats.steps);
}

/* The ring keeps order across wrap-around, counts what a full ring drops, and
 * qp_device_poll stops at the first reply, leaving later bytes queued. */
static void test_ring(void)
{
    static qp_ring_t ring;
    uint32_t i, pushed = 0, popped = 0;
    uint8_t b;
    int ok = 1;

    qp_ring_init(&ring);
    CHECK(qp_ring_pop(&ring, &b) == 0, "pop from an empty ring");
    for (i = 0; i < 10 * QP_RX_RING_SIZE; i++) {
        /* Push two, pop one; when full, pop: the indices wrap many times. */
        if (qp_ring_count(&ring) < QP_RX_RING_SIZE && i % 3 != 2) {
            ok &= qp_ring_push(&ring, (uint8_t)(pushed++ * 7u));
        } else if (qp_ring_pop(&ring, &b)) {
            ok &= b == (uint8_t)(popped++ * 7u);
        }
    }
    CHECK(ok, "ring lost or reordered bytes");
    while (qp_ring_pop(&ring, &b)) {
        ok &= b == (uint8_t)(popped++ * 7u);
    }
    CHECK(ok && pushed == popped, "ring drain: pushed %u popped %u", (unsigned)pushed,
          (unsigned)popped);

    /* Free-running counters near 2^32 wrap without losing track. */
    ring.head = ring.tail = 0xFFFFFFF0u;
    for (i = 0; i < QP_RX_RING_SIZE; i++) {
        ok &= qp_ring_push(&ring, (uint8_t)i);
    }
    CHECK(ok && qp_ring_count(&ring) == QP_RX_RING_SIZE, "ring across 2^32");
    CHECK(qp_ring_push(&ring, 0xAA) == 0 && qp_ring_push(&ring, 0xBB) == 0 &&
              ring.dropped == 2,
          "full ring: dropped = %u", (unsigned)ring.dropped);
    for (i = 0; i < QP_RX_RING_SIZE; i++) {
        ok &= qp_ring_pop(&ring, &b) && b == (uint8_t)i;
    }
    CHECK(ok && qp_ring_count(&ring) == 0, "ring across 2^32: contents");
}

static size_t encode_step_zeros(uint16_t seq, uint8_t *frame)
{
    uint8_t body[QP_MAX_PACKET];
    size_t n = 4 + 4 * QP_IN_DIM, len;
    body[0] = QP_MSG_STEP;
    qp_put_u16(&body[1], seq);
    body[3] = QP_IN_DIM;
    memset(&body[4], 0, 4 * QP_IN_DIM);
    qp_put_u16(&body[n], qp_crc16(body, n));
    len = qp_cobs_encode(body, n + 2, frame, QP_MAX_FRAME);
    frame[len] = 0;
    return len + 1;
}

static int decode_reply(const uint8_t *frame, size_t n, uint8_t *packet, size_t *len);

/* Frames queued back to back are answered one poll each, in order; a ring overflow
 * damages one frame (an integrity ERROR, never an ACTION), is counted, is reported in
 * INFO, and the frames after it are answered. */
static void test_poll_and_overflow(void)
{
    static qp_device_t dev;
    static uint8_t frame[QP_MAX_FRAME], reply[QP_MAX_FRAME], packet[QP_MAX_ENCODED];
    size_t flen, n, len, i, k;
    int in_order = 1;

    qp_ring_init(&vec_ring);
    qp_device_init(&dev, &TEST_BOARD);
    qp_state_reset(&dev.state);
    for (k = 0; k < 6; k++) {
        flen = encode_step_zeros((uint16_t)(100 + k), frame);
        for (i = 0; i < flen; i++) {
            CHECK(qp_ring_push(&vec_ring, frame[i]), "ring full after %zu frames", k);
        }
    }
    for (k = 0; k < 6; k++) {
        n = qp_device_poll(&dev, reply);
        in_order &= n > 0 && decode_reply(reply, n, packet, &len) &&
                    packet[0] == QP_MSG_ACTION && qp_get_u16(&packet[1]) == 100 + k;
        in_order &= qp_ring_count(&vec_ring) == (5 - k) * flen;
    }
    CHECK(in_order, "queued frames not answered one per poll, in order");
    CHECK(qp_device_poll(&dev, reply) == 0, "reply from an empty ring");

    /* Fill the ring with a good frame's start, so its tail bytes are dropped. */
    flen = encode_step_zeros(200, frame);
    for (i = 0; qp_ring_count(&vec_ring) < QP_RX_RING_SIZE - 10; i++) {
        (void)qp_ring_push(&vec_ring, frame[i % (flen - 1)] ? frame[i % (flen - 1)] : 1);
    }
    for (i = 0; i < flen; i++) {
        (void)qp_ring_push(&vec_ring, frame[i]); /* only 10 fit: the rest is dropped */
    }
    CHECK(vec_ring.dropped == flen - 10, "dropped = %u", (unsigned)vec_ring.dropped);
    while ((n = qp_device_poll(&dev, reply)) > 0) {
        CHECK(decode_reply(reply, n, packet, &len) && packet[0] == QP_MSG_ERROR &&
                  packet[3] <= QP_ERROR_OVERSIZE,
              "overflowed frame answered with type %02x", packet[0]);
    }
    (void)qp_ring_push(&vec_ring, 0); /* the host's resynchronising delimiter */
    while ((n = qp_device_poll(&dev, reply)) > 0) {
        CHECK(decode_reply(reply, n, packet, &len) && packet[0] == QP_MSG_ERROR,
              "damaged frame not rejected");
    }
    /* A HELLO now reports the drops. */
    {
        uint8_t body[5] = {QP_MSG_HELLO, 9, 0, 0, 0};
        qp_put_u16(&body[3], qp_crc16(body, 3));
        flen = qp_cobs_encode(body, 5, frame, sizeof frame);
        frame[flen++] = 0;
    }
    for (i = 0; i < flen; i++) {
        (void)qp_ring_push(&vec_ring, frame[i]);
    }
    n = qp_device_poll(&dev, reply);
    CHECK(n > 0 && decode_reply(reply, n, packet, &len) && packet[0] == QP_MSG_INFO &&
              len == QP_MIN_PACKET + QP_INFO_SIZE,
          "no INFO after the overflow");
    CHECK(qp_get_u32(&packet[3 + QP_INFO_V1_SIZE + 4]) == vec_ring.dropped &&
              packet[3 + QP_INFO_V1_SIZE] == QP_RESET_WATCHDOG &&
              qp_get_u16(&packet[3 + QP_INFO_V1_SIZE + 2]) == 250,
          "INFO does not report the ring's counters");
    flen = encode_step_zeros(201, frame);
    for (i = 0; i < flen; i++) {
        (void)qp_ring_push(&vec_ring, frame[i]);
    }
    n = qp_device_poll(&dev, reply);
    CHECK(n > 0 && decode_reply(reply, n, packet, &len) && packet[0] == QP_MSG_ACTION &&
              qp_get_u16(&packet[1]) == 201,
          "good frame after the overflow not answered");
}

/* One request through qp_device_handle_packet; returns the reply's type (0 if the reply
 * is malformed) and leaves the decoded reply packet in packet. */
static uint8_t request(qp_device_t *dev, uint8_t type, uint16_t seq, const uint8_t *payload,
                       size_t len, uint8_t *packet)
{
    static uint8_t body[QP_MAX_PACKET], out[QP_MAX_FRAME];
    size_t n, plen;
    body[0] = type;
    qp_put_u16(&body[1], seq);
    if (len > 0) {
        memcpy(&body[3], payload, len);
    }
    qp_put_u16(&body[3 + len], qp_crc16(body, 3 + len));
    n = qp_device_handle_packet(dev, body, 3 + len + QP_CRC_SIZE, out);
    return decode_reply(out, n, packet, &plen) ? packet[0] : 0;
}

static size_t step_payload(const float *in, uint8_t count, uint8_t *payload)
{
    size_t i;
    payload[0] = count;
    for (i = 0; i < count; i++) {
        qp_put_f32(&payload[1 + 4 * i], in[i]);
    }
    return 1 + 4u * count;
}

/* The kept blocks through the device: nothing before a RESET; a RESET's start; each
 * STEP's observation in layout order (inputs, this step's integral, the past command);
 * the integral's clip; a failed STEP changes nothing; a repeated seq steps nothing;
 * RESET forgets both the blocks and the cached seq. */
static void test_state_through_device(void)
{
    static qp_device_t dev;
    static uint8_t packet[QP_MAX_ENCODED], payload[QP_MAX_PAYLOAD], first[QP_MAX_PACKET];
    static qp_state_t before;
    float in[QP_IN_DIM], act[QP_ACT_DIM];
    size_t n, i, k;
    int ok = 1;

    for (i = 0; i < QP_IN_DIM; i++) {
        in[i] = 0.05f * (float)i;
    }
    in[QP_IN_POSITION_ERROR] = 30.0f; /* 0.3 m s a step: clips at the second */
    n = step_payload(in, QP_IN_DIM, payload);
    qp_device_init(&dev, &TEST_BOARD);
    CHECK(request(&dev, QP_MSG_STEP, 1, payload, n, packet) == QP_MSG_ERROR &&
              packet[3] == QP_ERROR_NOT_RESET,
          "STEP before RESET answered %02x", packet[0]);
    CHECK(request(&dev, QP_MSG_RESET, 2, payload, 1, packet) == QP_MSG_ERROR &&
              packet[3] == QP_ERROR_BAD_LENGTH && packet[4] == QP_MSG_RESET && !dev.state.ready,
          "RESET with a payload accepted");
    CHECK(request(&dev, QP_MSG_RESET, 3, NULL, 0, packet) == QP_MSG_READY &&
              qp_get_u16(&packet[1]) == 3 && dev.state.ready,
          "RESET not answered READY");
    for (i = 0; i < QP_HISTORY * QP_ACT_DIM; i++) {
        ok &= dev.state.past[i] == QP_INITIAL_ACTION;
    }
    CHECK(ok && dev.state.integral[0] == 0.0f, "RESET: past actions or integral not at start");

    for (k = 0; k < 3; k++) {
        float expect;
        CHECK(request(&dev, QP_MSG_STEP, (uint16_t)(10 + k), payload, n, packet) ==
                  QP_MSG_ACTION,
              "STEP %zu not answered", k);
        for (i = 0; i < QP_IN_DIM; i++) {
            ok &= dev.state.obs[i] == in[i];
        }
        /* The observation held the integral including this step's error. */
        expect = k == 0 ? 30.0f * QP_INTEGRAL_DT : QP_INTEGRAL_LIMIT;
        CHECK(dev.state.obs[QP_IN_DIM] == expect && dev.state.integral[0] == expect,
              "step %zu: integral %g, want %g", k, (double)dev.state.obs[QP_IN_DIM],
              (double)expect);
        CHECK(qp_get_u32(&packet[3]) == 7 && qp_get_u32(&packet[3 + 8]) == 14 &&
                  packet[3 + 12] == QP_ACT_DIM,
              "ACTION header: infer %u, state %u", (unsigned)qp_get_u32(&packet[3]),
              (unsigned)qp_get_u32(&packet[3 + 8]));
        for (i = 0; i < QP_ACT_DIM; i++) {
            act[i] = qp_get_f32(&packet[3 + QP_ACTION_HEADER + 4 * i]);
            ok &= dev.state.past[i] == (act[i] > 1.0f ? 1.0f : (act[i] < -1.0f ? -1.0f : act[i]));
        }
        CHECK(ok, "step %zu: inputs or past command not kept", k);
        if (k == 0) {
            memcpy(first, packet, sizeof first);
        }
    }
    CHECK(dev.state.steps == 3 && dev.stats.steps == 3, "steps %u", (unsigned)dev.state.steps);

    /* Failures: the kept blocks stay as they were, byte for byte. */
    before = dev.state;
    in[4] = NAN;
    step_payload(in, QP_IN_DIM, payload);
    CHECK(request(&dev, QP_MSG_STEP, 20, payload, n, packet) == QP_MSG_ERROR &&
              packet[3] == QP_ERROR_NONFINITE && packet[4] == 4,
          "NaN input: %02x %u", packet[3], packet[4]);
    in[4] = 0.2f;
    step_payload(in, QP_IN_DIM - 1, payload);
    CHECK(request(&dev, QP_MSG_STEP, 21, payload, n - 4, packet) == QP_MSG_ERROR &&
              packet[3] == QP_ERROR_WRONG_DIMS && packet[4] == QP_IN_DIM,
          "short STEP: %02x %u", packet[3], packet[4]);
    CHECK(request(&dev, QP_MSG_STEP, 22, payload, n - 1, packet) == QP_MSG_ERROR &&
              packet[3] == QP_ERROR_BAD_LENGTH,
          "cut STEP: %02x", packet[3]);
    CHECK(memcmp(&before, &dev.state, sizeof before) == 0, "a failed STEP changed the state");

    /* The last stepped seq again: the same bytes, no step; another seq steps. */
    n = step_payload(in, QP_IN_DIM, payload);
    CHECK(request(&dev, QP_MSG_STEP, 12, payload, n, packet) == QP_MSG_ACTION &&
              dev.state.steps == 3 && dev.stats.repeats == 1,
          "repeat stepped: steps %u", (unsigned)dev.state.steps);
    CHECK(request(&dev, QP_MSG_STEP, 11, payload, n, packet) == QP_MSG_ACTION &&
              dev.state.steps == 4,
          "an older seq is not a repeat");

    /* RESET: back to the start, and seq 10 steps anew with the first inputs. */
    in[4] = 0.2f;
    CHECK(request(&dev, QP_MSG_RESET, 30, NULL, 0, packet) == QP_MSG_READY &&
              dev.state.steps == 0 && !dev.have_last,
          "RESET kept the blocks or the cache");
    in[QP_IN_POSITION_ERROR] = 30.0f;
    for (i = 0; i < QP_IN_DIM; i++) {
        in[i] = i == QP_IN_POSITION_ERROR ? 30.0f : 0.05f * (float)i;
    }
    n = step_payload(in, QP_IN_DIM, payload);
    CHECK(request(&dev, QP_MSG_STEP, 10, payload, n, packet) == QP_MSG_ACTION &&
              memcmp(&packet[3 + QP_ACTION_HEADER], &first[3 + QP_ACTION_HEADER],
                     4 * QP_ACT_DIM) == 0,
          "after RESET the first inputs do not give the first action");

    /* Through qp_state_act alone: NOT_RESET before a reset, nothing kept. */
    memset(&before, 0, sizeof before);
    CHECK(qp_state_act(&before, in, act) == QP_ERR_NOT_RESET && before.steps == 0,
          "qp_state_act before reset");
}

/* INFO version 4: after version 3's bytes the data hash, the input size, the blocks the
 * board keeps (zero-padded). */
static void test_info_v4(void)
{
    static qp_device_t dev;
    static uint8_t packet[QP_MAX_ENCODED];
    const uint8_t *p = &packet[3 + QP_INFO_V3_SIZE];
    char blocks[QP_BOARD_BLOCKS_SIZE + 1] = {0}, hex[2 * QP_HASH_SIZE + 1];

    qp_device_init(&dev, &TEST_BOARD);
    CHECK(request(&dev, QP_MSG_HELLO, 1, NULL, 0, packet) == QP_MSG_INFO, "no INFO");
    to_hex(p, QP_HASH_SIZE, hex);
    CHECK(strcmp(hex, QP_DATA_HASH) == 0, "INFO data hash %s", hex);
    CHECK(p[QP_HASH_SIZE] == QP_IN_DIM, "INFO in_dim %u", p[QP_HASH_SIZE]);
    memcpy(blocks, &p[QP_HASH_SIZE + 1], QP_BOARD_BLOCKS_SIZE);
    CHECK(strcmp(blocks, QP_BOARD_BLOCKS) == 0, "INFO board blocks %s", blocks);
    CHECK(p[QP_HASH_SIZE + 1 + QP_BOARD_BLOCKS_SIZE - 1] == 0, "board blocks not padded");
    CHECK(packet[3] == 4 && packet[3] == QP_PROTOCOL_VERSION, "version %u", packet[3]);
}

/* RCC_CSR as it reads after each kind of reset (flags set together on silicon). */
static void test_reset_cause(void)
{
    static const struct {
        uint32_t csr;
        uint8_t cause;
    } cases[] = {
        {0, QP_RESET_UNKNOWN},
        {RCC_CSR_PORRSTF | RCC_CSR_BORRSTF | RCC_CSR_PINRSTF, QP_RESET_POWER_ON},
        {RCC_CSR_PINRSTF, QP_RESET_PIN},
        {RCC_CSR_SFTRSTF | RCC_CSR_PINRSTF, QP_RESET_SOFTWARE},
        {RCC_CSR_IWDGRSTF | RCC_CSR_PINRSTF, QP_RESET_WATCHDOG},
        {RCC_CSR_WWDGRSTF | RCC_CSR_PINRSTF, QP_RESET_WINDOW_WATCHDOG},
        {RCC_CSR_LPWRRSTF | RCC_CSR_PINRSTF, QP_RESET_LOW_POWER},
        {RCC_CSR_BORRSTF | RCC_CSR_PINRSTF, QP_RESET_BROWN_OUT},
        {RCC_CSR_IWDGRSTF | RCC_CSR_PORRSTF | RCC_CSR_BORRSTF, QP_RESET_WATCHDOG},
    };
    size_t i;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint8_t got = stm32_reset_cause(cases[i].csr | 3u); /* LSION, LSIRDY: not flags */
        CHECK(got == cases[i].cause, "RCC_CSR %08x: cause %u, want %u",
              (unsigned)cases[i].csr, got, cases[i].cause);
    }
    CHECK(stm32_reset_flags(RCC_CSR_IWDGRSTF | RCC_CSR_PINRSTF | RCC_CSR_RMVF | 0xFFu) == 0x24,
          "flag byte");
}

/* A build id longer than its field is cut at QP_BUILD_ID_SIZE bytes with no 0x00. */
static void test_long_build_id(void)
{
    static const char id[] = "stm32f405-0123456789abcdef+extra";
    static const qp_board_t board = {id, fake_ticks, 1u, 0, 0, 0, 0, NULL};
    static qp_device_t dev;
    static uint8_t out[QP_MAX_FRAME], packet[QP_MAX_ENCODED];
    uint8_t hello[QP_MIN_PACKET] = {QP_MSG_HELLO, 1, 0, 0, 0};
    size_t n, len;

    qp_device_init(&dev, &board);
    qp_put_u16(&hello[3], qp_crc16(hello, 3));
    n = qp_device_handle_packet(&dev, hello, sizeof hello, out);
    CHECK(decode_reply(out, n, packet, &len) && len == QP_MIN_PACKET + QP_INFO_SIZE &&
              memcmp(&packet[3 + 16 + QP_HASH_SIZE], id, QP_BUILD_ID_SIZE) == 0,
          "long build id not cut at %d bytes", QP_BUILD_ID_SIZE);
    CHECK(qp_get_u32(&packet[3 + QP_INFO_V1_SIZE + 4]) == 0, "no ring: dropped must read 0");
    CHECK(packet[3 + QP_INFO_V2_SIZE] == QP_SELFTEST_PASSED &&
              packet[3 + QP_INFO_V2_SIZE + 1] == QP_KERNEL_VERSION,
          "INFO: self-test %u, kernel %u", packet[3 + QP_INFO_V2_SIZE],
          packet[3 + QP_INFO_V2_SIZE + 1]);
    CHECK(qp_device_poll(&dev, out) == 0, "poll without a ring");
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s tests/vectors/protocol.jsonl\n", argv[0]);
        return 2;
    }
    test_crc();
    test_cobs_roundtrip();
    test_fixture_policy();
    test_garbage_then_good();
    test_ring();
    test_poll_and_overflow();
    test_state_through_device();
    test_info_v4();
    test_reset_cause();
    test_long_build_id();
    run_vectors(argv[1]);
    printf("%d checks, %d failures\n", checks, failures);
    return failures == 0 ? 0 : 1;
}
