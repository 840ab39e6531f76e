/* fake_port_ui: see fake_port_ui.h. */
#include "fake_port_ui.h"

#include <string.h>

#include "port_time.h"
#include "ui_layout.h"

fake_ui_t fake_ui;

void fake_ui_reset(void)
{
    memset(&fake_ui, 0, sizeof fake_ui);
    fake_ui.now_us = 1000000u;
}

void fake_ui_type(const char *keys)
{
    for (; *keys; keys++) {
        size_t i = (fake_ui.key_head + fake_ui.key_count) % 64u;
        fake_ui.keys[i] = (port_key_t)*keys;
        fake_ui.key_count++;
    }
}

uint64_t port_time_us(void)
{
    return fake_ui.now_us;
}

void port_ui_show(const char *name, const char *const lines[PORT_UI_LINES])
{
    strncpy(fake_ui.name, name, sizeof fake_ui.name - 1u);
    for (size_t i = 0; i < PORT_UI_LINES; i++) {
        strncpy(fake_ui.lines[i], lines[i], FAKE_UI_LINE - 1u);
        fake_ui.lines[i][FAKE_UI_LINE - 1u] = 0;
        if (ui_utf8_columns(lines[i]) > PORT_UI_COLUMNS)
            fake_ui.too_wide++;
    }
    fake_ui.shows++;
    if (strcmp(name, "pin-entry") == 0) {
        strncpy(fake_ui.pin_tries, lines[2], FAKE_UI_LINE - 1u);
        fake_ui.pin_screens++;
    }
}

port_key_t port_ui_key(void)
{
    if (fake_ui.stale_keys > 0) {
        fake_ui.stale_keys--;
        return (port_key_t)'9';
    }
    return PORT_KEY_NONE;
}

port_key_t port_ui_wait_key(uint32_t timeout_us)
{
    fake_ui.waits++;
    if (fake_ui.key_count > 0 && fake_ui.idle_waits_before_keys == 0) {
        port_key_t k = fake_ui.keys[fake_ui.key_head];
        fake_ui.key_head = (fake_ui.key_head + 1u) % 64u;
        fake_ui.key_count--;
        fake_ui.now_us += 100000u; /* a human presses a key every 100 ms */
        return k;
    }
    if (fake_ui.idle_waits_before_keys > 0)
        fake_ui.idle_waits_before_keys--;
    fake_ui.now_us += timeout_us;
    return PORT_KEY_NONE;
}
