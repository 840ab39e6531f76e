/* cachet: the command-line client of cachetd (docs/cachet.md). It never
 * touches the card: every command is a request on cachetd's socket
 * (docs/protocol.md), except `audit verify --log PATH`, which checks an audit
 * log file directly (audit_verify), e.g. after cachetd died. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "audit.h"
#include "cli.h"
#include "device.h"
#include "proto.h"

#define CLI_VERSION      "0.1.0"
#define HELLO_TIMEOUT_MS 10000
#define SPOOL_MAX        (1024ull * 1024 * 1024) /* stdin spooled for sign-mail, at most */

typedef struct {
    bool json;
    const char *socket;
    int pin_fd;
    int fd;
    int64_t next_id;
} cli_t;

typedef enum { CALL_OK = 0, CALL_ERROR, CALL_IO } call_t;

/* ---- output ----------------------------------------------------------------- */

/* Messages come from cli_msg's table of constant formats (French / English). */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
static void say(FILE *f, cli_msg_t m, ...)
{
    va_list ap;
    va_start(ap, m);
    vfprintf(f, cli_msg(m), ap);
    va_end(ap);
    fputc('\n', f);
}
static void sayf(char *buf, size_t cap, cli_msg_t m, ...)
{
    va_list ap;
    va_start(ap, m);
    vsnprintf(buf, cap, cli_msg(m), ap);
    va_end(ap);
}
#pragma GCC diagnostic pop

static void print_json(FILE *f, json_object *o)
{
    fprintf(f, "%s\n",
            json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
                                                  JSON_C_TO_STRING_NOSLASHESCAPE));
    fflush(f);
}

static const char *str_of(json_object *o, const char *key)
{
    json_object *v = NULL;
    if (o != NULL && json_object_object_get_ex(o, key, &v) &&
        json_object_is_type(v, json_type_string))
        return json_object_get_string(v);
    return "";
}

static json_object *obj_of(json_object *o, const char *key)
{
    json_object *v = NULL;
    if (o != NULL && json_object_object_get_ex(o, key, &v))
        return v;
    return NULL;
}

static bool bool_of(json_object *o, const char *key)
{
    json_object *v = obj_of(o, key);
    return v != NULL && json_object_is_type(v, json_type_boolean) && json_object_get_boolean(v);
}

static int64_t int_of(json_object *o, const char *key, int64_t dflt)
{
    json_object *v = obj_of(o, key);
    return v != NULL && json_object_is_type(v, json_type_int) ? json_object_get_int64(v) : dflt;
}

/* An error of our own (not from cachetd), shaped like the daemon's. */
static int local_error(cli_t *c, const char *code, cli_msg_t m, const char *detail)
{
    if (c->json) {
        json_object *o = json_object_new_object(), *e = json_object_new_object();
        json_object_object_add(e, "code", json_object_new_string(code));
        json_object_object_add(e, "message", json_object_new_string(cli_msg(m)));
        if (detail != NULL)
            json_object_object_add(e, "detail", json_object_new_string(detail));
        json_object_object_add(o, "error", e);
        print_json(stdout, o);
        json_object_put(o);
    } else {
        say(stderr, m);
        if (detail != NULL)
            fprintf(stderr, "  (%s)\n", detail);
    }
    return cli_exit_for_code(code);
}

/* Prints cachetd's error (localised; JSON with --json) and gives the exit code. */
static int daemon_error(cli_t *c, const proto_response_t *pr)
{
    if (c->json) {
        json_object *o = json_object_new_object();
        json_object_object_add(o, "error", json_object_get(pr->error));
        print_json(stdout, o);
        json_object_put(o);
        return cli_exit_for_code(pr->code);
    }
    cli_msg_t m = cli_msg_for_code(pr->code);
    say(stderr, m);
    if (pr->tries_left >= 0 && strncmp(pr->code, "pin-", 4) == 0 &&
        strcmp(pr->code, "pin-blocked") != 0)
        say(stderr, M_TRIES_LEFT, (int)pr->tries_left);
    if (m == M_INTERNAL || m == M_BAD_SIGNATURE || m == M_UNTRUSTED || m == M_NOT_MIME ||
        m == M_SIGNER_MISMATCH || m == M_NOT_SUPPORTED || m == M_BACKEND)
        fprintf(stderr, "  (%s : %s)\n", pr->code, pr->message != NULL ? pr->message : "");
    return cli_exit_for_code(pr->code);
}

/* ---- talking to cachetd --------------------------------------------------- */

static void wipe_request(json_object *req)
{
    json_object *params = obj_of(req, "params"), *pin = obj_of(params, "pin");
    if (pin != NULL && json_object_is_type(pin, json_type_string))
        cli_wipe((char *)json_object_get_string(pin), (size_t)json_object_get_string_len(pin));
    size_t len = 0;
    const char *s = json_object_to_json_string_length(req, JSON_C_TO_STRING_PLAIN, &len);
    if (s != NULL)
        cli_wipe((char *)s, len);
}

/* Sends a request and waits for its response (events in between are skipped).
 * *msg (caller puts) holds what pr borrows. */
