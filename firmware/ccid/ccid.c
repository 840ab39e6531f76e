/* ccid: CCID rev 1.1 class driver, see ccid.h.
 *
 * State machine (STYLE rule 8), one transition function ccid_step():
 *   IDLE        -- PC_to_RDR message --> BUSY (handler runs) --> IDLE
 *   IDLE        -- class ABORT(seq) --> ABORT_CTRL   (waits for PC_to_RDR_Abort)
 *   IDLE        -- PC_to_RDR_Abort(seq) --> ABORT_BULK (waits for class ABORT)
 *   ABORT_CTRL  -- PC_to_RDR_Abort(same seq) --> SlotStatus OK, IDLE;
 *                  any other message --> failed with CMD_ABORTED (§5.3.1)
 *   ABORT_BULK  -- class ABORT(same seq) --> SlotStatus OK, IDLE;
 *                  any other message --> the pending Abort is answered first
 *   any         -- bus reset / deconfiguration --> IDLE, card powered off
 * A message that arrives while BUSY (only possible if a board re-entered the
 * core from inside a blocking call) is failed with CMD_SLOT_BUSY (§6.2.6). */
#include "ccid.h"
#include "ccid_msg.h"
#include "ccid_secure.h"

#include "fw_util.h"
#include "icc.h"
#include "ui.h"
#include "port_time.h"
#include "port_usb.h"

/* Largest abData of an answer: a response APDU (ATR, parameters and rates
 * are shorter). */
#define CCID_RSP_DATA_MAX ICC_RAPDU_MAX

_Static_assert(CCID_RSP_DATA_MAX >= ICC_ATR_MAX, "ATR fits the answer buffer");
_Static_assert(CCID_RSP_DATA_MAX >= CCID_PARAMS_T1_LEN, "parameters fit the answer buffer");
_Static_assert(CCID_RSP_DATA_MAX >= 8u, "rate and clock fit the answer buffer");
_Static_assert(CCID_MAX_DATA_LEN >= ICC_CAPDU_MAX, "a whole short APDU fits a message");

typedef enum {
    CCID_STATE_IDLE = 0,
    CCID_STATE_BUSY,
    CCID_STATE_ABORT_CTRL,
    CCID_STATE_ABORT_BULK,
} ccid_state_t;

typedef enum {
    CCID_EV_MESSAGE,    /* a valid PC_to_RDR message */
    CCID_EV_CTRL_ABORT, /* the class ABORT request (§5.3.1) */
    CCID_EV_RESET,      /* bus reset, detach, deconfiguration */
} ccid_event_kind_t;

typedef struct {
    ccid_event_kind_t kind;
    const ccid_msg_t *msg; /* CCID_EV_MESSAGE */
    uint8_t seq;           /* CCID_EV_CTRL_ABORT */
} ccid_event_t;

/* Vendor commands through PC_to_RDR_Escape (§6.1.8), abData[0] = command
 * code. Deny by default (STYLE rule 9): only a code with an entry here runs.
 * run() gets abData after the code byte, writes at most cap bytes to out and
 * returns true, or returns false with *error set to a bError value. */
typedef struct {
    uint8_t code;
    bool (*run)(const uint8_t *in, size_t in_len, uint8_t *out, size_t cap, size_t *out_len,
                uint8_t *error);
} ccid_escape_cmd_t;

/* Vendor hooks (ccid.h), installed by app; NULL: a plain reader. */
static const ccid_vendor_hooks_t *ccid_vendor;

/* The Cachet vendor commands (firmware/gate, docs/appliance.md). */
static bool ccid_escape_vendor(const uint8_t *in, size_t in_len, uint8_t *out, size_t cap,
                               size_t *out_len, uint8_t *error)
{
    if (ccid_vendor == NULL || ccid_vendor->escape == NULL) {
        *error = CCID_ERR_CMD_NOT_SUPPORTED;
        return false;
    }
    return ccid_vendor->escape(in, in_len, out, cap, out_len, error);
}

static const ccid_escape_cmd_t ccid_escape_cmds[] = {
    {CCID_ESCAPE_VENDOR_CLASS, ccid_escape_vendor},
};

