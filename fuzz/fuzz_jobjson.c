/*
 * fuzz_jobjson.c - libFuzzer target for the job JSON decoder: any bytes as
 * a request body go through the parser and, when they parse, through the
 * single-job and the batch decoders (blob inputs refused: no store here).
 * Built and run by scripts/fuzz.
 */
#include <stddef.h>
#include <stdint.h>

#include "api/jobjson.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    gx_error err;
    gx_error_clear(&err);
    json_t *j = gx_json_parse_body((const char *)data, size, &err);
    if (!j) return 0;
    gx_jobreq r;
    if (!gx_jobreq_decode(j, "default", NULL, NULL, 0, 0, NULL, &r, &err)) gx_jobreq_free(&r);
    json_t *jobs = json_object_get(j, "jobs");
    if (json_is_array(jobs)) {
        size_t n = json_array_size(jobs);
        for (size_t i = 0; i < n && i < 64; i++) {
            if (!gx_jobreq_decode(json_array_get(jobs, i), "default", NULL, NULL, 1, n, "jobs[0].", &r, &err))
                gx_jobreq_free(&r);
        }
    }
    json_decref(j);
    return 0;
}
