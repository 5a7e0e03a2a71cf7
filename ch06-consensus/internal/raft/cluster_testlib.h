/* cluster_testlib.h - a deterministic simulated cluster of Raft cores (test only).
 *
 * N cores run over an in-memory network and in-memory disks on a virtual clock.
 * plog_sim_step() runs whichever comes first: a message delivery, a disk write
 * completing, or a core's tick deadline (cowsql test/lib/cluster.h, TigerBeetle's VOPR).
 * Everything random comes from the seed, so a run replays exactly.
 *
 * The simulated driver follows raft.h's order: an update's writes complete after a
 * disk latency (FIFO per server), and only then are its messages sent and its
 * committed entries applied; a leader's PLOG_RAFT_UPD_SEND_EARLY messages go at once
 * (when no hard state is still being written). A crash loses every write not completed; a restart boots
 * the core from what was written.
 *
 * After every step it checks the safety properties of the Raft paper's Figure 3:
 * Election Safety, Leader Append-Only, Log Matching, Leader Completeness and State
 * Machine Safety, and that a ReadIndex read is released at an index no lower than any
 * committed before the read was asked; the first violation stops the run
 * (plog_sim_error()). */
#ifndef PLOG_RAFT_CLUSTER_TESTLIB_H
#define PLOG_RAFT_CLUSTER_TESTLIB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "internal/raft/raft.h"

#define PLOG_SIM_MAX 8

typedef struct plog_sim_opts {
    unsigned n;       /* servers 1..n form the initial configuration */
    unsigned n_spare; /* servers n+1..n+n_spare exist but start outside it */
    uint64_t seed;
    uint32_t election_timeout_ms, heartbeat_ms;
    uint32_t timeout_of[PLOG_SIM_MAX + 1]; /* per-server election timeout (0: default) */
    uint32_t max_inflight, max_batch, max_batch_bytes, snapshot_chunk, snapshot_trailing;
    uint32_t snapshot_every;   /* take a snapshot after this many applied entries (0: never) */
    uint32_t follower_live_ms; /* the cores' follower_live_ms (0: the core's default) */
    uint32_t mem_limit;        /* the cores' mem_limit (0: keep every entry in memory); they
                                  read dropped entries back from the simulated disk */
    bool no_pre_vote, no_check_quorum;
    uint32_t delay_min_ms, delay_max_ms; /* message latency, uniform: reorders */
    uint32_t drop_pct, dup_pct;          /* per message, in percent */
    uint32_t disk_min_ms, disk_max_ms;   /* latency of an update that writes */
    bool trace;                          /* keep a readable trace (plog_sim_trace) */
    bool trace_msgs;                     /* ... including every message delivered */
} plog_sim_opts;

/* plog_sim_opts_default: 3 servers, 150 ms timeouts, 50 ms heartbeats, 5 ms latency,
 * no loss, instant disks. */
void plog_sim_opts_default(plog_sim_opts *o);

typedef struct plog_sim plog_sim;

/* plog_sim_new starts every server (the spares too: they wait to be added). */
plog_sim *plog_sim_new(const plog_sim_opts *o);
void plog_sim_free(plog_sim *s);

/* plog_sim_set_log restarts server id with a stored log (test setups such as Figure 7):
 * terms[i] is the term of entry i + 1; its current term is max(term, largest entry
 * term). Call right after plog_sim_new, before any step. */
void plog_sim_set_log(plog_sim *s, uint64_t id, uint64_t term, const uint64_t *terms, size_t n);
/* plog_sim_timeout_now makes server id start an election at once (a TIMEOUT_NOW from
 * a pretend leader of its term), for scenarios that need simultaneous candidates. */
void plog_sim_timeout_now(plog_sim *s, uint64_t id);

/* plog_sim_step runs the next event; false when nothing is scheduled. */
bool plog_sim_step(plog_sim *s);
/* plog_sim_run runs events until the clock passes t or a check fails. */
void plog_sim_run(plog_sim *s, uint64_t until_ms);
/* plog_sim_run_for runs for ms of simulated time. */
void plog_sim_run_for(plog_sim *s, uint64_t ms);
uint64_t plog_sim_now(const plog_sim *s);

