/* methods: cachetd's request dispatcher (docs/protocol.md §3). A table of
 * {name, handler, descriptors}; every parameter is read through proto's capped
 * getters; every card operation (verify-pin, login, sign-digest, sign-mail) is
 * audited before its answer leaves (audit.h: on disk, fsync'd), and a result
 * whose audit entry could not be written is withheld. PINs are copied once into
 * the card operation, wiped from the request, and never logged. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/sha.h>
#include <openssl/x509.h>

#include "cachetd.h"
#include "device.h"
#include "proto.h"
#include "smime.h"

#define STATUS_WAIT_MS 2000 /* status: how long it may wait for a busy card */
#define COPY_CHUNK     65536

typedef struct {
    json_object *result; /* success */
    const char *code;    /* or an error */
    char message[256];
    int tries_left;     /* PIN errors: >= 0 to report it */
    json_object *extra; /* more members of the error object (taken over) */
} reply_t;

typedef void (*method_fn)(cachetd_ctx_t *ctx, cachetd_client_t *cl, const proto_request_t *rq,
                          reply_t *r);

static void fail(reply_t *r, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void fail(reply_t *r, const char *code, const char *fmt, ...)
{
    r->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->message, sizeof r->message, fmt, ap);
    va_end(ap);
}

const char *cachetd_card_code(card_status_t st)
{
    return card_status_name(st); /* the names are the protocol's codes (card_common.c) */
}

static const char *card_message(card_status_t st)
{
    switch (st) {
    case CARD_OK:
        return "ok";
    case CARD_ERR_NO_READER:
        return "no Cachet reader is connected";
    case CARD_ERR_NO_CARD:
        return "no usable card in the reader";
    case CARD_ERR_REMOVED:
        return "the card was removed";
    case CARD_ERR_PIN_REQUIRED:
        return "the holder PIN is required";
    case CARD_ERR_PIN_INCORRECT:
        return "incorrect PIN";
    case CARD_ERR_PIN_BLOCKED:
        return "the PIN is blocked";
    case CARD_ERR_PIN_FORMAT:
        return "the PIN must be 4 to 8 digits";
    case CARD_ERR_CANCELLED:
        return "cancelled on the reader";
    case CARD_ERR_TIMEOUT:
        return "the card did not answer in time";
    case CARD_ERR_NOT_SUPPORTED:
        return "not supported by this card or backend";
    case CARD_ERR_BAD_INPUT:
        return "input refused by the card backend";
    case CARD_ERR_BACKEND:
        return "card backend failure";
    }
    return "card backend failure";
}

static bool is_pin_error(card_status_t st)
{
    return st == CARD_ERR_PIN_REQUIRED || st == CARD_ERR_PIN_INCORRECT ||
           st == CARD_ERR_PIN_BLOCKED || st == CARD_ERR_PIN_FORMAT;
}

static int op_timeout(const cachetd_ctx_t *ctx)
{
    return ctx->cfg->timeout_s * 1000;
}

/* A card error; PIN errors always carry tries_left (asked from the card, which
 * costs no try, when the failed operation did not say). */
static void fail_card(cachetd_ctx_t *ctx, reply_t *r, card_status_t st, int tries_left)
{
    fail(r, cachetd_card_code(st), "%s", card_message(st));
    if (!is_pin_error(st))
        return;
    if (st == CARD_ERR_PIN_BLOCKED)
        tries_left = 0;
    if (tries_left < 0) {
        cachetd_op_t op;
        memset(&op, 0, sizeof op);
        op.kind = CACHETD_OP_PIN_STATUS;
        if (cachetd_card_run(ctx->card, &op, STATUS_WAIT_MS) == CARD_OK)
            tries_left = op.tries_left;
    }
    r->tries_left = tries_left;
    if (tries_left >= 0 && st == CARD_ERR_PIN_INCORRECT)
        snprintf(r->message, sizeof r->message, "incorrect PIN, %d tries left", tries_left);
}

static void hex(const uint8_t *in, size_t n, char *out)
{
    static const char d[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = d[in[i] >> 4];
        out[2 * i + 1] = d[in[i] & 15];
    }
    out[2 * n] = '\0';
}

static void sha256(const uint8_t *in, size_t n, uint8_t out[32])
{
    SHA256(in, n, out);
}

