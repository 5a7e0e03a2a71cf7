/* cluster_test.c - three real proglog processes with node certificates: exactly-once
 * replication in any join order, kill -9 detected as failed, a restarted node
 * rejoins and catches up, nothing lost or duplicated; a client certificate cannot
 * join. Every check compares each node's multiset of (origin, origin offset,
 * value), read over RPC. Membership runs the fast profile. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal/agent/testcluster.h"
#include "internal/client/client.h"
#include "internal/discovery/membership.h"
#include "internal/err/err.h"

static int setup(void **state)
{
    struct tc *c = calloc(1, sizeof *c);
    *state = c;
    return 0;
}

static int teardown(void **state)
{
    struct tc *c = *state;
    tc_fini(c);
    free(c);
    return 0;
}

struct status_arg {
    struct tc *c;
    int observer;
    const char *name, *want;
};

static bool sees(void *arg)
{
    struct status_arg *a = arg;
    char st[16];
    tc_status_of(a->c, a->observer, a->name, st, sizeof st);
    return strcmp(st, a->want) == 0;
}

/* wait_status waits until observer sees name with status want. */
static bool wait_status(struct tc *c, int observer, const char *name, const char *want, int timeout_ms)
{
    struct status_arg a = {c, observer, name, want};
    return plog_test_wait_until(sees, &a, timeout_ms);
}

/* wait_all waits until every running node holds want records; on timeout it
 * prints what each holds and its log, and fails. */
static void wait_all(struct tc *c, long want, int timeout_ms)
{
    for (int i = 0; i < c->n; i++) {
        if (!c->node[i].running || tc_wait_count(c, i, want, timeout_ms))
            continue;
        for (int j = 0; j < c->n; j++) {
            struct tc_rec *v;
            long n = c->node[j].running ? tc_records(c, j, &v) : -1;
            if (n >= 0)
                tc_records_free(v, n);
            char *out = plog_test_output(&c->node[j].proc);
            print_message("%s holds %ld records; its log:\n%s\n", c->node[j].name, n, out);
            free(out);
        }
        fail_msg("%s does not reach %ld records", c->node[i].name, want);
    }
}

/* The failure-detection bound of the fast profile for n members, plus slack for a
 * loaded 2-core machine running several tests at once. */
static int detect_timeout_ms(int n)
{
    plog_membership_config mc;
    plog_membership_config_fast(&mc);
    return (int)plog_membership_detect_bound_ms(&mc, (size_t)n) + 5000;
}

/* Records produced on every node, in a chain of joins (node3 joins through node2),
 * reach every node exactly once and stay that way: nothing loops. */
static void test_cluster_replicates_every_record_exactly_once(void **state)
{
    struct tc *c = *state;
    tc_init(c, 3);
    tc_start(c, 0, -1);
    tc_start(c, 1, 0);
    tc_start(c, 2, 1);
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++)
            assert_true(wait_status(c, i, c->node[j].name, "alive", 10000));
    /* proglogctl members, as an operator sees it from node3. */
    char cmd[2048], *out = NULL;
    const char *certs = tc_certs();
    snprintf(cmd, sizeof cmd,
             "%s --addr tls+tcp://127.0.0.1:%d --tls-cert-file %s/root-client.pem --tls-key-file "
             "%s/root-client-key.pem --tls-ca-file %s/ca.pem members",
             plog_test_bin("proglogctl"), c->node[2].rport, certs, certs, certs);
    assert_int_equal(plog_test_sh(cmd, 10000, &out), 0);
    assert_non_null(strstr(out, "NAME"));
    assert_non_null(strstr(out, "node3*"));
    for (int j = 0; j < 3; j++) {
        char want[64];
        snprintf(want, sizeof want, "rpc_addr=127.0.0.1:%d", c->node[j].rport);
        const char *line = strstr(out, want);
        if (line == NULL)
            fail_msg("no %s in:\n%s", want, out);
    }
    int alive = 0;
    for (const char *p = out; (p = strstr(p, " alive ")) != NULL; p++)
        alive++;
    assert_int_equal(alive, 3);
    free(out);
    tc_produce(c, 0, "a", 0, 50);
    tc_produce(c, 1, "b", 0, 30);
    tc_produce(c, 2, "c", 0, 20);
    tc_produce(c, 0, "a", 50, 50);
    wait_all(c, 150, 10000);
    tc_check_same(c, 150);
    /* Quiescence: a looping replicator would keep appending. */
    plog_test_sleep_ms(1500);
    tc_check_same(c, 150);
}

/* kill -9 of a node that is being replicated from and to; the others declare it
 * failed within the bound; restarted on its directory it rejoins, catches up
 * with what it missed, and its own records written before the crash are copied
 * exactly once. */
