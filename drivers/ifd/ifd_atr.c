/* ifd_atr: ATR interpretation and SetParameters choice (ISO/IEC 7816-3 §8-§11,
 * CCID rev 1.1 §6.1.7). */
#include "ifd_atr.h"

#include <string.h>

/* ISO/IEC 7816-3 §8.3, Table 7 (Fi) and Table 8 (Di); 0 = RFU. */
static const uint16_t fi_table[16] = {372, 372, 558, 744,  1116, 1488, 1860, 0,
                                      0,   512, 768, 1024, 1536, 2048, 0,    0};
static const uint8_t di_table[16] = {0, 1, 2, 4, 8, 16, 32, 64, 12, 20, 0, 0, 0, 0, 0, 0};

uint32_t ifd_atr_fi(uint8_t fidi)
{
    return fi_table[fidi >> 4];
}

uint32_t ifd_atr_di(uint8_t fidi)
{
    return di_table[fidi & 0x0Fu];
}

ifd_st_t ifd_atr_parse(const uint8_t *atr, size_t len, ifd_atr_t *out)
{
    IFD_VERIFY(atr != NULL && out != NULL, IFD_ST_PARAM);
    memset(out, 0, sizeof *out);
    IFD_VERIFY(len >= 2 && len <= IFD_ATR_MAX, IFD_ST_PROTO);
    IFD_VERIFY(atr[0] == 0x3B || atr[0] == 0x3F, IFD_ST_PROTO);
    out->inverse = atr[0] == 0x3F;

    size_t pos = 1;
    uint8_t y = atr[pos] >> 4; /* Y1 from T0 */
    uint8_t k = atr[pos] & 0x0Fu;
    pos++;
    bool tck_needed = false;
    uint8_t prev_t = 0xFF; /* protocol qualifying the current group (none for group 1, 2) */
    /* Group i (1-based) holds TAi TBi TCi TDi as announced by Y(i). */
    for (unsigned i = 1; i <= IFD_ATR_GROUPS; i++) {
        int16_t ta = -1, tb = -1, tc = -1, td = -1;
        if (y & 0x1u) {
            IFD_VERIFY(pos < len, IFD_ST_PROTO);
            ta = atr[pos++];
        }
        if (y & 0x2u) {
            IFD_VERIFY(pos < len, IFD_ST_PROTO);
            tb = atr[pos++];
        }
        if (y & 0x4u) {
            IFD_VERIFY(pos < len, IFD_ST_PROTO);
            tc = atr[pos++];
        }
        if (y & 0x8u) {
            IFD_VERIFY(pos < len, IFD_ST_PROTO);
            td = atr[pos++];
        }
        if (i == 1) {
            if (ta >= 0) {
                out->has_ta1 = true;
                out->ta1 = (uint8_t)ta;
            }
            if (tc >= 0) {
                out->has_tc1 = true;
                out->tc1 = (uint8_t)tc;
            }
        } else if (i == 2) {
            if (ta >= 0) {
                out->has_ta2 = true;
                out->ta2 = (uint8_t)ta;
            }
            if (tc >= 0) {
                out->has_tc2 = true;
                out->tc2 = (uint8_t)tc;
            }
        }
        /* §8.2.3: from group 3 on, bytes are specific to the protocol of TD(i-1). */
        if (i >= 3 && prev_t == 1) {
            if (ta >= 0 && !out->has_t1_ta) {
                out->has_t1_ta = true;
                out->t1_ta = (uint8_t)ta;
            }
            if (tb >= 0 && !out->has_t1_tb) {
                out->has_t1_tb = true;
                out->t1_tb = (uint8_t)tb;
            }
            if (tc >= 0 && !out->has_t1_tc) {
                out->has_t1_tc = true;
                out->t1_tc = (uint8_t)tc;
            }
        }
        if (i >= 3 && prev_t == 15 && ta >= 0 && !out->has_t15_ta) {
            out->has_t15_ta = true;
            out->t15_ta = (uint8_t)ta;
        }
        if (td < 0)
            break;
        uint8_t t = (uint8_t)td & 0x0Fu;
        if (i == 1)
            out->first_proto = t;
        if (t < 8)
            out->protocols |= (uint8_t)(1u << t);
        if (t != 0)
            tck_needed = true; /* §8.2.5: TCK absent only if T=0 alone */
        prev_t = t;
        y = (uint8_t)td >> 4;
        IFD_VERIFY(i < IFD_ATR_GROUPS || y == 0, IFD_ST_PROTO);
    }
    if (out->protocols == 0)
        out->protocols = 0x01; /* no TD1: T=0 only (§8.2.3) */
    IFD_VERIFY(k <= len - pos, IFD_ST_PROTO);
    out->hist_len = k;
    pos += k;
    if (tck_needed) {
        IFD_VERIFY(pos < len, IFD_ST_PROTO);
        uint8_t x = 0;
        for (size_t j = 1; j <= pos; j++)
            x ^= atr[j];
        out->tck_ok = x == 0;
        pos++;
    } else {
        out->tck_ok = true;
    }
    IFD_VERIFY(pos == len, IFD_ST_PROTO);
    return IFD_ST_OK;
}

