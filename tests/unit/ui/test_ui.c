/* Unit tests for firmware/ui: UTF-8 layout on 21 columns, the FR/EN texts,
 * PIN entry (masking, correction, min/max, cancel, time-out, abort, keys typed
 * too early), confirmation (scrolling, OK, Cancel, time-out) and the return
 * of result screens to the resting screen. port_ui and port_time are faked
 * (fake_port_ui.c): time-outs run on a fake clock. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "fake_port_ui.h"
#include "ui.h"
#include "ui_layout.h"
#include "ui_text.h"

static unsigned hook_calls;
static unsigned abort_after; /* the hook calls ui_abort on this call (0: never) */
static uint64_t hook_last_us;
static uint64_t hook_max_gap_us;

static void hook(void *ctx)
{
    (void)ctx;
    hook_calls++;
    if (hook_calls > 1 && fake_ui.now_us - hook_last_us > hook_max_gap_us)
        hook_max_gap_us = fake_ui.now_us - hook_last_us;
    hook_last_us = fake_ui.now_us;
    if (abort_after != 0 && hook_calls == abort_after)
        ui_abort();
}

static int setup(void **state)
{
    (void)state;
    fake_ui_reset();
    ui_init();
    hook_calls = 0;
    abort_after = 0;
    hook_max_gap_us = 0;
    ui_set_wait_hook(hook, NULL);
    return 0;
}

static ui_pin_request_t cps_pin(int tries)
{
    ui_pin_request_t r = {.min_len = 4, .max_len = 8, .tries_left = (int8_t)tries};
    return r;
}

/* ---- layout ---- */

static void test_utf8_columns(void **state)
{
    (void)state;
    assert_int_equal(ui_utf8_columns("Insérez votre carte"), 19);
    assert_int_equal(strlen("Insérez votre carte"), 20);
    assert_int_equal(ui_utf8_columns("Demande non annoncée"), 20);
    assert_int_equal(ui_utf8_columns(""), 0);
    assert_int_equal(ui_utf8_columns(NULL), 0);
    assert_int_equal(ui_utf8_seq_len("\xC3\xA9"), 2);         /* é */
    assert_int_equal(ui_utf8_seq_len("\xE2\x82\xAC"), 3);     /* € */
    assert_int_equal(ui_utf8_seq_len("\xF0\x9F\x98\x80"), 4); /* U+1F600 */
    assert_int_equal(ui_utf8_seq_len("\xC0\x80"), 0);         /* overlong NUL */
    assert_int_equal(ui_utf8_seq_len("\xE0\x80\xAF"), 0);     /* overlong */
    assert_int_equal(ui_utf8_seq_len("\xED\xA0\x80"), 0);     /* surrogate */
    assert_int_equal(ui_utf8_seq_len("\xF4\x90\x80\x80"), 0); /* > U+10FFFF */
    assert_int_equal(ui_utf8_seq_len("\xC3"), 0);             /* cut short */
    assert_int_equal(ui_utf8_seq_len("\x80"), 0);
}

static void test_fit(void **state)
{
    (void)state;
    char out[UI_LINE_BYTES];
    /* 23 accented letters: 21 kept, 42 bytes. */
    const char *e23 = "ééééééééééééééééééééééé";
    assert_int_equal(ui_fit(out, sizeof out, e23, PORT_UI_COLUMNS), 21);
    assert_int_equal(strlen(out), 42);
    assert_int_equal(ui_utf8_columns(out), 21);
    /* exactly 21 ASCII characters stay whole, 22 lose the last */
    assert_int_equal(ui_fit(out, sizeof out, "123456789012345678901", 21), 21);
    assert_string_equal(out, "123456789012345678901");
    assert_int_equal(ui_fit(out, sizeof out, "1234567890123456789012", 21), 21);
    assert_string_equal(out, "123456789012345678901");
    /* ill-formed bytes and control characters become '?' */
    ui_fit(out, sizeof out, "a\xC3(b\x80\nc\x7F", 21);
    assert_string_equal(out, "a?(b??c?");
    /* a character that does not fit the buffer is dropped, never cut */
    char small[5];
    assert_int_equal(ui_fit(small, sizeof small, "ééé", 21), 2);
    assert_string_equal(small, "éé");
    /* append keeps the total within the columns */
    ui_fit(out, sizeof out, "3", 21);
    assert_int_equal(ui_append(out, sizeof out, " essais restants", 21), 17);
    assert_string_equal(out, "3 essais restants");
    ui_fit(out, sizeof out, "12345678901234567890", 21);
    assert_int_equal(ui_append(out, sizeof out, "éé", 21), 21);
    assert_string_equal(out, "12345678901234567890é");
    assert_int_equal(ui_fit(out, sizeof out, NULL, 21), 0);
    assert_string_equal(out, "");
}

