/* server.c - the REP socket, its workers and the dispatch of requests (Go:
 * server.go's grpcServer). See server_int.h for the worker life cycle.
 *
 * Limits: a request larger than max_msg_bytes is answered RESOURCE_EXHAUSTED with
 * both sizes in the message. NNG_OPT_RECVMAXSZ is set to twice that, so nng reads
 * a message up to that size (and we can answer it clearly) but drops the
 * connection on anything bigger without buffering it. */
#include "internal/server/server.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>

#include "internal/err/err.h"
#include "internal/rpc/nngerr.h"
#include "internal/rpc/status.h"
#include "internal/server/server_int.h"

#define DEFAULT_MAX_MSG (4u << 20)
#define DEFAULT_WORKERS 256
#define DEFAULT_MAX_WAIT_MS 30000
#define CLOSE_GRACE_MS 3000
#define DEFAULT_MAX_PARKED_PER_CLIENT 32
#define DEFAULT_MAX_INFLIGHT (256u << 20)
/* A reply waits behind the earlier ones on its connection while the client does not
 * read: past this, the connection is closed (see worker_cb). It bounds a pipelining
 * client too, which must read what it asked for at that pace: 30 s covers a
 * client's default deadline (10 s) three times over. */
#define DEFAULT_REPLY_TIMEOUT_MS 30000
/* The largest max_msg_bytes: RECVMAXSZ is twice it, and both must fit a size_t
 * and nng's 32-bit length prefixes with room to spare. */
#define MAX_MAX_MSG ((size_t)1 << 30)

bool plog_server_charge(struct worker *w, size_t bytes)
{
    plog_server *s = w->srv;
    size_t cur = atomic_load(&s->inflight);
    do {
        if (bytes > s->cfg.max_inflight_bytes || cur > s->cfg.max_inflight_bytes - bytes)
            return false;
    } while (!atomic_compare_exchange_weak(&s->inflight, &cur, cur + bytes));
    w->charged += bytes;
    return true;
}

static void recv_next(struct worker *w)
{
    plog_server *s = w->srv;
    if (w->charged > 0) {
        atomic_fetch_sub(&s->inflight, w->charged);
        w->charged = 0;
    }
    pthread_mutex_lock(&s->mu);
    if (w->state != W_RECV && w->state != W_IDLE) {
        s->busy--;
        if (s->busy == 0)
            pthread_cond_broadcast(&s->idle_cv);
    }
    if (s->inproc) {
        w->state = W_IDLE;
        s->inproc_done = true;
        pthread_cond_broadcast(&s->idle_cv);
        pthread_mutex_unlock(&s->mu);
        return;
    }
    if (s->stopping) {
        /* Receive no more: plog_server_close stops this context. */
        w->state = W_IDLE;
        pthread_mutex_unlock(&s->mu);
        return;
    }
    w->state = W_RECV;
    pthread_mutex_unlock(&s->mu);
    nng_aio_set_timeout(w->aio, NNG_DURATION_INFINITE); /* the reply's timeout stays behind */
    nng_ctx_recv(w->ctx, w->aio);
}

void plog_server_reply(struct worker *w)
{
    nng_msg *m = w->msg;
    w->msg = NULL;
    w->state = W_SEND;
    if (w->srv->inproc) {
        pthread_mutex_lock(&w->srv->mu);
        w->srv->inproc_reply = m;
        pthread_mutex_unlock(&w->srv->mu);
        recv_next(w);
        return;
    }
    nng_aio_set_msg(w->aio, m);
    nng_aio_set_timeout(w->aio, (nng_duration)w->srv->cfg.reply_timeout_ms);
    nng_ctx_send(w->ctx, w->aio);
}

