/* ifd_ccid: CCID command/response exchange, host side (CCID rev 1.1 §6). */
#include "ifd_ccid.h"

#include <string.h>

void ifd_ccid_init(ifd_ccid_t *c, const ifd_transport_ops_t *ops, void *tctx, uint32_t max_msg)
{
    c->ops = ops;
    c->tctx = tctx;
    c->slot = 0;
    c->max_msg = (max_msg && max_msg <= IFD_MSG_MAX) ? max_msg : IFD_MSG_MAX;
}

uint8_t ifd_ccid_answer_type(uint8_t pc_type)
{
    /* CCID rev 1.1 §6.1, Table 6.1-1: each command's response message. */
    switch (pc_type) {
    case IFD_PC_ICC_POWER_ON:
    case IFD_PC_XFR_BLOCK:
    case IFD_PC_SECURE:
        return IFD_RDR_DATA_BLOCK;
    case IFD_PC_ICC_POWER_OFF:
    case IFD_PC_GET_SLOT_STATUS:
    case IFD_PC_ABORT:
        return IFD_RDR_SLOT_STATUS;
    case IFD_PC_GET_PARAMETERS:
    case IFD_PC_RESET_PARAMETERS:
    case IFD_PC_SET_PARAMETERS:
        return IFD_RDR_PARAMETERS;
    case IFD_PC_ESCAPE:
        return IFD_RDR_ESCAPE;
    default:
        return 0;
    }
}

ifd_st_t ifd_ccid_command(ifd_ccid_t *c, uint8_t type, const uint8_t specific[3],
                          const uint8_t *data, size_t len, uint32_t timeout_ms, ifd_rdr_msg_t *resp)
{
    IFD_VERIFY(c != NULL && c->ops != NULL && resp != NULL, IFD_ST_PARAM);
    uint8_t want = ifd_ccid_answer_type(type);
    IFD_ASSERT(want != 0, IFD_ST_PARAM);
    /* dwMaxCCIDMessageLength bounds every message (CCID §5.1). */
    IFD_VERIFY(len <= c->max_msg - IFD_CCID_HEADER, IFD_ST_OVERFLOW);

    uint8_t seq = c->seq++;
    size_t n = ifd_pc_build(c->tx, sizeof c->tx, type, c->slot, seq, specific, data, len);
    IFD_ASSERT(n != 0, IFD_ST_PARAM);
    ifd_st_t st = c->ops->bulk_out(c->tctx, c->tx, n, timeout_ms);
    IFD_VERIFY(st == IFD_ST_OK, st);

    uint64_t deadline = ifd_now_ms() + timeout_ms;
    for (;;) {
        uint64_t now = ifd_now_ms();
        if (now >= deadline)
            return IFD_ST_TIMEOUT;
        size_t got = 0;
        st = c->ops->bulk_in(c->tctx, c->rx, sizeof c->rx, &got, (uint32_t)(deadline - now));
        if (st == IFD_ST_OVERFLOW)
            return IFD_ST_PROTO;
        IFD_VERIFY(st == IFD_ST_OK, st);
        ifd_rdr_result_t r = ifd_rdr_parse(c->rx, got, resp);
        if (r != IFD_RDR_OK) {
            ifd_log("ccid: malformed answer (%d, %zu bytes)", (int)r, got);
            return IFD_ST_PROTO;
        }
        /* An answer to an earlier command we gave up on: drop it. */
        if (resp->seq != seq || resp->slot != c->slot)
            continue;
        if (resp->type != want) {
            ifd_log("ccid: answer type 0x%02x to command 0x%02x", resp->type, type);
            return IFD_ST_PROTO;
        }
        if (resp->cmd_status == IFD_CMD_TIME_EXTENSION) {
            /* §6.2.7: the card asked for more time; wait again from now. */
            deadline = ifd_now_ms() + timeout_ms;
            continue;
        }
        return IFD_ST_OK;
    }
}
