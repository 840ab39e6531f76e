/* sim_log: cachet-sim's log, one line per event with a UTC timestamp, each line
 * written with a single write() so lines from several processes sharing the
 * file (O_APPEND) never interleave. */
#include "sim.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int log_fd = STDERR_FILENO;
static bool log_owned;
static bool log_debug;
static bool log_trace;

bool sim_log_open(const char *path, bool debug, bool trace)
{
    log_debug = debug || trace;
    log_trace = trace;
    if (path == NULL)
        return true;
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0)
        return false;
    log_fd = fd;
    log_owned = true;
    return true;
}

void sim_log_close(void)
{
    if (log_owned)
        close(log_fd);
    log_fd = STDERR_FILENO;
    log_owned = false;
}

bool sim_log_debug_enabled(void)
{
    return log_debug;
}

static void log_vline(sim_log_level_t level, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

static void log_vline(sim_log_level_t level, const char *fmt, va_list ap)
{
    static const char *const names[] = {"error", "warn", "info", "debug"};
    char line[1024];
    struct timespec ts;
    struct tm tm;
    int saved = errno;

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof line,
                     "%04d-%02d-%02dT%02d:%02d:%02d.%06ldZ cachet-sim[%ld] %s: ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                     tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000L, (long)getpid(),
                     names[level]);
    if (n < 0 || (size_t)n >= sizeof line)
        n = 0;
    vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    size_t len = strlen(line);
    if (len > sizeof line - 2)
        len = sizeof line - 2;
    line[len++] = '\n';
    ssize_t w = write(log_fd, line, len);
    (void)w; /* nothing sensible to do if the log itself fails */
    errno = saved;
}

void sim_log(sim_log_level_t level, const char *fmt, ...)
{
    if (level == SIM_LOG_DEBUG && !log_debug)
        return;
    va_list ap;
    va_start(ap, fmt);
    log_vline(level, fmt, ap);
    va_end(ap);
}

void sim_log_hex(const char *what, const uint8_t *data, size_t len)
{
    static const char hex[] = "0123456789ABCDEF";
    char buf[3 * 64 + 8];
    size_t shown = len > 64 ? 64 : len;
    size_t p = 0;

    if (!log_debug)
        return;
    if (!log_trace) {
        sim_log(SIM_LOG_DEBUG, "%s (%zu bytes)", what, len);
        return;
    }
    for (size_t i = 0; i < shown; i++) {
        buf[p++] = hex[data[i] >> 4];
        buf[p++] = hex[data[i] & 0x0f];
        buf[p++] = ' ';
    }
    if (shown < len) {
        memcpy(buf + p, "...", 3);
        p += 3;
    }
    buf[p] = '\0';
    sim_log(SIM_LOG_DEBUG, "%s (%zu): %s", what, len, buf);
}
