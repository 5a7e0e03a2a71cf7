/* logger_test.c - the structured log: line format and time, level filtering and changing it
 * at run time, escaping of hostile values, the report adapter, and whole lines
 * under concurrent writers. */
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
#include <time.h>
#include <unistd.h>

#include "internal/err/err.h"
#include "internal/logger/logger.h"
#include "testing/testing.h"

/* Each test's state is a plog_test_capture: a file the logger writes to and the
 * test reads back. */

static void test_logger_parse_level_accepts_the_four_names(void **state)
{
    plog_logger_level l = PLOG_LOGGER_ERROR;

    (void)state;
    assert_plog_ok(plog_logger_parse_level("debug", &l));
    assert_int_equal(l, PLOG_LOGGER_DEBUG);
    assert_plog_ok(plog_logger_parse_level("INFO", &l));
    assert_int_equal(l, PLOG_LOGGER_INFO);
    assert_plog_ok(plog_logger_parse_level("warn", &l));
    assert_int_equal(l, PLOG_LOGGER_WARN);
    assert_plog_ok(plog_logger_parse_level("warning", &l));
    assert_int_equal(l, PLOG_LOGGER_WARN);
    assert_plog_ok(plog_logger_parse_level("Error", &l));
    assert_int_equal(l, PLOG_LOGGER_ERROR);
    assert_int_equal(plog_logger_parse_level("verbose", &l), PLOG_EINVAL);
    assert_int_equal(plog_logger_parse_level("", &l), PLOG_EINVAL);
    assert_int_equal(plog_logger_parse_level(NULL, &l), PLOG_EINVAL);
    assert_int_equal(l, PLOG_LOGGER_ERROR); /* untouched on failure */
    assert_string_equal(plog_logger_level_name(PLOG_LOGGER_WARN), "warn");
}

/* tz_set sets TZ to tz and returns its old value (NULL: unset) for tz_restore. */
static char *tz_set(const char *tz)
{
    const char *old = getenv("TZ");
    char *saved = old != NULL ? strdup(old) : NULL;

    assert_int_equal(setenv("TZ", tz, 1), 0);
    return saved;
}

/* tz_restore puts TZ back as tz_set found it and frees saved. */
static void tz_restore(char *saved)
{
    if (saved != NULL)
        setenv("TZ", saved, 1);
    else
        unsetenv("TZ");
    free(saved);
    tzset();
}

/* The first line of a process keeps errno even when the time zone files it reads
 * are missing (before: the first gmtime_r set ENOENT). This must be the first test
 * that logs: later lines find the time zone read. */
static void test_logger_first_line_keeps_errno_without_time_zone_files(void **state)
{
    plog_test_capture *f = *state;
    char *saved = tz_set("Nowhere/Atlantis");
    plog_logger *l;

    assert_plog_ok(plog_logger_new(f->fd, PLOG_LOGGER_INFO, &l));
    errno = EAGAIN;
    plog_logger_log(l, PLOG_LOGGER_INFO, "first", NULL);
    assert_int_equal(errno, EAGAIN);
    plog_logger_free(l);
    tz_restore(saved);
}

static void test_logger_line_has_level_msg_and_fields_in_order(void **state)
{
    plog_test_capture *f = *state;
    plog_logger *l;
    char *out;

    assert_plog_ok(plog_logger_new(f->fd, PLOG_LOGGER_INFO, &l));
    plog_logger_log(l, PLOG_LOGGER_INFO, "listening", "addr", "127.0.0.1:8080", "tls", "off", NULL);
    plog_logger_log(l, PLOG_LOGGER_ERROR, "cannot serve", "err", "address in use", "empty", "", "none", NULL,
                    NULL);
    plog_logger_logf(l, PLOG_LOGGER_WARN, "stopped", "records=%d", 3);
    plog_logger_logf(l, PLOG_LOGGER_WARN, "bare", NULL);
    out = plog_test_capture_read_untimed(f);
    assert_string_equal(out, "level=info msg=listening addr=127.0.0.1:8080 tls=off\n"
                             "level=error msg=\"cannot serve\" err=\"address in use\" empty=\"\" none=\"\"\n"
                             "level=warn msg=stopped records=3\n"
                             "level=warn msg=bare\n");
    free(out);
    plog_logger_free(l);
}

