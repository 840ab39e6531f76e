/* card_pkcs11: cachetd's PKCS#11 card backend (card.h, ARCHITECTURE.md §1) —
 * any module (OpenSC's opensc-pkcs11.so, the ANS Cryptolib for CPS4 cards,
 * SoftHSM2 in tests) dlopen()ed and initialised once.
 *
 * It owns: loading the module and its one C_Initialize per process (a small
 * registry, so two backends on one module share it and the last close
 * finalises it); choosing the token; following insertion and removal
 * (wait_event); and turning the card.h operations into Cryptoki calls
 * (PKCS#11 v2.40 base specification; section numbers below are of that text).
 *
 * Threads (card.h): the card worker makes every call but wait_event; the
 * monitor makes wait_event calls. The module is initialised with
 * CKF_OS_LOCKING_OK (§5.4), so both may call it at once. Our own shared state
 * (what the monitor saw, the last error, closing) sits under b->lock, which is
 * never held across a Cryptoki call.
 *
 * Events: the first wait_event after open reports CARD_EVENT_INSERTED when a
 * token is already present (the monitor starts from "no card", as a PC/SC
 * monitor starting from SCARD_STATE_UNAWARE does), so a daemon that binds on
 * insertion events also binds a card inserted before it started.
 * Removal: once the monitor has seen the bound token leave, or a call failed
 * with a removal code, every operation returns CARD_ERR_REMOVED until the
 * worker binds again; the session (and with it the login) is dropped.
 *
 * PINs: passed to C_Login from a local copy wiped right after; never kept,
 * never logged, never retried. Keys with CKA_ALWAYS_AUTHENTICATE need a
 * context-specific login at each signature (§4.9, §5.6 C_Login
 * CKU_CONTEXT_SPECIFIC); as no PIN is kept, sign() answers
 * CARD_ERR_PIN_REQUIRED for them (no CPS card used with this backend has one:
 * spec/cpx-card.md §6.5 says userConsent must be absent). */
#include "card_pkcs11.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <p11-kit/pkcs11.h>

#define P11_POLL_MS         50   /* wait_event poll period: reaction well under 200 ms */
#define P11_FULL_SCAN_POLLS 20   /* with C_WaitForSlotEvent, compare slot lists anyway every 1 s */
#define P11_SLOTS_MAX       256  /* slots considered per C_GetSlotList */
#define P11_OBJECTS_MAX     32   /* objects of one class considered per token */
#define P11_NOMATCH_MAX     16   /* slots known to hold a token of another label */
#define P11_PIN_MAX         64   /* longest PIN passed on (PKCS#11 has no limit) */
#define P11_MODULES_MAX     16   /* distinct modules loaded at once */
#define P11_ATTR_TEXT_MAX   1024 /* longest CKA_LABEL read */
#define P11_MODULUS_MAX     1024 /* longest CKA_MODULUS read (RSA-8192) */
#define P11_PATH_MAX        4096
#define P11_ERR_MAX         96
#define P11_ID_MAX          ((int)sizeof(((card_cert_t *)0)->id))

/* CPS cards have 3 PIN tries (spec/domain.md); PKCS#11 only says "low",
 * "final try" and "locked" (§3.2 CK_TOKEN_INFO flags). */
#define P11_TRIES_FULL 3

_Static_assert(CARD_SIG_MAX >= 256, "RSA-2048 signatures must fit");
_Static_assert(P11_ID_MAX == 32, "card_cert_t.id is 32 bytes");

typedef enum {
    P11_UNBOUND = 0, /* no bind yet: operations bind the token themselves */
    P11_BOUND,       /* bound to slot b->slot */
    P11_LOST,        /* the bound token left: CARD_ERR_REMOVED until bind() */
} p11_bind_t;

typedef enum { P11_WSE_UNKNOWN = 0, P11_WSE_YES, P11_WSE_NO } p11_wse_t;

typedef struct {
    card_backend_t base; /* first: card_backend_t * <-> p11_backend_t * */
    void *dl;
    CK_FUNCTION_LIST_PTR f;
    char match[CARD_LABEL_MAX]; /* token label substring, "" = any */

    /* Shared by the worker and the monitor: under lock. */
    pthread_mutex_t lock;
    pthread_cond_t cond; /* closing, cancel, waiters */
    bool closing;
    bool cancel;
    unsigned waiters; /* wait_event calls running */
    bool mon_present; /* what the monitor last reported */
    CK_SLOT_ID mon_slot;
    uint64_t gen;          /* removals seen by the monitor */
    char err[P11_ERR_MAX]; /* last error */

    /* Monitor only. */
    p11_wse_t wse;
    bool mon_started;
    bool force_eval; /* compare slot lists at the next poll */
    unsigned polls;
    CK_SLOT_ID nomatch[P11_NOMATCH_MAX];
    size_t n_nomatch;

    /* Worker only. */
    p11_bind_t bind;
    CK_SLOT_ID slot;
    uint64_t bound_gen;
    card_info_t info;
    bool sess_open;
    CK_SESSION_HANDLE sess;
    bool role_known[2]; /* [role - 1] */
    uint8_t role_id[2][32];
    size_t role_id_len[2];
    bool key_cached[2]; /* [role - 1]: key handle found and checked */
    CK_OBJECT_HANDLE key_handle[2];
    size_t key_mod_len[2];     /* 0 = the module does not tell */
    char err_out[P11_ERR_MAX]; /* last_error()'s copy */
} p11_backend_t;

static const card_ops_t p11_ops;

static p11_backend_t *p11_of(card_backend_t *base)
{
    return (p11_backend_t *)base;
}

/* ---- Module registry: one C_Initialize per module and process (§5.4: a
 * second C_Initialize is CKR_CRYPTOKI_ALREADY_INITIALIZED, and C_Finalize ends
 * it for everyone in the process). */

typedef struct {
    CK_FUNCTION_LIST_PTR fl;
    unsigned refs;
    bool finalize; /* we initialised it, so the last close finalises it */
} p11_module_ref_t;

static pthread_mutex_t p11_modules_lock = PTHREAD_MUTEX_INITIALIZER;
static p11_module_ref_t p11_modules[P11_MODULES_MAX];

/* ---- Errors ---- */