/* The card is reset, powered off or gone: the vendor layer forgets it. */
static void ccid_vendor_card_reset(void)
{
    if (ccid_vendor != NULL && ccid_vendor->card_reset != NULL)
        ccid_vendor->card_reset();
}

typedef void (*ccid_handler_t)(const ccid_msg_t *m);

typedef struct {
    ccid_state_t state;
    uint8_t abort_seq;     /* ABORT_CTRL / ABORT_BULK: bSeq being aborted */
    bool abort_after_busy; /* class ABORT arrived while BUSY */
    uint8_t abort_busy_seq;
    uint8_t cur_rsp_type; /* BUSY: answer type and bSeq of the command */
    uint8_t cur_seq;
    bool time_ext_sent; /* BUSY: a time extension went out for it */
    uint64_t time_ext_last_us;
    bool configured;
    bool notify_pending; /* NotifySlotChange still to send */
    bool defaults_valid; /* defaults = parameters right after power on */
    icc_params_t defaults;
    uint8_t rsp[CCID_HEADER_LEN + CCID_RSP_DATA_MAX];
    uint8_t aux[CCID_HEADER_LEN]; /* time extension, slot busy, abort answers */
    uint8_t notify[2];
} ccid_t;

static ccid_t ccid;

/* ---- answers (§6.2) ---- */

/* bmICCStatus (§6.2.6): 0 present and active, 1 present and inactive, 2 absent. */
static uint8_t ccid_icc_status(void)
{
    if (!icc_present())
        return CCID_ICC_ABSENT;
    return icc_powered() ? CCID_ICC_ACTIVE : CCID_ICC_INACTIVE;
}

/* bClockStatus (§6.2.2): deactivation leaves CLK low (ISO/IEC 7816-3 §6.4). */
static uint8_t ccid_clock_status(void)
{
    return icc_powered() ? CCID_CLOCK_RUNNING : CCID_CLOCK_STOPPED_L;
}

static void ccid_send(const uint8_t *buf, size_t len)
{
    /* A detached host loses the answer; the next bus reset restarts us. */
    (void)port_usb_write(CCID_EP_BULK_IN, buf, len);
}

/* Sends ccid.rsp: header for m, data_len bytes already at rsp + 10. */
static void ccid_respond(const ccid_msg_t *m, uint8_t cmd_status, uint8_t error, uint8_t specific,
                         size_t data_len)
{
    if (data_len > CCID_RSP_DATA_MAX) {
        fw_bug(__FILE__, __LINE__);
        data_len = 0;
        cmd_status = CCID_CMD_FAILED;
        error = CCID_ERR_HW_ERROR;
    }
    ccid_msg_put_header(ccid.rsp, m->rsp_type, (uint32_t)data_len, m->slot, m->seq,
                        (uint8_t)(cmd_status | ccid_icc_status()), error, specific);
    ccid_send(ccid.rsp, CCID_HEADER_LEN + data_len);
}

/* The message-specific byte 9 of a failed answer with no data. */
static uint8_t ccid_fail_specific(uint8_t rsp_type)
{
    return rsp_type == CCID_RDR_TO_PC_SLOT_STATUS ? ccid_clock_status() : 0u;
}

/* A failed answer without data, into the small buffer (safe while BUSY). */
static void ccid_fail_aux(uint8_t rsp_type, uint8_t slot, uint8_t seq, uint8_t icc_status,
                          uint8_t error)
{
    ccid_msg_put_header(ccid.aux, rsp_type, 0, slot, seq, (uint8_t)(CCID_CMD_FAILED | icc_status),
                        error, ccid_fail_specific(rsp_type));
    ccid_send(ccid.aux, CCID_HEADER_LEN);
}

static void ccid_fail(const ccid_msg_t *m, uint8_t error)
{
    ccid_fail_aux(m->rsp_type, m->slot, m->seq, ccid_icc_status(), error);
}