static uint32_t rate_bps(uint8_t fidi, uint32_t clock_khz)
{
    uint32_t f = ifd_atr_fi(fidi), d = ifd_atr_di(fidi);
    if (f == 0 || d == 0)
        return 0;
    return (uint32_t)((uint64_t)clock_khz * 1000u * d / f);
}

/* Fi/Di to request: TA1 (or PPS1) if usable, a slower Di of the same Fi if
 * TA1 is too fast for the reader, else 0 (keep the default). */
static uint8_t choose_fidi(uint8_t want, const ifd_ccid_desc_t *desc)
{
    uint32_t deflt = rate_bps(0x11, desc->default_clock_khz);
    uint32_t r = rate_bps(want, desc->default_clock_khz);
    if (r == 0 || r <= deflt)
        return 0;
    if (r <= desc->max_data_rate)
        return want;
    /* Too fast: the fastest Di below TA1's with the same Fi (ISO/IEC 7816-3
     * §9.2: PPS1 may propose a smaller Di than TA1's). */
    uint8_t best = 0;
    uint32_t best_rate = 0;
    uint32_t want_d = ifd_atr_di(want);
    for (uint8_t di = 1; di < 16; di++) {
        uint8_t cand = (uint8_t)((want & 0xF0u) | di);
        uint32_t d = ifd_atr_di(cand);
        uint32_t cr = rate_bps(cand, desc->default_clock_khz);
        if (d == 0 || d >= want_d || cr <= deflt || cr > desc->max_data_rate)
            continue;
        if (cr > best_rate) {
            best = cand;
            best_rate = cr;
        }
    }
    return best;
}

void ifd_params_default(const ifd_atr_t *atr, ifd_params_t *out)
{
    memset(out, 0, sizeof *out);
    out->protocol = atr->first_proto == 1 ? 1 : 0;
    out->fidi = 0x11;
    /* Specific mode without implicit values: the card already runs at TA1. */
    if (atr->has_ta2 && !(atr->ta2 & 0x10u) && atr->has_ta1 && ifd_atr_fi(atr->ta1) &&
        ifd_atr_di(atr->ta1))
        out->fidi = atr->ta1;
    if (atr->has_ta2)
        out->protocol = (atr->ta2 & 0x0Fu) == 1 ? 1 : 0;
    out->tcckst = (uint8_t)(atr->inverse ? 0x02u : 0x00u);
    out->guard_time = atr->has_tc1 ? atr->tc1 : 0;
    if (out->protocol == 0) {
        /* ISO/IEC 7816-3 §10.2: WI = TC2, default 10; 0 is reserved. */
        out->waiting = (atr->has_tc2 && atr->tc2) ? atr->tc2 : 10;
    } else {
        out->tcckst |= 0x10u;
        if (atr->has_t1_tc && (atr->t1_tc & 0x01u))
            out->tcckst |= 0x01u; /* §11.4.4: CRC */
        /* §11.4.3: BWI 4, CWI 13 by default. */
        out->waiting = atr->has_t1_tb ? atr->t1_tb : 0x4D;
        /* §11.4.2: IFSC from the first TA for T=1, 1..254, default 32. */
        out->ifsc = (atr->has_t1_ta && atr->t1_ta >= 1 && atr->t1_ta <= 254) ? atr->t1_ta : 32;
        out->nad = 0;
    }
    /* §8.3: XI (bits 8-7 of the first TA after T=15): 00 clock stop not
     * supported, 01 low, 10 high, 11 no preference — same coding as bClockStop. */
    out->clock_stop = atr->has_t15_ta ? (uint8_t)(atr->t15_ta >> 6) : 0;
}

