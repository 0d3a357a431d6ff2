/* quadpilot_controller.c - the exported policy as the Crazyflie's out-of-tree controller.
 *
 * The firmware's units and frames (crazyflie-firmware, src/modules/interface/
 * stabilizer_types.h): state position in m and velocity in m/s, world frame (x forward,
 * y left, z up); attitudeQuaternion body to world, whose q0..q3 alias x, y, z, w (the
 * scalar is .w); sensors gyro in deg/s, body frame. The controller is called every
 * stabiliser tick (1 kHz, the step counting from 1); the policy runs on the ticks
 * RATE_DO_EXECUTE picks for its trained rate, and the forces hold in between. Force
 * mode: normalizedForces[i] drives motor M(i+1) (M1 front right, M2 back right, M3 back
 * left, M4 front left), each a fraction of THRUST_MAX with the firmware's battery
 * compensation (src/modules/src/power_distribution_quadrotor.c, src/drivers/src/motors.c).
 *
 * Safety: motors off unless the setpoint's z mode is set (a null setpoint, or the
 * supervisor's, disables the controller) and the setpoint is at most
 * QP_CF_SETPOINT_TIMEOUT_MS old; qp_flight.h's faults (non-finite estimate, quaternion far
 * from unit norm, tilt) latch motors off until the setpoint disables and enables again.
 * Every piece of state is static: the controller runs on the stabiliser task's stack.
 */
#include "autoconf.h" /* before controller.h: it declares the OOT hooks under CONFIG_CONTROLLER_OOT */
#include "controller.h"

#include <math.h>
#include <stdbool.h>
#include <stdint.h>

#include "FreeRTOS.h"
#include "app.h"
#include "log.h"
#include "param.h"
#include "stabilizer_types.h"
#include "task.h"
#include "usec_time.h"

#define DEBUG_MODULE "QPILOT"
#include "debug.h"

#include "qp_flight.h"

#ifndef QP_CF_SETPOINT_TIMEOUT_MS
#define QP_CF_SETPOINT_TIMEOUT_MS 500 /* the supervisor levels out after 500 ms */
#endif

#if QP_ACT_DIM != STABILIZER_NR_OF_MOTORS
#error "the policy commands another number of rotors than the Crazyflie has"
#endif

/* Not static: the host harness that flies these files in the simulator reads it. */
qp_flight_t qp_cf_flight;

static qp_flight_input_t input;
static float forces[4];
static uint8_t enable = 1;      /* param: 0 keeps the motors off */
static uint8_t use_param_target; /* param: 1 flies to (tx, ty, tz) */
static float param_target[3];
static float activation_position[3];
static uint16_t spinup_ms = QP_FLIGHT_SPINUP_MS;
static uint8_t was_enabled;
static uint32_t step_us;        /* the last control step's time in the controller */
static uint32_t stale_setpoints;
static uint32_t selftest_failed;

static bool finite3(const point_t *p)
{
    return isfinite(p->x) && isfinite(p->y) && isfinite(p->z);
}

void appMain(void)
{
    DEBUG_PRINT("quadpilot %s: model %.16s, %d Hz policy\n", QP_FLIGHT_AIRFRAME, QP_MODEL_HASH,
                QP_FLIGHT_CONTROL_HZ);
    while (1) {
        vTaskDelay(M2T(2000));
    }
}

void controllerOutOfTreeInit(void)
{
    qp_flight_init(&qp_cf_flight);
    was_enabled = 0;
}

bool controllerOutOfTreeTest(void)
{
    /* The data header's own vector through the kernel: a build that changes the
     * arithmetic fails the firmware's self test instead of flying. */
    if (qp_policy_selftest() != QP_OK) {
        selftest_failed = 1;
        DEBUG_PRINT("policy self-test FAILED: this build computes other actions than export\n");
        return false;
    }
    return true;
}

