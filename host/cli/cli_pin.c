/* cli_pin: the holder PIN, read once, never echoed, wiped after use. From
 * --pin-fd N (its first line, for scripts) or from /dev/tty with echo off
 * (termios), never from stdin (which may carry the mail). */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "cli.h"

void cli_wipe(void *p, size_t n)
{
    if (p != NULL && n > 0)
        explicit_bzero(p, n);
}

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
    interrupted = sig;
}

/* Reads one line byte by byte (nothing beyond the line is consumed). */
static bool read_line(int fd, char *pin)
{
    size_t n = 0;
    bool too_long = false;
    for (;;) {
        char ch;
        ssize_t r = read(fd, &ch, 1);
        if (r < 0 && errno == EINTR && !interrupted)
            continue;
        if (r <= 0 || ch == '\n')
            break;
        if (ch == '\r')
            continue;
        if (n < CLI_PIN_MAX)
            pin[n++] = ch;
        else
            too_long = true;
        cli_wipe(&ch, sizeof ch);
    }
    pin[n] = '\0';
    if (too_long || n == 0) {
        cli_wipe(pin, CLI_PIN_MAX + 1);
        return false;
    }
    return true;
}

bool cli_pin_from_fd(int fd, char *pin)
{
    return read_line(fd, pin);
}

bool cli_pin_from_tty(const char *prompt, char *pin)
{
    int fd = open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (fd < 0)
        return false;
    struct termios old, quiet;
    if (tcgetattr(fd, &old) != 0) {
        close(fd);
        return false;
    }
    quiet = old;
    quiet.c_lflag &= ~(tcflag_t)(ECHO | ECHOE | ECHOK | ECHONL);
    quiet.c_lflag |= ICANON;
    /* Ctrl-C while echo is off: read() returns, the terminal is restored, then
     * the signal takes its course. */
    struct sigaction sa, old_int, old_term, old_quit;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    interrupted = 0;
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    sigaction(SIGQUIT, &sa, &old_quit);
    bool ok = false;
    if (tcsetattr(fd, TCSAFLUSH, &quiet) == 0) {
        ssize_t w = write(fd, prompt, strlen(prompt));
        (void)w;
        ok = read_line(fd, pin);
        tcsetattr(fd, TCSAFLUSH, &old);
        w = write(fd, "\n", 1);
        (void)w;
    }
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    sigaction(SIGQUIT, &old_quit, NULL);
    close(fd);
    if (interrupted) {
        cli_wipe(pin, CLI_PIN_MAX + 1);
        raise(interrupted);
        return false;
    }
    return ok;
}
