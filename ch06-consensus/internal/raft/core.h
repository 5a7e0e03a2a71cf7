/* core.h - the Raft core's private state, shared by raft.c (step, roles, elections,
 * ticks), leader.c (reads, membership changes, transfer), replication.c (AppendEntries,
 * InstallSnapshot, commit), rlog.c (the in-memory log) and conf.c (configurations).
 * Not for drivers: they use raft.h. */
#ifndef PLOG_RAFT_CORE_H
#define PLOG_RAFT_CORE_H

#include "internal/raft/raft.h"

/* PLOG_RAFT_MUTATE=n breaks one rule on purpose so the simulation can show it finds
 * the bug (make mutation-check). 0: the correct core. */
#ifndef PLOG_RAFT_MUTATE
#define PLOG_RAFT_MUTATE 0
#endif
enum {
    MUTATE_COMMIT_OLD_TERM = 1,           /* commit by counting replicas of a previous term's entry */
    MUTATE_VOTE_NO_UPTODATE = 2,          /* grant votes without the §5.4.1 up-to-date check */
    MUTATE_VOTE_NOT_PERSISTED = 3,        /* answer a vote without persisting it */
    MUTATE_APPLY_BEFORE_COMMIT = 4,       /* hand out entries to apply before they commit */
    MUTATE_READ_NO_QUORUM = 5,            /* release ReadIndex reads without a heartbeat round */
    MUTATE_LEADER_COUNTS_UNPERSISTED = 6, /* the leader counts entries it sent but has not
                                             persisted toward a commit quorum */
};

/* The in-memory log: entries (snap_index, last], each entry's data owned here.
 * ents[i] has index snap_index + 1 + i. Entries up to evicted may have lost their
 * data (data NULL, len kept; configurations keep theirs). */
typedef struct rlog {
    plog_raft_entry *ents;
    size_t n, cap;
    uint64_t snap_index, snap_term;
    uint64_t evicted;
    size_t mem; /* bytes of data held */
} rlog;

void plog_raft_log_init(rlog *l);
void plog_raft_log_fini(rlog *l);
uint64_t plog_raft_log_last(const rlog *l);
uint64_t plog_raft_log_last_term(const rlog *l);
/* plog_raft_log_term returns the term at index, or 0 when unknown (compacted or past the end). */
uint64_t plog_raft_log_term(const rlog *l, uint64_t index);
/* plog_raft_log_get returns the entry at index (borrowed), or NULL. */
const plog_raft_entry *plog_raft_log_get(const rlog *l, uint64_t index);
/* plog_raft_log_append copies e (e->index must be last + 1). PLOG_ENOMEM. */
int plog_raft_log_append(rlog *l, const plog_raft_entry *e);
/* plog_raft_log_truncate deletes entries from index on. */
void plog_raft_log_truncate(rlog *l, uint64_t index);
/* plog_raft_log_compact drops entries up to index (<= last), remembering its term. */
void plog_raft_log_compact(rlog *l, uint64_t index, uint64_t term);
/* plog_raft_log_reset drops every entry; the log then starts after (index, term). */
void plog_raft_log_reset(rlog *l, uint64_t index, uint64_t term);
/* plog_raft_log_evict drops the data of the oldest entries up to index while more
 * than limit bytes are held. */
void plog_raft_log_evict(rlog *l, uint64_t index, size_t limit);
/* plog_raft_log_has_data: e's data is in memory (or it has none). */
bool plog_raft_log_has_data(const plog_raft_entry *e);

/* Leader's view of one peer (etcd tracker/progress.go; cowsql progress.c). */
enum { PR_PROBE = 0, PR_REPLICATE, PR_SNAPSHOT };
typedef struct progress {
    uint64_t id;
    uint64_t match, next;
    int state;
    bool probe_sent;       /* PROBE: one AppendEntries out, wait for the answer */
    uint64_t inflight[64]; /* REPLICATE: last index of each AppendEntries in flight */
    unsigned in_head, in_count;
    uint64_t snap_index; /* SNAPSHOT: the one being sent */
    uint64_t snap_sent, snap_acked;
    uint64_t snap_resend_at; /* SNAPSHOT: a chunk unanswered until then is sent again */
    bool recent_active;      /* heard from since the last check-quorum round */
    uint64_t heard;          /* when it last answered (ms; its progress's start before) */
    uint64_t tick_match;     /* match at the previous heartbeat period (stall check) */
    uint64_t read_ack;       /* latest ReadIndex round acknowledged */
    uint64_t commit_sent;    /* highest commit index it can have learned from us:
                                min(commit, last entry) of an AppendEntries sent */
} progress;

typedef struct pending_read {
    uint64_t ctx, index, round;
} pending_read;

