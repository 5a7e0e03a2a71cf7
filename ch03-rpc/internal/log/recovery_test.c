/* recovery_test.c - opening a log after a crash or disk damage (beyond the book:
 * Go's log has no recovery). Each test damages the files of a closed (or, for
 * crash images, still open) log the way a crash or a bad disk would, reopens it
 * and checks that every intact record reads back byte-identical and that the
 * next append gets the next contiguous offset. */
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
    char dir2[128];
    char errfile[128];
    plog_log_config c;
    plog_log *l;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    plog_test_tmpdir("recovery", f->dir, sizeof f->dir);
    snprintf(f->dir2, sizeof f->dir2, "%s/copy", f->dir);
    snprintf(f->errfile, sizeof f->errfile, "%s.stderr", f->dir);
    f->c.segment.max_store_bytes = 1 << 20;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    plog_log_close(f->l);
    plog_test_rmrf(f->dir);
    unlink(f->errfile);
    free(f);
    return 0;
}

/* fill writes records [0, n) into a fresh log at dir and closes it. */
static void fill(struct fixture *f, uint64_t n)
{
    assert_plog_ok(plog_log_open(f->dir, &f->c, &f->l));
    for (uint64_t i = 0; i < n; i++)
        testrec_append(f->l, i);
    assert_plog_ok(plog_log_close(f->l));
    f->l = NULL;
}

/* open_captured opens the log at dir with stderr captured in f->errfile, sets
 * *rv to what open returned and returns the captured text (malloc'd). */
