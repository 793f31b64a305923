/*
 * Calls a PKCS#11 module the way careless or unlucky applications do, and prints what it
 * answers: the bad-call rows of tests/pkcs11_bad_calls.rs and the fork test of
 * tests/pkcs11_faults.rs (one child, and a stress of many). Built by those tests with `cc`
 * against p11-kit's pkcs11.h.
 *
 * Usage: probe MODULE TOKEN_LABEL PIN ROW
 *
 * Prints one line of `name=value` pairs (return values as CKR_ numbers in hex), which the
 * test compares with what the spec and the reference token answer. Keys the rows use
 * were made by the test: an EC P-256 pair with CKA_ID 02 and an AES-256 key with CKA_ID 03.
 * Exits 0 when it could run the row, 2 when the set-up itself failed.
 */
#include <dlfcn.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <p11-kit/pkcs11.h>

static CK_FUNCTION_LIST_PTR f;
static CK_SLOT_ID slot;
static const char *label;
static const char *pin;
static char out[4096];

static void put(const char *name, unsigned long value)
{
    char item[128];
    snprintf(item, sizeof item, "%s%s=0x%lx", out[0] ? " " : "", name, value);
    strncat(out, item, sizeof out - strlen(out) - 1);
}

static void fail(const char *what, CK_RV rv)
{
    printf("setup failed: %s rv=0x%lx\n", what, rv);
    exit(2);
}

static CK_RV init(void)
{
    CK_C_INITIALIZE_ARGS args;
    memset(&args, 0, sizeof args);
    args.flags = CKF_OS_LOCKING_OK;
    return f->C_Initialize(&args);
}

/* Finds the slot whose token carries `label` (blank-padded in CK_TOKEN_INFO). */
static void find_slot(void)
{
    CK_SLOT_ID slots[16];
    CK_ULONG n = 16;
    CK_RV rv = f->C_GetSlotList(CK_TRUE, slots, &n);
    if (rv != CKR_OK)
        fail("C_GetSlotList", rv);
    for (CK_ULONG i = 0; i < n; i++) {
        CK_TOKEN_INFO info;
        if (f->C_GetTokenInfo(slots[i], &info) != CKR_OK)
            continue;
        size_t len = sizeof info.label;
        while (len > 0 && info.label[len - 1] == ' ')
            len--;
        if (len == strlen(label) && memcmp(info.label, label, len) == 0) {
            slot = slots[i];
            return;
        }
    }
    fail("no slot holds the token", 0);
}

static CK_SESSION_HANDLE open_rw(void)
{
    CK_SESSION_HANDLE s;
    CK_RV rv = f->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &s);
    if (rv != CKR_OK)
        fail("C_OpenSession", rv);
    return s;
}

static CK_RV login(CK_SESSION_HANDLE s)
{
    return f->C_Login(s, CKU_USER, (CK_UTF8CHAR_PTR)pin, strlen(pin));
}

static CK_SESSION_HANDLE user_session(void)
{
    CK_SESSION_HANDLE s = open_rw();
    CK_RV rv = login(s);
    if (rv != CKR_OK)
        fail("C_Login", rv);
    return s;
}

static CK_OBJECT_HANDLE find_key(CK_SESSION_HANDLE s, CK_OBJECT_CLASS cls, unsigned char id)
{
    CK_ATTRIBUTE t[] = {
        {CKA_CLASS, &cls, sizeof cls},
        {CKA_ID, &id, 1},
    };
    CK_OBJECT_HANDLE h[2];
    CK_ULONG n = 0;
    CK_RV rv = f->C_FindObjectsInit(s, t, 2);
    if (rv != CKR_OK)
        fail("C_FindObjectsInit", rv);
    rv = f->C_FindObjects(s, h, 2, &n);
    if (rv != CKR_OK)
        fail("C_FindObjects", rv);
    f->C_FindObjectsFinal(s);
    if (n != 1)
        fail("not exactly one key with that CKA_ID", n);
    return h[0];
}

static unsigned char data[32] = "thirty-two bytes of test data!!";
static CK_MECHANISM ecdsa = {CKM_ECDSA, NULL, 0};

