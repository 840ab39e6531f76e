/* p11_token: the objects of libcachet-pkcs11's token, built from what cachetd
 * says about the card (identity + certificates), and PKCS#11 attribute access
 * over them (PKCS#11 v2.40 §4: common, certificate, public and private key
 * attributes; §5.7 C_GetAttributeValue rules; §5.7 C_FindObjects matching).
 *
 * For each certificate of the card: a certificate object; for the
 * authentication (0x82) and signature (0x81) certificates also a private key
 * and a public key object with the certificate's CKA_ID, so that every client
 * pairs them. The private keys are CKA_PRIVATE (visible after C_Login), CKA_SIGN
 * only, never extractable, CKA_ALWAYS_AUTHENTICATE false. No heap inside; a
 * token is one allocation, its attribute values point into it. */
#ifndef CACHET_P11_TOKEN_H
#define CACHET_P11_TOKEN_H

#include <stdbool.h>
#include <stddef.h>

#include <p11-kit/pkcs11.h>

#include "p11_der.h"
#include "p11_reply.h"

#define P11_OBJECTS_MAX (P11_CERTS_MAX + 4) /* certificates + 2 private + 2 public keys */
#define P11_ATTRS_MAX   36
#define P11_MECHS       3 /* CKM_RSA_PKCS, CKM_SHA1_RSA_PKCS, CKM_SHA256_RSA_PKCS */

typedef struct {
    CK_ATTRIBUTE_TYPE type;
    const void *value; /* into the token */
    CK_ULONG len;
} p11_attr_t;

typedef struct {
    CK_OBJECT_CLASS cls;
    p11_role_t role; /* keys: which key; certificates: the role of their key (CA: 0) */
    bool private_obj;
    size_t cert; /* index of the certificate it comes from */
    p11_attr_t attr[P11_ATTRS_MAX];
    size_t nattr;
    /* storage of the scalar values the attributes point to */
    CK_OBJECT_CLASS v_class;
    CK_KEY_TYPE v_key_type;
    CK_CERTIFICATE_TYPE v_cert_type;
    CK_ULONG v_category;
    CK_ULONG v_bits;
    CK_ULONG v_zero;
    CK_MECHANISM_TYPE v_mechs[P11_MECHS];
    CK_MECHANISM_TYPE v_keygen;
} p11_object_t;

/* A key the token can sign with. */
typedef struct {
    bool present;
    size_t modulus_len; /* bytes: the signature length */
    size_t modulus_bits;
} p11_key_info_t;

typedef struct {
    p11_identity_t id;
    p11_certs_t certs;
    p11_cert_fields_t fields[P11_CERTS_MAX];
    char key_label[3][P11_TEXT_MAX + 1]; /* private and public key labels, by role */
    p11_key_info_t key[3];               /* by p11_role_t (index 0 unused) */
    p11_object_t obj[P11_OBJECTS_MAX];
    size_t nobj;
} p11_token_t;

/* Builds the objects from a decoded identity and certificate list (copied in).
 * Certificates that cannot be parsed are left out; returns the number of
 * objects (0 if nothing usable). */
size_t p11_token_build(p11_token_t *t, const p11_identity_t *id, const p11_certs_t *certs);

/* One attribute of a C_GetAttributeValue template (§5.7): sets a->ulValueLen
 * and copies the value when a->pValue is given. Returns CKR_OK,
 * CKR_ATTRIBUTE_SENSITIVE, CKR_ATTRIBUTE_TYPE_INVALID or CKR_BUFFER_TOO_SMALL
 * (the last three with ulValueLen = CK_UNAVAILABLE_INFORMATION). */
CK_RV p11_object_get(const p11_object_t *o, CK_ATTRIBUTE *a);

/* True if the object has every attribute of the template with the same value. */
bool p11_object_match(const p11_object_t *o, const CK_ATTRIBUTE *tmpl, CK_ULONG n);

/* The token label (practitioner's name, else "CPS" + serial) and the 16 last
 * characters of the card serial, both padded with blanks (PKCS#11 §3.2). */
void p11_token_label(const p11_identity_t *id, const char *serial, unsigned char label[32]);
void p11_token_serial(const char *serial, unsigned char out[16]);
/* Copies UTF-8 text into a blank-padded PKCS#11 field, cut at a character boundary. */
void p11_pad(unsigned char *dst, size_t cap, const char *src);

#endif
