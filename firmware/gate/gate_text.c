/* gate_text: see gate_text.h. */
#include "gate_text.h"

#include "crypto.h"
#include "fw_util.h"

static const char gate_hex[] = "0123456789ABCDEF";

typedef struct {
    const char *from, *to, *subject, *att, *content, *key, *key_sig, *key_aut, *digest1, *digest256;
} gate_labels_t;

static const gate_labels_t gate_fr = {
    .from = "De : ",
    .to = "À : ",
    .subject = "Objet : ",
    .att = "PJ : ",
    .content = "Contenu : ",
    .key = "Clé ",
    .key_sig = "signature",
    .key_aut = "authentification",
    .digest1 = "Empreinte SHA-1 :",
    .digest256 = "Empreinte SHA-256 :",
};
static const gate_labels_t gate_en = {
    .from = "From: ",
    .to = "To: ",
    .subject = "Subject: ",
    .att = "Att.: ",
    .content = "Content: ",
    .key = "Key: ",
    .key_sig = "signature",
    .key_aut = "authentication",
    .digest1 = "SHA-1 digest:",
    .digest256 = "SHA-256 digest:",
};

static size_t gate_strlen(const char *s)
{
    size_t n = 0;
    while (s[n] != '\0')
        n++;
    return n;
}

/* Line builder: appends UTF-8 bytes, starting a new line after 21 characters. */
typedef struct {
    gate_text_t *t;
    size_t bytes; /* in the current line */
    size_t chars;
    bool open; /* a current line exists */
} gate_w_t;

static bool gate_w_newline(gate_w_t *w, bool continuation)
{
    gate_text_t *t = w->t;
    if (t->cut)
        return false;
    if (t->count + 1u >= UI_SUMMARY_LINES_MAX) {
        /* Last line left: say the summary goes on. */
        if (t->count < UI_SUMMARY_LINES_MAX) {
            static const char ell[] = "…";
            fw_memcpy(t->line[t->count], ell, sizeof ell);
            t->count++;
        }
        t->cut = true;
        w->open = false;
        return false;
    }
    fw_memset(t->line[t->count], 0, GATE_TEXT_LINE_BYTES);
    t->count++;
    w->bytes = 0;
    w->chars = 0;
    w->open = true;
    if (continuation) {
        t->line[t->count - 1u][0] = ' ';
        t->line[t->count - 1u][1] = ' ';
        w->bytes = 2;
        w->chars = 2;
    }
    return true;
}

/* Appends s[0..n) (valid UTF-8) to the open line, wrapping. */
static void gate_w_put(gate_w_t *w, const uint8_t *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        size_t cl = 1;
        if (s[i] >= 0xF0u)
            cl = 4;
        else if (s[i] >= 0xE0u)
            cl = 3;
        else if (s[i] >= 0xC0u)
            cl = 2;
        if (cl > n - i)
            return; /* cannot happen with checked UTF-8 */
        if (!w->open)
            return;
        if (w->chars >= GATE_TEXT_COLS && !gate_w_newline(w, true))
            return;
        char *line = w->t->line[w->t->count - 1u];
        if (w->bytes + cl >= GATE_TEXT_LINE_BYTES) {
            fw_bug(__FILE__, __LINE__);
            return;
        }
        fw_memcpy(line + w->bytes, s + i, cl);
        w->bytes += cl;
        w->chars++;
        i += cl;
    }
}

static void gate_w_str(gate_w_t *w, const char *s)
{
    gate_w_put(w, (const uint8_t *)s, gate_strlen(s));
}

/* A field: label and value on a new line, wrapped. */
static void gate_w_field(gate_w_t *w, const char *label, const uint8_t *v, size_t n)
{
    if (!gate_w_newline(w, false))
        return;
    gate_w_str(w, label);
    gate_w_put(w, v, n);
}

static void gate_w_hex(gate_w_t *w, const uint8_t *d, size_t n, bool spaced)
{
    for (size_t i = 0; i < n; i++) {
        char h[3] = {gate_hex[d[i] >> 4], gate_hex[d[i] & 15u], ' '};
        gate_w_put(w, (const uint8_t *)h, spaced && i + 1u < n ? 3u : 2u);
    }
}

/* Size for humans: "812 o", "13 Ko", "2,4 Mo" (English: B, KB, MB with "."). */
static void gate_w_size(gate_w_t *w, uint32_t size, bool english)
{
    char buf[24];
    size_t n = 0;
    uint32_t whole, tenth = 0;
    const char *unit;
    bool with_tenth = false;
    if (size < 1024u) {
        whole = size;
        unit = english ? " B" : " o";
    } else if (size < 1024u * 1024u) {
        whole = (size + 1023u) / 1024u;
        unit = english ? " KB" : " Ko";
    } else {
        uint32_t t = size / (1024u * 1024u / 10u);
        whole = t / 10u;
        tenth = t % 10u;
        with_tenth = true;
        unit = english ? " MB" : " Mo";
    }
    char rev[12];
    size_t r = 0;
    do {
        rev[r++] = (char)('0' + whole % 10u);
        whole /= 10u;
    } while (whole != 0 && r < sizeof rev);
    buf[n++] = '(';
    while (r > 0)
        buf[n++] = rev[--r];
    if (with_tenth) {
        buf[n++] = english ? '.' : ',';
        buf[n++] = (char)('0' + tenth);
    }
    for (size_t i = 0; unit[i] != '\0'; i++)
        buf[n++] = unit[i];
    buf[n++] = ')';
    /* " (96 Ko)" after the name, or on a line of its own when it does not fit. */
    if (w->open && w->chars + 1u + n > GATE_TEXT_COLS) {
        if (!gate_w_newline(w, true))
            return;
    } else {
        gate_w_put(w, (const uint8_t *)" ", 1);
    }
    gate_w_put(w, (const uint8_t *)buf, n);
}

