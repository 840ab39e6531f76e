/* Fuzz target for host/daemon/smime's parsers: the structured-value helpers
 * (Content-Type, RFC 2231 parameters, RFC 2047 words, addresses) on the raw
 * input, the canonicalising MIME walker over the input as a message (its
 * output must be canonical: CRLF only, no NUL), and smime_verify's parser. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <openssl/x509.h>

#include "smime.h"
#include "smime_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_MAX (512u * 1024u)

typedef struct {
    uint8_t prev;
    bool bad;
} tap_t;

static void tap(void *ctx, const uint8_t *p, size_t n)
{
    tap_t *t = ctx;
    for (size_t i = 0; i < n; i++) {
        if (p[i] == 0 || (p[i] == '\n' && t->prev != '\r') || (t->prev == '\r' && p[i] != '\n'))
            t->bad = true;
        t->prev = p[i];
    }
}

static void helpers(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1u);
    if (s == NULL)
        return;
    memcpy(s, data, size);
    s[size] = '\0';
    char out[300];
    smime_ctype_t ct;
    (void)smime_parse_ctype(s, &ct);
    (void)smime_parse_token(s, out, sizeof out);
    (void)smime_param_get(s, "boundary", false, out, 71);
    (void)smime_param_get(s, "filename", true, out, sizeof out);
    (void)smime_param_get(s, "name", true, out, 16);
    (void)smime_decode_words(s, size, out, sizeof out);
    (void)smime_decode_words(s, size, out, 5);
    (void)smime_addr_first(s, out, sizeof out);
    free(s);
}

static void canon(const uint8_t *data, size_t size)
{
    static int part_fd = -1;
    if (part_fd < 0)
        part_fd = smime_tmpfile();
    if (part_fd < 0)
        abort();
    smime_reader_t rd;
    smime_spool_t ent;
    smime_hdrs_t outer;
    smime_summary_t sum;
    tap_t t = {0};
    smime_hdrs_init(&outer);
    if (!smime_reader_init_mem(&rd, data, size) || !smime_spool_init(&ent, -1, true))
        abort();
    ent.tap = tap;
    ent.tap_ctx = &t;
    memset(&sum, 0, sizeof sum);
    smime_canon_args_t a = {
        .rd = &rd,
        .entity = &ent,
        .part_fd = part_fd,
        .outer = &outer,
        .summary = &sum,
        .avoid_boundary = "=_fuzz_boundary",
    };
    smime_status_t st = smime_canon(&a);
    if (st == SMIME_OK && (t.bad || t.prev == '\r'))
        abort(); /* the signed entity must be canonical (RFC 8551 §3.1.1) */
    if (st == SMIME_OK && sum.attachment_count > SMIME_SUMMARY_ATTACH_MAX)
        abort();
    uint8_t md[32];
    (void)smime_spool_finish(&ent, md);
    smime_spool_free(&ent);
    smime_reader_free(&rd);
    smime_hdrs_free(&outer);
}

static void verify(const uint8_t *data, size_t size)
{
    static X509_STORE *store;
    if (store == NULL)
        store = X509_STORE_new();
    int fd = memfd_create("fuzz-mail", MFD_CLOEXEC);
    if (fd < 0 || store == NULL)
        abort();
    if (!smime_write_all(fd, data, size) || lseek(fd, 0, SEEK_SET) != 0)
        abort();
    smime_verify_result_t v;
    smime_status_t st = smime_verify(fd, FUZZ_MAX, store, &v);
    if (st == SMIME_OK) /* an empty trust store trusts no one */
        abort();
    close(fd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > FUZZ_MAX)
        return 0;
    helpers(data, size);
    canon(data, size);
    verify(data, size);
    return 0;
}
