/* libFuzzer harness for the frame receiver (build: make fuzz; run: bench/fuzz.py).
 *
 * Feeds arbitrary bytes to a fresh device and checks, besides memory safety (ASan,
 * UBSan), the protocol's promises for every reply:
 *   - a reply comes only on a 0x00 that ends a non-empty frame, and then always;
 *   - it is one well-formed frame: no inner 0x00, valid COBS, length, CRC;
 *   - ACTION only for an intact STEP of the right size with finite observations;
 *   - integrity errors carry seq 0, every other reply echoes the request's seq.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "qp_cobs.h"
#include "qp_crc16.h"
#include "qp_device.h"
#include "qp_wire.h"

#include QP_MODEL_HEADER

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint32_t clock_now;
static uint32_t fuzz_ticks(void)
{
    return clock_now += 3;
}
static const qp_board_t FUZZ_BOARD = {"fuzz", fuzz_ticks, 1000000u, QP_TICK_HOST_CLOCK};

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
    int good_step; /* intact STEP, right count and length, all observations finite */
} request_t;

static request_t inspect(const uint8_t *frame, size_t n, int overflow)
{
    static uint8_t packet[QP_MAX_ENCODED];
    request_t r = {0, 0, 0, 0};
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
    if (r.type == QP_MSG_STEP && len == QP_MIN_PACKET + 1 + 4 * QP_OBS_DIM &&
        packet[3] == QP_OBS_DIM) {
        size_t i;
        r.good_step = 1;
        for (i = 0; i < QP_OBS_DIM; i++) {
            r.good_step &= qp_is_finite(qp_get_f32(&packet[4 + 4 * i]));
        }
    }
    return r;
}

static void check_reply(const uint8_t *reply, size_t n, request_t req)
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
        REQUIRE(req.good_step);
    }
    if (packet[0] == QP_MSG_ERROR) {
        uint8_t code = packet[3];
        REQUIRE(len == QP_MIN_PACKET + 2);
        REQUIRE(code >= QP_ERROR_BAD_FRAME && code <= QP_ERROR_POLICY);
        if (code <= QP_ERROR_OVERSIZE) {
            REQUIRE(!req.intact && seq == 0);
        } else {
            REQUIRE(req.intact && seq == req.seq);
        }
    } else {
        REQUIRE(req.intact && seq == req.seq && packet[0] == (req.type | 0x80));
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static qp_device_t dev;
    static uint8_t reply[QP_MAX_FRAME];
    static uint8_t frame[QP_MAX_ENCODED];
    size_t frame_len = 0, i;
    int overflow = 0;

    qp_device_init(&dev, &FUZZ_BOARD);
    for (i = 0; i < size; i++) {
        size_t n = qp_device_rx(&dev, data[i], reply);
        if (data[i] != 0) {
            REQUIRE(n == 0);
            if (frame_len < sizeof frame) {
                frame[frame_len++] = data[i];
            } else {
                overflow = 1;
            }
            continue;
        }
        if (frame_len == 0 && !overflow) {
            REQUIRE(n == 0); /* empty frames are ignored */
        } else {
            check_reply(reply, n, inspect(frame, frame_len, overflow));
        }
        frame_len = 0;
        overflow = 0;
    }
    return 0;
}
