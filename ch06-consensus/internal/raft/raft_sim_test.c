/* raft_sim_test.c - randomized runs of the simulated cluster, 3 and 5 servers.
 *
 * SEEDS=n runs seeds 1..n (default 1000; make check-long runs 100,000), SEED_FROM=m
 * starts at m instead; SEED=n runs one seed with its full trace on stderr. A failure
 * prints the seed that replays it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include "internal/raft/cluster_testlib.h"

static unsigned servers_for(uint64_t seed)
{
    return seed % 2 ? 3 : 5;
}

static void test_raft_sim_every_seed_keeps_safety_and_liveness(void **state)
{
    (void)state;
    const char *one = getenv("SEED");
    uint64_t first = 1, last = 1000;
    if (one != NULL) {
        first = last = strtoull(one, NULL, 10);
    } else if (getenv("SEEDS") != NULL) {
        last = strtoull(getenv("SEEDS"), NULL, 10);
    }
    if (one == NULL && getenv("SEED_FROM") != NULL)
        first = strtoull(getenv("SEED_FROM"), NULL, 10);
    plog_sim_soak_stats st = {0};
    for (uint64_t seed = first; seed <= last; seed++) {
        char err[512];
        if (!plog_sim_soak(seed, servers_for(seed), one != NULL, &st, err, sizeof err)) {
            fprintf(stderr, "raft sim: seed %llu failed after %llu seeds (replay: SEED=%llu): %s\n",
                    (unsigned long long)seed, (unsigned long long)(seed - first + 1),
                    (unsigned long long)seed, err);
            fail_msg("SEED=%llu: %s", (unsigned long long)seed, err);
        }
        if (seed % 10000 == 0)
            fprintf(stderr, "raft sim: %llu seeds passed\n", (unsigned long long)seed);
    }
    fprintf(stderr,
            "raft sim: seeds %llu..%llu passed: %llu steps, %llu proposals (%llu acknowledged), "
            "%llu elections, %llu crashes, %llu snapshots installed, %llu reads released, "
            "%llu entries read back from disk\n",
            (unsigned long long)first, (unsigned long long)last, (unsigned long long)st.steps,
            (unsigned long long)st.proposals, (unsigned long long)st.acked, (unsigned long long)st.elections,
            (unsigned long long)st.crashes, (unsigned long long)st.snapshots, (unsigned long long)st.reads,
            (unsigned long long)st.loads);
    /* the runs must exercise what they claim to */
    if (one == NULL && last - first >= 100) {
        assert_true(st.acked > 0);
        assert_true(st.crashes > 0);
        assert_true(st.snapshots > 0);
        assert_true(st.reads > 0);
        assert_true(st.loads > 0);
        assert_true(st.elections > last - first);
    }
}

/* a seed replays exactly: the same events at the same times; another seed differs */
static void test_raft_sim_same_seed_replays_the_same_run(void **state)
{
    (void)state;
    char err[512];
    plog_sim_soak_stats a = {0}, b = {0}, c = {0};
    assert_true(plog_sim_soak(42, 5, false, &a, err, sizeof err));
    assert_true(plog_sim_soak(42, 5, false, &b, err, sizeof err));
    assert_true(plog_sim_soak(43, 5, false, &c, err, sizeof err));
    assert_true(a.steps > 100);
    assert_int_equal(a.steps, b.steps);
    assert_int_equal(a.digest, b.digest);
    assert_int_equal(a.acked, b.acked);
    assert_int_not_equal(a.digest, c.digest);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_raft_sim_same_seed_replays_the_same_run),
        cmocka_unit_test(test_raft_sim_every_seed_keeps_safety_and_liveness),
    };
    return cmocka_run_group_tests_name("raft_sim", tests, NULL, NULL);
}
