/* smime_canon.c: the streaming MIME walker that turns an RFC 5322 message into
 * the entity to be signed (RFC 8551 §3.1): the content header fields (default
 * text/plain; charset=us-ascii), a blank line and the body, in canonical form
 * (§3.1.1: CRLF line ends) and 7-bit (§3.1.2: 8bit and binary content
 * re-encoded, quoted-printable for text, base64 otherwise), at any depth of
 * multipart (RFC 2046 §5.1) and message/rfc822 (§5.2.1) nesting.
 *
 * The input is read once, line by line (lines longer than SMIME_LINE_MAX in
 * pieces). Structure comes from an explicit stack of boundaries (no recursion,
 * depth capped); each leaf body is spooled to a scratch file so that its
 * transfer encoding can be chosen after seeing all of it. Memory is bounded by
 * the header block cap whatever the message size. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "smime_int.h"

typedef enum { ST_HEADERS, ST_LEAF, ST_PREAMBLE, ST_EPILOGUE } canon_state_t;

typedef enum { CTE_NONE, CTE_7BIT, CTE_8BIT, CTE_BINARY, CTE_QP, CTE_BASE64, CTE_OTHER } cte_t;

typedef enum {
    BODY_PASS,
    BODY_QP,
    BODY_B64,
    BODY_B64_TO_B64,
    BODY_QP_TO_QP,
    BODY_QP_TO_B64
} body_mode_t;

typedef struct {
    char b[SMIME_BOUNDARY_MAX + 1];
    size_t len;
    bool closed;
    bool digest; /* multipart/digest: parts default to message/rfc822 (RFC 2046 §5.1.5) */
    unsigned nmsg;
} frame_t;

typedef struct {
    smime_canon_args_t *a;
    smime_status_t st;
    const char *detail;

    /* entity emitter: lines with a deferred CRLF (a delimiter takes the CRLF
     * before it, RFC 2046 §5.1.1) */
    smime_spool_t *out;
    bool pending;
    size_t avoid_len;
    bool collision;

    frame_t stack[SMIME_DEPTH_MAX];
    size_t nstack;
    unsigned nmsg; /* message/rfc822 nesting inside the current part */
    canon_state_t state;
    bool top;
    bool skip_line;
    bool parent_digest;
    smime_hdrs_t h;

    /* current leaf */
    smime_spool_t part;
    uint8_t eol[2];
    unsigned neol;
    bool has8, hasnul, hascr, utf8_bad;
    unsigned utf8_need;
    size_t linelen, maxline;
    smime_ctype_t ct;
    bool ct_present;
    cte_t cte;
    uint8_t *iobuf;
} canon_t;

static void fail(canon_t *c, smime_status_t st, const char *why)
{
    if (c->st == SMIME_OK) {
        c->st = st;
        c->detail = why;
    }
}

/* ---- emitter ------------------------------------------------------------ */

static void em_put(canon_t *c, const void *p, size_t n)
{
    if (!smime_spool_put(c->out, p, n))
        fail(c, SMIME_ERR_IO, "cannot write the spool file");
}

static void em_check(canon_t *c, const uint8_t *p, size_t n)
{
    /* RFC 2046 §5.1.1: the boundary must not occur in the content. Ours is
     * random; this makes "practically never" into "never". */
    if (c->avoid_len > 0 && n >= 2u + c->avoid_len && p[0] == '-' && p[1] == '-' &&
        memcmp(p + 2, c->a->avoid_boundary, c->avoid_len) == 0)
        c->collision = true;
}

static void em_begin(canon_t *c)
{
    if (c->pending)
        em_put(c, "\r\n", 2);
    c->pending = false;
}

static void em_line(canon_t *c, const void *p, size_t n)
{
    em_check(c, p, n);
    em_begin(c);
    em_put(c, p, n);
    c->pending = true;
}

static void em_line_cb(void *ctx, const uint8_t *p, size_t n)
{
    em_line(ctx, p, n);
}

static void em_str(canon_t *c, const char *s)
{
    em_line(c, s, strlen(s));
}

/* ---- header handling ---------------------------------------------------- */

