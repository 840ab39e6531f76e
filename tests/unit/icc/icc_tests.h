/* Shared helpers of the icc unit tests (one executable, several groups). */
#ifndef CACHET_TEST_ICC_TESTS_H
#define CACHET_TEST_ICC_TESTS_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "fake_port.h"
#include "icc.h"

#define ATR_CPS3_T0 "3B AC 00 40 2A 00 12 25 00 64 80 00 03 10 00 90 00"
#define ATR_T1_IFSC254 "3B 8B 81 11 FE 00 12 25 00 64 80 00 03 A5 00 90 00"
#define ATR_T1_TA2 "3B AB 00 11 81 00 12 25 00 64 80 00 03 7B 00 90 00"
#define ATR_T1_TA1_18 "3B 9B 18 81 01 00 12 25 00 64 80 00 03 43 00 90 00"

/* Parses hex ("3B AC ...") into out; returns the byte count. */
size_t hex_bytes(const char *hex, uint8_t *out, size_t cap);

/* Fresh module and fake; the card answers the first reset with atr_hex and
 * icc_power_on must succeed. */
void power_on_hex(const char *atr_hex);

/* Wait hook that counts its calls (ctx: unsigned *). */
void count_hook(void *ctx);

/* Asserts that the fake's script ran completely without a surprise. */
void assert_script_done(void);

/* Groups. */
int icc_atr_tests(void);
int icc_pps_tests(void);
int icc_t0_tests(void);
int icc_t1_tests(void);

#endif
