/* durability_test.c - one test per durability rule of the log, each on a
 * state built by hand (powerloss_test and fault_test find the same states
 * at random): a torn roll, an index with a zeroed middle, a fail-stop, the
 * report callback. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sys/stat.h>
#include <string.h>
#include <stdio.h>
#include <stdbool.h>
#include <unistd.h>
#include <stdlib.h>

#include "internal/log/io.h"
#include "internal/log/log.h"
#include "internal/log/simfs_testlib.h"
#include "internal/log/testrec.h"

struct reports {
    int n[PLOG_LOG_REPORT_ERROR + 1];
    char last[1024];
    char all[4096]; /* every message, one a line */
};

static void collect(void *arg, int level, const char *msg)
{
    struct reports *r = arg;
    r->n[level]++;
    snprintf(r->last, sizeof r->last, "%s", msg);
    size_t k = strlen(r->all);
    snprintf(r->all + k, sizeof r->all - k, "%s\n", msg);
}

struct fixture {
    char dir[64];
    plog_log_config c;
    struct reports rep;
    plog_log *l;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    plog_test_tmpdir("durability", f->dir, sizeof f->dir);
    f->c.segment.max_store_bytes = 1 << 20;
    f->c.segment.max_index_bytes = 12 * 10;
    f->c.report.fn = collect;
    f->c.report.arg = &f->rep;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    plog_log_close(f->l);
    simfs_uninstall();
    plog_test_rmrf(f->dir);
    free(f);
    return 0;
}

/* A crash during a roll under NEVER: the next segment's (empty) files are on
 * disk, the end of the previous one is not. Offsets go on after the last
 * record that survived, with no hole. */
static void test_durability_an_empty_segment_after_a_torn_tail_is_dropped(void **state)
{
    struct fixture *f = *state;
    assert_plog_ok(plog_log_open(f->dir, &f->c, &f->l));
    for (uint64_t i = 0; i < 10; i++)
        testrec_append(f->l, i); /* fills segment 0; the log rolls to 10 */
    assert_plog_ok(plog_log_close(f->l));
    f->l = NULL;
    char p[256];
    testrec_seg_path(p, sizeof p, f->dir, 10, ".store");
    assert_int_equal(testrec_file_size(p), 0);
    testrec_seg_path(p, sizeof p, f->dir, 0, ".store");
    testrec_truncate(p, testrec_file_size(p) - 5); /* record 9 torn */
    assert_plog_ok(plog_log_open(f->dir, &f->c, &f->l));
    assert_int_equal(plog_log_next_offset(f->l), 9);
    for (uint64_t i = 0; i < 9; i++)
        testrec_assert_read(f->l, i);
    testrec_append(f->l, 9);
    testrec_assert_read(f->l, 9);
    testrec_seg_path(p, sizeof p, f->dir, 10, ".store");
    assert_int_equal(testrec_file_size(p), 0); /* the roll made it again */
    assert_true(f->rep.n[PLOG_LOG_REPORT_WARN] >= 1);
}

/* An index whose middle was zeroed (a power loss while it was being written)
 * but whose ends are right: it is rebuilt, and no read serves another
 * record. */
static void test_durability_a_zeroed_index_middle_never_serves_a_wrong_record(void **state)
{
    struct fixture *f = *state;
    f->c.segment.max_index_bytes = 12 * 1000;
    assert_plog_ok(plog_log_open(f->dir, &f->c, &f->l));
    for (uint64_t i = 0; i < 50; i++)
        testrec_append(f->l, i);
    assert_plog_ok(plog_log_close(f->l));
    f->l = NULL;
    char p[256];
    testrec_seg_path(p, sizeof p, f->dir, 0, ".index");
    int fd = open(p, O_WRONLY);
    uint8_t zero[12 * 20] = {0};
    assert_int_equal(pwrite(fd, zero, sizeof zero, 12 * 10), (ssize_t)sizeof zero);
    close(fd);
    assert_plog_ok(plog_log_open(f->dir, &f->c, &f->l));
    for (uint64_t i = 0; i < 50; i++)
        testrec_assert_read(f->l, i);
    plog_log_batch b = {0};
    assert_plog_ok(plog_log_read_batch(f->l, 5, 40, 1 << 20, &b));
    for (size_t i = 0; i < b.n; i++)
        assert_true(testrec_check(5 + i, b.rec[i], b.len[i]));
    plog_log_batch_fini(&b);
}

