/* envelope_test.c - the hand-written wire code agrees with protobuf-c: envelopes
 * and record batches encoded one way decode the other, and malformed input is
 * refused, never read past its end. Also the status table and nng mapping. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "api/v1/log.pb-c.h"
#include "internal/err/err.h"
#include "internal/rpc/envelope.h"
#include "internal/rpc/nngerr.h"
#include "internal/rpc/status.h"
#include "internal/rpc/wire.h"

static void test_wire_varint_round_trips_at_every_size(void **state)
{
    (void)state;
    uint64_t values[] = {0, 1, 127, 128, 300, 16383, 16384, UINT32_MAX, UINT64_MAX};
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        uint8_t buf[16];
        buf[0] = 1 << 3 | PLOG_WT_VARINT;
        uint8_t *end = plog_rpc_wire_put_varint(buf + 1, values[i]);
        assert_int_equal((size_t)(end - buf - 1), plog_rpc_wire_varint_size(values[i]));
        const uint8_t *p = buf;
        plog_rpc_wire_field f;
        assert_int_equal(plog_rpc_wire_next(&p, end, &f), 1);
        assert_int_equal(f.num, 1);
        assert_true(f.v == values[i]);
        assert_ptr_equal(p, end);
    }
}

static void test_wire_truncated_input_is_refused(void **state)
{
    (void)state;
    static const uint8_t cases[][4] = {
        {0x0a, 0x05, 'a', 'b'},   /* length past the end */
        {0x08, 0x80, 0x80, 0x80}, /* varint without its last byte */
        {0x0b, 0, 0, 0},          /* group wire type */
        {0x00, 0x01, 0, 0},       /* field number 0 */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const uint8_t *p = cases[i];
        plog_rpc_wire_field f;
        assert_int_equal(plog_rpc_wire_next(&p, cases[i] + 4, &f), -1);
    }
}

static void test_envelope_request_encodes_as_protobuf_c_decodes(void **state)
{
    (void)state;
    Log__V1__ConsumeRequest body = LOG__V1__CONSUME_REQUEST__INIT;
    body.offset = 12345;
    body.wait_ms = 77;
    nng_msg *m;
    assert_int_equal(plog_rpc_request_msg("/log.v1.Log/ConsumeStream", &body.base,
                                          plog_rpc_now_unix_ms() + 5000, 0xfeedfacecafebeefull, 42, &m),
                     PLOG_OK);
    Log__V1__Request *rq = log__v1__request__unpack(NULL, nng_msg_len(m), nng_msg_body(m));
    assert_non_null(rq);
    assert_string_equal(rq->method, "/log.v1.Log/ConsumeStream");
    /* The deadline travels as the time left (field 6), not as a time of day: a
     * server needs no clock in common with its client. */
    assert_true(rq->timeout_ms > 4000 && rq->timeout_ms <= 5000);
    assert_true(rq->client_id == 0xfeedfacecafebeefull);
    assert_int_equal(rq->seq, 42);
    Log__V1__ConsumeRequest *cr = log__v1__consume_request__unpack(NULL, rq->body.len, rq->body.data);
    assert_non_null(cr);
    assert_int_equal(cr->offset, 12345);
    assert_int_equal(cr->wait_ms, 77);
    log__v1__consume_request__free_unpacked(cr, NULL);
    log__v1__request__free_unpacked(rq, NULL);

    plog_rpc_request d;
    assert_int_equal(plog_rpc_request_decode(nng_msg_body(m), nng_msg_len(m), &d), PLOG_OK);
    assert_int_equal(plog_rpc_method_lookup(d.method, d.method_len), PLOG_METHOD_CONSUME_STREAM);
    assert_int_equal(d.seq, 42);
    nng_msg_free(m);
}

static void test_envelope_request_without_method_is_invalid(void **state)
{
    (void)state;
    Log__V1__Request rq = LOG__V1__REQUEST__INIT;
    rq.seq = 3;
    uint8_t buf[64];
    size_t n = log__v1__request__pack(&rq, buf);
    plog_rpc_request d;
    assert_int_equal(plog_rpc_request_decode(buf, n, &d), PLOG_EINVAL);
    /* method with the wrong wire type */
    static const uint8_t wrong[] = {0x08, 0x01};
    assert_int_equal(plog_rpc_request_decode(wrong, sizeof wrong, &d), PLOG_EINVAL);
}

