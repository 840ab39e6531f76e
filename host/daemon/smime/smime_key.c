/* smime_key.c: an EVP_PKEY that holds only the signer's public key and sends
 * its one private operation (PKCS#1 v1.5 signature of a SHA-256 hash, RFC 8017
 * §8.2) to the signing callback, i.e. to the card.
 *
 * OpenSSL 3 offers no non-deprecated way to plug an external key into
 * CMS_final() short of writing a provider; a custom RSA_METHOD is the
 * well-trodden path (libp11 does the same). The deprecated RSA_* calls are
 * confined to this file, hence OPENSSL_SUPPRESS_DEPRECATED here and nowhere
 * else. OpenSSL treats a key with a non-default RSA_METHOD as "foreign" and
 * keeps it on the legacy EVP path, which calls RSA_sign() → our sign(). */
#define OPENSSL_SUPPRESS_DEPRECATED 1

#include <stdlib.h>
#include <string.h>

#include <openssl/cms.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/rsa.h>

#include "smime_int.h"

#define SIGNED_ATTRS_MAX 8192 /* far above what we add (about 400 bytes) */

typedef struct {
    unsigned char *der;
    int len;
} attr_der_t;

/* X.690 §11.6: the components of a DER SET OF in ascending order of their
 * encodings, compared as octet strings, the shorter padded with zeros. */
static int attr_cmp(const void *a, const void *b)
{
    const attr_der_t *x = a, *y = b;
    int n = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->der, y->der, (size_t)n);
    if (c != 0)
        return c;
    const attr_der_t *longer = x->len > y->len ? x : y;
    for (int i = n; i < longer->len; i++)
        if (longer->der[i] != 0)
            return longer == x ? 1 : -1;
    return 0;
}

/* The DER of the SignerInfo's signed attributes as a SET OF (tag 31, RFC 5652
 * §5.4: what the signature covers), whose SHA-256 must be hash: the DER order
 * (OpenSSL sorts them when it signs), else the order of the stack. Returns a
 * buffer to OPENSSL_free, NULL when neither matches. */
static unsigned char *signed_attrs_der(CMS_SignerInfo *si, const unsigned char hash[32],
                                       size_t *out_len)
{
    int n = CMS_signed_get_attr_count(si);
    if (n <= 0 || n > 64)
        return NULL;
    attr_der_t a[64];
    memset(a, 0, sizeof a);
    size_t total = 0;
    unsigned char *out = NULL;
    bool ok = true;
    for (int i = 0; i < n && ok; i++) {
        a[i].len = i2d_X509_ATTRIBUTE(CMS_signed_get_attr(si, i), &a[i].der);
        ok = a[i].len > 0 && (size_t)a[i].len <= SIGNED_ATTRS_MAX - total;
        if (ok)
            total += (size_t)a[i].len;
    }
    /* 31, then the length in the shortest form (X.690 §8.1.3), then the contents */
    size_t hdr = total < 0x80 ? 2 : total < 0x100 ? 3 : 4;
    if (ok)
        out = OPENSSL_malloc(hdr + total);
    for (int pass = 0; ok && out != NULL && pass < 2; pass++) {
        attr_der_t sorted[64];
        memcpy(sorted, a, sizeof a);
        if (pass == 0)
            qsort(sorted, (size_t)n, sizeof sorted[0], attr_cmp);
        out[0] = 0x31;
        if (hdr == 2) {
            out[1] = (unsigned char)total;
        } else if (hdr == 3) {
            out[1] = 0x81;
            out[2] = (unsigned char)total;
        } else {
            out[1] = 0x82;
            out[2] = (unsigned char)(total >> 8);
            out[3] = (unsigned char)total;
        }
        size_t o = hdr;
        for (int i = 0; i < n; i++) {
            memcpy(out + o, sorted[i].der, (size_t)sorted[i].len);
            o += (size_t)sorted[i].len;
        }
        unsigned char h[32];
        if (EVP_Digest(out, o, h, NULL, EVP_sha256(), NULL) == 1 && memcmp(h, hash, 32) == 0) {
            *out_len = o;
            for (int i = 0; i < n; i++)
                OPENSSL_free(a[i].der);
            return out;
        }
    }
    for (int i = 0; i < n; i++)
        OPENSSL_free(a[i].der);
    OPENSSL_free(out);
    return NULL;
}

struct smime_key {
    RSA_METHOD *meth;
    EVP_PKEY *pkey;
};

