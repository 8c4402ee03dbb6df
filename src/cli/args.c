/*
 * args.c - the tables of subcommands and flags, the parser and --help.
 *
 * Everything the command line accepts is declared once, here: the parser
 * looks flags up in cli_flags (by long or short name, restricted to the
 * subcommand's mask) and --help prints the same rows, so the two cannot
 * drift apart. docs/cli.md follows this file.
 */
#include "args.h"

#include <stdlib.h>
#include <string.h>

#define B(c) CLI_CMD_BIT(c)
#define JOBCMDS (B(CMD_SUBMIT) | B(CMD_GET) | B(CMD_WAIT) | B(CMD_RESULT) | B(CMD_CANCEL) | B(CMD_REQUEUE))

const cli_cmd cli_cmds[CMD_COUNT] = {
    [CMD_SUBMIT] = {"submit", "", 0, 0, "submit a job (or a batch) and print its id",
                    "Builds the job from -f FILE (a JSON spec) and/or the flags; flags override the\n"
                    "file. -i NAME=PATH uploads a .npy file and references the blob; NAME=sha256:...\n"
                    "reuses an uploaded blob; NAME=@inline:f32:1,2,3 (or f32[2,2]:1,2,3,4) sends the\n"
                    "values in the request. -a NAME=VALUE takes numbers, true/false, or strings (enum\n"
                    "choices; quote a number to force a string). A FILE holding a JSON array or\n"
                    "{\"jobs\":[...]} is submitted as one batch (no other job flags then); one id\n"
                    "per line is printed and the exit code is 3 if any job was refused.\n"
                    "With --wait, waits like `gexec wait` and exits like it."},
    [CMD_GET] = {"get", "ID", 1, 1, "show a job: state, attempts, timing, error, why it waits", NULL},
    [CMD_WAIT] = {"wait", "ID ...", 1, -1, "wait until jobs finish",
                  "On a terminal, a progress line (state, queue position, elapsed time) is\n"
                  "redrawn in place; otherwise one line \"ID STATE\" is printed per state change.\n"
                  "Exits 0 if every job succeeded, 1 if one finished otherwise, 6 on --timeout."},
    [CMD_RESULT] = {"result", "ID", 1, 1, "fetch the outputs of a succeeded job",
                    "Prints each output (name, dtype, shape and, for small arrays, the values).\n"
                    "With -o DIR, writes DIR/<name>.npy for every output (numpy.load reads them).\n"
                    "Exits 1 when the job finished without success, 3 when it has not finished."},
    [CMD_CANCEL] = {"cancel", "ID ...", 1, -1, "cancel queued or running jobs",
                    "Exits 3 if a job was already final (the server answers 409)."},
    [CMD_REQUEUE] = {"requeue", "ID ...", 1, -1, "run dead or failed jobs again (operator)",
                     "Each job is queued again as a new attempt with a fresh attempt budget\n"
                     "(`gexec list --state dead` lists the dead letters). Exits 3 if a job is\n"
                     "in another state (the server answers 409)."},
    [CMD_LIST] = {"list", "", 0, 0, "list jobs (by id, one page at a time) with filters",
                  "Prints one page (--limit) and, if there is more, on stderr the command for\n"
                  "the next (the same filters and its --cursor); --all follows the cursors to\n"
                  "the end. --order desc (or -r) lists the newest first, from the newest job\n"
                  "when the first page was read down. --tenant lists another tenant's jobs\n"
                  "(admin or operator)."},
    [CMD_EVENTS] = {"events", "[ID]", 0, 1, "follow job state changes (server-sent events)",
                    "Prints one line per state change as it happens (--json: one JSON object per\n"
                    "line). With --job ID (or an ID operand) prints the job's stored history first\n"
                    "and ends when the job is final; --history prints only the history. A stream\n"
                    "that drops or that the daemon ends (it stops or restarts) is connected again;\n"
                    "30 s without a connection exits 5."},
    [CMD_DEVICES] = {"devices", "[drain|undrain NAME]", 0, 2, "list devices: kind, slots, memory, load, health; drain",
                     "devices drain NAME (a name as listed, cpu or cuda:0, or its index) stops new\n"
                     "placements on the device: running jobs finish, queued ones go to other devices\n"
                     "or wait (\"NAME drained by an operator\"); devices undrain NAME ends it\n"
                     "(operator). Prints the device's name and state; exits 4 for an unknown device."},
    [CMD_KERNELS] = {"kernels", "[NAME]", 0, 1, "list kernels, or describe one (args, inputs, outputs)",
                     NULL},
    [CMD_HEALTH] = {"health", "", 0, 0, "check that the daemon is alive and ready",
                    "Exits 0 when /healthz and /readyz both answer OK, 5 otherwise."},
    [CMD_KEYS] = {"keys", "create|list|revoke [ID]", 1, 2, "manage API keys (admin)",
                  "keys create --tenant T --role R [--expires-in DURATION] [--label L] prints the\n"
                  "new key once (the server keeps only its hash). keys list [--tenant T]\n"
                  "[--state active|revoked] lists every key, oldest first, without secrets;\n"
                  "with --limit N one page of N and the --cursor of the next (--all: every page).\n"
                  "keys revoke ID refuses the key from then on."},
    [CMD_TENANTS] = {"tenants", "create|list|usage [NAME]", 1, 2, "create, change or list tenants; usage",
                     "tenants create --tenant NAME [--weight W] [--max-running N] [--max-queued N]\n"
                     "[--max-memory BYTES] [--device-seconds-per-hour X] creates the tenant or changes\n"
                     "its fair-share weight and quotas (0: no limit; admin). tenants list shows every\n"
                     "tenant (admin). tenants usage NAME shows the tenant's usage against each quota\n"
                     "(a key of that tenant, or operator and up)."},
    [CMD_AUDIT] = {"audit", "verify", 1, 1, "check the audit log's hash chain (no daemon needed)",
                   "audit verify [--file PATH] reads the log (default ./gexec-data/audit.log) and\n"
                   "the rotated files beside it (PATH.<20 digits>, oldest first) and checks every\n"
                   "record's hash and its link to the one before, across files too. Exits 0 when\n"
                   "intact (saying from which record when the oldest files are gone), 1 naming\n"
                   "the first changed, removed or reordered record and its file."},
    [CMD_TOP] = {"top", "", 0, 0, "the daemon at a glance, refreshed: jobs/s, queues, devices, tenants (operator)",
                 "Every --interval (default 2s) reads /metrics and /v1/devices and shows what\n"
                 "moved since the last look: jobs submitted and finished per second (by final\n"
                 "state), queued and running jobs, API requests and 5xx per second, store commits\n"
                 "per second and rows per commit, each device (status, running, queued, memory,\n"
                 "busy share of its slots) and each tenant (queued, running, device-seconds per\n"
                 "second). The first screen comes after one interval. On a terminal the screen\n"
                 "is redrawn until interrupted; otherwise snapshots are printed one after another.\n"
                 "--once prints one and exits; --json prints each as one JSON object a line.\n"
                 "Needs an operator or admin key (/metrics)."},
    [CMD_LOGS] = {"logs", "ID", 1, 1, "a job's history: every state change, attempt, device and error",
                  "Prints the job's stored state changes (as `gexec events --job ID --history`);\n"
                  "with -f, then follows its new changes until it is final. Exit 4 for an unknown id."},
    [CMD_WHOAMI] = {"whoami", "", 0, 0, "the key in use: its id, tenant, role and expiry",
                    "Asks GET /v1/whoami what the server makes of the key (--api-key,\n"
                    "GEXEC_API_KEY); exits 3 for a key it refuses."},
    [CMD_HELP] = {"help", "[COMMAND]", 0, 1, "show help for a command", NULL},
};

