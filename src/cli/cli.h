/*
 * cli.h - shared pieces of the `gexec` command: the context each
 * subcommand runs with, error reporting and exit codes, and output helpers.
 * Subcommands talk to the daemon only through gexec_client.h.
 */
#ifndef GX_CLI_H
#define GX_CLI_H

#include <jansson.h>
#include <stdio.h>

#include "args.h"
#include "gexec/gexec_client.h"

typedef struct cli_ctx {
    const cli_args *a;
    const gx_client_opts *copts; /* how the client was made (for a second one) */
    gx_client *c;
    int json;  /* --json */
    int quiet; /* --quiet */
    int tty;   /* stdout is a terminal */
} cli_ctx;

/* Print "gexec: <message> (field F)" for a failed client call and return
 * the exit code for it (from the HTTP status of the last response). */
int cli_fail(cli_ctx *x, int rc, const gx_error *err);
/* Exit code for a failed client call, without printing. */
int cli_exit_code(gx_client *c, int rc);
/* Print "gexec: <formatted>" and return CLI_EXIT_USAGE. */
int cli_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Same message form for local errors (files, parsing) given as a gx_error. */
int cli_local_fail(const char *what, const gx_error *err);

/* Print a JSON text (server answer) on stdout with a final newline. */
void cli_print_raw(const char *json);
/* --json of a listing followed to its end: add the items of member of each
 * page (raw, the server's answer) to all, a JSON array; then print them as
 * one answer of the same shape, {"<member>":[...],"next_cursor":null}
 * (cli_print_gathered takes all). */
void cli_gather_page(json_t *all, const char *raw, const char *member);
void cli_print_gathered(json_t *all, const char *member);

/* A listing's next cursor that is the one just used (a server that does
 * not move it would be followed for ever): the error printed, and
 * CLI_EXIT_SERVER. */
int cli_cursor_stuck(const char *cursor);

/* Parse an integer flag value strictly; CLI_EXIT_USAGE on error. */
int cli_int(const char *flag, const char *s, long lo, long hi, long *out);
/* Parse a duration flag value; CLI_EXIT_USAGE on error. */
int cli_duration(const char *flag, const char *s, long *ms);

/* JSON helpers (out.c): a string member or ""; bytes as "1.5 GiB"; a
 * device's status as `gexec devices` shows it (drained, circuit-open,
 * half-open, or the server's status). */
const char *cli_js(json_t *o, const char *k);
/* A number member, or 0. */
double cli_jnum(json_t *o, const char *k);
/* CLOCK_MONOTONIC in seconds. */
double cli_now_s(void);
void cli_human_bytes(double b, char *buf, size_t cap);
const char *cli_device_status(json_t *d);

/* Print " FLAG VALUE" on f, VALUE as one shell word (quoted when it holds
 * anything a shell would read otherwise); nothing when val is NULL or "".
 * For the "more:" line, a command to paste (out.c). */
void cli_put_opt(FILE *f, const char *flag, const char *val);

/* Output of jobs (out.c). */
void cli_print_job(const gx_client_job *j);
void cli_print_final(const gx_client_job *j);
/* Wait for one job as `gexec wait` does; returns the exit code. timeout_ms
 * -1 = forever. The final job is left in *j. */
int cli_wait_job(cli_ctx *x, const char *id, long timeout_ms, gx_client_job *j);

/* Subcommands; each returns the exit code. */
int cmd_submit(cli_ctx *x);
int cmd_get(cli_ctx *x);
int cmd_wait(cli_ctx *x);
int cmd_result(cli_ctx *x);
int cmd_cancel(cli_ctx *x);
int cmd_requeue(cli_ctx *x);
int cmd_list(cli_ctx *x);
int cmd_events(cli_ctx *x);
int cmd_devices(cli_ctx *x);
int cmd_kernels(cli_ctx *x);
int cmd_health(cli_ctx *x);
int cmd_keys(cli_ctx *x);
int cmd_tenants(cli_ctx *x);
int cmd_audit(cli_ctx *x);
int cmd_top(cli_ctx *x);
int cmd_logs(cli_ctx *x);
int cmd_whoami(cli_ctx *x);

#endif
