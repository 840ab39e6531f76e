/* Helpers shared by the virtual card's unit tests (header-only, test code). */
#ifndef CACHET_CARD_TEST_UTIL_H
#define CACHET_CARD_TEST_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "card_profile.h"

#ifndef CACHET_TEST_PKI_DIR
#error "CACHET_TEST_PKI_DIR must point to the generated test PKI"
#endif

#define PROFILE_DIR(name) CACHET_TEST_PKI_DIR "/profiles/" name

/* "00 A4 ..." -> bytes; aborts the test on bad hex */
static inline size_t hex(const char *s, uint8_t *out, size_t cap)
{
    size_t n = card_parse_hex(s, out, cap);
    if (n == 0 && s[0]) {
        fprintf(stderr, "bad hex in test: %s\n", s);
        abort();
    }
    return n;
}

static inline const uint8_t *find_bytes(const uint8_t *h, size_t hl, const void *n, size_t nl)
{
    if (nl == 0 || nl > hl)
        return NULL;
    for (size_t i = 0; i + nl <= hl; i++)
        if (memcmp(h + i, n, nl) == 0)
            return h + i;
    return NULL;
}

#endif
