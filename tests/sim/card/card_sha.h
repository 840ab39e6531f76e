/* card_sha: SHA-1 and SHA-256 (FIPS 180-4) finished from an intermediate
 * state, as an IAS-ECC card does for PSO HASH with tag 90 = state ‖ bit
 * counter (shared/spec/cpx-card.md §10.3, part A item 3).
 *
 * The host hashes every whole 64-byte block itself and sends the chaining
 * value H0..Hn (big-endian words), the number of bits already hashed (8 bytes,
 * big-endian, a multiple of 512) and the last partial block; the card pads and
 * runs the remaining compressions. A tiny block function of our own, so the
 * card does not depend on OpenSSL's deprecated low-level SHA API. */
#ifndef CACHET_CARD_SHA_H
#define CACHET_CARD_SHA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum { CARD_SHA1_LEN = 20, CARD_SHA256_LEN = 32 };

typedef enum { CARD_HASH_SHA1 = 1, CARD_HASH_SHA256 = 2 } card_hash_t;

/* Digest length of alg (20 or 32), 0 for an unknown alg. */
size_t card_hash_len(card_hash_t alg);

/* Finishes a hash. state: the chaining value (card_hash_len(alg) bytes,
 * big-endian words) or NULL to start from the initial value; bits_done: bits
 * already hashed (must be a multiple of 512 and 0 when state is NULL);
 * msg/len: the rest of the message (any length). false on a bad bit counter
 * or an overflowing total length. */
bool card_hash_finish(card_hash_t alg, const uint8_t *state, uint64_t bits_done, const uint8_t *msg,
                      size_t len, uint8_t *out);

#endif
