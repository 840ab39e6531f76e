/* atr: the Answer-To-Reset (ISO/IEC 7816-3 §8) as a pure parser.
 * Owns the structure walk (TS, T0, TAi/TBi/TCi/TDi, historical bytes, TCK),
 * the meaning of the global and protocol-specific interface bytes, the
 * "how many more characters" helper used while the ATR arrives, and the
 * Fi/f(max) and Di tables (ISO/IEC 7816-3 §8.3, Tables 7 and 8).
 * No I/O: icc.c receives the characters, this module only reads buffers. */
#ifndef CACHET_ATR_H
#define CACHET_ATR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "icc.h"

/* Historical bytes: at most 15 (K is a nibble of T0). */
#define ATR_HIST_MAX 15

/* Defaults when the interface byte is absent (ISO/IEC 7816-3 §8.3, §10.2, §11.4). */
#define ATR_DEFAULT_FIDI 0x11u /* Fi index 1 (372, 5 MHz), Di index 1 (1) */
#define ATR_DEFAULT_WI 10u
#define ATR_DEFAULT_IFSC 32u
#define ATR_DEFAULT_BWI 4u
#define ATR_DEFAULT_CWI 13u

typedef struct atr_info {
    uint8_t raw[ICC_ATR_MAX]; /* the ATR as received (TS normalised to 3B/3F) */
    size_t len;

    bool inverse; /* TS = 3F */
    uint8_t t0;

    /* Global interface bytes (§8.3). fi_index/di_index hold TA1 or the defaults. */
    bool ta1_present;
    bool ta1_valid;        /* TA1 absent, or Fi and Di both defined (not RFU) */
    uint8_t fi_index;      /* high nibble of TA1 */
    uint8_t di_index;      /* low nibble of TA1 */
    uint16_t fi;           /* Table 7 */
    uint8_t di;            /* Table 8 */
    uint32_t fmax_hz;      /* Table 7 */
    bool tb1_present;
    uint8_t tb1;           /* deprecated VPP byte, kept for the record */
    uint8_t extra_guard;   /* TC1 = N (0..255), default 0 */

    /* TA2: specific mode (§7.3, §8.3). */
    bool specific;          /* TA2 present */
    uint8_t specific_proto; /* T of TA2 */
    bool specific_can_change; /* TA2 b8 = 0 */
    bool specific_implicit;   /* TA2 b5 = 1: Fi/Di implicit, not those of TA1 */

    /* T=0 (§10.2): TC2 = WI, default 10 (0 is RFU and maps to the default). */
    uint8_t wi;

    /* T=1 (§11.4), the TAi/TBi/TCi (i > 2) after the first TD(i-1) saying T=1. */
    uint8_t ifsc; /* TA: 1..254, default 32 (00 and FF are RFU: default used) */
    uint8_t bwi;  /* TB high nibble: 0..9, default 4 (RFU values: default used) */
    uint8_t cwi;  /* TB low nibble: 0..15, default 13 */
    bool crc;     /* TC b1: CRC, else LRC */

    /* T=15 (§8.3): first TA after the first TD saying T=15. */
    bool t15_present;
    uint8_t clock_stop; /* XI, 0..3 (CCID bClockStop) */
    uint8_t class_ind;  /* UI */

    uint16_t protocols;     /* bit T set for every T in a TDi (T=0 when no TD1) */
    uint8_t first_protocol; /* T of TD1, or 0 */

    bool tck_present;
    uint8_t hist_len;
    uint8_t hist[ATR_HIST_MAX];
} atr_info_t;

/* Parses a complete ATR (TS first). ICC_ERR_BAD_ATR_TS when TS is neither 3B
 * nor 3F; ICC_ERR_BAD_ATR_TCK when the structure does not end exactly at len,
 * or TCK is missing/wrong where §8.2.5 requires it. */
icc_status_t atr_parse(const uint8_t *buf, size_t len, atr_info_t *out);

/* While receiving: given the first len characters of an ATR, stores in *more
 * how many characters are at least still needed (0 = complete). Call again
 * after receiving them: each TDi reveals more. ICC_ERR_BAD_ATR_TS on a bad TS,
 * ICC_ERR_BAD_ATR_TCK when the ATR would exceed ICC_ATR_MAX or len exceeds
 * the length the structure announces. */
icc_status_t atr_remaining(const uint8_t *buf, size_t len, size_t *more);

/* ISO/IEC 7816-3 Table 7 (Fi and f(max)) and Table 8 (Di); 0 for RFU values. */
uint16_t atr_fi(uint8_t fi_index);
uint32_t atr_fmax_hz(uint8_t fi_index);
uint8_t atr_di(uint8_t di_index);

#endif
