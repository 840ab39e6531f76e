/* card_link: card side of ISO/IEC 7816-3 (ATR §8, PPS §9, T=0 §10, T=1 §11,
 * TPDU mapping §12) for the virtual card. See card_link.h. */
#include "card_link.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

/* ------------------------------------------------------------------ */
/* ATR (§8.2) and the F/D tables (§7.1)                                 */

static const uint16_t fi_table[16] = {372, 372, 558, 744,  1116, 1488, 1860, 0,
                                      0,   512, 768, 1024, 1536, 2048, 0,    0};
static const uint8_t di_table[16] = {0, 1, 2, 4, 8, 16, 32, 64, 12, 20, 0, 0, 0, 0, 0, 0};

uint16_t card_fi_value(uint8_t fi_index)
{
    return fi_table[fi_index & 0x0F];
}
uint8_t card_di_value(uint8_t di_index)
{
    return di_table[di_index & 0x0F];
}

bool card_atr_parse(const uint8_t *atr, size_t len, card_atr_info_t *out)
{
    if (!atr || !out || len < 2 || len > CARD_ATR_MAX)
        return false;
    if (atr[0] != 0x3B && atr[0] != 0x3F)
        return false;
    card_atr_info_t in = {
        .first_protocol = -1, .ta1 = 0x11, .wi = 10, .ifsc = 32, .bwi = 4, .cwi = 13};
    size_t i = 1;
    uint8_t y = atr[i] >> 4;
    size_t k = atr[i] & 0x0F;
    i++;
    unsigned group = 1;
    int prev_t = -1; /* protocol of the TD that introduced this group */
    bool t1_ta_seen = false, t1_tb_seen = false, need_tck = false;
    for (;;) {
        uint8_t ta = 0, tb = 0, tc = 0;
        bool has_ta = false, has_tb = false, has_tc = false;
        if (y & 1) {
            if (i >= len)
                return false;
            ta = atr[i++];
            has_ta = true;
        }
        if (y & 2) {
            if (i >= len)
                return false;
            tb = atr[i++];
            has_tb = true;
        }
        if (y & 4) {
            if (i >= len)
                return false;
            tc = atr[i++];
            has_tc = true;
        }
        (void)tb;
        if (group == 1 && has_ta) {
            in.has_ta1 = true;
            in.ta1 = ta;
        }
        if (group == 2 && has_tc)
            in.wi = tc; /* TC2: WI for T=0 (§10.2) */
        if (group >= 3 && prev_t == 1) {
            if (has_ta && !t1_ta_seen) {
                in.ifsc = ta; /* §11.4.2 */
                t1_ta_seen = true;
            }
            if (has_tb && !t1_tb_seen) {
                in.bwi = tb >> 4; /* §11.4.3 */
                in.cwi = tb & 0x0F;
                t1_tb_seen = true;
            }
        }
        if (!(y & 8))
            break;
        if (i >= len)
            return false;
        uint8_t td = atr[i++];
        int t = td & 0x0F;
        if (in.first_protocol < 0)
            in.first_protocol = t;
        if (t == 0)
            in.offers_t0 = true;
        else if (t == 1)
            in.offers_t1 = true;
        if (t != 0)
            need_tck = true;
        prev_t = t;
        y = td >> 4;
        group++;
    }
    if (in.first_protocol < 0) { /* no TD1: T=0 only (§8.2.3) */
        in.first_protocol = 0;
        in.offers_t0 = true;
    }
    if (in.wi == 0 || in.ifsc == 0 || in.ifsc == 0xFF)
        return false;
    size_t want = i + k + (need_tck ? 1 : 0);
    if (want != len)
        return false;
    if (need_tck) {
        uint8_t x = 0;
        for (size_t j = 1; j < len; j++)
            x ^= atr[j];
        if (x != 0)
            return false;
    }
    *out = in;
    return true;
}

/* ------------------------------------------------------------------ */
/* State                                                                */

