/* firmware/gate: the APDU classifier, the state machine (with a fake card and
 * a fake ui) and the vendor Escape commands, with the real receipts and
 * crypto over fake flash/RNG/clock. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <mbedtls/sha256.h>

#include "crypto.h"
#include "fake_flash_rng.h"
#include "gate.h"
#include "gate_announce.h"
#include "gate_apdu.h"
#include "gate_fakes.h"
#include "receipts.h"

/* ---- helpers ---- */

static uint8_t rsp[300];
static size_t rsp_len;

static uint16_t xfr(const uint8_t *apdu, size_t len)
{
    rsp_len = 0;
    assert_int_equal(gate_transceive(apdu, len, rsp, 258, &rsp_len), ICC_OK);
    assert_true(rsp_len >= 2);
    return (uint16_t)(rsp[rsp_len - 2] << 8 | rsp[rsp_len - 1]);
}

static const uint8_t mse_dst_sig[] = {0x00, 0x22, 0x41, 0xB6, 0x06, 0x84,
                                      0x01, 0x81, 0x80, 0x01, 0x42};
static const uint8_t mse_dst_aut[] = {0x00, 0x22, 0x41, 0xB6, 0x06, 0x84,
                                      0x01, 0x82, 0x80, 0x01, 0x42};
static const uint8_t mse_at_aut[] = {0x00, 0x22, 0x41, 0xA4, 0x06, 0x84,
                                     0x01, 0x82, 0x80, 0x01, 0x02};
static const uint8_t mse_ht_256[] = {0x00, 0x22, 0x41, 0xAA, 0x03, 0x80, 0x01, 0x40};
static const uint8_t select_mf[] = {0x00, 0xA4, 0x00, 0x0C, 0x02, 0x3F, 0x00};

static uint16_t pso_cds(const uint8_t *hash, size_t n)
{
    uint8_t a[64] = {0x00, 0x2A, 0x9E, 0x9A, (uint8_t)n};
    memcpy(a + 5, hash, n);
    a[5 + n] = 0x00;
    return xfr(a, 6 + n);
}

static uint16_t pso_cds_nodata(void)
{
    static const uint8_t a[] = {0x00, 0x2A, 0x9E, 0x9A, 0x00};
    return xfr(a, sizeof a);
}

/* Escape: returns the status byte, payload to out. */
static uint8_t esc(uint8_t cmd, const uint8_t *payload, size_t n, uint8_t *out, size_t *out_len)
{
    uint8_t in[300] = {GATE_ESCAPE_VERSION, cmd};
    if (n)
        memcpy(in + 2, payload, n);
    uint8_t o[300];
    size_t ol = 0;
    uint8_t err = 0xEE;
    assert_true(gate_escape(in, n + 2, o, 258, &ol, &err));
    assert_true(ol >= 3 && o[0] == GATE_ESCAPE_VERSION && o[1] == cmd);
    if (out)
        memcpy(out, o + 3, ol - 3);
    if (out_len)
        *out_len = ol - 3;
    return o[2];
}

/* signedAttrs (RFC 5652 §5.3): contentType id-data and messageDigest. */
static size_t signed_attrs(uint8_t *out, const uint8_t md[32])
{
    static const uint8_t head[] = {
        0x31, 0x4B, 0x30, 0x18, 0x06, 0x09, 0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x09, 0x03,
        0x31, 0x0B, 0x06, 0x09, 0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x07, 0x01, 0x30, 0x2F,
        0x06, 0x09, 0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x09, 0x04, 0x31, 0x22, 0x04, 0x20};
    memcpy(out, head, sizeof head);
    memcpy(out + sizeof head, md, 32);
    return sizeof head + 32;
}

static size_t put_field(uint8_t *m, size_t o, uint8_t tag, const void *v, size_t n)
{
    m[o] = tag;
    m[o + 1] = (uint8_t)(n >> 8);
    m[o + 2] = (uint8_t)n;
    memcpy(m + o + 3, v, n);
    return o + 3 + n;
}

static uint8_t content[32];
static uint8_t sattrs[128];
static size_t sattrs_len;
static uint8_t sattrs_hash[32];

