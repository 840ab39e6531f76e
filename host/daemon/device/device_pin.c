/* device_pin: the appliance's device key, pinned on first use (trust on first
 * use, as SSH's known_hosts). The pin file is one JSON object
 *   {"version":1,"spki":"<base64 DER SubjectPublicKeyInfo>","sha256":"<hex>","pinned":"<RFC 3339>"}
 * mode 0600, owned by the user, in cachetd's state directory. Creating it uses
 * link(2) of a complete temporary file, so two threads or two cachetds cannot
 * both pin; replacing it (an explicit --repin) uses rename(2). A different key
 * is never written over the pin by these functions except device_pin_replace. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "device.h"
#include "proto.h"

#define PIN_FILE_MAX 4096

static pthread_mutex_t pin_lock = PTHREAD_MUTEX_INITIALIZER;

static void err_set(char *err, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void err_set(char *err, size_t cap, const char *fmt, ...)
{
    if (err == NULL || cap == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, cap, fmt, ap);
    va_end(ap);
}

const char *device_pin_status_name(device_pin_status_t st)
{
    switch (st) {
    case DEVICE_PIN_NEW:
        return "pinned-now";
    case DEVICE_PIN_MATCH:
        return "match";
    case DEVICE_PIN_MISMATCH:
        return "mismatch";
    case DEVICE_PIN_ERROR:
        return "error";
    }
    return "error";
}

static bool write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return false;
        p += w;
        n -= (size_t)w;
    }
    return true;
}

static bool fsync_dir_of(const char *path)
{
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof tmp, "%s", path) >= (int)sizeof tmp)
        return false;
    int fd = open(dirname(tmp), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return false;
    bool ok = fsync(fd) == 0;
    close(fd);
    return ok;
}

/* The parent directory, created 0700 when missing (one level: the state
 * directory itself; the audit log already made it in practice). */
static bool ensure_parent(const char *path, char *err, size_t cap)
{
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof tmp, "%s", path) >= (int)sizeof tmp) {
        err_set(err, cap, "pin path too long");
        return false;
    }
    const char *dir = dirname(tmp);
    struct stat st;
    if (stat(dir, &st) == 0)
        return S_ISDIR(st.st_mode);
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        err_set(err, cap, "%s: %s", dir, strerror(errno));
        return false;
    }
    return true;
}

/* A complete pin file written to a new temporary name beside path. */
static bool write_tmp(const char *path, const uint8_t *spki, size_t len, char *tmp, size_t tmp_cap,
                      char *err, size_t cap)
{
    char fpr[DEVICE_FPR_HEX];
    device_key_fingerprint(spki, len, fpr);
    json_object *o = json_object_new_object();
    json_object_object_add(o, "version", json_object_new_int(1));
    proto_add_b64(o, "spki", spki, len);
    json_object_object_add(o, "sha256", json_object_new_string(fpr));
    char when[32] = "";
    time_t t = time(NULL);
    struct tm tm;
    if (gmtime_r(&t, &tm) != NULL)
        strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    json_object_object_add(o, "pinned", json_object_new_string(when));
    size_t n = 0;
    const char *text = json_object_to_json_string_length(o, JSON_C_TO_STRING_PLAIN, &n);
    bool ok = false;
    if (snprintf(tmp, tmp_cap, "%s.tmp.XXXXXX", path) < (int)tmp_cap) {
        int fd = mkostemp(tmp, O_CLOEXEC);
        if (fd >= 0) {
            ok = fchmod(fd, 0600) == 0 && write_all(fd, text, n) && write_all(fd, "\n", 1) &&
                 fsync(fd) == 0;
            ok = close(fd) == 0 && ok;
            if (!ok)
                unlink(tmp);
        }
    }
    if (!ok)
        err_set(err, cap, "%s: cannot write the pin file: %s", path, strerror(errno));
    json_object_put(o);
    return ok;
}

