/* raft_bench.c - what the core costs and how the simulated cluster behaves.
 *   raft.core.commit    entries/s committed by a simulated 3-server cluster with no
 *                       I/O cost (zero latency links, instant disks; includes the
 *                       simulator's copies and safety checks)
 *   raft.sim.seeds      randomized soak runs per second (as in make test)
 *   raft.sim.election   simulated ms from a leader crash to a new leader, 5 servers,
 *                       150-300 ms election timeouts, 5 ms links */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal/err/err.h"
#include "internal/raft/cluster_testlib.h"
#include "testing/testing.h"

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void bench_commit(void)
{
    plog_sim_opts o;
    plog_sim_opts_default(&o);
    o.delay_min_ms = o.delay_max_ms = 0;
    plog_sim *s = plog_sim_new(&o);
    if (!plog_sim_wait_leader(s, 2000))
        abort();
    uint64_t lead = plog_sim_leader(s);
    plog_raft_status st;
    plog_sim_status(s, lead, &st);
    uint64_t start_commit = st.commit, n = 100000;
    int64_t t0 = plog_test_now_ms();
    for (uint64_t i = 0; i < n; i += 256) {
        for (int k = 0; k < 256; k++)
            if (plog_sim_propose(s, lead, NULL) != PLOG_OK)
                abort();
        plog_sim_run_for(s, 1);
    }
    plog_sim_run_for(s, 100);
    int64_t ms = plog_test_now_ms() - t0;
    plog_sim_status(s, lead, &st);
    if (plog_sim_error(s) != NULL || st.commit < start_commit + n)
        abort();
    printf("bench raft.core.commit %.0f entries/s servers=3 entries=%llu max_batch=%u max_inflight=%u "
           "wall_ms=%lld\n",
           (double)(st.commit - start_commit) * 1000.0 / (double)(ms ? ms : 1),
           (unsigned long long)(st.commit - start_commit), o.max_batch, o.max_inflight, (long long)ms);
    plog_sim_free(s);
}

static void bench_seeds(void)
{
    uint64_t n = 2000;
    plog_sim_soak_stats st = {0};
    int64_t t0 = plog_test_now_ms();
    for (uint64_t seed = 1; seed <= n; seed++) {
        char err[512];
        if (!plog_sim_soak(seed, seed % 2 ? 3 : 5, false, &st, err, sizeof err)) {
            fprintf(stderr, "seed %llu: %s\n", (unsigned long long)seed, err);
            abort();
        }
    }
    int64_t ms = plog_test_now_ms() - t0;
    printf("bench raft.sim.seeds %.0f seeds/s seeds=%llu steps_per_seed=%llu wall_ms=%lld\n",
           (double)n * 1000.0 / (double)(ms ? ms : 1), (unsigned long long)n,
           (unsigned long long)(st.steps / n), (long long)ms);
}

static void bench_election(void)
{
    enum { TRIALS = 1000 };
    static uint64_t took[TRIALS];
    for (unsigned i = 0; i < TRIALS; i++) {
        plog_sim_opts o;
        plog_sim_opts_default(&o);
        o.n = 5;
        o.seed = i + 1;
        o.election_timeout_ms = 150;
        plog_sim *s = plog_sim_new(&o);
        if (!plog_sim_wait_leader(s, 5000))
            abort();
        plog_sim_run_for(s, 400 + i % 100);
        uint64_t lead = plog_sim_leader(s), t0 = plog_sim_now(s);
        plog_sim_crash(s, lead);
        while (plog_sim_leader(s) == 0)
            if (!plog_sim_step(s))
                abort();
        took[i] = plog_sim_now(s) - t0;
        plog_sim_free(s);
    }
    qsort(took, TRIALS, sizeof took[0], cmp_u64);
    printf("bench raft.sim.election %llu ms p99=%llu max=%llu trials=%d servers=5 timeout=150-300ms "
           "link=5ms pre_vote=1 paper=median~287ms(150-155ms timeouts)\n",
           (unsigned long long)took[TRIALS / 2], (unsigned long long)took[TRIALS * 99 / 100],
           (unsigned long long)took[TRIALS - 1], TRIALS);
}

int main(void)
{
    bench_commit();
    bench_seeds();
    bench_election();
    return 0;
}
