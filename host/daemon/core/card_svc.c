/* card_svc: the card worker and the event monitor (issue 3, "one owner").
 *
 * The worker is the only thread that calls the backend (card.h threading
 * contract), one operation at a time in FIFO order. Client threads queue a
 * copy of their operation and wait for it with a deadline. The monitor only
 * calls wait_event: on insertion it queues a bind (certificates from the cache
 * by serial, else read once and cached; then the identity); on removal it bumps
 * the card generation and at once fails every queued operation and the one
 * running with CARD_ERR_REMOVED, so that no client waits for a card that left
 * (the backend call, if still running, finishes later and its result is
 * dropped). Login state and identity are dropped with the card. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cache.h"
#include "cachetd.h"

typedef enum { JOB_QUEUED = 0, JOB_RUNNING, JOB_DONE } job_state_t;
typedef enum { JOB_USER = 0, JOB_PROBE, JOB_BIND, JOB_FORGET, JOB_CONFIGURE } job_type_t;

typedef struct job {
    struct job *next;
    job_type_t type;
    job_state_t state;
    int refs;     /* waiter + worker */
    uint64_t gen; /* card generation the job belongs to */
    card_status_t st;
    cachetd_op_t op; /* private copy; wiped before free */
} job_t;

struct cachetd_card {
    card_backend_t *b;
    X509_STORE *trust;
    bool use_cache;
    pthread_t worker, monitor;
    bool worker_started, monitor_started;
    pthread_mutex_t mu; /* queue, job states, state */
    pthread_cond_t work_cv, done_cv, stop_cv;
    job_t *head, *tail, *running;
    bool stopping;
    int binds_pending;
    cachetd_card_snapshot_t st; /* the state; copied out by snapshots */
    /* The appliance's settings (cachetd_card_configure_appliance), under mu. */
    bool appl_set;
    int appl_timeout, appl_auth, appl_lang;
};

static void job_release_locked(job_t *j)
{
    if (--j->refs == 0) {
        cachetd_wipe(j, sizeof *j);
        free(j);
    }
}

static void deadline_after(struct timespec *ts, int ms)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

static bool needs_card(cachetd_op_kind_t k)
{
    return k != CACHETD_OP_INFO && k != CACHETD_OP_DEVICE_INFO;
}

/* Queues a job (locked). */
static void enqueue_locked(cachetd_card_t *c, job_t *j)
{
    j->next = NULL;
    if (c->tail != NULL)
        c->tail->next = j;
    else
        c->head = j;
    c->tail = j;
    pthread_cond_signal(&c->work_cv);
}

static void unlink_locked(cachetd_card_t *c, job_t *j)
{
    job_t *prev = NULL;
    for (job_t *p = c->head; p != NULL; prev = p, p = p->next) {
        if (p == j) {
            if (prev != NULL)
                prev->next = p->next;
            else
                c->head = p->next;
            if (c->tail == p)
                c->tail = prev;
            p->next = NULL;
            return;
        }
    }
}

static bool queue_internal_locked(cachetd_card_t *c, job_type_t type)
{
    job_t *j = calloc(1, sizeof *j);
    if (j == NULL)
        return false;
    j->type = type;
    j->refs = 1;
    j->gen = c->st.generation;
    if (type == JOB_PROBE || type == JOB_BIND)
        c->binds_pending++;
    enqueue_locked(c, j);
    return true;
}

/* The card left (or the reader did): new generation, state dropped, every
 * client operation queued or running fails now. */
