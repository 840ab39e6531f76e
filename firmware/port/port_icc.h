/* port_icc: the card contacts (ISO/IEC 7816-3 §5: VCC, RST, CLK, I/O) and the
 * presence switch. The firmware's icc module is the only caller.
 *
 * Contract: thread context only (not ISR-safe). port_icc_send and
 * port_icc_recv block, at most for the time they state. Characters are bytes
 * in the direct convention (the board's UART inverts for an inverse-convention
 * card; icc tells it which through port_icc_set_convention). */
#ifndef CACHET_PORT_ICC_H
#define CACHET_PORT_ICC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "port_status.h"

/* True when a card sits in the slot (presence switch). Never blocks. */
bool port_icc_present(void);

/* Supply voltage on or off (ISO/IEC 7816-3 §6.2 activation/deactivation). */
void port_icc_vcc(bool on);

/* RST line: high = released (card may answer with its ATR), low = reset. */
void port_icc_rst(bool high);

/* Card clock in Hz; 0 stops the clock. */
void port_icc_clock(uint32_t hz);

/* Character timing after PPS: F (clock rate conversion integer) and D (baud
 * rate adjustment integer), ISO/IEC 7816-3 §7.1; etu = F / (D * f).
 * extra_guard_etu is N from TC1 (0..254; 255 means the minimum). */
void port_icc_set_timing(uint16_t f, uint8_t d, uint8_t extra_guard_etu);

/* Inverse convention (TS = 3F) or direct (3B). */
void port_icc_set_convention(bool inverse);

/* Sends len characters on I/O; blocks until they are on the wire.
 * PORT_ABSENT when the card left. */
port_status_t port_icc_send(const uint8_t *buf, size_t len);

/* Receives one character, waiting at most timeout_us microseconds.
 * PORT_TIMEOUT when the card stayed silent, PORT_ABSENT when it left. */
port_status_t port_icc_recv(uint8_t *byte, uint32_t timeout_us);

/* Drops any character already received (before activation, after errors). */
void port_icc_flush(void);

#endif
