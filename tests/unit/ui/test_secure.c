/* Unit tests for PC_to_RDR_Secure (firmware/ccid/ccid_secure.c, CCID rev 1.1
 * §6.1.11): the structure parser (bError = offset of the bad field), the PIN
 * block builder (ASCII, BCD/GLP, fixed and variable blocks, justification,
 * modification), and the whole command through the CCID driver with the
 * real ui, fake keys (fake_port_ui.c) and a fake card behind icc.h:
 * verification, wrong PIN and tries left, Cancel, time-out, modification,
 * mismatch, blocked card, card removal, time extensions — and no PIN digit
 * in anything sent to the host. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "ccid.h"
#include "ccid_msg.h"
#include "ccid_secure.h"
#include "fake_port_ui.h"
#include "fw_util.h"
#include "icc.h"
#include "port_board.h"
#include "port_usb.h"
#include "ui.h"

/* ---- fake USB ---- */

#define MAX_IN 64
static uint8_t in_log[MAX_IN][300];
static size_t in_len[MAX_IN];
static size_t in_count;

port_status_t port_usb_write(uint8_t ep, const uint8_t *data, size_t len)
{
    if (ep == CCID_EP_BULK_IN && in_count < MAX_IN && len <= sizeof in_log[0]) {
        memcpy(in_log[in_count], data, len);
        in_len[in_count++] = len;
    }
    return PORT_OK;
}
port_status_t port_usb_ep0_reply(const uint8_t *data, size_t len)
{
    (void)data;
    (void)len;
    return PORT_OK;
}
void port_usb_ep0_stall(void)
{
}
void port_usb_set_address(uint8_t addr)
{
    (void)addr;
}
const char *port_board_serial(void)
{
    return "SECURE";
}

/* ---- fake card behind icc.h: a CPS holder PIN (CHV 01, ASCII, 3 tries) ---- */

static bool present, powered;
static char card_pin[16];
static int tries;
static bool verified;
static unsigned apdu_count;
static uint8_t apdus[16][300];
static size_t apdu_lens[16];
static unsigned remove_at_wait; /* the card leaves at this port_ui_wait_key call */

void icc_init(void)
{
}
bool icc_present(void)
{
    if (remove_at_wait != 0 && fake_ui.waits >= remove_at_wait)
        present = false;
    return present;
}
bool icc_powered(void)
{
    return present && powered;
}
icc_status_t icc_power_on(uint8_t *atr, size_t cap, size_t *atr_len)
{
    (void)atr;
    (void)cap;
    *atr_len = 0;
    return ICC_ERR_MUTE;
}
void icc_power_off(void)
{
    powered = false;
}
icc_status_t icc_get_params(icc_params_t *out)
{
    memset(out, 0, sizeof *out);
    return ICC_OK;
}
icc_status_t icc_set_params(const icc_params_t *want)
{
    (void)want;
    return ICC_OK;
}
void icc_set_wait_hook(icc_wait_hook_t hook, void *ctx)
{
    (void)hook;
    (void)ctx;
}
uint32_t icc_clock_hz(void)
{
    return ICC_DEFAULT_CLOCK_HZ;
}
void icc_get_stats(icc_stats_t *out)
{
    memset(out, 0, sizeof *out);
}

static size_t sw(uint8_t *r, uint16_t v)
{
    r[0] = (uint8_t)(v >> 8);
    r[1] = (uint8_t)v;
    return 2;
}

static uint16_t tries_sw(void)
{
    return tries == 0 ? 0x6983u : (uint16_t)(0x63C0u | (unsigned)tries);
}

static bool check_pin(const uint8_t *p, size_t n)
{
    size_t pl = strlen(card_pin);
    if (tries == 0)
        return false;
    if (n == pl && memcmp(p, card_pin, pl) == 0) {
        tries = 3;
        verified = true;
        return true;
    }
    tries--;
    verified = false;
    return false;
}

