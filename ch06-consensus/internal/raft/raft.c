/* raft.c - the core's step function: event checks, roles, terms, elections, ticks,
 * snapshots taken, and the update handed back. Leader requests (reads, membership,
 * transfer) live in leader.c, replication in replication.c.
 *
 * Roles (§5.2, thesis §9.6):
 *   follower --election timeout--> pre-candidate --pre-vote quorum--> candidate
 *   candidate --vote quorum--> leader; any role --higher term--> follower
 * With pre_vote off a follower goes straight to candidate. */
#include "internal/raft/core.h"

#include <stdlib.h>
#include <string.h>

#include "internal/err/err.h"

void plog_raft_config_default(plog_raft_config *c, uint64_t id)
{
    memset(c, 0, sizeof *c);
    c->id = id;
    c->seed = id;
    c->election_timeout_ms = 150;
    c->heartbeat_ms = 50;
    c->max_inflight = 8;
    c->max_batch = 64;
    c->snapshot_chunk = 64 * 1024;
    c->snapshot_trailing = 128;
    c->follower_live_ms = 10000;
    c->pre_vote = true;
    c->check_quorum = true;
}

/* xorshift64*: the core's only randomness, seeded by the config. */
static uint64_t rng_next(plog_raft *r)
{
    uint64_t x = r->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    r->rng = x;
    return x * 0x2545F4914F6CDD1DULL;
}

void plog_raft_reset_election_timer(plog_raft *r)
{
    /* §5.2: each server picks its election timeout at random from a fixed interval
     * ([T, 2T)) so that split votes are rare and resolve quickly. */
    uint32_t t = r->cfg.election_timeout_ms;
    r->election_deadline = r->now + t + rng_next(r) % t;
}

bool plog_raft_is_voter(const plog_raft *r, uint64_t id)
{
    const plog_raft_server *s = plog_raft_conf_find(&r->conf, id);
    return s != NULL && s->role == PLOG_RAFT_VOTER;
}

unsigned plog_raft_quorum(const plog_raft *r)
{
    unsigned n = 0;
    for (unsigned i = 0; i < r->conf.n; i++)
        n += r->conf.servers[i].role == PLOG_RAFT_VOTER;
    return n / 2 + 1;
}

plog_raft_msg *plog_raft_send(plog_raft *r, int type, uint64_t to)
{
    if (r->n_msgs == r->cap_msgs) {
        size_t cap = r->cap_msgs ? r->cap_msgs * 2 : 16;
        plog_raft_msg *p = realloc(r->msgs, cap * sizeof *p);
        if (p == NULL) {
            r->oom = true;
            return NULL;
        }
        r->msgs = p;
        r->cap_msgs = cap;
    }
    plog_raft_msg *m = &r->msgs[r->n_msgs++];
    memset(m, 0, sizeof *m);
    m->type = (uint8_t)type;
    m->from = r->id;
    m->to = to;
    m->term = r->term;
    return m;
}

static bool can_campaign(const plog_raft *r);

bool plog_raft_keep(plog_raft *r, void *p)
{
    if (r->n_loaded == r->cap_loaded) {
        size_t cap = r->cap_loaded ? r->cap_loaded * 2 : 16;
        void **n = realloc(r->loaded, cap * sizeof *n);
        if (n == NULL) {
            free(p);
            return false;
        }
        r->loaded = n;
        r->cap_loaded = cap;
    }
    r->loaded[r->n_loaded++] = p;
    return true;
}

static void free_loaded(plog_raft *r)
{
    for (size_t i = 0; i < r->n_loaded; i++)
        free(r->loaded[i]);
    r->n_loaded = 0;
}

static void clear_reads(plog_raft *r)
{
    r->n_reads = 0;
}

void plog_raft_become_follower(plog_raft *r, uint64_t term, uint64_t leader)
{
    if (term > r->term) {
        /* Figure 2, all servers: a higher term makes us a follower of that term, with
         * no vote cast in it yet. */
        r->term = term;
        r->vote = 0;
        r->hs_dirty = true;
    }
    r->role = PLOG_RAFT_FOLLOWER;
    r->leader = leader;
    r->transfer_to = 0;
    clear_reads(r);
    plog_raft_reset_election_timer(r);
}

