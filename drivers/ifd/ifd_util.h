/* ifd_util: byte order helpers, the check macros of STYLE.md rule 3, the
 * internal status values shared by the parsers, the CCID host and the
 * transports, and the driver's log (stderr, "cachet-ifd:" prefix, one line per
 * error; an optional sink replaces it, e.g. in tests).
 *   IFD_VERIFY(cond, err)  expected failure (bad input from outside): return err;
 *   IFD_ASSERT(cond, err)  broken invariant (a bug): logged, then return err. */
#ifndef CACHET_IFD_UTIL_H
#define CACHET_IFD_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define IFD_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* Internal status: what went wrong below the IFDH API. */
typedef enum {
    IFD_ST_OK = 0,
    IFD_ST_TIMEOUT,   /* nothing arrived in time */
    IFD_ST_GONE,      /* the device (cable, socket) is gone */
    IFD_ST_STALL,     /* the device refused a control request */
    IFD_ST_PROTO,     /* the device sent something malformed */
    IFD_ST_CANCELLED, /* a waiter was asked to stop */
    IFD_ST_OVERFLOW,  /* answer larger than the caller's buffer */
    IFD_ST_PARAM,     /* bad argument */
    IFD_ST_NOMEM,     /* allocation failed */
    IFD_ST_UNSUPPORTED,
} ifd_st_t;

const char *ifd_st_name(ifd_st_t st);

#define IFD_VERIFY(cond, err)                                                                      \
    do {                                                                                           \
        if (!(cond))                                                                               \
            return (err);                                                                          \
    } while (0)

#define IFD_ASSERT(cond, err)                                                                      \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            ifd_log("bug: %s:%d: %s", __FILE__, __LINE__, #cond);                                  \
            return (err);                                                                          \
        }                                                                                          \
    } while (0)

static inline uint16_t ifd_get_le16(const uint8_t *p)
{
    return (uint16_t)((uint16_t)p[1] << 8 | p[0]);
}
static inline uint32_t ifd_get_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline uint32_t ifd_get_be32(const uint8_t *p)
{
    return (uint32_t)p[3] | (uint32_t)p[2] << 8 | (uint32_t)p[1] << 16 | (uint32_t)p[0] << 24;
}
static inline uint16_t ifd_get_be16(const uint8_t *p)
{
    return (uint16_t)((uint16_t)p[0] << 8 | p[1]);
}
static inline void ifd_put_le16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}
static inline void ifd_put_le32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}
static inline void ifd_put_be16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}
static inline void ifd_put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* Monotonic clock in milliseconds. */
uint64_t ifd_now_ms(void);

/* One line on stderr, prefixed "cachet-ifd: ". Never card data or secrets. */
void ifd_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Replaces the stderr log (NULL restores it). For tests and embedding. */
typedef void (*ifd_log_sink_t)(const char *line);
void ifd_log_set_sink(ifd_log_sink_t sink);

#endif
