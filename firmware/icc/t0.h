/* t0: the T=0 protocol, reader side (ISO/IEC 7816-3 §10) and the mapping of
 * short command APDUs onto T=0 TPDUs (§12.2): cases 1, 2S, 3S and 4S,
 * procedure bytes (NULL, ACK, ~ACK, SW1), 6Cxx (resend with P3 = xx) and,
 * for case 4S with Le, 61xx (GET RESPONSE up to Le). A case-4 APDU without
 * Le (as OpenSC sends with T=0) is a case 3S here: 61xx goes back to the host
 * unchanged and the host sends GET RESPONSE itself. */
#ifndef CACHET_T0_H
#define CACHET_T0_H

#include <stddef.h>
#include <stdint.h>

#include "icc.h"

typedef struct {
    uint64_t wwt_us;        /* work waiting time, WT = WI * 960 * Fi / f (§10.2) */
    icc_wait_hook_t hook;   /* called on NULL procedure bytes (rate-limited) */
    void *hook_ctx;
} t0_config_t;

/* Exchanges one short APDU. rcap must hold the data and SW1 SW2.
 * ICC_ERR_MUTE when the card exceeded WT, ICC_ERR_PROTOCOL on a bad
 * procedure byte, ICC_ERR_OVERRUN when the answer exceeds rcap (the exchange
 * is still completed on the line), ICC_ERR_BAD_PARAM for a malformed APDU. */
icc_status_t t0_transceive(const t0_config_t *cfg, const uint8_t *capdu,
                           size_t clen, uint8_t *rapdu, size_t rcap,
                           size_t *rlen);

#endif