ifd_st_t ifd_params_choose(const ifd_atr_t *atr, const ifd_ccid_desc_t *desc, uint8_t protocol,
                           int pts1, ifd_params_t *out, bool *send)
{
    IFD_VERIFY(atr != NULL && desc != NULL && out != NULL && send != NULL, IFD_ST_PARAM);
    IFD_VERIFY(protocol <= 1, IFD_ST_UNSUPPORTED);
    IFD_VERIFY(desc->protocols & (1u << protocol), IFD_ST_UNSUPPORTED);
    IFD_VERIFY(atr->protocols & (1u << protocol), IFD_ST_UNSUPPORTED);

    bool specific = atr->has_ta2;
    bool auto_pps = (desc->features & (IFD_FEAT_AUTO_PPS_CUR | IFD_FEAT_AUTO_PPS_PROP)) != 0;
    if (specific) {
        /* §8.3 TA2: the card runs the protocol it names; b5 = 1 means
         * implicit parameters this host does not know. */
        IFD_VERIFY((atr->ta2 & 0x0Fu) == protocol, IFD_ST_UNSUPPORTED);
        IFD_VERIFY(!(atr->ta2 & 0x10u), IFD_ST_UNSUPPORTED);
    } else if (!auto_pps) {
        /* No PPS possible: the card stays in its first offered protocol. */
        IFD_VERIFY(atr->first_proto == protocol, IFD_ST_UNSUPPORTED);
    }

    /* Build the structure for this protocol from the ATR. */
    ifd_atr_t view = *atr;
    view.first_proto = protocol;
    view.has_ta2 = false; /* protocol already checked; speed handled below */
    ifd_params_default(&view, out);
    out->protocol = protocol;

    uint8_t fidi = 0x11;
    if (specific) {
        if (atr->has_ta1) {
            /* The card only works at TA1: the reader must support it. */
            uint32_t r = rate_bps(atr->ta1, desc->default_clock_khz);
            IFD_VERIFY(r != 0 && r <= desc->max_data_rate, IFD_ST_UNSUPPORTED);
            fidi = atr->ta1;
        }
    } else if (auto_pps) {
        uint8_t want = pts1 >= 0 ? (uint8_t)pts1 : (atr->has_ta1 ? atr->ta1 : 0x11);
        uint8_t c = choose_fidi(want, desc);
        if (c)
            fidi = c;
    }
    out->fidi = fidi;
    *send = !(desc->features & IFD_FEAT_AUTO_PPS_PROP);
    return IFD_ST_OK;
}

size_t ifd_params_encode(const ifd_params_t *p, uint8_t out[7])
{
    out[0] = p->fidi;
    out[1] = p->tcckst;
    out[2] = p->guard_time;
    out[3] = p->waiting;
    out[4] = p->clock_stop;
    if (p->protocol == 0)
        return 5;
    out[5] = p->ifsc;
    out[6] = p->nad;
    return 7;
}

uint32_t ifd_params_timeout_ms(const ifd_params_t *p, uint32_t clock_khz)
{
    uint64_t f_hz = (uint64_t)(clock_khz ? clock_khz : 4000u) * 1000u;
    uint64_t fi = ifd_atr_fi(p->fidi), di = ifd_atr_di(p->fidi);
    if (fi == 0 || di == 0) {
        fi = 372;
        di = 1;
    }
    /* All in microseconds; every factor is bounded (WI ≤ 255, BWI ≤ 15). */
    uint64_t etu_us_x1000 = fi * 1000000u * 1000u / (di * f_hz); /* etu in ns */
    uint64_t wait_us;
    if (p->protocol == 0) {
        uint64_t wi = p->waiting ? p->waiting : 10;
        wait_us = wi * 960u * fi * 1000000u / f_hz;
    } else {
        uint64_t bwi = p->waiting >> 4;
        wait_us = 11u * etu_us_x1000 / 1000u + (1ull << bwi) * 960u * 372u * 1000000u / f_hz;
    }
    /* 261 + 258 characters of a largest short APDU exchange, 12 etu each. */
    uint64_t wire_us = (261u + 258u) * 12u * etu_us_x1000 / 1000u;
    uint64_t t_ms = 3u * (wait_us + wire_us) / 1000u;
    if (t_ms < 10000u)
        t_ms = 10000u;
    if (t_ms > 600000u)
        t_ms = 600000u;
    return (uint32_t)t_ms;
}
