/* produce.c - Produce and ProduceStream (Go: server.go Produce, ProduceStream),
 * the committer thread and the deduplication of resent produces.
 *
 * Durability: a produce is acknowledged only after plog_log_commit() returned for
 * its last offset, so a kill -9 never loses an acknowledged record. nng's threads
 * never wait for an fsync:
 *   NEVER     append and commit (a write(2) to the kernel) on the request's thread;
 *   INTERVAL  append on the request's thread, then queue the worker (state COMMIT):
 *             one committer thread commits the highest queued offset (the log's group
 *             commit: one fsync on this thread covers every record appended before it
 *             started), then answers every produce it covers;
 *   ALWAYS    queue the decoded request: the committer appends every queued
 *             request in one plog_log_append_batch (one fsync for all of them),
 *             then answers them. One fsync acknowledges many produces.
 *
 * Deduplication: nng's REQ resends a request whose reply is late (resend time) or
 * whose connection broke. A request carrying (client_id, seq), seq != 0, is
 * remembered in a direct-mapped table: a copy that arrives while the first is
 * still in flight is dropped unanswered (the first one's reply answers the REQ,
 * whose request id is the same); a copy that arrives after it completed is
 * answered with the remembered offsets. So a resend never appends twice, as long
 * as the entry has not been evicted by a later produce hashing to its slot.
 * Entries are keyed by the sender's verified identity too (ch04: a hash of the
 * client certificate's CN; 0 without one), so that a client cannot claim, or be
 * answered with, another client's (client_id, seq).
 *
 * Memory: a decoded ProduceRequest costs its bytes plus a Record struct and a
 * pointer per record (protobuf-c copies the values), so a 4 MiB request of empty
 * records decodes to ~100 MiB. Before decoding, the records are counted on the
 * wire and the estimate is charged to the server's in-flight budget
 * (max_inflight_bytes); a request that does not fit is RESOURCE_EXHAUSTED. */
#include <stdlib.h>
#include <string.h>

#include "internal/err/err.h"
#include "internal/logger/logger.h"
#include "internal/rpc/status.h"
#include "internal/rpc/wire.h"
#include "internal/server/server_int.h"

static struct dedup_entry *dedup_slot(plog_server *s, uint64_t ident, uint64_t cid, uint64_t seq)
{
    uint64_t h =
        (cid * 0x9E3779B97F4A7C15ull) ^ (seq * 0xC2B2AE3D27D4EB4Full) ^ (ident * 0x165667B19E3779F9ull);
    h ^= h >> 29;
    return &s->dedup[h % DEDUP_SLOTS];
}

enum dedup_verdict { DEDUP_NEW, DEDUP_IN_FLIGHT, DEDUP_DONE };

/* dedup_claim looks (cid, seq) up; when new, claims the slot for it. */
static enum dedup_verdict dedup_claim(plog_server *s, struct worker *w, uint64_t cid, uint64_t seq)
{
    enum dedup_verdict v = DEDUP_NEW;
    pthread_mutex_lock(&s->dedup_mu);
    struct dedup_entry *e = dedup_slot(s, w->ident, cid, seq);
    if (e->seq == seq && e->client_id == cid && e->ident == w->ident) {
        v = e->done ? DEDUP_DONE : DEDUP_IN_FLIGHT;
        w->first = e->first;
        w->count = e->count;
    } else {
        *e = (struct dedup_entry){.ident = w->ident, .client_id = cid, .seq = seq};
    }
    pthread_mutex_unlock(&s->dedup_mu);
    return v;
}

/* dedup_finish records the outcome (ok: remember the offsets; else forget, so a
 * retry is served afresh), unless the slot was taken over meanwhile. */
static void dedup_finish(plog_server *s, const struct worker *w, bool ok)
{
    if (w->seq == 0)
        return;
    pthread_mutex_lock(&s->dedup_mu);
    struct dedup_entry *e = dedup_slot(s, w->ident, w->client_id, w->seq);
    if (e->seq == w->seq && e->client_id == w->client_id && e->ident == w->ident) {
        if (ok) {
            e->done = true;
            e->first = w->first;
            e->count = w->count;
        } else {
            memset(e, 0, sizeof *e);
        }
    }
    pthread_mutex_unlock(&s->dedup_mu);
}

