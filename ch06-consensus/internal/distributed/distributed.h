/* distributed.h - the replicated commit log (Go: internal/log/distributed.go): the
 * Raft core (internal/raft) driven with real storage (internal/raftstore) and a
 * real transport (Raft messages over nng PUSH/PULL with mutual TLS, the
 * membership transport of internal/discovery on a port of its own).
 *
 * Two logs, as in the book. Raft's log (raftstore, fsynced) is the truth; the
 * record log that Consume reads is the state machine: committed entries are
 * applied to it in order, never fsynced, and it is rebuilt from Raft's log when
 * the node starts, so a crash can never leave it ahead of or apart from Raft.
 * Each record is therefore written twice; README.md gives the measured cost.
 *
 * An entry of type NORMAL is one produce: a client id, a sequence number and
 * the batch's records (all or nothing). Applying it appends the records unless
 * the state machine already applied that (client id, seq): the table of the last
 * sequence number per client is part of the replicated state (rebuilt by every
 * node from the same entries), so a retry after a leader change is not
 * appended twice.
 *
 * Threads: one thread owns the core, the stores and the record log's writer; every
 * function here may be called from any thread. Completion callbacks run on that
 * thread: they must not block and must not call back into this API
 * synchronously (except the non-blocking getters). */
#ifndef PLOG_DISTRIBUTED_H
#define PLOG_DISTRIBUTED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "internal/auth/authorizer.h"
#include "internal/log/config.h"
#include "internal/log/log.h"
#include "internal/logger/logger.h"

typedef struct plog_distributed plog_distributed;

/* At most this many servers in a configuration (the core's limit). */
#define PLOG_DISTRIBUTED_MAX_SERVERS 16

typedef struct plog_distributed_config {
    const char *name;           /* this node: its certificate's CN; its Raft id is
                                   plog_distributed_id(name) */
    const char *dir;            /* dir/raft: Raft's state; dir/records: the record log */
    const char *raft_addr;      /* "HOST:PORT" Raft listens on (its own port); outgoing
                                   Raft connections leave from HOST when it is an IP
                                   literal (internal/discovery/transport.h) */
    const char *advertise_addr; /* "HOST:PORT" the others dial for this node's Raft,
                                   named as the sender in every message (e.g. a proxy
                                   or a NAT in front of raft_addr); NULL: raft_addr */
    const char *rpc_addr;       /* what GetServers advertises for this node */
    const char *cert_file;      /* node certificate, key and CA: both directions */
    const char *key_file;
    const char *ca_file;
    const plog_auth *acl;         /* borrowed: who may send Raft messages ("gossip") */
    bool bootstrap;               /* a new cluster of this one server, written to Raft's log
                                     (a CONFIG entry at index 1) before Raft starts; ignored
                                     once Raft's log or a snapshot holds anything */
    uint32_t election_timeout_ms; /* 0: 150; timeouts are drawn from [T, 2T) */
    uint32_t snapshot_entries;    /* take a snapshot every this many applied entries
                                     (the state machine: the dedup table and the record
                                     log streamed through its reader), and no sooner
                                     than 20 times as long as the last one took after
                                     it; 0: never */
    uint32_t heartbeat_ms;        /* 0: 10 (idle AppendEntries; commits are sent at once) */
    uint32_t follower_live_ms;    /* 0: 10000; the leader keeps the entries a follower
                                     heard from within this long needs, and does not
                                     replace a snapshot it is sending it (raft.h) */
    plog_log_config log;          /* segment sizes of both logs (sync is the driver's) */
    /* applied(arg, next): records below next are in the record log (call
     * plog_server_publish). On the node thread, or in plog_distributed_start for
     * a restored snapshot. NULL: nobody is told. */
    void (*applied)(void *arg, uint64_t next);
    /* failed(arg, why): the node stopped for good, because a write to Raft's log
     * or to the record log failed (a full disk): it no longer votes, leads or
     * applies, names no leader, and answers produces "not leader". Called once,
     * on the node thread. A restart recovers from what is on disk, so the
     * program should exit (cmd/proglog does, status 1). NULL: nobody is told. */
    void (*failed)(void *arg, const char *why);
    void *arg;
    plog_logger *logger; /* borrowed; role and term changes are logged (NULL: nothing) */
} plog_distributed_config;

