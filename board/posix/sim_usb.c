/* sim_usb: the posix board's USB device controller = the "virtual USB cable"
 * (docs/simulation.md §1). One host connection at a time is the cable: accepting
 * it is a plug-in (USB 2.0 §9.1.2: attach, then bus reset → usb_on_reset),
 * closing it an unplug (usb_on_detach). Implements port_usb.h. */
#include "sim.h"
#include "sim_proto.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "app.h"
#include "port_usb.h"
#include "usb.h"

#define USB_WRITE_TIMEOUT_MS 5000

static char usb_path[512];
static int usb_lfd = -1;
static int usb_fd = -1;
static bool usb_is_plugged;
static bool usb_broken; /* a write failed: drop the cable at the next chance */
static uint8_t usb_rx[SIM_USB_FRAME_MAX];
static size_t usb_rx_len;
static uint8_t usb_tx[SIM_USB_FRAME_MAX];
static bool usb_setup_pending;
static uint16_t usb_setup_wlength; /* IN data stage cap (0 for OUT requests) */
static uint8_t usb_address;

_Static_assert(sizeof usb_rx >= SIM_USB_HDR_LEN + SIM_USB_PAYLOAD_MAX,
               "cable receive buffer holds one whole frame");

bool sim_usb_open(const char *dir, bool plugged)
{
    int n = snprintf(usb_path, sizeof usb_path, "%s/usb.sock", dir);
    if (n < 0 || (size_t)n >= sizeof usb_path)
        return false;
    usb_lfd = sim_sock_listen(usb_path);
    usb_is_plugged = plugged;
    return usb_lfd >= 0;
}

static void cable_drop(const char *why)
{
    if (usb_fd < 0)
        return;
    sim_log(SIM_LOG_INFO, "usb: cable disconnected (%s)", why);
    close(usb_fd);
    usb_fd = -1;
    usb_rx_len = 0;
    usb_broken = false;
    usb_setup_pending = false;
    usb_on_detach();
    sim_app_poll();
}

void sim_usb_close(void)
{
    if (usb_fd >= 0) {
        close(usb_fd);
        usb_fd = -1;
    }
    if (usb_lfd >= 0) {
        close(usb_lfd);
        usb_lfd = -1;
        unlink(usb_path);
    }
}

void sim_usb_set_plugged(bool plugged)
{
    if (plugged == usb_is_plugged)
        return;
    usb_is_plugged = plugged;
    sim_log(SIM_LOG_INFO, "usb: appliance %s", plugged ? "plugged" : "unplugged");
    if (!plugged)
        cable_drop("unplugged");
}

bool sim_usb_plugged(void)
{
    return usb_is_plugged;
}

bool sim_usb_host_connected(void)
{
    return usb_fd >= 0;
}

size_t sim_usb_pollfds(struct pollfd *fds, size_t cap)
{
    size_t n = 0;
    if (usb_broken)
        cable_drop("write to host failed");
    if (cap >= 1 && usb_lfd >= 0)
        fds[n++] = (struct pollfd){.fd = usb_lfd, .events = POLLIN};
    if (cap >= 2 && usb_fd >= 0)
        fds[n++] = (struct pollfd){.fd = usb_fd, .events = POLLIN};
    return n;
}

static void on_accept(void)
{
    int fd = sim_sock_accept(usb_lfd, "usb");
    if (fd < 0)
        return;
    if (!usb_is_plugged) {
        sim_log(SIM_LOG_INFO, "usb: host connection refused (unplugged)");
        close(fd);
        return;
    }
    if (usb_fd >= 0) {
        sim_log(SIM_LOG_WARN, "usb: second host connection refused");
        close(fd);
        return;
    }
    usb_fd = fd;
    usb_rx_len = 0;
    usb_broken = false;
    usb_setup_pending = false;
    sim_log(SIM_LOG_INFO, "usb: cable connected (bus reset)");
    usb_on_reset();
    sim_app_poll();
}

static void dispatch(const sim_usb_hdr_t *h, const uint8_t *payload)
{
    if (h->kind == SIM_USB_SETUP) {
        /* A new SETUP ends any control transfer still open (USB 2.0 §8.5.3). */
        usb_setup_pending = true;
        /* USB 2.0 §9.3.1: bmRequestType bit 7 = 1 → the data stage is IN. */
        usb_setup_wlength = (payload[0] & 0x80)
                                ? (uint16_t)(payload[6] | payload[7] << 8)
                                : 0;
        sim_log_hex("usb: SETUP", payload, h->len);
        usb_on_setup(payload, payload + SIM_USB_SETUP_LEN,
                     h->len - SIM_USB_SETUP_LEN);
    } else {
        sim_log_hex("usb: OUT", payload, h->len);
        usb_on_out(h->ep, payload, h->len);
    }
}

