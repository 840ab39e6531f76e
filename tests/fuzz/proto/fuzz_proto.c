/* Fuzz target for host/proto, the parsers a daemon client controls:
 *  1. the input as frames on a socketpair → proto_read_json → envelope
 *     (request, response, event, hello) → typed, capped getters;
 *  2. the input as one JSON text → proto_parse_json → the same;
 *  3. the input as base64 → proto_b64_decode, and back.
 * Properties checked (abort() on violation): what the builders and json-c
 * write, our own parser accepts; base64 is canonical (decode then encode gives
 * the input back) and round-trips. */
#include "proto.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_FRAMES_MAX 64

static uint8_t blob[PROTO_BLOB_MAX];

static void check(bool ok)
{
    if (!ok)
        abort();
}

/* Our own output must always be accepted by our own parser. */
static void reparse(json_object *o)
{
    if (o == NULL)
        return;
    size_t len = 0;
    const char *s = json_object_to_json_string_length(
        o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
    json_object *back = NULL;
    check(s != NULL && proto_parse_json(s, len, &back) == PROTO_OK);
    json_object_put(back);
}

static void getters(json_object *params)
{
    json_object_object_foreach(params, key, val)
    {
        (void)val;
        const char *s = NULL;
        int64_t i = 0;
        bool b = false;
        size_t n = 0;
        (void)proto_get_string(params, key, true, 0, &s);
        (void)proto_get_string(params, key, false, 8, &s);
        (void)proto_get_int(params, key, true, 0, 255, &i);
        (void)proto_get_int(params, key, false, INT64_MIN, INT64_MAX, &i);
        (void)proto_get_bool(params, key, true, &b);
        if (proto_get_b64(params, key, true, blob, sizeof blob, &n) == PROTO_OK)
            check(n <= sizeof blob);
        (void)proto_get_b64(params, key, false, blob, 3, &n);
    }
    int64_t version = -1;
    const char *client = NULL;
    if (proto_hello_negotiate(params, &version, &client) == PROTO_OK)
        check(version == 0 || version == PROTO_VERSION);
}

static void exercise(json_object *msg)
{
    reparse(msg);

    proto_request_t req;
    if (proto_parse_request(msg, &req) == PROTO_OK) {
        check(proto_name_valid(req.method) && req.params != NULL && req.id >= 0);
        getters(req.params);
        /* Any string of the request as an error message must make a valid
         * error response. */
        const char *text = NULL;
        json_object_object_foreach(req.params, key, val)
        {
            if (json_object_is_type(val, json_type_string)) {
                text = json_object_get_string(val);
                (void)key;
                break;
            }
        }
        json_object *err = proto_error_new_tries(req.id, PROTO_E_BAD_INPUT, text, 1);
        check(err != NULL);
        reparse(err);
        proto_response_t r;
        check(proto_parse_response(err, &r) == PROTO_OK && r.id == req.id);
        json_object_put(err);
        json_object *res = proto_result_new(req.id, json_object_get(req.params));
        check(res != NULL);
        reparse(res);
        json_object_put(res);
    } else {
        (void)proto_envelope_version_ok(msg);
        json_object *err = proto_error_new(req.id, PROTO_E_BAD_REQUEST, "bad request");
        check(err != NULL);
        json_object_put(err);
    }

    proto_response_t resp;
    if (proto_parse_response(msg, &resp) == PROTO_OK) {
        check((resp.result == NULL) != (resp.code == NULL));
        if (resp.result != NULL)
            getters(resp.result);
    }
    const char *event = NULL;
    if (proto_is_event(msg) && proto_parse_event(msg, &event) == PROTO_OK)
        check(proto_name_valid(event));
}

static void fuzz_frames(const uint8_t *data, size_t size)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
        return;
    (void)fcntl(sv[0], F_SETFL, O_NONBLOCK);
    size_t off = 0;
    while (off < size) {
        ssize_t n = send(sv[0], data + off, size - off, MSG_NOSIGNAL);
        if (n <= 0)
            break; /* the socket is full: the rest is cut off */
        off += (size_t)n;
    }
    shutdown(sv[0], SHUT_WR);
    for (int i = 0; i < FUZZ_FRAMES_MAX; i++) {
        json_object *msg = NULL;
        int fds[PROTO_FDS_MAX];
        size_t nfds = 0;
        proto_status_t st = proto_read_json(sv[1], 0, &msg, fds, &nfds);
        check(nfds == 0);
        if (st == PROTO_ERR_JSON)
            continue; /* the stream stays in step */
        if (st != PROTO_OK)
            break;
        exercise(msg);
        json_object_put(msg);
    }
    close(sv[0]);
    close(sv[1]);
}

static void fuzz_json(const uint8_t *data, size_t size)
{
    json_object *msg = NULL;
    if (proto_parse_json((const char *)data, size, &msg) == PROTO_OK) {
        exercise(msg);
        json_object_put(msg);
    }
}

static void fuzz_b64(const uint8_t *data, size_t size)
{
    size_t n = 0;
    if (proto_b64_decode((const char *)data, size, blob, sizeof blob, &n)) {
        check(n <= sizeof blob && n <= PROTO_B64_DECODED_MAX(size));
        /* Strict means canonical: encoding gives the same text back. */
        size_t cap = PROTO_B64_ENCODED_LEN(n) + 1;
        char *again = malloc(cap);
        if (again == NULL)
            return;
        check(proto_b64_encode(blob, n, again, cap));
        check(strlen(again) == size && memcmp(again, data, size) == 0);
        free(again);
    }
    /* Any bytes encode and decode back. */
    size_t in = size < PROTO_BLOB_MAX ? size : PROTO_BLOB_MAX;
    size_t cap = PROTO_B64_ENCODED_LEN(in) + 1;
    char *enc = malloc(cap);
    if (enc == NULL)
        return;
    check(proto_b64_encode(data, in, enc, cap));
    check(proto_b64_decode(enc, cap - 1, blob, in, &n) && n == in &&
          (in == 0 || memcmp(blob, data, in) == 0));
    free(enc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_frames(data, size);
    fuzz_json(data, size);
    fuzz_b64(data, size);
    return 0;
}