static call_t call(cli_t *c, const char *method, json_object *params, const int *fds, size_t nfds,
                   json_object **msg, proto_response_t *pr, int timeout_ms)
{
    int64_t id = c->next_id++;
    json_object *req = proto_request_new(id, method, params);
    *msg = NULL;
    if (req == NULL)
        return CALL_IO;
    proto_status_t st = proto_write_json(c->fd, req, fds, nfds);
    wipe_request(req);
    json_object_put(req);
    for (;;) {
        if (st != PROTO_OK)
            break;
        json_object *m = NULL;
        st = proto_read_json(c->fd, timeout_ms, &m, NULL, NULL);
        if (st != PROTO_OK)
            break;
        if (proto_is_event(m)) {
            json_object_put(m);
            continue;
        }
        if (proto_parse_response(m, pr) != PROTO_OK || (pr->id != id && pr->id != -1)) {
            json_object_put(m);
            continue;
        }
        *msg = m;
        return pr->code != NULL ? CALL_ERROR : CALL_OK;
    }
    if (st == PROTO_ERR_TIMEOUT)
        local_error(c, "timeout", M_TIMEOUT, NULL);
    else
        local_error(c, "unreachable", M_UNREACHABLE, proto_status_name(st));
    return CALL_IO;
}

static int call_exit(cli_t *c, call_t r, const proto_response_t *pr)
{
    if (r == CALL_ERROR)
        return daemon_error(c, pr);
    return r == CALL_IO ? CLI_EXIT_UNREACHABLE : CLI_EXIT_OK;
}

/* One request without descriptors. On failure *rc gets the exit code (the
 * error already said) and nothing is left to free. */
static bool request(cli_t *c, const char *method, json_object *params, json_object **m,
                    proto_response_t *pr, int *rc)
{
    call_t r = call(c, method, params, NULL, 0, m, pr, -1);
    if (r == CALL_OK)
        return true;
    *rc = call_exit(c, r, pr);
    json_object_put(*m);
    *m = NULL;
    return false;
}


static int connect_daemon(cli_t *c)
{
    char path[PATH_MAX];
    if (c->socket != NULL) {
        snprintf(path, sizeof path, "%s", c->socket);
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
    size_t plen = strlen(path);
    if (plen >= sizeof sa.sun_path)
        return local_error(c, "unreachable", M_UNREACHABLE, "socket path too long");
    memcpy(sa.sun_path, path, plen + 1);
    c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        char d[PATH_MAX + 64];
        snprintf(d, sizeof d, "%s: %s", path, strerror(errno));
        return local_error(c, "unreachable", M_UNREACHABLE, d);
    }
    json_object *hello = proto_hello_new(c->next_id++, "cachet " CLI_VERSION);
    proto_status_t wst = proto_write_json(c->fd, hello, NULL, 0);
    json_object_put(hello);
    json_object *m = NULL;
    /* Read even if the write failed: a cachetd that refuses us ("denied") has
     * answered and closed before our hello arrived. */
    proto_status_t st =
        proto_read_json(c->fd, wst == PROTO_OK ? HELLO_TIMEOUT_MS : 1000, &m, NULL, NULL);
    if (st != PROTO_OK)
        return local_error(c, "unreachable", M_UNREACHABLE,
                           proto_status_name(wst != PROTO_OK ? wst : st));
    proto_response_t pr;
    int rc = CLI_EXIT_OK;
    if (proto_parse_response(m, &pr) != PROTO_OK)
        rc = local_error(c, "unreachable", M_UNREACHABLE, "not a cachetd answer");
    else if (pr.code != NULL)
        rc = daemon_error(c, &pr); /* "denied" comes from cachetd itself */
    json_object_put(m);
    return rc;
}

/* ---- PIN -------------------------------------------------------------------- */

/* Asks the PIN when the card needs it: none if verified already or typed on
 * the reader's PIN pad; else from --pin-fd or the terminal. Returns an exit
 * code (0: go on; *has says whether pin holds one). */
static int prepare_pin(cli_t *c, bool always, char *pin, bool *has)
{
    *has = false;
    json_object *m = NULL;
    proto_response_t pr;
    int failed_rc;
    if (!request(c, "status", NULL, &m, &pr, &failed_rc))
        return failed_rc;
    json_object *reader = obj_of(pr.result, "reader"), *card = obj_of(pr.result, "card"),
                *pinst = obj_of(pr.result, "pin");
    int rc = CLI_EXIT_OK;
    if (!bool_of(reader, "present")) {
        rc = local_error(c, "no-reader", M_NO_READER, NULL);
    } else if (!bool_of(card, "present")) {
        rc = local_error(c, "no-card", M_NO_CARD, NULL);
    } else if (bool_of(pinst, "verified") && !always) {
        /* nothing to ask */
    } else if (bool_of(reader, "pinpad") && c->pin_fd < 0) {
        if (!c->json)
            say(stderr, M_PIN_ON_READER);
    } else if (c->pin_fd >= 0) {
        if (!cli_pin_from_fd(c->pin_fd, pin))
            rc = local_error(c, "pin-required", M_PIN_EMPTY, NULL);
        else
            *has = true;
    } else {
        char prompt[160];
        int64_t tries = int_of(pinst, "tries_left", -1);
        if (tries >= 0)
            sayf(prompt, sizeof prompt, M_PIN_PROMPT_TRIES, (int)tries);
        else
            sayf(prompt, sizeof prompt, M_PIN_PROMPT);
        if (!cli_pin_from_tty(prompt, pin))
            rc = local_error(c, "pin-required", M_PIN_REQUIRED, NULL);
        else
            *has = true;
    }
    json_object_put(m);
    return rc;
}

