/* card_common: what both card backends share (card.h). The status names are the
 * protocol's error codes (host/proto/proto.h PROTO_E_*, docs/protocol.md §2.4),
 * written out here so that the card library does not depend on proto. */
#include "card.h"

const char *card_status_name(card_status_t st)
{
    switch (st) {
    case CARD_OK:
        return "ok";
    case CARD_ERR_NO_READER:
        return "no-reader";
    case CARD_ERR_NO_CARD:
        return "no-card";
    case CARD_ERR_REMOVED:
        return "card-removed";
    case CARD_ERR_PIN_REQUIRED:
        return "pin-required";
    case CARD_ERR_PIN_INCORRECT:
        return "pin-incorrect";
    case CARD_ERR_PIN_BLOCKED:
        return "pin-blocked";
    case CARD_ERR_PIN_FORMAT:
        return "pin-format";
    case CARD_ERR_CANCELLED:
        return "cancelled";
    case CARD_ERR_TIMEOUT:
        return "timeout";
    case CARD_ERR_NOT_SUPPORTED:
        return "not-supported";
    case CARD_ERR_BAD_INPUT:
        return "bad-input";
    case CARD_ERR_BACKEND:
        return "backend";
    }
    return "backend"; /* a value outside the enum: say "backend", never NULL */
}
