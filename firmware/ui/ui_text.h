/* ui_text: the string tables of ui (private to ui and its tests). */
#ifndef CACHET_UI_TEXT_H
#define CACHET_UI_TEXT_H

#include "ui.h"

typedef struct {
    const char *app;
    const char *card_ready;
    const char *ready;
    const char *insert_card;
    const char *pin;
    const char *new_pin;
    const char *confirm_pin;
    const char *pin_hint;
    const char *tries_many; /* appended to the number */
    const char *tries_one;
    const char *tries_none;
    const char *sign;
    const char *unannounced;
    const char *hint_ok;
    const char *hint_cancel;
    const char *texts[UI_TXT_COUNT];
} ui_strings_t;

const ui_strings_t *ui_strings(ui_lang_t lang);

#endif
