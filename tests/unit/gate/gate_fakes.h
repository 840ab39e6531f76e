/* Fakes for the gate's unit tests and its fuzz target: icc_transceive (a
 * tiny card that records what reaches it) and the ui functions the gate calls
 * (ui_confirm answers what the test scripted and keeps what was shown). */
#ifndef CACHET_TEST_GATE_FAKES_H
#define CACHET_TEST_GATE_FAKES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ui.h"

#define FAKE_CARD_LOG 16u

typedef struct {
    uint8_t apdu[261];
    size_t len;
} fake_apdu_t;

typedef struct {
    fake_apdu_t log[FAKE_CARD_LOG];
    size_t count;     /* APDUs that reached the card */
    uint16_t next_sw; /* answer this SW to the next APDU (0: normal answers) */
} fake_card_t;
extern fake_card_t fake_card;

typedef struct {
    ui_result_t answer; /* what ui_confirm returns */
    int calls;
    bool unannounced;
    char lines[UI_SUMMARY_LINES_MAX][96];
    size_t line_count;
    char fingerprint[24];
    uint32_t timeout_ms;
    char last_result[64]; /* line1 of the last result/error screen */
    bool last_was_error;
    ui_lang_t lang;
} fake_ui_t;
extern fake_ui_t fake_ui;

void fakes_reset(void);
/* True when an APDU starting with the given 4 header bytes reached the card. */
bool fake_card_saw(uint8_t cla, uint8_t ins, uint8_t p1, uint8_t p2);

#endif
