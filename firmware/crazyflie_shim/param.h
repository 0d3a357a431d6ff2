/* SHIM of crazyflie-firmware's param.h: the macros the app uses, its parameters settable by
 * name through the shim (shim_param_set). Not the firmware's file. */
#ifndef QP_SHIM_PARAM_H
#define QP_SHIM_PARAM_H
#include "shim_vars.h"
#define PARAM_UINT8 1
#define PARAM_UINT16 2
#define PARAM_UINT32 3
#define PARAM_INT8 4
#define PARAM_INT16 5
#define PARAM_INT32 6
#define PARAM_FLOAT 7
#define PARAM_GROUP_START(NAME) SHIM_TABLE("qp_shim_param", shim_param_##NAME) = {{SHIM_GROUP, #NAME, 0},
#define PARAM_ADD(TYPE, NAME, ADDRESS) {TYPE, #NAME, (void *)(ADDRESS)},
#define PARAM_GROUP_STOP(NAME) {SHIM_END, #NAME, 0}};
#endif
