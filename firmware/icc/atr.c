/* atr: ATR structure walk and interface byte decoding, see atr.h.
 * References: ISO/IEC 7816-3:2006 §8.2 (structure), §8.3 (global bytes),
 * §10.2 (T=0 WI), §11.4 (T=1 IFSC, BWI/CWI, EDC). */
#include "atr.h"

#include "fw_util.h"

/* Y nibble bits (§8.2.2): which of TAi, TBi, TCi, TDi follow. */
#define ATR_Y_TA 0x1u
#define ATR_Y_TB 0x2u
#define ATR_Y_TC 0x4u
#define ATR_Y_TD 0x8u

#define ATR_TS_DIRECT 0x3Bu
#define ATR_TS_INVERSE 0x3Fu

/* ISO/IEC 7816-3 Table 7: Fi and f(max) by the high nibble of TA1 (0 = RFU). */
static const uint16_t atr_fi_table[16] = {372,  372,  558,  744, 1116, 1488,
                                          1860, 0,    0,    512, 768,  1024,
                                          1536, 2048, 0,    0};
static const uint32_t atr_fmax_table[16] = {
    4000000u, 5000000u,  6000000u,  8000000u,  12000000u, 16000000u,
    20000000u, 0,        0,         5000000u,  7500000u,  10000000u,
    15000000u, 20000000u, 0,        0};
/* ISO/IEC 7816-3 Table 8: Di by the low nibble of TA1 (0 = RFU). */
static const uint8_t atr_di_table[16] = {0, 1, 2, 4, 8, 16, 32, 64,
                                         12, 20, 0, 0, 0, 0, 0, 0};

_Static_assert(FW_ARRAY_LEN(atr_fi_table) == 16, "Table 7 has 16 rows");
_Static_assert(FW_ARRAY_LEN(atr_fmax_table) == 16, "Table 7 has 16 rows");
_Static_assert(FW_ARRAY_LEN(atr_di_table) == 16, "Table 8 has 16 rows");
_Static_assert(ICC_ATR_MAX == 33, "§8.2.1: TS and at most 32 characters");

uint16_t atr_fi(uint8_t fi_index)
{
    return atr_fi_table[fi_index & 0x0Fu];
}

uint32_t atr_fmax_hz(uint8_t fi_index)
{
    return atr_fmax_table[fi_index & 0x0Fu];
}

uint8_t atr_di(uint8_t di_index)
{
    return atr_di_table[di_index & 0x0Fu];
}

static bool atr_ts_ok(uint8_t ts)
{
    return ts == ATR_TS_DIRECT || ts == ATR_TS_INVERSE;
}

/* Number of interface bytes a Y nibble announces (TA, TB, TC, TD). */
static size_t atr_y_count(uint8_t y)
{
    return (size_t)((y & ATR_Y_TA) != 0) + (size_t)((y & ATR_Y_TB) != 0) +
           (size_t)((y & ATR_Y_TC) != 0) + (size_t)((y & ATR_Y_TD) != 0);
}

icc_status_t atr_remaining(const uint8_t *buf, size_t len, size_t *more)
{
    FW_VERIFY(more != NULL, ICC_ERR_BAD_PARAM);
    FW_VERIFY(buf != NULL || len == 0, ICC_ERR_BAD_PARAM);
    *more = 0;
    if (len >= 1 && !atr_ts_ok(buf[0]))
        return ICC_ERR_BAD_ATR_TS;
    if (len < 2) {
        *more = 2 - len; /* TS and T0 */
        return ICC_OK;
    }
    FW_VERIFY(len <= ICC_ATR_MAX, ICC_ERR_BAD_ATR_TCK);

    size_t pos = 2; /* first interface byte of the current group */
    uint8_t y = (uint8_t)(buf[1] >> 4);
    bool tck = false;
    /* Each round consumes at least the TD byte, and the ATR is capped at
     * ICC_ATR_MAX, so the loop ends after at most 32 rounds. */
    for (;;) {
        size_t end = pos + atr_y_count(y);
        FW_VERIFY(end <= ICC_ATR_MAX, ICC_ERR_BAD_ATR_TCK);
        if (!(y & ATR_Y_TD)) {
            pos = end;
            break;
        }
        if (len < end) {
            *more = end - len; /* TDi is needed before going further */
            return ICC_OK;
        }
        uint8_t td = buf[end - 1];
        /* §8.2.5: TCK is present as soon as any T other than 0 is indicated. */
        if ((td & 0x0Fu) != 0)
            tck = true;
        y = (uint8_t)(td >> 4);
        pos = end;
    }
    size_t total = pos + (size_t)(buf[1] & 0x0Fu) + (tck ? 1u : 0u);
    FW_VERIFY(total <= ICC_ATR_MAX, ICC_ERR_BAD_ATR_TCK);
    FW_VERIFY(len <= total, ICC_ERR_BAD_ATR_TCK);
    *more = total - len;
    return ICC_OK;
}

