/* smime.c: the module's status names (for logs and the wire protocol). */
#include "smime.h"

const char *smime_status_name(smime_status_t st)
{
    switch (st) {
    case SMIME_OK:
        return "ok";
    case SMIME_ERR_IO:
        return "io";
    case SMIME_ERR_TOO_BIG:
        return "too-big";
    case SMIME_ERR_NOT_MIME:
        return "not-mime";
    case SMIME_ERR_SIGN:
        return "sign-failed";
    case SMIME_ERR_BAD_SIGNATURE:
        return "bad-signature";
    case SMIME_ERR_UNTRUSTED:
        return "untrusted";
    case SMIME_ERR_NOT_SIGNED:
        return "not-signed";
    case SMIME_ERR_SIGNER_MISMATCH:
        return "signer-mismatch";
    case SMIME_ERR_INTERNAL:
        return "internal";
    }
    return "unknown";
}
