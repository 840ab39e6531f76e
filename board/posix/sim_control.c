/* sim_control: the control channel of the posix board (docs/simulation.md §3),
 * a test-only text protocol on a 0600 socket whose peers must have our uid:
 * status, plug/unplug, screen, key. Also implements port_ui.h: the display is
 * what `screen` reads back, the keypad is what `key` queues, and
 * port_ui_wait_key keeps serving this channel (and the card contacts, so a
 * removal is seen) while the firmware waits for the holder. */
#include "sim.h"
#include "sim_proto.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "app.h"
#include "icc.h"
#include "port_icc.h"
#include "port_ui.h"
#include "usb.h"

#define CTL_CLIENTS_MAX 8
#define CTL_WRITE_TIMEOUT_MS 2000
#define CTL_ANSWER_MAX 2048
#define UI_NAME_MAX 64
#define UI_LINE_MAX 128 /* bytes: 21 characters of UTF-8 need at most 84 */
#define UI_KEYS_MAX 16

typedef struct {
    int fd;
    size_t len;
    char buf[SIM_CTL_LINE_MAX + 2];
} ctl_client_t;

static char ctl_path[512];
static int ctl_lfd = -1;
static ctl_client_t ctl_clients[CTL_CLIENTS_MAX];

static bool ui_shown;
static char ui_name[UI_NAME_MAX];
static char ui_lines[PORT_UI_LINES][UI_LINE_MAX];
static port_key_t ui_keys[UI_KEYS_MAX];
static size_t ui_keys_head;
static size_t ui_keys_len;
static bool ui_waiting; /* the firmware is blocked in port_ui_wait_key */

_Static_assert(UI_LINE_MAX > 4 * PORT_UI_COLUMNS, "a display line fits in UTF-8");
/* Stored texts are sanitized (no control characters), so JSON escaping at most
 * doubles them ('"' and '\\'). */
_Static_assert(CTL_ANSWER_MAX > 32 + PORT_UI_LINES * (2 * UI_LINE_MAX + 3) + 2 * UI_NAME_MAX,
               "a JSON screen answer always fits");

bool sim_control_open(const char *dir)
{
    int n = snprintf(ctl_path, sizeof ctl_path, "%s/control.sock", dir);
    if (n < 0 || (size_t)n >= sizeof ctl_path)
        return false;
    for (size_t i = 0; i < CTL_CLIENTS_MAX; i++)
        ctl_clients[i].fd = -1;
    ctl_lfd = sim_sock_listen(ctl_path);
    return ctl_lfd >= 0;
}

static void client_drop(ctl_client_t *c)
{
    close(c->fd);
    c->fd = -1;
    c->len = 0;
}

void sim_control_close(void)
{
    for (size_t i = 0; i < CTL_CLIENTS_MAX; i++)
        if (ctl_clients[i].fd >= 0)
            client_drop(&ctl_clients[i]);
    if (ctl_lfd >= 0) {
        close(ctl_lfd);
        ctl_lfd = -1;
        unlink(ctl_path);
    }
}

size_t sim_control_pollfds(struct pollfd *fds, size_t cap)
{
    size_t n = 0;
    if (n < cap && ctl_lfd >= 0)
        fds[n++] = (struct pollfd){.fd = ctl_lfd, .events = POLLIN};
    for (size_t i = 0; i < CTL_CLIENTS_MAX && n < cap; i++)
        if (ctl_clients[i].fd >= 0)
            fds[n++] = (struct pollfd){.fd = ctl_clients[i].fd, .events = POLLIN};
    return n;
}

/* Answer buffer: lines appended, then written with one write. */
typedef struct {
    char text[CTL_ANSWER_MAX];
    size_t len;
} answer_t;

