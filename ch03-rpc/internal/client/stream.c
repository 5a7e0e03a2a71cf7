/* stream.c - the consumer iterator over ConsumeStream long polls and the
 * pipelined producer over ProduceStream (stream.h). */
#include "internal/client/stream.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal/err/err.h"
#include "internal/rpc/nngerr.h"
#include "internal/rpc/wire.h"

#define DEFAULT_WAIT_MS 5000
#define DEFAULT_WINDOW 8

/* ---- consumer ---- */

struct plog_client_consumer {
    plog_client *c;
    plog_client_consumer_config cfg;
    uint64_t next;  /* offset of the next record to hand out */
    nng_msg *reply; /* the current batch; records are read from it in place */
    const uint8_t *p, *end;
    bool at_end;              /* the last next() ended at the end of the log */
    uint64_t lowest, log_end; /* the log's bounds in the last reply */
};

int plog_client_consumer_open(plog_client *c, uint64_t from, const plog_client_consumer_config *cfg,
                              plog_client_consumer **out)
{
    plog_client_consumer *it = calloc(1, sizeof *it);
    if (it == NULL)
        return PLOG_STATUS_RESOURCE_EXHAUSTED;
    it->c = c;
    if (cfg != NULL)
        it->cfg = *cfg;
    if (it->cfg.wait_ms == 0)
        it->cfg.wait_ms = DEFAULT_WAIT_MS;
    it->next = from;
    *out = it;
    return PLOG_STATUS_OK;
}

uint64_t plog_client_consumer_offset(const plog_client_consumer *it)
{
    return it->next;
}

static void drop_batch(plog_client_consumer *it)
{
    if (it->reply != NULL)
        nng_msg_free(it->reply);
    it->reply = NULL;
    it->p = it->end = NULL;
}

/* poll asks for the batch at it->next; an empty batch leaves it->p == it->end. */
static int poll_batch(plog_client_consumer *it, plog_rpc_status *st)
{
    Log__V1__ConsumeRequest req = LOG__V1__CONSUME_REQUEST__INIT;
    req.offset = it->next;
    req.max_records = it->cfg.max_records;
    req.max_bytes = it->cfg.max_bytes;
    req.wait_ms = it->cfg.follow ? it->cfg.wait_ms : 0;
    /* The call's deadline covers the server's wait plus the usual timeout. */
    uint32_t timeout = req.wait_ms + plog_client_config_of(it->c)->timeout_ms;
    plog_rpc_reply rp;
    int code = plog_client_call(it->c, plog_rpc_method_name(PLOG_METHOD_CONSUME_STREAM), &req.base, 0,
                                timeout, &it->reply, &rp, st);
    if (code != PLOG_STATUS_OK)
        return code;
    it->p = rp.body;
    it->end = rp.body + rp.body_len;
    /* The log's bounds come after the batch (fields 5 and 6; absent means 0). */
    const uint8_t *q = it->p;
    plog_rpc_wire_field f;
    it->lowest = it->log_end = 0;
    while (plog_rpc_wire_next(&q, it->end, &f) == 1) {
        if (f.num == 5 && f.type == PLOG_WT_VARINT)
            it->lowest = f.v;
        else if (f.num == 6 && f.type == PLOG_WT_VARINT)
            it->log_end = f.v;
    }
    return PLOG_STATUS_OK;
}

/* take_record hands out the next record of the current batch: 1, 0 when the
 * batch is used up, -1 when it is malformed. */
static int take_record(plog_client_consumer *it, const uint8_t **value, size_t *len, uint64_t *off)
{
    plog_rpc_wire_field f;
    int rv;
    while ((rv = plog_rpc_wire_next(&it->p, it->end, &f)) == 1) {
        if (f.num == 3 && f.type == PLOG_WT_LEN) {
            if (plog_rpc_wire_record_decode(f.ptr, f.len, value, len, off) != 0)
                return -1;
            it->next = *off + 1;
            return 1;
        }
        if (f.num == 4 && f.type == PLOG_WT_VARINT)
            it->next = f.v;
    }
    return rv;
}

static bool batch_is_empty(const plog_client_consumer *it)
{
    const uint8_t *p = it->p;
    plog_rpc_wire_field f;
    while (plog_rpc_wire_next(&p, it->end, &f) == 1)
        if (f.num == 3)
            return false;
    return true;
}

