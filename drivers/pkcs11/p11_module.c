/* libcachet-pkcs11: a PKCS#11 v2.40 module that forwards to cachetd, the one
 * owner of the CPS card (ARCHITECTURE.md §1; docs/pkcs11.md for users).
 *
 * One slot (cachetd serves one reader): its token is the card cachetd has
 * bound, labelled with the practitioner's name; objects come from cachetd's
 * identity and certificates (p11_token.c); C_Sign becomes sign-digest
 * (docs/protocol.md §3.8), C_Login verify-pin (§3.5, NULL PIN on a PIN pad:
 * CKF_PROTECTED_AUTHENTICATION_PATH). Slot events come from a subscription
 * (§3.13) read without a thread of ours: drained at each call, or waited on by
 * C_WaitForSlotEvent.
 *
 * Locking (CKF_OS_LOCKING_OK): g.lock guards all state and is never held
 * during I/O; g.ev_lock is held by whoever reads the subscription socket.
 * Requests go over a small pool of connections (cachetd answers one request at
 * a time per connection), so a PIN typed on the appliance in one thread does
 * not stall another. Fork: pthread_atfork keeps the locks sane and the child
 * drops every inherited connection (a pid check catches clone() without
 * handlers); it reconnects on its next call. Runs inside other programs: no
 * exit, abort, stdout, signals or threads; one log line (stderr, or syslog with
 * CACHET_PKCS11_LOG=syslog) when cachetd cannot be reached. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "p11_client.h"
#include "p11_der.h"
#include "p11_reply.h"
#include "p11_token.h"
#include "proto.h"

#define SLOT_ID          ((CK_SLOT_ID)1)
#define POOL_MAX         4
#define SESSIONS_MAX     1024
#define CONNECT_MS       5000
#define QUERY_MS         15000  /* status, identity, certificates, logout */
#define CARD_OP_MS       180000 /* verify-pin, sign-digest: cachetd's own limit is 120 s */
#define STATUS_FRESH_MS  2000   /* tries-left and PIN pad: reused this long */
#define RECONNECT_MS     250    /* cachetd down: at most one connect() per this */
#define LOAD_RETRY_MS    1000
#define FINALIZE_WAIT_MS 5000
#define PIN_MIN          4
#define PIN_MAX          8

#define EXPORT __attribute__((visibility("default")))

typedef struct session {
    CK_SESSION_HANDLE handle;
    CK_FLAGS flags;
    uint64_t generation; /* of the token it was opened on */
    /* C_FindObjects */
    bool find_active;
    CK_OBJECT_HANDLE found[P11_OBJECTS_MAX];
    size_t nfound, next;
    /* C_Sign */
    bool sign_active;
    CK_MECHANISM_TYPE mech;
    p11_role_t role;
    size_t sig_len;
    EVP_MD_CTX *md;
    uint8_t buf[P11_SIG_MAX]; /* CKM_RSA_PKCS input */
    size_t buf_len;
    bool buf_over;
    struct session *next_s;
} session_t;

static struct {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    pthread_mutex_t ev_lock;
    bool initialized;
    bool finalizing;
    pid_t pid;
    char sock[P11_SOCK_PATH_MAX];
    int64_t next_id;
    /* cachetd and the reader */
    bool daemon_up;
    bool reader_present;
    bool pinpad;
    char reader[P11_TEXT_MAX + 1];
    int tries_left;
    bool pin_verified;
    struct timespec status_at;
    bool status_valid;
    struct timespec last_connect;
    bool logged_unreachable;
    bool logged_protocol;
    bool need_status; /* a reply said the card left: ask cachetd how things are */
    bool baseline_done;
    /* the card and its token */
    bool card_seen;   /* cachetd has a bound card */
    bool token_dirty; /* its objects must be (re)loaded */
    bool loading;
    struct timespec load_failed_at;
    bool load_failed;
    char serial[P11_SERIAL_MAX + 1];
    p11_token_t *token; /* non-NULL: the token is present */
    uint64_t generation;
    bool logged_in;
    bool slot_event;
    /* sessions */
    session_t *sessions;
    size_t nsessions;
    CK_SESSION_HANDLE next_handle;
    /* connections */
    int pool[POOL_MAX];
    size_t npool;
    int sub_fd;
    int wake[2];
    int waiters;
} g = {
    .lock = PTHREAD_MUTEX_INITIALIZER,
    .cond = PTHREAD_COND_INITIALIZER,
    .ev_lock = PTHREAD_MUTEX_INITIALIZER,
    .sub_fd = -1,
    .wake = {-1, -1},
};

static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

/* ---- small helpers ------------------------------------------------------- */

static void p11_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void p11_log(const char *fmt, ...)
{
    const char *where = getenv("CACHET_PKCS11_LOG");
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (where != NULL && (strcmp(where, "off") == 0 || strcmp(where, "none") == 0))
        return;
    if (where != NULL && strcmp(where, "syslog") == 0) {
        /* No openlog(): the host program's identity and options stay its own. */
        syslog(LOG_USER | LOG_WARNING, "cachet-pkcs11: %s", line);
        return;
    }
    fprintf(stderr, "cachet-pkcs11: %s\n", line);
}

static struct timespec now_mono(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t;
}

static int64_t ms_since(struct timespec t)
{
    struct timespec n = now_mono();
    return (int64_t)(n.tv_sec - t.tv_sec) * 1000 + (n.tv_nsec - t.tv_nsec) / 1000000;
}

static void close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

/* ---- fork ------------------------------------------------------------------ */

/* In a child, every inherited connection belongs to the parent: close our copies
 * (the parent's stay open: no shutdown()), and reconnect when needed. */
static void forget_connections_locked(void)
{
    for (size_t i = 0; i < g.npool; i++)
        close_fd(&g.pool[i]);
    g.npool = 0;
    close_fd(&g.sub_fd);
    close_fd(&g.wake[0]);
    close_fd(&g.wake[1]);
    g.waiters = 0;
    g.loading = false;
    g.pid = getpid();
}

static void atfork_prepare(void)
{
    pthread_mutex_lock(&g.lock);
}

static void atfork_parent(void)
{
    pthread_mutex_unlock(&g.lock);
}

static void atfork_child(void)
{
    /* The child has one thread: locks another thread held are reset. */
    pthread_mutex_init(&g.ev_lock, NULL);
    pthread_cond_init(&g.cond, NULL);
    if (g.initialized)
        forget_connections_locked();
    pthread_mutex_unlock(&g.lock);
}

static void register_atfork(void)
{
    pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
}

static void fork_check_locked(void)
{
    if (g.initialized && g.pid != getpid())
        forget_connections_locked();
}

/* ---- connections -------------------------------------------------------------- */

static void note_unreachable(int err)
{
    pthread_mutex_lock(&g.lock);
    bool first = !g.logged_unreachable;
    g.logged_unreachable = true;
    char path[P11_SOCK_PATH_MAX];
    memcpy(path, g.sock, sizeof path);
    pthread_mutex_unlock(&g.lock);
    if (first)
        p11_log("cachetd is not reachable at %s (%s): the Cachet slot stays empty until "
                "cachetd runs",
                path, err != 0 ? strerror(err) : "no answer");
}

static void note_protocol(const char *what)
{
    pthread_mutex_lock(&g.lock);
    bool first = !g.logged_protocol;
    g.logged_protocol = true;
    pthread_mutex_unlock(&g.lock);
    if (first)
        p11_log("cachetd sent an answer this module does not understand (%s)", what);
}

static int conn_get(void)
{
    pthread_mutex_lock(&g.lock);
    fork_check_locked();
    int fd = g.npool > 0 ? g.pool[--g.npool] : -1;
    char path[P11_SOCK_PATH_MAX];
    memcpy(path, g.sock, sizeof path);
    pthread_mutex_unlock(&g.lock);
    if (fd >= 0) {
        /* An idle connection has nothing to say: if it is readable, cachetd
         * closed it (restart) or it is out of step. */
        struct pollfd p = {.fd = fd, .events = POLLIN, .revents = 0};
        if (poll(&p, 1, 0) == 0)
            return fd;
        close(fd);
        fd = -1;
    }
    int err = 0;
    if (p11_connect(path, CONNECT_MS, &fd, &err) != P11_IO_OK) {
        note_unreachable(err);
        return -1;
    }
    return fd;
}

static void conn_put(int fd)
{
    pthread_mutex_lock(&g.lock);
    if (g.initialized && !g.finalizing && g.pid == getpid() && g.npool < POOL_MAX) {
        g.pool[g.npool++] = fd;
        fd = -1;
    }
    pthread_mutex_unlock(&g.lock);
    close_fd(&fd);
}

static int64_t next_id(void)
{
    pthread_mutex_lock(&g.lock);
    int64_t id = ++g.next_id;
    if (g.next_id >= PROTO_INT_MAX)
        g.next_id = 1;
    pthread_mutex_unlock(&g.lock);
    return id + 1; /* 1 is hello's */
}

/* One request on a pooled connection (params taken over, its "pin" wiped).
 * A request that could not be sent (a stale pooled connection: cachetd
 * restarted) is sent once more on a fresh one. */
