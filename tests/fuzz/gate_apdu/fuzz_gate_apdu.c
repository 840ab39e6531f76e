/* Fuzz target: the gate's APDU classifier (firmware/gate/gate_apdu.c). Every
 * input is one command APDU; the classification must stay inside the input
 * and be consistent with it. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "gate_apdu.h"

static void check_span(const uint8_t *p, size_t n, const uint8_t *base, size_t size)
{
    if (n == 0)
        return;
    if (p == NULL || p < base || n > size || (size_t)(p - base) > size - n)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    gate_apdu_t a;
    gate_apdu_kind_t k = gate_apdu_parse(data, size, &a);
    if (k != a.kind)
        abort();
    check_span(a.data, a.lc, data, size);
    check_span(a.state, a.state_len, data, size);
    check_span(a.msg, a.msg_len, data, size);
    if (k == GATE_APDU_REFUSE && (a.refuse_sw >> 8) != 0x67 && (a.refuse_sw >> 8) != 0x68 &&
        (a.refuse_sw >> 8) != 0x69 && (a.refuse_sw >> 8) != 0x6A && (a.refuse_sw >> 8) != 0x6D)
        abort();
    /* A command that names a private-key operation is never passed unread. */
    if (k == GATE_APDU_PASS && size >= 4 && size <= 261 &&
        (data[1] == 0x88 || data[1] == 0x22 || data[1] == 0xC2 || data[1] == 0xC3))
        abort();
    if (k == GATE_APDU_PSO_HASH && !a.has_state && !a.has_msg)
        abort();
    return 0;
}
