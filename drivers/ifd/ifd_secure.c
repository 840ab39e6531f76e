/* ifd_secure: part 10 PIN structures → CCID PC_to_RDR_Secure abData. */
#include "ifd_secure.h"

#include <stdbool.h>
#include <string.h>

#include "ifd_features.h"

ifd_st_t ifd_secure_translate(uint8_t feature, const uint8_t *tx, size_t txlen, uint8_t *out,
                              size_t cap, size_t *out_len, ifd_secure_info_t *info)
{
    IFD_VERIFY(out != NULL && out_len != NULL && info != NULL, IFD_ST_PARAM);
    IFD_VERIFY(feature == IFD_FEATURE_VERIFY_PIN_DIRECT || feature == IFD_FEATURE_MODIFY_PIN_DIRECT,
               IFD_ST_PARAM);
    *out_len = 0;
    bool modify = feature == IFD_FEATURE_MODIFY_PIN_DIRECT;
    size_t hdr = modify ? IFD_PIN_MODIFY_HDR : IFD_PIN_VERIFY_HDR;
    /* At least the structure and a 4-byte APDU header. */
    IFD_VERIFY(tx != NULL && txlen >= hdr + 4u, IFD_ST_PARAM);
    uint32_t data_len = ifd_get_le32(tx + hdr - 4u); /* ulDataLength */
    IFD_VERIFY(data_len == txlen - hdr, IFD_ST_PARAM);

    uint8_t nmsg = tx[modify ? 11u : 8u];
    IFD_VERIFY(modify ? (nmsg <= 3u || nmsg == 0xFFu) : (nmsg <= 1u || nmsg == 0xFFu),
               IFD_ST_PARAM);

    /* CCID layout: bPINOperation, bTimeOut, then part 10 bytes 2.. minus
     * bTimeOut2 and ulDataLength (and the absent bMsgIndex2/3). */
    size_t need = 1u + (hdr - 1u - 4u) + data_len;
    IFD_VERIFY(need <= cap, IFD_ST_OVERFLOW);
    size_t n = 0;
    out[n++] = modify ? 0x01u : 0x00u;
    out[n++] = tx[0]; /* bTimeOut */
    for (size_t i = 2; i < hdr - 4u; i++) {
        if (modify && i == 15u && nmsg == 0)
            continue; /* bMsgIndex2 */
        if (modify && i == 16u && nmsg < 3u)
            continue; /* bMsgIndex3 */
        out[n++] = tx[i];
    }
    memcpy(out + n, tx + hdr, data_len);
    n += data_len;
    *out_len = n;

    info->timeout_s = tx[0];
    info->entries = 1;
    if (modify) {
        uint8_t confirm = tx[9]; /* bConfirmPIN: bit 1 current PIN, bit 0 confirmation */
        info->entries = 1u + ((confirm & 0x02u) ? 1u : 0u) + ((confirm & 0x01u) ? 1u : 0u);
    }
    return IFD_ST_OK;
}
