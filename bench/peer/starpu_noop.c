/*
 * starpu_noop.c - the StarPU peer of bench_engine's no-op job figures.
 *
 * The engine issue names StarPU 1.3 (Debian's libstarpu-dev) as the peer for
 * engine overhead, so bench_engine runs this program in the same run and puts
 * its figures beside gexec's. It submits N empty CPU tasks (a codelet whose
 * cpu function does nothing, no data handles) one at a time with
 * starpu_task_submit, then waits with starpu_task_wait_for_all, and prints
 * one key=value line per figure on stdout:
 *
 *   starpu_version                       the runtime's version
 *   starpu_tasks, starpu_bytes_tasks     N of the timed runs, of the bytes run
 *   starpu_single_1w, starpu_single_2w   tasks/s, eager scheduler
 *   starpu_prio_2w                       tasks/s, "prio" scheduler, random
 *                                        priorities in -10..10
 *   starpu_deps_2w                       tasks/s, eager, each task depending
 *                                        on one random earlier task
 *                                        (starpu_task_declare_deps_array)
 *   starpu_tagdeps_2w                    the same through tags
 *                                        (starpu_tag_declare_deps_array)
 *   starpu_bytes_per_task                RSS growth per queued task: N tasks
 *                                        submitted while the workers are
 *                                        paused (starpu_pause), divided by N
 *
 * Each figure is the median of GX_BENCH_REPS runs (default 3); N scales with
 * GX_BENCH_SCALE like bench_engine. StarPU is initialised afresh for every run
 * (starpu_init/starpu_shutdown), outside the timed part, so the worker count
 * and the scheduler can change between runs.
 *
 * StarPU has no batch submit; bench_engine compares its batched figures with
 * the per-task ones here and says so.
 *
 * Dependencies: starpu_task_declare_deps_array needs the earlier task to
 * still exist, so in the deps run every task is created with destroy = 0 and
 * all are destroyed after starpu_task_wait_for_all (not timed). gexec keeps
 * finished job records too, so both sides hold every job until the end.
 *
 * This is a benchmark driver, not engine code: on any StarPU error it prints
 * the reason and exits non-zero; bench_engine then shows the peer as failed.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <starpu.h>
#include "../benchutil.h"

/* ---- helpers -------------------------------------------------------------- */

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static long rss_bytes(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = 0, rss = 0;
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &rss) != 2) rss = 0;
        fclose(f);
    }
    return rss * sysconf(_SC_PAGESIZE);
}

static uint64_t rnd_state = 88172645463325252ull;

static uint64_t rnd(void) { /* xorshift64, as in bench_engine */
    rnd_state ^= rnd_state << 13, rnd_state ^= rnd_state >> 7, rnd_state ^= rnd_state << 17;
    return rnd_state;
}

static void die(const char *what, int rc) {
    fprintf(stderr, "starpu_noop: %s failed (%d: %s)\n", what, rc, strerror(rc < 0 ? -rc : rc));
    exit(1);
}

/* ---- the empty codelet ------------------------------------------------------ */

static void noop_cpu(void *buffers[], void *arg) {
    (void)buffers;
    (void)arg;
}

static struct starpu_codelet noop_cl = {
    .where = STARPU_CPU,
    .cpu_funcs = {noop_cpu},
    .nbuffers = 0,
    .name = "noop",
    /* no .model: nothing to calibrate */
};

/* ---- one run ------------------------------------------------------------------- */

typedef enum { MODE_PLAIN, MODE_PRIO, MODE_DEPS, MODE_TAGS } mode;

static void init(int workers, const char *sched) {
    struct starpu_conf conf;
    int rc = starpu_conf_init(&conf);
    if (rc) die("starpu_conf_init", rc);
    conf.ncpus = workers;
    conf.ncuda = 0;
    conf.nopencl = 0;
    conf.sched_policy_name = sched;
    conf.calibrate = 0;
    rc = starpu_init(&conf);
    if (rc) die("starpu_init", rc);
    if ((int)starpu_cpu_worker_get_count() != workers) {
        fprintf(stderr, "starpu_noop: asked for %d CPU workers, got %u\n", workers,
                starpu_cpu_worker_get_count());
        exit(1);
    }
}

/* Tasks/s for n empty tasks submitted one at a time, timed from the first
 * submit to the end of starpu_task_wait_for_all. */
