/* metrics_test.c - the registry: exact counts under concurrency, bucket bounds,
 * gauges, and the rendered text read back by a strict exposition-format reader. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal/err/err.h"
#include "internal/metrics/expfmt_check.h"
#include "internal/metrics/metrics.h"
#include "testing/testing.h"

enum { PRODUCE, CONSUME, CONSUME_STREAM, PRODUCE_STREAM, NMETHODS };
static const char *const methods[NMETHODS] = {"Produce", "Consume", "ConsumeStream", "ProduceStream"};

static int setup(void **state)
{
    plog_metrics *m;

    if (plog_metrics_new(methods, NMETHODS, &m) != PLOG_OK)
        return -1;
    *state = m;
    return 0;
}

static int teardown(void **state)
{
    plog_metrics_free(*state);
    return 0;
}

/* render_checked renders m, checks the text with the strict reader and returns it
 * (the caller frees it). */
static char *render_checked(plog_metrics *m, struct expfmt_stats *st)
{
    char *text, why[512];
    size_t len;
    struct expfmt_stats local;

    assert_plog_ok(plog_metrics_render(m, &text, &len));
    assert_int_equal(strlen(text), len);
    if (!expfmt_check(text, st != NULL ? st : &local, why, sizeof(why))) {
        fprintf(stderr, "%s\n", text);
        fail_msg("exposition format: %s", why);
    }
    return text;
}

