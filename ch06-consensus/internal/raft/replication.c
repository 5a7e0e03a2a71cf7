/* replication.c - log replication (§5.3), commit (§5.4.2), InstallSnapshot in chunks
 * (§7) and the leader's per-follower progress.
 *
 * Progress (etcd tracker/progress.go, cowsql progress.c): a follower is in one of
 *   PROBE      we do not know where its log matches ours: one AppendEntries at a time,
 *              at next - 1, backing off on each rejection by a whole term (§5.3 end);
 *   REPLICATE  it matched: stream batches of up to max_batch entries, up to
 *              max_inflight AppendEntries in flight (pipelining), next moved ahead
 *              optimistically; a rejection or a stall sends it back to PROBE;
 *   SNAPSHOT   what it needs was compacted: send the snapshot in chunks, one in flight
 *              (resent each heartbeat period until acknowledged), then PROBE.
 * Heartbeats in REPLICATE carry prev = match, which the follower is known to hold, so a
 * heartbeat that overtakes entries in flight is not rejected. */
#include "internal/raft/core.h"

#include <stdlib.h>
#include <string.h>

#include "internal/err/err.h"

progress *plog_raft_repl_progress(plog_raft *r, uint64_t id)
{
    for (unsigned i = 0; i < r->n_prs; i++)
        if (r->prs[i].id == id)
            return &r->prs[i];
    return NULL;
}

static void progress_init(plog_raft *r, progress *pr, uint64_t id)
{
    memset(pr, 0, sizeof *pr);
    pr->id = id;
    /* Figure 2: nextIndex starts just after the leader's last entry, matchIndex at 0 */
    pr->next = plog_raft_log_last(&r->log) + 1;
    pr->state = PR_PROBE;
    pr->recent_active = true;
    pr->heard = r->now;
}

void plog_raft_repl_reset_progress(plog_raft *r)
{
    r->n_prs = 0;
    for (unsigned i = 0; i < r->conf.n; i++)
        if (r->conf.servers[i].id != r->id)
            progress_init(r, &r->prs[r->n_prs++], r->conf.servers[i].id);
}

/* plog_raft_conf_changed keeps the progress table in step with r->conf: new servers are
 * probed from the end of the log, removed ones forgotten. */
void plog_raft_conf_changed(plog_raft *r)
{
    if (r->role != PLOG_RAFT_LEADER)
        return;
    progress old[PLOG_RAFT_MAX_SERVERS];
    unsigned n_old = r->n_prs;
    memcpy(old, r->prs, sizeof old);
    r->n_prs = 0;
    for (unsigned i = 0; i < r->conf.n; i++) {
        uint64_t id = r->conf.servers[i].id;
        if (id == r->id)
            continue;
        progress *pr = &r->prs[r->n_prs++];
        unsigned j;
        for (j = 0; j < n_old; j++)
            if (old[j].id == id)
                break;
        if (j < n_old)
            *pr = old[j];
        else
            progress_init(r, pr, id);
    }
}

int plog_raft_repl_leader_append(plog_raft *r, int type, const uint8_t *data, size_t len)
{
    plog_raft_entry e = {.term = r->term,
                         .index = plog_raft_log_last(&r->log) + 1,
                         .type = (uint8_t)type,
                         .data = data,
                         .len = len};
    int rv = plog_raft_log_append(&r->log, &e);
    if (rv != PLOG_OK)
        return rv;
    if (type == PLOG_RAFT_ENTRY_CONFIG) {
        /* thesis §4.1: a server uses a new configuration as soon as it is in its log */
        plog_raft_conf_decode(data, len, &r->conf);
        r->conf_index = e.index;
        plog_raft_conf_changed(r);
    }
    return PLOG_OK;
}

static void inflight_add(plog_raft *r, progress *pr, uint64_t last)
{
    unsigned cap = r->cfg.max_inflight;
    pr->inflight[(pr->in_head + pr->in_count) % cap] = last;
    pr->in_count++;
}

