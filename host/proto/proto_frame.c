/* proto_frame: the transport of cachetd's protocol (docs/protocol.md §1).
 *
 * A frame is a 4-byte big-endian length and that many bytes. Descriptors ride
 * as SCM_RIGHTS ancillary data (unix(7)) on the frame's first bytes. Reads never
 * go past the end of the current frame, so descriptors sent with the next frame
 * stay with it. Every wait is a poll() against one deadline for the whole
 * frame; EINTR and short reads/writes are retried. */
#include "proto.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define FRAME_HDR_LEN 4u
/* Room for more descriptors than we keep, so that a peer sending a few extra
 * ones gets them closed by us rather than truncated (the kernel also releases
 * any it could not fit, MSG_CTRUNC). */
#define FRAME_CMSG_FDS 16

_Static_assert(PROTO_FRAME_MAX <= INT_MAX, "frame length must fit json-c's int length");
_Static_assert(PROTO_FDS_MAX <= FRAME_CMSG_FDS, "control buffer too small");

const char *proto_status_name(proto_status_t st)
{
    switch (st) {
    case PROTO_OK:
        return "ok";
    case PROTO_ERR_CLOSED:
        return "closed";
    case PROTO_ERR_IO:
        return "io";
    case PROTO_ERR_TIMEOUT:
        return "timeout";
    case PROTO_ERR_TOO_BIG:
        return "too-big";
    case PROTO_ERR_JSON:
        return "json";
    case PROTO_ERR_FIELD:
        return "field";
    case PROTO_ERR_NOMEM:
        return "nomem";
    }
    return "unknown";
}

/* ---- deadlines ---------------------------------------------------------- */

typedef struct {
    bool forever;
    struct timespec end; /* CLOCK_MONOTONIC */
} deadline_t;

static void deadline_start(deadline_t *d, int timeout_ms)
{
    d->forever = timeout_ms < 0;
    if (d->forever)
        return;
    clock_gettime(CLOCK_MONOTONIC, &d->end);
    d->end.tv_sec += timeout_ms / 1000;
    d->end.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (d->end.tv_nsec >= 1000000000L) {
        d->end.tv_sec++;
        d->end.tv_nsec -= 1000000000L;
    }
}

/* Milliseconds left for poll(): -1 forever, 0 when expired (rounded up so that
 * we never spin on a sub-millisecond remainder). */
static int deadline_left_ms(const deadline_t *d)
{
    if (d->forever)
        return -1;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    if (now.tv_sec > d->end.tv_sec ||
        (now.tv_sec == d->end.tv_sec && now.tv_nsec >= d->end.tv_nsec))
        return 0;
    int64_t ns = (int64_t)(d->end.tv_sec - now.tv_sec) * 1000000000 +
                 (int64_t)(d->end.tv_nsec - now.tv_nsec);
    int64_t ms = (ns + 999999) / 1000000;
    return ms > INT_MAX ? INT_MAX : (int)ms;
}

typedef enum { WAIT_READY, WAIT_TIMEOUT, WAIT_ERROR } wait_result_t;

/* Waits until fd is ready for events or the deadline passes. The first poll
 * of an expired deadline still runs (timeout 0), so a frame that is already
 * there is taken even with timeout_ms == 0. */
static wait_result_t wait_fd(int fd, short events, const deadline_t *d)
{
    for (;;) {
        struct pollfd p = {.fd = fd, .events = events, .revents = 0};
        int left = deadline_left_ms(d);
        int n = poll(&p, 1, left);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return WAIT_ERROR;
        }
        if (n == 0)
            return WAIT_TIMEOUT;
        if (p.revents & POLLNVAL)
            return WAIT_ERROR;
        /* POLLHUP / POLLERR: let the read or write report what happened
         * (there may still be data to read before the end of file). */
        return WAIT_READY;
    }
}

/* ---- reading ------------------------------------------------------------ */

typedef struct {
    int fd;
    bool not_socket; /* a pipe or file: plain read(), no descriptors */
    int *keep;       /* caller's array, or NULL: close everything received */
    size_t nkeep;
    deadline_t deadline;
} reader_t;

