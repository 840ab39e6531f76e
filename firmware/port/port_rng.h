/* port_rng: the board's true random number generator (STM32F405: the RNG
 * peripheral, RM0090 §24; board/posix: getrandom(2)). The firmware's crypto
 * layer is the only caller (device key generation, ECDSA blinding).
 *
 * Contract: thread context only, not ISR-safe. Blocks until len bytes were
 * produced (the device's RNG gives 32 bits every ~40 clock cycles of its 48 MHz
 * clock); returns PORT_ERROR when the generator failed its health checks (seed
 * or clock error): the caller must not use buf then. */
#ifndef CACHET_PORT_RNG_H
#define CACHET_PORT_RNG_H

#include <stddef.h>
#include <stdint.h>

#include "port_status.h"

/* Fills buf with len random bytes. */
port_status_t port_rng_fill(uint8_t *buf, size_t len);

#endif
