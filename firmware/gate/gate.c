/* gate: the signature firewall, see gate.h.
 *
 * State kept about the card (reset by gate_card_reset):
 *   - its security environment as the gate let it be set: the key of each
 *     CRT (DST, AT, CT: none / known key / unknown after MSE RESTORE) and
 *     the HT algorithm; the hash a PSO HASH left in the card;
 *   - held MSE SET commands naming the signature key: answered 90 00 by the
 *     gate and sent to the card only right before the confirmed operation;
 *   - the ticket: one confirmed digest for the signature key, valid for one
 *     signature and at most the confirmation timeout;
 *   - the announcement (Escape ANNOUNCE) and its upload buffer.
 * A command that uses the signature key and carries or produces a digest
 * (PSO CDS with data, PSO HASH, INTERNAL AUTHENTICATE) is checked against
 * the ticket, else against the announcement (refused when it differs), and
 * confirmed on the screen; PSO CDS without data uses the hash the card holds. */
#include "gate.h"
#include "gate_apdu.h"
#include "gate_int.h"
#include "gate_text.h"

#include "crypto.h"
#include "fw_util.h"
#include "port_time.h"
#include "receipts.h"
#include "ui.h"

#define GATE_HELD_MAX   32u /* an MSE SET: header, Lc and a few data objects */
#define GATE_DIGEST_MAX 32u

#define SW_OK           0x9000u
#define SW_WRONG_LENGTH 0x6700u
#define SW_WRONG_DATA   0x6A80u

typedef enum { GATE_SE_NONE = 0, GATE_SE_KEY, GATE_SE_UNKNOWN } gate_se_state_t;

typedef struct {
    gate_se_state_t state;
    uint8_t key; /* GATE_SE_KEY: the key reference (or HT: the algorithm) */
} gate_se_t;

typedef struct {
    bool valid;
    size_t len;
    uint8_t apdu[GATE_HELD_MAX];
} gate_held_t;

enum { GATE_HELD_DST = 0, GATE_HELD_AT = 1, GATE_HELD_N = 2 };

typedef struct {
    bool valid;
    uint8_t digest[GATE_DIGEST_MAX];
    size_t len;
    uint8_t flags; /* RECEIPTS_F_* */
    bool from_announcement;
    uint8_t display[CRYPTO_SHA256_LEN];
    uint64_t expires_us;
} gate_ticket_t;

static struct {
    uint32_t timeout_s;
    gate_auth_policy_t auth_policy;
    gate_se_t dst, at, ct, ht;
    bool card_hash_valid;
    uint8_t card_hash[GATE_DIGEST_MAX];
    size_t card_hash_len;
    gate_held_t held[GATE_HELD_N];
    bool decipher_chain; /* an approved chained PSO DECIPHER goes on */
    gate_ticket_t ticket;
    bool uploading;
    size_t up_total, up_fill;
    bool announced;
    gate_announce_t ann;
    uint8_t ann_buf[GATE_ANN_MAX];
    gate_outcome_t outcome;
    uint32_t last_receipt;
    gate_text_t text; /* the confirm screen (static: too big for a small stack) */
} gate;

/* ---- small helpers ---- */

static bool gate_english(void)
{
    return ui_lang() == UI_LANG_EN;
}

static icc_status_t gate_answer(uint8_t *rapdu, size_t *rlen, uint16_t sw)
{
    rapdu[0] = (uint8_t)(sw >> 8);
    rapdu[1] = (uint8_t)sw;
    *rlen = 2;
    return ICC_OK;
}

static uint16_t gate_sw_of(const uint8_t *rapdu, size_t rlen)
{
    return rlen >= 2u ? fw_get_be16(rapdu + rlen - 2u) : 0u;
}

/* The card did the operation: 90 00, or 61 xx (data waiting, T=0). */
static bool gate_sw_success(uint16_t sw)
{
    return sw == SW_OK || (sw >> 8) == 0x61u;
}

static void gate_ticket_clear(void)
{
    fw_wipe(&gate.ticket, sizeof gate.ticket);
}

static void gate_announcement_clear(void)
{
    gate.announced = false;
    gate.uploading = false;
    gate.up_total = 0;
    gate.up_fill = 0;
    fw_wipe(&gate.ann, sizeof gate.ann);
    fw_wipe(gate.ann_buf, sizeof gate.ann_buf);
}

