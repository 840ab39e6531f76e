/* icc: the one card slot, see icc.h. Owns the contacts (activation §6.2,
 * deactivation §6.4), the reception of the ATR (§8), the parameters in force
 * (default / TA2 specific mode / PPS §9) and the dispatch of APDUs to the
 * T=0 (t0.c) or T=1 (t1.c) engine. */
#include "icc.h"

#include "atr.h"
#include "fw_util.h"
#include "icc_line.h"
#include "port_icc.h"
#include "pps.h"
#include "t0.h"
#include "t1.h"

#define ICC_RST_LOW_CLOCKS 500u    /* §6.2.2/§6.2.3: RST low >= 400 clocks */
#define ICC_ATR_FIRST_CLOCKS 40000u /* §8.1: TS within 400..40000 clocks */
#define ICC_INITIAL_WT_ETU 9600u   /* §8.2, §9.1: initial waiting time */
/* A port may hand over characters in bursts (the simulated card delivers a
 * whole ATR frame after its wire time, docs/simulation.md §2): TS is awaited
 * for 40000 clocks plus the wire time of a longest ATR (33 chars of 12 etu). */
#define ICC_ATR_BURST_ETU (ICC_ATR_MAX * 12u)
#define ICC_OFF_TIME_US 10000u     /* VCC off before a new cold reset */
#define ICC_T0_GUARD_ETU 16u       /* §7.2: 16 etu between opposite directions */
#define ICC_T1_BGT_ETU 22u         /* §11.2: block guard time */
#define ICC_RX_CHAR_ETU 10u        /* a received character ends ~10 etu after its start */
#define ICC_TS_DIRECT 0x3Bu
#define ICC_TS_INVERSE 0x3Fu
#define ICC_TS_INVERSE_RAW 0x03u   /* 3F of the inverse convention read as direct */
#define ICC_TCCKST_T1 0x10u        /* CCID Table 6.1-7: bmTCCKST1 b7-b2 = 000100 */
#define ICC_TCCKST_INVERSE 0x02u
#define ICC_TCCKST_CRC 0x01u

_Static_assert(ICC_ATR_MAX >= 2, "TS and T0");

static struct {
    bool vcc_on;
    bool powered;     /* ATR received and accepted */
    bool pps_allowed; /* §9.1: PPS only as the first exchange after the ATR */
    uint32_t clock_hz;
    atr_info_t atr;
    icc_params_t params;
    icc_wait_hook_t hook;
    void *hook_ctx;
    t1_link_t t1;
} slot;

static uint16_t icc_f(uint8_t fidi)
{
    return atr_fi((uint8_t)(fidi >> 4));
}

static uint8_t icc_d(uint8_t fidi)
{
    return atr_di((uint8_t)(fidi & 0x0Fu));
}

/* §6.4: RST low, clock stopped, VCC off. */
static void icc_deactivate(void)
{
    port_icc_rst(false);
    port_icc_clock(0);
    port_icc_vcc(false);
    slot.vcc_on = false;
    slot.powered = false;
    slot.pps_allowed = false;
    icc_line_forget_rx();
}

void icc_init(void)
{
    fw_memset(&slot, 0, sizeof slot);
    slot.clock_hz = ICC_DEFAULT_CLOCK_HZ;
    icc_line_reset();
    icc_deactivate();
}

bool icc_present(void)
{
    return port_icc_present();
}

bool icc_powered(void)
{
    if (slot.powered && !port_icc_present())
        icc_deactivate(); /* the card left: contacts off */
    return slot.powered;
}

uint32_t icc_clock_hz(void)
{
    return slot.clock_hz;
}

void icc_set_wait_hook(icc_wait_hook_t hook, void *ctx)
{
    slot.hook = hook;
    slot.hook_ctx = ctx;
    slot.t1.hook = hook;
    slot.t1.hook_ctx = ctx;
}

void icc_get_stats(icc_stats_t *out)
{
    icc_line_get_stats(out);
}

/* Receives the ATR character by character (§8.1, §8.2): TS within 40000
 * clocks of RST high (plus ICC_ATR_BURST_ETU), every further character
 * within 9600 etu. */