/* ---- general purpose ---------------------------------------------------------- */

static void get_function_list_null(void)
{
    CK_RV (*get)(CK_FUNCTION_LIST_PTR_PTR) = (void *)f->C_GetFunctionList;
    put("C_GetFunctionList", get(NULL));
}

static void initialize_twice(void)
{
    put("C_Initialize", init());
}

static void initialize_reserved_non_null(void)
{
    f->C_Finalize(NULL);
    CK_C_INITIALIZE_ARGS args;
    memset(&args, 0, sizeof args);
    args.flags = CKF_OS_LOCKING_OK;
    args.pReserved = &args;
    put("C_Initialize", f->C_Initialize(&args));
}

static void finalize_reserved_non_null(void)
{
    int x;
    put("C_Finalize", f->C_Finalize(&x));
}

static void calls_after_finalize(void)
{
    CK_SESSION_HANDLE s = open_rw();
    put("C_Finalize", f->C_Finalize(NULL));
    CK_ULONG n = 0;
    put("C_GetSlotList", f->C_GetSlotList(CK_TRUE, NULL, &n));
    CK_SESSION_INFO info;
    put("C_GetSessionInfo", f->C_GetSessionInfo(s, &info));
    put("C_Finalize2", f->C_Finalize(NULL));
}

static void finalize_with_sessions_open(void)
{
    CK_SESSION_HANDLE s = user_session();
    CK_SESSION_HANDLE s2 = open_rw();
    (void)s2;
    put("C_Finalize", f->C_Finalize(NULL));
    put("C_Initialize", init());
    CK_SESSION_INFO info;
    put("C_GetSessionInfo", f->C_GetSessionInfo(s, &info));
    /* A new session starts logged out: the login went with the finalised instance. */
    CK_SESSION_HANDLE s3 = open_rw();
    put("C_GetSessionInfo_new", f->C_GetSessionInfo(s3, &info));
    put("state", info.state);
}

/* ---- slots, tokens, sessions --------------------------------------------------------- */

static void slot_list_null_count(void)
{
    put("C_GetSlotList", f->C_GetSlotList(CK_TRUE, NULL, NULL));
}

static void token_info_null(void)
{
    put("C_GetTokenInfo", f->C_GetTokenInfo(slot, NULL));
}

static void invalid_slot(void)
{
    CK_SLOT_INFO info;
    put("C_GetSlotInfo", f->C_GetSlotInfo(0x7fff1234, &info));
}

static void open_session_null_handle(void)
{
    put("C_OpenSession", f->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL, NULL));
}

static void open_session_not_serial(void)
{
    CK_SESSION_HANDLE s;
    put("C_OpenSession", f->C_OpenSession(slot, 0, NULL, NULL, &s));
}

static void invalid_session_handle(void)
{
    CK_SESSION_INFO info;
    put("C_GetSessionInfo", f->C_GetSessionInfo(0x7fff1234, &info));
    CK_ULONG len = 0;
    put("C_SignInit", f->C_SignInit(0x7fff1234, &ecdsa, 1));
    (void)len;
}

static void closed_session_handle(void)
{
    CK_SESSION_HANDLE s = open_rw();
    put("C_CloseSession", f->C_CloseSession(s));
    CK_SESSION_INFO info;
    put("C_GetSessionInfo", f->C_GetSessionInfo(s, &info));
}

/* ---- objects ------------------------------------------------------------------------ */

static void invalid_object_handle(void)
{
    CK_SESSION_HANDLE s = user_session();
    unsigned char buf[64];
    CK_ATTRIBUTE a = {CKA_LABEL, buf, sizeof buf};
    put("C_GetAttributeValue", f->C_GetAttributeValue(s, 0x7fff1234, &a, 1));
    put("C_DestroyObject", f->C_DestroyObject(s, 0x7fff1234));
}

static void find_init_null_template(void)
{
    CK_SESSION_HANDLE s = user_session();
    put("C_FindObjectsInit", f->C_FindObjectsInit(s, NULL, 1));
}

