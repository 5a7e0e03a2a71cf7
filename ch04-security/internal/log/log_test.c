/* log_test.c - tests of log.c (Go: log_test.go). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "internal/log/log.h"
#include "internal/log/store.h"
#include "internal/log/testrec.h"

struct fixture {
    char dir[64];
    plog_log_config c;
    plog_log *l;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    plog_test_tmpdir("log", f->dir, sizeof f->dir);
    /* Go: log_test.go TestLog, c.Segment.MaxStoreBytes = 32, but our frames are
     * larger than the book's, so a few records per segment. */
    f->c.segment.max_store_bytes = 1024;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    plog_log_close(f->l);
    plog_test_rmrf(f->dir);
    free(f);
    return 0;
}

static void open_log(struct fixture *f)
{
    assert_plog_ok(plog_log_open(f->dir, &f->c, &f->l));
}

static void reopen_log(struct fixture *f)
{
    assert_plog_ok(plog_log_close(f->l));
    f->l = NULL;
    open_log(f);
}

static size_t count_segments(const char *dir)
{
    char cmd[256];
    char *out = NULL;
    snprintf(cmd, sizeof cmd, "ls %s | grep -c '\\.store$'", dir);
    plog_test_sh(cmd, 5000, &out);
    size_t n = (size_t)strtoul(out, NULL, 10);
    free(out);
    return n;
}

/* Go: log_test.go testAppendRead */
static void test_log_append_then_read_returns_the_record(void **state)
{
    struct fixture *f = *state;
    open_log(f);
    Log__V1__Record r = LOG__V1__RECORD__INIT;
    r.value.data = (uint8_t *)"hello world";
    r.value.len = 11;
    uint64_t off = 99;
    assert_plog_ok(plog_log_append(f->l, &r, &off));
    assert_int_equal(off, 0);
    assert_int_equal(r.offset, 0);
    Log__V1__Record *got;
    assert_plog_ok(plog_log_read(f->l, off, &got));
    assert_int_equal(got->value.len, 11);
    assert_memory_equal(got->value.data, "hello world", 11);
    assert_int_equal(got->offset, 0);
    log__v1__record__free_unpacked(got, NULL);
}

/* Go: log_test.go testOutOfRangeErr */
static void test_log_read_past_the_end_returns_out_of_range_naming_the_offset(void **state)
{
    struct fixture *f = *state;
    open_log(f);
    Log__V1__Record *got;
    assert_plog_err(plog_log_read(f->l, 1, &got), PLOG_ERANGE);
    char msg[PLOG_ERRMSG_SIZE];
    plog_log_errmsg(f->l, msg, sizeof msg);
    assert_non_null(strstr(msg, "offset 1 "));
    testrec_append(f->l, 0);
    assert_plog_err(plog_log_read(f->l, 1, &got), PLOG_ERANGE);
    plog_log_batch b = {0};
    assert_plog_err(plog_log_read_batch(f->l, 1, 10, 1000, &b), PLOG_ERANGE);
    plog_log_batch_fini(&b);
}

/* Go: log_test.go testInitExisting */
static void test_log_open_over_existing_segments_restores_offsets(void **state)
{
    struct fixture *f = *state;
    open_log(f);
    for (uint64_t i = 0; i < 30; i++)
        testrec_append(f->l, i);
    assert_true(count_segments(f->dir) > 1);
    reopen_log(f);
    assert_int_equal(plog_log_lowest_offset(f->l), 0);
    uint64_t hi;
    assert_plog_ok(plog_log_highest_offset(f->l, &hi));
    assert_int_equal(hi, 29);
    for (uint64_t i = 0; i < 30; i++)
        testrec_assert_read(f->l, i);
    testrec_append(f->l, 30);
}

/* Go: log_test.go testReader */
static void test_log_reader_streams_every_frame_of_every_segment(void **state)
{
    struct fixture *f = *state;
    open_log(f);
    for (uint64_t i = 0; i < 30; i++)
        testrec_append(f->l, i);
    plog_log_reader *r;
    assert_plog_ok(plog_log_reader_open(f->l, &r));
    size_t cap = 1 << 16, len = 0, n;
    uint8_t *all = malloc(cap);
    /* Small reads on purpose, so they straddle frames and segments. */
    while (plog_log_reader_read(r, all + len, 37 < cap - len ? 37 : cap - len, &n) == PLOG_OK)
        len += n;
    plog_log_reader_close(r);
    size_t p = 0;
    uint64_t off = 0;
    while (p < len) {
        size_t l;
        assert_plog_ok(plog_store_frame_check(all + p, len - p, &l));
        assert_true(testrec_check(off, all + p + PLOG_STORE_HDR, l));
        p += PLOG_STORE_HDR + l;
        off++;
    }
    assert_int_equal(off, 30);
    free(all);
}

