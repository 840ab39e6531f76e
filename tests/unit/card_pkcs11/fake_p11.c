/* fake_p11: see fake_p11.h. Only what card_pkcs11.c calls is implemented;
 * the rest of the function list is NULL. */
#include "fake_p11.h"

#include <pthread.h>
#include <string.h>

#include <p11-kit/pkcs11.h>

/* The two exported controls (besides C_GetFunctionList). */
void fake_p11_control(int what, unsigned long v);
unsigned long fake_p11_get(int what);

#define FAKE_SLOT         7
#define FAKE_SESSIONS_MAX 8

static pthread_mutex_t fake_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
    int mode;
    int present;
    CK_RV login_rv;
    CK_FLAGS flags;
    int wse;
    int event; /* a presence change C_WaitForSlotEvent has not told */
    int initialized;
    int serial; /* last digit of the token serial: a swap changes it */
    int logged_in;
    int open[FAKE_SESSIONS_MAX];
    unsigned long n[FAKE_KEYS_MAX];
} st;

static void fake_reset_locked(void)
{
    unsigned long init = st.n[FAKE_N_INIT], fin = st.n[FAKE_N_FINAL];
    int initialized = st.initialized;
    memset(&st, 0, sizeof st);
    st.present = 1;
    st.wse = 1;
    st.login_rv = CKR_OK;
    st.initialized = initialized;
    st.n[FAKE_N_INIT] = init;
    st.n[FAKE_N_FINAL] = fin;
}

static void fake_close_all_locked(void)
{
    memset(st.open, 0, sizeof st.open);
    st.logged_in = 0;
}

void fake_p11_control(int what, unsigned long v)
{
    pthread_mutex_lock(&fake_lock);
    switch (what) {
    case FAKE_RESET:
        fake_reset_locked();
        break;
    case FAKE_MODE:
        st.mode = (int)v;
        break;
    case FAKE_PRESENT:
        if ((int)v != st.present) {
            st.present = (int)v;
            st.event = 1;
            if (!v)
                fake_close_all_locked(); /* removal closes every session (PKCS#11 §5.6) */
        }
        break;
    case FAKE_LOGIN_RV:
        st.login_rv = v;
        break;
    case FAKE_FLAGS:
        st.flags = v;
        break;
    case FAKE_WSE:
        st.wse = (int)v;
        break;
    case FAKE_SWAP:
        fake_close_all_locked(); /* the sessions were on the other token */
        st.event = 1;
        st.serial++;
        break;
    default:
        break;
    }
    pthread_mutex_unlock(&fake_lock);
}

unsigned long fake_p11_get(int what)
{
    pthread_mutex_lock(&fake_lock);
    unsigned long v = 0;
    if (what == FAKE_N_SESSIONS) {
        for (int i = 0; i < FAKE_SESSIONS_MAX; i++)
            v += st.open[i] != 0;
    } else if (what >= 0 && what < FAKE_KEYS_MAX) {
        v = st.n[what];
    }
    pthread_mutex_unlock(&fake_lock);
    return v;
}

/* Common entry checks; returns CKR_OK to go on. Lock held. */
static CK_RV fake_enter(void)
{
    if (st.mode != FAKE_MODE_TOKEN)
        return CKR_GENERAL_ERROR;
    if (!st.initialized)
        return CKR_CRYPTOKI_NOT_INITIALIZED;
    return CKR_OK;
}

static CK_RV fake_session(CK_SESSION_HANDLE h)
{
    CK_RV rv = fake_enter();
    if (rv != CKR_OK)
        return rv;
    if (h < 1 || h > FAKE_SESSIONS_MAX || !st.open[h - 1])
        return CKR_SESSION_HANDLE_INVALID;
    if (!st.present)
        return CKR_DEVICE_REMOVED;
    return CKR_OK;
}

