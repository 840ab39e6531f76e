/* usb: the USB 2.0 device core (chapter 9), see usb.h. Owns the device state
 * (Default / Address / Configured, USB 2.0 §9.1.1), answers the standard
 * requests of §9.4 on ep0 and hands class/vendor requests and OUT transfers to
 * the one class driver. Anything it does not understand is STALLed
 * (§9.2.7 "Request Error"). */
#include "usb.h"

#include "fw_util.h"
#include "port_usb.h"

/* bmRequestType (USB 2.0 §9.3.1, Table 9-2). */
#define USB_DIR_IN         0x80u
#define USB_TYPE_MASK      0x60u
#define USB_TYPE_STANDARD  0x00u
#define USB_TYPE_CLASS     0x20u
#define USB_TYPE_VENDOR    0x40u
#define USB_RECIP_MASK     0x1Fu
#define USB_RECIP_DEVICE   0x00u
#define USB_RECIP_IFACE    0x01u
#define USB_RECIP_ENDPOINT 0x02u

/* Standard request codes (USB 2.0 §9.4, Table 9-4). */
#define USB_REQ_GET_STATUS        0x00u
#define USB_REQ_CLEAR_FEATURE     0x01u
#define USB_REQ_SET_FEATURE       0x03u
#define USB_REQ_SET_ADDRESS       0x05u
#define USB_REQ_GET_DESCRIPTOR    0x06u
#define USB_REQ_GET_CONFIGURATION 0x08u
#define USB_REQ_SET_CONFIGURATION 0x09u
#define USB_REQ_GET_INTERFACE     0x0Au
#define USB_REQ_SET_INTERFACE     0x0Bu

/* Descriptor types (USB 2.0 §9.4, Table 9-5). */
#define USB_DESC_DEVICE    0x01u
#define USB_DESC_CONFIG    0x02u
#define USB_DESC_STRING    0x03u
#define USB_DESC_INTERFACE 0x04u
#define USB_DESC_ENDPOINT  0x05u

/* Feature selectors (USB 2.0 §9.4, Table 9-6). */
#define USB_FEATURE_ENDPOINT_HALT 0x00u

/* Sizes from USB 2.0 §9.6.1 (device), §9.6.3 (configuration). */
#define USB_DEVICE_DESC_LEN 18u
#define USB_CONFIG_DESC_LEN 9u
#define USB_LANGID_EN_US    0x0409u
#define USB_MAX_ADDRESS     127u

/* Non-zero endpoints the core tracks (halt feature, OUT routing). */
#define USB_MAX_ENDPOINTS 8u
/* A string descriptor is at most 255 bytes (bLength is one byte, §9.6.7). */
#define USB_STRING_DESC_MAX 255u
/* UTF-8 characters read from one source string at most (guards a missing NUL). */
#define USB_STRING_SCAN_MAX     512u
#define USB_UNICODE_REPLACEMENT 0xFFFDu

_Static_assert(USB_STRING_DESC_MAX >= 4u, "room for the language ID list");

/* Device states of USB 2.0 §9.1.1 that the core distinguishes (Attached and
 * Powered fold into Default: the board reports a bus reset before any setup). */
typedef enum {
    USB_STATE_DEFAULT = 0,
    USB_STATE_ADDRESS,
    USB_STATE_CONFIGURED,
} usb_state_t;

typedef struct {
    const usb_descriptors_t *desc;
    const usb_class_ops_t *cls;
    bool ready; /* descriptors and ops checked by usb_init */
    usb_state_t state;
    uint8_t config_value;   /* bConfigurationValue of the one configuration */
    uint8_t num_interfaces; /* bNumInterfaces; numbers are 0..n-1 (§9.6.5) */
    bool self_powered;      /* bmAttributes bit 6 (§9.6.3) */
    uint8_t num_eps;
    uint8_t ep_addr[USB_MAX_ENDPOINTS];
    bool ep_halted[USB_MAX_ENDPOINTS];
    uint8_t buf[USB_STRING_DESC_MAX]; /* data stage built by the core */
} usb_core_t;

static usb_core_t usb;

/* ---- helpers ---- */

/* Answers the data stage, never more than the host asked for (§9.3.5 wLength). */
static bool usb_reply(const usb_setup_t *s, const uint8_t *data, size_t len)
{
    if (len > s->wLength)
        len = s->wLength;
    (void)port_usb_ep0_reply(data, len);
    return true;
}

