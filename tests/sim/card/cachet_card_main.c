/* cachet-card: a virtual CPS3 card in the slot of the simulated appliance.
 *
 *   cachet-card --profile DIR --socket PATH [--state FILE] [--timing] [--log FILE]
 *
 * Connects to the reader's "card contacts" socket (docs/simulation.md §2: the
 * reader listens; connecting = insertion, exiting = removal), answers VCC /
 * RST / CLK events and I/O characters through card_link (ISO/IEC 7816-3) and
 * card_applet (CPx). Persistent state goes to --state (default DIR/state),
 * written atomically before the answer that follows a change is sent.
 * With --timing, every I/O frame is delayed by the wire time of the characters
 * exchanged (12 etu each, etu = F / (D · f), ISO/IEC 7816-3 §7.1) plus the
 * compute time of the command (profile timing_compute_*_ms); a T=0 card sends
 * NULL bytes about every WWT/2 while it computes (§10.2). */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "card_applet.h"
#include "card_link.h"
#include "card_profile.h"

enum { EV_VCC = 0x01, EV_RST = 0x02, EV_CLK = 0x03, EV_IO = 0x04 };
#define FRAME_MAX        1024     /* docs/simulation.md §2 */
#define DEFAULT_CLOCK_HZ 4000000u /* for the timing model until CLK is seen */

static volatile sig_atomic_t g_stop;

static void on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

/* Fault injection for the tests of the reader's error paths ("a card that
 * sends garbage, stops mid-block or never answers"): SIGUSR1 makes the card
 * read its fault file and apply that fault to its next answer. A reset or
 * power-off heals it, as it would a real card's glitch. */
static volatile sig_atomic_t g_fault_signal;

static void on_fault_signal(int sig)
{
    (void)sig;
    g_fault_signal = 1;
}

typedef enum { FAULT_NONE = 0, FAULT_MUTE, FAULT_GARBAGE, FAULT_TRUNCATE } fault_t;

typedef struct {
    int fd;
    card_link_t *link;
    bool timing;
    uint32_t clock_hz;
    bool vcc, rst;
    uint64_t rx_chars; /* received since the card last wrote (timing model) */
    unsigned rsa_ms, other_ms;
    FILE *log;
    const char *state_path;
    const char *fault_path; /* --fault-file */
    fault_t fault;          /* to apply to the next answer */
    bool muted;             /* silent until the next reset */
    uint64_t rx_since_emit; /* characters received since the card last wrote */
    uint64_t apdus_since_activate;
} sim_t;

