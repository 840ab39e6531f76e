/* ifdhandler: the pcsc-lite IFD handler ABI (ifdhandler.h, IFD handler v3)
 * on top of ifd_chan (channels), ifd_ccid (CCID rev 1.1 §6 exchanges),
 * ifd_atr (parameters) and ifd_features (PC/SC part 10). These ten IFDH*
 * functions are the only symbols the shared library exports.
 *
 * Runs inside pcscd: no exit/abort/stdout; errors are logged as one stderr
 * line. pcscd serialises the calls for one reader, except the polling
 * function (TAG_IFD_POLLING_THREAD_WITH_TIMEOUT) which its event thread runs
 * concurrently; the channel's locks cover that. */
#include <string.h>

/* The ABI is the only default-visibility code in the library. */
#pragma GCC visibility push(default)
#include <ifdhandler.h>
#pragma GCC visibility pop
#include <reader.h>

#include "ifd_atr.h"
#include "ifd_chan.h"
#include "ifd_features.h"
#include "ifd_rdr.h"
#include "ifd_secure.h"

/* Default device for the numeric IFDHCreateChannel (USB 2.0 VID/PID of the
 * appliance, placeholder from pid.codes). */
#define DEFAULT_DEVICENAME "usb:1209:cac7"
#define IFD_CACHET_VID 0x1209u
#define IFD_CACHET_PID 0xCAC7u

_Static_assert(IFD_IOCTL_GET_FEATURE_REQUEST == CM_IOCTL_GET_FEATURE_REQUEST, "part 10 code");
_Static_assert(IFD_FEATURE_GET_TLV_PROPERTIES == FEATURE_GET_TLV_PROPERTIES, "part 10 tag");
_Static_assert(IFD_FEATURE_VERIFY_PIN_DIRECT == FEATURE_VERIFY_PIN_DIRECT, "part 10 tag");
_Static_assert(IFD_FEATURE_MODIFY_PIN_DIRECT == FEATURE_MODIFY_PIN_DIRECT, "part 10 tag");
_Static_assert(IFD_FEATURE_IFD_PIN_PROPERTIES == FEATURE_IFD_PIN_PROPERTIES, "part 10 tag");
_Static_assert(IFD_FEATURE_CCID_ESC_COMMAND == FEATURE_CCID_ESC_COMMAND, "part 10 tag");
_Static_assert(IFD_ATR_MAX <= MAX_ATR_SIZE, "ATR buffer of pcscd");

/* ---- channel creation --------------------------------------------------- */

RESPONSECODE IFDHCreateChannelByName(DWORD Lun, LPSTR DeviceName)
{
    if (!DeviceName)
        return IFD_COMMUNICATION_ERROR;
    ifd_devname_t dev;
    if (ifd_devname_parse(DeviceName, &dev) != IFD_ST_OK) {
        ifd_log("bad DEVICENAME \"%.80s\" (sock:PATH or usb:VVVV:PPPP)", DeviceName);
        return IFD_COMMUNICATION_ERROR;
    }
    uint32_t options = dev.options | ifd_chan_bundle_options();
    const ifd_transport_ops_t *ops = NULL;
    void *ctx = NULL;
    ifd_st_t st = ifd_transport_open(&dev, &ops, &ctx);
    /* reader.conf devices (sock:, usb:VID:PID) may come later and come back:
     * pcscd 1.9.9 never re-creates their channel, so the driver reconnects.
     * Hotplug names designate one USB device instance: pcscd re-creates. */
    bool reconnectable = dev.kind == IFD_DEV_SOCK || dev.kind == IFD_DEV_USB_ID;
    if (st != IFD_ST_OK && !(st == IFD_ST_GONE && ctx && reconnectable)) {
        if (ctx && ops)
            ops->close(ctx);
        ifd_log("%.80s: cannot open: %s", DeviceName, ifd_st_name(st));
        return st == IFD_ST_GONE ? IFD_NO_SUCH_DEVICE : IFD_COMMUNICATION_ERROR;
    }
    return ifd_chan_create(Lun, DeviceName, ops, ctx, st == IFD_ST_OK, reconnectable, options);
}

RESPONSECODE IFDHCreateChannel(DWORD Lun, DWORD Channel)
{
    /* Numeric channels (serial ports) do not apply: use the appliance's ID. */
    (void)Channel;
    char name[] = DEFAULT_DEVICENAME;
    return IFDHCreateChannelByName(Lun, name);
}

