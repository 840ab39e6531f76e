/* ifd_features: the PC/SC part 10 (v2.02.09) answers the driver gives through
 * SCardControl: the feature list of CM_IOCTL_GET_FEATURE_REQUEST (§2.2), the
 * FEATURE_GET_TLV_PROPERTIES list (§2.6.14) and FEATURE_IFD_PIN_PROPERTIES
 * (§2.6.8). What is offered is derived from the CCID descriptor (bPINSupport,
 * wLcdLayout, dwFeatures), as libccid does. Pure functions. */
#ifndef CACHET_IFD_FEATURES_H
#define CACHET_IFD_FEATURES_H

#include <stddef.h>
#include <stdint.h>

#include "ifd_desc.h"

/* SCARD_CTL_CODE(c) of pcsc-lite's reader.h; feature control codes follow the
 * libccid convention SCARD_CTL_CODE(0x330000 + feature tag). */
#define IFD_CTL_CODE(c)               (0x42000000u + (uint32_t)(c))
#define IFD_IOCTL_GET_FEATURE_REQUEST IFD_CTL_CODE(3400)
#define IFD_IOCTL_VENDOR_IFD_EXCHANGE IFD_CTL_CODE(1)
#define IFD_IOCTL_FEATURE(tag)        IFD_CTL_CODE(0x330000u + (uint32_t)(tag))

enum {
    IFD_FEATURE_VERIFY_PIN_DIRECT = 0x06,
    IFD_FEATURE_MODIFY_PIN_DIRECT = 0x07,
    IFD_FEATURE_IFD_PIN_PROPERTIES = 0x0A,
    IFD_FEATURE_GET_TLV_PROPERTIES = 0x12,
    IFD_FEATURE_CCID_ESC_COMMAND = 0x13,
};

/* The feature list: 6-byte records tag, length 4, control code (big-endian).
 * escape: IOCTL_SMARTCARD_VENDOR_IFD_EXCHANGE is enabled. Returns the length,
 * 0 if cap is too small. */
size_t ifd_features_list(const ifd_ccid_desc_t *d, bool escape, uint8_t *out, size_t cap);

/* Known PIN limits (0 = unknown: the property is left out). The secure PIN
 * entry issue fills these from the appliance. */
typedef struct {
    uint8_t min_pin;
    uint8_t max_pin;
} ifd_pin_limits_t;

/* The TLV properties (tag, length, little-endian value). Returns the length,
 * 0 if cap is too small. */
size_t ifd_features_tlv_properties(const ifd_usb_info_t *info, bool escape,
                                   const ifd_pin_limits_t *pin, uint8_t *out, size_t cap);

/* PIN_PROPERTIES_STRUCTURE (wLcdLayout LE, bEntryValidationCondition,
 * bTimeOut2): 4 bytes, 0 if cap is too small. */
size_t ifd_features_pin_properties(const ifd_ccid_desc_t *d, uint8_t *out, size_t cap);

#endif
