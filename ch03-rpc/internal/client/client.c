/* client.c - dialing, unary calls and their status mapping (client.h).
 *
 * A call takes a context and an aio from a small pool (opening a REQ context per
 * call would allocate), sends the envelope and sleeps once, on its slot's
 * semaphore, until the reply (or a failure, or the deadline) is there. The aio's
 * callback, on an nng thread, turns a finished send into the receive of the reply
 * and posts the semaphore when the call is over.
 *
 * Sends are combined: while any send of this client is still in nng's hands, a
 * new call does not enter nng itself but queues its request, and the nng thread
 * that finishes a send starts every queued one. With many calling threads on few
 * cores, callers entering nng each (the REQ socket's lock is held across the
 * sendmsg, plus nng's task queue and expiry locks) made them and nng's threads
 * sleep and wake several times per call; this way the sends run back to back on
 * nng's busy threads, as asynchronous contexts do, and a caller only sleeps for
 * its answer (README, "The blocking client under many threads"). A send finishes
 * once the message is handed to the connection, so a queued request waits behind
 * sends only, never behind another call's slow reply. The deadline also travels
 * in the envelope, so the server can refuse work nobody waits for any more.
 *
 * Produces are coalesced (plog_client_produce): a client keeps at most
 * PRODUCES_IN_FLIGHT produce requests in flight; a produce that finds them all
 * busy queues, and when one of them ends, the nng thread that ends it sends
 * everything queued (up to COALESCE_MAX_BYTES of values) as one ProduceStream
 * request, before it wakes the callers of the one that ended; a batch the
 * server refuses RESOURCE_EXHAUSTED is sent again produce by produce. A caller sleeps
 * once, for its outcome; the server appends and commits the batch at once, and
 * each caller gets its own record's offset. The queue costs nothing a caller
 * would not pay anyway (it sleeps once either way) and saves the client and the
 * server a request per record coalesced (server_bench, mode=threads). */
#include "internal/client/client.h"

#include <assert.h>
#include <fcntl.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <nng/protocol/reqrep0/req.h>

#include "internal/err/err.h"
#include "internal/rpc/nngerr.h"

#define DEFAULT_TIMEOUT_MS 10000
#define DEFAULT_MAX_MSG (4u << 20)
#define DEFAULT_RECONNECT_MAX_MS 1000
#define POOL_MAX 64
/* Produce coalescing (plog_client_produce): how many produce requests one client
 * keeps in flight before produces queue for a batch, and what a batch takes: at
 * most COALESCE_MAX_BYTES of values and half the client's max_msg_bytes, so a
 * server configured like its clients never sees a batch over its limit. A server
 * with a smaller limit (or a full in-flight budget) refuses a batch
 * RESOURCE_EXHAUSTED before appending any of it; its produces then go alone.
 * (Beyond twice its limit a server does not read a message at all and drops the
 * connection: with the client's defaults, a server limit under 8 KiB.) */
#define PRODUCES_IN_FLIGHT 2
#define COALESCE_MAX_VALUE (4u << 10)  /* larger values always go alone */
#define COALESCE_MAX_BYTES (16u << 10) /* of values per batch */
#define COALESCE_MAX_RECORDS 1024

/* A produce of a calling thread, while it waits for a batch (see
 * plog_client_produce): on its caller's stack. */
struct produce_wait {
    const void *value; /* borrowed from the caller */
    size_t len;
    uint64_t deadline;         /* unix ms */
    struct produce_wait *next; /* in c->pq, or in its batch */
    bool batched;              /* its request carried other produces too */
    sem_t done;                /* posted when its outcome is in */
    int code;                  /* the outcome */
    uint64_t off;
    plog_rpc_status st;
};

struct call_slot {
    plog_client *c;
    nng_ctx ctx;
    nng_aio *aio;               /* callback call_cb */
    struct call_slot *next;     /* in the pool, or in the send queue */
    nng_msg *req;               /* the request, until its send starts */
    bool sending;               /* the aio carries the request (else the reply) */
    uint64_t deadline;          /* the call's, unix ms */
    sem_t done;                 /* posted when the call is over */
    struct produce_wait *batch; /* the produces it carries (else a caller waits on done) */
};

/* A FIFO of call slots (the send queue) or of produces (the produce queue),
 * linked through the items' next pointer, at offset link in them; under c->mu. */
struct fifo {
    void *head, *tail;
    size_t link;
};