static void inflight_free_to(plog_raft *r, progress *pr, uint64_t index)
{
    unsigned cap = r->cfg.max_inflight;
    while (pr->in_count > 0 && pr->inflight[pr->in_head] <= index) {
        pr->in_head = (pr->in_head + 1) % cap;
        pr->in_count--;
    }
}

static void become_probe(progress *pr, uint64_t next)
{
    pr->state = PR_PROBE;
    pr->next = next;
    pr->probe_sent = false;
    pr->in_head = pr->in_count = 0;
}

static void become_replicate(progress *pr)
{
    pr->state = PR_REPLICATE;
    pr->next = pr->match + 1;
    pr->probe_sent = false;
    pr->in_head = pr->in_count = 0;
}

/* load_entries gives m a copy of its entries with the data dropped from memory read
 * back from storage (cfg.load), owned by the update. false: not possible now. */
static bool load_entries(plog_raft *r, plog_raft_msg *m)
{
    plog_raft_entry *cp = malloc(m->n_entries * sizeof *cp);
    if (cp == NULL || !plog_raft_keep(r, cp)) {
        r->oom = true;
        return false;
    }
    memcpy(cp, m->entries, m->n_entries * sizeof *cp);
    for (size_t i = 0; i < m->n_entries; i++) {
        if (plog_raft_log_has_data(&cp[i]))
            continue;
        uint8_t *buf = malloc(cp[i].len);
        if (buf == NULL || !plog_raft_keep(r, buf)) {
            r->oom = true;
            return false;
        }
        if (r->cfg.load(r->cfg.load_arg, cp[i].index, buf, cp[i].len) != PLOG_OK)
            return false;
        cp[i].data = buf;
    }
    m->entries = cp;
    return true;
}

static bool send_entries(plog_raft *r, progress *pr, uint64_t prev, bool with_entries)
{
    plog_raft_msg *m = plog_raft_send(r, PLOG_RAFT_MSG_APPEND, pr->id);
    if (m == NULL)
        return false;
    m->index = prev;
    m->log_term = plog_raft_log_term(&r->log, prev);
    m->commit = r->commit;
    m->ctx = r->read_round;
    uint64_t last = plog_raft_log_last(&r->log);
    if (with_entries && prev < last) {
        /* batching: up to max_batch entries in one AppendEntries */
        uint64_t n = last - prev;
        if (n > r->cfg.max_batch)
            n = r->cfg.max_batch;
        m->entries = plog_raft_log_get(&r->log, prev + 1);
        if (r->cfg.max_batch_bytes > 0) {
            /* bounds what a follower's pipeline holds in flight */
            size_t bytes = m->entries[0].len;
            uint64_t k = 1;
            while (k < n && bytes + m->entries[k].len <= r->cfg.max_batch_bytes)
                bytes += m->entries[k++].len;
            n = k;
        }
        m->n_entries = n;
        if (prev + 1 <= r->log.evicted && !load_entries(r, m)) {
            r->n_msgs--; /* not sent: the next heartbeat period retries */
            return false;
        }
    }
    /* Figure 2 rule 5: the follower takes min(commit, its last new entry) */
    uint64_t learns = prev + m->n_entries < r->commit ? prev + m->n_entries : r->commit;
    if (learns > pr->commit_sent)
        pr->commit_sent = learns;
    return true;
}

/* commit_news: the follower holds committed entries it has not heard are committed
 * (its acknowledgement came after the commit that covers them) */
static bool commit_news(const plog_raft *r, const progress *pr)
{
    uint64_t knowable = pr->match < r->commit ? pr->match : r->commit;
    return knowable > pr->commit_sent;
}

