/* Unit tests of cachetd's dispatcher (methods.c) and card worker (card_svc.c)
 * with a fake backend: hello first, envelope and parameter errors, PIN errors
 * with tries_left and no retry, signatures audited before the answer, removal
 * failing a running signature within 1 s, events to subscribers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/sha.h>

#include "cachetd.h"
#include "proto.h"

/* ---- fake backend -------------------------------------------------------- */

typedef struct {
    card_backend_t base;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    card_event_t pending;
    bool card_in;
    int tries;
    bool verified;
    bool sign_block, sign_release;
    int sign_calls, verify_calls;
    uint8_t last_in[64];
    size_t last_in_len;
} fake_t;

static fake_t fake;

static card_status_t f_wait_event(card_backend_t *b, int timeout_ms, card_event_t *ev)
{
    (void)b;
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += timeout_ms / 1000;
    dl.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (dl.tv_nsec >= 1000000000L) {
        dl.tv_sec++;
        dl.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&fake.mu);
    while (fake.pending == CARD_EVENT_NONE &&
           pthread_cond_timedwait(&fake.cv, &fake.mu, &dl) == 0) {
    }
    *ev = fake.pending;
    fake.pending = CARD_EVENT_NONE;
    pthread_mutex_unlock(&fake.mu);
    return CARD_OK;
}

static card_status_t f_get_info(card_backend_t *b, card_info_t *out)
{
    (void)b;
    memset(out, 0, sizeof *out);
    snprintf(out->reader, sizeof out->reader, "Fake Reader");
    pthread_mutex_lock(&fake.mu);
    out->present = fake.card_in;
    pthread_mutex_unlock(&fake.mu);
    return CARD_OK;
}

static card_status_t f_bind(card_backend_t *b, card_info_t *out)
{
    f_get_info(b, out);
    if (!out->present)
        return CARD_ERR_NO_CARD;
    snprintf(out->serial, sizeof out->serial, "80250000019900000001");
    snprintf(out->label, sizeof out->label, "FAKE CPS");
    return CARD_OK;
}

static bool load(const char *name, card_cert_t *c, int role)
{
    char path[512];
    snprintf(path, sizeof path, "%s/profiles/cps-rpps/%s", CACHET_TEST_PKI_DIR, name);
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return false;
    c->der_len = fread(c->der, 1, sizeof c->der, f);
    fclose(f);
    c->role = role;
    snprintf(c->label, sizeof c->label, "%s", name);
    c->id[0] = (uint8_t)role;
    c->id_len = 1;
    return c->der_len > 0;
}

static card_status_t f_read_certs(card_backend_t *b, card_cert_t *certs, size_t cap, size_t *n)
{
    (void)b;
    if (cap < 3)
        return CARD_ERR_BAD_INPUT;
    memset(certs, 0, 3 * sizeof *certs);
    if (!load("auth.crt.der", &certs[0], CARD_KEY_AUTH) ||
        !load("sign.crt.der", &certs[1], CARD_KEY_SIGN) || !load("ca.crt.der", &certs[2], 0))
        return CARD_ERR_BACKEND;
    *n = 3;
    return CARD_OK;
}

static card_status_t f_pin_status(card_backend_t *b, int *tries_left, bool *verified)
{
    (void)b;
    pthread_mutex_lock(&fake.mu);
    *tries_left = fake.verified ? -1 : fake.tries;
    *verified = fake.verified;
    pthread_mutex_unlock(&fake.mu);
    return CARD_OK;
}

static card_status_t f_verify_pin(card_backend_t *b, const char *pin, int *tries_left)
{
    (void)b;
    pthread_mutex_lock(&fake.mu);
    fake.verify_calls++;
    card_status_t st;
    if (pin == NULL) {
        st = CARD_ERR_NOT_SUPPORTED;
    } else if (strlen(pin) < 4 || strlen(pin) > 8) {
        st = CARD_ERR_PIN_FORMAT;
    } else if (fake.tries == 0) {
        st = CARD_ERR_PIN_BLOCKED;
        *tries_left = 0;
    } else if (strcmp(pin, "1234") == 0) {
        fake.tries = 3;
        fake.verified = true;
        st = CARD_OK;
    } else {
        fake.tries--;
        fake.verified = false;
        *tries_left = fake.tries;
        st = fake.tries == 0 ? CARD_ERR_PIN_BLOCKED : CARD_ERR_PIN_INCORRECT;
    }
    pthread_mutex_unlock(&fake.mu);
    return st;
}

