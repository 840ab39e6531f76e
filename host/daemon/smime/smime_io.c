/* smime_io.c: unlinked temporary files, the bounded line reader and the
 * buffered (hashing) spool used by signing and verification. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "smime_int.h"

int smime_tmpfile(void)
{
    const char *dir = secure_getenv("TMPDIR");
    if (dir == NULL || dir[0] == '\0')
        dir = "/tmp";
    int fd;
#ifdef O_TMPFILE
    fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd >= 0)
        return fd;
#endif
    char path[PATH_MAX];
    int n = snprintf(path, sizeof path, "%s/cachet-smime-XXXXXX", dir);
    if (n < 0 || (size_t)n >= sizeof path)
        return -1;
    fd = mkostemp(path, O_CLOEXEC);
    if (fd < 0)
        return -1;
    (void)unlink(path);
    return fd;
}

bool smime_write_all(int fd, const void *p, size_t n)
{
    const uint8_t *b = p;
    while (n > 0) {
        ssize_t w = write(fd, b, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return false;
        }
        if (w == 0)
            return false;
        b += (size_t)w;
        n -= (size_t)w;
    }
    return true;
}

bool smime_rewind(int fd)
{
    return lseek(fd, 0, SEEK_SET) == 0;
}

bool smime_truncate(int fd)
{
    return ftruncate(fd, 0) == 0 && smime_rewind(fd);
}

/* ---- reader ------------------------------------------------------------- */

static bool reader_alloc(smime_reader_t *r)
{
    r->buf = malloc(SMIME_IO_BUF);
    r->line_start = true;
    return r->buf != NULL;
}

bool smime_reader_init_fd(smime_reader_t *r, int fd, uint64_t max_total)
{
    memset(r, 0, sizeof *r);
    r->fd = fd;
    r->max_total = max_total;
    return reader_alloc(r);
}

bool smime_reader_init_mem(smime_reader_t *r, const uint8_t *p, size_t n)
{
    memset(r, 0, sizeof *r);
    r->fd = -1;
    r->mem = p;
    r->mem_len = n;
    r->max_total = UINT64_MAX;
    return reader_alloc(r);
}

void smime_reader_free(smime_reader_t *r)
{
    free(r->buf);
    r->buf = NULL;
}

/* Reads more input after the buffered bytes; false on error or over cap. */
static bool reader_fill(smime_reader_t *r)
{
    if (r->start > 0) {
        memmove(r->buf, r->buf + r->start, r->end - r->start);
        r->end -= r->start;
        r->start = 0;
    }
    size_t room = SMIME_IO_BUF - r->end;
    if (room == 0)
        return true;
    size_t got;
    if (r->fd < 0) {
        got = r->mem_len - r->mem_off;
        if (got > room)
            got = room;
        memcpy(r->buf + r->end, r->mem + r->mem_off, got);
        r->mem_off += got;
    } else {
        ssize_t n;
        do {
            n = read(r->fd, r->buf + r->end, room);
        } while (n < 0 && errno == EINTR);
        if (n < 0) {
            r->err = true;
            return false;
        }
        got = (size_t)n;
    }
    if (got == 0) {
        r->eof = true;
        return true;
    }
    r->end += got;
    r->total += got;
    if (r->total > r->max_total) {
        r->too_big = true;
        return false;
    }
    return true;
}

int smime_reader_next(smime_reader_t *r, smime_seg_t *seg)
{
    if (r->err || r->too_big)
        return -1;
    for (;;) {
        size_t avail = r->end - r->start;
        size_t look = avail < SMIME_LINE_MAX + 2u ? avail : SMIME_LINE_MAX + 2u;
        const uint8_t *p = r->buf + r->start;
        const uint8_t *lf = memchr(p, '\n', look);
        seg->line_start = r->line_start;
        seg->split = false;
        if (lf != NULL) {
            size_t len = (size_t)(lf - p);
            seg->data = p;
            seg->eol = 1;
            if (len > 0 && p[len - 1] == '\r') {
                len--;
                seg->eol = 2;
            }
            seg->len = len;
            r->start += (size_t)(lf - p) + 1u;
            r->line_start = true;
            return 1;
        }
        if (avail >= SMIME_LINE_MAX + 2u) {
            /* A long line: hand out a piece; keep a trailing CR with the rest
             * so that CRLF is never split between two segments. */
            size_t len = SMIME_LINE_MAX;
            if (p[len - 1] == '\r')
                len--;
            seg->data = p;
            seg->len = len;
            seg->eol = 0;
            seg->split = true;
            r->start += len;
            r->line_start = false;
            return 1;
        }
        if (r->eof) {
            if (avail == 0)
                return 0;
            seg->data = p;
            seg->len = avail;
            seg->eol = 0;
            r->start = r->end;
            r->line_start = true;
            return 1;
        }
        if (!reader_fill(r))
            return -1;
    }
}

/* ---- spool -------------------------------------------------------------- */

bool smime_spool_init(smime_spool_t *s, int fd, bool hash)
{
    memset(s, 0, sizeof *s);
    s->fd = fd;
    s->buf = malloc(SMIME_IO_BUF);
    if (s->buf == NULL)
        return false;
    if (hash) {
        s->md = EVP_MD_CTX_new();
        if (s->md == NULL || EVP_DigestInit_ex(s->md, EVP_sha256(), NULL) != 1) {
            smime_spool_free(s);
            return false;
        }
    }
    return true;
}

void smime_spool_free(smime_spool_t *s)
{
    free(s->buf);
    s->buf = NULL;
    EVP_MD_CTX_free(s->md);
    s->md = NULL;
}

bool smime_spool_flush(smime_spool_t *s)
{
    if (s->err)
        return false;
    if (s->len > 0 && s->fd >= 0 && !smime_write_all(s->fd, s->buf, s->len))
        s->err = true;
    s->len = 0;
    return !s->err;
}

bool smime_spool_put(smime_spool_t *s, const void *p, size_t n)
{
    if (s->err)
        return false;
    if (n == 0)
        return true;
    if (s->md != NULL && EVP_DigestUpdate(s->md, p, n) != 1) {
        s->err = true;
        return false;
    }
    if (s->tap != NULL)
        s->tap(s->tap_ctx, p, n);
    s->total += n;
    if (s->fd < 0)
        return true;
    const uint8_t *b = p;
    while (n > 0) {
        size_t room = SMIME_IO_BUF - s->len;
        size_t k = n < room ? n : room;
        memcpy(s->buf + s->len, b, k);
        s->len += k;
        b += k;
        n -= k;
        if (s->len == SMIME_IO_BUF && !smime_spool_flush(s))
            return false;
    }
    return true;
}

bool smime_spool_finish(smime_spool_t *s, uint8_t digest[32])
{
    if (!smime_spool_flush(s))
        return false;
    if (s->md != NULL && digest != NULL) {
        unsigned int dl = 0;
        if (EVP_DigestFinal_ex(s->md, digest, &dl) != 1 || dl != 32) {
            s->err = true;
            return false;
        }
    }
    return true;
}