static void become_leader(plog_raft *r)
{
    r->role = PLOG_RAFT_LEADER;
    r->leader = r->id;
    r->transfer_to = 0;
    r->read_round = 0;
    clear_reads(r);
    plog_raft_repl_reset_progress(r);
    r->heartbeat_deadline = r->now + r->cfg.heartbeat_ms;
    r->election_deadline = r->now + r->cfg.election_timeout_ms;
    /* §5.4.2 and thesis §6.4: a leader commits an entry of its own term at once (a
     * no-op), which commits everything before it and lets ReadIndex start. */
    r->term_start = plog_raft_log_last(&r->log) + 1;
    if (plog_raft_repl_leader_append(r, PLOG_RAFT_ENTRY_NOOP, NULL, 0) != PLOG_OK)
        return;
    plog_raft_repl_broadcast(r, SEND_APPEND);
    plog_raft_repl_maybe_commit(r); /* a cluster of one commits alone */
}

static void send_votes(plog_raft *r, int type, uint64_t term, bool transfer)
{
    for (unsigned i = 0; i < r->conf.n; i++) {
        const plog_raft_server *s = &r->conf.servers[i];
        if (s->id == r->id || s->role != PLOG_RAFT_VOTER)
            continue;
        plog_raft_msg *m = plog_raft_send(r, type, s->id);
        if (m == NULL)
            return;
        m->term = term;
        /* §5.4.1: the candidate advertises its last entry for the up-to-date check */
        m->index = plog_raft_log_last(&r->log);
        m->log_term = plog_raft_log_last_term(&r->log);
        m->ctx = transfer ? 1 : 0;
    }
}

static void tally_reset(plog_raft *r)
{
    r->n_granted = 0;
    r->n_rejected = 0;
    /* a candidate votes for itself (§5.2), which counts only if it is a voter */
    if (plog_raft_is_voter(r, r->id))
        r->votes_granted[r->n_granted++] = r->id;
}

static void campaign(plog_raft *r, bool pre, bool transfer)
{
    r->leader = 0;
    r->transfer_to = 0;
    clear_reads(r);
    tally_reset(r);
    plog_raft_reset_election_timer(r);
    if (pre) {
        /* thesis §9.6: ask first whether we could win, without raising our term, so a
         * server cut off from the cluster does not disrupt it when it comes back. */
        r->role = PLOG_RAFT_PRECANDIDATE;
        if (r->n_granted >= plog_raft_quorum(r)) {
            campaign(r, false, false);
            return;
        }
        send_votes(r, PLOG_RAFT_MSG_PREVOTE, r->term + 1, false);
        return;
    }
    /* §5.2: increment the term, vote for self, request votes from all others. */
    r->role = PLOG_RAFT_CANDIDATE;
    r->term++;
    r->vote = r->id;
    r->hs_dirty = true;
    if (r->n_granted >= plog_raft_quorum(r)) {
        become_leader(r);
        return;
    }
    send_votes(r, PLOG_RAFT_MSG_VOTE, r->term, transfer);
}

static void tally(plog_raft *r, const plog_raft_msg *m)
{
    for (unsigned i = 0; i < r->n_granted; i++)
        if (r->votes_granted[i] == m->from)
            return; /* duplicate */
    if (!plog_raft_is_voter(r, m->from))
        return;
    if (m->reject) {
        /* rejections are counted once each too: remember them in the upper half */
        for (unsigned i = 0; i < r->n_rejected; i++)
            if (r->votes_granted[PLOG_RAFT_MAX_SERVERS - 1 - i] == m->from)
                return;
        r->votes_granted[PLOG_RAFT_MAX_SERVERS - 1 - r->n_rejected++] = m->from;
    } else {
        r->votes_granted[r->n_granted++] = m->from;
    }
    unsigned q = plog_raft_quorum(r);
    if (r->n_granted >= q) {
        if (r->role == PLOG_RAFT_PRECANDIDATE)
            campaign(r, false, false);
        else
            become_leader(r);
    } else if (r->n_rejected >= q) {
        plog_raft_become_follower(r, r->term, 0);
    }
}

