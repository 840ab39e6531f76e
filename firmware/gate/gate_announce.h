/* gate_announce: the host's announcement of a signature (vendor Escape
 * ANNOUNCE, docs/appliance.md): its parser, the check that the CMS
 * signedAttrs carry the announced content digest (RFC 5652 §5.3 and §11.2:
 * exactly one messageDigest attribute with one OCTET STRING value), and the
 * digest the gate will let the card sign, SHA-256(signedAttrs) (RFC 5652
 * §5.4: the DER of the SET OF, tag 0x31). Pure apart from SHA-256; fuzzed
 * through tests/fuzz/escape. */
#ifndef CACHET_GATE_ANNOUNCE_H
#define CACHET_GATE_ANNOUNCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Message: a sequence of fields tag (1 byte) || length (2 bytes, big endian)
 * || value. Caps (bytes): */
#define GATE_ANN_MAX         2048u /* whole message */
#define GATE_ANN_TEXT_MAX    254u  /* From, each To, each attachment name */
#define GATE_ANN_SUBJECT_MAX 510u
#define GATE_ANN_TO_MAX      8u    /* recipients */
#define GATE_ANN_ATT_MAX     8u    /* attachments */
#define GATE_ANN_SATTRS_MAX  1024u /* signedAttrs DER */
#define GATE_ANN_DIGEST_LEN  32u   /* SHA-256 only */

/* Field tags. */
#define GATE_ANN_FROM          0x01u /* UTF-8, once, required */
#define GATE_ANN_TO            0x02u /* UTF-8, 1..8 times */
#define GATE_ANN_SUBJECT       0x03u /* UTF-8 (may be empty), at most once */
#define GATE_ANN_ATTACHMENT    0x04u /* size (4 bytes, big endian) || UTF-8 name, 0..8 times */
#define GATE_ANN_CONTENT       0x05u /* SHA-256 of the signed content, required */
#define GATE_ANN_SIGNED_ATTRS  0x06u /* CMS signedAttrs DER (tag 31) */
#define GATE_ANN_SIGNED_DIGEST 0x07u /* or: the digest to sign itself (not checked) */

typedef enum {
    GATE_ANN_OK = 0,
    GATE_ANN_ERR_LENGTH, /* a field or the message over its cap, or truncated */
    GATE_ANN_ERR_FORMAT, /* unknown tag, repeated or missing field, bad UTF-8 or DER */
    GATE_ANN_ERR_DIGEST, /* signedAttrs without the announced content digest */
} gate_ann_status_t;

typedef struct {
    const uint8_t *p;
    size_t len;
} gate_span_t;

typedef struct {
    gate_span_t from;
    gate_span_t to[GATE_ANN_TO_MAX];
    size_t to_count;
    bool has_subject;
    gate_span_t subject;
    gate_span_t att_name[GATE_ANN_ATT_MAX];
    uint32_t att_size[GATE_ANN_ATT_MAX];
    size_t att_count;
    const uint8_t *content_digest;       /* GATE_ANN_DIGEST_LEN bytes */
    gate_span_t signed_attrs;            /* empty when a signed digest was given */
    bool content_checked;                /* signedAttrs carried content_digest */
    uint8_t digest[GATE_ANN_DIGEST_LEN]; /* what the card may sign */
} gate_announce_t;

/* Parses and checks msg; spans in out point into msg (keep it alive). */
gate_ann_status_t gate_announce_parse(const uint8_t *msg, size_t len, gate_announce_t *out);

/* The messageDigest value of a DER signedAttrs (SET OF Attribute), if it has
 * exactly one such attribute with exactly one OCTET STRING value. */
bool gate_signed_attrs_message_digest(const uint8_t *der, size_t len, const uint8_t **md,
                                      size_t *md_len);

/* True when s is UTF-8 (RFC 3629: shortest forms, no surrogates) without
 * control characters (C0, DEL, C1): safe to put on the display. */
bool gate_utf8_displayable(const uint8_t *s, size_t len);

#endif