static void test_logger_drops_events_below_the_minimum_level(void **state)
{
    plog_test_capture *f = *state;
    plog_logger *l;
    char *out;

    assert_plog_ok(plog_logger_new(f->fd, PLOG_LOGGER_WARN, &l));
    assert_false(plog_logger_enabled(l, PLOG_LOGGER_INFO));
    assert_true(plog_logger_enabled(l, PLOG_LOGGER_WARN));
    assert_int_equal(plog_logger_get_level(l), PLOG_LOGGER_WARN);
    plog_logger_log(l, PLOG_LOGGER_DEBUG, "d", NULL);
    plog_logger_logf(l, PLOG_LOGGER_INFO, "i", NULL);
    plog_logger_logf(l, PLOG_LOGGER_WARN, "w", "n=%d", 1);
    plog_logger_log(l, PLOG_LOGGER_ERROR, "e", NULL);
    out = plog_test_capture_read_untimed(f);
    assert_string_equal(out, "level=warn msg=w n=1\nlevel=error msg=e\n");
    free(out);
    plog_logger_free(l);
}

/* ms_stamp writes the wall clock now as the logger does. */
static void ms_stamp(char *buf, size_t size)
{
    struct timespec ts;
    struct tm tm;

    assert_int_equal(clock_gettime(CLOCK_REALTIME, &ts), 0);
    assert_non_null(gmtime_r(&ts.tv_sec, &tm));
    assert_int_not_equal(strftime(buf, size, "%Y-%m-%dT%H:%M:%S", &tm), 0);
    snprintf(buf + strlen(buf), size - strlen(buf), ".%03ldZ", ts.tv_nsec / 1000000);
}

/* Every line starts with the time it was written, in UTC whatever the local time
 * zone (here New York's), so that the lines of several nodes sort together. */
static void test_logger_lines_start_with_the_utc_time(void **state)
{
    plog_test_capture *f = *state;
    char before[40], after[40], got[40];
    char *saved = tz_set("EST5EDT");
    plog_logger *l;
    char *out;

    tzset();
    assert_plog_ok(plog_logger_new(f->fd, PLOG_LOGGER_INFO, &l));
    ms_stamp(before, sizeof before);
    plog_logger_log(l, PLOG_LOGGER_INFO, "listening", NULL);
    plog_logger_report(l, PLOG_LOGGER_WARN, "msg=reported");
    ms_stamp(after, sizeof after);
    out = plog_test_capture_read(f);
    for (char *line = out, *end; (end = strchr(line, '\n')) != NULL; line = end + 1) {
        assert_int_equal(sscanf(line, "time=%39s level=", got), 1);
        if (strcmp(got, before) < 0 || strcmp(got, after) > 0)
            fail_msg("line stamped %s, written between %s and %s", got, before, after);
    }
    free(out);
    out = plog_test_capture_read_untimed(f);
    assert_string_equal(out, "level=info msg=listening\nlevel=warn msg=reported\n");
    free(out);
    plog_logger_free(l);
    tz_restore(saved);
}

/* The level changes at run time (what a SIGHUP does), both ways. */
static void test_logger_level_changes_at_run_time(void **state)
{
    plog_test_capture *f = *state;
    plog_logger *l;
    char *out;

    assert_plog_ok(plog_logger_new(f->fd, PLOG_LOGGER_INFO, &l));
    plog_logger_log(l, PLOG_LOGGER_DEBUG, "hidden", NULL);
    plog_logger_set_level(l, PLOG_LOGGER_DEBUG);
    assert_int_equal(plog_logger_get_level(l), PLOG_LOGGER_DEBUG);
    plog_logger_log(l, PLOG_LOGGER_DEBUG, "shown", NULL);
    plog_logger_set_level(l, PLOG_LOGGER_ERROR);
    plog_logger_log(l, PLOG_LOGGER_WARN, "hidden", NULL);
    out = plog_test_capture_read_untimed(f);
    assert_string_equal(out, "level=debug msg=shown\n");
    free(out);
    plog_logger_free(l);
}

/* A NULL logger is a valid "no log": nothing is written, nothing crashes. */
static void test_logger_null_logger_writes_nothing(void **state)
{
    (void)state;
    assert_false(plog_logger_enabled(NULL, PLOG_LOGGER_ERROR));
    assert_int_equal(plog_logger_get_level(NULL), PLOG_LOGGER_ERROR);
    plog_logger_log(NULL, PLOG_LOGGER_ERROR, "x", "k", "v", NULL);
    plog_logger_logf(NULL, PLOG_LOGGER_ERROR, "x", "k=%d", 1);
    plog_logger_report(NULL, PLOG_LOGGER_ERROR, "x");
    plog_logger_set_level(NULL, PLOG_LOGGER_DEBUG);
    plog_logger_free(NULL);
}