static void rfc3339(time_t t, char *out, size_t cap)
{
    struct tm tm;
    if (t == 0 || gmtime_r(&t, &tm) == NULL) {
        snprintf(out, cap, "%s", "");
        return;
    }
    strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static const char *role_name(int role)
{
    return role == CARD_KEY_AUTH ? "auth" : role == CARD_KEY_SIGN ? "sign" : "ca";
}

/* ---- PIN and card operations -------------------------------------------- */

/* Optional "pin" parameter: copied into pin[], then wiped in the request. */
static bool take_pin(json_object *params, char pin[CACHETD_PIN_MAX + 1], bool *has, reply_t *r)
{
    const char *s = NULL;
    *has = false;
    if (proto_get_string(params, "pin", false, CACHETD_PIN_MAX, &s) != PROTO_OK) {
        json_object *v = NULL;
        if (json_object_object_get_ex(params, "pin", &v) &&
            json_object_is_type(v, json_type_string))
            cachetd_wipe((char *)json_object_get_string(v), (size_t)json_object_get_string_len(v));
        fail(r, PROTO_E_PIN_FORMAT, "pin: a string of at most %d characters", CACHETD_PIN_MAX);
        return false;
    }
    if (s == NULL)
        return true;
    size_t n = strlen(s);
    memcpy(pin, s, n + 1);
    cachetd_wipe((char *)s, n); /* json-c's copy (the request object is ours) */
    *has = true;
    return true;
}

static void emit_pin_needed(cachetd_client_t *cl, const char *operation)
{
    json_object *f = json_object_new_object();
    json_object_object_add(f, "operation", json_object_new_string(operation));
    json_object_object_add(f, "pid", json_object_new_int64(cl->pid));
    json_object_object_add(f, "message",
                           json_object_new_string("type the PIN on the Cachet reader"));
    json_object_object_add(f, "pinpad", json_object_new_boolean(true)); /* not on the terminal */
    cachetd_events_emit("pin-needed", f);
}

/* VERIFY with the client's PIN, or on the PIN pad (pin NULL). */
static card_status_t verify(cachetd_ctx_t *ctx, cachetd_client_t *cl, const char *pin,
                            const char *operation, int *tries_left)
{
    cachetd_op_t *op = calloc(1, sizeof *op);
    if (op == NULL)
        return CARD_ERR_BACKEND;
    op->kind = CACHETD_OP_VERIFY_PIN;
    if (pin != NULL) {
        snprintf(op->pin, sizeof op->pin, "%s", pin);
        op->pin_set = true;
    } else {
        emit_pin_needed(cl, operation);
    }
    card_status_t st = cachetd_card_run(ctx->card, op, op_timeout(ctx));
    *tries_left = op->tries_left;
    cachetd_wipe(op, sizeof *op);
    free(op);
    return st;
}

/* The appliance's part in a signature (issue 5): what to announce, which
 * receipt to fetch, and what came back. */
typedef struct {
    const uint8_t *announce; /* the ANNOUNCE message, NULL = unannounced */
    size_t announce_len;
    uint8_t receipt_digest[32]; /* what the card signs; 0 bytes = no receipt wanted */
    size_t receipt_digest_len;
    bool announced;
    uint8_t receipt[CARD_NATIVE_RECEIPT_MAX];
    size_t receipt_len;
    uint8_t device_info[CARD_NATIVE_INFO_MAX];
    size_t device_info_len;
} sign_trust_t;

/* DER DigestInfo prefixes (RFC 8017 §9.2 note 1). */
static const uint8_t di_sha1[15] = {0x30, 0x21, 0x30, 0x09, 0x06, 0x05, 0x2B, 0x0E,
                                    0x03, 0x02, 0x1A, 0x05, 0x00, 0x04, 0x14};
static const uint8_t di_sha256[19] = {0x30, 0x31, 0x30, 0x0D, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01,
                                      0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20};

/* The digest the appliance's gate sees for this signature, as its receipt
 * will carry it (docs/appliance.md "The gate": PSO CDS over the bare hash;
 * INTERNAL AUTHENTICATE: the hash of a DigestInfo(SHA-256), else SHA-256 of
 * the data). Returns its length (20 or 32), 0 if it cannot be said. */
static size_t gate_digest(card_key_role_t role, card_mech_t mech, const uint8_t *in, size_t n,
                          uint8_t out[32])
{
    if (mech == CARD_MECH_SHA256 && n == 32) {
        memcpy(out, in, 32);
        return 32;
    }
    if (mech == CARD_MECH_RSA_PKCS && n == sizeof di_sha256 + 32 &&
        memcmp(in, di_sha256, sizeof di_sha256) == 0) {
        memcpy(out, in + sizeof di_sha256, 32);
        return 32;
    }
    if (role == CARD_KEY_SIGN) {
        if (mech == CARD_MECH_SHA1 && n == 20) {
            memcpy(out, in, 20);
            return 20;
        }
        if (mech == CARD_MECH_RSA_PKCS && n == sizeof di_sha1 + 20 &&
            memcmp(in, di_sha1, sizeof di_sha1) == 0) {
            memcpy(out, in + sizeof di_sha1, 20);
            return 20;
        }
        return 0;
    }
    if (mech == CARD_MECH_SHA1 && n == 20) {
        uint8_t di[sizeof di_sha1 + 20];
        memcpy(di, di_sha1, sizeof di_sha1);
        memcpy(di + sizeof di_sha1, in, 20);
        SHA256(di, sizeof di, out);
        return 32;
    }
    SHA256(in, n, out);
    return 32;
}

/* Signs, logging in first when asked (pin) or when the card says so and the
 * reader has a PIN pad. The PIN is never retried. t (may be NULL): the
 * announcement and the receipt. */
static card_status_t sign_logged_in(cachetd_ctx_t *ctx, cachetd_client_t *cl, const char *pin,
                                    const char *operation, card_key_role_t role, card_mech_t mech,
                                    const uint8_t *in, size_t in_len, uint8_t *sig, size_t sig_cap,
                                    size_t *sig_len, int *tries_left, sign_trust_t *t)
{
    *tries_left = -1;
    if (pin != NULL) {
        card_status_t st = verify(ctx, cl, pin, operation, tries_left);
        if (st != CARD_OK)
            return st;
    }
    if (pin == NULL && t != NULL && role == CARD_KEY_SIGN) {
        /* The appliance asks the holder to confirm before the card sees the
         * signature: ask for the PIN (on the PIN pad) first, not after an OK
         * that the card would then refuse (6982). Only when cachetd does not
         * know the PIN verified (no APDU in the steady state); the empty VERIFY
         * costs no try. */
        cachetd_op_t *ps = calloc(1, sizeof *ps);
        cachetd_card_snapshot_t *snap = malloc(sizeof *snap);
        bool need = false;
        if (ps != NULL && snap != NULL) {
            cachetd_card_snapshot(ctx->card, snap, 0);
            ps->kind = CACHETD_OP_PIN_STATUS;
            need = snap->info.pinpad && !snap->pin_verified &&
                   cachetd_card_run(ctx->card, ps, STATUS_WAIT_MS) == CARD_OK && !ps->verified &&
                   ps->tries_left != 0;
        }
        free(ps);
        free(snap);
        if (need) {
            card_status_t vst = verify(ctx, cl, NULL, operation, tries_left);
            if (vst != CARD_OK)
                return vst;
        }
    }
    cachetd_op_t *op = calloc(1, sizeof *op);
    if (op == NULL)
        return CARD_ERR_BACKEND;
    card_status_t st = CARD_ERR_BAD_INPUT;
    cachetd_log("%s: signing with the %s key for pid %ld", operation,
                role == CARD_KEY_AUTH ? "auth" : "sign", (long)cl->pid);
    if (in_len <= sizeof op->in) {
        for (int attempt = 0; attempt < 2; attempt++) {
            memset(op, 0, sizeof *op);
            op->kind = CACHETD_OP_SIGN;
            op->role = role;
            op->mech = mech;
            memcpy(op->in, in, in_len);
            op->in_len = in_len;
            if (t != NULL && t->announce != NULL && t->announce_len <= sizeof op->announce) {
                memcpy(op->announce, t->announce, t->announce_len);
                op->announce_len = t->announce_len;
            }
            if (t != NULL && t->receipt_digest_len <= sizeof op->receipt_digest) {
                memcpy(op->receipt_digest, t->receipt_digest, t->receipt_digest_len);
                op->receipt_digest_len = t->receipt_digest_len;
            }
            st = cachetd_card_run(ctx->card, op, op_timeout(ctx));
            if (t != NULL) {
                t->announced = op->announced;
                t->receipt_len = 0;
                t->device_info_len = 0;
                if (st == CARD_OK && op->receipt_len <= sizeof t->receipt &&
                    op->device_info_len <= sizeof t->device_info) {
                    memcpy(t->receipt, op->receipt, op->receipt_len);
                    t->receipt_len = op->receipt_len;
                    memcpy(t->device_info, op->device_info, op->device_info_len);
                    t->device_info_len = op->device_info_len;
                }
            }
            if (st != CARD_ERR_PIN_REQUIRED || attempt > 0 || pin != NULL)
                break;
            cachetd_card_snapshot_t *snap = malloc(sizeof *snap);
            bool pinpad = false;
            if (snap != NULL) {
                cachetd_card_snapshot(ctx->card, snap, 0);
                pinpad = snap->info.pinpad;
                free(snap);
            }
            if (!pinpad)
                break;
            st = verify(ctx, cl, NULL, operation, tries_left);
            if (st != CARD_OK)
                break;
        }
        if (st == CARD_OK) {
            if (op->sig_len > sig_cap) {
                st = CARD_ERR_BACKEND;
            } else {
                memcpy(sig, op->sig, op->sig_len);
                *sig_len = op->sig_len;
            }
        }
    }
    cachetd_wipe(op, sizeof *op);
    free(op);
    return st;
}

/* ---- audit and events ---------------------------------------------------- */

/* One audit entry per card operation, on disk before the answer. */
static bool audit_op(cachetd_ctx_t *ctx, const cachetd_client_t *cl, const char *operation,
                     const char *key, const uint8_t *digest, const char *result, json_object *extra)
{
    json_object *f = json_object_new_object();
    json_object_object_add(f, "operation", json_object_new_string(operation));
    json_object *client = json_object_new_object();
    json_object_object_add(client, "uid", json_object_new_int64(cl->uid));
    json_object_object_add(client, "pid", json_object_new_int64(cl->pid));
    json_object_object_add(client, "exe", json_object_new_string(cl->exe));
    json_object_object_add(f, "client", client);
    if (key != NULL)
        json_object_object_add(f, "key", json_object_new_string(key));
    if (digest != NULL) {
        char h[65];
        hex(digest, 32, h);
        json_object_object_add(f, "digest", json_object_new_string(h));
    }
    json_object_object_add(f, "result", json_object_new_string(result));
    if (extra != NULL) {
        json_object_object_foreach(extra, k, v)
        {
            json_object_object_add(f, k, json_object_get(v));
        }
        json_object_put(extra);
    }
    bool ok = audit_append(ctx->audit, f);
    json_object_put(f);
    if (!ok)
        cachetd_log("audit: could not append the %s entry: result withheld", operation);
    return ok;
}

static void emit_finished(const cachetd_client_t *cl, const char *operation, const char *key,
                          const char *result)
{
    json_object *f = json_object_new_object();
    json_object_object_add(f, "operation", json_object_new_string(operation));
    if (key != NULL)
        json_object_object_add(f, "key", json_object_new_string(key));
    json_object_object_add(f, "result", json_object_new_string(result));
    json_object_object_add(f, "pid", json_object_new_int64(cl->pid));
    cachetd_events_emit("operation-finished", f);
}

/* Audits, logs and announces the end of a card operation; turns a success
 * into an error when the audit entry could not be written. */
static void finish_op(cachetd_ctx_t *ctx, cachetd_client_t *cl, reply_t *r, const char *operation,
                      const char *key, const uint8_t *digest, json_object *extra)
{
    const char *result = r->code != NULL ? r->code : "ok";
    if (!audit_op(ctx, cl, operation, key, digest, result, extra) && r->code == NULL) {
        json_object_put(r->result);
        r->result = NULL;
        fail(r, PROTO_E_INTERNAL, "the audit log could not be written: nothing was returned");
        result = r->code;
    }
    cachetd_log("%s%s%s for pid %ld (%s): %s", operation, key != NULL ? " with key " : "",
                key != NULL ? key : "", (long)cl->pid, cl->exe, result);
    emit_finished(cl, operation, key, result);
}

/* ---- the appliance's receipts and device key (issue 5) -------------------- */

static const char *device_pin_path(const cachetd_ctx_t *ctx)
{
    return ctx->cfg->device_pin[0] != '\0' ? ctx->cfg->device_pin : NULL;
}

/* The receipt of a confirmed signature, for its audit entry: the appliance's
 * bytes, its fields, and what cachetd made of it — checked with the device
 * key the appliance reports, which is compared with (or, the first time,
 * pinned as) the pinned key. A key other than the pinned one is reported
 * loudly and recorded, never pinned. NULL when there is no receipt. */
static json_object *receipt_entry(cachetd_ctx_t *ctx, const sign_trust_t *t, const char *operation)
{
    if (t->receipt_len == 0)
        return NULL;
    device_receipt_t *rc = malloc(sizeof *rc);
    if (rc == NULL)
        return NULL;
    char why[200] = "";
    json_object *o = NULL;
    if (!device_receipt_parse(t->receipt, t->receipt_len, rc, why, sizeof why)) {
        cachetd_log("%s: the appliance's receipt is malformed: %s", operation, why);
        free(rc);
        return NULL;
    }
    o = device_receipt_json(rc);
    device_info_t info;
    bool have_key =
        device_info_parse(t->device_info, t->device_info_len, &info) && info.spki_len > 0;
    bool verified =
        have_key && device_receipt_verify(rc, info.spki, info.spki_len, why, sizeof why);
    json_object_object_add(o, "verified", json_object_new_boolean(verified));
    if (have_key) {
        char fpr[DEVICE_FPR_HEX], pinned[DEVICE_FPR_HEX], err[256] = "";
        device_key_fingerprint(info.spki, info.spki_len, fpr);
        json_object_object_add(o, "device_key", json_object_new_string(fpr));
        const char *path = device_pin_path(ctx);
        device_pin_status_t ps =
            path != NULL ? device_pin_check(path, info.spki, info.spki_len, pinned, err, sizeof err)
                         : DEVICE_PIN_ERROR;
        json_object_object_add(o, "device_key_status",
                               json_object_new_string(device_pin_status_name(ps)));
        if (ps == DEVICE_PIN_NEW)
            cachetd_log("device key %s pinned (first use) in %s", fpr, path);
        else if (ps == DEVICE_PIN_MISMATCH)
            cachetd_log("WARNING: THE APPLIANCE'S DEVICE KEY CHANGED: %s, pinned %s. Receipt %lu "
                        "kept but NOT trusted; check the appliance (cachet device)",
                        fpr, pinned, (unsigned long)rc->counter);
        else if (ps == DEVICE_PIN_ERROR && path != NULL)
            cachetd_log("device key pin %s: %s", path, err);
    }
    if (!verified)
        cachetd_log("%s: receipt %lu does not verify with the device key: %s", operation,
                    (unsigned long)rc->counter, why[0] ? why : "no device key");
    free(rc);
    return o;
}

/* The fields every confirmed signature adds to its audit entry. */
static void trust_extra(cachetd_ctx_t *ctx, json_object *extra, const sign_trust_t *t,
                        const char *operation)
{
    if (t->receipt_digest_len > 0) {
        char h[65];
        hex(t->receipt_digest, t->receipt_digest_len, h);
        json_object_object_add(extra, "signed_digest", json_object_new_string(h));
    }
    json_object *r = receipt_entry(ctx, t, operation);
    if (r != NULL)
        json_object_object_add(extra, "receipt", r);
}

/* The receipt in a result: its number and what cachetd made of it. */
static void result_receipt(json_object *result, json_object *extra)
{
    json_object *r = NULL, *v = NULL;
    if (extra == NULL || !json_object_object_get_ex(extra, "receipt", &r))
        return;
    json_object *o = json_object_new_object();
    static const char *const keys[] = {"counter", "verified", "device_key", "device_key_status"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        if (json_object_object_get_ex(r, keys[i], &v))
            json_object_object_add(o, keys[i], json_object_get(v));
    json_object_object_add(result, "receipt", o);
}

/* ---- methods -------------------------------------------------------------- */

static void m_hello(cachetd_ctx_t *ctx, cachetd_client_t *cl, const proto_request_t *rq, reply_t *r)
{
    (void)ctx;
    int64_t version = 0;
    const char *client = NULL;
    if (proto_hello_negotiate(rq->params, &version, &client) != PROTO_OK) {
        fail(r, PROTO_E_BAD_REQUEST, "hello: params {\"versions\":[1],\"client\":\"...\"}");
        return;
    }
    if (version != PROTO_VERSION) {
        fail(r, PROTO_E_VERSION, "this cachetd speaks protocol version %d", PROTO_VERSION);
        return;
    }
    cl->hello_done = true;
    r->result = json_object_new_object();
    json_object_object_add(r->result, "version", json_object_new_int(PROTO_VERSION));
    json_object_object_add(r->result, "server", json_object_new_string(CACHETD_NAME));
}

static void m_status(cachetd_ctx_t *ctx, cachetd_client_t *cl, const proto_request_t *rq,
                     reply_t *r)
{
    (void)cl;
    (void)rq;
    cachetd_card_snapshot_t *s = malloc(sizeof *s);
    cachetd_op_t *op = calloc(1, sizeof *op);
    if (s == NULL || op == NULL) {
        free(s);
        free(op);
        fail(r, PROTO_E_INTERNAL, "out of memory");
        return;
    }
    bool busy = false;
    op->kind = CACHETD_OP_INFO;
    card_status_t st = cachetd_card_run(ctx->card, op, STATUS_WAIT_MS);
    if (st == CARD_ERR_TIMEOUT)
        busy = true;
    cachetd_card_snapshot(ctx->card, s, STATUS_WAIT_MS);
    int tries = s->tries_left;
    bool verified = s->pin_verified;
    if (s->info.present && s->bound) {
        memset(op, 0, sizeof *op);
        op->kind = CACHETD_OP_PIN_STATUS;
        st = cachetd_card_run(ctx->card, op, STATUS_WAIT_MS);
        if (st == CARD_OK) {
            tries = op->tries_left;
            verified = op->verified;
        } else if (st == CARD_ERR_TIMEOUT) {
            busy = true;
        }
        if (st == CARD_OK || st == CARD_ERR_REMOVED)
            cachetd_card_snapshot(ctx->card, s, 0);
    }
    json_object *res = json_object_new_object();
    json_object_object_add(res, "server", json_object_new_string(CACHETD_NAME));
    json_object_object_add(res, "version", json_object_new_string(CACHETD_VERSION));
    json_object_object_add(res, "backend", json_object_new_string(s->backend));
    json_object *rd = json_object_new_object();
    json_object_object_add(rd, "name", json_object_new_string(s->info.reader));
    json_object_object_add(rd, "present", json_object_new_boolean(s->reader_present));
    json_object_object_add(rd, "pinpad", json_object_new_boolean(s->info.pinpad));
    json_object_object_add(res, "reader", rd);
    json_object *cd = json_object_new_object();
    json_object_object_add(cd, "present", json_object_new_boolean(s->info.present));
    json_object_object_add(cd, "serial", json_object_new_string(s->info.serial));
    json_object_object_add(cd, "label", json_object_new_string(s->info.label));
    json_object_object_add(cd, "ready", json_object_new_boolean(s->bound));
    if (s->bind_error[0] != '\0')
        json_object_object_add(cd, "error", json_object_new_string(s->bind_error));
    if (s->bound && s->identity_ok) {
        json_object_object_add(cd, "holder_surname", json_object_new_string(s->id.surname));
        json_object_object_add(cd, "holder_given_name", json_object_new_string(s->id.given_name));
    }
    json_object_object_add(res, "card", cd);
    json_object *pn = json_object_new_object();
    json_object_object_add(pn, "verified", json_object_new_boolean(s->info.present && verified));
    json_object_object_add(pn, "tries_left",
                           s->info.present && tries >= 0 ? json_object_new_int(tries) : NULL);
    json_object_object_add(res, "pin", pn);
    json_object_object_add(res, "busy", json_object_new_boolean(busy));
    r->result = res;
    free(s);
    cachetd_wipe(op, sizeof *op);
    free(op);
}

/* The snapshot of a bound card, or an error saying why there is none. */
static cachetd_card_snapshot_t *bound_card(cachetd_ctx_t *ctx, reply_t *r)
{
    cachetd_card_snapshot_t *s = malloc(sizeof *s);
    if (s == NULL) {
        fail(r, PROTO_E_INTERNAL, "out of memory");
        return NULL;
    }
    cachetd_card_snapshot(ctx->card, s, op_timeout(ctx));
    if (s->bound)
        return s;
    if (s->binding)
        fail(r, PROTO_E_TIMEOUT, "the card is still being read");
    else if (!s->reader_present)
        fail(r, PROTO_E_NO_READER, "%s", card_message(CARD_ERR_NO_READER));
    else if (s->info.present && s->bind_error[0] != '\0')
        fail(r,
             strcmp(s->bind_error, PROTO_E_NOT_SUPPORTED) == 0 ? PROTO_E_NOT_SUPPORTED
             : strcmp(s->bind_error, PROTO_E_BACKEND) == 0     ? PROTO_E_BACKEND
                                                               : PROTO_E_NO_CARD,
             "the card in the reader could not be read (%s)", s->bind_error);
    else
        fail(r, PROTO_E_NO_CARD, "%s", card_message(CARD_ERR_NO_CARD));
    free(s);
    return NULL;
}

static void add_cert(json_object *arr, const card_cert_t *c)
{
    json_object *o = json_object_new_object();
    char idh[2 * sizeof c->id + 1];
    size_t idn = c->id_len <= sizeof c->id ? c->id_len : sizeof c->id;
    hex(c->id, idn, idh);
    json_object_object_add(o, "role", json_object_new_string(role_name(c->role)));
    json_object_object_add(o, "label", json_object_new_string(c->label));
    json_object_object_add(o, "id", json_object_new_string(idh));
    if (c->der_len <= sizeof c->der)
        proto_add_b64(o, "der", c->der, c->der_len);
    json_object_array_add(arr, o);
}

static json_object *key_object(const cachetd_card_snapshot_t *s, int idx, const char *role,
                               const char *ref, const char *label)
{
    json_object *k = json_object_new_object();
    json_object_object_add(k, "role", json_object_new_string(role));
    json_object_object_add(k, "ref", json_object_new_string(ref));
    json_object_object_add(k, "label", json_object_new_string(label));
    if (idx >= 0 && (size_t)idx < s->ncerts) {
        const card_cert_t *c = &s->certs[idx];
        char idh[2 * sizeof c->id + 1];
        hex(c->id, c->id_len <= sizeof c->id ? c->id_len : sizeof c->id, idh);
        json_object_object_add(k, "certificate_label", json_object_new_string(c->label));
        json_object_object_add(k, "id", json_object_new_string(idh));
    }
    return k;
}

static void m_identity(cachetd_ctx_t *ctx, cachetd_client_t *cl, const proto_request_t *rq,
                       reply_t *r)
{
    (void)cl;
    (void)rq;
    cachetd_card_snapshot_t *s = bound_card(ctx, r);
    if (s == NULL)
        return;
    if (!s->identity_ok) {
        fail(r, PROTO_E_NOT_SUPPORTED, "the card holds no readable holder certificate");
        free(s);
        return;
    }
    const identity_t *id = &s->id;
    json_object *o = json_object_new_object();
    json_object_object_add(o, "surname", json_object_new_string(id->surname));
    json_object_object_add(o, "given_name", json_object_new_string(id->given_name));
    json_object_object_add(o, "idnat", json_object_new_string(id->idnat));
    json_object_object_add(o, "idnat_type", json_object_new_string(id->idnat_type));
    json_object_object_add(o, "profession", json_object_new_string(id->profession));
    json_object_object_add(o, "card_type", json_object_new_string(id->card_type));
    json_object_object_add(o, "structure_name", json_object_new_string(id->structure_name));
    json_object_object_add(o, "structure_id", json_object_new_string(id->structure_id));
    json_object_object_add(o, "email", json_object_new_string(id->email));
    char t[32];
    rfc3339(id->not_before, t, sizeof t);
    json_object_object_add(o, "not_before", json_object_new_string(t));
    rfc3339(id->not_after, t, sizeof t);
    json_object_object_add(o, "not_after", json_object_new_string(t));
    json_object *ch = json_object_new_object();
    json_object_object_add(ch, "status", json_object_new_string(identity_chain_name(id->chain)));
    json_object_object_add(ch, "detail", json_object_new_string(id->chain_detail));
    json_object_object_add(o, "chain", ch);
    json_object_object_add(o, "serial", json_object_new_string(s->info.serial));
    json_object_object_add(o, "label", json_object_new_string(s->info.label));
    json_object *keys = json_object_new_object();
    if (id->auth_cert >= 0)
        json_object_object_add(keys, "auth",
                               key_object(s, id->auth_cert, "auth", "0x82", "CPS_PRIV_AUT"));
    if (id->sign_cert >= 0)
        json_object_object_add(keys, "sign",
                               key_object(s, id->sign_cert, "sign", "0x81", "CPS_PRIV_SIG"));
    json_object_object_add(o, "keys", keys);
    r->result = o;
    free(s);
}

static void m_certificates(cachetd_ctx_t *ctx, cachetd_client_t *cl, const proto_request_t *rq,
                           reply_t *r)
{
    (void)cl;
    (void)rq;
    cachetd_card_snapshot_t *s = bound_card(ctx, r);
    if (s == NULL)
        return;
    json_object *arr = json_object_new_array();
    for (size_t i = 0; i < s->ncerts && i < CARD_CERTS_MAX; i++)
        add_cert(arr, &s->certs[i]);
    r->result = json_object_new_object();
    json_object_object_add(r->result, "certificates", arr);
    free(s);
}

static void m_verify_pin(cachetd_ctx_t *ctx, cachetd_client_t *cl, const proto_request_t *rq,
                         reply_t *r)
{
    char pin[CACHETD_PIN_MAX + 1];
    bool has = false;
    if (!take_pin(rq->params, pin, &has, r)) {
        finish_op(ctx, cl, r, "verify-pin", NULL, NULL, NULL);
        return;
    }
    cachetd_card_snapshot_t *s = malloc(sizeof *s);
    if (s == NULL) {
        cachetd_wipe(pin, sizeof pin);
        fail(r, PROTO_E_INTERNAL, "out of memory");
        return;
    }
    cachetd_card_snapshot(ctx->card, s, op_timeout(ctx));
    bool pinpad = s->info.pinpad;
    card_status_t st = CARD_OK;
    if (!s->info.present)
        st = s->reader_present ? CARD_ERR_NO_CARD : CARD_ERR_NO_READER;
    free(s);
    int tries = -1;
    if (st != CARD_OK)
        ; /* nothing to verify on */
    else if (!has && !pinpad)
        st = CARD_ERR_PIN_REQUIRED; /* nothing to verify with */
    else
        st = verify(ctx, cl, has ? pin : NULL, "verify-pin", &tries);
    cachetd_wipe(pin, sizeof pin);
    if (st == CARD_OK) {
        r->result = json_object_new_object();
        json_object_object_add(r->result, "verified", json_object_new_boolean(true));
    } else {
        fail_card(ctx, r, st, tries);
    }
    finish_op(ctx, cl, r, "verify-pin", NULL, NULL, NULL);
}

static void m_logout(cachetd_ctx_t *ctx, cachetd_client_t *cl, const proto_request_t *rq,
                     reply_t *r)
{
    (void)rq;
    cachetd_op_t op;
    memset(&op, 0, sizeof op);
    op.kind = CACHETD_OP_LOGOUT;
    card_status_t st = cachetd_card_run(ctx->card, &op, op_timeout(ctx));
    if (st != CARD_OK && st != CARD_ERR_NO_CARD && st != CARD_ERR_NO_READER) {
        fail_card(ctx, r, st, -1);
        return;
    }
    cachetd_log("logout for pid %ld", (long)cl->pid);
    r->result = json_object_new_object();
    json_object_object_add(r->result, "logged_out", json_object_new_boolean(true));
}

static json_object *chain_array(const cachetd_card_snapshot_t *s)
{
    json_object *arr = json_object_new_array();
    for (size_t i = 0; i < s->ncerts && i < CARD_CERTS_MAX; i++) {
        if (s->certs[i].role != 0 || s->certs[i].der_len > sizeof s->certs[i].der)
            continue;
        char *b = malloc(PROTO_B64_ENCODED_LEN(s->certs[i].der_len) + 1);
        if (b != NULL && proto_b64_encode(s->certs[i].der, s->certs[i].der_len, b,
                                          PROTO_B64_ENCODED_LEN(s->certs[i].der_len) + 1))
            json_object_array_add(arr, json_object_new_string(b));
        free(b);
    }
    return arr;
}

static void m_login(cachetd_ctx_t *ctx, cachetd_client_t *cl, const proto_request_t *rq, reply_t *r)
{
    uint8_t challenge[CACHETD_CHALLENGE_MAX];
    size_t clen = 0;
    uint8_t digest[32];
    bool have_digest = false;
    char pin[CACHETD_PIN_MAX + 1];
    bool has = false;
    cachetd_card_snapshot_t *s = NULL;
    json_object *extra = NULL;
    if (!take_pin(rq->params, pin, &has, r))
        goto out;
    if (proto_get_b64(rq->params, "challenge", true, challenge, sizeof challenge, &clen) !=
            PROTO_OK ||
        clen == 0) {
        fail(r, PROTO_E_BAD_INPUT, "challenge: base64 of 1 to %d bytes", CACHETD_CHALLENGE_MAX);
        goto out;
    }
    sha256(challenge, clen, digest);
    have_digest = true;
    s = bound_card(ctx, r);
    if (s == NULL)
        goto out;
    if (!s->identity_ok || s->id.auth_cert < 0 || (size_t)s->id.auth_cert >= s->ncerts) {
        fail(r, PROTO_E_NOT_SUPPORTED, "the card has no authentication certificate");
        goto out;
    }
    uint8_t sig[CARD_SIG_MAX];
    size_t sig_len = 0;
    int tries = -1;
    sign_trust_t *t = calloc(1, sizeof *t);
    if (t == NULL) {
        fail(r, PROTO_E_INTERNAL, "out of memory");
        goto out;
    }
    if (ctx->cfg->auth_confirm == 1) /* the appliance confirms (and receipts) each use */
        t->receipt_digest_len =
            gate_digest(CARD_KEY_AUTH, CARD_MECH_SHA256, digest, sizeof digest, t->receipt_digest);
    card_status_t st =
        sign_logged_in(ctx, cl, has ? pin : NULL, "login", CARD_KEY_AUTH, CARD_MECH_SHA256, digest,
                       sizeof digest, sig, sizeof sig, &sig_len, &tries, t);
    if (st != CARD_OK) {
        free(t);
        fail_card(ctx, r, st, tries);
        goto out;
    }
    if (t->receipt_len > 0) {
        extra = json_object_new_object();
        trust_extra(ctx, extra, t, "login");
    }
    free(t);
    const card_cert_t *ac = &s->certs[s->id.auth_cert];
    json_object *o = json_object_new_object();
    proto_add_b64(o, "signature", sig, sig_len);
    json_object_object_add(o, "algorithm", json_object_new_string("sha256WithRSAEncryption"));
    proto_add_b64(o, "certificate", ac->der, ac->der_len);
    json_object_object_add(o, "chain", chain_array(s));
    r->result = o;
out:
    cachetd_wipe(pin, sizeof pin);
    free(s);
    if (r->code == NULL && r->result != NULL)
        result_receipt(r->result, extra);
    finish_op(ctx, cl, r, "login", "auth", have_digest ? digest : NULL, extra);
}

static void m_sign_digest(cachetd_ctx_t *ctx, cachetd_client_t *cl, const proto_request_t *rq,
                          reply_t *r)
{
    char pin[CACHETD_PIN_MAX + 1];
    bool has = false;
    const char *key = NULL, *mech_s = NULL;
    uint8_t data[CACHETD_SIGN_IN_MAX], digest[32];
    size_t dlen = 0;
    bool have_digest = false;
    card_key_role_t role = CARD_KEY_AUTH;
    card_mech_t mech = CARD_MECH_RSA_PKCS;
    json_object *extra = NULL;
    if (!take_pin(rq->params, pin, &has, r))
        goto out;
    if (proto_get_string(rq->params, "key", true, 8, &key) != PROTO_OK ||
        (strcmp(key, "auth") != 0 && strcmp(key, "sign") != 0)) {
        fail(r, PROTO_E_BAD_INPUT, "key: \"auth\" or \"sign\"");
        key = NULL;
        goto out;
    }
    role = strcmp(key, "auth") == 0 ? CARD_KEY_AUTH : CARD_KEY_SIGN;
    if (proto_get_string(rq->params, "mechanism", true, 16, &mech_s) != PROTO_OK) {
        fail(r, PROTO_E_BAD_INPUT, "mechanism: \"rsa-pkcs\", \"sha256\" or \"sha1\"");
        goto out;
    }
    size_t want = 0;
    if (strcmp(mech_s, "rsa-pkcs") == 0) {
        mech = CARD_MECH_RSA_PKCS;
    } else if (strcmp(mech_s, "sha256") == 0) {
        mech = CARD_MECH_SHA256;
        want = 32;
    } else if (strcmp(mech_s, "sha1") == 0) {
        mech = CARD_MECH_SHA1;
        want = 20;
    } else {
        fail(r, PROTO_E_BAD_INPUT, "mechanism: \"rsa-pkcs\", \"sha256\" or \"sha1\"");
        goto out;
    }
    if (proto_get_b64(rq->params, "data", true, data, sizeof data, &dlen) != PROTO_OK ||
        dlen == 0 || (want != 0 && dlen != want)) {
        if (want != 0)
            fail(r, PROTO_E_BAD_INPUT, "data: base64 of the %zu-byte hash", want);
        else
            fail(r, PROTO_E_BAD_INPUT, "data: base64 of 1 to %d bytes", CACHETD_SIGN_IN_MAX);
        goto out;
    }
    sha256(data, dlen, digest);
    have_digest = true;
    extra = json_object_new_object();
    json_object_object_add(extra, "mechanism", json_object_new_string(mech_s));
    uint8_t sig[CARD_SIG_MAX];
    size_t sig_len = 0;
    int tries = -1;
    /* Unannounced (a PKCS#11 client's request): the appliance shows it as such
     * and asks for OK; its receipt is kept all the same. */
    sign_trust_t *t = calloc(1, sizeof *t);
    if (t == NULL) {
        fail(r, PROTO_E_INTERNAL, "out of memory");
        goto out;
    }
    if (role == CARD_KEY_SIGN || ctx->cfg->auth_confirm == 1)
        t->receipt_digest_len = gate_digest(role, mech, data, dlen, t->receipt_digest);
    card_status_t st = sign_logged_in(ctx, cl, has ? pin : NULL, "sign-digest", role, mech, data,
                                      dlen, sig, sizeof sig, &sig_len, &tries, t);
    if (st != CARD_OK) {
        free(t);
        fail_card(ctx, r, st, tries);
        goto out;
    }
    if (t->receipt_len > 0)
        trust_extra(ctx, extra, t, "sign-digest");
    free(t);
    r->result = json_object_new_object();
    proto_add_b64(r->result, "signature", sig, sig_len);
    result_receipt(r->result, extra);
out:
    cachetd_wipe(pin, sizeof pin);
    finish_op(ctx, cl, r, "sign-digest", key, have_digest ? digest : NULL, extra);
}

/* ---- mail ------------------------------------------------------------------ */

typedef struct {
    cachetd_ctx_t *ctx;
    cachetd_client_t *cl;
    card_status_t st;
    int tries_left;
    bool called;
    sign_trust_t t;                                /* announcement and receipt */
    uint8_t signed_attrs[DEVICE_SIGNED_ATTRS_MAX]; /* what the signature covers */
    size_t signed_attrs_len;
} mail_sign_ctx_t;

/* smime_sign's private-key operation: the card's SIGN key over SHA-256 of the
 * signedAttrs, announced to the appliance first (summary + signedAttrs:
 * docs/appliance.md "The announcement"), so that the holder confirms on its
 * screen what this message is. */
static int mail_sign_cb(void *vctx, const smime_summary_t *summary, const uint8_t *signed_attrs,
                        size_t signed_attrs_len, const uint8_t hash[32], uint8_t *sig,
                        size_t sig_cap, size_t *sig_len)
{
    mail_sign_ctx_t *m = vctx;
    m->called = true;
    uint8_t *msg = malloc(DEVICE_ANNOUNCE_MAX);
    size_t mlen = 0;
    memset(&m->t, 0, sizeof m->t);
    if (msg != NULL && device_announce_build(summary, signed_attrs, signed_attrs_len, msg,
                                             DEVICE_ANNOUNCE_MAX, &mlen)) {
        m->t.announce = msg;
        m->t.announce_len = mlen;
    } else {
        /* the appliance will show it unannounced, with its fingerprint */
        cachetd_log("sign-mail: no announcement (signedAttrs of %zu bytes)", signed_attrs_len);
    }
    if (signed_attrs_len <= sizeof m->signed_attrs) {
        memcpy(m->signed_attrs, signed_attrs, signed_attrs_len);
        m->signed_attrs_len = signed_attrs_len;
    }
    memcpy(m->t.receipt_digest, hash, 32);
    m->t.receipt_digest_len = 32;
    m->st = sign_logged_in(m->ctx, m->cl, NULL, "sign-mail", CARD_KEY_SIGN, CARD_MECH_SHA256, hash,
                           32, sig, sig_cap, sig_len, &m->tries_left, &m->t);
    m->t.announce = NULL;
    free(msg);
    return m->st == CARD_OK ? 0 : (int)m->st;
}

/* A private, already unlinked file for the signed message until it is audited. */
static int spool_fd(void)
{
    const char *dir = getenv("TMPDIR");
    if (dir == NULL || dir[0] != '/')
        dir = "/tmp";
    int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd >= 0)
        return fd;
    char path[PATH_MAX];
    int n = snprintf(path, sizeof path, "%s/cachetd-mail.XXXXXX", dir);
    if (n < 0 || (size_t)n >= sizeof path)
        return -1;
    fd = mkostemp(path, O_CLOEXEC);
    if (fd >= 0)
        unlink(path);
    return fd;
}

static bool copy_fd(int from, int to)
{
    if (lseek(from, 0, SEEK_SET) != 0)
        return false;
    char *buf = malloc(COPY_CHUNK);
    if (buf == NULL)
        return false;
    bool ok = true;
    for (;;) {
        ssize_t n = read(from, buf, COPY_CHUNK);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            ok = false;
            break;
        }
        if (n == 0)
            break;
        for (ssize_t off = 0; off < n;) {
            ssize_t w = write(to, buf + off, (size_t)(n - off));
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0) {
                ok = false;
                break;
            }
            off += w;
        }
        if (!ok)
            break;
    }
    free(buf);
    return ok;
}