static void atr_defaults(atr_info_t *out)
{
    fw_memset(out, 0, sizeof *out);
    out->fi_index = ATR_DEFAULT_FIDI >> 4;
    out->di_index = ATR_DEFAULT_FIDI & 0x0Fu;
    out->fi = atr_fi(out->fi_index);
    out->di = atr_di(out->di_index);
    out->fmax_hz = atr_fmax_hz(out->fi_index);
    out->ta1_valid = true;
    out->wi = ATR_DEFAULT_WI;
    out->ifsc = ATR_DEFAULT_IFSC;
    out->bwi = ATR_DEFAULT_BWI;
    out->cwi = ATR_DEFAULT_CWI;
}

/* TA1 (§8.3): Fi/f(max) and Di. RFU values leave the defaults in force. */
static void atr_take_ta1(atr_info_t *out, uint8_t ta1)
{
    uint8_t fi_index = (uint8_t)(ta1 >> 4);
    uint8_t di_index = (uint8_t)(ta1 & 0x0Fu);
    out->ta1_present = true;
    if (atr_fi(fi_index) == 0 || atr_di(di_index) == 0) {
        out->ta1_valid = false;
        return;
    }
    out->fi_index = fi_index;
    out->di_index = di_index;
    out->fi = atr_fi(fi_index);
    out->di = atr_di(di_index);
    out->fmax_hz = atr_fmax_hz(fi_index);
}

/* TA2 (§8.3): specific mode. */
static void atr_take_ta2(atr_info_t *out, uint8_t ta2)
{
    out->specific = true;
    out->specific_proto = (uint8_t)(ta2 & 0x0Fu);
    out->specific_can_change = (ta2 & 0x80u) == 0;
    out->specific_implicit = (ta2 & 0x10u) != 0;
}

/* Which protocol-specific bytes of T=1 / T=15 were already taken: only the
 * first TAi/TBi/TCi (i > 2) after a TD(i-1) indicating that T counts. */
typedef struct {
    bool t1_ta, t1_tb, t1_tc, t15_ta;
} atr_seen_t;

static void atr_take_group(atr_info_t *out, atr_seen_t *seen, unsigned i,
                           uint8_t t_prev, uint8_t y, const uint8_t *p)
{
    size_t k = 0;
    if (y & ATR_Y_TA) {
        uint8_t ta = p[k++];
        if (i == 1) {
            atr_take_ta1(out, ta);
        } else if (i == 2) {
            atr_take_ta2(out, ta);
        } else if (t_prev == 1 && !seen->t1_ta) {
            /* §11.4.2: IFSC 01..FE; 00 and FF are RFU. */
            seen->t1_ta = true;
            if (ta != 0x00u && ta != 0xFFu)
                out->ifsc = ta;
        } else if (t_prev == 15 && !seen->t15_ta) {
            seen->t15_ta = true;
            out->t15_present = true;
            out->clock_stop = (uint8_t)(ta >> 6);
            out->class_ind = (uint8_t)(ta & 0x3Fu);
        }
    }
    if (y & ATR_Y_TB) {
        uint8_t tb = p[k++];
        if (i == 1) {
            out->tb1_present = true;
            out->tb1 = tb;
        } else if (i > 2 && t_prev == 1 && !seen->t1_tb) {
            /* §11.4.3: BWI 0..9 (A..F RFU), CWI 0..15. */
            seen->t1_tb = true;
            uint8_t bwi = (uint8_t)(tb >> 4);
            if (bwi <= 9u)
                out->bwi = bwi;
            out->cwi = (uint8_t)(tb & 0x0Fu);
        }
    }
    if (y & ATR_Y_TC) {
        uint8_t tc = p[k];
        if (i == 1) {
            out->extra_guard = tc; /* §8.3: N */
        } else if (i == 2) {
            /* §10.2: WI; 00 is RFU, keep the default. */
            if (tc != 0)
                out->wi = tc;
        } else if (t_prev == 1 && !seen->t1_tc) {
            seen->t1_tc = true;
            out->crc = (tc & 0x01u) != 0; /* §11.4.4 */
        }
    }
}