/* The callback adapter: arg is the logger, levels out of range are clamped, the
 * fragment is written as is but a control byte cannot end the line. */
static void test_logger_report_adapter(void **state)
{
    plog_test_capture *f = *state;
    void (*report)(void *, int, const char *) = plog_logger_report;
    plog_logger *l;
    char *out;

    assert_plog_ok(plog_logger_new(f->fd, PLOG_LOGGER_INFO, &l));
    report(l, PLOG_LOGGER_WARN, "msg=\"truncated torn tail\" file=3.store pos=17");
    report(l, 99, "msg=x\nlevel=info msg=forged");
    report(l, -5, "msg=\"debug is dropped at info\"");
    out = plog_test_capture_read_untimed(f);
    assert_string_equal(out, "level=warn msg=\"truncated torn tail\" file=3.store pos=17\n"
                             "level=error msg=x\\x0alevel=info msg=forged\n");
    free(out);
    plog_logger_free(l);
}

/* A value from outside (a certificate's CN, a path) must not be able to forge a line. */
static void test_logger_hostile_values_cannot_forge_lines(void **state)
{
    plog_test_capture *f = *state;
    plog_logger *l;
    char *out;

    assert_plog_ok(plog_logger_new(f->fd, PLOG_LOGGER_INFO, &l));
    plog_logger_log(l, PLOG_LOGGER_INFO, "request", "peer", "x\nlevel=error msg=forged \"q\" \\ \t\x01", "n",
                    "1", NULL);
    out = plog_test_capture_read_untimed(f);
    assert_string_equal(out, "level=info msg=request "
                             "peer=\"x\\nlevel=error msg=forged \\\"q\\\" \\\\ \\t\\x01\" n=1\n");
    free(out);
    plog_logger_free(l);
}

static void test_logger_long_values_are_cut_and_the_line_stays_whole(void **state)
{
    plog_test_capture *f = *state;
    char big[4000], newlines[250], *out, want[PLOG_LOGGER_MAX_VALUE + 8];
    plog_logger *l;

    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    memset(newlines, '\n', sizeof(newlines) - 1); /* escapes to twice its size */
    newlines[sizeof(newlines) - 1] = '\0';
    assert_plog_ok(plog_logger_new(f->fd, PLOG_LOGGER_INFO, &l));
    plog_logger_log(l, PLOG_LOGGER_INFO, "request", "method", big, "peer", big, "n", "8", "err", newlines,
                    NULL);
    out = plog_test_capture_read(f); /* with its time: the whole line is bounded */
    assert_true(strlen(out) <= PLOG_LOGGER_MAX_LINE);
    assert_int_equal(out[strlen(out) - 1], '\n');
    assert_ptr_equal(strchr(out, '\n'), out + strlen(out) - 1); /* one line */
    memset(want, 'a', PLOG_LOGGER_MAX_VALUE);
    memcpy(want + PLOG_LOGGER_MAX_VALUE, "... ", 5);
    assert_non_null(strstr(out, want)); /* value cut at MAX_VALUE, marked */
    /* The error value (escaped to 2 bytes per byte) is cut to fit and still closed. */
    assert_non_null(strstr(out, "n=8 err=\"\\n"));
    assert_non_null(strstr(out, "...\"\n"));
    free(out);
    plog_logger_free(l);
}

static void test_logger_quote_leaves_safe_values_bare(void **state)
{
    char buf[64];

    (void)state;
    assert_string_equal(plog_logger_quote("root", buf, sizeof(buf)), "root");
    assert_string_equal(plog_logger_quote("r\xc3\xa9mi", buf, sizeof(buf)), "r\xc3\xa9mi");
    assert_string_equal(plog_logger_quote("", buf, sizeof(buf)), "\"\"");
    assert_string_equal(plog_logger_quote(NULL, buf, sizeof(buf)), "\"\"");
    assert_string_equal(plog_logger_quote("a=b", buf, sizeof(buf)), "\"a=b\"");
    assert_string_equal(plog_logger_quote("abcdefghijkl", buf, 8), "abcd...");
    assert_string_equal(plog_logger_quote("a b c d e f", buf, 8), "\"a ...\"");
}

