/* Unit tests of libcachet-pkcs11's entry points (drivers/pkcs11/p11_module.c)
 * against a fake cachetd (fake_cachetd.c) on a socket in a mkdtemp directory:
 * slots and token info, objects before and after login, C_Login (PIN, PIN
 * pad, tries-left flags), C_Sign for the three mechanisms on both keys, error
 * mapping, card removal and re-insertion, C_WaitForSlotEvent (blocking, not
 * blocking, woken by C_Finalize), cachetd not running (one log line), a
 * cachetd restart, concurrent signatures and fork(). */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/sha.h>
#include <p11-kit/pkcs11.h>

#include "fake_cachetd.h"

static CK_FUNCTION_LIST_PTR p11;
static char dir[64];

static int64_t now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static void pause_ms(int ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int setup(void **state)
{
    (void)state;
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/cachet-p11-test.XXXXXX",
             tmp != NULL && tmp[0] == '/' && strlen(tmp) < 32 ? tmp : "/tmp");
    if (mkdtemp(dir) == NULL)
        return -1;
    if (!fake_start(dir, CACHET_TEST_PKI_DIR))
        return -1;
    setenv("CACHETD_SOCKET", fake_socket_path(), 1);
    setenv("CACHET_PKCS11_LOG", "stderr", 1);
    if (C_GetFunctionList(&p11) != CKR_OK)
        return -1;
    return p11->C_Initialize(NULL) == CKR_OK ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    p11->C_Finalize(NULL);
    fake_stop();
    rmdir(dir);
    return 0;
}

/* The slot's token, with one session. */
static CK_SESSION_HANDLE open_session(void)
{
    CK_SLOT_ID slots[4];
    CK_ULONG n = 4;
    assert_int_equal(p11->C_GetSlotList(CK_TRUE, slots, &n), CKR_OK);
    assert_int_equal(n, 1);
    CK_SESSION_HANDLE h = 0;
    assert_int_equal(p11->C_OpenSession(slots[0], CKF_SERIAL_SESSION, NULL, NULL, &h), CKR_OK);
    return h;
}

static CK_OBJECT_HANDLE find_one(CK_SESSION_HANDLE h, CK_OBJECT_CLASS cls, const char *label)
{
    CK_ATTRIBUTE t[2] = {{CKA_CLASS, &cls, sizeof cls}, {CKA_LABEL, (void *)label, 0}};
    CK_ULONG nt = 1;
    if (label != NULL) {
        t[1].ulValueLen = strlen(label);
        nt = 2;
    }
    assert_int_equal(p11->C_FindObjectsInit(h, t, nt), CKR_OK);
    CK_OBJECT_HANDLE o[4];
    CK_ULONG n = 0;
    assert_int_equal(p11->C_FindObjects(h, o, 4, &n), CKR_OK);
    assert_int_equal(p11->C_FindObjectsFinal(h), CKR_OK);
    return n == 1 ? o[0] : CK_INVALID_HANDLE;
}

static CK_ULONG count_objects(CK_SESSION_HANDLE h)
{
    assert_int_equal(p11->C_FindObjectsInit(h, NULL, 0), CKR_OK);
    CK_OBJECT_HANDLE o[32];
    CK_ULONG n = 0, total = 0;
    do {
        assert_int_equal(p11->C_FindObjects(h, o, 2, &n), CKR_OK);
        total += n;
    } while (n > 0);
    assert_int_equal(p11->C_FindObjectsFinal(h), CKR_OK);
    return total;
}

static void login(CK_SESSION_HANDLE h)
{
    assert_int_equal(p11->C_Login(h, CKU_USER, (CK_UTF8CHAR_PTR) "1234", 4), CKR_OK);
}

/* Polls until the slot shows (or hides) a token, at most 5 s. */
static bool wait_token(bool present)
{
    int64_t end = now_ms() + 5000;
    for (;;) {
        CK_ULONG n = 0;
        if (p11->C_GetSlotList(CK_TRUE, NULL, &n) == CKR_OK && (n == 1) == present)
            return true;
        if (now_ms() > end)
            return false;
        pause_ms(5);
    }
}

/* Polls for a slot event without blocking, at most 5 s. */
static bool wait_event_polling(void)
{
    int64_t end = now_ms() + 5000;
    for (;;) {
        CK_SLOT_ID s = 0;
        CK_RV rv = p11->C_WaitForSlotEvent(CKF_DONT_BLOCK, &s, NULL);
        if (rv == CKR_OK)
            return s == 1;
        assert_int_equal(rv, CKR_NO_EVENT);
        if (now_ms() > end)
            return false;
        pause_ms(5);
    }
}