/* plog_sim_leader returns the up server that leads at the highest term, or 0. */
uint64_t plog_sim_leader(const plog_sim *s);
/* plog_sim_wait_leader runs until some server leads (true) or ms pass (false). */
bool plog_sim_wait_leader(plog_sim *s, uint64_t ms);

/* plog_sim_propose asks server id to append one entry with a fresh proposal id; returns
 * the core's code (PLOG_ENOTLEADER on a follower). *pid gets the proposal id. */
int plog_sim_propose(plog_sim *s, uint64_t id, uint64_t *pid);
/* plog_sim_acked: server that proposed pid applied it with the term it was given. */
bool plog_sim_acked(const plog_sim *s, uint64_t pid);
/* plog_sim_conf_change, _transfer, _read: the matching events on server id. */
int plog_sim_conf_change(plog_sim *s, uint64_t id, int op, uint64_t target);
int plog_sim_transfer(plog_sim *s, uint64_t id, uint64_t target);
int plog_sim_read(plog_sim *s, uint64_t id, uint64_t ctx);
/* plog_sim_read_done: the read ctx came back ready on server id; *index gets its index. */
bool plog_sim_read_done(const plog_sim *s, uint64_t id, uint64_t ctx, uint64_t *index);

/* Faults. */
void plog_sim_crash(plog_sim *s, uint64_t id);
void plog_sim_restart(plog_sim *s, uint64_t id);
bool plog_sim_is_up(const plog_sim *s, uint64_t id);
/* plog_sim_lose_tail drops the last n entries a crashed server had written (a torn
 * tail after a power cut or a cut file: entries it may have acknowledged). */
void plog_sim_lose_tail(plog_sim *s, uint64_t id, size_t n);
/* plog_sim_cut drops every message from -> to (one way: asymmetric partitions). */
void plog_sim_cut(plog_sim *s, uint64_t from, uint64_t to);
/* plog_sim_isolate cuts id from everyone both ways. */
void plog_sim_isolate(plog_sim *s, uint64_t id);
/* plog_sim_heal reconnects every link and stops loss and duplication. */
void plog_sim_heal(plog_sim *s);

/* Inspection. */
void plog_sim_status(const plog_sim *s, uint64_t id, plog_raft_status *st);
/* plog_sim_applied: how many entries server id's state machine has applied (its last
 * applied index) and how many proposals that includes. */
uint64_t plog_sim_applied_index(const plog_sim *s, uint64_t id);
size_t plog_sim_applied_count(const plog_sim *s, uint64_t id);
/* plog_sim_snapshots_installed counts snapshots received from leaders, all servers. */
uint64_t plog_sim_snapshots_installed(const plog_sim *s);
uint64_t plog_sim_steps(const plog_sim *s);
uint64_t plog_sim_term_of_index(const plog_sim *s, uint64_t id, uint64_t index);

/* plog_sim_error: the first safety violation (or failed final check), or NULL. */
const char *plog_sim_error(const plog_sim *s);
/* plog_sim_check_final checks, after healing: every up server in the configuration
 * applied the same entries in the same order, every acknowledged proposal exactly
 * once. false (and plog_sim_error set) on a violation. */
bool plog_sim_check_final(plog_sim *s);
/* plog_sim_trace: the trace so far (borrowed, NUL-terminated). */
const char *plog_sim_trace(const plog_sim *s);
/* plog_sim_note appends a line to the trace. */
void plog_sim_note(plog_sim *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A randomized run: faults, load, membership changes, then healing and a liveness
 * check. Returns true when every check passed; otherwise err gets the reason. */
typedef struct plog_sim_soak_stats {
    uint64_t steps, proposals, acked, elections, crashes, snapshots, reads;
    uint64_t loads;  /* entries the cores read back from disk (mem_limit) */
    uint64_t digest; /* a hash of every event's time, kind and server: equal digests,
                        same run */
} plog_sim_soak_stats;
bool plog_sim_soak(uint64_t seed, unsigned n, bool trace, plog_sim_soak_stats *st, char *err, size_t errlen);

#endif
