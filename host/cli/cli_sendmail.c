/* `cachet sendmail`: a sendmail-compatible submission agent (docs/cachet.md,
 * "cachet sendmail"). The message (stdin) is size-checked, signed with the
 * card's signature key through cachetd sign-mail (confirmed on the appliance),
 * then submitted over SMTP (RFC 5321) with STARTTLS (RFC 3207), TLS 1.2 only,
 * the server verified against a CA file and the client authenticated with the
 * card's authentication certificate: the private-key operation of the TLS
 * handshake is cachetd sign-digest (key auth, RSASSA-PKCS1-v1_5 with SHA-256,
 * RFC 5246 §7.4.8), through an RSA_METHOD whose sign() asks cachetd.
 * Nothing goes to DATA before every recipient was accepted. Exit codes are
 * sysexits(3), listed in cli_sendmail_main's comment. */
#define OPENSSL_API_COMPAT 0x10100000L
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "cli.h"
#include "proto.h"

/* sysexits(3) */
enum {
    EX_OK_ = 0,
    EX_USAGE_ = 64,
    EX_DATAERR_ = 65,
    EX_NOUSER_ = 67,
    EX_UNAVAILABLE_ = 69,
    EX_SOFTWARE_ = 70,
    EX_TEMPFAIL_ = 75,
    EX_NOPERM_ = 77,
};

#define SM_RCPT_MAX       256
#define SM_ADDR_MAX       320 /* RFC 5321 §4.5.3.1: 64 + 1 + 255 */
#define SM_LINE_MAX       1000 /* RFC 5321 §4.5.3.1.6: reply line */
#define SM_HDR_MAX        (256 * 1024)
#define SM_DEFAULT_MAX    (10ll * 1024 * 1024)
#define SM_SMTP_TIMEOUT_S 60

typedef struct {
    int fd;          /* cachetd socket */
    int64_t next_id;
    const char *socket;
    char last_code[40]; /* last cachetd error code (from inside the TLS handshake) */
    char last_msg[256];
} sm_daemon_t;

static sm_daemon_t g_d = {.fd = -1, .next_id = 1};

static void err_fr(const char *fr, const char *en, const char *detail)
{
    fprintf(stderr, "cachet sendmail : %s", cli_lang_en() ? en : fr);
    if (detail != NULL && detail[0] != '\0')
        fprintf(stderr, " (%s)", detail);
    fputc('\n', stderr);
}

/* ---- cachetd ------------------------------------------------------------------ */

static bool d_connect(void)
{
    char path[PATH_MAX];
    if (g_d.socket != NULL) {
        snprintf(path, sizeof path, "%s", g_d.socket);
    } else {
        const char *rt = getenv("XDG_RUNTIME_DIR");
        if (rt != NULL && rt[0] == '/')
            snprintf(path, sizeof path, "%s/cachet/cachetd.sock", rt);
        else
            snprintf(path, sizeof path, "/run/user/%ld/cachet/cachetd.sock", (long)getuid());
    }
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof sa.sun_path)
        return false;
    memcpy(sa.sun_path, path, strlen(path) + 1);
    g_d.fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (g_d.fd < 0 || connect(g_d.fd, (struct sockaddr *)&sa, sizeof sa) != 0)
        return false;
    json_object *hello = proto_hello_new(g_d.next_id++, "cachet-sendmail 0.1.0");
    proto_status_t st = proto_write_json(g_d.fd, hello, NULL, 0);
    json_object_put(hello);
    json_object *m = NULL;
    if (st != PROTO_OK || proto_read_json(g_d.fd, 10000, &m, NULL, NULL) != PROTO_OK)
        return false;
    proto_response_t pr;
    bool ok = proto_parse_response(m, &pr) == PROTO_OK && pr.code == NULL;
    json_object_put(m);
    return ok;
}

/* One request; *msg (caller puts) holds pr's borrowed members. Returns true on
 * a result; on an error response, last_code/last_msg are set. */
static bool d_call(const char *method, json_object *params, const int *fds, size_t nfds,
                   json_object **msg, proto_response_t *pr)
{
    int64_t id = g_d.next_id++;
    json_object *req = proto_request_new(id, method, params);
    *msg = NULL;
    g_d.last_code[0] = '\0';
    g_d.last_msg[0] = '\0';
    if (req == NULL)
        return false;
    proto_status_t st = proto_write_json(g_d.fd, req, fds, nfds);
    json_object *params_obj = json_object_object_get(req, "params");
    if (params_obj != NULL)
        proto_wipe_string(params_obj, "pin");
    json_object_put(req);
    while (st == PROTO_OK) {
        json_object *m = NULL;
        st = proto_read_json(g_d.fd, -1, &m, NULL, NULL);
        if (st != PROTO_OK)
            break;
        if (proto_is_event(m) || proto_parse_response(m, pr) != PROTO_OK ||
            (pr->id != id && pr->id != -1)) {
            json_object_put(m);
            continue;
        }
        *msg = m;
        if (pr->code != NULL) {
            snprintf(g_d.last_code, sizeof g_d.last_code, "%s", pr->code);
            snprintf(g_d.last_msg, sizeof g_d.last_msg, "%s",
                     pr->message != NULL ? pr->message : "");
            return false;
        }
        return true;
    }
    snprintf(g_d.last_code, sizeof g_d.last_code, "unreachable");
    snprintf(g_d.last_msg, sizeof g_d.last_msg, "%s", proto_status_name(st));
    return false;
}