typedef enum { LS_OFF, LS_ATR, LS_PPS, LS_T0_HDR, LS_T0_DATA, LS_T1 } link_state_t;

#define T1_INF_MAX   254
#define T1_BLOCK_MAX (3 + T1_INF_MAX + 1)
#define T1_APDU_MAX  272 /* 4 + 1 + 255 + 1 and a margin */
#define RAPDU_MAX    (256 + 2)

struct card_link {
    card_link_config_t cfg;
    uint8_t atr[CARD_ATR_MAX];
    card_atr_info_t info;
    link_state_t st;
    int proto;
    uint16_t f;
    uint8_t d;

    uint8_t pps[6];
    size_t pps_len;

    /* T=0 */
    uint8_t cmd[5 + 255];
    size_t cmd_len;
    size_t cmd_need;

    /* response kept for GET RESPONSE (both protocols) */
    uint8_t pend[CARD_RESP_MAX];
    size_t pend_len, pend_off;
    uint16_t pend_sw;
    bool pend_valid;

    /* T=1 */
    uint8_t ns; /* N(S) of the card's next I-block */
    uint8_t nr; /* N(S) expected in the reader's next I-block */
    uint8_t ifsd;
    uint8_t blk[3 + 255 + 1];
    size_t blk_len;
    uint8_t rx[T1_APDU_MAX];
    size_t rx_len;
    bool rx_overflow;
    uint8_t tx[RAPDU_MAX];
    size_t tx_len, tx_off;
    bool tx_chaining;
    bool wait_wtx;
    uint8_t last[T1_BLOCK_MAX];
    size_t last_len;

    uint8_t resp[CARD_RESP_MAX];
};

_Static_assert(sizeof(((card_link_t *)0)->blk) >= 3 + 255 + 1, "T=1 block buffer");

static void drop_pending(card_link_t *l)
{
    l->pend_valid = false;
    l->pend_len = l->pend_off = 0;
    OPENSSL_cleanse(l->pend, sizeof l->pend);
}

static void reset_volatile(card_link_t *l)
{
    l->proto = l->info.first_protocol;
    l->f = 372;
    l->d = 1;
    l->pps_len = 0;
    l->cmd_len = l->cmd_need = 0;
    drop_pending(l);
    l->ns = l->nr = 0;
    l->ifsd = 32; /* §11.4.2: IFSD default 32 until S(IFS request) */
    l->blk_len = 0;
    l->rx_len = 0;
    l->rx_overflow = false;
    l->tx_len = l->tx_off = 0;
    l->tx_chaining = false;
    l->wait_wtx = false;
    l->last_len = 0;
    OPENSSL_cleanse(l->cmd, sizeof l->cmd);
    OPENSSL_cleanse(l->rx, sizeof l->rx);
    card_applet_reset(l->cfg.applet);
}

card_link_t *card_link_new(const card_link_config_t *cfg)
{
    if (!cfg || !cfg->applet || !cfg->emit || !cfg->atr)
        return NULL;
    card_atr_info_t info;
    if (!card_atr_parse(cfg->atr, cfg->atr_len, &info))
        return NULL;
    if (info.first_protocol != 0 && info.first_protocol != 1)
        return NULL;
    card_link_t *l = calloc(1, sizeof *l);
    if (!l)
        return NULL;
    l->cfg = *cfg;
    memcpy(l->atr, cfg->atr, cfg->atr_len);
    l->cfg.atr = l->atr;
    if (l->cfg.wtx_multiplier == 0)
        l->cfg.wtx_multiplier = 1;
    l->info = info;
    l->st = LS_OFF;
    reset_volatile(l);
    return l;
}

void card_link_free(card_link_t *l)
{
    if (!l)
        return;
    OPENSSL_cleanse(l, sizeof *l);
    free(l);
}

static bool emit(card_link_t *l, const uint8_t *buf, size_t n, card_delay_t delay)
{
    return l->cfg.emit(l->cfg.emit_ctx, buf, n, delay);
}