static void attribute_buffer_too_small(void)
{
    CK_SESSION_HANDLE s = user_session();
    CK_OBJECT_HANDLE k = find_key(s, CKO_PUBLIC_KEY, 2);
    unsigned char buf[1];
    CK_ATTRIBUTE a = {CKA_EC_POINT, buf, sizeof buf};
    put("C_GetAttributeValue", f->C_GetAttributeValue(s, k, &a, 1));
    put("len", a.ulValueLen);
}

static void sensitive_attribute(void)
{
    CK_SESSION_HANDLE s = user_session();
    CK_OBJECT_HANDLE k = find_key(s, CKO_SECRET_KEY, 3);
    unsigned char buf[64];
    CK_ATTRIBUTE a = {CKA_VALUE, buf, sizeof buf};
    put("C_GetAttributeValue", f->C_GetAttributeValue(s, k, &a, 1));
    put("len", a.ulValueLen);
}

/* ---- mechanisms and their parameters ---------------------------------------------- */

static void sign_init_null_mechanism(void)
{
    CK_SESSION_HANDLE s = user_session();
    CK_OBJECT_HANDLE k = find_key(s, CKO_PRIVATE_KEY, 2);
    put("C_SignInit", f->C_SignInit(s, NULL, k));
}

static void invalid_key_handle(void)
{
    CK_SESSION_HANDLE s = user_session();
    put("C_SignInit", f->C_SignInit(s, &ecdsa, 0x7fff1234));
}

static void unknown_mechanism(void)
{
    CK_SESSION_HANDLE s = user_session();
    CK_OBJECT_HANDLE k = find_key(s, CKO_PRIVATE_KEY, 2);
    CK_MECHANISM m = {CKM_VENDOR_DEFINED | 0x1234, NULL, 0};
    put("C_SignInit", f->C_SignInit(s, &m, k));
}

static void key_type_inconsistent(void)
{
    CK_SESSION_HANDLE s = user_session();
    CK_OBJECT_HANDLE k = find_key(s, CKO_SECRET_KEY, 3);
    put("C_SignInit", f->C_SignInit(s, &ecdsa, k));
}

static void gcm_tag_bits_invalid(void)
{
    CK_SESSION_HANDLE s = user_session();
    CK_OBJECT_HANDLE k = find_key(s, CKO_SECRET_KEY, 3);
    unsigned char iv[12] = {0};
    CK_GCM_PARAMS p = {iv, sizeof iv, 96, NULL, 0, 7};
    CK_MECHANISM m = {CKM_AES_GCM, &p, sizeof p};
    put("C_EncryptInit", f->C_EncryptInit(s, &m, k));
}

static void cbc_pad_short_iv(void)
{
    CK_SESSION_HANDLE s = user_session();
    CK_OBJECT_HANDLE k = find_key(s, CKO_SECRET_KEY, 3);
    unsigned char iv[8] = {0};
    CK_MECHANISM m = {CKM_AES_CBC_PAD, iv, sizeof iv};
    put("C_EncryptInit", f->C_EncryptInit(s, &m, k));
}

/* ---- buffers and operation state --------------------------------------------------- */

static void sign_buffer_too_small(void)
{
    CK_SESSION_HANDLE s = user_session();
    CK_OBJECT_HANDLE k = find_key(s, CKO_PRIVATE_KEY, 2);
    CK_OBJECT_HANDLE pub = find_key(s, CKO_PUBLIC_KEY, 2);
    unsigned char sig[128];
    CK_ULONG len = 10;
    put("C_SignInit", f->C_SignInit(s, &ecdsa, k));
    put("C_Sign_small", f->C_Sign(s, data, sizeof data, sig, &len));
    put("len", len);
    CK_ULONG len2 = sizeof sig;
    put("C_Sign", f->C_Sign(s, data, sizeof data, sig, &len2));
    put("len2", len2);
    put("C_VerifyInit", f->C_VerifyInit(s, &ecdsa, pub));
    put("C_Verify", f->C_Verify(s, data, sizeof data, sig, len2));
}

