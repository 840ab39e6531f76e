/* port_trust_stub: STUBS of port_flash and port_rng for board/stm32, so that
 * the gate, receipts and mbedTLS link for the target (and their size shows).
 * Nothing is stored and no randomness exists yet: receipts_init finds no key
 * and cannot make one, so the appliance works as a reader without receipts.
 * Replace with drivers for the STM32F405's flash interface (RM0090 §3: sectors
 * 2-3, 16 KB each, as the data region) and its RNG peripheral (RM0090 §24). */
#include <stddef.h>
#include <stdint.h>

#include "port_flash.h"
#include "port_rng.h"

/* ---- port_flash: FLASH_CR/FLASH_SR programming, not driven yet ---- */

uint32_t port_flash_sector_size(void)
{
    return 16384u;
}

uint32_t port_flash_sectors(void)
{
    return 3u;
}

port_status_t port_flash_read(uint32_t off, uint8_t *buf, size_t len)
{
    (void)off;
    (void)buf;
    (void)len;
    return PORT_ERROR;
}

port_status_t port_flash_erase(uint32_t sector)
{
    (void)sector;
    return PORT_ERROR;
}

port_status_t port_flash_write(uint32_t off, const uint8_t *buf, size_t len)
{
    (void)off;
    (void)buf;
    (void)len;
    return PORT_ERROR;
}

/* ---- port_rng: RNG_CR/RNG_SR/RNG_DR, not driven yet ---- */

port_status_t port_rng_fill(uint8_t *buf, size_t len)
{
    (void)buf;
    (void)len;
    return PORT_ERROR;
}