/* Decimal of v into buf (at least 11 bytes), NUL-terminated. */
static void gate_u32_text(uint32_t v, char *buf)
{
    char rev[10];
    size_t n = 0;
    do {
        rev[n++] = (char)('0' + v % 10u);
        v /= 10u;
    } while (v != 0 && n < sizeof rev);
    size_t o = 0;
    while (n > 0)
        buf[o++] = rev[--n];
    buf[o] = '\0';
}

static void gate_show_error(const char *fr1, const char *en1, const char *fr2, const char *en2)
{
    bool en = gate_english();
    ui_show_error(en ? en1 : fr1, en ? en2 : fr2);
}

static uint16_t gate_refuse(gate_outcome_t why)
{
    gate.outcome = why;
    if (why == GATE_OUTCOME_MISMATCH)
        gate_show_error("Signature refusée", "Signature refused", "Empreinte différente",
                        "Digest mismatch");
    else
        gate_show_error("Signature refusée", "Signature refused", "Commande refusée",
                        "Command refused");
    return GATE_SW_REFUSED;
}

/* ---- confirmation ---- */

/* Shows the confirm screen for digest d (announced: the announcement's
 * summary; otherwise the key and digest), waits for the practitioner.
 * 0 when confirmed (display = SHA-256 of what was shown), else the SW. */
static uint16_t gate_confirm(bool announced, uint8_t key, const uint8_t *d, size_t n,
                             uint8_t display[CRYPTO_SHA256_LEN])
{
    bool en = gate_english();
    ui_confirm_t c;
    fw_memset(&c, 0, sizeof c);
    if (announced)
        gate_text_announced(&gate.text, &gate.ann, en);
    else
        gate_text_digest(&gate.text, key, d, n, en);
    c.unannounced = !announced && key == GATE_KEY_SIG;
    for (size_t i = 0; i < gate.text.count; i++)
        c.lines[i] = gate.text.line[i];
    c.line_count = gate.text.count;
    gate_text_fingerprint(c.fingerprint, d, n);
    c.timeout_ms = gate.timeout_s * 1000u;
    if (!gate_text_sha256(&gate.text, announced, c.fingerprint, display))
        return gate_refuse(GATE_OUTCOME_REFUSED);
    ui_result_t r = ui_confirm(&c);
    if (r == UI_OK)
        return 0;
    if (announced)
        gate_announcement_clear(); /* the practitioner said no to this content */
    if (r == UI_CANCELLED) {
        gate.outcome = GATE_OUTCOME_CANCELLED;
        gate_show_error("Signature annulée", "Signature cancelled", "", "");
        return GATE_SW_CANCELLED;
    }
    gate.outcome = GATE_OUTCOME_TIMEOUT;
    gate_show_error("Délai dépassé", "Timed out", "", "");
    return GATE_SW_TIMEOUT;
}

/* May the signature key sign digest d? 0 = yes (a ticket holds it), else
 * the status word to answer. Asks the practitioner when needed. */
static uint16_t gate_authorize_sig(const uint8_t *d, size_t n)
{
    gate_ticket_t *t = &gate.ticket;
    if (t->valid && port_time_us() >= t->expires_us)
        gate_ticket_clear();
    if (t->valid) {
        /* Exactly the confirmed digest, nothing else. */
        if (t->len == n && fw_memeq_ct(t->digest, d, n))
            return 0;
        return gate_refuse(GATE_OUTCOME_MISMATCH);
    }
    bool announced = gate.announced;
    if (announced && (n != GATE_ANN_DIGEST_LEN || !fw_memeq_ct(gate.ann.digest, d, n)))
        return gate_refuse(GATE_OUTCOME_MISMATCH);
    uint8_t display[CRYPTO_SHA256_LEN];
    uint16_t sw = gate_confirm(announced, GATE_KEY_SIG, d, n, display);
    if (sw != 0)
        return sw;
    t->valid = true;
    fw_memcpy(t->digest, d, n);
    t->len = n;
    t->from_announcement = announced;
    t->flags = 0;
    if (announced) {
        t->flags |= RECEIPTS_F_ANNOUNCED;
        if (gate.ann.content_checked)
            t->flags |= RECEIPTS_F_CONTENT_CHECKED;
    }
    fw_memcpy(t->display, display, sizeof display);
    t->expires_us = port_time_us() + (uint64_t)gate.timeout_s * 1000000u;
    return 0;
}