static void send_snapshot(plog_raft *r, progress *pr, bool resend)
{
    if (pr->snap_index != r->compacted.index) {
        pr->snap_index = r->compacted.index;
        pr->snap_sent = pr->snap_acked = 0;
        resend = true;
    }
    if (resend)
        pr->snap_sent = pr->snap_acked;
    /* one chunk in flight: the follower takes chunks only in order, and a window
     * under reordering would mostly resend; big chunks make up for the round trips */
    uint64_t window = r->cfg.snapshot_chunk;
    do {
        if (pr->snap_sent >= r->snap_len && !(resend && r->snap_len == 0))
            break;
        if (pr->snap_sent - pr->snap_acked >= window)
            break;
        plog_raft_msg *m = plog_raft_send(r, PLOG_RAFT_MSG_SNAPSHOT, pr->id);
        if (m == NULL)
            return;
        uint64_t len = r->snap_len - pr->snap_sent;
        if (len > r->cfg.snapshot_chunk)
            len = r->cfg.snapshot_chunk;
        m->index = r->compacted.index;
        m->log_term = r->compacted.term;
        m->conf = r->compacted.conf;
        m->offset = pr->snap_sent;
        m->total = r->snap_len;
        m->data = r->snap_data + pr->snap_sent;
        m->len = len;
        m->done = pr->snap_sent + len == r->snap_len;
        pr->snap_sent += len;
        pr->snap_resend_at = r->now + r->cfg.election_timeout_ms;
        resend = false;
    } while (1);
}

void plog_raft_repl_send_append(plog_raft *r, progress *pr, int mode)
{
    uint64_t last = plog_raft_log_last(&r->log);
    if (pr->state != PR_SNAPSHOT && pr->next - 1 < r->log.snap_index) {
        /* §7: the entries it needs are compacted; send the snapshot instead */
        pr->state = PR_SNAPSHOT;
        pr->snap_index = 0;
        pr->in_head = pr->in_count = 0;
    }
    switch (pr->state) {
    case PR_SNAPSHOT:
        /* A heartbeat resends the chunk in flight only once the follower has left
         * it unanswered for an election timeout: resending it every heartbeat (10
         * ms in the driver), as before, sent each 64 KiB chunk several times over
         * a round trip of tens of ms, and a black-box run saw a restarted follower
         * take 45 s to install a 36 MB snapshot. */
        if (mode == SEND_APPEND && pr->snap_index == r->compacted.index)
            send_snapshot(r, pr, false);
        else
            send_snapshot(r, pr,
                          (mode == SEND_TICK && r->now >= pr->snap_resend_at) ||
                              pr->snap_index != r->compacted.index);
        return;
    case PR_PROBE:
        /* one probe per heartbeat period: commit advances and read rounds do not
         * resend it (the follower answers the next one) */
        if (pr->probe_sent && mode != SEND_TICK)
            return;
        /* §5.3: one AppendEntries at next - 1; the answer tells where logs match */
        if (send_entries(r, pr, pr->next - 1, true))
            pr->probe_sent = true;
        return;
    case PR_REPLICATE:
        if (mode == SEND_TICK) {
            /* entries in flight but no progress over a whole heartbeat period: they
             * (or their answers) were lost. Probe again from the match. */
            if (pr->in_count > 0 && pr->match == pr->tick_match) {
                become_probe(pr, pr->match + 1);
                plog_raft_repl_send_append(r, pr, SEND_HEARTBEAT);
                return;
            }
            pr->tick_match = pr->match;
        }
        bool sent = false;
        while (pr->in_count < r->cfg.max_inflight && pr->next <= last) {
            uint64_t prev = pr->next - 1;
            if (!send_entries(r, pr, prev, true))
                return;
            const plog_raft_msg *m = &r->msgs[r->n_msgs - 1];
            pr->next = prev + m->n_entries + 1;
            inflight_add(r, pr, prev + m->n_entries);
            sent = true;
        }
        if (!sent && (mode != SEND_APPEND || commit_news(r, pr))) {
            /* a heartbeat at prev = match: the follower holds it, so it never rejects,
             * and it learns commit = min(leader commit, match) (Figure 2 rule 5). Sent
             * at once, not at the next heartbeat period, when the follower matched
             * after the commit went out (etcd does the same): it applies sooner. */
            if (pr->match < r->log.snap_index) {
                become_probe(pr, pr->match + 1);
                plog_raft_repl_send_append(r, pr, SEND_HEARTBEAT);
                return;
            }
            send_entries(r, pr, pr->match, false);
        }
        return;
    }
}

