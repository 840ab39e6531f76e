/* Fuzz target: the vendor Escape commands and the gate behind them
 * (firmware/gate: gate_escape.c, gate_announce.c incl. the signedAttrs DER
 * reader, gate.c) with a fake card and a fake ui (tests/unit/gate).
 *
 * Input: the whole input first goes to the announcement parser as one
 * message; then it is read as records: kind (1 byte), length (1 byte),
 * payload. kind & 3 = 0: an Escape abData after the class byte; 1: a command
 * APDU through the gate; 2: the card is reset; 3: the ui's next answer
 * (payload[0] % 3: OK, Cancel, time-out). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fake_flash_rng.h"
#include "gate.h"
#include "gate_announce.h"
#include "gate_fakes.h"
#include "receipts.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int booted;
    if (!booted) {
        fake_flash_erase_all();
        if (receipts_init() != RECEIPTS_OK)
            abort();
        booted = 1;
    }
    gate_announce_t ann;
    if (gate_announce_parse(data, size, &ann) == GATE_ANN_OK &&
        (ann.to_count == 0 || ann.content_digest == NULL))
        abort();

    fakes_reset();
    gate_init();
    gate_card_reset();
    uint8_t out[300];
    for (size_t i = 0; i + 2 <= size;) {
        uint8_t kind = data[i] & 3u;
        size_t n = data[i + 1];
        i += 2;
        if (n > size - i)
            n = size - i;
        const uint8_t *p = data + i;
        i += n;
        if (kind == 0) {
            size_t ol = 0;
            uint8_t err = 0xEE;
            /* The CCID answer buffer: ICC_RAPDU_MAX bytes. */
            if (gate_escape(p, n, out, 258, &ol, &err)) {
                if (ol < 3 || ol > 258)
                    abort();
            } else if (err != 0) {
                abort();
            }
        } else if (kind == 1) {
            size_t rl = 0;
            size_t before = fake_card.count;
            if (gate_transceive(p, n, out, 258, &rl) == ICC_OK && (rl < 2 || rl > 258))
                abort();
            (void)before;
        } else if (kind == 2) {
            gate_card_reset();
        } else {
            fake_ui.answer = n ? (ui_result_t)(p[0] % 3u) : UI_OK;
        }
    }
    return 0;
}
