/*
 * test_isolation_gpu.c - device memory isolation between tenants on a real
 * GPU, through the engine's scheduling and the CUDA backend (issue 4, item
 * 8): tenant team-a runs jobs that leave a pattern in the memory a job's
 * buffers come from (each slot's mirror and the device pool); tenant team-b
 * then runs jobs whose output is what their fresh, never written buffers
 * hold. team-b must never see a byte of team-a's data. A control shows the
 * probe would see it: team-a's own later jobs on a slot it filled do (no
 * scrub inside one tenant). Last, team-a and team-b jobs submitted
 * interleaved in one batch: the device never runs them in one launch, and
 * every team-b job finds zeros.
 *
 * The probe is a test-only kernel: declared here, its CUDA side in
 * probe_gpu.cu, built into libgexec_cuda_probe.so (the backend's objects
 * plus the probe), which the engine loads instead of libgexec_cuda.so.
 * Plain C (the GPU machine has no cmocka); prints "skipped: no GPU"
 * without one.
 *
 *   test_isolation_gpu [path/to/libgexec_cuda_probe.so]
 *
 * (gexecd and its HTTP API are not built on the GPU machine, which has none
 * of the service libraries; the engine here is the one gexecd embeds, with
 * the tenants the service would give it.)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gexec/gexec.h"
#include "gpucheck.h"

#define MIRROR_BYTES (8u << 20) /* inside the slot mirror (32 MiB) */
#define POOL_BYTES (64u << 20)  /* from the device pool */
#define MAX_SLOTS 64

/* The host side of the probe: declaration only; the CPU has nothing to
 * show (the CUDA side is attached by libgexec_cuda_probe.so). */
static int probe_cpu(gx_kcall *c) { return gx_error_set(c->err, GX_EUNSUPPORTED, NULL, "test_probe is GPU-only"); }
static const gx_arg_spec probe_args[] = {
    {.name = "mode", .type = GX_ARG_INT, .min = 0, .max = 1, .doc = "0 read, 1 fill"},
    {.name = "bytes", .type = GX_ARG_INT, .min = 0, .max = 1 << 30, .doc = "mirror buffer bytes"},
    {.name = "pool_bytes", .type = GX_ARG_INT, .min = 0, .max = 1 << 30, .doc = "pool buffer bytes"},
};
static const gx_io_spec probe_out[] = {{.name = "counts", .dtypes = GX_DTM(GX_I64), .rank = 1}};
static uint64_t probe_mem(const gx_kcall *c) { return (uint64_t)(c->args[1] + c->args[2]) + 64; }
static const gx_kernel k_probe = {
    .abi_version = GX_KERNEL_ABI_VERSION, .struct_size = sizeof(gx_kernel), .name = "test_probe", .version = 1,
    .summary = "test only: what a fresh job buffer holds", .args = probe_args, .nargs = 3,
    .outputs = probe_out, .noutputs = 1, .mem_bytes = probe_mem, .run = {[GX_DEV_CPU] = probe_cpu},
};

typedef struct probe_res {
    int ok;
    int64_t mirror_nz, mirror_pat, pool_nz, pool_pat, slot, gpu;
    char why[320];
} probe_res;

static void probe_spec(gx_job_spec *s, gx_named_arg *a, const char *tenant, int mode) {
    a[0] = (gx_named_arg){.name = "mode", .value = mode};
    a[1] = (gx_named_arg){.name = "bytes", .value = MIRROR_BYTES};
    a[2] = (gx_named_arg){.name = "pool_bytes", .value = POOL_BYTES};
    gx_job_spec_init(s);
    s->tenant = tenant;
    s->kernel = "test_probe";
    s->args = a;
    s->nargs = 3;
    s->device = "gpu";
}

