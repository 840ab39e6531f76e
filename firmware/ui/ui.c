/* ui: the appliance's screens and keypad, see ui.h.
 *
 * Every screen is 4 lines of at most 21 characters (UTF-8, counted in
 * characters by ui_layout), given whole to port_ui_show with its stable name,
 * on every change. The waiting functions run one loop (ui_wait_key): they
 * sleep in port_ui_wait_key for at most a second at a time and call the wait
 * hook about once a second, so the CCID layer keeps the host waiting with time
 * extensions (CCID rev 1.1 §6.2.7); deadlines come from port_time_us.
 * PIN digits live only in the caller's buffer and in the masked count shown:
 * nothing here keeps a copy, and the caller's buffer is wiped on every path
 * that does not hand the PIN back (fw_wipe). */
#include "ui.h"

#include "fw_util.h"
#include "port_time.h"
#include "port_ui.h"
#include "ui_layout.h"
#include "ui_text.h"

#define UI_PIN_MAX            12u /* ISO 9564-1: PINs of 4 to 12 digits */
#define UI_PIN_TIMEOUT_MS     30000u
#define UI_CONFIRM_TIMEOUT_MS 60000u
#define UI_HOOK_PERIOD_US     1000000u /* the wait hook: about once a second */
#define UI_CONTENT_MAX        (UI_SUMMARY_LINES_MAX + 2u)

_Static_assert(PORT_UI_LINES == 4, "the screens are laid out for 4 lines");
_Static_assert(UI_PIN_MAX <= PORT_UI_COLUMNS, "a masked PIN fits on one line");

typedef struct {
    ui_lang_t lang;
    ui_wait_hook_t hook;
    void *hook_ctx;
    bool abort;
    bool card_present;     /* resting screen: idle or insert-card */
    bool transient;        /* a result or error screen is shown */
    uint64_t transient_us; /* since when */
    const char *screen;
    char lines[PORT_UI_LINES][UI_LINE_BYTES];
} ui_state_t;

static ui_state_t ui;

typedef enum { UI_WAIT_KEY, UI_WAIT_TIMEOUT, UI_WAIT_ABORT } ui_wait_t;

static const ui_strings_t *ui_str(void)
{
    return ui_strings(ui.lang);
}

/* Lays out and shows one screen; NULL lines are blank. */
static void ui_show(const char *name, const char *l0, const char *l1, const char *l2,
                    const char *l3)
{
    const char *in[PORT_UI_LINES] = {l0, l1, l2, l3};
    const char *out[PORT_UI_LINES];
    for (size_t i = 0; i < PORT_UI_LINES; i++) {
        (void)ui_fit(ui.lines[i], sizeof ui.lines[i], in[i], PORT_UI_COLUMNS);
        out[i] = ui.lines[i];
    }
    ui.screen = name;
    port_ui_show(name, out);
}

/* Drops keys pressed before a question was asked: a key typed for an
 * earlier screen must never become a PIN digit or an OK. */
static void ui_flush_keys(void)
{
    for (unsigned i = 0; i < 64u && port_ui_key() != PORT_KEY_NONE; i++) {
    }
}

/* Waits for one key until deadline_us, calling the hook about once a second. */
static ui_wait_t ui_wait_key(uint64_t deadline_us, uint64_t *next_hook_us, port_key_t *key)
{
    for (;;) {
        uint64_t now = port_time_us();
        if (now >= *next_hook_us) {
            *next_hook_us = now + UI_HOOK_PERIOD_US;
            if (ui.hook != NULL)
                ui.hook(ui.hook_ctx);
        }
        if (ui.abort)
            return UI_WAIT_ABORT;
        if (now >= deadline_us)
            return UI_WAIT_TIMEOUT;
        uint64_t until = deadline_us < *next_hook_us ? deadline_us : *next_hook_us;
        uint64_t slice = until > now ? until - now : 1u;
        if (slice > UI_HOOK_PERIOD_US)
            slice = UI_HOOK_PERIOD_US;
        port_key_t k = port_ui_wait_key((uint32_t)slice);
        if (ui.abort)
            return UI_WAIT_ABORT;
        if (k != PORT_KEY_NONE) {
            *key = k;
            return UI_WAIT_KEY;
        }
    }
}

static bool ui_is_digit(port_key_t k)
{
    return k >= (port_key_t)'0' && k <= (port_key_t)'9';
}

