/* sim_icc: the posix board's smart-card interface = the "card contacts" socket
 * (docs/simulation.md §2). One card process connection is a card in the slot
 * (the presence switch); the contact lines VCC, RST, CLK (ISO/IEC 7816-3 §5)
 * are frames to it and the I/O line is IO frames both ways. Implements
 * port_icc.h. Characters received are kept in a ring, like a UART's FIFO; when
 * it is full further characters are lost (an overrun), as on hardware. */
#include "sim.h"
#include "sim_proto.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "app.h"
#include "port_icc.h"

#define CT_WRITE_TIMEOUT_MS 5000
#define CT_RING_SIZE 4096u
#define CT_PUMP_READS_MAX 16 /* reads per pump: a flooding card cannot starve us */

static char ct_path[512];
static int ct_lfd = -1;
static int ct_fd = -1;
static uint8_t ct_rx[SIM_CT_FRAME_MAX];
static size_t ct_rx_len;
static uint8_t ct_ring[CT_RING_SIZE];
static size_t ct_ring_head;
static size_t ct_ring_len;
static uint32_t ct_overruns;

/* Line state as driven by the firmware. ISO/IEC 7816-3 §7.1 defaults. */
static bool line_vcc;
static bool line_rst;
static uint32_t line_clk;
static uint16_t timing_f = 372;
static uint8_t timing_d = 1;
static uint8_t timing_n;
static bool conv_inverse;

_Static_assert(sizeof ct_rx >= SIM_CT_HDR_LEN + SIM_CT_PAYLOAD_MAX,
               "contacts receive buffer holds one whole frame");
_Static_assert(CT_RING_SIZE >= SIM_CT_PAYLOAD_MAX, "ring holds one frame");

bool sim_icc_open(const char *dir)
{
    int n = snprintf(ct_path, sizeof ct_path, "%s/contacts.sock", dir);
    if (n < 0 || (size_t)n >= sizeof ct_path)
        return false;
    ct_lfd = sim_sock_listen(ct_path);
    return ct_lfd >= 0;
}

static void ring_clear(void)
{
    ct_ring_head = 0;
    ct_ring_len = 0;
}

static void card_drop(const char *why)
{
    if (ct_fd < 0)
        return;
    sim_log(SIM_LOG_INFO, "icc: card removed (%s)", why);
    close(ct_fd);
    ct_fd = -1;
    ct_rx_len = 0;
    ring_clear();
}

void sim_icc_close(void)
{
    if (ct_fd >= 0) {
        close(ct_fd);
        ct_fd = -1;
    }
    if (ct_lfd >= 0) {
        close(ct_lfd);
        ct_lfd = -1;
        unlink(ct_path);
    }
}

void sim_icc_timing(uint16_t *f, uint8_t *d, uint32_t *clock_hz, bool *vcc)
{
    *f = timing_f;
    *d = timing_d;
    *clock_hz = line_clk;
    *vcc = line_vcc;
}

static void ring_push(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (ct_ring_len == CT_RING_SIZE) {
            if (ct_overruns++ == 0)
                sim_log(SIM_LOG_WARN, "icc: receive overrun, characters lost");
            return;
        }
        ct_ring[(ct_ring_head + ct_ring_len) % CT_RING_SIZE] = p[i];
        ct_ring_len++;
    }
}

/* Moves every whole frame from ct_rx into the ring; false when the card broke
 * §2 (then it was dropped). */