static probe_res result_of(gx_engine *e, gx_job_id id) {
    probe_res r;
    memset(&r, 0, sizeof r);
    gx_job_wait(e, id, 60000, NULL);
    gx_job_info info;
    gx_error err;
    if (gx_job_get(e, id, &info, &err) || info.state != GX_JOB_SUCCEEDED) {
        snprintf(r.why, sizeof r.why, "job %llu: %s %.200s", (unsigned long long)id, gx_job_state_name(info.state),
                 info.error);
        return r;
    }
    gx_output *o = NULL;
    int n = 0;
    if (gx_job_outputs(e, id, &o, &n, &err) || n != 1 || o[0].array->count != 6) {
        snprintf(r.why, sizeof r.why, "job %llu: no counts", (unsigned long long)id);
        gx_outputs_free(o, n);
        return r;
    }
    const int64_t *v = (const int64_t *)o[0].array->data;
    r.ok = 1;
    r.mirror_nz = v[0], r.mirror_pat = v[1], r.pool_nz = v[2], r.pool_pat = v[3], r.slot = v[4], r.gpu = v[5];
    gx_outputs_free(o, n);
    gx_job_forget(e, id);
    return r;
}

/* Submit n probes at once (tenants[i % ntenants], modes likewise), results
 * in res[0..n). */
static void run_probes(gx_engine *e, int n, const char *const *tenants, const int *modes, int nt, probe_res *res) {
    gx_job_spec specs[64];
    gx_named_arg args[64][3];
    gx_job_id ids[64];
    int codes[64];
    gx_error errs[64];
    for (int i = 0; i < n; i++) probe_spec(&specs[i], args[i], tenants[i % nt], modes[i % nt]);
    gx_submit_batch(e, specs, (size_t)n, ids, codes, errs);
    for (int i = 0; i < n; i++) {
        if (codes[i]) {
            memset(&res[i], 0, sizeof res[i]);
            snprintf(res[i].why, sizeof res[i].why, "submit: %.200s", errs[i].message);
            continue;
        }
        res[i] = result_of(e, ids[i]);
    }
}

/* key of a (gpu, slot) pair */
static int where(const probe_res *r) { return (int)(r->gpu * 8 + r->slot) % MAX_SLOTS; }