const cli_flag cli_flags[] = {
    /* global */
    {FL_SERVER, "server", 0, "URL", 0, CLI_GLOBAL,
     "daemon URL (default $GEXEC_SERVER, else http://127.0.0.1:8080)"},
    {FL_API_KEY, "api-key", 0, "KEY", 0, CLI_GLOBAL, "API key sent as a bearer token (default $GEXEC_API_KEY)"},
    {FL_CA_FILE, "cacert", 0, "FILE", 0, CLI_GLOBAL,
     "CA bundle (PEM) that verifies an https server (default $GEXEC_CACERT, else the system's)"},
    {FL_INSECURE, "insecure", 0, NULL, 0, CLI_GLOBAL,
     "do not verify the server's TLS certificate (warns; for throwaway test servers only)"},
    {FL_RETRIES, "retries", 0, "N", 0, CLI_GLOBAL,
     "repeat a request refused with 429/503 or that cannot connect, N times (default 2)"},
    {FL_JSON, "json", 0, NULL, 0, CLI_GLOBAL, "print the server's JSON instead of text (for scripts)"},
    {FL_HELP, "help", 'h', NULL, 0, CLI_GLOBAL, "show help and exit"},
    {FL_VERSION, "version", 0, NULL, 0, CLI_GLOBAL, "print the version and exit"},
    /* submit */
    {FL_KERNEL, "kernel", 'k', "NAME", 0, B(CMD_SUBMIT), "kernel to run (\"saxpy\" or \"saxpy@1\")"},
    {FL_ARG, "arg", 'a', "NAME=VALUE", 1, B(CMD_SUBMIT), "kernel argument (repeatable)"},
    {FL_INPUT, "input", 'i', "NAME=SRC", 1, B(CMD_SUBMIT),
     "input from a .npy PATH, a blob sha256:..., or @inline:DTYPE[SHAPE]:V,V,... (repeatable)"},
    {FL_FILE, "file", 'f', "FILE", 0, B(CMD_SUBMIT), "JSON job spec, or a JSON array of specs (a batch); - for stdin"},
    {FL_PRIORITY, "priority", 'p', "N", 0, B(CMD_SUBMIT), "priority inside the tenant, -100..100"},
    {FL_DEVICE, "device", 'd', "DEV", 0, B(CMD_SUBMIT), "device constraint: any, cpu, gpu, gpu:1"},
    {FL_FALLBACK, "fallback", 0, "cpu|none", 0, B(CMD_SUBMIT), "with --device gpu: run on the CPU while no GPU is usable"},
    {FL_TIMEOUT, "timeout", 't', "DURATION", 0, B(CMD_SUBMIT), "wall-clock limit once running (30, 1.5s, 250ms, 2m)"},
    {FL_QUEUE_TIMEOUT, "queue-timeout", 0, "DURATION", 0, B(CMD_SUBMIT), "give up if not started within DURATION"},
    {FL_MAX_ATTEMPTS, "max-attempts", 0, "N", 0, B(CMD_SUBMIT), "attempts allowed on transient faults, 1..100 (default: the kernel's)"},
    {FL_MEMORY, "memory", 0, "BYTES", 0, B(CMD_SUBMIT), "device memory the job needs, when more than its kernel estimates from the inputs"},
    {FL_DEP, "dep", 0, "ID", 1, B(CMD_SUBMIT), "run only after job ID succeeds (repeatable)"},
    {FL_LABEL, "label", 'l', "KEY=VALUE", 1, B(CMD_SUBMIT), "label the job (repeatable)"},
    {FL_IDEM, "idempotency-key", 0, "KEY", 0, B(CMD_SUBMIT), "resubmitting with the same key returns the same job"},
    {FL_WAIT, "wait", 'w', NULL, 0, B(CMD_SUBMIT), "wait for the job to finish, as `gexec wait`"},
    {FL_WAIT_TIMEOUT, "wait-timeout", 0, "DURATION", 0, B(CMD_SUBMIT), "with --wait, give up after DURATION (exit 6)"},
    /* wait */
    {FL_TIMEOUT, "timeout", 't', "DURATION", 0, B(CMD_WAIT), "give up after DURATION (exit 6); default: never"},
    {FL_QUIET, "quiet", 'q', NULL, 0, B(CMD_WAIT) | B(CMD_SUBMIT) | B(CMD_CANCEL) | B(CMD_REQUEUE),
     "print nothing but errors (the exit code tells)"},
    /* result */
    {FL_OUTPUT, "output", 'o', "DIR", 0, B(CMD_RESULT), "write each output to DIR/<name>.npy (DIR is created)"},
    /* list */
    {FL_STATE, "state", 's', "S,S", 0, B(CMD_LIST) | B(CMD_EVENTS), "only these states (queued,running,...)"},
    {FL_KERNEL, "kernel", 'k', "NAME", 0, B(CMD_LIST) | B(CMD_EVENTS), "only this kernel"},
    {FL_LABEL, "label", 'l', "KEY=VALUE", 1, B(CMD_LIST), "only jobs with this label (repeatable: all must match)"},
    {FL_LIMIT, "limit", 'n', "N", 0, B(CMD_LIST), "jobs per page (server default if absent)"},
    {FL_CURSOR, "cursor", 0, "CURSOR", 0, B(CMD_LIST), "start at this cursor (printed by the previous page)"},
    {FL_ALL, "all", 0, NULL, 0, B(CMD_LIST), "follow the cursors and list every match"},
    {FL_ORDER, "order", 0, "asc|desc", 0, B(CMD_LIST), "oldest first (asc, the default) or newest first (desc)"},
    {FL_NEWEST, "newest", 'r', NULL, 0, B(CMD_LIST), "newest first: --order desc"},
    {FL_TENANT, "tenant", 0, "NAME", 0, B(CMD_LIST) | B(CMD_EVENTS),
     "this tenant's jobs (admin or operator key; default: the key's tenant)"},
    /* events */
    {FL_JOB, "job", 'j', "ID", 0, B(CMD_EVENTS), "only this job: print its history, follow until it is final"},
    {FL_HISTORY, "history", 0, NULL, 0, B(CMD_EVENTS), "with --job: print the stored history only"},
    {FL_TIMEOUT, "timeout", 't', "DURATION", 0, B(CMD_EVENTS),
     "stop after DURATION (exit 0; exit 6 with --job if not final)"},
    /* keys, tenants, audit */
    {FL_TENANT, "tenant", 0, "NAME", 0, B(CMD_KEYS) | B(CMD_TENANTS), "tenant of the key, or the tenant to create"},
    {FL_ROLE, "role", 0, "ROLE", 0, B(CMD_KEYS), "viewer, submitter, operator or admin"},
    {FL_STATE, "state", 's', "active|revoked", 0, B(CMD_KEYS), "keys list: only keys not revoked, or only revoked ones"},
    {FL_LIMIT, "limit", 'n', "N", 0, B(CMD_KEYS), "keys list: one page of N keys (1..1000) instead of every key"},
    {FL_CURSOR, "cursor", 0, "CURSOR", 0, B(CMD_KEYS), "keys list: start at this cursor (printed by the previous page)"},
    {FL_ALL, "all", 0, NULL, 0, B(CMD_KEYS), "keys list --limit N: follow the cursors, N keys a request"},
    {FL_EXPIRES, "expires-in", 0, "DURATION", 0, B(CMD_KEYS), "the key expires after DURATION (default: never)"},
    {FL_LABEL, "label", 0, "TEXT", 0, B(CMD_KEYS), "a note kept with the key"},
    {FL_WEIGHT, "weight", 0, "W", 0, B(CMD_TENANTS), "fair-share weight (1e-6..1e6, default 1)"},
    {FL_MAX_RUNNING, "max-running", 0, "N", 0, B(CMD_TENANTS), "most running jobs (0: no limit)"},
    {FL_DEFAULT_PRIORITY, "default-priority", 0, "N", 0, B(CMD_TENANTS), "priority of its jobs that set none, -100..100 (default 0)"},
    {FL_MAX_QUEUED, "max-queued", 0, "N", 0, B(CMD_TENANTS), "most queued jobs; more are refused (0: no limit)"},
    {FL_MAX_MEMORY, "max-memory", 0, "BYTES", 0, B(CMD_TENANTS),
     "most device memory held by running jobs; more wait (0: no limit)"},
    {FL_DEVICE_SECONDS, "device-seconds-per-hour", 0, "X", 0, B(CMD_TENANTS),
     "device-seconds in the trailing hour; more are refused (0: no limit)"},
    {FL_FILE, "file", 'f', "PATH", 0, B(CMD_AUDIT), "the audit log (default ./gexec-data/audit.log)"},
    /* top, logs */
    {FL_INTERVAL, "interval", 0, "DURATION", 0, B(CMD_TOP), "time between looks (default 2s, at least 100ms)"},
    {FL_ONCE, "once", 0, NULL, 0, B(CMD_TOP), "print one snapshot (after one interval) and exit"},
    {FL_FOLLOW, "follow", 'f', NULL, 0, B(CMD_LOGS), "then follow the job's changes until it is final"},
};
const size_t cli_nflags = sizeof cli_flags / sizeof cli_flags[0];

