/* port_board: facts about the board itself that the firmware reports to the host.
 * Contract: callable from thread context and ISRs; never blocks. */
#ifndef CACHET_PORT_SERIAL_NUMBER_H
#define CACHET_PORT_SERIAL_NUMBER_H

/* The board's serial number as a NUL-terminated ASCII string (USB 2.0 §9.6.1
 * iSerialNumber, shown by the host as the reader's serial). Stable for the
 * life of the board; the pointer stays valid forever. */
const char *port_board_serial(void);

#endif
