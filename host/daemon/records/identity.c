/* identity: who holds the card, from its certificates (spec/domain.md,
 * "Certificates (IGC-Santé)"), and whether they chain to the trust store
 * (RFC 5280 §6 path validation, done by OpenSSL's X509_verify_cert). */
#include "identity.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "records_fs.h"

#define IDENTITY_TRUST_FILE_MAX (4u * 1024u * 1024u) /* a PEM bundle of CA certificates */
#define IDENTITY_TEXT_MAX       1024u                /* one subject attribute, UTF-8 */

const char *identity_chain_name(identity_chain_t c)
{
    switch (c) {
    case IDENTITY_CHAIN_OK:
        return "ok";
    case IDENTITY_CHAIN_EXPIRED:
        return "expired";
    case IDENTITY_CHAIN_NOT_YET_VALID:
        return "not-yet-valid";
    case IDENTITY_CHAIN_UNKNOWN_ISSUER:
        return "unknown-issuer";
    case IDENTITY_CHAIN_INVALID:
        return "invalid";
    }
    return "invalid";
}

/* ---- trust store ---- */

X509_STORE *identity_trust_load(const char *roots_pem, char *err, size_t err_cap)
{
    if (!roots_pem) {
        records_set_err(err, err_cap, "no trust bundle given");
        return NULL;
    }
    char *data = NULL;
    size_t len = 0;
    bool exists = false;
    if (!records_read_capped(roots_pem, IDENTITY_TRUST_FILE_MAX, false, &data, &len, &exists)) {
        records_set_err(err, err_cap, "%s: %s", roots_pem,
                        exists ? "not a readable regular file of at most 4 MiB" : "no such file");
        return NULL;
    }
    X509_STORE *store = X509_STORE_new();
    BIO *bio = BIO_new_mem_buf(data, (int)len);
    size_t count = 0;
    bool ok = store && bio;
    while (ok) {
        X509 *x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
        if (!x) {
            unsigned long e = ERR_peek_last_error();
            /* The normal end of the bundle is "no start line". */
            if (ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE)
                ERR_clear_error();
            else
                ok = false;
            break;
        }
        if (X509_STORE_add_cert(store, x) != 1) {
            unsigned long e = ERR_peek_last_error();
            /* The same certificate twice in a bundle is harmless. */
            if (ERR_GET_REASON(e) != X509_R_CERT_ALREADY_IN_HASH_TABLE)
                ok = false;
            ERR_clear_error();
        }
        X509_free(x);
        count++;
    }
    BIO_free(bio);
    free(data);
    if (!ok || count == 0) {
        char why[128] = "no certificate in it";
        if (!ok)
            ERR_error_string_n(ERR_get_error(), why, sizeof why);
        ERR_clear_error();
        records_set_err(err, err_cap, "%s: %s", roots_pem, why);
        X509_STORE_free(store);
        return NULL;
    }
    return store;
}

/* ---- text ---- */

/* Copies untrusted UTF-8 into dst: invalid sequences and control characters
 * become '?', and truncation never splits a character. */
static void copy_text(char *dst, size_t cap, const unsigned char *src, size_t len)
{
    size_t o = 0;
    if (cap == 0)
        return;
    for (size_t i = 0; i < len;) {
        unsigned c = src[i];
        size_t need = 0;
        if (c >= 0xc2 && c <= 0xdf)
            need = 1;
        else if (c >= 0xe0 && c <= 0xef)
            need = 2;
        else if (c >= 0xf0 && c <= 0xf4)
            need = 3;
        bool valid = c >= 0x20 && c != 0x7f && (c < 0x80 || need > 0);
        if (need > 0) {
            if (need > len - i - 1) {
                valid = false;
            } else {
                for (size_t k = 1; k <= need; k++)
                    if ((src[i + k] & 0xc0) != 0x80)
                        valid = false;
            }
        }
        size_t take = valid ? need + 1 : 1;
        if (take > cap - 1 - o)
            break;
        if (valid)
            memcpy(dst + o, src + i, take);
        else
            dst[o] = '?';
        o += take;
        i += valid ? take : 1;
    }
    dst[o] = '\0';
}

/* First value of attribute nid in name, as UTF-8, into dst (cap bytes). Returns
 * the full length before truncation (0 if absent). */
static size_t name_get(const X509_NAME *name, int nid, char *dst, size_t cap)
{
    if (cap)
        dst[0] = '\0';
    int idx = X509_NAME_get_index_by_NID(name, nid, -1);
    if (idx < 0)
        return 0;
    const X509_NAME_ENTRY *e = X509_NAME_get_entry(name, idx);
    const ASN1_STRING *v = e ? X509_NAME_ENTRY_get_data(e) : NULL;
    if (!v)
        return 0;
    unsigned char *utf8 = NULL;
    int n = ASN1_STRING_to_UTF8(&utf8, v);
    if (n < 0) {
        ERR_clear_error();
        return 0;
    }
    size_t len = (size_t)n > IDENTITY_TEXT_MAX ? IDENTITY_TEXT_MAX : (size_t)n;
    copy_text(dst, cap, utf8, len);
    OPENSSL_free(utf8);
    return (size_t)n;
}

