/* card-native-probe: drives cachetd's native CPx backend (host/daemon/card,
 * card_native.c) through the card.h interface, step by step in one process (the
 * PIN state lives as long as our PC/SC connection), for the integration tests.
 *
 *   card-native-probe [--reader SUBSTR] STEP...
 *
 * Steps (each prints one line "<step> status=<card_status_name> ..."):
 *   bind | info | pin-status | verify:PIN | verify-pinpad | logout
 *   certs:DIR                  read_certs; writes DIR/auth.der, sign.der, ca.der
 *   sign:ROLE:MECH:IN:OUT      ROLE auth|sign, MECH rsa-pkcs|sha256|sha1, IN/OUT files
 *   sign-loop:ROLE:MECH:IN:MAX signs until a failure or MAX signatures
 *   stats | stats-reset        APDUs and bytes through PC/SC (card_native_stats)
 *   touch:FILE                 creates FILE (a "ready" mark for the calling script)
 *   run:CMD                    runs CMD with the shell (e.g. cachet-sim-ctl status)
 *   watch:EVENT:MS:READYFILE   creates READYFILE, then waits up to MS ms for EVENT
 *                              (inserted|removed|reader-gone|reader-added); prints
 *                              the CLOCK_REALTIME ms at which wait_event returned it
 *   monitor-start | monitor-wait:EVENT:MS | monitor-stop
 *                              a second thread calling wait_event (as cachetd's
 *                              monitor does) printing "event NAME at MS"; wait
 *                              until it saw EVENT; stop it with card_native_cancel_wait
 *   expect:STATUS              fails (exit 1) unless the previous step ended so
 *
 * Exit status: 0, 1 (an expect failed, a file could not be written), 2 usage. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "card.h"
#include "card_native.h"

#define PROBE_IN_MAX 4096

static card_backend_t *be;
static card_status_t last = CARD_OK;
static pthread_t mon_thread;
static atomic_bool mon_stop;
static bool mon_running;
/* events the monitor thread saw, by card_event_t */
static pthread_mutex_t mon_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t mon_cond = PTHREAD_COND_INITIALIZER;
static unsigned mon_seen[CARD_EVENT_READER_ADDED + 1];

static long long realtime_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static long long mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const char *event_name(card_event_t ev)
{
    switch (ev) {
    case CARD_EVENT_NONE: return "none";
    case CARD_EVENT_INSERTED: return "inserted";
    case CARD_EVENT_REMOVED: return "removed";
    case CARD_EVENT_READER_GONE: return "reader-gone";
    case CARD_EVENT_READER_ADDED: return "reader-added";
    }
    return "?";
}

static void report(const char *step, card_status_t st)
{
    last = st;
    printf("%s status=%s", step, card_status_name(st));
    if (st != CARD_OK)
        printf(" error=\"%s\"", be->ops->last_error(be));
}

static void print_hex(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        printf("%02X", p[i]);
}

static bool read_file(const char *path, uint8_t *buf, size_t cap, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return false;
    *len = fread(buf, 1, cap, f);
    bool ok = !ferror(f) && fgetc(f) == EOF;
    fclose(f);
    return ok;
}

static bool write_file(const char *path, const uint8_t *buf, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return false;
    bool ok = fwrite(buf, 1, len, f) == len;
    return fclose(f) == 0 && ok;
}

/* Splits "a:b:c" in place into at most max fields; returns their count. */
static int split(char *s, char **f, int max)
{
    int n = 0;
    f[n++] = s;
    for (char *p = s; *p && n < max; p++) {
        if (*p == ':') {
            *p = '\0';
            f[n++] = p + 1;
        }
    }
    return n;
}

static bool parse_role_mech(const char *r, const char *m, card_key_role_t *role, card_mech_t *mech)
{
    if (!strcmp(r, "auth"))
        *role = CARD_KEY_AUTH;
    else if (!strcmp(r, "sign"))
        *role = CARD_KEY_SIGN;
    else
        return false;
    if (!strcmp(m, "rsa-pkcs"))
        *mech = CARD_MECH_RSA_PKCS;
    else if (!strcmp(m, "sha256"))
        *mech = CARD_MECH_SHA256;
    else if (!strcmp(m, "sha1"))
        *mech = CARD_MECH_SHA1;
    else
        return false;
    return true;
}

static void *monitor_main(void *arg)
{
    (void)arg;
    while (!atomic_load(&mon_stop)) {
        card_event_t ev = CARD_EVENT_NONE;
        card_status_t st = be->ops->wait_event(be, 1000, &ev);
        if (st == CARD_ERR_CANCELLED)
            break;
        if (st != CARD_OK) {
            fprintf(stderr, "monitor: %s\n", card_status_name(st));
            continue;
        }
        if (ev != CARD_EVENT_NONE) {
            printf("event %s at %lld\n", event_name(ev), realtime_ms());
            pthread_mutex_lock(&mon_lock);
            if ((size_t)ev < sizeof mon_seen / sizeof mon_seen[0])
                mon_seen[ev]++;
            pthread_cond_broadcast(&mon_cond);
            pthread_mutex_unlock(&mon_lock);
        }
    }
    return NULL;
}

