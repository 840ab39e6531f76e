/* crypto: the firmware's narrow window on mbedTLS (the only module that
 * includes mbedTLS headers): SHA-256, including finishing a hash from an
 * intermediate state (IAS-ECC PSO HASH, shared/spec/cpx-card.md §10.3), ECDSA
 * P-256 (FIPS 186-4, deterministic k per RFC 6979) for the device key, and
 * random bytes from port_rng.
 *
 * No heap: on the device mbedTLS allocates from a static pool
 * (MBEDTLS_MEMORY_BUFFER_ALLOC_C, firmware/lib/mbedtls_config.h); on
 * board/posix it is Debian's libmbedcrypto. Thread context only. */
#ifndef CACHET_CRYPTO_H
#define CACHET_CRYPTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CRYPTO_SHA256_LEN    32u
#define CRYPTO_SHA256_BLOCK  64u
#define CRYPTO_P256_PRIV_LEN 32u
/* Uncompressed point 04 || X || Y (SEC 1 §2.3.3). */
#define CRYPTO_P256_PUB_LEN 65u
/* DER ECDSA-Sig-Value (RFC 3279 §2.2.3): SEQUENCE of two INTEGERs <= 33 bytes. */
#define CRYPTO_ECDSA_SIG_MAX 72u
/* DER SubjectPublicKeyInfo of a P-256 key (RFC 5480 §2): 26 + 65 bytes. */
#define CRYPTO_P256_SPKI_LEN 91u

typedef enum {
    CRYPTO_OK = 0,
    CRYPTO_ERR_PARAM,  /* bad argument (length, NULL, bit count) */
    CRYPTO_ERR_RNG,    /* the board's RNG failed */
    CRYPTO_ERR_KEY,    /* the private key is not a valid P-256 scalar */
    CRYPTO_ERR_VERIFY, /* signature does not verify */
    CRYPTO_ERR_FAIL,   /* mbedTLS failed (out of pool memory, ...) */
} crypto_status_t;

/* Incremental SHA-256; the storage is opaque (mbedTLS's context inside). */
typedef struct {
    uint32_t opaque[28];
} crypto_sha256_t;

/* Sets up the allocator (device) once; harmless to call again. */
crypto_status_t crypto_init(void);

crypto_status_t crypto_sha256(const uint8_t *msg, size_t len, uint8_t out[CRYPTO_SHA256_LEN]);
crypto_status_t crypto_sha256_begin(crypto_sha256_t *ctx);
crypto_status_t crypto_sha256_update(crypto_sha256_t *ctx, const uint8_t *msg, size_t len);
/* Writes the digest and wipes ctx. */
crypto_status_t crypto_sha256_end(crypto_sha256_t *ctx, uint8_t out[CRYPTO_SHA256_LEN]);

/* Finishes SHA-256 (FIPS 180-4) from an intermediate state: state is the
 * chaining value H0..H7 (8 big-endian words) after bits_done bits (a multiple
 * of 512, i.e. whole 64-byte blocks), rest the remaining message (any length).
 * CRYPTO_ERR_PARAM for a bit count that is not whole blocks or a total that
 * would overflow the 64-bit length field. */
crypto_status_t crypto_sha256_finish_from(const uint8_t state[CRYPTO_SHA256_LEN],
                                          uint64_t bits_done, const uint8_t *rest, size_t len,
                                          uint8_t out[CRYPTO_SHA256_LEN]);

/* len random bytes from port_rng. */
crypto_status_t crypto_random(uint8_t *buf, size_t len);

/* New P-256 key pair from port_rng. */
crypto_status_t crypto_p256_keygen(uint8_t priv[CRYPTO_P256_PRIV_LEN],
                                   uint8_t pub[CRYPTO_P256_PUB_LEN]);

/* The public point of priv (checks that priv is a valid scalar). */
crypto_status_t crypto_p256_public(const uint8_t priv[CRYPTO_P256_PRIV_LEN],
                                   uint8_t pub[CRYPTO_P256_PUB_LEN]);

/* ECDSA P-256 signature of a SHA-256 hash, DER encoded into sig (cap >=
 * CRYPTO_ECDSA_SIG_MAX): k from RFC 6979 (HMAC-DRBG), blinded with port_rng. */
crypto_status_t crypto_p256_sign(const uint8_t priv[CRYPTO_P256_PRIV_LEN],
                                 const uint8_t hash[CRYPTO_SHA256_LEN], uint8_t *sig, size_t cap,
                                 size_t *sig_len);

/* Verifies a DER ECDSA signature over a SHA-256 hash (self-checks, tests). */
crypto_status_t crypto_p256_verify(const uint8_t pub[CRYPTO_P256_PUB_LEN],
                                   const uint8_t hash[CRYPTO_SHA256_LEN], const uint8_t *sig,
                                   size_t sig_len);

/* The DER SubjectPublicKeyInfo of pub (id-ecPublicKey, prime256v1), what
 * `openssl pkey -pubin -inform DER` reads. Returns CRYPTO_P256_SPKI_LEN, or
 * 0 when cap is too small. */
size_t crypto_p256_spki(const uint8_t pub[CRYPTO_P256_PUB_LEN], uint8_t *out, size_t cap);

#endif
