/* card_applet: the CPx (IAS-ECC) applet of the virtual CPS3 card.
 * References: shared/spec/cpx-card.md (part A wins over part B),
 * ISO/IEC 7816-4 (APDU, SELECT, READ BINARY, VERIFY, ...), ISO/IEC 7816-8
 * (MSE, PSO), ISO/IEC 7816-9 / IAS-ECC (SDO, DOCP), PKCS#15 (EF contents),
 * PKCS#1 v1.5 (RFC 8017 §8.2, §9.2). */
#include "card_applet.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>

#include "card_sha.h"

/* ------------------------------------------------------------------ */
/* Constants                                                            */

/* DF name of the CPx IAS application (cpx-card.md §4, §6.1). */
static const uint8_t cpx_aid[13] = {0xE8, 0x28, 0xBD, 0x08, 0x0F, 0x80, 0x25,
                                    0x00, 0x00, 0x01, 0xFF, 0x00, 0x10};

/* EF.ATR content (cpx-card.md §3.1): 47 bytes. */
static const uint8_t ef_atr_content[47] = {
    0x80, 0x43, 0x01, 0xB8, 0x46, 0x04, 0x00, 0x00, 0x00, 0x10, 0x47, 0x03, 0xB4, 0x01, 0x80, 0xE0,
    0x10, 0x02, 0x02, 0x00, 0xFF, 0x02, 0x02, 0x00, 0xFF, 0x02, 0x02, 0x01, 0x00, 0x02, 0x02, 0x01,
    0x00, 0x78, 0x08, 0x06, 0x06, 0x2B, 0x81, 0x22, 0xF8, 0x78, 0x02, 0x82, 0x02, 0x90, 0x00};

/* Key references (part A item 2). */
enum { KEY_SIG = 0x81, KEY_AUT = 0x82 };
/* IAS-ECC algorithm references (cpx-card.md §10.4). */
enum {
    ALG_RSA_PKCS1 = 0x02,
    ALG_RSA_DECIPHER = 0x0A,
    ALG_SHA1 = 0x10,
    ALG_SHA256 = 0x40,
    ALG_RSA_SHA1 = 0x12,
    ALG_RSA_SHA256 = 0x42,
};
/* SDO classes (cpx-card.md §5.3). */
enum { SDO_CHV = 0x01, SDO_RSA_PRIV = 0x10, SDO_RSA_PUB = 0x20, SDO_SE = 0x7B };

/* Files. Index order is fixed; FILE_MF must be 0. */
enum {
    FILE_MF,
    FILE_ATR,
    FILE_SN,
    FILE_DIR,
    FILE_APP,
    FILE_ODF,
    FILE_TOKENINFO,
    FILE_AODF,
    FILE_PRKDF,
    FILE_CDF,
    FILE_CERT_AUTH,
    FILE_CERT_SIGN,
    FILE_CERT_CA,
    FILE_COUNT,
    FILE_NONE = -1,
};

typedef struct {
    uint16_t fid;
    uint8_t sfi; /* 0: none */
    bool is_df;
    int parent;
    const uint8_t *data;
    size_t size;
} card_file_t;

#define PKCS15_MAX 512

typedef struct {
    bool at_set, dst_set, ht_set, ct_set;
    uint8_t at_key, at_alg;
    uint8_t dst_key, dst_alg;
    uint8_t ht_alg;
    uint8_t ct_key, ct_alg;
    bool hash_ready;
    card_hash_t hash_alg;
    uint8_t hash[CARD_SHA256_LEN];
} card_mse_t;

struct card_applet {
    card_config_t cfg; /* cert pointers re-pointed to our copies */
    card_persist_t st;
    card_file_t files[FILE_COUNT];
    uint8_t ef_sn[2 + CARD_SERIAL_LEN];
    uint8_t ef_dir[64];
    size_t ef_dir_len;
    uint8_t odf[64];
    size_t odf_len;
    uint8_t tokeninfo[PKCS15_MAX];
    size_t tokeninfo_len;
    uint8_t aodf[64];
    size_t aodf_len;
    uint8_t prkdf[PKCS15_MAX];
    size_t prkdf_len;
    uint8_t cdf[PKCS15_MAX];
    size_t cdf_len;
    uint8_t *certs[3];

    /* volatile state */
    int cur_df;
    int cur_ef;
    bool pin_verified;
    bool puk_verified;
    card_mse_t mse;
    bool chaining;
    uint8_t chain_hdr[4];
    size_t chain_len;
    uint8_t chain[CARD_CHAIN_MAX];
};

_Static_assert(CARD_RESP_MAX >= 2 * 256 + 32, "response buffer holds a public-key SDO");
_Static_assert(CARD_CHAIN_MAX >= 2 * 255, "chaining holds a 2048-bit cryptogram");

/* ------------------------------------------------------------------ */
/* A tiny DER/BER-TLV writer. Overflow sets err; nothing is written past cap. */

typedef struct {
    uint8_t *buf;
    size_t cap;
    size_t len;
    bool err;
} wr_t;

static void wr_bytes(wr_t *w, const void *p, size_t n)
{
    if (w->err || n > w->cap - w->len) {
        w->err = true;
        return;
    }
    if (n)
        memcpy(w->buf + w->len, p, n);
    w->len += n;
}

static void wr_u8(wr_t *w, uint8_t b)
{
    wr_bytes(w, &b, 1);
}

static void wr_len(wr_t *w, size_t n)
{
    if (n < 0x80) {
        wr_u8(w, (uint8_t)n);
    } else if (n <= 0xFF) {
        wr_u8(w, 0x81);
        wr_u8(w, (uint8_t)n);
    } else if (n <= 0xFFFF) {
        wr_u8(w, 0x82);
        wr_u8(w, (uint8_t)(n >> 8));
        wr_u8(w, (uint8_t)n);
    } else {
        w->err = true;
    }
}

/* tag (1 or 2 bytes: tags > 0xFF are written big-endian) + length + value */
static void wr_tlv(wr_t *w, unsigned tag, const void *v, size_t n)
{
    if (tag > 0xFF)
        wr_u8(w, (uint8_t)(tag >> 8));
    wr_u8(w, (uint8_t)tag);
    wr_len(w, n);
    wr_bytes(w, v, n);
}

/* Wraps w's content from 'start' into a TLV with 'tag' (moves it right). */
static void wr_wrap(wr_t *w, size_t start, unsigned tag)
{
    if (w->err)
        return;
    size_t n = w->len - start;
    uint8_t hdr[5];
    size_t h = 0;
    if (tag > 0xFF)
        hdr[h++] = (uint8_t)(tag >> 8);
    hdr[h++] = (uint8_t)tag;
    if (n < 0x80) {
        hdr[h++] = (uint8_t)n;
    } else if (n <= 0xFF) {
        hdr[h++] = 0x81;
        hdr[h++] = (uint8_t)n;
    } else if (n <= 0xFFFF) {
        hdr[h++] = 0x82;
        hdr[h++] = (uint8_t)(n >> 8);
        hdr[h++] = (uint8_t)n;
    } else {
        w->err = true;
        return;
    }
    if (h > w->cap - w->len) {
        w->err = true;
        return;
    }
    memmove(w->buf + start + h, w->buf + start, n);
    memcpy(w->buf + start, hdr, h);
    w->len += h;
}

/* ------------------------------------------------------------------ */
/* Building the file system (cpx-card.md §3-§6, part A items 2 and 4).  */

static int key_bits(EVP_PKEY *k)
{
    int bits = k ? EVP_PKEY_get_bits(k) : 0;
    return bits > 0 ? bits : 2048;
}

static size_t key_bytes(EVP_PKEY *k)
{
    return (size_t)(key_bits(k) + 7) / 8;
}

static void wr_int_small(wr_t *w, unsigned v)
{
    /* DER INTEGER, positive, v < 0x8000 */
    if (v < 0x80) {
        uint8_t b = (uint8_t)v;
        wr_tlv(w, 0x02, &b, 1);
    } else {
        uint8_t b[2] = {(uint8_t)(v >> 8), (uint8_t)v};
        if (b[0] == 0 && b[1] < 0x80)
            wr_tlv(w, 0x02, b + 1, 1);
        else
            wr_tlv(w, 0x02, b, 2);
    }
}

