/* ifd_chan: reader channels, the Lun table, enumeration, reconnection and
 * slot-change polling. */
#include "ifd_chan.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <ifdhandler.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;
static ifd_chan_t *table[IFD_MAX_LUNS];

/* pcscd's Lun: reader index << 16 | slot. One slot per reader. */
static bool lun_index(unsigned long lun, unsigned *idx)
{
    unsigned long i = lun >> 16;
    if (i >= IFD_MAX_LUNS || (lun & 0xFFFFu) != 0)
        return false;
    *idx = (unsigned)i;
    return true;
}

ifd_chan_t *ifd_chan_get(unsigned long lun)
{
    unsigned idx;
    if (!lun_index(lun, &idx))
        return NULL;
    pthread_mutex_lock(&table_lock);
    ifd_chan_t *ch = table[idx];
    if (ch)
        ch->refs++;
    pthread_mutex_unlock(&table_lock);
    return ch;
}

static void chan_free(ifd_chan_t *ch)
{
    if (ch->ops && ch->ops->close)
        ch->ops->close(ch->tctx);
    pthread_cond_destroy(&ch->ev_cv);
    pthread_mutex_destroy(&ch->ev);
    pthread_mutex_destroy(&ch->io);
    free(ch);
}

void ifd_chan_put(ifd_chan_t *ch)
{
    if (!ch)
        return;
    pthread_mutex_lock(&table_lock);
    bool last = --ch->refs == 0;
    pthread_mutex_unlock(&table_lock);
    if (last)
        chan_free(ch);
}

ifd_chan_t *ifd_chan_detach(unsigned long lun)
{
    unsigned idx;
    if (!lun_index(lun, &idx))
        return NULL;
    pthread_mutex_lock(&table_lock);
    ifd_chan_t *ch = table[idx];
    table[idx] = NULL;
    pthread_mutex_unlock(&table_lock);
    return ch;
}

static void mark_gone(ifd_chan_t *ch)
{
    if (!atomic_exchange(&ch->gone, true)) {
        atomic_store(&ch->gone_told, false);
        ifd_log("%s: device gone", ch->name);
    }
}

void ifd_chan_gone_told(ifd_chan_t *ch)
{
    atomic_store(&ch->gone_told, true);
}

/* One standard control request (USB 2.0 §9.4). */
static ifd_st_t control(ifd_chan_t *ch, uint8_t type, uint8_t req, uint16_t value, uint16_t index,
                        uint8_t *data, size_t len, size_t *got)
{
    uint8_t setup[8] = {type, req, 0, 0, 0, 0, 0, 0};
    ifd_put_le16(setup + 2, value);
    ifd_put_le16(setup + 4, index);
    ifd_put_le16(setup + 6, (uint16_t)len);
    size_t dummy;
    return ch->ops->control(ch->tctx, setup, data, len, got ? got : &dummy, IFD_TIMEOUT_CONTROL);
}

static ifd_st_t get_descriptor(ifd_chan_t *ch, uint8_t type, uint8_t index, uint16_t lang,
                               uint8_t *buf, size_t len, size_t *got)
{
    /* GET_DESCRIPTOR: device-to-host, standard, device (USB 2.0 §9.4.3). */
    return control(ch, 0x80, 0x06, (uint16_t)(type << 8 | index), lang, buf, len, got);
}

/* Reads and checks the descriptors, selects the configuration and sets up the
 * CCID session. io held (or not yet shared). */
