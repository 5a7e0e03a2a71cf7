/* http_test.c - the metrics endpoint over real HTTP: scraped with curl, checked by
 * the strict exposition reader and, when Debian's prometheus package is installed,
 * by `promtool check metrics`; closed with nng's reaper or the closer thread stuck
 * (internal/rpc/reaper_testlib.h). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "internal/err/err.h"
#include "internal/logger/logger.h"
#include "internal/metrics/expfmt_check.h"
#include "internal/metrics/http.h"
#include "internal/metrics/metrics.h"
#include "internal/rpc/closer.h"
#include "internal/rpc/reaper_testlib.h"
#include "testing/testing.h"

static const char *const methods[] = {"Produce", "Consume", "ConsumeStream", "ProduceStream"};

struct fixture {
    char dir[64];
    plog_metrics *m;
    plog_metrics_http *h;
    int port;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    char addr[64], err[128];

    plog_test_tmpdir("metrics-http", f->dir, sizeof(f->dir));
    if (plog_metrics_new(methods, 4, &f->m) != PLOG_OK)
        return -1;
    f->port = plog_test_free_port();
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", f->port);
    if (plog_metrics_http_open(f->m, addr, err, sizeof(err), &f->h) != PLOG_OK) {
        fprintf(stderr, "open %s: %s\n", addr, err);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    plog_metrics_http_close(f->h, NULL);
    plog_metrics_free(f->m);
    plog_test_rmrf(f->dir);
    free(f);
    return 0;
}

static char *slurp(const char *path)
{
    FILE *fp = fopen(path, "rb");
    char *buf;
    long n;

    if (fp == NULL)
        return NULL;
    fseek(fp, 0, SEEK_END);
    n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, fp), (size_t)n);
    buf[n] = '\0';
    fclose(fp);
    return buf;
}

/* curl fetches path from the fixture's port with method (NULL: GET, "HEAD": -I)
 * and returns the HTTP status, or -(curl's exit code) when curl failed. The body
 * and headers are left in dir/body and dir/headers. */
static int curl(const struct fixture *f, int port, const char *method, const char *path)
{
    char url[128], body[128], hdrs[128], *out = NULL;
    char *argv[16];
    int argc = 0, rc, status;

    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, path);
    snprintf(body, sizeof(body), "%s/body", f->dir);
    snprintf(hdrs, sizeof(hdrs), "%s/headers", f->dir);
    remove(body);
    argv[argc++] = "curl";
    argv[argc++] = "-sS";
    argv[argc++] = "--max-time";
    argv[argc++] = "10";
    argv[argc++] = "-o";
    argv[argc++] = body;
    argv[argc++] = "-D";
    argv[argc++] = hdrs;
    argv[argc++] = "-w";
    argv[argc++] = "%{http_code}";
    if (method != NULL && strcmp(method, "HEAD") == 0)
        argv[argc++] = "-I";
    else if (method != NULL) {
        argv[argc++] = "-X";
        argv[argc++] = (char *)method;
    }
    argv[argc++] = url;
    argv[argc] = NULL;
    rc = plog_test_run(argv, NULL, 20000, &out);
    status = rc == 0 ? atoi(out) : -rc;
    free(out);
    return status;
}

static char *scrape(const struct fixture *f)
{
    char path[128];
    int status = curl(f, f->port, NULL, "/metrics");

    if (status != 200)
        fail_msg("GET /metrics: %d", status);
    snprintf(path, sizeof(path), "%s/body", f->dir);
    return slurp(path);
}

static char *headers(const struct fixture *f)
{
    char path[128];

    snprintf(path, sizeof(path), "%s/headers", f->dir);
    return slurp(path);
}

/* connect_to connects a TCP socket to 127.0.0.1:port. */
static int connect_to(int port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET};
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    assert_true(fd >= 0);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sa.sin_port = htons((uint16_t)port);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    return fd;
}

/* get_on sends GET /metrics on fd, an HTTP/1.1 connection kept alive as
 * Prometheus keeps it, and returns the status of the answer once it is read
 * whole (-1: the connection ended or 10 s passed first). */