static void smime_fail(reply_t *r, smime_status_t st)
{
    switch (st) {
    case SMIME_ERR_TOO_BIG:
        fail(r, PROTO_E_TOO_LARGE, "the message is larger than this cachetd accepts");
        break;
    case SMIME_ERR_NOT_MIME:
        fail(r, PROTO_E_NOT_MIME, "not an RFC 5322 mail message");
        break;
    case SMIME_ERR_IO:
        fail(r, PROTO_E_BAD_INPUT, "could not read the message or write the result");
        break;
    case SMIME_ERR_BAD_SIGNATURE:
        fail(r, PROTO_E_BAD_SIGNATURE, "the signature does not match the message");
        break;
    case SMIME_ERR_UNTRUSTED:
        fail(r, PROTO_E_UNTRUSTED, "the signer is not trusted");
        break;
    case SMIME_ERR_NOT_SIGNED: /* docs/protocol.md §2.4 */
        fail(r, PROTO_E_NOT_MIME, "the message is not signed (no multipart/signed)");
        break;
    case SMIME_ERR_SIGNER_MISMATCH:
        fail(r, PROTO_E_SIGNER_MISMATCH, "the signer is not the sender (From)");
        break;
    default:
        fail(r, PROTO_E_INTERNAL, "S/MIME: %s", smime_status_name(st));
        break;
    }
}

