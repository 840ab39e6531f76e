/* smime_int.h: private interfaces of the smime module (not installed, not used
 * outside host/daemon/smime and its tests/fuzzers).
 *   io     - unlinked temp files, a bounded line reader, a buffered hashing spool
 *   mime   - RFC 5322 header blocks, RFC 2045/2231 parameters, RFC 2047 words
 *   codec  - streaming base64 and quoted-printable (RFC 2045 §6.7, §6.8)
 *   canon  - the MIME walker that turns a message into the canonical,
 *            7-bit entity to be signed (RFC 8551 §3.1.1, §3.1.2)
 *   key    - an EVP_PKEY whose private operation is the signing callback */
#ifndef CACHETD_SMIME_INT_H
#define CACHETD_SMIME_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/cms.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "smime.h"

/* RFC 5322 §2.1.1 limits lines to 998 characters; mail clients exceed it, so
 * header lines are tolerated up to SMIME_LINE_MAX and longer body lines are
 * handled in segments (and re-encoded when they would be sent as-is). */
#define SMIME_LINE_MAX          8192u
#define SMIME_RFC5322_LINE      998u
#define SMIME_HEADER_MAX        (256u * 1024u) /* one header block */
#define SMIME_HEADER_FIELDS_MAX 4096u
#define SMIME_DEPTH_MAX         32u             /* nested multiparts + message/rfc822 */
#define SMIME_BOUNDARY_MAX      70u             /* RFC 2046 §5.1.1 */
#define SMIME_SIG_B64_MAX       (1024u * 1024u) /* verify: base64 of a detached signature */
#define SMIME_IO_BUF            65536u

_Static_assert(SMIME_IO_BUF >= 2u * (SMIME_LINE_MAX + 2u), "reader buffer holds a whole line");

/* ---- io ---------------------------------------------------------------- */

/* An unlinked read/write temporary file in $TMPDIR (or /tmp): O_TMPFILE, or
 * mkstemp + unlink where O_TMPFILE is not supported. -1 on failure. */
int smime_tmpfile(void);
bool smime_write_all(int fd, const void *p, size_t n);
bool smime_rewind(int fd);
bool smime_truncate(int fd);

/* One segment of input: the bytes of a line (or of a piece of a line longer
 * than SMIME_LINE_MAX) without its end of line. eol: 0 (none: piece of a long
 * line, or last line without end), 1 (LF) or 2 (CRLF). */
typedef struct {
    const uint8_t *data;
    size_t len;
    unsigned eol;
    bool line_start; /* first segment of a line */
    bool split;      /* cut at SMIME_LINE_MAX: the line goes on */
} smime_seg_t;

typedef struct {
    int fd; /* -1: memory source */
    const uint8_t *mem;
    size_t mem_len, mem_off;
    uint8_t *buf;
    size_t start, end;
    uint64_t total, max_total;
    bool eof, err, too_big, line_start;
} smime_reader_t;

bool smime_reader_init_fd(smime_reader_t *r, int fd, uint64_t max_total);
bool smime_reader_init_mem(smime_reader_t *r, const uint8_t *p, size_t n);
void smime_reader_free(smime_reader_t *r);
/* 1: a segment; 0: end of input; -1: read error or over max_total (see
 * r->too_big). The segment is valid until the next call. */
int smime_reader_next(smime_reader_t *r, smime_seg_t *seg);

typedef void (*smime_tap_fn)(void *ctx, const uint8_t *p, size_t n);

/* Buffered writer to an fd (or nowhere when fd < 0), optionally hashing
 * (SHA-256) everything that goes through. */
typedef struct {
    int fd;
    uint8_t *buf;
    size_t len;
    EVP_MD_CTX *md;
    uint64_t total;
    bool err;
    smime_tap_fn tap; /* tests and fuzzers: sees every byte */
    void *tap_ctx;
} smime_spool_t;

