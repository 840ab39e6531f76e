/* proto_b64: strict base64 for binary fields of cachetd's protocol
 * (certificates, signatures, digests): RFC 4648 §4 alphabet, padding required
 * (§3.2), no line breaks or other characters (§3.3), canonical encoding only
 * (§3.5: the pad bits of the last character are zero). Small on purpose, and
 * fuzzed (tests/fuzz/proto). */
#include "proto.h"

#include <stdint.h>

static const char b64_alphabet[64] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* 0..63, or -1 for anything outside the alphabet ('=' included). */
static int b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

bool proto_b64_encode(const uint8_t *in, size_t in_len, char *out, size_t out_cap)
{
    if (out == NULL || (in == NULL && in_len != 0))
        return false;
    /* PROTO_B64_ENCODED_LEN(in_len) + 1 without overflow. */
    if (in_len > (SIZE_MAX - 1) / 4 * 3 - 2)
        return false;
    size_t need = PROTO_B64_ENCODED_LEN(in_len);
    if (out_cap < need + 1)
        return false;

    size_t o = 0, i = 0;
    for (; in_len - i >= 3; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[o++] = b64_alphabet[(v >> 18) & 63];
        out[o++] = b64_alphabet[(v >> 12) & 63];
        out[o++] = b64_alphabet[(v >> 6) & 63];
        out[o++] = b64_alphabet[v & 63];
    }
    size_t rest = in_len - i;
    if (rest > 0) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (rest == 2)
            v |= (uint32_t)in[i + 1] << 8;
        out[o++] = b64_alphabet[(v >> 18) & 63];
        out[o++] = b64_alphabet[(v >> 12) & 63];
        out[o++] = rest == 2 ? b64_alphabet[(v >> 6) & 63] : '=';
        out[o++] = '=';
    }
    out[o] = '\0';
    return true;
}

bool proto_b64_decode(const char *in, size_t in_len, uint8_t *out, size_t out_cap, size_t *out_len)
{
    if (out_len == NULL || (in == NULL && in_len != 0) || (out == NULL && out_cap != 0))
        return false;
    if (in_len % 4 != 0)
        return false;
    const unsigned char *s = (const unsigned char *)in;
    size_t pad = 0;
    if (in_len > 0 && s[in_len - 1] == '=')
        pad = (in_len > 1 && s[in_len - 2] == '=') ? 2 : 1;
    size_t n = in_len / 4 * 3 - pad;
    /* Everything is checked before the first byte is written. */
    if (n > out_cap)
        return false;

    size_t o = 0;
    for (size_t i = 0; i < in_len; i += 4) {
        bool last = i + 4 == in_len;
        size_t quad_pad = last ? pad : 0;
        uint32_t v = 0;
        for (size_t k = 0; k < 4; k++) {
            int d;
            if (k >= 4 - quad_pad) {
                d = 0; /* the '=' checked above */
            } else {
                d = b64_value(s[i + k]);
                if (d < 0)
                    return false; /* outside the alphabet, or '=' too early */
            }
            v = v << 6 | (uint32_t)d;
        }
        /* §3.5: the bits under the padding must be zero. */
        if ((quad_pad == 1 && (v & 0xFFu) != 0) || (quad_pad == 2 && (v & 0xFFFFu) != 0))
            return false;
        uint8_t bytes[3] = {(uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
        for (size_t k = 0; k < 3 - quad_pad; k++)
            out[o++] = bytes[k];
    }
    *out_len = o;
    return true;
}
