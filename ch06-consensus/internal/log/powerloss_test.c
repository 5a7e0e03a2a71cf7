/* powerloss_test.c - cut the power at random points of a random workload and
 * check what the log keeps (simfs_testlib.h has the model of the disk).
 *
 * Each case: a seeded workload of appends, batches, syncs, truncations and
 * reopens on small segments (rolls every few records), under
 * PLOG_SYNC_ALWAYS, or NEVER with explicit plog_log_sync, sometimes after a
 * first run under NEVER whose data stayed in the page cache (the kill -9 then
 * power loss of an earlier run). The power goes at a random call; the disk
 * then holds only what the model allows; the log is reopened and checked:
 *   - every record acknowledged as durable is there with its value (an
 *     append or batch that returned under ALWAYS, everything before a
 *     plog_log_sync that returned, everything a reopen under a sync policy found),
 *     unless a truncation asked for it to go;
 *   - no offset below an acknowledged one is missing or damaged;
 *   - no read, single or batch, returns a record for another offset;
 *   - the log takes a new append right after its last record.
 * Cases: $PLOG_POWERLOSS_CUTS (default 240; `make check-long`: 20000), seed
 * $PLOG_POWERLOSS_SEED (default fixed); a failure prints seed and case. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <inttypes.h>

#include "internal/log/log.h"
#include "internal/log/simfs_testlib.h"
#include "internal/log/testrec.h"

static uint64_t rng;

static uint64_t rnd(void)
{
    return testrec_mix(rng++);
}

static void quiet(void *arg, int level, const char *msg)
{
    (void)level, (void)msg;
    if (arg != NULL)
        (*(int *)arg)++;
}

static int append_at(plog_log *l, uint64_t *off)
{
    uint8_t v[256];
    Log__V1__Record r = LOG__V1__RECORD__INIT;
    r.value.data = v;
    r.value.len = testrec_value(plog_log_next_offset(l), v);
    return plog_log_append(l, &r, off);
}

static int batch_at(plog_log *l, size_t n, uint64_t *first)
{
    static uint8_t v[16][256];
    Log__V1__Record r[16], *p[16];
    uint64_t next = plog_log_next_offset(l);
    for (size_t i = 0; i < n; i++) {
        r[i] = (Log__V1__Record)LOG__V1__RECORD__INIT;
        r[i].value.data = v[i];
        r[i].value.len = testrec_value(next + i, v[i]);
        p[i] = &r[i];
    }
    return plog_log_append_batch(l, p, n, first);
}

struct verdict {
    uint64_t seed, k;
};

#define check(cond, ...)                                                       \
    do {                                                                       \
        if (!(cond)) {                                                         \
            print_error("seed=%" PRIu64 " case=%" PRIu64 ": ", v->seed, v->k); \
            fail_msg(__VA_ARGS__);                                             \
        }                                                                      \
    } while (0)

/* verify reopens dir and checks the promises (see the top of the file). */
static void verify(const char *dir, plog_log_config c, uint64_t need_lo, uint64_t acked_next, bool strict,
                   const struct verdict *v)
{
    plog_log *l;
    c.sync = PLOG_SYNC_ALWAYS;
    int rv = plog_log_open(dir, &c, &l);
    check(rv == PLOG_OK, "reopen after the cut: %s", plog_strerror(rv));
    uint64_t lo = plog_log_lowest_offset(l), nx = plog_log_next_offset(l);
    if (acked_next > need_lo) {
        check(lo <= need_lo, "acknowledged record %" PRIu64 " gone: lowest is %" PRIu64, need_lo, lo);
        check(nx >= acked_next, "acknowledged records up to %" PRIu64 " but next is %" PRIu64, acked_next - 1,
              nx);
    }
    for (uint64_t off = lo; off < nx; off++) {
        uint8_t *buf;
        size_t len;
        rv = plog_log_read_raw(l, off, &buf, &len);
        if (rv != PLOG_OK) {
            /* A damaged record under ALWAYS is a hole under the record
             * appended below, which will be acknowledged. */
            check(!strict && off >= acked_next, "read %" PRIu64 " (acknowledged below %" PRIu64 "): %s", off,
                  acked_next, plog_strerror(rv));
            check(rv == PLOG_ECORRUPT, "read %" PRIu64 ": %s", off, plog_strerror(rv));
            continue;
        }
        Log__V1__Record *r = log__v1__record__unpack(NULL, len, buf);
        free(buf);
        check(r != NULL, "record %" PRIu64 " does not decode", off);
        uint8_t want[256];
        size_t wl = testrec_value(off, want);
        check(r->offset == off, "read %" PRIu64 " returned record %" PRIu64, off, r->offset);
        check(r->value.len == wl && memcmp(r->value.data, want, wl) == 0,
              "record %" PRIu64 " has the wrong value", off);
        log__v1__record__free_unpacked(r, NULL);
    }
    /* The batch path, span by span. */
    plog_log_batch b = {0};
    for (uint64_t off = lo; off < nx;) {
        rv = plog_log_read_batch(l, off, 64, 1 << 20, &b);
        if (rv != PLOG_OK) {
            check(!strict && off >= acked_next, "batch read %" PRIu64 ": %s", off, plog_strerror(rv));
            off++;
            continue;
        }
        for (size_t i = 0; i < b.n; i++) {
            Log__V1__Record *r = log__v1__record__unpack(NULL, b.len[i], b.rec[i]);
            check(r != NULL && r->offset == off + i, "batch read at %" PRIu64 ": record %zu is %" PRIu64, off,
                  i, r ? r->offset : 0);
            log__v1__record__free_unpacked(r, NULL);
        }
        off += b.n;
    }
    plog_log_batch_fini(&b);
    uint64_t off;
    rv = append_at(l, &off);
    check(rv == PLOG_OK && off == nx, "append after reopen: %s, offset %" PRIu64 " want %" PRIu64,
          plog_strerror(rv), off, nx);
    check(plog_log_close(l) == PLOG_OK, "close after the check");
}

