/* Unit tests of cachetd_device (host/daemon/device): receipts (parse, ECDSA
 * P-256 check, tampering), GET_DEVICE_INFO, the device key pinned on first use,
 * the announcement builder, the signedAttrs' messageDigest, the receipt pass
 * over an audit log, and smime's signedAttrs callback feeding an announcement. */
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "audit.h"
#include "device.h"
#include "proto.h"
#include "smime.h"

/* ---- helpers ------------------------------------------------------------ */

static char *tmpdir_new(void)
{
    const char *base = getenv("TMPDIR");
    char tmpl[PATH_MAX];
    snprintf(tmpl, sizeof tmpl, "%s/device-test.XXXXXX", base && base[0] ? base : "/tmp");
    char *d = mkdtemp(tmpl);
    return d ? strdup(d) : NULL;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void tmpdir_free(char *dir)
{
    if (dir)
        (void)nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    free(dir);
}

typedef struct {
    EVP_PKEY *key;
    uint8_t spki[DEVICE_SPKI_MAX];
    size_t spki_len;
} devkey_t;

static void devkey_new(devkey_t *k)
{
    k->key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    assert_non_null(k->key);
    unsigned char *p = k->spki;
    int n = i2d_PUBKEY(k->key, &p);
    assert_true(n > 0 && (size_t)n <= sizeof k->spki);
    k->spki_len = (size_t)n;
}

/* A receipt as the appliance makes it (docs/appliance.md "Receipts"). */
static size_t make_receipt(const devkey_t *k, uint8_t key_ref, uint8_t flags, const uint8_t *digest,
                           size_t dlen, uint32_t counter, uint8_t out[DEVICE_RECEIPT_MAX])
{
    memset(out, 0, DEVICE_RECEIPT_MAX);
    memcpy(out, "CRCP", 4);
    out[4] = 0x01;
    out[5] = key_ref;
    out[6] = flags;
    out[7] = (uint8_t)dlen;
    out[8] = (uint8_t)(counter >> 24);
    out[9] = (uint8_t)(counter >> 16);
    out[10] = (uint8_t)(counter >> 8);
    out[11] = (uint8_t)counter;
    memcpy(out + 12, digest, dlen);
    memset(out + 44, 0x5A, 32); /* display hash */
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    size_t sl = DEVICE_RECEIPT_SIG_MAX;
    assert_int_equal(EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, k->key), 1);
    assert_int_equal(EVP_DigestSign(md, out + 77, &sl, out, 76), 1);
    EVP_MD_CTX_free(md);
    out[76] = (uint8_t)sl;
    return 77 + sl;
}

static void sha256(const void *p, size_t n, uint8_t out[32])
{
    assert_int_equal(EVP_Digest(p, n, out, NULL, EVP_sha256(), NULL), 1);
}

static void hexs(const uint8_t *in, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        sprintf(out + 2 * i, "%02x", in[i]);
}

/* SET OF { contentType id-data, messageDigest md } (RFC 5652 §5.3, §11). */
static size_t make_sattrs(const uint8_t md[32], uint8_t out[128])
{
    static const uint8_t head[] = {
        0x31, 0x4B, 0x30, 0x18, 0x06, 0x09, 0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x09, 0x03,
        0x31, 0x0B, 0x06, 0x09, 0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x07, 0x01, 0x30, 0x2F,
        0x06, 0x09, 0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x09, 0x04, 0x31, 0x22, 0x04, 0x20};
    memcpy(out, head, sizeof head);
    memcpy(out + sizeof head, md, 32);
    return sizeof head + 32;
}

/* ---- receipts ----------------------------------------------------------- */