static void check_fits(const char *s)
{
    if (s != NULL && ui_utf8_columns(s) > PORT_UI_COLUMNS)
        fail_msg("text too wide for the display: \"%s\"", s);
}

static void test_texts_fit(void **state)
{
    (void)state;
    for (int l = 0; l < 2; l++) {
        const ui_strings_t *s = ui_strings(l == 0 ? UI_LANG_FR : UI_LANG_EN);
        const char *all[] = {s->app,         s->card_ready,  s->ready,      s->insert_card, s->pin,
                             s->new_pin,     s->confirm_pin, s->pin_hint,   s->tries_none,  s->sign,
                             s->unannounced, s->hint_ok,     s->hint_cancel};
        for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
            assert_non_null(all[i]);
            check_fits(all[i]);
        }
        for (int i = 0; i < UI_TXT_COUNT; i++) {
            assert_non_null(s->texts[i]);
            assert_true(s->texts[i][0] != 0);
            check_fits(s->texts[i]);
        }
    }
    char t[32];
    ui_tries_text(3, t, sizeof t);
    assert_string_equal(t, "3 essais restants");
    ui_tries_text(1, t, sizeof t);
    assert_string_equal(t, "1 essai restant");
    ui_tries_text(0, t, sizeof t);
    assert_string_equal(t, "Plus aucun essai");
    ui_tries_text(-1, t, sizeof t);
    assert_string_equal(t, "");
    ui_tries_text(15, t, sizeof t);
    assert_string_equal(t, "15 essais restants");
    ui_set_lang(UI_LANG_EN);
    ui_tries_text(2, t, sizeof t);
    assert_string_equal(t, "2 tries left");
    assert_string_equal(ui_text(UI_TXT_PIN_WRONG), "Wrong PIN");
    ui_set_lang(UI_LANG_FR);
    assert_string_equal(ui_text(UI_TXT_PIN_WRONG), "Code incorrect");
    assert_string_equal(ui_text(UI_TXT_COUNT), "");
}

/* ---- resting and outcome screens ---- */

static void test_idle_result_poll(void **state)
{
    (void)state;
    ui_show_idle(false);
    assert_string_equal(fake_ui.name, "insert-card");
    assert_string_equal(fake_ui.lines[1], "Insérez votre carte");
    ui_show_idle(true);
    assert_string_equal(fake_ui.name, "idle");
    assert_string_equal(ui_screen(), "idle");
    ui_show_result("Code accepté", NULL);
    assert_string_equal(fake_ui.name, "result");
    assert_string_equal(fake_ui.lines[0], "Code accepté");
    assert_string_equal(fake_ui.lines[1], "");
    fake_ui.now_us += (UI_RESULT_SHOW_MS - 1u) * 1000u;
    ui_poll();
    assert_string_equal(fake_ui.name, "result");
    fake_ui.now_us += 2000u;
    ui_poll();
    assert_string_equal(fake_ui.name, "idle");
    unsigned shows = fake_ui.shows;
    ui_poll();
    assert_int_equal(fake_ui.shows, shows); /* no redraw when nothing changes */
    ui_show_error("Carte bloquée", "très long texte qui dépasse la ligne");
    assert_string_equal(fake_ui.name, "error");
    assert_int_equal(ui_utf8_columns(fake_ui.lines[1]), 21);
    ui_set_lang(UI_LANG_EN);
    ui_show_idle(false);
    assert_string_equal(fake_ui.lines[1], "Insert your card");
    assert_int_equal(fake_ui.too_wide, 0);
}

/* ---- PIN entry ---- */

static void test_pin_masking_and_correction(void **state)
{
    (void)state;
    ui_pin_request_t r = cps_pin(3);
    uint8_t pin[12];
    size_t len = 0;
    fake_ui_type("125X34K");
    assert_int_equal(ui_pin_entry(&r, pin, sizeof pin, &len), UI_OK);
    assert_int_equal(len, 4);
    assert_memory_equal(pin, "1234", 4);
    assert_string_equal(fake_ui.name, "pin-entry");
    assert_string_equal(fake_ui.lines[0], "Code porteur :");
    assert_string_equal(fake_ui.lines[1], "****");
    assert_string_equal(fake_ui.lines[2], "3 essais restants");
    assert_string_equal(fake_ui.lines[3], "OK : valider");
    /* 1 initial screen + 7 changes (5 digits, 1 correction, then 2 digits) */
    assert_int_equal(fake_ui.shows, 1 + 6);
    assert_null(strpbrk(fake_ui.lines[1], "0123456789")); /* masked */
    assert_int_equal(hook_calls, 1);                      /* at once, then about once a second */
    assert_int_equal(fake_ui.too_wide, 0);
}

