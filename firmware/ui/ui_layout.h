/* ui_layout: fitting UTF-8 text to the display's 21 columns (private to ui).
 * Columns are characters (Unicode code points), not bytes: "Insérez" is 7
 * columns and 8 bytes. Pure functions, no port calls, so the unit tests and the
 * fuzzers can drive them directly. */
#ifndef CACHET_UI_LAYOUT_H
#define CACHET_UI_LAYOUT_H

#include <stddef.h>
#include <stdint.h>

#include "port_ui.h"

/* One display line: at most PORT_UI_COLUMNS characters of at most 4 bytes
 * each (RFC 3629 §3), and the terminator. */
#define UI_LINE_BYTES (PORT_UI_COLUMNS * 4u + 1u)

/* Length in bytes of the well-formed UTF-8 sequence at s (RFC 3629 §4: no
 * overlong forms, no surrogates, nothing above U+10FFFF), 0 if s does not
 * start one. Never reads past a NUL. */
size_t ui_utf8_seq_len(const char *s);

/* Number of characters of s (an ill-formed byte counts as one). */
size_t ui_utf8_columns(const char *s);

/* Copies at most cols characters of in (NULL = "") into out (cap bytes,
 * always terminated): ill-formed bytes and control characters become '?',
 * a character that does not fit in cap is dropped with everything after it.
 * Returns the number of characters written. */
size_t ui_fit(char *out, size_t cap, const char *in, size_t cols);

/* Appends in to the line in out (cap bytes, terminated) without exceeding
 * cols characters in total. Returns the new number of characters. */
size_t ui_append(char *out, size_t cap, const char *in, size_t cols);

#endif
