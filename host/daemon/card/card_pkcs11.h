/* card_pkcs11: extras of the PKCS#11 backend (card_pkcs11.c) beyond card.h —
 * choosing the token by label, and a way to wake the monitor. */
#ifndef CACHET_CARD_PKCS11_H
#define CACHET_CARD_PKCS11_H

#include <stdbool.h>
#include <stddef.h>

#include "card.h"

/* Like card_pkcs11_open, but the backend only uses a token whose label
 * contains token_match (NULL or "" = the first slot holding a token, in the
 * module's slot order). At most CARD_LABEL_MAX - 1 bytes. */
card_backend_t *card_pkcs11_open_match(const char *module_path, const char *token_match, char *err,
                                       size_t err_cap);

/* Makes a wait_event running in the monitor thread return CARD_ERR_CANCELLED
 * within one poll (and the next one at once, if none is running). Any thread.
 * close() also ends a running wait_event (it waits for it to return), but the
 * caller must not call wait_event again once close has begun. */
void card_pkcs11_cancel_wait(card_backend_t *b);

/* True if b is a PKCS#11 backend. */
bool card_is_pkcs11(const card_backend_t *b);

#endif
