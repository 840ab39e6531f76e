/* sim_sock: Unix socket plumbing shared by cachet-sim's three channels.
 * Sockets are 0600 and every peer's uid is checked (STYLE.md rule 9). */
#include "sim.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

uint64_t sim_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static bool fill_addr(struct sockaddr_un *sa, const char *path)
{
    size_t len = strlen(path);
    memset(sa, 0, sizeof *sa);
    sa->sun_family = AF_UNIX;
    if (len >= sizeof sa->sun_path)
        return false;
    memcpy(sa->sun_path, path, len + 1);
    return true;
}

bool sim_sock_alive(const char *path)
{
    struct sockaddr_un sa;
    if (!fill_addr(&sa, path))
        return false;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return false;
    bool alive = connect(fd, (const struct sockaddr *)&sa, sizeof sa) == 0;
    close(fd);
    return alive;
}

int sim_sock_listen(const char *path)
{
    struct sockaddr_un sa;
    if (!fill_addr(&sa, path)) {
        sim_log(SIM_LOG_ERROR, "socket path too long: %s", path);
        return -1;
    }
    struct stat st;
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            sim_log(SIM_LOG_ERROR, "%s exists and is not a socket", path);
            return -1;
        }
        /* Stale: sim_run checked that no other cachet-sim serves this DIR. */
        unlink(path);
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        sim_log(SIM_LOG_ERROR, "socket: %s", strerror(errno));
        return -1;
    }
    /* Create it 0600 from the start: no window where others may connect. */
    mode_t old = umask(0177);
    int rc = bind(fd, (const struct sockaddr *)&sa, sizeof sa);
    umask(old);
    if (rc != 0 || chmod(path, 0600) != 0 || listen(fd, 4) != 0) {
        sim_log(SIM_LOG_ERROR, "cannot listen on %s: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

int sim_sock_accept(int lfd, const char *what)
{
    int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
            errno != ECONNABORTED)
            sim_log(SIM_LOG_WARN, "%s: accept: %s", what, strerror(errno));
        return -1;
    }
    struct ucred cred;
    socklen_t clen = sizeof cred;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) != 0 ||
        clen != sizeof cred) {
        sim_log(SIM_LOG_WARN, "%s: cannot read peer credentials, refused", what);
        close(fd);
        return -1;
    }
    if (cred.uid != geteuid() && cred.uid != 0) {
        sim_log(SIM_LOG_WARN, "%s: peer uid %ld (pid %ld) refused", what,
                (long)cred.uid, (long)cred.pid);
        close(fd);
        return -1;
    }
    sim_log(SIM_LOG_DEBUG, "%s: peer pid %ld accepted", what, (long)cred.pid);
    return fd;
}

bool sim_sock_write_all(int fd, const void *buf, size_t len, int timeout_ms)
{
    const uint8_t *p = buf;
    uint64_t deadline = sim_now_us() + (uint64_t)timeout_ms * 1000u;

    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            p += n;
            len -= (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
            return false;
        uint64_t now = sim_now_us();
        if (now >= deadline) {
            errno = ETIMEDOUT;
            return false;
        }
        struct pollfd pfd = {.fd = fd, .events = POLLOUT};
        int ms = (int)((deadline - now + 999u) / 1000u);
        if (poll(&pfd, 1, ms) < 0 && errno != EINTR)
            return false;
    }
    return true;
}
