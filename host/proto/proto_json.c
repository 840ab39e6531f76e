/* proto_json: JSON frames, the envelope and capped field access of cachetd's
 * protocol (docs/protocol.md §2). JSON is RFC 8259 through json-c, parsed
 * strictly (UTF-8 checked, bounded depth, nothing after the object). */
#include "proto.h"

#include <json-c/printbuf.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

_Static_assert(PROTO_STRING_MAX < PROTO_FRAME_MAX, "a string field must fit a frame");
_Static_assert(PROTO_B64_ENCODED_LEN(PROTO_BLOB_MAX) < PROTO_FRAME_MAX, "a blob must fit a frame");
_Static_assert(PROTO_JSON_DEPTH >= 4, "the envelope alone nests 3 levels");

/* ---- parsing and serialising -------------------------------------------- */

/* Length of the UTF-8 sequence starting s[0..len), or 0 if it is not a
 * well-formed one (RFC 3629 §4: no overlongs, no surrogates, <= U+10FFFF). */
static size_t utf8_seq(const unsigned char *s, size_t len)
{
    unsigned char c = s[0];
    size_t n;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF)
        n = 2;
    else if (c >= 0xE0 && c <= 0xEF)
        n = 3;
    else if (c >= 0xF0 && c <= 0xF4)
        n = 4;
    else
        return 0;
    if (c == 0xE0)
        lo = 0xA0;
    else if (c == 0xED)
        hi = 0x9F;
    else if (c == 0xF0)
        lo = 0x90;
    else if (c == 0xF4)
        hi = 0x8F;
    if (len < n || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++)
        if ((s[i] & 0xC0u) != 0x80u)
            return 0;
    return n;
}

/* RFC 8259 syntax, checked before json-c sees the text: json-c's strict mode
 * still takes single-quoted names, raw control characters in strings, "1.",
 * "-01", NaN and Infinity. Iterative, with an explicit stack of at most
 * PROTO_JSON_DEPTH containers (the top object counts as one level). */
typedef struct {
    const unsigned char *p, *end;
} scan_t;

static void scan_ws(scan_t *s)
{
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
        s->p++;
}

