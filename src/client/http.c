/*
 * http.c - the client handle and the request cycle.
 *
 * Each client keeps one libcurl easy handle. curl_easy_reset() between
 * requests clears the options but keeps the connection cache, so a run of
 * calls goes over one kept-alive connection. Answers are read whole into a
 * buffer (the streaming call in stream.c installs its own writer). HTTP
 * errors are turned into GX codes here and nowhere else.
 */
#include <ctype.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "client_int.h"

/* ---- buffers ---------------------------------------------------------------- */

int gx__buf_add(gx__buf *b, const void *data, size_t n) {
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        while (cap < b->len + n + 1) {
            if (cap > SIZE_MAX / 2) return GX_ENOMEM;
            cap *= 2;
        }
        char *p = realloc(b->p, cap);
        if (!p) return GX_ENOMEM;
        b->p = p;
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->len, data, n);
    b->len += n;
    b->p[b->len] = '\0';
    return 0;
}

void gx__buf_free(gx__buf *b) {
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

/* ---- small helpers ------------------------------------------------------------ */

int gx__err_from_name(const char *name) {
    if (!name) return 0;
#define GX__ERR_FROM(nm, val, text) \
    if (!strcmp(name, "GX_" #nm)) return (val);
    GX_ERRNO_MAP(GX__ERR_FROM)
#undef GX__ERR_FROM
    return 0;
}

void gx__error_prefix(gx_error *err, const char *prefix) {
    if (!err) return;
    char tmp[sizeof err->message + 512];
    int n = snprintf(tmp, sizeof tmp, "%s: %s", prefix, err->message);
    if (n < 0) return;
    size_t len = strlen(tmp);
    if (len >= sizeof err->message) len = sizeof err->message - 1;
    memcpy(err->message, tmp, len);
    err->message[len] = '\0';
}

char *gx__escape(const char *s) {
    static const char hex[] = "0123456789ABCDEF";
    size_t n = strlen(s);
    char *out = malloc(3 * n + 1), *o = out;
    if (!out) return NULL;
    /* "." and ".." as a path segment would be taken as the current and the
     * parent folder on the way (libcurl drops them): "gexec get ." read the
     * job list. A segment of dots only is sent encoded. */
    int dots = n > 0 && strspn(s, ".") == n;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (isalnum(*p) || (strchr("-._~:@", *p) && !dots)) {
            *o++ = (char)*p;
        } else {
            *o++ = '%';
            *o++ = hex[*p >> 4];
            *o++ = hex[*p & 15];
        }
    }
    *o = '\0';
    return out;
}

int gx__query_add(gx__buf *b, const char *key, const char *value) {
    if (!value || !*value) return 0;
    char *e = gx__escape(value);
    if (!e) return GX_ENOMEM;
    int rc = gx__buf_add(b, strchr(b->p, '?') ? "&" : "?", 1);
    if (!rc) rc = gx__buf_add(b, key, strlen(key));
    if (!rc) rc = gx__buf_add(b, "=", 1);
    if (!rc) rc = gx__buf_add(b, e, strlen(e));
    free(e);
    return rc;
}

void gx__jstr(char *dst, size_t cap, json_t *obj, const char *key) {
    json_t *v = obj ? json_object_get(obj, key) : NULL;
    const char *s = json_is_string(v) ? json_string_value(v) : "";
    if (json_is_integer(v)) {
        snprintf(dst, cap, "%lld", (long long)json_integer_value(v));
        return;
    }
    snprintf(dst, cap, "%s", s);
}

/* ---- handle ------------------------------------------------------------------- */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;
static void curl_init(void) { curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT); }

void gx_client_opts_init(gx_client_opts *o) { memset(o, 0, sizeof *o); }

static char *dupstr(const char *s) {
    if (!s) return NULL;
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

/* Normalise the server URL: add http:// to a bare host:port, drop trailing
 * slashes, refuse other schemes and empty hosts. */
static int server_url(const char *in, char **out, gx_error *err) {
    while (isspace((unsigned char)*in)) in++;
    if (!*in) return gx_error_set(err, GX_EINVAL, "server", "the server URL is empty");
    const char *scheme = strstr(in, "://");
    size_t n = strlen(in);
    char *s = malloc(n + 8);
    if (!s) return gx_error_set(err, GX_ENOMEM, NULL, "out of memory");
    if (scheme) {
        size_t sl = (size_t)(scheme - in);
        if (!((sl == 4 && !strncmp(in, "http", 4)) || (sl == 5 && !strncmp(in, "https", 5)))) {
            free(s);
            return gx_error_set(err, GX_EINVAL, "server",
                                "server URL '%s' must start with http:// or https://", in);
        }
        memcpy(s, in, n + 1);
    } else {
        memcpy(s, "http://", 7);
        memcpy(s + 7, in, n + 1);
    }
    const char *host = strstr(s, "://") + 3;
    size_t len = strlen(s), hostoff = (size_t)(host - s);
    while (len > hostoff && (s[len - 1] == '/' || isspace((unsigned char)s[len - 1])))
        s[--len] = '\0';
    if (!*host || *host == '/' || *host == ':' || strpbrk(host, " \t\r\n?#")) {
        gx_error_set(err, GX_EINVAL, "server", "server URL '%s' has no valid host", in);
        free(s);
        return GX_EINVAL;
    }
    /* a port, if any, is 1..65535 ("http:/x" read as host "http:" with an
     * empty port, "h:-1", used to pass) */
    size_t alen = strcspn(host, "/");
    const char *colon = NULL;
    if (*host == '[') {
        const char *rb = memchr(host, ']', alen);
        if (rb && rb + 1 < host + alen && rb[1] == ':') colon = rb + 1;
        else if (!rb) colon = host; /* unterminated: refused below */
    } else {
        colon = memchr(host, ':', alen);
    }
    if (colon) {
        const char *pe = host + alen;
        size_t pl = (size_t)(pe - colon - 1);
        long port = pl >= 1 && pl <= 5 && strspn(colon + 1, "0123456789") >= pl ? strtol(colon + 1, NULL, 10) : 0;
        if (colon == host || port < 1 || port > 65535) {
            gx_error_set(err, GX_EINVAL, "server", "server URL '%s' has no valid host and port", in);
            free(s);
            return GX_EINVAL;
        }
    }
    *out = s;
    return 0;
}

int gx_client_new(const gx_client_opts *o, gx_client **out, gx_error *err) {
    gx_client_opts def;
    if (!o) {
        gx_client_opts_init(&def);
        o = &def;
    }
    *out = NULL;
    pthread_once(&curl_once, curl_init);
    if (curl_init_rc != CURLE_OK)
        return gx_error_set(err, GX_EIO, NULL, "libcurl failed to initialise: %s",
                            curl_easy_strerror(curl_init_rc));
    if (o->timeout_ms < -1 || o->connect_timeout_ms < 0 || o->retries < 0)
        return gx_error_set(err, GX_EINVAL, "timeout_ms", "negative timeout or retry count");
    const char *srv = o->server;
    if (!srv || !*srv) srv = getenv("GEXEC_SERVER");
    if (!srv || !*srv) srv = GX_CLIENT_DEFAULT_SERVER;
    const char *key = o->api_key ? o->api_key : getenv("GEXEC_API_KEY");

    gx_client *c = calloc(1, sizeof *c);
    if (!c) return gx_error_set(err, GX_ENOMEM, NULL, "out of memory");
    int rc = server_url(srv, &c->server, err);
    if (rc) {
        free(c);
        return rc;
    }
    if (key && *key) {
        for (const char *p = key; *p; p++)
            if ((unsigned char)*p < 0x21 || *p == 0x7f) {
                gx_client_free(c);
                return gx_error_set(err, GX_EINVAL, "api_key",
                                    "the API key contains spaces or control characters");
            }
        size_t n = strlen(key) + 32;
        c->auth = malloc(n);
        if (c->auth) snprintf(c->auth, n, "Authorization: Bearer %s", key);
    }
    const char *ca = o->ca_file && *o->ca_file ? o->ca_file : getenv("GEXEC_CACERT");
    c->ca_file = ca && *ca ? dupstr(ca) : NULL;
    c->insecure = o->insecure != 0;
    c->user_agent = dupstr(o->user_agent ? o->user_agent : "gexec-client/" GX_VERSION_STRING);
    c->timeout_ms = o->timeout_ms ? o->timeout_ms : 60000;
    c->connect_timeout_ms = o->connect_timeout_ms ? o->connect_timeout_ms : 10000;
    c->retries = o->retries;
    c->curl = curl_easy_init();
    if (!c->curl || !c->user_agent || (key && *key && !c->auth) || (ca && *ca && !c->ca_file)) {
        gx_client_free(c);
        return gx_error_set(err, GX_ENOMEM, NULL, "out of memory creating the client");
    }
    *out = c;
    return 0;
}

void gx_client_free(gx_client *c) {
    if (!c) return;
    if (c->curl) curl_easy_cleanup(c->curl);
    free(c->server);
    free(c->auth);
    free(c->ca_file);
    free(c->user_agent);
    free(c);
}

const char *gx_client_server(const gx_client *c) { return c->server; }
int gx_client_last_status(const gx_client *c) { return c->last_status; }
double gx_client_last_retry_after(const gx_client *c) { return c->last_retry_after; }

/* ---- request cycle ------------------------------------------------------------- */

static size_t on_header(char *p, size_t size, size_t n, void *ud) {
    gx_client *c = ud;
    size_t len = size * n;
    if (len > 12 && !strncasecmp(p, "retry-after:", 12)) {
        char tmp[64];
        size_t m = len - 12 < sizeof tmp - 1 ? len - 12 : sizeof tmp - 1;
        memcpy(tmp, p + 12, m);
        tmp[m] = '\0';
        char *end;
        double v = strtod(tmp, &end);
        /* HTTP dates are not worth parsing here: treat them as "a moment" */
        c->last_retry_after = (end != tmp && v >= 0 && isfinite(v)) ? v : 1;
    }
    return len;
}

static size_t on_body(char *p, size_t size, size_t n, void *ud) {
    gx__buf *b = ud;
    return gx__buf_add(b, p, size * n) ? 0 : size * n;
}

int gx__setup(gx_client *c, const char *path, struct curl_slist **headers, gx_error *err) {
    CURL *h = c->curl;
    curl_easy_reset(h);
    c->last_status = 0;
    c->last_retry_after = 0;
    c->errbuf[0] = '\0';
    size_t n = strlen(c->server) + strlen(path) + 1;
    char *url = malloc(n);
    if (!url) return gx_error_set(err, GX_ENOMEM, NULL, "out of memory");
    snprintf(url, n, "%s%s", c->server, path);
    CURLcode cc = curl_easy_setopt(h, CURLOPT_URL, url); /* libcurl copies it */
    free(url);
    if (cc != CURLE_OK) return gx_error_set(err, GX_EINVAL, "server", "bad URL for %s", path);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, c->errbuf);
    curl_easy_setopt(h, CURLOPT_USERAGENT, c->user_agent);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, c->connect_timeout_ms);
    curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, c->insecure ? 0L : 1L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, c->insecure ? 0L : 2L);
    curl_easy_setopt(h, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
    if (c->ca_file) curl_easy_setopt(h, CURLOPT_CAINFO, c->ca_file);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, c);
    struct curl_slist *hl = NULL, *t;
    /* no "Expect: 100-continue" round trip before large uploads */
    if (!(t = curl_slist_append(hl, "Expect:"))) goto oom;
    hl = t;
    if (c->auth) {
        if (!(t = curl_slist_append(hl, c->auth))) goto oom;
        hl = t;
    }
    *headers = hl;
    return 0;
