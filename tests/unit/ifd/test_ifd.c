/* Unit tests of drivers/ifd: the pure parsers (RDR_to_PC, descriptors, ATR,
 * DEVICENAME, Info.plist), the parameter choice, and the IFDH API driven
 * against a scripted CCID device at the transport seam (fake_device.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ifdhandler.h>
#include <pthread.h>
#include <reader.h>
#include <string.h>

#include "fake_device.h"
#include "ifd_atr.h"
#include "ifd_chan.h"
#include "ifd_desc.h"
#include "ifd_features.h"
#include "ifd_rdr.h"
#include "ifd_transport.h"

int ifd_sock_tests(void);

#define LUN 0x10000ul

static const uint8_t ATR_CPS3_T0[] = {0x3B, 0xAC, 0x00, 0x40, 0x2A, 0x00, 0x12, 0x25, 0x00,
                                      0x64, 0x80, 0x00, 0x03, 0x10, 0x00, 0x90, 0x00};
/* T=1 with TA1=0x18 (spec/cpx-card.md: 3B 9B 18 81 01 ...), TCK computed below. */
static uint8_t ATR_TA18_T1[] = {0x3B, 0x9B, 0x18, 0x81, 0x01, 0x00, 0x12, 0x25, 0x00,
                                0x64, 0x80, 0x11, 0x22, 0x33, 0x00, 0x90, 0x00};
static const uint8_t ATR_T1_IFSC254[] = {0x3B, 0x8B, 0x81, 0x11, 0xFE, 0x00, 0x12, 0x25, 0x00,
                                         0x64, 0x80, 0x00, 0x03, 0xA5, 0x00, 0x90, 0x00};

static void fix_tck(uint8_t *atr, size_t len)
{
    uint8_t x = 0;
    for (size_t i = 1; i + 1 < len; i++)
        x ^= atr[i];
    atr[len - 1] = x;
}

static void quiet(const char *line)
{
    (void)line;
}

/* ---- pure parsers --------------------------------------------------------- */

static void test_rdr_parse(void **state)
{
    (void)state;
    ifd_rdr_msg_t m;
    uint8_t db[] = {0x80, 2, 0, 0, 0, 0, 7, 0x00, 0, 0, 0x90, 0x00};
    assert_int_equal(ifd_rdr_parse(db, sizeof db, &m), IFD_RDR_OK);
    assert_int_equal(m.type, 0x80);
    assert_int_equal(m.seq, 7);
    assert_int_equal(m.data_len, 2);
    assert_int_equal(m.data[0], 0x90);
    /* dwLength larger / smaller than the transfer */
    db[1] = 3;
    assert_int_equal(ifd_rdr_parse(db, sizeof db, &m), IFD_RDR_BAD_LENGTH);
    db[1] = 0xFF;
    db[4] = 0xFF;
    assert_int_equal(ifd_rdr_parse(db, sizeof db, &m), IFD_RDR_BAD_LENGTH);
    assert_int_equal(ifd_rdr_parse(db, 9, &m), IFD_RDR_SHORT);
    /* RFU bits in bStatus */
    uint8_t ss[] = {0x81, 0, 0, 0, 0, 0, 1, 0x04, 0, 0};
    assert_int_equal(ifd_rdr_parse(ss, sizeof ss, &m), IFD_RDR_BAD_STATUS);
    ss[7] = 0xC0;
    assert_int_equal(ifd_rdr_parse(ss, sizeof ss, &m), IFD_RDR_BAD_STATUS);
    ss[7] = 0x42;
    assert_int_equal(ifd_rdr_parse(ss, sizeof ss, &m), IFD_RDR_OK);
    assert_int_equal(m.icc_status, IFD_ICC_ABSENT);
    assert_int_equal(m.cmd_status, IFD_CMD_FAILED);
    /* a request type is not an answer */
    uint8_t req[] = {0x6F, 0, 0, 0, 0, 0, 1, 0, 0, 0};
    assert_int_equal(ifd_rdr_parse(req, sizeof req, &m), IFD_RDR_BAD_TYPE);
    /* Parameters: T=1 needs 7 bytes */
    uint8_t par[] = {0x82, 5, 0, 0, 0, 0, 1, 0, 0, 1, 0x11, 0x10, 0, 0x4D, 0};
    assert_int_equal(ifd_rdr_parse(par, sizeof par, &m), IFD_RDR_BAD_FIELD);
    par[9] = 0;
    assert_int_equal(ifd_rdr_parse(par, sizeof par, &m), IFD_RDR_OK);
    /* Slot status carries no data */
    uint8_t ss2[] = {0x81, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0xAA};
    assert_int_equal(ifd_rdr_parse(ss2, sizeof ss2, &m), IFD_RDR_BAD_LENGTH);

    ifd_intr_msg_t im;
    uint8_t n1[] = {0x50, 0x03};
    assert_int_equal(ifd_intr_parse(n1, sizeof n1, &im), IFD_RDR_OK);
    assert_int_equal(im.slot0_state, IFD_SLOT_PRESENT | IFD_SLOT_CHANGED);
    assert_int_equal(ifd_intr_parse(n1, 1, &im), IFD_RDR_SHORT);
    uint8_t hw[] = {0x51, 0, 3, 1};
    assert_int_equal(ifd_intr_parse(hw, sizeof hw, &im), IFD_RDR_OK);
    assert_int_equal(im.hw_code, 1);
    assert_int_equal(ifd_intr_parse(hw, 3, &im), IFD_RDR_BAD_LENGTH);
}

static void test_pc_build(void **state)
{
    (void)state;
    uint8_t out[16];
    uint8_t spec[3] = {1, 2, 3};
    uint8_t data[2] = {0xAA, 0xBB};
    assert_int_equal(ifd_pc_build(out, sizeof out, 0x6F, 0, 9, spec, data, 2), 12);
    const uint8_t want[] = {0x6F, 2, 0, 0, 0, 0, 9, 1, 2, 3, 0xAA, 0xBB};
    assert_memory_equal(out, want, sizeof want);
    assert_int_equal(ifd_pc_build(out, 11, 0x6F, 0, 9, spec, data, 2), 0);
}