bool card_link_activate(card_link_t *l)
{
    reset_volatile(l);
    l->st = LS_ATR;
    return emit(l, l->atr, l->cfg.atr_len, CARD_DELAY_NONE);
}

void card_link_deactivate(card_link_t *l)
{
    reset_volatile(l);
    l->st = LS_OFF;
}

bool card_link_active(const card_link_t *l)
{
    return l->st != LS_OFF;
}
int card_link_protocol(const card_link_t *l)
{
    return l->proto;
}

void card_link_fd(const card_link_t *l, uint16_t *f, uint8_t *d)
{
    if (f)
        *f = l->f;
    if (d)
        *d = l->d;
}

uint32_t card_link_wait_clocks(const card_link_t *l)
{
    if (l->proto == 1)
        return (1u << (l->info.bwi & 0x0F)) * 960u * 372u;
    uint16_t fi = card_fi_value(l->info.ta1 >> 4);
    return 960u * l->info.wi * (fi ? fi : 372u);
}

void card_link_set_wtx_multiplier(card_link_t *l, uint8_t m)
{
    l->cfg.wtx_multiplier = m ? m : 1;
}

const card_atr_info_t *card_link_atr_info(const card_link_t *l)
{
    return &l->info;
}

static void log_apdu(card_link_t *l, const uint8_t *c, size_t cl, const uint8_t *r, size_t rl,
                     uint16_t sw)
{
    if (l->cfg.log)
        l->cfg.log(l->cfg.log_ctx, c, cl, r, rl, sw);
}

static void keep_pending(card_link_t *l, const uint8_t *r, size_t n, uint16_t sw)
{
    drop_pending(l);
    if (n > sizeof l->pend)
        n = sizeof l->pend;
    memcpy(l->pend, r, n);
    l->pend_len = n;
    l->pend_off = 0;
    l->pend_sw = sw;
    l->pend_valid = n > 0;
}

static uint16_t sw_more(size_t remaining)
{
    /* 61xx: xx = bytes still available, 00 meaning 256 or more (ISO/IEC 7816-4 §5.1.3) */
    return (uint16_t)(0x6100 | (remaining >= 256 ? 0 : remaining));
}

/* ------------------------------------------------------------------ */
/* PPS (§9)                                                             */

static size_t pps_expected(const uint8_t *p)
{
    size_t n = 3; /* PPSS, PPS0, PCK */
    for (unsigned b = 0x10; b <= 0x40; b <<= 1)
        if (p[1] & b)
            n++;
    return n;
}

static bool pps_done(card_link_t *l)
{
    const uint8_t *p = l->pps;
    uint8_t x = 0;
    for (size_t i = 0; i < l->pps_len; i++)
        x ^= p[i];
    l->st = LS_ATR;
    l->pps_len = 0;
    if (x != 0)
        return true; /* PCK error: the card stays mute (§9.3) */
    int t = p[1] & 0x0F;
    if ((t == 0 && !l->info.offers_t0) || (t == 1 && !l->info.offers_t1) || t > 1)
        return true; /* protocol not offered: no answer, the reader deactivates */
    bool has_pps1 = p[1] & 0x10;
    uint8_t pps1 = has_pps1 ? p[2] : 0x11;
    /* Only the default or the TA1 the ATR offers (§9.3: an unaccepted PPS1 is
     * answered without PPS1, meaning Fd/Dd). */
    bool accept = pps1 == 0x11 || (l->info.has_ta1 && pps1 == l->info.ta1);
    accept = accept && card_fi_value(pps1 >> 4) && card_di_value(pps1 & 0x0F);
    uint8_t r[4];
    size_t n = 0;
    r[n++] = 0xFF;
    r[n++] = (uint8_t)(t | ((has_pps1 && accept) ? 0x10 : 0x00));
    if (has_pps1 && accept)
        r[n++] = pps1;
    uint8_t pck = 0;
    for (size_t i = 0; i < n; i++)
        pck ^= r[i];
    r[n++] = pck;
    l->proto = t;
    if (has_pps1 && accept) {
        l->f = card_fi_value(pps1 >> 4);
        l->d = card_di_value(pps1 & 0x0F);
    } else {
        l->f = 372;
        l->d = 1;
    }
    l->st = t == 0 ? LS_T0_HDR : LS_T1;
    return emit(l, r, n, CARD_DELAY_NONE);
}