static json_object *summary_json(const smime_summary_t *sm)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "from", json_object_new_string(sm->from));
    json_object_object_add(o, "to", json_object_new_string(sm->to));
    json_object_object_add(o, "subject", json_object_new_string(sm->subject));
    json_object *att = json_object_new_array();
    size_t n = sm->attachment_count < SMIME_SUMMARY_ATTACH_MAX ? sm->attachment_count
                                                               : SMIME_SUMMARY_ATTACH_MAX;
    for (size_t i = 0; i < n; i++) {
        json_object *a = json_object_new_object();
        json_object_object_add(a, "name", json_object_new_string(sm->attachments[i].name));
        json_object_object_add(a, "size", json_object_new_int64((int64_t)sm->attachments[i].size));
        json_object_array_add(att, a);
    }
    json_object_object_add(o, "attachments", att);
    json_object_object_add(o, "attachment_count",
                           json_object_new_int64((int64_t)sm->attachment_count));
    char h[65];
    hex(sm->content_digest, 32, h);
    json_object_object_add(o, "content_digest", json_object_new_string(h));
    return o;
}

static void m_sign_mail(cachetd_ctx_t *ctx, cachetd_client_t *cl, const proto_request_t *rq,
                        reply_t *r)
{
    char pin[CACHETD_PIN_MAX + 1];
    bool has = false, have_digest = false;
    cachetd_card_snapshot_t *s = NULL;
    X509 *signer = NULL;
    STACK_OF(X509) *chain = NULL;
    smime_summary_t *sm = calloc(1, sizeof *sm);
    json_object *extra = NULL;
    mail_sign_ctx_t *m = NULL;
    int spool = -1;
    if (sm == NULL) {
        fail(r, PROTO_E_INTERNAL, "out of memory");
        goto out;
    }
    if (!take_pin(rq->params, pin, &has, r))
        goto out;
    if (cl->nfds != 2) {
        fail(r, PROTO_E_BAD_REQUEST, "sign-mail needs two descriptors: the message, the output");
        goto out;
    }
    s = bound_card(ctx, r);
    if (s == NULL)
        goto out;
    if (!s->identity_ok || s->id.sign_cert < 0 || (size_t)s->id.sign_cert >= s->ncerts) {
        fail(r, PROTO_E_NOT_SUPPORTED, "the card has no signature certificate");
        goto out;
    }
    const card_cert_t *sc = &s->certs[s->id.sign_cert];
    const unsigned char *p = sc->der;
    signer = d2i_X509(NULL, &p, (long)sc->der_len);
    chain = sk_X509_new_null();
    if (signer == NULL || chain == NULL) {
        fail(r, PROTO_E_INTERNAL, "the signature certificate cannot be parsed");
        goto out;
    }
    for (size_t i = 0; i < s->ncerts; i++) {
        if (s->certs[i].role != 0)
            continue;
        p = s->certs[i].der;
        X509 *x = d2i_X509(NULL, &p, (long)s->certs[i].der_len);
        if (x != NULL && !sk_X509_push(chain, x))
            X509_free(x);
    }
    if (has) { /* fail fast on a wrong PIN, before reading a large message */
        int tries = -1;
        card_status_t st = verify(ctx, cl, pin, "sign-mail", &tries);
        cachetd_wipe(pin, sizeof pin);
        if (st != CARD_OK) {
            fail_card(ctx, r, st, tries);
            goto out;
        }
    }
    spool = spool_fd();
    if (spool < 0) {
        fail(r, PROTO_E_INTERNAL, "no temporary file for the signed message");
        goto out;
    }
    m = calloc(1, sizeof *m);
    if (m == NULL) {
        fail(r, PROTO_E_INTERNAL, "out of memory");
        goto out;
    }
    m->ctx = ctx;
    m->cl = cl;
    m->st = CARD_OK;
    m->tries_left = -1;
    smime_sign_args_t a = {
        .in_fd = cl->fds[0],
        .out_fd = spool,
        .max_size = (size_t)ctx->cfg->max_mail_size,
        .signer = signer,
        .chain = chain,
        .sign_attrs = mail_sign_cb,
        .sign_ctx = m,
    };
    int sign_status = 0;
    smime_status_t mst = smime_sign(&a, sm, &sign_status);
    if (m->called) {
        have_digest = true;
        extra = json_object_new_object();
        json_object *mail = summary_json(sm);
        json_object_object_del(mail, "content_digest");
        json_object_object_add(extra, "mail", mail);
        json_object_object_add(extra, "announced", json_object_new_boolean(m->t.announced));
        if (m->signed_attrs_len > 0)
            proto_add_b64(extra, "signed_attrs", m->signed_attrs, m->signed_attrs_len);
        if (m->st == CARD_OK)
            trust_extra(ctx, extra, &m->t, "sign-mail");
    }
    if (mst == SMIME_ERR_SIGN) {
        fail_card(ctx, r, m->st != CARD_OK ? m->st : CARD_ERR_BACKEND, m->tries_left);
        if (m->st == CARD_ERR_CANCELLED)
            snprintf(r->message, sizeof r->message,
                     "the holder refused the signature on the appliance: nothing was signed");
        else if (m->st == CARD_ERR_TIMEOUT && m->t.announced)
            snprintf(r->message, sizeof r->message,
                     "the signature was not confirmed on the appliance in time: nothing was "
                     "signed");
        goto out;
    }
    if (mst != SMIME_OK) {
        smime_fail(r, mst);
        goto out;
    }
    r->result = json_object_new_object();
    json_object_object_add(r->result, "status", json_object_new_string("ok"));
    json_object_object_add(r->result, "summary", summary_json(sm));
    json_object_object_add(r->result, "announced", json_object_new_boolean(m->t.announced));
    result_receipt(r->result, extra);
out:
    cachetd_wipe(pin, sizeof pin);
    /* Audited before anything of the result reaches the client. */
    finish_op(ctx, cl, r, "sign-mail", "sign", have_digest ? sm->content_digest : NULL, extra);
    if (r->code == NULL && r->result != NULL && !copy_fd(spool, cl->fds[1])) {
        json_object_put(r->result);
        r->result = NULL;
        fail(r, PROTO_E_BAD_INPUT, "could not write the signed message to the output");
        cachetd_log("sign-mail for pid %ld: output not writable", (long)cl->pid);
    }
    if (spool >= 0)
        close(spool);
    X509_free(signer);
    sk_X509_pop_free(chain, X509_free);
    free(s);
    free(sm);
    free(m);
}

