/* smime_sign.c: RFC 8551 §3.5 multipart/signed with a detached RFC 5652
 * SignedData (SHA-256; signed attributes contentType, messageDigest,
 * signingTime, ESS signingCertificateV2 (RFC 5035) and smimeCapabilities;
 * signer certificate and chain). The message is canonicalised into an
 * unlinked spool file while it is hashed (smime_canon.c); only then is the
 * callback asked for the one signature, and the output is written. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/cms.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/ess.h>
#include <openssl/pkcs7.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include "smime_int.h"

#define BOUNDARY_PREFIX "=_cachet_"

typedef struct {
    int fd;
    bool err;
    uint8_t *buf;
    size_t len;
} outbuf_t;

static void out_put(outbuf_t *o, const void *p, size_t n)
{
    const uint8_t *b = p;
    while (n > 0 && !o->err) {
        size_t k = SMIME_IO_BUF - o->len;
        if (k > n)
            k = n;
        memcpy(o->buf + o->len, b, k);
        o->len += k;
        b += k;
        n -= k;
        if (o->len == SMIME_IO_BUF) {
            o->err = !smime_write_all(o->fd, o->buf, o->len);
            o->len = 0;
        }
    }
}

static void out_str(outbuf_t *o, const char *s)
{
    out_put(o, s, strlen(s));
}

static bool out_flush(outbuf_t *o)
{
    if (!o->err && o->len > 0)
        o->err = !smime_write_all(o->fd, o->buf, o->len);
    o->len = 0;
    return !o->err;
}

static void out_line_cb(void *ctx, const uint8_t *p, size_t n)
{
    out_put(ctx, p, n);
    out_put(ctx, "\r\n", 2);
}

/* ESS signingCertificateV2 (RFC 5035 §3): SHA-256 of the signer certificate
 * and its issuerSerial, binding the signature to this certificate. */
static bool add_signing_cert_v2(CMS_SignerInfo *si, X509 *signer)
{
    ESS_SIGNING_CERT_V2 *sc = OSSL_ESS_signing_cert_v2_new_init(EVP_sha256(), signer, NULL, 1);
    if (sc == NULL)
        return false;
    unsigned char *der = NULL;
    int len = i2d_ESS_SIGNING_CERT_V2(sc, &der);
    ESS_SIGNING_CERT_V2_free(sc);
    if (len <= 0)
        return false;
    ASN1_STRING *seq = ASN1_STRING_new();
    bool ok = seq != NULL && ASN1_STRING_set(seq, der, len) == 1 &&
              CMS_signed_add1_attr_by_NID(si, NID_id_smime_aa_signingCertificateV2, V_ASN1_SEQUENCE,
                                          seq, -1) == 1;
    ASN1_STRING_free(seq);
    OPENSSL_free(der);
    return ok;
}

/* smimeCapabilities (RFC 8551 §2.5.2): what we can decrypt, strongest first,
 * instead of OpenSSL's default list that still advertises DES and RC2. */
static bool add_smime_caps(CMS_SignerInfo *si)
{
    static const int nids[] = {NID_aes_256_gcm, NID_aes_128_gcm, NID_aes_256_cbc, NID_aes_128_cbc};
    STACK_OF(X509_ALGOR) *caps = sk_X509_ALGOR_new_null();
    bool ok = caps != NULL;
    for (size_t i = 0; ok && i < sizeof nids / sizeof nids[0]; i++)
        ok = PKCS7_simple_smimecap(caps, nids[i], -1) == 1;
    ok = ok && CMS_add_smimecap(si, caps) == 1;
    sk_X509_ALGOR_pop_free(caps, X509_ALGOR_free);
    return ok;
}

/* RFC 5652 §5.6 on our own output: the signature over the DER signed
 * attributes verifies with the signer certificate's public key. */
static bool signature_matches(const unsigned char *der, int der_len, X509 *signer)
{
    const unsigned char *p = der;
    CMS_ContentInfo *cms = d2i_CMS_ContentInfo(NULL, &p, der_len);
    bool ok = false;
    if (cms != NULL) {
        STACK_OF(CMS_SignerInfo) *sis = CMS_get0_SignerInfos(cms);
        CMS_SignerInfo *si =
            sk_CMS_SignerInfo_num(sis) == 1 ? sk_CMS_SignerInfo_value(sis, 0) : NULL;
        if (si != NULL) {
            CMS_SignerInfo_set1_signer_cert(si, signer);
            ok = CMS_SignerInfo_verify(si) == 1;
        }
    }
    CMS_ContentInfo_free(cms);
    return ok;
}

