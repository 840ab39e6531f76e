/* cachetd: the one owner of the practitioner's card on this workstation
 * (ARCHITECTURE.md §1, issue 3). Main thread: options, trust store, cache,
 * audit log, card backend, then the Unix socket and the accept loop; one
 * thread per client (at most CACHETD_CONN_MAX), one card worker, one monitor.
 * SIGTERM/SIGINT end it cleanly (socket removed). */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <openssl/x509.h>

#include "cache.h"
#include "cachetd.h"
#include "card_native.h"
#include "card_pkcs11.h"
#include "proto.h"

static atomic_int active_conns;

typedef struct {
    cachetd_ctx_t *ctx;
    int fd;
} conn_arg_t;

static void *conn_thread(void *arg)
{
    conn_arg_t a = *(conn_arg_t *)arg;
    free(arg);
    cachetd_conn_serve(a.ctx, a.fd);
    atomic_fetch_sub(&active_conns, 1);
    return NULL;
}

/* mkdir -p for the directories above path, mode for the ones it creates. */
static bool make_parents(const char *path, mode_t mode)
{
    char tmp[PATH_MAX];
    size_t n = strlen(path);
    if (n >= sizeof tmp)
        return false;
    memcpy(tmp, path, n + 1);
    char *slash = strrchr(tmp, '/');
    if (slash == NULL || slash == tmp)
        return true;
    *slash = '\0';
    for (char *p = tmp + 1; *p != '\0'; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(tmp, mode) != 0 && errno != EEXIST)
            return false;
        *p = '/';
    }
    if (mkdir(tmp, mode) != 0 && errno != EEXIST)
        return false;
    return true;
}

static const char *const pkcs11_search[] = {
    "/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so",
    "/usr/lib/x86_64-linux-gnu/pkcs11/opensc-pkcs11.so",
    "/usr/lib/aarch64-linux-gnu/opensc-pkcs11.so",
    "/usr/lib64/opensc-pkcs11.so",
    "/usr/lib/opensc-pkcs11.so",
    "/usr/local/lib/opensc-pkcs11.so",
};

static card_backend_t *open_pkcs11(const cachetd_config_t *cfg, char *err, size_t cap)
{
    if (cfg->pkcs11_module[0] != '\0')
        return card_pkcs11_open(cfg->pkcs11_module, err, cap);
    for (size_t i = 0; i < sizeof pkcs11_search / sizeof pkcs11_search[0]; i++)
        if (access(pkcs11_search[i], R_OK) == 0)
            return card_pkcs11_open(pkcs11_search[i], err, cap);
    snprintf(err, cap, "no PKCS#11 module found (use --pkcs11-module)");
    return NULL;
}

/* auto: native when a reader holds a CPx card; else the PKCS#11 module when it
 * sees a token; else native (it waits for the reader and the card), else
 * PKCS#11 (no PC/SC at all). */
static card_backend_t *open_backend(const cachetd_config_t *cfg, char *err, size_t cap)
{
    if (strcmp(cfg->backend, "native") == 0)
        return card_native_open(cfg->reader, err, cap);
    if (strcmp(cfg->backend, "pkcs11") == 0)
        return open_pkcs11(cfg, err, cap);
    char e1[256] = "", e2[256] = "";
    card_backend_t *n = card_native_open(cfg->reader, e1, sizeof e1);
    card_info_t info;
    if (n != NULL) {
        memset(&info, 0, sizeof info);
        if (n->ops->get_info(n, &info) == CARD_OK && info.present)
            return n;
    }
    card_backend_t *p = open_pkcs11(cfg, e2, sizeof e2);
    if (p != NULL) {
        memset(&info, 0, sizeof info);
        if (p->ops->get_info(p, &info) == CARD_OK && info.present) {
            if (n != NULL)
                n->ops->close(n);
            return p;
        }
    }
    if (n != NULL) {
        if (p != NULL)
            p->ops->close(p);
        return n;
    }
    if (p != NULL)
        return p;
    snprintf(err, cap, "native: %s; pkcs11: %s", e1, e2);
    return NULL;
}

/* Wakes the monitor out of wait_event, then stops both card threads. */
static void stop_card(cachetd_card_t *card, card_backend_t *b)
{
    if (strcmp(b->ops->name, "native") == 0)
        card_native_cancel_wait(b);
    else
        card_pkcs11_cancel_wait(b);
    cachetd_card_stop(card);
}

/* Refuses to run twice: a lock beside the socket, then a connect probe. */
static int take_lock(const char *sock, char *err, size_t cap)
{
    char lp[PATH_MAX];
    int n = snprintf(lp, sizeof lp, "%s.lock", sock);
    if (n < 0 || (size_t)n >= sizeof lp) {
        snprintf(err, cap, "socket path too long");
        return -1;
    }
    int fd = open(lp, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        snprintf(err, cap, "%.256s: %s", lp, strerror(errno));
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        snprintf(err, cap, "another cachetd is running (%.256s is locked)", lp);
        close(fd);
        return -1;
    }
    return fd;
}