/* one_case runs workload seed with the power cut at call k. */
static void one_case(uint64_t seed, uint64_t k, const char *dir)
{
    struct verdict vv = {seed, k}, *v = &vv;
    rng = seed * 1000003u;
    plog_test_rmrf(dir);
    check(mkdir(dir, 0755) == 0, "mkdir %s: %s", dir, strerror(errno));
    int reports = 0;
    plog_log_config c = {0};
    if (rnd() % 3 == 0) {
        /* An index of several pages: after a power loss its middle pages can
         * be zeros while its ends look right. */
        c.segment.max_store_bytes = 1 << 20;
        c.segment.max_index_bytes = 12 * 1000;
    } else {
        c.segment.max_store_bytes = 512 + rnd() % 2048;
        c.segment.max_index_bytes = 12 * (4 + rnd() % 24);
    }
    c.report.fn = quiet;
    c.report.arg = &reports;
    bool always = rnd() % 3 != 0;
    bool never_first = rnd() % 4 == 0;
    uint64_t acked_next = 0, floor = 0;
    check(simfs_start(dir, seed) == 0, "simfs_start");
    plog_log *l = NULL;
    if (never_first) {
        /* An earlier run under NEVER, killed: its data is in the page cache only. */
        plog_log_config c0 = c;
        c0.sync = PLOG_SYNC_NEVER;
        simfs_nosync(true);
        check(plog_log_open(dir, &c0, &l) == PLOG_OK, "first open");
        size_t n = 5 + rnd() % 60;
        for (size_t i = 0; i < n; i++) {
            uint64_t off;
            check(append_at(l, &off) == PLOG_OK, "append under NEVER");
        }
        plog_log_close(l);
        simfs_nosync(false);
    }
    c.sync = always ? PLOG_SYNC_ALWAYS : PLOG_SYNC_NEVER;
    simfs_cut_at(k);
    int rv = plog_log_open(dir, &c, &l);
    /* A NEVER run cut by the power before anything synced it may have left
     * holes: nothing was promised about it. */
    bool strict = always && (!never_first || rv == PLOG_OK);
    if (rv != PLOG_OK) {
        check(simfs_cut(), "open: %s", plog_strerror(rv));
        l = NULL;
    } else if (always) {
        acked_next = plog_log_next_offset(l);
    }
    for (int step = 0; l != NULL && step < 400 && !simfs_cut(); step++) {
        uint64_t r = rnd() % 100, off, next = plog_log_next_offset(l);
        if (r < 55) {
            rv = append_at(l, &off);
            if (rv == PLOG_OK && always)
                acked_next = off + 1;
        } else if (r < 80) {
            size_t n = 1 + rnd() % 12;
            rv = batch_at(l, n, &off);
            if (rv == PLOG_OK && always)
                acked_next = off + n;
        } else if (r < 90) {
            rv = plog_log_sync(l);
            if (rv == PLOG_OK && next > acked_next)
                acked_next = next;
        } else if (r < 93) {
            uint64_t lo = plog_log_lowest_offset(l);
            uint64_t lowest = lo + rnd() % ((next - lo) / 2 + 1);
            /* Asked for, the records below may go even if it fails. */
            if (lowest > floor)
                floor = lowest;
            rv = plog_log_truncate(l, lowest);
        } else {
            plog_log_close(l);
            rv = plog_log_open(dir, &c, &l);
            if (rv != PLOG_OK)
                l = NULL;
            else if (always)
                acked_next = plog_log_next_offset(l);
        }
        if (getenv("PLOG_POWERLOSS_VERBOSE") != NULL)
            fprintf(stderr,
                    "  step %d op %" PRIu64 " rv=%d next=%" PRIu64 " lo=%" PRIu64 " acked=%" PRIu64
                    " calls=%" PRIu64 "\n",
                    step, r, rv, l ? plog_log_next_offset(l) : 0, l ? plog_log_lowest_offset(l) : 0,
                    acked_next, simfs_calls());
        check(rv == PLOG_OK || simfs_cut(), "step %d (op %" PRIu64 ") failed before the cut: %s", step, r,
              plog_strerror(rv));
    }
    if (l != NULL)
        plog_log_close(l);
    if (getenv("PLOG_POWERLOSS_VERBOSE") != NULL)
        fprintf(stderr,
                "case %" PRIu64 " k=%" PRIu64 " cut=%d always=%d never_first=%d acked=%" PRIu64
                " floor=%" PRIu64 " calls=%" PRIu64 "\n",
                seed, k, simfs_cut(), always, never_first, acked_next, floor, simfs_calls());
    check(simfs_finish() == 0, "simfs_finish");
    /* Under ALWAYS every sealed segment is synced before the next exists, so
     * nothing at all may read as damaged; under NEVER records past the last
     * acknowledgement may. */
    verify(dir, c, floor, acked_next, strict, v);
}

