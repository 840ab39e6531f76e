/* T=0 tests (ISO/IEC 7816-3 §10, §12.2) with the CPS3 ATR: WI = 0x2A, so
 * WWT = 960 * 42 * 372 / 5 MHz = 2.9998 s of virtual time. */
#include "icc_tests.h"

#include <stdio.h>
#include <string.h>

#define CPS3_WWT_US 2999808u

static icc_status_t xfer_hex(const char *capdu_hex, uint8_t *r, size_t rcap,
                             size_t *rl)
{
    uint8_t c[ICC_CAPDU_MAX + 8];
    size_t n = hex_bytes(capdu_hex, c, sizeof c);
    return icc_transceive(c, n, r, rcap, rl);
}

static void expect_rapdu(const uint8_t *r, size_t rl, const char *want_hex)
{
    uint8_t w[ICC_RAPDU_MAX + 8];
    size_t n = hex_bytes(want_hex, w, sizeof w);
    assert_int_equal(rl, n);
    assert_memory_equal(r, w, n);
}

static int t0_setup(void **state)
{
    (void)state;
    power_on_hex(ATR_CPS3_T0);
    return 0;
}

static void test_t0_case1(void **state)
{
    (void)state;
    fake_expect_hex("00 70 00 00 00");
    fake_reply_hex("90 00");
    uint8_t r[8];
    size_t rl = 0;
    assert_int_equal(xfer_hex("00 70 00 00", r, sizeof r, &rl), ICC_OK);
    expect_rapdu(r, rl, "90 00");
    assert_script_done();
}

static void test_t0_case2(void **state)
{
    (void)state;
    fake_expect_hex("00 84 00 00 08");
    fake_reply_hex("84 01 02 03 04 05 06 07 08 90 00");
    uint8_t r[ICC_RAPDU_MAX];
    size_t rl = 0;
    assert_int_equal(xfer_hex("00 84 00 00 08", r, sizeof r, &rl), ICC_OK);
    expect_rapdu(r, rl, "01 02 03 04 05 06 07 08 90 00");
    assert_script_done();
}

static void test_t0_case2_6c(void **state)
{
    (void)state;
    /* Le = 00 (256); the card says 6C 20: the header goes again with P3 = 20
     * and the host only sees the data (§12.2.3, transparent). */
    fake_expect_hex("00 B0 00 00 00");
    fake_reply_hex("6C 20");
    fake_expect_hex("00 B0 00 00 20");
    uint8_t reply[1 + 32 + 2];
    reply[0] = 0xB0;
    for (int i = 0; i < 32; i++)
        reply[1 + i] = (uint8_t)(0xA0 + i);
    reply[33] = 0x90;
    reply[34] = 0x00;
    fake_reply(reply, sizeof reply);
    uint8_t r[ICC_RAPDU_MAX];
    size_t rl = 0;
    assert_int_equal(xfer_hex("00 B0 00 00 00", r, sizeof r, &rl), ICC_OK);
    assert_int_equal(rl, 34);
    assert_memory_equal(r, reply + 1, 34);
    assert_script_done();
}

static void test_t0_case3_ack_and_single_bytes(void **state)
{
    (void)state;
    fake_expect_hex("00 20 00 01 04");
    fake_reply_hex("20");
    fake_expect_hex("31 32 33 34");
    fake_reply_hex("90 00");
    uint8_t r[8];
    size_t rl = 0;
    assert_int_equal(xfer_hex("00 20 00 01 04 31 32 33 34", r, sizeof r, &rl), ICC_OK);
    expect_rapdu(r, rl, "90 00");
    assert_script_done();

    /* ~INS (DF): one byte at a time, then ACK for the rest. */
    fake_expect_hex("00 20 00 01 04");
    fake_reply_hex("DF");
    fake_expect_hex("31");
    fake_reply_hex("DF");
    fake_expect_hex("32");
    fake_reply_hex("20");
    fake_expect_hex("33 34");
    fake_reply_hex("63 C2");
    assert_int_equal(xfer_hex("00 20 00 01 04 31 32 33 34", r, sizeof r, &rl), ICC_OK);
    expect_rapdu(r, rl, "63 C2");
    assert_script_done();
}

