/* log_bench.c - throughput of the log (`make bench`). One line per result:
 *   bench <name> <value> <unit> size=<value bytes> fsync=<policy> n=<records>
 * Names: log.append, log.read.seq (plog_log_read_batch: frames checked, not
 * decoded), log.read.seq.decoded (the same, plus unpacking each Record, what
 * Go's Read does), log.read.random (plog_log_read), log.reopen.clean,
 * log.reopen.crash (after kill -9 of the writer). Data goes to $PLOG_BENCH_DIR,
 * else /tmp. $PLOG_BENCH_N overrides the record count (default 1,000,000),
 * $PLOG_BENCH_SIZES the record sizes ("100", "1024"; default both). */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "internal/err/err.h"
#include "internal/log/log.h"

static uint64_t n_records = 1000000;
static char root[256];

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void check(int rv, const char *what)
{
    if (rv != PLOG_OK) {
        fprintf(stderr, "bench: %s: %s\n", what, plog_strerror(rv));
        exit(1);
    }
}

static void rm_dir(const char *dir)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "bench: %s failed\n", cmd);
}

static const char *policy_name(plog_sync_policy p)
{
    return p == PLOG_SYNC_NEVER ? "never" : p == PLOG_SYNC_ALWAYS ? "always" : "interval";
}

/* append_all appends n records of size bytes; returns seconds. */
static double append_all(plog_log *l, size_t size, uint64_t n)
{
    uint8_t *v = malloc(size);
    for (size_t i = 0; i < size; i++)
        v[i] = (uint8_t)(i * 31 + 7);
    Log__V1__Record r = LOG__V1__RECORD__INIT;
    r.value.data = v;
    r.value.len = size;
    uint64_t off = 0;
    double t0 = now();
    for (uint64_t i = 0; i < n; i++)
        check(plog_log_append(l, &r, &off), "append");
    check(plog_log_commit(l, off), "commit");
    double t = now() - t0;
    free(v);
    return t;
}

static void line(const char *name, double value, const char *unit, size_t size, plog_sync_policy p,
                 uint64_t n)
{
    printf("bench %s %.*f %s size=%zu fsync=%s n=%llu\n", name, value < 100 ? 2 : 0, value, unit, size,
           policy_name(p), (unsigned long long)n);
    fflush(stdout);
}

static void bench_reads(plog_log *l, size_t size, uint64_t n)
{
    plog_log_batch b = {0};
    uint64_t got = 0, bytes = 0;
    double t0 = now();
    while (got < n) {
        check(plog_log_read_batch(l, got, 4096, 4 << 20, &b), "read_batch");
        for (size_t i = 0; i < b.n; i++)
            bytes += b.len[i];
        got += b.n;
    }
    double t = now() - t0;
    line("log.read.seq", (double)n / t, "records/s", size, PLOG_SYNC_NEVER, n);
    line("log.read.seq", (double)n * (double)size / t / 1e6, "MB/s", size, PLOG_SYNC_NEVER, n);

    got = 0;
    t0 = now();
    while (got < n) {
        check(plog_log_read_batch(l, got, 4096, 4 << 20, &b), "read_batch");
        for (size_t i = 0; i < b.n; i++) {
            Log__V1__Record *r = log__v1__record__unpack(NULL, b.len[i], b.rec[i]);
            if (r == NULL || r->value.len != size || r->offset != got + i)
                check(PLOG_ECORRUPT, "decode");
            log__v1__record__free_unpacked(r, NULL);
        }
        got += b.n;
    }
    t = now() - t0;
    line("log.read.seq.decoded", (double)n / t, "records/s", size, PLOG_SYNC_NEVER, n);
    plog_log_batch_fini(&b);
    if (bytes < n * size)
        check(PLOG_ECORRUPT, "read bytes");

    uint64_t k = 100000, s = 88172645463325252ull;
    t0 = now();
    for (uint64_t i = 0; i < k; i++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        uint64_t off = s % n;
        Log__V1__Record *r;
        check(plog_log_read(l, off, &r), "read");
        log__v1__record__free_unpacked(r, NULL);
    }
    t = now() - t0;
    line("log.read.random", (double)k / t, "records/s", size, PLOG_SYNC_NEVER, k);
}

static void bench_size(size_t size)
{
    char dir[512];
    plog_sync_policy policies[] = {PLOG_SYNC_NEVER, PLOG_SYNC_INTERVAL};
    for (size_t pi = 0; pi < 2; pi++) {
        plog_log_config c = {0};
        c.sync = policies[pi];
        c.sync_interval_ms = 10;
        snprintf(dir, sizeof dir, "%s/append-%zu-%s", root, size, policy_name(c.sync));
        rm_dir(dir);
        plog_log *l;
        check(plog_log_open(dir, &c, &l), "open");
        double t = append_all(l, size, n_records);
        line("log.append", (double)n_records / t, "records/s", size, c.sync, n_records);
        line("log.append", (double)n_records * (double)size / t / 1e6, "MB/s", size, c.sync, n_records);
        if (c.sync == PLOG_SYNC_NEVER) {
            bench_reads(l, size, n_records);
            check(plog_log_close(l), "close");
            double t0 = now();
            check(plog_log_open(dir, &c, &l), "reopen");
            t = now() - t0;
            if (plog_log_next_offset(l) != n_records)
                check(PLOG_ECORRUPT, "reopen lost records");
            line("log.reopen.clean", t * 1000, "ms", size, c.sync, n_records);
        }
        check(plog_log_close(l), "close");
        rm_dir(dir);
    }
}

/* bench_crash: a child appends n records, commits (they are in the kernel) and
 * dies by SIGKILL without closing; the parent times the recovering open. */
static void bench_crash(size_t size)
{
    char dir[512];
    snprintf(dir, sizeof dir, "%s/crash-%zu", root, size);
    rm_dir(dir);
    plog_log_config c = {0};
    /* All records in one segment: the whole store is scanned (the worst case;
     * with the default 10 MiB index the last segment holds 126,187 of them). */
    c.segment.max_index_bytes = (n_records + 1) * 12;
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        plog_log *l;
        check(plog_log_open(dir, &c, &l), "open");
        append_all(l, size, n_records);
        raise(SIGKILL);
        _exit(1);
    }
    int status;
    waitpid(pid, &status, 0);
    if (!WIFSIGNALED(status))
        check(PLOG_EIO, "crash child");
    plog_log *l;
    double t0 = now();
    check(plog_log_open(dir, &c, &l), "reopen");
    double t = now() - t0;
    if (plog_log_next_offset(l) != n_records)
        check(PLOG_ECORRUPT, "crash reopen lost records");
    line("log.reopen.crash", t * 1000, "ms", size, c.sync, n_records);
    check(plog_log_close(l), "close");
    rm_dir(dir);
}

int main(void)
{
    const char *env = getenv("PLOG_BENCH_N");
    if (env != NULL)
        n_records = strtoull(env, NULL, 10);
    const char *base = getenv("PLOG_BENCH_DIR");
    snprintf(root, sizeof root, "%s/plog-bench-%d", base != NULL ? base : "/tmp", (int)getpid());
    /* $PLOG_BENCH_SIZES: "100", "1024" or both (default), for profiling one. */
    const char *sizes = getenv("PLOG_BENCH_SIZES");
    if (sizes == NULL || strstr(sizes, "100") != NULL) {
        bench_size(100);
        bench_crash(100);
    }
    if (sizes == NULL || strstr(sizes, "1024") != NULL) {
        bench_size(1024);
        bench_crash(1024);
    }
    rm_dir(root);
    return 0;
}