static int get_on(int fd)
{
    const char *req = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
    char buf[65536];
    size_t n = 0;
    int status = -1;

    assert_int_equal(write(fd, req, strlen(req)), (ssize_t)strlen(req));
    for (;;) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        ssize_t r;
        if (poll(&pfd, 1, 10000) != 1 || (r = read(fd, buf + n, sizeof(buf) - 1 - n)) <= 0)
            return -1;
        n += (size_t)r;
        buf[n] = '\0';
        const char *end = strstr(buf, "\r\n\r\n"), *cl = strstr(buf, "Content-Length: ");
        if (end != NULL && cl != NULL && cl < end &&
            n >= (size_t)(end + 4 - buf) + strtoul(cl + strlen("Content-Length: "), NULL, 10)) {
            sscanf(buf, "HTTP/1.1 %d", &status);
            return status;
        }
        assert_true(n < sizeof(buf) - 1);
    }
}

static int64_t forty_two(void *arg)
{
    (void)arg;
    return 42;
}

static void test_metrics_http_get_metrics_serves_the_exposition_text(void **state)
{
    struct fixture *f = *state;
    struct expfmt_stats st;
    char why[512], *body, *hdr;

    plog_metrics_observe(f->m, 0, 0, 93000, 120, 8);
    plog_metrics_observe(f->m, 1, 7, 15000, 20, 60);
    plog_metrics_gauge_add(f->m, PLOG_GAUGE_OPEN_CONNECTIONS, 3);
    plog_metrics_gauge_bind(f->m, PLOG_GAUGE_LOG_NEXT_OFFSET, forty_two, NULL);
    body = scrape(f);
    hdr = headers(f);
    assert_non_null(strstr(hdr, "Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"));
    if (!expfmt_check(body, &st, why, sizeof(why)))
        fail_msg("scraped text: %s\n%s", why, body);
    assert_true(expfmt_find(body, "proglog_requests_total{method=\"Produce\",code=\"OK\"}") == 1);
    assert_true(expfmt_find(body, "proglog_requests_total{method=\"Consume\","
                                  "code=\"PERMISSION_DENIED\"}") == 1);
    assert_true(expfmt_find(body, "proglog_open_connections") == 3);
    assert_true(expfmt_find(body, "proglog_log_next_offset") == 42);
    plog_metrics_gauge_bind(f->m, PLOG_GAUGE_LOG_NEXT_OFFSET, NULL, NULL);
    free(body);
    free(hdr);
}

static void test_metrics_http_other_paths_are_404_and_other_methods_405(void **state)
{
    struct fixture *f = *state;
    char *hdr;

    assert_int_equal(curl(f, f->port, NULL, "/"), 404);
    assert_int_equal(curl(f, f->port, NULL, "/other"), 404);
    assert_int_equal(curl(f, f->port, NULL, "/metricsx"), 404);
    assert_int_equal(curl(f, f->port, "POST", "/metrics"), 405);
    assert_int_equal(curl(f, f->port, "HEAD", "/metrics"), 200);
    hdr = headers(f);
    assert_non_null(strstr(hdr, "version=0.0.4"));
    free(hdr);
}

/* promtool (Debian package prometheus) is the reference checker; without it the
 * test says so and skips. */
static void test_metrics_http_scrape_passes_promtool_check_metrics(void **state)
{
    struct fixture *f = *state;
    char cmd[256], *body, *out = NULL;
    int rc;

    if (plog_test_sh("command -v promtool", 5000, NULL) != 0) {
        printf("promtool not on PATH (apt-get install prometheus): skipped\n");
        skip();
    }
    plog_metrics_observe(f->m, 0, 0, 93000, 120, 8);
    plog_metrics_observe(f->m, 2, 4, 3000000000u, 20, 0);
    plog_metrics_observe(f->m, 99, 12, 1000, 5, 0);
    body = scrape(f);
    free(body);
    snprintf(cmd, sizeof(cmd), "promtool check metrics < %s/body", f->dir);
    rc = plog_test_sh(cmd, 20000, &out);
    /* It exits 0 and prints nothing when it has neither errors nor lint findings. */
    if (rc != 0 || (out != NULL && out[0] != '\0'))
        fail_msg("promtool check metrics: exit %d\n%s", rc, out ? out : "");
    free(out);
}

