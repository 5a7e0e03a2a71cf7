/* store_test.c - tests of store.c (Go: store_test.go). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "internal/log/store.h"
#include "internal/log/testrec.h"
#include "testing/testing.h"

struct fixture {
    char dir[64];
    char path[128];
    plog_store *s;
};

static const char write_[] = "hello world";
#define WIDTH ((uint64_t)(sizeof write_ - 1 + PLOG_STORE_HDR))

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    plog_test_tmpdir("store", f->dir, sizeof f->dir);
    snprintf(f->path, sizeof f->path, "%s/s.store", f->dir);
    assert_plog_ok(plog_store_open(f->path, &f->s, NULL, 0));
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    plog_store_close(f->s);
    plog_test_rmrf(f->dir);
    free(f);
    return 0;
}

static void append_three(plog_store *s)
{
    uint64_t start = plog_store_size(s);
    for (uint64_t i = 1; i < 4; i++) {
        uint64_t n, pos;
        assert_plog_ok(plog_store_append(s, write_, sizeof write_ - 1, &n, &pos));
        assert_int_equal(n, WIDTH);
        assert_int_equal(pos + n, start + WIDTH * i);
    }
}

static void read_three(plog_store *s)
{
    for (uint64_t i = 0; i < 3; i++) {
        uint8_t *b;
        size_t len;
        assert_plog_ok(plog_store_read(s, i * WIDTH, &b, &len, NULL, 0));
        assert_int_equal(len, sizeof write_ - 1);
        assert_memory_equal(b, write_, len);
        free(b);
    }
}

/* Go: store_test.go TestStoreAppendRead (append, read) */
static void test_store_append_then_read_returns_same_bytes(void **state)
{
    struct fixture *f = *state;
    append_three(f->s);
    read_three(f->s);
    assert_int_equal(plog_store_size(f->s), 3 * WIDTH);
}

/* Go: store_test.go TestStoreAppendRead (reopen: records survive) */
static void test_store_reopen_keeps_records_and_appends_after_them(void **state)
{
    struct fixture *f = *state;
    append_three(f->s);
    assert_plog_ok(plog_store_close(f->s));
    assert_plog_ok(plog_store_open(f->path, &f->s, NULL, 0));
    read_three(f->s);
    uint64_t n, pos;
    assert_plog_ok(plog_store_append(f->s, write_, sizeof write_ - 1, &n, &pos));
    assert_int_equal(pos, 3 * WIDTH);
}

/* Go: store_test.go testReadAt */
static void test_store_read_at_returns_raw_frame(void **state)
{
    struct fixture *f = *state;
    append_three(f->s);
    for (uint64_t i = 0; i < 3; i++) {
        uint8_t frame[WIDTH];
        assert_plog_ok(plog_store_read_at(f->s, i * WIDTH, frame, sizeof frame, NULL, 0));
        /* length: u32 big-endian */
        assert_int_equal(frame[0] << 24 | frame[1] << 16 | frame[2] << 8 | frame[3], sizeof write_ - 1);
        size_t len;
        assert_plog_ok(plog_store_frame_check(frame, sizeof frame, &len));
        assert_memory_equal(frame + PLOG_STORE_HDR, write_, len);
    }
    uint8_t b[2];
    assert_plog_err(plog_store_read_at(f->s, 3 * WIDTH - 1, b, 2, NULL, 0), PLOG_EOF);
}

/* Go: store_test.go TestStoreClose */
static void test_store_close_flushes_buffered_frames_to_file(void **state)
{
    struct fixture *f = *state;
    uint64_t n, pos;
    assert_plog_ok(plog_store_append(f->s, write_, sizeof write_ - 1, &n, &pos));
    assert_int_equal(testrec_file_size(f->path), 0); /* still in the buffer */
    assert_plog_ok(plog_store_close(f->s));
    f->s = NULL;
    assert_int_equal(testrec_file_size(f->path), WIDTH);
}

static void test_store_read_sees_frames_still_in_the_buffer(void **state)
{
    struct fixture *f = *state;
    append_three(f->s);
    assert_int_equal(testrec_file_size(f->path), 0);
    read_three(f->s);
    assert_plog_ok(plog_store_flush(f->s));
    assert_int_equal(testrec_file_size(f->path), 3 * WIDTH);
    read_three(f->s);
}

static void test_store_read_at_spanning_file_and_buffer_is_whole(void **state)
{
    struct fixture *f = *state;
    append_three(f->s);
    assert_plog_ok(plog_store_flush(f->s));
    append_three(f->s);
    uint8_t a[6 * WIDTH], b[WIDTH];
    assert_plog_ok(plog_store_read_at(f->s, 0, a, sizeof a, NULL, 0));
    for (int i = 0; i < 6; i++) {
        assert_plog_ok(plog_store_read_at(f->s, (uint64_t)i * WIDTH, b, WIDTH, NULL, 0));
        assert_memory_equal(a + i * WIDTH, b, WIDTH);
    }
}

static void test_store_read_past_end_returns_eof(void **state)
{
    struct fixture *f = *state;
    uint8_t *b;
    size_t len;
    assert_plog_err(plog_store_read(f->s, 0, &b, &len, NULL, 0), PLOG_EOF);
    append_three(f->s);
    assert_plog_err(plog_store_read(f->s, 3 * WIDTH, &b, &len, NULL, 0), PLOG_EOF);
}

