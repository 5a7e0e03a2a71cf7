/* file_test.c - the YAML config file: scalars, both list forms, empty files, and
 * every refused form with its line. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal/config/file.h"
#include "internal/err/err.h"
#include "testing/testing.h"

struct fixture {
    char dir[64], path[128];
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    plog_test_tmpdir("yaml", f->dir, sizeof f->dir);
    snprintf(f->path, sizeof f->path, "%s/config.yaml", f->dir);
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

static void write_file(struct fixture *f, const char *text)
{
    FILE *fp = fopen(f->path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
}

static void test_config_file_reads_scalars_and_lists(void **state)
{
    struct fixture *f = *state;
    write_file(f, "# a node\n"
                  "data-dir: /var/lib/proglog\n"
                  "node-name: node1\n"
                  "rpc-port: 8400\n"
                  "start-join-addrs: [127.0.0.1:8411, 127.0.0.1:8421]\n"
                  "peer-tls-ca-file: \"ca file.pem\"\n"
                  "acl-policy-file:\n"
                  "  - ignored-as-list\n");
    plog_config_file *cf;
    char err[256];
    assert_plog_ok(plog_config_file_read(f->path, &cf, err, sizeof err));
    assert_int_equal(plog_config_file_count(cf), 6);
    assert_string_equal(plog_config_file_get(cf, "data-dir"), "/var/lib/proglog");
    assert_string_equal(plog_config_file_get(cf, "rpc-port"), "8400");
    assert_string_equal(plog_config_file_get(cf, "start-join-addrs"), "127.0.0.1:8411,127.0.0.1:8421");
    assert_string_equal(plog_config_file_get(cf, "peer-tls-ca-file"), "ca file.pem");
    assert_string_equal(plog_config_file_get(cf, "acl-policy-file"), "ignored-as-list");
    assert_null(plog_config_file_get(cf, "bind-addr"));
    assert_string_equal(plog_config_file_key(cf, 0), "data-dir");
    assert_int_equal(plog_config_file_line(cf, 2), 4);
    /* which values were lists: start-join-addrs and the block list, not the rest */
    for (size_t i = 0; i < plog_config_file_count(cf); i++)
        assert_int_equal(plog_config_file_is_list(cf, i), i == 3 || i == 5);
    plog_config_file_free(cf);
}

static void test_config_file_empty_is_empty(void **state)
{
    struct fixture *f = *state;
    write_file(f, "# nothing\n");
    plog_config_file *cf;
    char err[256];
    assert_plog_ok(plog_config_file_read(f->path, &cf, err, sizeof err));
    assert_int_equal(plog_config_file_count(cf), 0);
    plog_config_file_free(cf);
}

static void test_config_file_refuses_other_forms_with_their_line(void **state)
{
    struct fixture *f = *state;
    static const struct {
        const char *text, *want;
    } cases[] = {
        {"- a\n- b\n", "1:1: the file must be a mapping"},
        {"a: 1\nb:\n  c: 2\n", "3:3: values must be scalars"},
        {"a: 1\na: 2\n", "2:1: repeated key \"a\" (first on line 1)"},
        {"a: &x 1\nb: *x\n", "2:4: aliases are not allowed"},
        {"a: [b, [c]]\n", "1:8: a key must be a scalar; lists may not nest"},
        {"a: 1\n---\nb: 2\n", "only one YAML document"},
        {"a: [1, 2\n", "config.yaml:"},
        {"just a scalar\n", "1:1: the file must be a mapping"},
        /* libyaml's reader keeps no line for bad bytes: the offset is named
         * (before, "1:1" whatever the line). */
        {"a: 1\nb: 2\nc: x\xe9\n", "config.yaml: byte 14: incomplete UTF-8 octet sequence"},
        {"a: 1\nb: \x01\n", "config.yaml: byte 8: control characters are not allowed"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        write_file(f, cases[i].text);
        plog_config_file *cf = NULL;
        char err[256] = "";
        assert_int_equal(plog_config_file_read(f->path, &cf, err, sizeof err), PLOG_EINVAL);
        assert_null(cf);
        if (strstr(err, cases[i].want) == NULL)
            fail_msg("case %zu: \"%s\" does not contain \"%s\"", i, err, cases[i].want);
    }
}

/* A file over 1 MiB, or a list of more than 1024 values, is refused (before, a
 * comment read from an endless pipe was read until killed, and a list of 200,000
 * values took 7 s, joining them one strlen at a time). */
static void test_config_file_refuses_a_huge_file_or_list(void **state)
{
    struct fixture *f = *state;
    FILE *fp = fopen(f->path, "w");
    assert_non_null(fp);
    for (int i = 0; i < 100000; i++)
        fputs("# a comment\n", fp);
    fclose(fp);
    plog_config_file *cf = NULL;
    char err[256] = "";
    assert_int_equal(plog_config_file_read(f->path, &cf, err, sizeof err), PLOG_EINVAL);
    if (strstr(err, "config.yaml: larger than 1048576 bytes") == NULL)
        fail_msg("a 1.2 MB file: %s", err);
    fp = fopen(f->path, "w");
    assert_non_null(fp);
    fputs("start-join-addrs:\n", fp);
    for (int i = 0; i < 1025; i++)
        fputs("  - a\n", fp);
    fclose(fp);
    assert_int_equal(plog_config_file_read(f->path, &cf, err, sizeof err), PLOG_EINVAL);
    if (strstr(err, "1026:5: a list of more than 1024 values") == NULL)
        fail_msg("a list of 1025: %s", err);
}

static void test_config_file_missing_is_eio_naming_the_file(void **state)
{
    struct fixture *f = *state;
    plog_config_file *cf = NULL;
    char err[256];
    assert_int_equal(plog_config_file_read(f->path, &cf, err, sizeof err), PLOG_EIO);
    assert_non_null(strstr(err, "config.yaml: No such file"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_config_file_reads_scalars_and_lists, setup, teardown),
        cmocka_unit_test_setup_teardown(test_config_file_empty_is_empty, setup, teardown),
        cmocka_unit_test_setup_teardown(test_config_file_refuses_other_forms_with_their_line, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_config_file_refuses_a_huge_file_or_list, setup, teardown),
        cmocka_unit_test_setup_teardown(test_config_file_missing_is_eio_naming_the_file, setup, teardown),
    };
    return cmocka_run_group_tests_name("config_file", tests, NULL, NULL);
}
