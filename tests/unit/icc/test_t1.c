/* T=1 tests (ISO/IEC 7816-3 §11): block format, IFSD negotiation, chaining
 * both ways, WTX, error recovery and resynchronisation. The card is the
 * TA1=18 CPx-style ATR (IFSC 32 by default, BWI 4, CWI 13, LRC). */
#include "icc_tests.h"

#include <stdio.h>
#include <string.h>

#include "t1_block.h"

/* BWT = 11 etu + 2^4 * 960 * 372 / 5 MHz */
#define BWT_US (819u + 1142784u)

static uint8_t lrc(const uint8_t *p, size_t n)
{
    uint8_t x = 0;
    for (size_t i = 0; i < n; i++)
        x ^= p[i];
    return x;
}

static size_t blk(uint8_t *out, uint8_t pcb, const uint8_t *inf, size_t n)
{
    out[0] = 0x00;
    out[1] = pcb;
    out[2] = (uint8_t)n;
    if (n)
        memcpy(out + 3, inf, n);
    out[3 + n] = lrc(out, 3 + n);
    return 4 + n;
}

static void exp_blk(uint8_t pcb, const uint8_t *inf, size_t n)
{
    uint8_t b[T1_BLOCK_MAX];
    fake_expect(b, blk(b, pcb, inf, n));
}

static void rep_blk(uint8_t pcb, const uint8_t *inf, size_t n)
{
    uint8_t b[T1_BLOCK_MAX];
    fake_reply(b, blk(b, pcb, inf, n));
}

static const uint8_t SW_OK[2] = {0x90, 0x00};
static const uint8_t IFS_FE[1] = {0xFE};

/* The reader's first exchange: S(IFS request FE) → S(IFS response FE). */
static void script_ifs(void)
{
    exp_blk(0xC1, IFS_FE, 1);
    rep_blk(0xE1, IFS_FE, 1);
}

static int t1_setup(void **state)
{
    (void)state;
    power_on_hex(ATR_T1_TA1_18);
    return 0;
}

static void test_t1_block_format(void **state)
{
    (void)state;
    /* CRC-16 known answer: the ISO/IEC 3309 variant, preset FFFF, no final XOR. */
    assert_int_equal(t1_crc((const uint8_t *)"123456789", 9), 0x6F91);
    uint8_t b[T1_BLOCK_MAX];
    size_t n = 0;
    static const uint8_t inf[3] = {1, 2, 3};
    assert_int_equal(t1_block_build(b, sizeof b, 0x00, t1_pcb_i(1, true), inf, 3, false, &n),
                     ICC_OK);
    assert_int_equal(n, 7);
    assert_int_equal(b[1], 0x60);
    assert_int_equal(b[6], lrc(b, 6));
    t1_block_t p;
    assert_int_equal(t1_block_parse(b, n, false, &p), ICC_OK);
    assert_int_equal(p.kind, T1_BLOCK_I);
    assert_int_equal(p.ns, 1);
    assert_true(p.more);
    assert_int_equal(p.len, 3);
    assert_memory_equal(p.inf, inf, 3);
    b[6] ^= 1;
    assert_int_equal(t1_block_parse(b, n, false, &p), ICC_ERR_PARITY);
    assert_int_equal(t1_block_parse(b, n - 1, false, &p), ICC_ERR_PROTOCOL);

    assert_int_equal(t1_block_build(b, sizeof b, 0x00, t1_pcb_r(1, T1_R_EDC), NULL, 0, true, &n),
                     ICC_OK);
    assert_int_equal(n, 5);
    assert_int_equal(t1_block_parse(b, n, true, &p), ICC_OK);
    assert_int_equal(p.kind, T1_BLOCK_R);
    assert_int_equal(p.nr, 1);
    assert_int_equal(p.r_err, T1_R_EDC);
    assert_int_equal(t1_block_parse(b, n, false, &p), ICC_ERR_PROTOCOL);

    static const uint8_t wtx[1] = {5};
    assert_int_equal(t1_block_build(b, sizeof b, 0, t1_pcb_s(T1_S_WTX, false), wtx, 1, false, &n),
                     ICC_OK);
    assert_int_equal(t1_block_parse(b, n, false, &p), ICC_OK);
    assert_int_equal(p.kind, T1_BLOCK_S);
    assert_false(p.s_response);
    assert_int_equal(p.s_type, T1_S_WTX);

    /* Malformed: R-block with INF, S(IFS) 00, S type 5, I-block RFU bit,
     * S(WTX) without INF, LEN FF. */
    uint8_t bad[8];
    static const uint8_t one[1] = {1}, zero[1] = {0};
    assert_int_equal(t1_block_parse(bad, blk(bad, 0x80, one, 1), false, &p), ICC_ERR_PROTOCOL);
    assert_int_equal(t1_block_parse(bad, blk(bad, 0xC1, zero, 1), false, &p), ICC_ERR_PROTOCOL);
    assert_int_equal(t1_block_parse(bad, blk(bad, 0xC5, NULL, 0), false, &p), ICC_ERR_PROTOCOL);
    assert_int_equal(t1_block_parse(bad, blk(bad, 0x01, NULL, 0), false, &p), ICC_ERR_PROTOCOL);
    assert_int_equal(t1_block_parse(bad, blk(bad, 0xC3, NULL, 0), false, &p), ICC_ERR_PROTOCOL);
    assert_int_equal(t1_block_parse(bad, blk(bad, 0x83, NULL, 0), false, &p), ICC_ERR_PROTOCOL);
    static const uint8_t lenff[4] = {0x00, 0x00, 0xFF, 0xFF};
    assert_int_equal(t1_block_parse(lenff, 4, false, &p), ICC_ERR_PROTOCOL);

    uint8_t big[255] = {0};
    assert_int_equal(t1_block_build(b, sizeof b, 0, 0, big, 255, false, &n), ICC_ERR_BAD_PARAM);
    assert_int_equal(t1_block_build(b, 5, 0, 0, big, 4, true, &n), ICC_ERR_OVERRUN);
}

