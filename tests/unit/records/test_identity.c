/* Unit tests of identity.c: the four test PKI profiles (tests/sim/pki), chain
 * status at other times, unknown issuers, the card-type heuristic. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "identity.h"
#include "records_test_util.h"

static X509_STORE *roots;

static int group_setup(void **state)
{
    (void)state;
    char err[256] = "";
    roots = identity_trust_load(CACHET_TEST_PKI_DIR "/roots.pem", err, sizeof err);
    if (!roots)
        fprintf(stderr, "trust: %s\n", err);
    return roots ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    X509_STORE_free(roots);
    return 0;
}

static void load_identity(const char *profile, time_t now, identity_t *id)
{
    card_cert_t *certs = calloc(3, sizeof *certs);
    assert_non_null(certs);
    assert_int_equal(rt_load_profile(profile, certs), 0);
    assert_true(identity_from_certs(certs, 3, roots, now, id));
    free(certs);
}

static void test_rpps(void **state)
{
    (void)state;
    identity_t id;
    load_identity("cps-rpps", 0, &id);
    assert_string_equal(id.surname, "DUPONT");
    assert_string_equal(id.given_name, "JEAN");
    assert_string_equal(id.idnat, "899700123456");
    assert_string_equal(id.idnat_type, "RPPS");
    assert_string_equal(id.profession, "Médecin");
    assert_string_equal(id.card_type, "CPS");
    assert_string_equal(id.structure_name, "");
    assert_string_equal(id.structure_id, "");
    assert_string_equal(id.country, "FR");
    assert_string_equal(id.email, "jean.dupont@medecin.mssante.fr");
    assert_int_equal(id.chain, IDENTITY_CHAIN_OK);
    assert_string_equal(identity_chain_name(id.chain), "ok");
    assert_int_equal(id.auth_cert, 0);
    assert_int_equal(id.sign_cert, 1);
    /* make-pki.sh: 1095 days, issued now. */
    assert_true(id.not_before <= time(NULL) + 60);
    assert_int_equal(id.not_after - id.not_before, 1095 * 86400);
}

static void test_adeli(void **state)
{
    (void)state;
    identity_t id;
    load_identity("cps-adeli", 0, &id);
    assert_string_equal(id.surname, "MARTIN");
    assert_string_equal(id.given_name, "CLAIRE");
    assert_string_equal(id.idnat, "0751234567");
    assert_string_equal(id.idnat_type, "ADELI");
    assert_string_equal(id.profession, "Masseur-Kinésithérapeute");
    assert_string_equal(id.card_type, "CPS");
    assert_string_equal(id.email, "claire.martin@masseur-kinesitherapeute.mssante.fr");
    /* Issued by the STANDARD gamme: all three roots are trusted. */
    assert_int_equal(id.chain, IDENTITY_CHAIN_OK);
}

static void test_staff(void **state)
{
    (void)state;
    identity_t id;
    load_identity("cpe-staff", 0, &id);
    assert_string_equal(id.surname, "BERNARD");
    assert_string_equal(id.given_name, "SOPHIE");
    assert_string_equal(id.idnat, "30B0057881/CPET0001");
    assert_string_equal(id.idnat_type, "");
    assert_string_equal(id.profession, "Secrétaire médicale");
    assert_string_equal(id.card_type, "CPE");
    assert_string_equal(id.structure_name, "CABINET MEDICAL DES TESTS");
    assert_string_equal(id.structure_id, "30B0057881");
    assert_string_equal(id.state, "Rhône (69)");
    assert_string_equal(id.email, "secretariat.cabinet-des-tests@mssante.fr");
    assert_int_equal(id.chain, IDENTITY_CHAIN_OK);
}

