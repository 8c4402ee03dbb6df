/*
 * main.c - `gexec`, the command-line client of gexecd.
 *
 * Parses the command line (args.c), makes one client (gexec_client.h) and
 * runs the subcommand. Errors print one line "gexec: <message> (field F)"
 * on stderr; the exit code says what kind of failure it was (args.h).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

typedef int (*cmd_fn)(cli_ctx *x);

/* Subcommand handlers, indexed like cli_cmds. */
static const cmd_fn handlers[CMD_COUNT] = {
    [CMD_SUBMIT] = cmd_submit,   [CMD_GET] = cmd_get,         [CMD_WAIT] = cmd_wait,
    [CMD_RESULT] = cmd_result,   [CMD_CANCEL] = cmd_cancel,   [CMD_LIST] = cmd_list,
    [CMD_REQUEUE] = cmd_requeue,
    [CMD_EVENTS] = cmd_events,   [CMD_DEVICES] = cmd_devices, [CMD_KERNELS] = cmd_kernels,
    [CMD_HEALTH] = cmd_health,   [CMD_KEYS] = cmd_keys,       [CMD_TENANTS] = cmd_tenants,
    [CMD_AUDIT] = cmd_audit, [CMD_TOP] = cmd_top,       [CMD_LOGS] = cmd_logs,
    [CMD_WHOAMI] = cmd_whoami,
};

int cli_exit_code(gx_client *c, int rc) {
    if (rc == 0) return CLI_EXIT_OK;
    int st = c ? gx_client_last_status(c) : 0;
    if (st == 404) return CLI_EXIT_NOTFOUND;
    if (st >= 400 && st < 500) return CLI_EXIT_REFUSED;
    if (st == 0 && rc == GX_EINVAL) return CLI_EXIT_USAGE; /* refused locally */
    return CLI_EXIT_SERVER; /* 5xx, or no answer at all */
}

static void print_err(const char *prefix, const gx_error *err, int rc) {
    const char *msg = err && err->message[0] ? err->message : gx_strerror(rc);
    if (err && err->field[0])
        fprintf(stderr, "gexec: %s%s (field %s)\n", prefix, msg, err->field);
    else
        fprintf(stderr, "gexec: %s%s\n", prefix, msg);
}

int cli_fail(cli_ctx *x, int rc, const gx_error *err) {
    print_err("", err, rc);
    return cli_exit_code(x->c, rc);
}

int cli_local_fail(const char *what, const gx_error *err) {
    char prefix[256];
    snprintf(prefix, sizeof prefix, "%s%s", what ? what : "", what ? ": " : "");
    print_err(prefix, err, err ? err->code : GX_EINVAL);
    return CLI_EXIT_USAGE;
}

int cli_usage(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("gexec: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return CLI_EXIT_USAGE;
}

void cli_print_raw(const char *json) {
    if (!json) return;
    size_t n = strlen(json);
    fputs(json, stdout);
    if (!n || json[n - 1] != '\n') fputc('\n', stdout);
}

void cli_gather_page(json_t *all, const char *raw, const char *member) {
    json_t *page = json_loads(raw ? raw : "", 0, NULL);
    json_array_extend(all, json_object_get(page, member));
    json_decref(page);
}

void cli_print_gathered(json_t *all, const char *member) {
    json_t *out = json_pack("{soss?}", member, all, "next_cursor", NULL);
    char *s = out ? json_dumps(out, JSON_COMPACT) : NULL;
    cli_print_raw(s);
    free(s);
    json_decref(out);
}

int cli_int(const char *flag, const char *s, long lo, long hi, long *out) {
    char *end;
    long v = s ? strtol(s, &end, 10) : 0;
    if (!s || !*s || *end || v < lo || v > hi)
        return cli_usage("--%s wants an integer in %ld..%ld, not '%s'", flag, lo, hi, s ? s : "");
    *out = v;
    return 0;
}

int cli_duration(const char *flag, const char *s, long *ms) {
    gx_error err;
    gx_error_clear(&err);
    if (gx_client_parse_duration(s, ms, &err)) return cli_usage("--%s: %s", flag, err.message);
    return 0;
}

/* A CA bundle for an https server that cannot be read is a usage error,
 * exit 2, like any local file (libcurl's failure to load it was exit 5). */
static int check_ca_file(cli_ctx *x) {
    const char *flag = cli_get(x->a, FL_CA_FILE), *ca = flag && *flag ? flag : getenv("GEXEC_CACERT");
    if (!ca || !*ca || strncasecmp(gx_client_server(x->c), "https://", 8)) return 0;
    const char *from = flag && *flag ? "--cacert" : "$GEXEC_CACERT";
    struct stat st;
    FILE *f = stat(ca, &st) ? NULL : S_ISDIR(st.st_mode) ? (errno = EISDIR, NULL) : fopen(ca, "r");
    if (!f) return cli_usage("%s: cannot read the CA bundle %s: %s", from, ca, strerror(errno));
    fclose(f);
    return 0;
}

int main(int argc, char **argv) {
    cli_args a;
    char msg[256];
    if (cli_parse(argc, argv, &a, msg, sizeof msg)) {
        fprintf(stderr, "gexec: %s\n", msg);
        cli_args_free(&a);
        return CLI_EXIT_USAGE;
    }
    if (cli_has(&a, FL_HELP)) {
        cli_help(stdout, a.cmd);
        cli_args_free(&a);
        return 0;
    }
    if (cli_has(&a, FL_VERSION)) {
        printf("gexec %s\n", GX_VERSION_STRING);
        cli_args_free(&a);
        return 0;
    }
    gx_client_opts o;
    gx_client_opts_init(&o);
    o.server = cli_get(&a, FL_SERVER);
    o.api_key = cli_get(&a, FL_API_KEY);
    o.ca_file = cli_get(&a, FL_CA_FILE);
    if (cli_has(&a, FL_INSECURE)) {
        o.insecure = 1;
        fprintf(stderr, "gexec: warning: --insecure: the server's TLS certificate is not verified; "
                        "anyone between here and the server can read and change this session\n");
    }
    o.retries = 2;
    if (cli_has(&a, FL_RETRIES)) {
        long r;
        if (cli_int("retries", cli_get(&a, FL_RETRIES), 0, 100, &r)) {
            cli_args_free(&a);
            return CLI_EXIT_USAGE;
        }
        o.retries = (int)r;
    }
    cli_ctx x = {.a = &a, .copts = &o};
    x.json = cli_has(&a, FL_JSON);
    x.quiet = cli_has(&a, FL_QUIET);
    x.tty = isatty(STDOUT_FILENO);
    gx_error err;
    gx_error_clear(&err);
    int rc = gx_client_new(&o, &x.c, &err);
    if (rc) {
        cli_args_free(&a);
        return cli_local_fail(NULL, &err);
    }
    if ((rc = check_ca_file(&x))) {
        gx_client_free(x.c);
        cli_args_free(&a);
        return rc;
    }
    int code = handlers[a.cmd](&x);
    gx_client_free(x.c);
    cli_args_free(&a);
    fflush(stdout);
    return code;
}
