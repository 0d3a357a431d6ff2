/* qp_crc16.h - CRC-16/IBM-3740 (poly 0x1021, init 0xFFFF, no reflection, xorout 0). */
#ifndef QP_CRC16_H
#define QP_CRC16_H

#include <stddef.h>
#include <stdint.h>

/* Continue a CRC over n more bytes; start with crc = QP_CRC16_INIT. */
uint16_t qp_crc16_update(uint16_t crc, const uint8_t *data, size_t n);
uint16_t qp_crc16(const uint8_t *data, size_t n);

#endif
