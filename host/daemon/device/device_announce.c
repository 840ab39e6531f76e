/* device_announce: the ANNOUNCE message of a mail signature
 * (docs/appliance.md "The announcement": fields tag (1) · length (2, big-endian)
 * · value). The appliance refuses anything outside its rules, so every field is
 * made to fit them here: shortest-form UTF-8 (RFC 3629 §3) without control
 * characters, each text within its cap, the whole within 2048 bytes. */
#include <stdio.h>
#include <string.h>

#include "device.h"

#define ELLIPSIS     "\xE2\x80\xA6" /* U+2026 */
#define ELLIPSIS_LEN 3u

/* Length of the valid UTF-8 sequence at s[0..n) and its code point; 0 when
 * invalid (overlong, surrogate, > U+10FFFF, truncated). */
static size_t utf8_seq(const uint8_t *s, size_t n, uint32_t *cp)
{
    uint8_t c = s[0];
    size_t len;
    uint32_t v, min;
    if (c < 0x80) {
        *cp = c;
        return 1;
    } else if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
        v = c & 0x1Fu;
        min = 0x80;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        v = c & 0x0Fu;
        min = 0x800;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        v = c & 0x07u;
        min = 0x10000;
    } else {
        return 0;
    }
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0u) != 0x80u)
            return 0;
        v = v << 6 | (s[i] & 0x3Fu);
    }
    if (v < min || v > 0x10FFFFu || (v >= 0xD800u && v <= 0xDFFFu))
        return 0;
    *cp = v;
    return len;
}

size_t device_text_clean(const char *src, size_t n, char *dst, size_t dst_cap, size_t max)
{
    if (dst_cap == 0)
        return 0;
    if (max >= dst_cap)
        max = dst_cap - 1;
    const uint8_t *s = (const uint8_t *)src;
    static const uint8_t qmark = '?';
    size_t o = 0;
    bool space = false, cut = false;
    for (size_t i = 0; i < n;) {
        uint32_t cp = 0;
        size_t l = utf8_seq(s + i, n - i, &cp);
        const uint8_t *p = s + i;
        if (l == 0) {
            p = &qmark; /* a byte that is not UTF-8 */
            i += 1;
            l = 1;
        } else {
            i += l;
            /* C0, DEL and C1 controls (so tabs and the line breaks of folded
             * headers too) become white space, never a control character. */
            if (cp <= 0x20u || cp == 0x7Fu || (cp >= 0x80u && cp <= 0x9Fu)) {
                space = o > 0;
                continue;
            }
        }
        size_t need = l + (space ? 1u : 0u);
        if (o + need > max) {
            cut = true;
            break;
        }
        if (space)
            dst[o++] = ' ';
        space = false;
        memcpy(dst + o, p, l);
        o += l;
    }
    if (cut && max >= ELLIPSIS_LEN) {
        while (o > 0 && o + ELLIPSIS_LEN > max) {
            o--; /* back to a character boundary */
            while (o > 0 && ((uint8_t)dst[o] & 0xC0u) == 0x80u)
                o--;
        }
        memcpy(dst + o, ELLIPSIS, ELLIPSIS_LEN);
        o += ELLIPSIS_LEN;
    }
    dst[o] = '\0';
    return o;
}

typedef struct {
    uint8_t *p;
    size_t cap, len;
    bool ok;
} msg_t;

static bool put(msg_t *m, uint8_t tag, const void *a, size_t an, const void *b, size_t bn)
{
    size_t n = an + bn;
    if (!m->ok || n > 0xFFFFu || m->cap - m->len < 3u + n) {
        return false;
    }
    m->p[m->len] = tag;
    m->p[m->len + 1] = (uint8_t)(n >> 8);
    m->p[m->len + 2] = (uint8_t)n;
    if (an > 0)
        memcpy(m->p + m->len + 3, a, an);
    if (bn > 0)
        memcpy(m->p + m->len + 3 + an, b, bn);
    m->len += 3u + n;
    return true;
}

/* A text field cut to fit both its cap and what is left of the message
 * (keeping `keep` bytes for what must still come). A text that must not be
 * empty gets "?". */
static bool put_text(msg_t *m, uint8_t tag, const char *s, size_t max, size_t keep, bool nonempty)
{
    char t[DEVICE_SUBJECT_MAX + 1];
    size_t room = m->cap - m->len;
    if (room < 3u + keep + (nonempty ? 1u : 0u))
        return false;
    room -= 3u + keep;
    if (max > room)
        max = room;
    size_t n = device_text_clean(s, strlen(s), t, sizeof t, max);
    if (n == 0 && nonempty) {
        t[0] = '?';
        n = 1;
    }
    return put(m, tag, t, n, NULL, 0);
}

/* Recipients of the summary's To (To and Cc, joined with ", "): split at the
 * commas outside quotes, comments and angle brackets (RFC 5322 §3.4). */
static size_t split_recipients(const char *to, const char *starts[], size_t lens[], size_t max)
{
    size_t n = 0;
    const char *p = to, *start = to;
    bool quoted = false;
    int angle = 0, paren = 0;
    for (;; p++) {
        char c = *p;
        if (c == '\\' && quoted && p[1] != '\0') {
            p++;
            continue;
        }
        if (c == '"' && paren == 0)
            quoted = !quoted;
        else if (!quoted && c == '<')
            angle++;
        else if (!quoted && c == '>' && angle > 0)
            angle--;
        else if (!quoted && c == '(')
            paren++;
        else if (!quoted && c == ')' && paren > 0)
            paren--;
        if (c == '\0' || (c == ',' && !quoted && angle == 0 && paren == 0)) {
            const char *a = start, *b = p;
            while (a < b && (*a == ' ' || *a == '\t'))
                a++;
            while (b > a && (b[-1] == ' ' || b[-1] == '\t'))
                b--;
            if (b > a) {
                if (n < max) {
                    starts[n] = a;
                    lens[n] = (size_t)(b - a);
                }
                n++;
            }
            start = p + 1;
        }
        if (c == '\0')
            break;
    }
    return n; /* may be > max: the count of all */
}

