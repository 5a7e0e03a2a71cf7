/* handcode_bench.c - `make bench`: does each hand-written protobuf encoder or decoder
 * pay for itself? Each line times the hand code and protobuf-c doing the same work in
 * the same run, 100-byte values:
 *   handcode.consume_batch   ConsumeStream reply of 512 stored records: the hand
 *                            encoder copies the stored bytes; protobuf-c must unpack
 *                            each stored Record and pack the response
 *   handcode.consume_one     Consume reply of one stored record, likewise
 *   handcode.request_decode  a Produce Request envelope: hand decoder (borrows)
 *                            vs protobuf-c unpack + free
 *   handcode.produce_request that Produce's body, ProduceRequest{record}: read in
 *                            place (borrows the value) vs protobuf-c unpack + free
 *   handcode.reply_encode    a Reply envelope around a 4 KiB body
 *   handcode.produce_reply   a ProduceResponse{offset, count}
 * Output: bench <name> <hand ns/op> ns/op protobuf_c_ns=<ns/op> speedup=<x>. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <nng/nng.h>

#include "api/v1/log.pb-c.h"
#include "internal/err/err.h"
#include "internal/rpc/envelope.h"
#include "internal/rpc/wire.h"

#define BATCH 512
#define VALUE 100
#define RUN_MS 300

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static volatile size_t sink;

static uint8_t *stored[BATCH];
static size_t stored_len[BATCH];
static uint8_t out[BATCH * (VALUE + 16) + 64];
static uint8_t request[512];
static size_t request_len;
static const uint8_t *body; /* the ProduceRequest inside request */
static size_t body_len;
static uint8_t body4k[4096];
static nng_msg *msg;

static void consume_batch_hand(void)
{
    size_t n = plog_rpc_wire_consume_batch_size(stored_len, BATCH, BATCH, 0, BATCH);
    plog_rpc_wire_consume_batch_put(out, (const uint8_t *const *)stored, stored_len, BATCH, BATCH, 0, BATCH);
    sink += n;
}

static void consume_batch_pbc(void)
{
    Log__V1__Record *recs[BATCH];
    for (size_t i = 0; i < BATCH; i++)
        recs[i] = log__v1__record__unpack(NULL, stored_len[i], stored[i]);
    Log__V1__ConsumeResponse cr = LOG__V1__CONSUME_RESPONSE__INIT;
    cr.n_records = BATCH;
    cr.records = recs;
    cr.next_offset = BATCH;
    cr.end_offset = BATCH;
    sink += log__v1__consume_response__pack(&cr, out);
    for (size_t i = 0; i < BATCH; i++)
        log__v1__record__free_unpacked(recs[i], NULL);
}

static void consume_one_hand(void)
{
    size_t h = plog_rpc_wire_consume_record_header(out, stored_len[7]);
    memcpy(out + h, stored[7], stored_len[7]);
    sink += h + stored_len[7];
}

static void consume_one_pbc(void)
{
    Log__V1__Record *rec = log__v1__record__unpack(NULL, stored_len[7], stored[7]);
    Log__V1__ConsumeResponse cr = LOG__V1__CONSUME_RESPONSE__INIT;
    cr.record = rec;
    sink += log__v1__consume_response__pack(&cr, out);
    log__v1__record__free_unpacked(rec, NULL);
}

static void request_decode_hand(void)
{
    plog_rpc_request rq;
    if (plog_rpc_request_decode(request, request_len, &rq) == PLOG_OK)
        sink += rq.body_len;
}

static void request_decode_pbc(void)
{
    Log__V1__Request *rq = log__v1__request__unpack(NULL, request_len, request);
    sink += rq->body.len;
    log__v1__request__free_unpacked(rq, NULL);
}

static void produce_request_hand(void)
{
    const uint8_t *v;
    size_t vlen;
    if (plog_rpc_wire_produce_one(body, body_len, &v, &vlen) == 1)
        sink += vlen;
}

static void produce_request_pbc(void)
{
    Log__V1__ProduceRequest *pr = log__v1__produce_request__unpack(NULL, body_len, body);
    sink += pr->record->value.len;
    log__v1__produce_request__free_unpacked(pr, NULL);
}

