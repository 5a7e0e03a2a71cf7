/* limits_test.c - the server under hostile or careless clients: it fails closed
 * without an ACL, refuses configurations whose sizes overflow, caps one client's
 * parked long polls and the memory of decoded requests in flight, keeps serving an
 * authorized client while 2,000 idle TCP connections hold handshake slots, and
 * keys its resend deduplication by the sender's verified identity; a full disk is
 * answered alike every time; a client that reads no replies loses its connection,
 * not everyone their answers. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>

#include "api/v1/log.pb-c.h"
#include "internal/err/err.h"
#include "internal/log/log.h"
#include "internal/log/simfs_testlib.h"
#include "internal/logger/logger.h"
#include "internal/rpc/envelope.h"
#include "internal/rpc/status.h"
#include "internal/server/server.h"
#include "internal/server/testserver.h"
#include "internal/tls/engine.h"

struct fixture {
    char dir[64];
    char addr[64];
    plog_log *log;
    plog_server *srv;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    plog_test_tmpdir("limits", f->dir, sizeof f->dir);
    plog_log_config lc = {.sync = PLOG_SYNC_NEVER};
    assert_plog_ok(plog_log_open(f->dir, &lc, &f->log));
    snprintf(f->addr, sizeof f->addr, "tcp://127.0.0.1:%d", plog_test_free_port());
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    plog_server_close(f->srv);
    plog_log_close(f->log);
    plog_test_rmrf(f->dir);
    free(f);
    return 0;
}

/* dial opens a REQ socket to url (tls: a client config, or NULL for tcp://). */
static nng_socket dial(const char *url, nng_tls_config *tls)
{
    nng_socket s;
    nng_dialer d;
    assert_int_equal(nng_req0_open(&s), 0);
    assert_int_equal(nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, 10000), 0);
    assert_int_equal(nng_socket_set_ms(s, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE), 0);
    assert_int_equal(nng_dialer_create(&d, s, url), 0);
    if (tls != NULL)
        assert_int_equal(nng_dialer_set_ptr(d, NNG_OPT_TLS_CONFIG, tls), 0);
    int rv = nng_dialer_start(d, 0);
    if (rv != 0)
        fail_msg("dial %s: %s", url, nng_strerror(rv));
    return s;
}

/* call sends one request and returns the reply's code; *body (when not NULL) gets
 * a malloc'd copy of the reply's body, *msg its message. */
static int call(nng_socket s, const char *method, const ProtobufCMessage *req, uint64_t cid, uint64_t seq,
                char *text, size_t tsize, uint8_t **body, size_t *blen)
{
    nng_msg *m;
    assert_plog_ok(plog_rpc_request_msg(method, req, 0, cid, seq, &m));
    assert_int_equal(nng_sendmsg(s, m, 0), 0);
    assert_int_equal(nng_recvmsg(s, &m, 0), 0);
    plog_rpc_reply rp;
    assert_plog_ok(plog_rpc_reply_decode(nng_msg_body(m), nng_msg_len(m), &rp));
    if (text != NULL)
        snprintf(text, tsize, "%.*s", (int)rp.message_len, rp.message);
    if (body != NULL) {
        *body = malloc(rp.body_len + 1);
        memcpy(*body, rp.body, rp.body_len);
        *blen = rp.body_len;
    }
    nng_msg_free(m);
    return rp.code;
}

static uint64_t produce(nng_socket s, const char *value, uint64_t cid, uint64_t seq, int *code)
{
    Log__V1__Record rec = LOG__V1__RECORD__INIT;
    rec.value.data = (uint8_t *)value;
    rec.value.len = strlen(value);
    Log__V1__ProduceRequest pr = LOG__V1__PRODUCE_REQUEST__INIT;
    pr.record = &rec;
    uint8_t *body;
    size_t blen;
    char text[256];
    *code = call(s, plog_rpc_method_name(PLOG_METHOD_PRODUCE), &pr.base, cid, seq, text, sizeof text, &body,
                 &blen);
    uint64_t off = UINT64_MAX;
    if (*code == PLOG_STATUS_OK) {
        Log__V1__ProduceResponse *r = log__v1__produce_response__unpack(NULL, blen, body);
        assert_non_null(r);
        off = r->offset;
        log__v1__produce_response__free_unpacked(r, NULL);
    } else {
        print_message("produce: %s: %s\n", plog_rpc_status_name(*code), text);
    }
    free(body);
    return off;
}

