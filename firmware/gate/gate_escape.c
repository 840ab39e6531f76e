/* gate_escape: the Cachet vendor commands carried by PC_to_RDR_Escape
 * (CCID rev 1.1 §6.1.8), docs/appliance.md "Vendor commands (CCID Escape)".
 * Deny by default (STYLE rule 9): one version, a table of commands, every
 * length checked before use; anything else is CMD_NOT_SUPPORTED.
 *
 *   in  (abData after the class byte 0xCA): version, command, payload
 *   out: version, command, status (gate_st_t), payload */
#include "gate.h"
#include "gate_int.h"

#include "fw_util.h"
#include "receipts.h"
#include "ui.h"

#ifndef CACHET_FW_VERSION_MAJOR
#define CACHET_FW_VERSION_MAJOR 0
#define CACHET_FW_VERSION_MINOR 0
#define CACHET_FW_VERSION_PATCH 0
#endif

#define GATE_ESC_HDR 3u /* version, command, status */

enum {
    GATE_CMD_GET_DEVICE_INFO = 0x01,
    GATE_CMD_GET_STATUS = 0x02,
    GATE_CMD_SET_CONFIG = 0x03,
    GATE_CMD_ANNOUNCE_BEGIN = 0x10,
    GATE_CMD_ANNOUNCE_DATA = 0x11,
    GATE_CMD_ANNOUNCE_END = 0x12,
    GATE_CMD_ANNOUNCE_CLEAR = 0x13,
    GATE_CMD_GET_RECEIPT = 0x20,
};

/* SET_CONFIG fields: tag, length (2 bytes), value. */
#define GATE_CFG_TIMEOUT 0x01u /* 2 bytes: seconds, 5..600 */
#define GATE_CFG_AUTH    0x02u /* 1 byte: gate_auth_policy_t */
#define GATE_CFG_LANG    0x03u /* 1 byte: 0 French, 1 English */

/* Largest ANNOUNCE_DATA chunk: what a CCID message carries after the class,
 * version, command and offset bytes. */
#define GATE_ANN_CHUNK_MAX 240u

typedef struct {
    const uint8_t *in; /* payload */
    size_t in_len;
    uint8_t *out; /* payload of the answer */
    size_t cap;
    size_t out_len;
} gate_esc_t;

typedef gate_st_t (*gate_esc_fn)(gate_esc_t *e);

static gate_st_t gate_esc_device_info(gate_esc_t *e)
{
    /* flags, counter (4), firmware version (3), SPKI length, SPKI DER. */
    FW_VERIFY(e->in_len == 0, GATE_ST_LENGTH);
    FW_VERIFY(e->cap >= 9u + CRYPTO_P256_SPKI_LEN, GATE_ST_LENGTH);
    uint8_t *o = e->out;
    o[0] = receipts_device_flags();
    fw_put_be32(o + 1, receipts_counter());
    o[5] = CACHET_FW_VERSION_MAJOR;
    o[6] = CACHET_FW_VERSION_MINOR;
    o[7] = CACHET_FW_VERSION_PATCH;
    size_t n = 0;
    if (receipts_public_key(o + 9, e->cap - 9u, &n) != RECEIPTS_OK)
        n = 0;
    o[8] = (uint8_t)n;
    e->out_len = 9u + n;
    return GATE_ST_OK;
}

static gate_st_t gate_esc_status(gate_esc_t *e)
{
    /* flags, last outcome, last receipt (4), timeout s (2), auth policy, language. */
    FW_VERIFY(e->in_len == 0, GATE_ST_LENGTH);
    FW_VERIFY(e->cap >= 10u, GATE_ST_LENGTH);
    uint8_t *o = e->out;
    o[0] = gate_status_flags();
    o[1] = (uint8_t)gate_last_outcome();
    fw_put_be32(o + 2, gate_last_receipt());
    fw_put_be16(o + 6, (uint16_t)gate_timeout_s());
    o[8] = (uint8_t)gate_auth_policy();
    o[9] = (uint8_t)ui_lang();
    e->out_len = 10;
    return GATE_ST_OK;
}

