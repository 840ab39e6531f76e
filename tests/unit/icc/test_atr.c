/* ATR parsing (ISO/IEC 7816-3 §8) and activation (§6.2) tests. */
#include "icc_tests.h"

#include <string.h>

#include "atr.h"

static icc_status_t parse_hex(const char *hex, atr_info_t *a)
{
    uint8_t b[64];
    size_t n = hex_bytes(hex, b, sizeof b);
    return atr_parse(b, n, a);
}

static void test_atr_cps3_t0(void **state)
{
    (void)state;
    atr_info_t a;
    assert_int_equal(parse_hex(ATR_CPS3_T0, &a), ICC_OK);
    assert_int_equal(a.len, 17);
    assert_false(a.inverse);
    assert_false(a.ta1_present);
    assert_int_equal(a.fi, 372);
    assert_int_equal(a.di, 1);
    assert_int_equal(a.fmax_hz, 5000000u);
    assert_true(a.tb1_present);
    assert_int_equal(a.tb1, 0x00);
    assert_int_equal(a.extra_guard, 0);
    assert_false(a.specific);
    assert_int_equal(a.wi, 0x2A); /* TC2 */
    assert_int_equal(a.protocols, 1u << 0); /* T=0 only */
    assert_int_equal(a.first_protocol, 0);
    assert_false(a.tck_present);
    assert_int_equal(a.hist_len, 12);
    static const uint8_t hist[12] = {0x00, 0x12, 0x25, 0x00, 0x64, 0x80,
                                     0x00, 0x03, 0x10, 0x00, 0x90, 0x00};
    assert_memory_equal(a.hist, hist, 12);
}

static void test_atr_t1_ifsc254(void **state)
{
    (void)state;
    atr_info_t a;
    assert_int_equal(parse_hex(ATR_T1_IFSC254, &a), ICC_OK);
    assert_int_equal(a.protocols, 1u << 1);
    assert_int_equal(a.first_protocol, 1);
    assert_int_equal(a.ifsc, 254); /* TA3 */
    assert_int_equal(a.bwi, 4);
    assert_int_equal(a.cwi, 13);
    assert_false(a.crc);
    assert_true(a.tck_present);
    assert_int_equal(a.hist_len, 11);
    assert_int_equal(a.hist[10], 0x90);
}

static void test_atr_t1_specific(void **state)
{
    (void)state;
    atr_info_t a;
    assert_int_equal(parse_hex(ATR_T1_TA2, &a), ICC_OK);
    assert_true(a.specific); /* TA2 = 81 */
    assert_int_equal(a.specific_proto, 1);
    assert_false(a.specific_can_change);
    assert_false(a.specific_implicit);
    assert_int_equal(a.ifsc, 32); /* no TA3: default */
    assert_int_equal(a.protocols, 1u << 1);
}

static void test_atr_ta1_18(void **state)
{
    (void)state;
    atr_info_t a;
    assert_int_equal(parse_hex(ATR_T1_TA1_18, &a), ICC_OK);
    assert_true(a.ta1_present);
    assert_true(a.ta1_valid);
    assert_int_equal(a.fi_index, 1);
    assert_int_equal(a.di_index, 8);
    assert_int_equal(a.fi, 372);
    assert_int_equal(a.di, 12);
    assert_int_equal(a.fmax_hz, 5000000u);
    assert_int_equal(a.protocols, 1u << 1); /* TD1 = 81, TD2 = 01 */
    assert_int_equal(a.ifsc, 32);
}

/* Appends TCK to the n bytes of b (XOR of T0..TCK = 0). */
static size_t with_tck(uint8_t *b, size_t n)
{
    uint8_t x = 0;
    for (size_t i = 1; i < n; i++)
        x ^= b[i];
    b[n] = x;
    return n + 1;
}

