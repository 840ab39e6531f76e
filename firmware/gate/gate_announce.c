/* gate_announce: see gate_announce.h. */
#include "gate_announce.h"

#include "crypto.h"
#include "fw_util.h"

/* id-messageDigest 1.2.840.113549.1.9.4 (RFC 5652 §11.2), content octets. */
static const uint8_t gate_oid_message_digest[9] = {0x2A, 0x86, 0x48, 0x86, 0xF7,
                                                   0x0D, 0x01, 0x09, 0x04};

bool gate_utf8_displayable(const uint8_t *s, size_t len)
{
    for (size_t i = 0; i < len;) {
        uint8_t b = s[i];
        if (b < 0x80u) {
            if (b < 0x20u || b == 0x7Fu)
                return false;
            i++;
            continue;
        }
        size_t n;
        uint32_t cp;
        if (b >= 0xC2u && b <= 0xDFu) {
            n = 2;
            cp = b & 0x1Fu;
        } else if (b >= 0xE0u && b <= 0xEFu) {
            n = 3;
            cp = b & 0x0Fu;
        } else if (b >= 0xF0u && b <= 0xF4u) {
            n = 4;
            cp = b & 0x07u;
        } else {
            return false;
        }
        if (len - i < n)
            return false;
        for (size_t k = 1; k < n; k++) {
            if ((s[i + k] & 0xC0u) != 0x80u)
                return false;
            cp = cp << 6 | (s[i + k] & 0x3Fu);
        }
        if ((n == 3 && cp < 0x800u) || (n == 4 && (cp < 0x10000u || cp > 0x10FFFFu)))
            return false; /* overlong or beyond Unicode */
        if (cp >= 0xD800u && cp <= 0xDFFFu)
            return false; /* surrogates */
        if (cp >= 0x80u && cp <= 0x9Fu)
            return false; /* C1 controls */
        i += n;
    }
    return true;
}

/* One DER element (X.690 §10.1: definite, shortest length) at d[*pos]; the
 * tag must be want. Its content is [*c, *c + *cl); *pos moves past it. */
static bool gate_der(const uint8_t *d, size_t n, size_t *pos, uint8_t want, size_t *c, size_t *cl)
{
    size_t i = *pos;
    if (i >= n || n - i < 2u || d[i] != want)
        return false;
    i++;
    size_t l = d[i++];
    if (l & 0x80u) {
        size_t k = l & 0x7Fu;
        if (k == 0 || k > 2u || n - i < k)
            return false; /* indefinite, or longer than we accept */
        l = 0;
        for (size_t j = 0; j < k; j++)
            l = l << 8 | d[i + j];
        i += k;
        if (l < 0x80u || (k == 2u && l < 0x100u))
            return false; /* not the shortest form */
    }
    if (l > n - i)
        return false;
    *c = i;
    *cl = l;
    *pos = i + l;
    return true;
}

bool gate_signed_attrs_message_digest(const uint8_t *der, size_t len, const uint8_t **md,
                                      size_t *md_len)
{
    size_t pos = 0, set_c, set_l;
    if (der == NULL || !gate_der(der, len, &pos, 0x31u, &set_c, &set_l) || pos != len)
        return false;
    const uint8_t *found = NULL;
    size_t found_len = 0;
    size_t end = set_c + set_l;
    for (size_t a = set_c; a < end;) {
        size_t attr_c, attr_l;
        if (!gate_der(der, end, &a, 0x30u, &attr_c, &attr_l))
            return false;
        size_t attr_end = attr_c + attr_l, p = attr_c, oid_c, oid_l, vals_c, vals_l;
        if (!gate_der(der, attr_end, &p, 0x06u, &oid_c, &oid_l) ||
            !gate_der(der, attr_end, &p, 0x31u, &vals_c, &vals_l) || p != attr_end)
            return false;
        if (oid_l != sizeof gate_oid_message_digest ||
            !fw_memeq_ct(der + oid_c, gate_oid_message_digest, oid_l))
            continue;
        if (found != NULL)
            return false; /* §11.2: exactly one messageDigest attribute */
        size_t v = vals_c, os_c, os_l;
        if (!gate_der(der, vals_c + vals_l, &v, 0x04u, &os_c, &os_l) || v != vals_c + vals_l)
            return false; /* ... with exactly one OCTET STRING value */
        found = der + os_c;
        found_len = os_l;
    }
    if (found == NULL)
        return false;
    *md = found;
    *md_len = found_len;
    return true;
}

