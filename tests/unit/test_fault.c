/*
 * test_fault.c - the fault injection points: arming, counting down, device
 * matching, clearing, listing and refusing bad specs.
 */
#include <string.h>

#include "gexec/gexec_fault.h"
#include "testutil.h"

static void test_names_round_trip(void **state) {
    (void)state;
    for (int p = 0; p < GX_FAULT__COUNT; p++)
        assert_int_equal(gx_fault_point_parse(gx_fault_point_name((gx_fault_point)p)), p);
    assert_int_equal(gx_fault_point_parse("store.nope"), -1);
    assert_int_equal(gx_fault_point_parse(NULL), -1);
    assert_null(gx_fault_point_name(GX_FAULT__COUNT));
}

static void test_count_down_and_device(void **state) {
    (void)state;
    gx_fault_clear(GX_FAULT__COUNT);
    assert_int_equal(gx_fault_take(GX_FAULT_DEVICE_LAUNCH, 0, NULL), 0);
    gx_fault_spec s = {.point = GX_FAULT_DEVICE_LAUNCH, .device = 1, .count = 2, .code = 700};
    assert_int_equal(gx_fault_arm(&s, NULL), GX_OK);
    int64_t before = gx_fault_fired_total();
    assert_int_equal(gx_fault_take(GX_FAULT_DEVICE_LAUNCH, 0, NULL), 0); /* other device */
    gx_fault_spec got;
    assert_int_equal(gx_fault_take(GX_FAULT_DEVICE_LAUNCH, 1, &got), 1);
    assert_int_equal(got.code, 700);
    assert_int_equal(got.count, 1);
    assert_int_equal(gx_fault_list(NULL, 0), 1);
    assert_int_equal(gx_fault_take(GX_FAULT_DEVICE_LAUNCH, 1, NULL), 1);
    assert_int_equal(gx_fault_take(GX_FAULT_DEVICE_LAUNCH, 1, NULL), 0); /* used up */
    assert_int_equal(gx_fault_list(NULL, 0), 0);
    assert_int_equal(gx_fault_fired_total() - before, 2);
}

static void test_forever_and_clear(void **state) {
    (void)state;
    gx_fault_spec s = {.point = GX_FAULT_STORE_SLOW, .device = -1, .count = -1, .delay_us = 1000};
    assert_int_equal(gx_fault_arm(&s, NULL), GX_OK);
    for (int i = 0; i < 100; i++) assert_int_equal(gx_fault_take(GX_FAULT_STORE_SLOW, -1, NULL), 1);
    gx_fault_spec list[GX_FAULT__COUNT];
    assert_int_equal(gx_fault_list(list, GX_FAULT__COUNT), 1);
    assert_int_equal(list[0].fired, 100);
    assert_int_equal(list[0].delay_us, 1000);
    gx_fault_clear(GX_FAULT_STORE_SLOW);
    assert_int_equal(gx_fault_take(GX_FAULT_STORE_SLOW, -1, NULL), 0);
}

static void test_bad_specs(void **state) {
    (void)state;
    gx_error e;
    gx_fault_spec s = {.point = GX_FAULT__COUNT, .count = 1};
    assert_int_equal(gx_fault_arm(&s, &e), GX_EINVAL);
    assert_string_equal(e.field, "point");
    s = (gx_fault_spec){.point = GX_FAULT_DEVICE_HANG, .device = -2, .count = 1};
    assert_int_equal(gx_fault_arm(&s, &e), GX_EINVAL);
    assert_string_equal(e.field, "device");
    s = (gx_fault_spec){.point = GX_FAULT_STORE_SLOW, .device = -1, .count = 1, .delay_us = -5};
    assert_int_equal(gx_fault_arm(&s, &e), GX_EINVAL);
    assert_string_equal(e.field, "delay_us");
    assert_int_equal(gx_fault_list(NULL, 0), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names_round_trip),
        cmocka_unit_test(test_count_down_and_device),
        cmocka_unit_test(test_forever_and_clear),
        cmocka_unit_test(test_bad_specs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