static void wr_path(wr_t *w, uint16_t fid)
{
    uint8_t p[6] = {0x3F, 0x00, 0x00, 0x01, (uint8_t)(fid >> 8), (uint8_t)fid};
    wr_tlv(w, 0x04, p, fid ? 6 : 4);
}

static void wr_id(wr_t *w, uint8_t last)
{
    uint8_t id[sizeof cpx_aid + 1];
    memcpy(id, cpx_aid, sizeof cpx_aid);
    id[sizeof cpx_aid] = last;
    wr_tlv(w, 0x04, id, sizeof id);
}

/* EF.DIR (§6.1): one application template. */
static bool build_dir(card_applet_t *a)
{
    wr_t w = {a->ef_dir, sizeof a->ef_dir, 0, false};
    static const uint8_t path[4] = {0x3F, 0x00, 0x00, 0x01};
    wr_tlv(&w, 0x4F, cpx_aid, sizeof cpx_aid);
    wr_tlv(&w, 0x50, a->cfg.label, strlen(a->cfg.label));
    wr_tlv(&w, 0x51, path, sizeof path);
    wr_wrap(&w, 0, 0x61);
    a->ef_dir_len = w.len;
    return !w.err;
}

/* EF.ODF (§6.2) */
static bool build_odf(card_applet_t *a)
{
    static const struct {
        unsigned tag;
        uint16_t fid;
    } e[3] = {{0xA0, 0x4402}, {0xA4, 0x4404}, {0xA8, 0x4401}};
    wr_t w = {a->odf, sizeof a->odf, 0, false};
    for (unsigned i = 0; i < 3; i++) {
        size_t s = w.len;
        wr_path(&w, e[i].fid);
        wr_wrap(&w, s, 0x30);
        wr_wrap(&w, s, e[i].tag);
    }
    a->odf_len = w.len;
    return !w.err;
}

/* One PKCS#15 AlgorithmInfo (PKCS#15 v1.1 §6.6 / OpenSC asn1.c). */
static void wr_algo(wr_t *w, unsigned ref, unsigned mech, uint8_t ops_unused, uint8_t ops,
                    const uint8_t *oid, size_t oid_len, unsigned alg_ref)
{
    size_t s = w->len;
    static const uint8_t null_params[2] = {0x05, 0x00};
    uint8_t ops_bits[2] = {ops_unused, ops};
    wr_int_small(w, ref);
    wr_int_small(w, mech);
    wr_bytes(w, null_params, 2);
    wr_tlv(w, 0x03, ops_bits, 2);
    wr_tlv(w, 0x06, oid, oid_len);
    wr_int_small(w, alg_ref);
    wr_wrap(w, s, 0x30);
}

/* EF.TokenInfo (§6.3 with the algorithm list of part A item 4). */
static bool build_tokeninfo(card_applet_t *a)
{
    static const uint8_t oid_rsa[9] = {0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x01};
    static const uint8_t oid_sha1[5] = {0x2B, 0x0E, 0x03, 0x02, 0x1A};
    static const uint8_t oid_sha256[9] = {0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01};
    static const uint8_t oid_rsa_sha1[9] = {0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x05};
    static const uint8_t oid_rsa_sha256[9] = {0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x0B};
    static const char manufacturer[] = "TEST-ONLY CPx proto";
    static const uint8_t version[3] = {0x02, 0x01, 0x00};
    static const uint8_t flags_ro[2] = {0x07, 0x80}; /* tokenflags {readOnly} */
    wr_t w = {a->tokeninfo, sizeof a->tokeninfo, 0, false};
    wr_bytes(&w, version, 3);
    /* serialNumber: the last 8 bytes of the EF.SN PAN (§3.2) */
    wr_tlv(&w, 0x04, a->cfg.serial + 2, CARD_SERIAL_LEN - 2);
    wr_tlv(&w, 0x0C, manufacturer, strlen(manufacturer));
    wr_tlv(&w, 0x80, a->cfg.label, strlen(a->cfg.label));
    wr_tlv(&w, 0x03, flags_ro, 2);
    size_t s = w.len;
    /* supportedOperations bits: compute-signature 0x40 (6 unused),
     * decipher 0x04 (2 unused), hash 0x02 (1 unused). */
    wr_algo(&w, 1, 0x0001 /* CKM_RSA_PKCS */, 6, 0x40, oid_rsa, 9, ALG_RSA_PKCS1);
    wr_algo(&w, 2, 0x0001 /* CKM_RSA_PKCS */, 2, 0x04, oid_rsa, 9, ALG_RSA_DECIPHER);
    wr_algo(&w, 3, 0x0220 /* CKM_SHA_1 */, 1, 0x02, oid_sha1, 5, ALG_SHA1);
    wr_algo(&w, 4, 0x0250 /* CKM_SHA256 */, 1, 0x02, oid_sha256, 9, ALG_SHA256);
    wr_algo(&w, 5, 0x0006 /* CKM_SHA1_RSA_PKCS */, 6, 0x40, oid_rsa_sha1, 9, ALG_RSA_SHA1);
    wr_algo(&w, 6, 0x0040 /* CKM_SHA256_RSA_PKCS */, 6, 0x40, oid_rsa_sha256, 9, ALG_RSA_SHA256);
    wr_wrap(&w, s, 0xA2);
    wr_wrap(&w, 0, 0x30);
    a->tokeninfo_len = w.len;
    return !w.err;
}

/* EF.AODF (§6.4): the holder PIN, CHV 01 of the MF. */
static bool build_aodf(card_applet_t *a)
{
    static const uint8_t aodf[41] = {
        0x30, 0x27, 0x30, 0x09, 0x0C, 0x03, 'P',  'I',  'N',  0x03, 0x02, 0x07, 0x80, 0x30,
        0x03, 0x04, 0x01, 0x01, 0xA1, 0x15, 0x30, 0x13, 0x03, 0x02, 0x03, 0x08, 0x0A, 0x01,
        0x01, 0x02, 0x01, 0x04, 0x02, 0x01, 0x08, 0x02, 0x01, 0x08, 0x80, 0x01, 0x01};
    memcpy(a->aodf, aodf, sizeof aodf);
    a->aodf_len = sizeof aodf;
    return true;
}

/* One PrKDF entry (§6.5 layout, part A item 2 values). */
static void wr_prkey(wr_t *w, const char *label, uint8_t id_last, const uint8_t *usage,
                     size_t usage_len, unsigned key_ref, int bits)
{
    static const uint8_t flags_private[2] = {0x07, 0x80};
    /* accessFlags {sensitive, alwaysSensitive, neverExtractable}, as the
     * real CPS3 of OpenSC issue #2267 */
    static const uint8_t access[2] = {0x04, 0xB0};
    static const uint8_t auth_id[1] = {0x01};
    size_t s = w->len;
    size_t c = w->len;
    wr_tlv(w, 0x0C, label, strlen(label));
    wr_tlv(w, 0x03, flags_private, 2);
    wr_tlv(w, 0x04, auth_id, 1);
    wr_wrap(w, c, 0x30);
    c = w->len;
    wr_id(w, id_last);
    wr_tlv(w, 0x03, usage, usage_len);
    wr_tlv(w, 0x03, access, 2);
    wr_int_small(w, key_ref);
    wr_wrap(w, c, 0x30);
    c = w->len;
    size_t p = w->len;
    wr_path(w, 0);
    wr_wrap(w, p, 0x30);
    wr_int_small(w, (unsigned)bits);
    wr_wrap(w, c, 0x30);
    wr_wrap(w, c, 0xA1);
    wr_wrap(w, s, 0x30);
}

static bool build_prkdf(card_applet_t *a)
{
    static const uint8_t usage_nonrep[3] = {0x06, 0x00, 0x40}; /* {nonRepudiation} */
    static const uint8_t usage_sign_dec[2] = {0x05, 0x60};     /* {decrypt, sign} */
    wr_t w = {a->prkdf, sizeof a->prkdf, 0, false};
    wr_prkey(&w, "CPS_PRIV_SIG", 0x01, usage_nonrep, 3, KEY_SIG, key_bits(a->cfg.sign_key));
    wr_prkey(&w, "CPS_PRIV_AUT", 0x02, usage_sign_dec, 2, KEY_AUT, key_bits(a->cfg.auth_key));
    a->prkdf_len = w.len;
    return !w.err;
}

