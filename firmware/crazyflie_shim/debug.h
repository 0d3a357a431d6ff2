/* SHIM of the firmware's debug.h: DEBUG_PRINT to shim_debug_vprint (shim_app.h), checked
 * like printf. */
#ifndef QP_SHIM_DEBUG_H
#define QP_SHIM_DEBUG_H
int shim_debug_print(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
#define DEBUG_PRINT(fmt, ...) shim_debug_print(fmt, ##__VA_ARGS__)
#endif
