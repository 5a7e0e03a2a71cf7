/* swim_test.c - the membership protocol in a simulated cluster (swim_cluster.h):
 * virtual time, lossy network, partitions, crashes, restarts, leaves. Every
 * test takes its seed from $SEED when set and names it when it fails, so
 * `SEED=n build/test/internal/discovery/swim_test` replays the failing run.
 * $PLOG_SWEEP=n adds a randomized scenario over n seeds (make check-long);
 * PLOG_TRACE=1 prints the sweep's trace (SEED=n PLOG_SWEEP=1 PLOG_TRACE=1).
 * The failure trace is checked against testdata/failure.trace;
 * PLOG_UPDATE_GOLDEN=1 rewrites it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "internal/discovery/swim_cluster.h"
#include "testing/testing.h"
#include "internal/err/err.h"

static uint64_t seed;

#define check(cond, ...)                                                                          \
    do {                                                                                          \
        if (!(cond)) {                                                                            \
            print_message("%s:%d: %s failed; replay with SEED=%llu\n", __FILE__, __LINE__, #cond, \
                          (unsigned long long)seed);                                              \
            fail_msg(__VA_ARGS__);                                                                \
        }                                                                                         \
    } while (0)

static plog_swim_cluster *new_cluster(size_t n, uint64_t dflt_seed, double loss)
{
    seed = plog_swim_cluster_seed(dflt_seed);
    plog_swim_cluster_opts o = {.n = n, .seed = seed, .min_latency_ms = 1, .max_latency_ms = 5, .loss = loss};
    plog_membership_config_fast(&o.cfg);
    return plog_swim_cluster_new(&o);
}

/* start_all starts every node, all joining through node 0, and waits for
 * convergence; returns the virtual ms it took from the last start. */
static uint64_t start_all(plog_swim_cluster *c, size_t n)
{
    for (size_t i = 0; i < n; i++)
        plog_swim_cluster_start(c, i, 1, 0);
    uint64_t t0 = plog_swim_cluster_now(c);
    bool ok = plog_swim_cluster_run_until_true(c, plog_swim_cluster_converged, NULL, t0 + 10000);
    check(ok, "%zu nodes did not converge within 10 s", n);
    return plog_swim_cluster_now(c) - t0;
}

static size_t count_events(plog_swim_cluster *c, int type, const char *subject, uint64_t since)
{
    size_t n, k = 0;
    const plog_swim_cluster_event *ev = plog_swim_cluster_events(c, &n);
    for (size_t i = 0; i < n; i++)
        if (ev[i].type == type && ev[i].at_ms >= since &&
            (subject == NULL || strcmp(ev[i].subject, subject) == 0))
            k++;
    return k;
}

/* all_see: every running node other than subject holds subject at status. */
struct all_see {
    size_t subject;
    int status;
};

static bool all_see(plog_swim_cluster *c, void *arg)
{
    const struct all_see *a = arg;
    for (size_t v = 0; v < PLOG_SWIM_CLUSTER_MAX; v++)
        if (v != a->subject && plog_swim_cluster_node(c, v) != NULL &&
            plog_swim_cluster_status(c, v, a->subject) != a->status)
            return false;
    return true;
}

static void test_swim_three_nodes_join_through_one_seed_and_converge(void **state)
{
    (void)state;
    plog_swim_cluster *c = new_cluster(3, 1, 0);
    uint64_t took = start_all(c, 3);
    check(took <= 500, "join took %llu ms", (unsigned long long)took);
    /* Every node got a JOIN for each other node, and nothing else. */
    for (size_t i = 0; i < 3; i++) {
        char name[8];
        snprintf(name, sizeof name, "n%zu", i + 1);
        check(count_events(c, PLOG_MEMBERSHIP_JOIN, name, 0) == 2, "JOIN events about %s", name);
    }
    check(count_events(c, PLOG_MEMBERSHIP_FAILED, NULL, 0) == 0, "a FAILED event");
    plog_membership_member mb;
    assert_true(plog_membership_find(plog_swim_cluster_node(c, 2), "n1", &mb));
    assert_string_equal(plog_membership_tag(&mb, "rpc_addr"), "sim-rpc://n1");
    plog_swim_cluster_free(c);
}

