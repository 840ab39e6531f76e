/* Fuzz target: the first byte picks the parser, the rest is its input —
 * device_receipt_parse (+ verify with a fixed key when it parses),
 * device_info_parse, device_signed_attrs_digest, device_text_clean. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "device.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t sel = data[0];
    const uint8_t *p = data + 1;
    size_t n = size - 1;
    switch (sel & 3u) {
    case 0: {
        device_receipt_t r;
        char why[128];
        if (device_receipt_parse(p, n, &r, why, sizeof why)) {
            /* a P-256 SPKI of the corpus's device: any key will do */
            static const uint8_t spki[91] = {
                0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x02, 0x01,
                0x06, 0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
                0x04, 0x6B, 0x17, 0xD1, 0xF2, 0xE1, 0x2C, 0x42, 0x47, 0xF8, 0xBC, 0xE6, 0xE5,
                0x63, 0xA4, 0x40, 0xF2, 0x77, 0x03, 0x7D, 0x81, 0x2D, 0xEB, 0x33, 0xA0, 0xF4,
                0xA1, 0x39, 0x45, 0xD8, 0x98, 0xC2, 0x96, 0x4F, 0xE3, 0x42, 0xE2, 0xFE, 0x1A,
                0x7F, 0x9B, 0x8E, 0xE7, 0xEB, 0x4A, 0x7C, 0x0F, 0x9E, 0x16, 0x2B, 0xCE, 0x33,
                0x57, 0x6B, 0x31, 0x5E, 0xCE, 0xCB, 0xB6, 0x40, 0x68, 0x37, 0xBF, 0x51, 0xF5};
            (void)device_receipt_verify(&r, spki, sizeof spki, why, sizeof why);
            json_object_put(device_receipt_json(&r));
        }
        break;
    }
    case 1: {
        device_info_t info;
        (void)device_info_parse(p, n, &info);
        break;
    }
    case 2: {
        uint8_t md[32];
        (void)device_signed_attrs_digest(p, n, md);
        break;
    }
    default: {
        char out[DEVICE_SUBJECT_MAX + 1];
        size_t max = n > 0 ? p[0] : 0;
        size_t len = device_text_clean((const char *)p, n, out, sizeof out, max);
        if (len > max || len >= sizeof out || out[len] != '\0')
            __builtin_trap();
        break;
    }
    }
    return 0;
}
