/* ccid_desc: the appliance's USB descriptors (USB 2.0 §9.6) with the CCID
 * class descriptor (CCID rev 1.1 §5.1). One configuration, one interface. */
#include "ccid.h"
#include "ccid_msg.h"

#include "fw_util.h"
#include "port_board.h"

/* clang-format off */
#define LE16(v) (uint8_t)((v) & 0xFFu), (uint8_t)(((v) >> 8) & 0xFFu)
#define LE32(v)                                                                                    \
    (uint8_t)((v) & 0xFFu), (uint8_t)(((v) >> 8) & 0xFFu), (uint8_t)(((v) >> 16) & 0xFFu),         \
        (uint8_t)(((v) >> 24) & 0xFFu)
/* clang-format on */

/* pid.codes test VID/PID: a PLACEHOLDER until Cachet has its own allocation. */
#define CCID_USB_VID 0x1209u
#define CCID_USB_PID 0xCAC7u

/* dwFeatures (§5.1, Table 5.1-1): automatic ICC voltage selection (0x08),
 * automatic clock frequency change (0x10), automatic baud rate change (0x20),
 * automatic PPS according to the active parameters (0x80), automatic IFSD
 * exchange (0x400), short APDU level exchange (0x20000). */
#define CCID_FEATURES 0x000204B8u

#define CCID_CLASS_DESC_LEN 0x36u
#define CCID_CONFIG_LEN     (9u + 9u + CCID_CLASS_DESC_LEN + 3u * 7u)

enum { CCID_STR_MANUFACTURER = 1, CCID_STR_PRODUCT, CCID_STR_SERIAL, CCID_STR_COUNT = 3 };

/* clang-format off */
/* Device descriptor (USB 2.0 §9.6.1): class defined per interface. */
static const uint8_t ccid_device_desc[18] = {
    18,   0x01,       LE16(0x0200u),       /* bcdUSB 2.0 */
    0x00, 0x00,       0x00,                /* class/subclass/protocol: per interface */
    64,                                    /* bMaxPacketSize0 */
    LE16(CCID_USB_VID), LE16(CCID_USB_PID), LE16(0x0100u), /* bcdDevice 1.00 */
    CCID_STR_MANUFACTURER, CCID_STR_PRODUCT, CCID_STR_SERIAL,
    1, /* bNumConfigurations */
};

static const uint8_t ccid_config_desc[CCID_CONFIG_LEN] = {
    /* Configuration (USB 2.0 §9.6.3): bus powered, 100 mA. */
    9, 0x02, LE16(CCID_CONFIG_LEN), 1, 1, 0, 0x80, 50,
    /* Interface (§9.6.5): Smart Card class 0x0B, subclass 0, protocol 0 (CCID §4.2). */
    9, 0x04, CCID_INTERFACE, 0, 3, 0x0B, 0x00, 0x00, 0,
    /* CCID class descriptor (CCID rev 1.1 §5.1, Table 5.1-1). */
    CCID_CLASS_DESC_LEN, 0x21,
    LE16(0x0110u),                 /* bcdCCID 1.10 */
    0,                             /* bMaxSlotIndex: one slot */
    0x07,                          /* bVoltageSupport: 5 V, 3 V, 1.8 V */
    LE32(0x00000003u),             /* dwProtocols: T=0 and T=1 */
    LE32(CCID_CLOCK_KHZ),          /* dwDefaultClock (kHz) */
    LE32(CCID_CLOCK_KHZ),          /* dwMaximumClock (kHz) */
    0,                             /* bNumClockSupported: default only */
    LE32(CCID_DATA_RATE),          /* dwDataRate (bps): Fi 372, Di 1 at 5 MHz */
    LE32(CCID_MAX_DATA_RATE),      /* dwMaxDataRate: Di up to 32 at Fi 372 */
    0,                             /* bNumDataRatesSupported: any in range */
    LE32(254u),                    /* dwMaxIFSD */
    LE32(0u),                      /* dwSynchProtocols */
    LE32(0u),                      /* dwMechanical: none */
    LE32(CCID_FEATURES),           /* dwFeatures */
    LE32(CCID_MAX_MESSAGE_LEN),    /* dwMaxCCIDMessageLength */
    0xFF,                          /* bClassGetResponse: echo the APDU's class */
    0xFF,                          /* bClassEnvelope: echo the APDU's class */
    LE16(0x0415u),                 /* wLcdLayout: 4 lines of 21 characters */
    0x03,                          /* bPINSupport: verification and modification */
    1,                             /* bMaxCCIDBusySlots */
    /* Endpoints (§9.6.6), in the order of CCID §3. */
    7, 0x05, CCID_EP_BULK_OUT, 0x02, LE16(64u), 0,
    7, 0x05, CCID_EP_BULK_IN, 0x02, LE16(64u), 0,
    7, 0x05, CCID_EP_INTR_IN, 0x03, LE16(8u), 16, /* 16 ms */
};
/* clang-format on */

_Static_assert(sizeof ccid_config_desc == 93u, "configuration descriptor layout");
_Static_assert(CCID_CONFIG_LEN - 9u - 9u - 3u * 7u == CCID_CLASS_DESC_LEN,
               "class descriptor is 0x36 bytes (CCID §5.1)");

static const char *ccid_strings[CCID_STR_COUNT];

static usb_descriptors_t ccid_descriptors;

const usb_descriptors_t *ccid_usb_descriptors(void)
{
    const char *serial = port_board_serial();
    ccid_strings[CCID_STR_MANUFACTURER - 1] = "Cachet";
    ccid_strings[CCID_STR_PRODUCT - 1] = "Cachet CPS Appliance";
    ccid_strings[CCID_STR_SERIAL - 1] = (serial != NULL && serial[0] != 0) ? serial : "0";
    ccid_descriptors.device = ccid_device_desc;
    ccid_descriptors.device_len = sizeof ccid_device_desc;
    ccid_descriptors.config = ccid_config_desc;
    ccid_descriptors.config_len = sizeof ccid_config_desc;
    ccid_descriptors.strings = ccid_strings;
    ccid_descriptors.string_count = CCID_STR_COUNT;
    return &ccid_descriptors;
}