/* The library fails closed: without an ACL it serves only when told insecure. */
static void test_server_without_acl_refuses_to_open_unless_insecure(void **state)
{
    struct fixture *f = *state;
    char why[256] = "";
    plog_server_config cfg = {.addr = f->addr, .sync = PLOG_SYNC_NEVER};
    assert_int_equal(plog_server_open(f->log, &cfg, &f->srv, why, sizeof why), PLOG_EINVAL);
    assert_null(f->srv);
    assert_non_null(strstr(why, "no ACL"));
    cfg.insecure = true;
    assert_plog_ok(plog_server_open(f->log, &cfg, &f->srv, why, sizeof why));
    nng_socket s = dial(f->addr, NULL);
    int code;
    assert_int_equal(produce(s, "open", 0, 0, &code), 0);
    assert_int_equal(code, PLOG_STATUS_OK);
    nng_close(s);
}

/* Sizes that would overflow (2 * max_msg_bytes) or starve are refused at open. */
static void test_server_refuses_sizes_that_overflow(void **state)
{
    struct fixture *f = *state;
    char why[256] = "";
    plog_server_config cfg = {.addr = f->addr, .insecure = true, .max_msg_bytes = SIZE_MAX / 2 + 1};
    assert_int_equal(plog_server_open(f->log, &cfg, &f->srv, why, sizeof why), PLOG_EINVAL);
    assert_non_null(strstr(why, "max_msg_bytes"));
    cfg.max_msg_bytes = (size_t)1 << 20;
    cfg.max_inflight_bytes = (size_t)1 << 20;
    assert_int_equal(plog_server_open(f->log, &cfg, &f->srv, why, sizeof why), PLOG_EINVAL);
    assert_non_null(strstr(why, "in-flight budget"));
    assert_null(f->srv);
    /* A budget left to its default grows to twice a message size over half of it
     * (before: 200 MiB messages were refused unless the budget was raised too). */
    cfg.max_msg_bytes = (size_t)200 << 20;
    cfg.max_inflight_bytes = 0;
    assert_plog_ok(plog_server_config_check(&cfg, why, sizeof why));
    cfg.max_inflight_bytes = (size_t)256 << 20;
    assert_int_equal(plog_server_config_check(&cfg, why, sizeof why), PLOG_EINVAL);
    assert_non_null(strstr(why, "in-flight budget"));
}

/* One client (one connection, no identity) may park at most
 * max_parked_per_client long polls; the next is answered at once. */
static void test_server_caps_parked_polls_per_client(void **state)
{
    struct fixture *f = *state;
    char why[256] = "";
    plog_server_config cfg = {.addr = f->addr, .insecure = true, .max_parked_per_client = 2};
    assert_plog_ok(plog_server_open(f->log, &cfg, &f->srv, why, sizeof why));
    nng_socket s = dial(f->addr, NULL);
    Log__V1__ConsumeRequest cr = LOG__V1__CONSUME_REQUEST__INIT;
    cr.offset = 1000;
    cr.wait_ms = 20000;
    nng_ctx ctx[3];
    nng_aio *aio[3];
    for (int i = 0; i < 3; i++) {
        nng_msg *m;
        assert_int_equal(nng_ctx_open(&ctx[i], s), 0);
        assert_int_equal(nng_aio_alloc(&aio[i], NULL, NULL), 0);
        assert_plog_ok(
            plog_rpc_request_msg(plog_rpc_method_name(PLOG_METHOD_CONSUME_STREAM), &cr.base, 0, 0, 0, &m));
        nng_aio_set_msg(aio[i], m);
        nng_ctx_send(ctx[i], aio[i]);
        nng_aio_wait(aio[i]);
        assert_int_equal(nng_aio_result(aio[i]), 0);
        nng_ctx_recv(ctx[i], aio[i]);
        if (i < 2)
            plog_test_sleep_ms(100); /* let it park before the next one */
    }
    int64_t t0 = plog_test_now_ms();
    nng_aio_wait(aio[2]);
    int64_t dt = plog_test_now_ms() - t0;
    assert_int_equal(nng_aio_result(aio[2]), 0);
    nng_msg *m = nng_aio_get_msg(aio[2]);
    plog_rpc_reply rp;
    assert_plog_ok(plog_rpc_reply_decode(nng_msg_body(m), nng_msg_len(m), &rp));
    assert_int_equal(rp.code, PLOG_STATUS_RESOURCE_EXHAUSTED);
    print_message("third poll answered %s in %lld ms: %.*s\n", plog_rpc_status_name(rp.code), (long long)dt,
                  (int)rp.message_len, rp.message);
    nng_msg_free(m);
    /* The first two are still parked (no reply yet); closing the server answers them. */
    plog_server_close(f->srv);
    f->srv = NULL;
    for (int i = 0; i < 3; i++) {
        nng_aio_wait(aio[i]);
        if (i < 2 && nng_aio_result(aio[i]) == 0)
            nng_msg_free(nng_aio_get_msg(aio[i]));
        nng_aio_free(aio[i]);
        nng_ctx_close(ctx[i]);
    }
    nng_close(s);
}

