/* Unit tests for firmware/ccid: every PC_to_RDR message, error codes, length
 * and slot checks, the ABORT sequence, time extensions from the icc wait hook,
 * NotifySlotChange, class requests and the descriptors. icc_* and port_* are
 * faked here (link time); cachet_fw_icc is not linked. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "ccid.h"
#include "ccid_msg.h"
#include "fw_util.h"
#include "icc.h"
#include "port_board.h"
#include "port_time.h"
#include "port_ui.h"
#include "port_usb.h"
#include "usb.h"

/* ---- fake port ---- */

#define MAX_IN 16
typedef struct {
    uint8_t ep;
    uint8_t data[300];
    size_t len;
} in_xfer_t;

static in_xfer_t in_log[MAX_IN];
static size_t in_count;
static port_status_t write_result;
static uint8_t ep0_buf[300];
static size_t ep0_len;
static int ep0_replies;
static int ep0_stalls;
static uint64_t now_us;

port_status_t port_usb_write(uint8_t ep, const uint8_t *data, size_t len)
{
    if (write_result != PORT_OK)
        return write_result;
    assert_true(in_count < MAX_IN);
    assert_true(len <= sizeof in_log[0].data);
    in_log[in_count].ep = ep;
    memcpy(in_log[in_count].data, data, len);
    in_log[in_count].len = len;
    in_count++;
    return PORT_OK;
}

port_status_t port_usb_ep0_reply(const uint8_t *data, size_t len)
{
    assert_true(len <= sizeof ep0_buf);
    if (len > 0)
        memcpy(ep0_buf, data, len);
    ep0_len = len;
    ep0_replies++;
    return PORT_OK;
}

void port_usb_ep0_stall(void)
{
    ep0_stalls++;
}

void port_usb_set_address(uint8_t addr)
{
    (void)addr;
}

uint64_t port_time_us(void)
{
    return now_us;
}

const char *port_board_serial(void)
{
    return "TEST-0001";
}

/* ui (linked for PC_to_RDR_Secure): a display nobody reads, a keypad nobody
 * touches; the secure PIN entry itself is tested in tests/unit/ui. */
void port_ui_show(const char *name, const char *const lines[PORT_UI_LINES])
{
    (void)name;
    (void)lines;
}

port_key_t port_ui_key(void)
{
    return PORT_KEY_NONE;
}

port_key_t port_ui_wait_key(uint32_t timeout_us)
{
    now_us += timeout_us;
    return PORT_KEY_NONE;
}

/* ---- fake icc ---- */

static bool card_present;
static bool card_powered;
static icc_status_t power_on_result;
static const uint8_t test_atr[] = {0x3B, 0x7D, 0x96, 0x00, 0x00, 0x80, 0x31, 0x80, 0x65,
                                   0xB0, 0x83, 0x11, 0x11, 0xAC, 0x83, 0x00, 0x90, 0x00};
static icc_params_t cur_params;
static icc_status_t set_params_result;
static icc_params_t last_set;
static int set_params_calls;
static int power_off_calls;
static icc_status_t xfr_result;
static uint8_t xfr_cmd[300];
static size_t xfr_cmd_len;
static uint8_t xfr_rsp[300];
static size_t xfr_rsp_len;
static int xfr_hook_calls;         /* wait hook calls during a transceive */
static uint64_t xfr_hook_step_us;  /* time between them */
static const uint8_t *xfr_reenter; /* a message to deliver from inside the call */
static size_t xfr_reenter_len;
static icc_wait_hook_t wait_hook;
static void *wait_ctx;

void icc_init(void)
{
}

bool icc_present(void)
{
    return card_present;
}

bool icc_powered(void)
{
    return card_powered;
}

icc_status_t icc_power_on(uint8_t *atr, size_t cap, size_t *atr_len)
{
    assert_true(cap >= ICC_ATR_MAX);
    if (!card_present)
        return ICC_ERR_ABSENT;
    if (power_on_result != ICC_OK) {
        card_powered = false;
        return power_on_result;
    }
    memcpy(atr, test_atr, sizeof test_atr);
    *atr_len = sizeof test_atr;
    card_powered = true;
    cur_params = (icc_params_t){.protocol = ICC_PROTO_T0, .fidi = 0x11, .waiting = 10};
    return ICC_OK;
}

void icc_power_off(void)
{
    card_powered = false;
    power_off_calls++;
}

icc_status_t icc_get_params(icc_params_t *out)
{
    if (!card_powered)
        return ICC_ERR_NOT_POWERED;
    *out = cur_params;
    return ICC_OK;
}

icc_status_t icc_set_params(const icc_params_t *want)
{
    set_params_calls++;
    last_set = *want;
    if (set_params_result == ICC_ERR_PPS)
        card_powered = false;
    if (set_params_result == ICC_OK)
        cur_params = *want;
    return set_params_result;
}