RESPONSECODE IFDHCloseChannel(DWORD Lun)
{
    ifd_chan_t *ch = ifd_chan_detach(Lun);
    if (!ch)
        return IFD_COMMUNICATION_ERROR;
    ifd_chan_closing(ch);
    pthread_mutex_lock(&ch->io);
    if (ch->powered && !atomic_load(&ch->gone)) {
        /* Leave the card unpowered (ISO/IEC 7816-3 §6.4 deactivation). */
        ifd_rdr_msg_t r;
        (void)ifd_chan_command(ch, IFD_PC_ICC_POWER_OFF, NULL, NULL, 0, 1000u, &r);
    }
    ifd_chan_forget_card(ch);
    pthread_mutex_unlock(&ch->io);
    ifd_chan_put(ch);
    return IFD_SUCCESS;
}

/* ---- capabilities -------------------------------------------------------- */

static RESPONSECODE IFDHPolling(DWORD Lun, int timeout)
{
    return ifd_chan_poll(Lun, timeout);
}

static RESPONSECODE IFDHStopPolling(DWORD Lun)
{
    return ifd_chan_stop_polling(Lun);
}

static RESPONSECODE put_bytes(PDWORD Length, PUCHAR Value, const void *src, size_t n)
{
    if (!Value || *Length < n)
        return IFD_ERROR_INSUFFICIENT_BUFFER;
    memcpy(Value, src, n);
    *Length = (DWORD)n;
    return IFD_SUCCESS;
}

static RESPONSECODE put_u8(PDWORD Length, PUCHAR Value, uint8_t v)
{
    return put_bytes(Length, Value, &v, 1);
}

static RESPONSECODE put_u32(PDWORD Length, PUCHAR Value, uint32_t v)
{
    /* DWORD attributes travel as native 32-bit integers (as libccid). */
    return put_bytes(Length, Value, &v, sizeof v);
}

RESPONSECODE IFDHGetCapabilities(DWORD Lun, DWORD Tag, PDWORD Length, PUCHAR Value)
{
    if (!Length)
        return IFD_COMMUNICATION_ERROR;
    ifd_chan_t *ch = ifd_chan_get(Lun);
    if (!ch)
        return IFD_COMMUNICATION_ERROR;
    RESPONSECODE rc = IFD_SUCCESS;
    switch (Tag) {
    case TAG_IFD_ATR:
    case SCARD_ATTR_ATR_STRING: {
        uint8_t atr[IFD_ATR_MAX];
        pthread_mutex_lock(&ch->io);
        size_t n = ch->atr_len;
        memcpy(atr, ch->atr, n);
        pthread_mutex_unlock(&ch->io);
        rc = put_bytes(Length, Value, atr, n);
        break;
    }
    case SCARD_ATTR_ICC_PRESENCE: {
        /* 0 not present, 2 present (no swallowing mechanism). */
        RESPONSECODE p = IFDHICCPresence(Lun);
        rc = put_u8(Length, Value, p == IFD_ICC_PRESENT ? 2 : 0);
        break;
    }
    case SCARD_ATTR_ICC_INTERFACE_STATUS: {
        /* Non-zero when the contacts are active: the card is powered. */
        pthread_mutex_lock(&ch->io);
        bool active = ch->powered && !atomic_load(&ch->gone);
        pthread_mutex_unlock(&ch->io);
        rc = put_u8(Length, Value, active ? 1 : 0);
        break;
    }
    case TAG_IFD_SIMULTANEOUS_ACCESS:
        rc = put_u8(Length, Value, IFD_MAX_LUNS); /* readers one driver instance handles */
        break;
    case TAG_IFD_THREAD_SAFE:
        /* 1: every channel has its own locks and transport, and the only
         * shared state (the Lun table) has a mutex, so pcscd may drive
         * several readers of this driver at once. */
        rc = put_u8(Length, Value, 1);
        break;
    case TAG_IFD_SLOTS_NUMBER:
        rc = put_u8(Length, Value, 1);
        break;
    case TAG_IFD_SLOT_THREAD_SAFE:
        /* One slot (bMaxCCIDBusySlots 1): nothing to run in parallel. */
        rc = put_u8(Length, Value, 0);
        break;
    case SCARD_ATTR_VENDOR_NAME: {
        char v[IFD_NAME_MAX];
        pthread_mutex_lock(&ch->io);
        memcpy(v, ch->vendor, sizeof v);
        pthread_mutex_unlock(&ch->io);
        v[sizeof v - 1] = '\0';
        size_t n = strlen(v);
        if (n == 0)
            *Length = 0; /* not known (yet) */
        else
            rc = put_bytes(Length, Value, v, n + 1);
        break;
    }
    case SCARD_ATTR_VENDOR_IFD_VERSION: {
        /* 0xMMmmbbbb from bcdDevice (as libccid). */
        pthread_mutex_lock(&ch->io);
        uint32_t v = (uint32_t)ch->info.bcd_device << 16;
        pthread_mutex_unlock(&ch->io);
        rc = put_u32(Length, Value, v);
        break;
    }
    case SCARD_ATTR_MAXINPUT: {
        pthread_mutex_lock(&ch->io);
        uint32_t m = ch->info.ccid.max_msg_len;
        pthread_mutex_unlock(&ch->io);
        rc = put_u32(Length, Value, m > IFD_CCID_HEADER ? m - IFD_CCID_HEADER : 0);
        break;
    }
    case TAG_IFD_POLLING_THREAD_WITH_TIMEOUT: {
        /* Slot changes come from the interrupt endpoint at once instead of
         * pcscd's 400 ms polling. Before the first connection the endpoint is
         * not known yet: the socket cable always has one (simulation.md §1). */
        bool has = !atomic_load(&ch->enumerated) || atomic_load(&ch->intr_ep) != 0;
        RESPONSECODE (*fn)(DWORD, int) = IFDHPolling;
        if (!has)
            *Length = 0;
        else
            rc = put_bytes(Length, Value, &fn, sizeof fn);
        break;
    }
    case TAG_IFD_POLLING_THREAD_KILLABLE:
        /* Not killable (a cancelled thread could hold a lock): pcscd uses
         * TAG_IFD_STOP_POLLING_THREAD instead. */
        rc = put_u8(Length, Value, 0);
        break;
    case TAG_IFD_STOP_POLLING_THREAD: {
        RESPONSECODE (*fn)(DWORD) = IFDHStopPolling;
        rc = put_bytes(Length, Value, &fn, sizeof fn);
        break;
    }
    case TAG_IFD_DEVICE_REMOVED:
        /* Supported: pcscd tells us through IFDHSetCapabilities. */
        rc = put_u8(Length, Value, 1);
        break;
    default:
        rc = IFD_ERROR_TAG;
        break;
    }
    ifd_chan_put(ch);
    return rc;
}