static char *open_captured(struct fixture *f, const char *dir, int *rv)
{
    fflush(stderr);
    int saved = dup(2);
    int fd = open(f->errfile, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(fd, 2);
    close(fd);
    *rv = plog_log_open(dir, &f->c, &f->l);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    FILE *fp = fopen(f->errfile, "r");
    char *text = calloc(1, 4096);
    size_t n = fread(text, 1, 4095, fp);
    text[n] = '\0';
    fclose(fp);
    return text;
}

/* reopen: open_captured, which must succeed. */
static char *reopen(struct fixture *f, const char *dir)
{
    int rv;
    char *text = open_captured(f, dir, &rv);
    assert_plog_ok(rv);
    return text;
}

/* entry_pos reads the store position of record base+i from a closed index. */
static uint64_t entry_pos(const char *dir, uint64_t base, uint64_t i)
{
    char p[256];
    uint8_t e[12];
    testrec_seg_path(p, sizeof p, dir, base, ".index");
    int fd = open(p, O_RDONLY);
    assert_int_equal(pread(fd, e, 12, (off_t)(i * 12)), 12);
    close(fd);
    uint64_t pos = 0;
    for (int k = 4; k < 12; k++)
        pos = pos << 8 | e[k];
    return pos;
}

static void assert_intact(plog_log *l, uint64_t from, uint64_t to, uint64_t skip)
{
    for (uint64_t i = from; i < to; i++)
        if (i != skip)
            testrec_assert_read(l, i);
}

static void assert_corrupt_named(struct fixture *f, uint64_t off, const char *file, uint64_t pos)
{
    Log__V1__Record *r;
    assert_plog_err(plog_log_read(f->l, off, &r), PLOG_ECORRUPT);
    char msg[PLOG_ERRMSG_SIZE], want[64];
    plog_log_errmsg(f->l, msg, sizeof msg);
    assert_non_null(strstr(msg, file));
    snprintf(want, sizeof want, "at %llu", (unsigned long long)pos);
    assert_non_null(strstr(msg, want));
}

static void test_recovery_store_cut_mid_frame_drops_only_the_torn_record(void **state)
{
    struct fixture *f = *state;
    fill(f, 10);
    char sp[256];
    testrec_seg_path(sp, sizeof sp, f->dir, 0, ".store");
    uint64_t size = testrec_file_size(sp), last = entry_pos(f->dir, 0, 9);
    testrec_truncate(sp, size - 3);
    char *err = reopen(f, f->dir);
    char want[512];
    snprintf(want, sizeof want, "level=warn msg=\"truncated torn tail\" file=%s pos=%llu dropped=%llu", sp,
             (unsigned long long)last, (unsigned long long)(size - 3 - last));
    assert_non_null(strstr(err, want));
    free(err);
    assert_int_equal(plog_log_next_offset(f->l), 9);
    assert_int_equal(testrec_file_size(sp), last);
    assert_intact(f->l, 0, 9, UINT64_MAX);
    testrec_append(f->l, 9);
}

static void test_recovery_flipped_byte_in_the_last_segment_corrupts_only_that_record(void **state)
{
    struct fixture *f = *state;
    fill(f, 10);
    char sp[256];
    testrec_seg_path(sp, sizeof sp, f->dir, 0, ".store");
    uint64_t pos = entry_pos(f->dir, 0, 4);
    testrec_xor(sp, pos + PLOG_STORE_HDR + 2, 0x40);
    free(reopen(f, f->dir));
    assert_int_equal(plog_log_next_offset(f->l), 10);
    assert_corrupt_named(f, 4, sp, pos);
    assert_intact(f->l, 0, 10, 4);
    testrec_append(f->l, 10);
}

static void test_recovery_flipped_length_in_the_last_segment_resyncs_on_the_index(void **state)
{
    struct fixture *f = *state;
    fill(f, 10);
    char sp[256];
    testrec_seg_path(sp, sizeof sp, f->dir, 0, ".store");
    uint64_t pos = entry_pos(f->dir, 0, 4);
    testrec_xor(sp, pos + 1, 0x7f); /* the length now points far past the end */
    free(reopen(f, f->dir));
    assert_int_equal(plog_log_next_offset(f->l), 10);
    assert_corrupt_named(f, 4, sp, pos);
    assert_intact(f->l, 0, 10, 4);
    testrec_append(f->l, 10);
}

static void test_recovery_scan_past_a_damaged_length_resyncs_on_the_old_index(void **state)
{
    struct fixture *f = *state;
    fill(f, 10);
    char sp[256];
    testrec_seg_path(sp, sizeof sp, f->dir, 0, ".store");
    uint64_t size = testrec_file_size(sp), pos = entry_pos(f->dir, 0, 4);
    testrec_xor(sp, pos + 1, 0x7f);
    /* A zeroed tail too, so the index no longer passes as clean: the store is
     * scanned, and only the old index can say where record 5 starts. */
    testrec_truncate(sp, size + 100);
    char *err = reopen(f, f->dir);
    assert_non_null(strstr(err, "corrupt record"));
    assert_non_null(strstr(err, "truncated torn tail"));
    free(err);
    assert_int_equal(testrec_file_size(sp), size);
    assert_int_equal(plog_log_next_offset(f->l), 10);
    assert_corrupt_named(f, 4, sp, pos);
    assert_intact(f->l, 0, 10, 4);
    testrec_append(f->l, 10);
}

/* The audit's case: no index to resync on (lost, or unusable after a power
 * loss: the active segment's index is not fsynced), and a length field that
 * sends the scan past the end. The frames after the damaged one are
 * intact, so this is damage, not a torn tail: nothing may be cut. */
static void test_recovery_damaged_length_without_an_index_is_not_cut(void **state)
{
    struct fixture *f = *state;
    fill(f, 20);
    char sp[256], ip[256];
    testrec_seg_path(sp, sizeof sp, f->dir, 0, ".store");
    testrec_seg_path(ip, sizeof ip, f->dir, 0, ".index");
    uint64_t size = testrec_file_size(sp), pos = entry_pos(f->dir, 0, 5);
    /* 0x7f over the third byte of record 5's length (the audit's byte 100 of
     * a store whose frame 5 began at 98): the length now runs past the end. */
    int fd = open(sp, O_WRONLY);
    assert_int_equal(pwrite(fd, "\x7f", 1, (off_t)(pos + 2)), 1);
    close(fd);
    assert_int_equal(unlink(ip), 0);
    char *err = reopen(f, f->dir);
    char want[512];
    snprintf(want, sizeof want, "level=warn msg=\"corrupt record\" file=%s pos=%llu offset=5\n", sp,
             (unsigned long long)pos);
    assert_string_equal(err, want); /* and no "truncated torn tail" */
    free(err);
    assert_int_equal(testrec_file_size(sp), size);
    assert_int_equal(plog_log_next_offset(f->l), 20);
    assert_corrupt_named(f, 5, sp, pos);
    assert_intact(f->l, 0, 20, 5);
    testrec_append(f->l, 20);
}

/* The same with the damage spanning several frames (zeros from the middle of
 * record 3 to the middle of record 6): each record in it reads as corrupt,
 * the ones after it are kept. */
static void test_recovery_damage_over_several_frames_without_an_index_is_not_cut(void **state)
{
    struct fixture *f = *state;
    fill(f, 12);
    char sp[256], ip[256];
    testrec_seg_path(sp, sizeof sp, f->dir, 0, ".store");
    testrec_seg_path(ip, sizeof ip, f->dir, 0, ".index");
    uint64_t size = testrec_file_size(sp), p3 = entry_pos(f->dir, 0, 3), p7 = entry_pos(f->dir, 0, 7);
    uint64_t from = p3 + 2, to = entry_pos(f->dir, 0, 6) + 5;
    int fd = open(sp, O_WRONLY);
    uint8_t zeros[2048] = {0};
    assert_true(to - from <= sizeof zeros);
    assert_int_equal(pwrite(fd, zeros, to - from, (off_t)from), (ssize_t)(to - from));
    close(fd);
    assert_int_equal(unlink(ip), 0);
    char *err = reopen(f, f->dir);
    char want[512];
    snprintf(want, sizeof want,
             "level=warn msg=\"corrupt records\" file=%s pos=%llu offset=3 count=4 next=%llu\n", sp,
             (unsigned long long)p3, (unsigned long long)p7);
    assert_string_equal(err, want); /* and no "truncated torn tail" */
    free(err);
    assert_int_equal(testrec_file_size(sp), size);
    assert_int_equal(plog_log_next_offset(f->l), 12);
    for (uint64_t off = 3; off <= 6; off++) {
        Log__V1__Record *r;
        assert_plog_err(plog_log_read(f->l, off, &r), PLOG_ECORRUPT);
    }
    assert_intact(f->l, 0, 3, UINT64_MAX);
    assert_intact(f->l, 7, 12, UINT64_MAX);
    plog_log_batch b = {0};
    assert_plog_ok(plog_log_read_batch(f->l, 7, 10, 1 << 20, &b));
    assert_int_equal(b.n, 5);
    plog_log_batch_fini(&b);
    testrec_append(f->l, 12);
    /* Reopened, the rebuilt index gives the same answers: records 4..6 are
     * placed a byte apart after 3 (their frames cannot be found). */
    assert_plog_ok(plog_log_close(f->l));
    f->l = NULL;
    assert_int_equal(entry_pos(f->dir, 0, 4), p3 + 1);
    free(reopen(f, f->dir));
    assert_int_equal(plog_log_next_offset(f->l), 13);
    assert_corrupt_named(f, 4, sp, p3 + 1);
    assert_intact(f->l, 7, 13, UINT64_MAX);
}

/* A sealed segment without its index, its record 2's length damaged: the
 * records after it are found again, not reported missing. */
static void test_recovery_damaged_length_in_a_sealed_segment_without_an_index_keeps_the_rest(void **state)
{
    struct fixture *f = *state;
    f->c.segment.max_index_bytes = 5 * 12;
    fill(f, 12);
    char sp[256], ip[256];
    testrec_seg_path(sp, sizeof sp, f->dir, 0, ".store");
    testrec_seg_path(ip, sizeof ip, f->dir, 0, ".index");
    uint64_t pos = entry_pos(f->dir, 0, 2);
    testrec_xor(sp, pos + 1, 0x7f);
    assert_int_equal(unlink(ip), 0);
    char *err = reopen(f, f->dir);
    assert_non_null(strstr(err, "corrupt record"));
    assert_null(strstr(err, "damaged sealed segment"));
    free(err);
    assert_int_equal(plog_log_next_offset(f->l), 12);
    assert_corrupt_named(f, 2, sp, pos);
    assert_intact(f->l, 0, 12, 2);
    testrec_append(f->l, 12);
}

static void
test_recovery_flipped_byte_in_a_sealed_segment_reads_corrupt_naming_file_and_position(void **state)
{
    struct fixture *f = *state;
    f->c.segment.max_index_bytes = 5 * 12;
    fill(f, 12);
    char sp[256];
    testrec_seg_path(sp, sizeof sp, f->dir, 0, ".store");
    uint64_t pos = entry_pos(f->dir, 0, 2);
    testrec_xor(sp, pos + PLOG_STORE_HDR, 0x01);
    free(reopen(f, f->dir));
    assert_int_equal(plog_log_next_offset(f->l), 12);
    assert_corrupt_named(f, 2, sp, pos);
    plog_log_batch b = {0};
    assert_plog_err(plog_log_read_batch(f->l, 2, 4, 1 << 20, &b), PLOG_ECORRUPT);
    assert_plog_ok(plog_log_read_batch(f->l, 0, 4, 1 << 20, &b));
    assert_int_equal(b.n, 2); /* stops before the damage */
    plog_log_batch_fini(&b);
    assert_intact(f->l, 0, 12, 2);
    testrec_append(f->l, 12);
}

static void test_recovery_torn_sealed_segment_is_not_cut(void **state)
{
    struct fixture *f = *state;
    f->c.segment.max_index_bytes = 5 * 12;
    fill(f, 12);
    char sp[256];
    testrec_seg_path(sp, sizeof sp, f->dir, 0, ".store");
    uint64_t size = testrec_file_size(sp);
    testrec_truncate(sp, size - 2);
    char *err = reopen(f, f->dir);
    assert_non_null(strstr(err, "damaged sealed segment"));
    free(err);
    assert_int_equal(testrec_file_size(sp), size - 2);
    Log__V1__Record *r;
    assert_plog_err(plog_log_read(f->l, 4, &r), PLOG_ECORRUPT);
    assert_intact(f->l, 0, 12, 4);
    testrec_append(f->l, 12);
}

/* copy_image copies the files of the log at dir, still open, to dir2: what a
 * crash (kill -9) would leave, the index preallocated. */
static void copy_image(struct fixture *f)
{
    mkdir(f->dir2, 0755);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "cp %s/0*.store %s/0*.index %s/", f->dir, f->dir, f->dir2);
    assert_int_equal(plog_test_sh(cmd, 10000, NULL), 0);
}