icc_status_t icc_transceive(const uint8_t *capdu, size_t clen, uint8_t *rapdu, size_t rcap,
                            size_t *rlen)
{
    assert_true(clen <= sizeof xfr_cmd);
    memcpy(xfr_cmd, capdu, clen);
    xfr_cmd_len = clen;
    for (int i = 0; i < xfr_hook_calls; i++) {
        if (wait_hook != NULL)
            wait_hook(wait_ctx);
        now_us += xfr_hook_step_us;
    }
    if (xfr_reenter != NULL)
        ccid_on_out(CCID_EP_BULK_OUT, xfr_reenter, xfr_reenter_len);
    if (xfr_result != ICC_OK)
        return xfr_result;
    assert_true(rcap >= xfr_rsp_len);
    memcpy(rapdu, xfr_rsp, xfr_rsp_len);
    *rlen = xfr_rsp_len;
    return ICC_OK;
}

void icc_set_wait_hook(icc_wait_hook_t hook, void *ctx)
{
    wait_hook = hook;
    wait_ctx = ctx;
}

uint32_t icc_clock_hz(void)
{
    return ICC_DEFAULT_CLOCK_HZ;
}

void icc_get_stats(icc_stats_t *out)
{
    memset(out, 0, sizeof *out);
}

/* ---- helpers ---- */

static int setup_ccid(void **state)
{
    (void)state;
    in_count = 0;
    write_result = PORT_OK;
    ep0_len = 0;
    ep0_replies = ep0_stalls = 0;
    now_us = 1000000;
    card_present = true;
    card_powered = false;
    power_on_result = ICC_OK;
    memset(&cur_params, 0, sizeof cur_params);
    set_params_result = ICC_OK;
    set_params_calls = 0;
    power_off_calls = 0;
    xfr_result = ICC_OK;
    xfr_rsp_len = 0;
    xfr_cmd_len = 0;
    xfr_hook_calls = 0;
    xfr_hook_step_us = 0;
    xfr_reenter = NULL;
    wait_hook = NULL;
    ccid_init();
    assert_non_null(wait_hook);
    ccid_on_configured();
    in_count = 0; /* the first NotifySlotChange is tested on its own */
    return 0;
}

/* Builds a PC_to_RDR message into buf; returns its length. */
static size_t msg(uint8_t *buf, uint8_t type, uint8_t slot, uint8_t seq, uint8_t p0, uint8_t p1,
                  uint8_t p2, const uint8_t *data, size_t len)
{
    buf[0] = type;
    fw_put_le32(buf + 1, (uint32_t)len);
    buf[5] = slot;
    buf[6] = seq;
    buf[7] = p0;
    buf[8] = p1;
    buf[9] = p2;
    if (len > 0)
        memcpy(buf + 10, data, len);
    return 10 + len;
}

static void send_msg(uint8_t type, uint8_t seq, uint8_t p0, const uint8_t *data, size_t len)
{
    uint8_t buf[400];
    size_t n = msg(buf, type, 0, seq, p0, 0, 0, data, len);
    ccid_on_out(CCID_EP_BULK_OUT, buf, n);
}

/* Checks the i-th IN transfer: a bulk answer with this header. */
static const uint8_t *expect_rsp(size_t i, uint8_t type, uint8_t seq, uint8_t status, uint8_t error,
                                 size_t data_len)
{
    assert_true(i < in_count);
    const in_xfer_t *x = &in_log[i];
    assert_int_equal(x->ep, CCID_EP_BULK_IN);
    assert_int_equal(x->len, 10 + data_len);
    assert_int_equal(x->data[0], type);
    assert_int_equal(fw_get_le32(x->data + 1), data_len);
    assert_int_equal(x->data[6], seq);
    assert_int_equal(x->data[7], status);
    assert_int_equal(x->data[8], error);
    return x->data;
}

static void power_on(uint8_t seq)
{
    send_msg(CCID_PC_TO_RDR_ICC_POWER_ON, seq, 0, NULL, 0);
    in_count = 0;
    assert_true(card_powered);
}

/* ---- tests ---- */

static void test_power_on(void **state)
{
    (void)state;
    send_msg(CCID_PC_TO_RDR_ICC_POWER_ON, 7, 1, NULL, 0);
    assert_int_equal(in_count, 1);
    const uint8_t *r = expect_rsp(0, 0x80, 7, 0x00, 0, sizeof test_atr);
    assert_int_equal(r[5], 0); /* bSlot */
    assert_int_equal(r[9], 0); /* bChainParameter */
    assert_memory_equal(r + 10, test_atr, sizeof test_atr);

    /* No card. */
    card_present = false;
    card_powered = false;
    send_msg(CCID_PC_TO_RDR_ICC_POWER_ON, 8, 0, NULL, 0);
    expect_rsp(1, 0x80, 8, 0x42, 0xFE, 0);

    /* Card errors map to §6.2.6 codes. */
    card_present = true;
    static const struct {
        icc_status_t st;
        uint8_t error;
    } map[] = {
        {ICC_ERR_MUTE, 0xFE},   {ICC_ERR_BAD_ATR_TS, 0xF8},    {ICC_ERR_BAD_ATR_TCK, 0xF7},
        {ICC_ERR_PARITY, 0xFD}, {ICC_ERR_OVERRUN, 0xFC},       {ICC_ERR_BAD_PARAM, 0xFB},
        {ICC_ERR_PPS, 0xF6},    {ICC_ERR_NOT_SUPPORTED, 0xF6},
    };
    for (size_t i = 0; i < FW_ARRAY_LEN(map); i++) {
        in_count = 0;
        power_on_result = map[i].st;
        send_msg(CCID_PC_TO_RDR_ICC_POWER_ON, (uint8_t)i, 0, NULL, 0);
        expect_rsp(0, 0x80, (uint8_t)i, 0x41, map[i].error, 0);
    }

    /* bPowerSelect 4 does not exist. */
    in_count = 0;
    power_on_result = ICC_OK;
    send_msg(CCID_PC_TO_RDR_ICC_POWER_ON, 9, 4, NULL, 0);
    expect_rsp(0, 0x80, 9, 0x41, 7, 0);
}

