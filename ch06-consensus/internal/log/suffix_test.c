/* suffix_test.c - plog_log_truncate_suffix under power cuts and I/O errors
 * (simfs_testlib.h has the model of the disk).
 *
 * Each workload (seeded): appends and batches under PLOG_SYNC_ALWAYS across
 * small segments (rolls every few records), sometimes plog_log_truncate of the
 * oldest segments, then either a clean close or a power cut with the log open
 * (so the last segment's index is left preallocated past its entries). That
 * directory is the template; what plog_log_open makes of a copy of it is the
 * old log [lo, end). A cut point next is drawn (inside a segment, at a
 * segment's base, at lo, below lo, at or past end) and cut = min(max(next,
 * lo), end). Then, on a fresh copy each time:
 *   - the power goes before the k-th I/O call of the truncation, for every k
 *     from 1 to one past the calls it makes (past: the power goes after it
 *     returned, unsynced writes torn at random);
 *   - the k-th call fails once (EIO or ENOSPC), for every k, the truncation
 *     returning an error or PLOG_OK; then either the files are reopened as
 *     they are, or the power goes right after.
 * After each: the log reopens, holds [lo, e) with cut <= e <= end (e == cut
 * when the truncation returned PLOG_OK), every record read singly and by
 * batch is the one for its offset with its value, no hole; the truncation
 * run again succeeds and leaves exactly [lo, cut), and an append lands at cut.
 * Workloads: $PLOG_SUFFIX_WORKLOADS (default 12: over 200 cut points and as
 * many faults), seed $PLOG_SUFFIX_SEED; a failure prints seed and case. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>

#include "internal/log/io.h"
#include "internal/log/log.h"
#include "internal/log/simfs_testlib.h"
#include "internal/log/suffix.h"
#include "internal/log/testrec.h"

static uint64_t rng;

static uint64_t rnd(void)
{
    return testrec_mix(rng++);
}

static void quiet(void *arg, int level, const char *msg)
{
    (void)arg, (void)level, (void)msg;
}

/* What a failure names: the workload's seed and the case. */
static struct {
    uint64_t seed;
    const char *what;
    uint64_t k;
} cur;

#define check(cond, ...)                                                                   \
    do {                                                                                   \
        if (!(cond)) {                                                                     \
            print_error("seed=%" PRIu64 " %s k=%" PRIu64 ": ", cur.seed, cur.what, cur.k); \
            fail_msg(__VA_ARGS__);                                                         \
        }                                                                                  \
    } while (0)

static int append_n(plog_log *l, size_t n)
{
    static uint8_t v[16][256];
    Log__V1__Record r[16], *p[16];
    uint64_t next = plog_log_next_offset(l), first;
    for (size_t i = 0; i < n; i++) {
        r[i] = (Log__V1__Record)LOG__V1__RECORD__INIT;
        r[i].value.data = v[i];
        r[i].value.len = testrec_value(next + i, v[i]);
        p[i] = &r[i];
    }
    return n == 1 ? plog_log_append(l, p[0], &first) : plog_log_append_batch(l, p, n, &first);
}

static plog_log_config config(uint64_t seed)
{
    plog_log_config c = {0};
    uint64_t h = testrec_mix(seed ^ 0xc0f16);
    c.segment.max_store_bytes = 512 + h % 2048;
    c.segment.max_index_bytes = 12 * (4 + (h >> 16) % 24);
    c.segment.initial_offset = (h >> 32) % 3 == 0 ? 1000 + (h >> 40) % 100 : 0;
    c.sync = PLOG_SYNC_ALWAYS;
    c.report.fn = quiet;
    return c;
}

/* copy_dir replaces dst's files with src's: dst is emptied, then simfs starts
 * recording it when sim_seed is not 0, then the files are written through the
 * seam and synced with the directory, so that simfs holds them as durable.
 * (simfs_start itself is only ever given an empty directory.) */
