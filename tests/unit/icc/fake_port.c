/* fake_port: see fake_port.h. Test code: stdio and assert are fine here. */
#include "fake_port.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "port_icc.h"
#include "port_time.h"

#define FAKE_OPS_MAX 512
#define FAKE_POOL_MAX 65536
#define FAKE_RXQ_MAX 8192
#define FAKE_TXLOG_MAX 16384

typedef enum { OP_WAIT_RST, OP_EXPECT, OP_REPLY, OP_REMOVE } fake_op_kind_t;

typedef struct {
    fake_op_kind_t kind;
    size_t off, len; /* bytes in pool (EXPECT, REPLY) */
} fake_op_t;

static struct {
    fake_op_t ops[FAKE_OPS_MAX];
    size_t nops, cursor, matched;
    uint8_t pool[FAKE_POOL_MAX];
    uint32_t pool_delay[FAKE_POOL_MAX]; /* delay before each reply byte */
    bool pool_bad[FAKE_POOL_MAX];       /* byte arrives with a parity error */
    size_t pool_len;
    uint8_t rxq[FAKE_RXQ_MAX];
    uint64_t rxq_delay[FAKE_RXQ_MAX];
    bool rxq_bad[FAKE_RXQ_MAX];
    size_t rx_head, rx_len;
    bool rst_event;
    bool remove_pending;
    bool present, vcc, rst, inverse;
    uint32_t clock;
    uint16_t f;
    uint8_t d, n;
    uint64_t now;
    char error[256];
    char events[4096];
    uint8_t txlog[FAKE_TXLOG_MAX];
    size_t txlog_len;
} fk;

static void fake_fail(const char *msg)
{
    if (fk.error[0] == '\0')
        snprintf(fk.error, sizeof fk.error, "%s", msg);
}

static void fake_event(const char *name, unsigned long v)
{
    size_t used = strlen(fk.events);
    if (used + 64 >= sizeof fk.events)
        return;
    snprintf(fk.events + used, sizeof fk.events - used, "%s%lu ", name, v);
}

void fake_reset(void)
{
    memset(&fk, 0, sizeof fk);
    fk.present = true;
    fk.f = 372;
    fk.d = 1;
}

static fake_op_t *fake_add(fake_op_kind_t kind)
{
    if (fk.nops >= FAKE_OPS_MAX) {
        fprintf(stderr, "fake_port: script too long\n");
        abort();
    }
    fake_op_t *op = &fk.ops[fk.nops++];
    op->kind = kind;
    op->off = fk.pool_len;
    op->len = 0;
    return op;
}

static void fake_pool_put(fake_op_t *op, uint8_t b, uint32_t delay, bool bad)
{
    if (fk.pool_len >= FAKE_POOL_MAX) {
        fprintf(stderr, "fake_port: pool full\n");
        abort();
    }
    fk.pool[fk.pool_len] = b;
    fk.pool_delay[fk.pool_len] = delay;
    fk.pool_bad[fk.pool_len] = bad;
    fk.pool_len++;
    op->len++;
}

static void fake_advance(void);

void fake_on_rst(void)
{
    fake_add(OP_WAIT_RST);
}

void fake_expect(const uint8_t *p, size_t n)
{
    fake_op_t *op = fake_add(OP_EXPECT);
    for (size_t i = 0; i < n; i++)
        fake_pool_put(op, p[i], 0, false);
}

void fake_reply(const uint8_t *p, size_t n)
{
    fake_op_t *op = fake_add(OP_REPLY);
    for (size_t i = 0; i < n; i++)
        fake_pool_put(op, p[i], 0, false);
    fake_advance();
}

static void fake_hex(fake_op_t *op, const char *hex)
{
    uint32_t delay = 0;
    bool bad = false;
    const char *s = hex;
    while (*s) {
        while (*s == ' ')
            s++;
        if (*s == '\0')
            break;
        char *end;
        if (*s == '+') {
            delay = (uint32_t)strtoul(s + 1, &end, 10);
        } else if (*s == '!') {
            bad = true;
            end = (char *)s + 1;
        } else {
            unsigned long v = strtoul(s, &end, 16);
            if (end == s || v > 0xFF) {
                fprintf(stderr, "fake_port: bad hex '%s'\n", hex);
                abort();
            }
            fake_pool_put(op, (uint8_t)v, delay, bad);
            delay = 0;
            bad = false;
        }
        s = end;
    }
}

void fake_expect_hex(const char *hex)
{
    fake_hex(fake_add(OP_EXPECT), hex);
}

void fake_reply_hex(const char *hex)
{
    fake_hex(fake_add(OP_REPLY), hex);
    fake_advance();
}

void fake_remove(void)
{
    fake_add(OP_REMOVE);
    fake_advance();
}

void fake_set_present(bool present)
{
    fk.present = present;
}

static void fake_rx_push(uint8_t b, uint64_t delay, bool bad)
{
    if (fk.rx_len >= FAKE_RXQ_MAX) {
        fprintf(stderr, "fake_port: rx queue full\n");
        abort();
    }
    size_t i = (fk.rx_head + fk.rx_len) % FAKE_RXQ_MAX;
    fk.rxq[i] = b;
    fk.rxq_delay[i] = delay;
    fk.rxq_bad[i] = bad;
    fk.rx_len++;
}

