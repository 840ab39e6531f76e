/* cachet-card on a real socket (docs/simulation.md §2): the test plays the
 * reader, listening on a card-contacts socket in a private temporary
 * directory. Checks insertion, activation, T=0 exchanges, the persistent state
 * file, clean exits (socket closed, SIGTERM) and the timing model. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "card_test_util.h"

#ifndef CACHET_CARD_BIN
#error "CACHET_CARD_BIN must name the cachet-card executable"
#endif

#define DEADLINE_MS 10000

typedef struct {
    char dir[256];
    char sock[300];
    char state[300];
    char log[300];
    int lfd;
    int fd;
    pid_t pid;
    uint8_t io[4096];
    size_t io_len;
} fx_t;

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void rm_tree(const char *dir)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf -- '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", dir);
}

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    const char *tmp = getenv("TMPDIR");
    snprintf(f->dir, sizeof f->dir, "%s/cachet-card-test.XXXXXX", tmp ? tmp : "/tmp");
    if (!mkdtemp(f->dir))
        return -1;
    snprintf(f->sock, sizeof f->sock, "%s/contacts.sock", f->dir);
    snprintf(f->state, sizeof f->state, "%s/state", f->dir);
    snprintf(f->log, sizeof f->log, "%s/card.log", f->dir);
    f->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    strcpy(a.sun_path, f->sock);
    if (f->lfd < 0 || bind(f->lfd, (struct sockaddr *)&a, sizeof a) != 0 || listen(f->lfd, 1))
        return -1;
    f->fd = -1;
    f->pid = -1;
    *state = f;
    return 0;
}

/* Waits for the child with a deadline; returns its exit status or -1. */
static int wait_exit(fx_t *f)
{
    int64_t end = now_ms() + DEADLINE_MS;
    while (now_ms() < end) {
        int st;
        pid_t r = waitpid(f->pid, &st, WNOHANG);
        if (r == f->pid) {
            f->pid = -1;
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        }
        poll(NULL, 0, 10);
    }
    return -1;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    if (f->fd >= 0)
        close(f->fd);
    if (f->pid > 0) {
        kill(f->pid, SIGKILL);
        waitpid(f->pid, NULL, 0);
    }
    close(f->lfd);
    rm_tree(f->dir);
    free(f);
    return 0;
}

/* Starts the card and accepts its connection (insertion). */
static void insert(fx_t *f, const char *profile, bool timing)
{
    f->pid = fork();
    assert_true(f->pid >= 0);
    if (f->pid == 0) {
        char *argv[12];
        int i = 0;
        argv[i++] = (char *)CACHET_CARD_BIN;
        argv[i++] = (char *)"--profile";
        argv[i++] = (char *)profile;
        argv[i++] = (char *)"--socket";
        argv[i++] = f->sock;
        argv[i++] = (char *)"--state";
        argv[i++] = f->state;
        argv[i++] = (char *)"--log";
        argv[i++] = f->log;
        if (timing)
            argv[i++] = (char *)"--timing";
        argv[i] = NULL;
        execv(argv[0], argv);
        _exit(127);
    }
    struct pollfd p = {.fd = f->lfd, .events = POLLIN};
    assert_int_equal(poll(&p, 1, DEADLINE_MS), 1);
    f->fd = accept4(f->lfd, NULL, NULL, SOCK_CLOEXEC);
    assert_true(f->fd >= 0);
    f->io_len = 0;
}

static void send_frame(fx_t *f, uint8_t kind, const uint8_t *p, size_t n)
{
    uint8_t b[3 + 1024];
    assert_true(n <= 1024);
    b[0] = kind;
    b[1] = (uint8_t)(n >> 8);
    b[2] = (uint8_t)n;
    memcpy(b + 3, p, n);
    assert_int_equal(write(f->fd, b, 3 + n), (ssize_t)(3 + n));
}

static void send_io(fx_t *f, const char *h)
{
    uint8_t b[600];
    size_t n = hex(h, b, sizeof b);
    send_frame(f, 0x04, b, n);
}

static bool read_full(int fd, uint8_t *b, size_t n, int64_t end)
{
    while (n) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int64_t left = end - now_ms();
        if (left <= 0 || poll(&p, 1, (int)left) != 1)
            return false;
        ssize_t r = read(fd, b, n);
        if (r <= 0)
            return false;
        b += r;
        n -= (size_t)r;
    }
    return true;
}

/* The next n characters the card sends on I/O. */
static void recv_io(fx_t *f, uint8_t *out, size_t n)
{
    int64_t end = now_ms() + DEADLINE_MS;
    while (f->io_len < n) {
        uint8_t h[3];
        assert_true(read_full(f->fd, h, 3, end));
        assert_int_equal(h[0], 0x04);
        size_t l = (size_t)h[1] << 8 | h[2];
        assert_true(l <= 1024 && f->io_len + l <= sizeof f->io);
        assert_true(read_full(f->fd, f->io + f->io_len, l, end));
        f->io_len += l;
    }
    memcpy(out, f->io, n);
    memmove(f->io, f->io + n, f->io_len - n);
    f->io_len -= n;
}

static void expect_io(fx_t *f, const char *h)
{
    uint8_t want[600], got[600];
    size_t n = hex(h, want, sizeof want);
    recv_io(f, got, n);
    assert_memory_equal(got, want, n);
}

