/* Unit tests of host/proto: framing over socketpairs (descriptors, caps,
 * truncation, deadlines, EINTR, pipes), strict JSON, the envelope, builders,
 * capped getters and base64 (RFC 4648 §10 vectors).
 *
 * malloc is wrapped at link time (-Wl,--wrap=malloc, for cachet_proto's calls
 * only) to count allocations and to inject failures. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "proto.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

/* ---- malloc seam -------------------------------------------------------- */

void *__real_malloc(size_t size);
void *__wrap_malloc(size_t size);

static size_t malloc_calls;
static bool malloc_fail;

void *__wrap_malloc(size_t size)
{
    malloc_calls++;
    if (malloc_fail)
        return NULL;
    return __real_malloc(size);
}

/* ---- helpers ------------------------------------------------------------ */

static void pair(int sv[2])
{
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
}

static void close_pair(int sv[2])
{
    if (sv[0] >= 0)
        close(sv[0]);
    if (sv[1] >= 0)
        close(sv[1]);
}

static void put_raw(int fd, const void *buf, size_t len)
{
    const uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        assert_true(n > 0);
        p += n;
        len -= (size_t)n;
    }
}

static void put_header(int fd, uint32_t len)
{
    uint8_t h[4] = {(uint8_t)(len >> 24), (uint8_t)(len >> 16), (uint8_t)(len >> 8), (uint8_t)len};
    put_raw(fd, h, sizeof h);
}

static void put_frame(int fd, const char *s)
{
    put_header(fd, (uint32_t)strlen(s));
    put_raw(fd, s, strlen(s));
}

static bool readable_now(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN, .revents = 0};
    return poll(&p, 1, 0) == 1;
}

static int64_t now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* Sends a raw frame with n descriptors (more than proto would send). */
static void send_with_fds(int sock, const char *s, const int *fds, size_t n)
{
    size_t len = strlen(s);
    uint8_t h[4] = {(uint8_t)(len >> 24), (uint8_t)(len >> 16), (uint8_t)(len >> 8), (uint8_t)len};
    struct iovec iov[2] = {{.iov_base = h, .iov_len = 4}, {.iov_base = (void *)s, .iov_len = len}};
    union {
        struct cmsghdr align;
        unsigned char buf[CMSG_SPACE(sizeof(int) * 8)];
    } ctl;
    memset(&ctl, 0, sizeof ctl);
    struct msghdr msg = {0};
    msg.msg_iov = iov;
    msg.msg_iovlen = 2;
    msg.msg_control = ctl.buf;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * n);
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * n);
    memcpy(CMSG_DATA(c), fds, sizeof(int) * n);
    assert_int_equal(sendmsg(sock, &msg, MSG_NOSIGNAL), (ssize_t)(4 + len));
}

/* A pipe whose write end is the only writer: once every copy of w is closed,
 * reading r gives end of file. r is non-blocking. */
static void probe_pipe(int *r, int *w)
{
    int p[2];
    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    assert_int_equal(fcntl(p[0], F_SETFL, O_NONBLOCK), 0);
    *r = p[0];
    *w = p[1];
}

static bool pipe_writers_gone(int r)
{
    char c;
    return read(r, &c, 1) == 0;
}

/* ---- framing ------------------------------------------------------------ */

static void test_frame_round_trip(void **state)
{
    (void)state;
    int sv[2];
    pair(sv);
    assert_int_equal(proto_write_frame(sv[0], "{\"a\":1}", 7, NULL, 0), PROTO_OK);
    assert_int_equal(proto_write_frame(sv[0], "", 0, NULL, 0), PROTO_OK);
    assert_int_equal(proto_write_frame(sv[0], "{}", 2, NULL, 0), PROTO_OK);

    char *buf = NULL;
    size_t len = 99, nfds = 99;
    int fds[PROTO_FDS_MAX];
    assert_int_equal(proto_read_frame(sv[1], 1000, &buf, &len, fds, &nfds), PROTO_OK);
    assert_int_equal(len, 7);
    assert_int_equal(nfds, 0);
    assert_string_equal(buf, "{\"a\":1}");
    free(buf);
    assert_int_equal(proto_read_frame(sv[1], 1000, &buf, &len, NULL, NULL), PROTO_OK);
    assert_int_equal(len, 0);
    assert_string_equal(buf, "");
    free(buf);
    assert_int_equal(proto_read_frame(sv[1], 0, &buf, &len, NULL, NULL), PROTO_OK);
    assert_string_equal(buf, "{}");
    free(buf);

    /* The peer goes away between frames. */
    close(sv[0]);
    sv[0] = -1;
    assert_int_equal(proto_read_frame(sv[1], 1000, &buf, &len, NULL, NULL), PROTO_ERR_CLOSED);
    assert_null(buf);
    close_pair(sv);
}

static void test_frame_fds_round_trip(void **state)
{
    (void)state;
    int sv[2], a[2], b[2];
    pair(sv);
    assert_int_equal(pipe(a), 0);
    assert_int_equal(pipe(b), 0);
    int give[2] = {a[1], b[0]};
    assert_int_equal(proto_write_frame(sv[0], "{}", 2, give, 2), PROTO_OK);

    char *buf = NULL;
    size_t len = 0, nfds = 0;
    int fds[PROTO_FDS_MAX] = {-1, -1};
    assert_int_equal(proto_read_frame(sv[1], 1000, &buf, &len, fds, &nfds), PROTO_OK);
    free(buf);
    assert_int_equal(nfds, 2);
    /* New descriptors for the same pipes, close-on-exec. */
    assert_true(fds[0] != a[1] && fds[1] != b[0]);
    assert_true(fcntl(fds[0], F_GETFD) & FD_CLOEXEC);
    assert_true(fcntl(fds[1], F_GETFD) & FD_CLOEXEC);
    char c = 0;
    assert_int_equal(write(fds[0], "x", 1), 1);
    assert_int_equal(read(a[0], &c, 1), 1);
    assert_int_equal(c, 'x');
    assert_int_equal(write(b[1], "y", 1), 1);
    assert_int_equal(read(fds[1], &c, 1), 1);
    assert_int_equal(c, 'y');
    close(fds[0]);
    close(fds[1]);
    close(a[0]);
    close(a[1]);
    close(b[0]);
    close(b[1]);
    close_pair(sv);
}

static void test_frame_extra_fds_closed(void **state)
{
    (void)state;
    int sv[2];
    pair(sv);
    int r[4], w[4];
    for (int i = 0; i < 4; i++)
        probe_pipe(&r[i], &w[i]);

    /* Four descriptors: the first two are kept, the other two closed. */
    send_with_fds(sv[0], "{}", w, 4);
    for (int i = 0; i < 4; i++)
        close(w[i]);
    char *buf = NULL;
    size_t len = 0, nfds = 0;
    int fds[PROTO_FDS_MAX] = {-1, -1};
    assert_int_equal(proto_read_frame(sv[1], 1000, &buf, &len, fds, &nfds), PROTO_OK);
    free(buf);
    assert_int_equal(nfds, PROTO_FDS_MAX);
    assert_false(pipe_writers_gone(r[0]));
    assert_false(pipe_writers_gone(r[1]));
    assert_true(pipe_writers_gone(r[2]));
    assert_true(pipe_writers_gone(r[3]));
    close(fds[0]);
    close(fds[1]);

    /* fds == NULL: every descriptor is closed. */
    int r2, w2;
    probe_pipe(&r2, &w2);
    send_with_fds(sv[0], "{}", &w2, 1);
    close(w2);
    assert_int_equal(proto_read_frame(sv[1], 1000, &buf, &len, NULL, NULL), PROTO_OK);
    free(buf);
    assert_true(pipe_writers_gone(r2));
    close(r2);

    /* On an error (bad JSON) the descriptors are closed too. */
    probe_pipe(&r2, &w2);
    send_with_fds(sv[0], "{oops", &w2, 1);
    close(w2);
    json_object *obj = NULL;
    assert_int_equal(proto_read_json(sv[1], 1000, &obj, fds, &nfds), PROTO_ERR_JSON);
    assert_int_equal(nfds, 0);
    assert_true(pipe_writers_gone(r2));
    close(r2);

    for (int i = 0; i < 4; i++)
        close(r[i]);
    close_pair(sv);
}

