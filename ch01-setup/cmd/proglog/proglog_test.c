/* proglog_test.c - end to end: the real build/proglog on a free port, driven
 * over HTTP by curl (Go: the book tries the server with curl by hand). */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "testing/testing.h"

struct fixture {
    plog_test_proc srv;
    int port;
    char dir[64];
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    plog_test_tmpdir("http", f->dir, sizeof f->dir);
    f->port = plog_test_free_port();
    char addr[32];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", f->port);
    char bin[512];
    snprintf(bin, sizeof bin, "%s", plog_test_bin("proglog"));
    char *argv[] = {bin, "--addr", addr, NULL};
    plog_test_spawn(&f->srv, argv);
    if (!plog_test_wait_output(&f->srv, "msg=listening", 5000))
        fail_msg("proglog did not start: %s", plog_test_output(&f->srv));
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    plog_test_kill(&f->srv, SIGKILL, 5000);
    unlink(f->srv.out);
    plog_test_rmrf(f->dir);
    free(f);
    return 0;
}

/* http_at sends body with method to path on the server; returns the status code
 * and the malloc'd response body in *resp. */
static int http_at(struct fixture *f, const char *method, const char *path, const char *body, char **resp)
{
    char in[128], out[128], url[300];
    snprintf(in, sizeof in, "%s/req", f->dir);
    snprintf(out, sizeof out, "%s/resp", f->dir);
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", f->port, path);
    FILE *fp = fopen(in, "w");
    fputs(body, fp);
    fclose(fp);
    char data[140];
    snprintf(data, sizeof data, "@%s", in);
    char *argv[] = {
        "curl",          "-s", "-S", "-m", "10", "-o", out, "-w", "%{http_code}", "-X", (char *)method,
        "--data-binary", data, url,  NULL};
    char *code;
    int rc = plog_test_run(argv, NULL, 15000, &code);
    if (rc != 0)
        fail_msg("curl exited %d: %s", rc, code);
    int status = atoi(code);
    free(code);
    char *cmd_out;
    char cat[160];
    snprintf(cat, sizeof cat, "cat %s", out);
    plog_test_sh(cat, 5000, &cmd_out);
    *resp = cmd_out;
    return status;
}

static int http(struct fixture *f, const char *method, const char *body, char **resp)
{
    return http_at(f, method, "/", body, resp);
}

static void expect(struct fixture *f, const char *method, const char *body, int status, const char *want)
{
    char *resp;
    int got = http(f, method, body, &resp);
    if (got != status || strstr(resp, want) == NULL)
        fail_msg("%s %s: got %d %s, want %d containing %s", method, body, got, resp, status, want);
    free(resp);
}

static void test_proglog_produces_and_consumes_records_byte_identical(void **state)
{
    struct fixture *f = *state;
    /* "hello", "" and the bytes 00 ff 10 80 in base64 */
    static const char *values[] = {"aGVsbG8=", "", "AP8QgA=="};
    char body[128], want[128];
    for (int i = 0; i < 3; i++) {
        snprintf(body, sizeof body, "{\"record\":{\"value\":\"%s\"}}", values[i]);
        snprintf(want, sizeof want, "{\"offset\":%d}", i);
        expect(f, "POST", body, 200, want);
    }
    for (int i = 0; i < 3; i++) {
        snprintf(body, sizeof body, "{\"offset\":%d}", i);
        snprintf(want, sizeof want, "{\"record\":{\"value\":\"%s\",\"offset\":%d}}", values[i], i);
        char *resp;
        assert_int_equal(http(f, "GET", body, &resp), 200);
        assert_string_equal(resp, want);
        free(resp);
    }
}

static void test_proglog_absent_offset_is_404(void **state)
{
    struct fixture *f = *state;
    expect(f, "GET", "{\"offset\":0}", 404, "\"error\":\"offset not found: 0\"");
    expect(f, "POST", "{\"record\":{\"value\":\"eA==\"}}", 200, "{\"offset\":0}");
    expect(f, "GET", "{\"offset\":1}", 404, "offset not found: 1");
}

