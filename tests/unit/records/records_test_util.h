/* Helpers shared by the cachetd_records unit tests: temp directories and test
 * PKI files. Header-only (static inline), test code only. */
#ifndef RECORDS_TEST_UTIL_H
#define RECORDS_TEST_UTIL_H

#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "card.h"

static inline char *rt_mkdtemp(void)
{
    const char *base = getenv("TMPDIR");
    char tmpl[PATH_MAX];
    snprintf(tmpl, sizeof tmpl, "%s/records-test.XXXXXX", base && base[0] ? base : "/tmp");
    char *d = mkdtemp(tmpl);
    return d ? strdup(d) : NULL;
}

static inline int rt_rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static inline void rt_rm_rf(char *dir)
{
    if (dir)
        (void)nftw(dir, rt_rm_one, 16, FTW_DEPTH | FTW_PHYS);
    free(dir);
}

/* Whole file into a malloc'd buffer (NUL-terminated); NULL if absent. */
static inline char *rt_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf) {
        buf[n] = '\0';
        if (len)
            *len = (size_t)n;
    }
    return buf;
}

static inline int rt_write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    size_t w = fwrite(data, 1, len, f);
    return fclose(f) == 0 && w == len ? 0 : -1;
}

/* Loads profiles/<profile>/<file> (DER) of the test PKI into c. */
static inline int rt_load_cert(const char *profile, const char *file, int role, const char *label,
                               card_cert_t *c)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/profiles/%s/%s", CACHET_TEST_PKI_DIR, profile, file);
    size_t len = 0;
    char *der = rt_read_file(path, &len);
    if (!der || len > sizeof c->der) {
        free(der);
        return -1;
    }
    memset(c, 0, sizeof *c);
    memcpy(c->der, der, len);
    c->der_len = len;
    free(der);
    snprintf(c->label, sizeof c->label, "%s", label);
    c->id_len = 2;
    c->id[0] = 0x00;
    c->id[1] = (uint8_t)(role == 1 ? 0x82 : role == 2 ? 0x81 : 0x01);
    c->role = role;
    return 0;
}

/* The three certificates of a profile, as a card gives them. */
static inline int rt_load_profile(const char *profile, card_cert_t certs[3])
{
    if (rt_load_cert(profile, "auth.crt.der", CARD_KEY_AUTH, "CPS_AUT", &certs[0]) != 0 ||
        rt_load_cert(profile, "sign.crt.der", CARD_KEY_SIGN, "CPS_SIG", &certs[1]) != 0 ||
        rt_load_cert(profile, "ca.crt.der", 0, "CA", &certs[2]) != 0)
        return -1;
    return 0;
}

#endif