/* After a failed fsync the log refuses appends (with the cause), still
 * serves reads, and a reopen brings it back. */
static void test_durability_a_failed_fsync_fails_the_log_until_reopen(void **state)
{
    struct fixture *f = *state;
    f->c.sync = PLOG_SYNC_ALWAYS;
    simfs_install();
    assert_plog_ok(plog_log_open(f->dir, &f->c, &f->l));
    testrec_append(f->l, 0);
    simfs_fail_at(1, SIMFS_SYNC, EIO);
    uint8_t v[256];
    Log__V1__Record r = LOG__V1__RECORD__INIT;
    r.value.data = v;
    r.value.len = testrec_value(1, v);
    uint64_t off;
    int rv = plog_log_append(f->l, &r, &off);
    assert_int_equal(rv, PLOG_EFAILED);
    assert_true(simfs_fired());
    char cause[256], msg[256];
    assert_true(plog_log_failed(f->l, cause, sizeof cause));
    assert_non_null(strstr(cause, "Input/output error"));
    assert_int_equal(f->rep.n[PLOG_LOG_REPORT_ERROR], 1);
    /* The fault is gone, the refusal stays. */
    r.value.len = testrec_value(plog_log_next_offset(f->l), v);
    assert_plog_err(plog_log_append(f->l, &r, &off), PLOG_EFAILED);
    plog_log_errmsg(f->l, msg, sizeof msg);
    assert_non_null(strstr(msg, "log failed; restart to recover"));
    assert_non_null(strstr(msg, "Input/output error"));
    testrec_assert_read(f->l, 0);
    plog_log_close(f->l);
    f->l = NULL;
    assert_plog_ok(plog_log_open(f->dir, &f->c, &f->l));
    assert_false(plog_log_failed(f->l, NULL, 0));
    uint64_t next = plog_log_next_offset(f->l);
    testrec_append(f->l, next);
    testrec_assert_read(f->l, 0);
}

/* Under INTERVAL a committer waiting when the group fsync fails gets the
 * failure, not a hang. */
static void test_durability_a_failed_group_fsync_wakes_its_committers(void **state)
{
    struct fixture *f = *state;
    f->c.sync = PLOG_SYNC_INTERVAL;
    f->c.sync_interval_ms = 2;
    simfs_install();
    assert_plog_ok(plog_log_open(f->dir, &f->c, &f->l));
    simfs_fail_at(1, SIMFS_SYNC, EIO);
    uint8_t v[256];
    Log__V1__Record r = LOG__V1__RECORD__INIT;
    r.value.data = v;
    r.value.len = testrec_value(0, v);
    uint64_t off;
    assert_plog_ok(plog_log_append(f->l, &r, &off));
    assert_plog_err(plog_log_commit(f->l, off), PLOG_EFAILED);
    assert_true(plog_log_failed(f->l, NULL, 0));
}

/* Under INTERVAL a waiting commit does not wait for the tick: with a 30 s
 * interval, commits still return at once (an fsync or two each). */
static void test_durability_a_waiting_commit_does_not_wait_for_the_interval(void **state)
{
    struct fixture *f = *state;
    f->c.sync = PLOG_SYNC_INTERVAL;
    f->c.sync_interval_ms = 30000;
    assert_plog_ok(plog_log_open(f->dir, &f->c, &f->l));
    int64_t t0 = plog_test_now_ms();
    for (uint64_t i = 0; i < 5; i++) {
        testrec_append(f->l, i);
        assert_plog_ok(plog_log_commit(f->l, i));
    }
    /* Generous: five ticks would take 150 s. */
    assert_true(plog_test_now_ms() - t0 < 10000);
}