/* A table reads better packed. */
/* clang-format off */
#define P11_RV(x) { x, #x }
static const struct {
    CK_RV rv;
    const char *name;
} p11_rv_names[] = {
    P11_RV(CKR_OK), P11_RV(CKR_CANCEL), P11_RV(CKR_HOST_MEMORY), P11_RV(CKR_SLOT_ID_INVALID),
    P11_RV(CKR_GENERAL_ERROR), P11_RV(CKR_FUNCTION_FAILED), P11_RV(CKR_ARGUMENTS_BAD),
    P11_RV(CKR_NO_EVENT), P11_RV(CKR_NEED_TO_CREATE_THREADS), P11_RV(CKR_CANT_LOCK),
    P11_RV(CKR_ATTRIBUTE_READ_ONLY), P11_RV(CKR_ATTRIBUTE_SENSITIVE),
    P11_RV(CKR_ATTRIBUTE_TYPE_INVALID), P11_RV(CKR_ATTRIBUTE_VALUE_INVALID),
    P11_RV(CKR_ACTION_PROHIBITED), P11_RV(CKR_DATA_INVALID), P11_RV(CKR_DATA_LEN_RANGE),
    P11_RV(CKR_DEVICE_ERROR), P11_RV(CKR_DEVICE_MEMORY), P11_RV(CKR_DEVICE_REMOVED),
    P11_RV(CKR_ENCRYPTED_DATA_INVALID), P11_RV(CKR_ENCRYPTED_DATA_LEN_RANGE),
    P11_RV(CKR_FUNCTION_CANCELED), P11_RV(CKR_FUNCTION_NOT_PARALLEL),
    P11_RV(CKR_FUNCTION_NOT_SUPPORTED), P11_RV(CKR_KEY_HANDLE_INVALID), P11_RV(CKR_KEY_SIZE_RANGE),
    P11_RV(CKR_KEY_TYPE_INCONSISTENT), P11_RV(CKR_KEY_NOT_NEEDED), P11_RV(CKR_KEY_CHANGED),
    P11_RV(CKR_KEY_NEEDED), P11_RV(CKR_KEY_INDIGESTIBLE), P11_RV(CKR_KEY_FUNCTION_NOT_PERMITTED),
    P11_RV(CKR_KEY_NOT_WRAPPABLE), P11_RV(CKR_KEY_UNEXTRACTABLE), P11_RV(CKR_MECHANISM_INVALID),
    P11_RV(CKR_MECHANISM_PARAM_INVALID), P11_RV(CKR_OBJECT_HANDLE_INVALID),
    P11_RV(CKR_OPERATION_ACTIVE), P11_RV(CKR_OPERATION_NOT_INITIALIZED), P11_RV(CKR_PIN_INCORRECT),
    P11_RV(CKR_PIN_INVALID), P11_RV(CKR_PIN_LEN_RANGE), P11_RV(CKR_PIN_EXPIRED),
    P11_RV(CKR_PIN_LOCKED), P11_RV(CKR_SESSION_CLOSED), P11_RV(CKR_SESSION_COUNT),
    P11_RV(CKR_SESSION_HANDLE_INVALID), P11_RV(CKR_SESSION_PARALLEL_NOT_SUPPORTED),
    P11_RV(CKR_SESSION_READ_ONLY), P11_RV(CKR_SESSION_EXISTS), P11_RV(CKR_SESSION_READ_ONLY_EXISTS),
    P11_RV(CKR_SESSION_READ_WRITE_SO_EXISTS), P11_RV(CKR_SIGNATURE_INVALID),
    P11_RV(CKR_SIGNATURE_LEN_RANGE), P11_RV(CKR_TEMPLATE_INCOMPLETE),
    P11_RV(CKR_TEMPLATE_INCONSISTENT), P11_RV(CKR_TOKEN_NOT_PRESENT),
    P11_RV(CKR_TOKEN_NOT_RECOGNIZED), P11_RV(CKR_TOKEN_WRITE_PROTECTED),
    P11_RV(CKR_UNWRAPPING_KEY_SIZE_RANGE), P11_RV(CKR_UNWRAPPING_KEY_TYPE_INCONSISTENT),
    P11_RV(CKR_USER_ALREADY_LOGGED_IN), P11_RV(CKR_USER_NOT_LOGGED_IN),
    P11_RV(CKR_USER_PIN_NOT_INITIALIZED), P11_RV(CKR_USER_TYPE_INVALID),
    P11_RV(CKR_USER_ANOTHER_ALREADY_LOGGED_IN), P11_RV(CKR_USER_TOO_MANY_TYPES),
    P11_RV(CKR_WRAPPED_KEY_INVALID), P11_RV(CKR_WRAPPED_KEY_LEN_RANGE),
    P11_RV(CKR_WRAPPING_KEY_HANDLE_INVALID), P11_RV(CKR_WRAPPING_KEY_SIZE_RANGE),
    P11_RV(CKR_WRAPPING_KEY_TYPE_INCONSISTENT), P11_RV(CKR_RANDOM_SEED_NOT_SUPPORTED),
    P11_RV(CKR_RANDOM_NO_RNG), P11_RV(CKR_DOMAIN_PARAMS_INVALID), P11_RV(CKR_CURVE_NOT_SUPPORTED),
    P11_RV(CKR_BUFFER_TOO_SMALL), P11_RV(CKR_SAVED_STATE_INVALID),
    P11_RV(CKR_INFORMATION_SENSITIVE), P11_RV(CKR_STATE_UNSAVEABLE),
    P11_RV(CKR_CRYPTOKI_NOT_INITIALIZED), P11_RV(CKR_CRYPTOKI_ALREADY_INITIALIZED),
    P11_RV(CKR_MUTEX_BAD), P11_RV(CKR_MUTEX_NOT_LOCKED), P11_RV(CKR_NEW_PIN_MODE),
    P11_RV(CKR_NEXT_OTP), P11_RV(CKR_EXCEEDED_MAX_ITERATIONS), P11_RV(CKR_FIPS_SELF_TEST_FAILED),
    P11_RV(CKR_LIBRARY_LOAD_FAILED), P11_RV(CKR_PIN_TOO_WEAK), P11_RV(CKR_PUBLIC_KEY_INVALID),
    P11_RV(CKR_FUNCTION_REJECTED),
};
#undef P11_RV
/* clang-format on */

/* "CKR_PIN_INCORRECT", or the number for codes we do not know. */
static void p11_rv_name(CK_RV rv, char *out, size_t cap)
{
    for (size_t i = 0; i < sizeof p11_rv_names / sizeof p11_rv_names[0]; i++) {
        if (p11_rv_names[i].rv == rv) {
            snprintf(out, cap, "%s", p11_rv_names[i].name);
            return;
        }
    }
    if (rv >= CKR_VENDOR_DEFINED)
        snprintf(out, cap, "CKR_VENDOR_DEFINED+0x%lx", (unsigned long)(rv - CKR_VENDOR_DEFINED));
    else
        snprintf(out, cap, "CKR_0x%08lx", (unsigned long)rv);
}

static void p11_set_error_text(p11_backend_t *b, const char *what, const char *text)
{
    pthread_mutex_lock(&b->lock);
    snprintf(b->err, sizeof b->err, "%s: %s", what, text);
    pthread_mutex_unlock(&b->lock);
}

static void p11_set_error(p11_backend_t *b, const char *what, CK_RV rv)
{
    char name[64];
    p11_rv_name(rv, name, sizeof name);
    p11_set_error_text(b, what, name);
}

__attribute__((format(printf, 3, 4))) static void p11_err(char *err, size_t cap, const char *fmt,
                                                          ...)
{
    if (err == NULL || cap == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, cap, fmt, ap);
    va_end(ap);
}

/* Return codes that mean the token (or its session) left (§5.1: a token
 * removed closes its sessions; OpenSC answers CKR_DEVICE_REMOVED,
 * CKR_TOKEN_NOT_PRESENT, or CKR_SESSION_HANDLE_INVALID afterwards). */
static bool p11_rv_removed(CK_RV rv)
{
    return rv == CKR_DEVICE_REMOVED || rv == CKR_TOKEN_NOT_PRESENT ||
           rv == CKR_SESSION_HANDLE_INVALID || rv == CKR_SESSION_CLOSED ||
           rv == CKR_SLOT_ID_INVALID || rv == CKR_TOKEN_NOT_RECOGNIZED;
}

/* ---- Worker-side session and binding state ---- */

static void p11_forget_keys(p11_backend_t *b)
{
    b->key_cached[0] = b->key_cached[1] = false;
}

static void p11_drop_session(p11_backend_t *b)
{
    p11_forget_keys(b);
    if (b->sess_open) {
        (void)b->f->C_CloseSession(b->sess); /* may be gone with the token: nothing to do */
        b->sess_open = false;
    }
}

static void p11_lose(p11_backend_t *b)
{
    p11_drop_session(b);
    if (b->bind == P11_BOUND)
        b->bind = P11_LOST;
    b->role_known[0] = b->role_known[1] = false;
}

/* Maps a failed Cryptoki call to a card status (worker only: a removal code
 * drops the session and the binding). */
static card_status_t p11_fail(p11_backend_t *b, const char *what, CK_RV rv)
{
    p11_set_error(b, what, rv);
    if (p11_rv_removed(rv)) {
        p11_lose(b);
        return CARD_ERR_REMOVED;
    }
    switch (rv) {
    case CKR_USER_NOT_LOGGED_IN:
        return CARD_ERR_PIN_REQUIRED;
    case CKR_PIN_INCORRECT:
        return CARD_ERR_PIN_INCORRECT;
    case CKR_PIN_LOCKED:
        return CARD_ERR_PIN_BLOCKED;
    case CKR_PIN_LEN_RANGE:
    case CKR_PIN_INVALID:
        return CARD_ERR_PIN_FORMAT;
    case CKR_FUNCTION_CANCELED:
        return CARD_ERR_CANCELLED;
    case CKR_FUNCTION_NOT_SUPPORTED:
    case CKR_MECHANISM_INVALID:
    case CKR_KEY_FUNCTION_NOT_PERMITTED:
    case CKR_KEY_TYPE_INCONSISTENT:
        return CARD_ERR_NOT_SUPPORTED;
    case CKR_DATA_LEN_RANGE:
    case CKR_DATA_INVALID:
        return CARD_ERR_BAD_INPUT;
    default:
        return CARD_ERR_BACKEND;
    }
}

/* Catches up with removals the monitor saw since the worker bound. */
static void p11_sync(p11_backend_t *b)
{
    pthread_mutex_lock(&b->lock);
    uint64_t gen = b->gen;
    pthread_mutex_unlock(&b->lock);
    if (b->bind == P11_BOUND && gen != b->bound_gen)
        p11_lose(b);
}