static void test_t1(void **state)
{
    (void)state;
    identity_t id;
    load_identity("cps-t1", 0, &id);
    assert_string_equal(id.surname, "PETIT");
    assert_string_equal(id.given_name, "LUC");
    assert_string_equal(id.idnat, "899700654321");
    assert_string_equal(id.idnat_type, "RPPS");
    assert_string_equal(id.profession, "Pharmacien");
    assert_string_equal(id.card_type, "CPS");
    assert_string_equal(id.email, "luc.petit@pharmacien.mssante.fr");
    assert_int_equal(id.chain, IDENTITY_CHAIN_OK);
}

static void test_expired(void **state)
{
    (void)state;
    identity_t id;
    load_identity("cps-rpps", 0, &id);
    time_t after = id.not_after + 86400;
    load_identity("cps-rpps", after, &id);
    assert_int_equal(id.chain, IDENTITY_CHAIN_EXPIRED);
    assert_string_equal(identity_chain_name(id.chain), "expired");
    assert_non_null(strstr(id.chain_detail, "expired"));
    /* Far future: the CAs have expired too; still "expired". */
    load_identity("cps-adeli", (time_t)4102444800, &id); /* 2100-01-01 */
    assert_int_equal(id.chain, IDENTITY_CHAIN_EXPIRED);
    /* The holder fields are reported all the same. */
    assert_string_equal(id.surname, "MARTIN");
}

static void test_not_yet_valid(void **state)
{
    (void)state;
    identity_t id;
    load_identity("cps-rpps", 0, &id);
    load_identity("cps-rpps", id.not_before - 86400, &id);
    assert_int_equal(id.chain, IDENTITY_CHAIN_NOT_YET_VALID);
    assert_non_null(strstr(id.chain_detail, "not yet valid"));
    load_identity("cpe-staff", (time_t)946684800, &id); /* 2000-01-01 */
    assert_int_equal(id.chain, IDENTITY_CHAIN_NOT_YET_VALID);
}

static void test_missing_intermediate(void **state)
{
    (void)state;
    card_cert_t *certs = calloc(3, sizeof *certs);
    assert_non_null(certs);
    assert_int_equal(rt_load_profile("cps-rpps", certs), 0);
    identity_t id;
    /* Without the card's CA certificate the path cannot be built from the roots. */
    assert_true(identity_from_certs(certs, 2, roots, 0, &id));
    assert_int_equal(id.chain, IDENTITY_CHAIN_UNKNOWN_ISSUER);
    assert_string_equal(identity_chain_name(id.chain), "unknown-issuer");

    /* ... but a bundle that also holds the intermediates can. */
    char *dir = rt_mkdtemp();
    assert_non_null(dir);
    char bundle[PATH_MAX];
    snprintf(bundle, sizeof bundle, "%s/bundle.pem", dir);
    size_t l1 = 0, l2 = 0;
    char *r = rt_read_file(CACHET_TEST_PKI_DIR "/roots.pem", &l1);
    char *i = rt_read_file(CACHET_TEST_PKI_DIR "/intermediates.pem", &l2);
    assert_non_null(r);
    assert_non_null(i);
    char *both = malloc(l1 + l2);
    memcpy(both, r, l1);
    memcpy(both + l1, i, l2);
    assert_int_equal(rt_write_file(bundle, both, l1 + l2), 0);
    char err[256];
    X509_STORE *store = identity_trust_load(bundle, err, sizeof err);
    assert_non_null(store);
    assert_true(identity_from_certs(certs, 2, store, 0, &id));
    assert_int_equal(id.chain, IDENTITY_CHAIN_OK);
    /* No trust store at all. */
    assert_true(identity_from_certs(certs, 3, NULL, 0, &id));
    assert_int_equal(id.chain, IDENTITY_CHAIN_UNKNOWN_ISSUER);
    X509_STORE_free(store);
    free(both);
    free(r);
    free(i);
    rt_rm_rf(dir);
    free(certs);
}

