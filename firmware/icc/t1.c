/* t1: T=1 protocol engine (ISO/IEC 7816-3 §11.6), see t1.h.
 * One APDU is one run of a small state machine: the state says what the
 * reader sent last, each received block (or error) is one transition that
 * builds the next block to send. Rules cited are those of §11.6.2 (normal
 * operation) and §11.6.3 (error handling). */
#include "t1.h"

#include "fw_util.h"
#include "icc_line.h"
#include "t1_block.h"

/* Characters drained after a character error, at most one block's worth. */
#define T1_DRAIN_MAX T1_BLOCK_MAX

typedef enum {
    T1_ST_IFS,     /* S(IFS request) sent, awaiting S(IFS response) */
    T1_ST_RESYNCH, /* S(RESYNCH request) sent, awaiting S(RESYNCH response) */
    T1_ST_SEND,    /* an I-block of the command sent (or an R-block about it) */
    T1_ST_RECV,    /* R-block acknowledging a chained card I-block sent */
    T1_ST_DONE,
} t1_state_t;

typedef struct {
    t1_link_t *l;
    t1_state_t st;
    const uint8_t *cmd;
    size_t clen;
    size_t tx_off;   /* start of the command chunk in the current I-block */
    size_t tx_chunk; /* its length */
    bool tx_more;    /* its M bit */
    uint8_t *resp;
    size_t rcap;
    size_t rlen;
    uint8_t tx[T1_BLOCK_MAX]; /* next block to send */
    size_t tx_len;
    unsigned errors;  /* recoveries in a row (rule 7) */
    unsigned resyncs; /* S(RESYNCH request)s sent in this exchange (rule 6) */
    bool only_timeouts;
    uint32_t wtx;     /* BWT multiplier for the next block (rule 3) */
    icc_status_t result;
} t1_xfer_t;

void t1_link_reset(t1_link_t *l, uint8_t ifsc, uint8_t nad, bool crc)
{
    if (l == NULL)
        return;
    l->ns = 0;
    l->nr = 0;
    l->ifsc = (ifsc == 0 || ifsc == 0xFFu) ? 32u : ifsc;
    l->ifsc_initial = l->ifsc;
    l->ifsd = T1_IFSD;
    l->nad = nad;
    l->crc = crc;
    l->ifsd_pending = true;
    l->resynch_pending = false;
}

static void t1_build(t1_xfer_t *x, uint8_t pcb, const uint8_t *inf, size_t n)
{
    /* Sizes are bounded by construction (INF <= IFSC <= 254, or 1 byte). */
    if (t1_block_build(x->tx, sizeof x->tx, x->l->nad, pcb, inf, n, x->l->crc,
                       &x->tx_len) != ICC_OK) {
        fw_bug(__FILE__, __LINE__);
        x->tx_len = 0;
        x->result = ICC_ERR_PROTOCOL;
        x->st = T1_ST_DONE;
    }
}

/* The I-block carrying the command from tx_off (rule 5: chunks of IFSC). */
static void t1_send_i(t1_xfer_t *x)
{
    size_t left = x->clen - x->tx_off;
    x->tx_chunk = left > x->l->ifsc ? x->l->ifsc : left;
    x->tx_more = x->tx_off + x->tx_chunk < x->clen;
    t1_build(x, t1_pcb_i(x->l->ns, x->tx_more), x->cmd + x->tx_off, x->tx_chunk);
    x->st = T1_ST_SEND;
}

static void t1_send_ifs_request(t1_xfer_t *x)
{
    uint8_t ifsd = x->l->ifsd;
    t1_build(x, t1_pcb_s(T1_S_IFS, false), &ifsd, 1);
    x->st = T1_ST_IFS;
}

/* The first block of an exchange (rule 1), or of a restart after resync. */
static void t1_start(t1_xfer_t *x)
{
    x->tx_off = 0;
    x->rlen = 0;
    if (x->l->ifsd_pending)
        t1_send_ifs_request(x);
    else
        t1_send_i(x);
}