/* An announcement message; bad_md: signedAttrs carry another digest. */
static size_t announcement(uint8_t *m, bool bad_md)
{
    memset(content, 0xC7, sizeof content);
    uint8_t md[32];
    memcpy(md, content, 32);
    if (bad_md)
        md[31] ^= 1;
    sattrs_len = signed_attrs(sattrs, md);
    assert_int_equal(crypto_sha256(sattrs, sattrs_len, sattrs_hash), CRYPTO_OK);
    size_t o = 0;
    o = put_field(m, o, GATE_ANN_FROM, "jean.dupont@medecin.mssante.fr", 30);
    o = put_field(m, o, GATE_ANN_TO, "secretariat@clinique.mssante.fr", 31);
    o = put_field(m, o, GATE_ANN_SUBJECT, "Compte rendu opératoire",
                  strlen("Compte rendu opératoire"));
    uint8_t att[4 + 10] = {0x00, 0x01, 0x80, 0x00};
    memcpy(att + 4, "cr-op.pdf", 9);
    o = put_field(m, o, GATE_ANN_ATTACHMENT, att, 13);
    o = put_field(m, o, GATE_ANN_CONTENT, content, 32);
    o = put_field(m, o, GATE_ANN_SIGNED_ATTRS, sattrs, sattrs_len);
    return o;
}

/* Uploads message m in chunks of 50 bytes; returns END's status. */
static uint8_t announce_msg(const uint8_t *m, size_t n, uint8_t digest[32])
{
    uint8_t p[256];
    p[0] = (uint8_t)(n >> 8);
    p[1] = (uint8_t)n;
    assert_int_equal(esc(0x10, p, 2, NULL, NULL), 0);
    for (size_t off = 0; off < n; off += 50) {
        size_t k = n - off < 50 ? n - off : 50;
        p[0] = (uint8_t)(off >> 8);
        p[1] = (uint8_t)off;
        memcpy(p + 2, m + off, k);
        assert_int_equal(esc(0x11, p, k + 2, NULL, NULL), 0);
    }
    size_t ol = 0;
    uint8_t st = esc(0x12, NULL, 0, digest, &ol);
    if (st == 0)
        assert_int_equal(ol, 32);
    return st;
}

static void announce(void)
{
    uint8_t m[512], d[32];
    size_t n = announcement(m, false);
    assert_int_equal(announce_msg(m, n, d), 0);
    assert_memory_equal(d, sattrs_hash, 32);
}

static bool card_saw_cds(void)
{
    return fake_card_saw(0x00, 0x2A, 0x9E, 0x9A);
}

static int setup(void **st)
{
    (void)st;
    fakes_reset();
    fake_flash_erase_all();
    fake_rng_set_broken(false);
    assert_int_equal(receipts_init(), RECEIPTS_OK);
    gate_init();
    gate_card_reset();
    return 0;
}

/* Verifies the last receipt with the device key; returns its flags byte. */
static uint8_t last_receipt(const uint8_t *digest, size_t n, uint8_t key)
{
    uint8_t r[RECEIPTS_MAX_LEN], sel[4] = {0xFF, 0xFF, 0xFF, 0xFF}, info[200];
    size_t rl = 0, il = 0;
    assert_int_equal(esc(0x20, sel, 4, r, &rl), 0);
    assert_int_equal(esc(0x01, NULL, 0, info, &il), 0);
    assert_int_equal(info[8], CRYPTO_P256_SPKI_LEN);
    uint8_t h[32];
    assert_int_equal(crypto_sha256(r, RECEIPTS_BODY_LEN, h), CRYPTO_OK);
    assert_int_equal(
        crypto_p256_verify(info + 9 + 26, h, r + RECEIPTS_BODY_LEN + 1, r[RECEIPTS_BODY_LEN]),
        CRYPTO_OK);
    assert_int_equal(r[5], key);
    assert_int_equal(r[7], n);
    assert_memory_equal(r + 12, digest, n);
    return r[6];
}

/* ---- classifier ---- */