static void size_query_then_sign(void)
{
    CK_SESSION_HANDLE s = user_session();
    CK_OBJECT_HANDLE k = find_key(s, CKO_PRIVATE_KEY, 2);
    unsigned char sig[128];
    CK_ULONG len = 0;
    put("C_SignInit", f->C_SignInit(s, &ecdsa, k));
    put("C_Sign_query", f->C_Sign(s, data, sizeof data, NULL, &len));
    put("len", len);
    put("C_Sign", f->C_Sign(s, data, sizeof data, sig, &len));
    put("C_Sign_after", f->C_Sign(s, data, sizeof data, sig, &len));
}

static void encrypt_buffer_too_small(void)
{
    CK_SESSION_HANDLE s = user_session();
    CK_OBJECT_HANDLE k = find_key(s, CKO_SECRET_KEY, 3);
    unsigned char iv[16] = {1};
    CK_MECHANISM m = {CKM_AES_CBC_PAD, iv, sizeof iv};
    unsigned char ct[64];
    CK_ULONG len = 8;
    put("C_EncryptInit", f->C_EncryptInit(s, &m, k));
    put("C_Encrypt_small", f->C_Encrypt(s, data, 20, ct, &len));
    put("len", len);
    CK_ULONG len2 = sizeof ct;
    put("C_Encrypt", f->C_Encrypt(s, data, 20, ct, &len2));
    put("len2", len2);
    unsigned char back[64];
    CK_ULONG blen = sizeof back;
    put("C_DecryptInit", f->C_DecryptInit(s, &m, k));
    put("C_Decrypt", f->C_Decrypt(s, ct, len2, back, &blen));
    put("same", blen == 20 && memcmp(back, data, 20) == 0);
}

static void sign_null_signature_len(void)
{
    CK_SESSION_HANDLE s = user_session();
    CK_OBJECT_HANDLE k = find_key(s, CKO_PRIVATE_KEY, 2);
    unsigned char sig[128];
    put("C_SignInit", f->C_SignInit(s, &ecdsa, k));
    put("C_Sign", f->C_Sign(s, data, sizeof data, sig, NULL));
}

static void operation_active(void)
{
    CK_SESSION_HANDLE s = user_session();
    CK_OBJECT_HANDLE k = find_key(s, CKO_PRIVATE_KEY, 2);
    put("C_SignInit", f->C_SignInit(s, &ecdsa, k));
    put("C_SignInit2", f->C_SignInit(s, &ecdsa, k));
}

static void operation_not_initialized(void)
{
    CK_SESSION_HANDLE s = user_session();
    unsigned char sig[128];
    CK_ULONG len = sizeof sig;
    put("C_Sign", f->C_Sign(s, data, sizeof data, sig, &len));
    put("C_DigestUpdate", f->C_DigestUpdate(s, data, sizeof data));
}

static void error_ends_operation(void)
{
    CK_SESSION_HANDLE s = user_session();
    CK_OBJECT_HANDLE k = find_key(s, CKO_SECRET_KEY, 3);
    unsigned char iv[16] = {2};
    CK_MECHANISM m = {CKM_AES_CBC_PAD, iv, sizeof iv};
    unsigned char back[64];
    CK_ULONG blen = sizeof back;
    put("C_DecryptInit", f->C_DecryptInit(s, &m, k));
    /* 15 bytes cannot be AES-CBC ciphertext. */
    put("C_Decrypt", f->C_Decrypt(s, data, 15, back, &blen));
    blen = sizeof back;
    put("C_Decrypt2", f->C_Decrypt(s, data, 16, back, &blen));
}

/* ---- login ------------------------------------------------------------------------- */

static CK_RV generate_aes(CK_SESSION_HANDLE s)
{
    CK_MECHANISM m = {CKM_AES_KEY_GEN, NULL, 0};
    CK_ULONG len = 32;
    CK_BBOOL yes = CK_TRUE;
    CK_ATTRIBUTE t[] = {
        {CKA_VALUE_LEN, &len, sizeof len},
        {CKA_TOKEN, &yes, sizeof yes},
        {CKA_PRIVATE, &yes, sizeof yes},
    };
    CK_OBJECT_HANDLE h;
    return f->C_GenerateKey(s, &m, t, 3, &h);
}

static void generate_without_login(void)
{
    CK_SESSION_HANDLE s = open_rw();
    put("C_GenerateKey", generate_aes(s));
}