static void test_frame_fds_stay_with_their_frame(void **state)
{
    (void)state;
    int sv[2], r, w;
    pair(sv);
    probe_pipe(&r, &w);
    assert_int_equal(proto_write_frame(sv[0], "{\"n\":1}", 7, NULL, 0), PROTO_OK);
    assert_int_equal(proto_write_frame(sv[0], "{\"n\":2}", 7, &w, 1), PROTO_OK);
    close(w);

    char *buf = NULL;
    size_t len = 0, nfds = 9;
    int fds[PROTO_FDS_MAX] = {-1, -1};
    assert_int_equal(proto_read_frame(sv[1], 1000, &buf, &len, fds, &nfds), PROTO_OK);
    assert_string_equal(buf, "{\"n\":1}");
    assert_int_equal(nfds, 0);
    free(buf);
    assert_int_equal(proto_read_frame(sv[1], 1000, &buf, &len, fds, &nfds), PROTO_OK);
    assert_string_equal(buf, "{\"n\":2}");
    assert_int_equal(nfds, 1);
    free(buf);
    assert_false(pipe_writers_gone(r));
    close(fds[0]);
    assert_true(pipe_writers_gone(r));
    close(r);
    close_pair(sv);
}

static void test_frame_oversized_refused_without_allocation(void **state)
{
    (void)state;
    int sv[2];
    pair(sv);
    const uint32_t lens[] = {PROTO_FRAME_MAX + 1u, 0x7FFFFFFFu, 0xFFFFFFFFu};
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        put_header(sv[0], lens[i]);
        char *buf = (char *)1;
        size_t len = 1;
        malloc_calls = 0;
        assert_int_equal(proto_read_frame(sv[1], 1000, &buf, &len, NULL, NULL), PROTO_ERR_TOO_BIG);
        assert_int_equal(malloc_calls, 0);
        assert_null(buf);
        assert_int_equal(len, 0);
    }
    close_pair(sv);

    /* Exactly the cap is accepted (the payload follows from a thread below);
     * a frame the caller cannot allocate is PROTO_ERR_NOMEM. */
    pair(sv);
    put_frame(sv[0], "{}");
    char *buf = NULL;
    size_t len = 0;
    malloc_fail = true;
    assert_int_equal(proto_read_frame(sv[1], 1000, &buf, &len, NULL, NULL), PROTO_ERR_NOMEM);
    malloc_fail = false;
    close_pair(sv);
}

static void test_frame_too_big_to_write(void **state)
{
    (void)state;
    int sv[2];
    pair(sv);
    size_t n = PROTO_FRAME_MAX + 1u;
    char *big = calloc(1, n);
    assert_non_null(big);
    assert_int_equal(proto_write_frame(sv[0], big, n, NULL, 0), PROTO_ERR_TOO_BIG);
    free(big);
    assert_false(readable_now(sv[1]));

    int fds[3] = {0, 1, 2};
    assert_int_equal(proto_write_frame(sv[0], "{}", 2, fds, 3), PROTO_ERR_FIELD);
    int bad = -1;
    assert_int_equal(proto_write_frame(sv[0], "{}", 2, &bad, 1), PROTO_ERR_FIELD);
    assert_int_equal(proto_write_frame(sv[0], "{}", 2, NULL, 1), PROTO_ERR_FIELD);
    assert_int_equal(proto_write_frame(sv[0], NULL, 2, NULL, 0), PROTO_ERR_FIELD);
    assert_int_equal(proto_write_frame(-1, "{}", 2, NULL, 0), PROTO_ERR_FIELD);
    assert_false(readable_now(sv[1]));
    close_pair(sv);
}

static void test_frame_truncated(void **state)
{
    (void)state;
    char *buf = NULL;
    size_t len = 0;
    int sv[2];

    /* Header cut short. */
    pair(sv);
    put_raw(sv[0], "\0\0", 2);
    close(sv[0]);
    sv[0] = -1;
    assert_int_equal(proto_read_frame(sv[1], 1000, &buf, &len, NULL, NULL), PROTO_ERR_IO);
    close_pair(sv);

    /* Payload cut short. */
    pair(sv);
    put_header(sv[0], 100);
    put_raw(sv[0], "{\"a\":\"", 6);
    close(sv[0]);
    sv[0] = -1;
    assert_int_equal(proto_read_frame(sv[1], 1000, &buf, &len, NULL, NULL), PROTO_ERR_IO);
    assert_null(buf);
    close_pair(sv);

    /* A header and no payload. */
    pair(sv);
    put_header(sv[0], 2);
    close(sv[0]);
    sv[0] = -1;
    assert_int_equal(proto_read_frame(sv[1], 1000, &buf, &len, NULL, NULL), PROTO_ERR_IO);
    close_pair(sv);
}

static void test_frame_timeout(void **state)
{
    (void)state;
    char *buf = NULL;
    size_t len = 0;
    int sv[2];
    pair(sv);

    int64_t t0 = now_ms();
    assert_int_equal(proto_read_frame(sv[1], 60, &buf, &len, NULL, NULL), PROTO_ERR_TIMEOUT);
    int64_t dt = now_ms() - t0;
    assert_true(dt >= 55);
    assert_true(dt < 5000);

    assert_int_equal(proto_read_frame(sv[1], 0, &buf, &len, NULL, NULL), PROTO_ERR_TIMEOUT);

    /* Part of a frame, then silence: the deadline covers the whole frame. */
    put_header(sv[0], 10);
    put_raw(sv[0], "{\"a\"", 4);
    t0 = now_ms();
    assert_int_equal(proto_read_frame(sv[1], 60, &buf, &len, NULL, NULL), PROTO_ERR_TIMEOUT);
    dt = now_ms() - t0;
    assert_true(dt >= 55);
    assert_null(buf);
    close_pair(sv);
}

static void test_write_timeout(void **state)
{
    (void)state;
    int sv[2];
    pair(sv);
    /* Fill the socket until the kernel takes no more. */
    assert_int_equal(fcntl(sv[0], F_SETFL, O_NONBLOCK), 0);
    char chunk[4096];
    memset(chunk, 'x', sizeof chunk);
    for (;;) {
        ssize_t n = send(sv[0], chunk, sizeof chunk, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) {
            assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
            break;
        }
    }
    int64_t t0 = now_ms();
    assert_int_equal(proto_write_frame_timeout(sv[0], "{}", 2, NULL, 0, 50), PROTO_ERR_TIMEOUT);
    assert_true(now_ms() - t0 >= 45);
    close_pair(sv);
}

static void test_write_to_closed_peer(void **state)
{
    (void)state;
    int sv[2];
    pair(sv);
    close(sv[1]);
    sv[1] = -1;
    /* EPIPE, and no SIGPIPE (which would end this test program). */
    assert_int_equal(proto_write_frame(sv[0], "{}", 2, NULL, 0), PROTO_ERR_IO);
    close_pair(sv);
}

struct big_writer {
    int fd;
    const char *data;
    size_t len;
    proto_status_t st;
};

static void *big_writer_main(void *arg)
{
    struct big_writer *bw = arg;
    bw->st = proto_write_frame(bw->fd, bw->data, bw->len, NULL, 0);
    return NULL;
}

static void test_frame_at_cap_short_reads_and_writes(void **state)
{
    (void)state;
    int sv[2];
    pair(sv);
    /* One object of exactly PROTO_FRAME_MAX bytes: {"s":"aaa..."} */
    size_t n = PROTO_FRAME_MAX;
    char *doc = malloc(n + 1);
    assert_non_null(doc);
    memcpy(doc, "{\"s\":\"", 6);
    memset(doc + 6, 'a', n - 8);
    memcpy(doc + n - 2, "\"}", 2);
    doc[n] = '\0';

    struct big_writer bw = {.fd = sv[0], .data = doc, .len = n, .st = PROTO_ERR_IO};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, big_writer_main, &bw), 0);
    json_object *obj = NULL;
    assert_int_equal(proto_read_json(sv[1], 10000, &obj, NULL, NULL), PROTO_OK);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(bw.st, PROTO_OK);
    const char *s = NULL;
    assert_int_equal(proto_get_string(obj, "s", true, PROTO_FRAME_MAX, &s), PROTO_OK);
    assert_int_equal(strlen(s), n - 8);
    /* The default cap refuses it. */
    assert_int_equal(proto_get_string(obj, "s", true, 0, &s), PROTO_ERR_FIELD);
    json_object_put(obj);
    free(doc);
    close_pair(sv);
}

