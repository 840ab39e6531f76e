/* Plumbing test of board/posix: cachet-sim's loop (sim_run) runs in a forked
 * child over fake firmware (fake_fw.c); the test plays the host on usb.sock,
 * the card on contacts.sock and cachet-sim-ctl on control.sock, per
 * docs/simulation.md §1–§3. Hermetic: a mkdtemp directory, readiness polled
 * with deadlines, no sleeps. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sim.h"
#include "port_status.h"
#include "sim_proto.h"

#define DEADLINE_MS 5000

typedef struct {
    char dir[64];
    pid_t pid;
} fixture_t;

static uint64_t ms_now(void)
{
    return sim_now_us() / 1000u;
}

static void path_in(const fixture_t *f, const char *name, char *out, size_t cap)
{
    int n = snprintf(out, cap, "%s/%s", f->dir, name);
    assert_true(n > 0 && (size_t)n < cap);
}

static int connect_to(const fixture_t *f, const char *name)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    path_in(f, name, sa.sun_path, sizeof sa.sun_path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    return fd;
}

static void send_all(int fd, const void *buf, size_t len)
{
    assert_int_equal(send(fd, buf, len, MSG_NOSIGNAL), (ssize_t)len);
}

/* Reads exactly len bytes within the deadline; false on EOF. */
static bool recv_exact(int fd, void *buf, size_t len)
{
    uint8_t *p = buf;
    uint64_t deadline = ms_now() + DEADLINE_MS;
    while (len > 0) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        uint64_t now = ms_now();
        assert_true(now < deadline);
        int r = poll(&pfd, 1, (int)(deadline - now));
        assert_true(r >= 0 || errno == EINTR);
        if (r <= 0)
            continue;
        ssize_t n = read(fd, p, len);
        if (n == 0 || (n < 0 && errno == ECONNRESET))
            return false;
        assert_true(n > 0);
        p += n;
        len -= (size_t)n;
    }
    return true;
}

/* True when the peer closed fd (EOF within the deadline). */
static bool wait_eof(int fd)
{
    uint8_t b;
    uint64_t deadline = ms_now() + DEADLINE_MS;
    while (ms_now() < deadline) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (poll(&pfd, 1, 50) > 0) {
            ssize_t n = read(fd, &b, 1);
            if (n == 0 || (n < 0 && errno == ECONNRESET))
                return true;
        }
    }
    return false;
}

static void usb_send(int fd, uint8_t kind, uint8_t ep, const void *data, size_t len)
{
    uint8_t frame[SIM_USB_FRAME_MAX];
    sim_usb_hdr_t h = {.kind = kind, .ep = ep, .len = (uint32_t)len};
    sim_usb_hdr_encode(frame, &h);
    memcpy(frame + SIM_USB_HDR_LEN, data, len);
    send_all(fd, frame, SIM_USB_HDR_LEN + len);
}

static size_t usb_recv(int fd, sim_usb_hdr_t *h, uint8_t *payload)
{
    uint8_t hdr[SIM_USB_HDR_LEN];
    assert_true(recv_exact(fd, hdr, sizeof hdr));
    uint32_t len = (uint32_t)hdr[4] << 24 | (uint32_t)hdr[5] << 16 |
                   (uint32_t)hdr[6] << 8 | hdr[7];
    assert_true(len <= SIM_USB_PAYLOAD_MAX);
    h->kind = hdr[0];
    h->ep = hdr[1];
    h->status = (uint16_t)(hdr[2] << 8 | hdr[3]);
    h->len = len;
    if (len > 0)
        assert_true(recv_exact(fd, payload, len));
    return len;
}

/* Reads IN frames until one on ep (skipping others, e.g. 0x83 notifications). */
static size_t usb_recv_ep(int fd, uint8_t ep, uint8_t *payload)
{
    for (;;) {
        sim_usb_hdr_t h;
        size_t n = usb_recv(fd, &h, payload);
        if (h.kind == SIM_USB_IN && h.ep == ep)
            return n;
    }
}

static void ct_send(int fd, uint8_t kind, const void *data, size_t len)
{
    uint8_t frame[SIM_CT_FRAME_MAX];
    sim_ct_hdr_encode(frame, kind, len);
    memcpy(frame + SIM_CT_HDR_LEN, data, len);
    send_all(fd, frame, SIM_CT_HDR_LEN + len);
}

