/* receipts: see receipts.h. */
#include "receipts.h"

#include "fw_util.h"
#include "port_flash.h"

/* ---- flash records ---- */

#define RCP_KEY_SECTOR   0u
#define RCP_LOG_SECTOR_A 1u
#define RCP_LOG_SECTOR_B 2u

/* Key record: "CACHETK1", version, 3 reserved, d (32), Q (65), 3 padding,
 * SHA-256 of the 112 bytes before it. */
#define RCP_KEY_MAGIC_LEN   8u
#define RCP_KEY_OFF_VERSION 8u
#define RCP_KEY_OFF_PRIV    12u
#define RCP_KEY_OFF_PUB     (RCP_KEY_OFF_PRIV + CRYPTO_P256_PRIV_LEN)
#define RCP_KEY_OFF_SUM     112u
#define RCP_KEY_LEN         (RCP_KEY_OFF_SUM + CRYPTO_SHA256_LEN)
#define RCP_KEY_VERSION     1u
_Static_assert(RCP_KEY_OFF_PUB + CRYPTO_P256_PUB_LEN <= RCP_KEY_OFF_SUM, "key record layout");
_Static_assert(RCP_KEY_LEN <= 256u, "the key record fits the smallest sector");

#define RCP_LOG_REC_LEN 8u
#define RCP_COUNTER_END 0xFFFFFFFEu

static const uint8_t rcp_key_magic[RCP_KEY_MAGIC_LEN] = {'C', 'A', 'C', 'H', 'E', 'T', 'K', '1'};
static const uint8_t rcp_body_magic[4] = {'C', 'R', 'C', 'P'};

typedef struct {
    uint32_t counter;
    size_t len;
    uint8_t bytes[RECEIPTS_MAX_LEN];
} rcp_slot_t;

static struct {
    bool have_key;
    uint8_t priv[CRYPTO_P256_PRIV_LEN];
    uint8_t pub[CRYPTO_P256_PUB_LEN];
    uint32_t counter;    /* last counter issued */
    uint32_t log_sector; /* the counter log sector in use */
    uint32_t log_next;   /* next unused record index in it (== records per sector: full) */
    uint8_t dev_flags;
    rcp_slot_t kept[RECEIPTS_KEEP];
    uint32_t kept_next;
} rcp;

static bool rcp_all_ff(const uint8_t *p, size_t n)
{
    uint8_t acc = 0xFF;
    for (size_t i = 0; i < n; i++)
        acc &= p[i];
    return acc == 0xFF;
}

static uint32_t rcp_records_per_sector(void)
{
    return port_flash_sector_size() / RCP_LOG_REC_LEN;
}

/* ---- the key record ---- */

typedef enum { RCP_KEY_VALID, RCP_KEY_ERASED, RCP_KEY_DAMAGED } rcp_key_state_t;

static rcp_key_state_t rcp_key_load(void)
{
    uint8_t rec[RCP_KEY_LEN];
    uint32_t base = RCP_KEY_SECTOR * port_flash_sector_size();
    if (port_flash_read(base, rec, sizeof rec) != PORT_OK)
        return RCP_KEY_DAMAGED;
    if (rcp_all_ff(rec, sizeof rec))
        return RCP_KEY_ERASED;
    rcp_key_state_t st = RCP_KEY_DAMAGED;
    uint8_t sum[CRYPTO_SHA256_LEN];
    uint8_t pub[CRYPTO_P256_PUB_LEN];
    if (fw_memeq_ct(rec, rcp_key_magic, RCP_KEY_MAGIC_LEN) &&
        rec[RCP_KEY_OFF_VERSION] == RCP_KEY_VERSION &&
        crypto_sha256(rec, RCP_KEY_OFF_SUM, sum) == CRYPTO_OK &&
        fw_memeq_ct(sum, rec + RCP_KEY_OFF_SUM, sizeof sum) &&
        /* The stored public key must be the private key's (a flipped bit in
         * a field the checksum also covers is caught twice). */
        crypto_p256_public(rec + RCP_KEY_OFF_PRIV, pub) == CRYPTO_OK &&
        fw_memeq_ct(pub, rec + RCP_KEY_OFF_PUB, sizeof pub)) {
        fw_memcpy(rcp.priv, rec + RCP_KEY_OFF_PRIV, sizeof rcp.priv);
        fw_memcpy(rcp.pub, pub, sizeof rcp.pub);
        st = RCP_KEY_VALID;
    }
    fw_wipe(rec, sizeof rec);
    return st;
}