bool smime_spool_init(smime_spool_t *s, int fd, bool hash);
void smime_spool_free(smime_spool_t *s);
bool smime_spool_put(smime_spool_t *s, const void *p, size_t n);
bool smime_spool_flush(smime_spool_t *s);
/* Flushes; with hash, writes SHA-256 of everything put. */
bool smime_spool_finish(smime_spool_t *s, uint8_t digest[32]);

/* ---- mime --------------------------------------------------------------- */

typedef struct {
    size_t off, len; /* the folded field in raw (lines joined by CRLF) */
    size_t name_len; /* the field name is raw[off .. off+name_len) */
} smime_field_t;

typedef struct {
    char *raw;
    size_t len, cap;
    smime_field_t *f;
    size_t n, fcap;
} smime_hdrs_t;

typedef enum {
    SMIME_HDR_OK = 0,
    SMIME_HDR_BAD,     /* not a header line (RFC 5322 §2.2) */
    SMIME_HDR_TOO_BIG, /* over SMIME_HEADER_MAX or SMIME_HEADER_FIELDS_MAX */
    SMIME_HDR_NOMEM,
} smime_hdr_status_t;

void smime_hdrs_init(smime_hdrs_t *h);
void smime_hdrs_reset(smime_hdrs_t *h);
void smime_hdrs_free(smime_hdrs_t *h);
/* Adds one physical header line (without its end of line): a new field or a
 * continuation of the previous one (RFC 5322 §2.2.3 folding). */
smime_hdr_status_t smime_hdrs_add_line(smime_hdrs_t *h, const uint8_t *line, size_t len);
/* Appends a copy of field i of src. */
smime_hdr_status_t smime_hdrs_copy_field(smime_hdrs_t *dst, const smime_hdrs_t *src, size_t i);
bool smime_field_is(const smime_hdrs_t *h, size_t i, const char *name);
bool smime_field_has_prefix(const smime_hdrs_t *h, size_t i, const char *prefix);
/* Index of the first field called name (case-insensitive), or -1. */
long smime_hdrs_find(const smime_hdrs_t *h, const char *name);
/* The unfolded value of field i (after the colon, CRLFs removed, outer white
 * space trimmed), NUL-terminated, malloc'ed; NULL on allocation failure. */
char *smime_field_value(const smime_hdrs_t *h, size_t i);

/* Content-Type / Content-Disposition value: the leading token(s). */
typedef struct {
    char type[64];    /* lower case; "" if absent or malformed */
    char subtype[64]; /* lower case */
} smime_ctype_t;
bool smime_parse_ctype(const char *value, smime_ctype_t *ct);
/* The disposition type ("attachment", "inline"), lower case. */
bool smime_parse_token(const char *value, char *out, size_t cap);
/* Parameter attr of a structured value, decoded to UTF-8 (RFC 2231 extended
 * and continued values, RFC 2047 words inside quoted values). For boundary
 * and other raw parameters pass decode = false. */
bool smime_param_get(const char *value, const char *attr, bool decode, char *out, size_t cap);

/* RFC 2047 encoded-words (B and Q; UTF-8, US-ASCII, ISO-8859-1/15,
 * windows-1252) decoded into valid UTF-8, control characters replaced,
 * truncated on a character boundary. Returns the length written. */
size_t smime_decode_words(const char *in, size_t inlen, char *out, size_t cap);
/* Copies src to dst as valid UTF-8 (invalid bytes → '?', controls → ' '),
 * truncated on a character boundary, NUL-terminated. */
size_t smime_utf8_copy(char *dst, size_t cap, const char *src, size_t len);
/* The first address of an address list (RFC 5322 §3.4): "Name <a@b>" → a@b. */
bool smime_addr_first(const char *value, char *out, size_t cap);

/* ---- codec -------------------------------------------------------------- */

typedef struct {
    uint32_t acc;
    unsigned bits;
    bool done; /* '=' seen */
} smime_b64dec_t;
/* Decodes base64 (RFC 2045 §6.8: characters outside the alphabet ignored).
 * out may be NULL (counting only); returns bytes produced (<= n*3/4+3). */
size_t smime_b64dec(smime_b64dec_t *d, const uint8_t *in, size_t n, uint8_t *out);

