/* PPS (ISO/IEC 7816-3 §9) and icc_set_params tests. */
#include "icc_tests.h"

#include "pps.h"

#include <stdio.h>

static void test_pps_build_check(void **state)
{
    (void)state;
    uint8_t req[PPS_MAX];
    size_t n = 0;
    assert_int_equal(pps_build(1, 0x18, req, &n), ICC_OK);
    assert_int_equal(n, 4);
    static const uint8_t want[4] = {0xFF, 0x11, 0x18, 0xF6};
    assert_memory_equal(req, want, 4);
    assert_int_equal(pps_build(0, 0x11, req, &n), ICC_OK);
    assert_int_equal(n, 3); /* default Fi/Di: no PPS1 */
    static const uint8_t want0[3] = {0xFF, 0x00, 0xFF};
    assert_memory_equal(req, want0, 3);
    assert_int_equal(pps_build(1, 0x70, req, &n), ICC_ERR_BAD_PARAM); /* Fi RFU */
    assert_int_equal(pps_build(15, 0x11, req, &n), ICC_ERR_BAD_PARAM);

    uint8_t fidi = 0;
    assert_int_equal(pps_build(1, 0x18, req, &n), ICC_OK);
    assert_int_equal(pps_check(req, n, req, n, &fidi), ICC_OK);
    assert_int_equal(fidi, 0x18);
    /* PPS1 left out by the card: defaults. */
    static const uint8_t nopps1[3] = {0xFF, 0x01, 0xFE};
    assert_int_equal(pps_check(req, n, nopps1, 3, &fidi), ICC_OK);
    assert_int_equal(fidi, 0x11);
    /* Wrong T, wrong PPS1, wrong PCK, bad PPSS, PPS2 echo, bad length. */
    static const uint8_t wrong_t[4] = {0xFF, 0x10, 0x18, 0xF7};
    assert_int_equal(pps_check(req, n, wrong_t, 4, &fidi), ICC_ERR_PPS);
    static const uint8_t wrong_f[4] = {0xFF, 0x11, 0x13, 0xFD};
    assert_int_equal(pps_check(req, n, wrong_f, 4, &fidi), ICC_ERR_PPS);
    static const uint8_t wrong_pck[4] = {0xFF, 0x11, 0x18, 0x00};
    assert_int_equal(pps_check(req, n, wrong_pck, 4, &fidi), ICC_ERR_PPS);
    static const uint8_t wrong_ss[4] = {0xFE, 0x11, 0x18, 0xF7};
    assert_int_equal(pps_check(req, n, wrong_ss, 4, &fidi), ICC_ERR_PPS);
    static const uint8_t pps2[5] = {0xFF, 0x31, 0x18, 0x00, 0xD6};
    assert_int_equal(pps_check(req, n, pps2, 5, &fidi), ICC_ERR_PPS);
    assert_int_equal(pps_check(req, n, req, 3, &fidi), ICC_ERR_PPS);
}

static void test_pps_success_t1(void **state)
{
    (void)state;
    power_on_hex(ATR_T1_TA1_18);
    icc_params_t p;
    assert_int_equal(icc_params_from_atr(&p), ICC_OK);
    assert_int_equal(p.fidi, 0x18);
    fake_expect_hex("FF 11 18 F6");
    fake_reply_hex("FF 11 18 F6");
    assert_int_equal(icc_set_params(&p), ICC_OK);
    assert_script_done();
    assert_int_equal(fake_f(), 372);
    assert_int_equal(fake_d(), 12);
    icc_params_t now;
    assert_int_equal(icc_get_params(&now), ICC_OK);
    assert_int_equal(now.fidi, 0x18);
    assert_int_equal(now.protocol, ICC_PROTO_T1);
    assert_true(icc_powered());
}

static void test_pps_default_fidi_answer(void **state)
{
    (void)state;
    power_on_hex(ATR_T1_TA1_18);
    icc_params_t p;
    assert_int_equal(icc_params_from_atr(&p), ICC_OK);
    fake_expect_hex("FF 11 18 F6");
    fake_reply_hex("FF 01 FE"); /* PPS1 not echoed: Fd/Dd, T=1 */
    assert_int_equal(icc_set_params(&p), ICC_OK);
    assert_script_done();
    icc_params_t now;
    assert_int_equal(icc_get_params(&now), ICC_OK);
    assert_int_equal(now.fidi, 0x11);
    assert_int_equal(fake_d(), 1);
}

