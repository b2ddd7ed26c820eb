/*
 * The library through its C ABI, as a C application uses it: what PKCS#11
 * v2.40 says of initialisation, of fork(), of template defaults and of the
 * return codes that end an operation.
 *
 * Usage: spec LIBRARY PIN. Prints one line per check and, when every check
 * passed, "all checks passed". Every wait is bounded: a child that hangs is
 * killed by its alarm, which fails the check that forked it.
 *
 * pkcs11.h is the public-domain header cryptoki-sys vendors.
 */
#include <dlfcn.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pkcs11.h"

static CK_FUNCTION_LIST *p;
static const char *pin;
static int failures;

#define EXPECT(call, want) expect(#call, (call), (want), __LINE__)

static void expect(const char *what, CK_RV got, CK_RV want, int line) {
    if (got == want) {
        printf("ok   %s = 0x%lx\n", what, got);
    } else {
        printf("FAIL line %d: %s = 0x%lx, want 0x%lx\n", line, what, got, want);
        failures++;
    }
    fflush(stdout);
}

static void fail(const char *what) {
    printf("FAIL %s\n", what);
    fflush(stdout);
    failures++;
}

static CK_BBOOL yes = CK_TRUE;

/* A read/write session logged in with the PIN. */
static CK_SESSION_HANDLE logged_in(void) {
    CK_SESSION_HANDLE s = CK_INVALID_HANDLE;
    EXPECT(p->C_OpenSession(1, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &s), CKR_OK);
    CK_RV rv = p->C_Login(s, CKU_USER, (CK_UTF8CHAR *)pin, strlen(pin));
    if (rv != CKR_OK && rv != CKR_USER_ALREADY_LOGGED_IN) {
        EXPECT(rv, CKR_OK);
    }
    return s;
}

/* An EC P-256 pair; token keys when `token` is non-null. */
static void ec_pair(CK_SESSION_HANDLE s, const char *label, CK_BBOOL *token, CK_OBJECT_HANDLE *pub,
                    CK_OBJECT_HANDLE *priv) {
    static CK_BYTE p256[] = {0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07};
    CK_MECHANISM gen = {CKM_EC_KEY_PAIR_GEN, NULL, 0};
    CK_ATTRIBUTE pub_t[4] = {
        {CKA_EC_PARAMS, p256, sizeof p256},
        {CKA_VERIFY, &yes, 1},
        {CKA_LABEL, (void *)label, strlen(label)},
        {CKA_TOKEN, token, 1},
    };
    CK_ATTRIBUTE priv_t[3] = {
        {CKA_SIGN, &yes, 1},
        {CKA_LABEL, (void *)label, strlen(label)},
        {CKA_TOKEN, token, 1},
    };
    EXPECT(p->C_GenerateKeyPair(s, &gen, pub_t, token ? 4 : 3, priv_t, token ? 3 : 2, pub, priv), CKR_OK);
}

/* Signs with ECDSA-SHA256 and verifies: 1 when both worked. */
static int sign_and_verify(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE pub, CK_OBJECT_HANDLE priv) {
    CK_MECHANISM m = {CKM_ECDSA_SHA256, NULL, 0};
    CK_BYTE data[] = "signed in a child process";
    CK_BYTE sig[64];
    CK_ULONG sig_len = sizeof sig;
    if (p->C_SignInit(s, &m, priv) != CKR_OK || p->C_Sign(s, data, sizeof data, sig, &sig_len) != CKR_OK) {
        return 0;
    }
    return p->C_VerifyInit(s, &m, pub) == CKR_OK && p->C_Verify(s, data, sizeof data, sig, sig_len) == CKR_OK;
}

/* The first private key labelled `label`. */
static CK_OBJECT_HANDLE find(CK_SESSION_HANDLE s, const char *label, CK_OBJECT_CLASS class) {
    CK_ATTRIBUTE t[2] = {{CKA_LABEL, (void *)label, strlen(label)}, {CKA_CLASS, &class, sizeof class}};
    CK_OBJECT_HANDLE found = CK_INVALID_HANDLE;
    CK_ULONG n = 0;
    p->C_FindObjectsInit(s, t, 2);
    p->C_FindObjects(s, &found, 1, &n);
    p->C_FindObjectsFinal(s);
    return n == 1 ? found : CK_INVALID_HANDLE;
}