typedef enum {
    SMIME_QP_TEXT,
    SMIME_QP_WS,
    SMIME_QP_EQ,
    SMIME_QP_EQ1,
    SMIME_QP_EQSP
} smime_qp_state_t;
typedef struct {
    smime_qp_state_t st;
    uint8_t h1;
    uint8_t ws[64]; /* trailing white space held until we know the line goes on */
    size_t nws;
    bool cr; /* a CR held: end of line if LF follows */
} smime_qpdec_t;
typedef void (*smime_sink_fn)(void *ctx, const uint8_t *p, size_t n);
/* Decodes quoted-printable (RFC 2045 §6.7), hard line breaks as CRLF. */
void smime_qpdec(smime_qpdec_t *d, const uint8_t *in, size_t n, smime_sink_fn sink, void *ctx);
void smime_qpdec_end(smime_qpdec_t *d, smime_sink_fn sink, void *ctx);

/* Encoders write whole output lines (without end of line) to a line sink. */
typedef void (*smime_line_fn)(void *ctx, const uint8_t *line, size_t n);

typedef struct {
    uint8_t in[3];
    size_t nin;
    char line[80];
    size_t nline;
} smime_b64enc_t;
void smime_b64enc(smime_b64enc_t *e, const uint8_t *p, size_t n, smime_line_fn out, void *ctx);
void smime_b64enc_end(smime_b64enc_t *e, smime_line_fn out, void *ctx);

/* Quoted-printable for text (RFC 2045 §6.7): LF and CRLF are line breaks
 * (emitted as hard breaks), lines ≤ 76 characters, trailing white space and a
 * leading "From " protected (RFC 8551 §3.1.3 advice). */
typedef struct {
    char line[80];
    size_t nline;
    int held_ws; /* -1 or a space/tab that may end the line */
    bool cr;
    bool any; /* some input seen */
} smime_qpenc_t;
void smime_qpenc_init(smime_qpenc_t *e);
void smime_qpenc(smime_qpenc_t *e, const uint8_t *p, size_t n, smime_line_fn out, void *ctx);
void smime_qpenc_end(smime_qpenc_t *e, smime_line_fn out, void *ctx);

/* ---- canon -------------------------------------------------------------- */

typedef struct {
    smime_reader_t *rd;
    smime_spool_t *entity;      /* the canonical entity to sign */
    int part_fd;                /* scratch temp file for one leaf body */
    smime_hdrs_t *outer;        /* receives the non-content top-level fields */
    smime_summary_t *summary;   /* may be NULL */
    const char *avoid_boundary; /* no line of the entity may start with "--" + it */
    const char *detail;         /* out: why, on failure (static string) */
} smime_canon_args_t;

/* Reads the whole message, writes the canonical entity (RFC 8551 §3.1.1:
 * CRLF line ends; §3.1.2: 8-bit and binary parts re-encoded). Returns
 * SMIME_OK, SMIME_ERR_TOO_BIG, SMIME_ERR_NOT_MIME, SMIME_ERR_IO or
 * SMIME_ERR_INTERNAL. */
smime_status_t smime_canon(smime_canon_args_t *a);

/* ---- key ---------------------------------------------------------------- */

typedef struct {
    smime_sign_cb cb;
    void *ctx;
    smime_sign_attrs_cb attrs_cb;   /* instead of cb when set */
    CMS_SignerInfo *si;             /* for attrs_cb: the signer whose attributes are signed */
    const smime_summary_t *summary; /* for attrs_cb */
    int status;                     /* the callback's non-zero status */
    bool called;
    bool failed;
} smime_key_state_t;

typedef struct smime_key smime_key_t;
/* An RSA EVP_PKEY with the public half of signer whose PKCS#1 v1.5 private
 * operation calls st->cb. NULL if the certificate's key is not RSA. */
smime_key_t *smime_key_new(X509 *signer, smime_key_state_t *st);
EVP_PKEY *smime_key_pkey(smime_key_t *k);
void smime_key_free(smime_key_t *k);

#endif
