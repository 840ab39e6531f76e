/* Unit tests of libcachet-pkcs11's decoding (drivers/pkcs11): cachetd replies
 * (p11_reply.c), certificate fields and DigestInfo (p11_der.c), token objects
 * and attributes (p11_token.c), error-code mapping. Certificates come from the
 * test PKI (cps-rpps), cross-checked with OpenSSL. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "p11_der.h"
#include "p11_reply.h"
#include "p11_token.h"
#include "proto.h"

static size_t read_file(const char *name, uint8_t *buf, size_t cap)
{
    char path[512];
    snprintf(path, sizeof path, "%s/profiles/cps-rpps/%s", CACHET_TEST_PKI_DIR, name);
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    size_t n = fread(buf, 1, cap, fp);
    fclose(fp);
    return n;
}

static bool parse(const char *json, p11_msg_t *m)
{
    return p11_msg_parse(json, strlen(json), m);
}

/* ---- DER ------------------------------------------------------------------------ */

static void test_cert_fields_match_openssl(void **state)
{
    (void)state;
    static const char *const names[] = {"auth.crt.der", "sign.crt.der", "ca.crt.der"};
    for (size_t i = 0; i < 3; i++) {
        uint8_t der[8192];
        size_t n = read_file(names[i], der, sizeof der);
        p11_cert_fields_t f;
        assert_int_equal(p11_der_cert_fields(der, n, &f), P11_DER_OK);
        assert_true(f.rsa);
        const unsigned char *p = der;
        X509 *x = d2i_X509(NULL, &p, (long)n);
        assert_non_null(x);
        /* subject and issuer: the same DER as OpenSSL re-encodes */
        unsigned char *enc = NULL;
        int len = i2d_X509_NAME(X509_get_subject_name(x), &enc);
        assert_int_equal((size_t)len, f.subject.len);
        assert_memory_equal(enc, der + f.subject.off, f.subject.len);
        OPENSSL_free(enc);
        enc = NULL;
        len = i2d_X509_NAME(X509_get_issuer_name(x), &enc);
        assert_int_equal((size_t)len, f.issuer.len);
        assert_memory_equal(enc, der + f.issuer.off, f.issuer.len);
        OPENSSL_free(enc);
        enc = NULL;
        len = i2d_ASN1_INTEGER(X509_get_serialNumber(x), &enc);
        assert_int_equal((size_t)len, f.serial.len);
        assert_memory_equal(enc, der + f.serial.off, f.serial.len);
        OPENSSL_free(enc);
        enc = NULL;
        len = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(x), &enc);
        assert_int_equal((size_t)len, f.spki.len);
        OPENSSL_free(enc);
        /* modulus and exponent */
        EVP_PKEY *pk = X509_get0_pubkey(x);
        BIGNUM *bn_n = NULL, *bn_e = NULL;
        assert_true(EVP_PKEY_get_bn_param(pk, OSSL_PKEY_PARAM_RSA_N, &bn_n));
        assert_true(EVP_PKEY_get_bn_param(pk, OSSL_PKEY_PARAM_RSA_E, &bn_e));
        uint8_t nb[512], eb[16];
        int nl = BN_bn2bin(bn_n, nb), el = BN_bn2bin(bn_e, eb);
        assert_int_equal((size_t)nl, f.modulus.len);
        assert_memory_equal(nb, der + f.modulus.off, f.modulus.len);
        assert_int_equal((size_t)el, f.exponent.len);
        assert_memory_equal(eb, der + f.exponent.off, f.exponent.len);
        assert_int_equal(f.modulus_bits, (size_t)BN_num_bits(bn_n));
        BN_free(bn_n);
        BN_free(bn_e);
        X509_free(x);
    }
}

