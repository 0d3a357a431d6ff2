/* The host library's own part of the shim (firmware_bridge/crazyflie_loop.py builds it
 * with the app's C files and shim_app.c into one shared library): DEBUG_PRINT goes to
 * the process's stderr. Everything else is shim_app.c's, shared with the firmware. */
#include <stdio.h>

#include "shim_app.h"

int shim_debug_vprint(const char *fmt, va_list ap) { return vfprintf(stderr, fmt, ap); }