/* Exit code and French message for a cachetd error code. */
static int d_error(const char *what_fr, const char *what_en)
{
    const char *code = g_d.last_code;
    char detail[320];
    snprintf(detail, sizeof detail, "%s%s%s", code, g_d.last_msg[0] ? " : " : "", g_d.last_msg);
    if (strcmp(code, "cancelled") == 0) {
        err_fr("signature refusée sur le boîtier Cachet : rien n'a été envoyé",
               "signature cancelled on the Cachet appliance: nothing was sent", NULL);
        return EX_NOPERM_;
    }
    if (strcmp(code, "timeout") == 0) {
        err_fr("signature non confirmée à temps sur le boîtier : rien n'a été envoyé",
               "signature not confirmed in time on the appliance: nothing was sent", NULL);
        return EX_TEMPFAIL_;
    }
    if (strcmp(code, "card-removed") == 0 || strcmp(code, "no-card") == 0 ||
        strcmp(code, "no-reader") == 0) {
        err_fr("carte CPS absente ou retirée : rien n'a été envoyé",
               "CPS card absent or removed: nothing was sent", detail);
        return EX_UNAVAILABLE_;
    }
    if (strncmp(code, "pin-", 4) == 0) {
        err_fr("code porteur requis, incorrect ou bloqué : rien n'a été envoyé",
               "PIN required, incorrect or blocked: nothing was sent", detail);
        return EX_NOPERM_;
    }
    if (strcmp(code, "unreachable") == 0) {
        err_fr("le service cachetd ne répond pas : rien n'a été envoyé",
               "cachetd is not answering: nothing was sent", detail);
        return EX_UNAVAILABLE_;
    }
    if (strcmp(code, "not-mime") == 0 || strcmp(code, "too-large") == 0) {
        err_fr("message refusé par cachetd (pas un message MIME, ou trop gros) : rien n'a été envoyé",
               "message refused by cachetd (not MIME, or too large): nothing was sent", detail);
        return EX_DATAERR_;
    }
    if (strcmp(code, "denied") == 0) {
        err_fr("opération refusée par cachetd", "operation denied by cachetd", detail);
        return EX_NOPERM_;
    }
    char fr[200], en[200];
    snprintf(fr, sizeof fr, "échec (%s) : rien n'a été envoyé", what_fr);
    snprintf(en, sizeof en, "failed (%s): nothing was sent", what_en);
    err_fr(fr, en, detail);
    return EX_SOFTWARE_;
}

/* ---- the card's authentication key as an OpenSSL key ------------------------------ */

/* RSA_METHOD sign(): TLS 1.2 CertificateVerify (RFC 5246 §7.4.8) with
 * sha256WithRSAEncryption; cachetd sign-digest key=auth mechanism=sha256. */
static int card_rsa_sign(int type, const unsigned char *m, unsigned int m_len,
                         unsigned char *sigret, unsigned int *siglen, const RSA *rsa)
{
    const char *mech = type == NID_sha256 ? "sha256" : type == NID_sha1 ? "sha1" : NULL;
    if (mech == NULL || (type == NID_sha256 && m_len != 32) || (type == NID_sha1 && m_len != 20))
        return 0;
    json_object *p = json_object_new_object();
    json_object_object_add(p, "key", json_object_new_string("auth"));
    json_object_object_add(p, "mechanism", json_object_new_string(mech));
    proto_add_b64(p, "data", m, m_len);
    json_object *msg = NULL;
    proto_response_t pr;
    int ok = 0;
    if (d_call("sign-digest", p, NULL, 0, &msg, &pr)) {
        uint8_t sig[1024];
        size_t n = 0;
        if (proto_get_b64(pr.result, "signature", true, sig, sizeof sig, &n) == PROTO_OK &&
            n == (size_t)RSA_size(rsa)) {
            memcpy(sigret, sig, n);
            *siglen = (unsigned int)n;
            ok = 1;
        }
    }
    json_object_put(msg);
    return ok;
}

/* RSA_METHOD priv_enc(): PKCS#1 v1.5 type 1 over a DigestInfo (rsa-pkcs). */
static int card_rsa_priv_enc(int flen, const unsigned char *from, unsigned char *to, RSA *rsa,
                             int padding)
{
    if (padding != RSA_PKCS1_PADDING || flen <= 0 || flen > RSA_size(rsa) - 11)
        return -1;
    json_object *p = json_object_new_object();
    json_object_object_add(p, "key", json_object_new_string("auth"));
    json_object_object_add(p, "mechanism", json_object_new_string("rsa-pkcs"));
    proto_add_b64(p, "data", from, (size_t)flen);
    json_object *msg = NULL;
    proto_response_t pr;
    int n_out = -1;
    if (d_call("sign-digest", p, NULL, 0, &msg, &pr)) {
        uint8_t sig[1024];
        size_t n = 0;
        if (proto_get_b64(pr.result, "signature", true, sig, sizeof sig, &n) == PROTO_OK &&
            n == (size_t)RSA_size(rsa)) {
            memcpy(to, sig, n);
            n_out = (int)n;
        }
    }
    json_object_put(msg);
    return n_out;
}

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
static EVP_PKEY *card_pkey(X509 *cert)
{
    static RSA_METHOD *meth;
    EVP_PKEY *pub = X509_get0_pubkey(cert);
    const RSA *pr = pub != NULL ? EVP_PKEY_get0_RSA(pub) : NULL;
    if (pr == NULL)
        return NULL;
    if (meth == NULL) {
        meth = RSA_meth_dup(RSA_PKCS1_OpenSSL());
        if (meth == NULL)
            return NULL;
        RSA_meth_set1_name(meth, "cachet card (cachetd)");
        RSA_meth_set_sign(meth, card_rsa_sign);
        RSA_meth_set_priv_enc(meth, card_rsa_priv_enc);
        RSA_meth_set_priv_dec(meth, NULL);
    }
    RSA *rsa = RSA_new();
    const BIGNUM *n = NULL, *e = NULL;
    RSA_get0_key(pr, &n, &e, NULL);
    if (rsa == NULL || RSA_set0_key(rsa, BN_dup(n), BN_dup(e), NULL) != 1 ||
        RSA_set_method(rsa, meth) != 1) {
        RSA_free(rsa);
        return NULL;
    }
    EVP_PKEY *k = EVP_PKEY_new();
    if (k == NULL || EVP_PKEY_assign_RSA(k, rsa) != 1) {
        EVP_PKEY_free(k);
        RSA_free(rsa);
        return NULL;
    }
    return k;
}
#pragma GCC diagnostic pop

/* ---- message ------------------------------------------------------------------ */