/* ---- public API ---- */

void ui_init(void)
{
    fw_wipe(&ui, sizeof ui);
    ui.lang = UI_LANG_FR;
    ui.screen = "idle";
}

void ui_set_lang(ui_lang_t lang)
{
    ui.lang = lang == UI_LANG_EN ? UI_LANG_EN : UI_LANG_FR;
}

ui_lang_t ui_lang(void)
{
    return ui.lang;
}

void ui_set_wait_hook(ui_wait_hook_t hook, void *ctx)
{
    ui.hook = hook;
    ui.hook_ctx = ctx;
}

void ui_abort(void)
{
    ui.abort = true;
}

const char *ui_screen(void)
{
    return ui.screen != NULL ? ui.screen : "idle";
}

const char *ui_text(ui_text_t id)
{
    FW_VERIFY((unsigned)id < (unsigned)UI_TXT_COUNT, "");
    const char *t = ui_str()->texts[id];
    return t != NULL ? t : "";
}

void ui_tries_text(int tries, char *out, size_t cap)
{
    if (out == NULL || cap == 0)
        return;
    out[0] = 0;
    if (tries < 0)
        return;
    const ui_strings_t *s = ui_str();
    if (tries == 0) {
        (void)ui_fit(out, cap, s->tries_none, PORT_UI_COLUMNS);
        return;
    }
    /* The number, then the words: no printf in the firmware. */
    char num[4];
    size_t n = 0;
    unsigned v = tries > 99 ? 99u : (unsigned)tries;
    if (v >= 10u)
        num[n++] = (char)('0' + v / 10u);
    num[n++] = (char)('0' + v % 10u);
    num[n] = 0;
    (void)ui_fit(out, cap, num, PORT_UI_COLUMNS);
    (void)ui_append(out, cap, v == 1u ? s->tries_one : s->tries_many, PORT_UI_COLUMNS);
}

void ui_show_idle(bool card_present)
{
    const ui_strings_t *s = ui_str();
    ui.card_present = card_present;
    ui.transient = false;
    if (card_present)
        ui_show("idle", s->app, s->card_ready, s->ready, NULL);
    else
        ui_show("insert-card", s->app, s->insert_card, NULL, NULL);
}

static void ui_show_transient(const char *name, const char *line1, const char *line2)
{
    ui_show(name, line1, line2, NULL, NULL);
    ui.transient = true;
    ui.transient_us = port_time_us();
}

void ui_show_result(const char *line1, const char *line2)
{
    ui_show_transient("result", line1, line2);
}

void ui_show_error(const char *line1, const char *line2)
{
    ui_show_transient("error", line1, line2);
}

void ui_poll(void)
{
    /* At rest no key means anything: drop them as they come, so the keypad
     * queue never fills and nothing typed now reaches a later question. */
    ui_flush_keys();
    if (ui.transient && port_time_us() - ui.transient_us >= (uint64_t)UI_RESULT_SHOW_MS * 1000u)
        ui_show_idle(ui.card_present);
}

/* ---- PIN entry ---- */

static void ui_pin_draw(const ui_pin_request_t *req, size_t digits)
{
    const ui_strings_t *s = ui_str();
    const char *title = req->confirm_pin ? s->confirm_pin : req->new_pin ? s->new_pin : s->pin;
    char mask[PORT_UI_COLUMNS + 1u];
    char tries[UI_LINE_BYTES];
    size_t i = 0;
    for (; i < digits && i < PORT_UI_COLUMNS; i++)
        mask[i] = '*';
    mask[i] = 0;
    /* The tries left matter for the holder's own PIN, not for a new one. */
    ui_tries_text(req->new_pin || req->confirm_pin ? -1 : req->tries_left, tries, sizeof tries);
    const char *last = req->purpose != NULL && req->purpose[0] != 0 ? req->purpose : s->pin_hint;
    ui_show("pin-entry", title, mask, tries, last);
}

