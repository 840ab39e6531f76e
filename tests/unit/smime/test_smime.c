/* Unit tests of host/daemon/smime: smime_sign with a software callback over
 * the test PKI's cps-rpps signature key, checked by the openssl CLI and by
 * smime_verify; canonicalisation and re-encoding; caps; verification failures;
 * and the MIME helpers (RFC 2047, RFC 2231, addresses). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/ess.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/sha.h>
#include <openssl/x509.h>

#include "smime.h"
#include "smime_int.h"

#ifndef SMIME_TEST_PKI
#error "SMIME_TEST_PKI must name the test PKI directory"
#endif
#ifndef SMIME_TEST_OPENSSL
#define SMIME_TEST_OPENSSL "openssl"
#endif

#define PROFILE SMIME_TEST_PKI "/profiles/cps-rpps"
#define FROM_OK "\"Dr Jean DUPONT\" <Jean.Dupont@medecin.mssante.fr>"

typedef struct {
    EVP_PKEY *key;
    int calls;
    int fail_with;
} soft_signer_t;

static struct {
    char dir[PATH_MAX];
    X509 *signer;
    STACK_OF(X509) * chain;
    X509_STORE *roots;
    soft_signer_t ss;
    unsigned seq;
    bool have_openssl;
} T;

/* ---- helpers ------------------------------------------------------------ */

static int soft_sign(void *ctx, const uint8_t hash[32], uint8_t *sig, size_t cap, size_t *len)
{
    soft_signer_t *s = ctx;
    s->calls++;
    if (s->fail_with != 0)
        return s->fail_with;
    EVP_PKEY_CTX *pc = EVP_PKEY_CTX_new(s->key, NULL);
    size_t l = cap;
    int ok = pc != NULL && EVP_PKEY_sign_init(pc) == 1 &&
             EVP_PKEY_CTX_set_rsa_padding(pc, RSA_PKCS1_PADDING) == 1 &&
             EVP_PKEY_CTX_set_signature_md(pc, EVP_sha256()) == 1 &&
             EVP_PKEY_sign(pc, sig, &l, hash, 32) == 1;
    EVP_PKEY_CTX_free(pc);
    if (!ok)
        return -1;
    *len = l;
    return 0;
}

static void tpath(char *out, size_t cap, const char *name)
{
    int n = snprintf(out, cap, "%s/%s", T.dir, name);
    assert_true(n > 0 && (size_t)n < cap);
}

/* A fresh file name in the test directory. */
static void tnew(char *out, size_t cap, const char *stem)
{
    char name[64];
    snprintf(name, sizeof name, "%s-%u", stem, T.seq++);
    tpath(out, cap, name);
}

static void write_file(const char *path, const void *p, size_t n)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    assert_true(smime_write_all(fd, p, n));
    close(fd);
}

static uint8_t *read_file(const char *path, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    struct stat st;
    assert_int_equal(fstat(fd, &st), 0);
    uint8_t *p = malloc((size_t)st.st_size + 1u);
    assert_non_null(p);
    size_t got = 0;
    while (got < (size_t)st.st_size) {
        ssize_t n = read(fd, p + got, (size_t)st.st_size - got);
        assert_true(n > 0);
        got += (size_t)n;
    }
    p[got] = '\0';
    close(fd);
    *len = got;
    return p;
}

static bool is_7bit_canonical(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i] >= 0x80 || p[i] == 0)
            return false;
        if (p[i] == '\n' && (i == 0 || p[i - 1] != '\r'))
            return false;
        if (p[i] == '\r' && (i + 1 >= n || p[i + 1] != '\n'))
            return false;
    }
    return true;
}

static const uint8_t *find(const uint8_t *hay, size_t n, const char *needle)
{
    size_t k = strlen(needle);
    for (size_t i = 0; k <= n && i <= n - k; i++) {
        if (memcmp(hay + i, needle, k) == 0)
            return hay + i;
    }
    return NULL;
}

/* Runs argv (no shell), output to a log file; returns the exit status. */
static int run(const char *const argv[])
{
    char log[PATH_MAX];
    tpath(log, sizeof log, "cmd.log");
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, log, O_WRONLY | O_CREAT | O_APPEND, 0600);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    pid_t pid;
    int rc = posix_spawn(&pid, argv[0], &fa, NULL, (char *const *)argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0)
        return -1;
    int ws;
    while (waitpid(pid, &ws, 0) < 0) {
        if (errno != EINTR)
            return -1;
    }
    return WIFEXITED(ws) ? WEXITSTATUS(ws) : -1;
}

static int openssl_verify(const char *msg, const char *content_out)
{
    const char *argv[] = {SMIME_TEST_OPENSSL,
                          "smime",
                          "-verify",
                          "-in",
                          msg,
                          "-CAfile",
                          SMIME_TEST_PKI "/roots.pem",
                          "-certfile",
                          PROFILE "/chain.pem",
                          "-out",
                          content_out ? content_out : "/dev/null",
                          NULL};
    return run(argv);
}

static smime_status_t sign_fd(int in, const char *out_path, size_t max, smime_summary_t *sum,
                              int *sstat)
{
    int out = open(out_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    assert_true(out >= 0);
    smime_sign_args_t a = {
        .in_fd = in,
        .out_fd = out,
        .max_size = max,
        .signer = T.signer,
        .chain = T.chain,
        .sign = soft_sign,
        .sign_ctx = &T.ss,
    };
    int dummy;
    smime_status_t st = smime_sign(&a, sum, sstat ? sstat : &dummy);
    close(out);
    return st;
}

static smime_status_t sign_buf(const void *msg, size_t len, const char *out_path, size_t max,
                               smime_summary_t *sum)
{
    char in_path[PATH_MAX];
    tnew(in_path, sizeof in_path, "in");
    write_file(in_path, msg, len);
    int in = open(in_path, O_RDONLY | O_CLOEXEC);
    assert_true(in >= 0);
    smime_status_t st = sign_fd(in, out_path, max, sum, NULL);
    close(in);
    return st;
}

static smime_status_t verify_path(const char *path, X509_STORE *store, smime_verify_result_t *v)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    smime_status_t st = smime_verify(fd, 0, store, v);
    close(fd);
    return st;
}

