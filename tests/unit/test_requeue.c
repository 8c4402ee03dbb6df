/*
 * test_requeue.c - the engine's side of dead letters and durable
 * checkpoints: gx_job_requeue (a final dead or failed job runs again with a
 * fresh attempt budget; other states are refused) and the checkpoint hooks
 * (opts.on_checkpoint sees every save with its job, attempt and step; a job
 * submitted with spec.resume continues from that state and ends with the
 * same bits as an uninterrupted run).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

static gx_engine *new_engine(gx_engine_opts *o) {
    o->cpu_workers = 2;
    o->cuda_disable = 1;
    gx_engine *e = NULL;
    gx_error err;
    TU_OK(gx_engine_create(o, &e, &err), err);
    return e;
}

/* linreg_gd on a fixed problem; lr decides whether it fails (too large: the
 * loss overflows). */
typedef struct problem {
    gx_array *x, *y;
    gx_named_input in[2];
    gx_named_arg args[3];
} problem;

static void problem_init(problem *p, double lr, int64_t steps) {
    int64_t xs[2] = {64, 4};
    p->x = tu_rand_array(GX_F64, 2, xs, -1, 1);
    p->y = tu_rand1(GX_F64, 64, -1, 1);
    p->in[0] = (gx_named_input){.name = "x", .array = p->x};
    p->in[1] = (gx_named_input){.name = "y", .array = p->y};
    p->args[0] = (gx_named_arg){.name = "steps", .value = (double)steps};
    p->args[1] = (gx_named_arg){.name = "lr", .value = lr};
    p->args[2] = (gx_named_arg){.name = "checkpoint_every", .value = 25};
}

static void problem_spec(problem *p, gx_job_spec *sp) {
    gx_job_spec_init(sp);
    sp->kernel = "linreg_gd";
    sp->inputs = p->in;
    sp->ninputs = 2;
    sp->args = p->args;
    sp->nargs = 3;
    sp->max_attempts = 2;
}

static void problem_free(problem *p) {
    gx_array_unref(p->x);
    gx_array_unref(p->y);
}

static int wait_final(gx_engine *e, gx_job_id id, gx_job_info *info) {
    gx_error err;
    gx_error_clear(&err);
    TU_OK(gx_job_wait(e, id, 20000, NULL), err);
    TU_OK(gx_job_get(e, id, info, &err), err);
    return info->state;
}

/* The events of one job, "state:attempt" each, as the engine sends them. */
typedef struct evlog {
    pthread_mutex_t mu;
    gx_job_id job;
    char text[512];
} evlog;

static void on_events(void *ctx, const gx_event *ev, size_t n) {
    evlog *l = ctx;
    pthread_mutex_lock(&l->mu);
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(l->text);
        if (ev[i].job == l->job)
            snprintf(l->text + len, sizeof l->text - len, "%s%s:%d", len ? " " : "", gx_job_state_name(ev[i].state),
                     ev[i].attempt);
    }
    pthread_mutex_unlock(&l->mu);
}

static void requeue_failed_job(void **st) {
    (void)st;
    static evlog log = {.mu = PTHREAD_MUTEX_INITIALIZER};
    gx_engine_opts o;
    gx_engine_opts_init(&o);
    o.on_events = on_events;
    o.events_ctx = &log;
    gx_engine *e = new_engine(&o);
    problem p;
    problem_init(&p, 1e12, 50);
    gx_job_spec sp;
    problem_spec(&p, &sp);
    gx_job_id id;
    gx_error err;
    TU_OK(gx_submit(e, &sp, &id, NULL, &err), err);
    gx_job_info info;
    assert_int_equal(wait_final(e, id, &info), GX_JOB_FAILED);
    int before = info.attempts;
    /* back in the queue under its id, as the service re-queues it: the
     * attempts made, the next number (its store holds it, queued) as the
     * floor; it runs that attempt with a fresh budget */
    sp.id = id;
    sp.attempts_done = before;
    sp.attempt_floor = before + 1;
    sp.restored = 1;
    sp.stored_state = GX_JOB_QUEUED;
    gx_engine_sync_events(e);
    pthread_mutex_lock(&log.mu);
    log.job = id;
    pthread_mutex_unlock(&log.mu);
    TU_OK(gx_job_requeue(e, &sp, &err), err);
    assert_int_equal(wait_final(e, id, &info), GX_JOB_FAILED);
    assert_int_equal(info.attempts, before + 1);
    assert_int_equal(info.max_attempts, before + 2);
    gx_engine_sync_events(e);
    char want[64];
    snprintf(want, sizeof want, "running:%d failed:%d", before + 1, before + 1);
    pthread_mutex_lock(&log.mu);
    assert_string_equal(log.text, want); /* no second queued event, no number skipped */
    log.job = 0;
    pthread_mutex_unlock(&log.mu);
    sp.attempt_floor = 0;
    sp.restored = 0;
    /* a job that is not dead or failed is refused */
    problem ok;
    problem_init(&ok, 0.05, 50);
    gx_job_spec sp2;
    problem_spec(&ok, &sp2);
    gx_job_id id2;
    TU_OK(gx_submit(e, &sp2, &id2, NULL, &err), err);
    assert_int_equal(wait_final(e, id2, &info), GX_JOB_SUCCEEDED);
    sp2.id = id2;
    assert_int_equal(gx_job_requeue(e, &sp2, &err), GX_ESTATE);
    assert_string_equal(err.field, "state");
    /* bad arguments */
    sp2.id = 0;
    assert_int_equal(gx_job_requeue(e, &sp2, &err), GX_EINVAL);
    assert_int_equal(gx_job_requeue(e, NULL, &err), GX_EINVAL);
    /* a re-queue refused for its spec (a dependency that does not exist, a
     * tenant the engine does not know) leaves the failed job as it was: it
     * was released first, and gone */
    gx_job_id bogus = 999999;
    sp.ndeps = 1;
    sp.deps = &bogus;
    assert_int_equal(gx_job_requeue(e, &sp, &err), GX_EINVAL);
    assert_string_equal(err.field, "depends_on[0]");
    sp.ndeps = 0;
    sp.deps = NULL;
    sp.tenant = "nobody";
    assert_int_equal(gx_job_requeue(e, &sp, &err), GX_ENOTFOUND);
    sp.tenant = NULL;
    TU_OK(gx_job_get(e, id, &info, &err), err);
    assert_int_equal(info.state, GX_JOB_FAILED);
    assert_int_equal(info.attempts, before + 1);
    /* a forgotten job (the service's case: it lives only in the store) */
    TU_OK(gx_job_forget(e, id), err);
    sp.attempts_done = 7;
    TU_OK(gx_job_requeue(e, &sp, &err), err);
    assert_int_equal(wait_final(e, id, &info), GX_JOB_FAILED);
    assert_int_equal(info.attempts, 8);
    gx_engine_destroy(e);
    problem_free(&p);
    problem_free(&ok);
}