static gate_st_t gate_esc_set_config(gate_esc_t *e)
{
    /* Check every field first, apply only a wholly valid request. */
    bool has_t = false, has_a = false, has_l = false;
    uint32_t t = 0;
    uint8_t pol = 0, lang = 0;
    for (size_t i = 0; i < e->in_len;) {
        FW_VERIFY(e->in_len - i >= 3u, GATE_ST_LENGTH);
        uint8_t tag = e->in[i];
        size_t l = fw_get_be16(e->in + i + 1u);
        FW_VERIFY(l <= e->in_len - i - 3u, GATE_ST_LENGTH);
        const uint8_t *v = e->in + i + 3u;
        i += 3u + l;
        switch (tag) {
        case GATE_CFG_TIMEOUT:
            FW_VERIFY(!has_t && l == 2u, GATE_ST_FORMAT);
            t = fw_get_be16(v);
            FW_VERIFY(t >= GATE_TIMEOUT_MIN_S && t <= GATE_TIMEOUT_MAX_S, GATE_ST_VALUE);
            has_t = true;
            break;
        case GATE_CFG_AUTH:
            FW_VERIFY(!has_a && l == 1u, GATE_ST_FORMAT);
            pol = v[0];
            FW_VERIFY(pol == GATE_AUTH_FREE || pol == GATE_AUTH_CONFIRM, GATE_ST_VALUE);
            has_a = true;
            break;
        case GATE_CFG_LANG:
            FW_VERIFY(!has_l && l == 1u, GATE_ST_FORMAT);
            lang = v[0];
            FW_VERIFY(lang == UI_LANG_FR || lang == UI_LANG_EN, GATE_ST_VALUE);
            has_l = true;
            break;
        default:
            return GATE_ST_FORMAT;
        }
    }
    if (has_t)
        (void)gate_set_timeout_s(t);
    if (has_a)
        (void)gate_set_auth_policy(pol);
    if (has_l)
        ui_set_lang((ui_lang_t)lang);
    return GATE_ST_OK;
}

static gate_st_t gate_esc_ann_begin(gate_esc_t *e)
{
    FW_VERIFY(e->in_len == 2u, GATE_ST_LENGTH);
    return gate_ann_begin(fw_get_be16(e->in));
}

static gate_st_t gate_esc_ann_data(gate_esc_t *e)
{
    FW_VERIFY(e->in_len > 2u && e->in_len - 2u <= GATE_ANN_CHUNK_MAX, GATE_ST_LENGTH);
    return gate_ann_data(fw_get_be16(e->in), e->in + 2, e->in_len - 2u);
}

static gate_st_t gate_esc_ann_end(gate_esc_t *e)
{
    FW_VERIFY(e->in_len == 0, GATE_ST_LENGTH);
    FW_VERIFY(e->cap >= GATE_ANN_DIGEST_LEN, GATE_ST_LENGTH);
    gate_st_t st = gate_ann_end(e->out);
    if (st == GATE_ST_OK)
        e->out_len = GATE_ANN_DIGEST_LEN;
    return st;
}

static gate_st_t gate_esc_ann_clear(gate_esc_t *e)
{
    FW_VERIFY(e->in_len == 0, GATE_ST_LENGTH);
    gate_ann_clear();
    return GATE_ST_OK;
}

static gate_st_t gate_esc_receipt(gate_esc_t *e)
{
    FW_VERIFY(e->in_len == 4u, GATE_ST_LENGTH);
    size_t n = 0;
    receipts_status_t st = receipts_get(fw_get_be32(e->in), e->out, e->cap, &n);
    if (st == RECEIPTS_ERR_NOT_FOUND)
        return GATE_ST_NOT_FOUND;
    FW_VERIFY(st == RECEIPTS_OK, GATE_ST_UNAVAILABLE);
    e->out_len = n;
    return GATE_ST_OK;
}

static const struct {
    uint8_t cmd;
    gate_esc_fn run;
} gate_esc_table[] = {
    {GATE_CMD_GET_DEVICE_INFO, gate_esc_device_info}, {GATE_CMD_GET_STATUS, gate_esc_status},
    {GATE_CMD_SET_CONFIG, gate_esc_set_config},       {GATE_CMD_ANNOUNCE_BEGIN, gate_esc_ann_begin},
    {GATE_CMD_ANNOUNCE_DATA, gate_esc_ann_data},      {GATE_CMD_ANNOUNCE_END, gate_esc_ann_end},
    {GATE_CMD_ANNOUNCE_CLEAR, gate_esc_ann_clear},    {GATE_CMD_GET_RECEIPT, gate_esc_receipt},
};

bool gate_escape(const uint8_t *in, size_t in_len, uint8_t *out, size_t cap, size_t *out_len,
                 uint8_t *error)
{
    if (error != NULL)
        *error = 0; /* CCID bError CMD_NOT_SUPPORTED */
    FW_VERIFY(in != NULL && out != NULL && out_len != NULL && error != NULL, false);
    *out_len = 0;
    FW_VERIFY(in_len >= 2u && in[0] == GATE_ESCAPE_VERSION && cap >= GATE_ESC_HDR, false);
    gate_esc_fn run = NULL;
    for (size_t i = 0; i < FW_ARRAY_LEN(gate_esc_table); i++) {
        if (gate_esc_table[i].cmd == in[1])
            run = gate_esc_table[i].run;
    }
    FW_VERIFY(run != NULL, false);
    gate_esc_t e = {.in = in + 2,
                    .in_len = in_len - 2u,
                    .out = out + GATE_ESC_HDR,
                    .cap = cap - GATE_ESC_HDR,
                    .out_len = 0};
    gate_st_t st = run(&e);
    if (st != GATE_ST_OK)
        e.out_len = 0;
    out[0] = GATE_ESCAPE_VERSION;
    out[1] = in[1];
    out[2] = (uint8_t)st;
    *out_len = GATE_ESC_HDR + e.out_len;
    return true;
}
