/* Unit tests of audit.c: append + verify, detection of edits, deletions,
 * reordering and truncation, concurrent appends, and the crash window between
 * the line and the head. Each test works in its own mkdtemp directory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <sys/stat.h>

#include <openssl/sha.h>

#include "audit.h"
#include "records_test_util.h"

typedef struct {
    char *tmp;
    char log[PATH_MAX];
    char head[PATH_MAX];
} fixture_t;

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof *f);
    if (!f || !(f->tmp = rt_mkdtemp()))
        return -1;
    snprintf(f->log, sizeof f->log, "%s/audit.log", f->tmp);
    snprintf(f->head, sizeof f->head, "%s/audit.log.head", f->tmp);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    rt_rm_rf(f->tmp);
    free(f);
    return 0;
}

static json_object *fields(const char *op, int i)
{
    json_object *o = json_object_new_object();
    json_object *client = json_object_new_object();
    json_object_object_add(client, "uid", json_object_new_int(1000));
    json_object_object_add(client, "pid", json_object_new_int(4242 + i));
    json_object_object_add(client, "exe", json_object_new_string("/usr/bin/thunderbird"));
    json_object_object_add(o, "client", client);
    json_object_object_add(o, "op", json_object_new_string(op));
    json_object_object_add(o, "role", json_object_new_string("sign"));
    json_object_object_add(o, "digest",
                           json_object_new_string("9f86d081884c7d659a2feaa0c55ad015"
                                                  "a3bf4f1b2b0b822cd15d6c15b0f00a08"));
    json_object_object_add(o, "result", json_object_new_string("ok"));
    return o;
}

/* Opens the log, appends n entries, closes it. */
static void append_n(const fixture_t *f, int n)
{
    char err[256] = "";
    audit_log_t *log = audit_open(f->log, err, sizeof err);
    if (!log)
        fail_msg("audit_open: %s", err);
    for (int i = 0; i < n; i++) {
        json_object *o = fields("sign-mail", i);
        assert_true(audit_append(log, o));
        json_object_put(o);
    }
    audit_close(log);
}

/* The log as lines (each with its newline). */
typedef struct {
    char *lines[64];
    size_t n;
} lines_t;

static void read_lines(const fixture_t *f, lines_t *l)
{
    char *text = rt_read_file(f->log, NULL);
    assert_non_null(text);
    l->n = 0;
    char *p = text;
    while (*p) {
        char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) + 1 : strlen(p);
        assert_true(l->n < 64);
        l->lines[l->n++] = strndup(p, len);
        p += len;
    }
    free(text);
}

static void write_lines(const fixture_t *f, lines_t *l)
{
    FILE *fp = fopen(f->log, "wb");
    assert_non_null(fp);
    for (size_t i = 0; i < l->n; i++) {
        if (l->lines[i])
            fputs(l->lines[i], fp);
        free(l->lines[i]);
    }
    fclose(fp);
    l->n = 0;
}

static void expect_bad(const fixture_t *f, uint64_t first_bad, const char *why)
{
    audit_verify_result_t r;
    assert_false(audit_verify(f->log, &r));
    assert_false(r.ok);
    if (r.first_bad != first_bad)
        fail_msg("first_bad %llu, expected %llu: %s", (unsigned long long)r.first_bad,
                 (unsigned long long)first_bad, r.reason);
    if (why && !strstr(r.reason, why))
        fail_msg("reason \"%s\" lacks \"%s\"", r.reason, why);
    /* cachetd refuses to continue such a log. */
    char err[256] = "";
    assert_null(audit_open(f->log, err, sizeof err));
    assert_non_null(strstr(err, "refusing"));
}

static void expect_ok(const fixture_t *f, uint64_t entries)
{
    audit_verify_result_t r;
    if (!audit_verify(f->log, &r))
        fail_msg("verify: line %llu: %s", (unsigned long long)r.first_bad, r.reason);
    assert_true(r.ok);
    assert_int_equal(r.entries, entries);
    assert_int_equal(r.first_bad, 0);
}