static void test_t1_ifs_then_apdu(void **state)
{
    (void)state;
    static const uint8_t apdu[5] = {0x00, 0x84, 0x00, 0x00, 0x08};
    static const uint8_t resp[10] = {1, 2, 3, 4, 5, 6, 7, 8, 0x90, 0x00};
    script_ifs();
    exp_blk(0x00, apdu, 5);
    rep_blk(0x00, resp, 10);
    uint8_t r[ICC_RAPDU_MAX];
    size_t rl = 0;
    assert_int_equal(icc_transceive(apdu, 5, r, sizeof r, &rl), ICC_OK);
    assert_int_equal(rl, 10);
    assert_memory_equal(r, resp, 10);
    /* second APDU: no IFS again, sequence numbers toggled */
    exp_blk(0x40, apdu, 5);
    rep_blk(0x40, SW_OK, 2);
    assert_int_equal(icc_transceive(apdu, 5, r, sizeof r, &rl), ICC_OK);
    assert_int_equal(rl, 2);
    /* third: back to N(S) = 0 */
    exp_blk(0x00, apdu, 5);
    rep_blk(0x00, SW_OK, 2);
    assert_int_equal(icc_transceive(apdu, 5, r, sizeof r, &rl), ICC_OK);
    assert_script_done();
}

static void test_t1_pps_then_ifs(void **state)
{
    (void)state;
    icc_params_t p;
    assert_int_equal(icc_params_from_atr(&p), ICC_OK);
    fake_expect_hex("FF 11 18 F6");
    fake_reply_hex("FF 11 18 F6");
    assert_int_equal(icc_set_params(&p), ICC_OK);
    assert_int_equal(fake_d(), 12);
    static const uint8_t apdu[4] = {0x00, 0x70, 0x00, 0x00};
    script_ifs();
    exp_blk(0x00, apdu, 4);
    rep_blk(0x00, SW_OK, 2);
    uint8_t r[8];
    size_t rl = 0;
    assert_int_equal(icc_transceive(apdu, 4, r, sizeof r, &rl), ICC_OK);
    assert_script_done();
}

/* A 255-byte UPDATE BINARY (260-byte APDU) in I-blocks of IFSC = 32:
 * 8 chained blocks of 32, acknowledged by R-blocks, then the last 4 bytes. */
