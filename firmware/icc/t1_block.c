/* t1_block: T=1 block format (ISO/IEC 7816-3 §11.3, §11.4.4), see t1_block.h. */
#include "t1_block.h"

#include "fw_util.h"

_Static_assert(T1_BLOCK_MAX == 259u, "3 + 254 + 2");

uint8_t t1_lrc(const uint8_t *p, size_t n)
{
    uint8_t x = 0;
    for (size_t i = 0; i < n; i++)
        x ^= p[i];
    return x;
}

uint16_t t1_crc(const uint8_t *p, size_t n)
{
    uint16_t crc = 0xFFFFu;
    for (size_t i = 0; i < n; i++) {
        crc ^= p[i];
        for (unsigned b = 0; b < 8; b++)
            crc = (crc & 1u) ? (uint16_t)((crc >> 1) ^ 0x8408u) : (uint16_t)(crc >> 1);
    }
    return crc;
}

uint8_t t1_pcb_i(uint8_t ns, bool more)
{
    return (uint8_t)((ns ? T1_PCB_I_NS : 0u) | (more ? T1_PCB_I_MORE : 0u));
}

uint8_t t1_pcb_r(uint8_t nr, uint8_t err)
{
    return (uint8_t)(T1_PCB_R | (nr ? T1_PCB_R_NR : 0u) | (err & T1_PCB_R_ERR_MASK));
}

uint8_t t1_pcb_s(uint8_t type, bool response)
{
    return (uint8_t)(T1_PCB_S | (response ? T1_PCB_S_RESPONSE : 0u) | (type & 0x1Fu));
}

/* PCB and LEN consistency (§11.3.2.2). */
static icc_status_t t1_decode_pcb(t1_block_t *b)
{
    uint8_t pcb = b->pcb;
    if ((pcb & 0x80u) == 0) {
        b->kind = T1_BLOCK_I;
        FW_VERIFY((pcb & 0x1Fu) == 0, ICC_ERR_PROTOCOL); /* b5-b1 RFU */
        b->ns = (pcb & T1_PCB_I_NS) ? 1u : 0u;
        b->more = (pcb & T1_PCB_I_MORE) != 0;
        return ICC_OK;
    }
    if ((pcb & 0xC0u) == T1_PCB_R) {
        b->kind = T1_BLOCK_R;
        FW_VERIFY((pcb & 0x20u) == 0, ICC_ERR_PROTOCOL); /* b6 = 0 */
        b->nr = (pcb & T1_PCB_R_NR) ? 1u : 0u;
        b->r_err = (uint8_t)(pcb & T1_PCB_R_ERR_MASK);
        FW_VERIFY(b->r_err <= T1_R_OTHER, ICC_ERR_PROTOCOL);
        FW_VERIFY(b->len == 0, ICC_ERR_PROTOCOL);
        return ICC_OK;
    }
    b->kind = T1_BLOCK_S;
    b->s_response = (pcb & T1_PCB_S_RESPONSE) != 0;
    b->s_type = (uint8_t)(pcb & 0x1Fu);
    switch (b->s_type) {
    case T1_S_RESYNCH:
    case T1_S_ABORT:
        FW_VERIFY(b->len == 0, ICC_ERR_PROTOCOL);
        return ICC_OK;
    case T1_S_IFS:
        /* §11.4.2: IFS 01..FE in one byte. */
        FW_VERIFY(b->len == 1, ICC_ERR_PROTOCOL);
        FW_VERIFY(b->inf[0] != 0x00u && b->inf[0] != 0xFFu, ICC_ERR_PROTOCOL);
        return ICC_OK;
    case T1_S_WTX:
        FW_VERIFY(b->len == 1, ICC_ERR_PROTOCOL);
        return ICC_OK;
    case T1_S_VPP_ERROR:
        FW_VERIFY(b->s_response && b->len == 0, ICC_ERR_PROTOCOL);
        return ICC_OK;
    default:
        return ICC_ERR_PROTOCOL;
    }
}

icc_status_t t1_block_parse(const uint8_t *buf, size_t n, bool crc,
                            t1_block_t *out)
{
    FW_VERIFY(buf != NULL && out != NULL, ICC_ERR_BAD_PARAM);
    fw_memset(out, 0, sizeof *out);
    const size_t edc = crc ? 2u : 1u;
    FW_VERIFY(n >= T1_PROLOGUE_LEN + edc && n <= T1_BLOCK_MAX, ICC_ERR_PROTOCOL);
    FW_VERIFY(buf[2] <= T1_INF_MAX, ICC_ERR_PROTOCOL);
    FW_VERIFY(n == T1_PROLOGUE_LEN + (size_t)buf[2] + edc, ICC_ERR_PROTOCOL);
    const size_t body = n - edc;
    if (crc) {
        uint16_t c = t1_crc(buf, body);
        FW_VERIFY(buf[body] == (uint8_t)(c >> 8) && buf[body + 1] == (uint8_t)c,
                  ICC_ERR_PARITY);
    } else {
        FW_VERIFY(t1_lrc(buf, body) == buf[body], ICC_ERR_PARITY);
    }
    out->nad = buf[0];
    out->pcb = buf[1];
    out->len = buf[2];
    out->inf = buf + T1_PROLOGUE_LEN;
    return t1_decode_pcb(out);
}

icc_status_t t1_block_build(uint8_t *out, size_t cap, uint8_t nad, uint8_t pcb,
                            const uint8_t *inf, size_t inf_len, bool crc,
                            size_t *out_len)
{
    FW_VERIFY(out != NULL && out_len != NULL, ICC_ERR_BAD_PARAM);
    FW_VERIFY(inf != NULL || inf_len == 0, ICC_ERR_BAD_PARAM);
    FW_VERIFY(inf_len <= T1_INF_MAX, ICC_ERR_BAD_PARAM);
    const size_t edc = crc ? 2u : 1u;
    const size_t total = T1_PROLOGUE_LEN + inf_len + edc;
    FW_VERIFY(total <= cap, ICC_ERR_OVERRUN);
    out[0] = nad;
    out[1] = pcb;
    out[2] = (uint8_t)inf_len;
    if (inf_len > 0)
        fw_memcpy(out + T1_PROLOGUE_LEN, inf, inf_len);
    const size_t body = T1_PROLOGUE_LEN + inf_len;
    if (crc) {
        uint16_t c = t1_crc(out, body);
        out[body] = (uint8_t)(c >> 8);
        out[body + 1] = (uint8_t)c;
    } else {
        out[body] = t1_lrc(out, body);
    }
    *out_len = total;
    return ICC_OK;
}
