/* icc_line (private to firmware/icc): the I/O line as the protocol modules see
 * it. Wraps port_icc_send/recv with the statistics of icc_get_stats(), the
 * turnaround guard between a received and the next sent character
 * (ISO/IEC 7816-3 §7.2: 16 etu for T=0, §11.2 BGT: 22 etu for T=1), timeouts
 * longer than port_icc_recv's 32-bit microseconds, etu arithmetic and the
 * rate limit of the wait hook. */
#ifndef CACHET_ICC_LINE_H
#define CACHET_ICC_LINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "icc.h"

/* The wait hook is called at most once per ICC_WAIT_HOOK_PERIOD_US for T=0
 * NULL procedure bytes (a card may send many per second); the first NULL
 * byte of an exchange and every S(WTX request) always call it. */
#define ICC_WAIT_HOOK_PERIOD_US 200000u

/* Resets the counters and the line timing state (icc_init). */
void icc_line_reset(void);

/* Sends len characters, first waiting out the turnaround guard since the
 * last character received. ICC_ERR_ABSENT / ICC_ERR_PARITY on port errors. */
icc_status_t icc_line_send(const uint8_t *buf, size_t len);

/* Receives one character within timeout_us. ICC_ERR_MUTE on timeout,
 * ICC_ERR_ABSENT when the card left, ICC_ERR_PARITY on a line error. */
icc_status_t icc_line_recv(uint8_t *byte, uint64_t timeout_us);

/* Drops characters until the line stays silent for silence_us (at most
 * max_chars are read). ICC_ERR_ABSENT when the card left, else ICC_OK. */
icc_status_t icc_line_drain(uint64_t silence_us, size_t max_chars);

/* Minimum time between the last character received and the next sent. */
void icc_line_set_turnaround(uint64_t us);

/* Forgets the time of the last character received (new activation). */
void icc_line_forget_rx(void);

/* Busy-waits us microseconds on port_time_us (activation timings). */
void icc_line_delay_us(uint64_t us);

/* Counts one APDU exchange. */
void icc_line_count_apdu(void);

/* Copies the counters. */
void icc_line_get_stats(icc_stats_t *out);

/* Time of n etu in microseconds, rounded up: etu = F / (D * f) (§7.1). */
uint64_t icc_etu_us(uint64_t n, uint16_t f, uint8_t d, uint32_t clock_hz);

/* Time of n clock cycles in microseconds, rounded up. */
uint64_t icc_clocks_us(uint64_t n, uint32_t clock_hz);

/* Marks the start of an exchange for the wait hook rate limit. */
void icc_line_wait_begin(void);

/* Calls hook(ctx) unless it was called less than ICC_WAIT_HOOK_PERIOD_US ago
 * in this exchange (force: call anyway). hook may be NULL. */
void icc_line_wait_notify(icc_wait_hook_t hook, void *ctx, bool force);

#endif
