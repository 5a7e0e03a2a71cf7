/* authorizer_test.c - the ACL (Go: internal/auth, exercised in server_test.go): the
 * book's files allow root and deny nobody with the book's message; wildcards; and
 * every malformed model or policy is refused with file:line. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal/auth/authorizer.h"
#include "internal/err/err.h"
#include "testing/testing.h"

#define BOOK_MODEL                                                                          \
    "[request_definition]\nr = sub, obj, act\n\n[policy_definition]\np = sub, obj, act\n\n" \
    "[policy_effect]\ne = some(where (p.eft == allow))\n\n[matchers]\n"                     \
    "m = r.sub == p.sub && r.obj == p.obj && r.act == p.act\n"
#define BOOK_POLICY "p, root, *, produce\np, root, *, consume\n"

struct fixture {
    char dir[64];
    char model[128];
    char policy[128];
    char err[PLOG_AUTH_ERRMSG_SIZE];
    plog_auth *a;
};

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (f == NULL || fputs(text, f) < 0 || fclose(f) != 0)
        fail_msg("write %s", path);
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    plog_test_tmpdir("auth", f->dir, sizeof f->dir);
    snprintf(f->model, sizeof f->model, "%s/model.conf", f->dir);
    snprintf(f->policy, sizeof f->policy, "%s/policy.csv", f->dir);
    write_file(f->model, BOOK_MODEL);
    write_file(f->policy, BOOK_POLICY);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    plog_auth_free(f->a);
    plog_test_rmrf(f->dir);
    free(f);
    return 0;
}

/* load writes policy (and model unless NULL) and loads them; returns the code. */
static int load(struct fixture *f, const char *model, const char *policy)
{
    if (model != NULL)
        write_file(f->model, model);
    write_file(f->policy, policy);
    f->err[0] = '\0';
    return plog_auth_new(model != NULL ? f->model : NULL, f->policy, &f->a, f->err, sizeof f->err);
}

static void assert_err_contains(const struct fixture *f, const char *needle)
{
    if (strstr(f->err, needle) == NULL)
        fail_msg("error \"%s\" does not contain \"%s\"", f->err, needle);
}

/* Go: TestServer "unauthorized fails" with the book's model.conf and policy.csv. */
static void test_auth_book_policy_allows_root_and_denies_nobody(void **state)
{
    struct fixture *f = *state;
    assert_plog_ok(load(f, BOOK_MODEL, BOOK_POLICY));
    assert_int_equal(plog_auth_rules(f->a), 2);
    assert_int_equal(plog_auth_authorize(f->a, "root", PLOG_AUTH_OBJECT_ANY, PLOG_AUTH_PRODUCE), PLOG_OK);
    assert_int_equal(plog_auth_authorize(f->a, "root", PLOG_AUTH_OBJECT_ANY, PLOG_AUTH_CONSUME), PLOG_OK);
    assert_int_equal(plog_auth_authorize(f->a, "nobody", PLOG_AUTH_OBJECT_ANY, PLOG_AUTH_PRODUCE),
                     PLOG_EPERM);
    assert_int_equal(plog_auth_authorize(f->a, "nobody", PLOG_AUTH_OBJECT_ANY, PLOG_AUTH_CONSUME),
                     PLOG_EPERM);
    assert_int_equal(plog_auth_authorize(f->a, "root", PLOG_AUTH_OBJECT_ANY, "delete"), PLOG_EPERM);
    /* Names are exact: case and prefixes matter. */
    assert_int_equal(plog_auth_authorize(f->a, "Root", "*", "produce"), PLOG_EPERM);
    assert_int_equal(plog_auth_authorize(f->a, "roo", "*", "produce"), PLOG_EPERM);
}

static void test_auth_denial_message_has_the_books_shape(void **state)
{
    (void)state;
    char buf[128];
    plog_auth_denial("nobody", PLOG_AUTH_OBJECT_ANY, PLOG_AUTH_PRODUCE, buf, sizeof buf);
    assert_string_equal(buf, "nobody not permitted to produce to *");
    plog_auth_denial("", "*", "consume", buf, sizeof buf);
    assert_string_equal(buf, "(unauthenticated) not permitted to consume to *");
}