/* Polls until the module has a subscription at the fake, at most 5 s. */
static bool wait_subscribed(void)
{
    int64_t end = now_ms() + 5000;
    while (fake_subscribers() < 1) {
        if (now_ms() > end)
            return false;
        pause_ms(2);
    }
    return true;
}

static void drain_events(void)
{
    CK_SLOT_ID s;
    while (p11->C_WaitForSlotEvent(CKF_DONT_BLOCK, &s, NULL) == CKR_OK)
        ;
}

/* ---- general ------------------------------------------------------------------- */

static void test_initialize_rules(void **state)
{
    (void)state;
    assert_int_equal(p11->C_Initialize(NULL), CKR_CRYPTOKI_ALREADY_INITIALIZED);
    CK_INFO info;
    assert_int_equal(p11->C_GetInfo(&info), CKR_OK);
    assert_int_equal(info.cryptokiVersion.major, 2);
    assert_int_equal(info.cryptokiVersion.minor, 40);
    assert_memory_equal(info.manufacturerID, "Cachet ", 7);
    assert_int_equal(p11->C_Finalize(NULL), CKR_OK);
    assert_int_equal(p11->C_GetInfo(&info), CKR_CRYPTOKI_NOT_INITIALIZED);
    CK_ULONG n;
    assert_int_equal(p11->C_GetSlotList(CK_FALSE, NULL, &n), CKR_CRYPTOKI_NOT_INITIALIZED);
    CK_SESSION_INFO si;
    assert_int_equal(p11->C_GetSessionInfo(1, &si), CKR_CRYPTOKI_NOT_INITIALIZED);
    assert_int_equal(p11->C_Login(1, CKU_USER, (CK_UTF8CHAR_PTR) "1234", 4),
                     CKR_CRYPTOKI_NOT_INITIALIZED);
    CK_MECHANISM mech = {CKM_RSA_PKCS, NULL, 0};
    assert_int_equal(p11->C_SignInit(1, &mech, 1), CKR_CRYPTOKI_NOT_INITIALIZED);
    assert_int_equal(p11->C_Finalize(NULL), CKR_CRYPTOKI_NOT_INITIALIZED);

    /* the application's own mutexes without CKF_OS_LOCKING_OK: we cannot */
    CK_C_INITIALIZE_ARGS a;
    memset(&a, 0, sizeof a);
    a.CreateMutex = (CK_CREATEMUTEX)1;
    assert_int_equal(p11->C_Initialize(&a), CKR_ARGUMENTS_BAD); /* only one of four */
    a.DestroyMutex = (CK_DESTROYMUTEX)1;
    a.LockMutex = (CK_LOCKMUTEX)1;
    a.UnlockMutex = (CK_UNLOCKMUTEX)1;
    assert_int_equal(p11->C_Initialize(&a), CKR_CANT_LOCK);
    a.flags = CKF_OS_LOCKING_OK;
    assert_int_equal(p11->C_Initialize(&a), CKR_OK);
    assert_int_equal(p11->C_Finalize(NULL), CKR_OK);
    memset(&a, 0, sizeof a);
    a.flags = CKF_OS_LOCKING_OK;
    assert_int_equal(p11->C_Initialize(&a), CKR_OK);
}

static void test_slot_and_token(void **state)
{
    (void)state;
    CK_ULONG n = 0;
    assert_int_equal(p11->C_GetSlotList(CK_FALSE, NULL, &n), CKR_OK);
    assert_int_equal(n, 1);
    CK_SLOT_ID slot = 0;
    CK_ULONG zero = 0;
    assert_int_equal(p11->C_GetSlotList(CK_TRUE, &slot, &zero), CKR_BUFFER_TOO_SMALL);
    n = 1;
    assert_int_equal(p11->C_GetSlotList(CK_TRUE, &slot, &n), CKR_OK);
    CK_SLOT_INFO si;
    assert_int_equal(p11->C_GetSlotInfo(slot, &si), CKR_OK);
    assert_true(si.flags & CKF_TOKEN_PRESENT);
    assert_true(si.flags & CKF_REMOVABLE_DEVICE);
    assert_memory_equal(si.slotDescription, "Fake Reader 00 00 ", 18);
    assert_int_equal(p11->C_GetSlotInfo(slot + 1, &si), CKR_SLOT_ID_INVALID);

    CK_TOKEN_INFO ti;
    assert_int_equal(p11->C_GetTokenInfo(slot, &ti), CKR_OK);
    assert_memory_equal(ti.label, "DUPONT JEAN ", 12);
    assert_memory_equal(ti.serialNumber, "0000019900000001", 16);
    assert_true(ti.flags & CKF_LOGIN_REQUIRED);
    assert_false(ti.flags & CKF_PROTECTED_AUTHENTICATION_PATH);
    assert_false(ti.flags &
                 (CKF_USER_PIN_COUNT_LOW | CKF_USER_PIN_FINAL_TRY | CKF_USER_PIN_LOCKED));
    assert_int_equal(ti.ulMinPinLen, 4);

    CK_MECHANISM_TYPE mechs[8];
    n = 1;
    assert_int_equal(p11->C_GetMechanismList(slot, mechs, &n), CKR_BUFFER_TOO_SMALL);
    assert_int_equal(n, 3);
    assert_int_equal(p11->C_GetMechanismList(slot, mechs, &n), CKR_OK);
    CK_MECHANISM_INFO mi;
    for (CK_ULONG i = 0; i < n; i++) {
        assert_int_equal(p11->C_GetMechanismInfo(slot, mechs[i], &mi), CKR_OK);
        assert_int_equal(mi.flags, CKF_HW | CKF_SIGN);
        assert_int_equal(mi.ulMinKeySize, 2048);
    }
    assert_int_equal(p11->C_GetMechanismInfo(slot, CKM_RSA_PKCS_PSS, &mi), CKR_MECHANISM_INVALID);
    assert_int_equal(p11->C_GetMechanismInfo(slot, CKM_RSA_PKCS_OAEP, &mi), CKR_MECHANISM_INVALID);
}