oom:
    curl_slist_free_all(hl);
    return gx_error_set(err, GX_ENOMEM, NULL, "out of memory");
}

int gx__curl_error(gx_client *c, CURLcode cc, gx_error *err) {
    const char *detail = c->errbuf[0] ? c->errbuf : curl_easy_strerror(cc);
    switch (cc) {
    case CURLE_OPERATION_TIMEDOUT:
        return gx_error_set(err, GX_ETIMEDOUT, NULL, "request to %s timed out: %s", c->server,
                            detail);
    case CURLE_OUT_OF_MEMORY:
        return gx_error_set(err, GX_ENOMEM, NULL, "out of memory in libcurl");
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
        return gx_error_set(err, GX_EIO, NULL, "cannot connect to %s: %s", c->server, detail);
    case CURLE_PEER_FAILED_VERIFICATION:
        return gx_error_set(err, GX_EIO, NULL,
                            "the TLS certificate of %s cannot be verified: %s (give the CA bundle that signed it: "
                            "ca_file, gexec --cacert FILE or $GEXEC_CACERT)",
                            c->server, detail);
    case CURLE_SSL_CACERT_BADFILE:
        return gx_error_set(err, GX_EIO, NULL, "cannot use the CA bundle '%s' to verify %s: %s",
                            c->ca_file ? c->ca_file : "(system)", c->server, detail);
    case CURLE_SSL_CONNECT_ERROR:
        return gx_error_set(err, GX_EIO, NULL, "TLS handshake with %s failed: %s", c->server, detail);
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
        return gx_error_set(err, GX_EINVAL, "server", "bad server URL %s: %s", c->server, detail);
    default:
        return gx_error_set(err, GX_EIO, NULL, "request to %s failed: %s", c->server, detail);
    }
}

