/* audit: cachetd's append-only, hash-chained audit log (see audit.h).
 *
 * Line k (1-based) is a compact JSON object {"seq":k,"time":"...","prev":"<hex>",
 * ...fields}; prev is the SHA-256 (FIPS 180-4) of line k-1's exact bytes without
 * its newline, 64 zeros for line 1. <log>.head holds {"seq":N,"hash":"<hex of
 * line N>"} and is replaced by rename after line N is on disk, so the order of
 * durable states is: line written + fsync'd, then head renamed + dir fsync'd. A
 * crash between the two leaves a head exactly one line behind, which is the
 * one inconsistency audit_open repairs by itself. */
#include "audit.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/sha.h>

#include "records_fs.h"

#define AUDIT_HASH_LEN   SHA256_DIGEST_LENGTH
#define AUDIT_HEX_LEN    (2 * AUDIT_HASH_LEN)
#define AUDIT_HEAD_MAX   256u /* the head file */
#define AUDIT_JSON_DEPTH 32   /* nesting inside one line */
#define AUDIT_TIME_LEN   24   /* "2025-01-31T12:34:56.789Z" */

_Static_assert(AUDIT_LINE_MAX <= INT32_MAX, "json-c takes int lengths");

struct audit_log {
    pthread_mutex_t mu;
    int fd; /* O_RDWR | O_APPEND, flock'ed */
    char path[PATH_MAX];
    char head_path[PATH_MAX];
    uint64_t seq;                      /* seq of the last line */
    uint8_t last_hash[AUDIT_HASH_LEN]; /* its hash (zeros when the log is empty) */
    off_t size;                        /* bytes of complete lines */
    bool broken;                       /* a write could not be undone: refuse appends */
};

static void set_reason(char *r, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_reason(char *r, size_t cap, const char *fmt, ...)
{
    if (!r || cap == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    (void)vsnprintf(r, cap, fmt, ap);
    va_end(ap);
}

static void hex_encode(const uint8_t *in, size_t len, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < len; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * len] = '\0';
}

/* Exactly 2*len lower-case hex digits (what we write). */
static bool hex_decode_exact(const char *in, size_t in_len, uint8_t *out, size_t len)
{
    if (in_len != 2 * len)
        return false;
    for (size_t i = 0; i < in_len; i++) {
        char c = in[i];
        int v = (c >= '0' && c <= '9') ? c - '0' : (c >= 'a' && c <= 'f') ? c - 'a' + 10 : -1;
        if (v < 0)
            return false;
        if (i % 2 == 0)
            out[i / 2] = (uint8_t)(v << 4);
        else
            out[i / 2] |= (uint8_t)v;
    }
    return true;
}

static bool sha256(const void *data, size_t len, uint8_t out[AUDIT_HASH_LEN])
{
    unsigned int n = 0;
    return EVP_Digest(data, len, out, &n, EVP_sha256(), NULL) == 1 && n == AUDIT_HASH_LEN;
}

/* RFC 3339 §5.6 date-time, UTC, milliseconds: "YYYY-MM-DDTHH:MM:SS.mmmZ". */
static bool time_shape_ok(const char *s, size_t len)
{
    static const char shape[] = "dddd-dd-ddTdd:dd:dd.dddZ";
    if (len != AUDIT_TIME_LEN)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (shape[i] == 'd' ? (s[i] < '0' || s[i] > '9') : s[i] != shape[i])
            return false;
    }
    return true;
}

static bool format_now(char out[AUDIT_TIME_LEN + 1])
{
    struct timespec ts;
    struct tm tm;
    if (clock_gettime(CLOCK_REALTIME, &ts) != 0 || !gmtime_r(&ts.tv_sec, &tm))
        return false;
    char base[32];
    if (strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm) != 19)
        return false;
    int w = snprintf(out, AUDIT_TIME_LEN + 1, "%s.%03ldZ", base, (long)(ts.tv_nsec / 1000000));
    return w == AUDIT_TIME_LEN;
}

/* ---- one line ---- */

