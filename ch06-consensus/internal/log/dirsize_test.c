/* dirsize_test.c - tests of dirsize.c: which files plog_log_dir_bytes counts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal/err/err.h"
#include "internal/log/dirsize.h"
#include "internal/log/log.h"
#include "testing/testing.h"

struct fixture {
    char dir[64];
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    plog_test_tmpdir("dirsize", f->dir, sizeof f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    plog_test_rmrf(f->dir);
    free(f);
    return 0;
}

/* put creates f->dir/rel holding n bytes. */
static void put(struct fixture *f, const char *rel, size_t n)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", f->dir, rel);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(fputc('x', fp), 'x');
    assert_int_equal(fclose(fp), 0);
}

static void sub(struct fixture *f, const char *rel)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", f->dir, rel);
    assert_int_equal(mkdir(path, 0755), 0);
}

/* A node's data directory: segments at the top, one level down (records/) and two
 * levels down (raft/log-1/) count; other files, and anything deeper, do not. */
static void test_log_dir_bytes_counts_segment_files_two_levels_down(void **state)
{
    struct fixture *f = *state;
    put(f, "0.store", 100);
    put(f, "0.index", 12);
    put(f, "node-name", 5);
    sub(f, "records");
    put(f, "records/0.store", 30);
    put(f, "records/0.index", 24);
    sub(f, "raft");
    put(f, "raft/snapshot", 70);
    sub(f, "raft/log-1");
    put(f, "raft/log-1/1.store", 400);
    put(f, "raft/log-1/1.index", 36);
    sub(f, "raft/log-1/deeper");
    put(f, "raft/log-1/deeper/2.store", 1000);
    put(f, "x.store.tmp", 9);
    assert_int_equal(plog_log_dir_bytes(f->dir), 100 + 12 + 30 + 24 + 400 + 36);
}

/* A symbolic link is not followed: the bytes it points at are not the directory's. */
static void test_log_dir_bytes_does_not_follow_links(void **state)
{
    struct fixture *f = *state;
    sub(f, "elsewhere");
    put(f, "elsewhere/9.store", 50);
    char target[128], link[128];
    snprintf(target, sizeof target, "%s/elsewhere/9.store", f->dir);
    sub(f, "sub");
    snprintf(link, sizeof link, "%s/sub/9.store", f->dir);
    assert_int_equal(symlink(target, link), 0);
    assert_int_equal(plog_log_dir_bytes(f->dir), 50); /* elsewhere/9.store itself */
}

static void test_log_dir_bytes_of_a_missing_dir_is_0(void **state)
{
    struct fixture *f = *state;
    char path[128];
    snprintf(path, sizeof path, "%s/none", f->dir);
    assert_int_equal(plog_log_dir_bytes(path), 0);
}

/* What a real log writes is counted, and grows with its records. */
static void test_log_dir_bytes_grows_with_a_log(void **state)
{
    struct fixture *f = *state;
    plog_log_config c = {.sync = PLOG_SYNC_NEVER};
    c.segment.max_index_bytes = 1200;
    plog_log *l;
    assert_int_equal(plog_log_open(f->dir, &c, &l), PLOG_OK);
    int64_t before = plog_log_dir_bytes(f->dir);
    assert_true(before >= 1200); /* the active index is preallocated */
    static uint8_t value[4096];
    Log__V1__Record rec = LOG__V1__RECORD__INIT;
    rec.value.data = value;
    rec.value.len = sizeof value;
    uint64_t off;
    for (int i = 0; i < 4; i++)
        assert_int_equal(plog_log_append(l, &rec, &off), PLOG_OK);
    assert_int_equal(plog_log_commit(l, off), PLOG_OK);
    assert_true(plog_log_dir_bytes(f->dir) >= before + 4 * (int64_t)sizeof value);
    assert_int_equal(plog_log_close(l), PLOG_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_log_dir_bytes_counts_segment_files_two_levels_down, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_log_dir_bytes_does_not_follow_links, setup, teardown),
        cmocka_unit_test_setup_teardown(test_log_dir_bytes_of_a_missing_dir_is_0, setup, teardown),
        cmocka_unit_test_setup_teardown(test_log_dir_bytes_grows_with_a_log, setup, teardown),
    };
    return cmocka_run_group_tests_name("dirsize", tests, NULL, NULL);
}