int main(int argc, char **argv) {
    gx_error err;
    if (gx_kernel_register(&k_probe, &err)) {
        printf("FAIL: cannot register test_probe: %s\n", err.message);
        return 1;
    }
    gx_engine_opts o;
    gx_engine_opts_init(&o);
    o.cpu_workers = 1;
    o.cuda_plugin = argc > 1 ? argv[1] : "libgexec_cuda_probe.so";
    gx_engine *e = NULL;
    if (gx_engine_create(&o, &e, &err)) {
        printf("FAIL: engine: %s\n", err.message);
        return 1;
    }
    int ngpu = 0;
    for (int i = 0; i < gx_device_count(e); i++) {
        gx_device_info d;
        if (!gx_device_get(e, i, &d) && d.kind == GX_DEV_CUDA) ngpu++;
    }
    if (!ngpu) {
        printf("skipped: no GPU (%s)\n", gx_engine_gpu_status(e));
        gx_engine_destroy(e);
        return 0;
    }
    printf("gpu status: %s\n", gx_engine_gpu_status(e));
    if (!gx_kernel_impl(&k_probe, GX_DEV_CUDA)) {
        printf("FAIL: the probe library did not attach test_probe's CUDA side (is %s libgexec_cuda_probe.so?)\n",
               o.cuda_plugin);
        gx_engine_destroy(e);
        return 1;
    }
    gx_tenant_opts ta = {.name = "team-a", .weight = 1}, tb = {.name = "team-b", .weight = 1};
    if (gx_tenant_add(e, &ta, NULL, &err) || gx_tenant_add(e, &tb, NULL, &err)) {
        printf("FAIL: tenants: %s\n", err.message);
        return 1;
    }
    const char *A[] = {"team-a"}, *B[] = {"team-b"}, *AB[] = {"team-a", "team-b"};
    const int FILL[] = {1}, READ[] = {0}, FILL_READ[] = {1, 0};
    probe_res res[64];
    int filled[MAX_SLOTS] = {0}, nfilled = 0;

    /* 1. team-a leaves its pattern: rounds of 16 concurrent fills spread
     * over the slots */
    for (int round = 0; round < 8; round++) {
        run_probes(e, 16, A, FILL, 1, res);
        for (int i = 0; i < 16; i++) {
            CHECK(res[i].ok, "fill: %s", res[i].why);
            if (!res[i].ok) continue;
            CHECK(res[i].mirror_pat == MIRROR_BYTES / 4 && res[i].pool_pat == POOL_BYTES / 4,
                  "fill did not write its pattern (%lld, %lld words)", (long long)res[i].mirror_pat,
                  (long long)res[i].pool_pat);
            if (!filled[where(&res[i])]++) nfilled++;
        }
    }
    printf("team-a filled %d slot(s)\n", nfilled);
    CHECK(nfilled > 0, "no fill ran");

    /* 2. control: team-a reading a slot it filled sees its own data (the
     * probe can see leftovers); pool blocks come back zeroed even so */
    int control = 0;
    for (int round = 0; round < 4; round++) {
        run_probes(e, 16, A, READ, 1, res);
        for (int i = 0; i < 16; i++) {
            CHECK(res[i].ok, "control read: %s", res[i].why);
            if (!res[i].ok) continue;
            CHECK(res[i].pool_nz == 0, "team-a's pool block held %lld nonzero bytes (pool memory must come back "
                                       "zeroed)", (long long)res[i].pool_nz);
            if (filled[where(&res[i])]) {
                control++;
                CHECK(res[i].mirror_pat == MIRROR_BYTES / 4,
                      "control: team-a on slot %lld saw %lld of %u pattern words: the probe cannot see leftovers",
                      (long long)res[i].slot, (long long)res[i].mirror_pat, MIRROR_BYTES / 4);
            }
        }
    }
    printf("control: %d team-a read(s) on filled slots saw team-a's pattern\n", control);
    CHECK(control > 0, "control never ran on a filled slot");

    /* 3. team-b's fresh buffers hold nothing of team-a's, on every slot */
    int seen[MAX_SLOTS] = {0}, crossed = 0, breads = 0;
    for (int round = 0; round < 8; round++) {
        run_probes(e, 16, B, READ, 1, res);
        for (int i = 0; i < 16; i++) {
            CHECK(res[i].ok, "team-b read: %s", res[i].why);
            if (!res[i].ok) continue;
            breads++;
            CHECK(res[i].mirror_nz == 0 && res[i].pool_nz == 0,
                  "team-b on gpu %lld slot %lld sees %lld nonzero mirror bytes (%lld pattern words) and %lld "
                  "nonzero pool bytes of team-a",
                  (long long)res[i].gpu, (long long)res[i].slot, (long long)res[i].mirror_nz,
                  (long long)res[i].mirror_pat, (long long)res[i].pool_nz);
            int w = where(&res[i]);
            if (filled[w] && !seen[w]++) crossed++;
        }
    }
    printf("team-b: %d reads, %d of team-a's filled slot(s) reached, all zero\n", breads, crossed);
    CHECK(crossed > 0, "team-b never ran on a slot team-a had filled: nothing was tested");

    /* 4. interleaved in one batch: A fills, B reads, alternately */
    int bad = 0, nb = 0;
    for (int round = 0; round < 8; round++) {
        run_probes(e, 32, AB, FILL_READ, 2, res);
        for (int i = 1; i < 32; i += 2) {
            CHECK(res[i].ok, "interleaved read: %s", res[i].why);
            if (!res[i].ok) continue;
            nb++;
            bad += res[i].mirror_nz != 0 || res[i].pool_nz != 0;
        }
    }
    CHECK(bad == 0, "interleaved: %d of %d team-b jobs saw nonzero bytes", bad, nb);
    printf("interleaved: %d team-b reads beside team-a fills, %d saw data\n", nb, bad);

    gx_engine_destroy(e);
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