static void test_power_off_and_slot_status(void **state)
{
    (void)state;
    power_on(1);
    send_msg(CCID_PC_TO_RDR_GET_SLOT_STATUS, 2, 0, NULL, 0);
    const uint8_t *r = expect_rsp(0, 0x81, 2, 0x00, 0, 0);
    assert_int_equal(r[9], 0x00); /* clock running */

    send_msg(CCID_PC_TO_RDR_ICC_POWER_OFF, 3, 0, NULL, 0);
    assert_int_equal(power_off_calls, 1);
    r = expect_rsp(1, 0x81, 3, 0x01, 0, 0);
    assert_int_equal(r[9], 0x01); /* stopped in state L */

    card_present = false;
    send_msg(CCID_PC_TO_RDR_GET_SLOT_STATUS, 4, 0, NULL, 0);
    expect_rsp(2, 0x81, 4, 0x02, 0, 0);

    /* dwLength must be 0. */
    uint8_t extra[1] = {0};
    send_msg(CCID_PC_TO_RDR_GET_SLOT_STATUS, 5, 0, extra, 1);
    expect_rsp(3, 0x81, 5, 0x42, 1, 0);
}

static void test_xfr_block(void **state)
{
    (void)state;
    /* Not powered yet. */
    const uint8_t apdu[] = {0x00, 0xA4, 0x04, 0x00, 0x02, 0x3F, 0x00};
    send_msg(CCID_PC_TO_RDR_XFR_BLOCK, 1, 0, apdu, sizeof apdu);
    expect_rsp(0, 0x80, 1, 0x41, 0xFE, 0);

    power_on(2);
    const uint8_t resp[] = {0x6F, 0x00, 0x90, 0x00};
    memcpy(xfr_rsp, resp, sizeof resp);
    xfr_rsp_len = sizeof resp;
    send_msg(CCID_PC_TO_RDR_XFR_BLOCK, 3, 0, apdu, sizeof apdu);
    assert_int_equal(xfr_cmd_len, sizeof apdu);
    assert_memory_equal(xfr_cmd, apdu, sizeof apdu);
    const uint8_t *r = expect_rsp(0, 0x80, 3, 0x00, 0, sizeof resp);
    assert_memory_equal(r + 10, resp, sizeof resp);

    /* A full 258-byte response APDU. */
    in_count = 0;
    memset(xfr_rsp, 0x5A, 258);
    xfr_rsp_len = 258;
    send_msg(CCID_PC_TO_RDR_XFR_BLOCK, 4, 0, apdu, sizeof apdu);
    expect_rsp(0, 0x80, 4, 0x00, 0, 258);

    /* Card errors. */
    static const struct {
        icc_status_t st;
        uint8_t error;
    } map[] = {
        {ICC_ERR_MUTE, 0xFE},     {ICC_ERR_PARITY, 0xFD},  {ICC_ERR_OVERRUN, 0xFC},
        {ICC_ERR_PROTOCOL, 0xF4}, {ICC_ERR_BAD_PARAM, 10},
    };
    for (size_t i = 0; i < FW_ARRAY_LEN(map); i++) {
        in_count = 0;
        xfr_result = map[i].st;
        send_msg(CCID_PC_TO_RDR_XFR_BLOCK, (uint8_t)(20 + i), 0, apdu, sizeof apdu);
        expect_rsp(0, 0x80, (uint8_t)(20 + i), 0x40, map[i].error, 0);
    }
    /* T=1: a protocol failure is a hardware error for the host. */
    in_count = 0;
    cur_params.protocol = ICC_PROTO_T1;
    xfr_result = ICC_ERR_PROTOCOL;
    send_msg(CCID_PC_TO_RDR_XFR_BLOCK, 30, 0, apdu, sizeof apdu);
    expect_rsp(0, 0x80, 30, 0x40, 0xFB, 0);
}

