/*
 * fuzz_auth_token.c - libFuzzer target for the API key parser.
 *
 * The input is taken three ways: as a key (any bytes, NULs included) for
 * gx_auth_token_parse and gx_auth_key_verify against a key store holding one
 * key; and, cut at its first NUL, as an Authorization header for
 * gx_auth_bearer. Besides "no crash, no leak, no UB" it checks what the
 * module promises: a parsed key has the exact shape gx_<16 hex>_<43
 * base64url> and its id is the one returned; only the one real key
 * verifies; a bearer token lies inside the header, is not empty and has no
 * blanks at its ends.
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -Iinclude -Isrc -Isrc/core \
 *     fuzz/fuzz_auth_token.c src/auth/keys.c src/auth/roles.c src/core/hmap.c src/core/error.c \
 *     -lsqlite3 -lcrypto -o /tmp/fuzz_auth_token
 *   mkdir -p /tmp/fza && /tmp/fuzz_auth_token -max_total_time=60 /tmp/fza fuzz/corpus/auth_token
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gexec/gexec_auth.h"

#define CHECK(cond)                                                           \
    do {                                                                      \
        if (!(cond)) {                                                        \
            fprintf(stderr, "fuzz_auth_token: check failed: %s (line %d)\n", \
                    #cond, __LINE__);                                         \
            abort();                                                          \
        }                                                                     \
    } while (0)

static gx_auth_keys *keys;
static char secret[GX_AUTH_SECRET_LEN];

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    char dir[] = "/tmp/gx-fuzz-auth-XXXXXX", path[64];
    CHECK(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/auth.db", dir);
    gx_error err;
    CHECK(gx_auth_keys_open(path, &keys, &err) == 0);
    CHECK(gx_auth_key_create(keys, "fuzz", GX_ROLE_SUBMITTER, 0, "fuzz", secret, NULL, &err) == 0);
    return 0;
}

static int b64url(unsigned char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *t = (const char *)data;
    char id[GX_AUTH_KEY_ID_LEN];
    int r = gx_auth_token_parse(t, size, id);
    CHECK(r == GX_AUTH_OK || r == GX_AUTH_MISSING || r == GX_AUTH_MALFORMED);
    CHECK((r == GX_AUTH_MISSING) == (size == 0));
    if (r == GX_AUTH_OK) {
        CHECK(size == 63 && !memcmp(t, "gx_", 3) && t[19] == '_');
        CHECK(strlen(id) == 16 && !memcmp(id, t + 3, 16));
        for (int i = 20; i < 63; i++) CHECK(b64url(data[i]));
    }

    gx_auth_principal p;
    int v = gx_auth_key_verify(keys, t, size, 0, &p);
    int real = size == strlen(secret) && !memcmp(t, secret, size);
    CHECK((v == GX_OK) == real);
    CHECK(v == GX_OK || v == GX_EAUTH);
    CHECK((p.reason == GX_AUTH_OK) == (v == GX_OK));
    if (v == GX_OK) CHECK(!strcmp(p.tenant, "fuzz") && p.role == GX_ROLE_SUBMITTER);
    else CHECK(p.tenant[0] == '\0' && p.role == GX_ROLE_NONE);
    if (r != GX_AUTH_OK) CHECK(p.reason == r && p.key_id[0] == '\0');

    char *h = malloc(size + 1);
    CHECK(h);
    memcpy(h, data, size);
    h[size] = '\0';
    const char *tok;
    size_t len;
    int b = gx_auth_bearer(h, &tok, &len);
    CHECK(b == GX_AUTH_OK || b == GX_AUTH_MISSING || b == GX_AUTH_MALFORMED);
    if (b == GX_AUTH_OK) {
        CHECK(tok > h && tok + len <= h + strlen(h) && len > 0);
        CHECK(tok[0] != ' ' && tok[0] != '\t' && tok[len - 1] != ' ' && tok[len - 1] != '\t');
    } else {
        CHECK(tok == NULL && len == 0);
    }
    free(h);
    return 0;
}