RESPONSECODE IFDHSetCapabilities(DWORD Lun, DWORD Tag, DWORD Length, PUCHAR Value)
{
    (void)Length;
    (void)Value;
    ifd_chan_t *ch = ifd_chan_get(Lun);
    if (!ch)
        return IFD_COMMUNICATION_ERROR;
    RESPONSECODE rc = IFD_ERROR_TAG;
    if (Tag == TAG_IFD_DEVICE_REMOVED) {
        /* The OS saw the device go: do not talk to it on close. */
        atomic_store(&ch->gone, true);
        rc = IFD_SUCCESS;
    }
    ifd_chan_put(ch);
    return rc;
}

/* ---- card power and parameters ------------------------------------------- */

static RESPONSECODE transport_rc(ifd_st_t st)
{
    switch (st) {
    case IFD_ST_OK:
        return IFD_SUCCESS;
    case IFD_ST_GONE:
        return IFD_NO_SUCH_DEVICE;
    case IFD_ST_TIMEOUT:
        return IFD_RESPONSE_TIMEOUT;
    default:
        return IFD_COMMUNICATION_ERROR;
    }
}

/* PC_to_RDR_IccPowerOn (CCID §6.1.1): cold reset if the card is unpowered,
 * warm reset if it is powered. io held. */
