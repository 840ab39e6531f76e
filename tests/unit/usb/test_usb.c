/* Unit tests for firmware/usb: the chapter 9 device core, with port_usb faked
 * at the seam and a recording class driver. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "fw_util.h"
#include "port_usb.h"
#include "usb.h"

/* ---- fake port_usb ---- */

static uint8_t reply_buf[1024];
static size_t reply_len;
static int reply_count;
static int stall_count;
static int address_count;
static uint8_t last_address;

port_status_t port_usb_ep0_reply(const uint8_t *data, size_t len)
{
    assert_true(len <= sizeof reply_buf);
    if (len > 0) {
        assert_non_null(data);
        memcpy(reply_buf, data, len);
    }
    reply_len = len;
    reply_count++;
    return PORT_OK;
}

void port_usb_ep0_stall(void)
{
    stall_count++;
}

void port_usb_set_address(uint8_t addr)
{
    last_address = addr;
    address_count++;
}

port_status_t port_usb_write(uint8_t ep, const uint8_t *data, size_t len)
{
    (void)ep;
    (void)data;
    (void)len;
    return PORT_OK;
}

/* ---- recording class driver ---- */

static int cls_reset_count;
static int cls_configured_count;
static int cls_request_count;
static bool cls_request_result;
static usb_setup_t cls_last_setup;
static size_t cls_last_request_len;
static int cls_out_count;
static uint8_t cls_last_out_ep;
static size_t cls_last_out_len;

static void cls_on_reset(void)
{
    cls_reset_count++;
}

static void cls_on_configured(void)
{
    /* The status stage of SET_CONFIGURATION precedes the class's start. */
    assert_int_equal(reply_count, 1);
    cls_configured_count++;
}

static bool cls_on_request(const usb_setup_t *setup, const uint8_t *data, size_t len)
{
    (void)data;
    cls_last_setup = *setup;
    cls_last_request_len = len;
    cls_request_count++;
    if (cls_request_result)
        (void)port_usb_ep0_reply(NULL, 0);
    return cls_request_result;
}

static void cls_on_out(uint8_t ep, const uint8_t *data, size_t len)
{
    (void)data;
    cls_last_out_ep = ep;
    cls_last_out_len = len;
    cls_out_count++;
}

static const usb_class_ops_t cls_ops = {
    .on_reset = cls_on_reset,
    .on_configured = cls_on_configured,
    .on_request = cls_on_request,
    .on_out = cls_on_out,
};

/* ---- descriptors under test ---- */

static const uint8_t dev_desc[18] = {18,   1,    0x00, 0x02, 0,    0, 0, 64, 0x09,
                                     0x12, 0xC7, 0xCA, 0x00, 0x01, 1, 2, 3,  1};
static const uint8_t cfg_desc[32] = {
    9, 2, 32,   0, 1,  1,    0, 0xC0, 50, /* self powered */
    9, 4, 0,    0, 2,  0xFF, 0, 0,    0,  /* interface 0 */
    7, 5, 0x01, 2, 64, 0,    0,           /* bulk OUT */
    7, 5, 0x82, 2, 64, 0,    0,           /* bulk IN */
};

static char long_string[400];
static const char *strings[] = {
    "Cachet",
    "A\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80", /* A é € 😀 */
    "x\xFFy\xC3(\xE0\x80\x80z",              /* invalid sequences */
    long_string,
};

static usb_descriptors_t descs = {
    .device = dev_desc,
    .device_len = sizeof dev_desc,
    .config = cfg_desc,
    .config_len = sizeof cfg_desc,
    .strings = strings,
    .string_count = 4,
};

static void reset_fakes(void)
{
    reply_len = 0;
    reply_count = 0;
    stall_count = 0;
}

static int setup_core(void **state)
{
    (void)state;
    memset(long_string, 'a', sizeof long_string - 1);
    long_string[sizeof long_string - 1] = 0;
    cls_reset_count = cls_configured_count = cls_request_count = cls_out_count = 0;
    cls_request_result = true;
    address_count = 0;
    usb_init(&descs, &cls_ops);
    usb_on_reset();
    reset_fakes();
    return 0;
}

