/* qp_flight.h - the exported policy as a flight controller's inner loop, in plain C99
 * with no flight stack's types: the Crazyflie glue (quadpilot_controller.c) converts the
 * firmware's state, sensors and setpoint into a qp_flight_input_t, and the forces back.
 *
 * Every stabiliser tick (QP_FLIGHT_TICK_HZ) the glue calls qp_flight_tick with
 *   - enabled: the setpoint asks for this controller (not disabled, not stale);
 *   - execute: this tick is a control step of the policy (QP_FLIGHT_DECIMATION ticks
 *     apart: the rate the policy was trained at, from qp_flight_config.h);
 * and gets the four motors' thrusts as fractions of QP_FLIGHT_THRUST_MAX, M1..M4, which
 * hold until the next control step.
 *
 * Modes: OFF (motors off) -> on enabling, SPINUP (every motor at QP_FLIGHT_SPINUP_FORCE
 * for spinup_ticks; the board's kept blocks are reset as it ends) -> ACTIVE (the policy
 * at each control step). Any tick with a non-finite input, an attitude quaternion whose
 * norm is off by more than QP_FLIGHT_QUAT_NORM_TOL, or a tilt beyond tilt_limit_deg
 * latches FAULT: motors off until the setpoint disables the controller and enables it
 * again. A policy call that fails (qp_state_act's error) latches FAULT too.
 *
 * The action -> force mapping is the simulator's rotor model: the policy's action a in
 * [-1, 1] commands the rotor speed w = min + (a + 1) / 2 * (max - min), whose static
 * thrust is k_f w^2 (sim/airframes.py); the force is that thrust over THRUST_MAX,
 * clipped to [0, 1]: the vehicle saturates where its motors do.
 */
#ifndef QP_FLIGHT_H
#define QP_FLIGHT_H

#include <stdint.h>

#include "policy.h"
#include "qp_state.h"
#include "qp_flight_config.h"

#define QP_FLIGHT_TICK_HZ 1000 /* the Crazyflie stabiliser's loop rate */
#define QP_FLIGHT_DECIMATION (QP_FLIGHT_TICK_HZ / QP_FLIGHT_CONTROL_HZ)
#if QP_FLIGHT_CONTROL_HZ <= 0 || QP_FLIGHT_TICK_HZ % QP_FLIGHT_CONTROL_HZ != 0
#error "the policy's control rate does not divide the stabiliser's 1000 Hz"
#endif

/* The deployable observation's inputs, in layout order (the export checks the layout). */
#if QP_IN_DIM != 18
#error "qp_flight.h builds position_error, rotation_matrix, velocity and body_rates only"
#endif

#ifndef QP_FLIGHT_THRUST_MAX
#define QP_FLIGHT_THRUST_MAX 0.12f /* N per motor at force 1.0: Crazyflie 2.1+ propellers */
#endif
#ifndef QP_FLIGHT_SPINUP_FORCE
#define QP_FLIGHT_SPINUP_FORCE 0.15f /* above the firmware's dead zone (~0.107), far below hover */
#endif
#ifndef QP_FLIGHT_SPINUP_MS
#define QP_FLIGHT_SPINUP_MS 300
#endif
#ifndef QP_FLIGHT_TILT_LIMIT_DEG
#define QP_FLIGHT_TILT_LIMIT_DEG 80.0f
#endif
#ifndef QP_FLIGHT_QUAT_NORM_TOL
#define QP_FLIGHT_QUAT_NORM_TOL 0.1f
#endif

enum { QP_FLIGHT_OFF = 0, QP_FLIGHT_SPINUP = 1, QP_FLIGHT_ACTIVE = 2, QP_FLIGHT_FAULT = 3 };

/* Why a FAULT latched (qp_flight_t.fault). */
enum {
    QP_FAULT_NONE = 0,
    QP_FAULT_NONFINITE = 1, /* a NaN or infinite estimate, gyro or target */
    QP_FAULT_QUATERNION = 2, /* attitude quaternion far from unit norm */
    QP_FAULT_TILT = 3,       /* tilted beyond tilt_limit_deg */
    QP_FAULT_POLICY = 4      /* qp_state_act failed */
};

typedef struct {
    float position[3]; /* m, world frame: x forward, y left, z up */
    float velocity[3]; /* m/s, world frame */
    float quat[4];     /* attitude, body to world: w, x, y, z */
    float gyro[3];     /* rad/s, body frame */
    float target[3];   /* m, world frame */
} qp_flight_input_t;

typedef struct {
    qp_state_t state;         /* the board's kept blocks and the last observation */
    float in[QP_IN_DIM];      /* the inputs of the last control step */
    float action[QP_ACT_DIM]; /* the policy's last action, [-1, 1] */
    float forces[4];          /* held until the next control step: M1..M4, [0, 1] */
    float thrust_max;         /* N per motor at force 1.0 */
    float tilt_limit_deg;
    uint32_t spinup_ticks;    /* ticks of spin-up on each activation */
    uint32_t spinup_left;
    uint32_t policy_calls;
    uint32_t faults[5];       /* latched faults by kind (index QP_FAULT_*) */
    uint8_t mode;
    uint8_t fault;            /* the kind of the latched fault, QP_FAULT_NONE if none */
} qp_flight_t;

/* Motors off, the defaults above for the settings. */
void qp_flight_init(qp_flight_t *f);

/* One stabiliser tick; writes the forces to hold (M1..M4). */
void qp_flight_tick(qp_flight_t *f, const qp_flight_input_t *in, int enabled, int execute,
                    float forces[4]);

/* The policy's action -> one motor's force (fraction of thrust_max, clipped to [0, 1]). */
float qp_flight_force(float action, float thrust_max);

#endif /* QP_FLIGHT_H */