static void test_metrics_http_port_zero_picks_a_free_port(void **state)
{
    struct fixture *f = *state, g = *f;
    plog_metrics_http *h;

    assert_plog_ok(plog_metrics_http_open(f->m, "http://127.0.0.1:0", NULL, 0, &h));
    g.port = plog_metrics_http_port(h);
    assert_true(g.port > 0 && g.port != f->port);
    free(scrape(&g));
    plog_metrics_http_close(h, NULL);
}

static void test_metrics_http_open_rejects_bad_and_busy_addresses(void **state)
{
    struct fixture *f = *state;
    plog_metrics_http *h = (plog_metrics_http *)state; /* sentinel: must stay untouched */
    char err[128], addr[64];
    struct sockaddr_in sa = {.sin_family = AF_INET};
    socklen_t salen = sizeof(sa);
    int fd;

    assert_int_equal(plog_metrics_http_open(f->m, "", err, sizeof(err), &h), PLOG_EINVAL);
    assert_int_equal(plog_metrics_http_open(f->m, "ftp://127.0.0.1:1", err, sizeof(err), &h), PLOG_EINVAL);
    assert_int_equal(plog_metrics_http_open(f->m, "127.0.0.1:1/x", err, sizeof(err), &h), PLOG_EINVAL);
    /* A port some other socket listens on. */
    fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(fd, 1), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &salen), 0);
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", ntohs(sa.sin_port));
    assert_int_equal(plog_metrics_http_open(f->m, addr, err, sizeof(err), &h), PLOG_EIO);
    assert_non_null(strstr(err, addr));
    assert_ptr_equal(h, (plog_metrics_http *)state);
    close(fd);
}

/* Close with a scrape connection half-sent: close returns, the connection is cut,
 * nothing listens any more, and the port can be opened again. */
static void test_metrics_http_close_stops_cleanly_with_a_connection_open(void **state)
{
    struct fixture *f = *state;
    const char *partial = "GET /metrics HTTP/1.1\r\nHost: x\r\n";
    struct pollfd pfd;
    char buf[16], addr[64];
    int64_t t0;
    int fd;

    fd = connect_to(f->port);
    assert_int_equal(write(fd, partial, strlen(partial)), (ssize_t)strlen(partial));
    plog_test_sleep_ms(50);
    t0 = plog_test_now_ms();
    plog_metrics_http_close(f->h, NULL);
    f->h = NULL;
    assert_true(plog_test_now_ms() - t0 < 2000);
    pfd = (struct pollfd){.fd = fd, .events = POLLIN};
    assert_int_equal(poll(&pfd, 1, 2000), 1);
    assert_true(read(fd, buf, sizeof(buf)) <= 0); /* EOF or reset, no answer */
    close(fd);
    assert_int_equal(curl(f, f->port, NULL, "/metrics"), -7); /* curl: couldn't connect */
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", f->port);
    assert_plog_ok(plog_metrics_http_open(f->m, addr, NULL, 0, &f->h));
    free(scrape(f));
}

/* Scrapes while threads observe, then close while they still do. */
struct spin {
    plog_metrics *m;
    atomic_bool stop;
};

static void *spin_observe(void *arg)
{
    struct spin *s = arg;
    uint64_t i = 0;

    while (!atomic_load(&s->stop)) {
        plog_metrics_observe(s->m, (int)(i % 4), (int)(i % 17), (i * 7919) % 20000000u, 10, 10);
        i++;
    }
    return NULL;
}

static void test_metrics_http_scrapes_under_load_are_well_formed(void **state)
{
    struct fixture *f = *state;
    struct spin s = {.m = f->m};
    struct expfmt_stats st;
    pthread_t th[2];
    char why[512];

    atomic_init(&s.stop, false);
    for (int t = 0; t < 2; t++)
        assert_int_equal(pthread_create(&th[t], NULL, spin_observe, &s), 0);
    for (int r = 0; r < 10; r++) {
        char *body = scrape(f);
        if (!expfmt_check(body, &st, why, sizeof(why)))
            fail_msg("scrape %d: %s", r, why);
        free(body);
    }
    plog_metrics_http_close(f->h, NULL);
    f->h = NULL;
    atomic_store(&s.stop, true);
    for (int t = 0; t < 2; t++)
        assert_int_equal(pthread_join(th[t], NULL), 0);
    assert_true(st.histograms > 4);
}

/* ---- closing when nng cannot reap (internal/rpc/closer.h) ---- */

static plog_logger *close_logger; /* the log plog_metrics_http_close writes to */