icc_status_t icc_transceive(const uint8_t *c, size_t clen, uint8_t *r, size_t rcap, size_t *rlen)
{
    assert_true(rcap >= 2);
    if (!present)
        return ICC_ERR_ABSENT;
    if (apdu_count < 16) {
        memcpy(apdus[apdu_count], c, clen);
        apdu_lens[apdu_count] = clen;
    }
    apdu_count++;
    if (clen == 4 && c[1] == 0x20) { /* PIN status (empty VERIFY) */
        *rlen = sw(r, verified ? 0x9000u : tries_sw());
        return ICC_OK;
    }
    if (clen >= 5 && c[1] == 0x20 && clen == 5u + c[4]) {
        *rlen = sw(r, tries == 0 ? 0x6983u : check_pin(c + 5, c[4]) ? 0x9000u : tries_sw());
        return ICC_OK;
    }
    if (clen >= 5 && c[1] == 0x24 && clen == 5u + c[4]) {
        size_t pl = strlen(card_pin);
        if (c[4] <= pl || tries == 0) {
            *rlen = sw(r, 0x6700u);
            return ICC_OK;
        }
        if (!check_pin(c + 5, pl)) {
            *rlen = sw(r, tries_sw());
            return ICC_OK;
        }
        size_t nl = c[4] - pl;
        memcpy(card_pin, c + 5 + pl, nl);
        card_pin[nl] = 0;
        *rlen = sw(r, 0x9000u);
        return ICC_OK;
    }
    *rlen = sw(r, 0x6D00u);
    return ICC_OK;
}

/* ---- helpers ---- */

/* OpenSC 0.23's PIN_VERIFY_STRUCTURE for a CPS on a reader with a display
 * (reader-pcsc.c part10_build_verify_pin_block), as CCID abData. */
static const uint8_t OPENSC_VERIFY[] = {
    0x00,                         /* bPINOperation: verification */
    0x1E,                         /* bTimeOut 30 s */
    0x82,                         /* bmFormatString: bytes, offset 0, left, ASCII */
    0x00,                         /* bmPINBlockString: no length, variable block */
    0x00,                         /* bmPINLengthFormat */
    0x08, 0x04,                   /* wPINMaxExtraDigit: min 4, max 8 */
    0x02,                         /* bEntryValidationCondition: OK key */
    0xFF,                         /* bNumberMessage: default */
    0x00, 0x00,                   /* wLangId */
    0x00,                         /* bMsgIndex */
    0x00, 0x00, 0x00,             /* bTeoPrologue */
    0x00, 0x20, 0x00, 0x01, 0x00, /* VERIFY CHV 01, Lc 0 */
};

/* ... and PIN_MODIFY_STRUCTURE (part10_build_modify_pin_block, old + new +
 * confirmation), as CCID abData: bMsgIndex1..3 present (bNumberMessage 3). */
static const uint8_t OPENSC_MODIFY[] = {
    0x01, 0x1E, 0x82, 0x00, 0x00, 0x00, 0x00, /* bInsertionOffsetOld/New */
    0x08, 0x04,                               /* min 4, max 8 */
    0x03,                                     /* bConfirmPIN: current PIN, new PIN twice */
    0x02, 0x03, 0x00, 0x00,                   /* validation, 3 messages, wLangId */
    0x00, 0x01, 0x02,                         /* bMsgIndex1..3 */
    0x00, 0x00, 0x00,                         /* bTeoPrologue */
    0x00, 0x24, 0x00, 0x01, 0x00,             /* CHANGE REFERENCE DATA CHV 01, Lc 0 */
};

static uint8_t seq;

static void send_secure(const uint8_t *data, size_t len)
{
    uint8_t m[300];
    ccid_msg_put_header(m, CCID_PC_TO_RDR_SECURE, (uint32_t)len, 0, ++seq, 0, 0, 0);
    memcpy(m + CCID_HEADER_LEN, data, len);
    ccid_on_out(CCID_EP_BULK_OUT, m, CCID_HEADER_LEN + len);
}

