/* ifd_features: PC/SC part 10 feature and property answers. */
#include "ifd_features.h"

#include <string.h>

/* PC/SC part 10 §2.6.14 property tags. */
enum {
    PROP_wLcdLayout = 1,
    PROP_bEntryValidationCondition = 2,
    PROP_bTimeOut2 = 3,
    PROP_wLcdMaxCharacters = 4,
    PROP_wLcdMaxLines = 5,
    PROP_bMinPINSize = 6,
    PROP_bMaxPINSize = 7,
    PROP_bPPDUSupport = 9,
    PROP_dwMaxAPDUDataSize = 10,
    PROP_wIdVendor = 11,
    PROP_wIdProduct = 12,
};

/* bEntryValidationCondition: max size reached | validation key | timeout. */
#define ENTRY_VALIDATION_DEFAULT 0x07u

typedef struct {
    uint8_t *out;
    size_t cap;
    size_t len;
    bool overflow;
} writer_t;

static void put(writer_t *w, const uint8_t *b, size_t n)
{
    if (w->overflow || n > w->cap - w->len) {
        w->overflow = true;
        return;
    }
    memcpy(w->out + w->len, b, n);
    w->len += n;
}

static void feature(writer_t *w, uint8_t tag)
{
    uint8_t rec[6] = {tag, 4, 0, 0, 0, 0};
    ifd_put_be32(rec + 2, IFD_IOCTL_FEATURE(tag));
    put(w, rec, sizeof rec);
}

size_t ifd_features_list(const ifd_ccid_desc_t *d, bool escape, uint8_t *out, size_t cap)
{
    IFD_VERIFY(d != NULL && out != NULL, 0);
    writer_t w = {out, cap, 0, false};
    /* Secure PIN entry only when the descriptor announces it (CCID §5.1
     * bPINSupport), like libccid. */
    if (d->pin_support & IFD_PIN_VERIFY)
        feature(&w, IFD_FEATURE_VERIFY_PIN_DIRECT);
    if (d->pin_support & IFD_PIN_MODIFY)
        feature(&w, IFD_FEATURE_MODIFY_PIN_DIRECT);
    if (d->pin_support)
        feature(&w, IFD_FEATURE_IFD_PIN_PROPERTIES);
    feature(&w, IFD_FEATURE_GET_TLV_PROPERTIES);
    if (escape) {
        uint8_t rec[6] = {IFD_FEATURE_CCID_ESC_COMMAND, 4, 0, 0, 0, 0};
        ifd_put_be32(rec + 2, IFD_IOCTL_VENDOR_IFD_EXCHANGE);
        put(&w, rec, sizeof rec);
    }
    return w.overflow ? 0 : w.len;
}

static void prop8(writer_t *w, uint8_t tag, uint8_t v)
{
    uint8_t b[3] = {tag, 1, v};
    put(w, b, sizeof b);
}

static void prop16(writer_t *w, uint8_t tag, uint16_t v)
{
    uint8_t b[4] = {tag, 2, 0, 0};
    ifd_put_le16(b + 2, v);
    put(w, b, sizeof b);
}

static void prop32(writer_t *w, uint8_t tag, uint32_t v)
{
    uint8_t b[6] = {tag, 4, 0, 0, 0, 0};
    ifd_put_le32(b + 2, v);
    put(w, b, sizeof b);
}

size_t ifd_features_tlv_properties(const ifd_usb_info_t *info, bool escape,
                                   const ifd_pin_limits_t *pin, uint8_t *out, size_t cap)
{
    IFD_VERIFY(info != NULL && out != NULL, 0);
    const ifd_ccid_desc_t *d = &info->ccid;
    writer_t w = {out, cap, 0, false};
    prop16(&w, PROP_wLcdLayout, d->lcd_layout);
    if (d->lcd_layout) {
        /* CCID §5.1: wLcdLayout = lines << 8 | characters per line. */
        prop16(&w, PROP_wLcdMaxCharacters, d->lcd_layout & 0xFFu);
        prop16(&w, PROP_wLcdMaxLines, (uint16_t)(d->lcd_layout >> 8));
    }
    if (d->pin_support)
        prop8(&w, PROP_bEntryValidationCondition, ENTRY_VALIDATION_DEFAULT);
    prop8(&w, PROP_bTimeOut2, 0); /* bTimeOut and bTimeOut2 are not distinguished */
    if (pin && pin->min_pin)
        prop8(&w, PROP_bMinPINSize, pin->min_pin);
    if (pin && pin->max_pin)
        prop8(&w, PROP_bMaxPINSize, pin->max_pin);
    /* bit 0: PPDU over SCardControl(FEATURE_CCID_ESC_COMMAND). */
    prop8(&w, PROP_bPPDUSupport, escape ? 1 : 0);
    prop16(&w, PROP_wIdVendor, info->vid);
    prop16(&w, PROP_wIdProduct, info->pid);
    /* §2.6.14: 0 = short APDUs only; extended APDU or TPDU level readers
     * carry up to 65536 bytes (as libccid). */
    uint32_t level = d->features & IFD_FEAT_LEVEL_MASK;
    uint32_t max_apdu =
        (level == IFD_FEAT_LEVEL_EXT_APDU || level == IFD_FEAT_LEVEL_TPDU) ? 0x10000u : 0u;
    prop32(&w, PROP_dwMaxAPDUDataSize, max_apdu);
    return w.overflow ? 0 : w.len;
}

size_t ifd_features_pin_properties(const ifd_ccid_desc_t *d, uint8_t *out, size_t cap)
{
    IFD_VERIFY(d != NULL && out != NULL && cap >= 4, 0);
    ifd_put_le16(out, d->lcd_layout);
    out[2] = ENTRY_VALIDATION_DEFAULT;
    out[3] = 0;
    return 4;
}
