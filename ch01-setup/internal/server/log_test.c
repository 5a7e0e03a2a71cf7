/* log_test.c - the in-memory log (Go: internal/server/log.go has no test; these
 * pin down its contract). */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "internal/err/err.h"
#include "internal/server/log.h"
#include "testing/testing.h"

static int setup(void **state)
{
    plog_server_memlog *l;
    assert_plog_ok(plog_server_memlog_new(&l));
    *state = l;
    return 0;
}

static int teardown(void **state)
{
    plog_server_memlog_free(*state);
    return 0;
}

static uint64_t append_str(plog_server_memlog *l, const char *s)
{
    Log__V1__Record r = LOG__V1__RECORD__INIT;
    r.value.data = (uint8_t *)s;
    r.value.len = strlen(s);
    uint64_t off;
    assert_plog_ok(plog_server_memlog_append(l, &r, &off));
    return off;
}

static void test_memlog_append_then_read_returns_same_value(void **state)
{
    plog_server_memlog *l = *state;
    uint64_t off = append_str(l, "hello world");
    Log__V1__Record *r;
    assert_plog_ok(plog_server_memlog_read(l, off, &r));
    assert_int_equal(r->offset, off);
    assert_int_equal(r->value.len, 11);
    assert_memory_equal(r->value.data, "hello world", 11);
    log__v1__record__free_unpacked(r, NULL);
}

static void test_memlog_offsets_count_up_from_zero(void **state)
{
    plog_server_memlog *l = *state;
    char buf[32];
    for (uint64_t i = 0; i < 1000; i++) {
        snprintf(buf, sizeof buf, "record-%llu", (unsigned long long)i);
        assert_int_equal(append_str(l, buf), i);
    }
    assert_int_equal(plog_server_memlog_len(l), 1000);
    for (uint64_t i = 0; i < 1000; i++) {
        Log__V1__Record *r;
        assert_plog_ok(plog_server_memlog_read(l, i, &r));
        snprintf(buf, sizeof buf, "record-%llu", (unsigned long long)i);
        assert_int_equal(r->value.len, strlen(buf));
        assert_memory_equal(r->value.data, buf, r->value.len);
        log__v1__record__free_unpacked(r, NULL);
    }
}

static void test_memlog_read_of_absent_offset_is_not_found(void **state)
{
    plog_server_memlog *l = *state;
    Log__V1__Record *r = (Log__V1__Record *)0x1;
    assert_int_equal(plog_server_memlog_read(l, 0, &r), PLOG_ERANGE);
    assert_ptr_equal(r, (Log__V1__Record *)0x1); /* out-param untouched on failure */
    append_str(l, "a");
    assert_int_equal(plog_server_memlog_read(l, 1, &r), PLOG_ERANGE);
    assert_int_equal(plog_server_memlog_read(l, UINT64_MAX, &r), PLOG_ERANGE);
}

static void test_memlog_keeps_empty_values(void **state)
{
    plog_server_memlog *l = *state;
    uint64_t off = append_str(l, "");
    Log__V1__Record *r;
    assert_plog_ok(plog_server_memlog_read(l, off, &r));
    assert_int_equal(r->value.len, 0);
    log__v1__record__free_unpacked(r, NULL);
}

#define THREADS 8
#define PER_THREAD 10000

struct writer {
    plog_server_memlog *l;
    int id;
    uint64_t offs[PER_THREAD];
};

static void *write_many(void *arg)
{
    struct writer *w = arg;
    char buf[32];
    for (int i = 0; i < PER_THREAD; i++) {
        snprintf(buf, sizeof buf, "%d/%d", w->id, i);
        Log__V1__Record r = LOG__V1__RECORD__INIT;
        r.value.data = (uint8_t *)buf;
        r.value.len = strlen(buf);
        if (plog_server_memlog_append(w->l, &r, &w->offs[i]) != PLOG_OK)
            w->offs[i] = UINT64_MAX;
    }
    return NULL;
}

static void test_memlog_concurrent_appends_get_unique_contiguous_offsets(void **state)
{
    plog_server_memlog *l = *state;
    struct writer *w = calloc(THREADS, sizeof *w);
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++) {
        w[i].l = l;
        w[i].id = i;
        assert_int_equal(pthread_create(&t[i], NULL, write_many, &w[i]), 0);
    }
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);

    const uint64_t total = THREADS * PER_THREAD;
    assert_int_equal(plog_server_memlog_len(l), total);
    uint8_t *seen = calloc(total, 1);
    char buf[32];
    for (int i = 0; i < THREADS; i++) {
        for (int j = 0; j < PER_THREAD; j++) {
            uint64_t off = w[i].offs[j];
            assert_true(off < total);
            assert_false(seen[off]);
            seen[off] = 1;
            Log__V1__Record *r;
            assert_plog_ok(plog_server_memlog_read(l, off, &r));
            snprintf(buf, sizeof buf, "%d/%d", i, j);
            assert_int_equal(r->value.len, strlen(buf));
            assert_memory_equal(r->value.data, buf, r->value.len);
            log__v1__record__free_unpacked(r, NULL);
        }
    }
    free(seen);
    free(w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_memlog_append_then_read_returns_same_value, setup, teardown),
        cmocka_unit_test_setup_teardown(test_memlog_offsets_count_up_from_zero, setup, teardown),
        cmocka_unit_test_setup_teardown(test_memlog_read_of_absent_offset_is_not_found, setup, teardown),
        cmocka_unit_test_setup_teardown(test_memlog_keeps_empty_values, setup, teardown),
        cmocka_unit_test_setup_teardown(test_memlog_concurrent_appends_get_unique_contiguous_offsets, setup,
                                        teardown),
    };
    return cmocka_run_group_tests_name("memlog", tests, NULL, NULL);
}
