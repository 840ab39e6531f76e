/* crypto: see crypto.h. The one module built on mbedTLS 2.28 (Debian 12's
 * libmbedcrypto on board/posix; the same release compiled from Debian's source
 * package with firmware/lib/mbedtls_config.h for the device). */
#include "crypto.h"

#include <mbedtls/bignum.h>
#include <mbedtls/ecdsa.h>
#include <mbedtls/ecp.h>
#include <mbedtls/sha256.h>
#if defined(MBEDTLS_MEMORY_BUFFER_ALLOC_C)
#include <mbedtls/memory_buffer_alloc.h>
#endif

#include "fw_util.h"
#include "port_rng.h"

_Static_assert(sizeof(mbedtls_sha256_context) <= sizeof(crypto_sha256_t),
               "crypto_sha256_t holds mbedTLS's SHA-256 context");
_Static_assert(_Alignof(mbedtls_sha256_context) <= _Alignof(crypto_sha256_t),
               "crypto_sha256_t is aligned for mbedTLS's context");

#if defined(MBEDTLS_MEMORY_BUFFER_ALLOC_C)
/* mbedTLS's bignums allocate: on the device they come from this pool (STYLE
 * rule 5: no heap). ECDSA P-256 signing with a window of 2 (the config) needs
 * about 3 KB at its peak; keygen and verify less. */
#define CRYPTO_POOL_SIZE 8192u
static uint8_t crypto_pool[CRYPTO_POOL_SIZE] __attribute__((aligned(8)));
#endif

#if defined(MBEDTLS_MEMORY_BUFFER_ALLOC_C)
/* mbedtls_exit (MBEDTLS_PLATFORM_EXIT_MACRO): the pool is corrupt, a bug.
 * Record it and stop; the device's watchdog restarts the appliance. */
void crypto_mbedtls_exit(int status)
{
    (void)status;
    fw_bug(__FILE__, __LINE__);
    for (;;) {
    }
}
#endif

static bool crypto_ready;
static bool crypto_rng_failed;

crypto_status_t crypto_init(void)
{
    if (!crypto_ready) {
#if defined(MBEDTLS_MEMORY_BUFFER_ALLOC_C)
        mbedtls_memory_buffer_alloc_init(crypto_pool, sizeof crypto_pool);
#endif
        crypto_ready = true;
    }
    return CRYPTO_OK;
}

/* mbedTLS's f_rng: the board's TRNG (port_rng.h). */
static int crypto_rng_cb(void *ctx, unsigned char *buf, size_t len)
{
    (void)ctx;
    if (port_rng_fill(buf, len) != PORT_OK) {
        crypto_rng_failed = true;
        return MBEDTLS_ERR_ECP_RANDOM_FAILED;
    }
    return 0;
}

/* mbedTLS return code → status (an RNG failure takes precedence). */
static crypto_status_t crypto_map(int rc, crypto_status_t otherwise)
{
    if (rc == 0)
        return CRYPTO_OK;
    if (crypto_rng_failed)
        return CRYPTO_ERR_RNG;
    return otherwise;
}

/* ---- SHA-256 (FIPS 180-4) ---- */

static mbedtls_sha256_context *crypto_sha_ctx(crypto_sha256_t *ctx)
{
    return (mbedtls_sha256_context *)(void *)ctx->opaque;
}

crypto_status_t crypto_sha256(const uint8_t *msg, size_t len, uint8_t out[CRYPTO_SHA256_LEN])
{
    FW_VERIFY(out != NULL && (msg != NULL || len == 0), CRYPTO_ERR_PARAM);
    return mbedtls_sha256_ret(msg, len, out, 0) == 0 ? CRYPTO_OK : CRYPTO_ERR_FAIL;
}

crypto_status_t crypto_sha256_begin(crypto_sha256_t *ctx)
{
    FW_VERIFY(ctx != NULL, CRYPTO_ERR_PARAM);
    mbedtls_sha256_init(crypto_sha_ctx(ctx));
    return mbedtls_sha256_starts_ret(crypto_sha_ctx(ctx), 0) == 0 ? CRYPTO_OK : CRYPTO_ERR_FAIL;
}

crypto_status_t crypto_sha256_update(crypto_sha256_t *ctx, const uint8_t *msg, size_t len)
{
    FW_VERIFY(ctx != NULL && (msg != NULL || len == 0), CRYPTO_ERR_PARAM);
    return mbedtls_sha256_update_ret(crypto_sha_ctx(ctx), msg, len) == 0 ? CRYPTO_OK
                                                                         : CRYPTO_ERR_FAIL;
}

crypto_status_t crypto_sha256_end(crypto_sha256_t *ctx, uint8_t out[CRYPTO_SHA256_LEN])
{
    FW_VERIFY(ctx != NULL && out != NULL, CRYPTO_ERR_PARAM);
    int rc = mbedtls_sha256_finish_ret(crypto_sha_ctx(ctx), out);
    mbedtls_sha256_free(crypto_sha_ctx(ctx));
    fw_wipe(ctx, sizeof *ctx);
    return rc == 0 ? CRYPTO_OK : CRYPTO_ERR_FAIL;
}

