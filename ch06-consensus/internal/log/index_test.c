/* index_test.c - tests of index.c (Go: index_test.go). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

#include "internal/log/index.h"
#include "internal/log/testrec.h"

struct fixture {
    char dir[64];
    char path[128];
    plog_index *x;
};

#define MAX_BYTES 1024

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    plog_test_tmpdir("index", f->dir, sizeof f->dir);
    snprintf(f->path, sizeof f->path, "%s/i.index", f->dir);
    assert_plog_ok(plog_index_open(f->path, MAX_BYTES, &f->x, NULL, 0));
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    plog_index_close(f->x, false);
    plog_test_rmrf(f->dir);
    free(f);
    return 0;
}

static const struct {
    uint32_t rel;
    uint64_t pos;
} entries[] = {{0, 0}, {1, 10}, {2, 0x0102030405060708ull}};

static void write_entries(plog_index *x)
{
    for (size_t i = 0; i < 3; i++)
        assert_plog_ok(plog_index_write(x, entries[i].rel, entries[i].pos));
}

static void check_entries(const plog_index *x)
{
    for (size_t i = 0; i < 3; i++) {
        uint32_t rel;
        uint64_t pos;
        assert_plog_ok(plog_index_read(x, (int64_t)i, &rel, &pos));
        assert_int_equal(rel, entries[i].rel);
        assert_int_equal(pos, entries[i].pos);
    }
}

/* Go: index_test.go TestIndex (read of an empty index) */
static void test_index_read_of_empty_index_returns_eof(void **state)
{
    struct fixture *f = *state;
    uint32_t rel;
    uint64_t pos;
    assert_plog_err(plog_index_read(f->x, -1, &rel, &pos), PLOG_EOF);
    assert_plog_err(plog_index_read(f->x, 0, &rel, &pos), PLOG_EOF);
}

/* Go: index_test.go TestIndex (write, read back) */
static void test_index_write_then_read_returns_entries(void **state)
{
    struct fixture *f = *state;
    write_entries(f->x);
    check_entries(f->x);
    uint32_t rel;
    uint64_t pos;
    assert_plog_ok(plog_index_read(f->x, -1, &rel, &pos));
    assert_int_equal(rel, 2);
    assert_int_equal(plog_index_entries(f->x), 3);
}

/* Go: index_test.go TestIndex ("index and scanner should error when reading past
 * existing entries") */
static void test_index_read_past_last_entry_returns_eof(void **state)
{
    struct fixture *f = *state;
    write_entries(f->x);
    uint32_t rel;
    uint64_t pos;
    assert_plog_err(plog_index_read(f->x, 3, &rel, &pos), PLOG_EOF);
}

static void test_index_is_grown_to_max_bytes_while_open(void **state)
{
    struct fixture *f = *state;
    /* 1024 rounded down to whole entries. */
    assert_int_equal(testrec_file_size(f->path), 1020);
    assert_int_equal(plog_index_capacity(f->x), 85);
}

static void test_index_write_to_full_index_returns_eof(void **state)
{
    struct fixture *f = *state;
    for (uint32_t i = 0; i < 85; i++)
        assert_plog_ok(plog_index_write(f->x, i, i * 100));
    assert_plog_err(plog_index_write(f->x, 85, 8500), PLOG_EOF);
}

/* Go: index_test.go TestIndex ("index should build its state from the existing
 * file") */
static void test_index_close_cuts_file_and_reopen_keeps_entries(void **state)
{
    struct fixture *f = *state;
    write_entries(f->x);
    assert_plog_ok(plog_index_close(f->x, true));
    assert_int_equal(testrec_file_size(f->path), 3 * PLOG_INDEX_ENTRY);
    assert_plog_ok(plog_index_open(f->path, MAX_BYTES, &f->x, NULL, 0));
    assert_int_equal(plog_index_entries(f->x), 3);
    check_entries(f->x);
    assert_plog_ok(plog_index_write(f->x, 3, 99));
    assert_int_equal(plog_index_entries(f->x), 4);
}