/* ------------------------------------------------------------------ */
/* T=0 (§10, mapping §12.2)                                             */

static bool t0_sw(card_link_t *l, uint16_t sw, card_delay_t delay)
{
    uint8_t b[2] = {(uint8_t)(sw >> 8), (uint8_t)sw};
    return emit(l, b, 2, delay);
}

/* INS ‖ data ‖ SW1 SW2 in one frame (§10.3.3: ACK procedure byte, then the data). */
static bool t0_data_sw(card_link_t *l, const uint8_t *data, size_t n, uint16_t sw,
                       card_delay_t delay)
{
    uint8_t b[1 + 256 + 2];
    if (n > 256)
        return false;
    b[0] = l->cmd[1];
    memcpy(b + 1, data, n);
    b[1 + n] = (uint8_t)(sw >> 8);
    b[2 + n] = (uint8_t)sw;
    return emit(l, b, n + 3, delay);
}

static bool t0_get_response(card_link_t *l)
{
    const uint8_t *h = l->cmd;
    size_t p3 = h[4] ? h[4] : 256;
    uint16_t sw;
    if (h[2] || h[3]) {
        sw = CARD_SW_WRONG_P1P2;
    } else if (!l->pend_valid) {
        sw = CARD_SW_CONDITIONS;
    } else {
        size_t rem = l->pend_len - l->pend_off;
        size_t chunk = rem < CARD_T0_GETRESP_MAX ? rem : CARD_T0_GETRESP_MAX;
        if (p3 > chunk) {
            /* Wrong Le: the reader re-issues with P3 = chunk (§12.2.3, 6Cxx) */
            sw = (uint16_t)(0x6C00 | chunk);
        } else {
            const uint8_t *data = l->pend + l->pend_off;
            l->pend_off += p3;
            rem -= p3;
            sw = rem ? sw_more(rem) : l->pend_sw;
            log_apdu(l, h, 5, data, p3, sw);
            bool ok = t0_data_sw(l, data, p3, sw, CARD_DELAY_FAST);
            if (!rem)
                drop_pending(l);
            return ok;
        }
    }
    log_apdu(l, h, 5, NULL, 0, sw);
    return t0_sw(l, sw, CARD_DELAY_FAST);
}

/* Runs the command in l->cmd (header + data when data_in). */
static bool t0_execute(card_link_t *l, bool data_in)
{
    const uint8_t *h = l->cmd;
    size_t clen = data_in ? (h[4] ? 5 + (size_t)h[4] : 4) : 5;
    card_delay_t delay =
        card_applet_cmd_class(h) == CARD_CMD_RSA ? CARD_DELAY_RSA : CARD_DELAY_FAST;
    size_t rlen = 0;
    uint16_t sw = card_applet_process(l->cfg.applet, l->cmd, clen, l->resp, sizeof l->resp, &rlen);
    log_apdu(l, l->cmd, clen, l->resp, rlen, sw);
    l->st = LS_T0_HDR;
    l->cmd_len = 0;
    /* §10.3.3: NULL (60) while a slow command computes */
    if (delay == CARD_DELAY_RSA && !emit(l, (const uint8_t[]){0x60}, 1, CARD_DELAY_NONE))
        return false;
    bool ok;
    if (rlen == 0) {
        ok = t0_sw(l, sw, delay);
    } else if (!data_in) {
        /* case 2: P3 is Le */
        size_t p3 = h[4] ? h[4] : 256;
        if (rlen == p3 && rlen <= CARD_T0_GETRESP_MAX) {
            ok = t0_data_sw(l, l->resp, rlen, sw, delay);
        } else if (card_applet_t0_repeatable(h)) {
            size_t la = rlen < CARD_T0_GETRESP_MAX ? rlen : CARD_T0_GETRESP_MAX;
            ok = t0_sw(l, (uint16_t)(0x6C00 | la), delay);
        } else {
            keep_pending(l, l->resp, rlen, sw);
            ok = t0_sw(l, sw_more(rlen), delay);
        }
    } else {
        /* case 4 (OpenSC omits Le in T=0): 61xx, then GET RESPONSE */
        keep_pending(l, l->resp, rlen, sw);
        ok = t0_sw(l, sw_more(rlen), delay);
    }
    OPENSSL_cleanse(l->cmd, sizeof l->cmd);
    return ok;
}

