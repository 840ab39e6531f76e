/* card_native: the native CPx backend of cachetd (card.h), PC/SC directly
 * (pcsc-lite), with the fewest commands a CPS3 needs (spec/cpx-card.md part A,
 * issue 3 "fewest commands"):
 *   bind        EF.SN by SFI                      1 APDU
 *   read_certs  per certificate: SELECT (P2=0C) + READ BINARY until the DER length
 *   pin_status  empty VERIFY                      1 APDU
 *   verify_pin  VERIFY, or PIN pad (PC/SC part 10 FEATURE_VERIFY_PIN_DIRECT)
 *   sign        SELECT DF 0001 + MSE SET + INTERNAL AUTHENTICATE | PSO CDS: 3 APDUs
 * Every card exchange runs inside one SCardBeginTransaction/EndTransaction, so
 * other PC/SC clients sharing the reader (OpenSC) cannot interleave commands.
 *
 * The serial is EF.SN's PAN in digits (20 for a CPS3, profile.conf "serial"),
 * not OpenSC's TokenInfo serial (its last 16 digits). The label is left empty:
 * the daemon names the card from its certificates. logout resets the card.
 *
 * Threads (card.h): the worker makes every call but wait_event with its own
 * SCARDCONTEXT; the monitor calls wait_event with a second SCARDCONTEXT (pcsc-lite
 * contexts are not to be used by two threads at once). The two share only the
 * atomic counters, the read-only reader filter and the error texts (under a
 * mutex). */
#include "card_native.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <reader.h>
#include <winscard.h>

#define NATIVE_READERS_MAX 16   /* readers watched by the monitor */
#define NATIVE_EVENTS_MAX 16    /* events queued between two wait_event calls */
#define NATIVE_LIST_MAX 4096    /* SCardListReaders multi-string */
#define NATIVE_ERR_MAX 256
#define NATIVE_CMD_MAX 261      /* short APDU: 4 + 1 + 255 + 1 (ISO/IEC 7816-4 §5.1) */
#define NATIVE_RAPDU_MAX 264    /* one response: 256 data + SW, pcsc-lite MAX_BUFFER_SIZE */
#define NATIVE_RESP_MAX 1024    /* one answer after GET RESPONSEs (RSA-4096 = 512) */
#define NATIVE_GETRESP_MAX 16   /* GET RESPONSE rounds per command */
#define NATIVE_REMOVAL_WAIT_MS 300 /* after a failed transmit: does the card leave? */
#define NATIVE_PIN_MIN 4        /* CHV 01: 4..8 ASCII digits (spec §6.4, §9) */
#define NATIVE_PIN_MAX 8
#define NATIVE_T0_READ 0xE7     /* part A item 1: a CPS3 answers at most E7 bytes in T=0 */
#define NATIVE_T1_READ 256
#define NATIVE_OFFSET_MAX 0x7FFF /* READ BINARY P1-P2 offset: 15 bits (ISO/IEC 7816-4 §7.2.3) */

_Static_assert(NATIVE_RESP_MAX >= CARD_SIG_MAX, "a signature fits one answer");
_Static_assert(NATIVE_RAPDU_MAX >= 258, "256 data bytes + SW1 SW2");
_Static_assert(CARD_READER_MAX <= MAX_READERNAME, "reader names as pcsc-lite's");

/* CPx AID (EF.DIR, spec §6.1): PKCS#15 IDs are AID || key number (part A item 2). */
static const uint8_t cpx_aid[13] = {0xE8, 0x28, 0xBD, 0x08, 0x0F, 0x80, 0x25,
                                    0x00, 0x00, 0x01, 0xFF, 0x00, 0x10};
_Static_assert(sizeof cpx_aid + 1 <= sizeof(((card_cert_t *)0)->id), "ID fits");

/* DER DigestInfo prefixes (RFC 8017 §9.2 note 1). */
static const uint8_t di_sha1[15] = {0x30, 0x21, 0x30, 0x09, 0x06, 0x05, 0x2B, 0x0E,
                                    0x03, 0x02, 0x1A, 0x05, 0x00, 0x04, 0x14};
static const uint8_t di_sha256[19] = {0x30, 0x31, 0x30, 0x0D, 0x06, 0x09, 0x60,
                                      0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                                      0x01, 0x05, 0x00, 0x04, 0x20};
#define NATIVE_SHA1_LEN 20
#define NATIVE_SHA256_LEN 32

/* Certificates of a CPx (spec §4, §6.6): EF, key role, last byte of the ID. */
static const struct {
    uint16_t fid;
    int role;
    uint8_t id_last;
    const char *label;
} cpx_certs[] = {
    {0xC001, CARD_KEY_AUTH, 0x02, "Certificat d'authentification CPS"},
    {0xC002, CARD_KEY_SIGN, 0x01, "Certificat de signature CPS"},
    {0xC003, 0, 0x03, "Certificat AC CPS"},
};

/* Key references and algorithm references (part A items 2-3, spec §10.4). */
enum {
    KEY_REF_SIGN = 0x81,
    KEY_REF_AUTH = 0x82,
    ALG_RSA_PKCS1 = 0x02,
    ALG_RSA_SHA1 = 0x12,
    ALG_RSA_SHA256 = 0x42,
};

/* Status words (ISO/IEC 7816-4 §5.1.3, spec §12; PC/SC part 10 §2.6 for 64xx). */
enum {
    SW_OK = 0x9000,
    SW_EOF = 0x6282,
    SW_WRONG_LENGTH = 0x6700,
    SW_SECURITY = 0x6982,
    SW_BLOCKED = 0x6983,
    SW_CONDITIONS = 0x6985,
    SW_WRONG_DATA = 0x6A80,
    SW_FUNC_NOT_SUPPORTED = 0x6A81,
    SW_NOT_FOUND = 0x6A82,
    SW_WRONG_P1P2 = 0x6A86,
    SW_LC_P1P2 = 0x6A87,
    SW_REF_NOT_FOUND = 0x6A88,
    SW_WRONG_P1P2_2 = 0x6B00,
    SW_PINPAD_TIMEOUT = 0x6400,
    SW_PINPAD_CANCEL = 0x6401,
    SW_PINPAD_LENGTH = 0x6403,
};

/* The appliance's vendor commands (docs/appliance.md "Vendor commands"). */
enum {
    VND_CLASS = 0xCA,
    VND_VERSION = 0x01,
    VND_GET_DEVICE_INFO = 0x01,
    VND_SET_CONFIG = 0x03,
    VND_ANNOUNCE_BEGIN = 0x10,
    VND_ANNOUNCE_DATA = 0x11,
    VND_ANNOUNCE_END = 0x12,
    VND_ANNOUNCE_CLEAR = 0x13,
    VND_GET_RECEIPT = 0x20,
    VND_ST_OK = 0x00,
    VND_ST_STATE = 0x04,
    VND_ST_NOT_FOUND = 0x05,
    VND_DATA_CHUNK = 240,  /* ANNOUNCE_DATA: 1..240 bytes of the message */
    VND_ABDATA_MAX = 261,  /* a CCID message carries at most 261 bytes of abData */
    VND_RECEIPTS_KEPT = 8, /* the appliance keeps the last 8 receipts */
    VND_RECEIPT_BODY = 76,
};
_Static_assert(3 + 2 + VND_DATA_CHUNK <= VND_ABDATA_MAX, "ANNOUNCE_DATA fits one Escape");

typedef struct {
    char name[CARD_READER_MAX];
    DWORD state; /* last dwEventState, SCARD_STATE_CHANGED cleared */
} native_reader_t;

typedef struct {
    card_backend_t base; /* first: card_backend_t * <-> native_t * */

    char match[CARD_READER_MAX]; /* reader filter, read-only after open */

    /* worker */
    SCARDCONTEXT ctx;
    bool ctx_ok;
    bool connected;
    SCARDHANDLE h;
    DWORD proto;
    char reader[CARD_READER_MAX];
    char serial[CARD_SERIAL_MAX];
    bool pinpad;
    DWORD verify_ioctl;  /* FEATURE_VERIFY_PIN_DIRECT control code */
    DWORD esc_ioctl;     /* FEATURE_CCID_ESC_COMMAND control code, 0 = no Escape */
    bool pin_verified;   /* we verified the PIN on this binding */
    uint8_t select_p2;   /* 0x0C (no FCI), or 0x04 once the card refused 0C */
    char err[NATIVE_ERR_MAX];

    /* monitor */
    SCARDCONTEXT mon_ctx;
    bool mon_ok;
    native_reader_t mon[NATIVE_READERS_MAX];
    size_t mon_n;
    DWORD pnp_state;
    card_event_t q[NATIVE_EVENTS_MAX];
    size_t q_head, q_len;
    char mon_err[NATIVE_ERR_MAX];

    /* err and mon_err are written under err_lock; last_error returns a copy of
     * the newer one, so any thread may ask. */
    pthread_mutex_t err_lock;
    bool err_from_mon;

    /* both */
    atomic_uint_fast64_t n_apdus, n_sent, n_recv, n_trans, n_controls;
    atomic_bool cancel_pending; /* card_native_cancel_wait: next wait returns at once */
    atomic_bool in_wait;        /* the monitor is inside wait_event */
    atomic_bool closing;
} native_t;

static const card_ops_t native_ops;

static native_t *native_of(card_backend_t *b)
{
    return (native_t *)b;
}

__attribute__((format(printf, 2, 3))) static void set_err(native_t *n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    pthread_mutex_lock(&n->err_lock);
    vsnprintf(n->err, sizeof n->err, fmt, ap);
    n->err_from_mon = false;
    pthread_mutex_unlock(&n->err_lock);
    va_end(ap);
}

