/* ifd_atr: what the host needs from an ATR (ISO/IEC 7816-3 §8) to choose the
 * transmission parameters it sends with PC_to_RDR_SetParameters (CCID rev 1.1
 * §6.1.7), and the command timeout those parameters imply. Pure functions;
 * fuzzed by tests/fuzz/ifd_rdr. */
#ifndef CACHET_IFD_ATR_H
#define CACHET_IFD_ATR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ifd_desc.h"
#include "ifd_util.h"

#define IFD_ATR_MAX    33u /* ISO/IEC 7816-3 §8.2.1: TS + 32 characters */
#define IFD_ATR_GROUPS 8u

typedef struct {
    bool inverse;        /* TS = 3F */
    uint8_t protocols;   /* bit n: T=n offered (n < 8), T=15 ignored */
    uint8_t first_proto; /* protocol of TD1 (0 if absent) */
    bool has_ta1;
    uint8_t ta1;
    bool has_tc1;
    uint8_t tc1;
    bool has_ta2; /* specific mode (§8.3 TA2) */
    uint8_t ta2;
    bool has_tc2;
    uint8_t tc2;    /* WI for T=0 */
    bool has_t1_ta; /* first TA(i), i ≥ 3, after TD(i-1) T=1: IFSC */
    uint8_t t1_ta;
    bool has_t1_tb; /* BWI/CWI */
    uint8_t t1_tb;
    bool has_t1_tc; /* bit 0: CRC */
    uint8_t t1_tc;
    bool has_t15_ta; /* clock stop indicator XI (bits 8-7), class UI */
    uint8_t t15_ta;
    uint8_t hist_len;
    bool tck_ok; /* TCK absent when not needed, or correct */
} ifd_atr_t;

/* Parses an ATR; IFD_ST_PROTO when it is truncated or malformed. A wrong TCK
 * is reported in tck_ok but not rejected: the reader already accepted it. */
ifd_st_t ifd_atr_parse(const uint8_t *atr, size_t len, ifd_atr_t *out);

/* Fi and Di from an Fi/Di byte (ISO/IEC 7816-3 §8.3 Tables 7 and 8); 0 = RFU. */
uint32_t ifd_atr_fi(uint8_t fidi);
uint32_t ifd_atr_di(uint8_t fidi);

/* The abProtocolDataStructure of SetParameters (CCID rev 1.1 §6.1.7). */
typedef struct {
    uint8_t protocol;   /* 0 or 1 */
    uint8_t fidi;       /* bmFindexDindex */
    uint8_t tcckst;     /* bmTCCKST0 / bmTCCKST1 */
    uint8_t guard_time; /* bGuardTimeT0/T1: TC1 */
    uint8_t waiting;    /* T=0 bWaitingIntegerT0 (WI), T=1 bWaitingIntegersT1 (BWI<<4|CWI) */
    uint8_t clock_stop; /* bClockStop */
    uint8_t ifsc;       /* T=1 bIFSC */
    uint8_t nad;        /* T=1 bNadValue */
} ifd_params_t;

/* Chooses the parameters for protocol (0 or 1) on this reader:
 *  - the protocol must be offered by the card and by the reader (dwProtocols);
 *    in specific mode (TA2) it must be TA2's protocol;
 *  - Fi/Di: TA1's (or pts1's if pts1 ≥ 0) when the card is faster than the
 *    default, the reader can go that fast (dwMaxDataRate at dwDefaultClock)
 *    and it can be reached: specific mode without implicit values, or the
 *    reader performs PPS itself (dwFeatures 0x80 or 0x40); a lower Di of the
 *    same Fi if TA1 is too fast for the reader; else the default 0x11;
 *  - without automatic PPS, only the card's first offered protocol works.
 * *send is false when the reader negotiates alone (dwFeatures 0x40): the
 * host must not send SetParameters then. IFD_ST_UNSUPPORTED otherwise. */
ifd_st_t ifd_params_choose(const ifd_atr_t *atr, const ifd_ccid_desc_t *desc, uint8_t protocol,
                           int pts1, ifd_params_t *out, bool *send);

/* Serialises p as abProtocolDataStructure: 5 bytes for T=0, 7 for T=1. */
size_t ifd_params_encode(const ifd_params_t *p, uint8_t out[7]);

/* Parameters the card works with right after its ATR (default Fi/Di, first
 * offered protocol, WI/BWI from the ATR), for the timeouts before any
 * SetParameters. */
void ifd_params_default(const ifd_atr_t *atr, ifd_params_t *out);

/* Command timeout in ms: the larger of 10 s and three times the card's
 * waiting time (T=0 WT = WI·960·Fi/f, ISO/IEC 7816-3 §10.2; T=1 BWT =
 * 11 etu + 2^BWI·960·372/f, §11.4.3) plus the wire time of a largest short
 * APDU exchange (12 etu per character). */
uint32_t ifd_params_timeout_ms(const ifd_params_t *p, uint32_t clock_khz);

#endif
