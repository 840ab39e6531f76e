/* ccid_secure: PC_to_RDR_Secure (CCID rev 1.1 §6.1.11), see ccid_secure.h.
 *
 * Layout of a PIN block (PC/SC part 10 v2.02.09 §2.5.2), offsets from the
 * start of the APDU body (the byte after Lc), bit offsets counted from the
 * most significant bit of the first byte:
 *   bmFormatString     b7 frame offset unit (1 bytes, 0 bits), b6..3 frame
 *                      offset, b2 right justification, b1..0 coding (0 one
 *                      byte per digit, 1 BCD nibble per digit, 2 ASCII)
 *   bmPINBlockString   b7..4 size of the PIN length field in bits, b3..0 size
 *                      of the PIN block in bytes (0: as long as the PIN)
 *   bmPINLengthFormat  b4 length offset unit (1 bytes, 0 bits), b3..0 offset
 * A fixed-size block keeps the template's bytes where no digit goes (the
 * fillers the host put there); a variable block (size 0) takes the PIN's own
 * length, and Lc is recomputed either way ("Lc shall be re-calculated"). A
 * fixed block that the template does not cover is taken as variable: the
 * host asked for no fillers (OpenSC 0.23 announces the PIN's storedLength as
 * the block size of every modification but pads the template only when the
 * card needs padding, and a CPS wants old ‖ new unpadded).
 * For a modification the blocks start at bInsertionOffsetOld/New; when the
 * new block would overlap the current one (OpenSC 0.23 sends offsets 0 and 0
 * for a CPS, with an 8-byte block taken from the PIN's storedLength), the new
 * block follows the current one, as ISO/IEC 7816-4 §11.5.7 CHANGE REFERENCE
 * DATA expects (old ‖ new). */
#include "ccid_secure.h"
#include "ccid_msg.h"

#include "fw_util.h"
#include "icc.h"
#include "ui.h"

_Static_assert(CCID_SECURE_APDU_MAX <= ICC_CAPDU_MAX, "a PIN APDU fits icc's limit");
_Static_assert(CCID_HEADER_LEN + 15u + 5u < 0x80u, "offsets of the structure fit bError (1..127)");

#define OFF(x) ((uint8_t)(CCID_HEADER_LEN + (x)))

/* Default time for each entry when bTimeOut is 0 (CCID: "reader default"). */
#define CCID_SECURE_DEFAULT_TIMEOUT_S 30u

/* wLangId (USB language IDs): primary language in the low 10 bits. */
#define LANGID_PRIMARY(x)    ((uint16_t)((x)&0x3FFu))
#define LANG_PRIMARY_FRENCH  0x0Cu
#define LANG_PRIMARY_ENGLISH 0x09u

/* ---- parser (pure) ---- */