void plog_raft_repl_broadcast(plog_raft *r, int mode)
{
    for (unsigned i = 0; i < r->n_prs; i++)
        plog_raft_repl_send_append(r, &r->prs[i], mode);
}

bool plog_raft_repl_maybe_commit(plog_raft *r)
{
    /* §5.3/§5.4.2: the commit index is the highest index stored on a majority of
     * voters (the leader counts only what it has persisted: it sends entries before
     * writing them, thesis §10.2.1), and only if that entry is from
     * the current term: an older entry commits only indirectly, with it (Figure 8). */
    uint64_t m[PLOG_RAFT_MAX_SERVERS];
    unsigned n = 0;
    if (plog_raft_is_voter(r, r->id))
        m[n++] =
            PLOG_RAFT_MUTATE == MUTATE_LEADER_COUNTS_UNPERSISTED ? plog_raft_log_last(&r->log) : r->persisted;
    for (unsigned i = 0; i < r->n_prs; i++)
        if (plog_raft_is_voter(r, r->prs[i].id))
            m[n++] = r->prs[i].match;
    if (n == 0)
        return false;
    for (unsigned i = 1; i < n; i++)
        for (unsigned j = i; j > 0 && m[j] > m[j - 1]; j--) {
            uint64_t t = m[j];
            m[j] = m[j - 1];
            m[j - 1] = t;
        }
    uint64_t idx = m[plog_raft_quorum(r) - 1];
    if (idx <= r->commit || idx > plog_raft_log_last(&r->log))
        return false;
    if (plog_raft_log_term(&r->log, idx) != r->term && PLOG_RAFT_MUTATE != MUTATE_COMMIT_OLD_TERM)
        return false;
    r->commit = idx;
    if (r->conf_index <= r->commit && !plog_raft_is_voter(r, r->id)) {
        /* thesis §4.2.2: a leader removed from the configuration steps down once the
         * configuration without it is committed */
        plog_raft_become_follower(r, r->term, 0);
        return true;
    }
    plog_raft_reads_advance(r);
    plog_raft_repl_maybe_promote(r);
    return true;
}

void plog_raft_repl_maybe_promote(plog_raft *r)
{
    if (r->role != PLOG_RAFT_LEADER || r->conf_index > r->commit || r->commit < r->term_start ||
        r->transfer_to != 0)
        return;
    for (unsigned i = 0; i < r->conf.n; i++) {
        const plog_raft_server *s = &r->conf.servers[i];
        if (s->role != PLOG_RAFT_LEARNER || !s->promote)
            continue;
        progress *pr = plog_raft_repl_progress(r, s->id);
        /* thesis §4.2.1: promote only a learner that has caught up (here: within one
         * batch of our log), so adding a voter never stalls commits */
        if (pr == NULL || pr->match + r->cfg.max_batch < plog_raft_log_last(&r->log) || pr->match < r->commit)
            continue;
        plog_raft_conf c = r->conf;
        c.servers[i].role = PLOG_RAFT_VOTER;
        c.servers[i].promote = false;
        uint8_t buf[PLOG_RAFT_CONF_MAX_BYTES];
        size_t len = plog_raft_conf_encode(&c, buf);
        if (plog_raft_repl_leader_append(r, PLOG_RAFT_ENTRY_CONFIG, buf, len) != PLOG_OK) {
            r->oom = true;
            return;
        }
        plog_raft_repl_broadcast(r, SEND_APPEND);
        return;
    }
}