typedef struct {
    char *v[SM_RCPT_MAX];
    size_t n;
} rcpts_t;

static bool rcpt_add(rcpts_t *r, const char *a, size_t len)
{
    while (len > 0 && isspace((unsigned char)*a)) {
        a++;
        len--;
    }
    while (len > 0 && isspace((unsigned char)a[len - 1]))
        len--;
    if (len == 0)
        return true;
    if (len > SM_ADDR_MAX || r->n >= SM_RCPT_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)a[i] <= ' ' || a[i] == '<' || a[i] == '>' || a[i] == 0x7f)
            return false;
    if (memchr(a, '@', len) == NULL)
        return false;
    r->v[r->n] = strndup(a, len);
    return r->v[r->n++] != NULL;
}

/* Addresses of an address-list header value (RFC 5322 §3.4): `<addr>` in each
 * comma-separated element, else the element itself; comments, quoted names
 * and groups' display names are skipped. */
static bool parse_addr_list(rcpts_t *r, const char *v)
{
    const char *p = v;
    while (*p != '\0') {
        /* one element up to a comma outside quotes, <> and () */
        const char *start = p, *lt = NULL, *gt = NULL;
        bool q = false;
        int paren = 0;
        for (; *p != '\0'; p++) {
            if (q) {
                if (*p == '\\' && p[1] != '\0')
                    p++;
                else if (*p == '"')
                    q = false;
            } else if (*p == '"') {
                q = true;
            } else if (*p == '(') {
                paren++;
            } else if (*p == ')' && paren > 0) {
                paren--;
            } else if (paren == 0 && *p == '<') {
                lt = p;
            } else if (paren == 0 && *p == '>' && lt != NULL) {
                gt = p;
            } else if (paren == 0 && (*p == ',' || *p == ';')) {
                break;
            } else if (paren == 0 && *p == ':' && lt == NULL) {
                start = p + 1; /* group "name:" */
            }
        }
        bool ok;
        if (lt != NULL && gt != NULL && gt > lt)
            ok = rcpt_add(r, lt + 1, (size_t)(gt - lt - 1));
        else {
            /* bare addr-spec, without comments */
            char buf[SM_ADDR_MAX + 2];
            size_t n = 0;
            int depth = 0;
            for (const char *s = start; s < p; s++) {
                if (*s == '(')
                    depth++;
                else if (*s == ')' && depth > 0)
                    depth--;
                else if (depth == 0 && n < sizeof buf - 1)
                    buf[n++] = *s;
            }
            ok = n < sizeof buf - 1 && rcpt_add(r, buf, n);
        }
        if (!ok)
            return false;
        if (*p != '\0')
            p++;
    }
    return true;
}

/* Reads stdin into a private temp file: stops at a lone "." line unless
 * ignore_dots (-i), ends lines with LF, drops Bcc from the header when
 * drop_bcc (-t), collects To/Cc/Bcc addresses in *r when drop_bcc.
 * *too_big when over max bytes (then reading stops at once). */
static int read_message(bool ignore_dots, bool from_headers, rcpts_t *r, long long max,
                        bool *too_big, bool *bad_rcpt, char *from_hdr, size_t from_cap)
{
    const char *dir = getenv("TMPDIR");
    if (dir == NULL || dir[0] != '/')
        dir = "/tmp";
    int t = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (t < 0) {
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s/cachet-sendmail.XXXXXX", dir);
        t = mkostemp(path, O_CLOEXEC);
        if (t < 0)
            return -1;
        unlink(path);
    }
    FILE *in = stdin, *out = fdopen(dup(t), "w");
    if (out == NULL) {
        close(t);
        return -1;
    }
    *too_big = false;
    *bad_rcpt = false;
    from_hdr[0] = '\0';
    char *line = NULL, *hdr = NULL;
    size_t cap = 0, hlen = 0;
    ssize_t n;
    long long total = 0;
    bool in_header = true, skip = false;
    /* header field being gathered (unfolded), to look at To/Cc/Bcc/From */
    hdr = malloc(SM_HDR_MAX + 1);
    if (hdr == NULL) {
        fclose(out);
        close(t);
        return -1;
    }
    for (;;) {
        n = getline(&line, &cap, in);
        bool eof = n <= 0;
        size_t len = eof ? 0 : (size_t)n;
        if (len > 0 && line[len - 1] == '\n')
            len--;
        if (len > 0 && line[len - 1] == '\r')
            len--;
        if (!eof && !ignore_dots && len == 1 && line[0] == '.')
            eof = true;
        bool continuation = !eof && in_header && len > 0 && (line[0] == ' ' || line[0] == '\t');
        if (in_header && !continuation && hlen > 0) {
            hdr[hlen] = '\0';
            /* a complete field */
            if (strncasecmp(hdr, "from:", 5) == 0)
                snprintf(from_hdr, from_cap, "%s", hdr + 5);
            if (from_headers && (strncasecmp(hdr, "to:", 3) == 0 || strncasecmp(hdr, "cc:", 3) == 0 ||
                                 strncasecmp(hdr, "bcc:", 4) == 0)) {
                const char *v = strchr(hdr, ':') + 1;
                if (!parse_addr_list(r, v))
                    *bad_rcpt = true;
            }
            hlen = 0;
        }
        if (eof)
            break;
        if (in_header && len == 0) {
            in_header = false;
            skip = false;
        } else if (in_header && !continuation) {
            skip = from_headers && strncasecmp(line, "bcc:", 4) == 0;
        }
        if (in_header) {
            if (hlen + len + 1 > SM_HDR_MAX) {
                *bad_rcpt = true; /* a header field over 256 KiB */
                break;
            }
            memcpy(hdr + hlen, line, len);
            hlen += len;
        }
        if (skip)
            continue;
        total += (long long)len + 1;
        if (total > max) {
            *too_big = true;
            break;
        }
        fwrite(line, 1, len, out);
        fputc('\n', out);
    }
    free(line);
    free(hdr);
    bool ok = fflush(out) == 0 && !ferror(out);
    fclose(out);
    if (!ok || lseek(t, 0, SEEK_SET) != 0) {
        close(t);
        return -1;
    }
    return t;
}

