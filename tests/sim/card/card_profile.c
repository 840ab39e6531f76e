/* card_profile: profile.conf / state file parsing (see card_profile.h). */
#include "card_profile.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || !errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* Reads a whole file of at most cap bytes (+1 for a NUL). */
static uint8_t *read_file(const char *path, size_t cap, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    uint8_t *buf = malloc(cap + 1);
    if (!buf) {
        fclose(f);
        return NULL;
    }
    size_t n = fread(buf, 1, cap + 1, f);
    bool bad = ferror(f) || n > cap;
    fclose(f);
    if (bad) {
        free(buf);
        errno = EFBIG;
        return NULL;
    }
    buf[n] = 0;
    *len = n;
    return buf;
}

size_t card_parse_hex(const char *s, uint8_t *out, size_t cap)
{
    size_t n = 0;
    int hi = -1;
    for (; *s; s++) {
        if (*s == ' ' || *s == ':' || *s == '\t')
            continue;
        int v;
        if (*s >= '0' && *s <= '9')
            v = *s - '0';
        else if (*s >= 'a' && *s <= 'f')
            v = *s - 'a' + 10;
        else if (*s >= 'A' && *s <= 'F')
            v = *s - 'A' + 10;
        else
            return 0;
        if (hi < 0) {
            hi = v;
        } else {
            if (n >= cap)
                return 0;
            out[n++] = (uint8_t)(hi << 4 | v);
            hi = -1;
        }
    }
    return hi < 0 ? n : 0;
}

typedef bool (*kv_fn)(void *ctx, const char *key, const char *value, char *err, size_t errlen);

/* "key = value" lines; '#' starts a comment line; blank lines ignored. */
static bool parse_kv(char *text, kv_fn fn, void *ctx, char *err, size_t errlen)
{
    unsigned lineno = 0;
    for (char *line = text; line && *line;) {
        char *next = strchr(line, '\n');
        if (next)
            *next++ = 0;
        lineno++;
        while (isspace((unsigned char)*line))
            line++;
        size_t l = strlen(line);
        while (l && isspace((unsigned char)line[l - 1]))
            line[--l] = 0;
        if (*line && *line != '#') {
            char *eq = strchr(line, '=');
            if (!eq) {
                set_err(err, errlen, "line %u: expected key = value", lineno);
                return false;
            }
            *eq = 0;
            char *key = line, *val = eq + 1;
            size_t kl = strlen(key);
            while (kl && isspace((unsigned char)key[kl - 1]))
                key[--kl] = 0;
            while (isspace((unsigned char)*val))
                val++;
            if (!fn(ctx, key, val, err, errlen))
                return false;
        }
        line = next;
    }
    return true;
}

typedef struct {
    card_profile_t *p;
    char auth_key[256], sign_key[256], cert[3][256];
    bool have_pin, have_puk, have_atr, have_serial;
} load_ctx_t;

static bool parse_uint(const char *v, unsigned max, unsigned *out)
{
    char *end;
    errno = 0;
    unsigned long x = strtoul(v, &end, 10);
    if (errno || end == v || *end || x > max)
        return false;
    *out = (unsigned)x;
    return true;
}

static bool copy_name(char *dst, size_t cap, const char *v)
{
    size_t n = strlen(v);
    if (n == 0 || n >= cap || strchr(v, '/') || strcmp(v, "..") == 0)
        return false;
    memcpy(dst, v, n + 1);
    return true;
}