static void test_tries_left_flags(void **state)
{
    (void)state;
    static const struct {
        int tries;
        bool pinpad;
        CK_FLAGS want;
    } cases[] = {
        {2, false, CKF_USER_PIN_COUNT_LOW},
        {1, false, CKF_USER_PIN_COUNT_LOW | CKF_USER_PIN_FINAL_TRY},
        {0, true, CKF_USER_PIN_LOCKED | CKF_PROTECTED_AUTHENTICATION_PATH},
        {3, true, CKF_PROTECTED_AUTHENTICATION_PATH},
    };
    const CK_FLAGS mask = CKF_USER_PIN_COUNT_LOW | CKF_USER_PIN_FINAL_TRY | CKF_USER_PIN_LOCKED |
                          CKF_PROTECTED_AUTHENTICATION_PATH;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        fake_card_t c;
        fake_get(&c);
        c.tries_left = cases[i].tries;
        c.pinpad = cases[i].pinpad;
        fake_set(&c);
        /* token info reuses a status for 2 s: a new module instance asks again */
        assert_int_equal(p11->C_Finalize(NULL), CKR_OK);
        assert_int_equal(p11->C_Initialize(NULL), CKR_OK);
        CK_TOKEN_INFO ti;
        assert_int_equal(p11->C_GetTokenInfo(1, &ti), CKR_OK);
        assert_int_equal(ti.flags & mask, cases[i].want);
    }
}

/* ---- objects and login ------------------------------------------------------------ */