icc_status_t atr_parse(const uint8_t *buf, size_t len, atr_info_t *out)
{
    FW_VERIFY(out != NULL, ICC_ERR_BAD_PARAM);
    FW_VERIFY(buf != NULL || len == 0, ICC_ERR_BAD_PARAM);
    atr_defaults(out);
    FW_VERIFY(len >= 2, len == 0 || atr_ts_ok(buf[0]) ? ICC_ERR_BAD_ATR_TCK
                                                      : ICC_ERR_BAD_ATR_TS);
    size_t more = 0;
    icc_status_t st = atr_remaining(buf, len, &more);
    if (st != ICC_OK)
        return st;
    FW_VERIFY(more == 0, ICC_ERR_BAD_ATR_TCK); /* truncated */

    /* atr_remaining proved that the structure ends exactly at len: the walk
     * below stays in bounds. */
    fw_memcpy(out->raw, buf, len);
    out->len = len;
    out->inverse = buf[0] == ATR_TS_INVERSE;
    out->t0 = buf[1];

    atr_seen_t seen = {false, false, false, false};
    size_t pos = 2;
    uint8_t y = (uint8_t)(buf[1] >> 4);
    uint8_t t_prev = 0;
    bool any_td = false;
    for (unsigned i = 1;; i++) {
        size_t n = atr_y_count(y);
        FW_ASSERT(fw_range_ok(pos, n, len), ICC_ERR_BAD_ATR_TCK);
        atr_take_group(out, &seen, i, t_prev, y, buf + pos);
        pos += n;
        if (!(y & ATR_Y_TD))
            break;
        uint8_t td = buf[pos - 1];
        t_prev = (uint8_t)(td & 0x0Fu);
        out->protocols |= (uint16_t)(1u << t_prev);
        if (!any_td)
            out->first_protocol = t_prev;
        any_td = true;
        y = (uint8_t)(td >> 4);
    }
    if (!any_td)
        out->protocols = 1u << ICC_PROTO_T0; /* §8.2.3: T=0 by default */

    out->hist_len = (uint8_t)(buf[1] & 0x0Fu);
    FW_ASSERT(fw_range_ok(pos, out->hist_len, len), ICC_ERR_BAD_ATR_TCK);
    fw_memcpy(out->hist, buf + pos, out->hist_len);
    pos += out->hist_len;

    /* §8.2.5: TCK when any T other than T=0 is indicated; XOR of T0..TCK = 0. */
    out->tck_present = (out->protocols & (uint16_t)~(1u << ICC_PROTO_T0)) != 0;
    if (out->tck_present) {
        FW_ASSERT(pos + 1 == len, ICC_ERR_BAD_ATR_TCK);
        uint8_t x = 0;
        for (size_t k = 1; k < len; k++)
            x ^= buf[k];
        FW_VERIFY(x == 0, ICC_ERR_BAD_ATR_TCK);
    } else {
        FW_ASSERT(pos == len, ICC_ERR_BAD_ATR_TCK);
    }
    return ICC_OK;
}
