/* ifd_desc: USB and CCID descriptor parsing (USB 2.0 §9.6, CCID rev 1.1 §5). */
#include "ifd_desc.h"

#include <string.h>

#include "ifd_rdr.h"

enum {
    DT_DEVICE = 1,
    DT_CONFIG = 2,
    DT_STRING = 3,
    DT_INTERFACE = 4,
    DT_ENDPOINT = 5,
    DT_CCID = 0x21,
};

ifd_st_t ifd_desc_parse_device(const uint8_t *d, size_t len, ifd_usb_info_t *info)
{
    IFD_VERIFY(d != NULL && info != NULL, IFD_ST_PARAM);
    IFD_VERIFY(len >= IFD_DEVICE_DESC_LEN, IFD_ST_PROTO);
    IFD_VERIFY(d[0] >= IFD_DEVICE_DESC_LEN && d[1] == DT_DEVICE, IFD_ST_PROTO);
    info->vid = ifd_get_le16(d + 8);
    info->pid = ifd_get_le16(d + 10);
    info->bcd_device = ifd_get_le16(d + 12);
    info->i_manufacturer = d[14];
    info->i_product = d[15];
    info->i_serial = d[16];
    IFD_VERIFY(d[17] >= 1, IFD_ST_PROTO); /* bNumConfigurations */
    return IFD_ST_OK;
}

ifd_st_t ifd_desc_config_total(const uint8_t *d, size_t len, size_t *total)
{
    IFD_VERIFY(d != NULL && total != NULL, IFD_ST_PARAM);
    IFD_VERIFY(len >= 9 && d[0] >= 9 && d[1] == DT_CONFIG, IFD_ST_PROTO);
    size_t t = ifd_get_le16(d + 2);
    IFD_VERIFY(t >= 9, IFD_ST_PROTO);
    *total = t > IFD_CONFIG_MAX ? IFD_CONFIG_MAX : t;
    return IFD_ST_OK;
}

static uint32_t cap_u32(uint32_t v, uint32_t cap)
{
    return v > cap ? cap : v;
}

ifd_st_t ifd_desc_parse_ccid(const uint8_t *d, size_t len, ifd_ccid_desc_t *out)
{
    IFD_VERIFY(d != NULL && out != NULL, IFD_ST_PARAM);
    IFD_VERIFY(len >= IFD_CCID_CLASS_DESC_LEN, IFD_ST_PROTO);
    IFD_VERIFY(d[0] >= IFD_CCID_CLASS_DESC_LEN && d[0] <= len && d[1] == DT_CCID, IFD_ST_PROTO);
    memset(out, 0, sizeof *out);
    out->bcd_ccid = ifd_get_le16(d + 2);
    out->max_slot_index = d[4];
    out->voltage_support = d[5] & 0x07u;
    out->protocols = ifd_get_le32(d + 6) & 0x03u;
    out->default_clock_khz = ifd_get_le32(d + 10);
    out->max_clock_khz = ifd_get_le32(d + 14);
    out->data_rate = ifd_get_le32(d + 19);
    out->max_data_rate = ifd_get_le32(d + 23);
    out->max_ifsd = cap_u32(ifd_get_le32(d + 28), 254);
    out->features = ifd_get_le32(d + 40);
    out->max_msg_len = ifd_get_le32(d + 44);
    out->class_get_response = d[48];
    out->class_envelope = d[49];
    out->lcd_layout = ifd_get_le16(d + 50);
    out->pin_support = d[52] & (IFD_PIN_VERIFY | IFD_PIN_MODIFY);
    out->max_busy_slots = d[53];

    /* Defaults for values a device may leave at 0; caps keep the arithmetic
     * on timeouts and rates far from overflow. ISO/IEC 7816-3 §5.2.3 allows
     * 1 to 20 MHz; 4 MHz is the usual default clock. */
    if (out->default_clock_khz == 0 || out->default_clock_khz > 100000u)
        out->default_clock_khz = 4000u;
    out->max_clock_khz = cap_u32(out->max_clock_khz, 100000u);
    out->data_rate = cap_u32(out->data_rate, 10000000u);
    out->max_data_rate = cap_u32(out->max_data_rate, 10000000u);
    if (out->max_data_rate == 0)
        out->max_data_rate = out->default_clock_khz * 1000u / 372u;
    /* A message must carry at least the header and an APDU header. */
    IFD_VERIFY(out->max_msg_len >= IFD_CCID_HEADER + 5u, IFD_ST_PROTO);
    out->max_msg_len = cap_u32(out->max_msg_len, IFD_MSG_MAX);
    IFD_VERIFY(out->protocols != 0, IFD_ST_UNSUPPORTED);
    return IFD_ST_OK;
}

