/* Fuzz target for firmware/ccid: ccid_msg_parse() on its own, then the whole
 * class driver (ccid_on_out, class requests, slot changes, the time extension
 * hook) against fake icc_* and port_* functions.
 *
 * Input: byte 0 sets up the fake card (bit 0 present, bit 1 powered, bit 2
 * USB configured, bits 3..5 the icc status every card call returns, bit 6
 * NULL bytes during exchanges, bit 7 a USB write failure); then records
 * [kind][len][len bytes] until the input ends:
 *   kind % 4 == 0  one bulk OUT transfer on ep 0x01 (or another ep if kind & 4)
 *   kind % 4 == 1  one class request (the first 8 bytes are the SETUP packet)
 *   kind % 4 == 2  card presence change (len & 1 = present), then ccid_poll
 *   kind % 4 == 3  the icc wait hook, outside any command */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ccid.h"
#include "ccid_msg.h"
#include "fw_util.h"
#include "icc.h"
#include "port_board.h"
#include "port_time.h"
#include "port_ui.h"
#include "port_usb.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool f_present;
static bool f_powered;
static icc_status_t f_status;
static bool f_null_bytes;
static bool f_write_fails;
static uint8_t f_resp_len;
static uint64_t f_now;
static icc_wait_hook_t f_hook;
static void *f_hook_ctx;
static icc_params_t f_params;

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c))                                                                                  \
            abort();                                                                               \
    } while (0)

/* ---- fake port ---- */

port_status_t port_usb_write(uint8_t ep, const uint8_t *data, size_t len)
{
    CHECK(ep == CCID_EP_BULK_IN || ep == CCID_EP_INTR_IN);
    CHECK(data != NULL);
    if (ep == CCID_EP_BULK_IN) {
        /* Every answer is a whole RDR_to_PC message within our own limit. */
        CHECK(len >= CCID_HEADER_LEN && len <= CCID_HEADER_LEN + ICC_RAPDU_MAX);
        CHECK(fw_get_le32(data + 1) == len - CCID_HEADER_LEN);
        CHECK(data[0] >= CCID_RDR_TO_PC_DATA_BLOCK && data[0] <= CCID_RDR_TO_PC_DATA_RATE_CLK);
    } else {
        CHECK(len == 2 && data[0] == CCID_RDR_TO_PC_NOTIFY_SLOT_CHANGE);
    }
    volatile uint8_t sink = 0;
    for (size_t i = 0; i < len; i++)
        sink ^= data[i];
    (void)sink;
    return f_write_fails ? PORT_ABSENT : PORT_OK;
}

port_status_t port_usb_ep0_reply(const uint8_t *data, size_t len)
{
    CHECK(len == 0 || data != NULL);
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
    f_now += 30000;
    return f_now;
}

const char *port_board_serial(void)
{
    return "FUZZ";
}

/* ui, for PC_to_RDR_Secure: the holder cancels at once (the PIN entry is
 * fuzzed on its own by tests/fuzz/ccid_secure). */
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
    (void)timeout_us;
    return PORT_KEY_CANCEL;
}

/* ---- fake icc ---- */

void icc_init(void)
{
}

bool icc_present(void)
{
    return f_present;
}

bool icc_powered(void)
{
    return f_present && f_powered;
}

icc_status_t icc_power_on(uint8_t *atr, size_t cap, size_t *atr_len)
{
    CHECK(cap >= ICC_ATR_MAX);
    if (!f_present)
        return ICC_ERR_ABSENT;
    if (f_status != ICC_OK)
        return f_status;
    memset(atr, 0x3B, ICC_ATR_MAX);
    *atr_len = ICC_ATR_MAX;
    f_powered = true;
    return ICC_OK;
}

void icc_power_off(void)
{
    f_powered = false;
}

icc_status_t icc_get_params(icc_params_t *out)
{
    if (!icc_powered())
        return ICC_ERR_NOT_POWERED;
    *out = f_params;
    return ICC_OK;
}

icc_status_t icc_set_params(const icc_params_t *want)
{
    CHECK(want->protocol <= ICC_PROTO_T1);
    if (f_status == ICC_ERR_PPS)
        f_powered = false;
    if (f_status == ICC_OK)
        f_params = *want;
    return f_status;
}