static void test_xfr_block_bad_fields(void **state)
{
    (void)state;
    power_on(1);
    uint8_t buf[400];
    const uint8_t apdu[] = {0x00, 0xB0, 0x00, 0x00, 0x00};

    /* wLevelParameter must be 0 at short APDU level. */
    size_t n = msg(buf, CCID_PC_TO_RDR_XFR_BLOCK, 0, 2, 0, 0x01, 0x00, apdu, sizeof apdu);
    ccid_on_out(CCID_EP_BULK_OUT, buf, n);
    expect_rsp(0, 0x80, 2, 0x40, 8, 0);

    /* dwLength says more than the transfer holds, or less. */
    n = msg(buf, CCID_PC_TO_RDR_XFR_BLOCK, 0, 3, 0, 0, 0, apdu, sizeof apdu);
    ccid_on_out(CCID_EP_BULK_OUT, buf, n - 1);
    expect_rsp(1, 0x80, 3, 0x40, 1, 0);
    fw_put_le32(buf + 1, 0xFFFFFFFFu);
    ccid_on_out(CCID_EP_BULK_OUT, buf, n);
    expect_rsp(2, 0x80, 3, 0x40, 1, 0);

    /* Over dwMaxCCIDMessageLength. */
    uint8_t big[262];
    memset(big, 0, sizeof big);
    send_msg(CCID_PC_TO_RDR_XFR_BLOCK, 4, 0, big, sizeof big);
    expect_rsp(3, 0x80, 4, 0x40, 1, 0);

    /* A slot that does not exist. */
    n = msg(buf, CCID_PC_TO_RDR_XFR_BLOCK, 1, 5, 0, 0, 0, apdu, sizeof apdu);
    ccid_on_out(CCID_EP_BULK_OUT, buf, n);
    const uint8_t *r = expect_rsp(4, 0x80, 5, 0x42, 5, 0);
    assert_int_equal(r[5], 1); /* bSlot echoed */

    /* Too short to answer: dropped. Other endpoints: ignored. */
    ccid_on_out(CCID_EP_BULK_OUT, buf, 9);
    ccid_on_out(0x02, buf, n);
    assert_int_equal(in_count, 5);
    assert_int_equal(xfr_cmd_len, 0);
}

static void test_unknown_message(void **state)
{
    (void)state;
    send_msg(0x99, 12, 0, NULL, 0);
    const uint8_t *r = expect_rsp(0, 0x81, 12, 0x41, 0x00, 0);
    assert_int_equal(r[9], 0x01);
    /* RDR_to_PC types sent back to us are unknown too. */
    send_msg(0x80, 13, 0, NULL, 0);
    expect_rsp(1, 0x81, 13, 0x41, 0x00, 0);
}

static void test_parameters(void **state)
{
    (void)state;
    /* GetParameters without an active card. */
    send_msg(CCID_PC_TO_RDR_GET_PARAMETERS, 1, 0, NULL, 0);
    expect_rsp(0, 0x82, 1, 0x41, 0xFE, 0);

    power_on(2);
    cur_params = (icc_params_t){.protocol = ICC_PROTO_T0,
                                .fidi = 0x11,
                                .tcckst = 0x02,
                                .guard_time = 0,
                                .waiting = 0x2A,
                                .clock_stop = 0};
    send_msg(CCID_PC_TO_RDR_GET_PARAMETERS, 3, 0, NULL, 0);
    const uint8_t *r = expect_rsp(0, 0x82, 3, 0x00, 0, 5);
    assert_int_equal(r[9], 0); /* bProtocolNum */
    const uint8_t t0[5] = {0x11, 0x02, 0x00, 0x2A, 0x00};
    assert_memory_equal(r + 10, t0, 5);

    /* SetParameters T=1. */
    in_count = 0;
    const uint8_t t1[7] = {0x18, 0x11, 0x02, 0x45, 0x00, 0xFE, 0x00};
    send_msg(CCID_PC_TO_RDR_SET_PARAMETERS, 4, 1, t1, sizeof t1);
    assert_int_equal(set_params_calls, 1);
    assert_int_equal(last_set.protocol, ICC_PROTO_T1);
    assert_int_equal(last_set.fidi, 0x18);
    assert_int_equal(last_set.tcckst, 0x11);
    assert_int_equal(last_set.guard_time, 0x02);
    assert_int_equal(last_set.waiting, 0x45);
    assert_int_equal(last_set.ifsc, 0xFE);
    r = expect_rsp(0, 0x82, 4, 0x00, 0, 7);
    assert_int_equal(r[9], 1);
    assert_memory_equal(r + 10, t1, 7);

    /* ResetParameters: back to what power on gave (T=0, Fi/Di 11). */
    in_count = 0;
    send_msg(CCID_PC_TO_RDR_RESET_PARAMETERS, 5, 0, NULL, 0);
    assert_int_equal(set_params_calls, 2);
    assert_int_equal(last_set.protocol, ICC_PROTO_T0);
    assert_int_equal(last_set.fidi, 0x11);
    r = expect_rsp(0, 0x82, 5, 0x00, 0, 5);
    assert_int_equal(r[9], 0);
}

