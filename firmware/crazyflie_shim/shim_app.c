/* shim_app.c - see shim_app.h: the firmware calls the app makes (tick count,
 * microseconds, DEBUG_PRINT) and the stabiliser's part - fill state_t, sensorData_t and
 * setpoint_t in the firmware's units, call controllerOutOfTree once per 1 kHz tick with
 * the step counting from 1, read control_t back. One copy for the host library and for
 * the firmware that runs the app on the STM32F405, so both tick the app the same way. */
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "autoconf.h"
#include "controller.h"
#include "debug.h"
#include "log.h"
#include "param.h"
#include "qp_flight.h"
#include "shim_app.h"
#include "shim_vars.h"
#include "task.h"
#include "usec_time.h"

extern qp_flight_t qp_cf_flight; /* the app's controller state (quadpilot_controller.c) */

static uint32_t now_ms;
static int quiet;
static stabilizerStep_t step;
static state_t state;
static sensorData_t sensors;
static setpoint_t setpoint;
static control_t control;
static uint32_t (*clock_fn)(void);
static uint32_t clock_cost;
static shim_costs_t costs;

TickType_t xTaskGetTickCount(void) { return now_ms; }
void vTaskDelay(TickType_t ticks) { now_ms += ticks; }
uint64_t usecTimestamp(void) { return (uint64_t)now_ms * 1000u; }

int shim_debug_print(const char *fmt, ...)
{
    int n = 0;
    if (!quiet) {
        va_list ap;
        va_start(ap, fmt);
        n = shim_debug_vprint(fmt, ap);
        va_end(ap);
    }
    return n;
}

int shim_start(int quiet_debug)
{
    quiet = quiet_debug;
    step = 0;
    now_ms = 0;
    memset(&control, 0, sizeof(control));
    memset(&costs, 0, sizeof(costs));
    controllerOutOfTreeInit();
    return controllerOutOfTreeTest() ? 1 : 0;
}

void shim_set_clock(uint32_t (*clock)(void))
{
    int i;
    clock_fn = clock;
    clock_cost = 0;
    /* The smallest of a few empty intervals: what reading the clock itself adds. */
    for (i = 0; clock != NULL && i < 8; i++) {
        uint32_t t0 = clock();
        uint32_t d = clock() - t0;
        if (i == 0 || d < clock_cost) {
            clock_cost = d;
        }
    }
}

const shim_costs_t *shim_costs(void) { return &costs; }

/* One controllerOutOfTree call, timed and counted as a policy tick or an idle one. */
static void tick_once(void)
{
    uint32_t calls = qp_cf_flight.policy_calls;
    uint32_t t0 = 0, d = 0;
    if (clock_fn != NULL) {
        t0 = clock_fn();
    }
    controllerOutOfTree(&control, &setpoint, &sensors, &state, step);
    if (clock_fn != NULL) {
        d = clock_fn() - t0;
        d = d > clock_cost ? d - clock_cost : 0u;
    }
    if (qp_cf_flight.policy_calls != calls) {
        costs.policy_ticks++;
        costs.policy_sum += d;
        costs.policy_max = d > costs.policy_max ? d : costs.policy_max;
    } else {
        costs.idle_ticks++;
        costs.idle_sum += d;
        costs.idle_max = d > costs.idle_max ? d : costs.idle_max;
    }
}

int shim_ticks(int n, const float position[3], const float velocity[3], const float quat_wxyz[4],
               const float gyro_dps[3], const float target[3], int z_mode, uint32_t age_ms,
               float forces[4])
{
    int i;
    memset(&costs, 0, sizeof(costs));
    for (i = 0; i < n; i++) {
        step++;
        now_ms = step; /* the stabiliser ticks at 1 kHz */
        state.position.x = position[0];
        state.position.y = position[1];
        state.position.z = position[2];
        state.velocity.x = velocity[0];
        state.velocity.y = velocity[1];
        state.velocity.z = velocity[2];
        state.attitudeQuaternion.w = quat_wxyz[0];
        state.attitudeQuaternion.x = quat_wxyz[1];
        state.attitudeQuaternion.y = quat_wxyz[2];
        state.attitudeQuaternion.z = quat_wxyz[3];
        sensors.gyro.x = gyro_dps[0];
        sensors.gyro.y = gyro_dps[1];
        sensors.gyro.z = gyro_dps[2];
        setpoint.position.x = target[0];
        setpoint.position.y = target[1];
        setpoint.position.z = target[2];
        setpoint.mode.x = setpoint.mode.y = setpoint.mode.z = (stab_mode_t)z_mode;
        setpoint.timestamp = now_ms - age_ms;
        tick_once();
    }
    memcpy(forces, control.normalizedForces, sizeof(control.normalizedForces));
    return (int)control.controlMode;
}

