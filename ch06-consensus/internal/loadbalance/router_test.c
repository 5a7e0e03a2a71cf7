/* router_test.c - client-side routing against three agents (Go: the resolver test
 * of chapter 9, and more): given any one server's address the router finds the
 * leader for produces and the followers for consumes; when the leader goes away
 * it refreshes and retries, and a produce retried across the leader change is
 * not appended twice. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal/agent/agent.h"
#include "internal/agent/testcluster.h"
#include "internal/err/err.h"
#include "internal/loadbalance/router.h"
#include "testing/testing.h"

#define N TC_AGENTS

static plog_loadbalance_router *router(struct tc_agents *f, int i)
{
    char addr[64];
    snprintf(addr, sizeof addr, "tls+tcp://127.0.0.1:%u", (unsigned)f->rpc[i]);
    plog_client_config cfg = {.timeout_ms = 8000};
    plog_loadbalance_router *r;
    plog_rpc_status st;
    if (plog_loadbalance_router_open(addr, &cfg, tc_cert("root-client.pem"), tc_cert("root-client-key.pem"),
                                     tc_cert("ca.pem"), &r, &st) != PLOG_STATUS_OK)
        fail_msg("router: %s", st.msg);
    return r;
}

static bool cluster_formed(void *arg)
{
    struct tc_agents *f = arg;
    bool ok = true;
    for (int i = 0; i < N && ok; i++) {
        plog_loadbalance_router *r = router(f, i);
        const plog_loadbalance_picker *p = plog_loadbalance_router_servers(r);
        ok = p->n == N && plog_loadbalance_pick((plog_loadbalance_picker *)p, true) == 0;
        plog_loadbalance_router_close(r);
    }
    return ok;
}

static void start_three(struct tc_agents *f)
{
    tc_agents_start(f, 0, -1);
    tc_agents_start(f, 1, 0);
    tc_agents_start(f, 2, 0);
    assert_true(plog_test_wait_until(cluster_formed, f, 10000));
}

static void produce(plog_loadbalance_router *r, const char *v, uint64_t want)
{
    const void *vals[1] = {v};
    size_t lens[1] = {strlen(v)};
    uint64_t off;
    plog_rpc_status st;
    int code = plog_loadbalance_router_produce(r, vals, lens, 1, &off, &st);
    if (code != PLOG_STATUS_OK)
        fail_msg("produce %s: %s", v, st.msg);
    assert_int_equal(off, want);
}

/* Given a follower's address, produces reach the leader and consumes are served
 * by the followers, round-robin. */
static void test_router_produces_to_the_leader_and_consumes_from_followers(void **state)
{
    struct tc_agents *f = *state;
    start_three(f);
    plog_loadbalance_router *r = router(f, 2);
    const plog_loadbalance_picker *p = plog_loadbalance_router_servers(r);
    assert_int_equal(p->n, 3);
    for (int i = 0; i < 6; i++) {
        char v[16];
        snprintf(v, sizeof v, "v%d", i);
        produce(r, v, (uint64_t)i);
    }
    assert_int_equal(plog_loadbalance_router_retries(r), 0);
    /* Followers apply a moment after the leader answers. */
    for (int i = 0; i < 6; i++) {
        Log__V1__Record *rec = NULL;
        plog_rpc_status st;
        int code = PLOG_STATUS_OUT_OF_RANGE;
        for (int t = 0; t < 300 && code == PLOG_STATUS_OUT_OF_RANGE; t++) {
            code = plog_loadbalance_router_consume(r, (uint64_t)i, &rec, &st);
            if (code == PLOG_STATUS_OUT_OF_RANGE)
                plog_test_sleep_ms(10);
        }
        assert_int_equal(code, PLOG_STATUS_OK);
        char v[16];
        snprintf(v, sizeof v, "v%d", i);
        assert_int_equal(rec->value.len, strlen(v));
        assert_memory_equal(rec->value.data, v, strlen(v));
        log__v1__record__free_unpacked(rec, NULL);
    }
    plog_loadbalance_router_close(r);
}

/* The leader goes away: the router refreshes, finds the new leader and carries on;
 * every record is there once, at the offset it was acknowledged with. */
static void test_router_follows_a_leader_change_without_duplicates(void **state)
{
    struct tc_agents *f = *state;
    start_three(f);
    plog_loadbalance_router *r = router(f, 1);
    produce(r, "a", 0);
    produce(r, "b", 1);
    assert_plog_ok(plog_agent_shutdown(f->a[0]));
    f->a[0] = NULL;
    produce(r, "c", 2);
    produce(r, "d", 3);
    int leader = plog_loadbalance_pick((plog_loadbalance_picker *)plog_loadbalance_router_servers(r), true);
    assert_true(leader >= 0);
    assert_string_not_equal(plog_loadbalance_router_servers(r)->servers[leader].id, "node1");
    for (int i = 1; i < N; i++) {
        plog_log *l = plog_agent_log(f->a[i]);
        for (int t = 0; t < 300 && plog_log_next_offset(l) < 4; t++)
            plog_test_sleep_ms(10);
        assert_int_equal(plog_log_next_offset(l), 4);
        const char *want[] = {"a", "b", "c", "d"};
        for (uint64_t o = 0; o < 4; o++) {
            Log__V1__Record *rec;
            assert_plog_ok(plog_log_read(l, o, &rec));
            assert_int_equal(rec->value.len, 1);
            assert_memory_equal(rec->value.data, want[o], 1);
            log__v1__record__free_unpacked(rec, NULL);
        }
    }
    plog_loadbalance_router_close(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_router_produces_to_the_leader_and_consumes_from_followers,
                                        tc_agents_setup, tc_agents_teardown),
        cmocka_unit_test_setup_teardown(test_router_follows_a_leader_change_without_duplicates,
                                        tc_agents_setup, tc_agents_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