static int make_socket(const cachetd_config_t *cfg, char *err, size_t cap)
{
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    size_t n = strlen(cfg->socket_path);
    if (n >= sizeof sa.sun_path) {
        snprintf(err, cap, "socket path too long");
        return -1;
    }
    memcpy(sa.sun_path, cfg->socket_path, n + 1);
    /* Another cachetd answering there? Then leave it alone. */
    int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (probe >= 0) {
        if (connect(probe, (struct sockaddr *)&sa, sizeof sa) == 0) {
            close(probe);
            snprintf(err, cap, "another cachetd answers on %s", cfg->socket_path);
            return -1;
        }
        close(probe);
    }
    unlink(cfg->socket_path); /* stale */
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, cap, "socket: %s", strerror(errno));
        return -1;
    }
    mode_t old = umask(0177); /* the socket is born 0600 */
    int rc = bind(fd, (struct sockaddr *)&sa, sizeof sa);
    umask(old);
    if (rc != 0) {
        snprintf(err, cap, "bind %s: %s", cfg->socket_path, strerror(errno));
        close(fd);
        return -1;
    }
    if (cfg->has_allow_gid) {
        if (chown(cfg->socket_path, (uid_t)-1, cfg->allow_gid) != 0 ||
            chmod(cfg->socket_path, 0660) != 0) {
            snprintf(err, cap, "socket group %s: %s", cfg->allow_group, strerror(errno));
            close(fd);
            unlink(cfg->socket_path);
            return -1;
        }
    }
    if (listen(fd, 64) != 0) {
        snprintf(err, cap, "listen: %s", strerror(errno));
        close(fd);
        unlink(cfg->socket_path);
        return -1;
    }
    return fd;
}

/* The socket's directory: created 0700 (0710 for --allow-group), ours, and not
 * writable by others. */
static bool socket_dir(const cachetd_config_t *cfg, char *err, size_t cap)
{
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", cfg->socket_path);
    char *slash = strrchr(dir, '/');
    if (slash == NULL) {
        snprintf(err, cap, "socket path must be absolute");
        return false;
    }
    if (slash == dir)
        return true;
    *slash = '\0';
    struct stat st;
    bool created = false;
    if (stat(dir, &st) != 0) {
        if (!make_parents(cfg->socket_path, 0700)) {
            snprintf(err, cap, "%.256s: %s", dir, strerror(errno));
            return false;
        }
        created = true;
        if (stat(dir, &st) != 0) {
            snprintf(err, cap, "%.256s: %s", dir, strerror(errno));
            return false;
        }
    }
    if (!S_ISDIR(st.st_mode) || (st.st_mode & 0002) != 0 ||
        (st.st_uid != geteuid() && st.st_uid != 0)) {
        snprintf(err, cap, "%.256s: not a private directory", dir);
        return false;
    }
    if (created && cfg->has_allow_gid) {
        if (chown(dir, (uid_t)-1, cfg->allow_gid) != 0 || chmod(dir, 0710) != 0) {
            snprintf(err, cap, "%.256s: %s", dir, strerror(errno));
            return false;
        }
    }
    return true;
}