static atomic_int signals_seen;
static atomic_bool reader_done;

static void on_usr1(int sig)
{
    (void)sig;
    atomic_fetch_add(&signals_seen, 1);
}

struct interrupter {
    pthread_t target;
    int fd;
};

static void *interrupter_main(void *arg)
{
    struct interrupter *it = arg;
    /* Interrupt the reader's poll() many times, then send it a frame. */
    while (atomic_load(&signals_seen) < 50 && !atomic_load(&reader_done))
        pthread_kill(it->target, SIGUSR1);
    put_frame(it->fd, "{\"ok\":true}");
    return NULL;
}

static void test_frame_eintr(void **state)
{
    (void)state;
    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1; /* no SA_RESTART: poll and recvmsg see EINTR */
    sigemptyset(&sa.sa_mask);
    assert_int_equal(sigaction(SIGUSR1, &sa, &old), 0);
    atomic_store(&signals_seen, 0);
    atomic_store(&reader_done, false);

    int sv[2];
    pair(sv);
    struct interrupter it = {.target = pthread_self(), .fd = sv[0]};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, interrupter_main, &it), 0);
    json_object *obj = NULL;
    proto_status_t st = proto_read_json(sv[1], 20000, &obj, NULL, NULL);
    atomic_store(&reader_done, true);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(st, PROTO_OK);
    bool ok = false;
    assert_int_equal(proto_get_bool(obj, "ok", true, &ok), PROTO_OK);
    assert_true(ok);
    assert_true(atomic_load(&signals_seen) > 0);
    json_object_put(obj);
    close_pair(sv);
    assert_int_equal(sigaction(SIGUSR1, &old, NULL), 0);
}

static void test_frame_over_pipe(void **state)
{
    (void)state;
    int p[2];
    assert_int_equal(pipe(p), 0);
    assert_int_equal(proto_write_frame(p[1], "{\"p\":1}", 7, NULL, 0), PROTO_OK);
    int fd = p[0];
    assert_int_equal(proto_write_frame(p[1], "{}", 2, &fd, 1), PROTO_ERR_FIELD);
    close(p[1]);
    char *buf = NULL;
    size_t len = 0, nfds = 5;
    int fds[PROTO_FDS_MAX];
    assert_int_equal(proto_read_frame(p[0], 1000, &buf, &len, fds, &nfds), PROTO_OK);
    assert_string_equal(buf, "{\"p\":1}");
    assert_int_equal(nfds, 0);
    free(buf);
    assert_int_equal(proto_read_frame(p[0], 1000, &buf, &len, fds, &nfds), PROTO_ERR_CLOSED);
    close(p[0]);
}

static void test_frame_bad_arguments(void **state)
{
    (void)state;
    char *buf = NULL;
    size_t len = 0;
    int fds[PROTO_FDS_MAX];
    assert_int_equal(proto_read_frame(-1, 0, &buf, &len, NULL, NULL), PROTO_ERR_FIELD);
    assert_int_equal(proto_read_frame(0, 0, NULL, &len, NULL, NULL), PROTO_ERR_FIELD);
    assert_int_equal(proto_read_frame(0, 0, &buf, NULL, NULL, NULL), PROTO_ERR_FIELD);
    assert_int_equal(proto_read_frame(0, 0, &buf, &len, fds, NULL), PROTO_ERR_FIELD);
    /* A descriptor that is not open. */
    int p[2];
    assert_int_equal(pipe(p), 0);
    close(p[0]);
    close(p[1]);
    assert_int_equal(proto_read_frame(p[0], 100, &buf, &len, NULL, NULL), PROTO_ERR_IO);
    assert_int_equal(proto_write_frame(p[1], "{}", 2, NULL, 0), PROTO_ERR_IO);
}

static void test_status_names(void **state)
{
    (void)state;
    for (int s = PROTO_OK; s <= PROTO_ERR_NOMEM; s++) {
        const char *a = proto_status_name((proto_status_t)s);
        assert_non_null(a);
        assert_string_not_equal(a, "unknown");
        for (int t = PROTO_OK; t < s; t++)
            assert_string_not_equal(a, proto_status_name((proto_status_t)t));
    }
}

/* ---- JSON --------------------------------------------------------------- */

static proto_status_t parse(const char *s)
{
    json_object *o = NULL;
    proto_status_t st = proto_parse_json(s, strlen(s), &o);
    assert_true((st == PROTO_OK) == (o != NULL));
    json_object_put(o);
    return st;
}

static char *nested(int depth)
{
    /* depth levels: {"a":[[...[]...]]} with depth-1 arrays inside the object */
    size_t n = 6 + 2 * (size_t)depth + 8;
    char *s = malloc(n);
    assert_non_null(s);
    size_t o = 0;
    memcpy(s + o, "{\"a\":", 5);
    o += 5;
    for (int i = 1; i < depth; i++)
        s[o++] = '[';
    for (int i = 1; i < depth; i++)
        s[o++] = ']';
    if (depth == 1) {
        s[o++] = '1';
    }
    s[o++] = '}';
    s[o] = '\0';
    return s;
}