static void test_receipt_roundtrip(void **state)
{
    (void)state;
    devkey_t k;
    devkey_new(&k);
    uint8_t d[32], raw[DEVICE_RECEIPT_MAX];
    sha256("x", 1, d);
    size_t n = make_receipt(&k, 0x81, 0x03, d, 32, 7, raw);
    device_receipt_t r;
    char why[200];
    assert_true(device_receipt_parse(raw, n, &r, why, sizeof why));
    assert_int_equal(r.key_ref, 0x81);
    assert_int_equal(r.flags, 3);
    assert_int_equal(r.counter, 7);
    assert_int_equal(r.digest_len, 32);
    assert_memory_equal(r.digest, d, 32);
    assert_true(device_receipt_verify(&r, k.spki, k.spki_len, why, sizeof why));
    json_object *o = device_receipt_json(&r);
    json_object *v = NULL;
    assert_true(json_object_object_get_ex(o, "counter", &v));
    assert_int_equal(json_object_get_int64(v), 7);
    assert_true(json_object_object_get_ex(o, "key", &v));
    assert_string_equal(json_object_get_string(v), "sign");
    assert_true(json_object_object_get_ex(o, "announced", &v));
    assert_true(json_object_get_boolean(v));
    json_object_put(o);
    EVP_PKEY_free(k.key);
}

static void test_receipt_tampered(void **state)
{
    (void)state;
    devkey_t k, other;
    devkey_new(&k);
    devkey_new(&other);
    uint8_t d[32], raw[DEVICE_RECEIPT_MAX];
    sha256("y", 1, d);
    size_t n = make_receipt(&k, 0x81, 0x00, d, 32, 3, raw);
    device_receipt_t r;
    char why[200];
    /* every byte of the body, and of the signature, counts */
    for (size_t i = 0; i < n; i += 5) {
        if (i == 76)
            continue; /* the length byte: parse refuses it, tested below */
        uint8_t bad[DEVICE_RECEIPT_MAX];
        memcpy(bad, raw, n);
        bad[i] ^= 0x01;
        if (device_receipt_parse(bad, n, &r, why, sizeof why))
            assert_false(device_receipt_verify(&r, k.spki, k.spki_len, why, sizeof why));
    }
    assert_true(device_receipt_parse(raw, n, &r, why, sizeof why));
    assert_false(device_receipt_verify(&r, other.spki, other.spki_len, why, sizeof why));
    assert_non_null(strstr(why, "does not verify"));
    /* not a P-256 key */
    assert_false(device_receipt_verify(&r, k.spki, k.spki_len - 1, why, sizeof why));
    EVP_PKEY_free(k.key);
    EVP_PKEY_free(other.key);
}

static void test_receipt_malformed(void **state)
{
    (void)state;
    devkey_t k;
    devkey_new(&k);
    uint8_t d[32] = {1, 2, 3}, raw[DEVICE_RECEIPT_MAX], bad[DEVICE_RECEIPT_MAX + 4];
    size_t n = make_receipt(&k, 0x82, 0x00, d, 20, 1, raw);
    device_receipt_t r;
    char why[200];
    assert_true(device_receipt_parse(raw, n, &r, why, sizeof why));
    assert_int_equal(r.digest_len, 20);
    assert_false(device_receipt_parse(raw, n - 1, &r, why, sizeof why)); /* truncated */
    assert_false(device_receipt_parse(raw, 10, &r, why, sizeof why));
    assert_false(device_receipt_parse(NULL, n, &r, why, sizeof why));
    memcpy(bad, raw, n);
    bad[n] = 0;
    assert_false(device_receipt_parse(bad, n + 1, &r, why, sizeof why)); /* trailing byte */
    struct {
        size_t off;
        uint8_t val;
    } cases[] = {{0, 'X'}, {4, 0x02}, {5, 0x83}, {6, 0x04}, {7, 16},
                 {7, 33},  {40, 1},   {76, 0},   {76, 73}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        memcpy(bad, raw, n);
        bad[cases[i].off] = cases[i].val;
        assert_false(device_receipt_parse(bad, n, &r, why, sizeof why));
    }
    EVP_PKEY_free(k.key);
}