int cli_cmd_find(const char *name) {
    for (int i = 0; i < CMD_COUNT; i++)
        if (!strcmp(cli_cmds[i].name, name)) return i;
    return -1;
}

/* Flag row for a name in the context of cmd (-1: before the subcommand,
 * globals only). */
static const cli_flag *find_long(const char *name, size_t n, int cmd) {
    for (size_t i = 0; i < cli_nflags; i++) {
        const cli_flag *f = &cli_flags[i];
        if (strlen(f->lng) != n || strncmp(f->lng, name, n)) continue;
        if (f->cmds == CLI_GLOBAL || (cmd >= 0 && (f->cmds & CLI_CMD_BIT(cmd)))) return f;
    }
    return NULL;
}

static const cli_flag *find_short(char ch, int cmd) {
    for (size_t i = 0; i < cli_nflags; i++) {
        const cli_flag *f = &cli_flags[i];
        if (f->shrt != ch) continue;
        if (f->cmds == CLI_GLOBAL || (cmd >= 0 && (f->cmds & CLI_CMD_BIT(cmd)))) return f;
    }
    return NULL;
}

static void add_opt(cli_args *a, cli_flag_id id, const char *val) {
    a->opts[a->nopts].id = id;
    a->opts[a->nopts].val = val;
    a->nopts++;
}