/* The card signed: receipt, result screen, the ticket and its announcement are used up. */
static void gate_signed(uint8_t key, const uint8_t *d, size_t n, uint8_t flags,
                        const uint8_t display[CRYPTO_SHA256_LEN])
{
    receipts_event_t ev = {
        .key_ref = key, .flags = flags, .digest = d, .digest_len = n, .display_sha256 = display};
    uint32_t counter = 0;
    bool en = gate_english();
    gate.outcome = GATE_OUTCOME_SIGNED;
    if (receipts_issue(&ev, &counter) == RECEIPTS_OK) {
        gate.last_receipt = counter;
        char line2[24];
        const char *prefix = en ? "Receipt #" : "Reçu n° ";
        size_t o = 0;
        for (; prefix[o] != '\0'; o++)
            line2[o] = prefix[o];
        gate_u32_text(counter, line2 + o);
        ui_show_result(key == GATE_KEY_SIG ? (en ? "Signed" : "Signature effectuée")
                                           : (en ? "Authenticated" : "Authentification OK"),
                       line2);
    } else {
        ui_show_result(en ? "Signed" : "Signature effectuée", en ? "No receipt" : "Pas de reçu");
    }
}

/* ---- the card side ---- */

static icc_status_t gate_forward(const uint8_t *capdu, size_t clen, uint8_t *rapdu, size_t rcap,
                                 size_t *rlen)
{
    return icc_transceive(capdu, clen, rapdu, rcap, rlen);
}

/* Sends a held MSE SET to the card right before the operation it prepares.
 * true: go on; false: *st and rapdu hold what to answer instead. */
static bool gate_replay(size_t slot, uint8_t *rapdu, size_t rcap, size_t *rlen, icc_status_t *st)
{
    gate_held_t *h = &gate.held[slot];
    if (!h->valid)
        return true;
    *st = gate_forward(h->apdu, h->len, rapdu, rcap, rlen);
    if (*st != ICC_OK)
        return false;
    if (gate_sw_of(rapdu, *rlen) != SW_OK) {
        gate.outcome = GATE_OUTCOME_CARD_ERROR;
        h->valid = false;
        return false; /* the card's answer to the MSE is the answer */
    }
    gate_se_t *se = slot == GATE_HELD_DST ? &gate.dst : &gate.at;
    se->state = GATE_SE_KEY;
    se->key = GATE_KEY_SIG;
    h->valid = false;
    *rlen = 0;
    return true;
}

/* The key a CRT names for the next operation: a held MSE wins. */
static gate_se_state_t gate_effective(const gate_se_t *se, size_t slot, uint8_t *key)
{
    if (gate.held[slot].valid) {
        *key = GATE_KEY_SIG;
        return GATE_SE_KEY;
    }
    *key = se->key;
    return se->state;
}

static icc_status_t gate_mse_set(const gate_apdu_t *a, const uint8_t *capdu, size_t clen,
                                 uint8_t *rapdu, size_t rcap, size_t *rlen)
{
    if (a->has_key && a->key == GATE_KEY_SIG) {
        size_t slot;
        if (a->crt == GATE_CRT_DST)
            slot = GATE_HELD_DST;
        else if (a->crt == GATE_CRT_AT)
            slot = GATE_HELD_AT;
        else
            return gate_answer(rapdu, rlen, gate_refuse(GATE_OUTCOME_REFUSED));
        if (clen > GATE_HELD_MAX)
            return gate_answer(rapdu, rlen, SW_WRONG_LENGTH);
        /* Held: the card sees it only once the operation is confirmed. */
        gate_held_t *h = &gate.held[slot];
        fw_memcpy(h->apdu, capdu, clen);
        h->len = clen;
        h->valid = true;
        return gate_answer(rapdu, rlen, SW_OK);
    }
    icc_status_t st = gate_forward(capdu, clen, rapdu, rcap, rlen);
    if (st != ICC_OK || gate_sw_of(rapdu, *rlen) != SW_OK)
        return st; /* the card kept its environment */
    gate_se_t v = {a->has_key ? GATE_SE_KEY : GATE_SE_UNKNOWN, a->key};
    switch (a->crt) {
    case GATE_CRT_DST:
        gate.held[GATE_HELD_DST].valid = false;
        gate.dst = v;
        break;
    case GATE_CRT_AT:
        gate.held[GATE_HELD_AT].valid = false;
        gate.at = v;
        break;
    case GATE_CRT_CT:
        gate.ct = v;
        break;
    case GATE_CRT_HT:
        gate.ht.state = a->has_alg ? GATE_SE_KEY : GATE_SE_UNKNOWN;
        gate.ht.key = a->alg;
        gate.card_hash_valid = false; /* a new HT drops the card's hash */
        break;
    default:
        break;
    }
    return st;
}