static void test_t1_command_chaining(void **state)
{
    (void)state;
    uint8_t apdu[260] = {0x00, 0xD6, 0x00, 0x00, 0xFF};
    for (int i = 0; i < 255; i++)
        apdu[5 + i] = (uint8_t)i;
    script_ifs();
    size_t off = 0;
    unsigned ns = 0;
    while (off < sizeof apdu) {
        size_t chunk = sizeof apdu - off > 32 ? 32 : sizeof apdu - off;
        bool more = off + chunk < sizeof apdu;
        exp_blk((uint8_t)((ns ? 0x40 : 0) | (more ? 0x20 : 0)), apdu + off, chunk);
        ns ^= 1;
        if (more)
            rep_blk((uint8_t)(0x80 | (ns ? 0x10 : 0)), NULL, 0); /* R(N(R)) */
        off += chunk;
    }
    rep_blk(0x00, SW_OK, 2);
    uint8_t r[8];
    size_t rl = 0;
    assert_int_equal(icc_transceive(apdu, sizeof apdu, r, sizeof r, &rl), ICC_OK);
    assert_int_equal(rl, 2);
    assert_memory_equal(r, SW_OK, 2);
    assert_script_done();
}

/* A 258-byte response in two chained card I-blocks (254 + 4). */
static void test_t1_response_chaining(void **state)
{
    (void)state;
    static const uint8_t apdu[5] = {0x00, 0xB0, 0x00, 0x00, 0x00};
    uint8_t resp[258];
    for (int i = 0; i < 256; i++)
        resp[i] = (uint8_t)(i * 7);
    resp[256] = 0x90;
    resp[257] = 0x00;
    script_ifs();
    exp_blk(0x00, apdu, 5);
    rep_blk(0x20, resp, 254);     /* I(0, M) */
    exp_blk(0x90, NULL, 0);       /* R(1) */
    rep_blk(0x40, resp + 254, 4); /* I(1) */
    uint8_t r[ICC_RAPDU_MAX];
    size_t rl = 0;
    assert_int_equal(icc_transceive(apdu, 5, r, sizeof r, &rl), ICC_OK);
    assert_int_equal(rl, 258);
    assert_memory_equal(r, resp, 258);
    assert_script_done();

    /* too big for the caller: overrun, then a resync before the next APDU */
    exp_blk(0x40, apdu, 5);
    rep_blk(0x00, resp, 10);
    assert_int_equal(icc_transceive(apdu, 5, r, 8, &rl), ICC_ERR_OVERRUN);
    assert_true(icc_powered());
    exp_blk(0xC0, NULL, 0);
    rep_blk(0xE0, NULL, 0);
    script_ifs();
    exp_blk(0x00, apdu, 5);
    rep_blk(0x00, SW_OK, 2);
    assert_int_equal(icc_transceive(apdu, 5, r, sizeof r, &rl), ICC_OK);
    assert_script_done();
}

static void test_t1_wtx(void **state)
{
    (void)state;
    unsigned waits = 0;
    icc_set_wait_hook(count_hook, &waits);
    static const uint8_t apdu[5] = {0x00, 0x88, 0x00, 0x00, 0x00};
    static const uint8_t three[1] = {3};
    script_ifs();
    exp_blk(0x00, apdu, 5);
    rep_blk(0xC3, three, 1); /* S(WTX request 3) */
    exp_blk(0xE3, three, 1); /* S(WTX response 3) */
    /* the answer comes 2.5 s later: beyond BWT, within 3 * BWT */
    uint8_t b[8];
    size_t n = blk(b, 0x00, SW_OK, 2);
    fake_reply_hex("+2500000");
    fake_reply(b, n);
    uint8_t r[8];
    size_t rl = 0;
    assert_int_equal(icc_transceive(apdu, 5, r, sizeof r, &rl), ICC_OK);
    assert_int_equal(rl, 2);
    assert_int_equal(waits, 1);
    assert_script_done();
    icc_set_wait_hook(NULL, NULL);
}