static void m_verify_mail(cachetd_ctx_t *ctx, cachetd_client_t *cl, const proto_request_t *rq,
                          reply_t *r)
{
    (void)rq;
    if (cl->nfds != 1) {
        fail(r, PROTO_E_BAD_REQUEST, "verify-mail needs one descriptor: the message");
        return;
    }
    smime_verify_result_t *v = calloc(1, sizeof *v);
    if (v == NULL) {
        fail(r, PROTO_E_INTERNAL, "out of memory");
        return;
    }
    smime_status_t st = smime_verify(cl->fds[0], (size_t)ctx->cfg->max_mail_size, ctx->trust, v);
    json_object *o = json_object_new_object();
    json_object_object_add(o, "signed_ok", json_object_new_boolean(st == SMIME_OK && v->signed_ok));
    json_object_object_add(o, "status", json_object_new_string(smime_status_name(st)));
    json_object_object_add(o, "signer_subject", json_object_new_string(v->signer_subject));
    json_object_object_add(o, "signer_email", json_object_new_string(v->signer_email));
    json_object_object_add(o, "signer_idnat", json_object_new_string(v->signer_idnat));
    json_object_object_add(o, "from", json_object_new_string(v->from));
    json_object_object_add(o, "from_matches", json_object_new_boolean(v->from_matches));
    json_object_object_add(o, "detail", json_object_new_string(v->detail));
    if (st == SMIME_OK && v->signed_ok) {
        r->result = o;
    } else {
        smime_fail(r, st == SMIME_OK ? SMIME_ERR_BAD_SIGNATURE : st);
        if (v->detail[0] != '\0')
            snprintf(r->message + strlen(r->message), sizeof r->message - strlen(r->message),
                     ": %s", v->detail);
        r->extra = o; /* who signed, what From says: also for a failure */
    }
    cachetd_log("verify-mail for pid %ld: %s", (long)cl->pid, smime_status_name(st));
    free(v);
}