bool audit_parse_line(const char *line, size_t len, uint64_t *seq, uint8_t prev[32], char *reason,
                      size_t reason_cap)
{
    if (!line || len == 0) {
        set_reason(reason, reason_cap, "empty line");
        return false;
    }
    if (len >= AUDIT_LINE_MAX) {
        set_reason(reason, reason_cap, "line longer than %u bytes", AUDIT_LINE_MAX - 1);
        return false;
    }
    if (memchr(line, '\0', len) || memchr(line, '\n', len)) {
        set_reason(reason, reason_cap, "NUL or newline inside the line");
        return false;
    }
    json_tokener *tok = json_tokener_new_ex(AUDIT_JSON_DEPTH);
    if (!tok) {
        set_reason(reason, reason_cap, "out of memory");
        return false;
    }
    json_object *obj = json_tokener_parse_ex(tok, line, (int)len);
    bool whole = obj && json_tokener_get_error(tok) == json_tokener_success &&
                 json_tokener_get_parse_end(tok) == len;
    json_tokener_free(tok);
    bool ok = false;
    if (!whole || !json_object_is_type(obj, json_type_object)) {
        set_reason(reason, reason_cap, "not one JSON object");
        goto out;
    }
    /* The envelope keys come first, in this order (json-c keeps key order). */
    static const char *const keys[3] = {"seq", "time", "prev"};
    json_object *vals[3] = {NULL, NULL, NULL};
    size_t k = 0;
    json_object_object_foreach(obj, key, val)
    {
        if (k == 3)
            break;
        if (strcmp(key, keys[k]) != 0) {
            set_reason(reason, reason_cap, "key %zu is not \"%s\"", k + 1, keys[k]);
            goto out;
        }
        vals[k++] = val;
    }
    if (k != 3) {
        set_reason(reason, reason_cap, "missing \"%s\"", keys[k]);
        goto out;
    }
    if (!json_object_is_type(vals[0], json_type_int) || json_object_get_int64(vals[0]) < 1) {
        set_reason(reason, reason_cap, "\"seq\" is not a positive integer");
        goto out;
    }
    if (!json_object_is_type(vals[1], json_type_string) ||
        !time_shape_ok(json_object_get_string(vals[1]),
                       (size_t)json_object_get_string_len(vals[1]))) {
        set_reason(reason, reason_cap, "\"time\" is not an RFC 3339 UTC time");
        goto out;
    }
    if (!json_object_is_type(vals[2], json_type_string) ||
        !hex_decode_exact(json_object_get_string(vals[2]),
                          (size_t)json_object_get_string_len(vals[2]), prev, AUDIT_HASH_LEN)) {
        set_reason(reason, reason_cap, "\"prev\" is not 64 hex digits");
        goto out;
    }
    *seq = (uint64_t)json_object_get_int64(vals[0]);
    ok = true;
out:
    json_object_put(obj);
    return ok;
}

/* ---- reading a log ---- */

typedef struct {
    int fd;
    off_t off;    /* file offset of buf[0] */
    char *buf;    /* AUDIT_LINE_MAX bytes */
    size_t start; /* next unread byte in buf */
    size_t end;   /* end of valid bytes in buf */
    bool eof;
} line_reader_t;

typedef enum { LINE_OK, LINE_EOF, LINE_PARTIAL, LINE_TOO_LONG, LINE_IO } line_status_t;

/* Next complete line (without '\n') of at most AUDIT_LINE_MAX bytes with its newline. */
static line_status_t next_line(line_reader_t *r, const char **line, size_t *len)
{
    for (;;) {
        char *nl = memchr(r->buf + r->start, '\n', r->end - r->start);
        if (nl) {
            *line = r->buf + r->start;
            *len = (size_t)(nl - *line);
            r->start += *len + 1;
            return LINE_OK;
        }
        if (r->eof)
            return r->start == r->end ? LINE_EOF : LINE_PARTIAL;
        if (r->start > 0) {
            memmove(r->buf, r->buf + r->start, r->end - r->start);
            r->off += (off_t)r->start;
            r->end -= r->start;
            r->start = 0;
        }
        if (r->end == AUDIT_LINE_MAX)
            return LINE_TOO_LONG;
        ssize_t n = pread(r->fd, r->buf + r->end, AUDIT_LINE_MAX - r->end, r->off + (off_t)r->end);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return LINE_IO;
        if (n == 0)
            r->eof = true;
        r->end += (size_t)n;
    }
}

