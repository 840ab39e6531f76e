/* ifd_sock: the "virtual USB cable" transport (docs/simulation.md §1).
 *
 * One Unix stream connection is the cable. Frames: kind, endpoint, status
 * (big-endian 16), length (big-endian 32, ≤ 4096), payload. The host sends
 * SETUP and OUT frames; the device sends SETUP_DONE and IN frames whenever it
 * has them. A receiver thread per connection demultiplexes what arrives into
 * the control reply slot, a bulk IN queue and an interrupt IN queue, each
 * waited on with a condition variable and a deadline. When the connection
 * closes (unplug) or breaks the protocol, every waiter gets IFD_ST_GONE. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "ifd_rdr.h"
#include "ifd_transport.h"

#define FRAME_HEADER 8u
#define FRAME_MAX    4096u /* docs/simulation.md §1 payload cap */
#define QUEUE_DEPTH  8u

enum { K_SETUP = 0x01, K_SETUP_DONE = 0x02, K_OUT = 0x03, K_IN = 0x04 };

typedef struct {
    uint8_t buf[QUEUE_DEPTH][FRAME_MAX];
    size_t len[QUEUE_DEPTH];
    unsigned head;
    unsigned count;
} queue_t;

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    char path[IFD_DEV_PATH_MAX];
    int fd;
    bool gone;
    bool cancelled;
    bool wake_pending;
    bool have_thread;
    pthread_t thread;
    uint8_t ep_out, ep_in, ep_intr;
    queue_t bulk;
    queue_t intr;
    /* The one control transfer in flight (docs/simulation.md §1). */
    bool ctl_waiting;
    bool ctl_done;
    uint16_t ctl_status;
    size_t ctl_len;
    uint8_t ctl_buf[FRAME_MAX];
    /* Outgoing frame, built whole so it leaves in one write (spec/perf.md). */
    uint8_t tx[FRAME_HEADER + FRAME_MAX];
} sock_t;

static void q_push(queue_t *q, const uint8_t *data, size_t len)
{
    if (q->count == QUEUE_DEPTH) {
        /* Full: the oldest entry is stale (nobody waited for it). */
        q->head = (q->head + 1) % QUEUE_DEPTH;
        q->count--;
    }
    unsigned slot = (q->head + q->count) % QUEUE_DEPTH;
    memcpy(q->buf[slot], data, len);
    q->len[slot] = len;
    q->count++;
}

static ifd_st_t q_pop(queue_t *q, uint8_t *out, size_t cap, size_t *got)
{
    unsigned slot = q->head;
    size_t n = q->len[slot];
    q->head = (q->head + 1) % QUEUE_DEPTH;
    q->count--;
    IFD_VERIFY(n <= cap, IFD_ST_OVERFLOW);
    memcpy(out, q->buf[slot], n);
    *got = n;
    return IFD_ST_OK;
}

static bool read_full(int fd, uint8_t *buf, size_t len)
{
    size_t done = 0;
    while (done < len) {
        ssize_t r = read(fd, buf + done, len - done);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return false;
        done += (size_t)r;
    }
    return true;
}

/* Called with mu held. shutdown() makes the receiver's read() return 0 so it
 * exits; the fd itself is closed only after the thread was joined. */
static void mark_gone(sock_t *s)
{
    if (!s->gone) {
        s->gone = true;
        if (s->fd >= 0)
            shutdown(s->fd, SHUT_RDWR);
    }
    pthread_cond_broadcast(&s->cv);
}

