/* leader.c - what only a leader does on request: ReadIndex reads (§6.4), membership
 * changes one server at a time (thesis §4.1) and leadership transfer (thesis §3.10).
 * Learner promotion, which the leader starts on its own, is in replication.c. */
#include "internal/raft/core.h"

#include <stdlib.h>

#include "internal/err/err.h"

void plog_raft_reads_advance(plog_raft *r)
{
    if (r->role != PLOG_RAFT_LEADER || r->commit < r->term_start)
        return;
    /* thesis §6.4: start the rounds that waited for this term's first commit */
    bool started = false;
    for (size_t i = 0; i < r->n_reads; i++)
        if (r->reads[i].round == 0) {
            r->reads[i].index = r->commit;
            r->reads[i].round = ++r->read_round;
            started = true;
        }
    if (started)
        plog_raft_repl_broadcast(r, SEND_HEARTBEAT);
    /* a round is confirmed once a quorum of voters answered a message carrying it */
    size_t keep = 0;
    for (size_t i = 0; i < r->n_reads; i++) {
        pending_read *rd = &r->reads[i];
        unsigned acks = plog_raft_is_voter(r, r->id);
        for (unsigned j = 0; j < r->n_prs; j++)
            if (plog_raft_is_voter(r, r->prs[j].id) && r->prs[j].read_ack >= rd->round)
                acks++;
        if (PLOG_RAFT_MUTATE == MUTATE_READ_NO_QUORUM)
            acks = plog_raft_quorum(r);
        if (rd->round == 0 || acks < plog_raft_quorum(r)) {
            r->reads[keep++] = *rd;
            continue;
        }
        if (r->n_ready == r->cap_ready) {
            size_t cap = r->cap_ready ? r->cap_ready * 2 : 8;
            plog_raft_read *p = realloc(r->ready, cap * sizeof *p);
            if (p == NULL) {
                r->oom = true;
                return;
            }
            r->ready = p;
            r->cap_ready = cap;
        }
        r->ready[r->n_ready++] = (plog_raft_read){.ctx = rd->ctx, .index = rd->index};
    }
    r->n_reads = keep;
}

int plog_raft_start_read(plog_raft *r, uint64_t ctx)
{
    if (r->n_reads == r->cap_reads) {
        size_t cap = r->cap_reads ? r->cap_reads * 2 : 8;
        pending_read *p = realloc(r->reads, cap * sizeof *p);
        if (p == NULL)
            return PLOG_ENOMEM;
        r->reads = p;
        r->cap_reads = cap;
    }
    pending_read *rd = &r->reads[r->n_reads++];
    *rd = (pending_read){.ctx = ctx};
    if (r->commit >= r->term_start) {
        /* thesis §6.4: the read index is the commit index now; then confirm we are
         * still leader by a round of heartbeats acknowledged by a quorum. */
        rd->index = r->commit;
        rd->round = ++r->read_round;
        plog_raft_repl_broadcast(r, SEND_HEARTBEAT);
    }
    plog_raft_reads_advance(r);
    return PLOG_OK;
}

int plog_raft_conf_change(plog_raft *r, int op, uint64_t id)
{
    if (id == 0)
        return PLOG_EINVAL;
    /* thesis §4.1: one change at a time, each committed before the next starts; and a
     * leader first commits an entry of its own term (the fix of thesis §4.1's bug). */
    if (r->conf_index > r->commit || r->commit < r->term_start || r->transfer_to != 0)
        return PLOG_EBUSY;
    plog_raft_conf c = r->conf;
    plog_raft_server *s = (plog_raft_server *)plog_raft_conf_find(&c, id);
    switch (op) {
    case PLOG_RAFT_CONF_ADD_LEARNER:
    case PLOG_RAFT_CONF_ADD_VOTER:
        if (s != NULL || c.n == PLOG_RAFT_MAX_SERVERS)
            return PLOG_EINVAL;
        /* thesis §4.2.1: a new server joins without a vote until it has caught up */
        c.servers[c.n++] = (plog_raft_server){
            .id = id, .role = PLOG_RAFT_LEARNER, .promote = op == PLOG_RAFT_CONF_ADD_VOTER};
        break;
    case PLOG_RAFT_CONF_PROMOTE:
        if (s == NULL || s->role != PLOG_RAFT_LEARNER || s->promote)
            return PLOG_EINVAL;
        s->promote = true;
        break;
    case PLOG_RAFT_CONF_REMOVE: {
        if (s == NULL)
            return PLOG_EINVAL;
        *s = c.servers[--c.n];
        unsigned voters = 0;
        for (unsigned i = 0; i < c.n; i++)
            voters += c.servers[i].role == PLOG_RAFT_VOTER;
        if (voters == 0)
            return PLOG_EINVAL;
        break;
    }
    default:
        return PLOG_EINVAL;
    }
    uint8_t buf[PLOG_RAFT_CONF_MAX_BYTES];
    size_t len = plog_raft_conf_encode(&c, buf);
    int rv = plog_raft_repl_leader_append(r, PLOG_RAFT_ENTRY_CONFIG, buf, len);
    if (rv != PLOG_OK)
        return rv;
    plog_raft_repl_broadcast(r, SEND_APPEND);
    plog_raft_repl_maybe_commit(r);
    return PLOG_OK;
}

int plog_raft_transfer(plog_raft *r, uint64_t id)
{
    if (r->transfer_to != 0)
        return PLOG_EBUSY;
    if (id == 0) {
        /* pick the voter with the longest log */
        uint64_t best = 0;
        for (unsigned i = 0; i < r->n_prs; i++)
            if (plog_raft_is_voter(r, r->prs[i].id) && (id == 0 || r->prs[i].match > best)) {
                id = r->prs[i].id;
                best = r->prs[i].match;
            }
    }
    if (id == 0 || id == r->id || !plog_raft_is_voter(r, id))
        return PLOG_EINVAL;
    /* thesis §3.10: stop taking proposals, bring the target up to date, then tell it
     * to time out at once; give up after an election timeout. */
    r->transfer_to = id;
    r->transfer_deadline = r->now + r->cfg.election_timeout_ms;
    progress *pr = plog_raft_repl_progress(r, id);
    if (pr->match == plog_raft_log_last(&r->log)) {
        plog_raft_send(r, PLOG_RAFT_MSG_TIMEOUT_NOW, id);
    } else {
        plog_raft_repl_send_append(r, pr, SEND_APPEND);
    }
    return PLOG_OK;
}