/* The signed entity (first part) of our output, exactly. */
static const uint8_t *first_part(const uint8_t *out, size_t n, size_t *len)
{
    const uint8_t *b = find(out, n, "boundary=\"");
    assert_non_null(b);
    b += 10;
    const uint8_t *e = memchr(b, '"', n - (size_t)(b - out));
    assert_non_null(e);
    char delim[128];
    snprintf(delim, sizeof delim, "\r\n--%.*s\r\n", (int)(e - b), (const char *)b);
    const uint8_t *s = find(e, n - (size_t)(e - out), delim);
    assert_non_null(s);
    s += strlen(delim);
    delim[strlen(delim) - 2] = '\0';
    const uint8_t *t = find(s, n - (size_t)(s - out), delim);
    assert_non_null(t);
    *len = (size_t)(t - s);
    return s;
}

static void expect_valid(const char *out_path, const char *from)
{
    if (T.have_openssl)
        assert_int_equal(openssl_verify(out_path, NULL), 0);
    smime_verify_result_t v;
    assert_int_equal(verify_path(out_path, T.roots, &v), SMIME_OK);
    assert_true(v.signed_ok);
    assert_true(v.from_matches);
    assert_string_equal(v.signer_idnat, "899700123456");
    assert_string_equal(v.signer_email, "jean.dupont@medecin.mssante.fr");
    assert_non_null(strstr(v.signer_subject, "CN=899700123456"));
    if (from != NULL)
        assert_string_equal(v.from, from);
}

static uint64_t rng_state = 0x9E3779B97F4A7C15u;
static uint8_t rnd8(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint8_t)(rng_state >> 24);
}

static const char SIMPLE[] = "From: " FROM_OK "\r\n"
                             "To: =?ISO-8859-1?Q?Fran=E7ois_Martin?= <f.martin@example.org>\r\n"
                             "Cc: secretariat@example.org\r\n"
                             "Subject: =?UTF-8?B?UsOpc3VsdGF0cyBkJ2FuYWx5c2U=?=\r\n"
                             "Date: Mon, 2 Jun 2025 10:00:00 +0200\r\n"
                             "Message-ID: <test1@cachet.test>\r\n"
                             "MIME-Version: 1.0\r\n"
                             "Content-Type: text/plain; charset=us-ascii\r\n"
                             "\r\n"
                             "Bonjour,\r\n"
                             "\r\n"
                             "Ceci est un test.\r\n";

/* ---- setup -------------------------------------------------------------- */

static X509 *load_cert(const char *path)
{
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    X509 *x = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    assert_non_null(x);
    return x;
}

static X509_STORE *load_store(const char *path)
{
    X509_STORE *s = X509_STORE_new();
    assert_non_null(s);
    assert_int_equal(X509_STORE_load_file(s, path), 1);
    return s;
}

static int setup(void **state)
{
    (void)state;
    const char *tmp = getenv("TMPDIR");
    snprintf(T.dir, sizeof T.dir, "%s/cachet-smime-test-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (mkdtemp(T.dir) == NULL)
        return -1;
    T.signer = load_cert(PROFILE "/sign.crt.pem");
    T.chain = sk_X509_new_null();
    sk_X509_push(T.chain, load_cert(PROFILE "/ca.crt.pem"));
    T.roots = load_store(SMIME_TEST_PKI "/roots.pem");
    FILE *f = fopen(PROFILE "/sign.key.pem", "r");
    if (f == NULL)
        return -1;
    T.ss.key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    fclose(f);
    T.have_openssl = access(SMIME_TEST_OPENSSL, X_OK) == 0;
    return T.ss.key != NULL ? 0 : -1;
}

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p);
}