static json_object *pin_params(const char *pin, bool has)
{
    json_object *p = json_object_new_object();
    if (has)
        json_object_object_add(p, "pin", json_object_new_string(pin));
    return p;
}

/* ---- files ------------------------------------------------------------------ */

/* A private unlinked file holding everything read from fd (at most SPOOL_MAX). */
static int spool(int fd)
{
    const char *dir = getenv("TMPDIR");
    if (dir == NULL || dir[0] != '/')
        dir = "/tmp";
    int t = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (t < 0) {
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s/cachet-mail.XXXXXX", dir);
        t = mkostemp(path, O_CLOEXEC);
        if (t < 0)
            return -1;
        unlink(path);
    }
    char buf[65536];
    unsigned long long total = 0;
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 || (total += (unsigned long long)n) > SPOOL_MAX) {
            close(t);
            return -1;
        }
        if (n == 0)
            break;
        for (ssize_t off = 0; off < n;) {
            ssize_t w = write(t, buf + off, (size_t)(n - off));
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0) {
                close(t);
                return -1;
            }
            off += w;
        }
    }
    if (lseek(t, 0, SEEK_SET) != 0) {
        close(t);
        return -1;
    }
    return t;
}

static int open_input(cli_t *c, const char *name, int *fd)
{
    if (name == NULL || strcmp(name, "-") == 0) {
        *fd = 0;
        return CLI_EXIT_OK;
    }
    *fd = open(name, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (*fd < 0) {
        char d[PATH_MAX + 64];
        snprintf(d, sizeof d, "%s: %s", name, strerror(errno));
        if (c->json)
            return local_error(c, "bad-input", M_FILE_ERROR, d);
        fprintf(stderr, "%s\n", d);
        return CLI_EXIT_USAGE;
    }
    return CLI_EXIT_OK;
}

static bool write_all(int fd, const void *p, size_t n)
{
    const char *b = p;
    while (n > 0) {
        ssize_t w = write(fd, b, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return false;
        b += w;
        n -= (size_t)w;
    }
    return true;
}

/* ---- commands --------------------------------------------------------------- */

static int usage_error(const char *what)
{
    fprintf(stderr, "cachet : %s\n", what);
    fputs(cli_lang_en() ? "Try: cachet --help\n" : "Essayez : cachet --help\n", stderr);
    return CLI_EXIT_USAGE;
}

static int cmd_status(cli_t *c, int argc, char **argv)
{
    (void)argv;
    if (argc > 0)
        return usage_error("status : pas d'argument / no argument");
    json_object *m = NULL;
    proto_response_t pr;
    int failed_rc;
    if (!request(c, "status", NULL, &m, &pr, &failed_rc))
        return failed_rc;
    json_object *res = pr.result;
    if (c->json) {
        print_json(stdout, res);
        json_object_put(m);
        return CLI_EXIT_OK;
    }
    json_object *reader = obj_of(res, "reader"), *card = obj_of(res, "card"),
                *pin = obj_of(res, "pin");
    if (bool_of(reader, "present"))
        say(stdout, M_READER, str_of(reader, "name"),
            cli_msg(bool_of(reader, "pinpad") ? M_PINPAD_YES : M_PINPAD_NO));
    else
        say(stdout, M_READER_NONE);
    char line[256];
    if (!bool_of(card, "present"))
        snprintf(line, sizeof line, "%s", cli_msg(M_CARD_ABSENT));
    else if (!bool_of(card, "ready") && str_of(card, "error")[0] != '\0')
        sayf(line, sizeof line, M_CARD_NOT_READY, str_of(card, "error"));
    else
        sayf(line, sizeof line, M_CARD_PRESENT, str_of(card, "serial"));
    say(stdout, M_CARD, line);
    if (bool_of(card, "present") && str_of(card, "holder_surname")[0] != '\0')
        say(stdout, M_HOLDER, str_of(card, "holder_given_name"), str_of(card, "holder_surname"));
    if (bool_of(card, "present")) {
        int64_t tries = int_of(pin, "tries_left", -1);
        char tl[64] = "";
        if (tries >= 0) {
            tl[0] = ',';
            tl[1] = ' ';
            sayf(tl + 2, sizeof tl - 2, M_TRIES_SHORT, (int)tries);
        }
        snprintf(line, sizeof line, "%s%s",
                 cli_msg(bool_of(pin, "verified") ? M_PIN_VERIFIED : M_PIN_NOT_VERIFIED), tl);
        say(stdout, M_PIN_STATE, line);
    }
    say(stdout, M_SERVICE, str_of(res, "server"), str_of(res, "backend"));
    json_object_put(m);
    return CLI_EXIT_OK;
}

static void date_only(const char *rfc3339, char *out, size_t cap)
{
    snprintf(out, cap, "%.10s", rfc3339);
}

static int cmd_whoami(cli_t *c, int argc, char **argv)
{
    (void)argv;
    if (argc > 0)
        return usage_error("whoami : pas d'argument / no argument");
    json_object *m = NULL;
    proto_response_t pr;
    int failed_rc;
    if (!request(c, "identity", NULL, &m, &pr, &failed_rc))
        return failed_rc;
    json_object *id = pr.result;
    if (c->json) {
        print_json(stdout, id);
        json_object_put(m);
        return CLI_EXIT_OK;
    }
    printf("%s %s\n", str_of(id, "given_name"), str_of(id, "surname"));
    if (str_of(id, "profession")[0] != '\0')
        say(stdout, M_PROFESSION, str_of(id, "profession"));
    const char *type = str_of(id, "idnat_type"), *idnat = str_of(id, "idnat");
    if (type[0] != '\0' && strlen(idnat) > 1)
        /* IdNat = type digit + number (spec/domain.md) */
        printf("%-14s: %s (IdNat %s)\n", type, idnat + 1, idnat);
    else
        printf("%-14s: %s\n", "IdNat", idnat);
    say(stdout, M_CARD_TYPE, str_of(id, "card_type"), str_of(id, "serial"));
    if (str_of(id, "structure_name")[0] != '\0' || str_of(id, "structure_id")[0] != '\0')
        say(stdout, M_STRUCTURE, str_of(id, "structure_name"), str_of(id, "structure_id"));
    if (str_of(id, "email")[0] != '\0')
        say(stdout, M_EMAIL, str_of(id, "email"));
    char nb[16], na[16];
    date_only(str_of(id, "not_before"), nb, sizeof nb);
    date_only(str_of(id, "not_after"), na, sizeof na);
    say(stdout, M_VALIDITY, nb, na);
    json_object *chain = obj_of(id, "chain");
    char line[512];
    if (strcmp(str_of(chain, "status"), "ok") == 0)
        snprintf(line, sizeof line, "%s", cli_msg(M_CHAIN_OK));
    else
        sayf(line, sizeof line, M_CHAIN_BAD, str_of(chain, "status"), str_of(chain, "detail"));
    say(stdout, M_CHAIN, line);
    json_object *keys = obj_of(id, "keys");
    json_object *ka = obj_of(keys, "auth"), *ks = obj_of(keys, "sign");
    char a[64], s[64];
    snprintf(a, sizeof a, "%s %s", str_of(ka, "ref"), str_of(ka, "label"));
    snprintf(s, sizeof s, "%s %s", str_of(ks, "ref"), str_of(ks, "label"));
    say(stdout, M_KEYS, ka != NULL ? a : "-", ks != NULL ? s : "-");
    json_object_put(m);
    return CLI_EXIT_OK;
}

static int cmd_sign_mail(cli_t *c, int argc, char **argv)
{
    const char *in_name = NULL, *out_name = NULL;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "-o") == 0 || strcmp(argv[i], "--output") == 0) {
            if (i + 1 >= argc)
                return usage_error("sign-mail : -o SORTIE");
            out_name = argv[++i];
        } else if (in_name == NULL && (argv[i][0] != '-' || strcmp(argv[i], "-") == 0)) {
            in_name = argv[i];
        } else {
            return usage_error("sign-mail [FICHIER|-] [-o SORTIE|-]");
        }
    }
    int in = -1, rc = open_input(c, in_name, &in);
    if (rc != CLI_EXIT_OK)
        return rc;
    struct stat st;
    if (fstat(in, &st) != 0 || !S_ISREG(st.st_mode)) {
        /* cachetd gets a complete file, never a pipe that may end early. */
        int t = spool(in);
        if (in != 0)
            close(in);
        if (t < 0)
            return local_error(c, "bad-input", M_FILE_ERROR, "spool");
        in = t;
    }
    bool to_stdout = out_name == NULL || strcmp(out_name, "-") == 0;
    char tmp[PATH_MAX] = "";
    int out = 1;
    if (!to_stdout) {
        snprintf(tmp, sizeof tmp, "%s.XXXXXX", out_name);
        out = mkostemp(tmp, O_CLOEXEC);
        if (out < 0) {
            char d[PATH_MAX + 64];
            snprintf(d, sizeof d, "%s: %s", out_name, strerror(errno));
            close(in);
            return local_error(c, "bad-input", M_FILE_ERROR, d);
        }
    }
    char pin[CLI_PIN_MAX + 1] = "";
    bool has = false;
    rc = prepare_pin(c, false, pin, &has);
    json_object *m = NULL;
    proto_response_t pr;
    if (rc == CLI_EXIT_OK) {
        int fds[2] = {in, out};
        call_t r = call(c, "sign-mail", pin_params(pin, has), fds, 2, &m, &pr, -1);
        cli_wipe(pin, sizeof pin);
        rc = call_exit(c, r, &pr);
        if (r == CALL_OK && !to_stdout) {
            if (fsync(out) != 0 || rename(tmp, out_name) != 0) {
                char d[PATH_MAX + 64];
                snprintf(d, sizeof d, "%s: %s", out_name, strerror(errno));
                rc = local_error(c, "bad-input", M_FILE_ERROR, d);
            } else {
                tmp[0] = '\0';
            }
        }
        if (r == CALL_OK && rc == CLI_EXIT_OK) {
            json_object *sum = obj_of(pr.result, "summary");
            json_object *rcpt = obj_of(pr.result, "receipt");
            if (c->json) {
                print_json(to_stdout ? stderr : stdout, pr.result);
            } else {
                say(stderr, M_SIGNED_OK, str_of(sum, "from"), str_of(sum, "subject"));
                if (rcpt != NULL)
                    say(stderr, M_SIGNED_RECEIPT, (long long)int_of(rcpt, "counter", 0));
                if (rcpt != NULL && (!bool_of(rcpt, "verified") ||
                                     strcmp(str_of(rcpt, "device_key_status"), "mismatch") == 0))
                    say(stderr, M_RECEIPT_UNTRUSTED);
            }
        }
    }
    cli_wipe(pin, sizeof pin);
    if (tmp[0] != '\0')
        unlink(tmp);
    if (!to_stdout)
        close(out);
    close(in);
    json_object_put(m);
    return rc;
}