static void test_index_entries_are_big_endian_on_disk(void **state)
{
    struct fixture *f = *state;
    write_entries(f->x);
    assert_plog_ok(plog_index_close(f->x, false));
    f->x = NULL;
    uint8_t b[36];
    FILE *fp = fopen(f->path, "rb");
    assert_int_equal(fread(b, 1, sizeof b, fp), sizeof b);
    fclose(fp);
    static const uint8_t want[12] = {0, 0, 0, 2, 1, 2, 3, 4, 5, 6, 7, 8};
    assert_memory_equal(b + 24, want, 12);
}

static void test_index_seal_cuts_file_and_keeps_entries_readable(void **state)
{
    struct fixture *f = *state;
    write_entries(f->x);
    assert_plog_ok(plog_index_seal(f->x));
    assert_int_equal(testrec_file_size(f->path), 3 * PLOG_INDEX_ENTRY);
    check_entries(f->x);
    assert_plog_err(plog_index_write(f->x, 3, 99), PLOG_EOF);
}

static void test_index_set_entries_forgets_the_tail(void **state)
{
    struct fixture *f = *state;
    write_entries(f->x);
    plog_index_set_entries(f->x, 1);
    uint32_t rel;
    uint64_t pos;
    assert_plog_err(plog_index_read(f->x, 1, &rel, &pos), PLOG_EOF);
    assert_plog_ok(plog_index_write(f->x, 1, 77));
    assert_plog_ok(plog_index_read(f->x, -1, &rel, &pos));
    assert_int_equal(pos, 77);
}

/* open_copy opens a copy of f's file as it is now, the index still open (what a
 * crash leaves: the file grown to MAX_BYTES, zeros after the entries). */
static plog_index *open_copy(struct fixture *f)
{
    char copy[160];
    snprintf(copy, sizeof copy, "%s/copy.index", f->dir);
    testrec_copy(f->path, copy);
    plog_index *x;
    assert_plog_ok(plog_index_open(copy, 0, &x, NULL, 0));
    return x;
}

/* reopen closes f's index (which cuts the file to its entries) and opens it again. */
static void reopen(struct fixture *f)
{
    assert_plog_ok(plog_index_close(f->x, false));
    assert_plog_ok(plog_index_open(f->path, MAX_BYTES, &f->x, NULL, 0));
}

static void test_index_listed_counts_the_entries_of_a_closed_index(void **state)
{
    struct fixture *f = *state;
    write_entries(f->x);
    reopen(f);
    assert_int_equal(plog_index_listed(f->x), 3);
}

static void test_index_listed_is_zero_for_an_index_left_preallocated(void **state)
{
    struct fixture *f = *state;
    write_entries(f->x);
    plog_index *x = open_copy(f);
    assert_int_equal(plog_index_entries(x), MAX_BYTES / 12); /* the zeros count as written */
    assert_int_equal(plog_index_listed(x), 0);
    plog_index_close(x, false);
}

/* A crash leaves the index grown to its maximum and sparse past the blocks its
 * entries reserved: opened again, it counts entries up to its first hole only,
 * so recovery reads no hole (on tmpfs a read there takes a page of the file
 * system's space: SIGBUS when it is full). */
static void test_index_left_preallocated_counts_entries_up_to_its_first_hole(void **state)
{
    struct fixture *f = *state;
    char path[160];
    snprintf(path, sizeof path, "%s/big.index", f->dir);
    plog_index *big, *x;
    assert_plog_ok(plog_index_open(path, 16u << 20, &big, NULL, 0));
    write_entries(big);
    assert_plog_ok(plog_index_open(path, 0, &x, NULL, 0)); /* a restart after a crash */
    uint64_t n = plog_index_entries(x);
    assert_true(n >= 3);
    assert_true(n * PLOG_INDEX_ENTRY <= (1u << 20)); /* not the 16 MiB of the file */
    check_entries(x);
    assert_plog_ok(plog_index_close(x, false));
    assert_plog_ok(plog_index_close(big, false));
}