static void card_gone_locked(cachetd_card_t *c, bool reader_gone)
{
    c->st.generation++;
    c->st.info.present = false;
    c->st.info.serial[0] = '\0';
    c->st.info.label[0] = '\0';
    c->st.bound = false;
    c->st.from_cache = false;
    c->st.identity_ok = false;
    c->st.bind_error[0] = '\0';
    memset(&c->st.id, 0, sizeof c->st.id);
    memset(c->st.certs, 0, sizeof c->st.certs);
    c->st.ncerts = 0;
    c->st.pin_verified = false;
    c->st.tries_left = -1;
    if (reader_gone) {
        c->st.reader_present = false;
        c->st.info.pinpad = false;
    }
    job_t *j = c->head, *keep = NULL, *keep_tail = NULL;
    while (j != NULL) {
        job_t *next = j->next;
        j->next = NULL;
        if (j->type == JOB_USER || j->type == JOB_PROBE || j->type == JOB_BIND) {
            if (j->type != JOB_USER)
                c->binds_pending--;
            j->state = JOB_DONE;
            j->st = CARD_ERR_REMOVED;
            job_release_locked(j); /* the worker's reference */
        } else {
            if (keep_tail != NULL)
                keep_tail->next = j;
            else
                keep = j;
            keep_tail = j;
        }
        j = next;
    }
    c->head = keep;
    c->tail = keep_tail;
    if (c->running != NULL && c->running->type == JOB_USER && c->running->state != JOB_DONE) {
        c->running->state = JOB_DONE;
        c->running->st = CARD_ERR_REMOVED;
    }
    pthread_cond_broadcast(&c->done_cv);
}

/* ---- worker ------------------------------------------------------------ */

static const char *last_error(cachetd_card_t *c)
{
    const char *e = c->b->ops->last_error != NULL ? c->b->ops->last_error(c->b) : NULL;
    return e != NULL ? e : "";
}

static json_object *card_fields(const card_info_t *info)
{
    json_object *f = json_object_new_object();
    json_object_object_add(f, "reader", json_object_new_string(info->reader));
    return f;
}

/* The appliance's settings, through its vendor command (native backend with
 * an appliance only; anything else is not an error worth more than a line). */
static void apply_appliance_config(cachetd_card_t *c)
{
    pthread_mutex_lock(&c->mu);
    bool set = c->appl_set;
    int t = c->appl_timeout, a = c->appl_auth, l = c->appl_lang;
    pthread_mutex_unlock(&c->mu);
    if (!set)
        return;
    card_status_t st = card_native_set_config(c->b, t, a, l);
    if (st != CARD_OK && st != CARD_ERR_NOT_SUPPORTED && st != CARD_ERR_NO_READER)
        cachetd_log("appliance settings not applied: %s (%s)", card_status_name(st), last_error(c));
}

