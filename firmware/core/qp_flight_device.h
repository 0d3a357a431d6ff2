/* qp_flight_device.h - the flight build's requests (make CRAZYFLIE_APP=dir): the
 * Crazyflie app's own C files run on the board, ticked through the shim's stabiliser
 * (crazyflie_shim/shim_app.h), so a host drives the identical observation, decimation
 * and motor-mapping code it flies in the simulator and reads the board's cycles per
 * stabiliser tick. docs/protocol.md section 12 describes the messages. */
#ifndef QP_FLIGHT_DEVICE_H
#define QP_FLIGHT_DEVICE_H

#include <stddef.h>
#include <stdint.h>

#include "qp_device.h"

/* Times every controllerOutOfTree call with the board's tick counter; the app waits for
 * a FLIGHT_START. Called by qp_device_init. */
void qp_flight_device_init(qp_device_t *dev);

/* 1 for the FLIGHT_* request types. */
int qp_flight_is_request(uint8_t type);

/* Answers one intact flight request: writes the reply's payload to reply (room for
 * QP_MAX_PAYLOAD bytes) and its type to *reply_type - QP_MSG_ERROR with code and detail
 * for a refusal, which changes nothing - and returns the payload's length. */
size_t qp_flight_device_answer(qp_device_t *dev, uint8_t type, uint16_t seq,
                               const uint8_t *payload, size_t len, uint8_t *reply,
                               uint8_t *reply_type);

#endif