static void test_device_info(void **state)
{
    (void)state;
    devkey_t k;
    devkey_new(&k);
    uint8_t p[9 + DEVICE_SPKI_MAX] = {0x01, 0, 0, 0, 9, 1, 2, 3, (uint8_t)k.spki_len};
    memcpy(p + 9, k.spki, k.spki_len);
    device_info_t info;
    assert_true(device_info_parse(p, 9 + k.spki_len, &info));
    assert_int_equal(info.flags, DEVICE_INFO_NEW_KEY);
    assert_int_equal(info.counter, 9);
    assert_int_equal(info.version[2], 3);
    assert_int_equal(info.spki_len, k.spki_len);
    assert_false(device_info_parse(p, 9 + k.spki_len - 1, &info)); /* L mismatch */
    assert_false(device_info_parse(p, 8, &info));
    p[9 + 30] ^= 0xFF; /* a damaged key */
    assert_false(device_info_parse(p, 9 + k.spki_len, &info));
    uint8_t nokey[9] = {DEVICE_INFO_NO_KEY, 0, 0, 0, 0, 0, 1, 0, 0};
    assert_true(device_info_parse(nokey, sizeof nokey, &info));
    assert_int_equal(info.spki_len, 0);
    /* an RSA key is not the appliance's */
    EVP_PKEY *rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
    assert_non_null(rsa);
    unsigned char *q = NULL;
    int rl = i2d_PUBKEY(rsa, &q);
    assert_true(rl > DEVICE_SPKI_MAX);
    OPENSSL_free(q);
    EVP_PKEY_free(rsa);
    char f1[DEVICE_FPR_HEX], f2[DEVICE_FPR_HEX];
    device_key_fingerprint(k.spki, k.spki_len, f1);
    uint8_t h[32];
    sha256(k.spki, k.spki_len, h);
    hexs(h, 32, f2);
    assert_string_equal(f1, f2);
    EVP_PKEY_free(k.key);
}

/* ---- pin on first use ---------------------------------------------------- */

static void test_pin_first_use(void **state)
{
    (void)state;
    char *dir = tmpdir_new();
    assert_non_null(dir);
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/state/device.pin", dir); /* state dir made on demand */
    devkey_t a, b;
    devkey_new(&a);
    devkey_new(&b);
    char fpr[DEVICE_FPR_HEX], fa[DEVICE_FPR_HEX], err[256];
    device_key_fingerprint(a.spki, a.spki_len, fa);

    assert_int_equal(device_pin_check(path, a.spki, a.spki_len, fpr, err, sizeof err),
                     DEVICE_PIN_NEW);
    assert_string_equal(fpr, fa);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(device_pin_check(path, a.spki, a.spki_len, fpr, err, sizeof err),
                     DEVICE_PIN_MATCH);

    /* another key: reported, and the pin is left alone */
    assert_int_equal(device_pin_check(path, b.spki, b.spki_len, fpr, err, sizeof err),
                     DEVICE_PIN_MISMATCH);
    assert_string_equal(fpr, fa);
    assert_int_equal(device_pin_check(path, a.spki, a.spki_len, fpr, err, sizeof err),
                     DEVICE_PIN_MATCH);
    uint8_t spki[DEVICE_SPKI_MAX];
    size_t len = 0;
    bool exists = false;
    assert_true(device_pin_load(path, spki, sizeof spki, &len, &exists, err, sizeof err));
    assert_true(exists);
    assert_memory_equal(spki, a.spki, a.spki_len);

    /* an explicit repin */
    assert_true(device_pin_replace(path, b.spki, b.spki_len, err, sizeof err));
    assert_int_equal(device_pin_check(path, b.spki, b.spki_len, fpr, err, sizeof err),
                     DEVICE_PIN_MATCH);
    assert_int_equal(device_pin_check(path, a.spki, a.spki_len, fpr, err, sizeof err),
                     DEVICE_PIN_MISMATCH);

    /* a pin others could have written proves nothing */
    assert_int_equal(chmod(path, 0644), 0);
    assert_int_equal(device_pin_check(path, b.spki, b.spki_len, fpr, err, sizeof err),
                     DEVICE_PIN_ERROR);
    assert_non_null(strstr(err, "not private"));
    assert_int_equal(chmod(path, 0600), 0);

    /* a damaged pin file is an error, never silently replaced */
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("{\"version\":1,\"spki\":\"AAAA\",\"sha256\":\"00\"}\n", f);
    fclose(f);
    assert_int_equal(device_pin_check(path, b.spki, b.spki_len, fpr, err, sizeof err),
                     DEVICE_PIN_ERROR);
    assert_false(device_pin_load(path, spki, sizeof spki, &len, &exists, err, sizeof err));
    assert_true(exists);

    /* absent */
    unlink(path);
    assert_false(device_pin_load(path, spki, sizeof spki, &len, &exists, err, sizeof err));
    assert_false(exists);
    assert_int_equal(device_pin_check(path, NULL, 0, fpr, err, sizeof err), DEVICE_PIN_ERROR);
    assert_string_equal(device_pin_status_name(DEVICE_PIN_NEW), "pinned-now");
    assert_string_equal(device_pin_status_name(DEVICE_PIN_MISMATCH), "mismatch");
    EVP_PKEY_free(a.key);
    EVP_PKEY_free(b.key);
    tmpdir_free(dir);
}

