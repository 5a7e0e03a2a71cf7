/* picker_test.c - the picker (Go: internal/loadbalance/picker_test.go). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "internal/loadbalance/picker.h"

static void set(plog_loadbalance_picker *p, int n, int leader)
{
    plog_loadbalance_server v[PLOG_LOADBALANCE_MAX_SERVERS];
    memset(v, 0, sizeof v);
    for (int i = 0; i < n; i++) {
        snprintf(v[i].id, sizeof v[i].id, "node%d", i + 1);
        snprintf(v[i].rpc_addr, sizeof v[i].rpc_addr, "127.0.0.1:%d", 8400 + 10 * i);
        v[i].is_leader = i == leader;
    }
    plog_loadbalance_picker_update(p, v, (size_t)n);
}

/* Go: TestPickerNoSubConnAvailable. */
static void test_nothing_to_pick_without_servers(void **state)
{
    (void)state;
    plog_loadbalance_picker p = {0};
    assert_int_equal(plog_loadbalance_pick(&p, true), -1);
    assert_int_equal(plog_loadbalance_pick(&p, false), -1);
}

/* Go: TestPickerProducesToLeader. */
static void test_produces_go_to_the_leader(void **state)
{
    (void)state;
    plog_loadbalance_picker p = {0};
    set(&p, 3, 1);
    for (int i = 0; i < 5; i++)
        assert_int_equal(plog_loadbalance_pick(&p, true), 1);
}

/* Go: TestPickerConsumesFromFollowers: round-robin, never the leader. */
static void test_consumes_go_round_robin_to_the_followers(void **state)
{
    (void)state;
    plog_loadbalance_picker p = {0};
    set(&p, 3, 1);
    int seen[3] = {0};
    for (int i = 0; i < 6; i++)
        seen[plog_loadbalance_pick(&p, false)]++;
    assert_int_equal(seen[0], 3);
    assert_int_equal(seen[1], 0);
    assert_int_equal(seen[2], 3);
}

static void test_without_a_leader_produces_wait_and_consumes_go_anywhere(void **state)
{
    (void)state;
    plog_loadbalance_picker p = {0};
    set(&p, 2, -1);
    assert_int_equal(plog_loadbalance_pick(&p, true), -1);
    int a = plog_loadbalance_pick(&p, false), b = plog_loadbalance_pick(&p, false);
    assert_true(a != b && a >= 0 && b >= 0);
    set(&p, 1, 0); /* a cluster of one: its leader serves consumes too */
    assert_int_equal(plog_loadbalance_pick(&p, false), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nothing_to_pick_without_servers),
        cmocka_unit_test(test_produces_go_to_the_leader),
        cmocka_unit_test(test_consumes_go_round_robin_to_the_followers),
        cmocka_unit_test(test_without_a_leader_produces_wait_and_consumes_go_anywhere),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
