/* ifd_usb: the libusb-1.0 transport for a real appliance. Finds the device
 * (usb:VID:PID from reader.conf, or the bus/address pcscd's hotplug gives),
 * parses its configuration with ifd_desc (the same parser the tests and the
 * fuzzer exercise), claims the CCID interface and moves whole transfers with
 * the synchronous API. The interrupt IN read is asynchronous so that pcscd
 * can stop the polling thread (libusb_cancel_transfer). One libusb context per
 * channel: nothing shared between readers. */
#include <libusb.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "ifd_desc.h"
#include "ifd_transport.h"

typedef struct {
    pthread_mutex_t mu;
    libusb_context *ctx;
    libusb_device_handle *h;
    ifd_devname_t dev;
    int iface;
    uint8_t ep_out, ep_in, ep_intr;
    bool gone;
    bool cancelled;
    bool wake_pending;
    struct libusb_transfer *intr;
    bool intr_busy;
    int intr_done;
} usb_t;

static ifd_st_t map_err(usb_t *u, int r)
{
    switch (r) {
    case LIBUSB_SUCCESS:
        return IFD_ST_OK;
    case LIBUSB_ERROR_TIMEOUT:
        return IFD_ST_TIMEOUT;
    case LIBUSB_ERROR_PIPE:
        return IFD_ST_STALL;
    case LIBUSB_ERROR_OVERFLOW:
        return IFD_ST_OVERFLOW;
    case LIBUSB_ERROR_NO_DEVICE:
    case LIBUSB_ERROR_NOT_FOUND:
        pthread_mutex_lock(&u->mu);
        u->gone = true;
        pthread_mutex_unlock(&u->mu);
        return IFD_ST_GONE;
    default:
        return IFD_ST_PROTO;
    }
}

static bool is_gone(usb_t *u)
{
    pthread_mutex_lock(&u->mu);
    bool g = u->gone || !u->h;
    pthread_mutex_unlock(&u->mu);
    return g;
}

static ifd_st_t usb_control(void *ctx, const uint8_t setup[8], uint8_t *data, size_t cap,
                            size_t *got, uint32_t timeout_ms)
{
    usb_t *u = ctx;
    *got = 0;
    IFD_VERIFY(!is_gone(u), IFD_ST_GONE);
    uint16_t value = ifd_get_le16(setup + 2), index = ifd_get_le16(setup + 4);
    uint16_t wlength = ifd_get_le16(setup + 6);
    IFD_VERIFY(wlength <= cap || (!(setup[0] & 0x80u) && wlength == 0), IFD_ST_PARAM);
    if (setup[0] == 0x00 && setup[1] == 0x09) {
        /* SET_CONFIGURATION: done at open (the interface is claimed); only
         * a different configuration would need libusb_set_configuration. */
        int cur = 0;
        int r = libusb_get_configuration(u->h, &cur);
        IFD_VERIFY(r == 0, map_err(u, r));
        return cur == (int)value ? IFD_ST_OK : IFD_ST_UNSUPPORTED;
    }
    int r =
        libusb_control_transfer(u->h, setup[0], setup[1], value, index, data, wlength, timeout_ms);
    IFD_VERIFY(r >= 0, map_err(u, r));
    *got = (size_t)r;
    return IFD_ST_OK;
}

static ifd_st_t usb_bulk_out(void *ctx, const uint8_t *data, size_t len, uint32_t timeout_ms)
{
    usb_t *u = ctx;
    IFD_VERIFY(!is_gone(u), IFD_ST_GONE);
    IFD_VERIFY(len <= INT32_MAX, IFD_ST_PARAM);
    int done = 0;
    int r =
        libusb_bulk_transfer(u->h, u->ep_out, (unsigned char *)data, (int)len, &done, timeout_ms);
    IFD_VERIFY(r == 0, map_err(u, r));
    IFD_VERIFY((size_t)done == len, IFD_ST_PROTO);
    return IFD_ST_OK;
}

static ifd_st_t usb_bulk_in(void *ctx, uint8_t *buf, size_t cap, size_t *got, uint32_t timeout_ms)
{
    usb_t *u = ctx;
    *got = 0;
    IFD_VERIFY(!is_gone(u), IFD_ST_GONE);
    IFD_VERIFY(cap <= INT32_MAX, IFD_ST_PARAM);
    int done = 0;
    int r = libusb_bulk_transfer(u->h, u->ep_in, buf, (int)cap, &done, timeout_ms);
    IFD_VERIFY(r == 0, map_err(u, r));
    *got = (size_t)done;
    return IFD_ST_OK;
}

