/* ifd_desc: parses the USB descriptors of a CCID reader (USB 2.0 §9.6 device,
 * configuration, interface and endpoint descriptors; CCID rev 1.1 §5.1 class
 * descriptor). Pure functions over the bytes the device returned, every length
 * capped; fuzzed by tests/fuzz/ifd_rdr. */
#ifndef CACHET_IFD_DESC_H
#define CACHET_IFD_DESC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ifd_util.h"

/* Largest configuration descriptor we read (wTotalLength is capped to this). */
#define IFD_CONFIG_MAX          1024u
#define IFD_DEVICE_DESC_LEN     18u
#define IFD_CCID_CLASS_DESC_LEN 0x36u

/* dwFeatures bits (CCID rev 1.1 §5.1, Table 5.1-1). */
#define IFD_FEAT_AUTO_PARAM_ATR   0x00000002u
#define IFD_FEAT_AUTO_ACTIVATION  0x00000004u
#define IFD_FEAT_AUTO_VOLTAGE     0x00000008u
#define IFD_FEAT_AUTO_CLOCK       0x00000010u
#define IFD_FEAT_AUTO_BAUD        0x00000020u
#define IFD_FEAT_AUTO_PPS_PROP    0x00000040u /* reader negotiates alone: no SetParameters */
#define IFD_FEAT_AUTO_PPS_CUR     0x00000080u /* reader does PPS from SetParameters */
#define IFD_FEAT_AUTO_IFSD        0x00000400u
#define IFD_FEAT_LEVEL_MASK       0x00070000u
#define IFD_FEAT_LEVEL_CHAR       0x00000000u
#define IFD_FEAT_LEVEL_TPDU       0x00010000u
#define IFD_FEAT_LEVEL_SHORT_APDU 0x00020000u
#define IFD_FEAT_LEVEL_EXT_APDU   0x00040000u

/* bPINSupport bits (CCID rev 1.1 §5.1). */
#define IFD_PIN_VERIFY 0x01u
#define IFD_PIN_MODIFY 0x02u

/* The CCID class descriptor, capped to what this host supports. */
typedef struct {
    uint16_t bcd_ccid;
    uint8_t max_slot_index;
    uint8_t voltage_support;
    uint32_t protocols;         /* bit 0 T=0, bit 1 T=1 (others dropped) */
    uint32_t default_clock_khz; /* never 0 (4000 if the device says 0) */
    uint32_t max_clock_khz;
    uint32_t data_rate;
    uint32_t max_data_rate; /* bps; never 0 */
    uint32_t max_ifsd;      /* ≤ 254 */
    uint32_t features;
    uint32_t max_msg_len; /* dwMaxCCIDMessageLength, capped to IFD_MSG_MAX */
    uint8_t class_get_response;
    uint8_t class_envelope;
    uint16_t lcd_layout;
    uint8_t pin_support; /* IFD_PIN_VERIFY | IFD_PIN_MODIFY only */
    uint8_t max_busy_slots;
} ifd_ccid_desc_t;

/* What the host needs from the device and configuration descriptors. */
typedef struct {
    uint16_t vid;
    uint16_t pid;
    uint16_t bcd_device;
    uint8_t i_manufacturer;
    uint8_t i_product;
    uint8_t i_serial;
    uint8_t config_value; /* bConfigurationValue for SET_CONFIGURATION */
    uint8_t iface;        /* bInterfaceNumber of the CCID interface */
    uint8_t ep_bulk_out;
    uint8_t ep_bulk_in;
    uint8_t ep_intr_in; /* 0: none (no slot change notifications) */
    ifd_ccid_desc_t ccid;
} ifd_usb_info_t;

/* Device descriptor (USB 2.0 §9.6.1): fills vid, pid, bcd_device, string indexes. */
ifd_st_t ifd_desc_parse_device(const uint8_t *d, size_t len, ifd_usb_info_t *info);

/* Total length announced by a configuration descriptor header (USB 2.0
 * §9.6.3), capped to IFD_CONFIG_MAX. */
ifd_st_t ifd_desc_config_total(const uint8_t *d, size_t len, size_t *total);

/* Whole configuration descriptor: finds the first CCID interface (class 0x0B,
 * subclass 0, protocol 0, alternate setting 0), its class descriptor and its
 * bulk OUT, bulk IN and interrupt IN endpoints. IFD_ST_UNSUPPORTED when there
 * is no usable CCID interface. */
ifd_st_t ifd_desc_parse_config(const uint8_t *d, size_t len, ifd_usb_info_t *info);

/* CCID class descriptor (CCID rev 1.1 §5.1), bLength ≥ 0x36. */
ifd_st_t ifd_desc_parse_ccid(const uint8_t *d, size_t len, ifd_ccid_desc_t *out);

/* String descriptor (USB 2.0 §9.6.7) to printable ASCII (others → '?'),
 * NUL-terminated, truncated to cap - 1. */
ifd_st_t ifd_desc_string_ascii(const uint8_t *d, size_t len, char *out, size_t cap);

#endif
