/* smime_mime.c: RFC 5322 header blocks (fields, folding), RFC 2045 structured
 * values (Content-Type, Content-Disposition) with RFC 2231 parameters, RFC 2047
 * encoded-words, and the first address of an address list. Every input is
 * outside data: lengths are capped and nothing here recurses. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smime_int.h"

static int lower(int c)
{
    return (c >= 'A' && c <= 'Z') ? c + ('a' - 'A') : c;
}

static bool ieq_n(const char *a, const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (lower((unsigned char)a[i]) != lower((unsigned char)b[i]))
            return false;
    }
    return true;
}

/* ---- header blocks ------------------------------------------------------ */

void smime_hdrs_init(smime_hdrs_t *h)
{
    memset(h, 0, sizeof *h);
}

void smime_hdrs_reset(smime_hdrs_t *h)
{
    h->len = 0;
    h->n = 0;
}

void smime_hdrs_free(smime_hdrs_t *h)
{
    free(h->raw);
    free(h->f);
    memset(h, 0, sizeof *h);
}

static bool hdrs_reserve(smime_hdrs_t *h, size_t more)
{
    if (more > SMIME_HEADER_MAX || h->len > SMIME_HEADER_MAX - more)
        return false;
    size_t need = h->len + more;
    if (need <= h->cap)
        return true;
    size_t cap = h->cap ? h->cap : 1024u;
    while (cap < need)
        cap *= 2u;
    char *p = realloc(h->raw, cap);
    if (p == NULL)
        return false;
    h->raw = p;
    h->cap = cap;
    return true;
}

static smime_hdr_status_t hdrs_new_field(smime_hdrs_t *h, size_t name_len, size_t len)
{
    if (h->n >= SMIME_HEADER_FIELDS_MAX)
        return SMIME_HDR_TOO_BIG;
    if (h->n == h->fcap) {
        size_t fcap = h->fcap ? h->fcap * 2u : 16u;
        smime_field_t *f = realloc(h->f, fcap * sizeof *f);
        if (f == NULL)
            return SMIME_HDR_NOMEM;
        h->f = f;
        h->fcap = fcap;
    }
    if (!hdrs_reserve(h, len))
        return SMIME_HDR_TOO_BIG;
    h->f[h->n].off = h->len;
    h->f[h->n].len = 0;
    h->f[h->n].name_len = name_len;
    h->n++;
    return SMIME_HDR_OK;
}

smime_hdr_status_t smime_hdrs_add_line(smime_hdrs_t *h, const uint8_t *line, size_t len)
{
    if (len == 0 || len > SMIME_LINE_MAX)
        return SMIME_HDR_BAD;
    /* RFC 5322 §2.2: no NUL, no CR or LF inside a field (§2.2.3 folding
     * leaves CRLF only between lines). */
    if (memchr(line, '\0', len) != NULL || memchr(line, '\r', len) != NULL)
        return SMIME_HDR_BAD;
    if (line[0] == ' ' || line[0] == '\t') {
        if (h->n == 0)
            return SMIME_HDR_BAD;
        if (!hdrs_reserve(h, len + 2u))
            return SMIME_HDR_TOO_BIG;
        memcpy(h->raw + h->len, "\r\n", 2);
        memcpy(h->raw + h->len + 2, line, len);
        h->len += len + 2u;
        h->f[h->n - 1].len += len + 2u;
        return SMIME_HDR_OK;
    }
    /* field-name = 1*ftext (printable US-ASCII except ':'), RFC 5322 §3.6.8;
     * obsolete white space before the colon tolerated (§4.5). */
    size_t i = 0;
    while (i < len && line[i] >= 33 && line[i] <= 126 && line[i] != ':')
        i++;
    size_t name_len = i;
    while (i < len && (line[i] == ' ' || line[i] == '\t'))
        i++;
    if (name_len == 0 || i >= len || line[i] != ':')
        return SMIME_HDR_BAD;
    smime_hdr_status_t st = hdrs_new_field(h, name_len, len);
    if (st != SMIME_HDR_OK)
        return st;
    memcpy(h->raw + h->len, line, len);
    h->len += len;
    h->f[h->n - 1].len = len;
    return SMIME_HDR_OK;
}

smime_hdr_status_t smime_hdrs_copy_field(smime_hdrs_t *dst, const smime_hdrs_t *src, size_t i)
{
    const smime_field_t *f = &src->f[i];
    smime_hdr_status_t st = hdrs_new_field(dst, f->name_len, f->len);
    if (st != SMIME_HDR_OK)
        return st;
    memcpy(dst->raw + dst->len, src->raw + f->off, f->len);
    dst->len += f->len;
    dst->f[dst->n - 1].len = f->len;
    return SMIME_HDR_OK;
}