static icc_status_t icc_read_atr(uint8_t buf[ICC_ATR_MAX], size_t *len)
{
    const uint64_t first_us = icc_clocks_us(ICC_ATR_FIRST_CLOCKS, slot.clock_hz) +
                              icc_etu_us(ICC_ATR_BURST_ETU, 372, 1, slot.clock_hz);
    const uint64_t wt_us = icc_etu_us(ICC_INITIAL_WT_ETU, 372, 1, slot.clock_hz);
    size_t n = 0, more = 1;
    while (more > 0) {
        FW_ASSERT(n < ICC_ATR_MAX, ICC_ERR_BAD_ATR_TCK);
        icc_status_t st = icc_line_recv(&buf[n], n == 0 ? first_us : wt_us);
        if (st == ICC_ERR_MUTE && n > 0)
            return ICC_ERR_BAD_ATR_TCK; /* truncated ATR */
        if (st != ICC_OK)
            return st;
        if (n == 0) {
            /* §8.1: TS sets the convention for every later character. */
            if (buf[0] == ICC_TS_INVERSE_RAW)
                buf[0] = ICC_TS_INVERSE;
            if (buf[0] == ICC_TS_INVERSE)
                port_icc_set_convention(true);
        }
        n++;
        st = atr_remaining(buf, n, &more);
        if (st != ICC_OK)
            return st;
    }
    *len = n;
    return ICC_OK;
}

/* One reset: cold (§6.2.2: VCC, then CLK with RST low) or warm (§6.2.3: RST
 * low with VCC and CLK on), RST held low >= 400 clocks, then RST high. */
static icc_status_t icc_reset(bool cold, uint8_t buf[ICC_ATR_MAX], size_t *len)
{
    if (cold) {
        if (slot.vcc_on) {
            icc_deactivate();
            icc_line_delay_us(ICC_OFF_TIME_US);
        }
        slot.clock_hz = ICC_DEFAULT_CLOCK_HZ;
    }
    port_icc_rst(false);
    port_icc_set_convention(false);
    port_icc_set_timing(372, 1, 0); /* §7.1: Fd, Dd, no extra guard time */
    if (cold) {
        port_icc_vcc(true);
        port_icc_clock(slot.clock_hz);
        slot.vcc_on = true;
    }
    icc_line_delay_us(icc_clocks_us(ICC_RST_LOW_CLOCKS, slot.clock_hz));
    port_icc_flush();
    icc_line_forget_rx();
    if (!port_icc_present())
        return ICC_ERR_ABSENT;
    port_icc_rst(true);
    return icc_read_atr(buf, len);
}

/* The protocol a negotiable-mode card starts with: the first one offered
 * if we do it, else the other one we do (§8.2.3, §9.1). */
static uint8_t icc_first_supported(const atr_info_t *a)
{
    if (a->first_protocol <= ICC_PROTO_T1 &&
        (a->protocols & (1u << a->first_protocol)))
        return a->first_protocol;
    if (a->protocols & (1u << ICC_PROTO_T0))
        return ICC_PROTO_T0;
    if (a->protocols & (1u << ICC_PROTO_T1))
        return ICC_PROTO_T1;
    return 0xFFu;
}

/* CCID abProtocolDataStructure for protocol proto and Fi/Di fidi, the rest
 * from the ATR (CCID rev 1.1 §6.1.7, Tables 6.1-6 and 6.1-7). */
static void icc_params_for(const atr_info_t *a, uint8_t proto, uint8_t fidi,
                           icc_params_t *p)
{
    fw_memset(p, 0, sizeof *p);
    p->protocol = proto;
    p->fidi = fidi;
    p->guard_time = a->extra_guard;
    p->clock_stop = a->clock_stop;
    if (proto == ICC_PROTO_T0) {
        p->tcckst = a->inverse ? ICC_TCCKST_INVERSE : 0u;
        p->waiting = a->wi;
    } else {
        p->tcckst = (uint8_t)(ICC_TCCKST_T1 | (a->inverse ? ICC_TCCKST_INVERSE : 0u) |
                              (a->crc ? ICC_TCCKST_CRC : 0u));
        p->waiting = (uint8_t)(a->bwi << 4 | a->cwi);
        p->ifsc = a->ifsc;
        p->nad = 0;
    }
}

static uint8_t icc_atr_fidi(const atr_info_t *a)
{
    return (uint8_t)(a->fi_index << 4 | a->di_index);
}

