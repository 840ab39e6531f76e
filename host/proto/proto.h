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

#define PROTO_VERSION 1
#define PROTO_FRAME_MAX (256u * 1024u) /* one JSON frame */
#define PROTO_FDS_MAX 2                /* descriptors per frame */
#define PROTO_METHOD_MAX 32            /* method / event / error code names */
#define PROTO_STRING_MAX 4096          /* any other string field, unless stated */
#define PROTO_BLOB_MAX 16384           /* any decoded base64 field (certificates, signatures) */

typedef enum {
    PROTO_OK = 0,
    PROTO_ERR_CLOSED,    /* peer closed cleanly between frames */
    PROTO_ERR_IO,        /* read/write failed, or the peer closed mid-frame */
    PROTO_ERR_TIMEOUT,   /* no complete frame within the deadline */
    PROTO_ERR_TOO_BIG,   /* announced length over PROTO_FRAME_MAX (nothing allocated) */
    PROTO_ERR_JSON,      /* not one well-formed JSON object */
    PROTO_ERR_FIELD,     /* a field is missing, of the wrong type, or too long */
    PROTO_ERR_NOMEM,
} proto_status_t;

const char *proto_status_name(proto_status_t st);

/* Reads one frame. *out (NUL-terminated, caller frees) and *len. Descriptors that
 * came with it go to fds[0..*nfds) (at most PROTO_FDS_MAX; extra ones are
 * closed); pass fds NULL to close any. timeout_ms < 0 waits forever. */
proto_status_t proto_read_frame(int fd, int timeout_ms, char **out, size_t *len, int *fds,
                                size_t *nfds);

/* Writes one frame (all of it, retrying short writes), with optional descriptors. */
proto_status_t proto_write_frame(int fd, const char *json, size_t len, const int *fds,
                                 size_t nfds);

/* Reads a frame and parses it into a JSON object (caller json_object_put()s). */
proto_status_t proto_read_json(int fd, int timeout_ms, json_object **out, int *fds, size_t *nfds);
/* Serialises obj (compact) and writes it as a frame. */
proto_status_t proto_write_json(int fd, json_object *obj, const int *fds, size_t nfds);

/* Envelope. Request:  {"v":1,"id":N,"method":"...","params":{...}}
 *           Response: {"v":1,"id":N,"result":{...}}  or
 *                     {"v":1,"id":N,"error":{"code":"...","message":"...","tries_left":N?}}
 *           Event:    {"v":1,"event":"...", ...fields} */
typedef struct {
    int64_t id;
    char method[PROTO_METHOD_MAX + 1];
    json_object *params; /* borrowed from the request object; an empty object if absent */
} proto_request_t;

/* Validates a request envelope (version, id, method name charset and length). */
proto_status_t proto_parse_request(json_object *req, proto_request_t *out);

/* Builders (new objects; the caller owns them). result/fields are taken over. */
json_object *proto_request_new(int64_t id, const char *method, json_object *params);
json_object *proto_result_new(int64_t id, json_object *result);
json_object *proto_error_new(int64_t id, const char *code, const char *message);
json_object *proto_event_new(const char *event, json_object *fields);

/* Typed, capped field access. Missing optional fields leave *out unchanged and
 * return PROTO_OK; a present field of the wrong type or over the cap is
 * PROTO_ERR_FIELD. */
proto_status_t proto_get_string(json_object *obj, const char *key, bool required, size_t max_len,
                                const char **out);
proto_status_t proto_get_int(json_object *obj, const char *key, bool required, int64_t min,
                             int64_t max, int64_t *out);
proto_status_t proto_get_bool(json_object *obj, const char *key, bool required, bool *out);
/* Decodes a base64 string field into buf (cap bytes at most, <= PROTO_BLOB_MAX). */
proto_status_t proto_get_b64(json_object *obj, const char *key, bool required, uint8_t *buf,
                             size_t cap, size_t *len);
/* Adds a base64 string field. */
bool proto_add_b64(json_object *obj, const char *key, const uint8_t *data, size_t len);

/* Strict base64 (RFC 4648 §4, padding required, no whitespace). Return false on
 * bad input or if the output would not fit. */
bool proto_b64_encode(const uint8_t *in, size_t in_len, char *out, size_t out_cap);
bool proto_b64_decode(const char *in, size_t in_len, uint8_t *out, size_t out_cap, size_t *out_len);

#endif
