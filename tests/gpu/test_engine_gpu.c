/*
 * test_engine_gpu.c - the engine with the CUDA backend loaded: GPUs show up
 * as devices, every kernel submitted with device "gpu" gives what the same
 * job gives on "cpu", small batchable jobs merge, placement spreads work
 * over several GPUs, impossible jobs are refused at submit, and the health
 * loop (src/exec/health.c) heals a GPU after a hung kernel, and after a real
 * illegal address either heals it (a poison job then too) or, where only a
 * new process can use the GPU again, reports it lost through
 * on_device_lost; every wait is bounded. Plain C (the
 * GPU machine has no cmocka); prints "skipped: no GPU" without one.
 *
 *   test_engine_gpu [path/to/libgexec_cuda.so]
 */
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <time.h>

#include "gexec/gexec.h"
#include "gexec/gexec_fault.h"
#include "gpucheck.h"

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static double urand(void) {
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (double)(rng >> 11) / 9007199254740992.0;
}

static gx_array *rand_arr(gx_dtype dt, int nd, const int64_t *shape, double lo, double hi) {
    gx_array *a;
    if (gx_array_new(dt, nd, shape, &a, NULL)) abort();
    for (int64_t i = 0; i < a->count; i++) gx_array_set_f64(a, i, lo + (hi - lo) * urand());
    return a;
}

/* Submit one job; 0 (and err set) when refused. */
static gx_job_id submit_on(gx_engine *e, const char *dev, const char *kernel, const gx_named_arg *args, int na,
                           const gx_named_input *in, int ni, int64_t timeout_ms, gx_error *err) {
    gx_job_spec s;
    gx_job_spec_init(&s);
    s.kernel = kernel;
    s.args = args;
    s.nargs = na;
    s.inputs = in;
    s.ninputs = ni;
    s.device = dev;
    s.timeout_ms = timeout_ms;
    gx_job_id id = 0;
    if (gx_submit(e, &s, &id, NULL, err)) {
        printf("submit %s: %s\n", kernel, err->message);
        return 0;
    }
    return id;
}

/* Run one job on a device class and return its outputs (NULL on failure). */
static gx_output *run(gx_engine *e, const char *dev, const char *kernel, const gx_named_arg *args, int na,
                      const gx_named_input *in, int ni, int *nout, char *why, size_t cap) {
    gx_error err;
    gx_job_id id = submit_on(e, dev, kernel, args, na, in, ni, 0, &err);
    if (!id) {
        snprintf(why, cap, "submit: %s", err.message);
        return NULL;
    }
    gx_job_wait(e, id, 60000, NULL);
    gx_job_info info;
    gx_job_get(e, id, &info, NULL);
    if (info.state != GX_JOB_SUCCEEDED) {
        snprintf(why, cap, "%s on %s: %s", gx_job_state_name(info.state), info.device_name, info.error);
        return NULL;
    }
    if (!strcmp(dev, "gpu") && strncmp(info.device_name, "cuda", 4)) {
        snprintf(why, cap, "ran on %s, not a GPU", info.device_name);
        return NULL;
    }
    gx_output *o;
    if (gx_job_outputs(e, id, &o, nout, &err)) {
        snprintf(why, cap, "outputs: %s", err.message);
        return NULL;
    }
    return o;
}

