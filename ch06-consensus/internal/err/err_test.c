/* err_test.c - every code has its own message. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "internal/err/err.h"

static void test_err_every_code_has_a_distinct_message(void **state)
{
    (void)state;
    static const int codes[] = {
#define X(code, msg) code,
        PLOG_ERRORS(X)
#undef X
    };
    size_t n = sizeof codes / sizeof codes[0];
    for (size_t i = 0; i < n; i++) {
        assert_string_not_equal(plog_strerror(codes[i]), "unknown error");
        for (size_t j = 0; j < i; j++)
            assert_string_not_equal(plog_strerror(codes[i]), plog_strerror(codes[j]));
    }
    assert_string_equal(plog_strerror(PLOG_OK), "ok");
}

static void test_err_unknown_code_says_so(void **state)
{
    (void)state;
    assert_string_equal(plog_strerror(-1), "unknown error");
    assert_string_equal(plog_strerror(10000), "unknown error");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_err_every_code_has_a_distinct_message),
        cmocka_unit_test(test_err_unknown_code_says_so),
    };
    return cmocka_run_group_tests_name("err", tests, NULL, NULL);
}