static void test_json_strict(void **state)
{
    (void)state;
    assert_int_equal(parse("{}"), PROTO_OK);
    assert_int_equal(parse(" \t\r\n{\"a\":[1,\"x\",true,null,{}]} \r\n"), PROTO_OK);
    assert_int_equal(parse("{\"a\":\"\\u00e9t\\u00e9 \xc3\xa9\"}"), PROTO_OK);
    assert_int_equal(parse("{\"a\":1.5e3}"), PROTO_OK);
    assert_int_equal(parse("{\"a\":[-0,0.25,1E+2,1e-2,-12]}"), PROTO_OK);
    assert_int_equal(parse("{\"a\":\"\\/\\b\\f\\n\\r\\t\\\"\\\\\\u00E9\x7f\"}"), PROTO_OK);
    assert_int_equal(parse("{\"\":{\"\":[]},\"b\":[{},[],\"\",false]}"), PROTO_OK);

    /* Bad JSON. */
    assert_int_equal(parse(""), PROTO_ERR_JSON);
    assert_int_equal(parse("   "), PROTO_ERR_JSON);
    assert_int_equal(parse("{"), PROTO_ERR_JSON);
    assert_int_equal(parse("{\"a\":1"), PROTO_ERR_JSON);
    assert_int_equal(parse("{a:1}"), PROTO_ERR_JSON);
    assert_int_equal(parse("{'a':1}"), PROTO_ERR_JSON);
    assert_int_equal(parse("{\"a\":'x'}"), PROTO_ERR_JSON);
    assert_int_equal(parse("{\"a\":\"\t\"}"), PROTO_ERR_JSON);
    assert_int_equal(parse("{\"a\":\"\n\"}"), PROTO_ERR_JSON);
    assert_int_equal(parse("{\"a\":\"\\x41\"}"), PROTO_ERR_JSON);
    assert_int_equal(parse("{\"a\":\"\\u12\"}"), PROTO_ERR_JSON);
    assert_int_equal(parse("{\"a\":1.}"), PROTO_ERR_JSON);
    assert_int_equal(parse("{\"a\":.5}"), PROTO_ERR_JSON);
    assert_int_equal(parse("{\"a\":-01}"), PROTO_ERR_JSON);
    assert_int_equal(parse("{\"a\":+1}"), PROTO_ERR_JSON);
    assert_int_equal(parse("{\"a\":1e}"), PROTO_ERR_JSON);
    assert_int_equal(parse("{\"a\":1e999}"), PROTO_ERR_JSON);
    assert_int_equal(parse("{\"a\":True}"), PROTO_ERR_JSON);
    assert_int_equal(parse("{\"a\":[1,]}"), PROTO_ERR_JSON);
    assert_int_equal(parse("{\"a\":[,1]}"), PROTO_ERR_JSON);
    assert_int_equal(parse("{\"a\" 1}"), PROTO_ERR_JSON);
    assert_int_equal(parse("{\"a\":1 \"b\":2}"), PROTO_ERR_JSON);
    assert_int_equal(parse("{,}"), PROTO_ERR_JSON);
    assert_int_equal(parse("{\"a\":[}"), PROTO_ERR_JSON);
    assert_int_equal(parse("{\"a\":{]}"), PROTO_ERR_JSON);
    assert_int_equal(parse("\f{}"), PROTO_ERR_JSON);
    assert_int_equal(parse("{\"a\":1,}"), PROTO_ERR_JSON);
    assert_int_equal(parse("{\"a\":01}"), PROTO_ERR_JSON);
    assert_int_equal(parse("{/*c*/\"a\":1}"), PROTO_ERR_JSON);
    assert_int_equal(parse("{\"a\":NaN}"), PROTO_ERR_JSON);
    assert_int_equal(parse("{\"a\":[Infinity]}"), PROTO_ERR_JSON);
    assert_int_equal(parse("{\"a\":{\"b\":-Infinity}}"), PROTO_ERR_JSON);
    assert_int_equal(parse("{\"a\":\"\xff\"}"), PROTO_ERR_JSON);
    assert_int_equal(parse("{\"a\":\"\xc0\xaf\"}"), PROTO_ERR_JSON);
    assert_int_equal(parse("\xef\xbb\xbf{}"), PROTO_ERR_JSON);

    /* Not an object. */
    assert_int_equal(parse("[]"), PROTO_ERR_JSON);
    assert_int_equal(parse("1 "), PROTO_ERR_JSON);
    assert_int_equal(parse("\"s\""), PROTO_ERR_JSON);
    assert_int_equal(parse("null"), PROTO_ERR_JSON);

    /* Trailing garbage, a second object, a NUL and what follows it. */
    assert_int_equal(parse("{}x"), PROTO_ERR_JSON);
    assert_int_equal(parse("{}{}"), PROTO_ERR_JSON);
    assert_int_equal(parse("{} ,"), PROTO_ERR_JSON);
    json_object *o = NULL;
    assert_int_equal(proto_parse_json("{}\0", 3, &o), PROTO_ERR_JSON);
    assert_int_equal(proto_parse_json("{\"a\":1}\0{\"b\":2}", 15, &o), PROTO_ERR_JSON);
    assert_null(o);
    assert_int_equal(proto_parse_json(NULL, 0, &o), PROTO_ERR_JSON);
    assert_int_equal(proto_parse_json("{}", 2, NULL), PROTO_ERR_FIELD);
}

static void test_json_depth(void **state)
{
    (void)state;
    char *s = nested(PROTO_JSON_DEPTH);
    assert_int_equal(parse(s), PROTO_OK);
    free(s);
    s = nested(PROTO_JSON_DEPTH + 1);
    assert_int_equal(parse(s), PROTO_ERR_JSON);
    free(s);

    /* Very deep: refused early, no stack exhaustion. */
    size_t n = 100000;
    char *deep = malloc(n + 1);
    assert_non_null(deep);
    deep[0] = '{';
    deep[1] = '"';
    deep[2] = 'a';
    deep[3] = '"';
    deep[4] = ':';
    memset(deep + 5, '[', n - 5);
    deep[n] = '\0';
    assert_int_equal(parse(deep), PROTO_ERR_JSON);
    free(deep);
}

static void test_json_read_keeps_step(void **state)
{
    (void)state;
    int sv[2];
    pair(sv);
    put_frame(sv[0], "{\"a\":1}garbage");
    put_frame(sv[0], "[1,2]");
    put_frame(sv[0], "{\"v\":1,\"id\":3,\"method\":\"status\"}");
    json_object *o = NULL;
    assert_int_equal(proto_read_json(sv[1], 1000, &o, NULL, NULL), PROTO_ERR_JSON);
    assert_null(o);
    assert_int_equal(proto_read_json(sv[1], 1000, &o, NULL, NULL), PROTO_ERR_JSON);
    assert_int_equal(proto_read_json(sv[1], 1000, &o, NULL, NULL), PROTO_OK);
    proto_request_t req;
    assert_int_equal(proto_parse_request(o, &req), PROTO_OK);
    assert_int_equal(req.id, 3);
    json_object_put(o);
    close_pair(sv);
}

static void test_json_write_compact(void **state)
{
    (void)state;
    int sv[2];
    pair(sv);
    json_object *params = json_object_new_object();
    json_object_object_add(params, "path", json_object_new_string("a/b c"));
    json_object_object_add(params, "list", json_object_new_array());
    json_object *req = proto_request_new(7, "sign-mail", params);
    assert_non_null(req);
    int r, w;
    probe_pipe(&r, &w);
    assert_int_equal(proto_write_json(sv[0], req, &w, 1), PROTO_OK);
    json_object_put(req);
    close(w);

    char *buf = NULL;
    size_t len = 0, nfds = 0;
    int fds[PROTO_FDS_MAX];
    assert_int_equal(proto_read_frame(sv[1], 1000, &buf, &len, fds, &nfds), PROTO_OK);
    assert_string_equal(buf,
                        "{\"v\":1,\"id\":7,\"method\":\"sign-mail\",\"params\":{\"path\":\"a/b "
                        "c\",\"list\":[]}}");
    assert_int_equal(nfds, 1);
    close(fds[0]);
    close(r);
    free(buf);

    /* The serialised text is wiped after the write; the object is intact. */
    json_object *pin = json_object_new_object();
    json_object_object_add(pin, "pin", json_object_new_string("1234"));
    assert_int_equal(proto_write_json(sv[0], pin, NULL, 0), PROTO_OK);
    assert_string_equal(json_object_to_json_string_ext(pin, JSON_C_TO_STRING_PLAIN),
                        "{\"pin\":\"1234\"}");
    assert_int_equal(proto_read_frame(sv[1], 1000, &buf, &len, NULL, NULL), PROTO_OK);
    assert_string_equal(buf, "{\"pin\":\"1234\"}");
    free(buf);
    /* A used PIN can be wiped in place. */
    const char *p = NULL;
    assert_int_equal(proto_get_string(pin, "pin", true, 0, &p), PROTO_OK);
    proto_wipe_string(pin, "pin");
    assert_memory_equal(p, "\0\0\0\0", 4);
    proto_wipe_string(pin, "missing");
    proto_wipe_string(NULL, "pin");
    json_object_put(pin);

    assert_int_equal(proto_write_json(sv[0], NULL, NULL, 0), PROTO_ERR_FIELD);
    json_object *arr = json_object_new_array();
    assert_int_equal(proto_write_json(sv[0], arr, NULL, 0), PROTO_ERR_FIELD);
    json_object_put(arr);
    close_pair(sv);
}

/* ---- envelope ----------------------------------------------------------- */

static proto_status_t request(const char *s, proto_request_t *out)
{
    json_object *o = NULL;
    assert_int_equal(proto_parse_json(s, strlen(s), &o), PROTO_OK);
    proto_status_t st = proto_parse_request(o, out);
    json_object_put(o);
    return st;
}

