/* cache: public data of cards seen before, by serial (see cache.h).
 *
 * Layout: <dir>/cards/<serial>.json, dir and cards/ 0700, files 0600, all owned
 * by the daemon's user. A file is
 *   {"version":1,"serial":"<serial>","certs":[{"role":1,"label":"...",
 *    "id":"<hex>","der":"<base64 DER>"}, ...]}
 * written atomically (tmp + fsync + rename). Reading is strict and capped: any
 * deviation (unknown version, wrong types, over-long fields, a certificate that
 * does not parse, a file not ours) makes the entry a miss and removes it. */
#include "cache.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>
#include <openssl/x509.h>

#include "records_fs.h"

#define CACHE_VERSION 1
/* base64 of every certificate at its largest, plus labels and ids escaped. */
#define CACHE_FILE_MAX                                                                             \
    (CARD_CERTS_MAX * (CARD_CERT_MAX / 3 * 4 + 8 + CARD_LABEL_MAX * 6 + 256) + 1024)
#define CACHE_JSON_DEPTH 4

static pthread_mutex_t cache_mu = PTHREAD_MUTEX_INITIALIZER;
static char cache_cards_dir[PATH_MAX]; /* "" until cache_init succeeds */
static char cache_base_dir[PATH_MAX];

bool cache_init(const char *dir, char *err, size_t err_cap)
{
    char base[PATH_MAX];
    if (dir) {
        int w = snprintf(base, sizeof base, "%s", dir);
        if (w < 0 || (size_t)w >= sizeof base) {
            records_set_err(err, err_cap, "cache directory path too long");
            return false;
        }
    } else if (!records_xdg_dir("XDG_CACHE_HOME", ".cache", base, sizeof base, err, err_cap)) {
        return false;
    }
    char cards[PATH_MAX];
    int w = snprintf(cards, sizeof cards, "%s/cards", base);
    if (w < 0 || (size_t)w >= sizeof cards) {
        records_set_err(err, err_cap, "cache directory path too long");
        return false;
    }
    if (!records_mkdir_private(base, err, err_cap) || !records_mkdir_private(cards, err, err_cap))
        return false;
    pthread_mutex_lock(&cache_mu);
    memcpy(cache_cards_dir, cards, (size_t)w + 1);
    memcpy(cache_base_dir, base, strlen(base) + 1);
    pthread_mutex_unlock(&cache_mu);
    return true;
}

/* The directories again, in case someone emptied the cache while we run
 * (a cache that silently stops caching would cost every later insertion). */
static bool cache_dirs_again(void)
{
    char base[PATH_MAX], cards[PATH_MAX], err[128];
    pthread_mutex_lock(&cache_mu);
    memcpy(base, cache_base_dir, sizeof base);
    memcpy(cards, cache_cards_dir, sizeof cards);
    pthread_mutex_unlock(&cache_mu);
    return base[0] != '\0' && records_mkdir_private(base, err, sizeof err) &&
           records_mkdir_private(cards, err, sizeof err);
}

/* <cards dir>/<sanitised serial>.json. Characters outside [0-9A-Za-z_-] become
 * '_' (the file also records the exact serial, checked on load, so two serials
 * that sanitise alike only miss, never mix). */
static bool entry_path(const char *serial, char *out, size_t cap)
{
    if (!serial)
        return false;
    size_t len = strnlen(serial, CARD_SERIAL_MAX);
    if (len == 0 || len >= CARD_SERIAL_MAX)
        return false;
    char name[CARD_SERIAL_MAX];
    for (size_t i = 0; i < len; i++) {
        char c = serial[i];
        bool ok = (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                  c == '_' || c == '-';
        name[i] = ok ? c : '_';
    }
    name[len] = '\0';
    pthread_mutex_lock(&cache_mu);
    int w = cache_cards_dir[0] ? snprintf(out, cap, "%s/%s.json", cache_cards_dir, name) : -1;
    pthread_mutex_unlock(&cache_mu);
    return w > 0 && (size_t)w < cap;
}

/* ---- encoding helpers (strict; RFC 4648 §4 base64 with padding) ---- */

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int b64_value(char c)
{
    const char *p = c ? strchr(b64_alphabet, c) : NULL;
    return p ? (int)(p - b64_alphabet) : -1;
}

static bool b64_decode(const char *in, size_t len, uint8_t *out, size_t cap, size_t *out_len)
{
    if (len == 0 || len % 4 != 0)
        return false;
    size_t o = 0;
    for (size_t i = 0; i < len; i += 4) {
        bool last = i + 4 == len;
        int v[4];
        size_t pad = 0;
        for (size_t k = 0; k < 4; k++) {
            char c = in[i + k];
            if (c == '=' && last && k >= 2) {
                v[k] = 0;
                pad++;
                continue;
            }
            if (pad)
                return false; /* data after padding */
            v[k] = b64_value(c);
            if (v[k] < 0)
                return false;
        }
        uint32_t q =
            (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | (uint32_t)v[3];
        size_t bytes = 3 - pad;
        if (bytes > cap - o)
            return false;
        /* Non-canonical: bits under the padding must be zero. */
        if ((pad == 1 && (q & 0xff)) || (pad == 2 && (q & 0xffff)))
            return false;
        out[o++] = (uint8_t)(q >> 16);
        if (bytes > 1)
            out[o++] = (uint8_t)(q >> 8);
        if (bytes > 2)
            out[o++] = (uint8_t)q;
    }
    *out_len = o;
    return true;
}

static char *b64_encode(const uint8_t *in, size_t len)
{
    size_t out_len = (len + 2) / 3 * 4;
    char *out = malloc(out_len + 1);
    if (!out)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < len; i += 3) {
        uint32_t q = (uint32_t)in[i] << 16;
        if (i + 1 < len)
            q |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < len)
            q |= in[i + 2];
        out[o++] = b64_alphabet[(q >> 18) & 63];
        out[o++] = b64_alphabet[(q >> 12) & 63];
        out[o++] = i + 1 < len ? b64_alphabet[(q >> 6) & 63] : '=';
        out[o++] = i + 2 < len ? b64_alphabet[q & 63] : '=';
    }
    out[o] = '\0';
    return out;
}

