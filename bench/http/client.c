/*
 * client.c - the load client of the HTTP benchmark (bench/http/run.sh) for
 * what wrk cannot do: batch submissions and end-to-end completion.
 *
 *   client batch URL JOBS REPS   POST /v1/jobs:batch with JOBS no-op spin
 *                                jobs, REPS times back to back on one
 *                                connection; one line per request:
 *                                "seconds accepted"
 *   client e2e URL JOBS          open GET /v1/events?state=succeeded, POST one
 *                                batch of JOBS no-op jobs, wait until the
 *                                stream has reported every one of them
 *                                succeeded; prints "seconds" (from the start
 *                                of the POST to the last event)
 *
 * Each request is timed from before curl_easy_perform to its return (the
 * whole 202/200 reply received). A job is accepted only once committed to
 * the store, so accepted jobs / request time is durable jobs per second.
 */
#include <curl/curl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>


/* "Authorization: Bearer $GEXEC_API_KEY" appended to h when the variable is set. */
static struct curl_slist *auth_header(struct curl_slist *h) {
    const char *k = getenv("GEXEC_API_KEY");
    if (!k || !*k) return h;
    char line[160];
    snprintf(line, sizeof line, "Authorization: Bearer %s", k);
    return curl_slist_append(h, line);
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

typedef struct buf {
    char *p;
    size_t n, cap;
} buf;

static size_t collect(char *d, size_t sz, size_t nm, void *ctx) {
    buf *b = ctx;
    size_t k = sz * nm;
    if (b->n + k + 1 > b->cap) {
        size_t nc = b->cap ? b->cap * 2 : 65536;
        while (nc < b->n + k + 1) nc *= 2;
        char *np = realloc(b->p, nc);
        if (!np) return 0;
        b->p = np;
        b->cap = nc;
    }
    memcpy(b->p + b->n, d, k);
    b->n += k;
    b->p[b->n] = '\0';
    return k;
}

static char *batch_body(long jobs) {
    const char *one = "{\"kernel\":\"spin\"}";
    size_t len = 16 + (size_t)jobs * (strlen(one) + 1);
    char *s = malloc(len);
    size_t k = (size_t)sprintf(s, "{\"jobs\":[");
    for (long i = 0; i < jobs; i++) k += (size_t)sprintf(s + k, "%s%s", i ? "," : "", one);
    sprintf(s + k, "]}");
    return s;
}

/* POST body to url on h; the accepted count from the reply, -1 on failure. */
static long post_batch(CURL *h, const char *url, const char *body, double *secs) {
    buf b = {0};
    struct curl_slist *hd = auth_header(curl_slist_append(NULL, "Content-Type: application/json"));
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hd);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
    double t0 = now();
    CURLcode rc = curl_easy_perform(h);
    *secs = now() - t0;
    curl_slist_free_all(hd);
    long status = 0, acc = -1;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    if (rc == CURLE_OK && status == 200 && b.p) {
        json_t *j = json_loads(b.p, 0, NULL);
        json_t *a = json_object_get(j, "accepted");
        if (json_is_integer(a)) acc = (long)json_integer_value(a);
        json_decref(j);
    }
    if (acc < 0)
        fprintf(stderr, "client: batch failed: %s, HTTP %ld: %.200s\n", curl_easy_strerror(rc), status,
                b.p ? b.p : "");
    free(b.p);
    return acc;
}

/* ---- end to end ---------------------------------------------------------- */

typedef struct stream {
    char url[512];
    atomic_int open;    /* the stream's first bytes arrived */
    atomic_long events; /* "event: job" records seen */
    long want;
    atomic_int stop;
    char tail[16]; /* the end of the previous chunk (a marker may straddle) */
    size_t ntail;
    double t_last;
} stream;

static const char MARK[] = "event: job\n";

