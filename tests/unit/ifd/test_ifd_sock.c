/* Unit tests of the socket transport (docs/simulation.md §1): framing,
 * demultiplexing into control / bulk IN / interrupt IN, caps, and what
 * happens when the cable goes: every waiter returns IFD_ST_GONE at once. The
 * test plays the device on a real Unix socket in a private temp directory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "ifd_transport.h"

int ifd_sock_tests(void);

typedef struct {
    char dir[64];
    char path[128];
    int lfd;
    int dev;
    const ifd_transport_ops_t *ops;
    void *ctx;
} sk_t;

static void quiet(const char *line)
{
    (void)line;
}

static int sk_setup(void **state)
{
    static sk_t s;
    memset(&s, 0, sizeof s);
    ifd_log_set_sink(quiet);
    const char *tmp = getenv("TMPDIR");
    snprintf(s.dir, sizeof s.dir, "%s/ifd-sock-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(s.dir))
        return -1;
    snprintf(s.path, sizeof s.path, "%s/usb.sock", s.dir);
    s.lfd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    strcpy(sa.sun_path, s.path);
    if (bind(s.lfd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(s.lfd, 4) != 0)
        return -1;
    if (ifd_sock_open(s.path, &s.ops, &s.ctx) != IFD_ST_OK)
        return -1;
    s.dev = accept(s.lfd, NULL, NULL);
    if (s.dev < 0)
        return -1;
    *state = &s;
    return 0;
}

static int sk_teardown(void **state)
{
    sk_t *s = *state;
    s->ops->close(s->ctx);
    if (s->dev >= 0)
        close(s->dev);
    close(s->lfd);
    unlink(s->path);
    rmdir(s->dir);
    ifd_log_set_sink(NULL);
    return 0;
}

static void dev_send(int fd, uint8_t kind, uint8_t ep, uint16_t status, const uint8_t *p,
                     uint32_t len)
{
    uint8_t buf[8 + 4096];
    buf[0] = kind;
    buf[1] = ep;
    ifd_put_be16(buf + 2, status);
    ifd_put_be32(buf + 4, len);
    if (len && p)
        memcpy(buf + 8, p, len);
    size_t total = 8 + (p ? len : 0);
    assert_int_equal(write(fd, buf, total), (ssize_t)total);
}

static size_t dev_recv(int fd, uint8_t h[8], uint8_t *p, size_t cap)
{
    size_t got = 0;
    while (got < 8) {
        ssize_t r = read(fd, h + got, 8 - got);
        assert_true(r > 0);
        got += (size_t)r;
    }
    size_t len = ifd_get_be32(h + 4);
    assert_true(len <= cap);
    got = 0;
    while (got < len) {
        ssize_t r = read(fd, p + got, len - got);
        assert_true(r > 0);
        got += (size_t)r;
    }
    return len;
}

typedef struct {
    sk_t *s;
    uint8_t setup[8];
    uint8_t data[64];
    size_t got;
    ifd_st_t st;
} ctl_call_t;

static void *ctl_thread(void *arg)
{
    ctl_call_t *c = arg;
    c->st = c->s->ops->control(c->s->ctx, c->setup, c->data, sizeof c->data, &c->got, 2000);
    return NULL;
}

static void test_sock_control(void **state)
{
    sk_t *s = *state;
    ctl_call_t c = {.s = s, .setup = {0x80, 0x06, 0x00, 0x01, 0x00, 0x00, 18, 0}};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, ctl_thread, &c), 0);
    uint8_t h[8], p[64];
    size_t n = dev_recv(s->dev, h, p, sizeof p);
    assert_int_equal(h[0], 0x01); /* SETUP */
    assert_int_equal(h[1], 0x00);
    assert_int_equal(n, 8);
    assert_memory_equal(p, c.setup, 8);
    const uint8_t desc[18] = {0x12, 0x01};
    dev_send(s->dev, 0x02, 0x00, 0, desc, sizeof desc);
    pthread_join(th, NULL);
    assert_int_equal(c.st, IFD_ST_OK);
    assert_int_equal(c.got, 18);

    /* STALL */
    assert_int_equal(pthread_create(&th, NULL, ctl_thread, &c), 0);
    dev_recv(s->dev, h, p, sizeof p);
    dev_send(s->dev, 0x02, 0x00, 1, NULL, 0);
    pthread_join(th, NULL);
    assert_int_equal(c.st, IFD_ST_STALL);

    /* an answer longer than wLength is a protocol error */
    assert_int_equal(pthread_create(&th, NULL, ctl_thread, &c), 0);
    dev_recv(s->dev, h, p, sizeof p);
    uint8_t big[20] = {0};
    dev_send(s->dev, 0x02, 0x00, 0, big, sizeof big);
    pthread_join(th, NULL);
    assert_int_equal(c.st, IFD_ST_PROTO);

    /* an OUT request carries its data stage */
    ctl_call_t o = {.s = s, .setup = {0x21, 0x01, 0, 0, 0, 0, 3, 0}, .data = {7, 8, 9}};
    assert_int_equal(pthread_create(&th, NULL, ctl_thread, &o), 0);
    n = dev_recv(s->dev, h, p, sizeof p);
    assert_int_equal(n, 11);
    assert_int_equal(p[8], 7);
    dev_send(s->dev, 0x02, 0x00, 0, NULL, 0);
    pthread_join(th, NULL);
    assert_int_equal(o.st, IFD_ST_OK);
}

