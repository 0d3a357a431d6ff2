/* SHIM of crazyflie-firmware's src/modules/interface/stabilizer_types.h: only the types
 * and fields the quadpilot app reads or writes, declared from the firmware's documented
 * API so that the app's own C files compile and fly without the firmware: in the
 * simulator (firmware_bridge/crazyflie_loop.py) and on the project's own STM32F405
 * firmware (`make CRAZYFLIE_APP=...`). Field names, types and order follow the
 * firmware (release 2026.08); units in the comments. Not the firmware's file. */
#ifndef QP_SHIM_STABILIZER_TYPES_H
#define QP_SHIM_STABILIZER_TYPES_H

#include <stdbool.h>
#include <stdint.h>

typedef uint32_t stabilizerStep_t; /* stabiliser loop runs, 1000 per second, from 1 */

typedef struct {
    float x, y, z;
} Axis3f;

typedef struct attitude_s {
    uint32_t timestamp;
    float roll, pitch, yaw; /* deg */
} attitude_t;

struct vec3_s {
    uint32_t timestamp;
    float x, y, z;
};
typedef struct vec3_s point_t;    /* m */
typedef struct vec3_s velocity_t; /* m/s */
typedef struct vec3_s acc_t;
typedef struct vec3_s jerk_t;

typedef struct quaternion_s {
    union {
        struct {
            float q0, q1, q2, q3;
        };
        struct {
            float x, y, z, w; /* q0 is x: the scalar part is w */
        };
    };
} quaternion_t;

typedef struct {
    float pressure, temperature, asl;
} baro_t;

typedef struct sensorData_s {
    Axis3f acc;  /* G, body */
    Axis3f gyro; /* deg/s, body */
    Axis3f mag;
    baro_t baro;
    uint64_t interruptTimestamp;
} sensorData_t;

typedef struct state_s {
    attitude_t attitude;             /* deg, legacy: pitch inverted */
    quaternion_t attitudeQuaternion; /* body to world */
    point_t position;                /* m, world: x forward, y left, z up */
    velocity_t velocity;             /* m/s, world */
    acc_t acc;                       /* G, world, gravity removed */
} state_t;

#define STABILIZER_NR_OF_MOTORS 4

typedef enum control_mode_e {
    controlModeLegacy = 0,
    controlModeForceTorque = 1,
    controlModeForce = 2,
} control_mode_t;

typedef struct control_s {
    union {
        struct {
            int16_t roll, pitch, yaw;
            float thrust;
        };
        struct {
            float thrustSi;
            float torque[3];
        };
        float normalizedForces[STABILIZER_NR_OF_MOTORS]; /* M1..M4, 0..1 of THRUST_MAX */
    };
    control_mode_t controlMode;
} control_t;

typedef enum mode_e { modeDisable = 0, modeAbs, modeVelocity } stab_mode_t;

typedef struct {
    stab_mode_t x, y, z, roll, pitch, yaw, quat;
} setpoint_mode_t;

typedef struct setpoint_s {
    uint32_t timestamp; /* xTaskGetTickCount() when set, ms */
    attitude_t attitude;
    attitude_t attitudeRate;
    quaternion_t attitudeQuaternion;
    float thrust;
    point_t position;   /* m, world */
    velocity_t velocity;
    acc_t acceleration;
    jerk_t jerk;
    bool velocity_body;
    setpoint_mode_t mode;
} setpoint_t;

#define RATE_1000_HZ 1000
#define RATE_500_HZ 500
#define RATE_250_HZ 250
#define RATE_100_HZ 100
#define RATE_50_HZ 50
#define RATE_25_HZ 25
#define RATE_MAIN_LOOP RATE_1000_HZ
#define RATE_DO_EXECUTE(RATE_HZ, TICK) ((TICK % (RATE_MAIN_LOOP / RATE_HZ)) == 0)

#endif