static p11_io_t rpc(const char *method, json_object *params, int timeout_ms, p11_msg_t *reply)
{
    p11_io_t io = P11_IO_UNREACHABLE;
    memset(reply, 0, sizeof *reply);
    for (int attempt = 0; attempt < 2; attempt++) {
        int fd = conn_get();
        if (fd < 0) {
            io = P11_IO_UNREACHABLE;
            break;
        }
        json_object *p = NULL;
        if (params != NULL && json_object_deep_copy(params, &p, NULL) != 0) {
            close_fd(&fd);
            io = P11_IO_NOMEM;
            break;
        }
        io = p11_call(fd, next_id(), method, p, timeout_ms, reply, NULL, NULL);
        if (io == P11_IO_OK) {
            conn_put(fd);
            break;
        }
        close_fd(&fd);
        if (io != P11_IO_UNREACHABLE)
            break;
    }
    if (params != NULL) {
        proto_wipe_string(params, "pin");
        json_object_put(params);
    }
    if (io == P11_IO_PROTOCOL)
        note_protocol(method);
    return io;
}

/* ---- slot state --------------------------------------------------------------- */

static void session_reset_sign(session_t *s)
{
    s->sign_active = false;
    EVP_MD_CTX_free(s->md);
    s->md = NULL;
    explicit_bzero(s->buf, sizeof s->buf);
    s->buf_len = 0;
    s->buf_over = false;
}

/* The card left (or cachetd did): sessions on it are dead, login is gone. */
static void removal_locked(void)
{
    bool had = g.card_seen || g.token != NULL;
    free(g.token);
    g.token = NULL;
    g.card_seen = false;
    g.token_dirty = false;
    g.load_failed = false;
    g.serial[0] = '\0';
    g.logged_in = false;
    g.status_valid = false;
    if (had) {
        g.generation++;
        g.slot_event = true;
    }
}

static void card_ready_locked(const char *serial)
{
    if (g.card_seen && strcmp(g.serial, serial) == 0)
        return; /* the same insertion, seen twice (status, then its event) */
    removal_locked();
    g.card_seen = true;
    g.token_dirty = true;
    g.load_failed = false;
    p11_copy_text(g.serial, sizeof g.serial, serial);
    g.generation++;
    g.slot_event = true;
}

static void apply_status_locked(const p11_status_t *st)
{
    bool was_present = g.reader_present;
    g.daemon_up = true;
    g.reader_present = st->reader_present;
    g.pinpad = st->pinpad;
    p11_copy_text(g.reader, sizeof g.reader, st->reader);
    g.tries_left = st->tries_left;
    g.pin_verified = st->pin_verified;
    g.status_at = now_mono();
    g.status_valid = true;
    if (was_present != g.reader_present)
        g.slot_event = true;
    if (st->card_present && st->card_ready && st->serial[0] != '\0')
        card_ready_locked(st->serial);
    else if (!st->busy)
        removal_locked();
}

static void apply_event_locked(const p11_event_t *ev)
{
    switch (ev->kind) {
    case P11_EV_CARD_INSERTED:
        g.reader_present = true;
        if (ev->ready && ev->serial[0] != '\0')
            card_ready_locked(ev->serial);
        else
            removal_locked();
        g.slot_event = true;
        break;
    case P11_EV_CARD_REMOVED:
        removal_locked();
        g.slot_event = true;
        break;
    case P11_EV_READER_GONE:
        removal_locked();
        g.reader_present = false;
        g.slot_event = true;
        break;
    case P11_EV_READER_ADDED:
        g.reader_present = true;
        g.slot_event = true;
        break;
    case P11_EV_OTHER:
        break;
    }
}

/* cachetd went away (or cannot be reached). */
static void daemon_down_locked(void)
{
    removal_locked();
    if (g.daemon_up || g.reader_present)
        g.slot_event = true;
    g.daemon_up = false;
    g.reader_present = false;
    g.pinpad = false;
    g.reader[0] = '\0';
}

/* status (§3.2), applied to the slot. */
static bool refresh_status(void)
{
    p11_msg_t m;
    p11_io_t io = rpc("status", NULL, QUERY_MS, &m);
    if (io != P11_IO_OK) {
        if (io == P11_IO_UNREACHABLE || io == P11_IO_BROKEN) {
            pthread_mutex_lock(&g.lock);
            daemon_down_locked();
            pthread_mutex_unlock(&g.lock);
        }
        return false;
    }
    p11_status_t st;
    bool ok = m.kind == P11_MSG_RESULT && p11_decode_status(m.result, &st);
    p11_msg_free(&m);
    if (!ok) {
        note_protocol("status");
        return false;
    }
    pthread_mutex_lock(&g.lock);
    apply_status_locked(&st);
    pthread_mutex_unlock(&g.lock);
    return true;
}

/* Holding ev_lock: events waiting on the subscription, applied (timeout_ms 0:
 * only what is there). False if the subscription broke. */