static card_status_t p11_open_session(p11_backend_t *b, CK_SESSION_HANDLE *out)
{
    /* A read-only session is enough to log the user in and sign (§5.6:
     * R/O User Functions state). */
    CK_RV rv = b->f->C_OpenSession(b->slot, CKF_SERIAL_SESSION, NULL, NULL, out);
    if (rv != CKR_OK)
        return p11_fail(b, "C_OpenSession", rv);
    return CARD_OK;
}

static card_status_t p11_ensure_session(p11_backend_t *b)
{
    if (b->sess_open)
        return CARD_OK;
    card_status_t st = p11_open_session(b, &b->sess);
    if (st == CARD_OK)
        b->sess_open = true;
    return st;
}

/* A new session in place of one left with an operation active: the login
 * stays, as it belongs to the application while any session is open (§5.6). */
static void p11_renew_session(p11_backend_t *b)
{
    CK_SESSION_HANDLE fresh;
    if (p11_open_session(b, &fresh) != CARD_OK) {
        p11_drop_session(b);
        return;
    }
    p11_drop_session(b);
    b->sess = fresh;
    b->sess_open = true;
}

static bool p11_logged_in(p11_backend_t *b)
{
    CK_SESSION_INFO si;
    if (!b->sess_open || b->f->C_GetSessionInfo(b->sess, &si) != CKR_OK)
        return false;
    return si.state == CKS_RO_USER_FUNCTIONS || si.state == CKS_RW_USER_FUNCTIONS;
}

/* ---- Text fields ---- */

/* Copies a blank-padded CK_UTF8CHAR field (§3.2) without its padding, control
 * characters replaced, cut at a UTF-8 character boundary to fit out. */
static void p11_text(const unsigned char *in, size_t in_len, char *out, size_t cap)
{
    size_t n = in_len;
    while (n > 0 && (in[n - 1] == ' ' || in[n - 1] == '\0'))
        n--;
    size_t lead = 0;
    while (lead < n && in[lead] == ' ')
        lead++;
    if (cap == 0)
        return;
    size_t len = n - lead;
    if (len > cap - 1) {
        len = cap - 1;
        while (len > 0 && (in[lead + len] & 0xC0u) == 0x80u)
            len--; /* do not split a multi-byte character */
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = in[lead + i];
        out[i] = (c < 0x20u || c == 0x7Fu) ? '?' : (char)c;
    }
    out[len] = '\0';
}

/* ---- Slots ---- */

/* The slot list (§5.5 C_GetSlotList), capped; the caller frees *out. */
static CK_RV p11_slot_list(p11_backend_t *b, CK_BBOOL with_token, CK_SLOT_ID **out, CK_ULONG *n)
{
    *out = NULL;
    *n = 0;
    for (int attempt = 0; attempt < 3; attempt++) {
        CK_ULONG want = 0;
        CK_RV rv = b->f->C_GetSlotList(with_token, NULL, &want);
        if (rv != CKR_OK)
            return rv;
        if (want == 0)
            return CKR_OK;
        if (want > P11_SLOTS_MAX)
            want = P11_SLOTS_MAX; /* the call below then says CKR_BUFFER_TOO_SMALL */
        CK_SLOT_ID *list = calloc(want, sizeof *list);
        if (list == NULL)
            return CKR_HOST_MEMORY;
        CK_ULONG got = want;
        rv = b->f->C_GetSlotList(with_token, list, &got);
        if (rv == CKR_OK && got <= want) {
            *out = list;
            *n = got;
            return CKR_OK;
        }
        free(list);
        if (rv != CKR_BUFFER_TOO_SMALL)
            return rv == CKR_OK ? CKR_GENERAL_ERROR : rv;
        /* a slot appeared between the two calls: ask again */
    }
    return CKR_BUFFER_TOO_SMALL;
}

static bool p11_in_list(const CK_SLOT_ID *list, CK_ULONG n, CK_SLOT_ID slot)
{
    for (CK_ULONG i = 0; i < n; i++)
        if (list[i] == slot)
            return true;
    return false;
}

/* True if the token in slot has a label containing b->match. */
static bool p11_token_matches(p11_backend_t *b, CK_SLOT_ID slot, bool *readable)
{
    *readable = true;
    if (b->match[0] == '\0')
        return true;
    CK_TOKEN_INFO ti;
    CK_RV rv = b->f->C_GetTokenInfo(slot, &ti);
    if (rv != CKR_OK) {
        *readable = false;
        return false;
    }
    char label[sizeof ti.label + 1];
    p11_text(ti.label, sizeof ti.label, label, sizeof label);
    return strstr(label, b->match) != NULL;
}

/* The first slot (module order) holding a token we may use. */
static card_status_t p11_find_token(p11_backend_t *b, CK_SLOT_ID *slot, bool *found)
{
    *found = false;
    CK_SLOT_ID *list;
    CK_ULONG n;
    CK_RV rv = p11_slot_list(b, CK_TRUE, &list, &n);
    if (rv != CKR_OK) {
        p11_set_error(b, "C_GetSlotList", rv);
        return CARD_ERR_BACKEND;
    }
    for (CK_ULONG i = 0; i < n && !*found; i++) {
        bool readable;
        if (p11_token_matches(b, list[i], &readable)) {
            *slot = list[i];
            *found = true;
        }
    }
    free(list);
    return CARD_OK;
}

/* When no usable token is there: CARD_ERR_NO_READER without any slot, else
 * reader = the first slot's description. */
static card_status_t p11_no_token(p11_backend_t *b, char *reader, size_t cap)
{
    CK_SLOT_ID *list;
    CK_ULONG n;
    CK_RV rv = p11_slot_list(b, CK_FALSE, &list, &n);
    if (rv != CKR_OK) {
        p11_set_error(b, "C_GetSlotList", rv);
        return CARD_ERR_BACKEND;
    }
    card_status_t st = n == 0 ? CARD_ERR_NO_READER : CARD_OK;
    CK_SLOT_INFO si;
    if (n > 0 && reader != NULL && b->f->C_GetSlotInfo(list[0], &si) == CKR_OK)
        p11_text(si.slotDescription, sizeof si.slotDescription, reader, cap);
    free(list);
    return st;
}

/* Reads slot and token information into info (a bind: §5.5 C_GetTokenInfo).
 * Removal codes are CARD_ERR_NO_CARD here: there is nothing bound to lose. */
static card_status_t p11_read_info(p11_backend_t *b, CK_SLOT_ID slot, card_info_t *info)
{
    memset(info, 0, sizeof *info);
    CK_SLOT_INFO si;
    CK_RV rv = b->f->C_GetSlotInfo(slot, &si);
    if (rv == CKR_OK && !(si.flags & CKF_TOKEN_PRESENT))
        rv = CKR_TOKEN_NOT_PRESENT;
    if (rv != CKR_OK) {
        p11_set_error(b, "C_GetSlotInfo", rv);
        return p11_rv_removed(rv) ? CARD_ERR_NO_CARD : CARD_ERR_BACKEND;
    }
    p11_text(si.slotDescription, sizeof si.slotDescription, info->reader, sizeof info->reader);
    CK_TOKEN_INFO ti;
    rv = b->f->C_GetTokenInfo(slot, &ti);
    if (rv != CKR_OK) {
        p11_set_error(b, "C_GetTokenInfo", rv);
        return p11_rv_removed(rv) ? CARD_ERR_NO_CARD : CARD_ERR_BACKEND;
    }
    info->present = true;
    info->pinpad = (ti.flags & CKF_PROTECTED_AUTHENTICATION_PATH) != 0;
    p11_text(ti.serialNumber, sizeof ti.serialNumber, info->serial, sizeof info->serial);
    p11_text(ti.label, sizeof ti.label, info->label, sizeof info->label);
    return CARD_OK;
}

/* ---- Monitor (wait_event) ---- */

static bool p11_nomatch_has(const p11_backend_t *b, CK_SLOT_ID slot)
{
    for (size_t i = 0; i < b->n_nomatch; i++)
        if (b->nomatch[i] == slot)
            return true;
    return false;
}

