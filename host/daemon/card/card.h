/* card: the interface between cachetd and a card backend (ARCHITECTURE.md §1).
 * Two implementations: card_native (CPx over PC/SC, spec/cpx-card.md part A) and
 * card_pkcs11 (any PKCS#11 module: OpenSC, the ANS Cryptolib, SoftHSM2).
 *
 * Threading contract: a backend object is used by two threads at most — the
 * daemon's card worker, which makes every call except wait_event, one at a time;
 * and its event monitor, which only calls wait_event (and may run concurrently
 * with the worker). Nothing here logs a PIN or keeps it after the call. */
#ifndef CACHET_CARD_H
#define CACHET_CARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    CARD_OK = 0,
    CARD_ERR_NO_READER,      /* no reader at all */
    CARD_ERR_NO_CARD,        /* reader, but no (known) card in it */
    CARD_ERR_REMOVED,        /* the card left during the operation */
    CARD_ERR_PIN_REQUIRED,   /* operation needs the holder PIN first */
    CARD_ERR_PIN_INCORRECT,  /* wrong PIN; tries_left says how many remain */
    CARD_ERR_PIN_BLOCKED,    /* no try left */
    CARD_ERR_PIN_FORMAT,     /* PIN refused before reaching the card (length, digits) */
    CARD_ERR_CANCELLED,      /* cancelled on the PIN pad / appliance */
    CARD_ERR_TIMEOUT,        /* nobody typed the PIN / confirmed in time */
    CARD_ERR_NOT_SUPPORTED,  /* the card or backend cannot do this */
    CARD_ERR_BAD_INPUT,      /* argument refused (length, mechanism) */
    CARD_ERR_BACKEND,        /* PC/SC or PKCS#11 failure; see the backend's last error */
} card_status_t;

/* Key roles of a CPS card (spec/domain.md). */
typedef enum {
    CARD_KEY_AUTH = 1, /* authentication key, ref 0x82, CPS_PRIV_AUT: TLS client auth, login */
    CARD_KEY_SIGN = 2, /* signature key, ref 0x81, CPS_PRIV_SIG: S/MIME, non-repudiation */
} card_key_role_t;

/* What the card is given to sign. */
typedef enum {
    /* input = a DER DigestInfo (SHA-1 or SHA-256) or, for the auth key, any data
     * <= k-11 bytes; the card applies PKCS#1 v1.5 type 1 padding. */
    CARD_MECH_RSA_PKCS = 1,
    /* input = a bare SHA-256 hash (32 bytes); the result is a PKCS#1 v1.5
     * sha256WithRSAEncryption signature (the backend or card builds the DigestInfo). */
    CARD_MECH_SHA256 = 2,
    CARD_MECH_SHA1 = 3, /* same with a 20-byte SHA-1 hash */
} card_mech_t;

#define CARD_SERIAL_MAX 64
#define CARD_LABEL_MAX 128
#define CARD_READER_MAX 128
#define CARD_CERT_MAX 4096  /* largest certificate accepted from a card (DER) */
#define CARD_CERTS_MAX 8    /* certificates kept per card */
#define CARD_SIG_MAX 512    /* RSA-4096 */

typedef struct {
    char reader[CARD_READER_MAX]; /* reader (PC/SC) or slot description (PKCS#11) */
    bool present;                 /* a card the backend can use is in the reader */
    bool pinpad;                  /* PIN is typed on the reader (protected authentication path) */
    char serial[CARD_SERIAL_MAX]; /* card serial (EF.SN PAN digits / token serial), "" if unknown */
    char label[CARD_LABEL_MAX];   /* token label */
} card_info_t;

typedef struct {
    uint8_t der[CARD_CERT_MAX];
    size_t der_len;
    char label[CARD_LABEL_MAX];
    uint8_t id[32]; /* PKCS#15 / PKCS#11 object ID */
    size_t id_len;
    int role;       /* card_key_role_t of the matching private key, 0 for a CA certificate */
} card_cert_t;

typedef enum {
    CARD_EVENT_NONE = 0,     /* wait_event timed out */
    CARD_EVENT_INSERTED,
    CARD_EVENT_REMOVED,
    CARD_EVENT_READER_GONE,  /* the reader itself left (appliance unplugged) */
    CARD_EVENT_READER_ADDED,
} card_event_t;

typedef struct card_backend card_backend_t;

typedef struct {
    const char *name; /* "native" or "pkcs11" */
    /* Blocks up to timeout_ms for the next insertion/removal; CARD_EVENT_NONE on
     * timeout. Must return within 200 ms of the event (ISSUE: reaction time). */
    card_status_t (*wait_event)(card_backend_t *b, int timeout_ms, card_event_t *ev);
    /* Reader and card as they are now (no card command when nothing changed). */
    card_status_t (*get_info)(card_backend_t *b, card_info_t *out);
    /* Binds the card just inserted: reads serial and label (cheap), nothing else. */
    card_status_t (*bind)(card_backend_t *b, card_info_t *out);
    /* Reads every certificate of the card (expensive on a CPS3 line: the daemon
     * calls this only when its cache does not know the card's serial). */
    card_status_t (*read_certs)(card_backend_t *b, card_cert_t *certs, size_t cap, size_t *n);
    /* Holder PIN state without spending a try: tries_left (-1 unknown), verified. */
    card_status_t (*pin_status)(card_backend_t *b, int *tries_left, bool *verified);
    /* Verifies the holder PIN once (never retried). pin NULL = type it on the
     * reader's PIN pad. On CARD_ERR_PIN_INCORRECT tries_left is set. */
    card_status_t (*verify_pin)(card_backend_t *b, const char *pin, int *tries_left);
    /* Signs with the key of the given role. */
    card_status_t (*sign)(card_backend_t *b, card_key_role_t role, card_mech_t mech,
                          const uint8_t *in, size_t in_len, uint8_t *sig, size_t sig_cap,
                          size_t *sig_len);
    /* Forgets the login state (card reset or C_Logout). */
    void (*logout)(card_backend_t *b);
    /* Last backend error as text (PC/SC or CKR_ name), for logs. */
    const char *(*last_error)(card_backend_t *b);
    void (*close)(card_backend_t *b);
} card_ops_t;

struct card_backend {
    const card_ops_t *ops;
};

/* Native CPx backend over PC/SC. reader_match: substring of the reader name to
 * use ("" = the first reader holding a CPx card). */
card_backend_t *card_native_open(const char *reader_match, char *err, size_t err_cap);

/* PKCS#11 backend: dlopen()s module, C_Initialize once (CKF_OS_LOCKING_OK). */
card_backend_t *card_pkcs11_open(const char *module_path, char *err, size_t err_cap);

/* Stable names for logs and the protocol ("pin-incorrect", ...). */
const char *card_status_name(card_status_t st);

#endif
