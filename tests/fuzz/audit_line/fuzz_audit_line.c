/* Fuzz target: audit_parse_line, the envelope parser audit_verify runs on every
 * line of a log it is asked to check (a file anyone may have edited). The
 * input is split at newlines, as the verifier does, and each piece parsed. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "audit.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = (const char *)data;
    size_t left = size;
    while (left > 0) {
        const char *nl = memchr(p, '\n', left);
        size_t len = nl ? (size_t)(nl - p) : left;
        uint64_t seq = 0;
        uint8_t prev[32];
        char why[64];
        if (audit_parse_line(p, len, &seq, prev, why, sizeof why) && seq == 0)
            __builtin_trap(); /* a parsed line always has seq >= 1 */
        if (!nl)
            break;
        p = nl + 1;
        left -= len + 1;
    }
    return 0;
}
