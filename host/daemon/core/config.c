/* config: cachetd's options. Defaults, then key = value lines of
 * $XDG_CONFIG_HOME/cachet/cachetd.conf (or --config FILE), then the command
 * line, which wins. Every value from outside is length-checked. */
#include <errno.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cachetd.h"
#include "smime.h"

#define CONF_LINE_MAX 4200

void cachetd_config_defaults(cachetd_config_t *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    snprintf(cfg->backend, sizeof cfg->backend, "auto");
    cfg->max_mail_size = SMIME_DEFAULT_MAX_SIZE;
    cfg->timeout_s = 120;
    cfg->frame_timeout_ms = 10000;
    cfg->use_cache = true;
    cfg->language = 0;
    cfg->confirm_timeout_s = 0;
    cfg->auth_confirm = -1;
}

static bool copy_str(char *dst, size_t cap, const char *v, const char *key, char *err,
                     size_t err_cap)
{
    size_t n = strlen(v);
    if (n >= cap) {
        snprintf(err, err_cap, "%s: value too long (max %zu)", key, cap - 1);
        return false;
    }
    memcpy(dst, v, n + 1);
    return true;
}

static bool parse_u64(const char *v, uint64_t min, uint64_t max, uint64_t *out)
{
    if (v[0] < '0' || v[0] > '9')
        return false;
    errno = 0;
    char *end = NULL;
    unsigned long long x = strtoull(v, &end, 10);
    if (errno != 0 || end == v || *end != '\0' || x < min || x > max)
        return false;
    *out = x;
    return true;
}

bool cachetd_config_set(cachetd_config_t *cfg, const char *key, const char *v, char *err,
                        size_t err_cap)
{
    if (strcmp(key, "socket") == 0)
        return copy_str(cfg->socket_path, sizeof cfg->socket_path, v, key, err, err_cap);
    if (strcmp(key, "backend") == 0) {
        if (strcmp(v, "auto") != 0 && strcmp(v, "native") != 0 && strcmp(v, "pkcs11") != 0) {
            snprintf(err, err_cap, "backend: auto, native or pkcs11");
            return false;
        }
        return copy_str(cfg->backend, sizeof cfg->backend, v, key, err, err_cap);
    }
    if (strcmp(key, "pkcs11-module") == 0)
        return copy_str(cfg->pkcs11_module, sizeof cfg->pkcs11_module, v, key, err, err_cap);
    if (strcmp(key, "reader") == 0)
        return copy_str(cfg->reader, sizeof cfg->reader, v, key, err, err_cap);
    if (strcmp(key, "trust") == 0)
        return copy_str(cfg->trust, sizeof cfg->trust, v, key, err, err_cap);
    if (strcmp(key, "audit-log") == 0)
        return copy_str(cfg->audit_log, sizeof cfg->audit_log, v, key, err, err_cap);
    if (strcmp(key, "cache-dir") == 0)
        return copy_str(cfg->cache_dir, sizeof cfg->cache_dir, v, key, err, err_cap);
    if (strcmp(key, "log") == 0)
        return copy_str(cfg->log_path, sizeof cfg->log_path, v, key, err, err_cap);
    if (strcmp(key, "allow-group") == 0) {
        if (!copy_str(cfg->allow_group, sizeof cfg->allow_group, v, key, err, err_cap))
            return false;
        struct group gr, *res = NULL;
        char buf[8192];
        if (getgrnam_r(v, &gr, buf, sizeof buf, &res) == 0 && res != NULL) {
            cfg->allow_gid = res->gr_gid;
        } else {
            uint64_t g;
            if (!parse_u64(v, 0, (uint64_t)INT32_MAX, &g)) {
                snprintf(err, err_cap, "allow-group: unknown group '%s'", v);
                return false;
            }
            cfg->allow_gid = (gid_t)g;
        }
        cfg->has_allow_gid = true;
        return true;
    }
    if (strcmp(key, "max-mail-size") == 0) {
        uint64_t x;
        /* 1 KiB .. 1 GiB: the mail is spooled to disk, never held in memory. */
        if (!parse_u64(v, 1024, 1024ull * 1024 * 1024, &x)) {
            snprintf(err, err_cap, "max-mail-size: bytes, 1024..1073741824");
            return false;
        }
        cfg->max_mail_size = x;
        return true;
    }
    if (strcmp(key, "timeout") == 0) {
        uint64_t x;
        if (!parse_u64(v, 1, 3600, &x)) {
            snprintf(err, err_cap, "timeout: seconds, 1..3600");
            return false;
        }
        cfg->timeout_s = (int)x;
        return true;
    }
    /* The appliance (docs/appliance.md "Vendor commands": SET_CONFIG). */
    if (strcmp(key, "language") == 0) {
        if (strcmp(v, "fr") != 0 && strcmp(v, "en") != 0) {
            snprintf(err, err_cap, "language: fr or en");
            return false;
        }
        cfg->language = strcmp(v, "en") == 0 ? 1 : 0;
        return true;
    }
    if (strcmp(key, "confirm-timeout") == 0) {
        uint64_t x;
        if (!parse_u64(v, 5, 600, &x)) {
            snprintf(err, err_cap, "confirm-timeout: seconds, 5..600");
            return false;
        }
        cfg->confirm_timeout_s = (int)x;
        return true;
    }
    if (strcmp(key, "auth-confirm") == 0) {
        if (strcmp(v, "yes") != 0 && strcmp(v, "no") != 0) {
            snprintf(err, err_cap, "auth-confirm: yes or no");
            return false;
        }
        cfg->auth_confirm = strcmp(v, "yes") == 0 ? 1 : 0;
        return true;
    }
    if (strcmp(key, "device-pin") == 0)
        return copy_str(cfg->device_pin, sizeof cfg->device_pin, v, key, err, err_cap);
    snprintf(err, err_cap, "unknown option '%s'", key);
    return false;
}

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\n' || s[n - 1] == '\r'))
        s[--n] = '\0';
    return s;
}