static void test_pin_lines(void **state)
{
    (void)state;
    uint8_t pin[12];
    size_t len;
    ui_pin_request_t r = cps_pin(1);
    r.purpose = "Connexion";
    fake_ui_type("0000K");
    assert_int_equal(ui_pin_entry(&r, pin, sizeof pin, &len), UI_OK);
    assert_string_equal(fake_ui.lines[2], "1 essai restant");
    assert_string_equal(fake_ui.lines[3], "Connexion");
    r = cps_pin(-1);
    r.new_pin = true;
    fake_ui_type("5678K");
    assert_int_equal(ui_pin_entry(&r, pin, sizeof pin, &len), UI_OK);
    assert_string_equal(fake_ui.lines[0], "Nouveau code :");
    assert_string_equal(fake_ui.lines[2], "");
    r.new_pin = false;
    r.confirm_pin = true;
    r.tries_left = 3; /* not shown for a new PIN's confirmation */
    fake_ui_type("5678K");
    assert_int_equal(ui_pin_entry(&r, pin, sizeof pin, &len), UI_OK);
    assert_string_equal(fake_ui.lines[0], "Confirmez le code :");
    assert_string_equal(fake_ui.lines[2], "");
}

static void test_pin_min_max(void **state)
{
    (void)state;
    uint8_t pin[12];
    size_t len = 0;
    ui_pin_request_t r = cps_pin(3);
    /* OK with too few digits is ignored; Correction on nothing too */
    fake_ui_type("X12K34K");
    assert_int_equal(ui_pin_entry(&r, pin, sizeof pin, &len), UI_OK);
    assert_int_equal(len, 4);
    assert_memory_equal(pin, "1234", 4);
    /* digits past the maximum are ignored */
    r.max_len = 4;
    fake_ui_type("123456K");
    assert_int_equal(ui_pin_entry(&r, pin, sizeof pin, &len), UI_OK);
    assert_int_equal(len, 4);
    assert_memory_equal(pin, "1234", 4);
    /* ... or end the entry (bEntryValidationCondition "max size reached") */
    r.submit_at_max = true;
    fake_ui_type("4321");
    assert_int_equal(ui_pin_entry(&r, pin, sizeof pin, &len), UI_OK);
    assert_memory_equal(pin, "4321", 4);
    /* bad requests */
    r.max_len = 13;
    assert_int_equal(ui_pin_entry(&r, pin, sizeof pin, &len), UI_ERR_PARAM);
    r.max_len = 4;
    r.min_len = 5;
    assert_int_equal(ui_pin_entry(&r, pin, sizeof pin, &len), UI_ERR_PARAM);
    r.min_len = 4;
    assert_int_equal(ui_pin_entry(&r, pin, 3, &len), UI_ERR_PARAM);
    assert_int_equal(ui_pin_entry(NULL, pin, sizeof pin, &len), UI_ERR_PARAM);
}

static void test_pin_cancel_wipes(void **state)
{
    (void)state;
    uint8_t pin[12];
    size_t len = 99;
    ui_pin_request_t r = cps_pin(3);
    fake_ui_type("123C");
    assert_int_equal(ui_pin_entry(&r, pin, sizeof pin, &len), UI_CANCELLED);
    assert_int_equal(len, 0);
    static const uint8_t zero[12];
    assert_memory_equal(pin, zero, sizeof pin);
}

static void test_pin_timeout(void **state)
{
    (void)state;
    uint8_t pin[12];
    size_t len;
    ui_pin_request_t r = cps_pin(3);
    uint64_t t0 = fake_ui.now_us;
    fake_ui_type("12"); /* then nothing */
    assert_int_equal(ui_pin_entry(&r, pin, sizeof pin, &len), UI_TIMEOUT);
    uint64_t took = fake_ui.now_us - t0;
    assert_true(took >= 30000000u && took < 31000000u); /* default 30 s */
    /* the hook ran about once a second all along (time extensions) */
    assert_true(hook_calls >= 30 && hook_calls <= 32);
    assert_true(hook_max_gap_us <= 1000000u);
    static const uint8_t zero[12];
    assert_memory_equal(pin, zero, sizeof pin);
    /* an explicit time-out */
    r.timeout_ms = 5000;
    t0 = fake_ui.now_us;
    assert_int_equal(ui_pin_entry(&r, pin, sizeof pin, &len), UI_TIMEOUT);
    assert_true(fake_ui.now_us - t0 >= 5000000u && fake_ui.now_us - t0 < 6000000u);
}