static void test_logger_keeps_errno(void **state)
{
    plog_test_capture *f = *state;
    plog_logger *l;

    assert_plog_ok(plog_logger_new(f->fd, PLOG_LOGGER_INFO, &l));
    errno = ENOSPC;
    plog_logger_log(l, PLOG_LOGGER_INFO, "x", "k", "v", NULL);
    assert_int_equal(errno, ENOSPC);
    plog_logger_free(l);
}

/* 8 threads x 5000 lines while a ninth flips the level: every line comes out whole,
 * none lost or mixed. */
#define WRITERS 8
#define LINES 5000

struct writer {
    plog_logger *l;
    int id;
};

static void *write_lines(void *arg)
{
    struct writer *w = arg;
    char peer[32], seq[32];

    snprintf(peer, sizeof(peer), "client-%d", w->id);
    for (int i = 0; i < LINES; i++) {
        snprintf(seq, sizeof(seq), "%d", i);
        plog_logger_log(w->l, PLOG_LOGGER_INFO, "request", "peer", peer, "seq", seq, NULL);
    }
    return NULL;
}

static void *flip_levels(void *arg)
{
    plog_logger *l = arg;

    for (int i = 0; i < 20000; i++)
        plog_logger_set_level(l, i % 2 ? PLOG_LOGGER_DEBUG : PLOG_LOGGER_INFO);
    return NULL;
}

static void test_logger_concurrent_lines_never_interleave(void **state)
{
    plog_test_capture *f = *state;
    pthread_t th[WRITERS], flipper;
    struct writer w[WRITERS];
    int next[WRITERS] = {0};
    plog_logger *l;
    char *out, *line, *save = NULL;
    int n = 0;

    assert_plog_ok(plog_logger_new(f->fd, PLOG_LOGGER_INFO, &l));
    assert_int_equal(pthread_create(&flipper, NULL, flip_levels, l), 0);
    for (int t = 0; t < WRITERS; t++) {
        w[t] = (struct writer){.l = l, .id = t};
        assert_int_equal(pthread_create(&th[t], NULL, write_lines, &w[t]), 0);
    }
    for (int t = 0; t < WRITERS; t++)
        assert_int_equal(pthread_join(th[t], NULL), 0);
    assert_int_equal(pthread_join(flipper, NULL), 0);
    out = plog_test_capture_read_untimed(f);
    for (line = strtok_r(out, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
        int id, seq, used = 0;
        if (sscanf(line, "level=info msg=request peer=client-%d seq=%d%n", &id, &seq, &used) != 2 ||
            used != (int)strlen(line) || id < 0 || id >= WRITERS)
            fail_msg("mangled line %d: %s", n, line);
        /* Each thread's own lines keep their order. */
        if (seq != next[id])
            fail_msg("thread %d: line %d where %d was due", id, seq, next[id]);
        next[id]++;
        n++;
    }
    assert_int_equal(n, WRITERS * LINES);
    free(out);
    plog_logger_free(l);
}

/* A test whose state is a fresh plog_test_capture. */
#define CAPTURED(t) cmocka_unit_test_setup_teardown(t, plog_test_capture_setup, plog_test_capture_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_logger_parse_level_accepts_the_four_names),
        CAPTURED(test_logger_first_line_keeps_errno_without_time_zone_files),
        CAPTURED(test_logger_line_has_level_msg_and_fields_in_order),
        CAPTURED(test_logger_lines_start_with_the_utc_time),
        CAPTURED(test_logger_drops_events_below_the_minimum_level),
        CAPTURED(test_logger_level_changes_at_run_time),
        cmocka_unit_test(test_logger_null_logger_writes_nothing),
        CAPTURED(test_logger_report_adapter),
        CAPTURED(test_logger_hostile_values_cannot_forge_lines),
        CAPTURED(test_logger_long_values_are_cut_and_the_line_stays_whole),
        cmocka_unit_test(test_logger_quote_leaves_safe_values_bare),
        CAPTURED(test_logger_keeps_errno),
        CAPTURED(test_logger_concurrent_lines_never_interleave),
    };
    return cmocka_run_group_tests_name("logger", tests, NULL, NULL);
}
