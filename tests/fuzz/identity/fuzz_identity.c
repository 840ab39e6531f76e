/* Fuzz target: identity_from_certs over certificates as a card (or a cache
 * file) could hand them over. Input: a flags byte, then records
 * [role:1][len:2, big-endian][DER:len] up to CARD_CERTS_MAX (a short last record
 * takes what is left). Flag bit 0: the role-0 certificates also become the
 * trust anchors, so that chain building goes deeper than "unknown issuer". */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/x509.h>

#include "identity.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_NOW ((time_t)1800000000) /* 2027-01: inside the seed certificates' validity */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t flags = data[0];
    size_t off = 1;
    card_cert_t *certs = calloc(CARD_CERTS_MAX, sizeof *certs);
    X509_STORE *store = X509_STORE_new();
    if (!certs || !store)
        goto out;
    size_t n = 0;
    while (n < CARD_CERTS_MAX && size - off >= 3) {
        card_cert_t *c = &certs[n];
        c->role = data[off] % 4; /* 3: a role no card has */
        size_t len = (size_t)data[off + 1] << 8 | data[off + 2];
        off += 3;
        if (len > size - off)
            len = size - off;
        if (len > sizeof c->der)
            len = sizeof c->der;
        memcpy(c->der, data + off, len);
        c->der_len = len;
        off += len;
        n++;
    }
    if (flags & 1) {
        for (size_t i = 0; i < n; i++) {
            if (certs[i].role != 0)
                continue;
            const unsigned char *p = certs[i].der;
            X509 *x = d2i_X509(NULL, &p, (long)certs[i].der_len);
            if (x) {
                (void)X509_STORE_add_cert(store, x);
                X509_free(x);
            }
        }
    }
    identity_t id;
    if (identity_from_certs(certs, n, store, FUZZ_NOW, &id)) {
        /* Every text field is NUL-terminated within its array. */
        if (strnlen(id.surname, sizeof id.surname) == sizeof id.surname ||
            strnlen(id.chain_detail, sizeof id.chain_detail) == sizeof id.chain_detail ||
            strnlen(id.email, sizeof id.email) == sizeof id.email ||
            strnlen(id.card_type, sizeof id.card_type) == sizeof id.card_type)
            __builtin_trap();
        (void)identity_chain_name(id.chain);
    }
out:
    X509_STORE_free(store);
    free(certs);
    return 0;
}
