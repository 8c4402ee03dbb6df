/*
 * cmd_info.c - gexec devices, kernels and health: service information,
 * shown as tables (or the server's JSON with --json).
 */
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"


/* The answer of fn parsed, when it is an object with the array member:
 * else NULL, the error printed (a server error: exit 5, with --json too). */
static json_t *fetch(cli_ctx *x, int (*fn)(gx_client *, char **, gx_error *), const char *member, char **raw,
                     int *code) {
    gx_error err;
    int rc = fn(x->c, raw, &err);
    if (rc) {
        *code = cli_fail(x, rc, &err);
        return NULL;
    }
    json_error_t je;
    json_t *root = json_loads(*raw, 0, &je);
    if (!root) {
        fprintf(stderr, "gexec: server sent bad JSON: %s\n", je.text);
    } else if (!json_is_array(json_object_get(root, member))) {
        fprintf(stderr, "gexec: the server's answer has no \"%s\" array\n", member);
        json_decref(root);
        root = NULL;
    }
    *code = root ? CLI_EXIT_OK : CLI_EXIT_SERVER;
    return root;
}

/* Fetch with fn: print the answer with --json, else show() it. */
static int info(cli_ctx *x, int (*fn)(gx_client *, char **, gx_error *), const char *member,
                int (*show)(cli_ctx *, json_t *)) {
    char *raw = NULL;
    int code;
    json_t *root = fetch(x, fn, member, &raw, &code);
    if (root && x->json) cli_print_raw(raw);
    else if (root) code = show(x, root);
    json_decref(root);
    free(raw);
    return code;
}

static int show_devices(cli_ctx *x, json_t *root) {
    json_t *devs = json_object_get(root, "devices");
    printf("%-5s %-10s %-6s %-24s %5s %21s %7s %6s %-8s %s\n", "INDEX", "NAME", "KIND", "MODEL",
           "SLOTS", "MEMORY USED/TOTAL", "RUNNING", "QUEUED", "STATUS", "DONE");
    size_t i;
    json_t *d;
    json_array_foreach(devs, i, d) {
        char used[24], total[24], mem[50];
        cli_human_bytes(cli_jnum(d, "memory_used"), used, sizeof used);
        cli_human_bytes(cli_jnum(d, "memory_total"), total, sizeof total);
        snprintf(mem, sizeof mem, "%s/%s", used, total);
        const char *st = cli_device_status(d);
        printf("%-5.0f %-10s %-6s %-24.24s %5.0f %21s %7.0f %6.0f %-8s %.0f\n", cli_jnum(d, "index"),
               cli_js(d, "name"), cli_js(d, "kind"), cli_js(d, "model"), cli_jnum(d, "slots"), mem,
               cli_jnum(d, "running"), cli_jnum(d, "queued"), st, cli_jnum(d, "jobs_done"));
    }
    json_t *gpu = json_object_get(root, "gpu");
    if (json_is_object(gpu))
        printf("gpu: %s%s%s\n", json_is_true(json_object_get(gpu, "available")) ? "available" : "not available",
               *cli_js(gpu, "message") ? " - " : "", cli_js(gpu, "message"));
    return CLI_EXIT_OK;
}

/* devices drain|undrain NAME: one line "NAME drained|undrained (status)". */
static int drain(cli_ctx *x, int on) {
    if (x->a->npos != 2) return cli_usage("devices %s takes the device's name", on ? "drain" : "undrain");
    char *raw = NULL;
    gx_error err;
    int rc = gx_client_device_drain(x->c, x->a->pos[1], on, &raw, &err);
    if (rc) {
        free(raw);
        return cli_fail(x, rc, &err);
    }
    if (x->json) {
        cli_print_raw(raw);
    } else {
        json_t *d = json_loads(raw, 0, NULL);
        printf("%s %s (%s)\n", d ? cli_js(d, "name") : x->a->pos[1],
               d && json_is_true(json_object_get(d, "drained")) ? "drained" : "undrained", d ? cli_js(d, "status") : "");
        json_decref(d);
    }
    free(raw);
    return CLI_EXIT_OK;
}

int cmd_devices(cli_ctx *x) {
    if (!x->a->npos) return info(x, gx_client_devices, "devices", show_devices);
    if (!strcmp(x->a->pos[0], "drain")) return drain(x, 1);
    if (!strcmp(x->a->pos[0], "undrain")) return drain(x, 0);
    return cli_usage("devices: unknown action '%s' (drain or undrain)", x->a->pos[0]);
}

