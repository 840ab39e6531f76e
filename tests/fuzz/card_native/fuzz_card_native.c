/* Fuzz target: the native CPx backend (host/daemon/card/card_native.c) against
 * a card and a pcscd that answer anything. PC/SC is faked at link time (this
 * file defines the SCard* functions the backend calls; libpcsclite is not
 * linked): every SCardTransmit/SCardControl answer, status change and several
 * return codes come from the input, so the T=0 handling (61xx, 6Cxx), EF.SN,
 * the certificate reads (DER length, E7 quirk), VERIFY and the signature
 * answers all see hostile data (STYLE rule 4: the card is outside).
 *
 * Input: op byte, argument byte, then the stream the fakes consume. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <winscard.h>

#include "card.h"
#include "card_native.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* What libpcsclite exports and the backend uses (SCARD_PCI_T0/T1). */
const SCARD_IO_REQUEST g_rgSCardT0Pci = {SCARD_PROTOCOL_T0, sizeof(SCARD_IO_REQUEST)};
const SCARD_IO_REQUEST g_rgSCardT1Pci = {SCARD_PROTOCOL_T1, sizeof(SCARD_IO_REQUEST)};
const SCARD_IO_REQUEST g_rgSCardRawPci = {SCARD_PROTOCOL_RAW, sizeof(SCARD_IO_REQUEST)};

static const uint8_t *in;
static size_t in_left;
static bool exhausted;

static uint8_t take(void)
{
    if (!in_left) {
        exhausted = true;
        return 0;
    }
    in_left--;
    return *in++;
}

static const char fake_reader[] = "Fake CPx Reader 00 00";
static const uint8_t cpx_atr[17] = {0x3B, 0xAC, 0x00, 0x40, 0x2A, 0x00, 0x12, 0x25, 0x00,
                                    0x64, 0x80, 0x00, 0x03, 0x10, 0x00, 0x90, 0x00};

/* A failure code chosen by the input. */
static LONG fake_error(uint8_t c)
{
    static const LONG codes[8] = {SCARD_W_RESET_CARD,        SCARD_W_REMOVED_CARD,
                                  SCARD_E_NOT_TRANSACTED,    SCARD_E_NO_SMARTCARD,
                                  SCARD_E_READER_UNAVAILABLE, SCARD_E_NO_SERVICE,
                                  SCARD_F_COMM_ERROR,        SCARD_E_INSUFFICIENT_BUFFER};
    return codes[c & 7];
}

/* An answer from the stream: control byte < 0xF0 = length (0xEF: two more
 * length bytes), else a failure code. */
static LONG fake_answer(LPBYTE out, LPDWORD out_len)
{
    uint8_t c = take();
    if (exhausted)
        return SCARD_W_REMOVED_CARD;
    if (c >= 0xF0)
        return fake_error(c);
    size_t len = c;
    if (c == 0xEF)
        len = (size_t)take() << 8 | take();
    if (!out_len || len > *out_len)
        return SCARD_E_INSUFFICIENT_BUFFER;
    for (size_t i = 0; i < len; i++)
        out[i] = take();
    *out_len = (DWORD)len;
    return SCARD_S_SUCCESS;
}

LONG SCardEstablishContext(DWORD scope, LPCVOID r1, LPCVOID r2, LPSCARDCONTEXT ctx)
{
    (void)scope;
    (void)r1;
    (void)r2;
    *ctx = 1;
    return SCARD_S_SUCCESS;
}

LONG SCardReleaseContext(SCARDCONTEXT ctx)
{
    (void)ctx;
    return SCARD_S_SUCCESS;
}

LONG SCardIsValidContext(SCARDCONTEXT ctx)
{
    (void)ctx;
    return SCARD_S_SUCCESS;
}

LONG SCardListReaders(SCARDCONTEXT ctx, LPCSTR groups, LPSTR readers, LPDWORD len)
{
    (void)ctx;
    (void)groups;
    if (*len < sizeof fake_reader + 1)
        return SCARD_E_INSUFFICIENT_BUFFER;
    memcpy(readers, fake_reader, sizeof fake_reader);
    readers[sizeof fake_reader] = '\0';
    *len = sizeof fake_reader + 1;
    return SCARD_S_SUCCESS;
}

LONG SCardConnect(SCARDCONTEXT ctx, LPCSTR reader, DWORD share, DWORD pref, LPSCARDHANDLE h,
                  LPDWORD proto)
{
    (void)ctx;
    (void)reader;
    (void)share;
    (void)pref;
    *h = 7;
    *proto = (take() & 1) ? SCARD_PROTOCOL_T1 : SCARD_PROTOCOL_T0;
    return SCARD_S_SUCCESS;
}

LONG SCardReconnect(SCARDHANDLE h, DWORD share, DWORD pref, DWORD init, LPDWORD proto)
{
    (void)h;
    (void)share;
    (void)pref;
    (void)init;
    *proto = SCARD_PROTOCOL_T0;
    return SCARD_S_SUCCESS;
}

LONG SCardDisconnect(SCARDHANDLE h, DWORD disposition)
{
    (void)h;
    (void)disposition;
    return SCARD_S_SUCCESS;
}

