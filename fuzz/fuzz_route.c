/*
 * fuzz_route.c - libFuzzer target for request routing and ids: the input
 * is "METHOD path"; it is matched against gexecd's route table, and every
 * captured parameter goes through the job id and blob id parsers.
 * Built and run by scripts/fuzz.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api/jobjson.h"
#include "api/service.h"
#include "gexec/gexec_store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > 8192) return 0;
    char *s = malloc(size + 1);
    if (!s) return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    char *sp = strchr(s, ' ');
    const char *method = "GET", *path = s;
    if (sp) {
        *sp = '\0';
        method = s;
        path = sp + 1;
    }
    char buf[1024], allow[64];
    const gx_route *rt = NULL;
    const char *params[GX_HTTP_MAX_PARAMS];
    int np = 0;
    if (gx_http_route_match(gx__routes, gx__nroutes, method, path, buf, sizeof buf, &rt, params, &np, allow,
                            sizeof allow) == 0) {
        for (int i = 0; i < np; i++) {
            (void)gx_job_id_parse(params[i]);
            (void)gx_store_blob_id_valid(params[i]);
        }
    }
    (void)gx_job_id_parse(path);
    free(s);
    return 0;
}