static void generate_in_read_only_session(void)
{
    CK_SESSION_HANDLE rw = user_session();
    (void)rw;
    CK_SESSION_HANDLE ro;
    CK_RV rv = f->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL, &ro);
    if (rv != CKR_OK)
        fail("C_OpenSession", rv);
    put("C_GenerateKey", generate_aes(ro));
}

static void find_private_without_login(void)
{
    CK_SESSION_HANDLE s = open_rw();
    CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
    CK_ATTRIBUTE t = {CKA_CLASS, &cls, sizeof cls};
    CK_OBJECT_HANDLE h[4];
    CK_ULONG n = 99;
    put("C_FindObjectsInit", f->C_FindObjectsInit(s, &t, 1));
    put("C_FindObjects", f->C_FindObjects(s, h, 4, &n));
    put("found", n);
}

static void sign_after_logout(void)
{
    CK_SESSION_HANDLE s = user_session();
    CK_OBJECT_HANDLE k = find_key(s, CKO_PRIVATE_KEY, 2);
    put("C_Logout", f->C_Logout(s));
    put("C_SignInit", f->C_SignInit(s, &ecdsa, k));
}

static void login_twice(void)
{
    CK_SESSION_HANDLE s = user_session();
    put("C_Login", login(s));
}

static void login_wrong_pin(void)
{
    CK_SESSION_HANDLE s = open_rw();
    put("C_Login", f->C_Login(s, CKU_USER, (CK_UTF8CHAR_PTR) "wrong-pin", 9));
}

static void logout_without_login(void)
{
    CK_SESSION_HANDLE s = open_rw();
    put("C_Logout", f->C_Logout(s));
}

/* ---- fork ------------------------------------------------------------------------ */

static CK_RV sign_once(CK_SESSION_HANDLE s)
{
    CK_OBJECT_HANDLE k = find_key(s, CKO_PRIVATE_KEY, 2);
    unsigned char sig[128];
    CK_ULONG len = sizeof sig;
    CK_RV rv = f->C_SignInit(s, &ecdsa, k);
    return rv != CKR_OK ? rv : f->C_Sign(s, data, sizeof data, sig, &len);
}

/* The parent initialises and signs, forks; the child's first call (without its own
 * C_Initialize) must answer CKR_CRYPTOKI_NOT_INITIALIZED, then after C_Initialize it
 * signs on a connection of its own; the parent signs again after the child is done. */
static void fork_child(void)
{
    CK_SESSION_HANDLE s = user_session();
    put("parent_sign", sign_once(s));
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0)
        fail("fork", 0);
    if (pid == 0) {
        out[0] = 0;
        CK_SESSION_INFO info;
        put("child_C_GetSessionInfo", f->C_GetSessionInfo(s, &info));
        CK_ULONG n = 0;
        put("child_C_GetSlotList", f->C_GetSlotList(CK_TRUE, NULL, &n));
        put("child_C_Initialize", init());
        find_slot();
        put("child_sign", sign_once(user_session()));
        put("child_C_Finalize", f->C_Finalize(NULL));
        printf("%s\n", out);
        fflush(stdout);
        _exit(0);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    put("child_exit", WIFEXITED(status) ? WEXITSTATUS(status) : 0x100);
    put("parent_sign_after", sign_once(s));
}

/* Many forks while other threads initialise and finalise the library: a fork must never
 * leave the child holding the library's lock with no thread to release it. Each child
 * initialises and finalises on its own; one that hangs is killed by its alarm. */
static volatile int stress_done;

static void *init_finalize_loop(void *unused)
{
    (void)unused;
    while (!stress_done) {
        if (init() == CKR_OK)
            f->C_Finalize(NULL);
    }
    return NULL;
}

