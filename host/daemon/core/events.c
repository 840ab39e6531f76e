/* events: fan-out of daemon events (card-inserted, card-removed, reader-added,
 * reader-gone, pin-needed, operation-finished) to subscribed connections.
 * Emitters never block on a client: each subscriber has a bounded queue
 * (CACHETD_EVENT_QUEUE_MAX, oldest dropped) and a pipe that wakes its
 * connection thread, which does the writing. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cachetd.h"
#include "proto.h"

struct cachetd_sub {
    int pipe_rd, pipe_wr;
    char *queue[CACHETD_EVENT_QUEUE_MAX];
    size_t head, count;
    uint64_t dropped;
    cachetd_sub_t *next;
};

static pthread_mutex_t ev_mu = PTHREAD_MUTEX_INITIALIZER;
static cachetd_sub_t *ev_subs;
static size_t ev_nsubs;

cachetd_sub_t *cachetd_events_subscribe(void)
{
    cachetd_sub_t *s = calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    int p[2];
    if (pipe2(p, O_CLOEXEC | O_NONBLOCK) != 0) {
        free(s);
        return NULL;
    }
    s->pipe_rd = p[0];
    s->pipe_wr = p[1];
    pthread_mutex_lock(&ev_mu);
    s->next = ev_subs;
    ev_subs = s;
    ev_nsubs++;
    pthread_mutex_unlock(&ev_mu);
    return s;
}

int cachetd_sub_wake_fd(const cachetd_sub_t *sub)
{
    return sub->pipe_rd;
}

char *cachetd_sub_pop(cachetd_sub_t *sub)
{
    char drain[64];
    while (read(sub->pipe_rd, drain, sizeof drain) > 0) {
    }
    char *out = NULL;
    pthread_mutex_lock(&ev_mu);
    if (sub->count > 0) {
        out = sub->queue[sub->head];
        sub->queue[sub->head] = NULL;
        sub->head = (sub->head + 1) % CACHETD_EVENT_QUEUE_MAX;
        sub->count--;
        if (sub->count > 0) { /* more to come: stay readable */
            ssize_t w = write(sub->pipe_wr, "e", 1);
            (void)w;
        }
    }
    pthread_mutex_unlock(&ev_mu);
    return out;
}

void cachetd_events_unsubscribe(cachetd_sub_t *sub)
{
    if (sub == NULL)
        return;
    pthread_mutex_lock(&ev_mu);
    for (cachetd_sub_t **pp = &ev_subs; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == sub) {
            *pp = sub->next;
            ev_nsubs--;
            break;
        }
    }
    pthread_mutex_unlock(&ev_mu);
    for (size_t i = 0; i < CACHETD_EVENT_QUEUE_MAX; i++)
        free(sub->queue[i]);
    close(sub->pipe_rd);
    close(sub->pipe_wr);
    free(sub);
}

size_t cachetd_events_subscribers(void)
{
    pthread_mutex_lock(&ev_mu);
    size_t n = ev_nsubs;
    pthread_mutex_unlock(&ev_mu);
    return n;
}

void cachetd_events_emit(const char *name, json_object *fields)
{
    json_object *ev = proto_event_new(name, fields);
    if (ev == NULL)
        return;
    const char *txt =
        json_object_to_json_string_ext(ev, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
    pthread_mutex_lock(&ev_mu);
    for (cachetd_sub_t *s = ev_subs; s != NULL; s = s->next) {
        char *copy = strdup(txt);
        if (copy == NULL)
            continue;
        if (s->count == CACHETD_EVENT_QUEUE_MAX) { /* slow reader: drop the oldest */
            free(s->queue[s->head]);
            s->queue[s->head] = NULL;
            s->head = (s->head + 1) % CACHETD_EVENT_QUEUE_MAX;
            s->count--;
            s->dropped++;
        }
        s->queue[(s->head + s->count) % CACHETD_EVENT_QUEUE_MAX] = copy;
        s->count++;
        ssize_t w = write(s->pipe_wr, "e", 1); /* full pipe: already readable */
        (void)w;
    }
    pthread_mutex_unlock(&ev_mu);
    json_object_put(ev);
}