bool device_announce_build(const smime_summary_t *sm, const uint8_t *signed_attrs,
                           size_t signed_attrs_len, uint8_t *out, size_t cap, size_t *out_len)
{
    *out_len = 0;
    if (sm == NULL || signed_attrs == NULL || signed_attrs_len == 0 ||
        signed_attrs_len > DEVICE_SIGNED_ATTRS_MAX || out == NULL)
        return false;
    msg_t m = {.p = out, .cap = cap < DEVICE_ANNOUNCE_MAX ? cap : DEVICE_ANNOUNCE_MAX, .ok = true};
    /* What must fit whatever the texts: the digest and the signedAttrs. */
    const size_t tail = 3u + 32u + 3u + signed_attrs_len;
    /* Room kept for one To after From (the appliance wants at least one). */
    const size_t one_to = 3u + 1u;

    bool ok = put_text(&m, DEVICE_TAG_FROM, sm->from, DEVICE_TEXT_MAX, tail + one_to, true);

    const char *rs[DEVICE_TO_MAX];
    size_t rl[DEVICE_TO_MAX];
    size_t nto = split_recipients(sm->to, rs, rl, DEVICE_TO_MAX);
    size_t shown = nto <= DEVICE_TO_MAX ? nto : DEVICE_TO_MAX - 1u;
    if (nto == 0) {
        ok = ok && put_text(&m, DEVICE_TAG_TO, "?", 1, tail, true);
    }
    size_t put_to = 0;
    for (size_t i = 0; ok && i < shown; i++) {
        size_t l = rl[i] < DEVICE_TEXT_MAX * 4u ? rl[i] : DEVICE_TEXT_MAX * 4u;
        char raw[DEVICE_TEXT_MAX * 4u + 1u];
        memcpy(raw, rs[i], l);
        raw[l] = '\0';
        size_t before = m.len;
        if (!put_text(&m, DEVICE_TAG_TO, raw, DEVICE_TEXT_MAX, tail, true)) {
            m.len = before;
            if (i == 0)
                ok = false;
            break;
        }
        put_to++;
    }
    if (ok && put_to < nto) {
        char more[32];
        snprintf(more, sizeof more, "(+%zu)", nto - put_to);
        put_text(&m, DEVICE_TAG_TO, more, DEVICE_TEXT_MAX, tail, true); /* best effort */
    }

    if (ok && sm->subject[0] != '\0') {
        size_t before = m.len;
        if (!put_text(&m, DEVICE_TAG_SUBJECT, sm->subject, DEVICE_SUBJECT_MAX, tail, false))
            m.len = before;
    }

    size_t natt = sm->attachment_count;
    size_t known = natt < SMIME_SUMMARY_ATTACH_MAX ? natt : SMIME_SUMMARY_ATTACH_MAX;
    size_t ashown = natt <= DEVICE_ATTACH_MAX ? known : DEVICE_ATTACH_MAX - 1u;
    size_t put_att = 0;
    for (size_t i = 0; ok && i < ashown; i++) {
        char name[DEVICE_TEXT_MAX + 1];
        size_t room = m.cap - m.len;
        if (room < tail + 3u + 4u + 1u)
            break;
        size_t max = room - tail - 3u - 4u;
        size_t nl =
            device_text_clean(sm->attachments[i].name, strlen(sm->attachments[i].name), name,
                              sizeof name, max < DEVICE_TEXT_MAX ? max : DEVICE_TEXT_MAX);
        if (nl == 0) {
            name[0] = '?';
            nl = 1;
        }
        uint64_t sz = sm->attachments[i].size;
        uint32_t s32 = sz > 0xFFFFFFFFu ? 0xFFFFFFFFu : (uint32_t)sz;
        uint8_t be[4] = {(uint8_t)(s32 >> 24), (uint8_t)(s32 >> 16), (uint8_t)(s32 >> 8),
                         (uint8_t)s32};
        if (!put(&m, DEVICE_TAG_ATTACHMENT, be, 4, name, nl))
            break;
        put_att++;
    }
    if (ok && put_att < natt) {
        /* "(+N)": the others, with the size of those the summary knows */
        uint64_t rest = 0;
        for (size_t i = put_att; i < known; i++)
            rest += sm->attachments[i].size;
        char more[32];
        int k = snprintf(more, sizeof more, "(+%zu)", natt - put_att);
        uint32_t s32 = rest > 0xFFFFFFFFu ? 0xFFFFFFFFu : (uint32_t)rest;
        uint8_t be[4] = {(uint8_t)(s32 >> 24), (uint8_t)(s32 >> 16), (uint8_t)(s32 >> 8),
                         (uint8_t)s32};
        if (k > 0 && m.cap - m.len >= tail + 3u + 4u + (size_t)k)
            put(&m, DEVICE_TAG_ATTACHMENT, be, 4, more, (size_t)k);
    }

    ok = ok && put(&m, DEVICE_TAG_CONTENT_DIGEST, sm->content_digest, 32, NULL, 0);
    ok = ok && put(&m, DEVICE_TAG_SIGNED_ATTRS, signed_attrs, signed_attrs_len, NULL, 0);
    if (!ok)
        return false;
    *out_len = m.len;
    return true;
}
