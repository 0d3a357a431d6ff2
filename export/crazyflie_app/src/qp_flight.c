/* qp_flight.c - see qp_flight.h. */
#include "qp_flight.h"

#include <math.h>
#include <string.h>

static int finite_all(const float *x, int n)
{
    int i;
    for (i = 0; i < n; i++) {
        if (!isfinite(x[i])) {
            return 0;
        }
    }
    return 1;
}

void qp_flight_init(qp_flight_t *f)
{
    memset(f, 0, sizeof(*f));
    f->thrust_max = QP_FLIGHT_THRUST_MAX;
    f->tilt_limit_deg = QP_FLIGHT_TILT_LIMIT_DEG;
    f->spinup_ticks = (uint32_t)QP_FLIGHT_SPINUP_MS * (QP_FLIGHT_TICK_HZ / 1000);
    f->mode = QP_FLIGHT_OFF;
}

float qp_flight_force(float action, float thrust_max)
{
    float a = action < -1.0f ? -1.0f : (action > 1.0f ? 1.0f : action);
    float speed = QP_FLIGHT_SPEED_MIN + 0.5f * (a + 1.0f) * (QP_FLIGHT_SPEED_MAX - QP_FLIGHT_SPEED_MIN);
    float force = QP_FLIGHT_THRUST_COEFF * speed * speed / thrust_max;
    return force > 1.0f ? 1.0f : force;
}

/* The observation's inputs from the flight stack's estimate, in layout order:
 * position error (estimate minus target), the body-to-world rotation matrix row-major
 * (of the normalised quaternion), velocity, body rates. */
static void build_inputs(const qp_flight_input_t *in, float out[QP_IN_DIM])
{
    float n = sqrtf(in->quat[0] * in->quat[0] + in->quat[1] * in->quat[1] +
                    in->quat[2] * in->quat[2] + in->quat[3] * in->quat[3]);
    float w = in->quat[0] / n, x = in->quat[1] / n, y = in->quat[2] / n, z = in->quat[3] / n;
    int k;
    for (k = 0; k < 3; k++) {
        out[k] = in->position[k] - in->target[k];
        out[12 + k] = in->velocity[k];
        out[15 + k] = in->gyro[k];
    }
    out[3] = 1.0f - 2.0f * (y * y + z * z);
    out[4] = 2.0f * (x * y - w * z);
    out[5] = 2.0f * (x * z + w * y);
    out[6] = 2.0f * (x * y + w * z);
    out[7] = 1.0f - 2.0f * (x * x + z * z);
    out[8] = 2.0f * (y * z - w * x);
    out[9] = 2.0f * (x * z - w * y);
    out[10] = 2.0f * (y * z + w * x);
    out[11] = 1.0f - 2.0f * (x * x + y * y);
}

/* The reason to stop, or QP_FAULT_NONE. */
static int check_input(const qp_flight_t *f, const qp_flight_input_t *in)
{
    float n2, up;
    if (!finite_all(in->position, 3) || !finite_all(in->velocity, 3) ||
        !finite_all(in->quat, 4) || !finite_all(in->gyro, 3) || !finite_all(in->target, 3)) {
        return QP_FAULT_NONFINITE;
    }
    n2 = in->quat[0] * in->quat[0] + in->quat[1] * in->quat[1] + in->quat[2] * in->quat[2] +
         in->quat[3] * in->quat[3];
    if (fabsf(sqrtf(n2) - 1.0f) > QP_FLIGHT_QUAT_NORM_TOL) {
        return QP_FAULT_QUATERNION;
    }
    /* The world z component of the body z axis: cos(tilt). */
    up = 1.0f - 2.0f * (in->quat[1] * in->quat[1] + in->quat[2] * in->quat[2]) / n2;
    if (up < cosf(f->tilt_limit_deg * 0.017453292f)) {
        return QP_FAULT_TILT;
    }
    return QP_FAULT_NONE;
}

static void latch(qp_flight_t *f, int why)
{
    f->mode = QP_FLIGHT_FAULT;
    f->fault = (uint8_t)why;
    f->faults[why]++;
    memset(f->forces, 0, sizeof(f->forces));
}

void qp_flight_tick(qp_flight_t *f, const qp_flight_input_t *in, int enabled, int execute,
                    float forces[4])
{
    int k, why;
    if (!enabled) {
        f->mode = QP_FLIGHT_OFF;
        f->fault = QP_FAULT_NONE;
        memset(f->forces, 0, sizeof(f->forces));
    } else if (f->mode == QP_FLIGHT_OFF) {
        f->mode = QP_FLIGHT_SPINUP; /* (re)activated */
        f->spinup_left = f->spinup_ticks;
    }
    if (f->mode == QP_FLIGHT_SPINUP || f->mode == QP_FLIGHT_ACTIVE) {
        why = check_input(f, in);
        if (why != QP_FAULT_NONE) {
            latch(f, why);
        }
    }
    if (f->mode == QP_FLIGHT_SPINUP) {
        if (f->spinup_left > 0) {
            f->spinup_left--;
            for (k = 0; k < 4; k++) {
                f->forces[k] = QP_FLIGHT_SPINUP_FORCE;
            }
        } else {
            qp_state_reset(&f->state);
            f->mode = QP_FLIGHT_ACTIVE;
        }
    }
    if (f->mode == QP_FLIGHT_ACTIVE && execute) {
        build_inputs(in, f->in);
        if (qp_state_act(&f->state, f->in, f->action) != QP_OK) {
            latch(f, QP_FAULT_POLICY);
        } else {
            f->policy_calls++;
            for (k = 0; k < 4; k++) {
                f->forces[k] = qp_flight_force(f->action[k], f->thrust_max);
            }
        }
    }
    memcpy(forces, f->forces, sizeof(f->forces));
}