static void test_objects_and_login(void **state)
{
    (void)state;
    CK_SESSION_HANDLE h = open_session();
    assert_int_equal(count_objects(h), 5); /* 3 certificates, 2 public keys */
    assert_int_equal(find_one(h, CKO_PRIVATE_KEY, NULL), CK_INVALID_HANDLE);
    CK_SESSION_INFO si;
    assert_int_equal(p11->C_GetSessionInfo(h, &si), CKR_OK);
    assert_int_equal(si.state, CKS_RO_PUBLIC_SESSION);

    /* wrong PIN, wrong lengths, then the right one */
    assert_int_equal(p11->C_Login(h, CKU_USER, (CK_UTF8CHAR_PTR) "9999", 4), CKR_PIN_INCORRECT);
    CK_TOKEN_INFO ti;
    assert_int_equal(p11->C_GetTokenInfo(1, &ti), CKR_OK);
    assert_true(ti.flags & CKF_USER_PIN_COUNT_LOW); /* 2 left, from the error */
    assert_int_equal(p11->C_Login(h, CKU_USER, (CK_UTF8CHAR_PTR) "12", 2), CKR_PIN_LEN_RANGE);
    assert_int_equal(p11->C_Login(h, CKU_USER, NULL, 0), CKR_ARGUMENTS_BAD); /* no PIN pad */
    assert_int_equal(p11->C_Login(h, CKU_SO, (CK_UTF8CHAR_PTR) "1234", 4), CKR_USER_TYPE_INVALID);
    login(h);
    assert_int_equal(p11->C_Login(h, CKU_USER, (CK_UTF8CHAR_PTR) "1234", 4),
                     CKR_USER_ALREADY_LOGGED_IN);
    assert_int_equal(p11->C_GetSessionInfo(h, &si), CKR_OK);
    assert_int_equal(si.state, CKS_RO_USER_FUNCTIONS);
    assert_int_equal(count_objects(h), 7);

    CK_OBJECT_HANDLE k = find_one(h, CKO_PRIVATE_KEY, "CPS_PRIV_SIG");
    CK_OBJECT_HANDLE c = find_one(h, CKO_CERTIFICATE, "Certificat de signature CPS");
    assert_int_not_equal(k, CK_INVALID_HANDLE);
    assert_int_not_equal(c, CK_INVALID_HANDLE);
    uint8_t kid[32], cid[32], mod[512];
    CK_BBOOL sign = CK_FALSE;
    CK_ATTRIBUTE ka[3] = {
        {CKA_ID, kid, sizeof kid}, {CKA_SIGN, &sign, sizeof sign}, {CKA_MODULUS, mod, sizeof mod}};
    assert_int_equal(p11->C_GetAttributeValue(h, k, ka, 3), CKR_OK);
    assert_true(sign);
    assert_int_equal(ka[2].ulValueLen, 256);
    CK_ATTRIBUTE ca = {CKA_ID, cid, sizeof cid};
    assert_int_equal(p11->C_GetAttributeValue(h, c, &ca, 1), CKR_OK);
    assert_int_equal(ka[0].ulValueLen, ca.ulValueLen);
    assert_memory_equal(kid, cid, ca.ulValueLen);
    /* one bad attribute: the others are still filled in */
    CK_ATTRIBUTE mix[2] = {{CKA_PRIME_1, mod, sizeof mod}, {CKA_ID, kid, sizeof kid}};
    assert_int_equal(p11->C_GetAttributeValue(h, k, mix, 2), CKR_ATTRIBUTE_SENSITIVE);
    assert_int_equal(mix[1].ulValueLen, ca.ulValueLen);
    assert_int_equal(p11->C_GetAttributeValue(h, k + 100, mix, 2), CKR_OBJECT_HANDLE_INVALID);
    assert_int_equal(p11->C_DestroyObject(h, k), CKR_ACTION_PROHIBITED);

    assert_int_equal(p11->C_Logout(h), CKR_OK);
    assert_int_equal(fake_logout_count(), 1);
    assert_int_equal(p11->C_Logout(h), CKR_USER_NOT_LOGGED_IN);
    assert_int_equal(p11->C_GetAttributeValue(h, k, ka, 1), CKR_OBJECT_HANDLE_INVALID);
    assert_int_equal(p11->C_CloseSession(h), CKR_OK);
    assert_int_equal(p11->C_CloseSession(h), CKR_SESSION_HANDLE_INVALID);
}

static void test_pinpad_login(void **state)
{
    (void)state;
    fake_card_t c;
    fake_get(&c);
    c.pinpad = true;
    fake_set(&c);
    assert_int_equal(p11->C_Finalize(NULL), CKR_OK);
    assert_int_equal(p11->C_Initialize(NULL), CKR_OK);
    CK_SESSION_HANDLE h = open_session();
    CK_TOKEN_INFO ti;
    assert_int_equal(p11->C_GetTokenInfo(1, &ti), CKR_OK);
    assert_true(ti.flags & CKF_PROTECTED_AUTHENTICATION_PATH);
    int before = fake_verify_count(NULL);
    assert_int_equal(p11->C_Login(h, CKU_USER, NULL, 0), CKR_OK);
    bool had_pin = true;
    assert_int_equal(fake_verify_count(&had_pin), before + 1);
    assert_false(had_pin); /* verify-pin without "pin": typed on the appliance */
    assert_int_equal(count_objects(h), 7);
    assert_int_equal(p11->C_CloseSession(h), CKR_OK);

    /* already verified (another client typed it): no second prompt */
    h = open_session();
    assert_int_equal(p11->C_Login(h, CKU_USER, NULL, 0), CKR_OK);
    assert_int_equal(fake_verify_count(NULL), before + 1);
    /* cancelled on the keypad */
    assert_int_equal(p11->C_Logout(h), CKR_OK);
    fake_get(&c);
    snprintf(c.verify_error, sizeof c.verify_error, "cancelled");
    fake_set(&c);
    assert_int_equal(p11->C_Login(h, CKU_USER, NULL, 0), CKR_FUNCTION_CANCELED);
    c.verify_error[0] = '\0';
    fake_set(&c);
}

/* ---- signatures -------------------------------------------------------------------- */