static icc_status_t gate_mse_other(const uint8_t *capdu, size_t clen, uint8_t *rapdu, size_t rcap,
                                   size_t *rlen)
{
    icc_status_t st = gate_forward(capdu, clen, rapdu, rcap, rlen);
    /* RESTORE may bring back any environment, with any key: unknown. */
    gate_se_t u = {GATE_SE_UNKNOWN, 0};
    gate.dst = gate.at = gate.ct = gate.ht = u;
    gate.held[GATE_HELD_DST].valid = false;
    gate.held[GATE_HELD_AT].valid = false;
    gate.card_hash_valid = false;
    return st;
}

/* Runs a confirmed signature-key operation: held MSE, then the command. */
static icc_status_t gate_run_sig(size_t slot, const uint8_t *capdu, size_t clen, uint8_t *rapdu,
                                 size_t rcap, size_t *rlen, bool *success)
{
    icc_status_t st = ICC_OK;
    *success = false;
    if (!gate_replay(slot, rapdu, rcap, rlen, &st))
        return st;
    st = gate_forward(capdu, clen, rapdu, rcap, rlen);
    if (st != ICC_OK)
        return st;
    *success = gate_sw_success(gate_sw_of(rapdu, *rlen));
    if (!*success)
        gate.outcome = GATE_OUTCOME_CARD_ERROR;
    return st;
}

static void gate_sig_done(void)
{
    gate_ticket_t t = gate.ticket;
    gate_ticket_clear();
    if (t.from_announcement)
        gate_announcement_clear();
    gate.card_hash_valid = false;
    gate_signed(GATE_KEY_SIG, t.digest, t.len, t.flags, t.display);
    fw_wipe(&t, sizeof t);
}

/* PSO COMPUTE DIGITAL SIGNATURE (ISO/IEC 7816-8 §5.4). */
static icc_status_t gate_pso_cds(const gate_apdu_t *a, const uint8_t *capdu, size_t clen,
                                 uint8_t *rapdu, size_t rcap, size_t *rlen)
{
    uint8_t key = 0;
    gate_se_state_t s = gate_effective(&gate.dst, GATE_HELD_DST, &key);
    if (s == GATE_SE_NONE || (s == GATE_SE_KEY && key != GATE_KEY_SIG))
        return gate_forward(capdu, clen, rapdu, rcap, rlen); /* not the signature key */
    const uint8_t *d;
    size_t n;
    if (a->lc > 0) {
        if (a->lc != 20u && a->lc != 32u)
            return gate_answer(rapdu, rlen, SW_WRONG_DATA); /* SHA-1 or SHA-256 only */
        d = a->data;
        n = a->lc;
    } else {
        if (!gate.card_hash_valid)
            return gate_answer(rapdu, rlen, gate_refuse(GATE_OUTCOME_REFUSED));
        d = gate.card_hash;
        n = gate.card_hash_len;
    }
    uint16_t sw = gate_authorize_sig(d, n);
    if (sw != 0)
        return gate_answer(rapdu, rlen, sw);
    bool ok = false;
    icc_status_t st = gate_run_sig(GATE_HELD_DST, capdu, clen, rapdu, rcap, rlen, &ok);
    if (st == ICC_OK && ok)
        gate_sig_done();
    return st;
}

/* The digest a PSO HASH leaves in the card (cpx-card.md §10.3), computed by
 * the gate itself. 0 or the status word refusing the command. */