static bool starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* ---- certificate fields ---- */

static time_t asn1_time_to_time(const ASN1_TIME *t)
{
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    if (!t || ASN1_TIME_to_tm(t, &tm) != 1)
        return 0;
    return timegm(&tm);
}

/* rfc822Name of the subjectAltName (RFC 5280 §4.2.1.6). */
static void san_email(X509 *x, char *dst, size_t cap)
{
    dst[0] = '\0';
    GENERAL_NAMES *gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    if (!gens) {
        ERR_clear_error();
        return;
    }
    for (int i = 0; i < sk_GENERAL_NAME_num(gens); i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
        if (g->type != GEN_EMAIL || !g->d.rfc822Name)
            continue;
        const ASN1_IA5STRING *s = g->d.rfc822Name;
        int n = ASN1_STRING_length(s);
        if (n <= 0)
            continue;
        size_t len = (size_t)n > IDENTITY_TEXT_MAX ? IDENTITY_TEXT_MAX : (size_t)n;
        copy_text(dst, cap, ASN1_STRING_get0_data(s), len);
        break;
    }
    GENERAL_NAMES_free(gens);
}

/* Card type heuristic (documented in identity.h): staff cards have a structure
 * and a CN "<structure id>/<card id>" (spec/domain.md, e.g. CN=30B0057881/CPET0002). */
static void classify(identity_t *id, const char *cn)
{
    const char *slash = strchr(cn, '/');
    bool has_structure = id->structure_name[0] != '\0' || id->structure_id[0] != '\0';
    if (has_structure && slash && slash != cn && slash[1] != '\0') {
        const char *card_id = slash + 1;
        snprintf(id->card_type, sizeof id->card_type, "%s",
                 starts_with(card_id, "CPA") ? "CPA" : "CPE");
        if (id->structure_id[0] == '\0') {
            size_t n = (size_t)(slash - cn);
            if (n < sizeof id->structure_id) {
                memcpy(id->structure_id, cn, n);
                id->structure_id[n] = '\0';
            }
        }
        return;
    }
    /* "Etudiant", "Étudiant", "étudiant en médecine": the ASCII tail is enough. */
    if (strcasestr(id->profession, "tudiant") != NULL) {
        snprintf(id->card_type, sizeof id->card_type, "CPF");
        return;
    }
    snprintf(id->card_type, sizeof id->card_type, "CPS");
}

static void fill_holder(identity_t *id, X509 *holder)
{
    const X509_NAME *subj = X509_get_subject_name(holder);
    char cn[256];
    (void)name_get(subj, NID_surname, id->surname, sizeof id->surname);
    (void)name_get(subj, NID_givenName, id->given_name, sizeof id->given_name);
    size_t cn_len = name_get(subj, NID_commonName, cn, sizeof cn);
    (void)name_get(subj, NID_title, id->profession, sizeof id->profession);
    (void)name_get(subj, NID_organizationName, id->structure_name, sizeof id->structure_name);
    (void)name_get(subj, NID_organizationalUnitName, id->structure_id, sizeof id->structure_id);
    (void)name_get(subj, NID_stateOrProvinceName, id->state, sizeof id->state);
    (void)name_get(subj, NID_countryName, id->country, sizeof id->country);

    /* An IdNat is short; a CN that does not fit is not one (no silent truncation). */
    if (cn_len > 0 && cn_len < sizeof id->idnat && strlen(cn) == cn_len)
        memcpy(id->idnat, cn, cn_len + 1);
    /* IdNat type = its first character (spec/domain.md): 8 RPPS, 0 ADELI. */
    if (id->idnat[0] == '8')
        snprintf(id->idnat_type, sizeof id->idnat_type, "RPPS");
    else if (id->idnat[0] == '0')
        snprintf(id->idnat_type, sizeof id->idnat_type, "ADELI");
    classify(id, cn);

    id->not_before = asn1_time_to_time(X509_get0_notBefore(holder));
    id->not_after = asn1_time_to_time(X509_get0_notAfter(holder));
}

/* ---- chain ---- */

static int chain_rank(identity_chain_t c)
{
    switch (c) {
    case IDENTITY_CHAIN_OK:
        return 0;
    case IDENTITY_CHAIN_NOT_YET_VALID:
        return 1;
    case IDENTITY_CHAIN_EXPIRED:
        return 2;
    case IDENTITY_CHAIN_UNKNOWN_ISSUER:
        return 3;
    case IDENTITY_CHAIN_INVALID:
        return 4;
    }
    return 4;
}

