/* security_test.c - the book's chapter 5 tests (Go: server_test.go with its root and
 * nobody clients) against a real proglog process with mutual TLS and the book's ACL,
 * through the client library; plus what the book leaves to gRPC: certificates that
 * must not get in, proglog's refusal of unsafe flags, the identity of every request
 * under concurrency, and the request log and metrics an operator reads. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>

#include "internal/client/client.h"
#include "internal/client/stream.h"
#include "internal/server/testserver.h"

struct fixture {
    struct tserver srv;
    char dir[64]; /* for custom policies */
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    f->srv.tls = true;
    f->srv.extra[0] = "--sync";
    f->srv.extra[1] = "never";
    plog_test_tmpdir("sec", f->dir, sizeof f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    bool clean = tserver_stop(&f->srv, SIGTERM);
    tserver_fini(&f->srv);
    plog_test_rmrf(f->dir);
    free(f);
    assert_true(clean); /* SIGTERM: a clean exit, status 0 */
    return 0;
}

/* Go: testProduceConsume, as root */
static void test_security_root_produces_and_consumes(void **state)
{
    struct fixture *f = *state;
    tserver_start(&f->srv);
    plog_client *c = tserver_client_as(&f->srv, "root");
    uint64_t off = 99;
    assert_status_ok(plog_client_produce(c, "hello world", 11, &off, NULL));
    assert_int_equal(off, 0);
    Log__V1__Record *rec;
    assert_status_ok(plog_client_consume(c, off, &rec, NULL));
    assert_int_equal(rec->value.len, 11);
    assert_memory_equal(rec->value.data, "hello world", 11);
    log__v1__record__free_unpacked(rec, NULL);

    /* Go: testProduceConsumeStream: both streams are the same two actions. */
    plog_client_producer_config pc = {.window = 2, .batch_records = 2};
    plog_client_producer *p;
    plog_rpc_status st;
    assert_status_ok(plog_client_producer_open(c, &pc, &p, &st));
    assert_status_ok(plog_client_producer_send(p, "first message", 13, &st));
    assert_status_ok(plog_client_producer_send(p, "second message", 14, &st));
    assert_status_ok(plog_client_producer_flush(p, &st));
    plog_client_producer_close(p);
    plog_client_consumer *it;
    assert_status_ok(plog_client_consumer_open(c, 1, NULL, &it));
    const uint8_t *v;
    size_t len;
    assert_status_ok(plog_client_consumer_next(it, &v, &len, &off, &st));
    assert_int_equal(off, 1);
    assert_memory_equal(v, "first message", 13);
    assert_status_ok(plog_client_consumer_next(it, &v, &len, &off, &st));
    assert_int_equal(off, 2);
    plog_client_consumer_close(it);

    /* Go: testConsumePastBoundary */
    int code = plog_client_consume(c, 3, &rec, &st);
    assert_int_equal(code, PLOG_STATUS_OUT_OF_RANGE);
    plog_client_close(c);
}

/* Go: testUnauthorized: nobody's certificate is good, but the policy gives nobody
 * nothing: PERMISSION_DENIED for both actions, with the book's message. */
static void test_security_nobody_is_denied_produce_and_consume(void **state)
{
    struct fixture *f = *state;
    tserver_start(&f->srv);
    plog_client *root = tserver_client_as(&f->srv, "root");
    uint64_t off;
    assert_status_ok(plog_client_produce(root, "x", 1, &off, NULL));
    plog_client *c = tserver_client_as(&f->srv, "nobody");
    plog_rpc_status st;
    assert_int_equal(plog_client_produce(c, "hello world", 11, &off, &st), PLOG_STATUS_PERMISSION_DENIED);
    assert_string_equal(st.msg, "nobody not permitted to produce to *");
    Log__V1__Record *rec = NULL;
    assert_int_equal(plog_client_consume(c, 0, &rec, &st), PLOG_STATUS_PERMISSION_DENIED);
    assert_string_equal(st.msg, "nobody not permitted to consume to *");
    assert_null(rec);

    /* The streams are produce and consume too. */
    plog_client_producer_config pc = {.window = 1};
    plog_client_producer *p;
    assert_status_ok(plog_client_producer_open(c, &pc, &p, &st));
    int code = plog_client_producer_send(p, "y", 1, &st);
    if (code == PLOG_STATUS_OK)
        code = plog_client_producer_flush(p, &st);
    assert_int_equal(code, PLOG_STATUS_PERMISSION_DENIED);
    plog_client_producer_close(p);
    plog_client_consumer *it;
    const uint8_t *v;
    size_t len;
    assert_status_ok(plog_client_consumer_open(c, 0, NULL, &it));
    assert_int_equal(plog_client_consumer_next(it, &v, &len, &off, &st), PLOG_STATUS_PERMISSION_DENIED);
    assert_string_equal(st.msg, "nobody not permitted to consume to *");
    plog_client_consumer_close(it);

    /* Nothing nobody tried reached the log. */
    assert_int_equal(plog_client_consume(root, 1, &rec, &st), PLOG_STATUS_OUT_OF_RANGE);
    plog_client_close(c);
    plog_client_close(root);
}

