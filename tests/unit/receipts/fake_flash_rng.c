/* See fake_flash_rng.h. */
#include "fake_flash_rng.h"

#include <string.h>

#include "port_flash.h"
#include "port_rng.h"

static uint8_t fake_flash[FAKE_FLASH_SIZE];
static bool fake_flash_ready, fake_flash_broken, fake_rng_broken;

static void fake_flash_init(void)
{
    if (!fake_flash_ready) {
        memset(fake_flash, 0xFF, sizeof fake_flash);
        fake_flash_ready = true;
    }
}

uint8_t *fake_flash_bytes(void)
{
    fake_flash_init();
    return fake_flash;
}

void fake_flash_erase_all(void)
{
    memset(fake_flash, 0xFF, sizeof fake_flash);
    fake_flash_ready = true;
}

void fake_flash_set_broken(bool broken)
{
    fake_flash_broken = broken;
}

void fake_rng_set_broken(bool broken)
{
    fake_rng_broken = broken;
}

uint32_t port_flash_sector_size(void)
{
    return FAKE_FLASH_SECTOR;
}

uint32_t port_flash_sectors(void)
{
    return FAKE_FLASH_SECTORS;
}

port_status_t port_flash_read(uint32_t off, uint8_t *buf, size_t len)
{
    fake_flash_init();
    if (fake_flash_broken || len > FAKE_FLASH_SIZE || off > FAKE_FLASH_SIZE - len)
        return PORT_ERROR;
    memcpy(buf, fake_flash + off, len);
    return PORT_OK;
}

port_status_t port_flash_erase(uint32_t sector)
{
    fake_flash_init();
    if (fake_flash_broken || sector >= FAKE_FLASH_SECTORS)
        return PORT_ERROR;
    memset(fake_flash + sector * FAKE_FLASH_SECTOR, 0xFF, FAKE_FLASH_SECTOR);
    return PORT_OK;
}

port_status_t port_flash_write(uint32_t off, const uint8_t *buf, size_t len)
{
    fake_flash_init();
    if (fake_flash_broken || len > FAKE_FLASH_SIZE || off > FAKE_FLASH_SIZE - len)
        return PORT_ERROR;
    for (size_t i = 0; i < len; i++)
        fake_flash[off + i] &= buf[i]; /* NOR: only clears bits */
    return PORT_OK;
}

port_status_t port_rng_fill(uint8_t *buf, size_t len)
{
    static uint32_t x = 0x2545F491u;
    if (fake_rng_broken)
        return PORT_ERROR;
    for (size_t i = 0; i < len; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        buf[i] = (uint8_t)x;
    }
    return PORT_OK;
}