static void wr_cert(wr_t *w, const char *label, uint8_t id_last, bool authority, uint16_t fid)
{
    static const uint8_t true_bool[1] = {0xFF};
    size_t s = w->len;
    size_t c = w->len;
    wr_tlv(w, 0x0C, label, strlen(label));
    wr_wrap(w, c, 0x30);
    c = w->len;
    wr_id(w, id_last);
    if (authority)
        wr_tlv(w, 0x01, true_bool, 1);
    wr_wrap(w, c, 0x30);
    c = w->len;
    wr_path(w, fid);
    wr_wrap(w, c, 0x30);
    wr_wrap(w, c, 0x30);
    wr_wrap(w, c, 0xA1);
    wr_wrap(w, s, 0x30);
}

/* EF.CDF (§6.6): certificates carry the IDs of their keys. */
static bool build_cdf(card_applet_t *a)
{
    wr_t w = {a->cdf, sizeof a->cdf, 0, false};
    wr_cert(&w, "Certificat d'authentification CPS", 0x02, false, 0xC001);
    wr_cert(&w, "Certificat de signature CPS", 0x01, false, 0xC002);
    wr_cert(&w, "Certificat AC CPS", 0x03, true, 0xC003);
    a->cdf_len = w.len;
    return !w.err;
}

static void set_file(card_applet_t *a, int idx, uint16_t fid, uint8_t sfi, bool is_df, int parent,
                     const uint8_t *data, size_t size)
{
    card_file_t *f = &a->files[idx];
    f->fid = fid;
    f->sfi = sfi;
    f->is_df = is_df;
    f->parent = parent;
    f->data = data;
    f->size = size;
}

