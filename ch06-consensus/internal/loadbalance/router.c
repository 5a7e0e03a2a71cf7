/* router.c - client-side routing (see router.h). */
#include "internal/loadbalance/router.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal/rpc/envelope.h"
#include "internal/tls/config.h"

#define BACKOFF_MIN_MS 10
#define BACKOFF_MAX_MS 320
/* One attempt waits at most this long: a leader that died mid-call must not use
 * up the whole deadline; the retry carries the same (client id, seq). */
#define ATTEMPT_MAX_MS 300
/* A linearizable read's attempt may take longer: a retry starts its ReadIndex over
 * (a quorum round, then the leader's apply), where a produce's keeps its progress. */
#define READ_ATTEMPT_MAX_MS 1000
/* A failure found without a round trip (no connection to the leader: it died; no
 * leader known) is retried every FAST_RETRY_MS for the first FAST_RETRY_FOR_MS of a
 * call (an election takes one or two election timeouts), then with the backoff: a
 * produce sent on a dead connection would wait ATTEMPT_MAX_MS for a redial. */
#define FAST_RETRY_MS 20
#define FAST_RETRY_FOR_MS 2000

struct conn {
    char addr[128]; /* HOST:PORT */
    plog_client *c;
};

struct plog_loadbalance_router {
    plog_client_config cfg;
    char *cert, *key, *ca;
    char scheme[16]; /* "tls+tcp://" or "tcp://" */
    uint64_t client_id, seq, retries;
    plog_loadbalance_picker picker;
    struct conn conns[PLOG_LOADBALANCE_MAX_SERVERS + 1];
    size_t nconns;
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

int plog_loadbalance_resolve(plog_client *c, plog_loadbalance_server *v, size_t cap, size_t *n,
                             uint32_t timeout_ms, plog_rpc_status *st)
{
    Log__V1__GetServersRequest req = LOG__V1__GET_SERVERS_REQUEST__INIT;
    nng_msg *reply;
    plog_rpc_reply rp;
    int code = plog_client_call(c, plog_rpc_method_name(PLOG_METHOD_GET_SERVERS), &req.base, 0, timeout_ms,
                                &reply, &rp, st);
    if (code != PLOG_STATUS_OK)
        return code;
    Log__V1__GetServersResponse *resp = log__v1__get_servers_response__unpack(NULL, rp.body_len, rp.body);
    nng_msg_free(reply);
    if (resp == NULL)
        return plog_rpc_status_set(st, PLOG_STATUS_INTERNAL, "malformed GetServersResponse");
    size_t k = 0;
    for (size_t i = 0; i < resp->n_servers && k < cap; i++) {
        memset(&v[k], 0, sizeof v[k]);
        snprintf(v[k].id, sizeof v[k].id, "%s", resp->servers[i]->id);
        snprintf(v[k].rpc_addr, sizeof v[k].rpc_addr, "%s", resp->servers[i]->rpc_addr);
        v[k].is_leader = resp->servers[i]->is_leader;
        if (v[k].rpc_addr[0] != '\0')
            k++;
    }
    log__v1__get_servers_response__free_unpacked(resp, NULL);
    *n = k;
    return PLOG_STATUS_OK;
}

/* conn_of returns the router's client of addr, NULL when it has none. */
static plog_client *conn_of(const plog_loadbalance_router *r, const char *addr)
{
    for (size_t i = 0; i < r->nconns; i++)
        if (strcmp(r->conns[i].addr, addr) == 0)
            return r->conns[i].c;
    return NULL;
}

/* attempt_ms is how long one attempt may take: ATTEMPT_MAX_MS, or what is left
 * before deadline (a monotonic ms time); 0 when nothing is. */
static int64_t attempt_ms(int64_t deadline)
{
    int64_t left = deadline - now_ms();
    return left <= 0 ? 0 : left < ATTEMPT_MAX_MS ? left : ATTEMPT_MAX_MS;
}

/* conn_for returns the connection to addr (HOST:PORT), dialing it when new: at
 * once (the first server, whose refusal the caller should hear), or in the
 * background (background: a server named by GetServers, which may be down or
 * paused), waiting at most one attempt (attempt_ms of deadline) for it to
 * connect; a call that finds it not connected retries soon, instead of spending
 * its deadline on the dial. */
static plog_client *conn_for(plog_loadbalance_router *r, const char *addr, bool background, int64_t deadline,
                             plog_rpc_status *st)
{
    plog_client *known = conn_of(r, addr);
    if (known != NULL)
        return known;
    if (r->nconns == sizeof r->conns / sizeof r->conns[0]) {
        plog_client_close(r->conns[0].c); /* the oldest goes */
        memmove(&r->conns[0], &r->conns[1], (r->nconns - 1) * sizeof r->conns[0]);
        r->nconns--;
    }
    char url[160], host[128], err[PLOG_TLS_ERRMSG_SIZE];
    snprintf(url, sizeof url, "%s%s", r->scheme, addr);
    plog_client_config cfg = r->cfg;
    cfg.tls = NULL;
    cfg.wait_for_server = background;
    if (r->ca != NULL) {
        snprintf(host, sizeof host, "%s", addr);
        char *colon = strrchr(host, ':');
        if (colon != NULL)
            *colon = '\0';
        if (plog_tls_config_client(r->cert, r->key, r->ca, host, &cfg.tls, err, sizeof err) != 0) {
            plog_rpc_status_set(st, PLOG_STATUS_INVALID_ARGUMENT, "%s", err);
            return NULL;
        }
    }
    plog_client *c;
    int code = plog_client_open(url, &cfg, &c, st);
    if (cfg.tls != NULL)
        nng_tls_config_free(cfg.tls);
    if (code != PLOG_STATUS_OK)
        return NULL;
    for (int64_t until = now_ms() + attempt_ms(deadline);
         background && !plog_client_connected(c) && now_ms() < until;)
        sleep_ms(1);
    if (r->client_id == 0)
        r->client_id = plog_client_id(c); /* the first connection's random id */
    else
        plog_client_set_id(c, r->client_id);
    snprintf(r->conns[r->nconns].addr, sizeof r->conns[0].addr, "%s", addr);
    r->conns[r->nconns++].c = c;
    return c;
}

static bool names_leader(const plog_loadbalance_server *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (v[i].is_leader)
            return true;
    return false;
}

/* refresh asks the servers it can reach for the list (Go: ResolveNow) until one
 * names a leader: a server cut off from the others names none, while the others
 * may have elected one. It asks those it is connected to first, then dials the
 * servers last known. When nobody names a leader (an election), the first answer
 * is kept. With others to ask, each question is one attempt (attempt_ms): a
 * paused server keeps its connection, and before, its GetServers took the call's
 * whole timeout, so a produce through a paused leader that --addr named failed
 * although another leader had been elected within a quarter of a second. The
 * only server known (at open) may take what is left of deadline. */
static int refresh(plog_loadbalance_router *r, int64_t deadline, plog_rpc_status *st)
{
    plog_loadbalance_server v[PLOG_LOADBALANCE_MAX_SERVERS];
    size_t n;
    bool answered = false, asked = false;
    int code = PLOG_STATUS_UNAVAILABLE;
    const size_t nconns = r->nconns, nknown = r->picker.n;
    for (size_t i = 0; i < nconns + nknown && attempt_ms(deadline) > 0; i++) {
        plog_client *c;
        if (i < nconns)
            c = r->conns[i].c;
        else if (conn_of(r, r->picker.servers[i - nconns].rpc_addr) != NULL)
            continue; /* asked above, or not connected */
        else
            c = conn_for(r, r->picker.servers[i - nconns].rpc_addr, true, deadline, st);
        /* Not connected: its server is down, the call would wait for a redial. */
        int64_t ms = nconns + nknown > 1 ? attempt_ms(deadline) : deadline - now_ms();
        if (c == NULL || !plog_client_connected(c) || ms <= 0)
            continue;
        asked = true;
        code = plog_loadbalance_resolve(c, v, PLOG_LOADBALANCE_MAX_SERVERS, &n, (uint32_t)ms, st);
        if (code != PLOG_STATUS_OK)
            continue;
        bool leader = names_leader(v, n);
        if (leader || !answered)
            plog_loadbalance_picker_update(&r->picker, v, n);
        if (leader)
            return code;
        answered = true;
    }
    if (answered)
        return plog_rpc_status_set(st, PLOG_STATUS_OK, "%s", "");
    return asked ? code
                 : plog_rpc_status_set(st, code, "%s", "no server could be asked for the servers in time");
}

int plog_loadbalance_router_open(const char *addr, const plog_client_config *cfg, const char *cert_file,
                                 const char *key_file, const char *ca_file, plog_loadbalance_router **rp,
                                 plog_rpc_status *st)
{
    plog_loadbalance_router *r = calloc(1, sizeof *r);
    if (r == NULL)
        return plog_rpc_status_set(st, PLOG_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    if (cfg != NULL)
        r->cfg = *cfg;
    r->cfg.tls = NULL;
    if (r->cfg.timeout_ms == 0)
        r->cfg.timeout_ms = 10000;
    r->cert = cert_file != NULL ? strdup(cert_file) : NULL;
    r->key = key_file != NULL ? strdup(key_file) : NULL;
    r->ca = ca_file != NULL ? strdup(ca_file) : NULL;
    const char *sep = strstr(addr, "://");
    if (sep == NULL) {
        plog_loadbalance_router_close(r);
        return plog_rpc_status_set(st, PLOG_STATUS_INVALID_ARGUMENT, "want tls+tcp://HOST:PORT, not %s",
                                   addr);
    }
    snprintf(r->scheme, sizeof r->scheme, "%.*s", (int)(sep + 3 - addr), addr);
    int64_t deadline = now_ms() + r->cfg.timeout_ms;
    plog_client *c = conn_for(r, sep + 3, false, deadline, st);
    if (c == NULL) {
        plog_loadbalance_router_close(r);
        return st != NULL ? st->code : PLOG_STATUS_UNAVAILABLE;
    }
    int code = refresh(r, deadline, st);
    if (code != PLOG_STATUS_OK) {
        plog_loadbalance_router_close(r);
        return code;
    }
    *rp = r;
    return PLOG_STATUS_OK;
}

static bool retryable(int code, const plog_rpc_status *st)
{
    return code == PLOG_STATUS_UNAVAILABLE || code == PLOG_STATUS_DEADLINE_EXCEEDED ||
           (code == PLOG_STATUS_FAILED_PRECONDITION && st != NULL && strncmp(st->msg, "not leader", 10) == 0);
}

/* produce_once sends one Produce (n == 1) or ProduceStream batch with seq. */
static int produce_once(plog_client *c, const void *const *values, const size_t *lens, size_t n, uint64_t seq,
                        uint32_t timeout_ms, uint64_t *first, plog_rpc_status *st)
{
    Log__V1__Record recs[64], *ptrs[64];
    Log__V1__Record *rv = n <= 64 ? recs : calloc(n, sizeof *rv);
    Log__V1__Record **pv = n <= 64 ? ptrs : calloc(n, sizeof *pv);
    if (rv == NULL || pv == NULL) {
        if (rv != recs)
            free(rv);
        if (pv != ptrs)
            free(pv);
        return plog_rpc_status_set(st, PLOG_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        log__v1__record__init(&rv[i]);
        rv[i].value.data = (uint8_t *)values[i];
        rv[i].value.len = lens[i];
        pv[i] = &rv[i];
    }
    Log__V1__ProduceRequest req = LOG__V1__PRODUCE_REQUEST__INIT;
    if (n == 1) {
        req.record = &rv[0];
    } else {
        req.records = pv;
        req.n_records = n;
    }
    nng_msg *reply;
    plog_rpc_reply rp;
    int code =
        plog_client_call(c, plog_rpc_method_name(n == 1 ? PLOG_METHOD_PRODUCE : PLOG_METHOD_PRODUCE_STREAM),
                         &req.base, seq, timeout_ms, &reply, &rp, st);
    if (rv != recs)
        free(rv);
    if (pv != ptrs)
        free(pv);
    if (code != PLOG_STATUS_OK)
        return code;
    Log__V1__ProduceResponse *resp = log__v1__produce_response__unpack(NULL, rp.body_len, rp.body);
    nng_msg_free(reply);
    if (resp == NULL)
        return plog_rpc_status_set(st, PLOG_STATUS_INTERNAL, "malformed ProduceResponse");
    *first = resp->offset;
    log__v1__produce_response__free_unpacked(resp, NULL);
    return PLOG_STATUS_OK;
}

/* leaderless returns code, a failed call's, as UNAVAILABLE when its deadline ran
 * out on "not leader" answers (an election still going on, a server naming a
 * leader that no longer leads): it failed for want of a leader, as one that found
 * none did, so a caller retries (proglogctl exits 4, not 6, the exit of a request
 * that cannot succeed as it is). */
static int leaderless(int code, plog_rpc_status *st)
{
    if (code != PLOG_STATUS_FAILED_PRECONDITION || !retryable(code, st))
        return code;
    char last[sizeof st->msg];
    memcpy(last, st->msg, sizeof last);
    return plog_rpc_status_set(st, PLOG_STATUS_UNAVAILABLE,
                               "no leader took it within the deadline (last: %.180s)", last);
}

/* produce_failed returns code, a failed produce's (leaderless), with st saying so
 * when an earlier attempt reached sent_to and ended without its outcome (no
 * answer, or a leader that lost its office before the commit): that one may have
 * been applied, whatever the last attempt found (e.g. "no leader known"). */
static int produce_failed(int code, const char *sent_to, plog_rpc_status *st)
{
    code = leaderless(code, st);
    if (sent_to[0] == '\0' || st == NULL || strstr(st->msg, "may or may not") != NULL)
        return code;
    size_t len = strlen(st->msg);
    snprintf(
        st->msg + len, sizeof st->msg - len,
        "; an earlier attempt sent to %s ended without its outcome: the produce may or may not have been "
        "applied",
        sent_to);
    return code;
}

/* A call that only the leader can answer: one attempt on c within timeout_ms. */
typedef int (*leader_call)(plog_client *c, uint32_t timeout_ms, void *arg, plog_rpc_status *st);

/* on_leader makes call on the leader until it succeeds, fails in a way no retry
 * mends, or r's timeout has passed in all, refreshing the servers between
 * attempts with backoff (every FAST_RETRY_MS at first while no leader is known
 * or its connection is down); one attempt takes at most attempt_max_ms. sent_to
 * (size 128) names the last server an attempt reached that ended without an answer. */
static int on_leader(plog_loadbalance_router *r, leader_call call, void *arg, int64_t attempt_max_ms,
                     char *sent_to, plog_rpc_status *st)
{
    int64_t start = now_ms(), deadline = start + r->cfg.timeout_ms;
    int backoff = BACKOFF_MIN_MS;
    for (;;) {
        int code;
        bool fast = false;
        int idx = plog_loadbalance_pick(&r->picker, true);
        if (idx < 0) {
            code = plog_rpc_status_set(st, PLOG_STATUS_UNAVAILABLE, "no leader known");
            fast = true;
        } else {
            char addr[128];
            snprintf(addr, sizeof addr, "%s", r->picker.servers[idx].rpc_addr);
            plog_client *c = conn_for(r, addr, true, deadline, st);
            int64_t left = deadline - now_ms();
            if (left > attempt_max_ms)
                left = attempt_max_ms;
            if (c != NULL && !plog_client_connected(c)) {
                code = plog_rpc_status_set(st, PLOG_STATUS_UNAVAILABLE, "no connection to %s", addr);
                fast = true;
            } else {
                code = c == NULL ? (st != NULL ? st->code : PLOG_STATUS_UNAVAILABLE)
                                 : call(c, (uint32_t)(left > 0 ? left : 1), arg, st);
                /* Lost, late, or its leader stepped down before the commit: the
                 * server may have applied it ("not leader" and the other answers
                 * say it did not). */
                if (c != NULL && (code == PLOG_STATUS_UNAVAILABLE || code == PLOG_STATUS_DEADLINE_EXCEEDED))
                    snprintf(sent_to, 128, "%s", addr);
            }
            if (code == PLOG_STATUS_OK || !retryable(code, st))
                return code;
            /* The connection stays: its dialer reconnects by itself, and closing
             * TLS clients whose server just died can hang nng 1.5.2's reaper. */
        }
        int wait = fast && now_ms() - start < FAST_RETRY_FOR_MS ? FAST_RETRY_MS : backoff;
        if (now_ms() + wait >= deadline)
            return code;
        r->retries++;
        sleep_ms(wait);
        if (wait == backoff)
            backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
        plog_rpc_status ignored;
        refresh(r, deadline, &ignored);
    }
}

struct produce_call {
    const void *const *values;
    const size_t *lens;
    size_t n;
    uint64_t seq, *first;
};

static int produce_call(plog_client *c, uint32_t timeout_ms, void *arg, plog_rpc_status *st)
{
    struct produce_call *a = arg;
    return produce_once(c, a->values, a->lens, a->n, a->seq, timeout_ms, a->first, st);
}

int plog_loadbalance_router_produce(plog_loadbalance_router *r, const void *const *values, const size_t *lens,
                                    size_t n, uint64_t *first, plog_rpc_status *st)
{
    /* one (client id, seq) for every attempt */
    struct produce_call a = {.values = values, .lens = lens, .n = n, .seq = ++r->seq, .first = first};
    char sent_to[128] = ""; /* an attempt without an answer went there */
    int code = on_leader(r, produce_call, &a, ATTEMPT_MAX_MS, sent_to, st);
    return code == PLOG_STATUS_OK ? code : produce_failed(code, sent_to, st);
}

struct read_call {
    uint64_t off;
    Log__V1__Record **rec;
};

static int read_call(plog_client *c, uint32_t timeout_ms, void *arg, plog_rpc_status *st)
{
    struct read_call *a = arg;
    return plog_client_read(c, a->off, true, timeout_ms, a->rec, st);
}

int plog_loadbalance_router_read(plog_loadbalance_router *r, uint64_t off, Log__V1__Record **rec,
                                 plog_rpc_status *st)
{
    struct read_call a = {.off = off, .rec = rec};
    char sent_to[128] = "";
    return leaderless(on_leader(r, read_call, &a, READ_ATTEMPT_MAX_MS, sent_to, st), st);
}

int plog_loadbalance_router_consume(plog_loadbalance_router *r, uint64_t off, Log__V1__Record **rec,
                                    plog_rpc_status *st)
{
    int64_t deadline = now_ms() + r->cfg.timeout_ms;
    int backoff = BACKOFF_MIN_MS;
    for (;;) {
        int code;
        int idx = plog_loadbalance_pick(&r->picker, false);
        if (idx < 0) {
            code = plog_rpc_status_set(st, PLOG_STATUS_UNAVAILABLE, "no server known");
        } else {
            char addr[128];
            snprintf(addr, sizeof addr, "%s", r->picker.servers[idx].rpc_addr);
            plog_client *c = conn_for(r, addr, true, deadline, st);
            code = c == NULL ? (st != NULL ? st->code : PLOG_STATUS_UNAVAILABLE)
                             : plog_client_consume(c, off, rec, st);
            if (code != PLOG_STATUS_UNAVAILABLE && code != PLOG_STATUS_DEADLINE_EXCEEDED)
                return code;
        }
        if (now_ms() + backoff >= deadline)
            return code;
        r->retries++;
        sleep_ms(backoff);
        backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
        plog_rpc_status ignored;
        refresh(r, deadline, &ignored);
    }
}

const plog_loadbalance_picker *plog_loadbalance_router_servers(const plog_loadbalance_router *r)
{
    return &r->picker;
}

uint64_t plog_loadbalance_router_retries(const plog_loadbalance_router *r)
{
    return r->retries;
}

void plog_loadbalance_router_close(plog_loadbalance_router *r)
{
    if (r == NULL)
        return;
    for (size_t i = 0; i < r->nconns; i++)
        plog_client_close(r->conns[i].c);
    free(r->cert);
    free(r->key);
    free(r->ca);
    free(r);
}
