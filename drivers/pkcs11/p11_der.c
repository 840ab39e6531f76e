/* p11_der: certificate fields and DigestInfo recognition (p11_der.h).
 * A TLV walker over a bounded buffer (ITU-T X.690 §8.1): single-byte tags,
 * definite lengths of at most 4 length bytes, every length checked against
 * what is left before it is used. */
#include "p11_der.h"

#include <string.h>

#define TAG_INTEGER    0x02u
#define TAG_BIT_STRING 0x03u
#define TAG_NULL       0x05u
#define TAG_OID        0x06u
#define TAG_SEQUENCE   0x30u
#define TAG_CTX0       0xA0u /* [0] EXPLICIT version (RFC 5280 §4.1) */

#define RSA_BITS_MIN 512u
#define RSA_BITS_MAX 4096u

typedef struct {
    const uint8_t *buf; /* the whole input, for offsets */
    size_t pos;         /* next byte to read */
    size_t end;         /* end of the enclosing value */
} cursor_t;

typedef struct {
    uint8_t tag;
    size_t tlv_off; /* where the TLV starts */
    size_t val_off; /* where its value starts */
    size_t len;     /* length of the value */
} tlv_t;

/* Reads one TLV at c->pos within c->end (X.690 §8.1.2, §8.1.3). */
static bool tlv_next(cursor_t *c, tlv_t *t)
{
    if (c->pos >= c->end || c->end - c->pos < 2)
        return false;
    size_t p = c->pos;
    t->tlv_off = p;
    t->tag = c->buf[p++];
    if ((t->tag & 0x1Fu) == 0x1Fu) /* high tag numbers: not in a certificate's fields */
        return false;
    uint8_t l0 = c->buf[p++];
    size_t len = 0;
    if (l0 < 0x80u) {
        len = l0;
    } else {
        size_t n = l0 & 0x7Fu;
        if (n == 0 || n > 4 || c->end - p < n) /* indefinite (0x80) is not DER */
            return false;
        for (size_t i = 0; i < n; i++)
            len = (len << 8) | c->buf[p++];
    }
    if (len > c->end - p)
        return false;
    t->val_off = p;
    t->len = len;
    c->pos = p + len;
    return true;
}

static bool tlv_expect(cursor_t *c, uint8_t tag, tlv_t *t)
{
    return tlv_next(c, t) && t->tag == tag;
}

/* A cursor over the value of t. */
static cursor_t inside(const cursor_t *c, const tlv_t *t)
{
    cursor_t in = {.buf = c->buf, .pos = t->val_off, .end = t->val_off + t->len};
    return in;
}

static p11_span_t span_tlv(const tlv_t *t)
{
    p11_span_t s = {.off = t->tlv_off, .len = (t->val_off - t->tlv_off) + t->len};
    return s;
}

/* An unsigned INTEGER's magnitude: the value without its leading zero bytes.
 * Negative or empty integers are refused (a modulus or exponent is positive). */
static bool unsigned_int(const uint8_t *buf, const tlv_t *t, p11_span_t *out)
{
    if (t->len == 0 || (buf[t->val_off] & 0x80u) != 0)
        return false;
    size_t off = t->val_off, len = t->len;
    while (len > 1 && buf[off] == 0) {
        off++;
        len--;
    }
    if (len == 1 && buf[off] == 0)
        return false;
    out->off = off;
    out->len = len;
    return true;
}

static size_t bit_length(const uint8_t *mag, size_t len)
{
    uint8_t top = mag[0];
    size_t bits = (len - 1) * 8;
    while (top != 0) {
        bits++;
        top >>= 1;
    }
    return bits;
}

/* rsaEncryption, RFC 8017 §A.1 / RFC 3279 §2.3.1: 1.2.840.113549.1.1.1 */
static const uint8_t oid_rsa[] = {0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x01};

/* subjectPublicKeyInfo (RFC 5280 §4.1.2.7) → the RSA key (RFC 8017 §A.1.1). */
static p11_der_status_t parse_spki(const cursor_t *c, const tlv_t *spki, p11_cert_fields_t *out)
{
    cursor_t in = inside(c, spki);
    tlv_t alg, oid, bits;
    if (!tlv_expect(&in, TAG_SEQUENCE, &alg))
        return P11_DER_BAD;
    cursor_t a = inside(c, &alg);
    if (!tlv_expect(&a, TAG_OID, &oid))
        return P11_DER_BAD;
    if (!tlv_expect(&in, TAG_BIT_STRING, &bits) || in.pos != in.end)
        return P11_DER_BAD;
    if (oid.len != sizeof oid_rsa || memcmp(c->buf + oid.val_off, oid_rsa, sizeof oid_rsa) != 0)
        return P11_DER_UNSUPPORTED;
    /* The parameters of rsaEncryption are NULL (RFC 3279 §2.3.1); accept absent too. */
    if (a.pos != a.end) {
        tlv_t params;
        if (!tlv_expect(&a, TAG_NULL, &params) || params.len != 0 || a.pos != a.end)
            return P11_DER_BAD;
    }
    /* BIT STRING: first byte = unused bits, 0 for a DER-encoded key. */
    if (bits.len < 1 || c->buf[bits.val_off] != 0)
        return P11_DER_BAD;
    cursor_t k = {.buf = c->buf, .pos = bits.val_off + 1, .end = bits.val_off + bits.len};
    tlv_t rsakey, n, e;
    if (!tlv_expect(&k, TAG_SEQUENCE, &rsakey) || k.pos != k.end)
        return P11_DER_BAD;
    cursor_t r = inside(c, &rsakey);
    if (!tlv_expect(&r, TAG_INTEGER, &n) || !tlv_expect(&r, TAG_INTEGER, &e) || r.pos != r.end)
        return P11_DER_BAD;
    if (!unsigned_int(c->buf, &n, &out->modulus) || !unsigned_int(c->buf, &e, &out->exponent))
        return P11_DER_BAD;
    out->modulus_bits = bit_length(c->buf + out->modulus.off, out->modulus.len);
    if (out->modulus_bits < RSA_BITS_MIN || out->modulus_bits > RSA_BITS_MAX ||
        out->exponent.len > 8)
        return P11_DER_UNSUPPORTED;
    out->rsa = true;
    return P11_DER_OK;
}