static void test_tampered_signature(void **state)
{
    (void)state;
    card_cert_t *certs = calloc(3, sizeof *certs);
    assert_non_null(certs);
    assert_int_equal(rt_load_profile("cps-rpps", certs), 0);
    /* The last byte of the DER is inside the issuer's signature value. */
    certs[1].der[certs[1].der_len - 1] ^= 0x01;
    identity_t id;
    assert_true(identity_from_certs(certs, 3, roots, 0, &id));
    assert_int_equal(id.chain, IDENTITY_CHAIN_INVALID);
    assert_non_null(strstr(id.chain_detail, "signature"));
    free(certs);
}

/* A self-signed certificate with the given subject (EC P-256: quick to make). */
typedef struct {
    int nid;
    const char *value;
    int set; /* X509_NAME_add_entry_by_NID: 0 new RDN, -1 joins the previous one */
} rdn_t;

static void make_self_signed(const rdn_t *rdns, size_t n, const char *email, card_cert_t *c,
                             int role)
{
    EVP_PKEY *key = EVP_EC_gen("P-256");
    assert_non_null(key);
    X509 *x = X509_new();
    assert_non_null(x);
    assert_int_equal(X509_set_version(x, X509_VERSION_3), 1);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 42);
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400L * 365);
    X509_NAME *name = X509_get_subject_name(x);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(X509_NAME_add_entry_by_NID(name, rdns[i].nid, MBSTRING_UTF8,
                                                    (const unsigned char *)rdns[i].value, -1, -1,
                                                    rdns[i].set),
                         1);
    assert_int_equal(X509_set_issuer_name(x, name), 1);
    if (email) {
        char san[300];
        snprintf(san, sizeof san, "email:%s", email);
        X509_EXTENSION *ext = X509V3_EXT_nconf_nid(NULL, NULL, NID_subject_alt_name, san);
        assert_non_null(ext);
        X509_add_ext(x, ext, -1);
        X509_EXTENSION_free(ext);
    }
    assert_int_equal(X509_set_pubkey(x, key), 1);
    assert_true(X509_sign(x, key, EVP_sha256()) > 0);
    memset(c, 0, sizeof *c);
    unsigned char *p = c->der;
    int len = i2d_X509(x, NULL);
    assert_true(len > 0 && (size_t)len <= sizeof c->der);
    assert_int_equal(i2d_X509(x, &p), len);
    c->der_len = (size_t)len;
    c->role = role;
    X509_free(x);
    EVP_PKEY_free(key);
}

static void test_unknown_issuer_student(void **state)
{
    (void)state;
    const rdn_t rdns[] = {
        {NID_countryName, "FR", 0},  {NID_title, "Étudiant en médecine", 0},
        {NID_surname, "LEROY", 0},   {NID_commonName, "899700999999", -1},
        {NID_givenName, "EMMA", -1},
    };
    card_cert_t *c = calloc(1, sizeof *c);
    assert_non_null(c);
    make_self_signed(rdns, sizeof rdns / sizeof rdns[0], "emma@etu.example", c, CARD_KEY_SIGN);
    identity_t id;
    assert_true(identity_from_certs(c, 1, roots, 0, &id));
    assert_int_equal(id.chain, IDENTITY_CHAIN_UNKNOWN_ISSUER);
    assert_non_null(strstr(id.chain_detail, "self-signed"));
    assert_string_equal(id.card_type, "CPF");
    assert_string_equal(id.surname, "LEROY");
    assert_string_equal(id.given_name, "EMMA");
    assert_string_equal(id.idnat_type, "RPPS");
    assert_string_equal(id.email, "emma@etu.example");
    /* Only a signature certificate: it is the holder certificate. */
    assert_int_equal(id.auth_cert, -1);
    assert_int_equal(id.sign_cert, 0);
    free(c);
}