static double run(int workers, mode m, long n) {
    init(workers, m == MODE_PRIO ? "prio" : "eager");
    struct starpu_task **all = NULL;
    if (m == MODE_DEPS && !(all = malloc((size_t)n * sizeof *all))) die("malloc", -12);
    int64_t t0 = now_ns();
    for (long i = 0; i < n; i++) {
        struct starpu_task *t = starpu_task_create();
        t->cl = &noop_cl;
        if (m == MODE_PRIO) t->priority = (int)(rnd() >> 32) % 21 - 10;
        if (m == MODE_DEPS) {
            t->destroy = 0;
            all[i] = t;
            if (i > 0) {
                struct starpu_task *dep = all[rnd() % (uint64_t)i];
                starpu_task_declare_deps_array(t, 1, &dep);
            }
        }
        if (m == MODE_TAGS) {
            t->use_tag = 1;
            t->tag_id = (starpu_tag_t)i + 1;
            if (i > 0) {
                starpu_tag_t dep = (starpu_tag_t)(rnd() % (uint64_t)i) + 1;
                starpu_tag_declare_deps_array(t->tag_id, 1, &dep);
            }
        }
        int rc = starpu_task_submit(t);
        if (rc) die("starpu_task_submit", rc);
    }
    int rc = starpu_task_wait_for_all();
    if (rc) die("starpu_task_wait_for_all", rc);
    double secs = (double)(now_ns() - t0) / 1e9;
    if (all) {
        for (long i = 0; i < n; i++) starpu_task_destroy(all[i]);
        free(all);
    }
    starpu_shutdown();
    return (double)n / secs;
}

/* RSS growth per queued task: n tasks submitted while the workers are
 * paused, so none has run yet. */
static double run_bytes(long n) {
    init(2, "eager");
    starpu_pause();
    long rss0 = rss_bytes();
    for (long i = 0; i < n; i++) {
        struct starpu_task *t = starpu_task_create();
        t->cl = &noop_cl;
        int rc = starpu_task_submit(t);
        if (rc) die("starpu_task_submit", rc);
    }
    long rss1 = rss_bytes();
    starpu_resume();
    int rc = starpu_task_wait_for_all();
    if (rc) die("starpu_task_wait_for_all", rc);
    starpu_shutdown();
    return (double)(rss1 - rss0) / (double)n;
}

int main(void) {
    /* quiet, no performance-model files, no thread pinning on a shared box;
     * the environment wins where the caller set something else */
    setenv("STARPU_SILENT", "1", 0);
    setenv("STARPU_CALIBRATE", "0", 0);
    setenv("STARPU_WORKERS_NOBIND", "1", 0);
    setenv("STARPU_FXT_TRACE", "0", 0);
    setenv("STARPU_NCUDA", "0", 0);
    setenv("STARPU_NOPENCL", "0", 0);
    unsetenv("STARPU_NCPU"); /* the conf sets the worker count */
    unsetenv("STARPU_SCHED");

    int R = bench_reps();
    if (R > 15) R = 15;
    double sc = bench_scale();
    long n_single = (long)(400000 * sc), n_bytes = (long)(1000000 * sc);
    if (n_single < 1) n_single = 1;
    if (n_bytes < 1) n_bytes = 1;

    int major, minor, release;
    starpu_get_version(&major, &minor, &release);
    printf("starpu_version=%d.%d.%d\n", major, minor, release);
    printf("starpu_tasks=%ld\n", n_single);
    printf("starpu_bytes_tasks=%ld\n", n_bytes);
    fflush(stdout);

    static const struct {
        const char *key;
        int workers;
        mode m;
    } cfg[] = {
        {"starpu_single_1w", 1, MODE_PLAIN},
        {"starpu_single_2w", 2, MODE_PLAIN},
        {"starpu_prio_2w", 2, MODE_PRIO},
        {"starpu_deps_2w", 2, MODE_DEPS},
        {"starpu_tagdeps_2w", 2, MODE_TAGS},
    };
    double v[16];
    for (size_t c = 0; c < sizeof cfg / sizeof cfg[0]; c++) {
        for (int i = 0; i < R; i++) v[i] = run(cfg[c].workers, cfg[c].m, n_single);
        printf("%s=%.0f\n", cfg[c].key, bench_median(v, R));
        fflush(stdout);
    }
    for (int i = 0; i < R; i++) v[i] = run_bytes(n_bytes);
    printf("starpu_bytes_per_task=%.0f\n", bench_median(v, R));
    return 0;
}
