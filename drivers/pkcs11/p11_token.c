/* p11_token: objects and attributes (p11_token.h). Attribute sets follow
 * PKCS#11 v2.40 §4.4 (storage objects), §4.6 (X.509 certificates), §4.8/4.9
 * (public/private keys) and §2.1 of the Current Mechanisms spec (RSA keys). */
#include "p11_token.h"

#include <string.h>

static const CK_BBOOL v_true = CK_TRUE;
static const CK_BBOOL v_false = CK_FALSE;

void p11_pad(unsigned char *dst, size_t cap, const char *src)
{
    memset(dst, ' ', cap);
    char tmp[P11_TEXT_MAX + 1];
    p11_copy_text(tmp, cap + 1 <= sizeof tmp ? cap + 1 : sizeof tmp, src);
    memcpy(dst, tmp, strlen(tmp));
}

void p11_token_label(const p11_identity_t *id, const char *serial, unsigned char label[32])
{
    char text[2 * P11_TEXT_MAX + 8];
    text[0] = '\0';
    if (id != NULL && (id->surname[0] != '\0' || id->given_name[0] != '\0')) {
        /* French usage and the card's own order: SURNAME Given name. */
        size_t a = strlen(id->surname), b = strlen(id->given_name);
        memcpy(text, id->surname, a);
        size_t n = a;
        if (a > 0 && b > 0)
            text[n++] = ' ';
        memcpy(text + n, id->given_name, b);
        text[n + b] = '\0';
    } else {
        const char *s = serial != NULL ? serial : "";
        size_t sl = strlen(s);
        if (sl > 16)
            s += sl - 16;
        memcpy(text, "CPS ", 4);
        memcpy(text + 4, s, strlen(s) + 1);
    }
    p11_pad(label, 32, text);
}

void p11_token_serial(const char *serial, unsigned char out[16])
{
    /* CK_TOKEN_INFO.serialNumber holds 16 characters; a CPS serial (EF.SN,
     * spec/cpx-card.md) has 20 digits whose distinctive part is the end. */
    const char *s = serial != NULL ? serial : "";
    size_t n = strlen(s);
    if (n > 16)
        s += n - 16;
    p11_pad(out, 16, s);
}

/* ---- building -------------------------------------------------------------- */

static void add(p11_object_t *o, CK_ATTRIBUTE_TYPE type, const void *value, size_t len)
{
    if (o->nattr >= P11_ATTRS_MAX)
        return; /* _Static_assert-like: the sets below fit, see P11_ATTRS_MAX */
    o->attr[o->nattr].type = type;
    o->attr[o->nattr].value = value;
    o->attr[o->nattr].len = (CK_ULONG)len;
    o->nattr++;
}

static void add_bool(p11_object_t *o, CK_ATTRIBUTE_TYPE type, bool v)
{
    add(o, type, v ? &v_true : &v_false, sizeof(CK_BBOOL));
}

/* §4.4 storage object attributes, all read-only token objects. */
static void add_storage(p11_object_t *o, const char *label, bool private_obj)
{
    o->v_class = o->cls;
    add(o, CKA_CLASS, &o->v_class, sizeof o->v_class);
    add_bool(o, CKA_TOKEN, true);
    add_bool(o, CKA_PRIVATE, private_obj);
    add_bool(o, CKA_MODIFIABLE, false);
    add_bool(o, CKA_COPYABLE, false);
    add_bool(o, CKA_DESTROYABLE, false);
    add(o, CKA_LABEL, label, strlen(label));
    o->private_obj = private_obj;
}

static void add_id(p11_object_t *o, const p11_token_t *t, size_t cert)
{
    add(o, CKA_ID, t->certs.cert[cert].id, t->certs.cert[cert].id_len);
}