/* Rule 6: S(RESYNCH request), at most T1_RESYNCH_MAX times, then give up. */
static void t1_resynch(t1_xfer_t *x)
{
    x->errors = 0;
    if (x->resyncs >= T1_RESYNCH_MAX) {
        x->l->resynch_pending = true;
        x->result = x->only_timeouts ? ICC_ERR_MUTE : ICC_ERR_PROTOCOL;
        x->st = T1_ST_DONE;
        return;
    }
    x->resyncs++;
    t1_build(x, t1_pcb_s(T1_S_RESYNCH, false), NULL, 0);
    x->st = T1_ST_RESYNCH;
}

/* Rule 7: an invalid block or BWT exceeded. */
static void t1_on_error(t1_xfer_t *x, icc_status_t why)
{
    if (why != ICC_ERR_MUTE)
        x->only_timeouts = false;
    if (x->st == T1_ST_RESYNCH || ++x->errors > T1_RETRIES_MAX) {
        t1_resynch(x);
        return;
    }
    switch (x->st) {
    case T1_ST_IFS:
        t1_send_ifs_request(x); /* rule 7.3: the S(... request) again */
        break;
    case T1_ST_SEND:
    case T1_ST_RECV:
        /* Rules 7.1/7.2: R-block with N(R) = the N(S) expected from the card. */
        t1_build(x, t1_pcb_r(x->l->nr, why == ICC_ERR_PARITY ? T1_R_EDC : T1_R_OTHER),
                 NULL, 0);
        break;
    case T1_ST_RESYNCH:
    case T1_ST_DONE:
    default:
        break;
    }
}

static void t1_on_i(t1_xfer_t *x, const t1_block_t *b)
{
    t1_link_t *l = x->l;
    /* A card I-block answers our last (unchained) I-block or continues its
     * own chain; anything else is out of step. */
    bool expected = (x->st == T1_ST_SEND && !x->tx_more) || x->st == T1_ST_RECV;
    if (!expected || b->ns != l->nr) {
        t1_on_error(x, ICC_ERR_PROTOCOL);
        return;
    }
    if (x->st == T1_ST_SEND)
        l->ns ^= 1u; /* rule 2: the card's I-block acknowledges ours */
    if (b->len > x->rcap - x->rlen) {
        l->resynch_pending = true; /* we stop mid-chain: out of step */
        x->result = ICC_ERR_OVERRUN;
        x->st = T1_ST_DONE;
        return;
    }
    fw_memcpy(x->resp + x->rlen, b->inf, b->len);
    x->rlen += b->len;
    l->nr ^= 1u;
    x->errors = 0;
    if (b->more) {
        /* Rule 5: acknowledge a chained block with R(N(R) = next N(S)). */
        t1_build(x, t1_pcb_r(l->nr, T1_R_OK), NULL, 0);
        x->st = T1_ST_RECV;
    } else {
        x->result = ICC_OK;
        x->st = T1_ST_DONE;
    }
}

static void t1_on_r(t1_xfer_t *x, const t1_block_t *b)
{
    t1_link_t *l = x->l;
    switch (x->st) {
    case T1_ST_SEND:
        if (b->nr != l->ns) {
            if (!x->tx_more) {
                /* Only a chained block is acknowledged by an R-block. */
                t1_on_error(x, ICC_ERR_PROTOCOL);
                return;
            }
            /* Rule 5: chained block acknowledged, send the next one. */
            l->ns ^= 1u;
            x->tx_off += x->tx_chunk;
            x->errors = 0;
            t1_send_i(x);
            return;
        }
        /* Rules 7.4/7.5: the card asks for our I-block again. */
        if (++x->errors > T1_RETRIES_MAX) {
            t1_resynch(x);
            return;
        }
        x->only_timeouts = false;
        t1_send_i(x);
        return;
    case T1_ST_RECV:
        /* The card did not get our acknowledgement: send it again. */
        if (++x->errors > T1_RETRIES_MAX) {
            t1_resynch(x);
            return;
        }
        x->only_timeouts = false;
        t1_build(x, t1_pcb_r(l->nr, T1_R_OK), NULL, 0);
        return;
    case T1_ST_IFS:
    case T1_ST_RESYNCH:
    case T1_ST_DONE:
    default:
        t1_on_error(x, ICC_ERR_PROTOCOL);
        return;
    }
}