static void test_cert_fields_reject(void **state)
{
    (void)state;
    uint8_t der[8192];
    size_t n = read_file("auth.crt.der", der, sizeof der);
    p11_cert_fields_t f;
    /* every truncation is refused, none read past the end (ASan) */
    for (size_t cut = 0; cut < n; cut += (cut < 64 ? 1 : 97))
        assert_int_not_equal(p11_der_cert_fields(der, cut, &f), P11_DER_OK);
    /* trailing garbage */
    der[n] = 0;
    assert_int_equal(p11_der_cert_fields(der, n + 1, &f), P11_DER_BAD);
    /* an indefinite length */
    uint8_t bad[] = {0x30, 0x80, 0x30, 0x00, 0x00, 0x00};
    assert_int_equal(p11_der_cert_fields(bad, sizeof bad, &f), P11_DER_BAD);
    /* a length that claims more than there is */
    uint8_t big[] = {0x30, 0x84, 0x7F, 0xFF, 0xFF, 0xFF, 0x00};
    assert_int_equal(p11_der_cert_fields(big, sizeof big, &f), P11_DER_BAD);
    assert_int_equal(p11_der_cert_fields(NULL, 0, &f), P11_DER_BAD);
}

static void test_digestinfo(void **state)
{
    (void)state;
    uint8_t di[64];
    static const uint8_t sha256_pre[] = {0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01,
                                         0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20};
    memcpy(di, sha256_pre, sizeof sha256_pre);
    memset(di + sizeof sha256_pre, 0xAB, 32);
    size_t off = 0;
    assert_int_equal(p11_der_digestinfo(di, sizeof sha256_pre + 32, &off), P11_HASH_SHA256);
    assert_int_equal(off, sizeof sha256_pre);
    /* one byte short or long: not a DigestInfo */
    assert_int_equal(p11_der_digestinfo(di, sizeof sha256_pre + 31, &off), P11_HASH_NONE);
    assert_int_equal(p11_der_digestinfo(di, sizeof sha256_pre + 33, &off), P11_HASH_NONE);
    static const uint8_t sha1_pre[] = {0x30, 0x21, 0x30, 0x09, 0x06, 0x05, 0x2b, 0x0e,
                                       0x03, 0x02, 0x1a, 0x05, 0x00, 0x04, 0x14};
    memcpy(di, sha1_pre, sizeof sha1_pre);
    assert_int_equal(p11_der_digestinfo(di, sizeof sha1_pre + 20, &off), P11_HASH_SHA1);
    /* SHA-512's DigestInfo is not one the card rebuilds */
    static const uint8_t sha512_pre[] = {0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01,
                                         0x65, 0x03, 0x04, 0x02, 0x03, 0x05, 0x00, 0x04, 0x40};
    uint8_t d5[19 + 64];
    memcpy(d5, sha512_pre, sizeof sha512_pre);
    memset(d5 + 19, 1, 64);
    assert_int_equal(p11_der_digestinfo(d5, sizeof d5, &off), P11_HASH_NONE);
    assert_int_equal(p11_hash_len(P11_HASH_SHA1), 20);
    assert_int_equal(p11_hash_len(P11_HASH_SHA256), 32);
}

/* ---- replies -------------------------------------------------------------------- */

static void test_status(void **state)
{
    (void)state;
    p11_msg_t m;
    assert_true(parse("{\"v\":1,\"id\":2,\"result\":{\"server\":\"cachetd 0.1.0\",\"backend\":"
                      "\"native\",\"reader\":{\"name\":\"Cachet CPS Appliance 00 00\",\"present\":"
                      "true,\"pinpad\":true},\"card\":{\"present\":true,\"serial\":"
                      "\"80250000019900000001\",\"label\":\"\",\"ready\":true,\"holder_surname\":"
                      "\"DUPONT\"},\"pin\":{\"verified\":false,\"tries_left\":2},\"busy\":false,"
                      "\"later\":{\"x\":1}}}",
                      &m));
    assert_int_equal(m.kind, P11_MSG_RESULT);
    assert_int_equal(m.id, 2);
    p11_status_t st;
    assert_true(p11_decode_status(m.result, &st));
    assert_true(st.reader_present && st.pinpad && st.card_present && st.card_ready);
    assert_string_equal(st.serial, "80250000019900000001");
    assert_string_equal(st.reader, "Cachet CPS Appliance 00 00");
    assert_int_equal(st.tries_left, 2);
    assert_false(st.pin_verified);
    p11_msg_free(&m);

    /* tries_left null (unknown); no reader: no card either */
    assert_true(parse("{\"v\":1,\"id\":3,\"result\":{\"reader\":{\"present\":false},\"card\":{"
                      "\"present\":true,\"ready\":true},\"pin\":{\"tries_left\":null}}}",
                      &m));
    assert_true(p11_decode_status(m.result, &st));
    assert_int_equal(st.tries_left, -1);
    assert_false(st.card_present);
    p11_msg_free(&m);

    /* wrong types are refused */
    assert_true(parse("{\"v\":1,\"id\":3,\"result\":{\"card\":{\"present\":\"yes\"}}}", &m));
    assert_false(p11_decode_status(m.result, &st));
    p11_msg_free(&m);
    assert_true(parse("{\"v\":1,\"id\":3,\"result\":{\"pin\":{\"tries_left\":300}}}", &m));
    assert_false(p11_decode_status(m.result, &st));
    p11_msg_free(&m);
    assert_true(parse("{\"v\":1,\"id\":3,\"result\":{\"reader\":[]}}", &m));
    assert_false(p11_decode_status(m.result, &st));
    p11_msg_free(&m);
}

