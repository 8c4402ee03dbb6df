/*
 * service.c - gexecd's service lifecycle, admission (group commit), event
 * persistence, restore after restart, event streams and the blob cache.
 * See service.h for the design.
 */
#include "service.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "fsdir.h"
#include "hmap.h"
#include "log.h"

/* ---- blob cache ------------------------------------------------------- */

/* Decoded blob arrays by id, so a blob used by many jobs is read and parsed
 * once. Small and FIFO: ownership is checked on every use. */
#define BCACHE_SLOTS 256
#define BCACHE_MAX_BYTES ((size_t)256 << 20)

typedef struct gx__bcache {
    char id[BCACHE_SLOTS][GX_STORE_BLOB_ID_LEN];
    gx_array *arr[BCACHE_SLOTS];
    size_t bytes;
    int next;
} gx__bcache;

int gx__svc_blob_load(void *svc, const char *tenant, const char *id, gx_array **out, gx_error *err) {
    gx_service *s = svc;
    if (!gx_store_blob_id_valid(id))
        return gx_error_set(err, GX_EINVAL, "blob", "'%.80s' is not a blob id (sha256:<64 lowercase hex>)", id);
    int fd = -1;
    int64_t size;
    int rc = gx_store_blob_open_fd(s->store, tenant, id, &fd, &size, err);
    if (rc) {
        if (rc == GX_ENOTFOUND) gx_error_set(err, GX_ENOTFOUND, "blob", "no blob %s", id);
        return rc;
    }
    /* read through the descriptor's own name: the file checked, not
     * whatever the blob's path names by now */
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    pthread_mutex_lock(&s->bmu);
    for (int i = 0; i < BCACHE_SLOTS; i++)
        if (s->bcache->arr[i] && !strcmp(s->bcache->id[i], id)) {
            *out = gx_array_ref(s->bcache->arr[i]);
            pthread_mutex_unlock(&s->bmu);
            close(fd);
            return 0;
        }
    pthread_mutex_unlock(&s->bmu);
    rc = gx_npy_read_file(path, out, err);
    close(fd);
    if (rc) return rc;
    if ((*out)->nbytes > BCACHE_MAX_BYTES / 4) return 0;
    pthread_mutex_lock(&s->bmu);
    gx__bcache *c = s->bcache;
    while (c->bytes + (*out)->nbytes > BCACHE_MAX_BYTES || c->arr[c->next]) {
        int v = c->next;
        if (c->arr[v]) {
            c->bytes -= c->arr[v]->nbytes;
            gx_array_unref(c->arr[v]);
            c->arr[v] = NULL;
        }
        if (c->bytes + (*out)->nbytes <= BCACHE_MAX_BYTES) break;
        c->next = (c->next + 1) % BCACHE_SLOTS;
    }
    snprintf(c->id[c->next], sizeof c->id[0], "%s", id);
    c->arr[c->next] = gx_array_ref(*out);
    c->bytes += (*out)->nbytes;
    c->next = (c->next + 1) % BCACHE_SLOTS;
    pthread_mutex_unlock(&s->bmu);
    return 0;
}

json_t *gx__svc_outputs_json(gx_service *s, const char *tenant, gx_output *outs, int n, gx_error *err) {
    json_t *o = json_object();
    for (int i = 0; i < n; i++) {
        gx_array *a = outs[i].array;
        if (!a) continue;
        if (a->count <= GX_INLINE_MAX_ELEMS) {
            json_object_set_new(o, outs[i].name, gx_array_json(a));
            continue;
        }
        void *buf;
        size_t len;
        char id[GX_STORE_BLOB_ID_LEN];
        int rc = gx_npy_write_mem(a, &buf, &len, err);
        if (!rc) {
            rc = gx_store_blob_put(s->store, tenant, buf, len, id, err);
            free(buf);
        }
        if (rc) {
            json_decref(o);
            return NULL;
        }
        json_t *shape = json_array();
        for (int d = 0; d < a->ndim; d++) json_array_append_new(shape, json_integer(a->shape[d]));
        char url[128];
        snprintf(url, sizeof url, "/v1/blobs/%s", id);
        json_object_set_new(o, outs[i].name,
                            json_pack("{s:s,s:o,s:s,s:s}", "dtype", gx_dtype_name(a->dtype), "shape", shape, "blob", id,
                                      "url", url));
    }
    return o;
}

/* ---- admission ------------------------------------------------------------ */

static void inflight_remove(gx_service *s, gx__admit *a);

void gx__admit_free(gx__admit *a) {
    if (!a) return;
    if (a->id_lo && a->svc) inflight_remove(a->svc, a); /* never committed */
    if (a->qn) gx_tenant_admit_release(a->qengine, a->qtenant, a->qn);
    for (size_t i = 0; i < a->n; i++) {
        gx__svc_unpin_deps(a->svc, &a->jobs[i]);
        gx_jobreq_free(&a->jobs[i]);
    }
    for (size_t i = 0; a->labels && i < a->total; i++) free(a->labels[i]);
    if (a->jobs != &a->one.job) { /* else all of them are in place (a->one) */
        free(a->jobs);
        free(a->codes);
        free(a->errs);
        free(a->ids);
        free(a->dup);
    }
    if (a->rows != &a->one.row) {
        free(a->labels);
        free(a->rows);
        free(a->res);
        free(a->kname);
    }
    free(a->order);
    free(a->same);
    free(a);
}

static void admit_reply(gx_service *s, gx__admit *a);

/* The answered admissions of a list: their audit records in one write,
 * then each connection resumed, each admission freed. */
static void admit_finish(gx_service *s, gx__admit *head) {
    size_t n = 0;
    for (gx__admit *a = head; a; a = a->next) n++;
    gx_http_req **rs = s->audit ? calloc(n ? n : 1, sizeof *rs) : NULL;
    if (rs) {
        n = 0;
        for (gx__admit *a = head; a; a = a->next) rs[n++] = a->req;
        gx__svc_audit_done_n(s, rs, n);
        free(rs);
    }
    for (gx__admit *a = head, *next; a; a = next) {
        next = a->next;
        gx_http_complete(a->req);
        gx__admit_free(a);
    }
}

static json_t *labels_of(const gx_job_spec *sp);
static void admit_group(gx_service *s, gx__admit *head);

/* An admission leaves the list of those in flight (its commit is over):
 * listings may pass its ids. */
static void inflight_remove(gx_service *s, gx__admit *a) {
    if (!a->id_lo) return;
    pthread_mutex_lock(&s->idmu);
    if (a->iprev) a->iprev->inext = a->inext;
    else s->inflight = a->inext;
    if (a->inext) a->inext->iprev = a->iprev;
    else s->inflight_tail = a->iprev;
    a->id_lo = 0;
    pthread_cond_broadcast(&s->idcv);
    pthread_mutex_unlock(&s->idmu);
}

/* idmu held. Admissions go in at the head in the order of their ids, so
 * the tail holds the lowest in flight. */
static gx_job_id watermark_locked(gx_service *s) {
    return s->inflight_tail ? s->inflight_tail->id_lo - 1 : (gx_job_id)atomic_load(&s->next_id) - 1;
}

gx_job_id gx__svc_list_watermark(gx_service *s) {
    pthread_mutex_lock(&s->idmu);
    gx_job_id w = watermark_locked(s);
    pthread_mutex_unlock(&s->idmu);
    return w;
}

gx_job_id gx__svc_list_watermark_wait(gx_service *s, gx_job_id after, int64_t timeout_ms) {
    struct timespec dl = gx__realtime_in(timeout_ms * 1000000);
    pthread_mutex_lock(&s->idmu);
    gx_job_id w;
    while ((w = watermark_locked(s)) <= after && pthread_cond_timedwait(&s->idcv, &s->idmu, &dl) != ETIMEDOUT) {
    }
    pthread_mutex_unlock(&s->idmu);
    return w;
}

/* An admission's commit is over (committed, or failed with rc < 0). */
static void admit_settle(gx__admit *a, int64_t rc, const gx_error *err) {
    inflight_remove(a->svc, a); /* committed (or not at all): listings may pass it */
    a->commit_secs = (double)(gx__now_ns() - a->t0) / 1e9;
    if (rc < 0) {
        a->store_failed = 1;
        snprintf(a->store_msg, sizeof a->store_msg,
                 "the store could not commit the request (%.200s); nothing was accepted, retry later",
                 err ? err->message : gx_err_name((int)rc));
    }
    a->next = NULL;
}

/* Hand a list of settled admissions to the admitter threads. */
static void admit_queue(gx_service *s, gx__admit *head, gx__admit *tail) {
    pthread_mutex_lock(&s->amu);
    int was_empty = !s->aq_head;
    if (s->aq_tail)
        s->aq_tail->next = head;
    else
        s->aq_head = head;
    s->aq_tail = tail;
    if (was_empty) pthread_cond_signal(&s->acv);
    pthread_mutex_unlock(&s->amu);
}

/* The store's callback for an admission's insert (committer thread):
 * gathered for admit_after_callbacks, which runs once the commit's last
 * callback has (committer thread only: no lock). */
static void admit_committed(void *ctx, int64_t rc, const gx_error *err) {
    gx__admit *a = ctx;
    gx_service *s = a->svc;
    admit_settle(a, rc, err);
    if (pthread_equal(pthread_self(), a->submitter)) { /* nothing to insert: called at once, on the HTTP thread */
        admit_queue(s, a, a);
        return;
    }
    if (s->cq_tail)
        s->cq_tail->next = a;
    else
        s->cq_head = a;
    s->cq_tail = a;
}

/* A batch job's stored spec names its "@N" dependencies by the ids they
 * were given: "@N" means something only within its batch, and a restart
 * (or a requeue) decodes the spec on its own. Before, such a job still
 * unfinished at a restart was failed at restore ("@N references work only
 * in a batch"). 0, or GX_E* with a->errs[i] set. */
static int stored_batch_deps(gx__admit *a, size_t i, const size_t *same) {
    json_t *deps = json_object_get(a->jobs[i].root, "depends_on");
    size_t k;
    json_t *v;
    json_array_foreach(deps, k, v) {
        const char *str = json_string_value(v);
        if (!str || str[0] != '@') continue;
        size_t t = (size_t)strtoul(str + 1, NULL, 10); /* checked at decode: < a->n */
        if (a->codes[t]) /* refused after batch_cycles (not expected) */
            return gx_error_set(&a->errs[i], GX_EDEPFAILED, "depends_on", "depends on jobs[%zu], which was refused", t);
        if (same) t = same[t]; /* a repeat of an earlier job of the batch: that one */
        gx_job_id dep = a->ids[t];
        /* a repeat of a job the engine holds, or of one it has forgotten
         * (ended and stored): that one. The commit finds repeats only
         * later; without this the dependent was stored depending on the id
         * the repeat would have had, never inserted, and failed at a
         * restart. */
        const gx_job_spec *ts = &a->jobs[t].spec;
        gx_job_id orig;
        if (ts->idempotency_key &&
            !gx__svc_find_idempotent(a->svc, ts->tenant ? ts->tenant : a->svc->cfg.default_tenant,
                                     ts->idempotency_key, &orig))
            dep = orig;
        char id[24];
        snprintf(id, sizeof id, "%llu", (unsigned long long)dep);
        if (json_array_set_new(deps, k, json_string(id)))
            return gx_error_set(&a->errs[i], GX_ENOMEM, NULL, "out of memory");
    }
    free(a->jobs[i].canonical);
    a->jobs[i].canonical = NULL;
    return gx_jobreq_canonical(&a->jobs[i], &a->errs[i]);
}

