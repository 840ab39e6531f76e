/* sim_flash: port_flash.h on the posix board: the firmware's flash region is
 * a file (cachet-sim --flash FILE, default DIR/flash.bin), 4 sectors of 2 KB,
 * with NOR semantics (erase = 0xFF, programming only clears bits) so the
 * firmware's flash code runs as on the device. Every change is written
 * through and fdatasync'ed: it survives a restart of cachet-sim. A missing
 * file is a new board (all erased); a short one is padded with 0xFF. */
#include "sim.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "port_flash.h"

#define SIM_FLASH_SECTOR  2048u
#define SIM_FLASH_SECTORS 4u
#define SIM_FLASH_SIZE    (SIM_FLASH_SECTOR * SIM_FLASH_SECTORS)

static int sim_flash_fd = -1;

bool sim_flash_open(const char *path)
{
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return false;
    struct stat st;
    if (fstat(fd, &st) != 0) {
        close(fd);
        return false;
    }
    if (st.st_size < (off_t)SIM_FLASH_SIZE) {
        /* Erased flash reads 0xFF. */
        static uint8_t ff[SIM_FLASH_SECTOR];
        memset(ff, 0xFF, sizeof ff);
        for (off_t off = st.st_size; off < (off_t)SIM_FLASH_SIZE;) {
            size_t n = (size_t)((off_t)SIM_FLASH_SIZE - off);
            if (n > sizeof ff)
                n = sizeof ff;
            ssize_t w = pwrite(fd, ff, n, off);
            if (w <= 0) {
                close(fd);
                return false;
            }
            off += w;
        }
        if (fdatasync(fd) != 0) {
            close(fd);
            return false;
        }
        sim_log(st.st_size == 0 ? SIM_LOG_INFO : SIM_LOG_WARN, "flash: %s %s", path,
                st.st_size == 0 ? "created (erased)" : "too short: padded with 0xFF");
    }
    sim_flash_close();
    sim_flash_fd = fd;
    return true;
}

void sim_flash_close(void)
{
    if (sim_flash_fd >= 0)
        close(sim_flash_fd);
    sim_flash_fd = -1;
}

static bool sim_flash_range(uint32_t off, size_t len)
{
    return sim_flash_fd >= 0 && len <= SIM_FLASH_SIZE && off <= SIM_FLASH_SIZE - len;
}

static bool sim_flash_pread(uint8_t *buf, size_t len, uint32_t off)
{
    while (len > 0) {
        ssize_t r = pread(sim_flash_fd, buf, len, off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return false;
        buf += r;
        len -= (size_t)r;
        off += (uint32_t)r;
    }
    return true;
}

static bool sim_flash_pwrite(const uint8_t *buf, size_t len, uint32_t off)
{
    while (len > 0) {
        ssize_t w = pwrite(sim_flash_fd, buf, len, off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return false;
        buf += w;
        len -= (size_t)w;
        off += (uint32_t)w;
    }
    return fdatasync(sim_flash_fd) == 0;
}

uint32_t port_flash_sector_size(void)
{
    return SIM_FLASH_SECTOR;
}

uint32_t port_flash_sectors(void)
{
    return SIM_FLASH_SECTORS;
}

port_status_t port_flash_read(uint32_t off, uint8_t *buf, size_t len)
{
    if (!sim_flash_range(off, len) || (len > 0 && buf == NULL))
        return PORT_ERROR;
    return sim_flash_pread(buf, len, off) ? PORT_OK : PORT_ERROR;
}

port_status_t port_flash_erase(uint32_t sector)
{
    if (sector >= SIM_FLASH_SECTORS || sim_flash_fd < 0)
        return PORT_ERROR;
    uint8_t ff[SIM_FLASH_SECTOR];
    memset(ff, 0xFF, sizeof ff);
    return sim_flash_pwrite(ff, sizeof ff, sector * SIM_FLASH_SECTOR) ? PORT_OK : PORT_ERROR;
}

port_status_t port_flash_write(uint32_t off, const uint8_t *buf, size_t len)
{
    if (!sim_flash_range(off, len) || (len > 0 && buf == NULL))
        return PORT_ERROR;
    uint8_t cur[256];
    while (len > 0) {
        size_t n = len < sizeof cur ? len : sizeof cur;
        if (!sim_flash_pread(cur, n, off))
            return PORT_ERROR;
        for (size_t i = 0; i < n; i++)
            cur[i] &= buf[i]; /* NOR: programming only clears bits */
        if (!sim_flash_pwrite(cur, n, off))
            return PORT_ERROR;
        buf += n;
        len -= n;
        off += (uint32_t)n;
    }
    return PORT_OK;
}
