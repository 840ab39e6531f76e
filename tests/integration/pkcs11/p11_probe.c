/* p11-probe: a PKCS#11 client for the integration tests of libcachet-pkcs11,
 * which stays up while the card is pulled and put back (the "without
 * restarting the client"). It dlopen()s the module, as any application does.
 *
 *   p11-probe MODULE removal PIN
 *
 * prints, one per line (stdout, flushed), what the test script waits for:
 *   signed            logged in and signed with the authentication key
 *   remove-now        blocked in C_WaitForSlotEvent: pull the card
 *   removed RV1 RV2   the event came; C_GetSessionInfo and C_Sign on the old
 *                     session returned RV1 and RV2 (names of CKR_ codes)
 *   insert-now        polling C_WaitForSlotEvent(CKF_DONT_BLOCK): put it back
 *   back              the token is there again; a new session signed
 * Exit status 0 when all of it worked, 1 otherwise (the reason on stderr). */
#include <dlfcn.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <p11-kit/pkcs11.h>

static CK_FUNCTION_LIST_PTR p11;

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void say(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    fflush(stdout);
}

static int die(const char *what, CK_RV rv)
{
    fprintf(stderr, "p11-probe: %s: 0x%lx\n", what, (unsigned long)rv);
    return 1;
}

static const char *rv_name(CK_RV rv)
{
    switch (rv) {
    case CKR_OK:
        return "CKR_OK";
    case CKR_DEVICE_REMOVED:
        return "CKR_DEVICE_REMOVED";
    case CKR_TOKEN_NOT_PRESENT:
        return "CKR_TOKEN_NOT_PRESENT";
    case CKR_SESSION_HANDLE_INVALID:
        return "CKR_SESSION_HANDLE_INVALID";
    case CKR_SESSION_CLOSED:
        return "CKR_SESSION_CLOSED";
    case CKR_DEVICE_ERROR:
        return "CKR_DEVICE_ERROR";
    default:
        return "CKR_other";
    }
}

static int64_t now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static CK_ULONG tokens(void)
{
    CK_ULONG n = 0;
    if (p11->C_GetSlotList(CK_TRUE, NULL, &n) != CKR_OK)
        return 0;
    return n;
}

/* Opens a session on the slot's token, logs in, finds the authentication key. */
static CK_RV session_with_key(const char *pin, CK_SESSION_HANDLE *h, CK_OBJECT_HANDLE *key)
{
    CK_SLOT_ID slot;
    CK_ULONG n = 1;
    CK_RV rv = p11->C_GetSlotList(CK_TRUE, &slot, &n);
    if (rv != CKR_OK)
        return rv;
    if (n != 1)
        return CKR_TOKEN_NOT_PRESENT;
    rv = p11->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL, h);
    if (rv != CKR_OK)
        return rv;
    rv = p11->C_Login(*h, CKU_USER, (CK_UTF8CHAR_PTR)pin, strlen(pin));
    if (rv != CKR_OK && rv != CKR_USER_ALREADY_LOGGED_IN)
        return rv;
    CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
    static const char label[] = "CPS_PRIV_AUT";
    CK_ATTRIBUTE t[2] = {{CKA_CLASS, &cls, sizeof cls},
                         {CKA_LABEL, (void *)label, sizeof label - 1}};
    rv = p11->C_FindObjectsInit(*h, t, 2);
    if (rv != CKR_OK)
        return rv;
    CK_ULONG found = 0;
    rv = p11->C_FindObjects(*h, key, 1, &found);
    p11->C_FindObjectsFinal(*h);
    return rv != CKR_OK ? rv : found == 1 ? CKR_OK : CKR_KEY_HANDLE_INVALID;
}

static CK_RV sign(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE key)
{
    CK_MECHANISM m = {CKM_SHA256_RSA_PKCS, NULL, 0};
    CK_RV rv = p11->C_SignInit(h, &m, key);
    if (rv != CKR_OK)
        return rv;
    CK_BYTE sig[512];
    CK_ULONG sl = sizeof sig;
    return p11->C_Sign(h, (CK_BYTE_PTR) "p11-probe", 9, sig, &sl);
}

static int removal(const char *pin)
{
    CK_SESSION_HANDLE h;
    CK_OBJECT_HANDLE key;
    CK_RV rv = session_with_key(pin, &h, &key);
    if (rv != CKR_OK)
        return die("session before removal", rv);
    if ((rv = sign(h, key)) != CKR_OK)
        return die("signature before removal", rv);
    say("signed");
    CK_SLOT_ID s;
    while (p11->C_WaitForSlotEvent(CKF_DONT_BLOCK, &s, NULL) == CKR_OK)
        ; /* nothing pending from before */
    say("remove-now");
    /* Blocking wait: the removal is the next slot event. */
    if ((rv = p11->C_WaitForSlotEvent(0, &s, NULL)) != CKR_OK)
        return die("C_WaitForSlotEvent", rv);
    if (tokens() != 0)
        return die("a token is still listed after the event", 0);
    CK_SESSION_INFO si;
    CK_RV r1 = p11->C_GetSessionInfo(h, &si);
    CK_RV r2 = sign(h, key);
    say("removed %s %s", rv_name(r1), rv_name(r2));
    if (r1 == CKR_OK || r2 == CKR_OK)
        return die("the old session still works", r1);
    p11->C_CloseSession(h);

    say("insert-now");
    int64_t end = now_ms() + 60000;
    while (tokens() == 0) {
        if (now_ms() > end)
            return die("no token 60 s after remove/insert", 0);
        rv = p11->C_WaitForSlotEvent(CKF_DONT_BLOCK, &s, NULL);
        if (rv != CKR_OK && rv != CKR_NO_EVENT)
            return die("C_WaitForSlotEvent(CKF_DONT_BLOCK)", rv);
        struct timespec ts = {0, 20 * 1000000L};
        nanosleep(&ts, NULL);
    }
    if ((rv = session_with_key(pin, &h, &key)) != CKR_OK)
        return die("session after re-insertion", rv);
    if ((rv = sign(h, key)) != CKR_OK)
        return die("signature after re-insertion", rv);
    say("back");
    p11->C_CloseSession(h);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 4 || strcmp(argv[2], "removal") != 0) {
        fprintf(stderr, "usage: p11-probe MODULE removal PIN\n");
        return 2;
    }
    void *lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (lib == NULL) {
        fprintf(stderr, "p11-probe: %s\n", dlerror());
        return 1;
    }
    CK_C_GetFunctionList get = (CK_C_GetFunctionList)dlsym(lib, "C_GetFunctionList");
    if (get == NULL || get(&p11) != CKR_OK)
        return die("C_GetFunctionList", 0);
    CK_C_INITIALIZE_ARGS args;
    memset(&args, 0, sizeof args);
    args.flags = CKF_OS_LOCKING_OK;
    CK_RV rv = p11->C_Initialize(&args);
    if (rv != CKR_OK)
        return die("C_Initialize", rv);
    int rc = removal(argv[3]);
    p11->C_Finalize(NULL);
    dlclose(lib);
    return rc;
}
