/* Unit tests for firmware/app: boot wiring and card presence → CCID
 * notifications, with icc_* and port_* faked at link time. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "app.h"
#include "icc.h"
#include "port_board.h"
#include "port_time.h"
#include "port_ui.h"
#include "port_usb.h"
#include "usb.h"

static int icc_init_calls;
static int power_off_calls;
static bool present;
static bool powered;
static icc_wait_hook_t hook;
static uint8_t notify[8][2];
static size_t notify_count;
static int ep0_replies;

void icc_init(void)
{
    icc_init_calls++;
    hook = NULL;
}
bool icc_present(void)
{
    return present;
}
bool icc_powered(void)
{
    return powered;
}
icc_status_t icc_power_on(uint8_t *atr, size_t cap, size_t *atr_len)
{
    (void)cap;
    atr[0] = 0x3B;
    atr[1] = 0x00;
    *atr_len = 2;
    powered = true;
    return ICC_OK;
}
void icc_power_off(void)
{
    powered = false;
    power_off_calls++;
}
icc_status_t icc_get_params(icc_params_t *out)
{
    memset(out, 0, sizeof *out);
    out->fidi = 0x11;
    return powered ? ICC_OK : ICC_ERR_NOT_POWERED;
}
icc_status_t icc_set_params(const icc_params_t *want)
{
    (void)want;
    return ICC_OK;
}
icc_status_t icc_transceive(const uint8_t *capdu, size_t clen, uint8_t *rapdu, size_t rcap,
                            size_t *rlen)
{
    (void)capdu;
    (void)clen;
    (void)rapdu;
    (void)rcap;
    *rlen = 0;
    return ICC_ERR_MUTE;
}
void icc_set_wait_hook(icc_wait_hook_t h, void *ctx)
{
    (void)ctx;
    hook = h;
}
uint32_t icc_clock_hz(void)
{
    return ICC_DEFAULT_CLOCK_HZ;
}
void icc_get_stats(icc_stats_t *out)
{
    memset(out, 0, sizeof *out);
}

port_status_t port_usb_write(uint8_t ep, const uint8_t *data, size_t len)
{
    if (ep == 0x83) {
        assert_int_equal(len, 2);
        assert_true(notify_count < 8);
        memcpy(notify[notify_count++], data, 2);
    }
    return PORT_OK;
}
port_status_t port_usb_ep0_reply(const uint8_t *data, size_t len)
{
    (void)data;
    (void)len;
    ep0_replies++;
    return PORT_OK;
}
void port_usb_ep0_stall(void)
{
}
void port_usb_set_address(uint8_t addr)
{
    (void)addr;
}
uint64_t port_time_us(void)
{
    return 0;
}
const char *port_board_serial(void)
{
    return "APP";
}
static char screen_name[32];
void port_ui_show(const char *name, const char *const lines[PORT_UI_LINES])
{
    (void)lines;
    strncpy(screen_name, name, sizeof screen_name - 1);
}
port_key_t port_ui_key(void)
{
    return PORT_KEY_NONE;
}
port_key_t port_ui_wait_key(uint32_t timeout_us)
{
    (void)timeout_us;
    return PORT_KEY_NONE;
}

static void test_boot_and_presence(void **state)
{
    (void)state;
    present = false;
    app_init();
    assert_int_equal(icc_init_calls, 1);
    assert_non_null(hook); /* ccid installed its time extension hook after icc_init */
    assert_string_equal(screen_name, "insert-card"); /* ui: the resting screen */

    /* Enumeration: the first notification follows SET_CONFIGURATION. */
    usb_on_reset();
    const uint8_t set_config[8] = {0x00, 0x09, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00};
    usb_on_setup(set_config, NULL, 0);
    assert_true(usb_configured());
    assert_int_equal(notify_count, 1);
    assert_int_equal(notify[0][1], 0x02);

    app_poll();
    assert_int_equal(notify_count, 1); /* nothing changed */

    present = true;
    app_poll();
    assert_int_equal(notify_count, 2);
    assert_int_equal(notify[1][0], 0x50);
    assert_int_equal(notify[1][1], 0x03);
    assert_string_equal(screen_name, "idle");

    powered = true;
    int offs = power_off_calls;
    present = false;
    app_poll();
    assert_int_equal(notify_count, 3);
    assert_int_equal(notify[2][1], 0x02);
    assert_false(powered);
    assert_int_equal(power_off_calls, offs + 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_boot_and_presence),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