/* Processes every whole frame in the receive buffer. */
static void process_rx(void)
{
    size_t off = 0;
    while (usb_fd >= 0 && !usb_broken) {
        sim_usb_hdr_t h;
        size_t flen;
        sim_frame_status_t st =
            sim_usb_frame_next(usb_rx + off, usb_rx_len - off, &h, &flen);
        if (st == SIM_FRAME_MORE)
            break;
        if (st == SIM_FRAME_TOO_LONG) {
            sim_log(SIM_LOG_WARN, "usb: frame of %lu bytes over the cap",
                    (unsigned long)h.len);
            cable_drop("bad frame");
            return;
        }
        const uint8_t *payload = usb_rx + off + SIM_USB_HDR_LEN;
        const char *why = sim_usb_host_frame_check(&h, payload);
        if (why != NULL) {
            sim_log(SIM_LOG_WARN, "usb: bad frame from host: %s", why);
            cable_drop("bad frame");
            return;
        }
        sim_capture_frame(usb_rx + off, flen);
        dispatch(&h, payload);
        off += flen;
        if (!usb_broken)
            sim_app_poll();
    }
    if (usb_broken) {
        cable_drop("write to host failed");
        return;
    }
    if (usb_fd >= 0 && off > 0) {
        memmove(usb_rx, usb_rx + off, usb_rx_len - off);
        usb_rx_len -= off;
    }
}

static void on_readable(void)
{
    ssize_t n = read(usb_fd, usb_rx + usb_rx_len, sizeof usb_rx - usb_rx_len);
    if (n == 0) {
        cable_drop("host closed");
        return;
    }
    if (n < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
            sim_log(SIM_LOG_WARN, "usb: read: %s", strerror(errno));
            cable_drop("read error");
        }
        return;
    }
    usb_rx_len += (size_t)n;
    process_rx();
}

bool sim_usb_handle(const struct pollfd *fds, size_t n)
{
    bool event = false;
    for (size_t i = 0; i < n; i++) {
        if (fds[i].revents == 0)
            continue;
        event = true;
        if (fds[i].fd == usb_lfd)
            on_accept();
        else if (fds[i].fd == usb_fd)
            on_readable();
    }
    return event;
}

/* Sends one frame to the host with one write (spec/perf.md). */
static port_status_t send_frame(uint8_t kind, uint8_t ep, uint16_t status,
                                const uint8_t *data, size_t len)
{
    if (usb_fd < 0 || usb_broken)
        return PORT_ABSENT;
    if (len > SIM_USB_PAYLOAD_MAX)
        return PORT_ERROR;
    sim_usb_hdr_t h = {.kind = kind, .ep = ep, .status = status, .len = (uint32_t)len};
    sim_usb_hdr_encode(usb_tx, &h);
    if (len > 0)
        memcpy(usb_tx + SIM_USB_HDR_LEN, data, len);
    sim_capture_frame(usb_tx, SIM_USB_HDR_LEN + len);
    if (!sim_sock_write_all(usb_fd, usb_tx, SIM_USB_HDR_LEN + len,
                            USB_WRITE_TIMEOUT_MS)) {
        sim_log(SIM_LOG_WARN, "usb: write to host: %s", strerror(errno));
        usb_broken = true;
        return PORT_ABSENT;
    }
    return PORT_OK;
}

port_status_t port_usb_ep0_reply(const uint8_t *data, size_t len)
{
    if (!usb_setup_pending) {
        sim_log(SIM_LOG_WARN, "usb: ep0 reply without a SETUP");
        return usb_fd < 0 ? PORT_ABSENT : PORT_ERROR;
    }
    if (data == NULL && len > 0)
        return PORT_ERROR;
    /* The device never sends more than wLength in the data stage (USB 2.0
     * §9.3.5), and nothing but the zero-length status for an OUT request. */
    if (len > usb_setup_wlength)
        len = usb_setup_wlength;
    usb_setup_pending = false;
    sim_log_hex("usb: SETUP_DONE", data, len);
    return send_frame(SIM_USB_SETUP_DONE, 0x00, SIM_USB_ACK, data, len);
}

void port_usb_ep0_stall(void)
{
    if (!usb_setup_pending) {
        sim_log(SIM_LOG_WARN, "usb: ep0 stall without a SETUP");
        return;
    }
    usb_setup_pending = false;
    sim_log(SIM_LOG_DEBUG, "usb: SETUP_DONE STALL");
    (void)send_frame(SIM_USB_SETUP_DONE, 0x00, SIM_USB_STALL, NULL, 0);
}

void port_usb_set_address(uint8_t addr)
{
    usb_address = addr;
    sim_log(SIM_LOG_DEBUG, "usb: address %u", (unsigned)usb_address);
}

port_status_t port_usb_write(uint8_t ep, const uint8_t *data, size_t len)
{
    if ((ep & 0x80) == 0 || (ep & 0x7F) == 0 || (data == NULL && len > 0)) {
        sim_log(SIM_LOG_WARN, "usb: write on bad endpoint 0x%02X", (unsigned)ep);
        return PORT_ERROR;
    }
    sim_log_hex(ep == 0x83 ? "usb: IN 0x83" : "usb: IN", data, len);
    return send_frame(SIM_USB_IN, ep, SIM_USB_ACK, data, len);
}
