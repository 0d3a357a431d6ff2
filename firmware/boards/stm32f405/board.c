/* STM32F405 board: clock, tick counter, interrupt-driven USART1 receive, independent
 * watchdog, reset cause and the main loop.
 *
 * One ELF serves QEMU (netduinoplus2) and silicon:
 * - Ticks come from the DWT cycle counter when it runs (silicon) and otherwise from
 *   SysTick extended to 32 bits by its wrap interrupt (QEMU 7.2 has no DWT; with
 *   -icount shift=0 its SysTick counts a virtual 168 MHz deterministically).
 * - With -DQP_REAL_CLOCK the core runs from HSE 8 MHz through the PLL at 168 MHz.
 *   Every wait on a ready flag is bounded, so on QEMU (whose RCC is a stub) the clock
 *   setup gives up and the core stays on the 16 MHz HSI instead of hanging.
 * - QEMU models neither the IWDG nor RCC_CSR: the watchdog writes go to an
 *   unimplemented-device region (ignored) and the reset cause reads as unknown.
 * USART1 uses PA9 (TX) and PA10 (RX), alternate function 7, 8N1: 921600 baud at
 * 168 MHz, 115200 baud on HSI. QEMU ignores the baud rate. The USART1 RXNE interrupt
 * moves every received byte into a ring the main loop drains (docs/hardware.md says why).
 */
#include <stdint.h>

#include "qp_device.h"
#include "reset_cause.h"

#define REG(addr) (*(volatile uint32_t *)(addr))

#define RCC_BASE 0x40023800u
#define RCC_CR REG(RCC_BASE + 0x00u)
#define RCC_PLLCFGR REG(RCC_BASE + 0x04u)
#define RCC_CFGR REG(RCC_BASE + 0x08u)
#define RCC_AHB1ENR REG(RCC_BASE + 0x30u)
#define RCC_APB1ENR REG(RCC_BASE + 0x40u)
#define RCC_APB2ENR REG(RCC_BASE + 0x44u)
#define RCC_CSR REG(RCC_BASE + 0x74u)
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
#define USART_CR1_RXNEIE (1u << 5) /* interrupt on RXNE, and on ORE as well */
#define USART_CR1_UE (1u << 13)
#define USART1_IRQN 37u
#define NVIC_ISER(n) REG(0xE000E100u + 4u * (n))

/* Independent watchdog (RM0090 section 21) and its freeze while a debugger halts the core
 * (RM0090 section 38.16, DBGMCU_APB1_FZ). */
#define IWDG_BASE 0x40003000u
#define IWDG_KR REG(IWDG_BASE + 0x00u)
#define IWDG_PR REG(IWDG_BASE + 0x04u)
#define IWDG_RLR REG(IWDG_BASE + 0x08u)
#define IWDG_SR REG(IWDG_BASE + 0x0Cu)
#define IWDG_KEY_START 0xCCCCu
#define IWDG_KEY_ACCESS 0x5555u
#define IWDG_KEY_REFRESH 0xAAAAu
#define DBGMCU_APB1_FZ REG(0xE0042008u)
#define DBG_IWDG_STOP (1u << 12)
/* LSI ~32 kHz / 32 = 1 kHz; 250 counts = 250 ms nominal (170 ms at the LSI's 47 kHz
 * maximum, 471 ms at its 17 kHz minimum). */
#define IWDG_PRESCALER_CODE 3u /* PR = 3: divide by 32 */
#define IWDG_RELOAD 249u
#define WATCHDOG_MS 250u
#define WATCHDOG_REFRESH_HZ 100u /* refresh at most every 10 ms of ticks */

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

static int wait_set(const volatile uint32_t *reg, uint32_t mask, uint32_t value)
{
    uint32_t spins;
    for (spins = 0; spins < READY_SPINS; spins++) {
        if ((*reg & mask) == value) {
            return 1;
        }
    }
    return 0;
}

#ifdef QP_REAL_CLOCK