static void build_cert(p11_token_t *t, size_t i)
{
    const p11_cert_t *c = &t->certs.cert[i];
    const p11_cert_fields_t *f = &t->fields[i];
    p11_object_t *o = &t->obj[t->nobj++];
    memset(o, 0, sizeof *o);
    o->cls = CKO_CERTIFICATE;
    o->role = c->role;
    o->cert = i;
    add_storage(o, c->label, false);
    add_id(o, t, i);
    o->v_cert_type = CKC_X_509;
    add(o, CKA_CERTIFICATE_TYPE, &o->v_cert_type, sizeof o->v_cert_type);
    /* The issuing CA the card carries is flagged as OpenSC flags PKCS#15
     * authority certificates: GnuTLS then finds it to complete the chain a
     * client sends (it looks up issuers among trusted objects). Trust anchors
     * stay the verifier's own (the module is not a p11-kit trust source). */
    add_bool(o, CKA_TRUSTED, c->role == P11_ROLE_CA);
    /* §4.6.2: 1 = token user, 2 = authority. */
    o->v_category = c->role == P11_ROLE_CA ? 2 : 1;
    add(o, CKA_CERTIFICATE_CATEGORY, &o->v_category, sizeof o->v_category);
    add(o, CKA_VALUE, c->der, c->der_len);
    add(o, CKA_SUBJECT, c->der + f->subject.off, f->subject.len);
    add(o, CKA_ISSUER, c->der + f->issuer.off, f->issuer.len);
    add(o, CKA_SERIAL_NUMBER, c->der + f->serial.off, f->serial.len);
    add(o, CKA_PUBLIC_KEY_INFO, c->der + f->spki.off, f->spki.len);
    add(o, CKA_START_DATE, "", 0);
    add(o, CKA_END_DATE, "", 0);
    add(o, CKA_URL, "", 0);
    add(o, CKA_HASH_OF_SUBJECT_PUBLIC_KEY, "", 0);
    add(o, CKA_HASH_OF_ISSUER_PUBLIC_KEY, "", 0);
    o->v_zero = 0;
    add(o, CKA_JAVA_MIDP_SECURITY_DOMAIN, &o->v_zero, sizeof o->v_zero);
}

/* §4.7 key attributes and the RSA ones (Current Mechanisms §2.1.2/§2.1.3). */
static void add_key_common(p11_object_t *o, const p11_token_t *t, size_t i)
{
    const p11_cert_t *c = &t->certs.cert[i];
    const p11_cert_fields_t *f = &t->fields[i];
    add_id(o, t, i);
    o->v_key_type = CKK_RSA;
    add(o, CKA_KEY_TYPE, &o->v_key_type, sizeof o->v_key_type);
    add(o, CKA_START_DATE, "", 0);
    add(o, CKA_END_DATE, "", 0);
    add_bool(o, CKA_DERIVE, false);
    add_bool(o, CKA_LOCAL, false);
    o->v_keygen = CK_UNAVAILABLE_INFORMATION;
    add(o, CKA_KEY_GEN_MECHANISM, &o->v_keygen, sizeof o->v_keygen);
    o->v_mechs[0] = CKM_RSA_PKCS;
    o->v_mechs[1] = CKM_SHA1_RSA_PKCS;
    o->v_mechs[2] = CKM_SHA256_RSA_PKCS;
    add(o, CKA_ALLOWED_MECHANISMS, o->v_mechs, sizeof o->v_mechs);
    add(o, CKA_SUBJECT, c->der + f->subject.off, f->subject.len);
    add(o, CKA_MODULUS, c->der + f->modulus.off, f->modulus.len);
    add(o, CKA_PUBLIC_EXPONENT, c->der + f->exponent.off, f->exponent.len);
    o->v_bits = (CK_ULONG)f->modulus_bits;
    add(o, CKA_MODULUS_BITS, &o->v_bits, sizeof o->v_bits);
    add(o, CKA_PUBLIC_KEY_INFO, c->der + f->spki.off, f->spki.len);
}

static void build_keys(p11_token_t *t, size_t i)
{
    const p11_cert_t *c = &t->certs.cert[i];
    p11_role_t r = c->role;
    const char *label = t->key_label[r];

    p11_object_t *k = &t->obj[t->nobj++];
    memset(k, 0, sizeof *k);
    k->cls = CKO_PRIVATE_KEY;
    k->role = r;
    k->cert = i;
    add_storage(k, label, true);
    add_key_common(k, t, i);
    add_bool(k, CKA_SENSITIVE, true);
    add_bool(k, CKA_ALWAYS_SENSITIVE, true);
    add_bool(k, CKA_EXTRACTABLE, false);
    add_bool(k, CKA_NEVER_EXTRACTABLE, true);
    add_bool(k, CKA_DECRYPT, false);
    add_bool(k, CKA_SIGN, true);
    add_bool(k, CKA_SIGN_RECOVER, false);
    add_bool(k, CKA_UNWRAP, false);
    add_bool(k, CKA_WRAP_WITH_TRUSTED, false);
    add_bool(k, CKA_ALWAYS_AUTHENTICATE, false);

    p11_object_t *p = &t->obj[t->nobj++];
    memset(p, 0, sizeof *p);
    p->cls = CKO_PUBLIC_KEY;
    p->role = r;
    p->cert = i;
    add_storage(p, label, false);
    add_key_common(p, t, i);
    add_bool(p, CKA_ENCRYPT, false);
    add_bool(p, CKA_VERIFY, true);
    add_bool(p, CKA_VERIFY_RECOVER, false);
    add_bool(p, CKA_WRAP, false);
    add_bool(p, CKA_TRUSTED, false);

    t->key[r].present = true;
    t->key[r].modulus_len = t->fields[i].modulus.len;
    t->key[r].modulus_bits = t->fields[i].modulus_bits;
}