static void test_desc_parse(void **state)
{
    (void)state;
    fake_t f;
    fake_init(&f, 0, 0);
    ifd_usb_info_t info;
    memset(&info, 0, sizeof info);
    assert_int_equal(ifd_desc_parse_config(f.config, f.config_len, &info), IFD_ST_OK);
    assert_int_equal(info.config_value, 1);
    assert_int_equal(info.iface, 0);
    assert_int_equal(info.ep_bulk_out, 0x01);
    assert_int_equal(info.ep_bulk_in, 0x82);
    assert_int_equal(info.ep_intr_in, 0x83);
    assert_int_equal(info.ccid.features, 0x0002049Cu);
    assert_int_equal(info.ccid.max_msg_len, 271);
    assert_int_equal(info.ccid.default_clock_khz, 5000);
    assert_int_equal(info.ccid.max_data_rate, 430108);
    assert_int_equal(info.ccid.max_ifsd, 254);
    assert_int_equal(info.ccid.protocols, 3);
    assert_int_equal(info.ccid.pin_support, 0);

    /* caps: dwMaxCCIDMessageLength and dwMaxIFSD from outside */
    uint8_t cfg[256];
    memcpy(cfg, f.config, f.config_len);
    cfg[18 + 44] = 0xFF;
    cfg[18 + 45] = 0xFF;
    cfg[18 + 46] = 0xFF;
    cfg[18 + 47] = 0x7F;
    cfg[18 + 28] = 0x2C;
    cfg[18 + 29] = 0x01; /* 300 */
    assert_int_equal(ifd_desc_parse_config(cfg, f.config_len, &info), IFD_ST_OK);
    assert_int_equal(info.ccid.max_msg_len, IFD_MSG_MAX);
    assert_int_equal(info.ccid.max_ifsd, 254);
    /* too small a message length */
    cfg[18 + 44] = 5;
    cfg[18 + 45] = cfg[18 + 46] = cfg[18 + 47] = 0;
    assert_int_not_equal(ifd_desc_parse_config(cfg, f.config_len, &info), IFD_ST_OK);

    /* truncated: a descriptor running past the end */
    memcpy(cfg, f.config, f.config_len);
    assert_int_not_equal(ifd_desc_parse_config(cfg, f.config_len - 3, &info), IFD_ST_OK);
    /* bLength 0 would loop forever */
    cfg[9] = 0;
    assert_int_equal(ifd_desc_parse_config(cfg, f.config_len, &info), IFD_ST_PROTO);
    /* not a CCID interface */
    memcpy(cfg, f.config, f.config_len);
    cfg[9 + 5] = 0x03;
    assert_int_equal(ifd_desc_parse_config(cfg, f.config_len, &info), IFD_ST_UNSUPPORTED);
    /* wTotalLength capped */
    size_t total;
    uint8_t big[9] = {9, 2, 0xFF, 0xFF, 1, 1, 0, 0x80, 0x32};
    assert_int_equal(ifd_desc_config_total(big, 9, &total), IFD_ST_OK);
    assert_int_equal(total, IFD_CONFIG_MAX);

    char s[8];
    const uint8_t str[] = {0x0E, 0x03, 'C', 0, 'a', 0, 'c', 0, 'h', 0, 'e', 0, 't', 0};
    assert_int_equal(ifd_desc_string_ascii(str, sizeof str, s, sizeof s), IFD_ST_OK);
    assert_string_equal(s, "Cachet");
    assert_int_equal(ifd_desc_string_ascii(str, sizeof str, s, 4), IFD_ST_OK);
    assert_string_equal(s, "Cac");
    fake_destroy(&f);
}

static void test_devname(void **state)
{
    (void)state;
    ifd_devname_t d;
    assert_int_equal(ifd_devname_parse("sock:/srv/x/usb.sock", &d), IFD_ST_OK);
    assert_int_equal(d.kind, IFD_DEV_SOCK);
    assert_string_equal(d.path, "/srv/x/usb.sock");
    assert_int_equal(d.options, 0);
    assert_int_equal(ifd_devname_parse("sock:/srv/x/usb.sock@escape", &d), IFD_ST_OK);
    assert_string_equal(d.path, "/srv/x/usb.sock");
    assert_int_equal(d.options, IFD_OPT_ESCAPE);
    assert_int_equal(ifd_devname_parse("sock:/a@bogus", &d), IFD_ST_PARAM);
    assert_int_equal(ifd_devname_parse("sock:/a@", &d), IFD_ST_PARAM);
    assert_int_equal(ifd_devname_parse("usb:1209:cac7", &d), IFD_ST_OK);
    assert_int_equal(d.kind, IFD_DEV_USB_ID);
    assert_int_equal(d.vid, 0x1209);
    assert_int_equal(d.pid, 0xCAC7);
    assert_int_equal(ifd_devname_parse("usb:1209/cac7:libudev:0:/dev/bus/usb/001/005", &d),
                     IFD_ST_OK);
    assert_int_equal(d.kind, IFD_DEV_USB_LIBUDEV);
    assert_int_equal(d.iface, 0);
    assert_int_equal(d.bus, 1);
    assert_int_equal(d.addr, 5);
    assert_int_equal(ifd_devname_parse("usb:1209/cac7:libusb-1.0:3:17:0", &d), IFD_ST_OK);
    assert_int_equal(d.kind, IFD_DEV_USB_LIBUSB);
    assert_int_equal(d.bus, 3);
    assert_int_equal(d.addr, 17);
    assert_int_equal(ifd_devname_parse("usb:12090:cac7", &d), IFD_ST_PARAM);
    assert_int_equal(ifd_devname_parse("usb:1209:", &d), IFD_ST_PARAM);
    assert_int_equal(ifd_devname_parse("usb:1209/cac7:libudev:x:/dev/bus/usb/1/2", &d),
                     IFD_ST_PARAM);
    assert_int_equal(ifd_devname_parse("/dev/ttyS0", &d), IFD_ST_PARAM);
    assert_int_equal(ifd_devname_parse("sock:", &d), IFD_ST_PARAM);
    char longname[300];
    memset(longname, 'a', sizeof longname);
    memcpy(longname, "sock:/", 6);
    longname[sizeof longname - 1] = '\0';
    assert_int_equal(ifd_devname_parse(longname, &d), IFD_ST_PARAM);

    uint32_t o = 0;
    const char *pl = "<dict><key>ifdDriverOptions</key>\n\t<string>0x0001</string></dict>";
    assert_int_equal(ifd_plist_driver_options(pl, strlen(pl), &o), IFD_ST_OK);
    assert_int_equal(o, 1);
    const char *pl2 = "<key>ifdDriverOptions</key><key>x</key><string>0x0001</string>";
    assert_int_equal(ifd_plist_driver_options(pl2, strlen(pl2), &o), IFD_ST_PROTO);
    assert_int_equal(ifd_plist_driver_options("<dict/>", 7, &o), IFD_ST_PROTO);
}