/* ---- SMTP ------------------------------------------------------------------------ */

typedef struct {
    int fd;
    SSL *ssl;
    char buf[4096];
    size_t have, pos;
    char last[SM_LINE_MAX + 1]; /* last reply, for the messages */
} smtp_t;

static ssize_t s_read(smtp_t *s, void *p, size_t n)
{
    if (s->ssl != NULL) {
        int r = SSL_read(s->ssl, p, (int)n);
        return r > 0 ? r : -1;
    }
    ssize_t r;
    do
        r = read(s->fd, p, n);
    while (r < 0 && errno == EINTR);
    return r;
}

static bool s_write(smtp_t *s, const void *p, size_t n)
{
    const char *b = p;
    while (n > 0) {
        ssize_t w;
        if (s->ssl != NULL) {
            int r = SSL_write(s->ssl, b, (int)(n > INT_MAX ? INT_MAX : n));
            w = r > 0 ? r : -1;
        } else {
            w = write(s->fd, b, n);
            if (w < 0 && errno == EINTR)
                continue;
        }
        if (w <= 0)
            return false;
        b += w;
        n -= (size_t)w;
    }
    return true;
}

static bool s_line(smtp_t *s, char *line, size_t cap)
{
    size_t n = 0;
    for (;;) {
        if (s->pos == s->have) {
            ssize_t r = s_read(s, s->buf, sizeof s->buf);
            if (r <= 0)
                return false;
            s->have = (size_t)r;
            s->pos = 0;
        }
        char ch = s->buf[s->pos++];
        if (ch == '\n')
            break;
        if (ch != '\r' && n + 1 < cap)
            line[n++] = ch;
    }
    line[n] = '\0';
    return true;
}

/* A whole reply (RFC 5321 §4.2: "NNN-" continues). Returns the code, 0 on
 * a broken connection. ext collects the text of EHLO lines when not NULL. */
static int s_reply(smtp_t *s, char *ext, size_t ext_cap)
{
    char line[SM_LINE_MAX + 1];
    if (ext != NULL)
        ext[0] = '\0';
    for (int lines = 0; lines < 100; lines++) {
        if (!s_line(s, line, sizeof line) || strlen(line) < 3 || !isdigit((unsigned char)line[0]))
            return 0;
        snprintf(s->last, sizeof s->last, "%s", line);
        if (ext != NULL && strlen(ext) + strlen(line) + 2 < ext_cap) {
            strcat(ext, line + (strlen(line) > 4 ? 4 : 3));
            strcat(ext, "\n");
        }
        if (line[3] != '-')
            return atoi(line) >= 100 && atoi(line) <= 599 ? (line[0] - '0') * 100 +
                                                               (line[1] - '0') * 10 + (line[2] - '0')
                                                         : 0;
    }
    return 0;
}

static int s_cmd(smtp_t *s, char *ext, size_t ext_cap, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int s_cmd(smtp_t *s, char *ext, size_t ext_cap, const char *fmt, ...)
{
    char cmd[SM_LINE_MAX + 3];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(cmd, sizeof cmd - 2, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof cmd - 2)
        return 0;
    memcpy(cmd + n, "\r\n", 3);
    if (!s_write(s, cmd, (size_t)n + 2))
        return 0;
    return s_reply(s, ext, ext_cap);
}

/* The signed message, CRLF line ends, dot-stuffed (RFC 5321 §4.5.2), then
 * the end-of-data "." line. */
static bool s_data(smtp_t *s, int fd)
{
    FILE *f = fdopen(dup(fd), "r");
    if (f == NULL)
        return false;
    char *line = NULL, *obuf = malloc(65536);
    size_t cap = 0, olen = 0;
    ssize_t n;
    bool ok = obuf != NULL;
    while (ok && (n = getline(&line, &cap, f)) > 0) {
        size_t len = (size_t)n;
        if (line[len - 1] == '\n')
            len--;
        if (len > 0 && line[len - 1] == '\r')
            len--;
        if (olen + len + 3 > 65536) {
            ok = s_write(s, obuf, olen);
            olen = 0;
        }
        if (len + 3 > 65536) {
            ok = ok && (line[0] != '.' || s_write(s, ".", 1)) && s_write(s, line, len) &&
                 s_write(s, "\r\n", 2);
            continue;
        }
        if (len > 0 && line[0] == '.')
            obuf[olen++] = '.';
        memcpy(obuf + olen, line, len);
        olen += len;
        obuf[olen++] = '\r';
        obuf[olen++] = '\n';
    }
    ok = ok && !ferror(f) && (olen == 0 || s_write(s, obuf, olen)) && s_write(s, ".\r\n", 3);
    free(line);
    free(obuf);
    fclose(f);
    return ok;
}

static int tcp_connect(const char *host, const char *port)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
    if (getaddrinfo(host, port, &hints, &res) != 0)
        return -1;
    int fd = -1;
    for (struct addrinfo *a = res; a != NULL; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0)
            continue;
        struct timeval tv = {.tv_sec = SM_SMTP_TIMEOUT_S};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        if (connect(fd, a->ai_addr, a->ai_addrlen) == 0)
            break;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    return fd;
}

static void openssl_detail(char *d, size_t cap)
{
    unsigned long e, last = 0;
    while ((e = ERR_get_error()) != 0)
        last = e;
    d[0] = '\0';
    if (last != 0)
        ERR_error_string_n(last, d, cap);
}

/* ---- configuration ------------------------------------------------------------------ */

typedef struct {
    char server[512];
    char ca[PATH_MAX];
    long long max;
} sm_conf_t;

