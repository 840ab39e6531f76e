/* firmware/receipts with the real crypto (Debian's mbedTLS) over a fake NOR
 * flash: first boot makes a key, a restart finds it, the counter survives and
 * never goes back, a damaged key record means a new key (flagged), receipts
 * verify with the device key and a tampered one does not. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "crypto.h"
#include "fake_flash_rng.h"
#include "receipts.h"

static int setup(void **st)
{
    (void)st;
    fake_flash_erase_all();
    fake_flash_set_broken(false);
    fake_rng_set_broken(false);
    return 0;
}

static void pubkey(uint8_t pub[65])
{
    uint8_t spki[CRYPTO_P256_SPKI_LEN];
    size_t n = 0;
    assert_int_equal(receipts_public_key(spki, sizeof spki, &n), RECEIPTS_OK);
    assert_int_equal(n, CRYPTO_P256_SPKI_LEN);
    memcpy(pub, spki + 26, 65);
}

static bool receipt_verifies(const uint8_t *r, size_t len, const uint8_t pub[65])
{
    if (len < RECEIPTS_BODY_LEN + 1u || r[RECEIPTS_BODY_LEN] + RECEIPTS_BODY_LEN + 1u != len)
        return false;
    uint8_t h[32];
    assert_int_equal(crypto_sha256(r, RECEIPTS_BODY_LEN, h), CRYPTO_OK);
    return crypto_p256_verify(pub, h, r + RECEIPTS_BODY_LEN + 1u, r[RECEIPTS_BODY_LEN]) ==
           CRYPTO_OK;
}

static uint32_t issue(uint8_t fill)
{
    uint8_t d[32], disp[32];
    memset(d, fill, sizeof d);
    memset(disp, 0xD0, sizeof disp);
    receipts_event_t ev = {.key_ref = 0x81,
                           .flags = RECEIPTS_F_ANNOUNCED | RECEIPTS_F_CONTENT_CHECKED,
                           .digest = d,
                           .digest_len = 32,
                           .display_sha256 = disp};
    uint32_t c = 0;
    assert_int_equal(receipts_issue(&ev, &c), RECEIPTS_OK);
    return c;
}

static void test_first_boot_and_restart(void **st)
{
    (void)st;
    uint8_t pub1[65], pub2[65];
    assert_int_equal(receipts_init(), RECEIPTS_OK);
    assert_int_equal(receipts_device_flags(), RECEIPTS_DEV_KEY_NEW);
    assert_int_equal(receipts_counter(), 0);
    pubkey(pub1);
    assert_int_equal(issue(0x11), 1);
    assert_int_equal(issue(0x22), 2);

    /* Restart: same key, the counter goes on. */
    assert_int_equal(receipts_init(), RECEIPTS_OK);
    assert_int_equal(receipts_device_flags(), 0);
    pubkey(pub2);
    assert_memory_equal(pub1, pub2, 65);
    assert_int_equal(receipts_counter(), 2);
    assert_int_equal(issue(0x33), 3);
    /* Receipts are in RAM only: the old ones are gone after a restart. */
    uint8_t r[RECEIPTS_MAX_LEN];
    size_t n = 0;
    assert_int_equal(receipts_get(1, r, sizeof r, &n), RECEIPTS_ERR_NOT_FOUND);
}

static void test_receipt_format_and_tamper(void **st)
{
    (void)st;
    uint8_t pub[65], r[RECEIPTS_MAX_LEN];
    size_t n = 0;
    assert_int_equal(receipts_init(), RECEIPTS_OK);
    pubkey(pub);
    uint32_t c = issue(0x5A);
    assert_int_equal(receipts_get(RECEIPTS_LAST, r, sizeof r, &n), RECEIPTS_OK);
    assert_memory_equal(r, "CRCP", 4);
    assert_int_equal(r[4], RECEIPTS_VERSION);
    assert_int_equal(r[5], 0x81);
    assert_int_equal(r[6], RECEIPTS_F_ANNOUNCED | RECEIPTS_F_CONTENT_CHECKED);
    assert_int_equal(r[7], 32);
    assert_int_equal(((uint32_t)r[8] << 24 | r[9] << 16 | r[10] << 8 | r[11]), c);
    for (int i = 0; i < 32; i++)
        assert_int_equal(r[12 + i], 0x5A);
    assert_true(receipt_verifies(r, n, pub));
    r[12] ^= 1; /* the digest */
    assert_false(receipt_verifies(r, n, pub));
    /* A too small buffer. */
    assert_int_equal(receipts_get(c, r, 10, &n), RECEIPTS_ERR_PARAM);
    assert_int_equal(receipts_get(c + 5, r, sizeof r, &n), RECEIPTS_ERR_NOT_FOUND);
}

