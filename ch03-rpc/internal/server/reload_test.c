/* reload_test.c - SIGHUP against a real proglog process: it reloads the log level
 * from --log-level-file, says so in its log, keeps the old level when the file is
 * bad, and drops neither a connected client nor a consumer parked in a long poll. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal/client/client.h"
#include "internal/client/stream.h"
#include "internal/server/testserver.h"

struct fixture {
    struct tserver srv;
    char level_file[128];
    plog_client *c;
};

static void write_file(const char *path, const char *text)
{
    /* Written beside and renamed, as an operator's editor or config tool would: the
     * server never reads half a file. */
    char tmp[160];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
    assert_int_equal(rename(tmp, path), 0);
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    plog_test_tmpdir("reload", f->srv.dir, sizeof f->srv.dir);
    f->srv.port = plog_test_free_port();
    snprintf(f->srv.addr, sizeof f->srv.addr, "tcp://127.0.0.1:%d", f->srv.port);
    snprintf(f->level_file, sizeof f->level_file, "%s/level", f->srv.dir);
    write_file(f->level_file, "info\n");
    f->srv.extra[0] = "--log-level-file";
    f->srv.extra[1] = f->level_file;
    f->srv.extra[2] = "--sync";
    f->srv.extra[3] = "never";
    tserver_start(&f->srv);
    plog_rpc_status st;
    if (plog_client_open(f->srv.addr, NULL, &f->c, &st) != PLOG_STATUS_OK)
        fail_msg("open client: %s", st.msg);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    plog_client_close(f->c);
    bool clean = tserver_stop(&f->srv, SIGTERM);
    tserver_fini(&f->srv);
    free(f);
    assert_true(clean);
    return 0;
}

/* hup sends SIGHUP and waits for the log line that answers it. */
static void hup(struct fixture *f, const char *expect)
{
    assert_int_equal(kill(f->srv.proc.pid, SIGHUP), 0);
    if (!plog_test_wait_output(&f->srv.proc, expect, 10000)) {
        char *out = plog_test_output(&f->srv.proc);
        fail_msg("no \"%s\" after SIGHUP in: %s", expect, out);
    }
}

/* A consumer parked in a long poll and an open connection both live through
 * SIGHUP: the parked poll is answered by the next produce, on the same connection. */
static void test_reload_keeps_connections_and_parked_consumers(void **state)
{
    struct fixture *f = *state;
    uint64_t off;
    assert_status_ok(plog_client_produce(f->c, "before", 6, &off, NULL));
    assert_int_equal(off, 0);
    struct tserver_follower fl = {.c = f->c, .from = 1, .wait_ms = 20000};
    tserver_follow_start(&fl);
    plog_test_sleep_ms(300); /* let it park */
    hup(f, "msg=reloaded log_level=info was=info");
    assert_status_ok(plog_client_produce(f->c, "after", 5, &off, NULL));
    assert_int_equal(off, 1);
    tserver_follow_join(&fl);
    assert_int_equal(fl.code, PLOG_STATUS_OK);
    assert_int_equal(fl.off, 1);
    assert_string_equal(fl.value, "after");
    Log__V1__Record *rec;
    assert_status_ok(plog_client_consume(f->c, 0, &rec, NULL));
    assert_int_equal(rec->value.len, 6);
    assert_memory_equal(rec->value.data, "before", 6);
    log__v1__record__free_unpacked(rec, NULL);
}

/* The new level filters at once: at warn, the info line of the shutdown is not
 * written; the reload that set it is (it is logged under the old level). */
static void test_reload_log_level_takes_effect(void **state)
{
    struct fixture *f = *state;
    write_file(f->level_file, "warn\n");
    hup(f, "msg=reloaded log_level=warn was=info");
    write_file(f->level_file, "  debug \n");
    hup(f, "msg=reloaded log_level=debug was=warn");
    write_file(f->level_file, "warn");
    hup(f, "msg=reloaded log_level=warn was=debug");
    bool clean = tserver_stop(&f->srv, SIGTERM);
    char *out = plog_test_output(&f->srv.proc);
    assert_true(clean);
    if (strstr(out, "shutting down") != NULL)
        fail_msg("an info line was written at warn: %s", out);
    free(out);
}

/* A bad level file keeps the level in force and says which file and why; fixing the
 * file and sending SIGHUP again applies it. */
static void test_reload_bad_level_file_keeps_the_old_level(void **state)
{
    struct fixture *f = *state;
    write_file(f->level_file, "loud\n");
    hup(f, "reload failed");
    char *out = plog_test_output(&f->srv.proc);
    assert_non_null(strstr(out, "level=error msg=\"reload failed, keeping the old log level\""));
    assert_non_null(strstr(out, f->level_file));
    assert_non_null(strstr(out, "got \\\"loud\\\""));
    assert_non_null(strstr(out, "log_level=info"));
    free(out);
    assert_int_equal(unlink(f->level_file), 0);
    hup(f, "No such file or directory");
    write_file(f->level_file, "error\n");
    hup(f, "msg=reloaded log_level=error was=info");
    /* Still serving. */
    uint64_t off;
    assert_status_ok(plog_client_produce(f->c, "x", 1, &off, NULL));
}

/* A level file that is bad at start is a usage error, before anything is opened. */
static void test_reload_bad_level_file_at_start_is_refused(void **state)
{
    struct fixture *f = *state;
    char bad[160], *out = NULL;
    snprintf(bad, sizeof bad, "%s/nolevel", f->srv.dir);
    char bin[512];
    snprintf(bin, sizeof bin, "%s", plog_test_bin("proglog"));
    char *argv[] = {bin, "--addr", "tcp://127.0.0.1:1", "--log-level-file", bad, NULL};
    int rc = plog_test_run(argv, NULL, 10000, &out);
    assert_int_equal(rc, 2);
    assert_non_null(strstr(out, bad));
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_reload_keeps_connections_and_parked_consumers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reload_log_level_takes_effect, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reload_bad_level_file_keeps_the_old_level, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reload_bad_level_file_at_start_is_refused, setup, teardown),
    };
    return cmocka_run_group_tests_name("reload", tests, NULL, NULL);
}
