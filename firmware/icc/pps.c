/* pps: PPS request/response (ISO/IEC 7816-3 §9), see pps.h. */
#include "pps.h"

#include "atr.h"
#include "fw_util.h"
#include "icc_line.h"

#define PPS0_PPS1 0x10u /* b5 */
#define PPS0_PPS2 0x20u /* b6 */
#define PPS0_PPS3 0x40u /* b7 */
#define PPS0_RFU 0x80u  /* b8, reserved: 0 */

size_t pps_length(uint8_t pps0)
{
    return 3u + (size_t)((pps0 & PPS0_PPS1) != 0) +
           (size_t)((pps0 & PPS0_PPS2) != 0) + (size_t)((pps0 & PPS0_PPS3) != 0);
}

icc_status_t pps_build(uint8_t protocol, uint8_t fidi, uint8_t out[PPS_MAX],
                       size_t *len)
{
    FW_VERIFY(out != NULL && len != NULL, ICC_ERR_BAD_PARAM);
    FW_VERIFY(protocol < 15u, ICC_ERR_BAD_PARAM);
    FW_VERIFY(atr_fi((uint8_t)(fidi >> 4)) != 0 && atr_di(fidi & 0x0Fu) != 0,
              ICC_ERR_BAD_PARAM);
    size_t n = 0;
    out[n++] = PPS_PPSS;
    out[n++] = (uint8_t)(protocol | (fidi != ATR_DEFAULT_FIDI ? PPS0_PPS1 : 0u));
    if (fidi != ATR_DEFAULT_FIDI)
        out[n++] = fidi;
    uint8_t pck = 0;
    for (size_t i = 0; i < n; i++)
        pck ^= out[i];
    out[n++] = pck; /* §9.2: XOR of PPSS..PCK is 0 */
    *len = n;
    return ICC_OK;
}

icc_status_t pps_check(const uint8_t *req, size_t req_len, const uint8_t *resp,
                       size_t resp_len, uint8_t *fidi_out)
{
    FW_VERIFY(req != NULL && resp != NULL && fidi_out != NULL, ICC_ERR_BAD_PARAM);
    FW_VERIFY(req_len >= 3 && req_len <= PPS_MAX, ICC_ERR_BAD_PARAM);
    FW_VERIFY(resp_len >= 3 && resp_len <= PPS_MAX, ICC_ERR_PPS);
    FW_VERIFY(resp[0] == PPS_PPSS, ICC_ERR_PPS);
    uint8_t q0 = req[1], r0 = resp[1];
    FW_VERIFY((r0 & PPS0_RFU) == 0, ICC_ERR_PPS);
    FW_VERIFY(resp_len == pps_length(r0), ICC_ERR_PPS);
    /* §9.3: b4-b1 echo the request's T. */
    FW_VERIFY((r0 & 0x0Fu) == (q0 & 0x0Fu), ICC_ERR_PPS);
    /* We never request PPS2/PPS3, and the card may only echo what it got. */
    FW_VERIFY((r0 & (PPS0_PPS2 | PPS0_PPS3)) == 0, ICC_ERR_PPS);
    uint8_t pck = 0;
    for (size_t i = 0; i < resp_len; i++)
        pck ^= resp[i];
    FW_VERIFY(pck == 0, ICC_ERR_PPS);
    if (r0 & PPS0_PPS1) {
        /* §9.3: PPS1 echoed means the card accepts our Fi/Di. */
        FW_VERIFY((q0 & PPS0_PPS1) && req_len >= 4, ICC_ERR_PPS);
        FW_VERIFY(resp[2] == req[2], ICC_ERR_PPS);
        *fidi_out = resp[2];
    } else {
        /* §9.3: PPS1 left out: Fd and Dd stay in force. */
        *fidi_out = ATR_DEFAULT_FIDI;
    }
    return ICC_OK;
}

icc_status_t pps_exchange(uint8_t protocol, uint8_t fidi, uint64_t wt_us,
                          uint8_t *fidi_out)
{
    uint8_t req[PPS_MAX], resp[PPS_MAX];
    size_t req_len = 0;
    icc_status_t st = pps_build(protocol, fidi, req, &req_len);
    if (st != ICC_OK)
        return st;
    st = icc_line_send(req, req_len);
    if (st == ICC_ERR_ABSENT)
        return st;
    if (st != ICC_OK)
        return ICC_ERR_PPS;
    /* PPSS and PPS0 first: PPS0 says how many characters follow. */
    size_t need = 2;
    for (size_t n = 0; n < need; n++) {
        st = icc_line_recv(&resp[n], wt_us);
        if (st == ICC_ERR_ABSENT)
            return st;
        if (st != ICC_OK)
            return ICC_ERR_PPS; /* §9.3: a card refusing PPS stays silent */
        if (n == 1) {
            if (resp[1] & PPS0_RFU)
                return ICC_ERR_PPS;
            need = pps_length(resp[1]);
            FW_ASSERT(need <= PPS_MAX, ICC_ERR_PPS);
        }
    }
    return pps_check(req, req_len, resp, need, fidi_out);
}