bool ccid_secure_parse(const uint8_t *data, size_t len, ccid_secure_req_t *req, uint8_t *bad_field)
{
    uint8_t dummy;
    if (bad_field == NULL)
        bad_field = &dummy;
    *bad_field = 0;
    FW_ASSERT(req != NULL, false);
    fw_memset(req, 0, sizeof *req);
    /* dwLength too short for even the operation byte. */
    if (data == NULL || len < 1u) {
        *bad_field = CCID_OFF_LENGTH;
        return false;
    }
    uint8_t op = data[CCID_SECURE_OFF_OPERATION];
    if (op != CCID_PIN_OP_VERIFY && op != CCID_PIN_OP_MODIFY) {
        /* 02 transfer PIN, 03 wait ICC response, 04 cancel, 05/06 resend
         * or send next APDU: not offered (bPINSupport 03). */
        *bad_field = OFF(CCID_SECURE_OFF_OPERATION);
        return false;
    }
    req->operation = op;

    /* Fixed part of the structure, then the optional bMsgIndex2/3 of a
     * modification: present when bNumberMessage says so (CCID §6.1.11.8, as
     * libccid builds it: index 2 if bNumberMessage != 0, index 3 if >= 3). */
    size_t fixed = op == CCID_PIN_OP_VERIFY ? CCID_SECURE_V_HEADER_LEN : 15u; /* up to bMsgIndex1 */
    if (len < fixed) {
        *bad_field = CCID_OFF_LENGTH;
        return false;
    }
    req->timeout_s = data[CCID_SECURE_OFF_TIMEOUT];
    req->format = data[CCID_SECURE_OFF_FORMAT];
    req->block = data[CCID_SECURE_OFF_BLOCK];
    req->length_format = data[CCID_SECURE_OFF_LENGTH_FMT];

    /* bmFormatString b1..0: 3 is RFU. */
    if ((req->format & 0x03u) == 0x03u) {
        *bad_field = OFF(CCID_SECURE_OFF_FORMAT);
        return false;
    }
    /* bmPINLengthFormat b7..5 are RFU. */
    if ((req->length_format & 0xE0u) != 0) {
        *bad_field = OFF(CCID_SECURE_OFF_LENGTH_FMT);
        return false;
    }

    size_t off_maxextra, off_valid, off_nmsg, pos;
    if (op == CCID_PIN_OP_VERIFY) {
        off_maxextra = CCID_SECURE_V_OFF_MAXEXTRA;
        off_valid = CCID_SECURE_V_OFF_VALID;
        off_nmsg = CCID_SECURE_V_OFF_NMSG;
        req->messages = data[off_nmsg];
        /* §6.1.11.7: 00 no message, 01 the one of bMsgIndex, FF default. */
        if (req->messages > 1u && req->messages != 0xFFu) {
            *bad_field = OFF(off_nmsg);
            return false;
        }
        req->lang_id = fw_get_le16(data + 9u);
        pos = CCID_SECURE_V_HEADER_LEN;
    } else {
        off_maxextra = CCID_SECURE_M_OFF_MAXEXTRA;
        off_valid = CCID_SECURE_M_OFF_VALID;
        off_nmsg = CCID_SECURE_M_OFF_NMSG;
        req->offset_old = data[CCID_SECURE_M_OFF_INS_OLD];
        req->offset_new = data[CCID_SECURE_M_OFF_INS_NEW];
        req->confirm = data[CCID_SECURE_M_OFF_CONFIRM];
        if ((req->confirm & ~(CCID_CONFIRM_NEW | CCID_CONFIRM_OLD)) != 0) {
            *bad_field = OFF(CCID_SECURE_M_OFF_CONFIRM);
            return false;
        }
        req->messages = data[off_nmsg];
        if (req->messages > 3u && req->messages != 0xFFu) {
            *bad_field = OFF(off_nmsg);
            return false;
        }
        req->lang_id = fw_get_le16(data + 12u);
        pos = 15u; /* after bMsgIndex1 */
        if (req->messages != 0)
            pos++; /* bMsgIndex2 */
        if (req->messages >= 3u)
            pos++; /* bMsgIndex3 */
        pos += 3u; /* bTeoPrologue */
        if (len < pos) {
            *bad_field = CCID_OFF_LENGTH;
            return false;
        }
    }

    /* wPINMaxExtraDigit: XX minimum, YY maximum number of digits. */
    uint8_t min = data[off_maxextra + 1u];
    uint8_t max = data[off_maxextra];
    if (min == 0)
        min = 1;
    if (max > CCID_SECURE_PIN_MAX)
        max = CCID_SECURE_PIN_MAX; /* the keypad's limit; the card checks the rest */
    if (max == 0 || min > max) {
        *bad_field = OFF(off_maxextra);
        return false;
    }
    req->min_len = min;
    req->max_len = max;

    /* bEntryValidationCondition: bit 0 max size, bit 1 key, bit 2 timeout. */
    req->validation = data[off_valid];
    if (req->validation == 0 || (req->validation & ~0x07u) != 0) {
        *bad_field = OFF(off_valid);
        return false;
    }

    /* abPINApdu: CLA INS P1 P2 [Lc body], short and without Le. */
    size_t alen = len - pos;
    const uint8_t *a = data + pos;
    if (alen < 4u || alen > CCID_SECURE_APDU_MAX || (alen > 4u && alen != 5u + (size_t)a[4])) {
        *bad_field = OFF(pos);
        return false;
    }
    req->apdu = a;
    req->apdu_len = alen;
    return true;
}

/* ---- APDU builder (pure) ---- */

/* Writes the nbits low bits of value at bit position bitpos (MSB first). */
static void put_bits(uint8_t *buf, size_t bitpos, unsigned nbits, uint32_t value)
{
    for (unsigned i = 0; i < nbits; i++) {
        size_t b = bitpos + i;
        uint8_t mask = (uint8_t)(0x80u >> (b & 7u));
        if ((value >> (nbits - 1u - i)) & 1u)
            buf[b >> 3] = (uint8_t)(buf[b >> 3] | mask);
        else
            buf[b >> 3] = (uint8_t)(buf[b >> 3] & (uint8_t)~mask);
    }
}

