/* gate_apdu: the gate's pure APDU classifier (no state, no I/O; fuzzed by
 * tests/fuzz/gate_apdu). It tells which command APDUs touch a private key and
 * pulls out what the gate needs: the MSE SET control reference template and
 * its key and algorithm references (ISO/IEC 7816-4 §7.5.11, IAS-ECC), the
 * PSO HASH data objects (tag 90 state or hash, tag 80 message;
 * shared/spec/cpx-card.md §10.3), the PSO COMPUTE DIGITAL SIGNATURE hash,
 * the INTERNAL AUTHENTICATE / PSO DECIPHER data.
 *
 * Fail closed: a key command the classifier cannot read exactly (extended or
 * malformed lengths, chaining where the gate must see the whole command,
 * secure messaging, ENVELOPE, GENERAL AUTHENTICATE) is GATE_APDU_REFUSE with
 * the status word to answer, and never reaches the card. */
#ifndef CACHET_GATE_APDU_H
#define CACHET_GATE_APDU_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Card key references (shared/spec/cpx-card.md part A item 2). */
#define GATE_KEY_SIG 0x81u
#define GATE_KEY_AUT 0x82u

/* Control reference templates (MSE SET P2, ISO/IEC 7816-4 Table 79). */
#define GATE_CRT_AT  0xA4u /* authentication: INTERNAL AUTHENTICATE */
#define GATE_CRT_HT  0xAAu /* hash: PSO HASH */
#define GATE_CRT_DST 0xB6u /* digital signature: PSO CDS */
#define GATE_CRT_CT  0xB8u /* confidentiality: PSO DECIPHER */

/* IAS-ECC algorithm references (cpx-card.md §10.4). */
#define GATE_ALG_SHA1   0x10u
#define GATE_ALG_SHA256 0x40u

typedef enum {
    GATE_APDU_PASS = 0,     /* no private key involved: straight to the card */
    GATE_APDU_MSE_SET,      /* MSE SET (P1 low nibble 1) with readable data */
    GATE_APDU_MSE_OTHER,    /* MSE RESTORE/STORE/ERASE: the environment becomes unknown */
    GATE_APDU_PSO_HASH,     /* 2A 90 A0 */
    GATE_APDU_PSO_CDS,      /* 2A 9E 9A */
    GATE_APDU_INT_AUTH,     /* 88 00 00 */
    GATE_APDU_PSO_DECIPHER, /* 2A 80 86 (may be chained: CLA bit 0x10) */
    GATE_APDU_REFUSE,       /* refuse_sw answers it; nothing goes to the card */
} gate_apdu_kind_t;

typedef struct {
    gate_apdu_kind_t kind;
    uint8_t cla, ins, p1, p2;
    bool chained;        /* CLA bit 0x10: more blocks follow (ISO/IEC 7816-4 §5.1.1) */
    const uint8_t *data; /* command data field (NULL when lc == 0) */
    size_t lc;
    bool has_le;
    /* MSE SET */
    uint8_t crt;  /* = P2 */
    bool has_key; /* tag 83 or 84 */
    uint8_t key;
    bool has_alg; /* tag 80 */
    uint8_t alg;
    /* PSO HASH: tag 90 (state || bit counter, or the hash) and tag 80 (message) */
    bool has_state;
    const uint8_t *state;
    size_t state_len;
    bool has_msg;
    const uint8_t *msg;
    size_t msg_len;
    /* GATE_APDU_REFUSE */
    uint16_t refuse_sw;
} gate_apdu_t;

/* Classifies one command APDU (short APDU, at most 261 bytes). Pointers in
 * out point into capdu. Never fails: unreadable key commands are REFUSE,
 * anything else unreadable is PASS (the card and icc judge it). */
gate_apdu_kind_t gate_apdu_parse(const uint8_t *capdu, size_t len, gate_apdu_t *out);

#endif
