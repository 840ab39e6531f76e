/* smime_verify.c: verification of a signed message: RFC 8551 §3.5
 * multipart/signed (the first part's bytes, canonicalised to CRLF, against a
 * detached SignedData) or §3.4.2 application/pkcs7-mime signed-data; the
 * signature first, then the signer's chain against the trust store for the
 * S/MIME signing purpose, then the From address against the certificate.
 * The signed part is streamed to an unlinked spool file: memory stays bounded
 * for multipart/signed whatever the message size. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "smime_int.h"

typedef enum { V_PREAMBLE, V_CONTENT, V_SIGHDR, V_SIGBODY, V_DONE } vstate_t;

typedef struct {
    uint8_t *p;
    size_t len, cap, max;
    bool over;
} membuf_t;

static bool mb_put(membuf_t *m, const void *p, size_t n)
{
    if (n == 0)
        return true;
    if (n > m->max || m->len > m->max - n) {
        m->over = true;
        return false;
    }
    if (m->len + n > m->cap) {
        size_t cap = m->cap ? m->cap : 4096u;
        while (cap < m->len + n)
            cap *= 2u;
        uint8_t *q = realloc(m->p, cap);
        if (q == NULL) {
            m->over = true;
            return false;
        }
        m->p = q;
        m->cap = cap;
    }
    memcpy(m->p + m->len, p, n);
    m->len += n;
    return true;
}

static void set_detail(smime_verify_result_t *out, const char *what)
{
    unsigned long e = ERR_peek_last_error();
    if (e != 0) {
        char buf[160];
        ERR_error_string_n(e, buf, sizeof buf);
        snprintf(out->detail, sizeof out->detail, "%.80s: %.160s", what, buf);
    } else {
        snprintf(out->detail, sizeof out->detail, "%s", what);
    }
}

/* RFC 8551 §3.5: the first part is everything between the first delimiter
 * line and the CRLF before the second, canonicalised to CRLF (§3.1.1) the way
 * it was when signed. The signature part's base64 is collected (capped). */
static smime_status_t read_multipart_signed(smime_reader_t *rd, const char *boundary,
                                            smime_spool_t *content, membuf_t *sig,
                                            smime_verify_result_t *out)
{
    size_t blen = strlen(boundary);
    vstate_t st = V_PREAMBLE;
    bool first = true, pending = false, skip = false;
    smime_hdrs_t sh;
    smime_hdrs_init(&sh);
    smime_seg_t s;
    int r;
    smime_status_t res = SMIME_OK;
    while (st != V_DONE && (r = smime_reader_next(rd, &s)) > 0) {
        if (skip && !s.line_start)
            continue;
        skip = false;
        if (s.line_start && s.len >= 2u + blen && s.data[0] == '-' && s.data[1] == '-' &&
            memcmp(s.data + 2, boundary, blen) == 0) {
            bool close = s.len >= 4u + blen && s.data[2 + blen] == '-' && s.data[3 + blen] == '-';
            skip = s.split;
            if (st == V_PREAMBLE && !close)
                st = V_CONTENT;
            else if (st == V_CONTENT && !close)
                st = V_SIGHDR;
            else if (st == V_SIGBODY || st == V_SIGHDR)
                st = V_DONE; /* close delimiter (or a third part, ignored) */
            else {
                res = SMIME_ERR_NOT_SIGNED;
                snprintf(out->detail, sizeof out->detail,
                         "multipart/signed without a signature part");
                break;
            }
            continue;
        }
        switch (st) {
        case V_CONTENT:
            if (s.line_start && !first && pending)
                smime_spool_put(content, "\r\n", 2);
            first = false;
            smime_spool_put(content, s.data, s.len);
            pending = s.eol > 0;
            break;
        case V_SIGHDR:
            if (s.len == 0 && s.line_start) {
                long i = smime_hdrs_find(&sh, "Content-Type");
                char *v = i >= 0 ? smime_field_value(&sh, (size_t)i) : NULL;
                smime_ctype_t ct;
                bool ok = v != NULL && smime_parse_ctype(v, &ct) &&
                          strcmp(ct.type, "application") == 0 &&
                          (strcmp(ct.subtype, "pkcs7-signature") == 0 ||
                           strcmp(ct.subtype, "x-pkcs7-signature") == 0);
                free(v);
                if (!ok) {
                    res = SMIME_ERR_NOT_SIGNED;
                    snprintf(out->detail, sizeof out->detail,
                             "second part is not a PKCS #7 signature");
                    goto done;
                }
                st = V_SIGBODY;
            } else if (s.line_start && !s.split) {
                if (smime_hdrs_add_line(&sh, s.data, s.len) != SMIME_HDR_OK) {
                    res = SMIME_ERR_NOT_SIGNED;
                    snprintf(out->detail, sizeof out->detail, "bad signature part header");
                    goto done;
                }
            }
            break;
        case V_SIGBODY:
            if (!mb_put(sig, s.data, s.len)) {
                res = SMIME_ERR_BAD_SIGNATURE;
                snprintf(out->detail, sizeof out->detail, "signature part too large");
                goto done;
            }
            break;
        default:
            break;
        }
    }
    if (res == SMIME_OK && r < 0) {
        res = rd->too_big ? SMIME_ERR_TOO_BIG : SMIME_ERR_IO;
        snprintf(out->detail, sizeof out->detail, "%s",
                 rd->too_big ? "message over the size limit" : "cannot read the message");
    } else if (res == SMIME_OK && st != V_DONE && st != V_SIGBODY) {
        res = SMIME_ERR_NOT_SIGNED;
        snprintf(out->detail, sizeof out->detail, "incomplete multipart/signed");
    }
    if (res == SMIME_OK && !smime_spool_flush(content)) {
        res = SMIME_ERR_IO;
        snprintf(out->detail, sizeof out->detail, "cannot write the spool file");
    }
done:
    smime_hdrs_free(&sh);
    return res;
}