static void t1_on_s_request(t1_xfer_t *x, const t1_block_t *b)
{
    t1_link_t *l = x->l;
    switch (b->s_type) {
    case T1_S_WTX:
        /* Rule 3: answer with the same INF; the next BWT is multiplied. */
        x->wtx = b->inf[0] != 0 ? b->inf[0] : 1u;
        icc_line_wait_notify(l->hook, l->hook_ctx, true);
        t1_build(x, t1_pcb_s(T1_S_WTX, true), b->inf, 1);
        return;
    case T1_S_IFS:
        /* Rule 4: the card announces a new IFSC (01..FE, checked by the parser). */
        l->ifsc = b->inf[0];
        t1_build(x, t1_pcb_s(T1_S_IFS, true), b->inf, 1);
        return;
    case T1_S_ABORT:
        /* Rule 9: the card aborts the chain; confirm and report. */
        t1_build(x, t1_pcb_s(T1_S_ABORT, true), NULL, 0);
        if (icc_line_send(x->tx, x->tx_len) == ICC_ERR_ABSENT)
            x->result = ICC_ERR_ABSENT;
        else
            x->result = ICC_ERR_PROTOCOL;
        x->st = T1_ST_DONE;
        return;
    default:
        /* S(RESYNCH request) is for the interface device only (rule 6). */
        t1_on_error(x, ICC_ERR_PROTOCOL);
        return;
    }
}

static void t1_on_s(t1_xfer_t *x, const t1_block_t *b)
{
    t1_link_t *l = x->l;
    if (!b->s_response) {
        t1_on_s_request(x, b);
        return;
    }
    if (x->st == T1_ST_IFS && b->s_type == T1_S_IFS && b->inf[0] == l->ifsd) {
        l->ifsd_pending = false;
        x->errors = 0;
        t1_send_i(x);
        return;
    }
    if (x->st == T1_ST_RESYNCH && b->s_type == T1_S_RESYNCH) {
        /* Rule 6.3: both sides start again from N(S) = N(R) = 0 with the
         * initial IFS values; the APDU is sent again from its start. */
        l->ns = 0;
        l->nr = 0;
        l->ifsc = l->ifsc_initial;
        l->ifsd_pending = true;
        l->resynch_pending = false;
        x->errors = 0;
        t1_start(x);
        return;
    }
    t1_on_error(x, ICC_ERR_PROTOCOL);
}

typedef void (*t1_handler_t)(t1_xfer_t *x, const t1_block_t *b);

static const struct {
    t1_block_kind_t kind;
    t1_handler_t handler;
} t1_handlers[] = {
    {T1_BLOCK_I, t1_on_i},
    {T1_BLOCK_R, t1_on_r},
    {T1_BLOCK_S, t1_on_s},
};

/* The one transition function: a valid block b, or an error (b == NULL). */
static void t1_step(t1_xfer_t *x, const t1_block_t *b, icc_status_t err)
{
    if (b == NULL) {
        t1_on_error(x, err);
        return;
    }
    for (size_t i = 0; i < FW_ARRAY_LEN(t1_handlers); i++) {
        if (t1_handlers[i].kind == b->kind) {
            t1_handlers[i].handler(x, b);
            return;
        }
    }
    t1_on_error(x, ICC_ERR_PROTOCOL);
}

