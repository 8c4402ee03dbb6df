/*
 * test_registry.c - kernel registry: lookup, versions, binding and the
 * error messages for bad arguments and inputs.
 */
#include <string.h>

#include "testutil.h"

static void find_and_versions(void **st) {
    (void)st;
    const gx_kernel *k = gx_kernel_find("spin");
    assert_non_null(k);
    assert_ptr_equal(gx_kernel_find("spin@1"), k);
    assert_null(gx_kernel_find("spin@2"));
    assert_null(gx_kernel_find("nope"));
    assert_null(gx_kernel_find("spin@"));
    assert_null(gx_kernel_find("@1"));
    assert_true(gx_kernel_count() >= 1);
    gx_error err;
    assert_int_equal(gx_kernel_register(k, &err), GX_EEXIST);
    gx_kernel bad = *k;
    bad.abi_version = 99;
    assert_int_equal(gx_kernel_register(&bad, &err), GX_EABI);
}

static void bad_args_named(void **st) {
    (void)st;
    const gx_kernel *k = gx_kernel_find("spin");
    gx_error err;
    gx_named_arg a = {.name = "usec", .value = 1};
    assert_int_equal(gx_kernel_run_direct(k, &a, 1, NULL, 0, NULL, &err), GX_EINVAL);
    assert_string_equal(err.field, "args.usec");
    a = (gx_named_arg){.name = "us", .value = -5};
    assert_int_equal(gx_kernel_run_direct(k, &a, 1, NULL, 0, NULL, &err), GX_EINVAL);
    assert_string_equal(err.field, "args.us");
    assert_non_null(strstr(err.message, "range"));
    /* the numbers in full: it said "is 3.6e+09; allowed range is [0, 3.6e+09]" */
    a = (gx_named_arg){.name = "us", .value = 3600000001.0};
    assert_int_equal(gx_kernel_run_direct(k, &a, 1, NULL, 0, NULL, &err), GX_EINVAL);
    assert_non_null(strstr(err.message, "is 3600000001; allowed range is [0, 3600000000]"));
    a = (gx_named_arg){.name = "us", .value = 1.5};
    assert_int_equal(gx_kernel_run_direct(k, &a, 1, NULL, 0, NULL, &err), GX_EINVAL);
    assert_non_null(strstr(err.message, "integer"));
    a = (gx_named_arg){.name = "us", .value = 0.0 / 0.0};
    assert_int_equal(gx_kernel_run_direct(k, &a, 1, NULL, 0, NULL, &err), GX_EINVAL);
    gx_array *x = tu_rand1(GX_F32, 4, 0, 1);
    gx_named_input in = {.name = "x", .array = x};
    assert_int_equal(gx_kernel_run_direct(k, NULL, 0, &in, 1, NULL, &err), GX_EINVAL);
    assert_string_equal(err.field, "inputs.x");
    gx_array_unref(x);
    a = (gx_named_arg){.name = "us", .value = 10};
    TU_OK(gx_kernel_run_direct(k, &a, 1, NULL, 0, NULL, &err), err);
}

static void errors_have_names(void **st) {
    (void)st;
    assert_string_equal(gx_err_name(GX_EINVAL), "GX_EINVAL");
    assert_string_equal(gx_strerror(GX_ECYCLE), "dependency cycle");
    assert_string_equal(gx_err_name(-9999), "GX_EUNKNOWN");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(find_and_versions),
        cmocka_unit_test(bad_args_named),
        cmocka_unit_test(errors_have_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