/* A produce whose decoded form would not fit the in-flight budget is refused
 * before it is decoded: 30,000 empty records in 60 KB decode to megabytes. */
static void test_server_refuses_requests_beyond_the_inflight_budget(void **state)
{
    struct fixture *f = *state;
    char why[256] = "", text[256];
    plog_server_config cfg = {
        .addr = f->addr, .insecure = true, .max_msg_bytes = 64 << 10, .max_inflight_bytes = 256 << 10};
    assert_plog_ok(plog_server_open(f->log, &cfg, &f->srv, why, sizeof why));
    nng_socket s = dial(f->addr, NULL);
    enum { N = 30000 };
    Log__V1__Record empty = LOG__V1__RECORD__INIT;
    Log__V1__Record **recs = malloc(N * sizeof *recs);
    for (int i = 0; i < N; i++)
        recs[i] = &empty;
    Log__V1__ProduceRequest pr = LOG__V1__PRODUCE_REQUEST__INIT;
    pr.records = recs;
    pr.n_records = N;
    int code = call(s, plog_rpc_method_name(PLOG_METHOD_PRODUCE_STREAM), &pr.base, 0, 0, text, sizeof text,
                    NULL, NULL);
    free(recs);
    print_message("%s: %s\n", plog_rpc_status_name(code), text);
    assert_int_equal(code, PLOG_STATUS_RESOURCE_EXHAUSTED);
    assert_non_null(strstr(text, "in-flight budget"));
    assert_int_equal(plog_log_next_offset(f->log), 0); /* nothing appended */
    /* The budget was given back: an ordinary produce goes through. */
    assert_int_equal(produce(s, "small", 0, 0, &code), 0);
    assert_int_equal(code, PLOG_STATUS_OK);
    nng_close(s);
}

static void raise_nofile(void)
{
    struct rlimit rl;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
    rl.rlim_cur = rl.rlim_max;
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &rl), 0);
    if (rl.rlim_cur < 2200)
        skip(); /* the hard limit leaves no room for 2,000 idle connections */
}

/* count_fds returns how many descriptors process pid holds. */
static int count_fds(pid_t pid)
{
    char cmd[96];
    char *out = NULL;
    snprintf(cmd, sizeof cmd, "ls /proc/%d/fd | wc -l", (int)pid);
    assert_int_equal(plog_test_sh(cmd, 10000, &out), 0);
    int n = atoi(out);
    free(out);
    return n;
}

struct fd_bound {
    pid_t pid;
    int max;
};

/* fds_at_most: whether process pid holds at most max descriptors. */
static bool fds_at_most(void *arg)
{
    const struct fd_bound *b = arg;
    return count_fds(b->pid) <= b->max;
}

/* open_idle opens n TCP connections to port that never say a word; fds[] gets
 * them. They go in batches of 100, each once the server (process pid, which held
 * base descriptors before) has accepted the previous ones: its accept queue is 128
 * deep, and a SYN the kernel drops when it is full is retried only after 1, 3,
 * 7 s. With cap (not 0), the server is expected to hold at most cap of them.
 * Returns how many the server holds at the end. */
