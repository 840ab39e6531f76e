/* ccid_secure: PC_to_RDR_Secure (CCID rev 1.1 §6.1.11), secure PIN entry on
 * the appliance's keypad: PIN verification (bPINOperation 0, §6.1.11.7) and
 * modification (1, §6.1.11.8). The host sends a structure and an APDU
 * template; the appliance asks the holder for the PIN(s) on its own screen,
 * inserts them into the template as the structure says, sends the APDU to the
 * card and returns only the card's answer: the PIN never crosses USB.
 *
 * The parser and the APDU builder are pure (fuzzed by tests/fuzz/ccid_secure);
 * ccid_secure_run drives ui and icc. The PIN block vocabulary follows PC/SC
 * part 10 v2.02.09 §2.5.2: the PIN block begins at the APDU body (after Lc);
 * the PIN frame (the digits) and the PIN length field sit at offsets within it. */
#ifndef CACHET_CCID_SECURE_H
#define CACHET_CCID_SECURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* bPINOperation (§6.1.11, Table 6.1-14). */
#define CCID_PIN_OP_VERIFY 0x00u
#define CCID_PIN_OP_MODIFY 0x01u

/* The longest PIN the keypad takes (ISO 9564-1: 4 to 12 digits). */
#define CCID_SECURE_PIN_MAX 12u
/* abPINApdu: a short command APDU header and body (ISO/IEC 7816-4 §5.1). */
#define CCID_SECURE_APDU_MAX 260u /* 4 + Lc + 255: a PIN command has no Le */
#define CCID_SECURE_BODY_MAX 255u

/* Offsets in abData (bPINOperation at 0) of the fields of §6.1.11.7/8. */
#define CCID_SECURE_OFF_OPERATION  0u
#define CCID_SECURE_OFF_TIMEOUT    1u
#define CCID_SECURE_OFF_FORMAT     2u
#define CCID_SECURE_OFF_BLOCK      3u
#define CCID_SECURE_OFF_LENGTH_FMT 4u
/* verification */
#define CCID_SECURE_V_OFF_MAXEXTRA 5u
#define CCID_SECURE_V_OFF_VALID    7u
#define CCID_SECURE_V_OFF_NMSG     8u
#define CCID_SECURE_V_HEADER_LEN   15u /* up to bTeoPrologue included */
/* modification */
#define CCID_SECURE_M_OFF_INS_OLD  5u
#define CCID_SECURE_M_OFF_INS_NEW  6u
#define CCID_SECURE_M_OFF_MAXEXTRA 7u
#define CCID_SECURE_M_OFF_CONFIRM  9u
#define CCID_SECURE_M_OFF_VALID    10u
#define CCID_SECURE_M_OFF_NMSG     11u

/* bConfirmPIN bits (§6.1.11.8). */
#define CCID_CONFIRM_NEW 0x01u /* the new PIN is typed twice */
#define CCID_CONFIRM_OLD 0x02u /* the current PIN is typed first and inserted */

typedef struct {
    uint8_t operation;     /* CCID_PIN_OP_VERIFY or CCID_PIN_OP_MODIFY */
    uint8_t timeout_s;     /* bTimeOut, 0 = the appliance's default */
    uint8_t format;        /* bmFormatString */
    uint8_t block;         /* bmPINBlockString */
    uint8_t length_format; /* bmPINLengthFormat */
    uint8_t offset_old;    /* modification: bInsertionOffsetOld (bytes) */
    uint8_t offset_new;    /* modification: bInsertionOffsetNew (bytes) */
    uint8_t min_len;       /* wPINMaxExtraDigit high byte, at least 1 */
    uint8_t max_len;       /* low byte, capped to CCID_SECURE_PIN_MAX */
    uint8_t confirm;       /* modification: bConfirmPIN */
    uint8_t validation;    /* bEntryValidationCondition */
    uint8_t messages;      /* bNumberMessage */
    uint16_t lang_id;      /* wLangId (0x040C French, 0x0409 English) */
    const uint8_t *apdu;   /* abPINApdu, into the caller's buffer */
    size_t apdu_len;
} ccid_secure_req_t;

/* Parses abData of a PC_to_RDR_Secure message. false: *bad_field is the
 * offset in the whole message (10-byte header included, CCID §6.2.6 bError)
 * of the first bad field. Never reads past data[len-1]. */
bool ccid_secure_parse(const uint8_t *data, size_t len, ccid_secure_req_t *req, uint8_t *bad_field);

/* Builds the command APDU for the card: the template with the PIN(s) (ASCII
 * digits '0'..'9' as ui returns them) formatted and inserted, Lc recomputed.
 * old_pin is used for a modification with CCID_CONFIRM_OLD, new_pin for a
 * modification, pin for a verification (pass it as new_pin). false when the
 * PIN does not fit the structure (*bad_field as above). */
bool ccid_secure_build(const ccid_secure_req_t *req, const uint8_t *old_pin, size_t old_len,
                       const uint8_t *new_pin, size_t new_len, uint8_t *apdu, size_t cap,
                       size_t *apdu_len, uint8_t *bad_field);

/* Runs the whole command (the caller checked that a card is active): asks
 * for the PIN(s), exchanges the APDU with the card. true: out holds the
 * response APDU for RDR_to_PC_DataBlock (the card's answer, or 64 02 when the
 * two new PINs differ, or the card's 69 83 when it is blocked before any
 * entry). false: *error is the bError of a failed answer (bad field offset,
 * PIN_CANCELLED, PIN_TIMEOUT, ICC_MUTE, ...). Every copy of the PIN is wiped
 * before it returns. */
bool ccid_secure_run(const uint8_t *data, size_t len, uint8_t *out, size_t cap, size_t *out_len,
                     uint8_t *error);

#endif