static void write_policy(struct fixture *f, const char *text)
{
    static char path[128];
    snprintf(path, sizeof path, "%s/policy.csv", f->dir);
    FILE *fp = fopen(path, "w");
    if (fp == NULL || fputs(text, fp) < 0 || fclose(fp) != 0)
        fail_msg("write %s", path);
    f->srv.policy = path;
}

static void test_security_policy_may_allow_consume_only(void **state)
{
    struct fixture *f = *state;
    write_policy(f, "p, root, *, produce\np, root, *, consume\np, reader, *, consume\n");
    tserver_start(&f->srv);
    plog_client *root = tserver_client_as(&f->srv, "root"), *reader = tserver_client_as(&f->srv, "reader");
    uint64_t off;
    plog_rpc_status st;
    assert_status_ok(plog_client_produce(root, "for readers", 11, &off, NULL));
    assert_int_equal(plog_client_produce(reader, "x", 1, &off, &st), PLOG_STATUS_PERMISSION_DENIED);
    assert_string_equal(st.msg, "reader not permitted to produce to *");
    Log__V1__Record *rec;
    assert_status_ok(plog_client_consume(reader, 0, &rec, NULL));
    assert_memory_equal(rec->value.data, "for readers", 11);
    log__v1__record__free_unpacked(rec, NULL);
    plog_client_close(reader);
    plog_client_close(root);
}

/* refused opens a client of addr as who (NULL: no certificate) and expects the
 * handshake to be refused with code and a message containing needle. */
static void refused(const char *addr, const char *who, int code, const char *needle)
{
    plog_client_config cfg = {.tls = tserver_client_tls(who), .timeout_ms = 5000};
    plog_client *c = NULL;
    plog_rpc_status st;
    int64_t t0 = plog_test_now_ms();
    int got = plog_client_open(addr, &cfg, &c, &st);
    int64_t dt = plog_test_now_ms() - t0;
    nng_tls_config_free(cfg.tls);
    if (got == PLOG_STATUS_OK)
        plog_client_close(c);
    if (got != code || strstr(st.msg, needle) == NULL)
        fail_msg("as %s: %s: %s; want %s with \"%s\"", who != NULL ? who : "(no certificate)",
                 plog_rpc_status_name(got), st.msg, plog_rpc_status_name(code), needle);
    assert_true(dt < 5000);
}

static void test_security_bad_certificates_are_refused_at_the_handshake(void **state)
{
    struct fixture *f = *state;
    tserver_start(&f->srv);
    refused(f->srv.addr, NULL, PLOG_STATUS_UNAUTHENTICATED, "certificate required");
    refused(f->srv.addr, "other", PLOG_STATUS_UNAUTHENTICATED, "unknown ca");
    refused(f->srv.addr, "expired", PLOG_STATUS_UNAUTHENTICATED, "certificate expired");
    refused(f->srv.addr, "future", PLOG_STATUS_UNAUTHENTICATED, "bad certificate");
    /* A plain client gets nothing at all, and is told the likely cause. */
    char plain[64];
    snprintf(plain, sizeof plain, "tcp://%s", strstr(f->srv.addr, "://") + 3);
    plog_client *c;
    plog_rpc_status st;
    assert_int_equal(plog_client_open(plain, NULL, &c, &st), PLOG_STATUS_UNAVAILABLE);
    if (strstr(st.msg, "is it a tls+tcp:// server?") == NULL)
        fail_msg("plain client: %s", st.msg);
    /* And a TLS client of a plain server: nng's first bytes are no TLS record. */
    nng_socket rep;
    int port = plog_test_free_port();
    char url[64];
    snprintf(url, sizeof url, "tcp://127.0.0.1:%d", port);
    assert_int_equal(nng_rep0_open(&rep), 0);
    assert_int_equal(nng_listen(rep, url, NULL, 0), 0);
    snprintf(url, sizeof url, "tls+tcp://127.0.0.1:%d", port);
    refused(url, "root", PLOG_STATUS_UNAVAILABLE, "is it a tcp:// server?");
    nng_close(rep);
    /* Each refusal is in the server's log: it never became a connection. */
    assert_true(plog_test_wait_output(&f->srv.proc, "level=warn msg=tls_handshake_failed", 5000));
    char *out = plog_test_output(&f->srv.proc);
    assert_non_null(strstr(out, "certificate has expired (client certificate)"));
    free(out);
}