static void test_atr_t1_bytes_and_t15(void **state)
{
    (void)state;
    /* T0=E0: TB1 TC1 TD1, K=0; TB1=00 TC1=FF; TD1=81 (TD2, T=1);
     * TD2=F1 (TA3 TB3 TC3 TD3, T=1): IFSC=80, BWI/CWI=0x25, CRC;
     * TD3=1F (TA4, T=15): TA4 = C3 (clock stop either, class 3). */
    uint8_t b[32] = {0x3B, 0xE0, 0x00, 0xFF, 0x81, 0xF1, 0x80, 0x25, 0x01, 0x1F, 0xC3};
    size_t n = with_tck(b, 11);
    atr_info_t a;
    assert_int_equal(atr_parse(b, n, &a), ICC_OK);
    assert_int_equal(a.extra_guard, 0xFF);
    assert_int_equal(a.ifsc, 0x80);
    assert_int_equal(a.bwi, 2);
    assert_int_equal(a.cwi, 5);
    assert_true(a.crc);
    assert_true(a.t15_present);
    assert_int_equal(a.clock_stop, 3);
    assert_int_equal(a.class_ind, 3);
    assert_int_equal(a.protocols, (1u << 1) | (1u << 15));
    assert_int_equal(a.hist_len, 0);

    /* RFU values fall back to the defaults: IFSC FF, BWI A, TA1 Fi index 7. */
    uint8_t c[32] = {0x3B, 0x90, 0x71, 0x81, 0x31, 0xFF, 0xA3};
    n = with_tck(c, 7);
    assert_int_equal(atr_parse(c, n, &a), ICC_OK);
    assert_true(a.ta1_present);
    assert_false(a.ta1_valid);
    assert_int_equal(a.fi, 372);
    assert_int_equal(a.ifsc, 32);
    assert_int_equal(a.bwi, 4);
    assert_int_equal(a.cwi, 3);
}

static void test_atr_errors(void **state)
{
    (void)state;
    atr_info_t a;
    /* bad TCK */
    assert_int_equal(parse_hex("3B 8B 81 11 FE 00 12 25 00 64 80 00 03 A5 00 90 01", &a),
                     ICC_ERR_BAD_ATR_TCK);
    /* TCK missing where T=1 is offered (one byte short) */
    assert_int_equal(parse_hex("3B 8B 81 11 FE 00 12 25 00 64 80 00 03 A5 00 90", &a),
                     ICC_ERR_BAD_ATR_TCK);
    /* bad TS */
    assert_int_equal(parse_hex("3C AC 00 40 2A 00 12 25 00 64 80 00 03 10 00 90 00", &a),
                     ICC_ERR_BAD_ATR_TS);
    assert_int_equal(parse_hex("3C", &a), ICC_ERR_BAD_ATR_TS);
    /* truncated: historical bytes missing */
    assert_int_equal(parse_hex("3B AC 00 40 2A 00 12 25", &a), ICC_ERR_BAD_ATR_TCK);
    assert_int_equal(parse_hex("3B", &a), ICC_ERR_BAD_ATR_TCK);
    assert_int_equal(atr_parse((const uint8_t *)"", 0, &a), ICC_ERR_BAD_ATR_TCK);
    /* one byte too many */
    assert_int_equal(parse_hex(ATR_CPS3_T0 " 00", &a), ICC_ERR_BAD_ATR_TCK);
    /* structure longer than 33 bytes: TD chain of 16 groups plus K=15 */
    uint8_t big[40] = {0x3B, 0x8F};
    for (size_t i = 2; i < 40; i++)
        big[i] = 0x80;
    assert_int_equal(atr_parse(big, sizeof big, &a), ICC_ERR_BAD_ATR_TCK);
    assert_int_equal(atr_parse(big, ICC_ATR_MAX, &a), ICC_ERR_BAD_ATR_TCK);
    assert_int_equal(atr_parse(NULL, 3, &a), ICC_ERR_BAD_PARAM);
}