static void test_t1_bad_lrc_retransmit(void **state)
{
    (void)state;
    static const uint8_t apdu[5] = {0x00, 0x84, 0x00, 0x00, 0x02};
    static const uint8_t resp[4] = {0xAA, 0xBB, 0x90, 0x00};
    script_ifs();
    exp_blk(0x00, apdu, 5);
    uint8_t b[16];
    size_t n = blk(b, 0x00, resp, 4);
    b[n - 1] ^= 0x55; /* bad LRC */
    fake_reply(b, n);
    exp_blk(0x81, NULL, 0); /* R(0, EDC error) */
    rep_blk(0x00, resp, 4); /* the card sends its block again */
    uint8_t r[8];
    size_t rl = 0;
    assert_int_equal(icc_transceive(apdu, 5, r, sizeof r, &rl), ICC_OK);
    assert_int_equal(rl, 4);
    assert_memory_equal(r, resp, 4);
    assert_script_done();
}

static void test_t1_card_asks_retransmit(void **state)
{
    (void)state;
    static const uint8_t apdu[4] = {0x00, 0x70, 0x00, 0x00};
    script_ifs();
    exp_blk(0x00, apdu, 4);
    rep_blk(0x81, NULL, 0); /* R(0, EDC): the card wants I(0) again */
    exp_blk(0x00, apdu, 4);
    rep_blk(0x00, SW_OK, 2);
    uint8_t r[8];
    size_t rl = 0;
    assert_int_equal(icc_transceive(apdu, 4, r, sizeof r, &rl), ICC_OK);
    assert_script_done();
}

static void test_t1_resynch(void **state)
{
    (void)state;
    static const uint8_t apdu[4] = {0x00, 0x70, 0x00, 0x00};
    script_ifs();
    exp_blk(0x00, apdu, 4);
    /* garbage four times: three R-blocks, then S(RESYNCH request) */
    for (int i = 0; i < 4; i++) {
        fake_reply_hex("00 00 02 90 00 FF");
        if (i < 3)
            exp_blk(0x81, NULL, 0);
    }
    exp_blk(0xC0, NULL, 0);
    rep_blk(0xE0, NULL, 0);
    /* restart: IFS again (initial values), then I(0) from the beginning */
    script_ifs();
    exp_blk(0x00, apdu, 4);
    rep_blk(0x00, SW_OK, 2);
    uint8_t r[8];
    size_t rl = 0;
    assert_int_equal(icc_transceive(apdu, 4, r, sizeof r, &rl), ICC_OK);
    assert_int_equal(rl, 2);
    assert_script_done();
    assert_true(icc_powered());
}

static void test_t1_mute(void **state)
{
    (void)state;
    static const uint8_t apdu[4] = {0x00, 0x70, 0x00, 0x00};
    for (int i = 0; i < 4; i++)
        exp_blk(0xC1, IFS_FE, 1);
    for (int i = 0; i < 3; i++)
        exp_blk(0xC0, NULL, 0);
    uint8_t r[8];
    size_t rl = 0;
    uint64_t t0 = fake_now();
    assert_int_equal(icc_transceive(apdu, 4, r, sizeof r, &rl), ICC_ERR_MUTE);
    uint64_t waited = fake_now() - t0;
    assert_true(waited >= 7u * BWT_US);
    assert_true(waited < 7u * BWT_US + 200000u);
    assert_script_done();
    assert_false(icc_powered());
    assert_false(fake_vcc());
}

static void test_t1_garbage_gives_up(void **state)
{
    (void)state;
    static const uint8_t apdu[4] = {0x00, 0x70, 0x00, 0x00};
    script_ifs();
    exp_blk(0x00, apdu, 4);
    for (int i = 0; i < 4; i++) {
        fake_reply_hex("00 00 02 90 00 FF");
        if (i < 3)
            exp_blk(0x81, NULL, 0);
    }
    for (int i = 0; i < 3; i++) {
        exp_blk(0xC0, NULL, 0);
        fake_reply_hex("00 E0 00 00"); /* bad LRC each time */
    }
    uint8_t r[8];
    size_t rl = 0;
    assert_int_equal(icc_transceive(apdu, 4, r, sizeof r, &rl), ICC_ERR_PROTOCOL);
    assert_script_done();
    assert_false(icc_powered());
}

