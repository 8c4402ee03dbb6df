/*
 * gexec_client.h - libgexec-client, the HTTP client of gexecd.
 *
 * The client turns the daemon's REST API (/v1/jobs, /v1/blobs, /v1/events,
 * /v1/kernels, /v1/devices, the listing of /v1/keys, /healthz, /readyz,
 * /metrics) into C calls; gx_client_request reaches every other route. The
 * `gexec` command is written only against this header, and so are the
 * integration tests.
 *
 * Handles and threads. A gx_client is a long-lived handle that holds one
 * libcurl easy handle, so consecutive calls reuse the connection
 * (keep-alive). A client is NOT thread-safe: use one client per thread (or
 * serialise calls yourself). Different clients are independent. libcurl's
 * global init runs once, thread-safely, on the first gx_client_new.
 *
 * Errors. Every call returns 0 or a negative GX_E* code and fills the
 * optional gx_error (may be NULL). When the server refused the request, the
 * code is the one the server named in its JSON error body ("GX_EINVAL" ->
 * GX_EINVAL), the message is the server's message and err->field the field
 * it blamed; without a usable body the code follows the HTTP status (400,
 * 422 GX_EINVAL; 401 GX_EAUTH; 403 GX_EPERM; 404 GX_ENOTFOUND; 409
 * GX_ESTATE; 413 GX_ELIMIT; 405, 415, 501 GX_EUNSUPPORTED; 429, 503
 * GX_EBUSY; other 5xx GX_EIO). Transport failures (cannot connect, reset, TLS) are
 * GX_EIO (a certificate that cannot be verified says so in the message)
 * and a request that ran past opts.timeout_ms is GX_ETIMEDOUT; in
 * both cases gx_client_last_status() is 0. The HTTP status of the last
 * response is always available from gx_client_last_status(), which is what
 * a caller uses to tell "refused" (4xx) from "broken" (5xx, 0).
 *
 * Memory. Structs passed in by the caller (gx_client_job, ...) are filled
 * in place and hold no pointers unless said otherwise. Every `char **raw`
 * out-parameter is optional (NULL = not wanted); when given, it receives the
 * server's response body as a malloc'd NUL-terminated string that the caller
 * frees with free(), or NULL when the call failed before a body arrived.
 * Lists and results have their own *_free function. Arrays returned are
 * gx_array references released with gx_array_unref.
 *
 * Strings put into request URLs (ids, filters) are percent-encoded by the
 * client; callers pass them as they are.
 */
#ifndef GEXEC_CLIENT_H
#define GEXEC_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "gexec.h"
#include "gexec_array.h"
#include "gexec_err.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Server used when neither opts.server nor $GEXEC_SERVER is set. */
#define GX_CLIENT_DEFAULT_SERVER "http://127.0.0.1:8080"

/* Sizes of the fixed string fields below (including the NUL). Longer values
 * from the server are truncated. */
#define GX_CLIENT_ID_MAX 32      /* job ids: decimal strings */
#define GX_CLIENT_BLOB_ID_MAX 80 /* "sha256:" + 64 hex digits */
#define GX_CLIENT_NAME_MAX 64    /* kernel, tenant, device, output names */
#define GX_CLIENT_TIME_MAX 40    /* RFC 3339 timestamps */
#define GX_CLIENT_MSG_MAX 256    /* human messages */
#define GX_CLIENT_EVENT_ID_MAX 64 /* event stream ids ("<boot>-<seq>") */

/* ---- handle -------------------------------------------------------------- */

typedef struct gx_client gx_client;