static bool profile_kv(void *vctx, const char *k, const char *v, char *err, size_t errlen)
{
    load_ctx_t *c = vctx;
    card_profile_t *p = c->p;
    unsigned u;
    if (strcmp(k, "name") == 0) {
        if (strlen(v) >= sizeof p->name)
            goto bad;
        strcpy(p->name, v);
    } else if (strcmp(k, "label") == 0) {
        if (strlen(v) > CARD_LABEL_MAX)
            goto bad;
        strcpy(p->cfg.label, v);
    } else if (strcmp(k, "atr") == 0) {
        p->atr_len = card_parse_hex(v, p->atr, sizeof p->atr);
        card_atr_info_t info;
        if (!p->atr_len || !card_atr_parse(p->atr, p->atr_len, &info))
            goto bad;
        c->have_atr = true;
    } else if (strcmp(k, "pin") == 0 || strcmp(k, "puk") == 0) {
        bool pin = k[1] == 'i';
        size_t n = strlen(v);
        if (!card_applet_valid_secret((const uint8_t *)v, n) || (!pin && n != 8))
            goto bad;
        memcpy(pin ? p->initial.pin : p->initial.puk, v, n);
        if (pin) {
            p->initial.pin_len = (uint8_t)n;
            c->have_pin = true;
        } else {
            p->initial.puk_len = (uint8_t)n;
            c->have_puk = true;
        }
    } else if (strcmp(k, "pin_tries_max") == 0) {
        if (!parse_uint(v, 15, &u) || u == 0)
            goto bad;
        p->cfg.pin_tries_max = (uint8_t)u;
    } else if (strcmp(k, "puk_tries_max") == 0) {
        if (!parse_uint(v, 15, &u) || u == 0)
            goto bad;
        p->cfg.puk_tries_max = (uint8_t)u;
    } else if (strcmp(k, "serial") == 0) {
        uint8_t tmp[CARD_SERIAL_LEN + 1];
        if (card_parse_hex(v, tmp, sizeof tmp) != CARD_SERIAL_LEN)
            goto bad;
        memcpy(p->cfg.serial, tmp, CARD_SERIAL_LEN);
        c->have_serial = true;
    } else if (strcmp(k, "auth_key") == 0) {
        if (!copy_name(c->auth_key, sizeof c->auth_key, v))
            goto bad;
    } else if (strcmp(k, "sign_key") == 0) {
        if (!copy_name(c->sign_key, sizeof c->sign_key, v))
            goto bad;
    } else if (strcmp(k, "auth_cert") == 0) {
        if (!copy_name(c->cert[0], sizeof c->cert[0], v))
            goto bad;
    } else if (strcmp(k, "sign_cert") == 0) {
        if (!copy_name(c->cert[1], sizeof c->cert[1], v))
            goto bad;
    } else if (strcmp(k, "ca_cert") == 0) {
        if (!copy_name(c->cert[2], sizeof c->cert[2], v))
            goto bad;
    } else if (strcmp(k, "timing_compute_rsa_ms") == 0) {
        if (!parse_uint(v, 60000, &p->timing_rsa_ms))
            goto bad;
    } else if (strcmp(k, "timing_compute_other_ms") == 0) {
        if (!parse_uint(v, 60000, &p->timing_other_ms))
            goto bad;
    }
    /* other keys (holder, idnat, email, ...) are for the tools, not the card */
    return true;
bad:
    set_err(err, errlen, "bad value for '%s'", k);
    return false;
}