static void gate_text_reset(gate_text_t *t, gate_w_t *w)
{
    fw_memset(t, 0, sizeof *t);
    w->t = t;
    w->bytes = 0;
    w->chars = 0;
    w->open = false;
}

void gate_text_announced(gate_text_t *t, const gate_announce_t *a, bool english)
{
    const gate_labels_t *l = english ? &gate_en : &gate_fr;
    gate_w_t w;
    gate_text_reset(t, &w);
    gate_w_field(&w, l->from, a->from.p, a->from.len);
    for (size_t i = 0; i < a->to_count; i++)
        gate_w_field(&w, l->to, a->to[i].p, a->to[i].len);
    if (a->has_subject)
        gate_w_field(&w, l->subject, a->subject.p, a->subject.len);
    for (size_t i = 0; i < a->att_count; i++) {
        gate_w_field(&w, l->att, a->att_name[i].p, a->att_name[i].len);
        gate_w_size(&w, a->att_size[i], english);
    }
    if (gate_w_newline(&w, false)) {
        gate_w_str(&w, l->content);
        gate_w_hex(&w, a->content_digest, 4, true);
    }
}

void gate_text_digest(gate_text_t *t, uint8_t key_ref, const uint8_t *digest, size_t len,
                      bool english)
{
    const gate_labels_t *l = english ? &gate_en : &gate_fr;
    gate_w_t w;
    gate_text_reset(t, &w);
    if (gate_w_newline(&w, false)) {
        gate_w_str(&w, l->key);
        gate_w_str(&w, key_ref == 0x82u ? l->key_aut : l->key_sig);
    }
    if (gate_w_newline(&w, false))
        gate_w_str(&w, len == 20u ? l->digest1 : l->digest256);
    /* 8 bytes per line: "3FA2910C 7B11D2E4" (17 characters). */
    for (size_t off = 0; off < len; off += 8u) {
        if (!gate_w_newline(&w, false))
            return;
        size_t n = len - off < 8u ? len - off : 8u;
        gate_w_hex(&w, digest + off, n < 4u ? n : 4u, false);
        if (n > 4u) {
            gate_w_put(&w, (const uint8_t *)" ", 1);
            gate_w_hex(&w, digest + off + 4u, n - 4u, false);
        }
    }
}

void gate_text_fingerprint(char out[24], const uint8_t *digest, size_t len)
{
    size_t n = len < GATE_FINGERPRINT_BYTES ? len : GATE_FINGERPRINT_BYTES;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (i)
            out[o++] = ' ';
        out[o++] = gate_hex[digest[i] >> 4];
        out[o++] = gate_hex[digest[i] & 15u];
    }
    out[o] = '\0';
}

bool gate_text_sha256(const gate_text_t *t, bool announced, const char *fingerprint,
                      uint8_t out[32])
{
    static const char head[] = "cachet-display-v1\n";
    static const char ann[] = "announced\n";
    static const char unann[] = "unannounced\n";
    static const uint8_t nl = '\n';
    crypto_sha256_t c;
    bool ok = crypto_sha256_begin(&c) == CRYPTO_OK &&
              crypto_sha256_update(&c, (const uint8_t *)head, sizeof head - 1u) == CRYPTO_OK;
    if (ok && announced)
        ok = crypto_sha256_update(&c, (const uint8_t *)ann, sizeof ann - 1u) == CRYPTO_OK;
    else if (ok)
        ok = crypto_sha256_update(&c, (const uint8_t *)unann, sizeof unann - 1u) == CRYPTO_OK;
    for (size_t i = 0; ok && i < t->count; i++)
        ok = crypto_sha256_update(&c, (const uint8_t *)t->line[i], gate_strlen(t->line[i])) ==
                 CRYPTO_OK &&
             crypto_sha256_update(&c, &nl, 1) == CRYPTO_OK;
    if (ok)
        ok = crypto_sha256_update(&c, (const uint8_t *)fingerprint, gate_strlen(fingerprint)) ==
                 CRYPTO_OK &&
             crypto_sha256_update(&c, &nl, 1) == CRYPTO_OK;
    if (crypto_sha256_end(&c, out) != CRYPTO_OK)
        ok = false;
    return ok;
}
