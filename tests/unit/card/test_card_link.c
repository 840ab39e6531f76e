/* Transport-level tests of the virtual card (ISO/IEC 7816-3 card side):
 * ATR, PPS, T=0 procedure bytes / 61xx / 0xE7 chunks / 6Cxx, T=1 blocks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "card_applet.h"
#include "card_link.h"
#include "card_profile.h"
#include "card_test_util.h"

#define MAX_FRAMES 16

typedef struct {
    uint8_t buf[300];
    size_t len;
    card_delay_t delay;
} frame_t;

typedef struct {
    card_profile_t prof;
    card_applet_t *a;
    card_link_t *l;
    frame_t fr[MAX_FRAMES];
    size_t nfr;
    bool emit_fail;
} fx_t;

static bool emit_cb(void *ctx, const uint8_t *buf, size_t n, card_delay_t delay)
{
    fx_t *f = ctx;
    if (f->emit_fail)
        return false;
    assert_true(f->nfr < MAX_FRAMES);
    assert_true(n <= sizeof f->fr[0].buf);
    memcpy(f->fr[f->nfr].buf, buf, n);
    f->fr[f->nfr].len = n;
    f->fr[f->nfr].delay = delay;
    f->nfr++;
    return true;
}

static int setup_profile(void **state, const char *dir)
{
    fx_t *f = calloc(1, sizeof *f);
    char err[256];
    if (!f || !card_profile_load(dir, &f->prof, err, sizeof err)) {
        fprintf(stderr, "profile: %s\n", err);
        free(f);
        return -1;
    }
    f->a = card_applet_new(&f->prof.cfg, &f->prof.initial);
    card_link_config_t lc = {.applet = f->a,
                             .atr = f->prof.atr,
                             .atr_len = f->prof.atr_len,
                             .emit = emit_cb,
                             .emit_ctx = f,
                             .wtx_multiplier = 3};
    f->l = card_link_new(&lc);
    if (!f->a || !f->l)
        return -1;
    *state = f;
    return 0;
}

static int setup_t0(void **state)
{
    return setup_profile(state, PROFILE_DIR("cps-rpps"));
}
static int setup_t1(void **state)
{
    return setup_profile(state, PROFILE_DIR("cps-t1"));
}

static int teardown(void **state)
{
    fx_t *f = *state;
    card_link_free(f->l);
    card_applet_free(f->a);
    card_profile_free(&f->prof);
    free(f);
    return 0;
}

static void feed(fx_t *f, const char *h)
{
    uint8_t b[600];
    size_t n = hex(h, b, sizeof b);
    f->nfr = 0;
    assert_true(card_link_rx(f->l, b, n));
}

static void feed_bytes(fx_t *f, const uint8_t *b, size_t n)
{
    f->nfr = 0;
    assert_true(card_link_rx(f->l, b, n));
}

static void expect_frame(fx_t *f, size_t i, const char *h)
{
    uint8_t b[600];
    size_t n = hex(h, b, sizeof b);
    assert_true(i < f->nfr);
    assert_int_equal(f->fr[i].len, n);
    assert_memory_equal(f->fr[i].buf, b, n);
}

static void activate(fx_t *f)
{
    f->nfr = 0;
    assert_true(card_link_activate(f->l));
    assert_int_equal(f->nfr, 1);
    assert_int_equal(f->fr[0].len, f->prof.atr_len);
    assert_memory_equal(f->fr[0].buf, f->prof.atr, f->prof.atr_len);
}

/* ------------------------------------------------------------------ */
/* ATR                                                                  */

static void test_atr_parse(void **state)
{
    (void)state;
    card_atr_info_t in;
    uint8_t atr[CARD_ATR_MAX];
    size_t n = hex("3B AC 00 40 2A 00 12 25 00 64 80 00 03 10 00 90 00", atr, sizeof atr);
    assert_true(card_atr_parse(atr, n, &in));
    assert_true(in.offers_t0);
    assert_false(in.offers_t1);
    assert_false(in.has_ta1);
    assert_int_equal(in.wi, 0x2A);
    /* the cps-t1 ATR: TA1 18, TD1 81 -> TD2 01 (T=1), no TA3 -> IFSC 32, TCK 00 */
    n = hex("3B 9B 18 81 01 00 12 25 00 64 80 00 03 43 00 90 00", atr, sizeof atr);
    assert_int_equal(n, 17);
    assert_true(card_atr_parse(atr, n, &in));
    assert_true(in.offers_t1);
    assert_false(in.offers_t0);
    assert_int_equal(in.first_protocol, 1);
    assert_true(in.has_ta1);
    assert_int_equal(in.ta1, 0x18);
    assert_int_equal(in.ifsc, 32);
    assert_int_equal(in.bwi, 4);
    assert_int_equal(card_fi_value(1), 372);
    assert_int_equal(card_di_value(8), 12);
    /* OpenSC's CPx mask: 17 bytes, 3B, bytes 5..10 and 14..16 fixed */
    static const uint8_t fixed[] = {0x00, 0x12, 0x25, 0x00, 0x64, 0x80};
    assert_memory_equal(atr + 5, fixed, 6);
    assert_memory_equal(atr + 14, "\x00\x90\x00", 3);
    /* bad TCK, truncated, bad TS */
    atr[13] ^= 1;
    assert_false(card_atr_parse(atr, n, &in));
    atr[13] ^= 1;
    assert_false(card_atr_parse(atr, n - 1, &in));
    atr[0] = 0x3C;
    assert_false(card_atr_parse(atr, n, &in));
}