static void test_envelope_request(void **state)
{
    (void)state;
    proto_request_t r;
    json_object *o = NULL;
    const char *s = "{\"v\":1,\"id\":42,\"method\":\"sign-digest\",\"params\":{\"role\":\"auth\"}}";
    assert_int_equal(proto_parse_json(s, strlen(s), &o), PROTO_OK);
    assert_int_equal(proto_parse_request(o, &r), PROTO_OK);
    assert_int_equal(r.id, 42);
    assert_string_equal(r.method, "sign-digest");
    const char *role = NULL;
    assert_int_equal(proto_get_string(r.params, "role", true, 16, &role), PROTO_OK);
    assert_string_equal(role, "auth");
    json_object_put(o);

    /* Absent params: an empty object, borrowed from the request. */
    s = "{\"v\":1,\"id\":0,\"method\":\"status\"}";
    assert_int_equal(proto_parse_json(s, strlen(s), &o), PROTO_OK);
    assert_int_equal(proto_parse_request(o, &r), PROTO_OK);
    assert_int_equal(r.id, 0);
    assert_non_null(r.params);
    assert_true(json_object_is_type(r.params, json_type_object));
    assert_int_equal(json_object_object_length(r.params), 0);
    json_object_put(o);
    s = "{\"v\":1,\"id\":0,\"method\":\"status\",\"params\":null}";
    assert_int_equal(proto_parse_json(s, strlen(s), &o), PROTO_OK);
    assert_int_equal(proto_parse_request(o, &r), PROTO_OK);
    assert_true(json_object_is_type(r.params, json_type_object));
    json_object_put(o);

    char name[64];
    memset(name, 'm', sizeof name);
    char buf[200];
    snprintf(buf, sizeof buf, "{\"v\":1,\"id\":1,\"method\":\"%.*s\"}", PROTO_METHOD_MAX, name);
    assert_int_equal(request(buf, &r), PROTO_OK);
    snprintf(buf, sizeof buf, "{\"v\":1,\"id\":1,\"method\":\"%.*s\"}", PROTO_METHOD_MAX + 1, name);
    assert_int_equal(request(buf, &r), PROTO_ERR_FIELD);
    assert_int_equal(r.id, 1);
    assert_int_equal(request("{\"v\":1,\"id\":9007199254740991,\"method\":\"audit.show\"}", &r),
                     PROTO_OK);
    assert_int_equal(r.id, PROTO_INT_MAX);
}

static void test_envelope_request_invalid(void **state)
{
    (void)state;
    proto_request_t r;
    static const char *const bad[] = {
        "{}",
        "{\"id\":1,\"method\":\"status\"}",                       /* no v */
        "{\"v\":2,\"id\":1,\"method\":\"status\"}",               /* other version */
        "{\"v\":\"1\",\"id\":1,\"method\":\"status\"}",           /* v a string */
        "{\"v\":1.0,\"id\":1,\"method\":\"status\"}",             /* v a double */
        "{\"v\":1,\"method\":\"status\"}",                        /* no id */
        "{\"v\":1,\"id\":null,\"method\":\"status\"}",            /* id null */
        "{\"v\":1,\"id\":-1,\"method\":\"status\"}",              /* negative id */
        "{\"v\":1,\"id\":1.5,\"method\":\"status\"}",             /* id a double */
        "{\"v\":1,\"id\":\"1\",\"method\":\"status\"}",           /* id a string */
        "{\"v\":1,\"id\":9007199254740992,\"method\":\"s\"}",     /* id over 2^53-1 */
        "{\"v\":1,\"id\":99999999999999999999,\"method\":\"s\"}", /* clamped by json-c */
        "{\"v\":1,\"id\":1}",                                     /* no method */
        "{\"v\":1,\"id\":1,\"method\":1}",                        /* method a number */
        "{\"v\":1,\"id\":1,\"method\":\"\"}",                     /* empty name */
        "{\"v\":1,\"id\":1,\"method\":\"Status\"}",               /* upper case */
        "{\"v\":1,\"id\":1,\"method\":\"1st\"}",                  /* digit first */
        "{\"v\":1,\"id\":1,\"method\":\"a b\"}",                  /* space */
        "{\"v\":1,\"id\":1,\"method\":\"st\\u0000x\"}",           /* NUL */
        "{\"v\":1,\"id\":1,\"method\":\"st\xc3\xa9\"}",           /* not ASCII */
        "{\"v\":1,\"id\":1,\"method\":\"status\",\"params\":[]}",
        "{\"v\":1,\"id\":1,\"method\":\"status\",\"params\":\"x\"}",
        "{\"v\":1,\"id\":1,\"method\":\"status\",\"extra\":1}", /* unknown member */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (request(bad[i], &r) != PROTO_ERR_FIELD)
            fail_msg("accepted: %s", bad[i]);
        assert_null(r.params);
    }
    /* The id is reported when it could be read, for the error response. */
    assert_int_equal(request("{\"v\":2,\"id\":5,\"method\":\"status\"}", &r), PROTO_ERR_FIELD);
    assert_int_equal(r.id, 5);
    assert_int_equal(request("{\"v\":1,\"id\":-5,\"method\":\"status\"}", &r), PROTO_ERR_FIELD);
    assert_int_equal(r.id, -1);
    assert_int_equal(proto_parse_request(NULL, &r), PROTO_ERR_FIELD);

    json_object *o = NULL;
    const char *s = "{\"v\":2,\"id\":5,\"method\":\"status\"}";
    assert_int_equal(proto_parse_json(s, strlen(s), &o), PROTO_OK);
    assert_false(proto_envelope_version_ok(o));
    json_object_put(o);
    s = "{\"v\":1,\"id\":\"x\"}";
    assert_int_equal(proto_parse_json(s, strlen(s), &o), PROTO_OK);
    assert_true(proto_envelope_version_ok(o));
    json_object_put(o);
}

static void assert_json(json_object *o, const char *expect)
{
    assert_non_null(o);
    assert_string_equal(
        json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE),
        expect);
    json_object_put(o);
}

static void test_builders(void **state)
{
    (void)state;
    assert_json(proto_request_new(1, "status", NULL),
                "{\"v\":1,\"id\":1,\"method\":\"status\",\"params\":{}}");
    json_object *res = json_object_new_object();
    json_object_object_add(res, "card", json_object_new_boolean(1));
    assert_json(proto_result_new(2, res), "{\"v\":1,\"id\":2,\"result\":{\"card\":true}}");
    assert_json(proto_result_new(3, NULL), "{\"v\":1,\"id\":3,\"result\":{}}");
    assert_json(proto_error_new(4, PROTO_E_UNKNOWN_METHOD, "no such method: frobnicate"),
                "{\"v\":1,\"id\":4,\"error\":{\"code\":\"unknown-method\",\"message\":\"no such "
                "method: frobnicate\"}}");
    assert_json(proto_error_new(-1, PROTO_E_BAD_REQUEST, NULL),
                "{\"v\":1,\"id\":null,\"error\":{\"code\":\"bad-request\",\"message\":\"bad-"
                "request\"}}");
    assert_json(proto_error_new_tries(5, PROTO_E_PIN_INCORRECT, "wrong PIN", 2),
                "{\"v\":1,\"id\":5,\"error\":{\"code\":\"pin-incorrect\",\"message\":\"wrong "
                "PIN\",\"tries_left\":2}}");
    assert_json(proto_error_new_tries(6, PROTO_E_PIN_BLOCKED, "blocked", 1000),
                "{\"v\":1,\"id\":6,\"error\":{\"code\":\"pin-blocked\",\"message\":\"blocked\","
                "\"tries_left\":255}}");
    json_object *f = json_object_new_object();
    json_object_object_add(f, "reader", json_object_new_string("Cachet"));
    assert_json(proto_event_new("card-inserted", f),
                "{\"v\":1,\"event\":\"card-inserted\",\"reader\":\"Cachet\"}");
    assert_json(proto_event_new("card-removed", NULL), "{\"v\":1,\"event\":\"card-removed\"}");

    /* Refusals take their argument over (ASan would see a leak otherwise). */
    assert_null(proto_request_new(1, "Bad", json_object_new_object()));
    assert_null(proto_request_new(-1, "status", json_object_new_object()));
    assert_null(proto_request_new(1, "status", json_object_new_array()));
    assert_null(proto_result_new(1, json_object_new_string("x")));
    assert_null(proto_error_new(1, "Not A Code", "m"));
    assert_null(proto_error_new(1, NULL, "m"));
    f = json_object_new_object();
    json_object_object_add(f, "event", json_object_new_string("x"));
    assert_null(proto_event_new("card-inserted", f));
    f = json_object_new_object();
    json_object_object_add(f, "v", json_object_new_int(2));
    assert_null(proto_event_new("card-inserted", f));
    assert_null(proto_event_new("", NULL));

    /* Out of memory inside a builder is a NULL, not a crash. */
    malloc_fail = true;
    assert_null(proto_error_new(1, PROTO_E_INTERNAL, "message"));
    malloc_fail = false;
}

