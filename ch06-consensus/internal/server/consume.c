/* consume.c - Consume and ConsumeStream (Go: server.go Consume, ConsumeStream).
 *
 * ConsumeStream is a long poll. The request names an offset, bounds (max_records,
 * max_bytes) and a wait. When records at the offset are visible the worker answers
 * at once with as many as the bounds allow; otherwise it parks: it joins the
 * parked list and arms a timer on its own aio (nng_sleep_aio), and no thread waits.
 * A produce that makes records visible (plog_server_advance) cancels the timers of
 * the parked polls it can answer, so each one's callback runs at once with
 * NNG_ECANCELED, reads its batch and answers; a timer that expires answers an
 * empty batch. Either way the reply's next_offset tells the client where to poll
 * next. A parked poll holds one context; at most nworkers - RESERVE may park, so
 * produces always find a context, and one client may park at most
 * max_parked_per_client of them (a client is its verified identity, or without
 * one its connection), so one client cannot take every context; beyond either
 * limit a poll is answered RESOURCE_EXHAUSTED at once.
 *
 * ConsumeResponse bodies are written by hand from the log's encoded records,
 * never decoded:  Consume: 0x12 len Record | ConsumeStream: (0x1a len Record)*
 * then 0x20 varint next_offset, 0x28 varint lowest_offset, 0x30 varint end_offset
 * (the log's bounds as consumers see them: `proglogctl offsets` asks for them).
 *
 * ch05: a ConsumeStream with origin_only (a replicator) gets only the records this
 * server originated: a record whose encoding has field 5 (origin) is a copy of
 * another node's and is skipped, and next_offset moves past it all the same. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal/err/err.h"
#include "internal/logger/logger.h"
#include "internal/rpc/status.h"
#include "internal/rpc/wire.h"
#include "internal/server/server_int.h"

#define RESERVE_WORKERS 16
#define DEFAULT_BATCH_RECORDS 1024
#define MAX_BATCH_RECORDS 65536
#define DEFAULT_BATCH_BYTES (1u << 20)
#define DEADLINE_MARGIN_MS 20 /* answer a poll this long before its deadline */

static void reply_read_error(struct worker *w, int rv, uint64_t off)
{
    if (rv == PLOG_ERANGE) {
        plog_server_reply_error(w, PLOG_STATUS_OUT_OF_RANGE, "offset out of range: %llu",
                                (unsigned long long)off);
        return;
    }
    char why[160];
    plog_log_errmsg(w->srv->log, why, sizeof why);
    char offs[24];
    snprintf(offs, sizeof offs, "%llu", (unsigned long long)off);
    plog_logger_log(w->srv->cfg.logger, PLOG_LOGGER_ERROR, "read failed", "offset", offs, "err",
                    plog_strerror(rv), "detail", why, NULL);
    plog_server_reply_error(w, plog_rpc_status_from_err(rv), "read of offset %llu failed: %s: %s",
                            (unsigned long long)off, plog_strerror(rv), why);
}

/* serve_one answers a Consume of the record at off. */
static void serve_one(struct worker *w, uint64_t off)
{
    plog_server *s = w->srv;
    if (off >= atomic_load(&s->visible)) {
        reply_read_error(w, PLOG_ERANGE, off);
        return;
    }
    uint8_t *rec;
    size_t len;
    int rv = plog_log_read_raw(s->log, off, &rec, &len);
    if (rv != PLOG_OK) {
        reply_read_error(w, rv, off);
        return;
    }
    uint8_t hdr[16];
    size_t hlen = plog_rpc_wire_consume_record_header(hdr, len);
    if (plog_rpc_reply_begin(w->msg, 0, NULL, hlen + len) != PLOG_OK ||
        nng_msg_append(w->msg, hdr, hlen) != 0 || nng_msg_append(w->msg, rec, len) != 0) {
        free(rec);
        plog_server_done_silently(w);
        return;
    }
    free(rec);
    plog_server_reply(w);
}

/* read_index_done serves a linearizable Consume once Raft confirmed the read
 * point (ch06). */
static void read_index_done(void *ctx, int rv, uint64_t next)
{
    struct worker *w = ctx;
    plog_server *s = w->srv;
    if (rv == PLOG_OK) {
        plog_server_advance(s, next);
        serve_one(w, w->off);
        return;
    }
    if (rv == PLOG_ENOTLEADER)
        plog_server_reply_not_leader(w);
    else
        plog_server_reply_error(w, PLOG_STATUS_UNAVAILABLE, "read index failed: %s", plog_strerror(rv));
}