static void show_kernel(json_t *k) {
    printf("%s@%lld - %s%s\n", cli_js(k, "name"), (long long)cli_jnum(k, "version"), cli_js(k, "summary"),
           json_is_true(json_object_get(k, "batchable")) ? " (batchable)" : "");
    size_t i;
    json_t *v;
    json_t *args = json_object_get(k, "args");
    if (json_array_size(args)) printf("  args:\n");
    json_array_foreach(args, i, v) {
        printf("    %-14s %-6s", cli_js(v, "name"), cli_js(v, "type"));
        if (json_is_true(json_object_get(v, "required"))) printf(" required");
        json_t *def = json_object_get(v, "default");
        if (def && !json_is_null(def)) {
            char *s = json_dumps(def, JSON_ENCODE_ANY);
            printf(" default %s", s ? s : "?");
            free(s);
        }
        json_t *lo = json_object_get(v, "min"), *hi = json_object_get(v, "max");
        /* a float allowed any value has min/max near +-DBL_MAX: not worth showing */
        if (json_is_number(lo) && fabs(json_number_value(lo)) > 1e300) lo = NULL;
        if (json_is_number(hi) && fabs(json_number_value(hi)) > 1e300) hi = NULL;
        if (json_is_number(lo) || json_is_number(hi)) {
            char *a = json_dumps(lo, JSON_ENCODE_ANY), *b = json_dumps(hi, JSON_ENCODE_ANY);
            printf(" range %s..%s", a && json_is_number(lo) ? a : "", b && json_is_number(hi) ? b : "");
            free(a);
            free(b);
        }
        json_t *ch = json_object_get(v, "choices");
        if (json_array_size(ch)) {
            char *s = json_dumps(ch, JSON_COMPACT);
            printf(" one of %s", s ? s : "?");
            free(s);
        }
        if (*cli_js(v, "doc")) printf(" - %s", cli_js(v, "doc"));
        printf("\n");
    }
    static const char *io[] = {"inputs", "outputs"};
    for (int w = 0; w < 2; w++) {
        json_t *list = json_object_get(k, io[w]);
        if (json_array_size(list)) printf("  %s:\n", io[w]);
        json_array_foreach(list, i, v) {
            printf("    %-14s ", cli_js(v, "name"));
            size_t t;
            json_t *dt;
            json_array_foreach(json_object_get(v, "dtypes"), t, dt)
                printf("%s%s", t ? "|" : "", json_string_value(dt) ? json_string_value(dt) : "?");
            json_t *rank = json_object_get(v, "rank");
            if (json_is_integer(rank)) printf(" rank %lld", (long long)json_integer_value(rank));
            if (json_is_true(json_object_get(v, "optional"))) printf(" optional");
            if (json_is_true(json_object_get(v, "series"))) printf(" series");
            if (*cli_js(v, "shape")) printf(" shape %s", cli_js(v, "shape"));
            if (*cli_js(v, "doc")) printf(" - %s", cli_js(v, "doc"));
            printf("\n");
        }
    }
    json_t *c = json_object_get(k, "circuit");
    printf("  attempts by default: %.0f; circuit: %s", cli_jnum(k, "default_max_attempts"),
           *cli_js(c, "state") ? cli_js(c, "state") : "-");
    if (*cli_js(c, "next_probe_at")) printf(", probe at %s", cli_js(c, "next_probe_at"));
    if (cli_jnum(c, "parked_jobs") > 0) printf(", %.0f jobs held", cli_jnum(c, "parked_jobs"));
    printf("\n");
}

static const char *kernel_filter;

/* Is k the kernel named by filter ("saxpy" or "saxpy@1")? */
static int kernel_is(json_t *k, const char *filter) {
    char full[200];
    snprintf(full, sizeof full, "%s@%lld", cli_js(k, "name"), (long long)cli_jnum(k, "version"));
    return !strcmp(filter, cli_js(k, "name")) || !strcmp(filter, full);
}

static int show_kernels(cli_ctx *x, json_t *root) {
    json_t *ks = json_object_get(root, "kernels");
    size_t i;
    json_t *k;
    int found = 0;
    json_array_foreach(ks, i, k) {
        if (kernel_filter) {
            if (!kernel_is(k, kernel_filter)) continue;
            show_kernel(k);
            found = 1;
        } else {
            printf("%-16s v%-3lld %s\n", cli_js(k, "name"), (long long)cli_jnum(k, "version"), cli_js(k, "summary"));
        }
    }
    if (kernel_filter && !found) {
        fprintf(stderr, "gexec: no kernel named '%s' (gexec kernels lists them)\n", kernel_filter);
        return CLI_EXIT_NOTFOUND;
    }
    return CLI_EXIT_OK;
}

int cmd_kernels(cli_ctx *x) {
    kernel_filter = x->a->npos ? x->a->pos[0] : NULL;
    if (kernel_filter && x->json) {
        /* --json with a name: just that kernel's object */
        char *raw = NULL;
        int code;
        json_t *root = fetch(x, gx_client_kernels, "kernels", &raw, &code);
        free(raw);
        if (!root) return code;
        size_t i;
        json_t *k;
        json_array_foreach(json_object_get(root, "kernels"), i, k) {
            if (kernel_is(k, kernel_filter)) {
                char *s = json_dumps(k, JSON_COMPACT);
                cli_print_raw(s);
                free(s);
                json_decref(root);
                return CLI_EXIT_OK;
            }
        }
        json_decref(root);
        fprintf(stderr, "gexec: no kernel named '%s'\n", kernel_filter);
        return CLI_EXIT_NOTFOUND;
    }
    return info(x, gx_client_kernels, "kernels", show_kernels);
}

int cmd_health(cli_ctx *x) {
    char *hraw = NULL, *rraw = NULL;
    gx_error err;
    int rc = gx_client_health(x->c, &hraw, &err);
    if (rc) {
        if (x->json && hraw) cli_print_raw(hraw);
        free(hraw);
        return cli_fail(x, rc, &err);
    }
    int ready = 0;
    rc = gx_client_ready(x->c, &ready, &rraw, &err);
    if (rc) {
        free(hraw);
        free(rraw);
        return cli_fail(x, rc, &err);
    }
    if (x->json) {
        json_t *h = json_loads(hraw ? hraw : "null", JSON_DECODE_ANY, NULL);
        json_t *r = json_loads(rraw ? rraw : "null", JSON_DECODE_ANY, NULL);
        json_t *o = json_pack("{s:o*,s:o*}", "health", h, "ready", r);
        char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
        cli_print_raw(s);
        free(s);
        json_decref(o);
    } else {
        json_t *r = json_loads(rraw ? rraw : "", 0, NULL);
        const char *msg = cli_js(r, "message");
        printf("%s: alive, %s%s%s\n", gx_client_server(x->c), ready ? "ready" : "not ready",
               *msg ? " - " : "", msg);
        json_decref(r);
    }
    free(hraw);
    free(rraw);
    return ready ? CLI_EXIT_OK : CLI_EXIT_SERVER;
}