/* ---- announcement -------------------------------------------------------- */

typedef struct {
    size_t n[8]; /* fields per tag */
    char text[8][8][600];
    uint32_t att_size[8];
    size_t total;
} parsed_t;

static bool utf8_clean(const char *s)
{
    const uint8_t *p = (const uint8_t *)s;
    for (; *p; p++) {
        if (*p < 0x20 || *p == 0x7F)
            return false;
        if (*p == 0xC2 && p[1] >= 0x80 && p[1] <= 0x9F)
            return false;
    }
    return true;
}

static void parse_announce(const uint8_t *m, size_t len, parsed_t *p)
{
    memset(p, 0, sizeof *p);
    p->total = len;
    size_t o = 0;
    while (o < len) {
        assert_true(len - o >= 3);
        uint8_t tag = m[o];
        size_t l = (size_t)m[o + 1] << 8 | m[o + 2];
        assert_true(l <= len - o - 3);
        assert_true(tag >= 1 && tag <= 6);
        const uint8_t *v = m + o + 3;
        size_t k = p->n[tag]++;
        if (k < 8 && (tag <= 3 || tag == 4)) {
            if (tag == 4) {
                p->att_size[k] =
                    (uint32_t)v[0] << 24 | (uint32_t)v[1] << 16 | (uint32_t)v[2] << 8 | v[3];
                memcpy(p->text[tag][k], v + 4, l - 4);
                assert_true(l - 4 >= 1 && l - 4 <= DEVICE_TEXT_MAX);
            } else {
                memcpy(p->text[tag][k], v, l);
            }
            assert_true(utf8_clean(p->text[tag][k]));
        }
        if (tag == 1 || tag == 2)
            assert_true(l >= 1 && l <= DEVICE_TEXT_MAX);
        if (tag == 3)
            assert_true(l <= DEVICE_SUBJECT_MAX);
        if (tag == 5)
            assert_int_equal(l, 32);
        o += 3 + l;
    }
}