/* One look at the slots: an event if the token we report came or went. */
static card_status_t p11_monitor_poll(p11_backend_t *b, card_event_t *ev)
{
    *ev = CARD_EVENT_NONE;
    bool evaluate = !b->mon_started || b->force_eval || ++b->polls % P11_FULL_SCAN_POLLS == 0;
    bool watched_event = false; /* an event on the slot of the token we reported */
    b->force_eval = false;
    /* §5.5 C_WaitForSlotEvent with CKF_DONT_BLOCK: one slot per call,
     * CKR_NO_EVENT when nothing (more) happened. Take every event queued (at
     * the first poll, OpenSC has one for each slot holding a card since
     * C_Initialize), so that none is left to look like a swap later.
     * SoftHSM2 does not support it: compare slot lists. */
    for (unsigned i = 0; b->wse != P11_WSE_NO && i < P11_SLOTS_MAX; i++) {
        CK_SLOT_ID s = 0;
        CK_RV rv = b->f->C_WaitForSlotEvent != NULL
                       ? b->f->C_WaitForSlotEvent(CKF_DONT_BLOCK, &s, NULL)
                       : CKR_FUNCTION_NOT_SUPPORTED;
        if (rv == CKR_OK) {
            b->wse = P11_WSE_YES;
            b->n_nomatch = 0; /* a token may have changed in a known slot */
            watched_event |= b->mon_present && s == b->mon_slot;
            evaluate = true;
            continue;
        }
        if (rv == CKR_NO_EVENT) {
            b->wse = P11_WSE_YES;
        } else {
            if (rv != CKR_FUNCTION_NOT_SUPPORTED)
                p11_set_error(b, "C_WaitForSlotEvent", rv);
            b->wse = P11_WSE_NO;
        }
        break;
    }
    if (b->wse == P11_WSE_NO)
        evaluate = true;
    if (!evaluate)
        return CARD_OK;

    CK_SLOT_ID *list;
    CK_ULONG n;
    CK_RV rv = p11_slot_list(b, CK_TRUE, &list, &n);
    if (rv != CKR_OK) {
        p11_set_error(b, "C_GetSlotList", rv);
        return CARD_ERR_BACKEND;
    }
    b->mon_started = true;
    if (b->mon_present) {
        /* Gone, or an event on its slot while a token is still there: the
         * card was swapped between two polls (slot events are insertions and
         * removals, §5.5). Report the removal now, the insertion next poll. */
        bool swapped = watched_event && p11_in_list(list, n, b->mon_slot);
        if (swapped || !p11_in_list(list, n, b->mon_slot)) {
            pthread_mutex_lock(&b->lock);
            b->mon_present = false;
            b->gen++;
            pthread_mutex_unlock(&b->lock);
            b->force_eval = swapped;
            *ev = CARD_EVENT_REMOVED;
        }
    } else {
        size_t keep = 0; /* forget slots that no longer hold a token */
        for (size_t i = 0; i < b->n_nomatch; i++)
            if (p11_in_list(list, n, b->nomatch[i]))
                b->nomatch[keep++] = b->nomatch[i];
        b->n_nomatch = keep;
        for (CK_ULONG i = 0; i < n; i++) {
            if (p11_nomatch_has(b, list[i]))
                continue;
            bool readable;
            if (p11_token_matches(b, list[i], &readable)) {
                pthread_mutex_lock(&b->lock);
                b->mon_present = true;
                b->mon_slot = list[i];
                pthread_mutex_unlock(&b->lock);
                *ev = CARD_EVENT_INSERTED;
                break;
            }
            if (readable && b->n_nomatch < P11_NOMATCH_MAX)
                b->nomatch[b->n_nomatch++] = list[i];
        }
    }
    free(list);
    return CARD_OK;
}

static void p11_ts_add_ms(struct timespec *t, long ms)
{
    t->tv_sec += ms / 1000;
    t->tv_nsec += (ms % 1000) * 1000000L;
    if (t->tv_nsec >= 1000000000L) {
        t->tv_sec++;
        t->tv_nsec -= 1000000000L;
    }
}

static long p11_ms_until(const struct timespec *deadline)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (long)(deadline->tv_sec - now.tv_sec) * 1000L +
           (deadline->tv_nsec - now.tv_nsec) / 1000000L;
}

/* Sleeps up to ms on b->cond (b->lock held): close and cancel wake it. */
static void p11_nap(p11_backend_t *b, long ms)
{
    struct timespec wake;
    clock_gettime(CLOCK_MONOTONIC, &wake);
    p11_ts_add_ms(&wake, ms);
    while (!b->closing && !b->cancel) {
        if (pthread_cond_timedwait(&b->cond, &b->lock, &wake) != 0)
            break; /* ETIMEDOUT */
    }
}

static card_status_t p11_wait_event(card_backend_t *base, int timeout_ms, card_event_t *ev)
{
    p11_backend_t *b = p11_of(base);
    if (b == NULL || ev == NULL)
        return CARD_ERR_BAD_INPUT;
    *ev = CARD_EVENT_NONE;
    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    p11_ts_add_ms(&deadline, timeout_ms < 0 ? 0 : timeout_ms);

    pthread_mutex_lock(&b->lock);
    if (b->closing) {
        pthread_mutex_unlock(&b->lock);
        return CARD_OK;
    }
    b->waiters++;
    card_status_t st = CARD_OK;
    for (;;) {
        if (b->closing)
            break;
        if (b->cancel) {
            b->cancel = false;
            st = CARD_ERR_CANCELLED;
            break;
        }
        pthread_mutex_unlock(&b->lock);
        st = p11_monitor_poll(b, ev);
        pthread_mutex_lock(&b->lock);
        if (st != CARD_OK) {
            /* a failing module: come back at the poll rate, not in a busy loop */
            p11_nap(b, P11_POLL_MS);
            break;
        }
        if (*ev != CARD_EVENT_NONE)
            break;
        long left = timeout_ms < 0 ? P11_POLL_MS : p11_ms_until(&deadline);
        if (left <= 0)
            break;
        p11_nap(b, left < P11_POLL_MS ? left : P11_POLL_MS);
    }
    b->waiters--;
    pthread_cond_broadcast(&b->cond);
    pthread_mutex_unlock(&b->lock);
    return st;
}

void card_pkcs11_cancel_wait(card_backend_t *base)
{
    if (!card_is_pkcs11(base))
        return;
    p11_backend_t *b = p11_of(base);
    pthread_mutex_lock(&b->lock);
    b->cancel = true;
    pthread_cond_broadcast(&b->cond);
    pthread_mutex_unlock(&b->lock);
}

/* ---- Binding ---- */

static card_status_t p11_bind_token(p11_backend_t *b, card_info_t *out)
{
    pthread_mutex_lock(&b->lock);
    uint64_t gen = b->gen;
    bool mon_present = b->mon_present;
    CK_SLOT_ID slot = b->mon_slot;
    pthread_mutex_unlock(&b->lock);

    card_info_t info;
    card_status_t st = CARD_ERR_NO_CARD;
    if (mon_present) /* the token the monitor announced */
        st = p11_read_info(b, slot, &info);
    if (st != CARD_OK) {
        bool found;
        st = p11_find_token(b, &slot, &found);
        if (st != CARD_OK)
            return st;
        if (!found) {
            st = p11_no_token(b, NULL, 0);
            return st == CARD_OK ? CARD_ERR_NO_CARD : st;
        }
        st = p11_read_info(b, slot, &info);
        if (st != CARD_OK)
            return st;
    }
    if (b->bind != P11_BOUND || b->slot != slot || b->bound_gen != gen) {
        p11_drop_session(b); /* another token, or the same one again: no old state */
        b->role_known[0] = b->role_known[1] = false;
    }
    b->slot = slot;
    b->bind = P11_BOUND;
    b->bound_gen = gen;
    b->info = info;
    if (out != NULL)
        *out = info;
    return CARD_OK;
}

static card_status_t p11_bind(card_backend_t *base, card_info_t *out)
{
    p11_backend_t *b = p11_of(base);
    if (b == NULL)
        return CARD_ERR_BAD_INPUT;
    if (out != NULL)
        memset(out, 0, sizeof *out);
    p11_sync(b);
    return p11_bind_token(b, out);
}

/* Before an operation: bound (binding now if nobody did yet), with a session. */
static card_status_t p11_ready(p11_backend_t *b)
{
    p11_sync(b);
    if (b->bind == P11_LOST) {
        p11_set_error_text(b, "card", "the bound token was removed");
        return CARD_ERR_REMOVED;
    }
    if (b->bind == P11_UNBOUND) {
        card_status_t st = p11_bind_token(b, NULL);
        if (st != CARD_OK)
            return st;
    }
    return p11_ensure_session(b);
}