/* ------------------------------------------------------------------ */
/* PPS (§9)                                                             */

static void test_pps_t0(void **state)
{
    fx_t *f = *state;
    activate(f);
    /* default Fi/Di: accepted, echoed */
    feed(f, "FF 10 11 FE");
    assert_int_equal(f->nfr, 1);
    expect_frame(f, 0, "FF 10 11 FE");
    uint16_t F;
    uint8_t D;
    card_link_fd(f->l, &F, &D);
    assert_int_equal(F, 372);
    assert_int_equal(D, 1);
    /* TA1 18 is not offered by the CPS3 ATR: answered without PPS1 (Fd/Dd) */
    activate(f);
    feed(f, "FF 10 18 F7");
    assert_int_equal(f->nfr, 1);
    expect_frame(f, 0, "FF 00 FF");
    /* T=1 is not offered: no answer */
    activate(f);
    feed(f, "FF 01 FE");
    assert_int_equal(f->nfr, 0);
    /* bad PCK: no answer */
    activate(f);
    feed(f, "FF 10 11 00");
    assert_int_equal(f->nfr, 0);
}

static void test_pps_t1(void **state)
{
    fx_t *f = *state;
    activate(f);
    feed(f, "FF 11 18 F6");
    assert_int_equal(f->nfr, 1);
    expect_frame(f, 0, "FF 11 18 F6");
    uint16_t F;
    uint8_t D;
    card_link_fd(f->l, &F, &D);
    assert_int_equal(F, 372);
    assert_int_equal(D, 12);
    assert_int_equal(card_link_protocol(f->l), 1);
    /* a reset brings F/D back to the default */
    activate(f);
    card_link_fd(f->l, &F, &D);
    assert_int_equal(D, 1);
}

/* ------------------------------------------------------------------ */
/* T=0 (§10, §12.2)                                                     */

static void test_t0_case4_61xx_getresponse(void **state)
{
    fx_t *f = *state;
    activate(f);
    /* SELECT EF.ATR: ACK (INS), data, 61 25 (case 4 without Le: OpenSC in T=0) */
    feed(f, "00 A4 09 04 04");
    assert_int_equal(f->nfr, 1);
    expect_frame(f, 0, "A4");
    assert_int_equal(f->fr[0].delay, CARD_DELAY_NONE);
    feed(f, "3F 00 2F 01");
    assert_int_equal(f->nfr, 1);
    expect_frame(f, 0, "61 27");
    assert_int_equal(f->fr[0].delay, CARD_DELAY_FAST);
    /* GET RESPONSE asking too much: 6C with the exact length */
    feed(f, "00 C0 00 00 00");
    expect_frame(f, 0, "6C 27");
    /* a smaller Le is served, the rest stays available */
    feed(f, "00 C0 00 00 05");
    expect_frame(f, 0, "C0 62 25 80 02 00 61 22");
    feed(f, "00 C0 00 00 22");
    assert_int_equal(f->nfr, 1);
    assert_int_equal(f->fr[0].len, 1 + 0x22 + 2);
    assert_int_equal(f->fr[0].buf[0], 0xC0);
    assert_memory_equal(f->fr[0].buf + 1 + 0x22, "\x90\x00", 2);
    /* nothing left */
    feed(f, "00 C0 00 00 10");
    expect_frame(f, 0, "69 85");
}