static void *receiver(void *arg)
{
    sock_t *s = arg;
    int fd;
    pthread_mutex_lock(&s->mu);
    fd = s->fd;
    pthread_mutex_unlock(&s->mu);
    uint8_t *payload = malloc(FRAME_MAX);
    for (;;) {
        uint8_t h[FRAME_HEADER];
        if (!payload || !read_full(fd, h, sizeof h))
            break;
        uint32_t len = ifd_get_be32(h + 4);
        if (len > FRAME_MAX) {
            ifd_log("sock: frame of %u bytes over the cap, closing", (unsigned)len);
            break;
        }
        if (len && !read_full(fd, payload, len))
            break;
        uint8_t kind = h[0], ep = h[1];
        uint16_t status = ifd_get_be16(h + 2);
        bool bad = false;
        pthread_mutex_lock(&s->mu);
        if (kind == K_SETUP_DONE) {
            if (s->ctl_waiting && !s->ctl_done) {
                memcpy(s->ctl_buf, payload, len);
                s->ctl_len = len;
                s->ctl_status = status;
                s->ctl_done = true;
                pthread_cond_broadcast(&s->cv);
            }
        } else if (kind == K_IN && status == 0) {
            if (ep == s->ep_in) {
                q_push(&s->bulk, payload, len);
                pthread_cond_broadcast(&s->cv);
            } else if (ep == s->ep_intr && s->ep_intr) {
                q_push(&s->intr, payload, len);
                pthread_cond_broadcast(&s->cv);
            }
            /* IN on an endpoint we do not use: dropped. */
        } else {
            bad = true; /* host-bound frames are SETUP_DONE and IN only */
        }
        pthread_mutex_unlock(&s->mu);
        if (bad) {
            ifd_log("sock: unexpected frame kind 0x%02x, closing", kind);
            break;
        }
    }
    free(payload);
    pthread_mutex_lock(&s->mu);
    mark_gone(s);
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

static void deadline_after(struct timespec *ts, uint32_t ms)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += ms / 1000u;
    ts->tv_nsec += (long)(ms % 1000u) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

/* Waits on cv until *flag-like predicate changes; returns false on timeout. */
static bool wait_until(sock_t *s, const struct timespec *dl)
{
    int r = pthread_cond_timedwait(&s->cv, &s->mu, dl);
    return r != ETIMEDOUT;
}

static ifd_st_t send_frame(sock_t *s, uint8_t kind, uint8_t ep, const uint8_t *a, size_t alen,
                           const uint8_t *b, size_t blen)
{
    IFD_VERIFY(alen <= FRAME_MAX && blen <= FRAME_MAX - alen, IFD_ST_PARAM);
    uint8_t *t = s->tx;
    t[0] = kind;
    t[1] = ep;
    ifd_put_be16(t + 2, 0);
    ifd_put_be32(t + 4, (uint32_t)(alen + blen));
    if (alen)
        memcpy(t + FRAME_HEADER, a, alen);
    if (blen)
        memcpy(t + FRAME_HEADER + alen, b, blen);
    size_t total = FRAME_HEADER + alen + blen, done = 0;
    int fd;
    pthread_mutex_lock(&s->mu);
    fd = s->gone ? -1 : s->fd;
    pthread_mutex_unlock(&s->mu);
    IFD_VERIFY(fd >= 0, IFD_ST_GONE);
    while (done < total) {
        /* MSG_NOSIGNAL: a closed peer must not SIGPIPE the hosting pcscd. */
        ssize_t w = send(fd, t + done, total - done, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            pthread_mutex_lock(&s->mu);
            mark_gone(s);
            pthread_mutex_unlock(&s->mu);
            return IFD_ST_GONE;
        }
        done += (size_t)w;
    }
    return IFD_ST_OK;
}

static ifd_st_t sock_control(void *ctx, const uint8_t setup[8], uint8_t *data, size_t cap,
                             size_t *got, uint32_t timeout_ms)
{
    sock_t *s = ctx;
    IFD_VERIFY(setup != NULL && got != NULL, IFD_ST_PARAM);
    *got = 0;
    uint16_t wlength = ifd_get_le16(setup + 6);
    bool in = (setup[0] & 0x80u) != 0;
    IFD_VERIFY(wlength <= FRAME_MAX - 8u, IFD_ST_PARAM);
    IFD_VERIFY(in || wlength == 0 || (data != NULL && cap >= wlength), IFD_ST_PARAM);

    pthread_mutex_lock(&s->mu);
    if (s->gone) {
        pthread_mutex_unlock(&s->mu);
        return IFD_ST_GONE;
    }
    s->ctl_waiting = true;
    s->ctl_done = false;
    pthread_mutex_unlock(&s->mu);

    ifd_st_t st = send_frame(s, K_SETUP, 0x00, setup, 8, in ? NULL : data, in ? 0 : wlength);
    struct timespec dl;
    deadline_after(&dl, timeout_ms);
    pthread_mutex_lock(&s->mu);
    while (st == IFD_ST_OK && !s->ctl_done && !s->gone) {
        if (!wait_until(s, &dl) && !s->ctl_done && !s->gone)
            st = IFD_ST_TIMEOUT;
    }
    if (st == IFD_ST_OK && s->ctl_done) {
        if (s->ctl_status == 1)
            st = IFD_ST_STALL;
        else if (s->ctl_status != 0 || s->ctl_len > wlength || (!in && s->ctl_len))
            st = IFD_ST_PROTO;
        else if (s->ctl_len > cap)
            st = IFD_ST_OVERFLOW;
        else {
            if (s->ctl_len)
                memcpy(data, s->ctl_buf, s->ctl_len);
            *got = s->ctl_len;
        }
    } else if (st == IFD_ST_OK) {
        st = IFD_ST_GONE;
    }
    s->ctl_waiting = false;
    pthread_mutex_unlock(&s->mu);
    return st;
}

static ifd_st_t sock_bulk_out(void *ctx, const uint8_t *data, size_t len, uint32_t timeout_ms)
{
    sock_t *s = ctx;
    (void)timeout_ms; /* the socket's send timeout bounds the write */
    IFD_VERIFY(len <= FRAME_MAX, IFD_ST_PARAM);
    return send_frame(s, K_OUT, s->ep_out, data, len, NULL, 0);
}

static ifd_st_t wait_queue(sock_t *s, queue_t *q, bool intr, uint8_t *buf, size_t cap, size_t *got,
                           uint32_t timeout_ms)
{
    IFD_VERIFY(buf != NULL && got != NULL, IFD_ST_PARAM);
    *got = 0;
    struct timespec dl;
    deadline_after(&dl, timeout_ms);
    ifd_st_t st = IFD_ST_OK;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        if (intr && s->wake_pending) {
            s->wake_pending = false;
            st = IFD_ST_CANCELLED;
            break;
        }
        if (intr && s->cancelled) {
            st = IFD_ST_CANCELLED;
            break;
        }
        if (s->gone) {
            st = IFD_ST_GONE;
            break;
        }
        if (q->count) {
            st = q_pop(q, buf, cap, got);
            break;
        }
        if (!wait_until(s, &dl)) {
            if (!q->count && !s->gone && !(intr && (s->cancelled || s->wake_pending))) {
                st = IFD_ST_TIMEOUT;
                break;
            }
        }
    }
    pthread_mutex_unlock(&s->mu);
    return st;
}

