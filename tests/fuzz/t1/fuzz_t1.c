/* Fuzz target for T=1: t1_block_parse on the raw input (both EDC kinds), then
 * T=1 exchanges against a card whose every answer is the fuzz input.
 * Input: cfg, len, then the card's characters.
 *   cfg b0: escapes (timeouts, removal) in the card stream; b1: CRC card;
 *   b2: small response buffer; b3: second exchange; b7-b4: IFSC / 8. */
#include <stddef.h>
#include <stdint.h>

#include "icc.h"
#include "icc_fuzz_port.h"
#include "t1_block.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void count(void *ctx)
{
    (*(unsigned *)ctx)++;
}

static void fuzz_blocks(const uint8_t *data, size_t size)
{
    t1_block_t b;
    for (int crc = 0; crc < 2; crc++) {
        if (t1_block_parse(data, size, crc != 0, &b) == ICC_OK) {
            /* Round trip: building the parsed block gives the same bytes. */
            uint8_t out[T1_BLOCK_MAX];
            size_t n = 0;
            if (t1_block_build(out, sizeof out, b.nad, b.pcb, b.inf, b.len, crc != 0, &n) !=
                    ICC_OK ||
                n != size)
                __builtin_trap();
            for (size_t i = 0; i < n; i++)
                if (out[i] != data[i])
                    __builtin_trap();
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_blocks(data, size);
    if (size < 2)
        return 0;
    const uint8_t cfg = data[0], len = data[1];
    const bool crc = (cfg & 2) != 0;
    uint8_t ifsc = (uint8_t)((cfg >> 4) * 16u + 1u); /* 1..241 */
    /* T0=80 (TD1), TD1=81 (TD2, T=1), TD2=51 (TA3 IFSC, TC3 EDC, T=1), TCK */
    uint8_t atr[7] = {0x3B, 0x80, 0x81, 0x51, ifsc, (uint8_t)(crc ? 1 : 0), 0};
    for (size_t i = 1; i < 6; i++)
        atr[6] ^= atr[i];
    icc_fuzz_port_reset(atr, sizeof atr, data + 2, size - 2, (cfg & 1) != 0);
    icc_init();
    unsigned waits = 0;
    icc_set_wait_hook(count, &waits);
    uint8_t got[ICC_ATR_MAX];
    size_t got_len = 0;
    if (icc_power_on(got, sizeof got, &got_len) != ICC_OK)
        __builtin_trap(); /* the ATR is fixed and valid */

    uint8_t capdu[ICC_CAPDU_MAX];
    size_t clen = 4u + (size_t)len;
    if (clen > sizeof capdu)
        clen = sizeof capdu;
    for (size_t i = 0; i < clen; i++)
        capdu[i] = (uint8_t)i;
    capdu[0] = 0x00;
    capdu[1] = 0xD6;
    uint8_t rapdu[ICC_RAPDU_MAX];
    const size_t rcap = (cfg & 4) ? 8 : sizeof rapdu;
    for (int round = 0; round < ((cfg & 8) ? 2 : 1); round++) {
        size_t rlen = 0;
        icc_status_t st = icc_transceive(capdu, clen, rapdu, rcap, &rlen);
        if (st == ICC_OK && rlen > rcap)
            __builtin_trap();
        if (st != ICC_OK && rlen != 0)
            __builtin_trap();
    }
    icc_power_off();
    return 0;
}
