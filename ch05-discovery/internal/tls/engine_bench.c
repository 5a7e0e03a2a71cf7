/* engine_bench.c - the transport floor under the RPC benchmarks: raw REQ/REP echo
 * over mutual TLS on this engine (and over tcp:// for comparison), and how many new
 * TLS connections per second a server accepts. One line per result:
 *   bench rpc.baseline.echo <n> req/s size=100 clients=<k> mode=threads tls=<0|1> [vs_tcp=<r>]
 *   bench rpc.baseline.echo <n> MiB/s size=1048576 clients=<k> tls=<0|1> [vs_tcp=<r>]
 *   bench rpc.handshake <n> conns/s tls=<0|1>
 * tcp:// and tls+tcp:// echoes alternate, ROUNDS times each (tcp:// first in even
 * rounds, TLS first in odd ones), and the medians are printed; the TLS line's ratio
 * to tcp:// (vs_tcp) is the median of the rounds' own ratios: both sides of each
 * ratio ran on the same (shared, noisy) machine a second apart.
 * "engine_bench echo <0|1> <clients> <size> <ms>" runs one echo alone, for profiling.
 * "clients" is the number of requests outstanding at once (one REQ context and one
 * thread each, one connection: mode=threads, where server_bench.c keeps its
 * contexts busy from callbacks). A handshake is a whole connection: TCP connect, TLS
 * 1.3 with both certificates verified, the SP header exchange, then close.
 * The server is another process (this binary re-run as "engine_bench serve URL"),
 * so that client and server do not share nng's thread pools, as in production. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <signal.h>
#include <stdio.h>
#include <unistd.h>

#include <cmocka.h>

#include "internal/tls/tlstest.h"

#define RUN_MS 1000
#define ROUNDS 7
#define ECHO_CTXS 32

struct echo_ctx {
    nng_ctx ctx;
    nng_aio *aio;
    bool sending;
};

struct echo {
    nng_socket sock;
    struct echo_ctx c[ECHO_CTXS];
};

static void echo_cb(void *arg)
{
    struct echo_ctx *c = arg;
    int rv = nng_aio_result(c->aio);
    if (c->sending) {
        c->sending = false;
        if (rv != 0)
            nng_msg_free(nng_aio_get_msg(c->aio));
    } else if (rv == 0) {
        c->sending = true;
        nng_ctx_send(c->ctx, c->aio); /* the request is the reply */
        return;
    } else {
        return;
    }
    nng_ctx_recv(c->ctx, c->aio);
}

static void echo_start(struct echo *e, const char *url, nng_tls_config *cfg)
{
    nng_listener l;
    memset(e, 0, sizeof *e);
    assert_nng_ok(nng_rep0_open(&e->sock));
    assert_nng_ok(nng_listener_create(&l, e->sock, url));
    if (cfg != NULL)
        assert_nng_ok(nng_listener_set_ptr(l, NNG_OPT_TLS_CONFIG, cfg));
    assert_nng_ok(nng_listener_start(l, 0));
    for (int i = 0; i < ECHO_CTXS; i++) {
        assert_nng_ok(nng_aio_alloc(&e->c[i].aio, echo_cb, &e->c[i]));
        assert_nng_ok(nng_ctx_open(&e->c[i].ctx, e->sock));
        nng_ctx_recv(e->c[i].ctx, e->c[i].aio);
    }
}

/* serve is the server process: echo on url until killed. */
static int serve(const char *url)
{
    struct echo e;
    char err[PLOG_TLS_ERRMSG_SIZE];
    nng_tls_config *cfg = NULL;
    if (plog_tls_url_is_tls(url) &&
        plog_tls_config_server(tt_path("server.pem"), tt_path("server-key.pem"), tt_path("ca.pem"), &cfg, err,
                               sizeof err) != PLOG_OK) {
        fprintf(stderr, "serve: %s\n", err);
        return 1;
    }
    echo_start(&e, url, cfg);
    printf("serving %s\n", url);
    fflush(stdout);
    for (;;)
        pause(); /* until SIGTERM */
}

/* server_spawn starts the server process on a fresh URL of scheme in url. */
static void server_spawn(plog_test_proc *p, const char *scheme, char *url, size_t size)
{
    static char self[512];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0)
        fail_msg("readlink /proc/self/exe");
    self[n] = '\0';
    tt_url(scheme, url, size);
    char *argv[] = {self, "serve", url, NULL};
    plog_test_spawn(p, argv);
    if (!plog_test_wait_output(p, "serving", 10000))
        fail_msg("bench server did not start");
}

struct load {
    nng_socket sock;
    size_t size;
    int64_t deadline;
    long done;
    pthread_t thread;
};

static void *load_main(void *arg)
{
    struct load *l = arg;
    nng_ctx ctx;
    nng_aio *aio;
    nng_msg *msg;
    if (nng_ctx_open(&ctx, l->sock) != 0 || nng_aio_alloc(&aio, NULL, NULL) != 0)
        return NULL;
    void *payload = calloc(1, l->size);
    while (plog_test_now_ms() < l->deadline) {
        if (nng_msg_alloc(&msg, 0) != 0 || nng_msg_append(msg, payload, l->size) != 0)
            break;
        nng_aio_set_msg(aio, msg);
        nng_ctx_send(ctx, aio);
        nng_aio_wait(aio);
        if (nng_aio_result(aio) != 0) {
            nng_msg_free(msg);
            break;
        }
        nng_ctx_recv(ctx, aio);
        nng_aio_wait(aio);
        if (nng_aio_result(aio) != 0)
            break;
        nng_msg_free(nng_aio_get_msg(aio));
        l->done++;
    }
    free(payload);
    nng_aio_free(aio);
    nng_ctx_close(ctx);
    return NULL;
}

