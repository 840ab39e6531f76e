/* icc_fuzz_port: port_icc.h / port_time.h for the icc fuzz targets (atr, t0,
 * t1). The card answers every RST rising edge with a fixed ATR, then sends
 * the fuzz input, one character per receive; when the input is exhausted it
 * stays silent (virtual time advances by the timeout). With escapes on, the
 * byte FD introduces a command: FD 00 = a literal FD, FD 01 = one timeout,
 * FD 02 = the card leaves. Whatever the reader sends is accepted. */
#ifndef CACHET_ICC_FUZZ_PORT_H
#define CACHET_ICC_FUZZ_PORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

void icc_fuzz_port_reset(const uint8_t *atr, size_t atr_len,
                         const uint8_t *stream, size_t stream_len, bool escapes);

/* Characters the reader sent since the reset. */
size_t icc_fuzz_port_sent(void);

#endif