#define FAKE_BEGIN pthread_mutex_lock(&fake_lock)
#define FAKE_RETURN(x)                                                                             \
    do {                                                                                           \
        CK_RV fake_rv_ = (x);                                                                      \
        pthread_mutex_unlock(&fake_lock);                                                          \
        return fake_rv_;                                                                           \
    } while (0)

static void fake_pad(unsigned char *dst, size_t cap, const char *s)
{
    memset(dst, ' ', cap);
    size_t n = strlen(s);
    memcpy(dst, s, n < cap ? n : cap);
}

CK_RV C_Initialize(void *args)
{
    (void)args;
    FAKE_BEGIN;
    if (st.mode == FAKE_MODE_FAIL_ALL)
        FAKE_RETURN(CKR_GENERAL_ERROR);
    if (st.initialized)
        FAKE_RETURN(CKR_CRYPTOKI_ALREADY_INITIALIZED);
    st.initialized = 1;
    st.n[FAKE_N_INIT]++;
    FAKE_RETURN(CKR_OK);
}

CK_RV C_Finalize(void *reserved)
{
    (void)reserved;
    FAKE_BEGIN;
    if (st.mode == FAKE_MODE_FAIL_ALL)
        FAKE_RETURN(CKR_GENERAL_ERROR);
    if (!st.initialized)
        FAKE_RETURN(CKR_CRYPTOKI_NOT_INITIALIZED);
    st.initialized = 0;
    fake_close_all_locked();
    st.n[FAKE_N_FINAL]++;
    FAKE_RETURN(CKR_OK);
}

CK_RV C_GetSlotList(CK_BBOOL token_present, CK_SLOT_ID_PTR list, CK_ULONG_PTR n)
{
    FAKE_BEGIN;
    CK_RV rv = fake_enter();
    if (rv != CKR_OK)
        FAKE_RETURN(rv);
    CK_ULONG have = (!token_present || st.present) ? 1 : 0;
    if (list == NULL) {
        *n = have;
        FAKE_RETURN(CKR_OK);
    }
    if (*n < have) {
        *n = have;
        FAKE_RETURN(CKR_BUFFER_TOO_SMALL);
    }
    if (have)
        list[0] = FAKE_SLOT;
    *n = have;
    FAKE_RETURN(CKR_OK);
}

CK_RV C_GetSlotInfo(CK_SLOT_ID slot, CK_SLOT_INFO_PTR info)
{
    FAKE_BEGIN;
    CK_RV rv = fake_enter();
    if (rv != CKR_OK)
        FAKE_RETURN(rv);
    if (slot != FAKE_SLOT)
        FAKE_RETURN(CKR_SLOT_ID_INVALID);
    memset(info, 0, sizeof *info);
    fake_pad(info->slotDescription, sizeof info->slotDescription, "Fake Reader 00 00");
    fake_pad(info->manufacturerID, sizeof info->manufacturerID, "Cachet tests");
    info->flags = CKF_REMOVABLE_DEVICE | CKF_HW_SLOT | (st.present ? CKF_TOKEN_PRESENT : 0);
    FAKE_RETURN(CKR_OK);
}

CK_RV C_GetTokenInfo(CK_SLOT_ID slot, CK_TOKEN_INFO_PTR info)
{
    FAKE_BEGIN;
    CK_RV rv = fake_enter();
    if (rv != CKR_OK)
        FAKE_RETURN(rv);
    if (slot != FAKE_SLOT)
        FAKE_RETURN(CKR_SLOT_ID_INVALID);
    if (!st.present)
        FAKE_RETURN(CKR_TOKEN_NOT_PRESENT);
    memset(info, 0, sizeof *info);
    fake_pad(info->label, sizeof info->label, "FAKE CPS");
    fake_pad(info->manufacturerID, sizeof info->manufacturerID, "Cachet tests");
    fake_pad(info->model, sizeof info->model, "fake");
    char serial[] = "0000000000001234";
    serial[15] = (char)('0' + (st.serial + 4) % 10);
    fake_pad(info->serialNumber, sizeof info->serialNumber, serial);
    info->flags = CKF_TOKEN_INITIALIZED | CKF_USER_PIN_INITIALIZED | CKF_LOGIN_REQUIRED |
                  CKF_PROTECTED_AUTHENTICATION_PATH | st.flags;
    info->ulMinPinLen = 4;
    info->ulMaxPinLen = 8;
    FAKE_RETURN(CKR_OK);
}

