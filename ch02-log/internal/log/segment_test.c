/* segment_test.c - tests of segment.c (Go: segment_test.go). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "internal/log/segment.h"
#include "internal/log/testrec.h"

struct fixture {
    char dir[64];
    plog_log_config c;
    plog_segment *seg;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    plog_test_tmpdir("segment", f->dir, sizeof f->dir);
    f->c.segment.max_store_bytes = 1024;
    f->c.segment.max_index_bytes = 3 * 12;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    plog_segment_close(f->seg, false);
    plog_test_rmrf(f->dir);
    free(f);
    return 0;
}

static void append_rec(plog_segment *seg, uint64_t want)
{
    uint8_t v[256];
    Log__V1__Record r = LOG__V1__RECORD__INIT;
    r.value.len = testrec_value(want, v);
    r.value.data = v;
    uint64_t off;
    assert_plog_ok(plog_segment_append(seg, &r, &off));
    assert_int_equal(off, want);
    assert_int_equal(r.offset, want);
}

static void read_rec(const plog_segment *seg, uint64_t off)
{
    uint8_t *b;
    size_t n;
    assert_plog_ok(plog_segment_read(seg, off, &b, &n, NULL, 0));
    assert_true(testrec_check(off, b, n));
    free(b);
}

/* Go: segment_test.go TestSegment (append, read, maxed by the index) */
static void test_segment_is_maxed_when_its_index_is_full(void **state)
{
    struct fixture *f = *state;
    assert_plog_ok(plog_segment_open(f->dir, 16, &f->c, PLOG_SEGMENT_ACTIVE, &f->seg, NULL, 0));
    assert_int_equal(plog_segment_next(f->seg), 16);
    assert_false(plog_segment_is_maxed(f->seg));
    for (uint64_t i = 0; i < 3; i++) {
        append_rec(f->seg, 16 + i);
        read_rec(f->seg, 16 + i);
    }
    assert_true(plog_segment_is_maxed(f->seg));
    Log__V1__Record r = LOG__V1__RECORD__INIT;
    uint64_t off;
    assert_plog_err(plog_segment_append(f->seg, &r, &off), PLOG_EOF);
}

/* Go: segment_test.go TestSegment (reopened with a small store: maxed by it) */
static void test_segment_is_maxed_when_its_store_is_full(void **state)
{
    struct fixture *f = *state;
    f->c.segment.max_index_bytes = 1024;
    assert_plog_ok(plog_segment_open(f->dir, 16, &f->c, PLOG_SEGMENT_ACTIVE, &f->seg, NULL, 0));
    uint64_t i = 16;
    while (!plog_segment_is_maxed(f->seg))
        append_rec(f->seg, i++);
    assert_true(plog_store_size(plog_segment_store(f->seg)) >= 1024);
    for (uint64_t o = 16; o < i; o++)
        read_rec(f->seg, o);
}

/* Go: segment_test.go TestSegment (newSegment over existing files) */
static void test_segment_reopen_continues_after_the_last_record(void **state)
{
    struct fixture *f = *state;
    f->c.segment.max_index_bytes = 1024;
    assert_plog_ok(plog_segment_open(f->dir, 16, &f->c, PLOG_SEGMENT_ACTIVE, &f->seg, NULL, 0));
    append_rec(f->seg, 16);
    append_rec(f->seg, 17);
    assert_plog_ok(plog_segment_close(f->seg, true));
    assert_plog_ok(plog_segment_open(f->dir, 16, &f->c, PLOG_SEGMENT_ACTIVE, &f->seg, NULL, 0));
    assert_int_equal(plog_segment_next(f->seg), 18);
    read_rec(f->seg, 16);
    read_rec(f->seg, 17);
    append_rec(f->seg, 18);
}

static void test_segment_files_are_named_by_20_digit_base_offset(void **state)
{
    struct fixture *f = *state;
    assert_plog_ok(plog_segment_open(f->dir, 16, &f->c, PLOG_SEGMENT_ACTIVE, &f->seg, NULL, 0));
    char p[256];
    snprintf(p, sizeof p, "%s/00000000000000000016.store", f->dir);
    assert_int_equal(access(p, F_OK), 0);
    snprintf(p, sizeof p, "%s/00000000000000000016.index", f->dir);
    assert_int_equal(access(p, F_OK), 0);
}

