/* Unit tests of cachetd's PKCS#11 card backend (host/daemon/card/card_pkcs11.c):
 * against SoftHSM2 tokens made from the test PKI by
 * tests/sim/softhsm/make-token.sh in a mkdtemp() directory (no pcscd), and
 * against fake_p11.so, a tiny module that fails on demand and whose token can
 * be removed and inserted (SoftHSM2 cannot remove a token it has loaded). */
#include <dlfcn.h>
#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/sha.h>
#include <openssl/x509.h>

#include <p11-kit/pkcs11.h>

#include "card.h"
#include "card_pkcs11.h"
#include "fake_p11.h"

#ifndef CACHET_TEST_PKI_DIR
#error "CACHET_TEST_PKI_DIR must be defined"
#endif
#ifndef CACHET_MAKE_TOKEN
#error "CACHET_MAKE_TOKEN must be defined"
#endif
#ifndef CACHET_FAKE_P11
#error "CACHET_FAKE_P11 must be defined"
#endif
#ifndef CACHET_SOFTHSM2_MODULE
#define CACHET_SOFTHSM2_MODULE ""
#endif

#define PROFILE CACHET_TEST_PKI_DIR "/profiles/cps-rpps"

/* ---- helpers ---- */

static long ms_since(const struct timespec *t0)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (long)(now.tv_sec - t0->tv_sec) * 1000L + (now.tv_nsec - t0->tv_nsec) / 1000000L;
}

static void now(struct timespec *t)
{
    clock_gettime(CLOCK_MONOTONIC, t);
}

static uint8_t *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    uint8_t *buf = malloc(65536);
    size_t n = buf != NULL ? fread(buf, 1, 65536, f) : 0;
    fclose(f);
    *len = n;
    return buf;
}

/* "key = value" from a profile.conf / token.info file. */
static bool conf_get(const char *path, const char *key, char *out, size_t cap)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return false;
    char line[512];
    bool found = false;
    size_t klen = strlen(key);
    while (!found && fgets(line, sizeof line, f) != NULL) {
        if (strncmp(line, key, klen) != 0)
            continue;
        const char *p = line + klen;
        while (*p == ' ')
            p++;
        if (*p != '=')
            continue;
        p++;
        while (*p == ' ')
            p++;
        snprintf(out, cap, "%s", p);
        out[strcspn(out, "\r\n")] = '\0';
        found = true;
    }
    fclose(f);
    return found;
}

static X509 *load_cert(const char *name)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", PROFILE, name);
    size_t len;
    uint8_t *der = read_file(path, &len);
    if (der == NULL)
        return NULL;
    const unsigned char *p = der;
    X509 *x = d2i_X509(NULL, &p, (long)len);
    free(der);
    return x;
}

static bool verify_digest_sig(const char *cert, const EVP_MD *md, const uint8_t *msg,
                              size_t msg_len, const uint8_t *sig, size_t sig_len)
{
    X509 *x = load_cert(cert);
    if (x == NULL)
        return false;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    bool ok = ctx != NULL && EVP_DigestVerifyInit(ctx, NULL, md, NULL, X509_get0_pubkey(x)) == 1 &&
              EVP_DigestVerify(ctx, sig, sig_len, msg, msg_len) == 1;
    EVP_MD_CTX_free(ctx);
    X509_free(x);
    return ok;
}

/* PKCS#1 v1.5 type 1 "verify recover": what the key signed, unpadded. */
static bool recover_matches(const char *cert, const uint8_t *sig, size_t sig_len,
                            const uint8_t *data, size_t data_len)
{
    X509 *x = load_cert(cert);
    if (x == NULL)
        return false;
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(X509_get0_pubkey(x), NULL);
    uint8_t out[512];
    size_t out_len = sizeof out;
    bool ok = ctx != NULL && EVP_PKEY_verify_recover_init(ctx) == 1 &&
              EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING) == 1 &&
              EVP_PKEY_verify_recover(ctx, out, &out_len, sig, sig_len) == 1 &&
              out_len == data_len && memcmp(out, data, data_len) == 0;
    EVP_PKEY_CTX_free(ctx);
    X509_free(x);
    return ok;
}

