/* t0: T=0 (ISO/IEC 7816-3 §10) and the APDU-to-TPDU mapping (§12.2), see t0.h. */
#include "t0.h"

#include "fw_util.h"
#include "icc_line.h"

#define T0_HDR_LEN 5u
#define T0_NULL 0x60u             /* §10.3.3: NULL procedure byte */
#define T0_SW1_MORE 0x61u         /* §12.2.4: Na more bytes available */
#define T0_SW1_WRONG_LE 0x6Cu     /* §12.2.3: resend with P3 = Na */
#define T0_INS_GET_RESPONSE 0xC0u /* ISO/IEC 7816-4 §7.6.1 */
#define T0_CLA_CHAINING 0x10u     /* ISO/IEC 7816-4 §5.4.1 (interindustry CLA) */
#define T0_RESENDS_MAX 2u         /* 6Cxx resends per TPDU (a sane card needs 1) */
#define T0_DATA_MAX 256u          /* P3 = 00 asks for 256 bytes (§10.3.2) */

_Static_assert(ICC_RAPDU_MAX == T0_DATA_MAX + 2, "response = 256 data + SW1 SW2");

/* One TPDU in flight: header, the data going out or the room for data coming
 * in, and what happened. */
typedef struct {
    const t0_config_t *cfg;
    uint8_t hdr[T0_HDR_LEN];
    const uint8_t *out; /* data to send (cases 3S, 4S), else NULL */
    size_t out_len;
    uint8_t *in;        /* room for incoming data (case 2S, GET RESPONSE) */
    size_t in_cap;
    size_t in_expect;   /* incoming characters announced by P3 */
    size_t in_stored;   /* characters stored in in[] */
    size_t in_count;    /* characters received (stored or not) */
    bool overrun;
    uint8_t sw1, sw2;
} t0_tpdu_t;

static bool t0_is_sw1(uint8_t b)
{
    /* §10.3.3: SW1 is '6X' (X != 0) or '9X'; '60' is NULL. */
    return (b & 0xF0u) == 0x90u || ((b & 0xF0u) == 0x60u && b != T0_NULL);
}

static icc_status_t t0_recv_in(t0_tpdu_t *t, size_t n)
{
    for (size_t k = 0; k < n; k++) {
        uint8_t b;
        icc_status_t st = icc_line_recv(&b, t->cfg->wwt_us);
        if (st != ICC_OK)
            return st;
        t->in_count++;
        if (t->in_stored < t->in_cap)
            t->in[t->in_stored++] = b;
        else
            t->overrun = true; /* keep reading: the line must stay in step */
    }
    return ICC_OK;
}

/* Sends the header and runs the procedure byte loop (§10.3.3) until SW1 SW2. */
static icc_status_t t0_tpdu(t0_tpdu_t *t)
{
    const uint8_t ins = t->hdr[1];
    const uint8_t ins_inv = (uint8_t)(ins ^ 0xFFu); /* ~INS: one byte */
    const bool sending = t->out != NULL;
    const size_t total = sending ? t->out_len : t->in_expect;
    size_t done = 0;

    t->in_stored = 0;
    t->in_count = 0;
    t->overrun = false;
    icc_status_t st = icc_line_send(t->hdr, T0_HDR_LEN);
    if (st != ICC_OK)
        return st;
    for (;;) {
        uint8_t pb;
        /* Every character from the card comes within WT of the previous
         * one (§10.2); a NULL byte thereby restarts the WT timer. */
        st = icc_line_recv(&pb, t->cfg->wwt_us);
        if (st != ICC_OK)
            return st;
        if (pb == T0_NULL) {
            icc_line_wait_notify(t->cfg->hook, t->cfg->hook_ctx, false);
            continue;
        }
        if (t0_is_sw1(pb)) {
            t->sw1 = pb;
            return icc_line_recv(&t->sw2, t->cfg->wwt_us);
        }
        size_t n;
        if (pb == ins)
            n = total - done;  /* ACK: all remaining data */
        else if (pb == ins_inv)
            n = 1;             /* ~ACK: the next data byte only */
        else
            return ICC_ERR_PROTOCOL;
        FW_VERIFY(done < total, ICC_ERR_PROTOCOL); /* nothing left to move */
        if (sending)
            st = icc_line_send(t->out + done, n);
        else
            st = t0_recv_in(t, n);
        if (st != ICC_OK)
            return st;
        done += n;
    }
}

/* An incoming TPDU with the transparent 6Cxx handling of §12.2.3: the header
 * is sent again with P3 = xx and the card's data returned. */
static icc_status_t t0_tpdu_in(t0_tpdu_t *t)
{
    for (unsigned resends = 0;; resends++) {
        icc_status_t st = t0_tpdu(t);
        if (st != ICC_OK)
            return st;
        if (t->sw1 != T0_SW1_WRONG_LE || t->in_count != 0 ||
            resends >= T0_RESENDS_MAX)
            return ICC_OK;
        t->hdr[4] = t->sw2;
        t->in_expect = t->sw2 != 0 ? t->sw2 : T0_DATA_MAX;
    }
}

