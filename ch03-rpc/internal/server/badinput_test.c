/* badinput_test.c - bad input over a raw nng REQ socket against a real proglog:
 * garbage bytes, a valid envelope around a garbage request, unknown method,
 * oversized messages, a zero-length value, a deadline as time left. Each gets
 * its status, and the next good request still works. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>

#include "internal/client/client.h"
#include "internal/err/err.h"
#include "internal/rpc/nngerr.h"
#include "internal/rpc/wire.h"
#include "internal/server/testserver.h"

#define MAX_MSG 65536

struct fixture {
    struct tserver srv;
    nng_socket sock;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    f->srv.extra[0] = "--sync";
    f->srv.extra[1] = "never";
    f->srv.extra[2] = "--max-msg-bytes";
    f->srv.extra[3] = "65536";
    tserver_start(&f->srv);
    assert_int_equal(nng_req0_open(&f->sock), 0);
    assert_int_equal(nng_socket_set_ms(f->sock, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE), 0);
    assert_int_equal(nng_socket_set_ms(f->sock, NNG_OPT_RECVTIMEO, 5000), 0);
    assert_int_equal(nng_socket_set_ms(f->sock, NNG_OPT_RECONNMINT, 20), 0);
    assert_int_equal(nng_socket_set_ms(f->sock, NNG_OPT_RECONNMAXT, 200), 0);
    assert_int_equal(nng_dial(f->sock, f->srv.addr, NULL, 0), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    nng_close(f->sock);
    bool clean = tserver_stop(&f->srv, SIGTERM);
    tserver_fini(&f->srv);
    free(f);
    assert_true(clean);
    return 0;
}

/* call sends len bytes and returns the reply's code; *msg (when not NULL) gets a
 * copy of its message. -1 when no reply came (the nng error in *nrv). */
static int call(struct fixture *f, const void *buf, size_t len, char *msg, size_t size, int *nrv)
{
    nng_msg *m;
    assert_int_equal(nng_msg_alloc(&m, 0), 0);
    assert_int_equal(nng_msg_append(m, buf, len), 0);
    int rv = nng_sendmsg(f->sock, m, 0);
    if (rv != 0) {
        nng_msg_free(m);
        *nrv = rv;
        return -1;
    }
    if ((rv = nng_recvmsg(f->sock, &m, 0)) != 0) {
        *nrv = rv;
        return -1;
    }
    plog_rpc_reply rp;
    assert_int_equal(plog_rpc_reply_decode(nng_msg_body(m), nng_msg_len(m), &rp), PLOG_OK);
    if (msg != NULL)
        snprintf(msg, size, "%.*s", (int)rp.message_len, rp.message);
    int code = rp.code;
    nng_msg_free(m);
    return code;
}

static int call_msg(struct fixture *f, nng_msg *req, char *msg, size_t size)
{
    int nrv = 0;
    int code = call(f, nng_msg_body(req), nng_msg_len(req), msg, size, &nrv);
    nng_msg_free(req);
    if (code < 0)
        fail_msg("no reply: %s", nng_strerror(nrv));
    return code;
}

static int produce(struct fixture *f, const void *value, size_t len, uint64_t deadline, char *msg,
                   size_t size)
{
    Log__V1__Record rec = LOG__V1__RECORD__INIT;
    rec.value.data = (uint8_t *)value;
    rec.value.len = len;
    Log__V1__ProduceRequest req = LOG__V1__PRODUCE_REQUEST__INIT;
    req.record = &rec;
    nng_msg *m;
    assert_int_equal(
        plog_rpc_request_msg(plog_rpc_method_name(PLOG_METHOD_PRODUCE), &req.base, deadline, 0, 0, &m),
        PLOG_OK);
    return call_msg(f, m, msg, size);
}

static void assert_good_request_works(struct fixture *f)
{
    char msg[256];
    assert_int_equal(produce(f, "good", 4, 0, msg, sizeof msg), PLOG_STATUS_OK);
}

static void test_badinput_garbage_bytes_are_invalid_argument(void **state)
{
    struct fixture *f = *state;
    char msg[256];
    int nrv;
    static const uint8_t garbage[] = {0xff, 0xff, 0xff, 0xff, 0x07, 0x13, 0x00, 0x42};
    assert_int_equal(call(f, garbage, sizeof garbage, msg, sizeof msg, &nrv), PLOG_STATUS_INVALID_ARGUMENT);
    assert_non_null(strstr(msg, "malformed request envelope"));
    assert_int_equal(call(f, "", 0, msg, sizeof msg, &nrv), PLOG_STATUS_INVALID_ARGUMENT);
    assert_good_request_works(f);
}

