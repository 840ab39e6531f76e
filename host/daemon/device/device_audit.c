/* device_audit: the receipts stored in cachetd's audit log, checked against
 * the pinned device key (docs/cachet.md "cachet audit verify"). The hash chain
 * (audit.c) shows the log was not edited after the fact by someone without the
 * means to rewrite it all; a receipt shows the appliance itself confirmed and
 * counted that signature, which no rewrite of the log can forge. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "audit.h"
#include "device.h"
#include "proto.h"

static void reason_set(device_audit_result_t *out, uint64_t line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void reason_set(device_audit_result_t *out, uint64_t line, const char *fmt, ...)
{
    out->ok = false;
    out->first_bad = line;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out->reason, sizeof out->reason, fmt, ap);
    va_end(ap);
}

/* One DER TLV at p[0..n): tag, and the value's offset and length (definite
 * lengths of at most 2 bytes: X.690 §8.1.3). */
static bool tlv(const uint8_t *p, size_t n, uint8_t *tag, size_t *voff, size_t *vlen)
{
    if (n < 2)
        return false;
    *tag = p[0];
    size_t l = p[1], o = 2;
    if (l & 0x80u) {
        size_t nb = l & 0x7Fu;
        if (nb == 0 || nb > 2 || n < 2 + nb)
            return false;
        l = 0;
        for (size_t i = 0; i < nb; i++)
            l = l << 8 | p[2 + i];
        o += nb;
    }
    if (l > n - o)
        return false;
    *voff = o;
    *vlen = l;
    return true;
}

bool device_signed_attrs_digest(const uint8_t *sa, size_t len, uint8_t out[32])
{
    static const uint8_t md_oid[] = {0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x09, 0x04};
    uint8_t tag;
    size_t off, l;
    if (sa == NULL || !tlv(sa, len, &tag, &off, &l) || tag != 0x31 || off + l != len)
        return false;
    const uint8_t *p = sa + off, *end = sa + off + l;
    int found = 0;
    while (p < end) {
        size_t ao, al;
        if (!tlv(p, (size_t)(end - p), &tag, &ao, &al) || tag != 0x30)
            return false;
        const uint8_t *a = p + ao, *aend = p + ao + al;
        size_t oo, ol, vo, vl;
        if (!tlv(a, (size_t)(aend - a), &tag, &oo, &ol) || tag != 0x06)
            return false;
        bool is_md = ol == sizeof md_oid && memcmp(a + oo, md_oid, ol) == 0;
        const uint8_t *vs = a + oo + ol;
        if (!tlv(vs, (size_t)(aend - vs), &tag, &vo, &vl) || tag != 0x31 || vs + vo + vl != aend)
            return false;
        if (is_md) {
            size_t so, sl;
            if (!tlv(vs + vo, vl, &tag, &so, &sl) || tag != 0x04 || sl != 32 || so + sl != vl)
                return false; /* exactly one OCTET STRING of 32 bytes (RFC 5652 §11.2) */
            memcpy(out, vs + vo + so, 32);
            found++;
        }
        p += ao + al;
    }
    return found == 1;
}

