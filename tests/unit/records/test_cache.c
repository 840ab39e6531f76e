/* Unit tests of cache.c: round trip, permissions, corrupt and foreign entries,
 * serial sanitising, forgetting. Each test works in its own mkdtemp directory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <sys/stat.h>

#include "cache.h"
#include "records_test_util.h"

typedef struct {
    char *tmp;
    char base[1024];    /* <tmp>/cache */
    card_cert_t *certs; /* 3 from cps-rpps */
    card_cert_t *out;   /* CARD_CERTS_MAX */
} fixture_t;

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    f->tmp = rt_mkdtemp();
    f->certs = calloc(3, sizeof *f->certs);
    f->out = calloc(CARD_CERTS_MAX, sizeof *f->out);
    if (!f->tmp || !f->certs || !f->out || rt_load_profile("cps-rpps", f->certs) != 0)
        return -1;
    snprintf(f->base, sizeof f->base, "%s/cache", f->tmp);
    char err[256] = "";
    if (!cache_init(f->base, err, sizeof err)) {
        fprintf(stderr, "cache_init: %s\n", err);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    rt_rm_rf(f->tmp);
    free(f->certs);
    free(f->out);
    free(f);
    return 0;
}

static void entry_file(const fixture_t *f, const char *name, char *out, size_t cap)
{
    snprintf(out, cap, "%s/cards/%s.json", f->base, name);
}

static bool exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

static void assert_same_certs(const card_cert_t *a, const card_cert_t *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(a[i].der_len, b[i].der_len);
        assert_memory_equal(a[i].der, b[i].der, a[i].der_len);
        assert_string_equal(a[i].label, b[i].label);
        assert_int_equal(a[i].id_len, b[i].id_len);
        assert_memory_equal(a[i].id, b[i].id, a[i].id_len);
        assert_int_equal(a[i].role, b[i].role);
    }
}

static void test_round_trip(void **state)
{
    fixture_t *f = *state;
    size_t n = 99;
    assert_false(cache_load_certs("80250000019900000001", f->out, CARD_CERTS_MAX, &n));
    assert_true(cache_store_certs("80250000019900000001", f->certs, 3));
    assert_true(cache_load_certs("80250000019900000001", f->out, CARD_CERTS_MAX, &n));
    assert_int_equal(n, 3);
    assert_same_certs(f->certs, f->out, 3);
    /* Rewriting replaces the entry. */
    assert_true(cache_store_certs("80250000019900000001", f->certs, 2));
    assert_true(cache_load_certs("80250000019900000001", f->out, CARD_CERTS_MAX, &n));
    assert_int_equal(n, 2);
    /* A caller with less room: a miss, the entry stays. */
    assert_true(cache_store_certs("80250000019900000001", f->certs, 3));
    assert_false(cache_load_certs("80250000019900000001", f->out, 2, &n));
    assert_true(cache_load_certs("80250000019900000001", f->out, 3, &n));
    /* Empty id and label survive too. */
    f->certs[0].id_len = 0;
    f->certs[0].label[0] = '\0';
    assert_true(cache_store_certs("S1", f->certs, 1));
    assert_true(cache_load_certs("S1", f->out, CARD_CERTS_MAX, &n));
    assert_same_certs(f->certs, f->out, 1);
}