int gx__svc_find_idempotent(gx_service *s, const char *tenant, const char *key, gx_job_id *id) {
    uint64_t sid;
    if (!gx_job_find_idempotent(s->engine, tenant, key, id)) return 0;
    if (gx_store_find_idempotent(s->store, tenant, key, &sid, NULL)) return GX_ENOTFOUND;
    *id = sid;
    return 0;
}

void gx__admit_refuse_repeats(gx__admit *a) {
    for (size_t i = 0; a->same && i < a->n; i++)
        if (a->same[i] != i && !a->codes[i] && a->codes[a->same[i]]) {
            char f[48];
            snprintf(f, sizeof f, "jobs[%zu].idempotency_key", i);
            a->codes[i] = gx_error_set(&a->errs[i], a->codes[a->same[i]], f,
                                       "repeats jobs[%zu] (the same idempotency key), which was refused", a->same[i]);
        }
}

/* Ids for the accepted jobs in a->order, each job's batch dependencies
 * before it: a restart restores jobs in id order and must meet a
 * dependency before its dependent, "@1" from jobs[0] included. */
static void admit_ids(gx_service *s, gx__admit *a) {
    uint64_t n = 0;
    for (size_t i = 0; i < a->n; i++) n += !a->codes[i];
    if (!n) return;
    /* one block, taken and recorded in flight under idmu: a listing's
     * watermark never passes an id that is taken but not committed */
    pthread_mutex_lock(&s->idmu);
    gx_job_id id = (gx_job_id)atomic_fetch_add(&s->next_id, n);
    a->id_lo = id;
    a->iprev = NULL;
    a->inext = s->inflight;
    if (a->inext) a->inext->iprev = a;
    else s->inflight_tail = a;
    s->inflight = a;
    pthread_mutex_unlock(&s->idmu);
    for (size_t k = 0; k < a->n; k++) {
        size_t i = a->order ? a->order[k] : k;
        if (!a->codes[i]) a->ids[i] = id++;
    }
}

/* For each job of a batch, the first accepted job of the batch with the
 * same idempotency key (the one the store keeps: the others are its
 * repeats), or itself; NULL when no key repeats (or out of memory). */
size_t *gx__admit_same_keys(const gx__admit *a) {
    size_t *same = NULL;
    gx__hmap first = {0};
    for (size_t i = 0; i < a->n; i++) {
        const char *key = a->jobs[i].spec.idempotency_key;
        if (a->codes[i] || !key) continue;
        uint64_t u;
        if (!gx__hmap_get(&first, key, strlen(key), &u)) {
            if (gx__hmap_put(&first, key, strlen(key), i)) break;
            continue;
        }
        if (!same && (same = malloc(a->n * sizeof *same)))
            for (size_t k = 0; k < a->n; k++) same[k] = k;
        if (same) same[i] = (size_t)u;
    }
    gx__hmap_free(&first);
    return same;
}

/* The store rows of an admission's accepted jobs, ids assigned; 0 or -1
 * when out of memory (every job then refused with GX_ENOMEM). */
static int admit_rows(gx_service *s, gx__admit *a) {
    admit_ids(s, a);
    for (size_t i = 0; i < a->n; i++)
        if (!a->codes[i] && a->jobs[i].spec.nbatch_deps) a->codes[i] = stored_batch_deps(a, i, a->same);
    /* a job refused just now (out of memory) takes its repeats with it: they
     * were never checked as jobs of their own (batch_cycles) */
    gx__admit_refuse_repeats(a);
    size_t total = 0;
    for (size_t i = 0; i < a->n; i++) total += !a->codes[i];
    a->total = total;
    if (!total) return 0;
    if (a->jobs == &a->one.job) { /* total is 1 */
        a->rows = &a->one.row;
        a->res = &a->one.res;
        a->labels = &a->one.label;
        a->kname = &a->one.kname;
    } else {
        a->rows = calloc(total, sizeof *a->rows);
        a->res = calloc(total, sizeof *a->res);
        a->labels = calloc(total, sizeof *a->labels);
        a->kname = calloc(total, sizeof *a->kname);
    }
    if (!a->rows || !a->res || !a->labels || !a->kname) {
        for (size_t i = 0; i < a->n; i++)
            if (!a->codes[i]) a->codes[i] = gx_error_set(&a->errs[i], GX_ENOMEM, NULL, "out of memory");
        a->total = 0;
        return -1;
    }
    int64_t now = gx__wall_ns();
    size_t k = 0;
    for (size_t i = 0; i < a->n; i++) {
        if (a->codes[i]) continue;
        const gx_job_spec *sp = &a->jobs[i].spec;
        if (sp->nlabels) {
            json_t *l = labels_of(sp);
            a->labels[k] = json_dumps(l, JSON_COMPACT | JSON_SORT_KEYS);
            json_decref(l);
        }
        const gx_kernel *kern = gx_kernel_find(sp->kernel);
        snprintf(a->kname[k], sizeof a->kname[k], "%s@%d", kern ? kern->name : sp->kernel, kern ? kern->version : 0);
        a->rows[k] = (gx_store_job){
            .id = a->ids[i],
            .tenant = sp->tenant,
            .kernel = a->kname[k],
            .spec_json = a->jobs[i].canonical,
            .state = GX_JOB_QUEUED,
            .priority = sp->priority,
            .submit_ns = now,
            .device = -1,
            .idempotency_key = sp->idempotency_key,
            .labels_json = a->labels[k],
        };
        k++;
    }
    return 0;
}

/* Hand an admission's jobs to the store (from the HTTP thread that decoded
 * them); answered once committed (admit_after_callbacks). */
void gx__svc_admit(gx_service *s, gx__admit *a) {
    a->next = NULL;
    a->svc = s;
    pthread_mutex_lock(&s->amu);
    int closed = s->admit_closed;
    if (!closed) s->admit_inflight++;
    pthread_mutex_unlock(&s->amu);
    if (closed) {
        /* stopping: answer now, so that no connection stays suspended
         * when the HTTP server stops */
        for (size_t i = 0; i < a->n; i++)
            if (!a->codes[i]) a->codes[i] = gx_error_set(&a->errs[i], GX_ECLOSED, NULL, "the server is shutting down");
        admit_reply(s, a);
        admit_finish(s, a);
        return;
    }
    admit_rows(s, a);
    a->t0 = gx__now_ns();
    a->submitter = pthread_self();
    gx_error err;
    int rc = gx_store_insert_jobs_async(s->store, a->rows, a->total, a->res, admit_committed, a, &err);
    if (rc) { /* not queued (closing): answered as a failed commit */
        admit_settle(a, rc, &err);
        admit_queue(s, a, a);
    }
}

static json_t *labels_of(const gx_job_spec *sp) {
    json_t *l = json_object();
    for (int i = 0; i < sp->nlabels; i++) json_object_set_new(l, sp->labels[i].key, json_string(sp->labels[i].value));
    return l;
}

/* The answer of one admission now that its jobs are committed and submitted
 * (sent when admit_finish resumes its connection). */
static void admit_reply(gx_service *s, gx__admit *a) {
    gx_http_req *r = a->req;
    for (size_t i = 0; !a->store_failed && i < a->n; i++) /* for the audit record's target */
        if (!a->codes[i]) {
            if (!r->job_lo || a->ids[i] < r->job_lo) r->job_lo = a->ids[i];
            if (a->ids[i] > r->job_hi) r->job_hi = a->ids[i];
        }
    if (a->store_failed) {
        /* the commit failed: nothing of the request was accepted; the whole
         * request is answered 503 (a batch too), and may be sent again */
        gx_http_error(r, 503, GX_ESTORE, NULL, "%s", a->store_msg);
    } else if (!a->batch) {
        if (a->codes[0]) {
            gx_http_error(r, gx_http_status_for(a->codes[0]), a->codes[0], a->errs[0].field, "%s", a->errs[0].message);
        } else {
            gx_job_info info;
            gx_error err;
            if (!gx_job_get(s->engine, a->ids[0], &info, &err)) {
                gx__svc_reply_job(s, r, a->dup[0] ? 200 : 202, &info, NULL);
            } else {
                /* an idempotent repeat of a job that ended before */
                gx_store_job *sj = NULL;
                if (!gx_store_get_job(s->store, a->ids[0], &sj, NULL)) {
                    gx__svc_reply_job(s, r, a->dup[0] ? 200 : 202, NULL, sj);
                    gx_store_free(sj);
                } else {
                    char id[24];
                    snprintf(id, sizeof id, "%llu", (unsigned long long)a->ids[0]);
                    gx_http_reply_json(r, a->dup[0] ? 200 : 202, json_pack("{s:s}", "id", id));
                }
            }
            if (!a->dup[0]) {
                char loc[48];
                snprintf(loc, sizeof loc, "/v1/jobs/%llu", (unsigned long long)a->ids[0]);
                gx_http_header_add(r, "Location", loc);
            }
        }
    } else {
        /* {"accepted":A,"refused":R,"results":[{"index":i,"status":202,"id":"…"},…]}
         * written directly: 10,000 json_pack objects and their dump took
         * several ms of the admitter per full batch. Refusals (rare, with
         * messages to escape) still go through jansson. */
        size_t cap = 64 + a->n * 48, len = 0;
        char *buf = malloc(cap);
        int64_t acc = 0;
        for (size_t i = 0; i < a->n; i++) acc += !a->codes[i];
        if (buf)
            len = (size_t)snprintf(buf, cap, "{\"accepted\":%lld,\"refused\":%lld,\"results\":[", (long long)acc,
                                   (long long)((int64_t)a->n - acc));
        for (size_t i = 0; buf && i < a->n; i++) {
            char *item = NULL, small[96];
            size_t il;
            if (a->codes[i]) {
                json_t *e = json_pack("{s:s,s:s}", "code", gx_err_name(a->codes[i]), "message", a->errs[i].message);
                if (a->errs[i].field[0]) json_object_set_new(e, "field", json_string(a->errs[i].field));
                json_t *it = json_pack("{s:I,s:i,s:o}", "index", (json_int_t)i, "status",
                                       gx_http_status_for(a->codes[i]), "error", e);
                item = json_dumps(it, JSON_COMPACT);
                json_decref(it);
                if (!item) {
                    free(buf);
                    buf = NULL;
                    break;
                }
                il = strlen(item);
            } else {
                il = (size_t)snprintf(small, sizeof small, "{\"index\":%zu,\"status\":%d,\"id\":\"%llu\"}", i,
                                      a->dup[i] ? 200 : 202, (unsigned long long)a->ids[i]);
            }
            if (len + il + 4 > cap) {
                size_t nc = cap * 2 + il;
                char *nb = realloc(buf, nc);
                if (!nb) {
                    free(item);
                    free(buf);
                    buf = NULL;
                    break;
                }
                buf = nb;
                cap = nc;
            }
            if (i) buf[len++] = ',';
            memcpy(buf + len, item ? item : small, il);
            len += il;
            free(item);
        }
        if (buf) {
            memcpy(buf + len, "]}", 3);
            gx_http_reply(r, 200, "application/json", buf, len + 2);
        } else {
            gx_http_error(r, 503, GX_ENOMEM, NULL, "out of memory answering the batch (its jobs were accepted)");
        }
    }
}

/* A batch job the store refused at its commit (an input blob deleted by
 * retention meanwhile: GX_ENOTFOUND) was not stored, but the jobs of the
 * batch that depend on it were, and must not run without it: their
 * result becomes GX_EDEPFAILED, down chains too (the batch's finishing
 * order puts a job after its dependencies); dep[i] gets the job it
 * depended on. */
