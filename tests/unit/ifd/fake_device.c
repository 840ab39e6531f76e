/* fake_device: scripted CCID appliance at the transport seam. */
#include "fake_device.h"

#include <errno.h>
#include <string.h>
#include <time.h>

#include "ifd_ccid.h"
#include "ifd_rdr.h"

static const uint8_t device_desc[18] = {0x12, 0x01, 0x00, 0x02, 0x00, 0x00, 0x00, 0x40, 0x09,
                                        0x12, 0xC7, 0xCA, 0x00, 0x01, 0x01, 0x02, 0x03, 0x01};
static const uint8_t manufacturer[] = {0x0E, 0x03, 'C', 0, 'a', 0, 'c', 0, 'h', 0, 'e', 0, 't', 0};

static void build_config(fake_t *f, uint8_t pin, uint16_t lcd)
{
    static const uint8_t head[] = {
        0x09, 0x02, 0x5D, 0x00, 0x01, 0x01, 0x00, 0x80, 0x32, /* configuration */
        0x09, 0x04, 0x00, 0x00, 0x03, 0x0B, 0x00, 0x00, 0x00, /* interface: CCID */
    };
    uint8_t ccid[54] = {
        0x36, 0x21, 0x10, 0x01, 0x00, 0x07, 0x03, 0x00, 0x00, 0x00, /* bcd, slots, volt, T=0|T=1 */
        0x88, 0x13, 0x00, 0x00,                                     /* dwDefaultClock 5000 kHz */
        0x88, 0x13, 0x00, 0x00,                                     /* dwMaximumClock */
        0x00,                                                       /* bNumClockSupported */
        0x81, 0x34, 0x00, 0x00,                                     /* dwDataRate 13441 */
        0x1C, 0x90, 0x06, 0x00,                                     /* dwMaxDataRate 430108 */
        0x00,                                                       /* bNumDataRatesSupported */
        0xFE, 0x00, 0x00, 0x00,                                     /* dwMaxIFSD 254 */
        0x00, 0x00, 0x00, 0x00,                                     /* dwSynchProtocols */
        0x00, 0x00, 0x00, 0x00,                                     /* dwMechanical */
        0x9C, 0x04, 0x02, 0x00,                                     /* dwFeatures 0x0002049C */
        0x0F, 0x01, 0x00, 0x00,                                     /* dwMaxCCIDMessageLength 271 */
        0xFF, 0xFF, /* bClassGetResponse, bClassEnvelope */
        0x00, 0x00, /* wLcdLayout */
        0x00,       /* bPINSupport */
        0x01,       /* bMaxCCIDBusySlots */
    };
    ccid[50] = (uint8_t)lcd;
    ccid[51] = (uint8_t)(lcd >> 8);
    ccid[52] = pin;
    static const uint8_t eps[] = {
        0x07, 0x05, 0x01, 0x02, 0x40, 0x00, 0x00, /* bulk OUT 0x01 */
        0x07, 0x05, 0x82, 0x02, 0x40, 0x00, 0x00, /* bulk IN 0x82 */
        0x07, 0x05, 0x83, 0x03, 0x08, 0x00, 0x10, /* interrupt IN 0x83 */
    };
    size_t o = 0;
    memcpy(f->config + o, head, sizeof head);
    o += sizeof head;
    memcpy(f->config + o, ccid, sizeof ccid);
    o += sizeof ccid;
    memcpy(f->config + o, eps, sizeof eps);
    o += sizeof eps;
    f->config_len = o;
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void wait_ms(fake_t *f, uint64_t until)
{
    struct timespec ts;
    ts.tv_sec = (time_t)(until / 1000u);
    ts.tv_nsec = (long)(until % 1000u) * 1000000L;
    (void)pthread_cond_timedwait(&f->cv, &f->mu, &ts);
}

void fake_init(fake_t *f, uint8_t pin_support, uint16_t lcd_layout)
{
    memset(f, 0, sizeof *f);
    pthread_mutex_init(&f->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&f->cv, &ca);
    pthread_condattr_destroy(&ca);
    f->plugged = true;
    f->icc = 2;
    build_config(f, pin_support, lcd_layout);
}

void fake_destroy(fake_t *f)
{
    pthread_cond_destroy(&f->cv);
    pthread_mutex_destroy(&f->mu);
}

static void push(fake_msg_t *q, unsigned *head, unsigned *count, const uint8_t *msg, size_t len,
                 uint64_t ready)
{
    if (*count == FAKE_QUEUE || len > FAKE_MSG_MAX)
        return;
    fake_msg_t *m = &q[(*head + *count) % FAKE_QUEUE];
    memcpy(m->msg, msg, len);
    m->len = len;
    m->ready_at_ms = ready;
    (*count)++;
}

void fake_push_bulk(fake_t *f, const uint8_t *msg, size_t len, uint32_t delay_ms)
{
    pthread_mutex_lock(&f->mu);
    push(f->bulk, &f->bulk_head, &f->bulk_count, msg, len, now_ms() + delay_ms);
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
}

void fake_push_intr(fake_t *f, const uint8_t *msg, size_t len)
{
    pthread_mutex_lock(&f->mu);
    push(f->intr, &f->intr_head, &f->intr_count, msg, len, 0);
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
}

void fake_unplug(fake_t *f)
{
    pthread_mutex_lock(&f->mu);
    f->gone = true;
    f->plugged = false;
    f->bulk_count = f->intr_count = 0;
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
}

void fake_plug(fake_t *f)
{
    pthread_mutex_lock(&f->mu);
    f->plugged = true;
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
}

void fake_set_card(fake_t *f, uint8_t icc, const uint8_t *atr, size_t atr_len)
{
    pthread_mutex_lock(&f->mu);
    f->icc = icc;
    if (atr) {
        memcpy(f->atr, atr, atr_len);
        f->atr_len = atr_len;
    }
    pthread_mutex_unlock(&f->mu);
}

const uint8_t *fake_last_cmd(fake_t *f, uint8_t type, size_t *len)
{
    const uint8_t *r = NULL;
    pthread_mutex_lock(&f->mu);
    unsigned n = f->cmd_count < FAKE_CMDS ? f->cmd_count : FAKE_CMDS;
    for (unsigned i = n; i-- > 0;) {
        if (f->cmd[i][0] == type) {
            r = f->cmd[i];
            *len = f->cmd_len[i];
            break;
        }
    }
    pthread_mutex_unlock(&f->mu);
    return r;
}

static ifd_st_t fake_control(void *ctx, const uint8_t setup[8], uint8_t *data, size_t cap,
                             size_t *got, uint32_t timeout_ms)
{
    fake_t *f = ctx;
    (void)timeout_ms;
    *got = 0;
    pthread_mutex_lock(&f->mu);
    ifd_st_t st = IFD_ST_OK;
    f->control_calls++;
    uint16_t wlength = (uint16_t)(setup[6] | setup[7] << 8);
    const uint8_t *src = NULL;
    size_t n = 0;
    if (f->gone) {
        st = IFD_ST_GONE;
    } else if (setup[0] == 0x80 && setup[1] == 0x06) {
        switch (setup[3]) {
        case 1:
            src = device_desc;
            n = sizeof device_desc;
            break;
        case 2:
            src = f->config;
            n = f->config_len;
            break;
        case 3:
            if (setup[2] == 1) {
                src = manufacturer;
                n = sizeof manufacturer;
            } else {
                st = IFD_ST_STALL;
            }
            break;
        default:
            st = IFD_ST_STALL;
        }
    } else if (setup[0] == 0x00 && setup[1] == 0x09) {
        f->set_config_value = setup[2];
    } else {
        st = IFD_ST_STALL;
    }
    if (src) {
        if (n > wlength)
            n = wlength;
        if (n > cap)
            n = cap;
        memcpy(data, src, n);
        *got = n;
    }
    pthread_mutex_unlock(&f->mu);
    return st;
}

static void answer(fake_t *f, uint8_t type, uint8_t seq, uint8_t status, uint8_t error,
                   uint8_t specific, const uint8_t *data, size_t len, uint32_t delay)
{
    uint8_t m[FAKE_MSG_MAX];
    m[0] = type;
    m[1] = (uint8_t)len;
    m[2] = (uint8_t)(len >> 8);
    m[3] = m[4] = 0;
    m[5] = 0;
    m[6] = seq;
    m[7] = status;
    m[8] = error;
    m[9] = specific;
    if (len)
        memcpy(m + 10, data, len);
    push(f->bulk, &f->bulk_head, &f->bulk_count, m, 10 + len, now_ms() + delay);
}

static ifd_st_t fake_bulk_out(void *ctx, const uint8_t *data, size_t len, uint32_t timeout_ms)
{
    fake_t *f = ctx;
    (void)timeout_ms;
    pthread_mutex_lock(&f->mu);
    if (f->gone) {
        pthread_mutex_unlock(&f->mu);
        return IFD_ST_GONE;
    }
    if (f->cmd_count < FAKE_CMDS && len <= FAKE_MSG_MAX) {
        memcpy(f->cmd[f->cmd_count], data, len);
        f->cmd_len[f->cmd_count] = len;
    }
    f->cmd_count++;
    uint8_t type = data[0], seq = data[6];
    uint8_t icc = f->icc;
    if (type == IFD_PC_XFR_BLOCK && f->gone_on_xfr) {
        f->gone = true;
        f->plugged = false;
        pthread_cond_broadcast(&f->cv);
        pthread_mutex_unlock(&f->mu);
        return IFD_ST_OK; /* the command left; the answer never comes */
    }
    if (f->silent) {
        pthread_mutex_unlock(&f->mu);
        return IFD_ST_OK;
    }
    if (f->fail_type == type) {
        uint8_t st = (uint8_t)(0x40u | icc);
        answer(f, ifd_ccid_answer_type(type), seq, st, f->fail_error, 0, NULL, 0, 0);
        if (f->fail_once)
            f->fail_type = 0;
        pthread_cond_broadcast(&f->cv);
        pthread_mutex_unlock(&f->mu);
        return IFD_ST_OK;
    }
    uint32_t delay = 0;
    switch (type) {
    case IFD_PC_ICC_POWER_ON:
        if (icc == 2) {
            answer(f, IFD_RDR_DATA_BLOCK, seq, 0x42, IFD_ERR_ICC_MUTE, 0, NULL, 0, 0);
        } else {
            f->icc = 0;
            answer(f, IFD_RDR_DATA_BLOCK, seq, 0x00, 0, 0, f->atr, f->atr_len, 0);
        }
        break;
    case IFD_PC_ICC_POWER_OFF:
        if (icc == 0)
            f->icc = 1;
        answer(f, IFD_RDR_SLOT_STATUS, seq, f->icc, 0, 0, NULL, 0, 0);
        break;
    case IFD_PC_GET_SLOT_STATUS:
        answer(f, IFD_RDR_SLOT_STATUS, seq, icc, 0, 0, NULL, 0, 0);
        break;
    case IFD_PC_XFR_BLOCK:
    case IFD_PC_SECURE: /* the holder typed the PIN: the card's answer */
    case IFD_PC_SET_PARAMETERS:
    case IFD_PC_ESCAPE:
        for (int i = 0; i < f->time_extensions; i++) {
            delay += f->time_ext_gap_ms;
            answer(f, ifd_ccid_answer_type(type), seq, (uint8_t)(0x80u | icc), 1, 0, NULL, 0,
                   delay);
        }
        f->time_extensions = 0;
        delay += f->time_ext_gap_ms;
        if (type == IFD_PC_XFR_BLOCK || type == IFD_PC_SECURE)
            answer(f, IFD_RDR_DATA_BLOCK, seq, icc, 0, 0, f->xfr_reply, f->xfr_reply_len, delay);
        else if (type == IFD_PC_ESCAPE)
            answer(f, IFD_RDR_ESCAPE, seq, icc, 0, 0, data + 10, len - 10, delay);
        else
            answer(f, IFD_RDR_PARAMETERS, seq, icc, 0, data[7], data + 10, len - 10, delay);
        break;
    default:
        answer(f, ifd_ccid_answer_type(type), seq, 0x40u | icc, 0 /* CMD_NOT_SUPPORTED */, 0, NULL,
               0, 0);
        break;
    }
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
    return IFD_ST_OK;
}

static ifd_st_t wait_pop(fake_t *f, fake_msg_t *q, unsigned *head, unsigned *count, bool intr,
                         uint8_t *buf, size_t cap, size_t *got, uint32_t timeout_ms)
{
    uint64_t deadline = now_ms() + timeout_ms;
    ifd_st_t st;
    pthread_mutex_lock(&f->mu);
    for (;;) {
        if (intr && f->cancelled) {
            st = IFD_ST_CANCELLED;
            break;
        }
        if (intr && f->wake) {
            f->wake = false;
            st = IFD_ST_CANCELLED;
            break;
        }
        if (f->gone) {
            st = IFD_ST_GONE;
            break;
        }
        uint64_t now = now_ms();
        if (*count && q[*head].ready_at_ms <= now) {
            fake_msg_t *m = &q[*head];
            *head = (*head + 1) % FAKE_QUEUE;
            (*count)--;
            if (m->len > cap) {
                st = IFD_ST_OVERFLOW;
            } else {
                memcpy(buf, m->msg, m->len);
                *got = m->len;
                st = IFD_ST_OK;
            }
            break;
        }
        if (now >= deadline) {
            st = IFD_ST_TIMEOUT;
            break;
        }
        uint64_t until = deadline;
        if (*count && q[*head].ready_at_ms < until)
            until = q[*head].ready_at_ms;
        wait_ms(f, until);
    }
    pthread_mutex_unlock(&f->mu);
    return st;
}

static ifd_st_t fake_bulk_in(void *ctx, uint8_t *buf, size_t cap, size_t *got, uint32_t timeout_ms)
{
    fake_t *f = ctx;
    *got = 0;
    return wait_pop(f, f->bulk, &f->bulk_head, &f->bulk_count, false, buf, cap, got, timeout_ms);
}

static ifd_st_t fake_intr_in(void *ctx, uint8_t *buf, size_t cap, size_t *got, uint32_t timeout_ms)
{
    fake_t *f = ctx;
    *got = 0;
    return wait_pop(f, f->intr, &f->intr_head, &f->intr_count, true, buf, cap, got, timeout_ms);
}

static void fake_intr_cancel(void *ctx)
{
    fake_t *f = ctx;
    pthread_mutex_lock(&f->mu);
    f->cancelled = true;
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
}

static void fake_intr_wake(void *ctx)
{
    fake_t *f = ctx;
    pthread_mutex_lock(&f->mu);
    f->wake = true;
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
}

static ifd_st_t fake_reconnect(void *ctx)
{
    fake_t *f = ctx;
    pthread_mutex_lock(&f->mu);
    ifd_st_t st = IFD_ST_GONE;
    if (!f->gone) {
        st = IFD_ST_OK;
    } else if (f->plugged) {
        f->gone = false;
        f->reconnects++;
        f->icc = f->atr_len ? 1 : 2; /* the card stays, unpowered */
        st = IFD_ST_OK;
    }
    pthread_mutex_unlock(&f->mu);
    return st;
}

static void fake_close(void *ctx)
{
    (void)ctx; /* the test owns the fake */
}

const ifd_transport_ops_t fake_ops = {
    .name = "fake",
    .control = fake_control,
    .bulk_out = fake_bulk_out,
    .bulk_in = fake_bulk_in,
    .intr_in = fake_intr_in,
    .intr_cancel = fake_intr_cancel,
    .intr_wake = fake_intr_wake,
    .set_endpoints = NULL,
    .reconnect = fake_reconnect,
    .close = fake_close,
};