/* Bind the card in the reader (worker thread, unlocked). */
static void do_bind(cachetd_card_t *c, uint64_t gen)
{
    card_info_t info;
    memset(&info, 0, sizeof info);
    const card_ops_t *ops = c->b->ops;
    card_status_t st = ops->bind(c->b, &info);
    if (st == CARD_OK)
        apply_appliance_config(c); /* a card reset does not undo them; a replug does */
    card_cert_t *certs = NULL;
    size_t n = 0;
    bool from_cache = false, id_ok = false;
    identity_t *id = calloc(1, sizeof *id);
    if (st == CARD_OK) {
        certs = calloc(CARD_CERTS_MAX, sizeof *certs);
        if (certs == NULL || id == NULL) {
            st = CARD_ERR_BACKEND;
        } else {
            if (c->use_cache && info.serial[0] != '\0' &&
                cache_load_certs(info.serial, certs, CARD_CERTS_MAX, &n) && n > 0) {
                from_cache = true;
            } else {
                n = 0;
                st = ops->read_certs(c->b, certs, CARD_CERTS_MAX, &n);
                if (st == CARD_OK && n > CARD_CERTS_MAX)
                    st = CARD_ERR_BACKEND;
                if (st == CARD_OK && n > 0 && c->use_cache && info.serial[0] != '\0' &&
                    !cache_store_certs(info.serial, certs, n))
                    cachetd_log("cache: could not store the certificates of card %s", info.serial);
            }
            if (st == CARD_OK)
                id_ok = identity_from_certs(certs, n, c->trust, 0, id);
        }
    }
    json_object *fields = NULL;
    pthread_mutex_lock(&c->mu);
    bool current = gen == c->st.generation && !c->stopping;
    if (current) {
        if (st == CARD_OK) {
            c->st.info = info;
            c->st.info.present = true;
            c->st.reader_present = true;
            c->st.bound = true;
            c->st.from_cache = from_cache;
            c->st.bind_error[0] = '\0';
            memcpy(c->st.certs, certs, n * sizeof *certs);
            c->st.ncerts = n;
            c->st.identity_ok = id_ok;
            if (id_ok)
                c->st.id = *id;
        } else {
            c->st.bound = false;
            c->st.info.present = st != CARD_ERR_NO_CARD && st != CARD_ERR_REMOVED;
            snprintf(c->st.bind_error, sizeof c->st.bind_error, "%s", cachetd_card_code(st));
        }
        fields = card_fields(&c->st.info);
    }
    pthread_mutex_unlock(&c->mu);
    if (fields != NULL) {
        if (st == CARD_OK) {
            json_object_object_add(fields, "serial", json_object_new_string(info.serial));
            json_object_object_add(fields, "ready", json_object_new_boolean(true));
            json_object_object_add(fields, "from_cache", json_object_new_boolean(from_cache));
            if (id_ok) {
                json_object_object_add(fields, "surname", json_object_new_string(id->surname));
                json_object_object_add(fields, "given_name",
                                       json_object_new_string(id->given_name));
                json_object_object_add(fields, "idnat", json_object_new_string(id->idnat));
            }
            cachetd_log("card %s bound in '%s' (%zu certificates%s, identity %s)", info.serial,
                        info.reader, n, from_cache ? " from the cache" : " read from the card",
                        id_ok ? identity_chain_name(id->chain) : "unreadable");
        } else {
            json_object_object_add(fields, "ready", json_object_new_boolean(false));
            json_object_object_add(fields, "error", json_object_new_string(cachetd_card_code(st)));
            cachetd_log("card inserted but not usable: %s (%s)", card_status_name(st),
                        last_error(c));
        }
        if (st != CARD_ERR_NO_CARD && st != CARD_ERR_REMOVED)
            cachetd_events_emit("card-inserted", fields);
        else
            json_object_put(fields);
    }
    if (certs != NULL) {
        cachetd_wipe(certs, CARD_CERTS_MAX * sizeof *certs);
        free(certs);
    }
    free(id);
}

/* First look at the reader (start-up, reader added): info, then bind. */
static void do_probe(cachetd_card_t *c, uint64_t gen)
{
    card_info_t info;
    memset(&info, 0, sizeof info);
    card_status_t st = c->b->ops->get_info(c->b, &info);
    pthread_mutex_lock(&c->mu);
    bool current = gen == c->st.generation;
    if (current) {
        if (st == CARD_OK) {
            c->st.reader_present = true;
            c->st.info = info;
            c->st.info.serial[0] = '\0';
        } else {
            c->st.reader_present = st != CARD_ERR_NO_READER && st != CARD_ERR_BACKEND;
        }
    }
    pthread_mutex_unlock(&c->mu);
    if (current && st == CARD_OK && !info.present)
        apply_appliance_config(c); /* no card to bind: the reader all the same */
    if (current && st == CARD_OK && info.present)
        do_bind(c, gen);
}