/* key = value lines; '#' comments; a missing file is fine (unless explicit). */
static bool load_file(cachetd_config_t *cfg, const char *path, bool must_exist, char *err,
                      size_t err_cap)
{
    FILE *f = fopen(path, "re");
    if (f == NULL) {
        if (!must_exist && errno == ENOENT)
            return true;
        snprintf(err, err_cap, "%s: %s", path, strerror(errno));
        return false;
    }
    char line[CONF_LINE_MAX];
    unsigned lineno = 0;
    bool ok = true;
    while (ok && fgets(line, sizeof line, f) != NULL) {
        lineno++;
        if (strchr(line, '\n') == NULL && !feof(f)) {
            snprintf(err, err_cap, "%s:%u: line too long", path, lineno);
            ok = false;
            break;
        }
        char *s = trim(line);
        if (s[0] == '\0' || s[0] == '#')
            continue;
        char *eq = strchr(s, '=');
        if (eq == NULL) {
            snprintf(err, err_cap, "%s:%u: expected key = value", path, lineno);
            ok = false;
            break;
        }
        *eq = '\0';
        char *key = trim(s), *val = trim(eq + 1);
        char e2[256];
        if (!cachetd_config_set(cfg, key, val, e2, sizeof e2)) {
            snprintf(err, err_cap, "%s:%u: %s", path, lineno, e2);
            ok = false;
        }
    }
    fclose(f);
    return ok;
}