static int open_idle(int port, int *fds, int n, pid_t pid, int base, int cap)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    int held = 0;
    for (int i = 0; i < n; i++) {
        fds[i] = socket(AF_INET, SOCK_STREAM, 0);
        assert_true(fds[i] >= 0);
        assert_int_equal(connect(fds[i], (struct sockaddr *)&sa, sizeof sa), 0);
        if ((i + 1) % 100 == 0 || i + 1 == n) {
            int want = cap != 0 && i + 1 - 10 > cap ? cap : i + 1 - 10;
            int64_t until = plog_test_now_ms() + 5000;
            while ((held = count_fds(pid) - base) < want && plog_test_now_ms() < until)
                plog_test_sleep_ms(5);
        }
    }
    int64_t until = plog_test_now_ms() + 5000;
    while ((held = count_fds(pid) - base) < (cap != 0 && cap < n ? cap : n) && plog_test_now_ms() < until)
        plog_test_sleep_ms(10);
    plog_test_sleep_ms(cap != 0 ? 200 : 0); /* refused ones would show up meanwhile */
    return count_fds(pid) - base;
}

/* 2,000 idle TCP connections (no TLS handshake at all) against a proglog with the
 * default limits but the handshake deadline: an authorized client is still served.
 * (The deadline, 5 s, would close the first connections before the last are open
 * on a loaded machine: a rehearsal under ASan took 25 s to open them.) The test
 * raises its own RLIMIT_NOFILE to the hard limit for the 2,000 client ends;
 * proglog raises its own at start. The latency (dial + produce) is printed, not
 * asserted against a clock: the requirement is 1 s, and this machine is shared. */
static void test_server_serves_root_while_2000_idle_connections_are_open(void **state)
{
    (void)state;
    enum { IDLE = 2000 };
    raise_nofile();
    struct tserver ts = {.tls = true, .extra = {"--handshake-timeout-ms", "600000"}};
    tserver_start(&ts);
    int base = count_fds(ts.proc.pid);
    int *fds = malloc(IDLE * sizeof *fds);
    int64_t t0 = plog_test_now_ms();
    int held = open_idle(ts.port, fds, IDLE, ts.proc.pid, base, 0);
    int64_t topen = plog_test_now_ms() - t0;
    if (held < IDLE)
        fail_msg("the server holds %d of %d idle connections after %lld ms", held, IDLE, (long long)topen);
    nng_tls_config *root = tserver_client_tls("root");
    t0 = plog_test_now_ms();
    nng_socket s = dial(ts.addr, root);
    int code;
    produce(s, "served", 0, 0, &code);
    int64_t dt = plog_test_now_ms() - t0;
    assert_int_equal(code, PLOG_STATUS_OK);
    print_message("served root in %lld ms (dial + produce); %d idle connections opened in %lld ms, "
                  "the server held %d for them\n",
                  (long long)dt, IDLE, (long long)topen, held);
    nng_close(s);
    nng_tls_config_free(root);
    for (int i = 0; i < IDLE; i++)
        close(fds[i]);
    free(fds);
    assert_true(tserver_stop(&ts, SIGTERM));
    tserver_fini(&ts);
}

/* --max-connections bounds what idle connections can take: beyond it a new TCP
 * connection is closed at once (the server's descriptors stay bounded), and once
 * they go, an authorized client gets in. */
static void test_server_caps_connections(void **state)
{
    (void)state;
    enum { CAP = 50, IDLE = 120 };
    struct tserver ts = {.tls = true, .extra = {"--max-connections", "50", NULL}};
    tserver_start(&ts);
    int base = count_fds(ts.proc.pid);
    int fds[IDLE];
    int held = open_idle(ts.port, fds, IDLE, ts.proc.pid, base, CAP);
    print_message("%d idle connections, cap %d: the server holds %d more descriptors\n", IDLE, CAP, held);
    assert_true(held <= CAP + 2);
    assert_true(held >= CAP / 2);
    for (int i = 0; i < IDLE; i++)
        close(fds[i]);
    /* A slot frees once the server has seen its connection end: dial then (a
     * dial racing the closes can still find the cap full and be shut). */
    struct fd_bound down = {.pid = ts.proc.pid, .max = base + 2};
    assert_true(plog_test_wait_until(fds_at_most, &down, 10000));
    nng_tls_config *root = tserver_client_tls("root");
    nng_socket s = dial(ts.addr, root);
    int code;
    produce(s, "after the flood", 0, 0, &code);
    assert_int_equal(code, PLOG_STATUS_OK);
    nng_close(s);
    nng_tls_config_free(root);
    assert_true(tserver_stop(&ts, SIGTERM));
    char *out = plog_test_output(&ts.proc);
    tserver_fini(&ts);
    free(out);
}

