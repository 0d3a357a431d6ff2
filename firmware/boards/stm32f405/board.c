/* STM32F405 board: clock, tick counter, polled USART1 and the main loop.
 *
 * One ELF serves QEMU (netduinoplus2) and silicon:
 * - Ticks come from the DWT cycle counter when it runs (silicon) and otherwise from
 *   SysTick extended to 32 bits by its wrap interrupt (QEMU 7.2 has no DWT; with
 *   -icount shift=0 its SysTick counts a virtual 168 MHz deterministically).
 * - With -DQP_REAL_CLOCK the core runs from HSE 8 MHz through the PLL at 168 MHz.
 *   Every wait on a ready flag is bounded, so on QEMU (whose RCC is a stub) the clock
 *   setup gives up and the core stays on the 16 MHz HSI instead of hanging.
 * USART1 uses PA9 (TX) and PA10 (RX), alternate function 7, 8N1: 921600 baud at
 * 168 MHz, 115200 baud on HSI. QEMU ignores the baud rate.
 */
#include <stdint.h>

#include "qp_device.h"

#define REG(addr) (*(volatile uint32_t *)(addr))

#define RCC_BASE 0x40023800u
#define RCC_CR REG(RCC_BASE + 0x00u)
#define RCC_PLLCFGR REG(RCC_BASE + 0x04u)
#define RCC_CFGR REG(RCC_BASE + 0x08u)
#define RCC_AHB1ENR REG(RCC_BASE + 0x30u)
#define RCC_APB1ENR REG(RCC_BASE + 0x40u)
#define RCC_APB2ENR REG(RCC_BASE + 0x44u)
#define FLASH_ACR REG(0x40023C00u)
#define PWR_CR REG(0x40007000u)

#define GPIOA_BASE 0x40020000u
#define GPIOA_MODER REG(GPIOA_BASE + 0x00u)
#define GPIOA_OSPEEDR REG(GPIOA_BASE + 0x08u)
#define GPIOA_PUPDR REG(GPIOA_BASE + 0x0Cu)
#define GPIOA_AFRH REG(GPIOA_BASE + 0x24u)

#define USART1_BASE 0x40011000u
#define USART1_SR REG(USART1_BASE + 0x00u)
#define USART1_DR REG(USART1_BASE + 0x04u)
#define USART1_BRR REG(USART1_BASE + 0x08u)
#define USART1_CR1 REG(USART1_BASE + 0x0Cu)
#define USART_SR_ORE (1u << 3)
#define USART_SR_RXNE (1u << 5)
#define USART_SR_TXE (1u << 7)
#define USART_CR1_RE (1u << 2)
#define USART_CR1_TE (1u << 3)
#define USART_CR1_UE (1u << 13)

#define SYST_CSR REG(0xE000E010u)
#define SYST_RVR REG(0xE000E014u)
#define SYST_CVR REG(0xE000E018u)
#define SCB_ICSR REG(0xE000ED04u)
#define ICSR_PENDSTSET (1u << 26)
#define DEMCR REG(0xE000EDFCu)
#define DWT_CTRL REG(0xE0001000u)
#define DWT_CYCCNT REG(0xE0001004u)

#define HSI_HZ 16000000u
#define PLL_HZ 168000000u
#define QEMU_SYSTICK_HZ 168000000u /* netduinoplus2 models SYSCLK at 168 MHz */
#ifndef SYSTICK_PERIOD
#define SYSTICK_PERIOD 0x1000000u /* counts per SysTick wrap (24-bit counter) */
#endif
#define READY_SPINS 200000u        /* ~0.1 s on HSI: far beyond a crystal's start-up */

#ifndef QP_BUILD_ID
#define QP_BUILD_ID "stm32f405"
#endif

static uint32_t core_hz = HSI_HZ;
static uint32_t apb2_hz = HSI_HZ;

#ifdef QP_REAL_CLOCK
static int wait_set(volatile uint32_t *reg, uint32_t mask, uint32_t value)
{
    uint32_t spins;
    for (spins = 0; spins < READY_SPINS; spins++) {
        if ((*reg & mask) == value) {
            return 1;
        }
    }
    return 0;
}

/* HSE 8 MHz -> PLL (M 8, N 336, P 2, Q 7) -> 168 MHz SYSCLK, AHB /1, APB1 /4, APB2 /2
 * (RM0090 6.3.2). Flash needs 5 wait states at 168 MHz and 2.7-3.6 V (RM0090 3.5.1). */