static int usage_fail(char *msg, size_t cap, const char *fmt, const char *s, const char *t) {
    if (msg && cap) snprintf(msg, cap, fmt, s, t);
    return -1;
}

int cli_parse(int argc, char **argv, cli_args *a, char *msg, size_t cap) {
    memset(a, 0, sizeof *a);
    a->cmd = -1;
    if (msg && cap) msg[0] = '\0';
    /* bundled switches ("-wq") give several options per word: room for
     * one per character */
    size_t n = 1;
    for (int i = 1; i < argc; i++) n += strlen(argv[i]) + 1;
    a->opts = calloc(n, sizeof *a->opts);
    a->pos = calloc(n, sizeof *a->pos);
    if (!a->opts || !a->pos) return usage_fail(msg, cap, "out of memory%s%s", "", "");
    int only_pos = 0;
    int help_for = 0; /* the subcommand was "help" */
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i];
        const char *cname = a->cmd >= 0 ? cli_cmds[a->cmd].name : "gexec";
        if (!only_pos && !strcmp(s, "--")) {
            only_pos = 1;
            continue;
        }
        if (!only_pos && s[0] == '-' && s[1] == '-') {
            const char *name = s + 2, *eq = strchr(name, '=');
            size_t nl = eq ? (size_t)(eq - name) : strlen(name);
            const cli_flag *f = find_long(name, nl, a->cmd);
            if (!f) {
                if (find_long(name, nl, CMD_SUBMIT) || find_long(name, nl, CMD_LIST) ||
                    find_long(name, nl, CMD_EVENTS) || find_long(name, nl, CMD_RESULT) ||
                    find_long(name, nl, CMD_WAIT))
                    return usage_fail(msg, cap, "%s does not take option '%s'", cname, s);
                return usage_fail(msg, cap, "unknown option '%s'%s (see --help)", s, "");
            }
            const char *val = NULL;
            if (f->metavar) {
                if (eq)
                    val = eq + 1;
                else if (i + 1 < argc)
                    val = argv[++i];
                else
                    return usage_fail(msg, cap, "option '--%s' needs a value (%s)", f->lng, f->metavar);
            } else if (eq) {
                return usage_fail(msg, cap, "option '--%s' takes no value%s", f->lng, "");
            }
            add_opt(a, f->id, val);
            continue;
        }
        if (!only_pos && s[0] == '-' && s[1] && s[1] != '-' &&
            !(a->cmd >= 0 && (s[1] >= '0' && s[1] <= '9'))) {
            for (const char *p = s + 1; *p; p++) {
                const cli_flag *f = find_short(*p, a->cmd);
                char opt[3] = {'-', *p, 0};
                if (!f) return usage_fail(msg, cap, "unknown option '%s' for %s (see --help)", opt, cname);
                if (!f->metavar) {
                    add_opt(a, f->id, NULL);
                    continue;
                }
                const char *val;
                if (p[1])
                    val = p + 1;
                else if (i + 1 < argc)
                    val = argv[++i];
                else
                    return usage_fail(msg, cap, "option '%s' needs a value (%s)", opt, f->metavar);
                add_opt(a, f->id, val);
                break;
            }
            continue;
        }
        if (a->cmd < 0 && !help_for) {
            int c = cli_cmd_find(s);
            if (c < 0) return usage_fail(msg, cap, "unknown command '%s'%s (try gexec --help)", s, "");
            if (c == CMD_HELP) {
                help_for = 1;
                add_opt(a, FL_HELP, NULL);
                continue;
            }
            a->cmd = c;
            continue;
        }
        if (help_for && a->cmd < 0) {
            int c = cli_cmd_find(s);
            if (c < 0) return usage_fail(msg, cap, "unknown command '%s'%s (try gexec --help)", s, "");
            a->cmd = c;
            continue;
        }
        a->pos[a->npos++] = s;
    }
    if (cli_has(a, FL_HELP) || cli_has(a, FL_VERSION)) return 0;
    if (a->cmd < 0) return usage_fail(msg, cap, "no command given%s%s (try gexec --help)", "", "");
    const cli_cmd *c = &cli_cmds[a->cmd];
    if (a->npos < c->min_pos) {
        if (msg && cap)
            snprintf(msg, cap, "%s needs %s (see gexec %s --help)", c->name, c->operands, c->name);
        return -1;
    }
    if (c->max_pos >= 0 && a->npos > c->max_pos)
        return usage_fail(msg, cap, "%s: unexpected operand '%s'", c->name, a->pos[c->max_pos]);
    return 0;
}