/* ---- checkpoint hooks ----------------------------------------------------------- */

typedef struct seen {
    pthread_mutex_t mu;
    int n;
    int64_t last_step;
    int attempt;
    gx_job_id job;
    gx_array *state[2]; /* the save after step 50 */
    int fail;           /* answer this */
} seen;

static int on_ckpt(void *ctx, gx_job_id id, int attempt, int64_t step, gx_array *const *state, int n) {
    seen *s = ctx;
    pthread_mutex_lock(&s->mu);
    s->n++;
    assert_true(step > s->last_step);
    s->last_step = step;
    s->attempt = attempt;
    s->job = id;
    if (step == 50 && n == 2 && !s->state[0]) {
        s->state[0] = gx_array_ref(state[0]);
        s->state[1] = gx_array_ref(state[1]);
    }
    pthread_mutex_unlock(&s->mu);
    return s->fail;
}

static void checkpoint_hooks_and_resume(void **st) {
    (void)st;
    static seen s = {.mu = PTHREAD_MUTEX_INITIALIZER};
    gx_engine_opts o;
    gx_engine_opts_init(&o);
    o.on_checkpoint = on_ckpt;
    o.checkpoint_ctx = &s;
    gx_engine *e = new_engine(&o);
    problem p;
    problem_init(&p, 0.05, 200);
    gx_job_spec sp;
    problem_spec(&p, &sp);
    gx_job_id full;
    gx_error err;
    TU_OK(gx_submit(e, &sp, &full, NULL, &err), err);
    gx_job_info info;
    assert_int_equal(wait_final(e, full, &info), GX_JOB_SUCCEEDED);
    assert_int_equal(s.n, 200 / 25);
    assert_int_equal(s.last_step, 200);
    assert_int_equal(s.attempt, 1);
    assert_int_equal(s.job, full);
    assert_non_null(s.state[0]);
    /* from the save after step 50: the same bits */
    gx_job_spec rs = sp;
    rs.resume = s.state;
    rs.nresume = 2;
    rs.resume_step = 50;
    s.last_step = 50;
    s.n = 0;
    gx_job_id resumed;
    TU_OK(gx_submit(e, &rs, &resumed, NULL, &err), err);
    assert_int_equal(wait_final(e, resumed, &info), GX_JOB_SUCCEEDED);
    assert_int_equal(s.n, (200 - 50) / 25); /* it did not start over */
    gx_output *a, *b;
    int na, nb;
    TU_OK(gx_job_outputs(e, full, &a, &na, &err), err);
    TU_OK(gx_job_outputs(e, resumed, &b, &nb, &err), err);
    assert_int_equal(na, nb);
    for (int i = 0; i < na; i++) {
        assert_int_equal(a[i].array->nbytes, b[i].array->nbytes);
        assert_memory_equal(a[i].array->data, b[i].array->data, a[i].array->nbytes);
    }
    gx_outputs_free(a, na);
    gx_outputs_free(b, nb);
    /* a hook that fails stops the run with its code: a store fault, so the
     * job is tried again and ends dead when its attempts are used up */
    s.fail = GX_ESTORE;
    s.last_step = 0;
    gx_job_id failing;
    TU_OK(gx_submit(e, &sp, &failing, NULL, &err), err);
    assert_int_equal(wait_final(e, failing, &info), GX_JOB_DEAD);
    assert_int_equal(info.attempts, sp.max_attempts);
    assert_int_equal(info.error_code, GX_ESTORE);
    gx_engine_destroy(e);
    gx_array_unref(s.state[0]);
    gx_array_unref(s.state[1]);
    problem_free(&p);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(requeue_failed_job),
        cmocka_unit_test(checkpoint_hooks_and_resume),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