bool smime_field_is(const smime_hdrs_t *h, size_t i, const char *name)
{
    size_t n = strlen(name);
    return h->f[i].name_len == n && ieq_n(h->raw + h->f[i].off, name, n);
}

bool smime_field_has_prefix(const smime_hdrs_t *h, size_t i, const char *prefix)
{
    size_t n = strlen(prefix);
    return h->f[i].name_len >= n && ieq_n(h->raw + h->f[i].off, prefix, n);
}

long smime_hdrs_find(const smime_hdrs_t *h, const char *name)
{
    for (size_t i = 0; i < h->n; i++) {
        if (smime_field_is(h, i, name))
            return (long)i;
    }
    return -1;
}

char *smime_field_value(const smime_hdrs_t *h, size_t i)
{
    const smime_field_t *f = &h->f[i];
    const char *p = h->raw + f->off + f->name_len;
    const char *end = h->raw + f->off + f->len;
    while (p < end && *p != ':')
        p++;
    if (p < end)
        p++;
    char *out = malloc((size_t)(end - p) + 1u);
    if (out == NULL)
        return NULL;
    size_t n = 0;
    for (; p < end; p++) {
        if (*p == '\r' || *p == '\n')
            continue; /* unfolding, RFC 5322 §2.2.3 */
        out[n++] = *p;
    }
    size_t s = 0;
    while (s < n && (out[s] == ' ' || out[s] == '\t'))
        s++;
    while (n > s && (out[n - 1] == ' ' || out[n - 1] == '\t'))
        n--;
    memmove(out, out + s, n - s);
    out[n - s] = '\0';
    return out;
}

/* ---- structured values (RFC 2045 §5.1, RFC 822 comments) ---------------- */

static bool is_tspecial(int c)
{
    return c != 0 && strchr("()<>@,;:\\\"/[]?=", c) != NULL;
}

static bool is_token_char(int c)
{
    return c > 32 && c < 127 && !is_tspecial(c);
}

/* Skips white space and (nested) comments; iterative, any depth. */
static const char *skip_cfws(const char *p)
{
    for (;;) {
        while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
            p++;
        if (*p != '(')
            return p;
        size_t depth = 0;
        while (*p != '\0') {
            if (*p == '\\' && p[1] != '\0') {
                p += 2;
                continue;
            }
            if (*p == '(')
                depth++;
            else if (*p == ')' && --depth == 0) {
                p++;
                break;
            }
            p++;
        }
    }
}

static const char *read_token(const char *p, char *out, size_t cap, bool lc)
{
    size_t n = 0;
    while (is_token_char((unsigned char)*p)) {
        if (n + 1u < cap)
            out[n++] = (char)(lc ? lower((unsigned char)*p) : *p);
        p++;
    }
    if (cap > 0)
        out[n] = '\0';
    return p;
}

bool smime_parse_ctype(const char *value, smime_ctype_t *ct)
{
    memset(ct, 0, sizeof *ct);
    const char *p = skip_cfws(value);
    p = read_token(p, ct->type, sizeof ct->type, true);
    p = skip_cfws(p);
    if (ct->type[0] == '\0' || *p != '/') {
        ct->type[0] = '\0';
        return false;
    }
    p = skip_cfws(p + 1);
    read_token(p, ct->subtype, sizeof ct->subtype, true);
    if (ct->subtype[0] == '\0') {
        ct->type[0] = '\0';
        return false;
    }
    return true;
}

bool smime_parse_token(const char *value, char *out, size_t cap)
{
    const char *p = skip_cfws(value);
    read_token(p, out, cap, true);
    return out[0] != '\0';
}

/* Finds parameter attr (exact name, case-insensitive) and copies its value
 * (quoted-string unescaped) into out. false if absent or longer than cap-1. */