static void test_sock_demux(void **state)
{
    sk_t *s = *state;
    /* OUT goes out as one frame on ep 0x01 */
    const uint8_t cmd[10] = {0x65, 0, 0, 0, 0, 0, 1, 0, 0, 0};
    assert_int_equal(s->ops->bulk_out(s->ctx, cmd, sizeof cmd, 1000), IFD_ST_OK);
    uint8_t h[8], p[64];
    size_t n = dev_recv(s->dev, h, p, sizeof p);
    assert_int_equal(h[0], 0x03);
    assert_int_equal(h[1], 0x01);
    assert_int_equal(n, 10);
    assert_memory_equal(p, cmd, 10);

    /* IN frames land in their queues, in order, whatever the interleaving */
    const uint8_t ss[10] = {0x81, 0, 0, 0, 0, 0, 1, 0x02, 0, 0};
    const uint8_t n1[2] = {0x50, 0x03};
    dev_send(s->dev, 0x04, 0x83, 0, n1, 2);
    dev_send(s->dev, 0x04, 0x82, 0, ss, 10);
    dev_send(s->dev, 0x04, 0x85, 0, ss, 10); /* unknown endpoint: dropped */
    uint8_t b[64];
    size_t got = 0;
    assert_int_equal(s->ops->bulk_in(s->ctx, b, sizeof b, &got, 2000), IFD_ST_OK);
    assert_int_equal(got, 10);
    assert_memory_equal(b, ss, 10);
    assert_int_equal(s->ops->intr_in(s->ctx, b, sizeof b, &got, 2000), IFD_ST_OK);
    assert_int_equal(got, 2);
    assert_memory_equal(b, n1, 2);
    assert_int_equal(s->ops->bulk_in(s->ctx, b, sizeof b, &got, 30), IFD_ST_TIMEOUT);
    /* a transfer bigger than the caller's buffer */
    dev_send(s->dev, 0x04, 0x82, 0, ss, 10);
    assert_int_equal(s->ops->bulk_in(s->ctx, b, 5, &got, 2000), IFD_ST_OVERFLOW);
    /* a wake makes the next interrupt read return once */
    s->ops->intr_wake(s->ctx);
    assert_int_equal(s->ops->intr_in(s->ctx, b, sizeof b, &got, 2000), IFD_ST_CANCELLED);
    assert_int_equal(s->ops->intr_in(s->ctx, b, sizeof b, &got, 20), IFD_ST_TIMEOUT);
}

typedef struct {
    sk_t *s;
    ifd_st_t st;
    uint64_t elapsed;
    bool intr;
} wait_call_t;

static void *wait_thread(void *arg)
{
    wait_call_t *w = arg;
    uint8_t b[64];
    size_t got;
    uint64_t t0 = ifd_now_ms();
    w->st = w->intr ? w->s->ops->intr_in(w->s->ctx, b, sizeof b, &got, 10000)
                    : w->s->ops->bulk_in(w->s->ctx, b, sizeof b, &got, 10000);
    w->elapsed = ifd_now_ms() - t0;
    return NULL;
}