static void test_append_verify(void **state)
{
    fixture_t *f = *state;
    append_n(f, 5);
    expect_ok(f, 5);
    struct stat st;
    assert_int_equal(stat(f->log, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    /* Line shape: envelope first, compact, 64 zeros before line 1. */
    lines_t l;
    read_lines(f, &l);
    assert_int_equal(l.n, 5);
    assert_memory_equal(l.lines[0], "{\"seq\":1,\"time\":\"", 17);
    const char *t = l.lines[0] + 17;
    assert_int_equal(t[4], '-');
    assert_int_equal(t[10], 'T');
    assert_int_equal(t[19], '.');
    assert_int_equal(t[23], 'Z');
    char expect_prev[128];
    snprintf(expect_prev, sizeof expect_prev, "\",\"prev\":\"%064d\",\"client\":{", 0);
    assert_memory_equal(t + 24, expect_prev, strlen(expect_prev));
    assert_null(strchr(l.lines[0], ' '));
    /* The head holds the last line's hash. */
    unsigned char h[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)l.lines[4], strlen(l.lines[4]) - 1, h);
    char hex[65];
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", h[i]);
    char expect_head[128];
    snprintf(expect_head, sizeof expect_head, "{\"seq\":5,\"hash\":\"%s\"}\n", hex);
    char *head = rt_read_file(f->head, NULL);
    assert_non_null(head);
    assert_string_equal(head, expect_head);
    free(head);
    for (size_t i = 0; i < l.n; i++)
        free(l.lines[i]);
    /* Reopening continues the chain. */
    append_n(f, 2);
    expect_ok(f, 7);
}

static void test_tail_and_fields(void **state)
{
    fixture_t *f = *state;
    char err[256];
    audit_log_t *log = audit_open(f->log, err, sizeof err);
    assert_non_null(log);
    json_object *empty = audit_tail(log, 5);
    assert_int_equal(json_object_array_length(empty), 0);
    json_object_put(empty);
    for (int i = 0; i < 6; i++) {
        json_object *o = fields("login", i);
        /* Reserved keys in the caller's fields do not override ours. */
        json_object_object_add(o, "seq", json_object_new_int(99));
        json_object_object_add(o, "prev", json_object_new_string("forged"));
        assert_true(audit_append(log, o));
        json_object_put(o);
    }
    /* Not an object; too big for one line: refused, nothing written. */
    json_object *s = json_object_new_string("x");
    assert_false(audit_append(log, s));
    json_object_put(s);
    assert_false(audit_append(log, NULL));
    char *big = malloc(AUDIT_LINE_MAX);
    memset(big, 'a', AUDIT_LINE_MAX - 1);
    big[AUDIT_LINE_MAX - 1] = '\0';
    json_object *o = fields("huge", 0);
    json_object_object_add(o, "note", json_object_new_string(big));
    assert_false(audit_append(log, o));
    json_object_put(o);
    free(big);

    json_object *tail = audit_tail(log, 3);
    assert_int_equal(json_object_array_length(tail), 3);
    for (size_t i = 0; i < 3; i++) {
        json_object *e = json_object_array_get_idx(tail, i), *v;
        assert_true(json_object_object_get_ex(e, "seq", &v));
        assert_int_equal(json_object_get_int64(v), 4 + (int64_t)i);
        assert_true(json_object_object_get_ex(e, "op", &v));
        assert_string_equal(json_object_get_string(v), "login");
        assert_true(json_object_object_get_ex(e, "prev", &v));
        assert_int_equal(json_object_get_string_len(v), 64);
    }
    json_object_put(tail);
    tail = audit_tail(log, 1000);
    assert_int_equal(json_object_array_length(tail), 6);
    json_object_put(tail);
    tail = audit_tail(log, 0);
    assert_int_equal(json_object_array_length(tail), 0);
    json_object_put(tail);
    audit_close(log);
    expect_ok(f, 6);
}

static void test_edited_field(void **state)
{
    fixture_t *f = *state;
    append_n(f, 5);
    lines_t l;
    read_lines(f, &l);
    char *p = strstr(l.lines[2], "\"result\":\"ok\"");
    assert_non_null(p);
    memcpy(p, "\"result\":\"no\"", 13);
    write_lines(f, &l);
    expect_bad(f, 3, "altered");
}

static void test_edited_last_line(void **state)
{
    fixture_t *f = *state;
    append_n(f, 4);
    lines_t l;
    read_lines(f, &l);
    char *p = strstr(l.lines[3], "thunderbird");
    memcpy(p, "evolution!!", 11);
    write_lines(f, &l);
    expect_bad(f, 4, "head");
}

static void test_deleted_middle_line(void **state)
{
    fixture_t *f = *state;
    append_n(f, 5);
    lines_t l;
    read_lines(f, &l);
    free(l.lines[2]);
    l.lines[2] = NULL;
    write_lines(f, &l);
    expect_bad(f, 3, "seq 4");
}

static void test_deleted_last_line(void **state)
{
    fixture_t *f = *state;
    append_n(f, 5);
    lines_t l;
    read_lines(f, &l);
    free(l.lines[4]);
    l.lines[4] = NULL;
    write_lines(f, &l);
    expect_bad(f, 5, "removed from the end");
    /* Every line gone, head left. */
    assert_int_equal(truncate(f->log, 0), 0);
    expect_bad(f, 1, "removed from the end");
}

static void test_swapped_lines(void **state)
{
    fixture_t *f = *state;
    append_n(f, 5);
    lines_t l;
    read_lines(f, &l);
    char *tmp = l.lines[1];
    l.lines[1] = l.lines[2];
    l.lines[2] = tmp;
    write_lines(f, &l);
    expect_bad(f, 2, "seq 3");
}

static void test_truncated_half_line(void **state)
{
    fixture_t *f = *state;
    append_n(f, 5);
    struct stat st;
    assert_int_equal(stat(f->log, &st), 0);
    lines_t l;
    read_lines(f, &l);
    size_t last = strlen(l.lines[4]);
    for (size_t i = 0; i < l.n; i++)
        free(l.lines[i]);
    /* Half of the last line cut off: the head no longer matches. */
    assert_int_equal(truncate(f->log, st.st_size - (off_t)(last / 2)), 0);
    expect_bad(f, 5, "incomplete");
}

static void test_truncated_middle_line(void **state)
{
    fixture_t *f = *state;
    append_n(f, 5);
    lines_t l;
    read_lines(f, &l);
    l.lines[2][strlen(l.lines[2]) / 2] = '\0'; /* line 3 loses its second half */
    write_lines(f, &l);
    expect_bad(f, 3, "JSON");
}

static void test_head_tampering(void **state)
{
    fixture_t *f = *state;
    append_n(f, 3);
    /* A head with garbage. */
    assert_int_equal(rt_write_file(f->head, "{\"seq\":3}", 9), 0);
    expect_bad(f, 3, "head");
    /* No head at all (with more than one line). */
    assert_int_equal(unlink(f->head), 0);
    expect_bad(f, 3, "missing");
    /* A head two lines behind. */
    char two_behind[128];
    snprintf(two_behind, sizeof two_behind, "{\"seq\":1,\"hash\":\"%064d\"}\n", 0);
    assert_int_equal(rt_write_file(f->head, two_behind, strlen(two_behind)), 0);
    expect_bad(f, 2, "not anchored");
    /* A head ahead of the log. */
    snprintf(two_behind, sizeof two_behind, "{\"seq\":9,\"hash\":\"%064d\"}\n", 0);
    assert_int_equal(rt_write_file(f->head, two_behind, strlen(two_behind)), 0);
    expect_bad(f, 4, "removed from the end");
}

static void *appender(void *arg)
{
    audit_log_t *log = arg;
    for (int i = 0; i < 50; i++) {
        json_object *o = fields("sign-digest", i);
        if (!audit_append(log, o)) {
            json_object_put(o);
            return (void *)1;
        }
        json_object_put(o);
    }
    return NULL;
}

static void test_concurrent(void **state)
{
    fixture_t *f = *state;
    char err[256];
    audit_log_t *log = audit_open(f->log, err, sizeof err);
    assert_non_null(log);
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&th[i], NULL, appender, log), 0);
    for (int i = 0; i < 4; i++) {
        void *rc = NULL;
        assert_int_equal(pthread_join(th[i], &rc), 0);
        assert_null(rc);
    }
    /* One writer per log: a second open is refused while the first holds it. */
    assert_null(audit_open(f->log, err, sizeof err));
    assert_non_null(strstr(err, "in use"));
    audit_close(log);
    expect_ok(f, 200);
}