/* A valid certificate whose subject has two CNs names no one: its connection is
 * up, but every request is UNAUTHENTICATED, whatever the policy says. */
static void test_security_certificate_without_single_cn_is_unauthenticated(void **state)
{
    struct fixture *f = *state;
    write_policy(f, "p, *, *, *\n");
    tserver_start(&f->srv);
    plog_client *c = tserver_client_as(&f->srv, "twocn");
    uint64_t off;
    plog_rpc_status st;
    assert_int_equal(plog_client_produce(c, "x", 1, &off, &st), PLOG_STATUS_UNAUTHENTICATED);
    assert_non_null(strstr(st.msg,
                           "the client certificate on this connection names no one: its subject needs "
                           "exactly one CN"));
    plog_client_close(c);
    c = tserver_client_as(&f->srv, "reader"); /* while "*" lets any named subject in */
    assert_status_ok(plog_client_produce(c, "x", 1, &off, NULL));
    plog_client_close(c);
}

/* proglog refuses to start on flags that would leave it open. */
static void test_security_proglog_refuses_unsafe_or_broken_flags(void **state)
{
    struct fixture *f = *state;
    char cmd[4096], *out = NULL;
    const char *bin = plog_test_bin("proglog");
    char tls[2048];
    snprintf(tls, sizeof tls, "--server-tls-cert-file %s --server-tls-key-file %s --server-tls-ca-file %s",
             tserver_cert("server.pem"), tserver_cert("server-key.pem"), tserver_cert("ca.pem"));
    static const struct {
        const char *args;
        int code;
        const char *needle;
    } cases[] = {
        {"--addr tcp://127.0.0.1:1", 2, "refusing to serve tcp://127.0.0.1:1 in plain text"},
        {"--addr tls+tcp://127.0.0.1:1", 2, "needs --server-tls-cert-file"},
        {"--addr tls+tcp://127.0.0.1:1 %s", 2, "--acl-policy-file"},
        {"--addr tcp://127.0.0.1:1 --insecure-allow-plaintext %s", 2, "without TLS or ACL flags"},
        {"--addr tls+tcp://127.0.0.1:1 %s --acl-policy-file %s/bad.csv", 1, "bad.csv:2: want 4 fields"},
        {"--addr tls+tcp://127.0.0.1:1 %s --acl-policy-file %s/nonexistent.csv", 1, "No such file"},
        /* A usage error like any bad address (before: exit 1, nng's "Address invalid"). */
        {"--addr tcp://127.0.0.1:1 --insecure-allow-plaintext --metrics-addr 127.0.0.1:99999", 2,
         "--metrics-addr: want HOST:PORT with a port in 1..65535: 127.0.0.1:99999"},
        {"--addr tcp://127.0.0.1:1 --insecure-allow-plaintext --metrics-addr 127.0.0.1:0", 2,
         "--metrics-addr: want HOST:PORT"},
        {"--addr tcp://127.0.0.1:1 --insecure-allow-plaintext --metrics-addr 127.0.0.1", 2,
         "--metrics-addr: want HOST:PORT"},
    };
    snprintf(cmd, sizeof cmd, "%s/bad.csv", f->dir);
    FILE *fp = fopen(cmd, "w");
    if (fp == NULL || fputs("p, root, *, produce\np, nobody, consume\n", fp) < 0 || fclose(fp) != 0)
        fail_msg("write %s", cmd);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char args[3000];
        snprintf(args, sizeof args, cases[i].args, tls, f->dir);
        snprintf(cmd, sizeof cmd, "%s --data-dir %s/data %s", bin, f->dir, args);
        int rc = plog_test_sh(cmd, 10000, &out);
        if (rc != cases[i].code || strstr(out, cases[i].needle) == NULL)
            fail_msg("%s: exit %d: %s; want exit %d with \"%s\"", cases[i].args, rc, out, cases[i].code,
                     cases[i].needle);
        free(out);
    }
    /* --metrics-addr on the RPC port: the metrics listener is the one refused, and
     * says so (before: "cannot serve" the RPC address, as if it were taken). */
    int port = plog_test_free_port();
    snprintf(cmd, sizeof cmd,
             "%s --data-dir %s/data --addr tcp://127.0.0.1:%d --insecure-allow-plaintext --metrics-addr "
             "127.0.0.1:%d",
             bin, f->dir, port, port);
    int rc = plog_test_sh(cmd, 10000, &out);
    if (rc != 1 || strstr(out, "msg=\"cannot serve --metrics-addr\" addr=127.0.0.1:") == NULL ||
        strstr(out, "Address in use") == NULL)
        fail_msg("--metrics-addr on the RPC port: exit %d: %s", rc, out);
    free(out);
}

