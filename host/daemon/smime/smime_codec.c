/* smime_codec.c: streaming base64 (RFC 2045 §6.8) and quoted-printable
 * (RFC 2045 §6.7) encoders and decoders with constant memory. */
#include <string.h>

#include "smime_int.h"

static const char b64chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

#define B64_LINE 76u /* RFC 2045 §6.8: at most 76 characters per line */
#define QP_LINE  76u /* RFC 2045 §6.7 rule 5 */

static int b64val(uint8_t c)
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

size_t smime_b64dec(smime_b64dec_t *d, const uint8_t *in, size_t n, uint8_t *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n && !d->done; i++) {
        if (in[i] == '=') {
            d->done = true; /* padding: the end of the data */
            break;
        }
        int v = b64val(in[i]);
        if (v < 0)
            continue; /* §6.8: other characters are ignored */
        d->acc = ((d->acc << 6) | (uint32_t)v) & 0xFFFFFFu;
        d->bits += 6u;
        if (d->bits >= 8u) {
            d->bits -= 8u;
            if (out != NULL)
                out[o] = (uint8_t)(d->acc >> d->bits);
            o++;
        }
    }
    return o;
}

/* ---- quoted-printable decoding ------------------------------------------ */

static void qp_out(smime_sink_fn sink, void *ctx, const void *p, size_t n)
{
    if (n > 0)
        sink(ctx, p, n);
}

static void qp_flush_held(smime_qpdec_t *d, smime_sink_fn sink, void *ctx)
{
    qp_out(sink, ctx, d->ws, d->nws);
    d->nws = 0;
    if (d->cr) {
        qp_out(sink, ctx, "\r", 1);
        d->cr = false;
    }
}

void smime_qpdec(smime_qpdec_t *d, const uint8_t *in, size_t n, smime_sink_fn sink, void *ctx)
{
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < n; i++) {
        uint8_t c = in[i];
        bool again;
        do {
            again = false;
            switch (d->st) {
            case SMIME_QP_TEXT:
            case SMIME_QP_WS:
                if (c == '\n') {
                    /* hard line break; trailing white space dropped (rule 3) */
                    d->nws = 0;
                    d->cr = false;
                    qp_out(sink, ctx, "\r\n", 2);
                } else if (c == '\r') {
                    if (d->cr)
                        qp_flush_held(d, sink, ctx);
                    d->cr = true;
                } else if (c == ' ' || c == '\t') {
                    if (d->cr || d->nws == sizeof d->ws)
                        qp_flush_held(d, sink, ctx);
                    d->ws[d->nws++] = c;
                } else {
                    qp_flush_held(d, sink, ctx);
                    if (c == '=')
                        d->st = SMIME_QP_EQ;
                    else
                        qp_out(sink, ctx, &c, 1);
                }
                break;
            case SMIME_QP_EQ:
                if ((c >= '0' && c <= '9') || (c >= 'A' && c <= 'F') || (c >= 'a' && c <= 'f')) {
                    d->h1 = c;
                    d->st = SMIME_QP_EQ1;
                } else if (c == ' ' || c == '\t' || c == '\r') {
                    d->st = SMIME_QP_EQSP;
                } else if (c == '\n') {
                    d->st = SMIME_QP_TEXT; /* soft line break */
                } else {
                    qp_out(sink, ctx, "=", 1);
                    d->st = SMIME_QP_TEXT;
                    again = true;
                }
                break;
            case SMIME_QP_EQ1:
                if ((c >= '0' && c <= '9') || (c >= 'A' && c <= 'F') || (c >= 'a' && c <= 'f')) {
                    const char *a = strchr(hex, (c >= 'a') ? c - 32 : c);
                    const char *b = strchr(hex, (d->h1 >= 'a') ? d->h1 - 32 : d->h1);
                    uint8_t v = (uint8_t)(((b - hex) << 4) | (a - hex));
                    qp_out(sink, ctx, &v, 1);
                    d->st = SMIME_QP_TEXT;
                } else {
                    uint8_t lit[2] = {'=', d->h1};
                    qp_out(sink, ctx, lit, 2);
                    d->st = SMIME_QP_TEXT;
                    again = true;
                }
                break;
            case SMIME_QP_EQSP:
                if (c == '\n') {
                    d->st = SMIME_QP_TEXT; /* soft line break with padding */
                } else if (c != ' ' && c != '\t' && c != '\r') {
                    qp_out(sink, ctx, "=", 1);
                    d->st = SMIME_QP_TEXT;
                    again = true;
                }
                break;
            }
        } while (again);
    }
}

void smime_qpdec_end(smime_qpdec_t *d, smime_sink_fn sink, void *ctx)
{
    if (d->st == SMIME_QP_EQ || d->st == SMIME_QP_EQSP)
        qp_out(sink, ctx, "=", 1);
    else if (d->st == SMIME_QP_EQ1) {
        uint8_t lit[2] = {'=', d->h1};
        qp_out(sink, ctx, lit, 2);
    }
    qp_flush_held(d, sink, ctx);
    d->st = SMIME_QP_TEXT;
}

/* ---- base64 encoding ---------------------------------------------------- */