static icc_status_t t1_recv_char(uint8_t *c, uint64_t timeout_us, uint64_t cwt_us)
{
    icc_status_t st = icc_line_recv(c, timeout_us);
    if (st == ICC_ERR_PARITY) {
        /* A character error makes the block invalid (rule 7.1); let the
         * rest of it pass before answering. */
        if (icc_line_drain(cwt_us, T1_DRAIN_MAX) == ICC_ERR_ABSENT)
            return ICC_ERR_ABSENT;
    }
    return st;
}

/* Receives one block: the first character within BWT (times WTX), the
 * following ones within CWT each (§11.4.3). ICC_ERR_MUTE only for BWT. */
static icc_status_t t1_recv_block(t1_xfer_t *x, uint8_t *buf, size_t *n)
{
    const t1_link_t *l = x->l;
    uint64_t bwt = l->bwt_us;
    if (x->wtx > 1)
        bwt = bwt > UINT64_MAX / x->wtx ? UINT64_MAX / 2 : bwt * x->wtx;
    x->wtx = 1;
    const size_t edc = l->crc ? 2u : 1u;
    size_t total = T1_PROLOGUE_LEN + edc; /* known once LEN arrived */
    for (size_t i = 0; i < total; i++) {
        icc_status_t st = t1_recv_char(&buf[i], i == 0 ? bwt : l->cwt_us, l->cwt_us);
        if (st == ICC_ERR_MUTE && i > 0)
            return ICC_ERR_PROTOCOL; /* CWT exceeded: invalid block */
        if (st != ICC_OK)
            return st;
        if (i == 2) {
            if (buf[2] > T1_INF_MAX) {
                /* LEN = FF is RFU: unknown size, drop whatever follows. */
                if (icc_line_drain(l->cwt_us, T1_DRAIN_MAX) == ICC_ERR_ABSENT)
                    return ICC_ERR_ABSENT;
                return ICC_ERR_PROTOCOL;
            }
            total = T1_PROLOGUE_LEN + buf[2] + edc;
        }
    }
    *n = total;
    return ICC_OK;
}

icc_status_t t1_transceive(t1_link_t *l, const uint8_t *capdu, size_t clen,
                           uint8_t *rapdu, size_t rcap, size_t *rlen)
{
    FW_VERIFY(l != NULL && capdu != NULL && rapdu != NULL && rlen != NULL,
              ICC_ERR_BAD_PARAM);
    *rlen = 0;
    FW_VERIFY(clen >= 1 && clen <= ICC_CAPDU_MAX, ICC_ERR_BAD_PARAM);
    FW_ASSERT(l->ifsc >= 1 && l->ifsc <= T1_INF_MAX, ICC_ERR_BAD_PARAM);

    t1_xfer_t x;
    fw_memset(&x, 0, sizeof x);
    x.l = l;
    x.cmd = capdu;
    x.clen = clen;
    x.resp = rapdu;
    x.rcap = rcap;
    x.only_timeouts = true;
    x.wtx = 1;
    x.result = ICC_ERR_PROTOCOL;
    icc_line_wait_begin();
    if (l->resynch_pending)
        t1_resynch(&x);
    else
        t1_start(&x);

    uint8_t rx[T1_BLOCK_MAX];
    while (x.st != T1_ST_DONE) {
        icc_status_t st = icc_line_send(x.tx, x.tx_len);
        size_t n = 0;
        if (st == ICC_OK)
            st = t1_recv_block(&x, rx, &n);
        if (st == ICC_ERR_ABSENT)
            return st;
        if (st != ICC_OK) {
            t1_step(&x, NULL, st);
            continue;
        }
        t1_block_t b;
        st = t1_block_parse(rx, n, l->crc, &b);
        t1_step(&x, st == ICC_OK ? &b : NULL, st);
    }
    if (x.result == ICC_OK)
        *rlen = x.rlen;
    return x.result;
}
