/* app: the appliance's top level. Wires usb + ccid + icc (and later ui, gate,
 * receipts) together. The board's main loop calls app_init() once, then
 * app_poll() whenever something may have happened (an event was delivered to
 * usb_on_*, the card presence changed, a key was pressed, or at least every
 * APP_POLL_PERIOD_US). */
#ifndef CACHET_APP_H
#define CACHET_APP_H

#define APP_POLL_PERIOD_US 10000u

void app_init(void);
void app_poll(void);

#endif