/* The final answer (the last bulk IN message), checked for bSeq. */
static const uint8_t *answer(size_t *len)
{
    assert_true(in_count > 0);
    const uint8_t *a = in_log[in_count - 1];
    assert_int_equal(a[0], CCID_RDR_TO_PC_DATA_BLOCK);
    assert_int_equal(a[6], seq);
    *len = in_len[in_count - 1];
    return a;
}

static unsigned time_extensions(void)
{
    unsigned n = 0;
    for (size_t i = 0; i < in_count; i++)
        if ((in_log[i][7] & 0xC0u) == CCID_CMD_TIME_EXT)
            n++;
    return n;
}

/* Nothing the appliance sent to the host holds the PIN (ASCII or BCD). */
static void assert_no_pin_on_usb(const char *pin)
{
    size_t pl = strlen(pin);
    uint8_t bcd[8];
    for (size_t i = 0; i + 1 < pl && i / 2 < sizeof bcd; i += 2)
        bcd[i / 2] = (uint8_t)((pin[i] - '0') << 4 | (pin[i + 1] - '0'));
    for (size_t i = 0; i < in_count; i++) {
        for (size_t j = 0; j + pl <= in_len[i]; j++)
            assert_false(memcmp(in_log[i] + j, pin, pl) == 0);
        for (size_t j = 0; j + pl / 2 <= in_len[i]; j++)
            assert_false(memcmp(in_log[i] + j, bcd, pl / 2) == 0);
    }
}

static int setup(void **state)
{
    (void)state;
    fake_ui_reset();
    ui_init();
    ccid_init();
    in_count = 0;
    apdu_count = 0;
    present = powered = true;
    strcpy(card_pin, "1234");
    tries = 3;
    verified = false;
    remove_at_wait = 0;
    return 0;
}

/* ---- parser ---- */

static void expect_bad(const uint8_t *d, size_t len, uint8_t off)
{
    ccid_secure_req_t r;
    uint8_t bad = 0;
    assert_false(ccid_secure_parse(d, len, &r, &bad));
    assert_int_equal(bad, off);
}