typedef struct {
    uint64_t entries;                  /* valid lines before the first problem */
    uint8_t last_hash[AUDIT_HASH_LEN]; /* hash of line `entries` (zeros if none) */
    uint8_t prev_hash[AUDIT_HASH_LEN]; /* hash of line entries-1 (zeros if none) */
    off_t good_end;                    /* offset after the last valid line */
    uint64_t first_bad;                /* 0 if every line is good */
    bool partial_tail;                 /* the only problem: an incomplete last line */
    char reason[256];
} scan_t;

static bool scan_log(int fd, scan_t *s)
{
    memset(s, 0, sizeof *s);
    line_reader_t r = {.fd = fd};
    r.buf = malloc(AUDIT_LINE_MAX);
    if (!r.buf) {
        set_reason(s->reason, sizeof s->reason, "out of memory");
        return false;
    }
    for (;;) {
        const char *line;
        size_t len;
        line_status_t st = next_line(&r, &line, &len);
        uint64_t lineno = s->entries + 1;
        if (st == LINE_EOF)
            break;
        if (st != LINE_OK) {
            s->first_bad = lineno;
            s->partial_tail = st == LINE_PARTIAL;
            set_reason(s->reason, sizeof s->reason, "line %llu: %s", (unsigned long long)lineno,
                       st == LINE_PARTIAL    ? "incomplete (no newline): truncated, or an "
                                               "interrupted write"
                       : st == LINE_TOO_LONG ? "longer than 64 KiB"
                                             : "read error");
            break;
        }
        uint64_t seq = 0;
        uint8_t prev[AUDIT_HASH_LEN];
        char why[128];
        if (!audit_parse_line(line, len, &seq, prev, why, sizeof why)) {
            s->first_bad = lineno;
            set_reason(s->reason, sizeof s->reason, "line %llu: %s", (unsigned long long)lineno,
                       why);
            break;
        }
        if (seq != lineno) {
            s->first_bad = lineno;
            set_reason(s->reason, sizeof s->reason,
                       "line %llu has seq %llu: a line was removed, inserted or moved here",
                       (unsigned long long)lineno, (unsigned long long)seq);
            break;
        }
        if (memcmp(prev, s->last_hash, AUDIT_HASH_LEN) != 0) {
            /* The recorded hash of line k-1 does not match its bytes: most likely
             * line k-1 was edited (or the "prev" of line k). */
            s->first_bad = lineno > 1 ? lineno - 1 : 1;
            if (lineno > 1)
                set_reason(s->reason, sizeof s->reason,
                           "line %llu does not match the hash recorded in line %llu: "
                           "it was altered",
                           (unsigned long long)(lineno - 1), (unsigned long long)lineno);
            else
                set_reason(s->reason, sizeof s->reason, "line 1: \"prev\" is not all zeros");
            break;
        }
        memcpy(s->prev_hash, s->last_hash, AUDIT_HASH_LEN);
        if (!sha256(line, len, s->last_hash)) {
            s->first_bad = lineno;
            set_reason(s->reason, sizeof s->reason, "SHA-256 failed");
            break;
        }
        s->entries = lineno;
        s->good_end = r.off + (off_t)r.start;
    }
    free(r.buf);
    return true;
}

typedef enum { HEAD_ABSENT, HEAD_OK, HEAD_BAD } head_status_t;

static head_status_t read_head(const char *path, uint64_t *seq, uint8_t hash[AUDIT_HASH_LEN])
{
    char *text = NULL;
    size_t len = 0;
    bool exists = false;
    if (!records_read_capped(path, AUDIT_HEAD_MAX, false, &text, &len, &exists))
        return exists ? HEAD_BAD : HEAD_ABSENT;
    head_status_t st = HEAD_BAD;
    if (len > 0 && text[len - 1] == '\n')
        len--;
    json_tokener *tok = json_tokener_new_ex(2);
    json_object *o = tok ? json_tokener_parse_ex(tok, text, (int)len) : NULL;
    bool whole = o && json_tokener_get_error(tok) == json_tokener_success &&
                 json_tokener_get_parse_end(tok) == len;
    if (tok)
        json_tokener_free(tok);
    json_object *vs, *vh;
    if (whole && json_object_is_type(o, json_type_object) && json_object_object_length(o) == 2 &&
        json_object_object_get_ex(o, "seq", &vs) && json_object_is_type(vs, json_type_int) &&
        json_object_get_int64(vs) >= 0 && json_object_object_get_ex(o, "hash", &vh) &&
        json_object_is_type(vh, json_type_string) &&
        hex_decode_exact(json_object_get_string(vh), (size_t)json_object_get_string_len(vh), hash,
                         AUDIT_HASH_LEN)) {
        *seq = (uint64_t)json_object_get_int64(vs);
        st = HEAD_OK;
    }
    json_object_put(o);
    free(text);
    return st;
}

