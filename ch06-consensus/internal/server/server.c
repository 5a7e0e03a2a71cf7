/* server.c - the REP socket, its workers and the dispatch of requests (Go:
 * server.go's grpcServer). See server_int.h for the worker life cycle.
 *
 * Limits: a request larger than max_msg_bytes is answered RESOURCE_EXHAUSTED with
 * both sizes in the message. NNG_OPT_RECVMAXSZ is set to twice that, so nng reads
 * a message up to that size (and we can answer it clearly) but drops the
 * connection on anything bigger without buffering it.
 *
 * ch04: every request is authorized in handle() before its method runs (see
 * server.h), and finished in finish() when its reply has gone out: one metrics
 * observation and one request-log line, whatever the outcome. */
#include "internal/server/server.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>

#include "internal/err/err.h"
#include "internal/logger/logger.h"
#include "internal/metrics/reqlog.h"
#include "internal/rpc/closer.h"
#include "internal/rpc/nngerr.h"
#include "internal/rpc/status.h"
#include "internal/server/server_int.h"
#include "internal/tls/config.h"
#include "internal/tls/peer.h"

#define DEFAULT_MAX_MSG (4u << 20)
#define DEFAULT_WORKERS 256
#define DEFAULT_MAX_WAIT_MS 30000
#define CLOSE_GRACE_MS 3000
#define CLOSE_SOCKET_MS 2000 /* plog_server_close waits this long for the socket */
#define DEFAULT_MAX_PARKED_PER_CLIENT 32
#define DEFAULT_MAX_INFLIGHT (256u << 20)
/* A reply waits behind the earlier ones on its connection while the client does not
 * read: past this, the connection is closed (see worker_cb). It bounds a pipelining
 * client too, which must read what it asked for at that pace: 30 s covers a
 * client's default deadline (10 s) three times over. */
#define DEFAULT_REPLY_TIMEOUT_MS 30000
#define DEFAULT_MAX_CONNECTIONS 4096
#define DEFAULT_HANDSHAKE_TIMEOUT_MS 5000
/* The largest max_msg_bytes: RECVMAXSZ is twice it, and both must fit a size_t
 * and nng's 32-bit length prefixes with room to spare. */
#define MAX_MAX_MSG ((size_t)1 << 30)

/* Short method names for metrics and logs, indexed by plog_rpc_method. */
static const char *const method_names[] = {
    [PLOG_METHOD_UNKNOWN] = "unknown",
    [PLOG_METHOD_PRODUCE] = "Produce",
    [PLOG_METHOD_CONSUME] = "Consume",
    [PLOG_METHOD_CONSUME_STREAM] = "ConsumeStream",
    [PLOG_METHOD_PRODUCE_STREAM] = "ProduceStream",
    [PLOG_METHOD_GET_MEMBERS] = "GetMembers",
    [PLOG_METHOD_GET_SERVERS] = "GetServers",
    [PLOG_METHOD_REMOVE_SERVER] = "RemoveServer",
};

int plog_server_metrics_new(plog_metrics **mp)
{
    /* plog_metrics method i is plog_rpc_method i + 1. */
    return plog_metrics_new(method_names + 1, PLOG_METHOD_REMOVE_SERVER, mp);
}

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* finish accounts for a request whose reply was sent (or dropped): metrics and
 * the request log. Runs before the worker takes its next request. */
static void finish(struct worker *w)
{
    plog_server *s = w->srv;
    uint64_t dt = (uint64_t)(now_ns() - w->t0_ns);
    if (s->cfg.metrics != NULL) {
        int m = w->method != PLOG_METHOD_UNKNOWN ? (int)w->method - 1 : PLOG_METRICS_MAX_METHODS;
        plog_metrics_observe(s->cfg.metrics, m, w->code, dt, w->bytes_in, w->bytes_out);
    }
    if (s->cfg.log_requests) {
        plog_metrics_reqlog_entry e = {
            .method = method_names[w->method],
            .status = plog_rpc_status_name(w->code),
            .latency_ns = dt,
            .peer = w->peer,
            .bytes_in = w->bytes_in,
            .bytes_out = w->bytes_out,
            .err = w->code != PLOG_STATUS_OK ? w->error : NULL,
        };
        plog_metrics_reqlog(s->cfg.logger, PLOG_LOGGER_INFO, &e);
    }
}

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
    w->bytes_out = nng_msg_len(m);
    w->state = W_SEND;
    if (w->srv->inproc) {
        pthread_mutex_lock(&w->srv->mu);
        w->srv->inproc_reply = m;
        pthread_mutex_unlock(&w->srv->mu);
        finish(w);
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
    w->code = code;
    snprintf(w->error, sizeof w->error, "%s", text);
    if (plog_rpc_reply_begin(w->msg, code, text, 0) != PLOG_OK) {
        plog_server_done_silently(w);
        return;
    }
    plog_server_reply(w);
}

