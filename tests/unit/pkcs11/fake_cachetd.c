/* fake_cachetd: see fake_cachetd.h. Speaks the protocol through host/proto. */
#include "fake_cachetd.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "proto.h"

#define CONNS_MAX 64

typedef struct {
    int fd;
    bool used;
    bool subscribed;
    pthread_mutex_t wlock;
} conn_t;

static struct {
    pthread_mutex_t lock;
    int lfd;
    pthread_t acceptor;
    bool running;
    char path[108];
    fake_card_t card;
    fake_sign_t sign;
    int verify_count;
    bool verify_had_pin;
    int logout_count;
    conn_t conns[CONNS_MAX];
    pid_t last_peer;
    int nconns;
    pthread_t threads[256];
    int nthreads;
    char *certs_b64[3];
} f = {.lock = PTHREAD_MUTEX_INITIALIZER, .lfd = -1};

static const char *const cert_files[3] = {"auth.crt.der", "sign.crt.der", "ca.crt.der"};
static const char *const cert_roles[3] = {"auth", "sign", "ca"};
static const char *const cert_labels[3] = {"Certificat d'authentification CPS",
                                           "Certificat de signature CPS", "Certificat AC CPS"};
static const char *const cert_ids[3] = {
    "e828bd080f8025000001ff001002", "e828bd080f8025000001ff001001", "e828bd080f8025000001ff001003"};

static char *read_b64(const char *dir, const char *name)
{
    char path[512];
    snprintf(path, sizeof path, "%s/profiles/cps-rpps/%s", dir, name);
    FILE *fp = fopen(path, "rb");
    if (fp == NULL)
        return NULL;
    uint8_t buf[8192];
    size_t n = fread(buf, 1, sizeof buf, fp);
    fclose(fp);
    size_t cap = PROTO_B64_ENCODED_LEN(n) + 1;
    char *out = malloc(cap);
    if (out != NULL && !proto_b64_encode(buf, n, out, cap)) {
        free(out);
        out = NULL;
    }
    return out;
}

static void send_obj(conn_t *c, json_object *o)
{
    pthread_mutex_lock(&c->wlock);
    if (c->fd >= 0)
        proto_write_json(c->fd, o, NULL, 0);
    pthread_mutex_unlock(&c->wlock);
    json_object_put(o);
}

static json_object *error(int64_t id, const char *code, int tries)
{
    return proto_error_new_tries(id, code, code, tries);
}

