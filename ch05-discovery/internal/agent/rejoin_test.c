/* rejoin_test.c - the member list of DATA_DIR/members (rejoin.h): what is
 * remembered comes back after a reload, a member that left is forgotten, and
 * a damaged file costs only its damaged lines. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal/agent/rejoin.h"
#include "internal/err/err.h"
#include "testing/testing.h"

static int setup(void **state)
{
    char *dir = malloc(64);
    plog_test_tmpdir("rejoin", dir, 64);
    *state = dir;
    return 0;
}

static int teardown(void **state)
{
    plog_test_rmrf(*state);
    free(*state);
    return 0;
}

static void write_file(const char *dir, const char *text)
{
    char path[128];
    snprintf(path, sizeof path, "%s/members", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void test_rejoin_remembers_across_a_reload_and_forgets_who_left(void **state)
{
    const char *dir = *state;
    static plog_agent_rejoin r, again;
    size_t skipped;
    assert_plog_ok(plog_agent_rejoin_load(&r, dir, &skipped));
    assert_int_equal(r.n, 0);
    assert_plog_ok(plog_agent_rejoin_saw(&r, "node2", "tls+tcp://127.0.0.1:8411"));
    assert_plog_ok(plog_agent_rejoin_saw(&r, "node3", "tls+tcp://127.0.0.1:8421"));
    assert_plog_ok(plog_agent_rejoin_saw(&r, "node2", "tls+tcp://127.0.0.1:9411")); /* moved */
    assert_plog_ok(plog_agent_rejoin_left(&r, "node3"));
    assert_plog_ok(plog_agent_rejoin_load(&again, dir, &skipped));
    assert_int_equal(skipped, 0);
    assert_int_equal(again.n, 1);
    assert_string_equal(again.m[0].name, "node2");
    assert_string_equal(again.m[0].addr, "tls+tcp://127.0.0.1:9411");
    assert_int_equal(plog_agent_rejoin_saw(&r, "two words", "x:1"), PLOG_EINVAL);
}

static void test_rejoin_skips_damaged_lines(void **state)
{
    const char *dir = *state;
    char text[2048] = "node2 tls+tcp://a:1\n"
                      "no-address\n"
                      "node2 tls+tcp://duplicate:1\n"
                      "node3 tls+tcp://b:2 trailing\n"
                      "node4 ";
    size_t n = strlen(text);
    memset(text + n, 'x', 600);                      /* an overlong line */
    strcpy(text + n + 600, "\nnode5 tls+tcp://c:3"); /* the last line, without its newline */
    write_file(dir, text);
    static plog_agent_rejoin r;
    size_t skipped;
    assert_plog_ok(plog_agent_rejoin_load(&r, dir, &skipped));
    assert_int_equal(r.n, 2);
    assert_string_equal(r.m[0].name, "node2");
    assert_string_equal(r.m[0].addr, "tls+tcp://a:1");
    assert_string_equal(r.m[1].name, "node5");
    assert_string_equal(r.m[1].addr, "tls+tcp://c:3");
    assert_int_equal(skipped, 4);
}

static void test_rejoin_join_list_adds_only_new_addresses(void **state)
{
    const char *dir = *state;
    write_file(dir, "node2 tls+tcp://a:1\nnode3 tls+tcp://b:2\n");
    static plog_agent_rejoin r;
    size_t skipped;
    assert_plog_ok(plog_agent_rejoin_load(&r, dir, &skipped));
    const char *join[4] = {"tls+tcp://b:2"};
    size_t n = 1;
    plog_agent_rejoin_join_list(&r, join, 4, &n);
    assert_int_equal(n, 2);
    assert_string_equal(join[1], "tls+tcp://a:1");
    n = 1;
    plog_agent_rejoin_join_list(&r, join, 1, &n); /* full */
    assert_int_equal(n, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_rejoin_remembers_across_a_reload_and_forgets_who_left, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_rejoin_skips_damaged_lines, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rejoin_join_list_adds_only_new_addresses, setup, teardown),
    };
    return cmocka_run_group_tests_name("rejoin", tests, NULL, NULL);
}
