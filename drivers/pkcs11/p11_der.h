/* p11_der: the little DER that libcachet-pkcs11 needs (ITU-T X.690 §8, DER
 * rules §10): the fields of an X.509 certificate that PKCS#11 objects carry
 * (RFC 5280 §4.1: serialNumber, issuer, subject, subjectPublicKeyInfo, and the
 * RSA key in it, RFC 8017 §A.1.1), and the recognition of a PKCS#1 v1.5
 * DigestInfo (RFC 8017 §9.2 note 1) for CKM_RSA_PKCS on the signature key.
 * Pure functions over caller buffers: no allocation, no global state. */
#ifndef CACHET_P11_DER_H
#define CACHET_P11_DER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A span of the input: offset and length (never beyond the input). */
typedef struct {
    size_t off;
    size_t len;
} p11_span_t;

typedef struct {
    p11_span_t serial;   /* the serialNumber INTEGER, whole TLV (CKA_SERIAL_NUMBER) */
    p11_span_t issuer;   /* issuer Name, whole TLV (CKA_ISSUER) */
    p11_span_t subject;  /* subject Name, whole TLV (CKA_SUBJECT) */
    p11_span_t spki;     /* subjectPublicKeyInfo, whole TLV (CKA_PUBLIC_KEY_INFO) */
    bool rsa;            /* the key is rsaEncryption (1.2.840.113549.1.1.1) */
    p11_span_t modulus;  /* RSA modulus, big-endian, without leading zero bytes */
    p11_span_t exponent; /* RSA public exponent, likewise */
    size_t modulus_bits; /* bits of the modulus */
} p11_cert_fields_t;

typedef enum {
    P11_DER_OK = 0,
    P11_DER_BAD,         /* not DER, or not a certificate of the expected shape */
    P11_DER_UNSUPPORTED, /* a certificate, but not an RSA key we can use */
} p11_der_status_t;

/* Finds the fields of a DER X.509 certificate. Everything is checked against
 * der_len; an RSA modulus must be 512 to 4096 bits. */
p11_der_status_t p11_der_cert_fields(const uint8_t *der, size_t der_len, p11_cert_fields_t *out);

typedef enum {
    P11_HASH_NONE = 0,
    P11_HASH_SHA1,   /* 20 bytes */
    P11_HASH_SHA256, /* 32 bytes */
} p11_hash_t;

/* If in[0..len) is exactly a DER DigestInfo of SHA-1 or SHA-256 (with or
 * without the NULL parameters, RFC 8017 §B.1 / RFC 3370 §2.1), returns the
 * algorithm and sets *hash_off to where the hash starts; P11_HASH_NONE
 * otherwise. */
p11_hash_t p11_der_digestinfo(const uint8_t *in, size_t len, size_t *hash_off);

/* Size of the hash of an algorithm (0 for NONE). */
size_t p11_hash_len(p11_hash_t h);

#endif
