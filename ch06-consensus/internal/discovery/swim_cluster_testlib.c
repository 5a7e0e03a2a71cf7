/* swim_cluster_testlib.c - the simulated cluster of swim_cluster.h. In-flight messages
 * sit in a binary heap ordered by (delivery time, send order); a step takes the
 * earliest of the next delivery and the nodes' deadlines. */
#include "internal/discovery/swim_cluster.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal/err/err.h"

struct inflight {
    uint64_t at, order;
    size_t from, to;
    uint8_t *data;
    size_t len;
};

struct node {
    plog_membership *m;
    char name[24], addr[40], rpc[40];
    bool leaving;
    uint64_t stop_at; /* leaving: when the driver stops it */
};

struct plog_swim_cluster {
    plog_swim_cluster_opts o;
    uint64_t now, rng, order, delivered;
    struct node nodes[PLOG_SWIM_CLUSTER_MAX];
    bool cut[PLOG_SWIM_CLUSTER_MAX][PLOG_SWIM_CLUSTER_MAX];
    struct inflight *heap;
    size_t nheap, capheap;
    plog_swim_cluster_event *ev;
    size_t nev, capev;
    uint64_t false_failures;
    bool tracing;
    char *trace;
    size_t ntrace, captrace;
};

static void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n);
    if (q == NULL) {
        fprintf(stderr, "cluster: out of memory\n");
        abort();
    }
    return q;
}