static bool usb_reply_zlp(void)
{
    (void)port_usb_ep0_reply(NULL, 0);
    return true;
}

/* Index of a non-zero endpoint in the configuration, or -1. */
static int usb_ep_index(uint8_t ep)
{
    for (uint8_t i = 0; i < usb.num_eps; i++) {
        if (usb.ep_addr[i] == ep)
            return (int)i;
    }
    return -1;
}

static void usb_clear_halts(void)
{
    for (size_t i = 0; i < USB_MAX_ENDPOINTS; i++)
        usb.ep_halted[i] = false;
}

/* Walks the configuration descriptor (USB 2.0 §9.6.3: the configuration
 * followed by its interface, class and endpoint descriptors) and records what
 * the core needs. false when it is malformed. */
static bool usb_parse_config(const uint8_t *cfg, size_t len)
{
    FW_ASSERT(cfg != NULL && len >= USB_CONFIG_DESC_LEN, false);
    FW_ASSERT(cfg[0] == USB_CONFIG_DESC_LEN && cfg[1] == USB_DESC_CONFIG, false);
    FW_ASSERT(fw_get_le16(cfg + 2) == len, false);
    usb.num_interfaces = cfg[4];
    usb.config_value = cfg[5];
    FW_ASSERT(usb.config_value != 0, false); /* 0 means "not configured" (§9.4.7) */
    usb.self_powered = (cfg[7] & 0x40u) != 0;
    usb.num_eps = 0;
    size_t off = cfg[0];
    while (off < len) {
        FW_ASSERT(len - off >= 2u, false);
        uint8_t dlen = cfg[off];
        FW_ASSERT(dlen >= 2u && fw_range_ok(off, dlen, len), false);
        if (cfg[off + 1] == USB_DESC_INTERFACE) {
            FW_ASSERT(dlen >= 9u && cfg[off + 2] < usb.num_interfaces, false);
        } else if (cfg[off + 1] == USB_DESC_ENDPOINT) {
            FW_ASSERT(dlen >= 7u && usb.num_eps < USB_MAX_ENDPOINTS, false);
            uint8_t ep = cfg[off + 2];
            FW_ASSERT((ep & 0x0Fu) != 0 && usb_ep_index(ep) < 0, false);
            usb.ep_addr[usb.num_eps++] = ep;
        }
        off += dlen;
    }
    return true;
}

/* UTF-8 → UTF-16LE for string descriptors (§9.6.7: UNICODE, UTF-16LE).
 * Malformed sequences become U+FFFD; characters beyond the BMP become a
 * surrogate pair. Stops at the NUL, at USB_STRING_SCAN_MAX source bytes or
 * when out is full (never splitting a pair). Returns the bytes written. */
static size_t usb_utf8_to_utf16le(const char *src, uint8_t *out, size_t cap)
{
    const uint8_t *s = (const uint8_t *)src;
    size_t i = 0, n = 0;
    while (i < USB_STRING_SCAN_MAX && s[i] != 0) {
        uint8_t c = s[i];
        uint32_t cp = USB_UNICODE_REPLACEMENT;
        size_t need = 0;
        uint32_t min = 0;
        if (c < 0x80u) {
            cp = c;
        } else if (c >= 0xC2u && c <= 0xDFu) {
            need = 1;
            cp = c & 0x1Fu;
            min = 0x80u;
        } else if (c >= 0xE0u && c <= 0xEFu) {
            need = 2;
            cp = c & 0x0Fu;
            min = 0x800u;
        } else if (c >= 0xF0u && c <= 0xF4u) {
            need = 3;
            cp = c & 0x07u;
            min = 0x10000u;
        }
        size_t used = 1;
        if (need > 0) {
            size_t k = 1;
            while (k <= need && (s[i + k] & 0xC0u) == 0x80u) {
                cp = cp << 6 | (s[i + k] & 0x3Fu);
                k++;
            }
            if (k <= need || cp < min || cp > 0x10FFFFu || (cp >= 0xD800u && cp <= 0xDFFFu)) {
                cp = USB_UNICODE_REPLACEMENT; /* consume the lead byte only */
            } else {
                used = k;
            }
        }
        if (cp >= 0x10000u) {
            if (cap - n < 4u)
                break;
            uint32_t v = cp - 0x10000u;
            fw_put_le16(out + n, (uint16_t)(0xD800u | (v >> 10)));
            fw_put_le16(out + n + 2, (uint16_t)(0xDC00u | (v & 0x3FFu)));
            n += 4;
        } else {
            if (cap - n < 2u)
                break;
            fw_put_le16(out + n, (uint16_t)cp);
            n += 2;
        }
        i += used;
    }
    return n;
}