static void test_swim_ten_nodes_join_through_one_seed_and_converge(void **state)
{
    (void)state;
    plog_swim_cluster *c = new_cluster(10, 2, 0);
    uint64_t took = start_all(c, 10);
    check(took <= 1000, "join took %llu ms", (unsigned long long)took);
    for (size_t v = 0; v < 10; v++)
        check(plog_membership_count(plog_swim_cluster_node(c, v)) == 10, "node %zu knows %zu", v,
              plog_membership_count(plog_swim_cluster_node(c, v)));
    /* Quiet afterwards: stays converged with nobody suspected. */
    plog_swim_cluster_run_until(c, plog_swim_cluster_now(c) + 30000);
    check(plog_swim_cluster_converged(c, NULL), "diverged while idle");
    check(count_events(c, PLOG_MEMBERSHIP_FAILED, NULL, 0) == 0, "a FAILED event");
    plog_swim_cluster_free(c);
}

static void kill_and_detect(size_t n, uint64_t dflt_seed)
{
    plog_swim_cluster *c = new_cluster(n, dflt_seed, 0);
    start_all(c, n);
    plog_swim_cluster_run_until(c, plog_swim_cluster_now(c) + 1000);
    size_t victim = n - 1;
    uint64_t t0 = plog_swim_cluster_now(c);
    plog_swim_cluster_kill(c, victim);
    plog_membership_config cfg;
    plog_membership_config_fast(&cfg);
    uint64_t bound = plog_membership_detect_bound_ms(&cfg, n);
    struct all_see dead = {victim, PLOG_GOSSIP_DEAD};
    bool ok = plog_swim_cluster_run_until_true(c, all_see, &dead, t0 + bound);
    check(ok, "not every node declared n%zu dead within %llu ms", victim + 1, (unsigned long long)bound);
    char name[8];
    snprintf(name, sizeof name, "n%zu", victim + 1);
    check(count_events(c, PLOG_MEMBERSHIP_FAILED, name, t0) == n - 1, "FAILED events about the victim");
    check(count_events(c, PLOG_MEMBERSHIP_LEAVE, name, t0) == 0, "a failure reported as a leave");
    check(plog_swim_cluster_false_failures(c) == 0, "an alive node declared dead");
    plog_swim_cluster_free(c);
}

static void test_swim_killed_node_is_declared_dead_by_all_within_bound_3(void **state)
{
    (void)state;
    kill_and_detect(3, 3);
}

static void test_swim_killed_node_is_declared_dead_by_all_within_bound_10(void **state)
{
    (void)state;
    kill_and_detect(10, 4);
}

static void test_swim_suspected_but_alive_node_refutes(void **state)
{
    (void)state;
    plog_swim_cluster *c = new_cluster(3, 5, 0);
    start_all(c, 3);
    plog_swim_cluster_run_until(c, plog_swim_cluster_now(c) + 1000);
    uint64_t inc0 = plog_membership_self_incarnation(plog_swim_cluster_node(c, 2));
    /* n3 hears nothing for 250 ms: its probers' pings and ping-reqs go
     * unanswered, so they suspect it; the suspicion (400 ms here) outlasts the
     * cut, and n3 refutes once it hears of it. */
    plog_swim_cluster_cut(c, 0, 2, true);
    plog_swim_cluster_cut(c, 1, 2, true);
    struct all_see suspect = {2, PLOG_GOSSIP_SUSPECT};
    uint64_t t0 = plog_swim_cluster_now(c);
    bool seen = plog_swim_cluster_run_until_true(c, all_see, &suspect, t0 + 1000);
    uint64_t t1 = plog_swim_cluster_now(c);
    check(seen, "n3 never suspected by everyone");
    plog_swim_cluster_heal(c);
    plog_swim_cluster_run_until(c, t1 + 5000);
    check(plog_swim_cluster_converged(c, NULL), "not converged after the refutation");
    check(count_events(c, PLOG_MEMBERSHIP_FAILED, NULL, 0) == 0, "a FAILED event");
    plog_membership_stats st;
    plog_membership_get_stats(plog_swim_cluster_node(c, 2), &st);
    check(st.refutations >= 1, "n3 never refuted");
    uint64_t inc1 = plog_membership_self_incarnation(plog_swim_cluster_node(c, 2));
    check(inc1 > inc0, "incarnation did not grow");
    plog_membership_member mb;
    assert_true(plog_membership_find(plog_swim_cluster_node(c, 0), "n3", &mb));
    check(mb.incarnation == inc1 && mb.status == PLOG_GOSSIP_ALIVE, "n1 holds n3 at %llu",
          (unsigned long long)mb.incarnation);
    plog_swim_cluster_free(c);
}

