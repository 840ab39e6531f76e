/* t1: the T=1 block protocol, interface device side (ISO/IEC 7816-3 §11):
 * I-blocks with send/receive sequence numbers, chaining both ways (command
 * split at IFSC, response chains acknowledged with R-blocks), S(IFS) with the
 * reader's IFSD as the first exchange (CCID "automatic IFSD exchange"),
 * S(WTX), and error recovery per §11.6.3: R-blocks asking for retransmission,
 * then S(RESYNCH), then giving up. Block format in t1_block.h. */
#ifndef CACHET_T1_H
#define CACHET_T1_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "icc.h"

/* The reader's IFSD: the largest INF it accepts (§11.4.2, max 254). */
#define T1_IFSD 254u
/* §11.6.3.2: a block is retransmitted (or an R-block sent) at most this many
 * times in a row, then S(RESYNCH request) is tried at most this many times. */
#define T1_RETRIES_MAX 3u
#define T1_RESYNCH_MAX 3u

/* Link state that outlives one APDU. */
typedef struct {
    uint8_t ns;            /* N(S) of the reader's next I-block */
    uint8_t nr;            /* N(S) expected in the card's next I-block */
    uint8_t ifsc;          /* card's IFS in force */
    uint8_t ifsc_initial;  /* from the ATR / parameters, restored by resync */
    uint8_t ifsd;          /* reader's IFS, announced by S(IFS request) */
    uint8_t nad;
    bool crc;              /* EDC: CRC, else LRC */
    bool ifsd_pending;     /* S(IFS request) still to be sent */
    bool resynch_pending;  /* link out of step: S(RESYNCH request) first */
    uint64_t bwt_us;       /* BWT = 11 etu + 2^BWI * 960 * 372 / f (§11.4.3) */
    uint64_t cwt_us;       /* CWT = (11 + 2^CWI) etu (§11.4.3) */
    icc_wait_hook_t hook;  /* called on S(WTX request) */
    void *hook_ctx;
} t1_link_t;

/* New link after activation or new parameters: sequence numbers 0, IFSD
 * negotiation pending. Timing, IFSC, NAD and EDC are set by the caller. */
void t1_link_reset(t1_link_t *l, uint8_t ifsc, uint8_t nad, bool crc);

/* Exchanges one APDU (1..ICC_CAPDU_MAX bytes) and returns the response.
 * ICC_ERR_MUTE when the card never answered through the whole recovery,
 * ICC_ERR_PROTOCOL when recovery failed otherwise or the card aborted,
 * ICC_ERR_OVERRUN when the response exceeds rcap (the link is resynchronised
 * at the next exchange), ICC_ERR_ABSENT when the card left. */
icc_status_t t1_transceive(t1_link_t *l, const uint8_t *capdu, size_t clen,
                           uint8_t *rapdu, size_t rcap, size_t *rlen);

#endif