static EVP_PKEY *load_key(const char *dir, const char *name, char *err, size_t errlen)
{
    char path[4096];
    if (snprintf(path, sizeof path, "%s/%s", dir, name) >= (int)sizeof path) {
        set_err(err, errlen, "path too long");
        return NULL;
    }
    FILE *f = fopen(path, "r");
    if (!f) {
        set_err(err, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    EVP_PKEY *k = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    fclose(f);
    if (!k || EVP_PKEY_get_base_id(k) != EVP_PKEY_RSA) {
        EVP_PKEY_free(k);
        set_err(err, errlen, "%s: not an RSA private key", path);
        return NULL;
    }
    int bits = EVP_PKEY_get_bits(k);
    if (bits != 1024 && bits != 2048) {
        EVP_PKEY_free(k);
        set_err(err, errlen, "%s: RSA-%d not supported (1024 or 2048)", path, bits);
        return NULL;
    }
    return k;
}

bool card_profile_load(const char *dir, card_profile_t *p, char *err, size_t errlen)
{
    memset(p, 0, sizeof *p);
    load_ctx_t c = {.p = p};
    strcpy(c.auth_key, "auth.key.pem");
    strcpy(c.sign_key, "sign.key.pem");
    strcpy(c.cert[0], "auth.crt.der");
    strcpy(c.cert[1], "sign.crt.der");
    strcpy(c.cert[2], "ca.crt.der");
    strcpy(p->cfg.label, "CPS3 TEST");
    p->cfg.pin_tries_max = 3;
    p->cfg.puk_tries_max = 10;
    p->timing_rsa_ms = 150;
    p->timing_other_ms = 2;

    char path[4096];
    if (snprintf(path, sizeof path, "%s/profile.conf", dir) >= (int)sizeof path) {
        set_err(err, errlen, "path too long");
        return false;
    }
    size_t len;
    uint8_t *text = read_file(path, CARD_PROFILE_CONF_MAX, &len);
    if (!text) {
        set_err(err, errlen, "%s: %s", path, strerror(errno));
        return false;
    }
    char perr[160] = "";
    bool ok = parse_kv((char *)text, profile_kv, &c, perr, sizeof perr);
    free(text);
    if (!ok) {
        set_err(err, errlen, "%s: %s", path, perr);
        return false;
    }
    if (!c.have_pin || !c.have_puk || !c.have_atr || !c.have_serial) {
        set_err(err, errlen, "%s: pin, puk, atr and serial are required", path);
        return false;
    }
    p->initial.pin_tries_left = p->cfg.pin_tries_max;
    p->initial.puk_tries_left = p->cfg.puk_tries_max;

    const uint8_t **certp[3] = {&p->cfg.auth_cert, &p->cfg.sign_cert, &p->cfg.ca_cert};
    size_t *lenp[3] = {&p->cfg.auth_cert_len, &p->cfg.sign_cert_len, &p->cfg.ca_cert_len};
    for (unsigned i = 0; i < 3; i++) {
        if (snprintf(path, sizeof path, "%s/%s", dir, c.cert[i]) >= (int)sizeof path) {
            set_err(err, errlen, "path too long");
            card_profile_free(p);
            return false;
        }
        p->cert_buf[i] = read_file(path, CARD_CERT_MAX, &len);
        if (!p->cert_buf[i] || len < 2 || p->cert_buf[i][0] != 0x30) {
            set_err(err, errlen, "%s: not a DER certificate of at most %d bytes", path,
                    CARD_CERT_MAX);
            card_profile_free(p);
            return false;
        }
        *certp[i] = p->cert_buf[i];
        *lenp[i] = len;
    }
    p->cfg.auth_key = load_key(dir, c.auth_key, err, errlen);
    if (!p->cfg.auth_key) {
        card_profile_free(p);
        return false;
    }
    p->cfg.sign_key = load_key(dir, c.sign_key, err, errlen);
    if (!p->cfg.sign_key) {
        card_profile_free(p);
        return false;
    }
    return true;
}

void card_profile_free(card_profile_t *p)
{
    if (!p)
        return;
    for (unsigned i = 0; i < 3; i++)
        free(p->cert_buf[i]);
    EVP_PKEY_free(p->cfg.auth_key);
    EVP_PKEY_free(p->cfg.sign_key);
    OPENSSL_cleanse(p, sizeof *p);
}

typedef struct {
    card_persist_t *st;
    const card_profile_t *p;
} state_ctx_t;

static bool state_kv(void *vctx, const char *k, const char *v, char *err, size_t errlen)
{
    state_ctx_t *c = vctx;
    unsigned u;
    if (strcmp(k, "pin_tries_left") == 0) {
        if (!parse_uint(v, c->p->cfg.pin_tries_max, &u))
            goto bad;
        c->st->pin_tries_left = (uint8_t)u;
    } else if (strcmp(k, "puk_tries_left") == 0) {
        if (!parse_uint(v, c->p->cfg.puk_tries_max, &u))
            goto bad;
        c->st->puk_tries_left = (uint8_t)u;
    } else if (strcmp(k, "pin") == 0 || strcmp(k, "puk") == 0) {
        bool pin = k[1] == 'i';
        size_t n = strlen(v);
        if (!card_applet_valid_secret((const uint8_t *)v, n) || (!pin && n != 8))
            goto bad;
        memcpy(pin ? c->st->pin : c->st->puk, v, n);
        if (pin)
            c->st->pin_len = (uint8_t)n;
        else
            c->st->puk_len = (uint8_t)n;
    }
    return true;
bad:
    set_err(err, errlen, "bad value for '%s'", k);
    return false;
}

bool card_state_load(const char *path, const card_profile_t *p, card_persist_t *st, char *err,
                     size_t errlen)
{
    *st = p->initial;
    size_t len;
    uint8_t *text = read_file(path, CARD_PROFILE_CONF_MAX, &len);
    if (!text) {
        if (errno == ENOENT)
            return true;
        set_err(err, errlen, "%s: %s", path, strerror(errno));
        return false;
    }
    state_ctx_t c = {st, p};
    char perr[160] = "";
    bool ok = parse_kv((char *)text, state_kv, &c, perr, sizeof perr);
    OPENSSL_cleanse(text, len);
    free(text);
    if (!ok)
        set_err(err, errlen, "%s: %s", path, perr);
    return ok;
}

bool card_state_save(const char *path, const card_persist_t *st)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof tmp)
        return false;
    char text[256];
    int n = snprintf(text, sizeof text,
                     "# Cachet virtual card persistent state (written by cachet-card)\n"
                     "pin_tries_left = %u\npuk_tries_left = %u\npin = %.*s\npuk = %.*s\n",
                     st->pin_tries_left, st->puk_tries_left, (int)st->pin_len,
                     (const char *)st->pin, (int)st->puk_len, (const char *)st->puk);
    if (n < 0 || (size_t)n >= sizeof text)
        return false;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return false;
    bool ok = write(fd, text, (size_t)n) == n && fsync(fd) == 0;
    OPENSSL_cleanse(text, sizeof text);
    if (close(fd) != 0)
        ok = false;
    if (!ok || rename(tmp, path) != 0) {
        unlink(tmp);
        return false;
    }
    return true;
}
