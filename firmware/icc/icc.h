/* icc: the reader side of ISO/IEC 7816-3 for the one card slot.
 * Owns activation/deactivation (§6.2, §6.4), the ATR (§8, via atr.h), PPS (§9),
 * T=0 (§10, TPDU mapping §12.2 incl. procedure bytes, 61xx, 6Cxx) and T=1
 * (§11: IFSD negotiation, chaining, WTX, resynchronisation).
 *
 * Single slot, module-level state (no heap): call icc_init() once at boot.
 * Every call blocks until the card answered or its waiting time ran out; while
 * the card asks for more time (T=0 NULL byte 0x60, T=1 S(WTX request)) the wait
 * hook is called so the CCID layer can send a time extension to the host. */
#ifndef CACHET_ICC_H
#define CACHET_ICC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    ICC_OK = 0,
    ICC_ERR_ABSENT,       /* no card in the slot */
    ICC_ERR_NOT_POWERED,  /* command needs an active card */
    ICC_ERR_MUTE,         /* card did not answer within its waiting time */
    ICC_ERR_BAD_ATR_TS,   /* first ATR character is neither 3B nor 3F */
    ICC_ERR_BAD_ATR_TCK,  /* ATR malformed or check byte wrong */
    ICC_ERR_PROTOCOL,     /* card broke the protocol (bad procedure byte, bad block) */
    ICC_ERR_PARITY,       /* character error signalled by the line */
    ICC_ERR_OVERRUN,      /* answer longer than the caller's buffer */
    ICC_ERR_BAD_PARAM,    /* bad argument (APDU too short or too long, bad Fi/Di) */
    ICC_ERR_PPS,          /* card refused or garbled the PPS exchange */
    ICC_ERR_NOT_SUPPORTED,/* protocol or parameter the reader does not do */
} icc_status_t;

enum { ICC_PROTO_T0 = 0, ICC_PROTO_T1 = 1 };

/* Largest ATR (ISO/IEC 7816-3 §8.2.1: TS + 32 characters). */
#define ICC_ATR_MAX 33
/* Largest short APDU command (4 header + Lc + 255 data + Le) and response. */
#define ICC_CAPDU_MAX 261
#define ICC_RAPDU_MAX 258

/* Default card clock: 5 MHz, the fastest a CPS3 allows (spec/perf.md). */
#define ICC_DEFAULT_CLOCK_HZ 5000000u

/* Transmission parameters, laid out like the CCID abProtocolDataStructure
 * (CCID rev 1.1 §6.1.7, Table 6.1-6/6.1-7) so the CCID layer maps them 1:1. */
typedef struct {
    uint8_t protocol;      /* ICC_PROTO_T0 or ICC_PROTO_T1 */
    uint8_t fidi;          /* bmFindexDindex: Fi index high nibble, Di index low */
    uint8_t tcckst;        /* bmTCCKST0/1: bit1 convention, T=1 bit0 CRC (else LRC) */
    uint8_t guard_time;    /* bGuardTimeT0/T1: TC1 (extra guard time N) */
    uint8_t waiting;       /* T=0: bWaitingIntegerT0 (WI, TC2, default 10);
                              T=1: bWaitingIntegersT1 (BWI<<4 | CWI, TB3) */
    uint8_t clock_stop;    /* bClockStop */
    uint8_t ifsc;          /* T=1 only: bIFSC */
    uint8_t nad;           /* T=1 only: bNadValue */
} icc_params_t;

/* Called while the card keeps asking for more time (at most once per request).
 * T=0 NULL bytes: the first of an exchange, then at most once per 200 ms
 * (a card may send many per second); T=1: every S(WTX request). */
typedef void (*icc_wait_hook_t)(void *ctx);

/* Resets the module state; the card is left unpowered. */
void icc_init(void);

/* Card presence from the slot switch (never blocks). */
bool icc_present(void);

/* True between a successful icc_power_on and icc_power_off/removal. */
bool icc_powered(void);

/* Cold reset (or warm reset if already powered): activates the contacts, reads
 * and checks the ATR, sets the default parameters it implies (default F/D;
 * first offered protocol). Copies the ATR to atr (cap >= ICC_ATR_MAX). */
icc_status_t icc_power_on(uint8_t *atr, size_t cap, size_t *atr_len);

/* Deactivates the contacts (ISO/IEC 7816-3 §6.4). Always succeeds. */
void icc_power_off(void);

/* Current transmission parameters (valid after power on). */
icc_status_t icc_get_params(icc_params_t *out);

/* The parameters the ATR proposes (TA1 Fi/Di, first offered protocol or the
 * specific mode's, WI or BWI/CWI/IFSC/EDC, TC1): what a CCID reader with
 * automatic parameter negotiation passes to icc_set_params. Valid after power on. */
icc_status_t icc_params_from_atr(icc_params_t *out);

/* Applies new parameters: if protocol or Fi/Di differ from the current ones,
 * performs PPS (§9) first; for T=1 the first exchange afterwards negotiates
 * IFSD. ICC_ERR_PPS leaves the card unpowered (the host must reset it). */
icc_status_t icc_set_params(const icc_params_t *want);

/* Exchanges one short APDU (ISO/IEC 7816-4 §5.1) with the card using the
 * current protocol, and returns the response APDU (data + SW1 SW2). */
icc_status_t icc_transceive(const uint8_t *capdu, size_t clen, uint8_t *rapdu,
                            size_t rcap, size_t *rlen);


/* Installs the hook called while the card asks for more time. */
void icc_set_wait_hook(icc_wait_hook_t hook, void *ctx);

/* Current card clock in Hz (ICC_DEFAULT_CLOCK_HZ unless changed). */
uint32_t icc_clock_hz(void);

/* Counters since boot, for benchmarks and the control channel. */
typedef struct {
    uint32_t apdus;        /* APDUs exchanged */
    uint32_t chars_sent;   /* characters sent on I/O */
    uint32_t chars_recv;   /* characters received on I/O */
    uint64_t wire_us;      /* time spent waiting on or sending to the line */
} icc_stats_t;
void icc_get_stats(icc_stats_t *out);

#endif