void plog_server_consume(struct worker *w, const plog_rpc_request *rq)
{
    plog_server *s = w->srv;
    Log__V1__ConsumeRequest *cr = log__v1__consume_request__unpack(NULL, rq->body_len, rq->body);
    if (cr == NULL) {
        plog_server_reply_error(w, PLOG_STATUS_INVALID_ARGUMENT, "malformed ConsumeRequest");
        return;
    }
    uint64_t off = cr->offset;
    bool linearizable = cr->linearizable;
    log__v1__consume_request__free_unpacked(cr, NULL);
    if (linearizable && s->cfg.read_index != NULL) {
        w->off = off;
        w->state = W_COMMIT;
        int rv = s->cfg.read_index(s->cfg.members_arg, read_index_done, w);
        if (rv != PLOG_OK)
            read_index_done(w, rv, 0);
        return;
    }
    serve_one(w, off);
}

/* answer_batch answers a poll at w->off with what is visible now (maybe nothing). */
/* has_origin: does the encoded Record carry a non-empty origin (field 5)? */
static bool has_origin(const uint8_t *rec, size_t len)
{
    const uint8_t *p = rec, *end = rec + len;
    plog_rpc_wire_field f;
    while (plog_rpc_wire_next(&p, end, &f) == 1)
        if (f.num == 5 && f.type == PLOG_WT_LEN && f.len > 0)
            return true;
    return false;
}

static void answer_batch(struct worker *w)
{
    plog_server *s = w->srv;
    uint64_t visible = atomic_load(&s->visible);
    plog_log_batch b = {0};
    uint64_t next = w->off;
    if (w->off < visible) {
        uint64_t avail = visible - w->off;
        size_t max_n = avail < w->max_records ? (size_t)avail : w->max_records;
        int rv = plog_log_read_batch(s->log, w->off, max_n, w->max_bytes, &b);
        if (rv != PLOG_OK) {
            plog_log_batch_fini(&b);
            reply_read_error(w, rv, w->off);
            return;
        }
        next = w->off + b.n;
    }
    if (w->origin_only) {
        size_t k = 0;
        for (size_t i = 0; i < b.n; i++) {
            if (has_origin(b.rec[i], b.len[i]))
                continue;
            b.rec[k] = b.rec[i];
            b.len[k++] = b.len[i];
        }
        b.n = k;
    }
    uint64_t lowest = plog_log_lowest_offset(s->log);
    size_t body = plog_rpc_wire_consume_batch_size(b.len, b.n, next, lowest, visible);
    if (plog_rpc_reply_begin(w->msg, 0, NULL, body) != PLOG_OK) {
        plog_log_batch_fini(&b);
        plog_server_done_silently(w);
        return;
    }
    size_t at = nng_msg_len(w->msg);
    if (nng_msg_realloc(w->msg, at + body) != 0) {
        plog_log_batch_fini(&b);
        plog_server_done_silently(w);
        return;
    }
    plog_rpc_wire_consume_batch_put((uint8_t *)nng_msg_body(w->msg) + at, b.rec, b.len, b.n, next, lowest,
                                    visible);
    plog_log_batch_fini(&b);
    plog_server_reply(w);
}

static void unlink_parked(plog_server *s, struct worker *w)
{
    if (w->prev != NULL)
        w->prev->next = w->next;
    else
        s->parked = w->next;
    if (w->next != NULL)
        w->next->prev = w->prev;
    w->prev = w->next = NULL;
    s->nparked--;
    atomic_fetch_sub(&s->nparked_hint, 1);
}

/* parked_by counts the parked polls of w's client (under mu): same verified
 * identity, or, without one, same connection. */
static unsigned parked_by(const plog_server *s, const struct worker *w)
{
    unsigned n = 0;
    for (const struct worker *p = s->parked; p != NULL; p = p->next)
        if (w->ident != 0 ? p->ident == w->ident : (p->ident == 0 && p->pipe == w->pipe))
            n++;
    return n;
}

