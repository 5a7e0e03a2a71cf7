/* replicator.h - copies every other node's records into the local log, exactly
 * once (Go: internal/log/replicator.go).
 *
 * The book's replicator, on a member's join, consumes that member's whole log from
 * offset 0 and produces every record locally. With three nodes that loops: A's
 * record is copied to B, B's copy (now a record of B's log) goes to C and back to
 * A, A's copy of its own record goes out again, and so on forever. This one:
 *
 *  1. Asks each member only for what that member originated. Records carry their
 *     origin (log.proto Record fields 5 and 6); a record produced by a client has
 *     none, and the replicator's ConsumeStream sets origin_only, so the member's
 *     server skips the copies it holds of other nodes' records. Every record thus
 *     travels once, from its origin, to each other node: no cycles, whatever the
 *     order in which nodes joined.
 *  2. Keeps its position per origin in the log itself: the next origin offset to
 *     copy from origin X is 1 + the largest origin_offset among the local records
 *     whose origin is X. plog_replicator_open rebuilds that table by scanning the
 *     log, and the replicator appends a member's records in origin order, so after
 *     a crash the position and the data agree by construction: whatever the log's
 *     recovery kept is exactly what the position says was copied. No second file
 *     can disagree with it.
 *  3. Never appends a record whose origin offset is below the position (a member
 *     that answers from an older offset cannot make it copy twice).
 *
 * Positions are origin offsets, which are the origin's own log offsets: a node's
 * name is bound to its log (the agent refuses a data directory made under another
 * name), or two lives of a name would share one offset space.
 *
 * Threads: one per member being replicated, each with its own client (the node's
 * peer certificate), polling with long polls; join and leave never block on the
 * network, so the membership thread that calls them keeps its timing. */
#ifndef PLOG_LOG_REPLICATOR_H
#define PLOG_LOG_REPLICATOR_H

#include <stddef.h>
#include <stdint.h>

#include "internal/log/log.h"
#include "internal/logger/logger.h"

typedef struct plog_replicator plog_replicator;

/* plog_replicator_published_fn hears that the records below next were appended by
 * the replicator and are durable per the log's policy (the agent tells the RPC
 * server, which makes them visible to consumers). Runs on a replicator thread. */
typedef void (*plog_replicator_published_fn)(void *arg, uint64_t next);

typedef struct plog_replicator_config {
    const char *self;      /* this node's name (copied): records it originated are not copied */
    const char *cert_file; /* the node's peer certificate, key and CA (copied paths) */
    /* The CN of an RPC server certificate the nodes share (copied; NULL or "": each
     * node's server certificate names its node). A member's records are copied only
     * from a server whose certificate names the member, or carries this CN: a shared
     * certificate cannot tell the nodes apart. */
    const char *shared_server_cn;
    const char *key_file;
    const char *ca_file;
    uint32_t batch_records;                 /* per poll; 0: 32768 */
    uint32_t batch_bytes;                   /* per poll; 0: 3 MiB (the server's replies stay under 4 MiB) */
    uint32_t poll_wait_ms;                  /* long poll; 0: 250 (also bounds how long a stop takes) */
    plog_replicator_published_fn published; /* may be NULL */
    void *arg;
    plog_logger *logger; /* borrowed; NULL: silent */
} plog_replicator_config;

/* plog_replicator_open scans log (borrowed; it must outlive the replicator) for
 * the position of every origin. On PLOG_OK *rp is the caller's. On failure err
 * says why: PLOG_EINVAL, PLOG_ENOMEM, a read error of the log. */
int plog_replicator_open(plog_log *log, const plog_replicator_config *cfg, plog_replicator **rp, char *err,
                         size_t errsize);

/* plog_replicator_join starts copying what name originated, from its RPC server at
 * rpc_addr ("HOST:PORT" or a tls+tcp:// URL), from where this node left off. A
 * member already being copied from the same address is left alone; a new address
 * restarts it there. Ignores self. Returns at once. PLOG_EINVAL, PLOG_ENOMEM. */
int plog_replicator_join(plog_replicator *r, const char *name, const char *rpc_addr);

/* plog_replicator_leave stops copying from name (a leave or a failure). Returns at
 * once; the member's thread stops within one poll. A later join resumes at the
 * position. Unknown names are ignored. */
void plog_replicator_leave(plog_replicator *r, const char *name);

/* plog_replicator_position sets *next to the next origin offset to copy from
 * origin (0 when none was copied). */
void plog_replicator_position(plog_replicator *r, const char *origin, uint64_t *next);

/* Counters since open. */
typedef struct plog_replicator_stats {
    uint64_t records; /* appended */
    uint64_t polls;   /* ConsumeStream calls answered */
    uint64_t errors;  /* failed calls (then retried with backoff) */
    unsigned active;  /* members being copied now */
} plog_replicator_stats;
void plog_replicator_stats_get(plog_replicator *r, plog_replicator_stats *out);

/* plog_replicator_close stops every member's thread, waits for them and frees r.
 * NULL does nothing. */
void plog_replicator_close(plog_replicator *r);

#endif