/* Appends line seq by hand (as cachetd would have, then "crashed" before the head). */
static void append_by_hand(const fixture_t *f, uint64_t seq)
{
    char prev[65] = {0};
    if (seq == 1) {
        memset(prev, '0', 64);
    } else {
        lines_t l;
        read_lines(f, &l);
        assert_int_equal(l.n, seq - 1);
        unsigned char h[SHA256_DIGEST_LENGTH];
        const char *last = l.lines[l.n - 1];
        SHA256((const unsigned char *)last, strlen(last) - 1, h);
        for (int i = 0; i < 32; i++)
            snprintf(prev + 2 * i, 3, "%02x", h[i]);
        for (size_t i = 0; i < l.n; i++)
            free(l.lines[i]);
    }
    char line[256];
    snprintf(
        line, sizeof line,
        "{\"seq\":%llu,\"time\":\"2026-01-02T03:04:05.678Z\",\"prev\":\"%s\",\"op\":\"crash\"}\n",
        (unsigned long long)seq, prev);
    FILE *fp = fopen(f->log, "ab");
    assert_non_null(fp);
    fputs(line, fp);
    fclose(fp);
}

static void test_crash_between_line_and_head(void **state)
{
    fixture_t *f = *state;
    append_n(f, 3);
    append_by_hand(f, 4);
    /* The crash window: ok, with a note. */
    audit_verify_result_t r;
    assert_true(audit_verify(f->log, &r));
    assert_int_equal(r.entries, 4);
    assert_non_null(strstr(r.reason, "not yet recorded"));
    /* audit_open repairs the head, and the chain goes on. */
    append_n(f, 1);
    expect_ok(f, 5);
    assert_true(audit_verify(f->log, &r));
    assert_null(strstr(r.reason, "not yet recorded"));
    /* Two lines beyond the head is not a crash window. */
    append_by_hand(f, 6);
    char *head = rt_read_file(f->head, NULL);
    append_by_hand(f, 7);
    assert_int_equal(rt_write_file(f->head, head, strlen(head)), 0);
    free(head);
    expect_bad(f, 6, "not anchored");
}