void plog_server_reply_not_leader(struct worker *w)
{
    plog_server *s = w->srv;
    char leader[128] = "";
    if (s->cfg.leader != NULL)
        s->cfg.leader(s->cfg.members_arg, leader, sizeof leader);
    plog_server_reply_error(w, PLOG_STATUS_FAILED_PRECONDITION, "not leader; %s%s",
                            leader[0] != '\0' ? "leader at " : "no leader known", leader);
}

void plog_server_done_silently(struct worker *w)
{
    if (w->msg != NULL)
        nng_msg_free(w->msg);
    w->msg = NULL;
    w->code = PLOG_STATUS_INTERNAL;
    snprintf(w->error, sizeof w->error, "no reply: out of memory");
    w->bytes_out = 0;
    finish(w);
    recv_next(w);
}

void plog_server_drop(struct worker *w)
{
    plog_server *s = w->srv;
    nng_msg_free(w->msg);
    w->msg = NULL;
    /* Not a finished request: the first copy's reply is counted when it goes. */
    if (s->cfg.metrics != NULL)
        plog_metrics_gauge_add(s->cfg.metrics, PLOG_GAUGE_RESENDS_DROPPED, 1);
    plog_logger_log(s->cfg.logger, PLOG_LOGGER_DEBUG, "resend dropped: its first copy is in flight", "peer",
                    w->peer, NULL);
    recv_next(w);
}

/* ident_hash: FNV-1a of a verified identity, never 0 (0 means none). Names come
 * from certificates our CA signed, so a collision cannot be chosen by a client. */
static uint64_t ident_hash(const char *cn)
{
    if (cn[0] == '\0')
        return 0;
    uint64_t h = 0xcbf29ce484222325ull;
    for (const unsigned char *p = (const unsigned char *)cn; *p != '\0'; p++)
        h = (h ^ *p) * 0x100000001b3ull;
    return h != 0 ? h : 1;
}

bool plog_server_authorize(struct worker *w)
{
    plog_server *s = w->srv;
    if (s->cfg.insecure)
        return true;
    const char *action;
    switch (w->method) {
    case PLOG_METHOD_PRODUCE:
    case PLOG_METHOD_PRODUCE_STREAM:
        action = PLOG_AUTH_PRODUCE;
        break;
    case PLOG_METHOD_CONSUME:
    case PLOG_METHOD_CONSUME_STREAM:
    case PLOG_METHOD_GET_MEMBERS: /* who may read the log may see the cluster */
    case PLOG_METHOD_GET_SERVERS:
        action = PLOG_AUTH_CONSUME;
        break;
    case PLOG_METHOD_REMOVE_SERVER:
        action = PLOG_SERVER_ADMIN_ACTION;
        break;
    default:
        return true; /* answered UNIMPLEMENTED, which reveals nothing */
    }
    if (w->peer[0] == '\0') {
        plog_server_reply_error(w, PLOG_STATUS_UNAUTHENTICATED,
                                "the client certificate on this connection names no one: its subject "
                                "needs exactly one CN, of at most %d bytes",
                                PLOG_TLS_CN_SIZE - 1);
        return false;
    }
    if (plog_auth_authorize(s->cfg.acl, w->peer, PLOG_AUTH_OBJECT_ANY, action) != PLOG_OK) {
        char text[PLOG_TLS_CN_SIZE + 64];
        plog_auth_denial(w->peer, PLOG_AUTH_OBJECT_ANY, action, text, sizeof text);
        plog_server_reply_error(w, PLOG_STATUS_PERMISSION_DENIED, "%s", text);
        return false;
    }
    return true;
}