static int cmd_verify_mail(cli_t *c, int argc, char **argv)
{
    if (argc > 1)
        return usage_error("verify-mail [FICHIER|-]");
    int in = -1, rc = open_input(c, argc == 1 ? argv[0] : NULL, &in);
    if (rc != CLI_EXIT_OK)
        return rc;
    json_object *m = NULL;
    proto_response_t pr;
    call_t r = call(c, "verify-mail", NULL, &in, 1, &m, &pr, -1);
    if (in != 0)
        close(in);
    if (r == CALL_OK) {
        json_object *v = pr.result;
        if (c->json) {
            print_json(stdout, v);
        } else {
            char who[600];
            snprintf(who, sizeof who, "%s", str_of(v, "signer_subject"));
            say(stdout, M_VERIFY_OK, who,
                str_of(v, "signer_email")[0] ? str_of(v, "signer_email")
                                             : str_of(v, "signer_idnat"));
            if (bool_of(v, "from_matches"))
                say(stdout, M_VERIFY_FROM_OK);
            else
                say(stdout, M_VERIFY_FROM_BAD, str_of(v, "from"));
        }
        json_object_put(m);
        return CLI_EXIT_OK;
    }
    rc = call_exit(c, r, &pr);
    json_object_put(m);
    return rc;
}