static void clock_init(void)
{
    RCC_CR |= 1u << 16; /* HSEON */
    if (!wait_set(&RCC_CR, 1u << 17, 1u << 17)) {
        return; /* no crystal (or QEMU): stay on HSI */
    }
    RCC_APB1ENR |= 1u << 28; /* PWREN */
    PWR_CR |= 1u << 14;      /* VOS: scale 1 */
    FLASH_ACR = (1u << 8) | (1u << 9) | (1u << 10) | 5u; /* PRFTEN, ICEN, DCEN, 5 WS */
    RCC_PLLCFGR = 8u | (336u << 6) | (0u << 16) | (1u << 22) | (7u << 24);
    RCC_CFGR = (RCC_CFGR & ~0xFCF0u) | (5u << 10) | (4u << 13); /* APB1 /4, APB2 /2 */
    RCC_CR |= 1u << 24; /* PLLON */
    if (!wait_set(&RCC_CR, 1u << 25, 1u << 25)) {
        return;
    }
    RCC_CFGR = (RCC_CFGR & ~3u) | 2u; /* SW = PLL */
    if (!wait_set(&RCC_CFGR, 3u << 2, 2u << 2)) {
        return;
    }
    core_hz = PLL_HZ;
    apb2_hz = PLL_HZ / 2;
}
#define BAUD 921600u
#else
static void clock_init(void)
{
}
#define BAUD 115200u
#endif

/* ---- ticks ---- */

static volatile uint32_t systick_wraps;
static int use_dwt;

void SysTick_Handler(void)
{
    systick_wraps++;
}

static uint32_t systick_ticks(void)
{
    uint32_t wraps, down, pending;
    /* Re-read until no wrap interrupt ran between the reads. If the counter has
     * reloaded but its interrupt is still pending, count that wrap here. */
    do {
        wraps = systick_wraps;
        down = SYST_CVR;
        pending = SCB_ICSR & ICSR_PENDSTSET;
    } while (wraps != systick_wraps);
    if (pending != 0 && down > SYSTICK_PERIOD / 2) {
        wraps++;
    }
    return wraps * SYSTICK_PERIOD + (SYSTICK_PERIOD - 1u - down);
}

static uint32_t board_ticks(void)
{
    return use_dwt ? DWT_CYCCNT : systick_ticks();
}

static uint8_t ticks_init(void)
{
    volatile int spin;
    DEMCR |= 1u << 24; /* TRCENA */
    DWT_CYCCNT = 0;
    DWT_CTRL |= 1u;    /* CYCCNTENA */
    for (spin = 0; spin < 16; spin++) {
    }
    if (DWT_CYCCNT != 0) {
        use_dwt = 1;
        return QP_TICK_DWT_CYCCNT;
    }
    /* No cycle counter: we are in QEMU, whose SysTick runs at its modelled 168 MHz. */
    core_hz = QEMU_SYSTICK_HZ;
    SYST_RVR = SYSTICK_PERIOD - 1u;
    SYST_CVR = 0;
    SYST_CSR = 7u; /* CLKSOURCE = core, TICKINT, ENABLE */
    return QP_TICK_SYSTICK;
}

/* ---- USART1 ---- */

static void usart1_init(void)
{
    uint32_t div16;
    RCC_AHB1ENR |= 1u << 0;  /* GPIOAEN */
    RCC_APB2ENR |= 1u << 4;  /* USART1EN */
    GPIOA_MODER = (GPIOA_MODER & ~(0xFu << 18)) | (0xAu << 18); /* PA9, PA10: AF */
    GPIOA_OSPEEDR |= 0xFu << 18;
    GPIOA_PUPDR = (GPIOA_PUPDR & ~(0xFu << 18)) | (1u << 20);    /* pull-up on RX */
    GPIOA_AFRH = (GPIOA_AFRH & ~0xFF0u) | (7u << 4) | (7u << 8); /* AF7 */
    /* BRR holds USARTDIV in 12.4 fixed point (oversampling by 16), rounded. */
    div16 = (apb2_hz + BAUD / 2) / BAUD;
    USART1_BRR = div16;
    USART1_CR1 = USART_CR1_UE | USART_CR1_TE | USART_CR1_RE;
}

static uint8_t usart1_getc(void)
{
    /* An overrun (bytes lost while we were busy) is cleared by reading SR then DR;
     * the framing resynchronises at the next 0x00. */
    while ((USART1_SR & (USART_SR_RXNE | USART_SR_ORE)) == 0) {
    }
    return (uint8_t)USART1_DR;
}

static void usart1_write(const uint8_t *data, uint32_t n)
{
    uint32_t i;
    for (i = 0; i < n; i++) {
        while ((USART1_SR & USART_SR_TXE) == 0) {
        }
        USART1_DR = data[i];
    }
}

static qp_device_t device;
static uint8_t reply[QP_MAX_FRAME];

int main(void)
{
    static qp_board_t board = {QP_BUILD_ID, board_ticks, 0, 0};

    clock_init();
    board.tick_source = ticks_init();
    board.tick_hz = core_hz;
    usart1_init();
    qp_device_init(&device, &board);
    for (;;) {
        size_t n = qp_device_rx(&device, usart1_getc(), reply);
        usart1_write(reply, (uint32_t)n);
    }
}
