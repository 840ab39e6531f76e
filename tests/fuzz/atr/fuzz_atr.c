/* Fuzz target: atr_parse and atr_remaining on arbitrary bytes, then the same
 * bytes as the ATR a card sends to icc_power_on (character reception, TS,
 * cold/warm retries, parameter derivation). */
#include <stddef.h>
#include <stdint.h>

#include "atr.h"
#include "icc.h"
#include "icc_fuzz_port.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    atr_info_t a;
    icc_status_t st = atr_parse(data, size, &a);
    size_t more = 0;
    if (st == ICC_OK) {
        /* A parsed ATR is complete for the incremental helper too. */
        if (atr_remaining(data, size, &more) != ICC_OK || more != 0)
            __builtin_trap();
        if (a.len != size || a.hist_len > ATR_HIST_MAX)
            __builtin_trap();
    }
    /* Walk as a receiver would: never asks past ICC_ATR_MAX. */
    size_t have = 0;
    while (have <= size) {
        if (atr_remaining(data, have, &more) != ICC_OK || more == 0)
            break;
        if (have + more > ICC_ATR_MAX)
            __builtin_trap();
        have += more;
    }

    /* The same bytes from a card, answering every reset. */
    icc_fuzz_port_reset(data, size, NULL, 0, false);
    icc_init();
    uint8_t atr[ICC_ATR_MAX];
    size_t len = 0;
    st = icc_power_on(atr, sizeof atr, &len);
    if (st == ICC_OK) {
        icc_params_t p;
        if (len > ICC_ATR_MAX || icc_get_params(&p) != ICC_OK)
            __builtin_trap();
        if (p.protocol > ICC_PROTO_T1)
            __builtin_trap();
        (void)icc_params_from_atr(&p);
    }
    icc_power_off();
    return 0;
}
