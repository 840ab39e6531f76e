/* port_ui: the appliance's display (4 lines x 21 characters) and keypad.
 * Contract: thread context only; never blocks. */
#ifndef CACHET_PORT_UI_H
#define CACHET_PORT_UI_H

#include <stdint.h>

#define PORT_UI_LINES 4
#define PORT_UI_COLUMNS 21

/* Keys as the keypad reports them. */
typedef enum {
    PORT_KEY_NONE = 0,
    PORT_KEY_0 = '0', /* '0'..'9' are the digits */
    PORT_KEY_OK = 'K',
    PORT_KEY_CANCEL = 'C',
    PORT_KEY_CLEAR = 'X',
} port_key_t;

/* Shows the screen: lines of UTF-8 text, at most PORT_UI_COLUMNS characters each.
 * name is the screen's stable identifier ("idle", "pin-entry", ...). */
void port_ui_show(const char *name, const char *const lines[PORT_UI_LINES]);

/* Next key pressed since the last call, or PORT_KEY_NONE. */
port_key_t port_ui_key(void);

/* Waits up to timeout_us for a key (PORT_KEY_NONE on timeout). Blocking: on the
 * device it sleeps until the keypad interrupt; on board/posix it keeps serving
 * the control channel meanwhile (screen and key commands). Not ISR-safe. */
port_key_t port_ui_wait_key(uint32_t timeout_us);

#endif
