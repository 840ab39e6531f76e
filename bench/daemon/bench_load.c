/* cachet-bench-load: the load generator of bench/daemon (bench/README.md).
 *
 * N client threads sign 32-byte SHA-256 digests with one key of a token, either
 *   - through cachetd: one connection per client (hello once), `sign-digest`
 *     requests {key, mechanism "sha256", data} one after the other
 *     (docs/protocol.md §3.8), or
 *   - directly through the PKCS#11 module (dlopen, the one cachetd would load):
 *     one session per client, C_SignInit + C_Sign with CKM_RSA_PKCS over the
 *     DER DigestInfo of the digest (PKCS#11 v2.40 §2.1.6, RFC 8017 §9.2) —
 *     exactly what cachetd's PKCS#11 backend hands the module for "sha256".
 * The PIN is given once before the clock starts (cachetd: verify-pin; direct:
 * C_Login, which holds for every session of the process, PKCS#11 v2.40 §5.6).
 *
 * Bounded twice: at most --count signatures in all, and no new one after
 * --seconds. Each client first does --warmup signatures that are not measured,
 * then all start together (a barrier). Prints one line of key=value fields:
 *   target= clients= requests= errors= seconds= rps= p50_us= p99_us= max_us=
 * Exit 0 when every measured request succeeded, 1 otherwise, 2 on usage. */
#include <errno.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>
#include <p11-kit/pkcs11.h>

#include "proto.h"

#define BENCH_CLIENTS_MAX 256     /* cachetd serves 128 connections (CACHETD_CONN_MAX) */
#define BENCH_COUNT_MAX   1000000 /* signatures per run */
#define BENCH_SECONDS_MAX 600
#define BENCH_WARMUP_MAX  100
#define BENCH_SIG_MAX     1024 /* RSA-8192 and below */
#define BENCH_PIN_MAX     16   /* as cachetd (CACHETD_PIN_MAX) */
#define BENCH_SLOTS_MAX   64
#define BENCH_IO_TIMEOUT  30000 /* ms for one answer from cachetd */
#define BENCH_EVENTS_SKIP 64    /* events skipped while waiting for one answer */
#define BENCH_LAT_FAILED  UINT64_MAX

/* DER DigestInfo prefix of SHA-256 (RFC 8017 §9.2 note 1). */
static const uint8_t bench_di_sha256[] = {0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60,
                                          0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                                          0x01, 0x05, 0x00, 0x04, 0x20};
#define BENCH_DIGEST_LEN 32

typedef enum { TARGET_CACHETD, TARGET_DIRECT } target_t;

typedef struct {
    target_t target;
    const char *socket_path; /* cachetd */
    const char *module_path; /* direct */
    const char *token_label; /* direct: NULL = the first initialised token */
    const char *key;         /* "auth" or "sign" */
    long clients, count, seconds, warmup;
    int pin_fd;
    char pin[BENCH_PIN_MAX + 1];
    size_t pin_len;

    /* direct */
    void *dl;
    CK_FUNCTION_LIST_PTR f;
    CK_SLOT_ID slot;
    CK_SESSION_HANDLE login_sess;
    uint8_t key_id[1];

    /* the run */
    pthread_barrier_t start;
    uint64_t t_start_ns, deadline_ns;
    atomic_ullong next;   /* tickets: request number t measures into lat_ns[t] */
    atomic_ullong errors; /* measured requests that failed */
    uint64_t *lat_ns;     /* count entries */
} bench_t;

typedef struct {
    bench_t *b;
    int idx;
    int fd;          /* cachetd connection */
    int64_t next_id; /* request ids on it */
    CK_SESSION_HANDLE sess;
    CK_OBJECT_HANDLE key;
    bool failed;       /* set-up or warm-up failed: measures nothing */
    uint64_t t_end_ns; /* end of its last measured request */
    char err[256];
} worker_t;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void wipe(void *p, size_t n)
{
    if (p != NULL && n > 0)
        explicit_bzero(p, n);
}

/* A digest that differs per client and request (its value does not matter: the
 * token signs whatever 32 bytes it is given). */
