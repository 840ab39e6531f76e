/* cachet-sim-ctl: drives a running cachet-sim (docs/simulation.md §4): card
 * processes in and out of the slot, plug/unplug, status, screen, keys.
 * Exit status: 0 OK, 1 refused (ERR), 2 usage error, 3 cachet-sim not running.
 * Messages are in French unless CACHET_LANG=en. */
#include "ctl_conf.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum { EXIT_OK = 0, EXIT_ERR = 1, EXIT_USAGE = 2, EXIT_DOWN = 3 };

#define ANSWER_MAX 8192
#define REQUEST_TIMEOUT_MS 15000 /* the board answers between card exchanges */
#define STATE_DEADLINE_MS 5000   /* card insert/remove: docs/simulation.md §4 */
#define STATE_POLL_MS 10
#define CONF_MAX 16384
#define DEFAULT_PROFILE "cps-rpps"

static bool lang_en;

static void msgf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void msgf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
}

/* Prints "cachet-sim-ctl : <French>" (or the English text) to stderr. Both
 * texts are literals so the compiler checks them against the arguments. */
#define MSG(fr, en, ...)                                                       \
    (lang_en ? msgf("cachet-sim-ctl: " en "\n", ##__VA_ARGS__)                 \
             : msgf("cachet-sim-ctl : " fr "\n", ##__VA_ARGS__))

static void usage(void)
{
    fputs(lang_en
              ? "usage: cachet-sim-ctl COMMAND\n"
              : "utilisation : cachet-sim-ctl COMMANDE\n",
          stderr);
    fputs("  card insert [PROFILE]\n"
          "  card remove\n"
          "  card info\n"
          "  card fault mute|garbage|truncate   (tests: the card's next answer goes wrong)\n"
          "  unplug | plug\n"
          "  status\n"
          "  screen [--json]\n"
          "  key 0..9|ok|cancel|clear\n"
          "env: CACHET_SIM_DIR CACHET_SIM_PKI CACHET_CARD_BIN CACHET_CARD_PROFILE\n"
          "     CACHET_CARD_TIMING CACHET_LANG=en\n",
          stderr);
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void pause_ms(int ms)
{
    (void)poll(NULL, 0, ms);
}

static bool path_join(char *out, size_t cap, const char *a, const char *b)
{
    int n = snprintf(out, cap, "%s/%s", a, b);
    return n > 0 && (size_t)n < cap;
}

/* ---- the control channel (§3) ---- */

typedef struct {
    char text[ANSWER_MAX]; /* answer lines without the final line */
    char reason[256];      /* after "ERR " */
} answer_t;

/* Sends one command and reads the answer. EXIT_OK, EXIT_ERR (reason set) or
 * EXIT_DOWN (cachet-sim not running or it hung up). */
static int request(const char *dir, const char *cmd, answer_t *a)
{
    struct sockaddr_un sa;
    char path[PATH_MAX];

    a->text[0] = '\0';
    a->reason[0] = '\0';
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    if (!path_join(path, sizeof path, dir, "control.sock") ||
        strlen(path) >= sizeof sa.sun_path) {
        MSG("chemin trop long : %s", "path too long: %s", dir);
        return EXIT_DOWN;
    }
    memcpy(sa.sun_path, path, strlen(path) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        if (fd >= 0)
            close(fd);
        return EXIT_DOWN;
    }
    char line[300];
    int n = snprintf(line, sizeof line, "%s\n", cmd);
    if (n < 0 || (size_t)n >= sizeof line ||
        send(fd, line, (size_t)n, MSG_NOSIGNAL) != n) {
        close(fd);
        return EXIT_DOWN;
    }

    static char buf[ANSWER_MAX + 512];
    size_t len = 0;
    size_t done = 0; /* bytes of buf already split into lines */
    size_t text_len = 0;
    uint64_t deadline = now_ms() + REQUEST_TIMEOUT_MS;
    int rc = EXIT_DOWN;
    for (;;) {
        char *nl;
        while ((nl = memchr(buf + done, '\n', len - done)) != NULL) {
            *nl = '\0';
            const char *l = buf + done;
            size_t llen = (size_t)(nl - l);
            done += llen + 1;
            if (strcmp(l, "OK") == 0) {
                rc = EXIT_OK;
                goto out;
            }
            if (strncmp(l, "ERR", 3) == 0 && (l[3] == ' ' || l[3] == '\0')) {
                snprintf(a->reason, sizeof a->reason, "%s", l[3] ? l + 4 : "");
                rc = EXIT_ERR;
                goto out;
            }
            if (text_len + llen + 2 > sizeof a->text)
                goto out; /* answer over our cap: treat as a broken board */
            memcpy(a->text + text_len, l, llen);
            text_len += llen;
            a->text[text_len++] = '\n';
            a->text[text_len] = '\0';
        }
        if (len == sizeof buf - 1)
            goto out;
        uint64_t now = now_ms();
        if (now >= deadline)
            goto out;
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int r = poll(&pfd, 1, (int)(deadline - now));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            goto out;
        ssize_t got = read(fd, buf + len, sizeof buf - 1 - len);
        if (got <= 0)
            goto out;
        len += (size_t)got;
    }
out:
    close(fd);
    return rc;
}

static const char *reason_text(const char *reason)
{
    static const struct {
        const char *en, *fr;
    } tr[] = {
        {"unknown command", "commande inconnue"},
        {"bad key", "touche inconnue (0 à 9, ok, cancel, clear)"},
        {"missing key", "touche manquante"},
        {"key queue full", "trop de touches en attente"},
        {"line too long", "commande trop longue"},
        {"too many arguments", "trop d'arguments"},
        {"bad screen option", "option d'écran inconnue"},
        {"empty command", "commande vide"},
    };
    if (lang_en)
        return reason;
    for (size_t i = 0; i < sizeof tr / sizeof tr[0]; i++)
        if (strcmp(reason, tr[i].en) == 0)
            return tr[i].fr;
    return reason;
}

static int report(int rc, const answer_t *a)
{
    if (rc == EXIT_ERR)
        MSG("%s", "%s", reason_text(a->reason));
    else if (rc == EXIT_DOWN)
        MSG("cachet-sim ne fonctionne pas (CACHET_SIM_DIR)",
            "cachet-sim is not running (CACHET_SIM_DIR)");
    return rc;
}

/* Forwards a command and prints its answer lines. */
static int forward(const char *dir, const char *cmd)
{
    static answer_t a;
    int rc = request(dir, cmd, &a);
    if (rc == EXIT_OK)
        fputs(a.text, stdout);
    return report(rc, &a);
}

/* Reads `card=` from status: 1 present, 0 absent, or -EXIT_* on failure. */
static int card_state(const char *dir)
{
    static answer_t a;
    char v[32];
    int rc = request(dir, "status", &a);
    if (rc != EXIT_OK)
        return -rc;
    if (!ctl_field_get(a.text, "card", v, sizeof v))
        return -EXIT_ERR;
    return strcmp(v, "present") == 0;
}

/* Polls status until the card is (want) present; EXIT_* */
static int wait_card(const char *dir, bool want, pid_t child)
{
    uint64_t deadline = now_ms() + STATE_DEADLINE_MS;
    for (;;) {
        int st = card_state(dir);
        if (st < 0)
            return -st;
        if (st == (want ? 1 : 0))
            return EXIT_OK;
        if (child > 0 && waitpid(child, NULL, WNOHANG) == child)
            return EXIT_ERR; /* the card process died */
        if (now_ms() >= deadline)
            return EXIT_ERR;
        pause_ms(STATE_POLL_MS);
    }
}

/* ---- files in CACHET_SIM_DIR ---- */

static bool read_small_file(const char *path, char *out, size_t cap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    size_t len = 0;
    for (;;) {
        ssize_t n = read(fd, out + len, cap - 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        len += (size_t)n;
        if (len == cap - 1)
            break;
    }
    close(fd);
    out[len] = '\0';
    return len < cap - 1 || cap == 1;
}

static bool write_file_atomic(const char *path, const char *text)
{
    char tmp[PATH_MAX];
    int n = snprintf(tmp, sizeof tmp, "%s.tmp", path);
    if (n < 0 || (size_t)n >= sizeof tmp)
        return false;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return false;
    size_t len = strlen(text);
    bool ok = write(fd, text, len) == (ssize_t)len;
    ok = close(fd) == 0 && ok;
    if (!ok || rename(tmp, path) != 0) {
        unlink(tmp);
        return false;
    }
    return true;
}

/* The pid in DIR/card.pid if that process is alive and is a card connected to
 * this DIR's contacts socket (guards against a recycled pid); else 0. */
static pid_t card_pid(const char *dir)
{
    char path[PATH_MAX], text[32], sock[PATH_MAX];
    static char cmdline[8192];

    if (!path_join(path, sizeof path, dir, "card.pid") ||
        !read_small_file(path, text, sizeof text))
        return 0;
    char *end;
    long pid = strtol(text, &end, 10);
    if (end == text || (*end != '\n' && *end != '\0') || pid <= 1 || pid > INT_MAX)
        return 0;
    int n = snprintf(path, sizeof path, "/proc/%ld/cmdline", pid);
    if (n < 0 || (size_t)n >= sizeof path || !path_join(sock, sizeof sock, dir, "contacts.sock"))
        return 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t len = read(fd, cmdline, sizeof cmdline - 1);
    close(fd);
    if (len <= 0)
        return 0; /* gone, or a zombie (empty cmdline) */
    cmdline[len] = '\0';
    for (ssize_t i = 0; i < len; i += (ssize_t)strlen(cmdline + i) + 1)
        if (strcmp(cmdline + i, sock) == 0)
            return (pid_t)pid;
    return 0;
}

/* True once pid has exited (gone, or a zombie nobody reaped yet). */
static bool process_gone(pid_t pid)
{
    char path[64], stat[256];
    if (kill(pid, 0) != 0 && errno == ESRCH)
        return true;
    snprintf(path, sizeof path, "/proc/%ld/stat", (long)pid);
    if (!read_small_file(path, stat, sizeof stat))
        return true;
    const char *p = strrchr(stat, ')'); /* comm may contain spaces */
    return p != NULL && p[1] == ' ' && (p[2] == 'Z' || p[2] == 'X');
}

static bool wait_gone(pid_t pid, int ms)
{
    uint64_t deadline = now_ms() + (uint64_t)ms;
    while (!process_gone(pid)) {
        if (now_ms() >= deadline)
            return false;
        pause_ms(STATE_POLL_MS);
    }
    return true;
}

static void forget_card(const char *dir)
{
    char path[PATH_MAX];
    if (path_join(path, sizeof path, dir, "card.pid"))
        unlink(path);
    if (path_join(path, sizeof path, dir, "card.profile"))
        unlink(path);
}

/* Stops a card process: SIGTERM, then SIGKILL if it lingers. */
static bool stop_card(pid_t pid)
{
    if (kill(pid, SIGTERM) != 0 && errno == ESRCH)
        return true;
    if (wait_gone(pid, STATE_DEADLINE_MS))
        return true;
    kill(pid, SIGKILL);
    return wait_gone(pid, 1000);
}

/* ---- card insert / remove / info ---- */

static bool card_bin_path(char *out, size_t cap)
{
    const char *env = getenv("CACHET_CARD_BIN");
    if (env != NULL && env[0] != '\0') {
        int n = snprintf(out, cap, "%s", env);
        return n > 0 && (size_t)n < cap;
    }
    /* Default: cachet-card beside our own executable. */
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0)
        return false;
    self[n] = '\0';
    char *slash = strrchr(self, '/');
    if (slash == NULL)
        return false;
    *slash = '\0';
    return path_join(out, cap, self, "cachet-card");
}

/* Starts the card process detached (own session, stdio on /dev/null). */
static pid_t spawn_card(const char *bin, char *const argv[])
{
    int pipefd[2];
    if (pipe2(pipefd, O_CLOEXEC) != 0)
        return -1;
    pid_t pid = fork();
    if (pid < 0) {
        close(pipefd[0]);
        close(pipefd[1]);
        return -1;
    }
    if (pid == 0) {
        close(pipefd[0]);
        setsid();
        int nul = open("/dev/null", O_RDWR);
        if (nul >= 0) {
            dup2(nul, 0);
            dup2(nul, 1);
            dup2(nul, 2);
            if (nul > 2)
                close(nul);
        }
        execv(bin, argv);
        int e = errno;
        ssize_t w = write(pipefd[1], &e, sizeof e);
        (void)w;
        _exit(127);
    }
    close(pipefd[1]);
    int e = 0;
    ssize_t r;
    do
        r = read(pipefd[0], &e, sizeof e);
    while (r < 0 && errno == EINTR);
    close(pipefd[0]);
    if (r == (ssize_t)sizeof e) {
        waitpid(pid, NULL, 0);
        errno = e;
        return -1;
    }
    return pid;
}

static int card_insert(const char *dir, const char *pki, const char *name)
{
    char profile_dir[PATH_MAX], conf[PATH_MAX], bin[PATH_MAX], state[PATH_MAX];
    char sock[PATH_MAX], log[PATH_MAX], path[PATH_MAX], tmp[PATH_MAX], fault[PATH_MAX];
    static char conf_text[CONF_MAX];

    if (!ctl_profile_name_ok(name)) {
        MSG("nom de profil invalide : %s", "bad profile name: %s", name);
        return EXIT_USAGE;
    }
    int n = snprintf(profile_dir, sizeof profile_dir, "%s/profiles/%s", pki, name);
    if (n < 0 || (size_t)n >= sizeof profile_dir ||
        !path_join(conf, sizeof conf, profile_dir, "profile.conf") ||
        !read_small_file(conf, conf_text, sizeof conf_text)) {
        MSG("profil de carte inconnu : %s (%s)", "unknown card profile: %s (%s)",
            name, conf);
        return EXIT_ERR;
    }
    int st = card_state(dir);
    if (st < 0)
        return report(-st, &(answer_t){{0}, {0}});
    if (st == 1 || card_pid(dir) > 0) {
        MSG("une carte est déjà dans le lecteur", "a card is already in the reader");
        return EXIT_ERR;
    }
    forget_card(dir);
    if (!card_bin_path(bin, sizeof bin) || access(bin, X_OK) != 0) {
        MSG("programme de carte introuvable : %s (CACHET_CARD_BIN)",
            "card program not found: %s (CACHET_CARD_BIN)", bin);
        return EXIT_ERR;
    }
    n = snprintf(tmp, sizeof tmp, "card-%s.state", name);
    if (n < 0 || (size_t)n >= sizeof tmp || !path_join(state, sizeof state, dir, tmp) ||
        !path_join(sock, sizeof sock, dir, "contacts.sock") ||
        !path_join(log, sizeof log, dir, "card.log") ||
        !path_join(fault, sizeof fault, dir, "card.fault")) {
        MSG("chemin trop long : %s", "path too long: %s", dir);
        return EXIT_USAGE;
    }
    const char *timing = getenv("CACHET_CARD_TIMING");
    char *argv[14];
    size_t ac = 0;
    argv[ac++] = bin;
    argv[ac++] = "--profile";
    argv[ac++] = profile_dir;
    argv[ac++] = "--socket";
    argv[ac++] = sock;
    argv[ac++] = "--state";
    argv[ac++] = state;
    if (timing != NULL && strcmp(timing, "1") == 0)
        argv[ac++] = "--timing";
    argv[ac++] = "--log";
    argv[ac++] = log;
    argv[ac++] = "--fault-file";
    argv[ac++] = fault;
    argv[ac] = NULL;

    pid_t pid = spawn_card(bin, argv);
    if (pid < 0) {
        MSG("impossible de lancer %s : %s", "cannot start %s: %s", bin,
            strerror(errno));
        return EXIT_ERR;
    }
    char text[PATH_MAX];
    snprintf(text, sizeof text, "%ld\n", (long)pid);
    bool saved = path_join(path, sizeof path, dir, "card.pid") &&
                 write_file_atomic(path, text);
    snprintf(text, sizeof text, "%s\n", name);
    saved = saved && path_join(path, sizeof path, dir, "card.profile") &&
            write_file_atomic(path, text);
    if (!saved) {
        MSG("impossible d'écrire dans %s : %s", "cannot write in %s: %s", dir,
            strerror(errno));
        stop_card(pid);
        forget_card(dir);
        return EXIT_ERR;
    }
    int rc = wait_card(dir, true, pid);
    if (rc == EXIT_OK)
        return EXIT_OK;
    if (process_gone(pid))
        MSG("la carte s'est arrêtée (voir %s)", "the card stopped (see %s)", log);
    else if (rc == EXIT_ERR)
        MSG("la carte n'est pas apparue dans le lecteur (voir %s)",
            "the card did not show up in the reader (see %s)", log);
    else
        report(rc, &(answer_t){{0}, {0}});
    stop_card(pid);
    forget_card(dir);
    return rc;
}

/* Arms a fault on the card's next answer (tests of the reader's error paths). */
static int card_fault(const char *dir, const char *kind)
{
    if (strcmp(kind, "mute") != 0 && strcmp(kind, "garbage") != 0 &&
        strcmp(kind, "truncate") != 0) {
        usage();
        return EXIT_USAGE;
    }
    pid_t pid = card_pid(dir);
    char path[PATH_MAX];
    if (pid <= 0) {
        MSG("aucune carte dans le lecteur", "no card in the reader");
        return EXIT_ERR;
    }
    if (!path_join(path, sizeof path, dir, "card.fault"))
        return EXIT_USAGE;
    FILE *f = fopen(path, "w");
    if (f == NULL || fprintf(f, "%s\n", kind) < 0 || fclose(f) != 0) {
        MSG("impossible d'écrire %s", "cannot write %s", path);
        return EXIT_ERR;
    }
    if (kill(pid, SIGUSR1) != 0) {
        MSG("la carte (pid %ld) ne répond pas", "the card (pid %ld) does not answer", (long)pid);
        return EXIT_ERR;
    }
    return EXIT_OK;
}

static int card_remove(const char *dir)
{
    pid_t pid = card_pid(dir);
    if (pid <= 0) {
        forget_card(dir);
        int st = card_state(dir);
        if (st < 0)
            return report(-st, &(answer_t){{0}, {0}});
        if (st == 1)
            MSG("la carte du lecteur n'a pas été insérée par cachet-sim-ctl",
                "the card in the reader was not inserted by cachet-sim-ctl");
        else
            MSG("aucune carte dans le lecteur", "no card in the reader");
        return EXIT_ERR;
    }
    if (!stop_card(pid)) {
        MSG("la carte (pid %ld) ne s'arrête pas", "the card (pid %ld) does not stop",
            (long)pid);
        return EXIT_ERR;
    }
    forget_card(dir);
    int rc = wait_card(dir, false, 0);
    if (rc == EXIT_ERR)
        MSG("le lecteur voit toujours une carte", "the reader still sees a card");
    else if (rc != EXIT_OK)
        report(rc, &(answer_t){{0}, {0}});
    return rc;
}

static int card_info(const char *dir, const char *pki)
{
    char path[PATH_MAX], name[CTL_PROFILE_NAME_MAX + 2], pin[64], puk[64];
    static char conf_text[CONF_MAX];

    if (card_pid(dir) <= 0 || !path_join(path, sizeof path, dir, "card.profile") ||
        !read_small_file(path, name, sizeof name)) {
        MSG("aucune carte dans le lecteur", "no card in the reader");
        return EXIT_ERR;
    }
    name[strcspn(name, "\n")] = '\0';
    int n = snprintf(path, sizeof path, "%s/profiles/%s/profile.conf", pki, name);
    if (!ctl_profile_name_ok(name) || n < 0 || (size_t)n >= sizeof path ||
        !read_small_file(path, conf_text, sizeof conf_text)) {
        MSG("profil de carte illisible : %s", "cannot read card profile: %s", path);
        return EXIT_ERR;
    }
    if (!ctl_conf_get(conf_text, "pin", pin, sizeof pin) ||
        !ctl_conf_get(conf_text, "puk", puk, sizeof puk)) {
        MSG("pin ou puk absent de %s", "pin or puk missing from %s", path);
        return EXIT_ERR;
    }
    printf("profile=%s pin=%s puk=%s\n", name, pin, puk);
    return EXIT_OK;
}

/* ---- plug / unplug ---- */

static int plug(const char *dir, bool plugged)
{
    /* pcscd keeps a reader.conf reader listed; our driver reports it
     * unavailable while the cable is gone and reconnects by itself. */
    return forward(dir, plugged ? "plug" : "unplug");
}

int main(int argc, char **argv)
{
    const char *lang = getenv("CACHET_LANG");
    lang_en = lang != NULL && strncmp(lang, "en", 2) == 0;

    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage();
        return argc < 2 ? EXIT_USAGE : EXIT_OK;
    }
    const char *cmd = argv[1];
    const char *dir = getenv("CACHET_SIM_DIR");
    if (dir == NULL || dir[0] == '\0') {
        MSG("CACHET_SIM_DIR n'est pas défini", "CACHET_SIM_DIR is not set");
        return EXIT_USAGE;
    }

    if (strcmp(cmd, "status") == 0 && argc == 2)
        return forward(dir, "status");
    if (strcmp(cmd, "unplug") == 0 && argc == 2)
        return plug(dir, false);
    if (strcmp(cmd, "plug") == 0 && argc == 2)
        return plug(dir, true);
    if (strcmp(cmd, "screen") == 0 && argc == 2)
        return forward(dir, "screen");
    if (strcmp(cmd, "screen") == 0 && argc == 3 && strcmp(argv[2], "--json") == 0)
        return forward(dir, "screen --json");
    if (strcmp(cmd, "key") == 0 && argc == 3) {
        char line[64];
        if (strlen(argv[2]) > 16 || strpbrk(argv[2], " \t\r\n") != NULL) {
            MSG("%s", "%s", reason_text("bad key"));
            return EXIT_USAGE;
        }
        snprintf(line, sizeof line, "key %s", argv[2]);
        return forward(dir, line);
    }
    if (strcmp(cmd, "card") == 0 && argc >= 3) {
        const char *pki = getenv("CACHET_SIM_PKI");
        const char *sub = argv[2];
        bool needs_pki = strcmp(sub, "insert") == 0 || strcmp(sub, "info") == 0;
        if (needs_pki && (pki == NULL || pki[0] == '\0')) {
            MSG("CACHET_SIM_PKI n'est pas défini", "CACHET_SIM_PKI is not set");
            return EXIT_USAGE;
        }
        if (strcmp(sub, "insert") == 0 && argc <= 4) {
            const char *name = argc == 4 ? argv[3] : getenv("CACHET_CARD_PROFILE");
            if (name == NULL || name[0] == '\0')
                name = DEFAULT_PROFILE;
            return card_insert(dir, pki, name);
        }
        if (strcmp(sub, "remove") == 0 && argc == 3)
            return card_remove(dir);
        if (strcmp(sub, "fault") == 0 && argc == 4)
            return card_fault(dir, argv[3]);
        if (strcmp(sub, "info") == 0 && argc == 3)
            return card_info(dir, pki);
    }
    usage();
    return EXIT_USAGE;
}