static bool t0_header(card_link_t *l)
{
    const uint8_t *h = l->cmd;
    uint8_t ins = h[1];
    l->cmd_len = 0;
    /* §10.3.2: INS 6X and 9X are invalid */
    if ((ins & 0xF0) == 0x60 || (ins & 0xF0) == 0x90)
        return t0_sw(l, CARD_SW_INS, CARD_DELAY_FAST);
    if (ins == 0xC0 && (h[0] & ~0x10u) == 0)
        return t0_get_response(l);
    drop_pending(l);
    bool data_in = card_applet_t0_data_in(l->cfg.applet, h);
    if (data_in && h[4] > 0) {
        /* ACK = INS: send all the data (§10.3.3) */
        l->cmd_len = 5;
        l->cmd_need = 5 + (size_t)h[4];
        l->st = LS_T0_DATA;
        return emit(l, &ins, 1, CARD_DELAY_NONE);
    }
    return t0_execute(l, data_in);
}

/* ------------------------------------------------------------------ */
/* T=1 (§11)                                                            */

enum {
    PCB_R = 0x80,
    PCB_S = 0xC0,
    S_RESYNCH_REQ = 0xC0,
    S_IFS_REQ = 0xC1,
    S_ABORT_REQ = 0xC2,
    S_WTX_REQ = 0xC3,
    S_RESP = 0x20,
};

static bool t1_send(card_link_t *l, uint8_t pcb, const uint8_t *inf, size_t n, card_delay_t delay)
{
    uint8_t *b = l->last;
    if (n > T1_INF_MAX)
        return false;
    b[0] = 0x00; /* NAD 0 */
    b[1] = pcb;
    b[2] = (uint8_t)n;
    if (n)
        memcpy(b + 3, inf, n);
    uint8_t lrc = 0;
    for (size_t i = 0; i < 3 + n; i++)
        lrc ^= b[i];
    b[3 + n] = lrc; /* §11.4.4: LRC */
    l->last_len = 4 + n;
    return emit(l, b, l->last_len, delay);
}

static bool t1_rblock(card_link_t *l, uint8_t err)
{
    return t1_send(l, (uint8_t)(PCB_R | (l->nr << 4) | err), NULL, 0, CARD_DELAY_NONE);
}

static bool t1_retransmit(card_link_t *l)
{
    if (!l->last_len)
        return t1_rblock(l, 0x02);
    return emit(l, l->last, l->last_len, CARD_DELAY_NONE);
}

/* Next I-block of the response in l->tx (chaining when it exceeds IFSD). */
static bool t1_send_next(card_link_t *l, card_delay_t delay)
{
    size_t rem = l->tx_len - l->tx_off;
    size_t chunk = rem < l->ifsd ? rem : l->ifsd;
    bool more = rem > chunk;
    uint8_t pcb = (uint8_t)((l->ns << 6) | (more ? 0x20 : 0x00));
    const uint8_t *inf = l->tx + l->tx_off;
    l->tx_off += chunk;
    l->tx_chaining = more;
    l->ns ^= 1;
    return t1_send(l, pcb, inf, chunk, delay);
}

static void parse_le(const uint8_t *a, size_t n, size_t *ne)
{
    *ne = 256;
    if (n == 5)
        *ne = a[4] ? a[4] : 256;
    else if (n > 5 && a[4] && n == 6 + (size_t)a[4])
        *ne = a[n - 1] ? a[n - 1] : 256;
}