CK_RV C_WaitForSlotEvent(CK_FLAGS flags, CK_SLOT_ID_PTR slot, void *reserved)
{
    (void)reserved;
    FAKE_BEGIN;
    st.n[FAKE_N_WSE]++;
    CK_RV rv = fake_enter();
    if (rv != CKR_OK)
        FAKE_RETURN(rv);
    if (!st.wse)
        FAKE_RETURN(CKR_FUNCTION_NOT_SUPPORTED);
    if (!(flags & CKF_DONT_BLOCK))
        FAKE_RETURN(CKR_ARGUMENTS_BAD); /* the fake never blocks */
    if (!st.event)
        FAKE_RETURN(CKR_NO_EVENT);
    st.event = 0;
    *slot = FAKE_SLOT;
    FAKE_RETURN(CKR_OK);
}

CK_RV C_OpenSession(CK_SLOT_ID slot, CK_FLAGS flags, void *app, CK_NOTIFY notify,
                    CK_SESSION_HANDLE_PTR out)
{
    (void)app;
    (void)notify;
    FAKE_BEGIN;
    CK_RV rv = fake_enter();
    if (rv != CKR_OK)
        FAKE_RETURN(rv);
    if (slot != FAKE_SLOT)
        FAKE_RETURN(CKR_SLOT_ID_INVALID);
    if (!(flags & CKF_SERIAL_SESSION))
        FAKE_RETURN(CKR_SESSION_PARALLEL_NOT_SUPPORTED);
    if (!st.present)
        FAKE_RETURN(CKR_TOKEN_NOT_PRESENT);
    for (int i = 0; i < FAKE_SESSIONS_MAX; i++) {
        if (!st.open[i]) {
            st.open[i] = 1;
            *out = (CK_SESSION_HANDLE)(i + 1);
            FAKE_RETURN(CKR_OK);
        }
    }
    FAKE_RETURN(CKR_SESSION_COUNT);
}

CK_RV C_CloseSession(CK_SESSION_HANDLE h)
{
    FAKE_BEGIN;
    CK_RV rv = fake_session(h);
    if (rv == CKR_OK || rv == CKR_DEVICE_REMOVED) {
        st.open[h - 1] = 0;
        int any = 0;
        for (int i = 0; i < FAKE_SESSIONS_MAX; i++)
            any |= st.open[i];
        if (!any)
            st.logged_in = 0; /* the last session closed logs out (PKCS#11 §5.6) */
        rv = CKR_OK;
    }
    FAKE_RETURN(rv);
}

CK_RV C_GetSessionInfo(CK_SESSION_HANDLE h, CK_SESSION_INFO_PTR info)
{
    FAKE_BEGIN;
    CK_RV rv = fake_session(h);
    if (rv != CKR_OK)
        FAKE_RETURN(rv);
    memset(info, 0, sizeof *info);
    info->slotID = FAKE_SLOT;
    info->flags = CKF_SERIAL_SESSION;
    info->state = st.logged_in ? CKS_RO_USER_FUNCTIONS : CKS_RO_PUBLIC_SESSION;
    FAKE_RETURN(CKR_OK);
}

CK_RV C_Login(CK_SESSION_HANDLE h, CK_USER_TYPE user, CK_UTF8CHAR_PTR pin, CK_ULONG len)
{
    (void)len;
    FAKE_BEGIN;
    CK_RV rv = fake_session(h);
    if (rv != CKR_OK)
        FAKE_RETURN(rv);
    st.n[FAKE_N_LOGIN]++;
    st.n[FAKE_LAST_PIN_NULL] = pin == NULL;
    if (user != CKU_USER)
        FAKE_RETURN(CKR_USER_TYPE_INVALID);
    if (st.logged_in)
        FAKE_RETURN(CKR_USER_ALREADY_LOGGED_IN);
    if (st.login_rv == CKR_OK)
        st.logged_in = 1;
    FAKE_RETURN(st.login_rv);
}