static void leave_propagates(size_t n, uint64_t dflt_seed)
{
    plog_swim_cluster *c = new_cluster(n, dflt_seed, 0);
    start_all(c, n);
    plog_swim_cluster_run_until(c, plog_swim_cluster_now(c) + 1000);
    uint64_t t0 = plog_swim_cluster_now(c);
    plog_swim_cluster_leave(c, 1, 200);
    struct all_see left = {1, PLOG_GOSSIP_LEFT};
    bool ok = plog_swim_cluster_run_until_true(c, all_see, &left, t0 + 300);
    check(ok, "the leave did not reach everyone within 300 ms");
    plog_swim_cluster_run_until(c, t0 + 30000);
    check(count_events(c, PLOG_MEMBERSHIP_LEAVE, "n2", t0) == n - 1, "LEAVE events");
    check(count_events(c, PLOG_MEMBERSHIP_FAILED, "n2", t0) == 0, "the leave was reported as a failure");
    check(plog_swim_cluster_converged(c, NULL), "not converged after the leave");
    plog_swim_cluster_free(c);
}

static void test_swim_leave_propagates_as_left_not_failed(void **state)
{
    (void)state;
    leave_propagates(3, 6);
    leave_propagates(10, 7);
}

static void test_swim_asymmetric_partition_routes_around_and_heals(void **state)
{
    (void)state;
    plog_swim_cluster *c = new_cluster(5, 8, 0);
    start_all(c, 5);
    uint64_t t0 = plog_swim_cluster_now(c);
    /* One direction of one link: indirect probes go around it. */
    plog_swim_cluster_cut(c, 0, 1, true);
    plog_swim_cluster_run_until(c, t0 + 20000);
    check(count_events(c, PLOG_MEMBERSHIP_FAILED, NULL, 0) == 0, "a one-way cut of one link failed a node");
    /* Now n1 hears nobody but everyone hears n1: the others cannot probe it
     * and declare it failed; n1 keeps shouting. */
    for (size_t i = 1; i < 5; i++)
        plog_swim_cluster_cut(c, i, 0, true);
    struct all_see dead = {0, PLOG_GOSSIP_DEAD};
    bool ok = plog_swim_cluster_run_until_true(c, all_see, &dead, t0 + 40000);
    check(ok, "n1, deaf, was not declared dead");
    plog_swim_cluster_heal(c);
    uint64_t t1 = plog_swim_cluster_now(c);
    ok = plog_swim_cluster_run_until_true(c, plog_swim_cluster_converged, NULL, t1 + 10000);
    check(ok, "no convergence 10 s after healing");
    plog_swim_cluster_free(c);
}

static void test_swim_full_partition_heals_and_converges(void **state)
{
    (void)state;
    plog_swim_cluster *c = new_cluster(6, 9, 0);
    start_all(c, 6);
    uint64_t t0 = plog_swim_cluster_now(c);
    for (size_t i = 0; i < 3; i++)
        for (size_t j = 3; j < 6; j++) {
            plog_swim_cluster_cut(c, i, j, true);
            plog_swim_cluster_cut(c, j, i, true);
        }
    plog_swim_cluster_run_until(c, t0 + 15000);
    for (size_t i = 0; i < 3; i++)
        for (size_t j = 3; j < 6; j++)
            check(plog_swim_cluster_status(c, i, j) == PLOG_GOSSIP_DEAD &&
                      plog_swim_cluster_status(c, j, i) == PLOG_GOSSIP_DEAD,
                  "n%zu and n%zu still see each other", i + 1, j + 1);
    plog_swim_cluster_heal(c);
    uint64_t t1 = plog_swim_cluster_now(c);
    bool ok = plog_swim_cluster_run_until_true(c, plog_swim_cluster_converged, NULL, t1 + 10000);
    check(ok, "no convergence 10 s after healing");
    /* Each side saw the other come back: a JOIN per node per peer across. */
    check(count_events(c, PLOG_MEMBERSHIP_JOIN, NULL, t1) == 18, "%zu JOIN events after healing",
          count_events(c, PLOG_MEMBERSHIP_JOIN, NULL, t1));
    plog_swim_cluster_free(c);
}

