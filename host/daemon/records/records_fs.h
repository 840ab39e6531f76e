/* records_fs: private file-system helpers shared by cache.c and audit.c —
 * per-user directories (0700, owner-checked), atomic replacement of a small
 * file (tmp + fsync + rename + fsync of the directory), and capped reads.
 * Not part of the cachetd_records API. */
#ifndef CACHETD_RECORDS_FS_H
#define CACHETD_RECORDS_FS_H

#include <stdbool.h>
#include <stddef.h>

/* out = $<xdg_var>/cachet, or $HOME/<home_rel>/cachet when the variable is unset,
 * empty or not absolute (XDG Base Directory Specification). */
bool records_xdg_dir(const char *xdg_var, const char *home_rel, char *out, size_t cap, char *err,
                     size_t err_cap);

/* Creates path (and missing parents, 0700). The leaf must end up a real
 * directory (not a symlink) owned by geteuid(); group/other bits are removed. */
bool records_mkdir_private(const char *path, char *err, size_t err_cap);

/* Replaces path atomically with data (mode 0600): a temporary file beside it is
 * written, fsync'd and renamed over path, then the directory is fsync'd. */
bool records_write_atomic(const char *path, const void *data, size_t len);

/* Reads a whole regular file of at most cap bytes, opened without following a
 * symlink. *data is NUL-terminated (caller frees). Fails if the file is larger
 * than cap, not regular, or (when owner_check) not owned by geteuid() or
 * readable/writable by group or others. *exists tells "absent" from "bad". */
bool records_read_capped(const char *path, size_t cap, bool owner_check, char **data, size_t *len,
                         bool *exists);

/* fsync of the directory holding path (so a rename or create is durable). */
bool records_fsync_parent(const char *path);

/* snprintf into err if err is not NULL. */
void records_set_err(char *err, size_t err_cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