/* Sends one SETUP (with an optional OUT data stage). */
static void setup_req(uint8_t rt, uint8_t req, uint16_t value, uint16_t index, uint16_t length,
                      const uint8_t *data, size_t len)
{
    uint8_t s[8];
    s[0] = rt;
    s[1] = req;
    fw_put_le16(s + 2, value);
    fw_put_le16(s + 4, index);
    fw_put_le16(s + 6, length);
    reset_fakes();
    usb_on_setup(s, data, len);
    /* Exactly one of reply/stall per SETUP (port_usb.h). */
    assert_int_equal(reply_count + stall_count, 1);
}

static void expect_stall(void)
{
    assert_int_equal(stall_count, 1);
}

static void expect_reply(size_t len)
{
    assert_int_equal(stall_count, 0);
    assert_int_equal(reply_len, len);
}

static void configure(void)
{
    setup_req(0x00, 0x09, 1, 0, 0, NULL, 0);
    expect_reply(0);
}

static void test_device_descriptor(void **state)
{
    (void)state;
    setup_req(0x80, 0x06, 0x0100, 0, 64, NULL, 0);
    expect_reply(18);
    assert_memory_equal(reply_buf, dev_desc, 18);
    /* Truncated to wLength (the host's first 8-byte request). */
    setup_req(0x80, 0x06, 0x0100, 0, 8, NULL, 0);
    expect_reply(8);
    assert_memory_equal(reply_buf, dev_desc, 8);
    /* Index must be 0. */
    setup_req(0x80, 0x06, 0x0101, 0, 64, NULL, 0);
    expect_stall();
    /* Device qualifier / other speed: full-speed only device stalls. */
    setup_req(0x80, 0x06, 0x0600, 0, 10, NULL, 0);
    expect_stall();
    setup_req(0x80, 0x06, 0x0700, 0, 10, NULL, 0);
    expect_stall();
    /* GET_DESCRIPTOR to the interface (HID style): not ours. */
    setup_req(0x81, 0x06, 0x2200, 0, 64, NULL, 0);
    expect_stall();
}

static void test_config_descriptor(void **state)
{
    (void)state;
    setup_req(0x80, 0x06, 0x0200, 0, 9, NULL, 0);
    expect_reply(9);
    assert_memory_equal(reply_buf, cfg_desc, 9);
    setup_req(0x80, 0x06, 0x0200, 0, 0xFFFF, NULL, 0);
    expect_reply(sizeof cfg_desc);
    assert_memory_equal(reply_buf, cfg_desc, sizeof cfg_desc);
    setup_req(0x80, 0x06, 0x0201, 0, 0xFF, NULL, 0);
    expect_stall();
}