bool card_applet_valid_secret(const uint8_t *v, size_t len)
{
    if (!v || len < 4 || len > CARD_PIN_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        if (v[i] < '0' || v[i] > '9')
            return false;
    return true;
}

static bool valid_persist(const card_persist_t *st, const card_config_t *cfg)
{
    return st->pin_tries_left <= cfg->pin_tries_max && st->puk_tries_left <= cfg->puk_tries_max &&
           card_applet_valid_secret(st->pin, st->pin_len) &&
           card_applet_valid_secret(st->puk, st->puk_len);
}

card_applet_t *card_applet_new(const card_config_t *cfg, const card_persist_t *initial)
{
    if (!cfg || !initial)
        return NULL;
    if (cfg->pin_tries_max < 1 || cfg->pin_tries_max > 15 || cfg->puk_tries_max < 1 ||
        cfg->puk_tries_max > 15)
        return NULL;
    if (memchr(cfg->label, 0, sizeof cfg->label) == NULL)
        return NULL;
    const uint8_t *src[3] = {cfg->auth_cert, cfg->sign_cert, cfg->ca_cert};
    size_t len[3] = {cfg->auth_cert_len, cfg->sign_cert_len, cfg->ca_cert_len};
    for (unsigned i = 0; i < 3; i++)
        if (len[i] > CARD_CERT_MAX || (len[i] && !src[i]))
            return NULL;
    if (!valid_persist(initial, cfg))
        return NULL;

    card_applet_t *a = calloc(1, sizeof *a);
    if (!a)
        return NULL;
    a->cfg = *cfg;
    a->st = *initial;
    for (unsigned i = 0; i < 3; i++) {
        a->certs[i] = malloc(len[i] ? len[i] : 1);
        if (!a->certs[i]) {
            card_applet_free(a);
            return NULL;
        }
        if (len[i])
            memcpy(a->certs[i], src[i], len[i]);
    }
    a->cfg.auth_cert = a->certs[0];
    a->cfg.sign_cert = a->certs[1];
    a->cfg.ca_cert = a->certs[2];
    a->cfg.auth_key = NULL;
    a->cfg.sign_key = NULL;
    if (cfg->auth_key && EVP_PKEY_up_ref(cfg->auth_key))
        a->cfg.auth_key = cfg->auth_key;
    if (cfg->sign_key && EVP_PKEY_up_ref(cfg->sign_key))
        a->cfg.sign_key = cfg->sign_key;

    a->ef_sn[0] = 0x5A;
    a->ef_sn[1] = CARD_SERIAL_LEN;
    memcpy(a->ef_sn + 2, cfg->serial, CARD_SERIAL_LEN);
    if (!build_dir(a) || !build_odf(a) || !build_tokeninfo(a) || !build_aodf(a) ||
        !build_prkdf(a) || !build_cdf(a)) {
        card_applet_free(a);
        return NULL;
    }
    set_file(a, FILE_MF, 0x3F00, 0, true, -1, NULL, 0);
    set_file(a, FILE_ATR, 0x2F01, 0x1D, false, FILE_MF, ef_atr_content, sizeof ef_atr_content);
    set_file(a, FILE_SN, 0xD003, 0x1C, false, FILE_MF, a->ef_sn, sizeof a->ef_sn);
    set_file(a, FILE_DIR, 0x2F00, 0x1E, false, FILE_MF, a->ef_dir, a->ef_dir_len);
    set_file(a, FILE_APP, 0x0001, 0, true, FILE_MF, NULL, 0);
    set_file(a, FILE_ODF, 0x5031, 0, false, FILE_APP, a->odf, a->odf_len);
    set_file(a, FILE_TOKENINFO, 0x5032, 0, false, FILE_APP, a->tokeninfo, a->tokeninfo_len);
    set_file(a, FILE_AODF, 0x4401, 0, false, FILE_APP, a->aodf, a->aodf_len);
    set_file(a, FILE_PRKDF, 0x4402, 0, false, FILE_APP, a->prkdf, a->prkdf_len);
    set_file(a, FILE_CDF, 0x4404, 0, false, FILE_APP, a->cdf, a->cdf_len);
    set_file(a, FILE_CERT_AUTH, 0xC001, 0, false, FILE_APP, a->certs[0], len[0]);
    set_file(a, FILE_CERT_SIGN, 0xC002, 0, false, FILE_APP, a->certs[1], len[1]);
    set_file(a, FILE_CERT_CA, 0xC003, 0, false, FILE_APP, a->certs[2], len[2]);
    card_applet_reset(a);
    return a;
}

void card_applet_free(card_applet_t *a)
{
    if (!a)
        return;
    for (unsigned i = 0; i < 3; i++)
        free(a->certs[i]);
    EVP_PKEY_free(a->cfg.auth_key);
    EVP_PKEY_free(a->cfg.sign_key);
    OPENSSL_cleanse(a, sizeof *a);
    free(a);
}

void card_applet_reset(card_applet_t *a)
{
    if (!a)
        return;
    a->cur_df = FILE_MF;
    a->cur_ef = FILE_NONE;
    a->pin_verified = false;
    a->puk_verified = false;
    OPENSSL_cleanse(&a->mse, sizeof a->mse);
    a->chaining = false;
    a->chain_len = 0;
    OPENSSL_cleanse(a->chain, sizeof a->chain);
}

void card_applet_get_persist(const card_applet_t *a, card_persist_t *out)
{
    if (a && out)
        *out = a->st;
}

/* ------------------------------------------------------------------ */
/* Command context                                                      */

typedef struct {
    uint8_t cla, ins, p1, p2;
    const uint8_t *data;
    size_t lc;
    bool has_le;
    size_t ne; /* 1..256 when has_le */
    uint8_t *resp;
    size_t cap;
    size_t rlen;
} cmd_t;

static uint16_t resp_put(cmd_t *c, const void *p, size_t n)
{
    if (n > c->cap - c->rlen)
        return CARD_SW_UNKNOWN;
    memcpy(c->resp + c->rlen, p, n);
    c->rlen += n;
    return CARD_SW_OK;
}

static uint16_t save_state(card_applet_t *a)
{
    if (a->cfg.save && !a->cfg.save(a->cfg.save_ctx, &a->st))
        return CARD_SW_MEMORY;
    return CARD_SW_OK;
}

/* ------------------------------------------------------------------ */
/* SELECT (ISO/IEC 7816-4 §7.1.1; variants of cpx-card.md §5.1)          */

static int find_child(const card_applet_t *a, int parent, uint16_t fid)
{
    for (int i = 0; i < FILE_COUNT; i++)
        if (a->files[i].parent == parent && a->files[i].fid == fid)
            return i;
    return FILE_NONE;
}

static void wr_acl(wr_t *w, bool is_df)
{
    /* A1 { 8C compact ACL, 9C contactless ACL }: READ always on EFs,
     * everything else never (§4.1-4.2). */
    static const uint8_t ef_acl[7] = {0x7B, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x00};
    static const uint8_t df_acl[7] = {0x7B, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF};
    size_t s = w->len;
    wr_tlv(w, 0x8C, is_df ? df_acl : ef_acl, 7);
    wr_tlv(w, 0x9C, is_df ? df_acl : ef_acl, 7);
    wr_wrap(w, s, 0xA1);
}

static uint16_t put_fcp(const card_applet_t *a, cmd_t *c, int idx)
{
    const card_file_t *f = &a->files[idx];
    uint8_t buf[96];
    wr_t w = {buf, sizeof buf, 0, false};
    uint8_t fid[2] = {(uint8_t)(f->fid >> 8), (uint8_t)f->fid};
    static const uint8_t lcs[1] = {0x05}; /* operational, activated */
    if (f->is_df) {
        static const uint8_t desc_df[1] = {0x38};
        wr_tlv(&w, 0x82, desc_df, 1);
        wr_tlv(&w, 0x83, fid, 2);
        if (idx == FILE_APP)
            wr_tlv(&w, 0x84, cpx_aid, sizeof cpx_aid);
    } else {
        static const uint8_t desc_ef[1] = {0x01}; /* working transparent EF */
        uint8_t size[2] = {(uint8_t)(f->size >> 8), (uint8_t)f->size};
        uint8_t sfi = (uint8_t)(f->sfi << 3);
        wr_tlv(&w, 0x80, size, 2);
        wr_tlv(&w, 0x82, desc_ef, 1);
        wr_tlv(&w, 0x83, fid, 2);
        wr_tlv(&w, 0x88, &sfi, f->sfi ? 1 : 0);
    }
    wr_acl(&w, f->is_df);
    wr_tlv(&w, 0x8A, lcs, 1);
    wr_wrap(&w, 0, 0x62);
    if (w.err)
        return CARD_SW_UNKNOWN;
    return resp_put(c, buf, w.len);
}

static void select_done(card_applet_t *a, int idx)
{
    if (a->files[idx].is_df) {
        a->cur_df = idx;
        a->cur_ef = FILE_NONE;
    } else {
        a->cur_df = a->files[idx].parent;
        a->cur_ef = idx;
    }
}

/* Walks a path of FIDs from 'start' (each step a child; only the last may be an EF). */
static int walk_path(const card_applet_t *a, int start, const uint8_t *p, size_t n)
{
    int cur = start;
    for (size_t i = 0; i + 1 < n; i += 2) {
        if (!a->files[cur].is_df)
            return FILE_NONE;
        uint16_t fid = (uint16_t)(p[i] << 8 | p[i + 1]);
        cur = find_child(a, cur, fid);
        if (cur == FILE_NONE)
            return FILE_NONE;
    }
    return cur;
}

static uint16_t cmd_select(card_applet_t *a, cmd_t *c)
{
    if (c->p2 != 0x00 && c->p2 != 0x04 && c->p2 != 0x0C)
        return CARD_SW_WRONG_P1P2;
    int idx = FILE_NONE;
    const uint8_t *d = c->data;
    size_t n = c->lc;
    switch (c->p1) {
    case 0x00: /* MF, or a child of the current DF, by FID */
        if (n == 0 || (n == 2 && d[0] == 0x3F && d[1] == 0x00)) {
            idx = FILE_MF;
            break;
        }
        if (n != 2)
            return CARD_SW_LC_P1P2;
        idx = find_child(a, a->cur_df, (uint16_t)(d[0] << 8 | d[1]));
        if (idx == FILE_NONE && a->cur_df != FILE_MF) /* sibling of the current DF */
            idx = find_child(a, a->files[a->cur_df].parent, (uint16_t)(d[0] << 8 | d[1]));
        break;
    case 0x01: /* child DF */
    case 0x02: /* EF under the current DF; "02 3F00" selects the MF (§5.1) */
        if (n != 2)
            return CARD_SW_LC_P1P2;
        if (d[0] == 0x3F && d[1] == 0x00) {
            idx = FILE_MF;
            break;
        }
        idx = find_child(a, a->cur_df, (uint16_t)(d[0] << 8 | d[1]));
        if (idx != FILE_NONE && a->files[idx].is_df != (c->p1 == 0x01))
            idx = FILE_NONE;
        break;
    case 0x03: /* parent DF */
        if (n != 0)
            return CARD_SW_LC_P1P2;
        idx = a->files[a->cur_df].parent;
        break;
    case 0x04: /* by DF name */
        if (n == 0) {
            idx = FILE_MF;
        } else if (n == sizeof cpx_aid && memcmp(d, cpx_aid, n) == 0) {
            idx = FILE_APP;
        }
        break;
    case 0x08: /* path from the MF, without 3F00 */
    case 0x09: /* path from the current DF; a leading 3F00 makes it absolute (§5.1) */
        if (n == 0 || (n & 1))
            return CARD_SW_LC_P1P2;
        if (d[0] == 0x3F && d[1] == 0x00) {
            idx = walk_path(a, FILE_MF, d + 2, n - 2);
        } else {
            idx = walk_path(a, c->p1 == 0x08 ? FILE_MF : a->cur_df, d, n);
        }
        break;
    default:
        return CARD_SW_WRONG_P1P2;
    }
    if (idx == FILE_NONE)
        return CARD_SW_NOT_FOUND;
    select_done(a, idx);
    if (c->p2 == 0x0C)
        return CARD_SW_OK;
    return put_fcp(a, c, idx);
}

/* ------------------------------------------------------------------ */
/* READ BINARY (ISO/IEC 7816-4 §7.2.3), incl. the SFI form (§3, §5.2)   */

static uint16_t cmd_read_binary(card_applet_t *a, cmd_t *c)
{
    if (c->lc)
        return CARD_SW_WRONG_LENGTH;
    int idx;
    size_t off;
    if (c->p1 & 0x80) {
        if (c->p1 & 0x60)
            return CARD_SW_WRONG_P1P2;
        uint8_t sfi = c->p1 & 0x1F;
        idx = FILE_NONE;
        /* the current DF first, then the MF (EF.SN is read by SFI while the
         * MF is current; be lenient when it is not) */
        for (int i = 0; i < FILE_COUNT && sfi; i++)
            if (a->files[i].sfi == sfi && a->files[i].parent == a->cur_df)
                idx = i;
        for (int i = 0; i < FILE_COUNT && sfi && idx == FILE_NONE; i++)
            if (a->files[i].sfi == sfi && a->files[i].parent == FILE_MF)
                idx = i;
        if (idx == FILE_NONE)
            return CARD_SW_NOT_FOUND;
        a->cur_ef = idx; /* §7.2.2: the EF referenced by SFI becomes current */
        a->cur_df = a->files[idx].parent;
        off = c->p2;
    } else {
        idx = a->cur_ef;
        if (idx == FILE_NONE)
            return CARD_SW_NO_CURRENT_EF;
        off = (size_t)c->p1 << 8 | c->p2;
    }
    const card_file_t *f = &a->files[idx];
    if (f->is_df)
        return CARD_SW_INCOMPATIBLE_FILE;
    if (off > f->size)
        return CARD_SW_OFFSET;
    size_t want = c->has_le ? c->ne : 256;
    size_t avail = f->size - off;
    if (avail == 0)
        return CARD_SW_EOF;
    size_t n = want < avail ? want : avail;
    uint16_t sw = resp_put(c, f->data + off, n);
    return sw;
}

/* ------------------------------------------------------------------ */
/* PIN and unblock code (part A item 5, cpx-card.md §9)                 */

static size_t strip_ff(const uint8_t *v, size_t n)
{
    /* A pinpad pads to the stored length with FF (§9); compare the digits. */
    while (n && v[n - 1] == 0xFF)
        n--;
    return n;
}

static bool secret_eq(const uint8_t *stored, size_t slen, const uint8_t *v, size_t n)
{
    n = strip_ff(v, n);
    if (n != slen)
        return false;
    return CRYPTO_memcmp(stored, v, n) == 0;
}

/* Wrong value: decrement, persist, 63Cx (or 6983 when it was the last try). */
static uint16_t wrong_secret(card_applet_t *a, bool puk)
{
    uint8_t *left = puk ? &a->st.puk_tries_left : &a->st.pin_tries_left;
    if (*left)
        (*left)--;
    if (puk)
        a->puk_verified = false;
    else
        a->pin_verified = false;
    uint16_t sw = save_state(a);
    if (sw != CARD_SW_OK)
        return sw;
    return (uint16_t)(0x63C0 | *left);
}

static uint16_t right_secret(card_applet_t *a, bool puk)
{
    uint8_t *left = puk ? &a->st.puk_tries_left : &a->st.pin_tries_left;
    uint8_t max = puk ? a->cfg.puk_tries_max : a->cfg.pin_tries_max;
    if (puk)
        a->puk_verified = true;
    else
        a->pin_verified = true;
    if (*left != max) {
        *left = max;
        return save_state(a);
    }
    return CARD_SW_OK;
}

static uint16_t cmd_verify(card_applet_t *a, cmd_t *c)
{
    if (c->p1 != 0x00)
        return CARD_SW_WRONG_P1P2;
    bool puk;
    if (c->p2 == 0x01)
        puk = false;
    else if (c->p2 == 0x02)
        puk = true;
    else
        return CARD_SW_REF_NOT_FOUND;
    uint8_t left = puk ? a->st.puk_tries_left : a->st.pin_tries_left;
    bool verified = puk ? a->puk_verified : a->pin_verified;
    if (left == 0)
        return CARD_SW_BLOCKED;
    if (c->lc == 0) /* status query (§9): 9000 or 63Cx */
        return verified ? CARD_SW_OK : (uint16_t)(0x63C0 | left);
    if (c->lc > CARD_PIN_MAX)
        return CARD_SW_WRONG_LENGTH;
    const uint8_t *ref = puk ? a->st.puk : a->st.pin;
    size_t rlen = puk ? a->st.puk_len : a->st.pin_len;
    if (!secret_eq(ref, rlen, c->data, c->lc))
        return wrong_secret(a, puk);
    return right_secret(a, puk);
}

/* CHANGE REFERENCE DATA (ISO/IEC 7816-4 §7.5.7): P1=00 old‖new, P1=01 new
 * only (after VERIFY). The old value's length is the stored one. */
static uint16_t cmd_change(card_applet_t *a, cmd_t *c)
{
    bool puk;
    if (c->p2 == 0x01)
        puk = false;
    else if (c->p2 == 0x02)
        puk = true;
    else
        return CARD_SW_REF_NOT_FOUND;
    uint8_t *left = puk ? &a->st.puk_tries_left : &a->st.pin_tries_left;
    uint8_t *ref = puk ? a->st.puk : a->st.pin;
    uint8_t *rlen = puk ? &a->st.puk_len : &a->st.pin_len;
    if (*left == 0)
        return CARD_SW_BLOCKED;
    const uint8_t *nv;
    size_t nlen;
    if (c->p1 == 0x00) {
        if (c->lc <= *rlen)
            return CARD_SW_WRONG_LENGTH;
        if (!secret_eq(ref, *rlen, c->data, *rlen))
            return wrong_secret(a, puk);
        nv = c->data + *rlen;
        nlen = strip_ff(nv, c->lc - *rlen);
    } else if (c->p1 == 0x01) {
        if (!(puk ? a->puk_verified : a->pin_verified))
            return CARD_SW_SECURITY;
        nv = c->data;
        nlen = strip_ff(nv, c->lc);
    } else {
        return CARD_SW_WRONG_P1P2;
    }
    if (!card_applet_valid_secret(nv, nlen) || (puk && nlen != 8))
        return CARD_SW_WRONG_DATA;
    memcpy(ref, nv, nlen);
    *rlen = (uint8_t)nlen;
    *left = puk ? a->cfg.puk_tries_max : a->cfg.pin_tries_max;
    if (puk)
        a->puk_verified = true;
    else
        a->pin_verified = true;
    return save_state(a);
}

/* RESET RETRY COUNTER (ISO/IEC 7816-4 §7.5.10) for CHV 01 with the unblock
 * code (CHV 02, 8 digits, 10 tries): P1=00 PUK‖new PIN, 01 PUK, 02 new PIN
 * after VERIFY of CHV 02, 03 nothing after VERIFY of CHV 02. */
static uint16_t cmd_reset_retry(card_applet_t *a, cmd_t *c)
{
    if (c->p2 != 0x01)
        return CARD_SW_REF_NOT_FOUND;
    if (c->p1 > 0x03)
        return CARD_SW_WRONG_P1P2;
    bool with_puk = (c->p1 == 0x00 || c->p1 == 0x01);
    bool with_new = (c->p1 == 0x00 || c->p1 == 0x02);
    if (a->st.puk_tries_left == 0)
        return CARD_SW_BLOCKED;
    size_t off = 0;
    if (with_puk) {
        size_t plen = a->st.puk_len;
        if (c->lc < plen || (!with_new && strip_ff(c->data, c->lc) != plen))
            return CARD_SW_WRONG_LENGTH;
        if (!secret_eq(a->st.puk, plen, c->data, plen))
            return wrong_secret(a, true);
        off = plen;
    } else if (!a->puk_verified) {
        return CARD_SW_SECURITY;
    }
    if (with_new) {
        size_t nlen = strip_ff(c->data + off, c->lc - off);
        if (!card_applet_valid_secret(c->data + off, nlen))
            return CARD_SW_WRONG_DATA;
        memcpy(a->st.pin, c->data + off, nlen);
        a->st.pin_len = (uint8_t)nlen;
    } else if (c->lc != off) {
        return CARD_SW_WRONG_LENGTH;
    }
    a->st.pin_tries_left = a->cfg.pin_tries_max;
    a->st.puk_tries_left = a->cfg.puk_tries_max;
    a->puk_verified = false;
    a->pin_verified = false;
    return save_state(a);
}

/* ------------------------------------------------------------------ */
/* GET DATA on SDOs (§5.3, §8)                                          */

static void wr_docp_acl(wr_t *w, const uint8_t *acl, size_t n)
{
    size_t s = w->len;
    wr_tlv(w, 0x8C, acl, n);
    wr_wrap(w, s, 0xA1);
}

static uint16_t cmd_get_data(card_applet_t *a, cmd_t *c)
{
    if (c->p1 != 0x3F || c->p2 != 0xFF)
        return CARD_SW_REF_NOT_FOUND;
    /* 4D L { 70 L { BF cls ref L { tag-list } } } */
    const uint8_t *d = c->data;
    size_t n = c->lc;
    if (n < 9 || d[0] != 0x4D || d[1] != n - 2 || d[2] != 0x70 || d[3] != n - 4 || d[4] != 0xBF ||
        d[7] != n - 8)
        return CARD_SW_WRONG_DATA;
    uint8_t cls = d[5] & 0x7F;
    uint8_t ref = d[6] & 0x1F;
    const uint8_t *tags = d + 8;
    size_t tn = n - 8;
    unsigned tag = tags[0];
    if (tag == 0x7F || (tag & 0x1F) == 0x1F) {
        if (tn < 2)
            return CARD_SW_WRONG_DATA;
        tag = (unsigned)tags[0] << 8 | tags[1];
    }

    uint8_t buf[CARD_RESP_MAX];
    wr_t w = {buf, sizeof buf, 0, false};
    switch (cls) {
    case SDO_CHV: {
        if (ref != 0x01 && ref != 0x02)
            return CARD_SW_REF_NOT_FOUND;
        if (tag != 0xA0)
            return CARD_SW_WRONG_DATA; /* 7F41: "no public data", never 6A88 */
        bool puk = ref == 0x02;
        uint8_t max = puk ? a->cfg.puk_tries_max : a->cfg.pin_tries_max;
        uint8_t left = puk ? a->st.puk_tries_left : a->st.pin_tries_left;
        /* AMB 73: CHANGE 00, VERIFY 00, RESET 12 (PUK, SE#2) / FF, PUT DATA FF, GET DATA 00 */
        const uint8_t acl[6] = {0x73, 0x00, 0x00, (uint8_t)(puk ? 0xFF : 0x12), 0xFF, 0x00};
        wr_tlv(&w, 0x9A, &max, 1);
        wr_tlv(&w, 0x9B, &left, 1);
        wr_docp_acl(&w, acl, sizeof acl);
        wr_wrap(&w, 0, 0xA0);
        break;
    }
    case SDO_RSA_PRIV: {
        if (ref != 0x01 && ref != 0x02)
            return CARD_SW_REF_NOT_FOUND;
        if (tag != 0xA0)
            return CARD_SW_WRONG_DATA; /* 7F48: no public part, never 6A88 */
        EVP_PKEY *k = ref == 0x01 ? a->cfg.sign_key : a->cfg.auth_key;
        size_t kb = key_bytes(k);
        uint8_t size[2] = {(uint8_t)(kb >> 8), (uint8_t)kb};
        /* AMB 7B: PSO-SIGN, INT-AUTH, DECIPHER, GENERATE, PUT DATA, GET DATA.
         * Key 0x81 (signature): PSO CDS only, as on a real CPS3 (OpenSC issue
         * #2267: "Access Rules: pso_cds:01"). INTERNAL AUTHENTICATE is FF, so
         * OpenSC refuses CKM_RSA_PKCS with it before sending anything, and
         * the card answers 6985 if it is sent anyway.
         * Key 0x82 (authentication): INTERNAL AUTHENTICATE and DECIPHER. */
        static const uint8_t acl_sig[7] = {0x7B, 0x11, 0xFF, 0xFF, 0xFF, 0xFF, 0x00};
        static const uint8_t acl_aut[7] = {0x7B, 0xFF, 0x11, 0x11, 0xFF, 0xFF, 0x00};
        wr_tlv(&w, 0x80, size, 2);
        wr_docp_acl(&w, ref == 0x01 ? acl_sig : acl_aut, 7);
        wr_wrap(&w, 0, 0xA0);
        break;
    }
    case SDO_RSA_PUB: {
        if (ref != 0x01 && ref != 0x02)
            return CARD_SW_REF_NOT_FOUND;
        EVP_PKEY *k = ref == 0x01 ? a->cfg.sign_key : a->cfg.auth_key;
        if (tag == 0xA0) {
            static const uint8_t acl[3] = {0x03, 0xFF, 0x00};
            wr_docp_acl(&w, acl, sizeof acl);
            wr_wrap(&w, 0, 0xA0);
        } else if (tag == 0x7F49) {
            if (!k)
                return CARD_SW_REF_NOT_FOUND;
            BIGNUM *bn_n = NULL, *bn_e = NULL;
            if (!EVP_PKEY_get_bn_param(k, "n", &bn_n) || !EVP_PKEY_get_bn_param(k, "e", &bn_e)) {
                BN_free(bn_n);
                BN_free(bn_e);
                return CARD_SW_UNKNOWN;
            }
            uint8_t mod[512], ex[8];
            int ml = BN_num_bytes(bn_n), el = BN_num_bytes(bn_e);
            bool ok = ml > 0 && ml <= (int)sizeof mod && el > 0 && el <= (int)sizeof ex &&
                      BN_bn2bin(bn_n, mod) == ml && BN_bn2bin(bn_e, ex) == el;
            BN_free(bn_n);
            BN_free(bn_e);
            if (!ok)
                return CARD_SW_UNKNOWN;
            wr_tlv(&w, 0x81, mod, (size_t)ml);
            wr_tlv(&w, 0x82, ex, (size_t)el);
            wr_wrap(&w, 0, 0x7F49);
        } else {
            return CARD_SW_WRONG_DATA;
        }
        break;
    }
    case SDO_SE: {
        if (ref != 0x01 && ref != 0x02)
            return CARD_SW_REF_NOT_FOUND;
        if (tag != 0x7B && tag != 0xA0)
            return CARD_SW_WRONG_DATA;
        /* AT CRT: user authentication with CHV ref (§8.5) */
        const uint8_t crt[8] = {0xA4, 0x06, 0x83, 0x01, ref, 0x95, 0x01, 0x08};
        wr_tlv(&w, 0x7B, crt, sizeof crt);
        break;
    }
    default:
        return CARD_SW_REF_NOT_FOUND;
    }
    if (w.err)
        return CARD_SW_UNKNOWN;
    /* 70 L { BF <cls|80> <ref> L { content } } (§5.3: class and reference
     * echo the request, lengths exact) */
    uint8_t out[CARD_RESP_MAX];
    wr_t o = {out, sizeof out, 0, false};
    const uint8_t hdr3[3] = {0xBF, (uint8_t)(0x80 | cls), ref};
    wr_bytes(&o, hdr3, 3);
    wr_len(&o, w.len);
    wr_bytes(&o, buf, w.len);
    wr_wrap(&o, 0, 0x70);
    if (o.err)
        return CARD_SW_UNKNOWN;
    return resp_put(c, out, o.len);
}

/* ------------------------------------------------------------------ */
/* MSE SET (ISO/IEC 7816-8 §5.x, cpx-card.md §10)                        */

static uint16_t cmd_mse(card_applet_t *a, cmd_t *c)
{
    if (c->p1 == 0xF3) { /* RESTORE SE: start from a clean environment */
        OPENSSL_cleanse(&a->mse, sizeof a->mse);
        return c->lc ? CARD_SW_WRONG_LENGTH : CARD_SW_OK;
    }
    if ((c->p1 & 0x0F) != 0x01) /* SET */
        return CARD_SW_WRONG_P1P2;
    bool has_key = false, has_alg = false;
    uint8_t key = 0, alg = 0;
    for (size_t i = 0; i < c->lc;) {
        if (c->lc - i < 2)
            return CARD_SW_WRONG_DATA;
        uint8_t t = c->data[i], l = c->data[i + 1];
        if (l > c->lc - i - 2)
            return CARD_SW_WRONG_DATA;
        const uint8_t *v = c->data + i + 2;
        switch (t) {
        case 0x80: /* algorithm reference */
            if (l != 1)
                return CARD_SW_WRONG_DATA;
            alg = v[0];
            has_alg = true;
            break;
        case 0x83:
        case 0x84: /* key reference */
            if (l != 1)
                return CARD_SW_WRONG_DATA;
            key = v[0];
            has_key = true;
            break;
        case 0x95: /* usage qualifier: accepted, not used */
            break;
        default:
            return CARD_SW_WRONG_DATA;
        }
        i += 2 + (size_t)l;
    }
    if (has_key && key != KEY_SIG && key != KEY_AUT)
        return CARD_SW_REF_NOT_FOUND;
    card_mse_t *m = &a->mse;
    switch (c->p2) {
    case 0xA4: /* AT: INTERNAL AUTHENTICATE */
        if (!has_key || (has_alg && alg != ALG_RSA_PKCS1))
            return CARD_SW_WRONG_DATA;
        m->at_set = true;
        m->at_key = key;
        m->at_alg = ALG_RSA_PKCS1;
        return CARD_SW_OK;
    case 0xB6: /* DST: PSO COMPUTE DIGITAL SIGNATURE */
        if (!has_key)
            return CARD_SW_WRONG_DATA;
        if (!has_alg)
            alg = ALG_RSA_SHA256;
        if (alg != ALG_RSA_SHA1 && alg != ALG_RSA_SHA256)
            return CARD_SW_WRONG_DATA;
        m->dst_set = true;
        m->dst_key = key;
        m->dst_alg = alg;
        return CARD_SW_OK;
    case 0xAA: /* HT: PSO HASH */
        if (!has_alg || (alg != ALG_SHA1 && alg != ALG_SHA256) || has_key)
            return CARD_SW_WRONG_DATA;
        m->ht_set = true;
        m->ht_alg = alg;
        m->hash_ready = false;
        return CARD_SW_OK;
    case 0xB8: /* CT: PSO DECIPHER */
        if (!has_key || (has_alg && alg != ALG_RSA_DECIPHER))
            return CARD_SW_WRONG_DATA;
        m->ct_set = true;
        m->ct_key = key;
        m->ct_alg = ALG_RSA_DECIPHER;
        return CARD_SW_OK;
    default:
        return CARD_SW_WRONG_P1P2;
    }
}

/* ------------------------------------------------------------------ */
/* RSA private-key operations                                           */

/* PKCS#1 v1.5 type 1 (RFC 8017 §9.2 step 5 / §8.2.1) over 'in', private key. */
static uint16_t rsa_sign_raw(EVP_PKEY *k, const uint8_t *in, size_t n, cmd_t *c)
{
    size_t kb = key_bytes(k);
    if (n == 0 || kb < 11 || n > kb - 11)
        return CARD_SW_WRONG_LENGTH;
    if (kb > c->cap - c->rlen)
        return CARD_SW_UNKNOWN;
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(k, NULL);
    size_t out = kb;
    bool ok = ctx && EVP_PKEY_sign_init(ctx) > 0 &&
              EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING) > 0 &&
              EVP_PKEY_sign(ctx, c->resp + c->rlen, &out, in, n) > 0;
    EVP_PKEY_CTX_free(ctx);
    if (!ok || out != kb)
        return CARD_SW_UNKNOWN;
    c->rlen += out;
    return CARD_SW_OK;
}

