/*
 * test_cli_args.c - the command line of `gexec` without a server: the
 * parser and the help generated from the same tables.
 *
 * The files of src/cli are built only into the gexec program, so this test compiles
 * the one self-contained file it checks (cli/args.c) into itself.
 */
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#include "cli/args.c"

/* Parse a NULL-terminated list of words (the program name is added). */
static int parse(cli_args *a, char *msg, const char *const *words) {
    char *argv[64];
    int argc = 0;
    argv[argc++] = "gexec";
    for (int i = 0; words[i]; i++) argv[argc++] = (char *)words[i];
    argv[argc] = NULL;
    return cli_parse(argc, argv, a, msg, 256);
}

#define PARSE_OK(a, ...)                                              \
    do {                                                              \
        char msg_[256];                                               \
        const char *w_[] = {__VA_ARGS__, NULL};                       \
        if (parse(a, msg_, w_)) fail_msg("unexpected error: %s", msg_); \
    } while (0)

#define PARSE_FAIL(needle, ...)                                                           \
    do {                                                                                  \
        cli_args a_;                                                                      \
        char msg_[256];                                                                   \
        const char *w_[] = {__VA_ARGS__, NULL};                                           \
        assert_int_equal(parse(&a_, msg_, w_), -1);                                       \
        if (!strstr(msg_, needle)) fail_msg("message '%s' lacks '%s'", msg_, needle);    \
        cli_args_free(&a_);                                                               \
    } while (0)

static void test_submit_flags(void **state) {
    cli_args a;
    PARSE_OK(&a, "--server", "http://h:1", "submit", "-k", "saxpy", "-a", "a=2", "--arg=b=3",
             "-i", "x=@inline:f32:1,2", "-ix=y.npy", "--priority", "-5", "--dep", "4", "--dep=5",
             "--label", "team=v", "--json", "-w", "--wait-timeout", "10s");
    assert_int_equal(a.cmd, CMD_SUBMIT);
    assert_string_equal(cli_get(&a, FL_SERVER), "http://h:1");
    assert_string_equal(cli_get(&a, FL_KERNEL), "saxpy");
    assert_int_equal(cli_count(&a, FL_ARG), 2);
    assert_string_equal(cli_nth(&a, FL_ARG, 0), "a=2");
    assert_string_equal(cli_nth(&a, FL_ARG, 1), "b=3");
    assert_int_equal(cli_count(&a, FL_INPUT), 2);
    assert_string_equal(cli_nth(&a, FL_INPUT, 1), "x=y.npy");
    assert_string_equal(cli_get(&a, FL_PRIORITY), "-5"); /* a value, not a flag */
    assert_int_equal(cli_count(&a, FL_DEP), 2);
    assert_string_equal(cli_nth(&a, FL_DEP, 1), "5");
    assert_true(cli_has(&a, FL_JSON));
    assert_true(cli_has(&a, FL_WAIT));
    assert_string_equal(cli_get(&a, FL_WAIT_TIMEOUT), "10s");
    assert_null(cli_nth(&a, FL_DEP, 2));
    assert_false(cli_has(&a, FL_DEVICE));
    assert_null(cli_get(&a, FL_DEVICE));
    assert_int_equal(a.npos, 0);
    cli_args_free(&a);
}

static void test_operands_and_globals(void **state) {
    cli_args a;
    PARSE_OK(&a, "wait", "41", "42", "--timeout", "5", "--json", "--api-key", "k");
    assert_int_equal(a.cmd, CMD_WAIT);
    assert_int_equal(a.npos, 2);
    assert_string_equal(a.pos[0], "41");
    assert_string_equal(a.pos[1], "42");
    assert_string_equal(cli_get(&a, FL_TIMEOUT), "5");
    assert_string_equal(cli_get(&a, FL_API_KEY), "k");
    cli_args_free(&a);

    /* last value of a single flag wins; -- ends the options */
    PARSE_OK(&a, "--json", "list", "-s", "queued", "--state=running", "-n", "7", "--all");
    assert_string_equal(cli_get(&a, FL_STATE), "running");
    assert_string_equal(cli_get(&a, FL_LIMIT), "7");
    assert_true(cli_has(&a, FL_ALL));
    cli_args_free(&a);

    PARSE_OK(&a, "get", "--", "-7");
    assert_int_equal(a.npos, 1);
    assert_string_equal(a.pos[0], "-7");
    cli_args_free(&a);

    /* bundled switches */
    PARSE_OK(&a, "submit", "-wqkspin");
    assert_true(cli_has(&a, FL_WAIT));
    assert_true(cli_has(&a, FL_QUIET));
    assert_string_equal(cli_get(&a, FL_KERNEL), "spin");
    cli_args_free(&a);

    /* more options than words (found by fuzz/fuzz_client_parse.c) */
    PARSE_OK(&a, "submit", "-wwwwwwwwwwwwwwwwwwwwwwwwwwwwq");
    assert_int_equal(cli_count(&a, FL_WAIT), 28);
    assert_true(cli_has(&a, FL_QUIET));
    cli_args_free(&a);

    /* the same long name means different flags in different commands */
    PARSE_OK(&a, "events", "--job", "9", "--history", "-k", "saxpy", "-t", "2m");
    assert_int_equal(a.cmd, CMD_EVENTS);
    assert_string_equal(cli_get(&a, FL_JOB), "9");
    assert_string_equal(cli_get(&a, FL_KERNEL), "saxpy");
    assert_string_equal(cli_get(&a, FL_TIMEOUT), "2m");
    cli_args_free(&a);
}