static void refuse_dependents(gx__admit *a, size_t *dep) {
    size_t *kof = malloc(a->n * sizeof *kof); /* request index -> a->res index; SIZE_MAX: none */
    if (!kof) return;
    size_t k = 0;
    int any = 0;
    for (size_t i = 0; i < a->n; i++) {
        kof[i] = a->codes[i] ? SIZE_MAX : k++;
        any |= kof[i] != SIZE_MAX && a->res[kof[i]].code == GX_ENOTFOUND;
    }
    for (size_t q = 0; any && q < a->n; q++) {
        size_t i = a->order ? a->order[q] : q;
        if (kof[i] == SIZE_MAX || a->res[kof[i]].code) continue;
        const gx_job_spec *sp = &a->jobs[i].spec;
        for (int d = 0; d < sp->nbatch_deps; d++) {
            size_t t = (size_t)sp->batch_deps[d];
            if (t < a->n && a->same) t = a->same[t];
            int c = t < a->n && kof[t] != SIZE_MAX ? a->res[kof[t]].code : 0;
            if (c == GX_ENOTFOUND || c == GX_EDEPFAILED) {
                a->res[kof[i]].code = GX_EDEPFAILED;
                dep[i] = t;
                break;
            }
        }
    }
    free(kof);
}

/* The admissions of one or more commits: hand their committed jobs to the
 * engine in one batch (in request order; batch refs become indices of
 * this engine call), then answer them. */
static void admit_group(gx_service *s, gx__admit *head) {
    size_t total = 0, nadm = 0;
    for (gx__admit *a = head; a; a = a->next, nadm++)
        if (!a->store_failed) total += a->total;
    for (gx__admit *a = head; a; a = a->next)
        if (a->total) gx__svc_metrics_commit(s, a->total, a->commit_secs);
    gx_job_spec *specs = calloc(total ? total : 1, sizeof *specs);
    gx_job_id *ids = calloc(total ? total : 1, sizeof *ids);
    int *codes = calloc(total ? total : 1, sizeof *codes);
    gx_error *errs = calloc(total ? total : 1, sizeof *errs);
    int **bdeps = calloc(total ? total : 1, sizeof *bdeps);
    gx__admit **owner = calloc(total ? total : 1, sizeof *owner);
    size_t *owner_i = calloc(total ? total : 1, sizeof *owner_i);
    if (!specs || !ids || !codes || !errs || !bdeps || !owner || !owner_i) {
        /* committed, but not submittable now: recorded as failed (else a
         * restart would run what was answered as refused) and refused */
        for (gx__admit *a = head; a; a = a->next) {
            size_t k = 0;
            for (size_t i = 0; i < a->n; i++) {
                if (a->codes[i]) continue;
                const gx_store_insert_result *rr = a->store_failed ? NULL : &a->res[k++];
                if (rr && rr->code == 0) { /* a new row (not an idempotent repeat's original) */
                    gx_store_update u = {.id = a->ids[i], .state = GX_JOB_FAILED, .attempt = 0,
                                         .set = GX_STORE_SET_END | GX_STORE_SET_ERROR, .end_ns = gx__wall_ns(),
                                         .error_code = GX_ENOMEM, .error = "out of memory at admission"};
                    gx_store_update_jobs(s->store, &u, 1, 0, NULL, NULL);
                }
                a->codes[i] = gx_error_set(&a->errs[i], GX_ENOMEM, NULL, "out of memory");
            }
        }
        goto reply;
    }
    size_t ns = 0;
    for (gx__admit *a = head; a; a = a->next) {
        if (a->store_failed) continue;
        size_t *map = calloc(a->n ? a->n : 1, sizeof *map); /* request index -> call index + 1 */
        size_t *dep = a->batch ? calloc(a->n, sizeof *dep) : NULL;
        if (dep) refuse_dependents(a, dep);
        size_t k = 0;
        for (size_t i = 0; i < a->n; i++) {
            if (a->codes[i]) continue;
            gx_store_insert_result *rr = &a->res[k++];
            if (rr->code == GX_EEXIST) {
                a->ids[i] = rr->job_id;
                a->dup[i] = 1;
                continue;
            }
            if (rr->code == GX_ENOTFOUND) { /* touch_blobs (sqlite.c) */
                char f[48];
                snprintf(f, sizeof f, a->batch ? "jobs[%zu].inputs" : "inputs", i);
                a->codes[i] = gx_error_set(&a->errs[i], GX_ENOTFOUND, f,
                                           "an input blob was deleted (store.retention) while the job was "
                                           "submitted; upload it again and resubmit");
                continue;
            }
            if (rr->code == GX_EDEPFAILED) { /* refuse_dependents: committed, so recorded as failed */
                char f[48];
                snprintf(f, sizeof f, "jobs[%zu].depends_on", i);
                a->codes[i] = gx_error_set(&a->errs[i], GX_EDEPFAILED, f,
                                           "depends on jobs[%zu], which the store refused (an input blob was "
                                           "deleted by store.retention meanwhile)",
                                           dep ? dep[i] : 0);
                gx_store_update u = {.id = a->ids[i], .state = GX_JOB_FAILED, .attempt = 0,
                                     .set = GX_STORE_SET_END | GX_STORE_SET_ERROR, .end_ns = gx__wall_ns(),
                                     .error_code = GX_EDEPFAILED, .error = a->errs[i].message};
                gx_store_update_jobs(s->store, &u, 1, 0, NULL, NULL);
                continue;
            }
            if (rr->code) {
                a->codes[i] = gx_error_set(&a->errs[i], rr->code, NULL, "the store refused the job (%s)",
                                           gx_err_name(rr->code));
                continue;
            }
            if (map) map[i] = ns + 1;
            specs[ns] = a->jobs[i].spec;
            specs[ns].id = a->ids[i];
            specs[ns].submitted_ns = a->rows[k - 1].submit_ns; /* the stored time, in answers too */
            specs[ns].quota_reserved = a->qn > 0;
            ids[ns] = a->ids[i];
            owner[ns] = a;
            owner_i[ns] = i;
            ns++;
        }
        for (size_t i = 0; map && i < a->n; i++) {
            if (!map[i]) continue;
            gx_job_spec *sp = &specs[map[i] - 1];
            if (!sp->nbatch_deps) continue;
            int *bd = malloc((size_t)sp->nbatch_deps * sizeof *bd);
            bdeps[map[i] - 1] = bd;
            int nb = 0;
            for (int d = 0; bd && d < sp->nbatch_deps; d++) {
                size_t t = (size_t)sp->batch_deps[d];
                if (t < a->n && map[t]) {
                    bd[nb++] = (int)(map[t] - 1);
                } else if (t < a->n && a->dup[t] && a->jobs[i].deps) {
                    /* an idempotent repeat: the dependency is its original,
                     * in this call (an earlier job of the batch with the
                     * same key), or in the engine (room: deps holds every
                     * entry of depends_on), unless that ended and was
                     * forgotten (succeeded) */
                    size_t u = 0;
                    while (u < a->n && !(map[u] && a->ids[u] == a->ids[t] && !a->dup[u])) u++;
                    gx_job_info di;
                    if (u < a->n) bd[nb++] = (int)(map[u] - 1);
                    else if (!gx_job_get(s->engine, a->ids[t], &di, NULL)) a->jobs[i].deps[sp->ndeps++] = a->ids[t];
                }
            }
            sp->batch_deps = bd;
            sp->nbatch_deps = nb;
        }
        free(map);
        free(dep);
    }
    if (ns) {
        gx_submit_batch(s->engine, specs, ns, ids, codes, errs);
        gx__svc_metrics_submitted(s, specs, codes, ns);
        /* a queued job used up its reservation; the rest (refused, or an
         * idempotent repeat) are released with the admission */
        for (size_t i = 0; i < ns; i++)
            if (!codes[i] && owner[i]->qn > 0) owner[i]->qn--;
        /* a job committed but refused by the engine (raced with a cancel
         * of its dependency, or shutdown) is recorded as failed */
        gx_store_update *fails = calloc(ns, sizeof *fails);
        size_t nf = 0;
        for (size_t i = 0; fails && i < ns; i++)
            if (codes[i]) {
                /* the answer says so too: never a 202 for a job that will not run */
                owner[i]->codes[owner_i[i]] = codes[i];
                owner[i]->errs[owner_i[i]] = errs[i];
                fails[nf++] = (gx_store_update){.id = specs[i].id, .state = GX_JOB_FAILED, .attempt = 0,
                                                .set = GX_STORE_SET_END | GX_STORE_SET_ERROR, .end_ns = gx__wall_ns(),
                                                .error_code = codes[i], .error = errs[i].message};
            }
        if (nf) gx_store_update_jobs(s->store, fails, nf, 0, NULL, NULL);
        free(fails);
    }
reply:
    for (gx__admit *a = head; a; a = a->next) admit_reply(s, a);
    admit_finish(s, head);
    pthread_mutex_lock(&s->amu);
    s->admit_inflight -= (int64_t)nadm;
    if (s->admit_closed) pthread_cond_broadcast(&s->adone);
    pthread_mutex_unlock(&s->amu);
    for (size_t i = 0; bdeps && i < total; i++) free(bdeps[i]);
    free(specs);
    free(ids);
    free(codes);
    free(errs);
    free(bdeps);
    free(owner);
    free(owner_i);
}

/* After the callbacks of one commit (gx_store_config.after_callbacks, on
 * the committer thread): its admissions, gathered by admit_committed. A
 * small group is answered here and now: a hand-over to an admitter thread
 * cost a wake-up and a context switch per commit, about a tenth of a single
 * submit's CPU on two cores (bench.md). A large one (a batch's thousands of
 * jobs: milliseconds of engine submission and reply) goes to the admitters,
 * so the commits behind it do not wait for it. */
static void admit_after_callbacks(void *ctx) {
    gx_service *s = ctx;
    gx__admit *head = s->cq_head, *tail = s->cq_tail;
    if (!head) return;
    s->cq_head = s->cq_tail = NULL;
    size_t jobs = 0;
    int reads = 0;
    for (gx__admit *a = head; a; a = a->next) {
        jobs += a->n;
        /* a repeat of a job that has ended is answered from the store: a
         * read that may wait for a busy read connection */
        for (size_t i = 0; i < a->n && !reads; i++) reads = a->dup[i];
    }
    if (jobs <= GX_SVC_INLINE_JOBS && !reads)
        admit_group(s, head);
    else
        admit_queue(s, head, tail);
}

static void *admitter_main(void *arg) {
    gx_service *s = arg;
    pthread_setname_np(pthread_self(), "gx-admit");
    pthread_mutex_lock(&s->amu);
    for (;;) {
        while (!s->aq_head && !s->stopping) pthread_cond_wait(&s->acv, &s->amu);
        if (!s->aq_head && s->stopping) break;
        gx__admit *head = s->aq_head;
        s->aq_head = s->aq_tail = NULL;
        s->admit_busy++;
        pthread_mutex_unlock(&s->amu);
        admit_group(s, head);
        pthread_mutex_lock(&s->amu);
        s->admit_busy--;
        if (s->admit_closed) pthread_cond_broadcast(&s->adone);
    }
    pthread_mutex_unlock(&s->amu);
    return NULL;
}

/* 1 when every admitter thread started. */
static int svc_start_admitters(gx_service *s) {
    while (s->nadmitters < GX_SVC_ADMITTERS) {
        if (pthread_create(&s->admitter[s->nadmitters], NULL, admitter_main, s)) return 0;
        s->nadmitters++;
    }
    return 1;
}

/* ---- event persistence (the streams: svc_events.c) ---------------------- */