/* Lowers the clock when the card's f(max) (TA1, Table 7) is below it. */
static void icc_limit_clock(uint32_t fmax_hz)
{
    if (fmax_hz != 0 && fmax_hz < slot.clock_hz) {
        slot.clock_hz = fmax_hz;
        port_icc_clock(slot.clock_hz);
    }
}

/* T=0 work waiting time: WT = WI * 960 * Fi / f (§10.2), Fi from TA1 (the
 * larger of it and the F in force, in case PPS was not made). */
static uint64_t icc_t0_wwt_us(void)
{
    uint8_t wi = slot.params.waiting != 0 ? slot.params.waiting : ATR_DEFAULT_WI;
    uint32_t fi = icc_f(slot.params.fidi);
    if (slot.atr.fi > fi)
        fi = slot.atr.fi;
    return icc_clocks_us((uint64_t)wi * 960u * fi, slot.clock_hz);
}

/* Applies slot.params to the port and the protocol engine. new_link: the
 * card just answered a reset or PPS, so T=1 sequence numbers start at 0;
 * otherwise they are kept (the card keeps its own). */
static icc_status_t icc_commit_params(bool new_link)
{
    const icc_params_t *p = &slot.params;
    const uint16_t f = icc_f(p->fidi);
    const uint8_t d = icc_d(p->fidi);
    FW_ASSERT(f != 0 && d != 0, ICC_ERR_BAD_PARAM);
    port_icc_set_timing(f, d, p->guard_time);
    if (p->protocol == ICC_PROTO_T0) {
        icc_line_set_turnaround(
            icc_etu_us(ICC_T0_GUARD_ETU - ICC_RX_CHAR_ETU, f, d, slot.clock_hz));
        return ICC_OK;
    }
    FW_ASSERT(p->protocol == ICC_PROTO_T1, ICC_ERR_NOT_SUPPORTED);
    icc_line_set_turnaround(
        icc_etu_us(ICC_T1_BGT_ETU - ICC_RX_CHAR_ETU, f, d, slot.clock_hz));
    const uint8_t ns = slot.t1.ns, nr = slot.t1.nr;
    t1_link_reset(&slot.t1, p->ifsc, p->nad, (p->tcckst & ICC_TCCKST_CRC) != 0);
    if (!new_link) {
        slot.t1.ns = ns;
        slot.t1.nr = nr;
    }
    uint8_t bwi = (uint8_t)(p->waiting >> 4), cwi = (uint8_t)(p->waiting & 0x0Fu);
    /* §11.4.3: BWT = 11 etu + 2^BWI * 960 * 372 / f; CWT = (11 + 2^CWI) etu. */
    slot.t1.bwt_us = icc_etu_us(11, f, d, slot.clock_hz) +
                     icc_clocks_us((uint64_t)(1u << bwi) * 960u * 372u, slot.clock_hz);
    slot.t1.cwt_us = icc_etu_us(11u + (1u << cwi), f, d, slot.clock_hz);
    slot.t1.hook = slot.hook;
    slot.t1.hook_ctx = slot.hook_ctx;
    return ICC_OK;
}

/* After an accepted ATR: the parameters it implies (§7.3, §8.3). */
static icc_status_t icc_apply_atr(void)
{
    const atr_info_t *a = &slot.atr;
    uint8_t proto;
    uint8_t fidi = ATR_DEFAULT_FIDI;
    if (a->specific) {
        /* Specific mode: TA2's protocol, and TA1's Fi/Di unless b5 says
         * they are implicit. */
        proto = a->specific_proto;
        if (!a->specific_implicit)
            fidi = icc_atr_fidi(a);
    } else {
        proto = icc_first_supported(a);
    }
    if (proto > ICC_PROTO_T1)
        return ICC_ERR_NOT_SUPPORTED;
    icc_limit_clock(a->fmax_hz);
    icc_params_for(a, proto, fidi, &slot.params);
    slot.pps_allowed = !a->specific;
    return icc_commit_params(true);
}

/* Resets the card (warm first when it is powered) and accepts its ATR:
 * cold reset, then a warm reset if the first ATR failed. */