static void test_auth_model_file_is_optional(void **state)
{
    struct fixture *f = *state;
    assert_plog_ok(load(f, NULL, BOOK_POLICY));
    assert_int_equal(plog_auth_authorize(f->a, "root", "*", "consume"), PLOG_OK);
}

static void test_auth_policy_wildcards_match_any_value(void **state)
{
    struct fixture *f = *state;
    assert_plog_ok(load(f, NULL,
                        "# everyone may read; root may do anything\n"
                        "p, *, *, consume\n\n"
                        "  p ,  root ,  \"*\" , * \r\n"
                        "p, writer, topic-a, produce\n"));
    assert_int_equal(plog_auth_rules(f->a), 3);
    assert_int_equal(plog_auth_authorize(f->a, "anyone", "*", "consume"), PLOG_OK);
    assert_int_equal(plog_auth_authorize(f->a, "anyone", "*", "produce"), PLOG_EPERM);
    assert_int_equal(plog_auth_authorize(f->a, "root", "x", "truncate"), PLOG_OK);
    assert_int_equal(plog_auth_authorize(f->a, "writer", "topic-a", "produce"), PLOG_OK);
    /* A "*" in the request is not a wildcard: only policy values are. */
    assert_int_equal(plog_auth_authorize(f->a, "writer", "*", "produce"), PLOG_EPERM);
}

static void test_auth_unauthenticated_subject_is_always_denied(void **state)
{
    struct fixture *f = *state;
    assert_plog_ok(load(f, NULL, "p, *, *, *\n"));
    assert_int_equal(plog_auth_authorize(f->a, "", "*", "consume"), PLOG_EPERM);
    assert_int_equal(plog_auth_authorize(f->a, NULL, "*", "consume"), PLOG_EPERM);
    assert_int_equal(plog_auth_authorize(f->a, "x", "*", "consume"), PLOG_OK);
}

static void test_auth_empty_policy_denies_everything(void **state)
{
    struct fixture *f = *state;
    assert_plog_ok(load(f, NULL, "# nothing yet\n\n"));
    assert_int_equal(plog_auth_rules(f->a), 0);
    assert_int_equal(plog_auth_authorize(f->a, "root", "*", "produce"), PLOG_EPERM);
}