/* run_echo measures echoes of size bytes with k outstanding over one connection
 * for ms milliseconds and returns round trips per second. */
static double run_echo(bool tls, size_t size, int k, int ms)
{
    plog_test_proc srv;
    char url[64];
    nng_tls_config *ccfg = NULL;
    nng_socket c;
    server_spawn(&srv, tls ? "tls+tcp" : "tcp", url, sizeof url);
    if (tls)
        ccfg = tt_client_config("root-client.pem", "root-client-key.pem", "ca.pem", NULL);
    assert_nng_ok(tt_client_dial(url, ccfg, &c));

    struct load *loads = calloc((size_t)k, sizeof *loads);
    int64_t t0 = plog_test_now_ms();
    for (int i = 0; i < k; i++) {
        loads[i] = (struct load){.sock = c, .size = size, .deadline = t0 + ms};
        pthread_create(&loads[i].thread, NULL, load_main, &loads[i]);
    }
    long total = 0;
    for (int i = 0; i < k; i++) {
        pthread_join(loads[i].thread, NULL);
        total += loads[i].done;
    }
    double secs = (double)(plog_test_now_ms() - t0) / 1000.0;
    free(loads);
    nng_close(c);
    plog_test_kill(&srv, SIGTERM, 5000);
    if (tls)
        nng_tls_config_free(ccfg);
    return (double)total / secs;
}

/* compare_echo prints the tcp:// and the tls+tcp:// echo of size bytes with k
 * outstanding, medians of alternating rounds, the TLS line with vs_tcp. */
static void compare_echo(size_t size, int k)
{
    double rates[2][ROUNDS], ratios[ROUNDS];
    for (int r = 0; r < ROUNDS; r++) {
        for (int i = 0; i <= 1; i++) {
            int tls = (i + r) % 2;
            rates[tls][r] = run_echo(tls, size, k, RUN_MS);
        }
        ratios[r] = rates[1][r] / rates[0][r];
    }
    double vs_tcp = plog_test_median(ratios, ROUNDS);
    for (int tls = 0; tls <= 1; tls++) {
        double rate = plog_test_median(rates[tls], ROUNDS);
        char ratio[32] = "";
        if (tls)
            snprintf(ratio, sizeof ratio, " vs_tcp=%.2f", vs_tcp);
        if (size >= 65536)
            printf("bench rpc.baseline.echo %.0f MiB/s size=%zu clients=%d rounds=%d tls=%d%s\n",
                   rate * (double)size / 1048576.0, size, k, ROUNDS, tls, ratio);
        else
            printf("bench rpc.baseline.echo %.0f req/s size=%zu clients=%d mode=threads rounds=%d tls=%d%s\n",
                   rate, size, k, ROUNDS, tls, ratio);
    }
    fflush(stdout);
}

static void run_handshakes(bool tls)
{
    plog_test_proc srv;
    char url[64];
    nng_tls_config *ccfg = NULL;
    server_spawn(&srv, tls ? "tls+tcp" : "tcp", url, sizeof url);
    if (tls)
        ccfg = tt_client_config("root-client.pem", "root-client-key.pem", "ca.pem", NULL);
    long n = 0;
    int64_t t0 = plog_test_now_ms();
    while (plog_test_now_ms() < t0 + RUN_MS) {
        nng_socket c;
        assert_nng_ok(tt_client_dial(url, ccfg, &c));
        nng_close(c);
        n++;
    }
    double secs = (double)(plog_test_now_ms() - t0) / 1000.0;
    printf("bench rpc.handshake %.0f conns/s tls=%d\n", (double)n / secs, tls);
    fflush(stdout);
    plog_test_kill(&srv, SIGTERM, 5000);
    if (tls)
        nng_tls_config_free(ccfg);
}

static void bench_tls_transport_floor(void **state)
{
    (void)state;
    compare_echo(100, 1);
    compare_echo(100, 16);
    compare_echo(1 << 20, 1);
    for (int tls = 0; tls <= 1; tls++)
        run_handshakes(tls);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(bench_tls_transport_floor)};
    tt_certs();
    if (argc == 3 && strcmp(argv[1], "serve") == 0)
        return serve(argv[2]);
    assert_plog_ok(plog_tls_engine_register());
    if (argc == 6 && strcmp(argv[1], "echo") == 0) {
        size_t size = (size_t)atol(argv[4]);
        double rate = run_echo(atoi(argv[2]) != 0, size, atoi(argv[3]), atoi(argv[5]));
        printf("echo %.0f req/s size=%zu clients=%s tls=%s\n", rate, size, argv[3], argv[2]);
        return 0;
    }
    return cmocka_run_group_tests_name("tls bench", tests, NULL, NULL);
}
