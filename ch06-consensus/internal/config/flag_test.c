/* flag_test.c - command-line number parsing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "internal/config/flag.h"
#include "internal/err/err.h"
#include "testing/testing.h"

static void test_flag_u64_parses_whole_numbers(void **state)
{
    (void)state;
    uint64_t v = 1;
    assert_plog_ok(plog_config_flag_u64("t", "--n", "0", &v));
    assert_int_equal(v, 0);
    assert_plog_ok(plog_config_flag_u64("t", "--n", "18446744073709551615", &v));
    assert_true(v == UINT64_MAX);
}

static void test_flag_u64_refuses_what_strtoull_would_bend(void **state)
{
    (void)state;
    static const char *bad[] = {"", "-1", "+1", " 7", "7 ", "7x", "0x10", "18446744073709551616"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint64_t v = 42;
        assert_int_equal(plog_config_flag_u64("t", "--n", bad[i], &v), PLOG_EINVAL);
        assert_int_equal(v, 42); /* untouched on failure */
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_flag_u64_parses_whole_numbers),
        cmocka_unit_test(test_flag_u64_refuses_what_strtoull_would_bend),
    };
    return cmocka_run_group_tests_name("flag", tests, NULL, NULL);
}