static int key_sign(int type, const unsigned char *m, unsigned int m_length, unsigned char *sigret,
                    unsigned int *siglen, const RSA *rsa)
{
    smime_key_state_t *st = RSA_get_app_data(rsa);
    if (st == NULL || sigret == NULL || siglen == NULL)
        return 0;
    /* CMS signs SHA-256(DER(signedAttrs)) (RFC 5652 §5.4); nothing else may
     * reach the card through this key. */
    if (type != NID_sha256 || m_length != 32u) {
        st->failed = true;
        return 0;
    }
    int modlen = RSA_size(rsa);
    if (modlen <= 0)
        return 0;
    size_t cap = (size_t)modlen, len = 0;
    st->called = true;
    int rc;
    if (st->attrs_cb != NULL) {
        /* What the hash covers, for the appliance's announcement: no
         * signature when we cannot say exactly what it is over. */
        size_t alen = 0;
        unsigned char *attrs = st->si != NULL ? signed_attrs_der(st->si, m, &alen) : NULL;
        if (attrs == NULL) {
            st->failed = true;
            return 0;
        }
        rc = st->attrs_cb(st->ctx, st->summary, attrs, alen, m, sigret, cap, &len);
        OPENSSL_free(attrs);
    } else {
        rc = st->cb(st->ctx, m, sigret, cap, &len);
    }
    if (rc != 0) {
        st->status = rc;
        st->failed = true;
        return 0;
    }
    if (len == 0 || len > cap) {
        st->failed = true;
        return 0;
    }
    if (len < cap) {
        /* I2OSP (RFC 8017 §4.1): left-pad to the modulus length */
        memmove(sigret + (cap - len), sigret, len);
        memset(sigret, 0, cap - len);
    }
    *siglen = (unsigned int)cap;
    return 1;
}

/* The private key is not here: any other private operation fails. */
static int key_no_priv(int flen, const unsigned char *from, unsigned char *to, RSA *rsa,
                       int padding)
{
    (void)flen;
    (void)from;
    (void)to;
    (void)rsa;
    (void)padding;
    return -1;
}

smime_key_t *smime_key_new(X509 *signer, smime_key_state_t *st)
{
    EVP_PKEY *pub = X509_get0_pubkey(signer);
    if (pub == NULL || EVP_PKEY_get_base_id(pub) != EVP_PKEY_RSA)
        return NULL;
    smime_key_t *k = calloc(1, sizeof *k);
    BIGNUM *n = NULL, *e = NULL;
    RSA *rsa = NULL;
    if (k == NULL)
        return NULL;
    if (EVP_PKEY_get_bn_param(pub, OSSL_PKEY_PARAM_RSA_N, &n) != 1 ||
        EVP_PKEY_get_bn_param(pub, OSSL_PKEY_PARAM_RSA_E, &e) != 1)
        goto fail;
    k->meth = RSA_meth_dup(RSA_PKCS1_OpenSSL());
    if (k->meth == NULL || RSA_meth_set1_name(k->meth, "cachet card callback") != 1 ||
        RSA_meth_set_sign(k->meth, key_sign) != 1 ||
        RSA_meth_set_priv_enc(k->meth, key_no_priv) != 1 ||
        RSA_meth_set_priv_dec(k->meth, key_no_priv) != 1)
        goto fail;
    rsa = RSA_new();
    if (rsa == NULL || RSA_set_method(rsa, k->meth) != 1 || RSA_set0_key(rsa, n, e, NULL) != 1)
        goto fail;
    n = e = NULL; /* owned by rsa */
    if (RSA_set_app_data(rsa, st) != 1)
        goto fail;
    k->pkey = EVP_PKEY_new();
    if (k->pkey == NULL || EVP_PKEY_assign_RSA(k->pkey, rsa) != 1)
        goto fail;
    return k;
fail:
    BN_free(n);
    BN_free(e);
    if (k->pkey == NULL || EVP_PKEY_get0_RSA(k->pkey) != rsa)
        RSA_free(rsa);
    smime_key_free(k);
    return NULL;
}

EVP_PKEY *smime_key_pkey(smime_key_t *k)
{
    return k->pkey;
}

void smime_key_free(smime_key_t *k)
{
    if (k == NULL)
        return;
    EVP_PKEY_free(k->pkey); /* frees the RSA, which still points at meth */
    RSA_meth_free(k->meth);
    free(k);
}