/* park waits up to wait_ms for records at w->off. */
static void park(struct worker *w, uint32_t wait_ms)
{
    plog_server *s = w->srv;
    pthread_mutex_lock(&s->mu);
    /* Announce first, then look: a producer advances visible, then reads the hint,
     * so either we see its records here or it sees us and wakes us (both seq_cst). */
    atomic_fetch_add(&s->nparked_hint, 1);
    if (atomic_load(&s->closing) || w->off < atomic_load(&s->visible)) {
        atomic_fetch_sub(&s->nparked_hint, 1);
        pthread_mutex_unlock(&s->mu);
        answer_batch(w);
        return;
    }
    if (s->nparked + RESERVE_WORKERS >= s->nworkers) {
        atomic_fetch_sub(&s->nparked_hint, 1);
        unsigned n = s->nparked;
        pthread_mutex_unlock(&s->mu);
        plog_server_reply_error(w, PLOG_STATUS_RESOURCE_EXHAUSTED,
                                "too many parked consumers (%u); retry later", n);
        return;
    }
    unsigned mine = parked_by(s, w);
    if (mine >= s->cfg.max_parked_per_client) {
        atomic_fetch_sub(&s->nparked_hint, 1);
        pthread_mutex_unlock(&s->mu);
        plog_server_reply_error(w, PLOG_STATUS_RESOURCE_EXHAUSTED,
                                "this client already has %u parked ConsumeStream polls (the server's limit); "
                                "retry later",
                                mine);
        return;
    }
    w->prev = NULL;
    w->next = s->parked;
    if (s->parked != NULL)
        s->parked->prev = w;
    s->parked = w;
    s->nparked++;
    w->woken = false;
    w->state = W_PARKED;
    /* The timer's callback runs on an nng thread and takes mu: no deadlock. */
    nng_sleep_aio((nng_duration)wait_ms, w->aio);
    pthread_mutex_unlock(&s->mu);
}

void plog_server_parked_cb(struct worker *w)
{
    plog_server *s = w->srv;
    pthread_mutex_lock(&s->mu);
    if (!w->woken)
        unlink_parked(s, w); /* the timer expired */
    w->state = W_SEND;
    pthread_mutex_unlock(&s->mu);
    if (plog_server_authorize(w)) /* the ACL may have been reloaded meanwhile */
        answer_batch(w);
}

void plog_server_wake(plog_server *s, bool all)
{
    pthread_mutex_lock(&s->mu);
    uint64_t visible = atomic_load(&s->visible);
    struct worker *w = s->parked;
    while (w != NULL) {
        struct worker *next = w->next;
        if (all || w->off < visible) {
            unlink_parked(s, w);
            w->woken = true;
            /* Completes the sleep with NNG_ECANCELED; the callback runs later on
             * an nng thread (a no-op if the timer already fired). */
            nng_aio_cancel(w->aio);
        }
        w = next;
    }
    pthread_mutex_unlock(&s->mu);
}

void plog_server_consume_stream(struct worker *w, const plog_rpc_request *rq)
{
    plog_server *s = w->srv;
    Log__V1__ConsumeRequest *cr = log__v1__consume_request__unpack(NULL, rq->body_len, rq->body);
    if (cr == NULL) {
        plog_server_reply_error(w, PLOG_STATUS_INVALID_ARGUMENT, "malformed ConsumeRequest");
        return;
    }
    w->off = cr->offset;
    w->origin_only = cr->origin_only;
    w->max_records = cr->max_records == 0                  ? DEFAULT_BATCH_RECORDS
                     : cr->max_records > MAX_BATCH_RECORDS ? MAX_BATCH_RECORDS
                                                           : cr->max_records;
    /* A reply must fit the client's receive limit, which matches ours by default. */
    size_t cap = s->cfg.max_msg_bytes > 4096 ? s->cfg.max_msg_bytes - 1024 : 3072;
    w->max_bytes = cr->max_bytes == 0 ? DEFAULT_BATCH_BYTES : cr->max_bytes;
    if (w->max_bytes > cap)
        w->max_bytes = (uint32_t)cap;
    uint32_t wait = cr->wait_ms < s->cfg.max_wait_ms ? cr->wait_ms : s->cfg.max_wait_ms;
    log__v1__consume_request__free_unpacked(cr, NULL);

    uint64_t lowest = plog_log_lowest_offset(s->log);
    if (w->off < lowest) {
        plog_server_reply_error(w, PLOG_STATUS_OUT_OF_RANGE,
                                "offset out of range: %llu is below the lowest offset %llu",
                                (unsigned long long)w->off, (unsigned long long)lowest);
        return;
    }
    if (rq->timeout_ms != 0) { /* the client's time left, counted from now */
        uint32_t left = rq->timeout_ms > DEADLINE_MARGIN_MS ? rq->timeout_ms - DEADLINE_MARGIN_MS : 0;
        if (left < wait)
            wait = left;
    }
    if (wait == 0 || w->off < atomic_load(&s->visible)) {
        answer_batch(w);
        return;
    }
    park(w, wait);
}
