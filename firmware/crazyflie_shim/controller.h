/* SHIM of crazyflie-firmware's controller.h: the out-of-tree controller's hooks, declared
 * only under CONFIG_CONTROLLER_OOT as the firmware does (so the app must include
 * autoconf.h first, or its definitions go unchecked). Not the firmware's file. */
#ifndef QP_SHIM_CONTROLLER_H
#define QP_SHIM_CONTROLLER_H
#include "stabilizer_types.h"
#ifdef CONFIG_CONTROLLER_OOT
void controllerOutOfTreeInit(void);
bool controllerOutOfTreeTest(void);
void controllerOutOfTree(control_t *control, const setpoint_t *setpoint,
                         const sensorData_t *sensors, const state_t *state,
                         const stabilizerStep_t stabilizerStep);
#endif
#endif
