/* board/posix/sim_flash.c: the flash file behaves as NOR flash (erase to
 * 0xFF, programming only clears bits), survives a close/reopen (a restart of
 * cachet-sim), a short file is padded with 0xFF, and accesses outside the
 * region fail. With the real receipts module: the device key and counter
 * survive a restart. */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "port_flash.h"
#include "receipts.h"
#include "sim.h"

void sim_log(sim_log_level_t level, const char *fmt, ...)
{
    (void)level;
    (void)fmt;
}

static char dir[512], path[600];

static int setup(void **st)
{
    (void)st;
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/cachet-flash-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/flash.bin", dir);
    return 0;
}

static int teardown(void **st)
{
    (void)st;
    sim_flash_close();
    unlink(path);
    rmdir(dir);
    return 0;
}

static void test_nor_and_restart(void **st)
{
    (void)st;
    assert_true(sim_flash_open(path));
    uint32_t size = port_flash_sector_size() * port_flash_sectors();
    assert_true(port_flash_sectors() >= 3 && port_flash_sector_size() >= 256);
    uint8_t b[4];
    assert_int_equal(port_flash_read(0, b, 4), PORT_OK);
    assert_int_equal(b[0] & b[1] & b[2] & b[3], 0xFF);
    uint8_t v1[2] = {0xF0, 0x3C}, v2[2] = {0x0F, 0xFF};
    assert_int_equal(port_flash_write(10, v1, 2), PORT_OK);
    assert_int_equal(port_flash_write(10, v2, 2), PORT_OK);
    assert_int_equal(port_flash_read(10, b, 2), PORT_OK);
    assert_int_equal(b[0], 0x00); /* F0 & 0F */
    assert_int_equal(b[1], 0x3C);
    /* Restart: still there. */
    sim_flash_close();
    assert_true(sim_flash_open(path));
    assert_int_equal(port_flash_read(10, b, 2), PORT_OK);
    assert_int_equal(b[1], 0x3C);
    assert_int_equal(port_flash_erase(0), PORT_OK);
    assert_int_equal(port_flash_read(10, b, 2), PORT_OK);
    assert_int_equal(b[0], 0xFF);
    /* Out of the region. */
    assert_int_equal(port_flash_read(size - 1, b, 2), PORT_ERROR);
    assert_int_equal(port_flash_write(size, v1, 1), PORT_ERROR);
    assert_int_equal(port_flash_erase(port_flash_sectors()), PORT_ERROR);
    assert_int_equal(port_flash_read(UINT32_MAX, b, 2), PORT_ERROR);
}

static void test_short_file_padded(void **st)
{
    (void)st;
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "\x01\x02", 2), 2);
    close(fd);
    assert_true(sim_flash_open(path));
    uint8_t b[4];
    assert_int_equal(port_flash_read(0, b, 4), PORT_OK);
    assert_int_equal(b[0], 0x01);
    assert_int_equal(b[2], 0xFF);
}

static void test_receipts_survive_restart(void **st)
{
    (void)st;
    assert_true(sim_flash_open(path));
    assert_int_equal(receipts_init(), RECEIPTS_OK);
    assert_true(receipts_device_flags() & RECEIPTS_DEV_KEY_NEW);
    uint8_t k1[CRYPTO_P256_SPKI_LEN], k2[CRYPTO_P256_SPKI_LEN], d[32] = {1}, disp[32] = {2};
    size_t n = 0;
    assert_int_equal(receipts_public_key(k1, sizeof k1, &n), RECEIPTS_OK);
    receipts_event_t ev = {.key_ref = 0x81, .digest = d, .digest_len = 32, .display_sha256 = disp};
    uint32_t c = 0;
    assert_int_equal(receipts_issue(&ev, &c), RECEIPTS_OK);
    assert_int_equal(c, 1);
    sim_flash_close();
    assert_true(sim_flash_open(path));
    assert_int_equal(receipts_init(), RECEIPTS_OK);
    assert_int_equal(receipts_device_flags(), 0);
    assert_int_equal(receipts_public_key(k2, sizeof k2, &n), RECEIPTS_OK);
    assert_memory_equal(k1, k2, sizeof k1);
    assert_int_equal(receipts_issue(&ev, &c), RECEIPTS_OK);
    assert_int_equal(c, 2);
    /* A damaged file: a new key, said loudly. */
    sim_flash_close();
    int fd = open(path, O_WRONLY);
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, "\x00\x00\x00", 3, 20), 3);
    close(fd);
    assert_true(sim_flash_open(path));
    assert_int_equal(receipts_init(), RECEIPTS_OK);
    assert_true(receipts_device_flags() & RECEIPTS_DEV_FLASH_CORRUPT);
    assert_int_equal(receipts_public_key(k2, sizeof k2, &n), RECEIPTS_OK);
    assert_memory_not_equal(k1, k2, sizeof k1);
    assert_int_equal(receipts_counter(), 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_nor_and_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(test_short_file_padded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_receipts_survive_restart, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