static void test_metrics_new_rejects_bad_method_lists(void **state)
{
    const char *const with_null[] = {"Produce", NULL};
    const char *const with_empty[] = {"Produce", ""};
    const char *const repeated[] = {"Produce", "Consume", "Produce"};
    const char *const reserved[] = {"unknown"};
    const char *many[PLOG_METRICS_MAX_METHODS + 1];
    plog_metrics *m = (plog_metrics *)state; /* a sentinel: must stay untouched */

    static const char names[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    for (size_t i = 0; i <= PLOG_METRICS_MAX_METHODS; i++)
        many[i] = &names[i]; /* "ABC...", "BCD...", ...: all distinct */
    assert_int_equal(plog_metrics_new(methods, 0, &m), PLOG_EINVAL);
    assert_int_equal(plog_metrics_new(NULL, 1, &m), PLOG_EINVAL);
    assert_int_equal(plog_metrics_new(with_null, 2, &m), PLOG_EINVAL);
    assert_int_equal(plog_metrics_new(with_empty, 2, &m), PLOG_EINVAL);
    assert_int_equal(plog_metrics_new(repeated, 3, &m), PLOG_EINVAL);
    assert_int_equal(plog_metrics_new(reserved, 1, &m), PLOG_EINVAL);
    assert_int_equal(plog_metrics_new(many, PLOG_METRICS_MAX_METHODS + 1, &m), PLOG_EINVAL);
    assert_ptr_equal(m, (plog_metrics *)state);
    assert_plog_ok(plog_metrics_new(many, PLOG_METRICS_MAX_METHODS, &m));
    plog_metrics_free(m);
    plog_metrics_free(NULL);
}

static void test_metrics_fresh_registry_shows_zero_ok_series_per_method(void **state)
{
    plog_metrics *m = *state;
    struct expfmt_stats st;
    char *text = render_checked(m, &st);

    assert_int_equal(st.histograms, NMETHODS); /* one code="OK" series per method */
    assert_true(expfmt_find(text, "proglog_requests_total{method=\"ConsumeStream\",code=\"OK\"}") == 0);
    assert_true(expfmt_find(text, "proglog_request_duration_seconds_count{method=\"Produce\","
                                  "code=\"OK\"}") == 0);
    assert_true(expfmt_find(text, "proglog_open_connections") == 0);
    assert_null(strstr(text, "unknown"));
    assert_null(strstr(text, "NOT_FOUND"));
    free(text);
}

static void test_metrics_observe_counts_by_method_and_code(void **state)
{
    plog_metrics *m = *state;
    char *text;

    plog_metrics_observe(m, PRODUCE, 0, 93000, 120, 8);
    plog_metrics_observe(m, PRODUCE, 0, 50000, 100, 8);
    plog_metrics_observe(m, CONSUME, 11, 20000, 10, 40);
    assert_int_equal(plog_metrics_requests(m, PRODUCE, 0), 2);
    assert_int_equal(plog_metrics_requests(m, CONSUME, 11), 1);
    assert_int_equal(plog_metrics_requests(m, CONSUME, 0), 0);
    text = render_checked(m, NULL);
    assert_true(expfmt_find(text, "proglog_requests_total{method=\"Produce\",code=\"OK\"}") == 2);
    assert_true(expfmt_find(text, "proglog_requests_total{method=\"Consume\",code=\"OUT_OF_RANGE\"}") == 1);
    assert_true(expfmt_find(text, "proglog_request_bytes_total{method=\"Produce\"}") == 220);
    assert_true(expfmt_find(text, "proglog_response_bytes_total{method=\"Consume\"}") == 40);
    {
        char v[64];
        assert_non_null(expfmt_find_str(
            text, "proglog_request_duration_seconds_sum{method=\"Produce\",code=\"OK\"}", v, sizeof(v)));
        assert_string_equal(v, "0.000143000");
    }
    free(text);
}

static void test_metrics_unknown_method_and_code_count_as_unknown(void **state)
{
    plog_metrics *m = *state;
    char *text;

    assert_int_equal(plog_metrics_method_id(m, "Consume"), CONSUME);
    assert_int_equal(plog_metrics_method_id(m, "Nope"), PLOG_METRICS_MAX_METHODS);
    plog_metrics_observe(m, plog_metrics_method_id(m, "Nope"), 12, 1000, 7, 0);
    plog_metrics_observe(m, -3, 99, 1000, 0, 0);
    assert_int_equal(plog_metrics_requests(m, PLOG_METRICS_MAX_METHODS, 12), 1);
    assert_int_equal(plog_metrics_requests(m, -1, 2), 1);
    text = render_checked(m, NULL);
    assert_true(expfmt_find(text, "proglog_requests_total{method=\"unknown\",code=\"UNIMPLEMENTED\"}") == 1);
    assert_true(expfmt_find(text, "proglog_requests_total{method=\"unknown\",code=\"UNKNOWN\"}") == 1);
    assert_true(expfmt_find(text, "proglog_request_bytes_total{method=\"unknown\"}") == 7);
    free(text);
}

/* le is "less than or equal": a latency exactly on a bound counts in that bucket. */
static void test_metrics_histogram_bounds_are_inclusive(void **state)
{
    plog_metrics *m = *state;
    const char *b = "proglog_request_duration_seconds_bucket{method=\"Consume\",code=\"OK\",le=";
    char s[256], *text;

    plog_metrics_observe(m, CONSUME, 0, 25000, 0, 0);       /* exactly 25 us */
    plog_metrics_observe(m, CONSUME, 0, 25001, 0, 0);       /* just above */
    plog_metrics_observe(m, CONSUME, 0, 0, 0, 0);           /* zero */
    plog_metrics_observe(m, CONSUME, 0, 10000000000, 0, 0); /* exactly 10 s */
    plog_metrics_observe(m, CONSUME, 0, 10000000001, 0, 0); /* above every bound */
    text = render_checked(m, NULL);
#define BUCKET(le, want)                        \
    snprintf(s, sizeof(s), "%s\"%s\"}", b, le); \
    if (expfmt_find(text, s) != (want))         \
        fail_msg("%s = %g, want %d", s, expfmt_find(text, s), want);
    BUCKET("2.5e-05", 2);
    BUCKET("5e-05", 3);
    BUCKET("5", 3);
    BUCKET("10", 4);
    BUCKET("+Inf", 5);
#undef BUCKET
    free(text);
}

static void test_metrics_gauges_set_and_add(void **state)
{
    plog_metrics *m = *state;
    char *text;

    plog_metrics_gauge_set(m, PLOG_GAUGE_LOG_NEXT_OFFSET, 42);
    plog_metrics_gauge_set(m, PLOG_GAUGE_LOG_LOWEST_OFFSET, 40);
    plog_metrics_gauge_add(m, PLOG_GAUGE_OPEN_CONNECTIONS, 1);
    plog_metrics_gauge_add(m, PLOG_GAUGE_OPEN_CONNECTIONS, 1);
    plog_metrics_gauge_add(m, PLOG_GAUGE_OPEN_CONNECTIONS, -1);
    assert_int_equal(plog_metrics_gauge_get(m, PLOG_GAUGE_OPEN_CONNECTIONS), 1);
    text = render_checked(m, NULL);
    assert_true(expfmt_find(text, "proglog_log_next_offset") == 42);
    assert_true(expfmt_find(text, "proglog_log_lowest_offset") == 40);
    assert_true(expfmt_find(text, "proglog_open_connections") == 1);
    assert_true(expfmt_find(text, "proglog_log_size_bytes") == 0);
    free(text);
}

static int64_t read_i64(void *arg)
{
    return *(int64_t *)arg;
}

static void test_metrics_bound_gauge_reads_callback_until_unbound(void **state)
{
    plog_metrics *m = *state;
    int64_t size = 4096;
    char *text;

    plog_metrics_gauge_set(m, PLOG_GAUGE_LOG_SIZE_BYTES, 7);
    plog_metrics_gauge_bind(m, PLOG_GAUGE_LOG_SIZE_BYTES, read_i64, &size);
    assert_int_equal(plog_metrics_gauge_get(m, PLOG_GAUGE_LOG_SIZE_BYTES), 4096);
    size = 8192;
    text = render_checked(m, NULL);
    assert_true(expfmt_find(text, "proglog_log_size_bytes") == 8192);
    free(text);
    plog_metrics_gauge_bind(m, PLOG_GAUGE_LOG_SIZE_BYTES, NULL, NULL);
    assert_int_equal(plog_metrics_gauge_get(m, PLOG_GAUGE_LOG_SIZE_BYTES), 7);
}

static void test_metrics_label_values_are_escaped(void **state)
{
    const char *const odd[] = {"a\"b\\c\nd"};
    plog_metrics *m;
    char *text;

    (void)state;
    assert_plog_ok(plog_metrics_new(odd, 1, &m));
    plog_metrics_observe(m, 0, 0, 1, 1, 1);
    text = render_checked(m, NULL);
    assert_true(expfmt_find(text, "proglog_requests_total{method=\"a\\\"b\\\\c\\nd\",code=\"OK\"}") == 1);
    free(text);
    plog_metrics_free(m);
}

/* The checker itself must refuse broken text, or the tests above prove nothing. */
static void test_metrics_checker_rejects_broken_exposition(void **state)
{
    static const char *const bad[] = {
        "x 1",                            /* no newline at the end */
        "x 1\n",                          /* no TYPE */
        "# TYPE x counter\nx{a=\"1} 1\n", /* unterminated label */
        "# TYPE x counter\nx -1\n",       /* negative counter */
        "# TYPE x counter\nx 1\nx 2\n",   /* duplicate series */
        "# TYPE x gauge\nx one\n",        /* bad value */
        "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n",
        "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 3\n",
        "# TYPE h histogram\nh_bucket{le=\"2\"} 1\nh_bucket{le=\"1\"} 1\nh_sum 1\nh_count 1\n",
        "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_sum 1\nh_count 1\n", /* no +Inf */
        "# TYPE x gauge\nx 1\n# TYPE y gauge\ny 1\nx{a=\"b\"} 2\n",       /* not contiguous */
        "# TYPE x gauge\n# TYPE x gauge\nx 1\n",
        "# TYPE x whatever\nx 1\n",
    };
    struct expfmt_stats st;
    char why[256];

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (expfmt_check(bad[i], &st, why, sizeof(why)))
            fail_msg("accepted broken text #%zu:\n%s", i, bad[i]);
    assert_true(expfmt_check("# HELP x a thing\n# TYPE x gauge\nx 1.5e3\n", &st, why, sizeof(why)));
}

/* 8 threads x 100k observations, spread over methods, codes and buckets: every
 * count, bucket, sum and byte total comes out exact. */
#define THREADS 8
#define PER_THREAD 100000

struct worker {
    plog_metrics *m;
    int id;
};

/* The i-th observation of worker id: deterministic, so the test can predict it. */
static void nth(int id, int i, int *method, int *code, uint64_t *lat)
{
    *method = (id + i) % NMETHODS;
    *code = (i % 7 == 0) ? 11 : 0;
    *lat = (uint64_t)(i % 1000) * 1000; /* 0..999 us */
}

static void *observe_worker(void *arg)
{
    struct worker *w = arg;

    for (int i = 0; i < PER_THREAD; i++) {
        int method, code;
        uint64_t lat;
        nth(w->id, i, &method, &code, &lat);
        plog_metrics_observe(w->m, method, code, lat, 3, 5);
    }
    return NULL;
}

static void test_metrics_concurrent_observations_are_counted_exactly(void **state)
{
    plog_metrics *m = *state;
    pthread_t th[THREADS];
    struct worker w[THREADS];
    uint64_t want[NMETHODS][2] = {{0}}, want_sum[NMETHODS][2] = {{0}};
    uint64_t want_le_100us[NMETHODS][2] = {{0}};
    uint64_t total = 0;
    char *text, series[256], v[64], sumtxt[64];

    for (int t = 0; t < THREADS; t++) {
        w[t] = (struct worker){.m = m, .id = t};
        assert_int_equal(pthread_create(&th[t], NULL, observe_worker, &w[t]), 0);
    }
    for (int t = 0; t < THREADS; t++)
        assert_int_equal(pthread_join(th[t], NULL), 0);
    for (int t = 0; t < THREADS; t++)
        for (int i = 0; i < PER_THREAD; i++) {
            int method, code;
            uint64_t lat;
            nth(t, i, &method, &code, &lat);
            want[method][code != 0]++;
            want_sum[method][code != 0] += lat;
            want_le_100us[method][code != 0] += lat <= 100000;
        }
    text = render_checked(m, NULL);
    for (int me = 0; me < NMETHODS; me++)
        for (int c = 0; c < 2; c++) {
            const char *code = c ? "OUT_OF_RANGE" : "OK";
            uint64_t got = plog_metrics_requests(m, me, c ? 11 : 0);
            if (got != want[me][c])
                fail_msg("%s %s: %" PRIu64 " requests, want %" PRIu64, methods[me], code, got, want[me][c]);
            total += got;
            snprintf(series, sizeof(series),
                     "proglog_request_duration_seconds_count{method=\"%s\",code=\"%s\"}", methods[me], code);
            assert_true(expfmt_find(text, series) == (double)want[me][c]);
            snprintf(series, sizeof(series),
                     "proglog_request_duration_seconds_bucket{method=\"%s\",code=\"%s\",le=\"0.0001\"}",
                     methods[me], code);
            assert_true(expfmt_find(text, series) == (double)want_le_100us[me][c]);
            snprintf(series, sizeof(series),
                     "proglog_request_duration_seconds_sum{method=\"%s\",code=\"%s\"}", methods[me], code);
            assert_non_null(expfmt_find_str(text, series, v, sizeof(v)));
            snprintf(sumtxt, sizeof(sumtxt), "%" PRIu64 ".%09" PRIu64, want_sum[me][c] / 1000000000u,
                     want_sum[me][c] % 1000000000u);
            assert_string_equal(v, sumtxt);
        }
    assert_int_equal(total, (uint64_t)THREADS * PER_THREAD);
    for (int me = 0; me < NMETHODS; me++) {
        snprintf(series, sizeof(series), "proglog_request_bytes_total{method=\"%s\"}", methods[me]);
        assert_true(expfmt_find(text, series) == 3.0 * (double)(want[me][0] + want[me][1]));
        snprintf(series, sizeof(series), "proglog_response_bytes_total{method=\"%s\"}", methods[me]);
        assert_true(expfmt_find(text, series) == 5.0 * (double)(want[me][0] + want[me][1]));
    }
    free(text);
}

/* Scrapes while 4 threads observe: every scrape is well formed (buckets
 * monotone, _count == +Inf), and counts only ever grow between scrapes. */
struct spin {
    plog_metrics *m;
    atomic_bool stop;
};

static void *spin_observe(void *arg)
{
    struct spin *s = arg;
    uint64_t i = 0;

    while (!atomic_load(&s->stop)) {
        plog_metrics_observe(s->m, (int)(i % NMETHODS), (int)(i % 3), (i * 7919) % 3000000000u, 1, 1);
        plog_metrics_gauge_add(s->m, PLOG_GAUGE_OPEN_CONNECTIONS, (i & 1) ? -1 : 1);
        i++;
    }
    return NULL;
}

static void test_metrics_render_during_observation_stays_well_formed(void **state)
{
    struct spin s = {.m = *state};
    pthread_t th[4];
    double last = -1;

    atomic_init(&s.stop, false);
    for (int t = 0; t < 4; t++)
        assert_int_equal(pthread_create(&th[t], NULL, spin_observe, &s), 0);
    for (int r = 0; r < 50; r++) {
        char *text = render_checked(s.m, NULL);
        double now =
            expfmt_find(text, "proglog_request_duration_seconds_count{method=\"Produce\",code=\"OK\"}");
        assert_true(now >= last);
        last = now;
        free(text);
    }
    atomic_store(&s.stop, true);
    for (int t = 0; t < 4; t++)
        assert_int_equal(pthread_join(th[t], NULL), 0);
    assert_true(last > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_metrics_new_rejects_bad_method_lists),
        cmocka_unit_test_setup_teardown(test_metrics_fresh_registry_shows_zero_ok_series_per_method, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_metrics_observe_counts_by_method_and_code, setup, teardown),
        cmocka_unit_test_setup_teardown(test_metrics_unknown_method_and_code_count_as_unknown, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_metrics_histogram_bounds_are_inclusive, setup, teardown),
        cmocka_unit_test_setup_teardown(test_metrics_gauges_set_and_add, setup, teardown),
        cmocka_unit_test_setup_teardown(test_metrics_bound_gauge_reads_callback_until_unbound, setup,
                                        teardown),
        cmocka_unit_test(test_metrics_label_values_are_escaped),
        cmocka_unit_test(test_metrics_checker_rejects_broken_exposition),
        cmocka_unit_test_setup_teardown(test_metrics_concurrent_observations_are_counted_exactly, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_metrics_render_during_observation_stays_well_formed, setup,
                                        teardown),
    };
    return cmocka_run_group_tests_name("metrics", tests, NULL, NULL);
}