static void test_envelope_reply_decodes_as_protobuf_c_encodes(void **state)
{
    (void)state;
    nng_msg *m;
    assert_int_equal(nng_msg_alloc(&m, 0), 0);
    assert_int_equal(plog_rpc_reply_error(m, PLOG_STATUS_OUT_OF_RANGE, "offset out of range: %d", 9),
                     PLOG_OK);
    Log__V1__Reply *r = log__v1__reply__unpack(NULL, nng_msg_len(m), nng_msg_body(m));
    assert_non_null(r);
    assert_int_equal(r->code, LOG__V1__CODE__OUT_OF_RANGE);
    assert_string_equal(r->message, "offset out of range: 9");
    log__v1__reply__free_unpacked(r, NULL);

    Log__V1__ProduceResponse resp = LOG__V1__PRODUCE_RESPONSE__INIT;
    resp.offset = 1ull << 40;
    assert_int_equal(plog_rpc_reply_packed(m, &resp.base), PLOG_OK);
    plog_rpc_reply rp;
    assert_int_equal(plog_rpc_reply_decode(nng_msg_body(m), nng_msg_len(m), &rp), PLOG_OK);
    assert_int_equal(rp.code, 0);
    assert_int_equal(rp.message_len, 0);
    Log__V1__ProduceResponse *pr = log__v1__produce_response__unpack(NULL, rp.body_len, rp.body);
    assert_non_null(pr);
    assert_true(pr->offset == 1ull << 40);
    log__v1__produce_response__free_unpacked(pr, NULL);
    nng_msg_free(m);
}

static void test_wire_record_decode_reads_protobuf_c_records(void **state)
{
    (void)state;
    Log__V1__Record rec = LOG__V1__RECORD__INIT;
    rec.value.data = (uint8_t *)"payload";
    rec.value.len = 7;
    rec.offset = 99;
    uint8_t buf[32];
    size_t n = log__v1__record__pack(&rec, buf);
    const uint8_t *v;
    size_t len;
    uint64_t off;
    assert_int_equal(plog_rpc_wire_record_decode(buf, n, &v, &len, &off), 0);
    assert_int_equal(len, 7);
    assert_memory_equal(v, "payload", 7);
    assert_int_equal(off, 99);
    /* An all-default record encodes to zero bytes: empty value at offset 0. */
    assert_int_equal(plog_rpc_wire_record_decode(buf, 0, &v, &len, &off), 0);
    assert_int_equal(len, 0);
    assert_int_equal(off, 0);
}

static void test_status_names_and_mappings(void **state)
{
    (void)state;
    assert_string_equal(plog_rpc_status_name(PLOG_STATUS_OUT_OF_RANGE), "OUT_OF_RANGE");
    assert_string_equal(plog_rpc_status_name(16), "UNAUTHENTICATED");
    assert_string_equal(plog_rpc_status_name(99), "UNKNOWN");
    assert_string_equal(plog_rpc_status_name(-1), "UNKNOWN");
    assert_string_equal(plog_rpc_status_name(0), "OK");
    assert_string_equal(plog_rpc_status_name(7), "PERMISSION_DENIED");
    assert_int_equal(plog_rpc_status_from_err(PLOG_ERANGE), PLOG_STATUS_OUT_OF_RANGE);
    assert_int_equal(plog_rpc_status_from_err(PLOG_ECORRUPT), PLOG_STATUS_DATA_LOSS);
    assert_int_equal(plog_rpc_status_from_err(PLOG_EIO), PLOG_STATUS_INTERNAL);
    assert_int_equal(plog_rpc_status_from_err(PLOG_EFAILED), PLOG_STATUS_UNAVAILABLE);
    assert_int_equal(plog_rpc_nngerr_status(NNG_ETIMEDOUT), PLOG_STATUS_DEADLINE_EXCEEDED);
    assert_int_equal(plog_rpc_nngerr_status(NNG_ECONNREFUSED), PLOG_STATUS_UNAVAILABLE);
    assert_int_equal(plog_rpc_nngerr_status(NNG_EMSGSIZE), PLOG_STATUS_RESOURCE_EXHAUSTED);
    char msg[64];
    assert_int_equal(plog_rpc_nngerr_err(NNG_EADDRINUSE, "listen", msg, sizeof msg), PLOG_EIO);
    assert_non_null(strstr(msg, "listen: "));
    assert_int_equal(plog_rpc_method_lookup("/log.v1.Log/Produce", 19), PLOG_METHOD_PRODUCE);
    assert_int_equal(plog_rpc_method_lookup("/log.v1.Log/Produc", 18), PLOG_METHOD_UNKNOWN);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_wire_varint_round_trips_at_every_size),
        cmocka_unit_test(test_wire_truncated_input_is_refused),
        cmocka_unit_test(test_envelope_request_encodes_as_protobuf_c_decodes),
        cmocka_unit_test(test_envelope_request_without_method_is_invalid),
        cmocka_unit_test(test_envelope_reply_decodes_as_protobuf_c_encodes),
        cmocka_unit_test(test_wire_record_decode_reads_protobuf_c_records),
        cmocka_unit_test(test_status_names_and_mappings),
    };
    return cmocka_run_group_tests_name("envelope", tests, NULL, NULL);
}
