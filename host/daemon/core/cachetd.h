/* cachetd core: the one owner of the card (ARCHITECTURE.md §1, issue 3).
 * Private interfaces between the daemon's own files:
 *   config.c   options (command line + $XDG_CONFIG_HOME/cachet/cachetd.conf)
 *   log.c      one line per event, never a secret
 *   events.c   subscriptions and event fan-out
 *   card_svc.c the card worker (one thread owns the backend; a FIFO of
 *              operations) and the monitor (insertion, removal)
 *   methods.c  the request dispatcher (docs/protocol.md §3)
 *   conn.c     one thread per client: peer check, hello, framing
 *   main.c     socket, accept loop, signals
 * Protocol framing and envelopes come from host/proto (proto.h). */
#ifndef CACHETD_CORE_H
#define CACHETD_CORE_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include <json-c/json.h>
#include <openssl/x509.h>

#include "audit.h"
#include "card.h"
#include "card_native.h"
#include "identity.h"

#define CACHETD_VERSION "0.1.0"
#define CACHETD_NAME    "cachetd " CACHETD_VERSION

#define CACHETD_CONN_MAX        128  /* client connections at once; more are refused */
#define CACHETD_PIN_MAX         16   /* longest PIN string accepted from a client */
#define CACHETD_SIGN_IN_MAX     512  /* sign-digest data (RSA-4096 modulus) */
#define CACHETD_CHALLENGE_MAX   1024 /* login challenge bytes */
#define CACHETD_AUDIT_TAIL_MAX  1000 /* audit {last} */
#define CACHETD_EVENT_QUEUE_MAX 64   /* undelivered events per subscriber (oldest dropped) */
#define CACHETD_SOCK_PATH_MAX   108  /* sizeof(sockaddr_un.sun_path) */

/* ---- config.c ---------------------------------------------------------- */

typedef struct {
    char socket_path[CACHETD_SOCK_PATH_MAX];
    char backend[16];             /* auto | native | pkcs11 */
    char pkcs11_module[PATH_MAX]; /* "" = search list */
    char reader[CARD_READER_MAX]; /* native: reader name substring, "" = first CPx */
    char trust[PATH_MAX];         /* PEM trust anchors, "" = none configured */
    char audit_log[PATH_MAX];
    char cache_dir[PATH_MAX]; /* "" = $XDG_CACHE_HOME/cachet */
    bool use_cache;           /* --no-cache: always read the card */
    char allow_group[64];
    gid_t allow_gid;
    bool has_allow_gid;
    char log_path[PATH_MAX]; /* "" = stderr */
    uint64_t max_mail_size;
    int timeout_s;        /* per request: longest wait for the card (PIN pad) */
    int frame_timeout_ms; /* a started frame must be complete within this */
    /* The appliance (issue 5, docs/appliance.md): set through its vendor
     * commands when a reader is seen; the pin of its device key. */
    int language;              /* 0 French (default), 1 English */
    int confirm_timeout_s;     /* 0 = the appliance's own (60 s), else 5..600 */
    int auth_confirm;          /* -1 the appliance's own (no confirmation), 0 or 1 */
    char device_pin[PATH_MAX]; /* "" = beside the audit log: <dir>/device.pin */
} cachetd_config_t;

typedef enum {
    CACHETD_CFG_OK = 0,
    CACHETD_CFG_HELP,
    CACHETD_CFG_VERSION,
    CACHETD_CFG_ERROR,
} cachetd_cfg_status_t;

/* Defaults, then the configuration file, then the command line (which wins).
 * Fills err on CACHETD_CFG_ERROR. */
cachetd_cfg_status_t cachetd_config_load(cachetd_config_t *cfg, int argc, char **argv, char *err,
                                         size_t err_cap);
/* Sets one option by its long name ("socket", "audit-log", ...). */
bool cachetd_config_set(cachetd_config_t *cfg, const char *key, const char *value, char *err,
                        size_t err_cap);
void cachetd_config_defaults(cachetd_config_t *cfg);
/* Fills the paths still empty from the XDG variables. */
bool cachetd_config_finish(cachetd_config_t *cfg, char *err, size_t err_cap);
void cachetd_config_usage(FILE *out);

/* ---- log.c ------------------------------------------------------------- */

bool cachetd_log_open(const char *path); /* NULL or "" = stderr */
void cachetd_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void cachetd_log_close(void);

/* ---- events.c ---------------------------------------------------------- */

typedef struct cachetd_sub cachetd_sub_t;

/* A subscription: events queue up and its wake_fd becomes readable. */
cachetd_sub_t *cachetd_events_subscribe(void);
int cachetd_sub_wake_fd(const cachetd_sub_t *sub);
/* Next queued event as a JSON text (caller frees), NULL if none. */
char *cachetd_sub_pop(cachetd_sub_t *sub);
void cachetd_events_unsubscribe(cachetd_sub_t *sub);
/* Sends {"v":1,"event":name,...fields} to every subscriber (fields taken over;
 * NULL = no fields). */
void cachetd_events_emit(const char *name, json_object *fields);
size_t cachetd_events_subscribers(void);

/* ---- card_svc.c -------------------------------------------------------- */

typedef struct cachetd_card cachetd_card_t;