/* ---- every request's outcome is its own sender's, under concurrency ---- */

#define THREADS_PER_ID 4
#define CLIENTS_PER_ID 2
#define REQS_PER_THREAD 1300 /* 3 ids x 2 clients x 4 threads x 1300 = 31,200 */

struct who {
    const char *cn;
    bool may_produce, may_consume;
};

struct worker {
    const struct who *who;
    plog_client *c;
    int reqs;
    pthread_t thread;
};

static atomic_int wrong, failed, done;
static char first_wrong[512];
static pthread_mutex_t wrong_mu = PTHREAD_MUTEX_INITIALIZER;

static void check(const struct who *who, const char *action, int code, const char *msg)
{
    bool allowed = strcmp(action, "produce") == 0 ? who->may_produce : who->may_consume;
    char want[128];
    snprintf(want, sizeof want, "%s not permitted to %s to *", who->cn, action);
    if (code != PLOG_STATUS_OK && code != PLOG_STATUS_PERMISSION_DENIED) {
        atomic_fetch_add(&failed, 1);
        return;
    }
    if ((allowed && code == PLOG_STATUS_OK) ||
        (!allowed && code == PLOG_STATUS_PERMISSION_DENIED && strcmp(msg, want) == 0)) {
        atomic_fetch_add(&done, 1);
        return;
    }
    pthread_mutex_lock(&wrong_mu);
    if (first_wrong[0] == '\0')
        snprintf(first_wrong, sizeof first_wrong, "%s %s: %s %s", who->cn, action, plog_rpc_status_name(code),
                 msg);
    pthread_mutex_unlock(&wrong_mu);
    atomic_fetch_add(&wrong, 1);
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    for (int i = 0; i < w->reqs; i++) {
        plog_rpc_status st;
        if (i % 2 == 0) {
            uint64_t off;
            int code = plog_client_produce(w->c, "v", 1, &off, &st);
            check(w->who, "produce", code, st.msg);
        } else {
            Log__V1__Record *rec = NULL;
            int code = plog_client_consume(w->c, 0, &rec, &st);
            if (rec != NULL)
                log__v1__record__free_unpacked(rec, NULL);
            check(w->who, "consume", code, st.msg);
        }
    }
    return NULL;
}

static void test_security_every_request_is_judged_by_its_own_sender(void **state)
{
    struct fixture *f = *state;
    static const struct who ids[] = {
        {"root", true, true},
        {"nobody", false, false},
        {"reader", false, true},
    };
    enum { NIDS = 3 };
    write_policy(f, "p, root, *, produce\np, root, *, consume\np, reader, *, consume\n");
    tserver_start(&f->srv);
    plog_client *clients[NIDS * CLIENTS_PER_ID];
    struct worker workers[NIDS * CLIENTS_PER_ID * THREADS_PER_ID];
    int nw = 0;
    atomic_store(&wrong, 0);
    atomic_store(&failed, 0);
    atomic_store(&done, 0);
    for (int i = 0; i < NIDS * CLIENTS_PER_ID; i++)
        clients[i] = tserver_client_as(&f->srv, ids[i / CLIENTS_PER_ID].cn);
    uint64_t off;
    assert_status_ok(plog_client_produce(clients[0], "first", 5, &off, NULL)); /* offset 0 */
    int64_t t0 = plog_test_now_ms();
    for (int i = 0; i < NIDS * CLIENTS_PER_ID; i++) {
        for (int j = 0; j < THREADS_PER_ID; j++, nw++) {
            workers[nw] =
                (struct worker){.who = &ids[i / CLIENTS_PER_ID], .c = clients[i], .reqs = REQS_PER_THREAD};
            assert_int_equal(pthread_create(&workers[nw].thread, NULL, worker_main, &workers[nw]), 0);
        }
    }
    for (int i = 0; i < nw; i++)
        pthread_join(workers[i].thread, NULL);
    int64_t dt = plog_test_now_ms() - t0;
    if (atomic_load(&wrong) != 0)
        fail_msg("%d requests judged as someone else; first: %s", atomic_load(&wrong), first_wrong);
    assert_int_equal(atomic_load(&failed), 0);
    assert_int_equal(atomic_load(&done), nw * REQS_PER_THREAD);
    assert_true(nw * REQS_PER_THREAD >= 30000);
    print_message("    %d requests from 3 identities on %d connections in %lld ms, all judged "
                  "by their own sender\n",
                  nw * REQS_PER_THREAD, NIDS * CLIENTS_PER_ID, (long long)dt);
    /* Exactly root's produces reached the log: 1 + root's half of its requests. */
    uint64_t want = 1 + (uint64_t)CLIENTS_PER_ID * THREADS_PER_ID * (REQS_PER_THREAD / 2);
    Log__V1__Record *rec;
    plog_rpc_status st;
    assert_status_ok(plog_client_consume(clients[0], want - 1, &rec, &st));
    log__v1__record__free_unpacked(rec, NULL);
    assert_int_equal(plog_client_consume(clients[0], want, &rec, &st), PLOG_STATUS_OUT_OF_RANGE);
    for (int i = 0; i < NIDS * CLIENTS_PER_ID; i++)
        plog_client_close(clients[i]);
}

