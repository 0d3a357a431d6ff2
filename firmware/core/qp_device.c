/* Frame reassembly, integrity checks, dispatch, the board's kept blocks and the policy
 * call. */
#include "qp_device.h"

#include <string.h>

#include "qp_cobs.h"
#include "qp_crc16.h"
#include "qp_wire.h"
#ifdef QP_FLIGHT_APP
#include "qp_flight_device.h"
#endif

/* The policy header is chosen at build time (-DQP_MODEL_HEADER='"path/policy.h"');
 * qp_device.h has included it, and qp_state.h's declarations, already. */

/* Compile-time checks of the policy header against what the protocol can carry. */
typedef char qp_check_in_dim[(QP_IN_DIM >= 1 && QP_IN_DIM <= QP_MAX_OBS &&
                              QP_IN_DIM <= 255 && QP_IN_DIM <= QP_OBS_DIM) ? 1 : -1];
typedef char qp_check_act_dim[(QP_ACT_DIM >= 1 && QP_ACTION_PAYLOAD <= QP_MAX_PAYLOAD) ? 1 : -1];
typedef char qp_check_hash_len[(sizeof(QP_MODEL_HASH) == 2 * QP_HASH_SIZE + 1) ? 1 : -1];
typedef char qp_check_data_hash_len[(sizeof(QP_DATA_HASH) == 2 * QP_HASH_SIZE + 1) ? 1 : -1];
/* INFO carries the board's blocks in a fixed field; the text must fit without its 0x00. */
typedef char qp_check_board_blocks[(sizeof(QP_BOARD_BLOCKS) - 1 <= QP_BOARD_BLOCKS_SIZE) ? 1 : -1];
#ifdef QP_EXPECT_SCHEME_ID
#if QP_EXPECT_SCHEME_ID != QP_SCHEME_ID
#error "SCHEME given to make does not match QP_SCHEME_ID in the MODEL header"
#endif
#endif

#ifdef QP_ECHO
#define QP_INFO_ECHO_FLAG QP_INFO_FLAG_ECHO
#else
#define QP_INFO_ECHO_FLAG 0
#endif
#ifdef QP_FLIGHT_APP
#if defined(QP_ECHO)
#error "the flight build runs the app's policy: it has no ECHO variant"
#endif
#define QP_INFO_FLAGS (QP_INFO_ECHO_FLAG | QP_INFO_FLAG_FLIGHT)
#else
#define QP_INFO_FLAGS QP_INFO_ECHO_FLAG
#endif

/* The kernel the model header was generated for, reported in INFO. */
#ifdef QP_DATA_KERNEL_VERSION
#define QP_INFO_KERNEL_VERSION QP_DATA_KERNEL_VERSION
#else
#define QP_INFO_KERNEL_VERSION 0
#endif

static int hex_value(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return 0; /* the generator emits lowercase hex; anything else reads as 0 */
}

static void hash_from_hex(const char *hex, uint8_t *out)
{
    size_t i;
    for (i = 0; i < QP_HASH_SIZE; i++) {
        out[i] = (uint8_t)(hex_value(hex[2 * i]) << 4 | hex_value(hex[2 * i + 1]));
    }
}

void qp_device_init(qp_device_t *dev, const qp_board_t *board)
{
    /* Clears the kept blocks too: state.ready = 0 until the first RESET. */
    memset(dev, 0, sizeof *dev);
    dev->board = board;
    hash_from_hex(QP_MODEL_HASH, dev->model_hash);
    hash_from_hex(QP_DATA_HASH, dev->data_hash);
#ifdef QP_ECHO
    dev->selftest = QP_SELFTEST_NOT_RUN;
#else
    dev->selftest = qp_policy_selftest() == QP_OK ? QP_SELFTEST_PASSED : QP_SELFTEST_FAILED;
#endif
#ifdef QP_FLIGHT_APP
    qp_flight_device_init(dev);
#endif
}

/* Finish the reply packet in dev->reply (header + payload_len bytes already written
 * after it), append the CRC and COBS-encode it with its delimiter into out. */