/* Go: log_test.go testTruncate */
static void test_log_truncate_removes_segments_entirely_below_lowest(void **state)
{
    struct fixture *f = *state;
    open_log(f);
    for (uint64_t i = 0; i < 30; i++)
        testrec_append(f->l, i);
    size_t before = count_segments(f->dir);
    assert_plog_ok(plog_log_truncate(f->l, 12));
    uint64_t lo = plog_log_lowest_offset(f->l);
    assert_true(lo > 0 && lo <= 12);
    assert_true(count_segments(f->dir) < before);
    Log__V1__Record *got;
    assert_plog_err(plog_log_read(f->l, 0, &got), PLOG_ERANGE);
    for (uint64_t i = lo; i < 30; i++)
        testrec_assert_read(f->l, i);
    testrec_append(f->l, 30);
}

static void test_log_truncate_past_the_end_keeps_the_next_offset(void **state)
{
    struct fixture *f = *state;
    open_log(f);
    for (uint64_t i = 0; i < 30; i++)
        testrec_append(f->l, i);
    assert_plog_ok(plog_log_truncate(f->l, 100));
    assert_int_equal(plog_log_lowest_offset(f->l), 30);
    assert_int_equal(plog_log_next_offset(f->l), 30);
    uint64_t hi;
    assert_plog_err(plog_log_highest_offset(f->l, &hi), PLOG_ERANGE);
    testrec_append(f->l, 30);
    reopen_log(f);
    assert_int_equal(plog_log_lowest_offset(f->l), 30);
    testrec_assert_read(f->l, 30);
}

static void test_log_rolls_to_a_new_segment_at_the_index_limit(void **state)
{
    struct fixture *f = *state;
    f->c.segment.max_store_bytes = 1 << 20;
    f->c.segment.max_index_bytes = 5 * 12;
    open_log(f);
    for (uint64_t i = 0; i < 12; i++)
        testrec_append(f->l, i);
    /* 0-4, 5-9, 10-11 (+ nothing more: the third is not full). */
    assert_int_equal(count_segments(f->dir), 3);
    char p[256];
    testrec_seg_path(p, sizeof p, f->dir, 5, ".index");
    assert_int_equal(testrec_file_size(p), 5 * 12); /* sealed: cut to size */
    for (uint64_t i = 0; i < 12; i++)
        testrec_assert_read(f->l, i);
}

static void test_log_highest_offset_of_an_empty_log_is_out_of_range(void **state)
{
    struct fixture *f = *state;
    open_log(f);
    uint64_t hi = 7;
    assert_plog_err(plog_log_highest_offset(f->l, &hi), PLOG_ERANGE);
    assert_int_equal(hi, 7);
    assert_int_equal(plog_log_lowest_offset(f->l), plog_log_next_offset(f->l));
}

static void test_log_initial_offset_is_the_first_offset_of_a_new_log(void **state)
{
    struct fixture *f = *state;
    f->c.segment.initial_offset = 1000;
    open_log(f);
    testrec_append(f->l, 1000);
    assert_int_equal(plog_log_lowest_offset(f->l), 1000);
    char p[256];
    testrec_seg_path(p, sizeof p, f->dir, 1000, ".store");
    assert_int_equal(access(p, F_OK), 0);
}

/* The last offset is 2^64-2: an append past it is refused with PLOG_EFULL,
 * whole batches included, and leaves what is stored intact; the records at the
 * top of the range, in segments with bases past 2^63, survive a reopen. (They
 * used to get offset 2^64-1 and then 0, and a reopen found an empty log.) */
static void test_log_append_past_the_last_offset_is_refused_and_keeps_the_log(void **state)
{
    struct fixture *f = *state;
    const uint64_t last = UINT64_MAX - 1;
    f->c.segment.initial_offset = last - 2;
    f->c.segment.max_index_bytes = 2 * 12; /* two records per segment */
    open_log(f);
    testrec_append(f->l, last - 2);
    testrec_append(f->l, last - 1);
    uint8_t v[3][256];
    Log__V1__Record r[3], *rp[3];
    for (int i = 0; i < 3; i++) {
        log__v1__record__init(&r[i]);
        r[i].value.len = testrec_value(last + (uint64_t)i, v[i]);
        r[i].value.data = v[i];
        rp[i] = &r[i];
    }
    uint64_t first = 7;
    assert_plog_err(plog_log_append_batch(f->l, rp, 2, &first), PLOG_EFULL);
    assert_int_equal(first, 7);
    char msg[256];
    plog_log_errmsg(f->l, msg, sizeof msg);
    assert_non_null(strstr(msg, "log is full: offsets end at 2^64-2: 2 record(s) at offset"));
    assert_int_equal(plog_log_next_offset(f->l), last);
    testrec_append(f->l, last);
    assert_plog_err(plog_log_append(f->l, rp[1], &first), PLOG_EFULL);
    assert_false(plog_log_failed(f->l, NULL, 0));
    assert_int_equal(plog_log_next_offset(f->l), UINT64_MAX);
    assert_plog_ok(plog_log_commit(f->l, last));
    f->c.segment.initial_offset = 0; /* a reopen finds its segments by name */
    reopen_log(f);
    assert_int_equal(plog_log_lowest_offset(f->l), last - 2);
    assert_int_equal(plog_log_next_offset(f->l), UINT64_MAX);
    for (uint64_t o = last - 2; o <= last; o++)
        testrec_assert_read(f->l, o);
    assert_plog_err(plog_log_append(f->l, rp[1], &first), PLOG_EFULL);
    assert_int_equal(count_segments(f->dir), 2);
}

