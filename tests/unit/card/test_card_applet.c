/* APDU-level tests of the CPx applet of the virtual card, against the cps-rpps
 * profile of the generated test PKI (shared/spec/cpx-card.md). */
#define OPENSSL_SUPPRESS_DEPRECATED /* SHA256_CTX: an independent intermediate state */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/sha.h>
#include <openssl/x509.h>

#include "card_applet.h"
#include "card_profile.h"
#include "card_sha.h"
#include "card_test_util.h"

typedef struct {
    card_profile_t prof;
    card_applet_t *a;
    card_persist_t saved;
    int saves;
    bool save_fail;
    uint8_t resp[CARD_RESP_MAX];
    size_t rlen;
} fx_t;

static bool save_cb(void *ctx, const card_persist_t *st)
{
    fx_t *f = ctx;
    f->saved = *st;
    f->saves++;
    return !f->save_fail;
}

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof *f);
    char err[256];
    if (!f || !card_profile_load(PROFILE_DIR("cps-rpps"), &f->prof, err, sizeof err)) {
        fprintf(stderr, "profile: %s\n", err);
        free(f);
        return -1;
    }
    f->prof.cfg.save = save_cb;
    f->prof.cfg.save_ctx = f;
    f->a = card_applet_new(&f->prof.cfg, &f->prof.initial);
    if (!f->a)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    card_applet_free(f->a);
    card_profile_free(&f->prof);
    free(f);
    return 0;
}

static uint16_t tx_bytes(fx_t *f, const uint8_t *apdu, size_t n)
{
    return card_applet_process(f->a, apdu, n, f->resp, sizeof f->resp, &f->rlen);
}

static uint16_t tx(fx_t *f, const char *h)
{
    uint8_t apdu[600];
    size_t n = hex(h, apdu, sizeof apdu);
    return tx_bytes(f, apdu, n);
}

/* Builds CLA INS P1 P2 Lc data [Le] */
static uint16_t tx_data(fx_t *f, const char *h4, const uint8_t *d, size_t dl, bool le)
{
    uint8_t apdu[600];
    size_t n = hex(h4, apdu, sizeof apdu);
    assert_int_equal(n, 4);
    apdu[n++] = (uint8_t)dl;
    memcpy(apdu + n, d, dl);
    n += dl;
    if (le)
        apdu[n++] = 0x00;
    return tx_bytes(f, apdu, n);
}

static void verify_pin(fx_t *f, const char *pin)
{
    assert_int_equal(tx_data(f, "00 20 00 01", (const uint8_t *)pin, strlen(pin), false), 0x9000);
}

static EVP_PKEY *cert_key(const uint8_t *der, size_t len)
{
    const uint8_t *p = der;
    X509 *x = d2i_X509(NULL, &p, (long)len);
    assert_non_null(x);
    EVP_PKEY *k = X509_get_pubkey(x);
    X509_free(x);
    assert_non_null(k);
    return k;
}

/* sha256WithRSAEncryption / sha1WithRSAEncryption verification of sig over msg */
static void assert_sig(const uint8_t *cert, size_t cert_len, const EVP_MD *md, const uint8_t *msg,
                       size_t ml, const uint8_t *sig, size_t sl)
{
    EVP_PKEY *k = cert_key(cert, cert_len);
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    assert_int_equal(EVP_DigestVerifyInit(c, NULL, md, NULL, k), 1);
    assert_int_equal(EVP_DigestVerify(c, sig, sl, msg, ml), 1);
    EVP_MD_CTX_free(c);
    EVP_PKEY_free(k);
}

static const uint8_t di_sha256[19] = {0x30, 0x31, 0x30, 0x0D, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01,
                                      0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20};

/* ------------------------------------------------------------------ */

static void test_select_read_ef_atr(void **state)
{
    fx_t *f = *state;
    assert_int_equal(tx(f, "00 A4 09 04 04 3F 00 2F 01 00"), 0x9000);
    uint8_t fcp[64];
    size_t fl = hex("62 25 80 02 00 2F 82 01 01 83 02 2F 01 88 01 E8 A1 12 8C 07 7B FF FF FF"
                    " FF FF 00 9C 07 7B FF FF FF FF FF 00 8A 01 05",
                    fcp, sizeof fcp);
    assert_int_equal(f->rlen, fl);
    assert_memory_equal(f->resp, fcp, fl);

    assert_int_equal(tx(f, "00 B0 00 00 2F"), 0x9000);
    uint8_t atr[64];
    size_t al = hex("80 43 01 B8 46 04 00 00 00 10 47 03 B4 01 80 E0 10 02 02 00 FF 02 02 00"
                    " FF 02 02 01 00 02 02 01 00 78 08 06 06 2B 81 22 F8 78 02 82 02 90 00",
                    atr, sizeof atr);
    assert_int_equal(f->rlen, 47);
    assert_memory_equal(f->resp, atr, al);

    /* EF.SN by SFI 1C (cpx-card.md §3.2), fewer bytes than Le with 9000 */
    assert_int_equal(tx(f, "00 B0 9C 00 C0"), 0x9000);
    assert_int_equal(f->rlen, 12);
    assert_int_equal(f->resp[0], 0x5A);
    assert_int_equal(f->resp[1], 0x0A);
    assert_memory_equal(f->resp + 2, f->prof.cfg.serial, CARD_SERIAL_LEN);

    /* offset beyond the end */
    assert_int_equal(tx(f, "00 B0 01 00 10"), 0x6B00);
}

