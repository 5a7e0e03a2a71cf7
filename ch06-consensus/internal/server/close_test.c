/* close_test.c - plog_server_close when nng's reaper is stuck (internal/rpc/closer.h):
 * it returns within its bound, leaving the socket to the closer thread, and when the
 * reaper comes back the socket closes late without touching what the caller freed
 * (SAN=1 checks the late close: the metrics registry is gone by then).
 *
 * The reaper is wedged the way nng's own bug wedges it (internal/rpc/reaper_testlib.h):
 * from then on every nng_close of a socket with a connection waits for it. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>

#include "internal/err/err.h"
#include "internal/log/log.h"
#include "internal/metrics/metrics.h"
#include "internal/rpc/closer.h"
#include "internal/rpc/reaper_testlib.h"
#include "internal/server/server.h"
#include "testing/testing.h"

static void close_server(void *arg)
{
    plog_server_close(arg);
}

static bool one_connection(void *arg)
{
    return plog_metrics_gauge_get(arg, PLOG_GAUGE_OPEN_CONNECTIONS) == 1;
}

static nng_socket dial_req(const char *url)
{
    nng_socket s;
    assert_int_equal(nng_req0_open(&s), 0);
    assert_int_equal(nng_dial(s, url, NULL, 0), 0);
    return s;
}

/* A server with a connection, nng's reaper wedged: close returns all the same, and
 * the socket it left to the closer closes once the reaper runs again. */
static void test_server_close_returns_while_the_reaper_is_stuck(void **state)
{
    (void)state;
    char dir[64], addr[64];
    plog_test_tmpdir("close", dir, sizeof dir);
    plog_log_config lc = {.sync = PLOG_SYNC_NEVER};
    plog_log *log;
    assert_plog_ok(plog_log_open(dir, &lc, &log));
    plog_metrics *metrics;
    assert_plog_ok(plog_server_metrics_new(&metrics));
    snprintf(addr, sizeof addr, "tcp://127.0.0.1:%d", plog_test_free_port());
    plog_server_config cfg = {.addr = addr, .insecure = true, .workers = 4, .metrics = metrics};
    plog_server *srv;
    char err[256];
    assert_plog_ok(plog_server_open(log, &cfg, &srv, err, sizeof err));
    nng_socket client = dial_req(addr);
    assert_true(plog_test_wait_until(one_connection, metrics, 10000));

    plog_rpc_reaper_wedge();

    /* The close returns though its socket (which has a pipe) cannot close now. */
    if (!plog_rpc_returns_within(close_server, srv, 30000))
        fail_msg("plog_server_close still waits for nng's reaper after 30 s");
    assert_false(plog_rpc_closer_wait(0)); /* the socket is still the closer's */
    /* What the server borrowed goes before its late close: it must not touch it. */
    plog_metrics_free(metrics);
    plog_log_close(log);

    /* The reaper runs again: the left socket closes, and the closer is idle. */
    plog_rpc_reaper_release();
    assert_true(plog_rpc_closer_wait(30000));
    nng_close(client);
    plog_test_rmrf(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_server_close_returns_while_the_reaper_is_stuck),
    };
    return cmocka_run_group_tests_name("close", tests, NULL, NULL);
}
