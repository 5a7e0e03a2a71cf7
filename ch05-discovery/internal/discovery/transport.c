/* transport.c - membership datagrams over nng PUSH/PULL with mutual TLS (see transport.h).
 *
 *   node A                                     node B
 *   PUSH(to B) --dial tls+tcp://B:gossip-->    PULL listening on B's gossip address
 *   PULL <----dial tls+tcp://A:gossip--        PUSH(to A)
 *
 * Each direction is its own connection: A's messages to B travel on A's dial, so
 * B learns A's verified CN from that pipe (the listener requires a client
 * certificate), and the identity of every message is the identity of its pipe.
 *
 * Dialers retry with backoff 50 ms .. 1 s until their first connection is up: a
 * node that is starting is reached within a second, and a dead one costs at most
 * one attempt a second, until nothing was sent to it for IDLE_MS (sweep).
 * Background dials never report a refused certificate (nng retries silently), so
 * the TLS config's failure hook counts them and keeps the last one's address and
 * reason.
 *
 * One PUSH socket carries one connection. When its pipe goes (the peer died or
 * hung up), the socket's dialer is closed and the socket is never sent on again:
 * the next message to that address opens a fresh socket, which dials the peer's
 * new process. The reason is a race in nng 1.5.2's push protocol: a send that
 * completes just as the pipe closes puts the closed pipe back on the socket's
 * ready list (push0_send_cb -> push0_pipe_ready after push0_pipe_close), and
 * the pipe is freed while it is still listed. The next send on that socket, or
 * a new pipe of its dialer joining that list, then writes into freed memory.
 * kill -9 of a node that was being sent to at a high rate (a Raft leader) hit it
 * every few dozen kills as a segfault in nng_sendmsg.
 *
 * Closing a PUSH socket can block for good, for a second reason in nng 1.5.2:
 * its TLS transport sends a message in parts (length, then body), and when the
 * pipe closes between two parts the next part is handed to an aio the close has
 * already stopped, which drops it without a callback (tlstran_pipe_send_cb). The
 * message's send then never completes, the pipe's teardown waits for it forever
 * on nng's one reaper thread, and from then on every nng_close in the process
 * waits for that thread. A peer killed while messages stream to it does this
 * once in a few dozen kills. So a socket given up while the transport is in use
 * (its connection lost, its buffer full, evicted, forgotten) is closed by the
 * closer thread (internal/rpc/closer.h), never on the sender's: a Raft or SWIM
 * thread that sends must not hang on it. Such a process goes on with fresh
 * sockets and leaks what nng can no longer reap, and the sockets it gives up from
 * then on.
 *
 * So every fresh socket is bounded (ch06). A full buffer on a socket whose pipe is
 * up is a peer slower than its sender, not a dead link: the message is dropped
 * (the protocols above resend) and the socket kept; only a buffer that has not
 * drained for STALL_MS (the pipe takes messages and delivers none) or a socket that
 * never connected gives it up. One address gets at most one fresh socket per
 * RENEW_MS, and none while RETIRED_MAX given-up sockets of the process wait for
 * the closer (a wedged reaper never closes them: each is a leak): messages to it
 * are dropped meanwhile. Before, each full buffer opened a fresh socket at once; a
 * Raft leader answering every rejection with a new probe filled buffers at
 * thousands a second, the closer wedged among the closes, and the process grew to
 * thousands of connections to one peer. */
#include "internal/discovery/transport.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <nng/nng.h>
#include <nng/protocol/pipeline0/pull.h>
#include <nng/protocol/pipeline0/push.h>

#include "internal/err/err.h"
#include "internal/rpc/closer.h"
#include "internal/rpc/nngerr.h"
#include "internal/tls/config.h"
#include "internal/tls/engine.h"
#include "internal/tls/peer.h"

#define DEFAULT_MAX_MSG (64u << 10)
#define DEFAULT_MAX_PEERS 64
#define DEFAULT_SENDBUF 64
#define ADDR_SIZE 272
#define PATH_SIZE 1024
#define RENEW_MS 1000 /* at most one fresh socket per address this often */
/* A connected socket whose buffer stays full this long is taken for dead. Its pipe
 * may be: when nng's reaper is stuck, a pipe that went never reports it (on_pipe_gone
 * runs on the reaper), and only this replaces it (transport_test.c's kill loop needs
 * it within seconds: at 10 s it failed under SAN=1). A slow peer's connection also
 * drains in bursts seconds apart (the kernel wakes a TLS sender only once a good part
 * of its socket buffer is free), so a peer slower than its sender may see its
 * connection replaced, once per STALL_MS at most. */