void controllerOutOfTree(control_t *control, const setpoint_t *setpoint,
                         const sensorData_t *sensors, const state_t *state,
                         const stabilizerStep_t stabilizerStep)
{
    const float deg = 0.017453292f;
    uint32_t age = (uint32_t)(xTaskGetTickCount() - setpoint->timestamp);
    bool fresh = age <= M2T(QP_CF_SETPOINT_TIMEOUT_MS);
    bool enabled = enable && setpoint->mode.z != modeDisable && fresh;
    bool execute = RATE_DO_EXECUTE(QP_FLIGHT_CONTROL_HZ, stabilizerStep);
    uint64_t start;
    int k;

    if (!fresh && setpoint->mode.z != modeDisable) {
        stale_setpoints++;
    }
    input.position[0] = state->position.x;
    input.position[1] = state->position.y;
    input.position[2] = state->position.z;
    input.velocity[0] = state->velocity.x;
    input.velocity[1] = state->velocity.y;
    input.velocity[2] = state->velocity.z;
    input.quat[0] = state->attitudeQuaternion.w;
    input.quat[1] = state->attitudeQuaternion.x;
    input.quat[2] = state->attitudeQuaternion.y;
    input.quat[3] = state->attitudeQuaternion.z;
    input.gyro[0] = sensors->gyro.x * deg;
    input.gyro[1] = sensors->gyro.y * deg;
    input.gyro[2] = sensors->gyro.z * deg;

    if (enabled && !was_enabled) { /* activation: hold where we are unless told */
        activation_position[0] = state->position.x;
        activation_position[1] = state->position.y;
        activation_position[2] = state->position.z;
        qp_cf_flight.spinup_ticks = (uint32_t)spinup_ms * (QP_FLIGHT_TICK_HZ / 1000);
    }
    was_enabled = enabled;
    for (k = 0; k < 3; k++) {
        input.target[k] = activation_position[k];
    }
    if (use_param_target) {
        for (k = 0; k < 3; k++) {
            input.target[k] = param_target[k];
        }
    } else if (finite3(&setpoint->position)) {
        if (setpoint->mode.x == modeAbs) {
            input.target[0] = setpoint->position.x;
        }
        if (setpoint->mode.y == modeAbs) {
            input.target[1] = setpoint->position.y;
        }
        if (setpoint->mode.z == modeAbs) {
            input.target[2] = setpoint->position.z;
        }
    }

    start = usecTimestamp();
    qp_flight_tick(&qp_cf_flight, &input, enabled, execute, forces);
    if (execute) {
        step_us = (uint32_t)(usecTimestamp() - start);
    }
    control->controlMode = controlModeForce;
    for (k = 0; k < 4; k++) {
        control->normalizedForces[k] = forces[k];
    }
}

LOG_GROUP_START(qpilot)
LOG_ADD(LOG_UINT8, mode, &qp_cf_flight.mode)
LOG_ADD(LOG_UINT8, fault, &qp_cf_flight.fault)
LOG_ADD(LOG_FLOAT, ex, &qp_cf_flight.in[0])
LOG_ADD(LOG_FLOAT, ey, &qp_cf_flight.in[1])
LOG_ADD(LOG_FLOAT, ez, &qp_cf_flight.in[2])
LOG_ADD(LOG_FLOAT, vx, &qp_cf_flight.in[12])
LOG_ADD(LOG_FLOAT, vy, &qp_cf_flight.in[13])
LOG_ADD(LOG_FLOAT, vz, &qp_cf_flight.in[14])
LOG_ADD(LOG_FLOAT, p, &qp_cf_flight.in[15])
LOG_ADD(LOG_FLOAT, q, &qp_cf_flight.in[16])
LOG_ADD(LOG_FLOAT, r, &qp_cf_flight.in[17])
LOG_ADD(LOG_FLOAT, ix, &qp_cf_flight.state.integral[0])
LOG_ADD(LOG_FLOAT, iy, &qp_cf_flight.state.integral[1])
LOG_ADD(LOG_FLOAT, iz, &qp_cf_flight.state.integral[2])
LOG_ADD(LOG_FLOAT, a1, &qp_cf_flight.action[0])
LOG_ADD(LOG_FLOAT, a2, &qp_cf_flight.action[1])
LOG_ADD(LOG_FLOAT, a3, &qp_cf_flight.action[2])
LOG_ADD(LOG_FLOAT, a4, &qp_cf_flight.action[3])
LOG_ADD(LOG_FLOAT, f1, &forces[0])
LOG_ADD(LOG_FLOAT, f2, &forces[1])
LOG_ADD(LOG_FLOAT, f3, &forces[2])
LOG_ADD(LOG_FLOAT, f4, &forces[3])
LOG_ADD(LOG_UINT32, stepUs, &step_us)
LOG_ADD(LOG_UINT32, calls, &qp_cf_flight.policy_calls)
LOG_ADD(LOG_UINT32, nNonfin, &qp_cf_flight.faults[QP_FAULT_NONFINITE])
LOG_ADD(LOG_UINT32, nQuat, &qp_cf_flight.faults[QP_FAULT_QUATERNION])
LOG_ADD(LOG_UINT32, nTilt, &qp_cf_flight.faults[QP_FAULT_TILT])
LOG_ADD(LOG_UINT32, nPolicy, &qp_cf_flight.faults[QP_FAULT_POLICY])
LOG_ADD(LOG_UINT32, nStale, &stale_setpoints)
LOG_ADD(LOG_UINT32, selftest, &selftest_failed)
LOG_GROUP_STOP(qpilot)

PARAM_GROUP_START(qpilot)
PARAM_ADD(PARAM_UINT8, enable, &enable)
PARAM_ADD(PARAM_UINT16, spinupMs, &spinup_ms)
PARAM_ADD(PARAM_FLOAT, tiltMax, &qp_cf_flight.tilt_limit_deg)
PARAM_ADD(PARAM_UINT8, useTarget, &use_param_target)
PARAM_ADD(PARAM_FLOAT, tx, &param_target[0])
PARAM_ADD(PARAM_FLOAT, ty, &param_target[1])
PARAM_ADD(PARAM_FLOAT, tz, &param_target[2])
PARAM_GROUP_STOP(qpilot)
