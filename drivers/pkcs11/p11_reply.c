/* p11_reply: decoding of cachetd's replies and events (p11_reply.h).
 * docs/protocol.md is the reference: §2.1 envelope, §2.4 error codes, §3.2
 * status, §3.3 identity, §3.4 certificates, §3.8 sign-digest, §3.13 events.
 * Unknown members are ignored (§2.1: optional members may be added); members
 * of the wrong type make the whole reply (or one certificate entry) invalid. */
#include "p11_reply.h"

#include <string.h>

#include "proto.h"

void p11_copy_text(char *dst, size_t cap, const char *src)
{
    if (cap == 0)
        return;
    size_t n = src != NULL ? strlen(src) : 0;
    if (n >= cap) {
        n = cap - 1;
        /* Do not leave half a UTF-8 sequence (RFC 3629 §3): back off over
         * continuation bytes, then drop the lead byte they belonged to. */
        size_t k = n;
        while (k > 0 && ((unsigned char)src[k] & 0xC0u) == 0x80u)
            k--;
        n = k;
    }
    if (n > 0)
        memcpy(dst, src, n);
    dst[n] = '\0';
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

bool p11_hex_decode(const char *hex, uint8_t *out, size_t cap, size_t *len)
{
    if (hex == NULL || out == NULL || len == NULL)
        return false;
    size_t n = strlen(hex);
    if (n % 2 != 0 || n / 2 > cap)
        return false;
    for (size_t i = 0; i < n / 2; i++) {
        int hi = hex_value(hex[2 * i]), lo = hex_value(hex[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return false;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    *len = n / 2;
    return true;
}

/* ---- envelope --------------------------------------------------------------- */

void p11_msg_free(p11_msg_t *msg)
{
    if (msg == NULL)
        return;
    json_object_put(msg->root);
    memset(msg, 0, sizeof *msg);
}

bool p11_msg_parse(const char *text, size_t len, p11_msg_t *msg)
{
    if (msg == NULL)
        return false;
    memset(msg, 0, sizeof *msg);
    msg->id = -1;
    msg->tries_left = -1;
    if (text == NULL || len > PROTO_FRAME_MAX)
        return false;
    json_object *root = NULL;
    if (proto_parse_json(text, len, &root) != PROTO_OK)
        return false;
    if (proto_is_event(root)) {
        const char *name = NULL;
        if (proto_parse_event(root, &name) != PROTO_OK || strlen(name) > P11_CODE_MAX) {
            json_object_put(root);
            return false;
        }
        msg->kind = P11_MSG_EVENT;
        msg->root = root;
        msg->event = root;
        p11_copy_text(msg->code, sizeof msg->code, name);
        return true;
    }
    proto_response_t r;
    if (proto_parse_response(root, &r) != PROTO_OK) {
        json_object_put(root);
        return false;
    }
    msg->root = root;
    msg->id = r.id;
    if (r.result != NULL) {
        msg->kind = P11_MSG_RESULT;
        msg->result = r.result;
        return true;
    }
    if (r.code == NULL || strlen(r.code) > P11_CODE_MAX) {
        p11_msg_free(msg);
        return false;
    }
    msg->kind = P11_MSG_ERROR;
    p11_copy_text(msg->code, sizeof msg->code, r.code);
    msg->tries_left = (r.tries_left >= 0 && r.tries_left <= 255) ? (int)r.tries_left : -1;
    return true;
}

/* ---- typed getters ------------------------------------------------------------ */

/* An optional string member copied into dst ("" when absent); false when present
 * but not a string (or over PROTO_STRING_MAX). */
static bool get_text(json_object *obj, const char *key, char *dst, size_t cap)
{
    const char *s = NULL;
    dst[0] = '\0';
    if (proto_get_string(obj, key, false, 0, &s) != PROTO_OK)
        return false;
    p11_copy_text(dst, cap, s);
    return true;
}

static bool get_flag(json_object *obj, const char *key, bool *out)
{
    *out = false;
    return proto_get_bool(obj, key, false, out) == PROTO_OK;
}

/* An optional object member: NULL when absent or null; false if another type. */
static bool get_object(json_object *obj, const char *key, json_object **out)
{
    *out = NULL;
    json_object *v = NULL;
    if (!json_object_object_get_ex(obj, key, &v) || v == NULL)
        return true;
    if (!json_object_is_type(v, json_type_object))
        return false;
    *out = v;
    return true;
}

bool p11_decode_status(json_object *result, p11_status_t *out)
{
    if (out == NULL)
        return false;
    memset(out, 0, sizeof *out);
    out->tries_left = -1;
    if (!json_object_is_type(result, json_type_object))
        return false;
    json_object *reader = NULL, *card = NULL, *pin = NULL;
    if (!get_object(result, "reader", &reader) || !get_object(result, "card", &card) ||
        !get_object(result, "pin", &pin) || !get_flag(result, "busy", &out->busy))
        return false;
    if (reader != NULL && (!get_flag(reader, "present", &out->reader_present) ||
                           !get_flag(reader, "pinpad", &out->pinpad) ||
                           !get_text(reader, "name", out->reader, sizeof out->reader)))
        return false;
    if (card != NULL && (!get_flag(card, "present", &out->card_present) ||
                         !get_flag(card, "ready", &out->card_ready) ||
                         !get_text(card, "serial", out->serial, sizeof out->serial) ||
                         !get_text(card, "label", out->label, sizeof out->label)))
        return false;
    if (pin != NULL) {
        int64_t t = -1;
        if (!get_flag(pin, "verified", &out->pin_verified) ||
            proto_get_int(pin, "tries_left", false, 0, 255, &t) != PROTO_OK)
            return false;
        out->tries_left = (int)t;
    }
    /* A card is only usable in a reader that is there. */
    if (!out->reader_present) {
        out->card_present = false;
        out->card_ready = false;
    }
    return true;
}

static bool decode_key(json_object *keys, const char *role, p11_key_desc_t *k)
{
    json_object *o = NULL;
    memset(k, 0, sizeof *k);
    if (!get_object(keys, role, &o))
        return false;
    if (o == NULL)
        return true;
    const char *id = NULL;
    if (!get_text(o, "label", k->label, sizeof k->label) ||
        proto_get_string(o, "id", false, 2 * P11_ID_MAX, &id) != PROTO_OK)
        return false;
    if (id != NULL && !p11_hex_decode(id, k->id, sizeof k->id, &k->id_len))
        return false;
    k->present = true;
    return true;
}

bool p11_decode_identity(json_object *result, p11_identity_t *out)
{
    if (out == NULL)
        return false;
    memset(out, 0, sizeof *out);
    if (!json_object_is_type(result, json_type_object))
        return false;
    if (!get_text(result, "surname", out->surname, sizeof out->surname) ||
        !get_text(result, "given_name", out->given_name, sizeof out->given_name) ||
        !get_text(result, "card_type", out->card_type, sizeof out->card_type) ||
        !get_text(result, "serial", out->serial, sizeof out->serial) ||
        !get_text(result, "label", out->label, sizeof out->label))
        return false;
    json_object *keys = NULL;
    if (!get_object(result, "keys", &keys))
        return false;
    if (keys != NULL &&
        (!decode_key(keys, "auth", &out->auth) || !decode_key(keys, "sign", &out->sign)))
        return false;
    return true;
}

static bool decode_cert(json_object *o, p11_cert_t *c)
{
    const char *role = NULL, *id = NULL;
    if (!json_object_is_type(o, json_type_object))
        return false;
    if (proto_get_string(o, "role", true, 8, &role) != PROTO_OK)
        return false;
    if (strcmp(role, "auth") == 0)
        c->role = P11_ROLE_AUTH;
    else if (strcmp(role, "sign") == 0)
        c->role = P11_ROLE_SIGN;
    else if (strcmp(role, "ca") == 0)
        c->role = P11_ROLE_CA;
    else
        return false;
    if (!get_text(o, "label", c->label, sizeof c->label) ||
        proto_get_string(o, "id", false, 2 * P11_ID_MAX, &id) != PROTO_OK)
        return false;
    c->id_len = 0;
    if (id != NULL && !p11_hex_decode(id, c->id, sizeof c->id, &c->id_len))
        return false;
    c->der_len = 0;
    if (proto_get_b64(o, "der", true, c->der, sizeof c->der, &c->der_len) != PROTO_OK ||
        c->der_len == 0)
        return false;
    return true;
}

bool p11_decode_certificates(json_object *result, p11_certs_t *out, size_t *skipped)
{
    if (out == NULL)
        return false;
    out->n = 0;
    if (skipped != NULL)
        *skipped = 0;
    json_object *arr = NULL;
    if (!json_object_is_type(result, json_type_object) ||
        !json_object_object_get_ex(result, "certificates", &arr) ||
        !json_object_is_type(arr, json_type_array))
        return false;
    size_t n = json_object_array_length(arr);
    for (size_t i = 0; i < n; i++) {
        p11_cert_t *c = &out->cert[out->n];
        if (out->n < P11_CERTS_MAX && decode_cert(json_object_array_get_idx(arr, i), c)) {
            out->n++;
            continue;
        }
        if (skipped != NULL)
            (*skipped)++;
    }
    return true;
}

bool p11_decode_signature(json_object *result, uint8_t *sig, size_t cap, size_t *len)
{
    if (sig == NULL || len == NULL || !json_object_is_type(result, json_type_object))
        return false;
    *len = 0;
    return proto_get_b64(result, "signature", true, sig, cap, len) == PROTO_OK && *len > 0;
}

bool p11_decode_event(const p11_msg_t *msg, p11_event_t *out)
{
    if (msg == NULL || out == NULL || msg->kind != P11_MSG_EVENT)
        return false;
    memset(out, 0, sizeof *out);
    static const struct {
        const char *name;
        p11_event_kind_t kind;
    } names[] = {
        {"card-inserted", P11_EV_CARD_INSERTED},
        {"card-removed", P11_EV_CARD_REMOVED},
        {"reader-added", P11_EV_READER_ADDED},
        {"reader-gone", P11_EV_READER_GONE},
    };
    out->kind = P11_EV_OTHER;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(msg->code, names[i].name) == 0)
            out->kind = names[i].kind;
    if (!get_text(msg->event, "serial", out->serial, sizeof out->serial))
        return false;
    if (!get_flag(msg->event, "ready", &out->ready))
        return false;
    return true;
}

/* ---- error codes → CKR_ ------------------------------------------------------ */

/* docs/protocol.md §2.4 → PKCS#11 v2.40 §5.1 (return values). The closest
 * code for what the application was doing; see docs/pkcs11.md for the table. */
CK_RV p11_ckr_from_code(const char *code, p11_op_t op)
{
    static const struct {
        const char *code;
        CK_RV generic, login, sign;
    } map[] = {
        {"no-reader", CKR_TOKEN_NOT_PRESENT, CKR_TOKEN_NOT_PRESENT, CKR_DEVICE_REMOVED},
        {"no-card", CKR_TOKEN_NOT_PRESENT, CKR_TOKEN_NOT_PRESENT, CKR_DEVICE_REMOVED},
        {"card-removed", CKR_DEVICE_REMOVED, CKR_DEVICE_REMOVED, CKR_DEVICE_REMOVED},
        {"pin-required", CKR_USER_NOT_LOGGED_IN, CKR_ARGUMENTS_BAD, CKR_USER_NOT_LOGGED_IN},
        {"pin-incorrect", CKR_PIN_INCORRECT, CKR_PIN_INCORRECT, CKR_PIN_INCORRECT},
        {"pin-blocked", CKR_PIN_LOCKED, CKR_PIN_LOCKED, CKR_PIN_LOCKED},
        {"pin-format", CKR_PIN_INVALID, CKR_PIN_INVALID, CKR_PIN_INVALID},
        /* The practitioner said no (or walked away) on the appliance. */
        {"cancelled", CKR_FUNCTION_CANCELED, CKR_FUNCTION_CANCELED, CKR_FUNCTION_CANCELED},
        {"timeout", CKR_DEVICE_ERROR, CKR_FUNCTION_CANCELED, CKR_FUNCTION_CANCELED},
        {"not-supported", CKR_FUNCTION_NOT_SUPPORTED, CKR_FUNCTION_NOT_SUPPORTED,
         CKR_KEY_FUNCTION_NOT_PERMITTED},
        {"bad-input", CKR_ARGUMENTS_BAD, CKR_PIN_INVALID, CKR_DATA_INVALID},
        {"too-large", CKR_ARGUMENTS_BAD, CKR_PIN_LEN_RANGE, CKR_DATA_LEN_RANGE},
        {"backend", CKR_DEVICE_ERROR, CKR_DEVICE_ERROR, CKR_DEVICE_ERROR},
        {"denied", CKR_FUNCTION_REJECTED, CKR_FUNCTION_REJECTED, CKR_FUNCTION_REJECTED},
        {"unknown-method", CKR_FUNCTION_NOT_SUPPORTED, CKR_FUNCTION_NOT_SUPPORTED,
         CKR_FUNCTION_NOT_SUPPORTED},
        {"internal", CKR_DEVICE_ERROR, CKR_DEVICE_ERROR, CKR_DEVICE_ERROR},
    };
    if (code == NULL)
        return CKR_FUNCTION_FAILED;
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++) {
        if (strcmp(code, map[i].code) != 0)
            continue;
        return op == P11_OP_LOGIN ? map[i].login : op == P11_OP_SIGN ? map[i].sign : map[i].generic;
    }
    /* bad-request, version, and codes this module does not know. */
    return CKR_FUNCTION_FAILED;
}
