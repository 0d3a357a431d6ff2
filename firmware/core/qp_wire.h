/* qp_wire.h - little-endian field access; memcpy keeps unaligned float access legal. */
#ifndef QP_WIRE_H
#define QP_WIRE_H

#include <stdint.h>
#include <string.h>

static inline uint16_t qp_get_u16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

static inline uint32_t qp_get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
           ((uint32_t)p[3] << 24);
}

static inline void qp_put_u16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static inline void qp_put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static inline uint32_t qp_float_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static inline float qp_get_f32(const uint8_t *p)
{
    uint32_t u = qp_get_u32(p);
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static inline void qp_put_f32(uint8_t *p, float f)
{
    qp_put_u32(p, qp_float_bits(f));
}

/* Exponent all ones = Inf or NaN. A bit test, so it holds under any float flags. */
static inline int qp_is_finite(float f)
{
    return (qp_float_bits(f) & 0x7F800000u) != 0x7F800000u;
}

#endif
