/* Fake firmware for the board/posix plumbing test: the other side of the port
 * seam (usb_on_*, icc_* accessors, app_*), driving port_* the way the real
 * core does. Runs inside the forked cachet-sim process. Commands arrive as
 * bulk OUT transfers on ep 0x01; answers leave as IN transfers on ep 0x82:
 *   "E..." echo;  "C" activate the card and return what it sent (ATR);
 *   "S<bytes>" send bytes to the card, return its answer;
 *   "T" receive with 20 ms timeout → one status byte;
 *   "W" receive with 5 s timeout → status byte (card removal must end it). */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "app.h"
#include "icc.h"
#include "port_board.h"
#include "port_icc.h"
#include "port_time.h"
#include "port_ui.h"
#include "port_usb.h"
#include "usb.h"

static bool fake_configured;
static bool fake_present;

void app_init(void)
{
    /* No screen until a key is pressed: `screen` must answer "idle". */
}

void app_poll(void)
{
    port_key_t k = port_ui_key();
    if (k != PORT_KEY_NONE) {
        char key[2] = {(char)k, '\0'};
        const char *const lines[PORT_UI_LINES] = {"Touche", key, "\"quote\"", ""};
        port_ui_show("key", lines);
    }
    bool present = port_icc_present();
    if (present != fake_present) {
        fake_present = present;
        uint8_t notify[2] = {0x50, (uint8_t)(present ? 3 : 2)};
        (void)port_usb_write(0x83, notify, sizeof notify);
    }
}

void usb_on_reset(void)
{
    fake_configured = false;
}

void usb_on_detach(void)
{
    fake_configured = false;
}

bool usb_configured(void)
{
    return fake_configured;
}

void usb_on_setup(const uint8_t setup[8], const uint8_t *data, size_t len)
{
    static const uint8_t desc[18] = {18, 1, 0x00, 0x02, 0, 0, 0, 64, 0x09, 0x12,
                                     0xC7, 0xCA, 0x00, 0x01, 1, 2, 3, 1};
    (void)data;
    switch (setup[1]) {
    case 0x06: /* GET_DESCRIPTOR: the board truncates to wLength */
        (void)port_usb_ep0_reply(desc, sizeof desc);
        break;
    case 0x09: /* SET_CONFIGURATION */
        fake_configured = setup[2] != 0;
        (void)port_usb_ep0_reply(NULL, 0);
        break;
    case 0x05: /* SET_ADDRESS */
        port_usb_set_address(setup[2]);
        (void)port_usb_ep0_reply(NULL, 0);
        break;
    case 0x20: /* class OUT: answers with the data stage length */
    {
        uint8_t n = (uint8_t)len;
        (void)port_usb_ep0_reply(&n, 1);
        break;
    }
    default:
        port_usb_ep0_stall();
        break;
    }
}

static size_t recv_all(uint8_t *out, size_t cap, uint32_t timeout_us)
{
    size_t n = 0;
    while (n < cap && port_icc_recv(&out[n], timeout_us) == PORT_OK)
        n++;
    return n;
}

void usb_on_out(uint8_t ep, const uint8_t *data, size_t len)
{
    uint8_t ans[512];
    size_t n = 0;
    (void)ep;
    if (len == 0)
        return;
    switch (data[0]) {
    case 'E':
        (void)port_usb_write(0x82, data, len);
        return;
    case 'C':
        port_icc_flush();
        port_icc_vcc(true);
        port_icc_clock(5000000u);
        port_icc_set_timing(372, 1, 0);
        port_icc_rst(true);
        n = recv_all(ans, sizeof ans, 200000u);
        break;
    case 'S':
        if (port_icc_send(data + 1, len - 1) != PORT_OK) {
            ans[n++] = 0xEE;
            break;
        }
        n = recv_all(ans, sizeof ans, 200000u);
        break;
    case 'T':
    case 'W': {
        uint8_t b = 0;
        ans[n++] = (uint8_t)port_icc_recv(&b, data[0] == 'T' ? 20000u : 5000000u);
        break;
    }
    default:
        return;
    }
    (void)port_usb_write(0x82, ans, n);
}

bool icc_powered(void)
{
    return false;
}

icc_status_t icc_get_params(icc_params_t *out)
{
    (void)out;
    return ICC_ERR_NOT_POWERED;
}

uint32_t icc_clock_hz(void)
{
    return ICC_DEFAULT_CLOCK_HZ;
}

void icc_get_stats(icc_stats_t *out)
{
    out->apdus = 7;
    out->chars_sent = 100;
    out->chars_recv = 200;
    out->wire_us = 12345;
}