size_t p11_token_build(p11_token_t *t, const p11_identity_t *id, const p11_certs_t *certs)
{
    if (t == NULL)
        return 0;
    memset(t, 0, sizeof *t);
    if (id != NULL)
        t->id = *id;
    if (certs == NULL)
        return 0;
    static const char *const def_cert_label[] = {"Certificat AC", "Certificat d'authentification",
                                                 "Certificat de signature"};
    static const char *const def_key_label[] = {"", "CPS_PRIV_AUT", "CPS_PRIV_SIG"};
    for (int r = P11_ROLE_AUTH; r <= P11_ROLE_SIGN; r++) {
        const p11_key_desc_t *kd = r == P11_ROLE_AUTH ? &t->id.auth : &t->id.sign;
        p11_copy_text(t->key_label[r], sizeof t->key_label[r],
                      kd->present && kd->label[0] != '\0' ? kd->label : def_key_label[r]);
    }
    bool have_key[3] = {false, false, false};
    for (size_t i = 0; i < certs->n && i < P11_CERTS_MAX; i++) {
        p11_cert_t *c = &t->certs.cert[t->certs.n];
        *c = certs->cert[i];
        p11_cert_fields_t *f = &t->fields[t->certs.n];
        if (p11_der_cert_fields(c->der, c->der_len, f) == P11_DER_BAD)
            continue;
        if (c->label[0] == '\0')
            p11_copy_text(c->label, sizeof c->label, def_cert_label[c->role]);
        /* Without an ID from cachetd, the identity's key ID pairs them. */
        const p11_key_desc_t *kd = c->role == P11_ROLE_AUTH   ? &t->id.auth
                                   : c->role == P11_ROLE_SIGN ? &t->id.sign
                                                              : NULL;
        if (c->id_len == 0 && kd != NULL && kd->present) {
            memcpy(c->id, kd->id, kd->id_len);
            c->id_len = kd->id_len;
        }
        size_t ci = t->certs.n++;
        build_cert(t, ci);
        /* One key pair per role: the first usable certificate of that role. */
        if (c->role != P11_ROLE_CA && f->rsa && !have_key[c->role]) {
            have_key[c->role] = true;
            build_keys(t, ci);
        }
    }
    return t->nobj;
}

/* ---- attributes ------------------------------------------------------------- */

static bool is_sensitive(const p11_object_t *o, CK_ATTRIBUTE_TYPE type)
{
    if (o->cls != CKO_PRIVATE_KEY)
        return false;
    switch (type) {
    case CKA_PRIVATE_EXPONENT:
    case CKA_PRIME_1:
    case CKA_PRIME_2:
    case CKA_EXPONENT_1:
    case CKA_EXPONENT_2:
    case CKA_COEFFICIENT:
    case CKA_VALUE:
        return true;
    default:
        return false;
    }
}

static const p11_attr_t *find_attr(const p11_object_t *o, CK_ATTRIBUTE_TYPE type)
{
    for (size_t i = 0; i < o->nattr; i++)
        if (o->attr[i].type == type)
            return &o->attr[i];
    return NULL;
}

CK_RV p11_object_get(const p11_object_t *o, CK_ATTRIBUTE *a)
{
    if (is_sensitive(o, a->type)) {
        a->ulValueLen = CK_UNAVAILABLE_INFORMATION;
        return CKR_ATTRIBUTE_SENSITIVE;
    }
    const p11_attr_t *v = find_attr(o, a->type);
    if (v == NULL) {
        a->ulValueLen = CK_UNAVAILABLE_INFORMATION;
        return CKR_ATTRIBUTE_TYPE_INVALID;
    }
    if (a->pValue == NULL) {
        a->ulValueLen = v->len;
        return CKR_OK;
    }
    if (a->ulValueLen < v->len) {
        a->ulValueLen = CK_UNAVAILABLE_INFORMATION;
        return CKR_BUFFER_TOO_SMALL;
    }
    if (v->len > 0)
        memcpy(a->pValue, v->value, v->len);
    a->ulValueLen = v->len;
    return CKR_OK;
}

bool p11_object_match(const p11_object_t *o, const CK_ATTRIBUTE *tmpl, CK_ULONG n)
{
    for (CK_ULONG i = 0; i < n; i++) {
        if (is_sensitive(o, tmpl[i].type))
            return false;
        const p11_attr_t *v = find_attr(o, tmpl[i].type);
        if (v == NULL || v->len != tmpl[i].ulValueLen)
            return false;
        if (v->len > 0 && (tmpl[i].pValue == NULL || memcmp(v->value, tmpl[i].pValue, v->len) != 0))
            return false;
    }
    return true;
}