static RESPONSECODE power_on(ifd_chan_t *ch)
{
    /* bPowerSelect: 0 automatic; else ISO/IEC 7816-3 §6.2.4 class selection
     * starts with the lowest supported voltage: 1.8 V (3), 3 V (2), 5 V (1). */
    uint8_t order[3];
    size_t n = 0;
    uint8_t vs = ch->info.ccid.voltage_support;
    if ((ch->info.ccid.features & IFD_FEAT_AUTO_VOLTAGE) || vs == 0) {
        order[n++] = 0;
    } else {
        if (vs & 0x04u)
            order[n++] = 3;
        if (vs & 0x02u)
            order[n++] = 2;
        if (vs & 0x01u)
            order[n++] = 1;
    }
    ifd_chan_forget_card(ch);
    for (size_t i = 0; i < n; i++) {
        uint8_t spec[3] = {order[i], 0, 0};
        ifd_rdr_msg_t r;
        ifd_st_t st =
            ifd_chan_command(ch, IFD_PC_ICC_POWER_ON, spec, NULL, 0, IFD_TIMEOUT_POWER, &r);
        if (st != IFD_ST_OK)
            return st == IFD_ST_TIMEOUT ? IFD_ERROR_POWER_ACTION : transport_rc(st);
        if (r.cmd_status == IFD_CMD_FAILED) {
            if (r.icc_status == IFD_ICC_ABSENT)
                return IFD_ICC_NOT_PRESENT;
            /* Wrong class or mute at this voltage: try the next one. */
            if (r.error == IFD_ERR_CLASS_NOT_SUPPORTED || r.error == IFD_ERR_ICC_MUTE)
                continue;
            ifd_log("%s: power on: %s", ch->name, ifd_rdr_error_name(r.error));
            return IFD_ERROR_POWER_ACTION;
        }
        if (r.data_len < 2 || r.data_len > IFD_ATR_MAX) {
            ifd_log("%s: power on: ATR of %zu bytes", ch->name, r.data_len);
            return IFD_ERROR_POWER_ACTION;
        }
        memcpy(ch->atr, r.data, r.data_len);
        ch->atr_len = r.data_len;
        ch->powered = true;
        if (ifd_atr_parse(ch->atr, ch->atr_len, &ch->atr_info) != IFD_ST_OK) {
            /* The reader accepted it; keep T=0 defaults for the timeouts. */
            memset(&ch->atr_info, 0, sizeof ch->atr_info);
            ch->atr_info.protocols = 0x01;
        }
        ifd_params_default(&ch->atr_info, &ch->params);
        ch->timeout_ms = ifd_params_timeout_ms(&ch->params, ch->info.ccid.default_clock_khz);
        return IFD_SUCCESS;
    }
    return IFD_ERROR_POWER_ACTION;
}

RESPONSECODE IFDHPowerICC(DWORD Lun, DWORD Action, PUCHAR Atr, PDWORD AtrLength)
{
    DWORD cap = AtrLength ? *AtrLength : 0;
    if (AtrLength)
        *AtrLength = 0;
    ifd_chan_t *ch = ifd_chan_get(Lun);
    if (!ch)
        return IFD_COMMUNICATION_ERROR;
    RESPONSECODE rc;
    pthread_mutex_lock(&ch->io);
    if (Action == IFD_POWER_DOWN && atomic_load(&ch->gone)) {
        /* No device, no power on the contacts: done. (IFD_NO_SUCH_DEVICE
         * here would cost pcscd 1.9.9 a 1 s SendHotplugSignal sleep in its
         * event thread for nothing.) */
        ifd_chan_forget_card(ch);
        rc = IFD_SUCCESS;
    } else if (!ifd_chan_ready(ch)) {
        rc = IFD_NO_SUCH_DEVICE;
    } else if (Action == IFD_POWER_DOWN) {
        ifd_rdr_msg_t r;
        ifd_st_t st =
            ifd_chan_command(ch, IFD_PC_ICC_POWER_OFF, NULL, NULL, 0, IFD_TIMEOUT_STATUS, &r);
        ifd_chan_forget_card(ch);
        rc = transport_rc(st);
    } else if (Action == IFD_POWER_UP || Action == IFD_RESET) {
        rc = IFD_SUCCESS;
        if (Action == IFD_POWER_UP && ch->powered) {
            /* A power up is a cold reset: deactivate first (ISO/IEC 7816-3 §6.4). */
            ifd_rdr_msg_t r;
            rc = transport_rc(
                ifd_chan_command(ch, IFD_PC_ICC_POWER_OFF, NULL, NULL, 0, IFD_TIMEOUT_STATUS, &r));
        }
        if (rc == IFD_SUCCESS)
            rc = power_on(ch);
        if (rc == IFD_SUCCESS) {
            if (!Atr || cap < ch->atr_len) {
                rc = IFD_ERROR_INSUFFICIENT_BUFFER;
            } else {
                memcpy(Atr, ch->atr, ch->atr_len);
                *AtrLength = (DWORD)ch->atr_len;
            }
        }
    } else {
        rc = IFD_NOT_SUPPORTED;
    }
    pthread_mutex_unlock(&ch->io);
    ifd_chan_put(ch);
    return rc;
}