static bool is_hex(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* §7: '"' then unescaped characters >= 0x20 (UTF-8, RFC 3629) or escapes. */
static bool scan_string(scan_t *s)
{
    if (s->p >= s->end || *s->p != '"')
        return false;
    s->p++;
    while (s->p < s->end) {
        unsigned char c = *s->p;
        if (c == '"') {
            s->p++;
            return true;
        }
        if (c < 0x20)
            return false;
        if (c == '\\') {
            if (s->end - s->p < 2)
                return false;
            unsigned char e = s->p[1];
            if (e == 'u') {
                if (s->end - s->p < 6 || !is_hex(s->p[2]) || !is_hex(s->p[3]) || !is_hex(s->p[4]) ||
                    !is_hex(s->p[5]))
                    return false;
                s->p += 6;
            } else if (e == '"' || e == '\\' || e == '/' || e == 'b' || e == 'f' || e == 'n' ||
                       e == 'r' || e == 't') {
                s->p += 2;
            } else {
                return false;
            }
            continue;
        }
        size_t n = utf8_seq(s->p, (size_t)(s->end - s->p));
        if (n == 0)
            return false;
        s->p += n;
    }
    return false;
}

static bool scan_digits(scan_t *s)
{
    const unsigned char *start = s->p;
    while (s->p < s->end && *s->p >= '0' && *s->p <= '9')
        s->p++;
    return s->p > start;
}

/* §6: -? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)? */
static bool scan_number(scan_t *s)
{
    if (s->p < s->end && *s->p == '-')
        s->p++;
    if (s->p < s->end && *s->p == '0')
        s->p++;
    else if (!scan_digits(s))
        return false;
    if (s->p < s->end && *s->p == '.') {
        s->p++;
        if (!scan_digits(s))
            return false;
    }
    if (s->p < s->end && (*s->p == 'e' || *s->p == 'E')) {
        s->p++;
        if (s->p < s->end && (*s->p == '+' || *s->p == '-'))
            s->p++;
        if (!scan_digits(s))
            return false;
    }
    return true;
}

static bool scan_literal(scan_t *s, const char *lit)
{
    size_t n = strlen(lit);
    if ((size_t)(s->end - s->p) < n || memcmp(s->p, lit, n) != 0)
        return false;
    s->p += n;
    return true;
}

/* A member name, white space and ':' (the value follows). */
static bool scan_name(scan_t *s)
{
    if (!scan_string(s))
        return false;
    scan_ws(s);
    if (s->p >= s->end || *s->p != ':')
        return false;
    s->p++;
    return true;
}

static bool json_syntax_ok(const char *buf, size_t len)
{
    scan_t s = {(const unsigned char *)buf, (const unsigned char *)buf + len};
    bool is_object[PROTO_JSON_DEPTH]; /* the open containers */
    size_t depth = 0;

    scan_ws(&s);
    if (s.p >= s.end || *s.p != '{') /* a frame is one object */
        return false;
    for (;;) {
        /* A value is expected here. */
        scan_ws(&s);
        if (s.p >= s.end)
            return false;
        unsigned char c = *s.p;
        if (c == '{' || c == '[') {
            if (depth >= PROTO_JSON_DEPTH)
                return false;
            is_object[depth++] = c == '{';
            s.p++;
            scan_ws(&s);
            if (s.p < s.end && *s.p == (c == '{' ? '}' : ']')) {
                s.p++;
                depth--;
            } else {
                if (c == '{') {
                    scan_ws(&s);
                    if (!scan_name(&s))
                        return false;
                }
                continue; /* its first value */
            }
        } else if (c == '"') {
            if (!scan_string(&s))
                return false;
        } else if (c == '-' || (c >= '0' && c <= '9')) {
            if (!scan_number(&s))
                return false;
        } else if (!scan_literal(&s, "true") && !scan_literal(&s, "false") &&
                   !scan_literal(&s, "null")) {
            return false;
        }

        /* After a value: close containers, or a separator and the next value. */
        for (;;) {
            scan_ws(&s);
            if (depth == 0)
                return s.p == s.end;
            if (s.p >= s.end)
                return false;
            c = *s.p++;
            if (c == (is_object[depth - 1] ? '}' : ']')) {
                depth--;
                continue;
            }
            if (c != ',')
                return false;
            if (is_object[depth - 1]) {
                scan_ws(&s);
                if (!scan_name(&s))
                    return false;
            }
            break;
        }
    }
}

/* Numbers too large for a double ("1e999") become infinities in json-c;
 * refuse them (RFC 8259 §6 lets a receiver limit the range). Recursion is
 * bounded by the depth limit (PROTO_JSON_DEPTH). */
static bool numbers_finite(json_object *o, int depth)
{
    if (depth > PROTO_JSON_DEPTH)
        return false;
    switch (json_object_get_type(o)) {
    case json_type_double:
        return isfinite(json_object_get_double(o));
    case json_type_object: {
        json_object_object_foreach(o, key, val)
        {
            (void)key;
            if (!numbers_finite(val, depth + 1))
                return false;
        }
        return true;
    }
    case json_type_array: {
        size_t n = json_object_array_length(o);
        for (size_t i = 0; i < n; i++)
            if (!numbers_finite(json_object_array_get_idx(o, i), depth + 1))
                return false;
        return true;
    }
    default:
        return true;
    }
}

/* The tokener keeps the text of the last tokens in its printbuf, and a
 * request may carry a PIN: clear it before it goes back to the heap (STYLE.md
 * rule 10). json-c 0.16 still publishes struct json_tokener; best effort, as a
 * printbuf that grew left its old copy to realloc(). */
static void tokener_wipe(json_tokener *tok)
{
    if (tok->pb != NULL && tok->pb->buf != NULL && tok->pb->size > 0)
        explicit_bzero(tok->pb->buf, (size_t)tok->pb->size);
}

proto_status_t proto_parse_json(const char *buf, size_t len, json_object **out)
{
    if (out == NULL)
        return PROTO_ERR_FIELD;
    *out = NULL;
    if (buf == NULL || len == 0)
        return PROTO_ERR_JSON;
    if (len > PROTO_FRAME_MAX)
        return PROTO_ERR_TOO_BIG;

    if (!json_syntax_ok(buf, len))
        return PROTO_ERR_JSON;

    json_tokener *tok = json_tokener_new_ex(PROTO_JSON_DEPTH);
    if (tok == NULL)
        return PROTO_ERR_NOMEM;
    /* Strict: no comments, single quotes, trailing commas, leading zeros; and
     * nothing but white space after the object (the frame is one object). */
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
    json_object *obj = json_tokener_parse_ex(tok, buf, (int)len);
    enum json_tokener_error err = json_tokener_get_error(tok);
    size_t end = json_tokener_get_parse_end(tok);
    tokener_wipe(tok);
    json_tokener_free(tok);

    /* A NUL inside the frame stops json-c early: end < len catches it too. */
    if (obj == NULL || err != json_tokener_success || end != len ||
        !json_object_is_type(obj, json_type_object) || !numbers_finite(obj, 1)) {
        json_object_put(obj);
        return PROTO_ERR_JSON;
    }
    *out = obj;
    return PROTO_OK;
}

proto_status_t proto_read_json(int fd, int timeout_ms, json_object **out, int *fds, size_t *nfds)
{
    if (out == NULL)
        return PROTO_ERR_FIELD;
    *out = NULL;
    char *buf = NULL;
    size_t len = 0;
    proto_status_t st = proto_read_frame(fd, timeout_ms, &buf, &len, fds, nfds);
    if (st != PROTO_OK)
        return st;
    st = proto_parse_json(buf, len, out);
    explicit_bzero(buf, len); /* a request may hold a PIN */
    free(buf);
    if (st != PROTO_OK && fds != NULL) {
        for (size_t i = 0; i < *nfds; i++)
            close(fds[i]);
        *nfds = 0;
    }
    return st;
}

proto_status_t proto_write_json_timeout(int fd, json_object *obj, const int *fds, size_t nfds,
                                        int timeout_ms)
{
    if (obj == NULL || !json_object_is_type(obj, json_type_object))
        return PROTO_ERR_FIELD;
    size_t len = 0;
    /* Compact: no spaces, "/" left alone. The string belongs to obj. */
    const char *s = json_object_to_json_string_length(
        obj, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
    if (s == NULL)
        return PROTO_ERR_NOMEM;
    proto_status_t st = proto_write_frame_timeout(fd, s, len, fds, nfds, timeout_ms);
    /* The text may hold a PIN. It lives in obj's own buffer, which json-c
     * rewrites on every serialisation: wiping it here is safe. */
    explicit_bzero((char *)(uintptr_t)s, len);
    return st;
}

proto_status_t proto_write_json(int fd, json_object *obj, const int *fds, size_t nfds)
{
    return proto_write_json_timeout(fd, obj, fds, nfds, -1);
}

/* ---- names and envelope ------------------------------------------------- */

bool proto_name_valid(const char *name)
{
    if (name == NULL || !(name[0] >= 'a' && name[0] <= 'z'))
        return false;
    size_t i = 0;
    for (; name[i] != '\0'; i++) {
        char c = name[i];
        if (i >= PROTO_METHOD_MAX)
            return false;
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_'))
            return false;
    }
    return true;
}

/* A member, or NULL if absent; JSON null counts as absent. */
static json_object *member(json_object *obj, const char *key)
{
    json_object *v = NULL;
    if (!json_object_is_type(obj, json_type_object) || key == NULL)
        return NULL;
    if (!json_object_object_get_ex(obj, key, &v))
        return NULL;
    return v; /* NULL for a JSON null */
}

static bool is_int_in(json_object *v, int64_t min, int64_t max, int64_t *out)
{
    if (!json_object_is_type(v, json_type_int))
        return false;
    /* json-c clamps integers it cannot hold to INT64_MIN / UINT64_MAX (read
     * back as INT64_MAX): the +-PROTO_INT_MAX window refuses those. */
    int64_t x = json_object_get_int64(v);
    if (x < -PROTO_INT_MAX || x > PROTO_INT_MAX || x < min || x > max)
        return false;
    *out = x;
    return true;
}

bool proto_envelope_version_ok(json_object *msg)
{
    int64_t v = 0;
    return is_int_in(member(msg, "v"), PROTO_VERSION, PROTO_VERSION, &v);
}

static bool only_members(json_object *obj, const char *const *allowed, size_t n)
{
    json_object_object_foreach(obj, key, val)
    {
        (void)val;
        bool ok = false;
        for (size_t i = 0; i < n && !ok; i++)
            ok = strcmp(key, allowed[i]) == 0;
        if (!ok)
            return false;
    }
    return true;
}

proto_status_t proto_parse_request(json_object *req, proto_request_t *out)
{
    static const char *const allowed[] = {"v", "id", "method", "params"};
    if (out == NULL)
        return PROTO_ERR_FIELD;
    out->id = -1;
    out->method[0] = '\0';
    out->params = NULL;
    if (!json_object_is_type(req, json_type_object))
        return PROTO_ERR_FIELD;

    /* The id first, so that even a bad request gets an answer it can match. */
    int64_t id;
    if (!is_int_in(member(req, "id"), 0, PROTO_INT_MAX, &id))
        return PROTO_ERR_FIELD;
    out->id = id;

    if (!proto_envelope_version_ok(req))
        return PROTO_ERR_FIELD;
    if (!only_members(req, allowed, sizeof allowed / sizeof allowed[0]))
        return PROTO_ERR_FIELD;

    json_object *m = member(req, "method");
    if (!json_object_is_type(m, json_type_string))
        return PROTO_ERR_FIELD;
    const char *name = json_object_get_string(m);
    size_t name_len = (size_t)json_object_get_string_len(m);
    if (name_len > PROTO_METHOD_MAX || strlen(name) != name_len || !proto_name_valid(name))
        return PROTO_ERR_FIELD;

    json_object *params = member(req, "params");
    if (params != NULL) {
        if (!json_object_is_type(params, json_type_object))
            return PROTO_ERR_FIELD;
    } else {
        /* Absent or null: an empty object owned by req, so it stays borrowed
         * (json_object_object_add replaces a null member). */
        params = json_object_new_object();
        if (params == NULL)
            return PROTO_ERR_NOMEM;
        if (json_object_object_add(req, "params", params) != 0) {
            json_object_put(params);
            return PROTO_ERR_NOMEM;
        }
    }
    memcpy(out->method, name, name_len + 1);
    out->params = params;
    return PROTO_OK;
}

/* ---- builders ----------------------------------------------------------- */

/* Adds key: val to obj, taking val over (also on failure). */
static bool add(json_object *obj, const char *key, json_object *val)
{
    if (val == NULL)
        return false;
    if (json_object_object_add(obj, key, val) != 0) {
        json_object_put(val);
        return false;
    }
    return true;
}

static json_object *envelope_new(int64_t id, bool with_id)
{
    json_object *o = json_object_new_object();
    if (o == NULL)
        return NULL;
    if (!add(o, "v", json_object_new_int(PROTO_VERSION)))
        goto fail;
    if (with_id) {
        if (id >= 0 && id <= PROTO_INT_MAX) {
            if (!add(o, "id", json_object_new_int64(id)))
                goto fail;
        } else if (json_object_object_add(o, "id", NULL) != 0) {
            goto fail;
        }
    }
    return o;
fail:
    json_object_put(o);
    return NULL;
}

/* NULL stands for an empty object; anything but an object is refused. */
static json_object *object_or_empty(json_object *o, bool *bad)
{
    *bad = false;
    if (o == NULL)
        return json_object_new_object();
    if (!json_object_is_type(o, json_type_object)) {
        json_object_put(o);
        *bad = true;
        return NULL;
    }
    return o;
}

json_object *proto_request_new(int64_t id, const char *method, json_object *params)
{
    bool bad;
    params = object_or_empty(params, &bad);
    if (params == NULL)
        return NULL;
    if (id < 0 || id > PROTO_INT_MAX || !proto_name_valid(method)) {
        json_object_put(params);
        return NULL;
    }
    json_object *o = envelope_new(id, true);
    if (o == NULL) {
        json_object_put(params);
        return NULL;
    }
    if (!add(o, "method", json_object_new_string(method))) {
        json_object_put(params);
        json_object_put(o);
        return NULL;
    }
    if (!add(o, "params", params)) { /* add() released params */
        json_object_put(o);
        return NULL;
    }
    return o;
}

json_object *proto_result_new(int64_t id, json_object *result)
{
    bool bad;
    result = object_or_empty(result, &bad);
    if (result == NULL)
        return NULL;
    json_object *o = envelope_new(id, true);
    if (o == NULL) {
        json_object_put(result);
        return NULL;
    }
    if (!add(o, "result", result)) {
        json_object_put(o);
        return NULL;
    }
    return o;
}

/* A new JSON string of free text (messages, names) for the peer's strict
 * parser: at most cap bytes, cut at a character boundary, every byte that is
 * not well-formed UTF-8 replaced with '?'. */
static json_object *text_new(const char *s, size_t cap)
{
    const size_t full = strlen(s);
    const size_t len = full > cap ? cap : full;
    char *t = malloc(len + 1);
    if (t == NULL)
        return NULL;
    size_t i = 0, o = 0;
    while (i < len) {
        size_t n = utf8_seq((const unsigned char *)s + i, len - i);
        if (n == 0) {
            /* A sequence cut by the cap ends the text; anything else is
             * replaced. */
            if (len < full && utf8_seq((const unsigned char *)s + i, full - i) != 0)
                break;
            t[o++] = '?';
            i++;
            continue;
        }
        memcpy(t + o, s + i, n);
        o += n;
        i += n;
    }
    json_object *j = json_object_new_string_len(t, (int)o);
    free(t);
    return j;
}

json_object *proto_error_new_tries(int64_t id, const char *code, const char *message,
                                   int tries_left)
{
    if (!proto_name_valid(code))
        return NULL;
    if (message == NULL)
        message = code;
    json_object *o = envelope_new(id, true);
    if (o == NULL)
        return NULL;
    json_object *err = json_object_new_object();
    if (!add(o, "error", err))
        goto fail;
    if (!add(err, "code", json_object_new_string(code)) ||
        !add(err, "message", text_new(message, PROTO_STRING_MAX)))
        goto fail;
    if (tries_left > 255)
        tries_left = 255; /* the range a client accepts (proto_parse_response) */
    if (tries_left >= 0 && !add(err, "tries_left", json_object_new_int(tries_left)))
        goto fail;
    return o;
fail:
    json_object_put(o);
    return NULL;
}

json_object *proto_error_new(int64_t id, const char *code, const char *message)
{
    return proto_error_new_tries(id, code, message, -1);
}

json_object *proto_event_new(const char *event, json_object *fields)
{
    bool bad;
    fields = object_or_empty(fields, &bad);
    if (fields == NULL)
        return NULL;
    json_object *o = NULL;
    if (!proto_name_valid(event) || json_object_object_get_ex(fields, "v", NULL) ||
        json_object_object_get_ex(fields, "event", NULL))
        goto fail;
    o = envelope_new(0, false);
    if (o == NULL || !add(o, "event", json_object_new_string(event)))
        goto fail;
    json_object_object_foreach(fields, key, val)
    {
        /* A shared reference: fields is released below. */
        if (json_object_object_add(o, key, json_object_get(val)) != 0) {
            json_object_put(val);
            goto fail;
        }
    }
    json_object_put(fields);
    return o;
fail:
    json_object_put(fields);
    json_object_put(o);
    return NULL;
}

/* ---- client side -------------------------------------------------------- */

bool proto_is_event(json_object *msg)
{
    return json_object_is_type(msg, json_type_object) &&
           json_object_object_get_ex(msg, "event", NULL);
}

static bool name_member(json_object *obj, const char *key, const char **out)
{
    json_object *v = member(obj, key);
    if (!json_object_is_type(v, json_type_string))
        return false;
    const char *s = json_object_get_string(v);
    if ((size_t)json_object_get_string_len(v) != strlen(s) || !proto_name_valid(s))
        return false;
    *out = s;
    return true;
}

proto_status_t proto_parse_response(json_object *msg, proto_response_t *out)
{
    static const char *const allowed[] = {"v", "id", "result", "error"};
    if (out == NULL)
        return PROTO_ERR_FIELD;
    memset(out, 0, sizeof *out);
    out->id = -1;
    out->tries_left = -1;
    if (!json_object_is_type(msg, json_type_object) || !proto_envelope_version_ok(msg) ||
        !only_members(msg, allowed, sizeof allowed / sizeof allowed[0]))
        return PROTO_ERR_FIELD;

    json_object *id = NULL;
    if (!json_object_object_get_ex(msg, "id", &id))
        return PROTO_ERR_FIELD;
    json_object *result = member(msg, "result");
    json_object *error = member(msg, "error");
    if ((result == NULL) == (error == NULL))
        return PROTO_ERR_FIELD; /* exactly one of them */

    if (id != NULL) {
        if (!is_int_in(id, 0, PROTO_INT_MAX, &out->id))
            return PROTO_ERR_FIELD;
    } else if (error == NULL) {
        return PROTO_ERR_FIELD; /* only an error may have "id": null */
    }

    if (result != NULL) {
        if (!json_object_is_type(result, json_type_object))
            return PROTO_ERR_FIELD;
        out->result = result;
        return PROTO_OK;
    }
    if (!json_object_is_type(error, json_type_object))
        return PROTO_ERR_FIELD;
    const char *code = NULL, *message = NULL;
    int64_t tries = -1;
    if (!name_member(error, "code", &code) ||
        proto_get_string(error, "message", true, PROTO_STRING_MAX, &message) != PROTO_OK ||
        proto_get_int(error, "tries_left", false, 0, 255, &tries) != PROTO_OK)
        return PROTO_ERR_FIELD;
    out->code = code;
    out->message = message;
    out->tries_left = tries;
    out->error = error;
    return PROTO_OK;
}

proto_status_t proto_parse_event(json_object *msg, const char **event)
{
    const char *name = NULL;
    if (event == NULL)
        return PROTO_ERR_FIELD;
    if (!json_object_is_type(msg, json_type_object) || !proto_envelope_version_ok(msg) ||
        !name_member(msg, "event", &name))
        return PROTO_ERR_FIELD;
    *event = name;
    return PROTO_OK;
}

/* ---- hello -------------------------------------------------------------- */

json_object *proto_hello_new(int64_t id, const char *client)
{
    json_object *params = json_object_new_object();
    if (params == NULL)
        return NULL;
    json_object *versions = json_object_new_array();
    if (!add(params, "versions", versions) ||
        json_object_array_add(versions, json_object_new_int(PROTO_VERSION)) != 0)
        goto fail;
    if (client != NULL) {
        if (!add(params, "client", text_new(client, PROTO_PEER_NAME_MAX)))
            goto fail;
    }
    return proto_request_new(id, "hello", params);
fail:
    json_object_put(params);
    return NULL;
}

proto_status_t proto_hello_negotiate(json_object *params, int64_t *version, const char **client)
{
    if (version == NULL || !json_object_is_type(params, json_type_object))
        return PROTO_ERR_FIELD;
    json_object *versions = member(params, "versions");
    if (!json_object_is_type(versions, json_type_array))
        return PROTO_ERR_FIELD;
    size_t n = json_object_array_length(versions);
    if (n == 0 || n > PROTO_HELLO_VERSIONS_MAX)
        return PROTO_ERR_FIELD;
    const char *name = NULL;
    if (proto_get_string(params, "client", false, PROTO_PEER_NAME_MAX, &name) != PROTO_OK)
        return PROTO_ERR_FIELD;
    int64_t best = 0;
    for (size_t i = 0; i < n; i++) {
        int64_t v;
        if (!is_int_in(json_object_array_get_idx(versions, i), 1, 65535, &v))
            return PROTO_ERR_FIELD;
        if (v == PROTO_VERSION)
            best = v;
    }
    *version = best;
    if (client != NULL)
        *client = name;
    return PROTO_OK;
}

/* ---- typed, capped getters ---------------------------------------------- */

void proto_wipe_string(json_object *obj, const char *key)
{
    json_object *v = member(obj, key);
    if (!json_object_is_type(v, json_type_string))
        return;
    int n = json_object_get_string_len(v);
    /* The string's bytes belong to v (heap memory json-c allocated). */
    if (n > 0)
        explicit_bzero((char *)(uintptr_t)json_object_get_string(v), (size_t)n);
}

proto_status_t proto_get_string(json_object *obj, const char *key, bool required, size_t max_len,
                                const char **out)
{
    if (out == NULL || !json_object_is_type(obj, json_type_object))
        return PROTO_ERR_FIELD;
    json_object *v = member(obj, key);
    if (v == NULL)
        return required ? PROTO_ERR_FIELD : PROTO_OK;
    if (!json_object_is_type(v, json_type_string))
        return PROTO_ERR_FIELD;
    if (max_len == 0)
        max_len = PROTO_STRING_MAX;
    const char *s = json_object_get_string(v);
    int n = json_object_get_string_len(v);
    /* A "\u0000" inside would cut the C string short: refuse it. */
    if (n < 0 || (size_t)n > max_len || strlen(s) != (size_t)n)
        return PROTO_ERR_FIELD;
    *out = s;
    return PROTO_OK;
}

proto_status_t proto_get_int(json_object *obj, const char *key, bool required, int64_t min,
                             int64_t max, int64_t *out)
{
    if (out == NULL || min > max || !json_object_is_type(obj, json_type_object))
        return PROTO_ERR_FIELD;
    json_object *v = member(obj, key);
    if (v == NULL)
        return required ? PROTO_ERR_FIELD : PROTO_OK;
    int64_t x;
    if (!is_int_in(v, min, max, &x))
        return PROTO_ERR_FIELD;
    *out = x;
    return PROTO_OK;
}

proto_status_t proto_get_bool(json_object *obj, const char *key, bool required, bool *out)
{
    if (out == NULL || !json_object_is_type(obj, json_type_object))
        return PROTO_ERR_FIELD;
    json_object *v = member(obj, key);
    if (v == NULL)
        return required ? PROTO_ERR_FIELD : PROTO_OK;
    if (!json_object_is_type(v, json_type_boolean))
        return PROTO_ERR_FIELD;
    *out = json_object_get_boolean(v) != 0;
    return PROTO_OK;
}

proto_status_t proto_get_b64(json_object *obj, const char *key, bool required, uint8_t *buf,
                             size_t cap, size_t *len)
{
    if (len == NULL || (buf == NULL && cap != 0))
        return PROTO_ERR_FIELD;
    if (cap > PROTO_BLOB_MAX)
        cap = PROTO_BLOB_MAX;
    const char *s = NULL;
    /* The encoded length is capped first: no more characters than cap bytes
     * can need. */
    proto_status_t st = proto_get_string(obj, key, required, PROTO_B64_ENCODED_LEN(cap), &s);
    if (st != PROTO_OK)
        return st;
    if (s == NULL)
        return PROTO_OK; /* optional and absent */
    size_t n = 0;
    if (!proto_b64_decode(s, strlen(s), buf, cap, &n))
        return PROTO_ERR_FIELD;
    *len = n;
    return PROTO_OK;
}

bool proto_add_b64(json_object *obj, const char *key, const uint8_t *data, size_t len)
{
    if (!json_object_is_type(obj, json_type_object) || key == NULL || len > PROTO_BLOB_MAX ||
        (data == NULL && len != 0))
        return false;
    size_t cap = PROTO_B64_ENCODED_LEN(len) + 1;
    char *s = malloc(cap);
    if (s == NULL)
        return false;
    bool ok = proto_b64_encode(data, len, s, cap) &&
              add(obj, key, json_object_new_string_len(s, (int)(cap - 1)));
    free(s);
    return ok;
}
