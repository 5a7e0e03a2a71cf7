/* raft.h - the Raft core: a pure state machine, stepped by events, returning updates.
 *
 * The core does no I/O, reads no clock, starts no threads and draws no randomness of
 * its own: time enters only as ev->now_ms, randomness from a PRNG seeded by
 * plog_raft_config.seed. A driver feeds it events (a tick, a message received, entries
 * persisted, a snapshot taken, a proposal, a membership change, a read request, a
 * leadership transfer) and carries out the update each step returns, in this order:
 *
 *   1. persist: up->snapshot (if any: store it, drop the whole stored log), then
 *      up->hs (if PLOG_RAFT_UPD_HARDSTATE), then up->entries (delete every stored
 *      entry from entries[0].index on, then append), then up->compacted (store its
 *      meta beside the snapshot bytes the driver already has; stored entries before
 *      up->keep_from may then go), all durably (fsync). up->compacted alone may be
 *      stored later, on another thread: nothing sent depends on it, and the entries
 *      it covers stay stored until it is durable; or before the step, from
 *      plog_raft_snapshot_meta (the bytes encoded and stored first, then handed over);
 *   2. send up->msgs (best effort: the core copes with loss, duplication, reordering);
 *   3. apply: restore the state machine from up->snapshot (if any), then apply
 *      up->committed in order; answer up->reads once the state machine has applied
 *      up to each read's index;
 *   4. step PLOG_RAFT_EV_PERSISTED with the last entry written (index and term) if
 *      step 1 wrote entries or a snapshot, and step a PLOG_RAFT_EV_TICK at or after
 *      up->deadline_ms.
 *
 * Messages of one update may be sent only after everything of that update (and of
 * every earlier update) is durable: a vote or an acknowledgement must survive a crash.
 * One exception (thesis §10.2.1): when up->flags has PLOG_RAFT_UPD_SEND_EARLY (a
 * leader's update with no hard state and no snapshot), its messages may be sent before
 * its entries (and earlier updates' entries) are durable, provided every earlier
 * update's hard state is; the leader's disk write then overlaps the followers'. The
 * leader counts itself in a commit quorum only for the entries reported PERSISTED, and
 * a follower still persists before it acknowledges. Every pointer in *up is borrowed
 * from the core and stays valid until the next plog_raft_step() or plog_raft_free().
 * One core is used by one thread.
 *
 * References: "§5.x" is the Raft paper (Ongaro and Ousterhout, 2014), "thesis §x" is
 * Ongaro's PhD thesis (2014). */
#ifndef PLOG_RAFT_H
#define PLOG_RAFT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PLOG_RAFT_MAX_SERVERS 16

/* Entry kinds. A CONFIG entry's data is plog_raft_conf_encode()'s bytes; the core
 * acts on it. A NOOP starts every leader's term (§5.4.2); the state machine skips it. */
enum { PLOG_RAFT_ENTRY_NORMAL = 0, PLOG_RAFT_ENTRY_NOOP = 1, PLOG_RAFT_ENTRY_CONFIG = 2 };

/* plog_raft_entry: one log entry; data/len are opaque to the core. */
typedef struct plog_raft_entry {
    uint64_t term;
    uint64_t index;
    uint8_t type;
    const uint8_t *data;
    size_t len;
} plog_raft_entry;

/* Server roles in a configuration. A learner receives the log but neither votes nor
 * counts for commit (thesis §4.2.1). promote: the leader turns it into a voter once it
 * has caught up. */
enum { PLOG_RAFT_VOTER = 0, PLOG_RAFT_LEARNER = 1 };
typedef struct plog_raft_server {
    uint64_t id; /* > 0 */
    uint8_t role;
    bool promote;
} plog_raft_server;

typedef struct plog_raft_conf {
    unsigned n;
    plog_raft_server servers[PLOG_RAFT_MAX_SERVERS];
} plog_raft_conf;

/* A configuration's encoding: n (1 byte), then per server id (8 bytes BE), role
 * (1 byte), promote (1 byte). */
#define PLOG_RAFT_CONF_MAX_BYTES (1 + PLOG_RAFT_MAX_SERVERS * 10)
/* plog_raft_conf_encode writes c into buf (PLOG_RAFT_CONF_MAX_BYTES) and returns its length. */
size_t plog_raft_conf_encode(const plog_raft_conf *c, uint8_t *buf);
/* plog_raft_conf_decode parses len bytes at p into *c. PLOG_ECORRUPT when malformed. */
int plog_raft_conf_decode(const uint8_t *p, size_t len, plog_raft_conf *c);
/* plog_raft_conf_find returns the server with id in c, or NULL (borrowed from c). */
const plog_raft_server *plog_raft_conf_find(const plog_raft_conf *c, uint64_t id);