void plog_raft_repl_recv_append(plog_raft *r, const plog_raft_msg *m)
{
    plog_raft_msg *resp = plog_raft_send(r, PLOG_RAFT_MSG_APPEND_RESP, m->from);
    if (resp == NULL)
        return;
    resp->ctx = m->ctx;
    if (m->index < r->commit) {
        /* everything up to our commit index is identical to the leader's (Log
         * Matching and Leader Completeness): tell it where to continue */
        resp->index = r->commit;
        return;
    }
    uint64_t last = plog_raft_log_last(&r->log);
    if (m->index > last || plog_raft_log_term(&r->log, m->index) != m->log_term) {
        /* §5.3: reject when we lack the entry before the new ones. The hint lets the
         * leader skip a whole conflicting term per round trip (§5.3, end): our last
         * entry at or before m->index whose term is <= the leader's term there. */
        uint64_t j = m->index < last ? m->index : last;
        while (j > r->log.snap_index && plog_raft_log_term(&r->log, j) > m->log_term)
            j--;
        resp->reject = true;
        resp->index = m->index;
        resp->hint_index = j;
        resp->hint_term = plog_raft_log_term(&r->log, j);
        return;
    }
    bool conf_touched = false;
    for (size_t i = 0; i < m->n_entries; i++) {
        const plog_raft_entry *e = &m->entries[i];
        if (e->index <= plog_raft_log_last(&r->log)) {
            if (plog_raft_log_term(&r->log, e->index) == e->term)
                continue; /* §5.3: already have it; never truncate on a match */
            /* §5.3: a conflicting entry and all that follow it go */
            if (e->index <= r->commit)
                return; /* cannot happen while the safety properties hold */
            if (r->conf_index >= e->index)
                conf_touched = true;
            plog_raft_log_truncate(&r->log, e->index);
            if (r->persisted >= e->index)
                r->persisted = e->index - 1;
            if (r->unstable_from > e->index)
                r->unstable_from = e->index;
        }
        if (plog_raft_log_append(&r->log, e) != PLOG_OK) {
            r->oom = true;
            return;
        }
        if (e->type == PLOG_RAFT_ENTRY_CONFIG) {
            plog_raft_conf_decode(e->data, e->len, &r->conf); /* checked on entry */
            r->conf_index = e->index;
            conf_touched = false;
        }
    }
    if (conf_touched)
        plog_raft_conf_rebuild(r);
    uint64_t last_new = m->index + m->n_entries;
    /* Figure 2 rule 5: commitIndex = min(leaderCommit, index of last new entry) */
    if (m->commit > r->commit) {
        uint64_t c = m->commit < last_new ? m->commit : last_new;
        if (c > r->commit)
            r->commit = c;
    }
    resp->index = last_new;
}

/* lost_entries: the answer to the probe in flight says the follower no longer holds
 * the entry at match. A probe leaves after match was learnt (match does not move while
 * a follower is probed: an acceptance ends the probing), so its answer is newer than
 * the acknowledgement and is believed: the follower lost entries it had written (the
 * paper assumes it never does; a torn tail after a power cut or a cut file does).
 * Keeping match would pin next at match + 1, a probe the follower can never accept,
 * resent on every rejection: the follower would never catch up. So match drops to
 * the follower's hint when our entry there has the hint's term (Log Matching: it holds
 * our log up to there), else to 0, what we know for sure. Commit never moves back;
 * lowering match only delays the commits it would count toward. The one answer this
 * cannot tell from a current one is that of a probe at the same index in an earlier
 * round, delivered late: then a follower that holds more is probed lower and
 * acknowledges again, one round trip, never a wrong match. */