static void test_t0_case4_with_le(void **state)
{
    (void)state;
    /* Case 4S with Le = 00: 61 1C → GET RESPONSE 1C (§12.2.4). */
    fake_expect_hex("00 A4 04 00 02");
    fake_reply_hex("A4");
    fake_expect_hex("3F 00");
    fake_reply_hex("61 1C");
    fake_expect_hex("00 C0 00 00 1C");
    uint8_t reply[1 + 28 + 2];
    reply[0] = 0xC0;
    for (int i = 0; i < 28; i++)
        reply[1 + i] = (uint8_t)i;
    reply[29] = 0x90;
    reply[30] = 0x00;
    fake_reply(reply, sizeof reply);
    uint8_t r[ICC_RAPDU_MAX];
    size_t rl = 0;
    assert_int_equal(xfer_hex("00 A4 04 00 02 3F 00 00", r, sizeof r, &rl), ICC_OK);
    assert_int_equal(rl, 30);
    assert_memory_equal(r, reply + 1, 30);
    assert_script_done();

    /* Le = 10 but the card has 20: GET RESPONSE 10, 61 10 goes up. */
    fake_expect_hex("00 A4 04 00 02");
    fake_reply_hex("A4");
    fake_expect_hex("3F 00");
    fake_reply_hex("61 20");
    fake_expect_hex("00 C0 00 00 10");
    fake_reply_hex("C0 00 01 02 03 04 05 06 07 08 09 0A 0B 0C 0D 0E 0F 61 10");
    assert_int_equal(xfer_hex("00 A4 04 00 02 3F 00 10", r, sizeof r, &rl), ICC_OK);
    expect_rapdu(r, rl, "00 01 02 03 04 05 06 07 08 09 0A 0B 0C 0D 0E 0F 61 10");
    assert_script_done();

    /* Case 4 with Le and an error status: passed up, no GET RESPONSE. */
    fake_expect_hex("00 A4 04 00 02");
    fake_reply_hex("A4");
    fake_expect_hex("3F 00");
    fake_reply_hex("6A 82");
    assert_int_equal(xfer_hex("00 A4 04 00 02 3F 00 00", r, sizeof r, &rl), ICC_OK);
    expect_rapdu(r, rl, "6A 82");
    assert_script_done();
}

/* The CPS3 signature as OpenSC drives it over T=0 (spec/cpx-card.md part A
 * item 1): case 4 without Le → 61 00 up; the host's GET RESPONSE E7 → 231
 * bytes + 61 19; GET RESPONSE 19 → 25 bytes + 90 00. */
static void test_t0_cps3_signature_flow(void **state)
{
    (void)state;
    unsigned waits = 0;
    icc_set_wait_hook(count_hook, &waits);
    uint8_t cmd[5 + 51];
    static const uint8_t hdr[5] = {0x00, 0x88, 0x00, 0x00, 0x33};
    memcpy(cmd, hdr, 5);
    for (int i = 0; i < 51; i++)
        cmd[5 + i] = (uint8_t)(0x30 + i);
    fake_expect(cmd, 5);
    fake_reply_hex("88");
    fake_expect(cmd + 5, 51);
    /* the card computes for 1.5 s, sending NULL bytes every 0.5 s */
    fake_reply_hex("+500000 60 +500000 60 +500000 60 61 00");
    uint8_t r[ICC_RAPDU_MAX];
    size_t rl = 0;
    assert_int_equal(icc_transceive(cmd, sizeof cmd, r, sizeof r, &rl), ICC_OK);
    expect_rapdu(r, rl, "61 00");
    assert_int_equal(waits, 3);
    assert_script_done();

    uint8_t sig[256];
    for (int i = 0; i < 256; i++)
        sig[i] = (uint8_t)(255 - i);
    uint8_t reply[1 + 231 + 2];
    fake_expect_hex("00 C0 00 00 E7");
    reply[0] = 0xC0;
    memcpy(reply + 1, sig, 231);
    reply[232] = 0x61;
    reply[233] = 0x19;
    fake_reply(reply, sizeof reply);
    assert_int_equal(xfer_hex("00 C0 00 00 E7", r, sizeof r, &rl), ICC_OK);
    assert_int_equal(rl, 233);
    assert_memory_equal(r, sig, 231);
    assert_int_equal(r[231], 0x61);
    assert_int_equal(r[232], 0x19);

    fake_expect_hex("00 C0 00 00 19");
    reply[0] = 0xC0;
    memcpy(reply + 1, sig + 231, 25);
    reply[26] = 0x90;
    reply[27] = 0x00;
    fake_reply(reply, 28);
    assert_int_equal(xfer_hex("00 C0 00 00 19", r, sizeof r, &rl), ICC_OK);
    assert_int_equal(rl, 27);
    assert_memory_equal(r, sig + 231, 25);
    assert_script_done();
    icc_set_wait_hook(NULL, NULL);
}