__attribute__((format(printf, 2, 3))) static void set_mon_err(native_t *n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    pthread_mutex_lock(&n->err_lock);
    vsnprintf(n->mon_err, sizeof n->mon_err, fmt, ap);
    n->err_from_mon = true;
    pthread_mutex_unlock(&n->err_lock);
    va_end(ap);
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The ATR of a CPx (spec §2.1, OpenSC's iasecc table): 17 bytes, TS 3B, bytes
 * 5..10 = 00 12 25 00 64 80 and 14..16 = 00 90 00; the others are free. */
static bool cpx_atr(const uint8_t *atr, size_t len)
{
    static const uint8_t mid[6] = {0x00, 0x12, 0x25, 0x00, 0x64, 0x80};
    static const uint8_t tail[3] = {0x00, 0x90, 0x00};
    return len == 17 && atr[0] == 0x3B && memcmp(atr + 5, mid, sizeof mid) == 0 &&
           memcmp(atr + 14, tail, sizeof tail) == 0;
}

static bool reader_matches(const native_t *n, const char *name)
{
    return strlen(name) < CARD_READER_MAX && (n->match[0] == '\0' || strstr(name, n->match));
}

/* A reader that pcscd lists but cannot reach (the appliance unplugged: pcscd
 * 1.9.9 keeps a reader.conf reader listed and flags it unavailable) counts as
 * gone, exactly as one that left the list. */
static bool reader_usable(DWORD st)
{
    return !(st & (SCARD_STATE_UNKNOWN | SCARD_STATE_UNAVAILABLE | SCARD_STATE_IGNORE));
}

static bool card_in(DWORD st)
{
    return reader_usable(st) && (st & SCARD_STATE_PRESENT) && !(st & SCARD_STATE_MUTE);
}

/* Copies a reader name that reader_matches() accepted (shorter than the room). */
static void copy_name(char dst[CARD_READER_MAX], const char *src)
{
    size_t l = strnlen(src, CARD_READER_MAX - 1);
    memcpy(dst, src, l);
    dst[l] = '\0';
}

/* Reader names (multi-string) into buf; 0 readers is a success. */
static LONG list_readers(SCARDCONTEXT ctx, char *buf, DWORD cap)
{
    DWORD len = cap;
    LONG rv = SCardListReaders(ctx, NULL, buf, &len);
    if (rv == SCARD_E_NO_READERS_AVAILABLE) {
        buf[0] = buf[1] = '\0';
        return SCARD_S_SUCCESS;
    }
    if (rv == SCARD_S_SUCCESS && (len < 2 || len > cap || buf[len - 1] != '\0'))
        rv = SCARD_F_INTERNAL_ERROR;
    if (rv == SCARD_S_SUCCESS && len >= 2)
        buf[len - 2] = buf[len - 1] = '\0'; /* always double-NUL terminated */
    return rv;
}

static bool removal_code(LONG rv)
{
    switch (rv) {
    case SCARD_W_REMOVED_CARD:
    case SCARD_E_NO_SMARTCARD:
    case SCARD_E_READER_UNAVAILABLE:
    case SCARD_E_UNKNOWN_READER:
    case SCARD_E_INVALID_HANDLE:
    case SCARD_W_UNPOWERED_CARD:
    case SCARD_W_UNRESPONSIVE_CARD:
    case SCARD_E_NO_READERS_AVAILABLE:
        return true;
    default:
        return false;
    }
}

static bool service_code(LONG rv)
{
    return rv == SCARD_E_NO_SERVICE || rv == SCARD_E_SERVICE_STOPPED ||
           rv == SCARD_E_INVALID_HANDLE;
}

/* Forgets the binding; disposition SCARD_RESET_CARD also drops the card's PIN state. */
static void drop_binding(native_t *n, DWORD disposition)
{
    if (n->connected)
        SCardDisconnect(n->h, disposition);
    n->connected = false;
    n->h = 0;
    n->pin_verified = false;
    n->pinpad = false;
    n->verify_ioctl = 0;
    n->esc_ioctl = 0;
    n->serial[0] = '\0';
}

static bool ensure_ctx(native_t *n)
{
    if (n->ctx_ok && SCardIsValidContext(n->ctx) == SCARD_S_SUCCESS)
        return true;
    if (n->ctx_ok)
        SCardReleaseContext(n->ctx);
    n->ctx_ok = false;
    LONG rv = SCardEstablishContext(SCARD_SCOPE_SYSTEM, NULL, NULL, &n->ctx);
    if (rv != SCARD_S_SUCCESS) {
        set_err(n, "SCardEstablishContext: %s", pcsc_stringify_error(rv));
        return false;
    }
    n->ctx_ok = true;
    return true;
}

/* Did the card leave? Checked after a transmit failed with a code that does
 * not say so itself (SCARD_E_NOT_TRANSACTED, SCARD_F_COMM_ERROR...): the
 * reader may report the removal a little after the failed exchange. */
static bool card_left(native_t *n)
{
    if (!n->ctx_ok)
        return false;
    SCARD_READERSTATE rs = {.szReader = n->reader, .dwCurrentState = SCARD_STATE_UNAWARE};
    LONG rv = SCardGetStatusChange(n->ctx, 0, &rs, 1);
    if (rv != SCARD_S_SUCCESS)
        return removal_code(rv);
    long long deadline = now_ms() + NATIVE_REMOVAL_WAIT_MS;
    for (;;) {
        DWORD st = rs.dwEventState;
        if (!card_in(st))
            return true;
        long long left = deadline - now_ms();
        if (left <= 0)
            return false;
        rs.dwCurrentState = st & ~(DWORD)SCARD_STATE_CHANGED;
        rv = SCardGetStatusChange(n->ctx, (DWORD)left, &rs, 1);
        if (rv == SCARD_E_TIMEOUT)
            return false;
        if (rv != SCARD_S_SUCCESS)
            return removal_code(rv);
    }
}

/* Maps a PC/SC failure of the bound card to a status (and the error text). */
static card_status_t pcsc_fail(native_t *n, const char *what, LONG rv)
{
    set_err(n, "%s: %s", what, pcsc_stringify_error(rv));
    if (rv == SCARD_W_RESET_CARD) {
        /* Someone reset the card: the PIN state is gone (ISO/IEC 7816-3 §6.2.3
         * warm reset). Reconnect so the next call works, report the lost login. */
        DWORD proto = 0;
        LONG r2 = SCardReconnect(n->h, SCARD_SHARE_SHARED, SCARD_PROTOCOL_T0 | SCARD_PROTOCOL_T1,
                                 SCARD_LEAVE_CARD, &proto);
        n->pin_verified = false;
        if (r2 == SCARD_S_SUCCESS) {
            n->proto = proto;
            return CARD_ERR_PIN_REQUIRED;
        }
        rv = r2;
        set_err(n, "SCardReconnect after a reset: %s", pcsc_stringify_error(r2));
    }
    if (removal_code(rv) || card_left(n)) {
        drop_binding(n, SCARD_LEAVE_CARD);
        return CARD_ERR_REMOVED;
    }
    if (service_code(rv)) {
        drop_binding(n, SCARD_LEAVE_CARD);
        if (n->ctx_ok)
            SCardReleaseContext(n->ctx);
        n->ctx_ok = false;
    }
    return CARD_ERR_BACKEND;
}

/* One SCardTransmit, counted. */
static card_status_t xmit(native_t *n, const uint8_t *cmd, size_t clen, uint8_t *r, DWORD *rlen)
{
    const SCARD_IO_REQUEST *pci = n->proto == SCARD_PROTOCOL_T1 ? SCARD_PCI_T1 : SCARD_PCI_T0;
    LONG rv = SCardTransmit(n->h, pci, cmd, (DWORD)clen, NULL, r, rlen);
    atomic_fetch_add(&n->n_apdus, 1);
    atomic_fetch_add(&n->n_sent, clen);
    if (rv != SCARD_S_SUCCESS)
        return pcsc_fail(n, "SCardTransmit", rv);
    atomic_fetch_add(&n->n_recv, *rlen);
    if (*rlen < 2) {
        set_err(n, "SCardTransmit: answer without status word");
        return CARD_ERR_BACKEND;
    }
    return CARD_OK;
}

/* One command APDU, with the T=0 answers handled here whatever the reader
 * leaves to the application (ISO/IEC 7816-3 §12.2.3-4, 7816-4 §5.1.3):
 * 6Cxx re-sends the command once with Le = xx, 61xx fetches xx more bytes with
 * GET RESPONSE. out gets the data of every round, sw the last status word. */
static card_status_t apdu(native_t *n, const uint8_t *cmd, size_t clen, uint8_t *out, size_t cap,
                          size_t *olen, uint16_t *sw)
{
    uint8_t c[NATIVE_CMD_MAX];
    uint8_t r[NATIVE_RAPDU_MAX];
    card_status_t st = CARD_OK;
    size_t got = 0;
    bool resent = false;
    *olen = 0;
    *sw = 0;
    if (clen < 4 || clen > sizeof c) {
        set_err(n, "APDU of %zu bytes", clen);
        return CARD_ERR_BAD_INPUT;
    }
    memcpy(c, cmd, clen);
    /* case 2S: 5 bytes; case 4S: 5 + Lc + 1 (Le last). */
    bool has_le = clen == 5 || (clen > 5 && clen == 6 + (size_t)c[4]);
    int round;
    for (round = 0; round < NATIVE_GETRESP_MAX; round++) {
        DWORD rl = sizeof r;
        st = xmit(n, c, clen, r, &rl);
        if (st != CARD_OK)
            goto out;
        size_t dl = rl - 2;
        uint8_t sw1 = r[rl - 2], sw2 = r[rl - 1];
        if (dl > cap - got) {
            set_err(n, "card answer longer than %zu bytes", cap);
            st = CARD_ERR_BACKEND;
            goto out;
        }
        memcpy(out + got, r, dl);
        got += dl;
        if (sw1 == 0x6C && dl == 0 && has_le && !resent) {
            c[clen - 1] = sw2; /* §12.2.3: wrong Le, the card says how many */
            resent = true;
            continue;
        }
        if (sw1 == 0x61) {
            /* §12.2.4: sw2 more bytes (00 = 256): GET RESPONSE, CLA without chaining */
            uint8_t cla = (c[0] & 0x80) ? c[0] : (uint8_t)(c[0] & ~0x10u);
            c[0] = cla;
            c[1] = 0xC0;
            c[2] = 0x00;
            c[3] = 0x00;
            c[4] = sw2;
            clen = 5;
            has_le = true;
            resent = false;
            continue;
        }
        *sw = (uint16_t)(sw1 << 8 | sw2);
        break;
    }
    if (round == NATIVE_GETRESP_MAX) {
        set_err(n, "card keeps answering 61xx/6Cxx");
        st = CARD_ERR_BACKEND;
        goto out;
    }
    *olen = got;
out:
    OPENSSL_cleanse(c, sizeof c);
    OPENSSL_cleanse(r, sizeof r);
    return st;
}

/* SCardBeginTransaction on the bound card. *was_reset: another client reset the
 * card since our last exchange (we reconnected; the PIN state is gone). */
static card_status_t txn_begin(native_t *n, bool *was_reset)
{
    *was_reset = false;
    if (!n->connected) {
        set_err(n, "no card bound");
        return CARD_ERR_NO_CARD;
    }
    LONG rv = SCardBeginTransaction(n->h);
    if (rv == SCARD_W_RESET_CARD) {
        DWORD proto = 0;
        rv = SCardReconnect(n->h, SCARD_SHARE_SHARED, SCARD_PROTOCOL_T0 | SCARD_PROTOCOL_T1,
                            SCARD_LEAVE_CARD, &proto);
        n->pin_verified = false;
        if (rv == SCARD_S_SUCCESS) {
            n->proto = proto;
            *was_reset = true;
            rv = SCardBeginTransaction(n->h);
        }
    }
    if (rv != SCARD_S_SUCCESS) {
        card_status_t st = pcsc_fail(n, "SCardBeginTransaction", rv);
        return st == CARD_ERR_PIN_REQUIRED ? CARD_ERR_BACKEND : st;
    }
    atomic_fetch_add(&n->n_trans, 1);
    return CARD_OK;
}

static void txn_end(native_t *n)
{
    if (n->connected)
        SCardEndTransaction(n->h, SCARD_LEAVE_CARD);
}

/* SELECT by absolute path from the MF (P1=09 with 3F00, spec §5.1), no FCI
 * wanted (P2=0C): a case 3 command, nothing to read back. A card refusing
 * P2=0C gets P2=04 from then on. *found false on 6A82. */
static card_status_t select_path(native_t *n, const uint8_t *path, size_t plen, bool *found)
{
    uint8_t cmd[5 + 8 + 1];
    uint8_t fci[NATIVE_RESP_MAX];
    size_t fl;
    uint16_t sw = 0;
    *found = false;
    if (plen > 8)
        return CARD_ERR_BAD_INPUT;
    for (int attempt = 0; attempt < 2; attempt++) {
        bool fcp = n->select_p2 != 0x0C;
        cmd[0] = 0x00;
        cmd[1] = 0xA4;
        cmd[2] = 0x09;
        cmd[3] = n->select_p2;
        cmd[4] = (uint8_t)plen;
        memcpy(cmd + 5, path, plen);
        size_t clen = 5 + plen;
        if (fcp)
            cmd[clen++] = 0x00; /* case 4: Le = 256 */
        card_status_t st = apdu(n, cmd, clen, fci, sizeof fci, &fl, &sw);
        if (st != CARD_OK)
            return st;
        if (sw == SW_OK) {
            *found = true;
            return CARD_OK;
        }
        if (sw == SW_NOT_FOUND)
            return CARD_OK;
        if (!fcp && (sw == SW_WRONG_P1P2 || sw == SW_LC_P1P2 || sw == SW_WRONG_P1P2_2 ||
                     sw == SW_FUNC_NOT_SUPPORTED)) {
            n->select_p2 = 0x04;
            continue;
        }
        break;
    }
    set_err(n, "SELECT: card answered %04X", sw);
    return CARD_ERR_BACKEND;
}

/* EF.SN (spec §3.2): 5A L <PAN in BCD>; the serial is the PAN's digits (F
 * nibbles pad an odd length). Anything else: the bytes in hex. */
static void serial_from_sn(const uint8_t *d, size_t dl, char *out, size_t cap)
{
    out[0] = '\0';
    if (dl < 2 || d[0] != 0x5A || d[1] == 0 || d[1] > dl - 2 || (size_t)d[1] * 2 >= cap)
        return;
    const uint8_t *p = d + 2;
    size_t pl = d[1], o = 0;
    bool bcd = true, pad = false;
    for (size_t i = 0; i < pl * 2 && bcd; i++) {
        uint8_t nib = (uint8_t)(i & 1 ? p[i / 2] & 0x0F : p[i / 2] >> 4);
        if (nib == 0x0F)
            pad = true;
        else if (nib > 9 || pad)
            bcd = false;
        else
            out[o++] = (char)('0' + nib);
    }
    if (!bcd || o == 0) {
        static const char hex[] = "0123456789ABCDEF";
        o = 0;
        for (size_t i = 0; i < pl; i++) {
            out[o++] = hex[p[i] >> 4];
            out[o++] = hex[p[i] & 0x0F];
        }
    }
    out[o] = '\0';
}

/* PC/SC part 10 §2.2: CM_IOCTL_GET_FEATURE_REQUEST lists tag, 4, control code
 * (big-endian). No card command is sent. */
static DWORD feature_ioctl(const uint8_t *v)
{
    return (DWORD)v[0] << 24 | (DWORD)v[1] << 16 | (DWORD)v[2] << 8 | v[3];
}

static void query_features(native_t *n)
{
    uint8_t buf[256];
    DWORD len = 0;
    n->pinpad = false;
    n->verify_ioctl = 0;
    n->esc_ioctl = 0;
    LONG rv = SCardControl(n->h, CM_IOCTL_GET_FEATURE_REQUEST, NULL, 0, buf, sizeof buf, &len);
    if (rv != SCARD_S_SUCCESS || len > sizeof buf)
        return;
    for (size_t i = 0; i + 2 <= len;) {
        uint8_t tag = buf[i], l = buf[i + 1];
        if (l > len - i - 2)
            break;
        if (tag == FEATURE_VERIFY_PIN_DIRECT && l == 4) {
            n->verify_ioctl = feature_ioctl(buf + i + 2);
            n->pinpad = true;
        } else if (tag == FEATURE_CCID_ESC_COMMAND && l == 4) {
            /* the reader forwards Escape (drivers/ifd "@escape", libccid 0x0001) */
            n->esc_ioctl = feature_ioctl(buf + i + 2);
        }
        i += 2 + (size_t)l;
    }
}

/* Connects to the first matching reader holding a CPx card. */
static card_status_t connect_cpx(native_t *n)
{
    char list[NATIVE_LIST_MAX];
    LONG rv = list_readers(n->ctx, list, sizeof list);
    if (rv != SCARD_S_SUCCESS)
        return pcsc_fail(n, "SCardListReaders", rv);
    bool any_reader = false, noted = false;
    card_status_t st = CARD_ERR_NO_CARD;
    for (const char *r = list; *r; r += strlen(r) + 1) {
        if (!reader_matches(n, r))
            continue;
        SCARDHANDLE h;
        DWORD proto = 0;
        rv = SCardConnect(n->ctx, r, SCARD_SHARE_SHARED, SCARD_PROTOCOL_T0 | SCARD_PROTOCOL_T1,
                          &h, &proto);
        if (rv == SCARD_E_READER_UNAVAILABLE || rv == SCARD_E_UNKNOWN_READER)
            continue; /* listed, but unplugged: not a reader for us */
        any_reader = true;
        if (rv != SCARD_S_SUCCESS) {
            if (!removal_code(rv) && rv != SCARD_E_NO_SMARTCARD) {
                set_err(n, "SCardConnect(%s): %s", r, pcsc_stringify_error(rv));
                st = CARD_ERR_BACKEND;
                noted = true;
            }
            continue;
        }
        uint8_t atr[MAX_ATR_SIZE];
        DWORD atr_len = sizeof atr, state = 0, rlen = 0;
        rv = SCardStatus(h, NULL, &rlen, &state, &proto, atr, &atr_len);
        if (rv != SCARD_S_SUCCESS || atr_len > sizeof atr || !cpx_atr(atr, atr_len)) {
            SCardDisconnect(h, SCARD_LEAVE_CARD);
            set_err(n, "card in %s is not a CPx", r);
            noted = true;
            continue;
        }
        n->h = h;
        n->proto = proto;
        n->connected = true;
        n->pin_verified = false;
        n->select_p2 = 0x0C;
        copy_name(n->reader, r);
        query_features(n);
        return CARD_OK;
    }
    if (!any_reader) {
        set_err(n, "no reader%s%s", n->match[0] ? " matching " : "", n->match);
        return CARD_ERR_NO_READER;
    }
    if (!noted)
        set_err(n, "no card in the reader");
    return st;
}

/* ------------------------------------------------------------------ */
/* card_ops_t                                                          */

static card_status_t native_get_info(card_backend_t *b, card_info_t *out)
{
    native_t *n = native_of(b);
    if (!out)
        return CARD_ERR_BAD_INPUT;
    memset(out, 0, sizeof *out);
    if (n->connected) {
        DWORD state = 0, proto = 0, rlen = 0, atr_len = MAX_ATR_SIZE;
        uint8_t atr[MAX_ATR_SIZE];
        LONG rv = SCardStatus(n->h, NULL, &rlen, &state, &proto, atr, &atr_len);
        if (rv == SCARD_S_SUCCESS || rv == SCARD_W_RESET_CARD) {
            snprintf(out->reader, sizeof out->reader, "%s", n->reader);
            snprintf(out->serial, sizeof out->serial, "%s", n->serial);
            out->present = true;
            out->pinpad = n->pinpad;
            return CARD_OK;
        }
        if (!removal_code(rv) && !service_code(rv)) {
            set_err(n, "SCardStatus: %s", pcsc_stringify_error(rv));
            return CARD_ERR_BACKEND;
        }
        drop_binding(n, SCARD_LEAVE_CARD);
    }
    if (!ensure_ctx(n))
        return CARD_ERR_BACKEND;
    /* Not bound: what the readers show, without connecting. */
    char list[NATIVE_LIST_MAX];
    LONG rv = list_readers(n->ctx, list, sizeof list);
    if (rv != SCARD_S_SUCCESS) {
        set_err(n, "SCardListReaders: %s", pcsc_stringify_error(rv));
        return CARD_ERR_BACKEND;
    }
    bool any = false;
    for (const char *r = list; *r; r += strlen(r) + 1) {
        if (!reader_matches(n, r))
            continue;
        SCARD_READERSTATE rs = {.szReader = r, .dwCurrentState = SCARD_STATE_UNAWARE};
        if (SCardGetStatusChange(n->ctx, 0, &rs, 1) != SCARD_S_SUCCESS ||
            !reader_usable(rs.dwEventState))
            continue;
        if (!any)
            copy_name(out->reader, r);
        any = true;
        if (card_in(rs.dwEventState) && rs.cbAtr <= sizeof rs.rgbAtr &&
            cpx_atr(rs.rgbAtr, rs.cbAtr)) {
            copy_name(out->reader, r);
            out->present = true;
            break;
        }
    }
    if (!any) {
        set_err(n, "no reader");
        return CARD_ERR_NO_READER;
    }
    return CARD_OK;
}

static card_status_t native_bind(card_backend_t *b, card_info_t *out)
{
    native_t *n = native_of(b);
    if (out)
        memset(out, 0, sizeof *out);
    drop_binding(n, SCARD_LEAVE_CARD); /* a new card: nothing of the old one is kept */
    if (!ensure_ctx(n))
        return CARD_ERR_BACKEND;
    card_status_t st = connect_cpx(n);
    if (st != CARD_OK)
        return st;
    bool reset;
    st = txn_begin(n, &reset);
    if (st != CARD_OK)
        return st;
    /* READ BINARY with SFI 1C (EF.SN), Le C0: what OpenSC sends (spec §3, §5.2). */
    static const uint8_t read_sn[5] = {0x00, 0xB0, 0x9C, 0x00, 0xC0};
    uint8_t d[NATIVE_RESP_MAX];
    size_t dl = 0;
    uint16_t sw = 0;
    st = apdu(n, read_sn, sizeof read_sn, d, sizeof d, &dl, &sw);
    txn_end(n);
    if (st == CARD_ERR_PIN_REQUIRED)
        st = CARD_ERR_BACKEND;
    if (st != CARD_OK) {
        drop_binding(n, SCARD_LEAVE_CARD);
        return st;
    }
    if (sw == SW_OK || sw == SW_EOF)
        serial_from_sn(d, dl, n->serial, sizeof n->serial);
    else
        set_err(n, "EF.SN: card answered %04X (no serial)", sw);
    if (out) {
        snprintf(out->reader, sizeof out->reader, "%s", n->reader);
        snprintf(out->serial, sizeof out->serial, "%s", n->serial);
        out->present = true;
        out->pinpad = n->pinpad;
        /* label: left to the certificate identity (EF.DIR would cost one more
         * READ BINARY on every insertion for a constant string). */
    }
    return CARD_OK;
}

/* Length of the DER element starting at d (a certificate is one SEQUENCE,
 * X.690 §8.1.3), 0 when not a SEQUENCE with a definite length we accept. */
static size_t der_total(const uint8_t *d, size_t dl)
{
    if (dl < 2 || d[0] != 0x30)
        return 0;
    if (d[1] < 0x80)
        return 2 + (size_t)d[1];
    size_t nb = d[1] & 0x7F;
    if (nb == 0 || nb > 2 || dl < 2 + nb)
        return 0; /* indefinite, or > 64 KB: not a certificate of a card */
    size_t len = 0;
    for (size_t i = 0; i < nb; i++)
        len = len << 8 | d[2 + i];
    return 2 + nb + len;
}

/* Reads the current EF as one DER certificate: READ BINARY in chunks of the
 * protocol's size until the DER length is read. A card answering fewer bytes
 * than asked (the CPx E7 quirk, spec §5.2) is simply read on from there. */
static card_status_t read_der(native_t *n, card_cert_t *c)
{
    const size_t chunk = n->proto == SCARD_PROTOCOL_T1 ? NATIVE_T1_READ : NATIVE_T0_READ;
    size_t off = 0, total = 0;
    uint8_t d[NATIVE_RESP_MAX];
    c->der_len = 0;
    while (total == 0 || off < total) {
        size_t want = chunk;
        if (total && total - off < want)
            want = total - off;
        if (off > NATIVE_OFFSET_MAX) {
            set_err(n, "certificate beyond READ BINARY offsets");
            return CARD_ERR_BACKEND;
        }
        uint8_t cmd[5] = {0x00, 0xB0, (uint8_t)(off >> 8), (uint8_t)off,
                          (uint8_t)(want == 256 ? 0 : want)};
        size_t dl = 0;
        uint16_t sw = 0;
        card_status_t st = apdu(n, cmd, sizeof cmd, d, sizeof d, &dl, &sw);
        if (st != CARD_OK)
            return st;
        if ((sw != SW_OK && sw != SW_EOF) || dl == 0 || dl > want) {
            set_err(n, "READ BINARY at %zu: %zu bytes, card answered %04X", off, dl, sw);
            return CARD_ERR_BACKEND;
        }
        if (dl > CARD_CERT_MAX - off) {
            set_err(n, "certificate larger than %d bytes", CARD_CERT_MAX);
            return CARD_ERR_BACKEND;
        }
        memcpy(c->der + off, d, dl);
        off += dl;
        if (total == 0) {
            total = der_total(c->der, off);
            if (total == 0 && off >= 4) {
                set_err(n, "EF is not a DER certificate");
                return CARD_ERR_BACKEND;
            }
            if (total > CARD_CERT_MAX) {
                set_err(n, "certificate of %zu bytes (max %d)", total, CARD_CERT_MAX);
                return CARD_ERR_BACKEND;
            }
            if (total && off > total)
                off = total; /* the EF is longer than its certificate */
        }
        if (sw == SW_EOF && (total == 0 || off < total)) {
            set_err(n, "certificate EF ends before its DER length");
            return CARD_ERR_BACKEND;
        }
    }
    c->der_len = total;
    return CARD_OK;
}

static card_status_t native_read_certs(card_backend_t *b, card_cert_t *certs, size_t cap, size_t *count)
{
    native_t *n = native_of(b);
    if (!certs || !count || cap == 0)
        return CARD_ERR_BAD_INPUT;
    *count = 0;
    bool reset;
    card_status_t st = txn_begin(n, &reset);
    if (st != CARD_OK)
        return st;
    for (size_t i = 0; i < sizeof cpx_certs / sizeof cpx_certs[0] && *count < cap; i++) {
        /* 3F00 / 0001 / C00x (spec §4, §6.6) */
        const uint8_t path[6] = {0x3F, 0x00, 0x00, 0x01, (uint8_t)(cpx_certs[i].fid >> 8),
                                 (uint8_t)cpx_certs[i].fid};
        bool found;
        st = select_path(n, path, sizeof path, &found);
        if (st != CARD_OK)
            break;
        if (!found)
            continue; /* a card without this certificate */
        card_cert_t *c = &certs[*count];
        memset(c, 0, sizeof *c);
        st = read_der(n, c);
        if (st != CARD_OK)
            break;
        snprintf(c->label, sizeof c->label, "%s", cpx_certs[i].label);
        memcpy(c->id, cpx_aid, sizeof cpx_aid);
        c->id[sizeof cpx_aid] = cpx_certs[i].id_last;
        c->id_len = sizeof cpx_aid + 1;
        c->role = cpx_certs[i].role;
        (*count)++;
    }
    txn_end(n);
    if (st == CARD_ERR_PIN_REQUIRED)
        st = CARD_ERR_BACKEND; /* a reset in the middle: read again */
    if (st != CARD_OK)
        *count = 0;
    return st;
}

/* Status words of VERIFY (spec §9, PC/SC part 10 §2.6.x for the PIN pad's 64xx). */
static card_status_t verify_sw(native_t *n, uint16_t sw, int *tries_left)
{
    if (sw == SW_OK) {
        n->pin_verified = true;
        return CARD_OK;
    }
    if ((sw & 0xFFF0) == 0x63C0) {
        if (tries_left)
            *tries_left = sw & 0x0F;
        set_err(n, "wrong PIN, %d tries left", sw & 0x0F);
        return CARD_ERR_PIN_INCORRECT;
    }
    switch (sw) {
    case SW_BLOCKED:
        if (tries_left)
            *tries_left = 0;
        set_err(n, "PIN blocked");
        return CARD_ERR_PIN_BLOCKED;
    case SW_PINPAD_TIMEOUT:
        set_err(n, "PIN pad: time-out");
        return CARD_ERR_TIMEOUT;
    case SW_PINPAD_CANCEL:
        set_err(n, "PIN pad: cancelled");
        return CARD_ERR_CANCELLED;
    case SW_PINPAD_LENGTH:
    case SW_WRONG_LENGTH:
    case SW_WRONG_DATA:
        set_err(n, "PIN refused by the card (length), SW %04X", sw);
        return CARD_ERR_PIN_FORMAT;
    default:
        set_err(n, "VERIFY: card answered %04X", sw);
        return CARD_ERR_BACKEND;
    }
}

static card_status_t native_pin_status(card_backend_t *b, int *tries_left, bool *verified)
{
    native_t *n = native_of(b);
    if (tries_left)
        *tries_left = -1;
    if (verified)
        *verified = false;
    bool reset;
    card_status_t st = txn_begin(n, &reset);
    if (st != CARD_OK)
        return st;
    /* Empty VERIFY (case 1): 9000 verified, 63Cx x tries, 6983 blocked (spec §9). */
    static const uint8_t cmd[4] = {0x00, 0x20, 0x00, 0x01};
    uint8_t d[NATIVE_RESP_MAX];
    size_t dl;
    uint16_t sw = 0;
    st = apdu(n, cmd, sizeof cmd, d, sizeof d, &dl, &sw);
    txn_end(n);
    if (st == CARD_ERR_PIN_REQUIRED)
        st = CARD_ERR_BACKEND;
    if (st != CARD_OK)
        return st;
    if (sw == SW_OK) {
        if (verified)
            *verified = true;
        return CARD_OK;
    }
    if ((sw & 0xFFF0) == 0x63C0) {
        n->pin_verified = false;
        if (tries_left)
            *tries_left = sw & 0x0F;
        return CARD_OK;
    }
    if (sw == SW_BLOCKED) {
        n->pin_verified = false;
        if (tries_left)
            *tries_left = 0;
        return CARD_OK;
    }
    set_err(n, "VERIFY (status): card answered %04X", sw);
    return CARD_ERR_BACKEND;
}

/* PC/SC part 10 §2.5.2 PIN_VERIFY_STRUCTURE (little-endian fields) around
 * VERIFY 00 20 00 01 08 FF..FF: ASCII digits from byte 0 of an 8-byte block
 * padded with FF, as OpenSC's IAS-ECC driver pads to the stored length (spec §9). */
static card_status_t verify_pinpad(native_t *n, int *tries_left)
{
    enum { PVS_HDR = 19, PVS_APDU = 13 };
    _Static_assert(offsetof(PIN_VERIFY_STRUCTURE, abData) == PVS_HDR, "part 10 layout");
    if (!n->connected) {
        set_err(n, "no card bound");
        return CARD_ERR_NO_CARD;
    }
    if (!n->pinpad) {
        set_err(n, "reader has no PIN pad (FEATURE_VERIFY_PIN_DIRECT)");
        return CARD_ERR_NOT_SUPPORTED;
    }
    uint8_t pvs[PVS_HDR + PVS_APDU] = {
        0x00,       /* bTimerOut: the reader's default */
        0x00,       /* bTimerOut2 */
        0x82,       /* bmFormatString: units bytes, position 0, left, ASCII */
        0x08,       /* bmPINBlockString: no length field, 8-byte block */
        0x00,       /* bmPINLengthFormat */
        NATIVE_PIN_MAX, NATIVE_PIN_MIN, /* wPINMaxExtraDigit 0xXXYY = min 4, max 8 */
        0x02,       /* bEntryValidationCondition: validation key */
        0x01,       /* bNumberMessage */
        0x0C, 0x04, /* wLangId 0x040C: French */
        0x00,       /* bMsgIndex */
        0x00, 0x00, 0x00, /* bTeoPrologue */
        PVS_APDU, 0x00, 0x00, 0x00, /* ulDataLength */
        0x00, 0x20, 0x00, 0x01, 0x08, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
    };
    bool reset;
    card_status_t st = txn_begin(n, &reset);
    if (st != CARD_OK)
        return st;
    uint8_t r[NATIVE_RAPDU_MAX];
    DWORD rl = 0;
    LONG rv = SCardControl(n->h, n->verify_ioctl, pvs, sizeof pvs, r, sizeof r, &rl);
    atomic_fetch_add(&n->n_controls, 1);
    txn_end(n);
    if (rv != SCARD_S_SUCCESS) {
        st = pcsc_fail(n, "SCardControl(FEATURE_VERIFY_PIN_DIRECT)", rv);
        return st == CARD_ERR_PIN_REQUIRED ? CARD_ERR_BACKEND : st;
    }
    if (rl < 2 || rl > sizeof r) {
        set_err(n, "PIN pad: answer without status word");
        return CARD_ERR_BACKEND;
    }
    uint16_t sw = (uint16_t)(r[rl - 2] << 8 | r[rl - 1]);
    OPENSSL_cleanse(r, sizeof r);
    return verify_sw(n, sw, tries_left);
}

static card_status_t native_verify_pin(card_backend_t *b, const char *pin, int *tries_left)
{
    native_t *n = native_of(b);
    if (tries_left)
        *tries_left = -1;
    if (!pin)
        return verify_pinpad(n, tries_left);
    /* 4..8 ASCII digits (AODF §6.4) or the card is not asked: no try spent. */
    size_t len = strnlen(pin, NATIVE_PIN_MAX + 1);
    bool digits = len >= NATIVE_PIN_MIN && len <= NATIVE_PIN_MAX;
    for (size_t i = 0; i < len && digits; i++)
        digits = pin[i] >= '0' && pin[i] <= '9';
    if (!digits) {
        set_err(n, "PIN must be %d to %d digits", NATIVE_PIN_MIN, NATIVE_PIN_MAX);
        return CARD_ERR_PIN_FORMAT;
    }
    bool reset;
    card_status_t st = txn_begin(n, &reset);
    if (st != CARD_OK)
        return st;
    /* VERIFY CHV 01 (global, in the MF), ASCII, no padding (spec §9). */
    uint8_t cmd[5 + NATIVE_PIN_MAX] = {0x00, 0x20, 0x00, 0x01, (uint8_t)len};
    memcpy(cmd + 5, pin, len);
    uint8_t d[NATIVE_RESP_MAX];
    size_t dl;
    uint16_t sw = 0;
    st = apdu(n, cmd, 5 + len, d, sizeof d, &dl, &sw);
    OPENSSL_cleanse(cmd, sizeof cmd);
    txn_end(n);
    if (st == CARD_ERR_PIN_REQUIRED)
        st = CARD_ERR_BACKEND; /* reset under our feet: not sent again (never retried) */
    if (st != CARD_OK)
        return st;
    return verify_sw(n, sw, tries_left);
}

/* What the card is sent for one signature (part A item 3, spec §10.1). */
typedef struct {
    uint8_t mse[11];
    uint8_t op[5 + 255 + 1];
    size_t op_len;
} sign_plan_t;

static card_status_t plan_sign(native_t *n, card_key_role_t role, card_mech_t mech,
                               const uint8_t *in, size_t in_len, sign_plan_t *p)
{
    const uint8_t *pre = NULL;
    size_t pre_len = 0;
    if (role == CARD_KEY_AUTH) {
        /* MSE SET AT: key 0x82, algRef 02 (card-side PKCS#1 v1.5), then
         * INTERNAL AUTHENTICATE over DigestInfo or raw data <= k-11. */
        static const uint8_t mse_at[11] = {0x00, 0x22, 0x41, 0xA4, 0x06, 0x84,
                                           0x01, KEY_REF_AUTH, 0x80, 0x01, ALG_RSA_PKCS1};
        memcpy(p->mse, mse_at, sizeof mse_at);
        if (mech == CARD_MECH_SHA256 && in_len == NATIVE_SHA256_LEN) {
            pre = di_sha256;
            pre_len = sizeof di_sha256;
        } else if (mech == CARD_MECH_SHA1 && in_len == NATIVE_SHA1_LEN) {
            pre = di_sha1;
            pre_len = sizeof di_sha1;
        } else if (mech != CARD_MECH_RSA_PKCS || in_len == 0 || in_len > 255) {
            set_err(n, "auth key: mechanism %d with %zu bytes refused", (int)mech, in_len);
            return CARD_ERR_BAD_INPUT;
        }
        p->op[0] = 0x00;
        p->op[1] = 0x88;
        p->op[2] = 0x00;
        p->op[3] = 0x00;
    } else if (role == CARD_KEY_SIGN) {
        /* MSE SET DST: key 0x81, algRef 42 (SHA-256) / 12 (SHA-1), then PSO
         * COMPUTE DIGITAL SIGNATURE over the bare hash; the card builds the
         * DigestInfo. A DigestInfo given with CARD_MECH_RSA_PKCS is stripped. */
        uint8_t alg;
        if (mech == CARD_MECH_SHA256 && in_len == NATIVE_SHA256_LEN) {
            alg = ALG_RSA_SHA256;
        } else if (mech == CARD_MECH_SHA1 && in_len == NATIVE_SHA1_LEN) {
            alg = ALG_RSA_SHA1;
        } else if (mech == CARD_MECH_RSA_PKCS && in_len == sizeof di_sha256 + NATIVE_SHA256_LEN &&
                   memcmp(in, di_sha256, sizeof di_sha256) == 0) {
            alg = ALG_RSA_SHA256;
            in += sizeof di_sha256;
            in_len = NATIVE_SHA256_LEN;
        } else if (mech == CARD_MECH_RSA_PKCS && in_len == sizeof di_sha1 + NATIVE_SHA1_LEN &&
                   memcmp(in, di_sha1, sizeof di_sha1) == 0) {
            alg = ALG_RSA_SHA1;
            in += sizeof di_sha1;
            in_len = NATIVE_SHA1_LEN;
        } else {
            set_err(n, "sign key: mechanism %d with %zu bytes refused (SHA-1/SHA-256 only)",
                    (int)mech, in_len);
            return CARD_ERR_BAD_INPUT;
        }
        const uint8_t mse_dst[11] = {0x00, 0x22, 0x41, 0xB6, 0x06, 0x84,
                                     0x01, KEY_REF_SIGN, 0x80, 0x01, alg};
        memcpy(p->mse, mse_dst, sizeof mse_dst);
        p->op[0] = 0x00;
        p->op[1] = 0x2A;
        p->op[2] = 0x9E;
        p->op[3] = 0x9A;
    } else {
        set_err(n, "unknown key role %d", (int)role);
        return CARD_ERR_BAD_INPUT;
    }
    size_t lc = pre_len + in_len;
    if (lc == 0 || lc > 255)
        return CARD_ERR_BAD_INPUT;
    p->op[4] = (uint8_t)lc;
    if (pre_len)
        memcpy(p->op + 5, pre, pre_len);
    memcpy(p->op + 5 + pre_len, in, in_len);
    p->op[5 + lc] = 0x00; /* Le = 256: the whole signature */
    p->op_len = 6 + lc;
    return CARD_OK;
}

static card_status_t native_sign(card_backend_t *b, card_key_role_t role, card_mech_t mech,
                                 const uint8_t *in, size_t in_len, uint8_t *sig, size_t sig_cap,
                                 size_t *sig_len)
{
    native_t *n = native_of(b);
    if (sig_len)
        *sig_len = 0;
    if (!in || !sig || !sig_len) {
        set_err(n, "sign: missing argument");
        return CARD_ERR_BAD_INPUT;
    }
    sign_plan_t p;
    card_status_t st = plan_sign(n, role, mech, in, in_len, &p);
    if (st != CARD_OK)
        return st;
    uint8_t d[NATIVE_RESP_MAX];
    size_t dl = 0;
    uint16_t sw = 0;
    bool reset;
    st = txn_begin(n, &reset);
    if (st != CARD_OK)
        goto wipe;
    if (reset) {
        /* Another client reset the card: our login is gone (spec part A item 5). */
        txn_end(n);
        set_err(n, "card was reset by another application: PIN needed again");
        st = CARD_ERR_PIN_REQUIRED;
        goto wipe;
    }
    /* Key references 0x81/0x82 are local to DF 0001 (b8 set, ISO/IEC 7816-4
     * §7.5.1; spec §4: the key DF must be 3F00/0001); another client may have
     * moved the current DF between our transactions, so select it. */
    static const uint8_t df_path[4] = {0x3F, 0x00, 0x00, 0x01};
    bool found = false;
    st = select_path(n, df_path, sizeof df_path, &found);
    if (st == CARD_OK && !found) {
        set_err(n, "DF 3F00/0001 not found");
        st = CARD_ERR_NOT_SUPPORTED;
    }
    if (st == CARD_OK) {
        st = apdu(n, p.mse, sizeof p.mse, d, sizeof d, &dl, &sw);
        if (st == CARD_OK && sw != SW_OK) {
            set_err(n, "MSE SET: card answered %04X", sw);
            st = sw == SW_REF_NOT_FOUND || sw == SW_WRONG_DATA ? CARD_ERR_NOT_SUPPORTED
                                                               : CARD_ERR_BACKEND;
        }
    }
    if (st == CARD_OK)
        st = apdu(n, p.op, p.op_len, d, sizeof d, &dl, &sw);
    txn_end(n);
    if (st != CARD_OK)
        goto wipe;
    switch (sw) {
    case SW_OK:
        if (dl == 0 || dl > sig_cap) {
            set_err(n, "signature of %zu bytes, room for %zu", dl, sig_cap);
            st = dl ? CARD_ERR_BAD_INPUT : CARD_ERR_BACKEND;
            break;
        }
        memcpy(sig, d, dl);
        *sig_len = dl;
        break;
    case SW_SECURITY:
        n->pin_verified = false;
        set_err(n, "card wants the PIN (6982)");
        st = CARD_ERR_PIN_REQUIRED;
        break;
    case SW_BLOCKED:
        set_err(n, "PIN blocked (6983)");
        st = CARD_ERR_PIN_BLOCKED;
        break;
    case SW_WRONG_LENGTH:
    case SW_WRONG_DATA:
        set_err(n, "card refused the data (%04X)", sw);
        st = CARD_ERR_BAD_INPUT;
        break;
    case SW_CONDITIONS:
    case SW_REF_NOT_FOUND:
        /* 69 85 is also the appliance's gate refusing a digest other than
         * the announced or confirmed one (docs/appliance.md "The gate"). */
        set_err(n, "key cannot do this, or the appliance refused the digest (%04X)", sw);
        st = CARD_ERR_NOT_SUPPORTED;
        break;
    case SW_PINPAD_CANCEL:
        /* the holder pressed Cancel on the confirm screen (firmware/gate) */
        set_err(n, "signature cancelled on the appliance (6401)");
        st = CARD_ERR_CANCELLED;
        break;
    case SW_PINPAD_TIMEOUT:
        set_err(n, "signature not confirmed in time on the appliance (6400)");
        st = CARD_ERR_TIMEOUT;
        break;
    default:
        set_err(n, "signature: card answered %04X", sw);
        st = CARD_ERR_BACKEND;
        break;
    }
wipe:
    OPENSSL_cleanse(&p, sizeof p);
    OPENSSL_cleanse(d, sizeof d);
    return st;
}

/* Logout = reset the card. A CPx has no logout command (spec §13: C_Logout
 * sends nothing), and only a reset clears the holder's verified state on the
 * card itself (part A item 5) — which is what "logout" means to a practitioner:
 * no signature without the PIN again, through cachetd or any other client
 * sharing the reader. SCardReconnect keeps our handle; no APDU is sent. */
static void native_logout(card_backend_t *b)
{
    native_t *n = native_of(b);
    n->pin_verified = false;
    if (!n->connected)
        return;
    DWORD proto = 0;
    LONG rv = SCardReconnect(n->h, SCARD_SHARE_SHARED, SCARD_PROTOCOL_T0 | SCARD_PROTOCOL_T1,
                             SCARD_RESET_CARD, &proto);
    if (rv == SCARD_S_SUCCESS) {
        n->proto = proto;
        return;
    }
    set_err(n, "SCardReconnect(reset): %s", pcsc_stringify_error(rv));
    if (removal_code(rv) || service_code(rv))
        drop_binding(n, SCARD_LEAVE_CARD);
}

/* ------------------------------------------------------------------ */
/* Monitor (wait_event)                                                */

static void push_event(native_t *n, card_event_t ev)
{
    if (n->q_len == NATIVE_EVENTS_MAX)
        return; /* full: the daemon re-reads the state on the events it got */
    n->q[(n->q_head + n->q_len) % NATIVE_EVENTS_MAX] = ev;
    n->q_len++;
}

/* Events of one reader from its old and new states. pcsc-lite counts
 * insertions and removals in the high 16 bits of dwEventState, so a card pulled
 * and put back between two calls still shows as REMOVED then INSERTED. */
static void mon_reader_events(native_t *n, DWORD old, DWORD now)
{
    bool was_usable = reader_usable(old), is_usable = reader_usable(now);
    bool was = card_in(old), is = card_in(now);
    if (was_usable && !is_usable) {
        if (was)
            push_event(n, CARD_EVENT_REMOVED);
        push_event(n, CARD_EVENT_READER_GONE);
        return;
    }
    if (!was_usable && is_usable) {
        push_event(n, CARD_EVENT_READER_ADDED);
        if (is)
            push_event(n, CARD_EVENT_INSERTED);
        return;
    }
    bool counted = (old >> 16) != (now >> 16) && (old >> 16) != 0;
    if (was && !is) {
        push_event(n, CARD_EVENT_REMOVED);
    } else if (!was && is) {
        push_event(n, CARD_EVENT_INSERTED);
    } else if (was && is && counted) {
        push_event(n, CARD_EVENT_REMOVED);
        push_event(n, CARD_EVENT_INSERTED);
    }
}

static bool mon_establish(native_t *n)
{
    if (n->mon_ok)
        return true;
    LONG rv = SCardEstablishContext(SCARD_SCOPE_SYSTEM, NULL, NULL, &n->mon_ctx);
    if (rv != SCARD_S_SUCCESS) {
        set_mon_err(n, "SCardEstablishContext: %s", pcsc_stringify_error(rv));
        return false;
    }
    n->mon_ok = true;
    n->mon_n = 0;
    n->pnp_state = SCARD_STATE_UNAWARE;
    return true;
}

static void mon_lost(native_t *n, LONG rv)
{
    set_mon_err(n, "monitor: %s", pcsc_stringify_error(rv));
    if (n->mon_ok)
        SCardReleaseContext(n->mon_ctx);
    n->mon_ok = false;
    /* Whatever was there is gone for us: say so once. */
    for (size_t i = 0; i < n->mon_n; i++)
        mon_reader_events(n, n->mon[i].state, SCARD_STATE_UNKNOWN);
    n->mon_n = 0;
}

/* Re-reads the reader list; emit: queue READER_ADDED/GONE (and the card
 * events they imply) for the differences. */
static LONG mon_relist(native_t *n, bool emit)
{
    char list[NATIVE_LIST_MAX];
    LONG rv = list_readers(n->mon_ctx, list, sizeof list);
    if (rv != SCARD_S_SUCCESS)
        return rv;
    native_reader_t next[NATIVE_READERS_MAX];
    size_t nn = 0;
    for (const char *r = list; *r && nn < NATIVE_READERS_MAX; r += strlen(r) + 1) {
        if (!reader_matches(n, r))
            continue;
        native_reader_t *e = &next[nn];
        copy_name(e->name, r);
        size_t k;
        for (k = 0; k < n->mon_n && strcmp(n->mon[k].name, r) != 0; k++)
            ;
        if (k < n->mon_n) {
            e->state = n->mon[k].state;
        } else {
            SCARD_READERSTATE rs = {.szReader = e->name, .dwCurrentState = SCARD_STATE_UNAWARE};
            LONG r2 = SCardGetStatusChange(n->mon_ctx, 0, &rs, 1);
            if (r2 == SCARD_E_UNKNOWN_READER)
                continue; /* gone again already */
            if (r2 != SCARD_S_SUCCESS && r2 != SCARD_E_TIMEOUT)
                return r2;
            e->state = rs.dwEventState & ~(DWORD)SCARD_STATE_CHANGED;
            if (emit)
                mon_reader_events(n, SCARD_STATE_UNAVAILABLE, e->state);
        }
        nn++;
    }
    for (size_t k = 0; k < n->mon_n && emit; k++) {
        bool still = false;
        for (size_t j = 0; j < nn && !still; j++)
            still = strcmp(next[j].name, n->mon[k].name) == 0;
        if (!still)
            mon_reader_events(n, n->mon[k].state, SCARD_STATE_UNKNOWN);
    }
    memcpy(n->mon, next, nn * sizeof next[0]);
    n->mon_n = nn;
    return SCARD_S_SUCCESS;
}

static card_status_t wait_event_locked(native_t *n, int timeout_ms, card_event_t *ev);

static card_status_t native_wait_event(card_backend_t *b, int timeout_ms, card_event_t *ev)
{
    native_t *n = native_of(b);
    if (!ev)
        return CARD_ERR_BAD_INPUT;
    *ev = CARD_EVENT_NONE;
    atomic_store(&n->in_wait, true);
    card_status_t st = wait_event_locked(n, timeout_ms, ev);
    atomic_store(&n->in_wait, false);
    return st;
}

static bool cancelled(native_t *n)
{
    if (atomic_load(&n->closing))
        return true;
    return atomic_exchange(&n->cancel_pending, false);
}

static card_status_t wait_event_locked(native_t *n, int timeout_ms, card_event_t *ev)
{
    long long deadline = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
    int unknown = 0;
    for (;;) {
        if (cancelled(n)) {
            set_mon_err(n, "wait cancelled");
            return CARD_ERR_CANCELLED;
        }
        if (n->q_len) {
            *ev = n->q[n->q_head];
            n->q_head = (n->q_head + 1) % NATIVE_EVENTS_MAX;
            n->q_len--;
            return CARD_OK;
        }
        long long left = deadline < 0 ? -1 : deadline - now_ms();
        if (deadline >= 0 && left < 0)
            left = 0;
        if (!n->mon_ok) {
            /* pcscd gone: try again every 200 ms until it is back or time is up. */
            if (mon_establish(n)) {
                LONG rv = mon_relist(n, true);
                if (rv == SCARD_S_SUCCESS)
                    continue;
                mon_lost(n, rv);
            }
            if (n->q_len)
                continue; /* deliver what mon_lost said first */
            if (left == 0)
                return CARD_ERR_BACKEND;
            long wait = left < 0 || left > 200 ? 200 : (long)left;
            struct timespec ts = {0, wait * 1000000L};
            nanosleep(&ts, NULL);
            continue;
        }
        SCARD_READERSTATE rs[NATIVE_READERS_MAX + 1];
        memset(rs, 0, sizeof rs);
        size_t k = n->mon_n;
        for (size_t i = 0; i < k; i++) {
            rs[i].szReader = n->mon[i].name;
            rs[i].dwCurrentState = n->mon[i].state;
        }
        /* pcsc-lite's reader-list notification (PC/SC pseudo reader). */
        rs[k].szReader = "\\\\?PnP?\\Notification";
        rs[k].dwCurrentState = n->pnp_state;
        DWORD tmo = left < 0 ? INFINITE : (DWORD)left;
        LONG rv = SCardGetStatusChange(n->mon_ctx, tmo, rs, (DWORD)(k + 1));
        if (rv == SCARD_E_TIMEOUT)
            return CARD_OK; /* CARD_EVENT_NONE */
        if (rv == SCARD_E_CANCELLED) {
            set_mon_err(n, "wait cancelled");
            return CARD_ERR_CANCELLED;
        }
        if (rv == SCARD_E_UNKNOWN_READER || rv == SCARD_E_READER_UNAVAILABLE) {
            /* a reader left between the list and the wait; twice: give up */
            if (++unknown > 1) {
                set_mon_err(n, "SCardGetStatusChange: %s", pcsc_stringify_error(rv));
                return CARD_ERR_BACKEND;
            }
            rv = mon_relist(n, true);
            if (rv != SCARD_S_SUCCESS)
                mon_lost(n, rv);
            continue;
        }
        if (rv != SCARD_S_SUCCESS) {
            if (service_code(rv)) {
                mon_lost(n, rv);
                continue;
            }
            set_mon_err(n, "SCardGetStatusChange: %s", pcsc_stringify_error(rv));
            return CARD_ERR_BACKEND;
        }
        bool relist = (rs[k].dwEventState & SCARD_STATE_CHANGED) != 0;
        n->pnp_state = rs[k].dwEventState & ~(DWORD)SCARD_STATE_CHANGED;
        for (size_t i = 0; i < k; i++) {
            DWORD now = rs[i].dwEventState & ~(DWORD)SCARD_STATE_CHANGED;
            if (now & SCARD_STATE_UNKNOWN)
                relist = true; /* left pcscd's list: mon_relist drops it */
            mon_reader_events(n, n->mon[i].state, now);
            n->mon[i].state = now;
        }
        if (relist) {
            rv = mon_relist(n, true);
            if (rv != SCARD_S_SUCCESS)
                mon_lost(n, rv);
        }
        if (n->q_len == 0 && left == 0)
            return CARD_OK;
    }
}

static const char *native_last_error(card_backend_t *b)
{
    static _Thread_local char snap[NATIVE_ERR_MAX];
    native_t *n = native_of(b);
    pthread_mutex_lock(&n->err_lock);
    memcpy(snap, n->err_from_mon ? n->mon_err : n->err, sizeof snap);
    pthread_mutex_unlock(&n->err_lock);
    snap[sizeof snap - 1] = '\0';
    return snap;
}

static void native_close(card_backend_t *b)
{
    if (!b)
        return;
    native_t *n = native_of(b);
    /* A wait_event still running in the monitor is woken and waited for. */
    atomic_store(&n->closing, true);
    for (int i = 0; i < 200 && atomic_load(&n->in_wait); i++) {
        if (n->mon_ok)
            SCardCancel(n->mon_ctx);
        struct timespec ts = {0, 10 * 1000000L};
        nanosleep(&ts, NULL);
    }
    /* Leaving a verified card behind would let any client sign without the
     * PIN after cachetd stops: reset it when we logged in. */
    drop_binding(n, n->pin_verified ? SCARD_RESET_CARD : SCARD_LEAVE_CARD);
    if (n->ctx_ok)
        SCardReleaseContext(n->ctx);
    if (n->mon_ok)
        SCardReleaseContext(n->mon_ctx);
    pthread_mutex_destroy(&n->err_lock);
    OPENSSL_cleanse(n, sizeof *n);
    free(n);
}

static const card_ops_t native_ops = {
    .name = "native",
    .wait_event = native_wait_event,
    .get_info = native_get_info,
    .bind = native_bind,
    .read_certs = native_read_certs,
    .pin_status = native_pin_status,
    .verify_pin = native_verify_pin,
    .sign = native_sign,
    .logout = native_logout,
    .last_error = native_last_error,
    .close = native_close,
};

card_backend_t *card_native_open(const char *reader_match, char *err, size_t err_cap)
{
    if (err && err_cap)
        err[0] = '\0';
    const char *m = reader_match ? reader_match : "";
    if (strlen(m) >= CARD_READER_MAX) {
        if (err && err_cap)
            snprintf(err, err_cap, "reader name filter longer than %d bytes", CARD_READER_MAX - 1);
        return NULL;
    }
    native_t *n = calloc(1, sizeof *n);
    if (!n) {
        if (err && err_cap)
            snprintf(err, err_cap, "out of memory");
        return NULL;
    }
    n->base.ops = &native_ops;
    pthread_mutex_init(&n->err_lock, NULL);
    snprintf(n->match, sizeof n->match, "%s", m);
    n->select_p2 = 0x0C;
    atomic_init(&n->n_apdus, 0);
    atomic_init(&n->n_sent, 0);
    atomic_init(&n->n_recv, 0);
    atomic_init(&n->n_trans, 0);
    atomic_init(&n->n_controls, 0);
    atomic_init(&n->cancel_pending, false);
    atomic_init(&n->in_wait, false);
    atomic_init(&n->closing, false);
    if (!ensure_ctx(n) || !mon_establish(n)) {
        if (err && err_cap)
            snprintf(err, err_cap, "%s", n->err[0] ? n->err : n->mon_err);
        native_close(&n->base);
        return NULL;
    }
    /* The monitor's starting point: what is there now is not an event. */
    LONG rv = mon_relist(n, false);
    if (rv != SCARD_S_SUCCESS) {
        if (err && err_cap)
            snprintf(err, err_cap, "SCardListReaders: %s", pcsc_stringify_error(rv));
        native_close(&n->base);
        return NULL;
    }
    SCARD_READERSTATE pnp = {.szReader = "\\\\?PnP?\\Notification",
                             .dwCurrentState = SCARD_STATE_UNAWARE};
    if (SCardGetStatusChange(n->mon_ctx, 0, &pnp, 1) == SCARD_S_SUCCESS)
        n->pnp_state = pnp.dwEventState & ~(DWORD)SCARD_STATE_CHANGED;
    return &n->base;
}

bool card_native_stats(card_backend_t *b, card_native_stats_t *out)
{
    if (!b || !out || b->ops != &native_ops)
        return false;
    native_t *n = native_of(b);
    out->apdus = atomic_load(&n->n_apdus);
    out->bytes_sent = atomic_load(&n->n_sent);
    out->bytes_received = atomic_load(&n->n_recv);
    out->transactions = atomic_load(&n->n_trans);
    out->controls = atomic_load(&n->n_controls);
    return true;
}

void card_native_stats_reset(card_backend_t *b)
{
    if (!b || b->ops != &native_ops)
        return;
    native_t *n = native_of(b);
    atomic_store(&n->n_apdus, 0);
    atomic_store(&n->n_sent, 0);
    atomic_store(&n->n_recv, 0);
    atomic_store(&n->n_trans, 0);
    atomic_store(&n->n_controls, 0);
}

void card_native_cancel_wait(card_backend_t *b)
{
    if (!b || b->ops != &native_ops)
        return;
    native_t *n = native_of(b);
    atomic_store(&n->cancel_pending, true);
    if (atomic_load(&n->in_wait) && n->mon_ok)
        SCardCancel(n->mon_ctx);
}

/* ------------------------------------------------------------------ */
/* The appliance's vendor commands (docs/appliance.md, CCID rev 1.1     */
/* §6.1.8 PC_to_RDR_Escape through SCardControl)                        */

/* A handle to send Escape on: the bound card's, or a connection of our own
 * for this call (*temp: disconnect it after) when no card is bound — shared
 * when a card is in the reader, else direct (PC/SC part 5: no card needed). */
static card_status_t esc_handle(native_t *n, SCARDHANDLE *h, DWORD *ioctl, bool *temp)
{
    *temp = false;
    if (n->connected) {
        if (n->esc_ioctl == 0) {
            set_err(n, "the reader does not forward vendor commands (FEATURE_CCID_ESC_COMMAND)");
            return CARD_ERR_NOT_SUPPORTED;
        }
        *h = n->h;
        *ioctl = n->esc_ioctl;
        return CARD_OK;
    }
    if (!ensure_ctx(n))
        return CARD_ERR_BACKEND;
    char list[NATIVE_LIST_MAX];
    LONG rv = list_readers(n->ctx, list, sizeof list);
    if (rv != SCARD_S_SUCCESS)
        return pcsc_fail(n, "SCardListReaders", rv);
    bool any = false;
    for (const char *r = list; *r; r += strlen(r) + 1) {
        if (!reader_matches(n, r))
            continue;
        DWORD proto = 0;
        rv = SCardConnect(n->ctx, r, SCARD_SHARE_SHARED, SCARD_PROTOCOL_T0 | SCARD_PROTOCOL_T1, h,
                          &proto);
        if (rv != SCARD_S_SUCCESS)
            rv = SCardConnect(n->ctx, r, SCARD_SHARE_DIRECT, 0, h, &proto);
        if (rv != SCARD_S_SUCCESS)
            continue;
        any = true;
        uint8_t buf[256];
        DWORD len = 0;
        *ioctl = 0;
        rv = SCardControl(*h, CM_IOCTL_GET_FEATURE_REQUEST, NULL, 0, buf, sizeof buf, &len);
        for (size_t i = 0; rv == SCARD_S_SUCCESS && len <= sizeof buf && i + 2 <= len;) {
            uint8_t tag = buf[i], l = buf[i + 1];
            if (l > len - i - 2)
                break;
            if (tag == FEATURE_CCID_ESC_COMMAND && l == 4)
                *ioctl = feature_ioctl(buf + i + 2);
            i += 2 + (size_t)l;
        }
        if (*ioctl != 0) {
            *temp = true;
            return CARD_OK;
        }
        SCardDisconnect(*h, SCARD_LEAVE_CARD);
    }
    set_err(n, any ? "no reader forwards vendor commands" : "no reader");
    return any ? CARD_ERR_NOT_SUPPORTED : CARD_ERR_NO_READER;
}

static card_status_t esc_on(native_t *n, SCARDHANDLE h, DWORD ioctl, uint8_t cmd,
                            const uint8_t *payload, size_t plen, uint8_t *out, size_t cap,
                            size_t *olen, uint8_t *status)
{
    uint8_t in[VND_ABDATA_MAX], r[VND_ABDATA_MAX];
    if (olen)
        *olen = 0;
    *status = 0xFF;
    if (plen > sizeof in - 3 || (plen > 0 && payload == NULL)) {
        set_err(n, "vendor command of %zu bytes", plen);
        return CARD_ERR_BAD_INPUT;
    }
    in[0] = VND_CLASS;
    in[1] = VND_VERSION;
    in[2] = cmd;
    if (plen > 0)
        memcpy(in + 3, payload, plen);
    DWORD rl = 0;
    LONG rv = SCardControl(h, ioctl, in, (DWORD)(3 + plen), r, sizeof r, &rl);
    if (rv != SCARD_S_SUCCESS) {
        /* The appliance refuses what it does not know with CMD_NOT_SUPPORTED,
         * which the driver reports as a failed SCardControl. */
        set_err(n, "SCardControl(vendor command %02X): %s", cmd, pcsc_stringify_error(rv));
        if (removal_code(rv) && n->connected && h == n->h) {
            drop_binding(n, SCARD_LEAVE_CARD);
            return CARD_ERR_REMOVED;
        }
        return service_code(rv) ? CARD_ERR_BACKEND : CARD_ERR_NOT_SUPPORTED;
    }
    if (rl < 3 || rl > sizeof r || r[0] != VND_VERSION || r[1] != cmd) {
        set_err(n, "malformed answer to vendor command %02X", cmd);
        return CARD_ERR_BACKEND;
    }
    *status = r[2];
    size_t pl = rl - 3;
    if (r[2] == VND_ST_OK && out != NULL) {
        if (pl > cap) {
            set_err(n, "vendor answer of %zu bytes, room for %zu", pl, cap);
            return CARD_ERR_BACKEND;
        }
        memcpy(out, r + 3, pl);
        if (olen)
            *olen = pl;
    }
    if (r[2] != VND_ST_OK)
        set_err(n, "vendor command %02X: status %02X", cmd, r[2]);
    return CARD_OK;
}

card_status_t card_native_escape(card_backend_t *b, uint8_t cmd, const uint8_t *payload,
                                 size_t payload_len, uint8_t *out, size_t out_cap, size_t *out_len,
                                 uint8_t *status)
{
    if (out_len)
        *out_len = 0;
    if (!b || b->ops != &native_ops || !status)
        return CARD_ERR_NOT_SUPPORTED;
    native_t *n = native_of(b);
    SCARDHANDLE h = 0;
    DWORD ioctl = 0;
    bool temp = false;
    card_status_t st = esc_handle(n, &h, &ioctl, &temp);
    if (st != CARD_OK)
        return st;
    st = esc_on(n, h, ioctl, cmd, payload, payload_len, out, out_cap, out_len, status);
    if (temp)
        SCardDisconnect(h, SCARD_LEAVE_CARD);
    return st;
}

/* BEGIN, DATA..., END, then the digest check (caller holds the transaction). */
static card_status_t announce_locked(native_t *n, const uint8_t *msg, size_t len,
                                     const uint8_t expect[32])
{
    if (!msg || len == 0 || len > CARD_NATIVE_ANNOUNCE_MAX) {
        set_err(n, "announcement of %zu bytes (1..%d)", len, CARD_NATIVE_ANNOUNCE_MAX);
        return CARD_ERR_BAD_INPUT;
    }
    if (n->esc_ioctl == 0) {
        set_err(n, "the reader does not forward vendor commands: nothing can be announced");
        return CARD_ERR_NOT_SUPPORTED;
    }
    uint8_t p[2 + VND_DATA_CHUNK], st = 0;
    p[0] = (uint8_t)(len >> 8);
    p[1] = (uint8_t)len;
    card_status_t cs = esc_on(n, n->h, n->esc_ioctl, VND_ANNOUNCE_BEGIN, p, 2, NULL, 0, NULL, &st);
    for (size_t off = 0; cs == CARD_OK && st == VND_ST_OK && off < len; off += VND_DATA_CHUNK) {
        size_t k = len - off < VND_DATA_CHUNK ? len - off : VND_DATA_CHUNK;
        p[0] = (uint8_t)(off >> 8);
        p[1] = (uint8_t)off;
        memcpy(p + 2, msg + off, k);
        cs = esc_on(n, n->h, n->esc_ioctl, VND_ANNOUNCE_DATA, p, 2 + k, NULL, 0, NULL, &st);
    }
    uint8_t d[32];
    size_t dl = 0;
    if (cs == CARD_OK && st == VND_ST_OK)
        cs = esc_on(n, n->h, n->esc_ioctl, VND_ANNOUNCE_END, NULL, 0, d, sizeof d, &dl, &st);
    if (cs != CARD_OK)
        return cs;
    if (st != VND_ST_OK) {
        /* 01 LENGTH, 02 FORMAT, 03 DIGEST: our message; 04 STATE: someone
         * else's upload in between (we hold the transaction: should not be). */
        set_err(n, "the appliance refused the announcement (status %02X)", st);
        return st == VND_ST_STATE ? CARD_ERR_BACKEND : CARD_ERR_BAD_INPUT;
    }
    if (dl != 32 || (expect && memcmp(d, expect, 32) != 0)) {
        uint8_t s2;
        esc_on(n, n->h, n->esc_ioctl, VND_ANNOUNCE_CLEAR, NULL, 0, NULL, 0, NULL, &s2);
        set_err(n, "the appliance would let another digest be signed than ours: cleared");
        return CARD_ERR_BAD_INPUT;
    }
    return CARD_OK;
}

card_status_t card_native_announce(card_backend_t *b, const uint8_t *msg, size_t msg_len,
                                   const uint8_t expect[32])
{
    if (!b || b->ops != &native_ops)
        return CARD_ERR_NOT_SUPPORTED;
    native_t *n = native_of(b);
    bool reset;
    card_status_t st = txn_begin(n, &reset);
    if (st != CARD_OK)
        return st;
    st = announce_locked(n, msg, msg_len, expect);
    txn_end(n);
    return st;
}

card_status_t card_native_sign_announced(card_backend_t *b, const uint8_t *msg, size_t msg_len,
                                         card_key_role_t role, card_mech_t mech, const uint8_t *in,
                                         size_t in_len, uint8_t *sig, size_t sig_cap,
                                         size_t *sig_len)
{
    if (!b || b->ops != &native_ops)
        return CARD_ERR_NOT_SUPPORTED;
    if (!msg)
        return native_sign(b, role, mech, in, in_len, sig, sig_cap, sig_len);
    native_t *n = native_of(b);
    if (sig_len)
        *sig_len = 0;
    if (!in || in_len != 32 || mech != CARD_MECH_SHA256) {
        set_err(n, "an announced signature is over a SHA-256 hash");
        return CARD_ERR_BAD_INPUT;
    }
    /* One transaction around both (pcsc-lite counts nested transactions of a
     * handle): no other client's command, reset or announcement comes between. */
    bool reset;
    card_status_t st = txn_begin(n, &reset);
    if (st != CARD_OK)
        return st;
    if (reset) {
        txn_end(n);
        set_err(n, "card was reset by another application: PIN needed again");
        return CARD_ERR_PIN_REQUIRED;
    }
    st = announce_locked(n, msg, msg_len, in);
    if (st == CARD_OK)
        st = native_sign(b, role, mech, in, in_len, sig, sig_cap, sig_len);
    txn_end(n);
    return st;
}

/* The receipt's key reference, digest length and digest (docs/appliance.md
 * "Receipts": body offsets 5, 7, 12). */
static bool receipt_is_for(const uint8_t *r, size_t rl, const uint8_t *digest, size_t dlen)
{
    return rl > VND_RECEIPT_BODY && memcmp(r, "CRCP", 4) == 0 && r[4] == 0x01 && r[7] == dlen &&
           dlen <= 32 && memcmp(r + 12, digest, dlen) == 0;
}

card_status_t card_native_fetch_receipt(card_backend_t *b, const uint8_t *digest, size_t digest_len,
                                        uint8_t *out, size_t cap, size_t *len)
{
    if (len)
        *len = 0;
    if (!b || b->ops != &native_ops || !len)
        return CARD_ERR_NOT_SUPPORTED;
    native_t *n = native_of(b);
    if (!digest || (digest_len != 20 && digest_len != 32) || !out) {
        set_err(n, "fetch_receipt: bad digest");
        return CARD_ERR_BAD_INPUT;
    }
    SCARDHANDLE h = 0;
    DWORD ioctl = 0;
    bool temp = false;
    card_status_t st = esc_handle(n, &h, &ioctl, &temp);
    if (st != CARD_OK)
        return st;
    uint8_t r[CARD_NATIVE_RECEIPT_MAX + 8];
    uint32_t number = 0xFFFFFFFFu;
    for (int i = 0; i < VND_RECEIPTS_KEPT && st == CARD_OK; i++) {
        uint8_t p[4] = {(uint8_t)(number >> 24), (uint8_t)(number >> 16), (uint8_t)(number >> 8),
                        (uint8_t)number};
        size_t rl = 0;
        uint8_t vs = 0;
        st = esc_on(n, h, ioctl, VND_GET_RECEIPT, p, sizeof p, r, sizeof r, &rl, &vs);
        if (st != CARD_OK || vs != VND_ST_OK)
            break; /* NOT_FOUND: no (more) receipt */
        if (rl > VND_RECEIPT_BODY && rl <= cap && receipt_is_for(r, rl, digest, digest_len)) {
            memcpy(out, r, rl);
            *len = rl;
            break;
        }
        if (rl < 12)
            break;
        uint32_t c = (uint32_t)r[8] << 24 | (uint32_t)r[9] << 16 | (uint32_t)r[10] << 8 | r[11];
        if (c <= 1)
            break;
        number = c - 1;
    }
    if (temp)
        SCardDisconnect(h, SCARD_LEAVE_CARD);
    return st;
}

card_status_t card_native_device_info(card_backend_t *b, uint8_t *out, size_t cap, size_t *len)
{
    uint8_t vs = 0;
    card_status_t st = card_native_escape(b, VND_GET_DEVICE_INFO, NULL, 0, out, cap, len, &vs);
    if (st == CARD_OK && vs != VND_ST_OK)
        st = CARD_ERR_BACKEND;
    return st;
}

card_status_t card_native_set_config(card_backend_t *b, int timeout_s, int auth_policy,
                                     int language)
{
    if (!b || b->ops != &native_ops)
        return CARD_ERR_NOT_SUPPORTED;
    native_t *n = native_of(b);
    uint8_t p[16];
    size_t o = 0;
    if (timeout_s >= 0) {
        if (timeout_s < 5 || timeout_s > 600) {
            set_err(n, "confirmation timeout %d s (5..600)", timeout_s);
            return CARD_ERR_BAD_INPUT;
        }
        const uint8_t f[5] = {0x01, 0x00, 0x02, (uint8_t)(timeout_s >> 8), (uint8_t)timeout_s};
        memcpy(p + o, f, sizeof f);
        o += sizeof f;
    }
    if (auth_policy >= 0) {
        const uint8_t f[4] = {0x02, 0x00, 0x01, (uint8_t)(auth_policy ? 1 : 0)};
        memcpy(p + o, f, sizeof f);
        o += sizeof f;
    }
    if (language >= 0) {
        const uint8_t f[4] = {0x03, 0x00, 0x01, (uint8_t)(language ? 1 : 0)};
        memcpy(p + o, f, sizeof f);
        o += sizeof f;
    }
    if (o == 0)
        return CARD_OK;
    uint8_t vs = 0;
    card_status_t st = card_native_escape(b, VND_SET_CONFIG, p, o, NULL, 0, NULL, &vs);
    if (st == CARD_OK && vs != VND_ST_OK)
        st = CARD_ERR_BAD_INPUT;
    return st;
}

bool card_native_has_escape(card_backend_t *b)
{
    if (!b || b->ops != &native_ops)
        return false;
    native_t *n = native_of(b);
    return n->connected && n->esc_ioctl != 0;
}