/* metric_value returns the value of the sample line starting with name (e.g.
 * proglog_tls_handshakes_total{result="ok"}) in a scrape, -1 when absent. */
static long metric_value(const char *scrape, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = scrape; (p = strstr(p, name)) != NULL; p += n)
        if ((p == scrape || p[-1] == '\n') && p[n] == ' ')
            return atol(p + n + 1);
    return -1;
}

/* Metrics and logs tell the truth: a resend dropped while its first copy is in
 * flight is counted as such (not as a failed request, and not twice OK); a
 * refused handshake and one past the deadline are counted by reason and logged
 * with the client's address. */
static void test_server_metrics_and_logs_tell_the_truth(void **state)
{
    (void)state;
    char maddr[32], cmd[96];
    snprintf(maddr, sizeof maddr, "127.0.0.1:%d", plog_test_free_port());
    struct tserver ts = {.tls = true,
                         .extra = {"--metrics-addr", maddr, "--handshake-timeout-ms", "300",
                                   "--sync-interval-ms", "400", NULL}};
    tserver_start(&ts);

    /* A client without a certificate is refused. */
    nng_tls_config *anon = tserver_client_tls(NULL);
    nng_socket s;
    nng_dialer d;
    assert_int_equal(nng_req0_open(&s), 0);
    assert_int_equal(nng_dialer_create(&d, s, ts.addr), 0);
    assert_int_equal(nng_dialer_set_ptr(d, NNG_OPT_TLS_CONFIG, anon), 0);
    assert_int_not_equal(nng_dialer_start(d, 0), 0);
    nng_close(s);
    nng_tls_config_free(anon);

    /* A client that starts a handshake and stalls past the deadline. */
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)ts.port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(write(fd, "\x16", 1), 1); /* the first byte of a ClientHello record */
    plog_test_sleep_ms(600);
    assert_int_equal(write(fd, "\x03\x01", 2), 2);
    char buf[64];
    (void)read(fd, buf, sizeof buf); /* the server hangs up */
    close(fd);

    /* The same produce (client_id, seq) on two connections, sent back to back: if
     * the second arrives while the first is in flight it is dropped (never
     * answered, counted as a dropped resend), else it is answered from the dedup
     * table. Group commit answers as soon as the fsync ends, so which of the two
     * happens is up to the machine; either way nothing is INTERNAL, and the
     * counters must agree with what the clients saw. 1 MiB values make overlap
     * likely. */
    nng_tls_config *root = tserver_client_tls("root");
    nng_socket a = dial(ts.addr, root), b = dial(ts.addr, root);
    assert_int_equal(nng_socket_set_ms(a, NNG_OPT_RECVTIMEO, 1500), 0);
    assert_int_equal(nng_socket_set_ms(b, NNG_OPT_RECVTIMEO, 1500), 0);
    size_t big = 1 << 20;
    uint8_t *value = calloc(1, big);
    assert_non_null(value);
    Log__V1__Record rec = LOG__V1__RECORD__INIT;
    rec.value.data = value;
    rec.value.len = big;
    Log__V1__ProduceRequest pr = LOG__V1__PRODUCE_REQUEST__INIT;
    pr.record = &rec;
    nng_msg *m1, *m2;
    assert_plog_ok(plog_rpc_request_msg(plog_rpc_method_name(PLOG_METHOD_PRODUCE), &pr.base, 0, 9, 1, &m1));
    assert_plog_ok(plog_rpc_request_msg(plog_rpc_method_name(PLOG_METHOD_PRODUCE), &pr.base, 0, 9, 1, &m2));
    free(value);
    assert_int_equal(nng_sendmsg(a, m1, 0), 0);
    assert_int_equal(nng_sendmsg(b, m2, 0), 0);
    long answered = 0;
    nng_socket both[2] = {a, b};
    for (int i = 0; i < 2; i++) {
        nng_msg *m;
        int rv = nng_recvmsg(both[i], &m, 0);
        if (rv == 0) {
            answered++;
            nng_msg_free(m);
        } else {
            assert_int_equal(rv, NNG_ETIMEDOUT); /* dropped: never answered */
        }
    }
    assert_true(answered >= 1);
    nng_close(a);
    nng_close(b);
    nng_tls_config_free(root);

    char *scrape = NULL;
    snprintf(cmd, sizeof cmd, "curl -sf http://%s/metrics", maddr);
    assert_int_equal(plog_test_sh(cmd, 10000, &scrape), 0);
    long ok = metric_value(scrape, "proglog_tls_handshakes_total{result=\"ok\"}");
    long nocert = metric_value(scrape, "proglog_tls_handshakes_total{result=\"no_certificate\"}");
    long timeout = metric_value(scrape, "proglog_tls_handshakes_total{result=\"timeout\"}");
    long dropped = metric_value(scrape, "proglog_resends_dropped_total");
    long produced = metric_value(scrape, "proglog_requests_total{method=\"Produce\",code=\"OK\"}");
    long internal = metric_value(scrape, "proglog_requests_total{method=\"Produce\",code=\"INTERNAL\"}");
    print_message("handshakes ok=%ld no_certificate=%ld timeout=%ld; the same produce twice: %ld answered, "
                  "resends dropped=%ld; Produce OK=%ld INTERNAL=%ld\n",
                  ok, nocert, timeout, answered, dropped, produced, internal);
    assert_true(ok >= 2);
    assert_int_equal(nocert, 1);
    assert_int_equal(timeout, 1);
    assert_int_equal(dropped, 2 - answered);
    assert_int_equal(produced, answered);
    assert_true(internal <= 0);
    assert_int_equal(metric_value(scrape, "proglog_log_failed"), 0); /* a healthy log */
    free(scrape);

    assert_true(tserver_stop(&ts, SIGTERM));
    char *out = plog_test_output(&ts.proc);
    if (strstr(out, "msg=tls_handshake_failed remote=127.0.0.1:") == NULL ||
        strstr(out, "no TLS handshake within 300 ms") == NULL ||
        strstr(out, "peer sent no certificate") == NULL)
        fail_msg("server log:\n%s", out);
    free(out);
    tserver_fini(&ts);
}