static card_status_t f_sign(card_backend_t *b, card_key_role_t role, card_mech_t mech,
                            const uint8_t *in, size_t in_len, uint8_t *sig, size_t sig_cap,
                            size_t *sig_len)
{
    (void)b;
    (void)role;
    (void)mech;
    pthread_mutex_lock(&fake.mu);
    fake.sign_calls++;
    pthread_cond_broadcast(&fake.cv);
    while (fake.sign_block && !fake.sign_release)
        pthread_cond_wait(&fake.cv, &fake.mu);
    bool ok = fake.verified && fake.card_in;
    bool gone = !fake.card_in;
    if (in_len <= sizeof fake.last_in) {
        memcpy(fake.last_in, in, in_len);
        fake.last_in_len = in_len;
    }
    pthread_mutex_unlock(&fake.mu);
    if (gone)
        return CARD_ERR_REMOVED;
    if (!ok)
        return CARD_ERR_PIN_REQUIRED;
    if (sig_cap < 256)
        return CARD_ERR_BAD_INPUT;
    memset(sig, 0xAB, 256);
    *sig_len = 256;
    return CARD_OK;
}

static void f_logout(card_backend_t *b)
{
    (void)b;
    pthread_mutex_lock(&fake.mu);
    fake.verified = false;
    pthread_mutex_unlock(&fake.mu);
}

static const char *f_last_error(card_backend_t *b)
{
    (void)b;
    return "fake";
}

static void f_close(card_backend_t *b)
{
    (void)b;
}

static const card_ops_t fake_ops = {
    .name = "fake",
    .wait_event = f_wait_event,
    .get_info = f_get_info,
    .bind = f_bind,
    .read_certs = f_read_certs,
    .pin_status = f_pin_status,
    .verify_pin = f_verify_pin,
    .sign = f_sign,
    .logout = f_logout,
    .last_error = f_last_error,
    .close = f_close,
};

static void inject(card_event_t ev, bool card_in)
{
    pthread_mutex_lock(&fake.mu);
    fake.card_in = card_in;
    fake.pending = ev;
    pthread_cond_broadcast(&fake.cv);
    pthread_mutex_unlock(&fake.mu);
}

/* ---- fixture ---------------------------------------------------------------- */

typedef struct {
    char dir[64];
    char audit_path[128];
    cachetd_config_t cfg;
    cachetd_ctx_t ctx;
    cachetd_client_t cl;
} fx_t;