/* ---- standard requests (USB 2.0 §9.4) ---- */

typedef bool (*usb_std_handler_t)(const usb_setup_t *s);

/* GET_DESCRIPTOR (§9.4.3): device, configuration, string. Other types
 * (device qualifier, other-speed configuration) are STALLed as a full-speed
 * only device must (§9.6.2). */
static bool usb_get_descriptor(const usb_setup_t *s)
{
    FW_VERIFY(s->bmRequestType == (USB_DIR_IN | USB_RECIP_DEVICE), false);
    uint8_t type = (uint8_t)(s->wValue >> 8);
    uint8_t index = (uint8_t)s->wValue;
    const usb_descriptors_t *d = usb.desc;
    switch (type) {
    case USB_DESC_DEVICE:
        FW_VERIFY(index == 0, false);
        return usb_reply(s, d->device, d->device_len);
    case USB_DESC_CONFIG:
        FW_VERIFY(index == 0, false);
        return usb_reply(s, d->config, d->config_len);
    case USB_DESC_STRING:
        if (index == 0) {
            /* The list of supported LANGIDs: English (United States) only. */
            usb.buf[0] = 4;
            usb.buf[1] = USB_DESC_STRING;
            fw_put_le16(usb.buf + 2, USB_LANGID_EN_US);
            return usb_reply(s, usb.buf, 4);
        }
        FW_VERIFY(s->wIndex == USB_LANGID_EN_US, false);
        FW_VERIFY(index <= d->string_count, false);
        {
            const char *str = d->strings[index - 1u];
            FW_VERIFY(str != NULL, false);
            size_t n = usb_utf8_to_utf16le(str, usb.buf + 2, sizeof usb.buf - 2u);
            usb.buf[0] = (uint8_t)(n + 2u);
            usb.buf[1] = USB_DESC_STRING;
            return usb_reply(s, usb.buf, n + 2u);
        }
    default:
        return false;
    }
}

/* SET_ADDRESS (§9.4.6): valid in the Default and Address states. */
static bool usb_set_address(const usb_setup_t *s)
{
    FW_VERIFY(s->bmRequestType == USB_RECIP_DEVICE, false);
    FW_VERIFY(s->wValue <= USB_MAX_ADDRESS && s->wIndex == 0 && s->wLength == 0, false);
    FW_VERIFY(usb.state != USB_STATE_CONFIGURED, false);
    /* The board applies the address after the status stage (port_usb.h). */
    port_usb_set_address((uint8_t)s->wValue);
    usb.state = s->wValue != 0 ? USB_STATE_ADDRESS : USB_STATE_DEFAULT;
    return usb_reply_zlp();
}

/* SET_CONFIGURATION (§9.4.7): 0 returns to the Address state, the one
 * configuration value selects it (and resets halts, §9.4.5). Accepted in the
 * Default state too, where the spec leaves the behaviour open. */
static bool usb_set_configuration(const usb_setup_t *s)
{
    FW_VERIFY(s->bmRequestType == USB_RECIP_DEVICE, false);
    FW_VERIFY(s->wIndex == 0 && s->wLength == 0, false);
    FW_VERIFY(s->wValue == 0 || s->wValue == usb.config_value, false);
    bool was_configured = usb.state == USB_STATE_CONFIGURED;
    usb_clear_halts();
    if (was_configured)
        usb.cls->on_reset();
    if (s->wValue == 0) {
        usb.state = USB_STATE_ADDRESS;
        return usb_reply_zlp();
    }
    usb.state = USB_STATE_CONFIGURED;
    (void)usb_reply_zlp(); /* status stage first: the class may send at once */
    usb.cls->on_configured();
    return true;
}

/* GET_CONFIGURATION (§9.4.2). */
static bool usb_get_configuration(const usb_setup_t *s)
{
    FW_VERIFY(s->bmRequestType == (USB_DIR_IN | USB_RECIP_DEVICE), false);
    FW_VERIFY(s->wValue == 0 && s->wIndex == 0 && s->wLength == 1, false);
    usb.buf[0] = usb.state == USB_STATE_CONFIGURED ? usb.config_value : 0;
    return usb_reply(s, usb.buf, 1);
}

