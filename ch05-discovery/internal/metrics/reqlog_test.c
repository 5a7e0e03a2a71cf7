/* reqlog_test.c - the structured log: line format, level filtering, escaping of
 * hostile values, and whole lines under concurrent writers. */
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
#include "internal/metrics/reqlog.h"
#include "testing/testing.h"

/* The log writes into a temporary file the test reads back. */
struct fixture {
    char dir[64];
    char path[128];
    int fd;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));

    plog_test_tmpdir("reqlog", f->dir, sizeof(f->dir));
    snprintf(f->path, sizeof(f->path), "%s/log", f->dir);
    f->fd = open(f->path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (f->fd < 0)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    close(f->fd);
    plog_test_rmrf(f->dir);
    free(f);
    return 0;
}

/* output returns everything written so far (malloc'd, NUL-terminated). */
static char *output(const struct fixture *f)
{
    struct stat st;
    char *buf;
    ssize_t n;

    assert_int_equal(fstat(f->fd, &st), 0);
    buf = malloc((size_t)st.st_size + 1);
    assert_non_null(buf);
    n = pread(f->fd, buf, (size_t)st.st_size, 0);
    assert_int_equal(n, st.st_size);
    buf[n] = '\0';
    return buf;
}

static void truncate_output(const struct fixture *f)
{
    assert_int_equal(ftruncate(f->fd, 0), 0);
    assert_int_equal(lseek(f->fd, 0, SEEK_SET), 0);
}

static const plog_reqlog_entry produce_ok = {
    .method = "Produce",
    .status = "OK",
    .latency_ns = 93456,
    .peer = "root",
    .bytes_in = 120,
    .bytes_out = 8,
};

static void test_reqlog_parse_level_accepts_the_four_names(void **state)
{
    plog_level l = PLOG_LEVEL_ERROR;

    (void)state;
    assert_plog_ok(plog_reqlog_parse_level("debug", &l));
    assert_int_equal(l, PLOG_LEVEL_DEBUG);
    assert_plog_ok(plog_reqlog_parse_level("INFO", &l));
    assert_int_equal(l, PLOG_LEVEL_INFO);
    assert_plog_ok(plog_reqlog_parse_level("warn", &l));
    assert_int_equal(l, PLOG_LEVEL_WARN);
    assert_plog_ok(plog_reqlog_parse_level("warning", &l));
    assert_int_equal(l, PLOG_LEVEL_WARN);
    assert_plog_ok(plog_reqlog_parse_level("Error", &l));
    assert_int_equal(l, PLOG_LEVEL_ERROR);
    assert_int_equal(plog_reqlog_parse_level("verbose", &l), PLOG_EINVAL);
    assert_int_equal(plog_reqlog_parse_level("", &l), PLOG_EINVAL);
    assert_int_equal(plog_reqlog_parse_level(NULL, &l), PLOG_EINVAL);
    assert_int_equal(l, PLOG_LEVEL_ERROR); /* untouched on failure */
    assert_string_equal(plog_reqlog_level_name(PLOG_LEVEL_WARN), "warn");
}

static void test_reqlog_request_line_has_every_field_in_order(void **state)
{
    struct fixture *f = *state;
    plog_reqlog *l;
    char *out;

    assert_plog_ok(plog_reqlog_new(f->fd, PLOG_LEVEL_INFO, PLOG_LEVEL_INFO, &l));
    plog_reqlog_request(l, &produce_ok);
    out = output(f);
    assert_string_equal(out, "level=info msg=request method=Produce status=OK latency_us=93 "
                             "peer=root bytes_in=120 bytes_out=8\n");
    free(out);
    plog_reqlog_free(l);
}

static void test_reqlog_failed_request_carries_quoted_error(void **state)
{
    struct fixture *f = *state;
    plog_reqlog_entry e = produce_ok;
    plog_reqlog *l;
    char *out;

    e.status = "PERMISSION_DENIED";
    e.peer = "nobody";
    e.err = "nobody not permitted to produce to *";
    assert_plog_ok(plog_reqlog_new(f->fd, PLOG_LEVEL_INFO, PLOG_LEVEL_INFO, &l));
    plog_reqlog_request(l, &e);
    e.peer = NULL; /* no verified identity */
    e.err = "";
    plog_reqlog_request(l, &e);
    out = output(f);
    assert_string_equal(out,
                        "level=info msg=request method=Produce status=PERMISSION_DENIED "
                        "latency_us=93 peer=nobody bytes_in=120 bytes_out=8 "
                        "err=\"nobody not permitted to produce to *\"\n"
                        "level=info msg=request method=Produce status=PERMISSION_DENIED "
                        "latency_us=93 peer=\"\" bytes_in=120 bytes_out=8\n");
    free(out);
    plog_reqlog_free(l);
}