static void LIBUSB_CALL intr_cb(struct libusb_transfer *t)
{
    usb_t *u = t->user_data;
    u->intr_done = 1; /* read by the poller through libusb's event handling */
}

static ifd_st_t usb_intr_in(void *ctx, uint8_t *buf, size_t cap, size_t *got, uint32_t timeout_ms)
{
    usb_t *u = ctx;
    *got = 0;
    IFD_VERIFY(cap <= 64 && cap > 0, IFD_ST_PARAM);
    pthread_mutex_lock(&u->mu);
    ifd_st_t st = IFD_ST_OK;
    if (u->cancelled)
        st = IFD_ST_CANCELLED;
    else if (u->wake_pending) {
        u->wake_pending = false;
        st = IFD_ST_CANCELLED;
    } else if (u->gone || !u->h || !u->ep_intr)
        st = IFD_ST_GONE;
    if (st != IFD_ST_OK) {
        pthread_mutex_unlock(&u->mu);
        return st;
    }
    libusb_fill_interrupt_transfer(u->intr, u->h, u->ep_intr, buf, (int)cap, intr_cb, u,
                                   timeout_ms);
    u->intr_done = 0;
    int r = libusb_submit_transfer(u->intr);
    u->intr_busy = r == 0;
    pthread_mutex_unlock(&u->mu);
    IFD_VERIFY(r == 0, map_err(u, r));
    /* libusb applies the transfer timeout itself; cancel ends it early. */
    while (!u->intr_done) {
        r = libusb_handle_events_completed(u->ctx, &u->intr_done);
        if (r < 0 && r != LIBUSB_ERROR_INTERRUPTED) {
            libusb_cancel_transfer(u->intr);
        }
    }
    pthread_mutex_lock(&u->mu);
    u->intr_busy = false;
    pthread_mutex_unlock(&u->mu);
    switch (u->intr->status) {
    case LIBUSB_TRANSFER_COMPLETED:
        *got = (size_t)u->intr->actual_length;
        return IFD_ST_OK;
    case LIBUSB_TRANSFER_TIMED_OUT:
        return IFD_ST_TIMEOUT;
    case LIBUSB_TRANSFER_CANCELLED:
        return IFD_ST_CANCELLED;
    case LIBUSB_TRANSFER_NO_DEVICE:
        return map_err(u, LIBUSB_ERROR_NO_DEVICE);
    default:
        return IFD_ST_PROTO;
    }
}

static void cancel_locked(usb_t *u)
{
    if (u->intr_busy)
        libusb_cancel_transfer(u->intr);
}

static void usb_intr_cancel(void *ctx)
{
    usb_t *u = ctx;
    pthread_mutex_lock(&u->mu);
    u->cancelled = true;
    cancel_locked(u);
    pthread_mutex_unlock(&u->mu);
}

static void usb_intr_wake(void *ctx)
{
    usb_t *u = ctx;
    pthread_mutex_lock(&u->mu);
    if (u->intr_busy)
        cancel_locked(u);
    else
        u->wake_pending = true;
    pthread_mutex_unlock(&u->mu);
}

static bool matches(const usb_t *u, libusb_device *d)
{
    struct libusb_device_descriptor dd;
    if (libusb_get_device_descriptor(d, &dd) != 0)
        return false;
    if (dd.idVendor != u->dev.vid || dd.idProduct != u->dev.pid)
        return false;
    if (u->dev.bus >= 0 && libusb_get_bus_number(d) != u->dev.bus)
        return false;
    if (u->dev.addr >= 0 && libusb_get_device_address(d) != u->dev.addr)
        return false;
    return true;
}