static int cmd_login(cli_t *c, int argc, char **argv)
{
    const char *chal = NULL, *out_name = NULL;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--challenge") == 0 && i + 1 < argc)
            chal = argv[++i];
        else if ((strcmp(argv[i], "-o") == 0 || strcmp(argv[i], "--output") == 0) && i + 1 < argc)
            out_name = argv[++i];
        else
            return usage_error("login --challenge FICHIER|- [-o SIGNATURE]");
    }
    if (chal == NULL)
        return usage_error("login --challenge FICHIER|- [-o SIGNATURE]");
    int in = -1, rc = open_input(c, chal, &in);
    if (rc != CLI_EXIT_OK)
        return rc;
    uint8_t buf[1025];
    size_t n = 0;
    for (;;) {
        ssize_t r = read(in, buf + n, sizeof buf - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        n += (size_t)r;
        if (n == sizeof buf)
            break;
    }
    if (in != 0)
        close(in);
    if (n == 0 || n > 1024) {
        say(stderr, M_CHALLENGE_TOO_BIG);
        return CLI_EXIT_USAGE;
    }
    char pin[CLI_PIN_MAX + 1] = "";
    bool has = false;
    rc = prepare_pin(c, false, pin, &has);
    if (rc != CLI_EXIT_OK)
        return rc;
    json_object *params = pin_params(pin, has);
    cli_wipe(pin, sizeof pin);
    proto_add_b64(params, "challenge", buf, n);
    json_object *m = NULL;
    proto_response_t pr;
    call_t r = call(c, "login", params, NULL, 0, &m, &pr, -1);
    rc = call_exit(c, r, &pr);
    if (r == CALL_OK) {
        uint8_t sig[PROTO_BLOB_MAX];
        size_t sl = 0;
        if (proto_get_b64(pr.result, "signature", true, sig, sizeof sig, &sl) != PROTO_OK) {
            rc = local_error(c, "internal", M_INTERNAL, "signature");
        } else if (out_name != NULL && strcmp(out_name, "-") != 0) {
            int fd = open(out_name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
            if (fd < 0 || !write_all(fd, sig, sl) || close(fd) != 0) {
                char d[PATH_MAX + 64];
                snprintf(d, sizeof d, "%s: %s", out_name, strerror(errno));
                rc = local_error(c, "bad-input", M_FILE_ERROR, d);
            } else if (c->json) {
                print_json(stdout, pr.result);
            } else {
                say(stderr, M_LOGIN_OK, str_of(pr.result, "algorithm"));
            }
        } else if (out_name != NULL) { /* -o -: raw signature on stdout */
            if (!write_all(1, sig, sl))
                rc = CLI_EXIT_FAILED;
        } else if (c->json) {
            print_json(stdout, pr.result);
        } else {
            printf("%s\n", str_of(pr.result, "signature"));
        }
    }
    json_object_put(m);
    return rc;
}

static int cmd_verify_pin(cli_t *c, int argc, char **argv)
{
    (void)argv;
    if (argc > 0)
        return usage_error("verify-pin : pas d'argument / no argument");
    char pin[CLI_PIN_MAX + 1] = "";
    bool has = false;
    int rc = prepare_pin(c, true, pin, &has);
    if (rc != CLI_EXIT_OK)
        return rc;
    json_object *m = NULL;
    proto_response_t pr;
    call_t r = call(c, "verify-pin", pin_params(pin, has), NULL, 0, &m, &pr, -1);
    cli_wipe(pin, sizeof pin);
    rc = call_exit(c, r, &pr);
    if (r == CALL_OK) {
        if (c->json)
            print_json(stdout, pr.result);
        else
            say(stdout, M_PIN_OK);
    }
    json_object_put(m);
    return rc;
}

static int print_audit_result(cli_t *c, json_object *v)
{
    bool ok = bool_of(v, "ok");
    json_object *rc = obj_of(v, "receipts");
    /* without "chain_ok" (an older cachetd), "ok" is the chain's */
    bool chain_ok = obj_of(v, "chain_ok") != NULL ? bool_of(v, "chain_ok") : ok;
    if (c->json) {
        print_json(stdout, v);
        return ok ? CLI_EXIT_OK : CLI_EXIT_FAILED;
    }
    if (chain_ok)
        say(stdout, M_AUDIT_OK, (unsigned long long)int_of(v, "entries", 0));
    else
        say(stdout, M_AUDIT_BAD, (unsigned long long)int_of(v, "first_bad", 0),
            str_of(v, "reason"));
    if (rc != NULL && chain_ok) {
        if (bool_of(rc, "skipped"))
            say(stdout, M_RECEIPTS_SKIPPED, str_of(rc, "reason"));
        else if (!bool_of(rc, "ok"))
            say(stdout, M_RECEIPTS_BAD, (unsigned long long)int_of(rc, "first_bad", 0),
                str_of(rc, "reason"));
        else if (int_of(rc, "checked", 0) > 0)
            say(stdout, M_RECEIPTS_OK, (unsigned long long)int_of(rc, "checked", 0));
        else
            say(stdout, M_RECEIPTS_NONE);
    }
    return ok ? CLI_EXIT_OK : CLI_EXIT_FAILED;
}

/* The offline receipt pass (audit verify --log): with the pinned key given
 * (--device-pin) or found beside the log (cachetd's default place); without
 * one, the receipts are not checked (said so). */
static json_object *offline_receipts(const char *log, const char *pin_path, bool *ok)
{
    char def[PATH_MAX];
    if (pin_path == NULL) {
        const char *slash = strrchr(log, '/');
        int dl = slash != NULL ? (int)(slash - log) : 1;
        snprintf(def, sizeof def, "%.*s/device.pin", dl, slash != NULL ? log : ".");
        pin_path = def;
    }
    uint8_t spki[DEVICE_SPKI_MAX];
    size_t len = 0;
    bool exists = false;
    char err[256] = "";
    json_object *rc = json_object_new_object();
    bool pinned = device_pin_load(pin_path, spki, sizeof spki, &len, &exists, err, sizeof err);
    if (!pinned && !exists) {
        json_object_object_add(rc, "ok", json_object_new_boolean(true));
        json_object_object_add(rc, "skipped", json_object_new_boolean(true));
        json_object_object_add(rc, "reason", json_object_new_string(pin_path));
        *ok = true;
        return rc;
    }
    device_audit_result_t dv;
    *ok = pinned && device_audit_verify(log, spki, len, &dv);
    if (!pinned) {
        memset(&dv, 0, sizeof dv);
        snprintf(dv.reason, sizeof dv.reason, "%s", err);
    }
    json_object_object_add(rc, "ok", json_object_new_boolean(*ok));
    json_object_object_add(rc, "checked", json_object_new_int64((int64_t)dv.receipts));
    json_object_object_add(rc, "first_bad", json_object_new_int64((int64_t)dv.first_bad));
    json_object_object_add(rc, "reason", json_object_new_string(dv.reason));
    return rc;
}

static int cmd_device(cli_t *c, int argc, char **argv)
{
    bool repin = false;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--repin") == 0)
            repin = true;
        else
            return usage_error("device [--repin]");
    }
    json_object *params = json_object_new_object();
    if (repin)
        json_object_object_add(params, "repin", json_object_new_boolean(true));
    json_object *m = NULL;
    proto_response_t pr;
    int failed_rc;
    if (!request(c, "device", params, &m, &pr, &failed_rc))
        return failed_rc;
    json_object *res = pr.result, *pin = obj_of(res, "pin");
    const char *status = str_of(pin, "status");
    int rc = CLI_EXIT_OK;
    if (strcmp(status, "mismatch") == 0 || strcmp(status, "error") == 0 ||
        strcmp(status, "no-key") == 0)
        rc = CLI_EXIT_FAILED;
    if (c->json) {
        print_json(stdout, res);
        json_object_put(m);
        return rc;
    }
    say(stdout, M_DEVICE, str_of(res, "firmware"), (long long)int_of(res, "counter", 0));
    if (str_of(res, "fingerprint")[0] != '\0') {
        say(stdout, M_DEVICE_FPR, str_of(res, "fingerprint"));
        say(stdout, M_DEVICE_KEY, str_of(res, "key"));
    }
    if (int_of(res, "flags", 0) & DEVICE_INFO_KEY_REPLACED)
        say(stderr, M_DEVICE_REPLACED);
    if (strcmp(status, "pinned-now") == 0)
        say(stdout, M_DEVICE_PINNED_NOW);
    else if (strcmp(status, "match") == 0)
        say(stdout, M_DEVICE_MATCH);
    else if (strcmp(status, "repinned") == 0)
        say(stdout, M_DEVICE_REPINNED);
    else if (strcmp(status, "mismatch") == 0)
        say(stderr, M_DEVICE_MISMATCH, str_of(pin, "pinned_fingerprint"));
    else if (strcmp(status, "no-key") == 0)
        say(stderr, M_DEVICE_NO_KEY);
    else
        say(stderr, M_DEVICE_PIN_ERROR, str_of(pin, "error"));
    json_object_put(m);
    return rc;
}

