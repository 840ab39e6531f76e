/* sim: internal interfaces of the posix board (cachet-sim). The board owns three
 * Unix sockets (docs/simulation.md): the virtual USB cable (sim_usb.c), the card
 * contacts (sim_icc.c) and the control channel (sim_control.c); sim_loop.c runs
 * the single-threaded poll() loop that feeds them to the firmware. */
#ifndef CACHET_SIM_H
#define CACHET_SIM_H

#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* ---- sim_log.c: one line per event, timestamped. ---- */
typedef enum { SIM_LOG_ERROR, SIM_LOG_WARN, SIM_LOG_INFO, SIM_LOG_DEBUG } sim_log_level_t;

/* path NULL = stderr. debug: debug-level lines (sizes of transfers); trace:
 * also their bytes in hex, which may include PINs (ISO 7816-4 VERIFY), so only
 * for tests with test cards. false (errno set) when the file cannot be opened. */
bool sim_log_open(const char *path, bool debug, bool trace);
void sim_log_close(void);
bool sim_log_debug_enabled(void);
void sim_log(sim_log_level_t level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Debug-level line with the size of a transfer, and its bytes with trace on
 * (card and USB data never go to info level, STYLE.md rule 10). */
void sim_log_hex(const char *what, const uint8_t *data, size_t len);

/* ---- sim_sock.c ---- */
/* True when something accepts connections at path. Use only on control.sock:
 * a probe connection there has no side effect (on usb.sock it would be a
 * plug-in, on contacts.sock a card insertion). */
bool sim_sock_alive(const char *path);
/* Creates a listening Unix stream socket at path (mode 0600), replacing a
 * stale socket file. -1 on error. */
int sim_sock_listen(const char *path);
/* Accepts one connection (non-blocking, close-on-exec) and checks the peer's
 * uid (SO_PEERCRED): same uid as ours or root. -1 when nothing to accept or
 * the peer was refused (then already closed and logged). */
int sim_sock_accept(int lfd, const char *what);
/* Writes all of buf (one write() when the socket has room, as spec/perf.md
 * asks), waiting at most timeout_ms for room. false on error or time-out. */
bool sim_sock_write_all(int fd, const void *buf, size_t len, int timeout_ms);
/* Microseconds on CLOCK_MONOTONIC. */
uint64_t sim_now_us(void);

/* ---- sim_usb.c: the virtual USB cable, §1. ---- */
bool sim_usb_open(const char *dir, bool plugged);
void sim_usb_close(void);
/* Adds the cable's descriptors to fds (cap >= 2); returns how many. */
size_t sim_usb_pollfds(struct pollfd *fds, size_t cap);
/* Handles events on the fds it added. Returns true if the firmware saw an event. */
bool sim_usb_handle(const struct pollfd *fds, size_t n);
void sim_usb_set_plugged(bool plugged);
bool sim_usb_plugged(void);
bool sim_usb_host_connected(void);

/* ---- sim_icc.c: the card contacts, §2. ---- */
bool sim_icc_open(const char *dir);
void sim_icc_close(void);
size_t sim_icc_pollfds(struct pollfd *fds, size_t cap);
bool sim_icc_handle(const struct pollfd *fds, size_t n);
/* Line state as last driven by the firmware (for status). */
void sim_icc_timing(uint16_t *f, uint8_t *d, uint32_t *clock_hz, bool *vcc);

/* ---- sim_control.c: the control channel, §3, and port_ui. ---- */
bool sim_control_open(const char *dir);
void sim_control_close(void);
size_t sim_control_pollfds(struct pollfd *fds, size_t cap);
bool sim_control_handle(const struct pollfd *fds, size_t n);
/* --auto-confirm: OK is pressed by itself on every confirm-signature screen. */
void sim_control_set_auto_confirm(bool on);
/* app_poll(), except while the firmware is blocked in port_ui_wait_key: the
 * socket handlers that run meanwhile (control channel, card contacts) must
 * not re-enter the firmware; the main loop polls once the wait is over. */
void sim_app_poll(void);

/* ---- sim_capture.c: --capture FILE, every frame of the USB cable. ---- */
/* Opens (truncates) path, mode 0600. false (errno set) on error. */
bool sim_capture_open(const char *path);
void sim_capture_close(void);
/* Appends one whole cable frame (header + payload, docs/simulation.md §1),
 * either direction: the header's kind tells which. */
void sim_capture_frame(const uint8_t *frame, size_t len);

/* ---- sim_flash.c: port_flash over a file (--flash FILE, default DIR/flash.bin). ---- */
/* Opens (creating it erased when missing) the flash file. false (errno set) on error. */
bool sim_flash_open(const char *path);
void sim_flash_close(void);

/* ---- sim_loop.c ---- */
/* The whole program (cachet-sim's main). Returns the exit status. */
int sim_run(int argc, char **argv);
/* ppoll() with SIGTERM/SIGINT deliverable (as in the main loop), for waits
 * outside it. */
int sim_ppoll(struct pollfd *fds, size_t n, uint64_t timeout_us);
/* True once SIGTERM/SIGINT asked cachet-sim to stop. */
bool sim_stopping(void);

#endif