static void lossy_ten_minutes(size_t n, uint64_t dflt_seed)
{
    plog_swim_cluster *c = new_cluster(n, dflt_seed, 0);
    start_all(c, n);
    plog_swim_cluster_set_loss(c, 0.05);
    plog_swim_cluster_run_until(c, plog_swim_cluster_now(c) + 600000);
    check(plog_swim_cluster_false_failures(c) == 0, "n=%zu: %llu alive nodes declared dead", n,
          (unsigned long long)plog_swim_cluster_false_failures(c));
    check(plog_swim_cluster_converged(c, NULL), "n=%zu: not converged at the end", n);
    /* Not because nothing happened: loss made members suspect each other,
     * and they refuted. */
    uint64_t refutations = 0;
    for (size_t i = 0; i < n; i++) {
        plog_membership_stats st;
        plog_membership_get_stats(plog_swim_cluster_node(c, i), &st);
        refutations += st.refutations;
    }
    check(refutations > 0, "n=%zu: no suspicion to refute in 10 minutes at 5 %% loss", n);
    /* ... and a real failure is still detected under that loss. */
    uint64_t t0 = plog_swim_cluster_now(c);
    plog_swim_cluster_kill(c, n - 1);
    struct all_see dead = {n - 1, PLOG_GOSSIP_DEAD};
    check(plog_swim_cluster_run_until_true(c, all_see, &dead, t0 + 10000),
          "n=%zu: the crash not detected under loss", n);
    plog_swim_cluster_free(c);
}

static void test_swim_five_percent_loss_declares_no_alive_node_dead_in_10_minutes(void **state)
{
    (void)state;
    lossy_ten_minutes(3, 10);
    lossy_ten_minutes(10, 10);
}

static void test_swim_restart_with_same_name_rejoins_and_replaces_its_entry(void **state)
{
    (void)state;
    plog_swim_cluster *c = new_cluster(3, 11, 0);
    start_all(c, 3);
    /* Make n3's incarnation grow, then crash it and let everyone see it. */
    plog_gossip_tag t = {"rpc_addr", "sim-rpc://n3-new"};
    assert_plog_ok(plog_membership_set_tags(plog_swim_cluster_node(c, 2), plog_swim_cluster_now(c), &t, 1));
    plog_swim_cluster_run_until(c, plog_swim_cluster_now(c) + 1000);
    uint64_t old_inc = plog_membership_self_incarnation(plog_swim_cluster_node(c, 2));
    check(count_events(c, PLOG_MEMBERSHIP_UPDATE, "n3", 0) == 2, "UPDATE events for the new tags");
    plog_swim_cluster_kill(c, 2);
    struct all_see dead = {2, PLOG_GOSSIP_DEAD};
    check(plog_swim_cluster_run_until_true(c, all_see, &dead, plog_swim_cluster_now(c) + 5000),
          "n3 not declared dead");
    /* It comes back knowing nothing, at incarnation 1, lower than before:
     * the cluster's answer to its join tells it, and it refutes. */
    uint64_t t0 = plog_swim_cluster_now(c);
    plog_swim_cluster_start(c, 2, 1, 0);
    check(plog_swim_cluster_run_until_true(c, plog_swim_cluster_converged, NULL, t0 + 2000),
          "no rejoin within 2 s");
    check(plog_membership_self_incarnation(plog_swim_cluster_node(c, 2)) > old_inc,
          "incarnation not above the old one");
    check(count_events(c, PLOG_MEMBERSHIP_JOIN, "n3", t0) == 2, "JOIN events for the rejoin");
    plog_membership_member mb;
    assert_true(plog_membership_find(plog_swim_cluster_node(c, 0), "n3", &mb));
    assert_string_equal(plog_membership_tag(&mb, "rpc_addr"), "sim-rpc://n3");
    check(plog_membership_count(plog_swim_cluster_node(c, 0)) == 3, "the old entry was not replaced");
    /* A restart faster than detection, with a start-time incarnation. */
    t0 = plog_swim_cluster_now(c);
    plog_swim_cluster_kill(c, 2);
    plog_swim_cluster_start(c, 2, 1000000, 1);
    check(plog_swim_cluster_run_until_true(c, plog_swim_cluster_converged, NULL, t0 + 2000),
          "no fast rejoin within 2 s");
    check(count_events(c, PLOG_MEMBERSHIP_FAILED, "n3", t0) == 0, "a fast restart was seen as a failure");
    plog_swim_cluster_free(c);
}