static void test_atr_and_params(void **state)
{
    (void)state;
    ifd_atr_t a;
    assert_int_equal(ifd_atr_parse(ATR_CPS3_T0, sizeof ATR_CPS3_T0, &a), IFD_ST_OK);
    assert_false(a.has_ta1);
    assert_true(a.has_tc2);
    assert_int_equal(a.tc2, 0x2A);
    assert_int_equal(a.protocols, 0x01);
    assert_int_equal(a.hist_len, 12);

    fake_t f;
    fake_init(&f, 0, 0);
    ifd_usb_info_t info;
    memset(&info, 0, sizeof info);
    assert_int_equal(ifd_desc_parse_config(f.config, f.config_len, &info), IFD_ST_OK);
    ifd_params_t p;
    bool send;
    uint8_t enc[7];
    /* CPS3, T=0: default Fi/Di, WI = TC2 = 42 */
    assert_int_equal(ifd_params_choose(&a, &info.ccid, 0, -1, &p, &send), IFD_ST_OK);
    assert_true(send);
    assert_int_equal(ifd_params_encode(&p, enc), 5);
    const uint8_t t0[] = {0x11, 0x00, 0x00, 0x2A, 0x00};
    assert_memory_equal(enc, t0, 5);
    assert_int_equal(ifd_params_choose(&a, &info.ccid, 1, -1, &p, &send), IFD_ST_UNSUPPORTED);
    /* WT = 42·960·372/5 MHz = 3.0 s; 3·(WT + wire) > 10 s */
    uint32_t t = ifd_params_timeout_ms(&p, 5000);
    assert_true(t >= 10000u && t < 20000u);

    /* TA1 = 0x18, T=1: F=372 D=12 → 161 kbit/s at 5 MHz ≤ dwMaxDataRate */
    fix_tck(ATR_TA18_T1, sizeof ATR_TA18_T1);
    assert_int_equal(ifd_atr_parse(ATR_TA18_T1, sizeof ATR_TA18_T1, &a), IFD_ST_OK);
    assert_true(a.tck_ok);
    assert_int_equal(a.ta1, 0x18);
    assert_int_equal(a.first_proto, 1);
    assert_int_equal(ifd_params_choose(&a, &info.ccid, 1, -1, &p, &send), IFD_ST_OK);
    assert_int_equal(ifd_params_encode(&p, enc), 7);
    const uint8_t t1[] = {0x18, 0x10, 0x00, 0x4D, 0x00, 0x20, 0x00};
    assert_memory_equal(enc, t1, 7);
    /* a slower reader: Di falls back below 12 with the same Fi */
    ifd_ccid_desc_t slow = info.ccid;
    slow.max_data_rate = 60000; /* 5 MHz·4/372 = 53763 fits, D=8 (107 kbit/s) does not */
    assert_int_equal(ifd_params_choose(&a, &slow, 1, -1, &p, &send), IFD_ST_OK);
    assert_int_equal(p.fidi, 0x13);
    /* no automatic PPS: default speed, first protocol only */
    slow = info.ccid;
    slow.features &= ~(IFD_FEAT_AUTO_PPS_CUR | IFD_FEAT_AUTO_PPS_PROP);
    assert_int_equal(ifd_params_choose(&a, &slow, 1, -1, &p, &send), IFD_ST_OK);
    assert_int_equal(p.fidi, 0x11);
    /* specific mode (TA2) naming T=0 forbids T=1 */
    ifd_atr_t spec = a;
    spec.has_ta2 = true;
    spec.ta2 = 0x00;
    spec.protocols = 0x03;
    assert_int_equal(ifd_params_choose(&spec, &info.ccid, 1, -1, &p, &send), IFD_ST_UNSUPPORTED);
    spec.ta2 = 0x11; /* implicit parameters */
    assert_int_equal(ifd_params_choose(&spec, &info.ccid, 1, -1, &p, &send), IFD_ST_UNSUPPORTED);

    /* IFSC 254 from TA3 */
    assert_int_equal(ifd_atr_parse(ATR_T1_IFSC254, sizeof ATR_T1_IFSC254, &a), IFD_ST_OK);
    assert_true(a.tck_ok);
    assert_int_equal(ifd_params_choose(&a, &info.ccid, 1, -1, &p, &send), IFD_ST_OK);
    assert_int_equal(p.ifsc, 254);
    assert_int_equal(p.fidi, 0x11);

    /* malformed ATRs */
    assert_int_equal(ifd_atr_parse(ATR_CPS3_T0, 5, &a), IFD_ST_PROTO);
    const uint8_t bad_ts[] = {0x3A, 0x00};
    assert_int_equal(ifd_atr_parse(bad_ts, 2, &a), IFD_ST_PROTO);
    const uint8_t no_tck[] = {0x3B, 0x80, 0x01};
    assert_int_equal(ifd_atr_parse(no_tck, 3, &a), IFD_ST_PROTO);
    fake_destroy(&f);
}

/* ---- IFDH API over the fake device ---------------------------------------- */

typedef struct {
    fake_t f;
} fx_t;

static int setup_dev(void **state, uint8_t pin, uint32_t options)
{
    static fx_t fx;
    fake_init(&fx.f, pin, pin ? 0x0210 : 0);
    ifd_log_set_sink(quiet);
    if (ifd_chan_create(LUN, "fake", &fake_ops, &fx.f, true, true, options) != IFD_SUCCESS)
        return -1;
    *state = &fx;
    return 0;
}

static int setup(void **state)
{
    return setup_dev(state, 0, 0);
}

static int setup_pinpad(void **state)
{
    return setup_dev(state, 0x03, IFD_OPT_ESCAPE);
}

static int teardown(void **state)
{
    fx_t *fx = *state;
    (void)IFDHCloseChannel(LUN);
    fake_destroy(&fx->f);
    ifd_log_set_sink(NULL);
    return 0;
}

static void insert_and_power(fake_t *f, const uint8_t *atr, size_t len)
{
    fake_set_card(f, 1, atr, len);
    UCHAR buf[MAX_ATR_SIZE];
    DWORD n = sizeof buf;
    assert_int_equal(IFDHPowerICC(LUN, IFD_POWER_UP, buf, &n), IFD_SUCCESS);
    assert_int_equal(n, len);
    assert_memory_equal(buf, atr, len);
}

static void test_create_and_caps(void **state)
{
    fx_t *fx = *state;
    assert_int_equal(fx->f.set_config_value, 1);
    UCHAR v[64];
    DWORD n = sizeof v;
    assert_int_equal(IFDHGetCapabilities(LUN, TAG_IFD_SLOTS_NUMBER, &n, v), IFD_SUCCESS);
    assert_int_equal(n, 1);
    assert_int_equal(v[0], 1);
    n = sizeof v;
    assert_int_equal(IFDHGetCapabilities(LUN, TAG_IFD_THREAD_SAFE, &n, v), IFD_SUCCESS);
    assert_int_equal(v[0], 1);
    n = sizeof v;
    assert_int_equal(IFDHGetCapabilities(LUN, TAG_IFD_SIMULTANEOUS_ACCESS, &n, v), IFD_SUCCESS);
    assert_int_equal(v[0], 16);
    n = sizeof v;
    assert_int_equal(IFDHGetCapabilities(LUN, SCARD_ATTR_VENDOR_NAME, &n, v), IFD_SUCCESS);
    assert_string_equal((char *)v, "Cachet");
    n = sizeof v;
    assert_int_equal(IFDHGetCapabilities(LUN, SCARD_ATTR_MAXINPUT, &n, v), IFD_SUCCESS);
    uint32_t maxin;
    memcpy(&maxin, v, 4);
    assert_int_equal(maxin, 261);
    n = sizeof v;
    assert_int_equal(IFDHGetCapabilities(LUN, SCARD_ATTR_VENDOR_IFD_VERSION, &n, v), IFD_SUCCESS);
    memcpy(&maxin, v, 4);
    assert_int_equal(maxin, 0x01000000u);
    n = sizeof v;
    assert_int_equal(IFDHGetCapabilities(LUN, TAG_IFD_POLLING_THREAD_WITH_TIMEOUT, &n, v),
                     IFD_SUCCESS);
    assert_int_equal(n, sizeof(void *));
    n = sizeof v;
    assert_int_equal(IFDHGetCapabilities(LUN, TAG_IFD_POLLING_THREAD_KILLABLE, &n, v), IFD_SUCCESS);
    assert_int_equal(v[0], 0);
    n = 1;
    assert_int_equal(IFDHGetCapabilities(LUN, TAG_IFD_STOP_POLLING_THREAD, &n, v),
                     IFD_ERROR_INSUFFICIENT_BUFFER);
    n = sizeof v;
    assert_int_equal(IFDHGetCapabilities(LUN, 0x12345, &n, v), IFD_ERROR_TAG);
    n = sizeof v;
    assert_int_equal(IFDHGetCapabilities(LUN + 0x10000, TAG_IFD_SLOTS_NUMBER, &n, v),
                     IFD_COMMUNICATION_ERROR);
    /* a second channel on the same Lun is refused */
    assert_int_equal(ifd_chan_create(LUN, "fake", &fake_ops, &fx->f, true, true, 0),
                     IFD_COMMUNICATION_ERROR);
}