static void test_error_and_event(void **state)
{
    (void)state;
    p11_msg_t m;
    assert_true(parse("{\"v\":1,\"id\":12,\"error\":{\"code\":\"pin-incorrect\",\"message\":"
                      "\"wrong PIN\",\"tries_left\":2}}",
                      &m));
    assert_int_equal(m.kind, P11_MSG_ERROR);
    assert_string_equal(m.code, "pin-incorrect");
    assert_int_equal(m.tries_left, 2);
    p11_msg_free(&m);
    assert_true(
        parse("{\"v\":1,\"id\":null,\"error\":{\"code\":\"bad-request\",\"message\":\"x\"}}", &m));
    assert_int_equal(m.id, -1);
    p11_msg_free(&m);

    assert_true(parse("{\"v\":1,\"event\":\"card-inserted\",\"reader\":\"R\",\"serial\":\"42\","
                      "\"ready\":true,\"from_cache\":true}",
                      &m));
    p11_event_t ev;
    assert_true(p11_decode_event(&m, &ev));
    assert_int_equal(ev.kind, P11_EV_CARD_INSERTED);
    assert_true(ev.ready);
    assert_string_equal(ev.serial, "42");
    p11_msg_free(&m);
    assert_true(parse("{\"v\":1,\"event\":\"pin-needed\",\"operation\":\"login\"}", &m));
    assert_true(p11_decode_event(&m, &ev));
    assert_int_equal(ev.kind, P11_EV_OTHER);
    p11_msg_free(&m);

    /* not responses: both or neither of result/error, bad version, garbage */
    assert_false(parse("{\"v\":1,\"id\":1,\"result\":{},\"error\":{\"code\":\"x\",\"message\":"
                       "\"y\"}}",
                       &m));
    assert_false(parse("{\"v\":1,\"id\":1}", &m));
    assert_false(parse("{\"v\":2,\"id\":1,\"result\":{}}", &m));
    assert_false(parse("[1,2]", &m));
    assert_false(parse("{\"v\":1,\"id\":1,\"result\":{}} x", &m));
    assert_false(p11_msg_parse(NULL, 0, &m));
}

