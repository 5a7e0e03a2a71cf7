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

#define N 3

struct fixture {
    char dir[64], policy[128];
    char data[N][128], name[N][16], bind[N][32];
    uint16_t rpc[N], raft[N];
    plog_agent *a[N];
};

static const char *cert(const char *name)
{
    static char bufs[16][600];
    static int next;
    char *b = bufs[next++ % 16];
    snprintf(b, sizeof bufs[0], "%s/%s", tc_certs(), name);
    return b;
}

static void start(struct fixture *f, int i, int join)
{
    char c[64], k[64];
    snprintf(c, sizeof c, "%s.pem", f->name[i]);
    snprintf(k, sizeof k, "%s-key.pem", f->name[i]);
    const char *seeds[1] = {join >= 0 ? f->bind[join] : NULL};
    plog_agent_config ac = {
        .data_dir = f->data[i],
        .node_name = f->name[i],
        .bind_addr = f->bind[i],
        .rpc_port = f->rpc[i],
        .start_join_addrs = seeds,
        .njoin = join >= 0 ? 1 : 0,
        .server_tls_cert_file = cert(c),
        .server_tls_key_file = cert(k),
        .server_tls_ca_file = cert("ca.pem"),
        .peer_tls_cert_file = cert(c),
        .peer_tls_key_file = cert(k),
        .peer_tls_ca_file = cert("ca.pem"),
        .acl_policy_file = f->policy,
        .fast = true,
        .log = {.sync = PLOG_SYNC_INTERVAL},
        .bootstrap = join < 0,
        .raft_port = f->raft[i],
    };
    char err[512];
    if (plog_agent_open(&ac, &f->a[i], err, sizeof err) != PLOG_OK)
        fail_msg("agent %s: %s", f->name[i], err);
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    plog_test_tmpdir("router", f->dir, sizeof f->dir);
    snprintf(f->policy, sizeof f->policy, "%s/policy.csv", f->dir);
    FILE *p = fopen(f->policy, "w");
    assert_non_null(p);
    fprintf(p, "p, root, *, produce\np, root, *, consume\n");
    for (int i = 0; i < N; i++) {
        snprintf(f->name[i], sizeof f->name[i], "node%d", i + 1);
        snprintf(f->data[i], sizeof f->data[i], "%s/%s", f->dir, f->name[i]);
        snprintf(f->bind[i], sizeof f->bind[i], "127.0.0.1:%d", plog_test_free_port());
        f->rpc[i] = (uint16_t)plog_test_free_port();
        f->raft[i] = (uint16_t)plog_test_free_port();
        fprintf(p, "p, %s, *, gossip\np, %s, *, consume\n", f->name[i], f->name[i]);
    }
    fclose(p);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    for (int i = N - 1; i >= 0; i--)
        plog_agent_shutdown(f->a[i]);
    plog_test_rmrf(f->dir);
    free(f);
    return 0;
}

static plog_loadbalance_router *router(struct fixture *f, int i)
{
    char addr[64];
    snprintf(addr, sizeof addr, "tls+tcp://127.0.0.1:%u", (unsigned)f->rpc[i]);
    plog_client_config cfg = {.timeout_ms = 8000};
    plog_loadbalance_router *r;
    plog_rpc_status st;
    if (plog_loadbalance_router_open(addr, &cfg, cert("root-client.pem"), cert("root-client-key.pem"),
                                     cert("ca.pem"), &r, &st) != PLOG_STATUS_OK)
        fail_msg("router: %s", st.msg);
    return r;
}

struct count_arg {
    plog_loadbalance_router *r;
    size_t want;
};

static bool knows_all(void *arg)
{
    struct count_arg *a = arg;
    plog_loadbalance_router_close(a->r);
    return false;
}

static bool cluster_formed(void *arg)
{
    struct fixture *f = arg;
    bool ok = true;
    for (int i = 0; i < N && ok; i++) {
        plog_loadbalance_router *r = router(f, i);
        const plog_loadbalance_picker *p = plog_loadbalance_router_servers(r);
        ok = p->n == N && plog_loadbalance_pick((plog_loadbalance_picker *)p, true) == 0;
        plog_loadbalance_router_close(r);
    }
    return ok;
}

static void start_three(struct fixture *f)
{
    start(f, 0, -1);
    start(f, 1, 0);
    start(f, 2, 0);
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
    struct fixture *f = *state;
    start_three(f);
    (void)knows_all;
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
    struct fixture *f = *state;
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
        cmocka_unit_test_setup_teardown(test_router_produces_to_the_leader_and_consumes_from_followers, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_router_follows_a_leader_change_without_duplicates, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
