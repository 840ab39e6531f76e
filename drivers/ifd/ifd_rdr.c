/* ifd_rdr: CCID message codec, host side (USB CCID rev 1.1 §6). */
#include "ifd_rdr.h"

#include <string.h>

ifd_rdr_result_t ifd_rdr_parse(const uint8_t *msg, size_t len, ifd_rdr_msg_t *out)
{
    IFD_VERIFY(msg != NULL && out != NULL, IFD_RDR_SHORT);
    memset(out, 0, sizeof *out);
    IFD_VERIFY(len >= IFD_CCID_HEADER, IFD_RDR_SHORT);

    uint8_t type = msg[0];
    /* §6.2: the five RDR_to_PC responses; anything else is not for the bulk pipe. */
    IFD_VERIFY(type >= IFD_RDR_DATA_BLOCK && type <= IFD_RDR_DATA_RATE_CLOCK, IFD_RDR_BAD_TYPE);

    /* dwLength counts the bytes after the header; the transfer must carry
     * exactly that many (overflow-safe: compare against len - header). */
    uint32_t dw_length = ifd_get_le32(msg + 1);
    IFD_VERIFY(dw_length == len - IFD_CCID_HEADER, IFD_RDR_BAD_LENGTH);

    uint8_t status = msg[7];
    uint8_t icc = status & 0x03u;
    uint8_t cmd = (uint8_t)(status >> 6);
    /* §6.2.6: bits 2-5 RFU; bmICCStatus 3 and bmCommandStatus 3 are RFU. */
    IFD_VERIFY((status & 0x3Cu) == 0 && icc != 3 && cmd != 3, IFD_RDR_BAD_STATUS);

    switch (type) {
    case IFD_RDR_SLOT_STATUS:
        /* §6.2.2: no data. */
        IFD_VERIFY(dw_length == 0, IFD_RDR_BAD_LENGTH);
        break;
    case IFD_RDR_PARAMETERS:
        /* §6.2.3: bProtocolNum 0 → 5 bytes (T=0), 1 → 7 bytes (T=1). A failed
         * command may carry no structure at all. */
        if (cmd == IFD_CMD_OK) {
            if (msg[9] == 0)
                IFD_VERIFY(dw_length == 5, IFD_RDR_BAD_FIELD);
            else if (msg[9] == 1)
                IFD_VERIFY(dw_length == 7, IFD_RDR_BAD_FIELD);
            else
                return IFD_RDR_BAD_FIELD;
        }
        break;
    case IFD_RDR_DATA_RATE_CLOCK:
        /* §6.2.5: dwClockFrequency and dwDataRate. */
        IFD_VERIFY(dw_length == 8 || (cmd != IFD_CMD_OK && dw_length == 0), IFD_RDR_BAD_LENGTH);
        break;
    default:
        break;
    }

    out->type = type;
    out->slot = msg[5];
    out->seq = msg[6];
    out->status = status;
    out->icc_status = icc;
    out->cmd_status = cmd;
    out->error = msg[8];
    out->specific = msg[9];
    out->data = dw_length ? msg + IFD_CCID_HEADER : NULL;
    out->data_len = dw_length;
    return IFD_RDR_OK;
}

ifd_rdr_result_t ifd_intr_parse(const uint8_t *msg, size_t len, ifd_intr_msg_t *out)
{
    IFD_VERIFY(msg != NULL && out != NULL, IFD_RDR_SHORT);
    memset(out, 0, sizeof *out);
    IFD_VERIFY(len >= 1, IFD_RDR_SHORT);
    out->type = msg[0];
    switch (msg[0]) {
    case IFD_RDR_NOTIFY_SLOT_CHANGE:
        /* §6.3.1: bmSlotICCState, 2 bits per slot, rounded up to bytes. One
         * slot → 1 byte; accept trailing bytes of bigger readers (ignored). */
        IFD_VERIFY(len >= 2, IFD_RDR_SHORT);
        out->slot0_state = msg[1] & 0x03u;
        return IFD_RDR_OK;
    case IFD_RDR_HARDWARE_ERROR:
        /* §6.3.2: bSlot, bSeq, bHardwareErrorCode. */
        IFD_VERIFY(len == 4, IFD_RDR_BAD_LENGTH);
        out->hw_slot = msg[1];
        out->hw_seq = msg[2];
        out->hw_code = msg[3];
        return IFD_RDR_OK;
    default:
        return IFD_RDR_BAD_TYPE;
    }
}

size_t ifd_pc_build(uint8_t *out, size_t cap, uint8_t type, uint8_t slot, uint8_t seq,
                    const uint8_t specific[3], const uint8_t *data, size_t data_len)
{
    IFD_VERIFY(out != NULL, 0);
    IFD_VERIFY(cap >= IFD_CCID_HEADER && data_len <= cap - IFD_CCID_HEADER, 0);
    IFD_VERIFY(data_len == 0 || data != NULL, 0);
    out[0] = type;
    ifd_put_le32(out + 1, (uint32_t)data_len);
    out[5] = slot;
    out[6] = seq;
    out[7] = specific ? specific[0] : 0;
    out[8] = specific ? specific[1] : 0;
    out[9] = specific ? specific[2] : 0;
    if (data_len)
        memcpy(out + IFD_CCID_HEADER, data, data_len);
    return IFD_CCID_HEADER + data_len;
}

const char *ifd_rdr_error_name(uint8_t error)
{
    switch (error) {
    case IFD_ERR_CMD_ABORTED:
        return "CMD_ABORTED";
    case IFD_ERR_ICC_MUTE:
        return "ICC_MUTE";
    case IFD_ERR_XFR_PARITY:
        return "XFR_PARITY_ERROR";
    case IFD_ERR_XFR_OVERRUN:
        return "XFR_OVERRUN";
    case IFD_ERR_HW_ERROR:
        return "HW_ERROR";
    case IFD_ERR_BAD_ATR_TS:
        return "BAD_ATR_TS";
    case IFD_ERR_BAD_ATR_TCK:
        return "BAD_ATR_TCK";
    case IFD_ERR_PROTOCOL_NOT_SUPPORTED:
        return "ICC_PROTOCOL_NOT_SUPPORTED";
    case IFD_ERR_CLASS_NOT_SUPPORTED:
        return "ICC_CLASS_NOT_SUPPORTED";
    case IFD_ERR_PROCEDURE_BYTE_CONFLICT:
        return "PROCEDURE_BYTE_CONFLICT";
    case IFD_ERR_DEACTIVATED_PROTOCOL:
        return "DEACTIVATED_PROTOCOL";
    case IFD_ERR_BUSY_AUTO_SEQUENCE:
        return "BUSY_WITH_AUTO_SEQUENCE";
    case IFD_ERR_PIN_TIMEOUT:
        return "PIN_TIMEOUT";
    case IFD_ERR_PIN_CANCELLED:
        return "PIN_CANCELLED";
    case IFD_ERR_CMD_SLOT_BUSY:
        return "CMD_SLOT_BUSY";
    case IFD_ERR_CMD_NOT_SUPPORTED:
        return "CMD_NOT_SUPPORTED";
    default:
        return "bad parameter offset";
    }
}