static void test_index_listed_is_zero_when_an_entry_breaks_the_chain(void **state)
{
    struct fixture *f = *state;
    write_entries(f->x);
    assert_plog_ok(plog_index_write(f->x, 3, 5)); /* before entry 2's position */
    reopen(f);
    assert_int_equal(plog_index_entries(f->x), 4);
    assert_int_equal(plog_index_listed(f->x), 0);
}

/* Entry 0 is all zeros: alone, it is told from an empty segment's preallocated
 * entry by the file's length only. Cut by a close to one entry while the index
 * grows to MAX_BYTES, it is a record; preallocated to one entry, it is not. */
static void test_index_listed_counts_a_lone_first_entry_a_close_cut(void **state)
{
    struct fixture *f = *state;
    assert_plog_ok(plog_index_write(f->x, 0, 0));
    assert_plog_ok(plog_index_close(f->x, false));
    assert_true(plog_index_file_lists(f->path, MAX_BYTES));
    assert_plog_ok(plog_index_open(f->path, MAX_BYTES, &f->x, NULL, 0));
    assert_int_equal(plog_index_entries(f->x), 1);
    assert_int_equal(plog_index_listed(f->x), 1);
}

static void test_index_listed_does_not_count_an_entry_preallocated_alone(void **state)
{
    struct fixture *f = *state;
    assert_plog_ok(plog_index_close(f->x, false));
    FILE *fp = fopen(f->path, "w"); /* a roll's, max one entry, zeros written */
    assert_int_equal(fwrite((char[PLOG_INDEX_ENTRY]){0}, PLOG_INDEX_ENTRY, 1, fp), 1);
    fclose(fp);
    assert_false(plog_index_file_lists(f->path, PLOG_INDEX_ENTRY));
    assert_plog_ok(plog_index_open(f->path, PLOG_INDEX_ENTRY, &f->x, NULL, 0));
    assert_int_equal(plog_index_entries(f->x), 1);
    assert_int_equal(plog_index_listed(f->x), 0);
}

static void test_index_clear_dropped_zeroes_what_set_entries_dropped(void **state)
{
    struct fixture *f = *state;
    write_entries(f->x);
    plog_index_set_entries(f->x, 1);
    plog_index_clear_dropped(f->x, 3);
    for (uint64_t i = 1; i < 3; i++) {
        uint32_t rel;
        uint64_t pos;
        assert_plog_ok(plog_index_read_raw(f->x, i, &rel, &pos));
        assert_int_equal(rel, 0);
        assert_int_equal(pos, 0);
    }
    /* In the file too (a shared mapping): what a crash would leave. */
    uint8_t zero[24] = {0}, got[24];
    int fd = open(f->path, O_RDONLY);
    assert_int_equal(pread(fd, got, 24, 12), 24);
    close(fd);
    assert_memory_equal(got, zero, 24);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
        T(test_index_read_of_empty_index_returns_eof),
        T(test_index_write_then_read_returns_entries),
        T(test_index_read_past_last_entry_returns_eof),
        T(test_index_is_grown_to_max_bytes_while_open),
        T(test_index_write_to_full_index_returns_eof),
        T(test_index_close_cuts_file_and_reopen_keeps_entries),
        T(test_index_entries_are_big_endian_on_disk),
        T(test_index_seal_cuts_file_and_keeps_entries_readable),
        T(test_index_set_entries_forgets_the_tail),
        T(test_index_listed_counts_the_entries_of_a_closed_index),
        T(test_index_listed_is_zero_for_an_index_left_preallocated),
        T(test_index_left_preallocated_counts_entries_up_to_its_first_hole),
        T(test_index_listed_is_zero_when_an_entry_breaks_the_chain),
        T(test_index_listed_counts_a_lone_first_entry_a_close_cut),
        T(test_index_listed_does_not_count_an_entry_preallocated_alone),
        T(test_index_clear_dropped_zeroes_what_set_entries_dropped),
#undef T
    };
    return cmocka_run_group_tests_name("index", tests, NULL, NULL);
}
