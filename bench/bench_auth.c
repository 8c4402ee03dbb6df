/*
 * bench_auth.c - what authentication costs a request (make bench).
 *
 *  - ns per gx_auth_key_verify of a good key (1000 keys stored), 1 and 2
 *    threads; of a well-formed unknown key; of a malformed one;
 *  - ns per gx_auth_bearer + verify, as the HTTP layer will call them;
 *  - ns per gx_auth_allowed, averaged over every rule of the table;
 *  - ns per token-bucket take, 1 thread, and 2 threads on one key and on
 *    two keys;
 *  - us per audit append: no sync, and synced per record (1 and 4
 *    threads sharing fdatasyncs) on the temporary folder's disk.
 *
 * Every figure is the median of GX_BENCH_REPS runs (default 3);
 * GX_BENCH_SCALE < 1 shortens the loops. Files go to $TMPDIR (or /tmp).
 */
#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clock.h"
#include "gexec/gexec_auth.h"
#include "benchutil.h"

/* GX_BENCH_REPS as for every benchmark, at most 32 (its sample arrays) */
static int reps(void) {
    int r = bench_reps();
    return r <= 32 ? r : 3;
}

static void die(const char *what, const gx_error *err) {
    fprintf(stderr, "bench_auth: %s: %s\n", what, err ? err->message : "failed");
    exit(1);
}

static volatile int sink;

/* ---- workers ---------------------------------------------------------------- */

typedef enum op { OP_VERIFY, OP_BEARER_VERIFY, OP_ALLOWED, OP_TAKE, OP_AUDIT } op;

typedef struct job {
    op what;
    gx_auth_keys *k;
    const char *token; /* key, or the header for OP_BEARER_VERIFY */
    gx_auth_limiter *l;
    const char *bucket;
    gx_audit *a;
    long n;
    pthread_barrier_t *start;
} job;

static void *run(void *arg) {
    job *j = arg;
    pthread_barrier_wait(j->start);
    size_t nrules;
    const gx_auth_rule *rules = gx_auth_rules(&nrules);
    size_t tlen = strlen(j->token ? j->token : "");
    int acc = 0;
    for (long i = 0; i < j->n; i++) {
        switch (j->what) {
        case OP_VERIFY: {
            gx_auth_principal p;
            acc += gx_auth_key_verify(j->k, j->token, tlen, 0, &p);
            break;
        }
        case OP_BEARER_VERIFY: {
            gx_auth_principal p;
            const char *t;
            size_t len;
            acc += gx_auth_bearer(j->token, &t, &len);
            acc += gx_auth_key_verify(j->k, t, len, 0, &p);
            break;
        }
        case OP_ALLOWED: {
            const gx_auth_rule *r = &rules[(size_t)i % nrules];
            int cr, cw;
            acc += gx_auth_allowed(GX_ROLE_SUBMITTER, r->method, r->pattern, &cr, &cw, NULL);
            break;
        }
        case OP_TAKE:
            acc += gx_auth_limiter_take(j->l, j->bucket, NULL);
            break;
        case OP_AUDIT: {
            gx_audit_record rec = {.key_id = "0123456789abcdef", .tenant = "acme", .role = "submitter",
                                   .remote = "10.0.0.7", .action = "job.submit", .target = "job/123456",
                                   .outcome = "ok", .detail = "kernel saxpy@1"};
            acc += gx_audit_append(j->a, &rec, NULL, NULL);
            break;
        }
        }
    }
    sink += acc;
    return NULL;
}

/* Wall ns per operation of one thread, nthreads threads each doing n. */
static double time_ops(job *proto, int nthreads, const char **buckets, long n) {
    pthread_t th[4];
    job jobs[4];
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, (unsigned)nthreads + 1);
    for (int t = 0; t < nthreads; t++) {
        jobs[t] = *proto;
        jobs[t].n = n;
        jobs[t].start = &start;
        if (buckets) jobs[t].bucket = buckets[t];
        pthread_create(&th[t], NULL, run, &jobs[t]);
    }
    pthread_barrier_wait(&start);
    int64_t t0 = gx__now_ns();
    for (int t = 0; t < nthreads; t++) pthread_join(th[t], NULL);
    int64_t dt = gx__now_ns() - t0;
    pthread_barrier_destroy(&start);
    return (double)dt / (double)n;
}

static double bench(job *proto, int nthreads, const char **buckets, long n) {
    int r = reps();
    double v[32];
    for (int k = 0; k < r; k++) v[k] = time_ops(proto, nthreads, buckets, n);
    return bench_median(v, r);
}

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb, (void)flag, (void)ftw;
    return remove(p);
}