static size_t ct_recv(int fd, uint8_t *kind, uint8_t *payload)
{
    uint8_t hdr[SIM_CT_HDR_LEN];
    assert_true(recv_exact(fd, hdr, sizeof hdr));
    *kind = hdr[0];
    size_t len = (size_t)hdr[1] << 8 | hdr[2];
    assert_true(len <= SIM_CT_PAYLOAD_MAX);
    if (len > 0)
        assert_true(recv_exact(fd, payload, len));
    return len;
}

/* Runs one control command; returns the whole answer (lines incl. final). */
static void control(const fixture_t *f, const char *cmd, char *out, size_t cap)
{
    int fd = connect_to(f, "control.sock");
    char line[300];
    snprintf(line, sizeof line, "%s\n", cmd);
    send_all(fd, line, strlen(line));
    size_t len = 0;
    for (;;) {
        assert_true(len < cap - 1);
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        assert_true(poll(&pfd, 1, DEADLINE_MS) > 0);
        ssize_t n = read(fd, out + len, cap - 1 - len);
        assert_true(n > 0);
        len += (size_t)n;
        out[len] = '\0';
        /* The final line is OK or ERR ... at the start of a line. */
        char *last = len >= 2 ? out + len - 2 : out;
        while (last > out && last[-1] != '\n')
            last--;
        if (out[len - 1] == '\n' && (strncmp(last, "OK", 2) == 0 || strncmp(last, "ERR", 3) == 0))
            break;
    }
    close(fd);
}

static bool status_has(const fixture_t *f, const char *field)
{
    char out[1024];
    control(f, "status", out, sizeof out);
    char pat[64];
    snprintf(pat, sizeof pat, " %s ", field);
    char line[1100];
    snprintf(line, sizeof line, " %s", out);
    char *nl = strchr(line, '\n');
    if (nl)
        *nl = ' ';
    return strstr(line, pat) != NULL;
}

static void wait_status(const fixture_t *f, const char *field)
{
    uint64_t deadline = ms_now() + DEADLINE_MS;
    while (!status_has(f, field)) {
        assert_true(ms_now() < deadline);
        (void)poll(NULL, 0, 5);
    }
}

static int setup(void **state)
{
    static fixture_t f;
    /* Socket paths are short (sun_path): TMPDIR only when it leaves room. */
    const char *tmp = getenv("TMPDIR");
    if (tmp == NULL || tmp[0] == '\0' || strlen(tmp) > 40)
        tmp = "/tmp";
    char tmpl[64];
    snprintf(tmpl, sizeof tmpl, "%s/cachet-sim-test-XXXXXX", tmp);
    assert_non_null(mkdtemp(tmpl));
    snprintf(f.dir, sizeof f.dir, "%s", tmpl);
    char log[128], pidf[128];
    path_in(&f, "sim.log", log, sizeof log);
    path_in(&f, "cachet-sim.pid", pidf, sizeof pidf);

    f.pid = fork();
    assert_true(f.pid >= 0);
    if (f.pid == 0) {
        char *argv[] = {"cachet-sim", "--dir", f.dir, "--log", log, "--trace-data", NULL};
        _exit(sim_run(6, argv));
    }
    uint64_t deadline = ms_now() + DEADLINE_MS;
    struct stat st;
    while (stat(pidf, &st) != 0) {
        assert_true(ms_now() < deadline);
        assert_int_equal(waitpid(f.pid, NULL, WNOHANG), 0);
        (void)poll(NULL, 0, 5);
    }
    *state = &f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    int status = 0;
    char path[128];
    kill(f->pid, SIGTERM);
    assert_int_equal(waitpid(f->pid, &status, 0), f->pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    /* Clean exit removes the sockets and the pid file. */
    path_in(f, "usb.sock", path, sizeof path);
    assert_int_not_equal(access(path, F_OK), 0);
    path_in(f, "cachet-sim.pid", path, sizeof path);
    assert_int_not_equal(access(path, F_OK), 0);
    path_in(f, "sim.log", path, sizeof path);
    if (getenv("CACHET_TEST_SHOW_LOG") != NULL) {
        char cmd[256];
        snprintf(cmd, sizeof cmd, "cat %s", path);
        if (system(cmd) != 0)
            return -1;
    }
    unlink(path);
    rmdir(f->dir);
    return 0;
}

static void test_sockets_are_private(void **state)
{
    fixture_t *f = *state;
    const char *names[] = {"usb.sock", "contacts.sock", "control.sock"};
    for (size_t i = 0; i < 3; i++) {
        char path[128];
        struct stat st;
        path_in(f, names[i], path, sizeof path);
        assert_int_equal(stat(path, &st), 0);
        assert_true(S_ISSOCK(st.st_mode));
        assert_int_equal(st.st_mode & 0777, 0600);
    }
}

static void test_second_instance_refused(void **state)
{
    fixture_t *f = *state;
    char log[128];
    int status = 0;
    path_in(f, "sim2.log", log, sizeof log);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char *argv[] = {"cachet-sim", "--dir", f->dir, "--log", log, NULL};
        _exit(sim_run(5, argv));
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 1);
    unlink(log);
    /* The first one still serves its sockets. */
    assert_true(status_has(f, "card=absent"));
}

