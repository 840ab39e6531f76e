/* ifd_devname: DEVICENAME parsing (pcscd reader.conf and hotplug forms),
 * Info.plist driver options, and the choice of transport. */
#include <string.h>

#include "ifd_transport.h"

/* Strict unsigned number: base 10 or 16, whole string, bounded. */
static bool parse_num(const char *s, size_t n, int base, uint32_t max, uint32_t *out)
{
    if (n == 0 || n > 10)
        return false;
    uint32_t v = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        uint32_t dgt;
        if (c >= '0' && c <= '9')
            dgt = (uint32_t)(c - '0');
        else if (base == 16 && c >= 'a' && c <= 'f')
            dgt = (uint32_t)(c - 'a' + 10);
        else if (base == 16 && c >= 'A' && c <= 'F')
            dgt = (uint32_t)(c - 'A' + 10);
        else
            return false;
        if (v > (max - dgt) / (uint32_t)base)
            return false;
        v = v * (uint32_t)base + dgt;
    }
    *out = v;
    return true;
}

static ifd_st_t parse_options(const char *s, size_t n, uint32_t *opts)
{
    /* '@'-separated words; deny by default: unknown words are errors. */
    size_t i = 0;
    while (i <= n) {
        size_t j = i;
        while (j < n && s[j] != '@')
            j++;
        size_t w = j - i;
        if (w == 6 && memcmp(s + i, "escape", 6) == 0)
            *opts |= IFD_OPT_ESCAPE;
        else
            return IFD_ST_PARAM;
        i = j + 1;
    }
    return IFD_ST_OK;
}

/* "VVVV" SEP "PPPP" at s; returns the number of characters used, 0 on error. */
static size_t parse_ids(const char *s, size_t n, char sep, uint16_t *vid, uint16_t *pid)
{
    const char *p = memchr(s, sep, n);
    if (!p)
        return 0;
    size_t a = (size_t)(p - s);
    size_t rest = n - a - 1;
    const char *q = p + 1;
    const char *e = memchr(q, ':', rest);
    size_t b = e ? (size_t)(e - q) : rest;
    uint32_t v, d;
    if (!parse_num(s, a, 16, 0xFFFFu, &v) || !parse_num(q, b, 16, 0xFFFFu, &d))
        return 0;
    *vid = (uint16_t)v;
    *pid = (uint16_t)d;
    return a + 1 + b;
}

