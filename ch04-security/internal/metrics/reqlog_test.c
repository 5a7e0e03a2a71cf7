/* reqlog_test.c - the request line: its fields in order, the error, its level, and a
 * hostile peer CN. (The logger itself is tested in internal/logger.) */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal/err/err.h"
#include "internal/logger/logger.h"
#include "internal/metrics/reqlog.h"
#include "testing/testing.h"

/* Each test's state is a plog_test_capture: a file the logger writes to and the
 * test reads back. */

static const plog_metrics_reqlog_entry produce_ok = {
    .method = "Produce",
    .status = "OK",
    .latency_ns = 93456,
    .peer = "root",
    .bytes_in = 120,
    .bytes_out = 8,
};

static void test_reqlog_request_line_has_every_field_in_order(void **state)
{
    plog_test_capture *f = *state;
    plog_logger *l;
    char *out;

    assert_plog_ok(plog_logger_new(f->fd, PLOG_LOGGER_INFO, &l));
    plog_metrics_reqlog(l, PLOG_LOGGER_INFO, &produce_ok);
    out = plog_test_capture_read_untimed(f);
    assert_string_equal(out, "level=info msg=request method=Produce status=OK latency_us=93 "
                             "peer=root bytes_in=120 bytes_out=8\n");
    free(out);
    plog_logger_free(l);
}

static void test_reqlog_failed_request_carries_quoted_error(void **state)
{
    plog_test_capture *f = *state;
    plog_metrics_reqlog_entry e = produce_ok;
    plog_logger *l;
    char *out;

    e.status = "PERMISSION_DENIED";
    e.peer = "nobody";
    e.err = "nobody not permitted to produce to *";
    assert_plog_ok(plog_logger_new(f->fd, PLOG_LOGGER_INFO, &l));
    plog_metrics_reqlog(l, PLOG_LOGGER_INFO, &e);
    e.peer = NULL; /* no verified identity */
    e.err = "";
    plog_metrics_reqlog(l, PLOG_LOGGER_INFO, &e);
    out = plog_test_capture_read_untimed(f);
    assert_string_equal(out, "level=info msg=request method=Produce status=PERMISSION_DENIED "
                             "latency_us=93 peer=nobody bytes_in=120 bytes_out=8 "
                             "err=\"nobody not permitted to produce to *\"\n"
                             "level=info msg=request method=Produce status=PERMISSION_DENIED "
                             "latency_us=93 peer=\"\" bytes_in=120 bytes_out=8\n");
    free(out);
    plog_logger_free(l);
}

/* Request lines at DEBUG: they vanish at info and appear at debug. */
static void test_reqlog_request_lines_at_debug_show_only_when_debug(void **state)
{
    plog_test_capture *f = *state;
    plog_logger *l;
    char *out;

    assert_plog_ok(plog_logger_new(f->fd, PLOG_LOGGER_INFO, &l));
    plog_metrics_reqlog(l, PLOG_LOGGER_DEBUG, &produce_ok);
    out = plog_test_capture_read_untimed(f);
    assert_string_equal(out, "");
    free(out);
    plog_logger_set_level(l, PLOG_LOGGER_DEBUG);
    plog_metrics_reqlog(l, PLOG_LOGGER_DEBUG, &produce_ok);
    out = plog_test_capture_read_untimed(f);
    assert_string_equal(out, "level=debug msg=request method=Produce status=OK latency_us=93 "
                             "peer=root bytes_in=120 bytes_out=8\n");
    free(out);
    plog_test_capture_clear(f);
    plog_logger_set_level(l, PLOG_LOGGER_ERROR);
    plog_metrics_reqlog(l, PLOG_LOGGER_DEBUG, &produce_ok);
    plog_logger_log(l, PLOG_LOGGER_WARN, "w", NULL);
    out = plog_test_capture_read_untimed(f);
    assert_string_equal(out, "");
    free(out);
    plog_logger_free(l);
}

/* A client picks its certificate's CN: it must not be able to forge a line. */
static void test_reqlog_hostile_values_cannot_forge_lines(void **state)
{
    plog_test_capture *f = *state;
    plog_metrics_reqlog_entry e = produce_ok;
    plog_logger *l;
    char *out;

    e.peer = "x\nlevel=error msg=forged \"q\" \\ \t\x01";
    assert_plog_ok(plog_logger_new(f->fd, PLOG_LOGGER_INFO, &l));
    plog_metrics_reqlog(l, PLOG_LOGGER_INFO, &e);
    out = plog_test_capture_read_untimed(f);
    assert_string_equal(out, "level=info msg=request method=Produce status=OK latency_us=93 "
                             "peer=\"x\\nlevel=error msg=forged \\\"q\\\" \\\\ \\t\\x01\" "
                             "bytes_in=120 bytes_out=8\n");
    free(out);
    plog_logger_free(l);
}

/* No logger (the server's default), no line, no crash. */
static void test_reqlog_null_logger_writes_nothing(void **state)
{
    plog_test_capture *f = *state;
    char *out;

    plog_metrics_reqlog(NULL, PLOG_LOGGER_ERROR, &produce_ok);
    out = plog_test_capture_read_untimed(f);
    assert_string_equal(out, "");
    free(out);
}

/* A test whose state is a fresh plog_test_capture. */
#define CAPTURED(t) cmocka_unit_test_setup_teardown(t, plog_test_capture_setup, plog_test_capture_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        CAPTURED(test_reqlog_request_line_has_every_field_in_order),
        CAPTURED(test_reqlog_failed_request_carries_quoted_error),
        CAPTURED(test_reqlog_request_lines_at_debug_show_only_when_debug),
        CAPTURED(test_reqlog_hostile_values_cannot_forge_lines),
        CAPTURED(test_reqlog_null_logger_writes_nothing),
    };
    return cmocka_run_group_tests_name("reqlog", tests, NULL, NULL);
}