static void test_set_parameters_errors(void **state)
{
    (void)state;
    power_on(1);
    const uint8_t t0[5] = {0x11, 0x00, 0x00, 0x0A, 0x00};
    const uint8_t t1[7] = {0x11, 0x10, 0x00, 0x4D, 0x00, 0x20, 0x00};
    struct {
        uint8_t proto;
        const uint8_t *data;
        size_t len;
        int patch; /* index to change, -1 none */
        uint8_t value;
        uint8_t error;
    } cases[] = {
        {2, t0, 5, -1, 0, 7},    /* bProtocolNum */
        {0, t1, 7, -1, 0, 1},    /* T=0 with 7 bytes */
        {1, t0, 5, -1, 0, 1},    /* T=1 with 5 bytes */
        {0, t0, 5, 0, 0x71, 10}, /* Fi index 7 is RFU */
        {0, t0, 5, 0, 0x1A, 10}, /* Di index 10 is RFU */
        {0, t0, 5, 0, 0x17, 10}, /* Di 64: over dwMaxDataRate */
        {0, t0, 5, 1, 0x01, 11}, /* bmTCCKST0 */
        {0, t0, 5, 3, 0x00, 13}, /* WI 0 */
        {0, t0, 5, 4, 0x04, 14}, /* bClockStop */
        {1, t1, 7, 1, 0x00, 11}, /* bmTCCKST1 without 0x10 */
        {1, t1, 7, 3, 0xA4, 13}, /* BWI 10 */
        {1, t1, 7, 5, 0x00, 15}, /* IFSC 0 */
        {1, t1, 7, 5, 0xFF, 15}, /* IFSC 255 */
        {1, t1, 7, 6, 0x12, 16}, /* NAD */
    };
    for (size_t i = 0; i < FW_ARRAY_LEN(cases); i++) {
        uint8_t d[8];
        memcpy(d, cases[i].data, cases[i].len);
        if (cases[i].patch >= 0)
            d[cases[i].patch] = cases[i].value;
        in_count = 0;
        send_msg(CCID_PC_TO_RDR_SET_PARAMETERS, (uint8_t)i, cases[i].proto, d, cases[i].len);
        expect_rsp(0, 0x82, (uint8_t)i, 0x40, cases[i].error, 0);
    }
    assert_int_equal(set_params_calls, 0);

    /* PPS refused: the card is left unpowered (icc.h), no parameters. */
    in_count = 0;
    set_params_result = ICC_ERR_PPS;
    const uint8_t fast[5] = {0x18, 0x00, 0x00, 0x0A, 0x00};
    send_msg(CCID_PC_TO_RDR_SET_PARAMETERS, 40, 0, fast, sizeof fast);
    expect_rsp(0, 0x82, 40, 0x41, 0xF6, 0);

    /* icc refusing a field blames abProtocolData, and keeps the old ones. */
    power_on(41);
    set_params_result = ICC_ERR_BAD_PARAM;
    send_msg(CCID_PC_TO_RDR_SET_PARAMETERS, 42, 0, fast, sizeof fast);
    const uint8_t *r = expect_rsp(0, 0x82, 42, 0x40, 10, 5);
    assert_int_equal(r[10], 0x11);
}

static void test_escape_and_unsupported(void **state)
{
    (void)state;
    power_on(1);
    const uint8_t vendor[3] = {0x01, 0x02, 0x03};
    send_msg(CCID_PC_TO_RDR_ESCAPE, 2, 0, vendor, sizeof vendor);
    expect_rsp(0, 0x83, 2, 0x40, 0x00, 0);
    send_msg(CCID_PC_TO_RDR_ESCAPE, 3, 0, NULL, 0);
    expect_rsp(1, 0x83, 3, 0x40, 0x00, 0);

    send_msg(CCID_PC_TO_RDR_T0APDU, 4, 0x03, NULL, 0);
    expect_rsp(2, 0x81, 4, 0x40, 0x00, 0);
    send_msg(CCID_PC_TO_RDR_T0APDU, 5, 0x04, NULL, 0); /* bad bmChanges */
    expect_rsp(3, 0x81, 5, 0x40, 7, 0);

    /* Secure with a PIN verification structure cut short: bError = 1,
     * the offset of dwLength (CCID §6.2.6). */
    const uint8_t pin[] = {0x00, 0x00, 0x00, 0x82, 0x04, 0x00};
    send_msg(CCID_PC_TO_RDR_SECURE, 6, 0, pin, sizeof pin);
    expect_rsp(4, 0x80, 6, 0x40, 0x01, 0);

    send_msg(CCID_PC_TO_RDR_MECHANICAL, 7, 1, NULL, 0);
    expect_rsp(5, 0x81, 7, 0x40, 0x00, 0);
    send_msg(CCID_PC_TO_RDR_MECHANICAL, 8, 9, NULL, 0);
    expect_rsp(6, 0x81, 8, 0x40, 7, 0);

    /* IccClock: restart is fine, stop is not offered. */
    send_msg(CCID_PC_TO_RDR_ICC_CLOCK, 9, 0, NULL, 0);
    const uint8_t *r = expect_rsp(7, 0x81, 9, 0x00, 0, 0);
    assert_int_equal(r[9], 0);
    send_msg(CCID_PC_TO_RDR_ICC_CLOCK, 10, 1, NULL, 0);
    expect_rsp(8, 0x81, 10, 0x40, 0x00, 0);
    send_msg(CCID_PC_TO_RDR_ICC_CLOCK, 11, 2, NULL, 0);
    expect_rsp(9, 0x81, 11, 0x40, 7, 0);
}

static void test_data_rate_and_clock(void **state)
{
    (void)state;
    uint8_t req[8];
    fw_put_le32(req, 4000);
    fw_put_le32(req + 4, 9600);
    send_msg(CCID_PC_TO_RDR_SET_DATA_RATE_CLK, 1, 0, req, sizeof req);
    const uint8_t *r = expect_rsp(0, 0x84, 1, 0x01, 0, 8);
    assert_int_equal(fw_get_le32(r + 10), 5000);
    assert_int_equal(fw_get_le32(r + 14), 13441);

    power_on(2);
    cur_params.fidi = 0x18; /* Fi 372, Di 12 */
    send_msg(CCID_PC_TO_RDR_SET_DATA_RATE_CLK, 3, 0, req, sizeof req);
    r = expect_rsp(0, 0x84, 3, 0x00, 0, 8);
    assert_int_equal(fw_get_le32(r + 14), 161290);

    send_msg(CCID_PC_TO_RDR_SET_DATA_RATE_CLK, 4, 0, req, 4);
    expect_rsp(1, 0x84, 4, 0x40, 1, 0);
}