/* Go: segment_test.go TestSegment (Remove) */
static void test_segment_remove_deletes_both_files(void **state)
{
    struct fixture *f = *state;
    assert_plog_ok(plog_segment_open(f->dir, 0, &f->c, PLOG_SEGMENT_ACTIVE, &f->seg, NULL, 0));
    append_rec(f->seg, 0);
    assert_plog_ok(plog_segment_remove(f->seg));
    f->seg = NULL;
    char p[256];
    snprintf(p, sizeof p, "%s/00000000000000000000.store", f->dir);
    assert_int_equal(access(p, F_OK), -1);
    snprintf(p, sizeof p, "%s/00000000000000000000.index", f->dir);
    assert_int_equal(access(p, F_OK), -1);
}

static void test_segment_read_span_returns_consecutive_payloads(void **state)
{
    struct fixture *f = *state;
    f->c.segment.max_index_bytes = 1024;
    f->c.segment.max_store_bytes = 1 << 20;
    assert_plog_ok(plog_segment_open(f->dir, 5, &f->c, PLOG_SEGMENT_ACTIVE, &f->seg, NULL, 0));
    for (uint64_t i = 5; i < 25; i++)
        append_rec(f->seg, i);
    uint8_t *buf = NULL;
    size_t cap = 0, n, len[8];
    const uint8_t *rec[8];
    assert_plog_ok(plog_segment_read_span(f->seg, 7, 8, 1 << 20, &buf, &cap, rec, len, &n, NULL, 0));
    assert_int_equal(n, 8);
    for (size_t i = 0; i < n; i++)
        assert_true(testrec_check(7 + i, rec[i], len[i]));
    /* The tail: fewer than asked. */
    assert_plog_ok(plog_segment_read_span(f->seg, 22, 8, 1 << 20, &buf, &cap, rec, len, &n, NULL, 0));
    assert_int_equal(n, 3);
    /* max_bytes 1: still one record. */
    assert_plog_ok(plog_segment_read_span(f->seg, 9, 8, 1, &buf, &cap, rec, len, &n, NULL, 0));
    assert_int_equal(n, 1);
    assert_true(testrec_check(9, rec[0], len[0]));
    free(buf);
}

static void test_segment_sealed_open_cuts_index_to_its_records(void **state)
{
    struct fixture *f = *state;
    f->c.segment.max_index_bytes = 1200;
    assert_plog_ok(plog_segment_open(f->dir, 0, &f->c, PLOG_SEGMENT_ACTIVE, &f->seg, NULL, 0));
    for (uint64_t i = 0; i < 4; i++)
        append_rec(f->seg, i);
    assert_plog_ok(plog_segment_close(f->seg, false));
    assert_plog_ok(plog_segment_open(f->dir, 0, &f->c, 4, &f->seg, NULL, 0));
    char p[256];
    snprintf(p, sizeof p, "%s/00000000000000000000.index", f->dir);
    assert_int_equal(testrec_file_size(p), 4 * 12);
    assert_true(plog_segment_is_maxed(f->seg));
    for (uint64_t i = 0; i < 4; i++)
        read_rec(f->seg, i);
}

/* The hand-written encoder of segment.c must write what protobuf-c writes. */
static void test_segment_encodes_records_exactly_as_protobuf_c(void **state)
{
    struct fixture *f = *state;
    f->c.segment.max_index_bytes = 1200;
    f->c.segment.max_store_bytes = 1 << 20;
    /* Offsets 16382..16386 cross from 2- to 3-byte varints. */
    assert_plog_ok(plog_segment_open(f->dir, 16382, &f->c, PLOG_SEGMENT_ACTIVE, &f->seg, NULL, 0));
    static uint8_t big[300];
    size_t lens[] = {0, 1, 127, 128, 300};
    for (size_t i = 0; i < 5; i++) {
        Log__V1__Record r = LOG__V1__RECORD__INIT;
        r.value.data = big;
        r.value.len = lens[i];
        uint64_t off;
        assert_plog_ok(plog_segment_append(f->seg, &r, &off));
        uint8_t want[400], *got;
        size_t wn = log__v1__record__pack(&r, want), gn;
        assert_plog_ok(plog_segment_read(f->seg, off, &got, &gn, NULL, 0));
        assert_int_equal(gn, wn);
        assert_memory_equal(got, want, wn);
        free(got);
    }
}

static void count_warnings(void *arg, int level, const char *msg)
{
    (void)msg;
    if (level == PLOG_LOG_REPORT_WARN)
        ++*(int *)arg;
}

/* open_crash_image copies the files of f's segment 0, still open, to
 * <dir>/crash (what a crash leaves) and opens the copy as the active segment. */
