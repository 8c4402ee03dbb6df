/*
 * out.c - how `gexec` shows jobs: the `get` page, the final line of a wait,
 * and the wait loop with its progress display.
 *
 * On a terminal the wait redraws one line in place ('\r' and "erase to end
 * of line"): job id, state, queue position or what it waits on, attempt,
 * a bouncing bar (the daemon reports no percentage) and the elapsed time.
 * Elsewhere it prints "ID STATE" once per state change, which is easy to
 * grep and to log.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"

static const char *or_dash(const char *s) { return s && *s ? s : "-"; }

void cli_print_job(const gx_client_job *j) {
    printf("id:           %s\n", j->id);
    printf("state:        %s\n", j->state_name);
    printf("kernel:       %s\n", or_dash(j->kernel));
    printf("tenant:       %s\n", or_dash(j->tenant));
    printf("priority:     %d\n", j->priority);
    printf("attempts:     %d of %d\n", j->attempts, j->max_attempts);
    printf("device:       %s\n", or_dash(j->device));
    if (j->fallback[0]) printf("fallback:     %s\n", j->fallback);
    printf("submitted:    %s\n", or_dash(j->submitted_at));
    printf("started:      %s\n", or_dash(j->started_at));
    printf("finished:     %s\n", or_dash(j->finished_at));
    printf("queue time:   %.6f s\n", j->queue_seconds);
    printf("run time:     %.6f s\n", j->run_seconds);
    if (j->error_code || j->error_name[0])
        printf("error:        %s: %s\n", or_dash(j->error_name), j->error_message);
    if (j->wait_reason[0]) {
        printf("waiting:      %s", j->wait_reason);
        if (j->wait_position >= 0 && !strcmp(j->wait_reason, "queue"))
            printf(", position %ld", j->wait_position);
        if (j->waiting_on[0]) printf(", on job %s", j->waiting_on);
        printf("\n");
        if (j->wait_message[0]) printf("why:          %s\n", j->wait_message);
    }
}

void cli_print_final(const gx_client_job *j) {
    printf("%s %s", j->id, j->state_name);
    if (j->state == GX_JOB_SUCCEEDED)
        printf(" (queue %.3f s, run %.3f s)", j->queue_seconds, j->run_seconds);
    if (j->error_code || j->error_name[0])
        printf(": %s: %s", or_dash(j->error_name), j->error_message);
    printf("\n");
}

typedef struct progress {
    cli_ctx *x;
    char last_state[24];
    int drawn;  /* a progress line is on the screen */
    int frame;
} progress;

/* The part of the progress line that says why a job is not running. */
static void why(const gx_client_job *j, char *buf, size_t cap) {
    buf[0] = '\0';
    if (!strcmp(j->wait_reason, "queue") && j->wait_position >= 0)
        snprintf(buf, cap, " (position %ld)", j->wait_position);
    else if (j->waiting_on[0])
        snprintf(buf, cap, " (on job %s)", j->waiting_on);
    else if (j->wait_reason[0])
        snprintf(buf, cap, " (%s)", j->wait_reason);
}

static int on_progress(void *ctx, const gx_client_job *j, double elapsed) {
    progress *p = ctx;
    if (p->x->quiet || p->x->json) return 0;
    if (!p->x->tty) {
        if (strcmp(p->last_state, j->state_name) && !gx_client_job_is_final(j)) {
            printf("%s %s\n", j->id, j->state_name);
            fflush(stdout);
        }
        snprintf(p->last_state, sizeof p->last_state, "%s", j->state_name);
        return 0;
    }
    if (gx_client_job_is_final(j)) return 0;
    enum { W = 16 };
    char bar[W + 1];
    int pos = p->frame++ % (2 * (W - 3));
    if (pos >= W - 3) pos = 2 * (W - 3) - pos;
    memset(bar, ' ', W);
    memcpy(bar + pos, "<=>", 3);
    bar[W] = '\0';
    char reason[64];
    why(j, reason, sizeof reason);
    char attempt[32] = "";
    if (j->attempts > 1) snprintf(attempt, sizeof attempt, " attempt %d", j->attempts);
    printf("\r%s %s%s%s [%s] %.1fs\033[K", j->id, j->state_name, reason, attempt, bar, elapsed);
    fflush(stdout);
    p->drawn = 1;
    return 0;
}

