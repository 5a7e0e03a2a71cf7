/* cluster_testlib.c - the simulated cluster of cluster_testlib.h.
 *
 * Scheduling: a binary heap of (time, seq) events - message deliveries and disk writes
 * completing - plus each core's tick deadline. seq breaks ties in the order events were
 * made, so a seed replays exactly.
 *
 * Safety checks, each after the step that could break it (Raft paper, Figure 3):
 *   Election Safety      leader_of[term] is set once
 *   Leader Append-Only   a leader's writes start past its previous last index
 *   Log Matching         (index, term) stored anywhere always has the same content and
 *                        the same previous term (by induction: same prefix)
 *   Leader Completeness  a new leader holds every entry committed so far
 *   State Machine Safety every server applies the same entry at each index
 * An entry's identity ("key"): its proposal id (NORMAL), 0 (NOOP), a hash (CONFIG). */
#include "internal/raft/cluster_testlib.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal/err/err.h"

/* ---- small helpers ---------------------------------------------------------------- */

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (p == NULL)
        abort(); /* test-only code */
    return p;
}

static void *xrealloc(void *p, size_t n)
{
    p = realloc(p, n ? n : 1);
    if (p == NULL)
        abort();
    return p;
}

#define GROW(arr, n, cap)                                   \
    do {                                                    \
        if ((n) >= (cap)) {                                 \
            (cap) = (cap) ? (cap)*2 : 16;                   \
            while ((cap) <= (n))                            \
                (cap) *= 2;                                 \
            (arr) = xrealloc((arr), (cap) * sizeof *(arr)); \
        }                                                   \
    } while (0)

static uint64_t entry_key(const plog_raft_entry *e)
{
    if (e->type == PLOG_RAFT_ENTRY_NOOP)
        return 0;
    if (e->type == PLOG_RAFT_ENTRY_NORMAL && e->len == 8) {
        uint64_t pid;
        memcpy(&pid, e->data, 8);
        return pid;
    }
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (size_t i = 0; i < e->len; i++)
        h = (h ^ e->data[i]) * 1099511628211ULL;
    return h | (1ULL << 63) | e->type;
}

/* ---- state ------------------------------------------------------------------------ */

typedef struct sm_pair {
    uint64_t index, pid;
} sm_pair;

typedef struct stored {
    uint64_t term, index;
    uint8_t type;
    uint8_t *data;
    size_t len;
} stored;

typedef struct node {
    struct plog_sim *sim;
    uint64_t id;
    bool up;
    uint64_t epoch;
    plog_raft *r;
    plog_raft_config cfg;
    uint64_t deadline, disk_free;
    unsigned hs_pending; /* writes of hard state or a snapshot not completed yet */
    /* storage: what survives a crash */
    plog_raft_hard_state hs;
    bool has_snap;
    plog_raft_snapshot snap; /* data owned */
    stored *ents;            /* contiguous indexes */
    size_t n_ents, cap_ents;
    /* state machine: volatile */
    uint64_t sm_index, sm_snap_index;
    sm_pair *sm;
    size_t n_sm, cap_sm;
    /* what the checks remember */
    int role;
    uint64_t term, lead_last;
    plog_raft_read *reads_done;
    size_t n_reads_done, cap_reads_done;
} node;

typedef struct op {
    uint64_t node, epoch;
    bool has_hs;
    plog_raft_hard_state hs;
    bool has_snap, snap_install;
    plog_raft_snapshot snap; /* data owned */
    uint64_t keep_from;      /* a snapshot taken: stored entries before it go */
    stored *ents;
    size_t n_ents;
    plog_raft_msg **msgs;
    size_t n_msgs;
    stored *committed; /* data not copied: only keys matter */
    uint64_t *keys;
    size_t n_committed;
    plog_raft_read *reads;
    size_t n_reads;
    bool writes;
} op;

enum { EV_MSG = 1, EV_OP };
typedef struct hev {
    uint64_t t, seq;
    int kind;
    void *p;
} hev;

typedef struct idx_info {
    bool applied_set, committed_set;
    uint64_t applied_term, applied_key, committed_term, committed_key;
    struct {
        uint64_t term, prev_term, key;
    } seen[6];
    unsigned n_seen;
} idx_info;

typedef struct proposal {
    uint64_t node, epoch, index, term;
    bool acked;
} proposal;

struct plog_sim {
    plog_sim_opts o;
    node nodes[PLOG_SIM_MAX + 1];
    unsigned n_total;
    uint64_t now, seq, steps, rng, digest;
    hev *heap;
    size_t n_heap, cap_heap;
    bool cut[PLOG_SIM_MAX + 1][PLOG_SIM_MAX + 1];
    uint32_t drop_pct, dup_pct;
    uint64_t *leader_of;
    size_t cap_leader_of;
    idx_info *idx;
    size_t cap_idx;
    uint64_t max_committed;
    proposal *props;
    size_t n_props, cap_props;
    struct read_req {
        uint64_t node, ctx, floor;
    } * read_reqs;
    size_t n_read_reqs, cap_read_reqs;
    uint64_t reads_released;
    uint64_t snapshots_installed, elections, loads;
    char err[512];
    bool failed;
    char *trace;
    size_t trace_len, trace_cap;
};

static uint64_t rnd(plog_sim *s)
{
    uint64_t x = s->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    s->rng = x;
    return x * 0x2545F4914F6CDD1DULL;
}

static uint64_t rnd_between(plog_sim *s, uint64_t lo, uint64_t hi)
{
    return hi <= lo ? lo : lo + rnd(s) % (hi - lo + 1);
}

void plog_sim_note(plog_sim *s, const char *fmt, ...)
{
    if (!s->o.trace)
        return;
    char line[512];
    int k = snprintf(line, sizeof line, "[%5llu] ", (unsigned long long)s->now);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line + k, sizeof line - (size_t)k, fmt, ap);
    va_end(ap);
    size_t len = strlen(line);
    if (s->trace_len + len + 2 > s->trace_cap) {
        s->trace_cap = (s->trace_cap + len + 2) * 2;
        s->trace = xrealloc(s->trace, s->trace_cap);
    }
    memcpy(s->trace + s->trace_len, line, len);
    s->trace_len += len;
    s->trace[s->trace_len++] = '\n';
    s->trace[s->trace_len] = '\0';
    if (getenv("RAFT_TRACE") != NULL)
        fprintf(stderr, "%s\n", line);
}

static void fail(plog_sim *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(plog_sim *s, const char *fmt, ...)
{
    if (s->failed)
        return;
    s->failed = true;
    int k = snprintf(s->err, sizeof s->err, "t=%llu: ", (unsigned long long)s->now);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->err + k, sizeof s->err - (size_t)k, fmt, ap);
    va_end(ap);
    plog_sim_note(s, "VIOLATION %s", s->err);
}

static idx_info *info(plog_sim *s, uint64_t index)
{
    if (index >= s->cap_idx) {
        size_t cap = s->cap_idx ? s->cap_idx : 256;
        while (cap <= index)
            cap *= 2;
        s->idx = xrealloc(s->idx, cap * sizeof *s->idx);
        memset(s->idx + s->cap_idx, 0, (cap - s->cap_idx) * sizeof *s->idx);
        s->cap_idx = cap;
    }
    return &s->idx[index];
}

/* ---- heap ------------------------------------------------------------------------- */

static bool hev_less(const hev *a, const hev *b)
{
    return a->t < b->t || (a->t == b->t && a->seq < b->seq);
}

