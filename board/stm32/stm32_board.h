/* stm32_board: private declarations of board/stm32 (startup, linker symbols). */
#ifndef CACHET_STM32_BOARD_H
#define CACHET_STM32_BOARD_H

#include <stdint.h>

/* Symbols of stm32f405.ld: initial stack pointer, .data image in flash and its
 * place in RAM, .bss bounds. Only their addresses are meaningful. */
extern uint32_t _estack;
extern uint32_t _sidata;
extern uint32_t _sdata;
extern uint32_t _edata;
extern uint32_t _sbss;
extern uint32_t _ebss;

/* Entry point after reset (vector table slot 1). */
void Reset_Handler(void);

/* The firmware's main loop (main.c). */
int main(void);

#endif