static void conf_file(sm_conf_t *c)
{
    char path[PATH_MAX];
    const char *x = getenv("XDG_CONFIG_HOME"), *home = getenv("HOME");
    if (x != NULL && x[0] == '/')
        snprintf(path, sizeof path, "%s/cachet/cachet.conf", x);
    else if (home != NULL && home[0] == '/')
        snprintf(path, sizeof path, "%s/.config/cachet/cachet.conf", home);
    else
        return;
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return;
    char line[1024];
    while (fgets(line, sizeof line, f) != NULL) {
        char *p = line, *eq = strchr(line, '=');
        while (isspace((unsigned char)*p))
            p++;
        if (*p == '#' || eq == NULL)
            continue;
        char *k_end = eq;
        while (k_end > p && isspace((unsigned char)k_end[-1]))
            k_end--;
        *k_end = '\0';
        char *v = eq + 1;
        while (isspace((unsigned char)*v))
            v++;
        size_t vl = strlen(v);
        while (vl > 0 && isspace((unsigned char)v[vl - 1]))
            v[--vl] = '\0';
        if (strcmp(p, "submission") == 0)
            snprintf(c->server, sizeof c->server, "%s", v);
        else if (strcmp(p, "submission_ca") == 0 || strcmp(p, "submission-ca") == 0)
            snprintf(c->ca, sizeof c->ca, "%s", v);
        else if (strcmp(p, "max_mail_size") == 0 || strcmp(p, "max-size") == 0)
            c->max = atoll(v);
    }
    fclose(f);
}

static long long parse_size(const char *s)
{
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || end == s || v <= 0)
        return -1;
    long long mul = 1;
    if (*end == 'k' || *end == 'K')
        mul = 1024;
    else if (*end == 'M' || *end == 'm')
        mul = 1024 * 1024;
    else if (*end != '\0')
        return -1;
    if (mul > 1 && end[1] != '\0')
        return -1;
    if (v > LLONG_MAX / mul)
        return -1;
    return v * mul;
}

/* The address inside a From value ("Name <a@b>" or "a@b"), lower-cased. */
static void addr_of(const char *v, char *out, size_t cap)
{
    rcpts_t r = {.n = 0};
    out[0] = '\0';
    if (parse_addr_list(&r, v) && r.n > 0)
        snprintf(out, cap, "%s", r.v[0]);
    for (size_t i = 0; i < r.n; i++)
        free(r.v[i]);
    for (char *p = out; *p; p++)
        *p = (char)tolower((unsigned char)*p);
}

/* ---- main ------------------------------------------------------------------------ */

static int usage(const char *what)
{
    err_fr("usage : cachet sendmail [-t] [-i|-oi] [-f EXPÉDITEUR] [-F NOM] [--server HÔTE:PORT] "
           "[--ca FICHIER] [--max-size N[k|M]] [DESTINATAIRE...] < message",
           "usage: cachet sendmail [-t] [-i|-oi] [-f SENDER] [-F NAME] [--server HOST:PORT] "
           "[--ca FILE] [--max-size N[k|M]] [RECIPIENT...] < message",
           what);
    return EX_USAGE_;
}

static int submit(const sm_conf_t *conf, const char *sender, const rcpts_t *r, int signed_fd,
                  X509 *cert, STACK_OF(X509) *chain, EVP_PKEY *key);

/* Exit codes (sysexits):
 *   0  EX_OK           accepted by the submission server
 *   64 EX_USAGE        bad options, no recipient, no server configured
 *   65 EX_DATAERR      message too large (before signing), not MIME, bad header address
 *   67 EX_NOUSER       the server refused a recipient (5xx to RCPT TO)
 *   69 EX_UNAVAILABLE  cachetd, the card or the server unreachable; STARTTLS/TLS failed
 *                      (server certificate not trusted, no TLS 1.2, client certificate refused)
 *   70 EX_SOFTWARE     internal error
 *   75 EX_TEMPFAIL     temporary server refusal (4xx), time out, confirmation not in time
 *   77 EX_NOPERM       Cancel on the appliance, PIN problem, sender refused (5xx to MAIL FROM
 *                      or the sender is not the card's address), message refused (5xx to DATA) */