static cte_t parse_cte(const smime_hdrs_t *h)
{
    long i = smime_hdrs_find(h, "Content-Transfer-Encoding");
    if (i < 0)
        return CTE_NONE;
    char *v = smime_field_value(h, (size_t)i);
    char tok[32];
    cte_t r = CTE_OTHER;
    if (v != NULL && smime_parse_token(v, tok, sizeof tok)) {
        if (strcmp(tok, "7bit") == 0)
            r = CTE_7BIT;
        else if (strcmp(tok, "8bit") == 0)
            r = CTE_8BIT;
        else if (strcmp(tok, "binary") == 0)
            r = CTE_BINARY;
        else if (strcmp(tok, "quoted-printable") == 0)
            r = CTE_QP;
        else if (strcmp(tok, "base64") == 0)
            r = CTE_BASE64;
    }
    free(v);
    return r;
}

/* Is field i one of the entity's (RFC 8551 §3.1: Content-*, but not the
 * non-MIME Content-Length of mbox files)? */
static bool is_content_field(const smime_hdrs_t *h, size_t i)
{
    return smime_field_has_prefix(h, i, "Content-") && !smime_field_is(h, i, "Content-Length");
}

/* Emits the header fields of the current part (only the content fields for
 * the top level), with Content-Transfer-Encoding replaced by new_cte when set. */
static void emit_headers(canon_t *c, const char *new_cte, const char *default_ct)
{
    const smime_hdrs_t *h = &c->h;
    bool cte_done = false;
    char line[96];
    if (default_ct != NULL)
        em_str(c, default_ct);
    for (size_t i = 0; i < h->n && c->st == SMIME_OK; i++) {
        if (c->top && !is_content_field(h, i))
            continue;
        if (smime_field_is(h, i, "Content-Transfer-Encoding")) {
            if (cte_done)
                continue; /* a duplicate: drop it, one encoding per part */
            cte_done = true;
            if (new_cte != NULL) {
                snprintf(line, sizeof line, "Content-Transfer-Encoding: %s", new_cte);
                em_str(c, line);
                continue;
            }
        }
        em_line(c, h->raw + h->f[i].off, h->f[i].len);
    }
    if (new_cte != NULL && !cte_done) {
        snprintf(line, sizeof line, "Content-Transfer-Encoding: %s", new_cte);
        em_str(c, line);
    }
}

static void summary_field(const smime_hdrs_t *h, const char *name, char *dst, size_t cap)
{
    size_t used = strlen(dst);
    for (size_t i = 0; i < h->n; i++) {
        if (!smime_field_is(h, i, name))
            continue;
        char *v = smime_field_value(h, i);
        if (v == NULL)
            return;
        if (used > 0 && used + 3u < cap) {
            memcpy(dst + used, ", ", 3);
            used += 2;
        }
        if (used + 1u < cap)
            used += smime_decode_words(v, strlen(v), dst + used, cap - used);
        free(v);
    }
}

static void top_headers(canon_t *c)
{
    smime_hdrs_t *h = &c->h;
    for (size_t i = 0; i < h->n; i++) {
        if (is_content_field(h, i) || smime_field_is(h, i, "MIME-Version") ||
            smime_field_is(h, i, "Content-Length"))
            continue;
        if (c->a->outer != NULL) {
            smime_hdr_status_t s = smime_hdrs_copy_field(c->a->outer, h, i);
            if (s != SMIME_HDR_OK) {
                fail(c, s == SMIME_HDR_NOMEM ? SMIME_ERR_INTERNAL : SMIME_ERR_NOT_MIME,
                     "header block too large");
                return;
            }
        }
    }
    smime_summary_t *s = c->a->summary;
    if (s != NULL) {
        summary_field(h, "From", s->from, sizeof s->from);
        summary_field(h, "To", s->to, sizeof s->to);
        summary_field(h, "Cc", s->to, sizeof s->to);
        summary_field(h, "Subject", s->subject, sizeof s->subject);
    }
}

static void leaf_reset(canon_t *c)
{
    c->neol = 0;
    c->has8 = c->hasnul = c->hascr = c->utf8_bad = false;
    c->utf8_need = 0;
    c->linelen = c->maxline = 0;
    c->part.total = 0;
    c->part.len = 0;
    if (!smime_truncate(c->a->part_fd))
        fail(c, SMIME_ERR_IO, "cannot reset the scratch file");
}