/* True when wIndex names an interface the host may address now (§9.4: only
 * in the Configured state). */
static bool usb_iface_ok(uint16_t windex)
{
    return usb.state == USB_STATE_CONFIGURED && windex < usb.num_interfaces;
}

/* Endpoint named by wIndex (§9.3.4): ep0 always; the others only when
 * configured (§9.4.5). Returns the table index, USB_MAX_ENDPOINTS for ep0,
 * -1 when it does not exist. */
static int usb_ep_target(uint16_t windex)
{
    if (windex > 0xFFu)
        return -1;
    uint8_t ep = (uint8_t)windex;
    if ((ep & 0x7Fu) == 0)
        return (int)USB_MAX_ENDPOINTS;
    if (usb.state != USB_STATE_CONFIGURED)
        return -1;
    return usb_ep_index(ep);
}

/* GET_STATUS (§9.4.5): device (self-powered bit, no remote wakeup),
 * interface (zero), endpoint (halt bit). */
static bool usb_get_status(const usb_setup_t *s)
{
    FW_VERIFY((s->bmRequestType & USB_DIR_IN) != 0, false);
    FW_VERIFY(s->wValue == 0 && s->wLength == 2, false);
    usb.buf[0] = 0;
    usb.buf[1] = 0;
    switch (s->bmRequestType & USB_RECIP_MASK) {
    case USB_RECIP_DEVICE:
        FW_VERIFY(s->wIndex == 0, false);
        usb.buf[0] = usb.self_powered ? 1u : 0u;
        break;
    case USB_RECIP_IFACE:
        FW_VERIFY(usb_iface_ok(s->wIndex), false);
        break;
    case USB_RECIP_ENDPOINT: {
        int i = usb_ep_target(s->wIndex);
        FW_VERIFY(i >= 0, false);
        if (i < (int)USB_MAX_ENDPOINTS && usb.ep_halted[i])
            usb.buf[0] = 1;
        break;
    }
    default:
        return false;
    }
    return usb_reply(s, usb.buf, 2);
}

/* CLEAR_FEATURE / SET_FEATURE (§9.4.1, §9.4.9): ENDPOINT_HALT only. The
 * device has no remote wakeup (bmAttributes bit 5 clear) and, being full
 * speed, no test modes: those are Request Errors. */
static bool usb_feature(const usb_setup_t *s, bool set)
{
    FW_VERIFY((s->bmRequestType & USB_DIR_IN) == 0 && s->wLength == 0, false);
    FW_VERIFY((s->bmRequestType & USB_RECIP_MASK) == USB_RECIP_ENDPOINT, false);
    FW_VERIFY(s->wValue == USB_FEATURE_ENDPOINT_HALT, false);
    int i = usb_ep_target(s->wIndex);
    FW_VERIFY(i >= 0, false);
    /* Halting ep0 is neither required nor recommended (§9.4.5): accept, ignore. */
    if (i < (int)USB_MAX_ENDPOINTS)
        usb.ep_halted[i] = set;
    return usb_reply_zlp();
}

static bool usb_clear_feature(const usb_setup_t *s)
{
    return usb_feature(s, false);
}

static bool usb_set_feature(const usb_setup_t *s)
{
    return usb_feature(s, true);
}

/* GET_INTERFACE (§9.4.4): every interface has only alternate setting 0. */
static bool usb_get_interface(const usb_setup_t *s)
{
    FW_VERIFY(s->bmRequestType == (USB_DIR_IN | USB_RECIP_IFACE), false);
    FW_VERIFY(s->wValue == 0 && s->wLength == 1 && usb_iface_ok(s->wIndex), false);
    usb.buf[0] = 0;
    return usb_reply(s, usb.buf, 1);
}

/* SET_INTERFACE (§9.4.10): alternate setting 0 only. */
static bool usb_set_interface(const usb_setup_t *s)
{
    FW_VERIFY(s->bmRequestType == USB_RECIP_IFACE, false);
    FW_VERIFY(s->wValue == 0 && s->wLength == 0 && usb_iface_ok(s->wIndex), false);
    return usb_reply_zlp();
}

