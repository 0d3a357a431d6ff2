/* SHIM of crazyflie-firmware's log.h: the macros the app uses, their variables readable by
 * name through the shim (shim_log_get). Not the firmware's file. */
#ifndef QP_SHIM_LOG_H
#define QP_SHIM_LOG_H
#include "shim_vars.h"
#define LOG_UINT8 1
#define LOG_UINT16 2
#define LOG_UINT32 3
#define LOG_INT8 4
#define LOG_INT16 5
#define LOG_INT32 6
#define LOG_FLOAT 7
#define LOG_GROUP_START(NAME) SHIM_TABLE("qp_shim_log", shim_log_##NAME) = {{SHIM_GROUP, #NAME, 0},
#define LOG_ADD(TYPE, NAME, ADDRESS) {TYPE, #NAME, (void *)(ADDRESS)},
#define LOG_GROUP_STOP(NAME) {SHIM_END, #NAME, 0}};
#endif
