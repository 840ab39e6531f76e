/* sim_loop: cachet-sim's command line, start-up and single-threaded poll() main
 * loop. Events from the three sockets are delivered to the firmware as they
 * come (each handler calls app_poll() after its event), and app_poll() runs at
 * least every APP_POLL_PERIOD_US (app.h). SIGTERM/SIGINT end the loop cleanly:
 * the signals stay blocked except inside ppoll(), so none is lost. */
#include "sim.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "app.h"

#define SIM_POLLFDS_MAX 16

static volatile sig_atomic_t sim_stop;
static sigset_t sim_unblocked; /* the signal mask inside ppoll */

static void on_signal(int sig)
{
    sim_stop = sig;
}

static void usage(FILE *out)
{
    fputs("usage: cachet-sim --dir DIR [--log FILE] [--unplugged] [--verbose|--trace-data]\n"
          "                  [--capture FILE] [--flash FILE] [--auto-confirm]\n"
          "  Runs the Cachet appliance firmware on the simulated board.\n"
          "  DIR/usb.sock       virtual USB cable (host side: drivers/ifd sock:PATH)\n"
          "  DIR/contacts.sock  card contacts (cachet-card connects)\n"
          "  DIR/control.sock   control channel (cachet-sim-ctl)\n"
          "  DIR/cachet-sim.pid written once the sockets listen\n"
          "  --unplugged        start detached from USB (until `plug`)\n"
          "  --verbose          debug log (events and transfer sizes)\n"
          "  --trace-data       debug log with the bytes (may show PINs: tests only)\n"
          "  --capture FILE     write every USB cable frame, both directions, to FILE\n"
          "                     (docs/simulation.md §1 framing; tests check that no PIN\n"
          "                     crosses the cable)\n"
          "  --flash FILE       the appliance's flash (device key, receipt counter);\n"
          "                     default DIR/flash.bin, created erased when missing\n"
          "  --auto-confirm     press OK by itself on every signature confirmation\n"
          "                     (tests written before the gate; never for real use)\n",
          out);
}