int plog_client_consumer_next(plog_client_consumer *it, const uint8_t **value, size_t *len, uint64_t *off,
                              plog_rpc_status *st)
{
    it->at_end = false;
    for (;;) {
        int rv = take_record(it, value, len, off);
        if (rv == 1)
            return plog_rpc_status_set(st, PLOG_STATUS_OK, "%s", "");
        drop_batch(it);
        if (rv < 0)
            return plog_rpc_status_set(st, PLOG_STATUS_INTERNAL, "malformed ConsumeStream reply");
        int code = poll_batch(it, st);
        if (code == PLOG_STATUS_RESOURCE_EXHAUSTED && it->cfg.follow) {
            /* The server has too many polls parked: back off, then poll again. */
            struct timespec ts = {.tv_sec = 0, .tv_nsec = 200 * 1000000L};
            nanosleep(&ts, NULL);
            continue;
        }
        if (code != PLOG_STATUS_OK)
            return code;
        if (!it->cfg.follow && batch_is_empty(it)) {
            drop_batch(it);
            it->at_end = true;
            return plog_rpc_status_set(st, PLOG_STATUS_OUT_OF_RANGE, "end of log at %llu",
                                       (unsigned long long)it->next);
        }
        /* Following, an empty batch means the server's wait ran out: poll again. */
    }
}

void plog_client_consumer_bounds(const plog_client_consumer *it, uint64_t *lowest, uint64_t *end)
{
    *lowest = it->lowest;
    *end = it->log_end;
}

bool plog_client_consumer_is_at_end(const plog_client_consumer *it)
{
    return it->at_end;
}

void plog_client_consumer_close(plog_client_consumer *it)
{
    if (it == NULL)
        return;
    drop_batch(it);
    free(it);
}

/* ---- producer ---- */

enum { SLOT_FREE, SLOT_SENDING, SLOT_RECEIVING, SLOT_DONE };

struct pslot {
    plog_client_producer *p;
    nng_ctx ctx;
    nng_aio *aio;
    int phase;   /* guarded by p->mu */
    int rv;      /* nng result, once DONE */
    bool unsent; /* DONE without sending: an earlier batch had failed */
    nng_msg *reply;
    size_t n; /* records in the batch */
};

struct plog_client_producer {
    plog_client *c;
    plog_client_producer_config cfg;
    struct pslot *slots;
    unsigned head, inflight; /* slots[head] is the oldest batch in flight */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    /* the batch being filled: values packed in buf, lengths in lens */
    uint8_t *buf;
    size_t nbuf, capbuf;
    size_t *lens;
    Log__V1__Record *recs;
    Log__V1__Record **ptrs;
    size_t n;
    int err; /* first failure, sticky */
    plog_rpc_status err_st;
};