static void test_crash_first_line(void **state)
{
    fixture_t *f = *state;
    /* Crash during the very first append: one line, no head yet. */
    append_by_hand(f, 1);
    audit_verify_result_t r;
    assert_true(audit_verify(f->log, &r));
    assert_int_equal(r.entries, 1);
    append_n(f, 2);
    expect_ok(f, 3);
}

static void test_interrupted_write(void **state)
{
    fixture_t *f = *state;
    append_n(f, 3);
    /* A write cut short before its fsync: the head never recorded it. */
    FILE *fp = fopen(f->log, "ab");
    fputs("{\"seq\":4,\"time\":\"2026-01-02T0", fp);
    fclose(fp);
    audit_verify_result_t r;
    assert_false(audit_verify(f->log, &r));
    assert_int_equal(r.first_bad, 4);
    assert_non_null(strstr(r.reason, "interrupted"));
    /* And a temporary head left by a crash inside the head's own write. */
    char stale[PATH_MAX + 16];
    snprintf(stale, sizeof stale, "%s.tmp.AbC123", f->head);
    assert_int_equal(rt_write_file(stale, "{", 1), 0);
    /* cachetd drops it on start (no caller was told it succeeded). */
    append_n(f, 1);
    expect_ok(f, 4);
    assert_int_equal(access(stale, F_OK), -1);
}

