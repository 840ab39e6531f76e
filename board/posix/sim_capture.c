/* sim_capture: `cachet-sim --capture FILE`, a recording of the virtual USB
 * cable: every frame exactly as it crosses usb.sock (docs/simulation.md §1,
 * 8-byte header whose kind tells the direction: 01 SETUP and 03 OUT from the
 * host, 02 SETUP_DONE and 04 IN from the appliance), appended in order. Tests
 * search it for PIN digits (the PIN must never cross USB). Test-only, like
 * --trace-data: on a real appliance nothing records the cable. */
#include "sim.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

static int cap_fd = -1;
static bool cap_failed;

bool sim_capture_open(const char *path)
{
    if (path == NULL) {
        errno = EINVAL;
        return false;
    }
    cap_fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0600);
    cap_failed = false;
    return cap_fd >= 0;
}

void sim_capture_close(void)
{
    if (cap_fd >= 0) {
        close(cap_fd);
        cap_fd = -1;
    }
}

void sim_capture_frame(const uint8_t *frame, size_t len)
{
    if (cap_fd < 0 || cap_failed || frame == NULL)
        return;
    while (len > 0) {
        ssize_t n = write(cap_fd, frame, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            /* A capture with a hole would mislead its reader: stop it. */
            sim_log(SIM_LOG_ERROR, "capture: write: %s; capture stopped", strerror(errno));
            cap_failed = true;
            return;
        }
        frame += n;
        len -= (size_t)n;
    }
}