/* §12.2.4, case 4S with Le: 61xx → GET RESPONSE with P3 = min(xx, Le left)
 * until Le bytes arrived or the card says something else. */
static icc_status_t t0_get_responses(t0_tpdu_t *t, uint8_t cla, size_t ne,
                                     uint8_t *rapdu, size_t data_cap,
                                     size_t *got, bool *overrun)
{
    *got = 0;
    while (t->sw1 == T0_SW1_MORE && *got < ne) {
        size_t want = t->sw2 != 0 ? t->sw2 : T0_DATA_MAX;
        if (want > ne - *got)
            want = ne - *got;
        t->hdr[0] = cla;
        t->hdr[1] = T0_INS_GET_RESPONSE;
        t->hdr[2] = 0;
        t->hdr[3] = 0;
        t->hdr[4] = (uint8_t)want; /* 256 is sent as 00 */
        t->out = NULL;
        t->out_len = 0;
        t->in = rapdu + *got;
        t->in_cap = data_cap - *got;
        t->in_expect = want;
        icc_status_t st = t0_tpdu_in(t);
        if (st != ICC_OK)
            return st;
        *got += t->in_stored;
        if (t->overrun)
            *overrun = true;
        if (t->in_count == 0)
            break; /* no progress: hand the card's answer up */
    }
    return ICC_OK;
}

icc_status_t t0_transceive(const t0_config_t *cfg, const uint8_t *capdu,
                           size_t clen, uint8_t *rapdu, size_t rcap,
                           size_t *rlen)
{
    FW_VERIFY(cfg != NULL && capdu != NULL && rapdu != NULL && rlen != NULL,
              ICC_ERR_BAD_PARAM);
    *rlen = 0;
    FW_VERIFY(rcap >= 2, ICC_ERR_BAD_PARAM);
    FW_VERIFY(clen >= 4 && clen <= ICC_CAPDU_MAX, ICC_ERR_BAD_PARAM);
    /* §10.3.2: INS values '6X' and '9X' are invalid (they would read as SW1). */
    FW_VERIFY((capdu[1] & 0xF0u) != 0x60u && (capdu[1] & 0xF0u) != 0x90u,
              ICC_ERR_BAD_PARAM);

    const size_t data_cap = rcap - 2;
    t0_tpdu_t t;
    fw_memset(&t, 0, sizeof t);
    t.cfg = cfg;
    fw_memcpy(t.hdr, capdu, 4);
    t.in = rapdu;
    t.in_cap = data_cap;

    size_t lc = 0, ne = 0;
    bool case2 = false, case4 = false;
    if (clen == 4) {
        t.hdr[4] = 0; /* case 1: P3 = 00, no data either way (§12.2.2) */
    } else if (clen == 5) {
        case2 = true; /* case 2S: P3 = Le (§12.2.3) */
        t.hdr[4] = capdu[4];
        t.in_expect = capdu[4] != 0 ? capdu[4] : T0_DATA_MAX;
    } else {
        lc = capdu[4];
        FW_VERIFY(lc != 0, ICC_ERR_BAD_PARAM);
        if (clen == 5 + lc) {
            /* case 3S, and case 4 without Le: 61xx goes up unchanged */
        } else if (clen == 6 + lc) {
            case4 = true; /* case 4S (§12.2.4) */
            ne = capdu[5 + lc] != 0 ? capdu[5 + lc] : T0_DATA_MAX;
        } else {
            return ICC_ERR_BAD_PARAM;
        }
        t.hdr[4] = (uint8_t)lc;
        t.out = capdu + 5;
        t.out_len = lc;
    }

    icc_line_wait_begin();
    size_t data_len = 0;
    bool overrun = false;
    icc_status_t st;
    if (case2) {
        st = t0_tpdu_in(&t);
        data_len = t.in_stored;
        overrun = t.overrun;
    } else {
        st = t0_tpdu(&t);
    }
    if (st == ICC_OK && case4 && t.sw1 == T0_SW1_MORE) {
        uint8_t cla = capdu[0];
        if ((cla & 0x80u) == 0)
            cla &= (uint8_t)~T0_CLA_CHAINING; /* GET RESPONSE ends any chain */
        st = t0_get_responses(&t, cla, ne, rapdu, data_cap, &data_len, &overrun);
    }
    if (st != ICC_OK)
        return st;
    if (overrun)
        return ICC_ERR_OVERRUN;
    FW_ASSERT(data_len <= data_cap, ICC_ERR_OVERRUN);
    rapdu[data_len] = t.sw1;
    rapdu[data_len + 1] = t.sw2;
    *rlen = data_len + 2;
    return ICC_OK;
}
