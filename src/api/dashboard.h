/*
 * dashboard.h - the files of the built-in dashboard as the build embeds
 * them into gexecd: cmake/embed.cmake writes this table from the files of
 * src/api/dashboard/ into dashboard_files.c in the build folder, again
 * whenever one of them changes. dashboard.c serves them.
 */
#ifndef GX_API_DASHBOARD_H
#define GX_API_DASHBOARD_H

#include <stddef.h>

typedef struct gx__asset {
    const char *name;           /* file name in src/api/dashboard/ ("app.js") */
    const unsigned char *bytes; /* its bytes, NUL after the last (static) */
    size_t len;                 /* bytes, the NUL not counted */
    const char *etag;           /* "\"<16 hex of its SHA-256>\"", ready for the header */
} gx__asset;

/* The embedded files (generated). */
extern const gx__asset gx__dashboard_files[];
extern const int gx__dashboard_files_n;

#endif
