/*
 * test_errclass.c - the error class table (src/exec/errclass.c): every code
 * has a row, the rows say what the engine and the API do with a code, and
 * docs/operations.md carries exactly the generated table
 * (GX_UPDATE_DOCS=1 build/test_errclass rewrites it).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gexec/gexec_errclass.h"
#include "testutil.h"

static void every_code_has_a_row(void **st) {
    (void)st;
    int n;
    const gx_errclass_info *t = gx_errclass_table(&n);
    int ncodes = 0;
#define CHECK_ROW(name, val, text)                                                            \
    do {                                                                                      \
        ncodes++;                                                                             \
        assert_true(-(val) < n);                                                              \
        if (t[-(val)].code != (val)) fail_msg("GX_" #name " has no row in its place in errclass.c"); \
        assert_int_equal(gx_errclass_of(val).code, (val));                                    \
    } while (0);
    GX_ERRNO_MAP(CHECK_ROW)
#undef CHECK_ROW
    assert_int_equal(n, ncodes);
    /* unknown codes: permanent, 500 */
    gx_errclass_info u = gx_errclass_of(-9999);
    assert_int_equal(u.cls, GX_ECLASS_PERMANENT);
    assert_int_equal(u.http_status, 500);
    assert_int_equal(u.code, -9999);
    assert_string_equal(gx_errclass_name((gx_errclass)42), "unknown");
}

static void classes(void **st) {
    (void)st;
    assert_int_equal(gx_errclass_get(GX_OK), GX_ECLASS_NONE);
    assert_int_equal(gx_errclass_get(GX_ETRANSIENT), GX_ECLASS_TRANSIENT);
    assert_int_equal(gx_errclass_get(GX_EDEVICE), GX_ECLASS_DEVICE);
    assert_int_equal(gx_errclass_get(GX_ESTORE), GX_ECLASS_STORE);
    assert_int_equal(gx_errclass_get(GX_EINVAL), GX_ECLASS_PERMANENT);
    assert_int_equal(gx_errclass_get(GX_EKERNEL), GX_ECLASS_PERMANENT);
    /* retried: transient, device, store; never bad input or a cancellation */
    assert_true(gx_errclass_retryable(GX_ETRANSIENT));
    assert_true(gx_errclass_retryable(GX_EDEVICE));
    assert_true(gx_errclass_retryable(GX_ESTORE));
    assert_true(gx_errclass_retryable(GX_EBUSY));
    assert_false(gx_errclass_retryable(GX_EINVAL));
    assert_false(gx_errclass_retryable(GX_ECANCELED));
    assert_false(gx_errclass_retryable(GX_EKERNEL));
    assert_false(gx_errclass_retryable(GX_OK));
    /* breakers: only device and kernel problems count */
    assert_int_equal(gx_errclass_of(GX_EDEVICE).breaker, GX_EBRK_DEVICE);
    assert_int_equal(gx_errclass_of(GX_ETRANSIENT).breaker, GX_EBRK_KERNEL);
    assert_int_equal(gx_errclass_of(GX_EKERNEL).breaker, 0); /* the job's input, not the kernel */
    assert_int_equal(gx_errclass_of(GX_EINVAL).breaker, 0);
    assert_int_equal(gx_errclass_of(GX_ECANCELED).breaker, 0);
    assert_int_equal(gx_errclass_of(GX_ETIMEDOUT).breaker, 0);
    /* the API edge: store faults are 503 with Retry-After */
    assert_int_equal(gx_errclass_of(GX_ESTORE).http_status, 503);
    assert_true(gx_errclass_of(GX_ESTORE).retry_after_s > 0);
    assert_int_equal(gx_errclass_of(GX_EINVAL).http_status, 400);
    assert_int_equal(gx_errclass_of(GX_ENOTFOUND).http_status, 404);
    assert_int_equal(gx_errclass_of(GX_EAUTH).http_status, 401);
    assert_int_equal(gx_errclass_of(GX_EPERM).http_status, 403);
    assert_int_equal(gx_errclass_of(GX_EQUOTA).http_status, 429);
    assert_int_equal(gx_errclass_of(GX_ETIMEDOUT).http_status, 504);
    assert_int_equal(gx_errclass_of(GX_EDEVICE).retry_after_s, 0);
}

/* docs/operations.md holds exactly the generated table. */
static void docs_agree(void **st) {
    (void)st;
    size_t need = gx_errclass_table_markdown(NULL, 0);
    char *gen = malloc(need + 1);
    assert_int_equal(gx_errclass_table_markdown(gen, need + 1), need);
    assert_int_equal(strlen(gen), need);
    char small[10];
    assert_int_equal(gx_errclass_table_markdown(small, sizeof small), need);
    assert_int_equal(strlen(small), 9);
    tu_doc_block("docs/operations.md", "ERROR CLASS TABLE", gen, need, "src/exec/errclass.c (test_errclass)");
    free(gen);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_code_has_a_row),
        cmocka_unit_test(classes),
        cmocka_unit_test(docs_agree),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