static void heap_push(plog_sim *s, uint64_t t, int kind, void *p)
{
    GROW(s->heap, s->n_heap, s->cap_heap);
    size_t i = s->n_heap++;
    s->heap[i] = (hev){.t = t, .seq = s->seq++, .kind = kind, .p = p};
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!hev_less(&s->heap[i], &s->heap[parent]))
            break;
        hev tmp = s->heap[i];
        s->heap[i] = s->heap[parent];
        s->heap[parent] = tmp;
        i = parent;
    }
}

static hev heap_pop(plog_sim *s)
{
    hev top = s->heap[0];
    s->heap[0] = s->heap[--s->n_heap];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < s->n_heap && hev_less(&s->heap[l], &s->heap[m]))
            m = l;
        if (r < s->n_heap && hev_less(&s->heap[r], &s->heap[m]))
            m = r;
        if (m == i)
            break;
        hev tmp = s->heap[i];
        s->heap[i] = s->heap[m];
        s->heap[m] = tmp;
        i = m;
    }
    return top;
}

/* ---- copies ----------------------------------------------------------------------- */

typedef struct delivery {
    uint64_t to;
    plog_raft_msg *m;
} delivery;

/* msg_clone makes one block: the message, then its entries, then all data bytes. */
static plog_raft_msg *msg_clone(const plog_raft_msg *m)
{
    size_t bytes = sizeof *m + m->n_entries * sizeof(plog_raft_entry) + m->len;
    for (size_t i = 0; i < m->n_entries; i++)
        bytes += m->entries[i].len;
    uint8_t *block = xmalloc(bytes);
    plog_raft_msg *c = (plog_raft_msg *)block;
    *c = *m;
    plog_raft_entry *ents = (plog_raft_entry *)(block + sizeof *m);
    uint8_t *data = (uint8_t *)(ents + m->n_entries);
    for (size_t i = 0; i < m->n_entries; i++) {
        ents[i] = m->entries[i];
        if (ents[i].len)
            memcpy(data, m->entries[i].data, ents[i].len);
        ents[i].data = data;
        data += ents[i].len;
    }
    c->entries = m->n_entries ? ents : NULL;
    if (m->len)
        memcpy(data, m->data, m->len);
    c->data = m->len ? data : NULL;
    return c;
}

static uint8_t *dup_bytes(const uint8_t *p, size_t len)
{
    uint8_t *d = xmalloc(len);
    if (len)
        memcpy(d, p, len);
    return d;
}

static void op_free(op *o)
{
    if (o == NULL)
        return;
    free((void *)o->snap.data);
    for (size_t i = 0; i < o->n_ents; i++)
        free(o->ents[i].data);
    free(o->ents);
    for (size_t i = 0; i < o->n_msgs; i++)
        free(o->msgs[i]);
    free(o->msgs);
    free(o->committed);
    free(o->keys);
    free(o->reads);
    free(o);
}

/* ---- checks ----------------------------------------------------------------------- */

static void check_log_matching(plog_sim *s, node *nd, const plog_raft_entry *e, uint64_t prev_term)
{
    idx_info *in = info(s, e->index);
    uint64_t key = entry_key(e);
    for (unsigned i = 0; i < in->n_seen; i++) {
        if (in->seen[i].term != e->term)
            continue;
        if (in->seen[i].key != key || in->seen[i].prev_term != prev_term)
            fail(s,
                 "Log Matching: server %llu has index %llu term %llu with key %llx prev term %llu, "
                 "seen before with key %llx prev term %llu",
                 (unsigned long long)nd->id, (unsigned long long)e->index, (unsigned long long)e->term,
                 (unsigned long long)key, (unsigned long long)prev_term, (unsigned long long)in->seen[i].key,
                 (unsigned long long)in->seen[i].prev_term);
        return;
    }
    if (in->n_seen < sizeof in->seen / sizeof in->seen[0]) {
        in->seen[in->n_seen].term = e->term;
        in->seen[in->n_seen].prev_term = prev_term;
        in->seen[in->n_seen].key = key;
        in->n_seen++;
    }
}

static void check_leader_completeness(plog_sim *s, node *nd)
{
    plog_raft_status st;
    plog_raft_get_status(nd->r, &st);
    for (uint64_t i = st.first; i <= s->max_committed; i++) {
        idx_info *in = info(s, i);
        if (!in->committed_set)
            continue;
        if (plog_raft_term_at(nd->r, i) != in->committed_term) {
            fail(s, "Leader Completeness: leader %llu of term %llu lacks committed index %llu term %llu",
                 (unsigned long long)nd->id, (unsigned long long)st.term, (unsigned long long)i,
                 (unsigned long long)in->committed_term);
            return;
        }
    }
}

static void check_applied(plog_sim *s, node *nd, uint64_t index, uint64_t term, uint64_t key)
{
    idx_info *in = info(s, index);
    if (!in->applied_set) {
        in->applied_set = true;
        in->applied_term = term;
        in->applied_key = key;
    } else if (in->applied_key != key || (term != 0 && in->applied_term != term)) {
        fail(s, "State Machine Safety: server %llu applied key %llx at index %llu, another applied %llx",
             (unsigned long long)nd->id, (unsigned long long)key, (unsigned long long)index,
             (unsigned long long)in->applied_key);
    }
}

/* ---- driving one core ------------------------------------------------------------- */

static void schedule_op(plog_sim *s, node *nd, op *o)
{
    uint64_t t = s->now > nd->disk_free ? s->now : nd->disk_free;
    if (o->writes)
        t += rnd_between(s, s->o.disk_min_ms, s->o.disk_max_ms);
    nd->disk_free = t;
    heap_push(s, t, EV_OP, o);
}

static const char *msg_summary(const plog_raft_msg *m, char *buf, size_t n)
{
    switch (m->type) {
    case PLOG_RAFT_MSG_PREVOTE:
    case PLOG_RAFT_MSG_VOTE:
        snprintf(buf, n, "term %llu last %llu/%llu%s", (unsigned long long)m->term,
                 (unsigned long long)m->index, (unsigned long long)m->log_term, m->ctx ? " transfer" : "");
        break;
    case PLOG_RAFT_MSG_PREVOTE_RESP:
    case PLOG_RAFT_MSG_VOTE_RESP:
        snprintf(buf, n, "term %llu %s", (unsigned long long)m->term, m->reject ? "rejected" : "granted");
        break;
    case PLOG_RAFT_MSG_APPEND:
        snprintf(buf, n, "term %llu prev %llu/%llu entries %zu commit %llu", (unsigned long long)m->term,
                 (unsigned long long)m->index, (unsigned long long)m->log_term, m->n_entries,
                 (unsigned long long)m->commit);
        break;
    case PLOG_RAFT_MSG_APPEND_RESP:
        if (m->reject)
            snprintf(buf, n, "term %llu reject %llu hint %llu/%llu", (unsigned long long)m->term,
                     (unsigned long long)m->index, (unsigned long long)m->hint_index,
                     (unsigned long long)m->hint_term);
        else
            snprintf(buf, n, "term %llu match %llu", (unsigned long long)m->term,
                     (unsigned long long)m->index);
        break;
    case PLOG_RAFT_MSG_SNAPSHOT:
        snprintf(buf, n, "term %llu snapshot %llu/%llu bytes %llu+%zu of %llu%s", (unsigned long long)m->term,
                 (unsigned long long)m->index, (unsigned long long)m->log_term, (unsigned long long)m->offset,
                 m->len, (unsigned long long)m->total, m->done ? " done" : "");
        break;
    case PLOG_RAFT_MSG_SNAPSHOT_RESP:
        snprintf(buf, n, "term %llu snapshot %llu have %llu%s%s", (unsigned long long)m->term,
                 (unsigned long long)m->index, (unsigned long long)m->offset, m->done ? " installed" : "",
                 m->reject ? " rejected" : "");
        break;
    default:
        snprintf(buf, n, "term %llu", (unsigned long long)m->term);
    }
    return buf;
}

