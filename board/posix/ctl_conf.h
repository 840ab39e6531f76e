/* ctl_conf: the pure helpers of cachet-sim-ctl (docs/simulation.md §4): card
 * profile names, profile.conf `key = value` lines, `key=value` fields of the
 * control channel's status line. No I/O, so they can be unit-tested. */
#ifndef CACHET_CTL_CONF_H
#define CACHET_CTL_CONF_H

#include <stdbool.h>
#include <stddef.h>

#define CTL_PROFILE_NAME_MAX 64

/* A profile name is a directory name under $CACHET_SIM_PKI/profiles: 1..64 of
 * [A-Za-z0-9._-], not starting with '.' (so never "..", never a path). */
bool ctl_profile_name_ok(const char *name);

/* Finds `key = value` in a profile.conf text (lines; '#' starts a comment;
 * spaces around key and value ignored). Copies value to out[cap]. false when
 * the key is missing or the value does not fit. */
bool ctl_conf_get(const char *text, const char *key, char *out, size_t cap);

/* Finds `key=value` among the space-separated fields of line (up to the first
 * newline). false when missing or too long. */
bool ctl_field_get(const char *line, const char *key, char *out, size_t cap);

#endif