/* Inserts one PIN as a block starting at byte block_start of body. Updates
 * *extent (bytes of body in use). false when it does not fit. */
static bool insert_block(const ccid_secure_req_t *req, uint8_t *body, size_t tpl_len,
                         size_t block_start, const uint8_t *pin, size_t n, size_t *extent,
                         size_t *block_end)
{
    unsigned coding = req->format & 0x03u;
    unsigned digit_bits = coding == 1u ? 4u : 8u;
    size_t frame_off = (size_t)((req->format >> 3) & 0x0Fu) * ((req->format & 0x80u) ? 8u : 1u);
    size_t frame_bits = n * digit_bits;
    size_t block_bytes = req->block & 0x0Fu;
    if (block_start > tpl_len || block_bytes > tpl_len - block_start)
        block_bytes = 0; /* no fillers from the host: as long as the PIN */
    unsigned len_bits = req->block >> 4;
    size_t len_off =
        (size_t)(req->length_format & 0x0Fu) * ((req->length_format & 0x10u) ? 8u : 1u);
    size_t cap_bits = (size_t)CCID_SECURE_BODY_MAX * 8u;
    size_t start_bits = block_start * 8u;

    size_t used_bits = frame_off + frame_bits;
    if (len_bits != 0 && len_off + len_bits > used_bits)
        used_bits = len_off + len_bits;
    size_t block_bits;
    if (block_bytes != 0) {
        block_bits = block_bytes * 8u;
        if (used_bits > block_bits)
            return false; /* the PIN is longer than the block */
    } else {
        block_bits = (used_bits + 7u) & ~(size_t)7u;
    }
    if (start_bits > cap_bits || block_bits > cap_bits - start_bits)
        return false;

    size_t at = start_bits + frame_off;
    if ((req->format & 0x04u) && block_bytes != 0)
        at = start_bits + block_bits - frame_bits; /* right justified */
    for (size_t i = 0; i < n; i++) {
        uint8_t d = (uint8_t)(pin[i] - '0');
        uint32_t v = coding == 2u ? (uint32_t)pin[i] : (uint32_t)d;
        put_bits(body, at + i * digit_bits, digit_bits, v);
    }
    if (len_bits != 0)
        put_bits(body, start_bits + len_off, len_bits, (uint32_t)n);
    size_t end = (start_bits + block_bits) / 8u;
    if (end > *extent)
        *extent = end;
    *block_end = end;
    return true;
}

static bool pin_digits_ok(const uint8_t *pin, size_t n)
{
    if (n > CCID_SECURE_PIN_MAX || (n > 0 && pin == NULL))
        return false;
    for (size_t i = 0; i < n; i++) {
        if (pin[i] < '0' || pin[i] > '9')
            return false;
    }
    return true;
}

bool ccid_secure_build(const ccid_secure_req_t *req, const uint8_t *old_pin, size_t old_len,
                       const uint8_t *new_pin, size_t new_len, uint8_t *apdu, size_t cap,
                       size_t *apdu_len, uint8_t *bad_field)
{
    uint8_t dummy;
    if (bad_field == NULL)
        bad_field = &dummy;
    *bad_field = 0;
    FW_ASSERT(req != NULL && apdu != NULL && apdu_len != NULL && req->apdu != NULL, false);
    FW_ASSERT(req->apdu_len >= 4u && req->apdu_len <= CCID_SECURE_APDU_MAX, false);
    FW_ASSERT(pin_digits_ok(old_pin, old_len) && pin_digits_ok(new_pin, new_len), false);
    *apdu_len = 0;

    uint8_t body[CCID_SECURE_BODY_MAX];
    fw_memset(body, 0xFFu, sizeof body);
    size_t extent = req->apdu_len > 4u ? req->apdu_len - 5u : 0u;
    if (extent > 0)
        fw_memcpy(body, req->apdu + 5, extent);

    bool ok = true;
    size_t end = 0;
    size_t tpl_len = extent;
    if (req->operation == CCID_PIN_OP_VERIFY) {
        ok = insert_block(req, body, tpl_len, 0, new_pin, new_len, &extent, &end);
    } else {
        size_t new_start = req->offset_new;
        if (req->confirm & CCID_CONFIRM_OLD) {
            ok = insert_block(req, body, tpl_len, req->offset_old, old_pin, old_len, &extent, &end);
            if (new_start < end && new_start <= req->offset_old)
                new_start = end; /* old ‖ new, see the top of this file */
        }
        if (ok)
            ok = insert_block(req, body, tpl_len, new_start, new_pin, new_len, &extent, &end);
    }
    if (!ok || extent > CCID_SECURE_BODY_MAX || cap < 5u + extent) {
        fw_wipe(body, sizeof body);
        *bad_field = OFF(CCID_SECURE_OFF_BLOCK);
        return false;
    }
    fw_memcpy(apdu, req->apdu, 4u);
    apdu[4] = (uint8_t)extent;
    fw_memcpy(apdu + 5, body, extent);
    *apdu_len = 5u + extent;
    fw_wipe(body, sizeof body);
    return true;
}