/* plog_distributed_open starts listening on raft_addr (with the node certificate)
 * and opens (or creates) the node's storage in cfg->dir, writing nothing to Raft's
 * state: the node neither votes nor campaigns, drops the messages that arrive and
 * answers produces and reads PLOG_ENOTLEADER until plog_distributed_start. So a
 * program opens everything else that can fail (its other ports, certificates)
 * between the two, and a start that fails leaves Raft's term, vote and log as they
 * were. The strings are copied. On PLOG_OK *dp is the caller's until
 * plog_distributed_close. PLOG_EIO, PLOG_ECORRUPT, PLOG_ETLS, PLOG_EINVAL,
 * PLOG_ENOMEM, with the reason in err. */
int plog_distributed_open(const plog_distributed_config *cfg, plog_distributed **dp, char *err, size_t errsz);

/* plog_distributed_start reads Raft's state, bootstraps when cfg.bootstrap asks
 * (the first writes to it), restores the latest snapshot into the record log,
 * creates the core and starts the node thread: from here the node votes,
 * campaigns and applies. Once, after plog_distributed_open. PLOG_EIO,
 * PLOG_ECORRUPT, PLOG_ENOMEM, with the reason in err; then close. */
int plog_distributed_start(plog_distributed *d, char *err, size_t errsz);

/* plog_distributed_id: the Raft id of the node named name (FNV-1a, never 0). */
uint64_t plog_distributed_id(const char *name);

/* plog_distributed_log: the record log (committed records only), for reading.
 * Borrowed until close. */
plog_log *plog_distributed_log(plog_distributed *d);

/* plog_distributed_applied_next: records below it are readable on this node. */
uint64_t plog_distributed_applied_next(plog_distributed *d);

/* A produce's outcome: rv PLOG_OK with the offset of the first record and the
 * count; PLOG_ENOTLEADER (this node does not lead: nothing was appended);
 * PLOG_EINDOUBT (its entry was appended, but this node lost leadership or
 * stopped before it committed: it may still commit); after either, ask
 * plog_distributed_leader and retry there with the same (client_id, seq), which
 * the dedup table answers with the first outcome's offsets; PLOG_EBUSY (a
 * leadership transfer: retry); PLOG_EIO. */
typedef void (*plog_distributed_done_fn)(void *arg, int rv, uint64_t first, uint64_t count);

/* plog_distributed_produce proposes the n records (values, copied) as one entry
 * and calls done once it is applied, or failed. seq == 0: no deduplication.
 * Returns PLOG_OK when queued (done will be called), else the error (done will
 * not be). */
int plog_distributed_produce(plog_distributed *d, uint64_t client_id, uint64_t seq,
                             const uint8_t *const *values, const size_t *lens, size_t n,
                             plog_distributed_done_fn done, void *arg);

/* plog_distributed_produce_wait is plog_distributed_produce waiting up to
 * timeout_ms for the outcome (PLOG_EIO on timeout). */
int plog_distributed_produce_wait(plog_distributed *d, uint64_t client_id, uint64_t seq,
                                  const uint8_t *const *values, const size_t *lens, size_t n, uint64_t *first,
                                  int timeout_ms);

/* plog_distributed_read_index asks for a linearizable read point (ReadIndex,
 * Raft §6.4): done(arg, rv, next) with rv PLOG_OK once this node (the leader) has
 * confirmed its leadership and applied everything committed when asked; reads
 * below next are then linearizable. PLOG_ENOTLEADER elsewhere. */