static void test_cluster_kill9_is_failed_then_rejoins_and_catches_up(void **state)
{
    struct tc *c = *state;
    tc_init(c, 3);
    tc_start(c, 0, -1);
    tc_start(c, 1, 0);
    tc_start(c, 2, 0);
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++)
            assert_true(wait_status(c, i, c->node[j].name, "alive", 10000));
    tc_produce(c, 2, "c", 0, 200);
    tc_produce(c, 0, "a", 0, 200);
    /* Kill node3 while node1's records are on their way to it. */
    tc_produce(c, 0, "a", 200, 500);
    tc_stop(c, 2, SIGKILL);
    int64_t t0 = plog_test_now_ms();
    int bound = detect_timeout_ms(3);
    assert_true(wait_status(c, 0, "node3", "dead", bound));
    assert_true(wait_status(c, 1, "node3", "dead", bound));
    print_message("node3 declared dead by both after %lld ms (bound with slack %d ms)\n",
                  (long long)(plog_test_now_ms() - t0), bound);
    /* Writes while it is down. */
    tc_produce(c, 0, "a", 700, 100);
    tc_produce(c, 1, "b", 0, 100);
    tc_start(c, 2, 0);
    assert_true(wait_status(c, 0, "node3", "alive", 10000));
    assert_true(wait_status(c, 1, "node3", "alive", 10000));
    tc_produce(c, 2, "c", 200, 50);
    long want = 250 + 800 + 100; /* c, a, b */
    wait_all(c, want, 15000);
    tc_check_same(c, want);
    plog_test_sleep_ms(1000);
    tc_check_same(c, want);
}

/* A node killed again and again in the middle of replicating ends up with every
 * record exactly once: its position comes from its log. */
static void test_cluster_repeated_kill9_during_replication_never_duplicates(void **state)
{
    struct tc *c = *state;
    tc_init(c, 2);
    tc_start(c, 0, -1);
    tc_produce(c, 0, "a", 0, 3000);
    long want = 3000;
    for (int round = 0; round < 4; round++) {
        tc_start(c, 1, 0);
        tc_produce(c, 0, "a", (int)want, 2000);
        want += 2000;
        plog_test_sleep_ms(150 + 100 * round);
        tc_stop(c, 1, SIGKILL);
    }
    tc_start(c, 1, 0);
    wait_all(c, want, 20000);
    tc_check_same(c, want);
}

/* A client certificate (root) is not in the policy's gossip lines: a process
 * using it as its peer identity is never admitted, and its messages are dropped
 * and counted. */
static void test_cluster_client_certificate_cannot_join(void **state)
{
    struct tc *c = *state;
    tc_init(c, 2);
    c->node[1].peer = "root-client";
    c->node[1].name_override = "root";
    tc_start(c, 0, -1);
    tc_start(c, 1, 0);
    plog_test_sleep_ms(2000);
    char st[16];
    tc_status_of(c, 0, "root", st, sizeof st);
    assert_string_equal(st, "");
    tc_status_of(c, 1, "node1", st, sizeof st);
    assert_string_equal(st, "");
    char cmd[128], *out = NULL;
    snprintf(cmd, sizeof cmd, "curl -s http://127.0.0.1:%d/metrics", c->node[0].mport);
    assert_int_equal(plog_test_sh(cmd, 10000, &out), 0);
    const char *g = strstr(out, "\nproglog_gossip_messages_dropped_total ");
    assert_non_null(g);
    long dropped = strtol(g + strlen("\nproglog_gossip_messages_dropped_total "), NULL, 10);
    print_message("node1 dropped %ld messages from root\n", dropped);
    assert_true(dropped > 0);
    free(out);
    /* node1 still works: a real node joins it. */
    tc_stop(c, 1, SIGTERM);
    c->node[1].peer = NULL;
    c->node[1].name_override = NULL;
    plog_test_rmrf(c->node[1].dir);
    tc_start(c, 1, 0);
    assert_true(wait_status(c, 0, "node2", "alive", 10000));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_cluster_replicates_every_record_exactly_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cluster_kill9_is_failed_then_rejoins_and_catches_up, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_cluster_repeated_kill9_during_replication_never_duplicates,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_cluster_client_certificate_cannot_join, setup, teardown),
    };
    if (getenv("PLOG_TEST_FILTER") != NULL) /* e.g. "*kill9*": run only those */
        cmocka_set_test_filter(getenv("PLOG_TEST_FILTER"));
    return cmocka_run_group_tests_name("cluster", tests, NULL, NULL);
}