static uint16_t gate_hash_of(const gate_apdu_t *a, uint8_t *d, size_t *n)
{
    if (gate.ht.state != GATE_SE_KEY)
        return gate_refuse(GATE_OUTCOME_REFUSED);
    size_t hl = gate.ht.key == GATE_ALG_SHA256 ? 32u : gate.ht.key == GATE_ALG_SHA1 ? 20u : 0u;
    if (hl == 0)
        return gate_refuse(GATE_OUTCOME_REFUSED);
    *n = hl;
    if (a->has_state && a->state_len == hl && !a->has_msg) {
        fw_memcpy(d, a->state, hl); /* 90 hl hash: the final hash itself */
        return 0;
    }
    if (hl != 32u)
        return gate_refuse(GATE_OUTCOME_REFUSED); /* no SHA-1 engine: cannot check */
    const uint8_t *msg = a->has_msg ? a->msg : NULL;
    size_t msg_len = a->has_msg ? a->msg_len : 0;
    if (a->has_state && a->state_len == hl + 8u) {
        /* 90 28 state || bit counter, 80 L last block: finish it here. */
        uint64_t bits =
            (uint64_t)fw_get_be32(a->state + hl) << 32 | fw_get_be32(a->state + hl + 4u);
        if (crypto_sha256_finish_from(a->state, bits, msg, msg_len, d) != CRYPTO_OK)
            return SW_WRONG_DATA;
        return 0;
    }
    if ((!a->has_state || a->state_len == 0) && a->has_msg) {
        /* 90 00 80 L message: the whole message. */
        if (crypto_sha256(msg, msg_len, d) != CRYPTO_OK)
            return gate_refuse(GATE_OUTCOME_REFUSED);
        return 0;
    }
    return SW_WRONG_DATA;
}

/* PSO HASH (ISO/IEC 7816-8 §5.2): prepares a signature with the key of the
 * DST, which on a CPS3 can only be the signature key. */
static icc_status_t gate_pso_hash(const gate_apdu_t *a, const uint8_t *capdu, size_t clen,
                                  uint8_t *rapdu, size_t rcap, size_t *rlen)
{
    uint8_t d[GATE_DIGEST_MAX];
    size_t n = 0;
    uint16_t sw = gate_hash_of(a, d, &n);
    if (sw == 0)
        sw = gate_authorize_sig(d, n);
    if (sw != 0) {
        fw_wipe(d, sizeof d);
        return gate_answer(rapdu, rlen, sw);
    }
    icc_status_t st = ICC_OK;
    gate.card_hash_valid = false;
    if (!gate_replay(GATE_HELD_DST, rapdu, rcap, rlen, &st)) {
        fw_wipe(d, sizeof d);
        return st;
    }
    st = gate_forward(capdu, clen, rapdu, rcap, rlen);
    if (st == ICC_OK && gate_sw_of(rapdu, *rlen) == SW_OK) {
        fw_memcpy(gate.card_hash, d, n);
        gate.card_hash_len = n;
        gate.card_hash_valid = true;
    }
    fw_wipe(d, sizeof d);
    return st;
}

/* What INTERNAL AUTHENTICATE signs: the hash inside a DigestInfo(SHA-256)
 * (RFC 8017 §9.2 note 1), else SHA-256 of the raw data. */
static bool gate_int_auth_digest(const gate_apdu_t *a, uint8_t d[32])
{
    static const uint8_t di[19] = {0x30, 0x31, 0x30, 0x0D, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01,
                                   0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20};
    if (a->lc == sizeof di + 32u && fw_memeq_ct(a->data, di, sizeof di)) {
        fw_memcpy(d, a->data + sizeof di, 32u);
        return true;
    }
    return crypto_sha256(a->data, a->lc, d) == CRYPTO_OK;
}

/* A use of the authentication key under the host's policy: confirmed (and
 * receipted) when the policy asks for it. */
