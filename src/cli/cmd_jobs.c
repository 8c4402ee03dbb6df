/*
 * cmd_jobs.c - gexec submit, get, wait, cancel, requeue and result.
 */
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cli.h"

/* ---- submit ----------------------------------------------------------------- */

/* Read a whole file ("-" = stdin) into a malloc'd NUL-terminated string. */
static char *slurp(const char *path) {
    FILE *f = strcmp(path, "-") ? fopen(path, "rb") : stdin;
    if (!f) return NULL;
    size_t cap = 8192, len = 0;
    char *buf = malloc(cap);
    size_t n;
    while (buf && (n = fread(buf + len, 1, cap - len - 1, f)) > 0) {
        len += n;
        if (cap - len < 2) {
            char *b = realloc(buf, cap * 2);
            if (!b) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = b;
            cap *= 2;
        }
    }
    int bad = ferror(f);
    if (f != stdin) fclose(f);
    if (!buf || bad) {
        free(buf);
        return NULL;
    }
    buf[len] = '\0';
    return buf;
}

/* Job flags that a batch file cannot be combined with. */
static const cli_flag_id spec_flags[] = {FL_KERNEL, FL_ARG, FL_INPUT, FL_PRIORITY, FL_DEVICE, FL_FALLBACK,
                                         FL_TIMEOUT, FL_QUEUE_TIMEOUT, FL_MAX_ATTEMPTS, FL_MEMORY, FL_DEP,
                                         FL_LABEL, FL_IDEM, FL_WAIT};

static int submit_batch(cli_ctx *x, const char *text) {
    for (size_t i = 0; i < sizeof spec_flags / sizeof spec_flags[0]; i++)
        if (cli_has(x->a, spec_flags[i]))
            return cli_usage("a batch file (JSON array or {\"jobs\":[...]}) takes no job flags");
    gx_client_batch b;
    gx_error err;
    char *raw = NULL;
    int rc = gx_client_submit_batch_json(x->c, text, &b, &raw, &err);
    if (rc) {
        free(raw);
        return rc == GX_EFORMAT ? cli_local_fail("batch file", &err) : cli_fail(x, rc, &err);
    }
    if (x->json) {
        cli_print_raw(raw);
    } else {
        for (size_t i = 0; i < b.n; i++) {
            const gx_client_batch_item *it = &b.items[i];
            if (it->id[0] && !it->error.code) {
                if (!x->quiet) printf("%s\n", it->id);
            } else if (it->error.field[0]) {
                fprintf(stderr, "gexec: jobs[%zu] refused: %s (field %s)\n", i, it->error.message,
                        it->error.field);
            } else {
                fprintf(stderr, "gexec: jobs[%zu] refused: %s\n", i, it->error.message);
            }
        }
        if (b.refused)
            fprintf(stderr, "gexec: %zu of %zu jobs refused\n", b.refused, b.accepted + b.refused);
    }
    int code = b.refused ? CLI_EXIT_REFUSED : CLI_EXIT_OK;
    gx_client_batch_free(&b);
    free(raw);
    return code;
}

/* -i NAME=SRC: inline array, existing blob, or a .npy file to upload. */
static int add_input(cli_ctx *x, gx_jobspec *s, const char *text) {
    const char *eq = strchr(text, '=');
    if (!eq || eq == text) return cli_usage("-i wants NAME=PATH|sha256:...|@inline:..., not '%s'", text);
    char name[128];
    snprintf(name, sizeof name, "%.*s", (int)(eq - text), text);
    const char *src = eq + 1;
    gx_error err;
    gx_error_clear(&err);
    int rc;
    if (!strncmp(src, "@inline:", 8)) {
        gx_array *a = NULL;
        rc = gx_client_parse_inline(src, &a, &err);
        if (!rc) rc = gx_jobspec_set_input_array(s, name, a, &err);
        gx_array_unref(a);
        if (rc) {
            char what[160];
            snprintf(what, sizeof what, "input %s", name);
            return cli_local_fail(what, &err);
        }
        return 0;
    }
    if (!strncmp(src, "sha256:", 7)) {
        rc = gx_jobspec_set_input_blob(s, name, src, &err);
        return rc ? cli_local_fail("input", &err) : 0;
    }
    char id[GX_CLIENT_BLOB_ID_MAX];
    rc = gx_client_blob_put_file(x->c, src, id, &err);
    if (rc) {
        if (gx_client_last_status(x->c) == 0 && !strcmp(err.field, "path")) {
            /* the file itself is at fault (nothing was sent); the message
             * names it */
            err.field[0] = '\0';
            char what[160];
            snprintf(what, sizeof what, "input %s", name);
            return cli_local_fail(what, &err);
        }
        return cli_fail(x, rc, &err);
    }
    rc = gx_jobspec_set_input_blob(s, name, id, &err);
    return rc ? cli_local_fail("input", &err) : 0;
}

