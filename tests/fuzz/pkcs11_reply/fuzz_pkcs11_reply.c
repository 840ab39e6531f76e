/* Fuzz target: libcachet-pkcs11's decoding of what cachetd sends
 * (drivers/pkcs11/p11_reply.c) and of the certificates inside
 * (p11_der.c, p11_token.c). The first byte chooses the path:
 *   0  a frame's JSON text → envelope → every decoder (status, identity,
 *      certificates → token objects and attributes, signature, event)
 *   1  raw DER → certificate fields
 *   2  raw bytes → DigestInfo recognition */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "p11_der.h"
#include "p11_reply.h"
#include "p11_token.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void every_attribute(const p11_token_t *t)
{
    static const CK_ATTRIBUTE_TYPE types[] = {CKA_CLASS,
                                              CKA_ID,
                                              CKA_LABEL,
                                              CKA_VALUE,
                                              CKA_SUBJECT,
                                              CKA_ISSUER,
                                              CKA_SERIAL_NUMBER,
                                              CKA_MODULUS,
                                              CKA_PUBLIC_EXPONENT,
                                              CKA_PUBLIC_KEY_INFO,
                                              CKA_MODULUS_BITS,
                                              CKA_PRIVATE_EXPONENT,
                                              CKA_ALLOWED_MECHANISMS};
    uint8_t buf[P11_CERT_MAX];
    for (size_t i = 0; i < t->nobj; i++) {
        for (size_t k = 0; k < sizeof types / sizeof types[0]; k++) {
            CK_ATTRIBUTE a = {types[k], NULL, 0};
            if (p11_object_get(&t->obj[i], &a) != CKR_OK)
                continue;
            a.pValue = buf;
            a.ulValueLen = sizeof buf;
            (void)p11_object_get(&t->obj[i], &a);
            (void)p11_object_match(&t->obj[i], &a, 1);
        }
    }
}

static void decode_reply(const uint8_t *data, size_t size)
{
    p11_msg_t m;
    if (!p11_msg_parse((const char *)data, size, &m))
        return;
    if (m.kind == P11_MSG_EVENT) {
        p11_event_t ev;
        (void)p11_decode_event(&m, &ev);
    } else if (m.kind == P11_MSG_ERROR) {
        (void)p11_ckr_from_code(m.code, P11_OP_SIGN);
    } else {
        p11_status_t st;
        (void)p11_decode_status(m.result, &st);
        p11_identity_t id;
        if (!p11_decode_identity(m.result, &id))
            memset(&id, 0, sizeof id);
        uint8_t sig[P11_SIG_MAX];
        size_t sl = 0;
        (void)p11_decode_signature(m.result, sig, sizeof sig, &sl);
        p11_certs_t *certs = malloc(sizeof *certs);
        p11_token_t *t = malloc(sizeof *t);
        size_t skipped = 0;
        if (certs != NULL && t != NULL && p11_decode_certificates(m.result, certs, &skipped)) {
            p11_token_build(t, &id, certs);
            every_attribute(t);
            unsigned char label[32], serial[16];
            p11_token_label(&t->id, id.serial, label);
            p11_token_serial(id.serial, serial);
        }
        free(certs);
        free(t);
    }
    p11_msg_free(&m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t mode = data[0] % 3;
    data++;
    size--;
    if (mode == 0) {
        /* A frame's text is NUL-terminated by the reader (proto_read_frame). */
        char *text = malloc(size + 1);
        if (text == NULL)
            return 0;
        memcpy(text, data, size);
        text[size] = '\0';
        decode_reply((const uint8_t *)text, size);
        free(text);
    } else if (mode == 1) {
        p11_cert_fields_t f;
        (void)p11_der_cert_fields(data, size, &f);
    } else {
        size_t off = 0;
        p11_hash_t h = p11_der_digestinfo(data, size, &off);
        if (h != P11_HASH_NONE && off + p11_hash_len(h) != size)
            abort(); /* the hash must end the input */
    }
    return 0;
}