static void handle_vote(plog_raft *r, const plog_raft_msg *m)
{
    bool pre = m->type == PLOG_RAFT_MSG_PREVOTE;
    /* §5.2: at most one vote per term, first come first served (a repeated request
     * from the same candidate gets the same answer). A pre-vote for a later term binds
     * nothing, so it is granted whenever the log check passes. */
    bool can_vote = r->vote == m->from || (r->vote == 0 && r->leader == 0) || (pre && m->term > r->term);
    /* §5.4.1: grant only if the candidate's log is at least as up-to-date as ours:
     * a later last term, or the same last term and at least as long. */
    uint64_t last_term = plog_raft_log_last_term(&r->log);
    bool up_to_date =
        m->log_term > last_term || (m->log_term == last_term && m->index >= plog_raft_log_last(&r->log));
    if (PLOG_RAFT_MUTATE == MUTATE_VOTE_NO_UPTODATE)
        up_to_date = true;
    /* A server that knows no configuration grants nothing: it is new, or its storage
     * was wiped. A wiped voter restarted under its id would vote with an empty log
     * and could elect a server missing records that it had helped commit. A server
     * whose vote counts knows a configuration: servers join as learners and are
     * promoted once caught up (conf.c). */
    bool grant = can_vote && up_to_date && r->conf.n > 0;
    plog_raft_msg *resp =
        plog_raft_send(r, pre ? PLOG_RAFT_MSG_PREVOTE_RESP : PLOG_RAFT_MSG_VOTE_RESP, m->from);
    if (resp == NULL)
        return;
    resp->reject = !grant;
    if (grant) {
        resp->term = m->term; /* for a pre-vote: the term the candidate will use */
        if (!pre) {
            r->vote = m->from;
            /* Figure 2: votedFor is persistent state, on disk before the answer goes
             * out, or a restart could vote twice in one term. */
            if (PLOG_RAFT_MUTATE != MUTATE_VOTE_NOT_PERSISTED)
                r->hs_dirty = true;
            plog_raft_reset_election_timer(r);
        }
    }
}

/* in_lease: we lead, or heard from a leader less than an election timeout ago.
 * thesis §4.2.3: then ignore vote requests, so removed or partitioned servers cannot
 * depose a leader that still works (with check-quorum, a leader that lost its quorum
 * steps down and so stops being one). */
static bool in_lease(const plog_raft *r)
{
    if (r->role == PLOG_RAFT_LEADER)
        return true;
    return r->leader != 0 && r->heard_leader && r->now < r->last_leader_contact + r->cfg.election_timeout_ms;
}

static void receive(plog_raft *r, const plog_raft_msg *m)
{
    int t = m->type;
    if (m->term > r->term) {
        bool vote_req = t == PLOG_RAFT_MSG_VOTE || t == PLOG_RAFT_MSG_PREVOTE;
        if (vote_req && m->ctx != 1 && in_lease(r))
            return;
        if (t == PLOG_RAFT_MSG_PREVOTE || (t == PLOG_RAFT_MSG_PREVOTE_RESP && !m->reject)) {
            /* thesis §9.6: pre-votes never change anyone's term */
        } else {
            bool from_leader = t == PLOG_RAFT_MSG_APPEND || t == PLOG_RAFT_MSG_SNAPSHOT;
            plog_raft_become_follower(r, m->term, from_leader ? m->from : 0);
        }
    } else if (m->term < r->term) {
        /* §5.1: a stale term is rejected, and the answer carries our term so a stale
         * leader steps down (Figure 2: a response with a higher term). This also
         * frees a server whose term ran ahead while its vote requests were ignored
         * (thesis §4.2.3). */
        if (t == PLOG_RAFT_MSG_APPEND || t == PLOG_RAFT_MSG_SNAPSHOT) {
            plog_raft_msg *resp = plog_raft_send(r, PLOG_RAFT_MSG_APPEND_RESP, m->from);
            if (resp != NULL) {
                resp->reject = true;
                resp->index = m->index;
            }
        } else if (t == PLOG_RAFT_MSG_PREVOTE) {
            plog_raft_msg *resp = plog_raft_send(r, PLOG_RAFT_MSG_PREVOTE_RESP, m->from);
            if (resp != NULL)
                resp->reject = true;
        }
        return;
    }

    switch (t) {
    case PLOG_RAFT_MSG_PREVOTE:
    case PLOG_RAFT_MSG_VOTE:
        handle_vote(r, m);
        break;
    case PLOG_RAFT_MSG_PREVOTE_RESP:
        if (r->role == PLOG_RAFT_PRECANDIDATE && (m->reject || m->term == r->term + 1))
            tally(r, m);
        break;
    case PLOG_RAFT_MSG_VOTE_RESP:
        if (r->role == PLOG_RAFT_CANDIDATE && m->term == r->term)
            tally(r, m);
        break;
    case PLOG_RAFT_MSG_APPEND:
    case PLOG_RAFT_MSG_SNAPSHOT:
        if (r->role == PLOG_RAFT_LEADER)
            break; /* Election Safety makes this impossible */
        if (r->role != PLOG_RAFT_FOLLOWER)
            plog_raft_become_follower(r, r->term, m->from); /* §5.2: a leader of our term won */
        r->leader = m->from;
        r->heard_leader = true;
        r->last_leader_contact = r->now;
        plog_raft_reset_election_timer(r);
        if (t == PLOG_RAFT_MSG_APPEND)
            plog_raft_repl_recv_append(r, m);
        else
            plog_raft_repl_recv_snapshot(r, m);
        break;
    case PLOG_RAFT_MSG_APPEND_RESP:
        if (r->role == PLOG_RAFT_LEADER)
            plog_raft_repl_recv_append_resp(r, m);
        break;
    case PLOG_RAFT_MSG_SNAPSHOT_RESP:
        if (r->role == PLOG_RAFT_LEADER)
            plog_raft_repl_recv_snapshot_resp(r, m);
        break;
    case PLOG_RAFT_MSG_TIMEOUT_NOW:
        /* thesis §3.10: the leader brought us up to date; start an election now,
         * skipping pre-vote, and tell voters to ignore their leader lease. */
        if (r->role != PLOG_RAFT_LEADER && can_campaign(r))
            campaign(r, false, true);
        break;
    default:
        break;
    }
}