/* Apply the job flags to the spec; an exit code on failure. */
static int apply_flags(cli_ctx *x, gx_jobspec *s) {
    const cli_args *a = x->a;
    gx_error err;
    gx_error_clear(&err);
    long v;
    int rc;
    if (cli_has(a, FL_KERNEL) && gx_jobspec_set_kernel(s, cli_get(a, FL_KERNEL), &err))
        return cli_local_fail(NULL, &err);
    for (int i = 0; i < cli_count(a, FL_ARG); i++)
        if (gx_jobspec_set_arg_text(s, cli_nth(a, FL_ARG, i), &err))
            return cli_local_fail("-a", &err);
    if (cli_has(a, FL_PRIORITY)) {
        if ((rc = cli_int("priority", cli_get(a, FL_PRIORITY), -100, 100, &v))) return rc;
        gx_jobspec_set_priority(s, (int)v, &err);
    }
    if (cli_has(a, FL_DEVICE) && gx_jobspec_set_device(s, cli_get(a, FL_DEVICE), &err))
        return cli_local_fail(NULL, &err);
    if (cli_has(a, FL_FALLBACK) && gx_jobspec_set_fallback(s, cli_get(a, FL_FALLBACK), &err))
        return cli_local_fail(NULL, &err);
    if (cli_has(a, FL_TIMEOUT)) {
        if ((rc = cli_duration("timeout", cli_get(a, FL_TIMEOUT), &v))) return rc;
        gx_jobspec_set_timeout_ms(s, v < 0 ? 0 : v, &err);
    }
    if (cli_has(a, FL_QUEUE_TIMEOUT)) {
        if ((rc = cli_duration("queue-timeout", cli_get(a, FL_QUEUE_TIMEOUT), &v))) return rc;
        gx_jobspec_set_queue_timeout_ms(s, v < 0 ? 0 : v, &err);
    }
    if (cli_has(a, FL_MAX_ATTEMPTS)) {
        if ((rc = cli_int("max-attempts", cli_get(a, FL_MAX_ATTEMPTS), 1, 100, &v))) return rc;
        gx_jobspec_set_max_attempts(s, (int)v, &err);
    }
    if (cli_has(a, FL_MEMORY)) {
        if ((rc = cli_int("memory", cli_get(a, FL_MEMORY), 0, 1125899906842624L, &v))) return rc;
        gx_jobspec_set_memory_bytes(s, (uint64_t)v, &err);
    }
    for (int i = 0; i < cli_count(a, FL_DEP); i++)
        if (gx_jobspec_add_dep(s, cli_nth(a, FL_DEP, i), &err)) return cli_local_fail("--dep", &err);
    for (int i = 0; i < cli_count(a, FL_LABEL); i++)
        if (gx_jobspec_set_label_text(s, cli_nth(a, FL_LABEL, i), &err))
            return cli_local_fail("--label", &err);
    if (cli_has(a, FL_IDEM) && gx_jobspec_set_idempotency_key(s, cli_get(a, FL_IDEM), &err))
        return cli_local_fail(NULL, &err);
    /* inputs last: they may upload, so fail on cheap things first */
    for (int i = 0; i < cli_count(a, FL_INPUT); i++)
        if ((rc = add_input(x, s, cli_nth(a, FL_INPUT, i)))) return rc;
    return 0;
}