static void test_pps_refused(void **state)
{
    (void)state;
    power_on_hex(ATR_T1_TA1_18);
    icc_params_t p;
    assert_int_equal(icc_params_from_atr(&p), ICC_OK);
    fake_expect_hex("FF 11 18 F6");
    /* the card stays silent: refusal (§9.3) */
    uint64_t t0 = fake_now();
    assert_int_equal(icc_set_params(&p), ICC_ERR_PPS);
    assert_false(icc_powered());
    assert_false(fake_vcc());
    /* waited the initial waiting time, 9600 etu at 372/5 MHz = 714 ms */
    assert_true(fake_now() - t0 >= 714240u);
    assert_script_done();

    /* A garbled answer is a refusal too. */
    power_on_hex(ATR_T1_TA1_18);
    fake_expect_hex("FF 11 18 F6");
    fake_reply_hex("FF 11 13 FD");
    assert_int_equal(icc_set_params(&p), ICC_ERR_PPS);
    assert_false(icc_powered());
}

static void test_set_params_no_pps_needed(void **state)
{
    (void)state;
    power_on_hex(ATR_CPS3_T0);
    icc_params_t p;
    assert_int_equal(icc_get_params(&p), ICC_OK);
    p.guard_time = 2;
    p.waiting = 0;
    assert_int_equal(icc_set_params(&p), ICC_OK); /* nothing on the line */
    assert_int_equal(fake_n(), 2);
    icc_params_t now;
    assert_int_equal(icc_get_params(&now), ICC_OK);
    assert_int_equal(now.waiting, 10);
    size_t n = 0;
    fake_tx_log(&n);
    assert_int_equal(n, 0);

    /* T=1 is not offered by this card; bad Fi/Di; protocol 2. */
    p.protocol = ICC_PROTO_T1;
    p.ifsc = 32;
    assert_int_equal(icc_set_params(&p), ICC_ERR_NOT_SUPPORTED);
    p.protocol = ICC_PROTO_T0;
    p.fidi = 0x80;
    assert_int_equal(icc_set_params(&p), ICC_ERR_BAD_PARAM);
    p.protocol = 2;
    assert_int_equal(icc_set_params(&p), ICC_ERR_NOT_SUPPORTED);
    assert_int_equal(icc_set_params(NULL), ICC_ERR_BAD_PARAM);
}

static void test_set_params_specific_mode(void **state)
{
    (void)state;
    power_on_hex(ATR_T1_TA2);
    icc_params_t p;
    assert_int_equal(icc_get_params(&p), ICC_OK);
    assert_int_equal(p.protocol, ICC_PROTO_T1);
    p.fidi = 0x18;
    assert_int_equal(icc_set_params(&p), ICC_ERR_NOT_SUPPORTED);
    assert_true(icc_powered());
}

static void test_set_params_pps_after_exchange(void **state)
{
    (void)state;
    /* A card offering T=0 then T=1 (TD1=80 T=0, TD2=01 T=1), TA1=18. */
    uint8_t b[8] = {0x3B, 0x90, 0x18, 0x80, 0x01};
    uint8_t x = 0;
    for (int i = 1; i < 5; i++)
        x ^= b[i];
    char atr[64];
    snprintf(atr, sizeof atr, "3B 90 18 80 01 %02X", x);
    power_on_hex(atr);
    icc_params_t p;
    assert_int_equal(icc_get_params(&p), ICC_OK);
    assert_int_equal(p.protocol, ICC_PROTO_T0);
    /* one T=0 exchange: PPS is no longer allowed without a reset */
    fake_expect_hex("00 B0 00 00 02");
    fake_reply_hex("B0 01 02 90 00");
    uint8_t r[8];
    size_t rl = 0;
    assert_int_equal(icc_transceive((const uint8_t *)"\x00\xB0\x00\x00\x02", 5, r,
                                    sizeof r, &rl),
                     ICC_OK);
    assert_int_equal(rl, 4);
    /* switching to T=1: warm reset, ATR, then PPS */
    fake_on_rst();
    fake_reply_hex(atr);
    fake_expect_hex("FF 11 18 F6");
    fake_reply_hex("FF 11 18 F6");
    p.protocol = ICC_PROTO_T1;
    p.fidi = 0x18;
    p.waiting = 0x4D;
    p.ifsc = 32;
    assert_int_equal(icc_set_params(&p), ICC_OK);
    assert_script_done();
    assert_int_equal(icc_get_params(&p), ICC_OK);
    assert_int_equal(p.protocol, ICC_PROTO_T1);
    assert_int_equal(p.tcckst, 0x10);
}

int icc_pps_tests(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pps_build_check),
        cmocka_unit_test(test_pps_success_t1),
        cmocka_unit_test(test_pps_default_fidi_answer),
        cmocka_unit_test(test_pps_refused),
        cmocka_unit_test(test_set_params_no_pps_needed),
        cmocka_unit_test(test_set_params_specific_mode),
        cmocka_unit_test(test_set_params_pps_after_exchange),
    };
    return cmocka_run_group_tests_name("icc_pps", tests, NULL, NULL);
}