static json_object *handle(conn_t *c, const proto_request_t *rq)
{
    json_object *r = json_object_new_object();
    pthread_mutex_lock(&f.lock);
    fake_card_t card = f.card;
    pthread_mutex_unlock(&f.lock);
    const char *m = rq->method;
    if (strcmp(m, "hello") == 0) {
        json_object_object_add(r, "version", json_object_new_int(1));
        json_object_object_add(r, "server", json_object_new_string("fake-cachetd"));
    } else if (strcmp(m, "status") == 0) {
        json_object *rd = json_object_new_object(), *cd = json_object_new_object(),
                    *pn = json_object_new_object();
        json_object_object_add(rd, "name", json_object_new_string("Fake Reader 00 00"));
        json_object_object_add(rd, "present", json_object_new_boolean(card.reader_present));
        json_object_object_add(rd, "pinpad", json_object_new_boolean(card.pinpad));
        json_object_object_add(cd, "present", json_object_new_boolean(card.card_present));
        json_object_object_add(cd, "serial", json_object_new_string(card.serial));
        json_object_object_add(cd, "label", json_object_new_string(""));
        json_object_object_add(cd, "ready", json_object_new_boolean(card.card_present));
        json_object_object_add(pn, "verified", json_object_new_boolean(card.verified));
        json_object_object_add(pn, "tries_left",
                               card.tries_left >= 0 ? json_object_new_int(card.tries_left) : NULL);
        json_object_object_add(r, "reader", rd);
        json_object_object_add(r, "card", cd);
        json_object_object_add(r, "pin", pn);
        json_object_object_add(r, "busy", json_object_new_boolean(false));
        json_object_object_add(r, "backend", json_object_new_string("native"));
    } else if (!card.card_present &&
               (strcmp(m, "identity") == 0 || strcmp(m, "certificates") == 0 ||
                strcmp(m, "verify-pin") == 0 || strcmp(m, "sign-digest") == 0)) {
        json_object_put(r);
        return error(rq->id, card.reader_present ? "no-card" : "no-reader", -1);
    } else if (strcmp(m, "identity") == 0) {
        json_object_object_add(r, "surname", json_object_new_string("DUPONT"));
        json_object_object_add(r, "given_name", json_object_new_string("JEAN"));
        json_object_object_add(r, "card_type", json_object_new_string("CPS"));
        json_object_object_add(r, "serial", json_object_new_string(card.serial));
        json_object *keys = json_object_new_object();
        for (int i = 0; i < 2; i++) {
            json_object *k = json_object_new_object();
            json_object_object_add(
                k, "label", json_object_new_string(i == 0 ? "CPS_PRIV_AUT" : "CPS_PRIV_SIG"));
            json_object_object_add(k, "id", json_object_new_string(cert_ids[i]));
            json_object_object_add(keys, cert_roles[i], k);
        }
        json_object_object_add(r, "keys", keys);
    } else if (strcmp(m, "certificates") == 0) {
        json_object *arr = json_object_new_array();
        for (int i = 0; i < 3; i++) {
            json_object *o = json_object_new_object();
            json_object_object_add(o, "role", json_object_new_string(cert_roles[i]));
            json_object_object_add(o, "label", json_object_new_string(cert_labels[i]));
            json_object_object_add(o, "id", json_object_new_string(cert_ids[i]));
            json_object_object_add(o, "der", json_object_new_string(f.certs_b64[i]));
            json_object_array_add(arr, o);
        }
        json_object_object_add(r, "certificates", arr);
    } else if (strcmp(m, "subscribe") == 0) {
        pthread_mutex_lock(&f.lock);
        c->subscribed = true;
        pthread_mutex_unlock(&f.lock);
        json_object_object_add(r, "events", json_object_new_array());
    } else if (strcmp(m, "logout") == 0) {
        pthread_mutex_lock(&f.lock);
        f.logout_count++;
        f.card.verified = false;
        pthread_mutex_unlock(&f.lock);
        json_object_object_add(r, "logged_out", json_object_new_boolean(true));
    } else if (strcmp(m, "verify-pin") == 0) {
        const char *pin = NULL;
        proto_get_string(rq->params, "pin", false, 16, &pin);
        pthread_mutex_lock(&f.lock);
        f.verify_count++;
        f.verify_had_pin = pin != NULL;
        const char *code = NULL;
        if (f.card.verify_error[0] != '\0')
            code = f.card.verify_error;
        else if (pin == NULL && !f.card.pinpad)
            code = "pin-required";
        else if (pin != NULL && strcmp(pin, f.card.pin) != 0) {
            f.card.tries_left = f.card.tries_left > 0 ? f.card.tries_left - 1 : 0;
            code = f.card.tries_left == 0 ? "pin-blocked" : "pin-incorrect";
        } else {
            f.card.verified = true;
            f.card.tries_left = 3;
        }
        int tries = f.card.tries_left;
        json_object *e = code != NULL ? error(rq->id, code, tries) : NULL;
        pthread_mutex_unlock(&f.lock);
        if (e != NULL) {
            json_object_put(r);
            return e;
        }
        json_object_object_add(r, "verified", json_object_new_boolean(true));
    } else if (strcmp(m, "sign-digest") == 0) {
        const char *key = NULL, *mech = NULL;
        fake_sign_t s;
        memset(&s, 0, sizeof s);
        if (proto_get_string(rq->params, "key", true, 8, &key) != PROTO_OK ||
            proto_get_string(rq->params, "mechanism", true, 16, &mech) != PROTO_OK ||
            proto_get_b64(rq->params, "data", true, s.data, sizeof s.data, &s.data_len) !=
                PROTO_OK) {
            json_object_put(r);
            return error(rq->id, "bad-input", -1);
        }
        snprintf(s.key, sizeof s.key, "%s", key);
        snprintf(s.mechanism, sizeof s.mechanism, "%s", mech);
        if (card.sign_delay_ms > 0) {
            struct timespec ts = {card.sign_delay_ms / 1000,
                                  (card.sign_delay_ms % 1000) * 1000000L};
            nanosleep(&ts, NULL);
        }
        pthread_mutex_lock(&f.lock);
        s.count = f.sign.count + 1;
        f.sign = s;
        const char *code = f.card.sign_error[0] != '\0' ? f.card.sign_error : NULL;
        if (code == NULL && !f.card.verified)
            code = "pin-required";
        json_object *e = code != NULL ? error(rq->id, code, -1) : NULL;
        pthread_mutex_unlock(&f.lock);
        if (e != NULL) {
            json_object_put(r);
            return e;
        }
        uint8_t sig[256];
        memset(sig, 0x5A, sizeof sig);
        proto_add_b64(r, "signature", sig, sizeof sig);
    } else {
        json_object_put(r);
        return error(rq->id, "unknown-method", -1);
    }
    return proto_result_new(rq->id, r);
}