/* The header block of a part (or of the message) is complete. */
static void finish_headers(canon_t *c)
{
    smime_hdrs_t *h = &c->h;
    long i = smime_hdrs_find(h, "Content-Type");
    c->ct_present = false;
    memset(&c->ct, 0, sizeof c->ct);
    char *ctv = NULL;
    if (i >= 0) {
        ctv = smime_field_value(h, (size_t)i);
        if (ctv == NULL) {
            fail(c, SMIME_ERR_INTERNAL, "out of memory");
            return;
        }
        c->ct_present = smime_parse_ctype(ctv, &c->ct);
    }
    if (!c->ct_present) {
        /* RFC 2045 §5.2 defaults (RFC 2046 §5.1.5 in a digest) */
        bool dig = c->parent_digest;
        snprintf(c->ct.type, sizeof c->ct.type, "%s", dig ? "message" : "text");
        snprintf(c->ct.subtype, sizeof c->ct.subtype, "%s", dig ? "rfc822" : "plain");
    }
    c->cte = parse_cte(h);
    if (c->top)
        top_headers(c);
    size_t depth = c->nstack + c->nmsg;
    bool identity =
        c->cte == CTE_NONE || c->cte == CTE_7BIT || c->cte == CTE_8BIT || c->cte == CTE_BINARY;
    const char *relabel = (c->cte == CTE_8BIT || c->cte == CTE_BINARY) ? "7bit" : NULL;

    if (c->st == SMIME_OK && strcmp(c->ct.type, "multipart") == 0) {
        frame_t *f = c->nstack < SMIME_DEPTH_MAX ? &c->stack[c->nstack] : NULL;
        if (f == NULL || depth >= SMIME_DEPTH_MAX) {
            fail(c, SMIME_ERR_NOT_MIME, "MIME structure nested too deeply");
        } else if (!smime_param_get(ctv, "boundary", false, f->b, sizeof f->b) || f->b[0] == '\0') {
            fail(c, SMIME_ERR_NOT_MIME, "multipart without a usable boundary");
        } else if (!identity) {
            fail(c, SMIME_ERR_NOT_MIME, "encoded multipart (RFC 2045 §6.4)");
        } else {
            f->len = strlen(f->b);
            f->closed = false;
            f->digest = strcmp(c->ct.subtype, "digest") == 0;
            f->nmsg = c->nmsg;
            emit_headers(c, relabel, NULL);
            em_line(c, "", 0);
            c->nstack++;
            c->state = ST_PREAMBLE;
            smime_hdrs_reset(h);
        }
    } else if (c->st == SMIME_OK && strcmp(c->ct.type, "message") == 0 &&
               (strcmp(c->ct.subtype, "rfc822") == 0 || strcmp(c->ct.subtype, "global") == 0) &&
               identity && depth + 1u < SMIME_DEPTH_MAX) {
        /* RFC 2046 §5.2.1: an encapsulated message is not encoded; walk into it. */
        emit_headers(c, relabel, NULL);
        em_line(c, "", 0);
        c->nmsg++;
        c->top = false;
        c->parent_digest = false;
        smime_hdrs_reset(h);
        c->state = ST_HEADERS;
    } else if (c->st == SMIME_OK) {
        leaf_reset(c);
        c->state = ST_LEAF;
    }
    free(ctv);
}

/* ---- leaf bodies -------------------------------------------------------- */

static void part_put(canon_t *c, const void *p, size_t n)
{
    if (!smime_spool_put(&c->part, p, n))
        fail(c, SMIME_ERR_IO, "cannot write the scratch file");
}