static bool param_raw(const char *value, const char *attr, char *out, size_t cap)
{
    size_t alen = strlen(attr);
    const char *p = value;
    bool inq = false;
    /* The parameters start after the first ';' outside quotes and comments. */
    for (;;) {
        while (*p != '\0' && (inq || *p != ';')) {
            if (*p == '"')
                inq = !inq;
            else if (*p == '\\' && p[1] != '\0')
                p++;
            else if (!inq && *p == '(') {
                p = skip_cfws(p);
                continue;
            }
            p++;
        }
        if (*p == '\0')
            return false;
        p = skip_cfws(p + 1);
        const char *name = p;
        while (is_token_char((unsigned char)*p) || *p == '*')
            p++;
        size_t nlen = (size_t)(p - name);
        p = skip_cfws(p);
        if (*p != '=')
            continue;
        p = skip_cfws(p + 1);
        bool match = nlen == alen && ieq_n(name, attr, alen);
        size_t n = 0;
        bool fits = true;
        if (*p == '"') {
            p++;
            while (*p != '\0' && *p != '"') {
                if (*p == '\\' && p[1] != '\0')
                    p++;
                if (n + 1u < cap)
                    out[n++] = *p;
                else
                    fits = false;
                p++;
            }
            if (*p == '"')
                p++;
        } else {
            /* token; lenient: anything up to ';' or white space */
            while (*p != '\0' && *p != ';' && *p != ' ' && *p != '\t' && *p != '\r' && *p != '\n') {
                if (n + 1u < cap)
                    out[n++] = *p;
                else
                    fits = false;
                p++;
            }
        }
        if (match) {
            if (cap > 0)
                out[n] = '\0';
            return fits && cap > 0;
        }
    }
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = lower(c);
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* Latin-1 family (ISO-8859-1, -15, windows-1252 approximated by Latin-1). */
static int charset_kind(const char *cs, size_t n)
{
    static const char *const utf8[] = {"utf-8", "utf8", "us-ascii", "ascii"};
    static const char *const latin[] = {"iso-8859-1", "iso8859-1",    "latin1", "iso-8859-15",
                                        "iso8859-15", "windows-1252", "cp1252", "latin-1"};
    const char *star = memchr(cs, '*', n); /* RFC 2231 §5 language suffix */
    if (star != NULL)
        n = (size_t)(star - cs);
    for (size_t i = 0; i < sizeof utf8 / sizeof utf8[0]; i++) {
        if (strlen(utf8[i]) == n && ieq_n(cs, utf8[i], n))
            return 1;
    }
    for (size_t i = 0; i < sizeof latin / sizeof latin[0]; i++) {
        if (strlen(latin[i]) == n && ieq_n(cs, latin[i], n))
            return 2;
    }
    return 0;
}

/* Appends in[0..n) converted from charset kind to UTF-8 (not yet validated)
 * to out (cap bytes, position *o). */
static void append_charset(int kind, const uint8_t *in, size_t n, uint8_t *out, size_t cap,
                           size_t *o)
{
    for (size_t i = 0; i < n; i++) {
        uint8_t c = in[i];
        if (kind == 2 && c >= 0x80) {
            if (*o + 2u > cap)
                return;
            out[(*o)++] = (uint8_t)(0xC0u | (c >> 6));
            out[(*o)++] = (uint8_t)(0x80u | (c & 0x3Fu));
        } else {
            if (*o + 1u > cap)
                return;
            out[(*o)++] = c;
        }
    }
}

size_t smime_utf8_copy(char *dst, size_t cap, const char *src, size_t len)
{
    if (cap == 0)
        return 0;
    const uint8_t *s = (const uint8_t *)src;
    size_t o = 0, i = 0;
    while (i < len) {
        uint8_t c = s[i];
        size_t n = 1;
        uint32_t cp = c;
        bool ok = true;
        if (c >= 0x80) {
            if (c >= 0xC2 && c <= 0xDF)
                n = 2, cp = c & 0x1Fu;
            else if (c >= 0xE0 && c <= 0xEF)
                n = 3, cp = c & 0x0Fu;
            else if (c >= 0xF0 && c <= 0xF4)
                n = 4, cp = c & 0x07u;
            else
                ok = false;
            if (ok && i + n > len)
                ok = false;
            for (size_t k = 1; ok && k < n; k++) {
                if ((s[i + k] & 0xC0u) != 0x80u)
                    ok = false;
                else
                    cp = (cp << 6) | (s[i + k] & 0x3Fu);
            }
            if (ok && ((n == 3 && cp < 0x800u) || (n == 4 && (cp < 0x10000u || cp > 0x10FFFFu)) ||
                       (cp >= 0xD800u && cp <= 0xDFFFu)))
                ok = false;
            if (!ok)
                n = 1;
        }
        if (!ok) {
            if (o + 2u > cap)
                break;
            dst[o++] = '?';
        } else if (cp < 0x20u || cp == 0x7Fu || (cp >= 0x80u && cp < 0xA0u)) {
            if (o + 2u > cap)
                break;
            dst[o++] = ' ';
        } else {
            if (o + n + 1u > cap)
                break;
            memcpy(dst + o, s + i, n);
            o += n;
        }
        i += n;
    }
    dst[o] = '\0';
    return o;
}

/* B (base64) or Q decoding of one encoded-text, RFC 2047 §4. */
static size_t decode_word_text(char enc, const char *t, size_t n, uint8_t *out)
{
    if (enc == 'b') {
        smime_b64dec_t d = {0};
        return smime_b64dec(&d, (const uint8_t *)t, n, out);
    }
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (t[i] == '_') {
            out[o++] = ' ';
        } else if (t[i] == '=' && i + 2u < n && hexval((unsigned char)t[i + 1]) >= 0 &&
                   hexval((unsigned char)t[i + 2]) >= 0) {
            out[o++] =
                (uint8_t)(hexval((unsigned char)t[i + 1]) * 16 + hexval((unsigned char)t[i + 2]));
            i += 2;
        } else {
            out[o++] = (uint8_t)t[i];
        }
    }
    return o;
}