static void m_audit(cachetd_ctx_t *ctx, cachetd_client_t *cl, const proto_request_t *rq, reply_t *r)
{
    (void)cl;
    int64_t n = 20;
    if (proto_get_int(rq->params, "last", false, 1, CACHETD_AUDIT_TAIL_MAX, &n) != PROTO_OK) {
        fail(r, PROTO_E_BAD_INPUT, "last: 1 to %d", CACHETD_AUDIT_TAIL_MAX);
        return;
    }
    json_object *arr = audit_tail(ctx->audit, (size_t)n);
    if (arr == NULL) {
        fail(r, PROTO_E_INTERNAL, "the audit log cannot be read");
        return;
    }
    /* The answer must fit one frame: drop the oldest entries until it does. */
    size_t len = 0;
    json_object_to_json_string_length(arr, JSON_C_TO_STRING_PLAIN, &len);
    while (len > PROTO_FRAME_MAX - 4096 && json_object_array_length(arr) > 0) {
        json_object_array_del_idx(arr, 0, 1);
        json_object_to_json_string_length(arr, JSON_C_TO_STRING_PLAIN, &len);
    }
    r->result = json_object_new_object();
    json_object_object_add(r->result, "entries", arr);
}

static void m_audit_verify(cachetd_ctx_t *ctx, cachetd_client_t *cl, const proto_request_t *rq,
                           reply_t *r)
{
    (void)cl;
    (void)rq;
    audit_verify_result_t v;
    memset(&v, 0, sizeof v);
    bool ok = audit_verify(ctx->audit_path, &v);
    /* Then every receipt, with the pinned device key (issue 5). */
    device_audit_result_t dv;
    uint8_t spki[DEVICE_SPKI_MAX];
    size_t spki_len = 0;
    bool exists = false;
    char perr[256] = "";
    const char *pin = device_pin_path(ctx);
    bool pinned = pin != NULL &&
                  device_pin_load(pin, spki, sizeof spki, &spki_len, &exists, perr, sizeof perr);
    if (pin != NULL && exists && !pinned)
        cachetd_log("audit-verify: the pinned device key is unusable: %s", perr);
    bool rok = device_audit_verify(ctx->audit_path, pinned ? spki : NULL, spki_len, &dv);
    if (!rok && exists && !pinned)
        snprintf(dv.reason, sizeof dv.reason, "the pinned device key is unusable: %.180s", perr);
    bool all = ok && v.ok && rok;
    r->result = json_object_new_object();
    json_object_object_add(r->result, "ok", json_object_new_boolean(all));
    json_object_object_add(r->result, "entries", json_object_new_int64((int64_t)v.entries));
    json_object_object_add(
        r->result, "first_bad",
        json_object_new_int64((int64_t)(ok && v.ok ? dv.first_bad : v.first_bad)));
    json_object_object_add(r->result, "reason",
                           json_object_new_string(ok && v.ok && !rok ? dv.reason : v.reason));
    json_object_object_add(r->result, "path", json_object_new_string(ctx->audit_path));
    json_object_object_add(r->result, "chain_ok", json_object_new_boolean(ok && v.ok));
    json_object *rc = json_object_new_object();
    json_object_object_add(rc, "ok", json_object_new_boolean(rok));
    json_object_object_add(rc, "checked", json_object_new_int64((int64_t)dv.receipts));
    json_object_object_add(rc, "first_bad", json_object_new_int64((int64_t)dv.first_bad));
    json_object_object_add(rc, "reason", json_object_new_string(dv.reason));
    if (pinned) {
        char fpr[DEVICE_FPR_HEX];
        device_key_fingerprint(spki, spki_len, fpr);
        json_object_object_add(rc, "device_key", json_object_new_string(fpr));
    }
    json_object_object_add(r->result, "receipts", rc);
    if (!rok)
        cachetd_log("audit-verify: receipts: %s", dv.reason);
}