int main(int argc, char **argv)
{
    cachetd_config_t *cfg = calloc(1, sizeof *cfg);
    cachetd_ctx_t *ctx = calloc(1, sizeof *ctx);
    X509_STORE *trust = NULL;
    audit_log_t *audit = NULL;
    card_backend_t *b = NULL;
    int rc = 1, lock = -1, lfd = -1, sfd = -1;
    char err[512] = "";
    if (cfg == NULL || ctx == NULL)
        goto out;
    switch (cachetd_config_load(cfg, argc, argv, err, sizeof err)) {
    case CACHETD_CFG_HELP:
        cachetd_config_usage(stdout);
        rc = 0;
        goto out;
    case CACHETD_CFG_VERSION:
        printf("%s (protocol %d)\n", CACHETD_NAME, PROTO_VERSION);
        rc = 0;
        goto out;
    case CACHETD_CFG_ERROR:
        fprintf(stderr, "cachetd: %s\n", err);
        rc = 2;
        goto out;
    case CACHETD_CFG_OK:
        break;
    }
    if (!cachetd_config_finish(cfg, err, sizeof err)) {
        fprintf(stderr, "cachetd: %s\n", err);
        rc = 2;
        goto out;
    }
    if (!cachetd_log_open(cfg->log_path)) {
        fprintf(stderr, "cachetd: log %s: %s\n", cfg->log_path, strerror(errno));
        goto out;
    }
    signal(SIGPIPE, SIG_IGN);
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGHUP);
    /* Blocked before any thread starts, so that only the signalfd sees them. */
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    sfd = signalfd(-1, &sigs, SFD_CLOEXEC);

    if (cfg->trust[0] != '\0') {
        trust = identity_trust_load(cfg->trust, err, sizeof err);
        if (trust == NULL) {
            cachetd_log("trust store %s: %s", cfg->trust, err);
            goto out;
        }
    } else {
        trust = X509_STORE_new();
        cachetd_log("no trust store configured (--trust): every chain is reported unknown-issuer");
    }
    if (cfg->use_cache &&
        !cache_init(cfg->cache_dir[0] != '\0' ? cfg->cache_dir : NULL, err, sizeof err)) {
        cachetd_log("cache: %s (going on without it)", err);
        cfg->use_cache = false;
    }
    if (!make_parents(cfg->audit_log, 0700)) {
        cachetd_log("audit log %s: %s", cfg->audit_log, strerror(errno));
        goto out;
    }
    audit = audit_open(cfg->audit_log, err, sizeof err);
    if (audit == NULL) {
        cachetd_log("audit log %s: %s", cfg->audit_log, err);
        goto out;
    }
    if (!socket_dir(cfg, err, sizeof err)) {
        cachetd_log("%s", err);
        goto out;
    }
    lock = take_lock(cfg->socket_path, err, sizeof err);
    if (lock < 0) {
        cachetd_log("%s", err);
        fprintf(stderr, "cachetd: %s\n", err);
        goto out;
    }
    b = open_backend(cfg, err, sizeof err);
    if (b == NULL) {
        cachetd_log("no card backend: %s", err);
        goto out;
    }
    ctx->cfg = cfg;
    ctx->audit = audit;
    ctx->trust = trust;
    snprintf(ctx->audit_path, sizeof ctx->audit_path, "%s", cfg->audit_log);
    /* The first look at the reader is queued before the socket exists, so that
     * the first requests find the card bound (they wait for the bind). */
    ctx->card = cachetd_card_start(b, trust, cfg->use_cache);
    if (ctx->card == NULL) {
        cachetd_log("cannot start the card threads"); /* (it closed the backend) */
        goto out;
    }
    /* The appliance's language (fr by default) and confirmation settings. */
    cachetd_card_configure_appliance(ctx->card,
                                     cfg->confirm_timeout_s > 0 ? cfg->confirm_timeout_s : -1,
                                     cfg->auth_confirm, cfg->language);
    lfd = make_socket(cfg, err, sizeof err);
    if (lfd < 0) {
        cachetd_log("%s", err);
        fprintf(stderr, "cachetd: %s\n", err);
        stop_card(ctx->card, b);
        goto out;
    }
    cachetd_log("%s listening on %s (backend %s, audit %s)", CACHETD_NAME, cfg->socket_path,
                b->ops->name, cfg->audit_log);

    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, 1024 * 1024);
    for (;;) {
        struct pollfd p[2] = {{.fd = lfd, .events = POLLIN}, {.fd = sfd, .events = POLLIN}};
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (p[1].revents != 0) {
            struct signalfd_siginfo si;
            if (read(sfd, &si, sizeof si) == (ssize_t)sizeof si)
                cachetd_log("signal %u: stopping", si.ssi_signo);
            break;
        }
        if (p[0].revents == 0)
            continue;
        int cfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (cfd < 0) {
            if (errno == EMFILE || errno == ENFILE)
                cachetd_log("accept: %s", strerror(errno));
            continue;
        }
        if (atomic_fetch_add(&active_conns, 1) >= CACHETD_CONN_MAX) {
            atomic_fetch_sub(&active_conns, 1);
            json_object *e = proto_error_new(-1, PROTO_E_DENIED, "too many clients: try later");
            proto_write_json_timeout(cfd, e, NULL, 0, 1000);
            json_object_put(e);
            close(cfd);
            cachetd_log("connection refused: %d clients already", CACHETD_CONN_MAX);
            continue;
        }
        conn_arg_t *a = malloc(sizeof *a);
        pthread_t th;
        if (a == NULL) {
            atomic_fetch_sub(&active_conns, 1);
            close(cfd);
            continue;
        }
        a->ctx = ctx;
        a->fd = cfd;
        if (pthread_create(&th, &attr, conn_thread, a) != 0) {
            free(a);
            atomic_fetch_sub(&active_conns, 1);
            close(cfd);
            cachetd_log("cannot start a client thread");
        }
    }
    close(lfd);
    unlink(cfg->socket_path);
    stop_card(ctx->card, b);
    cachetd_log("stopped");
    /* Client threads may still be finishing: the audit log and the trust store
     * stay open; the process ends here. */
    close(lock);
    cachetd_log_close();
    _exit(0);

out: /* start-up failed: nothing runs yet but this thread */
    if (audit != NULL)
        audit_close(audit);
    X509_STORE_free(trust);
    if (lock >= 0)
        close(lock);
    if (sfd >= 0)
        close(sfd);
    free(cfg);
    free(ctx);
    cachetd_log_close();
    return rc;
}