/* ||gpu - cpu|| / ||cpu|| over every output. */
static double compare(const gx_output *g, const gx_output *c, int n) {
    double num = 0, den = 0;
    for (int i = 0; i < n; i++) {
        if (!g[i].array || !c[i].array) {
            if (g[i].array != c[i].array) return INFINITY;
            continue;
        }
        if (g[i].array->count != c[i].array->count) return INFINITY;
        for (int64_t k = 0; k < c[i].array->count; k++) {
            double a = gx_array_get_f64(g[i].array, k), b = gx_array_get_f64(c[i].array, k);
            num += (a - b) * (a - b);
            den += b * b;
        }
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

static void same_on_both(gx_engine *e, const char *kernel, const gx_named_arg *args, int na,
                         const gx_named_input *in, int ni, double tol) {
    char why[300] = "";
    int ng = 0, nc = 0;
    gx_output *g = run(e, "gpu", kernel, args, na, in, ni, &ng, why, sizeof why);
    CHECK(g != NULL, "%s on gpu: %s", kernel, why);
    gx_output *c = run(e, "cpu", kernel, args, na, in, ni, &nc, why, sizeof why);
    CHECK(c != NULL, "%s on cpu: %s", kernel, why);
    if (g && c) {
        double err = compare(g, c, nc);
        CHECK(err <= tol, "%s: gpu vs cpu relative error %.3g > %.3g", kernel, err, tol);
        printf("kernel %-12s gpu vs cpu rel err %.2e (bound %.0e)\n", kernel, err, tol);
    }
    gx_outputs_free(g, ng);
    gx_outputs_free(c, nc);
}

static gx_job_info final_info(gx_engine *e, gx_job_id id) {
    gx_job_info in;
    memset(&in, 0, sizeof in);
    gx_job_wait(e, id, 60000, NULL);
    gx_job_get(e, id, &in, NULL);
    return in;
}

/* Devices the engine could not recover in this process (on_device_lost). */
static atomic_int lost_calls;
static char lost_reason[256];
static int on_lost(void *ctx, int device, const char *reason, char *why_not, size_t cap) {
    (void)ctx, (void)device, (void)why_not, (void)cap;
    snprintf(lost_reason, sizeof lost_reason, "%s", reason);
    atomic_fetch_add(&lost_calls, 1);
    return 1; /* gexecd would re-exec now (bench_recovery measures that) */
}

/* Wait (at most 60 s) until device g has `n` recoveries and is healthy (0)
 * or is lost (1); -1 when neither happened. */
static int wait_recovered(gx_engine *e, int g, int64_t n, gx_device_info *d) {
    for (int k = 0; k < 12000; k++) {
        gx_device_get(e, g, d);
        if (d->recoveries >= n && d->healthy && !d->recovering) return 0;
        if (d->lost) return 1;
        struct timespec ts = {0, 5000000};
        nanosleep(&ts, NULL);
    }
    return -1;
}

/* The health loop on a real GPU. A hung kernel is stopped through its
 * host-mapped flag and the GPU reset in-process. A real illegal address is
 * sticky: where the driver lets this process reset the GPU it recovers in
 * place; where it does not (H100, CUDA 13: every call after the reset
 * answers cudaErrorDevicesUnavailable) the device must be `lost` with the
 * callback, never hang. Every wait is bounded. */
static void gpu_health(gx_engine *e, const gx_named_input *sxy, const gx_named_arg *a2) {
    int g = -1;
    for (int i = 0; i < gx_device_count(e) && g < 0; i++) {
        gx_device_info d;
        gx_device_get(e, i, &d);
        if (d.kind == GX_DEV_CUDA) g = i;
    }
    gx_device_info d;
    gx_error err;

    /* 1. a kernel that ignores its cancel: timed out, GPU reset, next job ok */
    gx_fault_spec h = {.point = GX_FAULT_DEVICE_HANG, .device = g, .count = 1, .code = 1};
    CHECK(gx_fault_arm(&h, &err) == 0, "arm: %s", err.message);
    gx_named_arg sp = {.name = "us", .value = 0};
    gx_job_id hj = submit_on(e, "gpu:0", "spin", &sp, 1, NULL, 0, 200, &err);
    gx_job_info hi = final_info(e, hj);
    CHECK(hi.state == GX_JOB_TIMED_OUT, "hung job ended %s (%s)", gx_job_state_name(hi.state), hi.error);
    int r = wait_recovered(e, g, 1, &d);
    CHECK(r >= 0, "hung kernel: neither recovered nor lost in 60 s: %s", d.status);
    if (r == 1) {
        printf("health: hung kernel: device lost, needs a new process (%s)\n", d.status);
        printf("health: illegal address: skipped (the device is already lost)\n");
        return;
    }
    gx_job_id next = submit_on(e, "gpu:0", "saxpy", a2, 1, sxy, 2, 0, &err);
    CHECK(final_info(e, next).state == GX_JOB_SUCCEEDED, "job after the hang did not succeed");
    printf("health: hung kernel recovered in-process in %.3f s\n", d.last_recovery_s);

    /* 2. a real illegal address */
    gx_fault_spec f = {.point = GX_FAULT_DEVICE_LAUNCH, .device = g, .count = 1, .code = 700};
    CHECK(gx_fault_arm(&f, &err) == 0, "arm: %s", err.message);
    gx_job_id ids[16];
    for (int i = 0; i < 16; i++) ids[i] = submit_on(e, "gpu:0", "saxpy", a2, 1, sxy, 2, 0, &err);
    r = wait_recovered(e, g, 2, &d);
    CHECK(r >= 0, "illegal address: neither recovered nor lost in 60 s: %s", d.status);
    int ok = 0, rerun = 0, lost_jobs = 0;
    for (int i = 0; i < 16; i++) {
        gx_job_info in;
        if (r == 0) {
            in = final_info(e, ids[i]);
        } else {
            gx_job_get(e, ids[i], &in, NULL);
        }
        ok += in.state == GX_JOB_SUCCEEDED;
        rerun += in.attempts > 1;
        lost_jobs += gx_job_state_is_final(in.state) && in.state != GX_JOB_SUCCEEDED;
    }
    CHECK(lost_jobs == 0, "illegal address: %d of 16 jobs failed instead of waiting or re-running", lost_jobs);
    if (r == 1) { /* a lost device re-queues nothing here: the new process restores its jobs */
        CHECK(atomic_load(&lost_calls) == 1, "illegal address: device lost, callback called %d times",
              atomic_load(&lost_calls));
        CHECK(d.lost && !d.healthy, "lost device is healthy %d lost %d", d.healthy, d.lost);
        printf("health: illegal address: device lost (needs a new process; callback: %s); %d jobs done, the rest "
               "wait for the restart\n",
               lost_reason, ok);
        return;
    }
    CHECK(ok == 16, "illegal address: %d of 16 jobs succeeded", ok);
    CHECK(rerun >= 1, "illegal address: no job was re-queued");
    printf("health: illegal address recovered in-process in %.3f s\n", d.last_recovery_s);

    /* 3. (only where in-process recovery works) a poison job */
    int64_t base = d.recoveries;
    f.count = -1;
    gx_fault_arm(&f, &err);
    gx_job_id p = submit_on(e, "gpu:0", "saxpy", a2, 1, sxy, 2, 0, &err);
    gx_job_info pi = final_info(e, p);
    gx_fault_clear(GX_FAULT_DEVICE_LAUNCH);
    CHECK(pi.state == GX_JOB_DEAD, "poison job ended %s (%s)", gx_job_state_name(pi.state), pi.error);
    CHECK(pi.error[0] && strstr(pi.error, "on attempts 1 and 2"), "poison history: %s", pi.error);
    CHECK(wait_recovered(e, g, base + 2, &d) >= 0, "no recovery after the poison job: %s", d.status);
    printf("health: %lld recoveries, last %.3f s\n", (long long)d.recoveries, d.last_recovery_s);
}

int main(int argc, char **argv) {
    gx_engine_opts o;
    gx_engine_opts_init(&o);
    o.cpu_workers = 4;
    o.hang_grace_ms = 1000;
    o.on_device_lost = on_lost;
    if (argc > 1) o.cuda_plugin = argv[1];
    gx_engine *e;
    gx_error err;
    if (gx_engine_create(&o, &e, &err)) {
        printf("engine: %s\n", err.message);
        return 1;
    }
    int ngpu = 0;
    for (int i = 0; i < gx_device_count(e); i++) {
        gx_device_info d;
        gx_device_get(e, i, &d);
        if (d.kind != GX_DEV_CUDA) continue;
        ngpu++;
        gx_device_telemetry t;
        int trc = gx_device_telemetry_get(e, i, &t);
        printf("device %s: %s, %d slots, %.1f GiB for jobs, healthy %d (%s); telemetry %s: util %.0f%% temp %.0fC "
               "power %.0fW\n",
               d.name, d.model, d.slots, (double)d.mem_total / (1 << 30), d.healthy, d.status, trc ? "n/a" : "ok",
               t.util_pct, t.temp_c, t.power_w);
        CHECK(d.healthy, "%s not healthy: %s", d.name, d.status);
        CHECK(d.mem_total > 0, "%s has no memory", d.name);
    }
    printf("gpu status: %s\n", gx_engine_gpu_status(e));
    if (!ngpu) {
        printf("skipped: no GPU\n");
        gx_engine_destroy(e);
        return 0;
    }

    /* every kernel: gpu against cpu through the engine */
    int64_t n = 100003, mk[2] = {257, 129}, kn[2] = {129, 193}, rc[2] = {5000, 7};
    gx_array *x = rand_arr(GX_F32, 1, &n, -1, 1), *y = rand_arr(GX_F32, 1, &n, -1, 1);
    gx_named_arg a2 = {.name = "a", .value = 2.5};
    gx_named_input xy[] = {{"x", x}, {"y", y}};
    same_on_both(e, "saxpy", &a2, 1, xy, 2, 1e-6);
    gx_array *xd = rand_arr(GX_F64, 1, &n, -1, 1);
    gx_named_input xin = {"x", xd};
    same_on_both(e, "reduce_sum", NULL, 0, &xin, 1, 1e-12);
    gx_array *A = rand_arr(GX_F32, 2, mk, -1, 1), *Bm = rand_arr(GX_F32, 2, kn, -1, 1);
    gx_named_input ab[] = {{"a", A}, {"b", Bm}};
    same_on_both(e, "gemm", NULL, 0, ab, 2, 1e-3); /* tf32 may be used on the GPU */
    gx_named_input keys = {"keys", x};
    same_on_both(e, "sort", NULL, 0, &keys, 1, 0);
    gx_named_arg h[] = {{.name = "bins", .value = 64}, {.name = "lo", .value = -1}, {.name = "hi", .value = 1}};
    gx_named_input hx = {"x", x};
    same_on_both(e, "histogram", h, 3, &hx, 1, 0);
    gx_array *m = rand_arr(GX_F32, 2, rc, -3, 7);
    gx_named_input mx = {"x", m};
    same_on_both(e, "normalize", NULL, 0, &mx, 1, 1e-5);
    gx_named_arg fr[] = {{.name = "lo", .value = -0.25}, {.name = "hi", .value = 0.5}};
    same_on_both(e, "filter_range", fr, 2, &hx, 1, 0);
    int64_t xs[2] = {64, 32}, w0s[2] = {32, 48}, b0s = 48, w1s[2] = {48, 10}, b1s = 10;
    gx_array *mxx = rand_arr(GX_F32, 2, xs, -1, 1), *w0 = rand_arr(GX_F32, 2, w0s, -0.3, 0.3),
             *b0 = rand_arr(GX_F32, 1, &b0s, -0.1, 0.1), *w1 = rand_arr(GX_F32, 2, w1s, -0.3, 0.3),
             *b1 = rand_arr(GX_F32, 1, &b1s, -0.1, 0.1);
    gx_named_input mlp[] = {{"x", mxx}, {"w0", w0}, {"b0", b0}, {"w1", w1}, {"b1", b1}};
    gx_named_arg sm = {.name = "softmax", .value = 1};
    same_on_both(e, "mlp_forward", &sm, 1, mlp, 5, 1e-3);
    int64_t lxs[2] = {2000, 8}, ly = 2000;
    gx_array *lx = rand_arr(GX_F64, 2, lxs, -1, 1), *lyy = rand_arr(GX_F64, 1, &ly, -1, 1);
    gx_named_input lin[] = {{"x", lx}, {"y", lyy}};
    gx_named_arg la[] = {{.name = "steps", .value = 200}, {.name = "lr", .value = 0.05}};
    same_on_both(e, "linreg_gd", la, 2, lin, 2, 1e-9);
    gx_named_arg sp = {.name = "us", .value = 2000};
    same_on_both(e, "spin", &sp, 1, NULL, 0, 0);

    /* 20,000 small saxpy jobs on the GPU through the engine: all right */
    int64_t sn = 1024;
    gx_array *sx = rand_arr(GX_F32, 1, &sn, -1, 1), *sy = rand_arr(GX_F32, 1, &sn, -1, 1);
    gx_named_input sxy[] = {{"x", sx}, {"y", sy}};
    const int N = 20000;
    gx_job_spec *specs = calloc(N, sizeof *specs);
    gx_job_id *ids = calloc(N, sizeof *ids);
    int *codes = calloc(N, sizeof *codes);
    for (int i = 0; i < N; i++) {
        gx_job_spec_init(&specs[i]);
        specs[i].kernel = "saxpy";
        specs[i].args = &a2;
        specs[i].nargs = 1;
        specs[i].inputs = sxy;
        specs[i].ninputs = 2;
        specs[i].device = "gpu";
    }
    CHECK(gx_submit_batch(e, specs, N, ids, codes, NULL) == N, "batch submit refused");
    CHECK(gx_engine_drain(e, 120000) == 0, "small jobs did not finish");
    int bad = 0, ongpu = 0;
    int perdev[64] = {0};
    for (int i = 0; i < N; i += 7) {
        gx_output *out;
        int no;
        gx_job_info info;
        gx_job_get(e, ids[i], &info, NULL);
        ongpu += !strncmp(info.device_name, "cuda", 4);
        if (info.device >= 0 && info.device < 64) perdev[info.device]++;
        if (gx_job_outputs(e, ids[i], &out, &no, NULL)) {
            bad++;
            continue;
        }
        const float *px = sx->data, *py = sy->data, *pr = out[0].array->data;
        for (int k = 0; k < sn; k++)
            if (fabsf(pr[k] - (2.5f * px[k] + py[k])) > 1e-5f) {
                bad++;
                break;
            }
        gx_outputs_free(out, no);
    }
    CHECK(bad == 0, "%d of the sampled small jobs were wrong", bad);
    CHECK(ongpu == (N + 6) / 7, "only %d of %d sampled jobs ran on a GPU", ongpu, (N + 6) / 7);
    if (ngpu > 1) {
        int used = 0;
        for (int d = 0; d < 64; d++) used += perdev[d] > 0;
        CHECK(used >= 2, "least_loaded placement used %d GPU(s) of %d", used, ngpu);
    }

    /* a job larger than any GPU is refused at submit */
    gx_job_spec big;
    gx_job_spec_init(&big);
    big.kernel = "spin";
    big.device = "gpu:99";
    gx_job_id bid;
    CHECK(gx_submit(e, &big, &bid, NULL, &err) == GX_ENODEVICE, "gpu:99 was not refused");

    gpu_health(e, sxy, &a2);

    gx_engine_stats st;
    gx_engine_stats_get(e, &st);
    printf("engine: %lld jobs succeeded, %lld failed\n", (long long)st.succeeded, (long long)st.failed);
    free(specs);
    free(ids);
    free(codes);
    gx_array *all[] = {x, y, xd, A, Bm, m, mxx, w0, b0, w1, b1, lx, lyy, sx, sy};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) gx_array_unref(all[i]);
    gx_engine_destroy(e);
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