/* The appliance's device key (GET_DEVICE_INFO), pinned on first use; with
 * {"repin":true}, a changed key is pinned instead (the holder's decision). */
static void m_device(cachetd_ctx_t *ctx, cachetd_client_t *cl, const proto_request_t *rq,
                     reply_t *r)
{
    bool repin = false;
    json_object *v = NULL;
    if (rq->params != NULL && json_object_object_get_ex(rq->params, "repin", &v)) {
        if (!json_object_is_type(v, json_type_boolean)) {
            fail(r, PROTO_E_BAD_INPUT, "repin: true or false");
            return;
        }
        repin = json_object_get_boolean(v);
    }
    cachetd_op_t *op = calloc(1, sizeof *op);
    if (op == NULL) {
        fail(r, PROTO_E_INTERNAL, "out of memory");
        return;
    }
    op->kind = CACHETD_OP_DEVICE_INFO;
    card_status_t st = cachetd_card_run(ctx->card, op, STATUS_WAIT_MS * 5);
    device_info_t info;
    if (st == CARD_ERR_NOT_SUPPORTED) {
        fail(r, PROTO_E_NOT_SUPPORTED,
             "the reader is not a Cachet appliance that answers vendor commands");
    } else if (st != CARD_OK) {
        fail_card(ctx, r, st, -1);
    } else if (!device_info_parse(op->device_info, op->device_info_len, &info)) {
        fail(r, PROTO_E_BACKEND, "the appliance's device information is malformed");
    } else {
        json_object *o = json_object_new_object();
        char ver[16];
        snprintf(ver, sizeof ver, "%u.%u.%u", info.version[0], info.version[1], info.version[2]);
        json_object_object_add(o, "firmware", json_object_new_string(ver));
        json_object_object_add(o, "counter", json_object_new_int64((int64_t)info.counter));
        json_object_object_add(o, "flags", json_object_new_int(info.flags));
        json_object *fl = json_object_new_array();
        static const struct {
            uint8_t bit;
            const char *name;
        } names[] = {{DEVICE_INFO_NEW_KEY, "new-key"},
                     {DEVICE_INFO_KEY_REPLACED, "key-replaced"},
                     {DEVICE_INFO_NO_KEY, "no-key"},
                     {DEVICE_INFO_NOT_STORED, "key-not-stored"},
                     {DEVICE_INFO_COUNTER_BAD, "counter-damaged"}};
        for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
            if (info.flags & names[i].bit)
                json_object_array_add(fl, json_object_new_string(names[i].name));
        json_object_object_add(o, "flag_names", fl);
        const char *status = "no-key";
        char pinned[DEVICE_FPR_HEX] = "", err[256] = "";
        const char *path = device_pin_path(ctx);
        if (info.spki_len > 0) {
            char fpr[DEVICE_FPR_HEX];
            device_key_fingerprint(info.spki, info.spki_len, fpr);
            proto_add_b64(o, "key", info.spki, info.spki_len);
            json_object_object_add(o, "fingerprint", json_object_new_string(fpr));
            device_pin_status_t ps = path != NULL ? device_pin_check(path, info.spki, info.spki_len,
                                                                     pinned, err, sizeof err)
                                                  : DEVICE_PIN_ERROR;
            status = device_pin_status_name(ps);
            if (ps == DEVICE_PIN_MISMATCH && repin) {
                if (device_pin_replace(path, info.spki, info.spki_len, err, sizeof err)) {
                    cachetd_log("device key %s pinned instead of %s at the request of pid %ld", fpr,
                                pinned, (long)cl->pid);
                    status = "repinned";
                    snprintf(pinned, sizeof pinned, "%s", fpr);
                } else {
                    status = "error";
                }
            } else if (ps == DEVICE_PIN_MISMATCH) {
                cachetd_log("WARNING: THE APPLIANCE'S DEVICE KEY CHANGED: it is %s, the pinned "
                            "key is %s. Receipts of this appliance are not trusted until the "
                            "holder checks it (cachet device --repin)",
                            fpr, pinned);
            } else if (ps == DEVICE_PIN_NEW) {
                cachetd_log("device key %s pinned (first use) in %s", fpr, path);
            } else if (ps == DEVICE_PIN_ERROR) {
                cachetd_log("device key pin %s: %s", path != NULL ? path : "(none)", err);
            }
        } else {
            cachetd_log("WARNING: the appliance has no device key (flags %02X): no receipts",
                        info.flags);
        }
        if (info.flags & DEVICE_INFO_KEY_REPLACED)
            cachetd_log("WARNING: the appliance replaced a damaged device key (flags %02X)",
                        info.flags);
        json_object *p = json_object_new_object();
        json_object_object_add(p, "status", json_object_new_string(status));
        if (path != NULL)
            json_object_object_add(p, "path", json_object_new_string(path));
        if (pinned[0] != '\0')
            json_object_object_add(p, "pinned_fingerprint", json_object_new_string(pinned));
        if (err[0] != '\0')
            json_object_object_add(p, "error", json_object_new_string(err));
        json_object_object_add(o, "pin", p);
        r->result = o;
    }
    cachetd_wipe(op, sizeof *op);
    free(op);
    if (repin)
        finish_op(ctx, cl, r, "device-repin", NULL, NULL, NULL);
}