static void test_string_descriptors(void **state)
{
    (void)state;
    /* Language list: en-US. */
    setup_req(0x80, 0x06, 0x0300, 0, 0xFF, NULL, 0);
    expect_reply(4);
    const uint8_t langs[4] = {4, 3, 0x09, 0x04};
    assert_memory_equal(reply_buf, langs, 4);

    setup_req(0x80, 0x06, 0x0301, 0x0409, 0xFF, NULL, 0);
    const uint8_t cachet[14] = {14, 3, 'C', 0, 'a', 0, 'c', 0, 'h', 0, 'e', 0, 't', 0};
    expect_reply(14);
    assert_memory_equal(reply_buf, cachet, 14);

    /* Truncated to wLength: the host first reads bLength. */
    setup_req(0x80, 0x06, 0x0301, 0x0409, 2, NULL, 0);
    expect_reply(2);
    assert_int_equal(reply_buf[0], 14);

    /* UTF-8 → UTF-16LE including a surrogate pair. */
    setup_req(0x80, 0x06, 0x0302, 0x0409, 0xFF, NULL, 0);
    const uint8_t utf[12] = {12, 3, 'A', 0, 0xE9, 0, 0xAC, 0x20, 0x3D, 0xD8, 0x00, 0xDE};
    expect_reply(12);
    assert_memory_equal(reply_buf, utf, 12);

    /* Malformed UTF-8: each bad lead byte becomes U+FFFD. */
    setup_req(0x80, 0x06, 0x0303, 0x0409, 0xFF, NULL, 0);
    assert_int_equal(stall_count, 0);
    /* x FFFD y FFFD ( FFFD FFFD FFFD z: E0 80 80 is overlong, each byte is bad. */
    const uint16_t want[] = {'x', 0xFFFD, 'y', 0xFFFD, '(', 0xFFFD, 0xFFFD, 0xFFFD, 'z'};
    assert_int_equal(reply_len, 2 + 2 * FW_ARRAY_LEN(want));
    for (size_t i = 0; i < FW_ARRAY_LEN(want); i++)
        assert_int_equal(fw_get_le16(reply_buf + 2 + 2 * i), want[i]);

    /* A long string stops at the 255-byte descriptor limit (126 characters). */
    setup_req(0x80, 0x06, 0x0304, 0x0409, 0xFFFF, NULL, 0);
    expect_reply(254);
    assert_int_equal(reply_buf[0], 254);

    /* Unknown language, unknown index. */
    setup_req(0x80, 0x06, 0x0301, 0x040C, 0xFF, NULL, 0);
    expect_stall();
    setup_req(0x80, 0x06, 0x0305, 0x0409, 0xFF, NULL, 0);
    expect_stall();
}

static void test_set_address(void **state)
{
    (void)state;
    setup_req(0x00, 0x05, 42, 0, 0, NULL, 0);
    expect_reply(0);
    assert_int_equal(address_count, 1);
    assert_int_equal(last_address, 42);
    setup_req(0x00, 0x05, 128, 0, 0, NULL, 0);
    expect_stall();
    assert_int_equal(address_count, 1);
    /* Not allowed once configured (§9.4.6). */
    configure();
    setup_req(0x00, 0x05, 7, 0, 0, NULL, 0);
    expect_stall();
}

static void test_set_configuration(void **state)
{
    (void)state;
    assert_false(usb_configured());
    setup_req(0x80, 0x08, 0, 0, 1, NULL, 0);
    expect_reply(1);
    assert_int_equal(reply_buf[0], 0);

    configure();
    assert_true(usb_configured());
    assert_int_equal(cls_configured_count, 1);
    setup_req(0x80, 0x08, 0, 0, 1, NULL, 0);
    expect_reply(1);
    assert_int_equal(reply_buf[0], 1);

    /* A configuration that does not exist. */
    setup_req(0x00, 0x09, 2, 0, 0, NULL, 0);
    expect_stall();
    assert_true(usb_configured());

    /* Back to Address state: the class drops its transfers. */
    int resets = cls_reset_count;
    setup_req(0x00, 0x09, 0, 0, 0, NULL, 0);
    expect_reply(0);
    assert_false(usb_configured());
    assert_int_equal(cls_reset_count, resets + 1);
}

static void test_get_status(void **state)
{
    (void)state;
    setup_req(0x80, 0x00, 0, 0, 2, NULL, 0);
    expect_reply(2);
    assert_int_equal(reply_buf[0], 1); /* self powered per bmAttributes */
    assert_int_equal(reply_buf[1], 0);
    /* Interface and non-zero endpoints only when configured. */
    setup_req(0x81, 0x00, 0, 0, 2, NULL, 0);
    expect_stall();
    setup_req(0x82, 0x00, 0, 0x82, 2, NULL, 0);
    expect_stall();
    setup_req(0x82, 0x00, 0, 0x80, 2, NULL, 0);
    expect_reply(2);
    configure();
    setup_req(0x81, 0x00, 0, 0, 2, NULL, 0);
    expect_reply(2);
    setup_req(0x81, 0x00, 0, 1, 2, NULL, 0);
    expect_stall();
    setup_req(0x82, 0x00, 0, 0x82, 2, NULL, 0);
    expect_reply(2);
    assert_int_equal(reply_buf[0], 0);
    setup_req(0x82, 0x00, 0, 0x83, 2, NULL, 0);
    expect_stall();
    /* wLength must be 2. */
    setup_req(0x80, 0x00, 0, 0, 4, NULL, 0);
    expect_stall();
}

