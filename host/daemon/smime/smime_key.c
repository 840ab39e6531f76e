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

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/rsa.h>

#include "smime_int.h"

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
    int rc = st->cb(st->ctx, m, sigret, cap, &len);
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
