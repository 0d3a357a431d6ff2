/* Cortex-M4 startup for the STM32F405: vector table and Reset_Handler.
 *
 * Reset_Handler enables the FPU before any floating-point instruction can run (QEMU
 * and silicon both fault on a VFP instruction with CP10/CP11 disabled), copies .data
 * from flash, zeroes .bss and calls main. The table lists the 16 system exceptions and
 * the F405's 82 peripheral interrupts (RM0090 section 12.1.3); only USART1
 * (IRQ 37) is enabled, every other entry parks in Default_Handler.
 */
#include <stdint.h>

extern uint32_t _sidata, _sdata, _edata, _sbss, _ebss, _estack;
extern int main(void);
extern void SysTick_Handler(void);
extern void USART1_IRQHandler(void);

#define SCB_CPACR (*(volatile uint32_t *)0xE000ED88u)

void Reset_Handler(void);
void Default_Handler(void);

void Reset_Handler(void)
{
    /* Sizes from addresses, so the loops never compare pointers to distinct objects. */
    uint32_t data_words = (uint32_t)((uintptr_t)&_edata - (uintptr_t)&_sdata) / 4u;
    uint32_t bss_words = (uint32_t)((uintptr_t)&_ebss - (uintptr_t)&_sbss) / 4u;
    const uint32_t *src = &_sidata;
    uint32_t *data = &_sdata;
    uint32_t *bss = &_sbss;
    uint32_t i;

    SCB_CPACR |= 0xFu << 20; /* CP10 and CP11: full access */
    __asm__ volatile("dsb\n\tisb" ::: "memory");

    for (i = 0; i < data_words; i++) {
        data[i] = src[i];
    }
    for (i = 0; i < bss_words; i++) {
        bss[i] = 0;
    }
    main();
    for (;;) {
    }
}

/* Faults and unexpected exceptions park here, where a debugger can find them. */
void Default_Handler(void)
{
    for (;;) {
    }
}

typedef void (*handler_t)(void);

#define IRQS 82u

/* Word 0 is the initial stack pointer, then 15 system exception handlers, then IRQs. */
typedef struct {
    uint32_t *initial_sp;          /* cppcheck-suppress unusedStructMember ; read by the core */
    handler_t handlers[15];        /* cppcheck-suppress unusedStructMember */
    handler_t irq[IRQS];           /* cppcheck-suppress unusedStructMember */
} vector_table_t;

#define D Default_Handler
#define D8 D, D, D, D, D, D, D, D

__attribute__((section(".isr_vector"), used)) static const vector_table_t vectors = {
    &_estack,
    {
        Reset_Handler,
        Default_Handler, /* NMI */
        Default_Handler, /* HardFault */
        Default_Handler, /* MemManage */
        Default_Handler, /* BusFault */
        Default_Handler, /* UsageFault */
        0, 0, 0, 0,      /* reserved */
        Default_Handler, /* SVCall */
        Default_Handler, /* DebugMonitor */
        0,               /* reserved */
        Default_Handler, /* PendSV */
        SysTick_Handler,
    },
    {
        D8, D8, D8, D8, D, D, D, D, D, /* IRQ 0-36 */
        USART1_IRQHandler,              /* IRQ 37 */
        D8, D8, D8, D8, D8, D, D, D, D, /* IRQ 38-81 */
    },
};