static bool write_head(const char *path, uint64_t seq, const uint8_t hash[AUDIT_HASH_LEN])
{
    char hex[AUDIT_HEX_LEN + 1];
    char text[AUDIT_HEAD_MAX];
    hex_encode(hash, AUDIT_HASH_LEN, hex);
    int w = snprintf(text, sizeof text, "{\"seq\":%llu,\"hash\":\"%s\"}\n", (unsigned long long)seq,
                     hex);
    return w > 0 && (size_t)w < sizeof text && records_write_atomic(path, text, (size_t)w);
}

typedef enum {
    STATE_OK,        /* chain and head agree */
    STATE_HEAD_LAGS, /* one complete line more than the head records */
    STATE_TORN_TAIL, /* an incomplete last line the head never recorded */
    STATE_BAD,
} log_state_t;

/* Judges the scan against the head; fills first_bad/reason for STATE_BAD. */
static log_state_t judge(const scan_t *s, const char *head_path, uint64_t *first_bad, char *reason,
                         size_t cap)
{
    static const uint8_t zeros[AUDIT_HASH_LEN] = {0};
    uint64_t hseq = 0;
    uint8_t hhash[AUDIT_HASH_LEN] = {0};
    head_status_t hs = read_head(head_path, &hseq, hhash);
    uint64_t n = s->entries;
    *first_bad = 0;
    if (hs == HEAD_BAD) {
        *first_bad = n ? n : 1;
        set_reason(reason, cap, "the head file %s is unreadable or corrupt", head_path);
        return STATE_BAD;
    }
    if (hs == HEAD_ABSENT) {
        /* No head yet: an empty log, or a crash during the very first append. */
        hseq = 0;
        memset(hhash, 0, sizeof hhash);
        if (n > 1 && !s->first_bad) {
            *first_bad = n;
            set_reason(reason, cap, "the head file %s is missing", head_path);
            return STATE_BAD;
        }
    }
    bool head_is_last = hseq == n && memcmp(hhash, n ? s->last_hash : zeros, AUDIT_HASH_LEN) == 0;
    if (s->first_bad) {
        if (s->partial_tail && head_is_last)
            return STATE_TORN_TAIL;
        *first_bad = s->first_bad;
        set_reason(reason, cap, "%s", s->reason);
        return STATE_BAD;
    }
    if (head_is_last)
        return STATE_OK;
    if (n >= 1 && hseq == n - 1 &&
        memcmp(hhash, n >= 2 ? s->prev_hash : zeros, AUDIT_HASH_LEN) == 0)
        return STATE_HEAD_LAGS;
    if (hseq > n) {
        *first_bad = n + 1;
        set_reason(reason, cap,
                   "the log ends at line %llu but its head records %llu lines: "
                   "lines were removed from the end",
                   (unsigned long long)n, (unsigned long long)hseq);
    } else if (hseq == n) {
        *first_bad = n ? n : 1;
        set_reason(reason, cap, "line %llu does not match the hash in the head: it was altered",
                   (unsigned long long)n);
    } else {
        *first_bad = hseq + 1;
        set_reason(reason, cap,
                   "the head records %llu lines but the log has %llu: lines after %llu are "
                   "not anchored (head replaced or lines added)",
                   (unsigned long long)hseq, (unsigned long long)n, (unsigned long long)hseq);
    }
    return STATE_BAD;
}

