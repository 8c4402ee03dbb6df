/*
 * checkpoints.c - durable checkpoints: the engine's checkpoints of
 * GX_KF_CHECKPOINT kernels (linreg_gd) written to the store, and read back
 * when a job is restored after a restart, so its next attempt resumes.
 *
 * The engine hands each checkpoint to gx__svc_on_checkpoint on the
 * kernel's thread. It is encoded (the arrays as .npy, one after another)
 * and queued for the writer thread, so the kernel does not wait for the
 * commit; but a job's next checkpoint waits until its previous one is
 * committed, so every checkpoint is durable before the next replaces it
 * and a job never has more than one queued. The store keeps only the
 * latest per job and deletes it when the job ends. A write that fails
 * (store fault) is retried once and then dropped with a log line: the
 * stored checkpoint stays the previous one, an older but valid state.
 *
 * Encoding: "GXCKPT01", u32 n (little-endian), then per array u64 length
 * and the .npy bytes.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "service.h"

#define MAGIC "GXCKPT01"
#define MAX_ARRAYS 64

typedef struct ck_item {
    gx_job_id id;
    int attempt;
    int64_t step;
    void *bytes;
    size_t len;
    struct ck_item *next;
} ck_item;

struct gx__ckq {
    pthread_mutex_t mu;
    pthread_cond_t cv;   /* writer: work or stop; callers: a write finished */
    ck_item *head, *tail;
    gx_job_id writing;   /* job whose checkpoint is being written, 0 */
    int stop;
    pthread_t thread;
    int started;
    int64_t written, dropped;
};

/* ---- encoding ---------------------------------------------------------------- */