static ifd_st_t enumerate(ifd_chan_t *ch)
{
    ifd_usb_info_t info;
    memset(&info, 0, sizeof info);
    uint8_t buf[IFD_CONFIG_MAX];
    size_t got = 0;
    ifd_st_t st = get_descriptor(ch, 1, 0, 0, buf, IFD_DEVICE_DESC_LEN, &got);
    IFD_VERIFY(st == IFD_ST_OK, st);
    st = ifd_desc_parse_device(buf, got, &info);
    IFD_VERIFY(st == IFD_ST_OK, st);

    st = get_descriptor(ch, 2, 0, 0, buf, 9, &got);
    IFD_VERIFY(st == IFD_ST_OK, st);
    size_t total;
    st = ifd_desc_config_total(buf, got, &total);
    IFD_VERIFY(st == IFD_ST_OK, st);
    st = get_descriptor(ch, 2, 0, 0, buf, total, &got);
    IFD_VERIFY(st == IFD_ST_OK, st);
    st = ifd_desc_parse_config(buf, got, &info);
    if (st != IFD_ST_OK) {
        ifd_log("%s: no usable CCID interface (%s)", ch->name, ifd_st_name(st));
        return st;
    }
    /* SET_CONFIGURATION (USB 2.0 §9.4.7). */
    st = control(ch, 0x00, 0x09, info.config_value, 0, NULL, 0, NULL);
    IFD_VERIFY(st == IFD_ST_OK, st);
    if (ch->ops->set_endpoints)
        ch->ops->set_endpoints(ch->tctx, info.ep_bulk_out, info.ep_bulk_in, info.ep_intr_in);
    if ((info.ccid.features & IFD_FEAT_LEVEL_MASK) == IFD_FEAT_LEVEL_CHAR)
        ifd_log("%s: character level reader: not supported", ch->name);
    if (info.ccid.max_slot_index != 0)
        ifd_log("%s: %u slots, only slot 0 is used", ch->name, info.ccid.max_slot_index + 1u);

    /* Manufacturer string, US English (USB 2.0 §9.6.7); optional. */
    ch->vendor[0] = '\0';
    if (info.i_manufacturer) {
        if (get_descriptor(ch, 3, info.i_manufacturer, 0x0409, buf, 255, &got) == IFD_ST_OK)
            (void)ifd_desc_string_ascii(buf, got, ch->vendor, sizeof ch->vendor);
    }
    ch->info = info;
    ifd_ccid_init(&ch->ccid, ch->ops, ch->tctx, info.ccid.max_msg_len);
    atomic_store(&ch->intr_ep, info.ep_intr_in);
    atomic_store(&ch->enumerated, true);
    return IFD_ST_OK;
}

void ifd_chan_forget_card(ifd_chan_t *ch)
{
    ch->atr_len = 0;
    ch->powered = false;
    memset(&ch->atr_info, 0, sizeof ch->atr_info);
    memset(&ch->params, 0, sizeof ch->params);
    ch->timeout_ms = 10000u;
}

bool ifd_chan_ready(ifd_chan_t *ch)
{
    if (!atomic_load(&ch->gone) && atomic_load(&ch->enumerated))
        return true;
    if (!ch->reconnectable || !ch->ops->reconnect)
        return false;
    if (ch->ops->reconnect(ch->tctx) != IFD_ST_OK)
        return false;
    ifd_st_t st = enumerate(ch);
    if (st != IFD_ST_OK) {
        /* Connected but unusable: stay "gone", retry later. */
        return false;
    }
    ifd_chan_forget_card(ch);
    atomic_store(&ch->gone, false);
    pthread_mutex_lock(&ch->ev);
    ch->slot_changed = false;
    pthread_mutex_unlock(&ch->ev);
    ifd_log("%s: device connected", ch->name);
    return true;
}

ifd_st_t ifd_chan_command(ifd_chan_t *ch, uint8_t type, const uint8_t specific[3],
                          const uint8_t *data, size_t len, uint32_t timeout_ms, ifd_rdr_msg_t *resp)
{
    ifd_st_t st = ifd_ccid_command(&ch->ccid, type, specific, data, len, timeout_ms, resp);
    if (st == IFD_ST_GONE)
        mark_gone(ch);
    else if (st != IFD_ST_OK)
        ifd_log("%s: command 0x%02x: %s", ch->name, type, ifd_st_name(st));
    return st;
}

void ifd_chan_kick(ifd_chan_t *ch)
{
    if (ch->ops->intr_wake)
        ch->ops->intr_wake(ch->tctx);
}