/* Access rule for a key operation: SCB "user authentication, SE#1 -> CHV 01". */
static uint16_t need_pin(const card_applet_t *a)
{
    if (a->st.pin_tries_left == 0)
        return CARD_SW_BLOCKED;
    return a->pin_verified ? CARD_SW_OK : CARD_SW_SECURITY;
}

/* INTERNAL AUTHENTICATE (ISO/IEC 7816-4 §7.5.2): card-side PKCS#1 v1.5 on
 * the caller's data (DigestInfo‖hash for TLS), key 0x82 only (part A item 2). */
static uint16_t cmd_internal_auth(card_applet_t *a, cmd_t *c)
{
    if (c->p1 != 0x00 || c->p2 != 0x00)
        return CARD_SW_WRONG_P1P2;
    if (!a->mse.at_set)
        return CARD_SW_CONDITIONS;
    if (a->mse.at_key != KEY_AUT)
        return CARD_SW_CONDITIONS; /* INT-AUTH SCB of key 0x81 is FF */
    if (!a->cfg.auth_key)
        return CARD_SW_REF_NOT_FOUND;
    uint16_t sw = need_pin(a);
    if (sw != CARD_SW_OK)
        return sw;
    return rsa_sign_raw(a->cfg.auth_key, c->data, c->lc, c);
}