static int cmd_audit(cli_t *c, int argc, char **argv, bool *needs_daemon)
{
    if (argc < 1)
        return usage_error("audit show [-n N] | audit verify [--log CHEMIN]");
    if (strcmp(argv[0], "verify") == 0) {
        const char *log = NULL, *pin = NULL;
        for (int i = 1; i < argc; i++) {
            if (strcmp(argv[i], "--log") == 0 && i + 1 < argc)
                log = argv[++i];
            else if (strcmp(argv[i], "--device-pin") == 0 && i + 1 < argc)
                pin = argv[++i];
            else
                return usage_error("audit verify [--log CHEMIN [--device-pin FICHIER]]");
        }
        if (log != NULL) { /* offline: the file itself, no cachetd */
            *needs_daemon = false;
            audit_verify_result_t v;
            memset(&v, 0, sizeof v);
            bool ok = audit_verify(log, &v);
            bool rok = true;
            json_object *rcpts = offline_receipts(log, pin, &rok);
            json_object *o = json_object_new_object();
            json_object_object_add(o, "ok", json_object_new_boolean(ok && v.ok && rok));
            json_object_object_add(o, "entries", json_object_new_int64((int64_t)v.entries));
            json_object_object_add(o, "first_bad", json_object_new_int64((int64_t)v.first_bad));
            json_object_object_add(o, "reason", json_object_new_string(v.reason));
            json_object_object_add(o, "path", json_object_new_string(log));
            json_object_object_add(o, "chain_ok", json_object_new_boolean(ok && v.ok));
            json_object_object_add(o, "receipts", rcpts);
            int rc = print_audit_result(c, o);
            json_object_put(o);
            return rc;
        }
        if (*needs_daemon)
            return -1; /* connect first */
        json_object *m = NULL;
        proto_response_t pr;
        call_t r = call(c, "audit-verify", NULL, NULL, 0, &m, &pr, -1);
        int rc = r == CALL_OK ? print_audit_result(c, pr.result) : call_exit(c, r, &pr);
        json_object_put(m);
        return rc;
    }
    if (strcmp(argv[0], "show") != 0)
        return usage_error("audit show [-n N] | audit verify [--log CHEMIN]");
    int64_t n = 20;
    for (int i = 1; i < argc; i++) {
        char *end = NULL;
        if (strcmp(argv[i], "-n") == 0 && i + 1 < argc) {
            n = strtoll(argv[++i], &end, 10);
            if (*end != '\0' || n < 1 || n > 1000)
                return usage_error("audit show -n 1..1000");
        } else {
            return usage_error("audit show [-n N]");
        }
    }
    if (*needs_daemon)
        return -1;
    json_object *params = json_object_new_object();
    json_object_object_add(params, "last", json_object_new_int64(n));
    json_object *m = NULL;
    proto_response_t pr;
    int failed_rc;
    if (!request(c, "audit", params, &m, &pr, &failed_rc))
        return failed_rc;
    json_object *entries = obj_of(pr.result, "entries");
    if (c->json) {
        print_json(stdout, pr.result);
    } else if (entries == NULL || json_object_array_length(entries) == 0) {
        say(stdout, M_AUDIT_EMPTY);
    } else {
        for (size_t i = 0; i < json_object_array_length(entries); i++) {
            json_object *e = json_object_array_get_idx(entries, i);
            json_object *cl = obj_of(e, "client");
            printf("%-24s %-11s %-4s %-14s pid %-7lld %s%s%.16s\n", str_of(e, "time"),
                   str_of(e, "operation"), str_of(e, "key")[0] ? str_of(e, "key") : "-",
                   str_of(e, "result"), (long long)int_of(cl, "pid", 0), str_of(cl, "exe"),
                   str_of(e, "digest")[0] ? "  sha256:" : "", str_of(e, "digest"));
        }
    }
    json_object_put(m);
    return CLI_EXIT_OK;
}