/* get_members answers GetMembers (ch05), or GetServers (ch06), with what the
 * agent's callback encodes. */
static void get_members(struct worker *w, int (*encode)(void *arg, uint8_t **body, size_t *len))
{
    plog_server *s = w->srv;
    uint8_t *body;
    size_t len;
    if (encode == NULL) {
        plog_server_reply_error(w, PLOG_STATUS_UNIMPLEMENTED, "this server is not part of a cluster");
        return;
    }
    if (encode(s->cfg.members_arg, &body, &len) != PLOG_OK) {
        plog_server_reply_error(w, PLOG_STATUS_UNAVAILABLE, "membership is not running");
        return;
    }
    if (plog_rpc_reply_begin(w->msg, 0, NULL, len) != PLOG_OK || nng_msg_append(w->msg, body, len) != 0) {
        free(body);
        plog_server_done_silently(w);
        return;
    }
    free(body);
    plog_server_reply(w);
}

/* remove_server answers RemoveServer (ch06) with what the agent's callback says. */
static void remove_server(struct worker *w, const plog_rpc_request *rq)
{
    plog_server *s = w->srv;
    if (s->cfg.remove_server == NULL) {
        plog_server_reply_error(w, PLOG_STATUS_UNIMPLEMENTED, "this server is not part of a Raft cluster");
        return;
    }
    Log__V1__RemoveServerRequest *req = log__v1__remove_server_request__unpack(NULL, rq->body_len, rq->body);
    if (req == NULL || req->id[0] == '\0') {
        if (req != NULL)
            log__v1__remove_server_request__free_unpacked(req, NULL);
        plog_server_reply_error(w, PLOG_STATUS_INVALID_ARGUMENT, "RemoveServer needs the server's name (id)");
        return;
    }
    char why[256] = "";
    int rv = s->cfg.remove_server(s->cfg.members_arg, req->id, why, sizeof why);
    log__v1__remove_server_request__free_unpacked(req, NULL);
    if (rv == PLOG_ENOTLEADER) {
        plog_server_reply_not_leader(w);
        return;
    }
    if (rv != PLOG_OK) {
        plog_server_reply_error(w,
                                rv == PLOG_ERANGE   ? PLOG_STATUS_NOT_FOUND
                                : rv == PLOG_EINVAL ? PLOG_STATUS_FAILED_PRECONDITION
                                                    : plog_rpc_status_from_err(rv),
                                "%s", why);
        return;
    }
    if (plog_rpc_reply_begin(w->msg, 0, NULL, 0) != PLOG_OK) { /* RemoveServerResponse{}: no bytes */
        plog_server_done_silently(w);
        return;
    }
    plog_server_reply(w);
}

void plog_server_publish(plog_server *s, uint64_t next)
{
    plog_server_advance(s, next);
}

/* handle serves one request: checks size, envelope, deadline, then the method. */
static void handle(struct worker *w)
{
    plog_server *s = w->srv;
    size_t len = nng_msg_len(w->msg);
    w->t0_ns = now_ns();
    w->method = PLOG_METHOD_UNKNOWN;
    w->code = PLOG_STATUS_OK;
    w->bytes_in = len;
    w->bytes_out = 0;
    w->error[0] = '\0';
    /* The identity of the connection this request came on (peer.h). */
    if (s->inproc)
        snprintf(w->peer, sizeof w->peer, "%s", s->inproc_peer);
    else if (s->cfg.tls == NULL || plog_tls_peer_identity(w->msg, w->peer, sizeof w->peer) != PLOG_OK)
        w->peer[0] = '\0';
    w->ident = ident_hash(w->peer);
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
    w->method = plog_rpc_method_lookup(rq.method, rq.method_len);
    if (!plog_server_authorize(w))
        return;
    switch (w->method) {
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
    case PLOG_METHOD_GET_MEMBERS:
        get_members(w, s->cfg.members);
        break;
    case PLOG_METHOD_GET_SERVERS:
        get_members(w, s->cfg.servers);
        break;
    case PLOG_METHOD_REMOVE_SERVER:
        remove_server(w, &rq);
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
        if (rv != 0) {
            nng_msg_free(nng_aio_get_msg(w->aio));
            /* The client never got this reply, whatever it said: not OK. */
            if (w->code == PLOG_STATUS_OK)
                w->code = PLOG_STATUS_UNAVAILABLE;
            snprintf(w->error, sizeof w->error, "reply not sent: %s", nng_strerror(rv));
            w->bytes_out = 0;
        } else if (stalled(s, w->pipe)) { /* dropped when close_stalled closed it */
            w->code = PLOG_STATUS_UNAVAILABLE;
            snprintf(w->error, sizeof w->error,
                     "reply not sent: the connection was closed: its client read no replies for %u ms",
                     s->cfg.reply_timeout_ms);
            w->bytes_out = 0;
        }
        if (rv == NNG_ETIMEDOUT)
            close_stalled(w);
        nng_aio_set_msg(w->aio, NULL);
        finish(w);
        recv_next(w);
        return;
    case W_PARKED:
        plog_server_parked_cb(w);
        return;
    default:
        return;
    }
}

