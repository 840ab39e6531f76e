/* card_link: the card side of ISO/IEC 7816-3 for the virtual card.
 *
 * Owns the answer to reset (§8), PPS (§9), T=0 (§10: procedure bytes, 61xx /
 * GET RESPONSE in chunks of at most 0xE7 bytes, 6Cxx) and T=1 (§11: blocks,
 * chaining both ways, R-blocks, S(RESYNCH/IFS/ABORT/WTX), LRC). It is a pure
 * state machine: characters from the reader go in through card_link_rx, every
 * frame the card puts on I/O comes out through the emit callback, tagged with
 * the compute delay that precedes it in the timing model. Complete commands go
 * to the applet (card_applet_process). No I/O, no clock. */
#ifndef CACHET_CARD_LINK_H
#define CACHET_CARD_LINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "card_applet.h"

#define CARD_ATR_MAX        33   /* TS + 32 characters (§8.2.1) */
#define CARD_T0_GETRESP_MAX 0xE7 /* CPx: at most 231 bytes per T=0 response */

/* The compute delay (timing model) that precedes an emitted frame. */
typedef enum {
    CARD_DELAY_NONE = 0, /* procedure bytes, ATR, PPS, link-level blocks */
    CARD_DELAY_FAST,     /* answer to an ordinary command */
    CARD_DELAY_RSA,      /* answer to a private-key operation */
} card_delay_t;

/* One frame on I/O from the card. false = the connection is gone. */
typedef bool (*card_emit_fn)(void *ctx, const uint8_t *buf, size_t len, card_delay_t delay);
/* Every command the card executed (GET RESPONSE included). rdata excludes SW. */
typedef void (*card_log_fn)(void *ctx, const uint8_t *capdu, size_t clen, const uint8_t *rdata,
                            size_t rlen, uint16_t sw);

/* What the card learns from its own ATR. */
typedef struct {
    bool offers_t0, offers_t1;
    int first_protocol; /* protocol used when no PPS is made */
    bool has_ta1;
    uint8_t ta1;      /* Fi/Di index pair (default 0x11) */
    uint8_t wi;       /* T=0 TC2 (default 10) */
    uint8_t ifsc;     /* T=1 first TA after a T=1 TD (default 32) */
    uint8_t bwi, cwi; /* T=1 first TB after a T=1 TD (defaults 4, 13) */
} card_atr_info_t;

/* Parses an ATR (§8.2): checks T0's interface bytes against the length, the
 * historical bytes and TCK (present unless only T=0 is offered). */
bool card_atr_parse(const uint8_t *atr, size_t len, card_atr_info_t *out);

/* F and D from the Fi/Di indices (§7.1 Tables 7 and 8); 0 when RFU. */
uint16_t card_fi_value(uint8_t fi_index);
uint8_t card_di_value(uint8_t di_index);

typedef struct {
    card_applet_t *applet;
    const uint8_t *atr;
    size_t atr_len;
    card_emit_fn emit;
    void *emit_ctx;
    card_log_fn log; /* may be NULL */
    void *log_ctx;
    uint8_t wtx_multiplier; /* INF of S(WTX request) before RSA commands (T=1), >= 1 */
} card_link_config_t;

typedef struct card_link card_link_t;

/* NULL when the ATR does not parse or out of memory. */
card_link_t *card_link_new(const card_link_config_t *cfg);
void card_link_free(card_link_t *l);

/* Cold or warm reset done (VCC on, RST released): resets every volatile state
 * (link and applet) and sends the ATR. false = emit failed. */
bool card_link_activate(card_link_t *l);

/* VCC off or RST asserted: volatile state reset, the card goes mute. */
void card_link_deactivate(card_link_t *l);

/* Characters from the reader. false = emit failed (connection gone). */
bool card_link_rx(card_link_t *l, const uint8_t *buf, size_t n);

bool card_link_active(const card_link_t *l);

/* Protocol in force (0 or 1; before any command, the first offered). */
int card_link_protocol(const card_link_t *l);

/* F and D in force (372/1 until a PPS changes them). */
void card_link_fd(const card_link_t *l, uint16_t *f, uint8_t *d);

/* T=0 work waiting time WT = 960 · WI · Fi clock cycles (§10.2), or T=1
 * block waiting time BWT - 11 etu = 2^BWI · 960 · 372 clock cycles (§11.4.3). */
uint32_t card_link_wait_clocks(const card_link_t *l);

/* Changes the INF of S(WTX request) (timing model: depends on the clock). */
void card_link_set_wtx_multiplier(card_link_t *l, uint8_t m);

/* The ATR information of this card. */
const card_atr_info_t *card_link_atr_info(const card_link_t *l);

#endif