#define STALL_MS 2000
#define RETIRED_MAX 128 /* given-up sockets of the process not closed yet: no more */
/* A socket that never connected and has had nothing sent to it this long is given
 * up (sweep): its dialer would try the address once a second for good otherwise (a
 * member that died or left before this node reached it, a reaped one, an address
 * nobody listens on). The next message to the address dials afresh. */
#define IDLE_MS 5000
#define SWEEP_MS 1000 /* sweep at most this often */
#define SWEEP_MAX 4   /* sockets given up per sweep */

/* retired: sockets handed to the closer and not closed yet, in every transport of
 * the process (the closer is the process's; a close may outlive its transport). */
static _Atomic unsigned retired;

/* link: whether a PUSH socket's connection is gone. Set by the pipe-removal
 * callback (on nng's reaper thread), read by senders, both under mu, so no send
 * starts on the socket once its pipe is being torn down. Freed after nng_close,
 * when no callback can run any more. */
struct link {
    pthread_mutex_t mu;
    bool up; /* a pipe joined (set once) */
    bool lost;
    plog_transport *g;    /* for the TLS failure hook (cleared before g goes) */
    char addr[ADDR_SIZE]; /* the address dialed */
};

struct peer {
    char addr[ADDR_SIZE];
    nng_socket sock;
    nng_tls_config *tls;
    struct link *link;
    uint64_t used;      /* LRU clock */
    uint64_t opened_ms; /* when this socket was opened */
    uint64_t full_ms;   /* since when every send found the buffer full (0: it drains) */
    uint64_t sent_ms;   /* the last message sent to it */
    bool counted;       /* its connection, once up, is in g->connected */
};

struct plog_transport {
    plog_transport_config cfg;
    char bind[ADDR_SIZE];
    char cert[PATH_SIZE], key[PATH_SIZE], ca[PATH_SIZE]; /* cfg's paths point here */
    nng_socket pull;
    bool pull_open;
    nng_aio *aio;
    nng_tls_config *server_tls;

    pthread_mutex_t mu; /* peers */
    struct peer *peers;
    unsigned npeers;
    uint64_t clock;
    uint64_t swept_ms; /* the last sweep */

    /* The ACL refusals already reported, by pipe id: once per connection. Read and
     * written by recv_cb only, which runs one at a time. */
    uint32_t refused_pipes[8];
    unsigned refused_next;

    pthread_mutex_t fail_mu; /* a leaf lock: the TLS hook runs under nng's connection lock */
    char fail_addr[ADDR_SIZE], fail_why[PLOG_TLS_ERRMSG_SIZE];

    _Atomic uint64_t sent, send_dropped, received, unauthenticated, denied, oversize, tls_failures, connected;
};

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* to_url turns "HOST:PORT" into "tls+tcp://HOST:PORT"; a URL stays as it is. */
static void to_url(const char *addr, char *url, size_t size)
{
    if (strstr(addr, "://") != NULL)
        snprintf(url, size, "%s", addr);
    else
        snprintf(url, size, "tls+tcp://%s", addr);
}

/* on_tls_failure hears of an outgoing connection that failed at TLS (arg: its
 * link): counted, and kept for plog_transport_tls_failure. */
static void on_tls_failure(void *arg, const char *remote, const char *reason)
{
    (void)remote;
    struct link *l = arg;
    plog_transport *g = l->g;
    atomic_fetch_add(&g->tls_failures, 1);
    pthread_mutex_lock(&g->fail_mu);
    snprintf(g->fail_addr, sizeof g->fail_addr, "%s", l->addr);
    snprintf(g->fail_why, sizeof g->fail_why, "%s", reason);
    pthread_mutex_unlock(&g->fail_mu);
}

/* report_denied tells cfg.refused of a message from cn, which the ACL does not let
 * gossip, the first time one comes on its connection. On recv_cb's thread. */