static size_t finish_reply(qp_device_t *dev, uint8_t type, uint16_t seq, size_t payload_len,
                           uint8_t *out)
{
    size_t n = QP_HEADER_SIZE + payload_len;
    size_t encoded;

    dev->reply[0] = type;
    qp_put_u16(&dev->reply[1], seq);
    qp_put_u16(&dev->reply[n], qp_crc16(dev->reply, n));
    n += QP_CRC_SIZE;
    encoded = qp_cobs_encode(dev->reply, n, out, QP_MAX_ENCODED);
    out[encoded] = QP_FRAME_DELIMITER;
    return encoded + 1;
}

static size_t reply_error(qp_device_t *dev, uint16_t seq, uint8_t code, uint8_t detail,
                          uint8_t *out)
{
    dev->stats.rejected++;
    dev->reply[QP_HEADER_SIZE] = code;
    dev->reply[QP_HEADER_SIZE + 1] = detail;
    return finish_reply(dev, QP_MSG_ERROR, seq, 2, out);
}

static size_t reply_info(qp_device_t *dev, uint16_t seq, uint8_t *out)
{
    uint8_t *p = &dev->reply[QP_HEADER_SIZE];
    const char *id = dev->board->build_id;
    const qp_ring_t *rx = dev->board->rx;
    size_t i;

    p[0] = QP_PROTOCOL_VERSION;
    p[1] = QP_SCHEME_ID;
    p[2] = QP_OBS_DIM;
    p[3] = QP_ACT_DIM;
    p[4] = QP_INFO_FLAGS;
    p[5] = dev->board->tick_source;
    qp_put_u16(&p[6], QP_MAX_PAYLOAD);
    qp_put_u32(&p[8], (uint32_t)QP_MACS);
    qp_put_u32(&p[12], dev->board->tick_hz);
    memcpy(&p[16], dev->model_hash, QP_HASH_SIZE);
    /* Cut at QP_BUILD_ID_SIZE bytes, padded with zeros: no terminator when it is full. */
    for (i = 0; i < QP_BUILD_ID_SIZE; i++) {
        p[16 + QP_HASH_SIZE + i] = (uint8_t)(id != NULL ? *id : 0);
        if (id != NULL && *id != '\0') {
            id++;
        } else {
            id = NULL; /* pad the rest with zeros */
        }
    }
    p[QP_INFO_V1_SIZE] = dev->board->reset_cause;
    p[QP_INFO_V1_SIZE + 1] = dev->board->reset_flags;
    qp_put_u16(&p[QP_INFO_V1_SIZE + 2], dev->board->watchdog_ms);
    qp_put_u32(&p[QP_INFO_V1_SIZE + 4], rx != NULL ? rx->dropped : 0u);
    qp_put_u32(&p[QP_INFO_V1_SIZE + 8], rx != NULL ? rx->overruns : 0u);
    p[QP_INFO_V2_SIZE] = dev->selftest;
    p[QP_INFO_V2_SIZE + 1] = QP_INFO_KERNEL_VERSION;
    memcpy(&p[QP_INFO_V3_SIZE], dev->data_hash, QP_HASH_SIZE);
    p[QP_INFO_V3_SIZE + QP_HASH_SIZE] = QP_IN_DIM;
    memset(&p[QP_INFO_V3_SIZE + QP_HASH_SIZE + 1], 0, QP_BOARD_BLOCKS_SIZE);
    memcpy(&p[QP_INFO_V3_SIZE + QP_HASH_SIZE + 1], QP_BOARD_BLOCKS, sizeof(QP_BOARD_BLOCKS) - 1);
    return finish_reply(dev, QP_MSG_INFO, seq, QP_INFO_SIZE, out);
}

/* RESET: the kept blocks to their start (integral 0, past actions QP_INITIAL_ACTION) and
 * the cached ACTION forgotten, so the next STEP steps whatever its seq. */
