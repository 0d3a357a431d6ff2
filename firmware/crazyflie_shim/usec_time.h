/* SHIM of the firmware's usec_time.h: microseconds since start. */
#ifndef QP_SHIM_USEC_TIME_H
#define QP_SHIM_USEC_TIME_H
#include <stdint.h>
uint64_t usecTimestamp(void);
#endif
