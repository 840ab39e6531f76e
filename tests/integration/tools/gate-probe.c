/* gate-probe: a PC/SC client for the gate's integration tests: it speaks the
 * appliance's vendor commands (CCID Escape through SCardControl with
 * IOCTL_SMARTCARD_VENDOR_IFD_EXCHANGE = SCARD_CTL_CODE(1); docs/appliance.md
 * "Vendor commands (CCID Escape)") and sends APDUs, all in one connection to
 * the card (so that no card reset clears the gate's state in between).
 *
 *   gate-probe mkannounce MSG SATTRS KEY=VALUE...
 *       writes an ANNOUNCE message to MSG and the CMS signedAttrs (contentType
 *       id-data, messageDigest) to SATTRS. Keys: from=, to= (repeatable),
 *       subject=, attach=NAME:SIZE (repeatable), content=HEX (SHA-256 of the
 *       content), md=HEX (messageDigest put in signedAttrs; default: content),
 *       digest=HEX (a signed digest instead of signedAttrs).
 *   gate-probe run STEP...   one connection, steps in order; each prints a line:
 *       announce:FILE        upload, "announce ST [DIGEST]"
 *       apdu:HEX             "DATA SW" (61xx fetched with GET RESPONSE)
 *       escape:HEX           raw abData (class byte included), "ST PAYLOAD"
 *       info:SPKI_FILE       "info FLAGS COUNTER VERSION", the device key to the file
 *       status               "status FLAGS OUTCOME RECEIPT TIMEOUT AUTH LANG"
 *       receipt:N|last:FILE  "receipt ST LENGTH", the receipt to the file
 *       config:timeout=S | auth=N | lang=N   "config ST"
 * Exit status: 0 all steps done (whatever the card or the gate answered),
 * 1 PC/SC failure, 2 usage. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <PCSC/reader.h>
#include <PCSC/winscard.h>
#include <PCSC/wintypes.h>

#define GP_CLASS   0xCA
#define GP_VERSION 0x01
#define GP_MAX     4096

static int fail(const char *what, LONG rv)
{
    fprintf(stderr, "gate-probe: %s: %s\n", what, pcsc_stringify_error(rv));
    return 1;
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Hex (spaces allowed) to bytes; -1 on a bad string. */
static long parse_hex(const char *s, uint8_t *out, size_t cap)
{
    size_t n = 0;
    int half = -1;
    for (; *s; s++) {
        if (*s == ' ')
            continue;
        int v = hexval(*s);
        if (v < 0)
            return -1;
        if (half < 0) {
            half = v;
        } else {
            if (n >= cap)
                return -1;
            out[n++] = (uint8_t)(half << 4 | v);
            half = -1;
        }
    }
    return half < 0 ? (long)n : -1;
}

static void print_hex(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        printf("%02X", p[i]);
}

static int write_file(const char *path, const uint8_t *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(p, 1, n, f) != n) {
        if (f)
            fclose(f);
        fprintf(stderr, "gate-probe: cannot write %s\n", path);
        return 1;
    }
    return fclose(f) == 0 ? 0 : 1;
}

/* ---- mkannounce ---- */

static size_t put_field(uint8_t *m, size_t o, size_t cap, uint8_t tag, const uint8_t *v, size_t n)
{
    if (o + 3 + n > cap || n > 0xFFFF) {
        fprintf(stderr, "gate-probe: announcement too long\n");
        exit(2);
    }
    m[o] = tag;
    m[o + 1] = (uint8_t)(n >> 8);
    m[o + 2] = (uint8_t)n;
    memcpy(m + o + 3, v, n);
    return o + 3 + n;
}

