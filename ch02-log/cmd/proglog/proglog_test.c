/* proglog_test.c - end to end: the real build/proglog on a free port, driven
 * over HTTP by curl (Go: the book tries the server with curl by hand), and
 * restarted on the same data directory, cleanly and after kill -9; and on a
 * small tmpfs that fills up (when the test may mount one). */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "testing/testing.h"

struct fixture {
    plog_test_proc srv;
    int port;
    char dir[64];
};

/* start runs build/proglog on f's port and data directory with the given sync
 * policy, and waits until it listens. */
static void start(struct fixture *f, const char *sync)
{
    char addr[32], data[128], bin[512];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", f->port);
    snprintf(data, sizeof data, "%s/data", f->dir);
    snprintf(bin, sizeof bin, "%s", plog_test_bin("proglog"));
    char *argv[] = {bin, "--addr", addr, "--data-dir", data, "--sync", (char *)sync, NULL};
    plog_test_spawn(&f->srv, argv);
    if (!plog_test_wait_output(&f->srv, "msg=listening", 5000))
        fail_msg("proglog did not start: %s", plog_test_output(&f->srv));
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    plog_test_tmpdir("http", f->dir, sizeof f->dir);
    f->port = plog_test_free_port();
    start(f, "never");
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    plog_test_kill(&f->srv, SIGKILL, 5000);
    unlink(f->srv.out);
    if (geteuid() == 0) {
        /* The full-disk test's tmpfs, if it is still mounted. */
        char cmd[160];
        snprintf(cmd, sizeof cmd, "umount %s/data 2>/dev/null; true", f->dir);
        plog_test_sh(cmd, 10000, NULL);
    }
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
    assert_non_null(strstr(out, "msg=stopped next_offset=1"));
    free(out);
    unlink(f->srv.out);
}

/* value_b64 writes the base64 of record i's value, "v<i>". */
static void value_b64(int i, char enc[32])
{
    char value[16];
    int n = snprintf(value, sizeof value, "v%d", i);
    EVP_EncodeBlock((unsigned char *)enc, (const unsigned char *)value, n);
}

/* produce_n produces "v<i>" for i in [from, to) and checks the offsets. */
static void produce_n(struct fixture *f, int from, int to)
{
    char body[96], want[48], enc[32];
    for (int i = from; i < to; i++) {
        value_b64(i, enc);
        snprintf(body, sizeof body, "{\"record\":{\"value\":\"%s\"}}", enc);
        snprintf(want, sizeof want, "{\"offset\":%d}", i);
        expect(f, "POST", body, 200, want);
    }
}

/* consume_all checks that offsets [0, n) hold what produce_n wrote, and n nothing. */
static void consume_all(struct fixture *f, int n)
{
    char body[48], want[96], enc[32];
    for (int i = 0; i < n; i++) {
        snprintf(body, sizeof body, "{\"offset\":%d}", i);
        value_b64(i, enc);
        snprintf(want, sizeof want, "{\"record\":{\"value\":\"%s\",\"offset\":%d}}", enc, i);
        expect(f, "GET", body, 200, want);
    }
    snprintf(body, sizeof body, "{\"offset\":%d}", n);
    expect(f, "GET", body, 404, "offset not found");
}

static void restart_after(struct fixture *f, int sig, const char *sync)
{
    plog_test_kill(&f->srv, sig, 5000);
    unlink(f->srv.out);
    start(f, sync);
}

static void test_proglog_records_survive_a_clean_restart(void **state)
{
    struct fixture *f = *state;
    produce_n(f, 0, 20);
    restart_after(f, SIGTERM, "never");
    consume_all(f, 20);
    produce_n(f, 20, 25); /* offsets continue where they stopped */
    consume_all(f, 25);
}

static void test_proglog_answered_produces_survive_kill_9(void **state)
{
    struct fixture *f = *state;
    static const char *policies[] = {"never", "always", "interval"};
    int n = 0;
    for (int p = 0; p < 3; p++) {
        restart_after(f, SIGKILL, policies[p]);
        produce_n(f, n, n + 10);
        n += 10;
        restart_after(f, SIGKILL, policies[p]);
        consume_all(f, n);
    }
}

/* full_value fills v with the base64 of a 6000-byte value derived from i. */
static void full_value(int i, char *v, size_t size)
{
    unsigned char raw[6000];
    for (size_t j = 0; j < sizeof raw; j++)
        raw[j] = (unsigned char)(i * 131 + j * 7 + (j >> 8));
    assert_true(size > 4 * sizeof raw / 3 + 4);
    EVP_EncodeBlock((unsigned char *)v, raw, (int)sizeof raw);
}