static bool make_head_path(const char *path, char *out, size_t cap)
{
    int w = snprintf(out, cap, "%s.head", path);
    return w > 0 && (size_t)w < cap;
}

bool audit_verify(const char *path, audit_verify_result_t *out)
{
    if (!out)
        return false;
    memset(out, 0, sizeof *out);
    char head_path[PATH_MAX];
    if (!path || !make_head_path(path, head_path, sizeof head_path)) {
        set_reason(out->reason, sizeof out->reason, "no log path, or path too long");
        return false;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        set_reason(out->reason, sizeof out->reason, "%s: %s", path,
                   fd < 0 ? strerror(errno) : "not a regular file");
        if (fd >= 0)
            close(fd);
        return false;
    }
    scan_t s;
    bool scanned = scan_log(fd, &s);
    close(fd);
    if (!scanned) {
        set_reason(out->reason, sizeof out->reason, "%s", s.reason);
        return false;
    }
    out->entries = s.entries;
    uint64_t first_bad = 0;
    char why[sizeof out->reason];
    log_state_t state = judge(&s, head_path, &first_bad, why, sizeof why);
    switch (state) {
    case STATE_OK:
        out->ok = true;
        set_reason(out->reason, sizeof out->reason, "%llu entries, chain and head intact",
                   (unsigned long long)s.entries);
        break;
    case STATE_HEAD_LAGS:
        out->ok = true;
        set_reason(out->reason, sizeof out->reason,
                   "%llu entries, chain intact; the last line is not yet recorded in the "
                   "head (a crash between the two writes; cachetd repairs it on start)",
                   (unsigned long long)s.entries);
        break;
    case STATE_TORN_TAIL:
        out->first_bad = s.first_bad;
        set_reason(out->reason, sizeof out->reason,
                   "line %llu is incomplete and not recorded in the head: an interrupted "
                   "write (cachetd drops it when it starts)",
                   (unsigned long long)s.first_bad);
        break;
    case STATE_BAD:
        out->first_bad = first_bad;
        memcpy(out->reason, why, sizeof why);
        break;
    }
    return out->ok;
}

/* ---- the open log ---- */

/* Removes "<head>.tmp.*" left by a crash inside records_write_atomic. Called
 * with the log's lock held, so no other writer of this head exists. */
static void remove_stale_head_tmps(const char *head_path)
{
    char dir[PATH_MAX];
    const char *slash = strrchr(head_path, '/');
    const char *base = slash ? slash + 1 : head_path;
    size_t dlen = slash ? (size_t)(slash - head_path) : 0;
    if (dlen >= sizeof dir)
        return;
    memcpy(dir, head_path, dlen);
    dir[dlen] = '\0';
    if (dlen == 0)
        snprintf(dir, sizeof dir, "%s", slash ? "/" : ".");
    char prefix[NAME_MAX + 8];
    int w = snprintf(prefix, sizeof prefix, "%s.tmp.", base);
    if (w < 0 || (size_t)w >= sizeof prefix)
        return;
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, prefix, (size_t)w) == 0)
            (void)unlinkat(dirfd(d), e->d_name, 0);
    }
    closedir(d);
}