static void test_t0_case2_and_6c(void **state)
{
    fx_t *f = *state;
    activate(f);
    feed(f, "00 A4 09 04 06");
    feed(f, "3F 00 00 01 C0 01");
    expect_frame(f, 0, "61 26");
    /* READ BINARY Le=256 on a certificate: 6C E7 (the CPx 231-byte quirk) */
    feed(f, "00 B0 00 00 00");
    expect_frame(f, 0, "6C E7");
    feed(f, "00 B0 00 00 E7");
    assert_int_equal(f->nfr, 1);
    assert_int_equal(f->fr[0].len, 1 + 0xE7 + 2);
    assert_int_equal(f->fr[0].buf[0], 0xB0);
    assert_memory_equal(f->fr[0].buf + 1, f->prof.cfg.auth_cert, 0xE7);
    assert_memory_equal(f->fr[0].buf + 1 + 0xE7, "\x90\x00", 2);
    /* EF.SN by SFI with Le C0: only 12 bytes exist -> 6C 0C */
    feed(f, "00 B0 9C 00 C0");
    expect_frame(f, 0, "6C 0C");
    feed(f, "00 B0 9C 00 0C");
    assert_int_equal(f->fr[0].len, 15);
    /* case 1: empty VERIFY */
    feed(f, "00 20 00 01 00");
    assert_int_equal(f->nfr, 1);
    expect_frame(f, 0, "63 C3");
    /* invalid INS 6X / 9X */
    feed(f, "00 6A 00 00 00");
    expect_frame(f, 0, "6D 00");
    /* unknown INS: SW without ACK */
    feed(f, "00 12 00 00 04");
    expect_frame(f, 0, "6D 00");
    /* error status on case 2 */
    feed(f, "00 B0 7F 00 10");
    expect_frame(f, 0, "6B 00");
}

static void test_t0_rsa_null_and_e7_chunks(void **state)
{
    fx_t *f = *state;
    activate(f);
    feed(f, "00 20 00 01 04");
    expect_frame(f, 0, "20");
    feed(f, "31 32 33 34");
    expect_frame(f, 0, "90 00");
    feed(f, "00 22 41 A4 06");
    feed(f, "84 01 82 80 01 02");
    expect_frame(f, 0, "90 00");
    feed(f, "00 88 00 00 33");
    expect_frame(f, 0, "88");
    uint8_t di[51] = {0x30, 0x31, 0x30, 0x0D, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01,
                      0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20};
    feed_bytes(f, di, sizeof di);
    /* NULL procedure byte first, then 61 00 (256 bytes) after the RSA delay */
    assert_int_equal(f->nfr, 2);
    expect_frame(f, 0, "60");
    assert_int_equal(f->fr[0].delay, CARD_DELAY_NONE);
    expect_frame(f, 1, "61 00");
    assert_int_equal(f->fr[1].delay, CARD_DELAY_RSA);
    /* cpx-card.md part A item 1: 61 00 -> C0 E7 -> 61 19 -> C0 19 */
    feed(f, "00 C0 00 00 00");
    expect_frame(f, 0, "6C E7");
    feed(f, "00 C0 00 00 E7");
    assert_int_equal(f->fr[0].len, 1 + 0xE7 + 2);
    assert_memory_equal(f->fr[0].buf + 1 + 0xE7, "\x61\x19", 2);
    uint8_t sig[256];
    memcpy(sig, f->fr[0].buf + 1, 0xE7);
    feed(f, "00 C0 00 00 19");
    assert_int_equal(f->fr[0].len, 1 + 0x19 + 2);
    assert_memory_equal(f->fr[0].buf + 1 + 0x19, "\x90\x00", 2);
    memcpy(sig + 0xE7, f->fr[0].buf + 1, 0x19);

    /* PSO CDS case 2 after PSO HASH: 60, then 61 00 (never computed twice) */
    feed(f, "00 22 41 AA 03");
    feed(f, "80 01 40");
    expect_frame(f, 0, "90 00");
    feed(f, "00 2A 90 A0 06");
    expect_frame(f, 0, "2A");
    feed(f, "90 00 80 02 41 42");
    expect_frame(f, 0, "90 00");
    feed(f, "00 22 41 B6 06");
    feed(f, "84 01 81 80 01 42");
    expect_frame(f, 0, "90 00");
    feed(f, "00 2A 9E 9A 00");
    assert_int_equal(f->nfr, 2);
    expect_frame(f, 0, "60");
    expect_frame(f, 1, "61 00");
    /* another command drops the pending response */
    feed(f, "00 20 00 01 00");
    expect_frame(f, 0, "90 00");
    feed(f, "00 C0 00 00 E7");
    expect_frame(f, 0, "69 85");
}