/* ---- the command ---- */

/* Everything that holds a PIN, in one place so one wipe clears it all. */
typedef struct {
    uint8_t tpl[CCID_SECURE_APDU_MAX]; /* the template, copied before any wait */
    uint8_t old_pin[CCID_SECURE_PIN_MAX];
    uint8_t new_pin[CCID_SECURE_PIN_MAX];
    uint8_t again[CCID_SECURE_PIN_MAX];
    uint8_t apdu[CCID_SECURE_APDU_MAX];
} ccid_secure_work_t;

static ccid_secure_work_t work;

/* Status of the PIN before the entry: an empty VERIFY (ISO/IEC 7816-4
 * §11.5.6, "no data field": the card answers 63 Cx with x tries left, 90 00
 * when already verified, 69 83 when blocked). -1 unknown, -2 blocked. */
static int query_tries(const uint8_t hdr[4])
{
    if (hdr[1] != 0x20u && hdr[1] != 0x24u)
        return -1;
    uint8_t q[4] = {hdr[0], 0x20u, hdr[1] == 0x20u ? hdr[2] : 0x00u, hdr[3]};
    uint8_t r[ICC_RAPDU_MAX];
    size_t n = 0;
    if (icc_transceive(q, sizeof q, r, sizeof r, &n) != ICC_OK || n != 2u)
        return -1;
    if (r[0] == 0x63u && (r[1] & 0xF0u) == 0xC0u)
        return r[1] & 0x0Fu;
    if (r[0] == 0x69u && r[1] == 0x83u)
        return -2;
    return -1;
}

/* One entry on the keypad; maps the outcome to bError. */
static bool ask(const ccid_secure_req_t *req, bool new_pin, bool confirm, int tries, uint8_t *pin,
                size_t *len, uint8_t *error)
{
    ui_pin_request_t r = {
        .min_len = req->min_len,
        .max_len = req->max_len,
        .tries_left = (int8_t)(tries > 15 ? 15 : tries),
        .new_pin = new_pin,
        .confirm_pin = confirm,
        .purpose = NULL,
        .timeout_ms =
            (uint32_t)(req->timeout_s != 0 ? req->timeout_s : CCID_SECURE_DEFAULT_TIMEOUT_S) *
            1000u,
        .submit_at_max = (req->validation & 0x01u) != 0,
    };
    ui_result_t res = ui_pin_entry(&r, pin, CCID_SECURE_PIN_MAX, len);
    if (res == UI_OK)
        return true;
    if (!icc_present()) {
        ui_show_error(ui_text(UI_TXT_CARD_REMOVED), NULL);
        *error = CCID_ERR_ICC_MUTE;
    } else if (res == UI_TIMEOUT) {
        ui_show_error(ui_text(UI_TXT_TIMEOUT), NULL);
        *error = CCID_ERR_PIN_TIMEOUT;
    } else if (res == UI_CANCELLED) {
        ui_show_result(ui_text(UI_TXT_CANCELLED), NULL);
        *error = CCID_ERR_PIN_CANCELLED;
    } else {
        *error = CCID_ERR_HW_ERROR;
    }
    return false;
}

/* What the holder sees once the card answered. */
static void show_outcome(const ccid_secure_req_t *req, const uint8_t *r, size_t n)
{
    char tries[32];
    uint16_t sw = n >= 2u ? fw_get_be16(r + n - 2u) : 0u;
    if (sw == 0x9000u) {
        ui_show_result(
            ui_text(req->operation == CCID_PIN_OP_VERIFY ? UI_TXT_PIN_OK : UI_TXT_PIN_CHANGED),
            NULL);
    } else if ((sw & 0xFFF0u) == 0x63C0u) {
        ui_tries_text((int)(sw & 0x0Fu), tries, sizeof tries);
        ui_show_error(ui_text(UI_TXT_PIN_WRONG), tries);
    } else if (sw == 0x6983u) {
        ui_show_error(ui_text(UI_TXT_PIN_BLOCKED), NULL);
    } else {
        ui_show_error(ui_text(UI_TXT_CARD_ERROR), NULL);
    }
}

