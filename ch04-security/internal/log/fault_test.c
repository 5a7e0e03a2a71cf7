/* fault_test.c - fail every I/O call and every allocation of a scripted
 * workload, one at a time, and check the log's answers (SQLite's I/O-error
 * and OOM loops).
 *
 * The workload (appends, batches that roll segments, a sync, a truncation, a
 * close and reopen, reads) runs once per n: its n-th call through the I/O
 * seam fails (EIO, then ENOSPC), or its n-th allocation returns NULL; n grows
 * until the workload runs without meeting the fault. Every call must either
 * succeed or return a clean error; once the log says it failed, appends are
 * refused with PLOG_EFAILED; a failed batch leaves nothing behind; and the log
 * reopened afterwards holds every acknowledged record with its value. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <inttypes.h>

#include "internal/err/alloc.h"
#include "internal/log/log.h"
#include "internal/log/simfs_testlib.h"
#include "internal/log/testrec.h"

struct run {
    const char *what;
    uint64_t n;
    uint64_t acked_next; /* every record below is acknowledged */
    uint64_t max_next;   /* the highest next offset seen */
};

#define check(cond, ...)                                      \
    do {                                                      \
        if (!(cond)) {                                        \
            print_error("%s n=%" PRIu64 ": ", r->what, r->n); \
            fail_msg(__VA_ARGS__);                            \
        }                                                     \
    } while (0)

static void quiet(void *arg, int level, const char *msg)
{
    (void)arg, (void)level, (void)msg;
}

static plog_log_config config(plog_sync_policy p)
{
    plog_log_config c = {0};
    c.segment.max_store_bytes = 1024;
    c.segment.max_index_bytes = 12 * 8;
    c.sync = p;
    c.report.fn = quiet;
    return c;
}

/* clean: the errors a call may return under a fault. */
static bool clean(int rv)
{
    return rv == PLOG_OK || rv == PLOG_EIO || rv == PLOG_EFAILED || rv == PLOG_ENOMEM;
}

static void note_next(plog_log *l, struct run *r)
{
    uint64_t nx = plog_log_next_offset(l);
    if (nx > r->max_next)
        r->max_next = nx;
}

/* append_n appends n records (a batch when n > 1) and checks the outcome. */
static int append_n(plog_log *l, size_t n, bool always, struct run *r)
{
    static uint8_t v[8][256];
    Log__V1__Record rec[8], *p[8];
    bool failed_before = plog_log_failed(l, NULL, 0);
    uint64_t next = plog_log_next_offset(l), first = 0;
    for (size_t i = 0; i < n; i++) {
        rec[i] = (Log__V1__Record)LOG__V1__RECORD__INIT;
        rec[i].value.data = v[i];
        rec[i].value.len = testrec_value(next + i, v[i]);
        p[i] = &rec[i];
    }
    int rv = plog_log_append_batch(l, p, n, &first);
    check(clean(rv), "append: %s", plog_strerror(rv));
    if (failed_before)
        check(rv == PLOG_EFAILED, "append on a failed log: %s", plog_strerror(rv));
    if (rv == PLOG_OK) {
        check(first == next, "append at %" PRIu64 " want %" PRIu64, first, next);
        if (always)
            r->acked_next = first + n;
    } else if (rv != PLOG_EFAILED || !failed_before) {
        /* All or nothing: the batch left no record behind (a sync that
         * failed after the records went in is the one exception: they are
         * in, and not acknowledged). */
        uint64_t nx = plog_log_next_offset(l);
        check(nx == next || (always && nx == next + n),
              "failed batch of %zu at %" PRIu64 " left next at %" PRIu64, n, next, nx);
    }
    note_next(l, r);
    return rv;
}