ifd_st_t ifd_devname_parse(const char *name, ifd_devname_t *out)
{
    IFD_VERIFY(name != NULL && out != NULL, IFD_ST_PARAM);
    memset(out, 0, sizeof *out);
    out->bus = out->addr = out->iface = -1;
    size_t n = strnlen(name, 512);
    IFD_VERIFY(n < 512, IFD_ST_PARAM);

    /* Options after the last '@' ("sock:/x/usb.sock@escape"). */
    const char *at = memchr(name, '@', n);
    size_t body = n;
    if (at) {
        body = (size_t)(at - name);
        ifd_st_t st = parse_options(at + 1, n - body - 1, &out->options);
        IFD_VERIFY(st == IFD_ST_OK, st);
    }

    if (body > 5 && memcmp(name, "sock:", 5) == 0) {
        size_t plen = body - 5;
        IFD_VERIFY(plen < sizeof out->path, IFD_ST_PARAM);
        memcpy(out->path, name + 5, plen);
        out->path[plen] = '\0';
        out->kind = IFD_DEV_SOCK;
        return IFD_ST_OK;
    }
    IFD_VERIFY(body > 4 && memcmp(name, "usb:", 4) == 0, IFD_ST_PARAM);
    const char *s = name + 4;
    size_t left = body - 4;

    /* reader.conf form: usb:VVVV:PPPP */
    size_t used = parse_ids(s, left, ':', &out->vid, &out->pid);
    if (used && used == left) {
        out->kind = IFD_DEV_USB_ID;
        return IFD_ST_OK;
    }
    /* pcscd hotplug forms: usb:VVVV/PPPP[:libudev:IF:PATH | :libusb-1.0:B:A:IF] */
    used = parse_ids(s, left, '/', &out->vid, &out->pid);
    IFD_VERIFY(used != 0, IFD_ST_PARAM);
    s += used;
    left -= used;
    if (left == 0) {
        out->kind = IFD_DEV_USB_ID;
        return IFD_ST_OK;
    }
    uint32_t v;
    if (left > 9 && memcmp(s, ":libudev:", 9) == 0) {
        s += 9;
        left -= 9;
        const char *c = memchr(s, ':', left);
        IFD_VERIFY(c != NULL, IFD_ST_PARAM);
        IFD_VERIFY(parse_num(s, (size_t)(c - s), 10, 255, &v), IFD_ST_PARAM);
        out->iface = (int)v;
        left -= (size_t)(c - s) + 1;
        s = c + 1;
        /* /dev/bus/usb/BBB/DDD */
        static const char pfx[] = "/dev/bus/usb/";
        IFD_VERIFY(left > sizeof pfx - 1 && memcmp(s, pfx, sizeof pfx - 1) == 0, IFD_ST_PARAM);
        s += sizeof pfx - 1;
        left -= sizeof pfx - 1;
        const char *sl = memchr(s, '/', left);
        IFD_VERIFY(sl != NULL, IFD_ST_PARAM);
        IFD_VERIFY(parse_num(s, (size_t)(sl - s), 10, 255, &v), IFD_ST_PARAM);
        out->bus = (int)v;
        left -= (size_t)(sl - s) + 1;
        IFD_VERIFY(parse_num(sl + 1, left, 10, 255, &v), IFD_ST_PARAM);
        out->addr = (int)v;
        out->kind = IFD_DEV_USB_LIBUDEV;
        return IFD_ST_OK;
    }
    if (left > 12 && memcmp(s, ":libusb-1.0:", 12) == 0) {
        s += 12;
        left -= 12;
        int *dst[3] = {&out->bus, &out->addr, &out->iface};
        for (int i = 0; i < 3; i++) {
            const char *c = memchr(s, ':', left);
            size_t w = c ? (size_t)(c - s) : left;
            IFD_VERIFY((i < 2) == (c != NULL), IFD_ST_PARAM);
            IFD_VERIFY(parse_num(s, w, 10, 255, &v), IFD_ST_PARAM);
            *dst[i] = (int)v;
            if (c) {
                left -= w + 1;
                s = c + 1;
            }
        }
        out->kind = IFD_DEV_USB_LIBUSB;
        return IFD_ST_OK;
    }
    return IFD_ST_PARAM;
}

ifd_st_t ifd_plist_driver_options(const char *text, size_t len, uint32_t *opts)
{
    IFD_VERIFY(text != NULL && opts != NULL, IFD_ST_PARAM);
    static const char key[] = "<key>ifdDriverOptions</key>";
    static const char open_tag[] = "<string>";
    const char *k = memmem(text, len, key, sizeof key - 1);
    IFD_VERIFY(k != NULL, IFD_ST_PROTO);
    size_t off = (size_t)(k - text) + sizeof key - 1;
    const char *o = memmem(text + off, len - off, open_tag, sizeof open_tag - 1);
    IFD_VERIFY(o != NULL, IFD_ST_PROTO);
    /* Only whitespace between the key and its value. */
    for (const char *p = text + off; p < o; p++)
        IFD_VERIFY(*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r', IFD_ST_PROTO);
    off = (size_t)(o - text) + sizeof open_tag - 1;
    const char *e = memchr(text + off, '<', len - off);
    IFD_VERIFY(e != NULL, IFD_ST_PROTO);
    const char *v = text + off;
    size_t vn = (size_t)(e - v);
    uint32_t val;
    if (vn > 2 && v[0] == '0' && (v[1] == 'x' || v[1] == 'X'))
        IFD_VERIFY(parse_num(v + 2, vn - 2, 16, 0xFFFFFFFFu, &val), IFD_ST_PROTO);
    else
        IFD_VERIFY(parse_num(v, vn, 10, 0xFFFFFFFFu, &val), IFD_ST_PROTO);
    *opts = val;
    return IFD_ST_OK;
}

ifd_st_t ifd_transport_open(const ifd_devname_t *dev, const ifd_transport_ops_t **ops, void **ctx)
{
    IFD_VERIFY(dev != NULL && ops != NULL && ctx != NULL, IFD_ST_PARAM);
    if (dev->kind == IFD_DEV_SOCK)
        return ifd_sock_open(dev->path, ops, ctx);
    return ifd_usb_open(dev, ops, ctx);
}
