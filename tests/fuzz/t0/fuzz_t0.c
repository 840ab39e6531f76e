/* Fuzz target: one or two T=0 exchanges (and optionally a PPS) against a card
 * whose every answer is the fuzz input.
 * Input: cfg, sel, len, then the card's characters.
 *   cfg b0: escapes (timeouts, removal) in the card stream;
 *   cfg b1: card with TA1=18 offering T=0, PPS to 18 first;
 *   cfg b2: small response buffer (overrun paths).
 *   sel b1-b0: APDU case 1..4; sel b2: second exchange. */
#include <stddef.h>
#include <stdint.h>

#include "icc.h"
#include "icc_fuzz_port.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint8_t atr_cps3[17] = {0x3B, 0xAC, 0x00, 0x40, 0x2A, 0x00,
                                     0x12, 0x25, 0x00, 0x64, 0x80, 0x00,
                                     0x03, 0x10, 0x00, 0x90, 0x00};
/* T0=10 (TA1), TA1=18: T=0 implied, no TCK. */
static const uint8_t atr_ta1[3] = {0x3B, 0x10, 0x18};

static void count(void *ctx)
{
    (*(unsigned *)ctx)++;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3)
        return 0;
    const uint8_t cfg = data[0], sel = data[1], len = data[2];
    const bool pps = (cfg & 2) != 0;
    icc_fuzz_port_reset(pps ? atr_ta1 : atr_cps3, pps ? sizeof atr_ta1 : sizeof atr_cps3,
                        data + 3, size - 3, (cfg & 1) != 0);
    icc_init();
    unsigned waits = 0;
    icc_set_wait_hook(count, &waits);
    uint8_t atr[ICC_ATR_MAX];
    size_t atr_len = 0;
    if (icc_power_on(atr, sizeof atr, &atr_len) != ICC_OK)
        __builtin_trap(); /* the ATR is fixed and valid */
    if (pps) {
        icc_params_t p;
        if (icc_params_from_atr(&p) == ICC_OK && icc_set_params(&p) != ICC_OK)
            return 0;
    }

    uint8_t capdu[ICC_CAPDU_MAX];
    size_t clen = 0;
    const uint8_t lc = (uint8_t)(len % 64u + 1u);
    capdu[clen++] = 0x00;
    capdu[clen++] = (uint8_t)((sel & 3u) == 1 ? 0xB0 : (sel & 3u) == 2 ? 0xD6 : 0x88);
    capdu[clen++] = 0x00;
    capdu[clen++] = 0x00;
    switch (sel & 3u) {
    case 0: /* case 1 */
        capdu[1] = 0x70;
        break;
    case 1: /* case 2, Le = len */
        capdu[clen++] = len;
        break;
    case 2: /* case 3 */
    case 3: /* case 4 with Le = len */
        capdu[clen++] = lc;
        for (uint8_t i = 0; i < lc; i++)
            capdu[clen++] = i;
        if ((sel & 3u) == 3)
            capdu[clen++] = len;
        break;
    }
    uint8_t rapdu[ICC_RAPDU_MAX];
    const size_t rcap = (cfg & 4) ? 16 : sizeof rapdu;
    for (int round = 0; round < ((sel & 4) ? 2 : 1); round++) {
        size_t rlen = 0;
        icc_status_t st = icc_transceive(capdu, clen, rapdu, rcap, &rlen);
        if (st == ICC_OK && (rlen < 2 || rlen > rcap))
            __builtin_trap();
        if (st != ICC_OK && rlen != 0)
            __builtin_trap();
    }
    icc_stats_t s;
    icc_get_stats(&s);
    icc_power_off();
    return 0;
}