/* RDR_to_PC_SlotStatus answering PC_to_RDR_Abort (§6.1.13). */
static void ccid_abort_done(uint8_t seq)
{
    ccid_msg_put_header(ccid.aux, CCID_RDR_TO_PC_SLOT_STATUS, 0, 0, seq,
                        (uint8_t)(CCID_CMD_OK | ccid_icc_status()), 0, ccid_clock_status());
    ccid_send(ccid.aux, CCID_HEADER_LEN);
}

/* icc_status_t → bError (§6.2.6, Table 6.2-2). bad_param_field is the field
 * to blame for ICC_ERR_BAD_PARAM (0: none, a hardware error). */
static uint8_t ccid_icc_error(icc_status_t st, uint8_t bad_param_field)
{
    icc_params_t p;
    switch (st) {
    case ICC_ERR_ABSENT:
    case ICC_ERR_NOT_POWERED:
    case ICC_ERR_MUTE:
        return CCID_ERR_ICC_MUTE;
    case ICC_ERR_BAD_ATR_TS:
        return CCID_ERR_BAD_ATR_TS;
    case ICC_ERR_BAD_ATR_TCK:
        return CCID_ERR_BAD_ATR_TCK;
    case ICC_ERR_PROTOCOL:
        /* T=0: a procedure byte out of place; T=1: blocks beyond repair. */
        if (icc_get_params(&p) == ICC_OK && p.protocol == ICC_PROTO_T0)
            return CCID_ERR_PROCEDURE_BYTE_CONFLICT;
        return CCID_ERR_HW_ERROR;
    case ICC_ERR_PARITY:
        return CCID_ERR_XFR_PARITY_ERROR;
    case ICC_ERR_OVERRUN:
        return CCID_ERR_XFR_OVERRUN;
    case ICC_ERR_BAD_PARAM:
        return bad_param_field != 0 ? bad_param_field : CCID_ERR_HW_ERROR;
    case ICC_ERR_PPS:
    case ICC_ERR_NOT_SUPPORTED:
        return CCID_ERR_ICC_PROTOCOL_NOT_SUPPORTED;
    case ICC_OK:
    default:
        return CCID_ERR_HW_ERROR;
    }
}

/* Fails m when the slot holds no active card; true if it did. */
static bool ccid_fail_unless_active(const ccid_msg_t *m)
{
    if (icc_present() && icc_powered())
        return false;
    ccid_fail(m, CCID_ERR_ICC_MUTE);
    return true;
}

/* abProtocolDataStructure (§6.1.7, Tables 6.1-6 / 6.1-7) from icc's params. */
static size_t ccid_encode_params(const icc_params_t *p, uint8_t *out)
{
    out[0] = p->fidi;
    out[2] = p->guard_time;
    out[3] = p->waiting;
    out[4] = p->clock_stop;
    if (p->protocol == ICC_PROTO_T0) {
        out[1] = (uint8_t)(p->tcckst & 0x02u);
        return CCID_PARAMS_T0_LEN;
    }
    out[1] = (uint8_t)(0x10u | (p->tcckst & 0x03u));
    out[5] = p->ifsc;
    out[6] = p->nad;
    return CCID_PARAMS_T1_LEN;
}

/* RDR_to_PC_Parameters (§6.2.3) with the parameters in force, if any. */
static void ccid_respond_params(const ccid_msg_t *m, uint8_t cmd_status, uint8_t error)
{
    icc_params_t p;
    size_t n = 0;
    uint8_t proto = 0;
    if (icc_powered() && icc_get_params(&p) == ICC_OK && p.protocol <= ICC_PROTO_T1) {
        proto = p.protocol;
        n = ccid_encode_params(&p, ccid.rsp + CCID_HEADER_LEN);
    } else if (cmd_status == CCID_CMD_OK) {
        cmd_status = CCID_CMD_FAILED;
        error = CCID_ERR_ICC_MUTE;
    }
    ccid_respond(m, cmd_status, error, proto, n);
}

/* ---- PC_to_RDR handlers (§6.1) ---- */

/* §6.1.1 IccPowerOn → DataBlock with the ATR. bPowerSelect is accepted as
 * any valid value: voltage selection is automatic (dwFeatures). */