static void test_parse(void **state)
{
    (void)state;
    ccid_secure_req_t r;
    uint8_t bad = 0xAA;
    assert_true(ccid_secure_parse(OPENSC_VERIFY, sizeof OPENSC_VERIFY, &r, &bad));
    assert_int_equal(r.operation, CCID_PIN_OP_VERIFY);
    assert_int_equal(r.timeout_s, 30);
    assert_int_equal(r.format, 0x82);
    assert_int_equal(r.min_len, 4);
    assert_int_equal(r.max_len, 8);
    assert_int_equal(r.apdu_len, 5);
    assert_ptr_equal(r.apdu, OPENSC_VERIFY + 15);
    assert_true(ccid_secure_parse(OPENSC_MODIFY, sizeof OPENSC_MODIFY, &r, &bad));
    assert_int_equal(r.operation, CCID_PIN_OP_MODIFY);
    assert_int_equal(r.confirm, 3);
    assert_int_equal(r.apdu_len, 5);
    assert_ptr_equal(r.apdu, OPENSC_MODIFY + 20);

    uint8_t d[sizeof OPENSC_MODIFY + 8];
#define BAD_V(i, v, off)                                                                           \
    do {                                                                                           \
        memcpy(d, OPENSC_VERIFY, sizeof OPENSC_VERIFY);                                            \
        d[i] = (v);                                                                                \
        expect_bad(d, sizeof OPENSC_VERIFY, off);                                                  \
    } while (0)
    BAD_V(0, 0x04, 10); /* bPINOperation: cancel is not offered */
    BAD_V(2, 0x83, 12); /* bmFormatString: RFU coding */
    BAD_V(4, 0x20, 14); /* bmPINLengthFormat: RFU bits */
    BAD_V(5, 0x00, 15); /* max 0 */
    BAD_V(6, 0x09, 15); /* min > max */
    BAD_V(7, 0x00, 17); /* bEntryValidationCondition 0 */
    BAD_V(7, 0x08, 17);
    BAD_V(8, 0x02, 18);                /* bNumberMessage 2 for a verification */
    BAD_V(19, 0x05, 25);               /* Lc 5 but no body */
    expect_bad(OPENSC_VERIFY, 14, 1);  /* cut inside the structure */
    expect_bad(OPENSC_VERIFY, 18, 25); /* 3-byte APDU */
    expect_bad(OPENSC_VERIFY, 0, 1);
#define BAD_M(i, v, off)                                                                           \
    do {                                                                                           \
        memcpy(d, OPENSC_MODIFY, sizeof OPENSC_MODIFY);                                            \
        d[i] = (v);                                                                                \
        expect_bad(d, sizeof OPENSC_MODIFY, off);                                                  \
    } while (0)
    BAD_M(9, 0x04, 19);  /* bConfirmPIN RFU bit */
    BAD_M(11, 0x04, 21); /* bNumberMessage 4 */
    /* bNumberMessage 0: no bMsgIndex2/3, the APDU starts 2 bytes earlier */
    memcpy(d, OPENSC_MODIFY, 15);
    d[11] = 0;
    memcpy(d + 15, OPENSC_MODIFY + 17, sizeof OPENSC_MODIFY - 17);
    assert_true(ccid_secure_parse(d, sizeof OPENSC_MODIFY - 2, &r, &bad));
    assert_int_equal(r.apdu_len, 5);
    assert_int_equal(r.apdu[1], 0x24);
    /* bNumberMessage 1: bMsgIndex2 only */
    memcpy(d, OPENSC_MODIFY, 16);
    d[11] = 1;
    memcpy(d + 16, OPENSC_MODIFY + 17, sizeof OPENSC_MODIFY - 17);
    assert_true(ccid_secure_parse(d, sizeof OPENSC_MODIFY - 1, &r, &bad));
    assert_int_equal(r.apdu[1], 0x24);
    expect_bad(OPENSC_MODIFY, 19, 1);
    /* max above the keypad's 12 digits is capped, not refused */
    memcpy(d, OPENSC_VERIFY, sizeof OPENSC_VERIFY);
    d[5] = 16;
    assert_true(ccid_secure_parse(d, sizeof OPENSC_VERIFY, &r, &bad));
    assert_int_equal(r.max_len, 12);
}

/* ---- builder ---- */

static void build_ok(const uint8_t *structure, size_t slen, const uint8_t *tpl, size_t tlen,
                     const char *old_pin, const char *new_pin, const uint8_t *want, size_t wlen)
{
    uint8_t d[300];
    memcpy(d, structure, slen);
    memcpy(d + slen, tpl, tlen);
    ccid_secure_req_t r;
    uint8_t bad;
    assert_true(ccid_secure_parse(d, slen + tlen, &r, &bad));
    uint8_t apdu[300];
    size_t n = 0;
    assert_true(ccid_secure_build(&r, (const uint8_t *)old_pin, old_pin ? strlen(old_pin) : 0,
                                  (const uint8_t *)new_pin, strlen(new_pin), apdu, sizeof apdu, &n,
                                  &bad));
    assert_int_equal(n, wlen);
    assert_memory_equal(apdu, want, wlen);
}

