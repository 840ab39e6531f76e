/* Unit tests of firmware/icc against a scripted card (fake_port.c). */
#include "icc_tests.h"

#include <stdio.h>
#include <stdlib.h>

size_t hex_bytes(const char *hex, uint8_t *out, size_t cap)
{
    size_t n = 0;
    const char *s = hex;
    while (*s) {
        while (*s == ' ')
            s++;
        if (*s == '\0')
            break;
        char *end;
        unsigned long v = strtoul(s, &end, 16);
        if (end == s || v > 0xFF || n >= cap) {
            fprintf(stderr, "hex_bytes: bad input '%s'\n", hex);
            abort();
        }
        out[n++] = (uint8_t)v;
        s = end;
    }
    return n;
}

void power_on_hex(const char *atr_hex)
{
    fake_reset();
    icc_init();
    fake_on_rst();
    fake_reply_hex(atr_hex);
    uint8_t atr[ICC_ATR_MAX];
    size_t len = 0;
    assert_int_equal(icc_power_on(atr, sizeof atr, &len), ICC_OK);
    uint8_t want[ICC_ATR_MAX];
    size_t wlen = hex_bytes(atr_hex, want, sizeof want);
    if (want[0] == 0x03)
        want[0] = 0x3F;
    assert_int_equal(len, wlen);
    assert_memory_equal(atr, want, len);
    assert_true(icc_powered());
}

void count_hook(void *ctx)
{
    (*(unsigned *)ctx)++;
}

void assert_script_done(void)
{
    if (!fake_done()) {
        fprintf(stderr, "fake card: %s\n", fake_error());
        fail();
    }
}

int main(void)
{
    int failed = 0;
    failed += icc_atr_tests();
    failed += icc_pps_tests();
    failed += icc_t0_tests();
    failed += icc_t1_tests();
    return failed != 0;
}
