/* card_applet: the CPx (IAS-ECC) applet of Cachet's virtual CPS3 card.
 *
 * Pure command processing: one command APDU in (ISO/IEC 7816-4 §5.1, short
 * form), response data + status word out; no I/O, no transport. The file
 * system, PKCS#15 objects, SDOs, PIN/PUK and key operations follow
 * shared/spec/cpx-card.md (part A wins over part B). GET RESPONSE and the
 * 61xx/6Cxx mechanics belong to the transport (card_link), which calls
 * card_applet_process once per complete command.
 *
 * Persistent state (PIN/PUK tries, changed PIN/PUK) is reported through the
 * config's save callback BEFORE the command's answer is returned, so the
 * caller can write it out before the answer leaves the card. */
#ifndef CACHET_CARD_APPLET_H
#define CACHET_CARD_APPLET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/types.h>

#define CARD_PIN_MAX    8    /* PIN and PUK: at most 8 ASCII digits */
#define CARD_LABEL_MAX  32   /* EF.DIR / TokenInfo label */
#define CARD_SERIAL_LEN 10   /* EF.SN PAN (cpx-card.md §3.2) */
#define CARD_CERT_MAX   4096 /* one certificate EF */
#define CARD_RESP_MAX   1024 /* largest response the applet builds */
#define CARD_CHAIN_MAX  1024 /* command chaining (CLA 10): data collected */

/* ISO/IEC 7816-4 §5.6 status words used by the applet. */
enum {
    CARD_SW_OK = 0x9000,
    CARD_SW_EOF = 0x6282,
    CARD_SW_MEMORY = 0x6581,
    CARD_SW_WRONG_LENGTH = 0x6700,
    CARD_SW_LAST_CHAIN_EXPECTED = 0x6883,
    CARD_SW_INCOMPATIBLE_FILE = 0x6981,
    CARD_SW_SECURITY = 0x6982,
    CARD_SW_BLOCKED = 0x6983,
    CARD_SW_CONDITIONS = 0x6985,
    CARD_SW_NO_CURRENT_EF = 0x6986,
    CARD_SW_WRONG_DATA = 0x6A80,
    CARD_SW_NOT_FOUND = 0x6A82,
    CARD_SW_WRONG_P1P2 = 0x6A86,
    CARD_SW_LC_P1P2 = 0x6A87,
    CARD_SW_REF_NOT_FOUND = 0x6A88,
    CARD_SW_OFFSET = 0x6B00,
    CARD_SW_INS = 0x6D00,
    CARD_SW_CLA = 0x6E00,
    CARD_SW_UNKNOWN = 0x6F00,
};

/* What the card keeps across power cycles. */
typedef struct {
    uint8_t pin_tries_left;
    uint8_t puk_tries_left;
    uint8_t pin_len;
    uint8_t puk_len;
    uint8_t pin[CARD_PIN_MAX];
    uint8_t puk[CARD_PIN_MAX];
} card_persist_t;

/* Called with the new persistent state whenever it changes, before the
 * answer is returned. false = could not save: the command answers 6581. */
typedef bool (*card_save_fn)(void *ctx, const card_persist_t *st);

/* Everything a profile provides. Buffers are copied by card_applet_new; the
 * keys are reference-counted (EVP_PKEY_up_ref). A NULL key makes operations
 * with it answer 6A88 (the fuzzer runs without keys, or with small ones). */
typedef struct {
    char label[CARD_LABEL_MAX + 1];
    uint8_t serial[CARD_SERIAL_LEN];
    uint8_t pin_tries_max; /* 1..15 */
    uint8_t puk_tries_max; /* 1..15 */
    const uint8_t *auth_cert;
    size_t auth_cert_len;
    const uint8_t *sign_cert;
    size_t sign_cert_len;
    const uint8_t *ca_cert;
    size_t ca_cert_len;
    EVP_PKEY *auth_key; /* key reference 0x82, CPS_PRIV_AUT */
    EVP_PKEY *sign_key; /* key reference 0x81, CPS_PRIV_SIG */
    card_save_fn save;  /* may be NULL */
    void *save_ctx;
} card_config_t;

/* Command classes for the timing model and the NULL procedure bytes. */
typedef enum { CARD_CMD_FAST = 0, CARD_CMD_RSA = 1 } card_cmd_class_t;

typedef struct card_applet card_applet_t;

/* NULL on a bad config (lengths over the caps, bad tries, bad PIN/PUK) or
 * out of memory. initial: the persistent state to start from. */
card_applet_t *card_applet_new(const card_config_t *cfg, const card_persist_t *initial);
void card_applet_free(card_applet_t *a);

/* Power-off or reset (ISO/IEC 7816-3 §6.2.2-6.2.3): current DF back to the MF,
 * no current EF, MSE state and hash cleared, PIN/PUK not verified, chaining
 * dropped. Persistent state is kept. */
void card_applet_reset(card_applet_t *a);

/* Processes one command APDU (short form; in T=0 the transport gives the
 * header + data without Le for case 3/4, header + P3 for case 2). Writes the
 * response data (may exceed 256 bytes: the transport splits it with 61xx) to
 * resp (cap >= CARD_RESP_MAX) and returns SW1SW2. */
uint16_t card_applet_process(card_applet_t *a, const uint8_t *apdu, size_t len, uint8_t *resp,
                             size_t cap, size_t *resp_len);

/* Command class from the 4-byte header (RSA private-key operations are slow). */
card_cmd_class_t card_applet_cmd_class(const uint8_t *hdr);

/* T=0 (ISO/IEC 7816-3 §10.3.2): the card must know from the header whether P3
 * is Lc (data follow: case 3/4) or Le (case 1/2). hdr: the 5 header bytes. */
bool card_applet_t0_data_in(const card_applet_t *a, const uint8_t *hdr);

/* T=0: true when the command may simply be re-issued with a corrected P3
 * (6Cxx), false when it must not run twice (its answer is then kept for GET
 * RESPONSE, 61xx). */
bool card_applet_t0_repeatable(const uint8_t *hdr);

/* The current persistent state. */
void card_applet_get_persist(const card_applet_t *a, card_persist_t *out);

/* Checks a PIN/PUK value from a profile or state file: 4..8 ASCII digits. */
bool card_applet_valid_secret(const uint8_t *v, size_t len);

#endif
