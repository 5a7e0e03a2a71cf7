/* logcode_test.c - the log encodes Records by hand on its append path
 * (internal/log/segment.c), and the server sends those bytes to clients as they are
 * stored: this pins them to protobuf-c, generated from api/v1/log.proto, byte for
 * byte, on random records from a fixed seed, read back both one at a time
 * (Consume) and in batches (ConsumeStream). A field number changed in log.proto
 * alone fails here. (The server's and the envelope's hand encoders are pinned in
 * internal/rpc/handcode_test.c.) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/v1/log.pb-c.h"
#include "internal/err/err.h"
#include "internal/log/config.h"
#include "internal/log/log.h"
#include "testing/testing.h"

#define SEED 0x2545f4914f6cdd1dull
#define RECORDS 3000

static uint64_t rng = SEED;

/* The value of record i: random bytes of a random length (empty an eighth of the
 * time), regenerated from i so that nothing needs keeping. */
static size_t value_of(uint64_t i, uint8_t *buf, size_t max)
{
    uint64_t state = SEED ^ (i * 0x9e3779b97f4a7c15ull) ^ 1;
    return plog_test_rand_bytes(&state, buf, max);
}

static void assert_is_protobuf_c_record(const uint8_t *got, size_t glen, const uint8_t *value, size_t vlen,
                                        uint64_t off)
{
    Log__V1__Record rec = LOG__V1__RECORD__INIT;
    rec.value.data = (uint8_t *)value;
    rec.value.len = vlen;
    rec.offset = off;
    uint8_t want[600];
    size_t wlen = log__v1__record__get_packed_size(&rec);
    assert_true(wlen <= sizeof want);
    assert_int_equal(log__v1__record__pack(&rec, want), wlen);
    if (glen != wlen || memcmp(got, want, wlen) != 0)
        fail_msg("offset %llu: the log stored %zu bytes, protobuf-c writes %zu, or different bytes",
                 (unsigned long long)off, glen, wlen);
}

/* Offsets start at 0 (offset 0 is left out of the encoding) and, in a second log,
 * near 2^56, so every varint size of the offset comes up; small segments so that
 * reads cross segment boundaries. */
static void pin(uint64_t initial)
{
    char dir[64];
    plog_test_tmpdir("logcode", dir, sizeof dir);
    plog_log_config cfg = {.segment = {.max_store_bytes = 64 << 10, .initial_offset = initial},
                           .sync = PLOG_SYNC_NEVER};
    plog_log *log;
    assert_plog_ok(plog_log_open(dir, &cfg, &log));
    uint8_t value[400];
    for (uint64_t i = 0; i < RECORDS; i++) {
        Log__V1__Record rec = LOG__V1__RECORD__INIT;
        rec.value.len = value_of(i, value, sizeof value);
        rec.value.data = value;
        rec.offset = plog_test_rand(&rng); /* the log sets it: a random one must not leak */
        uint64_t off;
        assert_plog_ok(plog_log_append(log, &rec, &off));
        assert_true(off == initial + i);
    }
    assert_plog_ok(plog_log_commit(log, initial + RECORDS - 1));
    for (uint64_t i = 0; i < RECORDS; i++) {
        uint8_t *raw;
        size_t len;
        assert_plog_ok(plog_log_read_raw(log, initial + i, &raw, &len));
        size_t vlen = value_of(i, value, sizeof value);
        assert_is_protobuf_c_record(raw, len, value, vlen, initial + i);
        free(raw);
    }
    for (uint64_t at = initial; at < initial + RECORDS;) {
        plog_log_batch b = {0};
        size_t max_n = 1 + (size_t)(plog_test_rand(&rng) % 500);
        assert_plog_ok(plog_log_read_batch(log, at, max_n, 1 << 20, &b));
        assert_true(b.n > 0);
        for (size_t k = 0; k < b.n; k++) {
            size_t vlen = value_of(at + k - initial, value, sizeof value);
            assert_is_protobuf_c_record(b.rec[k], b.len[k], value, vlen, at + k);
        }
        at += b.n;
        plog_log_batch_fini(&b);
    }
    assert_plog_ok(plog_log_close(log));
    plog_test_rmrf(dir);
}

static void test_log_records_are_protobuf_c_byte_for_byte_from_offset_zero(void **state)
{
    (void)state;
    pin(0);
}

static void test_log_records_are_protobuf_c_byte_for_byte_at_large_offsets(void **state)
{
    (void)state;
    pin((1ull << 56) - 1000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_log_records_are_protobuf_c_byte_for_byte_from_offset_zero),
        cmocka_unit_test(test_log_records_are_protobuf_c_byte_for_byte_at_large_offsets),
    };
    printf("logcode: seed=0x%llx records=%d\n", (unsigned long long)SEED, RECORDS);
    return cmocka_run_group_tests_name("logcode", tests, NULL, NULL);
}
