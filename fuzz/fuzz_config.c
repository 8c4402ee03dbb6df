/*
 * fuzz_config.c - libFuzzer target for the config loader.
 *
 * The input is loaded as a config file over the defaults. Besides "no crash,
 * no leak, no UB" it checks what the module promises: a failed load fills
 * an error naming itself and leaves the config usable; a successful one
 * dumps to YAML that loads back to the same dump (after finalize). The
 * input's lines that look like NAME=value are also applied as an
 * environment, with the same round-trip check.
 *
 *   scripts/fuzz [SECONDS]   (builds every target; runs on scratch corpus copies)
 *
 * libFuzzer adds the inputs it finds to the first corpus directory; to keep
 * the committed seeds small, name a scratch directory first:
 *   mkdir -p /tmp/fzc && /tmp/fuzz_config -max_total_time=60 /tmp/fzc fuzz/corpus/config
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gexec/gexec_config.h"

#define CHECK(cond)                                                       \
    do {                                                                  \
        if (!(cond)) {                                                    \
            fprintf(stderr, "fuzz_config: check failed: %s (line %d)\n", \
                    #cond, __LINE__);                                     \
            abort();                                                      \
        }                                                                 \
    } while (0)

static char *dump(const gx_config *c) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    CHECK(f);
    CHECK(gx_config_dump(c, f) == 0);
    fclose(f);
    return buf;
}

static void check_error(int rc, const gx_error *err) {
    CHECK(rc < 0);
    CHECK(err->code == rc);
    CHECK(err->message[0] != '\0');
    CHECK(memchr(err->message, '\0', sizeof err->message));
    CHECK(memchr(err->field, '\0', sizeof err->field));
    CHECK(err->pos >= -1);
}

/* finalize, dump, reload the dump, dump again: the two dumps are equal. */
static void round_trip(gx_config *c) {
    gx_error err;
    int rc = gx_config_finalize(c, &err);
    if (rc) {
        check_error(rc, &err);
        return;
    }
    char *d1 = dump(c);
    gx_config c2;
    CHECK(gx_config_defaults(&c2) == 0);
    rc = gx_config_load_mem(&c2, d1, strlen(d1), &err);
    if (rc) fprintf(stderr, "dump does not load: %s\n%s", err.message, d1);
    CHECK(rc == 0);
    CHECK(gx_config_finalize(&c2, &err) == 0);
    char *d2 = dump(&c2);
    if (strcmp(d1, d2)) fprintf(stderr, "dumps differ:\n%s\n---\n%s", d1, d2);
    CHECK(!strcmp(d1, d2));
    free(d1);
    free(d2);
    gx_config_free(&c2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    gx_config c;
    gx_error err;
    CHECK(gx_config_defaults(&c) == 0);
    int rc = gx_config_load_mem(&c, (const char *)data, size, &err);
    if (rc) {
        check_error(rc, &err);
        /* unchanged: still the defaults */
        CHECK(c.listen && !strcmp(c.listen, "127.0.0.1:8080"));
    } else {
        round_trip(&c);
    }
    gx_config_free(&c);

    /* the same bytes as an environment: one NAME=value per line */
    char *copy = malloc(size + 1);
    CHECK(copy);
    memcpy(copy, data, size);
    copy[size] = '\0';
    char *envp[33];
    int n = 0;
    for (char *line = copy; line && *line && n < 32;) {
        char *nl = strchr(line, '\n');
        if (nl) *nl = '\0';
        if (strchr(line, '=')) envp[n++] = line;
        line = nl ? nl + 1 : NULL;
    }
    envp[n] = NULL;
    CHECK(gx_config_defaults(&c) == 0);
    rc = gx_config_apply_env(&c, envp, NULL, NULL, &err);
    if (rc) check_error(rc, &err);
    else round_trip(&c);
    gx_config_free(&c);
    free(copy);
    return 0;
}