static int code_for_status(int status) {
    switch (status) {
    case 400: case 422: return GX_EINVAL;
    case 401: return GX_EAUTH;
    case 403: return GX_EPERM;
    case 404: return GX_ENOTFOUND;
    case 405: case 415: case 501: return GX_EUNSUPPORTED;
    case 409: return GX_ESTATE;
    case 413: return GX_ELIMIT;
    case 429: case 503: return GX_EBUSY;
    default: return status >= 400 && status < 500 ? GX_EINVAL : GX_EIO;
    }
}

int gx__http_error(gx_client *c, int status, const char *body, size_t len, gx_error *err) {
    int code = code_for_status(status);
    const char *field = NULL, *msg = NULL;
    json_t *root = body && len ? json_loadb(body, len, 0, NULL) : NULL;
    json_t *e = json_object_get(root, "error");
    if (json_is_object(e)) {
        int named = gx__err_from_name(json_string_value(json_object_get(e, "code")));
        if (named < 0) code = named;
        msg = json_string_value(json_object_get(e, "message"));
        field = json_string_value(json_object_get(e, "field"));
    } else if (json_is_string(e)) {
        msg = json_string_value(e);
    }
    if (msg && *msg)
        gx_error_set(err, code, field, "%s", msg);
    else if ((status == 429 || status == 503) && c->last_retry_after > 0)
        gx_error_set(err, code, field, "server busy (HTTP %d), retry after %.0f s", status,
                     c->last_retry_after);
    else if (status == 429 || status == 503)
        gx_error_set(err, code, field, "server busy (HTTP %d)", status);
    else
        gx_error_set(err, code, field, "server answered HTTP %d", status);
    json_decref(root);
    return code;
}