static void pslot_cb(void *arg)
{
    struct pslot *s = arg;
    plog_client_producer *p = s->p;
    int rv = nng_aio_result(s->aio);
    pthread_mutex_lock(&p->mu);
    if (s->phase == SLOT_SENDING && rv == 0) {
        s->phase = SLOT_RECEIVING;
        pthread_mutex_unlock(&p->mu);
        nng_ctx_recv(s->ctx, s->aio);
        return;
    }
    if (s->phase == SLOT_SENDING)
        nng_msg_free(nng_aio_get_msg(s->aio)); /* a failed send leaves it ours */
    else if (rv == 0)
        s->reply = nng_aio_get_msg(s->aio);
    nng_aio_set_msg(s->aio, NULL);
    s->rv = rv;
    s->phase = SLOT_DONE;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

int plog_client_producer_open(plog_client *c, const plog_client_producer_config *cfg,
                              plog_client_producer **out, plog_rpc_status *st)
{
    plog_client_producer *p = calloc(1, sizeof *p);
    if (p == NULL)
        return plog_rpc_status_set(st, PLOG_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    p->c = c;
    if (cfg != NULL)
        p->cfg = *cfg;
    if (p->cfg.window == 0)
        p->cfg.window = DEFAULT_WINDOW;
    if (p->cfg.batch_records == 0)
        p->cfg.batch_records = PLOG_CLIENT_BATCH_RECORDS;
    if (p->cfg.batch_bytes == 0)
        p->cfg.batch_bytes = PLOG_CLIENT_BATCH_BYTES;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    p->slots = calloc(p->cfg.window, sizeof *p->slots);
    p->lens = calloc(p->cfg.batch_records, sizeof *p->lens);
    p->recs = calloc(p->cfg.batch_records, sizeof *p->recs);
    p->ptrs = calloc(p->cfg.batch_records, sizeof *p->ptrs);
    if (p->slots == NULL || p->lens == NULL || p->recs == NULL || p->ptrs == NULL) {
        plog_client_producer_close(p);
        return plog_rpc_status_set(st, PLOG_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    }
    for (unsigned i = 0; i < p->cfg.window; i++) {
        struct pslot *s = &p->slots[i];
        s->p = p;
        int rv = nng_ctx_open(&s->ctx, plog_client_socket(c));
        if (rv == 0 && (rv = nng_aio_alloc(&s->aio, pslot_cb, s)) != 0)
            nng_ctx_close(s->ctx);
        if (rv != 0) {
            p->cfg.window = i; /* close only what was opened */
            plog_client_producer_close(p);
            return plog_rpc_status_set(st, plog_rpc_nngerr_status(rv), "producer context: %s",
                                       nng_strerror(rv));
        }
        nng_aio_set_timeout(s->aio, (nng_duration)plog_client_config_of(c)->timeout_ms);
    }
    *out = p;
    return plog_rpc_status_set(st, PLOG_STATUS_OK, "%s", "");
}

/* deliver_acks hands out, in order, the acknowledgements of the finished batches
 * at the head; with wait, it first waits until the head batch is done. Called
 * with p->mu held; releases it around the user's callback. */
static void deliver_acks(plog_client_producer *p, bool wait)
{
    while (p->inflight > 0) {
        struct pslot *s = &p->slots[p->head];
        if (s->phase != SLOT_DONE) {
            if (!wait)
                return;
            pthread_cond_wait(&p->cv, &p->mu);
            continue;
        }
        nng_msg *reply = s->reply;
        int rv = s->rv;
        bool unsent = s->unsent;
        size_t n = s->n;
        s->reply = NULL;
        s->unsent = false;
        s->phase = SLOT_FREE;
        p->head = (p->head + 1) % p->cfg.window;
        p->inflight--;
        pthread_mutex_unlock(&p->mu);

        plog_rpc_status st;
        plog_rpc_reply rp;
        uint64_t first = 0;
        int code =
            unsent ? plog_rpc_status_set(&st, PLOG_STATUS_ABORTED, "not sent: an earlier batch had failed")
                   : plog_client_finish_call(p->c, rv, &reply, &rp, &st);
        if (code == PLOG_STATUS_OK) {
            Log__V1__ProduceResponse *resp = log__v1__produce_response__unpack(NULL, rp.body_len, rp.body);
            if (resp == NULL)
                code = plog_rpc_status_set(&st, PLOG_STATUS_INTERNAL, "malformed ProduceResponse");
            else
                first = resp->offset;
            if (resp != NULL)
                log__v1__produce_response__free_unpacked(resp, NULL);
            nng_msg_free(reply);
        }
        if (code != PLOG_STATUS_OK && p->err == PLOG_STATUS_OK) {
            p->err = code;
            p->err_st = st;
        }
        if (p->cfg.ack != NULL)
            p->cfg.ack(p->cfg.arg, first, n, code, st.msg);
        pthread_mutex_lock(&p->mu);
        wait = false; /* we made progress: the caller decides whether to wait more */
    }
}

static int sticky_err(plog_client_producer *p, plog_rpc_status *st)
{
    if (p->err != PLOG_STATUS_OK && st != NULL)
        *st = p->err_st;
    else
        plog_rpc_status_set(st, PLOG_STATUS_OK, "%s", "");
    return p->err;
}

/* send_batch sends the batch being filled, waiting for room in the window. Once a
 * batch's failure has been delivered, no later one is sent: with window 1 a batch
 * goes only after the one before it was appended, so the records that are in the log are always
 * the first ones given (before, the batch after a lost connection went out on the
 * new one and was appended while the one before it was not). */
static void send_batch(plog_client_producer *p)
{
    if (p->n == 0)
        return;
    size_t pos = 0;
    for (size_t i = 0; i < p->n; i++) {
        log__v1__record__init(&p->recs[i]);
        p->recs[i].value.data = p->buf + pos;
        p->recs[i].value.len = p->lens[i];
        p->ptrs[i] = &p->recs[i];
        pos += p->lens[i];
    }
    Log__V1__ProduceRequest req = LOG__V1__PRODUCE_REQUEST__INIT;
    req.n_records = p->n;
    req.records = p->ptrs;
    uint64_t deadline = plog_rpc_now_unix_ms() + plog_client_config_of(p->c)->timeout_ms;
    nng_msg *m = NULL;
    int rv = plog_rpc_request_msg(plog_rpc_method_name(PLOG_METHOD_PRODUCE_STREAM), &req.base, deadline,
                                  plog_client_id(p->c), plog_client_next_seq(p->c), &m);
    size_t n = p->n;
    p->n = 0;
    p->nbuf = 0;

    pthread_mutex_lock(&p->mu);
    while (p->inflight == p->cfg.window)
        deliver_acks(p, true);
    unsigned i = (p->head + p->inflight) % p->cfg.window;
    struct pslot *s = &p->slots[i];
    s->n = n;
    p->inflight++;
    if (rv != PLOG_OK || p->err != PLOG_STATUS_OK) {
        if (m != NULL)
            nng_msg_free(m);
        s->rv = NNG_ENOMEM;
        s->unsent = rv == PLOG_OK;
        s->phase = SLOT_DONE;
        pthread_mutex_unlock(&p->mu);
        return;
    }
    s->phase = SLOT_SENDING;
    pthread_mutex_unlock(&p->mu);
    nng_aio_set_msg(s->aio, m);
    nng_ctx_send(s->ctx, s->aio);
}

/* request_size_of bounds the encoded size of a ProduceStream request that
 * carries one record of len bytes: Request{method, deadline, client id, seq,
 * body = ProduceRequest{records: [Record{value}]}}, the varints at their longest
 * (envelope.c lays it out). */
static size_t request_size_of(size_t len)
{
    size_t rec = plog_rpc_wire_len_size(1, len);
    size_t body = plog_rpc_wire_len_size(2, rec);
    const char *method = plog_rpc_method_name(PLOG_METHOD_PRODUCE_STREAM);
    return plog_rpc_wire_len_size(1, strlen(method)) + plog_rpc_wire_len_size(2, body) + (1 + 10) +
           (1 + 8 + 1 + 10);
}

int plog_client_producer_send(plog_client_producer *p, const void *value, size_t len, plog_rpc_status *st)
{
    /* A request over the client's limit would reach a server that refuses it, or
     * (past twice its own limit) drops the connection unread: "connection lost",
     * and no reason. Refused here, with one; a batch goes before it would grow past
     * half the limit, so that a value whose own request is within the limit goes
     * in a request that is. */
    size_t max = plog_client_config_of(p->c)->max_msg_bytes;
    size_t need = len <= SIZE_MAX / 2 ? request_size_of(len) : SIZE_MAX;
    if (need > max)
        return plog_rpc_status_set(st, PLOG_STATUS_RESOURCE_EXHAUSTED,
                                   "a value of %zu bytes makes a request of %zu bytes, over the client's "
                                   "limit of %zu bytes",
                                   len, need, max);
    /* Each record adds its framing (two tags and two lengths) to its value's bytes:
     * many short values make a request several times their own size. */
    if (p->n > 0 && p->nbuf + len + PLOG_CLIENT_RECORD_FRAMING_MAX * (p->n + 1) > max / 2)
        send_batch(p);
    if (p->nbuf + len > p->capbuf) {
        size_t cap = p->capbuf ? p->capbuf : 4096;
        while (cap < p->nbuf + len)
            cap *= 2;
        uint8_t *b = realloc(p->buf, cap);
        if (b == NULL)
            return plog_rpc_status_set(st, PLOG_STATUS_RESOURCE_EXHAUSTED, "out of memory");
        p->buf = b;
        p->capbuf = cap;
    }
    if (len > 0)
        memcpy(p->buf + p->nbuf, value, len);
    p->nbuf += len;
    p->lens[p->n++] = len;
    if (p->n == p->cfg.batch_records || p->nbuf >= p->cfg.batch_bytes)
        send_batch(p);
    pthread_mutex_lock(&p->mu);
    deliver_acks(p, false);
    int code = sticky_err(p, st);
    pthread_mutex_unlock(&p->mu);
    return code;
}

int plog_client_producer_flush(plog_client_producer *p, plog_rpc_status *st)
{
    send_batch(p);
    pthread_mutex_lock(&p->mu);
    while (p->inflight > 0)
        deliver_acks(p, true);
    int code = sticky_err(p, st);
    pthread_mutex_unlock(&p->mu);
    return code;
}

void plog_client_producer_close(plog_client_producer *p)
{
    if (p == NULL)
        return;
    if (p->slots != NULL && p->cfg.window > 0 && p->slots[0].aio != NULL)
        plog_client_producer_flush(p, NULL);
    for (unsigned i = 0; p->slots != NULL && i < p->cfg.window; i++) {
        nng_aio_free(p->slots[i].aio);
        nng_ctx_close(p->slots[i].ctx);
    }
    free(p->slots);
    free(p->lens);
    free(p->recs);
    free(p->ptrs);
    free(p->buf);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    free(p);
}