static void test_t0_null_rate_limit(void **state)
{
    (void)state;
    unsigned waits = 0;
    icc_set_wait_hook(count_hook, &waits);
    /* 10 NULL bytes 10 ms apart: one hook call (first NULL), the rest fall
     * inside ICC_WAIT_HOOK_PERIOD_US. Then the total wait exceeds nothing:
     * each NULL restarts WT. */
    fake_expect_hex("00 84 00 00 02");
    fake_reply_hex("+10000 60 +10000 60 +10000 60 +10000 60 +10000 60 "
                   "+10000 60 +10000 60 +10000 60 +10000 60 +10000 60 "
                   "84 AA BB 90 00");
    uint8_t r[8];
    size_t rl = 0;
    assert_int_equal(xfer_hex("00 84 00 00 02", r, sizeof r, &rl), ICC_OK);
    expect_rapdu(r, rl, "AA BB 90 00");
    assert_int_equal(waits, 1);

    /* NULL bytes 2.5 s apart keep a 10 s computation alive (WWT 3 s). */
    waits = 0;
    fake_expect_hex("00 84 00 00 02");
    fake_reply_hex("+2500000 60 +2500000 60 +2500000 60 +2500000 60 84 AA BB 90 00");
    uint64_t t0 = fake_now();
    assert_int_equal(xfer_hex("00 84 00 00 02", r, sizeof r, &rl), ICC_OK);
    assert_true(fake_now() - t0 >= 10000000u);
    assert_int_equal(waits, 4);
    assert_script_done();
    icc_set_wait_hook(NULL, NULL);
}

static void test_t0_mute(void **state)
{
    (void)state;
    fake_expect_hex("00 84 00 00 08");
    uint8_t r[16];
    size_t rl = 0;
    uint64_t t0 = fake_now();
    assert_int_equal(xfer_hex("00 84 00 00 08", r, sizeof r, &rl), ICC_ERR_MUTE);
    uint64_t waited = fake_now() - t0;
    assert_true(waited >= CPS3_WWT_US);
    assert_true(waited < CPS3_WWT_US + 20000u);
    assert_int_equal(rl, 0);
    /* §7.2: deactivation after WT */
    assert_false(icc_powered());
    assert_false(fake_vcc());
    assert_script_done();
    assert_int_equal(xfer_hex("00 84 00 00 08", r, sizeof r, &rl), ICC_ERR_NOT_POWERED);

    /* Mute in the middle of the data. */
    power_on_hex(ATR_CPS3_T0);
    fake_expect_hex("00 84 00 00 08");
    fake_reply_hex("84 01 02 03");
    assert_int_equal(xfer_hex("00 84 00 00 08", r, sizeof r, &rl), ICC_ERR_MUTE);
    assert_script_done();
}

static void test_t0_removed(void **state)
{
    (void)state;
    fake_expect_hex("00 84 00 00 08");
    fake_reply_hex("84 01 02");
    fake_remove();
    uint8_t r[16];
    size_t rl = 0;
    assert_int_equal(xfer_hex("00 84 00 00 08", r, sizeof r, &rl), ICC_ERR_ABSENT);
    assert_false(icc_powered());
    assert_false(fake_vcc());
    assert_false(icc_present());
    assert_int_equal(xfer_hex("00 84 00 00 08", r, sizeof r, &rl), ICC_ERR_ABSENT);
}

static void test_t0_bad_procedure_byte(void **state)
{
    (void)state;
    fake_expect_hex("00 84 00 00 08");
    fake_reply_hex("42");
    uint8_t r[16];
    size_t rl = 0;
    assert_int_equal(xfer_hex("00 84 00 00 08", r, sizeof r, &rl), ICC_ERR_PROTOCOL);
    assert_false(icc_powered());

    /* ACK with nothing left to send */
    power_on_hex(ATR_CPS3_T0);
    fake_expect_hex("00 70 00 00 00");
    fake_reply_hex("70");
    assert_int_equal(xfer_hex("00 70 00 00", r, sizeof r, &rl), ICC_ERR_PROTOCOL);
}

