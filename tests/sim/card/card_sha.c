/* card_sha: SHA-1 / SHA-256 compression functions and padding (FIPS 180-4
 * §5.1.1, §6.1.2, §6.2.2), used to finish a hash from an intermediate state. */
#include "card_sha.h"

#include <string.h>

static uint32_t rol32(uint32_t x, unsigned n)
{
    return (x << n) | (x >> (32 - n));
}
static uint32_t ror32(uint32_t x, unsigned n)
{
    return (x >> n) | (x << (32 - n));
}

static uint32_t get_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* FIPS 180-4 §6.1.2 */
static void sha1_block(uint32_t h[5], const uint8_t *blk)
{
    uint32_t w[80];
    for (unsigned t = 0; t < 16; t++)
        w[t] = get_be32(blk + 4 * t);
    for (unsigned t = 16; t < 80; t++)
        w[t] = rol32(w[t - 3] ^ w[t - 8] ^ w[t - 14] ^ w[t - 16], 1);
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
    for (unsigned t = 0; t < 80; t++) {
        uint32_t f, k;
        if (t < 20) {
            f = (b & c) | (~b & d);
            k = 0x5a827999u;
        } else if (t < 40) {
            f = b ^ c ^ d;
            k = 0x6ed9eba1u;
        } else if (t < 60) {
            f = (b & c) | (b & d) | (c & d);
            k = 0x8f1bbcdcu;
        } else {
            f = b ^ c ^ d;
            k = 0xca62c1d6u;
        }
        uint32_t tmp = rol32(a, 5) + f + e + k + w[t];
        e = d;
        d = c;
        c = rol32(b, 30);
        b = a;
        a = tmp;
    }
    h[0] += a;
    h[1] += b;
    h[2] += c;
    h[3] += d;
    h[4] += e;
}

static const uint32_t sha256_k[64] = {
    0x428a2f98u, 0x71374491u, 0xb5c0fbcfu, 0xe9b5dba5u, 0x3956c25bu, 0x59f111f1u, 0x923f82a4u,
    0xab1c5ed5u, 0xd807aa98u, 0x12835b01u, 0x243185beu, 0x550c7dc3u, 0x72be5d74u, 0x80deb1feu,
    0x9bdc06a7u, 0xc19bf174u, 0xe49b69c1u, 0xefbe4786u, 0x0fc19dc6u, 0x240ca1ccu, 0x2de92c6fu,
    0x4a7484aau, 0x5cb0a9dcu, 0x76f988dau, 0x983e5152u, 0xa831c66du, 0xb00327c8u, 0xbf597fc7u,
    0xc6e00bf3u, 0xd5a79147u, 0x06ca6351u, 0x14292967u, 0x27b70a85u, 0x2e1b2138u, 0x4d2c6dfcu,
    0x53380d13u, 0x650a7354u, 0x766a0abbu, 0x81c2c92eu, 0x92722c85u, 0xa2bfe8a1u, 0xa81a664bu,
    0xc24b8b70u, 0xc76c51a3u, 0xd192e819u, 0xd6990624u, 0xf40e3585u, 0x106aa070u, 0x19a4c116u,
    0x1e376c08u, 0x2748774cu, 0x34b0bcb5u, 0x391c0cb3u, 0x4ed8aa4au, 0x5b9cca4fu, 0x682e6ff3u,
    0x748f82eeu, 0x78a5636fu, 0x84c87814u, 0x8cc70208u, 0x90befffau, 0xa4506cebu, 0xbef9a3f7u,
    0xc67178f2u,
};

/* FIPS 180-4 §6.2.2 */
static void sha256_block(uint32_t h[8], const uint8_t *blk)
{
    uint32_t w[64];
    for (unsigned t = 0; t < 16; t++)
        w[t] = get_be32(blk + 4 * t);
    for (unsigned t = 16; t < 64; t++) {
        uint32_t s0 = ror32(w[t - 15], 7) ^ ror32(w[t - 15], 18) ^ (w[t - 15] >> 3);
        uint32_t s1 = ror32(w[t - 2], 17) ^ ror32(w[t - 2], 19) ^ (w[t - 2] >> 10);
        w[t] = w[t - 16] + s0 + w[t - 7] + s1;
    }
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7];
    for (unsigned t = 0; t < 64; t++) {
        uint32_t t1 = hh + (ror32(e, 6) ^ ror32(e, 11) ^ ror32(e, 25)) + ((e & f) ^ (~e & g)) +
                      sha256_k[t] + w[t];
        uint32_t t2 = (ror32(a, 2) ^ ror32(a, 13) ^ ror32(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
        hh = g;
        g = f;
        f = e;
        e = d + t1;
        d = c;
        c = b;
        b = a;
        a = t1 + t2;
    }
    h[0] += a;
    h[1] += b;
    h[2] += c;
    h[3] += d;
    h[4] += e;
    h[5] += f;
    h[6] += g;
    h[7] += hh;
}

size_t card_hash_len(card_hash_t alg)
{
    switch (alg) {
    case CARD_HASH_SHA1:
        return CARD_SHA1_LEN;
    case CARD_HASH_SHA256:
        return CARD_SHA256_LEN;
    }
    return 0;
}

static void compress(card_hash_t alg, uint32_t *h, const uint8_t *blk)
{
    if (alg == CARD_HASH_SHA1)
        sha1_block(h, blk);
    else
        sha256_block(h, blk);
}

bool card_hash_finish(card_hash_t alg, const uint8_t *state, uint64_t bits_done, const uint8_t *msg,
                      size_t len, uint8_t *out)
{
    static const uint32_t iv1[5] = {0x67452301u, 0xefcdab89u, 0x98badcfeu, 0x10325476u,
                                    0xc3d2e1f0u};
    static const uint32_t iv256[8] = {0x6a09e667u, 0xbb67ae85u, 0x3c6ef372u, 0xa54ff53au,
                                      0x510e527fu, 0x9b05688cu, 0x1f83d9abu, 0x5be0cd19u};
    size_t words = card_hash_len(alg) / 4;
    if (words == 0 || (bits_done % 512) != 0 || (state == NULL && bits_done != 0))
        return false;
    /* The total length in bits must fit the 64-bit length field. */
    if ((uint64_t)len > (UINT64_MAX - bits_done) / 8)
        return false;
    uint32_t h[8];
    for (size_t i = 0; i < words; i++)
        h[i] = state ? get_be32(state + 4 * i) : (alg == CARD_HASH_SHA1 ? iv1[i] : iv256[i]);
    uint64_t total_bits = bits_done + (uint64_t)len * 8;
    while (len >= 64) {
        compress(alg, h, msg);
        msg += 64;
        len -= 64;
    }
    /* §5.1.1: 1 bit, zeros, 64-bit big-endian length. */
    uint8_t tail[128];
    memset(tail, 0, sizeof tail);
    if (len)
        memcpy(tail, msg, len);
    tail[len] = 0x80;
    size_t tail_len = (len < 56) ? 64 : 128;
    for (unsigned i = 0; i < 8; i++)
        tail[tail_len - 1 - i] = (uint8_t)(total_bits >> (8 * i));
    compress(alg, h, tail);
    if (tail_len == 128)
        compress(alg, h, tail + 64);
    for (size_t i = 0; i < words; i++)
        put_be32(out + 4 * i, h[i]);
    return true;
}