static void test_identity_and_certs(void **state)
{
    (void)state;
    p11_msg_t m;
    assert_true(parse("{\"v\":1,\"id\":3,\"result\":{\"surname\":\"DUPONT\",\"given_name\":"
                      "\"JEAN\",\"card_type\":\"CPS\",\"serial\":\"8025\",\"keys\":{\"auth\":{"
                      "\"label\":\"CPS_PRIV_AUT\",\"id\":\"e828bd080f8025000001ff001002\"},"
                      "\"sign\":{\"label\":\"CPS_PRIV_SIG\",\"id\":\"E828\"}}}}",
                      &m));
    p11_identity_t id;
    assert_true(p11_decode_identity(m.result, &id));
    assert_string_equal(id.surname, "DUPONT");
    assert_true(id.auth.present && id.sign.present);
    assert_int_equal(id.auth.id_len, 14);
    assert_int_equal(id.sign.id_len, 2);
    assert_int_equal(id.sign.id[0], 0xE8);
    p11_msg_free(&m);
    /* an odd or non-hex ID is refused */
    assert_true(parse("{\"v\":1,\"id\":3,\"result\":{\"keys\":{\"auth\":{\"id\":\"abc\"}}}}", &m));
    assert_false(p11_decode_identity(m.result, &id));
    p11_msg_free(&m);
    assert_true(parse("{\"v\":1,\"id\":3,\"result\":{\"keys\":{\"auth\":{\"id\":\"zz\"}}}}", &m));
    assert_false(p11_decode_identity(m.result, &id));
    p11_msg_free(&m);

    /* certificates: bad entries skipped, good ones kept */
    assert_true(parse("{\"v\":1,\"id\":4,\"result\":{\"certificates\":[{\"role\":\"auth\","
                      "\"label\":\"A\",\"id\":\"01\",\"der\":\"MAA=\"},{\"role\":\"boss\",\"der\":"
                      "\"MAA=\"},{\"role\":\"ca\",\"der\":\"Zh==\"},{\"role\":\"sign\"},7]}}",
                      &m));
    p11_certs_t *c = malloc(sizeof *c);
    size_t skipped = 0;
    assert_true(p11_decode_certificates(m.result, c, &skipped));
    assert_int_equal(c->n, 1);
    assert_int_equal(skipped, 4);
    assert_int_equal(c->cert[0].role, P11_ROLE_AUTH);
    assert_int_equal(c->cert[0].der_len, 2);
    p11_msg_free(&m);
    assert_true(parse("{\"v\":1,\"id\":4,\"result\":{\"certificates\":{}}}", &m));
    assert_false(p11_decode_certificates(m.result, c, &skipped));
    p11_msg_free(&m);
    free(c);

    uint8_t sig[512];
    size_t sl = 0;
    assert_true(parse("{\"v\":1,\"id\":9,\"result\":{\"signature\":\"Zm9vYmFy\"}}", &m));
    assert_true(p11_decode_signature(m.result, sig, sizeof sig, &sl));
    assert_int_equal(sl, 6);
    assert_memory_equal(sig, "foobar", 6);
    assert_false(p11_decode_signature(m.result, sig, 3, &sl)); /* over the cap */
    p11_msg_free(&m);
    assert_true(parse("{\"v\":1,\"id\":9,\"result\":{\"signature\":\"\"}}", &m));
    assert_false(p11_decode_signature(m.result, sig, sizeof sig, &sl));
    p11_msg_free(&m);
}

static void test_ckr_mapping(void **state)
{
    (void)state;
    assert_int_equal(p11_ckr_from_code("card-removed", P11_OP_SIGN), CKR_DEVICE_REMOVED);
    assert_int_equal(p11_ckr_from_code("no-card", P11_OP_GENERIC), CKR_TOKEN_NOT_PRESENT);
    assert_int_equal(p11_ckr_from_code("pin-required", P11_OP_SIGN), CKR_USER_NOT_LOGGED_IN);
    assert_int_equal(p11_ckr_from_code("pin-incorrect", P11_OP_LOGIN), CKR_PIN_INCORRECT);
    assert_int_equal(p11_ckr_from_code("pin-blocked", P11_OP_LOGIN), CKR_PIN_LOCKED);
    assert_int_equal(p11_ckr_from_code("pin-format", P11_OP_LOGIN), CKR_PIN_INVALID);
    assert_int_equal(p11_ckr_from_code("cancelled", P11_OP_SIGN), CKR_FUNCTION_CANCELED);
    assert_int_equal(p11_ckr_from_code("timeout", P11_OP_LOGIN), CKR_FUNCTION_CANCELED);
    assert_int_equal(p11_ckr_from_code("bad-input", P11_OP_SIGN), CKR_DATA_INVALID);
    assert_int_equal(p11_ckr_from_code("not-supported", P11_OP_SIGN),
                     CKR_KEY_FUNCTION_NOT_PERMITTED);
    assert_int_equal(p11_ckr_from_code("backend", P11_OP_SIGN), CKR_DEVICE_ERROR);
    assert_int_equal(p11_ckr_from_code("denied", P11_OP_GENERIC), CKR_FUNCTION_REJECTED);
    assert_int_equal(p11_ckr_from_code("bad-request", P11_OP_GENERIC), CKR_FUNCTION_FAILED);
    assert_int_equal(p11_ckr_from_code("something-new", P11_OP_SIGN), CKR_FUNCTION_FAILED);
    assert_int_equal(p11_ckr_from_code(NULL, P11_OP_SIGN), CKR_FUNCTION_FAILED);
}

/* ---- token ---------------------------------------------------------------------- */