static card_status_t do_user(cachetd_card_t *c, job_t *j)
{
    const card_ops_t *ops = c->b->ops;
    cachetd_op_t *op = &j->op;
    card_status_t st;
    op->tries_left = -1;
    switch (op->kind) {
    case CACHETD_OP_INFO:
        st = ops->get_info(c->b, &op->info);
        break;
    case CACHETD_OP_PIN_STATUS:
        st = ops->pin_status(c->b, &op->tries_left, &op->verified);
        break;
    case CACHETD_OP_VERIFY_PIN:
        st = ops->verify_pin(c->b, op->pin_set ? op->pin : NULL, &op->tries_left);
        cachetd_wipe(op->pin, sizeof op->pin);
        break;
    case CACHETD_OP_SIGN:
        op->announced = false;
        op->receipt_len = 0;
        op->device_info_len = 0;
        if (op->announce_len > 0 && op->announce_len <= sizeof op->announce &&
            card_native_has_escape(c->b)) {
            /* announce + sign in one transaction (docs/appliance.md "The gate") */
            op->announced = true;
            st = card_native_sign_announced(c->b, op->announce, op->announce_len, op->role,
                                            op->mech, op->in, op->in_len, op->sig, sizeof op->sig,
                                            &op->sig_len);
        } else {
            st = ops->sign(c->b, op->role, op->mech, op->in, op->in_len, op->sig, sizeof op->sig,
                           &op->sig_len);
        }
        if (st == CARD_OK && op->sig_len > sizeof op->sig)
            st = CARD_ERR_BACKEND;
        if (st == CARD_OK && op->receipt_digest_len > 0 && card_native_has_escape(c->b)) {
            /* The receipt of what the holder confirmed, and the key that signed
             * it; a failure here does not undo the signature. */
            card_status_t rs =
                card_native_fetch_receipt(c->b, op->receipt_digest, op->receipt_digest_len,
                                          op->receipt, sizeof op->receipt, &op->receipt_len);
            if (rs == CARD_OK && op->receipt_len > 0)
                rs = card_native_device_info(c->b, op->device_info, sizeof op->device_info,
                                             &op->device_info_len);
            if (rs != CARD_OK) {
                cachetd_log("receipt: not fetched: %s (%s)", card_status_name(rs), last_error(c));
                op->receipt_len = 0;
                op->device_info_len = 0;
            }
        }
        break;
    case CACHETD_OP_DEVICE_INFO:
        st = card_native_device_info(c->b, op->device_info, sizeof op->device_info,
                                     &op->device_info_len);
        break;
    case CACHETD_OP_LOGOUT:
        ops->logout(c->b);
        st = CARD_OK;
        break;
    default:
        st = CARD_ERR_BAD_INPUT;
        break;
    }
    return st;
}

/* What a finished client operation teaches us about the card (locked). */
static void learn_locked(cachetd_card_t *c, const job_t *j, card_status_t st)
{
    const cachetd_op_t *op = &j->op;
    if (j->gen != c->st.generation)
        return;
    switch (op->kind) {
    case CACHETD_OP_INFO:
        if (st == CARD_OK) {
            c->st.reader_present = true;
            c->st.info.pinpad = op->info.pinpad;
            snprintf(c->st.info.reader, sizeof c->st.info.reader, "%s", op->info.reader);
        } else if (st == CARD_ERR_NO_READER) {
            c->st.reader_present = false;
        }
        break;
    case CACHETD_OP_PIN_STATUS:
        if (st == CARD_OK) {
            c->st.pin_verified = op->verified;
            c->st.tries_left = op->tries_left;
        }
        break;
    case CACHETD_OP_VERIFY_PIN:
        if (st == CARD_OK) {
            c->st.pin_verified = true;
            c->st.tries_left = op->tries_left >= 0 ? op->tries_left : -1;
        } else if (st == CARD_ERR_PIN_INCORRECT) {
            c->st.pin_verified = false;
            c->st.tries_left = op->tries_left;
        } else if (st == CARD_ERR_PIN_BLOCKED) {
            c->st.pin_verified = false;
            c->st.tries_left = 0;
        }
        break;
    case CACHETD_OP_SIGN:
        if (st == CARD_ERR_PIN_REQUIRED)
            c->st.pin_verified = false;
        break;
    case CACHETD_OP_LOGOUT:
        c->st.pin_verified = false;
        break;
    case CACHETD_OP_DEVICE_INFO:
        break;
    }
}