static int cmd_mkannounce(int argc, char **argv)
{
    if (argc < 2)
        return 2;
    static uint8_t m[GP_MAX];
    uint8_t content[32], md[32], digest[32], sattrs[128];
    int has_content = 0, has_md = 0, has_digest = 0;
    size_t o = 0;
    for (int i = 2; i < argc; i++) {
        char *a = argv[i];
        char *eq = strchr(a, '=');
        if (!eq)
            return 2;
        *eq = '\0';
        const char *v = eq + 1;
        if (!strcmp(a, "from")) {
            o = put_field(m, o, sizeof m, 0x01, (const uint8_t *)v, strlen(v));
        } else if (!strcmp(a, "to")) {
            o = put_field(m, o, sizeof m, 0x02, (const uint8_t *)v, strlen(v));
        } else if (!strcmp(a, "subject")) {
            o = put_field(m, o, sizeof m, 0x03, (const uint8_t *)v, strlen(v));
        } else if (!strcmp(a, "attach")) {
            const char *colon = strrchr(v, ':');
            if (!colon)
                return 2;
            uint8_t att[512];
            size_t nl = (size_t)(colon - v);
            if (nl + 4 > sizeof att)
                return 2;
            unsigned long size = strtoul(colon + 1, NULL, 10);
            att[0] = (uint8_t)(size >> 24);
            att[1] = (uint8_t)(size >> 16);
            att[2] = (uint8_t)(size >> 8);
            att[3] = (uint8_t)size;
            memcpy(att + 4, v, nl);
            o = put_field(m, o, sizeof m, 0x04, att, nl + 4);
        } else if (!strcmp(a, "content")) {
            if (parse_hex(v, content, sizeof content) != 32)
                return 2;
            has_content = 1;
        } else if (!strcmp(a, "md")) {
            if (parse_hex(v, md, sizeof md) != 32)
                return 2;
            has_md = 1;
        } else if (!strcmp(a, "digest")) {
            if (parse_hex(v, digest, sizeof digest) != 32)
                return 2;
            has_digest = 1;
        } else {
            return 2;
        }
    }
    if (!has_content)
        return 2;
    if (!has_md)
        memcpy(md, content, 32);
    o = put_field(m, o, sizeof m, 0x05, content, 32);
    /* SET OF { contentType id-data, messageDigest md } (RFC 5652 §5.3, §11). */
    static const uint8_t head[] = {
        0x31, 0x4B, 0x30, 0x18, 0x06, 0x09, 0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x09, 0x03,
        0x31, 0x0B, 0x06, 0x09, 0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x07, 0x01, 0x30, 0x2F,
        0x06, 0x09, 0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x09, 0x04, 0x31, 0x22, 0x04, 0x20};
    memcpy(sattrs, head, sizeof head);
    memcpy(sattrs + sizeof head, md, 32);
    size_t sl = sizeof head + 32;
    if (has_digest)
        o = put_field(m, o, sizeof m, 0x07, digest, 32);
    else
        o = put_field(m, o, sizeof m, 0x06, sattrs, sl);
    return write_file(argv[0], m, o) || write_file(argv[1], sattrs, sl);
}

/* ---- run ---- */

typedef struct {
    SCARDHANDLE card;
    DWORD proto;
} gp_t;

/* One vendor command: abData = class, version, cmd, payload. Returns the
 * status byte (or -1 on a PC/SC failure), payload of the answer to out. */
static int gp_escape(gp_t *g, uint8_t cmd, const uint8_t *p, size_t n, uint8_t *out, size_t *olen)
{
    uint8_t in[300], r[300];
    if (n + 3 > sizeof in)
        return -1;
    in[0] = GP_CLASS;
    in[1] = GP_VERSION;
    in[2] = cmd;
    if (n)
        memcpy(in + 3, p, n);
    DWORD rl = 0;
    LONG rv = SCardControl(g->card, SCARD_CTL_CODE(1), in, (DWORD)(n + 3), r, sizeof r, &rl);
    if (rv != SCARD_S_SUCCESS) {
        fail("SCardControl", rv);
        return -1;
    }
    if (rl < 3 || r[0] != GP_VERSION || r[1] != cmd) {
        fprintf(stderr, "gate-probe: malformed vendor answer\n");
        return -1;
    }
    if (out) {
        memcpy(out, r + 3, rl - 3);
        *olen = rl - 3;
    }
    return r[2];
}