void cli_args_free(cli_args *a) {
    free(a->opts);
    free(a->pos);
    a->opts = NULL;
    a->pos = NULL;
    a->nopts = a->npos = 0;
}

int cli_has(const cli_args *a, cli_flag_id id) {
    for (int i = 0; i < a->nopts; i++)
        if (a->opts[i].id == id) return 1;
    return 0;
}

const char *cli_get(const cli_args *a, cli_flag_id id) {
    for (int i = a->nopts - 1; i >= 0; i--)
        if (a->opts[i].id == id) return a->opts[i].val;
    return NULL;
}

int cli_count(const cli_args *a, cli_flag_id id) {
    int n = 0;
    for (int i = 0; i < a->nopts; i++) n += a->opts[i].id == id;
    return n;
}

const char *cli_nth(const cli_args *a, cli_flag_id id, int k) {
    for (int i = 0; i < a->nopts; i++)
        if (a->opts[i].id == id && k-- == 0) return a->opts[i].val;
    return NULL;
}

/* ---- help ---------------------------------------------------------------- */

static void flag_line(FILE *f, const cli_flag *fl) {
    char left[64];
    if (fl->shrt)
        snprintf(left, sizeof left, "-%c, --%s%s%s", fl->shrt, fl->lng, fl->metavar ? " " : "",
                 fl->metavar ? fl->metavar : "");
    else
        snprintf(left, sizeof left, "    --%s%s%s", fl->lng, fl->metavar ? " " : "",
                 fl->metavar ? fl->metavar : "");
    if (strlen(left) > 26)
        fprintf(f, "  %s\n  %-26s  %s\n", left, "", fl->help);
    else
        fprintf(f, "  %-26s  %s\n", left, fl->help);
}