struct plog_client {
    nng_socket sock;
    plog_client_config cfg;
    char addr[256];
    uint64_t client_id;
    atomic_uint_fast64_t seq;
    atomic_int added[4];   /* the ids of the live connections' pipes (0: a free slot) */
    atomic_bool refused;   /* a pipe was dropped before it was added */
    atomic_int ncallbacks; /* call_cb running; see callbacks_wait */
    pthread_mutex_t mu;    /* the pool, both queues, nsending and nproducing */
    struct call_slot *pool;
    unsigned npool;
    struct fifo sendq;   /* requests waiting for a send to finish */
    unsigned nsending;   /* sends started and not finished */
    struct fifo pq;      /* produces waiting for a batch */
    unsigned nproducing; /* produce requests in flight */
};

static void slot_free(struct call_slot *s);
static void callbacks_wait(plog_client *c);
static void batch_end(struct call_slot *s);

/* pipe_added and pipe_removed keep added, the pipes counted live. nng sends
 * REM_POST for every pipe it sent ADD_PRE for, also for one that the REQ protocol
 * refused between the two and never added (ADD_POST): a peer of another nng
 * protocol. So only the REM_POST of an added pipe frees its slot (counted alike,
 * each refused pipe took the live count one lower, for good, and a call there
 * waited out its deadline as if a server held it); one of a pipe never added is
 * noted instead (refused), for the call's error. The one dialer holds one pipe at a
 * time, but the REM_POST of the last may come after the ADD_POST of the next (nng's
 * reaper runs it): hence a few slots. A connection the peer cuts off during the SP
 * handshake gives no pipe event at all, so a call may end before any refused pipe
 * was seen ("no connection" without the reason). */
static void pipe_added(plog_client *c, nng_pipe p)
{
    for (size_t i = 0; i < sizeof c->added / sizeof c->added[0]; i++) {
        int free_slot = 0;
        if (atomic_compare_exchange_strong(&c->added[i], &free_slot, nng_pipe_id(p)))
            break;
    }
    atomic_store(&c->refused, false); /* the server speaks REQ/REP after all */
}

static void pipe_removed(plog_client *c, nng_pipe p)
{
    for (size_t i = 0; i < sizeof c->added / sizeof c->added[0]; i++) {
        int mine = nng_pipe_id(p);
        if (atomic_compare_exchange_strong(&c->added[i], &mine, 0))
            return;
    }
    atomic_store(&c->refused, true);
}

/* pipes_live says whether the client holds a connection the REQ protocol added. */
static bool pipes_live(plog_client *c)
{
    for (size_t i = 0; i < sizeof c->added / sizeof c->added[0]; i++)
        if (atomic_load(&c->added[i]) != 0)
            return true;
    return false;
}

static void pipe_cb(nng_pipe p, nng_pipe_ev ev, void *arg)
{
    plog_client *c = arg;
    if (ev == NNG_PIPE_EV_ADD_POST)
        pipe_added(c, p);
    else if (ev == NNG_PIPE_EV_REM_POST)
        pipe_removed(c, p);
}

/* random_id draws the client id: /dev/urandom, or time and pid if that fails. */
static uint64_t random_id(void)
{
    uint64_t id = 0;
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        if (read(fd, &id, sizeof id) != (ssize_t)sizeof id)
            id = 0;
        close(fd);
    }
    if (id == 0) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        id = ((uint64_t)ts.tv_nsec << 32) ^ (uint64_t)ts.tv_sec ^ ((uint64_t)getpid() << 48);
    }
    return id != 0 ? id : 1;
}

/* A dial's guard: closes the dialer once the time is up. */
struct dial_guard {
    nng_dialer d;
    nng_aio *aio;
    atomic_bool fired;
};

static void dial_guard_cb(void *arg)
{
    struct dial_guard *g = arg;
    if (nng_aio_result(g->aio) == 0) {
        atomic_store(&g->fired, true);
        nng_dialer_close(g->d); /* fails the synchronous start with NNG_ECLOSED */
    }
}

/* dial_within starts d synchronously, for at most ms: nng's own wait for the first
 * connection has no bound of ours (a server that accepts and then says nothing,
 * paused or wedged, held it for nng's 10 s negotiation timeout over tcp://, and
 * over TLS for as long as the server stayed paused). *late when the time ran out
 * (d is closed then). */
static int dial_within(nng_dialer d, uint32_t ms, bool *late)
{
    struct dial_guard g = {.d = d};
    atomic_init(&g.fired, false);
    if (nng_aio_alloc(&g.aio, dial_guard_cb, &g) != 0)
        return nng_dialer_start(d, 0);
    nng_sleep_aio((nng_duration)ms, g.aio);
    int rv = nng_dialer_start(d, 0);
    nng_aio_stop(g.aio); /* cancels the guard, or waits for it to finish */
    nng_aio_free(g.aio);
    *late = atomic_load(&g.fired);
    return rv;
}