int cli_sendmail_main(const char *socket_path, int pin_fd, int argc, char **argv)
{
    bool t_flag = false, ignore_dots = false;
    const char *sender = NULL, *o_server = NULL, *o_ca = NULL, *o_max = NULL;
    rcpts_t r = {.n = 0};
    g_d.socket = socket_path;
    int i = 0;
    for (; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--") == 0) {
            i++;
            break;
        }
        if (a[0] != '-' || a[1] == '\0')
            break;
        if (strcmp(a, "-t") == 0)
            t_flag = true;
        else if (strcmp(a, "-i") == 0 || strcmp(a, "-oi") == 0)
            ignore_dots = true;
        else if (strcmp(a, "-f") == 0 || strcmp(a, "-r") == 0 || strcmp(a, "-F") == 0 ||
                 strcmp(a, "--server") == 0 || strcmp(a, "--ca") == 0 ||
                 strcmp(a, "--max-size") == 0) {
            if (i + 1 >= argc)
                return usage(a);
            const char *v = argv[++i];
            if (a[1] == 'f' || a[1] == 'r')
                sender = v;
            else if (strcmp(a, "--server") == 0)
                o_server = v;
            else if (strcmp(a, "--ca") == 0)
                o_ca = v;
            else if (strcmp(a, "--max-size") == 0)
                o_max = v;
            /* -F: the sender's full name, accepted and unused (the From header rules) */
        } else if (strncmp(a, "-f", 2) == 0 || strncmp(a, "-r", 2) == 0) {
            sender = a + 2;
        } else if (strncmp(a, "-F", 2) == 0 || strncmp(a, "-o", 2) == 0 ||
                   strcmp(a, "-v") == 0 || strncmp(a, "-B", 2) == 0 || strncmp(a, "-N", 2) == 0 ||
                   strncmp(a, "-R", 2) == 0 || strncmp(a, "-V", 2) == 0 || strcmp(a, "-U") == 0) {
            /* sendmail options with no meaning here (-oem, -odb, -F..., -Ndelay, ...) */
        } else {
            return usage(a);
        }
    }
    for (; i < argc; i++) {
        /* Recipients as arguments; "a@b, c@d" as one argument too. */
        if (!parse_addr_list(&r, argv[i]))
            return usage(argv[i]);
    }

    sm_conf_t conf = {.max = SM_DEFAULT_MAX};
    conf_file(&conf);
    const char *env = getenv("CACHET_SUBMISSION");
    if (env != NULL && env[0] != '\0')
        snprintf(conf.server, sizeof conf.server, "%s", env);
    env = getenv("CACHET_SUBMISSION_CA");
    if (env != NULL && env[0] != '\0')
        snprintf(conf.ca, sizeof conf.ca, "%s", env);
    if (o_server != NULL)
        snprintf(conf.server, sizeof conf.server, "%s", o_server);
    if (o_ca != NULL)
        snprintf(conf.ca, sizeof conf.ca, "%s", o_ca);
    if (o_max != NULL && (conf.max = parse_size(o_max)) <= 0)
        return usage("--max-size");
    if (conf.server[0] == '\0')
        return usage("aucun serveur de soumission : --server, CACHET_SUBMISSION ou "
                     "`submission =` dans ~/.config/cachet/cachet.conf");

    /* 1. The message, size-checked before anything is signed. */
    bool too_big = false, bad_rcpt = false;
    char from_hdr[1024];
    int msg = read_message(ignore_dots, t_flag, &r, conf.max, &too_big, &bad_rcpt, from_hdr,
                           sizeof from_hdr);
    int rc = EX_OK_;
    if (msg < 0) {
        err_fr("lecture du message impossible", "cannot read the message", strerror(errno));
        return EX_SOFTWARE_;
    }
    if (too_big) {
        char d[64];
        snprintf(d, sizeof d, "> %lld octets / bytes", conf.max);
        err_fr("message trop volumineux : refusé avant toute signature, rien n'a été envoyé",
               "message too large: refused before anything was signed, nothing was sent", d);
        rc = EX_DATAERR_;
        goto out;
    }
    if (bad_rcpt) {
        err_fr("adresse de destinataire illisible dans l'en-tête (To/Cc/Bcc)",
               "unreadable recipient address in the header (To/Cc/Bcc)", NULL);
        rc = EX_DATAERR_;
        goto out;
    }
    if (r.n == 0) {
        rc = usage("aucun destinataire / no recipient");
        goto out;
    }

    /* 2. cachetd: who holds the card, its certificates. */
    if (!d_connect()) {
        snprintf(g_d.last_code, sizeof g_d.last_code, "unreachable");
        rc = d_error("connexion à cachetd", "connecting to cachetd");
        goto out;
    }
    json_object *m = NULL;
    proto_response_t pr;
    char card_email[SM_ADDR_MAX + 1] = "";
    if (!d_call("identity", NULL, NULL, 0, &m, &pr)) {
        json_object_put(m);
        rc = d_error("identité de la carte", "card identity");
        goto out;
    }
    {
        const char *em = NULL;
        proto_get_string(pr.result, "email", false, SM_ADDR_MAX, &em);
        if (em != NULL)
            addr_of(em, card_email, sizeof card_email);
    }
    json_object_put(m);
    char from_addr[SM_ADDR_MAX + 1];
    addr_of(from_hdr, from_addr, sizeof from_addr);
    char env_sender[SM_ADDR_MAX + 1];
    snprintf(env_sender, sizeof env_sender, "%s", sender != NULL ? sender : card_email);
    for (char *p = env_sender; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    if (card_email[0] != '\0' &&
        (strcmp(env_sender, card_email) != 0 || (from_addr[0] != '\0' && strcmp(from_addr, card_email) != 0))) {
        char d[3 * SM_ADDR_MAX + 64];
        snprintf(d, sizeof d, "From: %s, -f: %s, carte/card: %s", from_addr[0] ? from_addr : "-",
                 env_sender, card_email);
        err_fr("l'expéditeur n'est pas l'adresse de la carte CPS : rien n'a été signé ni envoyé",
               "the sender is not the CPS card's address: nothing was signed or sent", d);
        rc = EX_NOPERM_;
        goto out;
    }

    X509 *cert = NULL;
    STACK_OF(X509) *chain = sk_X509_new_null();
    if (!d_call("certificates", NULL, NULL, 0, &m, &pr)) {
        json_object_put(m);
        sk_X509_free(chain);
        rc = d_error("certificats de la carte", "card certificates");
        goto out;
    }
    json_object *certs = json_object_object_get(pr.result, "certificates");
    size_t nc = certs != NULL && json_object_is_type(certs, json_type_array)
                    ? json_object_array_length(certs)
                    : 0;
    for (size_t k = 0; k < nc; k++) {
        json_object *ce = json_object_array_get_idx(certs, k);
        const char *role = NULL;
        uint8_t der[PROTO_BLOB_MAX];
        size_t dl = 0;
        if (proto_get_string(ce, "role", true, 16, &role) != PROTO_OK ||
            proto_get_b64(ce, "der", true, der, sizeof der, &dl) != PROTO_OK)
            continue;
        const unsigned char *p = der;
        X509 *x = d2i_X509(NULL, &p, (long)dl);
        if (x == NULL)
            continue;
        if (strcmp(role, "auth") == 0 && cert == NULL)
            cert = x;
        else if (strcmp(role, "ca") == 0)
            sk_X509_push(chain, x);
        else
            X509_free(x);
    }
    json_object_put(m);
    EVP_PKEY *key = cert != NULL ? card_pkey(cert) : NULL;
    if (key == NULL) {
        err_fr("la carte n'a pas de certificat d'authentification utilisable",
               "the card has no usable authentication certificate", NULL);
        rc = EX_UNAVAILABLE_;
        goto out_tls;
    }

    /* 3. Sign (the appliance shows the summary; the practitioner confirms). */
    int sig_out;
    {
        const char *dir = getenv("TMPDIR");
        if (dir == NULL || dir[0] != '/')
            dir = "/tmp";
        sig_out = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
        if (sig_out < 0) {
            char path[PATH_MAX];
            snprintf(path, sizeof path, "%s/cachet-signed.XXXXXX", dir);
            sig_out = mkostemp(path, O_CLOEXEC);
            if (sig_out >= 0)
                unlink(path);
        }
    }
    if (sig_out < 0) {
        err_fr("fichier temporaire impossible", "cannot create a temporary file", strerror(errno));
        rc = EX_SOFTWARE_;
        goto out_tls;
    }
    {
        json_object *params = json_object_new_object();
        char pin[CLI_PIN_MAX + 1] = "";
        if (pin_fd >= 0 && cli_pin_from_fd(pin_fd, pin))
            json_object_object_add(params, "pin", json_object_new_string(pin));
        cli_wipe(pin, sizeof pin);
        int fds[2] = {msg, sig_out};
        if (!cli_lang_en())
            fprintf(stderr, "cachet sendmail : confirmez la signature sur le boîtier Cachet…\n");
        else
            fprintf(stderr, "cachet sendmail: confirm the signature on the Cachet appliance…\n");
        bool ok = d_call("sign-mail", params, fds, 2, &m, &pr);
        json_object_put(m);
        if (!ok) {
            rc = d_error("signature du message", "signing the message");
            close(sig_out);
            goto out_tls;
        }
    }
    if (lseek(sig_out, 0, SEEK_SET) != 0) {
        close(sig_out);
        rc = EX_SOFTWARE_;
        goto out_tls;
    }

    /* 4. Submit. */
    rc = submit(&conf, env_sender, &r, sig_out, cert, chain, key);
    close(sig_out);

out_tls:
    EVP_PKEY_free(key);
    X509_free(cert);
    sk_X509_pop_free(chain, X509_free);
out:
    for (size_t k = 0; k < r.n; k++)
        free(r.v[k]);
    close(msg);
    if (g_d.fd >= 0)
        close(g_d.fd);
    return rc;
}