static void test_permissions(void **state)
{
    fixture_t *f = *state;
    assert_true(cache_store_certs("1234", f->certs, 3));
    struct stat st;
    char path[PATH_MAX];
    assert_int_equal(stat(f->base, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    snprintf(path, sizeof path, "%s/cards", f->base);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    entry_file(f, "1234", path, sizeof path);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(st.st_uid, geteuid());
    /* No temporary left behind. */
    snprintf(path, sizeof path, "%s/cards", f->base);
    DIR *d = opendir(path);
    assert_non_null(d);
    int files = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        files += e->d_name[0] != '.';
    closedir(d);
    assert_int_equal(files, 1);

    /* A directory opened up by someone is closed again by cache_init. */
    assert_int_equal(chmod(f->base, 0755), 0);
    char err[256];
    assert_true(cache_init(f->base, err, sizeof err));
    assert_int_equal(stat(f->base, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);

    /* An entry readable by others is not trusted: removed. */
    entry_file(f, "1234", path, sizeof path);
    assert_int_equal(chmod(path, 0644), 0);
    size_t n;
    assert_false(cache_load_certs("1234", f->out, CARD_CERTS_MAX, &n));
    assert_false(exists(path));

    /* A symlink in place of an entry is not followed, and removed. */
    char target[PATH_MAX];
    snprintf(target, sizeof target, "%s/elsewhere.json", f->tmp);
    assert_true(cache_store_certs("1234", f->certs, 1));
    char *text = rt_read_file(path, NULL);
    assert_non_null(text);
    assert_int_equal(rt_write_file(target, text, strlen(text)), 0);
    free(text);
    assert_int_equal(chmod(target, 0600), 0);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(symlink(target, path), 0);
    assert_false(cache_load_certs("1234", f->out, CARD_CERTS_MAX, &n));
    assert_false(exists(path));
    assert_true(exists(target));
}

static void test_foreign_owner(void **state)
{
    fixture_t *f = *state;
    if (geteuid() != 0) {
        skip(); /* needs chown */
        return;
    }
    char path[PATH_MAX];
    assert_true(cache_store_certs("777", f->certs, 1));
    entry_file(f, "777", path, sizeof path);
    assert_int_equal(chown(path, 65534, 65534), 0);
    size_t n;
    assert_false(cache_load_certs("777", f->out, CARD_CERTS_MAX, &n));
    assert_false(exists(path));
    /* A cache directory owned by someone else is refused. */
    char other[PATH_MAX];
    snprintf(other, sizeof other, "%s/other", f->tmp);
    assert_int_equal(mkdir(other, 0700), 0);
    assert_int_equal(chown(other, 65534, 65534), 0);
    char err[256] = "";
    assert_false(cache_init(other, err, sizeof err));
    assert_non_null(strstr(err, "owned by"));
    assert_true(cache_init(f->base, err, sizeof err));
}

/* Writes text as the entry of serial (0600, as the cache would). */
static void plant(const fixture_t *f, const char *name, const char *text)
{
    char path[PATH_MAX];
    entry_file(f, name, path, sizeof path);
    assert_int_equal(rt_write_file(path, text, strlen(text)), 0);
    assert_int_equal(chmod(path, 0600), 0);
}

static void test_corrupt(void **state)
{
    fixture_t *f = *state;
    /* A valid entry to derive broken ones from. */
    assert_true(cache_store_certs("C", f->certs, 1));
    char path[PATH_MAX];
    entry_file(f, "C", path, sizeof path);
    char *good = rt_read_file(path, NULL);
    assert_non_null(good);
    const char *der = strstr(good, "\"der\":\"") + 7;
    size_t prefix = (size_t)(der - good);

    char *variants[16];
    size_t nv = 0;
    variants[nv++] = strdup("");
    variants[nv++] = strdup("not json");
    variants[nv++] = strndup(good, strlen(good) / 2); /* truncated */
    variants[nv++] = strdup("[]");
    variants[nv++] = strdup("{\"version\":2,\"serial\":\"C\",\"certs\":[]}");
    variants[nv++] = strdup("{\"version\":1,\"serial\":\"C\",\"certs\":[]}");
    variants[nv++] = strdup("{\"version\":1,\"serial\":\"C\",\"certs\":{}}");
    variants[nv++] =
        strdup("{\"version\":1,\"serial\":\"C\",\"certs\":[{\"role\":1,\"label\":\"x\","
               "\"id\":\"0g\",\"der\":\"MAA=\"}]}");
    variants[nv++] =
        strdup("{\"version\":1,\"serial\":\"C\",\"certs\":[{\"role\":7,\"label\":\"x\","
               "\"id\":\"00\",\"der\":\"MAA=\"}]}");
    /* A well-formed base64 that is not a certificate. */
    variants[nv++] =
        strdup("{\"version\":1,\"serial\":\"C\",\"certs\":[{\"role\":1,\"label\":\"x\","
               "\"id\":\"00\",\"der\":\"MAA=\"}]}");
    /* Bad base64 characters inside the DER. */
    char *b = strdup(good);
    b[prefix + 10] = '*';
    variants[nv++] = b;
    /* Trailing bytes after the object. */
    size_t gl = strlen(good);
    char *t = malloc(gl + 3);
    memcpy(t, good, gl);
    memcpy(t + gl, " x", 3);
    variants[nv++] = t;
    /* An extra key. */
    char *x = malloc(gl + 16);
    snprintf(x, gl + 16, "%.*s,\"extra\":1}", (int)(gl - 1), good);
    variants[nv++] = x;

    for (size_t i = 0; i < nv; i++) {
        plant(f, "C", variants[i]);
        size_t n = 0;
        if (cache_load_certs("C", f->out, CARD_CERTS_MAX, &n))
            fail_msg("variant %zu accepted: %s", i, variants[i]);
        assert_false(exists(path));
        free(variants[i]);
    }
    /* The good one still loads (the fixture is sound). */
    plant(f, "C", good);
    size_t n = 0;
    assert_true(cache_load_certs("C", f->out, CARD_CERTS_MAX, &n));
    free(good);

    /* Over the size cap: removed unread. */
    size_t big = 1024 * 1024;
    char *huge = malloc(big + 1);
    memset(huge, ' ', big);
    huge[big] = '\0';
    plant(f, "C", huge);
    free(huge);
    assert_false(cache_load_certs("C", f->out, CARD_CERTS_MAX, &n));
    assert_false(exists(path));
}

static void test_serials(void **state)
{
    fixture_t *f = *state;
    size_t n;
    /* Path characters never reach the file system as such. */
    assert_true(cache_store_certs("../../evil", f->certs, 1));
    char path[PATH_MAX];
    entry_file(f, "______evil", path, sizeof path);
    assert_true(exists(path));
    snprintf(path, sizeof path, "%s/evil.json", f->tmp);
    assert_false(exists(path));
    assert_true(cache_load_certs("../../evil", f->out, CARD_CERTS_MAX, &n));
    /* Another serial that sanitises alike: a miss, and the entry is kept. */
    assert_false(cache_load_certs("______evil", f->out, CARD_CERTS_MAX, &n));
    assert_true(cache_load_certs("../../evil", f->out, CARD_CERTS_MAX, &n));
    /* Empty and over-long serials are refused. */
    char longs[CARD_SERIAL_MAX + 1];
    memset(longs, '7', CARD_SERIAL_MAX);
    longs[CARD_SERIAL_MAX] = '\0';
    assert_false(cache_store_certs("", f->certs, 1));
    assert_false(cache_store_certs(longs, f->certs, 1));
    assert_false(cache_store_certs(NULL, f->certs, 1));
    assert_false(cache_load_certs(longs, f->out, CARD_CERTS_MAX, &n));
    longs[CARD_SERIAL_MAX - 1] = '\0';
    assert_true(cache_store_certs(longs, f->certs, 1));
    assert_true(cache_load_certs(longs, f->out, CARD_CERTS_MAX, &n));
    /* Bad certificate arrays are refused. */
    assert_false(cache_store_certs("x", f->certs, 0));
    assert_false(cache_store_certs("x", f->certs, CARD_CERTS_MAX + 1));
    f->certs[0].der_len = 0;
    assert_false(cache_store_certs("x", f->certs, 1));
    f->certs[0].der_len = CARD_CERT_MAX + 1;
    assert_false(cache_store_certs("x", f->certs, 1));
}

static void test_forget(void **state)
{
    fixture_t *f = *state;
    size_t n;
    assert_true(cache_store_certs("A", f->certs, 3));
    assert_true(cache_store_certs("B", f->certs, 3));
    cache_forget("A");
    assert_false(cache_load_certs("A", f->out, CARD_CERTS_MAX, &n));
    assert_true(cache_load_certs("B", f->out, CARD_CERTS_MAX, &n));
    assert_true(cache_store_certs("A", f->certs, 3));
    cache_forget(NULL);
    assert_false(cache_load_certs("A", f->out, CARD_CERTS_MAX, &n));
    assert_false(cache_load_certs("B", f->out, CARD_CERTS_MAX, &n));
    cache_forget("never-stored"); /* harmless */
}

static void test_default_dir(void **state)
{
    fixture_t *f = *state;
    char xdg[1024], path[PATH_MAX], err[256] = "";
    snprintf(xdg, sizeof xdg, "%s/xdg", f->tmp);
    assert_int_equal(setenv("XDG_CACHE_HOME", xdg, 1), 0);
    assert_true(cache_init(NULL, err, sizeof err));
    assert_true(cache_store_certs("D", f->certs, 1));
    snprintf(path, sizeof path, "%s/cachet/cards/D.json", xdg);
    assert_true(exists(path));
    /* Relative XDG_CACHE_HOME is ignored (XDG spec): $HOME/.cache. */
    assert_int_equal(setenv("XDG_CACHE_HOME", "relative", 1), 0);
    assert_int_equal(setenv("HOME", f->tmp, 1), 0);
    assert_true(cache_init(NULL, err, sizeof err));
    assert_true(cache_store_certs("E", f->certs, 1));
    snprintf(path, sizeof path, "%s/.cache/cachet/cards/E.json", f->tmp);
    assert_true(exists(path));
    unsetenv("XDG_CACHE_HOME");
    /* A file where the directory should be. */
    snprintf(path, sizeof path, "%s/file", f->tmp);
    assert_int_equal(rt_write_file(path, "x", 1), 0);
    assert_false(cache_init(path, err, sizeof err));
    assert_true(cache_init(f->base, err, sizeof err));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_permissions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_foreign_owner, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt, setup, teardown),
        cmocka_unit_test_setup_teardown(test_serials, setup, teardown),
        cmocka_unit_test_setup_teardown(test_forget, setup, teardown),
        cmocka_unit_test_setup_teardown(test_default_dir, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