/*
 * Forks; the child runs `child` under a 30-second alarm and exits with 0 when
 * it succeeded. Returns whether the child exited 0.
 */
static int in_child(int (*child)(void)) {
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        alarm(30);
        failures = 0;
        int ok = child();
        fflush(stdout);
        _exit(ok && failures == 0 ? 0 : 1);
    }
    int status = 0;
    if (pid < 0 || waitpid(pid, &status, 0) != pid) {
        return 0;
    }
    if (WIFSIGNALED(status)) {
        printf("     child killed by signal %d%s\n", WTERMSIG(status),
               WTERMSIG(status) == SIGALRM ? " (it hung)" : "");
    }
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

/* A child that uses the inherited library at once, then starts its own. */
static int child_reinitialises(void) {
    CK_MECHANISM m = {CKM_ECDSA_SHA256, NULL, 0};
    CK_BYTE random[16];
    /* What it inherited is not initialised here: fail fast, never hang. */
    EXPECT(p->C_GenerateRandom(1, random, sizeof random), CKR_CRYPTOKI_NOT_INITIALIZED);
    EXPECT(p->C_SignInit(1, &m, 1), CKR_CRYPTOKI_NOT_INITIALIZED);
    EXPECT(p->C_Finalize(NULL), CKR_OK);
    EXPECT(p->C_Finalize(NULL), CKR_CRYPTOKI_NOT_INITIALIZED);
    EXPECT(p->C_Initialize(NULL), CKR_OK);
    CK_SESSION_HANDLE s = logged_in();
    CK_OBJECT_HANDLE priv = find(s, "fork-test", CKO_PRIVATE_KEY);
    CK_OBJECT_HANDLE pub = find(s, "fork-test", CKO_PUBLIC_KEY);
    if (priv == CK_INVALID_HANDLE || pub == CK_INVALID_HANDLE) {
        fail("child: the parent's token key is found");
        return 0;
    }
    int ok = sign_and_verify(s, pub, priv);
    printf("%s child: signs and verifies after C_Initialize\n", ok ? "ok  " : "FAIL");
    EXPECT(p->C_Finalize(NULL), CKR_OK);
    return ok;
}

/* A child that calls C_Initialize straight away (pkcs11-tool --test-fork). */
static int child_initialises_at_once(void) {
    EXPECT(p->C_Initialize(NULL), CKR_OK);
    EXPECT(p->C_Finalize(NULL), CKR_OK);
    return 1;
}

/* A child that only finalises what it inherited (an exit handler). */
static int child_finalises(void) {
    EXPECT(p->C_Finalize(NULL), CKR_OK);
    return 1;
}

static void before_initialize(void) {
    CK_INFO info;
    CK_SLOT_ID slot;
    EXPECT(p->C_GetInfo(&info), CKR_CRYPTOKI_NOT_INITIALIZED);
    EXPECT(p->C_Finalize(NULL), CKR_CRYPTOKI_NOT_INITIALIZED);
    EXPECT(p->C_WaitForSlotEvent(0, &slot, NULL), CKR_CRYPTOKI_NOT_INITIALIZED);
    EXPECT(p->C_WaitForSlotEvent(CKF_DONT_BLOCK, &slot, NULL), CKR_CRYPTOKI_NOT_INITIALIZED);
    EXPECT(p->C_DigestKey(1, 1), CKR_CRYPTOKI_NOT_INITIALIZED);
    EXPECT(p->C_GetFunctionStatus(1), CKR_CRYPTOKI_NOT_INITIALIZED);
}

