/* fake_port_ui: the display, keypad and clock of the ui unit tests (port_ui.h
 * and port_time.h faked at link time). Keys are queued by the test; when the
 * queue is empty, port_ui_wait_key lets the whole timeout pass on the fake
 * clock, so time-outs take no real time. */
#ifndef CACHET_TEST_FAKE_PORT_UI_H
#define CACHET_TEST_FAKE_PORT_UI_H

#include <stddef.h>
#include <stdint.h>

#include "port_ui.h"

#define FAKE_UI_LINE 128

typedef struct {
    char name[32];
    char lines[PORT_UI_LINES][FAKE_UI_LINE];
    unsigned shows;      /* port_ui_show calls */
    unsigned waits;      /* port_ui_wait_key calls */
    uint64_t now_us;     /* the fake clock */
    port_key_t keys[64]; /* queued key presses */
    size_t key_head, key_count;
    /* Keys queued "later": given only after this many waits with an empty
     * queue (lets time extensions happen before the holder types). */
    unsigned idle_waits_before_keys;
    unsigned stale_keys;          /* keys pressed before the question ('9' each) */
    unsigned too_wide;            /* lines shown with more than 21 characters */
    char pin_tries[FAKE_UI_LINE]; /* line 3 of the last "pin-entry" screen */
    unsigned pin_screens;         /* "pin-entry" screens shown */
} fake_ui_t;

extern fake_ui_t fake_ui;

void fake_ui_reset(void);
/* Queues keys: "1234K" = 1 2 3 4 OK; 'C' cancel, 'X' correction. */
void fake_ui_type(const char *keys);

#endif