static void test_build(void **state)
{
    (void)state;
    uint8_t s[15];
    memcpy(s, OPENSC_VERIFY, 15);
    /* OpenSC, CPS: ASCII, variable block, Lc recomputed */
    static const uint8_t t0[] = {0x00, 0x20, 0x00, 0x01, 0x00};
    static const uint8_t w0[] = {0x00, 0x20, 0x00, 0x01, 0x04, '1', '2', '3', '4'};
    build_ok(s, 15, t0, sizeof t0, NULL, "1234", w0, sizeof w0);
    /* a template without Lc */
    build_ok(s, 15, t0, 4, NULL, "1234", w0, sizeof w0);
    /* fixed 8-byte block padded with FF by the host (SC_PIN_CMD_NEED_PADDING) */
    s[3] = 0x08;
    static const uint8_t t1[] = {0x00, 0x20, 0x00, 0x01, 0x08, 0xFF, 0xFF,
                                 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF};
    static const uint8_t w1[] = {0x00, 0x20, 0x00, 0x01, 0x08, '1', '2',
                                 '3',  '4',  0xFF, 0xFF, 0xFF, 0xFF};
    build_ok(s, 15, t1, sizeof t1, NULL, "1234", w1, sizeof w1);
    /* ... but not when the host sent no fillers: as long as the PIN */
    build_ok(s, 15, t0, sizeof t0, NULL, "1234", w0, sizeof w0);
    /* right justified */
    s[2] = 0x86;
    static const uint8_t w2[] = {0x00, 0x20, 0x00, 0x01, 0x08, 0xFF, 0xFF,
                                 0xFF, 0xFF, '1',  '2',  '3',  '4'};
    build_ok(s, 15, t1, sizeof t1, NULL, "1234", w2, sizeof w2);
    /* ISO 9564 format 2 (OpenSC "GLP"): BCD from bit 8, length nibble at bit 4 */
    s[2] = 0x41;
    s[3] = 0x48;
    s[4] = 0x04;
    static const uint8_t t3[] = {0x00, 0x20, 0x00, 0x80, 0x08, 0x20, 0xFF,
                                 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF};
    static const uint8_t w3[] = {0x00, 0x20, 0x00, 0x80, 0x08, 0x25, 0x12,
                                 0x34, 0x5F, 0xFF, 0xFF, 0xFF, 0xFF};
    build_ok(s, 15, t3, sizeof t3, NULL, "12345", w3, sizeof w3);
    /* binary coding, length byte first (bytes units) */
    s[2] = 0x88; /* bytes, frame at byte 1, left, binary */
    s[3] = 0x80; /* 8-bit length, variable block */
    s[4] = 0x10; /* length at byte 0 */
    static const uint8_t w4[] = {0x00, 0x20, 0x00, 0x01, 0x05, 0x04, 1, 2, 3, 4};
    build_ok(s, 15, t0, sizeof t0, NULL, "1234", w4, sizeof w4);
    /* a block too small for the PIN */
    memcpy(s, OPENSC_VERIFY, 15);
    s[3] = 0x02;
    uint8_t d[40];
    static const uint8_t t2[] = {0x00, 0x20, 0x00, 0x01, 0x02, 0xFF, 0xFF};
    memcpy(d, s, 15);
    memcpy(d + 15, t2, sizeof t2);
    ccid_secure_req_t r;
    uint8_t bad = 0;
    assert_true(ccid_secure_parse(d, 15 + sizeof t2, &r, &bad));
    uint8_t apdu[300];
    size_t n;
    assert_false(
        ccid_secure_build(&r, NULL, 0, (const uint8_t *)"1234", 4, apdu, sizeof apdu, &n, &bad));
    assert_int_equal(bad, 13);
    /* modification, OpenSC: old ‖ new */
    static const uint8_t wm[] = {0x00, 0x24, 0x00, 0x01, 0x08, '1', '2',
                                 '3',  '4',  '5',  '6',  '7',  '8'};
    build_ok(OPENSC_MODIFY, 20, OPENSC_MODIFY + 20, 5, "1234", "5678", wm, sizeof wm);
    /* what OpenSC 0.23 really sends for a CPS (PIN storedLength 8): ASCII,
     * bits units, 8-byte blocks but no fillers, both offsets 0: old ‖ new */
    uint8_t os[20];
    memcpy(os, OPENSC_MODIFY, 20);
    os[2] = 0x02;
    os[3] = 0x08;
    static const uint8_t wo[] = {0x00, 0x24, 0x00, 0x01, 0x08, '1', '2',
                                 '3',  '4',  '4',  '3',  '2',  '1'};
    build_ok(os, 20, OPENSC_MODIFY + 20, 5, "1234", "4321", wo, sizeof wo);
    /* modification with fixed blocks at explicit offsets */
    uint8_t ms[20];
    memcpy(ms, OPENSC_MODIFY, 20);
    ms[3] = 0x08;
    ms[6] = 0x08;
    static const uint8_t wf[] = {0x00, 0x24, 0x00, 0x01, 0x10, '1', '2', '3',  '4',  0xFF, 0xFF,
                                 0xFF, 0xFF, '5',  '6',  '7',  '8', '9', 0xFF, 0xFF, 0xFF};
    static const uint8_t tf[] = {0x00, 0x24, 0x00, 0x01, 0x10, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
                                 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF};
    build_ok(ms, 20, tf, sizeof tf, "1234", "56789", wf, sizeof wf);
}