static const char *ev_name(int t)
{
    static const char *names[] = {"?",       "tick",        "receive", "persisted", "snapshot-taken",
                                  "propose", "conf-change", "read",    "transfer"};
    return t >= 0 && t <= PLOG_RAFT_EV_TRANSFER ? names[t] : "?";
}

/* send_msgs puts o's messages on the network (and takes them from o) */
static void send_msgs(plog_sim *s, op *o)
{
    for (size_t i = 0; i < o->n_msgs; i++) {
        plog_raft_msg *m = o->msgs[i];
        o->msgs[i] = NULL;
        if (m->to > s->n_total || s->cut[m->from][m->to] || rnd(s) % 100 < s->drop_pct) {
            free(m);
            continue;
        }
        if (rnd(s) % 100 < s->dup_pct) {
            delivery *d2 = xmalloc(sizeof *d2);
            d2->to = m->to;
            d2->m = msg_clone(m);
            heap_push(s, s->now + rnd_between(s, s->o.delay_min_ms, s->o.delay_max_ms), EV_MSG, d2);
        }
        delivery *d = xmalloc(sizeof *d);
        d->to = m->to;
        d->m = m;
        heap_push(s, s->now + rnd_between(s, s->o.delay_min_ms, s->o.delay_max_ms), EV_MSG, d);
    }
    o->n_msgs = 0;
}

static int node_step(plog_sim *s, node *nd, const plog_raft_event *ev)
{
    s->digest = (s->digest ^ (s->now * 1000003 + nd->id * 31 + ev->type)) * 1099511628211ULL;
    plog_raft_status before, after;
    plog_raft_get_status(nd->r, &before);
    plog_raft_update up;
    int rv = plog_raft_step(nd->r, ev, &up);
    s->steps++;
    if (rv == PLOG_ENOMEM) {
        fail(s, "server %llu: out of memory", (unsigned long long)nd->id);
        return rv;
    }
    nd->deadline = up.deadline_ms;
    plog_raft_get_status(nd->r, &after);

    if (after.role != before.role || after.term != before.term) {
        plog_sim_note(s, "%llu %s -> %s term %llu (%s)", (unsigned long long)nd->id,
                      plog_raft_role_name(before.role), plog_raft_role_name(after.role),
                      (unsigned long long)after.term, ev_name(ev->type));
    }
    /* Election Safety: at most one leader per term */
    if (after.role == PLOG_RAFT_LEADER && before.role != PLOG_RAFT_LEADER) {
        s->elections++;
        if (after.term >= s->cap_leader_of) {
            size_t cap = s->cap_leader_of ? s->cap_leader_of : 64;
            while (cap <= after.term)
                cap *= 2;
            s->leader_of = xrealloc(s->leader_of, cap * sizeof *s->leader_of);
            memset(s->leader_of + s->cap_leader_of, 0, (cap - s->cap_leader_of) * sizeof *s->leader_of);
            s->cap_leader_of = cap;
        }
        if (s->leader_of[after.term] != 0 && s->leader_of[after.term] != nd->id)
            fail(s, "Election Safety: servers %llu and %llu both lead term %llu",
                 (unsigned long long)s->leader_of[after.term], (unsigned long long)nd->id,
                 (unsigned long long)after.term);
        s->leader_of[after.term] = nd->id;
        check_leader_completeness(s, nd);
    }
    /* Leader Append-Only: a leader only appends to its log */
    if (before.role == PLOG_RAFT_LEADER && after.role == PLOG_RAFT_LEADER && before.term == after.term &&
        up.n_entries > 0 && up.entries[0].index <= before.last)
        fail(s, "Leader Append-Only: leader %llu rewrote index %llu (last was %llu)",
             (unsigned long long)nd->id, (unsigned long long)up.entries[0].index,
             (unsigned long long)before.last);
    /* what the core calls committed must agree everywhere */
    op *o = calloc(1, sizeof *o);
    if (o == NULL)
        abort();
    o->node = nd->id;
    o->epoch = nd->epoch;
    if (up.n_committed) {
        o->committed = xmalloc(up.n_committed * sizeof *o->committed);
        o->keys = xmalloc(up.n_committed * sizeof *o->keys);
        o->n_committed = up.n_committed;
        for (size_t i = 0; i < up.n_committed; i++) {
            const plog_raft_entry *e = &up.committed[i];
            o->committed[i] = (stored){.term = e->term, .index = e->index, .type = e->type};
            o->keys[i] = entry_key(e);
            plog_raft_conf c;
            if (s->o.trace && e->type == PLOG_RAFT_ENTRY_CONFIG &&
                plog_raft_conf_decode(e->data, e->len, &c) == PLOG_OK) {
                char line[256];
                size_t k = 0;
                for (unsigned j = 0; j < c.n && k < sizeof line - 40; j++)
                    k += (size_t)snprintf(line + k, sizeof line - k, " %llu%s",
                                          (unsigned long long)c.servers[j].id,
                                          c.servers[j].role == PLOG_RAFT_LEARNER
                                              ? (c.servers[j].promote ? "(learner, to promote)" : "(learner)")
                                              : "");
                plog_sim_note(s, "%llu configuration at %llu committed:%s", (unsigned long long)nd->id,
                              (unsigned long long)e->index, line);
            }
            idx_info *in = info(s, e->index);
            if (!in->committed_set) {
                in->committed_set = true;
                in->committed_term = e->term;
                in->committed_key = o->keys[i];
                if (e->index > s->max_committed)
                    s->max_committed = e->index;
            } else if (in->committed_term != e->term || in->committed_key != o->keys[i]) {
                fail(s,
                     "State Machine Safety: server %llu commits index %llu term %llu, "
                     "committed before with term %llu",
                     (unsigned long long)nd->id, (unsigned long long)e->index, (unsigned long long)e->term,
                     (unsigned long long)in->committed_term);
            }
        }
        if (after.commit != before.commit && s->o.trace)
            plog_sim_note(s, "%llu commit %llu", (unsigned long long)nd->id,
                          (unsigned long long)after.commit);
    }
    if (up.flags & PLOG_RAFT_UPD_HARDSTATE) {
        o->has_hs = true;
        o->hs = up.hs;
        o->writes = true;
    }
    if (up.snapshot != NULL) {
        o->has_snap = o->snap_install = true;
        o->snap = *up.snapshot;
        o->snap.data = dup_bytes(up.snapshot->data, up.snapshot->len);
        o->writes = true;
        s->snapshots_installed++;
        plog_sim_note(s, "%llu installs snapshot %llu/%llu", (unsigned long long)nd->id,
                      (unsigned long long)up.snapshot->index, (unsigned long long)up.snapshot->term);
    }
    if (up.n_entries) {
        o->ents = xmalloc(up.n_entries * sizeof *o->ents);
        o->n_ents = up.n_entries;
        for (size_t i = 0; i < up.n_entries; i++) {
            const plog_raft_entry *e = &up.entries[i];
            o->ents[i] = (stored){.term = e->term,
                                  .index = e->index,
                                  .type = e->type,
                                  .data = dup_bytes(e->data, e->len),
                                  .len = e->len};
        }
        o->writes = true;
    }
    if (up.n_msgs) {
        o->msgs = xmalloc(up.n_msgs * sizeof *o->msgs);
        o->n_msgs = up.n_msgs;
        for (size_t i = 0; i < up.n_msgs; i++)
            o->msgs[i] = msg_clone(&up.msgs[i]);
    }
    if (up.n_reads) {
        o->reads = xmalloc(up.n_reads * sizeof *o->reads);
        o->n_reads = up.n_reads;
        memcpy(o->reads, up.reads, up.n_reads * sizeof *o->reads);
    }
    if (up.compacted != NULL && ev->type == PLOG_RAFT_EV_SNAPSHOT_TAKEN) {
        o->has_snap = true;
        o->snap = *up.compacted;
        o->snap.data = dup_bytes(ev->snap_data, ev->snap_len); /* the core's now, until the next step */
        o->snap.len = ev->snap_len;
        o->keep_from = up.keep_from;
        o->writes = true;
    }
    nd->role = after.role;
    nd->term = after.term;
    nd->lead_last = after.last;
    /* thesis §10.2.1, as raft.h allows: a leader's messages go before its entries are
     * written, once every earlier hard state is; its write completes later (and a
     * crash before then loses it) */
    if ((up.flags & PLOG_RAFT_UPD_SEND_EARLY) && nd->hs_pending == 0)
        send_msgs(s, o);
    if (o->has_hs || o->has_snap)
        nd->hs_pending++;
    schedule_op(s, nd, o);
    return rv;
}