static bool write_pid_file(const char *path)
{
    char tmp[600];
    char text[32];
    int n = snprintf(tmp, sizeof tmp, "%s.tmp", path);
    if (n < 0 || (size_t)n >= sizeof tmp)
        return false;
    int len = snprintf(text, sizeof text, "%ld\n", (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return false;
    bool ok = write(fd, text, (size_t)len) == (ssize_t)len;
    ok = close(fd) == 0 && ok;
    if (!ok || rename(tmp, path) != 0) {
        unlink(tmp);
        return false;
    }
    return true;
}

bool sim_stopping(void)
{
    return sim_stop != 0;
}

int sim_ppoll(struct pollfd *fds, size_t n, uint64_t timeout_us)
{
    struct timespec ts = {.tv_sec = (time_t)(timeout_us / 1000000u),
                          .tv_nsec = (long)(timeout_us % 1000000u) * 1000L};
    return ppoll(fds, (nfds_t)n, &ts, &sim_unblocked);
}

static void run_loop(void)
{
    sigset_t unblocked;
    sigprocmask(SIG_SETMASK, NULL, &unblocked);
    sigdelset(&unblocked, SIGTERM);
    sigdelset(&unblocked, SIGINT);
    sim_unblocked = unblocked;

    uint64_t next_poll = sim_now_us() + APP_POLL_PERIOD_US;
    while (!sim_stop) {
        struct pollfd fds[SIM_POLLFDS_MAX];
        size_t nu = sim_usb_pollfds(fds, 2);
        size_t ni = sim_icc_pollfds(fds + nu, 2);
        size_t nc = sim_control_pollfds(fds + nu + ni, SIM_POLLFDS_MAX - nu - ni);

        uint64_t now = sim_now_us();
        uint64_t left = next_poll > now ? next_poll - now : 0;
        struct timespec ts = {.tv_sec = (time_t)(left / 1000000u),
                              .tv_nsec = (long)(left % 1000000u) * 1000L};
        int r = ppoll(fds, (nfds_t)(nu + ni + nc), &ts, &unblocked);
        if (r < 0 && errno != EINTR) {
            sim_log(SIM_LOG_ERROR, "poll: %s", strerror(errno));
            return;
        }
        if (r > 0) {
            sim_usb_handle(fds, nu);
            sim_icc_handle(fds + nu, ni);
            sim_control_handle(fds + nu + ni, nc);
        }
        now = sim_now_us();
        if (now >= next_poll) {
            app_poll();
            next_poll = now + APP_POLL_PERIOD_US;
        }
    }
    sim_log(SIM_LOG_INFO, "stopping on signal %d", (int)sim_stop);
}

int sim_run(int argc, char **argv)
{
    static const struct option opts[] = {
        {"dir", required_argument, NULL, 'd'},
        {"log", required_argument, NULL, 'l'},
        {"unplugged", no_argument, NULL, 'u'},
        {"verbose", no_argument, NULL, 'v'},
        {"trace-data", no_argument, NULL, 't'},
        {"capture", required_argument, NULL, 'c'},
        {"flash", required_argument, NULL, 'f'},
        {"auto-confirm", no_argument, NULL, 'a'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *dir = NULL;
    const char *log_path = NULL;
    const char *capture_path = NULL;
    const char *flash_path = NULL;
    bool plugged = true;
    bool verbose = false;
    bool trace = false;
    int c;

    optind = 1;
    while ((c = getopt_long(argc, argv, "d:l:uvtc:f:ah", opts, NULL)) != -1) {
        switch (c) {
        case 'd': dir = optarg; break;
        case 'l': log_path = optarg; break;
        case 'u': plugged = false; break;
        case 'v': verbose = true; break;
        case 't': trace = true; break;
        case 'c': capture_path = optarg; break;
        case 'f': flash_path = optarg; break;
        case 'a': sim_control_set_auto_confirm(true); break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (dir == NULL || optind != argc) {
        usage(stderr);
        return 2;
    }
    if (!sim_log_open(log_path, verbose, trace)) {
        fprintf(stderr, "cachet-sim: cannot open log %s: %s\n", log_path,
                strerror(errno));
        return 1;
    }
    if (capture_path != NULL && !sim_capture_open(capture_path)) {
        sim_log(SIM_LOG_ERROR, "cannot open the capture %s: %s", capture_path, strerror(errno));
        sim_log_close();
        return 1;
    }
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        sim_log(SIM_LOG_ERROR, "cannot create %s: %s", dir, strerror(errno));
        sim_log_close();
        return 1;
    }
    /* The flash (device key, receipt counter) before the firmware boots. */
    char flash_default[600];
    int fl = snprintf(flash_default, sizeof flash_default, "%s/flash.bin", dir);
    if (flash_path == NULL && fl > 0 && (size_t)fl < sizeof flash_default)
        flash_path = flash_default;
    if (flash_path == NULL || !sim_flash_open(flash_path)) {
        sim_log(SIM_LOG_ERROR, "cannot open the flash file %s: %s",
                flash_path ? flash_path : "(path too long)", strerror(errno));
        sim_capture_close();
        sim_log_close();
        return 1;
    }

    /* Signals: a flag, delivered only inside ppoll (no lost wake-up). */
    sigset_t block;
    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGINT);
    sigprocmask(SIG_BLOCK, &block, NULL);
    sigprocmask(SIG_SETMASK, NULL, &sim_unblocked);
    sigdelset(&sim_unblocked, SIGTERM);
    sigdelset(&sim_unblocked, SIGINT);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    char pid_path[600];
    int n = snprintf(pid_path, sizeof pid_path, "%s/cachet-sim.pid", dir);
    int rc = 1;
    char ctl_path[600];
    int m = snprintf(ctl_path, sizeof ctl_path, "%s/control.sock", dir);
    if (n < 0 || (size_t)n >= sizeof pid_path || m < 0 || (size_t)m >= sizeof ctl_path) {
        sim_log(SIM_LOG_ERROR, "directory path too long");
    } else if (sim_sock_alive(ctl_path)) {
        sim_log(SIM_LOG_ERROR, "another cachet-sim is running in %s", dir);
    } else if (!sim_usb_open(dir, plugged) || !sim_icc_open(dir) ||
               !sim_control_open(dir)) {
        sim_log(SIM_LOG_ERROR, "cannot create the sockets in %s", dir);
    } else {
        app_init();
        if (!write_pid_file(pid_path)) {
            sim_log(SIM_LOG_ERROR, "cannot write %s: %s", pid_path, strerror(errno));
        } else {
            sim_log(SIM_LOG_INFO, "started in %s (usb %s)", dir,
                    plugged ? "plugged" : "unplugged");
            app_poll();
            run_loop();
            unlink(pid_path);
            rc = 0;
        }
    }
    sim_control_close();
    sim_icc_close();
    sim_usb_close();
    sim_capture_close();
    sim_flash_close();
    sim_log(SIM_LOG_INFO, "stopped");
    sim_log_close();
    return rc;
}