static void make_digest(uint8_t d[BENCH_DIGEST_LEN], int idx, uint64_t n)
{
    for (size_t i = 0; i < BENCH_DIGEST_LEN; i++)
        d[i] = (uint8_t)((n >> (8 * (i % 8))) ^ (uint64_t)(idx * 31 + (int)i));
}

/* ---- cachetd side (host/proto) ------------------------------------------------ */

static bool cachetd_connect(const char *path, int *out, char *err, size_t cap)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof sa.sun_path) {
        snprintf(err, cap, "socket path too long");
        return false;
    }
    memcpy(sa.sun_path, path, strlen(path) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        snprintf(err, cap, "connect %s: %s", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return false;
    }
    *out = fd;
    return true;
}

/* Sends req (taken over) and waits for the response to it; *resp (caller puts)
 * holds what pr borrows. Events are skipped (none come unless subscribed). */
static bool cachetd_call(int fd, json_object *req, json_object **resp, proto_response_t *pr,
                         char *err, size_t cap)
{
    *resp = NULL;
    if (req == NULL) {
        snprintf(err, cap, "out of memory");
        return false;
    }
    int64_t id = json_object_get_int64(json_object_object_get(req, "id"));
    proto_status_t st = proto_write_json(fd, req, NULL, 0);
    json_object_put(req);
    if (st != PROTO_OK) {
        snprintf(err, cap, "write: %s", proto_status_name(st));
        return false;
    }
    for (int skipped = 0; skipped <= BENCH_EVENTS_SKIP; skipped++) {
        json_object *msg = NULL;
        st = proto_read_json(fd, BENCH_IO_TIMEOUT, &msg, NULL, NULL);
        if (st != PROTO_OK) {
            snprintf(err, cap, "read: %s", proto_status_name(st));
            return false;
        }
        if (proto_is_event(msg)) {
            json_object_put(msg);
            continue;
        }
        if (proto_parse_response(msg, pr) != PROTO_OK || pr->id != id) {
            json_object_put(msg);
            snprintf(err, cap, "not the response to request %lld", (long long)id);
            return false;
        }
        if (pr->code != NULL) {
            snprintf(err, cap, "%s: %s", pr->code, pr->message != NULL ? pr->message : "");
            json_object_put(msg);
            return false;
        }
        *resp = msg;
        return true;
    }
    snprintf(err, cap, "too many events before the response");
    return false;
}

static bool cachetd_hello(int fd, char *err, size_t cap)
{
    json_object *resp;
    proto_response_t pr;
    if (!cachetd_call(fd, proto_hello_new(1, "cachet-bench-load"), &resp, &pr, err, cap))
        return false;
    json_object_put(resp);
    return true;
}

static bool cachetd_verify_pin(bench_t *b, char *err, size_t cap)
{
    int fd;
    if (!cachetd_connect(b->socket_path, &fd, err, cap))
        return false;
    bool ok = cachetd_hello(fd, err, cap);
    if (ok) {
        json_object *params = json_object_new_object();
        json_object *pin = json_object_new_string_len(b->pin, (int)b->pin_len);
        json_object *req = NULL;
        if (params != NULL && pin != NULL) {
            json_object_object_add(params, "pin", pin);
            req = proto_request_new(2, "verify-pin", params);
        } else {
            json_object_put(pin);
            json_object_put(params);
        }
        /* An extra reference, so that the PIN inside the request object can be
         * wiped once it is sent (proto_write_json wipes its serialised copy). */
        json_object *keep = req != NULL ? json_object_get(req) : NULL;
        json_object *resp = NULL;
        proto_response_t pr;
        ok = cachetd_call(fd, req, &resp, &pr, err, cap);
        if (keep != NULL) {
            proto_wipe_string(json_object_object_get(keep, "params"), "pin");
            json_object_put(keep);
        }
        json_object_put(resp);
    }
    close(fd);
    return ok;
}

static bool cachetd_setup(worker_t *w)
{
    if (!cachetd_connect(w->b->socket_path, &w->fd, w->err, sizeof w->err))
        return false;
    w->next_id = 1;
    return cachetd_hello(w->fd, w->err, sizeof w->err);
}