/* Under INTERVAL no commit returns before an fsync covered its record: four
 * threads append and commit while the power goes at a point of the run (the
 * background fsync is 60 s away, so only the commits' own fsyncs make
 * anything durable); after the cut every record whose commit returned is on
 * the disk with its value. A commit that answered before the fsync, or an
 * fsync that did not cover everything appended before it started, loses one. */
#define CUT_THREADS 4
#define CUT_RECORDS 40

struct cut_worker {
    plog_log *l;
    int t;
    size_t nacked;
    uint64_t acked[CUT_RECORDS]; /* offsets whose commit returned */
};

static void cut_value(int t, size_t j, uint8_t v[8])
{
    uint64_t key = testrec_mix((uint64_t)t * 1000 + j);
    memcpy(v, &key, 8);
}

static void *cut_work(void *arg)
{
    struct cut_worker *w = arg;
    for (size_t j = 0; j < CUT_RECORDS; j++) {
        uint8_t v[8];
        cut_value(w->t, j, v);
        Log__V1__Record r = LOG__V1__RECORD__INIT;
        r.value.data = v;
        r.value.len = sizeof v;
        uint64_t off;
        if (plog_log_append(w->l, &r, &off) != PLOG_OK || plog_log_commit(w->l, off) != PLOG_OK)
            break;                   /* the power went */
        w->acked[w->nacked++] = off; /* j == nacked - 1 */
    }
    return NULL;
}

static void test_durability_an_interval_commit_never_returns_before_its_fsync(void **state)
{
    struct fixture *f = *state;
    f->c.sync = PLOG_SYNC_INTERVAL;
    f->c.sync_interval_ms = 60000;
    simfs_install();
    size_t total_acked = 0;
    for (uint64_t k = 25; k < 2000; k += 97) {
        plog_test_rmrf(f->dir);
        assert_int_equal(mkdir(f->dir, 0755), 0);
        assert_int_equal(simfs_start(f->dir, k), 0);
        simfs_cut_at(k);
        struct cut_worker w[CUT_THREADS];
        if (plog_log_open(f->dir, &f->c, &f->l) == PLOG_OK) {
            pthread_t th[CUT_THREADS];
            for (int t = 0; t < CUT_THREADS; t++) {
                w[t] = (struct cut_worker){.l = f->l, .t = t};
                assert_int_equal(pthread_create(&th[t], NULL, cut_work, &w[t]), 0);
            }
            for (int t = 0; t < CUT_THREADS; t++)
                pthread_join(th[t], NULL);
            plog_log_close(f->l);
        } else {
            memset(w, 0, sizeof w);
        }
        f->l = NULL;
        assert_int_equal(simfs_finish(), 0);
        plog_log_config c = f->c;
        c.sync = PLOG_SYNC_ALWAYS;
        assert_plog_ok(plog_log_open(f->dir, &c, &f->l));
        for (int t = 0; t < CUT_THREADS; t++) {
            for (size_t j = 0; j < w[t].nacked; j++) {
                Log__V1__Record *r;
                int rv = plog_log_read(f->l, w[t].acked[j], &r);
                if (rv != PLOG_OK)
                    fail_msg("cut %" PRIu64 ": acknowledged offset %" PRIu64 " lost: %s", k, w[t].acked[j],
                             plog_strerror(rv));
                uint8_t v[8];
                cut_value(t, j, v);
                assert_int_equal(r->value.len, sizeof v);
                assert_memory_equal(r->value.data, v, sizeof v);
                log__v1__record__free_unpacked(r, NULL);
            }
            total_acked += w[t].nacked;
        }
        plog_log_close(f->l);
        f->l = NULL;
    }
    /* Cuts late enough for commits to have returned: the check saw some. */
    assert_true(total_acked > 0);
}

/* Under INTERVAL the background thread still fsyncs records nobody commits,
 * within sync_interval_ms: after one committed record (the files and the
 * directory are durable then), five records appended and never committed,
 * still in the store's buffer, are all on the disk when the power goes a
 * second (fifty intervals) later. */