/* Two identities send a produce with the same (client_id, seq): each is its own
 * request, and a resend from the first still gets the first's offset. */
static void test_server_dedup_is_keyed_by_identity(void **state)
{
    (void)state;
    char dir[64], policy[128];
    plog_test_tmpdir("limits-policy", dir, sizeof dir);
    snprintf(policy, sizeof policy, "%s/policy.csv", dir);
    FILE *pf = fopen(policy, "w");
    assert_non_null(pf);
    fputs("p, root, *, produce\np, root, *, consume\np, reader, *, produce\n", pf);
    fclose(pf);
    struct tserver ts = {.tls = true, .policy = policy};
    tserver_start(&ts);
    nng_tls_config *root = tserver_client_tls("root"), *reader = tserver_client_tls("reader");
    nng_socket a = dial(ts.addr, root), b = dial(ts.addr, reader);
    int code;
    uint64_t oa = produce(a, "from root", 7, 1, &code);
    assert_int_equal(code, PLOG_STATUS_OK);
    uint64_t ob = produce(b, "from reader", 7, 1, &code);
    assert_int_equal(code, PLOG_STATUS_OK);
    assert_int_not_equal(oa, ob);                               /* not answered with root's offset */
    assert_int_equal(produce(a, "from root", 7, 1, &code), oa); /* root's resend: deduplicated */
    assert_int_equal(code, PLOG_STATUS_OK);
    /* reader's record is really there, with its own value. */
    Log__V1__ConsumeRequest cr = LOG__V1__CONSUME_REQUEST__INIT;
    cr.offset = ob;
    uint8_t *body;
    size_t blen;
    assert_int_equal(
        call(a, plog_rpc_method_name(PLOG_METHOD_CONSUME), &cr.base, 0, 0, NULL, 0, &body, &blen),
        PLOG_STATUS_OK);
    Log__V1__ConsumeResponse *r = log__v1__consume_response__unpack(NULL, blen, body);
    assert_non_null(r);
    assert_non_null(r->record);
    assert_int_equal(r->record->value.len, strlen("from reader"));
    assert_memory_equal(r->record->value.data, "from reader", r->record->value.len);
    log__v1__consume_response__free_unpacked(r, NULL);
    free(body);
    nng_close(a);
    nng_close(b);
    nng_tls_config_free(root);
    nng_tls_config_free(reader);
    assert_true(tserver_stop(&ts, SIGTERM));
    tserver_fini(&ts);
    plog_test_rmrf(dir);
}