static void m_subscribe(cachetd_ctx_t *ctx, cachetd_client_t *cl, const proto_request_t *rq,
                        reply_t *r)
{
    (void)ctx;
    (void)rq;
    if (cl->sub == NULL)
        cl->sub = cachetd_events_subscribe();
    if (cl->sub == NULL) {
        fail(r, PROTO_E_INTERNAL, "out of memory");
        return;
    }
    r->result = json_object_new_object();
    json_object *ev = json_object_new_array();
    static const char *const names[] = {"card-inserted", "card-removed", "reader-added",
                                        "reader-gone",   "pin-needed",   "operation-finished"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        json_object_array_add(ev, json_object_new_string(names[i]));
    json_object_object_add(r->result, "events", ev);
}

/* RPC table, checked before any parameter is parsed (p11-kit style). */
static const struct {
    const char *name;
    method_fn fn;
    size_t nfds; /* descriptors the method takes */
} methods[] = {
    {"hello", m_hello, 0},           {"status", m_status, 0},
    {"identity", m_identity, 0},     {"certificates", m_certificates, 0},
    {"verify-pin", m_verify_pin, 0}, {"logout", m_logout, 0},
    {"login", m_login, 0},           {"sign-digest", m_sign_digest, 0},
    {"sign-mail", m_sign_mail, 2},   {"verify-mail", m_verify_mail, 1},
    {"audit", m_audit, 0},           {"audit-verify", m_audit_verify, 0},
    {"subscribe", m_subscribe, 0},   {"device", m_device, 0},
};

static void close_fds(cachetd_client_t *cl)
{
    for (size_t i = 0; i < cl->nfds && i < 2; i++)
        if (cl->fds[i] >= 0)
            close(cl->fds[i]);
    cl->nfds = 0;
}

json_object *cachetd_dispatch(cachetd_ctx_t *ctx, cachetd_client_t *cl, json_object *req,
                              bool *close_after)
{
    reply_t r;
    memset(&r, 0, sizeof r);
    r.tries_left = -1;
    *close_after = false;
    proto_request_t rq;
    memset(&rq, 0, sizeof rq);
    rq.id = -1;
    const char *method = "?";
    if (proto_parse_request(req, &rq) != PROTO_OK) {
        if (!proto_envelope_version_ok(req)) {
            fail(&r, PROTO_E_VERSION, "this cachetd speaks protocol version %d", PROTO_VERSION);
            *close_after = !cl->hello_done;
        } else {
            fail(&r, PROTO_E_BAD_REQUEST, "not a valid request envelope");
        }
    } else {
        method = rq.method;
        size_t i = 0;
        for (; i < sizeof methods / sizeof methods[0]; i++)
            if (strcmp(methods[i].name, rq.method) == 0)
                break;
        if (i == sizeof methods / sizeof methods[0]) {
            fail(&r, PROTO_E_UNKNOWN_METHOD, "unknown method '%s'", rq.method);
        } else if (!cl->hello_done && methods[i].fn != m_hello) {
            fail(&r, PROTO_E_BAD_REQUEST, "the first request must be hello");
        } else if (cl->nfds > methods[i].nfds) {
            fail(&r, PROTO_E_BAD_REQUEST, "%s takes %zu descriptors, got %zu", rq.method,
                 methods[i].nfds, cl->nfds);
        } else {
            methods[i].fn(ctx, cl, &rq, &r);
            if (methods[i].fn == m_hello && r.code != NULL)
                *close_after = true;
        }
    }
    close_fds(cl);
    json_object *resp;
    if (r.code == NULL) {
        resp = proto_result_new(rq.id, r.result != NULL ? r.result : json_object_new_object());
    } else {
        json_object_put(r.result);
        resp = proto_error_new_tries(rq.id, r.code, r.message, r.tries_left);
        json_object *e = NULL;
        if (resp != NULL && r.extra != NULL && json_object_object_get_ex(resp, "error", &e)) {
            json_object_object_foreach(r.extra, k, v)
            {
                if (!json_object_object_get_ex(e, k, NULL))
                    json_object_object_add(e, k, json_object_get(v));
            }
        }
        /* Card operations log their own line (finish_op). */
        if (strcmp(method, "login") != 0 && strcmp(method, "sign-digest") != 0 &&
            strcmp(method, "sign-mail") != 0 && strcmp(method, "verify-pin") != 0 &&
            strcmp(method, "verify-mail") != 0)
            cachetd_log("%s from pid %ld (%s): %s: %s", method, (long)cl->pid, cl->exe, r.code,
                        r.message);
    }
    json_object_put(r.extra);
    cl->requests++;
    return resp;
}
