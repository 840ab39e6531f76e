/* cachet CLI: private interfaces between its files.
 *   cli.c      options, commands, the conversation with cachetd
 *   cli_msg.c  French / English messages (French unless LC_ALL, LC_MESSAGES or
 *              LANG starts with "en")
 *   cli_pin.c  reading the PIN from --pin-fd N or /dev/tty without echo */
#ifndef CACHET_CLI_H
#define CACHET_CLI_H

#include <stdbool.h>
#include <stddef.h>

/* Exit codes (documented in --help and docs/cachet.md). */
enum {
    CLI_EXIT_OK = 0,
    CLI_EXIT_FAILED = 1, /* e.g. signature invalid, audit log altered */
    CLI_EXIT_USAGE = 2,
    CLI_EXIT_UNREACHABLE = 3, /* cachetd not running / not answering */
    CLI_EXIT_NO_CARD = 4,     /* no reader, no card, card removed */
    CLI_EXIT_PIN = 5,         /* PIN incorrect, blocked or required */
    CLI_EXIT_CANCELLED = 6,   /* cancelled or timed out */
    CLI_EXIT_REFUSED = 7,     /* denied, untrusted signer, too large */
};

#define CLI_PIN_MAX 16

typedef enum {
    M_UNREACHABLE = 0,
    M_NO_READER,
    M_NO_CARD,
    M_CARD_REMOVED,
    M_PIN_REQUIRED,
    M_PIN_INCORRECT,
    M_PIN_BLOCKED,
    M_PIN_FORMAT,
    M_CANCELLED,
    M_TIMEOUT,
    M_DENIED,
    M_TOO_LARGE,
    M_UNTRUSTED,
    M_BAD_SIGNATURE,
    M_SIGNER_MISMATCH,
    M_NOT_MIME,
    M_NOT_SUPPORTED,
    M_BACKEND,
    M_INTERNAL,
    M_VERSION,
    M_PIN_PROMPT,
    M_PIN_PROMPT_TRIES,
    M_PIN_ON_READER,
    M_PIN_EMPTY,
    M_TRIES_LEFT,
    M_TRIES_SHORT,
    M_READER,
    M_READER_NONE,
    M_PINPAD_YES,
    M_PINPAD_NO,
    M_CARD,
    M_CARD_ABSENT,
    M_CARD_PRESENT,
    M_CARD_NOT_READY,
    M_HOLDER,
    M_PIN_STATE,
    M_PIN_VERIFIED,
    M_PIN_NOT_VERIFIED,
    M_SERVICE,
    M_PROFESSION,
    M_CARD_TYPE,
    M_STRUCTURE,
    M_EMAIL,
    M_VALIDITY,
    M_CHAIN,
    M_CHAIN_OK,
    M_CHAIN_BAD,
    M_KEYS,
    M_SIGNED_OK,
    M_VERIFY_OK,
    M_VERIFY_FROM_OK,
    M_VERIFY_FROM_BAD,
    M_VERIFY_BAD,
    M_LOGIN_OK,
    M_PIN_OK,
    M_AUDIT_OK,
    M_AUDIT_BAD,
    M_AUDIT_EMPTY,
    M_EV_INSERTED,
    M_EV_REMOVED,
    M_EV_READER_ADDED,
    M_EV_READER_GONE,
    M_EV_PIN_NEEDED,
    M_EV_FINISHED,
    M_EV_WAITING,
    M_CHALLENGE_TOO_BIG,
    M_FILE_ERROR,
    /* the appliance's device key and receipts (issue 5) */
    M_DEVICE,
    M_DEVICE_FPR,
    M_DEVICE_KEY,
    M_DEVICE_PINNED_NOW,
    M_DEVICE_MATCH,
    M_DEVICE_MISMATCH,
    M_DEVICE_REPINNED,
    M_DEVICE_NO_KEY,
    M_DEVICE_REPLACED,
    M_DEVICE_PIN_ERROR,
    M_RECEIPTS_OK,
    M_RECEIPTS_NONE,
    M_RECEIPTS_BAD,
    M_RECEIPTS_SKIPPED,
    M_SIGNED_RECEIPT,
    M_RECEIPT_UNTRUSTED,
    M_SIGNED_UNANNOUNCED,
    M_COUNT
} cli_msg_t;

/* The message in the user's language (printf format for some). */
const char *cli_msg(cli_msg_t m);
bool cli_lang_en(void);
/* Message id for a protocol error code. */
cli_msg_t cli_msg_for_code(const char *code);
/* Exit code for a protocol error code. */
int cli_exit_for_code(const char *code);
/* The whole help text, or one command's ("status", ...); NULL if unknown. */
const char *cli_help(const char *command);

/* Reads the PIN (first line of fd, or /dev/tty without echo with prompt).
 * Returns false if none could be read. pin has CLI_PIN_MAX + 1 bytes. */
bool cli_pin_from_fd(int fd, char *pin);
bool cli_pin_from_tty(const char *prompt, char *pin);
void cli_wipe(void *p, size_t n);

/* `cachet sendmail` (cli_sendmail.c): returns a sysexits(3) code. */
int cli_sendmail_main(const char *socket_path, int pin_fd, int argc, char **argv);

#endif