static void logf_(sim_t *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void logf_(sim_t *s, const char *fmt, ...)
{
    if (!s->log)
        return;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    fprintf(s->log, "%lld.%03ld ", (long long)ts.tv_sec, ts.tv_nsec / 1000000);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(s->log, fmt, ap);
    va_end(ap);
    fputc('\n', s->log);
    fflush(s->log);
}

static void log_hex(FILE *f, const uint8_t *b, size_t n, size_t mask_from)
{
    for (size_t i = 0; i < n; i++) {
        if (i >= mask_from)
            fputs(" **", f);
        else
            fprintf(f, " %02X", b[i]);
    }
}

/* Every executed command; secrets (VERIFY, CHANGE, RESET RETRY data) are masked. */
static void on_apdu(void *ctx, const uint8_t *c, size_t cl, const uint8_t *r, size_t rl,
                    uint16_t sw)
{
    sim_t *s = ctx;
    s->apdus_since_activate++;
    if (!s->log)
        return;
    size_t mask = (size_t)-1;
    if (cl > 5 && (c[1] == 0x20 || c[1] == 0x24 || c[1] == 0x2C))
        mask = 5;
    logf_(s, "APDU");
    fputs("  C:", s->log);
    log_hex(s->log, c, cl, mask);
    fputs("\n  R:", s->log);
    log_hex(s->log, r, rl > 64 ? 64 : rl, (size_t)-1);
    if (rl > 64)
        fprintf(s->log, " ...(%zu bytes)", rl);
    fprintf(s->log, " SW=%04X\n", sw);
    fflush(s->log);
}

static bool save_cb(void *ctx, const card_persist_t *st)
{
    sim_t *s = ctx;
    bool ok = card_state_save(s->state_path, st);
    if (!ok)
        logf_(s, "cannot write state file %s: %s", s->state_path, strerror(errno));
    return ok;
}

/* Sleeps us microseconds; returns early on SIGTERM. */
static void sleep_us(uint64_t us)
{
    struct timespec ts = {(time_t)(us / 1000000), (long)(us % 1000000) * 1000};
    while (!g_stop && nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static uint64_t wire_us(const sim_t *s, uint64_t chars)
{
    uint16_t f;
    uint8_t d;
    card_link_fd(s->link, &f, &d);
    uint64_t hz = s->clock_hz ? s->clock_hz : DEFAULT_CLOCK_HZ;
    /* 12 etu per character, etu = F / (D · f) */
    return chars * 12u * f * 1000000u / ((uint64_t)d * hz);
}

static bool write_all(int fd, const uint8_t *b, size_t n)
{
    while (n) {
        ssize_t w = send(fd, b, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return false;
        b += w;
        n -= (size_t)w;
    }
    return true;
}

/* One frame, one write (spec/perf.md: answer each message with one write). */
static bool send_frame(sim_t *s, uint8_t kind, const uint8_t *p, size_t n)
{
    uint8_t buf[3 + FRAME_MAX];
    if (n > FRAME_MAX)
        return false;
    buf[0] = kind;
    buf[1] = (uint8_t)(n >> 8);
    buf[2] = (uint8_t)n;
    memcpy(buf + 3, p, n);
    return write_all(s->fd, buf, 3 + n);
}

static void load_fault(sim_t *s)
{
    if (!g_fault_signal)
        return;
    g_fault_signal = 0;
    char word[16] = "";
    FILE *f = s->fault_path ? fopen(s->fault_path, "r") : NULL;
    if (f) {
        if (!fgets(word, sizeof word, f))
            word[0] = '\0';
        fclose(f);
    }
    word[strcspn(word, "\r\n")] = '\0';
    s->fault = !strcmp(word, "mute")       ? FAULT_MUTE
               : !strcmp(word, "garbage")  ? FAULT_GARBAGE
               : !strcmp(word, "truncate") ? FAULT_TRUNCATE
                                           : FAULT_NONE;
    logf_(s, "fault armed: %s", word[0] ? word : "none");
}

/* Applies an armed fault to an answer; returns true when it replaced it. */
static bool apply_fault(sim_t *s, const uint8_t *buf, size_t n, bool *ok)
{
    *ok = true;
    if (s->muted)
        return true;
    fault_t f = s->fault;
    s->fault = FAULT_NONE;
    switch (f) {
    case FAULT_MUTE:
        logf_(s, "fault: mute until reset");
        s->muted = true;
        return true;
    case FAULT_GARBAGE: {
        uint8_t junk[FRAME_MAX];
        size_t m = n < 8 ? 8 : (n > FRAME_MAX ? FRAME_MAX : n);
        for (size_t i = 0; i < m; i++)
            junk[i] = (uint8_t)(0xA5 ^ (i * 37));
        logf_(s, "fault: %zu garbage characters instead of the answer", m);
        *ok = send_frame(s, EV_IO, junk, m);
        return true;
    }
    case FAULT_TRUNCATE:
        logf_(s, "fault: answer cut after %zu of %zu characters, then mute", n / 2, n);
        s->muted = true;
        if (n / 2 > 0)
            *ok = send_frame(s, EV_IO, buf, n / 2);
        return true;
    case FAULT_NONE:
        break;
    }
    return false;
}

static bool on_emit(void *ctx, const uint8_t *buf, size_t n, card_delay_t delay)
{
    sim_t *s = ctx;
    bool fault_ok;
    load_fault(s);
    /* Faults hit answers to commands, never the ATR or a PPS exchange. */
    bool answering = s->rx_since_emit > 0 && s->apdus_since_activate > 0;
    s->rx_since_emit = 0;
    if (answering && apply_fault(s, buf, n, &fault_ok))
        return fault_ok;
    if (s->timing) {
        uint64_t hz = s->clock_hz ? s->clock_hz : DEFAULT_CLOCK_HZ;
        sleep_us(wire_us(s, s->rx_chars));
        s->rx_chars = 0;
        uint64_t compute = delay == CARD_DELAY_RSA    ? (uint64_t)s->rsa_ms * 1000u
                           : delay == CARD_DELAY_FAST ? (uint64_t)s->other_ms * 1000u
                                                      : 0;
        /* T=0: a NULL byte about every WWT/2 while computing (§10.2) */
        uint64_t half = (uint64_t)card_link_wait_clocks(s->link) * 1000000u / hz / 2;
        if (half == 0)
            half = 1;
        while (compute > 0 && !g_stop) {
            uint64_t step = compute < half ? compute : half;
            sleep_us(step);
            compute -= step;
            if (compute > 0 && card_link_protocol(s->link) == 0) {
                static const uint8_t null_byte = 0x60;
                sleep_us(wire_us(s, 1));
                if (!send_frame(s, EV_IO, &null_byte, 1))
                    return false;
            }
        }
        sleep_us(wire_us(s, n));
        /* Pulled out while computing or sending: a removed card says nothing. */
        if (g_stop)
            return false;
    }
    return send_frame(s, EV_IO, buf, n);
}

static void update_wtx(sim_t *s)
{
    /* S(WTX request) multiplier: enough BWTs to cover the RSA compute time */
    uint64_t hz = s->clock_hz ? s->clock_hz : DEFAULT_CLOCK_HZ;
    uint64_t bwt_us = (uint64_t)card_link_wait_clocks(s->link) * 1000000u / hz;
    uint64_t m = 1;
    if (s->timing && bwt_us)
        m = ((uint64_t)s->rsa_ms * 1000u + bwt_us - 1) / bwt_us + 1;
    card_link_set_wtx_multiplier(s->link, (uint8_t)(m > 255 ? 255 : m));
}

static bool read_all(int fd, uint8_t *b, size_t n)
{
    while (n) {
        ssize_t r = read(fd, b, n);
        if (r < 0 && errno == EINTR) {
            if (g_stop)
                return false;
            continue;
        }
        if (r <= 0)
            return false;
        b += r;
        n -= (size_t)r;
    }
    return true;
}

static bool activate(sim_t *s)
{
    s->rx_chars = 0;
    s->muted = false;
    logf_(s, "activate: ATR");
    s->rx_since_emit = 0;
    s->apdus_since_activate = 0;
    return card_link_activate(s->link);
}

static int run(sim_t *s)
{
    uint8_t hdr[3], payload[FRAME_MAX];
    while (!g_stop) {
        if (!read_all(s->fd, hdr, 3))
            break;
        size_t n = (size_t)hdr[1] << 8 | hdr[2];
        if (n > FRAME_MAX) {
            logf_(s, "frame of %zu bytes over the cap: leaving the slot", n);
            break;
        }
        if (!read_all(s->fd, payload, n))
            break;
        switch (hdr[0]) {
        case EV_VCC:
            if (n != 1)
                goto bad;
            if (payload[0]) {
                s->vcc = true;
                logf_(s, "VCC on");
                if (s->rst && !activate(s))
                    return 1;
            } else {
                logf_(s, "VCC off");
                s->vcc = false;
                s->rst = false;
                card_link_deactivate(s->link);
            }
            break;
        case EV_RST:
            if (n != 1)
                goto bad;
            if (payload[0]) {
                bool was = s->rst;
                s->rst = true;
                logf_(s, "RST released");
                if (s->vcc && !was && !activate(s))
                    return 1;
            } else {
                logf_(s, "RST asserted");
                s->rst = false;
                card_link_deactivate(s->link);
            }
            break;
        case EV_CLK:
            if (n != 4)
                goto bad;
            s->clock_hz = (uint32_t)payload[0] << 24 | (uint32_t)payload[1] << 16 |
                          (uint32_t)payload[2] << 8 | payload[3];
            logf_(s, "CLK %u Hz", (unsigned)s->clock_hz);
            update_wtx(s);
            break;
        case EV_IO:
            if (!card_link_active(s->link))
                break; /* not powered or in reset: characters are lost */
            s->rx_chars += n;
            s->rx_since_emit += n;
            if (!card_link_rx(s->link, payload, n))
                return g_stop ? 0 : 1;
            break;
        default:
            logf_(s, "ignoring frame kind 0x%02X", hdr[0]);
            break;
        }
        continue;
    bad:
        logf_(s, "malformed frame kind 0x%02X (%zu bytes): leaving the slot", hdr[0], n);
        break;
    }
    return 0;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: cachet-card --profile DIR --socket PATH [--state FILE] [--timing] "
               "[--log FILE] [--fault-file FILE]\n"
               "  SIGUSR1: apply the fault named in FILE (mute, garbage, truncate) to the next answer\n");
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"profile", required_argument, NULL, 'p'},
        {"socket", required_argument, NULL, 's'},
        {"state", required_argument, NULL, 'S'},
        {"timing", no_argument, NULL, 't'},
        {"log", required_argument, NULL, 'l'},
        {"fault-file", required_argument, NULL, 'f'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *profile_dir = NULL, *sock_path = NULL, *state_path = NULL, *log_path = NULL;
    const char *fault_path = NULL;
    bool timing = false;
    int c;
    while ((c = getopt_long(argc, argv, "p:s:S:tl:f:h", opts, NULL)) != -1) {
        switch (c) {
        case 'p':
            profile_dir = optarg;
            break;
        case 's':
            sock_path = optarg;
            break;
        case 'S':
            state_path = optarg;
            break;
        case 't':
            timing = true;
            break;
        case 'l':
            log_path = optarg;
            break;
        case 'f':
            fault_path = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (!profile_dir || !sock_path || optind != argc) {
        usage(stderr);
        return 2;
    }

    char state_buf[4096];
    if (!state_path) {
        if (snprintf(state_buf, sizeof state_buf, "%s/state", profile_dir) >=
            (int)sizeof state_buf) {
            fprintf(stderr, "cachet-card: profile path too long\n");
            return 2;
        }
        state_path = state_buf;
    }

    sim_t s = {.fd = -1, .timing = timing, .state_path = state_path};
    if (log_path) {
        s.log = fopen(log_path, "a");
        if (!s.log) {
            fprintf(stderr, "cachet-card: %s: %s\n", log_path, strerror(errno));
            return 1;
        }
    }

    card_profile_t prof;
    char err[512];
    if (!card_profile_load(profile_dir, &prof, err, sizeof err)) {
        fprintf(stderr, "cachet-card: %s\n", err);
        return 1;
    }
    card_persist_t st;
    if (!card_state_load(state_path, &prof, &st, err, sizeof err)) {
        fprintf(stderr, "cachet-card: %s\n", err);
        card_profile_free(&prof);
        return 1;
    }
    s.rsa_ms = prof.timing_rsa_ms;
    s.other_ms = prof.timing_other_ms;
    prof.cfg.save = save_cb;
    prof.cfg.save_ctx = &s;
    card_applet_t *applet = card_applet_new(&prof.cfg, &st);
    OPENSSL_cleanse(&st, sizeof st);
    if (!applet) {
        fprintf(stderr, "cachet-card: bad profile or state\n");
        card_profile_free(&prof);
        return 1;
    }
    card_link_config_t lc = {
        .applet = applet,
        .atr = prof.atr,
        .atr_len = prof.atr_len,
        .emit = on_emit,
        .emit_ctx = &s,
        .log = on_apdu,
        .log_ctx = &s,
        .wtx_multiplier = 1,
    };
    s.link = card_link_new(&lc);
    if (!s.link) {
        fprintf(stderr, "cachet-card: bad ATR in the profile\n");
        card_applet_free(applet);
        card_profile_free(&prof);
        return 1;
    }
    update_wtx(&s);

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal; /* no SA_RESTART: blocking reads return EINTR */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sa.sa_handler = on_fault_signal;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGUSR1, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    s.fault_path = fault_path;

    int rc = 1;
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    if (strlen(sock_path) >= sizeof addr.sun_path) {
        fprintf(stderr, "cachet-card: socket path too long\n");
        goto out;
    }
    strcpy(addr.sun_path, sock_path);
    s.fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s.fd < 0 || connect(s.fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
        fprintf(stderr, "cachet-card: %s: %s\n", sock_path, strerror(errno));
        goto out;
    }
    logf_(&s, "inserted: profile %s (%s), state %s%s", prof.name, profile_dir, state_path,
          timing ? ", timing model on" : "");
    rc = run(&s);
    logf_(&s, "removed (%s)", g_stop ? "signal" : "socket closed");
out:
    if (s.fd >= 0)
        close(s.fd);
    card_link_free(s.link);
    card_applet_free(applet);
    card_profile_free(&prof);
    if (s.log)
        fclose(s.log);
    return rc;
}