static void on_events(void *ctx, const gx_event *ev, size_t n) {
    gx_service *s = ctx;
    pthread_mutex_lock(&s->pmu);
    if (s->pn + n > s->pcap) {
        size_t nc = s->pcap ? s->pcap : 1024;
        while (nc < s->pn + n) nc *= 2;
        gx_event *nv = realloc(s->pev, nc * sizeof *nv);
        if (!nv) {
            pthread_mutex_unlock(&s->pmu);
            GX_LOGE("events: out of memory; %zu state changes not persisted", n);
            return;
        }
        s->pev = nv;
        s->pcap = nc;
    }
    memcpy(s->pev + s->pn, ev, n * sizeof *ev);
    s->pn += n;
    s->enqueued += (int64_t)n;
    pthread_cond_broadcast(&s->pcv); /* the persister and settle() share it */
    pthread_mutex_unlock(&s->pmu);
}

/* Jobs made final while a device still ran them: forget once it let go.
 * The attempt is kept too: a dead job re-queued meanwhile is a new record
 * under the same id (gx_job_requeue), which is not ours to forget. */
static void forget_later(gx_service *s, gx_job_id id, int attempt) {
    if (s->nlater == s->caplater) {
        size_t nc = s->caplater ? s->caplater * 2 : 64;
        gx__later *nv = realloc(s->later, nc * sizeof *nv);
        if (!nv) return; /* kept in memory until shutdown: harmless */
        s->later = nv;
        s->caplater = nc;
    }
    s->later[s->nlater++] = (gx__later){id, attempt};
}

static int forget(gx_service *s, gx_job_id id);

static void retry_forgets(gx_service *s) {
    size_t k = 0;
    for (size_t i = 0; i < s->nlater; i++) {
        gx_job_info info;
        if (gx_job_get(s->engine, s->later[i].id, &info, NULL) || info.attempts != s->later[i].attempt ||
            !gx_job_state_is_final(info.state))
            continue; /* gone, or re-queued: not the record we persisted */
        if (forget(s, s->later[i].id) == GX_EBUSY) s->later[k++] = s->later[i];
    }
    s->nlater = k;
}

/* Write updates, waiting for the commit; while the store fails (disk
 * full, I/O error, an injected fault) retry with a growing pause, so that
 * no state change of an accepted job is dropped: the batch either lands
 * whole or, at shutdown after PERSIST_GIVE_UP_NS of failures, is left to
 * the restart (the store still has the job in its last written state and
 * re-queues it). Returns what gx_store_update_jobs returned last. */
#define PERSIST_GIVE_UP_NS (5 * 1000000000LL)
#define PERSIST_CHUNK 2048 /* state changes per store request */

/* One pause of a retry on a failing store, growing from 10 ms to ~0.64 s:
 * 0 after it, 1 to give up (the service is stopping and the store has
 * failed for PERSIST_GIVE_UP_NS). */