typedef enum {
    CACHETD_OP_INFO = 1,    /* get_info */
    CACHETD_OP_PIN_STATUS,  /* pin_status */
    CACHETD_OP_VERIFY_PIN,  /* verify_pin (pin_set false = PIN pad) */
    CACHETD_OP_SIGN,        /* sign */
    CACHETD_OP_LOGOUT,      /* logout */
    CACHETD_OP_DEVICE_INFO, /* the appliance's GET_DEVICE_INFO (native backend) */
} cachetd_op_kind_t;

/* One card operation, as a client thread asks for it. cachetd_card_run copies
 * the inputs into the worker's own job (a caller that gives up never leaves the
 * worker with a dangling pointer) and wipes that copy. The caller wipes pin. */
typedef struct {
    cachetd_op_kind_t kind;
    /* in */
    char pin[CACHETD_PIN_MAX + 1];
    bool pin_set;
    card_key_role_t role;
    card_mech_t mech;
    uint8_t in[CACHETD_SIGN_IN_MAX];
    size_t in_len;
    /* sign on the appliance (issue 5): the ANNOUNCE message (0 bytes: not
     * announced), and the receipt to fetch afterwards for receipt_digest (what
     * the card signs; 0 bytes: none) */
    uint8_t announce[CARD_NATIVE_ANNOUNCE_MAX];
    size_t announce_len;
    uint8_t receipt_digest[32];
    size_t receipt_digest_len;
    /* out */
    int tries_left; /* -1 unknown */
    bool verified;
    card_info_t info;
    uint8_t sig[CARD_SIG_MAX];
    size_t sig_len;
    bool announced;                           /* the appliance was told what is signed */
    uint8_t receipt[CARD_NATIVE_RECEIPT_MAX]; /* the receipt of that signature */
    size_t receipt_len;
    uint8_t device_info[CARD_NATIVE_INFO_MAX]; /* GET_DEVICE_INFO's payload */
    size_t device_info_len;
} cachetd_op_t;

/* What the daemon knows about the reader and the card (public data only). */
typedef struct {
    char backend[16];
    bool reader_present;
    card_info_t info;    /* reader, present, pinpad, serial, label */
    bool bound;          /* certificates read (or loaded from the cache) */
    bool binding;        /* a bind is queued or running */
    bool from_cache;     /* certificates came from the cache */
    char bind_error[64]; /* protocol code of the last failed bind, "" if none */
    bool identity_ok;
    identity_t id;
    card_cert_t certs[CARD_CERTS_MAX];
    size_t ncerts;
    bool pin_verified;   /* last known: the holder PIN was verified on this card */
    int tries_left;      /* last known, -1 unknown */
    uint64_t generation; /* changes at every insertion and removal */
} cachetd_card_snapshot_t;

/* Takes over backend; starts the worker and the monitor threads and queues the
 * first look at the reader (bind when a card is in). trust may be NULL. */
cachetd_card_t *cachetd_card_start(card_backend_t *backend, X509_STORE *trust, bool use_cache);
/* Stops both threads, fails what is queued, closes the backend. */
void cachetd_card_stop(cachetd_card_t *c);
/* Runs op on the worker, in order; waits at most timeout_ms. Fails with
 * CARD_ERR_REMOVED as soon as the card leaves (queued or running),
 * CARD_ERR_TIMEOUT past the deadline (a queued op is then dropped, never run). */
card_status_t cachetd_card_run(cachetd_card_t *c, cachetd_op_t *op, int timeout_ms);
/* The appliance's settings (SET_CONFIG, negative = leave the appliance's own),
 * applied now (queued) and again whenever a reader or card is seen. */
void cachetd_card_configure_appliance(cachetd_card_t *c, int confirm_timeout_s, int auth_policy,
                                      int language);
/* Copies the state; first waits (up to wait_ms) for a bind in progress. */
void cachetd_card_snapshot(cachetd_card_t *c, cachetd_card_snapshot_t *out, int wait_ms);

/* ---- methods.c / conn.c ------------------------------------------------- */

typedef struct {
    const cachetd_config_t *cfg;
    cachetd_card_t *card;
    audit_log_t *audit;
    char audit_path[PATH_MAX];
    X509_STORE *trust;
} cachetd_ctx_t;

typedef struct {
    int fd;
    uid_t uid;
    gid_t gid;
    pid_t pid;
    char exe[PATH_MAX];
    bool hello_done;
    cachetd_sub_t *sub; /* after subscribe */
    int fds[2];         /* descriptors that came with the current request */
    size_t nfds;
    uint64_t requests;
} cachetd_client_t;

/* Handles one parsed request object; returns the response (result or error)
 * to send. May set *close_after (the connection ends after the response).
 * Takes ownership of (and closes) cl->fds. */
json_object *cachetd_dispatch(cachetd_ctx_t *ctx, cachetd_client_t *cl, json_object *req,
                              bool *close_after);

/* Protocol error code for a card status ("card-removed", ...). */
const char *cachetd_card_code(card_status_t st);

/* Peer check: same uid as the daemon, or a member of the allowed group. */
bool cachetd_peer_allowed(const cachetd_config_t *cfg, uid_t uid, gid_t gid, pid_t pid);

/* Serves one connection until it ends (owns fd). */
void cachetd_conn_serve(cachetd_ctx_t *ctx, int fd);

/* Wipes a secret (explicit_bzero: the compiler cannot drop it). */
void cachetd_wipe(void *p, size_t n);

#endif
