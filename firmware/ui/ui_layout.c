/* ui_layout: UTF-8 aware fitting of text to the display, see ui_layout.h. */
#include "ui_layout.h"

#include <stdbool.h>

size_t ui_utf8_seq_len(const char *s)
{
    const uint8_t *p = (const uint8_t *)s;
    if (p == NULL || p[0] == 0)
        return 0;
    uint8_t c = p[0];
    if (c < 0x80u)
        return 1;
    size_t n;
    uint8_t lo = 0x80u, hi = 0xBFu; /* allowed range of the second byte */
    if (c >= 0xC2u && c <= 0xDFu) {
        n = 2;
    } else if (c >= 0xE0u && c <= 0xEFu) {
        n = 3;
        if (c == 0xE0u)
            lo = 0xA0u; /* overlong */
        else if (c == 0xEDu)
            hi = 0x9Fu; /* UTF-16 surrogates */
    } else if (c >= 0xF0u && c <= 0xF4u) {
        n = 4;
        if (c == 0xF0u)
            lo = 0x90u; /* overlong */
        else if (c == 0xF4u)
            hi = 0x8Fu; /* above U+10FFFF */
    } else {
        return 0; /* continuation byte, C0/C1 overlong leads, F5..FF */
    }
    if (p[1] < lo || p[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++) {
        if (p[i] < 0x80u || p[i] > 0xBFu)
            return 0;
    }
    return n;
}

size_t ui_utf8_columns(const char *s)
{
    size_t cols = 0;
    if (s == NULL)
        return 0;
    while (*s != 0) {
        size_t n = ui_utf8_seq_len(s);
        s += n != 0 ? n : 1u;
        cols++;
    }
    return cols;
}

size_t ui_append(char *out, size_t cap, const char *in, size_t cols)
{
    if (out == NULL || cap == 0)
        return 0;
    size_t pos = 0;
    while (pos < cap && out[pos] != 0)
        pos++;
    if (pos == cap) { /* not terminated: a bug of the caller; keep it safe */
        out[cap - 1u] = 0;
        pos = cap - 1u;
    }
    size_t used = ui_utf8_columns(out);
    if (in == NULL)
        return used;
    while (*in != 0 && used < cols) {
        size_t n = ui_utf8_seq_len(in);
        bool bad = n == 0 || (n == 1 && ((uint8_t)in[0] < 0x20u || in[0] == 0x7F));
        size_t w = bad ? 1u : n;
        if (w > cap - 1u - pos)
            break; /* the character does not fit in the buffer */
        if (bad) {
            out[pos++] = '?';
            in += n != 0 ? n : 1u;
        } else {
            for (size_t i = 0; i < n; i++)
                out[pos++] = in[i];
            in += n;
        }
        used++;
    }
    out[pos] = 0;
    return used;
}

size_t ui_fit(char *out, size_t cap, const char *in, size_t cols)
{
    if (out == NULL || cap == 0)
        return 0;
    out[0] = 0;
    return ui_append(out, cap, in, cols);
}