/* A crash image: the files of a log that is still open (index preallocated). */
static void crash_image(struct fixture *f, uint64_t n)
{
    assert_plog_ok(plog_log_open(f->dir, &f->c, &f->l));
    for (uint64_t i = 0; i < n; i++)
        testrec_append(f->l, i);
    assert_plog_ok(plog_log_commit(f->l, n - 1));
    copy_image(f);
    assert_plog_ok(plog_log_close(f->l));
    f->l = NULL;
}

static void test_recovery_preallocated_index_left_by_a_crash_is_repaired(void **state)
{
    struct fixture *f = *state;
    crash_image(f, 10);
    char ip[256];
    testrec_seg_path(ip, sizeof ip, f->dir2, 0, ".index");
    assert_true(testrec_file_size(ip) > 10 * 12); /* zeros after the entries */
    char *err = reopen(f, f->dir2);
    assert_string_equal(err, ""); /* the zeros are not records the store lacks */
    free(err);
    assert_int_equal(plog_log_next_offset(f->l), 10);
    assert_intact(f->l, 0, 10, UINT64_MAX);
    testrec_append(f->l, 10);
    assert_plog_ok(plog_log_close(f->l));
    f->l = NULL;
    assert_int_equal(testrec_file_size(ip), 11 * 12);
}