static void test_sock_gone_and_back(void **state)
{
    sk_t *s = *state;
    wait_call_t wb = {.s = s}, wi = {.s = s, .intr = true};
    pthread_t tb, ti;
    assert_int_equal(pthread_create(&tb, NULL, wait_thread, &wb), 0);
    assert_int_equal(pthread_create(&ti, NULL, wait_thread, &wi), 0);
    /* unplug: the device closes the cable */
    close(s->dev);
    s->dev = -1;
    pthread_join(tb, NULL);
    pthread_join(ti, NULL);
    assert_int_equal(wb.st, IFD_ST_GONE);
    assert_int_equal(wi.st, IFD_ST_GONE);
    assert_true(wb.elapsed < 2000 && wi.elapsed < 2000);
    const uint8_t cmd[10] = {0x65};
    assert_int_equal(s->ops->bulk_out(s->ctx, cmd, sizeof cmd, 1000), IFD_ST_GONE);
    uint8_t setup[8] = {0x80, 6, 0, 1, 0, 0, 18, 0}, d[18];
    size_t got;
    assert_int_equal(s->ops->control(s->ctx, setup, d, sizeof d, &got, 1000), IFD_ST_GONE);

    /* plug again: reconnect */
    assert_int_equal(s->ops->reconnect(s->ctx), IFD_ST_OK);
    s->dev = accept(s->lfd, NULL, NULL);
    assert_true(s->dev >= 0);
    assert_int_equal(s->ops->bulk_out(s->ctx, cmd, sizeof cmd, 1000), IFD_ST_OK);
    uint8_t h[8], p[64];
    assert_int_equal(dev_recv(s->dev, h, p, sizeof p), 10);

    /* a frame over the 4096-byte cap closes the cable */
    uint8_t hdr[8] = {0x04, 0x82, 0, 0, 0, 0, 0x13, 0x88};
    assert_int_equal(write(s->dev, hdr, 8), 8);
    uint8_t b[64];
    assert_int_equal(s->ops->bulk_in(s->ctx, b, sizeof b, &got, 5000), IFD_ST_GONE);
    assert_int_equal(read(s->dev, b, 1), 0); /* the host hung up */
    close(s->dev);
    s->dev = -1;

    /* plugged once more, then the device goes away for good: reconnect
     * fails without blocking */
    assert_int_equal(s->ops->reconnect(s->ctx), IFD_ST_OK);
    s->dev = accept(s->lfd, NULL, NULL);
    close(s->lfd);
    unlink(s->path);
    close(s->dev);
    s->dev = -1;
    assert_int_equal(s->ops->bulk_in(s->ctx, b, sizeof b, &got, 5000), IFD_ST_GONE);
    assert_int_equal(s->ops->reconnect(s->ctx), IFD_ST_GONE);
    /* recreate the listener for teardown */
    s->lfd = socket(AF_UNIX, SOCK_STREAM, 0);
}

static void test_sock_cancel(void **state)
{
    sk_t *s = *state;
    wait_call_t wi = {.s = s, .intr = true};
    pthread_t ti;
    assert_int_equal(pthread_create(&ti, NULL, wait_thread, &wi), 0);
    s->ops->intr_cancel(s->ctx);
    pthread_join(ti, NULL);
    assert_int_equal(wi.st, IFD_ST_CANCELLED);
    assert_true(wi.elapsed < 2000);
    /* sticky */
    uint8_t b[8];
    size_t got;
    assert_int_equal(s->ops->intr_in(s->ctx, b, sizeof b, &got, 1000), IFD_ST_CANCELLED);
}

static void test_sock_unknown_kind(void **state)
{
    sk_t *s = *state;
    /* a host → device kind coming from the device is a protocol violation */
    dev_send(s->dev, 0x03, 0x01, 0, NULL, 0);
    uint8_t b[16];
    size_t got;
    assert_int_equal(s->ops->bulk_in(s->ctx, b, sizeof b, &got, 5000), IFD_ST_GONE);
}

int ifd_sock_tests(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_sock_control, sk_setup, sk_teardown),
        cmocka_unit_test_setup_teardown(test_sock_demux, sk_setup, sk_teardown),
        cmocka_unit_test_setup_teardown(test_sock_gone_and_back, sk_setup, sk_teardown),
        cmocka_unit_test_setup_teardown(test_sock_cancel, sk_setup, sk_teardown),
        cmocka_unit_test_setup_teardown(test_sock_unknown_kind, sk_setup, sk_teardown),
    };
    return cmocka_run_group_tests_name("ifd_sock", tests, NULL, NULL);
}
