/* icc_fuzz_port: see icc_fuzz_port.h. */
#include "icc_fuzz_port.h"

#include "port_icc.h"
#include "port_time.h"

#define FUZZ_ESC 0xFDu

static struct {
    const uint8_t *atr;
    size_t atr_len, atr_pos;
    bool atr_pending;
    const uint8_t *stream;
    size_t stream_len, pos;
    bool escapes;
    bool present, vcc, rst;
    uint32_t clock;
    uint64_t now;
    size_t sent;
} fp;

void icc_fuzz_port_reset(const uint8_t *atr, size_t atr_len,
                         const uint8_t *stream, size_t stream_len, bool escapes)
{
    fp.atr = atr;
    fp.atr_len = atr_len;
    fp.atr_pos = 0;
    fp.atr_pending = false;
    fp.stream = stream;
    fp.stream_len = stream_len;
    fp.pos = 0;
    fp.escapes = escapes;
    fp.present = true;
    fp.vcc = false;
    fp.rst = false;
    fp.clock = 0;
    fp.now = 0;
    fp.sent = 0;
}

size_t icc_fuzz_port_sent(void)
{
    return fp.sent;
}

uint64_t port_time_us(void)
{
    return fp.now++;
}

bool port_icc_present(void)
{
    return fp.present;
}

void port_icc_vcc(bool on)
{
    fp.vcc = on;
    if (!on)
        fp.atr_pending = false;
}

void port_icc_rst(bool high)
{
    if (high && !fp.rst && fp.vcc) {
        fp.atr_pending = true;
        fp.atr_pos = 0;
    }
    if (!high)
        fp.atr_pending = false;
    fp.rst = high;
}

void port_icc_clock(uint32_t hz)
{
    fp.clock = hz;
}

void port_icc_set_timing(uint16_t f, uint8_t d, uint8_t extra_guard_etu)
{
    (void)f;
    (void)d;
    (void)extra_guard_etu;
}

void port_icc_set_convention(bool inverse)
{
    (void)inverse;
}

port_status_t port_icc_send(const uint8_t *buf, size_t len)
{
    (void)buf;
    if (!fp.present)
        return PORT_ABSENT;
    fp.sent += len;
    fp.now += len * 900u;
    return PORT_OK;
}

port_status_t port_icc_recv(uint8_t *byte, uint32_t timeout_us)
{
    if (!fp.present)
        return PORT_ABSENT;
    if (fp.atr_pending && fp.atr_pos < fp.atr_len) {
        *byte = fp.atr[fp.atr_pos++];
        fp.now += 900u;
        return PORT_OK;
    }
    fp.atr_pending = false;
    while (fp.pos < fp.stream_len) {
        uint8_t b = fp.stream[fp.pos++];
        if (fp.escapes && b == FUZZ_ESC) {
            uint8_t cmd = fp.pos < fp.stream_len ? fp.stream[fp.pos++] : 1u;
            if (cmd == 1) {
                fp.now += timeout_us;
                return PORT_TIMEOUT;
            }
            if (cmd == 2) {
                fp.present = false;
                return PORT_ABSENT;
            }
            if (cmd != 0)
                continue; /* unknown command: ignored */
        }
        *byte = b;
        fp.now += 900u;
        return PORT_OK;
    }
    fp.now += timeout_us;
    return PORT_TIMEOUT;
}

void port_icc_flush(void)
{
}