/* A complete command APDU from the reader. */
static bool t1_command(card_link_t *l)
{
    const uint8_t *a = l->rx;
    size_t n = l->rx_len;
    size_t rlen = 0, ne;
    uint16_t sw;
    card_delay_t delay = CARD_DELAY_FAST;
    const uint8_t *data = l->resp;
    if (l->rx_overflow || n < 4) {
        sw = CARD_SW_WRONG_LENGTH;
        log_apdu(l, a, n < 4 ? n : 4, NULL, 0, sw);
    } else if (a[1] == 0xC0 && (a[0] & ~0x10u) == 0) {
        /* GET RESPONSE (ISO/IEC 7816-4 §7.6.1) */
        parse_le(a, n, &ne);
        if (a[2] || a[3]) {
            sw = CARD_SW_WRONG_P1P2;
        } else if (!l->pend_valid) {
            sw = CARD_SW_CONDITIONS;
        } else {
            size_t rem = l->pend_len - l->pend_off;
            rlen = rem < ne ? rem : ne;
            data = l->pend + l->pend_off;
            l->pend_off += rlen;
            rem -= rlen;
            sw = rem ? sw_more(rem) : l->pend_sw;
        }
        log_apdu(l, a, n, data, rlen, sw);
    } else {
        drop_pending(l);
        parse_le(a, n, &ne);
        if (card_applet_cmd_class(a) == CARD_CMD_RSA)
            delay = CARD_DELAY_RSA;
        sw = card_applet_process(l->cfg.applet, a, n, l->resp, sizeof l->resp, &rlen);
        log_apdu(l, a, n, l->resp, rlen, sw);
        if (rlen > ne) {
            keep_pending(l, l->resp + ne, rlen - ne, sw);
            sw = sw_more(rlen - ne);
            rlen = ne;
        }
    }
    memcpy(l->tx, data, rlen);
    l->tx[rlen] = (uint8_t)(sw >> 8);
    l->tx[rlen + 1] = (uint8_t)sw;
    l->tx_len = rlen + 2;
    l->tx_off = 0;
    if (l->pend_valid && l->pend_off >= l->pend_len)
        drop_pending(l); /* GET RESPONSE served the last bytes */
    OPENSSL_cleanse(l->rx, sizeof l->rx);
    l->rx_len = 0;
    l->rx_overflow = false;
    if (delay == CARD_DELAY_RSA) {
        /* §11.6.2.3: ask for more time before a slow command, wait for the answer */
        uint8_t m = l->cfg.wtx_multiplier;
        l->wait_wtx = true;
        return t1_send(l, S_WTX_REQ, &m, 1, CARD_DELAY_NONE);
    }
    return t1_send_next(l, delay);
}