static ifd_st_t sock_bulk_in(void *ctx, uint8_t *buf, size_t cap, size_t *got, uint32_t timeout_ms)
{
    sock_t *s = ctx;
    return wait_queue(s, &s->bulk, false, buf, cap, got, timeout_ms);
}

static ifd_st_t sock_intr_in(void *ctx, uint8_t *buf, size_t cap, size_t *got, uint32_t timeout_ms)
{
    sock_t *s = ctx;
    return wait_queue(s, &s->intr, true, buf, cap, got, timeout_ms);
}

static void sock_intr_cancel(void *ctx)
{
    sock_t *s = ctx;
    pthread_mutex_lock(&s->mu);
    s->cancelled = true;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

static void sock_intr_wake(void *ctx)
{
    sock_t *s = ctx;
    pthread_mutex_lock(&s->mu);
    s->wake_pending = true;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

static void sock_set_endpoints(void *ctx, uint8_t bulk_out, uint8_t bulk_in, uint8_t intr_in)
{
    sock_t *s = ctx;
    pthread_mutex_lock(&s->mu);
    s->ep_out = bulk_out;
    s->ep_in = bulk_in;
    s->ep_intr = intr_in;
    pthread_mutex_unlock(&s->mu);
}

/* The peer must be us, root, or the owner of the socket file (STYLE.md rule 9:
 * sockets check the peer's uid). */
static bool peer_ok(int fd, const char *path)
{
    struct ucred cred;
    socklen_t cl = sizeof cred;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) != 0 || cl != sizeof cred)
        return false;
    if (cred.uid == getuid() || cred.uid == 0)
        return true;
    struct stat st;
    return stat(path, &st) == 0 && st.st_uid == cred.uid;
}

