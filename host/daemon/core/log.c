/* log: cachetd's log, one line per event ("<UTC time> cachetd[pid]: text") to
 * --log FILE (appended) or stderr. Lines are written with one write(2) each so
 * that threads never interleave inside a line. Callers never pass secrets. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cachetd.h"

static int log_fd = 2;
static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;

bool cachetd_log_open(const char *path)
{
    if (path == NULL || path[0] == '\0') {
        log_fd = 2;
        return true;
    }
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOCTTY, 0600);
    if (fd < 0)
        return false;
    log_fd = fd;
    return true;
}

void cachetd_log_close(void)
{
    pthread_mutex_lock(&log_mu);
    if (log_fd > 2)
        close(log_fd);
    log_fd = 2;
    pthread_mutex_unlock(&log_mu);
}

void cachetd_log(const char *fmt, ...)
{
    char line[1024];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof line,
                     "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ cachetd[%ld]: ", tm.tm_year + 1900,
                     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     ts.tv_nsec / 1000000L, (long)getpid());
    if (n < 0)
        return;
    size_t used = (size_t)n < sizeof line ? (size_t)n : sizeof line - 1;
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + used, sizeof line - used, fmt, ap);
    va_end(ap);
    if (m < 0)
        return;
    used += (size_t)m < sizeof line - used ? (size_t)m : sizeof line - used - 1;
    /* One line: control characters from outside (names, paths) are flattened. */
    for (size_t i = 0; i < used; i++)
        if ((unsigned char)line[i] < 0x20)
            line[i] = ' ';
    line[used++] = '\n';
    pthread_mutex_lock(&log_mu);
    size_t off = 0;
    while (off < used) {
        ssize_t w = write(log_fd, line + off, used - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break;
        off += (size_t)w;
    }
    pthread_mutex_unlock(&log_mu);
}

void cachetd_wipe(void *p, size_t n)
{
    if (p != NULL && n > 0)
        explicit_bzero(p, n);
}