void cachetd_config_usage(FILE *out)
{
    fputs("usage: cachetd [--socket PATH] [--backend auto|native|pkcs11] [--pkcs11-module PATH]\n"
          "               [--reader NAME] [--trust PEM] [--audit-log PATH] [--cache-dir DIR]\n"
          "               [--allow-group GROUP] [--log FILE] [--max-mail-size BYTES]\n"
          "               [--timeout SECONDS] [--config FILE] [--no-cache]\n"
          "               [--language fr|en] [--confirm-timeout SECONDS] [--auth-confirm yes|no]\n"
          "               [--device-pin PATH]\n"
          "\n"
          "The one owner of the CPS card on this workstation (docs/cachet.md, docs/protocol.md).\n"
          "Options may also be given as 'key = value' lines (same names, without the dashes)\n"
          "in $XDG_CONFIG_HOME/cachet/cachetd.conf; the command line wins.\n"
          "  --socket PATH        default $XDG_RUNTIME_DIR/cachet/cachetd.sock\n"
          "  --backend B          auto (native CPx when a CPx card is in a reader, else PKCS#11)\n"
          "  --pkcs11-module PATH default: OpenSC's opensc-pkcs11.so\n"
          "  --trust PEM          trust anchors for the card's certificate chain and verify-mail\n"
          "  --audit-log PATH     default $XDG_STATE_HOME/cachet/audit.log\n"
          "  --cache-dir DIR      default $XDG_CACHE_HOME/cachet (public data only)\n"
          "  --allow-group GROUP  also serve members of GROUP (socket 0660, that group)\n"
          "  --log FILE           default stderr\n"
          "  --max-mail-size N    largest message sign-mail/verify-mail accept (bytes)\n"
          "  --timeout S          longest wait for the card in one request (default 120)\n"
          "  --language L         the Cachet appliance's screens: fr (default) or en\n"
          "  --confirm-timeout S  the appliance waits S s (5..600, its default 60) for OK\n"
          "  --auth-confirm yes   the appliance asks OK for each authentication too\n"
          "  --device-pin PATH    the pinned device key, default: beside the audit log\n",
          out);
}

static const char *const value_opts[] = {
    "socket",    "backend",         "pkcs11-module", "reader",        "trust",   "audit-log",
    "cache-dir", "allow-group",     "log",           "max-mail-size", "timeout", "config",
    "language",  "confirm-timeout", "auth-confirm",  "device-pin",
};

/* Returns the option's name if arg is "--name" or "--name=value" of a known
 * option taking a value; *inline_val set for the second form. */
static const char *match_opt(const char *arg, const char **inline_val)
{
    *inline_val = NULL;
    if (strncmp(arg, "--", 2) != 0)
        return NULL;
    const char *name = arg + 2;
    for (size_t i = 0; i < sizeof value_opts / sizeof value_opts[0]; i++) {
        size_t n = strlen(value_opts[i]);
        if (strncmp(name, value_opts[i], n) == 0) {
            if (name[n] == '\0')
                return value_opts[i];
            if (name[n] == '=') {
                *inline_val = name + n + 1;
                return value_opts[i];
            }
        }
    }
    return NULL;
}

cachetd_cfg_status_t cachetd_config_load(cachetd_config_t *cfg, int argc, char **argv, char *err,
                                         size_t err_cap)
{
    cachetd_config_defaults(cfg);
    /* Pass 1: --help, --version, --config. */
    const char *conf = NULL;
    bool use_cache = true;
    for (int i = 1; i < argc; i++) {
        const char *iv;
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
            return CACHETD_CFG_HELP;
        if (strcmp(argv[i], "--version") == 0)
            return CACHETD_CFG_VERSION;
        if (strcmp(argv[i], "--no-cache") == 0) {
            use_cache = false;
            continue;
        }
        const char *name = match_opt(argv[i], &iv);
        if (name == NULL) {
            snprintf(err, err_cap, "unknown argument '%s' (try --help)", argv[i]);
            return CACHETD_CFG_ERROR;
        }
        if (iv == NULL) {
            if (i + 1 >= argc) {
                snprintf(err, err_cap, "--%s needs a value", name);
                return CACHETD_CFG_ERROR;
            }
            iv = argv[++i];
        }
        if (strcmp(name, "config") == 0)
            conf = iv;
    }
    if (conf != NULL) {
        if (!load_file(cfg, conf, true, err, err_cap))
            return CACHETD_CFG_ERROR;
    } else {
        char path[PATH_MAX];
        const char *xdg = getenv("XDG_CONFIG_HOME"), *home = getenv("HOME");
        int n = -1;
        if (xdg != NULL && xdg[0] == '/')
            n = snprintf(path, sizeof path, "%s/cachet/cachetd.conf", xdg);
        else if (home != NULL && home[0] == '/')
            n = snprintf(path, sizeof path, "%s/.config/cachet/cachetd.conf", home);
        if (n > 0 && (size_t)n < sizeof path && !load_file(cfg, path, false, err, err_cap))
            return CACHETD_CFG_ERROR;
    }
    /* Pass 2: the command line wins. */
    for (int i = 1; i < argc; i++) {
        const char *iv;
        if (strcmp(argv[i], "--no-cache") == 0)
            continue;
        const char *name = match_opt(argv[i], &iv);
        if (iv == NULL)
            iv = argv[++i];
        if (strcmp(name, "config") == 0)
            continue;
        if (!cachetd_config_set(cfg, name, iv, err, err_cap))
            return CACHETD_CFG_ERROR;
    }
    cfg->use_cache = use_cache;
    return CACHETD_CFG_OK;
}