static plog_segment *open_crash_image(struct fixture *f)
{
    char crash[128], src[256], dst[256];
    snprintf(crash, sizeof crash, "%s/crash", f->dir);
    assert_int_equal(mkdir(crash, 0755), 0);
    const char *ext[] = {".store", ".index"};
    for (int k = 0; k < 2; k++) {
        testrec_seg_path(src, sizeof src, f->dir, 0, ext[k]);
        testrec_seg_path(dst, sizeof dst, crash, 0, ext[k]);
        testrec_copy(src, dst);
    }
    plog_segment *seg;
    assert_plog_ok(plog_segment_open(crash, 0, &f->c, PLOG_SEGMENT_ACTIVE, &seg, NULL, 0));
    return seg;
}

/* fill_index opens f's segment with an index of five entries, counting warnings
 * in *warnings, and appends five records: the index is full. */
static void fill_index(struct fixture *f, int *warnings)
{
    f->c.segment.max_store_bytes = 1 << 20;
    f->c.segment.max_index_bytes = 5 * 12;
    f->c.report.fn = count_warnings;
    f->c.report.arg = warnings;
    assert_plog_ok(plog_segment_open(f->dir, 0, &f->c, PLOG_SEGMENT_ACTIVE, &f->seg, NULL, 0));
    for (uint64_t i = 0; i < 5; i++)
        append_rec(f->seg, i);
}

/* A rewind (a failed batch undone) drops entries that stay in the mapping
 * until close. In a full index nothing but zeros after them would tell a crash
 * image from a closed index: they must be zeroed, or a crash before the close
 * would have them claim records the store lacks. */
static void test_segment_rewound_records_are_not_claimed_after_a_crash(void **state)
{
    struct fixture *f = *state;
    int warnings = 0;
    fill_index(f, &warnings);
    assert_plog_ok(plog_segment_rewind(f->seg, 2));
    append_rec(f->seg, 2);
    assert_plog_ok(plog_segment_flush(f->seg));
    plog_segment *seg = open_crash_image(f);
    assert_int_equal(warnings, 0);
    assert_int_equal(plog_segment_next(seg), 3);
    for (uint64_t i = 0; i < 3; i++)
        read_rec(seg, i);
    plog_segment_close(seg, false);
}

/* Recovery keeps the entries of the lost records in the mapping after the ones
 * it rewrote; the same holds for them. */
static void test_segment_lost_records_are_reported_once_across_a_crash(void **state)
{
    struct fixture *f = *state;
    int warnings = 0;
    fill_index(f, &warnings);
    uint64_t cut = 0;
    for (uint64_t i = 0; i < 3; i++) {
        uint8_t *b;
        size_t n;
        assert_plog_ok(plog_segment_read(f->seg, i, &b, &n, NULL, 0));
        cut += PLOG_STORE_HDR + n;
        free(b);
    }
    assert_plog_ok(plog_segment_close(f->seg, false));
    char sp[256];
    testrec_seg_path(sp, sizeof sp, f->dir, 0, ".store");
    testrec_truncate(sp, cut); /* records 3 and 4 gone, at a frame boundary */
    assert_plog_ok(plog_segment_open(f->dir, 0, &f->c, PLOG_SEGMENT_ACTIVE, &f->seg, NULL, 0));
    assert_int_equal(warnings, 1);
    assert_int_equal(plog_segment_next(f->seg), 3);
    append_rec(f->seg, 3);
    assert_plog_ok(plog_segment_flush(f->seg));
    plog_segment *seg = open_crash_image(f);
    assert_int_equal(warnings, 1);
    assert_int_equal(plog_segment_next(seg), 4);
    for (uint64_t i = 0; i < 4; i++)
        read_rec(seg, i);
    plog_segment_close(seg, false);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
        T(test_segment_is_maxed_when_its_index_is_full),
        T(test_segment_is_maxed_when_its_store_is_full),
        T(test_segment_reopen_continues_after_the_last_record),
        T(test_segment_files_are_named_by_20_digit_base_offset),
        T(test_segment_remove_deletes_both_files),
        T(test_segment_read_span_returns_consecutive_payloads),
        T(test_segment_sealed_open_cuts_index_to_its_records),
        T(test_segment_encodes_records_exactly_as_protobuf_c),
        T(test_segment_rewound_records_are_not_claimed_after_a_crash),
        T(test_segment_lost_records_are_reported_once_across_a_crash),
#undef T
    };
    return cmocka_run_group_tests_name("segment", tests, NULL, NULL);
}