static void test_recovery_crash_image_across_segments_keeps_every_record(void **state)
{
    struct fixture *f = *state;
    f->c.segment.max_index_bytes = 7 * 12;
    crash_image(f, 30);
    char *err = reopen(f, f->dir2);
    assert_string_equal(err, "");
    free(err);
    assert_int_equal(plog_log_next_offset(f->l), 30);
    assert_intact(f->l, 0, 30, UINT64_MAX);
    testrec_append(f->l, 30);
}

static void test_recovery_missing_index_is_rebuilt_from_the_store(void **state)
{
    struct fixture *f = *state;
    f->c.segment.max_index_bytes = 5 * 12;
    fill(f, 12);
    char ip[256];
    testrec_seg_path(ip, sizeof ip, f->dir, 10, ".index");
    assert_int_equal(unlink(ip), 0);
    testrec_seg_path(ip, sizeof ip, f->dir, 5, ".index"); /* a sealed one too */
    assert_int_equal(unlink(ip), 0);
    free(reopen(f, f->dir));
    assert_int_equal(plog_log_next_offset(f->l), 12);
    assert_intact(f->l, 0, 12, UINT64_MAX);
    testrec_append(f->l, 12);
}

/* lost_warning is the line recovery logs when the index of the last segment
 * (base 0, in dir) listed more records than its store holds. */
