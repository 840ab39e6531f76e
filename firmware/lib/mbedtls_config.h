/* mbedtls_config: Cachet's own, explicit mbedTLS 2.28 configuration for the
 * device build (MBEDTLS_CONFIG_FILE, firmware/lib/crypto.cmake). Only what
 * crypto.h offers: SHA-256, bignum, ECP on P-256, ECDSA with deterministic k
 * (RFC 6979 over HMAC-DRBG, hence the message digest layer), ASN.1 for the
 * DER signature. No file system, no time, no stdio, and no heap: bignums are
 * allocated from crypto_mbedtls.c's static pool (MEMORY_BUFFER_ALLOC), and
 * with NO_STD_FUNCTIONS nothing refers to calloc/free/printf/exit. */
#ifndef CACHET_MBEDTLS_CONFIG_H
#define CACHET_MBEDTLS_CONFIG_H

/* System support: bare metal. */
#define MBEDTLS_HAVE_ASM
#define MBEDTLS_NO_PLATFORM_ENTROPY
#define MBEDTLS_PLATFORM_C
#define MBEDTLS_PLATFORM_MEMORY
#define MBEDTLS_PLATFORM_NO_STD_FUNCTIONS
#define MBEDTLS_MEMORY_BUFFER_ALLOC_C
/* The pool allocator stops on heap corruption: halt (crypto_mbedtls.c), never
 * newlib's exit(). */
void crypto_mbedtls_exit(int status);
#define MBEDTLS_PLATFORM_EXIT_MACRO crypto_mbedtls_exit

/* Hashes and the digest layer (HMAC-DRBG for RFC 6979). */
#define MBEDTLS_SHA256_C
#define MBEDTLS_SHA256_SMALLER
#define MBEDTLS_MD_C
#define MBEDTLS_HMAC_DRBG_C

/* Elliptic curves: P-256 only. */
#define MBEDTLS_BIGNUM_C
#define MBEDTLS_ECP_C
#define MBEDTLS_ECP_DP_SECP256R1_ENABLED
#define MBEDTLS_ECP_NIST_OPTIM
#define MBEDTLS_ECP_MAX_BITS          256
#define MBEDTLS_ECP_WINDOW_SIZE       2
#define MBEDTLS_ECP_FIXED_POINT_OPTIM 0
#define MBEDTLS_MPI_MAX_SIZE          64
#define MBEDTLS_MPI_WINDOW_SIZE       2
#define MBEDTLS_ECDSA_C
#define MBEDTLS_ECDSA_DETERMINISTIC

/* DER for ECDSA-Sig-Value (write when signing, parse when verifying). */
#define MBEDTLS_ASN1_WRITE_C
#define MBEDTLS_ASN1_PARSE_C

#include "mbedtls/check_config.h"

#endif