static void test_help_and_version(void **state) {
    cli_args a;
    PARSE_OK(&a, "--help");
    assert_int_equal(a.cmd, -1);
    assert_true(cli_has(&a, FL_HELP));
    cli_args_free(&a);
    PARSE_OK(&a, "help", "result");
    assert_int_equal(a.cmd, CMD_RESULT);
    assert_true(cli_has(&a, FL_HELP));
    cli_args_free(&a);
    PARSE_OK(&a, "get", "-h"); /* help needs no operand */
    assert_int_equal(a.cmd, CMD_GET);
    assert_true(cli_has(&a, FL_HELP));
    cli_args_free(&a);
    PARSE_OK(&a, "--version");
    assert_true(cli_has(&a, FL_VERSION));
    cli_args_free(&a);

    /* every page prints, names its flags, and lists the exit codes */
    for (int c = -1; c < CMD_COUNT; c++) {
        char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);
        assert_non_null(f);
        cli_help(f, c);
        fclose(f);
        assert_non_null(strstr(buf, "usage: gexec"));
        assert_non_null(strstr(buf, "6  timed out waiting"));
        assert_non_null(strstr(buf, "--server URL"));
        if (c >= 0)
            for (size_t i = 0; i < cli_nflags; i++)
                if (cli_flags[i].cmds != CLI_GLOBAL && (cli_flags[i].cmds & CLI_CMD_BIT(c))) {
                    char want[64];
                    snprintf(want, sizeof want, "--%s", cli_flags[i].lng);
                    if (!strstr(buf, want)) fail_msg("help of %s lacks %s", cli_cmds[c].name, want);
                }
        free(buf);
    }
}

static void test_errors(void **state) {
    PARSE_FAIL("no command", "--json");
    PARSE_FAIL("unknown command 'frob'", "frob");
    PARSE_FAIL("unknown option '--frob'", "get", "1", "--frob");
    PARSE_FAIL("needs a value", "submit", "-k");
    PARSE_FAIL("needs a value", "submit", "--kernel");
    PARSE_FAIL("takes no value", "submit", "--wait=yes");
    PARSE_FAIL("get needs ID", "get");
    PARSE_FAIL("unexpected operand '2'", "get", "1", "2");
    PARSE_FAIL("unexpected operand 'x'", "submit", "x");
    PARSE_FAIL("get does not take option '--kernel'", "get", "1", "--kernel", "x");
    PARSE_FAIL("unknown option '-z'", "list", "-z");
    PARSE_FAIL("unknown command 'nope'", "help", "nope");
    /* command flags before the command are not known yet */
    PARSE_FAIL("does not take option '--kernel'", "--kernel", "x", "submit");
}

static void test_tables(void **state) {
    /* short letters and long names are unique within each command */
    for (int c = 0; c < CMD_COUNT; c++) {
        for (size_t i = 0; i < cli_nflags; i++) {
            const cli_flag *f = &cli_flags[i];
            if (!(f->cmds & CLI_CMD_BIT(c))) continue;
            assert_non_null(f->help);
            for (size_t j = i + 1; j < cli_nflags; j++) {
                const cli_flag *g = &cli_flags[j];
                if (!(g->cmds & CLI_CMD_BIT(c))) continue;
                if (!strcmp(f->lng, g->lng) || (f->shrt && f->shrt == g->shrt))
                    fail_msg("%s: flags --%s and --%s clash", cli_cmds[c].name, f->lng, g->lng);
            }
        }
        assert_int_equal(cli_cmd_find(cli_cmds[c].name), c);
    }
    assert_int_equal(cli_cmd_find("nope"), -1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_submit_flags),    cmocka_unit_test(test_operands_and_globals),
        cmocka_unit_test(test_help_and_version), cmocka_unit_test(test_errors),
        cmocka_unit_test(test_tables),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