static void test_classifier(void **st)
{
    (void)st;
    gate_apdu_t a;
    assert_int_equal(gate_apdu_parse(select_mf, sizeof select_mf, &a), GATE_APDU_PASS);
    assert_int_equal(gate_apdu_parse(mse_dst_sig, sizeof mse_dst_sig, &a), GATE_APDU_MSE_SET);
    assert_true(a.has_key && a.key == 0x81 && a.crt == 0xB6 && a.has_alg && a.alg == 0x42);
    static const uint8_t restore[] = {0x00, 0x22, 0xF3, 0x01};
    assert_int_equal(gate_apdu_parse(restore, sizeof restore, &a), GATE_APDU_MSE_OTHER);
    static const uint8_t hash_state[] = {0x00, 0x2A, 0x90, 0xA0, 0x08, 0x90, 0x02,
                                         0x11, 0x22, 0x80, 0x02, 0x33, 0x44};
    assert_int_equal(gate_apdu_parse(hash_state, sizeof hash_state, &a), GATE_APDU_PSO_HASH);
    assert_true(a.has_state && a.state_len == 2 && a.has_msg && a.msg_len == 2);
    static const uint8_t chained_cds[] = {0x10, 0x2A, 0x9E, 0x9A, 0x01, 0xAA};
    assert_int_equal(gate_apdu_parse(chained_cds, sizeof chained_cds, &a), GATE_APDU_REFUSE);
    assert_int_equal(a.refuse_sw, 0x6884);
    static const uint8_t extended[] = {0x00, 0x2A, 0x9E, 0x9A, 0x00, 0x00, 0x20};
    assert_int_equal(gate_apdu_parse(extended, sizeof extended, &a), GATE_APDU_REFUSE);
    assert_int_equal(a.refuse_sw, 0x6700);
    static const uint8_t envelope[] = {0x00, 0xC2, 0x00, 0x00, 0x01, 0x00};
    assert_int_equal(gate_apdu_parse(envelope, sizeof envelope, &a), GATE_APDU_REFUSE);
    static const uint8_t sm[] = {0x0C, 0x2A, 0x9E, 0x9A, 0x01, 0x00};
    assert_int_equal(gate_apdu_parse(sm, sizeof sm, &a), GATE_APDU_REFUSE);
    assert_int_equal(a.refuse_sw, 0x6882);
    static const uint8_t bad_mse[] = {0x00, 0x22, 0x41, 0xB6, 0x03, 0x84, 0x02, 0x81};
    assert_int_equal(gate_apdu_parse(bad_mse, sizeof bad_mse, &a), GATE_APDU_REFUSE);
    static const uint8_t dup_key[] = {0x00, 0x22, 0x41, 0xB6, 0x06, 0x84,
                                      0x01, 0x82, 0x84, 0x01, 0x81};
    assert_int_equal(gate_apdu_parse(dup_key, sizeof dup_key, &a), GATE_APDU_REFUSE);
    static const uint8_t decipher[] = {0x10, 0x2A, 0x80, 0x86, 0x02, 0x81, 0x00};
    assert_int_equal(gate_apdu_parse(decipher, sizeof decipher, &a), GATE_APDU_PSO_DECIPHER);
    assert_true(a.chained);
    static const uint8_t short_key[] = {0x00, 0x2A, 0x9E};
    assert_int_equal(gate_apdu_parse(short_key, sizeof short_key, &a), GATE_APDU_REFUSE);
    static const uint8_t bad_lc[] = {0x00, 0x2A, 0x9E, 0x9A, 0x05, 0x01};
    assert_int_equal(gate_apdu_parse(bad_lc, sizeof bad_lc, &a), GATE_APDU_REFUSE);
}