typedef struct gx_client_opts {
    const char *server;    /* base URL ("http://host:port"); NULL = $GEXEC_SERVER,
                              else GX_CLIENT_DEFAULT_SERVER. A bare "host:port"
                              gets "http://". A trailing '/' is dropped. */
    const char *api_key;   /* sent as "Authorization: Bearer <key>"; NULL =
                              $GEXEC_API_KEY; "" = send none */
    long timeout_ms;       /* limit for one request; 0 = 60000; -1 = none.
                              Streams (gx_client_events_follow) and waits use
                              their own limits. */
    long connect_timeout_ms; /* 0 = 10000 */
    const char *ca_file;   /* CA bundle (PEM) that verifies an https server;
                              NULL = $GEXEC_CACERT, else the system's CAs.
                              The certificate and host name are always
                              verified unless insecure is set. */
    int retries;           /* times to repeat a request that was refused with
                              429/503 (after its Retry-After, capped at 5 s) or
                              could not connect; 0 = never */
    const char *user_agent; /* NULL = "gexec-client/<version>" */
    int insecure;          /* 1: do NOT verify the server's certificate (tests
                              against a throwaway server only); never implied
                              by anything else */
} gx_client_opts;

/* Fill o with the defaults (all zero/NULL). */
void gx_client_opts_init(gx_client_opts *o);

/* Create a client. o may be NULL (all defaults). No request is made: a
 * server that is down is noticed by the first call. The strings in o are
 * copied. Fails with GX_EINVAL for a malformed server URL, GX_ENOMEM.
 * Release *out with gx_client_free. */
int gx_client_new(const gx_client_opts *o, gx_client **out, gx_error *err);

/* Close the connection and free the client. NULL is fine. */
void gx_client_free(gx_client *c);

/* The base URL in use (owned by the client, valid until gx_client_free). */
const char *gx_client_server(const gx_client *c);

/* HTTP status of the last response this client received; 0 when the last
 * call failed before a response (connection refused, timeout, local
 * error). */
int gx_client_last_status(const gx_client *c);

/* Seconds the server asked us to wait (Retry-After) in the last response,
 * 0 when it said nothing. */
double gx_client_last_retry_after(const gx_client *c);

/* Generic request, the escape hatch for endpoints without a typed call.
 * path starts with '/' ("/v1/jobs?limit=5"), used as given. body may be NULL
 * (then body_len is ignored); content_type defaults to application/json when
 * there is a body. On a response of any status, *status receives it and
 * *resp (optional) the body, malloc'd and NUL-terminated (*resp_len its
 * length without the NUL); the caller frees it with free(). Returns 0 for
 * 2xx, else the mapped error (with *status and *resp still filled). */
int gx_client_request(gx_client *c, const char *method, const char *path,
                      const void *body, size_t body_len, const char *content_type,
                      int *status, char **resp, size_t *resp_len, gx_error *err);

/* ---- jobs ---------------------------------------------------------------- */

/* A job as GET /v1/jobs/{id} describes it. Strings are "" when the server
 * sent null or nothing. */
typedef struct gx_client_job {
    char id[GX_CLIENT_ID_MAX];
    char tenant[GX_CLIENT_NAME_MAX];
    char kernel[GX_CLIENT_NAME_MAX];   /* "saxpy@1" */
    int state;                         /* gx_job_state; -1 if the name is unknown */
    char state_name[24];               /* as sent ("running") */
    int priority;
    int attempts;
    int max_attempts;
    char device[GX_CLIENT_NAME_MAX];   /* where it runs or ran; "" none */
    char submitted_at[GX_CLIENT_TIME_MAX];
    char started_at[GX_CLIENT_TIME_MAX];
    char finished_at[GX_CLIENT_TIME_MAX];
    double queue_seconds;
    double run_seconds;
    int error_code;                    /* GX_E* of the failure; 0 none */
    char error_name[32];               /* "GX_EKERNEL"; "" none */
    char error_message[GX_CLIENT_MSG_MAX];
    char wait_reason[24];              /* "queue", "dependency", ...; "" none */
    long wait_position;                /* place in line; -1 unknown */
    char waiting_on[GX_CLIENT_ID_MAX]; /* dependency holding it; "" none */
    char wait_message[GX_CLIENT_MSG_MAX];
    int created;                       /* submit only: 1 new job (202), 0 an
                                          idempotent repeat (200) */
    char fallback[GX_CLIENT_MSG_MAX];  /* why it ran on a CPU in place of a
                                          GPU; "" when it did not */
} gx_client_job;