static CK_RV sign(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE k, CK_MECHANISM_TYPE mt,
                  const uint8_t *data, size_t len)
{
    CK_MECHANISM m = {mt, NULL, 0};
    CK_RV rv = p11->C_SignInit(h, &m, k);
    if (rv != CKR_OK)
        return rv;
    uint8_t sig[512];
    CK_ULONG sl = 0;
    rv = p11->C_Sign(h, (CK_BYTE_PTR)data, len, NULL, &sl); /* length query */
    if (rv != CKR_OK)
        return rv;
    assert_int_equal(sl, 256);
    sl = sizeof sig;
    return p11->C_Sign(h, (CK_BYTE_PTR)data, len, sig, &sl);
}

static void test_sign_mechanisms(void **state)
{
    (void)state;
    CK_SESSION_HANDLE h = open_session();
    login(h);
    CK_OBJECT_HANDLE auth = find_one(h, CKO_PRIVATE_KEY, "CPS_PRIV_AUT");
    CK_OBJECT_HANDLE sig = find_one(h, CKO_PRIVATE_KEY, "CPS_PRIV_SIG");
    const uint8_t msg[] = "message to sign";
    uint8_t hash[32];
    SHA256(msg, sizeof msg, hash);

    /* SHA256-RSA-PKCS: hashed here, sign-digest sha256 */
    assert_int_equal(sign(h, sig, CKM_SHA256_RSA_PKCS, msg, sizeof msg), CKR_OK);
    fake_sign_t s = fake_last_sign();
    assert_string_equal(s.key, "sign");
    assert_string_equal(s.mechanism, "sha256");
    assert_int_equal(s.data_len, 32);
    assert_memory_equal(s.data, hash, 32);

    /* SHA1-RSA-PKCS, multi-part */
    CK_MECHANISM m1 = {CKM_SHA1_RSA_PKCS, NULL, 0};
    assert_int_equal(p11->C_SignInit(h, &m1, auth), CKR_OK);
    assert_int_equal(p11->C_SignInit(h, &m1, auth), CKR_OPERATION_ACTIVE);
    assert_int_equal(p11->C_SignUpdate(h, (CK_BYTE_PTR)msg, 5), CKR_OK);
    assert_int_equal(p11->C_SignUpdate(h, (CK_BYTE_PTR)msg + 5, sizeof msg - 5), CKR_OK);
    uint8_t out[512];
    CK_ULONG ol = 10;
    assert_int_equal(p11->C_SignFinal(h, out, &ol), CKR_BUFFER_TOO_SMALL);
    assert_int_equal(ol, 256);
    ol = sizeof out;
    assert_int_equal(p11->C_SignFinal(h, out, &ol), CKR_OK);
    assert_int_equal(ol, 256);
    uint8_t h1[20];
    SHA1(msg, sizeof msg, h1);
    s = fake_last_sign();
    assert_string_equal(s.key, "auth");
    assert_string_equal(s.mechanism, "sha1");
    assert_memory_equal(s.data, h1, 20);
    assert_int_equal(p11->C_SignFinal(h, out, &ol), CKR_OPERATION_NOT_INITIALIZED);

    /* CKM_RSA_PKCS, auth key: any data up to k - 11 (TLS 1.2) */
    uint8_t raw[245];
    memset(raw, 7, sizeof raw);
    assert_int_equal(sign(h, auth, CKM_RSA_PKCS, raw, 36), CKR_OK);
    s = fake_last_sign();
    assert_string_equal(s.mechanism, "rsa-pkcs");
    assert_int_equal(s.data_len, 36);
    assert_int_equal(sign(h, auth, CKM_RSA_PKCS, raw, 245), CKR_OK);
    uint8_t over[246];
    memset(over, 7, sizeof over);
    assert_int_equal(sign(h, auth, CKM_RSA_PKCS, over, sizeof over), CKR_DATA_LEN_RANGE);

    /* CKM_RSA_PKCS, signature key: only a SHA-1/SHA-256 DigestInfo, taken apart */
    uint8_t di[51] = {0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01,
                      0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20};
    memcpy(di + 19, hash, 32);
    int count = fake_last_sign().count;
    assert_int_equal(sign(h, sig, CKM_RSA_PKCS, di, sizeof di), CKR_OK);
    s = fake_last_sign();
    assert_int_equal(s.count, count + 1);
    assert_string_equal(s.key, "sign");
    assert_string_equal(s.mechanism, "sha256");
    assert_memory_equal(s.data, hash, 32);
    assert_int_equal(sign(h, sig, CKM_RSA_PKCS, raw, 36), CKR_DATA_INVALID);
    assert_int_equal(fake_last_sign().count, count + 1); /* never sent */

    /* no PSS, no parameters, no certificate as a key */
    CK_RSA_PKCS_PSS_PARAMS pss = {CKM_SHA256, CKG_MGF1_SHA256, 32};
    CK_MECHANISM mp = {CKM_SHA256_RSA_PKCS_PSS, &pss, sizeof pss};
    assert_int_equal(p11->C_SignInit(h, &mp, auth), CKR_MECHANISM_INVALID);
    CK_MECHANISM mparam = {CKM_RSA_PKCS, &pss, sizeof pss};
    assert_int_equal(p11->C_SignInit(h, &mparam, auth), CKR_MECHANISM_PARAM_INVALID);
    CK_MECHANISM mr = {CKM_RSA_PKCS, NULL, 0};
    CK_OBJECT_HANDLE cert = find_one(h, CKO_CERTIFICATE, "Certificat de signature CPS");
    assert_int_equal(p11->C_SignInit(h, &mr, cert), CKR_KEY_HANDLE_INVALID);
    assert_int_equal(p11->C_CloseSession(h), CKR_OK);
}