long ifd_chan_create(unsigned long lun, const char *name, const ifd_transport_ops_t *ops,
                     void *tctx, bool connected, bool reconnectable, uint32_t options)
{
    unsigned idx;
    if (!lun_index(lun, &idx) || !ops) {
        if (ops && ops->close)
            ops->close(tctx);
        return IFD_COMMUNICATION_ERROR;
    }
    ifd_chan_t *ch = calloc(1, sizeof *ch);
    if (!ch) {
        ops->close(tctx);
        return IFD_COMMUNICATION_ERROR;
    }
    pthread_mutex_init(&ch->io, NULL);
    pthread_mutex_init(&ch->ev, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&ch->ev_cv, &ca);
    pthread_condattr_destroy(&ca);
    ch->ops = ops;
    ch->tctx = tctx;
    ch->refs = 1;
    ch->reconnectable = reconnectable;
    ch->options = options;
    snprintf(ch->name, sizeof ch->name, "%s", name ? name : "?");
    atomic_init(&ch->gone, !connected);
    ifd_chan_forget_card(ch);

    if (connected) {
        ifd_st_t st = enumerate(ch);
        if (st != IFD_ST_OK) {
            ifd_log("%s: enumeration failed: %s", ch->name, ifd_st_name(st));
            if (!(reconnectable && st == IFD_ST_GONE)) {
                chan_free(ch);
                return st == IFD_ST_GONE ? IFD_NO_SUCH_DEVICE : IFD_COMMUNICATION_ERROR;
            }
            atomic_store(&ch->gone, true);
        }
    } else if (!reconnectable) {
        chan_free(ch);
        return IFD_NO_SUCH_DEVICE;
    } else {
        ifd_log("%s: not connected yet, will retry", ch->name);
    }

    pthread_mutex_lock(&table_lock);
    bool busy = table[idx] != NULL;
    if (!busy)
        table[idx] = ch;
    pthread_mutex_unlock(&table_lock);
    if (busy) {
        chan_free(ch);
        return IFD_COMMUNICATION_ERROR;
    }
    return IFD_SUCCESS;
}

static void ev_wait_ms(ifd_chan_t *ch, uint32_t ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += ms / 1000u;
    ts.tv_nsec += (long)(ms % 1000u) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&ch->ev);
    if (!ch->stop_pending && !ch->closing)
        (void)pthread_cond_timedwait(&ch->ev_cv, &ch->ev, &ts);
    pthread_mutex_unlock(&ch->ev);
}

/* Consumes a pending stop; true if the poll must return. */
static bool stopping(ifd_chan_t *ch)
{
    pthread_mutex_lock(&ch->ev);
    bool s = ch->stop_pending || ch->closing;
    ch->stop_pending = false;
    pthread_mutex_unlock(&ch->ev);
    return s;
}

long ifd_chan_poll(unsigned long lun, int timeout_ms)
{
    ifd_chan_t *ch = ifd_chan_get(lun);
    if (!ch)
        return IFD_COMMUNICATION_ERROR;
    uint64_t deadline = ifd_now_ms() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0);
    for (;;) {
        if (stopping(ch))
            break;
        uint64_t now = ifd_now_ms();
        if (now >= deadline)
            break;
        uint32_t left = (uint32_t)(deadline - now);
        if (atomic_load(&ch->gone) && !atomic_load(&ch->gone_told))
            break; /* let pcscd ask IFDHICCPresence and learn it first */
        if (atomic_load(&ch->gone)) {
            /* The cable is out: watch for it coming back (pcscd 1.9.9 never
             * re-creates a reader.conf channel, so the driver reconnects). */
            pthread_mutex_lock(&ch->io);
            bool back = ifd_chan_ready(ch);
            pthread_mutex_unlock(&ch->io);
            if (back)
                break;
            ev_wait_ms(ch, left < IFD_RECONNECT_PERIOD_MS ? left : IFD_RECONNECT_PERIOD_MS);
            continue;
        }
        if (atomic_load(&ch->enumerated) && atomic_load(&ch->intr_ep) == 0) {
            /* No interrupt endpoint: behave like pcscd's own 400 ms polling. */
            ev_wait_ms(ch, left < 400u ? left : 400u);
            break;
        }
        uint8_t msg[64];
        size_t got = 0;
        /* Checked and flagged under one lock: a stop either is seen here or
         * sees in_intr and wakes the transport. */
        pthread_mutex_lock(&ch->ev);
        bool stop = ch->stop_pending || ch->closing;
        ch->stop_pending = false;
        ch->in_intr = !stop;
        pthread_mutex_unlock(&ch->ev);
        if (stop)
            break;
        ifd_st_t st = ch->ops->intr_in(ch->tctx, msg, sizeof msg, &got, left);
        pthread_mutex_lock(&ch->ev);
        ch->in_intr = false;
        pthread_mutex_unlock(&ch->ev);
        if (st == IFD_ST_OK) {
            ifd_intr_msg_t m;
            if (ifd_intr_parse(msg, got, &m) != IFD_RDR_OK)
                continue; /* CCID §6.3: nothing else is defined; ignore */
            if (m.type == IFD_RDR_NOTIFY_SLOT_CHANGE) {
                pthread_mutex_lock(&ch->ev);
                if (m.slot0_state & IFD_SLOT_CHANGED)
                    ch->slot_changed = true;
                pthread_mutex_unlock(&ch->ev);
            } else {
                ifd_log("%s: hardware error 0x%02x", ch->name, m.hw_code);
            }
            break;
        }
        if (st == IFD_ST_GONE) {
            mark_gone(ch);
            break; /* pcscd asks IFDHICCPresence next: IFD_NO_SUCH_DEVICE */
        }
        if (st == IFD_ST_CANCELLED) {
            (void)stopping(ch); /* the wake was for this poll */
            break;
        }
        if (st == IFD_ST_TIMEOUT)
            break;
        /* Transport trouble: do not spin. */
        ev_wait_ms(ch, left < IFD_RECONNECT_PERIOD_MS ? left : IFD_RECONNECT_PERIOD_MS);
    }
    ifd_chan_put(ch);
    return IFD_SUCCESS;
}