int plog_client_open(const char *addr, const plog_client_config *cfg, plog_client **cp, plog_rpc_status *st)
{
    plog_client *c = calloc(1, sizeof *c);
    if (c == NULL)
        return plog_rpc_status_set(st, PLOG_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    if (cfg != NULL)
        c->cfg = *cfg;
    assert(c->cfg.timeout_ms <= PLOG_CLIENT_MAX_TIMEOUT_MS);
    if (c->cfg.timeout_ms == 0)
        c->cfg.timeout_ms = DEFAULT_TIMEOUT_MS;
    if (c->cfg.max_msg_bytes == 0)
        c->cfg.max_msg_bytes = DEFAULT_MAX_MSG;
    if (c->cfg.reconnect_max_ms == 0)
        c->cfg.reconnect_max_ms = DEFAULT_RECONNECT_MAX_MS;
    snprintf(c->addr, sizeof c->addr, "%s", addr);
    c->client_id = random_id();
    atomic_init(&c->seq, 0);
    for (size_t i = 0; i < sizeof c->added / sizeof c->added[0]; i++)
        atomic_init(&c->added[i], 0);
    atomic_init(&c->refused, false);
    atomic_init(&c->ncallbacks, 0);
    pthread_mutex_init(&c->mu, NULL);
    c->sendq.link = offsetof(struct call_slot, next);
    c->pq.link = offsetof(struct produce_wait, next);

    int rv = nng_req0_open(&c->sock);
    if (rv != 0) {
        free(c);
        return plog_rpc_status_set(st, plog_rpc_nngerr_status(rv), "req socket: %s", nng_strerror(rv));
    }
    /* docs/NNG.md pitfall 2: contexts copy the resend time at open, so set it first. */
    nng_socket_set_ms(c->sock, NNG_OPT_REQ_RESENDTIME,
                      c->cfg.resend_ms > 0 ? c->cfg.resend_ms : NNG_DURATION_INFINITE);
    nng_socket_set_size(c->sock, NNG_OPT_RECVMAXSZ, 2 * c->cfg.max_msg_bytes);
    nng_socket_set_ms(c->sock, NNG_OPT_RECONNMINT, 20);
    nng_socket_set_ms(c->sock, NNG_OPT_RECONNMAXT, (nng_duration)c->cfg.reconnect_max_ms);
    nng_pipe_notify(c->sock, NNG_PIPE_EV_ADD_POST, pipe_cb, c);
    nng_pipe_notify(c->sock, NNG_PIPE_EV_REM_POST, pipe_cb, c);

    nng_dialer d;
    if ((rv = nng_dialer_create(&d, c->sock, addr)) != 0) {
        plog_client_close(c);
        return plog_rpc_status_set(st, PLOG_STATUS_INVALID_ARGUMENT, "bad address \"%s\": %s", addr,
                                   nng_strerror(rv));
    }
    nng_dialer_set_ms(d, NNG_OPT_RECONNMINT, 20);
    nng_dialer_set_ms(d, NNG_OPT_RECONNMAXT, (nng_duration)c->cfg.reconnect_max_ms);
    /* A synchronous start fails fast when nothing listens; after a success (or with
     * NONBLOCK) the dialer keeps reconnecting in the background. */
    bool late = false;
    rv = c->cfg.wait_for_server ? nng_dialer_start(d, NNG_FLAG_NONBLOCK)
                                : dial_within(d, c->cfg.timeout_ms, &late);
    if (late) {
        unsigned ms = c->cfg.timeout_ms;
        plog_client_close(c);
        return plog_rpc_status_set(st, PLOG_STATUS_DEADLINE_EXCEEDED,
                                   "cannot connect to %s within %u ms (no answer to the handshake)", addr,
                                   ms);
    }
    if (rv != 0) {
        int code = plog_rpc_nngerr_status(rv);
        /* The dialer took the address; at the dial NNG_EADDRINVAL means its host
         * name did not resolve: a server out of reach, not a usage error. */
        if (code == PLOG_STATUS_UNKNOWN || rv == NNG_EADDRINVAL)
            code = PLOG_STATUS_UNAVAILABLE;
        plog_client_close(c);
        return plog_rpc_status_set(st, code, "cannot connect to %s: %s", addr,
                                   rv == NNG_EADDRINVAL ? "its host name does not resolve"
                                                        : nng_strerror(rv));
    }
    *cp = c;
    return plog_rpc_status_set(st, PLOG_STATUS_OK, "%s", "");
}

void plog_client_close(plog_client *c)
{
    if (c == NULL)
        return;
    callbacks_wait(c);
    nng_close(c->sock); /* fails the calls in flight; stream.c owns its contexts */
    while (c->pool != NULL) {
        struct call_slot *s = c->pool;
        c->pool = s->next;
        slot_free(s);
    }
    pthread_mutex_destroy(&c->mu);
    free(c);
}

uint64_t plog_client_id(const plog_client *c)
{
    return c->client_id;
}

const plog_client_config *plog_client_config_of(const plog_client *c)
{
    return &c->cfg;
}

nng_socket plog_client_socket(const plog_client *c)
{
    return c->sock;
}

uint64_t plog_client_next_seq(plog_client *c)
{
    return atomic_fetch_add(&c->seq, 1) + 1;
}

/* set_timeout gives the slot's aio what is left of the call's deadline. */
static void set_timeout(struct call_slot *s)
{
    uint64_t now = plog_rpc_now_unix_ms();
    nng_aio_set_timeout(s->aio, now < s->deadline ? (nng_duration)(s->deadline - now) : 1);
}

static void send_start(struct call_slot *s)
{
    s->sending = true;
    set_timeout(s);
    nng_aio_set_msg(s->aio, s->req);
    s->req = NULL;
    nng_ctx_send(s->ctx, s->aio);
}

/* send_finished: one send left nng's hands; start every queued one. */
static void send_finished(plog_client *c)
{
    pthread_mutex_lock(&c->mu);
    c->nsending--;
    struct call_slot *q = c->sendq.head;
    c->sendq.head = c->sendq.tail = NULL;
    for (struct call_slot *s = q; s != NULL; s = s->next)
        c->nsending++;
    pthread_mutex_unlock(&c->mu);
    while (q != NULL) {
        struct call_slot *next = q->next;
        send_start(q);
        q = next;
    }
}

/* call_over ends the call of s: wakes its caller, or ends the batch it carries. */
static void call_over(struct call_slot *s)
{
    if (s->batch != NULL)
        batch_end(s);
    else
        sem_post(&s->done);
}

/* call_cb runs on an nng thread when the slot's send or receive finishes. A
 * request that went out is followed by the receive of its reply at once;
 * anything else ends the call. Once the semaphore or the receive is posted the
 * call can end and its slot be reused, so nothing here touches the slot
 * afterwards; the client it touches only until callbacks_wait sees it leave. */
static void call_cb(void *arg)
{
    struct call_slot *s = arg;
    plog_client *c = s->c;
    atomic_fetch_add(&c->ncallbacks, 1);
    if (!s->sending) {
        call_over(s);
    } else if (nng_aio_result(s->aio) != 0) { /* sending stays set: the request is the caller's */
        send_finished(c);
        call_over(s);
    } else {
        s->sending = false;
        send_finished(c);
        set_timeout(s);
        nng_ctx_recv(s->ctx, s->aio);
    }
    atomic_fetch_sub(&c->ncallbacks, 1); /* the last touch of c */
}

/* callbacks_wait returns once no call_cb is running. The reply of a call can wake
 * its caller while the callback that posted the receive is still inside
 * nng_ctx_recv, and the caller may then close the client: its socket must not go
 * before that callback has left nng. No call is in flight at close, so no
 * callback starts afterwards. */
static void callbacks_wait(plog_client *c)
{
    while (atomic_load(&c->ncallbacks) > 0)
        sched_yield();
}

static void slot_free(struct call_slot *s)
{
    nng_aio_free(s->aio);
    nng_ctx_close(s->ctx);
    sem_destroy(&s->done);
    free(s);
}

static struct call_slot *slot_get(plog_client *c, int *nrv)
{
    pthread_mutex_lock(&c->mu);
    struct call_slot *s = c->pool;
    if (s != NULL) {
        c->pool = s->next;
        c->npool--;
    }
    pthread_mutex_unlock(&c->mu);
    if (s != NULL)
        return s;
    if ((s = calloc(1, sizeof *s)) == NULL) {
        *nrv = NNG_ENOMEM;
        return NULL;
    }
    s->c = c;
    if (sem_init(&s->done, 0, 0) != 0) {
        free(s);
        *nrv = NNG_ENOMEM;
        return NULL;
    }
    if ((*nrv = nng_ctx_open(&s->ctx, c->sock)) != 0) {
        sem_destroy(&s->done);
        free(s);
        return NULL;
    }
    if ((*nrv = nng_aio_alloc(&s->aio, call_cb, s)) != 0) {
        nng_ctx_close(s->ctx);
        sem_destroy(&s->done);
        free(s);
        return NULL;
    }
    return s;
}

/* slot_put returns s to the pool, or frees it when the pool is full, unless
 * keep: a slot put back from its own aio's callback cannot be freed there. */
static void slot_put(plog_client *c, struct call_slot *s, bool keep)
{
    pthread_mutex_lock(&c->mu);
    if (c->npool < POOL_MAX || keep) {
        s->next = c->pool;
        c->pool = s;
        c->npool++;
        s = NULL;
    }
    pthread_mutex_unlock(&c->mu);
    if (s != NULL)
        slot_free(s);
}

static void **fifo_next(const struct fifo *q, void *item)
{
    return (void **)((char *)item + q->link);
}

static void fifo_append(struct fifo *q, void *item)
{
    *fifo_next(q, item) = NULL;
    if (q->tail != NULL)
        *fifo_next(q, q->tail) = item;
    else
        q->head = item;
    q->tail = item;
}

/* fifo_remove takes item out of q, under c->mu; false when it is not there (its
 * send started, or its batch was taken). */
static bool fifo_remove(plog_client *c, struct fifo *q, void *item)
{
    pthread_mutex_lock(&c->mu);
    void *prev = NULL, *p = q->head;
    while (p != NULL && p != item) {
        prev = p;
        p = *fifo_next(q, p);
    }
    if (p != NULL) {
        void *next = *fifo_next(q, p);
        if (prev != NULL)
            *fifo_next(q, prev) = next;
        else
            q->head = next;
        if (q->tail == p)
            q->tail = prev;
    }
    pthread_mutex_unlock(&c->mu);
    return p != NULL;
}

/* wait_until sleeps on done until it is posted (true) or the deadline, unix ms,
 * passes (false). */
static bool wait_until(sem_t *done, uint64_t deadline)
{
    struct timespec until = {.tv_sec = (time_t)(deadline / 1000),
                             .tv_nsec = (long)(deadline % 1000) * 1000000};
    int r;
    while ((r = sem_timedwait(done, &until)) != 0 && errno == EINTR)
        ;
    return r == 0;
}

/* wait_posted sleeps on done until it is posted. */
static void wait_posted(sem_t *done)
{
    while (sem_wait(done) != 0)
        ; /* EINTR */
}

/* call_start sends s's request, or queues it behind the sends in flight. */
static void call_start(plog_client *c, struct call_slot *s)
{
    pthread_mutex_lock(&c->mu);
    bool queue = c->nsending > 0;
    if (queue)
        fifo_append(&c->sendq, s);
    else
        c->nsending++;
    pthread_mutex_unlock(&c->mu);
    if (!queue)
        send_start(s);
}

/* call_wait sleeps until the call in s is over. A request still queued at its
 * deadline leaves the queue and fails as timed out; once its send started, the
 * aio's own timeout ends it. */
static int call_wait(plog_client *c, struct call_slot *s)
{
    if (!wait_until(&s->done, s->deadline)) {
        if (fifo_remove(c, &c->sendq, s)) {
            nng_msg_free(s->req);
            s->req = NULL;
            return NNG_ETIMEDOUT;
        }
        wait_posted(&s->done); /* the aio's timeout is running */
    }
    return nng_aio_result(s->aio);
}

/* finish_call is plog_client_finish_call; write says whether the request could
 * have changed the log (a produce: it carries a sequence number), so that a lost
 * connection says its outcome is unknown. */
static int finish_call(plog_client *c, int rv, bool write, nng_msg **reply, plog_rpc_reply *rp,
                       plog_rpc_status *st)
{
    if (rv != 0) {
        *reply = NULL;
        int code = plog_rpc_nngerr_status(rv);
        if (code == PLOG_STATUS_DEADLINE_EXCEEDED && !pipes_live(c))
            return plog_rpc_status_set(st, PLOG_STATUS_UNAVAILABLE, "no connection to %s%s", c->addr,
                                       atomic_load(&c->refused) ? ": it speaks another nng protocol, "
                                                                  "not proglog's RPC"
                                                                : "");
        if (code == PLOG_STATUS_UNAVAILABLE)
            return plog_rpc_status_set(st, code, "connection to %s lost (%s)%s", c->addr, nng_strerror(rv),
                                       write ? "; the produce may or may not have been applied" : "");
        if (code == PLOG_STATUS_DEADLINE_EXCEEDED)
            return plog_rpc_status_set(st, code, "no reply from %s within the deadline", c->addr);
        return plog_rpc_status_set(st, code, "%s: %s", c->addr, nng_strerror(rv));
    }
    if (plog_rpc_reply_decode(nng_msg_body(*reply), nng_msg_len(*reply), rp) != PLOG_OK) {
        nng_msg_free(*reply);
        *reply = NULL;
        return plog_rpc_status_set(st, PLOG_STATUS_INTERNAL, "malformed reply envelope");
    }
    if (rp->code != PLOG_STATUS_OK) {
        int code = rp->code;
        int n = rp->message_len > 250 ? 250 : (int)rp->message_len;
        plog_rpc_status_set(st, code, "%.*s", n, rp->message);
        nng_msg_free(*reply);
        *reply = NULL;
        return code;
    }
    return plog_rpc_status_set(st, PLOG_STATUS_OK, "%s", "");
}

int plog_client_finish_call(plog_client *c, int rv, nng_msg **reply, plog_rpc_reply *rp, plog_rpc_status *st)
{
    return finish_call(c, rv, true, reply, rp, st);
}

int plog_client_call(plog_client *c, const char *method, const ProtobufCMessage *req, uint64_t seq,
                     uint32_t timeout_ms, nng_msg **reply, plog_rpc_reply *rp, plog_rpc_status *st)
{
    assert(timeout_ms <= PLOG_CLIENT_MAX_TIMEOUT_MS);
    if (timeout_ms == 0)
        timeout_ms = c->cfg.timeout_ms;
    uint64_t deadline = plog_rpc_now_unix_ms() + timeout_ms;
    nng_msg *m;
    if (plog_rpc_request_msg(method, req, deadline, c->client_id, seq, &m) != PLOG_OK)
        return plog_rpc_status_set(st, PLOG_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    if (nng_msg_len(m) > c->cfg.max_msg_bytes) {
        size_t n = nng_msg_len(m);
        nng_msg_free(m);
        return plog_rpc_status_set(st, PLOG_STATUS_RESOURCE_EXHAUSTED,
                                   "request of %zu bytes exceeds the limit of %zu bytes", n,
                                   c->cfg.max_msg_bytes);
    }
    int rv;
    struct call_slot *s = slot_get(c, &rv);
    if (s == NULL) {
        nng_msg_free(m);
        *reply = NULL;
        return finish_call(c, rv, seq != 0, reply, rp, st);
    }
    s->deadline = deadline;
    s->req = m;
    call_start(c, s);
    if ((rv = call_wait(c, s)) != 0) {
        if (s->sending)
            nng_msg_free(nng_aio_get_msg(s->aio)); /* a failed send leaves it ours */
    } else {
        *reply = nng_aio_get_msg(s->aio);
    }
    s->sending = false;
    nng_aio_set_msg(s->aio, NULL);
    slot_put(c, s, false);
    return finish_call(c, rv, seq != 0, reply, rp, st);
}

/* produce_reply decodes the ProduceResponse of a call that returned code, freeing
 * reply: *off is the (first) offset it names; n records were sent, and a reply
 * to a batch (n > 1) must cover exactly them. */
static int produce_reply(int code, nng_msg *reply, const plog_rpc_reply *rp, size_t n, uint64_t *off,
                         plog_rpc_status *st)
{
    if (code != PLOG_STATUS_OK)
        return code;
    Log__V1__ProduceResponse *resp = log__v1__produce_response__unpack(NULL, rp->body_len, rp->body);
    nng_msg_free(reply);
    if (resp == NULL)
        return plog_rpc_status_set(st, PLOG_STATUS_INTERNAL, "malformed ProduceResponse");
    uint64_t first = resp->offset, count = resp->count;
    log__v1__produce_response__free_unpacked(resp, NULL);
    if (n > 1 && count != n)
        return plog_rpc_status_set(st, PLOG_STATUS_INTERNAL,
                                   "ProduceResponse covers %llu records, %zu were sent",
                                   (unsigned long long)count, n);
    *off = first;
    return PLOG_STATUS_OK;
}

/* pq_take takes the next batch off the queue (c->mu held): the produces at its
 * head, as many as COALESCE_MAX_RECORDS and the batch's bytes allow (at least
 * one), linked through next; NULL when the queue is empty. */
static struct produce_wait *pq_take(plog_client *c)
{
    struct produce_wait *head = c->pq.head, *last = NULL;
    size_t n = 0, bytes = 0;
    size_t max =
        c->cfg.max_msg_bytes / 2 < COALESCE_MAX_BYTES ? c->cfg.max_msg_bytes / 2 : COALESCE_MAX_BYTES;
    for (struct produce_wait *w = head; w != NULL; w = w->next) {
        if (n > 0 && (n == COALESCE_MAX_RECORDS || bytes + w->len > max))
            break;
        n++;
        bytes += w->len;
        last = w;
    }
    if (last == NULL)
        return NULL;
    c->pq.head = last->next;
    if (c->pq.head == NULL)
        c->pq.tail = NULL;
    last->next = NULL;
    return head;
}

/* batch_len counts the produces of a batch. */
static size_t batch_len(const struct produce_wait *batch)
{
    size_t n = 0;
    for (; batch != NULL; batch = batch->next)
        n++;
    return n;
}

/* batch_msg encodes the produces of batch (linked through next) as one request,
 * Produce for one and ProduceStream for more; the deadline is the earliest of
 * theirs, so nobody waits past their own. */
static int batch_msg(plog_client *c, struct produce_wait *batch, uint64_t *deadline, nng_msg **m)
{
    size_t n = batch_len(batch);
    Log__V1__Record one, *one_ptr = &one, *vals = &one, **ptrs = &one_ptr;
    if (n > 1) {
        vals = calloc(n, sizeof *vals);
        ptrs = calloc(n, sizeof *ptrs);
        if (vals == NULL || ptrs == NULL) {
            free(vals);
            free(ptrs);
            return PLOG_ENOMEM;
        }
    }
    *deadline = batch->deadline;
    size_t i = 0;
    for (struct produce_wait *w = batch; w != NULL; w = w->next, i++) {
        log__v1__record__init(&vals[i]);
        vals[i].value.data = (uint8_t *)w->value;
        vals[i].value.len = w->len;
        ptrs[i] = &vals[i];
        if (w->deadline < *deadline)
            *deadline = w->deadline;
    }
    Log__V1__ProduceRequest req = LOG__V1__PRODUCE_REQUEST__INIT;
    int method = PLOG_METHOD_PRODUCE;
    if (n == 1) {
        req.record = ptrs[0];
    } else {
        req.n_records = n;
        req.records = ptrs;
        method = PLOG_METHOD_PRODUCE_STREAM;
    }
    int rv = plog_rpc_request_msg(plog_rpc_method_name(method), &req.base, *deadline, c->client_id,
                                  plog_client_next_seq(c), m);
    if (n > 1) {
        free(vals);
        free(ptrs);
    }
    return rv;
}

/* batch_post gives every produce of batch its outcome and wakes its caller. */
static void batch_post(struct produce_wait *batch, int code, uint64_t first, const plog_rpc_status *st)
{
    bool batched = batch->next != NULL;
    for (struct produce_wait *w = batch; w != NULL; first++) {
        struct produce_wait *next = w->next; /* read before the post ends w's call */
        w->batched = batched;
        w->code = code;
        w->off = first;
        w->st = *st;
        sem_post(&w->done);
        w = next;
    }
}

/* batch_send starts the next batch on s (NULL: take a slot), or, with nothing
 * queued, frees s and the produce slot it held. Produces that cannot be sent
 * (no memory) get their outcome here, and the next batch is tried. */
static void batch_send(plog_client *c, struct call_slot *s)
{
    for (;;) {
        pthread_mutex_lock(&c->mu);
        struct produce_wait *batch = pq_take(c);
        if (batch == NULL)
            c->nproducing--;
        pthread_mutex_unlock(&c->mu);
        if (batch == NULL) {
            if (s != NULL)
                slot_put(c, s, true);
            return;
        }
        int nrv = 0;
        if (s == NULL && (s = slot_get(c, &nrv)) == NULL) {
            plog_rpc_status st;
            batch_post(batch, plog_rpc_status_set(&st, PLOG_STATUS_RESOURCE_EXHAUSTED, "out of memory"), 0,
                       &st);
            continue;
        }
        nng_msg *m;
        uint64_t deadline;
        if (batch_msg(c, batch, &deadline, &m) != PLOG_OK) {
            plog_rpc_status st;
            batch_post(batch, plog_rpc_status_set(&st, PLOG_STATUS_RESOURCE_EXHAUSTED, "out of memory"), 0,
                       &st);
            continue;
        }
        s->batch = batch;
        s->deadline = deadline;
        s->req = m;
        call_start(c, s);
        return;
    }
}

/* batch_end, on the nng thread of call_cb, ends the call of s that carried a
 * batch: starts the next batch on s at once, then gives this one's produces
 * their outcome. */
static void batch_end(struct call_slot *s)
{
    plog_client *c = s->c;
    int rv = nng_aio_result(s->aio);
    nng_msg *reply = NULL;
    if (rv != 0 && s->sending)
        nng_msg_free(nng_aio_get_msg(s->aio)); /* a failed send leaves it ours */
    else if (rv == 0)
        reply = nng_aio_get_msg(s->aio);
    s->sending = false;
    nng_aio_set_msg(s->aio, NULL);
    struct produce_wait *batch = s->batch;
    s->batch = NULL;
    batch_send(c, s);

    plog_rpc_reply rp;
    plog_rpc_status st;
    uint64_t first = 0;
    int code = plog_client_finish_call(c, rv, &reply, &rp, &st);
    code = produce_reply(code, reply, &rp, batch_len(batch), &first, &st);
    batch_post(batch, code, first, &st);
}

/* produce_alone sends one produce as its own request (timeout_ms 0: the
 * client's). */
static int produce_alone(plog_client *c, const void *value, size_t len, uint32_t timeout_ms, uint64_t *off,
                         plog_rpc_status *st)
{
    Log__V1__Record rec = LOG__V1__RECORD__INIT;
    rec.value.data = (uint8_t *)value;
    rec.value.len = len;
    Log__V1__ProduceRequest req = LOG__V1__PRODUCE_REQUEST__INIT;
    req.record = &rec;
    nng_msg *reply;
    plog_rpc_reply rp;
    int code = plog_client_call(c, plog_rpc_method_name(PLOG_METHOD_PRODUCE), &req.base,
                                plog_client_next_seq(c), timeout_ms, &reply, &rp, st);
    return produce_reply(code, reply, &rp, 1, off, st);
}

int plog_client_produce(plog_client *c, const void *value, size_t len, uint64_t *off, plog_rpc_status *st)
{
    if (len > COALESCE_MAX_VALUE)
        return produce_alone(c, value, len, 0, off, st);
    struct produce_wait me = {
        .value = value, .len = len, .deadline = plog_rpc_now_unix_ms() + c->cfg.timeout_ms};
    sem_init(&me.done, 0, 0);
    pthread_mutex_lock(&c->mu);
    fifo_append(&c->pq, &me);
    bool start = c->nproducing < PRODUCES_IN_FLIGHT;
    if (start)
        c->nproducing++;
    pthread_mutex_unlock(&c->mu);
    if (start)
        batch_send(c, NULL);
    if (!wait_until(&me.done, me.deadline)) {
        if (fifo_remove(c, &c->pq, &me)) {
            sem_destroy(&me.done);
            return plog_rpc_status_set(st, PLOG_STATUS_DEADLINE_EXCEEDED,
                                       "not sent within the deadline: the produces queued before it took it");
        }
        wait_posted(&me.done); /* in a batch, whose call ends by our deadline */
    }
    sem_destroy(&me.done);
    if (me.code == PLOG_STATUS_RESOURCE_EXHAUSTED && me.batched) {
        uint64_t now = plog_rpc_now_unix_ms();
        if (now < me.deadline) /* nothing of the batch was appended */
            return produce_alone(c, value, len, (uint32_t)(me.deadline - now), off, st);
    }
    if (st != NULL)
        *st = me.st;
    if (me.code == PLOG_STATUS_OK)
        *off = me.off;
    return me.code;
}

int plog_client_produce_batch(plog_client *c, const void *const *values, const size_t *lens, size_t n,
                              uint64_t *first, plog_rpc_status *st)
{
    Log__V1__Record *recs = calloc(n ? n : 1, sizeof *recs);
    Log__V1__Record **ptrs = calloc(n ? n : 1, sizeof *ptrs);
    if (recs == NULL || ptrs == NULL) {
        free(recs);
        free(ptrs);
        return plog_rpc_status_set(st, PLOG_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        log__v1__record__init(&recs[i]);
        recs[i].value.data = (uint8_t *)values[i];
        recs[i].value.len = lens[i];
        ptrs[i] = &recs[i];
    }
    Log__V1__ProduceRequest req = LOG__V1__PRODUCE_REQUEST__INIT;
    req.n_records = n;
    req.records = ptrs;
    nng_msg *reply;
    plog_rpc_reply rp;
    int code = plog_client_call(c, plog_rpc_method_name(PLOG_METHOD_PRODUCE_STREAM), &req.base,
                                plog_client_next_seq(c), 0, &reply, &rp, st);
    free(recs);
    free(ptrs);
    return produce_reply(code, reply, &rp, n, first, st);
}

int plog_client_consume(plog_client *c, uint64_t off, Log__V1__Record **rec, plog_rpc_status *st)
{
    Log__V1__ConsumeRequest req = LOG__V1__CONSUME_REQUEST__INIT;
    req.offset = off;
    nng_msg *reply;
    plog_rpc_reply rp;
    int code =
        plog_client_call(c, plog_rpc_method_name(PLOG_METHOD_CONSUME), &req.base, 0, 0, &reply, &rp, st);
    if (code != PLOG_STATUS_OK)
        return code;
    Log__V1__ConsumeResponse *resp = log__v1__consume_response__unpack(NULL, rp.body_len, rp.body);
    nng_msg_free(reply);
    if (resp == NULL || resp->record == NULL) {
        if (resp != NULL)
            log__v1__consume_response__free_unpacked(resp, NULL);
        return plog_rpc_status_set(st, PLOG_STATUS_INTERNAL, "malformed ConsumeResponse");
    }
    /* Hand the record over alone: detach it from the response that owns it. */
    *rec = resp->record;
    resp->record = NULL;
    log__v1__consume_response__free_unpacked(resp, NULL);
    return PLOG_STATUS_OK;
}