static card_status_t p11_get_info(card_backend_t *base, card_info_t *out)
{
    p11_backend_t *b = p11_of(base);
    if (b == NULL || out == NULL)
        return CARD_ERR_BAD_INPUT;
    memset(out, 0, sizeof *out);
    p11_sync(b);
    if (b->bind == P11_BOUND) {
        /* Nothing but the slot flags when the bound token is still there. */
        CK_SLOT_INFO si;
        CK_RV rv = b->f->C_GetSlotInfo(b->slot, &si);
        if (rv == CKR_OK && (si.flags & CKF_TOKEN_PRESENT)) {
            *out = b->info;
            return CARD_OK;
        }
        if (rv != CKR_OK && !p11_rv_removed(rv))
            return p11_fail(b, "C_GetSlotInfo", rv);
        p11_lose(b);
    }
    CK_SLOT_ID slot;
    bool found;
    card_status_t st = p11_find_token(b, &slot, &found);
    if (st != CARD_OK)
        return st;
    if (found) {
        st = p11_read_info(b, slot, out);
        if (st == CARD_OK || st == CARD_ERR_BACKEND)
            return st;
    }
    memset(out, 0, sizeof *out);
    return p11_no_token(b, out->reader, sizeof out->reader);
}

/* ---- Objects ---- */

/* Handles of the objects matching tmpl (§5.7 C_FindObjects*), at most cap. */
static card_status_t p11_find(p11_backend_t *b, CK_ATTRIBUTE *tmpl, CK_ULONG ntmpl,
                              CK_OBJECT_HANDLE *out, CK_ULONG cap, CK_ULONG *n)
{
    *n = 0;
    CK_RV rv = b->f->C_FindObjectsInit(b->sess, tmpl, ntmpl);
    if (rv != CKR_OK)
        return p11_fail(b, "C_FindObjectsInit", rv);
    while (*n < cap) {
        CK_ULONG got = 0;
        rv = b->f->C_FindObjects(b->sess, out + *n, cap - *n, &got);
        if (rv != CKR_OK) {
            (void)b->f->C_FindObjectsFinal(b->sess);
            return p11_fail(b, "C_FindObjects", rv);
        }
        if (got == 0)
            break;
        *n += got > cap - *n ? cap - *n : got;
    }
    rv = b->f->C_FindObjectsFinal(b->sess);
    if (rv != CKR_OK)
        return p11_fail(b, "C_FindObjectsFinal", rv);
    return CARD_OK;
}

/* One attribute into buf (§5.7 C_GetAttributeValue, asked alone so that one
 * missing attribute spoils nothing else). *len is its length; *present false
 * if the object has none (or it is sensitive); *len > cap means "too long" and
 * nothing was read. */
static card_status_t p11_attr(p11_backend_t *b, CK_OBJECT_HANDLE o, CK_ATTRIBUTE_TYPE type,
                              void *buf, size_t cap, size_t *len, bool *present)
{
    *len = 0;
    *present = false;
    CK_ATTRIBUTE a = {type, NULL, 0};
    CK_RV rv = b->f->C_GetAttributeValue(b->sess, o, &a, 1);
    if (rv == CKR_ATTRIBUTE_TYPE_INVALID || rv == CKR_ATTRIBUTE_SENSITIVE ||
        (rv == CKR_OK && a.ulValueLen == CK_UNAVAILABLE_INFORMATION))
        return CARD_OK;
    if (rv != CKR_OK)
        return p11_fail(b, "C_GetAttributeValue", rv);
    *present = true;
    *len = a.ulValueLen;
    if (a.ulValueLen > cap)
        return CARD_OK;
    CK_ULONG want = a.ulValueLen;
    a.pValue = buf;
    rv = b->f->C_GetAttributeValue(b->sess, o, &a, 1);
    if (rv != CKR_OK)
        return p11_fail(b, "C_GetAttributeValue", rv);
    if (a.ulValueLen > want) { /* a module that changed its mind: refuse */
        p11_set_error_text(b, "C_GetAttributeValue", "length changed");
        return CARD_ERR_BACKEND;
    }
    *len = a.ulValueLen;
    return CARD_OK;
}

static card_status_t p11_attr_bool(p11_backend_t *b, CK_OBJECT_HANDLE o, CK_ATTRIBUTE_TYPE type,
                                   bool dflt, bool *out)
{
    CK_BBOOL v = CK_FALSE;
    size_t len;
    bool present;
    card_status_t st = p11_attr(b, o, type, &v, sizeof v, &len, &present);
    *out = (st == CARD_OK && present && len == sizeof v) ? v != CK_FALSE : dflt;
    return st;
}

typedef struct {
    uint8_t id[32];
    size_t id_len;
    bool can_sign;
} p11_key_t;

typedef struct {
    p11_key_t priv[P11_OBJECTS_MAX];
    size_t n_priv;
    p11_key_t pub[P11_OBJECTS_MAX];
    size_t n_pub;
} p11_keys_t;

/* The IDs of the keys of one class (private: with CKA_SIGN). Private keys are
 * usually only visible after C_Login (§4.9 CKA_PRIVATE). */
static card_status_t p11_list_keys(p11_backend_t *b, CK_OBJECT_CLASS cls, p11_key_t *keys,
                                   size_t *n)
{
    *n = 0;
    CK_ATTRIBUTE tmpl[] = {{CKA_CLASS, &cls, sizeof cls}};
    CK_OBJECT_HANDLE h[P11_OBJECTS_MAX];
    CK_ULONG nh;
    card_status_t st = p11_find(b, tmpl, 1, h, P11_OBJECTS_MAX, &nh);
    if (st != CARD_OK)
        return st;
    for (CK_ULONG i = 0; i < nh; i++) {
        p11_key_t *k = &keys[*n];
        bool present;
        st = p11_attr(b, h[i], CKA_ID, k->id, sizeof k->id, &k->id_len, &present);
        if (st != CARD_OK)
            return st;
        if (!present || k->id_len == 0 || k->id_len > sizeof k->id)
            continue; /* no usable ID: cannot be matched to a certificate */
        k->can_sign = true;
        if (cls == CKO_PRIVATE_KEY) {
            st = p11_attr_bool(b, h[i], CKA_SIGN, false, &k->can_sign);
            if (st != CARD_OK)
                return st;
        }
        (*n)++;
    }
    return CARD_OK;
}

static const p11_key_t *p11_key_by_id(const p11_key_t *keys, size_t n, const uint8_t *id,
                                      size_t id_len)
{
    for (size_t i = 0; i < n; i++)
        if (keys[i].id_len == id_len && memcmp(keys[i].id, id, id_len) == 0)
            return &keys[i];
    return NULL;
}

/* The role of a certificate: the key with the same CKA_ID must sign; KU
 * nonRepudiation makes it the signature key, digitalSignature the
 * authentication key (spec/domain.md; RFC 5280 §4.2.1.3); a CA certificate
 * (RFC 5280 §4.2.1.9) has none. Before login the private keys are hidden:
 * a public key with the same ID (or, with no key object at all, the
 * certificate alone) stands for them. */
static int p11_cert_role(const uint8_t *der, size_t len, const uint8_t *id, size_t id_len,
                         const p11_keys_t *keys, bool logged_in)
{
    const unsigned char *p = der;
    X509 *x = d2i_X509(NULL, &p, (long)len);
    if (x == NULL)
        return 0;
    int ca = X509_check_ca(x);
    uint32_t ku = X509_get_key_usage(x); /* UINT32_MAX: no keyUsage extension */
    X509_free(x);
    if (ca != 0 || id_len == 0)
        return 0;
    const p11_key_t *k = p11_key_by_id(keys->priv, keys->n_priv, id, id_len);
    if (k != NULL) {
        if (!k->can_sign)
            return 0;
    } else if (p11_key_by_id(keys->pub, keys->n_pub, id, id_len) == NULL &&
               (logged_in || keys->n_pub > 0)) {
        return 0; /* no key of this certificate on the token */
    }
    if (ku & KU_NON_REPUDIATION)
        return CARD_KEY_SIGN;
    if (ku & KU_DIGITAL_SIGNATURE)
        return CARD_KEY_AUTH;
    return 0;
}

/* Reads the certificates (§4.6 CKO_CERTIFICATE, X.509) into certs[0..cap),
 * with their roles, and remembers which CKA_ID each role has. */