static void test_t1_card_ifs_request(void **state)
{
    (void)state;
    static const uint8_t apdu[4] = {0x00, 0x70, 0x00, 0x00};
    static const uint8_t ifs40[1] = {0x40};
    script_ifs();
    exp_blk(0x00, apdu, 4);
    rep_blk(0xC1, ifs40, 1); /* the card raises its IFSC to 64 */
    exp_blk(0xE1, ifs40, 1);
    rep_blk(0x00, SW_OK, 2);
    uint8_t r[8];
    size_t rl = 0;
    assert_int_equal(icc_transceive(apdu, 4, r, sizeof r, &rl), ICC_OK);
    /* a 70-byte APDU now goes as 64 + 6 */
    uint8_t big[70] = {0x00, 0xD6, 0x00, 0x00, 65};
    exp_blk(0x60, big, 64);
    rep_blk(0x80, NULL, 0);
    exp_blk(0x00, big + 64, 6);
    rep_blk(0x40, SW_OK, 2);
    assert_int_equal(icc_transceive(big, sizeof big, r, sizeof r, &rl), ICC_OK);
    assert_script_done();
}

static void test_t1_removed(void **state)
{
    (void)state;
    static const uint8_t apdu[4] = {0x00, 0x70, 0x00, 0x00};
    script_ifs();
    exp_blk(0x00, apdu, 4);
    fake_reply_hex("00 00");
    fake_remove();
    uint8_t r[8];
    size_t rl = 0;
    assert_int_equal(icc_transceive(apdu, 4, r, sizeof r, &rl), ICC_ERR_ABSENT);
    assert_false(icc_powered());
}

static void test_t1_crc_card(void **state)
{
    (void)state;
    /* T0=80, TD1=81, TD2=51 (TA3 = FE, TC3 = 01: CRC), TCK */
    uint8_t atr[7] = {0x3B, 0x80, 0x81, 0x51, 0xFE, 0x01, 0};
    atr[6] = lrc(atr + 1, 5);
    char hex[32];
    snprintf(hex, sizeof hex, "3B 80 81 51 FE 01 %02X", atr[6]);
    power_on_hex(hex);
    icc_params_t p;
    assert_int_equal(icc_get_params(&p), ICC_OK);
    assert_int_equal(p.tcckst, 0x11);
    uint8_t b[T1_BLOCK_MAX];
    size_t n = 0;
    assert_int_equal(t1_block_build(b, sizeof b, 0, 0xC1, IFS_FE, 1, true, &n), ICC_OK);
    assert_int_equal(n, 6);
    fake_expect(b, n);
    assert_int_equal(t1_block_build(b, sizeof b, 0, 0xE1, IFS_FE, 1, true, &n), ICC_OK);
    fake_reply(b, n);
    static const uint8_t apdu[4] = {0x00, 0x70, 0x00, 0x00};
    assert_int_equal(t1_block_build(b, sizeof b, 0, 0x00, apdu, 4, true, &n), ICC_OK);
    fake_expect(b, n);
    assert_int_equal(t1_block_build(b, sizeof b, 0, 0x00, SW_OK, 2, true, &n), ICC_OK);
    fake_reply(b, n);
    uint8_t r[8];
    size_t rl = 0;
    assert_int_equal(icc_transceive(apdu, 4, r, sizeof r, &rl), ICC_OK);
    assert_int_equal(rl, 2);
    assert_script_done();
}

static void test_t1_card_abort(void **state)
{
    (void)state;
    static const uint8_t apdu[4] = {0x00, 0x70, 0x00, 0x00};
    script_ifs();
    exp_blk(0x00, apdu, 4);
    rep_blk(0xC2, NULL, 0); /* S(ABORT request) */
    exp_blk(0xE2, NULL, 0); /* S(ABORT response) */
    uint8_t r[8];
    size_t rl = 0;
    assert_int_equal(icc_transceive(apdu, 4, r, sizeof r, &rl), ICC_ERR_PROTOCOL);
    assert_script_done();
    assert_true(icc_powered()); /* the link itself is in step */
}