static void test_time_extension(void **state)
{
    (void)state;
    power_on(1);
    /* The hook outside a command sends nothing. */
    wait_hook(wait_ctx);
    assert_int_equal(in_count, 0);

    const uint8_t apdu[] = {0x00, 0x2A, 0x9E, 0x9A, 0x00};
    const uint8_t sig[] = {0x61, 0x00};
    memcpy(xfr_rsp, sig, sizeof sig);
    xfr_rsp_len = sizeof sig;
    /* Three NULL bytes 60 ms apart: the first and third give an extension. */
    xfr_hook_calls = 3;
    xfr_hook_step_us = 60000;
    send_msg(CCID_PC_TO_RDR_XFR_BLOCK, 0x33, 0, apdu, sizeof apdu);
    assert_int_equal(in_count, 3);
    expect_rsp(0, 0x80, 0x33, 0x80, 1, 0);
    expect_rsp(1, 0x80, 0x33, 0x80, 1, 0);
    expect_rsp(2, 0x80, 0x33, 0x00, 0, sizeof sig);

    /* A new command gets its first extension at once. */
    in_count = 0;
    xfr_hook_calls = 1;
    send_msg(CCID_PC_TO_RDR_XFR_BLOCK, 0x34, 0, apdu, sizeof apdu);
    assert_int_equal(in_count, 2);
    expect_rsp(0, 0x80, 0x34, 0x80, 1, 0);
    expect_rsp(1, 0x80, 0x34, 0x00, 0, sizeof sig);
}

static void test_slot_busy(void **state)
{
    (void)state;
    power_on(1);
    uint8_t other[10];
    size_t n = msg(other, CCID_PC_TO_RDR_GET_SLOT_STATUS, 0, 9, 0, 0, 0, NULL, 0);
    xfr_reenter = other;
    xfr_reenter_len = n;
    xfr_rsp[0] = 0x90;
    xfr_rsp[1] = 0x00;
    xfr_rsp_len = 2;
    const uint8_t apdu[] = {0x00, 0xB0, 0x00, 0x00, 0x00};
    send_msg(CCID_PC_TO_RDR_XFR_BLOCK, 8, 0, apdu, sizeof apdu);
    assert_int_equal(in_count, 2);
    expect_rsp(0, 0x81, 9, 0x40, 0xE0, 0);
    expect_rsp(1, 0x80, 8, 0x00, 0, 2);
}

static void abort_request(uint8_t seq, uint8_t slot)
{
    usb_setup_t s = {.bmRequestType = 0x21,
                     .bRequest = CCID_REQ_ABORT,
                     .wValue = (uint16_t)(seq << 8 | slot),
                     .wIndex = 0,
                     .wLength = 0};
    ep0_replies = 0;
    bool ok = ccid_on_request(&s, NULL, 0);
    if (slot == 0) {
        assert_true(ok);
        assert_int_equal(ep0_replies, 1);
        assert_int_equal(ep0_len, 0);
    } else {
        assert_false(ok);
        assert_int_equal(ep0_replies, 0);
    }
}

static void test_abort(void **state)
{
    (void)state;
    power_on(1);
    /* Class request first, then PC_to_RDR_Abort (§5.3.1). */
    abort_request(5, 0);
    assert_int_equal(in_count, 0);
    /* Anything else meanwhile fails with CMD_ABORTED. */
    send_msg(CCID_PC_TO_RDR_GET_SLOT_STATUS, 6, 0, NULL, 0);
    expect_rsp(0, 0x81, 6, 0x40, 0xFF, 0);
    send_msg(CCID_PC_TO_RDR_ABORT, 5, 0, NULL, 0);
    expect_rsp(1, 0x81, 5, 0x00, 0, 0);
    send_msg(CCID_PC_TO_RDR_GET_SLOT_STATUS, 7, 0, NULL, 0);
    expect_rsp(2, 0x81, 7, 0x00, 0, 0);

    /* PC_to_RDR_Abort first: answered when the class request comes. */
    in_count = 0;
    send_msg(CCID_PC_TO_RDR_ABORT, 9, 0, NULL, 0);
    assert_int_equal(in_count, 0);
    abort_request(9, 0);
    expect_rsp(0, 0x81, 9, 0x00, 0, 0);

    /* A host that never sends the class request still gets its answer. */
    in_count = 0;
    send_msg(CCID_PC_TO_RDR_ABORT, 10, 0, NULL, 0);
    send_msg(CCID_PC_TO_RDR_GET_SLOT_STATUS, 11, 0, NULL, 0);
    expect_rsp(0, 0x81, 10, 0x00, 0, 0);
    expect_rsp(1, 0x81, 11, 0x00, 0, 0);

    /* ABORT for a slot that does not exist: STALL. */
    abort_request(12, 1);

    /* A bus reset ends an abort in progress. */
    in_count = 0;
    abort_request(13, 0);
    ccid_on_reset();
    ccid_on_configured();
    in_count = 0;
    send_msg(CCID_PC_TO_RDR_GET_SLOT_STATUS, 14, 0, NULL, 0);
    expect_rsp(0, 0x81, 14, 0x01, 0, 0);
}