static card_status_t p11_collect(p11_backend_t *b, card_cert_t *certs, size_t cap, size_t *n)
{
    *n = 0;
    p11_keys_t *keys = calloc(1, sizeof *keys);
    if (keys == NULL) {
        p11_set_error_text(b, "read_certs", "out of memory");
        return CARD_ERR_BACKEND;
    }
    card_status_t st = p11_list_keys(b, CKO_PRIVATE_KEY, keys->priv, &keys->n_priv);
    if (st == CARD_OK)
        st = p11_list_keys(b, CKO_PUBLIC_KEY, keys->pub, &keys->n_pub);
    bool logged_in = p11_logged_in(b);

    CK_OBJECT_CLASS cls = CKO_CERTIFICATE;
    CK_CERTIFICATE_TYPE ctype = CKC_X_509;
    CK_ATTRIBUTE tmpl[] = {{CKA_CLASS, &cls, sizeof cls},
                           {CKA_CERTIFICATE_TYPE, &ctype, sizeof ctype}};
    CK_OBJECT_HANDLE h[P11_OBJECTS_MAX];
    CK_ULONG nh = 0;
    if (st == CARD_OK)
        st = p11_find(b, tmpl, 2, h, P11_OBJECTS_MAX, &nh);
    char *label = malloc(P11_ATTR_TEXT_MAX);
    if (st == CARD_OK && label == NULL) {
        p11_set_error_text(b, "read_certs", "out of memory");
        st = CARD_ERR_BACKEND;
    }
    bool role_seen[2] = {false, false};
    for (CK_ULONG i = 0; st == CARD_OK && i < nh && *n < cap; i++) {
        card_cert_t *c = &certs[*n];
        memset(c, 0, sizeof *c);
        bool present;
        st = p11_attr(b, h[i], CKA_VALUE, c->der, sizeof c->der, &c->der_len, &present);
        if (st != CARD_OK)
            break;
        if (!present || c->der_len == 0 || c->der_len > sizeof c->der) {
            if (present && c->der_len > sizeof c->der)
                p11_set_error_text(b, "read_certs", "certificate over CARD_CERT_MAX skipped");
            continue;
        }
        st = p11_attr(b, h[i], CKA_ID, c->id, sizeof c->id, &c->id_len, &present);
        if (st != CARD_OK)
            break;
        if (!present || c->id_len > sizeof c->id)
            c->id_len = 0;
        size_t label_len;
        st = p11_attr(b, h[i], CKA_LABEL, label, P11_ATTR_TEXT_MAX, &label_len, &present);
        if (st != CARD_OK)
            break;
        if (present && label_len <= P11_ATTR_TEXT_MAX)
            p11_text((const unsigned char *)label, label_len, c->label, sizeof c->label);
        c->role = p11_cert_role(c->der, c->der_len, c->id, c->id_len, keys, logged_in);
        if (c->role == CARD_KEY_AUTH || c->role == CARD_KEY_SIGN) {
            int r = c->role - 1;
            if (role_seen[r]) {
                c->role = 0; /* the first certificate of a role keeps it */
            } else {
                role_seen[r] = true;
                b->role_known[r] = true;
                memcpy(b->role_id[r], c->id, c->id_len);
                b->role_id_len[r] = c->id_len;
            }
        }
        (*n)++;
    }
    free(label);
    free(keys);
    if (st != CARD_OK)
        *n = 0;
    return st;
}

static card_status_t p11_read_certs(card_backend_t *base, card_cert_t *certs, size_t cap, size_t *n)
{
    p11_backend_t *b = p11_of(base);
    if (b == NULL || n == NULL)
        return CARD_ERR_BAD_INPUT;
    *n = 0;
    if (certs == NULL && cap > 0)
        return CARD_ERR_BAD_INPUT;
    card_status_t st = p11_ready(b);
    if (st != CARD_OK)
        return st;
    return p11_collect(b, certs, cap, n);
}

/* ---- PIN ---- */

/* Tries left from the token flags (§3.2 CK_TOKEN_INFO): -1 unknown. */
static int p11_tries(CK_FLAGS flags)
{
    if (flags & CKF_USER_PIN_LOCKED)
        return 0;
    if (flags & CKF_USER_PIN_FINAL_TRY)
        return 1;
    if (flags & CKF_USER_PIN_COUNT_LOW)
        return P11_TRIES_FULL - 1;
    if (!(flags & CKF_USER_PIN_INITIALIZED))
        return -1;
    return P11_TRIES_FULL;
}

static card_status_t p11_token_info(p11_backend_t *b, CK_TOKEN_INFO *ti)
{
    CK_RV rv = b->f->C_GetTokenInfo(b->slot, ti);
    if (rv != CKR_OK)
        return p11_fail(b, "C_GetTokenInfo", rv);
    return CARD_OK;
}

static card_status_t p11_pin_status(card_backend_t *base, int *tries_left, bool *verified)
{
    p11_backend_t *b = p11_of(base);
    if (tries_left != NULL)
        *tries_left = -1;
    if (verified != NULL)
        *verified = false;
    if (b == NULL)
        return CARD_ERR_BAD_INPUT;
    card_status_t st = p11_ready(b);
    if (st != CARD_OK)
        return st;
    CK_TOKEN_INFO ti;
    st = p11_token_info(b, &ti);
    if (st != CARD_OK)
        return st;
    CK_SESSION_INFO si;
    CK_RV rv = b->f->C_GetSessionInfo(b->sess, &si);
    if (rv != CKR_OK)
        return p11_fail(b, "C_GetSessionInfo", rv);
    if (tries_left != NULL)
        *tries_left = p11_tries(ti.flags);
    if (verified != NULL)
        *verified = si.state == CKS_RO_USER_FUNCTIONS || si.state == CKS_RW_USER_FUNCTIONS;
    return CARD_OK;
}

static card_status_t p11_verify_pin(card_backend_t *base, const char *pin, int *tries_left)
{
    p11_backend_t *b = p11_of(base);
    if (tries_left != NULL)
        *tries_left = -1;
    if (b == NULL)
        return CARD_ERR_BAD_INPUT;
    size_t len = 0;
    if (pin != NULL) {
        len = strnlen(pin, P11_PIN_MAX + 1);
        if (len == 0 || len > P11_PIN_MAX)
            return CARD_ERR_PIN_FORMAT; /* refused before the token: no try spent */
    }
    card_status_t st = p11_ready(b);
    if (st != CARD_OK)
        return st;
    CK_TOKEN_INFO ti;
    st = p11_token_info(b, &ti);
    if (st != CARD_OK)
        return st;
    if (ti.flags & CKF_USER_PIN_LOCKED) {
        if (tries_left != NULL)
            *tries_left = 0;
        return CARD_ERR_PIN_BLOCKED;
    }
    if (pin == NULL) {
        /* §5.6 C_Login: NULL_PTR PIN = protected authentication path (PIN pad). */
        if (!(ti.flags & CKF_PROTECTED_AUTHENTICATION_PATH)) {
            p11_set_error_text(b, "C_Login", "no protected authentication path");
            return CARD_ERR_NOT_SUPPORTED;
        }
    } else if (ti.ulMaxPinLen != CK_UNAVAILABLE_INFORMATION && ti.ulMaxPinLen > 0 &&
               ti.ulMinPinLen <= ti.ulMaxPinLen && (len < ti.ulMinPinLen || len > ti.ulMaxPinLen)) {
        return CARD_ERR_PIN_FORMAT;
    }

    char buf[P11_PIN_MAX + 1];
    CK_RV rv;
    if (pin != NULL) {
        memcpy(buf, pin, len);
        buf[len] = '\0';
        rv = b->f->C_Login(b->sess, CKU_USER, (CK_UTF8CHAR_PTR)buf, (CK_ULONG)len);
    } else {
        rv = b->f->C_Login(b->sess, CKU_USER, NULL, 0);
    }
    OPENSSL_cleanse(buf, sizeof buf);

    if (rv == CKR_OK || rv == CKR_USER_ALREADY_LOGGED_IN) {
        if (tries_left != NULL && b->f->C_GetTokenInfo(b->slot, &ti) == CKR_OK)
            *tries_left = p11_tries(ti.flags);
        return CARD_OK;
    }
    st = p11_fail(b, "C_Login", rv);
    if (st == CARD_ERR_PIN_INCORRECT) {
        /* Not retried: re-read the counters the token keeps (§3.2 flags). */
        int tries = -1;
        if (b->f->C_GetTokenInfo(b->slot, &ti) == CKR_OK)
            tries = p11_tries(ti.flags);
        if (tries_left != NULL)
            *tries_left = tries;
        if (tries == 0)
            st = CARD_ERR_PIN_BLOCKED;
    } else if (st == CARD_ERR_PIN_BLOCKED && tries_left != NULL) {
        *tries_left = 0;
    }
    return st;
}

