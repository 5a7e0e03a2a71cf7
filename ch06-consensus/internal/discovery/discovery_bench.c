/* discovery_bench.c - the membership protocol measured in the simulated
 * cluster, fast profile, 1-5 ms latency (`make bench`). Times are simulated
 * milliseconds, so they measure the protocol, not this machine:
 *   disc.sim.join    ms from a node's start until every member sees it and it sees every member
 *   disc.sim.detect  ms from a crash until every other member has declared it failed
 *   disc.sim.leave   ms from a graceful leave until every member has it as left
 * each as p50 and p99 over many runs (seeds), for n = 3 and 10, with and
 * without 5 % loss, plus the false failures seen in those runs (goal 0).
 * And the core's own speed, in real time on this machine:
 *   disc.core.ping   pings a core decodes, answers and encodes an ack for, per second
 *   disc.sim.msgs    messages the whole simulated cluster delivers per second of CPU
 * $PLOG_BENCH_RUNS overrides the runs per line (default 200). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal/discovery/swim_cluster.h"
#include "internal/err/err.h"

static int runs = 200;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static uint64_t pct(uint64_t *v, size_t n, double p)
{
    qsort(v, n, sizeof *v, cmp_u64);
    size_t i = (size_t)(p * (double)(n - 1) + 0.5);
    return v[i];
}

struct all_see {
    size_t n, subject;
    int status;
};

static bool all_see(plog_swim_cluster *c, void *arg)
{
    const struct all_see *a = arg;
    for (size_t v = 0; v < a->n; v++)
        if (v != a->subject && plog_swim_cluster_is_running(c, v) &&
            plog_swim_cluster_status(c, v, a->subject) != a->status)
            return false;
    return true;
}

static plog_swim_cluster *converged_cluster(size_t n, uint64_t seed, double loss, size_t started)
{
    plog_swim_cluster_opts o = {.n = n, .seed = seed, .min_latency_ms = 1, .max_latency_ms = 5, .loss = loss};
    plog_membership_config_fast(&o.cfg);
    plog_swim_cluster *c = plog_swim_cluster_new(&o);
    for (size_t i = 0; i < started; i++)
        plog_swim_cluster_start(c, i, 1, 0);
    if (!plog_swim_cluster_run_until_true(c, plog_swim_cluster_converged, NULL, 30000)) {
        fprintf(stderr, "bench: no convergence, seed %llu\n", (unsigned long long)seed);
        exit(1);
    }
    plog_swim_cluster_run_until(c, plog_swim_cluster_now(c) + 1000);
    return c;
}

static void line(const char *name, uint64_t *v, size_t n, size_t nodes, double loss, uint64_t false_failures)
{
    uint64_t p50 = pct(v, n, 0.5), p99 = pct(v, n, 0.99), max = v[n - 1];
    printf("bench %s.p50 %llu ms nodes=%zu loss=%.0f%% runs=%zu\n", name, (unsigned long long)p50, nodes,
           loss * 100, n);
    printf("bench %s.p99 %llu ms nodes=%zu loss=%.0f%% runs=%zu max=%llu false_failures=%llu\n", name,
           (unsigned long long)p99, nodes, loss * 100, n, (unsigned long long)max,
           (unsigned long long)false_failures);
}

static void bench_join(size_t n, double loss)
{
    uint64_t *v = calloc((size_t)runs, sizeof *v), ff = 0;
    for (int r = 0; r < runs; r++) {
        plog_swim_cluster *c = converged_cluster(n, 100 + (uint64_t)r, loss, n - 1);
        uint64_t t0 = plog_swim_cluster_now(c);
        plog_swim_cluster_start(c, n - 1, 1, (size_t)r % (n - 1));
        plog_swim_cluster_run_until_true(c, plog_swim_cluster_converged, NULL, t0 + 60000);
        v[r] = plog_swim_cluster_now(c) - t0;
        ff += plog_swim_cluster_false_failures(c);
        plog_swim_cluster_free(c);
    }
    line("disc.sim.join", v, (size_t)runs, n, loss, ff);
    free(v);
}

static void bench_detect(size_t n, double loss)
{
    uint64_t *v = calloc((size_t)runs, sizeof *v), ff = 0;
    for (int r = 0; r < runs; r++) {
        plog_swim_cluster *c = converged_cluster(n, 1000 + (uint64_t)r, loss, n);
        /* Crash at a random moment within a probe round. */
        plog_swim_cluster_run_until(c, plog_swim_cluster_now(c) + (uint64_t)(r * 37) % 1000);
        size_t victim = (size_t)r % n;
        uint64_t t0 = plog_swim_cluster_now(c);
        plog_swim_cluster_kill(c, victim);
        struct all_see dead = {n, victim, PLOG_GOSSIP_DEAD};
        plog_swim_cluster_run_until_true(c, all_see, &dead, t0 + 60000);
        v[r] = plog_swim_cluster_now(c) - t0;
        ff += plog_swim_cluster_false_failures(c);
        plog_swim_cluster_free(c);
    }
    line("disc.sim.detect", v, (size_t)runs, n, loss, ff);
    free(v);
}