/* stored_term: the term of the stored entry at index (the snapshot's own index too) */
static uint64_t stored_term(const node *nd, uint64_t index)
{
    if (index == 0)
        return 0;
    if (nd->has_snap && index == nd->snap.index)
        return nd->snap.term;
    if (nd->n_ents > 0 && index >= nd->ents[0].index && index <= nd->ents[nd->n_ents - 1].index)
        return nd->ents[index - nd->ents[0].index].term;
    return 0;
}

static void store_entries(node *nd, const op *o)
{
    uint64_t first = o->ents[0].index;
    uint64_t base = nd->has_snap ? nd->snap.index : 0;
    if (nd->n_ents > 0)
        base = nd->ents[0].index - 1;
    /* delete from first on, then append */
    while (nd->n_ents > 0 && nd->ents[nd->n_ents - 1].index >= first) {
        free(nd->ents[--nd->n_ents].data);
    }
    (void)base;
    for (size_t i = 0; i < o->n_ents; i++) {
        GROW(nd->ents, nd->n_ents, nd->cap_ents);
        stored *d = &nd->ents[nd->n_ents++];
        *d = o->ents[i];
        d->data = dup_bytes(o->ents[i].data, o->ents[i].len);
    }
}

static void drop_stored_upto(node *nd, uint64_t index)
{
    size_t k = 0;
    while (k < nd->n_ents && nd->ents[k].index <= index)
        free(nd->ents[k++].data);
    memmove(nd->ents, nd->ents + k, (nd->n_ents - k) * sizeof *nd->ents);
    nd->n_ents -= k;
}

static void sm_restore(plog_sim *s, node *nd, const uint8_t *data, size_t len)
{
    uint64_t index = 0, n = 0;
    if (len >= 16) {
        memcpy(&index, data, 8);
        memcpy(&n, data + 8, 8);
    }
    if (len != 16 + n * 16) {
        fail(s, "server %llu: snapshot of %zu bytes is malformed", (unsigned long long)nd->id, len);
        return;
    }
    nd->n_sm = 0;
    for (uint64_t i = 0; i < n; i++) {
        sm_pair p;
        memcpy(&p, data + 16 + i * 16, 16);
        GROW(nd->sm, nd->n_sm, nd->cap_sm);
        nd->sm[nd->n_sm++] = p;
        check_applied(s, nd, p.index, 0, p.pid);
    }
    nd->sm_index = nd->sm_snap_index = index;
}

static void take_snapshot(plog_sim *s, node *nd)
{
    size_t len = 16 + nd->n_sm * 16;
    uint8_t *data = xmalloc(len);
    uint64_t n = nd->n_sm;
    memcpy(data, &nd->sm_index, 8);
    memcpy(data + 8, &n, 8);
    if (nd->n_sm)
        memcpy(data + 16, nd->sm, nd->n_sm * 16);
    plog_raft_event ev = {.type = PLOG_RAFT_EV_SNAPSHOT_TAKEN,
                          .now_ms = s->now,
                          .index = nd->sm_index,
                          .snap_data = data,
                          .snap_len = len};
    if (node_step(s, nd, &ev) == PLOG_OK)
        nd->sm_snap_index = nd->sm_index; /* the core took data */
    else
        free(data);
}

static void complete_op(plog_sim *s, op *o)
{
    node *nd = &s->nodes[o->node];
    if (!nd->up || nd->epoch != o->epoch)
        return; /* the server crashed before this write finished: it never happened */
    /* 1. persist */
    if (o->has_snap) {
        free((void *)nd->snap.data);
        nd->snap = o->snap;
        nd->snap.data = dup_bytes(o->snap.data, o->snap.len);
        nd->has_snap = true;
        if (o->snap_install) {
            while (nd->n_ents > 0)
                free(nd->ents[--nd->n_ents].data);
        } else {
            drop_stored_upto(nd, o->keep_from - 1);
        }
    }
    if (o->has_hs)
        nd->hs = o->hs;
    if (o->n_ents) {
        /* Log Matching, on every entry once it is stored: a follower's entries lost
         * in a crash before then were never acknowledged (its messages wait for the
         * write), and it may write different entries there after restarting; a
         * leader's were sent early, but it never leads their term again */
        uint64_t prev = stored_term(nd, o->ents[0].index - 1);
        for (size_t i = 0; i < o->n_ents; i++) {
            const stored *e = &o->ents[i];
            plog_raft_entry pe = {
                .term = e->term, .index = e->index, .type = e->type, .data = e->data, .len = e->len};
            check_log_matching(s, nd, &pe, prev);
            prev = e->term;
        }
        store_entries(nd, o);
    }
    if (o->has_hs || o->has_snap)
        nd->hs_pending--;
    /* 2. send */
    send_msgs(s, o);
    /* 3. apply */
    if (o->snap_install)
        sm_restore(s, nd, o->snap.data, o->snap.len);
    for (size_t i = 0; i < o->n_committed; i++) {
        const stored *e = &o->committed[i];
        if (e->index != nd->sm_index + 1) {
            fail(s, "server %llu applies index %llu after %llu", (unsigned long long)nd->id,
                 (unsigned long long)e->index, (unsigned long long)nd->sm_index);
            return;
        }
        nd->sm_index = e->index;
        check_applied(s, nd, e->index, e->term, o->keys[i]);
        if (e->type != PLOG_RAFT_ENTRY_NORMAL)
            continue;
        uint64_t pid = o->keys[i];
        GROW(nd->sm, nd->n_sm, nd->cap_sm);
        nd->sm[nd->n_sm++] = (sm_pair){.index = e->index, .pid = pid};
        if (pid < s->n_props) {
            proposal *p = &s->props[pid];
            if (p->node == nd->id && p->epoch == nd->epoch && p->index == e->index && p->term == e->term)
                p->acked = true;
        }
    }
    for (size_t i = 0; i < o->n_reads; i++) {
        GROW(nd->reads_done, nd->n_reads_done, nd->cap_reads_done);
        nd->reads_done[nd->n_reads_done++] = o->reads[i];
        s->reads_released++;
        /* §6.4: a read sees every write committed before it was asked for */
        for (size_t k = 0; k < s->n_read_reqs; k++) {
            const struct read_req *q = &s->read_reqs[k];
            if (q->node == nd->id && q->ctx == o->reads[i].ctx && o->reads[i].index < q->floor)
                fail(s,
                     "ReadIndex: server %llu released read %llu at index %llu, but index %llu "
                     "was committed before it was asked",
                     (unsigned long long)nd->id, (unsigned long long)q->ctx,
                     (unsigned long long)o->reads[i].index, (unsigned long long)q->floor);
        }
    }
    /* 4. tell the core what is durable */
    if (o->n_ents || o->snap_install) {
        plog_raft_event ev = {.type = PLOG_RAFT_EV_PERSISTED, .now_ms = s->now};
        if (o->n_ents) {
            ev.index = o->ents[o->n_ents - 1].index;
            ev.term = o->ents[o->n_ents - 1].term;
        } else {
            ev.index = o->snap.index;
            ev.term = o->snap.term;
        }
        node_step(s, nd, &ev);
    }
    if (s->o.snapshot_every && nd->sm_index >= nd->sm_snap_index + s->o.snapshot_every &&
        !plog_raft_sending_snapshot(nd->r))
        take_snapshot(s, nd);
}

