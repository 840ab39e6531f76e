/* identity: who holds the card, read from its certificates (spec/domain.md,
 * "Certificates (IGC-Santé)"), and whether they chain to the trust store.
 * Pure functions over DER certificates (OpenSSL); no card access. */
#ifndef CACHETD_IDENTITY_H
#define CACHETD_IDENTITY_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include <openssl/x509.h>

#include "card.h" /* host/daemon/card */

typedef enum {
    IDENTITY_CHAIN_OK = 0,
    IDENTITY_CHAIN_EXPIRED,        /* a certificate of the chain has expired */
    IDENTITY_CHAIN_NOT_YET_VALID,
    IDENTITY_CHAIN_UNKNOWN_ISSUER, /* does not chain to the trust store */
    IDENTITY_CHAIN_INVALID,        /* bad signature, bad extensions, ... */
} identity_chain_t;

typedef struct {
    char surname[128];        /* SN */
    char given_name[128];     /* GN */
    char idnat[32];           /* CN of a practitioner: type digit + number */
    char idnat_type[8];       /* "RPPS" (8...), "ADELI" (0...), "" if neither */
    char profession[128];     /* title, e.g. "Médecin" */
    char card_type[8];        /* "CPS", "CPE", "CPF", "CPA" */
    char structure_name[256]; /* O, on staff cards */
    char structure_id[64];    /* OU, on staff cards */
    char email[256];          /* rfc822Name of the signature certificate, "" if none */
    time_t not_before;        /* of the authentication certificate */
    time_t not_after;
    identity_chain_t chain;   /* worst status over both certificates */
    char chain_detail[256];   /* OpenSSL's reason, for people */
    int auth_cert;            /* index in the certificate array, -1 if none */
    int sign_cert;
    /* Added by the records helper (additive): the rest of the holder subject. */
    char state[128];          /* ST, on staff cards ("" if absent) */
    char country[8];          /* C, "FR" */
} identity_t;

/* Loads a PEM bundle of trust anchors (+ optional intermediates) into a store. */
X509_STORE *identity_trust_load(const char *roots_pem, char *err, size_t err_cap);

/* Fills *out from the card's certificates. The holder fields come from the
 * authentication certificate (the signature certificate if there is none).
 * card_type is a heuristic (spec/domain.md leaves the profession/card-type OIDs
 * unconfirmed): a subject with a structure (O or OU) and a CN "<structure
 * id>/<card id>" is a staff card, CPA if the card id starts with "CPA", else
 * CPE; otherwise a title mentioning a student ("Etudiant", "Étudiant") is CPF;
 * everything else is CPS. Untrusted text is copied as UTF-8 (truncated on a
 * character boundary, control characters replaced by '?'). Certificates whose
 * role is 0 serve as untrusted intermediates. now: the time to check validity at (0 = now).
 * Returns false only if no holder certificate could be parsed. */
bool identity_from_certs(const card_cert_t *certs, size_t n, X509_STORE *trust, time_t now,
                         identity_t *out);

const char *identity_chain_name(identity_chain_t c); /* "ok", "expired", ... */

#endif