static void test_control_basics(void **state)
{
    fixture_t *f = *state;
    char out[2048];
    control(f, "status", out, sizeof out);
    assert_non_null(strstr(out, "usb=plugged card=absent powered=0 protocol=T0 fidi=11 "
                                "clock=5000000 apdus=7 chars_sent=100 chars_recv=200 "
                                "wire_us=12345"));
    assert_non_null(strstr(out, "\nOK\n"));
    control(f, "screen", out, sizeof out);
    assert_string_equal(out, "OK\n");
    control(f, "screen --json", out, sizeof out);
    assert_string_equal(out, "{\"screen\":\"idle\",\"lines\":[]}\nOK\n");
    control(f, "frobnicate", out, sizeof out);
    assert_string_equal(out, "ERR unknown command\n");
    control(f, "key 42", out, sizeof out);
    assert_string_equal(out, "ERR bad key\n");
    control(f, "key 7", out, sizeof out);
    assert_string_equal(out, "OK\n");
    /* The fake firmware shows the key on its next app_poll. */
    uint64_t deadline = ms_now() + DEADLINE_MS;
    do {
        control(f, "screen --json", out, sizeof out);
        assert_true(ms_now() < deadline);
    } while (strstr(out, "\"key\"") == NULL);
    assert_string_equal(out, "{\"screen\":\"key\",\"lines\":[\"Touche\",\"7\","
                             "\"\\\"quote\\\"\",\"\"]}\nOK\n");
    control(f, "screen", out, sizeof out);
    assert_string_equal(out, "Touche\n7\n\"quote\"\n\nOK\n");

    /* Several commands on one connection; an overlong line drops it. */
    int fd = connect_to(f, "control.sock");
    send_all(fd, "status\r\nplug\n", 14);
    char buf[1024] = "";
    size_t len = 0;
    while (strstr(buf, "OK\nOK\n") == NULL) {
        assert_true(len < sizeof buf - 1);
        assert_true(recv_exact(fd, buf + len, 1));
        buf[++len] = '\0';
    }
    char big[SIM_CTL_LINE_MAX + 20];
    memset(big, 'x', sizeof big);
    send_all(fd, big, sizeof big);
    assert_true(wait_eof(fd));
    close(fd);
}