/* 1 when the job's state is final (succeeded, failed, cancelled, timed_out,
 * dead). */
int gx_client_job_is_final(const gx_client_job *j);

/* Submit one job given as a JSON object (the POST /v1/jobs body). Fills job
 * (optional) with the job the server answered; job->created tells a new
 * job from an idempotent repeat. */
int gx_client_submit_json(gx_client *c, const char *spec_json, gx_client_job *job,
                          char **raw, gx_error *err);

/* Outcome of one job of a batch. */
typedef struct gx_client_batch_item {
    int status;                /* HTTP-like status for this job: 202, 200, 400... */
    char id[GX_CLIENT_ID_MAX]; /* job id when accepted, else "" */
    gx_error error;            /* code 0 when accepted, else the refusal */
} gx_client_batch_item;

typedef struct gx_client_batch {
    size_t accepted;            /* jobs the server took */
    size_t refused;             /* jobs it refused */
    size_t n;                   /* entries in items, in submission order */
    gx_client_batch_item *items; /* malloc'd; free with gx_client_batch_free */
} gx_client_batch;

/* Submit many jobs at once (POST /v1/jobs:batch). batch_json is either the
 * body {"jobs":[spec, ...]} or a bare array [spec, ...]. A batch where some
 * jobs are refused still returns 0: look at out->refused and the items. */
int gx_client_submit_batch_json(gx_client *c, const char *batch_json, gx_client_batch *out,
                                char **raw, gx_error *err);
void gx_client_batch_free(gx_client_batch *b);

/* GET /v1/jobs/{id}. GX_ENOTFOUND for an unknown id. */
int gx_client_get(gx_client *c, const char *id, gx_client_job *job, char **raw,
                  gx_error *err);

/* Called by gx_client_wait after each poll with the job as last seen and the
 * seconds since the wait began. Return nonzero to stop waiting (the wait
 * then returns GX_ECANCELED). */
typedef int (*gx_client_progress_fn)(void *ctx, const gx_client_job *job, double elapsed_s);

typedef struct gx_client_wait_opts {
    long timeout_ms;          /* give up after this long; -1 = never; 0 = look once */
    long poll_min_ms;         /* first poll interval; 0 = 20 */
    long poll_max_ms;         /* the interval doubles up to this; 0 = 1000 */
    gx_client_progress_fn progress; /* optional */
    void *ctx;                /* passed to progress */
} gx_client_wait_opts;

void gx_client_wait_opts_init(gx_client_wait_opts *o); /* timeout -1, defaults */

/* Poll the job (GET /v1/jobs/{id}, from poll_min_ms doubling up to
 * poll_max_ms) until its state is final. Returns 0 when it is (whatever
 * the final state: look at job->state), GX_ETIMEDOUT when timeout_ms passed
 * first (job holds the last state seen; a poll in flight then is cut
 * short: its request timeout is at most what is left of the wait), or the
 * error of a failed poll (GX_ETIMEDOUT too for a request that timed out on
 * its own, before the wait's end). o may be NULL (wait forever). */
int gx_client_wait(gx_client *c, const char *id, const gx_client_wait_opts *o,
                   gx_client_job *job, gx_error *err);

/* DELETE /v1/jobs/{id}: cancel a queued or running job. job (optional)
 * receives the job as the server answered. GX_ESTATE if already final. */
int gx_client_cancel(gx_client *c, const char *id, gx_client_job *job, char **raw,
                     gx_error *err);

/* POST /v1/jobs/{id}/requeue: run a dead or failed job again (operator or
 * admin key), as a new attempt with a fresh attempt budget. job (optional)
 * receives the job as queued again. GX_ESTATE if the job is in another
 * state. */
int gx_client_requeue(gx_client *c, const char *id, gx_client_job *job, char **raw, gx_error *err);

