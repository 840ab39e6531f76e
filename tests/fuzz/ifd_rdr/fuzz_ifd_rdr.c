/* Fuzz target for the drivers/ifd parsers. The first byte picks the parser,
 * the rest is its input (what a device, a card or a configuration file could
 * send): ifd_rdr_parse, ifd_intr_parse, the configuration / device / string
 * descriptor parsers, the ATR parser with the SetParameters choice and
 * timeout computation, DEVICENAME and Info.plist options. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ifd_atr.h"
#include "ifd_desc.h"
#include "ifd_rdr.h"
#include "ifd_transport.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The appliance's CCID descriptor, as parameter-choice context. */
static const ifd_ccid_desc_t appliance = {
    .bcd_ccid = 0x0110,
    .voltage_support = 7,
    .protocols = 3,
    .default_clock_khz = 5000,
    .max_clock_khz = 5000,
    .data_rate = 13441,
    .max_data_rate = 430108,
    .max_ifsd = 254,
    .features = 0x0002049C,
    .max_msg_len = 271,
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t sel = data[0];
    const uint8_t *p = data + 1;
    size_t n = size - 1;
    switch (sel % 8) {
    case 0: {
        ifd_rdr_msg_t m;
        if (ifd_rdr_parse(p, n, &m) == IFD_RDR_OK && m.data_len) {
            /* the data must lie inside the input */
            volatile uint8_t x = m.data[m.data_len - 1];
            (void)x;
            if (m.data < p || m.data + m.data_len > p + n)
                abort();
        }
        break;
    }
    case 1: {
        ifd_intr_msg_t m;
        (void)ifd_intr_parse(p, n, &m);
        break;
    }
    case 2: {
        ifd_usb_info_t info;
        memset(&info, 0, sizeof info);
        if (ifd_desc_parse_config(p, n, &info) == IFD_ST_OK) {
            if (info.ccid.max_msg_len > IFD_MSG_MAX || info.ccid.max_ifsd > 254 ||
                info.ccid.default_clock_khz == 0 || info.ccid.max_data_rate == 0)
                abort();
        }
        break;
    }
    case 3: {
        ifd_usb_info_t info;
        memset(&info, 0, sizeof info);
        (void)ifd_desc_parse_device(p, n, &info);
        char s[64];
        (void)ifd_desc_string_ascii(p, n, s, sizeof s);
        if (strlen(s) >= sizeof s)
            abort();
        break;
    }
    case 4:
    case 5: {
        ifd_atr_t a;
        if (ifd_atr_parse(p, n, &a) != IFD_ST_OK)
            break;
        ifd_params_t prm;
        ifd_params_default(&a, &prm);
        (void)ifd_params_timeout_ms(&prm, appliance.default_clock_khz);
        ifd_ccid_desc_t d = appliance;
        if (sel & 0x10)
            d.features &= ~0xC0u;
        if (sel & 0x20)
            d.max_data_rate = 20000;
        for (uint8_t proto = 0; proto < 2; proto++) {
            bool send;
            if (ifd_params_choose(&a, &d, proto, (sel & 0x40) ? sel : -1, &prm, &send) ==
                IFD_ST_OK) {
                uint8_t enc[7];
                size_t len = ifd_params_encode(&prm, enc);
                if (len != (proto ? 7u : 5u))
                    abort();
                uint32_t t = ifd_params_timeout_ms(&prm, d.default_clock_khz);
                if (t < 10000u || t > 600000u)
                    abort();
            }
        }
        break;
    }
    case 6: {
        char name[600];
        size_t m = n < sizeof name - 1 ? n : sizeof name - 1;
        memcpy(name, p, m);
        name[m] = '\0';
        ifd_devname_t d;
        if (ifd_devname_parse(name, &d) == IFD_ST_OK && d.kind == IFD_DEV_SOCK &&
            strlen(d.path) >= sizeof d.path)
            abort();
        break;
    }
    case 7: {
        uint32_t o;
        (void)ifd_plist_driver_options((const char *)p, n, &o);
        break;
    }
    }
    return 0;
}