ifd_st_t ifd_desc_parse_config(const uint8_t *d, size_t len, ifd_usb_info_t *info)
{
    IFD_VERIFY(d != NULL && info != NULL, IFD_ST_PARAM);
    size_t total;
    ifd_st_t st = ifd_desc_config_total(d, len, &total);
    IFD_VERIFY(st == IFD_ST_OK, st);
    if (total < len)
        len = total; /* ignore bytes past wTotalLength */
    info->config_value = d[5];

    bool in_ccid = false, found = false, have_class = false;
    uint8_t out_ep = 0, in_ep = 0, intr_ep = 0;
    size_t off = d[0];
    /* Walk the descriptors: each bLength ≥ 2 and within what is left. */
    while (off < len) {
        size_t left = len - off;
        IFD_VERIFY(left >= 2, IFD_ST_PROTO);
        size_t dl = d[off];
        IFD_VERIFY(dl >= 2 && dl <= left, IFD_ST_PROTO);
        const uint8_t *p = d + off;
        uint8_t type = p[1];
        if (type == DT_INTERFACE) {
            IFD_VERIFY(dl >= 9, IFD_ST_PROTO);
            if (found && in_ccid)
                break; /* the next interface ends the CCID one */
            /* CCID rev 1.1 §4.3: class 0x0B, subclass 0, protocol 0 (CCID;
             * 1 and 2 are the ICCD variants, not supported here). */
            in_ccid = p[3] == 0 && p[5] == 0x0B && p[6] == 0 && p[7] == 0;
            if (in_ccid) {
                found = true;
                info->iface = p[2];
            }
        } else if (type == DT_CCID && in_ccid && !have_class) {
            st = ifd_desc_parse_ccid(p, dl, &info->ccid);
            IFD_VERIFY(st == IFD_ST_OK, st);
            have_class = true;
        } else if (type == DT_ENDPOINT && in_ccid) {
            IFD_VERIFY(dl >= 7, IFD_ST_PROTO);
            uint8_t addr = p[2];
            uint8_t kind = p[3] & 0x03u;
            if (kind == 2 && !(addr & 0x80u) && !out_ep)
                out_ep = addr;
            else if (kind == 2 && (addr & 0x80u) && !in_ep)
                in_ep = addr;
            else if (kind == 3 && (addr & 0x80u) && !intr_ep)
                intr_ep = addr;
        }
        off += dl;
    }
    IFD_VERIFY(found && have_class, IFD_ST_UNSUPPORTED);
    IFD_VERIFY(out_ep != 0 && in_ep != 0, IFD_ST_UNSUPPORTED);
    info->ep_bulk_out = out_ep;
    info->ep_bulk_in = in_ep;
    info->ep_intr_in = intr_ep;
    return IFD_ST_OK;
}

ifd_st_t ifd_desc_string_ascii(const uint8_t *d, size_t len, char *out, size_t cap)
{
    IFD_VERIFY(d != NULL && out != NULL && cap > 0, IFD_ST_PARAM);
    out[0] = '\0';
    IFD_VERIFY(len >= 2 && d[1] == DT_STRING, IFD_ST_PROTO);
    size_t n = d[0] < len ? d[0] : len;
    IFD_VERIFY(n >= 2, IFD_ST_PROTO);
    size_t o = 0;
    /* UTF-16LE code units after the 2-byte header (USB 2.0 §9.6.7). */
    for (size_t i = 2; i + 1 < n && o + 1 < cap; i += 2) {
        uint16_t u = ifd_get_le16(d + i);
        out[o++] = (u >= 0x20 && u < 0x7F) ? (char)u : '?';
    }
    out[o] = '\0';
    return IFD_ST_OK;
}