static void fork_stress(void)
{
    enum { THREADS = 4, FORKS = 200 };
    pthread_t threads[THREADS];
    put("C_Finalize", f->C_Finalize(NULL));
    for (int i = 0; i < THREADS; i++)
        if (pthread_create(&threads[i], NULL, init_finalize_loop, NULL) != 0)
            fail("pthread_create", 0);
    unsigned long ok = 0, failed = 0, hung = 0;
    for (int i = 0; i < FORKS; i++) {
        pid_t pid = fork();
        if (pid < 0)
            fail("fork", 0);
        if (pid == 0) {
            alarm(10);
            int good = init() == CKR_OK && f->C_Finalize(NULL) == CKR_OK;
            _exit(good ? 0 : 1);
        }
        int status = 0;
        waitpid(pid, &status, 0);
        if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
            ok++;
        else if (WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM) {
            hung++;
            break; /* one is enough to know, and bounds the run */
        } else
            failed++;
    }
    stress_done = 1;
    for (int i = 0; i < THREADS; i++)
        pthread_join(threads[i], NULL);
    put("children_ok", ok);
    put("children_failed", failed);
    put("children_hung", hung);
}

struct row {
    const char *name;
    void (*run)(void);
};

static const struct row rows[] = {
    {"get_function_list_null", get_function_list_null},
    {"initialize_twice", initialize_twice},
    {"initialize_reserved_non_null", initialize_reserved_non_null},
    {"finalize_reserved_non_null", finalize_reserved_non_null},
    {"calls_after_finalize", calls_after_finalize},
    {"finalize_with_sessions_open", finalize_with_sessions_open},
    {"slot_list_null_count", slot_list_null_count},
    {"token_info_null", token_info_null},
    {"invalid_slot", invalid_slot},
    {"open_session_null_handle", open_session_null_handle},
    {"open_session_not_serial", open_session_not_serial},
    {"invalid_session_handle", invalid_session_handle},
    {"closed_session_handle", closed_session_handle},
    {"invalid_object_handle", invalid_object_handle},
    {"find_init_null_template", find_init_null_template},
    {"attribute_buffer_too_small", attribute_buffer_too_small},
    {"sensitive_attribute", sensitive_attribute},
    {"sign_init_null_mechanism", sign_init_null_mechanism},
    {"invalid_key_handle", invalid_key_handle},
    {"unknown_mechanism", unknown_mechanism},
    {"key_type_inconsistent", key_type_inconsistent},
    {"gcm_tag_bits_invalid", gcm_tag_bits_invalid},
    {"cbc_pad_short_iv", cbc_pad_short_iv},
    {"sign_buffer_too_small", sign_buffer_too_small},
    {"size_query_then_sign", size_query_then_sign},
    {"encrypt_buffer_too_small", encrypt_buffer_too_small},
    {"sign_null_signature_len", sign_null_signature_len},
    {"operation_active", operation_active},
    {"operation_not_initialized", operation_not_initialized},
    {"error_ends_operation", error_ends_operation},
    {"generate_without_login", generate_without_login},
    {"generate_in_read_only_session", generate_in_read_only_session},
    {"find_private_without_login", find_private_without_login},
    {"sign_after_logout", sign_after_logout},
    {"login_twice", login_twice},
    {"login_wrong_pin", login_wrong_pin},
    {"logout_without_login", logout_without_login},
    {"fork_child", fork_child},
    {"fork_stress", fork_stress},
};

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: probe MODULE TOKEN_LABEL PIN ROW\n");
        return 2;
    }
    label = argv[2];
    pin = argv[3];
    const struct row *row = NULL;
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        if (strcmp(rows[i].name, argv[4]) == 0)
            row = &rows[i];
    if (row == NULL) {
        fprintf(stderr, "no row %s\n", argv[4]);
        return 2;
    }
    void *lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (lib == NULL) {
        printf("setup failed: %s\n", dlerror());
        return 2;
    }
    CK_RV (*get)(CK_FUNCTION_LIST_PTR_PTR) = (CK_RV(*)(CK_FUNCTION_LIST_PTR_PTR))dlsym(lib, "C_GetFunctionList");
    if (get == NULL)
        fail("no C_GetFunctionList", 0);
    CK_RV rv = get(&f);
    if (rv != CKR_OK)
        fail("C_GetFunctionList", rv);
    rv = init();
    if (rv != CKR_OK)
        fail("C_Initialize", rv);
    find_slot();
    row->run();
    printf("%s\n", out);
    return 0;
}