static void test_cpa_and_truncation(void **state)
{
    (void)state;
    char long_name[400];
    memset(long_name, 'A', sizeof long_name - 3);
    /* A 2-byte character straddling the 127-byte limit must not be split. */
    memcpy(long_name + 126, "\xc3\xa9", 2);
    long_name[sizeof long_name - 1] = '\0';
    const rdn_t rdns[] = {
        {NID_countryName, "FR", 0},
        {NID_organizationName, "CLINIQUE DU TEST", 0},
        {NID_organizationalUnitName, "10B0000001", 0},
        {NID_surname, long_name, 0},
        {NID_commonName, "10B0000001/CPA00042", -1},
        {NID_givenName,
         "LINE\x01"
         "BREAK",
         -1},
    };
    card_cert_t *c = calloc(1, sizeof *c);
    assert_non_null(c);
    make_self_signed(rdns, sizeof rdns / sizeof rdns[0], NULL, c, CARD_KEY_AUTH);
    identity_t id;
    assert_true(identity_from_certs(c, 1, roots, 0, &id));
    assert_string_equal(id.card_type, "CPA");
    assert_string_equal(id.structure_id, "10B0000001");
    assert_string_equal(id.structure_name, "CLINIQUE DU TEST");
    assert_string_equal(id.idnat_type, "");
    assert_string_equal(id.email, "");
    assert_int_equal(strlen(id.surname), 126); /* stopped before the split character */
    assert_string_equal(id.given_name, "LINE?BREAK");
    free(c);
}

static void test_bad_input(void **state)
{
    (void)state;
    card_cert_t *certs = calloc(3, sizeof *certs);
    assert_non_null(certs);
    identity_t id;
    assert_false(identity_from_certs(NULL, 0, roots, 0, &id));
    assert_false(identity_from_certs(certs, 0, roots, 0, &id));
    /* Only a CA certificate: no holder. */
    assert_int_equal(rt_load_cert("cps-rpps", "ca.crt.der", 0, "CA", &certs[0]), 0);
    assert_false(identity_from_certs(certs, 1, roots, 0, &id));
    assert_int_equal(id.auth_cert, -1);
    /* Garbage, a trailing byte, an impossible length. */
    assert_int_equal(rt_load_cert("cps-rpps", "auth.crt.der", CARD_KEY_AUTH, "A", &certs[0]), 0);
    certs[0].der[certs[0].der_len++] = 0;
    assert_false(identity_from_certs(certs, 1, roots, 0, &id));
    certs[0].der_len = sizeof certs[0].der + 1;
    assert_false(identity_from_certs(certs, 1, roots, 0, &id));
    memset(certs[0].der, 0x30, 64);
    certs[0].der_len = 64;
    assert_false(identity_from_certs(certs, 1, roots, 0, &id));
    free(certs);
}

static void test_trust_load_errors(void **state)
{
    (void)state;
    char err[256] = "";
    assert_null(identity_trust_load("/nonexistent/roots.pem", err, sizeof err));
    assert_non_null(strstr(err, "no such file"));
    char *dir = rt_mkdtemp();
    assert_non_null(dir);
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/empty.pem", dir);
    assert_int_equal(rt_write_file(path, "", 0), 0);
    err[0] = '\0';
    assert_null(identity_trust_load(path, err, sizeof err));
    assert_non_null(strstr(err, "no certificate"));
    static const char bad[] = "-----BEGIN CERTIFICATE-----\nnot base64 at all!\n"
                              "-----END CERTIFICATE-----\n";
    assert_int_equal(rt_write_file(path, bad, sizeof bad - 1), 0);
    assert_null(identity_trust_load(path, err, sizeof err));
    assert_null(identity_trust_load(dir, err, sizeof err)); /* a directory */
    assert_null(identity_trust_load(NULL, err, sizeof err));
    rt_rm_rf(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rpps),
        cmocka_unit_test(test_adeli),
        cmocka_unit_test(test_staff),
        cmocka_unit_test(test_t1),
        cmocka_unit_test(test_expired),
        cmocka_unit_test(test_not_yet_valid),
        cmocka_unit_test(test_missing_intermediate),
        cmocka_unit_test(test_tampered_signature),
        cmocka_unit_test(test_unknown_issuer_student),
        cmocka_unit_test(test_cpa_and_truncation),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_trust_load_errors),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
