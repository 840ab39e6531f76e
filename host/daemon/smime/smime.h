/* smime: S/MIME signing and verification of whole RFC 5322 messages
 * (RFC 8551 multipart/signed, RFC 5652 detached SignedData, SHA-256,
 * signingTime, ESS signingCertificateV2 (RFC 5035), signer certificate and chain),
 * streaming from one fd to another with bounded memory. The private-key operation
 * is a callback (the card), so no key ever enters this process. */
#ifndef CACHETD_SMIME_H
#define CACHETD_SMIME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/x509.h>

/* 10 MB of attachments once base64-encoded (x 4/3, plus CRLF every 76
 * characters: ~14.4 MB) + text and headers */
#define SMIME_DEFAULT_MAX_SIZE (15u * 1024u * 1024u)

typedef enum {
    SMIME_OK = 0,
    SMIME_ERR_IO,        /* reading the input or writing the output failed */
    SMIME_ERR_TOO_BIG,   /* message over max_size: nothing was signed */
    SMIME_ERR_NOT_MIME,  /* not an RFC 5322 message (no header block, bad header) */
    SMIME_ERR_SIGN,      /* the signing callback failed (see sign_status) */
    SMIME_ERR_BAD_SIGNATURE,  /* verify: signature does not match the content */
    SMIME_ERR_UNTRUSTED,      /* verify: signer does not chain to the trust store */
    SMIME_ERR_NOT_SIGNED,     /* verify: no multipart/signed or application/pkcs7-mime */
    SMIME_ERR_SIGNER_MISMATCH,/* verify: signer is not the From address */
    SMIME_ERR_INTERNAL,
} smime_status_t;

const char *smime_status_name(smime_status_t st);

/* What the message says about itself (for the audit log and, later, the
 * appliance's confirmation screen). */
#define SMIME_SUMMARY_ATTACH_MAX 16
typedef struct {
    char from[256];
    char to[1024];
    char subject[512];
    size_t attachment_count; /* entries filled in attachments[], at most SMIME_SUMMARY_ATTACH_MAX */
    struct {
        char name[128];
        uint64_t size; /* decoded bytes */
    } attachments[SMIME_SUMMARY_ATTACH_MAX];
    uint8_t content_digest[32]; /* SHA-256 of the signed (canonical) content */
} smime_summary_t;

/* Signs a SHA-256 hash with the signer's key: returns 0 and the PKCS#1 v1.5
 * signature, or a non-zero status that is passed back in sign_status. */
typedef int (*smime_sign_cb)(void *ctx, const uint8_t hash[32], uint8_t *sig, size_t sig_cap,
                             size_t *sig_len);

/* Like smime_sign_cb, and told what is about to be signed, before the key
 * operation: the message's summary and the DER of the CMS SignedAttributes
 * (the SET OF, tag 31, RFC 5652 §5.4) whose SHA-256 is hash — what the
 * appliance is shown and checks (docs/appliance.md "The announcement").
 * Added for issue 5 (trust2). */
typedef int (*smime_sign_attrs_cb)(void *ctx, const smime_summary_t *summary,
                                   const uint8_t *signed_attrs, size_t signed_attrs_len,
                                   const uint8_t hash[32], uint8_t *sig, size_t sig_cap,
                                   size_t *sig_len);

typedef struct {
    int in_fd;              /* the RFC 5322 message */
    int out_fd;             /* the signed message */
    size_t max_size;        /* 0 = SMIME_DEFAULT_MAX_SIZE */
    X509 *signer;           /* the signature certificate */
    STACK_OF(X509) *chain;  /* intermediates to include (may be NULL) */
    smime_sign_cb sign;
    void *sign_ctx;
    smime_sign_attrs_cb sign_attrs; /* used instead of sign when set (sign_ctx is its ctx) */
} smime_sign_args_t;

/* Reads the message once (checking size and headers; 8-bit/binary content is
 * re-encoded to a 7-bit transfer encoding before signing, RFC 8551 §3.1.2),
 * canonicalising and hashing it while it spools to an unlinked temporary file
 * (memory stays bounded whatever the size), asks for the signature, then writes
 * the signed message. summary may be NULL. sign_status receives the
 * callback's status on SMIME_ERR_SIGN. */
smime_status_t smime_sign(const smime_sign_args_t *args, smime_summary_t *summary,
                          int *sign_status);

typedef struct {
    bool signed_ok;          /* signature and chain verified */
    char signer_subject[512];
    char signer_email[256];
    char signer_idnat[32];
    char from[256];
    bool from_matches;       /* From address equals the certificate's rfc822Name */
    char detail[256];
} smime_verify_result_t;

/* Verifies a signed message read from in_fd against trust. Returns SMIME_OK
 * only when the signature, the chain (purpose S/MIME signing) and the From
 * address all check. SMIME_ERR_SIGNER_MISMATCH: signature and chain are good
 * (signed_ok is true) but From is not the certificate's address.
 * SMIME_ERR_UNTRUSTED: the signature is good, the signer fields are filled,
 * the chain is not (see detail). Multipart/signed is streamed (bounded
 * memory); an opaque application/pkcs7-mime is read whole (max_size). */
smime_status_t smime_verify(int in_fd, size_t max_size, X509_STORE *trust,
                            smime_verify_result_t *out);

#endif
