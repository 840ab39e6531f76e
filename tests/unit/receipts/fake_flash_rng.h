/* Fakes of port_flash (NOR flash in RAM) and port_rng (fake_flash_rng.c),
 * and port_time (fake_time.c), for the unit tests of receipts, gate and app. */
#ifndef CACHET_TEST_FAKE_FLASH_RNG_H
#define CACHET_TEST_FAKE_FLASH_RNG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FAKE_FLASH_SECTOR  512u
#define FAKE_FLASH_SECTORS 3u
#define FAKE_FLASH_SIZE    (FAKE_FLASH_SECTOR * FAKE_FLASH_SECTORS)

/* The flash contents (tests may corrupt them). */
uint8_t *fake_flash_bytes(void);
/* Back to a new board: all erased. */
void fake_flash_erase_all(void);
/* Make every flash operation fail (true) or work. */
void fake_flash_set_broken(bool broken);
/* Make port_rng_fill fail. */
void fake_rng_set_broken(bool broken);
/* The fake clock (port_time_us). */
void fake_time_set_us(uint64_t us);
void fake_time_advance_us(uint64_t us);

#endif