static void test_usb_cable(void **state)
{
    fixture_t *f = *state;
    uint8_t buf[SIM_USB_PAYLOAD_MAX];
    sim_usb_hdr_t h;

    int host = connect_to(f, "usb.sock");
    wait_status(f, "host=1");

    /* GET_DESCRIPTOR(device) with wLength 8: data stage truncated to 8. */
    const uint8_t get_desc[8] = {0x80, 0x06, 0x00, 0x01, 0x00, 0x00, 0x08, 0x00};
    usb_send(host, SIM_USB_SETUP, 0x00, get_desc, sizeof get_desc);
    assert_int_equal(usb_recv(host, &h, buf), 8);
    assert_int_equal(h.kind, SIM_USB_SETUP_DONE);
    assert_int_equal(h.status, SIM_USB_ACK);
    assert_int_equal(buf[0], 18);

    /* Class OUT request with a 3-byte data stage. */
    const uint8_t class_out[11] = {0x21, 0x20, 0, 0, 0, 0, 0x03, 0x00, 1, 2, 3};
    usb_send(host, SIM_USB_SETUP, 0x00, class_out, sizeof class_out);
    /* The data stage was OUT: no IN data, whatever the core answers. */
    assert_int_equal(usb_recv(host, &h, buf), 0);
    assert_int_equal(h.kind, SIM_USB_SETUP_DONE);

    /* Unsupported request → STALL. */
    const uint8_t bad_req[8] = {0x80, 0x7E, 0, 0, 0, 0, 0x10, 0x00};
    usb_send(host, SIM_USB_SETUP, 0x00, bad_req, sizeof bad_req);
    assert_int_equal(usb_recv(host, &h, buf), 0);
    assert_int_equal(h.kind, SIM_USB_SETUP_DONE);
    assert_int_equal(h.status, SIM_USB_STALL);

    const uint8_t set_cfg[8] = {0x00, 0x09, 0x01, 0, 0, 0, 0, 0};
    usb_send(host, SIM_USB_SETUP, 0x00, set_cfg, sizeof set_cfg);
    assert_int_equal(usb_recv(host, &h, buf), 0);
    assert_int_equal(h.status, SIM_USB_ACK);
    wait_status(f, "configured=1");

    /* A bulk OUT echoed on 0x82, as a whole transfer, also at the cap. */
    usb_send(host, SIM_USB_OUT, 0x01, "Ehello", 6);
    assert_int_equal(usb_recv_ep(host, 0x82, buf), 6);
    assert_memory_equal(buf, "Ehello", 6);
    static uint8_t big[SIM_USB_PAYLOAD_MAX];
    memset(big, 0xA5, sizeof big);
    big[0] = 'E';
    usb_send(host, SIM_USB_OUT, 0x01, big, sizeof big);
    assert_int_equal(usb_recv_ep(host, 0x82, buf), sizeof big);
    assert_memory_equal(buf, big, sizeof big);

    /* A second host is refused while the cable is in use. */
    int second = connect_to(f, "usb.sock");
    assert_true(wait_eof(second));
    close(second);

    /* Unplug closes the cable and refuses new connections; plug accepts. */
    char out[1024];
    control(f, "unplug", out, sizeof out);
    assert_string_equal(out, "OK\n");
    assert_true(wait_eof(host));
    close(host);
    assert_true(status_has(f, "usb=unplugged"));
    host = connect_to(f, "usb.sock");
    assert_true(wait_eof(host));
    close(host);
    control(f, "plug", out, sizeof out);
    host = connect_to(f, "usb.sock");
    wait_status(f, "host=1");
    assert_true(status_has(f, "configured=0")); /* reset on plug-in */

    /* A frame over the cap drops the cable but not the board. */
    uint8_t evil[8] = {SIM_USB_OUT, 0x01, 0, 0, 0x00, 0x01, 0x00, 0x00};
    send_all(host, evil, sizeof evil);
    assert_true(wait_eof(host));
    close(host);
    host = connect_to(f, "usb.sock");
    /* A bad kind too. */
    usb_send(host, SIM_USB_IN, 0x82, "x", 1);
    assert_true(wait_eof(host));
    close(host);
    wait_status(f, "host=0");
}