/* run_failure_scenario: 3 nodes converge, then n3 crashes; returns the trace
 * from the crash until everyone has declared it dead (malloc'd). */
static char *run_failure_scenario(uint64_t s)
{
    plog_swim_cluster_opts o = {.n = 3, .seed = s, .min_latency_ms = 1, .max_latency_ms = 5};
    plog_membership_config_fast(&o.cfg);
    plog_swim_cluster *c = plog_swim_cluster_new(&o);
    for (size_t i = 0; i < 3; i++)
        plog_swim_cluster_start(c, i, 1, 0);
    plog_swim_cluster_run_until(c, 3000);
    plog_swim_cluster_trace(c, true);
    plog_swim_cluster_kill(c, 2);
    struct all_see dead = {2, PLOG_GOSSIP_DEAD};
    plog_swim_cluster_run_until_true(c, all_see, &dead, 6000);
    char *t = strdup(plog_swim_cluster_trace_text(c));
    plog_swim_cluster_free(c);
    return t;
}

static void test_swim_same_seed_replays_the_same_run(void **state)
{
    (void)state;
    seed = plog_swim_cluster_seed(12);
    char *a = run_failure_scenario(seed), *b = run_failure_scenario(seed),
         *d = run_failure_scenario(seed + 1);
    check(strcmp(a, b) == 0, "two runs of one seed differ");
    check(strcmp(a, d) != 0, "two seeds gave the same run");
    free(a);
    free(b);
    free(d);
}

static void test_swim_failure_trace_matches_golden_file(void **state)
{
    (void)state;
    char path[512];
    const char *dir = getenv("PLOG_CHAPTER");
    snprintf(path, sizeof path, "%s/internal/discovery/testdata/failure.trace", dir ? dir : ".");
    char *got = run_failure_scenario(42);
    if (getenv("PLOG_UPDATE_GOLDEN") != NULL) {
        FILE *f = fopen(path, "w");
        assert_non_null(f);
        fputs(got, f);
        fclose(f);
    }
    FILE *f = fopen(path, "r");
    if (f == NULL)
        fail_msg("cannot open %s", path);
    static char want[1 << 20];
    size_t n = fread(want, 1, sizeof want - 1, f);
    fclose(f);
    want[n] = '\0';
    if (strcmp(got, want) != 0) {
        print_message("--- got:\n%s", got);
        fail_msg("trace differs from %s (PLOG_UPDATE_GOLDEN=1 rewrites it after a deliberate change)", path);
    }
    free(got);
}

/* One randomized scenario per seed: a cluster of 3..12 under 0..5 % loss;
 * a crash, a leave and a restart; no false failure, everyone converges. */
