/*
 * cmd_list.c - gexec list and gexec events.
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* ---- list ------------------------------------------------------------------- */

static void list_header(void) {
    printf("%-10s %-10s %-18s %5s %6s %-8s %-27s %s\n", "ID", "STATE", "KERNEL", "PRI", "TRIES",
           "DEVICE", "SUBMITTED", "INFO");
}

static void list_row(const gx_client_job *j) {
    char info[300] = "";
    if (j->error_name[0])
        snprintf(info, sizeof info, "%s: %s", j->error_name, j->error_message);
    else if (j->waiting_on[0])
        snprintf(info, sizeof info, "%s on %s", j->wait_reason[0] ? j->wait_reason : "waiting",
                 j->waiting_on);
    else if (!strcmp(j->wait_reason, "queue") && j->wait_position >= 0)
        snprintf(info, sizeof info, "queue #%ld", j->wait_position);
    else
        snprintf(info, sizeof info, "%s", j->wait_reason);
    printf("%-10s %-10s %-18s %5d %3d/%-2d %-8s %-27s %s\n", j->id, j->state_name, j->kernel,
           j->priority, j->attempts, j->max_attempts, j->device[0] ? j->device : "-",
           j->submitted_at, info);
}

/* On stderr, the command that lists the next page: this one's filters
 * (without them it listed other jobs) and the cursor, quoted for a shell. */
static void more_hint(const gx_client_list_opts *o, const char *cursor) {
    fputs("more: gexec list", stderr);
    cli_put_opt(stderr, "--state", o->state);
    cli_put_opt(stderr, "--kernel", o->kernel);
    for (size_t i = 0; i < o->nlabels; i++) cli_put_opt(stderr, "--label", o->labels[i]);
    cli_put_opt(stderr, "--tenant", o->tenant);
    if (o->order && !strcmp(o->order, "desc")) cli_put_opt(stderr, "--order", "desc");
    if (o->limit > 0) fprintf(stderr, " --limit %d", o->limit);
    cli_put_opt(stderr, "--cursor", cursor);
    fputs(" (or --all)\n", stderr);
}

int cmd_list(cli_ctx *x) {
    const cli_args *a = x->a;
    gx_client_list_opts o = {0};
    o.state = cli_get(a, FL_STATE);
    o.kernel = cli_get(a, FL_KERNEL);
    o.tenant = cli_get(a, FL_TENANT);
    int nl = cli_count(a, FL_LABEL);
    const char **labels = calloc((size_t)nl + 1, sizeof *labels);
    if (!labels) return cli_usage("out of memory");
    for (int i = 0; i < nl; i++) {
        labels[i] = cli_nth(a, FL_LABEL, i);
        if (!strchr(labels[i], '=')) {
            int rc = cli_usage("--label wants KEY=VALUE, not '%s'", labels[i]);
            free(labels);
            return rc;
        }
    }
    o.labels = labels;
    o.nlabels = (size_t)nl;
    if (cli_has(a, FL_LIMIT)) {
        long v;
        int rc = cli_int("limit", cli_get(a, FL_LIMIT), 1, 1000, &v);
        if (rc) {
            free(labels);
            return rc;
        }
        o.limit = (int)v;
    }
    const char *order = cli_get(a, FL_ORDER);
    if (order && strcmp(order, "asc") && strcmp(order, "desc")) {
        free(labels);
        return cli_usage("--order is asc or desc, not '%s'", order);
    }
    if (cli_has(a, FL_NEWEST)) {
        if (order && strcmp(order, "desc")) {
            free(labels);
            return cli_usage("--newest is --order desc, not --order %s", order);
        }
        order = "desc";
    }
    o.order = order;
    int all = cli_has(a, FL_ALL);
    char cursor[GX_CLIENT_ID_MAX] = "";
    if (cli_get(a, FL_CURSOR)) snprintf(cursor, sizeof cursor, "%s", cli_get(a, FL_CURSOR));
    json_t *acc = x->json && all ? json_array() : NULL;
    int code = CLI_EXIT_OK, first = 1;
    for (;;) {
        o.cursor = cursor[0] ? cursor : NULL;
        gx_client_job_list l;
        gx_error err;
        char *raw = NULL;
        int rc = gx_client_list(x->c, &o, &l, &raw, &err);
        if (rc) {
            free(raw);
            code = cli_fail(x, rc, &err);
            break;
        }
        if (x->json && !all) {
            cli_print_raw(raw);
        } else if (x->json) {
            cli_gather_page(acc, raw, "jobs");
        } else {
            if (first) list_header();
            for (size_t i = 0; i < l.n; i++) list_row(&l.jobs[i]);
        }
        first = 0;
        free(raw);
        if (all && l.next_cursor[0] && !strcmp(l.next_cursor, cursor)) {
            gx_client_job_list_free(&l);
            code = cli_cursor_stuck(cursor);
            break;
        }
        snprintf(cursor, sizeof cursor, "%s", l.next_cursor);
        gx_client_job_list_free(&l);
        if (!cursor[0]) break;
        if (!all) {
            if (!x->json) more_hint(&o, cursor);
            break;
        }
    }
    if (acc && code == CLI_EXIT_OK)
        cli_print_gathered(acc, "jobs");
    else
        json_decref(acc);
    free(labels);
    return code;
}

