/* SHIM of FreeRTOS task.h: the stabiliser's tick count (shim_app.c). */
#ifndef QP_SHIM_TASK_H
#define QP_SHIM_TASK_H
#include "FreeRTOS.h"
TickType_t xTaskGetTickCount(void);
void vTaskDelay(TickType_t ticks);
#endif