/* Runs the steps that need nothing from the reader. */
static void fake_advance(void)
{
    while (fk.cursor < fk.nops) {
        fake_op_t *op = &fk.ops[fk.cursor];
        switch (op->kind) {
        case OP_WAIT_RST:
            if (!fk.rst_event)
                return;
            fk.rst_event = false;
            break;
        case OP_EXPECT:
            if (fk.matched < op->len)
                return;
            fk.matched = 0;
            break;
        case OP_REPLY:
            for (size_t i = 0; i < op->len; i++)
                fake_rx_push(fk.pool[op->off + i], fk.pool_delay[op->off + i],
                             fk.pool_bad[op->off + i]);
            break;
        case OP_REMOVE:
            fk.remove_pending = true;
            break;
        }
        fk.cursor++;
    }
}

bool fake_done(void)
{
    fake_advance();
    return fk.cursor == fk.nops && fk.error[0] == '\0';
}

const char *fake_error(void)
{
    if (fk.error[0] != '\0')
        return fk.error;
    if (fk.cursor != fk.nops) {
        static char msg[128];
        snprintf(msg, sizeof msg, "script stopped at step %zu of %zu (matched %zu)",
                 fk.cursor, fk.nops, fk.matched);
        return msg;
    }
    return NULL;
}

uint64_t fake_now(void) { return fk.now; }
bool fake_vcc(void) { return fk.vcc; }
bool fake_rst(void) { return fk.rst; }
uint32_t fake_clock(void) { return fk.clock; }
uint16_t fake_f(void) { return fk.f; }
uint8_t fake_d(void) { return fk.d; }
uint8_t fake_n(void) { return fk.n; }
bool fake_inverse(void) { return fk.inverse; }
const char *fake_events(void) { return fk.events; }

const uint8_t *fake_tx_log(size_t *n)
{
    *n = fk.txlog_len;
    return fk.txlog;
}

/* 12 etu per character at the timing in force (ISO/IEC 7816-3 §7.1). */
static uint64_t fake_char_us(void)
{
    if (fk.clock == 0 || fk.d == 0)
        return 0;
    return (uint64_t)12 * fk.f * 1000000u / ((uint64_t)fk.d * fk.clock);
}

/* ---- port_time.h ---- */

uint64_t port_time_us(void)
{
    return fk.now++; /* every look at the clock takes a microsecond */
}

/* ---- port_icc.h ---- */

bool port_icc_present(void)
{
    return fk.present;
}

static void fake_card_silenced(void)
{
    fk.rx_head = 0;
    fk.rx_len = 0;
}

void port_icc_vcc(bool on)
{
    fake_event("vcc", on);
    fk.vcc = on;
    if (!on)
        fake_card_silenced();
}

void port_icc_rst(bool high)
{
    fake_event("rst", high);
    if (!high) {
        fk.rst_event = false;
        fake_card_silenced();
    } else if (!fk.rst && fk.vcc && fk.clock != 0) {
        fk.rst_event = true;
        fake_advance();
    }
    fk.rst = high;
}

void port_icc_clock(uint32_t hz)
{
    fake_event("clk", hz);
    fk.clock = hz;
}

void port_icc_set_timing(uint16_t f, uint8_t d, uint8_t extra_guard_etu)
{
    size_t used = strlen(fk.events);
    if (used + 64 < sizeof fk.events)
        snprintf(fk.events + used, sizeof fk.events - used, "timing%u/%u/%u ",
                 (unsigned)f, (unsigned)d, (unsigned)extra_guard_etu);
    fk.f = f;
    fk.d = d;
    fk.n = extra_guard_etu;
}

void port_icc_set_convention(bool inverse)
{
    fake_event("conv", inverse);
    fk.inverse = inverse;
}

port_status_t port_icc_send(const uint8_t *buf, size_t len)
{
    if (!fk.present)
        return PORT_ABSENT;
    for (size_t i = 0; i < len; i++) {
        if (fk.txlog_len < FAKE_TXLOG_MAX)
            fk.txlog[fk.txlog_len++] = buf[i];
        fake_advance();
        fake_op_t *op = fk.cursor < fk.nops ? &fk.ops[fk.cursor] : NULL;
        if (op == NULL || op->kind != OP_EXPECT) {
            char msg[96];
            snprintf(msg, sizeof msg, "unexpected byte %02X from the reader (tx #%zu)",
                     buf[i], fk.txlog_len - 1);
            fake_fail(msg);
            continue;
        }
        uint8_t want = fk.pool[op->off + fk.matched];
        if (want != buf[i]) {
            char msg[128];
            snprintf(msg, sizeof msg,
                     "step %zu byte %zu: expected %02X, reader sent %02X (tx #%zu)",
                     fk.cursor, fk.matched, want, buf[i], fk.txlog_len - 1);
            fake_fail(msg);
        }
        fk.matched++;
        fake_advance();
    }
    fk.now += len * fake_char_us();
    return PORT_OK;
}

port_status_t port_icc_recv(uint8_t *byte, uint32_t timeout_us)
{
    if (!fk.present)
        return PORT_ABSENT;
    if (fk.rx_len > 0) {
        uint64_t d = fk.rxq_delay[fk.rx_head];
        if (d > timeout_us) {
            fk.rxq_delay[fk.rx_head] = d - timeout_us;
            fk.now += timeout_us;
            return PORT_TIMEOUT;
        }
        fk.now += d + fake_char_us();
        *byte = fk.rxq[fk.rx_head];
        bool bad = fk.rxq_bad[fk.rx_head];
        fk.rx_head = (fk.rx_head + 1) % FAKE_RXQ_MAX;
        fk.rx_len--;
        return bad ? PORT_ERROR : PORT_OK;
    }
    if (fk.remove_pending) {
        fk.present = false;
        return PORT_ABSENT;
    }
    fk.now += timeout_us;
    return PORT_TIMEOUT;
}

void port_icc_flush(void)
{
    fake_card_silenced();
}