static int persist_pause(gx_service *s, int64_t failing_since, int64_t *pause_ms) {
    pthread_mutex_lock(&s->pmu);
    int stop = s->persist_stop;
    pthread_mutex_unlock(&s->pmu);
    if (stop && gx__now_ns() - failing_since > PERSIST_GIVE_UP_NS) return 1;
    struct timespec ts = {.tv_sec = *pause_ms / 1000, .tv_nsec = (*pause_ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
    if (*pause_ms < 500) *pause_ms *= 2;
    return 0;
}

static int64_t persist_retry(gx_service *s, const gx_store_update *ups, size_t k, int *codes) {
    int64_t pause_ms = 10, failing_since = 0;
    for (;;) {
        gx_error err;
        int64_t rc = gx_store_update_jobs(s->store, ups, k, 1, codes, &err);
        /* a failed group answers its error (GX_ESTORE, or an injected
         * code): retried; a bad update or a closing store is final */
        if (rc >= 0 || rc == GX_EINVAL || rc == GX_ECLOSED) {
            if (failing_since) GX_LOGI("store: state changes are written again (%zu waited)", k);
            return rc;
        }
        if (!failing_since) {
            failing_since = gx__now_ns();
            GX_LOGE("store: %zu state changes not written (%s); retrying", k, err.message);
        }
        if (persist_pause(s, failing_since, &pause_ms)) {
            GX_LOGE("store: giving up on %zu state changes at shutdown: %s", k, err.message);
            return rc;
        }
    }
}

/* How outputs_retry ended. */
enum { OUT_STORED, OUT_SHUTDOWN, OUT_DROPPED };
#define OUTPUTS_NOMEM_NS (10 * 1000000000LL) /* an out-of-memory is retried this long */

/* A succeeded job's result manifest (its large outputs written as blobs)
 * into *text. While the store or the disk fails (GX_ESTORE, GX_EIO: a full
 * disk, an injected fault) it is retried as state changes are, so a success
 * is never stored without its outputs (it was, for good); an out of memory
 * for OUTPUTS_NOMEM_NS. OUT_SHUTDOWN: given up at shutdown (its final state
 * is not written: the job runs again after the restart). OUT_DROPPED: an
 * error of this job's outputs themselves (too large to copy, say), which
 * waiting does not mend and which must not hold every other tenant's state
 * changes up: the success is stored without them, logged. */
static int outputs_retry(gx_service *s, gx_job_id id, const char *tenant, gx_output *outs, int no, char **text) {
    int64_t pause_ms = 10, failing_since = 0;
    for (;;) {
        gx_error err;
        json_t *m = gx__svc_outputs_json(s, tenant, outs, no, &err);
        char *t = NULL;
        if (m && !(t = json_dumps(m, JSON_COMPACT))) gx_error_set(&err, GX_ENOMEM, NULL, "out of memory writing the result");
        json_decref(m);
        if (t) {
            if (failing_since) GX_LOGI("job %llu: outputs are stored", (unsigned long long)id);
            *text = t;
            return OUT_STORED;
        }
        int64_t now = gx__now_ns();
        int store = err.code == GX_ESTORE || err.code == GX_EIO;
        if (!store && (err.code != GX_ENOMEM || (failing_since && now - failing_since > OUTPUTS_NOMEM_NS))) {
            GX_LOGE("job %llu: outputs not stored (%s): stored as succeeded without them", (unsigned long long)id,
                    err.message);
            return OUT_DROPPED;
        }
        if (!failing_since) {
            failing_since = now;
            GX_LOGE("job %llu: outputs not stored (%s); retrying", (unsigned long long)id, err.message);
        }
        if (persist_pause(s, failing_since, &pause_ms)) {
            GX_LOGE("job %llu: outputs not stored at shutdown (%s): it runs again after the restart",
                    (unsigned long long)id, err.message);
            return OUT_SHUTDOWN;
        }
    }
}

/* Turn a batch of events into store updates (fenced by attempt). */
static void persist(gx_service *s, const gx_event *ev, size_t n) {
    gx_store_update *ups = calloc(n, sizeof *ups);
    char **owned = calloc(n * 2, sizeof *owned);
    if (!ups || !owned) {
        free(ups);
        free(owned);
        GX_LOGE("events: out of memory persisting %zu state changes", n);
        return;
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const gx_event *e = &ev[i];
        gx_store_update *u = &ups[k];
        *u = (gx_store_update){.id = e->job, .state = e->state, .attempt = e->attempt, .time_ns = e->time_ns,
                               .device = e->device};
        /* the insert recorded the submission's queued; a release from
         * waiting is a change of its own (it used to be dropped too) */
        if (e->state == GX_JOB_QUEUED && e->attempt == 0 && !e->released) continue;
        if (e->state == GX_JOB_RUNNING) {
            u->set |= GX_STORE_SET_START | GX_STORE_SET_DEVICE;
            u->start_ns = e->time_ns;
        }
        if (gx_job_state_is_final(e->state)) {
            u->set |= GX_STORE_SET_END;
            u->end_ns = e->time_ns;
        }
        if (e->error_code || e->error[0]) {
            /* the event's own message: attempt N's error, or a note
             * ("fallback: ...") with code 0 */
            u->set |= GX_STORE_SET_ERROR;
            u->error_code = e->error_code;
            u->error = e->error[0] ? e->error : NULL;
        }
        if (e->state == GX_JOB_SUCCEEDED) {
            gx_output *outs;
            int no;
            gx_job_info info;
            if (!gx_job_get(s->engine, e->job, &info, NULL) && !gx_job_outputs(s->engine, e->job, &outs, &no, NULL)) {
                int how = no ? outputs_retry(s, e->job, info.tenant_name, outs, no, &owned[2 * i + 1]) : OUT_DROPPED;
                if (how == OUT_SHUTDOWN) {
                    gx_outputs_free(outs, no);
                    continue; /* not written: the engine keeps it, the restart runs it again */
                }
                if (how == OUT_STORED) {
                    u->result_json = owned[2 * i + 1];
                    u->set |= GX_STORE_SET_RESULT;
                }
                gx_outputs_free(outs, no);
            }
        }
        k++;
    }
    size_t nfinal = 0;
    for (size_t i = 0; i < k; i++) nfinal += gx_job_state_is_final(ups[i].state);
    /* final states are made durable before the engine forgets the job, so a
     * reader always finds it in one place or the other */
    int *codes = calloc(k ? k : 1, sizeof *codes);
    /* in chunks: a submission's commit waits for at most one chunk of state
     * changes in progress (the store takes inserts first between groups) */
    int failed = !codes;
    for (size_t off = 0; !failed && off < k; off += PERSIST_CHUNK) {
        size_t m = k - off < PERSIST_CHUNK ? k - off : PERSIST_CHUNK;
        failed = persist_retry(s, ups + off, m, codes + off) < 0;
    }
    if (failed) nfinal = 0; /* keep them in the engine */
    for (size_t i = 0; i < k && nfinal; i++) {
        /* only jobs the store holds (not the start-up self-test) */
        if (!gx_job_state_is_final(ups[i].state) || codes[i] == GX_ENOTFOUND) continue;
        int rc = forget(s, ups[i].id);
        if (rc == GX_EBUSY) forget_later(s, ups[i].id, ups[i].attempt); /* on a device, or pinned */
    }
    retry_forgets(s);
    free(codes);
    for (size_t i = 0; i < n * 2; i++) free(owned[i]);
    free(owned);
    free(ups);
}

/* How often the persister stores the tenants' trailing-hour device time. */
#define USAGE_SAVE_NS (10 * INT64_C(1000000000))

/* ---- the engine's order ---------------------------------------------------
 * Each engine thread hands over its events after it let go of the engine's
 * lock, so batches arrive out of the engine's order now and then: a
 * worker's "running" and "succeeded" of a job before the submitter's
 * "queued" (about one short job in ten on a live stream). The persister
 * puts them back in order (gx_event.seq) before it writes, publishes and
 * counts them: events after a gap in the sequence wait until it is filled,
 * or ORDER_WAIT_NS at most (a thread held up between the two, or events
 * lost to an out-of-memory); a late one goes out at once. */
#define ORDER_WAIT_NS (50 * INT64_C(1000000))

typedef struct ev_order {
    gx_event *held;     /* received, sorted by seq; [0, released) go out */
    size_t n, cap;
    uint64_t next;      /* the seq expected next; 0: none seen yet */
    uint64_t gap_seq;   /* the first seq after the gap waited for */
    int64_t gap_since;  /* when that gap was first seen; 0: none */
} ev_order;

static int seq_cmp(const void *a, const void *b) {
    uint64_t x = ((const gx_event *)a)->seq, y = ((const gx_event *)b)->seq;
    return x < y ? -1 : x > y;
}

/* Take n more events; the number of held[] that may go out now, in order
 * (all of them when flush). Out of memory: *unheld is set, everything held
 * goes out, and the caller sends ev as it came after it. */
static size_t order_events(ev_order *o, const gx_event *ev, size_t n, int64_t now, int flush, int *unheld) {
    *unheld = 0;
    if (o->n + n > o->cap) {
        size_t nc = o->cap ? o->cap : 1024;
        while (nc < o->n + n) nc *= 2;
        gx_event *nv = realloc(o->held, nc * sizeof *nv);
        if (!nv) *unheld = flush = 1;
        else {
            o->held = nv;
            o->cap = nc;
        }
    }
    if (!*unheld) {
        memcpy(o->held + o->n, ev, n * sizeof *ev);
        o->n += n;
        for (size_t i = 1; i < o->n; i++)
            if (o->held[i].seq < o->held[i - 1].seq) {
                qsort(o->held, o->n, sizeof *o->held, seq_cmp);
                break;
            }
    }
    if (!o->n) return 0;
    if (!o->next) o->next = o->held[0].seq;
    size_t k = 0;
    for (;;) {
        for (; k < o->n && o->held[k].seq <= o->next; k++)
            if (o->held[k].seq == o->next) o->next++;
        if (k == o->n) {
            o->gap_since = 0;
            break;
        }
        if (o->gap_seq != o->held[k].seq) { /* a new gap */
            o->gap_seq = o->held[k].seq;
            o->gap_since = now;
        }
        if (!flush && now - o->gap_since < ORDER_WAIT_NS) break;
        o->next = o->held[k].seq; /* give up on the missing ones */
    }
    return k;
}

/* Drop the first k held events (gone out). */
static void order_consume(ev_order *o, size_t k) {
    memmove(o->held, o->held + k, (o->n - k) * sizeof *o->held);
    o->n -= k;
}

static void *persister_main(void *arg) {
    gx_service *s = arg;
    pthread_setname_np(pthread_self(), "gx-persist");
    gx_event *batch = NULL;
    size_t cap = 0;
    ev_order ord = {0};
    int64_t next_usage = gx__now_ns() + USAGE_SAVE_NS;
    pthread_mutex_lock(&s->pmu);
    for (;;) {
        int64_t until = next_usage;
        if (ord.gap_since && ord.gap_since + ORDER_WAIT_NS < until) until = ord.gap_since + ORDER_WAIT_NS;
        while (!s->pn && !s->persist_stop && gx__now_ns() < until) {
            struct timespec dl = gx__realtime_in(until - gx__now_ns());
            pthread_cond_timedwait(&s->pcv, &s->pmu, &dl);
        }
        if (gx__now_ns() >= next_usage && !s->persist_stop) {
            pthread_mutex_unlock(&s->pmu);
            gx__svc_usage_save(s);
            next_usage = gx__now_ns() + USAGE_SAVE_NS;
            pthread_mutex_lock(&s->pmu);
            continue;
        }
        if (!s->pn && s->persist_stop && !ord.n) break;
        /* swap buffers */
        gx_event *t = s->pev;
        size_t tc = s->pcap, n = s->pn;
        int stop = s->persist_stop;
        s->pev = batch;
        s->pcap = cap;
        s->pn = 0;
        batch = t;
        cap = tc;
        pthread_mutex_unlock(&s->pmu);
        int unheld;
        size_t k = order_events(&ord, batch, n, gx__now_ns(), stop, &unheld);
        for (int pass = 0; pass < 1 + unheld; pass++) {
            const gx_event *ev = pass ? batch : ord.held;
            size_t m = pass ? n : k;
            persist(s, ev, m);
            gx__svc_publish(s, ev, m);
            gx__svc_metrics_events(s, ev, m);
        }
        order_consume(&ord, k);
        pthread_mutex_lock(&s->pmu);
        s->persisted += (int64_t)(k + (unheld ? n : 0));
        pthread_cond_broadcast(&s->pcv);
    }
    pthread_mutex_unlock(&s->pmu);
    free(batch);
    free(ord.held);
    return NULL;
}

/* kernels.plugins: each ':'-separated path, loaded once per process (a
 * self-restart's new image loads them again: execv). A kernel name@version
 * that is there already (a plugin listed twice) stops the start too. */
static int load_kernel_plugins(const char *list, gx_error *err) {
    char *copy = strdup(list), *save = NULL;
    if (!copy) return gx_error_set(err, GX_ENOMEM, NULL, "out of memory");
    int rc = 0;
    for (char *p = strtok_r(copy, ":", &save); p && !rc; p = strtok_r(NULL, ":", &save)) {
        int before = gx_kernel_count();
        rc = gx_kernel_plugin_load(p, err);
        if (!rc) GX_LOGI("kernel plugin %s: %d kernel(s)", p, gx_kernel_count() - before);
    }
    free(copy);
    return rc;
}

/* How long the start waits for its first writes. */
#define GX_SVC_START_SETTLE_MS 10000

int gx__svc_settle_for(gx_service *s, int64_t timeout_ms) {
    gx_engine_sync_events(s->engine);
    pthread_mutex_lock(&s->pmu);
    int64_t target = s->enqueued;
    struct timespec dl = gx__realtime_in(timeout_ms > 0 ? timeout_ms * 1000000 : 0);
    int timed_out = 0;
    while (s->persisted < target && !s->stopping && !timed_out) {
        if (timeout_ms < 0) pthread_cond_wait(&s->pcv, &s->pmu);
        else timed_out = pthread_cond_timedwait(&s->pcv, &s->pmu, &dl) == ETIMEDOUT;
    }
    int done = s->persisted >= target;
    pthread_mutex_unlock(&s->pmu);
    if (!done) return GX_ETIMEDOUT; /* the store is failing (the persister retries), or stopping */
    return gx_store_flush(s->store, NULL) ? GX_ESTORE : 0;
}

void gx__svc_settle(gx_service *s) { gx__svc_settle_for(s, -1); }

static int pin(gx_service *s, gx_job_id id, int delta);

int gx__svc_resolve_deps(gx_service *s, gx_jobreq *jr, const char *prefix, int restoring, gx_error *err) {
    int nd = 0, rc = 0;
    const char *tenant = jr->spec.tenant ? jr->spec.tenant : s->cfg.default_tenant;
    for (int i = 0; i < jr->spec.ndeps && !rc; i++) {
        gx_job_id d = jr->deps[i];
        char f[96];
        snprintf(f, sizeof f, "%sdepends_on[%d]", prefix ? prefix : "", i);
        gx_job_info info;
        int state, mine, got;
        gx_store_job *dj = NULL;
        gx_error gerr;
        /* pinned before the look, so that a job the engine holds now is
         * still there when this one is handed to it */
        int pinned = !restoring;
        if (pinned && pin(s, d, 1)) {
            rc = gx_error_set(err, GX_ENOMEM, f, "out of memory");
            break;
        }
        if (!gx_job_get(s->engine, d, &info, NULL)) {
            state = info.state;
            mine = !strcmp(info.tenant_name, tenant);
        } else if (!(got = gx_store_get_job(s->store, d, &dj, &gerr))) {
            state = dj->state;
            mine = !strcmp(dj->tenant, tenant);
            gx_store_free(dj);
        } else if (got != GX_ENOTFOUND) {
            /* not "does not exist" (400), nor met at a restore: unknown */
            rc = gx_error_set(err, GX_ESTORE, f, "cannot read dependency %llu now (%s); retry",
                              (unsigned long long)d, gerr.message);
            if (pinned) pin(s, d, -1);
            break;
        } else if (restoring) {
            /* it existed and was the tenant's when the job was submitted;
             * gone now, it ended longer ago than store.retention: its
             * outcome reached this job then */
            continue;
        } else {
            mine = 0;
            state = -1;
        }
        int keep = 0;
        if (!mine) /* another tenant's job is as good as none */
            rc = gx_error_set(err, GX_EINVAL, f, "job %llu does not exist", (unsigned long long)d);
        else if (state == GX_JOB_SUCCEEDED && gx_job_get(s->engine, d, &info, NULL))
            ; /* ended and forgotten: satisfied */
        else if (gx_job_state_is_final(state) && state != GX_JOB_SUCCEEDED)
            rc = gx_error_set(err, GX_EDEPFAILED, f, "dependency %llu %s", (unsigned long long)d,
                              gx_job_state_name(state));
        else
            keep = 1;
        if (keep) /* pinned (not restoring) until the admission ends */
            jr->deps[nd++] = d;
        else if (pinned)
            pin(s, d, -1);
        if (pinned) jr->npinned = nd;
    }
    if (!rc) jr->spec.ndeps = nd;
    return rc;
}

/* Add delta (+1, -1) to job id's pins; 0, or -1 when out of memory (not
 * pinned). */
static int pin(gx_service *s, gx_job_id id, int delta) {
    pthread_mutex_lock(&s->pinmu);
    uint64_t n = 0;
    gx__hmap_get(&s->pins, &id, sizeof id, &n);
    int rc = 0;
    if (delta > 0)
        rc = gx__hmap_put(&s->pins, &id, sizeof id, n + 1);
    else if (n > 1)
        gx__hmap_put(&s->pins, &id, sizeof id, n - 1); /* a replacement: no allocation */
    else
        gx__hmap_del(&s->pins, &id, sizeof id);
    pthread_mutex_unlock(&s->pinmu);
    return rc;
}

void gx__svc_unpin_deps(gx_service *s, gx_jobreq *jr) {
    for (int i = 0; s && i < jr->npinned; i++) pin(s, jr->deps[i], -1);
    jr->npinned = 0;
}

/* Make the engine forget a job whose end is stored, unless an admission
 * in flight depends on it (then later, with the jobs still on a device):
 * GX_EBUSY when not now. */
static int forget(gx_service *s, gx_job_id id) {
    pthread_mutex_lock(&s->pinmu);
    uint64_t n = 0;
    int rc = gx__hmap_get(&s->pins, &id, sizeof id, &n) ? GX_EBUSY : gx_job_forget(s->engine, id);
    pthread_mutex_unlock(&s->pinmu);
    return rc;
}

/* ---- restore -------------------------------------------------------------- */

typedef struct restore_ctx {
    gx_service *s;
    gx_job_spec *specs;
    gx_jobreq *reqs;
    gx_array ***ck;  /* [cap] checkpoint each spec resumes from, or NULL */
    int *nck;        /* [cap] */
    size_t n, cap;
    int64_t restored, failed, resumed;
    gx__hmap failed_ids; /* jobs the restore failed: their dependents fail too */
    gx_error *err;   /* the restore's: why it stopped */
} restore_ctx;

/* Record a restored job as failed (and so its dependents later). */
static void restore_fail(restore_ctx *rc, gx_job_id id, int attempt, int code, const char *msg) {
    rc->failed++;
    gx__hmap_put(&rc->failed_ids, &id, sizeof id, 1);
    gx_store_update u = {.id = id, .state = GX_JOB_FAILED, .attempt = attempt,
                         .set = GX_STORE_SET_END | GX_STORE_SET_ERROR, .end_ns = gx__wall_ns(),
                         .error_code = code, .error = msg};
    gx_store_update_jobs(rc->s->store, &u, 1, 0, NULL, NULL);
}

/* The first of a spec's dependencies that the restore failed, or 0. */
static gx_job_id restore_failed_dep(const restore_ctx *rc, const gx_job_id *deps, int ndeps) {
    uint64_t v;
    for (int i = 0; i < ndeps; i++)
        if (gx__hmap_get(&rc->failed_ids, &deps[i], sizeof deps[i], &v)) return deps[i];
    return 0;
}

static void restore_flush(restore_ctx *rc) {
    if (!rc->n) return;
    gx_job_id *ids = calloc(rc->n, sizeof *ids);
    int *codes = calloc(rc->n, sizeof *codes);
    gx_error *errs = calloc(rc->n, sizeof *errs);
    if (ids && codes && errs) {
        gx_submit_batch(rc->s->engine, rc->specs, rc->n, ids, codes, errs);
        for (size_t i = 0; i < rc->n; i++) {
            if (!codes[i]) {
                rc->restored++;
                continue;
            }
            /* the attempt its store record holds (see restore_one) */
            int stored = rc->specs[i].attempt_floor ? rc->specs[i].attempt_floor : rc->specs[i].attempts_done;
            /* refused for a dependency refused before it (in id order):
             * that one failed, it does exist */
            gx_job_id d = restore_failed_dep(rc, rc->specs[i].deps, rc->specs[i].ndeps);
            if (d) {
                char msg[64];
                snprintf(msg, sizeof msg, "dependency %llu failed", (unsigned long long)d);
                restore_fail(rc, rc->specs[i].id, stored, GX_EDEPFAILED, msg);
            } else {
                restore_fail(rc, rc->specs[i].id, stored, codes[i], errs[i].message);
            }
        }
    }
    for (size_t i = 0; i < rc->n; i++) {
        gx_jobreq_free(&rc->reqs[i]);
        gx__svc_ckpt_free(rc->ck[i], rc->nck[i]);
        rc->ck[i] = NULL;
        rc->nck[i] = 0;
    }
    free(ids);
    free(codes);
    free(errs);
    rc->n = 0;
}

/* A restored job of a checkpointing kernel starts from its stored
 * checkpoint, and its events say so. */
static void resume_from_checkpoint(restore_ctx *rc, const gx_store_job *job) {
    gx_error err;
    int64_t step = 0;
    int attempt = 0;
    size_t i = rc->n;
    if (gx__svc_ckpt_load(rc->s, job->id, &rc->ck[i], &rc->nck[i], &step, &attempt, &err)) {
        GX_LOGE("job %llu: checkpoint not usable, starting over: %s", (unsigned long long)job->id, err.message);
        return;
    }
    if (!rc->nck[i]) return;
    rc->specs[i].resume = rc->ck[i];
    rc->specs[i].nresume = rc->nck[i];
    rc->specs[i].resume_step = step;
    rc->resumed++;
    char note[96];
    snprintf(note, sizeof note, "resumed from step %lld (checkpoint of attempt %d)", (long long)step, attempt);
    gx_store_update u = {.id = job->id, .state = job->state, .attempt = job->attempt, .set = GX_STORE_SET_ERROR,
                         .error = note};
    gx_store_update_jobs(rc->s->store, &u, 1, 0, NULL, NULL);
}

/* Device faults blamed on a job before the restart (its events say), so a
 * poison job that brings the daemon down is dead after poison_faults
 * restarts instead of looping. */
static void restore_blame(gx_service *s, gx_job_id id, gx_jobreq *jr, gx_job_spec *spec) {
    gx_store_event *ev = NULL;
    size_t n = 0;
    if (gx_store_job_events(s->store, id, &ev, &n, NULL)) return;
    int count = 0;
    const char *hist = NULL;
    for (size_t i = 0; i < n; i++) {
        int k;
        const char *h;
        if (gx_job_blame_parse(ev[i].error, &k, &h) && k > count) {
            count = k;
            hist = h;
        }
    }
    if (count) {
        json_t *t = json_string(hist);
        json_object_set_new(jr->root, "\x01" "faults", t);
        spec->dev_faults_done = count;
        spec->fault_history = json_string_value(t);
    }
    gx_store_free(ev);
}

/* Of the done attempts of a restored job, those that use none of its
 * budget: the attempts before an operator last re-queued it (its
 * "re-queued by" event is of the attempt after them), and after that
 * every attempt that did not fail for its own reasons (a failure of its
 * own retries, with a retrying event; a device fault re-queues it
 * directly, and a restart cuts the attempt short), as live. */
static int budget_base(gx_service *s, gx_job_id id, int done) {
    gx_store_event *ev = NULL;
    size_t n = 0;
    if (gx_store_job_events(s->store, id, &ev, &n, NULL)) return 0;
    size_t from = 0;
    for (size_t i = n; i-- > 0;)
        if (ev[i].state == GX_JOB_QUEUED && ev[i].error && !strncmp(ev[i].error, GX_SVC_REQUEUE_NOTE, strlen(GX_SVC_REQUEUE_NOTE))) {
            from = i;
            break;
        }
    int own = 0;
    for (size_t i = from; i < n; i++) own += ev[i].state == GX_JOB_RETRYING;
    gx_store_free(ev);
    return done - own > 0 ? done - own : 0;
}

/* The blob loader of a restore: notes when a blob's bytes are missing or
 * damaged (the store's per-blob answer, field "blob"), which fails the
 * job alone; any other store error (a failed read) stops the start. */
typedef struct restore_blobs {
    gx_service *s;
    int damaged;
} restore_blobs;

static int restore_blob_load(void *ctx, const char *tenant, const char *id, gx_array **out, gx_error *err) {
    restore_blobs *rb = ctx;
    int rc = gx__svc_blob_load(rb->s, tenant, id, out, err);
    if (rc == GX_ESTORE && !strcmp(err->field, "blob")) rb->damaged = 1;
    return rc;
}

static int restore_one(void *ctx, const gx_store_job *job) {
    restore_ctx *rc = ctx;
    gx_service *s = rc->s;
    if (rc->n == rc->cap) restore_flush(rc);
    gx_jobreq *jr = &rc->reqs[rc->n];
    gx_error err;
    gx_error_clear(&err);
    char tenant[64];
    snprintf(tenant, sizeof tenant, "%s", job->tenant);
    /* a job's tenant is stored before its job; one that is not (a key made
     * while the store failed, before that was refused) is made again
     * rather than its jobs refused by name */
    if (gx__svc_tenant_ensure(s, tenant, &err) == GX_ESTORE) /* else refused by name below, and failed */
        return gx_error_set(rc->err, GX_ESTORE, NULL, "restoring job %llu: its tenant %s: %s",
                            (unsigned long long)job->id, tenant, err.message);
    gx_error_clear(&err);
    json_t *obj = json_loads(job->spec_json, 0, NULL);
    restore_blobs rb = {s, 0};
    int code = obj ? gx_jobreq_decode(obj, tenant, restore_blob_load, &rb, 0, 0, NULL, jr, &err)
                   : gx_error_set(&err, GX_EFORMAT, NULL, "stored spec is not JSON");
    json_decref(obj);
    /* an input blob whose bytes are missing or damaged fails this job
     * alone, as documented; the upload and a requeue run it again */
    int blob_damage = code == GX_ESTORE && rb.damaged;
    if (!code) {
        /* spec.tenant points at our stack buffer: re-point into the json */
        jr->spec.tenant = NULL;
        json_t *tn = json_string(job->tenant);
        json_object_set_new(jr->root, "\x01tenant", tn);
        jr->spec.tenant = json_string_value(tn);
        /* a spec stored without a priority (before tenants had a default):
         * the one its row holds, not the tenant's default of now */
        if (jr->spec.priority == GX_PRIORITY_TENANT) jr->spec.priority = job->priority;
        /* dependencies that ended before the restart */
        code = gx__svc_resolve_deps(s, jr, NULL, 1, &err);
    }
    if (code == GX_ESTORE && !blob_damage) {
        /* the store cannot be read now (a dependency, a blob's record):
         * this job is no more failed than any other; the start fails
         * (exit 1, a restart tries again) rather than decide its fate on it */
        gx_jobreq_free(jr);
        return gx_error_set(rc->err, GX_ESTORE, NULL, "restoring job %llu: %s", (unsigned long long)job->id,
                            err.message);
    }
    gx_job_id fdep = code ? 0 : restore_failed_dep(rc, jr->spec.deps, jr->spec.ndeps);
    if (fdep) code = gx_error_set(&err, GX_EDEPFAILED, "depends_on", "dependency %llu failed", (unsigned long long)fdep);
    if (code) {
        gx_jobreq_free(jr);
        restore_fail(rc, job->id, job->attempt, code, err.message);
        return 0;
    }
    rc->specs[rc->n] = jr->spec;
    rc->specs[rc->n].id = job->id;
    /* A job the load moved back from scheduled or running (attempt + 1,
     * start_ns 0) has made one attempt fewer than its stored number: that
     * number is the attempt it runs as next (it fences the writes of the
     * interrupted one). A job queued for a retry keeps the start of the
     * attempt that failed, a new one has attempt 0. */
    int done = job->attempt;
    if (job->state == GX_JOB_QUEUED && done > 0 && job->start_ns == 0) {
        done--;
        rc->specs[rc->n].attempt_floor = job->attempt; /* its final events before it runs */
    }
    rc->specs[rc->n].attempts_done = done;
    /* a job past its first attempt may have made attempts that use none
     * of its budget: its events say which. Only such jobs are looked at,
     * so a big restore of new jobs reads no events. */
    if (done >= 1) rc->specs[rc->n].attempt_base = budget_base(s, job->id, done);
    rc->specs[rc->n].restored = 1; /* no second queued (or waiting) event */
    rc->specs[rc->n].stored_state = job->state;
    rc->specs[rc->n].submitted_ns = job->submit_ns;
    const gx_kernel *k = gx_kernel_find(jr->spec.kernel);
    if (k && (k->flags & GX_KF_CHECKPOINT)) resume_from_checkpoint(rc, job);
    if (job->error_code == GX_EDEVICE) restore_blame(s, job->id, jr, &rc->specs[rc->n]);
    rc->n++;
    return 0;
}

static int restore(gx_service *s, gx_error *err) {
    restore_ctx rc = {.s = s, .cap = 10000, .err = err};
    rc.specs = calloc(rc.cap, sizeof *rc.specs);
    rc.reqs = calloc(rc.cap, sizeof *rc.reqs);
    rc.ck = calloc(rc.cap, sizeof *rc.ck);
    rc.nck = calloc(rc.cap, sizeof *rc.nck);
    if (!rc.specs || !rc.reqs || !rc.ck || !rc.nck) {
        free(rc.specs);
        free(rc.reqs);
        free(rc.ck);
        free(rc.nck);
        return gx_error_set(err, GX_ENOMEM, NULL, "out of memory restoring jobs");
    }
    int64_t t0 = gx__now_ns(), requeued = 0;
    int code = gx_store_load_unfinished(s->store, restore_one, &rc, &requeued, err);
    restore_flush(&rc);
    gx__hmap_free(&rc.failed_ids);
    /* the jobs it failed are final in the store before the daemon is
     * ready: a client reads them from there (the engine never held them) */
    gx_error ferr;
    if (!code && rc.failed && gx_store_flush(s->store, &ferr))
        GX_LOGW("restore: recording the jobs that could not be restored: %s", ferr.message);
    free(rc.specs);
    free(rc.reqs);
    free(rc.ck);
    free(rc.nck);
    if (code) return code;
    GX_LOGI("restored %lld unfinished jobs (%lld were running and are re-queued; %lld resume from a checkpoint; "
            "%lld could not be restored) in %.3f s",
            (long long)rc.restored, (long long)requeued, (long long)rc.resumed, (long long)rc.failed,
            (double)(gx__now_ns() - t0) / 1e9);
    return 0;
}

/* ---- lifecycle -------------------------------------------------------------- */

static void cpu_selftest(gx_service *s) {
    /* reduce_sum over 1..1000 on every CPU device must give 500500 */
    int64_t n = 1000;
    gx_array *x;
    if (gx_array_new(GX_F64, 1, &n, &x, NULL)) return;
    for (int i = 0; i < n; i++) ((double *)x->data)[i] = i + 1;
    gx_named_input in = {.name = "x", .array = x};
    gx_job_spec sp;
    gx_job_spec_init(&sp);
    sp.kernel = "reduce_sum";
    sp.inputs = &in;
    sp.ninputs = 1;
    sp.device = "cpu";
    sp.id = atomic_load(&s->next_id); /* never stored, forgotten below: the id is reused */
    s->selftest_id = sp.id;
    gx_job_id id;
    gx_error err;
    snprintf(s->cpu_selftest, sizeof s->cpu_selftest, "self-test did not end in 10 s");
    if (gx_submit(s->engine, &sp, &id, NULL, &err)) /* engine.cpu_mem too small for its 8 KB, say */
        snprintf(s->cpu_selftest, sizeof s->cpu_selftest, "self-test refused: %.40s%s%.120s", err.field,
                 err.field[0] ? ": " : "", err.message);
    else if (!gx_job_wait(s->engine, id, 10000, NULL)) {
        gx_output *o;
        int no;
        gx_job_info info;
        if (!gx_job_get(s->engine, id, &info, NULL) && info.state != GX_JOB_SUCCEEDED) {
            snprintf(s->cpu_selftest, sizeof s->cpu_selftest, "self-test: reduce_sum %s: %.100s",
                     gx_job_state_name(info.state), info.error);
        } else if (!gx_job_outputs(s->engine, id, &o, &no, &err)) {
            double got = no ? gx_array_get_f64(o[0].array, 0) : 0;
            if (got == 500500.0)
                s->cpu_selftest[0] = '\0';
            else
                snprintf(s->cpu_selftest, sizeof s->cpu_selftest, "self-test: reduce_sum gave %g, want 500500", got);
            gx_outputs_free(o, no);
        } else {
            snprintf(s->cpu_selftest, sizeof s->cpu_selftest, "self-test failed: %.100s", err.message);
        }
        gx_job_forget(s->engine, id);
    }
    gx_array_unref(x);
}

/* Devices an operator drained stay drained across restarts; a drain of a
 * device this start does not have is kept for when it is back. */
static void restore_drains(gx_service *s) {
    gx_store_setting *v = NULL;
    size_t n = 0;
    gx_error err;
    if (gx_store_settings_get(s->store, GX__DRAIN_KEY, &v, &n, &err)) {
        GX_LOGE("devices: the stored drains could not be read (%s); every device starts undrained", err.message);
        return;
    }
    for (size_t k = 0; k < n; k++) {
        const char *name = v[k].key + strlen(GX__DRAIN_KEY);
        int found = 0;
        for (int i = 0; i < gx_device_count(s->engine) && !found; i++) {
            gx_device_info d;
            if (gx_device_get(s->engine, i, &d) || strcmp(d.name, name)) continue;
            found = 1;
            if (gx_device_drain(s->engine, i, 1, &err)) GX_LOGE("devices: %s stays undrained: %s", name, err.message);
            else GX_LOGW("devices: %s stays drained (an operator drained it before the restart)", name);
        }
        if (!found) GX_LOGW("devices: %s is drained but not present; it stays drained when it is back", name);
    }
    gx_store_free(v);
}

/* One daemon per data directory: a second one on the same store would
 * restore and run the same jobs and write over the first one's records (it
 * did, while the first was draining after a SIGTERM). The lock goes with
 * the process; its descriptor is close-on-exec, so the restart after a
 * device loss (an exec) takes it again. */
/* flock path (created) for this daemon, its pid written in; *fd. GX_EBUSY
 * naming the daemon that holds it. */
static int lock_one(const char *path, const char *field, const char *what, int *fd_out, gx_error *err) {
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) return gx_error_set(err, GX_EIO, field, "cannot open %s: %s", path, strerror(errno));
    if (flock(fd, LOCK_EX | LOCK_NB)) {
        char pid[24] = "";
        ssize_t n = pread(fd, pid, sizeof pid - 1, 0);
        pid[n > 0 ? n : 0] = '\0';
        pid[strcspn(pid, "\n")] = '\0';
        close(fd);
        return gx_error_set(err, GX_EBUSY, field, "another gexecd (pid %s) is using %s: %s", pid[0] ? pid : "unknown",
                            what,
                            !strcmp(field, "data_dir")    ? "one daemon per data directory"
                            : !strcmp(field, "blobs.dir") ? "one daemon per blob folder"
                                                          : "one daemon per store");
    }
    char pid[24];
    int len = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) || pwrite(fd, pid, (size_t)len, 0) != len)
        GX_LOGW("cannot write the pid into %s: %s", path, strerror(errno));
    *fd_out = fd;
    return 0;
}