static void sleep_s(double s) {
    if (s <= 0) return;
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

int gx__http(gx_client *c, const char *method, const char *path, const void *body, size_t len,
             const char *ctype, gx__buf *resp, gx_error *err) {
    for (int attempt = 0;; attempt++) {
        struct curl_slist *hl = NULL;
        gx__buf_free(resp);
        int rc = gx__setup(c, path, &hl, err);
        if (rc) return rc;
        CURL *h = c->curl;
        char cth[128];
        if (body) {
            snprintf(cth, sizeof cth, "Content-Type: %s", ctype ? ctype : "application/json");
            struct curl_slist *t = curl_slist_append(hl, cth);
            if (!t) {
                curl_slist_free_all(hl);
                return gx_error_set(err, GX_ENOMEM, NULL, "out of memory");
            }
            hl = t;
            curl_easy_setopt(h, CURLOPT_POST, 1L);
            curl_easy_setopt(h, CURLOPT_POSTFIELDS, (const char *)body);
            curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
        } else if (!strcmp(method, "POST")) {
            curl_easy_setopt(h, CURLOPT_POST, 1L);
            curl_easy_setopt(h, CURLOPT_POSTFIELDS, "");
            curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)0);
        }
        if (strcmp(method, "GET") && strcmp(method, "POST"))
            curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
        if (!strcmp(method, "HEAD")) curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, resp);
        if (c->timeout_ms > 0) curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, c->timeout_ms);
        CURLcode cc = curl_easy_perform(h);
        curl_slist_free_all(hl);
        if (cc == CURLE_WRITE_ERROR && !c->errbuf[0])
            return gx_error_set(err, GX_ENOMEM, NULL, "out of memory reading the answer");
        if (cc != CURLE_OK) {
            if (cc == CURLE_COULDNT_CONNECT && attempt < c->retries) {
                sleep_s(0.2 * (1 << (attempt < 4 ? attempt : 4)));
                continue;
            }
            return gx__curl_error(c, cc, err);
        }
        long status = 0;
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
        c->last_status = (int)status;
        if (!resp->p) gx__buf_add(resp, "", 0);
        if (status >= 200 && status < 300) {
            gx_error_clear(err);
            return 0;
        }
        /* a Retry-After beyond the wait cap (a tenant quota: minutes) is not
         * worth retrying early: answer at once */
        if ((status == 429 || status == 503) && attempt < c->retries && c->last_retry_after <= 5) {
            double wait = c->last_retry_after > 0 ? c->last_retry_after : 0.2 * (attempt + 1);
            sleep_s(wait > 5 ? 5 : wait);
            continue;
        }
        return gx__http_error(c, (int)status, resp->p, resp->len, err);
    }
}