static void reply_encode_hand(void)
{
    plog_rpc_reply_begin(msg, 0, NULL, sizeof body4k);
    nng_msg_append(msg, body4k, sizeof body4k);
    sink += nng_msg_len(msg);
}

static void reply_encode_pbc(void)
{
    Log__V1__Reply rp = LOG__V1__REPLY__INIT;
    rp.body.data = body4k;
    rp.body.len = sizeof body4k;
    size_t n = log__v1__reply__get_packed_size(&rp);
    nng_msg_clear(msg);
    nng_msg_realloc(msg, n);
    log__v1__reply__pack(&rp, nng_msg_body(msg));
    sink += nng_msg_len(msg);
}

static void produce_reply_hand(void)
{
    sink += plog_rpc_wire_produce_response(out, 123456789, 512);
}

static void produce_reply_pbc(void)
{
    Log__V1__ProduceResponse pr = LOG__V1__PRODUCE_RESPONSE__INIT;
    pr.offset = 123456789;
    pr.count = 512;
    sink += log__v1__produce_response__pack(&pr, out);
}

/* ns_per_op runs fn for RUN_MS and returns nanoseconds per call. */
static double ns_per_op(void (*fn)(void))
{
    uint64_t n = 0;
    double t0 = now_s(), dt;
    do {
        for (int i = 0; i < 64; i++)
            fn();
        n += 64;
    } while ((dt = now_s() - t0) < RUN_MS / 1000.0);
    return dt * 1e9 / (double)n;
}

static void compare(const char *name, void (*hand)(void), void (*pbc)(void))
{
    hand();
    pbc(); /* warm up */
    double h = ns_per_op(hand), p = ns_per_op(pbc);
    printf("bench handcode.%s %.0f ns/op protobuf_c_ns=%.0f speedup=%.1f\n", name, h, p, p / h);
}

int main(void)
{
    uint8_t value[VALUE];
    memset(value, 'v', sizeof value);
    for (size_t i = 0; i < BATCH; i++) {
        Log__V1__Record rec = LOG__V1__RECORD__INIT;
        rec.value.data = value;
        rec.value.len = VALUE;
        rec.offset = 1000000 + i;
        stored_len[i] = log__v1__record__get_packed_size(&rec);
        stored[i] = malloc(stored_len[i]);
        log__v1__record__pack(&rec, stored[i]);
    }
    Log__V1__Record rec = LOG__V1__RECORD__INIT;
    rec.value.data = value;
    rec.value.len = VALUE;
    Log__V1__ProduceRequest pr = LOG__V1__PRODUCE_REQUEST__INIT;
    pr.record = &rec;
    nng_msg *m;
    if (plog_rpc_request_msg("/log.v1.Log/Produce", &pr.base, 1700000000000ull, 42, 7, &m) != PLOG_OK ||
        nng_msg_len(m) > sizeof request || nng_msg_alloc(&msg, 0) != 0) {
        fprintf(stderr, "handcode_bench: setup failed\n");
        return 1;
    }
    request_len = nng_msg_len(m);
    memcpy(request, nng_msg_body(m), request_len);
    nng_msg_free(m);
    plog_rpc_request rq;
    if (plog_rpc_request_decode(request, request_len, &rq) != PLOG_OK) {
        fprintf(stderr, "handcode_bench: setup failed\n");
        return 1;
    }
    body = rq.body;
    body_len = rq.body_len;

    compare("consume_batch", consume_batch_hand, consume_batch_pbc);
    compare("consume_one", consume_one_hand, consume_one_pbc);
    compare("request_decode", request_decode_hand, request_decode_pbc);
    compare("produce_request", produce_request_hand, produce_request_pbc);
    compare("reply_encode", reply_encode_hand, reply_encode_pbc);
    compare("produce_reply", produce_reply_hand, produce_reply_pbc);

    nng_msg_free(msg);
    for (size_t i = 0; i < BATCH; i++)
        free(stored[i]);
    return 0;
}
