/* reset_cause.h - the reset cause from the STM32F405's RCC_CSR (RM0090 section 7.3.21).
 *
 * A header of its own so the host unit tests can check the decoding. Several flags can
 * be set at once: every internal reset also drives the NRST pin, so PINRSTF comes with
 * the watchdog and software resets, and a power-on sets PORRSTF and BORRSTF together.
 * The specific cause therefore wins over the pin, and power-on over brown-out.
 */
#ifndef QP_RESET_CAUSE_H
#define QP_RESET_CAUSE_H

#include <stdint.h>

#include "qp_protocol.h"

#define RCC_CSR_BORRSTF (1u << 25)
#define RCC_CSR_PINRSTF (1u << 26)
#define RCC_CSR_PORRSTF (1u << 27)
#define RCC_CSR_SFTRSTF (1u << 28)
#define RCC_CSR_IWDGRSTF (1u << 29)
#define RCC_CSR_WWDGRSTF (1u << 30)
#define RCC_CSR_LPWRRSTF (1u << 31)
#define RCC_CSR_RMVF (1u << 24)

static inline uint8_t stm32_reset_cause(uint32_t csr)
{
    if (csr & RCC_CSR_IWDGRSTF) {
        return QP_RESET_WATCHDOG;
    }
    if (csr & RCC_CSR_WWDGRSTF) {
        return QP_RESET_WINDOW_WATCHDOG;
    }
    if (csr & RCC_CSR_SFTRSTF) {
        return QP_RESET_SOFTWARE;
    }
    if (csr & RCC_CSR_LPWRRSTF) {
        return QP_RESET_LOW_POWER;
    }
    if (csr & RCC_CSR_PORRSTF) {
        return QP_RESET_POWER_ON;
    }
    if (csr & RCC_CSR_BORRSTF) {
        return QP_RESET_BROWN_OUT;
    }
    if (csr & RCC_CSR_PINRSTF) {
        return QP_RESET_PIN;
    }
    return QP_RESET_UNKNOWN;
}

/* The flag byte INFO carries: RCC_CSR bits 31:25 in place, RMVF (bit 24) masked. */
static inline uint8_t stm32_reset_flags(uint32_t csr)
{
    return (uint8_t)((csr >> 24) & 0xFEu);
}

#endif