static void test_power(void **state)
{
    fx_t *fx = *state;
    assert_int_equal(IFDHICCPresence(LUN), IFD_ICC_NOT_PRESENT);
    UCHAR buf[MAX_ATR_SIZE];
    DWORD n = sizeof buf;
    assert_int_equal(IFDHPowerICC(LUN, IFD_POWER_UP, buf, &n), IFD_ICC_NOT_PRESENT);
    assert_int_equal(n, 0);
    insert_and_power(&fx->f, ATR_CPS3_T0, sizeof ATR_CPS3_T0);
    assert_int_equal(IFDHICCPresence(LUN), IFD_ICC_PRESENT);
    n = sizeof buf;
    assert_int_equal(IFDHGetCapabilities(LUN, TAG_IFD_ATR, &n, buf), IFD_SUCCESS);
    assert_int_equal(n, sizeof ATR_CPS3_T0);
    n = 1;
    assert_int_equal(IFDHGetCapabilities(LUN, SCARD_ATTR_ICC_INTERFACE_STATUS, &n, buf),
                     IFD_SUCCESS);
    assert_int_equal(buf[0], 1);
    /* warm reset: IccPowerOn without IccPowerOff */
    unsigned before = fx->f.cmd_count;
    n = sizeof buf;
    assert_int_equal(IFDHPowerICC(LUN, IFD_RESET, buf, &n), IFD_SUCCESS);
    assert_int_equal(fx->f.cmd_count, before + 1);
    assert_int_equal(fx->f.cmd[before][0], IFD_PC_ICC_POWER_ON);
    /* power up of a powered card: cold reset = off then on */
    n = sizeof buf;
    assert_int_equal(IFDHPowerICC(LUN, IFD_POWER_UP, buf, &n), IFD_SUCCESS);
    assert_int_equal(fx->f.cmd[before + 1][0], IFD_PC_ICC_POWER_OFF);
    assert_int_equal(fx->f.cmd[before + 2][0], IFD_PC_ICC_POWER_ON);
    /* bPowerSelect 0: the appliance selects the voltage itself */
    assert_int_equal(fx->f.cmd[before + 2][7], 0);
    n = sizeof buf;
    assert_int_equal(IFDHPowerICC(LUN, IFD_POWER_DOWN, buf, &n), IFD_SUCCESS);
    assert_int_equal(n, 0);
    n = sizeof buf;
    assert_int_equal(IFDHGetCapabilities(LUN, TAG_IFD_ATR, &n, buf), IFD_SUCCESS);
    assert_int_equal(n, 0);
    assert_int_equal(IFDHICCPresence(LUN), IFD_ICC_PRESENT);
    /* small ATR buffer */
    n = 4;
    assert_int_equal(IFDHPowerICC(LUN, IFD_POWER_UP, buf, &n), IFD_ERROR_INSUFFICIENT_BUFFER);
    /* unknown action */
    n = sizeof buf;
    assert_int_equal(IFDHPowerICC(LUN, 999, buf, &n), IFD_NOT_SUPPORTED);
}

static void test_transmit(void **state)
{
    fx_t *fx = *state;
    insert_and_power(&fx->f, ATR_CPS3_T0, sizeof ATR_CPS3_T0);
    const uint8_t resp[] = {0x01, 0x02, 0x90, 0x00};
    memcpy(fx->f.xfr_reply, resp, sizeof resp);
    fx->f.xfr_reply_len = sizeof resp;
    UCHAR apdu[] = {0x00, 0xB0, 0x00, 0x00, 0x02};
    UCHAR rx[258];
    DWORD rn = sizeof rx;
    SCARD_IO_HEADER pci = {SCARD_PROTOCOL_T0, 8};
    assert_int_equal(IFDHTransmitToICC(LUN, pci, apdu, sizeof apdu, rx, &rn, NULL), IFD_SUCCESS);
    assert_int_equal(rn, 4);
    assert_memory_equal(rx, resp, 4);
    size_t cl;
    const uint8_t *c = fake_last_cmd(&fx->f, IFD_PC_XFR_BLOCK, &cl);
    assert_non_null(c);
    assert_int_equal(cl, 15);
    assert_int_equal(c[1], 5); /* dwLength */
    assert_int_equal(c[7], 0); /* bBWI */
    assert_int_equal(c[8], 0); /* wLevelParameter */
    assert_int_equal(c[9], 0);
    assert_memory_equal(c + 10, apdu, 5);
    /* sequence numbers advance */
    uint8_t seq1 = c[6];
    rn = sizeof rx;
    assert_int_equal(IFDHTransmitToICC(LUN, pci, apdu, sizeof apdu, rx, &rn, NULL), IFD_SUCCESS);
    c = fake_last_cmd(&fx->f, IFD_PC_XFR_BLOCK, &cl);
    assert_int_equal(c[6], (uint8_t)(seq1 + 1));
    /* answer bigger than the caller's buffer */
    rn = 3;
    assert_int_equal(IFDHTransmitToICC(LUN, pci, apdu, sizeof apdu, rx, &rn, NULL),
                     IFD_ERROR_INSUFFICIENT_BUFFER);
    assert_int_equal(rn, 0);
    /* command longer than a short APDU */
    UCHAR big[262];
    memset(big, 0, sizeof big);
    rn = sizeof rx;
    assert_int_equal(IFDHTransmitToICC(LUN, pci, big, sizeof big, rx, &rn, NULL),
                     IFD_COMMUNICATION_ERROR);
}

static void test_time_extension(void **state)
{
    fx_t *fx = *state;
    insert_and_power(&fx->f, ATR_CPS3_T0, sizeof ATR_CPS3_T0);
    const uint8_t resp[] = {0x90, 0x00};
    memcpy(fx->f.xfr_reply, resp, sizeof resp);
    fx->f.xfr_reply_len = sizeof resp;
    fx->f.time_extensions = 3;
    UCHAR apdu[] = {0x00, 0x88, 0x00, 0x00, 0x00};
    UCHAR rx[16];
    DWORD rn = sizeof rx;
    SCARD_IO_HEADER pci = {SCARD_PROTOCOL_T0, 8};
    assert_int_equal(IFDHTransmitToICC(LUN, pci, apdu, sizeof apdu, rx, &rn, NULL), IFD_SUCCESS);
    assert_int_equal(rn, 2);

    /* At the CCID level: 5 time extensions 60 ms apart, answer at 360 ms,
     * command timeout 150 ms: each extension restarts the timeout. */
    ifd_chan_t *ch = ifd_chan_get(LUN);
    assert_non_null(ch);
    pthread_mutex_lock(&ch->io);
    fx->f.time_extensions = 5;
    fx->f.time_ext_gap_ms = 60;
    ifd_rdr_msg_t r;
    assert_int_equal(
        ifd_ccid_command(&ch->ccid, IFD_PC_XFR_BLOCK, NULL, apdu, sizeof apdu, 150, &r), IFD_ST_OK);
    assert_int_equal(r.cmd_status, IFD_CMD_OK);
    /* without extensions the same delay is a timeout */
    fx->f.time_extensions = 0;
    fx->f.time_ext_gap_ms = 300;
    assert_int_equal(
        ifd_ccid_command(&ch->ccid, IFD_PC_XFR_BLOCK, NULL, apdu, sizeof apdu, 150, &r),
        IFD_ST_TIMEOUT);
    /* the late answer of that command is dropped as stale (bSeq) */
    fx->f.time_ext_gap_ms = 0;
    uint64_t t0 = ifd_now_ms();
    assert_int_equal(
        ifd_ccid_command(&ch->ccid, IFD_PC_XFR_BLOCK, NULL, apdu, sizeof apdu, 2000, &r),
        IFD_ST_OK);
    assert_true(ifd_now_ms() - t0 < 1000);
    pthread_mutex_unlock(&ch->io);
    ifd_chan_put(ch);
}