size_t smime_decode_words(const char *in, size_t inlen, char *out, size_t cap)
{
    if (cap == 0)
        return 0;
    size_t tcap = inlen * 2u + 4u;
    uint8_t *tmp = malloc(tcap);
    uint8_t *word = malloc(inlen + 4u);
    if (tmp == NULL || word == NULL) {
        free(tmp);
        free(word);
        return smime_utf8_copy(out, cap, in, inlen);
    }
    size_t o = 0;
    size_t after_word = (size_t)-1; /* output position just after the last encoded-word */
    size_t i = 0;
    while (i < inlen) {
        if (in[i] == '=' && i + 1u < inlen && in[i + 1] == '?') {
            /* =?charset?e?text?= */
            size_t cs = i + 2u, k = cs;
            while (k < inlen && in[k] != '?' && k - cs < 64u && in[k] != ' ')
                k++;
            if (k + 3u < inlen && in[k] == '?' && k > cs && in[k + 2] == '?' &&
                (lower((unsigned char)in[k + 1]) == 'b' ||
                 lower((unsigned char)in[k + 1]) == 'q')) {
                char enc = (char)lower((unsigned char)in[k + 1]);
                size_t ts = k + 3u, te = ts;
                while (te + 1u < inlen && !(in[te] == '?' && in[te + 1] == '=') && in[te] != ' ' &&
                       in[te] != '\t')
                    te++;
                int kind = charset_kind(in + cs, k - cs);
                if (te + 1u < inlen && in[te] == '?' && in[te + 1] == '=' && kind != 0) {
                    /* RFC 2047 §6.2: white space between adjacent encoded-words
                     * is not displayed. */
                    if (after_word != (size_t)-1) {
                        bool only_ws = true;
                        for (size_t q = after_word; q < o; q++) {
                            if (tmp[q] != ' ' && tmp[q] != '\t' && tmp[q] != '\r' && tmp[q] != '\n')
                                only_ws = false;
                        }
                        if (only_ws)
                            o = after_word;
                    }
                    size_t wn = decode_word_text(enc, in + ts, te - ts, word);
                    append_charset(kind, word, wn, tmp, tcap, &o);
                    after_word = o;
                    i = te + 2u;
                    continue;
                }
            }
        }
        if (o < tcap)
            tmp[o++] = (uint8_t)in[i];
        if (in[i] != ' ' && in[i] != '\t' && in[i] != '\r' && in[i] != '\n')
            after_word = (size_t)-1;
        i++;
    }
    size_t r = smime_utf8_copy(out, cap, (const char *)tmp, o);
    free(tmp);
    free(word);
    return r;
}

/* RFC 2231 §4: charset'language'%XX-encoded; appends raw bytes to buf. */
static void pct_decode(const char *v, uint8_t *buf, size_t cap, size_t *o)
{
    for (size_t i = 0; v[i] != '\0'; i++) {
        uint8_t c = (uint8_t)v[i];
        if (c == '%' && hexval((unsigned char)v[i + 1]) >= 0 &&
            hexval((unsigned char)v[i + 2]) >= 0) {
            c = (uint8_t)(hexval((unsigned char)v[i + 1]) * 16 + hexval((unsigned char)v[i + 2]));
            i += 2;
        }
        if (*o < cap)
            buf[(*o)++] = c;
    }
}

#define PARAM_VALUE_MAX    4096u
#define PARAM_SECTIONS_MAX 64u

