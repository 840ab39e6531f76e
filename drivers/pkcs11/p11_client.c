/* p11_client: sockets to cachetd (p11_client.h). Frames and envelopes come
 * from host/proto; every wait has a deadline; SIGPIPE is never raised
 * (proto writes with MSG_NOSIGNAL). */
#include "p11_client.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "proto.h"

bool p11_socket_path(char *out, size_t cap)
{
    const char *s = getenv("CACHETD_SOCKET");
    int n;
    if (s != NULL && s[0] == '/') {
        n = snprintf(out, cap, "%s", s);
    } else {
        const char *rt = getenv("XDG_RUNTIME_DIR");
        if (rt != NULL && rt[0] == '/')
            n = snprintf(out, cap, "%s/cachet/cachetd.sock", rt);
        else
            n = snprintf(out, cap, "/run/user/%ld/cachet/cachetd.sock", (long)getuid());
    }
    return n > 0 && (size_t)n < cap;
}

p11_io_t p11_read_msg(int fd, int timeout_ms, p11_msg_t *msg)
{
    char *text = NULL;
    size_t len = 0;
    proto_status_t st = proto_read_frame(fd, timeout_ms, &text, &len, NULL, NULL);
    if (st == PROTO_ERR_TIMEOUT)
        return P11_IO_TIMEOUT;
    if (st == PROTO_ERR_NOMEM)
        return P11_IO_NOMEM;
    if (st != PROTO_OK)
        return P11_IO_BROKEN;
    bool ok = p11_msg_parse(text, len, msg);
    free(text);
    return ok ? P11_IO_OK : P11_IO_PROTOCOL;
}

p11_io_t p11_call(int fd, int64_t id, const char *method, json_object *params, int timeout_ms,
                  p11_msg_t *reply, void (*on_event)(const p11_msg_t *ev, void *ctx), void *ctx)
{
    memset(reply, 0, sizeof *reply);
    json_object *req = proto_request_new(id, method, params);
    if (req == NULL)
        return P11_IO_NOMEM;
    proto_status_t st = proto_write_json_timeout(fd, req, NULL, 0, timeout_ms);
    /* The PIN (verify-pin) must not stay in freed memory. */
    json_object *p = NULL;
    if (json_object_object_get_ex(req, "params", &p))
        proto_wipe_string(p, "pin");
    json_object_put(req);
    if (st == PROTO_ERR_TIMEOUT)
        return P11_IO_TIMEOUT;
    if (st == PROTO_ERR_NOMEM)
        return P11_IO_NOMEM;
    /* A Unix socket whose peer is gone refuses the write at once (EPIPE): the
     * request was not sent, the caller may send it elsewhere. */
    if (st != PROTO_OK)
        return P11_IO_UNREACHABLE;
    for (;;) {
        p11_msg_t m;
        p11_io_t io = p11_read_msg(fd, timeout_ms, &m);
        if (io != P11_IO_OK)
            return io;
        if (m.kind == P11_MSG_EVENT) {
            if (on_event != NULL)
                on_event(&m, ctx);
            p11_msg_free(&m);
            continue;
        }
        if (m.id != id) { /* a response to something else: the stream is not ours */
            p11_msg_free(&m);
            return P11_IO_PROTOCOL;
        }
        *reply = m;
        return P11_IO_OK;
    }
}

p11_io_t p11_connect(const char *path, int timeout_ms, int *fd, int *errno_out)
{
    *fd = -1;
    if (errno_out != NULL)
        *errno_out = 0;
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    size_t plen = strlen(path);
    if (plen >= sizeof sa.sun_path) {
        if (errno_out != NULL)
            *errno_out = ENAMETOOLONG;
        return P11_IO_UNREACHABLE;
    }
    memcpy(sa.sun_path, path, plen + 1);
    int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0) {
        if (errno_out != NULL)
            *errno_out = errno;
        return P11_IO_UNREACHABLE;
    }
    int rc;
    do {
        rc = connect(s, (struct sockaddr *)&sa, sizeof sa);
    } while (rc != 0 && errno == EINTR);
    if (rc != 0) {
        if (errno_out != NULL)
            *errno_out = errno;
        close(s);
        return P11_IO_UNREACHABLE;
    }
    /* §2.2: hello first; version 1 is the only one. */
    json_object *hello = proto_hello_new(1, P11_CLIENT_NAME);
    if (hello == NULL) {
        close(s);
        return P11_IO_NOMEM;
    }
    json_object *params = NULL;
    json_object_object_get_ex(hello, "params", &params);
    json_object_get(params);
    json_object_put(hello);
    p11_msg_t reply;
    p11_io_t io = p11_call(s, 1, "hello", params, timeout_ms, &reply, NULL, NULL);
    if (io != P11_IO_OK) {
        close(s);
        return io == P11_IO_NOMEM ? io : P11_IO_UNREACHABLE;
    }
    int64_t version = 0;
    bool ok = reply.kind == P11_MSG_RESULT &&
              proto_get_int(reply.result, "version", true, 1, 65535, &version) == PROTO_OK &&
              version == PROTO_VERSION;
    if (!ok && errno_out != NULL)
        *errno_out = EPROTO; /* "denied" (another uid) or "version" */
    p11_msg_free(&reply);
    if (!ok) {
        close(s);
        return P11_IO_UNREACHABLE;
    }
    *fd = s;
    return P11_IO_OK;
}
