/* p11_reply: libcachet-pkcs11's decoding of cachetd's replies
 * (docs/protocol.md §2, §3) into plain structs, and the mapping of cachetd's
 * error codes (§2.4) to PKCS#11 return values. Every field goes through
 * host/proto's capped getters; strings longer than our fields are cut at a
 * UTF-8 boundary, never overflowed. No I/O, no global state: this is the
 * fuzzed surface (tests/fuzz/pkcs11_reply). */
#ifndef CACHET_P11_REPLY_H
#define CACHET_P11_REPLY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>
#include <p11-kit/pkcs11.h>

#define P11_TEXT_MAX   128  /* names, labels, reader (bytes, without the NUL) */
#define P11_SERIAL_MAX 64   /* card serial */
#define P11_ID_MAX     32   /* object ID (CKA_ID) bytes */
#define P11_CODE_MAX   32   /* an error code (PROTO_METHOD_MAX) */
#define P11_CERT_MAX   8192 /* one certificate, DER */
#define P11_CERTS_MAX  8    /* certificates per card */
#define P11_SIG_MAX    512  /* RSA-4096 */

typedef enum {
    P11_ROLE_CA = 0,
    P11_ROLE_AUTH = 1, /* authentication key 0x82 */
    P11_ROLE_SIGN = 2, /* signature key 0x81 */
} p11_role_t;

/* A frame from cachetd, decoded: a response (result or error) or an event. */
typedef enum {
    P11_MSG_RESULT = 1,
    P11_MSG_ERROR,
    P11_MSG_EVENT,
} p11_msg_kind_t;

typedef struct {
    p11_msg_kind_t kind;
    json_object *root;           /* owned: p11_msg_free() */
    int64_t id;                  /* responses; -1 for "id": null */
    json_object *result;         /* P11_MSG_RESULT: borrowed from root */
    char code[P11_CODE_MAX + 1]; /* P11_MSG_ERROR: error code; P11_MSG_EVENT: event name */
    int tries_left;              /* P11_MSG_ERROR: -1 if absent */
    json_object *event;          /* P11_MSG_EVENT: the whole event (borrowed) */
} p11_msg_t;

/* Parses one frame's JSON text (len bytes, capped at PROTO_FRAME_MAX).
 * false: not a well-formed response or event (msg is then empty). */
bool p11_msg_parse(const char *text, size_t len, p11_msg_t *msg);
void p11_msg_free(p11_msg_t *msg);

/* status (§3.2). */
typedef struct {
    bool reader_present;
    bool pinpad;
    char reader[P11_TEXT_MAX + 1];
    bool card_present;
    bool card_ready;
    char serial[P11_SERIAL_MAX + 1];
    char label[P11_TEXT_MAX + 1];
    bool pin_verified;
    int tries_left; /* -1 unknown */
    bool busy;
} p11_status_t;

bool p11_decode_status(json_object *result, p11_status_t *out);

/* identity (§3.3): what the token shows. */
typedef struct {
    bool present;
    char label[P11_TEXT_MAX + 1]; /* key label, e.g. CPS_PRIV_AUT */
    uint8_t id[P11_ID_MAX];
    size_t id_len;
} p11_key_desc_t;

typedef struct {
    char surname[P11_TEXT_MAX + 1];
    char given_name[P11_TEXT_MAX + 1];
    char card_type[16];
    char serial[P11_SERIAL_MAX + 1];
    char label[P11_TEXT_MAX + 1];
    p11_key_desc_t auth;
    p11_key_desc_t sign;
} p11_identity_t;

bool p11_decode_identity(json_object *result, p11_identity_t *out);

/* certificates (§3.4). */
typedef struct {
    p11_role_t role;
    char label[P11_TEXT_MAX + 1];
    uint8_t id[P11_ID_MAX];
    size_t id_len;
    uint8_t der[P11_CERT_MAX];
    size_t der_len;
} p11_cert_t;

typedef struct {
    p11_cert_t cert[P11_CERTS_MAX];
    size_t n;
} p11_certs_t;

/* Entries that are malformed are skipped (and counted in *skipped); false only
 * if the result itself has no certificate array. */
bool p11_decode_certificates(json_object *result, p11_certs_t *out, size_t *skipped);

/* sign-digest (§3.8): {"signature": base64}. */
bool p11_decode_signature(json_object *result, uint8_t *sig, size_t cap, size_t *len);

/* Events (§3.13) that matter to slots. */
typedef enum {
    P11_EV_OTHER = 0, /* pin-needed, operation-finished, unknown ones */
    P11_EV_CARD_INSERTED,
    P11_EV_CARD_REMOVED,
    P11_EV_READER_ADDED,
    P11_EV_READER_GONE,
} p11_event_kind_t;

typedef struct {
    p11_event_kind_t kind;
    bool ready; /* card-inserted: bound (identity known) */
    char serial[P11_SERIAL_MAX + 1];
} p11_event_t;

bool p11_decode_event(const p11_msg_t *msg, p11_event_t *out);

/* What a PKCS#11 function was doing when cachetd answered with an error: the
 * same code maps to the closest CKR_ of that function. */
typedef enum {
    P11_OP_GENERIC = 0, /* slot / token queries */
    P11_OP_LOGIN,       /* C_Login */
    P11_OP_SIGN,        /* C_Sign / C_SignFinal */
} p11_op_t;

CK_RV p11_ckr_from_code(const char *code, p11_op_t op);

/* Hex (lower or upper case, even length) → bytes; false if not hex or too long. */
bool p11_hex_decode(const char *hex, uint8_t *out, size_t cap, size_t *len);

/* Copies src into dst (cap bytes, NUL included), cut at a UTF-8 character
 * boundary if it does not fit. */
void p11_copy_text(char *dst, size_t cap, const char *src);

#endif
