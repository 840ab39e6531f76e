/* cache: public data of cards seen before (certificates, identity), by card
 * serial, under $XDG_CACHE_HOME/cachet (0700 dir, 0600 files). Never a PIN or
 * anything secret. A corrupt or foreign-owned entry is ignored (and removed). */
#ifndef CACHETD_CACHE_H
#define CACHETD_CACHE_H

#include <stdbool.h>
#include <stddef.h>

#include "card.h" /* host/daemon/card */

/* dir NULL = $XDG_CACHE_HOME/cachet or ~/.cache/cachet. */
bool cache_init(const char *dir, char *err, size_t err_cap);
/* Certificates of the card with this serial, if cached. */
bool cache_load_certs(const char *serial, card_cert_t *certs, size_t cap, size_t *n);
/* Stores them (atomic write + rename, 0600). */
bool cache_store_certs(const char *serial, const card_cert_t *certs, size_t n);
/* Forgets one card (or all when serial is NULL). */
void cache_forget(const char *serial);

#endif