/* workload runs the script; every failure is checked for cleanliness. */
static void workload(const char *dir, plog_sync_policy pol, struct run *r)
{
    plog_log_config c = config(pol);
    bool always = pol == PLOG_SYNC_ALWAYS;
    plog_log *l;
    int rv = plog_log_open(dir, &c, &l);
    check(clean(rv), "open: %s", plog_strerror(rv));
    if (rv != PLOG_OK)
        return;
    note_next(l, r);
    if (always)
        r->acked_next = plog_log_next_offset(l);
    for (int i = 0; i < 40; i++) {
        append_n(l, i % 7 == 3 ? 6 : 1, always, r);
        if (i == 20) {
            uint64_t lo = plog_log_lowest_offset(l);
            rv = plog_log_truncate(l, lo + 5);
            check(clean(rv), "truncate: %s", plog_strerror(rv));
        }
        if (i == 12 || i == 33) {
            uint64_t next = plog_log_next_offset(l);
            rv = plog_log_sync(l);
            check(clean(rv), "sync: %s", plog_strerror(rv));
            if (rv == PLOG_OK && next > r->acked_next)
                r->acked_next = next;
        }
        if (i == 25) {
            plog_log_close(l);
            rv = plog_log_open(dir, &c, &l);
            check(clean(rv), "reopen: %s", plog_strerror(rv));
            if (rv != PLOG_OK)
                return;
            check(!plog_log_failed(l, NULL, 0), "a reopened log starts healthy");
            if (always)
                r->acked_next = plog_log_next_offset(l);
        }
    }
    /* Reads keep working (or fail cleanly) whatever happened. */
    uint64_t lo = plog_log_lowest_offset(l), nx = plog_log_next_offset(l);
    for (uint64_t off = lo; off < nx; off += 3) {
        Log__V1__Record *rec;
        rv = plog_log_read(l, off, &rec);
        check(rv == PLOG_OK || rv == PLOG_EIO || rv == PLOG_ENOMEM, "read %" PRIu64 ": %s", off,
              plog_strerror(rv));
        if (rv == PLOG_OK) {
            check(rec->offset == off, "read %" PRIu64 " got %" PRIu64, off, rec->offset);
            log__v1__record__free_unpacked(rec, NULL);
        }
    }
    plog_log_batch b = {0};
    rv = plog_log_read_batch(l, lo, 16, 1 << 20, &b);
    check(rv == PLOG_OK || rv == PLOG_EIO || rv == PLOG_ENOMEM || rv == PLOG_ERANGE, "read_batch: %s",
          plog_strerror(rv));
    plog_log_batch_fini(&b);
    if (plog_log_failed(l, NULL, 0)) {
        char cause[256], msg[256];
        plog_log_failed(l, cause, sizeof cause);
        check(cause[0] != '\0', "a failed log names its cause");
        check(append_n(l, 1, always, r) == PLOG_EFAILED, "appends refused");
        plog_log_errmsg(l, msg, sizeof msg);
        check(strstr(msg, "restart to recover") != NULL, "errmsg says what to do: %s", msg);
    }
    plog_log_close(l);
}

/* verify reopens without faults: every acknowledged record is there. */
static void verify(const char *dir, plog_sync_policy pol, struct run *r)
{
    plog_log_config c = config(pol);
    plog_log *l;
    int rv = plog_log_open(dir, &c, &l);
    check(rv == PLOG_OK, "reopen without faults: %s", plog_strerror(rv));
    check(!plog_log_failed(l, NULL, 0), "reopened healthy");
    uint64_t lo = plog_log_lowest_offset(l), nx = plog_log_next_offset(l);
    check(nx >= r->acked_next, "next %" PRIu64 " below acknowledged %" PRIu64, nx, r->acked_next);
    check(nx <= r->max_next, "next %" PRIu64 " above any offset appended (%" PRIu64 ")", nx, r->max_next);
    for (uint64_t off = lo; off < nx; off++) {
        Log__V1__Record *rec;
        rv = plog_log_read(l, off, &rec);
        check(rv == PLOG_OK, "read %" PRIu64 " after reopen: %s", off, plog_strerror(rv));
        uint8_t want[256];
        size_t wl = testrec_value(off, want);
        check(rec->value.len == wl && memcmp(rec->value.data, want, wl) == 0,
              "record %" PRIu64 " has the wrong value", off);
        log__v1__record__free_unpacked(rec, NULL);
    }
    uint64_t off;
    Log__V1__Record rec = LOG__V1__RECORD__INIT;
    uint8_t v[256];
    rec.value.data = v;
    rec.value.len = testrec_value(nx, v);
    check(plog_log_append(l, &rec, &off) == PLOG_OK && off == nx, "append after reopen");
    check(plog_log_close(l) == PLOG_OK, "close");
}