/* The base64 body of an application/pkcs7-mime message (capped by max). */
static smime_status_t read_opaque(smime_reader_t *rd, membuf_t *b64, smime_verify_result_t *out)
{
    smime_seg_t s;
    int r;
    while ((r = smime_reader_next(rd, &s)) > 0) {
        if (!mb_put(b64, s.data, s.len)) {
            snprintf(out->detail, sizeof out->detail, "message too large");
            return SMIME_ERR_TOO_BIG;
        }
    }
    if (r < 0) {
        snprintf(out->detail, sizeof out->detail, "%s",
                 rd->too_big ? "message over the size limit" : "cannot read the message");
        return rd->too_big ? SMIME_ERR_TOO_BIG : SMIME_ERR_IO;
    }
    return SMIME_OK;
}

static void name_entry_utf8(const X509_NAME *nm, int nid, char *dst, size_t cap)
{
    int i = X509_NAME_get_index_by_NID(nm, nid, -1);
    if (i < 0)
        return;
    unsigned char *u = NULL;
    int n = ASN1_STRING_to_UTF8(&u, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(nm, i)));
    if (n >= 0)
        smime_utf8_copy(dst, cap, (const char *)u, (size_t)n);
    OPENSSL_free(u);
}

static void describe_signer(X509 *x, smime_verify_result_t *out, STACK_OF(OPENSSL_STRING) * *emails)
{
    const X509_NAME *subj = X509_get_subject_name(x);
    BIO *b = BIO_new(BIO_s_mem());
    if (b != NULL && X509_NAME_print_ex(b, subj, 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB) >= 0) {
        char *p = NULL;
        long n = BIO_get_mem_data(b, &p);
        if (n > 0)
            smime_utf8_copy(out->signer_subject, sizeof out->signer_subject, p, (size_t)n);
    }
    BIO_free(b);
    /* IdNat is the CN of the CPS certificates (RPPS/ADELI number, or the
     * structure/card id on staff cards), spec/domain.md */
    name_entry_utf8(subj, NID_commonName, out->signer_idnat, sizeof out->signer_idnat);
    /* rfc822Name of subjectAltName, or the legacy emailAddress (RFC 8550 §3) */
    *emails = X509_get1_email(x);
    if (*emails != NULL && sk_OPENSSL_STRING_num(*emails) > 0) {
        const char *e = sk_OPENSSL_STRING_value(*emails, 0);
        smime_utf8_copy(out->signer_email, sizeof out->signer_email, e, strlen(e));
    }
}

static bool chain_ok(X509 *signer, STACK_OF(X509) * certs, X509_STORE *trust,
                     smime_verify_result_t *out)
{
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    bool ok = false;
    if (ctx != NULL && X509_STORE_CTX_init(ctx, trust, signer, certs) == 1) {
        /* RFC 8550 §4: the certificate must be good for S/MIME signing */
        X509_STORE_CTX_set_default(ctx, "smime_sign");
        X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_SMIME_SIGN);
        if (X509_verify_cert(ctx) == 1) {
            ok = true;
        } else {
            snprintf(out->detail, sizeof out->detail, "certificate: %s",
                     X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx)));
        }
    } else {
        set_detail(out, "cannot verify the chain");
    }
    X509_STORE_CTX_free(ctx);
    return ok;
}