/* PSO COMPUTE DIGITAL SIGNATURE (ISO/IEC 7816-8 §5.4): hash from the data
 * field (20/32 bytes) or from a preceding PSO HASH; the card builds the
 * DigestInfo and the PKCS#1 v1.5 padding (RFC 8017 §9.2). Key 0x81 only. */
static uint16_t cmd_pso_cds(card_applet_t *a, cmd_t *c)
{
    static const uint8_t di_sha1[15] = {0x30, 0x21, 0x30, 0x09, 0x06, 0x05, 0x2B, 0x0E,
                                        0x03, 0x02, 0x1A, 0x05, 0x00, 0x04, 0x14};
    static const uint8_t di_sha256[19] = {0x30, 0x31, 0x30, 0x0D, 0x06, 0x09, 0x60,
                                          0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                                          0x01, 0x05, 0x00, 0x04, 0x20};
    card_mse_t *m = &a->mse;
    if (!m->dst_set)
        return CARD_SW_CONDITIONS;
    if (m->dst_key != KEY_SIG)
        return CARD_SW_CONDITIONS; /* PSO-SIGN SCB of key 0x82 is FF */
    if (!a->cfg.sign_key)
        return CARD_SW_REF_NOT_FOUND;
    uint16_t sw = need_pin(a);
    if (sw != CARD_SW_OK)
        return sw;
    card_hash_t alg = m->dst_alg == ALG_RSA_SHA1 ? CARD_HASH_SHA1 : CARD_HASH_SHA256;
    size_t hl = card_hash_len(alg);
    const uint8_t *hash;
    if (c->lc) {
        if (c->lc != hl)
            return CARD_SW_WRONG_DATA;
        hash = c->data;
    } else {
        if (!m->hash_ready || m->hash_alg != alg)
            return CARD_SW_CONDITIONS;
        hash = m->hash;
    }
    uint8_t di[19 + CARD_SHA256_LEN];
    size_t dl;
    if (alg == CARD_HASH_SHA1) {
        memcpy(di, di_sha1, sizeof di_sha1);
        dl = sizeof di_sha1;
    } else {
        memcpy(di, di_sha256, sizeof di_sha256);
        dl = sizeof di_sha256;
    }
    memcpy(di + dl, hash, hl);
    dl += hl;
    sw = rsa_sign_raw(a->cfg.sign_key, di, dl, c);
    m->hash_ready = false;
    OPENSSL_cleanse(m->hash, sizeof m->hash);
    return sw;
}