RESPONSECODE IFDHSetProtocolParameters(DWORD Lun, DWORD Protocol, UCHAR Flags, UCHAR PTS1,
                                       UCHAR PTS2, UCHAR PTS3)
{
    (void)PTS2;
    (void)PTS3;
    ifd_chan_t *ch = ifd_chan_get(Lun);
    if (!ch)
        return IFD_COMMUNICATION_ERROR;
    RESPONSECODE rc = IFD_SUCCESS;
    pthread_mutex_lock(&ch->io);
    uint8_t proto = Protocol == SCARD_PROTOCOL_T0 ? 0 : Protocol == SCARD_PROTOCOL_T1 ? 1 : 0xFF;
    uint32_t level = ch->info.ccid.features & IFD_FEAT_LEVEL_MASK;
    ifd_params_t p;
    bool send = false;
    if (!ifd_chan_ready(ch)) {
        rc = IFD_NO_SUCH_DEVICE;
    } else if (!ch->powered || ch->atr_len == 0) {
        rc = IFD_COMMUNICATION_ERROR;
    } else if (proto > 1 || level == IFD_FEAT_LEVEL_CHAR ||
               (level == IFD_FEAT_LEVEL_TPDU && proto == 1)) {
        /* Character level, and T=1 blocks at TPDU level, need a host-side
         * protocol stack this driver does not have. */
        rc = IFD_PROTOCOL_NOT_SUPPORTED;
    } else if (ifd_params_choose(&ch->atr_info, &ch->info.ccid, proto,
                                 (Flags & IFD_NEGOTIATE_PTS1) ? PTS1 : -1, &p,
                                 &send) != IFD_ST_OK) {
        rc = IFD_PROTOCOL_NOT_SUPPORTED;
    } else if (send) {
        /* PC_to_RDR_SetParameters (CCID §6.1.7); with dwFeatures 0x80 the
         * reader performs PPS (ISO/IEC 7816-3 §9) before answering. */
        uint8_t data[7];
        size_t n = ifd_params_encode(&p, data);
        uint8_t spec[3] = {proto, 0, 0};
        ifd_rdr_msg_t r;
        ifd_st_t st =
            ifd_chan_command(ch, IFD_PC_SET_PARAMETERS, spec, data, n, IFD_TIMEOUT_POWER, &r);
        if (st != IFD_ST_OK) {
            rc = st == IFD_ST_GONE ? IFD_NO_SUCH_DEVICE : IFD_COMMUNICATION_ERROR;
        } else if (r.cmd_status == IFD_CMD_FAILED) {
            /* The reader deactivated the card after a failed PPS: let pcscd
             * see it (IFDHICCPresence reports the card once as removed). */
            ifd_log("%s: SetParameters T=%u Fi/Di %02x: %s", ch->name, proto, p.fidi,
                    ifd_rdr_error_name(r.error));
            ifd_chan_kick(ch);
            rc = IFD_PROTOCOL_NOT_SUPPORTED;
        } else if (r.specific != proto) {
            rc = IFD_PROTOCOL_NOT_SUPPORTED;
        }
    }
    if (rc == IFD_SUCCESS) {
        ch->params = p;
        ch->timeout_ms = ifd_params_timeout_ms(&p, ch->info.ccid.default_clock_khz);
    }
    pthread_mutex_unlock(&ch->io);
    ifd_chan_put(ch);
    return rc;
}

/* ---- APDU exchange -------------------------------------------------------- */