static bool parse_rx(void)
{
    size_t off = 0;
    for (;;) {
        uint8_t kind;
        size_t plen, flen;
        sim_frame_status_t st =
            sim_ct_frame_next(ct_rx + off, ct_rx_len - off, &kind, &plen, &flen);
        if (st == SIM_FRAME_MORE)
            break;
        if (st == SIM_FRAME_TOO_LONG) {
            sim_log(SIM_LOG_WARN, "icc: frame over the cap from the card");
            card_drop("bad frame");
            return false;
        }
        if (kind != SIM_CT_IO) {
            sim_log(SIM_LOG_WARN, "icc: card sent frame kind 0x%02X", (unsigned)kind);
            card_drop("bad frame");
            return false;
        }
        sim_log_hex("icc: card IO", ct_rx + off + SIM_CT_HDR_LEN, plen);
        ring_push(ct_rx + off + SIM_CT_HDR_LEN, plen);
        off += flen;
    }
    if (off > 0) {
        memmove(ct_rx, ct_rx + off, ct_rx_len - off);
        ct_rx_len -= off;
    }
    return true;
}

/* Reads what the card has sent so far without blocking; false when the card
 * is gone (closed its end, or broke the protocol). */
static bool card_pump(void)
{
    for (int i = 0; i < CT_PUMP_READS_MAX && ct_fd >= 0; i++) {
        ssize_t n = read(ct_fd, ct_rx + ct_rx_len, sizeof ct_rx - ct_rx_len);
        if (n == 0) {
            card_drop("card left the slot");
            return false;
        }
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return true;
            sim_log(SIM_LOG_WARN, "icc: read: %s", strerror(errno));
            card_drop("read error");
            return false;
        }
        ct_rx_len += (size_t)n;
        if (!parse_rx())
            return false;
    }
    return ct_fd >= 0;
}

size_t sim_icc_pollfds(struct pollfd *fds, size_t cap)
{
    size_t n = 0;
    if (cap >= 1 && ct_lfd >= 0)
        fds[n++] = (struct pollfd){.fd = ct_lfd, .events = POLLIN};
    if (cap >= 2 && ct_fd >= 0)
        fds[n++] = (struct pollfd){.fd = ct_fd, .events = POLLIN};
    return n;
}

static void on_accept(void)
{
    int fd = sim_sock_accept(ct_lfd, "icc");
    if (fd < 0)
        return;
    if (ct_fd >= 0) {
        sim_log(SIM_LOG_WARN, "icc: second card refused (slot occupied)");
        close(fd);
        return;
    }
    ct_fd = fd;
    ct_rx_len = 0;
    ring_clear();
    sim_log(SIM_LOG_INFO, "icc: card inserted");
}

bool sim_icc_handle(const struct pollfd *fds, size_t n)
{
    bool event = false;
    for (size_t i = 0; i < n; i++) {
        if (fds[i].revents == 0)
            continue;
        if (fds[i].fd == ct_lfd)
            on_accept();
        else if (fds[i].fd == ct_fd)
            (void)card_pump();
        event = true;
    }
    if (event)
        sim_app_poll(); /* presence may have changed */
    return event;
}

/* Sends one frame to the card with one write (spec/perf.md). */
static port_status_t card_send(uint8_t kind, const uint8_t *payload, size_t len)
{
    uint8_t frame[SIM_CT_FRAME_MAX];
    if (ct_fd < 0)
        return PORT_ABSENT;
    if (len > SIM_CT_PAYLOAD_MAX)
        return PORT_ERROR;
    sim_ct_hdr_encode(frame, kind, len);
    if (len > 0)
        memcpy(frame + SIM_CT_HDR_LEN, payload, len);
    if (!sim_sock_write_all(ct_fd, frame, SIM_CT_HDR_LEN + len,
                            CT_WRITE_TIMEOUT_MS)) {
        sim_log(SIM_LOG_WARN, "icc: write to card: %s", strerror(errno));
        card_drop("write error");
        return PORT_ABSENT;
    }
    return PORT_OK;
}

bool port_icc_present(void)
{
    return ct_fd >= 0;
}

void port_icc_vcc(bool on)
{
    uint8_t v = on ? 1 : 0;
    line_vcc = on;
    if (!on)
        line_rst = false;
    sim_log(SIM_LOG_DEBUG, "icc: VCC %u", (unsigned)v);
    (void)card_send(SIM_CT_VCC, &v, 1);
}

