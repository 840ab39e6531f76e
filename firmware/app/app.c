/* app: the appliance's top level, see app.h. Wires icc, the usb core and the
 * ccid class driver together and turns card presence changes into CCID slot
 * notifications; the gate (firmware/gate) sits between CCID and the card, with
 * the receipts' device key loaded at boot. */
#include "app.h"

#include <stdbool.h>

#include "ccid.h"
#include "gate.h"
#include "icc.h"
#include "receipts.h"
#include "ui.h"
#include "usb.h"

static bool app_card_present;

/* The gate sits between CCID and the card (XfrBlock, vendor Escape). */
static const ccid_vendor_hooks_t app_vendor_hooks = {
    .xfr = gate_transceive,
    .escape = gate_escape,
    .card_reset = gate_card_reset,
};

void app_init(void)
{
    icc_init();
    ui_init();
    ccid_init(); /* after icc_init and ui_init: installs the time extension hooks */
    /* Device key from flash (made on first boot), then the gate. A board
     * without a key still works as a reader: receipts are then unavailable. */
    (void)receipts_init();
    gate_init();
    ccid_set_vendor_hooks(&app_vendor_hooks);
    usb_init(ccid_usb_descriptors(), ccid_usb_class());
    /* The first NotifySlotChange goes out when the host configures us. */
    app_card_present = icc_present();
    ui_show_idle(app_card_present);
    /* The device key had to be replaced (damaged flash): say so on the
     * screen too, not only in GET_DEVICE_INFO (docs/appliance.md). */
    if (receipts_device_flags() & RECEIPTS_DEV_FLASH_CORRUPT)
        ui_show_error("Clé de l'appareil", "renouvelée");
}

void app_poll(void)
{
    bool present = icc_present();
    if (present != app_card_present) {
        app_card_present = present;
        /* A removal also powers the slot off (ccid_slot_changed). */
        ccid_slot_changed(present);
        ui_show_idle(present);
    }
    ccid_poll();
    ui_poll();
}
