/* SHIM of FreeRTOS.h as the Crazyflie configures it: 1 ms ticks (M2T). */
#ifndef QP_SHIM_FREERTOS_H
#define QP_SHIM_FREERTOS_H
#include <stdint.h>
typedef uint32_t TickType_t;
#define M2T(X) ((unsigned int)(X))
#endif