static void sweep_one(uint64_t s)
{
    seed = s;
    uint64_t r = s * 0x9e3779b97f4a7c15ULL + 1;
    size_t n = 3 + (size_t)(r % 10);
    double loss = (double)((r >> 8) % 6) / 100.0;
    plog_swim_cluster_opts o = {.n = n,
                                .seed = s,
                                .min_latency_ms = 1,
                                .max_latency_ms = 1 + (uint32_t)((r >> 16) % 10),
                                .loss = loss};
    plog_membership_config_fast(&o.cfg);
    plog_swim_cluster *c = plog_swim_cluster_new(&o);
    bool tracing = getenv("PLOG_TRACE") != NULL; /* replaying: show what happened */
    plog_swim_cluster_trace(c, tracing);
    for (size_t i = 0; i < n; i++)
        plog_swim_cluster_start(
            c, i, 1, (size_t)((r >> 24) + i) % (i + 1) == i ? 0 : (size_t)((r >> 24) + i) % (i + 1));
    check(plog_swim_cluster_run_until_true(c, plog_swim_cluster_converged, NULL, 20000),
          "n=%zu loss=%.2f: no convergence", n, loss);
    uint64_t t0 = plog_swim_cluster_now(c);
    size_t victim = (size_t)(r >> 32) % n, leaver = (victim + 1) % n;
    plog_swim_cluster_kill(c, victim);
    plog_swim_cluster_leave(c, leaver, 300);
    struct all_see dead = {victim, PLOG_GOSSIP_DEAD};
    check(plog_swim_cluster_run_until_true(c, all_see, &dead, t0 + 20000),
          "n=%zu loss=%.2f: victim not detected", n, loss);
    plog_swim_cluster_run_until(c, plog_swim_cluster_now(c) + 2000);
    /* Restarts as a driver should do them: a start-time incarnation. (One at
     * the old incarnation can flap FAILED/JOIN at a node that hears its new
     * "alive" before the old "dead": see membership.h, "Restarts".) */
    plog_swim_cluster_start(c, victim, plog_swim_cluster_now(c),
                            (victim + 2) % n == leaver ? (victim + 3) % n : (victim + 2) % n);
    plog_swim_cluster_start(c, leaver, plog_swim_cluster_now(c), victim);
    check(plog_swim_cluster_run_until_true(c, plog_swim_cluster_converged, NULL,
                                           plog_swim_cluster_now(c) + 20000),
          "n=%zu loss=%.2f: no convergence after the restarts", n, loss);
    if (tracing)
        fputs(plog_swim_cluster_trace_text(c), stderr);
    check(plog_swim_cluster_false_failures(c) == 0, "n=%zu loss=%.2f: a false failure", n, loss);
    plog_swim_cluster_free(c);
}

static void test_swim_seed_sweep(void **state)
{
    (void)state;
    const char *s = getenv("PLOG_SWEEP");
    uint64_t n = s != NULL ? strtoull(s, NULL, 10) : 3;
    uint64_t base = plog_swim_cluster_seed(1000);
    for (uint64_t i = 0; i < n; i++)
        sweep_one(base + i);
    if (n > 3)
        print_message("swept %llu seeds from %llu\n", (unsigned long long)n, (unsigned long long)base);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_swim_three_nodes_join_through_one_seed_and_converge),
        cmocka_unit_test(test_swim_ten_nodes_join_through_one_seed_and_converge),
        cmocka_unit_test(test_swim_killed_node_is_declared_dead_by_all_within_bound_3),
        cmocka_unit_test(test_swim_killed_node_is_declared_dead_by_all_within_bound_10),
        cmocka_unit_test(test_swim_suspected_but_alive_node_refutes),
        cmocka_unit_test(test_swim_leave_propagates_as_left_not_failed),
        cmocka_unit_test(test_swim_asymmetric_partition_routes_around_and_heals),
        cmocka_unit_test(test_swim_full_partition_heals_and_converges),
        cmocka_unit_test(test_swim_five_percent_loss_declares_no_alive_node_dead_in_10_minutes),
        cmocka_unit_test(test_swim_restart_with_same_name_rejoins_and_replaces_its_entry),
        cmocka_unit_test(test_swim_same_seed_replays_the_same_run),
        cmocka_unit_test(test_swim_failure_trace_matches_golden_file),
        cmocka_unit_test(test_swim_seed_sweep),
    };
    return cmocka_run_group_tests_name("swim", tests, NULL, NULL);
}
