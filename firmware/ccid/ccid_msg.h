/* ccid_msg: the CCID rev 1.1 bulk message format (§6.1 PC_to_RDR, §6.2
 * RDR_to_PC, §6.3 interrupt) and a pure parser/validator of PC_to_RDR messages,
 * kept apart from the handlers so it can be fuzzed on its own. */
#ifndef CACHET_CCID_MSG_H
#define CACHET_CCID_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Every message starts with a 10-byte header (§6.1, §6.2). */
#define CCID_HEADER_LEN 10u
/* dwMaxCCIDMessageLength of our class descriptor (§5.1): header + a short
 * APDU command of 261 bytes (4 header + Lc + 255 data + Le). */
#define CCID_MAX_MESSAGE_LEN 271u
#define CCID_MAX_DATA_LEN    (CCID_MAX_MESSAGE_LEN - CCID_HEADER_LEN)

/* Clock and data rates of our class descriptor (§5.1): one fixed card clock
 * of 5 MHz; dwDataRate = 5 MHz / 372 (Fi 372, Di 1), dwMaxDataRate = Di 32 at
 * Fi 372 (ISO/IEC 7816-3 §7.1: rate = D * f / F). */
#define CCID_CLOCK_KHZ     5000u
#define CCID_DATA_RATE     13441u
#define CCID_MAX_DATA_RATE 430108u

/* PC_to_RDR message types (§6.1, Table 6.1-1). */
#define CCID_PC_TO_RDR_SET_PARAMETERS    0x61u
#define CCID_PC_TO_RDR_ICC_POWER_ON      0x62u
#define CCID_PC_TO_RDR_ICC_POWER_OFF     0x63u
#define CCID_PC_TO_RDR_GET_SLOT_STATUS   0x65u
#define CCID_PC_TO_RDR_SECURE            0x69u
#define CCID_PC_TO_RDR_T0APDU            0x6Au
#define CCID_PC_TO_RDR_ESCAPE            0x6Bu
#define CCID_PC_TO_RDR_GET_PARAMETERS    0x6Cu
#define CCID_PC_TO_RDR_RESET_PARAMETERS  0x6Du
#define CCID_PC_TO_RDR_ICC_CLOCK         0x6Eu
#define CCID_PC_TO_RDR_XFR_BLOCK         0x6Fu
#define CCID_PC_TO_RDR_MECHANICAL        0x71u
#define CCID_PC_TO_RDR_ABORT             0x72u
#define CCID_PC_TO_RDR_SET_DATA_RATE_CLK 0x73u

/* RDR_to_PC message types (§6.2, Table 6.2-1). */
#define CCID_RDR_TO_PC_DATA_BLOCK    0x80u
#define CCID_RDR_TO_PC_SLOT_STATUS   0x81u
#define CCID_RDR_TO_PC_PARAMETERS    0x82u
#define CCID_RDR_TO_PC_ESCAPE        0x83u
#define CCID_RDR_TO_PC_DATA_RATE_CLK 0x84u
/* Interrupt IN messages (§6.3). */
#define CCID_RDR_TO_PC_NOTIFY_SLOT_CHANGE 0x50u
#define CCID_RDR_TO_PC_HARDWARE_ERROR     0x51u

/* bStatus = bmCommandStatus (bits 7..6) | bmICCStatus (bits 1..0), §6.2.6. */
#define CCID_ICC_ACTIVE   0x00u
#define CCID_ICC_INACTIVE 0x01u
#define CCID_ICC_ABSENT   0x02u
#define CCID_CMD_OK       0x00u
#define CCID_CMD_FAILED   0x40u
#define CCID_CMD_TIME_EXT 0x80u

/* bError when bmCommandStatus = 1 (§6.2.6, Table 6.2-2). Values 1..127 are
 * the offset of the header field in error. */