gate_ann_status_t gate_announce_parse(const uint8_t *msg, size_t len, gate_announce_t *out)
{
    fw_memset(out, 0, sizeof *out);
    FW_VERIFY(msg != NULL && len <= GATE_ANN_MAX, GATE_ANN_ERR_LENGTH);
    bool has_from = false, has_sattrs = false, has_sdigest = false;
    const uint8_t *sdigest = NULL;
    for (size_t i = 0; i < len;) {
        FW_VERIFY(len - i >= 3u, GATE_ANN_ERR_LENGTH);
        uint8_t tag = msg[i];
        size_t l = fw_get_be16(msg + i + 1u);
        FW_VERIFY(l <= len - i - 3u, GATE_ANN_ERR_LENGTH);
        const uint8_t *v = msg + i + 3u;
        i += 3u + l;
        switch (tag) {
        case GATE_ANN_FROM:
            FW_VERIFY(!has_from, GATE_ANN_ERR_FORMAT);
            FW_VERIFY(l >= 1u && l <= GATE_ANN_TEXT_MAX, GATE_ANN_ERR_LENGTH);
            FW_VERIFY(gate_utf8_displayable(v, l), GATE_ANN_ERR_FORMAT);
            out->from = (gate_span_t){v, l};
            has_from = true;
            break;
        case GATE_ANN_TO:
            FW_VERIFY(out->to_count < GATE_ANN_TO_MAX, GATE_ANN_ERR_LENGTH);
            FW_VERIFY(l >= 1u && l <= GATE_ANN_TEXT_MAX, GATE_ANN_ERR_LENGTH);
            FW_VERIFY(gate_utf8_displayable(v, l), GATE_ANN_ERR_FORMAT);
            out->to[out->to_count++] = (gate_span_t){v, l};
            break;
        case GATE_ANN_SUBJECT:
            FW_VERIFY(!out->has_subject, GATE_ANN_ERR_FORMAT);
            FW_VERIFY(l <= GATE_ANN_SUBJECT_MAX, GATE_ANN_ERR_LENGTH);
            FW_VERIFY(gate_utf8_displayable(v, l), GATE_ANN_ERR_FORMAT);
            out->subject = (gate_span_t){v, l};
            out->has_subject = true;
            break;
        case GATE_ANN_ATTACHMENT:
            FW_VERIFY(out->att_count < GATE_ANN_ATT_MAX, GATE_ANN_ERR_LENGTH);
            FW_VERIFY(l >= 5u && l - 4u <= GATE_ANN_TEXT_MAX, GATE_ANN_ERR_LENGTH);
            FW_VERIFY(gate_utf8_displayable(v + 4, l - 4u), GATE_ANN_ERR_FORMAT);
            out->att_size[out->att_count] = fw_get_be32(v);
            out->att_name[out->att_count++] = (gate_span_t){v + 4, l - 4u};
            break;
        case GATE_ANN_CONTENT:
            FW_VERIFY(out->content_digest == NULL, GATE_ANN_ERR_FORMAT);
            FW_VERIFY(l == GATE_ANN_DIGEST_LEN, GATE_ANN_ERR_LENGTH);
            out->content_digest = v;
            break;
        case GATE_ANN_SIGNED_ATTRS:
            FW_VERIFY(!has_sattrs && !has_sdigest, GATE_ANN_ERR_FORMAT);
            FW_VERIFY(l >= 1u && l <= GATE_ANN_SATTRS_MAX, GATE_ANN_ERR_LENGTH);
            out->signed_attrs = (gate_span_t){v, l};
            has_sattrs = true;
            break;
        case GATE_ANN_SIGNED_DIGEST:
            FW_VERIFY(!has_sattrs && !has_sdigest, GATE_ANN_ERR_FORMAT);
            FW_VERIFY(l == GATE_ANN_DIGEST_LEN, GATE_ANN_ERR_LENGTH);
            sdigest = v;
            has_sdigest = true;
            break;
        default:
            return GATE_ANN_ERR_FORMAT; /* deny by default: unknown field */
        }
    }
    FW_VERIFY(has_from && out->to_count > 0 && out->content_digest != NULL, GATE_ANN_ERR_FORMAT);
    FW_VERIFY(has_sattrs || has_sdigest, GATE_ANN_ERR_FORMAT);
    if (has_sdigest) {
        /* A digest to sign as such: the appliance cannot check the content. */
        fw_memcpy(out->digest, sdigest, GATE_ANN_DIGEST_LEN);
        out->content_checked = false;
        return GATE_ANN_OK;
    }
    const uint8_t *md = NULL;
    size_t md_len = 0;
    if (!gate_signed_attrs_message_digest(out->signed_attrs.p, out->signed_attrs.len, &md, &md_len))
        return GATE_ANN_ERR_DIGEST;
    if (md_len != GATE_ANN_DIGEST_LEN || !fw_memeq_ct(md, out->content_digest, md_len))
        return GATE_ANN_ERR_DIGEST;
    if (crypto_sha256(out->signed_attrs.p, out->signed_attrs.len, out->digest) != CRYPTO_OK)
        return GATE_ANN_ERR_FORMAT;
    out->content_checked = true;
    return GATE_ANN_OK;
}