/* monitor-wait:EVENT:MS — until the monitor thread has seen EVENT. */
static int step_monitor_wait(char **f, int nf)
{
    if (nf != 3 || !mon_running)
        return 2;
    card_event_t want = CARD_EVENT_NONE;
    for (card_event_t e = CARD_EVENT_INSERTED; e <= CARD_EVENT_READER_ADDED; e++)
        if (!strcmp(event_name(e), f[1]))
            want = e;
    if (want == CARD_EVENT_NONE)
        return 2;
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    long ms = atol(f[2]);
    until.tv_sec += ms / 1000;
    until.tv_nsec += (ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&mon_lock);
    int rc = 0;
    while (mon_seen[want] == 0 && rc == 0)
        rc = pthread_cond_timedwait(&mon_cond, &mon_lock, &until);
    bool seen = mon_seen[want] != 0;
    pthread_mutex_unlock(&mon_lock);
    last = seen ? CARD_OK : CARD_ERR_TIMEOUT;
    printf("monitor-wait status=%s event=%s\n", card_status_name(last), f[1]);
    return 0;
}

static int step_watch(char **f, int nf)
{
    if (nf != 4)
        return 2;
    long ms = atol(f[2]);
    if (!write_file(f[3], (const uint8_t *)"", 0))
        return 1;
    long long deadline = mono_ms() + ms;
    for (;;) {
        long long left = deadline - mono_ms();
        if (left <= 0) {
            last = CARD_ERR_TIMEOUT;
            printf("watch status=timeout want=%s\n", f[1]);
            return 0;
        }
        card_event_t ev = CARD_EVENT_NONE;
        card_status_t st = be->ops->wait_event(be, (int)left, &ev);
        long long at = realtime_ms();
        if (st != CARD_OK) {
            report("watch", st);
            printf("\n");
            return 0;
        }
        if (ev == CARD_EVENT_NONE)
            continue;
        printf("event %s at %lld\n", event_name(ev), at);
        if (!strcmp(event_name(ev), f[1])) {
            last = CARD_OK;
            printf("watch status=ok event=%s at=%lld\n", f[1], at);
            return 0;
        }
    }
}

static int step_sign(char **f, int nf, bool loop)
{
    card_key_role_t role;
    card_mech_t mech;
    if (nf != 5 || !parse_role_mech(f[1], f[2], &role, &mech))
        return 2;
    static uint8_t in[PROBE_IN_MAX];
    size_t in_len = 0;
    if (!read_file(f[3], in, sizeof in, &in_len)) {
        fprintf(stderr, "card-native-probe: cannot read %s\n", f[3]);
        return 1;
    }
    uint8_t sig[CARD_SIG_MAX];
    size_t sig_len = 0;
    if (!loop) {
        card_status_t st = be->ops->sign(be, role, mech, in, in_len, sig, sizeof sig, &sig_len);
        report("sign", st);
        printf(" len=%zu\n", sig_len);
        if (st == CARD_OK && !write_file(f[4], sig, sig_len))
            return 1;
        return 0;
    }
    long max = atol(f[4]), done = 0;
    long long t0 = mono_ms();
    card_status_t st = CARD_OK;
    while (done < max) {
        st = be->ops->sign(be, role, mech, in, in_len, sig, sizeof sig, &sig_len);
        if (st != CARD_OK)
            break;
        done++;
    }
    report("sign-loop", st);
    printf(" signatures=%ld ms=%lld at=%lld\n", done, mono_ms() - t0, realtime_ms());
    return 0;
}

static int step_certs(const char *dir)
{
    static card_cert_t certs[CARD_CERTS_MAX];
    size_t n = 0;
    card_status_t st = be->ops->read_certs(be, certs, CARD_CERTS_MAX, &n);
    report("certs", st);
    printf(" count=%zu\n", n);
    for (size_t i = 0; i < n; i++) {
        const char *name = certs[i].role == CARD_KEY_AUTH   ? "auth"
                           : certs[i].role == CARD_KEY_SIGN ? "sign"
                                                            : "ca";
        printf("cert role=%s len=%zu id=", name, certs[i].der_len);
        print_hex(certs[i].id, certs[i].id_len);
        printf(" label=\"%s\"\n", certs[i].label);
        char path[4096];
        int l = snprintf(path, sizeof path, "%s/%s.der", dir, name);
        if (l < 0 || (size_t)l >= sizeof path || !write_file(path, certs[i].der, certs[i].der_len))
            return 1;
    }
    return 0;
}