static void lost_warning(char *buf, size_t size, const char *dir, uint64_t indexed, uint64_t stored)
{
    char sp[256];
    testrec_seg_path(sp, sizeof sp, dir, 0, ".store");
    snprintf(buf, size,
             "level=warn msg=\"index lists records the store lacks\" file=%s indexed=%llu "
             "stored=%llu\n",
             sp, (unsigned long long)indexed, (unsigned long long)stored);
}

static void test_recovery_index_entries_beyond_the_store_are_dropped(void **state)
{
    struct fixture *f = *state;
    fill(f, 10);
    char sp[256];
    testrec_seg_path(sp, sizeof sp, f->dir, 0, ".store");
    testrec_truncate(sp, entry_pos(f->dir, 0, 7)); /* at a frame boundary */
    /* No torn bytes: only the index says records 7..9 were there. */
    char *err = reopen(f, f->dir), want[512];
    lost_warning(want, sizeof want, f->dir, 10, 7);
    assert_string_equal(err, want);
    free(err);
    assert_int_equal(plog_log_next_offset(f->l), 7);
    assert_intact(f->l, 0, 7, UINT64_MAX);
    testrec_append(f->l, 7);
    testrec_assert_read(f->l, 7);
}

static void test_recovery_emptied_store_warns_that_every_indexed_record_is_lost(void **state)
{
    struct fixture *f = *state;
    fill(f, 10);
    char sp[256];
    testrec_seg_path(sp, sizeof sp, f->dir, 0, ".store");
    testrec_truncate(sp, 0);
    char *err = reopen(f, f->dir), want[512];
    lost_warning(want, sizeof want, f->dir, 10, 0);
    assert_string_equal(err, want);
    free(err);
    assert_int_equal(plog_log_next_offset(f->l), 0);
    testrec_append(f->l, 0);
    testrec_assert_read(f->l, 0);
}

/* The same with segments before it: the emptied last store is not mistaken for a
 * roll that a crash cut short (which drops the new, empty segment silently). */
static void test_recovery_emptied_last_of_several_stores_warns_too(void **state)
{
    struct fixture *f = *state;
    f->c.segment.max_index_bytes = 5 * 12;
    fill(f, 14); /* segments 0, 5 and 10 (records 10..13) */
    char sp[256];
    testrec_seg_path(sp, sizeof sp, f->dir, 10, ".store");
    testrec_truncate(sp, 0);
    char *err = reopen(f, f->dir), want[512];
    snprintf(want, sizeof want,
             "level=warn msg=\"index lists records the store lacks\" file=%s indexed=4 stored=0\n", sp);
    assert_string_equal(err, want);
    free(err);
    assert_int_equal(plog_log_next_offset(f->l), 10);
    assert_intact(f->l, 0, 10, UINT64_MAX);
    testrec_append(f->l, 10);
    testrec_assert_read(f->l, 10);
}