static void test_stale_and_malformed(void **state)
{
    fx_t *fx = *state;
    insert_and_power(&fx->f, ATR_CPS3_T0, sizeof ATR_CPS3_T0);
    fx->f.xfr_reply[0] = 0x90;
    fx->f.xfr_reply[1] = 0x00;
    fx->f.xfr_reply_len = 2;
    UCHAR apdu[] = {0x00, 0xB0, 0x00, 0x00, 0x02};
    UCHAR rx[16];
    DWORD rn = sizeof rx;
    SCARD_IO_HEADER pci = {SCARD_PROTOCOL_T0, 8};
    /* an answer with another bSeq arrives first: ignored */
    const uint8_t stale[] = {0x80, 1, 0, 0, 0, 0, 0xEE, 0, 0, 0, 0x6F};
    fake_push_bulk(&fx->f, stale, sizeof stale, 0);
    assert_int_equal(IFDHTransmitToICC(LUN, pci, apdu, sizeof apdu, rx, &rn, NULL), IFD_SUCCESS);
    assert_int_equal(rn, 2);
    assert_int_equal(rx[0], 0x90);
    /* a malformed answer (dwLength lies): communication error, no overread */
    const uint8_t bad[] = {0x80, 0x40, 0, 0, 0, 0, 0, 0, 0, 0, 0x90};
    pthread_mutex_lock(&fx->f.mu);
    fx->f.silent = true;
    pthread_mutex_unlock(&fx->f.mu);
    fake_push_bulk(&fx->f, bad, sizeof bad, 0);
    rn = sizeof rx;
    assert_int_equal(IFDHTransmitToICC(LUN, pci, apdu, sizeof apdu, rx, &rn, NULL),
                     IFD_COMMUNICATION_ERROR);
    assert_int_equal(rn, 0);
}

static void test_error_mapping(void **state)
{
    fx_t *fx = *state;
    insert_and_power(&fx->f, ATR_CPS3_T0, sizeof ATR_CPS3_T0);
    UCHAR apdu[] = {0x00, 0xB0, 0x00, 0x00, 0x02};
    UCHAR rx[16];
    DWORD rn;
    SCARD_IO_HEADER pci = {SCARD_PROTOCOL_T0, 8};
    static const struct {
        uint8_t icc, error;
        RESPONSECODE rc;
        DWORD rn;
    } cases[] = {
        {1, IFD_ERR_ICC_MUTE, IFD_COMMUNICATION_ERROR, 0},
        {0, IFD_ERR_XFR_PARITY, IFD_COMMUNICATION_ERROR, 0},
        {0, IFD_ERR_HW_ERROR, IFD_COMMUNICATION_ERROR, 0},
        {0, IFD_ERR_PIN_CANCELLED, IFD_SUCCESS, 2},
        {0, IFD_ERR_PIN_TIMEOUT, IFD_SUCCESS, 2},
        {2, IFD_ERR_ICC_MUTE, IFD_ICC_NOT_PRESENT, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        fx->f.icc = cases[i].icc;
        fx->f.fail_type = IFD_PC_XFR_BLOCK;
        fx->f.fail_error = cases[i].error;
        fx->f.fail_once = true;
        rn = sizeof rx;
        assert_int_equal(IFDHTransmitToICC(LUN, pci, apdu, sizeof apdu, rx, &rn, NULL),
                         cases[i].rc);
        assert_int_equal(rn, cases[i].rn);
        if (cases[i].error == IFD_ERR_PIN_CANCELLED)
            assert_int_equal(rx[1], 0x01);
    }
    /* power on failing for another reason than absence */
    fx->f.icc = 1;
    fx->f.fail_type = IFD_PC_ICC_POWER_ON;
    fx->f.fail_error = IFD_ERR_BAD_ATR_TCK;
    fx->f.fail_once = true;
    UCHAR atr[MAX_ATR_SIZE];
    DWORD an = sizeof atr;
    assert_int_equal(IFDHPowerICC(LUN, IFD_POWER_UP, atr, &an), IFD_ERROR_POWER_ACTION);
    /* silence: response timeout */
    insert_and_power(&fx->f, ATR_CPS3_T0, sizeof ATR_CPS3_T0);
    ifd_chan_t *ch = ifd_chan_get(LUN);
    ch->timeout_ms = 100; /* instead of ≥ 10 s */
    ifd_chan_put(ch);
    fx->f.silent = true;
    rn = sizeof rx;
    assert_int_equal(IFDHTransmitToICC(LUN, pci, apdu, sizeof apdu, rx, &rn, NULL),
                     IFD_RESPONSE_TIMEOUT);
    fx->f.silent = false;
}

static void test_set_parameters_t0(void **state)
{
    fx_t *fx = *state;
    insert_and_power(&fx->f, ATR_CPS3_T0, sizeof ATR_CPS3_T0);
    assert_int_equal(IFDHSetProtocolParameters(LUN, SCARD_PROTOCOL_T0, 0, 0, 0, 0), IFD_SUCCESS);
    size_t cl;
    const uint8_t *c = fake_last_cmd(&fx->f, IFD_PC_SET_PARAMETERS, &cl);
    assert_non_null(c);
    const uint8_t want[] = {0x61, 5, 0,    0,    0,    0,    c[6], 0 /* T=0 */,
                            0,    0, 0x11, 0x00, 0x00, 0x2A, 0x00};
    assert_int_equal(cl, sizeof want);
    assert_memory_equal(c, want, sizeof want);
    assert_int_equal(IFDHSetProtocolParameters(LUN, SCARD_PROTOCOL_T1, 0, 0, 0, 0),
                     IFD_PROTOCOL_NOT_SUPPORTED);
}

static void test_set_parameters_t1_ta18(void **state)
{
    fx_t *fx = *state;
    fix_tck(ATR_TA18_T1, sizeof ATR_TA18_T1);
    insert_and_power(&fx->f, ATR_TA18_T1, sizeof ATR_TA18_T1);
    assert_int_equal(IFDHSetProtocolParameters(LUN, SCARD_PROTOCOL_T1, 0, 0, 0, 0), IFD_SUCCESS);
    size_t cl;
    const uint8_t *c = fake_last_cmd(&fx->f, IFD_PC_SET_PARAMETERS, &cl);
    assert_non_null(c);
    const uint8_t want[] = {0x61, 7,    0,    0,    0,    0,    c[6], 1 /* T=1 */, 0,
                            0,    0x18, 0x10, 0x00, 0x4D, 0x00, 0x20, 0x00};
    assert_int_equal(cl, sizeof want);
    assert_memory_equal(c, want, sizeof want);
    /* the appliance's PPS fails: protocol not supported, and the card is
     * reported once as removed so that pcscd powers it again */
    fx->f.fail_type = IFD_PC_SET_PARAMETERS;
    fx->f.fail_error = IFD_ERR_PROTOCOL_NOT_SUPPORTED;
    fx->f.fail_once = true;
    assert_int_equal(IFDHSetProtocolParameters(LUN, SCARD_PROTOCOL_T1, 0, 0, 0, 0),
                     IFD_PROTOCOL_NOT_SUPPORTED);
    fx->f.icc = 1; /* the appliance deactivated the card */
    assert_int_equal(IFDHICCPresence(LUN), IFD_ICC_NOT_PRESENT);
    assert_int_equal(IFDHICCPresence(LUN), IFD_ICC_PRESENT);
}

typedef struct {
    RESPONSECODE (*poll)(DWORD, int);
    int timeout;
    RESPONSECODE rc;
    uint64_t elapsed;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
} poller_t;

static void *poll_thread(void *arg)
{
    poller_t *p = arg;
    uint64_t t0 = ifd_now_ms();
    RESPONSECODE rc = p->poll(LUN, p->timeout);
    pthread_mutex_lock(&p->mu);
    p->rc = rc;
    p->elapsed = ifd_now_ms() - t0;
    p->done = true;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

static void start_poller(poller_t *p, pthread_t *th, int timeout)
{
    memset(p, 0, sizeof *p);
    DWORD n = sizeof p->poll;
    assert_int_equal(
        IFDHGetCapabilities(LUN, TAG_IFD_POLLING_THREAD_WITH_TIMEOUT, &n, (PUCHAR)&p->poll),
        IFD_SUCCESS);
    p->timeout = timeout;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    assert_int_equal(pthread_create(th, NULL, poll_thread, p), 0);
}

/* Waits (bounded) for the poller to return; true if it did. */
static bool poller_returned(poller_t *p, unsigned within_ms)
{
    uint64_t deadline = ifd_now_ms() + within_ms;
    pthread_mutex_lock(&p->mu);
    while (!p->done && ifd_now_ms() < deadline) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 10 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&p->cv, &p->mu, &ts);
    }
    bool d = p->done;
    pthread_mutex_unlock(&p->mu);
    return d;
}