static bool cachetd_sign(worker_t *w, const uint8_t *digest)
{
    json_object *params = json_object_new_object();
    if (params == NULL)
        return false;
    json_object_object_add(params, "key", json_object_new_string(w->b->key));
    json_object_object_add(params, "mechanism", json_object_new_string("sha256"));
    if (!proto_add_b64(params, "data", digest, BENCH_DIGEST_LEN)) {
        json_object_put(params);
        return false;
    }
    json_object *resp;
    proto_response_t pr;
    if (!cachetd_call(w->fd, proto_request_new(++w->next_id, "sign-digest", params), &resp, &pr,
                      w->err, sizeof w->err))
        return false;
    uint8_t sig[BENCH_SIG_MAX];
    size_t len = 0;
    bool ok =
        proto_get_b64(pr.result, "signature", true, sig, sizeof sig, &len) == PROTO_OK && len > 0;
    if (!ok)
        snprintf(w->err, sizeof w->err, "no signature in the result");
    json_object_put(resp);
    return ok;
}

/* ---- direct side (PKCS#11 v2.40) ---------------------------------------------- */

static bool p11_rv(CK_RV rv, const char *what, char *err, size_t cap)
{
    if (rv == CKR_OK)
        return true;
    snprintf(err, cap, "%s: CKR 0x%08lx", what, (unsigned long)rv);
    return false;
}

static bool p11_load(bench_t *b, char *err, size_t cap)
{
    b->dl = dlopen(b->module_path, RTLD_NOW | RTLD_LOCAL);
    if (b->dl == NULL) {
        snprintf(err, cap, "dlopen %s: %s", b->module_path, dlerror());
        return false;
    }
    void *sym = dlsym(b->dl, "C_GetFunctionList");
    if (sym == NULL) {
        snprintf(err, cap, "%s: no C_GetFunctionList", b->module_path);
        return false;
    }
    CK_C_GetFunctionList get_list;
    memcpy(&get_list, &sym, sizeof get_list); /* POSIX dlsym: object pointer to function */
    if (!p11_rv(get_list(&b->f), "C_GetFunctionList", err, cap))
        return false;
    /* §5.4: several threads call the module; let it use the OS's locks. */
    CK_C_INITIALIZE_ARGS args = {.flags = CKF_OS_LOCKING_OK};
    if (!p11_rv(b->f->C_Initialize(&args), "C_Initialize", err, cap))
        return false;

    CK_SLOT_ID slots[BENCH_SLOTS_MAX];
    CK_ULONG n = BENCH_SLOTS_MAX;
    if (!p11_rv(b->f->C_GetSlotList(CK_TRUE, slots, &n), "C_GetSlotList", err, cap))
        return false;
    if (n > BENCH_SLOTS_MAX)
        n = BENCH_SLOTS_MAX;
    for (CK_ULONG i = 0; i < n; i++) {
        CK_TOKEN_INFO ti;
        if (b->f->C_GetTokenInfo(slots[i], &ti) != CKR_OK || !(ti.flags & CKF_TOKEN_INITIALIZED))
            continue;
        if (b->token_label != NULL) {
            /* labels are blank-padded to 32 characters (§3.2 CK_TOKEN_INFO) */
            size_t ll = strlen(b->token_label);
            size_t tl = sizeof ti.label;
            while (tl > 0 && ti.label[tl - 1] == ' ')
                tl--;
            if (ll != tl || memcmp(ti.label, b->token_label, ll) != 0)
                continue;
        }
        b->slot = slots[i];
        if (!p11_rv(b->f->C_OpenSession(b->slot, CKF_SERIAL_SESSION, NULL, NULL, &b->login_sess),
                    "C_OpenSession", err, cap))
            return false;
        CK_RV rv =
            b->f->C_Login(b->login_sess, CKU_USER, (CK_UTF8CHAR_PTR)b->pin, (CK_ULONG)b->pin_len);
        return rv == CKR_USER_ALREADY_LOGGED_IN || p11_rv(rv, "C_Login", err, cap);
    }
    snprintf(err, cap, "no initialised token%s%s", b->token_label != NULL ? " labelled " : "",
             b->token_label != NULL ? b->token_label : "");
    return false;
}