static void test_signed_attrs_parser(void **st)
{
    (void)st;
    uint8_t md[32], der[128];
    memset(md, 0x42, 32);
    size_t n = signed_attrs(der, md);
    const uint8_t *got = NULL;
    size_t gl = 0;
    assert_true(gate_signed_attrs_message_digest(der, n, &got, &gl));
    assert_int_equal(gl, 32);
    assert_memory_equal(got, md, 32);
    /* Trailing byte, truncated, wrong outer tag. */
    assert_false(gate_signed_attrs_message_digest(der, n + 1, &got, &gl));
    assert_false(gate_signed_attrs_message_digest(der, n - 1, &got, &gl));
    der[0] = 0xA0;
    assert_false(gate_signed_attrs_message_digest(der, n, &got, &gl));
    /* UTF-8 rules for the display. */
    assert_true(gate_utf8_displayable((const uint8_t *)"Résultat é à", 15));
    assert_false(gate_utf8_displayable((const uint8_t *)"a\nb", 3));
    assert_false(gate_utf8_displayable((const uint8_t *)"\xC0\xAF", 2));
    assert_false(gate_utf8_displayable((const uint8_t *)"\xED\xA0\x80", 3));
    assert_false(gate_utf8_displayable((const uint8_t *)"\xC2\x85", 2));
    assert_false(gate_utf8_displayable((const uint8_t *)"\xE2\x82", 2));
}

/* ---- state machine ---- */

static void test_pass_through(void **st)
{
    (void)st;
    assert_int_equal(xfr(select_mf, sizeof select_mf), 0x9000);
    assert_int_equal(fake_card.count, 1);
    assert_memory_equal(fake_card.log[0].apdu, select_mf, sizeof select_mf);
    assert_int_equal(fake_ui.calls, 0);
    /* The authentication key: no confirmation by default. */
    assert_int_equal(xfr(mse_at_aut, sizeof mse_at_aut), 0x9000);
    uint8_t ia[] = {0x00, 0x88, 0x00, 0x00, 0x04, 1, 2, 3, 4, 0x00};
    assert_int_equal(xfr(ia, sizeof ia), 0x9000);
    assert_int_equal(fake_ui.calls, 0);
    assert_int_equal(fake_card.count, 3);
}

static void test_unannounced_signature(void **st)
{
    (void)st;
    uint8_t h[32];
    memset(h, 0x3F, sizeof h);
    /* MSE SET DST with the signature key is held: the card sees nothing. */
    assert_int_equal(xfr(mse_dst_sig, sizeof mse_dst_sig), 0x9000);
    assert_int_equal(fake_card.count, 0);
    assert_int_equal(pso_cds(h, 32), 0x9000);
    assert_int_equal(fake_ui.calls, 1);
    assert_true(fake_ui.unannounced);
    assert_string_equal(fake_ui.fingerprint, "3F 3F 3F 3F 3F");
    assert_int_equal(fake_ui.timeout_ms, 60000);
    assert_string_equal(fake_ui.lines[0], "Clé signature");
    assert_string_equal(fake_ui.lines[2], "3F3F3F3F 3F3F3F3F");
    /* After OK: the held MSE, then the PSO CDS. */
    assert_int_equal(fake_card.count, 2);
    assert_memory_equal(fake_card.log[0].apdu, mse_dst_sig, sizeof mse_dst_sig);
    assert_true(card_saw_cds());
    assert_int_equal(rsp_len, 258);
    assert_int_equal(last_receipt(h, 32, 0x81), 0);
    assert_int_equal(gate_last_outcome(), GATE_OUTCOME_SIGNED);
    /* Exactly one: the same request again asks again. */
    assert_int_equal(pso_cds(h, 32), 0x9000);
    assert_int_equal(fake_ui.calls, 2);
}

static void test_cancel_and_timeout(void **st)
{
    (void)st;
    uint8_t h[32];
    memset(h, 0x11, sizeof h);
    assert_int_equal(xfr(mse_dst_sig, sizeof mse_dst_sig), 0x9000);
    fake_ui.answer = UI_CANCELLED;
    assert_int_equal(pso_cds(h, 32), 0x6401);
    assert_int_equal(fake_card.count, 0);
    assert_int_equal(gate_last_outcome(), GATE_OUTCOME_CANCELLED);
    fake_ui.answer = UI_TIMEOUT;
    assert_int_equal(pso_cds(h, 32), 0x6400);
    assert_int_equal(fake_card.count, 0);
    assert_true(fake_ui.last_was_error);
}