static void exit_codes(FILE *f) {
    fputs("exit codes:\n"
          "  0  ok\n"
          "  1  the job finished but did not succeed (wait, result, submit --wait)\n"
          "  2  usage error (bad flags, unreadable files, bad inline arrays)\n"
          "  3  the server refused the request (HTTP 4xx)\n"
          "  4  not found (HTTP 404)\n"
          "  5  server or transport error (HTTP 5xx, cannot connect, not ready)\n"
          "  6  timed out waiting\n",
          f);
}

void cli_help(FILE *f, int cmd) {
    if (cmd < 0 || cmd == CMD_HELP) {
        fputs("usage: gexec [global options] COMMAND [options] [operands]\n\n"
              "gexec talks to a gexecd daemon over its HTTP API.\n\ncommands:\n",
              f);
        for (int i = 0; i < CMD_COUNT; i++)
            fprintf(f, "  %-9s %s\n", cli_cmds[i].name, cli_cmds[i].summary);
        fputs("\nglobal options (before or after the command):\n", f);
        for (size_t i = 0; i < cli_nflags; i++)
            if (cli_flags[i].cmds == CLI_GLOBAL) flag_line(f, &cli_flags[i]);
        fputs("\n", f);
        exit_codes(f);
        fputs("\n`gexec COMMAND --help` describes a command.\n", f);
        return;
    }
    const cli_cmd *c = &cli_cmds[cmd];
    fprintf(f, "usage: gexec %s [options]%s%s\n\n%s.\n", c->name, *c->operands ? " " : "",
            c->operands, c->summary);
    if (c->details) fprintf(f, "\n%s\n", c->details);
    int any = 0;
    for (size_t i = 0; i < cli_nflags; i++) {
        const cli_flag *fl = &cli_flags[i];
        if (fl->cmds == CLI_GLOBAL || !(fl->cmds & CLI_CMD_BIT(cmd))) continue;
        if (!any++) fputs("\noptions:\n", f);
        flag_line(f, fl);
    }
    fputs("\nglobal options:\n", f);
    for (size_t i = 0; i < cli_nflags; i++)
        if (cli_flags[i].cmds == CLI_GLOBAL) flag_line(f, &cli_flags[i]);
    fputs("\n", f);
    exit_codes(f);
}
