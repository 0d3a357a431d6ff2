/* The flight build's requests: see qp_flight_device.h and docs/protocol.md section 12. */
#include "qp_flight_device.h"

#include <string.h>

#include "qp_wire.h"
#include "shim_app.h"

/* The reply carries the app's whole observation and its four motors. */
typedef char qp_check_flight_obs[(QP_OBS_DIM <= QP_FLIGHT_MAX_OBS) ? 1 : -1];
typedef char qp_check_flight_act[(QP_ACT_DIM == 4) ? 1 : -1];

/* No console: the board's UART carries the protocol, so DEBUG_PRINT writes nothing. */
int shim_debug_vprint(const char *fmt, va_list ap)
{
    (void)fmt;
    (void)ap;
    return 0;
}

void qp_flight_device_init(qp_device_t *dev)
{
    dev->flight_started = 0;
    dev->flight_have_last = 0;
    shim_set_clock(dev->board->ticks);
}

int qp_flight_is_request(uint8_t type)
{
    return type == QP_MSG_FLIGHT_START || type == QP_MSG_FLIGHT_TICKS ||
           type == QP_MSG_FLIGHT_PARAM || type == QP_MSG_FLIGHT_LOG;
}

static size_t refuse(uint8_t code, uint8_t detail, uint8_t *reply, uint8_t *reply_type)
{
    reply[0] = code;
    reply[1] = detail;
    *reply_type = QP_MSG_ERROR;
    return 2;
}

/* Float64 little-endian, as two u32 words (no unaligned 64-bit access on the M4). */
static double get_f64(const uint8_t *p)
{
    uint64_t u = (uint64_t)qp_get_u32(p) | ((uint64_t)qp_get_u32(p + 4) << 32);
    double d;
    memcpy(&d, &u, sizeof d);
    return d;
}

static void put_f64(uint8_t *p, double d)
{
    uint64_t u;
    memcpy(&u, &d, sizeof u);
    qp_put_u32(p, (uint32_t)u);
    qp_put_u32(p + 4, (uint32_t)(u >> 32));
}

/* FLIGHT_PARAM and FLIGHT_LOG: "group.name" -> found, the value. A name without a dot
 * names nothing. */
static size_t answer_var(uint8_t type, const uint8_t *payload, size_t len, uint8_t *reply,
                         uint8_t *reply_type)
{
    size_t head = type == QP_MSG_FLIGHT_PARAM ? 8u : 0u;
    char name[QP_FLIGHT_NAME_MAX + 1];
    char *dot;
    double value = 0.0;
    int rc = -1;

    if (len <= head || len > head + QP_FLIGHT_NAME_MAX) {
        return refuse(QP_ERROR_BAD_LENGTH, type, reply, reply_type);
    }
    memcpy(name, payload + head, len - head);
    name[len - head] = '\0';
    dot = strchr(name, '.');
    if (dot != NULL) {
        *dot = '\0';
        if (type == QP_MSG_FLIGHT_PARAM) {
            rc = shim_param_set(name, dot + 1, get_f64(payload), &value);
        } else {
            rc = shim_log_get(name, dot + 1, &value);
        }
    }
    reply[0] = rc == 0 ? 1u : 0u;
    put_f64(&reply[1], rc == 0 ? value : 0.0);
    *reply_type = (uint8_t)(type | 0x80u);
    return QP_FLIGHT_VALUE_SIZE;
}

/* FLIGHT_TICKS: the state in, n stabiliser ticks of the app, its outputs and what the
 * ticks cost out. The state goes to the app as it came, NaN included: refusing a bad
 * estimate is the app's own rule (a latched FAULT), the one under test. */
static size_t answer_ticks(qp_device_t *dev, uint16_t seq, const uint8_t *payload, size_t len,
                           uint8_t *reply, uint8_t *reply_type)
{
    float s[QP_FLIGHT_STATE_FLOATS];
    float forces[4];
    const float *v;
    const shim_costs_t *c;
    int mode;
    size_t i;

    *reply_type = QP_MSG_FLIGHT_FORCES;
    /* A retry of the last FLIGHT_TICKS (its reply was lost): the same bytes, no ticks. */
    if (dev->flight_have_last && seq == dev->flight_last_seq) {
        memcpy(reply, dev->flight_last, QP_FLIGHT_FORCES_PAYLOAD);
        return QP_FLIGHT_FORCES_PAYLOAD;
    }
    if (len != QP_FLIGHT_TICKS_SIZE) {
        return refuse(QP_ERROR_BAD_LENGTH, QP_MSG_FLIGHT_TICKS, reply, reply_type);
    }
    if (!dev->flight_started) {
        return refuse(QP_ERROR_NOT_STARTED, 0, reply, reply_type);
    }
    for (i = 0; i < QP_FLIGHT_STATE_FLOATS; i++) {
        s[i] = qp_get_f32(&payload[QP_FLIGHT_TICKS_HEADER + 4 * i]);
    }
    mode = shim_ticks(payload[0], &s[0], &s[3], &s[6], &s[10], &s[13], payload[1],
                      qp_get_u32(&payload[2]), forces);
    c = shim_costs();
    reply[0] = (uint8_t)mode;
    reply[1] = (uint8_t)shim_mode();
    reply[2] = (uint8_t)shim_fault();
    reply[3] = (uint8_t)c->policy_ticks;
    reply[4] = (uint8_t)c->idle_ticks;
    qp_put_u32(&reply[5], shim_policy_calls());
    qp_put_u32(&reply[9], c->policy_sum);
    qp_put_u32(&reply[13], c->policy_max);
    qp_put_u32(&reply[17], c->idle_sum);
    qp_put_u32(&reply[21], c->idle_max);
    v = shim_action();
    for (i = 0; i < 4; i++) {
        qp_put_f32(&reply[25 + 4 * i], forces[i]);
        qp_put_f32(&reply[41 + 4 * i], v[i]);
    }
    reply[57] = QP_OBS_DIM;
    v = shim_observation();
    for (i = 0; i < QP_OBS_DIM; i++) {
        qp_put_f32(&reply[QP_FLIGHT_FORCES_HEADER + 4 * i], v[i]);
    }
    memcpy(dev->flight_last, reply, QP_FLIGHT_FORCES_PAYLOAD);
    dev->flight_last_seq = seq;
    dev->flight_have_last = 1;
    return QP_FLIGHT_FORCES_PAYLOAD;
}

size_t qp_flight_device_answer(qp_device_t *dev, uint8_t type, uint16_t seq,
                               const uint8_t *payload, size_t len, uint8_t *reply,
                               uint8_t *reply_type)
{
    switch (type) {
    case QP_MSG_FLIGHT_START:
        if (len != 0) {
            return refuse(QP_ERROR_BAD_LENGTH, type, reply, reply_type);
        }
        /* controllerOutOfTreeInit and the self test; the firmware starts no stabiliser
         * after a failed test, so neither does this board. */
        dev->flight_started = shim_start(1);
        dev->flight_have_last = 0;
        reply[0] = dev->flight_started ? QP_SELFTEST_PASSED : QP_SELFTEST_FAILED;
        *reply_type = QP_MSG_FLIGHT_STARTED;
        return 1;
    case QP_MSG_FLIGHT_TICKS:
        return answer_ticks(dev, seq, payload, len, reply, reply_type);
    default:
        return answer_var(type, payload, len, reply, reply_type);
    }
}