/* One daemon per data directory, per SQLite store wherever store.path puts
 * it (two data directories naming one store.path both ran its jobs), and
 * per blob folder wherever blobs.dir puts it (the retention and the sweep
 * remove files that no row of their own store names). */
static int lock_data_dir(gx_service *s, gx_error *err) {
    char path[4096];
    const char *dir = s->cfg.data_dir ? s->cfg.data_dir : ".";
    snprintf(path, sizeof path, "%s/gexecd.lock", dir);
    int rc = lock_one(path, "data_dir", dir, &s->lock_fd, err);
    if (!rc && s->cfg.blobs.dir) {
        char bpath[4200];
        snprintf(bpath, sizeof bpath, "%s/.gexecd.lock", s->cfg.blobs.dir);
        rc = lock_one(bpath, "blobs.dir", s->cfg.blobs.dir, &s->blob_lock_fd, err);
    }
    if (rc || s->cfg.store.backend == GX_CFG_STORE_POSTGRES || !s->cfg.store.path) return rc;
    char spath[4096];
    snprintf(spath, sizeof spath, "%s.lock", s->cfg.store.path);
    struct stat a, b;
    if (!stat(path, &a) && !stat(spath, &b) && a.st_dev == b.st_dev && a.st_ino == b.st_ino)
        return 0; /* the same file (store.path is <data_dir>/gexecd): held already */
    return lock_one(spath, "store.path", s->cfg.store.path, &s->store_lock_fd, err);
}

