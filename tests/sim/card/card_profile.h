/* card_profile: loads a virtual card profile (profile.conf + key and
 * certificate files, made by tests/sim/pki/make-pki.sh; keys documented in
 * docs/simulation.md §5) and the card's persistent state file. Host-side file
 * I/O only; the applet itself never touches files. */
#ifndef CACHET_CARD_PROFILE_H
#define CACHET_CARD_PROFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "card_applet.h"
#include "card_link.h"

#define CARD_PROFILE_CONF_MAX (16 * 1024) /* profile.conf and state files */
#define CARD_NAME_MAX         64

typedef struct {
    char name[CARD_NAME_MAX];
    card_config_t cfg;      /* cert pointers into the buffers below; keys owned */
    card_persist_t initial; /* tries = max, PIN and PUK of the profile */
    uint8_t atr[CARD_ATR_MAX];
    size_t atr_len;
    unsigned timing_rsa_ms;
    unsigned timing_other_ms;
    uint8_t *cert_buf[3]; /* auth, sign, CA (DER) */
} card_profile_t;

/* Loads DIR/profile.conf and the files it names. false with a message in err. */
bool card_profile_load(const char *dir, card_profile_t *p, char *err, size_t errlen);
void card_profile_free(card_profile_t *p);

/* Reads the state file into st, starting from the profile's initial state; a
 * missing file is not an error (fresh card). false with a message on a file
 * that exists but does not parse. */
bool card_state_load(const char *path, const card_profile_t *p, card_persist_t *st, char *err,
                     size_t errlen);

/* Writes the state atomically: PATH.tmp.PID, fsync, rename (mode 0600). */
bool card_state_save(const char *path, const card_persist_t *st);

/* Parses "3B AC 00 ..." / "3BAC00..." hex into out (cap bytes); returns the length, 0 on error. */
size_t card_parse_hex(const char *s, uint8_t *out, size_t cap);

#endif