/* A last segment of a single record, its store emptied: a close cut its index
 * to that one entry, which is all zeros like a roll's preallocated index, so
 * the segment was taken for a roll a crash cut short and dropped with its index,
 * without a word, and record 10's offset went to the next append. The index's
 * length (one entry, not max_index_bytes) tells a close: the loss is reported
 * and the files are kept, as with more records. */
static void test_recovery_emptied_last_store_of_one_record_warns_too(void **state)
{
    struct fixture *f = *state;
    f->c.segment.max_index_bytes = 5 * 12;
    fill(f, 11); /* segments 0, 5 and 10 (record 10 alone) */
    char sp[256], ip[256];
    testrec_seg_path(sp, sizeof sp, f->dir, 10, ".store");
    testrec_seg_path(ip, sizeof ip, f->dir, 10, ".index");
    testrec_truncate(sp, 0);
    char *err = reopen(f, f->dir), want[512];
    snprintf(want, sizeof want,
             "level=warn msg=\"index lists records the store lacks\" file=%s indexed=1 stored=0\n", sp);
    assert_string_equal(err, want);
    free(err);
    assert_int_equal(plog_log_next_offset(f->l), 10);
    assert_int_equal(access(ip, F_OK), 0);
    assert_intact(f->l, 0, 10, UINT64_MAX);
}

/* A FIFO under a segment's name is refused at open, by name, instead of blocking
 * the open (and the program) for good; the records stay. */
static void test_recovery_segment_that_is_not_a_file_is_refused(void **state)
{
    struct fixture *f = *state;
    f->c.segment.max_index_bytes = 5 * 12;
    fill(f, 7); /* segments 0 and 5 */
    char sp[256];
    testrec_seg_path(sp, sizeof sp, f->dir, 30, ".store");
    assert_int_equal(mkfifo(sp, 0600), 0);
    int rv;
    char *err = open_captured(f, f->dir, &rv), want[300];
    assert_int_equal(rv, PLOG_EIO);
    snprintf(want, sizeof want, "%s: not a regular file", sp);
    if (strstr(err, want) == NULL)
        fail_msg("open said: %s", err);
    free(err);
    assert_int_equal(unlink(sp), 0);
    free(reopen(f, f->dir));
    assert_intact(f->l, 0, 7, UINT64_MAX);
}

static void test_recovery_torn_tail_also_counts_the_records_lost(void **state)
{
    struct fixture *f = *state;
    fill(f, 10);
    char sp[256];
    testrec_seg_path(sp, sizeof sp, f->dir, 0, ".store");
    testrec_truncate(sp, entry_pos(f->dir, 0, 6) + 3); /* inside frame 6 */
    char *err = reopen(f, f->dir), want[512];
    assert_non_null(strstr(err, "truncated torn tail"));
    lost_warning(want, sizeof want, f->dir, 10, 6);
    assert_non_null(strstr(err, want));
    free(err);
    assert_int_equal(plog_log_next_offset(f->l), 6);
    assert_intact(f->l, 0, 6, UINT64_MAX);
}

/* An empty active segment left by a crash: its index is all zeros, and entry
 * 0 (rel 0, pos 0) is all zeros too; no record is claimed. */
static void test_recovery_crash_of_an_empty_log_warns_nothing(void **state)
{
    struct fixture *f = *state;
    assert_plog_ok(plog_log_open(f->dir, &f->c, &f->l));
    copy_image(f);
    assert_plog_ok(plog_log_close(f->l));
    f->l = NULL;
    char *err = reopen(f, f->dir2);
    assert_string_equal(err, "");
    free(err);
    assert_int_equal(plog_log_next_offset(f->l), 0);
    testrec_append(f->l, 0);
}