static void test_announced_signature(void **st)
{
    (void)st;
    announce();
    uint8_t status[16];
    size_t sl = 0;
    assert_int_equal(esc(0x02, NULL, 0, status, &sl), 0);
    assert_int_equal(status[0] & 0x01, 0x01);
    assert_int_equal(xfr(mse_dst_sig, sizeof mse_dst_sig), 0x9000);
    assert_int_equal(pso_cds(sattrs_hash, 32), 0x9000);
    assert_int_equal(fake_ui.calls, 1);
    assert_false(fake_ui.unannounced);
    assert_string_equal(fake_ui.lines[0], "De : jean.dupont@mede");
    assert_string_equal(fake_ui.lines[1], "  cin.mssante.fr");
    assert_string_equal(fake_ui.lines[2], "À : secretariat@clini");
    assert_string_equal(fake_ui.lines[3], "  que.mssante.fr");
    assert_string_equal(fake_ui.lines[4], "Objet : Compte rendu ");
    assert_string_equal(fake_ui.lines[5], "  opératoire");
    assert_string_equal(fake_ui.lines[6], "PJ : cr-op.pdf");
    assert_string_equal(fake_ui.lines[7], "  (96 Ko)");
    assert_string_equal(fake_ui.lines[8], "Contenu : C7 C7 C7 C7");
    assert_int_equal(fake_ui.line_count, 9);
    assert_true(card_saw_cds());
    assert_int_equal(last_receipt(sattrs_hash, 32, 0x81),
                     RECEIPTS_F_ANNOUNCED | RECEIPTS_F_CONTENT_CHECKED);
    /* The announcement is used up. */
    assert_int_equal(esc(0x02, NULL, 0, status, &sl), 0);
    assert_int_equal(status[0], 0);
}

static void test_announced_mismatch_refused(void **st)
{
    (void)st;
    announce();
    uint8_t other[32];
    memset(other, 0x66, sizeof other);
    assert_int_equal(xfr(mse_dst_sig, sizeof mse_dst_sig), 0x9000);
    assert_int_equal(pso_cds(other, 32), 0x6985);
    assert_int_equal(fake_ui.calls, 0);
    assert_int_equal(fake_card.count, 0);
    assert_false(card_saw_cds());
    assert_int_equal(gate_last_outcome(), GATE_OUTCOME_MISMATCH);
    /* SHA-1 sized, and a wrong length. */
    assert_int_equal(pso_cds(other, 20), 0x6985);
    assert_int_equal(pso_cds(other, 31), 0x6A80);
    assert_int_equal(fake_card.count, 0);
    /* The announced one still goes, once confirmed. */
    assert_int_equal(pso_cds(sattrs_hash, 32), 0x9000);
    assert_int_equal(fake_ui.calls, 1);
    assert_true(card_saw_cds());
    /* Confirmed digest used: a second one with another digest must ask (no
     * announcement any more), and Cancel keeps it from the card. */
    fake_card.count = 0;
    fake_ui.answer = UI_CANCELLED;
    assert_int_equal(pso_cds(other, 32), 0x6401);
    assert_int_equal(fake_card.count, 0);
}

/* SHA-256 chaining value after the whole blocks of msg[0..n). */
static void intermediate(const uint8_t *msg, size_t n, uint8_t state[40])
{
    mbedtls_sha256_context c;
    mbedtls_sha256_init(&c);
    assert_int_equal(mbedtls_sha256_starts_ret(&c, 0), 0);
    assert_int_equal(mbedtls_sha256_update_ret(&c, msg, n), 0);
    for (int i = 0; i < 8; i++) {
        state[4 * i] = (uint8_t)(c.state[i] >> 24);
        state[4 * i + 1] = (uint8_t)(c.state[i] >> 16);
        state[4 * i + 2] = (uint8_t)(c.state[i] >> 8);
        state[4 * i + 3] = (uint8_t)c.state[i];
    }
    uint64_t bits = (uint64_t)n * 8;
    for (int i = 0; i < 8; i++)
        state[32 + i] = (uint8_t)(bits >> (56 - 8 * i));
    mbedtls_sha256_free(&c);
}