void port_icc_rst(bool high)
{
    uint8_t v = high ? 1 : 0;
    line_rst = high;
    sim_log(SIM_LOG_DEBUG, "icc: RST %u", (unsigned)v);
    (void)card_send(SIM_CT_RST, &v, 1);
}

void port_icc_clock(uint32_t hz)
{
    uint8_t v[4] = {(uint8_t)(hz >> 24), (uint8_t)(hz >> 16), (uint8_t)(hz >> 8),
                    (uint8_t)hz};
    line_clk = hz;
    sim_log(SIM_LOG_DEBUG, "icc: CLK %lu Hz", (unsigned long)hz);
    (void)card_send(SIM_CT_CLK, v, sizeof v);
}

void port_icc_set_timing(uint16_t f, uint8_t d, uint8_t extra_guard_etu)
{
    /* Recorded for the status line; the socket carries no line timing (the
     * card's own timing model uses the F/D it negotiated by PPS, §9). */
    timing_f = f;
    timing_d = d;
    timing_n = extra_guard_etu;
    sim_log(SIM_LOG_DEBUG, "icc: timing F=%u D=%u N=%u", (unsigned)f,
            (unsigned)d, (unsigned)timing_n);
}

void port_icc_set_convention(bool inverse)
{
    conv_inverse = inverse;
    sim_log(SIM_LOG_DEBUG, "icc: %s convention", conv_inverse ? "inverse" : "direct");
}

port_status_t port_icc_send(const uint8_t *buf, size_t len)
{
    if (buf == NULL && len > 0)
        return PORT_ERROR;
    sim_log_hex("icc: reader IO", buf, len);
    do {
        size_t chunk = len > SIM_CT_PAYLOAD_MAX ? SIM_CT_PAYLOAD_MAX : len;
        port_status_t st = card_send(SIM_CT_IO, buf, chunk);
        if (st != PORT_OK)
            return st;
        buf += chunk;
        len -= chunk;
    } while (len > 0);
    return PORT_OK;
}

/* The simulated line is a socket to another process, which the OS may not
 * schedule within a few character times, so no wait on it is shorter than
 * this. The firmware's own deadlines (ISO/IEC 7816-3 §8.1 ATR, WWT, CWT/BWT)
 * still apply on top: a mute card is reported, only a little later. */
#define SIM_ICC_MIN_WAIT_US 300000u

port_status_t port_icc_recv(uint8_t *byte, uint32_t timeout_us)
{
    if (timeout_us < SIM_ICC_MIN_WAIT_US)
        timeout_us = SIM_ICC_MIN_WAIT_US;
    uint64_t deadline = sim_now_us() + timeout_us;
    if (byte == NULL)
        return PORT_ERROR;
    for (;;) {
        if (ct_ring_len > 0) {
            *byte = ct_ring[ct_ring_head];
            ct_ring_head = (ct_ring_head + 1) % CT_RING_SIZE;
            ct_ring_len--;
            return PORT_OK;
        }
        if (ct_fd < 0)
            return PORT_ABSENT;
        uint64_t now = sim_now_us();
        uint64_t left = now < deadline ? deadline - now : 0;
        struct timespec ts = {.tv_sec = (time_t)(left / 1000000u),
                              .tv_nsec = (long)(left % 1000000u) * 1000L};
        struct pollfd pfd = {.fd = ct_fd, .events = POLLIN};
        /* The removal of the card must be seen here too: the main loop does
         * not run while icc waits for the card. */
        int r = ppoll(&pfd, 1, &ts, NULL);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            sim_log(SIM_LOG_WARN, "icc: poll: %s", strerror(errno));
            return PORT_ERROR;
        }
        if (r == 0)
            return PORT_TIMEOUT;
        if (!card_pump())
            return PORT_ABSENT;
    }
}

void port_icc_flush(void)
{
    if (ct_fd >= 0)
        (void)card_pump();
    ring_clear();
}