static void leaf_add(canon_t *c, const smime_seg_t *s)
{
    if (s->line_start)
        c->linelen = 0;
    if (c->neol > 0) {
        part_put(c, c->eol, c->neol);
        c->neol = 0;
    }
    part_put(c, s->data, s->len);
    for (size_t i = 0; i < s->len; i++) {
        uint8_t b = s->data[i];
        if (b >= 0x80) {
            c->has8 = true;
            if (c->utf8_need > 0) {
                if ((b & 0xC0u) == 0x80u)
                    c->utf8_need--;
                else
                    c->utf8_bad = true;
            } else if (b >= 0xC2 && b <= 0xDF) {
                c->utf8_need = 1;
            } else if (b >= 0xE0 && b <= 0xEF) {
                c->utf8_need = 2;
            } else if (b >= 0xF0 && b <= 0xF4) {
                c->utf8_need = 3;
            } else {
                c->utf8_bad = true;
            }
        } else {
            if (c->utf8_need > 0)
                c->utf8_bad = true;
            c->utf8_need = 0;
            if (b == 0)
                c->hasnul = true;
            else if (b == '\r')
                c->hascr = true; /* never part of an end of line here: bare */
        }
    }
    c->linelen += s->len;
    if (c->linelen > c->maxline)
        c->maxline = c->linelen;
    if (s->eol > 0) {
        c->neol = s->eol;
        memcpy(c->eol, s->eol == 2 ? "\r\n" : "\n", s->eol);
    }
}

typedef struct {
    canon_t *c;
    smime_qpenc_t qp;
    smime_b64enc_t b64;
    bool to_b64;
    uint64_t decoded;
} reenc_t;

static void reenc_sink(void *ctx, const uint8_t *p, size_t n)
{
    reenc_t *r = ctx;
    r->decoded += n;
    if (r->to_b64)
        smime_b64enc(&r->b64, p, n, em_line_cb, r->c);
    else
        smime_qpenc(&r->qp, p, n, em_line_cb, r->c);
}

static void count_sink(void *ctx, const uint8_t *p, size_t n)
{
    (void)p;
    *(uint64_t *)ctx += n;
}

/* Emits the spooled leaf body in the chosen form; returns the decoded size. */
static uint64_t emit_body(canon_t *c, body_mode_t mode)
{
    int fd = c->a->part_fd;
    uint8_t *buf = c->iobuf;
    uint8_t *dec = buf + SMIME_IO_BUF / 2u;
    const size_t chunk = SMIME_IO_BUF / 2u;
    reenc_t r;
    memset(&r, 0, sizeof r);
    r.c = c;
    smime_qpenc_init(&r.qp);
    r.to_b64 = mode == BODY_B64 || mode == BODY_B64_TO_B64 || mode == BODY_QP_TO_B64;
    smime_b64dec_t b64d = {0};
    smime_qpdec_t qpd;
    memset(&qpd, 0, sizeof qpd);
    uint64_t counted = 0;
    /* pass-through: lines are ≤ 998 bytes (checked), kept in linebuf */
    static const size_t linecap = SMIME_RFC5322_LINE + 2u;
    uint8_t linebuf[SMIME_RFC5322_LINE + 2u];
    size_t nline = 0;
    bool any = false;

    if (!smime_rewind(fd)) {
        fail(c, SMIME_ERR_IO, "cannot read the scratch file");
        return 0;
    }
    uint64_t left = c->part.total;
    while (left > 0 && c->st == SMIME_OK) {
        size_t want = left < chunk ? (size_t)left : chunk;
        ssize_t n = read(fd, buf, want);
        if (n <= 0) {
            fail(c, SMIME_ERR_IO, "cannot read the scratch file");
            break;
        }
        left -= (uint64_t)n;
        size_t got = (size_t)n;
        switch (mode) {
        case BODY_PASS:
            any = true;
            for (size_t i = 0; i < got; i++) {
                if (buf[i] == '\n') {
                    if (nline > 0 && linebuf[nline - 1] == '\r')
                        nline--;
                    em_line(c, linebuf, nline);
                    nline = 0;
                } else if (nline < linecap) {
                    linebuf[nline++] = buf[i];
                }
            }
            if (c->cte == CTE_BASE64)
                counted += smime_b64dec(&b64d, buf, got, NULL);
            else if (c->cte == CTE_QP)
                smime_qpdec(&qpd, buf, got, count_sink, &counted);
            else
                counted += got;
            break;
        case BODY_QP:
        case BODY_B64:
            reenc_sink(&r, buf, got);
            break;
        case BODY_B64_TO_B64:
            reenc_sink(&r, dec, smime_b64dec(&b64d, buf, got, dec));
            break;
        case BODY_QP_TO_QP:
        case BODY_QP_TO_B64:
            smime_qpdec(&qpd, buf, got, reenc_sink, &r);
            break;
        }
    }
    if (c->st != SMIME_OK)
        return 0;
    switch (mode) {
    case BODY_PASS:
        if (any) {
            if (nline > 0 && linebuf[nline - 1] == '\r')
                nline--;
            em_line(c, linebuf, nline); /* the last line (maybe empty after a final EOL) */
        }
        if (c->cte == CTE_QP)
            smime_qpdec_end(&qpd, count_sink, &counted);
        return counted;
    case BODY_QP_TO_QP:
    case BODY_QP_TO_B64:
        smime_qpdec_end(&qpd, reenc_sink, &r);
        break;
    default:
        break;
    }
    if (r.to_b64)
        smime_b64enc_end(&r.b64, em_line_cb, c);
    else
        smime_qpenc_end(&r.qp, em_line_cb, c);
    return r.decoded;
}