static void test_sign_errors(void **state)
{
    (void)state;
    CK_SESSION_HANDLE h = open_session();
    login(h);
    CK_OBJECT_HANDLE k = find_one(h, CKO_PRIVATE_KEY, "CPS_PRIV_SIG");
    const uint8_t msg[] = "x";
    static const struct {
        const char *code;
        CK_RV rv;
    } cases[] = {
        {"cancelled", CKR_FUNCTION_CANCELED}, {"timeout", CKR_FUNCTION_CANCELED},
        {"backend", CKR_DEVICE_ERROR},        {"not-supported", CKR_KEY_FUNCTION_NOT_PERMITTED},
        {"pin-blocked", CKR_PIN_LOCKED},      {"pin-required", CKR_USER_NOT_LOGGED_IN},
    };
    fake_card_t c;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        fake_get(&c);
        snprintf(c.sign_error, sizeof c.sign_error, "%s", cases[i].code);
        fake_set(&c);
        assert_int_equal(sign(h, k, CKM_SHA256_RSA_PKCS, msg, 1), cases[i].rv);
    }
    c.sign_error[0] = '\0';
    fake_set(&c);
    /* pin-required dropped our login: private objects are hidden again */
    CK_SESSION_INFO si;
    assert_int_equal(p11->C_GetSessionInfo(h, &si), CKR_OK);
    assert_int_equal(si.state, CKS_RO_PUBLIC_SESSION);
    assert_int_equal(p11->C_CloseSession(h), CKR_OK);
}

/* ---- removal, events ------------------------------------------------------------------ */

static void test_removal_and_reinsertion(void **state)
{
    (void)state;
    CK_SESSION_HANDLE h = open_session();
    login(h);
    CK_OBJECT_HANDLE k = find_one(h, CKO_PRIVATE_KEY, "CPS_PRIV_AUT");
    drain_events();

    fake_card_t c;
    fake_get(&c);
    c.card_present = false;
    c.verified = false;
    fake_set(&c);
    fake_event("card-removed");
    assert_true(wait_event_polling());
    CK_SESSION_INFO si;
    assert_int_equal(p11->C_GetSessionInfo(h, &si), CKR_DEVICE_REMOVED);
    assert_int_equal(sign(h, k, CKM_SHA256_RSA_PKCS, (const uint8_t *)"x", 1), CKR_DEVICE_REMOVED);
    CK_ULONG n = 5;
    assert_int_equal(p11->C_GetSlotList(CK_TRUE, NULL, &n), CKR_OK);
    assert_int_equal(n, 0);
    assert_int_equal(p11->C_GetSlotList(CK_FALSE, NULL, &n), CKR_OK);
    assert_int_equal(n, 1);
    CK_TOKEN_INFO ti;
    assert_int_equal(p11->C_GetTokenInfo(1, &ti), CKR_TOKEN_NOT_PRESENT);
    CK_SESSION_HANDLE h2;
    assert_int_equal(p11->C_OpenSession(1, CKF_SERIAL_SESSION, NULL, NULL, &h2),
                     CKR_TOKEN_NOT_PRESENT);

    fake_get(&c);
    c.card_present = true;
    fake_set(&c);
    fake_event("card-inserted");
    assert_true(wait_event_polling());
    assert_true(wait_token(true));
    /* the old session stays dead until closed; a new one works, after a login */
    assert_int_equal(p11->C_GetSessionInfo(h, &si), CKR_DEVICE_REMOVED);
    assert_int_equal(p11->C_CloseSession(h), CKR_OK);
    h = open_session();
    assert_int_equal(count_objects(h), 5);
    login(h);
    k = find_one(h, CKO_PRIVATE_KEY, "CPS_PRIV_AUT");
    assert_int_equal(sign(h, k, CKM_SHA256_RSA_PKCS, (const uint8_t *)"x", 1), CKR_OK);

    /* removal seen by a signature (the event not read yet) */
    fake_get(&c);
    snprintf(c.sign_error, sizeof c.sign_error, "card-removed");
    fake_set(&c);
    assert_int_equal(sign(h, k, CKM_SHA256_RSA_PKCS, (const uint8_t *)"x", 1), CKR_DEVICE_REMOVED);
    c.sign_error[0] = '\0';
    fake_set(&c);
    assert_int_equal(p11->C_GetSessionInfo(h, &si), CKR_DEVICE_REMOVED);
    assert_int_equal(p11->C_CloseAllSessions(1), CKR_OK);
    assert_true(wait_token(true)); /* status: the card is still there */
}

