/* records_fs: per-user directories and atomic small-file writes for the cache
 * and the audit log (see records_fs.h). */
#include "records_fs.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void records_set_err(char *err, size_t err_cap, const char *fmt, ...)
{
    if (!err || err_cap == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    (void)vsnprintf(err, err_cap, fmt, ap);
    va_end(ap);
}

static const char *home_dir(void)
{
    const char *home = getenv("HOME");
    if (home && home[0] == '/')
        return home;
    struct passwd pw, *res = NULL;
    static __thread char buf[1024];
    if (getpwuid_r(geteuid(), &pw, buf, sizeof buf, &res) == 0 && res && res->pw_dir &&
        res->pw_dir[0] == '/')
        return res->pw_dir;
    return NULL;
}

bool records_xdg_dir(const char *xdg_var, const char *home_rel, char *out, size_t cap, char *err,
                     size_t err_cap)
{
    const char *x = getenv(xdg_var);
    int w;
    if (x && x[0] == '/') {
        w = snprintf(out, cap, "%s/cachet", x);
    } else {
        const char *home = home_dir();
        if (!home) {
            records_set_err(err, err_cap, "neither %s nor a home directory is set", xdg_var);
            return false;
        }
        w = snprintf(out, cap, "%s/%s/cachet", home, home_rel);
    }
    if (w < 0 || (size_t)w >= cap) {
        records_set_err(err, err_cap, "%s: path too long", xdg_var);
        return false;
    }
    return true;
}

static bool check_private_dir(const char *path, char *err, size_t err_cap)
{
    struct stat st;
    if (lstat(path, &st) != 0) {
        records_set_err(err, err_cap, "%s: %s", path, strerror(errno));
        return false;
    }
    if (!S_ISDIR(st.st_mode)) {
        records_set_err(err, err_cap, "%s: not a directory", path);
        return false;
    }
    if (st.st_uid != geteuid()) {
        records_set_err(err, err_cap, "%s: owned by uid %u, not by us", path, (unsigned)st.st_uid);
        return false;
    }
    if ((st.st_mode & 077) != 0 && chmod(path, 0700) != 0) {
        records_set_err(err, err_cap, "%s: chmod 0700: %s", path, strerror(errno));
        return false;
    }
    return true;
}

bool records_mkdir_private(const char *path, char *err, size_t err_cap)
{
    char tmp[PATH_MAX];
    size_t len = strlen(path);
    if (len == 0 || len >= sizeof tmp) {
        records_set_err(err, err_cap, "directory path empty or too long");
        return false;
    }
    memcpy(tmp, path, len + 1);
    while (len > 1 && tmp[len - 1] == '/')
        tmp[--len] = '\0';
    /* Parents first (mkdir -p); existing ones are left as they are. */
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(tmp, 0700) != 0 && errno != EEXIST) {
            records_set_err(err, err_cap, "mkdir %s: %s", tmp, strerror(errno));
            return false;
        }
        *p = '/';
    }
    if (mkdir(tmp, 0700) != 0 && errno != EEXIST) {
        records_set_err(err, err_cap, "mkdir %s: %s", tmp, strerror(errno));
        return false;
    }
    return check_private_dir(tmp, err, err_cap);
}

bool records_fsync_parent(const char *path)
{
    char dir[PATH_MAX];
    const char *slash = strrchr(path, '/');
    size_t n = slash ? (size_t)(slash - path) : 0;
    if (n == 0) {
        dir[0] = slash ? '/' : '.';
        dir[1] = '\0';
    } else {
        if (n >= sizeof dir)
            return false;
        memcpy(dir, path, n);
        dir[n] = '\0';
    }
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return false;
    bool ok = fsync(fd) == 0;
    close(fd);
    return ok;
}

static bool write_all(int fd, const void *data, size_t len)
{
    const char *p = data;
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return false;
        }
        p += w;
        len -= (size_t)w;
    }
    return true;
}

bool records_write_atomic(const char *path, const void *data, size_t len)
{
    char tmp[PATH_MAX];
    int w = snprintf(tmp, sizeof tmp, "%s.tmp.XXXXXX", path);
    if (w < 0 || (size_t)w >= sizeof tmp)
        return false;
    int fd = mkostemp(tmp, O_CLOEXEC); /* mode 0600 */
    if (fd < 0)
        return false;
    bool ok = fchmod(fd, 0600) == 0 && write_all(fd, data, len) && fsync(fd) == 0;
    if (close(fd) != 0)
        ok = false;
    if (ok && rename(tmp, path) != 0)
        ok = false;
    if (!ok) {
        (void)unlink(tmp);
        return false;
    }
    return records_fsync_parent(path);
}

bool records_read_capped(const char *path, size_t cap, bool owner_check, char **data, size_t *len,
                         bool *exists)
{
    *data = NULL;
    *len = 0;
    *exists = false;
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        *exists = errno != ENOENT;
        return false;
    }
    *exists = true;
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size < 0 ||
        (uint64_t)st.st_size > cap) {
        close(fd);
        return false;
    }
    if (owner_check && (st.st_uid != geteuid() || (st.st_mode & 077) != 0)) {
        close(fd);
        return false;
    }
    size_t want = (size_t)st.st_size;
    char *buf = malloc(want + 1);
    if (!buf) {
        close(fd);
        return false;
    }
    size_t got = 0;
    while (got < want) {
        ssize_t r = read(fd, buf + got, want - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    /* Grown since fstat: refuse rather than read past the cap. */
    char extra;
    ssize_t more = read(fd, &extra, 1);
    close(fd);
    if (got != want || more != 0) {
        free(buf);
        return false;
    }
    buf[got] = '\0';
    *data = buf;
    *len = got;
    return true;
}
