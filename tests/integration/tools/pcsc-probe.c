/* pcsc-probe: a small PC/SC client for the integration tests. It talks to the
 * private pcscd of the simulated environment through libpcsclite, as any
 * application would, and drives a CPS3 the way a real one is driven.
 *
 *   pcsc-probe readers                         list readers, one per line
 *   pcsc-probe wait-reader present|absent MS   wait until a reader is (not) listed
 *   pcsc-probe wait-card present|absent MS     wait for the first reader's card state
 *   pcsc-probe wait-reader usable|unusable MS  wait until the first reader works / reports
 *                                              itself unavailable (device gone)
 *   pcsc-probe reader-state                    the first reader's state flags
 *   pcsc-probe watch-card present|absent MS READYFILE
 *                                              arm a status-change wait, create READYFILE,
 *                                              print the CLOCK_REALTIME ms of the change
 *   pcsc-probe status                          protocol and ATR of the card
 *   pcsc-probe apdu HEX...                     send APDUs in one transaction; for each print
 *                                              "<data hex> <SW>"; 61xx answered by GET RESPONSE
 *   pcsc-probe hold CMD ARGS...                run CMD while connected to the card (shared),
 *                                              so it stays powered; exit with CMD's status
 *
 * Exit status: 0 done, 1 failed (timeout, PC/SC error), 2 usage. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <PCSC/winscard.h>
#include <PCSC/wintypes.h>

#define PROBE_MAX_APDU 261
#define PROBE_MAX_RESP 4096

static long long now_ms(clockid_t clk)
{
    struct timespec ts;
    clock_gettime(clk, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int fail(const char *what, LONG rv)
{
    fprintf(stderr, "pcsc-probe: %s: %s\n", what, pcsc_stringify_error(rv));
    return 1;
}

/* First reader name into buf; returns the number of readers (0 if none). */
static int first_reader(SCARDCONTEXT ctx, char *buf, size_t cap, int print)
{
    char *list = NULL;
    DWORD len = SCARD_AUTOALLOCATE;
    LONG rv = SCardListReaders(ctx, NULL, (LPSTR)&list, &len);
    if (rv != SCARD_S_SUCCESS)
        return 0;
    int n = 0;
    for (char *p = list; *p; p += strlen(p) + 1) {
        if (n == 0 && buf) {
            snprintf(buf, cap, "%s", p);
        }
        if (print)
            printf("%s\n", p);
        n++;
    }
    SCardFreeMemory(ctx, list);
    return n;
}

static int parse_hex(const char *s, unsigned char *out, size_t cap, size_t *len)
{
    size_t n = 0;
    int half = -1;
    for (; *s; s++) {
        int v;
        if (*s >= '0' && *s <= '9')
            v = *s - '0';
        else if (*s >= 'a' && *s <= 'f')
            v = *s - 'a' + 10;
        else if (*s >= 'A' && *s <= 'F')
            v = *s - 'A' + 10;
        else if (*s == ' ' || *s == ':')
            continue;
        else
            return -1;
        if (half < 0) {
            half = v;
        } else {
            if (n >= cap)
                return -1;
            out[n++] = (unsigned char)(half << 4 | v);
            half = -1;
        }
    }
    if (half >= 0)
        return -1;
    *len = n;
    return 0;
}

static void print_hex(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        printf("%02X", p[i]);
}

static int cmd_wait_reader(SCARDCONTEXT ctx, int want, long ms)
{
    long long deadline = now_ms(CLOCK_MONOTONIC) + ms;
    for (;;) {
        int n = first_reader(ctx, NULL, 0, 0);
        if ((n > 0) == want)
            return 0;
        long long left = deadline - now_ms(CLOCK_MONOTONIC);
        if (left <= 0) {
            fprintf(stderr, "pcsc-probe: reader still %s after %ld ms\n",
                    want ? "absent" : "present", ms);
            return 1;
        }
        /* Sleep on pcscd's own reader-change notification. */
        SCARD_READERSTATE rs = {.szReader = "\\\\?PnP?\\Notification",
                                .dwCurrentState = SCARD_STATE_UNAWARE};
        SCardGetStatusChange(ctx, 0, &rs, 1);
        rs.dwCurrentState = rs.dwEventState;
        SCardGetStatusChange(ctx, (DWORD)(left < 200 ? left : 200), &rs, 1);
    }
}

