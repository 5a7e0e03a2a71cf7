/* reaper_testlib.c - see reaper_testlib.h. */
#include "internal/rpc/reaper_testlib.h"

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

#include "testing/testing.h"

/* The wedge: a REM_POST callback that blocks while held. */
static pthread_mutex_t wedge_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wedge_cv = PTHREAD_COND_INITIALIZER;
static bool wedge_held, wedge_entered;
static nng_pipe wedge_pipe = NNG_PIPE_INITIALIZER;
static nng_socket wedge_listener, wedge_dialer;

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

void plog_rpc_reaper_wedge(void)
{
    char url[64];
    snprintf(url, sizeof url, "tcp://127.0.0.1:%d", plog_test_free_port());
    pthread_mutex_lock(&wedge_mu);
    wedge_pipe = (nng_pipe)NNG_PIPE_INITIALIZER;
    wedge_entered = false;
    pthread_mutex_unlock(&wedge_mu);
    assert_int_equal(nng_pair0_open(&wedge_listener), 0);
    assert_int_equal(nng_pair0_open(&wedge_dialer), 0);
    assert_int_equal(nng_pipe_notify(wedge_listener, NNG_PIPE_EV_ADD_POST, wedge_cb, NULL), 0);
    assert_int_equal(nng_pipe_notify(wedge_listener, NNG_PIPE_EV_REM_POST, wedge_cb, NULL), 0);
    assert_int_equal(nng_listen(wedge_listener, url, NULL, 0), 0);
    assert_int_equal(nng_dial(wedge_dialer, url, NULL, 0), 0);
    assert_true(plog_test_wait_until(wedge_has_pipe, NULL, 10000));
    /* A pair's pipe is closed (nng_pipe_close waits for nothing), and its REM_POST
     * blocks the reaper. */
    pthread_mutex_lock(&wedge_mu);
    wedge_held = true;
    nng_pipe p = wedge_pipe;
    pthread_mutex_unlock(&wedge_mu);
    nng_pipe_close(p);
    assert_true(plog_test_wait_until(wedge_is_entered, NULL, 10000));
}

void plog_rpc_reaper_release(void)
{
    pthread_mutex_lock(&wedge_mu);
    wedge_held = false;
    pthread_cond_broadcast(&wedge_cv);
    pthread_mutex_unlock(&wedge_mu);
    nng_close(wedge_dialer);
    nng_close(wedge_listener);
}

struct call {
    void (*fn)(void *);
    void *arg;
    pthread_mutex_t mu;
    bool returned;
};

static void *call_main(void *arg)
{
    struct call *c = arg;
    c->fn(c->arg);
    pthread_mutex_lock(&c->mu);
    c->returned = true;
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

static bool call_returned(void *arg)
{
    struct call *c = arg;
    pthread_mutex_lock(&c->mu);
    bool r = c->returned;
    pthread_mutex_unlock(&c->mu);
    return r;
}

bool plog_rpc_returns_within(void (*fn)(void *), void *arg, int timeout_ms)
{
    struct call *c = calloc(1, sizeof *c);
    assert_non_null(c);
    *c = (struct call){.fn = fn, .arg = arg};
    pthread_mutex_init(&c->mu, NULL);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, call_main, c), 0);
    if (!plog_test_wait_until(call_returned, c, timeout_ms)) {
        pthread_detach(th); /* c stays the thread's */
        return false;
    }
    pthread_join(th, NULL);
    pthread_mutex_destroy(&c->mu);
    free(c);
    return true;
}
