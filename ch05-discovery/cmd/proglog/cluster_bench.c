/* cluster_bench.c - `make bench`: three proglog processes on loopback, fast
 * membership profile, node certificates, mutual TLS.
 *
 *   disc.join        ms from starting node3 (joining node1) until node1 and node2
 *                    both list it alive                          (p50 over runs)
 *   disc.leave       ms from SIGTERM to node3 until both list it left (p50)
 *   disc.detect      ms from kill -9 of node3 until both list it dead (p50, p99)
 *   repl.lag         ms from a produce on node1 (call start) until the record is
 *                    readable on node2 (a long poll waiting for it)   (p50, p99)
 *   repl.throughput  records/s node2 copies when it starts behind node1 by N
 *                    records of 100 B (catch-up, from its start to the last one)
 * PLOG_BENCH_KILLS (default 20) kills, PLOG_BENCH_RECORDS (default 1000000). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal/agent/testcluster.h"
#include "internal/client/client.h"
#include "internal/client/stream.h"
#include "internal/discovery/membership.h"
#include "internal/err/err.h"
#include "internal/rpc/envelope.h"

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static int64_t pct(int64_t *v, int n, int p)
{
    qsort(v, (size_t)n, sizeof *v, cmp_i64);
    int k = (n * p + 99) / 100 - 1;
    return v[k < 0 ? 0 : k >= n ? n - 1 : k];
}

/* wait_both polls node1 and node2 (clients c[0], c[1]) until both list name with
 * status want; returns the ms it took from t0, or -1 after timeout_ms. */
static int64_t wait_both(plog_client *c[2], const char *name, const char *want, int64_t t0, int timeout_ms)
{
    bool ok[2] = {false, false};
    while (plog_test_now_ms() - t0 < timeout_ms) {
        for (int i = 0; i < 2; i++) {
            if (ok[i])
                continue;
            char st[16];
            tc_member_status(c[i], name, st, sizeof st);
            ok[i] = strcmp(st, want) == 0;
        }
        if (ok[0] && ok[1])
            return plog_test_now_ms() - t0;
        plog_test_sleep_ms(2);
    }
    return -1;
}

static int env_int(const char *name, int def)
{
    const char *s = getenv(name);
    return s != NULL && atoi(s) > 0 ? atoi(s) : def;
}

static void bench_discovery(struct tc *c)
{
    plog_client *cl[2] = {tc_client(c, 0), tc_client(c, 1)};
    int kills = env_int("PLOG_BENCH_KILLS", 20);
    int runs = 5;
    int64_t join[64], leave[64], detect[256];
    for (int r = 0; r < runs; r++) {
        int64_t t0 = plog_test_now_ms();
        tc_start(c, 2, 0);
        join[r] = wait_both(cl, "node3", "alive", t0, 10000);
        assert_true(join[r] >= 0);
        t0 = plog_test_now_ms();
        kill(c->node[2].proc.pid, SIGTERM); /* tc_stop would wait for the exit */
        leave[r] = wait_both(cl, "node3", "left", t0, 10000);
        tc_stop(c, 2, SIGTERM);
        assert_true(leave[r] >= 0);
    }
    for (int k = 0; k < kills; k++) {
        tc_start(c, 2, 0);
        assert_true(wait_both(cl, "node3", "alive", plog_test_now_ms(), 10000) >= 0);
        plog_test_sleep_ms(200); /* let it settle into the probe rotation */
        int64_t t0 = plog_test_now_ms();
        kill(c->node[2].proc.pid, SIGKILL);
        tc_stop(c, 2, SIGKILL);
        detect[k] = wait_both(cl, "node3", "dead", t0, 20000);
        assert_true(detect[k] >= 0);
    }
    plog_membership_config mc;
    plog_membership_config_fast(&mc);
    printf("bench disc.join %lld ms p=50 runs=%d nodes=3 profile=fast\n", (long long)pct(join, runs, 50),
           runs);
    printf("bench disc.leave %lld ms p=50 runs=%d nodes=3 profile=fast\n", (long long)pct(leave, runs, 50),
           runs);
    printf("bench disc.detect %lld ms p=50 kills=%d nodes=3 profile=fast\n",
           (long long)pct(detect, kills, 50), kills);
    printf("bench disc.detect %lld ms p=99 kills=%d nodes=3 profile=fast bound=%llu\n",
           (long long)pct(detect, kills, 99), kills,
           (unsigned long long)plog_membership_detect_bound_ms(&mc, 3));
    fflush(stdout);
    plog_client_close(cl[0]);
    plog_client_close(cl[1]);
}