static void test_atr_remaining(void **state)
{
    (void)state;
    uint8_t b[ICC_ATR_MAX];
    size_t n = hex_bytes(ATR_T1_IFSC254, b, sizeof b);
    size_t more = 99;
    assert_int_equal(atr_remaining(b, 0, &more), ICC_OK);
    assert_int_equal(more, 2);
    /* Feed as a receiver would: request 'more', then ask again. */
    size_t have = 0, rounds = 0;
    do {
        assert_int_equal(atr_remaining(b, have, &more), ICC_OK);
        assert_true(have + more <= n);
        have += more;
        rounds++;
    } while (more > 0);
    assert_int_equal(have, n);
    assert_true(rounds >= 3);
    assert_int_equal(atr_remaining(b, 2, &more), ICC_OK);
    assert_int_equal(more, 1); /* TD1 only tells what follows */
    uint8_t bad = 0x3C;
    assert_int_equal(atr_remaining(&bad, 1, &more), ICC_ERR_BAD_ATR_TS);
    assert_int_equal(atr_remaining(b, n + 1, &more), ICC_ERR_BAD_ATR_TCK);
}

static void test_atr_tables(void **state)
{
    (void)state;
    assert_int_equal(atr_fi(0), 372);
    assert_int_equal(atr_fmax_hz(0), 4000000u);
    assert_int_equal(atr_fi(9), 512);
    assert_int_equal(atr_fmax_hz(10), 7500000u);
    assert_int_equal(atr_fi(13), 2048);
    assert_int_equal(atr_fi(7), 0);
    assert_int_equal(atr_fi(15), 0);
    assert_int_equal(atr_di(0), 0);
    assert_int_equal(atr_di(7), 64);
    assert_int_equal(atr_di(8), 12);
    assert_int_equal(atr_di(9), 20);
    assert_int_equal(atr_di(10), 0);
}

/* ---- activation with the scripted card ---- */

static void test_power_on_cps3(void **state)
{
    (void)state;
    power_on_hex(ATR_CPS3_T0);
    /* §6.2.2: VCC and CLK with RST low, then RST high. */
    const char *ev = fake_events();
    const char *vcc = strstr(ev, "vcc1");
    const char *clk = strstr(ev, "clk5000000");
    const char *rst = strstr(ev, "rst1");
    assert_non_null(vcc);
    assert_non_null(clk);
    assert_non_null(rst);
    assert_true(vcc < clk && clk < rst);
    icc_params_t p;
    assert_int_equal(icc_get_params(&p), ICC_OK);
    assert_int_equal(p.protocol, ICC_PROTO_T0);
    assert_int_equal(p.fidi, 0x11);
    assert_int_equal(p.waiting, 0x2A);
    assert_int_equal(p.tcckst, 0x00);
    assert_int_equal(p.guard_time, 0);
    assert_int_equal(icc_clock_hz(), ICC_DEFAULT_CLOCK_HZ);
    assert_int_equal(fake_f(), 372);
    assert_int_equal(fake_d(), 1);
    assert_true(icc_present());
    icc_power_off();
    assert_false(icc_powered());
    assert_false(fake_vcc());
    assert_int_equal(fake_clock(), 0);
    assert_script_done();
}

static void test_power_on_t1_defaults(void **state)
{
    (void)state;
    power_on_hex(ATR_T1_IFSC254);
    icc_params_t p;
    assert_int_equal(icc_get_params(&p), ICC_OK);
    assert_int_equal(p.protocol, ICC_PROTO_T1);
    assert_int_equal(p.fidi, 0x11);
    assert_int_equal(p.tcckst, 0x10);
    assert_int_equal(p.waiting, 0x4D);
    assert_int_equal(p.ifsc, 254);
    assert_int_equal(icc_params_from_atr(&p), ICC_OK);
    assert_int_equal(p.fidi, 0x11);

    power_on_hex(ATR_T1_TA1_18);
    assert_int_equal(icc_get_params(&p), ICC_OK);
    assert_int_equal(p.fidi, 0x11); /* no PPS yet: Fd/Dd */
    assert_int_equal(icc_params_from_atr(&p), ICC_OK);
    assert_int_equal(p.fidi, 0x18);
    assert_int_equal(p.protocol, ICC_PROTO_T1);
    assert_int_equal(p.ifsc, 32);
}