/* What must survive a crash besides the log (§5, Figure 2 "persistent state"). */
typedef struct plog_raft_hard_state {
    uint64_t term;
    uint64_t vote; /* 0: none in this term */
} plog_raft_hard_state;

/* A snapshot: the state machine after applying every entry up to index (§7). conf is
 * the configuration as of index. data is borrowed (see the function that returns it). */
typedef struct plog_raft_snapshot {
    uint64_t index;
    uint64_t term;
    plog_raft_conf conf;
    const uint8_t *data;
    size_t len;
} plog_raft_snapshot;

/* Message kinds. */
enum {
    PLOG_RAFT_MSG_PREVOTE = 1,  /* thesis §9.6: would you vote for me at term? */
    PLOG_RAFT_MSG_PREVOTE_RESP, /* reject=false: yes */
    PLOG_RAFT_MSG_VOTE,         /* §5.2 RequestVote */
    PLOG_RAFT_MSG_VOTE_RESP,
    PLOG_RAFT_MSG_APPEND, /* §5.3 AppendEntries; with no entries it is a heartbeat */
    PLOG_RAFT_MSG_APPEND_RESP,
    PLOG_RAFT_MSG_SNAPSHOT,      /* §7 InstallSnapshot, one chunk */
    PLOG_RAFT_MSG_SNAPSHOT_RESP, /* offset: bytes received so far */
    PLOG_RAFT_MSG_TIMEOUT_NOW,   /* thesis §3.10: start an election now */
};

/* plog_raft_msg: one message. Field use by kind:
 *   PREVOTE, VOTE:  index, log_term = candidate's last entry; ctx = 1 for a leadership
 *                   transfer (voters then ignore their leader lease)
 *   *_RESP to votes: reject
 *   APPEND:         index, log_term = entry before entries[0]; entries; commit;
 *                   ctx = the leader's latest ReadIndex round
 *   APPEND_RESP:    reject=false: index = last entry the follower now matches;
 *                   reject=true: index = the rejected APPEND's index, hint_index and
 *                   hint_term = the follower's last entry at or before it whose term is
 *                   <= log_term (§5.3 fast back-off); ctx echoed
 *   SNAPSHOT:       index, log_term, conf = the snapshot; offset, data/len = this chunk;
 *                   total = snapshot size; done = last chunk
 *   SNAPSHOT_RESP:  index = the snapshot's index; offset = bytes the follower has;
 *                   done = installed (or already covered by its log)
 * entries and data are borrowed like every other array of the update. */
typedef struct plog_raft_msg {
    uint8_t type;
    uint64_t from;
    uint64_t to;
    uint64_t term;
    uint64_t index;
    uint64_t log_term;
    uint64_t commit;
    bool reject;
    uint64_t hint_index;
    uint64_t hint_term;
    uint64_t ctx;
    const plog_raft_entry *entries;
    size_t n_entries;
    plog_raft_conf conf;
    uint64_t offset;
    uint64_t total;
    const uint8_t *data;
    size_t len;
    bool done;
} plog_raft_msg;

/* A linearizable read (§6.4, thesis §6.4 ReadIndex): once the state machine has
 * applied index, reading it returns a result at least as new as the read request. */
typedef struct plog_raft_read {
    uint64_t ctx; /* the caller's ctx from PLOG_RAFT_EV_READ */
    uint64_t index;
} plog_raft_read;

/* Membership changes, one server at a time (thesis §4.1). */
enum {
    PLOG_RAFT_CONF_ADD_LEARNER = 1, /* add id as a learner that stays a learner */
    PLOG_RAFT_CONF_ADD_VOTER,       /* add id as a learner, promoted once caught up */
    PLOG_RAFT_CONF_PROMOTE,         /* make learner id a voter (once caught up) */
    PLOG_RAFT_CONF_REMOVE,          /* remove id (a removed leader steps down) */
};

/* A buffer passed in (borrowed for the call). */
typedef struct plog_raft_buf {
    const uint8_t *data;
    size_t len;
} plog_raft_buf;

/* Event kinds. Every event carries now_ms, the driver's monotonic clock. */
enum {
    PLOG_RAFT_EV_TICK = 1,       /* time passed */
    PLOG_RAFT_EV_RECEIVE,        /* msg arrived (borrowed; the core copies what it keeps) */
    PLOG_RAFT_EV_PERSISTED,      /* the log is durable up to index, whose term is term */
    PLOG_RAFT_EV_SNAPSHOT_TAKEN, /* the state machine at index is snap_data (adopted) */
    PLOG_RAFT_EV_PROPOSE,        /* leader: append bufs as NORMAL entries */
    PLOG_RAFT_EV_CONF_CHANGE,    /* leader: conf_op on server id */
    PLOG_RAFT_EV_READ,           /* leader: a ReadIndex read named ctx */
    PLOG_RAFT_EV_TRANSFER,       /* leader: hand leadership to id (0: the most caught up) */
};

