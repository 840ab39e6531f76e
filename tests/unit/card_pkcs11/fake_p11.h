/* fake_p11: a tiny PKCS#11 module for the card_pkcs11 tests, steered by the
 * test through fake_p11_control() (the test dlopen()s the same file, so it
 * shares the module's state). Modes: a failing module (every call
 * CKR_GENERAL_ERROR), and a one-slot token that can be removed and inserted,
 * whose C_Login answers what the test asks for. It holds no objects. */
#ifndef CACHET_FAKE_P11_H
#define CACHET_FAKE_P11_H

enum {
    FAKE_RESET = 0, /* back to defaults: token mode, present, login OK */
    FAKE_MODE,      /* FAKE_MODE_* */
    FAKE_PRESENT,   /* 0/1: the token is in the slot */
    FAKE_LOGIN_RV,  /* what C_Login returns */
    FAKE_FLAGS,     /* extra CK_TOKEN_INFO flags (COUNT_LOW, FINAL_TRY, LOCKED, ...) */
    FAKE_WSE,       /* 0/1: C_WaitForSlotEvent supported */
    FAKE_SWAP,      /* another token in the slot at once (new serial, sessions closed) */
    /* counters (read with fake_p11_get) */
    FAKE_N_WSE,         /* C_WaitForSlotEvent calls */
    FAKE_N_LOGIN,       /* C_Login calls */
    FAKE_LAST_PIN_NULL, /* 1 if the last C_Login had a NULL PIN */
    FAKE_N_INIT,        /* C_Initialize calls that succeeded */
    FAKE_N_FINAL,       /* C_Finalize calls that succeeded */
    FAKE_N_SESSIONS,    /* sessions open now */
    FAKE_KEYS_MAX
};

enum {
    FAKE_MODE_TOKEN = 0,           /* one slot, one token */
    FAKE_MODE_FAIL_ALL = 1,        /* C_Initialize and everything else: CKR_GENERAL_ERROR */
    FAKE_MODE_FAIL_AFTER_INIT = 2, /* C_Initialize/C_Finalize OK, everything else fails */
};

typedef void (*fake_p11_control_fn)(int what, unsigned long v);
typedef unsigned long (*fake_p11_get_fn)(int what);

#endif