RESPONSECODE IFDHTransmitToICC(DWORD Lun, SCARD_IO_HEADER SendPci, PUCHAR TxBuffer, DWORD TxLength,
                               PUCHAR RxBuffer, PDWORD RxLength, PSCARD_IO_HEADER RecvPci)
{
    (void)SendPci;
    (void)RecvPci;
    if (!RxLength)
        return IFD_COMMUNICATION_ERROR;
    DWORD cap = *RxLength;
    *RxLength = 0;
    if (!TxBuffer || TxLength == 0 || !RxBuffer)
        return IFD_COMMUNICATION_ERROR;
    ifd_chan_t *ch = ifd_chan_get(Lun);
    if (!ch)
        return IFD_COMMUNICATION_ERROR;
    RESPONSECODE rc = IFD_SUCCESS;
    pthread_mutex_lock(&ch->io);
    uint32_t level = ch->info.ccid.features & IFD_FEAT_LEVEL_MASK;
    size_t len = TxLength;
    if (!ifd_chan_ready(ch)) {
        rc = IFD_NO_SUCH_DEVICE;
    } else if (len > ch->ccid.max_msg - IFD_CCID_HEADER ||
               (level == IFD_FEAT_LEVEL_SHORT_APDU && len > 261u)) {
        /* Short APDU level: at most 4 + 1 + 255 + 1 bytes (ISO/IEC 7816-4 §5.1);
         * longer would need extended APDU chaining (wLevelParameter). */
        rc = IFD_COMMUNICATION_ERROR;
    } else {
        if (level == IFD_FEAT_LEVEL_TPDU && ch->params.protocol == 0 && len > 5 &&
            len == 5u + TxBuffer[4] + 1u && TxBuffer[4] != 0) {
            /* T=0 TPDU level: a case 4 command goes without Le (ISO/IEC
             * 7816-3 §12.2.5); the card then answers 61xx. */
            len--;
        }
        uint8_t spec[3] = {0, 0, 0}; /* bBWI 0, wLevelParameter 0 */
        ifd_rdr_msg_t r;
        ifd_st_t st =
            ifd_chan_command(ch, IFD_PC_XFR_BLOCK, spec, TxBuffer, len, ch->timeout_ms, &r);
        if (st != IFD_ST_OK) {
            rc = transport_rc(st);
        } else if (r.cmd_status == IFD_CMD_FAILED) {
            /* CCID §6.2.6 bError, mapped as libccid does. */
            switch (r.error) {
            case IFD_ERR_PIN_CANCELLED: /* PC/SC part 10: SW 64 01 */
            case IFD_ERR_PIN_TIMEOUT:   /* SW 64 00 */
                if (cap < 2) {
                    rc = IFD_ERROR_INSUFFICIENT_BUFFER;
                } else {
                    RxBuffer[0] = 0x64;
                    RxBuffer[1] = r.error == IFD_ERR_PIN_CANCELLED ? 0x01 : 0x00;
                    *RxLength = 2;
                }
                break;
            case IFD_ERR_ICC_MUTE:
                if (r.icc_status == IFD_ICC_ABSENT) {
                    ifd_chan_forget_card(ch);
                    ifd_chan_kick(ch);
                    rc = IFD_ICC_NOT_PRESENT;
                } else {
                    rc = IFD_COMMUNICATION_ERROR;
                }
                break;
            default:
                ifd_log("%s: XfrBlock: %s", ch->name, ifd_rdr_error_name(r.error));
                rc = IFD_COMMUNICATION_ERROR;
                break;
            }
        } else if (r.specific != 0) {
            /* bChainParameter: chained answers exist only at extended APDU level. */
            rc = IFD_COMMUNICATION_ERROR;
        } else if (r.data_len > cap) {
            rc = IFD_ERROR_INSUFFICIENT_BUFFER;
        } else {
            if (r.data_len)
                memcpy(RxBuffer, r.data, r.data_len);
            *RxLength = (DWORD)r.data_len;
        }
    }
    pthread_mutex_unlock(&ch->io);
    ifd_chan_put(ch);
    return rc;
}

/* ---- presence ------------------------------------------------------------- */

RESPONSECODE IFDHICCPresence(DWORD Lun)
{
    ifd_chan_t *ch = ifd_chan_get(Lun);
    if (!ch)
        return IFD_COMMUNICATION_ERROR;
    RESPONSECODE rc;
    pthread_mutex_lock(&ch->io);
    if (!ifd_chan_ready(ch)) {
        rc = IFD_NO_SUCH_DEVICE;
    } else {
        ifd_rdr_msg_t r;
        ifd_st_t st =
            ifd_chan_command(ch, IFD_PC_GET_SLOT_STATUS, NULL, NULL, 0, IFD_TIMEOUT_STATUS, &r);
        pthread_mutex_lock(&ch->ev);
        bool changed = ch->slot_changed;
        ch->slot_changed = false;
        pthread_mutex_unlock(&ch->ev);
        if (st != IFD_ST_OK) {
            rc = st == IFD_ST_GONE ? IFD_NO_SUCH_DEVICE : IFD_COMMUNICATION_ERROR;
        } else if (r.cmd_status == IFD_CMD_FAILED && r.error != IFD_ERR_ICC_MUTE) {
            /* ICC_MUTE only says "absent or inactive" (CCID §6.2.6). */
            rc = IFD_COMMUNICATION_ERROR;
        } else if (r.icc_status == IFD_ICC_ABSENT) {
            ifd_chan_forget_card(ch);
            rc = IFD_ICC_NOT_PRESENT;
        } else if (ch->powered && (r.icc_status == IFD_ICC_INACTIVE || changed)) {
            /* We powered the card but the reader says it is not active (it
             * deactivated it on removal, or after a failed PPS), or a slot
             * change came: report the card once as gone so that pcscd powers
             * the (new) card again, as libccid does. */
            ifd_chan_forget_card(ch);
            rc = IFD_ICC_NOT_PRESENT;
        } else {
            rc = IFD_ICC_PRESENT;
        }
    }
    if (rc == IFD_NO_SUCH_DEVICE)
        ifd_chan_gone_told(ch);
    pthread_mutex_unlock(&ch->io);
    ifd_chan_put(ch);
    return rc;
}

