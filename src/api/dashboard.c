/*
 * dashboard.c - the built-in dashboard: GET /dashboard (the page),
 * /dashboard/app.js and /dashboard/style.css, served from the copies the
 * build embeds (dashboard.h). The page is a client of the API like any
 * other: it holds no data and gets none from here, so these routes are
 * public (src/auth/roles.c); the page asks for a key and sends it to the
 * API itself.
 *
 * Every answer carries a Content-Security-Policy that lets the page load
 * only its own script and style and talk only to this origin (no inline
 * script or style, no framing, no form posts), nosniff, and no Referer.
 * Caching is by content: the ETag is the file's hash (made at build time),
 * Cache-Control no-cache makes the browser ask each time, and a matching
 * If-None-Match answers 304. After an upgrade the new files have new
 * ETags, so no browser keeps an old app.js beside a new page.
 *
 * The page links its files relatively (dashboard/app.js), so it works
 * behind a proxy that serves gexecd under a path prefix; for that its URL
 * must be exactly .../dashboard: "/dashboard/" is redirected there, and
 * any other spelling of these paths ("/dashboard/app.js/") is no route.
 */
#include <stdlib.h>
#include <string.h>

#include "dashboard.h"
#include "service.h"

#define CSP                                                                                                   \
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; "   \
    "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"

/* Sent with every file and every 304 (gx_http_header_list: static). */
static const char *const HEADERS[] = {
    "Content-Security-Policy", CSP,
    "X-Content-Type-Options", "nosniff",
    "Referrer-Policy", "no-referrer",
    "Cache-Control", "no-cache",
    NULL,
};

/* Each route's file and media type. */
static const struct page {
    const char *path;  /* the route's pattern, and the one path it serves */
    const char *file;  /* its name in gx__dashboard_files */
    const char *ctype;
} PAGES[] = {
    {"/dashboard", "index.html", "text/html; charset=utf-8"},
    {"/dashboard/app.js", "app.js", "text/javascript; charset=utf-8"},
    {"/dashboard/style.css", "style.css", "text/css; charset=utf-8"},
};
#define NPAGES (sizeof PAGES / sizeof PAGES[0])

static const gx__asset *asset(const char *name) {
    for (int i = 0; i < gx__dashboard_files_n; i++)
        if (!strcmp(gx__dashboard_files[i].name, name)) return &gx__dashboard_files[i];
    return NULL;
}

/* Whether an If-None-Match value names etag: "*", or a comma-separated
 * list of entity tags compared weakly (W/"x" matches "x"; RFC 9110
 * 13.1.2). Anything malformed matches nothing, and the file is sent. */
static int etag_listed(const char *h, const char *etag) {
    size_t n = strlen(etag);
    for (const char *p = h;;) {
        p += strspn(p, " \t,");
        if (!*p) return 0;
        if (*p == '*') return 1;
        if (!strncmp(p, "W/", 2)) p += 2;
        if (*p != '"') return 0;
        const char *end = strchr(p + 1, '"');
        if (!end) return 0;
        if ((size_t)(end + 1 - p) == n && !strncmp(p, etag, n)) return 1;
        p = end + 1;
    }
}

int gx__h_dashboard(void *app, gx_http_req *r) {
    (void)app;
    const struct page *pg = NULL;
    for (size_t i = 0; i < NPAGES && !pg; i++)
        if (!strcmp(PAGES[i].path, r->route->pattern)) pg = &PAGES[i];
    const gx__asset *a = pg ? asset(pg->file) : NULL;
    if (!a) { /* a route without its file: the build and this table disagree */
        gx_http_error(r, 500, GX_EINVAL, NULL, "the dashboard file of %s is not built in", r->route->pattern);
        return 0;
    }
    if (strcmp(r->path, pg->path)) {
        if (pg == &PAGES[0] && !strcmp(r->path, "/dashboard/")) {
            /* relative, so that it holds behind a path prefix too */
            gx_http_reply(r, 308, NULL, NULL, 0);
            gx_http_header_add(r, "Location", "../dashboard");
        } else {
            gx_http_error(r, 404, GX_ENOTFOUND, "path", "no route for %.200s", r->path);
        }
        return 0;
    }
    gx_http_header_list(r, HEADERS);
    gx_http_header_add(r, "ETag", a->etag);
    const char *inm = gx_http_header(r, "If-None-Match");
    if (inm && etag_listed(inm, a->etag)) {
        /* libmicrohttpd 0.9.75 adds "Content-Length: 0" to it, which caches
         * do not take for the file's (RFC 9111 3.2) */
        gx_http_reply(r, 304, NULL, NULL, 0);
        return 0;
    }
    char *body = malloc(a->len + 1);
    if (!body) {
        gx_http_error(r, 503, GX_ENOMEM, NULL, "out of memory");
        return 0;
    }
    memcpy(body, a->bytes, a->len);
    gx_http_reply(r, 200, pg->ctype, body, a->len);
    return 0;
}
