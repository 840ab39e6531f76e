/* p11_client: libcachet-pkcs11's connections to cachetd (docs/protocol.md §1,
 * §2.2): where the socket is, connect + hello, one request and its response.
 * Stateless (the module keeps its connections); never writes to stdout. */
#ifndef CACHET_P11_CLIENT_H
#define CACHET_P11_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "p11_reply.h"

#define P11_SOCK_PATH_MAX 108 /* sizeof(sockaddr_un.sun_path) */
#define P11_CLIENT_NAME   "libcachet-pkcs11 0.1.0"

typedef enum {
    P11_IO_OK = 0,
    P11_IO_UNREACHABLE, /* no socket, nobody listening, refused before hello, or the
                         * request could not be written (so it was not sent) */
    P11_IO_BROKEN,      /* the connection failed during a request: its answer is lost */
    P11_IO_TIMEOUT,     /* no answer in time (the connection is then unusable) */
    P11_IO_PROTOCOL,    /* an answer that is not a valid response (connection unusable) */
    P11_IO_NOMEM,
} p11_io_t;

/* $CACHETD_SOCKET, else $XDG_RUNTIME_DIR/cachet/cachetd.sock, else
 * /run/user/UID/cachet/cachetd.sock (the paths cachetd and `cachet` use). */
bool p11_socket_path(char *out, size_t cap);

/* Connects (close-on-exec) and says hello; *fd on success. errno_out: the
 * connect() error for the log line when unreachable. */
p11_io_t p11_connect(const char *path, int timeout_ms, int *fd, int *errno_out);

/* Sends {"v":1,"id":id,"method":method,"params":params} (params taken over,
 * NULL = none; a "pin" member is wiped before it is freed) and reads frames up
 * to the response with that id; events met on the way go to on_event (may be
 * NULL: dropped). *reply is a P11_MSG_RESULT or P11_MSG_ERROR on P11_IO_OK. */
p11_io_t p11_call(int fd, int64_t id, const char *method, json_object *params, int timeout_ms,
                  p11_msg_t *reply, void (*on_event)(const p11_msg_t *ev, void *ctx), void *ctx);

/* Reads one frame within timeout_ms (0: only if one is already there). */
p11_io_t p11_read_msg(int fd, int timeout_ms, p11_msg_t *msg);

#endif