/* pipe_cb sees every connection come and go. ADD_PRE records a TLS connection's
 * verified identity (peer.h); connections are counted from ADD_PRE to REM_POST,
 * the two events nng pairs (a pipe rejected after ADD_PRE still gets REM_POST). */
static void pipe_cb(nng_pipe p, nng_pipe_ev ev, void *arg)
{
    plog_server *s = arg;
    if (s->cfg.tls != NULL)
        plog_tls_peer_on_event(p, ev, NULL);
    pthread_mutex_lock(&s->pipe_mu);
    if (s->cfg.metrics != NULL && (ev == NNG_PIPE_EV_ADD_PRE || ev == NNG_PIPE_EV_REM_POST))
        plog_metrics_gauge_add(s->cfg.metrics, PLOG_GAUGE_OPEN_CONNECTIONS,
                               ev == NNG_PIPE_EV_ADD_PRE ? 1 : -1);
    pthread_mutex_unlock(&s->pipe_mu);
}

/* The TLS handshake counters: process-wide engine counts (internal/tls/engine.h),
 * read at every scrape. Index -1 is the completed handshakes. */
static const int tls_stat_index[] = {-1,
                                     PLOG_TLS_FAIL_NO_CERTIFICATE,
                                     PLOG_TLS_FAIL_BAD_CERTIFICATE,
                                     PLOG_TLS_FAIL_REFUSED_BY_PEER,
                                     PLOG_TLS_FAIL_PROTOCOL,
                                     PLOG_TLS_FAIL_TIMEOUT,
                                     PLOG_TLS_FAIL_LINGER_ENDED,
                                     PLOG_TLS_FAIL_OVER_CAPACITY};

static int64_t tls_stat(void *arg)
{
    int i = *(const int *)arg;
    plog_tls_stats st;
    plog_tls_stats_get(&st);
    return (int64_t)(i < 0 ? st.handshakes : st.failed[i]);
}