static bool rcp_key_store(void)
{
    uint8_t rec[RCP_KEY_LEN];
    fw_memset(rec, 0, sizeof rec);
    fw_memcpy(rec, rcp_key_magic, RCP_KEY_MAGIC_LEN);
    rec[RCP_KEY_OFF_VERSION] = RCP_KEY_VERSION;
    fw_memcpy(rec + RCP_KEY_OFF_PRIV, rcp.priv, sizeof rcp.priv);
    fw_memcpy(rec + RCP_KEY_OFF_PUB, rcp.pub, sizeof rcp.pub);
    bool ok =
        crypto_sha256(rec, RCP_KEY_OFF_SUM, rec + RCP_KEY_OFF_SUM) == CRYPTO_OK &&
        port_flash_erase(RCP_KEY_SECTOR) == PORT_OK &&
        port_flash_write(RCP_KEY_SECTOR * port_flash_sector_size(), rec, sizeof rec) == PORT_OK;
    fw_wipe(rec, sizeof rec);
    return ok;
}

/* ---- the counter log ---- */

/* Scans one log sector: largest valid counter, first unused record, and
 * whether anything in it is neither valid nor erased. */
static void rcp_log_scan(uint32_t sector, uint32_t *max, bool *any, uint32_t *next, bool *damaged)
{
    uint32_t n = rcp_records_per_sector();
    uint32_t base = sector * port_flash_sector_size();
    *max = 0;
    *any = false;
    *next = 0; /* records are appended: the slot after the last one used */
    *damaged = false;
    for (uint32_t i = 0; i < n; i++) {
        uint8_t r[RCP_LOG_REC_LEN];
        if (port_flash_read(base + i * RCP_LOG_REC_LEN, r, sizeof r) != PORT_OK) {
            *damaged = true;
            *next = n;
            return;
        }
        if (rcp_all_ff(r, sizeof r))
            continue;
        *next = i + 1u;
        uint32_t c = fw_get_be32(r), inv = fw_get_be32(r + 4);
        if ((c ^ inv) != 0xFFFFFFFFu || c > RCP_COUNTER_END) {
            *damaged = true; /* an interrupted write, or worse */
            continue;
        }
        if (!*any || c > *max)
            *max = c;
        *any = true;
    }
}

static void rcp_log_load(void)
{
    uint32_t ma, na, mb, nb;
    bool aa, ab, da, db;
    rcp_log_scan(RCP_LOG_SECTOR_A, &ma, &aa, &na, &da);
    rcp_log_scan(RCP_LOG_SECTOR_B, &mb, &ab, &nb, &db);
    if (da || db)
        rcp.dev_flags |= RECEIPTS_DEV_LOG_DAMAGED;
    if (ab && (!aa || mb > ma)) {
        rcp.counter = mb;
        rcp.log_sector = RCP_LOG_SECTOR_B;
        rcp.log_next = nb;
    } else {
        rcp.counter = aa ? ma : 0;
        rcp.log_sector = RCP_LOG_SECTOR_A;
        rcp.log_next = na;
    }
}

/* Appends value to the log (switching sectors when full). */
static bool rcp_log_append(uint32_t value)
{
    uint8_t r[RCP_LOG_REC_LEN];
    fw_put_be32(r, value);
    fw_put_be32(r + 4, ~value);
    if (rcp.log_next >= rcp_records_per_sector()) {
        uint32_t other = rcp.log_sector == RCP_LOG_SECTOR_A ? RCP_LOG_SECTOR_B : RCP_LOG_SECTOR_A;
        /* The full sector keeps the old maximum until the new one is written. */
        if (port_flash_erase(other) != PORT_OK)
            return false;
        rcp.log_sector = other;
        rcp.log_next = 0;
    }
    uint32_t off = rcp.log_sector * port_flash_sector_size() + rcp.log_next * RCP_LOG_REC_LEN;
    rcp.log_next++; /* a failed write leaves a slot that is not unused either */
    if (port_flash_write(off, r, sizeof r) != PORT_OK)
        return false;
    uint8_t back[RCP_LOG_REC_LEN];
    return port_flash_read(off, back, sizeof back) == PORT_OK && fw_memeq_ct(back, r, sizeof r);
}

/* ---- public API ---- */

