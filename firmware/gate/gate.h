/* gate: the signature firewall between the host and the card. Every command
 * APDU of PC_to_RDR_XfrBlock passes gate_transceive() instead of going straight
 * to icc_transceive(): commands that use the signature key (0x81: MSE SET
 * DST/AT naming it, PSO HASH, PSO COMPUTE DIGITAL SIGNATURE, INTERNAL
 * AUTHENTICATE with it) are held until the practitioner confirms on the
 * appliance (ui_confirm), and then exactly one signature on exactly the
 * confirmed digest reaches the card. The host may announce what it will sign
 * (vendor Escape ANNOUNCE, gate_escape()); the gate then checks that the CMS
 * signedAttrs carry the announced content digest and computes the digest to
 * sign itself. Each confirmed signature gets a receipt (firmware/receipts).
 * Protocol and byte formats: docs/appliance.md "Vendor commands (CCID Escape)".
 *
 * Status words it answers itself (ISO/IEC 7816-4 §5.6, PC/SC part 10):
 *   69 85  refused: not the confirmed/announced digest, or not checkable;
 *   64 01  the practitioner pressed Cancel;  64 00  nobody answered in time.
 * Single instance, module-level state, no heap. Thread context only. */
#ifndef CACHET_GATE_H
#define CACHET_GATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "icc.h"

#define GATE_SW_REFUSED   0x6985u
#define GATE_SW_CANCELLED 0x6401u
#define GATE_SW_TIMEOUT   0x6400u

/* Confirmation timeout (Escape SET_CONFIG): default and bounds, seconds. */
#define GATE_TIMEOUT_DEFAULT_S 60u
#define GATE_TIMEOUT_MIN_S     5u
#define GATE_TIMEOUT_MAX_S     600u

/* Policy for the authentication key (0x82), set by the host. */
typedef enum {
    GATE_AUTH_FREE = 0,    /* default: no confirmation (each TLS connection signs) */
    GATE_AUTH_CONFIRM = 1, /* every INTERNAL AUTHENTICATE / DECIPHER is confirmed */
} gate_auth_policy_t;

/* Outcome of the last held command (Escape GET_STATUS). */
typedef enum {
    GATE_OUTCOME_NONE = 0,
    GATE_OUTCOME_SIGNED = 1,     /* the card signed the confirmed digest */
    GATE_OUTCOME_CANCELLED = 2,  /* Cancel */
    GATE_OUTCOME_TIMEOUT = 3,    /* no answer in time */
    GATE_OUTCOME_MISMATCH = 4,   /* refused: not the announced/confirmed digest */
    GATE_OUTCOME_REFUSED = 5,    /* refused: the gate could not check the command */
    GATE_OUTCOME_CARD_ERROR = 6, /* confirmed, but the card answered an error */
} gate_outcome_t;

/* Boot: defaults, no announcement. receipts_init() first. */
void gate_init(void);

/* The card was removed, reset or powered off: forget everything about it
 * (security environment, held commands, confirmation, announcement). */
void gate_card_reset(void);

/* In place of icc_transceive (same contract): forwards, holds or refuses. May
 * block while the practitioner decides (ui_confirm calls the ui wait hook). */
icc_status_t gate_transceive(const uint8_t *capdu, size_t clen, uint8_t *rapdu, size_t rcap,
                             size_t *rlen);

/* Vendor Escape commands (CCID rev 1.1 §6.1.8): in = abData after the vendor
 * class byte (version, command, payload). Writes the answer (version,
 * command, status, payload) to out. false with *error = 0 (CMD_NOT_SUPPORTED)
 * for an unknown version or command: deny by default. */
bool gate_escape(const uint8_t *in, size_t in_len, uint8_t *out, size_t cap, size_t *out_len,
                 uint8_t *error);

/* ---- for gate_escape.c and tests ---- */
#define GATE_ESCAPE_CLASS   0xCAu /* abData[0] of every Cachet vendor command */
#define GATE_ESCAPE_VERSION 0x01u

uint32_t gate_timeout_s(void);
bool gate_set_timeout_s(uint32_t s);
gate_auth_policy_t gate_auth_policy(void);
bool gate_set_auth_policy(uint8_t policy);
gate_outcome_t gate_last_outcome(void);
uint32_t gate_last_receipt(void);

#endif