static void test_reqlog_drops_events_below_the_minimum_level(void **state)
{
    struct fixture *f = *state;
    plog_reqlog *l;
    char *out;

    assert_plog_ok(plog_reqlog_new(f->fd, PLOG_LEVEL_WARN, PLOG_LEVEL_INFO, &l));
    assert_false(plog_reqlog_enabled(l, PLOG_LEVEL_INFO));
    assert_true(plog_reqlog_enabled(l, PLOG_LEVEL_WARN));
    plog_reqlog_request(l, &produce_ok);
    plog_reqlog_event(l, PLOG_LEVEL_DEBUG, "d", NULL);
    plog_reqlog_event(l, PLOG_LEVEL_INFO, "i", NULL);
    plog_reqlog_event(l, PLOG_LEVEL_WARN, "w", "n=%d", 1);
    plog_reqlog_event(l, PLOG_LEVEL_ERROR, "e", NULL);
    out = output(f);
    assert_string_equal(out, "level=warn msg=w n=1\nlevel=error msg=e\n");
    free(out);
    plog_reqlog_free(l);
}

/* request_level DEBUG: request lines vanish at info and appear at debug. */
static void test_reqlog_request_lines_at_debug_show_only_when_debug(void **state)
{
    struct fixture *f = *state;
    plog_reqlog *l;
    char *out;

    assert_plog_ok(plog_reqlog_new(f->fd, PLOG_LEVEL_INFO, PLOG_LEVEL_DEBUG, &l));
    plog_reqlog_request(l, &produce_ok);
    out = output(f);
    assert_string_equal(out, "");
    free(out);
    plog_reqlog_set_level(l, PLOG_LEVEL_DEBUG);
    plog_reqlog_request(l, &produce_ok);
    out = output(f);
    assert_string_equal(out, "level=debug msg=request method=Produce status=OK latency_us=93 "
                             "peer=root bytes_in=120 bytes_out=8\n");
    free(out);
    truncate_output(f);
    plog_reqlog_set_level(l, PLOG_LEVEL_ERROR);
    plog_reqlog_request(l, &produce_ok);
    plog_reqlog_event(l, PLOG_LEVEL_WARN, "w", NULL);
    out = output(f);
    assert_string_equal(out, "");
    free(out);
    plog_reqlog_free(l);
}

/* A client picks its certificate's CN: it must not be able to forge a line. */
static void test_reqlog_hostile_values_cannot_forge_lines(void **state)
{
    struct fixture *f = *state;
    plog_reqlog_entry e = produce_ok;
    plog_reqlog *l;
    char *out;

    e.peer = "x\nlevel=error msg=forged \"q\" \\ \t\x01";
    assert_plog_ok(plog_reqlog_new(f->fd, PLOG_LEVEL_INFO, PLOG_LEVEL_INFO, &l));
    plog_reqlog_request(l, &e);
    out = output(f);
    assert_string_equal(out, "level=info msg=request method=Produce status=OK latency_us=93 "
                             "peer=\"x\\nlevel=error msg=forged \\\"q\\\" \\\\ \\t\\x01\" "
                             "bytes_in=120 bytes_out=8\n");
    free(out);
    plog_reqlog_free(l);
}

static void test_reqlog_long_values_are_cut_and_the_line_stays_whole(void **state)
{
    struct fixture *f = *state;
    plog_reqlog_entry e = produce_ok;
    char big[4000], newlines[250], *out, want[PLOG_REQLOG_MAX_VALUE + 8];
    plog_reqlog *l;

    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    e.peer = big;
    e.method = big;
    memset(newlines, '\n', sizeof(newlines) - 1); /* escapes to twice its size */
    newlines[sizeof(newlines) - 1] = '\0';
    e.err = newlines;
    assert_plog_ok(plog_reqlog_new(f->fd, PLOG_LEVEL_INFO, PLOG_LEVEL_INFO, &l));
    plog_reqlog_request(l, &e);
    out = output(f);
    assert_true(strlen(out) <= PLOG_REQLOG_MAX_LINE);
    assert_int_equal(out[strlen(out) - 1], '\n');
    assert_ptr_equal(strchr(out, '\n'), out + strlen(out) - 1); /* one line */
    memset(want, 'a', PLOG_REQLOG_MAX_VALUE);
    memcpy(want + PLOG_REQLOG_MAX_VALUE, "... ", 5);
    assert_non_null(strstr(out, want)); /* value cut at MAX_VALUE, marked */
    /* The error value (escaped to 2 bytes per byte) is cut to fit and still closed. */
    assert_non_null(strstr(out, "bytes_out=8 err=\"\\n"));
    assert_non_null(strstr(out, "...\"\n"));
    free(out);
    plog_reqlog_free(l);
}