static const char *str_member(json_object *o, const char *k)
{
    json_object *v = NULL;
    if (o != NULL && json_object_object_get_ex(o, k, &v) &&
        json_object_is_type(v, json_type_string))
        return json_object_get_string(v);
    return NULL;
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

/* One entry's receipt; false with out's reason set. */
static bool check_entry(json_object *e, json_object *rj, uint64_t line, const uint8_t *spki,
                        size_t spki_len, uint64_t *last_counter, device_audit_result_t *out)
{
    uint8_t raw[DEVICE_RECEIPT_MAX];
    size_t rl = 0;
    device_receipt_t r;
    char why[200];
    if (proto_get_b64(rj, "data", true, raw, sizeof raw, &rl) != PROTO_OK) {
        reason_set(out, line, "line %llu: receipt data missing or not base64",
                   (unsigned long long)line);
        return false;
    }
    if (!device_receipt_parse(raw, rl, &r, why, sizeof why)) {
        reason_set(out, line, "line %llu: %s", (unsigned long long)line, why);
        return false;
    }
    if (spki == NULL) {
        reason_set(out, line,
                   "line %llu: a receipt, but no device key is pinned to check it against "
                   "(cachet device)",
                   (unsigned long long)line);
        return false;
    }
    if (!device_receipt_verify(&r, spki, spki_len, why, sizeof why)) {
        reason_set(out, line, "line %llu: receipt %lu: %s", (unsigned long long)line,
                   (unsigned long)r.counter, why);
        return false;
    }
    /* The readable fields beside the data must say what the data says. */
    json_object *mine = device_receipt_json(&r);
    static const char *const keys[] = {"counter",         "key",    "flags",       "announced",
                                       "content_checked", "digest", "display_hash"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        json_object *a = NULL, *b = NULL;
        json_object_object_get_ex(mine, keys[i], &a);
        if (!json_object_object_get_ex(rj, keys[i], &b) || !json_object_equal(a, b)) {
            json_object_put(mine);
            reason_set(out, line, "line %llu: the receipt's \"%s\" does not match its signed data",
                       (unsigned long long)line, keys[i]);
            return false;
        }
    }
    json_object_put(mine);
    if (r.counter <= *last_counter) {
        reason_set(out, line, "line %llu: receipt counter %lu does not follow %llu",
                   (unsigned long long)line, (unsigned long)r.counter,
                   (unsigned long long)*last_counter);
        return false;
    }
    *last_counter = r.counter;
    char dh[65];
    hex(r.digest, r.digest_len, dh);
    const char *sd = str_member(e, "signed_digest");
    if (sd == NULL || strcmp(sd, dh) != 0) {
        reason_set(out, line,
                   "line %llu: the receipt's digest is not the digest this entry signed "
                   "(signed_digest)",
                   (unsigned long long)line);
        return false;
    }
    const char *key = str_member(e, "key");
    const char *want = r.key_ref == 0x81 ? "sign" : "auth";
    if (key == NULL || strcmp(key, want) != 0) {
        reason_set(out, line, "line %llu: the receipt is for the %s key, the entry says %s",
                   (unsigned long long)line, want, key != NULL ? key : "none");
        return false;
    }
    const char *op = str_member(e, "operation");
    if (op != NULL && strcmp(op, "sign-mail") == 0) {
        uint8_t sa[DEVICE_SIGNED_ATTRS_MAX];
        size_t sl = 0;
        uint8_t h[32], md[32];
        const char *cd = str_member(e, "digest");
        if ((r.flags & (DEVICE_RCPT_ANNOUNCED | DEVICE_RCPT_CONTENT_CHECKED)) !=
            (DEVICE_RCPT_ANNOUNCED | DEVICE_RCPT_CONTENT_CHECKED)) {
            reason_set(out, line,
                       "line %llu: a mail signature whose receipt says it was not announced "
                       "and checked (flags %02X)",
                       (unsigned long long)line, r.flags);
            return false;
        }
        if (proto_get_b64(e, "signed_attrs", true, sa, sizeof sa, &sl) != PROTO_OK ||
            EVP_Digest(sa, sl, h, NULL, EVP_sha256(), NULL) != 1 || r.digest_len != 32 ||
            memcmp(h, r.digest, 32) != 0) {
            reason_set(out, line,
                       "line %llu: the entry's signed_attrs are not what the receipt says "
                       "was signed",
                       (unsigned long long)line);
            return false;
        }
        char mh[65];
        if (!device_signed_attrs_digest(sa, sl, md) || cd == NULL ||
            (hex(md, 32, mh), strcmp(mh, cd) != 0)) {
            reason_set(out, line,
                       "line %llu: the entry's content digest is not the messageDigest the "
                       "appliance checked",
                       (unsigned long long)line);
            return false;
        }
    }
    return true;
}

bool device_audit_verify(const char *path, const uint8_t *spki, size_t spki_len,
                         device_audit_result_t *out)
{
    memset(out, 0, sizeof *out);
    out->ok = true;
    FILE *f = path != NULL ? fopen(path, "re") : NULL;
    if (f == NULL) {
        if (path != NULL && errno == ENOENT) {
            snprintf(out->reason, sizeof out->reason, "no audit log yet");
            return true;
        }
        reason_set(out, 0, "%s: %s", path != NULL ? path : "(none)", strerror(errno));
        return false;
    }
    char *line = NULL;
    size_t lcap = 0;
    ssize_t n;
    uint64_t last_counter = 0;
    while (out->ok && (n = getline(&line, &lcap, f)) > 0) {
        out->entries++;
        if ((size_t)n > AUDIT_LINE_MAX) {
            reason_set(out, out->entries, "line %llu: longer than %u bytes",
                       (unsigned long long)out->entries, AUDIT_LINE_MAX);
            break;
        }
        json_tokener *tok = json_tokener_new();
        json_object *e = tok != NULL ? json_tokener_parse_ex(tok, line, (int)n) : NULL;
        json_tokener_free(tok);
        json_object *rj = NULL;
        /* a line that is not JSON is the chain verifier's to report */
        if (e != NULL && json_object_is_type(e, json_type_object) &&
            json_object_object_get_ex(e, "receipt", &rj)) {
            out->receipts++;
            if (!json_object_is_type(rj, json_type_object))
                reason_set(out, out->entries, "line %llu: \"receipt\" is not an object",
                           (unsigned long long)out->entries);
            else
                check_entry(e, rj, out->entries, spki, spki_len, &last_counter, out);
        }
        json_object_put(e);
    }
    free(line);
    fclose(f);
    if (out->ok)
        snprintf(out->reason, sizeof out->reason, "%llu receipt(s) verified with the device key",
                 (unsigned long long)out->receipts);
    return out->ok;
}