p11_der_status_t p11_der_cert_fields(const uint8_t *der, size_t der_len, p11_cert_fields_t *out)
{
    if (der == NULL || out == NULL)
        return P11_DER_BAD;
    memset(out, 0, sizeof *out);
    cursor_t top = {.buf = der, .pos = 0, .end = der_len};
    tlv_t cert, tbs, t;
    /* Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signature } */
    if (!tlv_expect(&top, TAG_SEQUENCE, &cert) || top.pos != top.end)
        return P11_DER_BAD;
    cursor_t c = inside(&top, &cert);
    if (!tlv_expect(&c, TAG_SEQUENCE, &tbs))
        return P11_DER_BAD;
    cursor_t f = inside(&c, &tbs);
    if (!tlv_next(&f, &t))
        return P11_DER_BAD;
    if (t.tag == TAG_CTX0 && !tlv_next(&f, &t)) /* version [0] EXPLICIT, then serialNumber */
        return P11_DER_BAD;
    if (t.tag != TAG_INTEGER || t.len == 0)
        return P11_DER_BAD;
    out->serial = span_tlv(&t);
    if (!tlv_expect(&f, TAG_SEQUENCE, &t)) /* signature AlgorithmIdentifier */
        return P11_DER_BAD;
    if (!tlv_expect(&f, TAG_SEQUENCE, &t)) /* issuer Name */
        return P11_DER_BAD;
    out->issuer = span_tlv(&t);
    if (!tlv_expect(&f, TAG_SEQUENCE, &t)) /* validity */
        return P11_DER_BAD;
    if (!tlv_expect(&f, TAG_SEQUENCE, &t)) /* subject Name */
        return P11_DER_BAD;
    out->subject = span_tlv(&t);
    if (!tlv_expect(&f, TAG_SEQUENCE, &t)) /* subjectPublicKeyInfo */
        return P11_DER_BAD;
    out->spki = span_tlv(&t);
    return parse_spki(&f, &t, out);
}

/* DigestInfo prefixes (RFC 8017 §9.2 note 1), with NULL parameters, and the
 * same without them (RFC 3370 §2.1 allows absent parameters for SHA). */
static const uint8_t di_sha1[] = {0x30, 0x21, 0x30, 0x09, 0x06, 0x05, 0x2B, 0x0E,
                                  0x03, 0x02, 0x1A, 0x05, 0x00, 0x04, 0x14};
static const uint8_t di_sha1_nonull[] = {0x30, 0x1F, 0x30, 0x07, 0x06, 0x05, 0x2B,
                                         0x0E, 0x03, 0x02, 0x1A, 0x04, 0x14};
static const uint8_t di_sha256[] = {0x30, 0x31, 0x30, 0x0D, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01,
                                    0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20};
static const uint8_t di_sha256_nonull[] = {0x30, 0x2F, 0x30, 0x0B, 0x06, 0x09, 0x60, 0x86, 0x48,
                                           0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x04, 0x20};

static bool has_prefix(const uint8_t *in, size_t len, const uint8_t *pre, size_t pre_len,
                       size_t hash_len)
{
    return len == pre_len + hash_len && memcmp(in, pre, pre_len) == 0;
}

p11_hash_t p11_der_digestinfo(const uint8_t *in, size_t len, size_t *hash_off)
{
    if (in == NULL || hash_off == NULL)
        return P11_HASH_NONE;
    if (has_prefix(in, len, di_sha1, sizeof di_sha1, 20)) {
        *hash_off = sizeof di_sha1;
        return P11_HASH_SHA1;
    }
    if (has_prefix(in, len, di_sha1_nonull, sizeof di_sha1_nonull, 20)) {
        *hash_off = sizeof di_sha1_nonull;
        return P11_HASH_SHA1;
    }
    if (has_prefix(in, len, di_sha256, sizeof di_sha256, 32)) {
        *hash_off = sizeof di_sha256;
        return P11_HASH_SHA256;
    }
    if (has_prefix(in, len, di_sha256_nonull, sizeof di_sha256_nonull, 32)) {
        *hash_off = sizeof di_sha256_nonull;
        return P11_HASH_SHA256;
    }
    return P11_HASH_NONE;
}

size_t p11_hash_len(p11_hash_t h)
{
    return h == P11_HASH_SHA1 ? 20u : h == P11_HASH_SHA256 ? 32u : 0u;
}