static void test_reqlog_quote_leaves_safe_values_bare(void **state)
{
    char buf[64];

    (void)state;
    assert_string_equal(plog_reqlog_quote("root", buf, sizeof(buf)), "root");
    assert_string_equal(plog_reqlog_quote("r\xc3\xa9mi", buf, sizeof(buf)), "r\xc3\xa9mi");
    assert_string_equal(plog_reqlog_quote("", buf, sizeof(buf)), "\"\"");
    assert_string_equal(plog_reqlog_quote(NULL, buf, sizeof(buf)), "\"\"");
    assert_string_equal(plog_reqlog_quote("a=b", buf, sizeof(buf)), "\"a=b\"");
    assert_string_equal(plog_reqlog_quote("abcdefghijkl", buf, 8), "abcd...");
    assert_string_equal(plog_reqlog_quote("a b c d e f", buf, 8), "\"a ...\"");
}

static void test_reqlog_keeps_errno(void **state)
{
    struct fixture *f = *state;
    plog_reqlog *l;

    assert_plog_ok(plog_reqlog_new(f->fd, PLOG_LEVEL_INFO, PLOG_LEVEL_INFO, &l));
    errno = ENOSPC;
    plog_reqlog_request(l, &produce_ok);
    assert_int_equal(errno, ENOSPC);
    plog_reqlog_free(l);
    plog_reqlog_free(NULL);
}

/* 8 threads x 5000 lines: every line comes out whole, none lost or mixed. */
#define WRITERS 8
#define LINES 5000

struct writer {
    plog_reqlog *l;
    int id;
};

static void *write_lines(void *arg)
{
    struct writer *w = arg;
    char peer[32];

    snprintf(peer, sizeof(peer), "client-%d", w->id);
    for (int i = 0; i < LINES; i++) {
        plog_reqlog_entry e = produce_ok;
        e.peer = peer;
        e.bytes_in = (uint64_t)i;
        plog_reqlog_request(w->l, &e);
    }
    return NULL;
}

static void test_reqlog_concurrent_lines_never_interleave(void **state)
{
    struct fixture *f = *state;
    pthread_t th[WRITERS];
    struct writer w[WRITERS];
    int next[WRITERS] = {0};
    plog_reqlog *l;
    char *out, *line, *save = NULL;
    int n = 0;

    assert_plog_ok(plog_reqlog_new(f->fd, PLOG_LEVEL_INFO, PLOG_LEVEL_INFO, &l));
    for (int t = 0; t < WRITERS; t++) {
        w[t] = (struct writer){.l = l, .id = t};
        assert_int_equal(pthread_create(&th[t], NULL, write_lines, &w[t]), 0);
    }
    for (int t = 0; t < WRITERS; t++)
        assert_int_equal(pthread_join(th[t], NULL), 0);
    out = output(f);
    for (line = strtok_r(out, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
        int id, seq, used = 0;
        if (sscanf(line,
                   "level=info msg=request method=Produce status=OK latency_us=93 "
                   "peer=client-%d bytes_in=%d bytes_out=8%n",
                   &id, &seq, &used) != 2 ||
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
    plog_reqlog_free(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reqlog_parse_level_accepts_the_four_names),
        cmocka_unit_test_setup_teardown(test_reqlog_request_line_has_every_field_in_order, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_reqlog_failed_request_carries_quoted_error, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_reqlog_drops_events_below_the_minimum_level, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_reqlog_request_lines_at_debug_show_only_when_debug,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_reqlog_hostile_values_cannot_forge_lines, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_reqlog_long_values_are_cut_and_the_line_stays_whole,
                                        setup, teardown),
        cmocka_unit_test(test_reqlog_quote_leaves_safe_values_bare),
        cmocka_unit_test_setup_teardown(test_reqlog_keeps_errno, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reqlog_concurrent_lines_never_interleave, setup,
                                        teardown),
    };
    return cmocka_run_group_tests_name("reqlog", tests, NULL, NULL);
}
