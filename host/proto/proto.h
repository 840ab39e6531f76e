/* proto: cachetd's wire protocol, shared by the daemon, the `cachet` CLI and
 * libcachet-pkcs11 (docs/protocol.md is the reference).
 *
 * A frame is a 4-byte big-endian length followed by that many bytes of one JSON
 * object (UTF-8). Frames may carry file descriptors (SCM_RIGHTS) for streaming
 * mail in and out with bounded memory. Every length is capped before anything is
 * allocated. Safe to use from several threads on different fds; no global state,
 * no output (drivers/pkcs11 links it into mail clients). */
#ifndef CACHET_PROTO_H
#define CACHET_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#define PROTO_VERSION            1
#define PROTO_FRAME_MAX          (256u * 1024u) /* one JSON frame */
#define PROTO_FDS_MAX            2              /* descriptors per frame */
#define PROTO_METHOD_MAX         32             /* method / event / error code names */
#define PROTO_STRING_MAX         4096           /* any other string field, unless stated */
#define PROTO_BLOB_MAX           16384 /* any decoded base64 field (certificates, signatures) */
#define PROTO_JSON_DEPTH         16    /* nesting levels of one frame, the top object included */
#define PROTO_INT_MAX            INT64_C(9007199254740991) /* 2^53 - 1 (RFC 8259 §6) */
#define PROTO_PEER_NAME_MAX      128                       /* hello: "client" / "server" */
#define PROTO_HELLO_VERSIONS_MAX 16                        /* hello: entries of "versions" */

/* Base64 sizes (RFC 4648 §4): encoded length of n bytes (without the NUL), and
 * the most bytes n encoded characters can decode to. */
#define PROTO_B64_ENCODED_LEN(n) ((((size_t)(n) + 2u) / 3u) * 4u)
#define PROTO_B64_DECODED_MAX(n) (((size_t)(n) / 4u) * 3u)

/* Error codes of the "error" object (docs/protocol.md §2.4). */
#define PROTO_E_BAD_REQUEST     "bad-request"
#define PROTO_E_UNKNOWN_METHOD  "unknown-method"
#define PROTO_E_TOO_LARGE       "too-large"
#define PROTO_E_VERSION         "version"
#define PROTO_E_DENIED          "denied"
#define PROTO_E_NO_READER       "no-reader"
#define PROTO_E_NO_CARD         "no-card"
#define PROTO_E_CARD_REMOVED    "card-removed"
#define PROTO_E_PIN_REQUIRED    "pin-required"
#define PROTO_E_PIN_INCORRECT   "pin-incorrect"
#define PROTO_E_PIN_BLOCKED     "pin-blocked"
#define PROTO_E_PIN_FORMAT      "pin-format"
#define PROTO_E_CANCELLED       "cancelled"
#define PROTO_E_TIMEOUT         "timeout"
#define PROTO_E_NOT_SUPPORTED   "not-supported"
#define PROTO_E_BAD_INPUT       "bad-input"
#define PROTO_E_BACKEND         "backend"
#define PROTO_E_NOT_MIME        "not-mime"
#define PROTO_E_BAD_SIGNATURE   "bad-signature"
#define PROTO_E_UNTRUSTED       "untrusted"
#define PROTO_E_SIGNER_MISMATCH "signer-mismatch"
#define PROTO_E_INTERNAL        "internal"

typedef enum {
    PROTO_OK = 0,
    PROTO_ERR_CLOSED,  /* peer closed cleanly between frames */
    PROTO_ERR_IO,      /* read/write failed, or the peer closed mid-frame */
    PROTO_ERR_TIMEOUT, /* no complete frame within the deadline */
    PROTO_ERR_TOO_BIG, /* announced length over PROTO_FRAME_MAX (nothing allocated) */
    PROTO_ERR_JSON,    /* not one well-formed JSON object */
    PROTO_ERR_FIELD,   /* a field is missing, of the wrong type, or too long */
    PROTO_ERR_NOMEM,
} proto_status_t;

const char *proto_status_name(proto_status_t st);