static void test_pso_hash_forms(void **st)
{
    (void)st;
    announce();
    /* OpenSC's form: intermediate state of the first 64 bytes + the rest. */
    uint8_t apdu[128] = {0x00, 0x2A, 0x90, 0xA0, 0, 0x90, 0x28};
    intermediate(sattrs, 64, apdu + 7);
    size_t rest = sattrs_len - 64;
    apdu[47] = 0x80;
    apdu[48] = (uint8_t)rest;
    memcpy(apdu + 49, sattrs + 64, rest);
    apdu[4] = (uint8_t)(2 + 40 + 2 + rest);
    size_t alen = 5 + apdu[4];

    /* Without MSE SET HT the gate cannot tell the algorithm: refused. */
    assert_int_equal(xfr(apdu, alen), 0x6985);
    assert_int_equal(xfr(mse_ht_256, sizeof mse_ht_256), 0x9000);
    assert_int_equal(xfr(mse_dst_sig, sizeof mse_dst_sig), 0x9000);
    /* A different last block: another digest, refused. */
    apdu[49] ^= 1;
    assert_int_equal(xfr(apdu, alen), 0x6985);
    apdu[49] ^= 1;
    size_t before = fake_card.count;
    assert_int_equal(xfr(apdu, alen), 0x9000);
    assert_int_equal(fake_ui.calls, 1);
    assert_false(fake_ui.unannounced);
    assert_int_equal(fake_card.count, before + 2); /* held MSE DST + PSO HASH */
    /* PSO CDS without data: the hash in the card, already confirmed. */
    assert_int_equal(pso_cds_nodata(), 0x9000);
    assert_int_equal(fake_ui.calls, 1);
    assert_true(card_saw_cds());
    assert_int_equal(last_receipt(sattrs_hash, 32, 0x81),
                     RECEIPTS_F_ANNOUNCED | RECEIPTS_F_CONTENT_CHECKED);
    /* And no second signature from that hash. */
    assert_int_equal(pso_cds_nodata(), 0x6985);

    /* Whole-message form, unannounced. */
    static const uint8_t msg_apdu[] = {0x00, 0x2A, 0x90, 0xA0, 0x07, 0x90,
                                       0x00, 0x80, 0x03, 'a',  'b',  'c'};
    assert_int_equal(xfr(msg_apdu, sizeof msg_apdu), 0x9000);
    assert_int_equal(fake_ui.calls, 2);
    assert_true(fake_ui.unannounced);
    assert_string_equal(fake_ui.fingerprint, "BA 78 16 BF 8F");
    assert_int_equal(pso_cds_nodata(), 0x9000);
    assert_int_equal(fake_ui.calls, 2);
}

static void test_refusals(void **st)
{
    (void)st;
    static const uint8_t mse_ct_sig[] = {0x00, 0x22, 0x41, 0xB8, 0x03, 0x84, 0x01, 0x81};
    assert_int_equal(xfr(mse_ct_sig, sizeof mse_ct_sig), 0x6985);
    static const uint8_t chained[] = {0x10, 0x2A, 0x9E, 0x9A, 0x01, 0x00};
    assert_int_equal(xfr(chained, sizeof chained), 0x6884);
    /* PSO CDS with no hash anywhere. */
    assert_int_equal(xfr(mse_dst_sig, sizeof mse_dst_sig), 0x9000);
    assert_int_equal(pso_cds_nodata(), 0x6985);
    assert_int_equal(fake_card.count, 0);
    /* A DST with the authentication key: not the gate's business. */
    assert_int_equal(xfr(mse_dst_aut, sizeof mse_dst_aut), 0x9000);
    uint8_t h[32] = {0};
    assert_int_equal(pso_cds(h, 32), 0x9000);
    assert_int_equal(fake_ui.calls, 0);
    /* After MSE RESTORE the environment is unknown: gated again. */
    static const uint8_t restore[] = {0x00, 0x22, 0xF3, 0x01};
    assert_int_equal(xfr(restore, sizeof restore), 0x9000);
    fake_ui.answer = UI_CANCELLED;
    assert_int_equal(pso_cds(h, 32), 0x6401);
    assert_int_equal(fake_ui.calls, 1);
}