typedef struct gx_client_list_opts {
    const char *state;          /* "queued,running"; NULL = any */
    const char *kernel;         /* NULL = any */
    const char *const *labels;  /* "key=value" filters, all must match */
    size_t nlabels;
    int limit;                  /* page size; 0 = server default */
    const char *cursor;         /* next_cursor of the previous page; NULL = first */
    const char *order;          /* "asc" (oldest first) or "desc" (newest
                                   first); NULL = asc. A cursor goes on in
                                   the order of the page that gave it */
    const char *tenant;         /* this tenant's jobs (admin and operator
                                   keys; others only their own, else
                                   GX_ENOTFOUND); NULL = the key's tenant */
} gx_client_list_opts;

typedef struct gx_client_job_list {
    size_t n;
    gx_client_job *jobs;              /* malloc'd array of n */
    char next_cursor[GX_CLIENT_ID_MAX]; /* "" on the last page */
} gx_client_job_list;

/* One page of GET /v1/jobs. o may be NULL. Free with gx_client_job_list_free. */
int gx_client_list(gx_client *c, const gx_client_list_opts *o, gx_client_job_list *out,
                   char **raw, gx_error *err);
void gx_client_job_list_free(gx_client_job_list *l);

/* ---- API keys ------------------------------------------------------------ */

/* A key as GET /v1/keys lists it (never its secret). Strings are "" when
 * the server sent null or nothing. */
typedef struct gx_client_key {
    char id[GX_CLIENT_ID_MAX];         /* 16 hex digits */
    char tenant[GX_CLIENT_NAME_MAX];
    char role[16];                     /* "viewer", ..., "admin" */
    char label[128];
    int64_t created_ns;                /* Unix ns */
    int64_t expires_ns;                /* 0 = never */
    int revoked;                       /* 1 if revoked */
    int64_t last_used_ns;              /* 0 = never used */
} gx_client_key;

typedef struct gx_client_key_list_opts {
    const char *tenant;         /* only this tenant's keys; NULL = every tenant's */
    int revoked;                /* 0 = revoked or not; 1 = only revoked keys;
                                   -1 = only keys not revoked */
    int limit;                  /* page size (1..1000); 0 = server default (100) */
    const char *cursor;         /* next_cursor of the previous page; NULL = first */
} gx_client_key_list_opts;

typedef struct gx_client_key_list {
    size_t n;
    gx_client_key *keys;              /* malloc'd array of n, in creation order */
    char next_cursor[GX_CLIENT_ID_MAX]; /* "" on the last page */
} gx_client_key_list;

/* One page of GET /v1/keys (admin key). o may be NULL (the first page of
 * every key). Follow next_cursor until it is "" for every key: each comes
 * once, in creation order, also while keys are created or revoked
 * meanwhile. GX_EINVAL (err->field "limit", "cursor" or "revoked") when
 * the server refuses a parameter. Free with gx_client_key_list_free (also
 * after a failure: it is then empty). */
int gx_client_keys(gx_client *c, const gx_client_key_list_opts *o, gx_client_key_list *out, char **raw,
                   gx_error *err);
void gx_client_key_list_free(gx_client_key_list *l);

/* ---- results ------------------------------------------------------------- */

typedef struct gx_client_output {
    char name[GX_CLIENT_NAME_MAX];
    gx_array *array;                /* one reference, owned by the result */
    char blob[GX_CLIENT_BLOB_ID_MAX]; /* blob id when it came as a blob, else "" */
} gx_client_output;

typedef struct gx_client_outputs {
    char id[GX_CLIENT_ID_MAX];
    char state_name[24];
    size_t n;
    gx_client_output *outputs;      /* malloc'd, in the server's order */
} gx_client_outputs;

/* GET /v1/jobs/{id}/result and turn every output into an array: inline data
 * is converted, blobs are downloaded (GET /v1/blobs/{id}). GX_ESTATE (409)
 * when the job did not succeed, with the server's message. Free with
 * gx_client_outputs_free (also after a failure: it is then empty). */
int gx_client_result(gx_client *c, const char *id, gx_client_outputs *out, char **raw,
                     gx_error *err);
void gx_client_outputs_free(gx_client_outputs *r);

/* Find an output by name; NULL if absent. */
const gx_client_output *gx_client_outputs_find(const gx_client_outputs *r, const char *name);

