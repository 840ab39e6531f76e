/* audit: cachetd's append-only, hash-chained audit log (one JSON object per
 * line) and its verifier.
 *
 * Each line carries "seq" (1, 2, ...), "prev" (hex SHA-256 of the previous
 * line's bytes, 64 zeros for the first) and the operation's fields. A head file
 * beside the log (<log>.head: seq and hash of the last line, replaced by rename)
 * anchors the end, so that deleting the last lines is detected too. audit_append
 * returns only once the line and the head are on disk (fsync). */
#ifndef CACHETD_AUDIT_H
#define CACHETD_AUDIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

typedef struct audit_log audit_log_t;

/* Added by the records helper (additive). */
#define AUDIT_LINE_MAX 65536u /* bytes of one line, its newline included */
#define AUDIT_TAIL_MAX 10000u /* audit_tail returns at most this many entries */

/* Opens (creates 0600) the log; repairs a head that lags one line behind
 * (a crash between the two writes). path NULL = $XDG_STATE_HOME/cachet/audit.log
 * (~/.local/state/cachet/audit.log). */
audit_log_t *audit_open(const char *path, char *err, size_t err_cap);
/* Appends fields (an object; "time", "seq" and "prev" are added). Thread-safe. */
bool audit_append(audit_log_t *log, json_object *fields);
/* The last n entries (newest last), as a new JSON array. */
json_object *audit_tail(audit_log_t *log, size_t n);
void audit_close(audit_log_t *log);

typedef struct {
    bool ok;
    uint64_t entries;      /* lines checked */
    uint64_t first_bad;    /* line number of the first problem (1-based), 0 if none */
    char reason[256];      /* what is wrong, for people */
} audit_verify_result_t;

/* Checks the whole chain and the head. Never modifies anything. Returns out->ok.
 * A log with exactly one line more than its head records (a crash between the
 * line's fsync and the head's rename) is ok, with a note in reason; a missing
 * line, an edited or reordered line, a truncated last line, a head ahead of the
 * log are not. audit_open refuses such a log (it repairs only the lagging head,
 * and drops an incomplete last line the head never recorded: an interrupted
 * write whose caller was never told it succeeded). */
bool audit_verify(const char *path, audit_verify_result_t *out);

/* One line's envelope (the line's bytes, without the newline): a JSON object
 * whose first keys are "seq" (integer >= 1), "time" (RFC 3339 UTC with
 * milliseconds, "2025-01-31T12:34:56.789Z") and "prev" (64 lower-case hex
 * digits). Used by the verifier; exposed for its fuzz target. reason may be NULL. */
bool audit_parse_line(const char *line, size_t len, uint64_t *seq, uint8_t prev[32], char *reason,
                      size_t reason_cap);

#endif