static const struct {
    uint8_t request;
    usb_std_handler_t handler;
} usb_std_table[] = {
    {USB_REQ_GET_STATUS, usb_get_status},
    {USB_REQ_CLEAR_FEATURE, usb_clear_feature},
    {USB_REQ_SET_FEATURE, usb_set_feature},
    {USB_REQ_SET_ADDRESS, usb_set_address},
    {USB_REQ_GET_DESCRIPTOR, usb_get_descriptor},
    {USB_REQ_GET_CONFIGURATION, usb_get_configuration},
    {USB_REQ_SET_CONFIGURATION, usb_set_configuration},
    {USB_REQ_GET_INTERFACE, usb_get_interface},
    {USB_REQ_SET_INTERFACE, usb_set_interface},
};

/* Routes one request; false means Request Error (STALL). */
static bool usb_dispatch(const usb_setup_t *s, const uint8_t *data, size_t len)
{
    switch (s->bmRequestType & USB_TYPE_MASK) {
    case USB_TYPE_STANDARD:
        for (size_t i = 0; i < FW_ARRAY_LEN(usb_std_table); i++) {
            if (usb_std_table[i].request == s->bRequest)
                return usb_std_table[i].handler(s);
        }
        return false;
    case USB_TYPE_CLASS:
    case USB_TYPE_VENDOR:
        /* Only requests addressed to one of our interfaces reach the class. */
        FW_VERIFY((s->bmRequestType & USB_RECIP_MASK) == USB_RECIP_IFACE, false);
        FW_VERIFY(usb_iface_ok(s->wIndex & 0xFFu) && (s->wIndex >> 8) == 0, false);
        return usb.cls->on_request(s, data, len);
    default:
        return false;
    }
}

/* ---- public API ---- */

void usb_init(const usb_descriptors_t *desc, const usb_class_ops_t *cls)
{
    fw_memset(&usb, 0, sizeof usb);
    if (desc == NULL || cls == NULL || cls->on_reset == NULL || cls->on_configured == NULL ||
        cls->on_request == NULL || cls->on_out == NULL) {
        fw_bug(__FILE__, __LINE__);
        return;
    }
    if (desc->device == NULL || desc->device_len != USB_DEVICE_DESC_LEN ||
        desc->device[0] != USB_DEVICE_DESC_LEN || desc->device[1] != USB_DESC_DEVICE ||
        (desc->string_count > 0 && desc->strings == NULL) || desc->string_count > 0xFFu) {
        fw_bug(__FILE__, __LINE__);
        return;
    }
    if (!usb_parse_config(desc->config, desc->config_len))
        return;
    usb.desc = desc;
    usb.cls = cls;
    usb.ready = true;
}

/* Bus reset (USB 2.0 §9.1.1.3 → Default state) and detach both end every
 * transfer and the configuration. */
static void usb_bus_reset(void)
{
    if (!usb.ready)
        return;
    usb.state = USB_STATE_DEFAULT;
    usb_clear_halts();
    usb.cls->on_reset();
}

void usb_on_reset(void)
{
    usb_bus_reset();
}

void usb_on_detach(void)
{
    usb_bus_reset();
}

void usb_on_setup(const uint8_t setup[8], const uint8_t *data, size_t len)
{
    if (!usb.ready || setup == NULL) {
        port_usb_ep0_stall();
        return;
    }
    usb_setup_t s = {
        .bmRequestType = setup[0],
        .bRequest = setup[1],
        .wValue = fw_get_le16(setup + 2),
        .wIndex = fw_get_le16(setup + 4),
        .wLength = fw_get_le16(setup + 6),
    };
    /* An OUT data stage must be exactly wLength bytes (§9.3.5); IN requests
     * carry none. */
    if ((s.bmRequestType & USB_DIR_IN) != 0) {
        data = NULL;
        len = 0;
    } else if (len != s.wLength || (len > 0 && data == NULL)) {
        port_usb_ep0_stall();
        return;
    }
    if (!usb_dispatch(&s, data, len))
        port_usb_ep0_stall();
}

void usb_on_out(uint8_t ep, const uint8_t *data, size_t len)
{
    if (!usb.ready || usb.state != USB_STATE_CONFIGURED)
        return;
    if ((ep & USB_DIR_IN) != 0 || (data == NULL && len > 0))
        return;
    int i = usb_ep_index(ep);
    /* A halted endpoint takes no data until CLEAR_FEATURE (§9.4.5). */
    if (i < 0 || usb.ep_halted[i])
        return;
    usb.cls->on_out(ep, data, len);
}

bool usb_configured(void)
{
    return usb.ready && usb.state == USB_STATE_CONFIGURED;
}