static void test_endpoint_halt(void **state)
{
    (void)state;
    configure();
    setup_req(0x02, 0x03, 0, 0x82, 0, NULL, 0); /* SET_FEATURE(ENDPOINT_HALT) */
    expect_reply(0);
    setup_req(0x82, 0x00, 0, 0x82, 2, NULL, 0);
    assert_int_equal(reply_buf[0], 1);
    setup_req(0x02, 0x01, 0, 0x82, 0, NULL, 0); /* CLEAR_FEATURE */
    expect_reply(0);
    setup_req(0x82, 0x00, 0, 0x82, 2, NULL, 0);
    assert_int_equal(reply_buf[0], 0);

    /* A halted OUT endpoint takes no data. */
    setup_req(0x02, 0x03, 0, 0x01, 0, NULL, 0);
    expect_reply(0);
    uint8_t pkt[4] = {1, 2, 3, 4};
    usb_on_out(0x01, pkt, sizeof pkt);
    assert_int_equal(cls_out_count, 0);
    setup_req(0x02, 0x01, 0, 0x01, 0, NULL, 0);
    usb_on_out(0x01, pkt, sizeof pkt);
    assert_int_equal(cls_out_count, 1);

    /* ep0 halt: accepted, ignored. Unknown endpoint, unknown features. */
    setup_req(0x02, 0x03, 0, 0x00, 0, NULL, 0);
    expect_reply(0);
    setup_req(0x02, 0x03, 0, 0x05, 0, NULL, 0);
    expect_stall();
    setup_req(0x00, 0x03, 1, 0, 0, NULL, 0); /* DEVICE_REMOTE_WAKEUP */
    expect_stall();
    setup_req(0x00, 0x03, 2, 0x0100, 0, NULL, 0); /* TEST_MODE */
    expect_stall();
    setup_req(0x01, 0x01, 0, 0, 0, NULL, 0); /* interface feature */
    expect_stall();

    /* SET_CONFIGURATION clears halts. */
    setup_req(0x02, 0x03, 0, 0x82, 0, NULL, 0);
    configure();
    setup_req(0x82, 0x00, 0, 0x82, 2, NULL, 0);
    assert_int_equal(reply_buf[0], 0);
}

static void test_interface_requests(void **state)
{
    (void)state;
    setup_req(0x81, 0x0A, 0, 0, 1, NULL, 0);
    expect_stall(); /* not configured */
    configure();
    setup_req(0x81, 0x0A, 0, 0, 1, NULL, 0);
    expect_reply(1);
    assert_int_equal(reply_buf[0], 0);
    setup_req(0x01, 0x0B, 0, 0, 0, NULL, 0);
    expect_reply(0);
    setup_req(0x01, 0x0B, 1, 0, 0, NULL, 0);
    expect_stall();
    setup_req(0x01, 0x0B, 0, 1, 0, NULL, 0);
    expect_stall();
}

static void test_unknown_requests_stall(void **state)
{
    (void)state;
    configure();
    setup_req(0x00, 0x07, 0x0100, 0, 0, NULL, 0); /* SET_DESCRIPTOR */
    expect_stall();
    setup_req(0x82, 0x0C, 0, 0x82, 2, NULL, 0); /* SYNCH_FRAME */
    expect_stall();
    setup_req(0x80, 0x42, 0, 0, 0, NULL, 0);
    expect_stall();
    setup_req(0xE0, 0x00, 0, 0, 0, NULL, 0); /* reserved type */
    expect_stall();
}

