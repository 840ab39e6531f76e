/* Fuzz target: PC_to_RDR_Secure (CCID rev 1.1 §6.1.11), firmware/ccid/
 * ccid_secure.c. Input: byte 0 = the card's PIN tries (low 2 bits) and
 * whether the card leaves (bit 2); byte 1 = n, then n keypad keys; the rest is
 * abData of the message. Runs the parser and, for a valid structure, the APDU
 * builder on the typed digits and the whole command against a fake card,
 * checking the builder's invariants (template header kept, Lc = body length,
 * within bounds). */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ccid_msg.h"
#include "ccid_secure.h"
#include "icc.h"
#include "port_time.h"
#include "port_ui.h"
#include "ui.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c))                                                                                  \
            abort();                                                                               \
    } while (0)

static uint64_t f_now;
static const uint8_t *f_keys;
static size_t f_nkeys;
static unsigned f_tries;
static bool f_leaves;
static unsigned f_waits;

uint64_t port_time_us(void)
{
    return f_now;
}

void port_ui_show(const char *name, const char *const lines[PORT_UI_LINES])
{
    CHECK(name != NULL);
    for (size_t i = 0; i < PORT_UI_LINES; i++)
        CHECK(lines[i] != NULL && strlen(lines[i]) <= 4u * PORT_UI_COLUMNS);
}

port_key_t port_ui_key(void)
{
    return PORT_KEY_NONE;
}

port_key_t port_ui_wait_key(uint32_t timeout_us)
{
    f_waits++;
    if (f_nkeys > 0) {
        port_key_t k = (port_key_t)*f_keys;
        f_keys++;
        f_nkeys--;
        f_now += 1000;
        return k;
    }
    f_now += timeout_us; /* nobody types: time passes */
    return PORT_KEY_NONE;
}

bool icc_present(void)
{
    return !(f_leaves && f_waits > 2);
}

bool icc_powered(void)
{
    return icc_present();
}

icc_status_t icc_transceive(const uint8_t *c, size_t clen, uint8_t *r, size_t rcap, size_t *rlen)
{
    CHECK(clen >= 4 && clen <= ICC_CAPDU_MAX && rcap >= 2);
    if (clen > 4)
        CHECK(c[4] == clen - 5); /* Lc is the body's length */
    if (!icc_present())
        return ICC_ERR_ABSENT;
    r[0] = 0x63;
    r[1] = (uint8_t)(0xC0u | f_tries);
    if (clen > 4 && f_tries > 0)
        f_tries--;
    *rlen = 2;
    return ICC_OK;
}

static void hook(void *ctx)
{
    (void)ctx;
    if (!icc_present())
        ui_abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    uint8_t flags = data[0];
    size_t nkeys = data[1];
    if (nkeys > size - 2)
        nkeys = size - 2;
    const uint8_t *keys = data + 2;
    const uint8_t *msg = keys + nkeys;
    size_t len = size - 2 - nkeys;

    /* The parser alone, on a copy of exactly len bytes (ASan sees overreads). */
    uint8_t *copy = malloc(len ? len : 1);
    CHECK(copy != NULL);
    memcpy(copy, msg, len);
    ccid_secure_req_t req;
    uint8_t bad = 0;
    bool ok = ccid_secure_parse(copy, len, &req, &bad);
    if (!ok) {
        CHECK(bad >= 1 && bad < 128);
    } else {
        CHECK(req.min_len >= 1 && req.min_len <= req.max_len && req.max_len <= 12);
        CHECK(req.apdu >= copy && req.apdu + req.apdu_len == copy + len);
        /* The builder with digits taken from the keys. */
        uint8_t pin[CCID_SECURE_PIN_MAX], old[CCID_SECURE_PIN_MAX];
        size_t pl = 0, ol = 0;
        for (size_t i = 0; i < nkeys && pl < req.max_len; i++)
            pin[pl++] = (uint8_t)('0' + keys[i] % 10u);
        for (size_t i = 0; i < nkeys && ol < req.max_len; i++)
            old[ol++] = (uint8_t)('0' + keys[nkeys - 1 - i] % 10u);
        uint8_t apdu[CCID_SECURE_APDU_MAX];
        size_t alen = 0;
        if (ccid_secure_build(&req, old, ol, pin, pl, apdu, sizeof apdu, &alen, &bad)) {
            CHECK(alen >= 5 && alen <= sizeof apdu);
            CHECK(memcmp(apdu, req.apdu, 4) == 0);
            CHECK(apdu[4] == alen - 5);
        } else {
            CHECK(bad >= 1 && bad < 128);
        }
    }

    /* The whole command against the fake card and keypad. */
    f_now = 1;
    f_keys = keys;
    f_nkeys = nkeys;
    f_tries = flags & 3u;
    f_leaves = (flags & 4u) != 0;
    f_waits = 0;
    ui_init();
    ui_set_wait_hook(hook, NULL);
    uint8_t out[ICC_RAPDU_MAX];
    size_t n = 0;
    uint8_t err = 0;
    if (ccid_secure_run(copy, len, out, sizeof out, &n, &err))
        CHECK(n >= 2 && n <= sizeof out);
    else
        CHECK(err != 0 || !ok);
    free(copy);
    return 0;
}