CK_RV C_Logout(CK_SESSION_HANDLE h)
{
    FAKE_BEGIN;
    CK_RV rv = fake_session(h);
    if (rv != CKR_OK)
        FAKE_RETURN(rv);
    if (!st.logged_in)
        FAKE_RETURN(CKR_USER_NOT_LOGGED_IN);
    st.logged_in = 0;
    FAKE_RETURN(CKR_OK);
}

CK_RV C_FindObjectsInit(CK_SESSION_HANDLE h, CK_ATTRIBUTE_PTR tmpl, CK_ULONG n)
{
    (void)tmpl;
    (void)n;
    FAKE_BEGIN;
    FAKE_RETURN(fake_session(h));
}

CK_RV C_FindObjects(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE_PTR out, CK_ULONG cap, CK_ULONG_PTR n)
{
    (void)out;
    (void)cap;
    FAKE_BEGIN;
    CK_RV rv = fake_session(h);
    if (rv == CKR_OK)
        *n = 0; /* no objects */
    FAKE_RETURN(rv);
}

CK_RV C_FindObjectsFinal(CK_SESSION_HANDLE h)
{
    FAKE_BEGIN;
    FAKE_RETURN(fake_session(h));
}

CK_RV C_GetAttributeValue(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE o, CK_ATTRIBUTE_PTR t, CK_ULONG n)
{
    (void)o;
    (void)t;
    (void)n;
    FAKE_BEGIN;
    CK_RV rv = fake_session(h);
    FAKE_RETURN(rv == CKR_OK ? CKR_OBJECT_HANDLE_INVALID : rv);
}

CK_RV C_SignInit(CK_SESSION_HANDLE h, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE k)
{
    (void)m;
    (void)k;
    FAKE_BEGIN;
    CK_RV rv = fake_session(h);
    FAKE_RETURN(rv == CKR_OK ? CKR_KEY_HANDLE_INVALID : rv);
}

CK_RV C_Sign(CK_SESSION_HANDLE h, CK_BYTE_PTR d, CK_ULONG dl, CK_BYTE_PTR s, CK_ULONG_PTR sl)
{
    (void)d;
    (void)dl;
    (void)s;
    (void)sl;
    FAKE_BEGIN;
    CK_RV rv = fake_session(h);
    FAKE_RETURN(rv == CKR_OK ? CKR_OPERATION_NOT_INITIALIZED : rv);
}

static CK_FUNCTION_LIST fake_list = {
    .version = {2, 40},
    .C_Initialize = C_Initialize,
    .C_Finalize = C_Finalize,
    .C_GetSlotList = C_GetSlotList,
    .C_GetSlotInfo = C_GetSlotInfo,
    .C_GetTokenInfo = C_GetTokenInfo,
    .C_WaitForSlotEvent = C_WaitForSlotEvent,
    .C_OpenSession = C_OpenSession,
    .C_CloseSession = C_CloseSession,
    .C_GetSessionInfo = C_GetSessionInfo,
    .C_Login = C_Login,
    .C_Logout = C_Logout,
    .C_FindObjectsInit = C_FindObjectsInit,
    .C_FindObjects = C_FindObjects,
    .C_FindObjectsFinal = C_FindObjectsFinal,
    .C_GetAttributeValue = C_GetAttributeValue,
    .C_SignInit = C_SignInit,
    .C_Sign = C_Sign,
};

CK_RV C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR out)
{
    if (out == NULL)
        return CKR_ARGUMENTS_BAD;
    fake_list.C_GetFunctionList = C_GetFunctionList;
    *out = &fake_list;
    return CKR_OK;
}