/* reply_offsets answers ProduceResponse{offset = first, count} (count only for
 * ProduceStream), encoded by hand (internal/rpc/wire.h). */
static void reply_offsets(struct worker *w, bool stream)
{
    uint8_t body[PLOG_RPC_WIRE_PRODUCE_RESPONSE_MAX];
    size_t n = plog_rpc_wire_produce_response(body, w->first, stream ? w->count : 0);
    if (plog_rpc_reply_begin(w->msg, 0, NULL, n) != PLOG_OK || nng_msg_append(w->msg, body, n) != 0) {
        plog_server_done_silently(w);
        return;
    }
    plog_server_reply(w);
}

void plog_server_advance(plog_server *s, uint64_t next)
{
    uint64_t cur = atomic_load(&s->visible);
    while (cur < next && !atomic_compare_exchange_weak(&s->visible, &cur, next))
        ;
    if (atomic_load(&s->nparked_hint) > 0)
        plog_server_wake(s, false);
}

/* complete answers a produce whose commit returned rv. */
static void complete(struct worker *w, int rv, bool stream)
{
    plog_server *s = w->srv;
    dedup_finish(s, w, rv == PLOG_OK);
    if (rv != PLOG_OK) {
        /* A failed write fails the log (fail-stop): this produce and every later
         * one get the same answer, UNAVAILABLE with the cause (a full disk), not
         * INTERNAL for the first. The cause often starts with the error's name. */
        if (rv != PLOG_EFULL && rv != PLOG_EFAILED && plog_log_failed(s->log, NULL, 0))
            rv = PLOG_EFAILED;
        char why[160];
        plog_log_errmsg(s->log, why, sizeof why);
        if (rv == PLOG_EFULL) { /* a refusal, not a failure: the log serves on */
            plog_logger_log(s->cfg.logger, PLOG_LOGGER_WARN, "produce refused", "err", why, NULL);
            plog_server_reply_error(w, plog_rpc_status_from_err(rv), "%s", why);
            return;
        }
        const char *name = plog_strerror(rv);
        bool named = strncmp(why, name, strlen(name)) == 0;
        plog_logger_log(s->cfg.logger, PLOG_LOGGER_ERROR, "commit failed", "err", name, "detail", why, NULL);
        plog_server_reply_error(w, plog_rpc_status_from_err(rv), "commit failed: %s%s%s", named ? "" : name,
                                named ? "" : ": ", why);
        return;
    }
    plog_server_advance(s, w->first + w->count);
    reply_offsets(w, stream);
}

/* append_request appends the n records of pr (record, then records) under one
 * lock; *first = offset of the first. */
static int append_request(plog_server *s, Log__V1__ProduceRequest *pr, size_t n, uint64_t *first)
{
    if (pr->record == NULL || n == 1) /* one array already holds them all */
        return plog_log_append_batch(s->log, pr->record != NULL ? &pr->record : pr->records, n, first);
    Log__V1__Record **all = malloc(n * sizeof *all);
    if (all == NULL)
        return PLOG_ENOMEM;
    all[0] = pr->record;
    memcpy(all + 1, pr->records, pr->n_records * sizeof *all);
    int rv = plog_log_append_batch(s->log, all, n, first);
    free(all);
    return rv;
}