static void test_select_variants(void **state)
{
    fx_t *f = *state;
    /* P1=02 with 3F00 selects the MF (§5.1) */
    assert_int_equal(tx(f, "00 A4 02 04 02 3F 00 00"), 0x9000);
    assert_int_equal(f->resp[0], 0x62);
    assert_non_null(find_bytes(f->resp, f->rlen, "\x83\x02\x3F\x00", 4));
    /* DF by name */
    assert_int_equal(tx(f, "00 A4 04 04 0D E8 28 BD 08 0F 80 25 00 00 01 FF 00 10 00"), 0x9000);
    assert_non_null(find_bytes(f->resp, f->rlen, "\x84\x0D\xE8\x28", 4));
    /* relative path from the current DF */
    assert_int_equal(tx(f, "00 A4 09 04 02 50 31 00"), 0x9000);
    assert_non_null(find_bytes(f->resp, f->rlen, "\x83\x02\x50\x31", 4));
    assert_int_equal(tx(f, "00 B0 00 00 24"), 0x9000);
    uint8_t odf[64];
    size_t ol = hex("A0 0A 30 08 04 06 3F 00 00 01 44 02 A4 0A 30 08 04 06 3F 00 00 01 44 04"
                    " A8 0A 30 08 04 06 3F 00 00 01 44 01",
                    odf, sizeof odf);
    assert_int_equal(f->rlen, ol);
    assert_memory_equal(f->resp, odf, ol);
    /* P2=0C: no data */
    assert_int_equal(tx(f, "00 A4 00 0C 02 3F 00"), 0x9000);
    assert_int_equal(f->rlen, 0);
    /* absolute path with P1=09 */
    assert_int_equal(tx(f, "00 A4 09 04 06 3F 00 00 01 44 02 00"), 0x9000);
    /* not found, bad P2, odd path */
    assert_int_equal(tx(f, "00 A4 09 04 04 3F 00 12 34 00"), 0x6A82);
    assert_int_equal(tx(f, "00 A4 09 07 02 3F 00 00"), 0x6A86);
    assert_int_equal(tx(f, "00 A4 09 04 03 3F 00 00 00"), 0x6A87);
    /* READ BINARY without a current EF after selecting a DF */
    assert_int_equal(tx(f, "00 A4 09 04 04 3F 00 00 01 00"), 0x9000);
    assert_int_equal(tx(f, "00 B0 00 00 10"), 0x6986);
    /* unknown instruction and class */
    assert_int_equal(tx(f, "00 12 00 00"), 0x6D00);
    assert_int_equal(tx(f, "80 A4 00 00"), 0x6E00);
}

static void read_file(fx_t *f, const char *select, uint8_t *out, size_t cap, size_t *len)
{
    assert_int_equal(tx(f, select), 0x9000);
    const uint8_t *sz = find_bytes(f->resp, f->rlen, "\x80\x02", 2);
    assert_non_null(sz);
    size_t size = (size_t)sz[2] << 8 | sz[3];
    assert_true(size <= cap);
    size_t off = 0;
    while (off < size) {
        size_t want = size - off > 256 ? 256 : size - off;
        uint8_t apdu[5] = {0x00, 0xB0, (uint8_t)(off >> 8), (uint8_t)off, (uint8_t)want};
        assert_int_equal(tx_bytes(f, apdu, 5), 0x9000);
        assert_int_equal(f->rlen, want);
        memcpy(out + off, f->resp, want);
        off += want;
    }
    *len = size;
}

static void test_read_certificates(void **state)
{
    fx_t *f = *state;
    static uint8_t buf[CARD_CERT_MAX];
    size_t len;
    read_file(f, "00 A4 09 04 06 3F 00 00 01 C0 01 00", buf, sizeof buf, &len);
    assert_int_equal(len, f->prof.cfg.auth_cert_len);
    assert_memory_equal(buf, f->prof.cfg.auth_cert, len);
    read_file(f, "00 A4 09 04 06 3F 00 00 01 C0 02 00", buf, sizeof buf, &len);
    assert_int_equal(len, f->prof.cfg.sign_cert_len);
    assert_memory_equal(buf, f->prof.cfg.sign_cert, len);
    read_file(f, "00 A4 09 04 06 3F 00 00 01 C0 03 00", buf, sizeof buf, &len);
    assert_int_equal(len, f->prof.cfg.ca_cert_len);
    assert_memory_equal(buf, f->prof.cfg.ca_cert, len);
}

