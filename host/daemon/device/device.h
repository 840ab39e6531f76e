/* device: cachetd's side of the appliance's trust features (issue 5,
 * docs/appliance.md "Vendor commands (CCID Escape)"), with no card or PC/SC in
 * it — the vendor commands themselves are card_native.h's:
 *   device_announce.c  the ANNOUNCE message for a mail signature (summary +
 *                      CMS signedAttrs), every field within the appliance's caps
 *   device_receipt.c   GET_DEVICE_INFO and receipts: parse, ECDSA P-256 check
 *                      (OpenSSL), the audit entry's "receipt" object
 *   device_pin.c       the device key pinned on first use (trust on first use):
 *                      a 0600 file in cachetd's state directory; another key later
 *                      is reported, never accepted silently
 *   device_audit.c     `cachet audit verify`'s receipt pass over the audit log
 * Module prefix device_. Errors are values; every length from outside capped. */
#ifndef CACHETD_DEVICE_H
#define CACHETD_DEVICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "smime.h"

/* ---- announcement (docs/appliance.md "The announcement") ---------------- */

#define DEVICE_ANNOUNCE_MAX     2048 /* ANNOUNCE_BEGIN: 1..2048 bytes */
#define DEVICE_SIGNED_ATTRS_MAX 1024 /* field 06: 1..1024 bytes */
#define DEVICE_TEXT_MAX         254  /* From, To, attachment names */
#define DEVICE_SUBJECT_MAX      510
#define DEVICE_TO_MAX           8
#define DEVICE_ATTACH_MAX       8

enum {
    DEVICE_TAG_FROM = 0x01,
    DEVICE_TAG_TO = 0x02,
    DEVICE_TAG_SUBJECT = 0x03,
    DEVICE_TAG_ATTACHMENT = 0x04,
    DEVICE_TAG_CONTENT_DIGEST = 0x05,
    DEVICE_TAG_SIGNED_ATTRS = 0x06,
};

/* Builds the message for ANNOUNCE_BEGIN/DATA from the mail's summary and the
 * DER of the signedAttrs: From, each To/Cc recipient (split at the commas
 * between addresses, at most 8: the 8th says "(+N)"), Subject, attachments
 * (at most 8, same), content digest, signedAttrs. Text is made shortest-form
 * UTF-8 without control characters (they become spaces, invalid bytes '?'),
 * cut at a character boundary with "…" to its cap and to the total. false when
 * the signedAttrs are empty or over 1024 bytes, or cap is too small. */
bool device_announce_build(const smime_summary_t *sm, const uint8_t *signed_attrs,
                           size_t signed_attrs_len, uint8_t *out, size_t cap, size_t *out_len);

/* Copies src (n bytes) into dst as display-safe UTF-8 of at most max bytes
 * (see above); returns the length written (dst is NUL-terminated, dst_cap >
 * max). Exposed for the unit tests. */
size_t device_text_clean(const char *src, size_t n, char *dst, size_t dst_cap, size_t max);

/* ---- device info and receipts ------------------------------------------- */

#define DEVICE_SPKI_MAX        128 /* DER SubjectPublicKeyInfo of a P-256 key: 91 */
#define DEVICE_RECEIPT_BODY    76
#define DEVICE_RECEIPT_SIG_MAX 72
#define DEVICE_RECEIPT_MAX     (DEVICE_RECEIPT_BODY + 1 + DEVICE_RECEIPT_SIG_MAX)
#define DEVICE_FPR_HEX         65 /* hex SHA-256 + NUL */

/* GET_DEVICE_INFO flags */
enum {
    DEVICE_INFO_NEW_KEY = 0x01,      /* the key was generated at this boot */
    DEVICE_INFO_KEY_REPLACED = 0x02, /* a damaged key record: a new key was made */
    DEVICE_INFO_NO_KEY = 0x04,       /* no key: no receipts */
    DEVICE_INFO_NOT_STORED = 0x08,   /* the new key could not be stored */
    DEVICE_INFO_COUNTER_BAD = 0x10,  /* a damaged counter record was ignored */
};

typedef struct {
    uint8_t flags;
    uint32_t counter; /* number of the last receipt issued */
    uint8_t version[3];
    uint8_t spki[DEVICE_SPKI_MAX];
    size_t spki_len; /* 0: no key */
} device_info_t;

/* GET_DEVICE_INFO's payload; false when malformed (a key that is not a P-256
 * SubjectPublicKeyInfo included). */