static void test_error_message_sanitised(void **state)
{
    (void)state;
    /* Invalid UTF-8 becomes '?', so the peer's strict parser accepts it. */
    json_object *e = proto_error_new(1, PROTO_E_BACKEND, "bad \xff\xfe byte \xc3\xa9 \xed\xa0\x80");
    assert_non_null(e);
    const char *s = json_object_to_json_string_ext(e, JSON_C_TO_STRING_PLAIN);
    json_object *back = NULL;
    assert_int_equal(proto_parse_json(s, strlen(s), &back), PROTO_OK);
    proto_response_t r;
    assert_int_equal(proto_parse_response(back, &r), PROTO_OK);
    assert_string_equal(r.message, "bad ?? byte \xc3\xa9 ???");
    json_object_put(back);
    json_object_put(e);

    /* Long: cut to PROTO_STRING_MAX at a character boundary. */
    size_t n = PROTO_STRING_MAX + 10;
    char *m = malloc(n + 1);
    assert_non_null(m);
    memset(m, 'a', n);
    memcpy(m + PROTO_STRING_MAX - 1, "\xc3\xa9", 2); /* é straddles the cap */
    m[n] = '\0';
    e = proto_error_new(1, PROTO_E_INTERNAL, m);
    free(m);
    assert_non_null(e);
    s = json_object_to_json_string_ext(e, JSON_C_TO_STRING_PLAIN);
    assert_int_equal(proto_parse_json(s, strlen(s), &back), PROTO_OK);
    assert_int_equal(proto_parse_response(back, &r), PROTO_OK);
    assert_int_equal(strlen(r.message), PROTO_STRING_MAX - 1);
    json_object_put(back);
    json_object_put(e);
}

static proto_status_t response(const char *s, proto_response_t *r, json_object **keep)
{
    json_object *o = NULL;
    assert_int_equal(proto_parse_json(s, strlen(s), &o), PROTO_OK);
    proto_status_t st = proto_parse_response(o, r);
    if (keep != NULL)
        *keep = o;
    else
        json_object_put(o);
    return st;
}