static void summary_attachment(canon_t *c, uint64_t size)
{
    smime_summary_t *s = c->a->summary;
    if (s == NULL)
        return;
    const smime_hdrs_t *h = &c->h;
    char name[sizeof s->attachments[0].name] = "";
    bool attach = false;
    long i = smime_hdrs_find(h, "Content-Disposition");
    if (i >= 0) {
        char *v = smime_field_value(h, (size_t)i);
        char tok[32];
        if (v != NULL) {
            if (smime_parse_token(v, tok, sizeof tok) && strcmp(tok, "attachment") == 0)
                attach = true;
            if (smime_param_get(v, "filename", true, name, sizeof name) && name[0] != '\0')
                attach = true;
        }
        free(v);
    }
    i = smime_hdrs_find(h, "Content-Type");
    if (name[0] == '\0' && i >= 0) {
        char *v = smime_field_value(h, (size_t)i);
        if (v != NULL && smime_param_get(v, "name", true, name, sizeof name) && name[0] != '\0')
            attach = true;
        free(v);
    }
    if (!attach || s->attachment_count >= SMIME_SUMMARY_ATTACH_MAX)
        return;
    snprintf(s->attachments[s->attachment_count].name, sizeof s->attachments[0].name, "%s", name);
    s->attachments[s->attachment_count].size = size;
    s->attachment_count++;
}

/* The leaf is complete: choose its transfer encoding (RFC 8551 §3.1.2) and
 * emit it. */
static void finish_leaf(canon_t *c)
{
    if (!smime_spool_flush(&c->part)) {
        fail(c, SMIME_ERR_IO, "cannot write the scratch file");
        return;
    }
    bool clean = !c->has8 && !c->hasnul && !c->hascr && c->maxline <= SMIME_RFC5322_LINE;
    bool text = strcmp(c->ct.type, "text") == 0;
    body_mode_t mode = BODY_PASS;
    const char *new_cte = NULL;
    switch (c->cte) {
    case CTE_NONE:
    case CTE_7BIT:
    case CTE_8BIT:
    case CTE_BINARY:
        if (clean) {
            if (c->cte == CTE_8BIT || c->cte == CTE_BINARY)
                new_cte = "7bit";
        } else if (text) {
            mode = BODY_QP;
            new_cte = "quoted-printable";
        } else {
            mode = BODY_B64;
            new_cte = "base64";
        }
        break;
    case CTE_BASE64:
        if (!clean)
            mode = BODY_B64_TO_B64; /* over-long lines or junk: rewrap */
        break;
    case CTE_QP:
        if (!clean) {
            mode = text ? BODY_QP_TO_QP : BODY_QP_TO_B64;
            new_cte = text ? NULL : "base64";
        }
        break;
    case CTE_OTHER:
        if (!clean) {
            fail(c, SMIME_ERR_NOT_MIME, "8-bit data under an unknown transfer encoding");
            return;
        }
        break;
    }
    char deflt[64];
    const char *default_ct = NULL;
    if (c->top && !c->ct_present && smime_hdrs_find(&c->h, "Content-Type") < 0) {
        /* RFC 2045 §5.2; 8-bit text without a charset is labelled by guess. */
        snprintf(deflt, sizeof deflt, "Content-Type: text/plain; charset=%s",
                 !c->has8                            ? "us-ascii"
                 : (c->utf8_bad || c->utf8_need > 0) ? "iso-8859-1"
                                                     : "utf-8");
        default_ct = deflt;
    }
    emit_headers(c, new_cte, default_ct);
    em_line(c, "", 0);
    uint64_t size = 0;
    if (c->part.total > 0)
        size = emit_body(c, mode);
    if (c->st == SMIME_OK)
        summary_attachment(c, size);
    leaf_reset(c);
}

