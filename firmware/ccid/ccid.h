/* ccid: the CCID rev 1.1 class driver for the appliance's one slot. Owns the
 * USB descriptors of the device (§5.1 class descriptor), the bulk message
 * state machine (§6.1/§6.2: one command at a time, the ABORT sequence of
 * §5.3.1), the class requests (§5.3), time extensions (§6.2.7) while the card
 * asks for time, and RDR_to_PC_NotifySlotChange (§6.3.1) on the interrupt pipe.
 * It drives the card through icc.h and answers through port_usb.h.
 *
 * Single instance, module-level state (no heap). Thread context only. */
#ifndef CACHET_CCID_H
#define CACHET_CCID_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "icc.h"
#include "usb.h"

/* Endpoints of the CCID interface (§3: bulk OUT, bulk IN, interrupt IN). */
#define CCID_EP_BULK_OUT 0x01u
#define CCID_EP_BULK_IN  0x82u
#define CCID_EP_INTR_IN  0x83u
#define CCID_INTERFACE   0u

/* Class-specific requests (§5.3, Table 5.3-1). */
#define CCID_REQ_ABORT                 0x01u
#define CCID_REQ_GET_CLOCK_FREQUENCIES 0x02u
#define CCID_REQ_GET_DATA_RATES        0x03u

/* Shortest interval between two time extensions for one command: a card that
 * sends NULL procedure bytes back to back must not flood the bulk IN pipe. */
#define CCID_TIME_EXT_MIN_US 100000u

/* Resets the driver and installs its wait hook in icc (call after icc_init). */
void ccid_init(void);

/* The device's descriptors (device, configuration, strings: the serial from
 * port_board_serial()) and the class ops, for usb_init(). */
const usb_descriptors_t *ccid_usb_descriptors(void);
const usb_class_ops_t *ccid_usb_class(void);

/* The class ops themselves (usb_class_ops_t, usb.h). */
void ccid_on_reset(void);
void ccid_on_configured(void);
bool ccid_on_request(const usb_setup_t *setup, const uint8_t *data, size_t len);
void ccid_on_out(uint8_t ep, const uint8_t *data, size_t len);

/* The card was inserted (present) or removed: a removal powers the slot
 * off; either queues RDR_to_PC_NotifySlotChange (sent once configured). */
void ccid_slot_changed(bool present);

/* Retries a notification the interrupt pipe did not take. Never blocks
 * beyond port_usb_write's own bound. */
void ccid_poll(void);

/* ---- vendor hooks (issue 5: the gate, firmware/gate) ----
 * Installed by app after ccid_init; NULL (the default) or a NULL member keeps
 * the plain reader. xfr replaces icc_transceive for PC_to_RDR_XfrBlock (same
 * contract; it may block while the holder decides: the ui wait hook sends
 * time extensions). escape runs PC_to_RDR_Escape whose abData[0] is
 * CCID_ESCAPE_VENDOR_CLASS, with in = abData + 1 (contract of the Escape
 * table in ccid.c). card_reset is told whenever the card is reset, powered
 * off or removed, and on bus reset. */
#define CCID_ESCAPE_VENDOR_CLASS 0xCAu
typedef struct {
    icc_status_t (*xfr)(const uint8_t *capdu, size_t clen, uint8_t *rapdu, size_t rcap,
                        size_t *rlen);
    bool (*escape)(const uint8_t *in, size_t in_len, uint8_t *out, size_t cap, size_t *out_len,
                   uint8_t *error);
    void (*card_reset)(void);
} ccid_vendor_hooks_t;
void ccid_set_vendor_hooks(const ccid_vendor_hooks_t *hooks);

#endif