static void test_damaged_key_record(void **st)
{
    (void)st;
    uint8_t pub1[65], pub2[65];
    assert_int_equal(receipts_init(), RECEIPTS_OK);
    pubkey(pub1);
    issue(1);
    fake_flash_bytes()[20] ^= 0x40; /* a bit of the private key */
    assert_int_equal(receipts_init(), RECEIPTS_OK);
    assert_int_equal(receipts_device_flags(), RECEIPTS_DEV_KEY_NEW | RECEIPTS_DEV_FLASH_CORRUPT);
    pubkey(pub2);
    assert_memory_not_equal(pub1, pub2, 65);
    /* The counter does not go back with the new key. */
    assert_int_equal(receipts_counter(), 1);
    assert_int_equal(issue(2), 2);
}

static void test_counter_log_wraps(void **st)
{
    (void)st;
    assert_int_equal(receipts_init(), RECEIPTS_OK);
    /* 64 records per 512-byte sector: cross both sectors twice. */
    uint32_t last = 0;
    for (int i = 0; i < 200; i++)
        last = issue((uint8_t)i);
    assert_int_equal(last, 200);
    assert_int_equal(receipts_init(), RECEIPTS_OK);
    assert_int_equal(receipts_counter(), 200);
    /* An interrupted record (half written) is ignored, and flagged. */
    uint8_t *f = fake_flash_bytes();
    size_t rec = 0;
    for (size_t s = 1; s <= 2; s++)
        for (size_t i = 0; i < FAKE_FLASH_SECTOR; i += 8)
            if (f[s * FAKE_FLASH_SECTOR + i] == 0xFF && rec == 0)
                rec = s * FAKE_FLASH_SECTOR + i;
    assert_true(rec != 0);
    f[rec] = 0x00;
    assert_int_equal(receipts_init(), RECEIPTS_OK);
    assert_int_equal(receipts_counter(), 200);
    assert_true(receipts_device_flags() & RECEIPTS_DEV_LOG_DAMAGED);
    assert_int_equal(issue(9), 201);
}

static void test_no_rng_no_flash(void **st)
{
    (void)st;
    fake_rng_set_broken(true);
    assert_int_equal(receipts_init(), RECEIPTS_ERR_NO_KEY);
    assert_true(receipts_device_flags() & RECEIPTS_DEV_NO_KEY);
    uint8_t d[32] = {0}, disp[32] = {0};
    receipts_event_t ev = {.key_ref = 0x81, .digest = d, .digest_len = 32, .display_sha256 = disp};
    uint32_t c;
    assert_int_equal(receipts_issue(&ev, &c), RECEIPTS_ERR_NO_KEY);
    fake_rng_set_broken(false);
    fake_flash_set_broken(true);
    assert_int_equal(receipts_init(), RECEIPTS_ERR_FLASH);
    fake_flash_set_broken(false);
    /* Bad arguments. */
    assert_int_equal(receipts_init(), RECEIPTS_OK);
    ev.digest_len = 33;
    assert_int_equal(receipts_issue(&ev, &c), RECEIPTS_ERR_PARAM);
    ev.digest_len = 0;
    assert_int_equal(receipts_issue(&ev, &c), RECEIPTS_ERR_PARAM);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_first_boot_and_restart, setup),
        cmocka_unit_test_setup(test_receipt_format_and_tamper, setup),
        cmocka_unit_test_setup(test_damaged_key_record, setup),
        cmocka_unit_test_setup(test_counter_log_wraps, setup),
        cmocka_unit_test_setup(test_no_rng_no_flash, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
