/* card_native: extras of the native CPx backend (card_native.c) beyond card.h —
 * APDU counters for the card-line benchmark, and a way to wake the monitor. */
#ifndef CACHET_CARD_NATIVE_H
#define CACHET_CARD_NATIVE_H

#include <stdbool.h>
#include <stdint.h>

#include "card.h"

/* What crossed PC/SC since card_native_open or the last card_native_stats_reset.
 * An "APDU" is one SCardTransmit (a GET RESPONSE or a 6Cxx re-send we issue is
 * one more); PIN-pad verifications (SCardControl) are counted apart. */
typedef struct {
    uint64_t apdus;          /* SCardTransmit calls */
    uint64_t bytes_sent;     /* command APDU bytes */
    uint64_t bytes_received; /* response bytes, SW1 SW2 included */
    uint64_t transactions;   /* SCardBeginTransaction that succeeded */
    uint64_t controls;       /* SCardControl calls that reach the card (PIN pad) */
} card_native_stats_t;

/* Fills out; false when b is not a native backend. Any thread (counters are atomic). */
bool card_native_stats(card_backend_t *b, card_native_stats_t *out);
void card_native_stats_reset(card_backend_t *b);

/* Makes a wait_event blocked in the monitor thread return CARD_ERR_CANCELLED
 * at once (SCardCancel on the monitor's context). Any thread; call it, then
 * join the monitor, before close. */
void card_native_cancel_wait(card_backend_t *b);

#endif
