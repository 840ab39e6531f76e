/* ccid_msg: parser/validator of PC_to_RDR messages (CCID rev 1.1 §6.1), see
 * ccid_msg.h. Pure: no state, no port calls. */
#include "ccid_msg.h"

#include "fw_util.h"

/* Validates the message-specific fields of a message whose header already
 * passed; returns 0 when they are good, else the offset of the bad field. */
typedef uint8_t (*ccid_check_fn_t)(const ccid_msg_t *m);

typedef struct {
    uint8_t type;
    uint8_t rsp_type;
    uint16_t min_len; /* dwLength bounds */
    uint16_t max_len;
    ccid_check_fn_t check; /* NULL: nothing more to check */
} ccid_msg_rule_t;

/* ISO/IEC 7816-3 §7.1 Table 7 (Fi) and Table 8 (Di); 0 marks an RFU index. */
static const uint16_t ccid_fi_table[16] = {372, 372, 558, 744,  1116, 1488, 1860, 0,
                                           0,   512, 768, 1024, 1536, 2048, 0,    0};
static const uint8_t ccid_di_table[16] = {0, 1, 2, 4, 8, 16, 32, 64, 12, 20, 0, 0, 0, 0, 0, 0};

bool ccid_msg_fidi_rate(uint8_t fidi, uint32_t clock_hz, uint32_t *bps)
{
    uint16_t f = ccid_fi_table[fidi >> 4];
    uint8_t d = ccid_di_table[fidi & 0x0Fu];
    FW_VERIFY(f != 0 && d != 0, false);
    /* D <= 64: keep D * f within 32 bits. */
    if (clock_hz > UINT32_MAX / 64u)
        clock_hz = UINT32_MAX / 64u;
    if (bps != NULL)
        *bps = (clock_hz * d + f / 2u) / f;
    return true;
}

/* §6.1.1 bPowerSelect: 0 automatic, 1 5 V, 2 3 V, 3 1.8 V. */
static uint8_t ccid_check_power_on(const ccid_msg_t *m)
{
    return m->param[0] <= 3u ? 0u : CCID_OFF_PARAM;
}

/* §6.1.4 XfrBlock / §6.1.11 Secure: wLevelParameter must be 0 for a short
 * APDU level exchange (dwFeatures, §5.1: the APDU begins and ends here). */
static uint8_t ccid_check_level(const ccid_msg_t *m)
{
    return (m->param[1] == 0 && m->param[2] == 0) ? 0u : CCID_OFF_LEVEL;
}

/* §6.1.7 SetParameters: bProtocolNum 0 (T=0, 5 bytes) or 1 (T=1, 7 bytes),
 * then each field of abProtocolDataStructure (Table 6.1-6 / 6.1-7). */
static uint8_t ccid_check_set_params(const ccid_msg_t *m)
{
    uint8_t proto = m->param[0];
    if (proto > 1u)
        return CCID_OFF_PARAM;
    if (m->data_len != (proto == 0 ? CCID_PARAMS_T0_LEN : CCID_PARAMS_T1_LEN))
        return CCID_OFF_LENGTH;
    const uint8_t *d = m->data;
    uint32_t rate = 0;
    /* bmFindexDindex: defined Fi and Di, within dwMaxDataRate at our clock. */
    if (!ccid_msg_fidi_rate(d[0], CCID_CLOCK_KHZ * 1000u, &rate) || rate > CCID_MAX_DATA_RATE)
        return CCID_OFF_DATA;
    if (proto == 0) {
        /* bmTCCKST0: only bit 1 (convention) may be set. */
        if ((d[1] & ~0x02u) != 0)
            return CCID_OFF_DATA + 1u;
        /* bWaitingIntegerT0: WI 0 is reserved (ISO/IEC 7816-3 §10.2). */
        if (d[3] == 0)
            return CCID_OFF_DATA + 3u;
    } else {
        /* bmTCCKST1: 0001 00xx b (bit 0 checksum, bit 1 convention). */
        if ((d[1] & ~0x03u) != 0x10u)
            return CCID_OFF_DATA + 1u;
        /* bWaitingIntegersT1: BWI 0..9 (ISO/IEC 7816-3 §11.4.3). */
        if ((d[3] >> 4) > 9u)
            return CCID_OFF_DATA + 3u;
        /* bIFSC 1..254 (ISO/IEC 7816-3 §11.4.2). */
        if (d[5] == 0 || d[5] == 0xFFu)
            return CCID_OFF_DATA + 5u;
        /* bNadValue: only 0, dwFeatures has no "NAD other than 00" bit. */
        if (d[6] != 0)
            return CCID_OFF_DATA + 6u;
    }
    /* bClockStop 0..3. */
    if (d[4] > 3u)
        return CCID_OFF_DATA + 4u;
    return 0;
}

/* §6.1.9 IccClock: bClockCommand 0 restart, 1 stop. */
static uint8_t ccid_check_icc_clock(const ccid_msg_t *m)
{
    return m->param[0] <= 1u ? 0u : CCID_OFF_PARAM;
}

/* §6.1.10 T0APDU: bmChanges uses bits 0 and 1 only. */
static uint8_t ccid_check_t0apdu(const ccid_msg_t *m)
{
    return (m->param[0] & ~0x03u) == 0 ? 0u : CCID_OFF_PARAM;
}

/* §6.1.12 Mechanical: bFunction 1..5. */
static uint8_t ccid_check_mechanical(const ccid_msg_t *m)
{
    return (m->param[0] >= 1u && m->param[0] <= 5u) ? 0u : CCID_OFF_PARAM;
}