/* A real full disk: the data directory is a 1 MiB tmpfs. The server answers
 * every produce past the full disk with an error (and does not crash), keeps
 * serving reads, and after a restart with room serves every produce it
 * answered. Needs root (mount); skipped with a message otherwise. */
static void test_proglog_full_disk_answers_errors_and_keeps_answered_produces(void **state)
{
    struct fixture *f = *state;
    char data[128], cmd[512], *out = NULL;
    snprintf(data, sizeof data, "%s/data", f->dir);
    plog_test_kill(&f->srv, SIGTERM, 5000);
    unlink(f->srv.out);
    plog_test_rmrf(data);
    mkdir(data, 0755);
    snprintf(cmd, sizeof cmd, "mount -t tmpfs -o size=1m plog-full %s", data);
    if (geteuid() != 0 || plog_test_sh(cmd, 10000, &out) != 0) {
        print_message("SKIPPED: full-disk test needs to mount a tmpfs (root): %s\n", out ? out : "not root");
        free(out);
        start(f, "never"); /* teardown expects a server */
        return;
    }
    free(out);
    char addr[32], bin[512];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", f->port);
    snprintf(bin, sizeof bin, "%s", plog_test_bin("proglog"));
    char *argv[] = {bin,      "--addr",
                    addr,     "--data-dir",
                    data,     "--sync",
                    "always", "--max-store-bytes",
                    "65536",  "--max-index-bytes",
                    "1200",   NULL};
    plog_test_spawn(&f->srv, argv);
    if (!plog_test_wait_output(&f->srv, "msg=listening", 5000))
        fail_msg("proglog did not start: %s", plog_test_output(&f->srv));

    static char v[9000], body[9100];
    int answered = 0, errors = 0;
    for (int i = 0; i < 400 && errors < 3; i++) {
        full_value(i, v, sizeof v);
        snprintf(body, sizeof body, "{\"record\":{\"value\":\"%s\"}}", v);
        char *resp;
        int st = http(f, "POST", body, &resp);
        if (st == 200) {
            char want[32];
            snprintf(want, sizeof want, "{\"offset\":%d}", answered);
            if (errors > 0 || strstr(resp, want) == NULL)
                fail_msg("produce %d: %s (after %d errors)", i, resp, errors);
            answered++;
        } else {
            if ((st != 503 && st != 500) || strstr(resp, "\"error\"") == NULL)
                fail_msg("produce on a full disk: %d %s", st, resp);
            if (errors == 0 && st == 503 && strstr(resp, "restart to recover") == NULL)
                fail_msg("503 without the reason: %s", resp);
            errors++;
        }
        free(resp);
    }
    assert_true(answered > 10);
    assert_true(errors == 3);
    /* Still alive, still serving what it answered. */
    expect(f, "GET", "{\"offset\":0}", 200, "\"offset\":0");

    plog_test_kill(&f->srv, SIGKILL, 5000);
    unlink(f->srv.out);
    snprintf(cmd, sizeof cmd, "mount -o remount,size=64m %s", data);
    assert_int_equal(plog_test_sh(cmd, 10000, NULL), 0);
    plog_test_spawn(&f->srv, argv);
    if (!plog_test_wait_output(&f->srv, "msg=listening", 5000))
        fail_msg("proglog did not restart: %s", plog_test_output(&f->srv));
    for (int i = 0; i < answered; i++) {
        full_value(i, v, sizeof v);
        snprintf(body, sizeof body, "{\"offset\":%d}", i);
        char want[9100];
        snprintf(want, sizeof want, "{\"record\":{\"value\":\"%s\",\"offset\":%d}}", v, i);
        char *resp;
        assert_int_equal(http(f, "GET", body, &resp), 200);
        assert_string_equal(resp, want);
        free(resp);
    }
    full_value(answered, v, sizeof v);
    snprintf(body, sizeof body, "{\"record\":{\"value\":\"%s\"}}", v);
    char want[32];
    snprintf(want, sizeof want, "{\"offset\":%d}", answered);
    expect(f, "POST", body, 200, want);
    print_message("full disk: %d produces answered, then errors; all served after restart\n", answered);
}

