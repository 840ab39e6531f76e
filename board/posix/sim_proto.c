/* sim_proto: codecs of the simulation wire protocols (docs/simulation.md §1–§3).
 * All integers on the sockets are big-endian; the SETUP packet inside a §1
 * frame keeps USB's own little-endian layout (USB 2.0 §9.3). */
#include "sim_proto.h"

#include <string.h>

static uint16_t get_be16(const uint8_t *p)
{
    return (uint16_t)((uint16_t)p[0] << 8 | p[1]);
}

static uint32_t get_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
           (uint32_t)p[3];
}

void sim_usb_hdr_encode(uint8_t out[SIM_USB_HDR_LEN], const sim_usb_hdr_t *h)
{
    out[0] = h->kind;
    out[1] = h->ep;
    out[2] = (uint8_t)(h->status >> 8);
    out[3] = (uint8_t)h->status;
    out[4] = (uint8_t)(h->len >> 24);
    out[5] = (uint8_t)(h->len >> 16);
    out[6] = (uint8_t)(h->len >> 8);
    out[7] = (uint8_t)h->len;
}

sim_frame_status_t sim_usb_frame_next(const uint8_t *buf, size_t len,
                                      sim_usb_hdr_t *h, size_t *frame_len)
{
    if (len < SIM_USB_HDR_LEN)
        return SIM_FRAME_MORE;
    h->kind = buf[0];
    h->ep = buf[1];
    h->status = get_be16(buf + 2);
    h->len = get_be32(buf + 4);
    /* §1: every length is capped before the payload is read. */
    if (h->len > SIM_USB_PAYLOAD_MAX)
        return SIM_FRAME_TOO_LONG;
    if (len - SIM_USB_HDR_LEN < h->len)
        return SIM_FRAME_MORE;
    *frame_len = SIM_USB_HDR_LEN + h->len;
    return SIM_FRAME_OK;
}

const char *sim_usb_host_frame_check(const sim_usb_hdr_t *h,
                                     const uint8_t *payload)
{
    switch (h->kind) {
    case SIM_USB_SETUP: {
        if (h->ep != 0x00)
            return "SETUP on a non-control endpoint";
        if (h->len < SIM_USB_SETUP_LEN)
            return "SETUP shorter than 8 bytes";
        /* USB 2.0 §9.3: bmRequestType bit 7 = direction, wLength LE at 6. */
        uint32_t wlength = (uint32_t)payload[6] | (uint32_t)payload[7] << 8;
        if (payload[0] & 0x80) {
            if (h->len != SIM_USB_SETUP_LEN)
                return "IN SETUP carries a data stage";
        } else if (h->len - SIM_USB_SETUP_LEN != wlength) {
            return "OUT SETUP data stage length differs from wLength";
        }
        return NULL;
    }
    case SIM_USB_OUT:
        if ((h->ep & 0x80) != 0 || h->ep == 0 || h->ep > 0x0F)
            return "OUT on a bad endpoint";
        return NULL;
    default:
        return "unknown or device-only frame kind";
    }
}

sim_frame_status_t sim_ct_frame_next(const uint8_t *buf, size_t len,
                                     uint8_t *kind, size_t *payload_len,
                                     size_t *frame_len)
{
    if (len < SIM_CT_HDR_LEN)
        return SIM_FRAME_MORE;
    size_t plen = get_be16(buf + 1);
    if (plen > SIM_CT_PAYLOAD_MAX)
        return SIM_FRAME_TOO_LONG;
    if (len - SIM_CT_HDR_LEN < plen)
        return SIM_FRAME_MORE;
    *kind = buf[0];
    *payload_len = plen;
    *frame_len = SIM_CT_HDR_LEN + plen;
    return SIM_FRAME_OK;
}

void sim_ct_hdr_encode(uint8_t out[SIM_CT_HDR_LEN], uint8_t kind,
                       size_t payload_len)
{
    out[0] = kind;
    out[1] = (uint8_t)(payload_len >> 8);
    out[2] = (uint8_t)payload_len;
}

bool sim_key_parse(const char *s, port_key_t *key)
{
    static const struct {
        const char *name;
        port_key_t key;
    } named[] = {
        {"ok", PORT_KEY_OK},
        {"cancel", PORT_KEY_CANCEL},
        {"clear", PORT_KEY_CLEAR},
    };
    if (s[0] >= '0' && s[0] <= '9' && s[1] == '\0') {
        *key = (port_key_t)s[0];
        return true;
    }
    for (size_t i = 0; i < sizeof(named) / sizeof(named[0]); i++) {
        if (strcmp(s, named[i].name) == 0) {
            *key = named[i].key;
            return true;
        }
    }
    return false;
}