static void report_denied(plog_transport *g, nng_pipe pipe, const char *cn)
{
    uint32_t id = nng_pipe_id(pipe);
    size_t n = sizeof g->refused_pipes / sizeof g->refused_pipes[0];
    if (g->cfg.refused == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        if (g->refused_pipes[i] == id)
            return;
    g->refused_pipes[g->refused_next++ % n] = id;
    nng_sockaddr sa;
    char remote[64], why[PLOG_TLS_CN_SIZE + 64];
    if (nng_pipe_get_addr(pipe, NNG_OPT_REMADDR, &sa) != 0)
        snprintf(remote, sizeof remote, "?");
    else
        plog_tls_addr_format(&sa, remote, sizeof remote);
    snprintf(why, sizeof why, "%s is not permitted to %s", cn, PLOG_TRANSPORT_ACTION);
    g->cfg.refused(g->cfg.arg, remote, why);
}

static void recv_cb(void *arg)
{
    plog_transport *g = arg;
    int rv = nng_aio_result(g->aio);
    if (rv != 0) {
        if (rv == NNG_ECLOSED || rv == NNG_ECANCELED)
            return;
        nng_recv_aio(g->pull, g->aio); /* a transient error: keep receiving */
        return;
    }
    nng_msg *m = nng_aio_get_msg(g->aio);
    size_t len = nng_msg_len(m);
    plog_tls_peer who;
    if (plog_tls_peer_lookup(nng_msg_get_pipe(m), &who) != PLOG_OK)
        atomic_fetch_add(&g->unauthenticated, 1);
    else if (g->cfg.acl != NULL && plog_auth_authorize(g->cfg.acl, who.cn, PLOG_AUTH_OBJECT_ANY,
                                                       PLOG_TRANSPORT_ACTION) != PLOG_OK) {
        atomic_fetch_add(&g->denied, 1);
        report_denied(g, nng_msg_get_pipe(m), who.cn);
    } else if (len > g->cfg.max_msg_bytes)
        atomic_fetch_add(&g->oversize, 1);
    else {
        atomic_fetch_add(&g->received, 1);
        g->cfg.recv(g->cfg.arg, who.cn, nng_msg_body(m), len);
    }
    nng_msg_free(m);
    nng_recv_aio(g->pull, g->aio);
}

int plog_transport_open(const plog_transport_config *cfg, plog_transport **gp, char *err, size_t errsize)
{
    if (cfg->bind_addr == NULL || cfg->cert_file == NULL || cfg->key_file == NULL || cfg->ca_file == NULL ||
        cfg->recv == NULL) {
        plog_errf(err, errsize, "gossip: bind address, node certificate, key and CA files are required");
        return PLOG_EINVAL;
    }
    if (strlen(cfg->bind_addr) + 12 >= ADDR_SIZE || strchr(cfg->bind_addr, ':') == NULL) {
        plog_errf(err, errsize, "gossip: bad bind address \"%s\" (want HOST:PORT)", cfg->bind_addr);
        return PLOG_EINVAL;
    }
    plog_transport *g = calloc(1, sizeof *g);
    if (g == NULL) {
        plog_errf(err, errsize, "out of memory");
        return PLOG_ENOMEM;
    }
    g->cfg = *cfg;
    if (g->cfg.max_msg_bytes == 0)
        g->cfg.max_msg_bytes = DEFAULT_MAX_MSG;
    if (g->cfg.max_peers == 0)
        g->cfg.max_peers = DEFAULT_MAX_PEERS;
    if (g->cfg.sendbuf == 0)
        g->cfg.sendbuf = DEFAULT_SENDBUF;
    snprintf(g->bind, sizeof g->bind, "%s", cfg->bind_addr);
    snprintf(g->cert, sizeof g->cert, "%s", cfg->cert_file);
    snprintf(g->key, sizeof g->key, "%s", cfg->key_file);
    snprintf(g->ca, sizeof g->ca, "%s", cfg->ca_file);
    g->cfg.cert_file = g->cert;
    g->cfg.key_file = g->key;
    g->cfg.ca_file = g->ca;
    g->cfg.bind_addr = g->bind;
    pthread_mutex_init(&g->mu, NULL);
    pthread_mutex_init(&g->fail_mu, NULL);
    int rv;
    char url[ADDR_SIZE + 16];
    nng_listener l;
    g->peers = calloc(g->cfg.max_peers, sizeof *g->peers);
    if (g->peers == NULL) {
        plog_errf(err, errsize, "out of memory");
        rv = PLOG_ENOMEM;
        goto fail;
    }
    if ((rv = plog_tls_config_server(cfg->cert_file, cfg->key_file, cfg->ca_file, &g->server_tls, err,
                                     errsize)) != PLOG_OK)
        goto fail;
    plog_tls_config_on_failure(g->server_tls, cfg->refused, cfg->arg);
    if ((rv = plog_rpc_nngerr_err(nng_pull0_open(&g->pull), "gossip: pull socket", err, errsize)) != PLOG_OK)
        goto fail;
    g->pull_open = true;
    if ((rv = plog_tls_peer_track(g->pull)) != PLOG_OK) {
        plog_errf(err, errsize, "gossip: cannot track peers");
        goto fail;
    }
    to_url(cfg->bind_addr, url, sizeof url);
    if (!plog_tls_url_is_tls(url)) {
        plog_errf(err, errsize, "gossip: %s is not a tls+tcp:// address", url);
        rv = PLOG_EINVAL;
        goto fail;
    }
    if ((rv = plog_rpc_nngerr_err(nng_listener_create(&l, g->pull, url), "gossip: listen", err, errsize)) !=
        PLOG_OK)
        goto fail;
    /* Anything far beyond the limit closes the connection unread; between 1x and
     * 4x it is read, counted as oversize and dropped. */
    nng_listener_set_size(l, NNG_OPT_RECVMAXSZ, g->cfg.max_msg_bytes * 4);
    nng_listener_set_ptr(l, NNG_OPT_TLS_CONFIG, g->server_tls);
    if ((rv = plog_rpc_nngerr_err(nng_listener_start(l, 0), url, err, errsize)) != PLOG_OK)
        goto fail;
    if ((rv = plog_rpc_nngerr_err(nng_aio_alloc(&g->aio, recv_cb, g), "gossip: aio", err, errsize)) !=
        PLOG_OK)
        goto fail;
    nng_recv_aio(g->pull, g->aio);
    *gp = g;
    return PLOG_OK;
fail:
    plog_transport_close(g);
    return rv;
}

/* peer_close closes a PUSH socket that is no longer in the table. Never with mu
 * held: nng_close waits for the socket's pipes to be reaped, and that can wait
 * for an nng thread running our receive callback, which sends, which takes mu. */
static void peer_close(struct peer *p)
{
    if (p->tls == NULL)
        return;
    nng_close(p->sock);
    /* The socket is closed before the failure hook goes, and the hook before g;
     * every pipe callback has returned once nng_close has. */
    plog_tls_config_on_failure(p->tls, NULL, NULL);
    nng_tls_config_free(p->tls);
    pthread_mutex_destroy(&p->link->mu);
    free(p->link);
    memset(p, 0, sizeof *p);
}

/* peer_close_retired closes a retired PUSH socket on the closer thread
 * (internal/rpc/closer.h, which runs the closes of every transport and client of
 * the process one at a time, in order; once nng's reaper is stuck it waits in
 * nng_close for good and later sockets stay queued: one thread, not one per
 * socket, and what leaks is what nng holds). */
static void peer_close_retired(void *arg)
{
    peer_close(arg);
    free(arg);
    atomic_fetch_sub(&retired, 1);
}

/* peer_retire hands a PUSH socket that is no longer in the table to the closer
 * (see the top comment) and clears *p; closes it on the caller's thread only if
 * the closer cannot take it. Never with mu held. */
static void peer_retire(struct peer *p)
{
    if (p->tls == NULL)
        return;
    /* The transport may be gone before the close ends: no failure report for it. */
    plog_tls_config_on_failure(p->tls, NULL, NULL);
    struct peer *r = malloc(sizeof *r);
    if (r == NULL) {
        peer_close(p);
        return;
    }
    *r = *p;
    memset(p, 0, sizeof *p);
    atomic_fetch_add(&retired, 1);
    plog_rpc_closer_submit(peer_close_retired, r);
}

/* may_retire: whether another socket may be given up now (RETIRED_MAX, above). */
static bool may_retire(void)
{
    return atomic_load(&retired) < RETIRED_MAX;
}

/* on_pipe_gone runs when a PUSH socket's pipe is removed (see the top comment):
 * the socket is marked lost and its dialer closed, so it never gets a second
 * pipe. nng calls it on its reaper thread, which no holder of link->mu waits for. */
static void on_pipe_added(nng_pipe pipe, nng_pipe_ev ev, void *arg)
{
    (void)pipe, (void)ev;
    struct link *l = arg;
    pthread_mutex_lock(&l->mu);
    l->up = true;
    pthread_mutex_unlock(&l->mu);
}

static void on_pipe_gone(nng_pipe pipe, nng_pipe_ev ev, void *arg)
{
    (void)ev;
    struct link *l = arg;
    pthread_mutex_lock(&l->mu);
    l->lost = true;
    pthread_mutex_unlock(&l->mu);
    nng_dialer_close(nng_pipe_dialer(pipe)); /* already closed while the socket closes */
}

/* peer_push sends m on p's socket unless its connection is gone: nng's result
 * (the message is nng's on 0), or NNG_ECLOSED for a lost one. Sets *up to whether
 * the socket ever had a pipe. */
static int peer_push(struct peer *p, nng_msg *m, bool *up)
{
    pthread_mutex_lock(&p->link->mu);
    int rv = p->link->lost ? NNG_ECLOSED : nng_sendmsg(p->sock, m, NNG_FLAG_NONBLOCK);
    *up = p->link->up;
    pthread_mutex_unlock(&p->link->mu);
    return rv;
}

/* worn_out: whether the send's result rv says p's socket is to be given up (see the
 * top comment): its connection is gone (NNG_ECLOSED), or its buffer is full and it
 * never connected or has not drained for STALL_MS. A full buffer that drains is a
 * peer slower than its sender: the message is dropped, the socket kept. Locked. */
static bool worn_out(struct peer *p, int rv, bool up, uint64_t now)
{
    if (rv != NNG_EAGAIN) {
        p->full_ms = 0;
        return rv == NNG_ECLOSED;
    }
    if (p->full_ms == 0)
        p->full_ms = now;
    return !up || now >= p->full_ms + STALL_MS;
}

/* detach moves p out of the table into *out (to be closed after unlocking). Locked. */
static void detach(plog_transport *g, struct peer *p, struct peer *out)
{
    *out = *p;
    *p = g->peers[--g->npeers]; /* p's slot takes the last one */
    memset(&g->peers[g->npeers], 0, sizeof *p);
}

/* peer_open dials addr in the background. Locked (nothing here blocks). */
static int peer_open(plog_transport *g, struct peer *p, const char *addr)
{
    char host[ADDR_SIZE], url[ADDR_SIZE + 16], why[PLOG_TLS_ERRMSG_SIZE];
    to_url(addr, url, sizeof url);
    if (!plog_tls_url_is_tls(url) || plog_tls_url_host(url, host, sizeof host) != PLOG_OK)
        return PLOG_EINVAL;
    nng_tls_config *tls;
    int rv = plog_tls_config_client(g->cfg.cert_file, g->cfg.key_file, g->cfg.ca_file, host, &tls, why,
                                    sizeof why);
    if (rv != PLOG_OK)
        return rv;
    struct link *l = calloc(1, sizeof *l);
    nng_socket s;
    nng_dialer d;
    if (l == NULL || nng_push0_open(&s) != 0) {
        free(l);
        nng_tls_config_free(tls);
        return PLOG_ENOMEM;
    }
    pthread_mutex_init(&l->mu, NULL);
    l->g = g;
    snprintf(l->addr, sizeof l->addr, "%s", addr);
    plog_tls_config_on_failure(tls, on_tls_failure, l);
    nng_socket_set_int(s, NNG_OPT_SENDBUF, (int)g->cfg.sendbuf);
    nng_socket_set_ms(s, NNG_OPT_RECONNMINT, 50);
    nng_socket_set_ms(s, NNG_OPT_RECONNMAXT, 1000);
    if (nng_pipe_notify(s, NNG_PIPE_EV_ADD_POST, on_pipe_added, l) != 0 ||
        nng_pipe_notify(s, NNG_PIPE_EV_REM_POST, on_pipe_gone, l) != 0 ||
        nng_dialer_create(&d, s, url) != 0 || nng_dialer_set_ptr(d, NNG_OPT_TLS_CONFIG, tls) != 0 ||
        nng_dialer_start(d, NNG_FLAG_NONBLOCK) != 0) {
        nng_close(s); /* no pipe yet: nothing to wait for */
        pthread_mutex_destroy(&l->mu);
        free(l);
        nng_tls_config_free(tls);
        return PLOG_EINVAL;
    }
    snprintf(p->addr, sizeof p->addr, "%s", addr);
    p->sock = s;
    p->tls = tls;
    p->link = l;
    p->opened_ms = now_ms();
    p->full_ms = 0;
    p->counted = false;
    return PLOG_OK;
}

/* peer_get finds or dials addr; when the table is full the least recently used
 * goes to *victim, for the caller to close after unlocking. NULL when addr cannot
 * be dialed, or the table is full and no socket may be given up (*capped). Locked. */
static struct peer *peer_get(plog_transport *g, const char *addr, struct peer *victim, bool *capped)
{
    struct peer *lru = NULL;
    for (unsigned i = 0; i < g->npeers; i++) {
        struct peer *p = &g->peers[i];
        if (strcmp(p->addr, addr) == 0) {
            p->used = ++g->clock;
            return p;
        }
        if (lru == NULL || p->used < lru->used)
            lru = p;
    }
    if (g->npeers == g->cfg.max_peers) {
        if (!may_retire()) {
            *capped = true; /* the closer holds enough already: no new socket */
            return NULL;
        }
        detach(g, lru, victim);
    }
    struct peer *p = &g->peers[g->npeers++];
    if (peer_open(g, p, addr) != PLOG_OK) {
        memset(p, 0, sizeof *p);
        g->npeers--;
        return NULL;
    }
    p->used = ++g->clock;
    return p;
}

/* sweep moves into gone (up to SWEEP_MAX, each to be retired after unlocking) the
 * sockets that never connected and were sent nothing for IDLE_MS. Before, a dialer
 * to a member that was gone before it connected kept dialing until the process
 * ended. At most once per SWEEP_MS. Locked. */
static void sweep(plog_transport *g, uint64_t now, struct peer gone[SWEEP_MAX])
{
    if (now < g->swept_ms + SWEEP_MS)
        return;
    g->swept_ms = now;
    size_t k = 0;
    /* retired grows only when the sockets are handed over (peer_retire): count
     * these k against RETIRED_MAX already. */
    for (unsigned i = 0; i < g->npeers && k < SWEEP_MAX && atomic_load(&retired) + k < RETIRED_MAX;) {
        struct peer *p = &g->peers[i];
        pthread_mutex_lock(&p->link->mu);
        bool up = p->link->up;
        pthread_mutex_unlock(&p->link->mu);
        if (!up && now >= p->sent_ms + IDLE_MS)
            detach(g, p, &gone[k++]); /* slot i now holds another peer */
        else
            i++;
    }
}

int plog_transport_send(plog_transport *g, const char *addr, const void *buf, size_t len)
{
    if (addr == NULL || strlen(addr) + 12 >= ADDR_SIZE || strchr(addr, ':') == NULL)
        return PLOG_EINVAL;
    nng_msg *m;
    if (nng_msg_alloc(&m, len) != 0) {
        atomic_fetch_add(&g->send_dropped, 1);
        return PLOG_ENOMEM;
    }
    memcpy(nng_msg_body(m), buf, len);
    struct peer gone[2 + SWEEP_MAX];
    memset(gone, 0, sizeof gone);
    uint64_t now = now_ms();
    bool up = false, capped = false;
    pthread_mutex_lock(&g->mu);
    sweep(g, now, gone + 2);
    struct peer *p = peer_get(g, addr, &gone[0], &capped);
    int rv = p == NULL ? NNG_EINVAL : peer_push(p, m, &up);
    if (p != NULL && worn_out(p, rv, up, now) && now >= p->opened_ms + RENEW_MS && may_retire()) {
        /* The socket's connection is gone, or it never came or stalled (see the
         * top comment): start over with a fresh socket and dialer rather than
         * trust the old one's dials. At most once per RENEW_MS per address;
         * until then the message is dropped (the protocols above resend). */
        detach(g, p, &gone[1]);
        p = peer_get(g, addr, &gone[0], &capped);
        rv = p == NULL ? NNG_EINVAL : peer_push(p, m, &up);
    }
    if (p != NULL && up && !p->counted) {
        p->counted = true;
        atomic_fetch_add(&g->connected, 1);
    }
    if (p != NULL)
        p->sent_ms = now;
    pthread_mutex_unlock(&g->mu);
    for (size_t i = 0; i < sizeof gone / sizeof gone[0]; i++)
        peer_retire(&gone[i]);
    if (rv != 0) {
        nng_msg_free(m); /* a failed send leaves the message ours */
        atomic_fetch_add(&g->send_dropped, 1);
        return p == NULL && !capped ? PLOG_EINVAL : PLOG_EIO;
    }
    atomic_fetch_add(&g->sent, 1);
    return PLOG_OK;
}

void plog_transport_forget(plog_transport *g, const char *addr)
{
    struct peer gone;
    memset(&gone, 0, sizeof gone);
    pthread_mutex_lock(&g->mu);
    for (unsigned i = 0; i < g->npeers && may_retire(); i++) {
        if (strcmp(g->peers[i].addr, addr) == 0) {
            detach(g, &g->peers[i], &gone);
            break;
        }
    }
    pthread_mutex_unlock(&g->mu);
    peer_retire(&gone);
}

const char *plog_transport_addr(const plog_transport *g)
{
    return g->bind;
}

void plog_transport_stats_get(plog_transport *g, plog_transport_stats *out)
{
    out->sent = atomic_load(&g->sent);
    out->send_dropped = atomic_load(&g->send_dropped);
    out->received = atomic_load(&g->received);
    out->unauthenticated = atomic_load(&g->unauthenticated);
    out->denied = atomic_load(&g->denied);
    out->oversize = atomic_load(&g->oversize);
    out->tls_failures = atomic_load(&g->tls_failures);
    out->connected = atomic_load(&g->connected);
}

bool plog_transport_tls_failure(plog_transport *g, char *addr, size_t asize, char *why, size_t wsize)
{
    pthread_mutex_lock(&g->fail_mu);
    bool failed = g->fail_addr[0] != '\0';
    snprintf(addr, asize, "%s", g->fail_addr);
    snprintf(why, wsize, "%s", g->fail_why);
    pthread_mutex_unlock(&g->fail_mu);
    return failed;
}

/* pull_close runs on the closer thread: closes the PULL socket whose id is arg. */
static void pull_close(void *arg)
{
    nng_close((nng_socket){.id = (uint32_t)(uintptr_t)arg});
}

void plog_transport_close(plog_transport *g)
{
    if (g == NULL)
        return;
    /* Stop receiving first (nng_aio_stop waits for a callback in progress; the
     * callback does not re-arm a stopped aio), as the server stops its contexts
     * before closing its socket; then stop sending; then close the listener. */
    if (g->aio != NULL)
        nng_aio_stop(g->aio);
    /* The listener may outlive g (below): no refusal is reported from now on. */
    if (g->server_tls != NULL)
        plog_tls_config_on_failure(g->server_tls, NULL, NULL);
    /* Nothing sends any more (the driver has stopped, and so has our receive
     * callback), so the table is read without mu, which nng_close must not be
     * called under (see peer_close). The sockets go to the closer too: on a
     * process whose reaper is stuck, nng_close never returns, and a node that is
     * told to stop must stop. */
    for (unsigned i = 0; i < g->npeers; i++)
        peer_retire(&g->peers[i]);
    g->npeers = 0;
    /* The PULL socket closes there too, last (its receive is stopped: the close
     * needs nothing of g). Give the closer two seconds; if it is not done then,
     * nng's reaper is stuck and the sockets are left open (the PULL one with its
     * listener), leaked. Closing PULL here after an idle closer was not enough:
     * a reaper stuck on a pipe that nng itself tore down (a peer killed mid-send)
     * held this thread in nng_close for good, and a node that had failed never
     * exited, its data directory locked. */
    if (g->pull_open)
        plog_rpc_closer_submit(pull_close, (void *)(uintptr_t)g->pull.id);
    plog_rpc_closer_wait(2000);
    nng_aio_free(g->aio);
    free(g->peers);
    if (g->server_tls != NULL)
        nng_tls_config_free(g->server_tls);
    pthread_mutex_destroy(&g->fail_mu);
    pthread_mutex_destroy(&g->mu);
    free(g);
}