static bool drain_events(int fd, int timeout_ms)
{
    for (int i = 0; i < 256; i++) {
        struct pollfd p = {.fd = fd, .events = POLLIN, .revents = 0};
        int n = poll(&p, 1, i == 0 ? timeout_ms : 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return n == 0;
        p11_msg_t m;
        p11_io_t io = p11_read_msg(fd, 2000, &m);
        if (io != P11_IO_OK)
            return false;
        p11_event_t ev;
        if (m.kind == P11_MSG_EVENT && p11_decode_event(&m, &ev)) {
            pthread_mutex_lock(&g.lock);
            apply_event_locked(&ev);
            pthread_mutex_unlock(&g.lock);
        }
        p11_msg_free(&m);
    }
    return true;
}

static void subscription_lost(void)
{
    pthread_mutex_lock(&g.lock);
    close_fd(&g.sub_fd);
    daemon_down_locked();
    pthread_mutex_unlock(&g.lock);
}

static void subscribe_now(const char *path);

/* Holding ev_lock: subscribe if not subscribed (at most every RECONNECT_MS),
 * then take the state as it is now (status). */
static void ensure_subscription(bool force)
{
    pthread_mutex_lock(&g.lock);
    fork_check_locked();
    bool have = g.sub_fd >= 0;
    bool too_soon = !force && g.last_connect.tv_sec != 0 && ms_since(g.last_connect) < RECONNECT_MS;
    if (!have && !too_soon)
        g.last_connect = now_mono();
    char path[P11_SOCK_PATH_MAX];
    memcpy(path, g.sock, sizeof path);
    bool first = !g.baseline_done;
    pthread_mutex_unlock(&g.lock);
    if (have || too_soon)
        return;
    subscribe_now(path);
    if (first) {
        /* The state found by the first look is where events start from:
         * C_WaitForSlotEvent reports changes after C_Initialize. */
        pthread_mutex_lock(&g.lock);
        g.slot_event = false;
        g.baseline_done = true;
        pthread_mutex_unlock(&g.lock);
    }
}

static void subscribe_now(const char *path)
{
    int fd = -1, err = 0;
    if (p11_connect(path, CONNECT_MS, &fd, &err) != P11_IO_OK) {
        note_unreachable(err);
        pthread_mutex_lock(&g.lock);
        daemon_down_locked();
        pthread_mutex_unlock(&g.lock);
        return;
    }
    p11_msg_t m;
    p11_io_t io = p11_call(fd, 2, "subscribe", NULL, QUERY_MS, &m, NULL, NULL);
    bool ok = io == P11_IO_OK && m.kind == P11_MSG_RESULT;
    p11_msg_free(&m);
    if (!ok) {
        close(fd);
        if (io == P11_IO_PROTOCOL)
            note_protocol("subscribe");
        return;
    }
    pthread_mutex_lock(&g.lock);
    if (g.pid != getpid() || !g.initialized) {
        pthread_mutex_unlock(&g.lock);
        close(fd);
        return;
    }
    g.sub_fd = fd;
    g.logged_unreachable = false; /* a later outage is worth one more line */
    pthread_mutex_unlock(&g.lock);
    /* Subscribed first, then the state: nothing falls between the two. */
    refresh_status();
}

/* Reads identity and certificates for a bound card (no card command). */
static void load_token(void)
{
    pthread_mutex_lock(&g.lock);
    for (;;) {
        if (!g.card_seen || !g.token_dirty) {
            pthread_mutex_unlock(&g.lock);
            return;
        }
        if (!g.loading)
            break;
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += QUERY_MS / 1000;
        if (pthread_cond_timedwait(&g.cond, &g.lock, &until) == ETIMEDOUT) {
            pthread_mutex_unlock(&g.lock);
            return;
        }
    }
    if (g.load_failed && ms_since(g.load_failed_at) < LOAD_RETRY_MS) {
        pthread_mutex_unlock(&g.lock);
        return;
    }
    g.loading = true;
    uint64_t gen = g.generation;
    pthread_mutex_unlock(&g.lock);

    p11_token_t *t = NULL;
    p11_identity_t *id = calloc(1, sizeof *id);
    p11_certs_t *certs = malloc(sizeof *certs);
    p11_msg_t m;
    bool ok = false;
    if (id != NULL && certs != NULL && rpc("identity", NULL, QUERY_MS, &m) == P11_IO_OK) {
        /* No identity (a card whose holder certificate is unreadable) still
         * gives a token with whatever certificates there are. */
        if (m.kind == P11_MSG_RESULT && !p11_decode_identity(m.result, id))
            memset(id, 0, sizeof *id);
        p11_msg_free(&m);
        if (rpc("certificates", NULL, QUERY_MS, &m) == P11_IO_OK) {
            size_t skipped = 0;
            if (m.kind == P11_MSG_RESULT && p11_decode_certificates(m.result, certs, &skipped)) {
                t = malloc(sizeof *t);
                ok = t != NULL && p11_token_build(t, id, certs) > 0;
            }
            p11_msg_free(&m);
        }
    }
    free(id);
    free(certs);

    pthread_mutex_lock(&g.lock);
    g.loading = false;
    if (ok && gen == g.generation && g.card_seen) {
        free(g.token);
        g.token = t;
        t = NULL;
        g.token_dirty = false;
        g.load_failed = false;
    } else if (!ok) {
        g.load_failed = true;
        g.load_failed_at = now_mono();
    }
    pthread_cond_broadcast(&g.cond);
    pthread_mutex_unlock(&g.lock);
    free(t);
}

/* Brings the slot up to date: events that arrived, a subscription when there
 * is none, the token's objects when a card was bound. Called without g.lock. */
static void sync_slot(void)
{
    pthread_mutex_lock(&g.lock);
    bool up = g.initialized && !g.finalizing;
    pthread_mutex_unlock(&g.lock);
    if (!up)
        return; /* the caller answers CKR_CRYPTOKI_NOT_INITIALIZED */
    if (pthread_mutex_trylock(&g.ev_lock) == 0) {
        /* (else a C_WaitForSlotEvent holds it and applies events as they come) */
        ensure_subscription(false);
        pthread_mutex_lock(&g.lock);
        int fd = g.sub_fd;
        pthread_mutex_unlock(&g.lock);
        if (fd >= 0 && !drain_events(fd, 0)) {
            subscription_lost();
            ensure_subscription(true); /* cachetd restarted: take the new one */
        }
        pthread_mutex_unlock(&g.ev_lock);
    }
    pthread_mutex_lock(&g.lock);
    bool ask = g.need_status && g.sub_fd >= 0 &&
               (!g.status_valid || ms_since(g.status_at) >= RECONNECT_MS);
    if (ask)
        g.need_status = false;
    pthread_mutex_unlock(&g.lock);
    if (ask)
        refresh_status();
    load_token();
}

/* ---- sessions -------------------------------------------------------------------- */

static CK_RV check_init_locked(void)
{
    if (!g.initialized || g.finalizing)
        return CKR_CRYPTOKI_NOT_INITIALIZED;
    fork_check_locked();
    return CKR_OK;
}

static session_t *session_find_locked(CK_SESSION_HANDLE h)
{
    for (session_t *s = g.sessions; s != NULL; s = s->next_s)
        if (s->handle == h)
            return s;
    return NULL;
}

/* The session, if it is still on the token in the slot. */
static CK_RV session_get_locked(CK_SESSION_HANDLE h, session_t **out)
{
    CK_RV rv = check_init_locked();
    if (rv != CKR_OK)
        return rv;
    session_t *s = session_find_locked(h);
    if (s == NULL)
        return CKR_SESSION_HANDLE_INVALID;
    /* A session whose token left is gone (§5.6); it says why until the
     * application closes it, also after the card came back. */
    if (s->generation != g.generation || g.token == NULL)
        return CKR_DEVICE_REMOVED;
    *out = s;
    return CKR_OK;
}

static void session_free(session_t *s)
{
    session_reset_sign(s);
    explicit_bzero(s, sizeof *s);
    free(s);
}

static void session_unlink_locked(session_t *s)
{
    for (session_t **pp = &g.sessions; *pp != NULL; pp = &(*pp)->next_s) {
        if (*pp == s) {
            *pp = s->next_s;
            g.nsessions--;
            break;
        }
    }
    /* §5.6: when the application's last session closes, it is logged out
     * (here: locally; the card's state is cachetd's and other clients'). */
    if (g.nsessions == 0)
        g.logged_in = false;
}

static CK_OBJECT_HANDLE object_handle_locked(size_t i)
{
    return (CK_OBJECT_HANDLE)(((g.generation & 0xFFFFFFu) << 5) | (i + 1));
}

static const p11_object_t *object_get_locked(CK_OBJECT_HANDLE h)
{
    if (g.token == NULL || h == 0)
        return NULL;
    if ((h >> 5) != (g.generation & 0xFFFFFFu))
        return NULL;
    size_t i = (size_t)(h & 31u);
    if (i == 0 || i > g.token->nobj)
        return NULL;
    const p11_object_t *o = &g.token->obj[i - 1];
    if (o->private_obj && !g.logged_in)
        return NULL; /* §4.4: private objects exist for the user only */
    return o;
}

/* ---- C_ functions: general ---------------------------------------------------------- */

static CK_FUNCTION_LIST function_list;

CK_RV C_Initialize(CK_VOID_PTR pInitArgs)
{
    if (pInitArgs != NULL) {
        CK_C_INITIALIZE_ARGS *a = pInitArgs;
        bool any = a->CreateMutex || a->DestroyMutex || a->LockMutex || a->UnlockMutex;
        bool all = a->CreateMutex && a->DestroyMutex && a->LockMutex && a->UnlockMutex;
        if (a->pReserved != NULL || (any && !all))
            return CKR_ARGUMENTS_BAD;
        /* §5.4: with the application's mutexes only (no CKF_OS_LOCKING_OK), we
         * would have to use them: this module locks with the OS only. */
        if (any && !(a->flags & CKF_OS_LOCKING_OK))
            return CKR_CANT_LOCK;
    }
    pthread_once(&atfork_once, register_atfork);
    pthread_mutex_lock(&g.lock);
    if (g.initialized) {
        pthread_mutex_unlock(&g.lock);
        return CKR_CRYPTOKI_ALREADY_INITIALIZED;
    }
    g.initialized = true;
    g.finalizing = false;
    g.pid = getpid();
    g.next_id = 2; /* 1: hello, 2: subscribe */
    g.next_handle = 1;
    g.tries_left = -1;
    g.npool = 0;
    g.sub_fd = -1;
    g.wake[0] = g.wake[1] = -1;
    g.logged_unreachable = false;
    g.logged_protocol = false;
    g.baseline_done = false;
    g.last_connect.tv_sec = 0;
    g.last_connect.tv_nsec = 0;
    if (!p11_socket_path(g.sock, sizeof g.sock))
        g.sock[0] = '\0';
    pthread_mutex_unlock(&g.lock);
    return CKR_OK;
}

CK_RV C_Finalize(CK_VOID_PTR pReserved)
{
    if (pReserved != NULL)
        return CKR_ARGUMENTS_BAD;
    pthread_mutex_lock(&g.lock);
    CK_RV rv = check_init_locked();
    if (rv != CKR_OK) {
        pthread_mutex_unlock(&g.lock);
        return rv;
    }
    g.finalizing = true;
    /* §5.4: a thread blocked in C_WaitForSlotEvent returns. */
    if (g.wake[1] >= 0) {
        ssize_t w = write(g.wake[1], "x", 1);
        (void)w;
    }
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += FINALIZE_WAIT_MS / 1000;
    while (g.waiters > 0 || g.loading)
        if (pthread_cond_timedwait(&g.cond, &g.lock, &until) == ETIMEDOUT)
            break;
    while (g.sessions != NULL) {
        session_t *s = g.sessions;
        g.sessions = s->next_s;
        session_free(s);
    }
    g.nsessions = 0;
    free(g.token);
    g.token = NULL;
    g.card_seen = false;
    g.token_dirty = false;
    g.logged_in = false;
    g.daemon_up = false;
    g.reader_present = false;
    g.status_valid = false;
    g.slot_event = false;
    for (size_t i = 0; i < g.npool; i++)
        close_fd(&g.pool[i]);
    g.npool = 0;
    bool waiter_left = g.waiters > 0;
    if (!waiter_left) {
        close_fd(&g.sub_fd);
        close_fd(&g.wake[0]);
        close_fd(&g.wake[1]);
    }
    g.initialized = false;
    pthread_mutex_unlock(&g.lock);
    return CKR_OK;
}

CK_RV C_GetInfo(CK_INFO_PTR pInfo)
{
    pthread_mutex_lock(&g.lock);
    CK_RV rv = check_init_locked();
    pthread_mutex_unlock(&g.lock);
    if (rv != CKR_OK)
        return rv;
    if (pInfo == NULL)
        return CKR_ARGUMENTS_BAD;
    memset(pInfo, 0, sizeof *pInfo);
    pInfo->cryptokiVersion.major = 2;
    pInfo->cryptokiVersion.minor = 40;
    p11_pad(pInfo->manufacturerID, sizeof pInfo->manufacturerID, "Cachet");
    pInfo->flags = 0;
    p11_pad(pInfo->libraryDescription, sizeof pInfo->libraryDescription,
            "Cachet CPS card (via cachetd)");
    pInfo->libraryVersion.major = 0;
    pInfo->libraryVersion.minor = 1;
    return CKR_OK;
}

EXPORT CK_RV C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR ppFunctionList)
{
    if (ppFunctionList == NULL)
        return CKR_ARGUMENTS_BAD;
    *ppFunctionList = &function_list;
    return CKR_OK;
}

/* ---- slots and tokens --------------------------------------------------------------- */