/* A roll that cannot create the next segment's files (a tmpfs out of inodes:
 * nr_inodes=4 holds the directory and the first segment) fails the log. Every
 * produce from then on answers 503 "log failed; restart to recover", the one
 * whose roll failed included: before, it answered 500 "I/O error: log failed;
 * restart to recover: ...", as if the log were still up. Needs root (mount). */
static void test_proglog_the_produce_that_fails_the_log_answers_503(void **state)
{
    struct fixture *f = *state;
    char data[128], cmd[512], *out = NULL;
    snprintf(data, sizeof data, "%s/data", f->dir);
    plog_test_kill(&f->srv, SIGTERM, 5000);
    unlink(f->srv.out);
    plog_test_rmrf(data);
    mkdir(data, 0755);
    snprintf(cmd, sizeof cmd, "mount -t tmpfs -o size=1m,nr_inodes=4 plog-inodes %s", data);
    if (geteuid() != 0 || plog_test_sh(cmd, 10000, &out) != 0) {
        print_message("SKIPPED: needs to mount a tmpfs (root): %s\n", out ? out : "not root");
        free(out);
        start(f, "never"); /* teardown expects a server */
        return;
    }
    free(out);
    char addr[32], bin[512];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", f->port);
    snprintf(bin, sizeof bin, "%s", plog_test_bin("proglog"));
    /* Frames of "x" are 11 bytes (offset 0) and 13: the third passes 30, the fourth rolls. */
    char *argv[] = {bin, "--addr", addr, "--data-dir", data, "--max-store-bytes", "30", NULL};
    plog_test_spawn(&f->srv, argv);
    if (!plog_test_wait_output(&f->srv, "msg=listening", 5000))
        fail_msg("proglog did not start: %s", plog_test_output(&f->srv));
    for (int i = 0; i < 3; i++) {
        char want[32];
        snprintf(want, sizeof want, "{\"offset\":%d}", i);
        expect(f, "POST", "{\"record\":{\"value\":\"eA==\"}}", 200, want);
    }
    for (int i = 0; i < 2; i++)
        expect(f, "POST", "{\"record\":{\"value\":\"eA==\"}}", 503,
               "{\"error\":\"log failed; restart to recover: open ");
    expect(f, "GET", "{\"offset\":2}", 200, "\"offset\":2");
}

/* A data directory of more segments than the soft descriptor limit allows (two
 * descriptors each) opens: proglog raises the limit to its hard limit first.
 * Before, 40 segments under a soft limit of 48 failed with "Too many open files". */
static void test_proglog_opens_more_segments_than_the_soft_descriptor_limit(void **state)
{
    struct fixture *f = *state;
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_max < 256)
        skip(); /* the hard limit itself is too low to show it */
    char addr[32], data[128], bin[512];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", f->port);
    snprintf(data, sizeof data, "%s/data", f->dir);
    snprintf(bin, sizeof bin, "%s", plog_test_bin("proglog"));
    for (int round = 0; round < 2; round++) {
        plog_test_kill(&f->srv, SIGTERM, 5000);
        unlink(f->srv.out);
        /* One record per segment (a 12-byte index holds one entry); the second
         * start has a soft limit of 48 descriptors for 80 segment files. */
        char *argv[] = {"/bin/sh",
                        "-c",
                        round == 0 ? "exec \"$0\" \"$@\"" : "ulimit -S -n 48 && exec \"$0\" \"$@\"",
                        bin,
                        "--addr",
                        addr,
                        "--data-dir",
                        data,
                        "--max-index-bytes",
                        "12",
                        NULL};
        plog_test_spawn(&f->srv, argv);
        if (!plog_test_wait_output(&f->srv, "msg=listening", 10000))
            fail_msg("proglog did not start: %s", plog_test_output(&f->srv));
        for (int i = 0; round == 0 && i < 40; i++)
            expect(f, "POST", "{\"record\":{\"value\":\"aGVsbG8=\"}}", 200, "\"offset\"");
    }
    expect(f, "GET", "{\"offset\":39}", 200, "\"value\":\"aGVsbG8=\"");
    expect(f, "POST", "{\"record\":{\"value\":\"aGVsbG8=\"}}", 200, "{\"offset\":40}");
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
    char *badsync[] = {bin, "--sync", "sometimes", NULL};
    assert_int_equal(plog_test_run(badsync, NULL, 5000, &out), 2);
    assert_non_null(strstr(out, "--sync wants never, always or interval"));
    free(out);
    char *badnum[] = {bin, "--max-store-bytes", "-5", NULL};
    assert_int_equal(plog_test_run(badnum, NULL, 5000, &out), 2);
    assert_non_null(strstr(out, "--max-store-bytes wants a whole number"));
    free(out);
    /* Before: strtoull skipped the blank and " -1" read as 2^64-1 (the check for a
     * sign looked at s[0] only); " 5" and "+5" read as 5. The malformed --addr
     * after them would be the old binary's complaint, had it taken the number. */
    static const char *const notnum[] = {" -1", " 5", "+5", "\t7"};
    for (size_t i = 0; i < sizeof notnum / sizeof notnum[0]; i++) {
        char *argv[] = {bin, "--max-store-bytes", (char *)notnum[i], "--addr", "nonsense", NULL};
        int rc = plog_test_run(argv, NULL, 5000, &out);
        if (rc != 2 || strstr(out, "--max-store-bytes wants a whole number") == NULL)
            fail_msg("--max-store-bytes \"%s\": exit %d, output: %s (want 2 and its complaint)", notnum[i],
                     rc, out);
        free(out);
    }
    char *longsync[] = {bin, "--sync-interval-ms", "60001", NULL};
    assert_int_equal(plog_test_run(longsync, NULL, 5000, &out), 2);
    assert_non_null(strstr(out, "--sync-interval-ms wants at most 60000"));
    free(out);
    /* Before: exit 1, "mkdir : No such file or directory". */
    char *nodir[] = {bin, "--data-dir", "", NULL};
    assert_int_equal(plog_test_run(nodir, NULL, 5000, &out), 2);
    assert_string_equal(out, "proglog: --data-dir wants a directory, not \"\"\n");
    free(out);
}