static void test_card_reset_clears(void **st)
{
    (void)st;
    announce();
    assert_int_equal(xfr(mse_dst_sig, sizeof mse_dst_sig), 0x9000);
    gate_card_reset();
    uint8_t status[16];
    size_t sl = 0;
    assert_int_equal(esc(0x02, NULL, 0, status, &sl), 0);
    assert_int_equal(status[0], 0);
    /* The held MSE is gone: PSO CDS has no DST, the card judges it. */
    assert_int_equal(pso_cds(sattrs_hash, 32), 0x9000);
    assert_int_equal(fake_ui.calls, 0);
}

static void test_auth_policy(void **st)
{
    (void)st;
    uint8_t cfg[] = {0x02, 0x00, 0x01, 0x01, 0x01, 0x00, 0x02, 0x00, 0x1E};
    assert_int_equal(esc(0x03, cfg, sizeof cfg, NULL, NULL), 0);
    uint8_t status[16];
    size_t sl = 0;
    assert_int_equal(esc(0x02, NULL, 0, status, &sl), 0);
    assert_int_equal(status[6] << 8 | status[7], 30);
    assert_int_equal(status[8], 1);
    assert_int_equal(xfr(mse_at_aut, sizeof mse_at_aut), 0x9000);
    uint8_t ia[] = {0x00, 0x88, 0x00, 0x00, 0x04, 1, 2, 3, 4, 0x00};
    fake_ui.answer = UI_CANCELLED;
    assert_int_equal(xfr(ia, sizeof ia), 0x6401);
    assert_int_equal(fake_ui.timeout_ms, 30000);
    assert_string_equal(fake_ui.lines[0], "Clé authentification");
    fake_ui.answer = UI_OK;
    assert_int_equal(xfr(ia, sizeof ia), 0x9000);
    assert_true(fake_card_saw(0x00, 0x88, 0x00, 0x00));
    /* Bad values change nothing. */
    uint8_t bad[] = {0x01, 0x00, 0x02, 0x00, 0x02};
    assert_int_equal(esc(0x03, bad, sizeof bad, NULL, NULL), 0x07);
    uint8_t unknown[] = {0x09, 0x00, 0x01, 0x00};
    assert_int_equal(esc(0x03, unknown, sizeof unknown, NULL, NULL), 0x02);
    assert_int_equal(gate_timeout_s(), 30);
}

static void test_ticket_expires(void **st)
{
    (void)st;
    static const uint8_t msg_apdu[] = {0x00, 0x2A, 0x90, 0xA0, 0x07, 0x90,
                                       0x00, 0x80, 0x03, 'x',  'y',  'z'};
    assert_int_equal(xfr(mse_ht_256, sizeof mse_ht_256), 0x9000);
    assert_int_equal(xfr(mse_dst_sig, sizeof mse_dst_sig), 0x9000);
    assert_int_equal(xfr(msg_apdu, sizeof msg_apdu), 0x9000);
    assert_int_equal(fake_ui.calls, 1);
    fake_time_advance_us(61u * 1000000u);
    fake_ui.answer = UI_CANCELLED;
    assert_int_equal(pso_cds_nodata(), 0x6401);
    assert_int_equal(fake_ui.calls, 2);
}

/* ---- Escape ---- */

static void test_escape_deny_by_default(void **st)
{
    (void)st;
    uint8_t out[300];
    size_t ol = 0;
    uint8_t err = 0xEE;
    uint8_t wrong_version[] = {0x02, 0x01};
    assert_false(gate_escape(wrong_version, 2, out, 258, &ol, &err));
    assert_int_equal(err, 0);
    uint8_t unknown[] = {0x01, 0x7F};
    assert_false(gate_escape(unknown, 2, out, 258, &ol, &err));
    assert_false(gate_escape(unknown, 1, out, 258, &ol, &err));
    assert_false(gate_escape(unknown, 0, out, 258, &ol, &err));
    /* Payload where none belongs. */
    uint8_t x = 0;
    assert_int_equal(esc(0x01, &x, 1, NULL, NULL), 0x01);
    uint8_t info[200];
    assert_int_equal(esc(0x01, NULL, 0, info, &ol), 0);
    assert_int_equal(ol, 9 + CRYPTO_P256_SPKI_LEN);
    assert_int_equal(info[0], RECEIPTS_DEV_KEY_NEW);
}