static void *serve(void *arg)
{
    conn_t *c = arg;
    for (;;) {
        json_object *req = NULL;
        proto_status_t st = proto_read_json(c->fd, -1, &req, NULL, NULL);
        if (st != PROTO_OK)
            break;
        proto_request_t rq;
        json_object *resp = proto_parse_request(req, &rq) == PROTO_OK
                                ? handle(c, &rq)
                                : proto_error_new(-1, "bad-request", "bad request");
        send_obj(c, resp);
        json_object_put(req);
    }
    pthread_mutex_lock(&f.lock);
    pthread_mutex_lock(&c->wlock);
    close(c->fd);
    c->fd = -1;
    pthread_mutex_unlock(&c->wlock);
    c->used = false;
    c->subscribed = false;
    pthread_mutex_unlock(&f.lock);
    return NULL;
}

static void *acceptor(void *arg)
{
    (void)arg;
    for (;;) {
        int fd = accept4(f.lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        struct ucred cr;
        socklen_t cl = sizeof cr;
        pthread_mutex_lock(&f.lock);
        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &cl) == 0)
            f.last_peer = cr.pid;
        f.nconns++;
        conn_t *c = NULL;
        for (int i = 0; i < CONNS_MAX; i++)
            if (!f.conns[i].used) {
                c = &f.conns[i];
                break;
            }
        if (c == NULL || f.nthreads >= (int)(sizeof f.threads / sizeof f.threads[0])) {
            pthread_mutex_unlock(&f.lock);
            close(fd);
            continue;
        }
        c->used = true;
        c->subscribed = false;
        c->fd = fd;
        pthread_create(&f.threads[f.nthreads++], NULL, serve, c);
        pthread_mutex_unlock(&f.lock);
    }
    return NULL;
}