int gx__http_json(gx_client *c, const char *method, const char *path, const char *body,
                  json_t **out, char **raw, gx_error *err) {
    gx__buf resp = {0};
    if (out) *out = NULL;
    if (raw) *raw = NULL;
    int rc = gx__http(c, method, path, body, body ? strlen(body) : 0, NULL, &resp, err);
    if (raw && resp.p) {
        *raw = resp.p; /* hand the buffer over */
        resp.p = NULL;
    }
    if (rc == 0 && out) {
        json_error_t je;
        const char *txt = raw ? *raw : resp.p;
        size_t len = resp.len;
        *out = json_loadb(txt ? txt : "", txt ? len : 0, 0, &je);
        if (!*out)
            rc = gx_error_set(err, GX_EFORMAT, NULL, "server sent bad JSON for %s %s: %s", method,
                              path, je.text);
    }
    if (rc && raw && !c->last_status) {
        free(*raw);
        *raw = NULL;
    }
    gx__buf_free(&resp);
    return rc;
}

int gx__get_page(gx_client *c, gx__buf *path, int built, const char *member, size_t size,
                 void (*parse)(json_t *, void *), void **items, size_t *n, char *next_cursor, size_t cap,
                 char **raw, gx_error *err) {
    *items = NULL;
    *n = 0;
    next_cursor[0] = '\0';
    if (raw) *raw = NULL;
    json_t *root = NULL;
    int rc = built ? gx_error_set(err, GX_ENOMEM, NULL, "out of memory")
                   : gx__http_json(c, "GET", path->p, NULL, &root, raw, err);
    gx__buf_free(path);
    if (rc) return rc;
    json_t *arr = json_object_get(root, member);
    size_t cnt = json_array_size(arr);
    char *v = json_is_array(arr) ? calloc(cnt ? cnt : 1, size) : NULL;
    if (!json_is_array(arr))
        rc = gx_error_set(err, GX_EFORMAT, member, "server answer has no \"%s\" array", member);
    else if (!v)
        rc = gx_error_set(err, GX_ENOMEM, NULL, "out of memory");
    for (size_t i = 0; !rc && i < cnt; i++) parse(json_array_get(arr, i), v + i * size);
    if (!rc) {
        gx__jstr(next_cursor, cap, root, "next_cursor");
        *items = v;
        *n = cnt;
    }
    json_decref(root);
    return rc;
}