typedef struct plog_raft_event {
    uint8_t type;
    uint64_t now_ms;
    const plog_raft_msg *msg;  /* RECEIVE */
    uint64_t index;            /* PERSISTED, SNAPSHOT_TAKEN */
    uint64_t term;             /* PERSISTED */
    const plog_raft_buf *bufs; /* PROPOSE */
    size_t n_bufs;
    /* SNAPSHOT_TAKEN: the state machine's bytes (malloc'd, not NULL), which the core
     * keeps to send to followers: on PLOG_OK it owns them (no copy: copying tens of
     * MB stalled the driver's thread), on an error the caller still does. */
    uint8_t *snap_data;
    size_t snap_len;
    uint8_t conf_op; /* CONF_CHANGE */
    uint64_t id;     /* CONF_CHANGE, TRANSFER */
    uint64_t ctx;    /* READ */
} plog_raft_event;

/* Update flags. */
enum {
    PLOG_RAFT_UPD_HARDSTATE = 1u << 0,  /* persist up->hs */
    PLOG_RAFT_UPD_ROLE = 1u << 1,       /* role, term or leader changed (informational) */
    PLOG_RAFT_UPD_SEND_EARLY = 1u << 2, /* msgs may go before entries are durable (header) */
};

/* What a step asks the driver to do, in the order of the header comment. */
typedef struct plog_raft_update {
    unsigned flags;
    plog_raft_hard_state hs;
    const plog_raft_snapshot *snapshot; /* received from the leader: persist and restore */
    const plog_raft_entry *entries;     /* persist: truncate from entries[0].index, append */
    size_t n_entries;
    const plog_raft_snapshot *compacted; /* after SNAPSHOT_TAKEN: persist this meta with
                                            the data (data is NULL here); stored entries
                                            before keep_from may then be dropped */
    uint64_t keep_from;                  /* with compacted: the first entry the core may still send or
                                            read back (at most compacted->index + 1: it keeps a trail
                                            for followers behind the snapshot) */
    const plog_raft_msg *msgs;
    size_t n_msgs;
    const plog_raft_entry *committed; /* apply in order */
    size_t n_committed;
    const plog_raft_read *reads;
    size_t n_reads;
    uint64_t index;       /* PROPOSE, CONF_CHANGE: index of the first entry appended */
    uint64_t term;        /* ... and its term: applied (index, term) means committed */
    uint64_t deadline_ms; /* step a TICK at or after this time */
} plog_raft_update;

typedef struct plog_raft_config {
    uint64_t id;                  /* this server, > 0 */
    uint64_t seed;                /* PRNG seed (randomized election timeouts) */
    uint32_t election_timeout_ms; /* timeouts are drawn from [this, 2 * this) (§5.2) */
    uint32_t heartbeat_ms;        /* leader's idle AppendEntries period */
    uint32_t max_inflight;        /* AppendEntries in flight per follower (pipelining) */
    uint32_t max_batch;           /* entries per AppendEntries */
    uint32_t max_batch_bytes;     /* ... and at most this many bytes of entry data in
                                     one (0: no limit; one entry goes whatever its size) */
    uint32_t snapshot_chunk;      /* bytes per InstallSnapshot chunk */
    uint32_t snapshot_trailing;   /* entries kept behind a snapshot for slow followers */
    uint32_t follower_live_ms;    /* a follower heard from within this long counts as
                                     alive for snapshots: the one sent to it is not
                                     replaced, the entries it needs are not compacted.
                                     Its install can keep it silent for seconds (the
                                     snapshot's write and fsync); one gone for good
                                     holds them this long. Default 10000 */
    size_t mem_limit;             /* bytes of entry data kept in memory (0: all). Past
                                     it, entries applied and persisted lose their data
                                     (configurations excepted), oldest first; the core
                                     reads one back through load when a follower needs
                                     it, for that step only */
    /* load fills buf with the len bytes of data of the stored entry at index (the
     * driver's storage holds every entry reported PERSISTED and not compacted):
     * PLOG_OK, or an error (the entry is then not sent this time). Required with
     * mem_limit; called from plog_raft_step on its thread. */
    int (*load)(void *arg, uint64_t index, uint8_t *buf, size_t len);
    void *load_arg;
    bool pre_vote;          /* thesis §9.6 */
    bool check_quorum;      /* thesis §6.2: a leader that loses its quorum steps down */
    plog_raft_conf initial; /* the configuration as of index 0, in memory only:
                               never persisted (a snapshot's conf is), so every
                               start must pass it again (the simulation does). A
                               driver that bootstraps durably stores a CONFIG entry
                               at index 1 instead and passes none (thesis §4.1: the
                               latest configuration in the log wins); a server
                               joining later starts empty */
} plog_raft_config;