static void ccid_h_power_on(const ccid_msg_t *m)
{
    ccid.defaults_valid = false;
    if (!icc_present()) {
        ccid_fail(m, CCID_ERR_ICC_MUTE);
        return;
    }
    size_t n = 0;
    ccid_vendor_card_reset(); /* cold or warm reset: the card forgets its state */
    icc_status_t st = icc_power_on(ccid.rsp + CCID_HEADER_LEN, ICC_ATR_MAX, &n);
    if (st != ICC_OK) {
        ccid_fail(m, ccid_icc_error(st, 0));
        return;
    }
    if (n > ICC_ATR_MAX) {
        fw_bug(__FILE__, __LINE__);
        ccid_fail(m, CCID_ERR_HW_ERROR);
        return;
    }
    /* ResetParameters returns to what the ATR implied (§6.1.6). */
    ccid.defaults_valid = icc_get_params(&ccid.defaults) == ICC_OK;
    ccid_respond(m, CCID_CMD_OK, 0, 0, n);
}

/* §6.1.2 IccPowerOff → SlotStatus. */
static void ccid_h_power_off(const ccid_msg_t *m)
{
    icc_power_off();
    ccid_vendor_card_reset();
    ccid.defaults_valid = false;
    ccid_respond(m, CCID_CMD_OK, 0, ccid_clock_status(), 0);
}

/* §6.1.3 GetSlotStatus → SlotStatus. */
static void ccid_h_get_slot_status(const ccid_msg_t *m)
{
    ccid_respond(m, CCID_CMD_OK, 0, ccid_clock_status(), 0);
}

/* §6.1.4 XfrBlock at short APDU level: abData is one command APDU, the
 * answer one response APDU (bChainParameter 0). bBWI is ignored: icc times
 * the card itself and sends time extensions while it works. */
static void ccid_h_xfr_block(const ccid_msg_t *m)
{
    if (ccid_fail_unless_active(m))
        return;
    size_t n = 0;
    /* Through the gate when there is one (it may wait for the holder). */
    icc_status_t st = ccid_vendor != NULL && ccid_vendor->xfr != NULL
                          ? ccid_vendor->xfr(m->data, m->data_len, ccid.rsp + CCID_HEADER_LEN,
                                             CCID_RSP_DATA_MAX, &n)
                          : icc_transceive(m->data, m->data_len, ccid.rsp + CCID_HEADER_LEN,
                                           CCID_RSP_DATA_MAX, &n);
    if (ccid.state != CCID_STATE_BUSY)
        return; /* a bus reset arrived while it waited: nobody to answer */
    if (st != ICC_OK) {
        ccid_fail(m, ccid_icc_error(st, CCID_OFF_DATA));
        return;
    }
    ccid_respond(m, CCID_CMD_OK, 0, 0, n);
}

/* §6.1.5 GetParameters → Parameters. */
static void ccid_h_get_params(const ccid_msg_t *m)
{
    if (ccid_fail_unless_active(m))
        return;
    ccid_respond_params(m, CCID_CMD_OK, 0);
}

static void ccid_apply_params(const ccid_msg_t *m, const icc_params_t *want)
{
    icc_status_t st = icc_set_params(want);
    if (!icc_powered())
        ccid.defaults_valid = false; /* a failed PPS deactivated the card */
    if (st != ICC_OK) {
        ccid_respond_params(m, CCID_CMD_FAILED, ccid_icc_error(st, CCID_OFF_DATA));
        return;
    }
    ccid_respond_params(m, CCID_CMD_OK, 0);
}

/* §6.1.6 ResetParameters: back to the parameters the ATR implied. */
static void ccid_h_reset_params(const ccid_msg_t *m)
{
    if (ccid_fail_unless_active(m))
        return;
    if (!ccid.defaults_valid) {
        ccid_respond_params(m, CCID_CMD_OK, 0); /* nothing recorded: keep them */
        return;
    }
    icc_params_t want = ccid.defaults;
    ccid_apply_params(m, &want);
}