int gx_client_request(gx_client *c, const char *method, const char *path, const void *body,
                      size_t body_len, const char *content_type, int *status, char **resp,
                      size_t *resp_len, gx_error *err) {
    gx__call_begin(c); /* a local error is no answer: status 0 */
    if (!c) return gx_error_set(err, GX_EINVAL, "client", "client is NULL");
    if (!method) return gx_error_set(err, GX_EINVAL, "method", "method is NULL");
    if (!path || path[0] != '/') return gx_error_set(err, GX_EINVAL, "path", "path must start with '/'");
    size_t ml = strlen(method);
    if (!ml || ml > 16 || strspn(method, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") != ml) /* no CR/LF into the request */
        return gx_error_set(err, GX_EINVAL, "method", "the method must be 1-16 upper-case letters (GET, POST, ...)");
    gx__buf b = {0};
    int rc = gx__http(c, method, path, body, body_len, content_type, &b, err);
    if (status) *status = c->last_status;
    if (resp_len) *resp_len = b.len;
    if (resp) {
        *resp = b.p;
        b.p = NULL;
    }
    gx__buf_free(&b);
    return rc;
}

/* ---- service information ---------------------------------------------------------- */

int gx_client_kernels(gx_client *c, char **json, gx_error *err) {
    return gx__http_json(c, "GET", "/v1/kernels", NULL, NULL, json, err);
}

int gx_client_devices(gx_client *c, char **json, gx_error *err) {
    return gx__http_json(c, "GET", "/v1/devices", NULL, NULL, json, err);
}

int gx_client_device_drain(gx_client *c, const char *name, int on, char **json, gx_error *err) {
    if (json) *json = NULL;
    gx__call_begin(c);
    size_t n = name ? strlen(name) : 0;
    if (!n || n > 31 || strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789:_.-") != n ||
        name[0] == '.')
        return gx_error_set(err, GX_EINVAL, "name", "a device name (cpu, cuda:0) or index is expected");
    char path[64];
    snprintf(path, sizeof path, "/v1/devices/%s/drain", name);
    return gx__http_json(c, on ? "POST" : "DELETE", path, NULL, NULL, json, err);
}

int gx_client_health(gx_client *c, char **json, gx_error *err) {
    return gx__http_json(c, "GET", "/healthz", NULL, NULL, json, err);
}

int gx_client_ready(gx_client *c, int *ready, char **json, gx_error *err) {
    char *raw = NULL;
    int rc = gx__http_json(c, "GET", "/readyz", NULL, NULL, &raw, err);
    if (ready) *ready = rc == 0;
    if (rc && c->last_status == 503) {
        rc = 0;
        gx_error_clear(err);
    }
    if (json)
        *json = raw;
    else
        free(raw);
    return rc;
}

int gx_client_metrics(gx_client *c, char **text, gx_error *err) {
    return gx__http_json(c, "GET", "/metrics", NULL, NULL, text, err);
}
