/*
 * test_breaker.c - the circuit breaker state machine (src/exec/breaker.c)
 * with the clock passed in: closed -> open at the threshold, half-open
 * after the cool-down with exactly one probe, closed on its success, open
 * again on its failure; neutral outcomes neither count nor reset.
 */
#include "exec/breaker.h"
#include "gexec/gexec_err.h"
#include "testutil.h"

#define S 1000000000LL

static void opens_at_threshold(void **st) {
    (void)st;
    gx__brk b;
    gx__brk_init(&b, 3, 10 * S);
    int64_t now = 100 * S;
    assert_true(gx__brk_allow(&b, now));
    gx__brk_failure(&b, GX_EDEVICE, now);
    gx__brk_failure(&b, GX_EDEVICE, now);
    assert_int_equal(b.state, GX__BRK_CLOSED);
    assert_true(gx__brk_allow(&b, now));
    gx__brk_failure(&b, GX_EDEVICE, now);
    assert_int_equal(b.state, GX__BRK_OPEN);
    assert_int_equal(b.open_failures, 3);
    assert_int_equal(b.last_code, GX_EDEVICE);
    assert_int_equal(b.probe_ns, 110 * S);
    assert_int_equal(b.transitions, 1);
    assert_false(gx__brk_allow(&b, now));
    assert_false(gx__brk_allow(&b, 110 * S - 1));
}

static void success_resets_the_count(void **st) {
    (void)st;
    gx__brk b;
    gx__brk_init(&b, 3, S);
    gx__brk_failure(&b, GX_EKERNEL, 0);
    gx__brk_failure(&b, GX_EKERNEL, 0);
    gx__brk_success(&b);
    gx__brk_failure(&b, GX_EKERNEL, 0);
    gx__brk_failure(&b, GX_EKERNEL, 0);
    assert_int_equal(b.state, GX__BRK_CLOSED);
    assert_int_equal(b.failures, 2);
    /* neutral outcomes (cancelled, bad input) neither count nor reset */
    gx__brk_neutral(&b);
    assert_int_equal(b.failures, 2);
    assert_int_equal(b.transitions, 0);
}

static void half_open_lets_one_probe(void **st) {
    (void)st;
    gx__brk b;
    gx__brk_init(&b, 1, 5 * S);
    gx__brk_failure(&b, GX_EDEVICE, 0);
    assert_int_equal(b.state, GX__BRK_OPEN);
    assert_true(gx__brk_allow(&b, 5 * S));
    assert_int_equal(b.state, GX__BRK_HALF_OPEN);
    gx__brk_sent(&b);
    assert_false(gx__brk_allow(&b, 5 * S)); /* one probe at a time */
    /* a probe that ends without a verdict lets the next one go */
    gx__brk_neutral(&b);
    assert_true(gx__brk_allow(&b, 6 * S));
    gx__brk_sent(&b);
    gx__brk_success(&b);
    assert_int_equal(b.state, GX__BRK_CLOSED);
    assert_int_equal(b.failures, 0);
    assert_int_equal(b.transitions, 3); /* closed->open->half_open->closed */
    assert_true(gx__brk_allow(&b, 6 * S));
}

static void failed_probe_reopens(void **st) {
    (void)st;
    gx__brk b;
    gx__brk_init(&b, 2, 5 * S);
    gx__brk_failure(&b, GX_EDEVICE, 0);
    gx__brk_failure(&b, GX_EDEVICE, 0);
    assert_true(gx__brk_allow(&b, 7 * S));
    gx__brk_sent(&b);
    gx__brk_failure(&b, GX_ETRANSIENT, 7 * S);
    assert_int_equal(b.state, GX__BRK_OPEN);
    assert_int_equal(b.probe_ns, 12 * S); /* a new cool-down from the failure */
    assert_int_equal(b.last_code, GX_ETRANSIENT);
    assert_false(gx__brk_allow(&b, 11 * S));
    assert_true(gx__brk_allow(&b, 12 * S));
    assert_int_equal(b.transitions, 4);
    assert_string_equal(gx__brk_state_name(b.state), "half_open");
}

static void late_failures_while_open(void **st) {
    (void)st;
    gx__brk b;
    gx__brk_init(&b, 1, 5 * S);
    gx__brk_failure(&b, GX_EDEVICE, 0);
    /* work sent before it opened fails later: the cool-down stays */
    gx__brk_failure(&b, GX_EDEVICE, 3 * S);
    assert_int_equal(b.probe_ns, 5 * S);
    assert_int_equal(b.transitions, 1);
}

static void disabled(void **st) {
    (void)st;
    gx__brk b;
    gx__brk_init(&b, 0, 5 * S);
    for (int i = 0; i < 100; i++) gx__brk_failure(&b, GX_EDEVICE, 0);
    assert_int_equal(b.state, GX__BRK_CLOSED);
    assert_true(gx__brk_allow(&b, 0));
    assert_string_equal(gx__brk_state_name(b.state), "closed");
    assert_string_equal(gx__brk_state_name(9), "unknown");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(opens_at_threshold),     cmocka_unit_test(success_resets_the_count),
        cmocka_unit_test(half_open_lets_one_probe), cmocka_unit_test(failed_probe_reopens),
        cmocka_unit_test(late_failures_while_open), cmocka_unit_test(disabled),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