/* Reads one frame. *out (NUL-terminated, caller frees) and *len. Descriptors that
 * came with it go to fds[0..*nfds) (at most PROTO_FDS_MAX; extra ones are
 * closed); pass fds NULL to close any. timeout_ms < 0 waits forever.
 * The deadline covers the whole frame. Received descriptors are close-on-exec.
 * On any error *out is NULL, *nfds is 0 and every received descriptor is
 * closed. After PROTO_ERR_TOO_BIG, _IO or _TIMEOUT the stream is out of step:
 * close the connection. Works on pipes too (no descriptors then). */
proto_status_t proto_read_frame(int fd, int timeout_ms, char **out, size_t *len, int *fds,
                                size_t *nfds);

/* Writes one frame (all of it, retrying short writes), with optional descriptors
 * (sent, not closed: the caller still owns them). len > PROTO_FRAME_MAX is
 * PROTO_ERR_TOO_BIG; bad arguments (nfds > PROTO_FDS_MAX, a negative fd) are
 * PROTO_ERR_FIELD; nothing is written then. No SIGPIPE on sockets
 * (MSG_NOSIGNAL); on a pipe (no descriptors then) the caller must ignore it. */
proto_status_t proto_write_frame(int fd, const char *json, size_t len, const int *fds, size_t nfds);
/* The same with a deadline for the whole frame (timeout_ms < 0: none), so that a
 * peer that stops reading cannot hold the writer. */
proto_status_t proto_write_frame_timeout(int fd, const char *json, size_t len, const int *fds,
                                         size_t nfds, int timeout_ms);

/* Reads a frame and parses it into a JSON object (caller json_object_put()s).
 * PROTO_ERR_JSON leaves the stream in step (answer bad-request, read on). */
proto_status_t proto_read_json(int fd, int timeout_ms, json_object **out, int *fds, size_t *nfds);
/* Serialises obj (compact) and writes it as a frame; the serialised text is
 * wiped afterwards (it may hold a PIN). */
proto_status_t proto_write_json(int fd, json_object *obj, const int *fds, size_t nfds);
proto_status_t proto_write_json_timeout(int fd, json_object *obj, const int *fds, size_t nfds,
                                        int timeout_ms);

/* Parses buf[0..len) as exactly one JSON object: RFC 8259, UTF-8 checked, at
 * most PROTO_JSON_DEPTH levels, no NaN/Infinity, nothing but white space after
 * it, len <= PROTO_FRAME_MAX. PROTO_ERR_JSON otherwise. */
proto_status_t proto_parse_json(const char *buf, size_t len, json_object **out);

/* Envelope. Request:  {"v":1,"id":N,"method":"...","params":{...}}
 *           Response: {"v":1,"id":N,"result":{...}}  or
 *                     {"v":1,"id":N,"error":{"code":"...","message":"...","tries_left":N?}}
 *           Event:    {"v":1,"event":"...", ...fields} */
typedef struct {
    int64_t id;
    char method[PROTO_METHOD_MAX + 1];
    json_object *params; /* borrowed from the request object; an empty object if absent */
} proto_request_t;

/* Validates a request envelope (version, id, method name charset and length).
 * Names (methods, events, error codes) are [a-z][a-z0-9._-]*, at most
 * PROTO_METHOD_MAX; ids are integers 0..PROTO_INT_MAX; no other top-level
 * members. On PROTO_ERR_FIELD out->id is the request's id if that could be read,
 * else -1 (answer with proto_error_new(out->id, ...)). */
proto_status_t proto_parse_request(json_object *req, proto_request_t *out);
/* True if msg carries "v": PROTO_VERSION. When proto_parse_request fails, the
 * daemon answers "version" if this is false and "bad-request" otherwise. */
bool proto_envelope_version_ok(json_object *msg);
/* True if a name is acceptable as a method, event or error code. */
bool proto_name_valid(const char *name);

/* Builders (new objects; the caller owns them). params/result/fields are taken
 * over, also on failure (NULL: out of memory or an invalid name). NULL
 * params/result/fields stand for an empty object. An id < 0 is written as
 * "id": null (an error to a request whose id could not be read). */