/* §6.1.7 SetParameters: fields already validated by ccid_msg_parse; icc
 * performs PPS itself when protocol or Fi/Di change (dwFeatures: automatic
 * PPS according to the active parameters). */
static void ccid_h_set_params(const ccid_msg_t *m)
{
    if (ccid_fail_unless_active(m))
        return;
    icc_params_t want;
    if (icc_get_params(&want) != ICC_OK)
        fw_memset(&want, 0, sizeof want);
    const uint8_t *d = m->data;
    want.protocol = m->param[0];
    want.fidi = d[0];
    want.tcckst = d[1];
    want.guard_time = d[2];
    want.waiting = d[3];
    want.clock_stop = d[4];
    if (want.protocol == ICC_PROTO_T1) {
        want.ifsc = d[5];
        want.nad = d[6];
    }
    ccid_apply_params(m, &want);
}

/* §6.1.8 Escape: vendor commands from ccid_escape_cmds only. */
static void ccid_h_escape(const ccid_msg_t *m)
{
    if (m->data_len == 0) {
        ccid_fail(m, CCID_ERR_CMD_NOT_SUPPORTED);
        return;
    }
    for (size_t i = 0; i < FW_ARRAY_LEN(ccid_escape_cmds); i++) {
        const ccid_escape_cmd_t *c = &ccid_escape_cmds[i];
        if (c->run == NULL || c->code != m->data[0])
            continue;
        size_t n = 0;
        uint8_t error = CCID_ERR_HW_ERROR;
        if (!c->run(m->data + 1, m->data_len - 1u, ccid.rsp + CCID_HEADER_LEN, CCID_RSP_DATA_MAX,
                    &n, &error)) {
            ccid_fail(m, error);
            return;
        }
        ccid_respond(m, CCID_CMD_OK, 0, 0, n);
        return;
    }
    ccid_fail(m, CCID_ERR_CMD_NOT_SUPPORTED);
}

/* §6.1.9 IccClock: the clock always runs while the card is active; stopping
 * it is not offered (dwFeatures has no clock stop bit). */
static void ccid_h_icc_clock(const ccid_msg_t *m)
{
    if (m->param[0] != 0) {
        ccid_fail(m, CCID_ERR_CMD_NOT_SUPPORTED);
        return;
    }
    ccid_respond(m, CCID_CMD_OK, 0, ccid_clock_status(), 0);
}

/* §6.1.10 T0APDU, §6.1.12 Mechanical (dwMechanical 0): not supported. */
static void ccid_h_not_supported(const ccid_msg_t *m)
{
    ccid_fail(m, CCID_ERR_CMD_NOT_SUPPORTED);
}

/* §6.1.11 Secure: PIN verification/modification on the keypad (bPINSupport
 * 03, ccid_secure.c). The holder may take long: the ui wait hook sends time
 * extensions meanwhile. A bus reset during the entry leaves no one to answer. */
static void ccid_h_secure(const ccid_msg_t *m)
{
    if (ccid_fail_unless_active(m))
        return;
    size_t n = 0;
    uint8_t error = CCID_ERR_HW_ERROR;
    bool ok = ccid_secure_run(m->data, m->data_len, ccid.rsp + CCID_HEADER_LEN,
                              CCID_RSP_DATA_MAX, &n, &error);
    if (ccid.state != CCID_STATE_BUSY)
        return;
    if (!ok) {
        ccid_fail(m, error);
        return;
    }
    ccid_respond(m, CCID_CMD_OK, 0, 0, n);
}

/* §6.1.14 SetDataRateAndClockFrequency: the clock is fixed and the data rate
 * follows the parameters (automatic baud rate change), so the answer reports
 * the values in force (§6.2.5). */