static void answer_add(answer_t *a, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void answer_add(answer_t *a, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(a->text + a->len, sizeof a->text - a->len, fmt, ap);
    va_end(ap);
    if (n > 0 && (size_t)n < sizeof a->text - a->len)
        a->len += (size_t)n;
}

static void do_status(answer_t *a)
{
    icc_stats_t st;
    icc_params_t p;
    unsigned protocol = ICC_PROTO_T0;
    unsigned fidi = 0x11; /* ISO/IEC 7816-3 §7.1 default Fi=372, Di=1 */
    bool powered = icc_powered();
    uint16_t f;
    uint8_t d;
    uint32_t clk;
    bool vcc;

    icc_get_stats(&st);
    if (powered && icc_get_params(&p) == ICC_OK) {
        protocol = p.protocol;
        fidi = p.fidi;
    }
    sim_icc_timing(&f, &d, &clk, &vcc);
    answer_add(a,
               "usb=%s card=%s powered=%d protocol=T%u fidi=%02X clock=%" PRIu32
               " apdus=%" PRIu32 " chars_sent=%" PRIu32 " chars_recv=%" PRIu32
               " wire_us=%" PRIu64 " host=%d configured=%d f=%u d=%u\n",
               sim_usb_plugged() ? "plugged" : "unplugged",
               port_icc_present() ? "present" : "absent", powered ? 1 : 0,
               protocol, fidi, icc_clock_hz(), st.apdus, st.chars_sent,
               st.chars_recv, st.wire_us, sim_usb_host_connected() ? 1 : 0,
               usb_configured() ? 1 : 0, (unsigned)f, (unsigned)d);
}

static void do_screen(answer_t *a, bool json)
{
    if (!json) {
        for (size_t i = 0; ui_shown && i < PORT_UI_LINES; i++)
            answer_add(a, "%s\n", ui_lines[i]);
        return;
    }
    char out[CTL_ANSWER_MAX - 8];
    size_t pos = 0;
    answer_add(a, "{\"screen\":");
    bool ok = sim_json_append_string(out, sizeof out, &pos, ui_shown ? ui_name : "idle");
    answer_add(a, "%s,\"lines\":[", out);
    for (size_t i = 0; ok && ui_shown && i < PORT_UI_LINES; i++) {
        pos = 0;
        ok = sim_json_append_string(out, sizeof out, &pos, ui_lines[i]);
        answer_add(a, "%s%s", i ? "," : "", out);
    }
    answer_add(a, "]}\n");
}

static bool key_push(port_key_t k)
{
    if (ui_keys_len == UI_KEYS_MAX)
        return false;
    ui_keys[(ui_keys_head + ui_keys_len) % UI_KEYS_MAX] = k;
    ui_keys_len++;
    return true;
}

/* Executes one command line and writes the answer; false to drop the client. */
static bool run_command(ctl_client_t *c, const char *line)
{
    static answer_t a;
    sim_cmd_t cmd;

    a.len = 0;
    a.text[0] = '\0';
    sim_cmd_parse(line, &cmd);
    switch (cmd.kind) {
    case SIM_CMD_STATUS:
        do_status(&a);
        answer_add(&a, "OK\n");
        break;
    case SIM_CMD_PLUG:
    case SIM_CMD_UNPLUG:
        sim_usb_set_plugged(cmd.kind == SIM_CMD_PLUG);
        answer_add(&a, "OK\n");
        break;
    case SIM_CMD_SCREEN:
    case SIM_CMD_SCREEN_JSON:
        do_screen(&a, cmd.kind == SIM_CMD_SCREEN_JSON);
        answer_add(&a, "OK\n");
        break;
    case SIM_CMD_KEY:
        if (key_push(cmd.key)) {
            sim_log(SIM_LOG_DEBUG, "control: key pressed");
            answer_add(&a, "OK\n");
        } else {
            answer_add(&a, "ERR key queue full\n");
        }
        break;
    case SIM_CMD_INVALID:
    default:
        sim_log(SIM_LOG_INFO, "control: refused command (%s)", cmd.why);
        answer_add(&a, "ERR %s\n", cmd.why);
        break;
    }
    if (!sim_sock_write_all(c->fd, a.text, a.len, CTL_WRITE_TIMEOUT_MS)) {
        sim_log(SIM_LOG_WARN, "control: write: %s", strerror(errno));
        return false;
    }
    sim_app_poll();
    return true;
}

static void on_client(ctl_client_t *c)
{
    ssize_t n = read(c->fd, c->buf + c->len, SIM_CTL_LINE_MAX + 1 - c->len);
    if (n == 0) {
        client_drop(c);
        return;
    }
    if (n < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
            sim_log(SIM_LOG_WARN, "control: read: %s", strerror(errno));
            client_drop(c);
        }
        return;
    }
    c->len += (size_t)n;
    for (;;) {
        char *nl = memchr(c->buf, '\n', c->len);
        if (nl == NULL)
            break;
        size_t line_len = (size_t)(nl - c->buf);
        if (memchr(c->buf, '\0', line_len) != NULL) {
            sim_log(SIM_LOG_WARN, "control: NUL in command line");
            client_drop(c);
            return;
        }
        *nl = '\0';
        if (line_len > 0 && c->buf[line_len - 1] == '\r')
            c->buf[line_len - 1] = '\0';
        if (!run_command(c, c->buf)) {
            client_drop(c);
            return;
        }
        memmove(c->buf, nl + 1, c->len - line_len - 1);
        c->len -= line_len + 1;
    }
    if (c->len > SIM_CTL_LINE_MAX) {
        static const char err[] = "ERR line too long\n";
        sim_log(SIM_LOG_WARN, "control: command line too long");
        (void)sim_sock_write_all(c->fd, err, sizeof err - 1, CTL_WRITE_TIMEOUT_MS);
        client_drop(c);
    }
}