/* ---- events -------------------------------------------------------------- */

typedef struct gx_client_event {
    long seq;                        /* per-job sequence (history only; 0 in streams) */
    char id[GX_CLIENT_ID_MAX];       /* job id */
    int state;                       /* gx_job_state; -1 unknown */
    char state_name[24];
    int attempt;
    char time[GX_CLIENT_TIME_MAX];
    char device[GX_CLIENT_NAME_MAX]; /* "" when not sent */
    int error_code;                  /* GX_E* of a failed attempt or final state; 0 none */
    char error_message[GX_CLIENT_MSG_MAX]; /* the stored message (history); the live stream
                                              sends the code alone: gx_strerror(error_code).
                                              With error_code 0: the change's note, if any
                                              ("resumed from step N"; history only) */
    char event_id[GX_CLIENT_EVENT_ID_MAX]; /* the stream's id of this event (SSE "id:"); pass it
                                               as gx_client_stream_opts.last_event_id to resume
                                               after it; "" in history */
} gx_client_event;

/* The stored state changes of one job (GET /v1/jobs/{id}/events), oldest
 * first. *events is malloc'd (free with free()), *n its length. */
int gx_client_job_events(gx_client *c, const char *id, gx_client_event **events, size_t *n,
                         char **raw, gx_error *err);

/* One event of the live stream. data is the event's raw JSON ("data:" line),
 * valid only during the call. Return nonzero to end the stream. */
typedef int (*gx_client_event_fn)(void *ctx, const gx_client_event *ev, const char *data);
/* Called about once a second while the stream is quiet (and on keepalives).
 * Return nonzero to end the stream. */
typedef int (*gx_client_idle_fn)(void *ctx, double elapsed_s);
/* The server could not resume the stream where asked (reason "too_old",
 * "lagged", "other_run", "malformed", "unknown"; message for humans):
 * state changes may have been missed, re-read the jobs. The stream goes on.
 * Return nonzero to end it. */
typedef int (*gx_client_reset_fn)(void *ctx, const char *reason, const char *message);

typedef struct gx_client_stream_opts {
    const char *job;     /* only this job; NULL = all */
    const char *state;   /* only these states ("succeeded,failed"); NULL = all */
    const char *kernel;  /* NULL = all */
    long timeout_ms;     /* end the stream after this long; -1 = never */
    gx_client_event_fn on_event;
    gx_client_idle_fn on_idle; /* optional */
    void *ctx;
    const char *last_event_id; /* resume after this event id (sent as Last-Event-ID);
                                  NULL = from now */
    int reconnect;       /* 1: when the connection drops (the stream cut off
                            without its end: a network fault, gexecd killed),
                            connect again (after 0.25 s, doubling up to 5 s)
                            and resume after the last id seen; give up after
                            30 s without a connection (GX_EIO, or the error
                            of the last try). A stream the server ended on
                            purpose (gexecd stopping, a key revoked) is over.
                            2: the same, and a stream the server ended is
                            connected again too, so that the stream outlives
                            a restart of gexecd (a revoked key then ends it
                            with the refusal, GX_EAUTH); gexec events uses
                            this. 0: neither */
    gx_client_reset_fn on_reset; /* optional */
    /* appended */
    const char *tenant;  /* only this tenant's jobs (a key that reads across
                            tenants; a tenant's key: its own); NULL = the
                            key's view */
} gx_client_stream_opts;

/* Follow GET /v1/events (server-sent events) and call on_event for each
 * "job" event, on_reset for each "reset" one. Returns 0 when a callback
 * ended the stream or the server ended it (reconnect 0 or 1),
 * GX_ETIMEDOUT when timeout_ms ended it (reconnects included), or an
 * error. The
 * callbacks must not use this client (it is busy with the stream); they may
 * use another one. */
int gx_client_events_follow(gx_client *c, const gx_client_stream_opts *o, gx_error *err);

/* ---- blobs --------------------------------------------------------------- */