static void test_pkcs15_objects(void **state)
{
    fx_t *f = *state;
    static uint8_t buf[1024];
    size_t len;
    static const uint8_t aid[13] = {0xE8, 0x28, 0xBD, 0x08, 0x0F, 0x80, 0x25,
                                    0x00, 0x00, 0x01, 0xFF, 0x00, 0x10};
    /* EF.DIR: AID, label, path */
    read_file(f, "00 A4 09 04 04 3F 00 2F 00 00", buf, sizeof buf, &len);
    assert_int_equal(buf[0], 0x61);
    assert_non_null(find_bytes(buf, len, aid, sizeof aid));
    assert_non_null(find_bytes(buf, len, "CPS3 TEST", 9));
    /* TokenInfo: the algorithm references of part A item 4 */
    read_file(f, "00 A4 09 04 06 3F 00 00 01 50 32 00", buf, sizeof buf, &len);
    assert_int_equal(buf[0], 0x30);
    assert_int_equal(buf[1], 0x81); /* six algorithms: a long-form length */
    assert_int_equal(buf[2], len - 3);
    assert_non_null(find_bytes(buf, len,
                               "\x80\x09"
                               "CPS3 TEST",
                               11));
    assert_non_null(find_bytes(buf, len, f->prof.cfg.serial + 2, 8));
    assert_non_null(find_bytes(
        buf, len, "\x03\x02\x06\x40\x06\x09\x2A\x86\x48\x86\xF7\x0D\x01\x01\x01\x02\x01\x02", 18));
    assert_non_null(find_bytes(buf, len, "\x02\x01\x0A", 3));
    assert_non_null(find_bytes(buf, len, "\x02\x02\x02\x50", 4));
    assert_non_null(find_bytes(buf, len, "\x02\x01\x42", 3));
    assert_non_null(find_bytes(buf, len, "\x02\x01\x12", 3));
    /* PrKDF: CPS_PRIV_SIG 0x81 / ID AID‖01, CPS_PRIV_AUT 0x82 / ID AID‖02 */
    read_file(f, "00 A4 09 04 06 3F 00 00 01 44 02 00", buf, sizeof buf, &len);
    const uint8_t *sig = find_bytes(buf, len, "CPS_PRIV_SIG", 12);
    const uint8_t *aut = find_bytes(buf, len, "CPS_PRIV_AUT", 12);
    assert_non_null(sig);
    assert_non_null(aut);
    /* 04 0E <AID 13 bytes> <01|02> */
    uint8_t id1[16] = {0x04, 0x0E};
    memcpy(id1 + 2, aid, 13);
    uint8_t id2[16];
    memcpy(id2, id1, 16);
    id1[15] = 0x01;
    id2[15] = 0x02;
    const uint8_t *p1 = find_bytes(buf, len, id1, 16);
    const uint8_t *p2 = find_bytes(buf, len, id2, 16);
    assert_true(p1 && p1 > sig && p1 < aut);
    assert_true(p2 && p2 > aut);
    assert_non_null(find_bytes(p1, (size_t)(aut - p1), "\x03\x03\x06\x00\x40", 5));
    assert_non_null(find_bytes(p1, (size_t)(aut - p1), "\x02\x02\x00\x81", 4));
    assert_non_null(find_bytes(p2, len - (size_t)(p2 - buf), "\x03\x02\x05\x60", 4));
    assert_non_null(find_bytes(p2, len - (size_t)(p2 - buf), "\x02\x02\x00\x82", 4));
    assert_null(find_bytes(buf, len, "\x03\x02\x06\x80", 4)); /* no userConsent flags */
    /* CDF: auth certificate carries the auth key's ID */
    read_file(f, "00 A4 09 04 06 3F 00 00 01 44 04 00", buf, sizeof buf, &len);
    const uint8_t *ca = find_bytes(buf, len, "Certificat d'authentification CPS", 33);
    const uint8_t *cs = find_bytes(buf, len, "Certificat de signature CPS", 27);
    assert_true(ca && cs && ca < cs);
    const uint8_t *ida = find_bytes(ca, (size_t)(cs - ca), id2, 16);
    assert_non_null(ida);
    assert_non_null(find_bytes(cs, len - (size_t)(cs - buf), id1, 16));
    assert_non_null(find_bytes(buf, len, "\x01\x01\xFF", 3)); /* CA: authority */
}