static void test_announce_fields(void **state)
{
    (void)state;
    smime_summary_t sm;
    memset(&sm, 0, sizeof sm);
    snprintf(sm.from, sizeof sm.from, "Dr Test <test@medecin.mssante.fr>");
    snprintf(sm.to, sizeof sm.to,
             "\"Dupont, Jean\" <j.dupont@x.fr>, b@y.fr (Secr\xC3\xA9tariat, RDC),   c@z.fr");
    snprintf(sm.subject, sizeof sm.subject, "Compte\trendu\r\n  du 12\x01 mars \xC0\xAF");
    sm.attachment_count = 10;
    for (size_t i = 0; i < 10; i++) {
        snprintf(sm.attachments[i].name, sizeof sm.attachments[i].name, "pj%zu.pdf", i);
        sm.attachments[i].size = 1000 * (i + 1);
    }
    memset(sm.content_digest, 0xAB, 32);
    uint8_t sa[128], msg[DEVICE_ANNOUNCE_MAX];
    size_t sal = make_sattrs(sm.content_digest, sa), len = 0;
    assert_true(device_announce_build(&sm, sa, sal, msg, sizeof msg, &len));
    parsed_t p;
    parse_announce(msg, len, &p);
    assert_int_equal(p.n[1], 1);
    assert_string_equal(p.text[1][0], "Dr Test <test@medecin.mssante.fr>");
    assert_int_equal(p.n[2], 3);
    assert_string_equal(p.text[2][0], "\"Dupont, Jean\" <j.dupont@x.fr>");
    assert_string_equal(p.text[2][1], "b@y.fr (Secr\xC3\xA9tariat, RDC)");
    assert_string_equal(p.text[2][2], "c@z.fr");
    assert_int_equal(p.n[3], 1);
    assert_string_equal(p.text[3][0], "Compte rendu du 12 mars ??");
    assert_int_equal(p.n[4], 8); /* 7 + "(+3)" */
    assert_string_equal(p.text[4][6], "pj6.pdf");
    assert_int_equal(p.att_size[6], 7000);
    assert_string_equal(p.text[4][7], "(+3)");
    assert_int_equal(p.att_size[7], 8000 + 9000 + 10000);
    assert_int_equal(p.n[5], 1);
    assert_int_equal(p.n[6], 1);
    /* the signedAttrs are the last field, byte for byte */
    assert_memory_equal(msg + len - sal, sa, sal);

    /* refused: no signedAttrs, or too many of them */
    assert_false(device_announce_build(&sm, sa, 0, msg, sizeof msg, &len));
    uint8_t big[DEVICE_SIGNED_ATTRS_MAX + 1] = {0x31};
    assert_false(device_announce_build(&sm, big, sizeof big, msg, sizeof msg, &len));
    assert_false(device_announce_build(&sm, sa, sal, msg, 60, &len));
}

static void test_announce_caps(void **state)
{
    (void)state;
    smime_summary_t *sm = calloc(1, sizeof *sm);
    assert_non_null(sm);
    /* From over 254 bytes of 2-byte characters; 40 recipients; a 511-byte subject */
    for (size_t i = 0; i + 2 < 255; i += 2)
        memcpy(sm->from + i, "\xC3\xA9", 2);
    sm->from[254] = 'x'; /* 255 bytes */
    size_t o = 0;
    for (int i = 0; i < 40 && o + 30 < sizeof sm->to; i++)
        o += (size_t)snprintf(sm->to + o, sizeof sm->to - o, "%sdest%02d@hopital.fr", i ? ", " : "",
                              i);
    memset(sm->subject, 'S', 511);
    memset(sm->content_digest, 1, 32);
    uint8_t sa[DEVICE_SIGNED_ATTRS_MAX], msg[DEVICE_ANNOUNCE_MAX];
    memset(sa, 0, sizeof sa);
    size_t len = 0;
    assert_true(device_announce_build(sm, sa, sizeof sa, msg, sizeof msg, &len));
    assert_true(len <= DEVICE_ANNOUNCE_MAX);
    parsed_t *p = calloc(1, sizeof *p);
    parse_announce(msg, len, p);
    assert_int_equal(p->n[1], 1);
    size_t fl = strlen(p->text[1][0]);
    assert_true(fl <= DEVICE_TEXT_MAX);
    assert_memory_equal(p->text[1][0] + fl - 3, "\xE2\x80\xA6", 3); /* cut, marked */
    assert_true(p->n[2] >= 1 && p->n[2] <= DEVICE_TO_MAX);
    assert_string_equal(p->text[2][0], "dest00@hopital.fr");
    assert_non_null(strstr(p->text[2][p->n[2] - 1], "(+"));
    assert_int_equal(p->n[6], 1);
    /* all of it within 2048: the subject gave way */
    size_t sl = strlen(p->text[3][0]);
    assert_true(p->n[3] <= 1 && sl <= DEVICE_SUBJECT_MAX);
    free(p);
    free(sm);
}