CK_RV C_GetSlotList(CK_BBOOL tokenPresent, CK_SLOT_ID_PTR pSlotList, CK_ULONG_PTR pulCount)
{
    pthread_mutex_lock(&g.lock);
    CK_RV rv = check_init_locked();
    pthread_mutex_unlock(&g.lock);
    if (rv != CKR_OK)
        return rv;
    if (pulCount == NULL)
        return CKR_ARGUMENTS_BAD;
    sync_slot();
    pthread_mutex_lock(&g.lock);
    /* One slot, always there (so that clients which list slots once, NSS and
     * p11-kit, see the token come and go in it); with tokenPresent only while
     * cachetd has a card: nothing when cachetd is not running. */
    CK_ULONG n = (tokenPresent && g.token == NULL) ? 0 : 1;
    if (pSlotList != NULL) {
        if (*pulCount < n)
            rv = CKR_BUFFER_TOO_SMALL;
        else if (n == 1)
            pSlotList[0] = SLOT_ID;
    }
    *pulCount = n;
    pthread_mutex_unlock(&g.lock);
    return rv;
}

/* Entry checks shared by the slot functions (PKCS#11 v2.40 §5.5): the library
 * is initialised, the slot is ours, the output pointer is there; then the
 * slot's state is brought up to date from cachetd. */
static CK_RV slot_call(CK_SLOT_ID slotID, const void *out)
{
    pthread_mutex_lock(&g.lock);
    CK_RV rv = check_init_locked();
    pthread_mutex_unlock(&g.lock);
    if (rv != CKR_OK)
        return rv;
    if (slotID != SLOT_ID)
        return CKR_SLOT_ID_INVALID;
    if (out == NULL)
        return CKR_ARGUMENTS_BAD;
    sync_slot();
    return CKR_OK;
}

CK_RV C_GetSlotInfo(CK_SLOT_ID slotID, CK_SLOT_INFO_PTR pInfo)
{
    CK_RV rv = slot_call(slotID, pInfo);
    if (rv != CKR_OK)
        return rv;
    pthread_mutex_lock(&g.lock);
    memset(pInfo, 0, sizeof *pInfo);
    const char *desc = g.reader[0] != '\0' ? g.reader
                       : !g.daemon_up      ? "Cachet (cachetd not running)"
                       : !g.reader_present ? "Cachet (no appliance connected)"
                                           : "Cachet CPS Appliance";
    p11_pad(pInfo->slotDescription, sizeof pInfo->slotDescription, desc);
    p11_pad(pInfo->manufacturerID, sizeof pInfo->manufacturerID, "Cachet");
    pInfo->flags = CKF_REMOVABLE_DEVICE | CKF_HW_SLOT | (g.token != NULL ? CKF_TOKEN_PRESENT : 0);
    pInfo->hardwareVersion.major = 0;
    pInfo->hardwareVersion.minor = 1;
    pInfo->firmwareVersion.major = 0;
    pInfo->firmwareVersion.minor = 1;
    pthread_mutex_unlock(&g.lock);
    return CKR_OK;
}

CK_RV C_GetTokenInfo(CK_SLOT_ID slotID, CK_TOKEN_INFO_PTR pInfo)
{
    CK_RV rv = slot_call(slotID, pInfo);
    if (rv != CKR_OK)
        return rv;
    pthread_mutex_lock(&g.lock);
    bool stale = g.token != NULL && (!g.status_valid || ms_since(g.status_at) > STATUS_FRESH_MS);
    pthread_mutex_unlock(&g.lock);
    if (stale) { /* tries left and the PIN pad: one status (an empty VERIFY) */
        refresh_status();
        load_token();
    }
    pthread_mutex_lock(&g.lock);
    if (g.token == NULL) {
        pthread_mutex_unlock(&g.lock);
        return CKR_TOKEN_NOT_PRESENT;
    }
    memset(pInfo, 0, sizeof *pInfo);
    p11_token_label(&g.token->id, g.serial, pInfo->label);
    p11_pad(pInfo->manufacturerID, sizeof pInfo->manufacturerID, "Cachet (cachetd)");
    char model[24];
    snprintf(model, sizeof model, "%s",
             g.token->id.card_type[0] != '\0' ? g.token->id.card_type : "CPS");
    p11_pad(pInfo->model, sizeof pInfo->model, model);
    p11_token_serial(g.serial, pInfo->serialNumber);
    CK_FLAGS f = CKF_LOGIN_REQUIRED | CKF_USER_PIN_INITIALIZED | CKF_TOKEN_INITIALIZED;
    if (g.pinpad)
        f |= CKF_PROTECTED_AUTHENTICATION_PATH;
    /* §3.2 CK_TOKEN_INFO: the PIN counter as the card reports it (3 tries). */
    if (g.tries_left == 0)
        f |= CKF_USER_PIN_LOCKED;
    else if (g.tries_left == 1)
        f |= CKF_USER_PIN_FINAL_TRY | CKF_USER_PIN_COUNT_LOW;
    else if (g.tries_left > 1 && g.tries_left < 3)
        f |= CKF_USER_PIN_COUNT_LOW;
    pInfo->flags = f;
    pInfo->ulMaxSessionCount = CK_EFFECTIVELY_INFINITE;
    pInfo->ulMaxRwSessionCount = CK_EFFECTIVELY_INFINITE;
    CK_ULONG n = 0, rw = 0;
    for (session_t *s = g.sessions; s != NULL; s = s->next_s) {
        if (s->generation != g.generation)
            continue;
        n++;
        if (s->flags & CKF_RW_SESSION)
            rw++;
    }
    pInfo->ulSessionCount = n;
    pInfo->ulRwSessionCount = rw;
    pInfo->ulMinPinLen = PIN_MIN;
    pInfo->ulMaxPinLen = PIN_MAX;
    pInfo->ulTotalPublicMemory = CK_UNAVAILABLE_INFORMATION;
    pInfo->ulFreePublicMemory = CK_UNAVAILABLE_INFORMATION;
    pInfo->ulTotalPrivateMemory = CK_UNAVAILABLE_INFORMATION;
    pInfo->ulFreePrivateMemory = CK_UNAVAILABLE_INFORMATION;
    pInfo->hardwareVersion.major = 3; /* CPS3 */
    pInfo->firmwareVersion.major = 0;
    pInfo->firmwareVersion.minor = 1;
    memset(pInfo->utcTime, ' ', sizeof pInfo->utcTime);
    pthread_mutex_unlock(&g.lock);
    return CKR_OK;
}

CK_RV C_WaitForSlotEvent(CK_FLAGS flags, CK_SLOT_ID_PTR pSlot, CK_VOID_PTR pReserved)
{
    pthread_mutex_lock(&g.lock);
    CK_RV rv = check_init_locked();
    if (rv != CKR_OK || pSlot == NULL || pReserved != NULL) {
        pthread_mutex_unlock(&g.lock);
        return rv != CKR_OK ? rv : CKR_ARGUMENTS_BAD;
    }
    if (g.slot_event) {
        g.slot_event = false;
        *pSlot = SLOT_ID;
        pthread_mutex_unlock(&g.lock);
        return CKR_OK;
    }
    pthread_mutex_unlock(&g.lock);

    if (flags & CKF_DONT_BLOCK) {
        sync_slot();
        pthread_mutex_lock(&g.lock);
        rv = CKR_NO_EVENT;
        if (g.slot_event) {
            g.slot_event = false;
            *pSlot = SLOT_ID;
            rv = CKR_OK;
        }
        pthread_mutex_unlock(&g.lock);
        return rv;
    }

    pthread_mutex_lock(&g.lock);
    g.waiters++;
    if (g.wake[0] < 0 && pipe2(g.wake, O_CLOEXEC | O_NONBLOCK) != 0)
        g.wake[0] = g.wake[1] = -1;
    pthread_mutex_unlock(&g.lock);

    rv = CKR_NO_EVENT;
    while (rv == CKR_NO_EVENT) {
        pthread_mutex_lock(&g.ev_lock);
        pthread_mutex_lock(&g.lock);
        bool stop = g.finalizing || !g.initialized || g.pid != getpid();
        pthread_mutex_unlock(&g.lock);
        if (stop) {
            pthread_mutex_unlock(&g.ev_lock);
            rv = CKR_CRYPTOKI_NOT_INITIALIZED;
            break;
        }
        ensure_subscription(false);
        pthread_mutex_lock(&g.lock);
        int sub = g.sub_fd, wake = g.wake[0];
        pthread_mutex_unlock(&g.lock);
        struct pollfd p[2] = {{.fd = wake, .events = POLLIN, .revents = 0},
                              {.fd = sub, .events = POLLIN, .revents = 0}};
        /* Without cachetd, look again every second: it may start. */
        int n = poll(p, 2, sub >= 0 ? -1 : 1000);
        if (n > 0 && (p[1].revents & (POLLIN | POLLHUP | POLLERR)) && !drain_events(sub, 0))
            subscription_lost();
        pthread_mutex_unlock(&g.ev_lock);
        pthread_mutex_lock(&g.lock);
        if (g.finalizing || !g.initialized) {
            rv = CKR_CRYPTOKI_NOT_INITIALIZED;
        } else if (g.slot_event) {
            g.slot_event = false;
            *pSlot = SLOT_ID;
            rv = CKR_OK;
        }
        pthread_mutex_unlock(&g.lock);
        if (n < 0 && errno != EINTR && rv == CKR_NO_EVENT)
            rv = CKR_FUNCTION_FAILED;
    }

    pthread_mutex_lock(&g.lock);
    g.waiters--;
    if (g.waiters == 0 && !g.initialized) { /* C_Finalize left these to us */
        close_fd(&g.sub_fd);
        close_fd(&g.wake[0]);
        close_fd(&g.wake[1]);
    }
    pthread_cond_broadcast(&g.cond);
    pthread_mutex_unlock(&g.lock);
    return rv;
}