static void test_get_data_sdo(void **state)
{
    fx_t *f = *state;
    /* never 6A88 for 7F41/7F48 (§5.3) */
    assert_int_equal(tx(f, "00 CB 3F FF 0B 4D 09 70 07 BF 81 01 03 7F 41 80 00"), 0x6A80);
    assert_int_equal(tx(f, "00 CB 3F FF 0B 4D 09 70 07 BF 90 01 03 7F 48 80 00"), 0x6A80);
    assert_int_equal(tx(f, "00 CB 3F FF 0B 4D 09 70 07 BF 90 02 03 7F 48 80 00"), 0x6A80);
    uint8_t want[64];
    size_t wl;
    assert_int_equal(tx(f, "00 CB 3F FF 0A 4D 08 70 06 BF 81 01 02 A0 80 00"), 0x9000);
    wl = hex("70 16 BF 81 01 12 A0 10 9A 01 03 9B 01 03 A1 08 8C 06 73 00 00 12 FF 00", want,
             sizeof want);
    assert_int_equal(f->rlen, wl);
    assert_memory_equal(f->resp, want, wl);
    /* key 0x81: PSO CDS only; key 0x82: INTERNAL AUTHENTICATE + DECIPHER */
    assert_int_equal(tx(f, "00 CB 3F FF 0A 4D 08 70 06 BF 90 01 02 A0 80 00"), 0x9000);
    wl = hex("70 15 BF 90 01 11 A0 0F 80 02 01 00 A1 09 8C 07 7B 11 FF FF FF FF 00", want,
             sizeof want);
    assert_int_equal(f->rlen, wl);
    assert_memory_equal(f->resp, want, wl);
    assert_int_equal(tx(f, "00 CB 3F FF 0A 4D 08 70 06 BF 90 02 02 A0 80 00"), 0x9000);
    wl = hex("70 15 BF 90 02 11 A0 0F 80 02 01 00 A1 09 8C 07 7B FF 11 11 FF FF 00", want,
             sizeof want);
    assert_int_equal(f->rlen, wl);
    assert_memory_equal(f->resp, want, wl);
    /* SE 01 */
    assert_int_equal(tx(f, "00 CB 3F FF 0A 4D 08 70 06 BF FB 01 02 7B 80 00"), 0x9000);
    wl = hex("70 0E BF FB 01 0A 7B 08 A4 06 83 01 01 95 01 08", want, sizeof want);
    assert_int_equal(f->rlen, wl);
    assert_memory_equal(f->resp, want, wl);
    /* public key of 0x82: modulus + exponent, more than 256 bytes */
    assert_int_equal(tx(f, "00 CB 3F FF 0B 4D 09 70 07 BF A0 02 03 7F 49 80 00"), 0x9000);
    assert_true(f->rlen > 256);
    assert_int_equal(f->resp[0], 0x70);
    /* malformed request */
    assert_int_equal(tx(f, "00 CB 3F FF 04 4D 02 70 00 00"), 0x6A80);
}

static void test_verify_wrong_right_blocked_unblock(void **state)
{
    fx_t *f = *state;
    assert_int_equal(tx(f, "00 20 00 01"), 0x63C3);
    assert_int_equal(tx(f, "00 20 00 01 04 39 39 39 39"), 0x63C2);
    assert_int_equal(f->saves, 1);
    assert_int_equal(f->saved.pin_tries_left, 2);
    assert_int_equal(tx(f, "00 20 00 01"), 0x63C2);
    assert_int_equal(tx(f, "00 20 00 01 04 39 39 39 39"), 0x63C1);
    verify_pin(f, "1234"); /* right PIN: counter back to 3 */
    assert_int_equal(f->saved.pin_tries_left, 3);
    assert_int_equal(tx(f, "00 20 00 01"), 0x9000);
    /* DOCP tries remaining follows the counter */
    assert_int_equal(tx(f, "00 20 00 01 04 30 30 30 30"), 0x63C2);
    assert_int_equal(tx(f, "00 20 00 01"), 0x63C2); /* a failed verify clears the state */
    assert_int_equal(tx(f, "00 20 00 01 04 30 30 30 30"), 0x63C1);
    assert_int_equal(tx(f, "00 20 00 01 04 30 30 30 30"), 0x63C0);
    assert_int_equal(tx(f, "00 20 00 01 04 31 32 33 34"), 0x6983);
    assert_int_equal(tx(f, "00 20 00 01"), 0x6983);
    assert_int_equal(tx(f, "00 CB 3F FF 0A 4D 08 70 06 BF 81 01 02 A0 80 00"), 0x9000);
    assert_non_null(find_bytes(f->resp, f->rlen, "\x9B\x01\x00", 3));
    assert_int_equal(f->saved.pin_tries_left, 0);
    /* wrong unblock code */
    assert_int_equal(tx(f, "00 2C 00 01 0C 38 37 36 35 34 33 32 31 35 36 37 38"), 0x63C9);
    assert_int_equal(f->saved.puk_tries_left, 9);
    /* unblock with PUK ‖ new PIN */
    assert_int_equal(tx(f, "00 2C 00 01 0C 31 32 33 34 35 36 37 38 35 36 37 38"), 0x9000);
    assert_int_equal(f->saved.pin_tries_left, 3);
    assert_int_equal(f->saved.puk_tries_left, 10);
    assert_int_equal(f->saved.pin_len, 4);
    assert_memory_equal(f->saved.pin, "5678", 4);
    assert_int_equal(tx(f, "00 20 00 01 04 31 32 33 34"), 0x63C2);
    verify_pin(f, "5678");
    /* OpenSC's form: VERIFY the PUK (CHV 02), then 00 2C 02 01 <new PIN> */
    assert_int_equal(tx(f, "00 2C 02 01 04 31 32 33 34"), 0x6982);
    assert_int_equal(tx(f, "00 20 00 02 08 31 32 33 34 35 36 37 38"), 0x9000);
    assert_int_equal(tx(f, "00 2C 02 01 04 31 32 33 34"), 0x9000);
    verify_pin(f, "1234");
    /* the state survives a reset; the verified flag does not */
    card_applet_reset(f->a);
    assert_int_equal(tx(f, "00 20 00 01"), 0x63C3);
}