#define CCID_ERR_CMD_ABORTED                0xFFu
#define CCID_ERR_ICC_MUTE                   0xFEu
#define CCID_ERR_XFR_PARITY_ERROR           0xFDu
#define CCID_ERR_XFR_OVERRUN                0xFCu
#define CCID_ERR_HW_ERROR                   0xFBu
#define CCID_ERR_BAD_ATR_TS                 0xF8u
#define CCID_ERR_BAD_ATR_TCK                0xF7u
#define CCID_ERR_ICC_PROTOCOL_NOT_SUPPORTED 0xF6u
#define CCID_ERR_ICC_CLASS_NOT_SUPPORTED    0xF5u
#define CCID_ERR_PROCEDURE_BYTE_CONFLICT    0xF4u
#define CCID_ERR_DEACTIVATED_PROTOCOL       0xF3u
#define CCID_ERR_BUSY_WITH_AUTO_SEQUENCE    0xF2u
#define CCID_ERR_PIN_TIMEOUT                0xF0u
#define CCID_ERR_PIN_CANCELLED              0xEFu
#define CCID_ERR_CMD_SLOT_BUSY              0xE0u
#define CCID_ERR_CMD_NOT_SUPPORTED          0x00u

/* Offsets of the header fields (§6.1), used as bError for a bad field. */
#define CCID_OFF_TYPE   0u
#define CCID_OFF_LENGTH 1u
#define CCID_OFF_SLOT   5u
#define CCID_OFF_SEQ    6u
#define CCID_OFF_PARAM  7u /* bPowerSelect, bBWI, bProtocolNum, bClockCommand, ... */
#define CCID_OFF_LEVEL  8u /* wLevelParameter (XfrBlock, Secure) */
#define CCID_OFF_DATA   10u

/* abProtocolDataStructure lengths for SetParameters / Parameters (§6.1.7). */
#define CCID_PARAMS_T0_LEN 5u
#define CCID_PARAMS_T1_LEN 7u

/* bClockStatus of RDR_to_PC_SlotStatus (§6.2.2). */
#define CCID_CLOCK_RUNNING   0x00u
#define CCID_CLOCK_STOPPED_L 0x01u

typedef enum {
    CCID_PARSE_OK = 0,
    CCID_PARSE_TOO_SHORT, /* under 10 bytes: no bSeq to answer with, drop it */
    CCID_PARSE_UNKNOWN,   /* unknown bMessageType: answer CMD_NOT_SUPPORTED */
    CCID_PARSE_BAD_FIELD, /* answer bError = bad_field (offset of the field) */
} ccid_parse_status_t;

/* One PC_to_RDR message. data points into the caller's buffer. */
typedef struct {
    uint8_t type;     /* bMessageType */
    uint8_t rsp_type; /* RDR_to_PC type that answers it (§6.2) */
    uint32_t length;  /* dwLength as received */
    uint8_t slot;     /* bSlot */
    uint8_t seq;      /* bSeq */
    uint8_t param[3]; /* bytes 7..9: message specific */
    const uint8_t *data;
    size_t data_len;   /* == length when the parse succeeded */
    uint8_t bad_field; /* CCID_PARSE_BAD_FIELD: offset of the field */
} ccid_msg_t;

/* Parses and validates one whole bulk OUT transfer (len bytes). Fills out as
 * far as the message could be read (type, rsp_type, slot and seq whenever
 * len >= 10). Checks, in this order: dwLength against the transfer size and
 * the per-message limits (offset 1), bSlot (offset 5: slot does not exist),
 * then the message-specific fields of §6.1. Never reads past buf[len-1]. */
ccid_parse_status_t ccid_msg_parse(const uint8_t *buf, size_t len, ccid_msg_t *out);

/* RDR_to_PC type answering a PC_to_RDR type (§6.2, Table 6.2-1); an unknown
 * type is answered with RDR_to_PC_SlotStatus, bError CMD_NOT_SUPPORTED. */
uint8_t ccid_msg_response_type(uint8_t pc_to_rdr_type);

/* Data rate in bit/s of bmFindexDindex at clock_hz (ISO/IEC 7816-3 §7.1:
 * D * f / F, rounded). false when Fi or Di is an RFU index. bps may be NULL. */
bool ccid_msg_fidi_rate(uint8_t fidi, uint32_t clock_hz, uint32_t *bps);

/* Writes a 10-byte RDR_to_PC header into out. */
void ccid_msg_put_header(uint8_t out[CCID_HEADER_LEN], uint8_t type, uint32_t length, uint8_t slot,
                         uint8_t seq, uint8_t status, uint8_t error, uint8_t specific);

#endif