static const CK_MECHANISM_TYPE mechanisms[P11_MECHS] = {CKM_RSA_PKCS, CKM_SHA1_RSA_PKCS,
                                                        CKM_SHA256_RSA_PKCS};

CK_RV C_GetMechanismList(CK_SLOT_ID slotID, CK_MECHANISM_TYPE_PTR pMechanismList,
                         CK_ULONG_PTR pulCount)
{
    CK_RV rv = slot_call(slotID, pulCount);
    if (rv != CKR_OK)
        return rv;
    pthread_mutex_lock(&g.lock);
    if (g.token == NULL) {
        rv = CKR_TOKEN_NOT_PRESENT;
    } else if (pMechanismList != NULL && *pulCount < P11_MECHS) {
        rv = CKR_BUFFER_TOO_SMALL;
    } else if (pMechanismList != NULL) {
        memcpy(pMechanismList, mechanisms, sizeof mechanisms);
    }
    if (rv == CKR_OK || rv == CKR_BUFFER_TOO_SMALL)
        *pulCount = P11_MECHS;
    pthread_mutex_unlock(&g.lock);
    return rv;
}

CK_RV C_GetMechanismInfo(CK_SLOT_ID slotID, CK_MECHANISM_TYPE type, CK_MECHANISM_INFO_PTR pInfo)
{
    CK_RV rv = slot_call(slotID, pInfo);
    if (rv != CKR_OK)
        return rv;
    pthread_mutex_lock(&g.lock);
    if (g.token == NULL) {
        pthread_mutex_unlock(&g.lock);
        return CKR_TOKEN_NOT_PRESENT;
    }
    rv = CKR_MECHANISM_INVALID;
    for (size_t i = 0; i < P11_MECHS; i++) {
        if (mechanisms[i] != type)
            continue;
        size_t lo = 0, hi = 0;
        for (int r = P11_ROLE_AUTH; r <= P11_ROLE_SIGN; r++) {
            const p11_key_info_t *k = &g.token->key[r];
            if (!k->present)
                continue;
            if (lo == 0 || k->modulus_bits < lo)
                lo = k->modulus_bits;
            if (k->modulus_bits > hi)
                hi = k->modulus_bits;
        }
        pInfo->ulMinKeySize = (CK_ULONG)(lo != 0 ? lo : 1024);
        pInfo->ulMaxKeySize = (CK_ULONG)(hi != 0 ? hi : 4096);
        /* The card computes the signature (CKF_HW); the host only hashes. */
        pInfo->flags = CKF_HW | CKF_SIGN;
        rv = CKR_OK;
    }
    pthread_mutex_unlock(&g.lock);
    return rv;
}

/* ---- sessions -------------------------------------------------------------------- */

CK_RV C_OpenSession(CK_SLOT_ID slotID, CK_FLAGS flags, CK_VOID_PTR pApplication, CK_NOTIFY Notify,
                    CK_SESSION_HANDLE_PTR phSession)
{
    (void)pApplication;
    (void)Notify; /* no callbacks: nothing here is worth one */
    pthread_mutex_lock(&g.lock);
    CK_RV rv = check_init_locked();
    pthread_mutex_unlock(&g.lock);
    if (rv != CKR_OK)
        return rv;
    if (slotID != SLOT_ID)
        return CKR_SLOT_ID_INVALID;
    if (phSession == NULL)
        return CKR_ARGUMENTS_BAD;
    if (!(flags & CKF_SERIAL_SESSION))
        return CKR_SESSION_PARALLEL_NOT_SUPPORTED;
    sync_slot();
    session_t *s = calloc(1, sizeof *s);
    if (s == NULL)
        return CKR_HOST_MEMORY;
    pthread_mutex_lock(&g.lock);
    if (g.token == NULL) {
        rv = CKR_TOKEN_NOT_PRESENT;
    } else if (g.nsessions >= SESSIONS_MAX) {
        rv = CKR_SESSION_COUNT;
    } else {
        s->handle = g.next_handle++;
        if (g.next_handle == CK_INVALID_HANDLE)
            g.next_handle = 1;
        s->flags = flags & (CKF_SERIAL_SESSION | CKF_RW_SESSION);
        s->generation = g.generation;
        s->next_s = g.sessions;
        g.sessions = s;
        g.nsessions++;
        *phSession = s->handle;
        s = NULL;
    }
    pthread_mutex_unlock(&g.lock);
    free(s);
    return rv;
}

CK_RV C_CloseSession(CK_SESSION_HANDLE hSession)
{
    pthread_mutex_lock(&g.lock);
    CK_RV rv = check_init_locked();
    session_t *s = rv == CKR_OK ? session_find_locked(hSession) : NULL;
    if (rv == CKR_OK && s == NULL)
        rv = CKR_SESSION_HANDLE_INVALID;
    if (s != NULL) {
        session_unlink_locked(s);
        session_free(s);
    }
    pthread_mutex_unlock(&g.lock);
    return rv;
}

CK_RV C_CloseAllSessions(CK_SLOT_ID slotID)
{
    pthread_mutex_lock(&g.lock);
    CK_RV rv = check_init_locked();
    if (rv == CKR_OK && slotID != SLOT_ID)
        rv = CKR_SLOT_ID_INVALID;
    if (rv == CKR_OK) {
        while (g.sessions != NULL) {
            session_t *s = g.sessions;
            session_unlink_locked(s);
            session_free(s);
        }
    }
    pthread_mutex_unlock(&g.lock);
    return rv;
}

CK_RV C_GetSessionInfo(CK_SESSION_HANDLE hSession, CK_SESSION_INFO_PTR pInfo)
{
    if (pInfo == NULL)
        return CKR_ARGUMENTS_BAD;
    sync_slot();
    pthread_mutex_lock(&g.lock);
    session_t *s = NULL;
    CK_RV rv = session_get_locked(hSession, &s);
    if (rv == CKR_OK) {
        memset(pInfo, 0, sizeof *pInfo);
        pInfo->slotID = SLOT_ID;
        bool rw = (s->flags & CKF_RW_SESSION) != 0;
        pInfo->state = g.logged_in ? (rw ? CKS_RW_USER_FUNCTIONS : CKS_RO_USER_FUNCTIONS)
                                   : (rw ? CKS_RW_PUBLIC_SESSION : CKS_RO_PUBLIC_SESSION);
        pInfo->flags = s->flags;
        pInfo->ulDeviceError = 0;
    }
    pthread_mutex_unlock(&g.lock);
    return rv;
}

/* A session's call, after an error from cachetd that says the card left. */
static void card_gone_after(const char *code, uint64_t gen)
{
    if (code == NULL ||
        (strcmp(code, PROTO_E_CARD_REMOVED) != 0 && strcmp(code, PROTO_E_NO_CARD) != 0 &&
         strcmp(code, PROTO_E_NO_READER) != 0))
        return;
    pthread_mutex_lock(&g.lock);
    if (g.generation == gen)
        removal_locked();
    g.need_status = true; /* no event may follow (it may be read already) */
    pthread_mutex_unlock(&g.lock);
}