static void test_change_reference_data(void **state)
{
    fx_t *f = *state;
    assert_int_equal(tx(f, "00 24 00 01 08 39 39 39 39 34 33 32 31"), 0x63C2);
    assert_int_equal(tx(f, "00 24 00 01 08 31 32 33 34 34 33 32 31"), 0x9000);
    assert_memory_equal(f->saved.pin, "4321", 4);
    assert_int_equal(f->saved.pin_tries_left, 3);
    assert_int_equal(tx(f, "00 20 00 01"), 0x9000); /* verified by the change */
    card_applet_reset(f->a);
    assert_int_equal(tx(f, "00 20 00 01 04 31 32 33 34"), 0x63C2);
    verify_pin(f, "4321");
    /* a non-digit new PIN is refused */
    assert_int_equal(tx(f, "00 24 00 01 08 34 33 32 31 41 42 43 44"), 0x6A80);
    /* FF padding (pinpad, stored length 8) is accepted */
    assert_int_equal(tx(f, "00 20 00 01 08 34 33 32 31 FF FF FF FF"), 0x9000);
}

static void test_save_failure(void **state)
{
    fx_t *f = *state;
    f->save_fail = true;
    assert_int_equal(tx(f, "00 20 00 01 04 39 39 39 39"), 0x6581);
    f->save_fail = false;
}

static void test_internal_auth_0x82(void **state)
{
    fx_t *f = *state;
    static const uint8_t msg[] = "Bonjour, ceci est un test de login TLS";
    uint8_t di[19 + 32];
    memcpy(di, di_sha256, 19);
    SHA256(msg, sizeof msg - 1, di + 19);
    /* key operations need the PIN */
    assert_int_equal(tx(f, "00 22 41 A4 06 84 01 82 80 01 02"), 0x9000);
    assert_int_equal(tx_data(f, "00 88 00 00", di, sizeof di, true), 0x6982);
    verify_pin(f, "1234");
    assert_int_equal(tx(f, "00 A4 09 04 04 3F 00 00 01 00"), 0x9000); /* SELECT keeps PIN state */
    assert_int_equal(tx(f, "00 22 41 A4 06 84 01 82 80 01 02"), 0x9000);
    assert_int_equal(card_applet_cmd_class((const uint8_t *)"\x00\x88\x00\x00"), CARD_CMD_RSA);
    assert_int_equal(tx_data(f, "00 88 00 00", di, sizeof di, true), 0x9000);
    assert_int_equal(f->rlen, 256);
    assert_sig(f->prof.cfg.auth_cert, f->prof.cfg.auth_cert_len, EVP_sha256(), msg, sizeof msg - 1,
               f->resp, f->rlen);
    /* the PIN stays verified after a signature (§9) */
    assert_int_equal(tx(f, "00 20 00 01"), 0x9000);
    /* too long for PKCS#1 v1.5 */
    uint8_t big[250];
    memset(big, 0x41, sizeof big);
    assert_int_equal(tx_data(f, "00 88 00 00", big, sizeof big, true), 0x6700);
}