/* A start error from a module named by the configuration's key, and by the
 * file when its message does not name it ("sqlite: file is not a database"). */
static void name_key(gx_error *err, const char *key, const char *file) {
    snprintf(err->field, sizeof err->field, "%s", key);
    if (file && !strstr(err->message, file)) {
        char m[sizeof err->message * 2];
        snprintf(m, sizeof m, "%.200s: %.255s", file, err->message);
        snprintf(err->message, sizeof err->message, "%.255s", m);
    }
}

int gx_service_start(const gx_config *cfg, gx_service **out, gx_error *err) {
    gx_service *s = calloc(1, sizeof *s);
    if (!s) return gx_error_set(err, GX_ENOMEM, NULL, "out of memory");
    s->bcache = calloc(1, sizeof *s->bcache);
    int rc = s->bcache ? gx_config_copy(&s->cfg, cfg) : GX_ENOMEM;
    if (rc) {
        free(s->bcache);
        free(s);
        return gx_error_set(err, rc, NULL, "out of memory");
    }
    s->start_ns = gx__wall_ns();
    s->lock_fd = -1;
    s->store_lock_fd = -1;
    s->blob_lock_fd = -1;
    s->listen_fd = -1;
    pthread_mutex_init(&s->amu, NULL);
    pthread_mutex_init(&s->idmu, NULL);
    pthread_mutex_init(&s->pinmu, NULL);
    pthread_mutex_init(&s->tmu, NULL);
    pthread_cond_init(&s->idcv, NULL);
    pthread_cond_init(&s->acv, NULL);
    pthread_cond_init(&s->adone, NULL);
    pthread_mutex_init(&s->pmu, NULL);
    pthread_cond_init(&s->pcv, NULL);
    pthread_mutex_init(&s->smu, NULL);
    pthread_mutex_init(&s->bmu, NULL);
    pthread_mutex_init(&s->dmu, NULL);
    /* the address first: a daemon that cannot have it (in use, a typo)
     * fails here, before it restores and runs any job; it used to run them
     * for http.shutdown_timeout and then exit, an attempt more on each job
     * every time systemd started it again */
    if ((rc = gx__svc_events_init(s))) {
        rc = gx_error_set(err, rc, "http.stream_replay_events", "out of memory for the %lld events kept for replay",
                          (long long)s->cfg.http.stream_replay_events);
        goto fail;
    }
    s->listen_fd = gx__svc_inherited_listener();
    if (s->listen_fd < 0 && (rc = gx_http_listen(s->cfg.listen, &s->listen_fd, err))) goto fail;
    /* an empty store file in a folder that has served (its key database is
     * made after the store): SQLite would take it as a new store and start
     * with no jobs, without a word */
    struct stat dbst, keyst;
    char keydb[4200];
    snprintf(keydb, sizeof keydb, "%s/auth.db", s->cfg.data_dir);
    if (!stat(s->cfg.store.path, &dbst) && S_ISREG(dbst.st_mode) && dbst.st_size == 0 && !stat(keydb, &keyst) &&
        keyst.st_size > 0) {
        rc = gx_error_set(err, GX_ESTORE, "store.path",
                          "%s is empty (0 bytes) but this data folder has served before (%s): the store was "
                          "truncated or replaced; restore it from a backup, or remove it to start with no jobs",
                          s->cfg.store.path, keydb);
        goto fail;
    }
    /* the data folder (auth.db, the audit log, the locks), made when
     * missing whatever store.path and blobs.dir say */
    rc = gx__make_dirs(s->cfg.data_dir ? s->cfg.data_dir : ".", "data_dir", err);
    if (rc) goto fail;
    gx_store_config sc;
    gx_store_config_init(&sc);
    sc.path = s->cfg.store.path;
    sc.blob_dir = s->cfg.blobs.dir;
    sc.synchronous = s->cfg.store.synchronous == GX_CFG_SYNC_NORMAL ? "normal" : "full";
    sc.commit_delay_us = (int)s->cfg.store.commit_delay_us;
    sc.wal_checkpoint_bytes = (int64_t)s->cfg.store.wal_checkpoint;
    sc.backend = s->cfg.store.backend == GX_CFG_STORE_POSTGRES ? "postgres" : "sqlite";
    sc.on_commit = gx__svc_on_commit;
    sc.on_commit_ctx = s;
    sc.after_callbacks = admit_after_callbacks;
    sc.after_callbacks_ctx = s;
    rc = gx_store_open(&sc, &s->store, err);
    if (rc) { /* the store names its own fields: name the configuration's key, and the file */
        int blobs = !strcmp(err->field, "blob") || !strcmp(err->field, "blob_dir");
        name_key(err, blobs ? "blobs.dir" : "store.path", blobs ? s->cfg.blobs.dir : s->cfg.store.path);
        goto fail;
    }
    rc = lock_data_dir(s, err); /* the store made the folder */
    if (rc) goto fail;
    rc = gx__svc_auth_open(s, err);
    if (rc) {
        char file[4200];
        snprintf(file, sizeof file, "%s/%s", s->cfg.data_dir, strstr(err->message, "audit") ? "audit.log" : "auth.db");
        if (strcmp(err->field, "auth.admin_key_file") && strcmp(err->field, "admin_key")) name_key(err, "data_dir", file);
        goto fail;
    }
    gx_engine_opts eo;
    gx_engine_opts_init(&eo);
    if (s->cfg.kernels.plugins && (rc = load_kernel_plugins(s->cfg.kernels.plugins, err))) goto fail;
    gx_config_engine_opts(&s->cfg, &eo);
    eo.on_events = on_events;
    eo.events_ctx = s;
    eo.on_checkpoint = gx__svc_on_checkpoint;
    eo.checkpoint_ctx = s;
    if (gx__svc_ckpt_start(s)) {
        rc = gx_error_set(err, GX_ENOMEM, NULL, "cannot start the checkpoint writer");
        goto fail;
    }
    gx__svc_restart_init(s);
    eo.on_device_lost = gx__svc_device_lost;
    eo.device_lost_ctx = s;
    eo.on_device_health = gx__svc_device_health;
    eo.device_health_ctx = s;
    eo.no_default_tenant = 1;
    rc = gx_engine_create(&eo, &s->engine, err);
    if (rc) goto fail;
    GX_LOGI("devices: %d; %s", gx_device_count(s->engine), gx_engine_gpu_status(s->engine));
    /* tenants: the default one, then the stored ones, with their quotas */
    rc = gx__svc_tenants_load(s, err);
    if (rc) goto fail;
    gx__svc_usage_load(s);
    rc = gx__svc_metrics_init(s);
    if (rc) {
        gx_error_set(err, rc, NULL, "cannot set up metrics");
        goto fail;
    }
    uint64_t maxid = 0;
    rc = gx_store_max_job_id(s->store, &maxid, err);
    if (rc) goto fail;
    atomic_store(&s->next_id, maxid + 1);
    if (pthread_create(&s->persister, NULL, persister_main, s) ||
        !svc_start_admitters(s)) {
        rc = gx_error_set(err, GX_ENOMEM, NULL, "cannot start threads");
        goto fail;
    }
    /* the self-test runs before the restore: behind the restored queue it
     * would wait for all of it, and the daemon with it (not ready) */
    gx__svc_inject_env(1); /* tests: a fault for the self-test (":selftest") */
    cpu_selftest(s);
    if (s->cpu_selftest[0]) GX_LOGE("cpu: %s", s->cpu_selftest);
    gx__svc_inject_env(0); /* tests: after the self-test, before the restore */
    /* the self-test's state changes must reach the store (as no-ops) before
     * a real job can take its id; a store that takes no writes fails the
     * start here rather than hang it (the signals wait for the start) */
    if (gx__svc_settle_for(s, GX_SVC_START_SETTLE_MS)) {
        rc = gx_error_set(err, GX_ESTORE, "store.path",
                          "%s takes no writes (the start-up's state changes were not written in %d s; the log "
                          "says why)",
                          s->cfg.store.path, GX_SVC_START_SETTLE_MS / 1000);
        goto fail;
    }
    s->selftest_id = 0; /* its events are handled: the id is a real job's from now on */
    /* the restored jobs run once the start has succeeded: a start that
     * fails later (the port taken, say) runs nothing and adds no attempt */
    gx_engine_pause(s->engine, 1);
    /* the HTTP server before the restore, which takes seconds with a
     * million queued jobs: /healthz answers 200 and /readyz 503 meanwhile,
     * every other request 503 with Retry-After (gx__svc_http_pre) */
    gx_http_opts ho = {
        .listen = s->cfg.listen,
        .threads = (int)(s->cfg.http.threads > 0 ? s->cfg.http.threads : sysconf(_SC_NPROCESSORS_ONLN)),
        .max_body = s->cfg.http.max_body,
        .max_header = s->cfg.http.max_header_bytes,
        .max_connections = (unsigned)s->cfg.http.max_connections,
        .timeout_s = (unsigned)((s->cfg.http.timeout_ms + 999) / 1000),
        .max_per_client = (unsigned)s->cfg.http.max_connections_per_client,
        .request_timeout_ms = s->cfg.http.request_timeout_ms,
        .stream_heartbeat_ms = s->cfg.http.stream_heartbeat_ms,
        .tls_cert = s->cfg.tls.cert,
        .tls_key = s->cfg.tls.key,
        .routes = gx__routes,
        .nroutes = gx__nroutes,
        .app = s,
        .on_done = gx__svc_http_done,
        .pre = gx__svc_http_pre,
        .listen_fd = s->listen_fd,
    };
    rc = gx_http_start(&ho, &s->http, err);
    if (rc) goto fail;
    s->listen_fd = -1; /* libmicrohttpd's now */
    /* an operator's drains, before the restored jobs can be placed */
    restore_drains(s);
    rc = restore(s, err);
    if (rc) goto fail;
    /* faults.startup: armed once restored, so they hit the first requests
     * rather than the start-up's own writes */
    rc = gx__svc_faults_start(s, err);
    if (rc) goto fail;
    if (gx__svc_retention_start(s)) {
        rc = gx_error_set(err, GX_ENOMEM, NULL, "cannot start the retention thread");
        goto fail;
    }
    atomic_store(&s->restored, 1);
    gx_engine_pause(s->engine, 0);
    *out = s;
    return 0;
fail:
    gx_service_stop(s);
    return rc ? rc : GX_EINVAL;
}