CK_RV C_Login(CK_SESSION_HANDLE hSession, CK_USER_TYPE userType, CK_UTF8CHAR_PTR pPin,
              CK_ULONG ulPinLen)
{
    sync_slot();
    pthread_mutex_lock(&g.lock);
    session_t *s = NULL;
    CK_RV rv = session_get_locked(hSession, &s);
    bool pinpad = g.pinpad, verified = g.pin_verified && g.status_valid;
    uint64_t gen = g.generation;
    if (rv == CKR_OK) {
        if (userType == CKU_SO)
            rv = CKR_USER_TYPE_INVALID; /* no SO on a CPS: the PUK is outside cachetd */
        else if (userType != CKU_USER && userType != CKU_CONTEXT_SPECIFIC)
            rv = CKR_USER_TYPE_INVALID;
        else if (userType == CKU_USER && g.logged_in)
            rv = CKR_USER_ALREADY_LOGGED_IN;
    }
    pthread_mutex_unlock(&g.lock);
    if (rv != CKR_OK)
        return rv;
    if (pPin == NULL && !pinpad)
        return CKR_ARGUMENTS_BAD; /* §5.6: NULL only with a protected authentication path */
    if (pPin != NULL && (ulPinLen < PIN_MIN || ulPinLen > PIN_MAX))
        return CKR_PIN_LEN_RANGE;
    if (pPin == NULL) { /* is the card verified already? (status: an empty VERIFY) */
        refresh_status();
        pthread_mutex_lock(&g.lock);
        verified = g.pin_verified && g.status_valid && g.generation == gen;
        pthread_mutex_unlock(&g.lock);
    }

    if (pPin == NULL && verified) {
        /* The PIN was typed on the appliance already for this insertion (the
         * card is shared through cachetd): no second prompt. */
        rv = CKR_OK;
    } else {
        json_object *params = json_object_new_object();
        if (params == NULL)
            return CKR_HOST_MEMORY;
        if (pPin != NULL) {
            char pin[PIN_MAX + 1];
            memcpy(pin, pPin, ulPinLen);
            pin[ulPinLen] = '\0';
            json_object *v = strlen(pin) == ulPinLen ? json_object_new_string(pin) : NULL;
            explicit_bzero(pin, sizeof pin);
            if (v == NULL) {
                json_object_put(params);
                return CKR_PIN_INVALID;
            }
            json_object_object_add(params, "pin", v);
        }
        p11_msg_t m;
        p11_io_t io = rpc("verify-pin", params, CARD_OP_MS, &m);
        if (io != P11_IO_OK) {
            rv = io == P11_IO_NOMEM ? CKR_HOST_MEMORY : CKR_DEVICE_ERROR;
        } else if (m.kind == P11_MSG_ERROR) {
            rv = p11_ckr_from_code(m.code, P11_OP_LOGIN);
            card_gone_after(m.code, gen);
            pthread_mutex_lock(&g.lock);
            if (m.tries_left >= 0 && g.generation == gen) {
                g.tries_left = m.tries_left;
                g.status_at = now_mono();
                g.status_valid = true;
            }
            pthread_mutex_unlock(&g.lock);
        }
        p11_msg_free(&m);
    }
    pthread_mutex_lock(&g.lock);
    if (rv == CKR_OK) {
        if (g.generation != gen) {
            rv = CKR_DEVICE_REMOVED;
        } else {
            g.logged_in = true;
            g.pin_verified = true;
            g.tries_left = -1;
            g.status_valid = false; /* tries left: asked again when shown */
        }
    }
    pthread_mutex_unlock(&g.lock);
    return rv;
}

CK_RV C_Logout(CK_SESSION_HANDLE hSession)
{
    sync_slot();
    pthread_mutex_lock(&g.lock);
    session_t *s = NULL;
    CK_RV rv = session_get_locked(hSession, &s);
    if (rv == CKR_OK && !g.logged_in)
        rv = CKR_USER_NOT_LOGGED_IN;
    if (rv == CKR_OK) {
        g.logged_in = false;
        g.pin_verified = false;
        g.status_valid = false;
        for (session_t *x = g.sessions; x != NULL; x = x->next_s)
            session_reset_sign(x);
    }
    pthread_mutex_unlock(&g.lock);
    if (rv != CKR_OK)
        return rv;
    /* The card's login is one for all its clients (cachetd, §3.6): logging out
     * locks it for everyone, as pulling the card would. */
    p11_msg_t m;
    if (rpc("logout", NULL, QUERY_MS, &m) == P11_IO_OK)
        p11_msg_free(&m);
    return CKR_OK;
}

/* ---- objects ------------------------------------------------------------------------ */

CK_RV C_FindObjectsInit(CK_SESSION_HANDLE hSession, CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulCount)
{
    if (pTemplate == NULL && ulCount > 0)
        return CKR_ARGUMENTS_BAD;
    sync_slot();
    pthread_mutex_lock(&g.lock);
    session_t *s = NULL;
    CK_RV rv = session_get_locked(hSession, &s);
    if (rv == CKR_OK && s->find_active)
        rv = CKR_OPERATION_ACTIVE;
    if (rv == CKR_OK) {
        s->nfound = 0;
        s->next = 0;
        for (size_t i = 0; i < g.token->nobj; i++) {
            const p11_object_t *o = &g.token->obj[i];
            if (o->private_obj && !g.logged_in)
                continue;
            if (p11_object_match(o, pTemplate, ulCount))
                s->found[s->nfound++] = object_handle_locked(i);
        }
        s->find_active = true;
    }
    pthread_mutex_unlock(&g.lock);
    return rv;
}

CK_RV C_FindObjects(CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE_PTR phObject,
                    CK_ULONG ulMaxObjectCount, CK_ULONG_PTR pulObjectCount)
{
    if (phObject == NULL || pulObjectCount == NULL)
        return CKR_ARGUMENTS_BAD;
    pthread_mutex_lock(&g.lock);
    session_t *s = NULL;
    CK_RV rv = session_get_locked(hSession, &s);
    if (rv == CKR_OK && !s->find_active)
        rv = CKR_OPERATION_NOT_INITIALIZED;
    if (rv == CKR_OK) {
        CK_ULONG n = 0;
        while (n < ulMaxObjectCount && s->next < s->nfound)
            phObject[n++] = s->found[s->next++];
        *pulObjectCount = n;
    }
    pthread_mutex_unlock(&g.lock);
    return rv;
}

CK_RV C_FindObjectsFinal(CK_SESSION_HANDLE hSession)
{
    pthread_mutex_lock(&g.lock);
    session_t *s = NULL;
    CK_RV rv = session_get_locked(hSession, &s);
    if (rv == CKR_OK && !s->find_active)
        rv = CKR_OPERATION_NOT_INITIALIZED;
    if (rv == CKR_OK)
        s->find_active = false;
    pthread_mutex_unlock(&g.lock);
    return rv;
}

CK_RV C_GetAttributeValue(CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE hObject,
                          CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulCount)
{
    if (pTemplate == NULL && ulCount > 0)
        return CKR_ARGUMENTS_BAD;
    pthread_mutex_lock(&g.lock);
    session_t *s = NULL;
    CK_RV rv = session_get_locked(hSession, &s);
    const p11_object_t *o = rv == CKR_OK ? object_get_locked(hObject) : NULL;
    if (rv == CKR_OK && o == NULL)
        rv = CKR_OBJECT_HANDLE_INVALID;
    if (rv == CKR_OK) {
        /* §5.7: every attribute is processed; one of the errors is returned. */
        for (CK_ULONG i = 0; i < ulCount; i++) {
            CK_RV r = p11_object_get(o, &pTemplate[i]);
            if (r != CKR_OK)
                rv = r;
        }
    }
    pthread_mutex_unlock(&g.lock);
    return rv;
}

CK_RV C_GetObjectSize(CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE hObject, CK_ULONG_PTR pulSize)
{
    if (pulSize == NULL)
        return CKR_ARGUMENTS_BAD;
    pthread_mutex_lock(&g.lock);
    session_t *s = NULL;
    CK_RV rv = session_get_locked(hSession, &s);
    if (rv == CKR_OK && object_get_locked(hObject) == NULL)
        rv = CKR_OBJECT_HANDLE_INVALID;
    if (rv == CKR_OK)
        *pulSize = CK_UNAVAILABLE_INFORMATION;
    pthread_mutex_unlock(&g.lock);
    return rv;
}

/* ---- signing ------------------------------------------------------------------------- */

CK_RV C_SignInit(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hKey)
{
    if (pMechanism == NULL)
        return CKR_ARGUMENTS_BAD;
    sync_slot();
    pthread_mutex_lock(&g.lock);
    session_t *s = NULL;
    CK_RV rv = session_get_locked(hSession, &s);
    const p11_object_t *k = rv == CKR_OK ? object_get_locked(hKey) : NULL;
    if (rv == CKR_OK && s->sign_active)
        rv = CKR_OPERATION_ACTIVE;
    else if (rv == CKR_OK && (k == NULL || k->cls != CKO_PRIVATE_KEY))
        rv = CKR_KEY_HANDLE_INVALID;
    else if (rv == CKR_OK && pMechanism->mechanism != CKM_RSA_PKCS &&
             pMechanism->mechanism != CKM_SHA1_RSA_PKCS &&
             pMechanism->mechanism != CKM_SHA256_RSA_PKCS)
        rv = CKR_MECHANISM_INVALID; /* no PSS: the card pads PKCS#1 v1.5 itself */
    else if (rv == CKR_OK && (pMechanism->pParameter != NULL || pMechanism->ulParameterLen != 0))
        rv = CKR_MECHANISM_PARAM_INVALID;
    if (rv == CKR_OK) {
        session_reset_sign(s);
        s->mech = pMechanism->mechanism;
        s->role = k->role;
        s->sig_len = g.token->key[k->role].modulus_len;
        if (s->mech != CKM_RSA_PKCS) {
            s->md = EVP_MD_CTX_new();
            EVP_MD *md = EVP_MD_fetch(NULL, s->mech == CKM_SHA1_RSA_PKCS ? "SHA1" : "SHA256", NULL);
            if (s->md == NULL || md == NULL || !EVP_DigestInit_ex2(s->md, md, NULL))
                rv = CKR_HOST_MEMORY;
            EVP_MD_free(md);
        }
        if (rv == CKR_OK)
            s->sign_active = true;
        else
            session_reset_sign(s);
    }
    pthread_mutex_unlock(&g.lock);
    return rv;
}

/* Adds data to the operation (locked). */
static CK_RV sign_update_locked(session_t *s, const uint8_t *data, size_t len)
{
    if (len == 0)
        return CKR_OK;
    if (s->md != NULL)
        return EVP_DigestUpdate(s->md, data, len) ? CKR_OK : CKR_FUNCTION_FAILED;
    if (len > sizeof s->buf - s->buf_len) {
        s->buf_over = true;
        return CKR_OK; /* reported as CKR_DATA_LEN_RANGE at the end */
    }
    memcpy(s->buf + s->buf_len, data, len);
    s->buf_len += len;
    return CKR_OK;
}