static void ccid_h_set_rate_clock(const ccid_msg_t *m)
{
    uint8_t fidi = 0x11u; /* Fi 372, Di 1 until a card is active */
    icc_params_t p;
    if (icc_powered() && icc_get_params(&p) == ICC_OK)
        fidi = p.fidi;
    uint32_t hz = icc_clock_hz();
    uint32_t bps = 0;
    if (!ccid_msg_fidi_rate(fidi, hz, &bps))
        bps = 0;
    fw_put_le32(ccid.rsp + CCID_HEADER_LEN, hz / 1000u);
    fw_put_le32(ccid.rsp + CCID_HEADER_LEN + 4u, bps);
    ccid_respond(m, CCID_CMD_OK, 0, 0, 8);
}

static const struct {
    uint8_t type;
    ccid_handler_t handler;
} ccid_handlers[] = {
    {CCID_PC_TO_RDR_ICC_POWER_ON, ccid_h_power_on},
    {CCID_PC_TO_RDR_ICC_POWER_OFF, ccid_h_power_off},
    {CCID_PC_TO_RDR_GET_SLOT_STATUS, ccid_h_get_slot_status},
    {CCID_PC_TO_RDR_XFR_BLOCK, ccid_h_xfr_block},
    {CCID_PC_TO_RDR_GET_PARAMETERS, ccid_h_get_params},
    {CCID_PC_TO_RDR_RESET_PARAMETERS, ccid_h_reset_params},
    {CCID_PC_TO_RDR_SET_PARAMETERS, ccid_h_set_params},
    {CCID_PC_TO_RDR_ESCAPE, ccid_h_escape},
    {CCID_PC_TO_RDR_ICC_CLOCK, ccid_h_icc_clock},
    {CCID_PC_TO_RDR_T0APDU, ccid_h_not_supported},
    {CCID_PC_TO_RDR_SECURE, ccid_h_secure},
    {CCID_PC_TO_RDR_MECHANICAL, ccid_h_not_supported},
    {CCID_PC_TO_RDR_SET_DATA_RATE_CLK, ccid_h_set_rate_clock},
    /* PC_to_RDR_Abort is a transition of ccid_step, not a handler. */
};

/* Runs one command: BUSY while the card works (the wait hook sends time
 * extensions only in that state). */
static void ccid_run(const ccid_msg_t *m)
{
    ccid_handler_t handler = NULL;
    for (size_t i = 0; i < FW_ARRAY_LEN(ccid_handlers); i++) {
        if (ccid_handlers[i].type == m->type)
            handler = ccid_handlers[i].handler;
    }
    if (handler == NULL) {
        ccid_fail(m, CCID_ERR_CMD_NOT_SUPPORTED);
        return;
    }
    ccid.state = CCID_STATE_BUSY;
    ccid.cur_rsp_type = m->rsp_type;
    ccid.cur_seq = m->seq;
    ccid.time_ext_sent = false;
    handler(m);
    if (ccid.state != CCID_STATE_BUSY)
        return; /* a bus reset arrived meanwhile */
    if (ccid.abort_after_busy) {
        ccid.abort_after_busy = false;
        ccid.abort_seq = ccid.abort_busy_seq;
        ccid.state = CCID_STATE_ABORT_CTRL;
    } else {
        ccid.state = CCID_STATE_IDLE;
    }
}

/* ---- the one transition function ---- */