static int connect_path(const char *path)
{
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    size_t n = strnlen(path, sizeof sa.sun_path);
    if (n == 0 || n >= sizeof sa.sun_path)
        return -1;
    memcpy(sa.sun_path, path, n);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        return -1;
    }
    if (!peer_ok(fd, path)) {
        ifd_log("sock: %s: peer uid not allowed", path);
        close(fd);
        return -1;
    }
    /* Writes never block forever on a wedged device. */
    struct timeval tv = {.tv_sec = 5, .tv_usec = 0};
    (void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    return fd;
}

/* Joins the receiver of a dead connection and closes its fd. Callers are
 * serialised by the channel (reconnect, close). */
static void reap(sock_t *s)
{
    pthread_mutex_lock(&s->mu);
    mark_gone(s);
    bool join = s->have_thread;
    s->have_thread = false;
    pthread_mutex_unlock(&s->mu);
    if (join)
        pthread_join(s->thread, NULL);
    pthread_mutex_lock(&s->mu);
    if (s->fd >= 0)
        close(s->fd);
    s->fd = -1;
    pthread_mutex_unlock(&s->mu);
}

static ifd_st_t start(sock_t *s)
{
    int fd = connect_path(s->path);
    IFD_VERIFY(fd >= 0, IFD_ST_GONE);
    pthread_mutex_lock(&s->mu);
    s->fd = fd;
    s->gone = false;
    s->bulk.count = s->intr.count = 0;
    s->ctl_waiting = s->ctl_done = false;
    int r = pthread_create(&s->thread, NULL, receiver, s);
    s->have_thread = r == 0;
    if (r != 0) {
        s->gone = true;
        close(fd);
        s->fd = -1;
    }
    pthread_mutex_unlock(&s->mu);
    return r == 0 ? IFD_ST_OK : IFD_ST_NOMEM;
}

static ifd_st_t sock_reconnect(void *ctx)
{
    sock_t *s = ctx;
    pthread_mutex_lock(&s->mu);
    bool gone = s->gone;
    pthread_mutex_unlock(&s->mu);
    if (!gone)
        return IFD_ST_OK;
    reap(s);
    return start(s);
}

static void sock_close(void *ctx)
{
    sock_t *s = ctx;
    if (!s)
        return;
    reap(s);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

static const ifd_transport_ops_t sock_ops = {
    .name = "sock",
    .control = sock_control,
    .bulk_out = sock_bulk_out,
    .bulk_in = sock_bulk_in,
    .intr_in = sock_intr_in,
    .intr_cancel = sock_intr_cancel,
    .intr_wake = sock_intr_wake,
    .set_endpoints = sock_set_endpoints,
    .reconnect = sock_reconnect,
    .close = sock_close,
};

ifd_st_t ifd_sock_open(const char *path, const ifd_transport_ops_t **ops, void **ctx)
{
    IFD_VERIFY(path != NULL && ops != NULL && ctx != NULL, IFD_ST_PARAM);
    size_t n = strnlen(path, IFD_DEV_PATH_MAX);
    IFD_VERIFY(n > 0 && n < IFD_DEV_PATH_MAX, IFD_ST_PARAM);
    sock_t *s = calloc(1, sizeof *s);
    IFD_VERIFY(s != NULL, IFD_ST_NOMEM);
    memcpy(s->path, path, n + 1);
    s->fd = -1;
    s->gone = true;
    /* docs/simulation.md §1: bulk OUT 0x01, bulk IN 0x82, interrupt IN 0x83
     * until the descriptors say otherwise. */
    s->ep_out = 0x01;
    s->ep_in = 0x82;
    s->ep_intr = 0x83;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&s->mu, NULL);
    *ops = &sock_ops;
    *ctx = s;
    /* Not connectable yet is not fatal: the channel retries (plug). */
    return start(s);
}