static icc_status_t icc_activate(void)
{
    bool plan[3];
    size_t steps = 0;
    if (slot.vcc_on)
        plan[steps++] = false;
    plan[steps++] = true;
    plan[steps++] = false;
    slot.powered = false;
    icc_status_t st = ICC_ERR_MUTE;
    for (size_t i = 0; i < steps; i++) {
        uint8_t buf[ICC_ATR_MAX];
        size_t len = 0;
        st = icc_reset(plan[i], buf, &len);
        if (st == ICC_OK)
            st = atr_parse(buf, len, &slot.atr);
        if (st == ICC_OK || st == ICC_ERR_ABSENT)
            break;
    }
    if (st == ICC_OK)
        st = icc_apply_atr();
    if (st != ICC_OK) {
        icc_deactivate();
        return st;
    }
    slot.powered = true;
    return ICC_OK;
}

icc_status_t icc_power_on(uint8_t *atr, size_t cap, size_t *atr_len)
{
    FW_VERIFY(atr != NULL && atr_len != NULL, ICC_ERR_BAD_PARAM);
    *atr_len = 0;
    FW_VERIFY(cap >= ICC_ATR_MAX, ICC_ERR_BAD_PARAM);
    if (!port_icc_present()) {
        icc_deactivate();
        return ICC_ERR_ABSENT;
    }
    icc_status_t st = icc_activate();
    if (st != ICC_OK)
        return st;
    fw_memcpy(atr, slot.atr.raw, slot.atr.len);
    *atr_len = slot.atr.len;
    return ICC_OK;
}

void icc_power_off(void)
{
    icc_deactivate();
}

static icc_status_t icc_check_powered(void)
{
    if (!port_icc_present()) {
        icc_deactivate();
        return ICC_ERR_ABSENT;
    }
    return slot.powered ? ICC_OK : ICC_ERR_NOT_POWERED;
}

icc_status_t icc_get_params(icc_params_t *out)
{
    FW_VERIFY(out != NULL, ICC_ERR_BAD_PARAM);
    icc_status_t st = icc_check_powered();
    if (st != ICC_OK)
        return st;
    *out = slot.params;
    if (out->protocol == ICC_PROTO_T1)
        out->ifsc = slot.t1.ifsc; /* the card may have changed it (S(IFS)) */
    return ICC_OK;
}

icc_status_t icc_params_from_atr(icc_params_t *out)
{
    FW_VERIFY(out != NULL, ICC_ERR_BAD_PARAM);
    icc_status_t st = icc_check_powered();
    if (st != ICC_OK)
        return st;
    const atr_info_t *a = &slot.atr;
    uint8_t proto = a->specific ? a->specific_proto : icc_first_supported(a);
    FW_VERIFY(proto <= ICC_PROTO_T1, ICC_ERR_NOT_SUPPORTED);
    uint8_t fidi = (a->specific && a->specific_implicit) ? ATR_DEFAULT_FIDI
                                                         : icc_atr_fidi(a);
    icc_params_for(a, proto, fidi, out);
    return ICC_OK;
}

/* Checks a parameter set from the host (CCID PC_to_RDR_SetParameters). */
static icc_status_t icc_check_want(const icc_params_t *want)
{
    FW_VERIFY(want->protocol <= ICC_PROTO_T1, ICC_ERR_NOT_SUPPORTED);
    FW_VERIFY(icc_f(want->fidi) != 0 && icc_d(want->fidi) != 0, ICC_ERR_BAD_PARAM);
    FW_VERIFY(slot.atr.protocols & (1u << want->protocol), ICC_ERR_NOT_SUPPORTED);
    if (want->protocol == ICC_PROTO_T1) {
        FW_VERIFY((want->waiting >> 4) <= 9u, ICC_ERR_BAD_PARAM); /* BWI */
        FW_VERIFY(want->ifsc != 0 && want->ifsc != 0xFFu, ICC_ERR_BAD_PARAM);
    }
    return ICC_OK;
}