static void test_text_clean(void **state)
{
    (void)state;
    char out[64];
    assert_int_equal(device_text_clean("a\tb\r\n c ", 8, out, sizeof out, 40), 5);
    assert_string_equal(out, "a b c");
    device_text_clean("\xC3\xA9t\xC3\xA9", 5, out, sizeof out, 40);
    assert_string_equal(out, "\xC3\xA9t\xC3\xA9");
    device_text_clean("\xC0\xAF\xED\xA0\x80x\xC2\x85y\x7Fz", 11, out, sizeof out, 40);
    assert_string_equal(out, "?????x y z");
    /* cut at a character boundary, with "…" */
    size_t n = device_text_clean("\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9", 8, out, sizeof out, 6);
    assert_int_equal(n, 5);
    assert_string_equal(out, "\xC3\xA9\xE2\x80\xA6");
    n = device_text_clean("abcdef", 6, out, sizeof out, 6);
    assert_string_equal(out, "abcdef"); /* exactly fits: not cut */
    assert_int_equal(n, 6);
    assert_int_equal(device_text_clean("", 0, out, sizeof out, 6), 0);
}

static void test_signed_attrs_digest(void **state)
{
    (void)state;
    uint8_t md[32], got[32], sa[128];
    memset(md, 0x42, 32);
    size_t n = make_sattrs(md, sa);
    assert_true(device_signed_attrs_digest(sa, n, got));
    assert_memory_equal(got, md, 32);
    assert_false(device_signed_attrs_digest(sa, n - 1, got)); /* truncated */
    sa[0] = 0x30;
    assert_false(device_signed_attrs_digest(sa, n, got)); /* not a SET */
    sa[0] = 0x31;
    /* the messageDigest twice */
    uint8_t two[200];
    size_t a = n - 2; /* contents of the SET */
    two[0] = 0x31;
    two[1] = (uint8_t)(a + 49);
    memcpy(two + 2, sa + 2, a);
    memcpy(two + 2 + a, sa + 2 + 26, 49);
    assert_false(device_signed_attrs_digest(two, 2 + a + 49, got));
    /* without it */
    uint8_t none[64] = {0x31, 26};
    memcpy(none + 2, sa + 2, 26);
    assert_false(device_signed_attrs_digest(none, 28, got));
}

/* ---- receipts in the audit log ------------------------------------------- */

static void add_entry(audit_log_t *log, const char *op, const char *key, const uint8_t *sd,
                      size_t sdl, const uint8_t *content, const uint8_t *sa, size_t sal,
                      const uint8_t *raw, size_t rl)
{
    json_object *f = json_object_new_object();
    char h[65];
    json_object_object_add(f, "operation", json_object_new_string(op));
    json_object_object_add(f, "key", json_object_new_string(key));
    if (content != NULL) {
        hexs(content, 32, h);
        json_object_object_add(f, "digest", json_object_new_string(h));
    }
    json_object_object_add(f, "result", json_object_new_string("ok"));
    if (sd != NULL) {
        hexs(sd, sdl, h);
        json_object_object_add(f, "signed_digest", json_object_new_string(h));
    }
    if (sa != NULL)
        proto_add_b64(f, "signed_attrs", sa, sal);
    if (raw != NULL) {
        device_receipt_t r;
        assert_true(device_receipt_parse(raw, rl, &r, NULL, 0));
        json_object_object_add(f, "receipt", device_receipt_json(&r));
    }
    assert_true(audit_append(log, f));
    json_object_put(f);
}