static void test_class_requests(void **state)
{
    (void)state;
    /* Before configuration the interface does not exist. */
    setup_req(0x21, 0x01, 0x0500, 0, 0, NULL, 0);
    expect_stall();
    assert_int_equal(cls_request_count, 0);
    configure();
    setup_req(0x21, 0x01, 0x0500, 0, 0, NULL, 0);
    expect_reply(0);
    assert_int_equal(cls_request_count, 1);
    assert_int_equal(cls_last_setup.wValue, 0x0500);
    /* With an OUT data stage of exactly wLength bytes. */
    uint8_t d[3] = {1, 2, 3};
    setup_req(0x21, 0x09, 0, 0, 3, d, 3);
    expect_reply(0);
    assert_int_equal(cls_last_request_len, 3);
    /* Data stage shorter than wLength: stall without bothering the class. */
    setup_req(0x21, 0x09, 0, 0, 3, d, 2);
    expect_stall();
    assert_int_equal(cls_request_count, 2);
    /* The class refuses. */
    cls_request_result = false;
    setup_req(0xA1, 0x02, 0, 0, 4, NULL, 0);
    expect_stall();
    /* Vendor request to the device, class request to another interface. */
    cls_request_result = true;
    setup_req(0x40, 0x01, 0, 0, 0, NULL, 0);
    expect_stall();
    setup_req(0x21, 0x01, 0, 1, 0, NULL, 0);
    expect_stall();
    setup_req(0x41, 0x01, 0, 0, 0, NULL, 0); /* vendor to our interface */
    expect_reply(0);
}

static void test_out_routing(void **state)
{
    (void)state;
    uint8_t pkt[10] = {0};
    usb_on_out(0x01, pkt, sizeof pkt);
    assert_int_equal(cls_out_count, 0); /* not configured */
    configure();
    usb_on_out(0x01, pkt, sizeof pkt);
    assert_int_equal(cls_out_count, 1);
    assert_int_equal(cls_last_out_ep, 0x01);
    assert_int_equal(cls_last_out_len, 10);
    usb_on_out(0x82, pkt, sizeof pkt); /* IN endpoint */
    usb_on_out(0x02, pkt, sizeof pkt); /* not in the configuration */
    usb_on_out(0x01, NULL, 5);
    assert_int_equal(cls_out_count, 1);

    /* Bus reset and detach deconfigure and tell the class. */
    int resets = cls_reset_count;
    usb_on_reset();
    assert_false(usb_configured());
    assert_int_equal(cls_reset_count, resets + 1);
    usb_on_out(0x01, pkt, sizeof pkt);
    assert_int_equal(cls_out_count, 1);
    configure();
    usb_on_detach();
    assert_false(usb_configured());
    assert_int_equal(cls_reset_count, resets + 2);
}

static void test_bad_descriptors(void **state)
{
    (void)state;
    uint32_t bugs = fw_bug_count();
    static const uint8_t bad_cfg[9] = {9, 2, 20, 0, 1, 1, 0, 0x80, 50}; /* wTotalLength lies */
    usb_descriptors_t bad = descs;
    bad.config = bad_cfg;
    bad.config_len = sizeof bad_cfg;
    usb_init(&bad, &cls_ops);
    assert_true(fw_bug_count() > bugs);
    setup_req(0x80, 0x06, 0x0100, 0, 64, NULL, 0);
    expect_stall();
    usb_init(NULL, &cls_ops);
    setup_req(0x80, 0x06, 0x0100, 0, 64, NULL, 0);
    expect_stall();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_device_descriptor, setup_core),
        cmocka_unit_test_setup(test_config_descriptor, setup_core),
        cmocka_unit_test_setup(test_string_descriptors, setup_core),
        cmocka_unit_test_setup(test_set_address, setup_core),
        cmocka_unit_test_setup(test_set_configuration, setup_core),
        cmocka_unit_test_setup(test_get_status, setup_core),
        cmocka_unit_test_setup(test_endpoint_halt, setup_core),
        cmocka_unit_test_setup(test_interface_requests, setup_core),
        cmocka_unit_test_setup(test_unknown_requests_stall, setup_core),
        cmocka_unit_test_setup(test_class_requests, setup_core),
        cmocka_unit_test_setup(test_out_routing, setup_core),
        cmocka_unit_test_setup(test_bad_descriptors, setup_core),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
