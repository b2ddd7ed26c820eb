/*
 * softhsm-bench: SoftHSM's rate for the mechanisms hsm-bench measures, one
 * thread, in-process (no network), for the README's side-by-side. Run it
 * with run.sh beside it, which installs SoftHSM, makes a token and builds
 * this file. Keys are session objects; each operation is one Init + one
 * single-part call, as an application would make it:
 *   ecdsa-p256-sign  CKM_ECDSA over a 32-byte digest (SoftHSM 2.6 has no
 *                    CKM_ECDSA_SHA256)
 *   ed25519-sign     CKM_EDDSA over 64 bytes
 *   rsa2048-sign     CKM_SHA256_RSA_PKCS over 64 bytes
 *   aes-gcm-64/4k    CKM_AES_GCM encrypt, 96-bit IV, 128-bit tag
 *   hmac-sha256-64   CKM_SHA256_HMAC over 64 bytes
 *   sha256-4k        CKM_SHA256 digest of 4 KiB
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <p11-kit/pkcs11.h>

static CK_FUNCTION_LIST_PTR f;
static CK_SESSION_HANDLE s;
#define CK(x) do { CK_RV rv = (x); if (rv != CKR_OK) { fprintf(stderr, "%s:%d %s -> 0x%lx\n", __FILE__, __LINE__, #x, rv); exit(1);} } while (0)
static double now(void){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec/1e9;}
static CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
static double secs = 2.0;

typedef void (*op_fn)(void *);
static void run(const char *name, op_fn fn, void *ctx) {
  for (int i = 0; i < 100; i++) fn(ctx);
  long n = 0; double t0 = now(), t;
  do { for (int i = 0; i < 50; i++) fn(ctx); n += 50; t = now(); } while (t - t0 < secs);
  printf("%-16s %10.0f ops/s (one thread, in-process)\n", name, n / (t - t0));
}

struct sctx { CK_MECHANISM mech; CK_OBJECT_HANDLE key; unsigned char *data; CK_ULONG len; };
static void sign_op(void *p) { struct sctx *c = p; unsigned char sig[512]; CK_ULONG sl = sizeof sig;
  CK(f->C_SignInit(s, &c->mech, c->key)); CK(f->C_Sign(s, c->data, c->len, sig, &sl)); }
static void enc_op(void *p) { struct sctx *c = p; unsigned char out[8192]; CK_ULONG ol = sizeof out;
  CK(f->C_EncryptInit(s, &c->mech, c->key)); CK(f->C_Encrypt(s, c->data, c->len, out, &ol)); }
static void dig_op(void *p) { struct sctx *c = p; unsigned char out[64]; CK_ULONG ol = sizeof out;
  CK(f->C_DigestInit(s, &c->mech)); CK(f->C_Digest(s, c->data, c->len, out, &ol)); }

static void keypair(CK_MECHANISM_TYPE m, CK_ATTRIBUTE *pub, int npub, CK_OBJECT_HANDLE *priv) {
  CK_MECHANISM mech = {m, NULL, 0}; CK_OBJECT_HANDLE pubh;
  CK_ATTRIBUTE pri[] = {{CKA_SIGN, &yes, 1}, {CKA_TOKEN, &no, 1}, {CKA_PRIVATE, &yes, 1}, {CKA_SENSITIVE, &yes, 1}};
  CK(f->C_GenerateKeyPair(s, &mech, pub, npub, pri, 4, &pubh, priv));
}

int main(int argc, char **argv) {
  if (argc > 1) secs = atof(argv[1]);
  void *lib = dlopen("/usr/lib/softhsm/libsofthsm2.so", RTLD_NOW);
  if (!lib) { fprintf(stderr, "%s\n", dlerror()); return 1; }
  CK_C_GetFunctionList gfl = (CK_C_GetFunctionList)dlsym(lib, "C_GetFunctionList");
  CK(gfl(&f)); CK(f->C_Initialize(NULL));
  CK_SLOT_ID slots[8]; CK_ULONG ns = 8; CK(f->C_GetSlotList(CK_TRUE, slots, &ns));
  CK(f->C_OpenSession(slots[0], CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &s));
  CK(f->C_Login(s, CKU_USER, (unsigned char *)"1234", 4));
  unsigned char data[4096]; memset(data, 7, sizeof data);

  unsigned char p256[] = {0x06,0x08,0x2a,0x86,0x48,0xce,0x3d,0x03,0x01,0x07};
  CK_ATTRIBUTE ecpub[] = {{CKA_EC_PARAMS, p256, sizeof p256}, {CKA_VERIFY, &yes, 1}, {CKA_TOKEN, &no, 1}};
  CK_OBJECT_HANDLE ec; keypair(CKM_EC_KEY_PAIR_GEN, ecpub, 3, &ec);
  struct sctx c1 = {{CKM_ECDSA, NULL, 0}, ec, data, 32}; run("ecdsa-p256-sign", sign_op, &c1);

  unsigned char ed[] = {0x13,0x0c,'e','d','w','a','r','d','s','2','5','5','1','9'};
  CK_ATTRIBUTE edpub[] = {{CKA_EC_PARAMS, ed, sizeof ed}, {CKA_VERIFY, &yes, 1}, {CKA_TOKEN, &no, 1}};
  CK_OBJECT_HANDLE edk; keypair(CKM_EC_EDWARDS_KEY_PAIR_GEN, edpub, 3, &edk);
  struct sctx c2 = {{CKM_EDDSA, NULL, 0}, edk, data, 64}; run("ed25519-sign", sign_op, &c2);

  CK_ULONG bits = 2048; unsigned char e[] = {1, 0, 1};
  CK_ATTRIBUTE rsapub[] = {{CKA_MODULUS_BITS, &bits, sizeof bits}, {CKA_PUBLIC_EXPONENT, e, 3}, {CKA_VERIFY, &yes, 1}, {CKA_TOKEN, &no, 1}};
  CK_OBJECT_HANDLE rsa; keypair(CKM_RSA_PKCS_KEY_PAIR_GEN, rsapub, 4, &rsa);
  struct sctx c3 = {{CKM_SHA256_RSA_PKCS, NULL, 0}, rsa, data, 64}; run("rsa2048-sign", sign_op, &c3);

  CK_ULONG klen = 32; CK_OBJECT_HANDLE aes;
  CK_ATTRIBUTE aest[] = {{CKA_VALUE_LEN, &klen, sizeof klen}, {CKA_ENCRYPT, &yes, 1}, {CKA_TOKEN, &no, 1}};
  CK_MECHANISM akg = {CKM_AES_KEY_GEN, NULL, 0}; CK(f->C_GenerateKey(s, &akg, aest, 3, &aes));
  unsigned char iv[12] = {0}; CK_GCM_PARAMS gcm = {iv, 12, 96, NULL, 0, 128};
  struct sctx c4 = {{CKM_AES_GCM, &gcm, sizeof gcm}, aes, data, 64}; run("aes-gcm-64", enc_op, &c4);
  struct sctx c5 = {{CKM_AES_GCM, &gcm, sizeof gcm}, aes, data, 4096}; run("aes-gcm-4k", enc_op, &c5);

  CK_OBJECT_HANDLE hk;
  CK_ATTRIBUTE hkt[] = {{CKA_VALUE_LEN, &klen, sizeof klen}, {CKA_SIGN, &yes, 1}, {CKA_TOKEN, &no, 1}};
  CK_MECHANISM hkg = {CKM_GENERIC_SECRET_KEY_GEN, NULL, 0}; CK(f->C_GenerateKey(s, &hkg, hkt, 3, &hk));
  struct sctx c6 = {{CKM_SHA256_HMAC, NULL, 0}, hk, data, 64}; run("hmac-sha256-64", sign_op, &c6);
  struct sctx c7 = {{CKM_SHA256, NULL, 0}, 0, data, 4096}; run("sha256-4k", dig_op, &c7);
  return 0;
}