static void b64_group(smime_b64enc_t *e, smime_line_fn out, void *ctx)
{
    uint32_t v = ((uint32_t)e->in[0] << 16) | ((uint32_t)(e->nin > 1 ? e->in[1] : 0) << 8) |
                 (uint32_t)(e->nin > 2 ? e->in[2] : 0);
    e->line[e->nline++] = b64chars[(v >> 18) & 63u];
    e->line[e->nline++] = b64chars[(v >> 12) & 63u];
    e->line[e->nline++] = e->nin > 1 ? b64chars[(v >> 6) & 63u] : '=';
    e->line[e->nline++] = e->nin > 2 ? b64chars[v & 63u] : '=';
    e->nin = 0;
    if (e->nline >= B64_LINE) {
        out(ctx, (const uint8_t *)e->line, e->nline);
        e->nline = 0;
    }
}

void smime_b64enc(smime_b64enc_t *e, const uint8_t *p, size_t n, smime_line_fn out, void *ctx)
{
    for (size_t i = 0; i < n; i++) {
        e->in[e->nin++] = p[i];
        if (e->nin == 3u)
            b64_group(e, out, ctx);
    }
}

void smime_b64enc_end(smime_b64enc_t *e, smime_line_fn out, void *ctx)
{
    if (e->nin > 0)
        b64_group(e, out, ctx);
    if (e->nline > 0)
        out(ctx, (const uint8_t *)e->line, e->nline);
    e->nline = 0;
}

/* ---- quoted-printable encoding (text) ----------------------------------- */

void smime_qpenc_init(smime_qpenc_t *e)
{
    memset(e, 0, sizeof *e);
    e->held_ws = -1;
}

static void qpe_token(smime_qpenc_t *e, const char *t, size_t n, smime_line_fn out, void *ctx)
{
    /* Soft line break (rule 5): "=" ends a line of at most 76 characters. */
    if (e->nline + n > QP_LINE - 1u) {
        e->line[e->nline++] = '=';
        out(ctx, (const uint8_t *)e->line, e->nline);
        e->nline = 0;
    }
    memcpy(e->line + e->nline, t, n);
    e->nline += n;
}

static void qpe_escaped(smime_qpenc_t *e, uint8_t c, smime_line_fn out, void *ctx)
{
    static const char hex[] = "0123456789ABCDEF";
    char t[3] = {'=', hex[c >> 4], hex[c & 15u]};
    qpe_token(e, t, 3, out, ctx);
}

static void qpe_flush_ws(smime_qpenc_t *e, bool line_end, smime_line_fn out, void *ctx)
{
    if (e->held_ws < 0)
        return;
    uint8_t w = (uint8_t)e->held_ws;
    e->held_ws = -1;
    if (line_end) {
        qpe_escaped(e, w, out, ctx); /* rule 3: no white space at a line end */
    } else {
        char t = (char)w;
        qpe_token(e, &t, 1, out, ctx);
    }
}

static void qpe_break(smime_qpenc_t *e, smime_line_fn out, void *ctx)
{
    qpe_flush_ws(e, true, out, ctx);
    out(ctx, (const uint8_t *)e->line, e->nline);
    e->nline = 0;
}

static void qpe_byte(smime_qpenc_t *e, uint8_t c, smime_line_fn out, void *ctx)
{
    qpe_flush_ws(e, false, out, ctx);
    if (c == ' ' || c == '\t') {
        e->held_ws = c;
    } else if (c >= 33 && c <= 126 && c != '=' &&
               !((e->nline == 0 || e->nline + 1u > QP_LINE - 1u) &&
                 (c == 'F' || c == '.' || c == '-'))) {
        char t = (char)c;
        qpe_token(e, &t, 1, out, ctx);
    } else {
        /* Non-ASCII, controls, '=', and a line-leading 'F' ("From " would be
         * mangled by mbox tools, RFC 8551 §3.1.3), '.' or '-' at the start
         * of an output line (no line of ours can look like a boundary or an
         * SMTP end of data). */
        qpe_escaped(e, c, out, ctx);
    }
}

void smime_qpenc(smime_qpenc_t *e, const uint8_t *p, size_t n, smime_line_fn out, void *ctx)
{
    for (size_t i = 0; i < n; i++) {
        uint8_t c = p[i];
        e->any = true;
        if (e->cr) {
            e->cr = false;
            if (c == '\n') {
                qpe_break(e, out, ctx);
                continue;
            }
            qpe_byte(e, '\r', out, ctx); /* a bare CR is data: =0D */
        }
        if (c == '\r')
            e->cr = true;
        else if (c == '\n')
            qpe_break(e, out, ctx); /* LF alone is a line break too (canonical form) */
        else
            qpe_byte(e, c, out, ctx);
    }
}

void smime_qpenc_end(smime_qpenc_t *e, smime_line_fn out, void *ctx)
{
    if (!e->any)
        return;
    if (e->cr) {
        e->cr = false;
        qpe_byte(e, '\r', out, ctx);
    }
    qpe_flush_ws(e, true, out, ctx);
    out(ctx, (const uint8_t *)e->line, e->nline);
    e->nline = 0;
    e->any = false;
}
