/* See gate_fakes.h. */
#include "gate_fakes.h"

#include <string.h>

#include "icc.h"

fake_card_t fake_card;
fake_ui_t fake_ui;

void fakes_reset(void)
{
    memset(&fake_card, 0, sizeof fake_card);
    memset(&fake_ui, 0, sizeof fake_ui);
    fake_ui.answer = UI_OK;
}

bool fake_card_saw(uint8_t cla, uint8_t ins, uint8_t p1, uint8_t p2)
{
    for (size_t i = 0; i < fake_card.count && i < FAKE_CARD_LOG; i++) {
        const uint8_t *a = fake_card.log[i].apdu;
        if (fake_card.log[i].len >= 4 && a[0] == cla && a[1] == ins && a[2] == p1 && a[3] == p2)
            return true;
    }
    return false;
}

icc_status_t icc_transceive(const uint8_t *capdu, size_t clen, uint8_t *rapdu, size_t rcap,
                            size_t *rlen)
{
    if (clen > 261 || rcap < 258)
        return ICC_ERR_BAD_PARAM;
    if (fake_card.count < FAKE_CARD_LOG) {
        memcpy(fake_card.log[fake_card.count].apdu, capdu, clen);
        fake_card.log[fake_card.count].len = clen;
    }
    fake_card.count++;
    uint16_t sw = 0x9000;
    size_t n = 0;
    if (fake_card.next_sw) {
        sw = fake_card.next_sw;
        fake_card.next_sw = 0;
    } else if (clen >= 4 && capdu[1] == 0x2A && capdu[2] == 0x9E) {
        memset(rapdu, 0x5C, 256); /* a "signature" */
        n = 256;
    }
    rapdu[n] = (uint8_t)(sw >> 8);
    rapdu[n + 1] = (uint8_t)sw;
    *rlen = n + 2;
    return ICC_OK;
}

ui_result_t ui_confirm(const ui_confirm_t *what)
{
    fake_ui.calls++;
    fake_ui.unannounced = what->unannounced;
    fake_ui.line_count = what->line_count;
    for (size_t i = 0; i < what->line_count && i < UI_SUMMARY_LINES_MAX; i++) {
        strncpy(fake_ui.lines[i], what->lines[i], sizeof fake_ui.lines[i] - 1);
        fake_ui.lines[i][sizeof fake_ui.lines[i] - 1] = '\0';
    }
    memcpy(fake_ui.fingerprint, what->fingerprint, sizeof fake_ui.fingerprint);
    fake_ui.timeout_ms = what->timeout_ms;
    return fake_ui.answer;
}

ui_lang_t ui_lang(void)
{
    return fake_ui.lang;
}

void ui_set_lang(ui_lang_t lang)
{
    fake_ui.lang = lang;
}

static void fake_screen(const char *l1, bool error)
{
    strncpy(fake_ui.last_result, l1 ? l1 : "", sizeof fake_ui.last_result - 1);
    fake_ui.last_was_error = error;
}

void ui_show_result(const char *line1, const char *line2)
{
    (void)line2;
    fake_screen(line1, false);
}

void ui_show_error(const char *line1, const char *line2)
{
    (void)line2;
    fake_screen(line1, true);
}