/* What goes to sign-digest for the operation's input (§3.8). */
static CK_RV sign_request_locked(session_t *s, const char **mech, uint8_t *in, size_t *in_len)
{
    if (s->md != NULL) {
        unsigned int n = 0;
        if (!EVP_DigestFinal_ex(s->md, in, &n))
            return CKR_FUNCTION_FAILED;
        *in_len = n;
        *mech = s->mech == CKM_SHA1_RSA_PKCS ? "sha1" : "sha256";
        return CKR_OK;
    }
    if (s->buf_over)
        return CKR_DATA_LEN_RANGE;
    if (s->buf_len == 0)
        return CKR_DATA_LEN_RANGE;
    size_t off = 0;
    p11_hash_t h = p11_der_digestinfo(s->buf, s->buf_len, &off);
    if (s->role == P11_ROLE_SIGN) {
        /* The signature key (PSO CDS) signs a hash and builds the DigestInfo
         * itself: a recognised DigestInfo is taken apart, anything else is
         * refused (issue 4; spec/cpx-card.md part A). */
        if (h == P11_HASH_NONE)
            return CKR_DATA_INVALID;
        *in_len = p11_hash_len(h);
        memcpy(in, s->buf + off, *in_len);
        *mech = h == P11_HASH_SHA1 ? "sha1" : "sha256";
        return CKR_OK;
    }
    /* The authentication key pads any input up to k - 11 bytes (RFC 8017
     * §9.2 step 3): TLS 1.2 client authentication. */
    if (s->sig_len < 11 || s->buf_len > s->sig_len - 11)
        return CKR_DATA_LEN_RANGE;
    memcpy(in, s->buf, s->buf_len);
    *in_len = s->buf_len;
    *mech = "rsa-pkcs";
    return CKR_OK;
}

/* Ends a sign operation: C_Sign and C_SignFinal. data: the last part (C_Sign). */
static CK_RV sign_finish(CK_SESSION_HANDLE hSession, const uint8_t *data, size_t data_len,
                         CK_BYTE_PTR pSignature, CK_ULONG_PTR pulSignatureLen, bool single)
{
    pthread_mutex_lock(&g.lock);
    session_t *s = NULL;
    CK_RV rv = session_get_locked(hSession, &s);
    if (rv == CKR_OK && !s->sign_active)
        rv = CKR_OPERATION_NOT_INITIALIZED;
    if (rv != CKR_OK) {
        pthread_mutex_unlock(&g.lock);
        return rv;
    }
    if (pulSignatureLen == NULL || (single && data == NULL && data_len > 0)) {
        session_reset_sign(s);
        pthread_mutex_unlock(&g.lock);
        return CKR_ARGUMENTS_BAD;
    }
    /* §5.2: a length query, or a buffer too small, leaves the operation active. */
    if (pSignature == NULL) {
        *pulSignatureLen = (CK_ULONG)s->sig_len;
        pthread_mutex_unlock(&g.lock);
        return CKR_OK;
    }
    if (*pulSignatureLen < s->sig_len) {
        *pulSignatureLen = (CK_ULONG)s->sig_len;
        pthread_mutex_unlock(&g.lock);
        return CKR_BUFFER_TOO_SMALL;
    }
    uint8_t in[P11_SIG_MAX];
    size_t in_len = 0;
    const char *mech = NULL;
    p11_role_t role = s->role;
    uint64_t gen = g.generation;
    rv = sign_update_locked(s, data, data_len);
    if (rv == CKR_OK)
        rv = sign_request_locked(s, &mech, in, &in_len);
    session_reset_sign(s); /* the operation ends here, whatever the card says */
    pthread_mutex_unlock(&g.lock);
    if (rv != CKR_OK)
        return rv;

    json_object *params = json_object_new_object();
    if (params == NULL ||
        json_object_object_add(
            params, "key", json_object_new_string(role == P11_ROLE_AUTH ? "auth" : "sign")) != 0 ||
        json_object_object_add(params, "mechanism", json_object_new_string(mech)) != 0 ||
        !proto_add_b64(params, "data", in, in_len)) {
        json_object_put(params);
        return CKR_HOST_MEMORY;
    }
    p11_msg_t m;
    p11_io_t io = rpc("sign-digest", params, CARD_OP_MS, &m);
    if (io != P11_IO_OK)
        return io == P11_IO_NOMEM ? CKR_HOST_MEMORY : CKR_DEVICE_ERROR;
    if (m.kind == P11_MSG_ERROR) {
        rv = p11_ckr_from_code(m.code, P11_OP_SIGN);
        card_gone_after(m.code, gen);
        if (strcmp(m.code, PROTO_E_PIN_REQUIRED) == 0) {
            pthread_mutex_lock(&g.lock);
            if (g.generation == gen)
                g.logged_in = false; /* someone logged the card out */
            pthread_mutex_unlock(&g.lock);
        }
        p11_msg_free(&m);
        return rv;
    }
    uint8_t sig[P11_SIG_MAX];
    size_t sig_len = 0;
    bool ok = p11_decode_signature(m.result, sig, sizeof sig, &sig_len);
    p11_msg_free(&m);
    if (!ok) {
        note_protocol("sign-digest");
        return CKR_DEVICE_ERROR;
    }
    if (sig_len > *pulSignatureLen)
        return CKR_DEVICE_ERROR; /* longer than the key: not a signature of it */
    memcpy(pSignature, sig, sig_len);
    *pulSignatureLen = (CK_ULONG)sig_len;
    return CKR_OK;
}

CK_RV C_Sign(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pData, CK_ULONG ulDataLen,
             CK_BYTE_PTR pSignature, CK_ULONG_PTR pulSignatureLen)
{
    sync_slot();
    /* A length query must not consume the data: sign_finish only adds it when
     * it signs. */
    return sign_finish(hSession, pData, ulDataLen, pSignature, pulSignatureLen, true);
}

CK_RV C_SignUpdate(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pPart, CK_ULONG ulPartLen)
{
    if (pPart == NULL && ulPartLen > 0)
        return CKR_ARGUMENTS_BAD;
    pthread_mutex_lock(&g.lock);
    session_t *s = NULL;
    CK_RV rv = session_get_locked(hSession, &s);
    if (rv == CKR_OK && !s->sign_active)
        rv = CKR_OPERATION_NOT_INITIALIZED;
    if (rv == CKR_OK) {
        rv = sign_update_locked(s, pPart, ulPartLen);
        if (rv != CKR_OK)
            session_reset_sign(s);
    }
    pthread_mutex_unlock(&g.lock);
    return rv;
}

CK_RV C_SignFinal(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pSignature, CK_ULONG_PTR pulSignatureLen)
{
    sync_slot();
    return sign_finish(hSession, NULL, 0, pSignature, pulSignatureLen, false);
}

/* ---- what this token does not do ------------------------------------------------------ */

CK_RV C_GenerateRandom(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pRandomData, CK_ULONG ulRandomLen)
{
    (void)pRandomData;
    (void)ulRandomLen;
    pthread_mutex_lock(&g.lock);
    session_t *s = NULL;
    CK_RV rv = session_get_locked(hSession, &s);
    pthread_mutex_unlock(&g.lock);
    return rv != CKR_OK ? rv : CKR_RANDOM_NO_RNG;
}

CK_RV C_SeedRandom(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pSeed, CK_ULONG ulSeedLen)
{
    (void)pSeed;
    (void)ulSeedLen;
    pthread_mutex_lock(&g.lock);
    session_t *s = NULL;
    CK_RV rv = session_get_locked(hSession, &s);
    pthread_mutex_unlock(&g.lock);
    return rv != CKR_OK ? rv : CKR_RANDOM_NO_RNG; /* §5.15: no RNG offered */
}

/* Read-only token objects (§4.4: CKA_MODIFIABLE and CKA_DESTROYABLE false). */
CK_RV C_SetAttributeValue(CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE hObject,
                          CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulCount)
{
    (void)hObject;
    (void)pTemplate;
    (void)ulCount;
    pthread_mutex_lock(&g.lock);
    session_t *s = NULL;
    CK_RV rv = session_get_locked(hSession, &s);
    pthread_mutex_unlock(&g.lock);
    return rv != CKR_OK ? rv : CKR_ACTION_PROHIBITED;
}

CK_RV C_DestroyObject(CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE hObject)
{
    (void)hObject;
    pthread_mutex_lock(&g.lock);
    session_t *s = NULL;
    CK_RV rv = session_get_locked(hSession, &s);
    pthread_mutex_unlock(&g.lock);
    return rv != CKR_OK ? rv : CKR_ACTION_PROHIBITED;
}

/* Every other entry point: CKR_FUNCTION_NOT_SUPPORTED (§5.1), with the
 * initialisation check first. */
#define UNSUPPORTED(name, params, ...)                                                             \
    static CK_RV name params                                                                       \
    {                                                                                              \
        __VA_ARGS__;                                                                               \
        pthread_mutex_lock(&g.lock);                                                               \
        CK_RV rv = check_init_locked();                                                            \
        pthread_mutex_unlock(&g.lock);                                                             \
        return rv != CKR_OK ? rv : CKR_FUNCTION_NOT_SUPPORTED;                                     \
    }