static void test_internal_auth_0x81_refused(void **state)
{
    fx_t *f = *state;
    verify_pin(f, "1234");
    uint8_t di[19 + 32] = {0};
    memcpy(di, di_sha256, 19);
    assert_int_equal(tx(f, "00 22 41 A4 06 84 01 81 80 01 02"), 0x9000);
    assert_int_equal(tx_data(f, "00 88 00 00", di, sizeof di, true), 0x6985);
    /* nor PSO CDS with the authentication key */
    assert_int_equal(tx(f, "00 22 41 B6 06 84 01 82 80 01 42"), 0x9000);
    assert_int_equal(tx_data(f, "00 2A 9E 9A", di + 19, 32, true), 0x6985);
    /* without MSE: conditions not satisfied */
    card_applet_reset(f->a);
    verify_pin(f, "1234");
    assert_int_equal(tx_data(f, "00 88 00 00", di, sizeof di, true), 0x6985);
    /* unknown key reference */
    assert_int_equal(tx(f, "00 22 41 A4 06 84 01 83 80 01 02"), 0x6A88);
}

static void test_pso_cds_0x81(void **state)
{
    fx_t *f = *state;
    static const uint8_t msg[] = "Compte rendu de consultation";
    uint8_t h[32];
    SHA256(msg, sizeof msg - 1, h);
    assert_int_equal(tx(f, "00 22 41 B6 06 84 01 81 80 01 42"), 0x9000);
    assert_int_equal(tx_data(f, "00 2A 9E 9A", h, 32, true), 0x6982);
    verify_pin(f, "1234");
    assert_int_equal(tx_data(f, "00 2A 9E 9A", h, 32, true), 0x9000);
    assert_int_equal(f->rlen, 256);
    assert_sig(f->prof.cfg.sign_cert, f->prof.cfg.sign_cert_len, EVP_sha256(), msg, sizeof msg - 1,
               f->resp, f->rlen);
    /* wrong hash length */
    assert_int_equal(tx_data(f, "00 2A 9E 9A", h, 20, true), 0x6A80);
    /* SHA-1 */
    uint8_t h1[20];
    SHA1(msg, sizeof msg - 1, h1);
    assert_int_equal(tx(f, "00 22 41 B6 06 84 01 81 80 01 12"), 0x9000);
    assert_int_equal(tx_data(f, "00 2A 9E 9A", h1, 20, true), 0x9000);
    assert_sig(f->prof.cfg.sign_cert, f->prof.cfg.sign_cert_len, EVP_sha1(), msg, sizeof msg - 1,
               f->resp, f->rlen);
    /* PSO CDS without data and without PSO HASH */
    assert_int_equal(tx(f, "00 2A 9E 9A 00"), 0x6985);
}

/* PSO HASH with the intermediate SHA-256 state gives the same signature as
 * PSO CDS over the full message's hash (cpx-card.md §10.3). */
static void test_pso_hash_intermediate(void **state)
{
    fx_t *f = *state;
    uint8_t msg[300];
    for (size_t i = 0; i < sizeof msg; i++)
        msg[i] = (uint8_t)(i * 7 + 3);
    verify_pin(f, "1234");
    uint8_t h[32];
    SHA256(msg, sizeof msg, h);
    assert_int_equal(tx(f, "00 22 41 B6 06 84 01 81 80 01 42"), 0x9000);
    assert_int_equal(tx_data(f, "00 2A 9E 9A", h, 32, true), 0x9000);
    uint8_t ref[256];
    assert_int_equal(f->rlen, 256);
    memcpy(ref, f->resp, 256);

    /* the host's side: hash all whole blocks, send state ‖ bit counter */
    SHA256_CTX ctx;
    SHA256_Init(&ctx);
    size_t whole = sizeof msg / 64 * 64;
    SHA256_Update(&ctx, msg, whole);
    uint8_t data[2 + 40 + 2 + 64];
    size_t n = 0;
    data[n++] = 0x90;
    data[n++] = 0x28;
    for (unsigned i = 0; i < 8; i++) {
        data[n++] = (uint8_t)(ctx.h[i] >> 24);
        data[n++] = (uint8_t)(ctx.h[i] >> 16);
        data[n++] = (uint8_t)(ctx.h[i] >> 8);
        data[n++] = (uint8_t)ctx.h[i];
    }
    uint64_t bits = (uint64_t)whole * 8;
    for (int i = 7; i >= 0; i--)
        data[n++] = (uint8_t)(bits >> (8 * i));
    data[n++] = 0x80;
    data[n++] = (uint8_t)(sizeof msg - whole);
    memcpy(data + n, msg + whole, sizeof msg - whole);
    n += sizeof msg - whole;

    assert_int_equal(tx_data(f, "00 2A 90 A0", data, n, false), 0x6985); /* no MSE HT */
    assert_int_equal(tx(f, "00 22 41 AA 03 80 01 40"), 0x9000);
    assert_int_equal(tx_data(f, "00 2A 90 A0", data, n, false), 0x9000);
    assert_true(card_applet_t0_data_in(f->a, (const uint8_t *)"\x00\x2A\x9E\x9A\x00") == false);
    assert_int_equal(tx(f, "00 2A 9E 9A 00"), 0x9000);
    assert_int_equal(f->rlen, 256);
    assert_memory_equal(f->resp, ref, 256);
    /* the hash is used once */
    assert_int_equal(tx(f, "00 2A 9E 9A 00"), 0x6985);

    /* short message form: 90 00 80 len msg */
    uint8_t small[2 + 2 + 40];
    n = 0;
    small[n++] = 0x90;
    small[n++] = 0x00;
    small[n++] = 0x80;
    small[n++] = 40;
    memcpy(small + n, msg, 40);
    n += 40;
    SHA256(msg, 40, h);
    assert_int_equal(tx_data(f, "00 2A 9E 9A", h, 32, true), 0x9000);
    memcpy(ref, f->resp, 256);
    assert_int_equal(tx_data(f, "00 2A 90 A0", small, n, false), 0x9000);
    assert_int_equal(tx(f, "00 2A 9E 9A 00"), 0x9000);
    assert_memory_equal(f->resp, ref, 256);
    /* a bad bit counter (not a multiple of 512) */
    data[2 + 32 + 7] ^= 0x01;
    assert_int_equal(
        tx_data(f, "00 2A 90 A0", data, sizeof data - 64 + (sizeof msg - whole), false), 0x6A80);
}