/* can_campaign: voters campaign, learners and strangers do not. A server whose latest
 * configuration (thesis §4.1: used once in the log) removes it, while that entry is
 * not committed yet, still campaigns as a voter of the committed configuration:
 * otherwise a leader that removed itself and crashed before committing the removal
 * could leave behind servers that cannot elect anyone (thesis §4.2.2). */
static bool can_campaign(const plog_raft *r)
{
    if (plog_raft_is_voter(r, r->id))
        return true;
    if (r->conf_index <= r->commit)
        return false;
    plog_raft_conf c = r->snap_conf;
    for (uint64_t i = r->conf_index - 1; i > r->log.snap_index; i--) {
        const plog_raft_entry *e = plog_raft_log_get(&r->log, i);
        if (e->type == PLOG_RAFT_ENTRY_CONFIG && plog_raft_conf_decode(e->data, e->len, &c) == PLOG_OK)
            break;
    }
    const plog_raft_server *s = plog_raft_conf_find(&c, r->id);
    return s != NULL && s->role == PLOG_RAFT_VOTER;
}

static void tick(plog_raft *r)
{
    if (r->role == PLOG_RAFT_LEADER) {
        if (r->now >= r->heartbeat_deadline) {
            /* §5.2: leaders send empty AppendEntries in idle periods */
            r->heartbeat_deadline = r->now + r->cfg.heartbeat_ms;
            plog_raft_repl_broadcast(r, SEND_TICK);
        }
        if (r->transfer_to != 0 && r->now >= r->transfer_deadline)
            r->transfer_to = 0; /* thesis §3.10: abort after an election timeout */
        if (r->now >= r->election_deadline) {
            r->election_deadline = r->now + r->cfg.election_timeout_ms;
            if (r->cfg.check_quorum) {
                /* thesis §6.2: a leader that has not heard from a quorum within an
                 * election timeout steps down, so clients go find the real leader. */
                unsigned active = plog_raft_is_voter(r, r->id);
                for (unsigned i = 0; i < r->n_prs; i++) {
                    progress *pr = &r->prs[i];
                    if (pr->recent_active && plog_raft_is_voter(r, pr->id))
                        active++;
                    pr->recent_active = false;
                }
                if (active < plog_raft_quorum(r)) {
                    plog_raft_become_follower(r, r->term, 0);
                    return;
                }
            }
        }
        return;
    }
    if (r->now >= r->election_deadline) {
        if (can_campaign(r))
            campaign(r, r->cfg.pre_vote, false);
        else
            plog_raft_reset_election_timer(r); /* learners and strangers never campaign */
    }
}

/* conf_at: the configuration as of index (at or after the in-memory log's start):
 * the latest CONFIG entry at or before it, else the one as of the log's start. */
static plog_raft_conf conf_at(const plog_raft *r, uint64_t index)
{
    plog_raft_conf c = r->snap_conf;
    for (uint64_t i = index; i > r->log.snap_index; i--) {
        const plog_raft_entry *e = plog_raft_log_get(&r->log, i);
        if (e->type == PLOG_RAFT_ENTRY_CONFIG && plog_raft_conf_decode(e->data, e->len, &c) == PLOG_OK)
            break;
    }
    return c;
}