ui_result_t ui_pin_entry(const ui_pin_request_t *req, uint8_t *pin, size_t cap, size_t *len)
{
    FW_VERIFY(req != NULL && pin != NULL && len != NULL, UI_ERR_PARAM);
    *len = 0;
    size_t max = req->max_len;
    size_t min = req->min_len != 0 ? req->min_len : 1u;
    FW_VERIFY(max >= 1u && max <= UI_PIN_MAX && min <= max && cap >= max, UI_ERR_PARAM);

    uint32_t timeout_ms = req->timeout_ms != 0 ? req->timeout_ms : UI_PIN_TIMEOUT_MS;
    uint64_t now = port_time_us();
    uint64_t deadline = now + (uint64_t)timeout_ms * 1000u;
    uint64_t next_hook = now; /* a first time extension at once */
    size_t n = 0;
    ui_result_t res = UI_TIMEOUT;
    ui.abort = false;
    ui.transient = false;
    ui_flush_keys();
    ui_pin_draw(req, 0);
    for (;;) {
        port_key_t k = PORT_KEY_NONE;
        ui_wait_t w = ui_wait_key(deadline, &next_hook, &k);
        if (w != UI_WAIT_KEY) {
            res = w == UI_WAIT_TIMEOUT ? UI_TIMEOUT : UI_CANCELLED;
            break;
        }
        if (ui_is_digit(k)) {
            if (n < max) {
                pin[n++] = (uint8_t)k;
                ui_pin_draw(req, n);
                if (req->submit_at_max && n == max) {
                    res = UI_OK;
                    break;
                }
            }
        } else if (k == PORT_KEY_CLEAR) {
            if (n > 0) {
                pin[--n] = 0;
                ui_pin_draw(req, n);
            }
        } else if (k == PORT_KEY_OK) {
            if (n >= min) {
                res = UI_OK;
                break;
            }
        } else if (k == PORT_KEY_CANCEL) {
            res = UI_CANCELLED;
            break;
        }
    }
    if (res != UI_OK) {
        fw_wipe(pin, cap);
        return res;
    }
    *len = n;
    return UI_OK;
}

/* ---- confirmation ---- */

typedef struct {
    const char *content[UI_CONTENT_MAX];
    size_t count;
} ui_scroll_t;

static void ui_confirm_draw(const ui_confirm_t *what, const ui_scroll_t *sc, size_t top)
{
    const ui_strings_t *s = ui_str();
    const char *l1 = top < sc->count ? sc->content[top] : NULL;
    const char *l2 = top + 1u < sc->count ? sc->content[top + 1u] : NULL;
    ui_show("confirm-signature", what->unannounced ? s->unannounced : s->sign, l1, l2,
            what->fingerprint);
}

ui_result_t ui_confirm(const ui_confirm_t *what)
{
    FW_VERIFY(what != NULL && what->line_count <= UI_SUMMARY_LINES_MAX, UI_ERR_PARAM);
    /* The fingerprint must be a terminated string within its array. */
    bool terminated = false;
    for (size_t i = 0; i < sizeof what->fingerprint; i++)
        terminated = terminated || what->fingerprint[i] == 0;
    FW_VERIFY(terminated, UI_ERR_PARAM);

    const ui_strings_t *s = ui_str();
    ui_scroll_t sc = {.count = 0};
    for (size_t i = 0; i < what->line_count; i++)
        sc.content[sc.count++] = what->lines[i] != NULL ? what->lines[i] : "";
    /* The keys close the list, so scrolling to its end shows what to do. */
    sc.content[sc.count++] = s->hint_ok;
    sc.content[sc.count++] = s->hint_cancel;

    uint32_t timeout_ms = what->timeout_ms != 0 ? what->timeout_ms : UI_CONFIRM_TIMEOUT_MS;
    uint64_t now = port_time_us();
    uint64_t deadline = now + (uint64_t)timeout_ms * 1000u;
    uint64_t next_hook = now;
    size_t top = 0;
    ui.abort = false;
    ui.transient = false;
    ui_flush_keys();
    ui_confirm_draw(what, &sc, top);
    for (;;) {
        port_key_t k = PORT_KEY_NONE;
        ui_wait_t w = ui_wait_key(deadline, &next_hook, &k);
        if (w == UI_WAIT_TIMEOUT)
            return UI_TIMEOUT;
        if (w == UI_WAIT_ABORT)
            return UI_CANCELLED;
        if (k == PORT_KEY_OK)
            return UI_OK;
        if (k == PORT_KEY_CANCEL)
            return UI_CANCELLED;
        if (k == (port_key_t)'8' && top + 2u < sc.count) {
            top++;
            ui_confirm_draw(what, &sc, top);
        } else if ((k == (port_key_t)'2' || k == PORT_KEY_CLEAR) && top > 0) {
            top--;
            ui_confirm_draw(what, &sc, top);
        }
    }
}