static int setup(void **state)
{
    fx_t *fx = calloc(1, sizeof *fx);
    const char *tmp = getenv("TMPDIR");
    snprintf(fx->dir, sizeof fx->dir, "%s/unit-cachetd.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    assert_non_null(mkdtemp(fx->dir));
    snprintf(fx->audit_path, sizeof fx->audit_path, "%s/audit.log", fx->dir);
    memset(&fake, 0, sizeof fake);
    pthread_mutex_init(&fake.mu, NULL);
    pthread_cond_init(&fake.cv, NULL);
    fake.base.ops = &fake_ops;
    fake.card_in = true;
    fake.tries = 3;
    cachetd_config_defaults(&fx->cfg);
    fx->cfg.timeout_s = 5;
    char err[256];
    fx->ctx.cfg = &fx->cfg;
    fx->ctx.audit = audit_open(fx->audit_path, err, sizeof err);
    assert_non_null(fx->ctx.audit);
    snprintf(fx->ctx.audit_path, sizeof fx->ctx.audit_path, "%s", fx->audit_path);
    fx->ctx.trust = X509_STORE_new();
    fx->ctx.card = cachetd_card_start(&fake.base, fx->ctx.trust, false);
    assert_non_null(fx->ctx.card);
    fx->cl.uid = getuid();
    fx->cl.pid = getpid();
    snprintf(fx->cl.exe, sizeof fx->cl.exe, "/test/unit_cachetd");
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fx_t *fx = *state;
    pthread_mutex_lock(&fake.mu);
    fake.sign_release = true;
    pthread_cond_broadcast(&fake.cv);
    pthread_mutex_unlock(&fake.mu);
    cachetd_card_stop(fx->ctx.card);
    audit_close(fx->ctx.audit);
    X509_STORE_free(fx->ctx.trust);
    if (fx->cl.sub != NULL)
        cachetd_events_unsubscribe(fx->cl.sub);
    char cmd[160];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", fx->dir);
    assert_int_equal(system(cmd), 0);
    free(fx);
    return 0;
}

/* Sends one request (JSON text) through the dispatcher; returns the response. */
static json_object *rq(fx_t *fx, const char *json)
{
    json_object *req = NULL;
    assert_int_equal(proto_parse_json(json, strlen(json), &req), PROTO_OK);
    bool close_after = false;
    json_object *resp = cachetd_dispatch(&fx->ctx, &fx->cl, req, &close_after);
    json_object_put(req);
    assert_non_null(resp);
    return resp;
}

static const char *err_code(json_object *resp)
{
    json_object *e = NULL, *c = NULL;
    if (!json_object_object_get_ex(resp, "error", &e) || !json_object_object_get_ex(e, "code", &c))
        return "";
    return json_object_get_string(c);
}

static json_object *result(json_object *resp)
{
    json_object *r = NULL;
    json_object_object_get_ex(resp, "result", &r);
    return r;
}

static void hello(fx_t *fx)
{
    json_object *r =
        rq(fx, "{\"v\":1,\"id\":1,\"method\":\"hello\",\"params\":{\"versions\":[1]}}");
    assert_non_null(result(r));
    json_object_put(r);
}

static size_t audit_lines(fx_t *fx)
{
    json_object *t = audit_tail(fx->ctx.audit, 1000);
    size_t n = json_object_array_length(t);
    json_object_put(t);
    return n;
}

/* ---- tests ------------------------------------------------------------------ */

static void test_hello_first(void **state)
{
    fx_t *fx = *state;
    json_object *r = rq(fx, "{\"v\":1,\"id\":2,\"method\":\"status\"}");
    assert_string_equal(err_code(r), "bad-request");
    json_object_put(r);
    r = rq(fx, "{\"v\":1,\"id\":3,\"method\":\"hello\",\"params\":{\"versions\":[9]}}");
    assert_string_equal(err_code(r), "version");
    json_object_put(r);
    hello(fx);
    r = rq(fx, "{\"v\":1,\"id\":4,\"method\":\"frobnicate\"}");
    assert_string_equal(err_code(r), "unknown-method");
    json_object_put(r);
    r = rq(fx, "{\"v\":2,\"id\":5,\"method\":\"status\"}");
    assert_string_equal(err_code(r), "version");
    json_object_put(r);
}

static void test_status_identity(void **state)
{
    fx_t *fx = *state;
    hello(fx);
    json_object *r = rq(fx, "{\"v\":1,\"id\":2,\"method\":\"identity\"}");
    json_object *id = result(r), *v = NULL;
    assert_non_null(id);
    assert_true(json_object_object_get_ex(id, "idnat", &v));
    assert_string_equal(json_object_get_string(v), "899700123456");
    assert_true(json_object_object_get_ex(id, "idnat_type", &v));
    assert_string_equal(json_object_get_string(v), "RPPS");
    json_object_put(r);
    r = rq(fx, "{\"v\":1,\"id\":3,\"method\":\"status\"}");
    json_object *pin = NULL, *card = NULL;
    assert_true(json_object_object_get_ex(result(r), "pin", &pin));
    assert_true(json_object_object_get_ex(pin, "tries_left", &v));
    assert_int_equal(json_object_get_int(v), 3);
    assert_true(json_object_object_get_ex(result(r), "card", &card));
    assert_true(json_object_object_get_ex(card, "serial", &v));
    assert_string_equal(json_object_get_string(v), "80250000019900000001");
    json_object_put(r);
    r = rq(fx, "{\"v\":1,\"id\":4,\"method\":\"certificates\"}");
    assert_true(json_object_object_get_ex(result(r), "certificates", &v));
    assert_int_equal(json_object_array_length(v), 3);
    json_object_put(r);
}

static void test_pin_errors(void **state)
{
    fx_t *fx = *state;
    hello(fx);
    /* No PIN, no PIN pad: pin-required with tries_left, the card not asked. */
    json_object *r = rq(fx, "{\"v\":1,\"id\":2,\"method\":\"verify-pin\"}");
    assert_string_equal(err_code(r), "pin-required");
    json_object *e = NULL, *v = NULL;
    json_object_object_get_ex(r, "error", &e);
    assert_true(json_object_object_get_ex(e, "tries_left", &v));
    assert_int_equal(json_object_get_int(v), 3);
    json_object_put(r);
    assert_int_equal(fake.verify_calls, 0);
    /* Wrong PIN: exactly one try, reported. */
    r = rq(fx, "{\"v\":1,\"id\":3,\"method\":\"sign-digest\",\"params\":{\"key\":\"sign\","
               "\"mechanism\":\"sha256\",\"data\":\"LXEWQrcmsEQBYnyp+6wy9chTD7GQPMTbAiWHF5IaSIE=\","
               "\"pin\":\"9999\"}}");
    assert_string_equal(err_code(r), "pin-incorrect");
    json_object_object_get_ex(r, "error", &e);
    assert_true(json_object_object_get_ex(e, "tries_left", &v));
    assert_int_equal(json_object_get_int(v), 2);
    json_object_put(r);
    assert_int_equal(fake.verify_calls, 1);
    assert_int_equal(fake.sign_calls, 0);
    /* Too long a PIN string: refused before the card. */
    r = rq(
        fx,
        "{\"v\":1,\"id\":4,\"method\":\"verify-pin\",\"params\":{\"pin\":\"12345678901234567\"}}");
    assert_string_equal(err_code(r), "pin-format");
    json_object_put(r);
    assert_int_equal(fake.verify_calls, 1);
    /* Sign without PIN: the card says so; no PIN retry. */
    r = rq(fx, "{\"v\":1,\"id\":5,\"method\":\"login\",\"params\":{\"challenge\":\"AAEC\"}}");
    assert_string_equal(err_code(r), "pin-required");
    json_object_put(r);
    assert_int_equal(fake.verify_calls, 1);
    /* verify-pin, sign-digest, verify-pin, login: four audit entries. */
    assert_int_equal(audit_lines(fx), 4);
}

static void test_sign_audited(void **state)
{
    fx_t *fx = *state;
    hello(fx);
    json_object *r = rq(fx, "{\"v\":1,\"id\":2,\"method\":\"login\",\"params\":{"
                            "\"challenge\":\"c2VydmVyLW5vbmNl\",\"pin\":\"1234\"}}");
    json_object *res = result(r), *v = NULL;
    assert_non_null(res);
    assert_true(json_object_object_get_ex(res, "algorithm", &v));
    assert_string_equal(json_object_get_string(v), "sha256WithRSAEncryption");
    assert_true(json_object_object_get_ex(res, "chain", &v));
    assert_int_equal(json_object_array_length(v), 1);
    json_object_put(r);
    /* The card got SHA-256(challenge). */
    uint8_t h[32];
    SHA256((const uint8_t *)"server-nonce", 12, h);
    assert_int_equal(fake.last_in_len, 32);
    assert_memory_equal(fake.last_in, h, 32);
    /* Bad parameters. */
    r = rq(fx, "{\"v\":1,\"id\":3,\"method\":\"sign-digest\",\"params\":{\"key\":\"other\","
               "\"mechanism\":\"sha256\",\"data\":\"AAAA\"}}");
    assert_string_equal(err_code(r), "bad-input");
    json_object_put(r);
    r = rq(fx, "{\"v\":1,\"id\":4,\"method\":\"sign-digest\",\"params\":{\"key\":\"auth\","
               "\"mechanism\":\"rsa-pkcs\",\"data\":\"not base64\"}}");
    assert_string_equal(err_code(r), "bad-input");
    json_object_put(r);
    r = rq(fx, "{\"v\":1,\"id\":5,\"method\":\"sign-digest\",\"params\":{\"key\":\"auth\","
               "\"mechanism\":\"rsa-pkcs\",\"data\":\"AAECAw==\"}}");
    assert_non_null(result(r));
    json_object_put(r);
    json_object *t = audit_tail(fx->ctx.audit, 10);
    assert_int_equal(json_object_array_length(t), 4);
    json_object *first = json_object_array_get_idx(t, 0);
    assert_true(json_object_object_get_ex(first, "digest", &v));
    char hex[65];
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", h[i]);
    assert_string_equal(json_object_get_string(v), hex);
    assert_true(json_object_object_get_ex(first, "operation", &v));
    assert_string_equal(json_object_get_string(v), "login");
    json_object_put(t);
    audit_verify_result_t vr;
    assert_true(audit_verify(fx->audit_path, &vr));
    assert_true(vr.ok);
    /* Wrong number of descriptors for a method. */
    fx->cl.fds[0] = dup(0);
    fx->cl.nfds = 1;
    r = rq(fx, "{\"v\":1,\"id\":6,\"method\":\"status\"}");
    assert_string_equal(err_code(r), "bad-request");
    assert_int_equal(fx->cl.nfds, 0);
    json_object_put(r);
}

typedef struct {
    fx_t *fx;
    json_object *resp;
} th_arg_t;

static void *sign_thread(void *p)
{
    th_arg_t *a = p;
    a->resp = rq(a->fx, "{\"v\":1,\"id\":9,\"method\":\"sign-digest\",\"params\":{\"key\":\"sign\","
                        "\"mechanism\":\"sha256\",\"data\":"
                        "\"LXEWQrcmsEQBYnyp+6wy9chTD7GQPMTbAiWHF5IaSIE=\"}}");
    return NULL;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void test_removal(void **state)
{
    fx_t *fx = *state;
    hello(fx);
    fx->cl.sub = cachetd_events_subscribe();
    json_object *r =
        rq(fx, "{\"v\":1,\"id\":2,\"method\":\"verify-pin\",\"params\":{\"pin\":\"1234\"}}");
    assert_non_null(result(r));
    json_object_put(r);
    pthread_mutex_lock(&fake.mu);
    fake.sign_block = true;
    pthread_mutex_unlock(&fake.mu);
    th_arg_t a = {.fx = fx};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, sign_thread, &a), 0);
    /* Wait (with a deadline) until the card is signing, then pull it. */
    int64_t end = now_ms() + 5000;
    pthread_mutex_lock(&fake.mu);
    while (fake.sign_calls == 0 && now_ms() < end) {
        pthread_mutex_unlock(&fake.mu);
        usleep(1000);
        pthread_mutex_lock(&fake.mu);
    }
    pthread_mutex_unlock(&fake.mu);
    assert_int_equal(fake.sign_calls, 1);
    int64_t t0 = now_ms();
    inject(CARD_EVENT_REMOVED, false);
    pthread_join(th, NULL);
    int64_t ms = now_ms() - t0;
    assert_true(ms < 1000);
    assert_string_equal(err_code(a.resp), "card-removed");
    json_object_put(a.resp);
    /* Login state and identity are gone; operations now say no-card. */
    r = rq(fx, "{\"v\":1,\"id\":3,\"method\":\"identity\"}");
    assert_string_equal(err_code(r), "no-card");
    json_object_put(r);
    /* Subscribers saw the removal (and the operation's end). */
    bool removed = false;
    char *ev;
    while ((ev = cachetd_sub_pop(fx->cl.sub)) != NULL) {
        if (strstr(ev, "\"card-removed\"") != NULL)
            removed = true;
        free(ev);
    }
    assert_true(removed);
    /* Back in: bound again, PIN needed again. */
    pthread_mutex_lock(&fake.mu);
    fake.sign_block = false;
    fake.sign_release = true;
    pthread_cond_broadcast(&fake.cv);
    pthread_mutex_unlock(&fake.mu);
    inject(CARD_EVENT_INSERTED, true);
    end = now_ms() + 5000;
    for (;;) {
        r = rq(fx, "{\"v\":1,\"id\":4,\"method\":\"identity\"}");
        bool ok = result(r) != NULL;
        json_object_put(r);
        if (ok || now_ms() > end)
            break;
        usleep(2000);
    }
    cachetd_card_snapshot_t *s = malloc(sizeof *s);
    cachetd_card_snapshot(fx->ctx.card, s, 1000);
    assert_true(s->bound);
    assert_false(s->pin_verified);
    free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_hello_first, setup, teardown),
        cmocka_unit_test_setup_teardown(test_status_identity, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pin_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sign_audited, setup, teardown),
        cmocka_unit_test_setup_teardown(test_removal, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
