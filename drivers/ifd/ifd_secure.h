/* ifd_secure: PC/SC part 10 v2.02.09 secure PIN entry structures, as
 * applications send them through SCardControl (FEATURE_VERIFY_PIN_DIRECT
 * §2.5.2 PIN_VERIFY_STRUCTURE, FEATURE_MODIFY_PIN_DIRECT §2.5.3
 * PIN_MODIFY_STRUCTURE: packed, multi-byte fields little-endian), translated
 * into abData of CCID PC_to_RDR_Secure (CCID rev 1.1 §6.1.11): bPINOperation
 * first, no bTimeOut2, no ulDataLength, and in a modification bMsgIndex2/3
 * only when bNumberMessage calls for them (as libccid sends them). Pure
 * functions, every length checked; fuzzed through tests/unit/ifd. */
#ifndef CACHET_IFD_SECURE_H
#define CACHET_IFD_SECURE_H

#include <stddef.h>
#include <stdint.h>

#include "ifd_util.h"

/* Fixed parts of the part 10 structures, up to and including ulDataLength. */
#define IFD_PIN_VERIFY_HDR 19u
#define IFD_PIN_MODIFY_HDR 24u

/* What the translation tells the caller about the wait ahead. */
typedef struct {
    uint8_t timeout_s; /* bTimeOut (0: the reader's default) */
    unsigned entries;  /* PIN entries the holder makes (1 to 3) */
} ifd_secure_info_t;

/* feature: 0x06 (verify) or 0x07 (modify). out receives abData (cap bytes);
 * IFD_ST_PARAM for a malformed structure (too short, ulDataLength not the
 * APDU's length, bNumberMessage out of range), IFD_ST_OVERFLOW if cap is too
 * small. */
ifd_st_t ifd_secure_translate(uint8_t feature, const uint8_t *tx, size_t txlen, uint8_t *out,
                              size_t cap, size_t *out_len, ifd_secure_info_t *info);

#endif