static void test_t0_reset_clears(void **state)
{
    fx_t *f = *state;
    activate(f);
    feed(f, "00 20 00 01 04");
    feed(f, "31 32 33 34");
    expect_frame(f, 0, "90 00");
    /* half a header, then a reset */
    feed(f, "00 A4");
    card_link_deactivate(f->l);
    feed(f, "00 20 00 01 00");
    assert_int_equal(f->nfr, 0); /* mute while off */
    activate(f);
    feed(f, "00 20 00 01 00");
    expect_frame(f, 0, "63 C3"); /* not verified any more */
    /* a failing emit reports the lost connection */
    f->emit_fail = true;
    uint8_t h[5] = {0x00, 0x20, 0x00, 0x01, 0x00};
    assert_false(card_link_rx(f->l, h, 5));
    f->emit_fail = false;
}

/* ------------------------------------------------------------------ */
/* T=1 (§11)                                                            */

/* Builds NAD PCB LEN INF LRC */
static size_t block(uint8_t *b, uint8_t pcb, const uint8_t *inf, size_t n)
{
    b[0] = 0x00;
    b[1] = pcb;
    b[2] = (uint8_t)n;
    if (n)
        memcpy(b + 3, inf, n);
    uint8_t x = 0;
    for (size_t i = 0; i < 3 + n; i++)
        x ^= b[i];
    b[3 + n] = x;
    return 4 + n;
}

static void send_block(fx_t *f, uint8_t pcb, const uint8_t *inf, size_t n)
{
    uint8_t b[300];
    size_t bl = block(b, pcb, inf, n);
    feed_bytes(f, b, bl);
}

static void check_block(const frame_t *fr, uint8_t pcb, size_t inf_len)
{
    assert_int_equal(fr->len, 4 + inf_len);
    assert_int_equal(fr->buf[0], 0x00);
    assert_int_equal(fr->buf[1], pcb);
    assert_int_equal(fr->buf[2], inf_len);
    uint8_t x = 0;
    for (size_t i = 0; i < fr->len; i++)
        x ^= fr->buf[i];
    assert_int_equal(x, 0);
}

static void test_t1_ifs_and_simple_command(void **state)
{
    fx_t *f = *state;
    activate(f);
    /* S(IFS request) IFSD 254 -> S(IFS response) */
    send_block(f, 0xC1, (const uint8_t *)"\xFE", 1);
    assert_int_equal(f->nfr, 1);
    expect_frame(f, 0, "00 E1 01 FE 1E");
    /* I(0,0): VERIFY status */
    send_block(f, 0x00, (const uint8_t *)"\x00\x20\x00\x01", 4);
    assert_int_equal(f->nfr, 1);
    check_block(&f->fr[0], 0x00, 2);
    assert_memory_equal(f->fr[0].buf + 3, "\x63\xC3", 2);
    /* I(1,0): SELECT EF.ATR with Le */
    uint8_t apdu[11];
    size_t n = hex("00 A4 09 04 04 3F 00 2F 01 00", apdu, sizeof apdu);
    send_block(f, 0x40, apdu, n);
    check_block(&f->fr[0], 0x40, 0x27 + 2);
    /* a repeated N(S): other error */
    send_block(f, 0x40, apdu, n);
    check_block(&f->fr[0], 0x82, 0);
    /* bad LRC: R-block with EDC error, N(R) = expected */
    uint8_t b[32];
    size_t bl = block(b, 0x00, (const uint8_t *)"\x00\x20\x00\x01", 4);
    b[bl - 1] ^= 0xFF;
    feed_bytes(f, b, bl);
    expect_frame(f, 0, "00 81 00 81");
    /* R-block asking again: the last block is sent again */
    send_block(f, 0x80, NULL, 0);
    expect_frame(f, 0, "00 81 00 81");
    /* LEN FF is rejected at once */
    feed(f, "00 00 FF");
    check_block(&f->fr[0], 0x82, 0);
    /* RESYNCH */
    send_block(f, 0xC0, NULL, 0);
    expect_frame(f, 0, "00 E0 00 E0");
    send_block(f, 0x00, (const uint8_t *)"\x00\x20\x00\x01", 4);
    check_block(&f->fr[0], 0x00, 2);
}

