/* ui: the appliance's display (4 lines x 21 characters, UTF-8 with the French
 * accented letters) and keypad (digits, OK, Cancel, Correction). Owns the
 * screens: idle, insert-card, pin-entry, confirm-signature, result, error;
 * French by default, English when the host selects it.
 *
 * Waiting functions block (the firmware is single-threaded) until a key or the
 * timeout, calling the wait hook about once a second so that the CCID layer can
 * keep the host waiting with time extensions (CCID rev 1.1 §6.2.7). */
#ifndef CACHET_UI_H
#define CACHET_UI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum { UI_LANG_FR = 0, UI_LANG_EN = 1 } ui_lang_t;

typedef enum {
    UI_OK = 0,        /* OK pressed (or PIN complete and confirmed) */
    UI_CANCELLED,     /* Cancel pressed */
    UI_TIMEOUT,       /* nobody answered in time */
    UI_ERR_PARAM,     /* bad arguments */
} ui_result_t;

typedef void (*ui_wait_hook_t)(void *ctx);

void ui_init(void);
void ui_set_lang(ui_lang_t lang);
ui_lang_t ui_lang(void);
void ui_set_wait_hook(ui_wait_hook_t hook, void *ctx);

/* Resting screens: "idle" (card present, ready) or "insert-card". */
void ui_show_idle(bool card_present);

/* PIN entry ("pin-entry"): digits masked, tries left shown when >= 0.
 * purpose: what the PIN is for, one short line ("Connexion", "Signature"...),
 * NULL for a plain login. Correction erases the last digit; OK accepts once at
 * least min_len digits were typed. The PIN is written to pin (not terminated)
 * as ASCII digits '0'..'9'; the caller wipes it after use (ui wipes it itself
 * when the entry does not end with UI_OK). Keys pressed before the screen
 * appeared are dropped. */
typedef struct {
    uint8_t min_len;      /* 4 for a CPS */
    uint8_t max_len;      /* at most 12 */
    int8_t tries_left;    /* -1 unknown */
    bool new_pin;         /* "Nouveau code" instead of "Code porteur" */
    bool confirm_pin;     /* "Confirmez le code" */
    const char *purpose;
    uint32_t timeout_ms;  /* 0 = 30 s: the whole entry, from the screen's first showing */
    bool submit_at_max;   /* the entry ends by itself once max_len digits are typed
                             (CCID bEntryValidationCondition bit 0) */
} ui_pin_request_t;
ui_result_t ui_pin_entry(const ui_pin_request_t *req, uint8_t *pin, size_t cap, size_t *len);

/* Confirm a signature ("confirm-signature"): a title line, then the summary
 * lines (scrolled with the digit keys 2/8 or Correction to go back), then the
 * short fingerprint; OK confirms, Cancel refuses. unannounced: the request came
 * with no announcement (shown as such). */
#define UI_SUMMARY_LINES_MAX 24
typedef struct {
    bool unannounced;
    const char *lines[UI_SUMMARY_LINES_MAX]; /* UTF-8, each <= 21 characters shown */
    size_t line_count;
    char fingerprint[24];  /* e.g. "3F A2 91 0C 7B" (first bytes of the digest) */
    uint32_t timeout_ms;   /* 0 = 60 s */
} ui_confirm_t;
ui_result_t ui_confirm(const ui_confirm_t *what);

/* Short outcome screens ("result", "error"); stay until the next screen. */
void ui_show_result(const char *line1, const char *line2);
void ui_show_error(const char *line1, const char *line2);

/* ---- additions (secure PIN entry, issue 5) ---- */

/* Makes the waiting function in progress (ui_pin_entry, ui_confirm) return
 * UI_CANCELLED at its next wake-up: for the wait hook, when the command it
 * serves is gone (bus reset, card removed). Cleared when a wait starts. */
void ui_abort(void);

/* Main loop: a result or error screen goes back to the resting screen (idle
 * or insert-card, as last given to ui_show_idle) after UI_RESULT_SHOW_MS. */
#define UI_RESULT_SHOW_MS 4000u
void ui_poll(void);

/* Name of the screen shown now ("idle", "pin-entry", ...). */
const char *ui_screen(void);

/* Short texts of the appliance, in the current language, each at most 21
 * characters, for the screens other modules build (results, errors). */
typedef enum {
    UI_TXT_PIN_OK = 0,     /* "Code accepté" */
    UI_TXT_PIN_WRONG,      /* "Code incorrect" */
    UI_TXT_PIN_BLOCKED,    /* "Carte bloquée" */
    UI_TXT_PIN_CHANGED,    /* "Code modifié" */
    UI_TXT_PIN_MISMATCH,   /* "Codes différents" */
    UI_TXT_CANCELLED,      /* "Annulé" */
    UI_TXT_TIMEOUT,        /* "Délai dépassé" */
    UI_TXT_CARD_ERROR,     /* "Erreur carte" */
    UI_TXT_CARD_REMOVED,   /* "Carte retirée" */
    UI_TXT_SIGNED,         /* "Signature faite" */
    UI_TXT_REFUSED,        /* "Signature refusée" */
    UI_TXT_COUNT
} ui_text_t;
const char *ui_text(ui_text_t id);

/* "N essais restants" / "1 essai restant" (FR) for tries >= 0, into out
 * (cap >= 32); "" for tries < 0. */
void ui_tries_text(int tries, char *out, size_t cap);

#endif
