/* p11-bench: C_Sign latency through any PKCS#11 module (bench/pkcs11/run).
 *
 *   p11-bench MODULE PIN CERT-LABEL-PART N
 *
 * Loads MODULE (dlopen, as a client does), logs in with PIN, finds the
 * certificate whose CKA_LABEL contains CERT-LABEL-PART and the private key with
 * its CKA_ID, then signs a SHA-256 DigestInfo with CKM_RSA_PKCS (what TLS
 * clients send for the authentication key): once, timed from main() ("first
 * signature after the process starts": load, C_Initialize, login, find, sign),
 * then N more times, each C_SignInit + C_Sign timed. Prints one line:
 *   first_ms=F n=N p50_ms=A p99_ms=B mean_ms=C
 * Exit status 1 on any PKCS#11 error (named on stderr). */
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <p11-kit/pkcs11.h>

static CK_FUNCTION_LIST_PTR p11;

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

static int fail(const char *what, CK_RV rv)
{
    fprintf(stderr, "p11-bench: %s: 0x%lx\n", what, (unsigned long)rv);
    return 1;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The private key paired (CKA_ID) with the certificate whose label has part. */
static CK_RV find_key(CK_SESSION_HANDLE h, const char *part, CK_OBJECT_HANDLE *key)
{
    CK_OBJECT_CLASS cls = CKO_CERTIFICATE;
    CK_ATTRIBUTE t = {CKA_CLASS, &cls, sizeof cls};
    CK_RV rv = p11->C_FindObjectsInit(h, &t, 1);
    if (rv != CKR_OK)
        return rv;
    CK_OBJECT_HANDLE certs[16];
    CK_ULONG n = 0;
    rv = p11->C_FindObjects(h, certs, 16, &n);
    p11->C_FindObjectsFinal(h);
    if (rv != CKR_OK)
        return rv;
    for (CK_ULONG i = 0; i < n; i++) {
        char label[256];
        CK_BYTE id[64];
        CK_ATTRIBUTE a[2] = {{CKA_LABEL, label, sizeof label - 1}, {CKA_ID, id, sizeof id}};
        if (p11->C_GetAttributeValue(h, certs[i], a, 2) != CKR_OK)
            continue;
        label[a[0].ulValueLen] = '\0';
        if (strstr(label, part) == NULL)
            continue;
        CK_OBJECT_CLASS pk = CKO_PRIVATE_KEY;
        CK_ATTRIBUTE q[2] = {{CKA_CLASS, &pk, sizeof pk}, {CKA_ID, id, a[1].ulValueLen}};
        rv = p11->C_FindObjectsInit(h, q, 2);
        if (rv != CKR_OK)
            return rv;
        CK_ULONG found = 0;
        rv = p11->C_FindObjects(h, key, 1, &found);
        p11->C_FindObjectsFinal(h);
        return rv != CKR_OK ? rv : found == 1 ? CKR_OK : CKR_KEY_HANDLE_INVALID;
    }
    return CKR_KEY_HANDLE_INVALID;
}

/* DigestInfo(SHA-256) of a fixed message hash (RFC 8017 §9.2 note 1). */
static const CK_BYTE digest_info[51] = {
    0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04,
    0x02, 0x01, 0x05, 0x00, 0x04, 0x20, 0x2c, 0x26, 0xb4, 0x6b, 0x68, 0xff, 0xc6,
    0x8f, 0xf9, 0x9b, 0x45, 0x3c, 0x1d, 0x30, 0x41, 0x34, 0x13, 0x42, 0x2d, 0x70,
    0x64, 0x83, 0xbf, 0xa0, 0xf9, 0x8a, 0x5e, 0x88, 0x62, 0x66, 0xe7, 0xae};

static CK_RV sign_once(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE key)
{
    CK_MECHANISM m = {CKM_RSA_PKCS, NULL, 0};
    CK_RV rv = p11->C_SignInit(h, &m, key);
    if (rv != CKR_OK)
        return rv;
    CK_BYTE sig[512];
    CK_ULONG sl = sizeof sig;
    return p11->C_Sign(h, (CK_BYTE_PTR)digest_info, sizeof digest_info, sig, &sl);
}

int main(int argc, char **argv)
{
    double t0 = now_ms();
    if (argc != 5) {
        fprintf(stderr, "usage: p11-bench MODULE PIN CERT-LABEL-PART N\n");
        return 2;
    }
    long n = strtol(argv[4], NULL, 10);
    if (n < 0 || n > 100000)
        return 2;
    void *lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (lib == NULL) {
        fprintf(stderr, "p11-bench: %s\n", dlerror());
        return 1;
    }
    CK_C_GetFunctionList get = (CK_C_GetFunctionList)dlsym(lib, "C_GetFunctionList");
    if (get == NULL || get(&p11) != CKR_OK)
        return fail("C_GetFunctionList", 0);
    CK_C_INITIALIZE_ARGS args;
    memset(&args, 0, sizeof args);
    args.flags = CKF_OS_LOCKING_OK;
    CK_RV rv = p11->C_Initialize(&args);
    if (rv != CKR_OK)
        return fail("C_Initialize", rv);
    CK_SLOT_ID slots[8];
    CK_ULONG ns = 8;
    if ((rv = p11->C_GetSlotList(CK_TRUE, slots, &ns)) != CKR_OK || ns == 0)
        return fail("C_GetSlotList (no token)", rv);
    CK_SESSION_HANDLE h;
    if ((rv = p11->C_OpenSession(slots[0], CKF_SERIAL_SESSION, NULL, NULL, &h)) != CKR_OK)
        return fail("C_OpenSession", rv);
    rv = p11->C_Login(h, CKU_USER, (CK_UTF8CHAR_PTR)argv[2], strlen(argv[2]));
    if (rv != CKR_OK && rv != CKR_USER_ALREADY_LOGGED_IN)
        return fail("C_Login", rv);
    CK_OBJECT_HANDLE key;
    if ((rv = find_key(h, argv[3], &key)) != CKR_OK)
        return fail("key", rv);
    if ((rv = sign_once(h, key)) != CKR_OK)
        return fail("first C_Sign", rv);
    double first = now_ms() - t0;

    double *lat = calloc((size_t)n + 1, sizeof *lat);
    if (lat == NULL)
        return 1;
    double sum = 0;
    for (long i = 0; i < n; i++) {
        double a = now_ms();
        if ((rv = sign_once(h, key)) != CKR_OK)
            return fail("C_Sign", rv);
        lat[i] = now_ms() - a;
        sum += lat[i];
    }
    qsort(lat, (size_t)n, sizeof *lat, cmp_double);
    double p50 = n > 0 ? lat[(n - 1) / 2] : 0,
           p99 = n > 0 ? lat[(size_t)((double)(n - 1) * 0.99)] : 0;
    printf("first_ms=%.1f n=%ld p50_ms=%.2f p99_ms=%.2f mean_ms=%.2f\n", first, n, p50, p99,
           n > 0 ? sum / (double)n : 0.0);
    free(lat);
    p11->C_CloseSession(h);
    p11->C_Finalize(NULL);
    return 0;
}