static void lost_entries(plog_raft *r, progress *pr, const plog_raft_msg *m)
{
    uint64_t h = m->hint_index;
    bool known = h < pr->match && h >= r->log.snap_index && h <= plog_raft_log_last(&r->log) &&
                 plog_raft_log_term(&r->log, h) == m->hint_term;
    pr->match = known ? h : 0;
    pr->tick_match = pr->match;
}

void plog_raft_repl_recv_append_resp(plog_raft *r, const plog_raft_msg *m)
{
    progress *pr = plog_raft_repl_progress(r, m->from);
    if (pr == NULL)
        return;
    pr->recent_active = true;
    pr->heard = r->now;
    if (m->ctx > pr->read_ack && m->ctx <= r->read_round)
        pr->read_ack = m->ctx;
    if (m->reject) {
        if (pr->state == PR_SNAPSHOT)
            goto out;
        if (pr->state == PR_REPLICATE) {
            if (m->index < pr->match)
                goto out; /* stale: the heartbeats at match tell the present */
            if (m->index == pr->match) {
                /* The follower rejects an entry it acknowledged: either an old answer
                 * overtaken by that acknowledgement (reordered or duplicated), or it
                 * lost that entry since (a torn tail after a power cut, a cut file).
                 * The message cannot tell which, so ask: one probe at match. */
                become_probe(pr, pr->match + 1);
                plog_raft_repl_send_append(r, pr, SEND_APPEND);
                goto out;
            }
        } else if (m->index != pr->next - 1) {
            goto out; /* answer to an older probe */
        }
        if (m->index <= pr->match || m->hint_index < pr->match)
            lost_entries(r, pr, m);
        /* §5.3: decrement nextIndex and retry; by a whole term using the hint: our
         * last entry at or before the hint whose term is <= the follower's term. */
        uint64_t k = m->hint_index;
        if (k > plog_raft_log_last(&r->log))
            k = plog_raft_log_last(&r->log);
        while (k > r->log.snap_index && plog_raft_log_term(&r->log, k) > m->hint_term)
            k--;
        uint64_t next = k + 1;
        if (next > m->index)
            next = m->index;
        if (next < pr->match + 1)
            next = pr->match + 1;
        become_probe(pr, next);
        plog_raft_repl_send_append(r, pr, SEND_APPEND);
        goto out;
    }
    bool advanced = false;
    if (m->index > pr->match) {
        pr->match = m->index;
        advanced = true;
    }
    if (pr->next < m->index + 1)
        pr->next = m->index + 1;
    switch (pr->state) {
    case PR_PROBE:
        become_replicate(pr);
        break;
    case PR_REPLICATE:
        inflight_free_to(r, pr, m->index);
        break;
    case PR_SNAPSHOT:
        if (pr->match >= pr->snap_index)
            become_probe(pr, pr->match + 1);
        break;
    }
    if (advanced && plog_raft_repl_maybe_commit(r)) {
        if (r->role != PLOG_RAFT_LEADER)
            return;
        /* followers that hold newly committed entries learn the commit at once; the
         * others when they acknowledge them (commit_news) */
        plog_raft_repl_broadcast(r, SEND_APPEND);
    }
    if (r->transfer_to == pr->id && pr->match == plog_raft_log_last(&r->log))
        plog_raft_send(r, PLOG_RAFT_MSG_TIMEOUT_NOW, pr->id); /* thesis §3.10 */
    plog_raft_repl_maybe_promote(r);
    plog_raft_repl_send_append(r, pr, SEND_APPEND);
out:
    plog_raft_reads_advance(r);
}

