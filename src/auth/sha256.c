/*
 * sha256.c - SHA-256 for the auth module, through OpenSSL's low-level API.
 *
 * Why not the one-shot SHA256() or EVP_Digest: in OpenSSL 3 they look the
 * algorithm up ("fetch") or allocate a context on every call, which costs
 * ~500 ns and takes a lock that every thread shares; a key is hashed on
 * every request. The low-level SHA256_Init/Update/Final are deprecated in
 * 3.0 but present (and ~130 ns for a key); a libcrypto built without them
 * (OPENSSL_NO_DEPRECATED_3_0) gets EVP with the algorithm fetched once.
 */
#define OPENSSL_SUPPRESS_DEPRECATED
#include <pthread.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/sha.h>

#include "auth_int.h"

#ifndef OPENSSL_NO_DEPRECATED_3_0

void gx__auth_sha256(const void *a, size_t alen, const void *b, size_t blen, const void *c, size_t clen,
                     unsigned char out[32]) {
    SHA256_CTX s;
    SHA256_Init(&s);
    if (alen) SHA256_Update(&s, a, alen);
    if (blen) SHA256_Update(&s, b, blen);
    if (clen) SHA256_Update(&s, c, clen);
    SHA256_Final(out, &s);
}

#else

static EVP_MD *md;
static pthread_once_t md_once = PTHREAD_ONCE_INIT;
static void md_fetch(void) { md = EVP_MD_fetch(NULL, "SHA2-256", NULL); }

void gx__auth_sha256(const void *a, size_t alen, const void *b, size_t blen, const void *c, size_t clen,
                     unsigned char out[32]) {
    pthread_once(&md_once, md_fetch);
    unsigned int n = 0;
    EVP_MD_CTX *x = EVP_MD_CTX_new();
    memset(out, 0, 32); /* out of memory: a hash that matches nothing */
    if (x && md && EVP_DigestInit_ex(x, md, NULL) && (!alen || EVP_DigestUpdate(x, a, alen)) &&
        (!blen || EVP_DigestUpdate(x, b, blen)) && (!clen || EVP_DigestUpdate(x, c, clen)))
        EVP_DigestFinal_ex(x, out, &n);
    EVP_MD_CTX_free(x);
}

#endif