static void test_class_requests(void **state)
{
    (void)state;
    usb_setup_t s = {.bmRequestType = 0xA1,
                     .bRequest = CCID_REQ_GET_CLOCK_FREQUENCIES,
                     .wValue = 0,
                     .wIndex = 0,
                     .wLength = 4};
    assert_true(ccid_on_request(&s, NULL, 0));
    assert_int_equal(ep0_len, 0);
    s.bRequest = CCID_REQ_GET_DATA_RATES;
    assert_true(ccid_on_request(&s, NULL, 0));
    assert_int_equal(ep0_len, 0);
    s.bRequest = 0x04;
    assert_false(ccid_on_request(&s, NULL, 0));
    s.bmRequestType = 0xC1; /* vendor */
    s.bRequest = CCID_REQ_GET_DATA_RATES;
    assert_false(ccid_on_request(&s, NULL, 0));
    s.bmRequestType = 0x21; /* wrong direction */
    assert_false(ccid_on_request(&s, NULL, 0));
}

static void test_notify_slot_change(void **state)
{
    (void)state;
    /* Once after configuration, with the changed bit. */
    ccid_on_reset();
    in_count = 0;
    card_present = true;
    ccid_on_configured();
    assert_int_equal(in_count, 1);
    assert_int_equal(in_log[0].ep, CCID_EP_INTR_IN);
    assert_int_equal(in_log[0].len, 2);
    assert_int_equal(in_log[0].data[0], 0x50);
    assert_int_equal(in_log[0].data[1], 0x03);

    /* Removal powers the slot off and notifies. */
    power_on(1);
    int offs = power_off_calls;
    card_present = false;
    ccid_slot_changed(false);
    assert_int_equal(power_off_calls, offs + 1);
    assert_false(card_powered);
    assert_int_equal(in_count, 1);
    assert_int_equal(in_log[0].ep, CCID_EP_INTR_IN);
    assert_int_equal(in_log[0].data[1], 0x02);

    /* Insertion. */
    card_present = true;
    ccid_slot_changed(true);
    assert_int_equal(in_count, 2);
    assert_int_equal(in_log[1].data[1], 0x03);

    /* A notification the pipe refused is retried by ccid_poll. */
    write_result = PORT_ABSENT;
    card_present = false;
    ccid_slot_changed(false);
    assert_int_equal(in_count, 2);
    write_result = PORT_OK;
    ccid_poll();
    assert_int_equal(in_count, 3);
    assert_int_equal(in_log[2].data[1], 0x02);
    ccid_poll();
    assert_int_equal(in_count, 3);

    /* Not configured: held until configuration. */
    ccid_on_reset();
    in_count = 0;
    card_present = true;
    ccid_slot_changed(true);
    assert_int_equal(in_count, 0);
    ccid_on_configured();
    assert_int_equal(in_count, 1);
    assert_int_equal(in_log[0].data[1], 0x03);
}

static void test_reset_powers_off(void **state)
{
    (void)state;
    power_on(1);
    ccid_on_reset();
    assert_false(card_powered);
}

static void test_descriptors(void **state)
{
    (void)state;
    const usb_descriptors_t *d = ccid_usb_descriptors();
    assert_int_equal(d->device_len, 18);
    assert_int_equal(fw_get_le16(d->device + 8), 0x1209);
    assert_int_equal(fw_get_le16(d->device + 10), 0xCAC7);
    assert_int_equal(fw_get_le16(d->device + 12), 0x0100);
    assert_int_equal(d->config_len, 93);
    assert_int_equal(fw_get_le16(d->config + 2), 93);
    const uint8_t *itf = d->config + 9;
    assert_int_equal(itf[5], 0x0B);
    const uint8_t *c = d->config + 18;
    assert_int_equal(c[0], 0x36);
    assert_int_equal(c[1], 0x21);
    assert_int_equal(fw_get_le16(c + 2), 0x0110);
    assert_int_equal(c[4], 0);                         /* bMaxSlotIndex */
    assert_int_equal(c[5], 0x07);                      /* bVoltageSupport */
    assert_int_equal(fw_get_le32(c + 6), 3);           /* dwProtocols */
    assert_int_equal(fw_get_le32(c + 10), 5000);       /* dwDefaultClock */
    assert_int_equal(fw_get_le32(c + 14), 5000);       /* dwMaximumClock */
    assert_int_equal(c[18], 0);                        /* bNumClockSupported */
    assert_int_equal(fw_get_le32(c + 19), 13441);      /* dwDataRate */
    assert_int_equal(fw_get_le32(c + 23), 430108);     /* dwMaxDataRate */
    assert_int_equal(c[27], 0);                        /* bNumDataRatesSupported */
    assert_int_equal(fw_get_le32(c + 28), 254);        /* dwMaxIFSD */
    assert_int_equal(fw_get_le32(c + 32), 0);          /* dwSynchProtocols */
    assert_int_equal(fw_get_le32(c + 36), 0);          /* dwMechanical */
    assert_int_equal(fw_get_le32(c + 40), 0x000204B8); /* dwFeatures */
    assert_int_equal(fw_get_le32(c + 44), 271);        /* dwMaxCCIDMessageLength */
    assert_int_equal(c[48], 0xFF);
    assert_int_equal(c[49], 0xFF);
    assert_int_equal(fw_get_le16(c + 50), 0x0415); /* wLcdLayout: 4 x 21 */
    assert_int_equal(c[52], 0x03);                 /* bPINSupport: verify + modify */
    assert_int_equal(c[53], 1);               /* bMaxCCIDBusySlots */
    const uint8_t *ep = c + 0x36;
    assert_int_equal(ep[2], 0x01);
    assert_int_equal(ep[9], 0x82);
    assert_int_equal(ep[16], 0x83);
    assert_int_equal(ep[16 + 2], 8);
    assert_int_equal(ep[16 + 4], 16);

    /* Through the usb core: accepted as is, serial from the board. */
    uint32_t bugs = fw_bug_count();
    usb_init(d, ccid_usb_class());
    assert_int_equal(fw_bug_count(), bugs);
    usb_on_reset();
    const uint8_t get_serial[8] = {0x80, 0x06, 0x03, 0x03, 0x09, 0x04, 0xFF, 0x00};
    usb_on_setup(get_serial, NULL, 0);
    assert_int_equal(ep0_len, 2 + 2 * 9);
    assert_int_equal(ep0_buf[2], 'T');
    assert_int_equal(ep0_buf[18], '1');
    const uint8_t set_config[8] = {0x00, 0x09, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00};
    in_count = 0;
    usb_on_setup(set_config, NULL, 0);
    assert_true(usb_configured());
    assert_int_equal(in_count, 1); /* NotifySlotChange */
    /* A bulk message through the core. */
    uint8_t m[10];
    size_t n = msg(m, CCID_PC_TO_RDR_GET_SLOT_STATUS, 0, 0x42, 0, 0, 0, NULL, 0);
    usb_on_out(CCID_EP_BULK_OUT, m, n);
    expect_rsp(1, 0x81, 0x42, 0x01, 0, 0);
}