static void put_le(unsigned char *p, uint64_t v, int n) {
    for (int i = 0; i < n; i++) p[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t get_le(const unsigned char *p, int n) {
    uint64_t v = 0;
    for (int i = 0; i < n; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static int encode(gx_array *const *state, int n, void **out, size_t *len) {
    void *npy[MAX_ARRAYS] = {0};
    size_t nl[MAX_ARRAYS] = {0}, total = 12;
    int rc = n > MAX_ARRAYS ? GX_ELIMIT : 0;
    for (int i = 0; i < n && !rc; i++) {
        rc = gx_npy_write_mem(state[i], &npy[i], &nl[i], NULL);
        total += 8 + nl[i];
    }
    unsigned char *buf = rc ? NULL : malloc(total);
    if (!rc && !buf) rc = GX_ENOMEM;
    if (!rc) {
        memcpy(buf, MAGIC, 8);
        put_le(buf + 8, (uint64_t)n, 4);
        size_t off = 12;
        for (int i = 0; i < n; i++) {
            put_le(buf + off, nl[i], 8);
            memcpy(buf + off + 8, npy[i], nl[i]);
            off += 8 + nl[i];
        }
        *out = buf;
        *len = total;
    }
    for (int i = 0; i < n && i < MAX_ARRAYS; i++) free(npy[i]);
    return rc;
}

static int decode(const unsigned char *p, size_t len, gx_array ***out, int *n, gx_error *err) {
    if (len < 12 || memcmp(p, MAGIC, 8))
        return gx_error_set(err, GX_EFORMAT, "checkpoint", "stored checkpoint has an unknown format");
    uint64_t k = get_le(p + 8, 4);
    if (k > MAX_ARRAYS) return gx_error_set(err, GX_EFORMAT, "checkpoint", "stored checkpoint holds %llu arrays",
                                            (unsigned long long)k);
    gx_array **arr = calloc(k ? k : 1, sizeof *arr);
    if (!arr) return gx_error_set(err, GX_ENOMEM, NULL, "out of memory");
    size_t off = 12;
    int rc = 0;
    for (uint64_t i = 0; i < k && !rc; i++) {
        uint64_t l = off + 8 <= len ? get_le(p + off, 8) : UINT64_MAX;
        if (l > len - off - 8) {
            rc = gx_error_set(err, GX_EFORMAT, "checkpoint", "stored checkpoint is truncated");
            break;
        }
        rc = gx_npy_read_mem(p + off + 8, (size_t)l, &arr[i], err);
        off += 8 + (size_t)l;
    }
    if (rc) {
        for (uint64_t i = 0; i < k; i++) gx_array_unref(arr[i]);
        free(arr);
        return rc;
    }
    *out = arr;
    *n = (int)k;
    return 0;
}

/* ---- writer ------------------------------------------------------------------- */

static int job_queued(const struct gx__ckq *q, gx_job_id id) {
    if (q->writing == id) return 1;
    for (const ck_item *it = q->head; it; it = it->next)
        if (it->id == id) return 1;
    return 0;
}

static void *writer_main(void *arg) {
    gx_service *s = arg;
    struct gx__ckq *q = s->ckq;
    pthread_mutex_lock(&q->mu);
    for (;;) {
        while (!q->head && !q->stop) pthread_cond_wait(&q->cv, &q->mu);
        ck_item *it = q->head;
        if (!it) break; /* stopping and drained */
        q->head = it->next;
        if (!q->head) q->tail = NULL;
        q->writing = it->id;
        pthread_mutex_unlock(&q->mu);
        int rc = 0;
        gx_error err;
        for (int attempt = 0; attempt < 2; attempt++) {
            rc = gx_store_checkpoint_put(s->store, it->id, it->attempt, it->step, it->bytes, it->len, NULL, &err);
            if (rc != GX_ESTORE) break;
            struct timespec ts = {0, 50000000};
            nanosleep(&ts, NULL);
        }
        if (rc)
            GX_LOGE("job %llu: checkpoint after step %lld not stored: %s", (unsigned long long)it->id,
                    (long long)it->step, err.message);
        free(it->bytes);
        free(it);
        pthread_mutex_lock(&q->mu);
        q->writing = 0;
        if (rc)
            q->dropped++;
        else
            q->written++;
        pthread_cond_broadcast(&q->cv);
    }
    pthread_mutex_unlock(&q->mu);
    return NULL;
}

int gx__svc_ckpt_start(gx_service *s) {
    struct gx__ckq *q = calloc(1, sizeof *q);
    if (!q) return GX_ENOMEM;
    pthread_mutex_init(&q->mu, NULL);
    pthread_cond_init(&q->cv, NULL);
    s->ckq = q;
    if (pthread_create(&q->thread, NULL, writer_main, s)) return GX_ENOMEM;
    q->started = 1;
    return 0;
}

void gx__svc_ckpt_stop(gx_service *s, int keep) {
    struct gx__ckq *q = s->ckq;
    if (!q) return;
    pthread_mutex_lock(&q->mu);
    q->stop = 1;
    pthread_cond_broadcast(&q->cv);
    pthread_mutex_unlock(&q->mu);
    if (q->started) pthread_join(q->thread, NULL);
    q->started = 0;
    if (keep) return; /* kernels still running may call in: they see stop */
    for (ck_item *it = q->head, *nx; it; it = nx) { /* only when the thread never ran */
        nx = it->next;
        free(it->bytes);
        free(it);
    }
    pthread_mutex_destroy(&q->mu);
    pthread_cond_destroy(&q->cv);
    free(q);
    s->ckq = NULL;
}

int gx__svc_on_checkpoint(void *ctx, gx_job_id id, int attempt, int64_t step, gx_array *const *state, int n) {
    gx_service *s = ctx;
    struct gx__ckq *q = s->ckq;
    if (!q) return 0;
    ck_item *it = calloc(1, sizeof *it);
    if (!it) return GX_ENOMEM;
    int rc = encode(state, n, &it->bytes, &it->len);
    if (rc) {
        free(it);
        return rc;
    }
    it->id = id;
    it->attempt = attempt;
    it->step = step;
    pthread_mutex_lock(&q->mu);
    /* the previous checkpoint of this job lands first */
    while (job_queued(q, id) && !q->stop) pthread_cond_wait(&q->cv, &q->mu);
    if (q->stop) {
        pthread_mutex_unlock(&q->mu);
        free(it->bytes);
        free(it);
        return 0; /* shutting down: the in-memory copy is all there is */
    }
    if (q->tail)
        q->tail->next = it;
    else
        q->head = it;
    q->tail = it;
    pthread_cond_broadcast(&q->cv);
    pthread_mutex_unlock(&q->mu);
    return 0;
}

int gx__svc_ckpt_load(gx_service *s, gx_job_id id, gx_array ***arr, int *n, int64_t *step, int *attempt,
                      gx_error *err) {
    *arr = NULL;
    *n = 0;
    void *bytes = NULL;
    size_t len = 0;
    int rc = gx_store_checkpoint_get(s->store, id, attempt, step, &bytes, &len, err);
    if (rc == GX_ENOTFOUND) return 0;
    if (!rc) rc = decode(bytes, len, arr, n, err);
    gx_store_free(bytes);
    return rc;
}

void gx__svc_ckpt_counts(gx_service *s, int64_t *written, int64_t *dropped) {
    struct gx__ckq *q = s->ckq;
    *written = *dropped = 0;
    if (!q) return;
    pthread_mutex_lock(&q->mu);
    *written = q->written;
    *dropped = q->dropped;
    pthread_mutex_unlock(&q->mu);
}

void gx__svc_ckpt_free(gx_array **arr, int n) {
    for (int i = 0; arr && i < n; i++) gx_array_unref(arr[i]);
    free(arr);
}
