/* app: the appliance's top level, see app.h. Wires icc, the usb core and the
 * ccid class driver together and turns card presence changes into CCID slot
 * notifications. ui, gate and receipts join here later. */
#include "app.h"

#include <stdbool.h>

#include "ccid.h"
#include "icc.h"
#include "usb.h"

static bool app_card_present;

void app_init(void)
{
    icc_init();
    ccid_init(); /* after icc_init: installs the time extension hook */
    usb_init(ccid_usb_descriptors(), ccid_usb_class());
    /* The first NotifySlotChange goes out when the host configures us. */
    app_card_present = icc_present();
}

void app_poll(void)
{
    bool present = icc_present();
    if (present != app_card_present) {
        app_card_present = present;
        /* A removal also powers the slot off (ccid_slot_changed). */
        ccid_slot_changed(present);
    }
    ccid_poll();
}