crypto_status_t crypto_sha256_finish_from(const uint8_t state[CRYPTO_SHA256_LEN],
                                          uint64_t bits_done, const uint8_t *rest, size_t len,
                                          uint8_t out[CRYPTO_SHA256_LEN])
{
    FW_VERIFY(state != NULL && out != NULL && (rest != NULL || len == 0), CRYPTO_ERR_PARAM);
    /* Only whole blocks can have been compressed (FIPS 180-4 §6.2.2). */
    FW_VERIFY(bits_done % (CRYPTO_SHA256_BLOCK * 8u) == 0, CRYPTO_ERR_PARAM);
    /* The total length in bits must fit the 64-bit length field (§5.1.1). */
    FW_VERIFY((uint64_t)len <= (UINT64_MAX - bits_done) / 8u, CRYPTO_ERR_PARAM);
    mbedtls_sha256_context c;
    mbedtls_sha256_init(&c);
    int rc = mbedtls_sha256_starts_ret(&c, 0);
    if (rc == 0) {
        /* Resume: the chaining value and the byte count already hashed
         * (mbedTLS keeps it as two 32-bit halves, total[0] the low one). */
        for (size_t i = 0; i < 8u; i++)
            c.state[i] = fw_get_be32(state + 4u * i);
        uint64_t bytes = bits_done / 8u;
        c.total[0] = (uint32_t)bytes;
        c.total[1] = (uint32_t)(bytes >> 32);
        rc = mbedtls_sha256_update_ret(&c, rest, len);
    }
    if (rc == 0)
        rc = mbedtls_sha256_finish_ret(&c, out);
    mbedtls_sha256_free(&c);
    return rc == 0 ? CRYPTO_OK : CRYPTO_ERR_FAIL;
}

/* ---- random ---- */

crypto_status_t crypto_random(uint8_t *buf, size_t len)
{
    FW_VERIFY(buf != NULL || len == 0, CRYPTO_ERR_PARAM);
    return port_rng_fill(buf, len) == PORT_OK ? CRYPTO_OK : CRYPTO_ERR_RNG;
}

/* ---- ECDSA P-256 (FIPS 186-4 §6, SEC 1) ---- */

/* A key pair context on P-256 with priv loaded (and checked) when given. */
static crypto_status_t crypto_load(mbedtls_ecdsa_context *k, const uint8_t *priv)
{
    (void)crypto_init();
    crypto_rng_failed = false;
    mbedtls_ecdsa_init(k);
    if (mbedtls_ecp_group_load(&k->grp, MBEDTLS_ECP_DP_SECP256R1) != 0)
        return CRYPTO_ERR_FAIL;
    if (priv == NULL)
        return CRYPTO_OK;
    if (mbedtls_mpi_read_binary(&k->d, priv, CRYPTO_P256_PRIV_LEN) != 0)
        return CRYPTO_ERR_FAIL;
    return mbedtls_ecp_check_privkey(&k->grp, &k->d) == 0 ? CRYPTO_OK : CRYPTO_ERR_KEY;
}

static crypto_status_t crypto_export_pub(mbedtls_ecdsa_context *k, uint8_t pub[CRYPTO_P256_PUB_LEN])
{
    size_t n = 0;
    int rc = mbedtls_ecp_point_write_binary(&k->grp, &k->Q, MBEDTLS_ECP_PF_UNCOMPRESSED, &n, pub,
                                            CRYPTO_P256_PUB_LEN);
    return rc == 0 && n == CRYPTO_P256_PUB_LEN ? CRYPTO_OK : CRYPTO_ERR_FAIL;
}

crypto_status_t crypto_p256_keygen(uint8_t priv[CRYPTO_P256_PRIV_LEN],
                                   uint8_t pub[CRYPTO_P256_PUB_LEN])
{
    FW_VERIFY(priv != NULL && pub != NULL, CRYPTO_ERR_PARAM);
    mbedtls_ecdsa_context k;
    crypto_status_t st = crypto_load(&k, NULL);
    if (st == CRYPTO_OK)
        st = crypto_map(mbedtls_ecp_gen_keypair(&k.grp, &k.d, &k.Q, crypto_rng_cb, NULL),
                        CRYPTO_ERR_FAIL);
    if (st == CRYPTO_OK && mbedtls_mpi_write_binary(&k.d, priv, CRYPTO_P256_PRIV_LEN) != 0)
        st = CRYPTO_ERR_FAIL;
    if (st == CRYPTO_OK)
        st = crypto_export_pub(&k, pub);
    mbedtls_ecdsa_free(&k);
    if (st != CRYPTO_OK)
        fw_wipe(priv, CRYPTO_P256_PRIV_LEN);
    return st;
}

