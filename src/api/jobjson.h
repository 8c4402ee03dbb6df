/*
 * jobjson.h - the job JSON of the HTTP API, both ways: a request body
 * decoded into a gx_job_spec (with every problem reported by field), and a
 * job's state encoded as the API's job object.
 */
#ifndef GX_JOBJSON_H
#define GX_JOBJSON_H

#include <jansson.h>

#include "gexec/gexec.h"
#include "gexec/gexec_store.h"

/* Loads a blob input by id for the calling tenant (the service provides
 * it); returns 0 and one reference in *out, or a GX_E* code with err set. */
typedef int (*gx_blob_loader)(void *ctx, const char *tenant, const char *id, gx_array **out,
                              gx_error *err);

/* A decoded job request. Strings point into `root`, which it holds. */
typedef struct gx_jobreq {
    gx_job_spec spec;
    json_t *root;         /* the job object (one reference) */
    gx_named_arg *args;
    gx_named_input *inputs;
    gx_label *labels;
    gx_job_id *deps;
    int *batch_deps;
    char *canonical;      /* the spec as compact JSON (stored for restarts);
                             NULL until gx_jobreq_canonical */
    int npinned;          /* deps[0..npinned) are pinned in the service
                             (gx__svc_resolve_deps) until the admission ends */
} gx_jobreq;

/* Decode one job object. batch: "@N" dependency references are allowed (N
 * < batch_n). field names in err are dotted paths ("inputs.x.shape[1]");
 * prefix (e.g. "jobs[3].") is prepended. Returns 0 or GX_E*. */
int gx_jobreq_decode(json_t *obj, const char *tenant, gx_blob_loader load, void *load_ctx, int batch,
                     size_t batch_n, const char *prefix, gx_jobreq *out, gx_error *err);
void gx_jobreq_free(gx_jobreq *r);
/* Fill r->canonical (sorted keys, compact) for the store. A restore, which
 * decodes specs that are canonical already, skips it. 0 or GX_ENOMEM. */
int gx_jobreq_canonical(gx_jobreq *r, gx_error *err);

/* Parse a request body; on malformed JSON err says line and column and
 * err->pos is the byte offset. */
json_t *gx_json_parse_body(const char *body, size_t len, gx_error *err);

/* The body as a JSON object whose members are all named in allowed
 * (NULL-ended); NULL with err set otherwise: malformed JSON (line and
 * column), not an object, or an unknown member (named in err->field). */
json_t *gx_json_object_body(const char *body, size_t len, const char *const *allowed, gx_error *err);

/* ISO-8601 UTC with microseconds from unix ns; "null" handling is the
 * caller's (0 -> JSON null via gx_json_time). */
json_t *gx_json_time(int64_t unix_ns);

/* The API's job object as compact JSON text, written directly (jansson's
 * object and dump cost ~6 us, and it writes queue_seconds 0.001433416 as
 * 0.0014334160000000001); malloc'd, *len bytes, NUL-terminated. The labels
 * are read from the engine. NULL when out of memory, or, with *gone set
 * (gone may be NULL), when the engine no longer holds the job: it ended and
 * was forgotten after info was taken, its labels with it, and its object
 * is the store's now (gx_store_job_text). */
char *gx_job_json_text(gx_engine *e, const gx_job_info *info, size_t *len, int *gone);
/* The object of a job read from the store (no longer live), by the same
 * writer; NULL when out of memory. */
char *gx_store_job_text(gx_engine *e, const gx_store_job *sj, size_t *len);
/* Either one parsed (for tests and callers that add to it); NULL as above. */
json_t *gx_job_json(gx_engine *e, const gx_job_info *info);
json_t *gx_store_job_json(gx_engine *e, const gx_store_job *sj);

/* Job id from a path segment or JSON string: decimal, 1..2^63. 0 if bad. */
gx_job_id gx_job_id_parse(const char *s);

/* An array as {"dtype","shape","data"}. */
json_t *gx_array_json(const gx_array *a);

#endif