static void copy_dir(const char *src, const char *dst, uint64_t sim_seed)
{
    const plog_io *io = plog_io_get();
    plog_test_rmrf(dst);
    check(mkdir(dst, 0755) == 0, "mkdir %s: %s", dst, strerror(errno));
    if (sim_seed != 0)
        check(simfs_start(dst, sim_seed) == 0, "simfs_start");
    DIR *d = opendir(src);
    check(d != NULL, "opendir %s", src);
    struct dirent *e;
    static uint8_t buf[1 << 16];
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char a[512], b[512];
        snprintf(a, sizeof a, "%s/%s", src, e->d_name);
        snprintf(b, sizeof b, "%s/%s", dst, e->d_name);
        int in = open(a, O_RDONLY | O_CLOEXEC);
        int out = io->open(b, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        check(in >= 0 && out >= 0, "copy %s: %s", a, strerror(errno));
        off_t at = 0;
        ssize_t r;
        while ((r = read(in, buf, sizeof buf)) > 0) {
            check(io->pwrite(out, buf, (size_t)r, at) == r, "write %s", b);
            at += r;
        }
        check(r == 0 && io->fdatasync(out) == 0, "copy %s", a);
        close(in);
        io->close(out);
    }
    closedir(d);
    int dfd = io->open(dst, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
    check(dfd >= 0 && io->fsync(dfd) == 0, "fsync %s", dst);
    io->close(dfd);
}

/* store_bases lists the bases of the stores in dir (at most max). */
static size_t store_bases(const char *dir, uint64_t *out, size_t max)
{
    size_t n = 0;
    DIR *d = opendir(dir);
    check(d != NULL, "opendir %s", dir);
    struct dirent *e;
    while ((e = readdir(d)) != NULL && n < max)
        if (strlen(e->d_name) == 26 && strcmp(e->d_name + 20, ".store") == 0)
            out[n++] = strtoull(e->d_name, NULL, 10);
    closedir(d);
    return n;
}

/* build_template runs workload seed in dir. */
static void build_template(uint64_t seed, const char *dir)
{
    rng = seed * 7919u;
    plog_test_rmrf(dir);
    check(mkdir(dir, 0755) == 0, "mkdir %s: %s", dir, strerror(errno));
    plog_log_config c = config(seed);
    bool crash = rnd() % 3 == 0;
    if (crash)
        check(simfs_start(dir, seed) == 0, "simfs_start");
    plog_log *l;
    check(plog_log_open(dir, &c, &l) == PLOG_OK, "open for the workload");
    size_t steps = 10 + rnd() % 50;
    for (size_t s = 0; s < steps; s++) {
        uint64_t r = rnd() % 100;
        if (r < 90) {
            check(append_n(l, 1 + rnd() % (r < 60 ? 1 : 12)) == PLOG_OK, "append");
        } else if (r < 95) {
            uint64_t lo = plog_log_lowest_offset(l), nx = plog_log_next_offset(l);
            check(plog_log_truncate(l, lo + rnd() % ((nx - lo) / 3 + 1)) == PLOG_OK, "truncate");
        } else {
            check(plog_log_close(l) == PLOG_OK, "close in the workload");
            check(plog_log_open(dir, &c, &l) == PLOG_OK, "reopen in the workload");
        }
    }
    if (crash) {
        /* The power goes with the log open: its active index stays at
         * max_index_bytes with zero entries past the last one. */
        simfs_cut_at(1);
        plog_log_close(l);
        check(simfs_finish() == 0, "simfs_finish");
    } else {
        check(plog_log_close(l) == PLOG_OK, "close after the workload");
    }
}

/* check_log opens dir and checks it holds [lo, e) with min_e <= e <= max_e,
 * every record intact; returns e. When append, an append must land at e. */
static uint64_t check_log(const char *dir, plog_log_config c, uint64_t lo, uint64_t min_e, uint64_t max_e,
                          bool append)
{
    plog_log *l;
    int rv = plog_log_open(dir, &c, &l);
    check(rv == PLOG_OK, "reopen: %s", plog_strerror(rv));
    uint64_t got_lo = plog_log_lowest_offset(l), e = plog_log_next_offset(l);
    check(got_lo == lo, "lowest offset %" PRIu64 ", want %" PRIu64, got_lo, lo);
    check(e >= min_e && e <= max_e, "next offset %" PRIu64 ", want %" PRIu64 "..%" PRIu64, e, min_e, max_e);
    for (uint64_t off = lo; off < e; off++) {
        uint8_t *buf;
        size_t len;
        rv = plog_log_read_raw(l, off, &buf, &len);
        check(rv == PLOG_OK, "read %" PRIu64 " of [%" PRIu64 ", %" PRIu64 "): %s", off, lo, e,
              plog_strerror(rv));
        check(testrec_check(off, buf, len), "record %" PRIu64 " is not its own", off);
        free(buf);
    }
    plog_log_batch b = {0};
    for (uint64_t off = lo; off < e;) {
        rv = plog_log_read_batch(l, off, 64, 1 << 20, &b);
        check(rv == PLOG_OK && b.n > 0, "batch read %" PRIu64 ": %s", off, plog_strerror(rv));
        for (size_t i = 0; i < b.n; i++)
            check(off + i < e && testrec_check(off + i, b.rec[i], b.len[i]),
                  "batch read at %" PRIu64 ": record %zu is not %" PRIu64, off, i, off + i);
        off += b.n;
    }
    plog_log_batch_fini(&b);
    if (append) {
        uint64_t off;
        uint8_t v[256];
        Log__V1__Record r = LOG__V1__RECORD__INIT;
        r.value.data = v;
        r.value.len = testrec_value(e, v);
        rv = plog_log_append(l, &r, &off);
        check(rv == PLOG_OK && off == e, "append after the cut: %s at %" PRIu64 ", want %" PRIu64,
              plog_strerror(rv), off, e);
    }
    check(plog_log_close(l) == PLOG_OK, "close after the check");
    return e;
}

/* after checks dir after a truncation that returned rv (power cut or not):
 * a prefix between cut and end, exactly cut on PLOG_OK; then a second
 * truncation must leave exactly [lo, cut). */
static void after(const char *dir, plog_log_config c, uint64_t lo, uint64_t cut, uint64_t end, uint64_t next,
                  int rv)
{
    check_log(dir, c, lo, cut, rv == PLOG_OK ? cut : end, false);
    char err[256] = "";
    rv = plog_log_truncate_suffix(dir, next, err, sizeof err);
    check(rv == PLOG_OK, "truncation again: %s: %s", plog_strerror(rv), err);
    check_log(dir, c, lo, cut, cut, true);
}

struct counts {
    uint64_t cuts, faults, fault_errors;
};

static void one_workload(uint64_t seed, const char *tmpl, const char *dir, struct counts *n)
{
    cur.seed = seed, cur.what = "workload", cur.k = 0;
    build_template(seed, tmpl);
    plog_log_config c = config(seed);
    /* The old log: what open makes of the template. */
    copy_dir(tmpl, dir, 0);
    uint64_t lo, end;
    {
        plog_log *l;
        check(plog_log_open(dir, &c, &l) == PLOG_OK, "open the old log");
        lo = plog_log_lowest_offset(l);
        end = plog_log_next_offset(l);
        plog_log_close(l);
    }
    check_log(dir, c, lo, end, end, false);
    uint64_t bases[256];
    size_t nb = store_bases(tmpl, bases, 256);
    uint64_t next, r = rnd() % 10;
    if (r < 4)
        next = lo + rnd() % (end - lo + 1);
    else if (r < 7 && nb > 0)
        next = bases[rnd() % nb]; /* exactly where a segment starts */
    else if (r == 7)
        next = lo;
    else if (r == 8)
        next = lo > 3 ? lo - 1 - rnd() % 3 : end + 1;
    else
        next = end + rnd() % 3;
    uint64_t cut = next < lo ? lo : next > end ? end : next;

    /* A dry run: how many calls the truncation makes, and the power going
     * after it returned. */
    cur.what = "dry run";
    copy_dir(tmpl, dir, seed);
    uint64_t c0 = simfs_calls();
    char err[256] = "";
    int rv = plog_log_truncate_suffix(dir, next, err, sizeof err);
    uint64_t calls = simfs_calls() - c0;
    check(rv == PLOG_OK, "truncate_suffix(%" PRIu64 "): %s: %s", next, plog_strerror(rv), err);
    check(simfs_finish() == 0, "simfs_finish");
    after(dir, c, lo, cut, end, next, rv);

    /* The power before each call. */
    cur.what = "power cut";
    for (uint64_t k = 1; k <= calls + 1; k++) {
        cur.k = k;
        copy_dir(tmpl, dir, seed * 1000 + k);
        simfs_cut_at(k);
        err[0] = '\0';
        rv = plog_log_truncate_suffix(dir, next, err, sizeof err);
        bool cut_ = simfs_cut();
        check(rv == PLOG_OK || (cut_ && err[0] != '\0'), "failed before the cut: %s: %s", plog_strerror(rv),
              err);
        check(rv != PLOG_OK || !cut_, "returned PLOG_OK with the power gone");
        check(simfs_finish() == 0, "simfs_finish");
        after(dir, c, lo, cut, end, next, rv);
        n->cuts++;
    }

    /* Each call failing once; the files as they are, or the power gone right
     * after. */
    cur.what = "fault";
    for (uint64_t k = 1;; k++) {
        cur.k = k;
        bool power = k % 2 == 0;
        copy_dir(tmpl, dir, power ? seed * 1000 + k : 0);
        simfs_fail_at(k, SIMFS_ALL, k % 3 == 0 ? ENOSPC : EIO);
        err[0] = '\0';
        rv = plog_log_truncate_suffix(dir, next, err, sizeof err);
        bool fired = simfs_fired();
        simfs_fail_at(0, 0, 0);
        check(rv == PLOG_OK || (fired && err[0] != '\0'), "failed without a fault: %s: %s", plog_strerror(rv),
              err);
        if (power) {
            simfs_cut_at(1);
            check(simfs_finish() == 0, "simfs_finish");
        }
        if (!fired)
            break;
        after(dir, c, lo, cut, end, next, rv);
        n->faults++;
        n->fault_errors += rv != PLOG_OK;
    }
}

static uint64_t env_u64(const char *name, uint64_t def)
{
    const char *s = getenv(name);
    return s != NULL && *s != '\0' ? strtoull(s, NULL, 10) : def;
}

static void test_truncate_suffix_under_power_cuts_and_faults(void **state)
{
    (void)state;
    uint64_t workloads = env_u64("PLOG_SUFFIX_WORKLOADS", 12);
    uint64_t seed0 = env_u64("PLOG_SUFFIX_SEED", 20261130);
    char base[64], tmpl[96], dir[96];
    snprintf(base, sizeof base, "/dev/shm/plog-suffix-XXXXXX");
    if (mkdtemp(base) == NULL)
        plog_test_tmpdir("suffix", base, sizeof base);
    snprintf(tmpl, sizeof tmpl, "%s/template", base);
    snprintf(dir, sizeof dir, "%s/log", base);
    simfs_install();
    struct counts n = {0};
    for (uint64_t i = 0; i < workloads; i++)
        one_workload(seed0 + i, tmpl, dir, &n);
    simfs_uninstall();
    print_message("suffix: %" PRIu64 " workloads (seeds %" PRIu64 "..%" PRIu64 "), %" PRIu64
                  " power cuts, %" PRIu64 " faults (%" PRIu64 " returned an error)\n",
                  workloads, seed0, seed0 + workloads - 1, n.cuts, n.faults, n.fault_errors);
    if (workloads >= 12)
        assert_true(n.cuts >= 200 && n.faults >= 200);
    plog_test_rmrf(base);
}

/* The cases by hand: a cut inside a segment, at a segment's base, at the
 * lowest offset, below it, past the end; and a directory that is not there. */
static void test_truncate_suffix_cuts_where_asked(void **state)
{
    (void)state;
    char dir[64], err[256];
    plog_test_tmpdir("suffix", dir, sizeof dir);
    plog_log_config c = {0};
    c.segment.max_index_bytes = 12 * 4; /* segments of 4 records: 100, 104, 108 */
    c.segment.initial_offset = 100;
    c.sync = PLOG_SYNC_ALWAYS;
    c.report.fn = quiet;
    plog_log *l;
    assert_plog_ok(plog_log_open(dir, &c, &l));
    for (uint64_t off = 100; off < 110; off++)
        testrec_append(l, off);
    assert_plog_ok(plog_log_close(l));
    cur.what = "by hand";
    assert_plog_ok(plog_log_truncate_suffix(dir, 200, err, sizeof err)); /* past the end */
    check_log(dir, c, 100, 110, 110, false);
    assert_plog_ok(plog_log_truncate_suffix(dir, 106, err, sizeof err)); /* inside */
    char path[256];
    testrec_seg_path(path, sizeof path, dir, 108, ".store");
    assert_int_not_equal(access(path, F_OK), 0);
    testrec_seg_path(path, sizeof path, dir, 104, ".index");
    assert_int_equal(testrec_file_size(path), 2 * 12); /* 104 and 105 */
    check_log(dir, c, 100, 106, 106, false);
    /* At a base: segment 104 goes whole (open then starts it again, as segment
     * 100 is full, so look before). */
    assert_plog_ok(plog_log_truncate_suffix(dir, 104, err, sizeof err));
    testrec_seg_path(path, sizeof path, dir, 104, ".store");
    assert_int_not_equal(access(path, F_OK), 0);
    testrec_seg_path(path, sizeof path, dir, 104, ".index");
    assert_int_not_equal(access(path, F_OK), 0);
    testrec_seg_path(path, sizeof path, dir, 100, ".index");
    assert_int_equal(testrec_file_size(path), 4 * 12);
    check_log(dir, c, 100, 104, 104, false);
    assert_plog_ok(plog_log_truncate_suffix(dir, 50, err, sizeof err)); /* below the base */
    check_log(dir, c, 100, 100, 100, true);                             /* appends at 100 */
    assert_plog_ok(plog_log_truncate_suffix(dir, 100, err, sizeof err));
    check_log(dir, c, 100, 100, 100, false);
    char missing[128];
    snprintf(missing, sizeof missing, "%s/nope", dir);
    err[0] = '\0';
    assert_int_equal(plog_log_truncate_suffix(missing, 0, err, sizeof err), PLOG_EIO);
    assert_non_null(strstr(err, "nope"));
    plog_test_rmrf(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_truncate_suffix_cuts_where_asked),
        cmocka_unit_test(test_truncate_suffix_under_power_cuts_and_faults),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