void plog_server_reply_error(struct worker *w, int code, const char *fmt, ...)
{
    char text[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    if (plog_rpc_reply_begin(w->msg, code, text, 0) != PLOG_OK) {
        plog_server_done_silently(w);
        return;
    }
    plog_server_reply(w);
}

void plog_server_done_silently(struct worker *w)
{
    if (w->msg != NULL)
        nng_msg_free(w->msg);
    w->msg = NULL;
    recv_next(w);
}

void plog_server_drop(struct worker *w)
{
    nng_msg_free(w->msg);
    w->msg = NULL;
    recv_next(w);
}

/* handle serves one request: checks size, envelope, deadline, then the method. */
static void handle(struct worker *w)
{
    plog_server *s = w->srv;
    size_t len = nng_msg_len(w->msg);
    w->ident = 0; /* ch03 has no verified identities: a client is its connection */
    w->pipe = nng_pipe_id(nng_msg_get_pipe(w->msg));
    if (len > s->cfg.max_msg_bytes) {
        plog_server_reply_error(w, PLOG_STATUS_RESOURCE_EXHAUSTED,
                                "request of %zu bytes exceeds the server's limit of %zu bytes", len,
                                s->cfg.max_msg_bytes);
        return;
    }
    if (atomic_load(&s->closing)) {
        plog_server_reply_error(w, PLOG_STATUS_UNAVAILABLE, "server is shutting down");
        return;
    }
    plog_rpc_request rq;
    if (plog_rpc_request_decode(nng_msg_body(w->msg), len, &rq) != PLOG_OK) {
        plog_server_reply_error(w, PLOG_STATUS_INVALID_ARGUMENT, "malformed request envelope (%zu bytes)",
                                len);
        return;
    }
    switch (plog_rpc_method_lookup(rq.method, rq.method_len)) {
    case PLOG_METHOD_PRODUCE:
        plog_server_produce(w, &rq, false);
        break;
    case PLOG_METHOD_PRODUCE_STREAM:
        plog_server_produce(w, &rq, true);
        break;
    case PLOG_METHOD_CONSUME:
        plog_server_consume(w, &rq);
        break;
    case PLOG_METHOD_CONSUME_STREAM:
        plog_server_consume_stream(w, &rq);
        break;
    default: {
        int n = rq.method_len > 64 ? 64 : (int)rq.method_len;
        plog_server_reply_error(w, PLOG_STATUS_UNIMPLEMENTED, "unknown method \"%.*s\"", n, rq.method);
    }
    }
}

/* stalled: whether the connection pipe was closed for a reply nobody read. */
static bool stalled(plog_server *s, uint32_t pipe)
{
    if (pipe == 0 || atomic_load_explicit(&s->nstalled, memory_order_relaxed) == 0)
        return false; /* no connection's id, or none closed yet: one load per reply */
    for (unsigned i = 0; i < sizeof s->stalled / sizeof s->stalled[0]; i++)
        if (atomic_load_explicit(&s->stalled[i], memory_order_relaxed) == pipe)
            return true;
    return false;
}

/* close_stalled closes w's connection, whose client let w's reply wait
 * reply_timeout_ms: it reads no more, and would hold every worker its requests
 * reached, each with its reply, for as long as it kept the connection open.
 * Closing it ends its other waiting replies too (nng completes them as sent; the
 * stalled list tells them apart). Said once per connection. */
static void close_stalled(struct worker *w)
{
    plog_server *s = w->srv;
    pthread_mutex_lock(&s->mu); /* its replies time out together: one says it */
    bool first = !stalled(s, w->pipe);
    if (first) {
        unsigned i = atomic_fetch_add(&s->nstalled, 1) % (sizeof s->stalled / sizeof s->stalled[0]);
        atomic_store(&s->stalled[i], w->pipe);
    }
    pthread_mutex_unlock(&s->mu);
    if (first)
        plog_logger_logf(s->cfg.logger, PLOG_LOGGER_WARN, "closing a connection that reads no replies",
                         "pipe=%u waited_ms=%u", w->pipe, s->cfg.reply_timeout_ms);
    nng_pipe_close((nng_pipe){.id = w->pipe});
}

static void worker_cb(void *arg)
{
    struct worker *w = arg;
    plog_server *s = w->srv;
    int rv = nng_aio_result(w->aio);
    switch (w->state) {
    case W_RECV:
        if (rv != 0) {
            if (rv == NNG_ECLOSED || rv == NNG_ECANCELED) {
                pthread_mutex_lock(&s->mu);
                w->state = W_IDLE;
                pthread_mutex_unlock(&s->mu);
                return;
            }
            recv_next(w); /* e.g. a pipe error: keep serving */
            return;
        }
        pthread_mutex_lock(&s->mu);
        w->state = W_SEND; /* busy until the reply went out */
        s->busy++;
        pthread_mutex_unlock(&s->mu);
        w->msg = nng_aio_get_msg(w->aio);
        nng_aio_set_msg(w->aio, NULL);
        handle(w);
        return;
    case W_SEND:
        if (rv != 0)
            nng_msg_free(nng_aio_get_msg(w->aio));
        if (rv == NNG_ETIMEDOUT)
            close_stalled(w);
        nng_aio_set_msg(w->aio, NULL);
        recv_next(w);
        return;
    case W_PARKED:
        plog_server_parked_cb(w);
        return;
    default:
        return;
    }
}

static void set_errmsg(char *errmsg, size_t size, const char *fmt, const char *arg)
{
    if (errmsg != NULL)
        snprintf(errmsg, size, fmt, arg);
}

/* limits checks cfg's message size and in-flight budget and sets *budget to the
 * budget in force: when left 0, 256 MiB, or twice a larger message size. */
static int limits(const plog_server_config *cfg, size_t *budget, char *errmsg, size_t size)
{
    size_t maxmsg = cfg->max_msg_bytes != 0 ? cfg->max_msg_bytes : DEFAULT_MAX_MSG;
    if (maxmsg > MAX_MAX_MSG) {
        set_errmsg(errmsg, size, "%s", "max_msg_bytes over 1 GiB");
        return PLOG_EINVAL;
    }
    *budget = cfg->max_inflight_bytes;
    if (*budget == 0)
        *budget = DEFAULT_MAX_INFLIGHT / 2 < maxmsg ? 2 * maxmsg : DEFAULT_MAX_INFLIGHT;
    if (*budget / 2 < maxmsg) {
        if (errmsg != NULL)
            snprintf(errmsg, size,
                     "an in-flight budget of %zu bytes is less than twice the largest message (%zu bytes)",
                     *budget, maxmsg);
        return PLOG_EINVAL;
    }
    return PLOG_OK;
}

int plog_server_config_check(const plog_server_config *cfg, char *errmsg, size_t size)
{
    size_t budget;
    return limits(cfg, &budget, errmsg, size);
}

static int server_open(plog_log *log, const plog_server_config *cfg, bool inproc, plog_server **sp,
                       char *errmsg, size_t size)
{
    size_t budget;
    int rv = limits(cfg, &budget, errmsg, size);
    if (rv != PLOG_OK)
        return rv;
    rv = PLOG_ENOMEM;
    plog_server *s = calloc(1, sizeof *s);
    if (s == NULL)
        return PLOG_ENOMEM;
    s->log = log;
    s->cfg = *cfg;
    if (s->cfg.max_msg_bytes == 0)
        s->cfg.max_msg_bytes = DEFAULT_MAX_MSG;
    if (s->cfg.workers == 0)
        s->cfg.workers = DEFAULT_WORKERS;
    if (s->cfg.max_wait_ms == 0)
        s->cfg.max_wait_ms = DEFAULT_MAX_WAIT_MS;
    if (s->cfg.reply_timeout_ms == 0)
        s->cfg.reply_timeout_ms = DEFAULT_REPLY_TIMEOUT_MS;
    if (s->cfg.reply_timeout_ms > INT32_MAX) /* an nng_duration */
        s->cfg.reply_timeout_ms = INT32_MAX;
    if (s->cfg.max_parked_per_client == 0)
        s->cfg.max_parked_per_client = DEFAULT_MAX_PARKED_PER_CLIENT;
    s->cfg.max_inflight_bytes = budget;
    s->cfg.addr = NULL; /* borrowed for open only */
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    pthread_cond_init(&s->idle_cv, NULL);
    pthread_mutex_init(&s->dedup_mu, NULL);
    atomic_init(&s->visible, plog_log_next_offset(log));
    atomic_init(&s->closing, false);
    atomic_init(&s->nparked_hint, 0);
    atomic_init(&s->inflight, 0);
    atomic_init(&s->nstalled, 0);
    s->dedup = calloc(DEDUP_SLOTS, sizeof *s->dedup);
    s->workers = calloc(s->cfg.workers, sizeof *s->workers);
    if (s->dedup == NULL || s->workers == NULL) {
        set_errmsg(errmsg, size, "%s", "out of memory");
        goto fail;
    }
    if (inproc) {
        s->inproc = true;
        s->workers[0].srv = s;
        s->workers[0].state = W_IDLE;
        if (nng_aio_alloc(&s->workers[0].aio, worker_cb, &s->workers[0]) != 0) {
            set_errmsg(errmsg, size, "%s", "out of memory");
            goto fail;
        }
        s->nworkers = 1;
        if (cfg->sync != PLOG_SYNC_NEVER && (rv = plog_server_committer_start(s)) != PLOG_OK) {
            set_errmsg(errmsg, size, "%s", "cannot start the committer thread");
            goto fail;
        }
        *sp = s;
        return PLOG_OK;
    }

    int nrv = nng_rep0_open(&s->sock);
    if (nrv != 0) {
        rv = plog_rpc_nngerr_err(nrv, "rep socket", errmsg, size);
        goto fail;
    }
    s->sock_open = true;
    nng_socket_set_size(s->sock, NNG_OPT_RECVMAXSZ, 2 * s->cfg.max_msg_bytes);
    for (unsigned i = 0; i < s->cfg.workers; i++) {
        struct worker *w = &s->workers[i];
        w->srv = s;
        w->state = W_IDLE;
        if ((nrv = nng_ctx_open(&w->ctx, s->sock)) != 0) {
            rv = plog_rpc_nngerr_err(nrv, "rep context", errmsg, size);
            goto fail;
        }
        if ((nrv = nng_aio_alloc(&w->aio, worker_cb, w)) != 0) {
            nng_ctx_close(w->ctx);
            rv = plog_rpc_nngerr_err(nrv, "rep context aio", errmsg, size);
            goto fail;
        }
        s->nworkers = i + 1;
    }
    if (cfg->sync != PLOG_SYNC_NEVER && (rv = plog_server_committer_start(s)) != PLOG_OK) {
        set_errmsg(errmsg, size, "%s", "cannot start the committer thread");
        goto fail;
    }
    if ((nrv = nng_listener_create(&s->listener, s->sock, cfg->addr)) == 0)
        s->listener_open = true;
    if (nrv != 0 || (nrv = nng_listener_start(s->listener, 0)) != 0) {
        char what[300];
        snprintf(what, sizeof what, "listen %s", cfg->addr);
        rv = plog_rpc_nngerr_err(nrv, what, errmsg, size);
        goto fail;
    }
    for (unsigned i = 0; i < s->nworkers; i++)
        recv_next(&s->workers[i]);
    *sp = s;
    return PLOG_OK;

fail:
    plog_server_close(s);
    return rv;
}

int plog_server_open(plog_log *log, const plog_server_config *cfg, plog_server **sp, char *errmsg,
                     size_t size)
{
    return server_open(log, cfg, false, sp, errmsg, size);
}

int plog_server_open_inproc(plog_log *log, const plog_server_config *cfg, plog_server **sp, char *errmsg,
                            size_t size)
{
    plog_server_config c = *cfg;
    c.addr = NULL;
    return server_open(log, &c, true, sp, errmsg, size);
}

int plog_server_inproc_call(plog_server *s, const void *req, size_t len, const char *peer, nng_msg **reply)
{
    nng_msg *m;
    if (nng_msg_alloc(&m, len) != 0)
        return PLOG_ENOMEM;
    if (len > 0)
        memcpy(nng_msg_body(m), req, len);
    struct worker *w = &s->workers[0];
    pthread_mutex_lock(&s->mu);
    s->inproc_done = false;
    s->inproc_reply = NULL;
    s->inproc_peer = peer != NULL ? peer : "";
    w->state = W_SEND; /* busy until the reply went out, as worker_cb does */
    s->busy++;
    pthread_mutex_unlock(&s->mu);
    w->msg = m;
    handle(w);
    pthread_mutex_lock(&s->mu);
    while (!s->inproc_done)
        pthread_cond_wait(&s->idle_cv, &s->mu);
    *reply = s->inproc_reply;
    s->inproc_reply = NULL;
    pthread_mutex_unlock(&s->mu);
    return PLOG_OK;
}

void plog_server_close(plog_server *s)
{
    if (s == NULL)
        return;
    /* 1. New requests are answered UNAVAILABLE; parked long polls answer with what
     * they have. The contexts keep receiving: a request left unreceived in a REP
     * pipe at close is leaked by nng 1.5.2. */
    atomic_store(&s->closing, true);
    plog_server_wake(s, true);
    /* 2. Let in-flight requests (commits, replies) finish, within a grace period. */
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += CLOSE_GRACE_MS / 1000;
    pthread_mutex_lock(&s->mu);
    while (s->busy > 0)
        if (pthread_cond_timedwait(&s->idle_cv, &s->mu, &until) != 0)
            break;
    if (s->busy > 0)
        plog_logger_logf(s->cfg.logger, PLOG_LOGGER_WARN, "closing with requests in flight", "busy=%u",
                         s->busy);
    pthread_mutex_unlock(&s->mu);
    /* 3. The committer answers whatever is still queued, then exits. */
    plog_server_committer_stop(s);
    /* 4. Stop every context (nng_aio_stop waits for its callback), then the
     * socket. */
    pthread_mutex_lock(&s->mu);
    s->stopping = true;
    pthread_mutex_unlock(&s->mu);
    for (unsigned i = 0; i < s->nworkers; i++)
        nng_aio_stop(s->workers[i].aio);
    for (unsigned i = 0; i < s->nworkers; i++) {
        struct worker *w = &s->workers[i];
        nng_msg *m = nng_aio_get_msg(w->aio); /* a send refused by the stopped aio */
        if (m != NULL)
            nng_msg_free(m);
        if (w->msg != NULL)
            nng_msg_free(w->msg);
        if (w->pr != NULL)
            log__v1__produce_request__free_unpacked(w->pr, NULL);
        nng_aio_free(w->aio);
        if (!s->inproc)
            nng_ctx_close(w->ctx);
    }
    if (s->sock_open)
        nng_close(s->sock);
    free(s->workers);
    free(s->dedup);
    pthread_mutex_destroy(&s->dedup_mu);
    pthread_cond_destroy(&s->cv);
    pthread_cond_destroy(&s->idle_cv);
    pthread_mutex_destroy(&s->mu);
    free(s);
}