static p11_token_t *build_token(void)
{
    p11_certs_t *c = calloc(1, sizeof *c);
    static const char *const names[] = {"auth.crt.der", "sign.crt.der", "ca.crt.der"};
    static const p11_role_t roles[] = {P11_ROLE_AUTH, P11_ROLE_SIGN, P11_ROLE_CA};
    for (size_t i = 0; i < 3; i++) {
        c->cert[i].der_len = read_file(names[i], c->cert[i].der, sizeof c->cert[i].der);
        c->cert[i].role = roles[i];
        c->cert[i].id[0] = (uint8_t)(0x10 + i);
        c->cert[i].id_len = 1;
    }
    snprintf(c->cert[0].label, sizeof c->cert[0].label, "Certificat d'authentification CPS");
    c->n = 3;
    p11_identity_t id;
    memset(&id, 0, sizeof id);
    snprintf(id.surname, sizeof id.surname, "DUPONT");
    snprintf(id.given_name, sizeof id.given_name, "JEAN");
    p11_token_t *t = malloc(sizeof *t);
    assert_int_equal(p11_token_build(t, &id, c), 7);
    free(c);
    return t;
}

static const p11_object_t *find(const p11_token_t *t, CK_OBJECT_CLASS cls, p11_role_t role)
{
    for (size_t i = 0; i < t->nobj; i++)
        if (t->obj[i].cls == cls && t->obj[i].role == role)
            return &t->obj[i];
    return NULL;
}

static void test_token_objects(void **state)
{
    (void)state;
    p11_token_t *t = build_token();
    const p11_object_t *cert = find(t, CKO_CERTIFICATE, P11_ROLE_AUTH);
    const p11_object_t *priv = find(t, CKO_PRIVATE_KEY, P11_ROLE_AUTH);
    const p11_object_t *pub = find(t, CKO_PUBLIC_KEY, P11_ROLE_AUTH);
    assert_non_null(cert);
    assert_non_null(priv);
    assert_non_null(pub);
    assert_true(priv->private_obj);
    assert_false(pub->private_obj);
    assert_non_null(find(t, CKO_PRIVATE_KEY, P11_ROLE_SIGN));
    assert_non_null(find(t, CKO_CERTIFICATE, P11_ROLE_CA));
    assert_null(find(t, CKO_PRIVATE_KEY, P11_ROLE_CA));
    assert_int_equal(t->key[P11_ROLE_AUTH].modulus_len, 256);

    /* CKA_ID pairs key and certificate; the modulus is the certificate's */
    uint8_t id1[8], id2[8], mod1[512], mod2[512];
    CK_ATTRIBUTE a[2] = {{CKA_ID, id1, sizeof id1}, {CKA_MODULUS, mod1, sizeof mod1}};
    CK_ATTRIBUTE b[2] = {{CKA_ID, id2, sizeof id2}, {CKA_MODULUS, mod2, sizeof mod2}};
    assert_int_equal(p11_object_get(priv, &a[0]), CKR_OK);
    assert_int_equal(p11_object_get(priv, &a[1]), CKR_OK);
    assert_int_equal(p11_object_get(pub, &b[0]), CKR_OK);
    assert_int_equal(p11_object_get(pub, &b[1]), CKR_OK);
    assert_int_equal(a[0].ulValueLen, 1);
    assert_int_equal(id1[0], 0x10);
    assert_memory_equal(id1, id2, 1);
    assert_int_equal(a[1].ulValueLen, 256);
    assert_memory_equal(mod1, mod2, 256);
    CK_ATTRIBUTE idc = {CKA_ID, id2, sizeof id2};
    assert_int_equal(p11_object_get(cert, &idc), CKR_OK);
    assert_int_equal(id2[0], 0x10);

    /* §5.7 rules: size query, too small, sensitive, unknown */
    CK_ATTRIBUTE q = {CKA_VALUE, NULL, 0};
    assert_int_equal(p11_object_get(cert, &q), CKR_OK);
    assert_true(q.ulValueLen > 500);
    uint8_t small[4];
    CK_ATTRIBUTE s = {CKA_VALUE, small, sizeof small};
    assert_int_equal(p11_object_get(cert, &s), CKR_BUFFER_TOO_SMALL);
    assert_int_equal(s.ulValueLen, CK_UNAVAILABLE_INFORMATION);
    uint8_t big[512];
    CK_ATTRIBUTE pe = {CKA_PRIVATE_EXPONENT, big, sizeof big};
    assert_int_equal(p11_object_get(priv, &pe), CKR_ATTRIBUTE_SENSITIVE);
    assert_int_equal(pe.ulValueLen, CK_UNAVAILABLE_INFORMATION);
    CK_ATTRIBUTE unk = {CKA_VENDOR_DEFINED + 7, big, sizeof big};
    assert_int_equal(p11_object_get(priv, &unk), CKR_ATTRIBUTE_TYPE_INVALID);
    CK_BBOOL v = CK_TRUE;
    CK_ATTRIBUTE aa = {CKA_ALWAYS_AUTHENTICATE, &v, sizeof v};
    assert_int_equal(p11_object_get(priv, &aa), CKR_OK);
    assert_int_equal(v, CK_FALSE);
    CK_ATTRIBUTE sg = {CKA_SIGN, &v, sizeof v};
    assert_int_equal(p11_object_get(priv, &sg), CKR_OK);
    assert_int_equal(v, CK_TRUE);

    /* matching */
    CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
    CK_KEY_TYPE kt = CKK_RSA;
    CK_ATTRIBUTE tmpl[3] = {
        {CKA_CLASS, &cls, sizeof cls}, {CKA_KEY_TYPE, &kt, sizeof kt}, {CKA_ID, id1, 1}};
    assert_true(p11_object_match(priv, tmpl, 3));
    assert_false(p11_object_match(pub, tmpl, 3));
    assert_true(p11_object_match(pub, tmpl + 1, 2));
    assert_false(p11_object_match(cert, tmpl + 1, 2)); /* no CKA_KEY_TYPE */
    assert_true(p11_object_match(cert, NULL, 0));
    CK_ATTRIBUTE sens = {CKA_PRIVATE_EXPONENT, big, 4};
    assert_false(p11_object_match(priv, &sens, 1));
    free(t);
}