static void bind_tls_stats(plog_server *s, bool on)
{
    if (s->cfg.metrics == NULL || s->cfg.tls == NULL)
        return;
    for (int k = 0; k < (int)(sizeof tls_stat_index / sizeof tls_stat_index[0]); k++)
        plog_metrics_gauge_bind(s->cfg.metrics, (plog_metrics_gauge)(PLOG_GAUGE_TLS_OK + k),
                                on ? tls_stat : NULL, on ? (void *)&tls_stat_index[k] : NULL);
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
    int rv = PLOG_ENOMEM;
    bool tls_addr = cfg->addr != NULL && plog_tls_url_is_tls(cfg->addr);
    if (!inproc && (tls_addr != (cfg->tls != NULL) || (cfg->acl != NULL && cfg->tls == NULL))) {
        set_errmsg(errmsg, size, "%s",
                   tls_addr           ? "a tls+tcp:// address needs a TLS config (certificate, key, CA)"
                   : cfg->tls != NULL ? "a TLS config needs a tls+tcp:// address"
                                      : "an ACL needs TLS: client certificates name its subjects");
        return PLOG_EINVAL;
    }
    /* Fail closed: no ACL means no access, unless asked for in so many words. */
    if (cfg->acl == NULL && !cfg->insecure) {
        set_errmsg(errmsg, size, "%s",
                   "no ACL: refusing to serve without authorization (set insecure to allow "
                   "every request)");
        return PLOG_EINVAL;
    }
    if (cfg->acl != NULL && cfg->insecure) {
        set_errmsg(errmsg, size, "%s", "an ACL and insecure together: choose one");
        return PLOG_EINVAL;
    }
    size_t budget;
    if ((rv = limits(cfg, &budget, errmsg, size)) != PLOG_OK)
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
    if (s->cfg.max_connections == 0)
        s->cfg.max_connections = DEFAULT_MAX_CONNECTIONS;
    if (s->cfg.handshake_timeout_ms == 0)
        s->cfg.handshake_timeout_ms = DEFAULT_HANDSHAKE_TIMEOUT_MS;
    s->cfg.addr = NULL; /* borrowed for open only */
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    pthread_cond_init(&s->idle_cv, NULL);
    pthread_mutex_init(&s->dedup_mu, NULL);
    pthread_mutex_init(&s->pipe_mu, NULL);
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
    /* Before the listener starts: no connection may miss its ADD_PRE. */
    if ((nrv = nng_pipe_notify(s->sock, NNG_PIPE_EV_ADD_PRE, pipe_cb, s)) != 0 ||
        (nrv = nng_pipe_notify(s->sock, NNG_PIPE_EV_REM_POST, pipe_cb, s)) != 0) {
        rv = plog_rpc_nngerr_err(nrv, "pipe notify", errmsg, size);
        goto fail;
    }
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
    if (cfg->tls != NULL &&
        plog_tls_config_limits(cfg->tls, s->cfg.max_connections, s->cfg.handshake_timeout_ms) != PLOG_OK) {
        rv = PLOG_EINVAL;
        set_errmsg(errmsg, size, "%s", "the TLS config is not a server config from plog_tls_config_server");
        goto fail;
    }
    bind_tls_stats(s, true);
    if (cfg->sync != PLOG_SYNC_NEVER && (rv = plog_server_committer_start(s)) != PLOG_OK) {
        set_errmsg(errmsg, size, "%s", "cannot start the committer thread");
        goto fail;
    }
    if ((nrv = nng_listener_create(&s->listener, s->sock, cfg->addr)) == 0)
        s->listener_open = true;
    if (nrv != 0 ||
        (cfg->tls != NULL && (nrv = nng_listener_set_ptr(s->listener, NNG_OPT_TLS_CONFIG, cfg->tls)) != 0) ||
        (nrv = nng_listener_start(s->listener, 0)) != 0) {
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
    c.tls = NULL;
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

/* server_free frees what open allocated, once no nng callback can run. */
static void server_free(plog_server *s)
{
    free(s->workers);
    free(s->dedup);
    pthread_mutex_destroy(&s->pipe_mu);
    pthread_mutex_destroy(&s->dedup_mu);
    pthread_cond_destroy(&s->cv);
    pthread_cond_destroy(&s->idle_cv);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

/* close_socket closes the socket on the closer thread; every pipe callback has
 * returned once nng_close has, so s goes then. */
static void close_socket(void *arg)
{
    plog_server *s = arg;
    nng_close(s->sock);
    server_free(s);
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
    /* 4. Stop every context (nng_aio_stop waits for its callback). */
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
    /* 5. The caller may free the registry once close returns: no pipe callback
     * counts a connection from here on. */
    bind_tls_stats(s, false);
    pthread_mutex_lock(&s->pipe_mu);
    s->cfg.metrics = NULL;
    pthread_mutex_unlock(&s->pipe_mu);
    if (!s->sock_open) {
        server_free(s);
        return;
    }
    /* 6. The socket closes on the closer thread, which frees s after it: a TLS
     * socket's nng_close can wait for good on a stuck reaper (internal/rpc/closer.h),
     * and a server told to stop must stop. If the closes are not done in time, the
     * socket and s are left to the closer (a leak, or a late close that touches
     * nothing of the caller's: the workers and the committer are gone). */
    plog_logger *lg = s->cfg.logger;
    plog_rpc_closer_submit(close_socket, s);
    if (!plog_rpc_closer_wait(CLOSE_SOCKET_MS))
        plog_logger_logf(lg, PLOG_LOGGER_ERROR, "the RPC socket did not close; left open",
                         "wait_ms=%d hint=\"nng's reaper is stuck\"", CLOSE_SOCKET_MS);
}