audit_log_t *audit_open(const char *path, char *err, size_t err_cap)
{
    char def[PATH_MAX];
    if (!path) {
        char dir[PATH_MAX];
        if (!records_xdg_dir("XDG_STATE_HOME", ".local/state", dir, sizeof dir, err, err_cap) ||
            !records_mkdir_private(dir, err, err_cap))
            return NULL;
        int w = snprintf(def, sizeof def, "%s/audit.log", dir);
        if (w < 0 || (size_t)w >= sizeof def) {
            records_set_err(err, err_cap, "audit log path too long");
            return NULL;
        }
        path = def;
    }
    audit_log_t *log = calloc(1, sizeof *log);
    if (!log) {
        records_set_err(err, err_cap, "out of memory");
        return NULL;
    }
    log->fd = -1;
    int w = snprintf(log->path, sizeof log->path, "%s", path);
    if (w < 0 || (size_t)w >= sizeof log->path ||
        !make_head_path(path, log->head_path, sizeof log->head_path)) {
        records_set_err(err, err_cap, "audit log path too long");
        free(log);
        return NULL;
    }
    log->fd = open(path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    struct stat st;
    if (log->fd < 0 || fstat(log->fd, &st) != 0) {
        records_set_err(err, err_cap, "%s: %s", path, strerror(errno));
        goto fail;
    }
    if (!S_ISREG(st.st_mode) || st.st_uid != geteuid()) {
        records_set_err(err, err_cap, "%s: not a regular file of ours", path);
        goto fail;
    }
    if ((st.st_mode & 077) != 0 && fchmod(log->fd, 0600) != 0) {
        records_set_err(err, err_cap, "%s: chmod 0600: %s", path, strerror(errno));
        goto fail;
    }
    /* One writer per log: a second one would fork the chain. */
    if (flock(log->fd, LOCK_EX | LOCK_NB) != 0) {
        records_set_err(err, err_cap, "%s: in use by another process", path);
        goto fail;
    }
    remove_stale_head_tmps(log->head_path);
    scan_t s;
    if (!scan_log(log->fd, &s)) {
        records_set_err(err, err_cap, "%s: %s", path, s.reason);
        goto fail;
    }
    uint64_t first_bad = 0;
    char why[256];
    switch (judge(&s, log->head_path, &first_bad, why, sizeof why)) {
    case STATE_OK:
        break;
    case STATE_TORN_TAIL:
        /* The head never recorded that line, so no caller was told it succeeded. */
        if (ftruncate(log->fd, s.good_end) != 0 || fsync(log->fd) != 0) {
            records_set_err(err, err_cap, "%s: cannot drop an incomplete last line: %s", path,
                            strerror(errno));
            goto fail;
        }
        break;
    case STATE_HEAD_LAGS:
        if (!write_head(log->head_path, s.entries, s.last_hash)) {
            records_set_err(err, err_cap, "%s: cannot repair the head: %s", log->head_path,
                            strerror(errno));
            goto fail;
        }
        break;
    case STATE_BAD:
        records_set_err(err, err_cap, "%s: refusing a damaged log: %s", path, why);
        goto fail;
    }
    if (st.st_size == 0 && !records_fsync_parent(path)) {
        records_set_err(err, err_cap, "%s: cannot sync its directory", path);
        goto fail;
    }
    log->seq = s.entries;
    memcpy(log->last_hash, s.last_hash, AUDIT_HASH_LEN);
    log->size = s.good_end;
    if (pthread_mutex_init(&log->mu, NULL) != 0) {
        records_set_err(err, err_cap, "mutex init failed");
        goto fail;
    }
    return log;
fail:
    if (log->fd >= 0)
        close(log->fd);
    free(log);
    return NULL;
}

static bool write_all(int fd, const char *p, size_t len)
{
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return false;
        p += w;
        len -= (size_t)w;
    }
    return true;
}

/* The line for the next entry (seq, time, prev first), or NULL. *len without '\n'. */
static char *build_line(const audit_log_t *log, json_object *fields, size_t *len)
{
    char when[AUDIT_TIME_LEN + 1];
    char prev[AUDIT_HEX_LEN + 1];
    if (!format_now(when) || log->seq >= (uint64_t)INT64_MAX)
        return NULL;
    hex_encode(log->last_hash, AUDIT_HASH_LEN, prev);
    json_object *o = json_object_new_object();
    if (!o)
        return NULL;
    json_object_object_add(o, "seq", json_object_new_int64((int64_t)(log->seq + 1)));
    json_object_object_add(o, "time", json_object_new_string(when));
    json_object_object_add(o, "prev", json_object_new_string(prev));
    json_object_object_foreach(fields, key, val)
    {
        if (strcmp(key, "seq") == 0 || strcmp(key, "time") == 0 || strcmp(key, "prev") == 0)
            continue; /* ours */
        json_object_object_add(o, key, json_object_get(val));
    }
    size_t n = 0;
    const char *text = json_object_to_json_string_length(
        o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &n);
    char *line = NULL;
    /* JSON_C_TO_STRING_PLAIN never emits a raw newline; checked anyway. */
    if (text && n + 1 <= AUDIT_LINE_MAX && !memchr(text, '\n', n) && (line = malloc(n + 1))) {
        memcpy(line, text, n);
        line[n] = '\n';
        *len = n;
    }
    json_object_put(o);
    return line;
}

