/* ifd_rdr: the CCID bulk and interrupt message formats seen from the host
 * (USB CCID rev 1.1 §6). Builds PC_to_RDR messages and parses RDR_to_PC and
 * interrupt messages. Pure functions, no I/O: ifd_rdr_parse() is fuzzed. */
#ifndef CACHET_IFD_RDR_H
#define CACHET_IFD_RDR_H

#include <stddef.h>
#include <stdint.h>

#include "ifd_util.h"

/* Every bulk message starts with a 10-byte header (CCID rev 1.1 §6.1, §6.2). */
#define IFD_CCID_HEADER 10u
/* Largest bulk message the host handles (≥ the appliance's 271, ≤ the
 * simulation cable's 4096-byte frame cap, docs/simulation.md §1). */
#define IFD_MSG_MAX 4096u
_Static_assert(IFD_MSG_MAX > IFD_CCID_HEADER + 261u, "room for a short APDU");

/* PC_to_RDR message types (CCID rev 1.1 §6.1). */
enum {
    IFD_PC_ICC_POWER_ON = 0x62,
    IFD_PC_ICC_POWER_OFF = 0x63,
    IFD_PC_GET_SLOT_STATUS = 0x65,
    IFD_PC_XFR_BLOCK = 0x6F,
    IFD_PC_GET_PARAMETERS = 0x6C,
    IFD_PC_RESET_PARAMETERS = 0x6D,
    IFD_PC_SET_PARAMETERS = 0x61,
    IFD_PC_ESCAPE = 0x6B,
    IFD_PC_SECURE = 0x69,
    IFD_PC_ABORT = 0x72,
};

/* RDR_to_PC message types (CCID rev 1.1 §6.2) and interrupt IN (§6.3). */
enum {
    IFD_RDR_DATA_BLOCK = 0x80,
    IFD_RDR_SLOT_STATUS = 0x81,
    IFD_RDR_PARAMETERS = 0x82,
    IFD_RDR_ESCAPE = 0x83,
    IFD_RDR_DATA_RATE_CLOCK = 0x84,
    IFD_RDR_NOTIFY_SLOT_CHANGE = 0x50,
    IFD_RDR_HARDWARE_ERROR = 0x51,
};

/* bStatus (CCID rev 1.1 §6.2.6): bmICCStatus bits 0-1, bmCommandStatus bits 6-7. */
enum {
    IFD_ICC_ACTIVE = 0,
    IFD_ICC_INACTIVE = 1,
    IFD_ICC_ABSENT = 2,
};
enum {
    IFD_CMD_OK = 0,
    IFD_CMD_FAILED = 1,
    IFD_CMD_TIME_EXTENSION = 2,
};

/* bError values (CCID rev 1.1 §6.2.6, Table 6.2-2). */
enum {
    IFD_ERR_CMD_ABORTED = 0xFF,
    IFD_ERR_ICC_MUTE = 0xFE,
    IFD_ERR_XFR_PARITY = 0xFD,
    IFD_ERR_XFR_OVERRUN = 0xFC,
    IFD_ERR_HW_ERROR = 0xFB,
    IFD_ERR_BAD_ATR_TS = 0xF8,
    IFD_ERR_BAD_ATR_TCK = 0xF7,
    IFD_ERR_PROTOCOL_NOT_SUPPORTED = 0xF6,
    IFD_ERR_CLASS_NOT_SUPPORTED = 0xF5,
    IFD_ERR_PROCEDURE_BYTE_CONFLICT = 0xF4,
    IFD_ERR_DEACTIVATED_PROTOCOL = 0xF3,
    IFD_ERR_BUSY_AUTO_SEQUENCE = 0xF2,
    IFD_ERR_PIN_TIMEOUT = 0xF0,
    IFD_ERR_PIN_CANCELLED = 0xEF,
    IFD_ERR_CMD_SLOT_BUSY = 0xE0,
    IFD_ERR_CMD_NOT_SUPPORTED = 0x00,
};

/* Why a message was rejected. */
typedef enum {
    IFD_RDR_OK = 0,
    IFD_RDR_SHORT,      /* shorter than its fixed part */
    IFD_RDR_BAD_TYPE,   /* not an RDR_to_PC / interrupt message */
    IFD_RDR_BAD_LENGTH, /* dwLength disagrees with the transfer size */
    IFD_RDR_BAD_STATUS, /* RFU values in bStatus */
    IFD_RDR_BAD_FIELD,  /* a message-specific field is impossible */
} ifd_rdr_result_t;

/* A parsed RDR_to_PC message. data points into the parsed buffer. */
typedef struct {
    uint8_t type;
    uint8_t slot;
    uint8_t seq;
    uint8_t status;     /* raw bStatus */
    uint8_t icc_status; /* bmICCStatus */
    uint8_t cmd_status; /* bmCommandStatus */
    uint8_t error;      /* bError (time extension: BWT multiplier) */
    uint8_t specific;   /* bChainParameter / bClockStatus / bProtocolNum / RFU */
    const uint8_t *data;
    size_t data_len;
} ifd_rdr_msg_t;

/* Parses one whole bulk IN transfer. The transfer size must equal 10 +
 * dwLength exactly (CCID rev 1.1 §6.2); type-specific lengths are checked
 * (SlotStatus has none, Parameters carries the 5- or 7-byte structure of
 * §6.2.3 when it succeeded, DataRateAndClockFrequency 8 bytes). */
ifd_rdr_result_t ifd_rdr_parse(const uint8_t *msg, size_t len, ifd_rdr_msg_t *out);

/* A parsed interrupt IN message (CCID rev 1.1 §6.3). */
typedef struct {
    uint8_t type;
    uint8_t slot0_state; /* NotifySlotChange: bits 0 (present) and 1 (changed) of slot 0 */
    uint8_t hw_slot;     /* HardwareError: bSlot, bSeq, bHardwareErrorCode */
    uint8_t hw_seq;
    uint8_t hw_code;
} ifd_intr_msg_t;

#define IFD_SLOT_PRESENT 0x01u
#define IFD_SLOT_CHANGED 0x02u

ifd_rdr_result_t ifd_intr_parse(const uint8_t *msg, size_t len, ifd_intr_msg_t *out);

/* Writes a PC_to_RDR message: header (type, dwLength = data_len, bSlot, bSeq,
 * the three message-specific bytes) then data. Returns the message size, or 0
 * if it does not fit in cap. */
size_t ifd_pc_build(uint8_t *out, size_t cap, uint8_t type, uint8_t slot, uint8_t seq,
                    const uint8_t specific[3], const uint8_t *data, size_t data_len);

/* Human-readable bError, for the log. */
const char *ifd_rdr_error_name(uint8_t error);

#endif