static void test_auth_malformed_policy_lines_name_file_and_line(void **state)
{
    struct fixture *f = *state;
    static const struct {
        const char *policy;
        const char *needle;
    } cases[] = {
        {"p, root, *, produce\np, root, *\n",
         "policy.csv:2: want 4 fields (p, subject, object, action), got 3"},
        {"p, root, *, produce, extra\n", "policy.csv:1: want 4 fields"},
        {"p, \"root, *, produce\n", "policy.csv:1: a stray double quote in the subject"},
        {"p, root\", *, produce\n", "policy.csv:1: a stray double quote in the subject"},
        {"p, root, *, pro\"duce\"\n", "policy.csv:1: a stray double quote in the action"},
        {"\n# c\nq, root, *, produce\n", "policy.csv:3: unknown rule type \"q\""},
        {"g, alice, admin\n", "policy.csv:1: role lines"},
        {"p, , *, produce\n", "policy.csv:1: empty subject"},
        {"p, root, *, \n", "policy.csv:1: empty action"},
        {"p root * produce\n", "policy.csv:1: unknown rule type"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        assert_int_equal(load(f, NULL, cases[i].policy), PLOG_EINVAL);
        assert_null(f->a);
        assert_err_contains(f, f->dir);
        assert_err_contains(f, cases[i].needle);
    }
}

static void test_auth_unsupported_model_is_refused_with_line(void **state)
{
    struct fixture *f = *state;
    static const struct {
        const char *model;
        const char *needle;
    } cases[] = {
        {"[request_definition]\nr = sub, obj, act\n[role_definition]\ng = _, _\n",
         "model.conf:3: section [role_definition] is not supported"},
        {"[request_definition]\nr = sub, act\n", "model.conf:2: unsupported [request_definition]"},
        {"[request_definition]\nr = sub, obj, act\n[policy_definition]\np = sub, obj, act\n"
         "[policy_effect]\ne = !some(where (p.eft == deny))\n",
         "model.conf:6: unsupported [policy_effect]"},
        {"[matchers]\nm = r.sub == p.sub || r.act == p.act\n", "model.conf:2: unsupported [matchers]"},
        {"r = sub, obj, act\n", "model.conf:1: expected \"key = value\" inside a section"},
        {"[matchers\n", "model.conf:1: malformed section header"},
        {"[request_definition]\nr = sub, obj, act\n", "model.conf: missing [policy_definition]"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        assert_int_equal(load(f, cases[i].model, BOOK_POLICY), PLOG_EINVAL);
        assert_null(f->a);
        assert_err_contains(f, cases[i].needle);
    }
}

static void test_auth_missing_files_are_io_errors(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(plog_auth_new(NULL, "/nonexistent/policy.csv", &f->a, f->err, sizeof f->err), PLOG_EIO);
    assert_err_contains(f, "/nonexistent/policy.csv: No such file");
    assert_int_equal(plog_auth_new("/nonexistent/model.conf", f->policy, &f->a, f->err, sizeof f->err),
                     PLOG_EIO);
    assert_err_contains(f, "/nonexistent/model.conf");
    assert_int_equal(plog_auth_new(NULL, NULL, &f->a, f->err, sizeof f->err), PLOG_EINVAL);
    assert_null(f->a);
    /* A directory opens on Linux; it is refused as one, not at "line 1". */
    assert_int_equal(plog_auth_new(NULL, "/tmp", &f->a, f->err, sizeof f->err), PLOG_EIO);
    assert_null(f->a);
    assert_err_contains(f, "/tmp: Is a directory");
    assert_null(strstr(f->err, ":1:"));
    assert_int_equal(plog_auth_new("/tmp", f->policy, &f->a, f->err, sizeof f->err), PLOG_EIO);
    assert_err_contains(f, "/tmp: Is a directory");
    /* A FIFO is refused at once (before, the open waited for a writer, and a SIGHUP
     * reload with it, on the thread that also hears SIGTERM: alarm ends the test
     * process if it waits). */
    char fifo[600];
    snprintf(fifo, sizeof fifo, "%s.fifo", f->policy);
    assert_int_equal(mkfifo(fifo, 0600), 0);
    alarm(10);
    int rv = plog_auth_new(NULL, fifo, &f->a, f->err, sizeof f->err);
    alarm(0);
    unlink(fifo);
    assert_int_equal(rv, PLOG_EIO);
    assert_err_contains(f, ".fifo: nothing to read (an empty pipe, or a FIFO nobody writes to?)");
}

static void test_auth_overlong_line_is_refused(void **state)
{
    struct fixture *f = *state;
    char *big = malloc(10000);
    memset(big, 'x', 9998);
    memcpy(big, "p, ", 3);
    big[9998] = '\n';
    big[9999] = '\0';
    assert_int_equal(load(f, NULL, big), PLOG_EINVAL);
    assert_err_contains(f, "policy.csv:1: line too long (the limit is 4094 bytes)");
    free(big);
    /* A NUL byte is named as one (before: "line too long" for a 24-byte line). */
    static const char nul[] = "p, root, *, consume\np, root, *, produce\0junk\n";
    FILE *fp = fopen(f->policy, "w");
    assert_non_null(fp);
    assert_int_equal(fwrite(nul, 1, sizeof nul - 1, fp), sizeof nul - 1);
    assert_int_equal(fclose(fp), 0);
    assert_int_equal(plog_auth_new(NULL, f->policy, &f->a, f->err, sizeof f->err), PLOG_EINVAL);
    assert_null(f->a);
    assert_err_contains(f, "policy.csv:2: a NUL byte in the line");
    /* also on a last line without its newline */
    fp = fopen(f->policy, "w");
    assert_non_null(fp);
    assert_int_equal(fwrite(nul, 1, sizeof nul - 2, fp), sizeof nul - 2);
    assert_int_equal(fclose(fp), 0);
    assert_int_equal(plog_auth_new(NULL, f->policy, &f->a, f->err, sizeof f->err), PLOG_EINVAL);
    assert_err_contains(f, "policy.csv:2: a NUL byte in the line");
}

/* A UTF-8 byte order mark before line 1 (some editors write one) is skipped. */
static void test_auth_byte_order_mark_is_skipped(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(load(f, NULL, "\xEF\xBB\xBFp, root, *, produce\n"), PLOG_OK);
    assert_int_equal(plog_auth_rules(f->a), 1);
    assert_int_equal(plog_auth_authorize(f->a, "root", "*", "produce"), PLOG_OK);
}

/* The files the chapter ships (common/certs) are the book's and load. */
static void test_auth_shipped_model_and_policy_load(void **state)
{
    struct fixture *f = *state;
    char model[512], policy[512];
    const char *chapter = getenv("PLOG_CHAPTER");
    snprintf(model, sizeof model, "%s/../common/certs/model.conf", chapter != NULL ? chapter : ".");
    snprintf(policy, sizeof policy, "%s/../common/certs/policy.csv", chapter != NULL ? chapter : ".");
    int rv = plog_auth_new(model, policy, &f->a, f->err, sizeof f->err);
    if (rv != PLOG_OK)
        fail_msg("%s", f->err);
    assert_int_equal(plog_auth_authorize(f->a, "root", "*", "produce"), PLOG_OK);
    assert_int_equal(plog_auth_authorize(f->a, "nobody", "*", "consume"), PLOG_EPERM);
}

/* reload writes policy and reloads f->a with it (and the book's model). */
static int reload(struct fixture *f, const char *policy)
{
    write_file(f->policy, policy);
    f->err[0] = '\0';
    return plog_auth_reload(f->a, f->model, f->policy, f->err, sizeof f->err);
}

/* After a reload the new rules decide: nobody gains produce, root loses it. */
static void test_auth_reload_replaces_the_rules(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(load(f, BOOK_MODEL, BOOK_POLICY), PLOG_OK);
    assert_int_equal(plog_auth_authorize(f->a, "nobody", "*", "produce"), PLOG_EPERM);
    assert_int_equal(reload(f, "p, nobody, *, produce\n"), PLOG_OK);
    assert_int_equal(plog_auth_rules(f->a), 1);
    assert_int_equal(plog_auth_authorize(f->a, "nobody", "*", "produce"), PLOG_OK);
    assert_int_equal(plog_auth_authorize(f->a, "root", "*", "produce"), PLOG_EPERM);
    assert_int_equal(reload(f, ""), PLOG_OK);
    assert_int_equal(plog_auth_rules(f->a), 0);
    assert_int_equal(plog_auth_authorize(f->a, "nobody", "*", "produce"), PLOG_EPERM);
}

/* Rules no check of the program can match are counted and the first is named: an
 * action the program never asks for (a typo, a capital) or an object other than
 * "*"; "*" and the actions given are fine, and a reload is counted afresh. */
static void test_auth_unmatched_rules_are_counted_and_the_first_named(void **state)
{
    struct fixture *f = *state;
    static const char *const actions[] = {PLOG_AUTH_PRODUCE, PLOG_AUTH_CONSUME};
    char first[128];
    assert_plog_ok(load(f, BOOK_MODEL,
                        "p, root, *, produce\n"
                        "# a comment\n"
                        "p, root, *, Consume\n"
                        "p, *, *, *\n"
                        "p, writer, topic-a, produce\n"
                        "p, reader, *, prodcue\n"));
    assert_int_equal(plog_auth_unmatched(f->a, actions, 2, first, sizeof first), 3);
    assert_string_equal(first, "line 3: action \"Consume\"");
    assert_int_equal(plog_auth_unmatched(f->a, actions, 0, first, sizeof first), 4);
    assert_int_equal(reload(f, "p, writer, topic-a, produce\n"), PLOG_OK);
    assert_int_equal(plog_auth_unmatched(f->a, actions, 2, first, sizeof first), 1);
    assert_string_equal(first, "line 1: object \"topic-a\"");
    assert_int_equal(reload(f, BOOK_POLICY), PLOG_OK);
    assert_int_equal(plog_auth_unmatched(f->a, actions, 2, first, sizeof first), 0);
    assert_string_equal(first, "");
}

/* A bad file leaves the rules in force, and the error names file and line. */
static void test_auth_reload_of_a_bad_policy_keeps_the_old_rules(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(load(f, BOOK_MODEL, BOOK_POLICY), PLOG_OK);
    assert_int_equal(reload(f, "p, nobody, *, produce\np, nobody, *\n"), PLOG_EINVAL);
    assert_err_contains(f, "policy.csv:2:");
    assert_int_equal(plog_auth_rules(f->a), 2);
    assert_int_equal(plog_auth_authorize(f->a, "root", "*", "produce"), PLOG_OK);
    assert_int_equal(plog_auth_authorize(f->a, "nobody", "*", "produce"), PLOG_EPERM);
    assert_int_equal(unlink(f->policy), 0);
    assert_int_equal(plog_auth_reload(f->a, f->model, f->policy, f->err, sizeof f->err), PLOG_EIO);
    assert_err_contains(f, "policy.csv");
    assert_int_equal(plog_auth_authorize(f->a, "root", "*", "consume"), PLOG_OK);
}

struct checker {
    plog_auth *a;
    atomic_bool stop;
    atomic_long checks, wrong;
};

/* Both policies of the race test let root produce and nobody else do anything, so
 * any other answer is a check that saw a half-swapped rule set. */
static void *check_loop(void *arg)
{
    struct checker *c = arg;
    while (!atomic_load(&c->stop)) {
        if (plog_auth_authorize(c->a, "root", "*", "produce") != PLOG_OK ||
            plog_auth_authorize(c->a, "ghost", "*", "consume") != PLOG_EPERM)
            atomic_fetch_add(&c->wrong, 1);
        atomic_fetch_add(&c->checks, 1);
    }
    return NULL;
}

/* Checks on other threads while the rules are swapped 200 times: every answer is
 * right, and ASan/TSan (make test SAN=1, TSAN=1) see no use of freed rules. */
static void test_auth_reload_races_no_check(void **state)
{
    struct fixture *f = *state;
    char big[4096] = "";
    for (int i = 0; i < 60; i++) {
        char line[64];
        snprintf(line, sizeof line, "p, user%d, *, consume\n", i);
        strcat(big, line);
    }
    strcat(big, "p, root, *, produce\n");
    assert_int_equal(load(f, BOOK_MODEL, BOOK_POLICY), PLOG_OK);
    struct checker c = {.a = f->a};
    pthread_t th[3];
    for (int i = 0; i < 3; i++)
        pthread_create(&th[i], NULL, check_loop, &c);
    for (int i = 0; i < 200; i++)
        if (reload(f, i % 2 == 0 ? big : "p, root, *, produce\n") != PLOG_OK)
            fail_msg("reload %d: %s", i, f->err);
    atomic_store(&c.stop, true);
    for (int i = 0; i < 3; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(atomic_load(&c.wrong), 0);
    assert_true(atomic_load(&c.checks) > 0);
    assert_int_equal(plog_auth_rules(f->a), 1);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_auth_book_policy_allows_root_and_denies_nobody),
        T(test_auth_denial_message_has_the_books_shape),
        T(test_auth_model_file_is_optional),
        T(test_auth_policy_wildcards_match_any_value),
        T(test_auth_unauthenticated_subject_is_always_denied),
        T(test_auth_empty_policy_denies_everything),
        T(test_auth_malformed_policy_lines_name_file_and_line),
        T(test_auth_unsupported_model_is_refused_with_line),
        T(test_auth_missing_files_are_io_errors),
        T(test_auth_overlong_line_is_refused),
        T(test_auth_byte_order_mark_is_skipped),
        T(test_auth_shipped_model_and_policy_load),
        T(test_auth_reload_replaces_the_rules),
        T(test_auth_unmatched_rules_are_counted_and_the_first_named),
        T(test_auth_reload_of_a_bad_policy_keeps_the_old_rules),
        T(test_auth_reload_races_no_check),
    };
#undef T
    return cmocka_run_group_tests_name("auth", tests, NULL, NULL);
}
