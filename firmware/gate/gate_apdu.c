/* gate_apdu: see gate_apdu.h. */
#include "gate_apdu.h"

#include "fw_util.h"

#define SW_WRONG_LENGTH           0x6700u
#define SW_SM_NOT_SUPPORTED       0x6882u
#define SW_CHAINING_NOT_SUPPORTED 0x6884u
#define SW_CONDITIONS             0x6985u
#define SW_WRONG_DATA             0x6A80u
#define SW_INS_NOT_SUPPORTED      0x6D00u

#define GATE_CAPDU_MAX 261u

static gate_apdu_kind_t gate_refuse(gate_apdu_t *a, uint16_t sw)
{
    a->kind = GATE_APDU_REFUSE;
    a->refuse_sw = sw;
    return a->kind;
}

/* Which instructions involve a private key (or could hide one). */
static bool gate_is_key_ins(uint8_t ins, uint8_t p1, uint8_t p2)
{
    switch (ins) {
    case 0x22: /* MANAGE SECURITY ENVIRONMENT */
    case 0x88: /* INTERNAL AUTHENTICATE */
    case 0x86: /* GENERAL AUTHENTICATE */
    case 0x87:
    case 0xC2: /* ENVELOPE: a command inside another one */
    case 0xC3:
        return true;
    case 0x2A: { /* PERFORM SECURITY OPERATION: the private-key ones */
        uint16_t p = (uint16_t)(p1 << 8 | p2);
        return p == 0x9E9Au || p == 0x90A0u || p == 0x8086u;
    }
    default:
        return false;
    }
}

/* ISO/IEC 7816-4 §5.1: short APDU cases 1-4 (extended lengths are not used
 * on a CPS3: cpx-card.md §15). False when the length bytes do not add up. */
static bool gate_split(const uint8_t *c, size_t len, gate_apdu_t *a)
{
    if (len == 4)
        return true;
    if (len == 5) {
        a->has_le = true;
        return true;
    }
    size_t lc = c[4];
    if (lc == 0)
        return false; /* extended length */
    if (len == 5u + lc) {
        a->data = c + 5;
        a->lc = lc;
        return true;
    }
    if (len == 6u + lc) {
        a->data = c + 5;
        a->lc = lc;
        a->has_le = true;
        return true;
    }
    return false;
}

/* MSE SET data: 80 (algorithm), 83/84 (key), 95 (usage qualifier) with
 * one-byte lengths, each at most once (what an IAS-ECC card accepts). */
static bool gate_parse_mse(gate_apdu_t *a)
{
    bool seen95 = false;
    for (size_t i = 0; i < a->lc;) {
        if (a->lc - i < 2u)
            return false;
        uint8_t t = a->data[i], l = a->data[i + 1u];
        if (l > a->lc - i - 2u)
            return false;
        const uint8_t *v = a->data + i + 2u;
        switch (t) {
        case 0x80:
            if (l != 1u || a->has_alg)
                return false;
            a->has_alg = true;
            a->alg = v[0];
            break;
        case 0x83:
        case 0x84:
            if (l != 1u || a->has_key)
                return false;
            a->has_key = true;
            a->key = v[0];
            break;
        case 0x95:
            if (seen95)
                return false;
            seen95 = true;
            break;
        default:
            return false;
        }
        i += 2u + (size_t)l;
    }
    return true;
}

/* One BER-TLV with a one-byte tag and a 1..3-byte length (ISO/IEC 7816-4
 * §5.2.2.2), as the card reads PSO HASH data. */
static bool gate_read_tlv(const uint8_t *d, size_t n, size_t *pos, uint8_t *tag, const uint8_t **v,
                          size_t *vl)
{
    size_t i = *pos;
    if (n - i < 2u)
        return false;
    *tag = d[i++];
    size_t l = d[i++];
    if (l == 0x81u) {
        if (n - i < 1u)
            return false;
        l = d[i++];
    } else if (l == 0x82u) {
        if (n - i < 2u)
            return false;
        l = (size_t)d[i] << 8 | d[i + 1u];
        i += 2u;
    } else if (l > 0x80u) {
        return false;
    }
    if (l > n - i)
        return false;
    *v = d + i;
    *vl = l;
    *pos = i + l;
    return true;
}

