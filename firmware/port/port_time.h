/* port_time: the board's monotonic clock.
 * Contract: callable from thread context and ISRs; never blocks. */
#ifndef CACHET_PORT_TIME_H
#define CACHET_PORT_TIME_H

#include <stdint.h>

/* Microseconds since boot, monotonic, wraps after ~584000 years. */
uint64_t port_time_us(void);

#endif