static smime_status_t check_cms(CMS_ContentInfo *cms, BIO *dcont, X509_STORE *trust,
                                smime_verify_result_t *out)
{
    if (OBJ_obj2nid(CMS_get0_type(cms)) != NID_pkcs7_signed ||
        sk_CMS_SignerInfo_num(CMS_get0_SignerInfos(cms)) <= 0) {
        snprintf(out->detail, sizeof out->detail, "not a signed-data");
        return SMIME_ERR_NOT_SIGNED;
    }
    /* 1. the signature(s) over the content, chain left for step 2 */
    ERR_clear_error();
    if (CMS_verify(cms, NULL, NULL, dcont, NULL, CMS_BINARY | CMS_NO_SIGNER_CERT_VERIFY) != 1) {
        set_detail(out, "signature does not verify");
        return SMIME_ERR_BAD_SIGNATURE;
    }
    STACK_OF(X509) *signers = CMS_get0_signers(cms);
    if (signers == NULL || sk_X509_num(signers) <= 0) {
        sk_X509_free(signers);
        snprintf(out->detail, sizeof out->detail, "no signer certificate");
        return SMIME_ERR_BAD_SIGNATURE;
    }
    STACK_OF(OPENSSL_STRING) *emails = NULL;
    describe_signer(sk_X509_value(signers, 0), out, &emails);

    /* 2. every signer chains to the trust store */
    STACK_OF(X509) *certs = CMS_get1_certs(cms);
    smime_status_t st = SMIME_OK;
    for (int i = 0; i < sk_X509_num(signers) && st == SMIME_OK; i++) {
        if (!chain_ok(sk_X509_value(signers, i), certs, trust, out))
            st = SMIME_ERR_UNTRUSTED;
    }
    sk_X509_pop_free(certs, X509_free);
    sk_X509_free(signers);

    /* 3. the From address is the signer's (RFC 8550 §3) */
    if (st == SMIME_OK) {
        out->signed_ok = true;
        for (int i = 0; emails != NULL && i < sk_OPENSSL_STRING_num(emails); i++) {
            if (out->from[0] != '\0' &&
                strcasecmp(out->from, sk_OPENSSL_STRING_value(emails, i)) == 0)
                out->from_matches = true;
        }
        if (!out->from_matches) {
            snprintf(out->detail, sizeof out->detail,
                     "From <%.100s> is not the signer's address <%.100s>", out->from,
                     out->signer_email);
            st = SMIME_ERR_SIGNER_MISMATCH;
        }
    }
    X509_email_free(emails);
    return st;
}