/* plog_raft_config_default fills c with the defaults (150 ms election timeout, 50 ms
 * heartbeat, 8 in flight, 64 entries per message, 64 KiB chunks, pre-vote and
 * check-quorum on) for server id. */
void plog_raft_config_default(plog_raft_config *c, uint64_t id);

/* What a restarting server read back from its storage (all borrowed for the call). */
typedef struct plog_raft_boot {
    plog_raft_hard_state hs;
    const plog_raft_snapshot *snapshot; /* NULL: none */
    const plog_raft_entry *entries;     /* the stored log after the snapshot, contiguous */
    size_t n_entries;
} plog_raft_boot;

typedef struct plog_raft plog_raft;

/* plog_raft_new creates a core from cfg (copied) and what storage held (boot may be
 * NULL for a server with nothing stored). On PLOG_OK *rp owns the core until
 * plog_raft_free(). PLOG_EINVAL (bad config or a boot log with gaps), PLOG_ENOMEM. */
int plog_raft_new(const plog_raft_config *cfg, const plog_raft_boot *boot, plog_raft **rp);

/* plog_raft_free frees r and everything its updates lent. NULL does nothing. */
void plog_raft_free(plog_raft *r);

/* plog_raft_step feeds one event and fills *up (overwritten; borrowed until the next
 * step). PLOG_ENOTLEADER: PROPOSE/CONF_CHANGE/READ/TRANSFER on a non-leader;
 * PLOG_EBUSY: a membership change or a leadership transfer is in progress;
 * PLOG_EINVAL: a malformed event. With these, nothing changed and *up is empty.
 * PLOG_ENOMEM: r is no longer usable; free it and restart from storage. */
int plog_raft_step(plog_raft *r, const plog_raft_event *ev, plog_raft_update *up);

enum { PLOG_RAFT_FOLLOWER = 0, PLOG_RAFT_PRECANDIDATE, PLOG_RAFT_CANDIDATE, PLOG_RAFT_LEADER };

typedef struct plog_raft_status {
    uint64_t id;
    int role;
    uint64_t term;
    uint64_t vote;
    uint64_t leader; /* 0: unknown */
    uint64_t commit;
    uint64_t applied;   /* handed out in committed */
    uint64_t first;     /* first index held in memory (snapshot index + 1) */
    uint64_t last;      /* last index */
    uint64_t persisted; /* last index the driver reported durable */
    size_t mem;         /* bytes of entry data held in memory */
    uint64_t snapshot_index;
    plog_raft_conf conf; /* latest configuration in the log (committed or not) */
} plog_raft_status;

/* plog_raft_get_status fills *st. */
void plog_raft_get_status(const plog_raft *r, plog_raft_status *st);

/* plog_raft_sending_snapshot: this leader is sending its snapshot to a follower that
 * answered within the last cfg.follower_live_ms. A snapshot taken now would restart that
 * transfer from its first byte (a follower installs only the leader's latest), so under
 * steady writes one taken every few seconds could overtake every transfer and the
 * follower never catch up: a driver takes its next snapshot once this is false. The log
 * meanwhile keeps every entry after the snapshot being sent, so the follower goes on
 * from there with AppendEntries. */
bool plog_raft_sending_snapshot(const plog_raft *r);

/* plog_raft_snapshot_meta fills *meta (data NULL) with what a snapshot the driver takes
 * at index will be: index, the entry's term and the configuration as of it, which is
 * what it stores beside the bytes. A driver that encodes and writes the bytes off the
 * core's thread stores them with this meta, then steps SNAPSHOT_TAKEN at index (its
 * up->compacted is the same meta). PLOG_EINVAL when SNAPSHOT_TAKEN at index would be
 * refused now: not applied yet, compacted away, or older than the core's snapshot. */
int plog_raft_snapshot_meta(const plog_raft *r, uint64_t index, plog_raft_snapshot *meta);

/* plog_raft_term_at returns the term of the entry at index, or 0 when index is not in
 * memory (the snapshot's own index is known). */
uint64_t plog_raft_term_at(const plog_raft *r, uint64_t index);

/* plog_raft_role_name: "follower", "pre-candidate", "candidate", "leader". */
const char *plog_raft_role_name(int role);
/* plog_raft_msg_name: "append", "vote-resp", ... */
const char *plog_raft_msg_name(int type);

#endif