static uint64_t rnd(plog_swim_cluster *c)
{
    uint64_t z = (c->rng += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

uint64_t plog_swim_cluster_seed(uint64_t dflt)
{
    const char *s = getenv("SEED");
    return s != NULL && *s != '\0' ? strtoull(s, NULL, 0) : dflt;
}

static void tracef(plog_swim_cluster *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void tracef(plog_swim_cluster *c, const char *fmt, ...)
{
    if (!c->tracing)
        return;
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n >= sizeof line)
        n = sizeof line - 1;
    if (c->ntrace + (size_t)n + 2 > c->captrace) {
        c->captrace = (c->captrace + (size_t)n + 2) * 2;
        c->trace = xrealloc(c->trace, c->captrace);
    }
    memcpy(c->trace + c->ntrace, line, (size_t)n);
    c->ntrace += (size_t)n;
    c->trace[c->ntrace++] = '\n';
    c->trace[c->ntrace] = '\0';
}

/* addf appends to buf at *w, truncating at size. */
static void addf(char *buf, size_t size, size_t *w, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void addf(char *buf, size_t size, size_t *w, const char *fmt, ...)
{
    if (*w + 1 >= size)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf + *w, size - *w, fmt, ap);
    va_end(ap);
    if (n > 0)
        *w = *w + (size_t)n < size ? *w + (size_t)n : size - 1;
}

/* ---- heap of in-flight messages ---- */

static bool before(const struct inflight *a, const struct inflight *b)
{
    return a->at != b->at ? a->at < b->at : a->order < b->order;
}

static void heap_push(plog_swim_cluster *c, struct inflight f)
{
    if (c->nheap == c->capheap) {
        c->capheap = c->capheap ? c->capheap * 2 : 256;
        c->heap = xrealloc(c->heap, c->capheap * sizeof *c->heap);
    }
    size_t i = c->nheap++;
    while (i > 0 && before(&f, &c->heap[(i - 1) / 2])) {
        c->heap[i] = c->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    c->heap[i] = f;
}

static struct inflight heap_pop(plog_swim_cluster *c)
{
    struct inflight top = c->heap[0], last = c->heap[--c->nheap];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        const struct inflight *best = &last;
        if (l < c->nheap && before(&c->heap[l], best))
            m = l, best = &c->heap[l];
        if (r < c->nheap && before(&c->heap[r], best))
            m = r;
        if (m == i)
            break;
        c->heap[i] = c->heap[m];
        i = m;
    }
    if (c->nheap > 0)
        c->heap[i] = last;
    return top;
}

/* ---- tracing ---- */

static void trace_msg(plog_swim_cluster *c, size_t from, size_t to, const uint8_t *data, size_t len,
                      bool lost)
{
    if (!c->tracing)
        return;
    plog_gossip_msg m;
    if (plog_gossip_decode(data, len, &m) != PLOG_OK) {
        tracef(c, "[%6llu] %s -> %s undecodable", (unsigned long long)c->now, c->nodes[from].name,
               c->nodes[to].name);
        return;
    }
    char what[768];
    size_t w = 0;
    if (m.type == PLOG_GOSSIP_PUSH_PULL) {
        addf(what, sizeof what, &w, "push-pull%s%s (%zu members)",
             m.flags & PLOG_GOSSIP_FLAG_JOIN ? " join" : "", m.flags & PLOG_GOSSIP_FLAG_REPLY ? " reply" : "",
             m.nstates);
    } else {
        addf(what, sizeof what, &w, "%s", plog_gossip_type_name(m.type));
        if (m.type != PLOG_GOSSIP_GOSSIP)
            addf(what, sizeof what, &w, " seq=%u", (unsigned)m.seq);
        if (m.type == PLOG_GOSSIP_PING_REQ ||
            (m.type == PLOG_GOSSIP_PING && strcmp(m.target, c->nodes[to].name) != 0))
            addf(what, sizeof what, &w, " target=%s", m.target);
        for (size_t i = 0; i < m.nstates; i++) {
            const plog_gossip_state *s = &m.states[i];
            addf(what, sizeof what, &w, "%s%s %s/%llu%s%s", i == 0 ? " [" : ", ", s->name,
                 plog_gossip_status_name(s->status), (unsigned long long)s->incarnation,
                 s->from[0] ? " by " : "", s->from);
        }
        if (m.nstates > 0)
            addf(what, sizeof what, &w, "]");
    }
    tracef(c, "[%6llu] %s -> %s %s%s", (unsigned long long)c->now, c->nodes[from].name, c->nodes[to].name,
           what, lost ? "  (lost)" : "");
    plog_gossip_release(&m);
}

static const char *event_name(int type)
{
    switch (type) {
    case PLOG_MEMBERSHIP_JOIN:
        return "JOIN";
    case PLOG_MEMBERSHIP_LEAVE:
        return "LEAVE";
    case PLOG_MEMBERSHIP_FAILED:
        return "FAILED";
    case PLOG_MEMBERSHIP_UPDATE:
        return "UPDATE";
    default:
        return "?";
    }
}

/* ---- driving the nodes ---- */

static size_t node_of_addr(const plog_swim_cluster *c, const char *addr)
{
    for (size_t i = 0; i < c->o.n; i++)
        if (strcmp(c->nodes[i].addr, addr) == 0)
            return i;
    return SIZE_MAX;
}

static size_t node_of_name(const plog_swim_cluster *c, const char *name)
{
    for (size_t i = 0; i < c->o.n; i++)
        if (strcmp(c->nodes[i].name, name) == 0)
            return i;
    return SIZE_MAX;
}

/* drain takes what node i wants sent and what it saw. */
static void drain(plog_swim_cluster *c, size_t i)
{
    plog_membership *m = c->nodes[i].m;
    plog_membership_send s;
    while (plog_membership_pop_send(m, &s)) {
        size_t to = node_of_addr(c, s.addr);
        if (to == SIZE_MAX) {
            free(s.data);
            continue;
        }
        bool lost =
            c->cut[i][to] || (c->o.loss > 0 && (double)(rnd(c) >> 11) / 9007199254740992.0 < c->o.loss);
        trace_msg(c, i, to, s.data, s.len, lost);
        if (lost) {
            free(s.data);
            continue;
        }
        uint64_t span = c->o.max_latency_ms - c->o.min_latency_ms + 1;
        struct inflight f = {.at = c->now + c->o.min_latency_ms + rnd(c) % span,
                             .order = ++c->order,
                             .from = i,
                             .to = to,
                             .data = s.data,
                             .len = s.len};
        heap_push(c, f);
    }
    plog_membership_event e;
    while (plog_membership_pop_event(m, &e)) {
        if (c->nev == c->capev) {
            c->capev = c->capev ? c->capev * 2 : 256;
            c->ev = xrealloc(c->ev, c->capev * sizeof *c->ev);
        }
        plog_swim_cluster_event *r = &c->ev[c->nev++];
        r->at_ms = c->now;
        r->node = i;
        r->type = e.type;
        memcpy(r->subject, e.member.name, sizeof r->subject);
        size_t subj = node_of_name(c, e.member.name);
        if (e.type == PLOG_MEMBERSHIP_FAILED && subj != SIZE_MAX && c->nodes[subj].m != NULL &&
            !c->nodes[subj].leaving)
            c->false_failures++;
        tracef(c, "[%6llu] %s event %s %s (incarnation %llu)", (unsigned long long)c->now, c->nodes[i].name,
               event_name(e.type), e.member.name, (unsigned long long)e.member.incarnation);
    }
}

plog_swim_cluster *plog_swim_cluster_new(const plog_swim_cluster_opts *o)
{
    if (o->n == 0 || o->n > PLOG_SWIM_CLUSTER_MAX || o->max_latency_ms < o->min_latency_ms) {
        fprintf(stderr, "cluster: bad options\n");
        abort();
    }
    plog_swim_cluster *c = xrealloc(NULL, sizeof *c);
    memset(c, 0, sizeof *c);
    c->o = *o;
    c->rng = o->seed;
    for (size_t i = 0; i < o->n; i++) {
        snprintf(c->nodes[i].name, sizeof c->nodes[i].name, "n%zu", i + 1);
        snprintf(c->nodes[i].addr, sizeof c->nodes[i].addr, "sim://n%zu", i + 1);
        snprintf(c->nodes[i].rpc, sizeof c->nodes[i].rpc, "sim-rpc://n%zu", i + 1);
    }
    return c;
}

void plog_swim_cluster_free(plog_swim_cluster *c)
{
    if (c == NULL)
        return;
    for (size_t i = 0; i < c->o.n; i++)
        plog_membership_free(c->nodes[i].m);
    for (size_t i = 0; i < c->nheap; i++)
        free(c->heap[i].data);
    free(c->heap);
    free(c->ev);
    free(c->trace);
    free(c);
}

void plog_swim_cluster_start(plog_swim_cluster *c, size_t i, uint64_t inc, size_t seed)
{
    struct node *nd = &c->nodes[i];
    if (nd->m != NULL)
        plog_swim_cluster_kill(c, i);
    plog_membership_config cfg = c->o.cfg;
    plog_gossip_tag tag = {"rpc_addr", nd->rpc};
    cfg.name = nd->name;
    cfg.addr = nd->addr;
    cfg.tags = &tag;
    cfg.ntags = 1;
    cfg.incarnation = inc;
    cfg.seed = rnd(c);
    if (plog_membership_new(&cfg, c->now, &nd->m) != PLOG_OK) {
        fprintf(stderr, "cluster: plog_membership_new failed\n");
        abort();
    }
    nd->leaving = false;
    tracef(c, "[%6llu] -- start %s (incarnation %llu)%s%s", (unsigned long long)c->now, nd->name,
           (unsigned long long)inc, seed != i ? ", join via " : "", seed != i ? c->nodes[seed].name : "");
    if (seed != i) {
        const char *addrs[] = {c->nodes[seed].addr};
        if (plog_membership_join(nd->m, c->now, addrs, 1) != PLOG_OK)
            abort();
    }
    drain(c, i);
}

void plog_swim_cluster_kill(plog_swim_cluster *c, size_t i)
{
    tracef(c, "[%6llu] -- kill %s", (unsigned long long)c->now, c->nodes[i].name);
    plog_membership_free(c->nodes[i].m);
    c->nodes[i].m = NULL;
    c->nodes[i].leaving = false;
}

void plog_swim_cluster_leave(plog_swim_cluster *c, size_t i, uint64_t linger_ms)
{
    tracef(c, "[%6llu] -- %s leaves", (unsigned long long)c->now, c->nodes[i].name);
    c->nodes[i].leaving = true;
    c->nodes[i].stop_at = c->now + linger_ms;
    plog_membership_leave(c->nodes[i].m, c->now);
    drain(c, i);
}

void plog_swim_cluster_cut(plog_swim_cluster *c, size_t i, size_t j, bool cut)
{
    c->cut[i][j] = cut;
}

void plog_swim_cluster_heal(plog_swim_cluster *c)
{
    tracef(c, "[%6llu] -- heal", (unsigned long long)c->now);
    memset(c->cut, 0, sizeof c->cut);
}

void plog_swim_cluster_set_loss(plog_swim_cluster *c, double loss)
{
    c->o.loss = loss;
}

/* step runs the earliest pending thing if it is due by t; false when nothing is. */
static bool step(plog_swim_cluster *c, uint64_t t)
{
    uint64_t next = c->nheap > 0 ? c->heap[0].at : UINT64_MAX;
    for (size_t i = 0; i < c->o.n; i++) {
        struct node *nd = &c->nodes[i];
        if (nd->m == NULL)
            continue;
        uint64_t d = plog_membership_next_deadline(nd->m);
        if (nd->leaving && nd->stop_at < d)
            d = nd->stop_at;
        if (d < next)
            next = d;
    }
    if (next > t)
        return false;
    if (next > c->now)
        c->now = next;
    while (c->nheap > 0 && c->heap[0].at <= c->now) {
        struct inflight f = heap_pop(c);
        struct node *nd = &c->nodes[f.to];
        if (nd->m != NULL) {
            int rv = plog_membership_recv(nd->m, c->now, f.data, f.len);
            if (rv != PLOG_OK) {
                fprintf(stderr, "cluster: %s rejected a message: %s\n", nd->name, plog_strerror(rv));
                abort();
            }
            c->delivered++;
            drain(c, f.to);
        }
        free(f.data);
    }
    for (size_t i = 0; i < c->o.n; i++) {
        struct node *nd = &c->nodes[i];
        if (nd->m == NULL)
            continue;
        if (nd->leaving && c->now >= nd->stop_at) {
            tracef(c, "[%6llu] -- %s stops", (unsigned long long)c->now, nd->name);
            plog_membership_free(nd->m);
            nd->m = NULL;
            continue;
        }
        if (plog_membership_next_deadline(nd->m) <= c->now) {
            plog_membership_tick(nd->m, c->now);
            drain(c, i);
        }
    }
    return true;
}

void plog_swim_cluster_run_until(plog_swim_cluster *c, uint64_t t)
{
    while (step(c, t))
        ;
    if (c->now < t)
        c->now = t;
}

bool plog_swim_cluster_run_until_true(plog_swim_cluster *c, bool (*cond)(plog_swim_cluster *, void *),
                                      void *arg, uint64_t t)
{
    if (cond(c, arg))
        return true;
    while (step(c, t))
        if (cond(c, arg))
            return true;
    if (c->now < t)
        c->now = t;
    return cond(c, arg);
}

uint64_t plog_swim_cluster_now(const plog_swim_cluster *c)
{
    return c->now;
}

bool plog_swim_cluster_is_running(const plog_swim_cluster *c, size_t i)
{
    return c->nodes[i].m != NULL;
}

plog_membership *plog_swim_cluster_node(plog_swim_cluster *c, size_t i)
{
    return c->nodes[i].m;
}

int plog_swim_cluster_status(const plog_swim_cluster *c, size_t viewer, size_t subject)
{
    plog_membership_member mb;
    if (c->nodes[viewer].m == NULL || !plog_membership_find(c->nodes[viewer].m, c->nodes[subject].name, &mb))
        return 0;
    return mb.status;
}

bool plog_swim_cluster_converged(plog_swim_cluster *c, void *unused)
{
    (void)unused;
    for (size_t v = 0; v < c->o.n; v++) {
        if (c->nodes[v].m == NULL)
            continue;
        for (size_t s = 0; s < c->o.n; s++) {
            bool up = c->nodes[s].m != NULL && !c->nodes[s].leaving;
            if ((plog_swim_cluster_status(c, v, s) == PLOG_GOSSIP_ALIVE) != up)
                return false;
        }
    }
    return true;
}

const plog_swim_cluster_event *plog_swim_cluster_events(const plog_swim_cluster *c, size_t *n)
{
    *n = c->nev;
    return c->ev;
}

uint64_t plog_swim_cluster_false_failures(const plog_swim_cluster *c)
{
    return c->false_failures;
}

uint64_t plog_swim_cluster_messages(const plog_swim_cluster *c)
{
    return c->delivered;
}

void plog_swim_cluster_trace(plog_swim_cluster *c, bool on)
{
    c->tracing = on;
}

const char *plog_swim_cluster_trace_text(const plog_swim_cluster *c)
{
    return c->trace != NULL ? c->trace : "";
}