/* snapshot_at: a snapshot the driver takes at index is one the core can use: of
 * an entry applied (so committed), still in memory or the log's start, and not
 * older than the snapshot it has. */
static bool snapshot_at(const plog_raft *r, uint64_t index)
{
    return index <= r->applied && index >= r->log.snap_index &&
           !(r->snap_have && index < r->compacted.index) &&
           (index == r->log.snap_index || plog_raft_log_get(&r->log, index) != NULL);
}

int plog_raft_snapshot_meta(const plog_raft *r, uint64_t index, plog_raft_snapshot *meta)
{
    if (!snapshot_at(r, index))
        return PLOG_EINVAL;
    *meta = (plog_raft_snapshot){
        .index = index, .term = plog_raft_log_term(&r->log, index), .conf = conf_at(r, index)};
    return PLOG_OK;
}

static int check_event(const plog_raft *r, const plog_raft_event *ev)
{
    switch (ev->type) {
    case PLOG_RAFT_EV_TICK:
        return PLOG_OK;
    case PLOG_RAFT_EV_RECEIVE:
        if (ev->msg == NULL || ev->msg->to != r->id || ev->msg->from == 0 || ev->msg->from == r->id ||
            ev->msg->type < PLOG_RAFT_MSG_PREVOTE || ev->msg->type > PLOG_RAFT_MSG_TIMEOUT_NOW)
            return PLOG_EINVAL;
        if (ev->msg->type == PLOG_RAFT_MSG_SNAPSHOT &&
            (ev->msg->index == 0 || ev->msg->log_term == 0 || ev->msg->conf.n > PLOG_RAFT_MAX_SERVERS ||
             ev->msg->offset > ev->msg->total || ev->msg->len > ev->msg->total - ev->msg->offset ||
             (ev->msg->len > 0 && ev->msg->data == NULL)))
            return PLOG_EINVAL;
        if (ev->msg->n_entries > 0 && ev->msg->entries == NULL)
            return PLOG_EINVAL;
        if (ev->msg->type == PLOG_RAFT_MSG_APPEND) {
            for (size_t i = 0; i < ev->msg->n_entries; i++) {
                const plog_raft_entry *e = &ev->msg->entries[i];
                plog_raft_conf c;
                if (e->index != ev->msg->index + 1 + i || e->term > ev->msg->term ||
                    e->type > PLOG_RAFT_ENTRY_CONFIG ||
                    (e->type == PLOG_RAFT_ENTRY_CONFIG &&
                     plog_raft_conf_decode(e->data, e->len, &c) != PLOG_OK))
                    return PLOG_EINVAL;
            }
        }
        return PLOG_OK;
    case PLOG_RAFT_EV_PERSISTED:
        return PLOG_OK;
    case PLOG_RAFT_EV_SNAPSHOT_TAKEN:
        return ev->snap_data != NULL && snapshot_at(r, ev->index) ? PLOG_OK : PLOG_EINVAL;
    case PLOG_RAFT_EV_PROPOSE:
    case PLOG_RAFT_EV_CONF_CHANGE:
    case PLOG_RAFT_EV_READ:
    case PLOG_RAFT_EV_TRANSFER:
        if (r->role != PLOG_RAFT_LEADER)
            return PLOG_ENOTLEADER;
        if (ev->type == PLOG_RAFT_EV_PROPOSE && (ev->n_bufs == 0 || ev->bufs == NULL))
            return PLOG_EINVAL;
        if (ev->type == PLOG_RAFT_EV_PROPOSE && r->transfer_to != 0)
            return PLOG_EBUSY;
        return PLOG_OK;
    default:
        return PLOG_EINVAL;
    }
}

/* compact_to drops the in-memory log up to upto (covered by a snapshot). */
static void compact_to(plog_raft *r, uint64_t upto)
{
    r->snap_conf = conf_at(r, upto);
    plog_raft_log_compact(&r->log, upto, plog_raft_log_term(&r->log, upto));
}

/* live: the follower answered within the last cfg.follower_live_ms */
static bool live(const plog_raft *r, const progress *pr)
{
    return r->now - pr->heard < r->cfg.follower_live_ms;
}

/* keep_from: the lowest index a leader keeps in its log when it compacts up to upto:
 * a live follower that still needs entries after the log's start (one that
 * just installed a snapshot, one catching up after a pause) keeps them. Compacting
 * them would send it a snapshot again, and under steady writes a follower whose
 * snapshot takes seconds to send and install would never get past its snapshot (the
 * entries it needs next would always be gone). A follower silent for
 * cfg.follower_live_ms keeps nothing, so the log is bounded by the trail again once
 * it is gone for good. */