static void test_badinput_garbage_request_in_valid_envelope_is_invalid_argument(void **state)
{
    struct fixture *f = *state;
    /* Request{method: "/log.v1.Log/Produce", body: 0xff 0xff 0xff} by hand. */
    const char *method = "/log.v1.Log/Produce";
    uint8_t buf[64], *p = buf;
    *p++ = 0x0a;
    *p++ = (uint8_t)strlen(method);
    memcpy(p, method, strlen(method));
    p += strlen(method);
    *p++ = 0x12;
    *p++ = 3;
    *p++ = 0xff;
    *p++ = 0xff;
    *p++ = 0xff;
    char msg[256];
    int nrv;
    assert_int_equal(call(f, buf, (size_t)(p - buf), msg, sizeof msg, &nrv), PLOG_STATUS_INVALID_ARGUMENT);
    assert_string_equal(msg, "malformed ProduceRequest");
    assert_good_request_works(f);
}

static void test_badinput_unknown_method_is_unimplemented(void **state)
{
    struct fixture *f = *state;
    nng_msg *m;
    assert_int_equal(plog_rpc_request_msg("/log.v1.Log/Truncate", NULL, 0, 0, 0, &m), PLOG_OK);
    char msg[256];
    assert_int_equal(call_msg(f, m, msg, sizeof msg), PLOG_STATUS_UNIMPLEMENTED);
    assert_string_equal(msg, "unknown method \"/log.v1.Log/Truncate\"");
    assert_good_request_works(f);
}

static void test_badinput_produce_without_a_record_is_invalid_argument(void **state)
{
    struct fixture *f = *state;
    Log__V1__ProduceRequest req = LOG__V1__PRODUCE_REQUEST__INIT;
    nng_msg *m;
    assert_int_equal(plog_rpc_request_msg(plog_rpc_method_name(PLOG_METHOD_PRODUCE), &req.base, 0, 0, 0, &m),
                     PLOG_OK);
    char msg[256];
    assert_int_equal(call_msg(f, m, msg, sizeof msg), PLOG_STATUS_INVALID_ARGUMENT);
    assert_good_request_works(f);
}

static void test_badinput_oversized_message_is_resource_exhausted(void **state)
{
    struct fixture *f = *state;
    size_t big = MAX_MSG + 1000;
    char *value = calloc(1, big);
    char msg[256];
    assert_int_equal(produce(f, value, big, 0, msg, sizeof msg), PLOG_STATUS_RESOURCE_EXHAUSTED);
    assert_non_null(strstr(msg, "exceeds the server's limit of 65536 bytes"));
    free(value);
    assert_good_request_works(f);
}

static void test_badinput_message_beyond_recvmaxsz_drops_only_that_connection(void **state)
{
    struct fixture *f = *state;
    size_t huge = 4 * MAX_MSG; /* above NNG_OPT_RECVMAXSZ (twice the limit) */
    char *value = calloc(1, huge);
    char msg[256];
    int nrv = 0;
    Log__V1__Record rec = LOG__V1__RECORD__INIT;
    rec.value.data = (uint8_t *)value;
    rec.value.len = huge;
    Log__V1__ProduceRequest req = LOG__V1__PRODUCE_REQUEST__INIT;
    req.record = &rec;
    nng_msg *m;
    assert_int_equal(plog_rpc_request_msg(plog_rpc_method_name(PLOG_METHOD_PRODUCE), &req.base, 0, 0, 0, &m),
                     PLOG_OK);
    int code = call(f, nng_msg_body(m), nng_msg_len(m), msg, sizeof msg, &nrv);
    nng_msg_free(m);
    free(value);
    assert_int_equal(code, -1); /* nng closed the pipe: no reply */
    assert_int_equal(plog_rpc_nngerr_status(nrv), PLOG_STATUS_UNAVAILABLE);
    /* The dialer reconnects and the server serves on. */
    assert_good_request_works(f);

    /* The client library refuses it before sending, with a clear message. */
    plog_client_config cfg = {.max_msg_bytes = MAX_MSG};
    plog_client *c;
    plog_rpc_status st;
    assert_int_equal(plog_client_open(f->srv.addr, &cfg, &c, &st), PLOG_STATUS_OK);
    uint64_t off;
    char *v2 = calloc(1, MAX_MSG);
    assert_int_equal(plog_client_produce(c, v2, MAX_MSG, &off, &st), PLOG_STATUS_RESOURCE_EXHAUSTED);
    assert_non_null(strstr(st.msg, "exceeds the limit of 65536 bytes"));
    free(v2);
    plog_client_close(c);
}