static void test_t1_chain_ack_lost(void **state)
{
    (void)state;
    static const uint8_t apdu[5] = {0x00, 0xB0, 0x00, 0x00, 0x00};
    static const uint8_t part[3] = {1, 2, 3};
    static const uint8_t last[3] = {4, 0x90, 0x00};
    script_ifs();
    exp_blk(0x00, apdu, 5);
    rep_blk(0x20, part, 3); /* I(0, M) */
    exp_blk(0x90, NULL, 0); /* R(1) */
    rep_blk(0x80, NULL, 0); /* the card did not get it: R(0) */
    exp_blk(0x90, NULL, 0); /* R(1) again */
    rep_blk(0x40, last, 3); /* I(1) */
    uint8_t r[16];
    size_t rl = 0;
    assert_int_equal(icc_transceive(apdu, 5, r, sizeof r, &rl), ICC_OK);
    static const uint8_t want[6] = {1, 2, 3, 4, 0x90, 0x00};
    assert_int_equal(rl, 6);
    assert_memory_equal(r, want, 6);
    assert_script_done();
}

static void test_t1_cwt_and_parity(void **state)
{
    (void)state;
    static const uint8_t apdu[4] = {0x00, 0x70, 0x00, 0x00};
    script_ifs();
    exp_blk(0x00, apdu, 4);
    /* the block stops after two characters: CWT exceeded, invalid block */
    fake_reply_hex("00 00");
    exp_blk(0x82, NULL, 0); /* R(0, other error) */
    /* then a character error in the middle of the block */
    fake_reply_hex("00 00 ! 02 90 00 92");
    exp_blk(0x81, NULL, 0); /* R(0, EDC/parity error) */
    rep_blk(0x00, SW_OK, 2);
    uint8_t r[8];
    size_t rl = 0;
    assert_int_equal(icc_transceive(apdu, 4, r, sizeof r, &rl), ICC_OK);
    assert_int_equal(rl, 2);
    assert_script_done();
}

static void test_t1_set_params_keeps_sequence(void **state)
{
    (void)state;
    static const uint8_t apdu[4] = {0x00, 0x70, 0x00, 0x00};
    script_ifs();
    exp_blk(0x00, apdu, 4);
    rep_blk(0x00, SW_OK, 2);
    uint8_t r[8];
    size_t rl = 0;
    assert_int_equal(icc_transceive(apdu, 4, r, sizeof r, &rl), ICC_OK);
    /* the host sets the same parameters again (no PPS): IFSD is announced
     * again, the sequence numbers go on (N(S) = 1) */
    icc_params_t p;
    assert_int_equal(icc_get_params(&p), ICC_OK);
    assert_int_equal(icc_set_params(&p), ICC_OK);
    script_ifs();
    exp_blk(0x40, apdu, 4);
    rep_blk(0x40, SW_OK, 2);
    assert_int_equal(icc_transceive(apdu, 4, r, sizeof r, &rl), ICC_OK);
    assert_script_done();
}

int icc_t1_tests(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_t1_block_format),
        cmocka_unit_test_setup(test_t1_ifs_then_apdu, t1_setup),
        cmocka_unit_test_setup(test_t1_pps_then_ifs, t1_setup),
        cmocka_unit_test_setup(test_t1_command_chaining, t1_setup),
        cmocka_unit_test_setup(test_t1_response_chaining, t1_setup),
        cmocka_unit_test_setup(test_t1_wtx, t1_setup),
        cmocka_unit_test_setup(test_t1_bad_lrc_retransmit, t1_setup),
        cmocka_unit_test_setup(test_t1_card_asks_retransmit, t1_setup),
        cmocka_unit_test_setup(test_t1_resynch, t1_setup),
        cmocka_unit_test_setup(test_t1_mute, t1_setup),
        cmocka_unit_test_setup(test_t1_garbage_gives_up, t1_setup),
        cmocka_unit_test_setup(test_t1_card_ifs_request, t1_setup),
        cmocka_unit_test_setup(test_t1_removed, t1_setup),
        cmocka_unit_test(test_t1_crc_card),
        cmocka_unit_test_setup(test_t1_card_abort, t1_setup),
        cmocka_unit_test_setup(test_t1_chain_ack_lost, t1_setup),
        cmocka_unit_test_setup(test_t1_cwt_and_parity, t1_setup),
        cmocka_unit_test_setup(test_t1_set_params_keeps_sequence, t1_setup),
    };
    return cmocka_run_group_tests_name("icc_t1", tests, NULL, NULL);
}