int cmd_submit(cli_ctx *x) {
    const cli_args *a = x->a;
    gx_jobspec *s = NULL;
    gx_error err;
    gx_error_clear(&err);
    long wait_ms = -1;
    int rc;
    if (cli_has(a, FL_WAIT_TIMEOUT) &&
        (rc = cli_duration("wait-timeout", cli_get(a, FL_WAIT_TIMEOUT), &wait_ms)))
        return rc;
    if (cli_has(a, FL_FILE)) {
        const char *path = cli_get(a, FL_FILE);
        char *text = slurp(path);
        if (!text) return cli_usage("cannot read %s: %s", path, strerror(errno ? errno : EIO));
        json_t *probe = json_loads(text, 0, NULL);
        int batch = json_is_array(probe) || json_is_array(json_object_get(probe, "jobs"));
        json_decref(probe);
        if (batch) {
            rc = submit_batch(x, text);
            free(text);
            return rc;
        }
        rc = gx_jobspec_from_json(text, &s, &err);
        free(text);
        if (rc) return cli_local_fail(path, &err);
    } else {
        if (!cli_has(a, FL_KERNEL)) return cli_usage("submit needs -k KERNEL or -f FILE");
        if (gx_jobspec_new(NULL, &s, &err)) return cli_local_fail(NULL, &err);
    }
    if ((rc = apply_flags(x, s))) {
        gx_jobspec_free(s);
        return rc;
    }
    char *json = NULL;
    if (gx_jobspec_to_json(s, &json, &err)) {
        gx_jobspec_free(s);
        return cli_usage("submit needs a kernel (-k KERNEL, or \"kernel\" in the file)");
    }
    gx_jobspec_free(s);
    gx_client_job job;
    char *raw = NULL;
    rc = gx_client_submit_json(x->c, json, &job, &raw, &err);
    free(json);
    if (rc) {
        free(raw);
        return cli_fail(x, rc, &err);
    }
    if (!cli_has(a, FL_WAIT)) {
        if (x->json)
            cli_print_raw(raw);
        else if (!x->quiet)
            printf("%s\n", job.id);
        free(raw);
        return CLI_EXIT_OK;
    }
    free(raw);
    if (!x->json && !x->quiet && !x->tty) {
        printf("%s\n", job.id);
        fflush(stdout);
    }
    return cli_wait_job(x, job.id, wait_ms, &job);
}

/* ---- get, wait, cancel ---------------------------------------------------------- */

int cmd_get(cli_ctx *x) {
    gx_client_job j;
    gx_error err;
    char *raw = NULL;
    int rc = gx_client_get(x->c, x->a->pos[0], &j, &raw, &err);
    if (rc) {
        free(raw);
        return cli_fail(x, rc, &err);
    }
    if (x->json)
        cli_print_raw(raw);
    else
        cli_print_job(&j);
    free(raw);
    return CLI_EXIT_OK;
}

int cmd_wait(cli_ctx *x) {
    long timeout_ms = -1;
    int rc;
    if (cli_has(x->a, FL_TIMEOUT) && (rc = cli_duration("timeout", cli_get(x->a, FL_TIMEOUT), &timeout_ms)))
        return rc;
    double t0 = cli_now_s();
    int worst = CLI_EXIT_OK;
    for (int i = 0; i < x->a->npos; i++) {
        long left = timeout_ms;
        if (timeout_ms >= 0) {
            left = timeout_ms - (long)((cli_now_s() - t0) * 1000.0);
            if (left < 0) left = 0;
        }
        gx_client_job j;
        int code = cli_wait_job(x, x->a->pos[i], left, &j);
        if (code > CLI_EXIT_JOB) return code; /* an error or a timeout stops the wait */
        if (code > worst) worst = code;
    }
    return worst;
}

/* One job action per ID operand; prints "ID STATE" for each. */
static int each_job(cli_ctx *x, int (*fn)(gx_client *, const char *, gx_client_job *, char **, gx_error *)) {
    int worst = CLI_EXIT_OK;
    for (int i = 0; i < x->a->npos; i++) {
        gx_client_job j;
        gx_error err;
        char *raw = NULL;
        int rc = fn(x->c, x->a->pos[i], &j, &raw, &err);
        if (rc) {
            int code = cli_fail(x, rc, &err);
            if (code > worst) worst = code;
        } else if (x->json) {
            cli_print_raw(raw);
        } else if (!x->quiet) {
            printf("%s %s\n", j.id, j.state_name);
        }
        free(raw);
    }
    return worst;
}

int cmd_cancel(cli_ctx *x) { return each_job(x, gx_client_cancel); }

int cmd_requeue(cli_ctx *x) { return each_job(x, gx_client_requeue); }

/* ---- result --------------------------------------------------------------------- */