static icc_status_t gate_auth_use(const gate_apdu_t *a, const uint8_t *capdu, size_t clen,
                                  uint8_t *rapdu, size_t rcap, size_t *rlen)
{
    if (gate.auth_policy != GATE_AUTH_CONFIRM)
        return gate_forward(capdu, clen, rapdu, rcap, rlen);
    uint8_t d[32], display[CRYPTO_SHA256_LEN];
    if (!gate_int_auth_digest(a, d))
        return gate_answer(rapdu, rlen, gate_refuse(GATE_OUTCOME_REFUSED));
    uint16_t sw = gate_confirm(false, GATE_KEY_AUT, d, sizeof d, display);
    if (sw != 0)
        return gate_answer(rapdu, rlen, sw);
    icc_status_t st = gate_forward(capdu, clen, rapdu, rcap, rlen);
    if (st == ICC_OK && gate_sw_success(gate_sw_of(rapdu, *rlen))) {
        if (a->ins == 0x2Au && a->chained)
            gate.decipher_chain = true;
        gate_signed(GATE_KEY_AUT, d, sizeof d, 0, display);
    }
    fw_wipe(d, sizeof d);
    return st;
}

/* INTERNAL AUTHENTICATE (ISO/IEC 7816-4 §7.5.2) with the AT key. */
static icc_status_t gate_int_auth(const gate_apdu_t *a, const uint8_t *capdu, size_t clen,
                                  uint8_t *rapdu, size_t rcap, size_t *rlen)
{
    uint8_t key = 0;
    gate_se_state_t s = gate_effective(&gate.at, GATE_HELD_AT, &key);
    if (s == GATE_SE_KEY && key == GATE_KEY_AUT)
        return gate_auth_use(a, capdu, clen, rapdu, rcap, rlen);
    if (s == GATE_SE_NONE || (s == GATE_SE_KEY && key != GATE_KEY_SIG))
        return gate_forward(capdu, clen, rapdu, rcap, rlen);
    /* The signature key (or an environment the gate cannot tell). */
    uint8_t d[32];
    if (!gate_int_auth_digest(a, d))
        return gate_answer(rapdu, rlen, gate_refuse(GATE_OUTCOME_REFUSED));
    uint16_t sw = gate_authorize_sig(d, sizeof d);
    fw_wipe(d, sizeof d);
    if (sw != 0)
        return gate_answer(rapdu, rlen, sw);
    bool ok = false;
    icc_status_t st = gate_run_sig(GATE_HELD_AT, capdu, clen, rapdu, rcap, rlen, &ok);
    if (st == ICC_OK && ok)
        gate_sig_done();
    return st;
}

/* PSO DECIPHER (ISO/IEC 7816-8 §5.9): the authentication key's other use. */
static icc_status_t gate_decipher(const gate_apdu_t *a, const uint8_t *capdu, size_t clen,
                                  uint8_t *rapdu, size_t rcap, size_t *rlen)
{
    if (gate.decipher_chain) {
        /* The rest of a chain whose first block was confirmed. */
        gate.decipher_chain = a->chained;
        return gate_forward(capdu, clen, rapdu, rcap, rlen);
    }
    return gate_auth_use(a, capdu, clen, rapdu, rcap, rlen);
}

/* ---- public API ---- */

void gate_init(void)
{
    fw_wipe(&gate, sizeof gate);
    gate.timeout_s = GATE_TIMEOUT_DEFAULT_S;
    gate.auth_policy = GATE_AUTH_FREE;
}

void gate_card_reset(void)
{
    gate_se_t none = {GATE_SE_NONE, 0};
    gate.dst = gate.at = gate.ct = gate.ht = none;
    fw_wipe(gate.held, sizeof gate.held);
    gate.card_hash_valid = false;
    fw_wipe(gate.card_hash, sizeof gate.card_hash);
    gate.decipher_chain = false;
    gate_ticket_clear();
    gate_announcement_clear();
}