static void test_envelope_response_and_event(void **state)
{
    (void)state;
    proto_response_t r;
    json_object *o = NULL;
    assert_int_equal(response("{\"v\":1,\"id\":3,\"result\":{\"x\":1}}", &r, &o), PROTO_OK);
    assert_int_equal(r.id, 3);
    assert_non_null(r.result);
    assert_null(r.code);
    assert_int_equal(r.tries_left, -1);
    assert_false(proto_is_event(o));
    json_object_put(o);

    assert_int_equal(response("{\"v\":1,\"id\":4,\"error\":{\"code\":\"pin-incorrect\",\"message\":"
                              "\"wrong PIN\",\"tries_left\":1,\"detail\":\"x\"}}",
                              &r, &o),
                     PROTO_OK);
    assert_int_equal(r.id, 4);
    assert_null(r.result);
    assert_string_equal(r.code, "pin-incorrect");
    assert_string_equal(r.message, "wrong PIN");
    assert_int_equal(r.tries_left, 1);
    assert_non_null(r.error);
    json_object_put(o);

    assert_int_equal(
        response("{\"v\":1,\"id\":null,\"error\":{\"code\":\"bad-request\",\"message\":\"m\"}}", &r,
                 NULL),
        PROTO_OK);
    assert_int_equal(r.id, -1);

    static const char *const bad[] = {
        "{\"v\":1,\"id\":1}",
        "{\"v\":1,\"id\":1,\"result\":{},\"error\":{\"code\":\"x\",\"message\":\"m\"}}",
        "{\"v\":1,\"id\":null,\"result\":{}}",
        "{\"v\":1,\"result\":{}}",
        "{\"v\":2,\"id\":1,\"result\":{}}",
        "{\"v\":1,\"id\":1,\"result\":[]}",
        "{\"v\":1,\"id\":1,\"result\":{},\"x\":1}",
        "{\"v\":1,\"id\":1,\"error\":{\"message\":\"m\"}}",
        "{\"v\":1,\"id\":1,\"error\":{\"code\":\"x\"}}",
        "{\"v\":1,\"id\":1,\"error\":{\"code\":\"X Y\",\"message\":\"m\"}}",
        "{\"v\":1,\"id\":1,\"error\":{\"code\":\"x\",\"message\":\"m\",\"tries_left\":-1}}",
        "{\"v\":1,\"id\":1,\"error\":{\"code\":\"x\",\"message\":\"m\",\"tries_left\":\"2\"}}",
        "{\"v\":1,\"id\":1,\"error\":\"x\"}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (response(bad[i], &r, NULL) != PROTO_ERR_FIELD)
            fail_msg("accepted: %s", bad[i]);

    const char *ev = "{\"v\":1,\"event\":\"pin-needed\",\"on\":\"reader\"}";
    assert_int_equal(proto_parse_json(ev, strlen(ev), &o), PROTO_OK);
    assert_true(proto_is_event(o));
    const char *name = NULL;
    assert_int_equal(proto_parse_event(o, &name), PROTO_OK);
    assert_string_equal(name, "pin-needed");
    assert_int_equal(proto_parse_response(o, &r), PROTO_ERR_FIELD);
    json_object_put(o);
    ev = "{\"v\":1,\"event\":\"PIN\"}";
    assert_int_equal(proto_parse_json(ev, strlen(ev), &o), PROTO_OK);
    assert_int_equal(proto_parse_event(o, &name), PROTO_ERR_FIELD);
    json_object_put(o);
}

static void test_hello(void **state)
{
    (void)state;
    json_object *h = proto_hello_new(1, "cachet 0.1.0");
    assert_non_null(h);
    assert_string_equal(json_object_to_json_string_ext(h, JSON_C_TO_STRING_PLAIN),
                        "{\"v\":1,\"id\":1,\"method\":\"hello\",\"params\":{\"versions\":[1],"
                        "\"client\":\"cachet 0.1.0\"}}");
    proto_request_t r;
    assert_int_equal(proto_parse_request(h, &r), PROTO_OK);
    int64_t v = -1;
    const char *client = NULL;
    assert_int_equal(proto_hello_negotiate(r.params, &v, &client), PROTO_OK);
    assert_int_equal(v, PROTO_VERSION);
    assert_string_equal(client, "cachet 0.1.0");
    json_object_put(h);

    static const struct {
        const char *params;
        proto_status_t st;
        int64_t version;
    } cases[] = {
        {"{\"versions\":[2,1]}", PROTO_OK, 1},
        {"{\"versions\":[2,3],\"client\":\"future\"}", PROTO_OK, 0},
        {"{\"versions\":[1,1,1]}", PROTO_OK, 1},
        {"{}", PROTO_ERR_FIELD, -1},
        {"{\"versions\":[]}", PROTO_ERR_FIELD, -1},
        {"{\"versions\":1}", PROTO_ERR_FIELD, -1},
        {"{\"versions\":[\"1\"]}", PROTO_ERR_FIELD, -1},
        {"{\"versions\":[0]}", PROTO_ERR_FIELD, -1},
        {"{\"versions\":[1.0]}", PROTO_ERR_FIELD, -1},
        {"{\"versions\":[1],\"client\":7}", PROTO_ERR_FIELD, -1},
        {"{\"versions\":[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16]}", PROTO_OK, 1},
        {"{\"versions\":[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17]}", PROTO_ERR_FIELD, -1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_object *p = NULL;
        assert_int_equal(proto_parse_json(cases[i].params, strlen(cases[i].params), &p), PROTO_OK);
        v = -1;
        proto_status_t st = proto_hello_negotiate(p, &v, NULL);
        if (st != cases[i].st || v != cases[i].version)
            fail_msg("%s: %s, version %lld", cases[i].params, proto_status_name(st), (long long)v);
        json_object_put(p);
    }

    /* client name cap */
    char name[PROTO_PEER_NAME_MAX + 2];
    memset(name, 'c', sizeof name - 1);
    name[sizeof name - 1] = '\0';
    json_object *p = json_object_new_object();
    json_object *vs = json_object_new_array();
    json_object_array_add(vs, json_object_new_int(1));
    json_object_object_add(p, "versions", vs);
    json_object_object_add(p, "client", json_object_new_string(name));
    assert_int_equal(proto_hello_negotiate(p, &v, &client), PROTO_ERR_FIELD);
    json_object_put(p);
    /* ...which the builder respects. */
    h = proto_hello_new(2, name);
    assert_int_equal(proto_parse_request(h, &r), PROTO_OK);
    assert_int_equal(proto_hello_negotiate(r.params, &v, &client), PROTO_OK);
    assert_int_equal(strlen(client), PROTO_PEER_NAME_MAX);
    json_object_put(h);
}

/* ---- getters ------------------------------------------------------------ */

static json_object *obj_of(const char *s)
{
    json_object *o = NULL;
    assert_int_equal(proto_parse_json(s, strlen(s), &o), PROTO_OK);
    return o;
}

static void test_get_string(void **state)
{
    (void)state;
    json_object *o =
        obj_of("{\"s\":\"hello\",\"n\":1,\"z\":null,\"nul\":\"a\\u0000b\",\"e\":\"\"}");
    const char *s = "unchanged";
    assert_int_equal(proto_get_string(o, "s", true, 5, &s), PROTO_OK);
    assert_string_equal(s, "hello");
    assert_int_equal(proto_get_string(o, "s", true, 4, &s), PROTO_ERR_FIELD);
    assert_int_equal(proto_get_string(o, "e", true, 4, &s), PROTO_OK);
    assert_string_equal(s, "");
    assert_int_equal(proto_get_string(o, "n", false, 0, &s), PROTO_ERR_FIELD);
    assert_int_equal(proto_get_string(o, "nul", false, 0, &s), PROTO_ERR_FIELD);
    s = "unchanged";
    assert_int_equal(proto_get_string(o, "missing", false, 0, &s), PROTO_OK);
    assert_string_equal(s, "unchanged");
    assert_int_equal(proto_get_string(o, "z", false, 0, &s), PROTO_OK);
    assert_string_equal(s, "unchanged");
    assert_int_equal(proto_get_string(o, "missing", true, 0, &s), PROTO_ERR_FIELD);
    assert_int_equal(proto_get_string(o, "z", true, 0, &s), PROTO_ERR_FIELD);
    assert_int_equal(proto_get_string(NULL, "s", false, 0, &s), PROTO_ERR_FIELD);
    json_object_put(o);

    /* The default cap is PROTO_STRING_MAX. */
    char *big = malloc(PROTO_STRING_MAX + 2);
    assert_non_null(big);
    memset(big, 'x', PROTO_STRING_MAX + 1);
    big[PROTO_STRING_MAX + 1] = '\0';
    o = json_object_new_object();
    json_object_object_add(o, "over", json_object_new_string(big));
    big[PROTO_STRING_MAX] = '\0';
    json_object_object_add(o, "at", json_object_new_string(big));
    free(big);
    assert_int_equal(proto_get_string(o, "at", true, 0, &s), PROTO_OK);
    assert_int_equal(proto_get_string(o, "over", true, 0, &s), PROTO_ERR_FIELD);
    assert_int_equal(proto_get_string(o, "over", true, PROTO_STRING_MAX + 1, &s), PROTO_OK);
    json_object_put(o);
}

static void test_get_int_bool(void **state)
{
    (void)state;
    json_object *o = obj_of("{\"i\":5,\"neg\":-7,\"d\":5.0,\"e\":5e0,\"s\":\"5\",\"b\":true,"
                            "\"max\":9007199254740991,\"over\":9007199254740992,"
                            "\"huge\":99999999999999999999,\"tiny\":-99999999999999999999,"
                            "\"z\":null}");
    int64_t x = 99;
    assert_int_equal(proto_get_int(o, "i", true, 0, 10, &x), PROTO_OK);
    assert_int_equal(x, 5);
    assert_int_equal(proto_get_int(o, "i", true, 6, 10, &x), PROTO_ERR_FIELD);
    assert_int_equal(proto_get_int(o, "i", true, 0, 4, &x), PROTO_ERR_FIELD);
    assert_int_equal(proto_get_int(o, "i", true, 5, 5, &x), PROTO_OK);
    assert_int_equal(proto_get_int(o, "i", true, 10, 0, &x), PROTO_ERR_FIELD);
    assert_int_equal(proto_get_int(o, "neg", true, -10, 0, &x), PROTO_OK);
    assert_int_equal(x, -7);
    assert_int_equal(proto_get_int(o, "d", true, 0, 10, &x), PROTO_ERR_FIELD);
    assert_int_equal(proto_get_int(o, "e", true, 0, 10, &x), PROTO_ERR_FIELD);
    assert_int_equal(proto_get_int(o, "s", true, 0, 10, &x), PROTO_ERR_FIELD);
    assert_int_equal(proto_get_int(o, "b", true, 0, 10, &x), PROTO_ERR_FIELD);
    assert_int_equal(proto_get_int(o, "max", true, 0, INT64_MAX, &x), PROTO_OK);
    assert_int_equal(x, PROTO_INT_MAX);
    assert_int_equal(proto_get_int(o, "over", true, 0, INT64_MAX, &x), PROTO_ERR_FIELD);
    assert_int_equal(proto_get_int(o, "huge", true, INT64_MIN, INT64_MAX, &x), PROTO_ERR_FIELD);
    assert_int_equal(proto_get_int(o, "tiny", true, INT64_MIN, INT64_MAX, &x), PROTO_ERR_FIELD);
    x = 99;
    assert_int_equal(proto_get_int(o, "missing", false, 0, 10, &x), PROTO_OK);
    assert_int_equal(proto_get_int(o, "z", false, 0, 10, &x), PROTO_OK);
    assert_int_equal(x, 99);
    assert_int_equal(proto_get_int(o, "missing", true, 0, 10, &x), PROTO_ERR_FIELD);

    bool b = false;
    assert_int_equal(proto_get_bool(o, "b", true, &b), PROTO_OK);
    assert_true(b);
    assert_int_equal(proto_get_bool(o, "i", true, &b), PROTO_ERR_FIELD);
    assert_int_equal(proto_get_bool(o, "s", true, &b), PROTO_ERR_FIELD);
    b = false;
    assert_int_equal(proto_get_bool(o, "missing", false, &b), PROTO_OK);
    assert_false(b);
    assert_int_equal(proto_get_bool(o, "missing", true, &b), PROTO_ERR_FIELD);
    json_object_put(o);
}

static void test_get_add_b64(void **state)
{
    (void)state;
    uint8_t data[300];
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (uint8_t)(i * 7 + 3);
    json_object *o = json_object_new_object();
    assert_true(proto_add_b64(o, "sig", data, sizeof data));
    assert_true(proto_add_b64(o, "empty", NULL, 0));
    json_object_object_add(o, "bad", json_object_new_string("Zm9v YmFy"));
    json_object_object_add(o, "num", json_object_new_int(1));

    uint8_t out[300];
    size_t len = 77;
    assert_int_equal(proto_get_b64(o, "sig", true, out, sizeof out, &len), PROTO_OK);
    assert_int_equal(len, sizeof data);
    assert_memory_equal(out, data, sizeof data);
    assert_int_equal(proto_get_b64(o, "sig", true, out, sizeof out - 1, &len), PROTO_ERR_FIELD);
    assert_int_equal(proto_get_b64(o, "empty", true, out, sizeof out, &len), PROTO_OK);
    assert_int_equal(len, 0);
    assert_int_equal(proto_get_b64(o, "bad", true, out, sizeof out, &len), PROTO_ERR_FIELD);
    assert_int_equal(proto_get_b64(o, "num", true, out, sizeof out, &len), PROTO_ERR_FIELD);
    len = 77;
    assert_int_equal(proto_get_b64(o, "missing", false, out, sizeof out, &len), PROTO_OK);
    assert_int_equal(len, 77);
    assert_int_equal(proto_get_b64(o, "missing", true, out, sizeof out, &len), PROTO_ERR_FIELD);

    /* Blobs are capped at PROTO_BLOB_MAX both ways. */
    uint8_t *blob = calloc(1, PROTO_BLOB_MAX + 1);
    uint8_t *back = calloc(1, PROTO_BLOB_MAX + 1);
    assert_non_null(blob);
    assert_non_null(back);
    assert_false(proto_add_b64(o, "big", blob, PROTO_BLOB_MAX + 1));
    assert_true(proto_add_b64(o, "big", blob, PROTO_BLOB_MAX));
    assert_int_equal(proto_get_b64(o, "big", true, back, PROTO_BLOB_MAX + 1, &len), PROTO_OK);
    assert_int_equal(len, PROTO_BLOB_MAX);
    size_t enc = PROTO_B64_ENCODED_LEN(PROTO_BLOB_MAX + 1) + 1;
    char *s = malloc(enc);
    assert_non_null(s);
    assert_true(proto_b64_encode(blob, PROTO_BLOB_MAX + 1, s, enc));
    json_object_object_add(o, "over", json_object_new_string(s));
    /* Even with a bigger buffer, the cap stays PROTO_BLOB_MAX. */
    assert_int_equal(proto_get_b64(o, "over", true, back, PROTO_BLOB_MAX + 1, &len),
                     PROTO_ERR_FIELD);
    free(s);
    free(blob);
    free(back);
    assert_false(proto_add_b64(NULL, "x", data, 1));
    assert_false(proto_add_b64(o, "x", NULL, 1));
    json_object_put(o);
}

/* ---- base64 ------------------------------------------------------------- */

static void test_b64_rfc4648_vectors(void **state)
{
    (void)state;
    /* RFC 4648 §10. */
    static const struct {
        const char *plain, *b64;
    } v[] = {
        {"", ""},
        {"f", "Zg=="},
        {"fo", "Zm8="},
        {"foo", "Zm9v"},
        {"foob", "Zm9vYg=="},
        {"fooba", "Zm9vYmE="},
        {"foobar", "Zm9vYmFy"},
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        size_t pl = strlen(v[i].plain), bl = strlen(v[i].b64);
        char enc[16];
        assert_true(proto_b64_encode((const uint8_t *)v[i].plain, pl, enc, sizeof enc));
        assert_string_equal(enc, v[i].b64);
        assert_int_equal(PROTO_B64_ENCODED_LEN(pl), bl);
        /* Exactly enough room, then one byte short. */
        assert_true(proto_b64_encode((const uint8_t *)v[i].plain, pl, enc, bl + 1));
        assert_false(proto_b64_encode((const uint8_t *)v[i].plain, pl, enc, bl));

        uint8_t dec[16];
        size_t n = 99;
        assert_true(proto_b64_decode(v[i].b64, bl, dec, sizeof dec, &n));
        assert_int_equal(n, pl);
        assert_memory_equal(dec, v[i].plain, pl);
        assert_true(proto_b64_decode(v[i].b64, bl, dec, pl, &n));
        if (pl > 0)
            assert_false(proto_b64_decode(v[i].b64, bl, dec, pl - 1, &n));
    }
    /* All 64 characters and all byte values survive a round trip. */
    uint8_t all[256], back[256];
    for (int i = 0; i < 256; i++)
        all[i] = (uint8_t)i;
    char enc[PROTO_B64_ENCODED_LEN(256) + 1];
    assert_true(proto_b64_encode(all, sizeof all, enc, sizeof enc));
    size_t n = 0;
    assert_true(proto_b64_decode(enc, strlen(enc), back, sizeof back, &n));
    assert_int_equal(n, 256);
    assert_memory_equal(all, back, 256);
    assert_true(proto_b64_decode("+/+/", 4, back, 3, &n));
    assert_int_equal(n, 3);
    assert_int_equal(back[0], 0xFB);
    assert_int_equal(back[1], 0xFF);
    assert_int_equal(back[2], 0xBF);
}

static void test_b64_invalid(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "Zg",                   /* no padding */
        "Zg=",                  /* short padding */
        "Zm9",                  /* length not a multiple of 4 */
        "Zg==Zg==",             /* padding in the middle */
        "Z===",                 /* too much padding */
        "====",                 /* only padding */
        "=Zm9",                 /* padding first */
        "Zm=v",                 /* padding inside a quantum */
        "Zh==",                 /* non-canonical: pad bits set (§3.5) */
        "Zm9=",                 /* non-canonical */
        "Zm9v\n",               /* line break */
        "Zm 9v",                /* space */
        " Zm9v",                /* leading space */
        "Zm9v\r\n",             /* CRLF */
        "Zm-v",                 /* base64url alphabet (§5) */
        "Zm_v",                 /* base64url alphabet (§5) */
        "Zm9v\x80\x80\x80\x80", /* 8-bit */
        "Zm9vYg===",            /* three '=' */
    };
    uint8_t out[32];
    size_t n = 77;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (proto_b64_decode(bad[i], strlen(bad[i]), out, sizeof out, &n))
            fail_msg("accepted: \"%s\"", bad[i]);
        assert_int_equal(n, 77);
    }
    /* A NUL inside is just a bad character. */
    assert_false(proto_b64_decode("Zm\0v", 4, out, sizeof out, &n));
    assert_false(proto_b64_decode(NULL, 4, out, sizeof out, &n));
    assert_false(proto_b64_decode("Zm9v", 4, NULL, 3, &n));
    assert_false(proto_b64_decode("Zm9v", 4, out, sizeof out, NULL));
    assert_true(proto_b64_decode(NULL, 0, NULL, 0, &n));
    assert_int_equal(n, 0);
    char enc[8];
    assert_false(proto_b64_encode(NULL, 1, enc, sizeof enc));
    assert_false(proto_b64_encode((const uint8_t *)"a", 1, NULL, 8));
    assert_true(proto_b64_encode(NULL, 0, enc, 1));
    assert_string_equal(enc, "");
    assert_false(proto_b64_encode((const uint8_t *)"a", SIZE_MAX, enc, sizeof enc));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_frame_round_trip),
        cmocka_unit_test(test_frame_fds_round_trip),
        cmocka_unit_test(test_frame_extra_fds_closed),
        cmocka_unit_test(test_frame_fds_stay_with_their_frame),
        cmocka_unit_test(test_frame_oversized_refused_without_allocation),
        cmocka_unit_test(test_frame_too_big_to_write),
        cmocka_unit_test(test_frame_truncated),
        cmocka_unit_test(test_frame_timeout),
        cmocka_unit_test(test_write_timeout),
        cmocka_unit_test(test_write_to_closed_peer),
        cmocka_unit_test(test_frame_at_cap_short_reads_and_writes),
        cmocka_unit_test(test_frame_eintr),
        cmocka_unit_test(test_frame_over_pipe),
        cmocka_unit_test(test_frame_bad_arguments),
        cmocka_unit_test(test_status_names),
        cmocka_unit_test(test_json_strict),
        cmocka_unit_test(test_json_depth),
        cmocka_unit_test(test_json_read_keeps_step),
        cmocka_unit_test(test_json_write_compact),
        cmocka_unit_test(test_envelope_request),
        cmocka_unit_test(test_envelope_request_invalid),
        cmocka_unit_test(test_builders),
        cmocka_unit_test(test_error_message_sanitised),
        cmocka_unit_test(test_envelope_response_and_event),
        cmocka_unit_test(test_hello),
        cmocka_unit_test(test_get_string),
        cmocka_unit_test(test_get_int_bool),
        cmocka_unit_test(test_get_add_b64),
        cmocka_unit_test(test_b64_rfc4648_vectors),
        cmocka_unit_test(test_b64_invalid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
