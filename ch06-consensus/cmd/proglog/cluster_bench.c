/* cluster_bench.c - `make bench` (ch06): three proglog processes on loopback, node
 * certificates, mutual TLS everywhere, fsync on (group commit of Raft's log).
 *
 *   raft.produce       records/s acknowledged, clients=1|16|64, one record per
 *                      Produce (batch=1) or 256 per ProduceStream (batch=256),
 *                      each client a router (internal/loadbalance) of its own, so
 *                      a leader change mid-line is retried, and counted in errors=
 *                      only when a retry gave up; p50/p99 latency; the clock starts
 *                      once every client is connected
 *   raft.e2e.latency   ms from a Produce's start on the leader until the record is
 *                      readable on a follower (p50, p99, p999)
 *   raft.failover      ms from kill -9 of the leader until the next acknowledged
 *                      produce through the router (p50, p99 over PLOG_BENCH_KILLS)
 *   raft.rss           the leader's resident set, idle and after the 64-client load
 * PLOG_BENCH_SECONDS (default 2) per produce line, PLOG_BENCH_KILLS (default 10). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal/agent/testcluster.h"
#include "internal/client/client.h"
#include "internal/loadbalance/router.h"
#include "internal/tls/config.h"

#define N 3

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static double pct(int64_t *v, int n, double p)
{
    qsort(v, (size_t)n, sizeof *v, cmp_i64);
    int k = (int)(n * p / 100.0 + 0.999999) - 1;
    return (double)v[k < 0 ? 0 : k >= n ? n - 1 : k];
}

static int env_int(const char *name, int def)
{
    const char *s = getenv(name);
    return s != NULL && atoi(s) > 0 ? atoi(s) : def;
}

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static plog_loadbalance_router *router(struct tc *c, int i)
{
    char addr[64], cert[600], key[600], ca[600];
    const char *certs = tc_certs();
    snprintf(addr, sizeof addr, "tls+tcp://127.0.0.1:%d", c->node[i].rport);
    snprintf(cert, sizeof cert, "%s/root-client.pem", certs);
    snprintf(key, sizeof key, "%s/root-client-key.pem", certs);
    snprintf(ca, sizeof ca, "%s/ca.pem", certs);
    plog_client_config cfg = {.timeout_ms = 10000};
    plog_loadbalance_router *r;
    plog_rpc_status st;
    if (plog_loadbalance_router_open(addr, &cfg, cert, key, ca, &r, &st) != PLOG_STATUS_OK)
        return NULL;
    return r;
}

static int leader_of(struct tc *c)
{
    for (int i = 0; i < N; i++) {
        if (!c->node[i].running)
            continue;
        plog_loadbalance_router *r = router(c, i);
        if (r == NULL)
            continue;
        const plog_loadbalance_picker *p = plog_loadbalance_router_servers(r);
        int found = -1;
        for (size_t k = 0; k < p->n; k++)
            for (int j = 0; j < N && p->servers[k].is_leader; j++) {
                char want[32];
                snprintf(want, sizeof want, "127.0.0.1:%d", c->node[j].rport);
                if (strcmp(p->servers[k].rpc_addr, want) == 0)
                    found = j;
            }
        plog_loadbalance_router_close(r);
        if (found >= 0)
            return found;
    }
    return -1;
}

static bool three_voters(void *arg)
{
    struct tc *c = arg;
    int l = leader_of(c);
    if (l < 0)
        return false;
    plog_loadbalance_router *r = router(c, l);
    bool ok = r != NULL && plog_loadbalance_router_servers(r)->n == N;
    plog_loadbalance_router_close(r);
    return ok;
}

struct worker {
    struct tc *c;
    int node, batch;
    atomic_bool *stop;
    atomic_int *ready; /* workers connected; the clock starts when all are */
    long records, errors;
    int64_t lat[200000];
    int nlat;
};

/* produce_loop produces through a router of its own (its own connections), so a
 * leader change in the middle of a line costs a retry, not the rest of the line. */
static void *produce_loop(void *arg)
{
    struct worker *w = arg;
    plog_loadbalance_router *r = router(w->c, w->node);
    atomic_fetch_add(w->ready, 1);
    char v[100];
    memset(v, 'x', sizeof v);
    const void *vals[256];
    size_t lens[256];
    for (int i = 0; i < 256; i++) {
        vals[i] = v;
        lens[i] = sizeof v;
    }
    while (r != NULL && !atomic_load(w->stop)) {
        uint64_t off;
        plog_rpc_status st;
        int64_t t0 = now_us();
        if (plog_loadbalance_router_produce(r, vals, lens, (size_t)w->batch, &off, &st) != PLOG_STATUS_OK) {
            w->errors++;
            continue;
        }
        if (w->nlat < 200000)
            w->lat[w->nlat++] = now_us() - t0;
        w->records += w->batch;
    }
    if (r == NULL)
        w->errors++;
    plog_loadbalance_router_close(r);
    return NULL;
}