static int step_announce(gp_t *g, const char *path)
{
    static uint8_t m[GP_MAX];
    FILE *f = fopen(path, "rb");
    if (!f)
        return 2;
    size_t n = fread(m, 1, sizeof m, f);
    fclose(f);
    uint8_t p[256], out[64];
    size_t ol = 0;
    p[0] = (uint8_t)(n >> 8);
    p[1] = (uint8_t)n;
    int st = gp_escape(g, 0x10, p, 2, NULL, NULL);
    for (size_t off = 0; st == 0 && off < n; off += 200) {
        size_t k = n - off < 200 ? n - off : 200;
        p[0] = (uint8_t)(off >> 8);
        p[1] = (uint8_t)off;
        memcpy(p + 2, m + off, k);
        st = gp_escape(g, 0x11, p, k + 2, NULL, NULL);
    }
    if (st == 0)
        st = gp_escape(g, 0x12, NULL, 0, out, &ol);
    if (st < 0)
        return 1;
    printf("announce %02X", st);
    if (st == 0) {
        putchar(' ');
        print_hex(out, ol);
    }
    putchar('\n');
    return 0;
}

static int step_apdu(gp_t *g, const char *hex)
{
    uint8_t cmd[300], r[GP_MAX], all[GP_MAX];
    long clen = parse_hex(hex, cmd, sizeof cmd);
    if (clen < 4)
        return 2;
    size_t total = 0;
    const SCARD_IO_REQUEST *pci = g->proto == SCARD_PROTOCOL_T1 ? SCARD_PCI_T1 : SCARD_PCI_T0;
    for (;;) {
        DWORD rl = sizeof r;
        LONG rv = SCardTransmit(g->card, pci, cmd, (DWORD)clen, NULL, r, &rl);
        if (rv != SCARD_S_SUCCESS)
            return fail("SCardTransmit", rv);
        if (rl < 2)
            return 1;
        if (total + rl - 2 > sizeof all)
            return 1;
        memcpy(all + total, r, rl - 2);
        total += rl - 2;
        uint8_t sw1 = r[rl - 2], sw2 = r[rl - 1];
        if (sw1 != 0x61) {
            if (total) {
                print_hex(all, total);
                putchar(' ');
            }
            printf("%02X%02X\n", sw1, sw2);
            return 0;
        }
        /* ISO/IEC 7816-4 §5.1.3: more bytes available. */
        uint8_t gr[5] = {0x00, 0xC0, 0x00, 0x00, sw2};
        memcpy(cmd, gr, sizeof gr);
        clen = sizeof gr;
    }
}

static int step_escape(gp_t *g, const char *hex)
{
    uint8_t in[300], r[300];
    long n = parse_hex(hex, in, sizeof in);
    if (n < 0)
        return 2;
    DWORD rl = 0;
    LONG rv = SCardControl(g->card, SCARD_CTL_CODE(1), in, (DWORD)n, r, sizeof r, &rl);
    if (rv != SCARD_S_SUCCESS) {
        /* Refused by the appliance (deny by default) or by the driver. */
        printf("escape refused %s\n", pcsc_stringify_error(rv));
        return 0;
    }
    printf("escape ");
    print_hex(r, rl);
    putchar('\n');
    return 0;
}

static int step_info(gp_t *g, const char *path)
{
    uint8_t o[300];
    size_t ol = 0;
    int st = gp_escape(g, 0x01, NULL, 0, o, &ol);
    if (st < 0)
        return 1;
    if (st != 0 || ol < 9 || 9u + o[8] > ol) {
        printf("info %02X\n", st);
        return 0;
    }
    printf("info %02X %lu %u.%u.%u\n", o[0],
           (unsigned long)o[1] << 24 | (unsigned long)o[2] << 16 | (unsigned long)o[3] << 8 | o[4],
           o[5], o[6], o[7]);
    return path ? write_file(path, o + 9, o[8]) : 0;
}

static int step_status(gp_t *g)
{
    uint8_t o[300];
    size_t ol = 0;
    int st = gp_escape(g, 0x02, NULL, 0, o, &ol);
    if (st < 0)
        return 1;
    if (st != 0 || ol < 10) {
        printf("status %02X\n", st);
        return 0;
    }
    printf("status %02X %u %lu %u %u %u\n", o[0], o[1],
           (unsigned long)o[2] << 24 | (unsigned long)o[3] << 16 | (unsigned long)o[4] << 8 | o[5],
           (unsigned)(o[6] << 8 | o[7]), o[8], o[9]);
    return 0;
}