static void test_parser(void **state)
{
    (void)state;
    ccid_msg_t m;
    uint8_t buf[300];
    assert_int_equal(ccid_msg_parse(NULL, 0, &m), CCID_PARSE_TOO_SHORT);
    size_t n = msg(buf, CCID_PC_TO_RDR_ICC_POWER_ON, 0, 3, 1, 0, 0, NULL, 0);
    assert_int_equal(ccid_msg_parse(buf, n, &m), CCID_PARSE_OK);
    assert_int_equal(m.rsp_type, 0x80);
    assert_int_equal(m.seq, 3);
    assert_int_equal(ccid_msg_parse(buf, 9, &m), CCID_PARSE_TOO_SHORT);
    const uint8_t apdu[261] = {0};
    n = msg(buf, CCID_PC_TO_RDR_XFR_BLOCK, 0, 4, 0, 0, 0, apdu, sizeof apdu);
    assert_int_equal(ccid_msg_parse(buf, n, &m), CCID_PARSE_OK);
    assert_int_equal(m.data_len, 261);
    assert_ptr_equal(m.data, buf + 10);
    buf[0] = 0x64; /* not a message type */
    assert_int_equal(ccid_msg_parse(buf, n, &m), CCID_PARSE_UNKNOWN);
    assert_int_equal(m.rsp_type, 0x81);
    assert_int_equal(ccid_msg_response_type(CCID_PC_TO_RDR_ESCAPE), 0x83);
    assert_int_equal(ccid_msg_response_type(CCID_PC_TO_RDR_SET_DATA_RATE_CLK), 0x84);

    uint32_t bps = 0;
    assert_true(ccid_msg_fidi_rate(0x11, 5000000, &bps));
    assert_int_equal(bps, 13441);
    assert_true(ccid_msg_fidi_rate(0x16, 5000000, &bps));
    assert_int_equal(bps, 430108);
    assert_false(ccid_msg_fidi_rate(0x10, 5000000, &bps));
    assert_false(ccid_msg_fidi_rate(0xE1, 5000000, &bps));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_power_on, setup_ccid),
        cmocka_unit_test_setup(test_power_off_and_slot_status, setup_ccid),
        cmocka_unit_test_setup(test_xfr_block, setup_ccid),
        cmocka_unit_test_setup(test_xfr_block_bad_fields, setup_ccid),
        cmocka_unit_test_setup(test_unknown_message, setup_ccid),
        cmocka_unit_test_setup(test_parameters, setup_ccid),
        cmocka_unit_test_setup(test_set_parameters_errors, setup_ccid),
        cmocka_unit_test_setup(test_escape_and_unsupported, setup_ccid),
        cmocka_unit_test_setup(test_data_rate_and_clock, setup_ccid),
        cmocka_unit_test_setup(test_time_extension, setup_ccid),
        cmocka_unit_test_setup(test_slot_busy, setup_ccid),
        cmocka_unit_test_setup(test_abort, setup_ccid),
        cmocka_unit_test_setup(test_class_requests, setup_ccid),
        cmocka_unit_test_setup(test_notify_slot_change, setup_ccid),
        cmocka_unit_test_setup(test_reset_powers_off, setup_ccid),
        cmocka_unit_test_setup(test_descriptors, setup_ccid),
        cmocka_unit_test_setup(test_parser, setup_ccid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