static int teardown(void **state)
{
    (void)state;
    if (getenv("SMIME_TEST_KEEP") == NULL) /* keep the files to look at them */
        nftw(T.dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    else
        print_message("smime: test files kept in %s\n", T.dir);
    X509_free(T.signer);
    sk_X509_pop_free(T.chain, X509_free);
    X509_STORE_free(T.roots);
    EVP_PKEY_free(T.ss.key);
    return 0;
}

static int reset(void **state)
{
    (void)state;
    T.ss.calls = 0;
    T.ss.fail_with = 0;
    return 0;
}

/* ---- signing ------------------------------------------------------------ */

static void test_simple_text_from_pipe(void **state)
{
    (void)state;
    int p[2];
    assert_int_equal(pipe(p), 0);
    assert_true(smime_write_all(p[1], SIMPLE, sizeof SIMPLE - 1u));
    close(p[1]);
    char out[PATH_MAX];
    tnew(out, sizeof out, "simple");
    smime_summary_t sum;
    assert_int_equal(sign_fd(p[0], out, 0, &sum, NULL), SMIME_OK);
    close(p[0]);
    assert_int_equal(T.ss.calls, 1);
    assert_string_equal(sum.from, FROM_OK);
    assert_string_equal(sum.to, "François Martin <f.martin@example.org>, secretariat@example.org");
    assert_string_equal(sum.subject, "Résultats d'analyse");
    assert_int_equal(sum.attachment_count, 0);

    size_t n;
    uint8_t *o = read_file(out, &n);
    assert_true(is_7bit_canonical(o, n));
    assert_memory_equal(o, "From: ", 6); /* outer headers first, kept */
    assert_non_null(find(o, n, "\r\nMessage-ID: <test1@cachet.test>\r\n"));
    assert_non_null(find(o, n,
                         "MIME-Version: 1.0\r\nContent-Type: multipart/signed; "
                         "protocol=\"application/pkcs7-signature\";\r\n micalg=sha-256;"));
    const uint8_t *mv = find(o, n, "MIME-Version:");
    assert_null(find(mv + 1, n - (size_t)(mv + 1 - o), "MIME-Version:"));
    assert_non_null(find(o, n, "Content-Type: application/pkcs7-signature; name=\"smime.p7s\""));
    size_t elen;
    const uint8_t *ent = first_part(o, n, &elen);
    static const char want[] = "Content-Type: text/plain; charset=us-ascii\r\n\r\n"
                               "Bonjour,\r\n\r\nCeci est un test.\r\n";
    assert_int_equal(elen, sizeof want - 1u);
    assert_memory_equal(ent, want, elen);
    uint8_t md[32];
    SHA256(ent, elen, md);
    assert_memory_equal(md, sum.content_digest, 32);
    free(o);
    expect_valid(out, "Jean.Dupont@medecin.mssante.fr");
}

typedef struct {
    uint8_t *b;
    size_t n, cap;
} acc_t;

static void acc_sink(void *ctx, const uint8_t *p, size_t n)
{
    acc_t *a = ctx;
    assert_true(a->n + n <= a->cap);
    memcpy(a->b + a->n, p, n);
    a->n += n;
}

static void test_8bit_qp_roundtrip(void **state)
{
    (void)state;
    /* 8-bit text, '=', "From ", a lone dot, a signature separator, trailing
     * white space, a 1300-character line, and no final line end */
    char body[2048], canon[2048];
    char longline[1301];
    memset(longline, 'a', sizeof longline - 1u);
    longline[sizeof longline - 1u] = '\0';
    snprintf(body, sizeof body,
             "Caf\xc3\xa9 = cr\xc3\xa8me\nFrom here\n.\n-- \ntrailing \t\n%s\nend", longline);
    snprintf(canon, sizeof canon,
             "Caf\xc3\xa9 = cr\xc3\xa8me\r\nFrom here\r\n.\r\n-- \r\ntrailing \t\r\n%s\r\nend",
             longline);
    char msg[4096];
    snprintf(msg, sizeof msg,
             "From: " FROM_OK "\nSubject: qp\nContent-Type: text/plain; charset=utf-8\n"
             "Content-Transfer-Encoding: 8bit\n\n%s",
             body);
    char out[PATH_MAX];
    tnew(out, sizeof out, "qp");
    assert_int_equal(sign_buf(msg, strlen(msg), out, 0, NULL), SMIME_OK);
    size_t n, elen;
    uint8_t *o = read_file(out, &n);
    assert_true(is_7bit_canonical(o, n));
    const uint8_t *ent = first_part(o, n, &elen);
    assert_non_null(find(ent, elen, "Content-Transfer-Encoding: quoted-printable\r\n"));
    assert_null(find(ent, elen, "8bit"));
    size_t col = 0;
    for (size_t i = 0; i < elen; i++) { /* RFC 5322 §2.1.1, RFC 2045 §6.7 (5) */
        col = ent[i] == '\n' ? 0 : col + 1u;
        assert_true(col <= 77u);
    }
    const uint8_t *b = find(ent, elen, "\r\n\r\n");
    assert_non_null(b);
    b += 4;
    uint8_t dec[2048];
    acc_t a = {dec, 0, sizeof dec};
    smime_qpdec_t d;
    memset(&d, 0, sizeof d);
    smime_qpdec(&d, b, elen - (size_t)(b - ent), acc_sink, &a);
    smime_qpdec_end(&d, acc_sink, &a);
    assert_int_equal(a.n, strlen(canon));
    assert_memory_equal(dec, canon, a.n);
    /* no encoded line may start like a boundary, "From " or a lone dot */
    assert_null(find(b, elen - (size_t)(b - ent), "\r\nFrom "));
    assert_null(find(b, elen - (size_t)(b - ent), "\r\n--"));
    assert_null(find(b, elen - (size_t)(b - ent), "\r\n.\r\n"));
    free(o);
    expect_valid(out, NULL);
}

/* multipart/mixed { multipart/alternative { text 8bit, html 8bit },
 * binary attachment, base64 attachment, message/rfc822 with an 8-bit body } */
static void test_multipart_8bit_binary(void **state)
{
    (void)state;
    uint8_t bin[4096];
    for (size_t i = 0; i < sizeof bin; i++)
        bin[i] = rnd8();
    bin[0] = 0;
    bin[1] = '\r';
    bin[2] = '\n';
    bin[3] = '\n';
    bin[sizeof bin - 1u] = '\n'; /* a final LF is data, not the delimiter's */
    static const char head[] =
        "From: " FROM_OK "\r\n"
        "To: x@example.org\r\n"
        "Subject: multipart\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: multipart/mixed; boundary=\"outer\"\r\n"
        "\r\n"
        "This is a multi-part message in MIME format. \xe2\x82\xac\r\n"
        "--outer\r\n"
        "Content-Type: multipart/alternative;\r\n boundary=\"alt\"\r\n"
        "\r\n"
        "--alt\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: 8bit\r\n"
        "\r\n"
        "R\xc3\xa9sultat normal.\r\n"
        "--alt\r\n"
        "Content-Type: text/html; charset=utf-8\r\n"
        "Content-Transfer-Encoding: 8bit\r\n"
        "\r\n"
        "<p>R\xc3\xa9sultat normal.</p>\r\n"
        "--alt--\r\n"
        "\r\n"
        "--outer\r\n"
        "Content-Type: application/octet-stream\r\n"
        "Content-Transfer-Encoding: binary\r\n"
        "Content-Disposition: attachment;\r\n filename*=utf-8''donn%C3%A9es.bin\r\n"
        "\r\n";
    static const char mid[] =
        "\r\n--outer\r\n"
        "Content-Type: application/pdf; name=\"=?UTF-8?Q?r=C3=A9sum=C3=A9.pdf?=\"\r\n"
        "Content-Transfer-Encoding: base64\r\n"
        "\r\n"
        "JVBERi0xLjQKJcOkw7zDtsOfCjIgMCBvYmoKPDwvTGVuZ3RoIDMgMCBSPj4Kc3RyZWFtCg==\r\n"
        "--outer\r\n"
        "Content-Type: message/rfc822\r\n"
        "Content-Transfer-Encoding: 8bit\r\n"
        "\r\n"
        "From: someone@example.org\r\n"
        "Subject: inner\r\n"
        "Content-Type: text/plain; charset=iso-8859-1\r\n"
        "Content-Transfer-Encoding: 8bit\r\n"
        "\r\n"
        "Voil\xe0.\r\n"
        "--outer--\r\n";
    size_t len = sizeof head - 1u + sizeof bin + sizeof mid - 1u;
    uint8_t *msg = malloc(len);
    assert_non_null(msg);
    memcpy(msg, head, sizeof head - 1u);
    memcpy(msg + sizeof head - 1u, bin, sizeof bin);
    memcpy(msg + sizeof head - 1u + sizeof bin, mid, sizeof mid - 1u);
    char out[PATH_MAX];
    tnew(out, sizeof out, "multi");
    smime_summary_t sum;
    assert_int_equal(sign_buf(msg, len, out, 0, &sum), SMIME_OK);
    free(msg);
    assert_int_equal(sum.attachment_count, 2);
    assert_string_equal(sum.attachments[0].name, "données.bin");
    assert_int_equal(sum.attachments[0].size, sizeof bin);
    assert_string_equal(sum.attachments[1].name, "résumé.pdf");
    assert_int_equal(sum.attachments[1].size, 52);

    size_t n;
    uint8_t *o = read_file(out, &n);
    assert_true(is_7bit_canonical(o, n));
    assert_non_null(find(o, n, "Content-Type: multipart/alternative;\r\n boundary=\"alt\"\r\n"));
    /* the binary attachment decodes to the very same bytes */
    const uint8_t *a = find(o, n, "filename*=utf-8''donn%C3%A9es.bin\r\n");
    assert_non_null(a);
    const uint8_t *hdrs = a;
    while (hdrs > o && memcmp(hdrs, "\r\n--outer\r\n", 11) != 0)
        hdrs--;
    assert_non_null(find(hdrs, (size_t)(a - hdrs), "Content-Transfer-Encoding: base64\r\n"));
    a = find(a, n - (size_t)(a - o), "\r\n\r\n");
    assert_non_null(a);
    a += 4;
    const uint8_t *e = find(a, n - (size_t)(a - o), "\r\n--outer");
    assert_non_null(e);
    uint8_t dec[sizeof bin + 8];
    smime_b64dec_t d = {0};
    size_t dn = smime_b64dec(&d, a, (size_t)(e - a), dec);
    assert_int_equal(dn, sizeof bin);
    assert_memory_equal(dec, bin, sizeof bin);
    /* the encapsulated message was walked into, its 8-bit body re-encoded */
    const uint8_t *inner = find(o, n, "Subject: inner\r\n");
    assert_non_null(inner);
    assert_non_null(find(inner, n - (size_t)(inner - o),
                         "Content-Transfer-Encoding: quoted-printable\r\n\r\nVoil=E0."));
    free(o);
    expect_valid(out, NULL);
}

static long maxrss_kb(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

static void test_9mb_attachment_bounded_memory(void **state)
{
    (void)state;
    const size_t att = 9u * 1024u * 1024u;
    char in_path[PATH_MAX], out[PATH_MAX];
    tnew(in_path, sizeof in_path, "big-in");
    tnew(out, sizeof out, "big-out");
    FILE *f = fopen(in_path, "w");
    assert_non_null(f);
    fputs("From: " FROM_OK "\r\nTo: x@example.org\r\nSubject: big\r\nMIME-Version: 1.0\r\n"
          "Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n--b1\r\n"
          "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
          "Voir pi\xc3\xa8\x63\x65 jointe.\r\n--b1\r\n"
          "Content-Type: application/octet-stream; name=\"scan.bin\"\r\n"
          "Content-Transfer-Encoding: base64\r\n"
          "Content-Disposition: attachment; filename=\"scan.bin\"\r\n\r\n",
          f);
    uint8_t raw[57];
    unsigned char line[80];
    for (size_t done = 0; done < att;) {
        size_t k = att - done < sizeof raw ? att - done : sizeof raw;
        for (size_t i = 0; i < k; i++)
            raw[i] = rnd8();
        int ln = EVP_EncodeBlock(line, raw, (int)k);
        fwrite(line, 1, (size_t)ln, f);
        fputs("\r\n", f);
        done += k;
    }
    fputs("--b1--\r\n", f);
    fclose(f);

    /* warm up OpenSSL's lazily loaded state before measuring */
    char warm[PATH_MAX];
    tnew(warm, sizeof warm, "warm");
    assert_int_equal(sign_buf(SIMPLE, sizeof SIMPLE - 1u, warm, 0, NULL), SMIME_OK);
    smime_verify_result_t v;
    assert_int_equal(verify_path(warm, T.roots, &v), SMIME_OK);

    long before = maxrss_kb();
    int in = open(in_path, O_RDONLY | O_CLOEXEC);
    assert_true(in >= 0);
    smime_summary_t sum;
    assert_int_equal(sign_fd(in, out, 0, &sum, NULL), SMIME_OK); /* under the default cap */
    close(in);
    assert_int_equal(verify_path(out, T.roots, &v), SMIME_OK);
    long growth = maxrss_kb() - before;
    print_message("smime: 9 MB attachment, max RSS growth %ld KiB\n", growth);
    assert_true(growth < 4 * 1024);
    assert_int_equal(sum.attachment_count, 1);
    assert_string_equal(sum.attachments[0].name, "scan.bin");
    assert_int_equal(sum.attachments[0].size, att);

    /* 7-bit and canonical, read in pieces */
    int fd = open(out, O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    uint8_t buf[65536];
    uint8_t prev = 0;
    ssize_t r;
    while ((r = read(fd, buf, sizeof buf)) > 0) {
        for (ssize_t i = 0; i < r; i++) {
            assert_true(buf[i] < 0x80);
            if (buf[i] == '\n')
                assert_int_equal(prev, '\r');
            prev = buf[i];
        }
    }
    close(fd);
    if (T.have_openssl)
        assert_int_equal(openssl_verify(out, NULL), 0);
}

static void test_over_cap_not_signed(void **state)
{
    (void)state;
    char msg[8192];
    int n = snprintf(msg, sizeof msg, "From: " FROM_OK "\r\nSubject: big\r\n\r\n");
    memset(msg + n, 'x', sizeof msg - (size_t)n);
    char out[PATH_MAX];
    tnew(out, sizeof out, "cap");
    assert_int_equal(sign_buf(msg, sizeof msg, out, 4096, NULL), SMIME_ERR_TOO_BIG);
    assert_int_equal(T.ss.calls, 0);
    struct stat st;
    assert_int_equal(stat(out, &st), 0);
    assert_int_equal(st.st_size, 0);
    /* exactly at the cap is fine */
    assert_int_equal(sign_buf(msg, sizeof msg, out, sizeof msg, NULL), SMIME_OK);
    assert_int_equal(T.ss.calls, 1);
}

static void test_not_mime(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "garbage without any header\r\nmore\r\n",
        "\r\nbody without a header block\r\n",
        "",
        "Subject: ok\r\n bad continuation is fine\r\nthis line is not a header\r\n\r\nbody\r\n",
        " starts with a continuation: x\r\n\r\n",
        "Subject: a\r\nContent-Type: multipart/mixed\r\n\r\nno boundary\r\n",
        ("Subject: a\r\nContent-Type: multipart/mixed; boundary=x\r\n"
         "Content-Transfer-Encoding: base64\r\n\r\n--x--\r\n"),
    };
    char out[PATH_MAX];
    tnew(out, sizeof out, "notmime");
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(sign_buf(bad[i], strlen(bad[i]), out, 0, NULL), SMIME_ERR_NOT_MIME);
    uint8_t junk[2048];
    for (size_t i = 0; i < sizeof junk; i++)
        junk[i] = rnd8();
    junk[0] = 0x01;
    assert_int_equal(sign_buf(junk, sizeof junk, out, 0, NULL), SMIME_ERR_NOT_MIME);
    /* a NUL inside a header line */
    static const char nul[] = "Subject: a\0b\r\n\r\nbody\r\n";
    assert_int_equal(sign_buf(nul, sizeof nul - 1u, out, 0, NULL), SMIME_ERR_NOT_MIME);
    /* nested too deeply */
    char deep[8192];
    size_t o = 0;
    o += (size_t)snprintf(deep + o, sizeof deep - o, "Subject: deep\r\n");
    for (int i = 0; i < 40; i++)
        o += (size_t)snprintf(deep + o, sizeof deep - o,
                              "Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n", i, i);
    assert_int_equal(sign_buf(deep, o, out, 0, NULL), SMIME_ERR_NOT_MIME);
    assert_int_equal(T.ss.calls, 0);
}

static void test_sign_callback_failure(void **state)
{
    (void)state;
    T.ss.fail_with = 42;
    char out[PATH_MAX];
    tnew(out, sizeof out, "cbfail");
    int in_p[2];
    assert_int_equal(pipe(in_p), 0);
    assert_true(smime_write_all(in_p[1], SIMPLE, sizeof SIMPLE - 1u));
    close(in_p[1]);
    int sstat = 0;
    assert_int_equal(sign_fd(in_p[0], out, 0, NULL, &sstat), SMIME_ERR_SIGN);
    close(in_p[0]);
    assert_int_equal(sstat, 42);
    assert_int_equal(T.ss.calls, 1);
    struct stat st;
    assert_int_equal(stat(out, &st), 0);
    assert_int_equal(st.st_size, 0);
}

/* A card that signs with another key (here the authentication key) must not
 * produce a message: the signature is checked against the certificate. */
static void test_sign_wrong_key(void **state)
{
    (void)state;
    FILE *f = fopen(PROFILE "/auth.key.pem", "r");
    assert_non_null(f);
    EVP_PKEY *auth = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    fclose(f);
    assert_non_null(auth);
    EVP_PKEY *sign = T.ss.key;
    T.ss.key = auth;
    char out[PATH_MAX];
    tnew(out, sizeof out, "wrongkey");
    smime_status_t st = sign_buf(SIMPLE, sizeof SIMPLE - 1u, out, 0, NULL);
    T.ss.key = sign;
    EVP_PKEY_free(auth);
    assert_int_equal(st, SMIME_ERR_SIGN);
    assert_int_equal(T.ss.calls, 1);
    struct stat sb;
    assert_int_equal(stat(out, &sb), 0);
    assert_int_equal(sb.st_size, 0);
}

static void test_lf_only_canonicalised(void **state)
{
    (void)state;
    static const char crlf[] = "From: " FROM_OK "\r\nSubject: lf\r\n"
                               "Content-Type: text/plain\r\n\r\nline 1\r\n\r\nline 3\r\n";
    static const char lf[] = "From: " FROM_OK "\nSubject: lf\n"
                             "Content-Type: text/plain\n\nline 1\n\nline 3\n";
    char o1[PATH_MAX], o2[PATH_MAX];
    tnew(o1, sizeof o1, "crlf");
    tnew(o2, sizeof o2, "lf");
    smime_summary_t s1, s2;
    assert_int_equal(sign_buf(crlf, sizeof crlf - 1u, o1, 0, &s1), SMIME_OK);
    assert_int_equal(sign_buf(lf, sizeof lf - 1u, o2, 0, &s2), SMIME_OK);
    assert_memory_equal(s1.content_digest, s2.content_digest, 32);
    size_t n;
    uint8_t *o = read_file(o2, &n);
    assert_true(is_7bit_canonical(o, n));
    size_t elen;
    const uint8_t *ent = first_part(o, n, &elen);
    static const char want[] = "Content-Type: text/plain\r\n\r\nline 1\r\n\r\nline 3\r\n";
    assert_int_equal(elen, sizeof want - 1u);
    assert_memory_equal(ent, want, elen);
    free(o);
    expect_valid(o2, NULL);
}

static void test_no_content_type_defaults(void **state)
{
    (void)state;
    static const char msg[] = "From: " FROM_OK "\nSubject: none\n\nplain\n";
    static const char msg8[] = "From: " FROM_OK "\nSubject: none\n\nd\xc3\xa9j\xc3\xa0\n";
    char out[PATH_MAX];
    tnew(out, sizeof out, "default");
    assert_int_equal(sign_buf(msg, sizeof msg - 1u, out, 0, NULL), SMIME_OK);
    size_t n, elen;
    uint8_t *o = read_file(out, &n);
    const uint8_t *ent = first_part(o, n, &elen);
    static const char want[] = "Content-Type: text/plain; charset=us-ascii\r\n\r\nplain\r\n";
    assert_int_equal(elen, sizeof want - 1u);
    assert_memory_equal(ent, want, elen);
    free(o);
    expect_valid(out, NULL);
    assert_int_equal(sign_buf(msg8, sizeof msg8 - 1u, out, 0, NULL), SMIME_OK);
    o = read_file(out, &n);
    ent = first_part(o, n, &elen);
    static const char want8[] = "Content-Type: text/plain; charset=utf-8\r\n"
                                "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
                                "d=C3=A9j=C3=A0\r\n";
    assert_int_equal(elen, sizeof want8 - 1u);
    assert_memory_equal(ent, want8, elen);
    free(o);
    expect_valid(out, NULL);
}

static void test_signed_attributes(void **state)
{
    (void)state;
    char out[PATH_MAX];
    tnew(out, sizeof out, "attrs");
    assert_int_equal(sign_buf(SIMPLE, sizeof SIMPLE - 1u, out, 0, NULL), SMIME_OK);
    if (T.have_openssl) {
        char printed[PATH_MAX];
        tnew(printed, sizeof printed, "cms-print");
        const char *argv[] = {
            SMIME_TEST_OPENSSL, "cms", "-cmsout", "-print", "-in", out, "-out", printed, NULL};
        assert_int_equal(run(argv), 0);
        size_t n;
        uint8_t *p = read_file(printed, &n);
        assert_non_null(find(p, n, "signingTime"));
        assert_non_null(find(p, n, "id-smime-aa-signingCertificateV2"));
        assert_non_null(find(p, n, "messageDigest"));
        assert_non_null(find(p, n, "contentType"));
        assert_non_null(find(p, n, "S/MIME Capabilities"));
        assert_non_null(find(p, n, "aes-256-gcm"));
        assert_non_null(find(p, n, "sha256"));
        free(p);
    }
    /* the ESS attribute names this certificate (hash and issuerSerial) */
    BIO *b = BIO_new_file(out, "r");
    assert_non_null(b);
    BIO *dc = NULL;
    CMS_ContentInfo *cms = SMIME_read_CMS(b, &dc);
    assert_non_null(cms);
    CMS_SignerInfo *si = sk_CMS_SignerInfo_value(CMS_get0_SignerInfos(cms), 0);
    ASN1_STRING *seq = CMS_signed_get0_data_by_OBJ(
        si, OBJ_nid2obj(NID_id_smime_aa_signingCertificateV2), -3, V_ASN1_SEQUENCE);
    assert_non_null(seq);
    const unsigned char *pp = ASN1_STRING_get0_data(seq);
    ESS_SIGNING_CERT_V2 *sc = d2i_ESS_SIGNING_CERT_V2(NULL, &pp, ASN1_STRING_length(seq));
    assert_non_null(sc);
    STACK_OF(X509) *chain = sk_X509_new_null();
    sk_X509_push(chain, T.signer);
    assert_int_equal(OSSL_ESS_check_signing_certs(NULL, sc, chain, 1), 1);
    sk_X509_free(chain);
    ESS_SIGNING_CERT_V2_free(sc);
    assert_true(CMS_signed_get_attr_by_NID(si, NID_pkcs9_signingTime, -1) >= 0);
    /* the chain we gave is in the SignedData */
    STACK_OF(X509) *certs = CMS_get1_certs(cms);
    assert_int_equal(sk_X509_num(certs), 2);
    sk_X509_pop_free(certs, X509_free);
    assert_true(CMS_is_detached(cms));
    CMS_ContentInfo_free(cms);
    BIO_free(dc);
    BIO_free(b);
}

/* ---- verification failures ---------------------------------------------- */

static void test_tampered_body(void **state)
{
    (void)state;
    char out[PATH_MAX];
    tnew(out, sizeof out, "tamper");
    assert_int_equal(sign_buf(SIMPLE, sizeof SIMPLE - 1u, out, 0, NULL), SMIME_OK);
    size_t n;
    uint8_t *o = read_file(out, &n);
    uint8_t *t = (uint8_t *)find(o, n, "Ceci est");
    assert_non_null(t);
    t[2] = 'l'; /* "Celi est" */
    write_file(out, o, n);
    free(o);
    smime_verify_result_t v;
    assert_int_equal(verify_path(out, T.roots, &v), SMIME_ERR_BAD_SIGNATURE);
    assert_false(v.signed_ok);
    assert_true(v.detail[0] != '\0');
    if (T.have_openssl)
        assert_int_not_equal(openssl_verify(out, NULL), 0);
}

static void test_untrusted_signer(void **state)
{
    (void)state;
    char out[PATH_MAX];
    tnew(out, sizeof out, "untrusted");
    assert_int_equal(sign_buf(SIMPLE, sizeof SIMPLE - 1u, out, 0, NULL), SMIME_OK);
    X509_STORE *other = load_store(SMIME_TEST_PKI "/ca/FORT/root.crt.pem");
    smime_verify_result_t v;
    assert_int_equal(verify_path(out, other, &v), SMIME_ERR_UNTRUSTED);
    assert_false(v.signed_ok);
    assert_string_equal(v.signer_idnat, "899700123456"); /* said who, still */
    assert_non_null(strstr(v.detail, "certificate"));
    X509_STORE_free(other);
}

static void test_from_mismatch(void **state)
{
    (void)state;
    static const char msg[] = "From: Someone Else <someone.else@example.org>\r\n"
                              "Subject: not me\r\n\r\nhello\r\n";
    char out[PATH_MAX];
    tnew(out, sizeof out, "mismatch");
    assert_int_equal(sign_buf(msg, sizeof msg - 1u, out, 0, NULL), SMIME_OK);
    smime_verify_result_t v;
    assert_int_equal(verify_path(out, T.roots, &v), SMIME_ERR_SIGNER_MISMATCH);
    assert_true(v.signed_ok);
    assert_false(v.from_matches);
    assert_string_equal(v.from, "someone.else@example.org");
    assert_string_equal(v.signer_email, "jean.dupont@medecin.mssante.fr");
}

static void test_verify_not_signed(void **state)
{
    (void)state;
    char p[PATH_MAX];
    tnew(p, sizeof p, "plain");
    write_file(p, SIMPLE, sizeof SIMPLE - 1u);
    smime_verify_result_t v;
    assert_int_equal(verify_path(p, T.roots, &v), SMIME_ERR_NOT_SIGNED);
    write_file(p, "no headers here\r\n", 17);
    assert_int_equal(verify_path(p, T.roots, &v), SMIME_ERR_NOT_MIME);
    static const char half[] = "From: a@b\r\nContent-Type: multipart/signed; boundary=x\r\n\r\n"
                               "--x\r\nContent-Type: text/plain\r\n\r\nhi\r\n";
    write_file(p, half, sizeof half - 1u);
    assert_int_equal(verify_path(p, T.roots, &v), SMIME_ERR_NOT_SIGNED);
    static const char junk[] = "From: a@b\r\nContent-Type: multipart/signed; boundary=x\r\n\r\n"
                               "--x\r\nContent-Type: text/plain\r\n\r\nhi\r\n--x\r\n"
                               "Content-Type: application/pkcs7-signature\r\n\r\nAAAA\r\n--x--\r\n";
    write_file(p, junk, sizeof junk - 1u);
    assert_int_equal(verify_path(p, T.roots, &v), SMIME_ERR_BAD_SIGNATURE);
    /* over the cap */
    char out[PATH_MAX];
    tnew(out, sizeof out, "vcap");
    assert_int_equal(sign_buf(SIMPLE, sizeof SIMPLE - 1u, out, 0, NULL), SMIME_OK);
    int fd = open(out, O_RDONLY | O_CLOEXEC);
    assert_int_equal(smime_verify(fd, 1000, T.roots, &v), SMIME_ERR_TOO_BIG);
    close(fd);
}

/* Messages signed by the openssl CLI: detached (multipart/signed, with LF line
 * ends as openssl writes them) and opaque (application/pkcs7-mime). */
static void test_verify_openssl_signed(void **state)
{
    (void)state;
    if (!T.have_openssl)
        skip();
    char in[PATH_MAX], det[PATH_MAX], opq[PATH_MAX];
    tnew(in, sizeof in, "ossl-in");
    tnew(det, sizeof det, "ossl-det");
    tnew(opq, sizeof opq, "ossl-opq");
    static const char ent[] = "Content-Type: text/plain\r\n\r\nSigned by openssl.\r\n";
    write_file(in, ent, sizeof ent - 1u);
    const char *a1[] = {SMIME_TEST_OPENSSL,
                        "smime",
                        "-sign",
                        "-in",
                        in,
                        "-signer",
                        PROFILE "/sign.crt.pem",
                        "-inkey",
                        PROFILE "/sign.key.pem",
                        "-certfile",
                        PROFILE "/ca.crt.pem",
                        "-from",
                        "jean.dupont@medecin.mssante.fr",
                        "-subject",
                        "x",
                        "-md",
                        "sha256",
                        "-out",
                        det,
                        NULL};
    assert_int_equal(run(a1), 0);
    smime_verify_result_t v;
    assert_int_equal(verify_path(det, T.roots, &v), SMIME_OK);
    assert_true(v.from_matches);
    const char *a2[] = {SMIME_TEST_OPENSSL,
                        "smime",
                        "-sign",
                        "-nodetach",
                        "-in",
                        in,
                        "-signer",
                        PROFILE "/sign.crt.pem",
                        "-inkey",
                        PROFILE "/sign.key.pem",
                        "-certfile",
                        PROFILE "/ca.crt.pem",
                        "-from",
                        "jean.dupont@medecin.mssante.fr",
                        "-out",
                        opq,
                        NULL};
    assert_int_equal(run(a2), 0);
    assert_int_equal(verify_path(opq, T.roots, &v), SMIME_OK);
    assert_true(v.signed_ok);
}

/* ---- MIME helpers ------------------------------------------------------- */

static void test_rfc2047_words(void **state)
{
    (void)state;
    char out[128];
    static const struct {
        const char *in, *want;
    } cases[] = {
        {"=?UTF-8?B?UsOpc3VsdGF0cyBkJ2FuYWx5c2U=?=", "Résultats d'analyse"},
        {"=?iso-8859-1?q?Fran=E7ois?= Martin", "François Martin"},
        {"=?UTF-8?Q?a?= =?UTF-8?Q?b?=", "ab"}, /* §6.2: space between words dropped */
        {"=?UTF-8?B?w6k=?=\r\n =?UTF-8?B?w6k=?=", "éé"},
        {"=?UTF-8?B?w6?= =?UTF-8?B?qQ==?=", "\xc3\xa9"},  /* a character split across words */
        {"=?UTF-8*fr?Q?=C3=A9t=C3=A9?=", "été"},          /* RFC 2231 §5 language */
        {"=?KOI8-R?Q?x?= plain", "=?KOI8-R?Q?x?= plain"}, /* unknown charset: as is */
        {"a =?UTF-8?Q?_b_?= c", "a  b  c"},
        {"ctl\x01"
         "char",
         "ctl char"},
        {"bad \xff utf8", "bad ? utf8"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        smime_decode_words(cases[i].in, strlen(cases[i].in), out, sizeof out);
        if (strcmp(out, cases[i].want) != 0)
            fail_msg("case %zu: '%s' → '%s', want '%s'", i, cases[i].in, out, cases[i].want);
    }
    /* truncation never splits a character */
    smime_decode_words("ééé", strlen("ééé"), out, 6);
    assert_string_equal(out, "éé");
}

static void test_params_and_addresses(void **state)
{
    (void)state;
    char v[128];
    assert_true(smime_param_get("attachment; filename*=utf-8''donn%C3%A9es.bin", "filename", true,
                                v, sizeof v));
    assert_string_equal(v, "données.bin");
    assert_true(smime_param_get("attachment; filename*0*=utf-8''a%C3%A9; filename*1=\"b c.txt\"",
                                "filename", true, v, sizeof v));
    assert_string_equal(v, "aéb c.txt");
    assert_true(smime_param_get("application/pdf; name=\"=?UTF-8?Q?r=C3=A9sum=C3=A9.pdf?=\"",
                                "name", true, v, sizeof v));
    assert_string_equal(v, "résumé.pdf");
    assert_true(smime_param_get(
        "multipart/mixed; (comment; boundary=no) charset=x;\r\n\tBoundary=\"a\\\"b;c\"", "boundary",
        false, v, sizeof v));
    assert_string_equal(v, "a\"b;c");
    assert_false(smime_param_get("text/plain; charset=utf-8", "boundary", false, v, sizeof v));
    char small[4];
    assert_false(smime_param_get("multipart/mixed; boundary=toolong", "boundary", false, small,
                                 sizeof small));
    smime_ctype_t ct;
    assert_true(smime_parse_ctype(" Text/HTML (c) ; charset=x", &ct));
    assert_string_equal(ct.type, "text");
    assert_string_equal(ct.subtype, "html");
    assert_false(smime_parse_ctype("garbage", &ct));

    assert_true(smime_addr_first("\"Dupont, Jean\" <jean@x.fr>, other@y.fr", v, sizeof v));
    assert_string_equal(v, "jean@x.fr");
    assert_true(smime_addr_first("jean@x.fr (Jean Dupont)", v, sizeof v));
    assert_string_equal(v, "jean@x.fr");
    assert_true(smime_addr_first("Team: a@b.fr, c@d.fr;", v, sizeof v));
    assert_string_equal(v, "a@b.fr");
    assert_false(smime_addr_first("undisclosed-recipients:;", v, sizeof v));
    assert_true(strcmp(smime_status_name(SMIME_ERR_TOO_BIG), "too-big") == 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_simple_text_from_pipe, reset),
        cmocka_unit_test_setup(test_8bit_qp_roundtrip, reset),
        cmocka_unit_test_setup(test_multipart_8bit_binary, reset),
        cmocka_unit_test_setup(test_9mb_attachment_bounded_memory, reset),
        cmocka_unit_test_setup(test_over_cap_not_signed, reset),
        cmocka_unit_test_setup(test_not_mime, reset),
        cmocka_unit_test_setup(test_sign_callback_failure, reset),
        cmocka_unit_test_setup(test_sign_wrong_key, reset),
        cmocka_unit_test_setup(test_lf_only_canonicalised, reset),
        cmocka_unit_test_setup(test_no_content_type_defaults, reset),
        cmocka_unit_test_setup(test_signed_attributes, reset),
        cmocka_unit_test_setup(test_tampered_body, reset),
        cmocka_unit_test_setup(test_untrusted_signer, reset),
        cmocka_unit_test_setup(test_from_mismatch, reset),
        cmocka_unit_test_setup(test_verify_not_signed, reset),
        cmocka_unit_test_setup(test_verify_openssl_signed, reset),
        cmocka_unit_test(test_rfc2047_words),
        cmocka_unit_test(test_params_and_addresses),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