/* ---- SCardControl --------------------------------------------------------- */

/* Secure PIN entry (PC/SC part 10 FEATURE_VERIFY_PIN_DIRECT /
 * MODIFY_PIN_DIRECT → PC_to_RDR_Secure, CCID §6.1.11), offered only when the
 * descriptor's bPINSupport says so (IFDHControl). The holder types on the
 * appliance, which keeps us waiting with time extensions (§6.2.7, each one
 * restarts the timeout); the timeout still covers every entry in full for a
 * reader that sends none. The answer is the card's response APDU; bError
 * PIN_CANCELLED / PIN_TIMEOUT become the part 10 status words 64 01 / 64 00,
 * as libccid does. The PIN itself never reaches this host. io held. */
#define IFD_SECURE_DEFAULT_TIMEOUT_S 30u
#define IFD_SECURE_MARGIN_MS 15000u
static RESPONSECODE secure_pin(ifd_chan_t *ch, uint8_t feature, const uint8_t *tx, size_t txlen,
                               uint8_t *rx, size_t rxcap, DWORD *got)
{
    uint8_t data[IFD_MSG_MAX];
    size_t n = 0;
    ifd_secure_info_t info;
    size_t cap = ch->ccid.max_msg > IFD_CCID_HEADER ? ch->ccid.max_msg - IFD_CCID_HEADER : 0;
    if (cap > sizeof data)
        cap = sizeof data;
    ifd_st_t st = ifd_secure_translate(feature, tx, txlen, data, cap, &n, &info);
    if (st != IFD_ST_OK) {
        ifd_log("%s: %s PIN structure refused (%s)", ch->name,
                feature == IFD_FEATURE_VERIFY_PIN_DIRECT ? "verify" : "modify", ifd_st_name(st));
        return IFD_ERROR_NOT_SUPPORTED;
    }
    uint32_t per_entry_ms =
        (uint32_t)(info.timeout_s ? info.timeout_s : IFD_SECURE_DEFAULT_TIMEOUT_S) * 1000u;
    uint32_t timeout_ms = per_entry_ms * (uint32_t)info.entries + IFD_SECURE_MARGIN_MS;
    uint8_t spec[3] = {0, 0, 0}; /* bBWI 0, wLevelParameter 0: short APDU level */
    ifd_rdr_msg_t r;
    st = ifd_chan_command(ch, IFD_PC_SECURE, spec, data, n, timeout_ms, &r);
    memset(data, 0, sizeof data);
    if (st != IFD_ST_OK)
        return transport_rc(st);
    if (r.cmd_status == IFD_CMD_FAILED) {
        switch (r.error) {
        case IFD_ERR_PIN_CANCELLED:
        case IFD_ERR_PIN_TIMEOUT:
            if (rxcap < 2)
                return IFD_ERROR_INSUFFICIENT_BUFFER;
            rx[0] = 0x64;
            rx[1] = r.error == IFD_ERR_PIN_CANCELLED ? 0x01 : 0x00;
            *got = 2;
            return IFD_SUCCESS;
        case IFD_ERR_CMD_NOT_SUPPORTED:
            return IFD_ERROR_NOT_SUPPORTED;
        case IFD_ERR_ICC_MUTE:
            if (r.icc_status == IFD_ICC_ABSENT) {
                ifd_chan_forget_card(ch);
                ifd_chan_kick(ch);
                return IFD_ICC_NOT_PRESENT;
            }
            return IFD_COMMUNICATION_ERROR;
        default:
            if (r.error >= 1 && r.error <= 127)
                ifd_log("%s: Secure: the reader refused the field at offset %u", ch->name,
                        (unsigned)r.error);
            else
                ifd_log("%s: Secure: %s", ch->name, ifd_rdr_error_name(r.error));
            return IFD_COMMUNICATION_ERROR;
        }
    }
    if (r.data_len > rxcap)
        return IFD_ERROR_INSUFFICIENT_BUFFER;
    if (r.data_len)
        memcpy(rx, r.data, r.data_len);
    *got = (DWORD)r.data_len;
    return IFD_SUCCESS;
}