/* Reads one BER-TLV with a 1-byte tag and 1..3-byte length. */
static bool read_tlv(const uint8_t *d, size_t n, size_t *pos, uint8_t *tag, const uint8_t **v,
                     size_t *vl)
{
    size_t i = *pos;
    if (n - i < 2)
        return false;
    *tag = d[i++];
    size_t l = d[i++];
    if (l == 0x81) {
        if (n - i < 1)
            return false;
        l = d[i++];
    } else if (l == 0x82) {
        if (n - i < 2)
            return false;
        l = (size_t)d[i] << 8 | d[i + 1];
        i += 2;
    } else if (l > 0x80) {
        return false;
    }
    if (l > n - i)
        return false;
    *v = d + i;
    *vl = l;
    *pos = i + l;
    return true;
}

/* PSO HASH (ISO/IEC 7816-8 §5.2, IAS-ECC form of cpx-card.md §10.3):
 * 90 00 80 L msg            the card hashes msg;
 * 90 (hl+8) state‖counter 80 L last-block   the card finishes the hash;
 * 90 hl hash                the final hash itself. */
static uint16_t cmd_pso_hash(card_applet_t *a, cmd_t *c)
{
    card_mse_t *m = &a->mse;
    if (!m->ht_set)
        return CARD_SW_CONDITIONS;
    card_hash_t alg = m->ht_alg == ALG_SHA1 ? CARD_HASH_SHA1 : CARD_HASH_SHA256;
    size_t hl = card_hash_len(alg);
    const uint8_t *state = NULL, *msg = NULL;
    size_t state_len = 0, msg_len = 0;
    bool has_state = false, has_msg = false;
    for (size_t pos = 0; pos < c->lc;) {
        uint8_t tag;
        const uint8_t *v;
        size_t vl;
        if (!read_tlv(c->data, c->lc, &pos, &tag, &v, &vl))
            return CARD_SW_WRONG_DATA;
        if (tag == 0x90 && !has_state) {
            state = v;
            state_len = vl;
            has_state = true;
        } else if (tag == 0x80 && !has_msg) {
            msg = v;
            msg_len = vl;
            has_msg = true;
        } else {
            return CARD_SW_WRONG_DATA;
        }
    }
    m->hash_ready = false;
    if (has_state && state_len == hl && !has_msg) {
        memcpy(m->hash, state, hl);
    } else if (has_state && state_len == hl + 8) {
        uint64_t bits = 0;
        for (unsigned i = 0; i < 8; i++)
            bits = bits << 8 | state[hl + i];
        if (!card_hash_finish(alg, state, bits, msg, msg_len, m->hash))
            return CARD_SW_WRONG_DATA;
    } else if ((!has_state || state_len == 0) && has_msg) {
        if (!card_hash_finish(alg, NULL, 0, msg, msg_len, m->hash))
            return CARD_SW_WRONG_DATA;
    } else {
        return CARD_SW_WRONG_DATA;
    }
    m->hash_alg = alg;
    m->hash_ready = true;
    return CARD_SW_OK;
}

