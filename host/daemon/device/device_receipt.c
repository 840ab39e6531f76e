/* device_receipt: GET_DEVICE_INFO and the appliance's signed receipts
 * (docs/appliance.md "Receipts"): parse, check the ECDSA P-256 signature
 * (FIPS 186-4, SHA-256 over the 76-byte body; RFC 5480 SubjectPublicKeyInfo;
 * RFC 3279 §2.2.3 ECDSA-Sig-Value) with OpenSSL 3's EVP API. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "device.h"
#include "proto.h"

static void why_set(char *why, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void why_set(char *why, size_t cap, const char *fmt, ...)
{
    if (why == NULL || cap == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, cap, fmt, ap);
    va_end(ap);
}

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void hex(const uint8_t *in, size_t n, char *out)
{
    static const char d[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = d[in[i] >> 4];
        out[2 * i + 1] = d[in[i] & 15];
    }
    out[2 * n] = '\0';
}

/* A P-256 public key from a DER SubjectPublicKeyInfo, or NULL. */
static EVP_PKEY *p256_key(const uint8_t *spki, size_t len)
{
    if (spki == NULL || len == 0 || len > DEVICE_SPKI_MAX)
        return NULL;
    const unsigned char *p = spki;
    EVP_PKEY *k = d2i_PUBKEY(NULL, &p, (long)len);
    if (k == NULL || p != spki + len) {
        EVP_PKEY_free(k);
        ERR_clear_error();
        return NULL;
    }
    char group[64] = "";
    size_t gl = 0;
    if (!EVP_PKEY_is_a(k, "EC") ||
        EVP_PKEY_get_utf8_string_param(k, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group, &gl) !=
            1 ||
        strcmp(group, "prime256v1") != 0) {
        EVP_PKEY_free(k);
        ERR_clear_error();
        return NULL;
    }
    return k;
}

bool device_info_parse(const uint8_t *p, size_t len, device_info_t *out)
{
    memset(out, 0, sizeof *out);
    /* flags (1) · counter (4) · version (3) · key length L (1) · SPKI (L) */
    if (p == NULL || len < 9)
        return false;
    size_t kl = p[8];
    if (len != 9u + kl || kl > DEVICE_SPKI_MAX)
        return false;
    out->flags = p[0];
    out->counter = be32(p + 1);
    memcpy(out->version, p + 5, 3);
    if (kl > 0) {
        EVP_PKEY *k = p256_key(p + 9, kl);
        if (k == NULL)
            return false;
        EVP_PKEY_free(k);
        memcpy(out->spki, p + 9, kl);
    }
    out->spki_len = kl;
    return true;
}

void device_key_fingerprint(const uint8_t *spki, size_t len, char out[DEVICE_FPR_HEX])
{
    uint8_t h[32];
    unsigned int hl = 0;
    if (spki == NULL || EVP_Digest(spki, len, h, &hl, EVP_sha256(), NULL) != 1 || hl != 32) {
        out[0] = '\0';
        return;
    }
    hex(h, 32, out);
}

bool device_receipt_parse(const uint8_t *buf, size_t len, device_receipt_t *out, char *why,
                          size_t why_cap)
{
    memset(out, 0, sizeof *out);
    if (buf == NULL || len < DEVICE_RECEIPT_BODY + 1u + 8u || len > DEVICE_RECEIPT_MAX) {
        why_set(why, why_cap, "receipt of %zu bytes (77+8..%d)", len, DEVICE_RECEIPT_MAX);
        return false;
    }
    if (memcmp(buf, "CRCP", 4) != 0 || buf[4] != 0x01) {
        why_set(why, why_cap, "not a receipt of format 01 (magic or version)");
        return false;
    }
    size_t n = buf[DEVICE_RECEIPT_BODY];
    if (n == 0 || n > DEVICE_RECEIPT_SIG_MAX || len != DEVICE_RECEIPT_BODY + 1u + n) {
        why_set(why, why_cap, "receipt signature length %zu does not match the %zu bytes", n, len);
        return false;
    }
    if (buf[5] != 0x81 && buf[5] != 0x82) {
        why_set(why, why_cap, "receipt key reference %02X (81 or 82)", buf[5]);
        return false;
    }
    if ((buf[6] & ~(DEVICE_RCPT_CONTENT_CHECKED | DEVICE_RCPT_ANNOUNCED)) != 0) {
        why_set(why, why_cap, "receipt flags %02X unknown", buf[6]);
        return false;
    }
    size_t d = buf[7];
    if (d != 20 && d != 32) {
        why_set(why, why_cap, "receipt digest length %zu (20 or 32)", d);
        return false;
    }
    for (size_t i = 12 + d; i < 44; i++) {
        if (buf[i] != 0) {
            why_set(why, why_cap, "receipt digest field not zero after %zu bytes", d);
            return false;
        }
    }
    memcpy(out->raw, buf, len);
    out->raw_len = len;
    out->key_ref = buf[5];
    out->flags = buf[6];
    out->digest_len = (uint8_t)d;
    out->counter = be32(buf + 8);
    memcpy(out->digest, buf + 12, d);
    memcpy(out->display_hash, buf + 44, 32);
    out->sig_len = n;
    return true;
}

bool device_receipt_verify(const device_receipt_t *r, const uint8_t *spki, size_t spki_len,
                           char *why, size_t why_cap)
{
    EVP_PKEY *k = p256_key(spki, spki_len);
    if (k == NULL) {
        why_set(why, why_cap, "the device key is not a P-256 public key");
        return false;
    }
    bool ok = false;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    if (md != NULL && r->raw_len == DEVICE_RECEIPT_BODY + 1u + r->sig_len &&
        EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, k) == 1)
        ok = EVP_DigestVerify(md, r->raw + DEVICE_RECEIPT_BODY + 1, r->sig_len, r->raw,
                              DEVICE_RECEIPT_BODY) == 1;
    if (!ok)
        why_set(why, why_cap,
                "the receipt's signature does not verify with the device key (altered, or "
                "signed by another device)");
    EVP_MD_CTX_free(md);
    EVP_PKEY_free(k);
    ERR_clear_error();
    return ok;
}

json_object *device_receipt_json(const device_receipt_t *r)
{
    json_object *o = json_object_new_object();
    if (o == NULL)
        return NULL;
    proto_add_b64(o, "data", r->raw, r->raw_len);
    json_object_object_add(o, "counter", json_object_new_int64((int64_t)r->counter));
    json_object_object_add(o, "key", json_object_new_string(r->key_ref == 0x81 ? "sign" : "auth"));
    json_object_object_add(o, "flags", json_object_new_int(r->flags));
    json_object_object_add(o, "announced",
                           json_object_new_boolean((r->flags & DEVICE_RCPT_ANNOUNCED) != 0));
    json_object_object_add(o, "content_checked",
                           json_object_new_boolean((r->flags & DEVICE_RCPT_CONTENT_CHECKED) != 0));
    char h[65];
    hex(r->digest, r->digest_len, h);
    json_object_object_add(o, "digest", json_object_new_string(h));
    hex(r->display_hash, 32, h);
    json_object_object_add(o, "display_hash", json_object_new_string(h));
    return o;
}