LONG SCardBeginTransaction(SCARDHANDLE h)
{
    (void)h;
    return SCARD_S_SUCCESS;
}

LONG SCardEndTransaction(SCARDHANDLE h, DWORD disposition)
{
    (void)h;
    (void)disposition;
    return SCARD_S_SUCCESS;
}

LONG SCardStatus(SCARDHANDLE h, LPSTR name, LPDWORD name_len, LPDWORD state, LPDWORD proto,
                 LPBYTE atr, LPDWORD atr_len)
{
    (void)h;
    (void)name;
    if (name_len)
        *name_len = 0;
    *state = SCARD_SPECIFIC;
    *proto = SCARD_PROTOCOL_T0;
    if (*atr_len < sizeof cpx_atr)
        return SCARD_E_INSUFFICIENT_BUFFER;
    memcpy(atr, cpx_atr, sizeof cpx_atr);
    *atr_len = sizeof cpx_atr;
    return SCARD_S_SUCCESS;
}

LONG SCardGetStatusChange(SCARDCONTEXT ctx, DWORD timeout, SCARD_READERSTATE *rs, DWORD n)
{
    (void)ctx;
    (void)timeout;
    uint8_t c = take();
    if (exhausted)
        return SCARD_E_TIMEOUT;
    if (c >= 0xF0) {
        static const LONG codes[4] = {SCARD_E_TIMEOUT, SCARD_E_CANCELLED, SCARD_E_UNKNOWN_READER,
                                      SCARD_E_NO_SERVICE};
        return codes[c & 3];
    }
    for (DWORD i = 0; i < n; i++) {
        DWORD st = (DWORD)take() | (DWORD)take() << 16;
        rs[i].dwEventState = st | SCARD_STATE_CHANGED;
        rs[i].cbAtr = 0;
        if (st & SCARD_STATE_PRESENT) {
            memcpy(rs[i].rgbAtr, cpx_atr, sizeof cpx_atr);
            rs[i].cbAtr = sizeof cpx_atr;
        }
    }
    return SCARD_S_SUCCESS;
}

LONG SCardCancel(SCARDCONTEXT ctx)
{
    (void)ctx;
    return SCARD_S_SUCCESS;
}

LONG SCardTransmit(SCARDHANDLE h, const SCARD_IO_REQUEST *pci, LPCBYTE cmd, DWORD clen,
                   SCARD_IO_REQUEST *rpci, LPBYTE resp, LPDWORD rlen)
{
    (void)h;
    (void)pci;
    (void)rpci;
    if (clen < 4 || clen > 261)
        return SCARD_E_INVALID_PARAMETER; /* what the backend must never send */
    (void)cmd;
    return fake_answer(resp, rlen);
}

LONG SCardControl(SCARDHANDLE h, DWORD code, LPCVOID send, DWORD send_len, LPVOID recv,
                  DWORD recv_len, LPDWORD got)
{
    (void)h;
    (void)code;
    (void)send;
    (void)send_len;
    DWORD len = recv_len;
    LONG rv = fake_answer(recv, &len);
    *got = rv == SCARD_S_SUCCESS ? len : 0;
    return rv;
}

const char *pcsc_stringify_error(const LONG rv)
{
    (void)rv;
    return "fake PC/SC error";
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    uint8_t op = data[0], arg = data[1];
    in = data + 2;
    in_left = size - 2;
    exhausted = false;

    char err[128];
    card_backend_t *b = card_native_open((arg & 0x80) ? "Fake" : "", err, sizeof err);
    if (!b)
        return 0;
    const card_ops_t *o = b->ops;
    card_info_t info;
    static card_cert_t certs[4];
    size_t n = 0;
    int tries;
    bool verified;
    uint8_t msg[64] = {0x30, 0x31, 0x30, 0x0D, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01,
                       0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20};
    uint8_t sig[CARD_SIG_MAX];
    size_t sig_len;
    card_event_t ev;
    switch (op & 7) {
    case 0:
        o->get_info(b, &info);
        break;
    case 1:
        o->wait_event(b, 0, &ev);
        o->wait_event(b, 0, &ev);
        break;
    default:
        if (o->bind(b, &info) != CARD_OK)
            break;
        switch (op & 7) {
        case 2:
            o->read_certs(b, certs, 1 + (arg & 3), &n);
            break;
        case 3:
            o->pin_status(b, &tries, &verified);
            break;
        case 4:
            o->verify_pin(b, (arg & 1) ? NULL : "1234", &tries);
            break;
        case 5:
        case 6: {
            card_key_role_t role = (arg & 1) ? CARD_KEY_SIGN : CARD_KEY_AUTH;
            card_mech_t mech = (card_mech_t)(1 + ((arg >> 1) & 3)); /* 4: invalid */
            size_t len = (arg & 8) ? 51 : (arg & 16) ? 20 : 32;
            o->sign(b, role, mech, msg, len, sig, (arg & 32) ? 128 : sizeof sig, &sig_len);
            o->get_info(b, &info);
            break;
        }
        default:
            o->logout(b);
            o->pin_status(b, &tries, &verified);
            break;
        }
    }
    card_native_stats_t st;
    card_native_stats(b, &st);
    (void)o->last_error(b);
    o->close(b);
    return 0;
}