static bool t1_block(card_link_t *l)
{
    const uint8_t *b = l->blk;
    size_t n = l->blk_len;
    l->blk_len = 0;
    uint8_t lrc = 0;
    for (size_t i = 0; i < n; i++)
        lrc ^= b[i];
    if (lrc != 0)
        return t1_rblock(l, 0x01); /* EDC error (§11.6.3.2) */
    uint8_t pcb = b[1];
    size_t len = b[2];
    const uint8_t *inf = b + 3;

    if (l->wait_wtx) {
        if (pcb == (S_WTX_REQ | S_RESP) && len == 1) {
            l->wait_wtx = false;
            return t1_send_next(l, CARD_DELAY_RSA);
        }
        if ((pcb & 0xC0) == PCB_R)
            return t1_retransmit(l);
        l->wait_wtx = false; /* anything else: the answer is dropped */
        l->tx_len = l->tx_off = 0;
    }

    if ((pcb & 0x80) == 0) { /* I-block */
        uint8_t ns = (pcb >> 6) & 1;
        bool more = pcb & 0x20;
        if (len > l->info.ifsc || ns != l->nr)
            return t1_rblock(l, 0x02);
        l->nr ^= 1;
        l->tx_chaining = false; /* a new command ends any response chain */
        if (len > sizeof l->rx - l->rx_len) {
            l->rx_overflow = true;
        } else {
            memcpy(l->rx + l->rx_len, inf, len);
            l->rx_len += len;
        }
        if (more)
            return t1_rblock(l, 0x00); /* acknowledge the chained block */
        return t1_command(l);
    }
    if ((pcb & 0xC0) == PCB_R) {
        uint8_t nr = (pcb >> 4) & 1;
        if (len != 0)
            return t1_rblock(l, 0x02);
        if (l->tx_chaining && nr == l->ns)
            return t1_send_next(l, CARD_DELAY_NONE);
        return t1_retransmit(l);
    }
    /* S-block */
    switch (pcb) {
    case S_RESYNCH_REQ:
        if (len != 0)
            return t1_rblock(l, 0x02);
        /* §11.6.3.4: sequence numbers and IFSD back to their initial values */
        l->ns = l->nr = 0;
        l->ifsd = 32;
        l->rx_len = 0;
        l->rx_overflow = false;
        l->tx_chaining = false;
        drop_pending(l);
        return t1_send(l, S_RESYNCH_REQ | S_RESP, NULL, 0, CARD_DELAY_NONE);
    case S_IFS_REQ:
        if (len != 1 || inf[0] == 0 || inf[0] == 0xFF)
            return t1_rblock(l, 0x02);
        l->ifsd = inf[0];
        return t1_send(l, S_IFS_REQ | S_RESP, inf, 1, CARD_DELAY_NONE);
    case S_ABORT_REQ:
        l->rx_len = 0;
        l->rx_overflow = false;
        l->tx_chaining = false;
        return t1_send(l, S_ABORT_REQ | S_RESP, NULL, 0, CARD_DELAY_NONE);
    default:
        return t1_rblock(l, 0x02);
    }
}

/* ------------------------------------------------------------------ */
/* Character input                                                      */

bool card_link_rx(card_link_t *l, const uint8_t *buf, size_t n)
{
    if (!l || (!buf && n))
        return false;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = buf[i];
        switch (l->st) {
        case LS_OFF:
            return true; /* not powered: characters are lost */
        case LS_ATR:
            if (c == 0xFF) {
                l->pps[0] = c;
                l->pps_len = 1;
                l->st = LS_PPS;
                break;
            }
            l->st = l->proto == 0 ? LS_T0_HDR : LS_T1;
            i--; /* reprocess c in the protocol state */
            break;
        case LS_PPS:
            l->pps[l->pps_len++] = c;
            if (l->pps_len >= 2 && l->pps_len == pps_expected(l->pps)) {
                if (!pps_done(l))
                    return false;
            }
            break;
        case LS_T0_HDR:
            if (l->cmd_len >= 5)
                l->cmd_len = 0; /* cannot happen: a header is handled at 5 */
            l->cmd[l->cmd_len++] = c;
            if (l->cmd_len == 5 && !t0_header(l))
                return false;
            break;
        case LS_T0_DATA:
            if (l->cmd_len >= l->cmd_need || l->cmd_need > sizeof l->cmd)
                return false; /* cannot happen: broken invariant */
            l->cmd[l->cmd_len++] = c;
            if (l->cmd_len == l->cmd_need && !t0_execute(l, true))
                return false;
            break;
        case LS_T1:
            if (l->blk_len >= sizeof l->blk)
                l->blk_len = 0; /* cannot happen: LEN <= 254 is checked at 3 */
            l->blk[l->blk_len++] = c;
            if (l->blk_len == 3 && l->blk[2] == 0xFF) {
                /* LEN FF is invalid (§11.3.2.3): reject, drop the rest */
                l->blk_len = 0;
                return t1_rblock(l, 0x02);
            }
            if (l->blk_len >= 3 && l->blk_len == 4 + (size_t)l->blk[2]) {
                if (!t1_block(l))
                    return false;
            }
            break;
        }
    }
    return true;
}