static void rm_rf(const char *dir)
{
    if (dir[0] == '\0')
        return;
    char cmd[PATH_MAX + 32];
    snprintf(cmd, sizeof cmd, "rm -rf -- '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
}

/* ---- SoftHSM2 token fixture ---- */

typedef struct {
    char dir[PATH_MAX];
    char conf[PATH_MAX];
    char serial[64];
    char label[64];
    char pin[32];
    const char *skip; /* why the SoftHSM2 tests cannot run, or NULL */
} token_fixture_t;

static token_fixture_t tok;

static int softhsm_setup(void **state)
{
    (void)state;
    memset(&tok, 0, sizeof tok);
    if (CACHET_SOFTHSM2_MODULE[0] == '\0' || access(CACHET_SOFTHSM2_MODULE, R_OK) != 0) {
        tok.skip = "libsofthsm2.so not found (Debian package softhsm2)";
        return 0;
    }
    if (system("command -v softhsm2-util >/dev/null && command -v pkcs11-tool >/dev/null") != 0) {
        tok.skip = "softhsm2-util or pkcs11-tool missing (Debian packages softhsm2, opensc)";
        return 0;
    }
    const char *tmp = getenv("TMPDIR");
    snprintf(tok.dir, sizeof tok.dir, "%s/cachet-p11-XXXXXX", tmp != NULL && *tmp ? tmp : "/tmp");
    if (mkdtemp(tok.dir) == NULL) {
        tok.dir[0] = '\0';
        return -1;
    }
    char cmd[3 * PATH_MAX];
    snprintf(cmd, sizeof cmd, "'%s' '%s/token' '%s' 2>&1", CACHET_MAKE_TOKEN, tok.dir, PROFILE);
    FILE *p = popen(cmd, "r");
    if (p == NULL)
        return -1;
    char line[PATH_MAX];
    while (fgets(line, sizeof line, p) != NULL) {
        size_t len = strcspn(line, "\n");
        line[len] = '\0';
        if (len < sizeof tok.conf) /* the last line: the conf path */
            memcpy(tok.conf, line, len + 1);
    }
    if (pclose(p) != 0) {
        fprintf(stderr, "make-token.sh failed: %s\n", tok.conf);
        return -1;
    }
    char info[PATH_MAX + 32];
    snprintf(info, sizeof info, "%s/token/token.info", tok.dir);
    if (!conf_get(info, "serial", tok.serial, sizeof tok.serial) ||
        !conf_get(info, "label", tok.label, sizeof tok.label) ||
        !conf_get(info, "pin", tok.pin, sizeof tok.pin))
        return -1;
    setenv("SOFTHSM2_CONF", tok.conf, 1);
    return 0;
}

static int softhsm_teardown(void **state)
{
    (void)state;
    rm_rf(tok.dir);
    return 0;
}

static card_backend_t *open_softhsm(void)
{
    char err[256];
    card_backend_t *b = card_pkcs11_open(CACHET_SOFTHSM2_MODULE, err, sizeof err);
    if (b == NULL)
        fprintf(stderr, "card_pkcs11_open: %s\n", err);
    return b;
}

#define NEED_SOFTHSM()                                                                             \
    do {                                                                                           \
        if (tok.skip != NULL) {                                                                    \
            print_message("SKIPPED: %s\n", tok.skip);                                              \
            skip();                                                                                \
        }                                                                                          \
    } while (0)

/* ---- module loading ---- */

static void test_open_bad_module(void **state)
{
    (void)state;
    char err[256];
    err[0] = 'x';
    assert_null(card_pkcs11_open("/nonexistent/cachet/no-such-module.so", err, sizeof err));
    assert_non_null(strstr(err, "cannot load"));
    assert_null(card_pkcs11_open("libc.so.6", err, sizeof err)); /* loads, but no PKCS#11 */
    assert_non_null(strstr(err, "C_GetFunctionList"));
    assert_null(card_pkcs11_open(NULL, err, sizeof err));
    assert_true(err[0] != '\0');
    assert_null(card_pkcs11_open("", err, sizeof err));
    assert_null(card_pkcs11_open("", NULL, 0)); /* no error buffer: still no crash */
    char longmatch[CARD_LABEL_MAX + 8];
    memset(longmatch, 'A', sizeof longmatch - 1);
    longmatch[sizeof longmatch - 1] = '\0';
    assert_null(card_pkcs11_open_match(CACHET_FAKE_P11, longmatch, err, sizeof err));
}

static void test_status_names(void **state)
{
    (void)state;
    assert_string_equal(card_status_name(CARD_OK), "ok");
    assert_string_equal(card_status_name(CARD_ERR_NO_READER), "no-reader");
    assert_string_equal(card_status_name(CARD_ERR_NO_CARD), "no-card");
    assert_string_equal(card_status_name(CARD_ERR_REMOVED), "card-removed");
    assert_string_equal(card_status_name(CARD_ERR_PIN_REQUIRED), "pin-required");
    assert_string_equal(card_status_name(CARD_ERR_PIN_INCORRECT), "pin-incorrect");
    assert_string_equal(card_status_name(CARD_ERR_PIN_BLOCKED), "pin-blocked");
    assert_string_equal(card_status_name(CARD_ERR_PIN_FORMAT), "pin-format");
    assert_string_equal(card_status_name(CARD_ERR_CANCELLED), "cancelled");
    assert_string_equal(card_status_name(CARD_ERR_TIMEOUT), "timeout");
    assert_string_equal(card_status_name(CARD_ERR_NOT_SUPPORTED), "not-supported");
    assert_string_equal(card_status_name(CARD_ERR_BAD_INPUT), "bad-input");
    assert_string_equal(card_status_name(CARD_ERR_BACKEND), "backend");
    assert_string_equal(card_status_name((card_status_t)999), "backend");
}

/* ---- SoftHSM2 ---- */

static void test_softhsm_bind(void **state)
{
    (void)state;
    NEED_SOFTHSM();
    card_backend_t *b = open_softhsm();
    assert_non_null(b);
    assert_string_equal(b->ops->name, "pkcs11");
    assert_true(card_is_pkcs11(b));

    card_info_t info;
    assert_int_equal(b->ops->get_info(b, &info), CARD_OK);
    assert_true(info.present);
    assert_string_equal(info.serial, tok.serial);
    assert_string_equal(info.label, "CPS3 TEST");
    assert_false(info.pinpad);
    assert_true(info.reader[0] != '\0');

    memset(&info, 0x55, sizeof info);
    assert_int_equal(b->ops->bind(b, &info), CARD_OK);
    assert_true(info.present);
    assert_string_equal(info.serial, tok.serial);
    assert_string_equal(info.label, tok.label);
    assert_int_equal(strlen(info.serial), 16); /* blank padding trimmed */

    /* get_info once bound: the same, from what bind read */
    card_info_t again;
    assert_int_equal(b->ops->get_info(b, &again), CARD_OK);
    assert_memory_equal(&again, &info, sizeof info);
    b->ops->close(b);
}

static const card_cert_t *cert_by_id(const card_cert_t *c, size_t n, uint8_t id)
{
    for (size_t i = 0; i < n; i++)
        if (c[i].id_len == 1 && c[i].id[0] == id)
            return &c[i];
    return NULL;
}

static void check_certs(const card_cert_t *certs, size_t n)
{
    assert_int_equal(n, 3);
    static const struct {
        uint8_t id;
        const char *file;
        int role;
        const char *label;
    } want[] = {
        {0x02, "auth.crt.der", CARD_KEY_AUTH, "Certificat d'authentification CPS"},
        {0x01, "sign.crt.der", CARD_KEY_SIGN, "Certificat de signature CPS"},
        {0x03, "ca.crt.der", 0, "Certificat AC CPS"},
    };
    for (size_t i = 0; i < 3; i++) {
        const card_cert_t *c = cert_by_id(certs, n, want[i].id);
        assert_non_null(c);
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s/%s", PROFILE, want[i].file);
        size_t len;
        uint8_t *der = read_file(path, &len);
        assert_non_null(der);
        assert_int_equal(c->der_len, len);
        assert_memory_equal(c->der, der, len);
        free(der);
        assert_int_equal(c->role, want[i].role);
        assert_string_equal(c->label, want[i].label);
    }
}

static void test_softhsm_read_certs(void **state)
{
    (void)state;
    NEED_SOFTHSM();
    card_backend_t *b = open_softhsm();
    assert_non_null(b);
    assert_int_equal(b->ops->bind(b, NULL), CARD_OK);

    card_cert_t *certs = calloc(CARD_CERTS_MAX, sizeof *certs);
    assert_non_null(certs);
    size_t n = 99;
    /* Before login the private keys are hidden: roles come from the public keys. */
    assert_int_equal(b->ops->read_certs(b, certs, CARD_CERTS_MAX, &n), CARD_OK);
    check_certs(certs, n);

    /* After login: from the private keys (CKA_SIGN). */
    int tries;
    assert_int_equal(b->ops->verify_pin(b, tok.pin, &tries), CARD_OK);
    memset(certs, 0, CARD_CERTS_MAX * sizeof *certs);
    assert_int_equal(b->ops->read_certs(b, certs, CARD_CERTS_MAX, &n), CARD_OK);
    check_certs(certs, n);

    /* A smaller array: only what fits. */
    assert_int_equal(b->ops->read_certs(b, certs, 1, &n), CARD_OK);
    assert_int_equal(n, 1);
    assert_int_equal(b->ops->read_certs(b, certs, 0, &n), CARD_OK);
    assert_int_equal(n, 0);
    assert_int_equal(b->ops->read_certs(b, NULL, 1, &n), CARD_ERR_BAD_INPUT);
    assert_int_equal(b->ops->read_certs(b, certs, 1, NULL), CARD_ERR_BAD_INPUT);
    free(certs);
    b->ops->close(b);
}

static void test_softhsm_pin(void **state)
{
    (void)state;
    NEED_SOFTHSM();
    card_backend_t *b = open_softhsm();
    assert_non_null(b);
    int tries = 99;
    bool verified = true;
    /* No bind first: operations bind the token themselves. */
    assert_int_equal(b->ops->pin_status(b, &tries, &verified), CARD_OK);
    assert_int_equal(tries, 3);
    assert_false(verified);

    /* Wrong PIN: one try spent, tries left read back from the token. */
    assert_int_equal(b->ops->verify_pin(b, "9999", &tries), CARD_ERR_PIN_INCORRECT);
    assert_int_equal(tries, 2);
    assert_int_equal(b->ops->pin_status(b, &tries, &verified), CARD_OK);
    assert_int_equal(tries, 2);
    assert_false(verified);

    /* Refused before the token (no try spent). */
    char longpin[80];
    memset(longpin, '1', sizeof longpin - 1);
    longpin[sizeof longpin - 1] = '\0';
    assert_int_equal(b->ops->verify_pin(b, "", &tries), CARD_ERR_PIN_FORMAT);
    assert_int_equal(b->ops->verify_pin(b, longpin, &tries), CARD_ERR_PIN_FORMAT);
    assert_int_equal(b->ops->verify_pin(b, "12", &tries), CARD_ERR_PIN_FORMAT); /* under min 4 */
    /* No PIN pad on SoftHSM2: a NULL PIN is not supported. */
    assert_int_equal(b->ops->verify_pin(b, NULL, &tries), CARD_ERR_NOT_SUPPORTED);

    assert_int_equal(b->ops->verify_pin(b, tok.pin, &tries), CARD_OK);
    assert_int_equal(tries, 3);
    assert_int_equal(b->ops->pin_status(b, &tries, &verified), CARD_OK);
    assert_int_equal(tries, 3);
    assert_true(verified);
    /* Already logged in: OK, nothing spent. */
    assert_int_equal(b->ops->verify_pin(b, tok.pin, NULL), CARD_OK);

    b->ops->logout(b);
    assert_int_equal(b->ops->pin_status(b, NULL, &verified), CARD_OK);
    assert_false(verified);
    b->ops->close(b);
}

static void test_softhsm_sign(void **state)
{
    (void)state;
    NEED_SOFTHSM();
    card_backend_t *b = open_softhsm();
    assert_non_null(b);
    static const uint8_t msg[] = "Ordonnance du 12 mars: amoxicilline 1 g, 3 fois par jour.";
    uint8_t h256[32], h1[20];
    SHA256(msg, sizeof msg, h256);
    SHA1(msg, sizeof msg, h1);
    uint8_t sig[CARD_SIG_MAX];
    size_t sig_len = 99;

    /* Before the PIN: the keys are not usable. */
    assert_int_equal(b->ops->sign(b, CARD_KEY_SIGN, CARD_MECH_SHA256, h256, sizeof h256, sig,
                                  sizeof sig, &sig_len),
                     CARD_ERR_PIN_REQUIRED);
    assert_int_equal(sig_len, 0);
    assert_int_equal(b->ops->verify_pin(b, tok.pin, NULL), CARD_OK);

    /* AUTH, CKM_RSA_PKCS over a DigestInfo the caller built. */
    static const uint8_t di256[] = {0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01,
                                    0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20};
    uint8_t di[sizeof di256 + 32];
    memcpy(di, di256, sizeof di256);
    memcpy(di + sizeof di256, h256, 32);
    assert_int_equal(b->ops->sign(b, CARD_KEY_AUTH, CARD_MECH_RSA_PKCS, di, sizeof di, sig,
                                  sizeof sig, &sig_len),
                     CARD_OK);
    assert_int_equal(sig_len, 256);
    assert_true(verify_digest_sig("auth.crt.der", EVP_sha256(), msg, sizeof msg, sig, sig_len));
    assert_false(verify_digest_sig("sign.crt.der", EVP_sha256(), msg, sizeof msg, sig, sig_len));

    /* AUTH, raw data (a TLS 1.0/1.1 style MD5+SHA-1 block): signed as is. */
    uint8_t raw[36];
    for (size_t i = 0; i < sizeof raw; i++)
        raw[i] = (uint8_t)(i * 7 + 1);
    assert_int_equal(b->ops->sign(b, CARD_KEY_AUTH, CARD_MECH_RSA_PKCS, raw, sizeof raw, sig,
                                  sizeof sig, &sig_len),
                     CARD_OK);
    assert_true(recover_matches("auth.crt.der", sig, sig_len, raw, sizeof raw));

    /* SIGN, bare SHA-256: the backend builds the DigestInfo. */
    assert_int_equal(b->ops->sign(b, CARD_KEY_SIGN, CARD_MECH_SHA256, h256, sizeof h256, sig,
                                  sizeof sig, &sig_len),
                     CARD_OK);
    assert_int_equal(sig_len, 256);
    assert_true(verify_digest_sig("sign.crt.der", EVP_sha256(), msg, sizeof msg, sig, sig_len));
    assert_false(verify_digest_sig("auth.crt.der", EVP_sha256(), msg, sizeof msg, sig, sig_len));

    /* SIGN, bare SHA-1. */
    assert_int_equal(
        b->ops->sign(b, CARD_KEY_SIGN, CARD_MECH_SHA1, h1, sizeof h1, sig, sizeof sig, &sig_len),
        CARD_OK);
    assert_true(verify_digest_sig("sign.crt.der", EVP_sha1(), msg, sizeof msg, sig, sig_len));

    /* AUTH, bare SHA-256 (what `login` uses). */
    assert_int_equal(b->ops->sign(b, CARD_KEY_AUTH, CARD_MECH_SHA256, h256, sizeof h256, sig,
                                  sizeof sig, &sig_len),
                     CARD_OK);
    assert_true(verify_digest_sig("auth.crt.der", EVP_sha256(), msg, sizeof msg, sig, sig_len));

    /* After logout the PIN is needed again. */
    b->ops->logout(b);
    assert_int_equal(b->ops->sign(b, CARD_KEY_AUTH, CARD_MECH_SHA256, h256, sizeof h256, sig,
                                  sizeof sig, &sig_len),
                     CARD_ERR_PIN_REQUIRED);
    assert_true(strlen(b->ops->last_error(b)) > 0);
    /* And works again after it. */
    assert_int_equal(b->ops->verify_pin(b, tok.pin, NULL), CARD_OK);
    assert_int_equal(b->ops->sign(b, CARD_KEY_SIGN, CARD_MECH_SHA256, h256, sizeof h256, sig,
                                  sizeof sig, &sig_len),
                     CARD_OK);
    assert_true(verify_digest_sig("sign.crt.der", EVP_sha256(), msg, sizeof msg, sig, sig_len));
    b->ops->close(b);
}

static void test_softhsm_bad_input(void **state)
{
    (void)state;
    NEED_SOFTHSM();
    card_backend_t *b = open_softhsm();
    assert_non_null(b);
    assert_int_equal(b->ops->verify_pin(b, tok.pin, NULL), CARD_OK);
    uint8_t in[600] = {0};
    uint8_t sig[CARD_SIG_MAX];
    size_t sig_len;
    const card_ops_t *o = b->ops;
    assert_int_equal(
        o->sign(b, CARD_KEY_SIGN, CARD_MECH_SHA256, NULL, 32, sig, sizeof sig, &sig_len),
        CARD_ERR_BAD_INPUT);
    assert_int_equal(o->sign(b, CARD_KEY_SIGN, CARD_MECH_SHA256, in, 31, sig, sizeof sig, &sig_len),
                     CARD_ERR_BAD_INPUT);
    assert_int_equal(o->sign(b, CARD_KEY_SIGN, CARD_MECH_SHA256, in, 33, sig, sizeof sig, &sig_len),
                     CARD_ERR_BAD_INPUT);
    assert_int_equal(o->sign(b, CARD_KEY_SIGN, CARD_MECH_SHA1, in, 32, sig, sizeof sig, &sig_len),
                     CARD_ERR_BAD_INPUT);
    assert_int_equal(
        o->sign(b, CARD_KEY_AUTH, CARD_MECH_RSA_PKCS, in, 0, sig, sizeof sig, &sig_len),
        CARD_ERR_BAD_INPUT);
    /* Longer than an RSA-2048 key can take (k - 11 = 245), and than any key we allow. */
    assert_int_equal(
        o->sign(b, CARD_KEY_AUTH, CARD_MECH_RSA_PKCS, in, 246, sig, sizeof sig, &sig_len),
        CARD_ERR_BAD_INPUT);
    assert_int_equal(
        o->sign(b, CARD_KEY_AUTH, CARD_MECH_RSA_PKCS, in, sizeof in, sig, sizeof sig, &sig_len),
        CARD_ERR_BAD_INPUT);
    assert_int_equal(o->sign(b, CARD_KEY_AUTH, (card_mech_t)42, in, 32, sig, sizeof sig, &sig_len),
                     CARD_ERR_BAD_INPUT);
    assert_int_equal(
        o->sign(b, (card_key_role_t)7, CARD_MECH_SHA256, in, 32, sig, sizeof sig, &sig_len),
        CARD_ERR_BAD_INPUT);
    assert_int_equal(
        o->sign(b, CARD_KEY_SIGN, CARD_MECH_SHA256, in, 32, NULL, sizeof sig, &sig_len),
        CARD_ERR_BAD_INPUT);
    assert_int_equal(o->sign(b, CARD_KEY_SIGN, CARD_MECH_SHA256, in, 32, sig, sizeof sig, NULL),
                     CARD_ERR_BAD_INPUT);
    /* The signature would not fit the caller's buffer. */
    assert_int_equal(o->sign(b, CARD_KEY_SIGN, CARD_MECH_SHA256, in, 32, sig, 100, &sig_len),
                     CARD_ERR_BAD_INPUT);
    assert_int_equal(sig_len, 0);
    /* Still usable afterwards. */
    assert_int_equal(o->sign(b, CARD_KEY_SIGN, CARD_MECH_SHA256, in, 32, sig, sizeof sig, &sig_len),
                     CARD_OK);
    assert_int_equal(o->get_info(b, NULL), CARD_ERR_BAD_INPUT);
    assert_int_equal(o->wait_event(b, 0, NULL), CARD_ERR_BAD_INPUT);
    b->ops->close(b);
}

static void test_softhsm_label_match(void **state)
{
    (void)state;
    NEED_SOFTHSM();
    char err[256];
    card_backend_t *b = card_pkcs11_open_match(CACHET_SOFTHSM2_MODULE, "CPS3", err, sizeof err);
    assert_non_null(b);
    card_info_t info;
    assert_int_equal(b->ops->bind(b, &info), CARD_OK);
    assert_string_equal(info.serial, tok.serial);
    b->ops->close(b);

    b = card_pkcs11_open_match(CACHET_SOFTHSM2_MODULE, "CPS4 ANS", err, sizeof err);
    assert_non_null(b);
    assert_int_equal(b->ops->bind(b, &info), CARD_ERR_NO_CARD);
    assert_int_equal(b->ops->get_info(b, &info), CARD_OK);
    assert_false(info.present);
    assert_true(info.reader[0] != '\0'); /* the slot is there, the token is not ours */
    int tries;
    assert_int_equal(b->ops->pin_status(b, &tries, NULL), CARD_ERR_NO_CARD);
    card_event_t ev = CARD_EVENT_INSERTED;
    assert_int_equal(b->ops->wait_event(b, 60, &ev), CARD_OK);
    assert_int_equal(ev, CARD_EVENT_NONE);
    b->ops->close(b);
}

static void test_softhsm_wait_event(void **state)
{
    (void)state;
    NEED_SOFTHSM();
    card_backend_t *b = open_softhsm();
    assert_non_null(b);
    /* SoftHSM2 has no C_WaitForSlotEvent: slot lists are compared. The token
     * present at open is reported once, as an insertion. */
    struct timespec t0;
    now(&t0);
    card_event_t ev = CARD_EVENT_NONE;
    assert_int_equal(b->ops->wait_event(b, 2000, &ev), CARD_OK);
    assert_int_equal(ev, CARD_EVENT_INSERTED);
    assert_true(ms_since(&t0) < 200);
    now(&t0);
    assert_int_equal(b->ops->wait_event(b, 150, &ev), CARD_OK);
    assert_int_equal(ev, CARD_EVENT_NONE);
    long ms = ms_since(&t0);
    assert_true(ms >= 140 && ms < 1000);
    assert_int_equal(b->ops->wait_event(b, 0, &ev), CARD_OK);
    assert_int_equal(ev, CARD_EVENT_NONE);
    b->ops->close(b);
}

static void test_softhsm_two_backends(void **state)
{
    (void)state;
    NEED_SOFTHSM();
    /* One C_Initialize for both; closing the first must not finalise the module. */
    card_backend_t *a = open_softhsm();
    card_backend_t *b = open_softhsm();
    assert_non_null(a);
    assert_non_null(b);
    assert_int_equal(a->ops->bind(a, NULL), CARD_OK);
    a->ops->close(a);
    card_info_t info;
    assert_int_equal(b->ops->bind(b, &info), CARD_OK);
    assert_string_equal(info.serial, tok.serial);
    int tries;
    assert_int_equal(b->ops->pin_status(b, &tries, NULL), CARD_OK);
    b->ops->close(b);
    /* And a new open after the last close initialises it again. */
    b = open_softhsm();
    assert_non_null(b);
    assert_int_equal(b->ops->bind(b, NULL), CARD_OK);
    b->ops->close(b);
}

static void test_softhsm_removal(void **state)
{
    (void)state;
    NEED_SOFTHSM();
    /* SoftHSM2 reads its token directory once, at C_Initialize: a token cannot
     * leave a loaded module. Removal is tested with fake_p11 (test_fake_removal*). */
    print_message("SKIPPED: SoftHSM2 cannot remove a token while loaded; "
                  "see test_fake_removal_* (fake PKCS#11 module)\n");
    skip();
}

/* ---- fake module ---- */

static fake_p11_control_fn fake_ctl;
static fake_p11_get_fn fake_get;
static void *fake_dl;

static int fake_setup(void **state)
{
    (void)state;
    /* The same file the backend dlopen()s: the same module instance. */
    fake_dl = dlopen(CACHET_FAKE_P11, RTLD_NOW | RTLD_LOCAL);
    if (fake_dl == NULL) {
        fprintf(stderr, "dlopen %s: %s\n", CACHET_FAKE_P11, dlerror());
        return -1;
    }
    void *c = dlsym(fake_dl, "fake_p11_control");
    void *g = dlsym(fake_dl, "fake_p11_get");
    if (c == NULL || g == NULL)
        return -1;
    memcpy(&fake_ctl, &c, sizeof c);
    memcpy(&fake_get, &g, sizeof g);
    return 0;
}

static int fake_teardown(void **state)
{
    (void)state;
    if (fake_dl != NULL)
        dlclose(fake_dl);
    return 0;
}

static int fake_reset(void **state)
{
    (void)state;
    fake_ctl(FAKE_RESET, 0);
    return 0;
}

static card_backend_t *open_fake(void)
{
    char err[256];
    card_backend_t *b = card_pkcs11_open(CACHET_FAKE_P11, err, sizeof err);
    if (b == NULL)
        fprintf(stderr, "card_pkcs11_open(fake): %s\n", err);
    return b;
}

static void test_fake_fail_all(void **state)
{
    (void)state;
    fake_ctl(FAKE_MODE, FAKE_MODE_FAIL_ALL);
    char err[256];
    assert_null(card_pkcs11_open(CACHET_FAKE_P11, err, sizeof err));
    assert_non_null(strstr(err, "C_Initialize: CKR_GENERAL_ERROR"));
}

static void test_fake_fail_after_init(void **state)
{
    (void)state;
    unsigned long fin = fake_get(FAKE_N_FINAL);
    fake_ctl(FAKE_MODE, FAKE_MODE_FAIL_AFTER_INIT);
    card_backend_t *b = open_fake();
    assert_non_null(b);
    const card_ops_t *o = b->ops;
    card_info_t info;
    assert_int_equal(o->get_info(b, &info), CARD_ERR_BACKEND);
    assert_non_null(strstr(o->last_error(b), "CKR_GENERAL_ERROR"));
    assert_int_equal(o->bind(b, &info), CARD_ERR_BACKEND);
    card_cert_t *certs = calloc(2, sizeof *certs);
    size_t n = 5;
    assert_int_equal(o->read_certs(b, certs, 2, &n), CARD_ERR_BACKEND);
    assert_int_equal(n, 0);
    free(certs);
    int tries = 5;
    bool verified = true;
    assert_int_equal(o->pin_status(b, &tries, &verified), CARD_ERR_BACKEND);
    assert_int_equal(tries, -1);
    assert_false(verified);
    assert_int_equal(o->verify_pin(b, "1234", &tries), CARD_ERR_BACKEND);
    uint8_t h[32] = {1}, sig[CARD_SIG_MAX];
    size_t sig_len;
    assert_int_equal(o->sign(b, CARD_KEY_SIGN, CARD_MECH_SHA256, h, 32, sig, sizeof sig, &sig_len),
                     CARD_ERR_BACKEND);
    card_event_t ev;
    struct timespec t0;
    now(&t0);
    assert_int_equal(o->wait_event(b, 1000, &ev), CARD_ERR_BACKEND);
    assert_int_equal(ev, CARD_EVENT_NONE);
    assert_true(ms_since(&t0) < 500); /* not a busy loop, not a hang */
    o->logout(b);
    assert_non_null(strstr(o->last_error(b), "CKR_GENERAL_ERROR"));
    o->close(b);
    assert_int_equal(fake_get(FAKE_N_FINAL), fin + 1);
}

static void removal_cycle(bool wse)
{
    fake_ctl(FAKE_WSE, wse);
    card_backend_t *b = open_fake();
    assert_non_null(b);
    const card_ops_t *o = b->ops;
    card_event_t ev = CARD_EVENT_NONE;
    assert_int_equal(o->wait_event(b, 1000, &ev), CARD_OK);
    assert_int_equal(ev, CARD_EVENT_INSERTED);
    card_info_t info;
    assert_int_equal(o->bind(b, &info), CARD_OK);
    assert_true(info.pinpad);
    assert_string_equal(info.serial, "0000000000001234");
    assert_string_equal(info.label, "FAKE CPS");
    assert_string_equal(info.reader, "Fake Reader 00 00");
    /* PIN pad: C_Login with a NULL PIN (protected authentication path). */
    int tries;
    assert_int_equal(o->verify_pin(b, NULL, &tries), CARD_OK);
    assert_int_equal(fake_get(FAKE_LAST_PIN_NULL), 1);
    bool verified = false;
    assert_int_equal(o->pin_status(b, &tries, &verified), CARD_OK);
    assert_true(verified);

    /* Pull the card: the monitor sees it within 200 ms. */
    fake_ctl(FAKE_PRESENT, 0);
    struct timespec t0;
    now(&t0);
    assert_int_equal(o->wait_event(b, 2000, &ev), CARD_OK);
    assert_int_equal(ev, CARD_EVENT_REMOVED);
    assert_true(ms_since(&t0) < 200);

    /* Every operation on the card that left: CARD_ERR_REMOVED. */
    assert_int_equal(o->pin_status(b, &tries, &verified), CARD_ERR_REMOVED);
    assert_int_equal(o->verify_pin(b, "1234", &tries), CARD_ERR_REMOVED);
    uint8_t h[32] = {0}, sig[CARD_SIG_MAX];
    size_t sig_len;
    assert_int_equal(o->sign(b, CARD_KEY_AUTH, CARD_MECH_SHA256, h, 32, sig, sizeof sig, &sig_len),
                     CARD_ERR_REMOVED);
    card_cert_t cert;
    size_t n;
    assert_int_equal(o->read_certs(b, &cert, 1, &n), CARD_ERR_REMOVED);
    assert_int_equal(o->get_info(b, &info), CARD_OK);
    assert_false(info.present);
    assert_string_equal(info.reader, "Fake Reader 00 00");
    assert_int_equal(o->bind(b, &info), CARD_ERR_NO_CARD);
    o->logout(b);
    assert_int_equal(o->wait_event(b, 60, &ev), CARD_OK);
    assert_int_equal(ev, CARD_EVENT_NONE);

    /* Back in: an insertion, a new bind, no login carried over. */
    fake_ctl(FAKE_PRESENT, 1);
    now(&t0);
    assert_int_equal(o->wait_event(b, 2000, &ev), CARD_OK);
    assert_int_equal(ev, CARD_EVENT_INSERTED);
    assert_true(ms_since(&t0) < 200);
    assert_int_equal(o->bind(b, &info), CARD_OK);
    assert_true(info.present);
    assert_int_equal(o->pin_status(b, &tries, &verified), CARD_OK);
    assert_false(verified);
    assert_int_equal(tries, 3);
    o->close(b);
    assert_int_equal(fake_get(FAKE_N_SESSIONS), 0);
}

static void test_fake_removal_wait_for_slot_event(void **state)
{
    (void)state;
    removal_cycle(true);
    assert_true(fake_get(FAKE_N_WSE) > 0);
}

static void test_fake_removal_slot_lists(void **state)
{
    (void)state;
    removal_cycle(false);
}

/* The worker finds the removal itself when no monitor runs. */
static void test_fake_removal_worker(void **state)
{
    (void)state;
    card_backend_t *b = open_fake();
    assert_non_null(b);
    const card_ops_t *o = b->ops;
    assert_int_equal(o->bind(b, NULL), CARD_OK);
    int tries;
    bool verified;
    assert_int_equal(o->pin_status(b, &tries, &verified), CARD_OK);
    fake_ctl(FAKE_PRESENT, 0);
    assert_int_equal(o->verify_pin(b, "1234", &tries), CARD_ERR_REMOVED);
    assert_non_null(strstr(o->last_error(b), "CKR_"));
    assert_int_equal(o->pin_status(b, &tries, &verified), CARD_ERR_REMOVED);
    assert_int_equal(o->bind(b, NULL), CARD_ERR_NO_CARD);
    fake_ctl(FAKE_PRESENT, 1);
    assert_int_equal(o->bind(b, NULL), CARD_OK);
    assert_int_equal(o->pin_status(b, &tries, &verified), CARD_OK);
    assert_false(verified);
    o->close(b);
}

static void test_fake_pin_mapping(void **state)
{
    (void)state;
    card_backend_t *b = open_fake();
    assert_non_null(b);
    const card_ops_t *o = b->ops;
    int tries = 99;
    unsigned long logins = fake_get(FAKE_N_LOGIN);

    fake_ctl(FAKE_LOGIN_RV, CKR_PIN_INCORRECT);
    fake_ctl(FAKE_FLAGS, CKF_USER_PIN_COUNT_LOW);
    assert_int_equal(o->verify_pin(b, "1111", &tries), CARD_ERR_PIN_INCORRECT);
    assert_int_equal(tries, 2);
    assert_int_equal(fake_get(FAKE_N_LOGIN), logins + 1); /* never retried */
    assert_int_equal(fake_get(FAKE_LAST_PIN_NULL), 0);

    fake_ctl(FAKE_FLAGS, CKF_USER_PIN_COUNT_LOW | CKF_USER_PIN_FINAL_TRY);
    assert_int_equal(o->verify_pin(b, "1111", &tries), CARD_ERR_PIN_INCORRECT);
    assert_int_equal(tries, 1);
    bool verified;
    assert_int_equal(o->pin_status(b, &tries, &verified), CARD_OK);
    assert_int_equal(tries, 1);
    assert_false(verified);

    fake_ctl(FAKE_FLAGS, 0);
    fake_ctl(FAKE_LOGIN_RV, CKR_PIN_LOCKED);
    assert_int_equal(o->verify_pin(b, "1111", &tries), CARD_ERR_PIN_BLOCKED);
    assert_int_equal(tries, 0);

    /* Locked already: not even sent. */
    logins = fake_get(FAKE_N_LOGIN);
    fake_ctl(FAKE_FLAGS, CKF_USER_PIN_LOCKED);
    assert_int_equal(o->verify_pin(b, "1111", &tries), CARD_ERR_PIN_BLOCKED);
    assert_int_equal(tries, 0);
    assert_int_equal(o->pin_status(b, &tries, NULL), CARD_OK);
    assert_int_equal(tries, 0);
    assert_int_equal(fake_get(FAKE_N_LOGIN), logins);
    fake_ctl(FAKE_FLAGS, 0);

    /* Out of the token's 4..8 range: refused here. */
    assert_int_equal(o->verify_pin(b, "123", &tries), CARD_ERR_PIN_FORMAT);
    assert_int_equal(o->verify_pin(b, "123456789", &tries), CARD_ERR_PIN_FORMAT);
    assert_int_equal(fake_get(FAKE_N_LOGIN), logins);

    fake_ctl(FAKE_LOGIN_RV, CKR_FUNCTION_CANCELED);
    assert_int_equal(o->verify_pin(b, NULL, &tries), CARD_ERR_CANCELLED);
    assert_int_equal(fake_get(FAKE_LAST_PIN_NULL), 1);
    fake_ctl(FAKE_LOGIN_RV, CKR_PIN_LEN_RANGE);
    assert_int_equal(o->verify_pin(b, "1234", &tries), CARD_ERR_PIN_FORMAT);
    fake_ctl(FAKE_LOGIN_RV, CKR_DEVICE_ERROR);
    assert_int_equal(o->verify_pin(b, "1234", &tries), CARD_ERR_BACKEND);
    assert_non_null(strstr(o->last_error(b), "CKR_DEVICE_ERROR"));

    fake_ctl(FAKE_LOGIN_RV, CKR_OK);
    assert_int_equal(o->verify_pin(b, "1234", &tries), CARD_OK);
    assert_int_equal(tries, 3);
    assert_int_equal(o->verify_pin(b, "1234", &tries), CARD_OK); /* already logged in */
    o->close(b);
}

static void test_fake_sign_without_keys(void **state)
{
    (void)state;
    card_backend_t *b = open_fake();
    assert_non_null(b);
    const card_ops_t *o = b->ops;
    uint8_t h[32] = {0}, sig[CARD_SIG_MAX];
    size_t sig_len;
    /* No certificate: before login the key may be hidden, after it there is none. */
    assert_int_equal(o->sign(b, CARD_KEY_SIGN, CARD_MECH_SHA256, h, 32, sig, sizeof sig, &sig_len),
                     CARD_ERR_PIN_REQUIRED);
    assert_int_equal(o->verify_pin(b, "1234", NULL), CARD_OK);
    assert_int_equal(o->sign(b, CARD_KEY_SIGN, CARD_MECH_SHA256, h, 32, sig, sizeof sig, &sig_len),
                     CARD_ERR_NOT_SUPPORTED);
    card_cert_t cert;
    size_t n = 9;
    assert_int_equal(o->read_certs(b, &cert, 1, &n), CARD_OK);
    assert_int_equal(n, 0);
    o->close(b);
}

/* A card swapped between two polls: a removal, then an insertion of the other
 * card (C_WaitForSlotEvent reported the slot; the slot list alone cannot tell). */
static void test_fake_swap(void **state)
{
    (void)state;
    card_backend_t *b = open_fake();
    assert_non_null(b);
    const card_ops_t *o = b->ops;
    card_event_t ev;
    assert_int_equal(o->wait_event(b, 1000, &ev), CARD_OK);
    assert_int_equal(ev, CARD_EVENT_INSERTED);
    card_info_t info;
    assert_int_equal(o->bind(b, &info), CARD_OK);
    assert_string_equal(info.serial, "0000000000001234");
    assert_int_equal(o->verify_pin(b, "1234", NULL), CARD_OK);

    fake_ctl(FAKE_SWAP, 0);
    assert_int_equal(o->wait_event(b, 1000, &ev), CARD_OK);
    assert_int_equal(ev, CARD_EVENT_REMOVED);
    int tries;
    bool verified;
    assert_int_equal(o->pin_status(b, &tries, &verified), CARD_ERR_REMOVED);
    struct timespec t0;
    now(&t0);
    assert_int_equal(o->wait_event(b, 1000, &ev), CARD_OK);
    assert_int_equal(ev, CARD_EVENT_INSERTED);
    assert_true(ms_since(&t0) < 200);
    assert_int_equal(o->bind(b, &info), CARD_OK);
    assert_string_equal(info.serial, "0000000000001235");
    assert_int_equal(o->pin_status(b, &tries, &verified), CARD_OK);
    assert_false(verified);
    assert_int_equal(o->wait_event(b, 100, &ev), CARD_OK);
    assert_int_equal(ev, CARD_EVENT_NONE);
    o->close(b);
}

typedef struct {
    card_backend_t *b;
    int timeout_ms;
    card_status_t st;
    card_event_t ev;
} waiter_t;

static void *waiter_main(void *arg)
{
    waiter_t *w = arg;
    w->st = w->b->ops->wait_event(w->b, w->timeout_ms, &w->ev);
    return NULL;
}

/* Until the monitor thread has polled the module twice (it is inside wait_event). */
static void wait_for_polls(unsigned long before)
{
    struct timespec t0;
    now(&t0);
    while (fake_get(FAKE_N_WSE) < before + 2) {
        assert_true(ms_since(&t0) < 5000);
        struct timespec tick = {0, 1000000L}; /* poll with a deadline */
        nanosleep(&tick, NULL);
    }
}

static void test_fake_close_during_wait(void **state)
{
    (void)state;
    card_backend_t *b = open_fake();
    assert_non_null(b);
    card_event_t ev;
    assert_int_equal(b->ops->wait_event(b, 1000, &ev), CARD_OK); /* the insertion at start */
    assert_int_equal(ev, CARD_EVENT_INSERTED);

    /* cancel_wait ends a wait_event that has no timeout. */
    waiter_t w = {.b = b, .timeout_ms = -1, .st = CARD_OK, .ev = CARD_EVENT_NONE};
    pthread_t th;
    unsigned long before = fake_get(FAKE_N_WSE);
    assert_int_equal(pthread_create(&th, NULL, waiter_main, &w), 0);
    wait_for_polls(before);
    card_pkcs11_cancel_wait(b);
    pthread_join(th, NULL);
    assert_int_equal(w.st, CARD_ERR_CANCELLED);
    assert_int_equal(w.ev, CARD_EVENT_NONE);

    /* close ends one too, promptly, and only then frees the backend. */
    w.st = CARD_ERR_BACKEND;
    before = fake_get(FAKE_N_WSE);
    assert_int_equal(pthread_create(&th, NULL, waiter_main, &w), 0);
    wait_for_polls(before);
    struct timespec t0;
    now(&t0);
    b->ops->close(b);
    pthread_join(th, NULL);
    assert_true(ms_since(&t0) < 200);
    assert_int_equal(w.st, CARD_OK);
    assert_int_equal(w.ev, CARD_EVENT_NONE);
}

static void test_fake_registry(void **state)
{
    (void)state;
    unsigned long init = fake_get(FAKE_N_INIT), fin = fake_get(FAKE_N_FINAL);
    card_backend_t *a = open_fake();
    card_backend_t *b = open_fake();
    assert_non_null(a);
    assert_non_null(b);
    assert_int_equal(fake_get(FAKE_N_INIT), init + 1); /* C_Initialize once */
    a->ops->close(a);
    assert_int_equal(fake_get(FAKE_N_FINAL), fin);
    assert_int_equal(b->ops->bind(b, NULL), CARD_OK);
    b->ops->close(b);
    assert_int_equal(fake_get(FAKE_N_FINAL), fin + 1); /* C_Finalize at the last close */
    assert_false(card_is_pkcs11(NULL));
}

int main(void)
{
    const struct CMUnitTest basic[] = {
        cmocka_unit_test(test_status_names),
        cmocka_unit_test(test_open_bad_module),
    };
    const struct CMUnitTest softhsm[] = {
        cmocka_unit_test(test_softhsm_bind),       cmocka_unit_test(test_softhsm_read_certs),
        cmocka_unit_test(test_softhsm_pin),        cmocka_unit_test(test_softhsm_sign),
        cmocka_unit_test(test_softhsm_bad_input),  cmocka_unit_test(test_softhsm_label_match),
        cmocka_unit_test(test_softhsm_wait_event), cmocka_unit_test(test_softhsm_two_backends),
        cmocka_unit_test(test_softhsm_removal),
    };
    const struct CMUnitTest fake[] = {
        cmocka_unit_test_setup(test_fake_fail_all, fake_reset),
        cmocka_unit_test_setup(test_fake_fail_after_init, fake_reset),
        cmocka_unit_test_setup(test_fake_removal_wait_for_slot_event, fake_reset),
        cmocka_unit_test_setup(test_fake_removal_slot_lists, fake_reset),
        cmocka_unit_test_setup(test_fake_removal_worker, fake_reset),
        cmocka_unit_test_setup(test_fake_swap, fake_reset),
        cmocka_unit_test_setup(test_fake_pin_mapping, fake_reset),
        cmocka_unit_test_setup(test_fake_sign_without_keys, fake_reset),
        cmocka_unit_test_setup(test_fake_close_during_wait, fake_reset),
        cmocka_unit_test_setup(test_fake_registry, fake_reset),
    };
    int failed = cmocka_run_group_tests_name("card_pkcs11.basic", basic, NULL, NULL);
    failed += cmocka_run_group_tests_name("card_pkcs11.softhsm", softhsm, softhsm_setup,
                                          softhsm_teardown);
    failed += cmocka_run_group_tests_name("card_pkcs11.fake", fake, fake_setup, fake_teardown);
    return failed;
}