/* PSO DECIPHER (ISO/IEC 7816-8 §5.9): 81 ‖ cryptogram, PKCS#1 v1.5 type 2
 * padding removed by the card; key 0x82 only. */
static uint16_t cmd_pso_decipher(card_applet_t *a, cmd_t *c)
{
    card_mse_t *m = &a->mse;
    if (!m->ct_set || m->ct_key != KEY_AUT)
        return CARD_SW_CONDITIONS;
    if (!a->cfg.auth_key)
        return CARD_SW_REF_NOT_FOUND;
    uint16_t sw = need_pin(a);
    if (sw != CARD_SW_OK)
        return sw;
    size_t kb = key_bytes(a->cfg.auth_key);
    if (c->lc != kb + 1 || c->data[0] != 0x81)
        return CARD_SW_WRONG_DATA;
    if (kb > c->cap - c->rlen)
        return CARD_SW_UNKNOWN;
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(a->cfg.auth_key, NULL);
    size_t out = kb;
    bool ok = ctx && EVP_PKEY_decrypt_init(ctx) > 0 &&
              EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING) > 0 &&
              EVP_PKEY_decrypt(ctx, c->resp + c->rlen, &out, c->data + 1, kb) > 0;
    EVP_PKEY_CTX_free(ctx);
    if (!ok)
        return CARD_SW_WRONG_DATA;
    c->rlen += out;
    return CARD_SW_OK;
}

static uint16_t cmd_pso(card_applet_t *a, cmd_t *c)
{
    uint16_t p1p2 = (uint16_t)(c->p1 << 8 | c->p2);
    switch (p1p2) {
    case 0x9E9A:
        return cmd_pso_cds(a, c);
    case 0x90A0:
        return cmd_pso_hash(a, c);
    case 0x8086:
        return cmd_pso_decipher(a, c);
    default:
        return CARD_SW_WRONG_P1P2;
    }
}

/* GET CHALLENGE (ISO/IEC 7816-4 §7.5.3): IAS-ECC always gives 8 bytes. */
static uint16_t cmd_get_challenge(card_applet_t *a, cmd_t *c)
{
    (void)a;
    if (c->p1 || c->p2)
        return CARD_SW_WRONG_P1P2;
    if (c->lc)
        return CARD_SW_WRONG_LENGTH;
    if (c->has_le && c->ne < 8)
        return 0x6C08;
    uint8_t r[8];
    if (RAND_bytes(r, sizeof r) != 1)
        return CARD_SW_UNKNOWN;
    return resp_put(c, r, sizeof r);
}

/* ------------------------------------------------------------------ */
/* Dispatch                                                             */

typedef uint16_t (*handler_t)(card_applet_t *a, cmd_t *c);

static const struct {
    uint8_t ins;
    handler_t fn;
} dispatch[] = {
    {0xA4, cmd_select},        {0xB0, cmd_read_binary},   {0x20, cmd_verify},
    {0x24, cmd_change},        {0x2C, cmd_reset_retry},   {0xCB, cmd_get_data},
    {0x22, cmd_mse},           {0x88, cmd_internal_auth}, {0x2A, cmd_pso},
    {0x84, cmd_get_challenge},
};

card_cmd_class_t card_applet_cmd_class(const uint8_t *hdr)
{
    if (!hdr)
        return CARD_CMD_FAST;
    if (hdr[1] == 0x88)
        return CARD_CMD_RSA;
    if (hdr[1] == 0x2A &&
        ((hdr[2] == 0x9E && hdr[3] == 0x9A) || (hdr[2] == 0x80 && hdr[3] == 0x86)))
        return CARD_CMD_RSA;
    return CARD_CMD_FAST;
}

bool card_applet_t0_data_in(const card_applet_t *a, const uint8_t *hdr)
{
    switch (hdr[1]) {
    case 0xA4:
    case 0x20:
    case 0x22:
    case 0x24:
    case 0x2C:
    case 0x88:
    case 0xCB:
        return true;
    case 0x2A:
        /* PSO CDS is case 2 when a PSO HASH left its result, else case 4 */
        if (hdr[2] == 0x9E && hdr[3] == 0x9A)
            return !(a && a->mse.hash_ready);
        return true;
    default:
        return false;
    }
}

bool card_applet_t0_repeatable(const uint8_t *hdr)
{
    return hdr[1] == 0xB0 || hdr[1] == 0x84;
}

uint16_t card_applet_process(card_applet_t *a, const uint8_t *apdu, size_t len, uint8_t *resp,
                             size_t cap, size_t *resp_len)
{
    if (resp_len)
        *resp_len = 0;
    if (!a || !apdu || !resp || !resp_len)
        return CARD_SW_UNKNOWN;
    if (len < 4)
        return CARD_SW_WRONG_LENGTH;
    static const uint8_t no_data[1] = {0};
    /* data is never NULL: handlers may form data + offset with lc == 0 */
    cmd_t c = {.cla = apdu[0],
               .ins = apdu[1],
               .p1 = apdu[2],
               .p2 = apdu[3],
               .data = no_data,
               .resp = resp,
               .cap = cap};
    /* ISO/IEC 7816-4 §5.1: short APDU cases */
    if (len == 5) {
        c.has_le = true;
        c.ne = apdu[4] ? apdu[4] : 256;
    } else if (len > 5) {
        size_t lc = apdu[4];
        if (lc == 0)
            return CARD_SW_WRONG_LENGTH; /* extended length: not supported */
        if (len == 5 + lc) {
            /* case 3 */
        } else if (len == 6 + lc) {
            c.has_le = true;
            c.ne = apdu[len - 1] ? apdu[len - 1] : 256;
        } else {
            return CARD_SW_WRONG_LENGTH;
        }
        c.data = apdu + 5;
        c.lc = lc;
    }
    if ((c.cla & ~0x10u) != 0x00)
        return CARD_SW_CLA;

    /* Command chaining (ISO/IEC 7816-4 §5.1.1.1): CLA bit 0x10 on all but
     * the last command; intermediate commands answer 9000. */
    if (c.cla & 0x10) {
        if (a->chaining && memcmp(a->chain_hdr + 1, apdu + 1, 3) != 0) {
            a->chaining = false;
            a->chain_len = 0;
        }
        if (c.lc > CARD_CHAIN_MAX - a->chain_len) {
            a->chaining = false;
            a->chain_len = 0;
            OPENSSL_cleanse(a->chain, sizeof a->chain);
            return CARD_SW_WRONG_LENGTH;
        }
        if (!a->chaining) {
            memcpy(a->chain_hdr, apdu, 4);
            a->chaining = true;
            a->chain_len = 0;
        }
        if (c.lc)
            memcpy(a->chain + a->chain_len, c.data, c.lc);
        a->chain_len += c.lc;
        return CARD_SW_OK;
    }
    bool chained = false;
    if (a->chaining) {
        a->chaining = false;
        if (memcmp(a->chain_hdr + 1, apdu + 1, 3) == 0) {
            if (c.lc > CARD_CHAIN_MAX - a->chain_len) {
                a->chain_len = 0;
                OPENSSL_cleanse(a->chain, sizeof a->chain);
                return CARD_SW_WRONG_LENGTH;
            }
            if (c.lc)
                memmove(a->chain + a->chain_len, c.data, c.lc);
            a->chain_len += c.lc;
            c.data = a->chain;
            c.lc = a->chain_len;
            chained = true;
        } else {
            a->chain_len = 0;
        }
    }

    uint16_t sw = CARD_SW_INS;
    for (size_t i = 0; i < sizeof dispatch / sizeof dispatch[0]; i++) {
        if (dispatch[i].ins == c.ins) {
            sw = dispatch[i].fn(a, &c);
            break;
        }
    }
    if (chained) {
        OPENSSL_cleanse(a->chain, sizeof a->chain);
        a->chain_len = 0;
    }
    /* No data with an error status (ISO/IEC 7816-4 §5.1.3). */
    if ((sw >> 8) != 0x90 && (sw >> 8) != 0x62 && (sw >> 8) != 0x63)
        c.rlen = 0;
    *resp_len = c.rlen;
    return sw;
}
