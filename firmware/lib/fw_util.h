/* fw_util: byte order helpers, bounded copies, a wipe the compiler cannot drop,
 * and the two check macros of STYLE.md rule 3:
 *   FW_VERIFY(cond, err)  expected failure (bad input from outside): return err;
 *   FW_ASSERT(cond, err)  broken invariant (a bug): fw_bug() is called, then return err. */
#ifndef CACHET_FW_UTIL_H
#define CACHET_FW_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FW_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#define FW_VERIFY(cond, err)                                                   \
    do {                                                                       \
        if (!(cond))                                                           \
            return (err);                                                      \
    } while (0)

#define FW_ASSERT(cond, err)                                                   \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fw_bug(__FILE__, __LINE__);                                        \
            return (err);                                                      \
        }                                                                      \
    } while (0)

/* Records a broken invariant (counter readable by tests; a board may halt). */
void fw_bug(const char *file, int line);
/* How many times fw_bug was called since boot. */
uint32_t fw_bug_count(void);

static inline uint16_t fw_get_be16(const uint8_t *p)
{
    return (uint16_t)((uint16_t)p[0] << 8 | p[1]);
}
static inline uint16_t fw_get_le16(const uint8_t *p)
{
    return (uint16_t)((uint16_t)p[1] << 8 | p[0]);
}
static inline uint32_t fw_get_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}
static inline uint32_t fw_get_be32(const uint8_t *p)
{
    return (uint32_t)p[3] | (uint32_t)p[2] << 8 | (uint32_t)p[1] << 16 |
           (uint32_t)p[0] << 24;
}
static inline void fw_put_be16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}
static inline void fw_put_le16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}
static inline void fw_put_le32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}
static inline void fw_put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* True when [off, off+len) lies within a buffer of size cap (overflow-safe). */
static inline bool fw_range_ok(size_t off, size_t len, size_t cap)
{
    return len <= cap && off <= cap - len;
}

/* Zeroes n bytes in a way the optimiser must keep (secrets: PINs, digests). */
void fw_wipe(void *p, size_t n);

/* memcpy/memset/memcmp without <string.h> dependencies beyond freestanding. */
void fw_memcpy(void *dst, const void *src, size_t n);
void fw_memset(void *dst, uint8_t v, size_t n);
/* Constant-time comparison: true when equal. */
bool fw_memeq_ct(const void *a, const void *b, size_t n);

#endif