static uint8_t icc_error(icc_status_t st)
{
    switch (st) {
    case ICC_ERR_PARITY:
        return CCID_ERR_XFR_PARITY_ERROR;
    case ICC_ERR_OVERRUN:
        return CCID_ERR_XFR_OVERRUN;
    case ICC_ERR_PROTOCOL:
        return CCID_ERR_HW_ERROR;
    default:
        return CCID_ERR_ICC_MUTE;
    }
}

static bool run(const ccid_secure_req_t *req, uint8_t *out, size_t cap, size_t *out_len,
                uint8_t *error)
{
    int tries = query_tries(req->apdu);
    if (!icc_present() || !icc_powered()) {
        *error = CCID_ERR_ICC_MUTE;
        return false;
    }
    if (tries == -2) {
        /* Blocked: asking for a PIN would only mislead the holder. */
        ui_show_error(ui_text(UI_TXT_PIN_BLOCKED), NULL);
        FW_ASSERT(cap >= 2u, false);
        out[0] = 0x69u;
        out[1] = 0x83u;
        *out_len = 2;
        return true;
    }
    size_t old_len = 0, new_len = 0, again_len = 0;
    if (req->operation == CCID_PIN_OP_VERIFY) {
        if (!ask(req, false, false, tries, work.new_pin, &new_len, error))
            return false;
    } else {
        if ((req->confirm & CCID_CONFIRM_OLD) &&
            !ask(req, false, false, tries, work.old_pin, &old_len, error))
            return false;
        if (!ask(req, true, false, -1, work.new_pin, &new_len, error))
            return false;
        if (req->confirm & CCID_CONFIRM_NEW) {
            if (!ask(req, false, true, -1, work.again, &again_len, error))
                return false;
            if (again_len != new_len || !fw_memeq_ct(work.again, work.new_pin, new_len)) {
                /* PC/SC part 10 §2.5.3: 64 02, the new PINs differ. */
                ui_show_error(ui_text(UI_TXT_PIN_MISMATCH), NULL);
                FW_ASSERT(cap >= 2u, false);
                out[0] = 0x64u;
                out[1] = 0x02u;
                *out_len = 2;
                return true;
            }
        }
    }
    size_t alen = 0;
    if (!ccid_secure_build(req, work.old_pin, old_len, work.new_pin, new_len, work.apdu,
                           sizeof work.apdu, &alen, error)) {
        ui_show_error(ui_text(UI_TXT_CARD_ERROR), NULL);
        return false;
    }
    if (!icc_present() || !icc_powered()) {
        ui_show_error(ui_text(UI_TXT_CARD_REMOVED), NULL);
        *error = CCID_ERR_ICC_MUTE;
        return false;
    }
    size_t n = 0;
    icc_status_t st = icc_transceive(work.apdu, alen, out, cap, &n);
    if (st != ICC_OK) {
        ui_show_error(ui_text(icc_present() ? UI_TXT_CARD_ERROR : UI_TXT_CARD_REMOVED), NULL);
        *error = icc_error(st);
        return false;
    }
    show_outcome(req, out, n);
    *out_len = n;
    return true;
}

bool ccid_secure_run(const uint8_t *data, size_t len, uint8_t *out, size_t cap, size_t *out_len,
                     uint8_t *error)
{
    uint8_t dummy;
    if (error == NULL)
        error = &dummy;
    *error = CCID_ERR_HW_ERROR;
    FW_ASSERT(out != NULL && out_len != NULL, false);
    *out_len = 0;
    ccid_secure_req_t req;
    if (!ccid_secure_parse(data, len, &req, error))
        return false;
    /* The host's buffer may be reused while the holder types: keep a copy. */
    fw_memcpy(work.tpl, req.apdu, req.apdu_len);
    req.apdu = work.tpl;

    ui_lang_t saved = ui_lang();
    if (LANGID_PRIMARY(req.lang_id) == LANG_PRIMARY_FRENCH)
        ui_set_lang(UI_LANG_FR);
    else if (LANGID_PRIMARY(req.lang_id) == LANG_PRIMARY_ENGLISH)
        ui_set_lang(UI_LANG_EN);
    bool ok = run(&req, out, cap, out_len, error);
    ui_set_lang(saved);
    fw_wipe(&work, sizeof work);
    return ok;
}