json_object *proto_request_new(int64_t id, const char *method, json_object *params);
json_object *proto_result_new(int64_t id, json_object *result);
/* message NULL → the code; a message over PROTO_STRING_MAX bytes is cut (at a
 * UTF-8 character boundary) and bytes that are not UTF-8 become '?', so that the
 * peer's strict parser never refuses an error. */
json_object *proto_error_new(int64_t id, const char *code, const char *message);
/* The same with "tries_left" (PIN errors, 0..255); tries_left < 0 leaves it out. */
json_object *proto_error_new_tries(int64_t id, const char *code, const char *message,
                                   int tries_left);
/* fields' members are copied after "v" and "event"; fields must not have
 * members named "v" or "event". */
json_object *proto_event_new(const char *event, json_object *fields);

/* Client side. A response is exactly one of result / error. */
typedef struct {
    int64_t id;          /* -1 if the daemon sent "id": null */
    json_object *result; /* borrowed; NULL on an error response */
    const char *code;    /* error code (borrowed), NULL on success */
    const char *message; /* error message (borrowed), NULL on success */
    int64_t tries_left;  /* -1 if absent */
    json_object *error;  /* the whole error object (borrowed), NULL on success */
} proto_response_t;

/* True if msg is an event (has an "event" member), not a response. */
bool proto_is_event(json_object *msg);
proto_status_t proto_parse_response(json_object *msg, proto_response_t *out);
/* Validates an event; *event is borrowed from msg. Its other members are the fields. */
proto_status_t proto_parse_event(json_object *msg, const char **event);

/* hello (docs/protocol.md §2.2). Builds the request
 * {"v":1,"id":id,"method":"hello","params":{"versions":[1],"client":client}}. */
json_object *proto_hello_new(int64_t id, const char *client);
/* Daemon side: checks hello's params; *version is PROTO_VERSION if the client
 * offers it, else 0 (answer "version"); *client (optional, borrowed) its name. */
proto_status_t proto_hello_negotiate(json_object *params, int64_t *version, const char **client);

/* Typed, capped field access. Missing optional fields leave *out unchanged and
 * return PROTO_OK; a present field of the wrong type or over the cap is
 * PROTO_ERR_FIELD. A member whose value is null counts as missing. Strings
 * (borrowed from obj) are at most max_len bytes (0: PROTO_STRING_MAX) and
 * contain no NUL. Integers must be JSON integers (no fraction or exponent) in
 * [min, max] and in +-PROTO_INT_MAX. */
proto_status_t proto_get_string(json_object *obj, const char *key, bool required, size_t max_len,
                                const char **out);
proto_status_t proto_get_int(json_object *obj, const char *key, bool required, int64_t min,
                             int64_t max, int64_t *out);
proto_status_t proto_get_bool(json_object *obj, const char *key, bool required, bool *out);
/* Overwrites the bytes of a string member in place with zeros (a PIN, once
 * used); the member stays, as a string of NULs. Nothing if absent. */
void proto_wipe_string(json_object *obj, const char *key);
/* Decodes a base64 string field into buf (cap bytes at most; a cap over
 * PROTO_BLOB_MAX counts as PROTO_BLOB_MAX). A missing optional field leaves *len
 * unchanged. */
proto_status_t proto_get_b64(json_object *obj, const char *key, bool required, uint8_t *buf,
                             size_t cap, size_t *len);
/* Adds a base64 string field (len <= PROTO_BLOB_MAX, else false). */
bool proto_add_b64(json_object *obj, const char *key, const uint8_t *data, size_t len);

/* Strict base64 (RFC 4648 §4, padding required, no whitespace, canonical: the
 * unused bits before the padding are zero, §3.5). Return false on bad input or if
 * the output would not fit. encode writes a NUL-terminated string, so out_cap
 * must be at least PROTO_B64_ENCODED_LEN(in_len) + 1. */
bool proto_b64_encode(const uint8_t *in, size_t in_len, char *out, size_t out_cap);
bool proto_b64_decode(const char *in, size_t in_len, uint8_t *out, size_t out_cap, size_t *out_len);

#endif
