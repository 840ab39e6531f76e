/* fake_port: a scripted card behind port_icc.h / port_time.h for the icc unit
 * tests. The script is a list of steps run in order: wait for RST to go high,
 * expect exact bytes from the reader, queue bytes the card sends back (each
 * may come after a virtual delay), remove the card. Time is virtual: a
 * receive that times out advances the clock by its timeout, so tests of WWT,
 * BWT and friends take no real time. */
#ifndef CACHET_TEST_FAKE_PORT_H
#define CACHET_TEST_FAKE_PORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Empties the script; card present, contacts off, time 0. */
void fake_reset(void);

/* Script steps. */
void fake_on_rst(void);                           /* wait for RST rising */
void fake_expect(const uint8_t *p, size_t n);     /* reader must send these */
void fake_expect_hex(const char *hex);
void fake_reply(const uint8_t *p, size_t n);      /* card sends these */
/* Hex bytes; a token "+N" delays the next byte by N virtual microseconds,
 * a token "!" makes the next byte arrive with a character (parity) error. */
void fake_reply_hex(const char *hex);
void fake_remove(void); /* card leaves once what it queued has been read */

void fake_set_present(bool present);

/* True when every step ran and nothing unexpected was sent. */
bool fake_done(void);
/* First problem seen (mismatch, unexpected bytes), or NULL. */
const char *fake_error(void);

/* Virtual clock and what the reader did with the contacts. */
uint64_t fake_now(void);
bool fake_vcc(void);
bool fake_rst(void);
uint32_t fake_clock(void);
uint16_t fake_f(void);
uint8_t fake_d(void);
uint8_t fake_n(void);
bool fake_inverse(void);
/* Contact events as text, e.g. "rst0 conv0 timing372/1/0 vcc1 clk5000000 rst1 ". */
const char *fake_events(void);
/* Everything the reader sent, in order. */
const uint8_t *fake_tx_log(size_t *n);

#endif