static void template_defaults(CK_SESSION_HANDLE s) {
    CK_OBJECT_HANDLE pub, priv;
    ec_pair(s, "default-token", NULL, &pub, &priv);
    CK_BBOOL token_pub = CK_TRUE, token_priv = CK_TRUE;
    CK_ATTRIBUTE a = {CKA_TOKEN, &token_pub, 1};
    EXPECT(p->C_GetAttributeValue(s, pub, &a, 1), CKR_OK);
    a.pValue = &token_priv;
    EXPECT(p->C_GetAttributeValue(s, priv, &a, 1), CKR_OK);
    if (token_pub != CK_FALSE || token_priv != CK_FALSE) {
        fail("a pair with no CKA_TOKEN is of session objects");
    } else {
        printf("ok   a pair with no CKA_TOKEN is of session objects\n");
    }
    /* ... which a read-only session may make. */
    CK_SESSION_HANDLE ro;
    EXPECT(p->C_OpenSession(1, CKF_SERIAL_SESSION, NULL, NULL, &ro), CKR_OK);
    ec_pair(ro, "read-only", NULL, &pub, &priv);
    EXPECT(p->C_CloseSession(ro), CKR_OK);
}

static void operations_end_on_error(CK_SESSION_HANDLE s) {
    CK_MECHANISM gen = {CKM_AES_KEY_GEN, NULL, 0};
    CK_ULONG len32 = 32;
    CK_ATTRIBUTE t[3] = {{CKA_VALUE_LEN, &len32, sizeof len32}, {CKA_ENCRYPT, &yes, 1}, {CKA_DECRYPT, &yes, 1}};
    CK_OBJECT_HANDLE aes = CK_INVALID_HANDLE;
    EXPECT(p->C_GenerateKey(s, &gen, t, 3, &aes), CKR_OK);
    CK_MECHANISM ecb = {CKM_AES_ECB, NULL, 0};
    CK_BYTE iv[16] = {0};
    CK_MECHANISM cbc_pad = {CKM_AES_CBC_PAD, iv, sizeof iv};
    CK_BYTE data[48] = {0}, out[64];
    CK_ULONG out_len = sizeof out;

    /* A block cipher without padding given part of a block. */
    EXPECT(p->C_EncryptInit(s, &ecb, aes), CKR_OK);
    EXPECT(p->C_Encrypt(s, data, 15, out, &out_len), CKR_DATA_LEN_RANGE);
    /* ... ended the operation: a new one starts. */
    EXPECT(p->C_EncryptInit(s, &ecb, aes), CKR_OK);
    out_len = sizeof out;
    EXPECT(p->C_Encrypt(s, data, 32, out, &out_len), CKR_OK);
    EXPECT(p->C_DecryptInit(s, &ecb, aes), CKR_OK);
    out_len = sizeof out;
    EXPECT(p->C_Decrypt(s, out, 31, data, &out_len), CKR_ENCRYPTED_DATA_LEN_RANGE);
    EXPECT(p->C_DecryptInit(s, &cbc_pad, aes), CKR_OK);
    out_len = sizeof out;
    EXPECT(p->C_Decrypt(s, out, 17, data, &out_len), CKR_ENCRYPTED_DATA_LEN_RANGE);
    EXPECT(p->C_DecryptInit(s, &cbc_pad, aes), CKR_OK);
    EXPECT(p->C_DecryptFinal(s, out, &out_len), CKR_ENCRYPTED_DATA_LEN_RANGE);
    /* Multi-part: the length is checked when the parts are done. */
    EXPECT(p->C_EncryptInit(s, &ecb, aes), CKR_OK);
    out_len = sizeof out;
    EXPECT(p->C_EncryptUpdate(s, data, 10, out, &out_len), CKR_OK);
    out_len = sizeof out;
    EXPECT(p->C_EncryptFinal(s, out, &out_len), CKR_DATA_LEN_RANGE);
    EXPECT(p->C_EncryptInit(s, &ecb, aes), CKR_OK);
    /* Bad arguments end it too. */
    EXPECT(p->C_Encrypt(s, data, 16, out, NULL), CKR_ARGUMENTS_BAD);
    EXPECT(p->C_EncryptInit(s, &ecb, aes), CKR_OK);
    EXPECT(p->C_EncryptUpdate(s, data, 16, out, NULL), CKR_ARGUMENTS_BAD);
    /* A second Init while one is active is refused and leaves it. */
    EXPECT(p->C_EncryptInit(s, &ecb, aes), CKR_OK);
    EXPECT(p->C_EncryptInit(s, &ecb, aes), CKR_OPERATION_ACTIVE);
    /* CKR_BUFFER_TOO_SMALL does not end it: the same call with room works. */
    out_len = 8;
    EXPECT(p->C_Encrypt(s, data, 16, out, &out_len), CKR_BUFFER_TOO_SMALL);
    if (out_len != 16) {
        fail("CKR_BUFFER_TOO_SMALL gives the length needed");
    }
    out_len = sizeof out;
    EXPECT(p->C_Encrypt(s, data, 16, out, &out_len), CKR_OK);
    /* The key cannot sign: the Init fails, and no operation is active. */
    CK_MECHANISM hmac = {CKM_SHA256_HMAC, NULL, 0};
    EXPECT(p->C_SignInit(s, &hmac, aes), CKR_KEY_FUNCTION_NOT_PERMITTED);
    EXPECT(p->C_Sign(s, data, 16, out, &out_len), CKR_OPERATION_NOT_INITIALIZED);
    /* A wrong signature ends the verification. */
    CK_OBJECT_HANDLE pub, priv;
    ec_pair(s, "verify-ends", NULL, &pub, &priv);
    CK_MECHANISM ecdsa = {CKM_ECDSA_SHA256, NULL, 0};
    CK_BYTE sig[64] = {0};
    EXPECT(p->C_VerifyInit(s, &ecdsa, pub), CKR_OK);
    EXPECT(p->C_Verify(s, data, 16, sig, sizeof sig), CKR_SIGNATURE_INVALID);
    EXPECT(p->C_VerifyInit(s, &ecdsa, pub), CKR_OK);
    EXPECT(p->C_Verify(s, data, 16, sig, 63), CKR_SIGNATURE_LEN_RANGE);
    EXPECT(p->C_VerifyInit(s, &ecdsa, pub), CKR_OK);
    EXPECT(p->C_VerifyFinal(s, sig, sizeof sig), CKR_SIGNATURE_INVALID);
    /* Digest: a too-small buffer keeps it, an error ends it. */
    CK_MECHANISM sha = {CKM_SHA256, NULL, 0};
    EXPECT(p->C_DigestInit(s, &sha), CKR_OK);
    out_len = 4;
    EXPECT(p->C_Digest(s, data, 16, out, &out_len), CKR_BUFFER_TOO_SMALL);
    EXPECT(p->C_Digest(s, data, 16, out, NULL), CKR_ARGUMENTS_BAD);
    EXPECT(p->C_DigestInit(s, &sha), CKR_OK);
    out_len = sizeof out;
    EXPECT(p->C_Digest(s, data, 16, out, &out_len), CKR_OK);
    CK_SLOT_ID slot;
    EXPECT(p->C_WaitForSlotEvent(CKF_DONT_BLOCK, &slot, NULL), CKR_FUNCTION_NOT_SUPPORTED);
}