/* sim_load: the core reads back an entry it dropped from memory; it must be on the
 * disk, with the same length (the core drops only what it was told is persisted). */
static int sim_load(void *arg, uint64_t index, uint8_t *buf, size_t len)
{
    node *nd = arg;
    if (nd->n_ents > 0 && index >= nd->ents[0].index && index <= nd->ents[nd->n_ents - 1].index) {
        const stored *e = &nd->ents[index - nd->ents[0].index];
        if (e->len == len) {
            memcpy(buf, e->data, len);
            nd->sim->loads++;
            return PLOG_OK;
        }
    }
    fail(nd->sim, "server %llu reads back index %llu (%zu bytes), not on its disk",
         (unsigned long long)nd->id, (unsigned long long)index, len);
    return PLOG_ECORRUPT;
}

static void boot_node(plog_sim *s, node *nd)
{
    /* as raftstore does: the entries after the snapshot (those kept behind it for
     * followers stay on the disk, not in the boot) */
    plog_raft_entry *ents = xmalloc((nd->n_ents ? nd->n_ents : 1) * sizeof *ents);
    size_t n = 0;
    for (size_t i = 0; i < nd->n_ents; i++)
        if (!nd->has_snap || nd->ents[i].index > nd->snap.index)
            ents[n++] = (plog_raft_entry){.term = nd->ents[i].term,
                                          .index = nd->ents[i].index,
                                          .type = nd->ents[i].type,
                                          .data = nd->ents[i].data,
                                          .len = nd->ents[i].len};
    plog_raft_boot boot = {
        .hs = nd->hs, .snapshot = nd->has_snap ? &nd->snap : NULL, .entries = ents, .n_entries = n};
    nd->cfg.seed = s->o.seed * 31 + nd->epoch;
    int rv = plog_raft_new(&nd->cfg, &boot, &nd->r);
    free(ents);
    if (rv != PLOG_OK) {
        fail(s, "server %llu cannot boot: %s", (unsigned long long)nd->id, plog_strerror(rv));
        nd->up = false;
        return;
    }
    nd->up = true;
    nd->n_sm = 0;
    nd->sm_index = nd->sm_snap_index = 0;
    if (nd->has_snap)
        sm_restore(s, nd, nd->snap.data, nd->snap.len);
    plog_raft_status st;
    plog_raft_get_status(nd->r, &st);
    nd->role = st.role;
    nd->term = st.term;
    nd->disk_free = s->now;
    /* a first tick arms the election timer from the current time */
    plog_raft_event ev = {.type = PLOG_RAFT_EV_TICK, .now_ms = s->now};
    node_step(s, nd, &ev);
}

/* ---- public ----------------------------------------------------------------------- */

void plog_sim_opts_default(plog_sim_opts *o)
{
    memset(o, 0, sizeof *o);
    o->n = 3;
    o->seed = 1;
    o->election_timeout_ms = 150;
    o->heartbeat_ms = 50;
    o->max_inflight = 8;
    o->max_batch = 64;
    o->snapshot_chunk = 1024;
    o->snapshot_trailing = 8;
    o->delay_min_ms = o->delay_max_ms = 5;
}

plog_sim *plog_sim_new(const plog_sim_opts *o)
{
    plog_sim *s = calloc(1, sizeof *s);
    if (s == NULL)
        abort();
    s->o = *o;
    s->rng = o->seed * 0x9E3779B97F4A7C15ULL + 1;
    s->drop_pct = o->drop_pct;
    s->dup_pct = o->dup_pct;
    s->n_total = o->n + o->n_spare;
    GROW(s->props, 1, s->cap_props);
    s->n_props = 1; /* proposal ids start at 1 */
    plog_raft_conf initial = {.n = o->n};
    for (unsigned i = 0; i < o->n; i++)
        initial.servers[i] = (plog_raft_server){.id = i + 1, .role = PLOG_RAFT_VOTER};
    for (unsigned i = 1; i <= s->n_total; i++) {
        node *nd = &s->nodes[i];
        nd->id = i;
        plog_raft_config_default(&nd->cfg, i);
        nd->cfg.election_timeout_ms = o->timeout_of[i] ? o->timeout_of[i] : o->election_timeout_ms;
        nd->cfg.heartbeat_ms = o->heartbeat_ms;
        nd->cfg.max_inflight = o->max_inflight;
        nd->cfg.max_batch = o->max_batch;
        nd->cfg.snapshot_chunk = o->snapshot_chunk;
        nd->cfg.snapshot_trailing = o->snapshot_trailing;
        if (o->follower_live_ms)
            nd->cfg.follower_live_ms = o->follower_live_ms;
        nd->cfg.mem_limit = o->mem_limit;
        nd->cfg.max_batch_bytes = o->max_batch_bytes;
        nd->cfg.load = sim_load;
        nd->cfg.load_arg = nd;
        nd->sim = s;
        nd->cfg.pre_vote = !o->no_pre_vote;
        nd->cfg.check_quorum = !o->no_check_quorum;
        if (i <= o->n)
            nd->cfg.initial = initial;
        boot_node(s, nd);
    }
    return s;
}

void plog_sim_timeout_now(plog_sim *s, uint64_t id)
{
    node *nd = &s->nodes[id];
    if (!nd->up)
        return;
    plog_raft_msg m = {
        .type = PLOG_RAFT_MSG_TIMEOUT_NOW, .from = id == 1 ? 2 : 1, .to = id, .term = nd->term};
    plog_sim_note(s, "%llu told to time out now", (unsigned long long)id);
    plog_raft_event ev = {.type = PLOG_RAFT_EV_RECEIVE, .now_ms = s->now, .msg = &m};
    node_step(s, nd, &ev);
}

