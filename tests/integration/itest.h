/*
 * itest.h - helpers for integration tests that drive a real gexecd: start
 * it on a free port in a temp dir, talk HTTP to it with libcurl, kill and
 * restart it.
 */
#ifndef GX_ITEST_H
#define GX_ITEST_H

#include <jansson.h>
#include <stddef.h>
#include <sys/types.h>

typedef struct it_daemon {
    pid_t pid;
    int port;
    char dir[256];      /* data dir (kept across restarts) */
    char url[64];
    char log[300];
    const char *extra_env[8]; /* "KEY=VALUE" added to the environment */
    char key[64];       /* the admin key (GEXEC_ADMIN_KEY), made by it_start */
    const char *use_key; /* key it_req sends: NULL = key, "" = none */
    const char *ready_path; /* what it_start waits for: NULL = "/readyz" */
} it_daemon;

/* Start gexecd (the one built beside this test) with its data in d->dir
 * (created when empty). Waits until ready_path (/readyz) answers 200.
 * Returns 0 or -1. */
int it_start(it_daemon *d);
/* SIGTERM and wait (graceful), or SIGKILL. */
int it_stop(it_daemon *d);
void it_kill9(it_daemon *d);
/* The daemon's SQLite store file (<dir>/data/gexec.db) opened beside it,
 * read-only or writable, with a 5 s busy timeout; NULL if it cannot be. */
struct sqlite3;
struct sqlite3 *it_store_open(const it_daemon *d, int writable);
/* Remove the data dir. */
void it_cleanup(it_daemon *d);
/* it_stop then it_cleanup; it_stop's result. */
int it_finish(it_daemon *d);

typedef struct it_resp {
    long status;
    char *body;
    size_t len;
    json_t *json;  /* parsed body, NULL if not JSON */
    char headers[2048];
} it_resp;

/* One request; body may be NULL. ctype NULL = application/json when body. */
int it_req(it_daemon *d, const char *method, const char *path, const char *body, size_t len,
           const char *ctype, it_resp *r);
/* it_req with more request headers ("Name: value", NULL-terminated list,
 * or NULL). HEAD reads no body. */
int it_req_ex(it_daemon *d, const char *method, const char *path, const char *body, size_t len,
              const char *ctype, const char *const *headers, it_resp *r);
void it_resp_free(it_resp *r);
/* The value of the first response header called name (any case) into out;
 * "" when there is none. */
void it_header(const it_resp *r, const char *name, char *out, size_t cap);
/* Convenience: JSON string member of r->json (or nested "error.code"). */
const char *it_str(const it_resp *r, const char *path);
/* POST /v1/jobs with body: the status; the new job's id into id (cap
 * bytes) on a 202, "" otherwise. */
long it_submit(it_daemon *d, const char *body, char *id, size_t cap);
/* Poll GET /v1/jobs/{id} until the job is final or timeout_ms. Returns the
 * state string (static buffer) or "timeout". */
const char *it_wait_job(it_daemon *d, const char *id, int timeout_ms);

#endif