static void ccid_step(const ccid_event_t *ev)
{
    if (ev->kind == CCID_EV_RESET) {
        ccid.state = CCID_STATE_IDLE;
        ccid.abort_after_busy = false;
        return;
    }
    const ccid_msg_t *m = ev->msg;
    bool is_abort = ev->kind == CCID_EV_MESSAGE && m->type == CCID_PC_TO_RDR_ABORT;
    if (ccid.state == CCID_STATE_ABORT_BULK && ev->kind == CCID_EV_MESSAGE) {
        /* The host moved on without the class request: close the pending
         * Abort, then take the new message as in IDLE. */
        ccid.state = CCID_STATE_IDLE;
        ccid_abort_done(ccid.abort_seq);
    }
    switch (ccid.state) {
    case CCID_STATE_IDLE:
        if (ev->kind == CCID_EV_CTRL_ABORT) {
            ccid.abort_seq = ev->seq;
            ccid.state = CCID_STATE_ABORT_CTRL;
        } else if (is_abort) {
            /* Answered once the class ABORT request arrives too (§5.3.1). */
            ccid.abort_seq = m->seq;
            ccid.state = CCID_STATE_ABORT_BULK;
        } else {
            ccid_run(m);
        }
        break;
    case CCID_STATE_ABORT_CTRL:
        if (ev->kind == CCID_EV_CTRL_ABORT) {
            ccid.abort_seq = ev->seq; /* the host restarted the sequence */
        } else if (is_abort && m->seq == ccid.abort_seq) {
            ccid.state = CCID_STATE_IDLE;
            ccid_abort_done(m->seq);
        } else {
            ccid_fail(m, CCID_ERR_CMD_ABORTED);
        }
        break;
    case CCID_STATE_ABORT_BULK: {
        /* Only the class ABORT request gets here (messages handled above). */
        uint8_t pending = ccid.abort_seq;
        if (ev->seq == pending) {
            ccid.state = CCID_STATE_IDLE;
        } else {
            ccid.abort_seq = ev->seq;
            ccid.state = CCID_STATE_ABORT_CTRL;
        }
        ccid_abort_done(pending);
        break;
    }
    case CCID_STATE_BUSY:
        if (ev->kind == CCID_EV_CTRL_ABORT) {
            ccid.abort_after_busy = true;
            ccid.abort_busy_seq = ev->seq;
        } else {
            ccid_fail_aux(m->rsp_type, m->slot, m->seq, ccid_icc_status(), CCID_ERR_CMD_SLOT_BUSY);
        }
        break;
    default:
        fw_bug(__FILE__, __LINE__);
        ccid.state = CCID_STATE_IDLE;
        break;
    }
}

/* ---- time extension (§6.2.7) ---- */

/* icc calls this while the card asks for more time (T=0 NULL byte, T=1
 * S(WTX)): an answer of the command's type with bmCommandStatus 2 and
 * bError 1 (BWT/WWT multiplier), same bSeq, keeps the host waiting. */
static void ccid_wait_hook(void *ctx)
{
    (void)ctx;
    if (ccid.state != CCID_STATE_BUSY)
        return;
    uint64_t now = port_time_us();
    if (ccid.time_ext_sent && now - ccid.time_ext_last_us < CCID_TIME_EXT_MIN_US)
        return;
    ccid.time_ext_sent = true;
    ccid.time_ext_last_us = now;
    ccid_msg_put_header(ccid.aux, ccid.cur_rsp_type, 0, 0, ccid.cur_seq,
                        (uint8_t)(CCID_CMD_TIME_EXT | ccid_icc_status()), 1, 0);
    ccid_send(ccid.aux, CCID_HEADER_LEN);
}

/* ui calls this about once a second while the holder types a PIN or reads a
 * confirmation: a time extension as above, and the wait ends early when its
 * command is gone (bus reset, unplug) or the card left. */
static void ccid_ui_wait_hook(void *ctx)
{
    ccid_wait_hook(ctx);
    if (ccid.state != CCID_STATE_BUSY || !icc_present())
        ui_abort();
}

/* ---- interrupt pipe (§6.3.1) ---- */

static void ccid_notify_flush(void)
{
    if (!ccid.configured || !ccid.notify_pending)
        return;
    /* bmSlotICCState for slot 0: bit 0 card present, bit 1 changed. */
    ccid.notify[0] = CCID_RDR_TO_PC_NOTIFY_SLOT_CHANGE;
    ccid.notify[1] = (uint8_t)(0x02u | (icc_present() ? 0x01u : 0x00u));
    if (port_usb_write(CCID_EP_INTR_IN, ccid.notify, sizeof ccid.notify) == PORT_OK)
        ccid.notify_pending = false;
}

/* ---- public API ---- */

void ccid_init(void)
{
    fw_memset(&ccid, 0, sizeof ccid);
    icc_set_wait_hook(ccid_wait_hook, NULL);
    ui_set_wait_hook(ccid_ui_wait_hook, NULL);
}