bool device_pin_load(const char *path, uint8_t *spki, size_t cap, size_t *len, bool *exists,
                     char *err, size_t err_cap)
{
    *len = 0;
    *exists = false;
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        if (errno == ENOENT)
            return false;
        *exists = true;
        err_set(err, err_cap, "%s: %s", path, strerror(errno));
        return false;
    }
    *exists = true;
    struct stat st;
    char buf[PIN_FILE_MAX + 1];
    bool ok = false;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        err_set(err, err_cap, "%s: not a regular file", path);
    } else if (st.st_uid != geteuid() || (st.st_mode & 077) != 0) {
        /* a pin anyone else could have written proves nothing */
        err_set(err, err_cap, "%s: not private to this user (mode %03o)", path,
                (unsigned)(st.st_mode & 0777));
    } else if (st.st_size <= 0 || st.st_size > PIN_FILE_MAX) {
        err_set(err, err_cap, "%s: %lld bytes", path, (long long)st.st_size);
    } else {
        size_t got = 0;
        while (got < (size_t)st.st_size) {
            ssize_t r = read(fd, buf + got, (size_t)st.st_size - got);
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0)
                break;
            got += (size_t)r;
        }
        buf[got] = '\0';
        json_object *o = got == (size_t)st.st_size ? json_tokener_parse(buf) : NULL;
        json_object *v = NULL;
        char fpr[DEVICE_FPR_HEX];
        if (o != NULL && json_object_object_get_ex(o, "version", &v) &&
            json_object_is_type(v, json_type_int) && json_object_get_int(v) == 1 &&
            proto_get_b64(o, "spki", true, spki, cap, len) == PROTO_OK && *len > 0 &&
            json_object_object_get_ex(o, "sha256", &v) &&
            json_object_is_type(v, json_type_string)) {
            device_key_fingerprint(spki, *len, fpr);
            ok = strcmp(fpr, json_object_get_string(v)) == 0;
        }
        if (!ok) {
            *len = 0;
            err_set(err, err_cap, "%s: damaged pin file", path);
        }
        json_object_put(o);
    }
    close(fd);
    return ok;
}

device_pin_status_t device_pin_check(const char *path, const uint8_t *spki, size_t spki_len,
                                     char pinned_fpr[DEVICE_FPR_HEX], char *err, size_t err_cap)
{
    if (pinned_fpr != NULL)
        pinned_fpr[0] = '\0';
    if (path == NULL || spki == NULL || spki_len == 0 || spki_len > DEVICE_SPKI_MAX) {
        err_set(err, err_cap, "no device key");
        return DEVICE_PIN_ERROR;
    }
    pthread_mutex_lock(&pin_lock);
    device_pin_status_t res = DEVICE_PIN_ERROR;
    uint8_t pinned[DEVICE_SPKI_MAX];
    size_t plen = 0;
    bool exists = false;
    if (device_pin_load(path, pinned, sizeof pinned, &plen, &exists, err, err_cap)) {
        if (pinned_fpr != NULL)
            device_key_fingerprint(pinned, plen, pinned_fpr);
        res = plen == spki_len && memcmp(pinned, spki, plen) == 0 ? DEVICE_PIN_MATCH
                                                                  : DEVICE_PIN_MISMATCH;
    } else if (!exists) {
        char tmp[PATH_MAX];
        if (ensure_parent(path, err, err_cap) &&
            write_tmp(path, spki, spki_len, tmp, sizeof tmp, err, err_cap)) {
            /* link(2) fails if a pin appeared meanwhile: never two first uses */
            if (link(tmp, path) == 0) {
                fsync_dir_of(path);
                res = DEVICE_PIN_NEW;
                if (pinned_fpr != NULL)
                    device_key_fingerprint(spki, spki_len, pinned_fpr);
            } else {
                err_set(err, err_cap, "%s: %s", path, strerror(errno));
            }
            unlink(tmp);
        }
        if (res == DEVICE_PIN_ERROR && exists == false) {
            /* someone else pinned first: compare with theirs */
            if (device_pin_load(path, pinned, sizeof pinned, &plen, &exists, err, err_cap)) {
                if (pinned_fpr != NULL)
                    device_key_fingerprint(pinned, plen, pinned_fpr);
                res = plen == spki_len && memcmp(pinned, spki, plen) == 0 ? DEVICE_PIN_MATCH
                                                                          : DEVICE_PIN_MISMATCH;
            }
        }
    }
    pthread_mutex_unlock(&pin_lock);
    return res;
}

bool device_pin_replace(const char *path, const uint8_t *spki, size_t spki_len, char *err,
                        size_t err_cap)
{
    if (path == NULL || spki == NULL || spki_len == 0 || spki_len > DEVICE_SPKI_MAX) {
        err_set(err, err_cap, "no device key");
        return false;
    }
    pthread_mutex_lock(&pin_lock);
    char tmp[PATH_MAX];
    bool ok = ensure_parent(path, err, err_cap) &&
              write_tmp(path, spki, spki_len, tmp, sizeof tmp, err, err_cap);
    if (ok) {
        ok = rename(tmp, path) == 0;
        if (!ok) {
            err_set(err, err_cap, "%s: %s", path, strerror(errno));
            unlink(tmp);
        } else {
            fsync_dir_of(path);
        }
    }
    pthread_mutex_unlock(&pin_lock);
    return ok;
}