static int run_step(char *arg)
{
    char *f[6];
    int nf = split(arg, f, 6);
    const char *s = f[0];
    if (!strcmp(s, "bind") || !strcmp(s, "info")) {
        card_info_t info;
        card_status_t st = !strcmp(s, "bind") ? be->ops->bind(be, &info) : be->ops->get_info(be, &info);
        report(s, st);
        printf(" present=%d pinpad=%d serial=%s reader=\"%s\"\n", info.present, info.pinpad,
               info.serial, info.reader);
    } else if (!strcmp(s, "pin-status")) {
        int tries = -2;
        bool verified = false;
        card_status_t st = be->ops->pin_status(be, &tries, &verified);
        report(s, st);
        printf(" tries=%d verified=%d\n", tries, verified);
    } else if (!strcmp(s, "verify") && nf == 2) {
        int tries = -2;
        card_status_t st = be->ops->verify_pin(be, f[1], &tries);
        report(s, st);
        printf(" tries=%d\n", tries);
    } else if (!strcmp(s, "verify-pinpad")) {
        int tries = -2;
        card_status_t st = be->ops->verify_pin(be, NULL, &tries);
        report(s, st);
        printf(" tries=%d\n", tries);
    } else if (!strcmp(s, "logout")) {
        be->ops->logout(be);
        last = CARD_OK;
        printf("logout status=ok\n");
    } else if (!strcmp(s, "certs") && nf == 2) {
        return step_certs(f[1]);
    } else if (!strcmp(s, "sign")) {
        return step_sign(f, nf, false);
    } else if (!strcmp(s, "sign-loop")) {
        return step_sign(f, nf, true);
    } else if (!strcmp(s, "stats")) {
        card_native_stats_t st;
        if (!card_native_stats(be, &st))
            return 1;
        printf("stats apdus=%llu sent=%llu recv=%llu transactions=%llu controls=%llu\n",
               (unsigned long long)st.apdus, (unsigned long long)st.bytes_sent,
               (unsigned long long)st.bytes_received, (unsigned long long)st.transactions,
               (unsigned long long)st.controls);
    } else if (!strcmp(s, "stats-reset")) {
        card_native_stats_reset(be);
    } else if (!strcmp(s, "touch") && nf == 2) {
        if (!write_file(f[1], (const uint8_t *)"", 0))
            return 1;
    } else if (!strcmp(s, "run") && nf >= 2) {
        /* the command may hold ':' itself: take everything after "run:" */
        for (int i = 2; i < nf; i++)
            f[i][-1] = ':';
        fflush(stdout);
        int rc = system(f[1]);
        if (rc != 0)
            fprintf(stderr, "card-native-probe: '%s' exited with %d\n", f[1], rc);
    } else if (!strcmp(s, "watch")) {
        return step_watch(f, nf);
    } else if (!strcmp(s, "monitor-start") && !mon_running) {
        atomic_store(&mon_stop, false);
        if (pthread_create(&mon_thread, NULL, monitor_main, NULL) != 0)
            return 1;
        mon_running = true;
    } else if (!strcmp(s, "monitor-wait")) {
        return step_monitor_wait(f, nf);
    } else if (!strcmp(s, "monitor-stop") && mon_running) {
        atomic_store(&mon_stop, true);
        card_native_cancel_wait(be);
        pthread_join(mon_thread, NULL);
        mon_running = false;
        printf("monitor stopped\n");
    } else if (!strcmp(s, "expect") && nf == 2) {
        if (strcmp(card_status_name(last), f[1]) != 0) {
            fprintf(stderr, "card-native-probe: expected %s, got %s\n", f[1],
                    card_status_name(last));
            return 1;
        }
    } else {
        return 2;
    }
    return 0;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    const char *reader = "";
    int i = 1;
    if (argc > 2 && !strcmp(argv[1], "--reader")) {
        reader = argv[2];
        i = 3;
    }
    if (i >= argc) {
        fprintf(stderr, "usage: card-native-probe [--reader SUBSTR] STEP...\n");
        return 2;
    }
    char err[256];
    be = card_native_open(reader, err, sizeof err);
    if (!be) {
        fprintf(stderr, "card-native-probe: card_native_open: %s\n", err);
        return 1;
    }
    int rc = 0;
    for (; i < argc && rc == 0; i++) {
        rc = run_step(argv[i]);
        if (rc == 2)
            fprintf(stderr, "card-native-probe: bad step '%s'\n", argv[i]);
    }
    if (mon_running) {
        atomic_store(&mon_stop, true);
        card_native_cancel_wait(be);
        pthread_join(mon_thread, NULL);
    }
    be->ops->close(be);
    return rc;
}
