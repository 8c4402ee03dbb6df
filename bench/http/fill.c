/*
 * fill.c - writes a gexecd store holding JOBS queued jobs, for the restart
 * figure of the HTTP benchmark (bench/http/run.sh).
 *
 *   fill DATA_DIR JOBS
 *
 * The rows are those gexecd's admitter writes for POST /v1/jobs with the
 * body {"kernel":"spin"} (same store calls, same canonical spec, tenant
 * "default", state queued, one submission event each), inserted through
 * the store's own group commit in transactions of 10,000. Submitting a
 * million jobs over HTTP to a daemon that must not run them would measure
 * the same rows at far greater cost; run.sh checks the rows against ones
 * the daemon wrote.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gexec/gexec.h"
#include "gexec/gexec_store.h"

#define CHUNK 10000

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: fill DATA_DIR JOBS\n");
        return 2;
    }
    long total = atol(argv[2]);
    char path[4096], blobs[4096];
    snprintf(path, sizeof path, "%s/gexec.db", argv[1]);
    snprintf(blobs, sizeof blobs, "%s/blobs", argv[1]);
    gx_store_config sc;
    gx_store_config_init(&sc);
    sc.path = path;
    sc.blob_dir = blobs;
    gx_store *st;
    gx_error err;
    if (gx_store_open(&sc, &st, &err)) {
        fprintf(stderr, "fill: %s\n", err.message);
        return 1;
    }
    uint64_t next = 0;
    gx_store_max_job_id(st, &next, NULL);
    next++;
    gx_store_job *rows = calloc(CHUNK, sizeof *rows);
    gx_store_insert_result *res = calloc(CHUNK, sizeof *res);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t now = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
    for (long done = 0; done < total;) {
        size_t n = (size_t)(total - done < CHUNK ? total - done : CHUNK);
        for (size_t i = 0; i < n; i++)
            rows[i] = (gx_store_job){.id = next++, .tenant = "default", .kernel = "spin@1",
                                     .spec_json = "{\"kernel\":\"spin\"}", .state = GX_JOB_QUEUED,
                                     .submit_ns = now, .device = -1};
        int64_t ins = gx_store_insert_jobs(st, rows, n, res, &err);
        if (ins != (int64_t)n) {
            fprintf(stderr, "fill: inserted %lld of %zu: %s\n", (long long)ins, n, err.message);
            return 1;
        }
        done += (long)n;
    }
    gx_store_close(st);
    free(rows);
    free(res);
    return 0;
}