receipts_status_t receipts_init(void)
{
    fw_wipe(&rcp, sizeof rcp);
    (void)crypto_init();
    FW_VERIFY(port_flash_sector_size() >= 256u && port_flash_sectors() >= 3u, RECEIPTS_ERR_FLASH);
    rcp_log_load();
    rcp_key_state_t ks = rcp_key_load();
    if (ks == RCP_KEY_VALID) {
        rcp.have_key = true;
        return RECEIPTS_OK;
    }
    if (ks == RCP_KEY_DAMAGED)
        rcp.dev_flags |= RECEIPTS_DEV_FLASH_CORRUPT;
    if (crypto_p256_keygen(rcp.priv, rcp.pub) != CRYPTO_OK) {
        rcp.dev_flags |= RECEIPTS_DEV_NO_KEY;
        return RECEIPTS_ERR_NO_KEY;
    }
    rcp.have_key = true;
    rcp.dev_flags |= RECEIPTS_DEV_KEY_NEW;
    if (!rcp_key_store()) {
        rcp.dev_flags |= RECEIPTS_DEV_KEY_VOLATILE;
        return RECEIPTS_ERR_FLASH;
    }
    return RECEIPTS_OK;
}

receipts_status_t receipts_issue(const receipts_event_t *ev, uint32_t *counter)
{
    FW_VERIFY(ev != NULL && counter != NULL && ev->digest != NULL && ev->display_sha256 != NULL,
              RECEIPTS_ERR_PARAM);
    FW_VERIFY(ev->digest_len > 0 && ev->digest_len <= RECEIPTS_DIGEST_MAX, RECEIPTS_ERR_PARAM);
    FW_VERIFY(rcp.have_key, RECEIPTS_ERR_NO_KEY);
    FW_VERIFY(rcp.counter < RCP_COUNTER_END, RECEIPTS_ERR_EXHAUSTED);
    uint32_t c = rcp.counter + 1u;
    /* The counter is stored before anything is signed with it: a receipt
     * number is never used twice, even across a power loss. */
    FW_VERIFY(rcp_log_append(c), RECEIPTS_ERR_FLASH);
    rcp.counter = c;

    rcp_slot_t *s = &rcp.kept[rcp.kept_next % RECEIPTS_KEEP];
    uint8_t *b = s->bytes;
    fw_memset(b, 0, sizeof s->bytes);
    fw_memcpy(b, rcp_body_magic, sizeof rcp_body_magic);
    b[4] = RECEIPTS_VERSION;
    b[5] = ev->key_ref;
    b[6] = ev->flags;
    b[7] = (uint8_t)ev->digest_len;
    fw_put_be32(b + 8, c);
    fw_memcpy(b + 12, ev->digest, ev->digest_len);
    fw_memcpy(b + 44, ev->display_sha256, CRYPTO_SHA256_LEN);
    _Static_assert(44u + CRYPTO_SHA256_LEN == RECEIPTS_BODY_LEN, "receipt body layout");

    uint8_t h[CRYPTO_SHA256_LEN];
    size_t sig_len = 0;
    if (crypto_sha256(b, RECEIPTS_BODY_LEN, h) != CRYPTO_OK ||
        crypto_p256_sign(rcp.priv, h, b + RECEIPTS_BODY_LEN + 1u, CRYPTO_ECDSA_SIG_MAX, &sig_len) !=
            CRYPTO_OK) {
        s->len = 0;
        return RECEIPTS_ERR_CRYPTO;
    }
    b[RECEIPTS_BODY_LEN] = (uint8_t)sig_len;
    s->counter = c;
    s->len = RECEIPTS_BODY_LEN + 1u + sig_len;
    rcp.kept_next++;
    *counter = c;
    return RECEIPTS_OK;
}

receipts_status_t receipts_get(uint32_t counter, uint8_t *out, size_t cap, size_t *len)
{
    FW_VERIFY(out != NULL && len != NULL, RECEIPTS_ERR_PARAM);
    *len = 0;
    if (counter == RECEIPTS_LAST)
        counter = rcp.counter;
    for (size_t i = 0; i < RECEIPTS_KEEP; i++) {
        const rcp_slot_t *s = &rcp.kept[i];
        if (s->len == 0 || s->counter != counter)
            continue;
        FW_VERIFY(cap >= s->len, RECEIPTS_ERR_PARAM);
        fw_memcpy(out, s->bytes, s->len);
        *len = s->len;
        return RECEIPTS_OK;
    }
    return RECEIPTS_ERR_NOT_FOUND;
}

receipts_status_t receipts_public_key(uint8_t *out, size_t cap, size_t *len)
{
    FW_VERIFY(out != NULL && len != NULL, RECEIPTS_ERR_PARAM);
    *len = 0;
    FW_VERIFY(rcp.have_key, RECEIPTS_ERR_NO_KEY);
    size_t n = crypto_p256_spki(rcp.pub, out, cap);
    FW_VERIFY(n != 0, RECEIPTS_ERR_PARAM);
    *len = n;
    return RECEIPTS_OK;
}

uint32_t receipts_counter(void)
{
    return rcp.counter;
}

uint8_t receipts_device_flags(void)
{
    return rcp.dev_flags;
}
