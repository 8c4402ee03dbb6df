/*
 * client_int.h - internals shared by the files of libgexec-client.
 *
 * http.c owns the handle and the request cycle (one libcurl easy handle per
 * client, reset between requests so the connection survives); the other
 * files build requests and turn JSON answers into the public structs.
 */
#ifndef GX_CLIENT_INT_H
#define GX_CLIENT_INT_H

#include <curl/curl.h>
#include <jansson.h>

#include "gexec/gexec_client.h"

/* Growable byte buffer; p is always NUL-terminated when non-NULL. */
typedef struct gx__buf {
    char *p;
    size_t len;
    size_t cap;
} gx__buf;

int gx__buf_add(gx__buf *b, const void *data, size_t n);
void gx__buf_free(gx__buf *b);

struct gx_client {
    CURL *curl;              /* reused for every request (keep-alive) */
    char *server;            /* base URL without trailing '/' */
    char *auth;              /* "Authorization: Bearer ..." or NULL */
    char *ca_file;           /* NULL = system CAs */
    int insecure;            /* 1: certificate not verified (asked for explicitly) */
    char *user_agent;
    long timeout_ms;         /* per request; -1 none */
    long connect_timeout_ms;
    int retries;             /* repeats of 429/503/refused requests */
    int last_status;         /* HTTP status of the last response, 0 none */
    double last_retry_after; /* seconds from Retry-After, 0 none */
    char errbuf[CURL_ERROR_SIZE]; /* libcurl's message of the last failure */
};

/* The start of a public call: a call that fails before it sends anything
 * got no answer, so gx_client_last_status() is 0 then, not the status of
 * an earlier call. */
static inline void gx__call_begin(gx_client *c) {
    if (c) c->last_status = 0;
}

/* Reset the handle and set what every request shares: URL (server + path),
 * auth, TLS, timeouts, response header capture. headers receives the list
 * to free with curl_slist_free_all after the transfer. */
int gx__setup(gx_client *c, const char *path, struct curl_slist **headers, gx_error *err);

/* Map a failed transfer (CURLcode) to a GX code and message. */
int gx__curl_error(gx_client *c, CURLcode cc, gx_error *err);

/* Map an HTTP error answer to a GX code, taking code/message/field from a
 * JSON error body when there is one. */
int gx__http_error(gx_client *c, int status, const char *body, size_t len, gx_error *err);

/* One request; resp receives the body (any status). Returns 0 for 2xx. */
int gx__http(gx_client *c, const char *method, const char *path, const void *body,
             size_t len, const char *ctype, gx__buf *resp, gx_error *err);

/* Request with a JSON (text) body or none, answer parsed as JSON into *out
 * (optional; json_decref) and given raw in *raw (optional; free()). */
int gx__http_json(gx_client *c, const char *method, const char *path, const char *body,
                  json_t **out, char **raw, gx_error *err);

/* GET a page of a listing: path (built: 0, or GX_ENOMEM when building it
 * failed; freed here either way), its member (an array) into *items (n
 * elements of size bytes, each filled by parse; calloc'd, free()) and its
 * next_cursor ("" when null) into next_cursor (cap bytes). */
int gx__get_page(gx_client *c, gx__buf *path, int built, const char *member, size_t size,
                 void (*parse)(json_t *, void *), void **items, size_t *n, char *next_cursor, size_t cap,
                 char **raw, gx_error *err);

/* Percent-encode s for a URL; malloc'd (free()), NULL on ENOMEM. */
char *gx__escape(const char *s);
/* Append "?key=value" (or "&key=value" after the first) to the path in b,
 * value percent-encoded; nothing for a NULL or empty value (the server
 * takes an empty parameter as absent). 0 or GX_ENOMEM. */
int gx__query_add(gx__buf *b, const char *key, const char *value);

/* Put "prefix: " before err->message (truncating the end). NULL ok. */
void gx__error_prefix(gx_error *err, const char *prefix);

/* GX code for a name ("GX_EINVAL"); 0 when unknown. */
int gx__err_from_name(const char *name);

/* Copy a JSON string (or "" for null/absent/non-string) into dst. */
void gx__jstr(char *dst, size_t cap, json_t *obj, const char *key);
/* Parse a job object into *j. */
void gx__job_from_json(json_t *o, gx_client_job *j);
/* Parse an event object (history entry or stream "data:") into *ev. */
void gx__event_from_json(json_t *o, gx_client_event *ev);
/* Convert {"dtype","shape","data"} to an array. field names it in errors. */
int gx__array_from_json(json_t *o, const char *field, gx_array **out, gx_error *err);
/* Convert an array to {"dtype","shape","data"}; NULL on ENOMEM. */
json_t *gx__array_to_json(const gx_array *a);

#endif