static void p11_unload(bench_t *b)
{
    if (b->f != NULL) {
        if (b->login_sess != CK_INVALID_HANDLE) {
            b->f->C_Logout(b->login_sess);
            b->f->C_CloseSession(b->login_sess);
        }
        b->f->C_Finalize(NULL);
    }
    if (b->dl != NULL)
        dlclose(b->dl);
}

static bool direct_setup(worker_t *w)
{
    bench_t *b = w->b;
    if (!p11_rv(b->f->C_OpenSession(b->slot, CKF_SERIAL_SESSION, NULL, NULL, &w->sess),
                "C_OpenSession", w->err, sizeof w->err))
        return false;
    CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
    CK_ATTRIBUTE tmpl[] = {{CKA_CLASS, &cls, sizeof cls}, {CKA_ID, b->key_id, sizeof b->key_id}};
    CK_ULONG n = 0;
    if (!p11_rv(b->f->C_FindObjectsInit(w->sess, tmpl, 2), "C_FindObjectsInit", w->err,
                sizeof w->err))
        return false;
    CK_RV rv = b->f->C_FindObjects(w->sess, &w->key, 1, &n);
    b->f->C_FindObjectsFinal(w->sess);
    if (!p11_rv(rv, "C_FindObjects", w->err, sizeof w->err))
        return false;
    if (n != 1) {
        snprintf(w->err, sizeof w->err, "no private key with CKA_ID %02x", b->key_id[0]);
        return false;
    }
    return true;
}

static bool direct_sign(worker_t *w, const uint8_t *digest)
{
    CK_FUNCTION_LIST_PTR f = w->b->f;
    uint8_t di[sizeof bench_di_sha256 + BENCH_DIGEST_LEN];
    memcpy(di, bench_di_sha256, sizeof bench_di_sha256);
    memcpy(di + sizeof bench_di_sha256, digest, BENCH_DIGEST_LEN);
    CK_MECHANISM m = {CKM_RSA_PKCS, NULL, 0};
    uint8_t sig[BENCH_SIG_MAX];
    CK_ULONG len = sizeof sig;
    if (!p11_rv(f->C_SignInit(w->sess, &m, w->key), "C_SignInit", w->err, sizeof w->err))
        return false;
    if (!p11_rv(f->C_Sign(w->sess, di, sizeof di, sig, &len), "C_Sign", w->err, sizeof w->err))
        return false;
    if (len == 0 || len > sizeof sig) {
        snprintf(w->err, sizeof w->err, "C_Sign: bad signature length");
        return false;
    }
    return true;
}

/* ---- the run ------------------------------------------------------------------ */

static bool sign_once(worker_t *w, uint64_t n)
{
    uint8_t d[BENCH_DIGEST_LEN];
    make_digest(d, w->idx, n);
    return w->b->target == TARGET_CACHETD ? cachetd_sign(w, d) : direct_sign(w, d);
}

static void *worker_main(void *arg)
{
    worker_t *w = arg;
    bench_t *b = w->b;
    bool ok = b->target == TARGET_CACHETD ? cachetd_setup(w) : direct_setup(w);
    for (long i = 0; ok && i < b->warmup; i++)
        ok = sign_once(w, (uint64_t)i);
    w->failed = !ok;
    pthread_barrier_wait(&b->start);
    /* Bounded by the tickets (count) and the deadline. */
    while (!w->failed && now_ns() < b->deadline_ns) {
        unsigned long long t = atomic_fetch_add(&b->next, 1);
        if (t >= (unsigned long long)b->count)
            break;
        uint64_t t0 = now_ns();
        bool r = sign_once(w, 1000000u + t);
        uint64_t t1 = now_ns();
        b->lat_ns[t] = r ? t1 - t0 : BENCH_LAT_FAILED;
        w->t_end_ns = t1;
        if (!r) {
            atomic_fetch_add(&b->errors, 1);
            break; /* the connection or session may be out of step */
        }
    }
    return NULL;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of sorted v[0..n). */
static uint64_t percentile(const uint64_t *v, size_t n, unsigned pct)
{
    size_t rank = (n * pct + 99) / 100;
    return v[rank > 0 ? rank - 1 : 0];
}

static int usage(void)
{
    fputs("usage: cachet-bench-load --target cachetd --socket PATH\n"
          "       cachet-bench-load --target direct --module PKCS11.so [--token LABEL]\n"
          "         [--key auth|sign] [--clients N] [--count N] [--seconds S] [--warmup N]\n"
          "         --pin-fd FD    (the user PIN: the first line read from FD)\n",
          stderr);
    return 2;
}

static bool parse_long(const char *s, long min, long max, long *out)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
        return false;
    *out = v;
    return true;
}

