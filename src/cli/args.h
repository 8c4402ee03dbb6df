/*
 * args.h - the command line of `gexec`: one table of subcommands and one of
 * flags, a parser driven by them, and --help generated from them.
 *
 * args.c depends on nothing but libc, so tests/unit/test_cli_args.c
 * compiles it in and checks the parser without a server.
 */
#ifndef GX_CLI_ARGS_H
#define GX_CLI_ARGS_H

#include <stddef.h>
#include <stdio.h>

/* Exit codes of `gexec` (stable: scripts rely on them). */
enum {
    CLI_EXIT_OK = 0,        /* done */
    CLI_EXIT_JOB = 1,       /* the job finished but did not succeed (wait, result, submit --wait) */
    CLI_EXIT_USAGE = 2,     /* bad command line or local input (flags, files, inline arrays) */
    CLI_EXIT_REFUSED = 3,   /* the server refused the request (HTTP 4xx other than 404) */
    CLI_EXIT_NOTFOUND = 4,  /* no such job, blob or kernel (HTTP 404) */
    CLI_EXIT_SERVER = 5,    /* server or transport error (5xx, cannot connect, not ready) */
    CLI_EXIT_TIMEOUT = 6    /* gave up waiting (wait --timeout, submit --wait-timeout, events --job) */
};

typedef enum cli_cmd_id {
    CMD_SUBMIT,
    CMD_GET,
    CMD_WAIT,
    CMD_RESULT,
    CMD_CANCEL,
    CMD_REQUEUE,
    CMD_LIST,
    CMD_EVENTS,
    CMD_DEVICES,
    CMD_KERNELS,
    CMD_HEALTH,
    CMD_KEYS,
    CMD_TENANTS,
    CMD_AUDIT,
    CMD_TOP,
    CMD_LOGS,
    CMD_WHOAMI,
    CMD_HELP,
    CMD_COUNT
} cli_cmd_id;

typedef enum cli_flag_id {
    /* global */
    FL_SERVER,
    FL_API_KEY,
    FL_CA_FILE,
    FL_INSECURE,
    FL_RETRIES,
    FL_JSON,
    FL_HELP,
    FL_VERSION,
    /* submit */
    FL_KERNEL,
    FL_ARG,
    FL_INPUT,
    FL_FILE,
    FL_PRIORITY,
    FL_DEVICE,
    FL_FALLBACK,
    FL_TIMEOUT,
    FL_QUEUE_TIMEOUT,
    FL_MAX_ATTEMPTS,
    FL_MEMORY,
    FL_DEP,
    FL_LABEL,
    FL_IDEM,
    FL_WAIT,
    FL_WAIT_TIMEOUT,
    /* result */
    FL_OUTPUT,
    /* list, events */
    FL_STATE,
    FL_LIMIT,
    FL_CURSOR,
    FL_ALL,
    FL_ORDER,
    FL_NEWEST,
    FL_JOB,
    FL_HISTORY,
    FL_QUIET,
    FL_TENANT,
    FL_ROLE,
    FL_EXPIRES,
    FL_WEIGHT,
    FL_MAX_RUNNING,
    FL_DEFAULT_PRIORITY,
    FL_MAX_QUEUED,
    FL_MAX_MEMORY,
    FL_DEVICE_SECONDS,
    FL_INTERVAL,
    FL_ONCE,
    FL_FOLLOW,
    FL_COUNT
} cli_flag_id;

#define CLI_CMD_BIT(c) (1u << (c))
#define CLI_GLOBAL 0xffffffffu /* a flag every subcommand takes */

typedef struct cli_cmd {
    const char *name;
    const char *operands; /* usage of the positional operands ("ID ...") or "" */
    int min_pos;          /* operands required */
    int max_pos;          /* operands allowed; -1 = any number */
    const char *summary;  /* one line for the command list */
    const char *details;  /* paragraph for `gexec CMD --help` (may be NULL) */
} cli_cmd;

typedef struct cli_flag {
    cli_flag_id id;
    const char *lng;      /* long name without "--" */
    char shrt;            /* short letter, 0 none */
    const char *metavar;  /* NULL: a switch that takes no value */
    int repeat;           /* may be given many times (values accumulate) */
    unsigned cmds;        /* subcommands that take it (CLI_CMD_BIT mask) */
    const char *help;
} cli_flag;

extern const cli_cmd cli_cmds[CMD_COUNT];
extern const cli_flag cli_flags[];
extern const size_t cli_nflags;

/* One flag occurrence, in command-line order. */
typedef struct cli_opt {
    cli_flag_id id;
    const char *val; /* points into argv; NULL for switches */
} cli_opt;

typedef struct cli_args {
    int cmd;           /* cli_cmd_id; -1 when only global flags were given */
    cli_opt *opts;     /* malloc'd, nopts entries */
    int nopts;
    const char **pos;  /* operands (into argv); malloc'd */
    int npos;
} cli_args;

/* Parse argv (argv[0] is the program). Flags may come before or after the
 * subcommand; "--" ends them; "--name=value", "--name value", "-kvalue",
 * "-k value" and bundled switches ("-hq") are understood. Returns 0, or -1
 * with a one-line message in msg (a usage error). Free with cli_args_free
 * in both cases. `gexec help CMD` is turned into CMD with FL_HELP. */
int cli_parse(int argc, char **argv, cli_args *a, char *msg, size_t cap);
void cli_args_free(cli_args *a);

/* Was the flag given? Its last value (NULL if not given or a switch). */
int cli_has(const cli_args *a, cli_flag_id id);
const char *cli_get(const cli_args *a, cli_flag_id id);
/* Number of values given for a (repeatable) flag, and the i-th. */
int cli_count(const cli_args *a, cli_flag_id id);
const char *cli_nth(const cli_args *a, cli_flag_id id, int i);

/* Subcommand by name; -1 if unknown. */
int cli_cmd_find(const char *name);

/* Print help: cmd -1 for the overview, else that subcommand's page. */
void cli_help(FILE *f, int cmd);

#endif