/* The return codes PKCS#11 gives for keys and wrapped bytes. */
static void key_return_codes(CK_SESSION_HANDLE s) {
    CK_MECHANISM gen = {CKM_AES_KEY_GEN, NULL, 0};
    CK_ULONG len32 = 32;
    CK_BBOOL no = CK_FALSE;
    /* A key that is not modifiable: a change is prohibited. */
    CK_ATTRIBUTE fixed_t[2] = {{CKA_VALUE_LEN, &len32, sizeof len32}, {CKA_MODIFIABLE, &no, 1}};
    CK_OBJECT_HANDLE fixed = CK_INVALID_HANDLE;
    EXPECT(p->C_GenerateKey(s, &gen, fixed_t, 2, &fixed), CKR_OK);
    CK_ATTRIBUTE label = {CKA_LABEL, "renamed", 7};
    EXPECT(p->C_SetAttributeValue(s, fixed, &label, 1), CKR_ACTION_PROHIBITED);
    /* A wrapping key, an unextractable key, and one the wrapping key may not wrap with. */
    CK_OBJECT_HANDLE wrapping = CK_INVALID_HANDLE, secret = CK_INVALID_HANDLE;
    CK_ATTRIBUTE wrapping_t[3] = {{CKA_VALUE_LEN, &len32, sizeof len32}, {CKA_WRAP, &yes, 1}, {CKA_UNWRAP, &yes, 1}};
    EXPECT(p->C_GenerateKey(s, &gen, wrapping_t, 3, &wrapping), CKR_OK);
    CK_ATTRIBUTE secret_t[2] = {{CKA_VALUE_LEN, &len32, sizeof len32}, {CKA_EXTRACTABLE, &no, 1}};
    EXPECT(p->C_GenerateKey(s, &gen, secret_t, 2, &secret), CKR_OK);
    CK_MECHANISM kw = {CKM_AES_KEY_WRAP_PAD, NULL, 0};
    CK_BYTE wrapped[64];
    CK_ULONG wrapped_len = sizeof wrapped;
    EXPECT(p->C_WrapKey(s, &kw, wrapping, secret, wrapped, &wrapped_len), CKR_KEY_UNEXTRACTABLE);
    wrapped_len = sizeof wrapped;
    EXPECT(p->C_WrapKey(s, &kw, fixed, wrapping, wrapped, &wrapped_len), CKR_KEY_FUNCTION_NOT_PERMITTED);
    /* Bytes that no wrapping made. */
    CK_OBJECT_CLASS class = CKO_SECRET_KEY;
    CK_KEY_TYPE type = CKK_AES;
    CK_ATTRIBUTE unwrap_t[2] = {{CKA_CLASS, &class, sizeof class}, {CKA_KEY_TYPE, &type, sizeof type}};
    CK_BYTE junk[40] = {1, 2, 3};
    CK_OBJECT_HANDLE unwrapped = CK_INVALID_HANDLE;
    EXPECT(p->C_UnwrapKey(s, &kw, wrapping, junk, sizeof junk, unwrap_t, 2, &unwrapped), CKR_WRAPPED_KEY_INVALID);
    /* RSA: a ciphertext that is not the modulus's length; data too long. */
    CK_MECHANISM rsa_gen = {CKM_RSA_PKCS_KEY_PAIR_GEN, NULL, 0};
    CK_ULONG bits = 2048;
    CK_ATTRIBUTE rsa_pub_t[2] = {{CKA_MODULUS_BITS, &bits, sizeof bits}, {CKA_ENCRYPT, &yes, 1}};
    CK_ATTRIBUTE rsa_priv_t[1] = {{CKA_DECRYPT, &yes, 1}};
    CK_OBJECT_HANDLE rsa_pub, rsa_priv;
    EXPECT(p->C_GenerateKeyPair(s, &rsa_gen, rsa_pub_t, 2, rsa_priv_t, 1, &rsa_pub, &rsa_priv), CKR_OK);
    CK_MECHANISM pkcs = {CKM_RSA_PKCS, NULL, 0};
    static CK_BYTE big[300], out[512];
    CK_ULONG out_len = sizeof out;
    EXPECT(p->C_EncryptInit(s, &pkcs, rsa_pub), CKR_OK);
    EXPECT(p->C_Encrypt(s, big, 246, out, &out_len), CKR_DATA_LEN_RANGE);
    EXPECT(p->C_EncryptInit(s, &pkcs, rsa_pub), CKR_OK);
    out_len = sizeof out;
    EXPECT(p->C_Encrypt(s, big, 245, out, &out_len), CKR_OK);
    EXPECT(p->C_DecryptInit(s, &pkcs, rsa_priv), CKR_OK);
    CK_ULONG plain_len = sizeof big;
    EXPECT(p->C_Decrypt(s, out, 255, big, &plain_len), CKR_ENCRYPTED_DATA_LEN_RANGE);
    EXPECT(p->C_DecryptInit(s, &pkcs, rsa_priv), CKR_OK);
    plain_len = sizeof big;
    EXPECT(p->C_Decrypt(s, out, out_len, big, &plain_len), CKR_OK);
    if (plain_len != 245) {
        fail("RSA PKCS#1 decryption gives back the 245 bytes");
    }
    /* More than the HSM takes in one operation (16 KiB), in parts. */
    static CK_BYTE many[20000];
    CK_BYTE iv[16] = {0};
    CK_MECHANISM cbc_pad = {CKM_AES_CBC_PAD, iv, sizeof iv};
    out_len = sizeof out;
    EXPECT(p->C_DecryptInit(s, &cbc_pad, wrapping), CKR_KEY_FUNCTION_NOT_PERMITTED);
    CK_ATTRIBUTE aes_t[2] = {{CKA_VALUE_LEN, &len32, sizeof len32}, {CKA_DECRYPT, &yes, 1}};
    CK_OBJECT_HANDLE aes = CK_INVALID_HANDLE;
    EXPECT(p->C_GenerateKey(s, &gen, aes_t, 2, &aes), CKR_OK);
    EXPECT(p->C_DecryptInit(s, &cbc_pad, aes), CKR_OK);
    EXPECT(p->C_DecryptUpdate(s, many, 16384, out, &out_len), CKR_OK);
    out_len = sizeof out;
    EXPECT(p->C_DecryptUpdate(s, many, 16, out, &out_len), CKR_ENCRYPTED_DATA_LEN_RANGE);
    EXPECT(p->C_DecryptInit(s, &cbc_pad, aes), CKR_OK);
}