static void p11_logout(card_backend_t *base)
{
    p11_backend_t *b = p11_of(base);
    if (b == NULL)
        return;
    p11_sync(b);
    p11_forget_keys(b); /* private key handles are not ours to use once logged out */
    if (!b->sess_open)
        return;
    CK_RV rv = b->f->C_Logout(b->sess);
    if (rv != CKR_OK && rv != CKR_USER_NOT_LOGGED_IN) {
        p11_set_error(b, "C_Logout", rv);
        if (p11_rv_removed(rv))
            p11_lose(b);
        else
            p11_drop_session(b); /* the last session closed = logged out (§5.6) */
    }
}

/* ---- Signing ---- */

/* DER DigestInfo prefixes (RFC 8017 §9.2 note 1). */
static const uint8_t p11_di_sha256[] = {0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01,
                                        0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20};
static const uint8_t p11_di_sha1[] = {0x30, 0x21, 0x30, 0x09, 0x06, 0x05, 0x2b, 0x0e,
                                      0x03, 0x02, 0x1a, 0x05, 0x00, 0x04, 0x14};

/* The private key of a role: the one with the CKA_ID of the role's certificate. */
static card_status_t p11_role_key(p11_backend_t *b, card_key_role_t role, CK_OBJECT_HANDLE *key)
{
    int r = (int)role - 1;
    if (!b->role_known[r]) {
        card_cert_t *certs = calloc(CARD_CERTS_MAX, sizeof *certs);
        if (certs == NULL) {
            p11_set_error_text(b, "sign", "out of memory");
            return CARD_ERR_BACKEND;
        }
        size_t n;
        card_status_t st = p11_collect(b, certs, CARD_CERTS_MAX, &n);
        free(certs);
        if (st != CARD_OK)
            return st;
        if (!b->role_known[r]) {
            p11_set_error_text(b, "sign",
                               role == CARD_KEY_SIGN ? "no signature certificate"
                                                     : "no authentication certificate");
            return p11_logged_in(b) ? CARD_ERR_NOT_SUPPORTED : CARD_ERR_PIN_REQUIRED;
        }
    }
    CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
    CK_ATTRIBUTE tmpl[] = {{CKA_CLASS, &cls, sizeof cls},
                           {CKA_ID, b->role_id[r], b->role_id_len[r]}};
    CK_ULONG n;
    card_status_t st = p11_find(b, tmpl, 2, key, 1, &n);
    if (st != CARD_OK)
        return st;
    if (n == 0) {
        /* Private keys show only after C_Login (CKA_PRIVATE). */
        p11_set_error_text(b, "sign", "private key not found");
        return p11_logged_in(b) ? CARD_ERR_NOT_SUPPORTED : CARD_ERR_PIN_REQUIRED;
    }
    return CARD_OK;
}

/* The key of a role, checked once and then kept (object handles stay valid
 * for the application while the token is there, §4.4): it must sign, must not
 * need a context-specific login, and its modulus (public, §4.8) bounds the
 * input and the signature — a module that hides it leaves that to C_Sign. */
static card_status_t p11_sign_key(p11_backend_t *b, card_key_role_t role, size_t data_len,
                                  size_t sig_cap, CK_OBJECT_HANDLE *key)
{
    int r = (int)role - 1;
    if (!b->key_cached[r]) {
        CK_OBJECT_HANDLE k = CK_INVALID_HANDLE;
        card_status_t st = p11_role_key(b, role, &k);
        bool flag = false;
        if (st == CARD_OK)
            st = p11_attr_bool(b, k, CKA_SIGN, true, &flag);
        if (st == CARD_OK && !flag) {
            p11_set_error_text(b, "sign", "key without CKA_SIGN");
            st = CARD_ERR_NOT_SUPPORTED;
        }
        if (st == CARD_OK)
            st = p11_attr_bool(b, k, CKA_ALWAYS_AUTHENTICATE, false, &flag);
        if (st == CARD_OK && flag) {
            /* Needs C_Login(CKU_CONTEXT_SPECIFIC) with the PIN for this very
             * signature (§4.9); we keep no PIN to give it. */
            p11_set_error_text(b, "sign", "key needs CKA_ALWAYS_AUTHENTICATE login");
            st = CARD_ERR_PIN_REQUIRED;
        }
        size_t mod_len = 0;
        if (st == CARD_OK) {
            uint8_t *mod = malloc(P11_MODULUS_MAX);
            bool present = false;
            if (mod != NULL)
                st = p11_attr(b, k, CKA_MODULUS, mod, P11_MODULUS_MAX, &mod_len, &present);
            free(mod);
            if (!present)
                mod_len = 0;
        }
        if (st != CARD_OK)
            return st;
        b->key_cached[r] = true;
        b->key_handle[r] = k;
        b->key_mod_len[r] = mod_len;
    }
    size_t mod_len = b->key_mod_len[r];
    if (mod_len != 0 && (mod_len > sig_cap || mod_len > CARD_SIG_MAX || data_len + 11 > mod_len)) {
        p11_set_error_text(b, "sign", "data or signature size out of range for the key");
        return CARD_ERR_BAD_INPUT;
    }
    *key = b->key_handle[r];
    return CARD_OK;
}

static card_status_t p11_sign(card_backend_t *base, card_key_role_t role, card_mech_t mech,
                              const uint8_t *in, size_t in_len, uint8_t *sig, size_t sig_cap,
                              size_t *sig_len)
{
    p11_backend_t *b = p11_of(base);
    if (sig_len != NULL)
        *sig_len = 0;
    if (b == NULL || in == NULL || sig == NULL || sig_len == NULL || sig_cap == 0)
        return CARD_ERR_BAD_INPUT;
    if (role != CARD_KEY_AUTH && role != CARD_KEY_SIGN)
        return CARD_ERR_BAD_INPUT;

    /* What goes to CKM_RSA_PKCS (§2.1.6): the caller's data, or a DigestInfo
     * we build around a bare hash — the one mechanism OpenSC's CPx can do
     * (spec/cpx-card.md part A item 3); no other fallback. */
    uint8_t data[CARD_SIG_MAX];
    size_t data_len;
    switch (mech) {
    case CARD_MECH_RSA_PKCS:
        if (in_len == 0 || in_len > CARD_SIG_MAX - 11)
            return CARD_ERR_BAD_INPUT;
        memcpy(data, in, in_len);
        data_len = in_len;
        break;
    case CARD_MECH_SHA256:
        if (in_len != 32)
            return CARD_ERR_BAD_INPUT;
        memcpy(data, p11_di_sha256, sizeof p11_di_sha256);
        memcpy(data + sizeof p11_di_sha256, in, in_len);
        data_len = sizeof p11_di_sha256 + in_len;
        break;
    case CARD_MECH_SHA1:
        if (in_len != 20)
            return CARD_ERR_BAD_INPUT;
        memcpy(data, p11_di_sha1, sizeof p11_di_sha1);
        memcpy(data + sizeof p11_di_sha1, in, in_len);
        data_len = sizeof p11_di_sha1 + in_len;
        break;
    default:
        return CARD_ERR_BAD_INPUT;
    }

    card_status_t st = p11_ready(b);
    CK_OBJECT_HANDLE key = CK_INVALID_HANDLE;
    bool was_cached = st == CARD_OK && b->key_cached[role - 1];
    if (st == CARD_OK)
        st = p11_sign_key(b, role, data_len, sig_cap, &key);
    CK_MECHANISM m = {CKM_RSA_PKCS, NULL, 0};
    CK_RV rv = CKR_OK;
    if (st == CARD_OK) {
        rv = b->f->C_SignInit(b->sess, &m, key);
        if (rv == CKR_OPERATION_ACTIVE) {
            /* an operation left over in this session: start afresh, once */
            p11_renew_session(b);
            rv = b->sess_open ? b->f->C_SignInit(b->sess, &m, key) : CKR_SESSION_HANDLE_INVALID;
        }
        if ((rv == CKR_KEY_HANDLE_INVALID || rv == CKR_OBJECT_HANDLE_INVALID) && was_cached) {
            /* the handle we kept went stale: look the key up again, once */
            p11_forget_keys(b);
            st = p11_sign_key(b, role, data_len, sig_cap, &key);
            if (st == CARD_OK)
                rv = b->f->C_SignInit(b->sess, &m, key);
        }
        if (st == CARD_OK && rv != CKR_OK) {
            p11_forget_keys(b);
            st = p11_fail(b, "C_SignInit", rv);
        }
    }
    uint8_t out[CARD_SIG_MAX];
    CK_ULONG out_len = sizeof out;
    if (st == CARD_OK) {
        rv = b->f->C_Sign(b->sess, data, (CK_ULONG)data_len, out, &out_len);
        if (rv == CKR_BUFFER_TOO_SMALL)
            p11_renew_session(b); /* the operation stays active otherwise (§5.2) */
        if (rv != CKR_OK) {
            p11_forget_keys(b);
            st = p11_fail(b, "C_Sign", rv);
        } else if (out_len == 0 || out_len > sizeof out || out_len > sig_cap) {
            p11_set_error_text(b, "C_Sign", "signature does not fit");
            st = out_len > sig_cap ? CARD_ERR_BAD_INPUT : CARD_ERR_BACKEND;
        }
    }
    if (st == CARD_OK) {
        memcpy(sig, out, out_len);
        *sig_len = out_len;
    }
    OPENSSL_cleanse(data, sizeof data);
    OPENSSL_cleanse(out, sizeof out);
    return st;
}

