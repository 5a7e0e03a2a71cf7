/* close_test.c - closing a client whose TLS server was killed with calls in
 * flight never hangs the caller.
 *
 * A binary of its own because the kill trips nng 1.5.2's TLS transport bug
 * (internal/rpc/closer.h, docs/NNG.md): a message whose send was cut between its
 * parts is never completed, so nng neither finishes nor frees it. LeakSanitizer
 * then reports the request nng still holds at exit (one 64 KiB request in about
 * one run in ten), so reports of memory allocated inside libnng are suppressed
 * here, and only here; the client's own handling of its messages is checked
 * without suppression by client_test.c and the server tests. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal/client/client.h"
#include "internal/rpc/closer.h"
#include "internal/server/testserver.h"

const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void)
{
    return "leak:libnng.so\n";
}

/* Closing a client whose TLS connection died under calls in flight: in nng
 * 1.5.2 such an nng_close can block for good (internal/rpc/closer.h). Each round
 * kill -9s a TLS server while 8 threads produce 64 KiB records, lets the calls
 * fail, and closes the client on a thread of its own: plog_client_close must
 * return within 2 s every time. Whether nng's own close finished is only told
 * (a wedged reaper is nng's, and the process goes on). */
#define CLOSE_ROUNDS 8
#define CLOSE_PRODUCERS 8
#define CLOSE_VALUE (64u << 10)

struct close_run {
    plog_client *c;
    atomic_bool stop;
    atomic_int nok;
    const char *value;
};

static void *produce_big_until_fail(void *arg)
{
    struct close_run *r = arg;
    while (!atomic_load(&r->stop)) {
        uint64_t off;
        if (plog_client_produce(r->c, r->value, CLOSE_VALUE, &off, NULL) != PLOG_STATUS_OK)
            break; /* the server is gone */
        atomic_fetch_add(&r->nok, 1);
    }
    return NULL;
}

static bool some_produced(void *arg)
{
    return atomic_load(&((struct close_run *)arg)->nok) >= 2 * CLOSE_PRODUCERS;
}

struct bounded_close {
    plog_client *c;
    atomic_bool returned;
};

static void *close_main(void *arg)
{
    struct bounded_close *b = arg;
    plog_client_close(b->c);
    atomic_store(&b->returned, true);
    return NULL;
}

static bool close_returned(void *arg)
{
    return atomic_load(&((struct bounded_close *)arg)->returned);
}

static void test_client_close_after_kill_9_with_calls_in_flight_returns(void **state)
{
    (void)state;
    /* The only test here: a server left behind by a failed assertion dies with the process. */
    struct tserver srv_ = {.tls = true}, *srv = &srv_;
    char *value = malloc(CLOSE_VALUE);
    assert_non_null(value);
    memset(value, 'x', CLOSE_VALUE);
    int wedged = 0;
    for (int round = 0; round < CLOSE_ROUNDS; round++) {
        tserver_start(srv);
        struct close_run r = {.value = value};
        atomic_init(&r.stop, false);
        atomic_init(&r.nok, 0);
        plog_client_config cfg = {.timeout_ms = 2000, .tls = tserver_client_tls("root")};
        assert_status_ok(plog_client_open(srv->addr, &cfg, &r.c, NULL));
        nng_tls_config_free(cfg.tls);
        pthread_t th[CLOSE_PRODUCERS];
        for (int i = 0; i < CLOSE_PRODUCERS; i++)
            assert_int_equal(pthread_create(&th[i], NULL, produce_big_until_fail, &r), 0);
        assert_true(plog_test_wait_until(some_produced, &r, 20000));
        assert_true(tserver_stop(srv, SIGKILL)); /* with requests on the wire */
        atomic_store(&r.stop, true);
        for (int i = 0; i < CLOSE_PRODUCERS; i++)
            pthread_join(th[i], NULL);

        struct bounded_close *b = calloc(1, sizeof *b); /* leaked if the close hangs */
        assert_non_null(b);
        b->c = r.c;
        atomic_init(&b->returned, false);
        pthread_t ct;
        assert_int_equal(pthread_create(&ct, NULL, close_main, b), 0);
        if (!plog_test_wait_until(close_returned, b, 2000)) {
            pthread_detach(ct);
            fail_msg("round %d: plog_client_close did not return within 2 s", round);
        }
        pthread_join(ct, NULL);
        free(b);
        if (!plog_rpc_closer_wait(2000))
            wedged++;
    }
    if (wedged > 0)
        fprintf(stderr,
                "# nng's close of a lost TLS client did not finish in %d of %d rounds "
                "(nng 1.5.2 reaper wedge); the callers did not wait for it\n",
                wedged, CLOSE_ROUNDS);
    free(value);
    tserver_fini(srv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_client_close_after_kill_9_with_calls_in_flight_returns),
    };
    return cmocka_run_group_tests_name("client_close", tests, NULL, NULL);
}