icc_status_t icc_set_params(const icc_params_t *want)
{
    FW_VERIFY(want != NULL, ICC_ERR_BAD_PARAM);
    icc_status_t st = icc_check_powered();
    if (st != ICC_OK)
        return st;
    st = icc_check_want(want);
    if (st != ICC_OK)
        return st;

    uint8_t fidi = want->fidi;
    bool new_link = false;
    if (want->protocol != slot.params.protocol || want->fidi != slot.params.fidi) {
        /* §7.3: a card in specific mode cannot change; else PPS (§9). */
        FW_VERIFY(!slot.atr.specific, ICC_ERR_NOT_SUPPORTED);
        if (!slot.pps_allowed) {
            /* PPS must follow an ATR directly: reset the card first. */
            st = icc_activate();
            if (st != ICC_OK)
                return st;
            FW_VERIFY(!slot.atr.specific, ICC_ERR_NOT_SUPPORTED);
        }
        slot.pps_allowed = false;
        const uint64_t wt_us =
            icc_etu_us(ICC_INITIAL_WT_ETU, icc_f(slot.params.fidi),
                       icc_d(slot.params.fidi), slot.clock_hz);
        st = pps_exchange(want->protocol, want->fidi, wt_us, &fidi);
        if (st != ICC_OK) {
            icc_deactivate();
            return st == ICC_ERR_ABSENT ? ICC_ERR_ABSENT : ICC_ERR_PPS;
        }
        icc_limit_clock(atr_fmax_hz((uint8_t)(fidi >> 4)));
        new_link = true;
    }
    icc_params_t p = *want;
    p.fidi = fidi;
    /* The convention is the card's (TS), whatever the host says. */
    p.tcckst = (uint8_t)((p.tcckst & (uint8_t)~ICC_TCCKST_INVERSE) |
                         (slot.atr.inverse ? ICC_TCCKST_INVERSE : 0u));
    if (p.protocol == ICC_PROTO_T0) {
        if (p.waiting == 0)
            p.waiting = ATR_DEFAULT_WI; /* WI = 0 is RFU (§10.2) */
        p.ifsc = 0;
        p.nad = 0;
    } else {
        p.tcckst |= ICC_TCCKST_T1;
    }
    if (p.protocol != slot.params.protocol)
        new_link = true;
    slot.params = p;
    return icc_commit_params(new_link);
}

typedef icc_status_t (*icc_xfer_fn_t)(const uint8_t *capdu, size_t clen,
                                      uint8_t *rapdu, size_t rcap, size_t *rlen);

static icc_status_t icc_xfer_t0(const uint8_t *capdu, size_t clen,
                                uint8_t *rapdu, size_t rcap, size_t *rlen)
{
    const t0_config_t cfg = {icc_t0_wwt_us(), slot.hook, slot.hook_ctx};
    icc_status_t st = t0_transceive(&cfg, capdu, clen, rapdu, rcap, rlen);
    /* §7.2: after WT is exceeded (or the card broke T=0) the interface
     * device deactivates; the host resets the card. */
    if (st == ICC_ERR_MUTE || st == ICC_ERR_PROTOCOL || st == ICC_ERR_PARITY)
        icc_deactivate();
    return st;
}

static icc_status_t icc_xfer_t1(const uint8_t *capdu, size_t clen,
                                uint8_t *rapdu, size_t rcap, size_t *rlen)
{
    icc_status_t st = t1_transceive(&slot.t1, capdu, clen, rapdu, rcap, rlen);
    /* §11.6.3.2: when resynchronisation failed, deactivate. */
    if ((st == ICC_ERR_MUTE || st == ICC_ERR_PROTOCOL) && slot.t1.resynch_pending)
        icc_deactivate();
    return st;
}

static const struct {
    uint8_t protocol;
    icc_xfer_fn_t xfer;
} icc_xfers[] = {
    {ICC_PROTO_T0, icc_xfer_t0},
    {ICC_PROTO_T1, icc_xfer_t1},
};

icc_status_t icc_transceive(const uint8_t *capdu, size_t clen, uint8_t *rapdu,
                            size_t rcap, size_t *rlen)
{
    FW_VERIFY(capdu != NULL && rapdu != NULL && rlen != NULL, ICC_ERR_BAD_PARAM);
    *rlen = 0;
    icc_status_t st = icc_check_powered();
    if (st != ICC_OK)
        return st;
    FW_VERIFY(clen >= 4 && clen <= ICC_CAPDU_MAX, ICC_ERR_BAD_PARAM);
    for (size_t i = 0; i < FW_ARRAY_LEN(icc_xfers); i++) {
        if (icc_xfers[i].protocol != slot.params.protocol)
            continue;
        icc_line_count_apdu();
        slot.pps_allowed = false;
        st = icc_xfers[i].xfer(capdu, clen, rapdu, rcap, rlen);
        if (st == ICC_ERR_ABSENT)
            icc_deactivate();
        return st;
    }
    return ICC_ERR_NOT_SUPPORTED;
}