static void power_on(fx_t *f, const char *atr)
{
    static const uint8_t on[1] = {1}, clk[4] = {0x00, 0x3D, 0x09, 0x00}; /* 4 MHz */
    send_frame(f, 0x01, on, 1);
    send_frame(f, 0x03, clk, 4);
    send_frame(f, 0x02, on, 1);
    expect_io(f, atr);
}

static bool file_has(const char *path, const char *needle)
{
    FILE *fp = fopen(path, "r");
    if (!fp)
        return false;
    char buf[1024];
    size_t n = fread(buf, 1, sizeof buf - 1, fp);
    fclose(fp);
    buf[n] = 0;
    return strstr(buf, needle) != NULL;
}

#define ATR_T0 "3B AC 00 40 2A 00 12 25 00 64 80 00 03 10 00 90 00"

static void test_insert_verify_persist_remove(void **state)
{
    fx_t *f = *state;
    insert(f, PROFILE_DIR("cps-rpps"), false);
    power_on(f, ATR_T0);
    /* wrong PIN: the state file is written before the answer leaves the card */
    send_io(f, "00 20 00 01 04");
    expect_io(f, "20");
    send_io(f, "39 39 39 39");
    expect_io(f, "63 C2");
    assert_true(file_has(f->state, "pin_tries_left = 2"));
    struct stat st;
    assert_int_equal(stat(f->state, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    /* power cycle: volatile state gone, counter kept */
    static const uint8_t off[1] = {0}, on[1] = {1};
    send_frame(f, 0x01, off, 1);
    send_io(f, "00 20 00 01 00"); /* lost: the card is unpowered */
    send_frame(f, 0x01, on, 1);
    send_frame(f, 0x02, on, 1);
    expect_io(f, ATR_T0);
    send_io(f, "00 20 00 01 00");
    expect_io(f, "63 C2");
    /* warm reset */
    send_frame(f, 0x02, off, 1);
    send_frame(f, 0x02, on, 1);
    expect_io(f, ATR_T0);
    /* removal by the reader closing the socket: clean exit */
    close(f->fd);
    f->fd = -1;
    assert_int_equal(wait_exit(f), 0);
    /* a new process keeps the counter; the PIN is never logged */
    insert(f, PROFILE_DIR("cps-rpps"), false);
    power_on(f, ATR_T0);
    send_io(f, "00 20 00 01 00");
    expect_io(f, "63 C2");
    send_io(f, "00 20 00 01 04");
    expect_io(f, "20");
    send_io(f, "31 32 33 34");
    expect_io(f, "90 00");
    assert_true(file_has(f->state, "pin_tries_left = 3"));
    assert_true(file_has(f->log, "00 20 00 01 04 ** ** ** **"));
    assert_false(file_has(f->log, "31 32 33 34"));
    /* SIGTERM: clean exit */
    assert_int_equal(kill(f->pid, SIGTERM), 0);
    assert_int_equal(wait_exit(f), 0);
}

static void test_oversized_frame_leaves(void **state)
{
    fx_t *f = *state;
    insert(f, PROFILE_DIR("cps-rpps"), false);
    uint8_t h[3] = {0x04, 0x04, 0x01}; /* 1025 bytes: over the cap */
    assert_int_equal(write(f->fd, h, 3), 3);
    assert_int_equal(wait_exit(f), 0);
}

static void test_t1_pps_and_block(void **state)
{
    fx_t *f = *state;
    insert(f, PROFILE_DIR("cps-t1"), false);
    power_on(f, "3B 9B 18 81 01 00 12 25 00 64 80 00 03 43 00 90 00");
    send_io(f, "FF 11 18 F6");
    expect_io(f, "FF 11 18 F6");
    send_io(f, "00 C1 01 FE 3E");
    expect_io(f, "00 E1 01 FE 1E");
    /* I(0): VERIFY status -> I(0): 63 C3 */
    send_io(f, "00 00 04 00 20 00 01 25");
    expect_io(f, "00 00 02 63 C3 A2");
    close(f->fd);
    f->fd = -1;
    assert_int_equal(wait_exit(f), 0);
}

/* Timing model: an RSA command costs at least timing_compute_rsa_ms (150 ms
 * in the generated profiles) plus wire time; a lower bound only. */
static void test_timing_model(void **state)
{
    fx_t *f = *state;
    insert(f, PROFILE_DIR("cps-rpps"), true);
    power_on(f, ATR_T0);
    send_io(f, "00 20 00 01 04");
    expect_io(f, "20");
    send_io(f, "31 32 33 34");
    expect_io(f, "90 00");
    send_io(f, "00 22 41 A4 06");
    expect_io(f, "22");
    send_io(f, "84 01 82 80 01 02");
    expect_io(f, "90 00");
    send_io(f, "00 88 00 00 33");
    expect_io(f, "88");
    int64_t t0 = now_ms();
    send_io(f, "30 31 30 0D 06 09 60 86 48 01 65 03 04 02 01 05 00 04 20"
               " 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00"
               " 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00");
    expect_io(f, "60");
    expect_io(f, "61 00");
    int64_t dt = now_ms() - t0;
    /* 51 characters received at 4 MHz ≈ 57 ms, plus 150 ms of compute */
    assert_true(dt >= 150 + 50);
    close(f->fd);
    f->fd = -1;
    assert_int_equal(wait_exit(f), 0);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_insert_verify_persist_remove, setup, teardown),
        cmocka_unit_test_setup_teardown(test_oversized_frame_leaves, setup, teardown),
        cmocka_unit_test_setup_teardown(test_t1_pps_and_block, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timing_model, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