/* wait_readable long-polls cl until offset off exists; returns false on error. */
static bool wait_readable(plog_client *cl, uint64_t off)
{
    for (;;) {
        Log__V1__ConsumeRequest req = LOG__V1__CONSUME_REQUEST__INIT;
        req.offset = off;
        req.max_records = 1;
        req.wait_ms = 2000;
        nng_msg *reply;
        plog_rpc_reply rp;
        plog_rpc_status st;
        if (plog_client_call(cl, plog_rpc_method_name(PLOG_METHOD_CONSUME_STREAM), &req.base, 0, 0, &reply,
                             &rp, &st) != PLOG_STATUS_OK)
            return false;
        Log__V1__ConsumeResponse *resp = log__v1__consume_response__unpack(NULL, rp.body_len, rp.body);
        nng_msg_free(reply);
        bool got = resp != NULL && resp->n_records > 0;
        if (resp != NULL)
            log__v1__consume_response__free_unpacked(resp, NULL);
        if (got)
            return true;
    }
}

static void bench_lag(struct tc *c)
{
    plog_client *a = tc_client(c, 0), *b = tc_client(c, 1);
    enum { SAMPLES = 200 };
    int64_t lag[SAMPLES];
    char value[100];
    memset(value, 'v', sizeof value);
    uint64_t base = 0;
    plog_rpc_status st;
    /* Warm up: both connections, the replicator's stream. */
    assert_int_equal(plog_client_produce(a, value, sizeof value, &base, &st), PLOG_STATUS_OK);
    assert_true(wait_readable(b, base));
    for (int i = 0; i < SAMPLES; i++) {
        uint64_t off;
        struct timespec ts0, ts1;
        clock_gettime(CLOCK_MONOTONIC, &ts0);
        assert_int_equal(plog_client_produce(a, value, sizeof value, &off, &st), PLOG_STATUS_OK);
        /* node2's log holds node2's own records too: its offset for this one is
         * the count of node1's records so far, as nothing else is produced. */
        assert_true(wait_readable(b, off));
        clock_gettime(CLOCK_MONOTONIC, &ts1);
        lag[i] = (int64_t)(ts1.tv_sec - ts0.tv_sec) * 1000000 + (ts1.tv_nsec - ts0.tv_nsec) / 1000;
    }
    printf("bench repl.lag %.1f ms p=50 samples=%d size=100 sync=interval\n",
           (double)pct(lag, SAMPLES, 50) / 1000, SAMPLES);
    printf("bench repl.lag %.1f ms p=99 samples=%d size=100 sync=interval\n",
           (double)pct(lag, SAMPLES, 99) / 1000, SAMPLES);
    fflush(stdout);
    plog_client_close(a);
    plog_client_close(b);
}

static void on_ack(void *arg, uint64_t first, size_t n, int code, const char *msg)
{
    (void)msg;
    uint64_t *last = arg;
    if (code == PLOG_STATUS_OK && n > 0 && first + n - 1 > *last)
        *last = first + n - 1;
}

static void bench_throughput(struct tc *c)
{
    int n = env_int("PLOG_BENCH_RECORDS", 1000000);
    tc_stop(c, 1, SIGTERM);
    plog_client *a = tc_client(c, 0);
    plog_client_producer *p;
    plog_rpc_status st;
    uint64_t last = 0;
    plog_client_producer_config pc = {.window = 8, .batch_records = 4096, .ack = on_ack, .arg = &last};
    assert_int_equal(plog_client_producer_open(a, &pc, &p, &st), PLOG_STATUS_OK);
    char value[100];
    memset(value, 'r', sizeof value);
    for (int i = 0; i < n; i++)
        assert_int_equal(plog_client_producer_send(p, value, sizeof value, &st), PLOG_STATUS_OK);
    assert_int_equal(plog_client_producer_flush(p, &st), PLOG_STATUS_OK);
    plog_client_producer_close(p);
    plog_client_close(a);
    int64_t t0 = plog_test_now_ms();
    tc_start(c, 1, 0);
    plog_client *b = tc_client(c, 1);
    assert_true(wait_readable(b, last));
    int64_t dt = plog_test_now_ms() - t0;
    plog_client_close(b);
    printf("bench repl.throughput %.0f records/s size=100 n=%d ms=%lld (catch-up of a restarted node, tls, "
           "sync=interval)\n",
           (double)n * 1000.0 / (double)(dt > 0 ? dt : 1), n, (long long)dt);
    fflush(stdout);
}

static void bench_cluster(void **state)
{
    (void)state;
    struct tc *c = calloc(1, sizeof *c);
    tc_init(c, 3);
    tc_start(c, 0, -1);
    tc_start(c, 1, 0);
    bench_discovery(c);
    bench_lag(c);
    bench_throughput(c);
    tc_fini(c);
    free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(bench_cluster)};
    return cmocka_run_group_tests_name("cluster_bench", tests, NULL, NULL);
}