static void test_durability_interval_fsyncs_records_nobody_commits(void **state)
{
    struct fixture *f = *state;
    f->c.sync = PLOG_SYNC_INTERVAL;
    f->c.sync_interval_ms = 20;
    simfs_install();
    assert_int_equal(simfs_start(f->dir, 1), 0);
    assert_plog_ok(plog_log_open(f->dir, &f->c, &f->l));
    testrec_append(f->l, 0);
    assert_plog_ok(plog_log_commit(f->l, 0));
    for (uint64_t i = 1; i < 6; i++) /* fewer than a segment holds: no roll writes them */
        testrec_append(f->l, i);
    plog_test_sleep_ms(1000);
    simfs_cut_at(1);
    plog_log_close(f->l); /* fails: the disk is gone */
    f->l = NULL;
    assert_int_equal(simfs_finish(), 0);
    plog_log_config c = f->c;
    c.sync = PLOG_SYNC_ALWAYS;
    assert_plog_ok(plog_log_open(f->dir, &c, &f->l));
    assert_int_equal(plog_log_next_offset(f->l), 6);
    for (uint64_t i = 0; i < 6; i++)
        testrec_assert_read(f->l, i);
}

/* Recovery warnings go to the report callback, not to stderr. */
static void test_durability_recovery_reports_through_the_callback(void **state)
{
    struct fixture *f = *state;
    assert_plog_ok(plog_log_open(f->dir, &f->c, &f->l));
    for (uint64_t i = 0; i < 5; i++)
        testrec_append(f->l, i);
    assert_plog_ok(plog_log_close(f->l));
    f->l = NULL;
    char p[256];
    testrec_seg_path(p, sizeof p, f->dir, 0, ".store");
    testrec_truncate(p, testrec_file_size(p) - 3);
    assert_plog_ok(plog_log_open(f->dir, &f->c, &f->l));
    /* The torn bytes cut, then the record lost with them. */
    assert_int_equal(f->rep.n[PLOG_LOG_REPORT_WARN], 2);
    assert_non_null(strstr(f->rep.all, "msg=\"truncated torn tail\""));
    assert_non_null(strstr(f->rep.last, "msg=\"index lists records the store lacks\""));
    assert_non_null(strstr(f->rep.last, p));
    assert_non_null(strstr(f->rep.last, "indexed=5 stored=4"));
}

/* A batch that cannot be completed leaves nothing, even when it rolled into
 * a new segment before it failed. */
static void test_durability_a_failed_batch_leaves_no_record(void **state)
{
    struct fixture *f = *state;
    f->c.segment.max_index_bytes = 12 * 4;
    assert_plog_ok(plog_log_open(f->dir, &f->c, &f->l));
    testrec_append(f->l, 0);
    /* A batch of 8 that rolls twice, whose fallocate fails on the second roll
     * and stays failing (a full disk). */
    simfs_install();
    simfs_fail_from(2, SIMFS_FALLOCATE, ENOSPC);
    static uint8_t v[8][256];
    Log__V1__Record rec[8], *p[8];
    for (int i = 0; i < 8; i++) {
        rec[i] = (Log__V1__Record)LOG__V1__RECORD__INIT;
        rec[i].value.data = v[i];
        rec[i].value.len = testrec_value(1 + (uint64_t)i, v[i]);
        p[i] = &rec[i];
    }
    uint64_t first;
    assert_int_not_equal(plog_log_append_batch(f->l, p, 8, &first), PLOG_OK);
    assert_true(simfs_fired());
    assert_int_equal(plog_log_next_offset(f->l), 1);
    assert_plog_err(plog_log_read_raw(f->l, 1, &(uint8_t *){0}, &(size_t){0}), PLOG_ERANGE);
    simfs_fail_at(0, 0, 0);
    plog_log_close(f->l);
    f->l = NULL;
    assert_plog_ok(plog_log_open(f->dir, &f->c, &f->l));
    assert_int_equal(plog_log_next_offset(f->l), 1);
    testrec_assert_read(f->l, 0);
}

/* A disk that fills up: the appends whose flush failed were never acknowledged,
 * and the close drops them from the index and the store (saying so) instead of
 * leaving index entries without frames. The next open finds a clean log and
 * reports no damage, and the records that reached the file are all there. */