static void fork_safety(CK_SESSION_HANDLE s) {
    CK_OBJECT_HANDLE pub, priv;
    ec_pair(s, "fork-test", &yes, &pub, &priv);
    if (!sign_and_verify(s, pub, priv)) {
        fail("parent signs before fork");
    }
    if (in_child(child_reinitialises)) {
        printf("ok   a forked child fails fast, then initialises and signs\n");
    } else {
        fail("a forked child fails fast, then initialises and signs");
    }
    if (in_child(child_initialises_at_once)) {
        printf("ok   a forked child's C_Initialize succeeds\n");
    } else {
        fail("a forked child's C_Initialize succeeds");
    }
    if (in_child(child_finalises)) {
        printf("ok   a forked child's C_Finalize returns\n");
    } else {
        fail("a forked child's C_Finalize returns");
    }
    /* The parent carries on with its sessions and login. */
    if (sign_and_verify(s, pub, priv)) {
        printf("ok   parent signs after its children\n");
    } else {
        fail("parent signs after its children");
    }
    EXPECT(p->C_DestroyObject(s, priv), CKR_OK);
    EXPECT(p->C_DestroyObject(s, pub), CKR_OK);
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s LIBRARY PIN\n", argv[0]);
        return 2;
    }
    pin = argv[2];
    void *lib = dlopen(argv[1], RTLD_NOW);
    if (!lib) {
        fprintf(stderr, "dlopen: %s\n", dlerror());
        return 2;
    }
    CK_RV (*get)(CK_FUNCTION_LIST **) = (CK_RV(*)(CK_FUNCTION_LIST **))dlsym(lib, "C_GetFunctionList");
    if (!get || get(&p) != CKR_OK) {
        fprintf(stderr, "C_GetFunctionList failed\n");
        return 2;
    }
    before_initialize();
    EXPECT(p->C_Initialize(NULL), CKR_OK);
    EXPECT(p->C_Initialize(NULL), CKR_CRYPTOKI_ALREADY_INITIALIZED);
    CK_SESSION_HANDLE s = logged_in();
    template_defaults(s);
    operations_end_on_error(s);
    key_return_codes(s);
    fork_safety(s);
    EXPECT(p->C_Finalize(NULL), CKR_OK);
    if (failures == 0) {
        printf("all checks passed\n");
        return 0;
    }
    printf("%d checks failed\n", failures);
    return 1;
}