static bool hex_decode(const char *in, size_t len, uint8_t *out, size_t cap, size_t *out_len)
{
    if (len % 2 != 0 || len / 2 > cap)
        return false;
    for (size_t i = 0; i < len; i += 2) {
        int hi = -1, lo = -1;
        for (size_t k = 0; k < 2; k++) {
            char c = in[i + k];
            int v = (c >= '0' && c <= '9') ? c - '0' : (c >= 'a' && c <= 'f') ? c - 'a' + 10 : -1;
            if (v < 0)
                return false; /* lower-case only: what we write */
            if (k == 0)
                hi = v;
            else
                lo = v;
        }
        out[i / 2] = (uint8_t)(hi << 4 | lo);
    }
    *out_len = len / 2;
    return true;
}

/* ---- load ---- */

static bool get_string(json_object *o, const char *key, size_t max, const char **s, size_t *len)
{
    json_object *v;
    if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
        return false;
    int n = json_object_get_string_len(v);
    if (n < 0 || (size_t)n > max)
        return false;
    *s = json_object_get_string(v);
    *len = (size_t)n;
    return strlen(*s) == *len; /* no embedded NUL */
}

static bool parse_cert(json_object *o, card_cert_t *c)
{
    if (!json_object_is_type(o, json_type_object) || json_object_object_length(o) != 4)
        return false;
    json_object *v;
    if (!json_object_object_get_ex(o, "role", &v) || !json_object_is_type(v, json_type_int))
        return false;
    int64_t role = json_object_get_int64(v);
    if (role != 0 && role != CARD_KEY_AUTH && role != CARD_KEY_SIGN)
        return false;
    const char *s;
    size_t len;
    if (!get_string(o, "label", CARD_LABEL_MAX - 1, &s, &len))
        return false;
    memcpy(c->label, s, len + 1);
    if (!get_string(o, "id", 2 * sizeof c->id, &s, &len) ||
        !hex_decode(s, len, c->id, sizeof c->id, &c->id_len))
        return false;
    if (!get_string(o, "der", (CARD_CERT_MAX + 2) / 3 * 4, &s, &len) ||
        !b64_decode(s, len, c->der, sizeof c->der, &c->der_len))
        return false;
    /* Must be one whole certificate. */
    const unsigned char *p = c->der;
    X509 *x = d2i_X509(NULL, &p, (long)c->der_len);
    bool whole = x && p == c->der + c->der_len;
    X509_free(x);
    c->role = (int)role;
    return whole;
}

/* 1 = loaded, 0 = corrupt (remove it), -1 = a miss that is not corruption (keep):
 * another serial that sanitises to the same name, or more certificates than cap. */
static int parse_entry(const char *text, size_t text_len, const char *serial, card_cert_t *tmp,
                       size_t cap, size_t *n)
{
    json_tokener *tok = json_tokener_new_ex(CACHE_JSON_DEPTH);
    if (!tok)
        return -1;
    json_object *root = json_tokener_parse_ex(tok, text, (int)text_len);
    bool whole = root && json_tokener_get_error(tok) == json_tokener_success &&
                 json_tokener_get_parse_end(tok) == text_len;
    json_tokener_free(tok);
    int rc = 0;
    json_object *v, *arr;
    const char *s;
    size_t len;
    if (!whole || !json_object_is_type(root, json_type_object) ||
        json_object_object_length(root) != 3 || !json_object_object_get_ex(root, "version", &v) ||
        !json_object_is_type(v, json_type_int) || json_object_get_int64(v) != CACHE_VERSION ||
        !get_string(root, "serial", CARD_SERIAL_MAX - 1, &s, &len) ||
        !json_object_object_get_ex(root, "certs", &arr) ||
        !json_object_is_type(arr, json_type_array))
        goto out;
    if (strcmp(s, serial) != 0) {
        rc = -1; /* another serial with the same file name: a miss, not corruption */
        goto out;
    }
    size_t count = json_object_array_length(arr);
    if (count == 0 || count > CARD_CERTS_MAX)
        goto out;
    for (size_t i = 0; i < count; i++) {
        memset(&tmp[i], 0, sizeof tmp[i]);
        if (!parse_cert(json_object_array_get_idx(arr, i), &tmp[i]))
            goto out;
    }
    *n = count;
    rc = count > cap ? -1 : 1;
out:
    json_object_put(root);
    return rc;
}

