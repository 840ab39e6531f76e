/* gate_int: between gate.c (state machine) and gate_escape.c (vendor
 * commands): the announcement upload. Private to firmware/gate. */
#ifndef CACHET_GATE_INT_H
#define CACHET_GATE_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gate_announce.h"

/* Escape status byte (docs/appliance.md). */
typedef enum {
    GATE_ST_OK = 0x00,
    GATE_ST_LENGTH = 0x01,      /* a length over its cap, or truncated */
    GATE_ST_FORMAT = 0x02,      /* malformed field, unknown tag, missing field */
    GATE_ST_DIGEST = 0x03,      /* signedAttrs lack the announced content digest */
    GATE_ST_STATE = 0x04,       /* out of order */
    GATE_ST_NOT_FOUND = 0x05,   /* no such receipt */
    GATE_ST_UNAVAILABLE = 0x06, /* no device key */
    GATE_ST_VALUE = 0x07,       /* a configuration value out of range */
} gate_st_t;

/* GET_STATUS flags. */
#define GATE_STATUS_ANNOUNCED 0x01u /* an announcement waits for its signature */
#define GATE_STATUS_CONFIRMED 0x02u /* a confirmed digest waits for the card */
#define GATE_STATUS_UPLOADING 0x04u /* ANNOUNCE_BEGIN seen, END not yet */

gate_st_t gate_ann_begin(size_t total);
gate_st_t gate_ann_data(size_t off, const uint8_t *p, size_t n);
/* Parses and checks the uploaded message; digest = what the card may sign. */
gate_st_t gate_ann_end(uint8_t digest[GATE_ANN_DIGEST_LEN]);
void gate_ann_clear(void);
uint8_t gate_status_flags(void);

#endif