smime_status_t smime_verify(int in_fd, size_t max_size, X509_STORE *trust,
                            smime_verify_result_t *out)
{
    if (out == NULL)
        return SMIME_ERR_INTERNAL;
    memset(out, 0, sizeof *out);
    if (in_fd < 0 || trust == NULL)
        return SMIME_ERR_INTERNAL;
    size_t max = max_size ? max_size : SMIME_DEFAULT_MAX_SIZE;
    smime_status_t st = SMIME_ERR_INTERNAL;
    smime_reader_t rd;
    smime_hdrs_t h;
    smime_spool_t content;
    membuf_t b64 = {0};
    unsigned char *der = NULL;
    char *ctv = NULL;
    CMS_ContentInfo *cms = NULL;
    BIO *dcont = NULL;
    int spool_fd = -1;
    bool content_ok = false;
    smime_hdrs_init(&h);
    if (!smime_reader_init_fd(&rd, in_fd, max)) {
        smime_reader_free(&rd);
        return SMIME_ERR_INTERNAL;
    }

    /* the top-level header block (RFC 5322 §2.2) */
    smime_seg_t s;
    int r;
    bool ended = false;
    while ((r = smime_reader_next(&rd, &s)) > 0) {
        if (!s.line_start || s.split) {
            st = SMIME_ERR_NOT_MIME;
            snprintf(out->detail, sizeof out->detail, "header line too long");
            goto out;
        }
        if (s.len == 0) {
            ended = true;
            break;
        }
        smime_hdr_status_t hs = smime_hdrs_add_line(&h, s.data, s.len);
        if (hs != SMIME_HDR_OK) {
            st = hs == SMIME_HDR_NOMEM ? SMIME_ERR_INTERNAL : SMIME_ERR_NOT_MIME;
            snprintf(out->detail, sizeof out->detail, "not an RFC 5322 header block");
            goto out;
        }
    }
    if (r < 0) {
        st = rd.too_big ? SMIME_ERR_TOO_BIG : SMIME_ERR_IO;
        goto out;
    }
    if (h.n == 0) {
        st = SMIME_ERR_NOT_MIME;
        snprintf(out->detail, sizeof out->detail, "no header block");
        goto out;
    }
    long fi = smime_hdrs_find(&h, "From");
    if (fi >= 0) {
        char *v = smime_field_value(&h, (size_t)fi);
        if (v != NULL && !smime_addr_first(v, out->from, sizeof out->from))
            out->from[0] = '\0';
        free(v);
    }
    long ci = smime_hdrs_find(&h, "Content-Type");
    smime_ctype_t ct;
    memset(&ct, 0, sizeof ct);
    if (ci >= 0) {
        ctv = smime_field_value(&h, (size_t)ci);
        if (ctv == NULL)
            goto out;
        smime_parse_ctype(ctv, &ct);
    }
    bool ms = strcmp(ct.type, "multipart") == 0 && strcmp(ct.subtype, "signed") == 0;
    bool opaque = strcmp(ct.type, "application") == 0 && (strcmp(ct.subtype, "pkcs7-mime") == 0 ||
                                                          strcmp(ct.subtype, "x-pkcs7-mime") == 0);
    if ((!ms && !opaque) || !ended) {
        st = SMIME_ERR_NOT_SIGNED;
        snprintf(out->detail, sizeof out->detail, "not an S/MIME signed message");
        goto out;
    }

    if (ms) {
        char boundary[SMIME_BOUNDARY_MAX + 1];
        if (!smime_param_get(ctv, "boundary", false, boundary, sizeof boundary) ||
            boundary[0] == '\0') {
            st = SMIME_ERR_NOT_SIGNED;
            snprintf(out->detail, sizeof out->detail, "multipart/signed without a boundary");
            goto out;
        }
        spool_fd = smime_tmpfile();
        if (spool_fd < 0) {
            st = SMIME_ERR_IO;
            goto out;
        }
        content_ok = smime_spool_init(&content, spool_fd, false);
        if (!content_ok)
            goto out;
        b64.max = SMIME_SIG_B64_MAX;
        st = read_multipart_signed(&rd, boundary, &content, &b64, out);
        if (st != SMIME_OK)
            goto out;
        if (!smime_rewind(spool_fd) || (dcont = BIO_new_fd(spool_fd, BIO_NOCLOSE)) == NULL) {
            st = SMIME_ERR_IO;
            goto out;
        }
    } else {
        b64.max = max;
        st = read_opaque(&rd, &b64, out);
        if (st != SMIME_OK)
            goto out;
    }
    /* base64 → DER (RFC 8551 §3.2; other transfer encodings are not used) */
    der = malloc(b64.len / 4u * 3u + 4u);
    if (der == NULL) {
        st = SMIME_ERR_INTERNAL;
        goto out;
    }
    smime_b64dec_t d = {0};
    size_t der_len = smime_b64dec(&d, b64.p ? b64.p : (const uint8_t *)"", b64.len, der);
    free(b64.p);
    b64.p = NULL;
    const unsigned char *pp = der;
    cms = der_len > 0 && der_len <= (size_t)INT32_MAX
              ? d2i_CMS_ContentInfo(NULL, &pp, (long)der_len)
              : NULL;
    if (cms == NULL) {
        st = SMIME_ERR_BAD_SIGNATURE;
        set_detail(out, "signature is not a CMS structure");
        goto out;
    }
    st = check_cms(cms, dcont, trust, out);
out:
    CMS_ContentInfo_free(cms);
    BIO_free(dcont);
    free(der);
    free(b64.p);
    free(ctv);
    if (content_ok)
        smime_spool_free(&content);
    if (spool_fd >= 0)
        close(spool_fd);
    smime_hdrs_free(&h);
    smime_reader_free(&rd);
    ERR_clear_error();
    if (st != SMIME_OK && out->detail[0] == '\0')
        snprintf(out->detail, sizeof out->detail, "%s", smime_status_name(st));
    return st;
}