/* Builds and signs the SignedData over the spooled entity (spool_fd). */
static smime_status_t build_cms(const smime_sign_args_t *args, int spool_fd,
                                const uint8_t digest[32], smime_key_state_t *ks,
                                unsigned char **der, int *der_len)
{
    smime_status_t st = SMIME_ERR_INTERNAL;
    CMS_ContentInfo *cms = NULL;
    BIO *data = NULL;
    smime_key_t *key = smime_key_new(args->signer, ks);
    if (key == NULL)
        return SMIME_ERR_INTERNAL; /* not an RSA certificate */
    const unsigned flags = CMS_PARTIAL | CMS_DETACHED | CMS_BINARY | CMS_NOSMIMECAP;
    cms = CMS_sign(NULL, NULL, NULL, NULL, flags);
    if (cms == NULL)
        goto out;
    CMS_SignerInfo *si =
        CMS_add1_signer(cms, args->signer, smime_key_pkey(key), EVP_sha256(), flags);
    if (si == NULL || !add_signing_cert_v2(si, args->signer) || !add_smime_caps(si))
        goto out;
    ks->si = si;
    for (int i = 0; args->chain != NULL && i < sk_X509_num(args->chain); i++) {
        X509 *x = sk_X509_value(args->chain, i);
        if (X509_cmp(x, args->signer) == 0)
            continue;
        if (CMS_add1_cert(cms, x) != 1) {
            /* already present is fine; anything else is not */
            unsigned long e = ERR_peek_last_error();
            if (ERR_GET_REASON(e) != CMS_R_CERTIFICATE_ALREADY_PRESENT)
                goto out;
            ERR_clear_error();
        }
    }
    if (!smime_rewind(spool_fd))
        goto out;
    data = BIO_new_fd(spool_fd, BIO_NOCLOSE);
    if (data == NULL)
        goto out;
    /* Hashes the entity again as it streams from the spool (4 KiB at a time),
     * adds messageDigest, contentType and signingTime, and signs. */
    if (CMS_final(cms, data, NULL, CMS_BINARY | CMS_DETACHED) != 1) {
        st = (ks->called || ks->failed) ? SMIME_ERR_SIGN : SMIME_ERR_INTERNAL;
        goto out;
    }
    /* The digest CMS signed must be the one we announced in the summary. */
    ASN1_OCTET_STRING *md = CMS_signed_get0_data_by_OBJ(si, OBJ_nid2obj(NID_pkcs9_messageDigest),
                                                        -3, V_ASN1_OCTET_STRING);
    if (md == NULL || ASN1_STRING_length(md) != 32 ||
        memcmp(ASN1_STRING_get0_data(md), digest, 32) != 0)
        goto out;
    *der = NULL;
    *der_len = i2d_CMS_ContentInfo(cms, der);
    if (*der_len <= 0)
        goto out;
    /* Check what the card returned against the certificate before anything
     * leaves: a signature by another key (or garbage) is a signing failure,
     * not a message that will fail at every recipient. */
    if (!signature_matches(*der, *der_len, args->signer)) {
        st = SMIME_ERR_SIGN;
        goto out;
    }
    st = SMIME_OK;
out:
    BIO_free(data);
    CMS_ContentInfo_free(cms);
    smime_key_free(key);
    ERR_clear_error();
    return st;
}

static smime_status_t write_output(const smime_sign_args_t *args, const smime_hdrs_t *outer,
                                   const char *boundary, int spool_fd, uint64_t entity_len,
                                   const unsigned char *der, int der_len)
{
    outbuf_t o = {.fd = args->out_fd, .buf = malloc(SMIME_IO_BUF)};
    if (o.buf == NULL)
        return SMIME_ERR_INTERNAL;
    for (size_t i = 0; i < outer->n; i++) {
        out_put(&o, outer->raw + outer->f[i].off, outer->f[i].len);
        out_str(&o, "\r\n");
    }
    /* RFC 8551 §3.5.3.2 */
    out_str(&o, "MIME-Version: 1.0\r\n"
                "Content-Type: multipart/signed; protocol=\"application/pkcs7-signature\";\r\n"
                " micalg=sha-256; boundary=\"");
    out_str(&o, boundary);
    out_str(&o, "\"\r\n\r\nThis is a cryptographically signed message in MIME format.\r\n\r\n--");
    out_str(&o, boundary);
    out_str(&o, "\r\n");
    if (!out_flush(&o) || !smime_rewind(spool_fd)) {
        free(o.buf);
        return SMIME_ERR_IO;
    }
    uint64_t left = entity_len;
    while (left > 0 && !o.err) {
        size_t want = left < SMIME_IO_BUF ? (size_t)left : SMIME_IO_BUF;
        ssize_t n = read(spool_fd, o.buf, want);
        if (n <= 0) {
            free(o.buf);
            return SMIME_ERR_IO;
        }
        o.err = !smime_write_all(o.fd, o.buf, (size_t)n);
        left -= (uint64_t)n;
    }
    out_str(&o, "\r\n--");
    out_str(&o, boundary);
    out_str(&o, "\r\nContent-Type: application/pkcs7-signature; name=\"smime.p7s\"\r\n"
                "Content-Transfer-Encoding: base64\r\n"
                "Content-Disposition: attachment; filename=\"smime.p7s\"\r\n"
                "Content-Description: S/MIME Cryptographic Signature\r\n\r\n");
    smime_b64enc_t enc;
    memset(&enc, 0, sizeof enc);
    smime_b64enc(&enc, der, (size_t)der_len, out_line_cb, &o);
    smime_b64enc_end(&enc, out_line_cb, &o);
    out_str(&o, "\r\n--");
    out_str(&o, boundary);
    out_str(&o, "--\r\n");
    bool ok = out_flush(&o);
    free(o.buf);
    return ok ? SMIME_OK : SMIME_ERR_IO;
}

