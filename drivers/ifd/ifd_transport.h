/* ifd_transport: how the CCID host reaches the device's endpoints. One ops
 * table per kind of cable: libusb (usb:VID:PID and pcscd's hotplug names) and
 * the simulation's Unix socket (sock:PATH, docs/simulation.md §1). Tests plug
 * a scripted fake in the same place.
 *
 * Threads: control, bulk_out and bulk_in are called by one thread at a time
 * (the channel's I/O lock); intr_in is called by the polling thread
 * concurrently with them; intr_cancel and close may come from any thread.
 * Once a transport reports IFD_ST_GONE every call returns IFD_ST_GONE until a
 * successful reconnect. */
#ifndef CACHET_IFD_TRANSPORT_H
#define CACHET_IFD_TRANSPORT_H

#include <stddef.h>
#include <stdint.h>

#include "ifd_util.h"

typedef struct {
    const char *name;
    /* One control transfer (USB 2.0 §9.3). setup is the 8-byte SETUP packet;
     * for OUT requests (bmRequestType bit 7 = 0) data[0..wLength) is the data
     * stage; for IN requests up to cap bytes are stored in data and *got set.
     * IFD_ST_STALL when the device refused it. */
    ifd_st_t (*control)(void *ctx, const uint8_t setup[8], uint8_t *data, size_t cap, size_t *got,
                        uint32_t timeout_ms);
    /* One whole bulk OUT transfer. */
    ifd_st_t (*bulk_out)(void *ctx, const uint8_t *data, size_t len, uint32_t timeout_ms);
    /* Waits up to timeout_ms for one whole bulk IN transfer. A transfer
     * longer than cap: IFD_ST_OVERFLOW (the transfer is consumed). */
    ifd_st_t (*bulk_in)(void *ctx, uint8_t *buf, size_t cap, size_t *got, uint32_t timeout_ms);
    /* Waits up to timeout_ms for one interrupt IN transfer: IFD_ST_TIMEOUT,
     * IFD_ST_CANCELLED after intr_cancel, IFD_ST_GONE. */
    ifd_st_t (*intr_in)(void *ctx, uint8_t *buf, size_t cap, size_t *got, uint32_t timeout_ms);
    /* Wakes intr_in waiters (and makes later calls return at once) with
     * IFD_ST_CANCELLED. Sticky: the channel is about to be closed. */
    void (*intr_cancel)(void *ctx);
    /* Makes the intr_in call in progress, or else the next one, return
     * IFD_ST_CANCELLED once, so the poller looks at the slot again. */
    void (*intr_wake)(void *ctx);
    /* Tells the transport the endpoints found in the descriptors (optional:
     * NULL when the transport finds them itself). */
    void (*set_endpoints)(void *ctx, uint8_t bulk_out, uint8_t bulk_in, uint8_t intr_in);
    /* Re-opens the same device after IFD_ST_GONE (NULL: not possible; the OS
     * hotplug will re-create the channel instead). Must not block long. */
    ifd_st_t (*reconnect)(void *ctx);
    /* Releases everything; ctx is invalid afterwards. */
    void (*close)(void *ctx);
} ifd_transport_ops_t;

/* A parsed DEVICENAME (pcscd reader.conf or hotplug). */
typedef enum {
    IFD_DEV_SOCK,        /* sock:PATH */
    IFD_DEV_USB_ID,      /* usb:VVVV:PPPP (reader.conf) */
    IFD_DEV_USB_LIBUDEV, /* usb:VVVV/PPPP:libudev:IF:/dev/bus/usb/BBB/DDD (pcscd hotplug) */
    IFD_DEV_USB_LIBUSB,  /* usb:VVVV/PPPP:libusb-1.0:BUS:ADDR:IF (pcscd hotplug, libusb build) */
} ifd_dev_kind_t;

#define IFD_DEV_PATH_MAX 108u /* sun_path */

/* Driver options (bit values as libccid's ifdDriverOptions). */
#define IFD_OPT_ESCAPE 0x0001u /* IOCTL_SMARTCARD_VENDOR_IFD_EXCHANGE allowed */

typedef struct {
    ifd_dev_kind_t kind;
    char path[IFD_DEV_PATH_MAX]; /* sock: socket path */
    uint16_t vid, pid;
    int bus, addr, iface; /* -1 when not given */
    uint32_t options;     /* from a trailing "@escape" */
} ifd_devname_t;

/* Parses a DEVICENAME. Options follow the last '@' as '@'-separated words;
 * only "escape" is known (unknown words: IFD_ST_PARAM, deny by default). */
ifd_st_t ifd_devname_parse(const char *name, ifd_devname_t *out);

/* Reads ifdDriverOptions ("0x0001" = IFD_OPT_ESCAPE, as libccid) from the
 * text of a bundle's Info.plist. IFD_ST_PROTO if the key is absent or bad. */
ifd_st_t ifd_plist_driver_options(const char *text, size_t len, uint32_t *opts);

/* Opens the transport a DEVICENAME asks for. */
ifd_st_t ifd_transport_open(const ifd_devname_t *dev, const ifd_transport_ops_t **ops, void **ctx);

/* Socket transport (docs/simulation.md §1), also used directly by tests.
 * When the socket cannot be reached yet it still returns the transport
 * (*ops, *ctx set) with IFD_ST_GONE: reconnect() retries. */
ifd_st_t ifd_sock_open(const char *path, const ifd_transport_ops_t **ops, void **ctx);
/* libusb transport. */
ifd_st_t ifd_usb_open(const ifd_devname_t *dev, const ifd_transport_ops_t **ops, void **ctx);

#endif