static size_t reply_reset(qp_device_t *dev, uint16_t seq, size_t len, uint8_t *out)
{
    if (len != 0) {
        return reply_error(dev, seq, QP_ERROR_BAD_LENGTH, QP_MSG_RESET, out);
    }
#ifndef QP_ECHO
    qp_state_reset(&dev->state);
#endif
    dev->have_last = 0;
    return finish_reply(dev, QP_MSG_READY, seq, 0, out);
}

/* STEP: the inputs (the estimate and sensor blocks) -> the kept blocks build the
 * observation, the policy acts, the blocks keep this step's integral and command. Every
 * check comes before qp_state_commit, so an ERROR leaves the kept blocks as they were. */
static size_t reply_step(qp_device_t *dev, uint16_t seq, const uint8_t *payload,
                         size_t len, uint8_t *out)
{
    float in[QP_IN_DIM];
    float action[QP_ACT_DIM];
    uint8_t *p = &dev->reply[QP_HEADER_SIZE];
    uint32_t t0, t1, t2, t3;
    size_t i;
    int rc;

#ifndef QP_ECHO
    /* A retry of the last STEP that stepped: its reply was lost, not its effect. The
     * payload is not read again; the seq names the request. */
    if (dev->have_last && seq == dev->last_seq) {
        dev->stats.repeats++;
        memcpy(p, dev->last_action, QP_ACTION_PAYLOAD);
        return finish_reply(dev, QP_MSG_ACTION, seq, QP_ACTION_PAYLOAD, out);
    }
#endif
    if (len < QP_STEP_HEADER || len != QP_STEP_HEADER + 4u * payload[0]) {
        return reply_error(dev, seq, QP_ERROR_BAD_LENGTH, QP_MSG_STEP, out);
    }
    if (payload[0] != QP_IN_DIM) {
        return reply_error(dev, seq, QP_ERROR_WRONG_DIMS, QP_IN_DIM, out);
    }
#ifndef QP_ECHO
    if (!dev->state.ready) {
        return reply_error(dev, seq, QP_ERROR_NOT_RESET, 0, out);
    }
#endif
    for (i = 0; i < QP_IN_DIM; i++) {
        in[i] = qp_get_f32(&payload[QP_STEP_HEADER + 4 * i]);
        if (!qp_is_finite(in[i])) {
            return reply_error(dev, seq, QP_ERROR_NONFINITE, (uint8_t)i, out);
        }
    }

#ifdef QP_ECHO
    /* No policy and no kept blocks: the first inputs come back as the action. */
    t0 = t1 = dev->board->ticks();
    for (i = 0; i < QP_ACT_DIM; i++) {
        action[i] = i < QP_IN_DIM ? in[i] : 0.0f;
    }
    rc = QP_OK;
    t2 = t3 = dev->board->ticks();
#else
    /* The ticks are read around each part so that ACTION reports the policy call alone
     * (infer_ticks, comparable with every earlier version) and the state's share apart. */
    t0 = dev->board->ticks();
    rc = qp_state_observe(&dev->state, in); /* ready and finite: checked above */
    t1 = dev->board->ticks();
    if (rc == QP_OK) {
        rc = qp_policy_act(dev->state.obs, action);
    }
    t2 = dev->board->ticks();
#endif

    if (rc == QP_ERR_NONFINITE) {
        return reply_error(dev, seq, QP_ERROR_NONFINITE, 0xFF, out);
    }
    if (rc != QP_OK) {
        return reply_error(dev, seq, QP_ERROR_POLICY, (uint8_t)rc, out);
    }
    for (i = 0; i < QP_ACT_DIM; i++) {
        if (!qp_is_finite(action[i])) {
            return reply_error(dev, seq, QP_ERROR_POLICY, 0xFF, out);
        }
    }
#ifndef QP_ECHO
    qp_state_commit(&dev->state, action);
    t3 = dev->board->ticks();
#endif

    dev->stats.steps++;
    dev->stats.last_ticks = t2 - t1;
    qp_put_u32(&p[0], t2 - t1);
    qp_put_u32(&p[4], dev->board->tick_hz);
    qp_put_u32(&p[8], (t1 - t0) + (t3 - t2));
    p[12] = QP_ACT_DIM;
    for (i = 0; i < QP_ACT_DIM; i++) {
        qp_put_f32(&p[QP_ACTION_HEADER + 4 * i], action[i]);
    }
#ifndef QP_ECHO
    memcpy(dev->last_action, p, QP_ACTION_PAYLOAD);
    dev->last_seq = seq;
    dev->have_last = 1;
#endif
    return finish_reply(dev, QP_MSG_ACTION, seq, QP_ACTION_PAYLOAD, out);
}