/* ---- what an operator sees: request lines and metrics ---- */

static void test_security_requests_are_logged_and_counted(void **state)
{
    struct fixture *f = *state;
    char maddr[64], url[96];
    snprintf(maddr, sizeof maddr, "127.0.0.1:%d", plog_test_free_port());
    snprintf(url, sizeof url, "http://%s/metrics", maddr);
    f->srv.extra[2] = "--metrics-addr";
    f->srv.extra[3] = maddr;
    tserver_start(&f->srv);
    plog_client *root = tserver_client_as(&f->srv, "root"), *nobody = tserver_client_as(&f->srv, "nobody");
    uint64_t off;
    plog_rpc_status st;
    for (int i = 0; i < 3; i++)
        assert_status_ok(plog_client_produce(root, "abc", 3, &off, NULL));
    assert_int_equal(plog_client_produce(nobody, "x", 1, &off, &st), PLOG_STATUS_PERMISSION_DENIED);

    assert_true(plog_test_wait_output(&f->srv.proc, "err=\"nobody not permitted", 5000));
    char *out = plog_test_output(&f->srv.proc);
    assert_non_null(strstr(out, "level=info msg=request method=Produce status=OK latency_us="));
    assert_non_null(strstr(out, "peer=root"));
    assert_non_null(strstr(out, "method=Produce status=PERMISSION_DENIED"));
    free(out);

    char cmd[512], *text = NULL;
    snprintf(cmd, sizeof cmd, "curl -sf %s", url);
    assert_int_equal(plog_test_sh(cmd, 10000, &text), 0);
    assert_non_null(strstr(text, "proglog_requests_total{method=\"Produce\",code=\"OK\"} 3\n"));
    assert_non_null(
        strstr(text, "proglog_requests_total{method=\"Produce\",code=\"PERMISSION_DENIED\"} 1\n"));
    assert_non_null(strstr(text, "proglog_open_connections 2\n"));
    assert_non_null(strstr(text, "proglog_log_next_offset 3\n"));
    free(text);
    /* Prometheus's own checker, when Debian's prometheus package is installed. */
    if (plog_test_sh("command -v promtool", 5000, NULL) == 0) {
        snprintf(cmd, sizeof cmd, "curl -sf %s | promtool check metrics", url);
        int rc = plog_test_sh(cmd, 20000, &text);
        if (rc != 0)
            fail_msg("promtool check metrics: exit %d: %s", rc, text);
        free(text);
    }
    plog_client_close(nobody);
    plog_client_close(root);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_security_root_produces_and_consumes),
        T(test_security_nobody_is_denied_produce_and_consume),
        T(test_security_policy_may_allow_consume_only),
        T(test_security_bad_certificates_are_refused_at_the_handshake),
        T(test_security_certificate_without_single_cn_is_unauthenticated),
        T(test_security_proglog_refuses_unsafe_or_broken_flags),
        T(test_security_every_request_is_judged_by_its_own_sender),
        T(test_security_requests_are_logged_and_counted),
    };
#undef T
    tserver_certs(); /* before any thread: the script runs in a child process */
    return cmocka_run_group_tests_name("security", tests, NULL, NULL);
}