typedef struct {
    CK_RV rv;
    CK_SLOT_ID slot;
    int64_t returned_at;
} waiter_t;

static void *waiter(void *arg)
{
    waiter_t *w = arg;
    w->rv = p11->C_WaitForSlotEvent(0, &w->slot, NULL);
    w->returned_at = now_ms();
    return NULL;
}

static void test_wait_for_slot_event_blocking(void **state)
{
    (void)state;
    assert_true(wait_token(true));
    drain_events();
    waiter_t w = {CKR_GENERAL_ERROR, 0, 0};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, waiter, &w), 0);
    /* the waiter blocks on the subscription: nothing yet */
    assert_true(wait_subscribed());
    assert_int_equal(w.returned_at, 0);
    fake_card_t c;
    fake_get(&c);
    c.card_present = false;
    fake_set(&c);
    int64_t sent = now_ms();
    fake_event("card-removed");
    pthread_join(t, NULL);
    assert_int_equal(w.rv, CKR_OK);
    assert_int_equal(w.slot, 1);
    assert_true(w.returned_at - sent < 1000);
    assert_true(wait_token(false));

    /* C_Finalize wakes a blocked waiter */
    w.rv = CKR_GENERAL_ERROR;
    w.returned_at = 0;
    assert_int_equal(pthread_create(&t, NULL, waiter, &w), 0);
    assert_true(wait_subscribed());
    assert_int_equal(w.returned_at, 0);
    assert_int_equal(p11->C_Finalize(NULL), CKR_OK);
    pthread_join(t, NULL);
    assert_int_equal(w.rv, CKR_CRYPTOKI_NOT_INITIALIZED);
    assert_int_equal(p11->C_Initialize(NULL), CKR_OK);
    fake_get(&c);
    c.card_present = true;
    fake_set(&c);
    assert_true(wait_token(true));
    /* the first look is where events start: nothing pending */
    CK_SLOT_ID s;
    assert_int_equal(p11->C_WaitForSlotEvent(CKF_DONT_BLOCK, &s, NULL), CKR_NO_EVENT);
}

/* ---- cachetd away ---------------------------------------------------------------------- */

static void test_cachetd_not_running(void **state)
{
    (void)state;
    assert_int_equal(p11->C_Finalize(NULL), CKR_OK);
    fake_stop();
    /* stderr to a file: the module logs one line per process */
    char log[128];
    snprintf(log, sizeof log, "%s/stderr.log", dir);
    int saved = dup(2);
    int lf = open(log, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0600);
    assert_true(lf >= 0);
    dup2(lf, 2);
    assert_int_equal(p11->C_Initialize(NULL), CKR_OK);
    CK_ULONG n = 9;
    /* For 800 ms (past the reconnect interval: it tries again, quietly). */
    int64_t end = now_ms() + 800;
    while (now_ms() < end) {
        assert_int_equal(p11->C_GetSlotList(CK_TRUE, NULL, &n), CKR_OK);
        assert_int_equal(n, 0);
        pause_ms(20);
    }
    assert_int_equal(p11->C_GetSlotList(CK_FALSE, NULL, &n), CKR_OK);
    assert_int_equal(n, 1);
    CK_SLOT_INFO si;
    assert_int_equal(p11->C_GetSlotInfo(1, &si), CKR_OK);
    assert_false(si.flags & CKF_TOKEN_PRESENT);
    assert_memory_equal(si.slotDescription, "Cachet (cachetd not running)", 28);
    CK_SLOT_ID s;
    assert_int_equal(p11->C_WaitForSlotEvent(CKF_DONT_BLOCK, &s, NULL), CKR_NO_EVENT);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    close(lf);
    FILE *fp = fopen(log, "r");
    assert_non_null(fp);
    char line[512];
    int lines = 0;
    while (fgets(line, sizeof line, fp) != NULL)
        lines++;
    fclose(fp);
    unlink(log);
    assert_int_equal(lines, 1);

    /* cachetd starts: the token appears in the same slot, as a slot event */
    assert_true(fake_start(dir, CACHET_TEST_PKI_DIR));
    assert_true(wait_token(true));
    assert_true(wait_event_polling());
}