/* Splits line into at most max words separated by spaces/tabs; returns the
 * count, or max + 1 when there are more. Words point into buf. */
static size_t split_words(char *buf, char **words, size_t max)
{
    size_t n = 0;
    char *p = buf;
    for (;;) {
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p == '\0')
            return n;
        if (n == max)
            return max + 1;
        words[n++] = p;
        while (*p != '\0' && *p != ' ' && *p != '\t')
            p++;
        if (*p == '\0')
            return n;
        *p++ = '\0';
    }
}

void sim_cmd_parse(const char *line, sim_cmd_t *cmd)
{
    static const struct {
        const char *word;
        sim_cmd_kind_t kind;
    } simple[] = {
        {"status", SIM_CMD_STATUS},
        {"plug", SIM_CMD_PLUG},
        {"unplug", SIM_CMD_UNPLUG},
    };
    char buf[SIM_CTL_LINE_MAX + 1];
    char *w[3];

    cmd->kind = SIM_CMD_INVALID;
    cmd->key = PORT_KEY_NONE;
    cmd->why = "unknown command";
    size_t len = strlen(line);
    if (len > SIM_CTL_LINE_MAX) {
        cmd->why = "line too long";
        return;
    }
    memcpy(buf, line, len + 1);
    size_t n = split_words(buf, w, 2);
    if (n == 0) {
        cmd->why = "empty command";
        return;
    }
    if (n > 2) {
        cmd->why = "too many arguments";
        return;
    }
    for (size_t i = 0; i < sizeof(simple) / sizeof(simple[0]); i++) {
        if (strcmp(w[0], simple[i].word) == 0) {
            if (n != 1) {
                cmd->why = "too many arguments";
                return;
            }
            cmd->kind = simple[i].kind;
            return;
        }
    }
    if (strcmp(w[0], "screen") == 0) {
        if (n == 1) {
            cmd->kind = SIM_CMD_SCREEN;
        } else if (strcmp(w[1], "--json") == 0) {
            cmd->kind = SIM_CMD_SCREEN_JSON;
        } else {
            cmd->why = "bad screen option";
        }
        return;
    }
    if (strcmp(w[0], "key") == 0) {
        if (n != 2) {
            cmd->why = "missing key";
        } else if (sim_key_parse(w[1], &cmd->key)) {
            cmd->kind = SIM_CMD_KEY;
        } else {
            cmd->why = "bad key";
        }
        return;
    }
}

static bool append_raw(char *out, size_t cap, size_t *pos, const char *s,
                       size_t n)
{
    if (n >= cap || *pos > cap - 1 - n)
        return false;
    memcpy(out + *pos, s, n);
    *pos += n;
    out[*pos] = '\0';
    return true;
}

bool sim_json_append_string(char *out, size_t cap, size_t *pos, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    size_t start = *pos;
    bool ok = append_raw(out, cap, pos, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; ok && *p; p++) {
        char esc[7];
        size_t n;
        if (*p == '"' || *p == '\\') {
            esc[0] = '\\';
            esc[1] = (char)*p;
            n = 2;
        } else if (*p < 0x20 || *p == 0x7f) {
            /* RFC 8259 §7: control characters must be escaped. */
            esc[0] = '\\';
            esc[1] = 'u';
            esc[2] = '0';
            esc[3] = '0';
            esc[4] = hex[*p >> 4];
            esc[5] = hex[*p & 0x0f];
            n = 6;
        } else {
            esc[0] = (char)*p;
            n = 1;
        }
        ok = append_raw(out, cap, pos, esc, n);
    }
    if (ok)
        ok = append_raw(out, cap, pos, "\"", 1);
    if (!ok) {
        *pos = start;
        if (cap > 0)
            out[start < cap ? start : cap - 1] = '\0';
    }
    return ok;
}

void sim_text_sanitize(char *out, size_t cap, const char *s)
{
    size_t i = 0;
    if (cap == 0)
        return;
    for (; s[i] != '\0' && i < cap - 1; i++) {
        unsigned char c = (unsigned char)s[i];
        out[i] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
    }
    /* Truncated inside a UTF-8 sequence: drop its lead and continuation bytes. */
    if (s[i] != '\0' && ((unsigned char)s[i] & 0xC0) == 0x80) {
        while (i > 0 && ((unsigned char)out[i - 1] & 0xC0) == 0x80)
            i--;
        if (i > 0 && ((unsigned char)out[i - 1] & 0xC0) == 0xC0)
            i--;
    }
    out[i] = '\0';
}