int shim_obs_dim(void) { return QP_OBS_DIM; }
const float *shim_observation(void) { return qp_cf_flight.state.obs; }
const float *shim_action(void) { return qp_cf_flight.action; }
uint32_t shim_policy_calls(void) { return qp_cf_flight.policy_calls; }
int shim_mode(void) { return qp_cf_flight.mode; }
int shim_fault(void) { return qp_cf_flight.fault; }

/* The log and param tables: each group's array in the section named after the kind,
 * between the linker's __start_ and __stop_ symbols (shim_vars.h). */
static const struct shim_var *find(const struct shim_var *start, const struct shim_var *stop,
                                   const char *group, const char *name)
{
    const struct shim_var *v;
    const char *current = "";
    for (v = start; v < stop; v++) {
        if (v->name == NULL) {
            continue; /* padding, should the linker leave any */
        }
        if (v->type == SHIM_GROUP) {
            current = v->name;
        } else if (v->type != SHIM_END && strcmp(current, group) == 0 &&
                   strcmp(v->name, name) == 0) {
            return v;
        }
    }
    return NULL;
}

extern const struct shim_var __start_qp_shim_log[], __stop_qp_shim_log[];
extern const struct shim_var __start_qp_shim_param[], __stop_qp_shim_param[];

/* LOG_* and PARAM_* share their numbers (log.h, param.h). */
static double read_var(const struct shim_var *v)
{
    switch (v->type) {
    case LOG_UINT8: return *(const uint8_t *)v->address;
    case LOG_UINT16: return *(const uint16_t *)v->address;
    case LOG_UINT32: return *(const uint32_t *)v->address;
    case LOG_INT8: return *(const int8_t *)v->address;
    case LOG_INT16: return *(const int16_t *)v->address;
    case LOG_INT32: return *(const int32_t *)v->address;
    default: return (double)*(const float *)v->address; /* clang warns on the implicit one */
    }
}

int shim_log_get(const char *group, const char *name, double *value)
{
    const struct shim_var *v = find(__start_qp_shim_log, __stop_qp_shim_log, group, name);
    if (v == NULL) {
        return -1;
    }
    *value = read_var(v);
    return 0;
}

/* value within [lo, hi], NaN as 0: converting a double outside an integer type's range
 * is undefined in C (the host's value from FLIGHT_PARAM is anything a float64 holds). */
static double clamp(double value, double lo, double hi)
{
    if (isnan(value)) {
        return 0.0;
    }
    return value < lo ? lo : (value > hi ? hi : value);
}

int shim_param_set(const char *group, const char *name, double value, double *now)
{
    const struct shim_var *v = find(__start_qp_shim_param, __stop_qp_shim_param, group, name);
    if (v == NULL) {
        return -1;
    }
    switch (v->type) {
    case PARAM_UINT8: *(uint8_t *)v->address = (uint8_t)clamp(value, 0, UINT8_MAX); break;
    case PARAM_UINT16: *(uint16_t *)v->address = (uint16_t)clamp(value, 0, UINT16_MAX); break;
    case PARAM_UINT32: *(uint32_t *)v->address = (uint32_t)clamp(value, 0, UINT32_MAX); break;
    case PARAM_INT8: *(int8_t *)v->address = (int8_t)clamp(value, INT8_MIN, INT8_MAX); break;
    case PARAM_INT16: *(int16_t *)v->address = (int16_t)clamp(value, INT16_MIN, INT16_MAX); break;
    case PARAM_INT32: *(int32_t *)v->address = (int32_t)clamp(value, INT32_MIN, INT32_MAX); break;
    default: *(float *)v->address = (float)value; break;
    }
    *now = read_var(v);
    return 0;
}