void plog_sim_set_log(plog_sim *s, uint64_t id, uint64_t term, const uint64_t *terms, size_t n)
{
    node *nd = &s->nodes[id];
    plog_raft_free(nd->r);
    nd->r = NULL;
    while (nd->n_ents > 0)
        free(nd->ents[--nd->n_ents].data);
    uint64_t max = 0;
    for (size_t i = 0; i < n; i++) {
        GROW(nd->ents, nd->n_ents, nd->cap_ents);
        /* the same (index, term) gets the same content on every server */
        uint64_t pid = (1ULL << 62) | (terms[i] << 32) | (i + 1);
        nd->ents[nd->n_ents++] = (stored){.term = terms[i],
                                          .index = i + 1,
                                          .type = PLOG_RAFT_ENTRY_NORMAL,
                                          .data = dup_bytes((const uint8_t *)&pid, 8),
                                          .len = 8};
        if (terms[i] > max)
            max = terms[i];
    }
    nd->hs = (plog_raft_hard_state){.term = term > max ? term : max, .vote = 0};
    nd->epoch++;
    boot_node(s, nd);
}

void plog_sim_free(plog_sim *s)
{
    if (s == NULL)
        return;
    for (unsigned i = 1; i <= s->n_total; i++) {
        node *nd = &s->nodes[i];
        plog_raft_free(nd->r);
        free((void *)nd->snap.data);
        for (size_t k = 0; k < nd->n_ents; k++)
            free(nd->ents[k].data);
        free(nd->ents);
        free(nd->sm);
        free(nd->reads_done);
    }
    for (size_t i = 0; i < s->n_heap; i++) {
        if (s->heap[i].kind == EV_OP) {
            op_free(s->heap[i].p);
        } else {
            delivery *d = s->heap[i].p;
            free(d->m);
            free(d);
        }
    }
    free(s->heap);
    free(s->leader_of);
    free(s->idx);
    free(s->props);
    free(s->read_reqs);
    free(s->trace);
    free(s);
}

bool plog_sim_step(plog_sim *s)
{
    node *tick = NULL;
    for (unsigned i = 1; i <= s->n_total; i++) {
        node *nd = &s->nodes[i];
        if (nd->up && (tick == NULL || nd->deadline < tick->deadline))
            tick = nd;
    }
    if (s->n_heap > 0 && (tick == NULL || s->heap[0].t <= tick->deadline)) {
        hev e = heap_pop(s);
        if (e.t > s->now)
            s->now = e.t;
        if (e.kind == EV_OP) {
            complete_op(s, e.p);
            op_free(e.p);
        } else {
            delivery *d = e.p;
            node *nd = &s->nodes[d->to];
            if (nd->up) {
                if (s->o.trace_msgs) {
                    char buf[160];
                    plog_sim_note(s, "%llu -> %llu %s %s", (unsigned long long)d->m->from,
                                  (unsigned long long)d->to, plog_raft_msg_name(d->m->type),
                                  msg_summary(d->m, buf, sizeof buf));
                }
                plog_raft_event ev = {.type = PLOG_RAFT_EV_RECEIVE, .now_ms = s->now, .msg = d->m};
                node_step(s, nd, &ev);
            }
            free(d->m);
            free(d);
        }
        return true;
    }
    if (tick == NULL)
        return false;
    if (tick->deadline > s->now)
        s->now = tick->deadline;
    plog_raft_event ev = {.type = PLOG_RAFT_EV_TICK, .now_ms = s->now};
    node_step(s, tick, &ev);
    return true;
}

void plog_sim_run(plog_sim *s, uint64_t until_ms)
{
    while (!s->failed) {
        uint64_t next = UINT64_MAX;
        if (s->n_heap > 0)
            next = s->heap[0].t;
        for (unsigned i = 1; i <= s->n_total; i++)
            if (s->nodes[i].up && s->nodes[i].deadline < next)
                next = s->nodes[i].deadline;
        if (next > until_ms)
            break;
        plog_sim_step(s);
    }
    if (s->now < until_ms)
        s->now = until_ms;
}

void plog_sim_run_for(plog_sim *s, uint64_t ms)
{
    plog_sim_run(s, s->now + ms);
}

uint64_t plog_sim_now(const plog_sim *s)
{
    return s->now;
}

uint64_t plog_sim_leader(const plog_sim *s)
{
    uint64_t best = 0, term = 0;
    for (unsigned i = 1; i <= s->n_total; i++) {
        const node *nd = &s->nodes[i];
        if (nd->up && nd->role == PLOG_RAFT_LEADER && nd->term >= term) {
            best = nd->id;
            term = nd->term;
        }
    }
    return best;
}

bool plog_sim_wait_leader(plog_sim *s, uint64_t ms)
{
    uint64_t until = s->now + ms;
    while (!s->failed && plog_sim_leader(s) == 0 && s->now <= until)
        if (!plog_sim_step(s))
            break;
    return plog_sim_leader(s) != 0;
}

int plog_sim_propose(plog_sim *s, uint64_t id, uint64_t *pid)
{
    node *nd = &s->nodes[id];
    if (!nd->up)
        return PLOG_ENOTLEADER;
    uint64_t p = s->n_props;
    plog_raft_buf b = {.data = (const uint8_t *)&p, .len = 8};
    plog_raft_event ev = {.type = PLOG_RAFT_EV_PROPOSE, .now_ms = s->now, .bufs = &b, .n_bufs = 1};
    plog_raft_update up;
    /* peek at the index the core assigns: step through node_step, then read status */
    plog_raft_status st;
    plog_raft_get_status(nd->r, &st);
    (void)up;
    int rv = node_step(s, nd, &ev);
    if (rv != PLOG_OK)
        return rv;
    GROW(s->props, s->n_props, s->cap_props);
    s->props[s->n_props++] =
        (proposal){.node = id, .epoch = nd->epoch, .index = st.last + 1, .term = st.term};
    if (pid != NULL)
        *pid = p;
    return PLOG_OK;
}

bool plog_sim_acked(const plog_sim *s, uint64_t pid)
{
    return pid < s->n_props && s->props[pid].acked;
}

int plog_sim_conf_change(plog_sim *s, uint64_t id, int op_, uint64_t target)
{
    node *nd = &s->nodes[id];
    if (!nd->up)
        return PLOG_ENOTLEADER;
    plog_raft_event ev = {
        .type = PLOG_RAFT_EV_CONF_CHANGE, .now_ms = s->now, .conf_op = (uint8_t)op_, .id = target};
    int rv = node_step(s, nd, &ev);
    plog_sim_note(s, "%llu conf change %d on %llu: %s", (unsigned long long)id, op_,
                  (unsigned long long)target, plog_strerror(rv));
    return rv;
}

int plog_sim_transfer(plog_sim *s, uint64_t id, uint64_t target)
{
    node *nd = &s->nodes[id];
    if (!nd->up)
        return PLOG_ENOTLEADER;
    plog_raft_event ev = {.type = PLOG_RAFT_EV_TRANSFER, .now_ms = s->now, .id = target};
    int rv = node_step(s, nd, &ev);
    plog_sim_note(s, "%llu transfer leadership to %llu: %s", (unsigned long long)id,
                  (unsigned long long)target, plog_strerror(rv));
    return rv;
}

int plog_sim_read(plog_sim *s, uint64_t id, uint64_t ctx)
{
    node *nd = &s->nodes[id];
    if (!nd->up)
        return PLOG_ENOTLEADER;
    GROW(s->read_reqs, s->n_read_reqs, s->cap_read_reqs);
    s->read_reqs[s->n_read_reqs++] = (struct read_req){.node = id, .ctx = ctx, .floor = s->max_committed};
    plog_raft_event ev = {.type = PLOG_RAFT_EV_READ, .now_ms = s->now, .ctx = ctx};
    return node_step(s, nd, &ev);
}

