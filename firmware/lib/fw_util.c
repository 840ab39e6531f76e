/* fw_util: see fw_util.h. */
#include "fw_util.h"

static uint32_t bug_count;

void fw_bug(const char *file, int line)
{
    (void)file;
    (void)line;
    bug_count++;
}

uint32_t fw_bug_count(void)
{
    return bug_count;
}

void fw_wipe(void *p, size_t n)
{
    volatile uint8_t *v = (volatile uint8_t *)p;
    while (n--)
        *v++ = 0;
    /* Keep the stores: the compiler may not assume memory is unchanged. */
    __asm__ __volatile__("" : : "r"(p) : "memory");
}

void fw_memcpy(void *dst, const void *src, size_t n)
{
    uint8_t *d = dst;
    const uint8_t *s = src;
    while (n--)
        *d++ = *s++;
}

void fw_memset(void *dst, uint8_t v, size_t n)
{
    uint8_t *d = dst;
    while (n--)
        *d++ = v;
}

bool fw_memeq_ct(const void *a, const void *b, size_t n)
{
    const uint8_t *x = a, *y = b;
    uint8_t acc = 0;
    for (size_t i = 0; i < n; i++)
        acc |= (uint8_t)(x[i] ^ y[i]);
    return acc == 0;
}