/* mkdir -p; -1 with errno set (ENOTDIR for a path that is a file) */
static int make_dirs(const char *path) {
    char buf[4096];
    if (!*path) {
        errno = ENOENT;
        return -1;
    }
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf) {
        errno = ENAMETOOLONG;
        return -1;
    }
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(buf, 0777) && errno != EEXIST) return -1;
        *p = '/';
    }
    if (mkdir(buf, 0777) && errno != EEXIST) return -1;
    struct stat st;
    if (stat(buf, &st)) return -1;
    if (!S_ISDIR(st.st_mode)) {
        errno = ENOTDIR; /* (it said "File exists") */
        return -1;
    }
    return 0;
}

static void print_shape(const gx_array *a) {
    printf("%s[", gx_dtype_name(a->dtype));
    for (int d = 0; d < a->ndim; d++) printf("%s%lld", d ? "," : "", (long long)a->shape[d]);
    printf("]");
}

static void print_values(const gx_array *a) {
    enum { SHOW = 16 };
    printf(" [");
    int64_t n = a->count <= SHOW ? a->count : SHOW / 2;
    int64_t lo;
    uint64_t hi;
    int is_int = gx_dtype_int_range(a->dtype, &lo, &hi);
    for (int64_t i = 0; i < n; i++) {
        printf("%s", i ? ", " : "");
        /* integers exactly (%.9g would show an i64 sum of 2^53 + 2 as
         * 9.00719925e+15); floats, f16 included, to 9 digits */
        if (!is_int)
            printf("%.9g", gx_array_get_f64(a, i));
        else if (lo < 0)
            printf("%lld", (long long)gx_array_get_i64(a, i));
        else
            printf("%llu", (unsigned long long)gx_array_get_u64(a, i));
    }
    if (a->count > n) printf(", ... (%lld values)", (long long)a->count);
    printf("]");
}

int cmd_result(cli_ctx *x) {
    const char *id = x->a->pos[0];
    const char *dir = cli_get(x->a, FL_OUTPUT);
    if (dir && !*dir) return cli_usage("-o wants a directory, not ''");
    gx_client_outputs r;
    gx_error err;
    char *raw = NULL;
    int rc = gx_client_result(x->c, id, &r, &raw, &err);
    if (rc) {
        free(raw);
        if (gx_client_last_status(x->c) == 409) {
            /* not succeeded: finished otherwise (exit 1) or still going (3)? */
            gx_client_job j;
            gx_error e2;
            if (!gx_client_get(x->c, id, &j, NULL, &e2) && gx_client_job_is_final(&j)) {
                fprintf(stderr, "gexec: job %s %s", j.id, j.state_name);
                if (j.error_code || j.error_name[0])
                    fprintf(stderr, ": %s: %s", j.error_name, j.error_message);
                fprintf(stderr, "\n");
                return CLI_EXIT_JOB;
            }
            fprintf(stderr, "gexec: %s\n", err.message);
            return CLI_EXIT_REFUSED;
        }
        return cli_fail(x, rc, &err);
    }
    int code = CLI_EXIT_OK;
    if (dir && make_dirs(dir)) {
        int eno = errno;
        gx_client_outputs_free(&r);
        free(raw);
        return eno == ENOTDIR ? cli_usage("-o %s: not a directory", dir)
                              : cli_usage("cannot create directory %s: %s", dir, strerror(eno));
    }
    if (x->json) cli_print_raw(raw);
    for (size_t i = 0; i < r.n; i++) {
        const gx_client_output *o = &r.outputs[i];
        char path[4096] = "";
        if (dir) {
            snprintf(path, sizeof path, "%s/%s.npy", dir, o->name);
            if (strchr(o->name, '/') || !strcmp(o->name, "..")) {
                fprintf(stderr, "gexec: output name '%s' is not a file name; skipped\n", o->name);
                code = CLI_EXIT_SERVER;
                continue;
            }
            gx_error e2;
            if (gx_npy_write_file(o->array, path, &e2)) {
                fprintf(stderr, "gexec: cannot write %s: %s\n", path, e2.message);
                code = CLI_EXIT_USAGE;
                continue;
            }
        }
        if (x->json) continue;
        printf("%s ", o->name);
        print_shape(o->array);
        if (dir)
            printf(" -> %s", path);
        else
            print_values(o->array);
        printf("\n");
    }
    gx_client_outputs_free(&r);
    free(raw);
    return code;
}
