/* limits_test.c - the server under hostile or careless clients: it refuses
 * configurations whose sizes overflow, and caps one client's parked long polls and
 * the memory of decoded requests in flight; a full disk is answered alike every time;
 * a client that reads no replies loses its connection, not everyone their answers. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <errno.h>
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
#include "internal/rpc/envelope.h"
#include "internal/rpc/status.h"
#include "internal/server/server.h"
#include "internal/server/testserver.h"

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

/* dial opens a REQ socket to url. */
static nng_socket dial(const char *url)
{
    nng_socket s;
    nng_dialer d;
    assert_int_equal(nng_req0_open(&s), 0);
    assert_int_equal(nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, 10000), 0);
    assert_int_equal(nng_socket_set_ms(s, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE), 0);
    assert_int_equal(nng_dialer_create(&d, s, url), 0);
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

/* Sizes that would overflow (2 * max_msg_bytes) or starve are refused at open. */
static void test_server_refuses_sizes_that_overflow(void **state)
{
    struct fixture *f = *state;
    char why[256] = "";
    plog_server_config cfg = {.addr = f->addr, .max_msg_bytes = SIZE_MAX / 2 + 1};
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
    plog_server_config cfg = {.addr = f->addr, .max_parked_per_client = 2};
    assert_plog_ok(plog_server_open(f->log, &cfg, &f->srv, why, sizeof why));
    nng_socket s = dial(f->addr);
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
    plog_server_config cfg = {.addr = f->addr,

                              .max_msg_bytes = 64 << 10,
                              .max_inflight_bytes = 256 << 10};
    assert_plog_ok(plog_server_open(f->log, &cfg, &f->srv, why, sizeof why));
    nng_socket s = dial(f->addr);
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

/* A full disk: the first produce whose write fails and every later one are
 * answered alike, UNAVAILABLE with the cause (before: INTERNAL for the first,
 * and the later ones named "log failed; restart to recover" twice). */
static void test_server_answers_a_full_disk_alike_every_time(void **state)
{
    struct fixture *f = *state;
    char why[256] = "";
    plog_server_config cfg = {.addr = f->addr};
    assert_plog_ok(plog_server_open(f->log, &cfg, &f->srv, why, sizeof why));
    nng_socket s = dial(f->addr);
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
    plog_server_config cfg = {.addr = f->addr, .workers = 8, .reply_timeout_ms = 1000};
    assert_plog_ok(plog_server_open(f->log, &cfg, &f->srv, why, sizeof why));
    size_t big = 1u << 20; /* each reply fills the socket buffers on its own */
    char *value = malloc(big + 1);
    memset(value, 'q', big);
    value[big] = '\0';
    nng_socket s = dial(f->addr);
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
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_server_refuses_sizes_that_overflow, setup, teardown),
        cmocka_unit_test_setup_teardown(test_server_caps_parked_polls_per_client, setup, teardown),
        cmocka_unit_test_setup_teardown(test_server_refuses_requests_beyond_the_inflight_budget, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_server_answers_a_full_disk_alike_every_time, setup, teardown),
        cmocka_unit_test_setup_teardown(test_server_closes_a_connection_that_reads_no_replies, setup,
                                        teardown),
    };
    return cmocka_run_group_tests_name("limits", tests, NULL, NULL);
}