/* HSE 8 MHz -> PLL (M 8, N 336, P 2, Q 7) -> 168 MHz SYSCLK, AHB /1, APB1 /4, APB2 /2
 * (RM0090 7.3.2). Flash needs 5 wait states at 168 MHz and 2.7-3.6 V (RM0090 3.5.1). */
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

/* ---- watchdog and reset cause ---- */

static uint32_t refresh_period, last_refresh;

/* Started after the clock set-up: a wait there that times out (no crystal, no PLL lock)
 * takes ~0.1 s, most of the shortest timeout. From here on nothing waits unbounded. */
static void watchdog_start(uint32_t tick_hz)
{
    DBGMCU_APB1_FZ |= DBG_IWDG_STOP; /* a core halted by a debugger is not reset */
    IWDG_KR = IWDG_KEY_START;        /* also starts the LSI */
    IWDG_KR = IWDG_KEY_ACCESS;
    IWDG_PR = IWDG_PRESCALER_CODE;
    IWDG_RLR = IWDG_RELOAD;
    (void)wait_set(&IWDG_SR, 3u, 0u); /* PVU, RVU: the new values reached the LSI domain */
    IWDG_KR = IWDG_KEY_REFRESH;
    refresh_period = tick_hz / WATCHDOG_REFRESH_HZ;
    last_refresh = board_ticks();
}

/* Called on every pass of the main loop; writes the key only when 10 ms have passed,
 * which keeps the register traffic (and QEMU's unimplemented-device log) small. */
static void watchdog_refresh(void)
{
    uint32_t now = board_ticks();
    if (now - last_refresh >= refresh_period) {
        IWDG_KR = IWDG_KEY_REFRESH;
        last_refresh = now;
    }
}

/* ---- USART1 ---- */

static qp_ring_t rx_ring;

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
    qp_ring_init(&rx_ring);
    USART1_CR1 = USART_CR1_UE | USART_CR1_TE | USART_CR1_RE | USART_CR1_RXNEIE;
    NVIC_ISER(USART1_IRQN / 32u) = 1u << (USART1_IRQN % 32u);
}

/* One byte per interrupt: the data register holds a single byte, and the next one is
 * complete one character time (10.85 us at 921600 baud) later. Reading SR then DR
 * clears RXNE and ORE (RM0090 30.6.1). With ORE set the byte in DR is still good; the
 * one behind it was lost, which the ring counts. */
void USART1_IRQHandler(void)
{
    uint32_t sr = USART1_SR;
    if ((sr & (USART_SR_RXNE | USART_SR_ORE)) != 0) {
        uint8_t byte = (uint8_t)USART1_DR;
        if ((sr & USART_SR_ORE) != 0) {
            qp_ring_note_overrun(&rx_ring);
        }
        if ((sr & USART_SR_RXNE) != 0) {
            (void)qp_ring_push(&rx_ring, byte);
        }
    }
}

/* Transmit is polled: the receive interrupt keeps filling the ring meanwhile. */
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
    static qp_board_t board = {QP_BUILD_ID, board_ticks, 0, 0, 0, 0, WATCHDOG_MS, &rx_ring};
    uint32_t csr = RCC_CSR;

    RCC_CSR = csr | RCC_CSR_RMVF; /* clear the flags, so the next reset shows only its own */
    board.reset_cause = stm32_reset_cause(csr);
    board.reset_flags = stm32_reset_flags(csr);
    clock_init();
    board.tick_source = ticks_init();
    board.tick_hz = core_hz;
    watchdog_start(core_hz);
    qp_device_init(&device, &board); /* runs the policy self-test: INFO reports it */
    usart1_init();
    /* No WFI: nothing periodic would wake the core to refresh the watchdog (SysTick
     * runs only under QEMU), so an idle board would reset itself. */
    for (;;) {
        size_t n;
        watchdog_refresh();
        n = qp_device_poll(&device, reply);
        if (n > 0) {
            usart1_write(reply, (uint32_t)n);
        }
    }
}