/* ---- events ------------------------------------------------------------------ */

typedef struct follow {
    cli_ctx *x;
    const char *job;     /* following one job: stop when it is final */
    gx_client *side;     /* second client for checks while the stream is busy */
    double last_check;
    int final_seen;
} follow;

static void event_line(cli_ctx *x, const gx_client_event *ev, const char *data) {
    if (x->json) {
        cli_print_raw(data);
    } else {
        printf("%s %s %s attempt=%d", ev->time[0] ? ev->time : "-", ev->id, ev->state_name,
               ev->attempt);
        if (ev->device[0]) printf(" device=%s", ev->device);
        if (ev->error_code) printf(" error: %s", ev->error_message);
        else if (ev->error_message[0]) printf(" note: %s", ev->error_message);
        printf("\n");
    }
    fflush(stdout);
}

static int on_event(void *ctx, const gx_client_event *ev, const char *data) {
    follow *f = ctx;
    event_line(f->x, ev, data);
    if (f->job && !strcmp(ev->id, f->job) && ev->state >= 0 && gx_job_state_is_final(ev->state)) {
        f->final_seen = 1;
        return 1;
    }
    return 0;
}

/* While a one-job stream is quiet, look every few seconds whether the job
 * ended before the stream was open (its event then never comes). */
static int on_idle(void *ctx, double elapsed) {
    follow *f = ctx;
    if (!f->job || !f->side || elapsed - f->last_check < 2.0) return 0;
    f->last_check = elapsed;
    gx_client_job j;
    char *raw = NULL;
    if (gx_client_get(f->side, f->job, &j, &raw, NULL) == 0 && gx_client_job_is_final(&j)) {
        gx_client_event ev = {0};
        snprintf(ev.id, sizeof ev.id, "%s", j.id);
        snprintf(ev.state_name, sizeof ev.state_name, "%s", j.state_name);
        ev.state = j.state;
        ev.attempt = j.attempts;
        snprintf(ev.time, sizeof ev.time, "%s", j.finished_at);
        snprintf(ev.device, sizeof ev.device, "%s", j.device);
        snprintf(ev.error_message, sizeof ev.error_message, "%s", j.error_message);
        ev.error_code = j.error_code;
        char data[512];
        snprintf(data, sizeof data, "{\"id\":\"%s\",\"state\":\"%s\",\"attempt\":%d}", j.id,
                 j.state_name, j.attempts);
        event_line(f->x, &ev, data);
        f->final_seen = 1;
        free(raw);
        return 1;
    }
    free(raw);
    return 0;
}

/* The daemon could not resume the stream after a reconnect (it restarted,
 * or this client fell too far behind): say so, since changes were missed;
 * a followed job is looked at now rather than at the next idle check. */
static int on_reset(void *ctx, const char *reason, const char *message) {
    follow *f = ctx;
    fprintf(stderr, "gexec: event stream reset (%s): %s\n", reason, message);
    if (!f->job) return 0;
    f->last_check = -1e9;
    return on_idle(ctx, 0);
}