/* Upload an array as .npy (POST /v1/blobs); id receives "sha256:<hex>". */
int gx_client_blob_put(gx_client *c, const gx_array *a, char id[GX_CLIENT_BLOB_ID_MAX],
                       gx_error *err);
/* Upload a .npy file as it is (checked locally first: GX_EIO if it cannot be
 * read, GX_EFORMAT/GX_EUNSUPPORTED/GX_EOVERFLOW if it is not an array gexec
 * takes). When the file is at fault, err->field is "path", nothing was sent
 * and gx_client_last_status() is 0: that tells it from a transport error
 * (GX_EIO too, with no field). */
int gx_client_blob_put_file(gx_client *c, const char *path, char id[GX_CLIENT_BLOB_ID_MAX],
                            gx_error *err);
/* Download a blob (GET /v1/blobs/{id}) into a new array (one reference). */
int gx_client_blob_get(gx_client *c, const char *blob_id, gx_array **out, gx_error *err);

/* ---- service information (raw) -------------------------------------------- */

/* GET /v1/kernels: *json receives the body (malloc'd; free()). */
int gx_client_kernels(gx_client *c, char **json, gx_error *err);
/* GET /v1/devices. */
int gx_client_devices(gx_client *c, char **json, gx_error *err);
/* POST (on=1, drain) or DELETE (on=0, undrain) /v1/devices/{name}/drain
 * (operator or admin): name is a device name ("cpu", "cuda:0") or its index.
 * json (optional) receives the device as GET /v1/devices shows it. A name
 * of other characters than [A-Za-z0-9:_.-] (or none, or over 31) is
 * GX_EINVAL (field "name") without a request; an unknown one GX_ENOTFOUND. */
int gx_client_device_drain(gx_client *c, const char *name, int on, char **json, gx_error *err);
/* GET /healthz. 0 when the daemon answers 200. json optional. */
int gx_client_health(gx_client *c, char **json, gx_error *err);
/* GET /readyz. Returns 0 whenever the daemon answered 200 or 503 and sets
 * *ready to 1 or 0; json (optional) receives the body. */
int gx_client_ready(gx_client *c, int *ready, char **json, gx_error *err);
/* GET /metrics: *text receives the Prometheus text (malloc'd; free()). */
int gx_client_metrics(gx_client *c, char **text, gx_error *err);

/* ---- job specs ------------------------------------------------------------
 * A builder for the JSON body of POST /v1/jobs, for callers that do not want
 * to write JSON. Setters replace an earlier value of the same key. A spec is
 * not tied to a client. Not thread-safe (one spec, one thread). */

typedef struct gx_jobspec gx_jobspec;

/* New spec for kernel (may be NULL: set it later or load it from JSON).
 * Free with gx_jobspec_free. */
int gx_jobspec_new(const char *kernel, gx_jobspec **out, gx_error *err);
/* New spec from a JSON object text (e.g. a spec file); setters then override
 * its keys. GX_EFORMAT with err->pos at the bad byte for malformed JSON,
 * GX_EINVAL if it is not an object. */
int gx_jobspec_from_json(const char *json, gx_jobspec **out, gx_error *err);
/* Same from a file (GX_EIO if it cannot be read). */
int gx_jobspec_from_file(const char *path, gx_jobspec **out, gx_error *err);
void gx_jobspec_free(gx_jobspec *s); /* NULL ok */

int gx_jobspec_set_kernel(gx_jobspec *s, const char *kernel, gx_error *err);
int gx_jobspec_set_arg_double(gx_jobspec *s, const char *name, double v, gx_error *err);
int gx_jobspec_set_arg_int(gx_jobspec *s, const char *name, int64_t v, gx_error *err);
int gx_jobspec_set_arg_bool(gx_jobspec *s, const char *name, int v, gx_error *err);
int gx_jobspec_set_arg_string(gx_jobspec *s, const char *name, const char *v,
                              gx_error *err);
