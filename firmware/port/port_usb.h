/* port_usb: the device side of the USB controller, seen by firmware/usb.
 *
 * Direction of calls: the board calls the usb core's usb_on_* event functions
 * (firmware/usb/usb.h) when something arrives from the host; the core answers
 * through the functions below. On real hardware the ISR only queues events and
 * the main loop calls usb_on_*; so none of these is called from an ISR.
 *
 * Transfers are whole transfers (the board splits them into max-packet-size
 * packets and ends them with a short or zero-length packet as USB 2.0 §5.8.3
 * requires). */
#ifndef CACHET_PORT_USB_H
#define CACHET_PORT_USB_H

#include <stddef.h>
#include <stdint.h>

#include "port_status.h"

/* Ends the control transfer in progress: data stage IN with len bytes (len may
 * be 0 for a status-only answer). Exactly one of ep0_reply/ep0_stall per setup. */
port_status_t port_usb_ep0_reply(const uint8_t *data, size_t len);

/* Ends the control transfer in progress with a STALL (request not supported). */
void port_usb_ep0_stall(void);

/* Device address assigned by SET_ADDRESS (applied after the status stage). */
void port_usb_set_address(uint8_t addr);

/* Queues one IN transfer on endpoint ep (0x80 | n). Blocks until the board has
 * accepted it (the host polled it, or it is buffered), at most the board's own
 * bounded time. PORT_ABSENT when the device is detached. */
port_status_t port_usb_write(uint8_t ep, const uint8_t *data, size_t len);

#endif