static void close_fds(int *fds, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (fds[i] >= 0)
            close(fds[i]);
        fds[i] = -1;
    }
}

/* Takes the SCM_RIGHTS descriptors out of a received message: the first
 * PROTO_FDS_MAX of the frame are kept (when the caller wants them), the
 * others closed at once. */
static void take_fds(reader_t *r, struct msghdr *msg)
{
    for (struct cmsghdr *c = CMSG_FIRSTHDR(msg); c != NULL; c = CMSG_NXTHDR(msg, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
            continue;
        if (c->cmsg_len < CMSG_LEN(0))
            continue;
        size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        const unsigned char *data = CMSG_DATA(c);
        for (size_t i = 0; i < n; i++) {
            int got;
            memcpy(&got, data + i * sizeof(int), sizeof got);
            if (r->keep != NULL && r->nkeep < PROTO_FDS_MAX)
                r->keep[r->nkeep++] = got;
            else
                close(got);
        }
    }
}

/* Reads exactly len bytes into buf. *got counts what was read (to tell a close
 * between frames from one inside a frame). */
static proto_status_t read_exact(reader_t *r, uint8_t *buf, size_t len, size_t *got)
{
    while (*got < len) {
        wait_result_t w = wait_fd(r->fd, POLLIN, &r->deadline);
        if (w == WAIT_TIMEOUT)
            return PROTO_ERR_TIMEOUT;
        if (w == WAIT_ERROR)
            return PROTO_ERR_IO;

        ssize_t n;
        if (r->not_socket) {
            n = read(r->fd, buf + *got, len - *got);
        } else {
            union {
                struct cmsghdr align;
                unsigned char buf[CMSG_SPACE(sizeof(int) * FRAME_CMSG_FDS)];
            } ctl;
            struct iovec iov = {.iov_base = buf + *got, .iov_len = len - *got};
            struct msghdr msg = {0};
            msg.msg_iov = &iov;
            msg.msg_iovlen = 1;
            msg.msg_control = ctl.buf;
            msg.msg_controllen = sizeof ctl.buf;
            n = recvmsg(r->fd, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
            if (n < 0 && errno == ENOTSOCK) {
                r->not_socket = true;
                continue;
            }
            if (n >= 0)
                take_fds(r, &msg);
        }
        if (n < 0) {
            if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)
                continue;
            /* A reset at a frame boundary is the peer going away. */
            if (errno == ECONNRESET && *got == 0)
                return PROTO_ERR_CLOSED;
            return PROTO_ERR_IO;
        }
        if (n == 0)
            return *got == 0 ? PROTO_ERR_CLOSED : PROTO_ERR_IO;
        *got += (size_t)n;
    }
    return PROTO_OK;
}

proto_status_t proto_read_frame(int fd, int timeout_ms, char **out, size_t *len, int *fds,
                                size_t *nfds)
{
    if (out != NULL)
        *out = NULL;
    if (len != NULL)
        *len = 0;
    if (nfds != NULL)
        *nfds = 0;
    if (fd < 0 || out == NULL || len == NULL || (fds != NULL && nfds == NULL))
        return PROTO_ERR_FIELD;

    reader_t r = {.fd = fd, .not_socket = false, .keep = fds, .nkeep = 0};
    deadline_start(&r.deadline, timeout_ms);

    uint8_t hdr[FRAME_HDR_LEN];
    size_t got = 0;
    proto_status_t st = read_exact(&r, hdr, sizeof hdr, &got);
    if (st != PROTO_OK)
        goto fail;

    uint32_t n =
        (uint32_t)hdr[0] << 24 | (uint32_t)hdr[1] << 16 | (uint32_t)hdr[2] << 8 | (uint32_t)hdr[3];
    /* The cap is checked before anything is allocated (docs/protocol.md §1.2). */
    if (n > PROTO_FRAME_MAX) {
        st = PROTO_ERR_TOO_BIG;
        goto fail;
    }
    char *buf = malloc((size_t)n + 1);
    if (buf == NULL) {
        st = PROTO_ERR_NOMEM;
        goto fail;
    }
    size_t body = 0;
    st = read_exact(&r, (uint8_t *)buf, n, &body);
    if (st != PROTO_OK) {
        explicit_bzero(buf, body); /* part of a request may be a PIN */
        free(buf);
        /* The header came: a close now is inside the frame. */
        if (st == PROTO_ERR_CLOSED)
            st = PROTO_ERR_IO;
        goto fail;
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    if (nfds != NULL)
        *nfds = r.nkeep;
    return PROTO_OK;

fail:
    if (fds != NULL)
        close_fds(fds, r.nkeep);
    return st;
}

/* ---- writing ------------------------------------------------------------ */

proto_status_t proto_write_frame_timeout(int fd, const char *json, size_t len, const int *fds,
                                         size_t nfds, int timeout_ms)
{
    if (fd < 0 || (json == NULL && len != 0) || nfds > PROTO_FDS_MAX || (fds == NULL && nfds != 0))
        return PROTO_ERR_FIELD;
    for (size_t i = 0; i < nfds; i++)
        if (fds[i] < 0)
            return PROTO_ERR_FIELD;
    if (len > PROTO_FRAME_MAX)
        return PROTO_ERR_TOO_BIG;

    uint8_t hdr[FRAME_HDR_LEN] = {(uint8_t)(len >> 24), (uint8_t)(len >> 16), (uint8_t)(len >> 8),
                                  (uint8_t)len};
    const size_t total = FRAME_HDR_LEN + len;
    size_t sent = 0;
    bool not_socket = false;
    deadline_t d;
    deadline_start(&d, timeout_ms);

    while (sent < total) {
        wait_result_t w = wait_fd(fd, POLLOUT, &d);
        if (w == WAIT_TIMEOUT)
            return PROTO_ERR_TIMEOUT;
        if (w == WAIT_ERROR)
            return PROTO_ERR_IO;

        struct iovec iov[2];
        int niov = 0;
        if (sent < FRAME_HDR_LEN) {
            iov[niov].iov_base = hdr + sent;
            iov[niov].iov_len = FRAME_HDR_LEN - sent;
            niov++;
            if (len > 0) {
                iov[niov].iov_base = (void *)(uintptr_t)json;
                iov[niov].iov_len = len;
                niov++;
            }
        } else {
            iov[niov].iov_base = (void *)(uintptr_t)(json + (sent - FRAME_HDR_LEN));
            iov[niov].iov_len = total - sent;
            niov++;
        }

        ssize_t n;
        if (not_socket) {
            n = writev(fd, iov, niov);
        } else {
            union {
                struct cmsghdr align;
                unsigned char buf[CMSG_SPACE(sizeof(int) * PROTO_FDS_MAX)];
            } ctl;
            struct msghdr msg = {0};
            msg.msg_iov = iov;
            msg.msg_iovlen = (size_t)niov;
            /* The descriptors go with the first byte of the frame; once
             * anything is sent they have gone with it. */
            if (sent == 0 && nfds > 0) {
                memset(&ctl, 0, sizeof ctl);
                msg.msg_control = ctl.buf;
                msg.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
                struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
                c->cmsg_level = SOL_SOCKET;
                c->cmsg_type = SCM_RIGHTS;
                c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
                memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
            }
            n = sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
            if (n < 0 && errno == ENOTSOCK) {
                if (nfds > 0)
                    return PROTO_ERR_FIELD; /* descriptors need a Unix socket */
                not_socket = true;
                continue;
            }
        }
        if (n < 0) {
            if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)
                continue;
            return PROTO_ERR_IO;
        }
        sent += (size_t)n;
    }
    return PROTO_OK;
}

proto_status_t proto_write_frame(int fd, const char *json, size_t len, const int *fds, size_t nfds)
{
    return proto_write_frame_timeout(fd, json, len, fds, nfds, -1);
}
