/*
 * store_int.h - helpers shared by the store front (store.c), the blob folder
 * (blob.c) and the backends (sqlite.c, later postgres.c).
 */
#ifndef GX_STORE_INT_H
#define GX_STORE_INT_H

#include <stddef.h>
#include <stdint.h>

#include "gexec/gexec.h"
#include "gexec/gexec_store.h"

/* States at or above this are final (succeeded .. dead); the schema's
 * partial index of unfinished jobs and load_unfinished rely on the order of
 * gx_job_state. */
#define GX__STORE_FIRST_FINAL GX_JOB_SUCCEEDED
_Static_assert(GX_JOB_SUCCEEDED == 5 && GX_JOB_DEAD == 9 && GX_JOB_STATE_COUNT == 10,
               "the store schema encodes final states as state >= 5");
_Static_assert(GX_JOB_QUEUED == 0 && GX_JOB_SCHEDULED == 2 && GX_JOB_RUNNING == 3,
               "the restart requeue (sqlite.c) moves states 2 and 3 to 0");

/* [A-Za-z0-9_.-]{1,63}, as gx_tenant_opts.name. */

/* ---- result builder ---------------------------------------------------------
 * Builds an array of records whose strings all land in one malloc'd block:
 * items and strings grow in two buffers; while building, a string field holds
 * an offset into the string buffer (encoded by gx__rb_str); gx__rb_finish
 * copies both into one block and turns offsets into pointers with the
 * caller's fix function. */
typedef struct gx__rb {
    char *items;
    size_t n, cap, isz;
    char *strs;
    size_t slen, scap;
    int oom;
} gx__rb;

void gx__rb_init(gx__rb *b, size_t item_size);
/* A zeroed slot for the next item, valid until the next add; NULL on OOM. */
void *gx__rb_add(gx__rb *b);
/* Copy len bytes of s (plus a NUL) and return the encoded offset, or NULL
 * when s is NULL (a NULL field stays NULL). */
const char *gx__rb_str(gx__rb *b, const char *s, size_t len);
/* Turn an encoded field back into a pointer into strs. */
static inline const char *gx__rb_ptr(const char *enc, char *strs) {
    return enc ? strs + ((uintptr_t)enc - 1) : NULL;
}
/* One block (items then strings); *n gets the count. NULL with *n = 0 for an
 * empty result; GX_ENOMEM if an allocation failed along the way. fix is
 * called for every item with the block's string area. Frees the builder. */
int gx__rb_finish(gx__rb *b, void **out, size_t *n, void (*fix)(void *item, char *strs));
void gx__rb_free(gx__rb *b);

/* fix functions for the record types. */
void gx__fix_job(void *item, char *strs);
void gx__fix_event(void *item, char *strs);
void gx__fix_tenant(void *item, char *strs);
void gx__fix_setting(void *item, char *strs);

/* Call fn for each blob id a stored job spec's inputs name ({"inputs":
 * {"x": {"blob": id}}}), until it returns non-zero; that, or 0. A spec
 * without the text "blob" in quotes is not parsed. */
int gx__spec_blob_refs(const char *spec, int (*fn)(void *ctx, const char *id), void *ctx);

/* The statement the SQLite backend's gx_store_list_jobs runs for f (?1
 * after, ?2 tenant, ?3 state mask, ?4 kernel, ?5 ?6 label, ?7 rows to read,
 * ?8 before) into sql (1024 bytes are enough); the tests read its query
 * plan. */
void gx__sqlite_list_sql(const gx_store_filter *f, char *sql, size_t cap);

/* ---- blob folder (blob.c) ---------------------------------------------------- */

/* Hex SHA-256 of bytes into id ("sha256:<hex>"). */
int gx__blob_hash(const void *bytes, size_t len, char id[GX_STORE_BLOB_ID_LEN], gx_error *err);
/* <dir>/<hex[0:2]>/<hex> for a valid id; GX_EOVERFLOW if it does not fit. */
int gx__blob_path(const char *dir, const char *id, char *path, size_t cap);
/* Make sure the bytes of id are in dir (temp file, fsync, rename, fsync of
 * the folder); with reuse, nothing is written when a file of these bytes is
 * there already. Without it they are written all the same: the upload of a
 * tenant that does not own the blob takes as long whoever else holds it. */
int gx__blob_write(const char *dir, const char *id, const void *bytes, size_t len, int reuse,
                   gx_error *err);
/* Read exactly size bytes of the file at path into a malloc'd buffer. */
int gx__blob_load(const char *path, int64_t size, void **bytes, gx_error *err);
/* 0 if the open file (path for messages) holds size bytes whose SHA-256 is
 * id's; GX_ESTORE (naming the damage) if not, or if it cannot be read. Its
 * offset is not moved. */
int gx__blob_check_fd(int fd, const char *path, const char *id, int64_t size, gx_error *err);
/* GX_ESTORE: the bytes of id on disk are damaged (why), upload again. */
int gx__blob_damaged(gx_error *err, const char *id, const char *why);

#endif