/* ---- the whole command ---- */

static void test_verify_ok(void **state)
{
    (void)state;
    fake_ui.idle_waits_before_keys = 3; /* the holder takes about 3 s */
    fake_ui_type("1234K");
    send_secure(OPENSC_VERIFY, sizeof OPENSC_VERIFY);
    size_t n;
    const uint8_t *a = answer(&n);
    assert_int_equal(n, 12);
    assert_int_equal(a[7], 0x00);
    assert_int_equal(a[10], 0x90);
    assert_int_equal(a[11], 0x00);
    /* the card saw the status query, then VERIFY with the typed PIN */
    assert_int_equal(apdu_count, 2);
    assert_int_equal(apdu_lens[0], 4);
    static const uint8_t v[] = {0x00, 0x20, 0x00, 0x01, 0x04, '1', '2', '3', '4'};
    assert_int_equal(apdu_lens[1], sizeof v);
    assert_memory_equal(apdus[1], v, sizeof v);
    assert_string_equal(fake_ui.pin_tries, "3 essais restants");
    assert_string_equal(fake_ui.name, "result");
    assert_string_equal(fake_ui.lines[0], "Code accepté");
    /* time extensions kept the host waiting (CCID §6.2.7) */
    assert_true(time_extensions() >= 3);
    assert_no_pin_on_usb("1234");
}

static void test_verify_wrong_then_tries(void **state)
{
    (void)state;
    fake_ui_type("9999K");
    send_secure(OPENSC_VERIFY, sizeof OPENSC_VERIFY);
    size_t n;
    const uint8_t *a = answer(&n);
    assert_int_equal(a[10], 0x63);
    assert_int_equal(a[11], 0xC2);
    assert_string_equal(fake_ui.name, "error");
    assert_string_equal(fake_ui.lines[0], "Code incorrect");
    assert_string_equal(fake_ui.lines[1], "2 essais restants");
    /* the next entry shows the tries left */
    fake_ui_type("1234K");
    send_secure(OPENSC_VERIFY, sizeof OPENSC_VERIFY);
    a = answer(&n);
    assert_int_equal(a[10], 0x90);
    assert_int_equal(tries, 3);
    assert_no_pin_on_usb("9999");
    assert_no_pin_on_usb("1234");
}

static void test_cancel_and_timeout(void **state)
{
    (void)state;
    fake_ui_type("12C");
    send_secure(OPENSC_VERIFY, sizeof OPENSC_VERIFY);
    size_t n;
    const uint8_t *a = answer(&n);
    assert_int_equal(n, 10);
    assert_int_equal(a[7], CCID_CMD_FAILED | CCID_ICC_ACTIVE);
    assert_int_equal(a[8], CCID_ERR_PIN_CANCELLED);
    assert_int_equal(apdu_count, 1); /* only the status query: no try spent */
    assert_int_equal(tries, 3);
    assert_string_equal(fake_ui.lines[0], "Annulé");

    /* nobody types: bTimeOut 30 s, then PIN_TIMEOUT */
    uint64_t t0 = fake_ui.now_us;
    send_secure(OPENSC_VERIFY, sizeof OPENSC_VERIFY);
    a = answer(&n);
    assert_int_equal(a[8], CCID_ERR_PIN_TIMEOUT);
    assert_true(fake_ui.now_us - t0 >= 30000000u);
    assert_true(time_extensions() >= 29);
    assert_string_equal(fake_ui.lines[0], "Délai dépassé");
}

