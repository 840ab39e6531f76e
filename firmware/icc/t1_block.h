/* t1_block: T=1 blocks (ISO/IEC 7816-3 §11.3) as pure functions: prologue
 * (NAD PCB LEN), information field, epilogue (LRC §11.4.4 or CRC), the PCB
 * encodings of I-, R- and S-blocks, a parser that validates a received block
 * and a builder. No I/O: t1.c drives the line; the fuzz target calls these. */
#ifndef CACHET_T1_BLOCK_H
#define CACHET_T1_BLOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "icc.h"

#define T1_PROLOGUE_LEN 3u
#define T1_INF_MAX 254u /* §11.3.2.3: LEN 00..FE, FF is RFU */
#define T1_EDC_MAX 2u
#define T1_BLOCK_MAX (T1_PROLOGUE_LEN + T1_INF_MAX + T1_EDC_MAX)

/* PCB (§11.3.2.2). */
#define T1_PCB_R 0x80u         /* b8-b7 = 10 */
#define T1_PCB_S 0xC0u         /* b8-b7 = 11 */
#define T1_PCB_I_NS 0x40u      /* I-block: b7 = N(S) */
#define T1_PCB_I_MORE 0x20u    /* I-block: b6 = M (chaining) */
#define T1_PCB_R_NR 0x10u      /* R-block: b5 = N(R) */
#define T1_PCB_R_ERR_MASK 0x0Fu
#define T1_R_OK 0x00u          /* error-free acknowledgement */
#define T1_R_EDC 0x01u         /* EDC or parity error */
#define T1_R_OTHER 0x02u       /* other error */
#define T1_PCB_S_RESPONSE 0x20u
#define T1_S_RESYNCH 0x00u
#define T1_S_IFS 0x01u
#define T1_S_ABORT 0x02u
#define T1_S_WTX 0x03u
#define T1_S_VPP_ERROR 0x04u   /* response only */

typedef enum { T1_BLOCK_I, T1_BLOCK_R, T1_BLOCK_S } t1_block_kind_t;

/* A parsed block; inf points into the buffer given to t1_block_parse. */
typedef struct {
    t1_block_kind_t kind;
    uint8_t nad;
    uint8_t pcb;
    uint8_t len;
    const uint8_t *inf;
    /* Decoded PCB fields (meaningful for the block's kind). */
    uint8_t ns;       /* I: N(S) */
    bool more;        /* I: M */
    uint8_t nr;       /* R: N(R) */
    uint8_t r_err;    /* R: T1_R_OK / T1_R_EDC / T1_R_OTHER */
    bool s_response;  /* S: response (else request) */
    uint8_t s_type;   /* S: T1_S_RESYNCH ... T1_S_VPP_ERROR */
} t1_block_t;

/* Longitudinal redundancy check: XOR of all bytes (§11.4.4). */
uint8_t t1_lrc(const uint8_t *p, size_t n);

/* CRC-16 of ISO/IEC 3309 (polynomial x^16 + x^12 + x^5 + 1, preset FFFF,
 * reflected, no final XOR), sent most significant byte first, as the
 * ISO/IEC 7816-3 §11.4.4 CRC is implemented by OpenCT and libccid. */
uint16_t t1_crc(const uint8_t *p, size_t n);

/* Validates one received block of exactly n bytes: LEN matches n, EDC,
 * and the PCB/LEN combination (R-blocks without INF, S(IFS)/S(WTX) with one
 * byte, IFS value 01..FE, no RFU bits). ICC_ERR_PARITY for a wrong EDC,
 * ICC_ERR_PROTOCOL for any other fault. */
icc_status_t t1_block_parse(const uint8_t *buf, size_t n, bool crc,
                            t1_block_t *out);

/* Builds NAD PCB LEN INF EDC into out (cap bytes); *out_len gets its size.
 * ICC_ERR_BAD_PARAM when inf_len > T1_INF_MAX, ICC_ERR_OVERRUN when cap is short. */
icc_status_t t1_block_build(uint8_t *out, size_t cap, uint8_t nad, uint8_t pcb,
                            const uint8_t *inf, size_t inf_len, bool crc,
                            size_t *out_len);

/* PCB helpers. */
uint8_t t1_pcb_i(uint8_t ns, bool more);
uint8_t t1_pcb_r(uint8_t nr, uint8_t err);
uint8_t t1_pcb_s(uint8_t type, bool response);

#endif