static void print_event(cli_t *c, json_object *ev)
{
    if (c->json) {
        printf("%s\n", json_object_to_json_string_ext(ev, JSON_C_TO_STRING_PLAIN |
                                                              JSON_C_TO_STRING_NOSLASHESCAPE));
        fflush(stdout);
        return;
    }
    const char *name = str_of(ev, "event");
    cli_msg_t m = strcmp(name, "card-inserted") == 0        ? M_EV_INSERTED
                  : strcmp(name, "card-removed") == 0       ? M_EV_REMOVED
                  : strcmp(name, "reader-added") == 0       ? M_EV_READER_ADDED
                  : strcmp(name, "reader-gone") == 0        ? M_EV_READER_GONE
                  : strcmp(name, "pin-needed") == 0         ? M_EV_PIN_NEEDED
                  : strcmp(name, "operation-finished") == 0 ? M_EV_FINISHED
                                                            : M_COUNT;
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    char t[16];
    strftime(t, sizeof t, "%H:%M:%S", &tm);
    char detail[512] = "";
    if (m == M_EV_INSERTED && str_of(ev, "surname")[0] != '\0')
        snprintf(detail, sizeof detail, " : %s %s", str_of(ev, "given_name"),
                 str_of(ev, "surname"));
    else if (m == M_EV_FINISHED)
        snprintf(detail, sizeof detail, " : %s %s → %s", str_of(ev, "operation"), str_of(ev, "key"),
                 str_of(ev, "result"));
    printf("%s %s [%s]%s\n", t, m == M_COUNT ? name : cli_msg(m), name, detail);
    fflush(stdout);
}