static int card_state_matches(DWORD st, int want_present)
{
    if (want_present)
        return (st & SCARD_STATE_PRESENT) != 0;
    return (st & SCARD_STATE_EMPTY) != 0;
}

static int cmd_wait_card(SCARDCONTEXT ctx, int want, long ms, const char *ready)
{
    char reader[256];
    if (first_reader(ctx, reader, sizeof reader, 0) == 0) {
        fprintf(stderr, "pcsc-probe: no reader\n");
        return 1;
    }
    SCARD_READERSTATE rs = {.szReader = reader, .dwCurrentState = SCARD_STATE_UNAWARE};
    LONG rv = SCardGetStatusChange(ctx, 0, &rs, 1);
    if (rv != SCARD_S_SUCCESS)
        return fail("SCardGetStatusChange", rv);
    if (ready) {
        int fd = open(ready, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (fd < 0)
            return 1;
        close(fd);
    } else if (card_state_matches(rs.dwEventState, want)) {
        return 0;
    }
    long long deadline = now_ms(CLOCK_MONOTONIC) + ms;
    for (;;) {
        rs.dwCurrentState = rs.dwEventState & ~SCARD_STATE_CHANGED;
        long long left = deadline - now_ms(CLOCK_MONOTONIC);
        if (left <= 0) {
            fprintf(stderr, "pcsc-probe: card not %s after %ld ms\n",
                    want ? "present" : "absent", ms);
            return 1;
        }
        rv = SCardGetStatusChange(ctx, (DWORD)left, &rs, 1);
        if (rv == SCARD_E_TIMEOUT)
            continue;
        if (rv != SCARD_S_SUCCESS)
            return fail("SCardGetStatusChange", rv);
        if (card_state_matches(rs.dwEventState, want)) {
            if (ready)
                printf("%lld\n", now_ms(CLOCK_REALTIME));
            return 0;
        }
    }
}

static const struct {
    DWORD flag;
    const char *name;
} state_names[] = {
    {SCARD_STATE_IGNORE, "ignore"},     {SCARD_STATE_UNKNOWN, "unknown"},
    {SCARD_STATE_UNAVAILABLE, "unavailable"}, {SCARD_STATE_EMPTY, "empty"},
    {SCARD_STATE_PRESENT, "present"},   {SCARD_STATE_ATRMATCH, "atrmatch"},
    {SCARD_STATE_EXCLUSIVE, "exclusive"}, {SCARD_STATE_INUSE, "inuse"},
    {SCARD_STATE_MUTE, "mute"},         {SCARD_STATE_UNPOWERED, "unpowered"},
};

static int reader_state(SCARDCONTEXT ctx, DWORD *state)
{
    char reader[256];
    if (first_reader(ctx, reader, sizeof reader, 0) == 0)
        return 1;
    SCARD_READERSTATE rs = {.szReader = reader, .dwCurrentState = SCARD_STATE_UNAWARE};
    if (SCardGetStatusChange(ctx, 0, &rs, 1) != SCARD_S_SUCCESS)
        return 1;
    *state = rs.dwEventState;
    return 0;
}

static int cmd_reader_state(SCARDCONTEXT ctx)
{
    DWORD st;
    if (reader_state(ctx, &st))
        return 1;
    for (size_t i = 0; i < sizeof state_names / sizeof state_names[0]; i++)
        if (st & state_names[i].flag)
            printf("%s ", state_names[i].name);
    printf("\n");
    return 0;
}

/* A reader whose device is gone stays listed by pcscd 1.9.9 (reader.conf
 * readers are never removed) but reports itself unavailable. */
static int reader_unusable(DWORD st)
{
    return (st & (SCARD_STATE_UNKNOWN | SCARD_STATE_UNAVAILABLE)) != 0 ||
           (st & (SCARD_STATE_EMPTY | SCARD_STATE_PRESENT)) == 0;
}

static int cmd_wait_reader_usable(SCARDCONTEXT ctx, int want_usable, long ms)
{
    long long deadline = now_ms(CLOCK_MONOTONIC) + ms;
    for (;;) {
        DWORD st = 0;
        int have = reader_state(ctx, &st) == 0;
        if (have && (!reader_unusable(st)) == want_usable)
            return 0;
        if (now_ms(CLOCK_MONOTONIC) >= deadline) {
            fprintf(stderr, "pcsc-probe: reader still %s after %ld ms\n",
                    want_usable ? "unusable" : "usable", ms);
            return 1;
        }
        char reader[256];
        if (have && first_reader(ctx, reader, sizeof reader, 0) > 0) {
            SCARD_READERSTATE rs = {.szReader = reader, .dwCurrentState = st};
            SCardGetStatusChange(ctx, 100, &rs, 1);
        } else {
            struct timespec ts = {0, 10 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
    }
}

static int connect_card(SCARDCONTEXT ctx, SCARDHANDLE *card, DWORD *proto)
{
    char reader[256];
    if (first_reader(ctx, reader, sizeof reader, 0) == 0) {
        fprintf(stderr, "pcsc-probe: no reader\n");
        return 1;
    }
    LONG rv = SCardConnect(ctx, reader, SCARD_SHARE_SHARED, SCARD_PROTOCOL_T0 | SCARD_PROTOCOL_T1,
                           card, proto);
    if (rv != SCARD_S_SUCCESS)
        return fail("SCardConnect", rv);
    return 0;
}

static int cmd_status(SCARDCONTEXT ctx)
{
    SCARDHANDLE card;
    DWORD proto;
    if (connect_card(ctx, &card, &proto))
        return 1;
    unsigned char atr[MAX_ATR_SIZE];
    DWORD atr_len = sizeof atr, state, rlen = 0;
    LONG rv = SCardStatus(card, NULL, &rlen, &state, &proto, atr, &atr_len);
    if (rv != SCARD_S_SUCCESS)
        return fail("SCardStatus", rv);
    printf("protocol=%s atr=", proto == SCARD_PROTOCOL_T1 ? "T1" : "T0");
    print_hex(atr, atr_len);
    printf("\n");
    SCardDisconnect(card, SCARD_LEAVE_CARD);
    return 0;
}

static int cmd_apdu(SCARDCONTEXT ctx, int argc, char **argv)
{
    SCARDHANDLE card;
    DWORD proto;
    if (connect_card(ctx, &card, &proto))
        return 1;
    LONG rv = SCardBeginTransaction(card);
    if (rv != SCARD_S_SUCCESS)
        return fail("SCardBeginTransaction", rv);
    const SCARD_IO_REQUEST *pci = proto == SCARD_PROTOCOL_T1 ? SCARD_PCI_T1 : SCARD_PCI_T0;
    int rc = 0;
    for (int i = 0; i < argc && rc == 0; i++) {
        unsigned char cmd[PROBE_MAX_APDU], resp[PROBE_MAX_RESP];
        size_t clen;
        if (parse_hex(argv[i], cmd, sizeof cmd, &clen) || clen < 4) {
            fprintf(stderr, "pcsc-probe: bad APDU %s\n", argv[i]);
            rc = 2;
            break;
        }
        size_t total = 0;
        unsigned char sw1 = 0, sw2 = 0;
        for (int round = 0; round < 32; round++) {
            unsigned char r[258];
            DWORD rlen = sizeof r;
            rv = SCardTransmit(card, pci, cmd, (DWORD)clen, NULL, r, &rlen);
            if (rv != SCARD_S_SUCCESS) {
                rc = fail("SCardTransmit", rv);
                break;
            }
            if (rlen < 2) {
                fprintf(stderr, "pcsc-probe: short response\n");
                rc = 1;
                break;
            }
            if (total + rlen - 2 > sizeof resp) {
                rc = 1;
                break;
            }
            memcpy(resp + total, r, rlen - 2);
            total += rlen - 2;
            sw1 = r[rlen - 2];
            sw2 = r[rlen - 1];
            if (sw1 != 0x61)
                break;
            /* ISO/IEC 7816-4 §5.1.3: more bytes available, fetch them. */
            unsigned char gr[5] = {0x00, 0xC0, 0x00, 0x00, sw2};
            memcpy(cmd, gr, sizeof gr);
            clen = sizeof gr;
        }
        if (rc)
            break;
        print_hex(resp, total);
        printf("%s%02X%02X\n", total ? " " : "", sw1, sw2);
    }
    SCardEndTransaction(card, SCARD_LEAVE_CARD);
    SCardDisconnect(card, SCARD_LEAVE_CARD);
    return rc;
}

static int cmd_hold(SCARDCONTEXT ctx, char **argv)
{
    SCARDHANDLE card;
    DWORD proto;
    if (connect_card(ctx, &card, &proto))
        return 1;
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0)
        return 1;
    if (pid == 0) {
        execvp(argv[0], argv);
        _exit(127);
    }
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    SCardDisconnect(card, SCARD_LEAVE_CARD);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 1;
}

static int usage(void)
{
    fprintf(stderr, "usage: pcsc-probe readers | wait-reader present|absent MS | "
                    "wait-reader usable|unusable MS | reader-state | wait-card present|absent MS | watch-card present|absent MS READYFILE | "
                    "status | apdu HEX... | hold CMD...\n");
    return 2;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return usage();
    setvbuf(stdout, NULL, _IOLBF, 0);
    SCARDCONTEXT ctx;
    LONG rv = SCardEstablishContext(SCARD_SCOPE_SYSTEM, NULL, NULL, &ctx);
    if (rv != SCARD_S_SUCCESS)
        return fail("SCardEstablishContext", rv);
    int rc;
    const char *cmd = argv[1];
    if (!strcmp(cmd, "readers")) {
        rc = first_reader(ctx, NULL, 0, 1) > 0 ? 0 : 1;
    } else if (!strcmp(cmd, "wait-reader") && argc == 4 &&
               (!strcmp(argv[2], "usable") || !strcmp(argv[2], "unusable"))) {
        rc = cmd_wait_reader_usable(ctx, !strcmp(argv[2], "usable"), atol(argv[3]));
    } else if (!strcmp(cmd, "reader-state") && argc == 2) {
        rc = cmd_reader_state(ctx);
    } else if (!strcmp(cmd, "wait-reader") && argc == 4) {
        rc = cmd_wait_reader(ctx, !strcmp(argv[2], "present"), atol(argv[3]));
    } else if (!strcmp(cmd, "wait-card") && argc == 4) {
        rc = cmd_wait_card(ctx, !strcmp(argv[2], "present"), atol(argv[3]), NULL);
    } else if (!strcmp(cmd, "watch-card") && argc == 5) {
        rc = cmd_wait_card(ctx, !strcmp(argv[2], "present"), atol(argv[3]), argv[4]);
    } else if (!strcmp(cmd, "status") && argc == 2) {
        rc = cmd_status(ctx);
    } else if (!strcmp(cmd, "hold") && argc >= 3) {
        rc = cmd_hold(ctx, argv + 2);
    } else if (!strcmp(cmd, "apdu") && argc >= 3) {
        rc = cmd_apdu(ctx, argc - 2, argv + 2);
    } else {
        rc = usage();
    }
    SCardReleaseContext(ctx);
    return rc;
}
