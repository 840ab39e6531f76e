/* Fuzz target: the virtual card's command processing (tests/sim/card).
 *
 * Input: byte 0 selects the mode and options, the rest is the payload.
 *   mode 0 (APDUs): payload = sequence of [len][len bytes] commands fed to
 *          card_applet_process; len 0xFF = card reset instead.
 *   mode 1 (T=0) / 2 (T=1): payload = [n][n characters] chunks fed to the ISO
 *          7816-3 card side (card_link_rx) after activation (PPS included).
 *   mode 3 (ATR): payload parsed by card_atr_parse.
 * Option bits: 0x10 verify the PIN first, 0x20 run without keys.
 * The applet runs from an in-memory profile: a small RSA key generated once,
 * dummy certificates, PIN 1234 / PUK 12345678. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/rsa.h>

#include "card_applet.h"
#include "card_link.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static EVP_PKEY *g_key;

static bool save_cb(void *ctx, const card_persist_t *st)
{
    (void)ctx;
    (void)st;
    return true;
}

static bool emit_cb(void *ctx, const uint8_t *buf, size_t n, card_delay_t delay)
{
    (void)ctx;
    (void)delay;
    /* touch every byte so the sanitizers see out-of-bounds frames */
    volatile uint8_t x = 0;
    for (size_t i = 0; i < n; i++)
        x ^= buf[i];
    (void)x;
    return true;
}

static card_applet_t *make_applet(bool with_keys)
{
    static const uint8_t cert[] = {0x30, 0x82, 0x01, 0x00, 0x02, 0x01, 0x00};
    if (!g_key)
        g_key = EVP_RSA_gen(1024);
    card_config_t cfg = {
        .serial = {0x80, 0x25, 0x00, 0x00, 0x01, 0x99, 0x00, 0x00, 0x12, 0x34},
        .pin_tries_max = 3,
        .puk_tries_max = 10,
        .auth_cert = cert,
        .auth_cert_len = sizeof cert,
        .sign_cert = cert,
        .sign_cert_len = sizeof cert,
        .ca_cert = cert,
        .ca_cert_len = sizeof cert,
        .auth_key = with_keys ? g_key : NULL,
        .sign_key = with_keys ? g_key : NULL,
        .save = save_cb,
    };
    strcpy(cfg.label, "CPS3 FUZZ");
    card_persist_t st = {.pin_tries_left = 3, .puk_tries_left = 10, .pin_len = 4, .puk_len = 8};
    memcpy(st.pin, "1234", 4);
    memcpy(st.puk, "12345678", 8);
    return card_applet_new(&cfg, &st);
}

static void verify_pin(card_applet_t *a)
{
    static const uint8_t v[] = {0x00, 0x20, 0x00, 0x01, 0x04, '1', '2', '3', '4'};
    uint8_t resp[CARD_RESP_MAX];
    size_t rl;
    card_applet_process(a, v, sizeof v, resp, sizeof resp, &rl);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t mode = data[0] & 0x03;
    bool pin = data[0] & 0x10;
    bool keys = !(data[0] & 0x20);
    data++;
    size--;

    if (mode == 3) {
        card_atr_info_t info;
        card_atr_parse(data, size, &info);
        return 0;
    }
    card_applet_t *a = make_applet(keys);
    if (!a)
        return 0;
    if (pin)
        verify_pin(a);

    if (mode == 0) {
        static uint8_t resp[CARD_RESP_MAX];
        size_t i = 0;
        while (i < size) {
            size_t len = data[i++];
            if (len == 0xFF) {
                card_applet_reset(a);
                continue;
            }
            if (len > size - i)
                len = size - i;
            size_t rl = 0;
            card_applet_process(a, data + i, len, resp, sizeof resp, &rl);
            if (rl > sizeof resp)
                __builtin_trap();
            i += len;
        }
    } else {
        static const uint8_t atr_t0[] = {0x3B, 0xAC, 0x00, 0x40, 0x2A, 0x00, 0x12, 0x25, 0x00,
                                         0x64, 0x80, 0x00, 0x03, 0x10, 0x00, 0x90, 0x00};
        static const uint8_t atr_t1[] = {0x3B, 0x9B, 0x18, 0x81, 0x01, 0x00, 0x12, 0x25, 0x00,
                                         0x64, 0x80, 0x00, 0x03, 0x43, 0x00, 0x90, 0x00};
        card_link_config_t lc = {
            .applet = a,
            .atr = mode == 1 ? atr_t0 : atr_t1,
            .atr_len = 17,
            .emit = emit_cb,
            .wtx_multiplier = 2,
        };
        card_link_t *l = card_link_new(&lc);
        if (l && card_link_activate(l)) {
            size_t i = 0;
            while (i < size) {
                size_t n = data[i++];
                if (n == 0) { /* a reset in the middle */
                    card_link_activate(l);
                    continue;
                }
                if (n > size - i)
                    n = size - i;
                card_link_rx(l, data + i, n);
                i += n;
            }
        }
        card_link_free(l);
    }
    card_applet_free(a);
    return 0;
}