static void test_sha_finish_matches_openssl(void **state)
{
    (void)state;
    uint8_t msg[200], want[32], got[32];
    for (size_t i = 0; i < sizeof msg; i++)
        msg[i] = (uint8_t)(i ^ 0x5A);
    for (size_t len = 0; len < sizeof msg; len += 7) {
        SHA256(msg, len, want);
        assert_true(card_hash_finish(CARD_HASH_SHA256, NULL, 0, msg, len, got));
        assert_memory_equal(got, want, 32);
        SHA1(msg, len, want);
        assert_true(card_hash_finish(CARD_HASH_SHA1, NULL, 0, msg, len, got));
        assert_memory_equal(got, want, 20);
    }
    /* SHA-1 from an intermediate state */
    SHA_CTX c1;
    SHA1_Init(&c1);
    SHA1_Update(&c1, msg, 128);
    uint8_t st[20];
    uint32_t hv[5] = {c1.h0, c1.h1, c1.h2, c1.h3, c1.h4};
    for (unsigned i = 0; i < 5; i++) {
        st[4 * i] = (uint8_t)(hv[i] >> 24);
        st[4 * i + 1] = (uint8_t)(hv[i] >> 16);
        st[4 * i + 2] = (uint8_t)(hv[i] >> 8);
        st[4 * i + 3] = (uint8_t)hv[i];
    }
    SHA1(msg, 150, want);
    assert_true(card_hash_finish(CARD_HASH_SHA1, st, 1024, msg + 128, 22, got));
    assert_memory_equal(got, want, 20);
    assert_false(card_hash_finish(CARD_HASH_SHA1, st, 1000, msg, 1, got));
    assert_false(card_hash_finish(CARD_HASH_SHA1, NULL, 512, msg, 1, got));
}

static void test_pso_decipher_chained(void **state)
{
    fx_t *f = *state;
    static const uint8_t secret[] = "cle de session 0123456789";
    EVP_PKEY *k = cert_key(f->prof.cfg.auth_cert, f->prof.cfg.auth_cert_len);
    EVP_PKEY_CTX *c = EVP_PKEY_CTX_new(k, NULL);
    uint8_t ct[256];
    size_t ctl = sizeof ct;
    assert_int_equal(EVP_PKEY_encrypt_init(c), 1);
    assert_int_equal(EVP_PKEY_CTX_set_rsa_padding(c, RSA_PKCS1_PADDING), 1);
    assert_int_equal(EVP_PKEY_encrypt(c, ct, &ctl, secret, sizeof secret - 1), 1);
    EVP_PKEY_CTX_free(c);
    EVP_PKEY_free(k);
    assert_int_equal(ctl, 256);
    verify_pin(f, "1234");
    assert_int_equal(tx(f, "00 22 41 B8 06 84 01 82 80 01 0A"), 0x9000);
    /* 81 ‖ cryptogram = 257 bytes: two commands, CLA 10 on the first (§10.2) */
    uint8_t first[255];
    first[0] = 0x81;
    memcpy(first + 1, ct, 254);
    assert_int_equal(tx_data(f, "10 2A 80 86", first, 255, false), 0x9000);
    assert_int_equal(f->rlen, 0);
    assert_int_equal(tx_data(f, "00 2A 80 86", ct + 254, 2, true), 0x9000);
    assert_int_equal(f->rlen, sizeof secret - 1);
    assert_memory_equal(f->resp, secret, sizeof secret - 1);
    /* the signature key cannot decipher */
    assert_int_equal(tx(f, "00 22 41 B8 06 84 01 81 80 01 0A"), 0x9000);
    assert_int_equal(tx_data(f, "10 2A 80 86", first, 255, false), 0x9000);
    assert_int_equal(tx_data(f, "00 2A 80 86", ct + 254, 2, true), 0x6985);
}