static void test_pin_abort_and_stale_keys(void **state)
{
    (void)state;
    uint8_t pin[12];
    size_t len;
    ui_pin_request_t r = cps_pin(3);
    abort_after = 3; /* e.g. the card left */
    assert_int_equal(ui_pin_entry(&r, pin, sizeof pin, &len), UI_CANCELLED);
    assert_int_equal(hook_calls, 3);
    /* the abort does not stick to the next question */
    abort_after = 0;
    fake_ui_type("1234K");
    assert_int_equal(ui_pin_entry(&r, pin, sizeof pin, &len), UI_OK);
    /* keys pressed before the question never become digits */
    fake_ui.stale_keys = 5;
    fake_ui_type("4321K");
    assert_int_equal(ui_pin_entry(&r, pin, sizeof pin, &len), UI_OK);
    assert_int_equal(len, 4);
    assert_memory_equal(pin, "4321", 4);
    assert_int_equal(fake_ui.stale_keys, 0);
}

/* ---- confirmation ---- */

static void test_confirm(void **state)
{
    (void)state;
    ui_confirm_t c = {.line_count = 4, .timeout_ms = 0};
    c.lines[0] = "De : dupont@ms.fr";
    c.lines[1] = "À : martin@ms.fr";
    c.lines[2] = "Objet : résultats";
    c.lines[3] = "PJ : bilan.pdf 12 Ko";
    strcpy(c.fingerprint, "3F A2 91 0C 7B");
    fake_ui_type("K");
    assert_int_equal(ui_confirm(&c), UI_OK);
    assert_string_equal(fake_ui.name, "confirm-signature");
    assert_string_equal(fake_ui.lines[0], "Signer ?");
    assert_string_equal(fake_ui.lines[1], "De : dupont@ms.fr");
    assert_string_equal(fake_ui.lines[2], "À : martin@ms.fr");
    assert_string_equal(fake_ui.lines[3], "3F A2 91 0C 7B");

    /* scrolling: 8 down, 2 or Correction up, bounded at both ends */
    fake_ui_type("88888C");
    assert_int_equal(ui_confirm(&c), UI_CANCELLED);
    /* 4 lines + 2 hint lines, 2 visible: the last window starts at line 4 */
    assert_string_equal(fake_ui.lines[1], "OK : valider");
    assert_string_equal(fake_ui.lines[2], "Annul. : refuser");
    fake_ui_type("82X2C");
    assert_int_equal(ui_confirm(&c), UI_CANCELLED);
    assert_string_equal(fake_ui.lines[1], "De : dupont@ms.fr");

    /* unannounced, and a time-out (60 s by default) */
    c.unannounced = true;
    uint64_t t0 = fake_ui.now_us;
    assert_int_equal(ui_confirm(&c), UI_TIMEOUT);
    assert_true(fake_ui.now_us - t0 >= 60000000u && fake_ui.now_us - t0 < 61000000u);
    assert_string_equal(fake_ui.lines[0], "Demande non annoncée");

    /* bad arguments */
    c.line_count = UI_SUMMARY_LINES_MAX + 1;
    assert_int_equal(ui_confirm(&c), UI_ERR_PARAM);
    c.line_count = 1;
    memset(c.fingerprint, 'A', sizeof c.fingerprint);
    assert_int_equal(ui_confirm(&c), UI_ERR_PARAM);
    assert_int_equal(ui_confirm(NULL), UI_ERR_PARAM);
    assert_int_equal(fake_ui.too_wide, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_utf8_columns, setup),
        cmocka_unit_test_setup(test_fit, setup),
        cmocka_unit_test_setup(test_texts_fit, setup),
        cmocka_unit_test_setup(test_idle_result_poll, setup),
        cmocka_unit_test_setup(test_pin_masking_and_correction, setup),
        cmocka_unit_test_setup(test_pin_lines, setup),
        cmocka_unit_test_setup(test_pin_min_max, setup),
        cmocka_unit_test_setup(test_pin_cancel_wipes, setup),
        cmocka_unit_test_setup(test_pin_timeout, setup),
        cmocka_unit_test_setup(test_pin_abort_and_stale_keys, setup),
        cmocka_unit_test_setup(test_confirm, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
