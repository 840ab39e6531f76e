/* firmware/lib/crypto over Debian's mbedTLS: SHA-256 finished from an
 * intermediate state (the PSO HASH form) equals the one-shot hash; ECDSA P-256
 * keygen/sign/verify; the SubjectPublicKeyInfo. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <mbedtls/sha256.h>

#include "crypto.h"
#include "fake_flash_rng.h"

/* The chaining value after the whole blocks of msg[0..n) (n multiple of 64),
 * as a host would send it: big-endian words. */
static void intermediate(const uint8_t *msg, size_t n, uint8_t state[32])
{
    mbedtls_sha256_context c;
    mbedtls_sha256_init(&c);
    assert_int_equal(mbedtls_sha256_starts_ret(&c, 0), 0);
    assert_int_equal(mbedtls_sha256_update_ret(&c, msg, n), 0);
    for (int i = 0; i < 8; i++) {
        state[4 * i] = (uint8_t)(c.state[i] >> 24);
        state[4 * i + 1] = (uint8_t)(c.state[i] >> 16);
        state[4 * i + 2] = (uint8_t)(c.state[i] >> 8);
        state[4 * i + 3] = (uint8_t)c.state[i];
    }
    mbedtls_sha256_free(&c);
}

static void test_sha256_finish_from(void **st)
{
    (void)st;
    uint8_t msg[300];
    for (size_t i = 0; i < sizeof msg; i++)
        msg[i] = (uint8_t)(i * 7u + 3u);
    /* Every split at a block boundary, every tail length class. */
    size_t lens[] = {0, 1, 55, 56, 63, 64, 65, 119, 128, 191, 300};
    for (size_t k = 0; k < sizeof lens / sizeof lens[0]; k++) {
        size_t n = lens[k];
        uint8_t want[32], got[32], state[32];
        assert_int_equal(crypto_sha256(msg, n, want), CRYPTO_OK);
        for (size_t done = 0; done <= n; done += 64) {
            intermediate(msg, done, state);
            assert_int_equal(
                crypto_sha256_finish_from(state, (uint64_t)done * 8u, msg + done, n - done, got),
                CRYPTO_OK);
            assert_memory_equal(got, want, 32);
        }
    }
    /* FIPS 180-4 test vector "abc". */
    static const uint8_t abc_hash[32] = {0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea,
                                         0x41, 0x41, 0x40, 0xde, 0x5d, 0xae, 0x22, 0x23,
                                         0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17, 0x7a, 0x9c,
                                         0xb4, 0x10, 0xff, 0x61, 0xf2, 0x00, 0x15, 0xad};
    uint8_t h[32];
    assert_int_equal(crypto_sha256((const uint8_t *)"abc", 3, h), CRYPTO_OK);
    assert_memory_equal(h, abc_hash, 32);
    crypto_sha256_t c;
    assert_int_equal(crypto_sha256_begin(&c), CRYPTO_OK);
    assert_int_equal(crypto_sha256_update(&c, (const uint8_t *)"a", 1), CRYPTO_OK);
    assert_int_equal(crypto_sha256_update(&c, (const uint8_t *)"bc", 2), CRYPTO_OK);
    assert_int_equal(crypto_sha256_end(&c, h), CRYPTO_OK);
    assert_memory_equal(h, abc_hash, 32);
}

static void test_sha256_bad_counter(void **st)
{
    (void)st;
    uint8_t state[32] = {0}, out[32];
    assert_int_equal(crypto_sha256_finish_from(state, 100, NULL, 0, out), CRYPTO_ERR_PARAM);
    /* 2^64 - 512 bits done: 63 more bytes fit the length field, 64 do not. */
    static const uint8_t big[64];
    assert_int_equal(crypto_sha256_finish_from(state, UINT64_MAX - 511u, big, 64, out),
                     CRYPTO_ERR_PARAM);
    assert_int_equal(crypto_sha256_finish_from(NULL, 0, NULL, 0, out), CRYPTO_ERR_PARAM);
}

static void test_ecdsa(void **st)
{
    (void)st;
    uint8_t priv[32], pub[65], pub2[65], h[32], sig[CRYPTO_ECDSA_SIG_MAX],
        sig2[CRYPTO_ECDSA_SIG_MAX];
    size_t n = 0, n2 = 0;
    assert_int_equal(crypto_p256_keygen(priv, pub), CRYPTO_OK);
    assert_int_equal(pub[0], 0x04);
    assert_int_equal(crypto_p256_public(priv, pub2), CRYPTO_OK);
    assert_memory_equal(pub, pub2, 65);
    assert_int_equal(crypto_sha256((const uint8_t *)"receipt", 7, h), CRYPTO_OK);
    assert_int_equal(crypto_p256_sign(priv, h, sig, sizeof sig, &n), CRYPTO_OK);
    assert_true(n >= 8 && n <= CRYPTO_ECDSA_SIG_MAX);
    assert_int_equal(sig[0], 0x30);
    assert_int_equal(crypto_p256_verify(pub, h, sig, n), CRYPTO_OK);
    /* RFC 6979: the same key and hash give the same signature. */
    assert_int_equal(crypto_p256_sign(priv, h, sig2, sizeof sig2, &n2), CRYPTO_OK);
    assert_int_equal(n, n2);
    assert_memory_equal(sig, sig2, n);
    h[0] ^= 1;
    assert_int_equal(crypto_p256_verify(pub, h, sig, n), CRYPTO_ERR_VERIFY);
    /* Not a scalar of the curve. */
    uint8_t zero[32] = {0};
    assert_int_equal(crypto_p256_public(zero, pub2), CRYPTO_ERR_KEY);
    assert_int_equal(crypto_p256_sign(priv, h, sig, 10, &n), CRYPTO_ERR_PARAM);
    /* SPKI: 26-byte prefix + point. */
    uint8_t spki[CRYPTO_P256_SPKI_LEN];
    assert_int_equal(crypto_p256_spki(pub, spki, sizeof spki), CRYPTO_P256_SPKI_LEN);
    assert_int_equal(spki[0], 0x30);
    assert_int_equal(spki[1], 0x59);
    assert_memory_equal(spki + 26, pub, 65);
    assert_int_equal(crypto_p256_spki(pub, spki, 90), 0);
}

static void test_rng_failure(void **st)
{
    (void)st;
    uint8_t priv[32], pub[65], b[4];
    fake_rng_set_broken(true);
    assert_int_equal(crypto_p256_keygen(priv, pub), CRYPTO_ERR_RNG);
    assert_int_equal(crypto_random(b, sizeof b), CRYPTO_ERR_RNG);
    fake_rng_set_broken(false);
    assert_int_equal(crypto_random(b, sizeof b), CRYPTO_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sha256_finish_from),
        cmocka_unit_test(test_sha256_bad_counter),
        cmocka_unit_test(test_ecdsa),
        cmocka_unit_test(test_rng_failure),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