static void test_durability_a_full_disk_at_close_leaves_no_false_damage(void **state)
{
    struct fixture *f = *state;
    f->c.sync = PLOG_SYNC_NEVER; /* commit = the flush to the kernel */
    assert_plog_ok(plog_log_open(f->dir, &f->c, &f->l));
    for (uint64_t i = 0; i < 5; i++)
        testrec_append(f->l, i);
    assert_plog_ok(plog_log_commit(f->l, 4));
    simfs_install();
    simfs_fail_from(1, SIMFS_WRITE, ENOSPC);
    for (uint64_t i = 5; i < 8; i++)
        testrec_append(f->l, i); /* buffered */
    assert_int_not_equal(plog_log_commit(f->l, 7), PLOG_OK);
    assert_true(simfs_fired());
    plog_log_close(f->l); /* the writes still fail */
    f->l = NULL;
    if (f->rep.n[PLOG_LOG_REPORT_WARN] != 1 ||
        strstr(f->rep.all, "msg=\"dropped records never written\"") == NULL ||
        strstr(f->rep.all, "records=3 err=\"write ") == NULL)
        fail_msg("close reported: %s", f->rep.all);
    simfs_fail_at(0, 0, 0);
    memset(&f->rep, 0, sizeof f->rep);
    assert_plog_ok(plog_log_open(f->dir, &f->c, &f->l));
    if (f->rep.n[PLOG_LOG_REPORT_WARN] != 0 || f->rep.n[PLOG_LOG_REPORT_ERROR] != 0)
        fail_msg("the reopen reported damage: %s", f->rep.all);
    assert_int_equal(plog_log_next_offset(f->l), 5);
    for (uint64_t i = 0; i < 5; i++)
        testrec_assert_read(f->l, i);
}

/* The directories open creates are durable names only once their parents are
 * fsynced; the fsync of the log's own directory covers the segment files in
 * it, not its name in its parent. A layer under the I/O seam records which
 * directories are fsynced. */
static struct stat synced_dirs[8];
static int nsynced_dirs;

static int fsync_recording(int fd)
{
    struct stat st;
    if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode) && nsynced_dirs < 8)
        synced_dirs[nsynced_dirs++] = st;
    return plog_io_real()->fsync(fd);
}

static bool dir_synced(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    for (int i = 0; i < nsynced_dirs; i++)
        if (synced_dirs[i].st_dev == st.st_dev && synced_dirs[i].st_ino == st.st_ino)
            return true;
    return false;
}

static void test_durability_open_fsyncs_the_parents_of_the_directories_it_creates(void **state)
{
    struct fixture *f = *state;
    char a[128], b[160];
    snprintf(a, sizeof a, "%s/a", f->dir);
    snprintf(b, sizeof b, "%s/b", a); /* neither exists */
    plog_io io = *plog_io_real();
    io.fsync = fsync_recording;
    nsynced_dirs = 0;
    plog_io_set(&io);
    f->c.sync = PLOG_SYNC_ALWAYS;
    int rv = plog_log_open(b, &f->c, &f->l);
    if (rv == PLOG_OK)
        testrec_append(f->l, 0); /* acknowledged: every name above it must be on disk */
    plog_io_set(NULL);
    assert_plog_ok(rv);
    assert_true(dir_synced(b));
    assert_true(dir_synced(a));      /* holds the name b */
    assert_true(dir_synced(f->dir)); /* holds the name a */
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_durability_an_empty_segment_after_a_torn_tail_is_dropped),
        T(test_durability_a_zeroed_index_middle_never_serves_a_wrong_record),
        T(test_durability_a_failed_fsync_fails_the_log_until_reopen),
        T(test_durability_a_failed_group_fsync_wakes_its_committers),
        T(test_durability_a_waiting_commit_does_not_wait_for_the_interval),
        T(test_durability_an_interval_commit_never_returns_before_its_fsync),
        T(test_durability_interval_fsyncs_records_nobody_commits),
        T(test_durability_recovery_reports_through_the_callback),
        T(test_durability_a_failed_batch_leaves_no_record),
        T(test_durability_a_full_disk_at_close_leaves_no_false_damage),
        T(test_durability_open_fsyncs_the_parents_of_the_directories_it_creates),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