icc_status_t icc_transceive(const uint8_t *capdu, size_t clen, uint8_t *rapdu, size_t rcap,
                            size_t *rlen)
{
    CHECK(clen <= ICC_CAPDU_MAX && (clen == 0 || capdu != NULL));
    volatile uint8_t sink = 0;
    for (size_t i = 0; i < clen; i++)
        sink ^= capdu[i];
    (void)sink;
    if (f_null_bytes && f_hook != NULL) {
        for (int i = 0; i < 3; i++)
            f_hook(f_hook_ctx);
    }
    if (f_status != ICC_OK)
        return f_status;
    size_t n = f_resp_len;
    if (n > rcap)
        return ICC_ERR_OVERRUN;
    memset(rapdu, 0x90, n);
    *rlen = n;
    return ICC_OK;
}

void icc_set_wait_hook(icc_wait_hook_t hook, void *ctx)
{
    f_hook = hook;
    f_hook_ctx = ctx;
}

uint32_t icc_clock_hz(void)
{
    return ICC_DEFAULT_CLOCK_HZ;
}

void icc_get_stats(icc_stats_t *out)
{
    memset(out, 0, sizeof *out);
}

/* ---- the target ---- */

static void check_parse(const uint8_t *buf, size_t len)
{
    ccid_msg_t m;
    ccid_parse_status_t st = ccid_msg_parse(buf, len, &m);
    switch (st) {
    case CCID_PARSE_OK:
        CHECK(len >= CCID_HEADER_LEN);
        CHECK(m.data == buf + CCID_HEADER_LEN && m.data_len == len - CCID_HEADER_LEN);
        CHECK(m.length == m.data_len && m.data_len <= CCID_MAX_DATA_LEN);
        CHECK(m.slot == 0 && m.seq == buf[6]);
        break;
    case CCID_PARSE_TOO_SHORT:
        CHECK(len < CCID_HEADER_LEN);
        break;
    case CCID_PARSE_UNKNOWN:
        CHECK(m.rsp_type == CCID_RDR_TO_PC_SLOT_STATUS);
        break;
    case CCID_PARSE_BAD_FIELD:
        CHECK(m.bad_field >= 1 && m.bad_field < CCID_HEADER_LEN + CCID_PARAMS_T1_LEN);
        break;
    default:
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t cfg = data[0];
    f_present = (cfg & 0x01) != 0;
    f_powered = (cfg & 0x02) != 0;
    f_status = (icc_status_t)((cfg >> 3) & 0x07); /* ICC_OK .. ICC_ERR_PARITY */
    f_null_bytes = (cfg & 0x40) != 0;
    f_write_fails = (cfg & 0x80) != 0;
    f_resp_len = (uint8_t)size;
    f_now = 0;
    f_params =
        (icc_params_t){.protocol = (uint8_t)(size & 1), .fidi = 0x11, .waiting = 10, .ifsc = 32};

    ccid_init();
    ccid_on_reset();
    f_powered = (cfg & 0x02) != 0;
    if (cfg & 0x04)
        ccid_on_configured();

    size_t off = 1;
    while (off + 2 <= size) {
        uint8_t kind = data[off];
        size_t len = data[off + 1];
        off += 2;
        if (len > size - off)
            len = size - off;
        const uint8_t *rec = data + off;
        off += len;
        switch (kind & 3u) {
        case 0: {
            /* An exact-size heap copy so ASan sees any over-read. */
            uint8_t *copy = malloc(len ? len : 1);
            if (copy == NULL)
                return 0;
            if (len > 0)
                memcpy(copy, rec, len);
            check_parse(copy, len);
            ccid_on_out((kind & 4u) ? 0x02 : CCID_EP_BULK_OUT, copy, len);
            free(copy);
            break;
        }
        case 1:
            if (len >= 8) {
                usb_setup_t s = {.bmRequestType = rec[0],
                                 .bRequest = rec[1],
                                 .wValue = fw_get_le16(rec + 2),
                                 .wIndex = fw_get_le16(rec + 4),
                                 .wLength = fw_get_le16(rec + 6)};
                (void)ccid_on_request(&s, rec + 8, len - 8);
            }
            break;
        case 2:
            f_present = (len & 1u) != 0;
            ccid_slot_changed(f_present);
            ccid_poll();
            break;
        default:
            if (f_hook != NULL)
                f_hook(f_hook_ctx);
            break;
        }
    }
    /* A whole input as one transfer too: the parser's own limits. */
    check_parse(data + 1, size - 1);
    ccid_on_out(CCID_EP_BULK_OUT, data + 1, size - 1);
    return 0;
}