struct plog_raft {
    plog_raft_config cfg;
    uint64_t id;
    int role;
    uint64_t term, vote, leader;
    bool hs_dirty;
    uint64_t commit, applied, persisted;
    rlog log;
    uint64_t unstable_from; /* first index the driver has not been handed yet */

    /* configuration: the latest in the log (thesis §4.1: used as soon as appended) */
    plog_raft_conf conf;
    uint64_t conf_index;
    plog_raft_conf snap_conf; /* as of log.snap_index */

    /* the latest snapshot this server has (data owned) */
    uint8_t *snap_data;
    size_t snap_len;
    bool snap_have;

    /* follower: a snapshot being received in chunks */
    uint8_t *rx_data;
    size_t rx_len, rx_cap;
    uint64_t rx_index, rx_term, rx_leader_term;
    plog_raft_snapshot rx_snap; /* handed out in up->snapshot */
    bool rx_install;            /* rx_snap goes into the next update */
    plog_raft_snapshot compacted;

    /* time */
    uint64_t now;
    bool clock_started;         /* an event has set now: the driver's clock need not start at 0 */
    uint64_t election_deadline; /* follower/candidate: campaign at; leader: check quorum */
    uint64_t heartbeat_deadline;
    uint64_t last_leader_contact; /* lease for pre-vote and disruptive servers */
    bool heard_leader;
    uint64_t rng;

    /* candidate */
    uint64_t votes_granted[PLOG_RAFT_MAX_SERVERS];
    unsigned n_granted, n_rejected;

    /* leader */
    progress prs[PLOG_RAFT_MAX_SERVERS];
    unsigned n_prs;
    uint64_t term_start; /* index of this term's no-op */
    uint64_t transfer_to, transfer_deadline;
    uint64_t read_round;
    pending_read *reads;
    size_t n_reads, cap_reads;

    /* the update under construction */
    plog_raft_msg *msgs;
    size_t n_msgs, cap_msgs;
    plog_raft_read *ready;
    size_t n_ready, cap_ready;
    plog_raft_entry *committed_copy; /* only with MUTATE_APPLY_BEFORE_COMMIT */
    void **loaded;                   /* entries read back through cfg.load for this update, freed at the
                                        next step */
    size_t n_loaded, cap_loaded;
    bool oom;
};

/* raft.c */
/* plog_raft_keep hands p (malloc'd) to the update: freed at the next step. false (p
 * freed) when out of memory. */
bool plog_raft_keep(plog_raft *r, void *p);
void plog_raft_become_follower(plog_raft *r, uint64_t term, uint64_t leader);
void plog_raft_reset_election_timer(plog_raft *r);
plog_raft_msg *plog_raft_send(plog_raft *r, int type, uint64_t to);
bool plog_raft_is_voter(const plog_raft *r, uint64_t id);
unsigned plog_raft_quorum(const plog_raft *r);
void plog_raft_conf_changed(plog_raft *r);
void plog_raft_reads_advance(plog_raft *r);

/* leader.c: PLOG_ENOMEM, PLOG_EBUSY, PLOG_EINVAL as plog_raft_step documents */
int plog_raft_start_read(plog_raft *r, uint64_t ctx);
int plog_raft_conf_change(plog_raft *r, int op, uint64_t id);
int plog_raft_transfer(plog_raft *r, uint64_t id);

/* replication.c */
progress *plog_raft_repl_progress(plog_raft *r, uint64_t id);
void plog_raft_repl_reset_progress(plog_raft *r);
/* What plog_raft_repl_send_append sends: new entries if the window allows, else an empty
 * AppendEntries if the follower holds committed entries it was not told are (APPEND);
 * that or an empty AppendEntries so the follower hears the commit index and the
 * ReadIndex round (HEARTBEAT); a HEARTBEAT after checking for stalled pipelines and resending
 * snapshot chunks (TICK, once per heartbeat period). */
enum { SEND_APPEND = 0, SEND_HEARTBEAT, SEND_TICK };
void plog_raft_repl_send_append(plog_raft *r, progress *pr, int mode);
void plog_raft_repl_broadcast(plog_raft *r, int mode);
void plog_raft_repl_recv_append(plog_raft *r, const plog_raft_msg *m);
void plog_raft_repl_recv_append_resp(plog_raft *r, const plog_raft_msg *m);
void plog_raft_repl_recv_snapshot(plog_raft *r, const plog_raft_msg *m);
void plog_raft_repl_recv_snapshot_resp(plog_raft *r, const plog_raft_msg *m);
bool plog_raft_repl_maybe_commit(plog_raft *r);
int plog_raft_repl_leader_append(plog_raft *r, int type, const uint8_t *data, size_t len);
void plog_raft_repl_maybe_promote(plog_raft *r);

/* conf.c */
/* plog_raft_conf_rebuild finds the latest configuration in the log (or the snapshot's). */
void plog_raft_conf_rebuild(plog_raft *r);

#endif
