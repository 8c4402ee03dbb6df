/*
 * fuzz_client_parse.c - libFuzzer target for the text parsers of the client
 * and the CLI: inline arrays (gx_client_parse_inline), durations
 * (gx_client_parse_duration), "name=value" job arguments
 * (gx_jobspec_set_arg_text) and the gexec command line (src/cli/args.c,
 * the input split at NUL bytes into argv).
 *
 * Every input must parse or fail with a filled gx_error (pos inside the
 * input); a parsed inline array must have as many elements as its shape
 * says. Build and run (not wired into CMake):
 *
 *   scripts/fuzz [SECONDS]   (builds every target; runs on scratch corpus copies)
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gexec/gexec_client.h"

#include "cli/args.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > 4096) return 0;
    char *s = malloc(size + 1);
    if (!s) return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    size_t len = strlen(s); /* the text up to the first NUL */

    gx_array *a = NULL;
    gx_error err;
    gx_error_clear(&err);
    int rc = gx_client_parse_inline(s, &a, &err);
    if (rc) {
        if (a || err.code != rc || !err.message[0] || err.pos < -1 || err.pos > (long)len)
            __builtin_trap();
    } else {
        int64_t n = 1;
        for (int i = 0; i < a->ndim; i++) n *= a->shape[i];
        if (n != a->count || a->nbytes != (size_t)n * gx_dtype_size(a->dtype)) __builtin_trap();
        gx_array_unref(a);
    }

    long ms = 0;
    rc = gx_client_parse_duration(s, &ms, &err);
    if (rc == 0 && ms < -1) __builtin_trap();

    gx_jobspec *spec = NULL;
    if (gx_jobspec_new("k", &spec, NULL) == 0) {
        if (gx_jobspec_set_arg_text(spec, s, &err) == 0) {
            char *json = NULL;
            if (gx_jobspec_to_json(spec, &json, &err)) __builtin_trap();
            free(json);
        }
        gx_jobspec_free(spec);
    }

    /* argv: the whole input split at NUL bytes */
    char *copy = malloc(size + 1);
    char *argv[130];
    int argc = 0;
    if (copy) {
        memcpy(copy, data, size);
        copy[size] = '\0';
        argv[argc++] = "gexec";
        for (size_t i = 0; i <= size && argc < 129;) {
            argv[argc++] = copy + i;
            i += strlen(copy + i) + 1;
        }
        argv[argc] = NULL;
        cli_args ca;
        char msg[256];
        if (cli_parse(argc, argv, &ca, msg, sizeof msg) == 0) {
            if (!cli_has(&ca, FL_HELP) && !cli_has(&ca, FL_VERSION) &&
                (ca.cmd < 0 || ca.cmd >= CMD_COUNT))
                __builtin_trap();
        } else if (!msg[0]) {
            __builtin_trap();
        }
        cli_args_free(&ca);
        free(copy);
    }
    free(s);
    return 0;
}