/* A log of: verify-pin (no receipt), sign-mail (announced), sign-digest. */
static void write_log(const char *path, const devkey_t *k, int variant)
{
    char err[256];
    audit_log_t *log = audit_open(path, err, sizeof err);
    assert_non_null(log);
    json_object *f = json_object_new_object();
    json_object_object_add(f, "operation", json_object_new_string("verify-pin"));
    json_object_object_add(f, "result", json_object_new_string("ok"));
    assert_true(audit_append(log, f));
    json_object_put(f);

    uint8_t content[32], sa[128], sd[32], raw[DEVICE_RECEIPT_MAX];
    sha256("mail", 4, content);
    size_t sal = make_sattrs(content, sa);
    sha256(sa, sal, sd);
    uint8_t flags = variant == 3 ? 0x02 : 0x03;
    size_t rl = make_receipt(k, 0x81, flags, sd, 32, 5, raw);
    uint8_t other[32];
    sha256("other", 5, other);
    add_entry(log, "sign-mail", "sign", sd, 32, variant == 4 ? other : content, sa, sal, raw, rl);

    uint8_t h[32];
    sha256("doc", 3, h);
    rl = make_receipt(k, 0x81, 0x00, h, 32, variant == 5 ? 5 : 6, raw);
    add_entry(log, "sign-digest", variant == 6 ? "auth" : "sign", variant == 7 ? other : h, 32,
              NULL, NULL, 0, raw, rl);
    audit_close(log);
}

