/* metrics_bench.c - what observability costs the server per request.
 *
 *   metrics.observe      plog_metrics_observe from 1, 2 and 8 threads (8 > cores:
 *                        threads share shards)
 *   atomic.shared_add    the floor the shards avoid: every thread adding to one
 *                        counter (one cache line bouncing between cores)
 *   metrics.render       full scrapes per second with every series populated
 *   reqlog.request       request lines per second written to /dev/null
 *   reqlog.filtered      request calls per second dropped by the level filter
 * Each line runs for about DURATION_MS. */
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "internal/err/err.h"
#include "internal/metrics/metrics.h"
#include "internal/logger/logger.h"
#include "internal/metrics/reqlog.h"

#define DURATION_MS 400
#define BATCH 1024

static const char *const methods[] = {"Produce", "Consume", "ConsumeStream", "ProduceStream"};

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

enum kind { OBSERVE, SHARED_ADD, REQLOG, REQLOG_FILTERED };

struct run {
    enum kind kind;
    plog_metrics *m;
    plog_logger *l;
    _Atomic uint64_t shared;
    atomic_bool stop;
    atomic_int ready;
};

struct worker {
    struct run *r;
    int id;
    uint64_t ops;
};

static void *work(void *arg)
{
    struct worker *w = arg;
    struct run *r = w->r;
    plog_metrics_reqlog_entry e = {
        .method = "Produce", .status = "OK", .peer = "root", .bytes_in = 120, .bytes_out = 8};
    uint64_t i = (uint64_t)w->id * 7919;

    atomic_fetch_add(&r->ready, 1);
    while (!atomic_load_explicit(&r->stop, memory_order_relaxed)) {
        for (int b = 0; b < BATCH; b++, i++) {
            switch (r->kind) {
            case OBSERVE:
                /* Latencies 0..~1 ms spread over the small buckets, like real traffic. */
                plog_metrics_observe(r->m, (int)(i & 3), 0, (i * 2654435761u) % 1000000u, 120, 8);
                break;
            case SHARED_ADD:
                atomic_fetch_add_explicit(&r->shared, 1, memory_order_relaxed);
                break;
            case REQLOG:
            case REQLOG_FILTERED:
                e.latency_ns = i % 1000000u;
                plog_metrics_reqlog(r->l, PLOG_LOGGER_INFO, &e);
                break;
            }
        }
        w->ops += BATCH;
    }
    return NULL;
}

/* run_threads runs kind on n threads for DURATION_MS; returns operations/s. */
static double run_threads(struct run *r, int n)
{
    pthread_t th[16];
    struct worker w[16];
    uint64_t ops = 0;
    double t0, t1;

    atomic_init(&r->stop, false);
    atomic_init(&r->ready, 0);
    for (int t = 0; t < n; t++) {
        w[t] = (struct worker){.r = r, .id = t};
        if (pthread_create(&th[t], NULL, work, &w[t]) != 0) {
            perror("pthread_create");
            exit(1);
        }
    }
    while (atomic_load(&r->ready) < n)
        ;
    t0 = now_s();
    nanosleep(&(struct timespec){.tv_sec = DURATION_MS / 1000, .tv_nsec = (DURATION_MS % 1000) * 1000000L},
              NULL);
    atomic_store(&r->stop, true);
    for (int t = 0; t < n; t++) {
        pthread_join(th[t], NULL);
        ops += w[t].ops;
    }
    t1 = now_s();
    return (double)ops / (t1 - t0);
}

int main(void)
{
    static const int threads[] = {1, 2, 8};
    struct run r = {0};
    int rv, devnull;
    char *text;
    size_t len;
    double t0, dt;
    int renders = 0;

    if ((rv = plog_metrics_new(methods, 4, &r.m)) != PLOG_OK) {
        fprintf(stderr, "plog_metrics_new: %s\n", plog_strerror(rv));
        return 1;
    }
    for (size_t i = 0; i < sizeof(threads) / sizeof(threads[0]); i++) {
        r.kind = OBSERVE;
        printf("bench metrics.observe %.0f ops/s threads=%d\n", run_threads(&r, threads[i]), threads[i]);
        fflush(stdout);
    }
    r.kind = SHARED_ADD;
    printf("bench atomic.shared_add %.0f ops/s threads=2\n", run_threads(&r, 2));

    /* Every (method, code) series populated: the worst-case scrape. */
    for (int me = 0; me < 4; me++)
        for (int c = 0; c < PLOG_METRICS_CODES; c++)
            plog_metrics_observe(r.m, me, c, 1000, 1, 1);
    t0 = now_s();
    do {
        if ((rv = plog_metrics_render(r.m, &text, &len)) != PLOG_OK) {
            fprintf(stderr, "render: %s\n", plog_strerror(rv));
            return 1;
        }
        free(text);
        renders++;
    } while ((dt = now_s() - t0) < DURATION_MS / 1000.0);
    printf("bench metrics.render %.0f renders/s series=%d bytes=%zu\n", renders / dt, 4 * PLOG_METRICS_CODES,
           len);

    if ((devnull = open("/dev/null", O_WRONLY)) < 0) {
        perror("/dev/null");
        return 1;
    }
    if ((rv = plog_logger_new(devnull, PLOG_LOGGER_INFO, &r.l)) != PLOG_OK) {
        fprintf(stderr, "plog_logger_new: %s\n", plog_strerror(rv));
        return 1;
    }
    r.kind = REQLOG;
    printf("bench reqlog.request %.0f lines/s threads=2 sink=/dev/null\n", run_threads(&r, 2));
    plog_logger_set_level(r.l, PLOG_LOGGER_WARN);
    r.kind = REQLOG_FILTERED;
    printf("bench reqlog.filtered %.0f ops/s threads=2 level=warn\n", run_threads(&r, 2));
    plog_logger_free(r.l);
    close(devnull);
    plog_metrics_free(r.m);
    return 0;
}