/* ---- preamble and epilogue ---------------------------------------------- */

static void text_add(canon_t *c, const smime_seg_t *s)
{
    /* Not content (RFC 2046 §5.1.1), but signed: keep it 7-bit and canonical. */
    uint8_t tmp[512];
    if (s->line_start) {
        em_check(c, s->data, s->len);
        em_begin(c);
    }
    for (size_t i = 0; i < s->len;) {
        size_t k = 0;
        while (k < sizeof tmp && i < s->len) {
            uint8_t b = s->data[i++];
            tmp[k++] = (b >= 0x80 || b == 0 || b == '\r') ? '?' : b;
        }
        em_put(c, tmp, k);
    }
    if (s->eol > 0)
        c->pending = true;
}

/* ---- delimiters --------------------------------------------------------- */

/* RFC 2046 §5.1.1; like common parsers (and OpenSSL), a line that starts with
 * "--" + boundary is a delimiter whatever follows. Innermost first. */
static long match_delim(const canon_t *c, const smime_seg_t *s, bool *close)
{
    if (s->len < 2u || s->data[0] != '-' || s->data[1] != '-')
        return -1;
    for (size_t k = c->nstack; k-- > 0;) {
        const frame_t *f = &c->stack[k];
        if (f->closed)
            continue;
        if (s->len >= 2u + f->len && memcmp(s->data + 2, f->b, f->len) == 0) {
            *close =
                s->len >= 4u + f->len && s->data[2 + f->len] == '-' && s->data[3 + f->len] == '-';
            return (long)k;
        }
    }
    return -1;
}

static void emit_delim(canon_t *c, const frame_t *f, bool close)
{
    char line[SMIME_BOUNDARY_MAX + 5];
    int n = snprintf(line, sizeof line, "--%s%s", f->b, close ? "--" : "");
    em_line(c, line, (size_t)n);
}

static void end_current(canon_t *c)
{
    if (c->state == ST_HEADERS && c->h.n > 0) {
        finish_headers(c); /* a part without a blank line and body */
    }
    if (c->st == SMIME_OK && c->state == ST_LEAF)
        finish_leaf(c);
}

static void on_delim(canon_t *c, size_t k, bool close)
{
    if (c->state == ST_LEAF)
        c->neol = 0; /* the CRLF before a delimiter belongs to it */
    end_current(c);
    if (c->st != SMIME_OK)
        return;
    /* an outer delimiter ends the inner multiparts, closed or not */
    while (c->nstack - 1u > k) {
        frame_t *f = &c->stack[c->nstack - 1u];
        if (!f->closed)
            emit_delim(c, f, true);
        c->nstack--;
    }
    frame_t *f = &c->stack[k];
    emit_delim(c, f, close);
    c->nmsg = f->nmsg;
    c->top = false;
    smime_hdrs_reset(&c->h);
    if (close) {
        f->closed = true;
        c->state = ST_EPILOGUE;
    } else {
        c->parent_digest = f->digest;
        c->state = ST_HEADERS;
    }
}