static int cmd_events(cli_t *c, int argc, char **argv)
{
    long long count = 0;
    for (int i = 0; i < argc; i++) {
        char *end = NULL;
        if (strcmp(argv[i], "--count") == 0 && i + 1 < argc) {
            count = strtoll(argv[++i], &end, 10);
            if (*end != '\0' || count < 0)
                return usage_error("events [--count N]");
        } else {
            return usage_error("events [--count N]");
        }
    }
    json_object *m = NULL;
    proto_response_t pr;
    call_t r = call(c, "subscribe", NULL, NULL, 0, &m, &pr, -1);
    json_object_put(m);
    if (r != CALL_OK)
        return call_exit(c, r, &pr);
    if (!c->json)
        say(stderr, M_EV_WAITING);
    else
        fprintf(stderr, "subscribed\n");
    for (long long seen = 0; count == 0 || seen < count;) {
        json_object *ev = NULL;
        proto_status_t st = proto_read_json(c->fd, -1, &ev, NULL, NULL);
        if (st != PROTO_OK)
            return local_error(c, "unreachable", M_UNREACHABLE, proto_status_name(st));
        if (proto_is_event(ev)) {
            print_event(c, ev);
            seen++;
        }
        json_object_put(ev);
    }
    return CLI_EXIT_OK;
}

/* ---- main ------------------------------------------------------------------- */

int main(int argc, char **argv)
{
    cli_t c = {.pin_fd = -1, .fd = -1, .next_id = 1};
    int i = 1;
    const char *cmd = NULL;
    char *args[64];
    int nargs = 0;
    for (; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--json") == 0) {
            c.json = true;
        } else if (strcmp(a, "--socket") == 0 && i + 1 < argc) {
            c.socket = argv[++i];
        } else if (strcmp(a, "--pin-fd") == 0 && i + 1 < argc) {
            char *end = NULL;
            long fd = strtol(argv[++i], &end, 10);
            if (*end != '\0' || fd < 0 || fd > 1023)
                return usage_error("--pin-fd N");
            c.pin_fd = (int)fd;
        } else if (cmd == NULL && (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)) {
            fputs(cli_help(NULL), stdout);
            return CLI_EXIT_OK;
        } else if (cmd == NULL && strcmp(a, "--version") == 0) {
            printf("cachet %s (protocol %d)\n", CLI_VERSION, PROTO_VERSION);
            return CLI_EXIT_OK;
        } else if (cmd == NULL) {
            if (a[0] == '-')
                return usage_error(a);
            cmd = a;
        } else {
            if (nargs >= (int)(sizeof args / sizeof args[0]))
                return usage_error("trop d'arguments / too many arguments");
            args[nargs++] = argv[i];
        }
    }
    if (cmd == NULL) {
        fputs(cli_help(NULL), stderr);
        return CLI_EXIT_USAGE;
    }
    if (strcmp(cmd, "help") == 0) {
        const char *h = cli_help(nargs > 0 ? args[0] : NULL);
        if (h == NULL)
            return usage_error(args[0]);
        fputs(h, stdout);
        return CLI_EXIT_OK;
    }
    static const char *const known[] = {"status",     "whoami", "sign-mail", "verify-mail",
                                        "login",      "audit",  "events",    "verify-pin",
                                        "device",     "sendmail"};
    bool ok = false;
    for (size_t k = 0; k < sizeof known / sizeof known[0]; k++)
        ok = ok || strcmp(cmd, known[k]) == 0;
    if (!ok)
        return usage_error(cmd);
    if (nargs > 0 && (strcmp(args[0], "--help") == 0 || strcmp(args[0], "-h") == 0)) {
        fputs(cli_help(cmd), stdout);
        return CLI_EXIT_OK;
    }
    if (strcmp(cmd, "sendmail") == 0) /* its own options and sysexits codes */
        return cli_sendmail_main(c.socket, c.pin_fd, nargs, args);
    if (strcmp(cmd, "audit") == 0) {
        /* audit verify --log works without cachetd; usage errors before connecting. */
        bool needs = true;
        int rc = cmd_audit(&c, nargs, args, &needs);
        if (rc >= 0)
            return rc;
    }
    int rc = connect_daemon(&c);
    if (rc != CLI_EXIT_OK)
        return rc;
    if (strcmp(cmd, "status") == 0)
        rc = cmd_status(&c, nargs, args);
    else if (strcmp(cmd, "whoami") == 0)
        rc = cmd_whoami(&c, nargs, args);
    else if (strcmp(cmd, "sign-mail") == 0)
        rc = cmd_sign_mail(&c, nargs, args);
    else if (strcmp(cmd, "verify-mail") == 0)
        rc = cmd_verify_mail(&c, nargs, args);
    else if (strcmp(cmd, "login") == 0)
        rc = cmd_login(&c, nargs, args);
    else if (strcmp(cmd, "verify-pin") == 0)
        rc = cmd_verify_pin(&c, nargs, args);
    else if (strcmp(cmd, "events") == 0)
        rc = cmd_events(&c, nargs, args);
    else if (strcmp(cmd, "device") == 0)
        rc = cmd_device(&c, nargs, args);
    else {
        bool needs = false;
        rc = cmd_audit(&c, nargs, args, &needs);
    }
    close(c.fd);
    return rc;
}