static void bench_leave(size_t n, double loss)
{
    uint64_t *v = calloc((size_t)runs, sizeof *v), ff = 0;
    for (int r = 0; r < runs; r++) {
        plog_swim_cluster *c = converged_cluster(n, 5000 + (uint64_t)r, loss, n);
        size_t leaver = (size_t)r % n;
        uint64_t t0 = plog_swim_cluster_now(c);
        plog_swim_cluster_leave(c, leaver, 500);
        struct all_see left = {n, leaver, PLOG_GOSSIP_LEFT};
        plog_swim_cluster_run_until_true(c, all_see, &left, t0 + 60000);
        v[r] = plog_swim_cluster_now(c) - t0;
        ff += plog_swim_cluster_false_failures(c);
        plog_swim_cluster_free(c);
    }
    line("disc.sim.leave", v, (size_t)runs, n, loss, ff);
    free(v);
}

static void bench_core_ping(void)
{
    plog_membership_config cfg;
    plog_membership_config_fast(&cfg);
    cfg.name = "node-1";
    cfg.addr = "tls+tcp://127.0.0.1:8401";
    plog_membership *m;
    if (plog_membership_new(&cfg, 0, &m) != PLOG_OK)
        exit(1);
    /* A ten-member view, so acks carry piggybacked updates now and then. */
    char names[10][16], addrs[10][48];
    plog_gossip_state st[10];
    for (int i = 0; i < 10; i++) {
        snprintf(names[i], sizeof names[i], "node-%d", i + 2);
        snprintf(addrs[i], sizeof addrs[i], "tls+tcp://127.0.0.1:%d", 8402 + i);
        st[i] = (plog_gossip_state){PLOG_GOSSIP_ALIVE, 1, names[i], "", addrs[i], NULL, 0};
    }
    plog_gossip_msg pp = {.type = PLOG_GOSSIP_PUSH_PULL,
                          .flags = PLOG_GOSSIP_FLAG_REPLY,
                          .from = "node-2",
                          .from_addr = addrs[0],
                          .states = st,
                          .nstates = 10};
    uint8_t *buf;
    size_t len;
    plog_gossip_encode_alloc(&pp, &buf, &len);
    plog_membership_recv(m, 0, buf, len);
    free(buf);
    plog_gossip_msg ping = {.type = PLOG_GOSSIP_PING,
                            .seq = 1,
                            .from = "node-2",
                            .from_addr = addrs[0],
                            .target = "node-1",
                            .states = st,
                            .nstates = 1};
    plog_gossip_encode_alloc(&ping, &buf, &len);
    const int n = 1000000;
    double t0 = now_s();
    uint64_t bytes = 0;
    for (int i = 0; i < n; i++) {
        plog_membership_recv(m, 1, buf, len);
        plog_membership_send s;
        while (plog_membership_pop_send(m, &s)) {
            bytes += s.len;
            free(s.data);
        }
    }
    double dt = now_s() - t0;
    printf("bench disc.core.ping %.0f msgs/s n=%d ping_bytes=%zu ack_bytes_avg=%.1f\n", n / dt, n, len,
           (double)bytes / n);
    free(buf);
    plog_membership_free(m);
}

static void bench_sim_rate(void)
{
    plog_swim_cluster *c = converged_cluster(10, 77, 0.05, 10);
    uint64_t m0 = plog_swim_cluster_messages(c);
    double t0 = now_s();
    plog_swim_cluster_run_until(c, plog_swim_cluster_now(c) + 600000);
    double dt = now_s() - t0;
    uint64_t msgs = plog_swim_cluster_messages(c) - m0;
    printf(
        "bench disc.sim.msgs %.0f msgs/s nodes=10 loss=5%% simulated_s=600 msgs=%llu false_failures=%llu\n",
        (double)msgs / dt, (unsigned long long)msgs, (unsigned long long)plog_swim_cluster_false_failures(c));
    plog_swim_cluster_free(c);
}

int main(void)
{
    const char *r = getenv("PLOG_BENCH_RUNS");
    if (r != NULL && atoi(r) > 0)
        runs = atoi(r);
    bench_join(3, 0);
    bench_join(10, 0);
    bench_join(3, 0.05);
    bench_detect(3, 0);
    bench_detect(10, 0);
    bench_detect(3, 0.05);
    bench_detect(10, 0.05);
    bench_leave(3, 0);
    bench_leave(10, 0);
    bench_leave(3, 0.05);
    bench_core_ping();
    bench_sim_rate();
    return 0;
}
