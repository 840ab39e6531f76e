/* ifd_util: clock, status names and the driver's one-line log. */
#include "ifd_util.h"

#include <stdarg.h>
#include <stdio.h>
#include <time.h>

uint64_t ifd_now_ms(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
        return 0;
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

const char *ifd_st_name(ifd_st_t st)
{
    switch (st) {
    case IFD_ST_OK:
        return "ok";
    case IFD_ST_TIMEOUT:
        return "timeout";
    case IFD_ST_GONE:
        return "device gone";
    case IFD_ST_STALL:
        return "stall";
    case IFD_ST_PROTO:
        return "protocol error";
    case IFD_ST_CANCELLED:
        return "cancelled";
    case IFD_ST_OVERFLOW:
        return "overflow";
    case IFD_ST_PARAM:
        return "bad parameter";
    case IFD_ST_NOMEM:
        return "out of memory";
    case IFD_ST_UNSUPPORTED:
        return "unsupported";
    }
    return "?";
}

/* The sink is set once by an embedding program or a test before any channel
 * exists; an atomic pointer keeps concurrent readers well defined. */
static _Atomic(ifd_log_sink_t) log_sink;

void ifd_log_set_sink(ifd_log_sink_t sink)
{
    log_sink = sink;
}

void ifd_log(const char *fmt, ...)
{
    char line[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    ifd_log_sink_t sink = log_sink;
    if (sink) {
        sink(line);
        return;
    }
    /* pcscd -f shows its stderr; a single fputs keeps the line whole. */
    char out[280];
    snprintf(out, sizeof out, "cachet-ifd: %s\n", line);
    fputs(out, stderr);
}