static void test_modify(void **state)
{
    (void)state;
    fake_ui_type("1234K5678K5678K");
    send_secure(OPENSC_MODIFY, sizeof OPENSC_MODIFY);
    size_t n;
    const uint8_t *a = answer(&n);
    assert_int_equal(a[10], 0x90);
    assert_string_equal(card_pin, "5678");
    assert_string_equal(fake_ui.lines[0], "Code modifié");
    assert_int_equal(fake_ui.pin_screens, 3 + 3 * 4); /* 3 questions, 4 digits each */
    /* the two new PINs differ: 64 02, nothing sent to the card */
    unsigned before = apdu_count;
    fake_ui_type("5678K1111K2222K");
    send_secure(OPENSC_MODIFY, sizeof OPENSC_MODIFY);
    a = answer(&n);
    assert_int_equal(a[10], 0x64);
    assert_int_equal(a[11], 0x02);
    assert_int_equal(apdu_count, before + 1); /* the status query only */
    assert_string_equal(fake_ui.lines[0], "Codes différents");
    assert_string_equal(card_pin, "5678");
    assert_no_pin_on_usb("5678");
    assert_no_pin_on_usb("1234");
}

static void test_blocked_absent_removed(void **state)
{
    (void)state;
    /* blocked: 69 83 without asking for a PIN */
    tries = 0;
    send_secure(OPENSC_VERIFY, sizeof OPENSC_VERIFY);
    size_t n;
    const uint8_t *a = answer(&n);
    assert_int_equal(a[10], 0x69);
    assert_int_equal(a[11], 0x83);
    assert_int_equal(fake_ui.pin_screens, 0);
    assert_string_equal(fake_ui.lines[0], "Carte bloquée");

    /* no active card: ICC_MUTE, as for XfrBlock */
    tries = 3;
    powered = false;
    send_secure(OPENSC_VERIFY, sizeof OPENSC_VERIFY);
    a = answer(&n);
    assert_int_equal(a[8], CCID_ERR_ICC_MUTE);

    /* the card leaves while the holder types: the entry ends, ICC_MUTE */
    powered = true;
    remove_at_wait = fake_ui.waits + 2;
    fake_ui.idle_waits_before_keys = 10;
    fake_ui_type("1234K");
    uint64_t t0 = fake_ui.now_us;
    send_secure(OPENSC_VERIFY, sizeof OPENSC_VERIFY);
    a = answer(&n);
    assert_int_equal(a[8], CCID_ERR_ICC_MUTE);
    assert_int_equal(a[7] & 0x03, CCID_ICC_ABSENT);
    assert_true(fake_ui.now_us - t0 < 5000000u);
    assert_string_equal(fake_ui.lines[0], "Carte retirée");

    /* a bad structure: bError = offset of the field */
    present = true;
    remove_at_wait = 0;
    uint8_t d[sizeof OPENSC_VERIFY];
    memcpy(d, OPENSC_VERIFY, sizeof d);
    d[7] = 0;
    send_secure(d, sizeof d);
    a = answer(&n);
    assert_int_equal(a[7], CCID_CMD_FAILED);
    assert_int_equal(a[8], 17);
}

static void test_lang(void **state)
{
    (void)state;
    uint8_t d[sizeof OPENSC_VERIFY];
    memcpy(d, OPENSC_VERIFY, sizeof d);
    d[9] = 0x09; /* wLangId 0x0409: English for this entry */
    d[10] = 0x04;
    fake_ui_type("1234K");
    send_secure(d, sizeof d);
    assert_string_equal(fake_ui.lines[0], "PIN accepted");
    assert_int_equal(ui_lang(), UI_LANG_FR); /* the appliance's setting is kept */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_parse, setup),
        cmocka_unit_test_setup(test_build, setup),
        cmocka_unit_test_setup(test_verify_ok, setup),
        cmocka_unit_test_setup(test_verify_wrong_then_tries, setup),
        cmocka_unit_test_setup(test_cancel_and_timeout, setup),
        cmocka_unit_test_setup(test_modify, setup),
        cmocka_unit_test_setup(test_blocked_absent_removed, setup),
        cmocka_unit_test_setup(test_lang, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