static void test_log_read_batch_returns_consecutive_records_across_segments(void **state)
{
    struct fixture *f = *state;
    open_log(f);
    for (uint64_t i = 0; i < 100; i++)
        testrec_append(f->l, i);
    plog_log_batch b = {0};
    uint64_t off = 0;
    while (off < 100) {
        assert_plog_ok(plog_log_read_batch(f->l, off, 16, 1 << 20, &b));
        assert_int_equal(b.first, off);
        assert_true(b.n >= 1 && b.n <= 16);
        for (size_t i = 0; i < b.n; i++)
            assert_true(testrec_check(off + i, b.rec[i], b.len[i]));
        off += b.n;
    }
    plog_log_batch_fini(&b);
}

static void test_log_read_batch_stops_at_max_bytes_but_returns_one_record(void **state)
{
    struct fixture *f = *state;
    f->c.segment.max_store_bytes = 1 << 20;
    open_log(f);
    for (uint64_t i = 0; i < 10; i++)
        testrec_append(f->l, i);
    plog_log_batch b = {0};
    assert_plog_ok(plog_log_read_batch(f->l, 0, 10, 1, &b));
    assert_int_equal(b.n, 1);
    size_t budget = 0;
    for (uint64_t i = 0; i < 3; i++) {
        uint8_t *buf;
        size_t n;
        assert_plog_ok(plog_log_read_raw(f->l, i, &buf, &n));
        budget += n;
        free(buf);
    }
    assert_plog_ok(plog_log_read_batch(f->l, 0, 10, budget, &b));
    assert_int_equal(b.n, 3);
    plog_log_batch_fini(&b);
}

static void test_log_append_batch_gives_contiguous_offsets(void **state)
{
    struct fixture *f = *state;
    open_log(f);
    testrec_append(f->l, 0);
    uint8_t v[20][256];
    Log__V1__Record r[20], *rp[20];
    for (int i = 0; i < 20; i++) {
        log__v1__record__init(&r[i]);
        r[i].value.len = testrec_value(1 + (uint64_t)i, v[i]);
        r[i].value.data = v[i];
        rp[i] = &r[i];
    }
    uint64_t first;
    assert_plog_ok(plog_log_append_batch(f->l, rp, 20, &first));
    assert_int_equal(first, 1);
    for (uint64_t i = 0; i < 21; i++)
        testrec_assert_read(f->l, i);
}

static void test_log_reset_starts_empty_at_the_initial_offset(void **state)
{
    struct fixture *f = *state;
    f->c.segment.initial_offset = 5;
    open_log(f);
    for (uint64_t i = 5; i < 40; i++)
        testrec_append(f->l, i);
    assert_plog_ok(plog_log_reset(f->l));
    assert_int_equal(plog_log_lowest_offset(f->l), 5);
    assert_int_equal(plog_log_next_offset(f->l), 5);
    assert_int_equal(count_segments(f->dir), 1);
    testrec_append(f->l, 5);
    testrec_assert_read(f->l, 5);
}

static void test_log_remove_deletes_the_directory(void **state)
{
    struct fixture *f = *state;
    open_log(f);
    for (uint64_t i = 0; i < 40; i++)
        testrec_append(f->l, i);
    assert_plog_ok(plog_log_remove(f->l));
    f->l = NULL;
    assert_int_equal(access(f->dir, F_OK), -1);
}

static void check_policy(struct fixture *f, plog_sync_policy p)
{
    f->c.sync = p;
    f->c.sync_interval_ms = 2;
    open_log(f);
    for (uint64_t i = 0; i < 40; i++) {
        testrec_append(f->l, i);
        assert_plog_ok(plog_log_commit(f->l, i));
        testrec_assert_read(f->l, i);
    }
    assert_plog_ok(plog_log_sync(f->l));
    reopen_log(f);
    for (uint64_t i = 0; i < 40; i++)
        testrec_assert_read(f->l, i);
}