/* A malformed --addr is a usage error, like a bad flag: exit 2 and a line saying
 * what is wrong, before anything starts. */
static void test_proglog_malformed_address_is_a_usage_error(void **state)
{
    (void)state;
    char bin[512];
    snprintf(bin, sizeof bin, "%s", plog_test_bin("proglog"));
    char dir[64], data[128];
    plog_test_tmpdir("flags", dir, sizeof dir);
    snprintf(data, sizeof data, "%s/data", dir);
    static const char *const bad[] = {
        "nonsense",       "127.0.0.1",      "127.0.0.1:",          "127.0.0.1:0",  "127.0.0.1:65536",
        "127.0.0.1:http", "127.0.0.1:80/x", "http://127.0.0.1:80", "127.0.0.1:-1", ":8080"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *argv[] = {bin, "--addr", (char *)bad[i], "--data-dir", data, NULL};
        char *out, want[128];
        int rc = plog_test_run(argv, NULL, 5000, &out);
        snprintf(want, sizeof want, "proglog: --addr: bad address \"%s\" (want HOST:PORT", bad[i]);
        if (rc != 2 || strstr(out, want) == NULL)
            fail_msg("--addr %s: exit %d (want 2), output: %s", bad[i], rc, out);
        free(out);
    }
    assert_int_equal(access(data, F_OK), -1); /* nothing was created */
    plog_test_rmrf(dir);
}

/* An address that is well formed but cannot be listened on (the port is taken) is
 * a failure to start, exit 1, not a usage error. */
static void test_proglog_port_in_use_is_a_failure(void **state)
{
    struct fixture *f = *state;
    char bin[512], addr[32];
    snprintf(bin, sizeof bin, "%s", plog_test_bin("proglog"));
    snprintf(addr, sizeof addr, "127.0.0.1:%d", f->port);
    char data[128];
    snprintf(data, sizeof data, "%s/other", f->dir);
    char *argv[] = {bin, "--addr", addr, "--data-dir", data, NULL};
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
        cmocka_unit_test_setup_teardown(test_proglog_records_survive_a_clean_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(test_proglog_answered_produces_survive_kill_9, setup, teardown),
        cmocka_unit_test_setup_teardown(test_proglog_full_disk_answers_errors_and_keeps_answered_produces,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_proglog_the_produce_that_fails_the_log_answers_503, setup,
                                        teardown),
        cmocka_unit_test(test_proglog_help_and_bad_flags),
        cmocka_unit_test(test_proglog_malformed_address_is_a_usage_error),
        cmocka_unit_test_setup_teardown(test_proglog_port_in_use_is_a_failure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_proglog_opens_more_segments_than_the_soft_descriptor_limit,
                                        setup, teardown),
    };
    return cmocka_run_group_tests_name("proglog", tests, NULL, NULL);
}
