/* ifd_ccid: one CCID command/response exchange over a transport (CCID rev 1.1
 * §6): bSeq management, matching the answer to the command (bSeq, bSlot,
 * message type), discarding stale answers of earlier timed-out commands, and
 * time extensions (bmCommandStatus 2, §6.2.7: keep waiting, the timeout
 * restarts). Callers serialise calls (the channel's I/O lock). */
#ifndef CACHET_IFD_CCID_H
#define CACHET_IFD_CCID_H

#include <stddef.h>
#include <stdint.h>

#include "ifd_rdr.h"
#include "ifd_transport.h"

typedef struct {
    const ifd_transport_ops_t *ops;
    void *tctx;
    uint8_t seq;
    uint8_t slot;
    uint32_t max_msg; /* dwMaxCCIDMessageLength, ≤ IFD_MSG_MAX */
    uint8_t tx[IFD_MSG_MAX];
    uint8_t rx[IFD_MSG_MAX];
} ifd_ccid_t;

void ifd_ccid_init(ifd_ccid_t *c, const ifd_transport_ops_t *ops, void *tctx, uint32_t max_msg);

/* Sends PC_to_RDR message `type` with its three specific bytes and data, and
 * waits for its answer. On IFD_ST_OK *resp is the parsed answer (its data
 * points into c->rx, valid until the next call); a failed command
 * (bmCommandStatus 1) is still IFD_ST_OK: look at resp->cmd_status.
 * IFD_ST_TIMEOUT when no answer came within timeout_ms of the command or of
 * the last time extension; IFD_ST_PROTO for a malformed or mismatched answer. */
ifd_st_t ifd_ccid_command(ifd_ccid_t *c, uint8_t type, const uint8_t specific[3],
                          const uint8_t *data, size_t len, uint32_t timeout_ms,
                          ifd_rdr_msg_t *resp);

/* The RDR_to_PC type that answers a PC_to_RDR type (§6.1), 0 if unknown. */
uint8_t ifd_ccid_answer_type(uint8_t pc_type);

#endif