crypto_status_t crypto_p256_public(const uint8_t priv[CRYPTO_P256_PRIV_LEN],
                                   uint8_t pub[CRYPTO_P256_PUB_LEN])
{
    FW_VERIFY(priv != NULL && pub != NULL, CRYPTO_ERR_PARAM);
    mbedtls_ecdsa_context k;
    crypto_status_t st = crypto_load(&k, priv);
    if (st == CRYPTO_OK)
        st = crypto_map(mbedtls_ecp_mul(&k.grp, &k.Q, &k.d, &k.grp.G, crypto_rng_cb, NULL),
                        CRYPTO_ERR_FAIL);
    if (st == CRYPTO_OK)
        st = crypto_export_pub(&k, pub);
    mbedtls_ecdsa_free(&k);
    return st;
}

crypto_status_t crypto_p256_sign(const uint8_t priv[CRYPTO_P256_PRIV_LEN],
                                 const uint8_t hash[CRYPTO_SHA256_LEN], uint8_t *sig, size_t cap,
                                 size_t *sig_len)
{
    FW_VERIFY(priv != NULL && hash != NULL && sig != NULL && sig_len != NULL, CRYPTO_ERR_PARAM);
    /* mbedTLS 2.28 writes the DER signature without a size argument: its
     * length for P-256 is at most CRYPTO_ECDSA_SIG_MAX. */
    FW_VERIFY(cap >= CRYPTO_ECDSA_SIG_MAX, CRYPTO_ERR_PARAM);
    *sig_len = 0;
    mbedtls_ecdsa_context k;
    crypto_status_t st = crypto_load(&k, priv);
    size_t n = 0;
    if (st == CRYPTO_OK)
        st =
            crypto_map(mbedtls_ecdsa_write_signature(&k, MBEDTLS_MD_SHA256, hash, CRYPTO_SHA256_LEN,
                                                     sig, &n, crypto_rng_cb, NULL),
                       CRYPTO_ERR_FAIL);
    mbedtls_ecdsa_free(&k);
    if (st == CRYPTO_OK && (n == 0 || n > CRYPTO_ECDSA_SIG_MAX)) {
        fw_bug(__FILE__, __LINE__);
        st = CRYPTO_ERR_FAIL;
    }
    if (st == CRYPTO_OK)
        *sig_len = n;
    return st;
}

crypto_status_t crypto_p256_verify(const uint8_t pub[CRYPTO_P256_PUB_LEN],
                                   const uint8_t hash[CRYPTO_SHA256_LEN], const uint8_t *sig,
                                   size_t sig_len)
{
    FW_VERIFY(pub != NULL && hash != NULL && sig != NULL, CRYPTO_ERR_PARAM);
    FW_VERIFY(sig_len > 0 && sig_len <= CRYPTO_ECDSA_SIG_MAX, CRYPTO_ERR_VERIFY);
    mbedtls_ecdsa_context k;
    crypto_status_t st = crypto_load(&k, NULL);
    if (st == CRYPTO_OK &&
        (mbedtls_ecp_point_read_binary(&k.grp, &k.Q, pub, CRYPTO_P256_PUB_LEN) != 0 ||
         mbedtls_ecp_check_pubkey(&k.grp, &k.Q) != 0))
        st = CRYPTO_ERR_KEY;
    if (st == CRYPTO_OK &&
        mbedtls_ecdsa_read_signature(&k, hash, CRYPTO_SHA256_LEN, sig, sig_len) != 0)
        st = CRYPTO_ERR_VERIFY;
    mbedtls_ecdsa_free(&k);
    return st;
}

size_t crypto_p256_spki(const uint8_t pub[CRYPTO_P256_PUB_LEN], uint8_t *out, size_t cap)
{
    /* SEQUENCE { SEQUENCE { id-ecPublicKey 1.2.840.10045.2.1,
     *                       prime256v1 1.2.840.10045.3.1.7 },
     *            BIT STRING (0 unused bits) 04 || X || Y }   RFC 5480 §2.1.1, §2.2 */
    static const uint8_t prefix[26] = {0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2A, 0x86, 0x48,
                                       0xCE, 0x3D, 0x02, 0x01, 0x06, 0x08, 0x2A, 0x86, 0x48,
                                       0xCE, 0x3D, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00};
    _Static_assert(sizeof prefix + CRYPTO_P256_PUB_LEN == CRYPTO_P256_SPKI_LEN, "SPKI length");
    if (pub == NULL || out == NULL || cap < CRYPTO_P256_SPKI_LEN)
        return 0;
    fw_memcpy(out, prefix, sizeof prefix);
    fw_memcpy(out + sizeof prefix, pub, CRYPTO_P256_PUB_LEN);
    return CRYPTO_P256_SPKI_LEN;
}
