/* The shim's log and param tables: each LOG_GROUP / PARAM_GROUP is an array of these in
 * a section of its own, walked by shim_app.c between the linker's __start_ and __stop_
 * symbols (the firmware keeps its tables in sections too, read by its own log and param
 * code). Not a firmware file. */
#ifndef QP_SHIM_VARS_H
#define QP_SHIM_VARS_H
#include <stdint.h>

#define SHIM_GROUP 0x40
#define SHIM_END 0x80

struct shim_var {
    uint32_t type; /* a LOG_* or PARAM_* value, SHIM_GROUP (name = group) or SHIM_END */
    const char *name;
    void *address;
};

/* Explicitly aligned: the compiler keeps the arrays back to back in the section. */
#define SHIM_TABLE(SECTION, NAME)                                                         \
    static const struct shim_var NAME[]                                                    \
        __attribute__((section(SECTION), used, aligned(sizeof(void *))))
#endif