static void test_card_contacts(void **state)
{
    fixture_t *f = *state;
    uint8_t buf[SIM_USB_PAYLOAD_MAX];
    uint8_t kind;

    int host = connect_to(f, "usb.sock");
    wait_status(f, "host=1");
    int card = connect_to(f, "contacts.sock");
    wait_status(f, "card=present");
    /* Presence change reaches the firmware (fake: NotifySlotChange on 0x83). */
    assert_int_equal(usb_recv_ep(host, 0x83, buf), 2);
    assert_int_equal(buf[1], 3);

    /* A second card is refused. */
    int other = connect_to(f, "contacts.sock");
    assert_true(wait_eof(other));
    close(other);

    /* Activation: VCC 1, CLK 5 MHz, RST 1 → ATR sent in two IO frames. */
    usb_send(host, SIM_USB_OUT, 0x01, "C", 1);
    assert_int_equal(ct_recv(card, &kind, buf), 1);
    assert_int_equal(kind, SIM_CT_VCC);
    assert_int_equal(buf[0], 1);
    assert_int_equal(ct_recv(card, &kind, buf), 4);
    assert_int_equal(kind, SIM_CT_CLK);
    assert_memory_equal(buf, "\x00\x4c\x4b\x40", 4);
    assert_int_equal(ct_recv(card, &kind, buf), 1);
    assert_int_equal(kind, SIM_CT_RST);
    assert_int_equal(buf[0], 1);
    ct_send(card, SIM_CT_IO, "\x3b\xac\x00", 3);
    ct_send(card, SIM_CT_IO, "\x40\x2a", 2);
    assert_int_equal(usb_recv_ep(host, 0x82, buf), 5);
    assert_memory_equal(buf, "\x3b\xac\x00\x40\x2a", 5);

    /* Characters to the card go as IO frames; its answer comes back. */
    usb_send(host, SIM_USB_OUT, 0x01, "S\x00\xa4\x04\x00\x0d", 6);
    assert_int_equal(ct_recv(card, &kind, buf), 5);
    assert_int_equal(kind, SIM_CT_IO);
    assert_memory_equal(buf, "\x00\xa4\x04\x00\x0d", 5);
    ct_send(card, SIM_CT_IO, "\xa4", 1);
    assert_int_equal(usb_recv_ep(host, 0x82, buf), 1);
    assert_int_equal(buf[0], 0xa4);

    /* Silence → PORT_TIMEOUT. */
    usb_send(host, SIM_USB_OUT, 0x01, "T", 1);
    assert_int_equal(usb_recv_ep(host, 0x82, buf), 1);
    assert_int_equal(buf[0], PORT_TIMEOUT);

    /* Removal while the firmware waits on the card: PORT_ABSENT, at once. */
    usb_send(host, SIM_USB_OUT, 0x01, "W", 1);
    uint64_t t0 = ms_now();
    close(card);
    assert_int_equal(usb_recv_ep(host, 0x82, buf), 1);
    assert_int_equal(buf[0], PORT_ABSENT);
    assert_true(ms_now() - t0 < 2000);
    wait_status(f, "card=absent");

    /* A card breaking the protocol is dropped (bad kind, then over the cap). */
    card = connect_to(f, "contacts.sock");
    wait_status(f, "card=present");
    ct_send(card, SIM_CT_VCC, "\x01", 1);
    assert_true(wait_eof(card));
    close(card);
    wait_status(f, "card=absent");
    card = connect_to(f, "contacts.sock");
    wait_status(f, "card=present");
    uint8_t evil[3] = {SIM_CT_IO, 0xFF, 0xFF};
    send_all(card, evil, sizeof evil);
    assert_true(wait_eof(card));
    close(card);
    wait_status(f, "card=absent");
    close(host);
}

/* ---- cachet-sim-ctl (docs/simulation.md §4), run as a program ---- */