/* A full disk: the first produce whose write fails and every later one are
 * answered alike, UNAVAILABLE with the cause (before: INTERNAL for the first,
 * and the later ones named "log failed; restart to recover" twice). */
static void test_server_answers_a_full_disk_alike_every_time(void **state)
{
    struct fixture *f = *state;
    char why[256] = "";
    plog_server_config cfg = {.addr = f->addr, .insecure = true};
    assert_plog_ok(plog_server_open(f->log, &cfg, &f->srv, why, sizeof why));
    nng_socket s = dial(f->addr, NULL);
    int code;
    assert_int_equal(produce(s, "fits", 1, 1, &code), 0);
    simfs_install();
    simfs_fail_from(1, SIMFS_WRITE, ENOSPC);
    for (uint64_t seq = 2; seq <= 3; seq++) {
        Log__V1__Record rec = LOG__V1__RECORD__INIT;
        rec.value.data = (uint8_t *)"full";
        rec.value.len = 4;
        Log__V1__ProduceRequest pr = LOG__V1__PRODUCE_REQUEST__INIT;
        pr.record = &rec;
        char text[256];
        code = call(s, plog_rpc_method_name(PLOG_METHOD_PRODUCE), &pr.base, 1, seq, text, sizeof text, NULL,
                    NULL);
        assert_int_equal(code, PLOG_STATUS_UNAVAILABLE);
        const char *named = strstr(text, "log failed; restart to recover");
        if (strncmp(text, "commit failed: log failed; restart to recover: ", 47) != 0 ||
            strstr(text, "No space left on device") == NULL || strstr(named + 1, "log failed") != NULL)
            fail_msg("produce %llu: %s", (unsigned long long)seq, text);
    }
    simfs_uninstall();
    nng_close(s);
}

/* raw_req_connect opens a plain TCP connection to the server at addr
 * (tcp://HOST:PORT) with a receive buffer of rcvbuf bytes and says hello as an SP
 * REQ peer: what a client sees below nng. */
static int raw_req_connect(const char *addr, int rcvbuf)
{
    int port = atoi(strrchr(addr, ':') + 1), fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf), 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    static const uint8_t hello[8] = {0, 'S', 'P', 0, 0, 0x30, 0, 0}; /* SP, protocol REQ0 */
    uint8_t peer[8];
    assert_int_equal(write(fd, hello, sizeof hello), (ssize_t)sizeof hello);
    assert_int_equal(recv(fd, peer, sizeof peer, MSG_WAITALL), (ssize_t)sizeof peer);
    return fd;
}

/* A client that sends requests and never reads the replies: once a reply has
 * waited reply_timeout_ms for its connection, the connection is closed, and the
 * workers its requests held serve others again. Before, every worker stayed held,
 * with its reply, for as long as that client kept the connection open: nobody else
 * was answered (a black-box run: 400 Consumes of a 1 MB record, 263 MB of server
 * memory). */