static void test_power_on_mute(void **state)
{
    (void)state;
    fake_reset();
    icc_init();
    uint8_t atr[ICC_ATR_MAX];
    size_t len = 7;
    uint64_t t0 = fake_now();
    assert_int_equal(icc_power_on(atr, sizeof atr, &len), ICC_ERR_MUTE);
    assert_int_equal(len, 0);
    assert_false(icc_powered());
    assert_false(fake_vcc());
    /* Cold then warm: two RST rising edges, each waiting 40000 clocks. */
    const char *ev = fake_events();
    const char *first = strstr(ev, "rst1");
    assert_non_null(first);
    assert_non_null(strstr(first + 1, "rst1"));
    assert_true(fake_now() - t0 >= 2 * 8000u);
    assert_true(fake_now() - t0 < 2 * (8000u + 29464u) + 30000u);
}

static void test_power_on_late_ts_then_warm(void **state)
{
    (void)state;
    fake_reset();
    icc_init();
    /* TS 40 ms after RST: beyond 40000 clocks at 5 MHz (8 ms) plus the
     * wire time of a whole ATR (29.5 ms) allowed for bursty ports. */
    fake_on_rst();
    fake_reply_hex("+40000 " ATR_CPS3_T0);
    fake_on_rst();
    fake_reply_hex(ATR_CPS3_T0);
    uint8_t atr[ICC_ATR_MAX];
    size_t len = 0;
    assert_int_equal(icc_power_on(atr, sizeof atr, &len), ICC_OK);
    assert_int_equal(len, 17);
    assert_script_done();
}

static void test_power_on_burst_atr(void **state)
{
    (void)state;
    /* The simulated card's timing model delivers the whole ATR after its
     * wire time (17 x 12 etu = 15.2 ms): accepted at the cold reset. */
    fake_reset();
    icc_init();
    fake_on_rst();
    fake_reply_hex("+15200 " ATR_CPS3_T0);
    uint8_t atr[ICC_ATR_MAX];
    size_t len = 0;
    assert_int_equal(icc_power_on(atr, sizeof atr, &len), ICC_OK);
    assert_script_done();
    const char *first = strstr(fake_events(), "rst1");
    assert_null(strstr(first + 1, "rst1")); /* no warm reset was needed */
}

static void test_power_on_bad_ts_then_warm(void **state)
{
    (void)state;
    fake_reset();
    icc_init();
    fake_on_rst();
    fake_reply_hex("3C AC 00");
    fake_on_rst();
    fake_reply_hex(ATR_CPS3_T0);
    uint8_t atr[ICC_ATR_MAX];
    size_t len = 0;
    assert_int_equal(icc_power_on(atr, sizeof atr, &len), ICC_OK);
    assert_script_done();

    /* Bad TCK on both resets: the error is reported, contacts off. */
    fake_reset();
    icc_init();
    fake_on_rst();
    fake_reply_hex("3B 8B 81 11 FE 00 12 25 00 64 80 00 03 A5 00 90 01");
    fake_on_rst();
    fake_reply_hex("3B 8B 81 11 FE 00 12 25 00 64 80 00 03 A5 00 90 01");
    assert_int_equal(icc_power_on(atr, sizeof atr, &len), ICC_ERR_BAD_ATR_TCK);
    assert_false(fake_vcc());
    assert_script_done();

    /* Truncated ATR (card stops): malformed. */
    fake_reset();
    icc_init();
    fake_on_rst();
    fake_reply_hex("3B AC 00 40 2A");
    fake_on_rst();
    fake_reply_hex("3B AC 00 40 2A 00");
    assert_int_equal(icc_power_on(atr, sizeof atr, &len), ICC_ERR_BAD_ATR_TCK);
    assert_script_done();
}

static void test_power_on_inverse(void **state)
{
    (void)state;
    /* TS 3F read in the direct convention is 03 (§8.1). */
    fake_reset();
    icc_init();
    fake_on_rst();
    fake_reply_hex("03 AC 00 40 2A 00 12 25 00 64 80 00 03 10 00 90 00");
    uint8_t atr[ICC_ATR_MAX];
    size_t len = 0;
    assert_int_equal(icc_power_on(atr, sizeof atr, &len), ICC_OK);
    assert_int_equal(atr[0], 0x3F);
    assert_true(fake_inverse());
    icc_params_t p;
    assert_int_equal(icc_get_params(&p), ICC_OK);
    assert_int_equal(p.tcckst, 0x02);
}