static void test_escape_announce_errors(void **st)
{
    (void)st;
    uint8_t m[512], d[32], p[300];
    size_t n = announcement(m, true);
    assert_int_equal(announce_msg(m, n, d), 0x03); /* messageDigest differs */
    /* DATA without BEGIN, out of order, beyond the announced total. */
    p[0] = 0;
    p[1] = 0;
    p[2] = 0xAA;
    assert_int_equal(esc(0x11, p, 3, NULL, NULL), 0x04);
    p[0] = 0;
    p[1] = 10;
    assert_int_equal(esc(0x10, p, 2, NULL, NULL), 0);
    p[1] = 5;
    assert_int_equal(esc(0x11, p, 3, NULL, NULL), 0x04);
    p[1] = 0;
    memset(p + 2, 0x01, 11);
    assert_int_equal(esc(0x11, p, 13, NULL, NULL), 0x01);
    assert_int_equal(esc(0x12, NULL, 0, NULL, NULL), 0x04); /* incomplete */
    /* BEGIN over the cap. */
    p[0] = 0x08;
    p[1] = 0x01;
    assert_int_equal(esc(0x10, p, 2, NULL, NULL), 0x01);
    /* Unknown field; bad UTF-8; content digest of 20 bytes; no recipient. */
    size_t o = put_field(m, 0, 0x55, "x", 1);
    assert_int_equal(announce_msg(m, o, d), 0x02);
    n = announcement(m, false);
    m[3] = 0x0A; /* a newline in From */
    assert_int_equal(announce_msg(m, n, d), 0x02);
    uint8_t z[32] = {0};
    o = put_field(m, 0, GATE_ANN_FROM, "a", 1);
    o = put_field(m, o, GATE_ANN_TO, "b", 1);
    o = put_field(m, o, GATE_ANN_CONTENT, z, 20);
    assert_int_equal(announce_msg(m, o, d), 0x01);
    o = put_field(m, 0, GATE_ANN_FROM, "a", 1);
    o = put_field(m, o, GATE_ANN_CONTENT, z, 32);
    o = put_field(m, o, GATE_ANN_SIGNED_DIGEST, z, 32);
    assert_int_equal(announce_msg(m, o, d), 0x02);
    /* A signed digest instead of signedAttrs: announced, content not checked. */
    o = put_field(m, 0, GATE_ANN_FROM, "a", 1);
    o = put_field(m, o, GATE_ANN_TO, "b", 1);
    o = put_field(m, o, GATE_ANN_CONTENT, z, 32);
    memset(z, 0x77, 32);
    o = put_field(m, o, GATE_ANN_SIGNED_DIGEST, z, 32);
    assert_int_equal(announce_msg(m, o, d), 0);
    assert_memory_equal(d, z, 32);
    assert_int_equal(xfr(mse_dst_sig, sizeof mse_dst_sig), 0x9000);
    assert_int_equal(pso_cds(z, 32), 0x9000);
    assert_int_equal(last_receipt(z, 32, 0x81), RECEIPTS_F_ANNOUNCED);
    /* Receipts that do not exist. */
    uint8_t sel[4] = {0, 0, 0, 99};
    assert_int_equal(esc(0x20, sel, 4, NULL, NULL), 0x05);
    assert_int_equal(esc(0x20, sel, 3, NULL, NULL), 0x01);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_classifier, setup),
        cmocka_unit_test_setup(test_signed_attrs_parser, setup),
        cmocka_unit_test_setup(test_pass_through, setup),
        cmocka_unit_test_setup(test_unannounced_signature, setup),
        cmocka_unit_test_setup(test_cancel_and_timeout, setup),
        cmocka_unit_test_setup(test_announced_signature, setup),
        cmocka_unit_test_setup(test_announced_mismatch_refused, setup),
        cmocka_unit_test_setup(test_pso_hash_forms, setup),
        cmocka_unit_test_setup(test_refusals, setup),
        cmocka_unit_test_setup(test_card_reset_clears, setup),
        cmocka_unit_test_setup(test_auth_policy, setup),
        cmocka_unit_test_setup(test_ticket_expires, setup),
        cmocka_unit_test_setup(test_escape_deny_by_default, setup),
        cmocka_unit_test_setup(test_escape_announce_errors, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