static void fresh(char *dir)
{
    plog_test_rmrf(dir);
    if (mkdir(dir, 0755) != 0)
        fail_msg("mkdir %s: %s", dir, strerror(errno));
}

static void make_base(char *base, size_t size)
{
    snprintf(base, size, "/dev/shm/plog-fault-XXXXXX");
    if (mkdtemp(base) == NULL)
        plog_test_tmpdir("fault", base, size);
}

static void test_fault_every_io_call_fails_cleanly_and_loses_nothing(void **state)
{
    (void)state;
    char base[64], dir[96];
    make_base(base, sizeof base);
    snprintf(dir, sizeof dir, "%s/log", base);
    static const int errs[] = {EIO, ENOSPC};
    static const plog_sync_policy pols[] = {PLOG_SYNC_ALWAYS, PLOG_SYNC_NEVER};
    uint64_t runs = 0, fired = 0;
    simfs_install();
    for (size_t e = 0; e < 2; e++)
        for (size_t p = 0; p < 2; p++)
            for (uint64_t n = 1;; n++) {
                struct run rr = {errs[e] == EIO ? "eio" : "enospc", n, 0, 0}, *r = &rr;
                fresh(dir);
                /* EIO once, anywhere; ENOSPC from then on, where a full
                 * disk fails (writes, allocations). */
                if (errs[e] == EIO)
                    simfs_fail_at(n, SIMFS_ALL, EIO);
                else
                    simfs_fail_from(n, SIMFS_WRITE | SIMFS_FALLOCATE, ENOSPC);
                workload(dir, pols[p], r);
                bool f = simfs_fired();
                simfs_fail_at(0, 0, 0);
                verify(dir, pols[p], r);
                runs++;
                if (!f)
                    break;
                fired++;
            }
    simfs_uninstall();
    print_message("fault: %" PRIu64 " workloads, %" PRIu64 " injected I/O faults\n", runs, fired);
    assert_true(fired > 500);
    plog_test_rmrf(base);
}

static void test_fault_every_allocation_fails_cleanly(void **state)
{
    (void)state;
    char base[64], dir[96];
    make_base(base, sizeof base);
    snprintf(dir, sizeof dir, "%s/log", base);
    uint64_t fired = 0;
    for (uint64_t n = 0;; n++) {
        struct run rr = {"alloc", n, 0, 0}, *r = &rr;
        fresh(dir);
        plog_alloc_fail_after((long)n);
        workload(dir, PLOG_SYNC_ALWAYS, r);
        bool f = plog_alloc_failed();
        plog_alloc_fail_after(-1);
        verify(dir, PLOG_SYNC_ALWAYS, r);
        if (!f)
            break;
        fired++;
    }
    print_message("fault: %" PRIu64 " injected allocation failures\n", fired);
    assert_true(fired > 20);
    plog_test_rmrf(base);
}

/* teardown: a failed test must not leave its faults to the next one. */
static int teardown(void **state)
{
    (void)state;
    simfs_uninstall();
    plog_alloc_fail_after(-1);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_fault_every_io_call_fails_cleanly_and_loses_nothing, teardown),
        cmocka_unit_test_teardown(test_fault_every_allocation_fails_cleanly, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
