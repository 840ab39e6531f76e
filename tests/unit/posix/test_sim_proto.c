/* Unit tests of board/posix's pure codecs (sim_proto.c, docs/simulation.md
 * §1–§3) and cachet-sim-ctl's parsers (ctl_conf.c, §4). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "ctl_conf.h"
#include "sim_proto.h"

static void test_usb_frame_roundtrip(void **state)
{
    (void)state;
    uint8_t buf[SIM_USB_HDR_LEN + 3] = {0};
    sim_usb_hdr_t h = {.kind = SIM_USB_IN, .ep = 0x82, .status = 1, .len = 3};
    sim_usb_hdr_encode(buf, &h);
    const uint8_t want[8] = {0x04, 0x82, 0x00, 0x01, 0x00, 0x00, 0x00, 0x03};
    assert_memory_equal(buf, want, 8);

    sim_usb_hdr_t got;
    size_t flen = 0;
    for (size_t len = 0; len < sizeof buf; len++)
        assert_int_equal(sim_usb_frame_next(buf, len, &got, &flen), SIM_FRAME_MORE);
    assert_int_equal(sim_usb_frame_next(buf, sizeof buf, &got, &flen), SIM_FRAME_OK);
    assert_int_equal(flen, sizeof buf);
    assert_int_equal(got.kind, SIM_USB_IN);
    assert_int_equal(got.ep, 0x82);
    assert_int_equal(got.status, 1);
    assert_int_equal(got.len, 3);
}

static void test_usb_frame_caps(void **state)
{
    (void)state;
    sim_usb_hdr_t h;
    size_t flen;
    uint8_t at_cap[8] = {0x03, 0x01, 0, 0, 0x00, 0x00, 0x10, 0x00};  /* 4096 */
    uint8_t over[8] = {0x03, 0x01, 0, 0, 0x00, 0x00, 0x10, 0x01};    /* 4097 */
    uint8_t huge[8] = {0x03, 0x01, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF};
    assert_int_equal(sim_usb_frame_next(at_cap, 8, &h, &flen), SIM_FRAME_MORE);
    assert_int_equal(sim_usb_frame_next(over, 8, &h, &flen), SIM_FRAME_TOO_LONG);
    assert_int_equal(sim_usb_frame_next(huge, 8, &h, &flen), SIM_FRAME_TOO_LONG);
}

static void test_usb_host_frame_check(void **state)
{
    (void)state;
    /* GET_DESCRIPTOR (IN): no data stage. */
    uint8_t in_setup[8] = {0x80, 0x06, 0x00, 0x01, 0x00, 0x00, 0x12, 0x00};
    /* Class OUT request with wLength 2, followed by 2 data bytes. */
    uint8_t out_setup[10] = {0x21, 0x01, 0, 0, 0, 0, 0x02, 0x00, 0xAA, 0xBB};
    sim_usb_hdr_t h = {.kind = SIM_USB_SETUP, .ep = 0, .len = 8};
    assert_null(sim_usb_host_frame_check(&h, in_setup));
    h.len = 9;
    assert_non_null(sim_usb_host_frame_check(&h, in_setup));
    h.len = 10;
    assert_null(sim_usb_host_frame_check(&h, out_setup));
    h.len = 9;
    assert_non_null(sim_usb_host_frame_check(&h, out_setup));
    h.len = 7;
    assert_non_null(sim_usb_host_frame_check(&h, out_setup));
    h.len = 8;
    h.ep = 1;
    assert_non_null(sim_usb_host_frame_check(&h, in_setup));

    sim_usb_hdr_t o = {.kind = SIM_USB_OUT, .ep = 0x01, .len = 0};
    assert_null(sim_usb_host_frame_check(&o, NULL));
    o.ep = 0x82;
    assert_non_null(sim_usb_host_frame_check(&o, NULL));
    o.ep = 0x00;
    assert_non_null(sim_usb_host_frame_check(&o, NULL));
    o.kind = SIM_USB_IN;
    o.ep = 0x01;
    assert_non_null(sim_usb_host_frame_check(&o, NULL));
    o.kind = SIM_USB_SETUP_DONE;
    assert_non_null(sim_usb_host_frame_check(&o, NULL));
    o.kind = 0x77;
    assert_non_null(sim_usb_host_frame_check(&o, NULL));
}

static void test_ct_frames(void **state)
{
    (void)state;
    uint8_t buf[SIM_CT_HDR_LEN + 2];
    sim_ct_hdr_encode(buf, SIM_CT_IO, 2);
    buf[3] = 0x3B;
    buf[4] = 0x00;
    uint8_t kind;
    size_t plen, flen;
    assert_int_equal(sim_ct_frame_next(buf, 2, &kind, &plen, &flen), SIM_FRAME_MORE);
    assert_int_equal(sim_ct_frame_next(buf, 4, &kind, &plen, &flen), SIM_FRAME_MORE);
    assert_int_equal(sim_ct_frame_next(buf, 5, &kind, &plen, &flen), SIM_FRAME_OK);
    assert_int_equal(kind, SIM_CT_IO);
    assert_int_equal(plen, 2);
    assert_int_equal(flen, 5);
    uint8_t cap[3] = {SIM_CT_IO, 0x04, 0x00};  /* 1024: allowed */
    uint8_t over[3] = {SIM_CT_IO, 0x04, 0x01}; /* 1025 */
    assert_int_equal(sim_ct_frame_next(cap, 3, &kind, &plen, &flen), SIM_FRAME_MORE);
    assert_int_equal(sim_ct_frame_next(over, 3, &kind, &plen, &flen), SIM_FRAME_TOO_LONG);
}

