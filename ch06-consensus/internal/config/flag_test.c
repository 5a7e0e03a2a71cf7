/* flag_test.c - command-line number and address parsing. */
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

static void test_flag_url_takes_scheme_host_and_port(void **state)
{
    (void)state;
    const char *const tcp[] = {"tcp", NULL}, *const both[] = {"tls+tcp", "tcp", NULL};
    assert_plog_ok(plog_config_flag_url("t", "--addr", "tcp://127.0.0.1:8400", tcp));
    assert_plog_ok(plog_config_flag_url("t", "--addr", "tcp://localhost:1", tcp));
    assert_plog_ok(plog_config_flag_url("t", "--addr", "tcp://[::1]:65535", tcp));
    assert_plog_ok(plog_config_flag_url("t", "--addr", "tls+tcp://127.0.0.1:8400", both));
    assert_plog_ok(plog_config_flag_url("t", "--addr", "tcp://127.0.0.1:8400", both));
}

/* What a user types by mistake: the HOST:PORT of ch01/ch02, another scheme, no
 * port, port 0 or too large, a path. */
static void test_flag_url_refuses_what_is_not_an_address(void **state)
{
    (void)state;
    const char *const tcp[] = {"tcp", NULL};
    const char *bad[] = {"127.0.0.1:8400",
                         "",
                         "tcp://",
                         "tcp://127.0.0.1",
                         "tcp://:8400",
                         "tcp://h:0",
                         "tcp://h:65536",
                         "tcp://h:123456",
                         "tcp://h:80x",
                         "tcp://h:-1",
                         "tls+tcp://h:8400",
                         "ipc:///tmp/x",
                         "tcp://h:8400/path",
                         "tcp://h :8400",
                         "tcp://h:08400"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (plog_config_flag_url("t", "--addr", bad[i], tcp) != PLOG_EINVAL)
            fail_msg("took %s", bad[i]);
}

static void test_flag_hostport_takes_host_and_port_only(void **state)
{
    (void)state;
    assert_plog_ok(plog_config_flag_hostport("t", "--metrics-addr", "127.0.0.1:9400", NULL));
    assert_plog_ok(plog_config_flag_hostport("t", "--metrics-addr", "localhost:1", NULL));
    assert_plog_ok(plog_config_flag_hostport("t", "--metrics-addr", "[::1]:65535", "why"));
    const char *bad[] = {"",      "127.0.0.1", ":9400",         "h:",       "h:0",     "h:65536", "h:99999",
                         "h:80x", "h:-1",      "http://h:9400", "h:9400/x", "h :9400", "h:09400"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (plog_config_flag_hostport("t", "--metrics-addr", bad[i], NULL) != PLOG_EINVAL)
            fail_msg("took %s", bad[i]);
}

static void test_flag_range_takes_its_bounds_and_refuses_beyond_them(void **state)
{
    (void)state;
    uint64_t v = 42;
    assert_plog_ok(plog_config_flag_range("t", "--n", "1", 1, 10, &v));
    assert_int_equal(v, 1);
    assert_plog_ok(plog_config_flag_range("t", "--n", "10", 1, 10, &v));
    assert_int_equal(v, 10);
    assert_int_equal(plog_config_flag_range("t", "--n", "0", 1, 10, &v), PLOG_EINVAL);
    assert_int_equal(plog_config_flag_range("t", "--n", "11", 1, 10, &v), PLOG_EINVAL);
    assert_int_equal(plog_config_flag_range("t", "--n", "x", 1, 10, &v), PLOG_EINVAL);
    assert_int_equal(v, 10); /* untouched on failure */
}

static void test_flag_server_knows_the_range_of_proglog_flags(void **state)
{
    (void)state;
    uint64_t v = 42;
    assert_int_equal(plog_config_flag_server("t", "--workers", "0", &v), PLOG_EINVAL);
    assert_int_equal(plog_config_flag_server("t", "--workers", "4097", &v), PLOG_EINVAL);
    assert_plog_ok(plog_config_flag_server("t", "--workers", "4096", &v));
    assert_int_equal(v, 4096);
    assert_plog_ok(plog_config_flag_server("t", "--initial-offset", "0", &v));
    assert_int_equal(v, 0);
    assert_int_equal(plog_config_flag_server("t", "--initial-offset", "18446744073709551615", &v),
                     PLOG_EINVAL);
    assert_plog_ok(plog_config_flag_server("t", "--not-in-the-table", "18446744073709551615", &v));
    assert_true(v == UINT64_MAX);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_flag_u64_parses_whole_numbers),
        cmocka_unit_test(test_flag_u64_refuses_what_strtoull_would_bend),
        cmocka_unit_test(test_flag_url_takes_scheme_host_and_port),
        cmocka_unit_test(test_flag_url_refuses_what_is_not_an_address),
        cmocka_unit_test(test_flag_hostport_takes_host_and_port_only),
        cmocka_unit_test(test_flag_range_takes_its_bounds_and_refuses_beyond_them),
        cmocka_unit_test(test_flag_server_knows_the_range_of_proglog_flags),
    };
    return cmocka_run_group_tests_name("flag", tests, NULL, NULL);
}
