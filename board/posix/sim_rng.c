/* sim_rng: port_rng.h on the posix board, from the kernel's CSPRNG
 * (getrandom(2), blocking only until the pool is initialised at boot). */
#include "sim.h"

#include <errno.h>
#include <sys/random.h>

#include "port_rng.h"

port_status_t port_rng_fill(uint8_t *buf, size_t len)
{
    if (len > 0 && buf == NULL)
        return PORT_ERROR;
    while (len > 0) {
        ssize_t r = getrandom(buf, len, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            sim_log(SIM_LOG_ERROR, "rng: getrandom failed");
            return PORT_ERROR;
        }
        buf += r;
        len -= (size_t)r;
    }
    return PORT_OK;
}