static void test_t0_overrun(void **state)
{
    (void)state;
    fake_expect_hex("00 84 00 00 08");
    fake_reply_hex("84 01 02 03 04 05 06 07 08 90 00");
    uint8_t r[6];
    size_t rl = 0;
    assert_int_equal(xfer_hex("00 84 00 00 08", r, sizeof r, &rl), ICC_ERR_OVERRUN);
    assert_int_equal(rl, 0);
    assert_script_done(); /* the line was read to the end */
    assert_true(icc_powered());
}

static void test_t0_bad_apdus(void **state)
{
    (void)state;
    uint8_t r[16];
    size_t rl = 0;
    assert_int_equal(xfer_hex("00 84 00", r, sizeof r, &rl), ICC_ERR_BAD_PARAM);
    assert_int_equal(xfer_hex("00 84 00 00 05 01 02", r, sizeof r, &rl), ICC_ERR_BAD_PARAM);
    assert_int_equal(xfer_hex("00 84 00 00 00 01", r, sizeof r, &rl), ICC_ERR_BAD_PARAM);
    assert_int_equal(xfer_hex("00 64 00 00 02", r, sizeof r, &rl), ICC_ERR_BAD_PARAM);
    assert_int_equal(xfer_hex("00 94 00 00 02", r, sizeof r, &rl), ICC_ERR_BAD_PARAM);
    assert_int_equal(xfer_hex("00 84 00 00 02", r, 1, &rl), ICC_ERR_BAD_PARAM);
    uint8_t big[ICC_CAPDU_MAX + 1] = {0};
    assert_int_equal(icc_transceive(big, sizeof big, r, sizeof r, &rl), ICC_ERR_BAD_PARAM);
    assert_int_equal(icc_transceive(NULL, 4, r, sizeof r, &rl), ICC_ERR_BAD_PARAM);
    size_t n = 0;
    fake_tx_log(&n);
    assert_int_equal(n, 0);
    assert_true(icc_powered());
}

static void test_t0_stats(void **state)
{
    (void)state;
    icc_stats_t s0, s1;
    icc_get_stats(&s0);
    fake_expect_hex("00 84 00 00 08");
    fake_reply_hex("84 01 02 03 04 05 06 07 08 90 00");
    uint8_t r[16];
    size_t rl = 0;
    assert_int_equal(xfer_hex("00 84 00 00 08", r, sizeof r, &rl), ICC_OK);
    icc_get_stats(&s1);
    assert_int_equal(s1.apdus - s0.apdus, 1);
    assert_int_equal(s1.chars_sent - s0.chars_sent, 5);
    assert_int_equal(s1.chars_recv - s0.chars_recv, 11);
    /* 16 characters of 12 etu at 372/5 MHz = 893 us each */
    assert_true(s1.wire_us - s0.wire_us >= 16u * 892u);
}

int icc_t0_tests(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_t0_case1, t0_setup),
        cmocka_unit_test_setup(test_t0_case2, t0_setup),
        cmocka_unit_test_setup(test_t0_case2_6c, t0_setup),
        cmocka_unit_test_setup(test_t0_case3_ack_and_single_bytes, t0_setup),
        cmocka_unit_test_setup(test_t0_case4_with_le, t0_setup),
        cmocka_unit_test_setup(test_t0_cps3_signature_flow, t0_setup),
        cmocka_unit_test_setup(test_t0_null_rate_limit, t0_setup),
        cmocka_unit_test_setup(test_t0_mute, t0_setup),
        cmocka_unit_test_setup(test_t0_removed, t0_setup),
        cmocka_unit_test_setup(test_t0_bad_procedure_byte, t0_setup),
        cmocka_unit_test_setup(test_t0_overrun, t0_setup),
        cmocka_unit_test_setup(test_t0_bad_apdus, t0_setup),
        cmocka_unit_test_setup(test_t0_stats, t0_setup),
    };
    return cmocka_run_group_tests_name("icc_t0", tests, NULL, NULL);
}
