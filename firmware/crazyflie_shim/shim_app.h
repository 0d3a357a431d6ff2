/* shim_app.h - the flat C interface through which a caller plays the Crazyflie's
 * stabiliser for the out-of-tree controller app: the host library that flies the app in
 * the simulator (shim_host.c, firmware_bridge/crazyflie_loop.py) and the project's own
 * firmware built with the app (core/qp_flight_device.c, `make CRAZYFLIE_APP=...`) both
 * drive it through these calls, implemented once in shim_app.c. Plain C99 with no
 * firmware types, so the protocol code includes it without the shim's headers. */
#ifndef QP_SHIM_APP_H
#define QP_SHIM_APP_H

#include <stdarg.h>
#include <stdint.h>

/* The firmware's start-up: controllerOutOfTreeInit, then controllerOutOfTreeTest's answer
 * (1 passed, 0 failed). quiet_debug 1 silences DEBUG_PRINT. */
int shim_start(int quiet_debug);

/* n stabiliser ticks with this estimate (position m, velocity m/s, attitude quaternion
 * w, x, y, z, body to world), gyro (deg/s) and setpoint target (m); z_mode is the
 * setpoint's mode for x, y and z (0 disable, 1 absolute), age_ms how old it is. Writes
 * the control_t's normalizedForces after the last tick; returns its controlMode. */
int shim_ticks(int n, const float position[3], const float velocity[3], const float quat_wxyz[4],
               const float gyro_dps[3], const float target[3], int z_mode, uint32_t age_ms,
               float forces[4]);

/* What the last shim_ticks cost, split by whether a tick ran the policy (policy_calls
 * grew) or not: counts of ticks, and the clock's counts inside controllerOutOfTree. The
 * sums and maxima stay 0 without a clock. */
typedef struct {
    uint32_t policy_ticks, idle_ticks;
    uint32_t policy_sum, policy_max;
    uint32_t idle_sum, idle_max;
} shim_costs_t;

/* A free-running counter to time each controllerOutOfTree call with (the board's
 * SysTick or cycle counter); NULL times nothing. Its own cost - two reads back to back -
 * is measured here and taken off every measurement. */
void shim_set_clock(uint32_t (*clock)(void));
const shim_costs_t *shim_costs(void);

/* The app's state after the last tick. */
int shim_obs_dim(void);
const float *shim_observation(void); /* the last control step's observation */
const float *shim_action(void);      /* the policy's last action, QP_ACT_DIM numbers */
uint32_t shim_policy_calls(void);
int shim_mode(void);  /* qp_flight.h QP_FLIGHT_OFF, _SPINUP, _ACTIVE, _FAULT */
int shim_fault(void); /* qp_flight.h QP_FAULT_* of the latched fault */

/* The app's log variables and parameters by group and name (its LOG_GROUP and
 * PARAM_GROUP tables): 0 and *value set, or -1 if it has no such one. A parameter is
 * set, then read back into *value (an integer parameter keeps what its type holds: the
 * value truncated toward zero and saturated to the type's range, NaN as 0). */
int shim_log_get(const char *group, const char *name, double *value);
int shim_param_set(const char *group, const char *name, double value, double *now);

/* Where DEBUG_PRINT's text goes: each side says (the host's stderr; a board whose
 * UART carries the protocol prints nothing). Returns the characters written. */
int shim_debug_vprint(const char *fmt, va_list ap);

#endif