smime_status_t smime_sign(const smime_sign_args_t *args, smime_summary_t *summary, int *sign_status)
{
    if (sign_status != NULL)
        *sign_status = 0;
    if (args == NULL || args->in_fd < 0 || args->out_fd < 0 || args->signer == NULL ||
        (args->sign == NULL && args->sign_attrs == NULL))
        return SMIME_ERR_INTERNAL;
    smime_summary_t local;
    if (summary == NULL)
        summary = &local;
    memset(summary, 0, sizeof *summary);

    size_t max = args->max_size ? args->max_size : SMIME_DEFAULT_MAX_SIZE;
    smime_status_t st = SMIME_ERR_INTERNAL;
    int spool_fd = -1, part_fd = -1;
    smime_reader_t rd;
    smime_spool_t entity;
    smime_hdrs_t outer;
    unsigned char *der = NULL;
    int der_len = 0;
    bool rd_ok = false, ent_ok = false;
    smime_hdrs_init(&outer);

    /* RFC 2046 §5.1.1: a boundary that cannot occur in the content */
    uint8_t rnd[16];
    char boundary[sizeof BOUNDARY_PREFIX + 2u * sizeof rnd];
    if (RAND_bytes(rnd, sizeof rnd) != 1)
        goto out;
    memcpy(boundary, BOUNDARY_PREFIX, sizeof BOUNDARY_PREFIX - 1u);
    for (size_t i = 0; i < sizeof rnd; i++)
        snprintf(boundary + sizeof BOUNDARY_PREFIX - 1u + 2u * i, 3, "%02x", rnd[i]);

    spool_fd = smime_tmpfile();
    part_fd = smime_tmpfile();
    if (spool_fd < 0 || part_fd < 0) {
        st = SMIME_ERR_IO;
        goto out;
    }
    rd_ok = smime_reader_init_fd(&rd, args->in_fd, max);
    ent_ok = smime_spool_init(&entity, spool_fd, true);
    if (!rd_ok || !ent_ok)
        goto out;

    smime_canon_args_t ca = {
        .rd = &rd,
        .entity = &entity,
        .part_fd = part_fd,
        .outer = &outer,
        .summary = summary,
        .avoid_boundary = boundary,
    };
    st = smime_canon(&ca);
    if (st != SMIME_OK)
        goto out; /* nothing was signed: the callback is never reached */
    if (!smime_spool_finish(&entity, summary->content_digest)) {
        st = SMIME_ERR_IO;
        goto out;
    }
    close(part_fd);
    part_fd = -1;

    smime_key_state_t ks = {
        .cb = args->sign, .ctx = args->sign_ctx, .attrs_cb = args->sign_attrs, .summary = summary};
    st = build_cms(args, spool_fd, summary->content_digest, &ks, &der, &der_len);
    if (st == SMIME_ERR_SIGN && sign_status != NULL)
        *sign_status = ks.status;
    if (st != SMIME_OK)
        goto out;
    st = write_output(args, &outer, boundary, spool_fd, entity.total, der, der_len);
out:
    OPENSSL_free(der);
    if (rd_ok)
        smime_reader_free(&rd);
    if (ent_ok)
        smime_spool_free(&entity);
    smime_hdrs_free(&outer);
    if (spool_fd >= 0)
        close(spool_fd);
    if (part_fd >= 0)
        close(part_fd);
    return st;
}