bool plog_sim_read_done(const plog_sim *s, uint64_t id, uint64_t ctx, uint64_t *index)
{
    const node *nd = &s->nodes[id];
    for (size_t i = 0; i < nd->n_reads_done; i++)
        if (nd->reads_done[i].ctx == ctx) {
            if (index != NULL)
                *index = nd->reads_done[i].index;
            return true;
        }
    return false;
}

void plog_sim_crash(plog_sim *s, uint64_t id)
{
    node *nd = &s->nodes[id];
    if (!nd->up)
        return;
    plog_sim_note(s, "%llu crashes", (unsigned long long)id);
    plog_raft_free(nd->r);
    nd->r = NULL;
    nd->up = false;
    nd->epoch++;
    nd->hs_pending = 0;
    nd->role = PLOG_RAFT_FOLLOWER;
    nd->n_reads_done = 0;
}

void plog_sim_restart(plog_sim *s, uint64_t id)
{
    node *nd = &s->nodes[id];
    if (nd->up)
        return;
    plog_sim_note(s, "%llu restarts (term %llu, vote %llu, %zu entries%s)", (unsigned long long)id,
                  (unsigned long long)nd->hs.term, (unsigned long long)nd->hs.vote, nd->n_ents,
                  nd->has_snap ? ", snapshot" : "");
    boot_node(s, nd);
}

void plog_sim_lose_tail(plog_sim *s, uint64_t id, size_t n)
{
    node *nd = &s->nodes[id];
    if (nd->up)
        return; /* only a crash loses writes */
    if (n > nd->n_ents)
        n = nd->n_ents;
    plog_sim_note(s, "%llu loses its last %zu entries", (unsigned long long)id, n);
    while (n-- > 0)
        free(nd->ents[--nd->n_ents].data);
}

bool plog_sim_is_up(const plog_sim *s, uint64_t id)
{
    return s->nodes[id].up;
}

void plog_sim_cut(plog_sim *s, uint64_t from, uint64_t to)
{
    plog_sim_note(s, "link %llu -> %llu cut", (unsigned long long)from, (unsigned long long)to);
    s->cut[from][to] = true;
}

void plog_sim_isolate(plog_sim *s, uint64_t id)
{
    plog_sim_note(s, "%llu isolated", (unsigned long long)id);
    for (unsigned i = 1; i <= s->n_total; i++)
        s->cut[id][i] = s->cut[i][id] = true;
}

void plog_sim_heal(plog_sim *s)
{
    plog_sim_note(s, "network healed");
    memset(s->cut, 0, sizeof s->cut);
    s->drop_pct = s->dup_pct = 0;
}

void plog_sim_status(const plog_sim *s, uint64_t id, plog_raft_status *st)
{
    const node *nd = &s->nodes[id];
    if (nd->r == NULL) {
        memset(st, 0, sizeof *st);
        st->id = id;
        return;
    }
    plog_raft_get_status(nd->r, st);
}

uint64_t plog_sim_applied_index(const plog_sim *s, uint64_t id)
{
    return s->nodes[id].sm_index;
}

size_t plog_sim_applied_count(const plog_sim *s, uint64_t id)
{
    return s->nodes[id].n_sm;
}

uint64_t plog_sim_snapshots_installed(const plog_sim *s)
{
    return s->snapshots_installed;
}

uint64_t plog_sim_steps(const plog_sim *s)
{
    return s->steps;
}

uint64_t plog_sim_term_of_index(const plog_sim *s, uint64_t id, uint64_t index)
{
    return s->nodes[id].r ? plog_raft_term_at(s->nodes[id].r, index) : 0;
}

const char *plog_sim_error(const plog_sim *s)
{
    return s->failed ? s->err : NULL;
}

const char *plog_sim_trace(const plog_sim *s)
{
    return s->trace ? s->trace : "";
}

bool plog_sim_check_final(plog_sim *s)
{
    if (s->failed)
        return false;
    uint64_t lead = plog_sim_leader(s);
    if (lead == 0) {
        fail(s, "final: no leader");
        return false;
    }
    plog_raft_status ls;
    plog_raft_get_status(s->nodes[lead].r, &ls);
    const node *ln = &s->nodes[lead];
    for (unsigned k = 0; k < ls.conf.n; k++) {
        const node *nd = &s->nodes[ls.conf.servers[k].id];
        if (!nd->up) {
            fail(s, "final: member %llu is down", (unsigned long long)nd->id);
            return false;
        }
        /* same entries in the same order: compare the shorter prefix */
        size_t n = nd->n_sm < ln->n_sm ? nd->n_sm : ln->n_sm;
        for (size_t i = 0; i < n; i++)
            if (nd->sm[i].index != ln->sm[i].index || nd->sm[i].pid != ln->sm[i].pid) {
                fail(s, "final: servers %llu and %llu applied different entries at position %zu",
                     (unsigned long long)nd->id, (unsigned long long)lead, i);
                return false;
            }
        /* exactly once */
        for (size_t i = 0; i < nd->n_sm; i++) {
            uint64_t pid = nd->sm[i].pid;
            if (pid == 0 || pid >= s->n_props) {
                fail(s, "final: server %llu applied an unknown proposal %llu", (unsigned long long)nd->id,
                     (unsigned long long)pid);
                return false;
            }
        }
        uint8_t *seen = calloc(s->n_props, 1);
        if (seen == NULL)
            abort();
        for (size_t i = 0; i < nd->n_sm; i++) {
            if (seen[nd->sm[i].pid]++) {
                fail(s, "final: server %llu applied proposal %llu twice", (unsigned long long)nd->id,
                     (unsigned long long)nd->sm[i].pid);
                free(seen);
                return false;
            }
        }
        for (uint64_t pid = 1; pid < s->n_props; pid++)
            if (s->props[pid].acked && !seen[pid]) {
                fail(s, "final: acknowledged proposal %llu missing on server %llu", (unsigned long long)pid,
                     (unsigned long long)nd->id);
                free(seen);
                return false;
            }
        free(seen);
    }
    return true;
}

/* ---- the randomized run ----------------------------------------------------------- */

static uint64_t random_up(plog_sim *s, bool up)
{
    uint64_t ids[PLOG_SIM_MAX];
    unsigned n = 0;
    for (unsigned i = 1; i <= s->n_total; i++)
        if (s->nodes[i].up == up)
            ids[n++] = i;
    return n ? ids[rnd(s) % n] : 0;
}

static bool member(plog_sim *s, uint64_t lead, uint64_t id)
{
    plog_raft_status st;
    plog_raft_get_status(s->nodes[lead].r, &st);
    return plog_raft_conf_find(&st.conf, id) != NULL;
}