/* Appends still in the store's buffer at a crash (never committed, so never
 * acknowledged) are in the index but not in the store: a crash may drop them,
 * the index is preallocated, nothing is reported. */
static void test_recovery_crash_before_appends_reach_the_store_warns_nothing(void **state)
{
    struct fixture *f = *state;
    assert_plog_ok(plog_log_open(f->dir, &f->c, &f->l));
    for (uint64_t i = 0; i < 10; i++)
        testrec_append(f->l, i);
    assert_plog_ok(plog_log_commit(f->l, 9));
    for (uint64_t i = 10; i < 13; i++)
        testrec_append(f->l, i);
    copy_image(f);
    assert_plog_ok(plog_log_close(f->l));
    f->l = NULL;
    char sp[256];
    testrec_seg_path(sp, sizeof sp, f->dir2, 0, ".store");
    assert_int_equal(testrec_file_size(sp), entry_pos(f->dir, 0, 10)); /* 10 in the copy */
    char *err = reopen(f, f->dir2);
    assert_string_equal(err, "");
    free(err);
    assert_int_equal(plog_log_next_offset(f->l), 10);
    assert_intact(f->l, 0, 10, UINT64_MAX);
}

/* Recovery rewrites the first entries; the lost records' old entries after them
 * must not make a crash before the next close report the loss again. */
static void test_recovery_lost_records_are_reported_once_across_a_later_crash(void **state)
{
    struct fixture *f = *state;
    fill(f, 10);
    char sp[256];
    testrec_seg_path(sp, sizeof sp, f->dir, 0, ".store");
    testrec_truncate(sp, entry_pos(f->dir, 0, 7));
    char *err = reopen(f, f->dir), want[512];
    lost_warning(want, sizeof want, f->dir, 10, 7);
    assert_string_equal(err, want);
    free(err);
    testrec_append(f->l, 7);
    assert_plog_ok(plog_log_commit(f->l, 7));
    copy_image(f);
    assert_plog_ok(plog_log_close(f->l));
    f->l = NULL;
    err = reopen(f, f->dir2);
    assert_string_equal(err, "");
    free(err);
    assert_int_equal(plog_log_next_offset(f->l), 8);
    assert_intact(f->l, 0, 8, UINT64_MAX);
}

static void test_recovery_zeroed_tail_after_the_last_frame_is_cut(void **state)
{
    struct fixture *f = *state;
    fill(f, 10);
    char sp[256];
    testrec_seg_path(sp, sizeof sp, f->dir, 0, ".store");
    uint64_t size = testrec_file_size(sp);
    testrec_truncate(sp, size + 4096); /* blocks allocated, never written */
    char *err = reopen(f, f->dir);
    assert_non_null(strstr(err, "truncated torn tail"));
    free(err);
    assert_int_equal(testrec_file_size(sp), size);
    assert_intact(f->l, 0, 10, UINT64_MAX);
    testrec_append(f->l, 10);
}

static void test_recovery_garbage_index_is_rebuilt_from_the_store(void **state)
{
    struct fixture *f = *state;
    fill(f, 10);
    char ip[256];
    testrec_seg_path(ip, sizeof ip, f->dir, 0, ".index");
    FILE *fp = fopen(ip, "r+b");
    for (int i = 0; i < 10 * 12; i++)
        fputc((int)(testrec_mix((uint64_t)i) & 0xff), fp);
    fclose(fp);
    free(reopen(f, f->dir));
    assert_int_equal(plog_log_next_offset(f->l), 10);
    assert_intact(f->l, 0, 10, UINT64_MAX);
    testrec_append(f->l, 10);
}

/* reopen_without_store fills three segments of 5, 5 and 2 records, removes the
 * store of segment base and reopens; ip gets its index's path. Returns what
 * open logged. */
static char *reopen_without_store(struct fixture *f, uint64_t base, char *ip, size_t size)
{
    f->c.segment.max_index_bytes = 5 * 12;
    fill(f, 12);
    char sp[256];
    testrec_seg_path(sp, sizeof sp, f->dir, base, ".store");
    assert_int_equal(unlink(sp), 0);
    testrec_seg_path(ip, size, f->dir, base, ".index");
    return reopen(f, f->dir);
}

