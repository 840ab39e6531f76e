/* gate_text: what the confirm-signature screen shows (ui_confirm's summary
 * lines and fingerprint), in French or English, and the SHA-256 of it that
 * goes into the receipt. Line rules (docs/appliance.md): a field is its label
 * then its value, cut every 21 characters (UTF-8 characters, not bytes);
 * continuation lines start with two spaces; at most UI_SUMMARY_LINES_MAX lines,
 * the last one "…" when the summary had to be cut. */
#ifndef CACHET_GATE_TEXT_H
#define CACHET_GATE_TEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gate_announce.h"
#include "ui.h"

#define GATE_TEXT_COLS         21u
#define GATE_TEXT_LINE_BYTES   (GATE_TEXT_COLS * 4u + 1u)
#define GATE_FINGERPRINT_BYTES 5u

typedef struct {
    char line[UI_SUMMARY_LINES_MAX][GATE_TEXT_LINE_BYTES];
    size_t count;
    bool cut;
} gate_text_t;

/* Summary of an announcement: From, To (each), Subject, attachments with
 * their sizes, the first bytes of the content digest. */
void gate_text_announced(gate_text_t *t, const gate_announce_t *a, bool english);

/* Summary of a request nobody announced: the key and the whole digest in hex. */
void gate_text_digest(gate_text_t *t, uint8_t key_ref, const uint8_t *digest, size_t len,
                      bool english);

/* "3F A2 91 0C 7B": the first GATE_FINGERPRINT_BYTES bytes of digest. */
void gate_text_fingerprint(char out[24], const uint8_t *digest, size_t len);

/* SHA-256 of "cachet-display-v1\n", "announced\n" or "unannounced\n", each
 * summary line followed by "\n", then the fingerprint and "\n". */
bool gate_text_sha256(const gate_text_t *t, bool announced, const char *fingerprint,
                      uint8_t out[32]);

#endif