static void *worker_main(void *arg)
{
    cachetd_card_t *c = arg;
    pthread_mutex_lock(&c->mu);
    for (;;) {
        while (!c->stopping && c->head == NULL)
            pthread_cond_wait(&c->work_cv, &c->mu);
        if (c->stopping)
            break;
        job_t *j = c->head;
        c->head = j->next;
        if (c->head == NULL)
            c->tail = NULL;
        j->next = NULL;
        if (j->type == JOB_USER && j->gen != c->st.generation) {
            /* The card changed since this was asked: never run it on another card. */
            j->state = JOB_DONE;
            j->st = CARD_ERR_REMOVED;
            pthread_cond_broadcast(&c->done_cv);
            job_release_locked(j);
            continue;
        }
        j->state = JOB_RUNNING;
        c->running = j;
        pthread_mutex_unlock(&c->mu);

        card_status_t st = CARD_OK;
        switch (j->type) {
        case JOB_PROBE:
            do_probe(c, j->gen);
            break;
        case JOB_BIND:
            do_bind(c, j->gen);
            break;
        case JOB_FORGET:
            c->b->ops->logout(c->b);
            break;
        case JOB_CONFIGURE:
            apply_appliance_config(c);
            break;
        case JOB_USER:
            st = do_user(c, j);
            break;
        }

        pthread_mutex_lock(&c->mu);
        c->running = NULL;
        if (j->type == JOB_PROBE || j->type == JOB_BIND) {
            c->binds_pending--;
        } else if (j->type == JOB_USER) {
            learn_locked(c, j, st);
            if (j->state != JOB_DONE) {
                j->st = st;
                j->state = JOB_DONE;
            }
            /* A backend that says the card is gone before the monitor does. */
            if (st == CARD_ERR_REMOVED && j->gen == c->st.generation && c->st.info.present)
                cachetd_log("card operation: the backend reports the card removed");
        }
        pthread_cond_broadcast(&c->done_cv);
        job_release_locked(j);
    }
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

/* ---- monitor ----------------------------------------------------------- */

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits up to ms unless stopping; returns false when stopping. */
static bool pause_ms(cachetd_card_t *c, int ms)
{
    struct timespec dl;
    deadline_after(&dl, ms);
    pthread_mutex_lock(&c->mu);
    while (!c->stopping && pthread_cond_timedwait(&c->stop_cv, &c->mu, &dl) != ETIMEDOUT) {
    }
    bool go = !c->stopping;
    pthread_mutex_unlock(&c->mu);
    return go;
}

static void *monitor_main(void *arg)
{
    cachetd_card_t *c = arg;
    card_status_t last_err = CARD_OK;
    for (;;) {
        pthread_mutex_lock(&c->mu);
        bool stop = c->stopping;
        pthread_mutex_unlock(&c->mu);
        if (stop)
            break;
        card_event_t ev = CARD_EVENT_NONE;
        int64_t t0 = mono_ms();
        card_status_t st = c->b->ops->wait_event(c->b, 500, &ev);
        if (st != CARD_OK) {
            if (st != last_err)
                /* (last_error belongs to the worker: card.h threading contract) */
                cachetd_log("card events: %s; retrying", card_status_name(st));
            last_err = st;
            if (!pause_ms(c, 500))
                break;
            continue;
        }
        if (last_err != CARD_OK)
            cachetd_log("card events: back to normal");
        last_err = CARD_OK;
        json_object *fields = NULL;
        const char *name = NULL, *second = NULL;
        json_object *fields2 = NULL;
        pthread_mutex_lock(&c->mu);
        switch (ev) {
        case CARD_EVENT_NONE:
            break;
        case CARD_EVENT_INSERTED:
            /* No new generation here: the removal made one, and operations are
             * refused while no card is in. */
            c->st.reader_present = true;
            c->st.info.present = true;
            c->st.bound = false;
            c->st.bind_error[0] = '\0';
            if (!queue_internal_locked(c, JOB_BIND))
                cachetd_log("card inserted: out of memory");
            cachetd_log("card inserted");
            break;
        case CARD_EVENT_REMOVED: {
            fields = card_fields(&c->st.info);
            json_object_object_add(fields, "serial", json_object_new_string(c->st.info.serial));
            name = "card-removed";
            card_gone_locked(c, false);
            queue_internal_locked(c, JOB_FORGET);
            cachetd_log("card removed: login state, identity and pending operations dropped");
            break;
        }
        case CARD_EVENT_READER_GONE: {
            bool had_card = c->st.info.present;
            if (had_card) {
                fields = card_fields(&c->st.info);
                json_object_object_add(fields, "serial", json_object_new_string(c->st.info.serial));
                name = "card-removed";
            }
            fields2 = card_fields(&c->st.info);
            second = "reader-gone";
            card_gone_locked(c, true);
            queue_internal_locked(c, JOB_FORGET);
            cachetd_log("reader gone");
            break;
        }
        case CARD_EVENT_READER_ADDED:
            c->st.reader_present = true;
            queue_internal_locked(c, JOB_PROBE);
            name = "reader-added";
            fields = json_object_new_object();
            cachetd_log("reader added");
            break;
        }
        pthread_mutex_unlock(&c->mu);
        if (name != NULL)
            cachetd_events_emit(name, fields);
        if (second != NULL)
            cachetd_events_emit(second, fields2);
        /* A backend that returns at once without an event must not spin. */
        if (ev == CARD_EVENT_NONE && mono_ms() - t0 < 20 && !pause_ms(c, 100))
            break;
    }
    return NULL;
}

/* ---- API ---------------------------------------------------------------- */

cachetd_card_t *cachetd_card_start(card_backend_t *backend, X509_STORE *trust, bool use_cache)
{
    cachetd_card_t *c = calloc(1, sizeof *c);
    if (c == NULL)
        return NULL;
    c->b = backend;
    c->trust = trust;
    c->use_cache = use_cache;
    snprintf(c->st.backend, sizeof c->st.backend, "%s", backend->ops->name);
    c->st.tries_left = -1;
    pthread_mutex_init(&c->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&c->work_cv, &ca);
    pthread_cond_init(&c->done_cv, &ca);
    pthread_cond_init(&c->stop_cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_lock(&c->mu);
    queue_internal_locked(c, JOB_PROBE);
    pthread_mutex_unlock(&c->mu);
    if (pthread_create(&c->worker, NULL, worker_main, c) != 0) {
        cachetd_card_stop(c);
        return NULL;
    }
    c->worker_started = true;
    if (pthread_create(&c->monitor, NULL, monitor_main, c) != 0) {
        cachetd_card_stop(c);
        return NULL;
    }
    c->monitor_started = true;
    return c;
}

void cachetd_card_stop(cachetd_card_t *c)
{
    if (c == NULL)
        return;
    pthread_mutex_lock(&c->mu);
    c->stopping = true;
    pthread_cond_broadcast(&c->work_cv);
    pthread_cond_broadcast(&c->stop_cv);
    pthread_mutex_unlock(&c->mu);
    if (c->monitor_started)
        pthread_join(c->monitor, NULL);
    if (c->worker_started)
        pthread_join(c->worker, NULL);
    pthread_mutex_lock(&c->mu);
    job_t *j = c->head;
    while (j != NULL) {
        job_t *next = j->next;
        j->state = JOB_DONE;
        j->st = CARD_ERR_BACKEND;
        job_release_locked(j);
        j = next;
    }
    c->head = c->tail = NULL;
    pthread_cond_broadcast(&c->done_cv);
    pthread_mutex_unlock(&c->mu);
    if (c->b != NULL)
        c->b->ops->close(c->b);
    cachetd_wipe(&c->st, sizeof c->st);
    pthread_cond_destroy(&c->work_cv);
    pthread_cond_destroy(&c->done_cv);
    pthread_cond_destroy(&c->stop_cv);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

card_status_t cachetd_card_run(cachetd_card_t *c, cachetd_op_t *op, int timeout_ms)
{
    if (op->in_len > sizeof op->in)
        return CARD_ERR_BAD_INPUT;
    job_t *j = calloc(1, sizeof *j);
    if (j == NULL)
        return CARD_ERR_BACKEND;
    j->type = JOB_USER;
    j->op = *op;
    j->op.tries_left = -1;
    j->op.sig_len = 0;
    j->refs = 2;
    op->tries_left = -1;
    op->sig_len = 0;
    op->announced = false;
    op->receipt_len = 0;
    op->device_info_len = 0;
    struct timespec dl;
    deadline_after(&dl, timeout_ms);

    pthread_mutex_lock(&c->mu);
    j->gen = c->st.generation;
    if (c->stopping) {
        j->refs = 1;
        j->st = CARD_ERR_BACKEND;
        j->state = JOB_DONE;
    } else if (needs_card(op->kind) && c->binds_pending == 0 && !c->st.info.present) {
        j->refs = 1;
        j->st = c->st.reader_present ? CARD_ERR_NO_CARD : CARD_ERR_NO_READER;
        j->state = JOB_DONE;
    } else {
        enqueue_locked(c, j);
    }
    while (j->state != JOB_DONE) {
        int rc = pthread_cond_timedwait(&c->done_cv, &c->mu, &dl);
        if (rc == ETIMEDOUT && j->state != JOB_DONE) {
            if (j->state == JOB_QUEUED) { /* never run it late */
                unlink_locked(c, j);
                j->refs--;
            }
            j->state = JOB_DONE;
            j->st = CARD_ERR_TIMEOUT;
        }
    }
    card_status_t st = j->st;
    bool ran = j->refs == 1; /* the worker let go: it finished and wrote the outputs */
    if (ran) {
        op->tries_left = j->op.tries_left;
        op->verified = j->op.verified;
        op->info = j->op.info;
        if (j->op.sig_len <= sizeof op->sig) {
            memcpy(op->sig, j->op.sig, j->op.sig_len);
            op->sig_len = j->op.sig_len;
        }
        op->announced = j->op.announced;
        if (j->op.receipt_len <= sizeof op->receipt) {
            memcpy(op->receipt, j->op.receipt, j->op.receipt_len);
            op->receipt_len = j->op.receipt_len;
        }
        if (j->op.device_info_len <= sizeof op->device_info) {
            memcpy(op->device_info, j->op.device_info, j->op.device_info_len);
            op->device_info_len = j->op.device_info_len;
        }
    }
    job_release_locked(j);
    pthread_mutex_unlock(&c->mu);
    return st;
}

void cachetd_card_configure_appliance(cachetd_card_t *c, int confirm_timeout_s, int auth_policy,
                                      int language)
{
    pthread_mutex_lock(&c->mu);
    c->appl_set = true;
    c->appl_timeout = confirm_timeout_s;
    c->appl_auth = auth_policy;
    c->appl_lang = language;
    if (!c->stopping && !queue_internal_locked(c, JOB_CONFIGURE))
        cachetd_log("appliance settings: out of memory");
    pthread_mutex_unlock(&c->mu);
}

void cachetd_card_snapshot(cachetd_card_t *c, cachetd_card_snapshot_t *out, int wait_ms)
{
    struct timespec dl;
    deadline_after(&dl, wait_ms);
    pthread_mutex_lock(&c->mu);
    while (c->binds_pending > 0 && !c->stopping &&
           pthread_cond_timedwait(&c->done_cv, &c->mu, &dl) != ETIMEDOUT) {
    }
    *out = c->st;
    out->binding = c->binds_pending > 0;
    pthread_mutex_unlock(&c->mu);
}