static uint64_t keep_from(const plog_raft *r, uint64_t upto)
{
    if (r->role != PLOG_RAFT_LEADER)
        return upto;
    for (unsigned i = 0; i < r->n_prs; i++) {
        const progress *pr = &r->prs[i];
        if (live(r, pr) && pr->match >= r->log.snap_index && pr->match < upto)
            upto = pr->match;
    }
    return upto;
}

/* snapshot_taken adopts the driver's bytes (ev->snap_data): copying them here
 * stalled the driver's thread for milliseconds per 10 MB, on top of the encoding. */
static void snapshot_taken(plog_raft *r, const plog_raft_event *ev)
{
    plog_raft_snapshot_meta(r, ev->index, &r->compacted);
    free(r->snap_data);
    r->snap_data = ev->snap_data;
    r->snap_len = ev->snap_len;
    r->snap_have = true;
    /* §7: the caller decides when to compact; keep a tail of entries so a follower
     * slightly behind still gets AppendEntries instead of the whole snapshot, and
     * every entry a live follower still needs. The driver keeps them in storage too
     * (up->keep_from), so those whose data left memory can be read back. */
    uint64_t trail = r->cfg.snapshot_trailing;
    if (ev->index > r->log.snap_index + trail) {
        uint64_t upto = keep_from(r, ev->index - trail);
        if (upto > r->log.snap_index)
            compact_to(r, upto);
    }
    /* the snapshot itself may sit past the in-memory log's start: remember where it
     * is for InstallSnapshot (progress looks at compacted.index) */
}

static void persisted(plog_raft *r, const plog_raft_event *ev)
{
    /* a report about entries since overwritten by a new leader is stale: accept it
     * only if the term still matches (etcd's stableTo does the same). */
    uint64_t idx = ev->index;
    if (idx > plog_raft_log_last(&r->log) || plog_raft_log_term(&r->log, idx) != ev->term)
        return;
    if (idx > r->persisted)
        r->persisted = idx;
    if (r->role == PLOG_RAFT_LEADER && plog_raft_repl_maybe_commit(r))
        plog_raft_repl_broadcast(r, SEND_APPEND); /* the commit, to who can use it */
}

static int propose(plog_raft *r, const plog_raft_event *ev, plog_raft_update *up)
{
    up->index = plog_raft_log_last(&r->log) + 1;
    up->term = r->term;
    for (size_t i = 0; i < ev->n_bufs; i++) {
        int rv = plog_raft_repl_leader_append(r, PLOG_RAFT_ENTRY_NORMAL, ev->bufs[i].data, ev->bufs[i].len);
        if (rv != PLOG_OK)
            return rv;
    }
    plog_raft_repl_broadcast(r, SEND_APPEND);
    plog_raft_repl_maybe_commit(r);
    return PLOG_OK;
}

static void fill_update(plog_raft *r, plog_raft_update *up)
{
    if (r->hs_dirty) {
        up->flags |= PLOG_RAFT_UPD_HARDSTATE;
        up->hs = (plog_raft_hard_state){.term = r->term, .vote = r->vote};
        if (PLOG_RAFT_MUTATE == MUTATE_VOTE_NOT_PERSISTED)
            up->hs.vote = r->vote == r->id ? r->id : 0;
        r->hs_dirty = false;
    } else if (PLOG_RAFT_MUTATE == MUTATE_VOTE_NOT_PERSISTED) {
        /* the mutant never writes the vote it grants */
    }
    uint64_t last = plog_raft_log_last(&r->log);
    if (r->unstable_from <= r->log.snap_index)
        r->unstable_from = r->log.snap_index + 1;
    if (r->unstable_from <= last) {
        up->entries = plog_raft_log_get(&r->log, r->unstable_from);
        up->n_entries = last - r->unstable_from + 1;
    }
    r->unstable_from = last + 1;
    uint64_t upto = r->commit < last ? r->commit : last; /* never past the log's end */
    if (PLOG_RAFT_MUTATE == MUTATE_APPLY_BEFORE_COMMIT)
        upto = last;
    if (r->applied < r->log.snap_index)
        r->applied = r->log.snap_index;
    if (upto > r->applied) {
        up->committed = plog_raft_log_get(&r->log, r->applied + 1);
        up->n_committed = upto - r->applied;
        r->applied = upto;
    }
    up->msgs = r->msgs;
    up->n_msgs = r->n_msgs;
    /* thesis §10.2.1: a leader's messages (entries, commits, heartbeats) do not depend
     * on its own log being durable; its term and vote must be, so an update carrying
     * hard state waits like every other */
    if (r->role == PLOG_RAFT_LEADER && !(up->flags & PLOG_RAFT_UPD_HARDSTATE))
        up->flags |= PLOG_RAFT_UPD_SEND_EARLY;
    up->reads = r->ready;
    up->n_reads = r->n_ready;
    uint64_t d = r->election_deadline;
    if (r->role == PLOG_RAFT_LEADER) {
        if (r->heartbeat_deadline < d)
            d = r->heartbeat_deadline;
        if (r->transfer_to != 0 && r->transfer_deadline < d)
            d = r->transfer_deadline;
    }
    up->deadline_ms = d;
}

