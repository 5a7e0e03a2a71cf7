/* record_test.c - the protobuf Record round-trips through protobuf-c
 * (Go: the book's chapter 2 checks the generated struct the same way). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "api/v1/log.pb-c.h"

static void round_trip(const uint8_t *value, size_t len, uint64_t offset)
{
    Log__V1__Record in = LOG__V1__RECORD__INIT;
    in.value.data = (uint8_t *)value;
    in.value.len = len;
    in.offset = offset;
    size_t size = log__v1__record__get_packed_size(&in);
    uint8_t *buf = malloc(size ? size : 1);
    assert_int_equal(log__v1__record__pack(&in, buf), size);

    Log__V1__Record *out = log__v1__record__unpack(NULL, size, buf);
    assert_non_null(out);
    assert_int_equal(out->offset, offset);
    assert_int_equal(out->value.len, len);
    if (len > 0)
        assert_memory_equal(out->value.data, value, len);
    log__v1__record__free_unpacked(out, NULL);
    free(buf);
}

static void test_record_round_trips_small_value(void **state)
{
    (void)state;
    round_trip((const uint8_t *)"hello world", 11, 42);
}

static void test_record_round_trips_empty_value(void **state)
{
    (void)state;
    round_trip(NULL, 0, 0);
    round_trip(NULL, 0, UINT64_MAX);
}

static void test_record_round_trips_one_mib_value(void **state)
{
    (void)state;
    size_t len = 1u << 20;
    uint8_t *v = malloc(len);
    for (size_t i = 0; i < len; i++)
        v[i] = (uint8_t)(i * 2654435761u >> 24);
    round_trip(v, len, 7);
    free(v);
}

static void test_record_uses_the_books_field_numbers(void **state)
{
    (void)state;
    /* value = field 1 (bytes, tag 0x0a), offset = field 2 (varint, tag 0x10). */
    Log__V1__Record in = LOG__V1__RECORD__INIT;
    in.value.data = (uint8_t *)"hi";
    in.value.len = 2;
    in.offset = 5;
    uint8_t buf[16];
    size_t n = log__v1__record__pack(&in, buf);
    static const uint8_t want[] = {0x0a, 0x02, 'h', 'i', 0x10, 0x05};
    assert_int_equal(n, sizeof want);
    assert_memory_equal(buf, want, sizeof want);
}

static void test_record_unpack_rejects_garbage(void **state)
{
    (void)state;
    static const uint8_t garbage[] = {0x0a, 0x10, 'x'}; /* length 16, one byte present */
    assert_null(log__v1__record__unpack(NULL, sizeof garbage, garbage));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_record_round_trips_small_value),
        cmocka_unit_test(test_record_round_trips_empty_value),
        cmocka_unit_test(test_record_round_trips_one_mib_value),
        cmocka_unit_test(test_record_uses_the_books_field_numbers),
        cmocka_unit_test(test_record_unpack_rejects_garbage),
    };
    return cmocka_run_group_tests_name("record", tests, NULL, NULL);
}