/* The messages of §6.1 a reader must answer, with their answer type
 * (Table 6.2-1) and dwLength bounds. */
static const ccid_msg_rule_t ccid_rules[] = {
    {CCID_PC_TO_RDR_ICC_POWER_ON, CCID_RDR_TO_PC_DATA_BLOCK, 0, 0, ccid_check_power_on},
    {CCID_PC_TO_RDR_ICC_POWER_OFF, CCID_RDR_TO_PC_SLOT_STATUS, 0, 0, NULL},
    {CCID_PC_TO_RDR_GET_SLOT_STATUS, CCID_RDR_TO_PC_SLOT_STATUS, 0, 0, NULL},
    {CCID_PC_TO_RDR_XFR_BLOCK, CCID_RDR_TO_PC_DATA_BLOCK, 0, CCID_MAX_DATA_LEN, ccid_check_level},
    {CCID_PC_TO_RDR_GET_PARAMETERS, CCID_RDR_TO_PC_PARAMETERS, 0, 0, NULL},
    {CCID_PC_TO_RDR_RESET_PARAMETERS, CCID_RDR_TO_PC_PARAMETERS, 0, 0, NULL},
    {CCID_PC_TO_RDR_SET_PARAMETERS, CCID_RDR_TO_PC_PARAMETERS, CCID_PARAMS_T0_LEN,
     CCID_PARAMS_T1_LEN, ccid_check_set_params},
    {CCID_PC_TO_RDR_ESCAPE, CCID_RDR_TO_PC_ESCAPE, 0, CCID_MAX_DATA_LEN, NULL},
    {CCID_PC_TO_RDR_ICC_CLOCK, CCID_RDR_TO_PC_SLOT_STATUS, 0, 0, ccid_check_icc_clock},
    {CCID_PC_TO_RDR_T0APDU, CCID_RDR_TO_PC_SLOT_STATUS, 0, 0, ccid_check_t0apdu},
    {CCID_PC_TO_RDR_SECURE, CCID_RDR_TO_PC_DATA_BLOCK, 0, CCID_MAX_DATA_LEN, ccid_check_level},
    {CCID_PC_TO_RDR_MECHANICAL, CCID_RDR_TO_PC_SLOT_STATUS, 0, 0, ccid_check_mechanical},
    {CCID_PC_TO_RDR_ABORT, CCID_RDR_TO_PC_SLOT_STATUS, 0, 0, NULL},
    {CCID_PC_TO_RDR_SET_DATA_RATE_CLK, CCID_RDR_TO_PC_DATA_RATE_CLK, 8, 8, NULL},
};

_Static_assert(CCID_MAX_DATA_LEN <= UINT16_MAX, "dwLength bounds fit the rule table");

static const ccid_msg_rule_t *ccid_rule(uint8_t type)
{
    for (size_t i = 0; i < FW_ARRAY_LEN(ccid_rules); i++) {
        if (ccid_rules[i].type == type)
            return &ccid_rules[i];
    }
    return NULL;
}

uint8_t ccid_msg_response_type(uint8_t pc_to_rdr_type)
{
    const ccid_msg_rule_t *r = ccid_rule(pc_to_rdr_type);
    return r != NULL ? r->rsp_type : CCID_RDR_TO_PC_SLOT_STATUS;
}

ccid_parse_status_t ccid_msg_parse(const uint8_t *buf, size_t len, ccid_msg_t *out)
{
    FW_ASSERT(out != NULL, CCID_PARSE_TOO_SHORT);
    fw_memset(out, 0, sizeof *out);
    FW_VERIFY(buf != NULL && len >= CCID_HEADER_LEN, CCID_PARSE_TOO_SHORT);

    out->type = buf[0];
    out->length = fw_get_le32(buf + CCID_OFF_LENGTH);
    out->slot = buf[CCID_OFF_SLOT];
    out->seq = buf[CCID_OFF_SEQ];
    out->param[0] = buf[7];
    out->param[1] = buf[8];
    out->param[2] = buf[9];
    out->rsp_type = ccid_msg_response_type(out->type);

    const ccid_msg_rule_t *rule = ccid_rule(out->type);
    if (rule == NULL)
        return CCID_PARSE_UNKNOWN;

    /* dwLength must describe exactly the rest of the transfer and stay within
     * the message's own bounds (and so within dwMaxCCIDMessageLength). */
    size_t avail = len - CCID_HEADER_LEN;
    if ((uint64_t)out->length != (uint64_t)avail || out->length < rule->min_len ||
        out->length > rule->max_len) {
        out->bad_field = CCID_OFF_LENGTH;
        return CCID_PARSE_BAD_FIELD;
    }
    out->data = buf + CCID_HEADER_LEN;
    out->data_len = avail;

    /* One slot only (bMaxSlotIndex 0). */
    if (out->slot != 0) {
        out->bad_field = CCID_OFF_SLOT;
        return CCID_PARSE_BAD_FIELD;
    }
    if (rule->check != NULL) {
        uint8_t bad = rule->check(out);
        if (bad != 0) {
            out->bad_field = bad;
            return CCID_PARSE_BAD_FIELD;
        }
    }
    return CCID_PARSE_OK;
}

void ccid_msg_put_header(uint8_t out[CCID_HEADER_LEN], uint8_t type, uint32_t length, uint8_t slot,
                         uint8_t seq, uint8_t status, uint8_t error, uint8_t specific)
{
    out[0] = type;
    fw_put_le32(out + CCID_OFF_LENGTH, length);
    out[CCID_OFF_SLOT] = slot;
    out[CCID_OFF_SEQ] = seq;
    out[7] = status;
    out[8] = error;
    out[9] = specific;
}