void ccid_on_reset(void)
{
    ccid_event_t ev = {.kind = CCID_EV_RESET};
    ccid_step(&ev);
    ccid.configured = false;
    ccid.notify_pending = false;
    /* A new host session starts with the card unpowered (no PIN state kept
     * across a bus reset or an unplug, as on a bus-powered reader). */
    icc_power_off();
    ccid_vendor_card_reset();
    ccid.defaults_valid = false;
}

void ccid_on_configured(void)
{
    ccid.configured = true;
    ccid.notify_pending = true; /* tell the host the slot state once */
    ccid_notify_flush();
}

bool ccid_on_request(const usb_setup_t *setup, const uint8_t *data, size_t len)
{
    (void)data;
    (void)len;
    FW_VERIFY(setup != NULL, false);
    FW_VERIFY((setup->bmRequestType & 0x60u) == 0x20u, false); /* class only */
    FW_VERIFY((setup->wIndex & 0xFFu) == CCID_INTERFACE, false);
    switch (setup->bRequest) {
    case CCID_REQ_ABORT: {
        /* §5.3.1: host to device, wValue = bSeq << 8 | bSlot, no data. */
        FW_VERIFY(setup->bmRequestType == 0x21u && setup->wLength == 0, false);
        FW_VERIFY((setup->wValue & 0xFFu) == 0, false); /* slot 0 only */
        (void)port_usb_ep0_reply(NULL, 0);
        ccid_event_t ev = {.kind = CCID_EV_CTRL_ABORT, .seq = (uint8_t)(setup->wValue >> 8)};
        ccid_step(&ev);
        return true;
    }
    case CCID_REQ_GET_CLOCK_FREQUENCIES:
    case CCID_REQ_GET_DATA_RATES:
        /* §5.3.2/§5.3.3: bNumClockSupported and bNumDataRatesSupported are
         * 0 (default clock only, any rate in range): the lists are empty. */
        FW_VERIFY(setup->bmRequestType == 0xA1u && setup->wValue == 0, false);
        (void)port_usb_ep0_reply(NULL, 0);
        return true;
    default:
        return false;
    }
}

void ccid_on_out(uint8_t ep, const uint8_t *data, size_t len)
{
    if (ep != CCID_EP_BULK_OUT)
        return;
    ccid_msg_t m;
    ccid_parse_status_t ps = ccid_msg_parse(data, len, &m);
    if (ps == CCID_PARSE_TOO_SHORT)
        return; /* no bSeq to answer with */
    if (ccid.state == CCID_STATE_BUSY) {
        ccid_fail_aux(m.rsp_type, m.slot, m.seq, ccid_icc_status(), CCID_ERR_CMD_SLOT_BUSY);
        return;
    }
    if (ps == CCID_PARSE_UNKNOWN) {
        ccid_fail(&m, CCID_ERR_CMD_NOT_SUPPORTED);
        return;
    }
    if (ps == CCID_PARSE_BAD_FIELD) {
        /* A slot that does not exist holds no card. */
        uint8_t icc = m.bad_field == CCID_OFF_SLOT ? CCID_ICC_ABSENT : ccid_icc_status();
        ccid_fail_aux(m.rsp_type, m.slot, m.seq, icc, m.bad_field);
        return;
    }
    ccid_event_t ev = {.kind = CCID_EV_MESSAGE, .msg = &m};
    ccid_step(&ev);
}

void ccid_slot_changed(bool present)
{
    if (!present) {
        icc_power_off(); /* removal deactivates the slot */
        ccid_vendor_card_reset();
        ccid.defaults_valid = false;
    }
    ccid.notify_pending = true;
    ccid_notify_flush();
}

void ccid_set_vendor_hooks(const ccid_vendor_hooks_t *hooks)
{
    ccid_vendor = hooks;
}

void ccid_poll(void)
{
    ccid_notify_flush();
}

static const usb_class_ops_t ccid_ops = {
    .on_reset = ccid_on_reset,
    .on_configured = ccid_on_configured,
    .on_request = ccid_on_request,
    .on_out = ccid_on_out,
};

const usb_class_ops_t *ccid_usb_class(void)
{
    return &ccid_ops;
}
