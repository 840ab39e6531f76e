/* pps: Protocol and Parameters Selection (ISO/IEC 7816-3 §9).
 * Pure request builder and response checker, plus the exchange on the line.
 * Cachet never sends PPS2/PPS3 (no SPU, no N change by PPS). */
#ifndef CACHET_PPS_H
#define CACHET_PPS_H

#include <stddef.h>
#include <stdint.h>

#include "icc.h"

/* PPSS PPS0 PPS1 PPS2 PPS3 PCK (§9.2). */
#define PPS_MAX 6
#define PPS_PPSS 0xFFu

/* Builds the request for protocol T (0..14) and bmFindexDindex fidi; PPS1 is
 * included when fidi differs from the default 0x11. */
icc_status_t pps_build(uint8_t protocol, uint8_t fidi, uint8_t out[PPS_MAX],
                       size_t *len);

/* Length of a PPS message whose PPS0 is pps0 (PPSS..PCK). */
size_t pps_length(uint8_t pps0);

/* Checks the card's response against the request (§9.3). On success stores
 * the Fi/Di the card accepted: PPS1 echoed, or the default 0x11 when the
 * card left PPS1 out. ICC_ERR_PPS for any other answer. */
icc_status_t pps_check(const uint8_t *req, size_t req_len, const uint8_t *resp,
                       size_t resp_len, uint8_t *fidi_out);

/* Sends the request and reads the response, each character of the answer
 * within wt_us (the initial waiting time, §9.1). ICC_ERR_ABSENT when the card
 * left, ICC_ERR_PPS on silence or a wrong answer. */
icc_status_t pps_exchange(uint8_t protocol, uint8_t fidi, uint64_t wt_us,
                          uint8_t *fidi_out);

#endif