static void test_log_sync_always_appends_are_readable_and_survive_reopen(void **state)
{
    check_policy(*state, PLOG_SYNC_ALWAYS);
}

static void test_log_sync_interval_commit_returns_and_records_survive_reopen(void **state)
{
    check_policy(*state, PLOG_SYNC_INTERVAL);
}

static void test_log_sync_never_commit_writes_records_to_the_file(void **state)
{
    struct fixture *f = *state;
    f->c.segment.max_store_bytes = 1 << 20;
    open_log(f);
    testrec_append(f->l, 0);
    char p[256];
    testrec_seg_path(p, sizeof p, f->dir, 0, ".store");
    assert_int_equal(testrec_file_size(p), 0); /* buffered */
    assert_plog_ok(plog_log_commit(f->l, 0));
    assert_true(testrec_file_size(p) > 0);
}

static void test_log_commit_of_an_offset_not_appended_is_out_of_range(void **state)
{
    struct fixture *f = *state;
    f->c.sync = PLOG_SYNC_INTERVAL;
    open_log(f);
    /* Waiting for it would never end. */
    assert_plog_err(plog_log_commit(f->l, 0), PLOG_ERANGE);
    testrec_append(f->l, 0);
    assert_plog_ok(plog_log_commit(f->l, 0));
}

#define SAID_SIZE 512

/* keep_report keeps the last line the log reports (arg: char[SAID_SIZE]). */
static void keep_report(void *arg, int level, const char *msg)
{
    (void)level;
    snprintf(arg, SAID_SIZE, "%s", msg);
}

static off_t file_size(const char *dir, const char *name)
{
    char path[256];
    struct stat st;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    assert_int_equal(stat(path, &st), 0);
    return st.st_size;
}

/* A second proglog on the same data directory used to recover the files under
 * the running one: its close cut the live, mmap'd index to its entry count, and
 * the first log died of SIGBUS at a later append. */
static void test_log_open_of_a_directory_in_use_fails_and_leaves_the_first_log_working(void **state)
{
    struct fixture *f = *state;
    open_log(f);
    testrec_append(f->l, 0);
    const char *index = "00000000000000000000.index";
    off_t before = file_size(f->dir, index);
    char said[SAID_SIZE] = "";
    plog_log_config c = f->c;
    c.report.fn = keep_report;
    c.report.arg = said;
    plog_log *second = NULL;
    assert_plog_err(plog_log_open(f->dir, &c, &second), PLOG_EIO);
    assert_null(second);
    char want[128];
    snprintf(want, sizeof want, "data directory %s is in use by another process", f->dir);
    if (strstr(said, want) == NULL)
        fail_msg("reported: %s", said);
    /* Nothing was touched: the index keeps its preallocated size. */
    assert_int_equal(file_size(f->dir, index), before);
    for (uint64_t i = 1; i < 30; i++)
        testrec_append(f->l, i);
    for (uint64_t i = 0; i < 30; i++)
        testrec_assert_read(f->l, i);
    /* Closed, the directory is free again. */
    reopen_log(f);
    testrec_assert_read(f->l, 29);
}

static void test_log_close_of_null_does_nothing(void **state)
{
    (void)state;
    assert_plog_ok(plog_log_close(NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
        T(test_log_append_then_read_returns_the_record),
        T(test_log_read_past_the_end_returns_out_of_range_naming_the_offset),
        T(test_log_open_over_existing_segments_restores_offsets),
        T(test_log_reader_streams_every_frame_of_every_segment),
        T(test_log_truncate_removes_segments_entirely_below_lowest),
        T(test_log_truncate_past_the_end_keeps_the_next_offset),
        T(test_log_rolls_to_a_new_segment_at_the_index_limit),
        T(test_log_highest_offset_of_an_empty_log_is_out_of_range),
        T(test_log_initial_offset_is_the_first_offset_of_a_new_log),
        T(test_log_append_past_the_last_offset_is_refused_and_keeps_the_log),
        T(test_log_read_batch_returns_consecutive_records_across_segments),
        T(test_log_read_batch_stops_at_max_bytes_but_returns_one_record),
        T(test_log_append_batch_gives_contiguous_offsets),
        T(test_log_reset_starts_empty_at_the_initial_offset),
        T(test_log_remove_deletes_the_directory),
        T(test_log_sync_always_appends_are_readable_and_survive_reopen),
        T(test_log_sync_interval_commit_returns_and_records_survive_reopen),
        T(test_log_sync_never_commit_writes_records_to_the_file),
        T(test_log_commit_of_an_offset_not_appended_is_out_of_range),
        T(test_log_open_of_a_directory_in_use_fails_and_leaves_the_first_log_working),
        T(test_log_close_of_null_does_nothing),
#undef T
    };
    return cmocka_run_group_tests_name("log", tests, NULL, NULL);
}