static void test_reset_clears_volatile_state(void **state)
{
    fx_t *f = *state;
    verify_pin(f, "1234");
    assert_int_equal(tx(f, "00 A4 09 04 06 3F 00 00 01 50 32 00"), 0x9000);
    assert_int_equal(tx(f, "00 22 41 A4 06 84 01 82 80 01 02"), 0x9000);
    card_applet_reset(f->a);
    assert_int_equal(tx(f, "00 20 00 01"), 0x63C3);
    assert_int_equal(tx(f, "00 B0 00 00 10"), 0x6986); /* no current EF */
    verify_pin(f, "1234");
    uint8_t di[51] = {0};
    assert_int_equal(tx_data(f, "00 88 00 00", di, sizeof di, true), 0x6985); /* no MSE */
}

static void test_get_challenge(void **state)
{
    fx_t *f = *state;
    assert_int_equal(tx(f, "00 84 00 00 08"), 0x9000);
    assert_int_equal(f->rlen, 8);
    assert_int_equal(tx(f, "00 84 00 00 00"), 0x9000);
    assert_int_equal(f->rlen, 8);
    assert_int_equal(tx(f, "00 84 00 00 04"), 0x6C08);
}

static void test_bad_lengths(void **state)
{
    fx_t *f = *state;
    uint8_t apdu[8] = {0x00, 0xA4, 0x00, 0x00, 0x05, 0x3F};
    assert_int_equal(tx_bytes(f, apdu, 3), 0x6700);
    assert_int_equal(tx_bytes(f, apdu, 6), 0x6700); /* Lc says 5, 1 byte present */
    uint8_t ext[7] = {0x00, 0xB0, 0x00, 0x00, 0x00, 0x01, 0x00};
    assert_int_equal(tx_bytes(f, ext, 7), 0x6700); /* extended length */
    /* chaining that grows past the cap */
    uint8_t chunk[255];
    memset(chunk, 0x11, sizeof chunk);
    for (int i = 0; i < 4; i++)
        assert_int_equal(tx_data(f, "10 2A 80 86", chunk, sizeof chunk, false), 0x9000);
    assert_int_equal(tx_data(f, "10 2A 80 86", chunk, sizeof chunk, false), 0x6700);
}

static void test_config_checks(void **state)
{
    fx_t *f = *state;
    card_config_t cfg = f->prof.cfg;
    card_persist_t st = f->prof.initial;
    cfg.auth_cert_len = CARD_CERT_MAX + 1;
    assert_null(card_applet_new(&cfg, &st));
    cfg = f->prof.cfg;
    st.pin_len = 3;
    assert_null(card_applet_new(&cfg, &st));
    st = f->prof.initial;
    st.pin_tries_left = 4;
    assert_null(card_applet_new(&cfg, &st));
    assert_false(card_applet_valid_secret((const uint8_t *)"12a4", 4));
    assert_true(card_applet_valid_secret((const uint8_t *)"12345678", 8));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_select_read_ef_atr, setup, teardown),
        cmocka_unit_test_setup_teardown(test_select_variants, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_certificates, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pkcs15_objects, setup, teardown),
        cmocka_unit_test_setup_teardown(test_get_data_sdo, setup, teardown),
        cmocka_unit_test_setup_teardown(test_verify_wrong_right_blocked_unblock, setup, teardown),
        cmocka_unit_test_setup_teardown(test_change_reference_data, setup, teardown),
        cmocka_unit_test_setup_teardown(test_save_failure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_internal_auth_0x82, setup, teardown),
        cmocka_unit_test_setup_teardown(test_internal_auth_0x81_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pso_cds_0x81, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pso_hash_intermediate, setup, teardown),
        cmocka_unit_test(test_sha_finish_matches_openssl),
        cmocka_unit_test_setup_teardown(test_pso_decipher_chained, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reset_clears_volatile_state, setup, teardown),
        cmocka_unit_test_setup_teardown(test_get_challenge, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_lengths, setup, teardown),
        cmocka_unit_test_setup_teardown(test_config_checks, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