long ifd_chan_stop_polling_ch(ifd_chan_t *ch)
{
    /* pcscd 1.9.9 calls this both to end the polling thread (reader
     * removal, after setting hLockId) and merely to restart the poll with
     * another timeout (SCardDisconnect, power-off grace period): so it is a
     * one-shot wake of the current poll, or of the next one if none runs. */
    pthread_mutex_lock(&ch->ev);
    ch->stop_pending = true;
    bool waiting = ch->in_intr;
    pthread_cond_broadcast(&ch->ev_cv);
    pthread_mutex_unlock(&ch->ev);
    if (waiting && ch->ops->intr_wake)
        ch->ops->intr_wake(ch->tctx);
    return IFD_SUCCESS;
}

void ifd_chan_closing(ifd_chan_t *ch)
{
    pthread_mutex_lock(&ch->ev);
    ch->closing = true;
    pthread_cond_broadcast(&ch->ev_cv);
    pthread_mutex_unlock(&ch->ev);
    if (ch->ops->intr_cancel)
        ch->ops->intr_cancel(ch->tctx);
}

long ifd_chan_stop_polling(unsigned long lun)
{
    ifd_chan_t *ch = ifd_chan_get(lun);
    if (!ch)
        return IFD_COMMUNICATION_ERROR;
    long rc = ifd_chan_stop_polling_ch(ch);
    ifd_chan_put(ch);
    return rc;
}

uint32_t ifd_chan_bundle_options(void)
{
    /* Bundle mode: .../X.bundle/Contents/Linux/libcachet-ifd.so; the options
     * live in .../X.bundle/Contents/Info.plist (as libccid's ifdDriverOptions). */
    Dl_info di;
    if (!dladdr((void *)ifd_chan_bundle_options, &di) || !di.dli_fname)
        return 0;
    const char *f = di.dli_fname;
    const char *mark = strstr(f, "/Contents/Linux/");
    if (!mark)
        return 0;
    char path[512];
    size_t base = (size_t)(mark - f) + sizeof "/Contents/" - 1;
    if (base + sizeof "Info.plist" > sizeof path)
        return 0;
    memcpy(path, f, base);
    memcpy(path + base, "Info.plist", sizeof "Info.plist");
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    static const size_t cap = 65536;
    char *text = malloc(cap);
    uint32_t opts = 0;
    if (text) {
        size_t n = 0;
        for (;;) {
            ssize_t r = read(fd, text + n, cap - n);
            if (r <= 0)
                break;
            n += (size_t)r;
            if (n == cap)
                break;
        }
        if (ifd_plist_driver_options(text, n, &opts) != IFD_ST_OK)
            opts = 0;
        free(text);
    }
    close(fd);
    return opts & IFD_OPT_ESCAPE;
}