static void close_endpoint(void *arg)
{
    plog_metrics_http_close(arg, close_logger);
}

/* A scrape connection kept open, nng's reaper wedged: nng_http_server_stop waits
 * for the connection's reap for good, yet close returns, says so, and the stop it
 * left to the closer ends once the reaper runs again, after m is gone. */
static void test_metrics_http_close_returns_while_the_reaper_is_stuck(void **state)
{
    struct fixture *f = *state;
    char path[128], *log;
    int fd = connect_to(f->port), logfd;

    assert_int_equal(get_on(fd), 200);
    snprintf(path, sizeof(path), "%s/log", f->dir);
    assert_true((logfd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600)) >= 0);
    assert_plog_ok(plog_logger_new(logfd, PLOG_LOGGER_INFO, &close_logger));
    plog_rpc_reaper_wedge();

    if (!plog_rpc_returns_within(close_endpoint, f->h, 30000))
        fail_msg("plog_metrics_http_close still waits for nng's reaper after 30 s");
    f->h = NULL;
    assert_false(plog_rpc_closer_wait(0)); /* the stop is still the closer's */
    /* ... and the closer says how long it has been waiting on the reaper */
    plog_test_sleep_ms(1100);
    uint32_t busy = plog_rpc_closer_busy_ms();
    if (busy < 1000)
        fail_msg("the closer, stuck for over 1.1 s, says it has been busy %u ms", busy);
    plog_logger_free(close_logger);
    close(logfd);
    log = slurp(path);
    assert_non_null(strstr(log, "level=error msg=\"the metrics HTTP server did not close; left open\""));
    free(log);
    plog_metrics_free(f->m); /* the late stop must not touch it */
    f->m = NULL;

    plog_rpc_reaper_release();
    assert_true(plog_rpc_closer_wait(30000));
    assert_int_equal(plog_rpc_closer_busy_ms(), 0);
    close(fd);
}

static pthread_mutex_t busy_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t busy_cv = PTHREAD_COND_INITIALIZER;
static bool busy;

/* hold_closer is a close that does not end while busy: the closes queued after it
 * wait, as they do behind an RPC socket nng cannot close. */
static void hold_closer(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&busy_mu);
    while (busy)
        pthread_cond_wait(&busy_cv, &busy_mu);
    pthread_mutex_unlock(&busy_mu);
}

/* The closer busy with an earlier close: close returns with the stop still
 * queued, so the scrape connection is still served; a scrape on it then gets 503
 * and reads nothing of m, which the caller has freed (SAN=1 checks). */
static void test_metrics_http_a_scrape_after_close_touches_nothing_freed(void **state)
{
    struct fixture *f = *state;
    char buf[16];
    int fd = connect_to(f->port);

    assert_int_equal(get_on(fd), 200);
    busy = true;
    plog_rpc_closer_submit(hold_closer, NULL);
    close_logger = NULL;
    if (!plog_rpc_returns_within(close_endpoint, f->h, 30000))
        fail_msg("plog_metrics_http_close still waits for the closer after 30 s");
    f->h = NULL;
    plog_metrics_free(f->m);
    f->m = NULL;
    assert_int_equal(get_on(fd), 503);

    pthread_mutex_lock(&busy_mu);
    busy = false;
    pthread_cond_broadcast(&busy_cv);
    pthread_mutex_unlock(&busy_mu);
    assert_true(plog_rpc_closer_wait(30000));
    assert_true(read(fd, buf, sizeof(buf)) <= 0); /* the stop closed it */
    close(fd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_metrics_http_get_metrics_serves_the_exposition_text, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_metrics_http_other_paths_are_404_and_other_methods_405, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_metrics_http_scrape_passes_promtool_check_metrics, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_metrics_http_port_zero_picks_a_free_port, setup, teardown),
        cmocka_unit_test_setup_teardown(test_metrics_http_open_rejects_bad_and_busy_addresses, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_metrics_http_close_stops_cleanly_with_a_connection_open, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_metrics_http_scrapes_under_load_are_well_formed, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_metrics_http_close_returns_while_the_reaper_is_stuck, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_metrics_http_a_scrape_after_close_touches_nothing_freed, setup,
                                        teardown),
    };
    return cmocka_run_group_tests_name("metrics_http", tests, NULL, NULL);
}
