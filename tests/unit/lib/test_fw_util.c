/* Unit tests for firmware/lib/fw_util. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "fw_util.h"

static void test_byte_order(void **state)
{
    (void)state;
    uint8_t b[4];
    fw_put_be16(b, 0x1234);
    assert_int_equal(b[0], 0x12);
    assert_int_equal(fw_get_be16(b), 0x1234);
    fw_put_le32(b, 0xA1B2C3D4u);
    assert_int_equal(b[0], 0xD4);
    assert_int_equal(fw_get_le32(b), 0xA1B2C3D4u);
    fw_put_be32(b, 0xA1B2C3D4u);
    assert_int_equal(b[0], 0xA1);
    assert_int_equal(fw_get_be32(b), 0xA1B2C3D4u);
}

static void test_range(void **state)
{
    (void)state;
    assert_true(fw_range_ok(0, 10, 10));
    assert_false(fw_range_ok(1, 10, 10));
    assert_false(fw_range_ok(SIZE_MAX, 2, 10));
    assert_false(fw_range_ok(2, SIZE_MAX, 10));
}

static void test_wipe_and_compare(void **state)
{
    (void)state;
    uint8_t a[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    uint8_t z[8] = {0};
    assert_false(fw_memeq_ct(a, z, sizeof a));
    fw_wipe(a, sizeof a);
    assert_true(fw_memeq_ct(a, z, sizeof a));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_byte_order),
        cmocka_unit_test(test_range),
        cmocka_unit_test(test_wipe_and_compare),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