static void bench_produce(struct tc *c, int leader, int clients, int batch, int seconds)
{
    struct worker *w = calloc((size_t)clients, sizeof *w);
    pthread_t *th = calloc((size_t)clients, sizeof *th);
    atomic_bool stop;
    atomic_int ready;
    atomic_init(&stop, false);
    atomic_init(&ready, 0);
    for (int i = 0; i < clients; i++) {
        w[i] = (struct worker){.c = c, .node = leader, .batch = batch, .stop = &stop, .ready = &ready};
        pthread_create(&th[i], NULL, produce_loop, &w[i]);
    }
    while (atomic_load(&ready) < clients)
        plog_test_sleep_ms(5);
    int64_t t0 = now_us();
    plog_test_sleep_ms(seconds * 1000);
    atomic_store(&stop, true);
    double secs = (double)(now_us() - t0) / 1e6;
    long total = 0, errors = 0;
    int nlat = 0;
    for (int i = 0; i < clients; i++) {
        pthread_join(th[i], NULL);
        total += w[i].records;
        errors += w[i].errors;
        nlat += w[i].nlat;
    }
    int64_t *lat = malloc((size_t)(nlat ? nlat : 1) * sizeof *lat);
    int k = 0;
    for (int i = 0; i < clients; i++)
        for (int j = 0; j < w[i].nlat; j++)
            lat[k++] = w[i].lat[j];
    printf("bench raft.produce %.0f records/s clients=%d batch=%d size=100 p50_ms=%.2f p99_ms=%.2f tls=1 "
           "fsync=group errors=%ld\n",
           (double)total / secs, clients, batch, nlat ? pct(lat, nlat, 50) / 1000.0 : 0,
           nlat ? pct(lat, nlat, 99) / 1000.0 : 0, errors);
    fflush(stdout);
    free(lat);
    free(w);
    free(th);
}

static void bench_e2e(struct tc *c, int leader)
{
    int follower = (leader + 1) % N;
    plog_client *p = tc_client(c, leader), *f = tc_client(c, follower);
    int samples = 500;
    int64_t *lat = malloc((size_t)samples * sizeof *lat);
    int n = 0;
    for (int s = 0; s < samples; s++) {
        uint64_t off;
        plog_rpc_status st;
        int64_t t0 = now_us();
        if (plog_client_produce(p, "e2e", 3, &off, &st) != PLOG_STATUS_OK)
            break;
        for (;;) {
            Log__V1__Record *rec;
            if (plog_client_consume(f, off, &rec, &st) == PLOG_STATUS_OK) {
                log__v1__record__free_unpacked(rec, NULL);
                break;
            }
            if (now_us() - t0 > 5000000)
                break;
        }
        lat[n++] = now_us() - t0;
    }
    printf("bench raft.e2e.latency %.2f ms p=50 p99=%.2f p999=%.2f samples=%d follower=%s\n",
           pct(lat, n, 50) / 1000.0, pct(lat, n, 99) / 1000.0, pct(lat, n, 99.9) / 1000.0, n,
           c->node[follower].name);
    fflush(stdout);
    free(lat);
    plog_client_close(p);
    plog_client_close(f);
}

static long rss_kib(struct tc *c, int i)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)c->node[i].proc.pid);
    FILE *fp = fopen(path, "r");
    long kib = -1;
    while (fp != NULL && fgets(line, sizeof line, fp) != NULL)
        if (strncmp(line, "VmRSS:", 6) == 0)
            kib = atol(line + 6);
    if (fp != NULL)
        fclose(fp);
    return kib;
}

static void bench_failover(struct tc *c)
{
    int kills = env_int("PLOG_BENCH_KILLS", 10);
    int64_t *ms = malloc((size_t)kills * sizeof *ms);
    int n = 0;
    for (int k = 0; k < kills; k++) {
        int old = leader_of(c);
        if (old < 0)
            break;
        int other = (old + 1) % N;
        plog_loadbalance_router *r = router(c, other);
        if (r == NULL)
            break;
        const void *vals[1] = {"f"};
        size_t lens[1] = {1};
        uint64_t off;
        plog_rpc_status st;
        plog_loadbalance_router_produce(r, vals, lens, 1, &off, &st); /* warm: knows the leader */
        int64_t t0 = now_us();
        tc_stop(c, old, SIGKILL);
        int code = plog_loadbalance_router_produce(r, vals, lens, 1, &off, &st);
        int64_t took = now_us() - t0;
        if (code == PLOG_STATUS_OK)
            ms[n++] = took / 1000;
        tc_start(c, old, other);
        bool back = plog_test_wait_until(three_voters, c, 15000);
        /* closed once the killed server is back: closing a TLS client whose dialer
         * is redialing a dead server can hang nng 1.5.2's reaper */
        plog_loadbalance_router_close(r);
        if (!back)
            break;
        plog_test_sleep_ms(300);
    }
    if (n > 0)
        printf("bench raft.failover %.0f ms p=50 p99=%.0f kills=%d election_timeout=150-300ms\n",
               pct(ms, n, 50), pct(ms, n, 99), n);
    fflush(stdout);
    free(ms);
}

static void bench_cluster(void **state)
{
    (void)state;
    struct tc c = {0};
    tc_init(&c, N);
    tc_start(&c, 0, -1);
    tc_start(&c, 1, 0);
    tc_start(&c, 2, 0);
    assert_true(plog_test_wait_until(three_voters, &c, 15000));
    int leader = leader_of(&c);
    plog_test_sleep_ms(500);
    long idle = rss_kib(&c, leader);
    int secs = env_int("PLOG_BENCH_SECONDS", 2);
    bench_produce(&c, leader, 1, 1, secs);
    bench_produce(&c, leader, 16, 1, secs);
    bench_produce(&c, leader, 64, 1, secs);
    long load = rss_kib(&c, leader);
    bench_produce(&c, leader, 1, 256, secs);
    bench_produce(&c, leader, 16, 256, secs);
    long peak = rss_kib(&c, leader);
    printf("bench raft.rss %.1f MiB state=idle node=%s\n", idle / 1024.0, c.node[leader].name);
    printf("bench raft.rss %.1f MiB state=load clients=64 batch=1\n", load / 1024.0);
    printf("bench raft.rss %.1f MiB state=load clients=16 batch=256\n", peak / 1024.0);
    bench_e2e(&c, leader);
    bench_failover(&c);
    tc_fini(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(bench_cluster)};
    return cmocka_run_group_tests_name("cluster bench", tests, NULL, NULL);
}