static identity_chain_t map_verify_error(int e)
{
    switch (e) {
    case X509_V_ERR_CERT_HAS_EXPIRED:
        return IDENTITY_CHAIN_EXPIRED;
    case X509_V_ERR_CERT_NOT_YET_VALID:
        return IDENTITY_CHAIN_NOT_YET_VALID;
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
    case X509_V_ERR_CERT_UNTRUSTED:
        return IDENTITY_CHAIN_UNKNOWN_ISSUER;
    default:
        return IDENTITY_CHAIN_INVALID;
    }
}

static identity_chain_t check_chain(X509 *cert, STACK_OF(X509) * untrusted, X509_STORE *trust,
                                    time_t now, const char *which, char *detail, size_t cap)
{
    if (!trust) {
        snprintf(detail, cap, "%s certificate: no trust store configured", which);
        return IDENTITY_CHAIN_UNKNOWN_ISSUER;
    }
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    if (!ctx || X509_STORE_CTX_init(ctx, trust, cert, untrusted) != 1) {
        X509_STORE_CTX_free(ctx);
        ERR_clear_error();
        snprintf(detail, cap, "%s certificate: cannot set up verification", which);
        return IDENTITY_CHAIN_INVALID;
    }
    X509_STORE_CTX_set_time(ctx, 0, now);
    identity_chain_t st = IDENTITY_CHAIN_OK;
    if (X509_verify_cert(ctx) != 1) {
        int e = X509_STORE_CTX_get_error(ctx);
        int depth = X509_STORE_CTX_get_error_depth(ctx);
        st = e == X509_V_OK ? IDENTITY_CHAIN_INVALID : map_verify_error(e);
        snprintf(detail, cap, "%s certificate: %s (depth %d)", which,
                 X509_verify_cert_error_string(e), depth);
    }
    X509_STORE_CTX_free(ctx);
    ERR_clear_error();
    return st;
}

/* Parses one DER certificate; the encoding must fill der_len exactly. */
static X509 *parse_der(const card_cert_t *c)
{
    if (c->der_len == 0 || c->der_len > CARD_CERT_MAX || c->der_len > sizeof c->der)
        return NULL;
    const unsigned char *p = c->der;
    X509 *x = d2i_X509(NULL, &p, (long)c->der_len);
    if (x && p != c->der + c->der_len) {
        X509_free(x);
        x = NULL;
    }
    if (!x)
        ERR_clear_error();
    return x;
}

bool identity_from_certs(const card_cert_t *certs, size_t n, X509_STORE *trust, time_t now,
                         identity_t *out)
{
    if (!out)
        return false;
    memset(out, 0, sizeof *out);
    out->auth_cert = -1;
    out->sign_cert = -1;
    out->chain = IDENTITY_CHAIN_INVALID;
    if (!certs || n == 0)
        return false;
    if (n > CARD_CERTS_MAX)
        n = CARD_CERTS_MAX;
    if (now == 0)
        now = time(NULL);

    X509 *parsed[CARD_CERTS_MAX] = {0};
    STACK_OF(X509) *untrusted = sk_X509_new_null();
    if (!untrusted)
        return false;
    for (size_t i = 0; i < n; i++) {
        parsed[i] = parse_der(&certs[i]);
        if (!parsed[i])
            continue;
        if (certs[i].role == CARD_KEY_AUTH && out->auth_cert < 0)
            out->auth_cert = (int)i;
        else if (certs[i].role == CARD_KEY_SIGN && out->sign_cert < 0)
            out->sign_cert = (int)i;
        else if (certs[i].role == 0)
            (void)sk_X509_push(untrusted, parsed[i]); /* borrowed: freed from parsed[] */
    }
    X509 *auth = out->auth_cert >= 0 ? parsed[out->auth_cert] : NULL;
    X509 *sign = out->sign_cert >= 0 ? parsed[out->sign_cert] : NULL;
    X509 *holder = auth ? auth : sign;
    bool ok = holder != NULL;
    if (ok) {
        fill_holder(out, holder);
        if (sign)
            san_email(sign, out->email, sizeof out->email);

        out->chain = IDENTITY_CHAIN_OK;
        char detail[sizeof out->chain_detail];
        struct {
            X509 *x;
            const char *which;
        } todo[2] = {{auth, "authentication"}, {sign, "signature"}};
        for (size_t k = 0; k < 2; k++) {
            if (!todo[k].x)
                continue;
            detail[0] = '\0';
            identity_chain_t st =
                check_chain(todo[k].x, untrusted, trust, now, todo[k].which, detail, sizeof detail);
            if (chain_rank(st) > chain_rank(out->chain)) {
                out->chain = st;
                memcpy(out->chain_detail, detail, sizeof detail);
            }
        }
    }
    sk_X509_free(untrusted);
    for (size_t i = 0; i < n; i++)
        X509_free(parsed[i]);
    ERR_clear_error();
    return ok;
}