/* enqueue parks w (state COMMIT) on the committer's queue. */
static void enqueue(struct worker *w)
{
    plog_server *s = w->srv;
    w->state = W_COMMIT;
    pthread_mutex_lock(&s->mu);
    w->cnext = NULL;
    if (s->ctail != NULL)
        s->ctail->cnext = w;
    else
        s->chead = w;
    s->ctail = w;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

/* raft_done answers a produce that went through Raft (ch06). */
static void raft_done(void *ctx, int rv, uint64_t first, uint64_t count)
{
    struct worker *w = ctx;
    plog_server *s = w->srv;
    if (rv == PLOG_OK) {
        w->first = first;
        w->count = count;
        complete(w, PLOG_OK, w->stream);
        return;
    }
    dedup_finish(s, w, false);
    if (rv == PLOG_ENOTLEADER) {
        plog_server_reply_not_leader(w);
        return;
    }
    plog_server_reply_error(w, rv == PLOG_EBUSY ? PLOG_STATUS_UNAVAILABLE : plog_rpc_status_from_err(rv),
                            "produce failed: %s", plog_strerror(rv));
}

/* propose_request hands the records of pr to Raft; raft_done answers (ch06). */
static void propose_request(struct worker *w, Log__V1__ProduceRequest *pr, size_t n)
{
    plog_server *s = w->srv;
    const uint8_t **values = malloc(n * sizeof *values);
    size_t *lens = malloc(n * sizeof *lens);
    int rv = PLOG_ENOMEM;
    if (values != NULL && lens != NULL) {
        size_t k = 0;
        if (pr->record != NULL) {
            values[k] = pr->record->value.data;
            lens[k++] = pr->record->value.len;
        }
        for (size_t i = 0; i < pr->n_records; i++) {
            values[k] = pr->records[i]->value.data;
            lens[k++] = pr->records[i]->value.len;
        }
        w->state = W_COMMIT;
        rv = s->cfg.propose(s->cfg.members_arg, w->client_id, w->seq, values, lens, n, raft_done, w);
    }
    free(values);
    free(lens);
    log__v1__produce_request__free_unpacked(pr, NULL);
    if (rv != PLOG_OK)
        raft_done(w, rv, 0, 0);
}

/* decoded_cost estimates the heap a ProduceRequest of len bytes takes once
 * protobuf-c has decoded it: its bytes, plus per record (fields 1 and 2 on the
 * wire) a Record, a pointer and two allocations' overhead. Malformed input is
 * counted as far as it parses; the decoder refuses it afterwards. */
static size_t decoded_cost(const uint8_t *body, size_t len)
{
    const uint8_t *p = body, *end = body + len;
    plog_rpc_wire_field f;
    size_t n = 0;
    while (plog_rpc_wire_next(&p, end, &f) == 1)
        if ((f.num == 1 || f.num == 2) && f.type == PLOG_WT_LEN)
            n++;
    return sizeof(Log__V1__ProduceRequest) + len + n * (sizeof(Log__V1__Record) + sizeof(void *) + 32);
}

void plog_server_produce(struct worker *w, const plog_rpc_request *rq, bool stream)
{
    plog_server *s = w->srv;
    size_t cost = decoded_cost(rq->body, rq->body_len);
    if (!plog_server_charge(w, cost)) {
        plog_server_reply_error(w, PLOG_STATUS_RESOURCE_EXHAUSTED,
                                "request would take %zu bytes decoded; the server's in-flight budget of %zu "
                                "bytes is full: retry later or send smaller batches",
                                cost, s->cfg.max_inflight_bytes);
        return;
    }
    Log__V1__ProduceRequest *pr = log__v1__produce_request__unpack(NULL, rq->body_len, rq->body);
    if (pr == NULL) {
        plog_server_reply_error(w, PLOG_STATUS_INVALID_ARGUMENT, "malformed ProduceRequest");
        return;
    }
    size_t n = (pr->record != NULL ? 1 : 0) + pr->n_records;
    if (!stream && (pr->record == NULL || pr->n_records > 0)) {
        log__v1__produce_request__free_unpacked(pr, NULL);
        plog_server_reply_error(w, PLOG_STATUS_INVALID_ARGUMENT,
                                "Produce takes exactly one record (field 1); batches go to "
                                "ProduceStream");
        return;
    }
    if (n == 0) {
        log__v1__produce_request__free_unpacked(pr, NULL);
        plog_server_reply_error(w, PLOG_STATUS_INVALID_ARGUMENT, "no record to produce");
        return;
    }
    w->client_id = rq->client_id;
    w->seq = rq->seq;
    if (rq->seq != 0) {
        enum dedup_verdict v = dedup_claim(s, w, rq->client_id, rq->seq);
        if (v != DEDUP_NEW) {
            log__v1__produce_request__free_unpacked(pr, NULL);
            if (v == DEDUP_IN_FLIGHT)
                plog_server_drop(w);
            else
                reply_offsets(w, stream);
            return;
        }
    }

    w->count = n;
    w->stream = stream;
    if (s->cfg.propose != NULL) {
        propose_request(w, pr, n);
        return;
    }
    if (s->cfg.sync == PLOG_SYNC_ALWAYS) {
        /* Appending fsyncs: leave it to the committer, which appends every queued
         * request in one batch, under one fsync. */
        w->pr = pr;
        enqueue(w);
        return;
    }
    uint64_t first = 0;
    int rv = append_request(s, pr, n, &first);
    log__v1__produce_request__free_unpacked(pr, NULL);
    w->first = first;
    if (rv != PLOG_OK) {
        complete(w, rv, stream);
        return;
    }
    if (s->cfg.sync == PLOG_SYNC_NEVER) {
        complete(w, plog_log_commit(s->log, first + n - 1), stream);
        return;
    }
    enqueue(w); /* group commit: wait on the committer's queue */
}

/* append_all appends the records of every queued request of batch (ALWAYS) in one
 * plog_log_append_batch, so one fsync covers them, and sets each one's first. */
static int append_all(plog_server *s, struct worker *batch)
{
    size_t total = 0;
    for (struct worker *w = batch; w != NULL; w = w->cnext)
        total += w->count;
    Log__V1__Record **all = malloc(total * sizeof *all);
    int rv = PLOG_ENOMEM;
    uint64_t first = 0;
    if (all != NULL) {
        size_t k = 0;
        for (struct worker *w = batch; w != NULL; w = w->cnext) {
            if (w->pr->record != NULL)
                all[k++] = w->pr->record;
            for (size_t i = 0; i < w->pr->n_records; i++)
                all[k++] = w->pr->records[i];
        }
        rv = plog_log_append_batch(s->log, all, total, &first);
        free(all);
    }
    for (struct worker *w = batch; w != NULL; w = w->cnext) {
        w->first = first;
        first += w->count;
        log__v1__produce_request__free_unpacked(w->pr, NULL);
        w->pr = NULL;
    }
    return rv;
}

static void *committer_main(void *arg)
{
    plog_server *s = arg;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        while (s->chead == NULL && !s->committer_stop)
            pthread_cond_wait(&s->cv, &s->mu);
        if (s->chead == NULL)
            break;
        struct worker *batch = s->chead;
        s->chead = s->ctail = NULL;
        pthread_mutex_unlock(&s->mu);
        int rv = PLOG_OK;
        if (s->cfg.sync == PLOG_SYNC_ALWAYS)
            rv = append_all(s, batch);
        uint64_t last = 0;
        for (struct worker *w = batch; w != NULL; w = w->cnext)
            if (w->first + w->count - 1 > last)
                last = w->first + w->count - 1;
        if (rv == PLOG_OK)
            rv = plog_log_commit(s->log, last);
        while (batch != NULL) {
            struct worker *w = batch;
            batch = w->cnext; /* read before the reply recycles w */
            complete(w, rv, w->stream);
        }
        pthread_mutex_lock(&s->mu);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

int plog_server_committer_start(plog_server *s)
{
    if (pthread_create(&s->committer, NULL, committer_main, s) != 0)
        return PLOG_ENOMEM;
    s->committer_started = true;
    return PLOG_OK;
}

void plog_server_committer_stop(plog_server *s)
{
    if (!s->committer_started)
        return;
    pthread_mutex_lock(&s->mu);
    s->committer_stop = true;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->committer, NULL);
    s->committer_started = false;
}