static bool gate_parse_pso_hash(gate_apdu_t *a)
{
    for (size_t pos = 0; pos < a->lc;) {
        uint8_t tag;
        const uint8_t *v;
        size_t vl;
        if (!gate_read_tlv(a->data, a->lc, &pos, &tag, &v, &vl))
            return false;
        if (tag == 0x90u && !a->has_state) {
            a->has_state = true;
            a->state = v;
            a->state_len = vl;
        } else if (tag == 0x80u && !a->has_msg) {
            a->has_msg = true;
            a->msg = v;
            a->msg_len = vl;
        } else {
            return false;
        }
    }
    return a->has_state || a->has_msg;
}

gate_apdu_kind_t gate_apdu_parse(const uint8_t *capdu, size_t len, gate_apdu_t *out)
{
    fw_memset(out, 0, sizeof *out);
    out->kind = GATE_APDU_PASS;
    if (capdu == NULL || len < 4u || len > GATE_CAPDU_MAX) {
        /* icc refuses it; but a key command must never slip through. */
        if (capdu != NULL && len >= 2u && len > GATE_CAPDU_MAX)
            return gate_refuse(out, SW_WRONG_LENGTH);
        if (capdu != NULL && len >= 2u && gate_is_key_ins(capdu[1], 0x9E, 0x9A))
            return gate_refuse(out, SW_WRONG_LENGTH);
        return out->kind;
    }
    out->cla = capdu[0];
    out->ins = capdu[1];
    out->p1 = capdu[2];
    out->p2 = capdu[3];
    if (!gate_is_key_ins(out->ins, out->p1, out->p2))
        return out->kind; /* PASS */
    /* From here on the command involves a key: read it exactly or refuse. */
    if (out->cla == 0xFFu)
        return gate_refuse(out, SW_CONDITIONS); /* not a card command */
    if ((out->cla & 0x80u) == 0 && (out->cla & 0x0Cu) != 0)
        return gate_refuse(out, SW_SM_NOT_SUPPORTED); /* secure messaging: opaque */
    out->chained = (out->cla & 0x80u) == 0 && (out->cla & 0x10u) != 0;
    if (!gate_split(capdu, len, out))
        return gate_refuse(out, SW_WRONG_LENGTH);

    switch (out->ins) {
    case 0x22:
        if (out->chained)
            return gate_refuse(out, SW_CHAINING_NOT_SUPPORTED);
        if ((out->p1 & 0x0Fu) != 0x01u) {
            out->kind = GATE_APDU_MSE_OTHER; /* RESTORE (F3), STORE, ERASE */
            return out->kind;
        }
        out->crt = out->p2;
        if (!gate_parse_mse(out))
            return gate_refuse(out, SW_WRONG_DATA);
        out->kind = GATE_APDU_MSE_SET;
        return out->kind;
    case 0x88:
        if (out->chained)
            return gate_refuse(out, SW_CHAINING_NOT_SUPPORTED);
        out->kind = GATE_APDU_INT_AUTH;
        return out->kind;
    case 0x2A:
        if (out->p1 == 0x80u) { /* DECIPHER: long cryptograms come chained */
            out->kind = GATE_APDU_PSO_DECIPHER;
            return out->kind;
        }
        if (out->chained)
            return gate_refuse(out, SW_CHAINING_NOT_SUPPORTED);
        if (out->p1 == 0x90u) {
            if (!gate_parse_pso_hash(out))
                return gate_refuse(out, SW_WRONG_DATA);
            out->kind = GATE_APDU_PSO_HASH;
            return out->kind;
        }
        out->kind = GATE_APDU_PSO_CDS;
        return out->kind;
    default: /* ENVELOPE, GENERAL AUTHENTICATE: the gate cannot see inside */
        return gate_refuse(out, SW_INS_NOT_SUPPORTED);
    }
}