static void test_cmd_parse(void **state)
{
    (void)state;
    sim_cmd_t c;
    sim_cmd_parse("status", &c);
    assert_int_equal(c.kind, SIM_CMD_STATUS);
    sim_cmd_parse("  plug ", &c);
    assert_int_equal(c.kind, SIM_CMD_PLUG);
    sim_cmd_parse("unplug", &c);
    assert_int_equal(c.kind, SIM_CMD_UNPLUG);
    sim_cmd_parse("screen", &c);
    assert_int_equal(c.kind, SIM_CMD_SCREEN);
    sim_cmd_parse("screen --json", &c);
    assert_int_equal(c.kind, SIM_CMD_SCREEN_JSON);
    sim_cmd_parse("screen --xml", &c);
    assert_int_equal(c.kind, SIM_CMD_INVALID);
    sim_cmd_parse("key 7", &c);
    assert_int_equal(c.kind, SIM_CMD_KEY);
    assert_int_equal(c.key, '7');
    sim_cmd_parse("key ok", &c);
    assert_int_equal(c.key, PORT_KEY_OK);
    sim_cmd_parse("key cancel", &c);
    assert_int_equal(c.key, PORT_KEY_CANCEL);
    sim_cmd_parse("key clear", &c);
    assert_int_equal(c.key, PORT_KEY_CLEAR);
    sim_cmd_parse("key 10", &c);
    assert_int_equal(c.kind, SIM_CMD_INVALID);
    assert_string_equal(c.why, "bad key");
    sim_cmd_parse("key", &c);
    assert_int_equal(c.kind, SIM_CMD_INVALID);
    sim_cmd_parse("key 1 2", &c);
    assert_int_equal(c.kind, SIM_CMD_INVALID);
    sim_cmd_parse("status now", &c);
    assert_int_equal(c.kind, SIM_CMD_INVALID);
    sim_cmd_parse("", &c);
    assert_int_equal(c.kind, SIM_CMD_INVALID);
    sim_cmd_parse("reboot", &c);
    assert_int_equal(c.kind, SIM_CMD_INVALID);
    assert_string_equal(c.why, "unknown command");
    char longl[SIM_CTL_LINE_MAX + 10];
    memset(longl, 'a', sizeof longl - 1);
    longl[sizeof longl - 1] = '\0';
    sim_cmd_parse(longl, &c);
    assert_int_equal(c.kind, SIM_CMD_INVALID);
}

static void test_json_and_sanitize(void **state)
{
    (void)state;
    char out[64];
    size_t pos = 0;
    assert_true(sim_json_append_string(out, sizeof out, &pos, "a\"b\\c\x01é"));
    assert_string_equal(out, "\"a\\\"b\\\\c\\u0001é\"");
    char small[6];
    pos = 0;
    assert_true(sim_json_append_string(small, sizeof small, &pos, "abc"));
    assert_string_equal(small, "\"abc\"");
    pos = 0;
    assert_false(sim_json_append_string(small, sizeof small, &pos, "abcd"));
    assert_int_equal(pos, 0);
    assert_string_equal(small, "");

    char clean[8];
    sim_text_sanitize(clean, sizeof clean, "a\nb\tc");
    assert_string_equal(clean, "a?b?c");
    sim_text_sanitize(clean, sizeof clean, "0123456789");
    assert_string_equal(clean, "0123456");
    /* Never cut a UTF-8 sequence in two. */
    sim_text_sanitize(clean, 4, "aé");
    assert_string_equal(clean, "aé");
    sim_text_sanitize(clean, 3, "aé");
    assert_string_equal(clean, "a");
}

static void test_ctl_conf(void **state)
{
    (void)state;
    const char *conf = "# profile\nname = cps-rpps\npin_tries_max = 3\n"
                       "  pin   =  1234  \npuk=12345678\r\nempty =\n";
    char v[16];
    assert_true(ctl_conf_get(conf, "pin", v, sizeof v));
    assert_string_equal(v, "1234");
    assert_true(ctl_conf_get(conf, "puk", v, sizeof v));
    assert_string_equal(v, "12345678");
    assert_true(ctl_conf_get(conf, "name", v, sizeof v));
    assert_string_equal(v, "cps-rpps");
    assert_true(ctl_conf_get(conf, "empty", v, sizeof v));
    assert_string_equal(v, "");
    assert_false(ctl_conf_get(conf, "profile", v, sizeof v));
    assert_false(ctl_conf_get(conf, "serial", v, sizeof v));
    char tiny[4];
    assert_false(ctl_conf_get(conf, "puk", tiny, sizeof tiny));

    const char *st = "usb=plugged card=present powered=0 protocol=T0\n";
    assert_true(ctl_field_get(st, "card", v, sizeof v));
    assert_string_equal(v, "present");
    assert_true(ctl_field_get(st, "protocol", v, sizeof v));
    assert_string_equal(v, "T0");
    assert_false(ctl_field_get(st, "car", v, sizeof v));
    assert_false(ctl_field_get(st, "clock", v, sizeof v));

    assert_true(ctl_profile_name_ok("cps-rpps"));
    assert_true(ctl_profile_name_ok("cps_t1.v2"));
    assert_false(ctl_profile_name_ok(""));
    assert_false(ctl_profile_name_ok(".."));
    assert_false(ctl_profile_name_ok(".hidden"));
    assert_false(ctl_profile_name_ok("a/b"));
    assert_false(ctl_profile_name_ok("a b"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_usb_frame_roundtrip),
        cmocka_unit_test(test_usb_frame_caps),
        cmocka_unit_test(test_usb_host_frame_check),
        cmocka_unit_test(test_ct_frames),
        cmocka_unit_test(test_cmd_parse),
        cmocka_unit_test(test_json_and_sanitize),
        cmocka_unit_test(test_ctl_conf),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