void plog_raft_repl_recv_snapshot(plog_raft *r, const plog_raft_msg *m)
{
    plog_raft_msg *resp = plog_raft_send(r, PLOG_RAFT_MSG_SNAPSHOT_RESP, m->from);
    if (resp == NULL)
        return;
    resp->index = m->index;
    if (m->index <= r->commit) {
        /* §7: we already hold (and committed) what the snapshot covers */
        resp->done = true;
        resp->offset = m->total;
        return;
    }
    if (r->rx_index != m->index || r->rx_term != m->log_term || r->rx_leader_term != r->term) {
        if (m->offset != 0) {
            resp->reject = true; /* a new snapshot: start from the beginning */
            return;
        }
        r->rx_index = m->index;
        r->rx_term = m->log_term;
        r->rx_leader_term = r->term;
        r->rx_len = 0;
    }
    if (m->offset != r->rx_len) {
        resp->reject = true; /* a lost or repeated chunk: resume at what we have */
        resp->offset = r->rx_len;
        return;
    }
    if (r->rx_len + m->len > r->rx_cap) {
        size_t cap = r->rx_cap ? r->rx_cap : 4096;
        while (cap < r->rx_len + m->len)
            cap *= 2;
        uint8_t *p = realloc(r->rx_data, cap);
        if (p == NULL) {
            r->oom = true;
            return;
        }
        r->rx_data = p;
        r->rx_cap = cap;
    }
    if (m->len > 0) /* the first chunk of an empty snapshot: rx_data may be NULL */
        memcpy(r->rx_data + r->rx_len, m->data, m->len);
    r->rx_len += m->len;
    resp->offset = r->rx_len;
    if (!m->done)
        return;
    r->rx_index = 0;
    if (r->rx_len != m->total) {
        resp->reject = true;
        resp->offset = 0;
        return;
    }
    resp->done = true;
    if (m->index > r->log.snap_index && m->index <= plog_raft_log_last(&r->log) &&
        plog_raft_log_term(&r->log, m->index) == m->log_term) {
        /* §7: our log already has the snapshot's last entry: keep what follows it;
         * the entries up to it are committed. Only an entry the log holds: the term
         * of one it does not hold reads 0, and a snapshot claiming term 0 moved the
         * commit index past the log's end (entries read beyond the array). */
        r->commit = m->index;
        return;
    }
    /* §7: otherwise discard the whole log and reset the state machine from the
     * snapshot; the driver persists it before this answer goes out. */
    plog_raft_log_reset(&r->log, m->index, m->log_term);
    uint8_t *data = r->rx_data;
    r->rx_data = r->snap_data;
    r->rx_cap = r->snap_data ? r->snap_len : 0;
    r->snap_data = data;
    r->snap_len = r->rx_len;
    r->snap_have = true;
    r->rx_len = 0;
    r->snap_conf = m->conf;
    plog_raft_conf_rebuild(r);
    r->commit = r->applied = r->persisted = m->index;
    r->unstable_from = m->index + 1;
    r->compacted = (plog_raft_snapshot){.index = m->index, .term = m->log_term, .conf = m->conf};
    r->rx_snap = (plog_raft_snapshot){
        .index = m->index, .term = m->log_term, .conf = m->conf, .data = r->snap_data, .len = r->snap_len};
    r->rx_install = true;
}

void plog_raft_repl_recv_snapshot_resp(plog_raft *r, const plog_raft_msg *m)
{
    progress *pr = plog_raft_repl_progress(r, m->from);
    if (pr == NULL)
        return;
    pr->recent_active = true;
    pr->heard = r->now;
    if (pr->state != PR_SNAPSHOT || m->index != pr->snap_index)
        return;
    if (m->done) {
        if (m->index > pr->match)
            pr->match = m->index;
        become_probe(pr, pr->match + 1);
        if (plog_raft_repl_maybe_commit(r) && r->role != PLOG_RAFT_LEADER)
            return;
        plog_raft_repl_send_append(r, pr, SEND_APPEND);
        return;
    }
    if (m->reject) {
        pr->snap_sent = pr->snap_acked = m->offset;
    } else if (m->offset > pr->snap_acked) {
        pr->snap_acked = m->offset;
    }
    send_snapshot(r, pr, false);
}
