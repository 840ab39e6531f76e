/* port_flash: the board's persistent storage for firmware data (the receipts
 * module's device key and counter), seen as NOR flash: a region of
 * port_flash_sectors() sectors of port_flash_sector_size() bytes. Erasing a
 * sector sets all its bytes to 0xFF; programming can only clear bits (the
 * result is old AND new), so a byte is written once between two erases.
 * board/posix keeps the region in a file (cachet-sim --flash FILE).
 *
 * Contract: thread context only, not ISR-safe. Every call blocks until the
 * operation is complete (an erase: tens of ms on the device; a program: about
 * 16 us per 32-bit word on the STM32F405); nothing is cached: after
 * port_flash_write returned PORT_OK the bytes survive a power loss. Offsets
 * and lengths are in bytes from the start of the region; an access outside it
 * returns PORT_ERROR without touching anything. */
#ifndef CACHET_PORT_FLASH_H
#define CACHET_PORT_FLASH_H

#include <stddef.h>
#include <stdint.h>

#include "port_status.h"

/* Sector size in bytes (a power of two, at least 256). Never blocks. */
uint32_t port_flash_sector_size(void);

/* Number of sectors in the region (at least 3). Never blocks. */
uint32_t port_flash_sectors(void);

/* Reads len bytes at off. PORT_ERROR when the range is outside the region or
 * the storage failed. */
port_status_t port_flash_read(uint32_t off, uint8_t *buf, size_t len);

/* Erases sector number sector (all bytes 0xFF). */
port_status_t port_flash_erase(uint32_t sector);

/* Programs len bytes at off: each byte becomes old & new. PORT_ERROR when the
 * range is outside the region or the storage failed. */
port_status_t port_flash_write(uint32_t off, const uint8_t *buf, size_t len);

#endif