/* "name=value" as typed on a command line: an integer ("3", "-2", "0x10";
 * "010" is decimal 10) becomes an int, a finite decimal number ("2.5",
 * "1e-3", ".5") a float, true/false a bool, anything else a string (enum
 * choices; "inf" and "nan" too). A value may be quoted ("'3'", "\"3\"") to
 * force a string. GX_EINVAL (field "args") when there is no '=' or the name
 * is empty; GX_EINVAL (field "args.NAME") for a number that does not fit:
 * an integer beyond 64 bits ("99999999999999999999"), a decimal beyond a
 * double ("1e999", or "1e-999" that would be 0). */
int gx_jobspec_set_arg_text(gx_jobspec *s, const char *name_eq_value, gx_error *err);
/* Input by reference to an uploaded blob ("sha256:..."). */
int gx_jobspec_set_input_blob(gx_jobspec *s, const char *name, const char *blob_id,
                              gx_error *err);
/* Input sent inline (dtype, shape and data in the JSON). */
int gx_jobspec_set_input_array(gx_jobspec *s, const char *name, const gx_array *a,
                               gx_error *err);
int gx_jobspec_set_priority(gx_jobspec *s, int priority, gx_error *err);
int gx_jobspec_set_device(gx_jobspec *s, const char *device, gx_error *err);
/* "cpu" (with device "gpu": run on the CPU while no GPU is usable) or "none". */
int gx_jobspec_set_fallback(gx_jobspec *s, const char *fallback, gx_error *err);
int gx_jobspec_set_timeout_ms(gx_jobspec *s, int64_t ms, gx_error *err);
int gx_jobspec_set_queue_timeout_ms(gx_jobspec *s, int64_t ms, gx_error *err);
int gx_jobspec_set_max_attempts(gx_jobspec *s, int n, gx_error *err);
/* Device memory the job needs, when more than its kernel estimates from the
 * inputs (0..2^50 bytes; the larger of the two is counted). */
int gx_jobspec_set_memory_bytes(gx_jobspec *s, uint64_t bytes, gx_error *err);
int gx_jobspec_set_idempotency_key(gx_jobspec *s, const char *key, gx_error *err);
/* Append a dependency (a job id, or "@N" inside a batch). */
int gx_jobspec_add_dep(gx_jobspec *s, const char *job_id, gx_error *err);
int gx_jobspec_set_label(gx_jobspec *s, const char *key, const char *value, gx_error *err);
/* "key=value". */
int gx_jobspec_set_label_text(gx_jobspec *s, const char *key_eq_value, gx_error *err);
/* Serialise (compact JSON, keys in insertion order). *json is malloc'd;
 * free(). GX_EINVAL (field "kernel") when no kernel is set. */
int gx_jobspec_to_json(const gx_jobspec *s, char **json, gx_error *err);

/* Submit a spec: gx_jobspec_to_json + gx_client_submit_json. */
int gx_client_submit(gx_client *c, const gx_jobspec *s, gx_client_job *job, char **raw,
                     gx_error *err);

/* ---- small parsers shared with the CLI ------------------------------------ */

/* Parse an inline array "dtype:v,v,..." or "dtype[d0,d1,...]:v,v,...", with
 * an optional "@inline:" prefix: "f32:1,2,3" (shape [3]), "i64[2,2]:1,2,3,4",
 * "bool:true,false,1,0", "f32[0]:" (empty), "f64[]:5" (a scalar). Values are
 * decimal numbers ("010" is ten, "0x10" refused), inf/nan for floats. GX_EINVAL with err->pos at the
 * offending character for a bad dtype, value, or count that does not match
 * the shape; integer values must fit the dtype. *out has one reference. */
int gx_client_parse_inline(const char *text, gx_array **out, gx_error *err);

/* Parse a duration: "30" or "30s" (seconds, fractions allowed), "250ms",
 * "2m", "1h"; "-1"/"inf"/"none" = no limit (-1): the caller decides what
 * that means, or refuses it. *ms receives milliseconds, rounded. GX_EINVAL
 * for anything else, and for a duration above 0 but under 0.5 ms, which
 * would round to 0 ("0.0004": 0 is often no limit). */
int gx_client_parse_duration(const char *text, long *ms, gx_error *err);

#ifdef __cplusplus
}
#endif
#endif