typedef void (*plog_distributed_read_fn)(void *arg, int rv, uint64_t next);
int plog_distributed_read_index(plog_distributed *d, plog_distributed_read_fn done, void *arg);

/* plog_distributed_join: a member joined (membership: name, its Raft and RPC
 * addresses). Every node records the addresses; the leader adds the member as a
 * learner and promotes it to voter once caught up. Idempotent. */
void plog_distributed_join(plog_distributed *d, const char *name, const char *raft_addr,
                           const char *rpc_addr);

/* plog_distributed_leave: a member left gracefully; the leader removes it (a
 * failed member is not passed here: it stays a voter). Idempotent. */
void plog_distributed_leave(plog_distributed *d, const char *name);

/* plog_distributed_failed: membership declared the member dead. It stays a voter
 * (it may come back) until plog_distributed_remove; a join clears it. */
void plog_distributed_failed(plog_distributed *d, const char *name);

/* plog_distributed_remove: an operator removes the server named name, gone for
 * good. On the leader, for a server of the configuration that is not the leader
 * and that membership declared dead (or never reported), it is treated as a
 * member that left: reconcile removes it at once, and it is added again if it
 * ever joins again. PLOG_OK once that is under way (GetServers shows when it is
 * done; a leadership change before then drops it), PLOG_ENOTLEADER on a
 * follower, PLOG_ERANGE when no server has that name, PLOG_EINVAL for the
 * leader itself or a member alive, each with err set (errsz bytes). */
int plog_distributed_remove(plog_distributed *d, const char *name, char *err, size_t errsz);

/* One server of the configuration, as GetServers reports it. */
typedef struct plog_distributed_server {
    uint64_t id;
    char name[64];
    char rpc_addr[128];
    bool is_leader;
    bool voter;
} plog_distributed_server;

/* plog_distributed_servers fills out[0..*n) (at most cap) with the servers of the
 * latest configuration this node knows. */
void plog_distributed_servers(plog_distributed *d, plog_distributed_server *out, size_t cap, size_t *n);

/* plog_distributed_leader copies the leader's RPC address into buf (empty when
 * unknown); returns whether this node leads. */
bool plog_distributed_leader(plog_distributed *d, char *buf, size_t size);

/* plog_distributed_raft_state: this node's Raft term, commit index and last log
 * index, as the node thread last published them (for metrics and the program's
 * start line); all 0 before plog_distributed_start. */
void plog_distributed_raft_state(plog_distributed *d, uint64_t *term, uint64_t *commit, uint64_t *last);

/* plog_distributed_snapshots_taken: how many snapshots this node has taken (not
 * installed from a leader) since it opened, and the index of the last one in
 * *last_index (when not NULL; 0 before the first). */
uint64_t plog_distributed_snapshots_taken(plog_distributed *d, uint64_t *last_index);

/* plog_distributed_foreign: how many Raft messages from another cluster (another
 * bootstrap's, see distributed.c) this node has dropped since it opened. */
uint64_t plog_distributed_foreign(plog_distributed *d);

/* plog_distributed_wait_leader waits up to timeout_ms until some leader is known
 * to this node. */
bool plog_distributed_wait_leader(plog_distributed *d, int timeout_ms);

/* plog_distributed_stop: what close does before freeing anything: a leader hands
 * over, the node thread stops (nothing more is sent) and every produce still
 * waiting is answered PLOG_EINDOUBT (PLOG_ENOTLEADER if not yet proposed), every
 * read PLOG_ENOTLEADER. The record log stays readable and the
 * transport open (it drops what arrives) until close. Idempotent. Stopping every
 * node of a process before closing any avoids messages queued to a peer that is
 * gone, which nng 1.5.2 may leak when the socket closes. */
void plog_distributed_stop(plog_distributed *d);

/* plog_distributed_close: a leader first hands leadership to the most caught-up
 * voter (up to about an election timeout), then the node thread stops, the
 * transport closes and everything is freed. NULL does nothing. */
void plog_distributed_close(plog_distributed *d);

#endif