static void test_server_closes_a_connection_that_reads_no_replies(void **state)
{
    struct fixture *f = *state;
    char why[256] = "";
    char logpath[128];
    snprintf(logpath, sizeof logpath, "%s/server.log", f->dir);
    int logfd = open(logpath, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(logfd >= 0);
    plog_logger *lg;
    assert_plog_ok(plog_logger_new(logfd, PLOG_LOGGER_INFO, &lg));
    plog_server_config cfg = {.addr = f->addr,
                              .insecure = true,
                              .workers = 8,
                              .reply_timeout_ms = 1000,
                              .logger = lg,
                              .log_requests = true};
    assert_plog_ok(plog_server_open(f->log, &cfg, &f->srv, why, sizeof why));
    size_t big = 1u << 20; /* each reply fills the socket buffers on its own */
    char *value = malloc(big + 1);
    memset(value, 'q', big);
    value[big] = '\0';
    nng_socket s = dial(f->addr, NULL);
    int code;
    assert_int_equal(produce(s, value, 1, 1, &code), 0);
    free(value);

    int fd = raw_req_connect(f->addr, 4096);
    Log__V1__ConsumeRequest cr = LOG__V1__CONSUME_REQUEST__INIT;
    nng_msg *m;
    assert_plog_ok(plog_rpc_request_msg(plog_rpc_method_name(PLOG_METHOD_CONSUME), &cr.base, 0, 0, 0, &m));
    for (uint32_t i = 0; i < 4 * cfg.workers; i++) {
        uint8_t head[12];
        uint64_t len = 4 + nng_msg_len(m);
        for (int k = 0; k < 8; k++)
            head[k] = (uint8_t)(len >> (56 - 8 * k));
        uint32_t id = 0x80000000u | (i + 1); /* the REQ request id, echoed by REP */
        for (int k = 0; k < 4; k++)
            head[8 + k] = (uint8_t)(id >> (24 - 8 * k));
        assert_int_equal(write(fd, head, sizeof head), (ssize_t)sizeof head);
        assert_int_equal(write(fd, nng_msg_body(m), nng_msg_len(m)), (ssize_t)nng_msg_len(m));
        /* The first requests come 40 ms apart, so the replies left waiting time
         * out one by one: the first closes the connection and the close finds the
         * next ones still waiting (the dropped replies). Sent together, they
         * could all time out before the close. Done well within the 1 s. */
        if (i < 2 * cfg.workers)
            plog_test_sleep_ms(40);
    }
    nng_msg_free(m);
    plog_test_sleep_ms(300); /* every worker holds a reply for it by now */

    int64_t t0 = plog_test_now_ms();
    assert_int_equal(produce(s, "after", 1, 2, &code), 1); /* dial's 10 s receive timeout */
    print_message("another client's produce answered after %lld ms\n", (long long)(plog_test_now_ms() - t0));
    /* The silent client's connection is closed: what it was sent, then the end. */
    struct timeval tv = {.tv_sec = 10};
    assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv), 0);
    static char sink[1 << 16];
    ssize_t n;
    while ((n = read(fd, sink, sizeof sink)) > 0)
        ;
    if (n < 0 && errno != ECONNRESET)
        fail_msg("the silent client's connection is still open: %s", strerror(errno));
    close(fd);
    nng_close(s);
    /* Said once, and the replies its closing dropped are not logged OK: nng
     * completes them as sent. (The replies nng took before the connection was
     * full are logged OK: nng completes a send when the transport takes it.) */
    plog_server_close(f->srv);
    f->srv = NULL;
    plog_logger_free(lg);
    close(logfd);
    char cmd[256], *out;
    snprintf(cmd, sizeof cmd, "cat %s", logpath);
    assert_int_equal(plog_test_sh(cmd, 5000, &out), 0);
    const char *warn = "level=warn msg=\"closing a connection that reads no replies\"";
    const char *dropped = "err=\"reply not sent: the connection was closed";
    const char *p = strstr(out, warn);
    if (p == NULL || strstr(p + 1, warn) != NULL || strstr(p, dropped) == NULL ||
        strstr(p, "method=Consume status=OK") != NULL)
        fail_msg("want one warning, then dropped replies logged UNAVAILABLE and none OK: %s",
                 p != NULL ? p : out);
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_server_without_acl_refuses_to_open_unless_insecure, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_server_refuses_sizes_that_overflow, setup, teardown),
        cmocka_unit_test_setup_teardown(test_server_caps_parked_polls_per_client, setup, teardown),
        cmocka_unit_test_setup_teardown(test_server_refuses_requests_beyond_the_inflight_budget, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_server_answers_a_full_disk_alike_every_time, setup, teardown),
        cmocka_unit_test(test_server_serves_root_while_2000_idle_connections_are_open),
        cmocka_unit_test(test_server_caps_connections),
        cmocka_unit_test(test_server_metrics_and_logs_tell_the_truth),
        cmocka_unit_test(test_server_dedup_is_keyed_by_identity),
        cmocka_unit_test_setup_teardown(test_server_closes_a_connection_that_reads_no_replies, setup,
                                        teardown),
    };
    return cmocka_run_group_tests_name("limits", tests, NULL, NULL);
}