static void test_empty_and_missing(void **state)
{
    fixture_t *f = *state;
    audit_verify_result_t r;
    assert_false(audit_verify(f->log, &r)); /* no log at all */
    assert_false(audit_verify(NULL, &r));
    append_n(f, 0);
    expect_ok(f, 0);
    /* A log we did not make 0600 is made so. */
    assert_int_equal(chmod(f->log, 0644), 0);
    append_n(f, 1);
    struct stat st;
    assert_int_equal(stat(f->log, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    /* Default location under XDG_STATE_HOME. */
    char xdg[1024], path[PATH_MAX], err[256];
    snprintf(xdg, sizeof xdg, "%s/state", f->tmp);
    setenv("XDG_STATE_HOME", xdg, 1);
    audit_log_t *log = audit_open(NULL, err, sizeof err);
    assert_non_null(log);
    audit_close(log);
    snprintf(path, sizeof path, "%s/cachet/audit.log", xdg);
    assert_int_equal(stat(path, &st), 0);
    unsetenv("XDG_STATE_HOME");
}

static void test_parse_line(void **state)
{
    (void)state;
    uint64_t seq = 0;
    uint8_t prev[32];
    char why[128];
    char zeros[65];
    memset(zeros, '0', 64);
    zeros[64] = '\0';
    char line[512];
    snprintf(line, sizeof line,
             "{\"seq\":7,\"time\":\"2026-01-02T03:04:05.678Z\",\"prev\":\"%s\",\"x\":[1,{}]}",
             zeros);
    assert_true(audit_parse_line(line, strlen(line), &seq, prev, why, sizeof why));
    assert_int_equal(seq, 7);
    static const char *bad[] = {
        "",
        "[]",
        "{}",
        "{\"time\":\"2026-01-02T03:04:05.678Z\",\"seq\":1}",
        "{\"seq\":0,\"time\":\"2026-01-02T03:04:05.678Z\",\"prev\":\"\"}",
        "{\"seq\":\"1\",\"time\":\"2026-01-02T03:04:05.678Z\",\"prev\":\"\"}",
        "{\"seq\":1,\"time\":\"2026-01-02 03:04:05.678Z\",\"prev\":\"\"}",
        "{\"seq\":1,\"time\":\"2026-01-02T03:04:05.678Z\",\"prev\":\"00\"}",
        "{\"seq\":1,\"time\":\"2026-01-02T03:04:05.678Z\"",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_false(audit_parse_line(bad[i], strlen(bad[i]), &seq, prev, why, sizeof why));
    /* Trailing bytes, upper-case hex. */
    size_t len = strlen(line);
    line[len] = ' ';
    line[len + 1] = 'x';
    assert_false(audit_parse_line(line, len + 2, &seq, prev, NULL, 0));
    char *p = strstr(line, zeros);
    p[0] = 'A';
    assert_false(audit_parse_line(line, len, &seq, prev, why, sizeof why));
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_append_verify),    T(test_tail_and_fields),     T(test_edited_field),
        T(test_edited_last_line), T(test_deleted_middle_line), T(test_deleted_last_line),
        T(test_swapped_lines),    T(test_truncated_half_line), T(test_truncated_middle_line),
        T(test_head_tampering),   T(test_concurrent),          T(test_crash_between_line_and_head),
        T(test_crash_first_line), T(test_interrupted_write),   T(test_empty_and_missing),
        T(test_parse_line),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
