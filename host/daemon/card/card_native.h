/* card_native: extras of the native CPx backend (card_native.c) beyond card.h —
 * APDU counters for the card-line benchmark, and a way to wake the monitor. */
#ifndef CACHET_CARD_NATIVE_H
#define CACHET_CARD_NATIVE_H

#include <stdbool.h>
#include <stddef.h>
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

/* ---- The appliance's vendor commands (docs/appliance.md "Vendor commands
 * (CCID Escape)"), through SCardControl(IOCTL_SMARTCARD_VENDOR_IFD_EXCHANGE).
 * Added by the trust2 helper (issue 5). Worker thread only (card.h threading
 * contract), like every backend call but wait_event. Each returns
 * CARD_ERR_NOT_SUPPORTED when b is not a native backend or the reader does not
 * forward Escape commands (not a Cachet appliance, or no "@escape"). */

#define CARD_NATIVE_ANNOUNCE_MAX 2048 /* ANNOUNCE_BEGIN: total length 1..2048 */
#define CARD_NATIVE_RECEIPT_MAX  149  /* body 76 + length 1 + DER ECDSA-Sig-Value <= 72 */
#define CARD_NATIVE_INFO_MAX     128  /* GET_DEVICE_INFO payload: 9 + 91 */

/* The bound card's reader forwards vendor commands (so an announcement can be
 * made). */
bool card_native_has_escape(card_backend_t *b);

/* One vendor command: abData = CA 01 cmd payload. *status = the answer's
 * status byte (00 OK, 01 LENGTH, ... docs/appliance.md); out gets the answer's
 * payload (only with status 00). CARD_OK whenever the appliance answered. */
card_status_t card_native_escape(card_backend_t *b, uint8_t cmd, const uint8_t *payload,
                                 size_t payload_len, uint8_t *out, size_t out_cap, size_t *out_len,
                                 uint8_t *status);

/* Announces what the next signature is for (ANNOUNCE_BEGIN, DATA in pieces of
 * 240 bytes, END) inside one PC/SC transaction, and checks that the digest the
 * appliance will let the card sign is expect (SHA-256 of the signedAttrs the
 * host built): CARD_ERR_BAD_INPUT when the appliance refused the message
 * (status 01..03) or returned another digest (the announcement is then
 * cleared). msg: the announcement message (fields tag, length, value). */
card_status_t card_native_announce(card_backend_t *b, const uint8_t *msg, size_t msg_len,
                                   const uint8_t expect[32]);

/* Announce, then sign, in one PC/SC transaction (no other client can send a
 * command between the two). Statuses as sign(), plus card_native_announce's.
 * While the holder reads the confirm screen the call waits (CCID time
 * extensions); Cancel gives CARD_ERR_CANCELLED (SW 64 01), no answer in time
 * CARD_ERR_TIMEOUT (SW 64 00). msg NULL = sign unannounced. */
card_status_t card_native_sign_announced(card_backend_t *b, const uint8_t *msg, size_t msg_len,
                                         card_key_role_t role, card_mech_t mech, const uint8_t *in,
                                         size_t in_len, uint8_t *sig, size_t sig_cap,
                                         size_t *sig_len);

/* The receipt of the signature over digest (20 or 32 bytes, what the card
 * signed): GET_RECEIPT of the last one, else of the previous numbers (another
 * client may have signed since), at most 8 (the appliance keeps 8). CARD_OK
 * with *len 0 when none matches. */
card_status_t card_native_fetch_receipt(card_backend_t *b, const uint8_t *digest, size_t digest_len,
                                        uint8_t *out, size_t cap, size_t *len);

/* GET_DEVICE_INFO's payload (flags, counter, version, key length, SPKI). Works
 * without a card (a direct connection to the reader). */
card_status_t card_native_device_info(card_backend_t *b, uint8_t *out, size_t cap, size_t *len);

/* SET_CONFIG: confirmation timeout in seconds (5..600), authentication key
 * policy (0 no confirmation, 1 confirm every use), language (0 French, 1
 * English); a negative value leaves that setting alone. Works without a card. */
card_status_t card_native_set_config(card_backend_t *b, int timeout_s, int auth_policy,
                                     int language);

#endif