/* SMTP reply code → exit code and message (phase: what was refused). */
static int smtp_refused(const smtp_t *s, int code, const char *fr, const char *en, int perm_rc)
{
    /* Postfix with smtpd_tls_req_ccert: "421 4.7.1 ... Client certificate not
     * trusted" after the handshake. Permanent for us: the card's certificate. */
    char low[sizeof s->last];
    size_t k = 0;
    for (; s->last[k] != '\0' && k + 1 < sizeof low; k++)
        low[k] = (char)tolower((unsigned char)s->last[k]);
    low[k] = '\0';
    if (s->ssl != NULL && strstr(low, "certificate") != NULL) {
        err_fr("certificat de la carte refusé par le serveur : rien n'a été envoyé",
               "the card's certificate was refused by the server: nothing was sent", s->last);
        return EX_UNAVAILABLE_;
    }
    err_fr(fr, en, s->last[0] != '\0' ? s->last : NULL);
    if (code == 0)
        return EX_UNAVAILABLE_;
    return code >= 400 && code < 500 ? EX_TEMPFAIL_ : perm_rc;
}

static int submit(const sm_conf_t *conf, const char *sender, const rcpts_t *r, int signed_fd,
                  X509 *cert, STACK_OF(X509) *chain, EVP_PKEY *key)
{
    char host[512], port[16] = "587";
    snprintf(host, sizeof host, "%s", conf->server);
    char *colon = strrchr(host, ':');
    if (host[0] == '[') { /* [::1]:587 */
        char *rb = strchr(host, ']');
        if (rb == NULL)
            return usage("--server");
        *rb = '\0';
        memmove(host, host + 1, strlen(host));
        if (rb[1] == ':')
            snprintf(port, sizeof port, "%s", rb + 2);
    } else if (colon != NULL && strchr(host, ':') == colon) {
        *colon = '\0';
        snprintf(port, sizeof port, "%s", colon + 1);
    }
    struct stat st;
    long long size = fstat(signed_fd, &st) == 0 ? (long long)st.st_size : 0;

    smtp_t s = {.fd = tcp_connect(host, port)};
    if (s.fd < 0) {
        char d[600];
        snprintf(d, sizeof d, "%s:%s : %s", host, port, strerror(errno));
        err_fr("serveur de soumission injoignable : rien n'a été envoyé",
               "submission server unreachable: nothing was sent", d);
        return EX_UNAVAILABLE_;
    }
    SSL_CTX *ctx = NULL;
    int rc = EX_OK_;
    char ext[4096];
    int code = s_reply(&s, NULL, 0);
    if (code != 220) {
        rc = smtp_refused(&s, code, "le serveur refuse la connexion", "the server refuses the connection",
                          EX_UNAVAILABLE_);
        goto done;
    }
    code = s_cmd(&s, ext, sizeof ext, "EHLO localhost");
    if (code != 250) {
        rc = smtp_refused(&s, code, "EHLO refusé", "EHLO refused", EX_UNAVAILABLE_);
        goto done;
    }
    if (strstr(ext, "STARTTLS") == NULL) {
        err_fr("le serveur ne propose pas STARTTLS : rien n'a été envoyé",
               "the server does not offer STARTTLS: nothing was sent", NULL);
        rc = EX_UNAVAILABLE_;
        goto done;
    }
    code = s_cmd(&s, NULL, 0, "STARTTLS");
    if (code != 220) {
        rc = smtp_refused(&s, code, "STARTTLS refusé", "STARTTLS refused", EX_UNAVAILABLE_);
        goto done;
    }
    if (s.pos != s.have) { /* RFC 3207 §4.2 / response injection */
        err_fr("données en clair après STARTTLS : abandon", "plaintext after STARTTLS: aborted", NULL);
        rc = EX_UNAVAILABLE_;
        goto done;
    }
    ctx = SSL_CTX_new(TLS_client_method());
    char d[256];
    if (ctx == NULL || SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
        SSL_CTX_set_max_proto_version(ctx, TLS1_2_VERSION) != 1 ||
        /* a CPS card signs PKCS#1 v1.5 only: no PSS (RFC 5246 §7.4.1.4.1) */
        SSL_CTX_set1_client_sigalgs_list(ctx, "RSA+SHA256") != 1 ||
        SSL_CTX_use_certificate(ctx, cert) != 1 || SSL_CTX_use_PrivateKey(ctx, key) != 1) {
        openssl_detail(d, sizeof d);
        err_fr("préparation TLS impossible", "cannot set up TLS", d);
        rc = EX_SOFTWARE_;
        goto done;
    }
    for (int k = 0; k < sk_X509_num(chain); k++)
        SSL_CTX_add1_chain_cert(ctx, sk_X509_value(chain, k));
    if (conf->ca[0] != '\0' ? SSL_CTX_load_verify_locations(ctx, conf->ca, NULL) != 1
                            : SSL_CTX_set_default_verify_paths(ctx) != 1) {
        openssl_detail(d, sizeof d);
        err_fr("fichier d'autorités (--ca) illisible", "unreadable CA file (--ca)", conf->ca);
        rc = EX_USAGE_;
        goto done;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    s.ssl = SSL_new(ctx);
    if (s.ssl == NULL || SSL_set_fd(s.ssl, s.fd) != 1) {
        rc = EX_SOFTWARE_;
        goto done;
    }
    {
        X509_VERIFY_PARAM *vp = SSL_get0_param(s.ssl);
        ASN1_OCTET_STRING *ip = a2i_IPADDRESS(host);
        if (ip != NULL) {
            ASN1_OCTET_STRING_free(ip);
            X509_VERIFY_PARAM_set1_ip_asc(vp, host);
        } else {
            X509_VERIFY_PARAM_set1_host(vp, host, 0);
            SSL_set_tlsext_host_name(s.ssl, host);
        }
    }
    ERR_clear_error();
    if (SSL_connect(s.ssl) != 1) {
        long vr = SSL_get_verify_result(s.ssl);
        openssl_detail(d, sizeof d);
        SSL_free(s.ssl);
        s.ssl = NULL;
        if (g_d.last_code[0] != '\0') {
            rc = d_error("authentification TLS par la carte", "TLS authentication with the card");
        } else if (vr != X509_V_OK) {
            char dd[400];
            snprintf(dd, sizeof dd, "%s", X509_verify_cert_error_string(vr));
            err_fr("certificat du serveur non reconnu (--ca) : rien n'a été envoyé",
                   "the server's certificate is not trusted (--ca): nothing was sent", dd);
            rc = EX_UNAVAILABLE_;
        } else if (strstr(d, "version") != NULL || strstr(d, "protocol") != NULL) {
            err_fr("le serveur n'accepte pas TLS 1.2 (une carte CPS ne peut pas signer en TLS 1.3) : "
                   "rien n'a été envoyé",
                   "the server does not accept TLS 1.2 (a CPS card cannot sign in TLS 1.3): nothing was sent",
                   d);
            rc = EX_UNAVAILABLE_;
        } else {
            err_fr("échec de la négociation TLS (certificat de la carte refusé par le serveur ?) : "
                   "rien n'a été envoyé",
                   "TLS handshake failed (card certificate refused by the server?): nothing was sent", d);
            rc = EX_UNAVAILABLE_;
        }
        goto done;
    }
    s.have = s.pos = 0;
    code = s_cmd(&s, ext, sizeof ext, "EHLO localhost");
    if (code != 250) {
        /* TLS 1.2 client certificate refused after the handshake shows up here */
        rc = smtp_refused(&s, code,
                          "le serveur refuse la session TLS (certificat de la carte refusé ?) : rien n'a été envoyé",
                          "the server refuses the TLS session (card certificate refused?): nothing was sent",
                          EX_UNAVAILABLE_);
        goto done;
    }
    if (strstr(ext, "SIZE") != NULL)
        code = s_cmd(&s, NULL, 0, "MAIL FROM:<%s> SIZE=%lld", sender, size);
    else
        code = s_cmd(&s, NULL, 0, "MAIL FROM:<%s>", sender);
    if (code != 250) {
        rc = smtp_refused(&s, code,
                          "expéditeur refusé par le serveur : rien n'a été envoyé",
                          "sender refused by the server: nothing was sent", EX_NOPERM_);
        if (code == 552)
            rc = EX_DATAERR_;
        goto quit;
    }
    for (size_t k = 0; k < r->n; k++) {
        code = s_cmd(&s, NULL, 0, "RCPT TO:<%s>", r->v[k]);
        if (code != 250 && code != 251) {
            char fr[SM_ADDR_MAX + 100], en[SM_ADDR_MAX + 100];
            snprintf(fr, sizeof fr, "destinataire %s refusé : rien n'a été envoyé", r->v[k]);
            snprintf(en, sizeof en, "recipient %s refused: nothing was sent", r->v[k]);
            rc = smtp_refused(&s, code, fr, en, EX_NOUSER_);
            goto rset;
        }
    }
    code = s_cmd(&s, NULL, 0, "DATA");
    if (code != 354) {
        rc = smtp_refused(&s, code, "DATA refusé : rien n'a été envoyé",
                          "DATA refused: nothing was sent", EX_NOPERM_);
        goto rset;
    }
    if (!s_data(&s, signed_fd)) {
        err_fr("connexion perdue pendant l'envoi : message non remis",
               "connection lost while sending: message not delivered", NULL);
        rc = EX_TEMPFAIL_;
        goto done;
    }
    code = s_reply(&s, NULL, 0);
    if (code != 250) {
        rc = smtp_refused(&s, code, "message refusé par le serveur", "message refused by the server",
                          code == 552 ? EX_DATAERR_ : EX_NOPERM_);
        goto quit;
    }
    if (!cli_lang_en())
        fprintf(stderr, "cachet sendmail : message signé et remis au serveur (%zu destinataire(s))\n",
                r->n);
    else
        fprintf(stderr, "cachet sendmail: message signed and accepted by the server (%zu recipient(s))\n",
                r->n);
    goto quit;
rset:
    s_cmd(&s, NULL, 0, "RSET");
quit:
    s_cmd(&s, NULL, 0, "QUIT");
done:
    if (s.ssl != NULL) {
        SSL_shutdown(s.ssl);
        SSL_free(s.ssl);
    }
    SSL_CTX_free(ctx);
    close(s.fd);
    return rc;
}
