/*
 * auth_int.h - helpers shared by the files of the auth module: name checks
 * and the parts of a key's text.
 */
#ifndef GX_AUTH_INT_H
#define GX_AUTH_INT_H

#include <stddef.h>
#include <stdint.h>

#include "gexec/gexec_auth.h"

#define GX__KEY_PREFIX "gx_"
#define GX__KEY_PREFIX_LEN 3
#define GX__KEY_ID_HEX 16
#define GX__KEY_SECRET_B64 43 /* base64url of 32 bytes, no padding */
#define GX__KEY_LEN (GX__KEY_PREFIX_LEN + GX__KEY_ID_HEX + 1 + GX__KEY_SECRET_B64)

/* SHA-256 of the concatenation a + b + c (a piece may have length 0);
 * fast and without shared locks (sha256.c says why). */
void gx__auth_sha256(const void *a, size_t alen, const void *b, size_t blen, const void *c, size_t clen,
                     unsigned char out[32]);

/* The statement gx_auth_key_page runs for q (bound: ?1 after, ?2 tenant,
 * ?3 revoked, ?4 limit + 1) into sql (cap bytes, GX__KEY_PAGE_SQL_MAX
 * are enough); the tests read its query plan. */
#define GX__KEY_PAGE_SQL_MAX 320
void gx__auth_key_page_sql(const gx_auth_key_query *q, char *sql, size_t cap);

#endif
