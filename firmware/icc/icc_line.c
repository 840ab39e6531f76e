/* icc_line: the I/O line with statistics, guard times and long timeouts; see
 * icc_line.h. Only this file (and icc.c for the contacts) calls port_icc_*. */
#include "icc_line.h"

#include "fw_util.h"
#include "port_icc.h"
#include "port_time.h"

#define ICC_US_PER_S 1000000u

static struct {
    icc_stats_t stats;
    uint64_t turnaround_us;
    uint64_t last_rx_us;
    bool rx_seen;
    bool hook_called;  /* the wait hook ran in the current exchange */
    uint64_t last_hook_us;
} line;

static icc_status_t icc_line_map(port_status_t st)
{
    switch (st) {
    case PORT_OK:
        return ICC_OK;
    case PORT_TIMEOUT:
        return ICC_ERR_MUTE;
    case PORT_ABSENT:
        return ICC_ERR_ABSENT;
    case PORT_ERROR:
    default:
        return ICC_ERR_PARITY; /* character error the line could not recover */
    }
}

void icc_line_reset(void)
{
    fw_memset(&line, 0, sizeof line);
}

void icc_line_delay_us(uint64_t us)
{
    uint64_t start = port_time_us();
    while (port_time_us() - start < us) {
        /* port_time_us is monotonic (port_time.h) */
    }
}

void icc_line_set_turnaround(uint64_t us)
{
    line.turnaround_us = us;
}

void icc_line_forget_rx(void)
{
    line.rx_seen = false;
}

icc_status_t icc_line_send(const uint8_t *buf, size_t len)
{
    FW_VERIFY(buf != NULL || len == 0, ICC_ERR_BAD_PARAM);
    if (len == 0)
        return ICC_OK;
    if (line.rx_seen && line.turnaround_us != 0) {
        uint64_t now = port_time_us();
        uint64_t due = line.last_rx_us + line.turnaround_us;
        if (now < due)
            icc_line_delay_us(due - now);
    }
    uint64_t t = port_time_us();
    port_status_t st = port_icc_send(buf, len);
    line.stats.wire_us += port_time_us() - t;
    if (st == PORT_OK)
        line.stats.chars_sent += (uint32_t)len;
    return icc_line_map(st);
}

icc_status_t icc_line_recv(uint8_t *byte, uint64_t timeout_us)
{
    FW_VERIFY(byte != NULL, ICC_ERR_BAD_PARAM);
    uint64_t t = port_time_us();
    uint64_t left = timeout_us;
    port_status_t st;
    /* port_icc_recv takes 32-bit microseconds (~71 min); BWT with a large
     * WTX multiplier can exceed that, so wait in slices. */
    do {
        uint32_t slice = left > UINT32_MAX ? UINT32_MAX : (uint32_t)left;
        st = port_icc_recv(byte, slice);
        left -= slice;
    } while (st == PORT_TIMEOUT && left > 0);
    uint64_t now = port_time_us();
    line.stats.wire_us += now - t;
    if (st == PORT_OK) {
        line.stats.chars_recv++;
        line.last_rx_us = now;
        line.rx_seen = true;
    }
    return icc_line_map(st);
}

icc_status_t icc_line_drain(uint64_t silence_us, size_t max_chars)
{
    for (size_t i = 0; i < max_chars; i++) {
        uint8_t b;
        icc_status_t st = icc_line_recv(&b, silence_us);
        if (st == ICC_ERR_MUTE)
            return ICC_OK;
        if (st == ICC_ERR_ABSENT)
            return st;
    }
    return ICC_OK;
}

void icc_line_count_apdu(void)
{
    line.stats.apdus++;
}

void icc_line_get_stats(icc_stats_t *out)
{
    if (out != NULL)
        *out = line.stats;
}

/* ceil(a * b / c) with saturation (c > 0). */
static uint64_t icc_muldiv_ceil(uint64_t a, uint64_t b, uint64_t c)
{
    if (a != 0 && b > UINT64_MAX / a)
        return UINT64_MAX / 2; /* longer than any real waiting time */
    uint64_t p = a * b;
    return p / c + (p % c != 0);
}

uint64_t icc_etu_us(uint64_t n, uint16_t f, uint8_t d, uint32_t clock_hz)
{
    /* §7.1: etu = F / (D * f) seconds. */
    uint64_t den = (uint64_t)(d != 0 ? d : 1u) *
                   (clock_hz != 0 ? clock_hz : ICC_DEFAULT_CLOCK_HZ);
    return icc_muldiv_ceil(n, (uint64_t)f * ICC_US_PER_S, den);
}

uint64_t icc_clocks_us(uint64_t n, uint32_t clock_hz)
{
    return icc_muldiv_ceil(n, ICC_US_PER_S,
                           clock_hz != 0 ? clock_hz : ICC_DEFAULT_CLOCK_HZ);
}

void icc_line_wait_begin(void)
{
    line.hook_called = false;
}

void icc_line_wait_notify(icc_wait_hook_t hook, void *ctx, bool force)
{
    uint64_t now = port_time_us();
    if (!force && line.hook_called &&
        now - line.last_hook_us < ICC_WAIT_HOOK_PERIOD_US)
        return;
    line.hook_called = true;
    line.last_hook_us = now;
    if (hook != NULL)
        hook(ctx);
}