bool smime_param_get(const char *value, const char *attr, bool decode, char *out, size_t cap)
{
    if (cap == 0)
        return false;
    out[0] = '\0';
    if (!decode)
        return param_raw(value, attr, out, cap);

    size_t alen = strlen(attr);
    if (alen > 64u)
        return false;
    char name[96];
    char *v = malloc(PARAM_VALUE_MAX);
    uint8_t *raw = malloc(PARAM_VALUE_MAX);
    if (v == NULL || raw == NULL) {
        free(v);
        free(raw);
        return false;
    }
    bool found = false;
    size_t o = 0;
    int kind = 1;

    /* RFC 2231 §4: attr*=charset'lang'value */
    memcpy(name, attr, alen);
    memcpy(name + alen, "*", 2);
    if (param_raw(value, name, v, PARAM_VALUE_MAX)) {
        const char *q1 = strchr(v, '\'');
        const char *q2 = q1 ? strchr(q1 + 1, '\'') : NULL;
        if (q2 != NULL) {
            kind = charset_kind(v, (size_t)(q1 - v));
            if (q1 == v)
                kind = 1; /* no charset given: take it as US-ASCII/UTF-8 */
            if (kind != 0) {
                pct_decode(q2 + 1, raw, PARAM_VALUE_MAX, &o);
                found = true;
            }
        }
    }
    /* RFC 2231 §3: attr*0, attr*1*, ... continuations */
    for (unsigned k = 0; !found && k < PARAM_SECTIONS_MAX; k++) {
        bool got = false;
        int n = snprintf(name, sizeof name, "%s*%u*", attr, k);
        if (n > 0 && (size_t)n < sizeof name && param_raw(value, name, v, PARAM_VALUE_MAX)) {
            const char *text = v;
            if (k == 0) {
                const char *q1 = strchr(v, '\'');
                const char *q2 = q1 ? strchr(q1 + 1, '\'') : NULL;
                if (q2 != NULL) {
                    kind = q1 == v ? 1 : charset_kind(v, (size_t)(q1 - v));
                    text = q2 + 1;
                }
            }
            pct_decode(text, raw, PARAM_VALUE_MAX, &o);
            got = true;
        } else {
            name[strlen(name) - 1] = '\0';
            if (param_raw(value, name, v, PARAM_VALUE_MAX)) {
                size_t l = strlen(v);
                if (l > PARAM_VALUE_MAX - o)
                    l = PARAM_VALUE_MAX - o;
                memcpy(raw + o, v, l);
                o += l;
                got = true;
            }
        }
        if (!got) {
            if (k > 0)
                found = true;
            break;
        }
    }
    if (found) {
        size_t w = 0;
        uint8_t *u = malloc(PARAM_VALUE_MAX * 2u);
        if (u != NULL) {
            append_charset(kind == 0 ? 2 : kind, raw, o, u, PARAM_VALUE_MAX * 2u, &w);
            smime_utf8_copy(out, cap, (const char *)u, w);
            free(u);
        } else {
            found = false;
        }
    } else if (param_raw(value, attr, v, PARAM_VALUE_MAX)) {
        /* Plain value; mail clients put RFC 2047 words in quoted names. */
        smime_decode_words(v, strlen(v), out, cap);
        found = true;
    }
    free(v);
    free(raw);
    return found;
}

/* ---- addresses (RFC 5322 §3.4) ------------------------------------------ */

bool smime_addr_first(const char *value, char *out, size_t cap)
{
    if (cap == 0)
        return false;
    out[0] = '\0';
    const char *p = value;
    const char *start = value;
    bool inq = false;
    const char *lt = NULL, *gt = NULL, *end = NULL;
    while (*p != '\0') {
        if (inq) {
            if (*p == '\\' && p[1] != '\0')
                p++;
            else if (*p == '"')
                inq = false;
            p++;
            continue;
        }
        if (*p == '"') {
            inq = true;
        } else if (*p == '(') {
            p = skip_cfws(p);
            continue;
        } else if (*p == '<' && lt == NULL) {
            lt = p;
        } else if (*p == '>' && lt != NULL && gt == NULL) {
            gt = p;
        } else if (*p == ':' && lt == NULL) {
            start = p + 1; /* group: display-name ":" mailbox-list ";" */
        } else if ((*p == ',' || *p == ';') && (lt == NULL || gt != NULL)) {
            end = p;
            break;
        }
        p++;
    }
    if (end == NULL)
        end = p;
    const char *a, *b;
    if (lt != NULL && gt != NULL && gt < end) {
        a = lt + 1;
        b = gt;
    } else {
        a = start;
        b = end;
    }
    size_t n = 0;
    for (const char *q = a; q < b;) {
        if (*q == '(') {
            /* drop comments around a bare addr-spec */
            const char *r = skip_cfws(q);
            q = r > q ? r : q + 1;
            continue;
        }
        if (*q != ' ' && *q != '\t' && *q != '\r' && *q != '\n') {
            if (n + 1u >= cap)
                return false;
            out[n++] = *q;
        }
        q++;
    }
    out[n] = '\0';
    return n > 0 && strchr(out, '@') != NULL;
}