static void test_badinput_zero_length_value_is_a_record(void **state)
{
    struct fixture *f = *state;
    char msg[256];
    assert_int_equal(produce(f, "", 0, 0, msg, sizeof msg), PLOG_STATUS_OK);
    plog_client *c;
    plog_rpc_status st;
    assert_int_equal(plog_client_open(f->srv.addr, NULL, &c, &st), PLOG_STATUS_OK);
    Log__V1__Record *rec;
    assert_int_equal(plog_client_consume(c, 0, &rec, &st), PLOG_STATUS_OK);
    assert_int_equal(rec->value.len, 0);
    assert_int_equal(rec->offset, 0);
    log__v1__record__free_unpacked(rec, NULL);
    plog_client_close(c);
    assert_good_request_works(f);
}

/* A deadline is the time left, counted on the server's own clock: a request that
 * names a time of day (field 3, as earlier clients did) is served whatever it says,
 * where before a server whose clock ran a few seconds ahead of its clients refused
 * every request "deadline passed before the server started the request"; and a
 * long poll with 300 ms left answers within them, although it asked to wait 5 s. */
static void test_badinput_a_deadline_is_time_left_not_a_time_of_day(void **state)
{
    struct fixture *f = *state;
    uint8_t buf[64], *p = buf;
    const char *method = plog_rpc_method_name(PLOG_METHOD_PRODUCE);
    p = plog_rpc_wire_put_len(p, 1, strlen(method));
    memcpy(p, method, strlen(method));
    p += strlen(method);
    *p++ = 3 << 3 | PLOG_WT_VARINT; /* an hour ago, on a clock behind the server's */
    p = plog_rpc_wire_put_varint(p, plog_rpc_now_unix_ms() - 3600 * 1000);
    static const uint8_t body[] = {0x0a, 0x04, 0x0a, 0x02, 'o', 'k'}; /* ProduceRequest{record{value "ok"}} */
    p = plog_rpc_wire_put_len(p, 2, sizeof body);
    memcpy(p, body, sizeof body);
    p += sizeof body;
    char msg[256];
    int nrv;
    assert_int_equal(call(f, buf, (size_t)(p - buf), msg, sizeof msg, &nrv), PLOG_STATUS_OK);

    Log__V1__ConsumeRequest cr = LOG__V1__CONSUME_REQUEST__INIT;
    cr.offset = 1; /* past the end: the poll waits */
    cr.wait_ms = 5000;
    nng_msg *m;
    assert_int_equal(plog_rpc_request_msg(plog_rpc_method_name(PLOG_METHOD_CONSUME_STREAM), &cr.base,
                                          plog_rpc_now_unix_ms() + 300, 0, 0, &m),
                     PLOG_OK);
    int64_t t0 = plog_test_now_ms();
    assert_int_equal(call_msg(f, m, msg, sizeof msg), PLOG_STATUS_OK);
    int64_t took = plog_test_now_ms() - t0;
    if (took > 3000)
        fail_msg("a poll with 300 ms left answered after %lld ms", (long long)took);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_badinput_garbage_bytes_are_invalid_argument, setup, teardown),
        cmocka_unit_test_setup_teardown(test_badinput_garbage_request_in_valid_envelope_is_invalid_argument,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_badinput_unknown_method_is_unimplemented, setup, teardown),
        cmocka_unit_test_setup_teardown(test_badinput_produce_without_a_record_is_invalid_argument, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_badinput_oversized_message_is_resource_exhausted, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_badinput_message_beyond_recvmaxsz_drops_only_that_connection,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_badinput_zero_length_value_is_a_record, setup, teardown),
        cmocka_unit_test_setup_teardown(test_badinput_a_deadline_is_time_left_not_a_time_of_day, setup,
                                        teardown),
    };
    return cmocka_run_group_tests_name("badinput", tests, NULL, NULL);
}