bool audit_append(audit_log_t *log, json_object *fields)
{
    if (!log || !fields || !json_object_is_type(fields, json_type_object))
        return false;
    pthread_mutex_lock(&log->mu);
    bool ok = false;
    size_t len = 0;
    char *line = log->broken ? NULL : build_line(log, fields, &len);
    uint8_t hash[AUDIT_HASH_LEN];
    if (!line || !sha256(line, len, hash))
        goto out;
    if (!write_all(log->fd, line, len + 1) || fsync(log->fd) != 0) {
        /* Undo a partial line so the chain stays whole; if even that fails, stop. */
        if (ftruncate(log->fd, log->size) != 0)
            log->broken = true;
        goto out;
    }
    log->seq++;
    memcpy(log->last_hash, hash, AUDIT_HASH_LEN);
    log->size += (off_t)(len + 1);
    /* The line is durable; the head follows (a crash here = head one behind). */
    ok = write_head(log->head_path, log->seq, log->last_hash);
out:
    pthread_mutex_unlock(&log->mu);
    free(line);
    return ok;
}

/* Offset of the last '\n' before `before` (at most AUDIT_LINE_MAX back), -1 if
 * the file starts first, -2 on error or an over-long line. */
static off_t find_prev_newline(int fd, off_t before)
{
    char chunk[4096];
    off_t limit = before > (off_t)AUDIT_LINE_MAX ? before - (off_t)AUDIT_LINE_MAX : 0;
    off_t pos = before;
    while (pos > limit) {
        size_t want = (size_t)(pos - limit) < sizeof chunk ? (size_t)(pos - limit) : sizeof chunk;
        off_t at = pos - (off_t)want;
        ssize_t n = pread(fd, chunk, want, at);
        if (n != (ssize_t)want)
            return -2;
        for (size_t i = want; i > 0; i--)
            if (chunk[i - 1] == '\n')
                return at + (off_t)(i - 1);
        pos = at;
    }
    return limit == 0 ? -1 : -2;
}

json_object *audit_tail(audit_log_t *log, size_t n)
{
    if (!log)
        return NULL;
    if (n > AUDIT_TAIL_MAX)
        n = AUDIT_TAIL_MAX;
    json_object *arr = json_object_new_array();
    off_t *starts = calloc(n + 1, sizeof *starts);
    char *buf = malloc(AUDIT_LINE_MAX);
    if (!arr || !starts || !buf) {
        json_object_put(arr);
        arr = NULL;
        goto out;
    }
    pthread_mutex_lock(&log->mu);
    /* Walk back from the end: starts[0] is the newest line's offset. */
    size_t found = 0;
    off_t line_end = log->size; /* just after this line's '\n' */
    while (found < n && line_end > 0) {
        off_t nl = find_prev_newline(log->fd, line_end - 1);
        if (nl == -2)
            break;
        starts[found++] = nl + 1;
        line_end = nl + 1;
    }
    off_t end = log->size;
    for (size_t i = found; i > 0; i--) {
        off_t start = starts[i - 1];
        off_t stop = i > 1 ? starts[i - 2] : end;
        size_t len = (size_t)(stop - start) - 1; /* without '\n' */
        if (len >= AUDIT_LINE_MAX || pread(log->fd, buf, len, start) != (ssize_t)len)
            continue;
        json_tokener *tok = json_tokener_new_ex(AUDIT_JSON_DEPTH);
        json_object *o = tok ? json_tokener_parse_ex(tok, buf, (int)len) : NULL;
        if (tok)
            json_tokener_free(tok);
        if (o && json_object_is_type(o, json_type_object))
            json_object_array_add(arr, o);
        else
            json_object_put(o);
    }
    pthread_mutex_unlock(&log->mu);
out:
    free(starts);
    free(buf);
    return arr;
}

void audit_close(audit_log_t *log)
{
    if (!log)
        return;
    pthread_mutex_lock(&log->mu);
    if (log->fd >= 0)
        close(log->fd);
    log->fd = -1;
    pthread_mutex_unlock(&log->mu);
    pthread_mutex_destroy(&log->mu);
    free(log);
}