static int step_receipt(gp_t *g, char *arg)
{
    char *colon = strchr(arg, ':');
    if (!colon)
        return 2;
    *colon = '\0';
    unsigned long sel = !strcmp(arg, "last") ? 0xFFFFFFFFul : strtoul(arg, NULL, 10);
    uint8_t p[4] = {(uint8_t)(sel >> 24), (uint8_t)(sel >> 16), (uint8_t)(sel >> 8), (uint8_t)sel};
    uint8_t o[300];
    size_t ol = 0;
    int st = gp_escape(g, 0x20, p, 4, o, &ol);
    if (st < 0)
        return 1;
    printf("receipt %02X %zu\n", st, st == 0 ? ol : 0);
    return st == 0 ? write_file(colon + 1, o, ol) : 0;
}

static int step_config(gp_t *g, const char *kv)
{
    uint8_t p[8];
    size_t n = 0;
    unsigned long v = strtoul(strchr(kv, '=') ? strchr(kv, '=') + 1 : "", NULL, 10);
    if (!strncmp(kv, "timeout=", 8)) {
        uint8_t f[] = {0x01, 0x00, 0x02, (uint8_t)(v >> 8), (uint8_t)v};
        memcpy(p, f, sizeof f);
        n = sizeof f;
    } else if (!strncmp(kv, "auth=", 5) || !strncmp(kv, "lang=", 5)) {
        uint8_t f[] = {kv[0] == 'a' ? 0x02 : 0x03, 0x00, 0x01, (uint8_t)v};
        memcpy(p, f, sizeof f);
        n = sizeof f;
    } else {
        return 2;
    }
    int st = gp_escape(g, 0x03, p, n, NULL, NULL);
    if (st < 0)
        return 1;
    printf("config %02X\n", st);
    return 0;
}

static int cmd_run(int argc, char **argv)
{
    SCARDCONTEXT ctx;
    LONG rv = SCardEstablishContext(SCARD_SCOPE_SYSTEM, NULL, NULL, &ctx);
    if (rv != SCARD_S_SUCCESS)
        return fail("SCardEstablishContext", rv);
    char *list = NULL;
    DWORD len = SCARD_AUTOALLOCATE;
    rv = SCardListReaders(ctx, NULL, (LPSTR)&list, &len);
    if (rv != SCARD_S_SUCCESS) {
        SCardReleaseContext(ctx);
        return fail("SCardListReaders", rv);
    }
    gp_t g;
    rv = SCardConnect(ctx, list, SCARD_SHARE_SHARED, SCARD_PROTOCOL_T0 | SCARD_PROTOCOL_T1, &g.card,
                      &g.proto);
    SCardFreeMemory(ctx, list);
    if (rv != SCARD_S_SUCCESS) {
        SCardReleaseContext(ctx);
        return fail("SCardConnect", rv);
    }
    int rc = 0;
    for (int i = 0; i < argc && rc == 0; i++) {
        char *s = argv[i];
        if (!strncmp(s, "announce:", 9))
            rc = step_announce(&g, s + 9);
        else if (!strncmp(s, "apdu:", 5))
            rc = step_apdu(&g, s + 5);
        else if (!strncmp(s, "escape:", 7))
            rc = step_escape(&g, s + 7);
        else if (!strncmp(s, "info:", 5))
            rc = step_info(&g, s + 5);
        else if (!strcmp(s, "status"))
            rc = step_status(&g);
        else if (!strncmp(s, "receipt:", 8))
            rc = step_receipt(&g, s + 8);
        else if (!strncmp(s, "config:", 7))
            rc = step_config(&g, s + 7);
        else
            rc = 2;
        fflush(stdout);
    }
    SCardDisconnect(g.card, SCARD_LEAVE_CARD);
    SCardReleaseContext(ctx);
    return rc;
}

int main(int argc, char **argv)
{
    int rc = 2;
    if (argc >= 2 && !strcmp(argv[1], "mkannounce"))
        rc = cmd_mkannounce(argc - 2, argv + 2);
    else if (argc >= 2 && !strcmp(argv[1], "run"))
        rc = cmd_run(argc - 2, argv + 2);
    if (rc == 2)
        fprintf(stderr, "usage: gate-probe mkannounce MSG SATTRS KEY=VALUE... | run STEP...\n");
    return rc;
}
