/* ui_text: the appliance's texts in French (default) and English. Every
 * line fits the 21 columns of the display (checked by tests/unit/ui, which
 * counts characters, not bytes). */
#include "ui_text.h"

#include "fw_util.h"

/* clang-format off */
static const ui_strings_t ui_strings_fr = {
    .app = "Cachet",
    .card_ready = "Carte insérée",
    .ready = "Prêt",
    .insert_card = "Insérez votre carte",
    .pin = "Code porteur :",
    .new_pin = "Nouveau code :",
    .confirm_pin = "Confirmez le code :",
    .pin_hint = "OK : valider",
    .tries_many = " essais restants",
    .tries_one = " essai restant",
    .tries_none = "Plus aucun essai",
    .sign = "Signer ?",
    .unannounced = "Demande non annoncée",
    .hint_ok = "OK : valider",
    .hint_cancel = "Annul. : refuser",
    .texts = {
        [UI_TXT_PIN_OK] = "Code accepté",
        [UI_TXT_PIN_WRONG] = "Code incorrect",
        [UI_TXT_PIN_BLOCKED] = "Carte bloquée",
        [UI_TXT_PIN_CHANGED] = "Code modifié",
        [UI_TXT_PIN_MISMATCH] = "Codes différents",
        [UI_TXT_CANCELLED] = "Annulé",
        [UI_TXT_TIMEOUT] = "Délai dépassé",
        [UI_TXT_CARD_ERROR] = "Erreur carte",
        [UI_TXT_CARD_REMOVED] = "Carte retirée",
        [UI_TXT_SIGNED] = "Signature faite",
        [UI_TXT_REFUSED] = "Signature refusée",
    },
};

static const ui_strings_t ui_strings_en = {
    .app = "Cachet",
    .card_ready = "Card inserted",
    .ready = "Ready",
    .insert_card = "Insert your card",
    .pin = "Card PIN:",
    .new_pin = "New PIN:",
    .confirm_pin = "Confirm the PIN:",
    .pin_hint = "OK: accept",
    .tries_many = " tries left",
    .tries_one = " try left",
    .tries_none = "No try left",
    .sign = "Sign?",
    .unannounced = "Unannounced request",
    .hint_ok = "OK: accept",
    .hint_cancel = "Cancel: refuse",
    .texts = {
        [UI_TXT_PIN_OK] = "PIN accepted",
        [UI_TXT_PIN_WRONG] = "Wrong PIN",
        [UI_TXT_PIN_BLOCKED] = "Card blocked",
        [UI_TXT_PIN_CHANGED] = "PIN changed",
        [UI_TXT_PIN_MISMATCH] = "PINs differ",
        [UI_TXT_CANCELLED] = "Cancelled",
        [UI_TXT_TIMEOUT] = "Timed out",
        [UI_TXT_CARD_ERROR] = "Card error",
        [UI_TXT_CARD_REMOVED] = "Card removed",
        [UI_TXT_SIGNED] = "Signed",
        [UI_TXT_REFUSED] = "Signature refused",
    },
};
/* clang-format on */

const ui_strings_t *ui_strings(ui_lang_t lang)
{
    return lang == UI_LANG_EN ? &ui_strings_en : &ui_strings_fr;
}