int cli_cursor_stuck(const char *cursor) {
    fprintf(stderr, "gexec: the server answered the page after cursor %s with the same cursor; stopped\n", cursor);
    return CLI_EXIT_SERVER;
}

int cli_wait_job(cli_ctx *x, const char *id, long timeout_ms, gx_client_job *j) {
    progress p = {.x = x};
    gx_client_wait_opts wo;
    gx_client_wait_opts_init(&wo);
    wo.timeout_ms = timeout_ms;
    wo.poll_max_ms = x->tty ? 250 : 1000; /* keep the bar moving on a terminal */
    wo.progress = on_progress;
    wo.ctx = &p;
    gx_error err;
    gx_error_clear(&err);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int rc = gx_client_wait(x->c, id, &wo, j, &err);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (p.drawn) {
        printf("\r\033[K");
        fflush(stdout);
    }
    /* the wait's own end (exit 6), not a request that timed out before it
     * (exit 5, as for any request) */
    double waited_ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
    if (rc == GX_ETIMEDOUT && timeout_ms >= 0 && waited_ms >= (double)timeout_ms - 1) {
        if (x->json) {
            char *raw = NULL;
            if (!gx_client_get(x->c, id, NULL, &raw, NULL)) cli_print_raw(raw);
            free(raw);
        }
        fprintf(stderr, "gexec: %s\n", err.message);
        return CLI_EXIT_TIMEOUT;
    }
    if (rc) return cli_fail(x, rc, &err);
    if (x->json) {
        char *raw = NULL;
        if (!gx_client_get(x->c, id, NULL, &raw, NULL)) cli_print_raw(raw);
        free(raw);
    } else if (!x->quiet) {
        cli_print_final(j);
    }
    return j->state == GX_JOB_SUCCEEDED ? CLI_EXIT_OK : CLI_EXIT_JOB;
}

const char *cli_js(json_t *o, const char *k) {
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

void cli_human_bytes(double b, char *buf, size_t cap) {
    const char *u[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int i = 0;
    while (b >= 1024 && i < 4) {
        b /= 1024;
        i++;
    }
    snprintf(buf, cap, i ? "%.1f %s" : "%.0f %s", b, u[i]);
}

const char *cli_device_status(json_t *d) {
    if (json_is_true(json_object_get(d, "drained"))) return "drained";
    const char *circ = cli_js(json_object_get(d, "circuit"), "state");
    if (*circ && strcmp(circ, "closed")) return !strcmp(circ, "open") ? "circuit-open" : "half-open";
    const char *st = cli_js(d, "status");
    return *st ? st : json_is_true(json_object_get(d, "healthy")) ? "ok" : "unhealthy";
}

double cli_jnum(json_t *o, const char *k) {
    json_t *v = json_object_get(o, k);
    return json_is_number(v) ? json_number_value(v) : 0;
}

double cli_now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void cli_put_opt(FILE *f, const char *flag, const char *val) {
    if (!val || !*val) return;
    fprintf(f, " %s ", flag);
    /* a word of these characters means the same to every shell; else
     * single quotes, where only the quote itself needs care: '\'' */
    static const char safe[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-+=.,:/@%";
    if (strspn(val, safe) == strlen(val) && val[0] != '=') { /* (zsh expands "=word") */
        fputs(val, f);
        return;
    }
    fputc('\'', f);
    for (const char *p = val; *p; p++) {
        if (*p == '\'')
            fputs("'\\''", f);
        else
            fputc(*p, f);
    }
    fputc('\'', f);
}