/* Print the stored history of a job; *final set if its last state is final. */
static int history(cli_ctx *x, const char *job, const char *states, int *final) {
    gx_client_event *evs = NULL;
    size_t n = 0;
    gx_error err;
    char *raw = NULL;
    int rc = gx_client_job_events(x->c, job, &evs, &n, &raw, &err);
    if (rc) {
        free(raw);
        return cli_fail(x, rc, &err);
    }
    json_t *root = x->json ? json_loads(raw, 0, NULL) : NULL;
    json_t *arr = json_object_get(root, "events");
    for (size_t i = 0; i < n; i++) {
        if (states && *states) {
            /* the same filter the stream applies */
            const char *p = strstr(states, evs[i].state_name);
            size_t l = strlen(evs[i].state_name);
            if (!l || !p || (p != states && p[-1] != ',') || (p[l] && p[l] != ',')) continue;
        }
        char *d = NULL;
        if (x->json) {
            json_t *e = json_deep_copy(json_array_get(arr, i));
            if (e && !json_object_get(e, "id")) json_object_set_new(e, "id", json_string(job));
            d = e ? json_dumps(e, JSON_COMPACT) : NULL;
            json_decref(e);
        }
        event_line(x, &evs[i], d ? d : "{}");
        free(d);
    }
    *final = n > 0 && evs[n - 1].state >= 0 && gx_job_state_is_final(evs[n - 1].state);
    json_decref(root);
    free(evs);
    free(raw);
    return CLI_EXIT_OK;
}

int cmd_events(cli_ctx *x) {
    const cli_args *a = x->a;
    const char *job = cli_get(a, FL_JOB);
    if (job && a->npos) return cli_usage("events: unexpected operand '%s' (--job %s names the job)", a->pos[0], job);
    if (!job && a->npos) job = a->pos[0];
    if (cli_has(a, FL_HISTORY) && !job) return cli_usage("--history needs --job ID");
    long timeout_ms = -1;
    int rc;
    if (cli_has(a, FL_TIMEOUT) && (rc = cli_duration("timeout", cli_get(a, FL_TIMEOUT), &timeout_ms)))
        return rc;
    follow f = {.x = x, .job = job};
    if (job) {
        int final = 0;
        if ((rc = history(x, job, cli_get(a, FL_STATE), &final))) return rc;
        if (final || cli_has(a, FL_HISTORY)) return CLI_EXIT_OK;
        gx_error e2;
        if (gx_client_new(x->copts, &f.side, &e2)) f.side = NULL;
    }
    gx_client_stream_opts so = {0};
    so.job = job;
    so.state = cli_get(a, FL_STATE);
    so.kernel = cli_get(a, FL_KERNEL);
    so.tenant = cli_get(a, FL_TENANT);
    so.timeout_ms = timeout_ms;
    so.on_event = on_event;
    so.on_idle = on_idle;
    so.on_reset = on_reset;
    /* a dropped connection, and a stream the daemon ends (it stops or
     * restarts), resume after the last event seen: only a final job,
     * --timeout or 30 s without a connection (exit 5) end the command */
    so.reconnect = 2;
    so.ctx = &f;
    gx_error err;
    rc = gx_client_events_follow(x->c, &so, &err);
    gx_client_free(f.side);
    if (rc == GX_ETIMEDOUT) return job && !f.final_seen ? CLI_EXIT_TIMEOUT : CLI_EXIT_OK;
    if (rc) return cli_fail(x, rc, &err);
    if (job && !f.final_seen) { /* (only a final job stops the stream: not reached) */
        fprintf(stderr, "gexec: the event stream ended before job %s was final\n", job);
        return CLI_EXIT_SERVER;
    }
    return CLI_EXIT_OK;
}

/* gexec logs ID [-f]: the job's stored history, as events --job ID
 * --history; with --follow, then its changes until it is final, as events
 * --job ID. */
int cmd_logs(cli_ctx *x) {
    if (cli_has(x->a, FL_FOLLOW)) return cmd_events(x); /* the operand is the job */
    int final = 0;
    return history(x, x->a->pos[0], NULL, &final);
}