static void process(canon_t *c, const smime_seg_t *s)
{
    if (c->skip_line) {
        if (!s->line_start)
            return;
        c->skip_line = false;
    }
    if (s->line_start && c->nstack > 0) {
        bool close = false;
        long k = match_delim(c, s, &close);
        if (k >= 0) {
            on_delim(c, (size_t)k, close);
            c->skip_line = s->split;
            return;
        }
    }
    for (;;) {
        switch (c->state) {
        case ST_HEADERS: {
            if (!s->line_start || s->split) {
                fail(c, SMIME_ERR_NOT_MIME, "header line too long");
                return;
            }
            if (s->len == 0) {
                if (c->top && c->h.n == 0) {
                    fail(c, SMIME_ERR_NOT_MIME, "no header block");
                    return;
                }
                finish_headers(c);
                return;
            }
            smime_hdr_status_t r = smime_hdrs_add_line(&c->h, s->data, s->len);
            if (r == SMIME_HDR_OK)
                return;
            if (r == SMIME_HDR_NOMEM) {
                fail(c, SMIME_ERR_INTERNAL, "out of memory");
                return;
            }
            if (r == SMIME_HDR_TOO_BIG || c->top) {
                fail(c, SMIME_ERR_NOT_MIME,
                     r == SMIME_HDR_TOO_BIG ? "header block too large" : "not a header line");
                return;
            }
            /* Inside a part, a line that is not a header starts the body
             * (a missing blank line): be lenient, as mail readers are. */
            finish_headers(c);
            while (c->st == SMIME_OK && c->state == ST_HEADERS)
                finish_headers(c);
            if (c->st != SMIME_OK)
                return;
            continue;
        }
        case ST_LEAF:
            leaf_add(c, s);
            return;
        case ST_PREAMBLE:
        case ST_EPILOGUE:
            text_add(c, s);
            return;
        }
    }
}

static void at_eof(canon_t *c, bool last_eol)
{
    switch (c->state) {
    case ST_HEADERS:
        if (c->top && c->h.n == 0) {
            fail(c, SMIME_ERR_NOT_MIME, "no header block");
            return;
        }
        end_current(c);
        break;
    case ST_LEAF:
        if (c->neol > 0) {
            part_put(c, c->eol, c->neol); /* the final line end is content */
            c->neol = 0;
        }
        finish_leaf(c);
        break;
    case ST_PREAMBLE:
    case ST_EPILOGUE:
        if (last_eol)
            em_line(c, "", 0);
        break;
    }
    /* close what the message left open */
    while (c->st == SMIME_OK && c->nstack > 0) {
        frame_t *f = &c->stack[c->nstack - 1u];
        if (!f->closed)
            emit_delim(c, f, true);
        c->nstack--;
    }
}

smime_status_t smime_canon(smime_canon_args_t *a)
{
    canon_t *c = calloc(1, sizeof *c);
    if (c == NULL)
        return SMIME_ERR_INTERNAL;
    c->a = a;
    c->out = a->entity;
    c->top = true;
    c->state = ST_HEADERS;
    c->avoid_len = a->avoid_boundary ? strlen(a->avoid_boundary) : 0;
    smime_hdrs_init(&c->h);
    c->iobuf = malloc(SMIME_IO_BUF);
    if (c->iobuf == NULL || !smime_spool_init(&c->part, a->part_fd, false)) {
        free(c->iobuf);
        free(c);
        return SMIME_ERR_INTERNAL;
    }
    a->detail = NULL;
    smime_seg_t s;
    int r = 0;
    bool last_eol = false;
    while (c->st == SMIME_OK && (r = smime_reader_next(a->rd, &s)) > 0) {
        last_eol = s.eol > 0;
        process(c, &s);
    }
    if (c->st == SMIME_OK && r < 0)
        fail(c, a->rd->too_big ? SMIME_ERR_TOO_BIG : SMIME_ERR_IO,
             a->rd->too_big ? "message over the size limit" : "cannot read the message");
    if (c->st == SMIME_OK)
        at_eof(c, last_eol);
    if (c->st == SMIME_OK && c->collision)
        fail(c, SMIME_ERR_INTERNAL, "boundary found in the content");
    if (c->st == SMIME_OK && !smime_spool_flush(c->out))
        fail(c, SMIME_ERR_IO, "cannot write the spool file");
    smime_status_t st = c->st;
    a->detail = c->detail;
    smime_spool_free(&c->part);
    smime_hdrs_free(&c->h);
    free(c->iobuf);
    free(c);
    return st;
}