bool cache_load_certs(const char *serial, card_cert_t *certs, size_t cap, size_t *n)
{
    char path[PATH_MAX];
    if (!certs || !n || !entry_path(serial, path, sizeof path))
        return false;
    *n = 0;
    char *text = NULL;
    size_t len = 0;
    bool exists = false;
    if (!records_read_capped(path, CACHE_FILE_MAX, true, &text, &len, &exists)) {
        /* Too big, not regular, not ours, readable by others: not trusted. */
        if (exists)
            (void)unlink(path);
        return false;
    }
    card_cert_t *tmp = calloc(CARD_CERTS_MAX, sizeof *tmp);
    size_t count = 0;
    int rc = tmp ? parse_entry(text, len, serial, tmp, cap, &count) : -1;
    free(text);
    if (rc == 0)
        (void)unlink(path);
    if (rc == 1) {
        memcpy(certs, tmp, count * sizeof *tmp);
        *n = count;
    }
    free(tmp);
    return rc == 1;
}

/* ---- store ---- */

static json_object *cert_to_json(const card_cert_t *c)
{
    if (c->der_len == 0 || c->der_len > CARD_CERT_MAX || c->id_len > sizeof c->id ||
        strnlen(c->label, sizeof c->label) >= sizeof c->label ||
        (c->role != 0 && c->role != CARD_KEY_AUTH && c->role != CARD_KEY_SIGN))
        return NULL;
    char id_hex[2 * sizeof c->id + 1];
    for (size_t i = 0; i < c->id_len; i++)
        snprintf(id_hex + 2 * i, 3, "%02x", c->id[i]);
    id_hex[2 * c->id_len] = '\0';
    char *der = b64_encode(c->der, c->der_len);
    json_object *o = json_object_new_object();
    if (!der || !o) {
        free(der);
        json_object_put(o);
        return NULL;
    }
    json_object_object_add(o, "role", json_object_new_int(c->role));
    json_object_object_add(o, "label", json_object_new_string(c->label));
    json_object_object_add(o, "id", json_object_new_string(id_hex));
    json_object_object_add(o, "der", json_object_new_string(der));
    free(der);
    return o;
}

bool cache_store_certs(const char *serial, const card_cert_t *certs, size_t n)
{
    char path[PATH_MAX];
    if (!certs || n == 0 || n > CARD_CERTS_MAX || !entry_path(serial, path, sizeof path) ||
        !cache_dirs_again())
        return false;
    json_object *root = json_object_new_object();
    json_object *arr = json_object_new_array();
    bool ok = root && arr;
    if (ok) {
        json_object_object_add(root, "version", json_object_new_int(CACHE_VERSION));
        json_object_object_add(root, "serial", json_object_new_string(serial));
        json_object_object_add(root, "certs", arr);
        arr = NULL;
    }
    json_object *certs_arr = NULL;
    if (ok)
        ok = json_object_object_get_ex(root, "certs", &certs_arr);
    for (size_t i = 0; ok && i < n; i++) {
        json_object *c = cert_to_json(&certs[i]);
        ok = c != NULL && json_object_array_add(certs_arr, c) == 0;
    }
    if (ok) {
        size_t len = 0;
        const char *text = json_object_to_json_string_length(
            root, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
        ok = text && len <= CACHE_FILE_MAX && records_write_atomic(path, text, len);
    }
    json_object_put(arr);
    json_object_put(root);
    return ok;
}

void cache_forget(const char *serial)
{
    char path[PATH_MAX];
    if (serial) {
        if (entry_path(serial, path, sizeof path))
            (void)unlink(path);
        return;
    }
    char dir[PATH_MAX];
    pthread_mutex_lock(&cache_mu);
    memcpy(dir, cache_cards_dir, sizeof dir);
    pthread_mutex_unlock(&cache_mu);
    if (!dir[0])
        return;
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        /* Entries and leftover temporaries of an interrupted write. */
        bool ours = (len > 5 && strcmp(e->d_name + len - 5, ".json") == 0) ||
                    strstr(e->d_name, ".json.tmp.") != NULL;
        if (!ours)
            continue;
        (void)unlinkat(dirfd(d), e->d_name, 0);
    }
    closedir(d);
}
