/* SHIM of the firmware's app.h. */
#ifndef QP_SHIM_APP_H
#define QP_SHIM_APP_H
void appMain(void);
#endif