size_t qp_device_handle_packet(qp_device_t *dev, const uint8_t *packet, size_t n,
                               uint8_t *out)
{
    const uint8_t *payload = &packet[QP_HEADER_SIZE];
    size_t len;
    uint16_t seq;

    dev->stats.frames++;
    if (n < QP_MIN_PACKET) {
        return reply_error(dev, 0, QP_ERROR_BAD_FRAME, 0, out);
    }
    if (n > QP_MAX_PACKET) {
        return reply_error(dev, 0, QP_ERROR_OVERSIZE, 0, out);
    }
    len = n - QP_MIN_PACKET;
    if (qp_crc16(packet, n - QP_CRC_SIZE) != qp_get_u16(&packet[n - QP_CRC_SIZE])) {
        return reply_error(dev, 0, QP_ERROR_BAD_CRC, 0, out);
    }
    /* From here on the packet is intact, so its seq is echoed. */
    seq = qp_get_u16(&packet[1]);
    switch (packet[0]) {
    case QP_MSG_HELLO:
        if (len != 0) {
            return reply_error(dev, seq, QP_ERROR_BAD_LENGTH, QP_MSG_HELLO, out);
        }
        return reply_info(dev, seq, out);
    case QP_MSG_PING:
        memcpy(&dev->reply[QP_HEADER_SIZE], payload, len);
        return finish_reply(dev, QP_MSG_PONG, seq, len, out);
    case QP_MSG_STEP:
        return reply_step(dev, seq, payload, len, out);
    case QP_MSG_RESET:
        return reply_reset(dev, seq, len, out);
    default:
#ifdef QP_FLIGHT_APP
        if (qp_flight_is_request(packet[0])) {
            uint8_t type = QP_MSG_ERROR;
            size_t m = qp_flight_device_answer(dev, packet[0], seq, payload, len,
                                               &dev->reply[QP_HEADER_SIZE], &type);
            if (type == QP_MSG_ERROR) {
                dev->stats.rejected++;
            }
            return finish_reply(dev, type, seq, m, out);
        }
#endif
        return reply_error(dev, seq, QP_ERROR_UNKNOWN_TYPE, packet[0], out);
    }
}

size_t qp_device_rx(qp_device_t *dev, uint8_t byte, uint8_t *out)
{
    long n;

    if (byte != QP_FRAME_DELIMITER) {
        if (dev->rx_len < sizeof dev->rx) {
            dev->rx[dev->rx_len++] = byte;
        } else {
            dev->rx_overflow = 1;
        }
        return 0;
    }

    /* A delimiter ends the frame: whatever happens next, start afresh after it. */
    if (dev->rx_overflow) {
        dev->rx_overflow = 0;
        dev->rx_len = 0;
        dev->stats.frames++;
        return reply_error(dev, 0, QP_ERROR_OVERSIZE, 0, out);
    }
    if (dev->rx_len == 0) {
        return 0;
    }
    n = qp_cobs_decode(dev->rx, dev->rx_len, dev->packet, sizeof dev->packet);
    dev->rx_len = 0;
    if (n < 0) {
        dev->stats.frames++;
        return reply_error(dev, 0, QP_ERROR_BAD_FRAME, 0, out);
    }
    return qp_device_handle_packet(dev, dev->packet, (size_t)n, out);
}

size_t qp_device_poll(qp_device_t *dev, uint8_t *out)
{
    qp_ring_t *rx = dev->board->rx;
    uint8_t byte;

    while (rx != NULL && qp_ring_pop(rx, &byte)) {
        size_t n = qp_device_rx(dev, byte, out);
        if (n > 0) {
            return n;
        }
    }
    return 0;
}
