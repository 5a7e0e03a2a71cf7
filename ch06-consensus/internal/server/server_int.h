/* server_int.h - the server's internals shared by server.c (socket, workers,
 * dispatch), produce.c (Produce, ProduceStream, committer, deduplication) and
 * consume.c (Consume, ConsumeStream long polls). Not for use outside
 * internal/server.
 *
 * A worker is one nng context and one aio, cycling through
 *   RECV -> (handler) -> SEND -> RECV
 * where the handler either answers at once, or parks the worker:
 *   COMMIT  a produce waiting for the committer thread to make it durable;
 *   PARKED  a long poll waiting for records (woken by produces) or its timer.
 * Locks: mu guards the parked list, the commit queue and the busy count; dedup_mu
 * the deduplication table; the log locks itself. Never hold mu across a log call
 * that may wait for an fsync. */
#ifndef PLOG_SERVER_INT_H
#define PLOG_SERVER_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <nng/nng.h>

#include "internal/log/log.h"
#include "internal/rpc/envelope.h"
#include "internal/server/server.h"
#include "internal/tls/engine.h"

enum worker_state { W_IDLE, W_RECV, W_SEND, W_COMMIT, W_PARKED };

struct worker {
    plog_server *srv;
    nng_ctx ctx;
    nng_aio *aio;
    enum worker_state state;
    nng_msg *msg; /* the request being served; reused for its reply */
    /* COMMIT */
    uint64_t first, count, client_id, seq;
    bool stream;
    Log__V1__ProduceRequest *pr; /* ALWAYS: the request the committer appends */
    struct worker *cnext;
    /* Who sent the request, for the per-client limits: ident is a hash of the
     * verified identity (0: none), pipe the connection it came on. */
    uint64_t ident;
    uint32_t pipe;
    size_t charged; /* bytes charged to the server's in-flight budget */
    /* The request being served, for authorization, metrics and the request log
     * (ch04): set when it arrives, completed when its reply is sent. */
    int64_t t0_ns; /* CLOCK_MONOTONIC at arrival */
    plog_rpc_method method;
    int code; /* the reply's status */
    uint64_t bytes_in, bytes_out;
    char peer[PLOG_TLS_CN_SIZE]; /* the client certificate's CN; "" when none */
    char error[256];             /* the reply's message when code != OK */
    /* PARKED */
    uint64_t off;
    uint32_t max_records, max_bytes;
    bool origin_only; /* ch05: skip records that carry an origin */
    bool woken;
    struct worker *prev, *next;
};

struct dedup_entry {
    uint64_t ident, client_id, seq, first, count; /* keyed by (ident, client_id, seq) */
    bool done;
};
#define DEDUP_SLOTS 8192 /* direct-mapped: covers the last few thousand produces */

struct plog_server {
    plog_log *log;
    plog_server_config cfg;
    nng_socket sock;
    bool sock_open;
    nng_listener listener;
    bool listener_open;
    struct worker *workers;
    unsigned nworkers;

    pthread_mutex_t mu;
    pthread_cond_t cv;      /* the committer's: queue not empty / stopping */
    pthread_cond_t idle_cv; /* busy fell to 0, or the in-process reply is there; apart from
                             * cv, so a request ending does not wake the committer */
    atomic_bool closing;    /* new requests are answered UNAVAILABLE */
    bool stopping;          /* workers stop receiving (after the listener closed) */
    unsigned busy;          /* workers between a received request and its reply */
    struct worker *parked;  /* doubly linked, PARKED workers */
    unsigned nparked;
    atomic_uint nparked_hint;     /* nparked, read without mu by producers */
    struct worker *chead, *ctail; /* commit queue, FIFO */
    pthread_t committer;
    bool committer_started, committer_stop;

    /* Records below visible are committed: consumers see only those, so nothing
     * a consumer saw can vanish in a crash. Advanced after plog_log_commit(). */
    _Atomic uint64_t visible;

    /* Bytes of decoded requests in flight (plog_server_charge), bounded by
     * cfg.max_inflight_bytes. */
    atomic_size_t inflight;

    /* The last connections closed because a reply waited reply_timeout_ms for
     * them (worker_cb): nng completes their other waiting replies as sent. */
    _Atomic uint32_t stalled[8];
    atomic_uint nstalled;

    /* In-process mode (plog_server_open_inproc): no socket; one worker whose
     * reply lands in inproc_reply, inproc_done set under mu when it finished. */
    bool inproc, inproc_done;
    nng_msg *inproc_reply;
    const char *inproc_peer;

    pthread_mutex_t dedup_mu;
    struct dedup_entry *dedup;

    /* Guards cfg.metrics for pipe_cb, which close clears: the socket may close
     * after plog_server_close has returned (see there), when the registry is gone. */
    pthread_mutex_t pipe_mu;
};

/* server.c */
void plog_server_reply(struct worker *w); /* sends w->msg, then receives again */
void plog_server_reply_error(struct worker *w, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void plog_server_done_silently(struct worker *w); /* drops the request unanswered */
/* FAILED_PRECONDITION "not leader; leader at ADDR" (or "no leader known"), ch06. */
void plog_server_reply_not_leader(struct worker *w);
/* plog_server_drop drops a resend whose first copy is still in flight (its reply
 * answers the client): counted as a dropped resend, not as a failed request. */
void plog_server_drop(struct worker *w);
/* plog_server_charge reserves bytes of the in-flight budget for w's request
 * (released when its reply is sent). false, with nothing reserved, when the
 * budget cannot hold them: the caller answers RESOURCE_EXHAUSTED. */
bool plog_server_charge(struct worker *w, size_t bytes);
/* plog_server_authorize checks w's sender against the ACL in force now (Go:
 * authorize in server.go): true when the request may go on (always without
 * TLS); otherwise it has been answered UNAUTHENTICATED or PERMISSION_DENIED. A
 * poll that parked runs it again when it wakes: a reload may have revoked it. */
bool plog_server_authorize(struct worker *w);

/* plog_server_open_inproc makes a server without a socket, for the fuzz target:
 * cfg->addr and cfg->tls are ignored (NULL), requests go in through
 * plog_server_inproc_call, one at a time. Close with plog_server_close. */
int plog_server_open_inproc(plog_log *log, const plog_server_config *cfg, plog_server **sp, char *errmsg,
                            size_t size);
/* plog_server_inproc_call serves the len bytes at req (an encoded Request) as if
 * they came from a client whose verified identity is peer ("" or NULL: none;
 * ch03 has none), through the server's real dispatch, and waits for the outcome:
 * *reply is the reply message (the caller frees it), or NULL when the request was
 * dropped unanswered. PLOG_ENOMEM. */
int plog_server_inproc_call(plog_server *s, const void *req, size_t len, const char *peer, nng_msg **reply);

/* produce.c */
void plog_server_produce(struct worker *w, const plog_rpc_request *rq, bool stream);
int plog_server_committer_start(plog_server *s);
void plog_server_committer_stop(plog_server *s);
void plog_server_advance(plog_server *s, uint64_t next); /* visible = max(visible, next); wakes */

/* consume.c */
void plog_server_consume(struct worker *w, const plog_rpc_request *rq);
void plog_server_consume_stream(struct worker *w, const plog_rpc_request *rq);
void plog_server_parked_cb(struct worker *w);    /* the PARKED worker's aio finished */
void plog_server_wake(plog_server *s, bool all); /* wakes parked polls that can answer */

#endif