static void test_store_read_of_flipped_payload_byte_returns_corrupt(void **state)
{
    struct fixture *f = *state;
    append_three(f->s);
    assert_plog_ok(plog_store_close(f->s));
    testrec_xor(f->path, WIDTH + PLOG_STORE_HDR + 3, 0x01);
    assert_plog_ok(plog_store_open(f->path, &f->s, NULL, 0));
    uint8_t *b;
    size_t len;
    char err[PLOG_ERRMSG_SIZE] = "";
    assert_plog_err(plog_store_read(f->s, WIDTH, &b, &len, err, sizeof err), PLOG_ECORRUPT);
    assert_non_null(strstr(err, f->path));
    assert_non_null(strstr(err, "at 19"));
    assert_plog_ok(plog_store_read(f->s, 0, &b, &len, NULL, 0));
    free(b);
}

static void test_store_empty_payload_round_trips(void **state)
{
    struct fixture *f = *state;
    uint64_t n, pos;
    assert_plog_ok(plog_store_append(f->s, "", 0, &n, &pos));
    assert_int_equal(n, PLOG_STORE_HDR);
    uint8_t *b;
    size_t len = 99;
    assert_plog_ok(plog_store_read(f->s, 0, &b, &len, NULL, 0));
    assert_int_equal(len, 0);
    free(b);
}

static void test_store_zeroed_header_is_not_a_valid_frame(void **state)
{
    (void)state;
    uint8_t zero[PLOG_STORE_HDR] = {0};
    size_t len;
    assert_plog_err(plog_store_frame_check(zero, sizeof zero, &len), PLOG_ECORRUPT);
}

static void test_store_record_larger_than_buffer_round_trips(void **state)
{
    struct fixture *f = *state;
    size_t big = 3u << 20;
    uint8_t *p = malloc(big);
    for (size_t i = 0; i < big; i++)
        p[i] = (uint8_t)(i * 7);
    uint64_t n, pos;
    append_three(f->s);
    assert_plog_ok(plog_store_append(f->s, p, big, &n, &pos));
    assert_int_equal(pos, 3 * WIDTH);
    assert_plog_ok(plog_store_append(f->s, write_, sizeof write_ - 1, &n, &pos));
    uint8_t *b;
    size_t len;
    assert_plog_ok(plog_store_read(f->s, 3 * WIDTH, &b, &len, NULL, 0));
    assert_int_equal(len, big);
    assert_memory_equal(b, p, big);
    free(b);
    assert_plog_ok(plog_store_read(f->s, pos, &b, &len, NULL, 0));
    assert_memory_equal(b, write_, len);
    free(b);
    free(p);
}

static void test_store_truncate_drops_the_tail(void **state)
{
    struct fixture *f = *state;
    append_three(f->s);
    assert_plog_ok(plog_store_flush(f->s));
    assert_plog_ok(plog_store_truncate(f->s, WIDTH));
    assert_int_equal(plog_store_size(f->s), WIDTH);
    assert_int_equal(testrec_file_size(f->path), WIDTH);
    uint64_t n, pos;
    assert_plog_ok(plog_store_append(f->s, write_, sizeof write_ - 1, &n, &pos));
    assert_int_equal(pos, WIDTH);
}

static void test_store_crc32c_matches_the_standard_check_value(void **state)
{
    (void)state;
    assert_int_equal(plog_crc32c(0, "123456789", 9), 0xe3069283u);
    /* Continuing a CRC equals computing it in one go. */
    assert_int_equal(plog_crc32c(plog_crc32c(0, "1234", 4), "56789", 5), 0xe3069283u);
}

static void test_store_crc32c_is_the_same_for_short_and_long_buffers(void **state)
{
    (void)state;
    /* Short buffers take the crc32-instruction path, long ones ISA-L's. */
    uint8_t b[4096];
    for (size_t i = 0; i < sizeof b; i++)
        b[i] = (uint8_t)(i * 131 + 17);
    uint32_t whole = plog_crc32c(0, b, sizeof b), pieces = 0;
    for (size_t i = 0; i < sizeof b; i += 64)
        pieces = plog_crc32c(pieces, b + i, 64);
    assert_int_equal(whole, pieces);
    uint32_t odd = plog_crc32c(plog_crc32c(0, b, 3), b + 3, sizeof b - 3);
    assert_int_equal(whole, odd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
        T(test_store_append_then_read_returns_same_bytes),
        T(test_store_reopen_keeps_records_and_appends_after_them),
        T(test_store_read_at_returns_raw_frame),
        T(test_store_close_flushes_buffered_frames_to_file),
        T(test_store_read_sees_frames_still_in_the_buffer),
        T(test_store_read_at_spanning_file_and_buffer_is_whole),
        T(test_store_read_past_end_returns_eof),
        T(test_store_read_of_flipped_payload_byte_returns_corrupt),
        T(test_store_empty_payload_round_trips),
        T(test_store_zeroed_header_is_not_a_valid_frame),
        T(test_store_record_larger_than_buffer_round_trips),
        T(test_store_truncate_drops_the_tail),
        T(test_store_crc32c_matches_the_standard_check_value),
        T(test_store_crc32c_is_the_same_for_short_and_long_buffers),
#undef T
    };
    return cmocka_run_group_tests_name("store", tests, NULL, NULL);
}