static void on_accept(void)
{
    int fd = sim_sock_accept(ctl_lfd, "control");
    if (fd < 0)
        return;
    for (size_t i = 0; i < CTL_CLIENTS_MAX; i++) {
        if (ctl_clients[i].fd < 0) {
            ctl_clients[i].fd = fd;
            ctl_clients[i].len = 0;
            return;
        }
    }
    sim_log(SIM_LOG_WARN, "control: too many clients, one refused");
    close(fd);
}

bool sim_control_handle(const struct pollfd *fds, size_t n)
{
    bool event = false;
    for (size_t i = 0; i < n; i++) {
        if (fds[i].revents == 0)
            continue;
        event = true;
        if (fds[i].fd == ctl_lfd) {
            on_accept();
            continue;
        }
        for (size_t j = 0; j < CTL_CLIENTS_MAX; j++)
            if (ctl_clients[j].fd == fds[i].fd)
                on_client(&ctl_clients[j]);
    }
    return event;
}

/* --auto-confirm (trust): a simulated holder who presses OK on every
 * confirm-signature screen, for tests written before the gate existed. The
 * firmware still asks (ui_confirm); only the key comes by itself. */
static bool ui_auto_confirm;

void sim_control_set_auto_confirm(bool on)
{
    ui_auto_confirm = on;
}

void port_ui_show(const char *name, const char *const lines[PORT_UI_LINES])
{
    sim_text_sanitize(ui_name, sizeof ui_name, name != NULL ? name : "");
    for (size_t i = 0; i < PORT_UI_LINES; i++)
        sim_text_sanitize(ui_lines[i], sizeof ui_lines[i],
                          lines != NULL && lines[i] != NULL ? lines[i] : "");
    ui_shown = true;
    sim_log(SIM_LOG_INFO, "ui: screen %s", ui_name);
    if (ui_auto_confirm && strcmp(ui_name, "confirm-signature") == 0 && key_push(PORT_KEY_OK))
        sim_log(SIM_LOG_WARN, "ui: auto-confirm pressed OK");
}

port_key_t port_ui_key(void)
{
    if (ui_keys_len == 0)
        return PORT_KEY_NONE;
    port_key_t k = ui_keys[ui_keys_head];
    ui_keys_head = (ui_keys_head + 1) % UI_KEYS_MAX;
    ui_keys_len--;
    return k;
}

void sim_app_poll(void)
{
    if (!ui_waiting)
        app_poll();
}

#define UI_WAIT_FDS 16

port_key_t port_ui_wait_key(uint32_t timeout_us)
{
    port_key_t k = port_ui_key();
    if (k != PORT_KEY_NONE || ui_waiting)
        return k; /* (never nested: the firmware is single-threaded) */
    uint64_t deadline = sim_now_us() + timeout_us;
    bool present = port_icc_present();
    ui_waiting = true;
    for (;;) {
        if (sim_stopping()) {
            /* SIGTERM while the holder is asked: end the question at once. */
            k = PORT_KEY_CANCEL;
            break;
        }
        uint64_t now = sim_now_us();
        if (now >= deadline)
            break;
        struct pollfd fds[UI_WAIT_FDS];
        size_t ni = sim_icc_pollfds(fds, 2);
        size_t nc = sim_control_pollfds(fds + ni, UI_WAIT_FDS - ni);
        int r = sim_ppoll(fds, ni + nc, deadline - now);
        if (r < 0 && errno != EINTR) {
            sim_log(SIM_LOG_ERROR, "ui: poll: %s", strerror(errno));
            break;
        }
        if (r > 0) {
            (void)sim_icc_handle(fds, ni);
            (void)sim_control_handle(fds + ni, nc);
        }
        k = port_ui_key();
        if (k != PORT_KEY_NONE)
            break;
        if (port_icc_present() != present)
            break; /* let the firmware look at the slot (its wait hook) */
    }
    ui_waiting = false;
    return k;
}