icc_status_t gate_transceive(const uint8_t *capdu, size_t clen, uint8_t *rapdu, size_t rcap,
                             size_t *rlen)
{
    FW_VERIFY(rapdu != NULL && rlen != NULL && rcap >= 2u, ICC_ERR_BAD_PARAM);
    *rlen = 0;
    gate_apdu_t a;
    gate_apdu_parse(capdu, clen, &a);
    if (a.kind != GATE_APDU_PSO_DECIPHER)
        gate.decipher_chain = false;
    switch (a.kind) {
    case GATE_APDU_PASS:
        return gate_forward(capdu, clen, rapdu, rcap, rlen);
    case GATE_APDU_REFUSE:
        gate.outcome = GATE_OUTCOME_REFUSED;
        return gate_answer(rapdu, rlen, a.refuse_sw);
    case GATE_APDU_MSE_SET:
        return gate_mse_set(&a, capdu, clen, rapdu, rcap, rlen);
    case GATE_APDU_MSE_OTHER:
        return gate_mse_other(capdu, clen, rapdu, rcap, rlen);
    case GATE_APDU_PSO_HASH:
        return gate_pso_hash(&a, capdu, clen, rapdu, rcap, rlen);
    case GATE_APDU_PSO_CDS:
        return gate_pso_cds(&a, capdu, clen, rapdu, rcap, rlen);
    case GATE_APDU_INT_AUTH:
        return gate_int_auth(&a, capdu, clen, rapdu, rcap, rlen);
    case GATE_APDU_PSO_DECIPHER:
        return gate_decipher(&a, capdu, clen, rapdu, rcap, rlen);
    default:
        fw_bug(__FILE__, __LINE__);
        return gate_answer(rapdu, rlen, GATE_SW_REFUSED);
    }
}

/* ---- configuration and status (gate_escape.c) ---- */

uint32_t gate_timeout_s(void)
{
    return gate.timeout_s;
}

bool gate_set_timeout_s(uint32_t s)
{
    FW_VERIFY(s >= GATE_TIMEOUT_MIN_S && s <= GATE_TIMEOUT_MAX_S, false);
    gate.timeout_s = s;
    return true;
}

gate_auth_policy_t gate_auth_policy(void)
{
    return gate.auth_policy;
}

bool gate_set_auth_policy(uint8_t policy)
{
    FW_VERIFY(policy == GATE_AUTH_FREE || policy == GATE_AUTH_CONFIRM, false);
    gate.auth_policy = (gate_auth_policy_t)policy;
    return true;
}

gate_outcome_t gate_last_outcome(void)
{
    return gate.outcome;
}

uint32_t gate_last_receipt(void)
{
    return gate.last_receipt;
}

uint8_t gate_status_flags(void)
{
    uint8_t f = 0;
    if (gate.announced)
        f |= GATE_STATUS_ANNOUNCED;
    if (gate.ticket.valid && port_time_us() < gate.ticket.expires_us)
        f |= GATE_STATUS_CONFIRMED;
    if (gate.uploading)
        f |= GATE_STATUS_UPLOADING;
    return f;
}

/* ---- the announcement upload (ANNOUNCE_BEGIN / DATA / END) ---- */

gate_st_t gate_ann_begin(size_t total)
{
    gate_announcement_clear(); /* a new announcement replaces the old one */
    FW_VERIFY(total > 0 && total <= GATE_ANN_MAX, GATE_ST_LENGTH);
    gate.uploading = true;
    gate.up_total = total;
    gate.up_fill = 0;
    return GATE_ST_OK;
}

gate_st_t gate_ann_data(size_t off, const uint8_t *p, size_t n)
{
    FW_VERIFY(gate.uploading, GATE_ST_STATE);
    FW_VERIFY(off == gate.up_fill, GATE_ST_STATE); /* in order, no holes */
    FW_VERIFY(n > 0 && fw_range_ok(off, n, gate.up_total), GATE_ST_LENGTH);
    fw_memcpy(gate.ann_buf + off, p, n);
    gate.up_fill = off + n;
    return GATE_ST_OK;
}

gate_st_t gate_ann_end(uint8_t digest[GATE_ANN_DIGEST_LEN])
{
    FW_VERIFY(gate.uploading && gate.up_fill == gate.up_total, GATE_ST_STATE);
    gate.uploading = false;
    gate_ann_status_t st = gate_announce_parse(gate.ann_buf, gate.up_total, &gate.ann);
    if (st != GATE_ANN_OK) {
        gate_announcement_clear();
        return st == GATE_ANN_ERR_LENGTH   ? GATE_ST_LENGTH
               : st == GATE_ANN_ERR_DIGEST ? GATE_ST_DIGEST
                                           : GATE_ST_FORMAT;
    }
    gate.announced = true;
    fw_memcpy(digest, gate.ann.digest, GATE_ANN_DIGEST_LEN);
    return GATE_ST_OK;
}

void gate_ann_clear(void)
{
    gate_announcement_clear();
}