int plog_raft_step(plog_raft *r, const plog_raft_event *ev, plog_raft_update *up)
{
    memset(up, 0, sizeof *up);
    r->n_msgs = 0;
    r->n_ready = 0;
    free_loaded(r); /* the previous update is no longer borrowed */
    if (r->oom)
        return PLOG_ENOMEM;
    if (r->cfg.mem_limit > 0) {
        /* what the state machine applied and the driver persisted is in storage:
         * its data can be read back there */
        uint64_t upto = r->applied < r->persisted ? r->applied : r->persisted;
        plog_raft_log_evict(&r->log, upto, r->cfg.mem_limit);
    }
    if (!r->clock_started) {
        /* §5.2: a server starts as a follower and waits an election timeout. The
         * timeout drawn at creation counts from the driver's first event, not from
         * 0: the driver's clock is CLOCK_MONOTONIC (the machine's uptime), and a
         * restarted server campaigned at its first tick. The only voter of its
         * configuration (a bootstrapped node) has no leader to wait for and nobody
         * to disrupt: it campaigns at its first tick, so it leads as it starts. */
        r->clock_started = true;
        if (plog_raft_is_voter(r, r->id) && plog_raft_quorum(r) == 1)
            r->election_deadline = ev->now_ms;
        else
            r->election_deadline += ev->now_ms;
    }
    if (ev->now_ms > r->now)
        r->now = ev->now_ms;
    int rv = check_event(r, ev);
    if (rv != PLOG_OK) {
        fill_update(r, up); /* nothing changed: only the deadline */
        return rv;
    }
    int role = r->role;
    uint64_t term = r->term, leader = r->leader;
    switch (ev->type) {
    case PLOG_RAFT_EV_TICK:
        tick(r);
        break;
    case PLOG_RAFT_EV_RECEIVE:
        receive(r, ev->msg);
        break;
    case PLOG_RAFT_EV_PERSISTED:
        persisted(r, ev);
        break;
    case PLOG_RAFT_EV_SNAPSHOT_TAKEN:
        snapshot_taken(r, ev);
        if (!r->oom) {
            up->compacted = &r->compacted;
            up->keep_from = r->log.snap_index + 1;
        }
        break;
    case PLOG_RAFT_EV_PROPOSE:
        rv = propose(r, ev, up);
        break;
    case PLOG_RAFT_EV_CONF_CHANGE:
        up->index = plog_raft_log_last(&r->log) + 1;
        up->term = r->term;
        rv = plog_raft_conf_change(r, ev->conf_op, ev->id);
        break;
    case PLOG_RAFT_EV_READ:
        rv = plog_raft_start_read(r, ev->ctx);
        break;
    case PLOG_RAFT_EV_TRANSFER:
        rv = plog_raft_transfer(r, ev->id);
        break;
    }
    if (rv == PLOG_ENOMEM || r->oom) {
        r->oom = true;
        memset(up, 0, sizeof *up);
        return PLOG_ENOMEM;
    }
    if (rv != PLOG_OK)
        memset(up, 0, sizeof *up);
    fill_update(r, up);
    if (r->role != role || r->term != term || r->leader != leader)
        up->flags |= PLOG_RAFT_UPD_ROLE;
    if (r->rx_install) {
        up->snapshot = &r->rx_snap;
        up->flags &= ~(unsigned)PLOG_RAFT_UPD_SEND_EARLY;
        r->rx_install = false;
    }
    return rv;
}