static void stop_poller(poller_t *p, pthread_t th)
{
    RESPONSECODE (*stop)(DWORD) = NULL;
    DWORD n = sizeof stop;
    if (!p->done) {
        assert_int_equal(IFDHGetCapabilities(LUN, TAG_IFD_STOP_POLLING_THREAD, &n, (PUCHAR)&stop),
                         IFD_SUCCESS);
        stop(LUN);
    }
    assert_true(poller_returned(p, 2000));
    pthread_join(th, NULL);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
}

static void test_polling_slot_change(void **state)
{
    fx_t *fx = *state;
    poller_t p;
    pthread_t th;
    start_poller(&p, &th, 60000);
    assert_false(poller_returned(&p, 50)); /* nothing happened yet */
    fake_set_card(&fx->f, 1, ATR_CPS3_T0, sizeof ATR_CPS3_T0);
    const uint8_t notify[] = {0x50, 0x03};
    uint64_t t0 = ifd_now_ms();
    fake_push_intr(&fx->f, notify, sizeof notify);
    assert_true(poller_returned(&p, 2000));
    assert_true(ifd_now_ms() - t0 < 200); /* well under 200 ms */
    assert_int_equal(p.rc, IFD_SUCCESS);
    pthread_join(th, NULL);
    assert_int_equal(IFDHICCPresence(LUN), IFD_ICC_PRESENT);

    /* a removal while the card is powered */
    insert_and_power(&fx->f, ATR_CPS3_T0, sizeof ATR_CPS3_T0);
    start_poller(&p, &th, 60000);
    fx->f.icc = 2;
    const uint8_t removed[] = {0x50, 0x02};
    fake_push_intr(&fx->f, removed, sizeof removed);
    assert_true(poller_returned(&p, 2000));
    pthread_join(th, NULL);
    assert_int_equal(IFDHICCPresence(LUN), IFD_ICC_NOT_PRESENT);

    /* the stop function ends a long poll at once */
    start_poller(&p, &th, 600000);
    assert_false(poller_returned(&p, 30));
    stop_poller(&p, th);
    assert_true(p.elapsed < 2000);

    /* ... and is one-shot (pcscd's SCardDisconnect uses it only to restart
     * the poll with another timeout): the next poll blocks again */
    start_poller(&p, &th, 600000);
    assert_false(poller_returned(&p, 100));
    stop_poller(&p, th);
    /* a stop while no poll runs ends the next poll at once, only that one */
    RESPONSECODE (*stop)(DWORD) = NULL;
    DWORD n = sizeof stop;
    assert_int_equal(IFDHGetCapabilities(LUN, TAG_IFD_STOP_POLLING_THREAD, &n, (PUCHAR)&stop),
                     IFD_SUCCESS);
    stop(LUN);
    start_poller(&p, &th, 600000);
    assert_true(poller_returned(&p, 2000));
    pthread_join(th, NULL);
    start_poller(&p, &th, 600000);
    assert_false(poller_returned(&p, 100));
    stop_poller(&p, th);
}

static void test_polling_timeout(void **state)
{
    (void)state;
    poller_t p;
    pthread_t th;
    start_poller(&p, &th, 50);
    assert_true(poller_returned(&p, 2000));
    assert_int_equal(p.rc, IFD_SUCCESS);
    assert_true(p.elapsed >= 40);
    pthread_join(th, NULL);
}

static void test_device_gone(void **state)
{
    fx_t *fx = *state;
    insert_and_power(&fx->f, ATR_CPS3_T0, sizeof ATR_CPS3_T0);
    poller_t p;
    pthread_t th;
    start_poller(&p, &th, 60000);
    /* unplug during an exchange: the command left, the cable goes */
    fx->f.gone_on_xfr = true;
    UCHAR apdu[] = {0x00, 0xB0, 0x00, 0x00, 0x02};
    UCHAR rx[16];
    DWORD rn = sizeof rx;
    SCARD_IO_HEADER pci = {SCARD_PROTOCOL_T0, 8};
    uint64_t t0 = ifd_now_ms();
    assert_int_equal(IFDHTransmitToICC(LUN, pci, apdu, sizeof apdu, rx, &rn, NULL),
                     IFD_NO_SUCH_DEVICE);
    assert_true(ifd_now_ms() - t0 < 1000); /* no hang */
    fx->f.gone_on_xfr = false;
    /* the poller woke up, pcscd then asks for presence */
    assert_true(poller_returned(&p, 2000));
    pthread_join(th, NULL);
    assert_int_equal(IFDHICCPresence(LUN), IFD_NO_SUCH_DEVICE);
    UCHAR atr[MAX_ATR_SIZE];
    DWORD an = sizeof atr;
    assert_int_equal(IFDHPowerICC(LUN, IFD_POWER_UP, atr, &an), IFD_NO_SUCH_DEVICE);
    DWORD got = 0;
    UCHAR buf[64];
    assert_int_equal(IFDHControl(LUN, CM_IOCTL_GET_FEATURE_REQUEST, NULL, 0, buf, sizeof buf, &got),
                     IFD_NO_SUCH_DEVICE);

    /* while gone, the poller watches for the cable; plug → it returns */
    start_poller(&p, &th, 60000);
    assert_false(poller_returned(&p, 250));
    int calls = fx->f.control_calls;
    fake_plug(&fx->f);
    assert_true(poller_returned(&p, 2000));
    assert_int_equal(p.rc, IFD_SUCCESS);
    pthread_join(th, NULL);
    assert_true(fx->f.control_calls > calls); /* enumerated again */
    assert_int_equal(fx->f.reconnects, 1);
    /* the card is there, unpowered: pcscd powers it */
    assert_int_equal(IFDHICCPresence(LUN), IFD_ICC_PRESENT);
    an = sizeof atr;
    assert_int_equal(IFDHPowerICC(LUN, IFD_POWER_UP, atr, &an), IFD_SUCCESS);
}