bool device_info_parse(const uint8_t *p, size_t len, device_info_t *out);

/* Receipt flags */
enum {
    DEVICE_RCPT_CONTENT_CHECKED = 0x01, /* the appliance checked the content digest */
    DEVICE_RCPT_ANNOUNCED = 0x02,
};

typedef struct {
    uint8_t raw[DEVICE_RECEIPT_MAX];
    size_t raw_len;
    uint8_t key_ref; /* 0x81 signature, 0x82 authentication */
    uint8_t flags;
    uint8_t digest_len; /* 20 or 32 */
    uint32_t counter;
    uint8_t digest[32];
    uint8_t display_hash[32];
    size_t sig_len;
} device_receipt_t;

/* Parses a receipt (body 76 · n · DER ECDSA-Sig-Value, exactly): magic CRCP,
 * version 01, key 81/82, digest length 20/32 with zeros after it. why (may be
 * NULL) says what is wrong. */
bool device_receipt_parse(const uint8_t *buf, size_t len, device_receipt_t *out, char *why,
                          size_t why_cap);
/* ECDSA P-256 with SHA-256 over the 76-byte body, with the device key (DER
 * SubjectPublicKeyInfo). */
bool device_receipt_verify(const device_receipt_t *r, const uint8_t *spki, size_t spki_len,
                           char *why, size_t why_cap);
/* The audit entry's "receipt" object: data (base64 of the whole receipt),
 * counter, key, flags, announced, content_checked, digest, display_hash. */
json_object *device_receipt_json(const device_receipt_t *r);

/* Hex SHA-256 of the DER SubjectPublicKeyInfo: the device key's fingerprint. */
void device_key_fingerprint(const uint8_t *spki, size_t len, char out[DEVICE_FPR_HEX]);

/* ---- the pinned device key (trust on first use) ------------------------- */

typedef enum {
    DEVICE_PIN_NEW = 0,  /* nothing was pinned: this key is now */
    DEVICE_PIN_MATCH,    /* this is the pinned key */
    DEVICE_PIN_MISMATCH, /* another key is pinned: this one is NOT accepted */
    DEVICE_PIN_ERROR,    /* the pin file is unreadable, corrupt, not private, or unwritable */
} device_pin_status_t;

const char *device_pin_status_name(device_pin_status_t st); /* "pinned-now", "match", ... */

/* Compares spki with the key pinned in path, pinning it when none is (the
 * file is created 0600 beside nothing else, atomically: two callers cannot
 * both pin). pinned_fpr (may be NULL) gets the pinned key's fingerprint. */
device_pin_status_t device_pin_check(const char *path, const uint8_t *spki, size_t spki_len,
                                     char pinned_fpr[DEVICE_FPR_HEX], char *err, size_t err_cap);
/* The pinned key. *exists false (and false returned) when there is no pin file. */
bool device_pin_load(const char *path, uint8_t *spki, size_t cap, size_t *len, bool *exists,
                     char *err, size_t err_cap);
/* Replaces the pinned key (an explicit decision of the holder: `cachet device
 * --repin`). */
bool device_pin_replace(const char *path, const uint8_t *spki, size_t spki_len, char *err,
                        size_t err_cap);

/* ---- receipts in the audit log ------------------------------------------ */

typedef struct {
    bool ok;
    uint64_t entries;   /* lines read */
    uint64_t receipts;  /* receipts checked */
    uint64_t first_bad; /* line (= seq) of the first bad receipt, 0 if none */
    char reason[256];
} device_audit_result_t;

/* Checks every entry's "receipt" of the audit log at path (docs/cachet.md):
 * the device signature with spki (the pinned key; NULL when none is pinned:
 * then any receipt fails), counters strictly increasing, the receipt's digest
 * = the entry's "signed_digest", its key = the entry's "key", its fields = its
 * data; for an announced mail signature flags 03, SHA-256(signed_attrs) = the
 * digest and the signedAttrs' messageDigest = the entry's "digest". Never
 * modifies anything. Returns out->ok. */
bool device_audit_verify(const char *path, const uint8_t *spki, size_t spki_len,
                         device_audit_result_t *out);

/* The messageDigest value (32 bytes) of a DER signedAttrs: exactly one
 * attribute 1.2.840.113549.1.9.4 with one OCTET STRING of 32 bytes. */
bool device_signed_attrs_digest(const uint8_t *sa, size_t len, uint8_t out[32]);

#endif