/* Finds, opens and claims the device. */
static ifd_st_t attach(usb_t *u)
{
    libusb_device **list = NULL;
    ssize_t n = libusb_get_device_list(u->ctx, &list);
    IFD_VERIFY(n >= 0, IFD_ST_GONE);
    libusb_device_handle *h = NULL;
    int r = LIBUSB_ERROR_NO_DEVICE;
    for (ssize_t i = 0; i < n && !h; i++) {
        if (matches(u, list[i]))
            r = libusb_open(list[i], &h);
    }
    libusb_free_device_list(list, 1);
    IFD_VERIFY(h != NULL, r == LIBUSB_ERROR_ACCESS ? IFD_ST_PROTO : IFD_ST_GONE);

    /* The raw configuration, parsed by our own (fuzzed) parser. */
    uint8_t buf[IFD_CONFIG_MAX];
    ifd_usb_info_t info;
    memset(&info, 0, sizeof info);
    size_t total = 0;
    ifd_st_t st = IFD_ST_PROTO;
    r = libusb_get_descriptor(h, LIBUSB_DT_CONFIG, 0, buf, 9);
    if (r >= 0 && ifd_desc_config_total(buf, (size_t)r, &total) == IFD_ST_OK) {
        r = libusb_get_descriptor(h, LIBUSB_DT_CONFIG, 0, buf, (int)total);
        if (r >= 0)
            st = ifd_desc_parse_config(buf, (size_t)r, &info);
    }
    if (st == IFD_ST_OK && u->dev.iface >= 0 && u->dev.iface != info.iface)
        st = IFD_ST_GONE; /* another interface of a composite device */
    if (st == IFD_ST_OK) {
        int cur = 0;
        if (libusb_get_configuration(h, &cur) == 0 && cur != info.config_value)
            (void)libusb_set_configuration(h, info.config_value);
        (void)libusb_set_auto_detach_kernel_driver(h, 1);
        r = libusb_claim_interface(h, info.iface);
        if (r != 0) {
            ifd_log("usb: cannot claim interface %u: %s", info.iface, libusb_error_name(r));
            st = IFD_ST_PROTO;
        }
    }
    if (st != IFD_ST_OK) {
        libusb_close(h);
        return st;
    }
    pthread_mutex_lock(&u->mu);
    u->h = h;
    u->iface = info.iface;
    u->ep_out = info.ep_bulk_out;
    u->ep_in = info.ep_bulk_in;
    u->ep_intr = info.ep_intr_in;
    u->gone = false;
    pthread_mutex_unlock(&u->mu);
    return IFD_ST_OK;
}

static void detach(usb_t *u)
{
    pthread_mutex_lock(&u->mu);
    libusb_device_handle *h = u->h;
    u->h = NULL;
    u->gone = true;
    pthread_mutex_unlock(&u->mu);
    if (h) {
        (void)libusb_release_interface(h, u->iface);
        libusb_close(h);
    }
}

static void usb_set_endpoints(void *ctx, uint8_t bulk_out, uint8_t bulk_in, uint8_t intr_in)
{
    /* Same descriptors, same answer; keep what attach() found. */
    (void)ctx;
    (void)bulk_out;
    (void)bulk_in;
    (void)intr_in;
}

static ifd_st_t usb_reconnect(void *ctx)
{
    usb_t *u = ctx;
    if (!is_gone(u))
        return IFD_ST_OK;
    detach(u);
    return attach(u);
}

static void usb_close(void *ctx)
{
    usb_t *u = ctx;
    if (!u)
        return;
    usb_intr_cancel(u);
    detach(u);
    if (u->intr)
        libusb_free_transfer(u->intr);
    if (u->ctx)
        libusb_exit(u->ctx);
    pthread_mutex_destroy(&u->mu);
    free(u);
}

static const ifd_transport_ops_t usb_ops = {
    .name = "usb",
    .control = usb_control,
    .bulk_out = usb_bulk_out,
    .bulk_in = usb_bulk_in,
    .intr_in = usb_intr_in,
    .intr_cancel = usb_intr_cancel,
    .intr_wake = usb_intr_wake,
    .set_endpoints = usb_set_endpoints,
    .reconnect = usb_reconnect,
    .close = usb_close,
};

ifd_st_t ifd_usb_open(const ifd_devname_t *dev, const ifd_transport_ops_t **ops, void **ctx)
{
    IFD_VERIFY(dev != NULL && ops != NULL && ctx != NULL, IFD_ST_PARAM);
    IFD_VERIFY(dev->kind != IFD_DEV_SOCK, IFD_ST_PARAM);
    usb_t *u = calloc(1, sizeof *u);
    IFD_VERIFY(u != NULL, IFD_ST_NOMEM);
    pthread_mutex_init(&u->mu, NULL);
    u->dev = *dev;
    u->gone = true;
    if (libusb_init(&u->ctx) != 0 || !(u->intr = libusb_alloc_transfer(0))) {
        usb_close(u);
        return IFD_ST_NOMEM;
    }
    *ops = &usb_ops;
    *ctx = u;
    ifd_st_t st = attach(u);
    if (st != IFD_ST_OK && dev->kind != IFD_DEV_USB_ID) {
        /* Hotplug names designate one device: no retry, pcscd re-creates. */
        usb_close(u);
        *ctx = NULL;
    }
    return st;
}
