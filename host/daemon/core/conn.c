/* conn: one client connection (one thread each). Order of checks: the peer's
 * credentials (SO_PEERCRED: same uid, or a member of --allow-group; else
 * "denied" and close), then frames (capped by proto before any allocation),
 * then the envelope; the first request must be hello. A bad frame gets one
 * clear error and one log line; the connection goes on when the stream is
 * still in step (bad JSON) and ends when it is not (oversized, truncated).
 * After subscribe, events are written between responses by this same thread,
 * so that writes to a client never interleave and a slow client only slows
 * itself. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cachetd.h"
#include "proto.h"

#define WRITE_TIMEOUT_MS 5000

/* Supplementary groups of a live process, from /proc/PID/status ("Groups:"). */
static bool proc_in_group(pid_t pid, gid_t want)
{
    char path[64], line[4096];
    snprintf(path, sizeof path, "/proc/%ld/status", (long)pid);
    FILE *f = fopen(path, "re");
    if (f == NULL)
        return false;
    bool found = false;
    while (fgets(line, sizeof line, f) != NULL) {
        if (strncmp(line, "Groups:", 7) != 0)
            continue;
        char *save = NULL;
        for (char *t = strtok_r(line + 7, " \t\n", &save); t != NULL;
             t = strtok_r(NULL, " \t\n", &save)) {
            char *end = NULL;
            errno = 0;
            unsigned long g = strtoul(t, &end, 10);
            if (errno == 0 && end != t && *end == '\0' && (gid_t)g == want && g == (gid_t)g)
                found = true;
        }
        break;
    }
    fclose(f);
    return found;
}

bool cachetd_peer_allowed(const cachetd_config_t *cfg, uid_t uid, gid_t gid, pid_t pid)
{
    if (uid == geteuid())
        return true;
    if (!cfg->has_allow_gid)
        return false;
    /* The peer process's own credentials decide, as the kernel's file checks do. */
    return gid == cfg->allow_gid || proc_in_group(pid, cfg->allow_gid);
}

static bool send_json(int fd, json_object *o)
{
    if (o == NULL)
        return false;
    proto_status_t st = proto_write_json_timeout(fd, o, NULL, 0, WRITE_TIMEOUT_MS);
    json_object_put(o);
    return st == PROTO_OK;
}

static bool send_text(int fd, const char *txt)
{
    return proto_write_frame_timeout(fd, txt, strlen(txt), NULL, 0, WRITE_TIMEOUT_MS) == PROTO_OK;
}

/* Writes the events queued for this subscriber; false if the client is gone. */
static bool flush_events(cachetd_client_t *cl)
{
    char *ev;
    while ((ev = cachetd_sub_pop(cl->sub)) != NULL) {
        bool ok = send_text(cl->fd, ev);
        free(ev);
        if (!ok)
            return false;
    }
    return true;
}

void cachetd_conn_serve(cachetd_ctx_t *ctx, int fd)
{
    cachetd_client_t *cl = calloc(1, sizeof *cl);
    if (cl == NULL) {
        close(fd);
        return;
    }
    cl->fd = fd;
    struct ucred cred;
    socklen_t clen = sizeof cred;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) != 0 || clen != sizeof cred) {
        cachetd_log("connection without peer credentials refused");
        goto end;
    }
    cl->uid = cred.uid;
    cl->gid = cred.gid;
    cl->pid = cred.pid;
    char path[64];
    snprintf(path, sizeof path, "/proc/%ld/exe", (long)cred.pid);
    ssize_t n = readlink(path, cl->exe, sizeof cl->exe - 1);
    if (n < 0)
        snprintf(cl->exe, sizeof cl->exe, "?");
    else
        cl->exe[n] = '\0';
    if (!cachetd_peer_allowed(ctx->cfg, cred.uid, cred.gid, cred.pid)) {
        cachetd_log("denied: uid %ld pid %ld (%s) is not allowed", (long)cred.uid, (long)cred.pid,
                    cl->exe);
        send_json(fd, proto_error_new(-1, PROTO_E_DENIED,
                                      "cachetd serves only its own user (and --allow-group)"));
        goto end;
    }

    for (;;) {
        struct pollfd p[2] = {{.fd = fd, .events = POLLIN}, {.fd = -1, .events = POLLIN}};
        if (cl->sub != NULL)
            p[1].fd = cachetd_sub_wake_fd(cl->sub);
        int rc = poll(p, 2, -1);
        if (rc < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (p[1].revents != 0 && !flush_events(cl))
            break;
        if (p[0].revents == 0)
            continue;
        char *buf = NULL;
        size_t len = 0, nfds = 0;
        int fds[PROTO_FDS_MAX] = {-1, -1};
        proto_status_t st =
            proto_read_frame(fd, ctx->cfg->frame_timeout_ms, &buf, &len, fds, &nfds);
        if (st == PROTO_ERR_CLOSED)
            break;
        if (st == PROTO_ERR_TOO_BIG) {
            cachetd_log("pid %ld (%s): frame over %u bytes refused; connection closed",
                        (long)cl->pid, cl->exe, PROTO_FRAME_MAX);
            send_json(fd, proto_error_new(-1, PROTO_E_TOO_LARGE, "frame too large"));
            break;
        }
        if (st != PROTO_OK) {
            cachetd_log("pid %ld (%s): %s while reading a request; connection closed",
                        (long)cl->pid, cl->exe,
                        st == PROTO_ERR_TIMEOUT ? "timeout" : "client gone mid-frame");
            if (st == PROTO_ERR_TIMEOUT)
                send_json(fd, proto_error_new(-1, PROTO_E_TIMEOUT, "incomplete frame"));
            break;
        }
        json_object *req = NULL;
        st = proto_parse_json(buf, len, &req);
        cachetd_wipe(buf, len); /* may hold a PIN */
        free(buf);
        if (st != PROTO_OK) {
            for (size_t i = 0; i < nfds; i++)
                close(fds[i]);
            cachetd_log("pid %ld (%s): malformed JSON refused", (long)cl->pid, cl->exe);
            if (!send_json(fd, proto_error_new(-1, PROTO_E_BAD_REQUEST,
                                               "not one well-formed JSON object")))
                break;
            continue;
        }
        cl->fds[0] = fds[0];
        cl->fds[1] = fds[1];
        cl->nfds = nfds;
        bool close_after = false;
        json_object *resp = cachetd_dispatch(ctx, cl, req, &close_after);
        json_object_put(req);
        if (!send_json(fd, resp)) {
            cachetd_log("pid %ld (%s): gone before its answer", (long)cl->pid, cl->exe);
            break;
        }
        if (close_after)
            break;
        if (cl->sub != NULL && !flush_events(cl))
            break;
    }
end:
    if (cl->sub != NULL)
        cachetd_events_unsubscribe(cl->sub);
    close(fd);
    cachetd_wipe(cl, sizeof *cl);
    free(cl);
}