static void test_features(void **state)
{
    (void)state;
    UCHAR buf[128];
    DWORD got = 0;
    assert_int_equal(IFDHControl(LUN, CM_IOCTL_GET_FEATURE_REQUEST, NULL, 0, buf, sizeof buf, &got),
                     IFD_SUCCESS);
    /* no PIN pad in the descriptor: only FEATURE_GET_TLV_PROPERTIES */
    const uint8_t want[] = {FEATURE_GET_TLV_PROPERTIES, 4, 0x42, 0x33, 0x00, 0x12};
    assert_int_equal(got, sizeof want);
    assert_memory_equal(buf, want, sizeof want);
    assert_int_equal(IFDHControl(LUN, CM_IOCTL_GET_FEATURE_REQUEST, NULL, 0, buf, 5, &got),
                     IFD_ERROR_INSUFFICIENT_BUFFER);
    assert_int_equal(got, 0);

    assert_int_equal(IFDHControl(LUN, 0x42330012, NULL, 0, buf, sizeof buf, &got), IFD_SUCCESS);
    const uint8_t props[] = {
        1,  2, 0x00, 0x00,             /* wLcdLayout */
        3,  1, 0x00,                   /* bTimeOut2 */
        9,  1, 0x00,                   /* bPPDUSupport */
        11, 2, 0x09, 0x12,             /* wIdVendor */
        12, 2, 0xC7, 0xCA,             /* wIdProduct */
        10, 4, 0x00, 0x00, 0x00, 0x00, /* dwMaxAPDUDataSize: short APDUs */
    };
    assert_int_equal(got, sizeof props);
    assert_memory_equal(buf, props, sizeof props);

    /* PIN features are not there without bPINSupport */
    assert_int_equal(IFDHControl(LUN, 0x42330006, NULL, 0, buf, sizeof buf, &got),
                     IFD_ERROR_NOT_SUPPORTED);
    assert_int_equal(IFDHControl(LUN, 0x4233000A, NULL, 0, buf, sizeof buf, &got),
                     IFD_ERROR_NOT_SUPPORTED);
    /* Escape is refused by default */
    UCHAR esc[] = {0x01, 0x02};
    assert_int_equal(IFDHControl(LUN, SCARD_CTL_CODE(1), esc, sizeof esc, buf, sizeof buf, &got),
                     IFD_ERROR_NOT_SUPPORTED);
    assert_int_equal(got, 0);
    /* anything else */
    assert_int_equal(IFDHControl(LUN, SCARD_CTL_CODE(4000), NULL, 0, buf, sizeof buf, &got),
                     IFD_ERROR_NOT_SUPPORTED);
}

static void test_features_pinpad(void **state)
{
    fx_t *fx = *state;
    UCHAR buf[128];
    DWORD got = 0;
    assert_int_equal(IFDHControl(LUN, CM_IOCTL_GET_FEATURE_REQUEST, NULL, 0, buf, sizeof buf, &got),
                     IFD_SUCCESS);
    const uint8_t want[] = {
        FEATURE_VERIFY_PIN_DIRECT,  4, 0x42, 0x33, 0x00, 0x06,
        FEATURE_MODIFY_PIN_DIRECT,  4, 0x42, 0x33, 0x00, 0x07,
        FEATURE_IFD_PIN_PROPERTIES, 4, 0x42, 0x33, 0x00, 0x0A,
        FEATURE_GET_TLV_PROPERTIES, 4, 0x42, 0x33, 0x00, 0x12,
        FEATURE_CCID_ESC_COMMAND,   4, 0x42, 0x00, 0x00, 0x01,
    };
    assert_int_equal(got, sizeof want);
    assert_memory_equal(buf, want, sizeof want);
    assert_int_equal(IFDHControl(LUN, 0x4233000A, NULL, 0, buf, sizeof buf, &got), IFD_SUCCESS);
    const uint8_t pinprops[] = {0x10, 0x02, 0x07, 0x00};
    assert_int_equal(got, 4);
    assert_memory_equal(buf, pinprops, 4);
    assert_int_equal(IFDHControl(LUN, 0x42330012, NULL, 0, buf, sizeof buf, &got), IFD_SUCCESS);
    /* wLcdLayout 0x0210: 2 lines of 16 characters */
    const uint8_t head[] = {1, 2, 0x10, 0x02, 4, 2, 0x10, 0x00, 5, 2, 0x02, 0x00, 2, 1, 0x07};
    assert_memory_equal(buf, head, sizeof head);
    /* the appliance's PIN limits (4..12 digits) follow */
    const uint8_t limits[] = {3, 1, 0, 6, 1, 4, 7, 1, 12};
    assert_memory_equal(buf + sizeof head, limits, sizeof limits);
    /* secure PIN entry without a PIN_VERIFY_STRUCTURE: refused, nothing sent */
    assert_int_equal(IFDHControl(LUN, 0x42330006, NULL, 0, buf, sizeof buf, &got),
                     IFD_ERROR_NOT_SUPPORTED);
    assert_null(fake_last_cmd(&fx->f, IFD_PC_SECURE, &(size_t){0}));
    /* Escape enabled by the driver option: PC_to_RDR_Escape goes out */
    UCHAR esc[] = {0xC0, 0x01};
    assert_int_equal(IFDHControl(LUN, SCARD_CTL_CODE(1), esc, sizeof esc, buf, sizeof buf, &got),
                     IFD_SUCCESS);
    assert_int_equal(got, 2);
    assert_memory_equal(buf, esc, 2);
    size_t cl;
    const uint8_t *c = fake_last_cmd(&fx->f, IFD_PC_ESCAPE, &cl);
    assert_non_null(c);
    assert_int_equal(cl, 12);
}

/* PC/SC part 10 §2.5.2/§2.5.3 structures → PC_to_RDR_Secure, the card's
 * answer back, Cancel/time-out as 64 01 / 64 00, time extensions. */