static bool read_pin(bench_t *b)
{
    char buf[BENCH_PIN_MAX + 2];
    size_t n = 0;
    while (n < sizeof buf) {
        ssize_t r = read(b->pin_fd, buf + n, 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0 || buf[n] == '\n')
            break;
        n++;
    }
    bool ok = n > 0 && n <= BENCH_PIN_MAX;
    if (ok) {
        memcpy(b->pin, buf, n);
        b->pin[n] = '\0';
        b->pin_len = n;
    }
    wipe(buf, sizeof buf);
    return ok;
}

int main(int argc, char **argv)
{
    static bench_t b = {.key = "auth",
                        .clients = 1,
                        .count = 1000,
                        .seconds = 10,
                        .warmup = 2,
                        .pin_fd = -1,
                        .login_sess = CK_INVALID_HANDLE};
    const char *target = NULL;
    /* Every option takes a value: --name VALUE pairs. */
    for (int i = 1; i < argc; i += 2) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (v == NULL)
            return usage();
        long pin_fd = -1;
        if (strcmp(a, "--target") == 0)
            target = v;
        else if (strcmp(a, "--socket") == 0)
            b.socket_path = v;
        else if (strcmp(a, "--module") == 0)
            b.module_path = v;
        else if (strcmp(a, "--token") == 0)
            b.token_label = v;
        else if (strcmp(a, "--key") == 0)
            b.key = v;
        else if (strcmp(a, "--clients") == 0 && parse_long(v, 1, BENCH_CLIENTS_MAX, &b.clients))
            ;
        else if (strcmp(a, "--count") == 0 && parse_long(v, 1, BENCH_COUNT_MAX, &b.count))
            ;
        else if (strcmp(a, "--seconds") == 0 && parse_long(v, 1, BENCH_SECONDS_MAX, &b.seconds))
            ;
        else if (strcmp(a, "--warmup") == 0 && parse_long(v, 0, BENCH_WARMUP_MAX, &b.warmup))
            ;
        else if (strcmp(a, "--pin-fd") == 0 && parse_long(v, 0, 1023, &pin_fd))
            b.pin_fd = (int)pin_fd;
        else
            return usage();
    }
    if (target != NULL && strcmp(target, "cachetd") == 0 && b.socket_path != NULL)
        b.target = TARGET_CACHETD;
    else if (target != NULL && strcmp(target, "direct") == 0 && b.module_path != NULL)
        b.target = TARGET_DIRECT;
    else
        return usage();
    /* Key ids of the test tokens (tests/sim/softhsm/make-token.sh, as on a CPS3:
     * spec/cpx-card.md part A): 02 authentication, 01 signature. */
    if (strcmp(b.key, "auth") == 0)
        b.key_id[0] = 0x02;
    else if (strcmp(b.key, "sign") == 0)
        b.key_id[0] = 0x01;
    else
        return usage();
    if (b.pin_fd < 0 || !read_pin(&b)) {
        fputs("cachet-bench-load: no PIN (--pin-fd FD, a line of 1 to 16 characters)\n", stderr);
        return 2;
    }

    char err[256] = "";
    bool ok = b.target == TARGET_CACHETD ? cachetd_verify_pin(&b, err, sizeof err)
                                         : p11_load(&b, err, sizeof err);
    wipe(b.pin, sizeof b.pin);
    b.pin_len = 0;
    worker_t *w = ok ? calloc((size_t)b.clients, sizeof *w) : NULL;
    pthread_t *th = ok ? calloc((size_t)b.clients, sizeof *th) : NULL;
    b.lat_ns = ok ? calloc((size_t)b.count, sizeof *b.lat_ns) : NULL;
    if (ok && (w == NULL || th == NULL || b.lat_ns == NULL)) {
        snprintf(err, sizeof err, "out of memory");
        ok = false;
    }
    long started = 0;
    if (ok && pthread_barrier_init(&b.start, NULL, (unsigned)b.clients + 1) != 0) {
        snprintf(err, sizeof err, "pthread_barrier_init failed");
        ok = false;
    }
    if (ok) {
        /* The deadline is set for real once everyone is ready; until then no
         * worker passes the barrier, so the value does not matter. */
        b.deadline_ns = UINT64_MAX;
        for (; started < b.clients; started++) {
            w[started] =
                (worker_t){.b = &b, .idx = (int)started, .fd = -1, .sess = CK_INVALID_HANDLE};
            if (pthread_create(&th[started], NULL, worker_main, &w[started]) != 0)
                break;
        }
        if (started < b.clients) {
            /* Cannot reach the barrier count: report and leave (threads block). */
            fprintf(stderr, "cachet-bench-load: could only start %ld threads\n", started);
            return 1;
        }
        b.t_start_ns = now_ns();
        b.deadline_ns = b.t_start_ns + (uint64_t)b.seconds * 1000000000u;
        pthread_barrier_wait(&b.start);
        for (long i = 0; i < started; i++)
            pthread_join(th[i], NULL);
    }

    uint64_t t_end = 0;
    long failed_setup = 0;
    for (long i = 0; i < started; i++) {
        if (w[i].failed) {
            failed_setup++;
            if (err[0] == '\0')
                snprintf(err, sizeof err, "client %ld: %s", i, w[i].err);
        } else if (w[i].err[0] != '\0' && err[0] == '\0') {
            snprintf(err, sizeof err, "client %ld: %s", i, w[i].err);
        }
        if (w[i].t_end_ns > t_end)
            t_end = w[i].t_end_ns;
        if (w[i].fd >= 0)
            close(w[i].fd);
        if (w[i].sess != CK_INVALID_HANDLE)
            b.f->C_CloseSession(w[i].sess);
    }

    int rc = 1;
    if (ok) {
        unsigned long long issued = atomic_load(&b.next);
        if (issued > (unsigned long long)b.count)
            issued = (unsigned long long)b.count;
        size_t n = 0;
        for (size_t i = 0; i < issued; i++)
            if (b.lat_ns[i] != BENCH_LAT_FAILED)
                b.lat_ns[n++] = b.lat_ns[i];
        qsort(b.lat_ns, n, sizeof *b.lat_ns, cmp_u64);
        double secs = t_end > b.t_start_ns ? (double)(t_end - b.t_start_ns) / 1e9 : 0.0;
        unsigned long long errors = atomic_load(&b.errors);
        printf("target=%s clients=%ld requests=%zu errors=%llu seconds=%.3f rps=%.1f "
               "p50_us=%.1f p99_us=%.1f max_us=%.1f\n",
               target, b.clients, n, errors + (unsigned long long)failed_setup, secs,
               secs > 0 ? (double)n / secs : 0.0,
               n > 0 ? (double)percentile(b.lat_ns, n, 50) / 1e3 : 0.0,
               n > 0 ? (double)percentile(b.lat_ns, n, 99) / 1e3 : 0.0,
               n > 0 ? (double)b.lat_ns[n - 1] / 1e3 : 0.0);
        rc = errors == 0 && failed_setup == 0 && n > 0 ? 0 : 1;
        pthread_barrier_destroy(&b.start);
    }
    if (err[0] != '\0')
        fprintf(stderr, "cachet-bench-load: %s\n", err);
    if (b.target == TARGET_DIRECT)
        p11_unload(&b);
    free(b.lat_ns);
    free(th);
    free(w);
    return rc;
}