static void test_t1_chaining_wtx(void **state)
{
    fx_t *f = *state;
    activate(f);
    send_block(f, 0x00,
               (const uint8_t *)"\x00\x20\x00\x01\x04"
                                "1234",
               9);
    assert_memory_equal(f->fr[0].buf + 3, "\x90\x00", 2);
    send_block(f, 0x40, (const uint8_t *)"\x00\x22\x41\xA4\x06\x84\x01\x82\x80\x01\x02", 11);
    assert_memory_equal(f->fr[0].buf + 3, "\x90\x00", 2);
    /* INTERNAL AUTHENTICATE, 57 bytes > IFSC 32: the reader chains */
    uint8_t apdu[57] = {0x00, 0x88, 0x00, 0x00, 0x33, 0x30, 0x31, 0x30, 0x0D, 0x06, 0x09, 0x60,
                        0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20};
    /* a block over IFSC is refused */
    send_block(f, 0x20, apdu, 33);
    check_block(&f->fr[0], 0x82, 0);
    send_block(f, 0x20, apdu, 32);      /* I(0, M) */
    check_block(&f->fr[0], 0x90, 0);    /* R(1): next please */
    send_block(f, 0x40, apdu + 32, 25); /* I(1) last */
    /* S(WTX request) before the RSA operation, multiplier from the config */
    assert_int_equal(f->nfr, 1);
    expect_frame(f, 0, "00 C3 01 03 C1");
    /* an R-block instead of the answer: the WTX request again */
    send_block(f, 0x80, NULL, 0);
    expect_frame(f, 0, "00 C3 01 03 C1");
    send_block(f, 0xE3, (const uint8_t *)"\x03", 1);
    /* 258-byte response, IFSD 32 (no S(IFS) yet): 9 blocks */
    uint8_t resp[258];
    size_t got = 0;
    assert_int_equal(f->nfr, 1);
    assert_int_equal(f->fr[0].delay, CARD_DELAY_RSA);
    uint8_t ns = 0;
    for (int i = 0; i < 20; i++) {
        const frame_t *fr = &f->fr[0];
        bool more = fr->buf[1] & 0x20;
        size_t len = fr->buf[2];
        assert_int_equal((fr->buf[1] >> 6) & 1, ns);
        check_block(fr, fr->buf[1], len);
        assert_true(len <= 32);
        memcpy(resp + got, fr->buf + 3, len);
        got += len;
        ns ^= 1;
        if (!more)
            break;
        /* R(N(R) = next expected N(S)) */
        send_block(f, (uint8_t)(0x80 | (ns << 4)), NULL, 0);
        assert_int_equal(f->nfr, 1);
    }
    assert_int_equal(got, 258);
    assert_memory_equal(resp + 256, "\x90\x00", 2);
}

static void test_t1_ifsd_254_and_get_response(void **state)
{
    fx_t *f = *state;
    activate(f);
    send_block(f, 0xC1, (const uint8_t *)"\xFE", 1);
    /* public key SDO, > 256 bytes: 256 + 61xx, then GET RESPONSE */
    uint8_t apdu[32];
    size_t n = hex("00 CB 3F FF 0B 4D 09 70 07 BF A0 02 03 7F 49 80 00", apdu, sizeof apdu);
    send_block(f, 0x00, apdu, n);
    check_block(&f->fr[0], 0x20, 254); /* I(0, M) */
    send_block(f, 0x90, NULL, 0);      /* R(1) */
    check_block(&f->fr[0], 0x40, 4);   /* I(1): 2 data + 61 xx */
    assert_int_equal(f->fr[0].buf[5], 0x61);
    uint8_t rest = f->fr[0].buf[6];
    assert_true(rest > 0 && rest < 64);
    uint8_t gr[5] = {0x00, 0xC0, 0x00, 0x00, rest};
    send_block(f, 0x40, gr, 5);
    check_block(&f->fr[0], 0x00, (size_t)rest + 2);
    assert_int_equal(f->fr[0].buf[3 + rest], 0x90);
    /* ABORT */
    send_block(f, 0xC2, NULL, 0);
    expect_frame(f, 0, "00 E2 00 E2");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_atr_parse),
        cmocka_unit_test_setup_teardown(test_pps_t0, setup_t0, teardown),
        cmocka_unit_test_setup_teardown(test_pps_t1, setup_t1, teardown),
        cmocka_unit_test_setup_teardown(test_t0_case4_61xx_getresponse, setup_t0, teardown),
        cmocka_unit_test_setup_teardown(test_t0_case2_and_6c, setup_t0, teardown),
        cmocka_unit_test_setup_teardown(test_t0_rsa_null_and_e7_chunks, setup_t0, teardown),
        cmocka_unit_test_setup_teardown(test_t0_reset_clears, setup_t0, teardown),
        cmocka_unit_test_setup_teardown(test_t1_ifs_and_simple_command, setup_t1, teardown),
        cmocka_unit_test_setup_teardown(test_t1_chaining_wtx, setup_t1, teardown),
        cmocka_unit_test_setup_teardown(test_t1_ifsd_254_and_get_response, setup_t1, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