int plog_raft_new(const plog_raft_config *cfg, const plog_raft_boot *boot, plog_raft **rp)
{
    if (cfg->id == 0 || cfg->election_timeout_ms == 0 || cfg->heartbeat_ms == 0 ||
        cfg->heartbeat_ms >= cfg->election_timeout_ms || cfg->max_inflight == 0 || cfg->max_inflight > 64 ||
        cfg->max_batch == 0 || cfg->snapshot_chunk == 0 || cfg->initial.n > PLOG_RAFT_MAX_SERVERS ||
        (cfg->mem_limit > 0 && cfg->load == NULL))
        return PLOG_EINVAL;
    plog_raft *r = calloc(1, sizeof *r);
    if (r == NULL)
        return PLOG_ENOMEM;
    r->cfg = *cfg;
    r->id = cfg->id;
    r->rng = (cfg->seed ^ (cfg->id * 0x9E3779B97F4A7C15ULL)) | 1;
    plog_raft_log_init(&r->log);
    r->snap_conf = cfg->initial;
    int rv = PLOG_OK;
    if (boot != NULL) {
        r->term = boot->hs.term;
        r->vote = boot->hs.vote;
        if (boot->snapshot != NULL) {
            const plog_raft_snapshot *s = boot->snapshot;
            plog_raft_log_reset(&r->log, s->index, s->term);
            r->snap_conf = s->conf;
            r->snap_data = malloc(s->len ? s->len : 1);
            if (r->snap_data == NULL) {
                rv = PLOG_ENOMEM;
                goto fail;
            }
            memcpy(r->snap_data, s->data, s->len);
            r->snap_len = s->len;
            r->snap_have = true;
            r->compacted = *s;
            r->compacted.data = NULL;
            r->compacted.len = 0;
        }
        for (size_t i = 0; i < boot->n_entries; i++) {
            const plog_raft_entry *e = &boot->entries[i];
            if (e->index != plog_raft_log_last(&r->log) + 1 || e->term < plog_raft_log_last_term(&r->log) ||
                e->term > r->term) {
                rv = PLOG_EINVAL;
                goto fail;
            }
            rv = plog_raft_log_append(&r->log, e);
            if (rv != PLOG_OK)
                goto fail;
        }
    }
    r->commit = r->applied = r->log.snap_index;
    r->persisted = plog_raft_log_last(&r->log);
    r->unstable_from = plog_raft_log_last(&r->log) + 1;
    plog_raft_conf_rebuild(r);
    r->role = PLOG_RAFT_FOLLOWER;
    plog_raft_reset_election_timer(r);
    *rp = r;
    return PLOG_OK;
fail:
    plog_raft_free(r);
    return rv;
}

void plog_raft_free(plog_raft *r)
{
    if (r == NULL)
        return;
    free_loaded(r);
    free(r->loaded);
    plog_raft_log_fini(&r->log);
    free(r->snap_data);
    free(r->rx_data);
    free(r->reads);
    free(r->msgs);
    free(r->ready);
    free(r);
}

void plog_raft_get_status(const plog_raft *r, plog_raft_status *st)
{
    *st = (plog_raft_status){
        .id = r->id,
        .role = r->role,
        .term = r->term,
        .vote = r->vote,
        .leader = r->leader,
        .commit = r->commit,
        .applied = r->applied,
        .first = r->log.snap_index + 1,
        .last = plog_raft_log_last(&r->log),
        .persisted = r->persisted,
        .mem = r->log.mem,
        .snapshot_index = r->snap_have ? r->compacted.index : 0,
        .conf = r->conf,
    };
}

bool plog_raft_sending_snapshot(const plog_raft *r)
{
    if (r->role != PLOG_RAFT_LEADER || !r->snap_have)
        return false;
    for (unsigned i = 0; i < r->n_prs; i++) {
        const progress *pr = &r->prs[i];
        if (pr->state == PR_SNAPSHOT && pr->snap_index == r->compacted.index && live(r, pr))
            return true;
    }
    return false;
}

uint64_t plog_raft_term_at(const plog_raft *r, uint64_t index)
{
    return plog_raft_log_term(&r->log, index);
}

const char *plog_raft_role_name(int role)
{
    static const char *names[] = {"follower", "pre-candidate", "candidate", "leader"};
    return role >= 0 && role <= PLOG_RAFT_LEADER ? names[role] : "?";
}

const char *plog_raft_msg_name(int type)
{
    static const char *names[] = {"?",      "prevote",     "prevote-resp", "vote",          "vote-resp",
                                  "append", "append-resp", "snapshot",     "snapshot-resp", "timeout-now"};
    return type >= 0 && type <= PLOG_RAFT_MSG_TIMEOUT_NOW ? names[type] : "?";
}