static uint64_t env_u64(const char *name, uint64_t def)
{
    const char *s = getenv(name);
    return s != NULL && *s != '\0' ? strtoull(s, NULL, 10) : def;
}

static void test_powerloss_keeps_every_acknowledged_record(void **state)
{
    (void)state;
    uint64_t cuts = env_u64("PLOG_POWERLOSS_CUTS", 240);
    uint64_t seed0 = env_u64("PLOG_POWERLOSS_SEED", 20261130);
    char base[64], dir[96];
    snprintf(base, sizeof base, "/dev/shm/plog-powerloss-XXXXXX");
    if (mkdtemp(base) == NULL)
        plog_test_tmpdir("powerloss", base, sizeof base);
    snprintf(dir, sizeof dir, "%s/log", base);
    simfs_install();
    for (uint64_t i = 0; i < cuts; i++) {
        uint64_t seed = seed0 + i;
        /* Cut points spread over the whole workload (a few thousand calls). */
        uint64_t k = 1 + testrec_mix(seed ^ 0x5eed) % 3000;
        one_case(seed, k, dir);
    }
    simfs_uninstall();
    print_message("powerloss: %" PRIu64 " cut points, seeds %" PRIu64 "..%" PRIu64 "\n", cuts, seed0,
                  seed0 + cuts - 1);
    plog_test_rmrf(base);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_powerloss_keeps_every_acknowledged_record),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