static void test_token_label_serial(void **state)
{
    (void)state;
    p11_identity_t id;
    memset(&id, 0, sizeof id);
    snprintf(id.surname, sizeof id.surname, "DUPONT");
    snprintf(id.given_name, sizeof id.given_name, "JEAN");
    unsigned char label[32], serial[16];
    p11_token_label(&id, "80250000019900000001", label);
    assert_memory_equal(label, "DUPONT JEAN                     ", 32);
    p11_token_serial("80250000019900000001", serial);
    assert_memory_equal(serial, "0000019900000001", 16);
    memset(&id, 0, sizeof id);
    p11_token_label(&id, "80250000019900000001", label);
    assert_memory_equal(label, "CPS 0000019900000001            ", 32);
    /* a long UTF-8 name is cut at a character boundary */
    snprintf(id.surname, sizeof id.surname, "ÉÉÉÉÉÉÉÉÉÉÉÉÉÉÉÉ"); /* 16 x 2 bytes */
    snprintf(id.given_name, sizeof id.given_name, "X");
    p11_token_label(&id, "", label);
    assert_memory_equal(label, "ÉÉÉÉÉÉÉÉÉÉÉÉÉÉÉÉ", 32);
    snprintf(id.surname, sizeof id.surname, "AÉÉÉÉÉÉÉÉÉÉÉÉÉÉÉÉ"); /* 33 bytes */
    p11_token_label(&id, "", label);
    assert_int_equal(label[31], ' ');
    assert_memory_equal(label, "AÉÉÉÉÉÉÉÉÉÉÉÉÉÉÉ", 31);
    char t[4];
    p11_copy_text(t, sizeof t, "aéb");
    assert_string_equal(t, "aé");
    p11_copy_text(t, sizeof t, "abé");
    assert_string_equal(t, "ab");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cert_fields_match_openssl),
        cmocka_unit_test(test_cert_fields_reject),
        cmocka_unit_test(test_digestinfo),
        cmocka_unit_test(test_status),
        cmocka_unit_test(test_error_and_event),
        cmocka_unit_test(test_identity_and_certs),
        cmocka_unit_test(test_ckr_mapping),
        cmocka_unit_test(test_token_objects),
        cmocka_unit_test(test_token_label_serial),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