static void test_proglog_malformed_requests_are_400_with_a_message(void **state)
{
    struct fixture *f = *state;
    static const struct {
        const char *method, *body, *want;
    } cases[] = {
        {"POST", "", "not a JSON object"},
        {"POST", "{\"record\":", "not a JSON object"},
        {"POST", "[1,2]", "not a JSON object"},
        /* Before: cJSON_ParseWithLength stopped after the object and the rest was
         * ignored, so these were appended. */
        {"POST", "{\"record\":{\"value\":\"eA==\"}}garbage", "bytes after its JSON object"},
        {"POST", "{\"record\":{\"value\":\"eA==\"}} {}", "bytes after its JSON object"},
        {"GET", "{\"offset\":0}x", "bytes after its JSON object"},
        {"POST", "{}", "missing object field \\\"record\\\""},
        {"POST", "{\"record\":{}}", "record.value"},
        {"POST", "{\"record\":{\"value\":5}}", "record.value"},
        {"POST", "{\"record\":{\"value\":\"aGVsbG8\"}}", "not valid base64"},
        {"POST", "{\"record\":{\"value\":\"a===\"}}", "not valid base64"},
        {"POST", "{\"record\":{\"value\":\"aGV sbG8=\"}}", "not valid base64"},
        {"POST", "{\"record\":{\"value\":\"aG*sbG8=\"}}", "not valid base64"},
        {"GET", "{}", "missing field \\\"offset\\\""},
        {"GET", "{\"offset\":\"1\"}", "field \\\"offset\\\" must be a whole number"},
        {"GET", "{\"offset\":-1}", "field \\\"offset\\\" must be a whole number"},
        {"GET", "{\"offset\":1.5}", "field \\\"offset\\\" must be a whole number"},
        {"GET", "{\"offset\":1e300}", "field \\\"offset\\\" must be a whole number"},
        /* 2^53 + 1 reads as 2^53: another offset than the one asked for */
        {"GET", "{\"offset\":9007199254740993}", "field \\\"offset\\\" must be a whole number"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        expect(f, cases[i].method, cases[i].body, 400, cases[i].want);
    /* Nothing malformed was appended. */
    expect(f, "GET", "{\"offset\":0}", 404, "offset not found");
}

/* A NUL in the body, escaped or raw, is a 400: cJSON ends a string at a NUL, so
 * before, "eA==\u0000eA==" was stored as the one byte "x" and "\u0000" as an
 * empty record, where Go refuses both as bad base64. An escaped backslash before
 * "u0000" is no NUL, and the record after it is appended. */
static void test_proglog_nul_in_the_body_is_400_not_a_shorter_value(void **state)
{
    struct fixture *f = *state;
    static const char *const bodies[] = {
        "{\"record\":{\"value\":\"eA==\\u0000eA==\"}}",
        "{\"record\":{\"value\":\"\\u0000\"}}",
        "{\"record\\u0000x\":{\"value\":\"eA==\"}}",
    };
    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++)
        expect(f, "POST", bodies[i], 400, "NUL character");
    /* A raw NUL byte inside the value. */
    static const char raw[] = "{\"record\":{\"value\":\"eA==\0eA==\"}}";
    char in[128], data[140], url[64], *out;
    snprintf(in, sizeof in, "%s/raw", f->dir);
    FILE *fp = fopen(in, "w");
    fwrite(raw, 1, sizeof raw - 1, fp);
    fclose(fp);
    snprintf(data, sizeof data, "@%s", in);
    snprintf(url, sizeof url, "http://127.0.0.1:%d/", f->port);
    char *argv[] = {"curl", "-s", "-S", "-m", "10", "-X", "POST", "--data-binary", data, url, NULL};
    assert_int_equal(plog_test_run(argv, NULL, 15000, &out), 0);
    if (strstr(out, "NUL character") == NULL)
        fail_msg("raw NUL in the value: %s", out);
    free(out);
    expect(f, "GET", "{\"offset\":0}", 404, "offset not found");
    expect(f, "POST", "{\"x\":\"\\\\u0000\",\"record\":{\"value\":\"eA==\"}}", 200, "{\"offset\":0}");
}

/* A chunked body (nng's server reads none) is told so, not "not a JSON object",
 * and nothing is appended. */
static void test_proglog_chunked_body_is_refused_clearly(void **state)
{
    struct fixture *f = *state;
    char url[64], *out;
    snprintf(url, sizeof url, "http://127.0.0.1:%d/", f->port);
    char *argv[] = {"curl",
                    "-s",
                    "-S",
                    "-m",
                    "10",
                    "-X",
                    "POST",
                    "-H",
                    "Transfer-Encoding: chunked",
                    "--data-binary",
                    "{\"record\":{\"value\":\"eA==\"}}",
                    url,
                    NULL};
    assert_int_equal(plog_test_run(argv, NULL, 15000, &out), 0);
    if (strstr(out, "chunked request bodies are not supported: send a Content-Length") == NULL)
        fail_msg("chunked POST: %s", out);
    free(out);
    expect(f, "GET", "{\"offset\":0}", 404, "offset not found");
}

static void test_proglog_oversized_body_is_400(void **state)
{
    struct fixture *f = *state;
    size_t n = (4u << 20) + 100; /* over PLOG_HTTP_MAX_BODY, under nng's collect limit */
    char *body = malloc(n + 1);
    memset(body, 'A', n);
    memcpy(body, "{\"record\":{\"value\":\"", 20);
    memcpy(body + n - 4, "\"}}\n", 4);
    body[n] = '\0';
    char want[96];
    snprintf(want, sizeof want, "request body too large: %zu bytes (a request may have 4194304)", n);
    expect(f, "POST", body, 400, want);
    free(body);
    /* Over nng's collect limit: refused unread by nng, with our JSON, not its
     * HTML page. */
    n = (9u << 20);
    body = malloc(n + 1);
    memset(body, 'A', n);
    body[n] = '\0';
    expect(f, "POST", body, 400, "{\"error\":\"bad request: malformed, or a body over 8388608 bytes");
    free(body);
    expect(f, "POST", "{\"record\":{\"value\":\"eA==\"}}", 200, "{\"offset\":0}");
}

static void test_proglog_other_paths_are_404_in_json(void **state)
{
    struct fixture *f = *state;
    char *resp;
    assert_int_equal(http_at(f, "GET", "/v1/log", "{\"offset\":0}", &resp), 404);
    assert_string_equal(resp, "{\"error\":\"not found: the log is served at /\"}\n");
    free(resp);
}

static void test_proglog_other_methods_are_405(void **state)
{
    struct fixture *f = *state;
    expect(f, "PUT", "{}", 405, "method not allowed");
    expect(f, "DELETE", "{}", 405, "method not allowed");
}

static void test_proglog_exits_cleanly_on_sigterm(void **state)
{
    struct fixture *f = *state;
    expect(f, "POST", "{\"record\":{\"value\":\"eA==\"}}", 200, "{\"offset\":0}");
    assert_true(plog_test_kill(&f->srv, SIGTERM, 5000));
    assert_true(WIFEXITED(f->srv.status));
    assert_int_equal(WEXITSTATUS(f->srv.status), 0);
    char *out = plog_test_output(&f->srv);
    assert_non_null(strstr(out, "msg=stopped records=1"));
    free(out);
}

static void test_proglog_help_and_bad_flags(void **state)
{
    (void)state;
    char bin[512];
    snprintf(bin, sizeof bin, "%s", plog_test_bin("proglog"));
    char *out;
    char *help[] = {bin, "--help", NULL};
    assert_int_equal(plog_test_run(help, NULL, 5000, &out), 0);
    assert_non_null(strstr(out, "--addr HOST:PORT"));
    free(out);
    char *version[] = {bin, "--version", NULL};
    assert_int_equal(plog_test_run(version, NULL, 5000, &out), 0);
    assert_non_null(strstr(out, "proglog "));
    free(out);
    /* Help or version that cannot be written is an error (before: exit 0). */
    for (int i = 0; i < 2; i++) {
        char cmd[600];
        snprintf(cmd, sizeof cmd, "%s %s >/dev/full", bin, i == 0 ? "--help" : "--version");
        assert_int_equal(plog_test_sh(cmd, 5000, &out), 1);
        assert_non_null(strstr(out, "proglog: cannot write the output: No space left on device\n"));
        free(out);
    }
    char *bad[] = {bin, "--no-such-flag", NULL};
    assert_int_equal(plog_test_run(bad, NULL, 5000, &out), 2);
    assert_non_null(strstr(out, "usage:"));
    /* getopt's own line names the program, as every other usage error does
     * (before: the path it was started by). */
    assert_non_null(strstr(out, "proglog: unrecognized option '--no-such-flag'"));
    assert_null(strstr(out, "/proglog: "));
    free(out);
}

/* A malformed --addr is a usage error, like a bad flag: exit 2 and a line saying
 * what is wrong, before anything starts. */
static void test_proglog_malformed_address_is_a_usage_error(void **state)
{
    (void)state;
    char bin[512];
    snprintf(bin, sizeof bin, "%s", plog_test_bin("proglog"));
    static const char *const bad[] = {
        "nonsense",       "127.0.0.1",      "127.0.0.1:",          "127.0.0.1:0",  "127.0.0.1:65536",
        "127.0.0.1:http", "127.0.0.1:80/x", "http://127.0.0.1:80", "127.0.0.1:-1", ":8080"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *argv[] = {bin, "--addr", (char *)bad[i], NULL};
        char *out, want[128];
        int rc = plog_test_run(argv, NULL, 5000, &out);
        snprintf(want, sizeof want, "proglog: --addr: bad address \"%s\" (want HOST:PORT", bad[i]);
        if (rc != 2 || strstr(out, want) == NULL)
            fail_msg("--addr %s: exit %d (want 2), output: %s", bad[i], rc, out);
        free(out);
    }
}

/* An address that is well formed but cannot be listened on (the port is taken) is
 * a failure to start, exit 1, not a usage error. */
static void test_proglog_port_in_use_is_a_failure(void **state)
{
    struct fixture *f = *state;
    char bin[512], addr[32];
    snprintf(bin, sizeof bin, "%s", plog_test_bin("proglog"));
    snprintf(addr, sizeof addr, "127.0.0.1:%d", f->port);
    char *argv[] = {bin, "--addr", addr, NULL};
    char *out;
    int rc = plog_test_run(argv, NULL, 5000, &out);
    if (rc != 1 || strstr(out, "cannot serve") == NULL)
        fail_msg("a second proglog on %s: exit %d (want 1), output: %s", addr, rc, out);
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_proglog_produces_and_consumes_records_byte_identical, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_proglog_absent_offset_is_404, setup, teardown),
        cmocka_unit_test_setup_teardown(test_proglog_malformed_requests_are_400_with_a_message, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_proglog_nul_in_the_body_is_400_not_a_shorter_value, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_proglog_chunked_body_is_refused_clearly, setup, teardown),
        cmocka_unit_test_setup_teardown(test_proglog_oversized_body_is_400, setup, teardown),
        cmocka_unit_test_setup_teardown(test_proglog_other_paths_are_404_in_json, setup, teardown),
        cmocka_unit_test_setup_teardown(test_proglog_other_methods_are_405, setup, teardown),
        cmocka_unit_test_setup_teardown(test_proglog_exits_cleanly_on_sigterm, setup, teardown),
        cmocka_unit_test(test_proglog_help_and_bad_flags),
        cmocka_unit_test(test_proglog_malformed_address_is_a_usage_error),
        cmocka_unit_test_setup_teardown(test_proglog_port_in_use_is_a_failure, setup, teardown),
    };
    return cmocka_run_group_tests_name("proglog", tests, NULL, NULL);
}
