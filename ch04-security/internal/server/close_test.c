/* close_test.c - plog_server_close when nng's reaper is stuck (internal/rpc/closer.h):
 * it returns within its bound, leaving the socket to the closer thread, and when the
 * reaper comes back the socket closes late without touching what the caller freed
 * (SAN=1 checks the late close: the metrics registry is gone by then).
 *
 * The reaper is wedged the way nng's own bug wedges it, by a pipe teardown that does
 * not end: a REM_POST pipe callback (nng runs it on its one reaper thread) of a
 * second socket pair that blocks until the test releases it. From then on every
 * nng_close of a socket with a connection waits for that thread. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include <nng/nng.h>
#include <nng/protocol/pair0/pair.h>
#include <nng/protocol/reqrep0/req.h>

#include "internal/err/err.h"
#include "internal/log/log.h"
#include "internal/metrics/metrics.h"
#include "internal/rpc/closer.h"
#include "internal/server/server.h"
#include "testing/testing.h"

/* The wedge: a REM_POST callback that blocks while held. */
static pthread_mutex_t wedge_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wedge_cv = PTHREAD_COND_INITIALIZER;
static bool wedge_held, wedge_entered;
static nng_pipe wedge_pipe = NNG_PIPE_INITIALIZER;

static void wedge_cb(nng_pipe p, nng_pipe_ev ev, void *arg)
{
    (void)arg;
    pthread_mutex_lock(&wedge_mu);
    if (ev == NNG_PIPE_EV_ADD_POST) {
        wedge_pipe = p;
    } else {
        wedge_entered = true;
        while (wedge_held)
            pthread_cond_wait(&wedge_cv, &wedge_mu);
    }
    pthread_mutex_unlock(&wedge_mu);
}

static bool wedge_has_pipe(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&wedge_mu);
    bool has = nng_pipe_id(wedge_pipe) > 0;
    pthread_mutex_unlock(&wedge_mu);
    return has;
}

static bool wedge_is_entered(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&wedge_mu);
    bool e = wedge_entered;
    pthread_mutex_unlock(&wedge_mu);
    return e;
}

struct closing {
    plog_server *srv;
    pthread_mutex_t mu;
    bool returned;
};

static void *close_server(void *arg)
{
    struct closing *c = arg;
    plog_server_close(c->srv);
    pthread_mutex_lock(&c->mu);
    c->returned = true;
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

static bool close_returned(void *arg)
{
    struct closing *c = arg;
    pthread_mutex_lock(&c->mu);
    bool r = c->returned;
    pthread_mutex_unlock(&c->mu);
    return r;
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
    char dir[64], addr[64], pair_url[64];
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

    /* Wedge the reaper: a pair's pipe is closed (nng_pipe_close waits for nothing),
     * and its REM_POST blocks the reaper. */
    snprintf(pair_url, sizeof pair_url, "tcp://127.0.0.1:%d", plog_test_free_port());
    nng_socket pl, pd;
    assert_int_equal(nng_pair0_open(&pl), 0);
    assert_int_equal(nng_pair0_open(&pd), 0);
    assert_int_equal(nng_pipe_notify(pl, NNG_PIPE_EV_ADD_POST, wedge_cb, NULL), 0);
    assert_int_equal(nng_pipe_notify(pl, NNG_PIPE_EV_REM_POST, wedge_cb, NULL), 0);
    assert_int_equal(nng_listen(pl, pair_url, NULL, 0), 0);
    assert_int_equal(nng_dial(pd, pair_url, NULL, 0), 0);
    assert_true(plog_test_wait_until(wedge_has_pipe, NULL, 10000));
    pthread_mutex_lock(&wedge_mu);
    wedge_held = true;
    nng_pipe p = wedge_pipe;
    pthread_mutex_unlock(&wedge_mu);
    nng_pipe_close(p);
    assert_true(plog_test_wait_until(wedge_is_entered, NULL, 10000));

    /* The close returns though its socket (which has a pipe) cannot close now. */
    struct closing c = {.srv = srv};
    pthread_mutex_init(&c.mu, NULL);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, close_server, &c), 0);
    bool returned = plog_test_wait_until(close_returned, &c, 30000);
    if (!returned)
        fail_msg("plog_server_close still waits for nng's reaper after 30 s");
    pthread_join(th, NULL);
    assert_false(plog_rpc_closer_wait(0)); /* the socket is still the closer's */
    /* What the server borrowed goes before its late close: it must not touch it. */
    plog_metrics_free(metrics);
    plog_log_close(log);

    /* The reaper runs again: the left socket closes, and the closer is idle. */
    pthread_mutex_lock(&wedge_mu);
    wedge_held = false;
    pthread_cond_broadcast(&wedge_cv);
    pthread_mutex_unlock(&wedge_mu);
    assert_true(plog_rpc_closer_wait(30000));
    nng_close(client);
    nng_close(pd);
    nng_close(pl);
    pthread_mutex_destroy(&c.mu);
    plog_test_rmrf(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_server_close_returns_while_the_reaper_is_stuck),
    };
    return cmocka_run_group_tests_name("close", tests, NULL, NULL);
}