bool plog_sim_soak(uint64_t seed, unsigned n, bool trace, plog_sim_soak_stats *stats, char *err,
                   size_t errlen)
{
    plog_sim_opts o;
    plog_sim_opts_default(&o);
    uint64_t r = seed * 0x9E3779B97F4A7C15ULL + 7;
#define PICK(k) ((r = r * 6364136223846793005ULL + 1442695040888963407ULL), (r >> 33) % (k))
    o.n = n;
    o.seed = seed;
    o.n_spare = PICK(3) == 0 ? 1 : 0;
    o.trace = trace;
    o.trace_msgs = trace;
    o.delay_min_ms = 1 + PICK(3);
    o.delay_max_ms = o.delay_min_ms + PICK(30);
    o.drop_pct = PICK(4) == 0 ? 0 : PICK(20);
    o.dup_pct = PICK(10);
    o.disk_min_ms = PICK(3);
    o.disk_max_ms = o.disk_min_ms + (PICK(4) == 0 ? 40 : PICK(10));
    static const uint32_t batch[] = {1, 2, 4, 64}, inflight[] = {1, 2, 8}, every[] = {0, 5, 20},
                          chunk[] = {16, 64, 4096}, trailing[] = {0, 2, 10};
    o.max_batch = batch[PICK(4)];
    o.max_inflight = inflight[PICK(3)];
    o.snapshot_every = every[PICK(3)];
    o.snapshot_chunk = chunk[PICK(3)];
    o.snapshot_trailing = trailing[PICK(3)];
    o.no_pre_vote = PICK(5) == 0;
    o.no_check_quorum = PICK(5) == 0;
    /* a quarter of the runs churn: leaders crash within milliseconds of being elected
     * and entries travel one per message, the ground of the paper's Figure 8 */
    bool churn = PICK(4) == 0;
    if (churn) {
        o.max_batch = 1;
        o.max_inflight = 1;
        o.no_pre_vote = true;
    }
    /* half the runs keep almost nothing in memory (entries are 8 bytes): the cores
     * read entries back from disk for followers that lag */
    static const uint32_t mem[] = {0, 0, 8, 64};
    o.mem_limit = mem[PICK(4)];
    o.max_batch_bytes = PICK(4) == 0 ? 16 : 0; /* two 8-byte entries per AppendEntries */
    /* how long a silent follower holds the leader's snapshots and entries: the
     * default, under one round trip (snapshots replaced under a transfer, a follower
     * finishing one the leader no longer sends), or a few */
    static const uint32_t live_ms[] = {0, 1, 30};
    o.follower_live_ms = live_ms[PICK(3)];
#undef PICK
    plog_sim *s = plog_sim_new(&o);
    uint64_t crashes = 0, proposals = 0, read_ctx = 1;
    uint64_t end = 1000 + rnd(s) % 2000;
    while (!s->failed && s->now < end) {
        plog_sim_run_for(s, churn ? rnd_between(s, 1, 30) : rnd_between(s, 10, 150));
        uint64_t lead = plog_sim_leader(s);
        unsigned dice = (unsigned)(rnd(s) % 100);
        if (churn && dice >= 74)
            dice = (unsigned)(rnd(s) % 30); /* mostly crashes and restarts */
        if (lead != 0 && rnd(s) % 2 == 0) {
            unsigned k = (unsigned)rnd_between(s, 1, 8);
            for (unsigned i = 0; i < k; i++)
                if (plog_sim_propose(s, lead, NULL) == PLOG_OK)
                    proposals++;
        }
        if (dice < 14) {
            uint64_t id = rnd(s) % 3 == 0 && lead ? lead : random_up(s, true);
            if (id) {
                plog_sim_crash(s, id);
                crashes++;
            }
        } else if (dice < 30) {
            uint64_t id = random_up(s, false);
            if (id)
                plog_sim_restart(s, id);
        } else if (dice < 38) {
            /* a partition: a random group cut off both ways */
            uint64_t mask = rnd(s);
            plog_sim_note(s, "partition %llx", (unsigned long long)(mask & 0xff));
            for (unsigned i = 1; i <= s->n_total; i++)
                for (unsigned j = 1; j <= s->n_total; j++)
                    if (((mask >> i) & 1) != ((mask >> j) & 1))
                        s->cut[i][j] = true;
        } else if (dice < 44) {
            uint64_t a = rnd_between(s, 1, s->n_total), b = rnd_between(s, 1, s->n_total);
            if (a != b)
                plog_sim_cut(s, a, b);
        } else if (dice < 54) {
            memset(s->cut, 0, sizeof s->cut);
            plog_sim_note(s, "links restored");
        } else if (dice < 60 && lead != 0) {
            uint64_t spare = o.n + 1;
            if (o.n_spare && !member(s, lead, spare)) {
                plog_sim_conf_change(s, lead, PLOG_RAFT_CONF_ADD_VOTER, spare);
            } else if (o.n_spare) {
                plog_sim_conf_change(s, lead, PLOG_RAFT_CONF_REMOVE, spare);
            } else if (rnd(s) % 2) {
                /* remove a voter (maybe the leader itself), then add it back later */
                uint64_t id = rnd_between(s, 1, o.n);
                if (member(s, lead, id))
                    plog_sim_conf_change(s, lead, PLOG_RAFT_CONF_REMOVE, id);
            }
        } else if (dice < 64 && lead != 0 && o.n_spare == 0) {
            for (uint64_t id = 1; id <= o.n; id++)
                if (!member(s, lead, id)) {
                    plog_sim_conf_change(s, lead, PLOG_RAFT_CONF_ADD_VOTER, id);
                    break;
                }
        } else if (dice < 68 && lead != 0) {
            plog_sim_transfer(s, lead, 0);
        } else if (dice < 80 && lead != 0) {
            plog_sim_read(s, lead, read_ctx++);
        }
    }
    /* heal: every link back, no more loss, every server up; then the cluster must make
     * progress within a bound: a leader commits a marker and every member applies it. */
    plog_sim_heal(s);
    for (unsigned i = 1; i <= s->n_total; i++)
        plog_sim_restart(s, i);
    uint64_t healed = s->now, marker = 0, bound = 10000;
    bool live = false;
    while (!s->failed && s->now < healed + bound) {
        plog_sim_run_for(s, 20);
        uint64_t lead = plog_sim_leader(s);
        if (lead == 0)
            continue;
        plog_raft_status ls;
        plog_raft_get_status(s->nodes[lead].r, &ls);
        /* a member that was removed and not re-added: add it back so all take part */
        if (o.n_spare == 0)
            for (uint64_t id = 1; id <= o.n; id++)
                if (!member(s, lead, id)) {
                    plog_sim_conf_change(s, lead, PLOG_RAFT_CONF_ADD_VOTER, id);
                    break;
                }
        if (marker == 0 ||
            (!s->props[marker].acked && (s->props[marker].node != lead || s->props[marker].term != ls.term ||
                                         s->props[marker].epoch != s->nodes[lead].epoch))) {
            if (plog_sim_propose(s, lead, &marker) != PLOG_OK)
                marker = 0;
            continue;
        }
        if (!s->props[marker].acked)
            continue;
        plog_raft_get_status(s->nodes[lead].r, &ls);
        bool all = true;
        for (unsigned k = 0; k < ls.conf.n; k++) {
            const node *nd = &s->nodes[ls.conf.servers[k].id];
            if (nd->sm_index < s->props[marker].index || ls.conf.servers[k].role != PLOG_RAFT_VOTER)
                all = false;
        }
        if (all) {
            live = true;
            break;
        }
    }
    if (!s->failed && !live)
        fail(s, "liveness: no progress within %llu ms after healing", (unsigned long long)bound);
    bool ok = !s->failed && plog_sim_check_final(s);
    if (stats != NULL) {
        stats->steps += s->steps;
        stats->proposals += s->n_props - 1;
        (void)proposals;
        for (uint64_t pid = 1; pid < s->n_props; pid++)
            stats->acked += s->props[pid].acked;
        stats->elections += s->elections;
        stats->crashes += crashes;
        stats->snapshots += s->snapshots_installed;
        stats->loads += s->loads;
        stats->reads += s->reads_released;
        stats->digest = (stats->digest ^ s->digest) * 1099511628211ULL;
    }
    if (!ok && err != NULL)
        snprintf(err, errlen, "%s", s->err);
    if (!ok && trace)
        fputs(plog_sim_trace(s), stderr);
    plog_sim_free(s);
    return ok;
}
