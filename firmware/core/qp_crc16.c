/* CRC-16/IBM-3740 with a 16-entry table: two lookups per byte, 32 bytes of flash. */
#include "qp_crc16.h"

#include "qp_protocol.h"

/* NIBBLE_TABLE[i] = CRC register contribution of the 4-bit value i shifted in MSB first. */
static const uint16_t NIBBLE_TABLE[16] = {
    0x0000, 0x1021, 0x2042, 0x3063, 0x4084, 0x50a5, 0x60c6, 0x70e7,
    0x8108, 0x9129, 0xa14a, 0xb16b, 0xc18c, 0xd1ad, 0xe1ce, 0xf1ef,
};

uint16_t qp_crc16_update(uint16_t crc, const uint8_t *data, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++) {
        crc = (uint16_t)((crc << 4) ^ NIBBLE_TABLE[((crc >> 12) ^ (data[i] >> 4)) & 0x0F]);
        crc = (uint16_t)((crc << 4) ^ NIBBLE_TABLE[((crc >> 12) ^ (data[i] & 0x0F)) & 0x0F]);
    }
    return crc;
}

uint16_t qp_crc16(const uint8_t *data, size_t n)
{
    return (uint16_t)(qp_crc16_update(QP_CRC16_INIT, data, n) ^ QP_CRC16_XOROUT);
}