/* Runs cachet-sim-ctl with up to 3 arguments; its stdout goes to out. */
static int run_ctl(char *out, size_t cap, const char *a1, const char *a2,
                   const char *a3)
{
    int pfd[2];
    assert_int_equal(pipe(pfd), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int nul = open("/dev/null", O_WRONLY);
        dup2(pfd[1], 1);
        if (getenv("CACHET_TEST_SHOW_LOG") == NULL)
            dup2(nul, 2);
        close(pfd[0]);
        close(pfd[1]);
        close(nul);
        execl(CTL_BIN, "cachet-sim-ctl", a1, a2, a3, (char *)NULL);
        _exit(126);
    }
    close(pfd[1]);
    size_t len = 0;
    for (;;) {
        assert_true(len < cap - 1);
        ssize_t n = read(pfd[0], out + len, cap - 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    out[len] = '\0';
    close(pfd[0]);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    return WEXITSTATUS(status);
}

/* This test binary doubles as the card program: with --socket it connects to
 * the contacts socket and stays in the slot until it is told to stop. */
static int fake_card_main(int argc, char **argv)
{
    for (int i = 1; i + 1 < argc; i++) {
        if (strcmp(argv[i], "--socket") != 0)
            continue;
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        snprintf(sa.sun_path, sizeof sa.sun_path, "%s", argv[i + 1]);
        int fd = socket(AF_UNIX, SOCK_STREAM, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0)
            return 1;
        uint8_t buf[256];
        while (read(fd, buf, sizeof buf) > 0)
            ;
        return 0;
    }
    return 2;
}

static void test_ctl_card_cycle(void **state)
{
    fixture_t *f = *state;
    char out[2048], pki[128], path[192], self[512];

    /* A PKI with one profile; the card program is this binary. */
    path_in(f, "pki", pki, sizeof pki);
    assert_int_equal(mkdir(pki, 0700), 0);
    snprintf(path, sizeof path, "%s/profiles", pki);
    assert_int_equal(mkdir(path, 0700), 0);
    snprintf(path, sizeof path, "%s/profiles/cps-test", pki);
    assert_int_equal(mkdir(path, 0700), 0);
    snprintf(path, sizeof path, "%s/profiles/cps-test/profile.conf", pki);
    FILE *conf = fopen(path, "w");
    assert_non_null(conf);
    fputs("name = cps-test\npin_tries_max = 3\npin = 4321\npuk = 87654321\n", conf);
    fclose(conf);
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    assert_true(n > 0);
    self[n] = '\0';
    setenv("CACHET_SIM_DIR", f->dir, 1);
    setenv("CACHET_SIM_PKI", pki, 1);
    setenv("CACHET_CARD_BIN", self, 1);
    setenv("CACHET_CARD_PROFILE", "cps-test", 1);
    unsetenv("CACHET_SIM_READER_CONF");

    assert_int_equal(run_ctl(out, sizeof out, "card", "info", NULL), 1);
    assert_int_equal(run_ctl(out, sizeof out, "card", "remove", NULL), 1);
    assert_int_equal(run_ctl(out, sizeof out, "card", "insert", "nope"), 1);
    assert_int_equal(run_ctl(out, sizeof out, "card", "insert", "../x"), 2);
    assert_int_equal(run_ctl(out, sizeof out, "card", "insert", NULL), 0);
    assert_true(status_has(f, "card=present")); /* insert returns once seen */
    assert_int_equal(run_ctl(out, sizeof out, "card", "insert", NULL), 1);
    assert_int_equal(run_ctl(out, sizeof out, "card", "info", NULL), 0);
    assert_string_equal(out, "profile=cps-test pin=4321 puk=87654321\n");
    assert_int_equal(run_ctl(out, sizeof out, "status", NULL, NULL), 0);
    assert_non_null(strstr(out, "card=present"));
    assert_int_equal(run_ctl(out, sizeof out, "card", "remove", NULL), 0);
    assert_true(status_has(f, "card=absent"));
    assert_int_equal(run_ctl(out, sizeof out, "card", "remove", NULL), 1);

    assert_int_equal(run_ctl(out, sizeof out, "key", "ok", NULL), 0);
    assert_int_equal(run_ctl(out, sizeof out, "key", "55", NULL), 1);
    assert_int_equal(run_ctl(out, sizeof out, "screen", "--json", NULL), 0);
    assert_non_null(strstr(out, "{\"screen\":"));
    assert_int_equal(run_ctl(out, sizeof out, "frobnicate", NULL, NULL), 2);
    assert_int_equal(run_ctl(out, sizeof out, "unplug", NULL, NULL), 0);
    assert_true(status_has(f, "usb=unplugged"));
    assert_int_equal(run_ctl(out, sizeof out, "plug", NULL, NULL), 0);
    assert_true(status_has(f, "usb=plugged"));

    /* Not running: exit status 3. */
    setenv("CACHET_SIM_DIR", pki, 1);
    assert_int_equal(run_ctl(out, sizeof out, "status", NULL, NULL), 3);
    setenv("CACHET_SIM_DIR", f->dir, 1);

    snprintf(path, sizeof path, "%s/profiles/cps-test/profile.conf", pki);
    unlink(path);
    snprintf(path, sizeof path, "%s/profiles/cps-test", pki);
    rmdir(path);
    snprintf(path, sizeof path, "%s/profiles", pki);
    rmdir(path);
    rmdir(pki);
    path_in(f, "card.log", path, sizeof path);
    unlink(path);
}

int main(int argc, char **argv)
{
    if (argc > 1)
        return fake_card_main(argc, argv);

    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_sockets_are_private, setup, teardown),
        cmocka_unit_test_setup_teardown(test_second_instance_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_control_basics, setup, teardown),
        cmocka_unit_test_setup_teardown(test_usb_cable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_card_contacts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ctl_card_cycle, setup, teardown),
    };
    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
