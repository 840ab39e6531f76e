/* startup: the Cortex-M4 vector table and reset handler for the STM32F405
 * (ARMv7-M ARM §B1.5.3: word 0 is the initial SP, word 1 the reset vector;
 * RM0090 Table 61: 82 peripheral interrupt positions). Copies .data from
 * flash, zeroes .bss, enables the FPU (the code is built for the hard-float
 * ABI), then runs main. No C library start-up code is used (-nostartfiles). */
#include <stdint.h>

#include "stm32_board.h"

#define STM32F405_IRQ_COUNT 82u

/* Coprocessor Access Control Register (ARMv7-M ARM §B3.2.20): CP10/CP11 full access. */
#define SCB_CPACR         (*(volatile uint32_t *)0xE000ED88u)
#define SCB_CPACR_FPU_ALL (0xFu << 20)

typedef void (*stm32_handler_t)(void);

typedef struct {
    uint32_t *initial_sp;
    stm32_handler_t reset;
    stm32_handler_t system[14]; /* NMI .. SysTick */
    stm32_handler_t irq[STM32F405_IRQ_COUNT];
} stm32_vectors_t;

/* Every exception the firmware does not handle yet parks the core here, where
 * a debugger finds it. */
static void stm32_default_handler(void)
{
    for (;;) {
    }
}

#define H  stm32_default_handler
#define H8 H, H, H, H, H, H, H, H

__attribute__((section(".isr_vector"), used)) static const stm32_vectors_t stm32_vectors = {
    .initial_sp = &_estack,
    .reset = Reset_Handler,
    /* NMI, HardFault, MemManage, BusFault, UsageFault, 4 reserved, SVCall,
     * DebugMon, reserved, PendSV, SysTick. Reserved slots stay 0. */
    .system = {H, H, H, H, H, 0, 0, 0, 0, H, H, 0, H, H},
    .irq = {H8, H8, H8, H8, H8, H8, H8, H8, H8, H8, H, H},
};

_Static_assert(sizeof stm32_vectors == 4u * (16u + STM32F405_IRQ_COUNT), "vector table size");

void Reset_Handler(void)
{
    /* Volatile accesses keep the compiler from turning these loops into
     * library calls that would run before .data and .bss exist. */
    volatile uint32_t *dst = &_sdata;
    const volatile uint32_t *src = &_sidata;
    while (dst < &_edata)
        *dst++ = *src++;
    for (dst = &_sbss; dst < &_ebss;)
        *dst++ = 0;

    SCB_CPACR |= SCB_CPACR_FPU_ALL;
    __asm__ volatile("dsb\n\tisb" ::: "memory");

    (void)main();
    for (;;) {
    }
}