/* $VAR/suffix or $HOME/home_suffix/suffix into out. */
static bool xdg_path(char *out, size_t cap, const char *var, const char *home_sub,
                     const char *suffix)
{
    const char *v = getenv(var), *home = getenv("HOME");
    int n;
    if (v != NULL && v[0] == '/')
        n = snprintf(out, cap, "%s/%s", v, suffix);
    else if (home != NULL && home[0] == '/')
        n = snprintf(out, cap, "%s/%s/%s", home, home_sub, suffix);
    else
        return false;
    return n > 0 && (size_t)n < cap;
}

bool cachetd_config_finish(cachetd_config_t *cfg, char *err, size_t err_cap)
{
    if (cfg->socket_path[0] == '\0') {
        const char *rt = getenv("XDG_RUNTIME_DIR");
        char tmp[PATH_MAX];
        int n;
        if (rt != NULL && rt[0] == '/')
            n = snprintf(tmp, sizeof tmp, "%s/cachet/cachetd.sock", rt);
        else
            n = snprintf(tmp, sizeof tmp, "/run/user/%ld/cachet/cachetd.sock", (long)getuid());
        if (n < 0 || (size_t)n >= sizeof cfg->socket_path) {
            snprintf(err, err_cap, "socket path too long (max %zu): use --socket",
                     sizeof cfg->socket_path - 1);
            return false;
        }
        memcpy(cfg->socket_path, tmp, (size_t)n + 1);
    }
    if (cfg->audit_log[0] == '\0' &&
        !xdg_path(cfg->audit_log, sizeof cfg->audit_log, "XDG_STATE_HOME", ".local/state",
                  "cachet/audit.log")) {
        snprintf(err, err_cap, "no XDG_STATE_HOME or HOME: use --audit-log");
        return false;
    }
    if (cfg->device_pin[0] == '\0') {
        /* cachetd's state directory: where the audit log is */
        const char *slash = strrchr(cfg->audit_log, '/');
        size_t dl = slash != NULL ? (size_t)(slash - cfg->audit_log) : 1;
        int n = snprintf(cfg->device_pin, sizeof cfg->device_pin, "%.*s/device.pin", (int)dl,
                         slash != NULL ? cfg->audit_log : ".");
        if (n < 0 || (size_t)n >= sizeof cfg->device_pin) {
            snprintf(err, err_cap, "device pin path too long: use --device-pin");
            return false;
        }
    }
    if (cfg->trust[0] == '\0') {
        char p[PATH_MAX];
        struct stat st;
        if (xdg_path(p, sizeof p, "XDG_CONFIG_HOME", ".config", "cachet/trust.pem") &&
            stat(p, &st) == 0)
            snprintf(cfg->trust, sizeof cfg->trust, "%s", p);
        else if (stat("/etc/cachet/trust.pem", &st) == 0)
            snprintf(cfg->trust, sizeof cfg->trust, "/etc/cachet/trust.pem");
    }
    return true;
}
