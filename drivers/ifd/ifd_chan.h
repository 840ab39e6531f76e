/* ifd_chan: one reader channel (what pcscd calls a Lun) and the per-Lun
 * table, the driver's only global state. A channel owns its transport, the
 * CCID session, what the descriptors said, and the card state (ATR, powered,
 * parameters). It enumerates the device (GET_DESCRIPTOR, SET_CONFIGURATION),
 * reconnects a re-plugged cable, and runs the slot-change polling pcscd's
 * event thread calls (TAG_IFD_POLLING_THREAD_WITH_TIMEOUT).
 *
 * Locks: `io` serialises CCID exchanges and the card state (pcscd already
 * serialises IFDH calls per reader, except the polling function); `ev` guards
 * the notification state (leaf lock). Channels are reference-counted under
 * the table lock so that a close never frees a channel another thread uses. */
#ifndef CACHET_IFD_CHAN_H
#define CACHET_IFD_CHAN_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "ifd_atr.h"
#include "ifd_ccid.h"
#include "ifd_desc.h"
#include "ifd_transport.h"

#define IFD_MAX_LUNS 16u /* pcsc-lite's PCSCLITE_MAX_READERS_CONTEXTS */
#define IFD_NAME_MAX 64u

/* Timeouts (ms) of commands that do not involve the card's waiting times. */
#define IFD_TIMEOUT_CONTROL 2000u
#define IFD_TIMEOUT_STATUS  3000u
#define IFD_TIMEOUT_POWER   10000u
#define IFD_TIMEOUT_ESCAPE  30000u
/* While the device is gone the poller retries to connect at this period. */
#define IFD_RECONNECT_PERIOD_MS 250u

typedef struct ifd_chan {
    pthread_mutex_t io;
    const ifd_transport_ops_t *ops;
    void *tctx;
    char name[IFD_NAME_MAX]; /* DEVICENAME for the log */
    uint32_t options;        /* IFD_OPT_* */
    bool reconnectable;
    atomic_bool gone;      /* the transport said IFD_ST_GONE */
    atomic_bool gone_told; /* ... and pcscd heard IFD_NO_SUCH_DEVICE since */

    /* From the descriptors (valid once enumerated; info under io). */
    atomic_bool enumerated;
    _Atomic uint8_t intr_ep; /* copy of info.ep_intr_in for the poller */
    ifd_usb_info_t info;
    char vendor[IFD_NAME_MAX];
    ifd_ccid_t ccid;

    /* Card state (io lock). */
    uint8_t atr[IFD_ATR_MAX];
    size_t atr_len;
    ifd_atr_t atr_info;
    bool powered;
    ifd_params_t params;
    uint32_t timeout_ms; /* XfrBlock timeout for the current parameters */

    /* Slot notifications (ev lock). */
    pthread_mutex_t ev;
    pthread_cond_t ev_cv;
    bool stop_pending; /* one-shot wake of the poller (TAG_IFD_STOP_POLLING_THREAD) */
    bool closing;      /* sticky: the channel is being closed */
    bool in_intr;      /* the poller is inside ops->intr_in */
    bool slot_changed; /* a NotifySlotChange said "changed" since the last presence check */

    /* Table lock. */
    unsigned refs;
} ifd_chan_t;

/* Creates a channel over an open transport (tctx may be not connected yet:
 * gone), enumerates the device if connected, and registers it under lun.
 * Returns an IFD_* response code. The transport is owned by the channel from
 * here on, also on failure. */
long ifd_chan_create(unsigned long lun, const char *name, const ifd_transport_ops_t *ops,
                     void *tctx, bool connected, bool reconnectable, uint32_t options);

/* Looks up lun and takes a reference (NULL if none). */
ifd_chan_t *ifd_chan_get(unsigned long lun);
/* Drops a reference; the last one closes the transport and frees. */
void ifd_chan_put(ifd_chan_t *ch);
/* Unregisters lun; returns the channel with the table's reference moved to
 * the caller (NULL if none). */
ifd_chan_t *ifd_chan_detach(unsigned long lun);

/* IFDHICCPresence told pcscd the device is gone: from now on the poller
 * waits for it to come back instead of returning at once. */
void ifd_chan_gone_told(ifd_chan_t *ch);

/* With io held: make sure the device is there, reconnecting (and
 * re-enumerating) a reconnectable transport. False: the device is gone. */
bool ifd_chan_ready(ifd_chan_t *ch);

/* With io held: one CCID command, marking the channel gone on IFD_ST_GONE. */
ifd_st_t ifd_chan_command(ifd_chan_t *ch, uint8_t type, const uint8_t specific[3],
                          const uint8_t *data, size_t len, uint32_t timeout_ms,
                          ifd_rdr_msg_t *resp);

/* Forgets the card (ATR, powered, parameters). io held. */
void ifd_chan_forget_card(ifd_chan_t *ch);

/* Makes the poller return so pcscd re-reads the slot state. */
void ifd_chan_kick(ifd_chan_t *ch);

/* The polling function given to pcscd: blocks up to timeout_ms until a slot
 * change notification arrives, the device goes or comes back, or polling is
 * stopped. Always IFD_SUCCESS except for an unknown lun. */
long ifd_chan_poll(unsigned long lun, int timeout_ms);
/* Makes the current poll return, or the next one if none runs
 * (TAG_IFD_STOP_POLLING_THREAD; one-shot, see ifd_chan.c). */
long ifd_chan_stop_polling(unsigned long lun);
long ifd_chan_stop_polling_ch(ifd_chan_t *ch);
/* The channel is closing: every poll returns at once from now on. */
void ifd_chan_closing(ifd_chan_t *ch);

/* Reads the bundle's Info.plist driver options (bundle mode); 0 if none. */
uint32_t ifd_chan_bundle_options(void);

#endif