bool fake_start(const char *dir, const char *pki_dir)
{
    for (int i = 0; i < 3; i++) {
        if (f.certs_b64[i] == NULL)
            f.certs_b64[i] = read_b64(pki_dir, cert_files[i]);
        if (f.certs_b64[i] == NULL)
            return false;
    }
    memset(&f.card, 0, sizeof f.card);
    f.card.reader_present = true;
    f.card.card_present = true;
    f.card.tries_left = 3;
    snprintf(f.card.serial, sizeof f.card.serial, "80250000019900000001");
    snprintf(f.card.pin, sizeof f.card.pin, "1234");
    memset(&f.sign, 0, sizeof f.sign);
    f.verify_count = 0;
    f.logout_count = 0;
    f.nconns = 0;
    for (int i = 0; i < CONNS_MAX; i++) {
        f.conns[i].fd = -1;
        f.conns[i].used = false;
        pthread_mutex_init(&f.conns[i].wlock, NULL);
    }
    snprintf(f.path, sizeof f.path, "%s/cachetd.sock", dir);
    unlink(f.path);
    f.lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", f.path);
    if (f.lfd < 0 || bind(f.lfd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(f.lfd, 16) != 0)
        return false;
    f.running = true;
    f.nthreads = 0;
    return pthread_create(&f.acceptor, NULL, acceptor, NULL) == 0;
}

void fake_drop_connections(void)
{
    pthread_mutex_lock(&f.lock);
    for (int i = 0; i < CONNS_MAX; i++)
        if (f.conns[i].used && f.conns[i].fd >= 0)
            shutdown(f.conns[i].fd, SHUT_RDWR);
    pthread_mutex_unlock(&f.lock);
    /* Wait until every connection thread has let go. */
    for (int tries = 0; tries < 2000; tries++) {
        bool any = false;
        pthread_mutex_lock(&f.lock);
        for (int i = 0; i < CONNS_MAX; i++)
            any = any || f.conns[i].used;
        pthread_mutex_unlock(&f.lock);
        if (!any)
            break;
        struct timespec ts = {0, 1000000L};
        nanosleep(&ts, NULL);
    }
}

void fake_stop(void)
{
    if (!f.running)
        return;
    shutdown(f.lfd, SHUT_RDWR);
    pthread_join(f.acceptor, NULL);
    close(f.lfd);
    f.lfd = -1;
    fake_drop_connections();
    for (int i = 0; i < f.nthreads; i++)
        pthread_join(f.threads[i], NULL);
    f.nthreads = 0;
    unlink(f.path);
    f.running = false;
    for (int i = 0; i < 3; i++) {
        free(f.certs_b64[i]);
        f.certs_b64[i] = NULL;
    }
}

void fake_get(fake_card_t *out)
{
    pthread_mutex_lock(&f.lock);
    *out = f.card;
    pthread_mutex_unlock(&f.lock);
}

void fake_set(const fake_card_t *in)
{
    pthread_mutex_lock(&f.lock);
    f.card = *in;
    pthread_mutex_unlock(&f.lock);
}

void fake_event(const char *name)
{
    json_object *fields = json_object_new_object();
    pthread_mutex_lock(&f.lock);
    json_object_object_add(fields, "reader", json_object_new_string("Fake Reader 00 00"));
    json_object_object_add(fields, "serial", json_object_new_string(f.card.serial));
    if (strcmp(name, "card-inserted") == 0) {
        json_object_object_add(fields, "ready", json_object_new_boolean(true));
        json_object_object_add(fields, "surname", json_object_new_string("DUPONT"));
    }
    pthread_mutex_unlock(&f.lock);
    json_object *ev = proto_event_new(name, fields);
    pthread_mutex_lock(&f.lock);
    for (int i = 0; i < CONNS_MAX; i++) {
        conn_t *c = &f.conns[i];
        if (!c->used || !c->subscribed)
            continue;
        pthread_mutex_lock(&c->wlock);
        if (c->fd >= 0)
            proto_write_json(c->fd, ev, NULL, 0);
        pthread_mutex_unlock(&c->wlock);
    }
    pthread_mutex_unlock(&f.lock);
    json_object_put(ev);
}

fake_sign_t fake_last_sign(void)
{
    pthread_mutex_lock(&f.lock);
    fake_sign_t s = f.sign;
    pthread_mutex_unlock(&f.lock);
    return s;
}

int fake_verify_count(bool *last_had_pin)
{
    pthread_mutex_lock(&f.lock);
    int n = f.verify_count;
    if (last_had_pin != NULL)
        *last_had_pin = f.verify_had_pin;
    pthread_mutex_unlock(&f.lock);
    return n;
}

int fake_logout_count(void)
{
    pthread_mutex_lock(&f.lock);
    int n = f.logout_count;
    pthread_mutex_unlock(&f.lock);
    return n;
}

int fake_subscribers(void)
{
    pthread_mutex_lock(&f.lock);
    int n = 0;
    for (int i = 0; i < CONNS_MAX; i++)
        n += f.conns[i].used && f.conns[i].subscribed;
    pthread_mutex_unlock(&f.lock);
    return n;
}

pid_t fake_last_peer(void)
{
    pthread_mutex_lock(&f.lock);
    pid_t p = f.last_peer;
    pthread_mutex_unlock(&f.lock);
    return p;
}

int fake_connections(void)
{
    pthread_mutex_lock(&f.lock);
    int n = f.nconns;
    pthread_mutex_unlock(&f.lock);
    return n;
}

const char *fake_socket_path(void)
{
    return f.path;
}