/* The last segment's store removed by hand, its index listing records: the
 * index is removed too and appends go on after the segment before it (its
 * offsets are given again), and the log says those records are lost, from which
 * offset (before: "removed index without store", as for a crash while
 * truncating). */
static void test_recovery_missing_last_store_says_its_records_are_lost(void **state)
{
    struct fixture *f = *state;
    char ip[256], want[512];
    char *err = reopen_without_store(f, 10, ip, sizeof ip);
    snprintf(
        want, sizeof want,
        "level=warn msg=\"store missing: the records its index listed are lost\" file=%s first_offset=10",
        ip);
    if (strstr(err, want) == NULL)
        fail_msg("want \"%s\" in: %s", want, err);
    free(err);
    assert_int_equal(plog_log_lowest_offset(f->l), 0);
    assert_int_equal(plog_log_next_offset(f->l), 10);
    assert_intact(f->l, 0, 10, UINT64_MAX);
}

/* A crash while truncate removed segment 0, whose store's removal reached the
 * disk before its index's: the index is removed, with no word of lost records. */
static void test_recovery_index_without_its_store_is_removed(void **state)
{
    struct fixture *f = *state;
    char ip[256];
    char *err = reopen_without_store(f, 0, ip, sizeof ip);
    assert_non_null(strstr(err, "removed index without store"));
    assert_null(strstr(err, "store missing"));
    free(err);
    assert_int_equal(access(ip, F_OK), -1);
    assert_int_equal(plog_log_lowest_offset(f->l), 5);
    assert_int_equal(plog_log_next_offset(f->l), 12);
    assert_intact(f->l, 5, 12, UINT64_MAX);
    testrec_append(f->l, 12);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
        T(test_recovery_store_cut_mid_frame_drops_only_the_torn_record),
        T(test_recovery_flipped_byte_in_the_last_segment_corrupts_only_that_record),
        T(test_recovery_flipped_length_in_the_last_segment_resyncs_on_the_index),
        T(test_recovery_scan_past_a_damaged_length_resyncs_on_the_old_index),
        T(test_recovery_damaged_length_without_an_index_is_not_cut),
        T(test_recovery_damage_over_several_frames_without_an_index_is_not_cut),
        T(test_recovery_damaged_length_in_a_sealed_segment_without_an_index_keeps_the_rest),
        T(test_recovery_flipped_byte_in_a_sealed_segment_reads_corrupt_naming_file_and_position),
        T(test_recovery_torn_sealed_segment_is_not_cut),
        T(test_recovery_preallocated_index_left_by_a_crash_is_repaired),
        T(test_recovery_crash_image_across_segments_keeps_every_record),
        T(test_recovery_missing_index_is_rebuilt_from_the_store),
        T(test_recovery_index_entries_beyond_the_store_are_dropped),
        T(test_recovery_emptied_store_warns_that_every_indexed_record_is_lost),
        T(test_recovery_emptied_last_of_several_stores_warns_too),
        T(test_recovery_emptied_last_store_of_one_record_warns_too),
        T(test_recovery_segment_that_is_not_a_file_is_refused),
        T(test_recovery_torn_tail_also_counts_the_records_lost),
        T(test_recovery_crash_of_an_empty_log_warns_nothing),
        T(test_recovery_crash_before_appends_reach_the_store_warns_nothing),
        T(test_recovery_lost_records_are_reported_once_across_a_later_crash),
        T(test_recovery_zeroed_tail_after_the_last_frame_is_cut),
        T(test_recovery_garbage_index_is_rebuilt_from_the_store),
        T(test_recovery_index_without_its_store_is_removed),
        T(test_recovery_missing_last_store_says_its_records_are_lost),
#undef T
    };
    return cmocka_run_group_tests_name("recovery", tests, NULL, NULL);
}