static void test_secure_pin(void **state)
{
    fx_t *fx = *state;
    insert_and_power(&fx->f, ATR_CPS3_T0, sizeof ATR_CPS3_T0);
    /* what OpenSC 0.23 sends for a CPS (reader-pcsc.c part10_build_verify_pin_block) */
    UCHAR verify[] = {0x1E, 0x1E, 0x82, 0x00, 0x00, 0x08, 0x04, 0x02, 0xFF, 0x00, 0x00, 0x00,
                      0x00, 0x00, 0x00, 0x05, 0x00, 0x00, 0x00, 0x00, 0x20, 0x00, 0x01, 0x00};
    const uint8_t ok[] = {0x90, 0x00};
    memcpy(fx->f.xfr_reply, ok, 2);
    fx->f.xfr_reply_len = 2;
    fx->f.time_extensions = 3;
    fx->f.time_ext_gap_ms = 20;
    UCHAR rx[64];
    DWORD got = 0;
    assert_int_equal(IFDHControl(LUN, 0x42330006, verify, sizeof verify, rx, sizeof rx, &got),
                     IFD_SUCCESS);
    assert_int_equal(got, 2);
    assert_memory_equal(rx, ok, 2);
    size_t cl = 0;
    const uint8_t *c = fake_last_cmd(&fx->f, IFD_PC_SECURE, &cl);
    assert_non_null(c);
    const uint8_t want_v[] = {0x00, 0x1E, 0x82, 0x00, 0x00, 0x08, 0x04, 0x02, 0xFF, 0x00,
                              0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x20, 0x00, 0x01, 0x00};
    assert_int_equal(cl, 10 + sizeof want_v);
    assert_int_equal(ifd_get_le32(c + 1), sizeof want_v);
    assert_int_equal(c[7], 0); /* bBWI */
    assert_int_equal(c[8], 0); /* wLevelParameter */
    assert_memory_equal(c + 10, want_v, sizeof want_v);

    /* modification, 3 messages: bMsgIndex1..3 all kept */
    UCHAR modify[] = {0x1E, 0x1E, 0x82, 0x00, 0x00, 0x00, 0x00, 0x08, 0x04, 0x03,
                      0x02, 0x03, 0x00, 0x00, 0x00, 0x01, 0x02, 0x00, 0x00, 0x00,
                      0x05, 0x00, 0x00, 0x00, 0x00, 0x24, 0x00, 0x01, 0x00};
    assert_int_equal(IFDHControl(LUN, 0x42330007, modify, sizeof modify, rx, sizeof rx, &got),
                     IFD_SUCCESS);
    c = fake_last_cmd(&fx->f, IFD_PC_SECURE, &cl);
    const uint8_t want_m[] = {0x01, 0x1E, 0x82, 0x00, 0x00, 0x00, 0x00, 0x08, 0x04,
                              0x03, 0x02, 0x03, 0x00, 0x00, 0x00, 0x01, 0x02, 0x00,
                              0x00, 0x00, 0x00, 0x24, 0x00, 0x01, 0x00};
    assert_int_equal(cl, 10 + sizeof want_m);
    assert_memory_equal(c + 10, want_m, sizeof want_m);
    /* no message: bMsgIndex2 and 3 are left out of the CCID structure */
    modify[11] = 0x00;
    assert_int_equal(IFDHControl(LUN, 0x42330007, modify, sizeof modify, rx, sizeof rx, &got),
                     IFD_SUCCESS);
    c = fake_last_cmd(&fx->f, IFD_PC_SECURE, &cl);
    assert_int_equal(cl, 10 + sizeof want_m - 2);
    assert_memory_equal(c + 10 + 15, want_m + 17, sizeof want_m - 17);

    /* Cancel and time-out on the keypad: PC/SC part 10 status words */
    fx->f.fail_type = IFD_PC_SECURE;
    fx->f.fail_error = IFD_ERR_PIN_CANCELLED;
    fx->f.fail_once = true;
    assert_int_equal(IFDHControl(LUN, 0x42330006, verify, sizeof verify, rx, sizeof rx, &got),
                     IFD_SUCCESS);
    assert_int_equal(got, 2);
    assert_int_equal(rx[0], 0x64);
    assert_int_equal(rx[1], 0x01);
    fx->f.fail_type = IFD_PC_SECURE;
    fx->f.fail_error = IFD_ERR_PIN_TIMEOUT;
    assert_int_equal(IFDHControl(LUN, 0x42330006, verify, sizeof verify, rx, sizeof rx, &got),
                     IFD_SUCCESS);
    assert_int_equal(rx[1], 0x00);
    /* the reader refuses a field (bError = its offset) */
    ifd_log_set_sink(quiet);
    fx->f.fail_type = IFD_PC_SECURE;
    fx->f.fail_error = 17;
    assert_int_equal(IFDHControl(LUN, 0x42330006, verify, sizeof verify, rx, sizeof rx, &got),
                     IFD_COMMUNICATION_ERROR);
    /* malformed structures never leave the host */
    unsigned before = fx->f.cmd_count;
    verify[15] = 6; /* ulDataLength does not match */
    assert_int_equal(IFDHControl(LUN, 0x42330006, verify, sizeof verify, rx, sizeof rx, &got),
                     IFD_ERROR_NOT_SUPPORTED);
    verify[15] = 5;
    verify[8] = 2; /* bNumberMessage 2 for a verification */
    assert_int_equal(IFDHControl(LUN, 0x42330006, verify, sizeof verify, rx, sizeof rx, &got),
                     IFD_ERROR_NOT_SUPPORTED);
    assert_int_equal(IFDHControl(LUN, 0x42330006, verify, 20, rx, sizeof rx, &got),
                     IFD_ERROR_NOT_SUPPORTED);
    assert_int_equal(fx->f.cmd_count, before);
    verify[8] = 0xFF;
    /* no room for the answer */
    fx->f.fail_type = 0;
    assert_int_equal(IFDHControl(LUN, 0x42330006, verify, sizeof verify, rx, 1, &got),
                     IFD_ERROR_INSUFFICIENT_BUFFER);
    ifd_log_set_sink(NULL);
}

static void test_create_by_name(void **state)
{
    (void)state;
    ifd_log_set_sink(quiet);
    char bad[] = "/dev/ttyS0";
    assert_int_equal(IFDHCreateChannelByName(0x20000, bad), IFD_COMMUNICATION_ERROR);
    /* a socket that is not there yet: the reader exists, the device is gone */
    char later[] = "sock:/nonexistent-cachet-dir/usb.sock";
    assert_int_equal(IFDHCreateChannelByName(0x20000, later), IFD_SUCCESS);
    assert_int_equal(IFDHICCPresence(0x20000), IFD_NO_SUCH_DEVICE);
    UCHAR v[sizeof(void *)];
    DWORD n = sizeof v;
    assert_int_equal(IFDHGetCapabilities(0x20000, TAG_IFD_POLLING_THREAD_WITH_TIMEOUT, &n, v),
                     IFD_SUCCESS);
    assert_int_equal(n, sizeof(void *));
    assert_int_equal(IFDHCloseChannel(0x20000), IFD_SUCCESS);
    assert_int_equal(IFDHCloseChannel(0x20000), IFD_COMMUNICATION_ERROR);
    /* a libudev name for a device that does not exist */
    char udev[] = "usb:1209/cac7:libudev:0:/dev/bus/usb/250/250";
    assert_int_not_equal(IFDHCreateChannelByName(0x30000, udev), IFD_SUCCESS);
    ifd_log_set_sink(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rdr_parse),
        cmocka_unit_test(test_pc_build),
        cmocka_unit_test(test_desc_parse),
        cmocka_unit_test(test_devname),
        cmocka_unit_test(test_atr_and_params),
        cmocka_unit_test(test_create_by_name),
        cmocka_unit_test_setup_teardown(test_create_and_caps, setup, teardown),
        cmocka_unit_test_setup_teardown(test_power, setup, teardown),
        cmocka_unit_test_setup_teardown(test_transmit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_time_extension, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stale_and_malformed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_error_mapping, setup, teardown),
        cmocka_unit_test_setup_teardown(test_set_parameters_t0, setup, teardown),
        cmocka_unit_test_setup_teardown(test_set_parameters_t1_ta18, setup, teardown),
        cmocka_unit_test_setup_teardown(test_polling_slot_change, setup, teardown),
        cmocka_unit_test_setup_teardown(test_polling_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_device_gone, setup, teardown),
        cmocka_unit_test_setup_teardown(test_features, setup, teardown),
        cmocka_unit_test_setup_teardown(test_features_pinpad, setup_pinpad, teardown),
        cmocka_unit_test_setup_teardown(test_secure_pin, setup_pinpad, teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    return rc | ifd_sock_tests();
}
