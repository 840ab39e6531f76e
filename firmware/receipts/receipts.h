/* receipts: the appliance's own evidence of what it let the card sign. Owns
 * the device key (ECDSA P-256, made on first boot from port_rng, kept in
 * port_flash with a monotonic counter) and, for each confirmed signature, a
 * receipt {version, counter, key reference, signed digest, SHA-256 of the
 * displayed text, content-checked flag} signed by that key. Byte formats:
 * docs/appliance.md "Vendor commands (CCID Escape)".
 *
 * Flash layout (sector size S = port_flash_sector_size()):
 *   sector 0  the key record (magic, version, private and public key, SHA-256);
 *   sectors 1-2  the counter log: 8-byte records counter || ~counter (big
 *             endian) appended to one sector; when it is full the other one is
 *             erased and continues. The counter is the largest valid record,
 *             so an interrupted write or erase never makes it go back.
 * Single instance, module-level state, no heap. Thread context only. */
#ifndef CACHET_RECEIPTS_H
#define CACHET_RECEIPTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "crypto.h"

typedef enum {
    RECEIPTS_OK = 0,
    RECEIPTS_ERR_PARAM,     /* bad argument */
    RECEIPTS_ERR_NO_KEY,    /* no device key (RNG or flash failed at boot) */
    RECEIPTS_ERR_FLASH,     /* the counter could not be stored */
    RECEIPTS_ERR_CRYPTO,    /* signing failed */
    RECEIPTS_ERR_NOT_FOUND, /* no such receipt (never issued, or dropped from RAM) */
    RECEIPTS_ERR_EXHAUSTED, /* the counter reached its end */
} receipts_status_t;

/* Receipt format version and sizes (docs/appliance.md). */
#define RECEIPTS_VERSION    1u
#define RECEIPTS_BODY_LEN   76u
#define RECEIPTS_DIGEST_MAX 32u
#define RECEIPTS_MAX_LEN    (RECEIPTS_BODY_LEN + 1u + CRYPTO_ECDSA_SIG_MAX)
/* Receipts kept in RAM for GET_RECEIPT (the host fetches them right away). */
#define RECEIPTS_KEEP 8u
/* GET_RECEIPT selector for the latest one. */
#define RECEIPTS_LAST 0xFFFFFFFFu

/* Body flags (byte 6). */
#define RECEIPTS_F_CONTENT_CHECKED 0x01u /* the appliance checked signedAttrs' messageDigest */
#define RECEIPTS_F_ANNOUNCED       0x02u /* the host announced the signature */

/* Device flags (GET_DEVICE_INFO). */
#define RECEIPTS_DEV_KEY_NEW       0x01u /* the key was generated at this boot */
#define RECEIPTS_DEV_FLASH_CORRUPT 0x02u /* flash held a damaged record: new key */
#define RECEIPTS_DEV_NO_KEY        0x04u /* no key: receipts unavailable */
#define RECEIPTS_DEV_KEY_VOLATILE  0x08u /* the new key could not be stored */
#define RECEIPTS_DEV_LOG_DAMAGED   0x10u /* a counter record was damaged (ignored) */

/* What was confirmed and signed. */
typedef struct {
    uint8_t key_ref;               /* card key reference: 0x81 signature, 0x82 authentication */
    uint8_t flags;                 /* RECEIPTS_F_* */
    const uint8_t *digest;         /* the digest the card signed */
    size_t digest_len;             /* 1..RECEIPTS_DIGEST_MAX */
    const uint8_t *display_sha256; /* SHA-256 of the text shown (CRYPTO_SHA256_LEN) */
} receipts_event_t;

/* Loads the device key and counter from flash; makes a new key when there is
 * none or it is damaged (RECEIPTS_DEV_FLASH_CORRUPT). Call once at boot. */
receipts_status_t receipts_init(void);

/* Issues the next receipt: stores the new counter in flash first, then signs.
 * *counter gets its number. */
receipts_status_t receipts_issue(const receipts_event_t *ev, uint32_t *counter);

/* Copies receipt number counter (or RECEIPTS_LAST) to out: body || signature
 * length (1 byte) || DER signature. */
receipts_status_t receipts_get(uint32_t counter, uint8_t *out, size_t cap, size_t *len);

/* The device key as DER SubjectPublicKeyInfo (CRYPTO_P256_SPKI_LEN bytes). */
receipts_status_t receipts_public_key(uint8_t *out, size_t cap, size_t *len);

/* Last counter issued (0: none yet), and RECEIPTS_DEV_* flags. */
uint32_t receipts_counter(void);
uint8_t receipts_device_flags(void);

#endif