/* ---- Errors, close, open ---- */

static const char *p11_last_error(card_backend_t *base)
{
    p11_backend_t *b = p11_of(base);
    if (b == NULL)
        return "";
    pthread_mutex_lock(&b->lock);
    memcpy(b->err_out, b->err, sizeof b->err_out);
    pthread_mutex_unlock(&b->lock);
    return b->err_out;
}

static void p11_module_release(CK_FUNCTION_LIST_PTR fl)
{
    pthread_mutex_lock(&p11_modules_lock);
    for (size_t i = 0; i < P11_MODULES_MAX; i++) {
        p11_module_ref_t *m = &p11_modules[i];
        if (m->fl != fl || m->refs == 0)
            continue;
        if (--m->refs == 0) {
            if (m->finalize)
                (void)fl->C_Finalize(NULL); /* §5.4: after it, nothing may be called */
            memset(m, 0, sizeof *m);
        }
        break;
    }
    pthread_mutex_unlock(&p11_modules_lock);
}

/* C_Initialize once per module (§5.4), with the OS's locking, as two of our
 * threads call the module. */
static CK_RV p11_module_acquire(CK_FUNCTION_LIST_PTR fl)
{
    CK_RV rv = CKR_OK;
    pthread_mutex_lock(&p11_modules_lock);
    p11_module_ref_t *slot = NULL;
    for (size_t i = 0; i < P11_MODULES_MAX; i++) {
        if (p11_modules[i].refs > 0 && p11_modules[i].fl == fl) {
            p11_modules[i].refs++;
            pthread_mutex_unlock(&p11_modules_lock);
            return CKR_OK;
        }
        if (slot == NULL && p11_modules[i].refs == 0)
            slot = &p11_modules[i];
    }
    if (slot == NULL) {
        rv = CKR_HOST_MEMORY;
    } else {
        CK_C_INITIALIZE_ARGS args;
        memset(&args, 0, sizeof args);
        args.flags = CKF_OS_LOCKING_OK;
        rv = fl->C_Initialize(&args);
        if (rv == CKR_OK || rv == CKR_CRYPTOKI_ALREADY_INITIALIZED) {
            /* Already initialised by someone else in this process: theirs to finalise. */
            slot->fl = fl;
            slot->refs = 1;
            slot->finalize = rv == CKR_OK;
            rv = CKR_OK;
        }
    }
    pthread_mutex_unlock(&p11_modules_lock);
    return rv;
}

static void p11_close(card_backend_t *base)
{
    p11_backend_t *b = p11_of(base);
    if (b == NULL)
        return;
    /* End any wait_event at once and wait until it has left the object. */
    pthread_mutex_lock(&b->lock);
    b->closing = true;
    pthread_cond_broadcast(&b->cond);
    while (b->waiters > 0)
        pthread_cond_wait(&b->cond, &b->lock);
    pthread_mutex_unlock(&b->lock);

    if (b->f != NULL) {
        p11_drop_session(b);
        p11_module_release(b->f);
    }
    if (b->dl != NULL)
        dlclose(b->dl);
    pthread_cond_destroy(&b->cond);
    pthread_mutex_destroy(&b->lock);
    free(b);
}

static const card_ops_t p11_ops = {
    .name = "pkcs11",
    .wait_event = p11_wait_event,
    .get_info = p11_get_info,
    .bind = p11_bind,
    .read_certs = p11_read_certs,
    .pin_status = p11_pin_status,
    .verify_pin = p11_verify_pin,
    .sign = p11_sign,
    .logout = p11_logout,
    .last_error = p11_last_error,
    .close = p11_close,
};

bool card_is_pkcs11(const card_backend_t *b)
{
    return b != NULL && b->ops == &p11_ops;
}

/* The functions we call must be there (a NULL entry would crash us). */
static bool p11_list_complete(const CK_FUNCTION_LIST *f)
{
    return f->C_Initialize != NULL && f->C_Finalize != NULL && f->C_GetSlotList != NULL &&
           f->C_GetSlotInfo != NULL && f->C_GetTokenInfo != NULL && f->C_OpenSession != NULL &&
           f->C_CloseSession != NULL && f->C_GetSessionInfo != NULL && f->C_Login != NULL &&
           f->C_Logout != NULL && f->C_FindObjectsInit != NULL && f->C_FindObjects != NULL &&
           f->C_FindObjectsFinal != NULL && f->C_GetAttributeValue != NULL &&
           f->C_SignInit != NULL && f->C_Sign != NULL;
}

card_backend_t *card_pkcs11_open_match(const char *module_path, const char *token_match, char *err,
                                       size_t err_cap)
{
    if (err != NULL && err_cap > 0)
        err[0] = '\0';
    if (module_path == NULL || module_path[0] == '\0') {
        p11_err(err, err_cap, "no PKCS#11 module given");
        return NULL;
    }
    if (strnlen(module_path, P11_PATH_MAX) >= P11_PATH_MAX) {
        p11_err(err, err_cap, "PKCS#11 module path too long");
        return NULL;
    }
    if (token_match != NULL && strnlen(token_match, CARD_LABEL_MAX) >= CARD_LABEL_MAX) {
        p11_err(err, err_cap, "token label filter too long");
        return NULL;
    }
    p11_backend_t *b = calloc(1, sizeof *b);
    if (b == NULL) {
        p11_err(err, err_cap, "out of memory");
        return NULL;
    }
    b->base.ops = &p11_ops;
    if (token_match != NULL)
        snprintf(b->match, sizeof b->match, "%s", token_match);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&b->cond, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&b->lock, NULL);

    (void)dlerror();
    b->dl = dlopen(module_path, RTLD_NOW | RTLD_LOCAL);
    if (b->dl == NULL) {
        const char *why = dlerror();
        p11_err(err, err_cap, "cannot load the PKCS#11 module: %s", why ? why : module_path);
        p11_close(&b->base);
        return NULL;
    }
    void *sym = dlsym(b->dl, "C_GetFunctionList");
    if (sym == NULL) {
        p11_err(err, err_cap, "%s: not a PKCS#11 module (no C_GetFunctionList)", module_path);
        p11_close(&b->base);
        return NULL;
    }
    CK_C_GetFunctionList get_list;
    _Static_assert(sizeof get_list == sizeof sym, "function and object pointers differ");
    memcpy(&get_list, &sym, sizeof get_list); /* POSIX dlsym: object pointer to function */
    CK_FUNCTION_LIST_PTR fl = NULL;
    CK_RV rv = get_list(&fl);
    if (rv != CKR_OK || fl == NULL || fl->version.major < 2 || !p11_list_complete(fl)) {
        char name[64];
        p11_rv_name(rv, name, sizeof name);
        p11_err(err, err_cap, "C_GetFunctionList: %s",
                rv != CKR_OK ? name : "incomplete function list");
        p11_close(&b->base);
        return NULL;
    }
    rv = p11_module_acquire(fl);
    if (rv != CKR_OK) {
        char name[64];
        p11_rv_name(rv, name, sizeof name);
        p11_err(err, err_cap, "C_Initialize: %s", name);
        p11_close(&b->base);
        return NULL;
    }
    b->f = fl;
    return &b->base;
}

card_backend_t *card_pkcs11_open(const char *module_path, char *err, size_t err_cap)
{
    return card_pkcs11_open_match(module_path, NULL, err, err_cap);
}