/* CCID Escape (§6.1.8), allowed only by the "escape" driver option. io held. */
static RESPONSECODE escape(ifd_chan_t *ch, const uint8_t *tx, size_t txlen, uint8_t *rx,
                           size_t rxcap, DWORD *got)
{
    if (!(ch->options & IFD_OPT_ESCAPE)) {
        ifd_log("%s: Escape refused (driver option \"escape\" not set)", ch->name);
        return IFD_ERROR_NOT_SUPPORTED;
    }
    if (txlen > 0 && !tx)
        return IFD_COMMUNICATION_ERROR;
    ifd_rdr_msg_t r;
    ifd_st_t st = ifd_chan_command(ch, IFD_PC_ESCAPE, NULL, tx, txlen, IFD_TIMEOUT_ESCAPE, &r);
    if (st != IFD_ST_OK)
        return transport_rc(st);
    if (r.cmd_status == IFD_CMD_FAILED)
        return r.error == IFD_ERR_CMD_NOT_SUPPORTED ? IFD_ERROR_NOT_SUPPORTED
                                                    : IFD_COMMUNICATION_ERROR;
    if (r.data_len > rxcap)
        return IFD_ERROR_INSUFFICIENT_BUFFER;
    if (r.data_len)
        memcpy(rx, r.data, r.data_len);
    *got = (DWORD)r.data_len;
    return IFD_SUCCESS;
}

RESPONSECODE IFDHControl(DWORD Lun, DWORD dwControlCode, PUCHAR TxBuffer, DWORD TxLength,
                         PUCHAR RxBuffer, DWORD RxLength, LPDWORD pdwBytesReturned)
{
    if (!pdwBytesReturned)
        return IFD_COMMUNICATION_ERROR;
    *pdwBytesReturned = 0;
    ifd_chan_t *ch = ifd_chan_get(Lun);
    if (!ch)
        return IFD_COMMUNICATION_ERROR;
    RESPONSECODE rc = IFD_ERROR_NOT_SUPPORTED;
    size_t cap = RxBuffer ? RxLength : 0;
    uint8_t scratch[1];
    uint8_t *rx = RxBuffer ? RxBuffer : scratch;
    pthread_mutex_lock(&ch->io);
    bool escape_ok = (ch->options & IFD_OPT_ESCAPE) != 0;
    const ifd_ccid_desc_t *d = &ch->info.ccid;
    if (!ifd_chan_ready(ch)) {
        rc = IFD_NO_SUCH_DEVICE;
    } else if (dwControlCode == IFD_IOCTL_GET_FEATURE_REQUEST) {
        size_t n = ifd_features_list(d, escape_ok, rx, cap);
        rc = n ? IFD_SUCCESS : IFD_ERROR_INSUFFICIENT_BUFFER;
        *pdwBytesReturned = (DWORD)n;
    } else if (dwControlCode == IFD_IOCTL_FEATURE(IFD_FEATURE_GET_TLV_PROPERTIES)) {
        /* The appliance's keypad takes PINs of 4 to 12 digits (ISO 9564-1);
         * for another reader the limits are unknown and left out. */
        ifd_pin_limits_t pin = {0, 0};
        if (d->pin_support && ch->info.vid == IFD_CACHET_VID && ch->info.pid == IFD_CACHET_PID) {
            pin.min_pin = 4;
            pin.max_pin = 12;
        }
        size_t n = ifd_features_tlv_properties(&ch->info, escape_ok, &pin, rx, cap);
        rc = n ? IFD_SUCCESS : IFD_ERROR_INSUFFICIENT_BUFFER;
        *pdwBytesReturned = (DWORD)n;
    } else if (dwControlCode == IFD_IOCTL_FEATURE(IFD_FEATURE_IFD_PIN_PROPERTIES) &&
               d->pin_support) {
        size_t n = ifd_features_pin_properties(d, rx, cap);
        rc = n ? IFD_SUCCESS : IFD_ERROR_INSUFFICIENT_BUFFER;
        *pdwBytesReturned = (DWORD)n;
    } else if ((dwControlCode == IFD_IOCTL_FEATURE(IFD_FEATURE_VERIFY_PIN_DIRECT) &&
                (d->pin_support & IFD_PIN_VERIFY)) ||
               (dwControlCode == IFD_IOCTL_FEATURE(IFD_FEATURE_MODIFY_PIN_DIRECT) &&
                (d->pin_support & IFD_PIN_MODIFY))) {
        rc = secure_pin(ch, (uint8_t)(dwControlCode - IFD_IOCTL_FEATURE(0)), TxBuffer, TxLength, rx,
                        cap, pdwBytesReturned);
    } else if (dwControlCode == IFD_IOCTL_VENDOR_IFD_EXCHANGE) {
        rc = escape(ch, TxBuffer, TxLength, rx, cap, pdwBytesReturned);
    }
    pthread_mutex_unlock(&ch->io);
    ifd_chan_put(ch);
    return rc;
}