static void test_audit_receipts(void **state)
{
    (void)state;
    char *dir = tmpdir_new();
    assert_non_null(dir);
    devkey_t k, other;
    devkey_new(&k);
    devkey_new(&other);
    device_audit_result_t v;
    char path[PATH_MAX];

    snprintf(path, sizeof path, "%s/good.log", dir);
    write_log(path, &k, 0);
    assert_true(device_audit_verify(path, k.spki, k.spki_len, &v));
    assert_int_equal(v.entries, 3);
    assert_int_equal(v.receipts, 2);
    /* another device's key, or none pinned */
    assert_false(device_audit_verify(path, other.spki, other.spki_len, &v));
    assert_int_equal(v.first_bad, 2);
    assert_non_null(strstr(v.reason, "does not verify"));
    assert_false(device_audit_verify(path, NULL, 0, &v));
    assert_non_null(strstr(v.reason, "no device key is pinned"));

    static const struct {
        int variant;
        uint64_t line;
        const char *why;
    } bad[] = {
        {3, 2, "not announced and checked"}, {4, 2, "content digest"}, {5, 3, "counter"},
        {6, 3, "for the sign key"},          {7, 3, "signed_digest"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(path, sizeof path, "%s/bad%d.log", dir, bad[i].variant);
        write_log(path, &k, bad[i].variant);
        assert_false(device_audit_verify(path, k.spki, k.spki_len, &v));
        assert_int_equal(v.first_bad, bad[i].line);
        if (strstr(v.reason, bad[i].why) == NULL)
            fail_msg("variant %d: %s", bad[i].variant, v.reason);
    }

    /* a receipt's readable fields edited (the data left alone) */
    snprintf(path, sizeof path, "%s/good.log", dir);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char *buf = calloc(1, 65536);
    size_t n = fread(buf, 1, 65535, f);
    fclose(f);
    char *c = strstr(buf, "\"counter\":6");
    assert_non_null(c);
    c[10] = '9';
    snprintf(path, sizeof path, "%s/edited.log", dir);
    f = fopen(path, "w");
    fwrite(buf, 1, n, f);
    fclose(f);
    free(buf);
    assert_false(device_audit_verify(path, k.spki, k.spki_len, &v));
    assert_non_null(strstr(v.reason, "\"counter\" does not match"));

    /* no log yet */
    snprintf(path, sizeof path, "%s/none.log", dir);
    assert_true(device_audit_verify(path, k.spki, k.spki_len, &v));
    assert_int_equal(v.receipts, 0);
    EVP_PKEY_free(k.key);
    EVP_PKEY_free(other.key);
    tmpdir_free(dir);
}

/* ---- smime's signedAttrs callback ---------------------------------------- */

typedef struct {
    EVP_PKEY *key;
    bool called;
    size_t announce_len;
} cb_t;

static int attrs_cb(void *vctx, const smime_summary_t *summary, const uint8_t *sa, size_t sal,
                    const uint8_t hash[32], uint8_t *sig, size_t cap, size_t *sig_len)
{
    cb_t *c = vctx;
    c->called = true;
    uint8_t h[32], md[32];
    sha256(sa, sal, h);
    assert_memory_equal(h, hash, 32); /* the hash is over exactly these bytes */
    assert_int_equal(sa[0], 0x31);
    assert_true(device_signed_attrs_digest(sa, sal, md));
    assert_memory_equal(md, summary->content_digest, 32);
    assert_string_equal(summary->subject, "Essai");
    uint8_t msg[DEVICE_ANNOUNCE_MAX];
    assert_true(device_announce_build(summary, sa, sal, msg, sizeof msg, &c->announce_len));
    EVP_PKEY_CTX *pc = EVP_PKEY_CTX_new(c->key, NULL);
    size_t sl = cap;
    assert_int_equal(EVP_PKEY_sign_init(pc), 1);
    assert_true(EVP_PKEY_CTX_set_rsa_padding(pc, RSA_PKCS1_PADDING) > 0);
    assert_true(EVP_PKEY_CTX_set_signature_md(pc, EVP_sha256()) > 0);
    assert_int_equal(EVP_PKEY_sign(pc, sig, &sl, hash, 32), 1);
    EVP_PKEY_CTX_free(pc);
    *sig_len = sl;
    return 0;
}

static void test_smime_attrs_callback(void **state)
{
    (void)state;
    char p[PATH_MAX];
    snprintf(p, sizeof p, "%s/profiles/cps-rpps/sign.key.pem", CACHET_TEST_PKI_DIR);
    FILE *f = fopen(p, "r");
    if (f == NULL)
        skip();
    cb_t c = {.key = PEM_read_PrivateKey(f, NULL, NULL, NULL)};
    fclose(f);
    assert_non_null(c.key);
    snprintf(p, sizeof p, "%s/profiles/cps-rpps/sign.crt.pem", CACHET_TEST_PKI_DIR);
    f = fopen(p, "r");
    assert_non_null(f);
    X509 *cert = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    assert_non_null(cert);
    char *dir = tmpdir_new();
    char in[PATH_MAX], out[PATH_MAX];
    snprintf(in, sizeof in, "%s/in.eml", dir);
    snprintf(out, sizeof out, "%s/out.eml", dir);
    f = fopen(in, "w");
    fputs("From: a@b.fr\r\nTo: c@d.fr\r\nSubject: Essai\r\n\r\nBonjour\r\n", f);
    fclose(f);
    int ifd = open(in, O_RDONLY), ofd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    smime_sign_args_t a = {
        .in_fd = ifd, .out_fd = ofd, .signer = cert, .sign_attrs = attrs_cb, .sign_ctx = &c};
    smime_summary_t sm;
    int ss = 0;
    assert_int_equal(smime_sign(&a, &sm, &ss), SMIME_OK);
    assert_true(c.called);
    assert_true(c.announce_len > 0);
    close(ifd);
    close(ofd);
    X509_free(cert);
    EVP_PKEY_free(c.key);
    tmpdir_free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_receipt_roundtrip),    cmocka_unit_test(test_receipt_tampered),
        cmocka_unit_test(test_receipt_malformed),    cmocka_unit_test(test_device_info),
        cmocka_unit_test(test_pin_first_use),        cmocka_unit_test(test_announce_fields),
        cmocka_unit_test(test_announce_caps),        cmocka_unit_test(test_text_clean),
        cmocka_unit_test(test_signed_attrs_digest),  cmocka_unit_test(test_audit_receipts),
        cmocka_unit_test(test_smime_attrs_callback),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