static void test_power_on_absent_and_args(void **state)
{
    (void)state;
    fake_reset();
    icc_init();
    fake_set_present(false);
    uint8_t atr[ICC_ATR_MAX];
    size_t len = 0;
    assert_false(icc_present());
    assert_int_equal(icc_power_on(atr, sizeof atr, &len), ICC_ERR_ABSENT);
    assert_int_equal(icc_power_on(atr, 10, &len), ICC_ERR_BAD_PARAM);
    assert_int_equal(icc_power_on(NULL, sizeof atr, &len), ICC_ERR_BAD_PARAM);
    icc_params_t p;
    assert_int_equal(icc_get_params(&p), ICC_ERR_ABSENT);
    fake_set_present(true);
    assert_int_equal(icc_get_params(&p), ICC_ERR_NOT_POWERED);
    uint8_t r[4];
    assert_int_equal(icc_transceive((const uint8_t *)"\0\0\0\0", 4, r, sizeof r, &len),
                     ICC_ERR_NOT_POWERED);

    /* Removal while powered: icc_powered() notices and switches off. */
    power_on_hex(ATR_CPS3_T0);
    fake_set_present(false);
    assert_false(icc_powered());
    assert_false(fake_vcc());
}

static void test_power_on_warm_when_powered(void **state)
{
    (void)state;
    power_on_hex(ATR_CPS3_T0);
    fake_on_rst();
    fake_reply_hex(ATR_CPS3_T0);
    uint8_t atr[ICC_ATR_MAX];
    size_t len = 0;
    /* Already powered: a warm reset (no VCC cycle). */
    const size_t before = strlen(fake_events());
    assert_int_equal(icc_power_on(atr, sizeof atr, &len), ICC_OK);
    assert_null(strstr(fake_events() + before, "vcc"));
    assert_script_done();
}

static void test_power_on_warm_fails_then_cold(void **state)
{
    (void)state;
    power_on_hex(ATR_CPS3_T0);
    /* the powered card ignores the warm reset: VCC off, cold reset */
    fake_on_rst();
    fake_on_rst();
    fake_reply_hex(ATR_CPS3_T0);
    uint8_t atr[ICC_ATR_MAX];
    size_t len = 0;
    const size_t before = strlen(fake_events());
    assert_int_equal(icc_power_on(atr, sizeof atr, &len), ICC_OK);
    const char *ev = fake_events() + before;
    const char *off = strstr(ev, "vcc0");
    assert_non_null(off);
    assert_non_null(strstr(off, "vcc1"));
    assert_script_done();
}

static void test_power_on_low_fmax(void **state)
{
    (void)state;
    /* TA1 = 01: Fi 372, f(max) 4 MHz: the clock goes down after the ATR. */
    power_on_hex("3B 10 01");
    assert_int_equal(icc_clock_hz(), 4000000u);
    assert_int_equal(fake_clock(), 4000000u);
}

int icc_atr_tests(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_atr_cps3_t0),
        cmocka_unit_test(test_atr_t1_ifsc254),
        cmocka_unit_test(test_atr_t1_specific),
        cmocka_unit_test(test_atr_ta1_18),
        cmocka_unit_test(test_atr_t1_bytes_and_t15),
        cmocka_unit_test(test_atr_errors),
        cmocka_unit_test(test_atr_remaining),
        cmocka_unit_test(test_atr_tables),
        cmocka_unit_test(test_power_on_cps3),
        cmocka_unit_test(test_power_on_t1_defaults),
        cmocka_unit_test(test_power_on_mute),
        cmocka_unit_test(test_power_on_late_ts_then_warm),
        cmocka_unit_test(test_power_on_burst_atr),
        cmocka_unit_test(test_power_on_bad_ts_then_warm),
        cmocka_unit_test(test_power_on_inverse),
        cmocka_unit_test(test_power_on_absent_and_args),
        cmocka_unit_test(test_power_on_warm_when_powered),
        cmocka_unit_test(test_power_on_warm_fails_then_cold),
        cmocka_unit_test(test_power_on_low_fmax),
    };
    return cmocka_run_group_tests_name("icc_atr", tests, NULL, NULL);
}