#define U(x) (void)(x)
UNSUPPORTED(ns_InitToken, (CK_SLOT_ID a, CK_UTF8CHAR_PTR b, CK_ULONG c, CK_UTF8CHAR_PTR d), U(a);
            U(b); U(c); U(d))
UNSUPPORTED(ns_InitPIN, (CK_SESSION_HANDLE a, CK_UTF8CHAR_PTR b, CK_ULONG c), U(a); U(b); U(c))
UNSUPPORTED(ns_SetPIN,
            (CK_SESSION_HANDLE a, CK_UTF8CHAR_PTR b, CK_ULONG c, CK_UTF8CHAR_PTR d, CK_ULONG e),
            U(a);
            U(b); U(c); U(d); U(e))
UNSUPPORTED(ns_GetOperationState, (CK_SESSION_HANDLE a, CK_BYTE_PTR b, CK_ULONG_PTR c), U(a); U(b);
            U(c))
UNSUPPORTED(ns_SetOperationState,
            (CK_SESSION_HANDLE a, CK_BYTE_PTR b, CK_ULONG c, CK_OBJECT_HANDLE d,
             CK_OBJECT_HANDLE e),
            U(a);
            U(b); U(c); U(d); U(e))
UNSUPPORTED(ns_CreateObject,
            (CK_SESSION_HANDLE a, CK_ATTRIBUTE_PTR b, CK_ULONG c, CK_OBJECT_HANDLE_PTR d), U(a);
            U(b); U(c); U(d))
UNSUPPORTED(ns_CopyObject,
            (CK_SESSION_HANDLE a, CK_OBJECT_HANDLE b, CK_ATTRIBUTE_PTR c, CK_ULONG d,
             CK_OBJECT_HANDLE_PTR e),
            U(a);
            U(b); U(c); U(d); U(e))
UNSUPPORTED(ns_Init, (CK_SESSION_HANDLE a, CK_MECHANISM_PTR b, CK_OBJECT_HANDLE c), U(a); U(b);
            U(c))
UNSUPPORTED(ns_DigestInit, (CK_SESSION_HANDLE a, CK_MECHANISM_PTR b), U(a); U(b))
UNSUPPORTED(ns_OneShot,
            (CK_SESSION_HANDLE a, CK_BYTE_PTR b, CK_ULONG c, CK_BYTE_PTR d, CK_ULONG_PTR e), U(a);
            U(b); U(c); U(d); U(e))
UNSUPPORTED(ns_Update, (CK_SESSION_HANDLE a, CK_BYTE_PTR b, CK_ULONG c), U(a); U(b); U(c))
UNSUPPORTED(ns_Final, (CK_SESSION_HANDLE a, CK_BYTE_PTR b, CK_ULONG_PTR c), U(a); U(b); U(c))
UNSUPPORTED(ns_DigestKey, (CK_SESSION_HANDLE a, CK_OBJECT_HANDLE b), U(a); U(b))
UNSUPPORTED(ns_VerifyFinal, (CK_SESSION_HANDLE a, CK_BYTE_PTR b, CK_ULONG c), U(a); U(b); U(c))
UNSUPPORTED(ns_Verify, (CK_SESSION_HANDLE a, CK_BYTE_PTR b, CK_ULONG c, CK_BYTE_PTR d, CK_ULONG e),
            U(a);
            U(b); U(c); U(d); U(e))
UNSUPPORTED(ns_GenerateKey,
            (CK_SESSION_HANDLE a, CK_MECHANISM_PTR b, CK_ATTRIBUTE_PTR c, CK_ULONG d,
             CK_OBJECT_HANDLE_PTR e),
            U(a);
            U(b); U(c); U(d); U(e))
UNSUPPORTED(ns_GenerateKeyPair,
            (CK_SESSION_HANDLE a, CK_MECHANISM_PTR b, CK_ATTRIBUTE_PTR c, CK_ULONG d,
             CK_ATTRIBUTE_PTR e, CK_ULONG f, CK_OBJECT_HANDLE_PTR h, CK_OBJECT_HANDLE_PTR i),
            U(a);
            U(b); U(c); U(d); U(e); U(f); U(h); U(i))
UNSUPPORTED(ns_WrapKey,
            (CK_SESSION_HANDLE a, CK_MECHANISM_PTR b, CK_OBJECT_HANDLE c, CK_OBJECT_HANDLE d,
             CK_BYTE_PTR e, CK_ULONG_PTR f),
            U(a);
            U(b); U(c); U(d); U(e); U(f))
UNSUPPORTED(ns_UnwrapKey,
            (CK_SESSION_HANDLE a, CK_MECHANISM_PTR b, CK_OBJECT_HANDLE c, CK_BYTE_PTR d, CK_ULONG e,
             CK_ATTRIBUTE_PTR f, CK_ULONG h, CK_OBJECT_HANDLE_PTR i),
            U(a);
            U(b); U(c); U(d); U(e); U(f); U(h); U(i))
UNSUPPORTED(ns_DeriveKey,
            (CK_SESSION_HANDLE a, CK_MECHANISM_PTR b, CK_OBJECT_HANDLE c, CK_ATTRIBUTE_PTR d,
             CK_ULONG e, CK_OBJECT_HANDLE_PTR f),
            U(a);
            U(b); U(c); U(d); U(e); U(f))
UNSUPPORTED(ns_GetFunctionStatus, (CK_SESSION_HANDLE a), U(a))
UNSUPPORTED(ns_CancelFunction, (CK_SESSION_HANDLE a), U(a))

static CK_FUNCTION_LIST function_list = {
    .version = {2, 40},
    .C_Initialize = C_Initialize,
    .C_Finalize = C_Finalize,
    .C_GetInfo = C_GetInfo,
    .C_GetFunctionList = C_GetFunctionList,
    .C_GetSlotList = C_GetSlotList,
    .C_GetSlotInfo = C_GetSlotInfo,
    .C_GetTokenInfo = C_GetTokenInfo,
    .C_GetMechanismList = C_GetMechanismList,
    .C_GetMechanismInfo = C_GetMechanismInfo,
    .C_InitToken = ns_InitToken,
    .C_InitPIN = ns_InitPIN,
    .C_SetPIN = ns_SetPIN,
    .C_OpenSession = C_OpenSession,
    .C_CloseSession = C_CloseSession,
    .C_CloseAllSessions = C_CloseAllSessions,
    .C_GetSessionInfo = C_GetSessionInfo,
    .C_GetOperationState = ns_GetOperationState,
    .C_SetOperationState = ns_SetOperationState,
    .C_Login = C_Login,
    .C_Logout = C_Logout,
    .C_CreateObject = ns_CreateObject,
    .C_CopyObject = ns_CopyObject,
    .C_DestroyObject = C_DestroyObject,
    .C_GetObjectSize = C_GetObjectSize,
    .C_GetAttributeValue = C_GetAttributeValue,
    .C_SetAttributeValue = C_SetAttributeValue,
    .C_FindObjectsInit = C_FindObjectsInit,
    .C_FindObjects = C_FindObjects,
    .C_FindObjectsFinal = C_FindObjectsFinal,
    .C_EncryptInit = ns_Init,
    .C_Encrypt = ns_OneShot,
    .C_EncryptUpdate = ns_OneShot,
    .C_EncryptFinal = ns_Final,
    .C_DecryptInit = ns_Init,
    .C_Decrypt = ns_OneShot,
    .C_DecryptUpdate = ns_OneShot,
    .C_DecryptFinal = ns_Final,
    .C_DigestInit = ns_DigestInit,
    .C_Digest = ns_OneShot,
    .C_DigestUpdate = ns_Update,
    .C_DigestKey = ns_DigestKey,
    .C_DigestFinal = ns_Final,
    .C_SignInit = C_SignInit,
    .C_Sign = C_Sign,
    .C_SignUpdate = C_SignUpdate,
    .C_SignFinal = C_SignFinal,
    .C_SignRecoverInit = ns_Init,
    .C_SignRecover = ns_OneShot,
    .C_VerifyInit = ns_Init,
    .C_Verify = ns_Verify,
    .C_VerifyUpdate = ns_Update,
    .C_VerifyFinal = ns_VerifyFinal,
    .C_VerifyRecoverInit = ns_Init,
    .C_VerifyRecover = ns_OneShot,
    .C_DigestEncryptUpdate = ns_OneShot,
    .C_DecryptDigestUpdate = ns_OneShot,
    .C_SignEncryptUpdate = ns_OneShot,
    .C_DecryptVerifyUpdate = ns_OneShot,
    .C_GenerateKey = ns_GenerateKey,
    .C_GenerateKeyPair = ns_GenerateKeyPair,
    .C_WrapKey = ns_WrapKey,
    .C_UnwrapKey = ns_UnwrapKey,
    .C_DeriveKey = ns_DeriveKey,
    .C_SeedRandom = C_SeedRandom,
    .C_GenerateRandom = C_GenerateRandom,
    .C_GetFunctionStatus = ns_GetFunctionStatus,
    .C_CancelFunction = ns_CancelFunction,
    .C_WaitForSlotEvent = C_WaitForSlotEvent,
};