int main(void) {
    long n = (long)(2000000 * bench_scale());
    if (n < 1000) n = 1000;
    char dir[256], path[300];
    snprintf(dir, sizeof dir, "%s/gx-bench-auth-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(dir)) die("mkdtemp", NULL);
    snprintf(path, sizeof path, "%s/auth.db", dir);

    gx_error err;
    gx_auth_keys *k;
    if (gx_auth_keys_open(path, &k, &err)) die("open keys", &err);
    char secret[GX_AUTH_SECRET_LEN], unknown[GX_AUTH_SECRET_LEN], header[GX_AUTH_SECRET_LEN + 16];
    int64_t t0 = gx__now_ns();
    if (gx_auth_ensure_admin(k, "default", NULL, secret, &(int){0}, &err)) die("admin", &err);
    for (int i = 0; i < 1000; i++) {
        char tenant[32];
        snprintf(tenant, sizeof tenant, "tenant-%d", i % 50);
        if (gx_auth_key_create(k, tenant, GX_ROLE_SUBMITTER, 0, "bench", secret, NULL, &err))
            die("create", &err);
    }
    double create_us = (double)(gx__now_ns() - t0) / 1001 / 1e3;
    if (gx_auth_key_generate(unknown, NULL, &err)) die("generate", &err);
    snprintf(header, sizeof header, "Bearer %s", secret);

    printf("bench_auth: median of %d runs, %ld operations per thread\n\n", reps(), n);
    printf("%-52s %12s\n", "operation", "ns/op");
    job v = {.what = OP_VERIFY, .k = k, .token = secret};
    printf("%-52s %12.1f\n", "verify, good key (1000 keys), 1 thread", bench(&v, 1, NULL, n));
    printf("%-52s %12.1f\n", "verify, good key, 2 threads (same key)", bench(&v, 2, NULL, n));
    job vu = v;
    vu.token = unknown;
    printf("%-52s %12.1f\n", "verify, unknown key id", bench(&vu, 1, NULL, n));
    job vm = v;
    vm.token = "Basic-not-a-key";
    printf("%-52s %12.1f\n", "verify, malformed", bench(&vm, 1, NULL, n));
    job bv = {.what = OP_BEARER_VERIFY, .k = k, .token = header};
    printf("%-52s %12.1f\n", "Bearer header + verify", bench(&bv, 1, NULL, n));
    job al = {.what = OP_ALLOWED};
    printf("%-52s %12.1f\n", "permission check (every rule in turn)", bench(&al, 1, NULL, n));

    gx_auth_limiter_config lc = {.rate = 1e9, .burst = 1e9};
    gx_auth_limiter *l;
    if (gx_auth_limiter_create(&lc, &l, &err)) die("limiter", &err);
    for (int i = 0; i < 10000; i++) {
        char b[32];
        snprintf(b, sizeof b, "%016x", i);
        gx_auth_limiter_take(l, b, NULL);
    }
    const char *same[] = {"0123456789abcdef", "0123456789abcdef"};
    const char *two[] = {"0123456789abcdef", "fedcba9876543210"};
    job tk = {.what = OP_TAKE, .l = l};
    printf("%-52s %12.1f\n", "token bucket take (10k buckets), 1 thread", bench(&tk, 1, same, n));
    printf("%-52s %12.1f\n", "token bucket take, 2 threads, one key", bench(&tk, 2, same, n));
    printf("%-52s %12.1f\n", "token bucket take, 2 threads, two keys", bench(&tk, 2, two, n));
    gx_auth_limiter_destroy(l);

    printf("\n%-52s %12s\n", "operation", "us/op");
    printf("%-52s %12.1f\n", "key create (durable, SQLite FULL sync)", create_us);
    long na = (long)(100000 * bench_scale());
    if (na < 100) na = 100;
    long nsync = (long)(2000 * bench_scale());
    if (nsync < 50) nsync = 50;
    int syncs[] = {-1, 0, 0};
    int threads[] = {1, 1, 4};
    const char *names[] = {"audit append, no sync", "audit append, synced per record, 1 thread",
                           "audit append, synced per record, 4 threads"};
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/audit-%d.log", dir, i);
        gx_audit_config ac = {.path = path, .sync_ms = syncs[i]};
        gx_audit *a;
        if (gx_audit_open(&ac, &a, &err)) die("audit", &err);
        job ap = {.what = OP_AUDIT, .a = a};
        long cnt = syncs[i] < 0 ? na : nsync;
        double ns = bench(&ap, threads[i], NULL, cnt);
        /* per record: the wall time spread over every thread's records */
        printf("%-52s %12.2f\n", names[i], ns / threads[i] / 1e3);
        gx_audit_close(a);
        gx_audit_report rep;
        if (gx_audit_verify(path, &rep, &err)) die("audit verify", &err);
        if (i == 0) {
            int64_t tv = gx__now_ns();
            gx_audit_verify(path, &rep, &err);
            printf("%-52s %12.2f\n", "audit verify, per record", (double)(gx__now_ns() - tv) / 1e3 / (double)rep.records);
        }
    }
    gx_auth_keys_close(k);
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return sink == 12345 ? 1 : 0;
}