static size_t on_sse(char *d, size_t sz, size_t nm, void *ctx) {
    stream *s = ctx;
    size_t k = sz * nm;
    atomic_store(&s->open, 1);
    /* count markers in tail + chunk without double counting */
    size_t ml = sizeof MARK - 1;
    char joined[16 + 16384];
    size_t off = 0;
    while (off < k) {
        size_t take = k - off > 16384 ? 16384 : k - off;
        memcpy(joined, s->tail, s->ntail);
        memcpy(joined + s->ntail, d + off, take);
        size_t jn = s->ntail + take;
        long c = 0;
        for (size_t i = 0; i + ml <= jn; i++)
            if (joined[i] == 'e' && !memcmp(joined + i, MARK, ml)) c++, i += ml - 1;
        /* keep the last ml-1 bytes: too few to hold a whole (counted)
         * marker, enough for the start of one the next chunk completes */
        size_t keep = jn < ml - 1 ? jn : ml - 1;
        memcpy(s->tail, joined + jn - keep, keep);
        s->ntail = keep;
        if (c) {
            long tot = atomic_fetch_add(&s->events, c) + c;
            if (tot >= s->want && !s->t_last) s->t_last = now();
        }
        off += take;
    }
    return atomic_load(&s->stop) ? 0 : k;
}

static void *stream_main(void *arg) {
    stream *s = arg;
    CURL *h = curl_easy_init();
    struct curl_slist *hd = auth_header(NULL);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hd);
    curl_easy_setopt(h, CURLOPT_URL, s->url);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_sse);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, s);
    curl_easy_perform(h); /* ends when on_sse returns 0 */
    curl_easy_cleanup(h);
    curl_slist_free_all(hd);
    atomic_store(&s->open, -1);
    return NULL;
}

static int e2e(const char *base, long jobs) {
    stream *s = calloc(1, sizeof *s);
    snprintf(s->url, sizeof s->url, "%s/v1/events?state=succeeded", base);
    s->want = jobs;
    pthread_t th;
    pthread_create(&th, NULL, stream_main, s);
    for (int i = 0; i < 5000 && atomic_load(&s->open) == 0; i++) usleep(1000);
    if (atomic_load(&s->open) != 1) {
        fprintf(stderr, "client: event stream did not open\n");
        return 1;
    }
    char *body = batch_body(jobs);
    char url[600];
    snprintf(url, sizeof url, "%s/v1/jobs:batch", base);
    CURL *h = curl_easy_init();
    double t0 = now(), post_s;
    long acc = post_batch(h, url, body, &post_s);
    curl_easy_cleanup(h);
    free(body);
    if (acc != jobs) {
        fprintf(stderr, "client: %ld of %ld accepted\n", acc, jobs);
        return 1;
    }
    double deadline = now() + 60;
    while (atomic_load(&s->events) < jobs && now() < deadline) usleep(200);
    long got = atomic_load(&s->events);
    atomic_store(&s->stop, 1);
    double t1 = s->t_last ? s->t_last : now();
    /* the stream thread ends at its next chunk; a heartbeat-less idle
     * stream may never get one, so do not wait for it */
    pthread_detach(th);
    if (got < jobs) {
        fprintf(stderr, "client: only %ld of %ld succeeded within 60 s\n", got, jobs);
        return 1;
    }
    printf("%.6f %.6f\n", t1 - t0, post_s);
    fflush(stdout);
    _exit(0); /* the stream thread may be blocked in curl */
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: client batch URL JOBS REPS | client e2e URL JOBS\n");
        return 2;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    long jobs = atol(argv[3]);
    if (!strcmp(argv[1], "e2e")) return e2e(argv[2], jobs);
    if (strcmp(argv[1], "batch") || argc < 5) return 2;
    int reps = atoi(argv[4]);
    char *body = batch_body(jobs);
    char url[600];
    snprintf(url, sizeof url, "%s/v1/jobs:batch", argv[2]);
    CURL *h = curl_easy_init();
    for (int r = 0; r < reps; r++) {
        double secs;
        long acc = post_batch(h, url, body, &secs);
        if (acc < 0) return 1;
        printf("%.6f %ld\n", secs, acc);
        fflush(stdout);
    }
    curl_easy_cleanup(h);
    free(body);
    return 0;
}