static void test_cachetd_restart(void **state)
{
    (void)state;
    CK_SESSION_HANDLE h = open_session();
    fake_drop_connections();
    assert_true(wait_token(true)); /* reconnected, same card */
    CK_SESSION_INFO si;
    assert_int_equal(p11->C_GetSessionInfo(h, &si), CKR_DEVICE_REMOVED);
    assert_int_equal(p11->C_CloseSession(h), CKR_OK);
    h = open_session();
    login(h);
    CK_OBJECT_HANDLE k = find_one(h, CKO_PRIVATE_KEY, "CPS_PRIV_AUT");
    assert_int_equal(sign(h, k, CKM_SHA256_RSA_PKCS, (const uint8_t *)"x", 1), CKR_OK);
    assert_int_equal(p11->C_CloseSession(h), CKR_OK);
}

/* ---- threads and fork --------------------------------------------------------------------- */

typedef struct {
    CK_SESSION_HANDLE h;
    CK_OBJECT_HANDLE k;
    CK_RV rv;
} signer_t;

/* No cmocka assertion here: they are not for other threads. */
static void *signer(void *arg)
{
    signer_t *s = arg;
    CK_MECHANISM m = {CKM_SHA256_RSA_PKCS, NULL, 0};
    for (int i = 0; i < 10 && s->rv == CKR_OK; i++) {
        uint8_t sig[512];
        CK_ULONG sl = sizeof sig;
        s->rv = p11->C_SignInit(s->h, &m, s->k);
        if (s->rv == CKR_OK)
            s->rv = p11->C_Sign(s->h, (CK_BYTE_PTR) "abc", 3, sig, &sl);
        if (s->rv == CKR_OK && sl != 256)
            s->rv = CKR_GENERAL_ERROR;
    }
    return NULL;
}

static void test_threads(void **state)
{
    (void)state;
    fake_card_t c;
    fake_get(&c);
    c.sign_delay_ms = 5;
    fake_set(&c);
    signer_t s[4];
    pthread_t t[4];
    CK_SESSION_HANDLE first = open_session();
    login(first);
    for (int i = 0; i < 4; i++) {
        s[i].h = open_session();
        s[i].k = find_one(s[i].h, CKO_PRIVATE_KEY, i % 2 ? "CPS_PRIV_AUT" : "CPS_PRIV_SIG");
        s[i].rv = CKR_OK;
        assert_int_not_equal(s[i].k, CK_INVALID_HANDLE);
    }
    int before = fake_last_sign().count;
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&t[i], NULL, signer, &s[i]), 0);
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(s[i].rv, CKR_OK);
    }
    assert_int_equal(fake_last_sign().count, before + 40);
    c.sign_delay_ms = 0;
    fake_set(&c);
    assert_int_equal(p11->C_CloseAllSessions(1), CKR_OK);
}

static void test_fork(void **state)
{
    (void)state;
    CK_SESSION_HANDLE h = open_session();
    login(h);
    CK_OBJECT_HANDLE k = find_one(h, CKO_PRIVATE_KEY, "CPS_PRIV_AUT");
    assert_int_equal(sign(h, k, CKM_SHA256_RSA_PKCS, (const uint8_t *)"x", 1), CKR_OK);
    int conns = fake_connections();
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        /* the child: the parent's connections are not used; it signs on its own */
        CK_MECHANISM m = {CKM_SHA256_RSA_PKCS, NULL, 0};
        uint8_t sig[512];
        CK_ULONG sl = sizeof sig;
        int rc = 0;
        if (p11->C_SignInit(h, &m, k) != CKR_OK)
            rc = 1;
        else if (p11->C_Sign(h, (CK_BYTE_PTR) "y", 1, sig, &sl) != CKR_OK)
            rc = 2;
        _exit(rc);
    }
    assert_true(pid > 0);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_true(fake_connections() > conns);
    assert_int_equal(fake_last_peer(), pid); /* its own connection, its own pid */
    /* and the parent goes on over its own connections */
    assert_int_equal(sign(h, k, CKM_SHA256_RSA_PKCS, (const uint8_t *)"z", 1), CKR_OK);
    assert_int_equal(p11->C_CloseSession(h), CKR_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_initialize_rules, setup, teardown),
        cmocka_unit_test_setup_teardown(test_slot_and_token, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tries_left_flags, setup, teardown),
        cmocka_unit_test_setup_teardown(test_objects_and_login, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pinpad_login, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sign_mechanisms, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sign_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_removal_and_reinsertion, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wait_for_slot_event_blocking, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cachetd_not_running, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cachetd_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(test_threads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fork, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