int gx_service_port(const gx_service *s) { return gx_http_port(s->http); }

int gx_service_ready(gx_service *s, char *why, size_t cap) {
    if (s->draining) {
        snprintf(why, cap, "draining: %s", atomic_load(&s->restart_pending) ? "restarting after a device loss" : "shutting down");
        return 0;
    }
    if (!atomic_load(&s->restored)) {
        snprintf(why, cap, "starting: restoring jobs from the store");
        return 0;
    }
    if (gx_store_max_job_id(s->store, &(uint64_t){0}, NULL)) {
        snprintf(why, cap, "store not answering");
        return 0;
    }
    gx_store_stats st;
    gx_store_stats_get(s->store, &st);
    if (st.failing_commits >= 3) { /* reads work, writes do not: a full disk, say */
        snprintf(why, cap, "store failing: the last %llu commits failed (submissions answer 503)",
                 (unsigned long long)st.failing_commits);
        return 0;
    }
    int n = gx_device_count(s->engine), ok = 0;
    for (int i = 0; i < n; i++) {
        gx_device_info d;
        if (!gx_device_get(s->engine, i, &d) && d.healthy && !(d.kind == GX_DEV_CPU && s->cpu_selftest[0])) ok++;
    }
    if (!ok) {
        /* a device that passed and is down now says why (a recovery, a
         * fault), not that it never passed */
        for (int i = 0; i < n && !s->cpu_selftest[0]; i++) {
            gx_device_info d;
            if (gx_device_get(s->engine, i, &d) || d.healthy) continue;
            gx__svc_status_redact_jobs(d.status); /* /readyz asks for no key */
            snprintf(why, cap, "no healthy device: %s %s", d.name,
                     d.status[0] ? d.status : d.lost ? "lost" : d.recovering ? "recovering" : "unhealthy");
            return 0;
        }
        snprintf(why, cap, "no device passed its self-test%s%s", s->cpu_selftest[0] ? ": " : "", s->cpu_selftest);
        return 0;
    }
    snprintf(why, cap, "ok; %s", gx_engine_gpu_status(s->engine));
    return 1;
}

void gx_service_stop(gx_service *s) {
    if (s) gx__svc_shutdown(s, 0);
}

int gx__svc_shutdown(gx_service *s, int for_exec) {
    s->draining = 1;
    int lfd = -1;
    if (s->http && for_exec) lfd = gx_http_quiesce_keep(s->http); /* the next image serves it */
    else if (s->http) gx_http_quiesce(s->http);
    if (s->engine) {
        /* start nothing new: queued jobs stay queued for the next start */
        gx_engine_pause(s->engine, 1);
        /* let running jobs finish within the grace period; queued jobs stay
         * queued in the store for the next start */
        int64_t ms = s->cfg.shutdown_timeout_ms;
        if (for_exec && ms > GX_RESTART_DRAIN_MS) ms = GX_RESTART_DRAIN_MS;
        int64_t until = gx__now_ns() + ms * 1000000;
        for (;;) {
            gx_engine_stats st;
            gx_engine_stats_get(s->engine, &st);
            if (!st.running) break;
            if (gx__now_ns() > until) { /* they stay running in the store and run again at the next start */
                GX_LOGW("drain: %lld job(s) still running after %lld ms (%s); they run again as a new attempt at "
                        "the next start",
                        (long long)st.running, (long long)ms, for_exec ? "restart drain" : "shutdown_timeout");
                break;
            }
            struct timespec ts = {0, 10000000};
            nanosleep(&ts, NULL);
        }
    }
    /* answer every admission before the HTTP server stops: libmicrohttpd
     * aborts if a connection is still suspended then */
    pthread_mutex_lock(&s->amu);
    s->admit_closed = 1;
    while (s->admit_inflight > 0 || s->aq_head || s->admit_busy) pthread_cond_wait(&s->adone, &s->amu);
    pthread_mutex_unlock(&s->amu);
    pthread_mutex_lock(&s->smu);
    s->stopping = 1; /* streams end */
    pthread_mutex_unlock(&s->smu);
    /* now, while the server still runs: a stream asleep for want of events
     * would otherwise first run again in gx_http_stop, whose closing of
     * every connection cut it before its end went out (a client saw a
     * dropped connection, and `gexec events` waited to reconnect) */
    if (s->http) gx_http_wake_streams(s->http);
    pthread_mutex_lock(&s->pmu); /* and settle waits, which the HTTP stop joins */
    pthread_cond_broadcast(&s->pcv);
    pthread_mutex_unlock(&s->pmu);
    /* the answers just given reach their clients before the sockets close */
    if (s->http) gx_http_wait_idle(s->http, 1000);
    if (s->http) gx_http_stop(s->http);
    pthread_mutex_lock(&s->amu);
    pthread_cond_broadcast(&s->acv);
    pthread_mutex_unlock(&s->amu);
    for (int i = 0; i < s->nadmitters; i++) pthread_join(s->admitter[i], NULL);
    /* the persister uses the engine: it finishes the events it has, then
     * stops, before the engine goes (a job ending after this point is
     * re-run after the restart: at-least-once) */
    if (s->engine) gx_engine_sync_events(s->engine);
    pthread_mutex_lock(&s->pmu);
    s->persist_stop = 1;
    pthread_cond_broadcast(&s->pcv);
    pthread_mutex_unlock(&s->pmu);
    if (s->persister) pthread_join(s->persister, NULL);
    /* every attempt that ended is charged now: the hour's device time as of
     * the stop, for the next start */
    if (s->engine && s->store) gx__svc_usage_save(s);
    /* for an exec the engine stays: a lost device may hold a thread that
     * never returns; the exec ends every thread */
    if (s->engine && !for_exec) gx_engine_destroy(s->engine);
    /* after the engine: kernels may wait on it; before an exec the engine
     * still runs, so the stopped queue stays for them (the exec frees it) */
    gx__svc_ckpt_stop(s, for_exec);
    gx__svc_retention_stop(s);
    if (s->store) {
        gx_store_flush(s->store, NULL);
        gx_store_close(s->store);
        s->store = NULL;
    }
    gx__svc_auth_close(s);
    if (s->lock_fd >= 0) close(s->lock_fd); /* the next daemon may start */
    if (s->store_lock_fd >= 0) close(s->store_lock_fd);
    if (s->blob_lock_fd >= 0) close(s->blob_lock_fd);
    s->lock_fd = s->store_lock_fd = s->blob_lock_fd = -1;
    if (s->listen_fd >= 0) close(s->listen_fd); /* HTTP never took it */
    s->listen_fd = -1;
    if (for_exec) return lfd;
    gx__svc_metrics_free(s);
    for (int i = 0; s->bcache && i < BCACHE_SLOTS; i++) gx_array_unref(s->bcache->arr[i]);
    free(s->bcache);
    gx__svc_events_free(s);
    free(s->pev);
    free(s->later);
    free(s->usage);
    gx__hmap_free(&s->pins);
    gx_config_free(&s->cfg);
    free(s);
    return -1;
}
