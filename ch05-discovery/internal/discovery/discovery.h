/* discovery.h - a running member of the cluster: the SWIM core (membership.h)
 * driven by a thread and a clock, talking through the mTLS transport
 * (transport.h), handing join/leave/failed events to a handler (Go: the book's
 * discovery/membership.go, which wraps Serf).
 *
 * The driver owns the core under one mutex:
 *   - a message arrives on an nng thread: it is decoded once to check it (a bad
 *     version, an oversize or a malformed message is dropped and counted, and so
 *     is one whose sender name is not the CN of the certificate it came with: a
 *     node speaks only for itself), then fed to the core, and whatever the core
 *     answers (an ack) is sent at once;
 *   - the driver thread sleeps until the core's next deadline, ticks it, sends
 *     what it produced and calls the handler for each event, outside the lock.
 * The handler therefore runs on the driver thread, one event at a time, and must
 * not block for long (probes wait for it): the agent's handler only tells the
 * replicator, which never blocks.
 *
 * Failed is not left: a member declared dead may come back (ch06 must not remove
 * a Raft voter on a transient failure), so the handler hears them apart. */
#ifndef PLOG_DISCOVERY_DISCOVERY_H
#define PLOG_DISCOVERY_DISCOVERY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "internal/auth/authorizer.h"
#include "internal/discovery/membership.h"
#include "internal/discovery/transport.h"

typedef struct plog_discovery plog_discovery;

/* plog_discovery_handler_fn hears one event (borrowed for the call). Runs on the
 * driver thread, never with the core's lock held. */
typedef void (*plog_discovery_handler_fn)(void *arg, const plog_membership_event *ev);

typedef struct plog_discovery_config {
    const char *name;            /* node name: must be the CN of cert_file */
    const char *bind_addr;       /* gossip address "HOST:PORT"; others reach us there */
    const plog_gossip_tag *tags; /* e.g. {"rpc_addr", "127.0.0.1:8400"} (copied) */
    size_t ntags;
    const char *const *start_join_addrs; /* "HOST:PORT" of any members; may be empty */
    size_t njoin;
    const char *cert_file, *key_file, *ca_file; /* the node's peer TLS files */
    const plog_auth *acl; /* who may gossip (action "gossip"); borrowed; NULL: any node of the CA */
    bool fast;            /* timing: the loopback/test profile instead of the LAN one */
    uint64_t seed;        /* 0: from the clock and pid */
    plog_discovery_handler_fn handler; /* may be NULL */
    plog_transport_refused_fn refused; /* a peer refused here (transport.h); may be NULL */
    void *arg;                         /* of handler and refused */
} plog_discovery_config;

/* plog_discovery_open listens, starts the driver and (when start_join_addrs is not
 * empty) starts joining; it does not wait for the join. On PLOG_OK *dp is the
 * caller's. On failure err says why. PLOG_EINVAL, PLOG_EIO, PLOG_ETLS, PLOG_ENOMEM. */
int plog_discovery_open(const plog_discovery_config *cfg, plog_discovery **dp, char *err, size_t errsize);

/* plog_discovery_members returns a snapshot of every member known (self included)
 * in *out (malloc'd, the caller frees it) and their number in *n. PLOG_ENOMEM. */
int plog_discovery_members(plog_discovery *d, plog_membership_member **out, size_t *n);

/* plog_discovery_name: this node's name (borrowed until close). */
const char *plog_discovery_name(const plog_discovery *d);

/* Counters: the core's, the transport's, and the messages the driver dropped. */
typedef struct plog_discovery_stats {
    plog_membership_stats core;
    plog_transport_stats transport;
    uint64_t bad_version, bad_size, bad_format, spoofed; /* dropped before the core */
    size_t alive, suspect, dead, left;                   /* members by status, self included */
} plog_discovery_stats;
void plog_discovery_stats_get(plog_discovery *d, plog_discovery_stats *out);

/* plog_discovery_tls_failure: the address and reason of the most recent outgoing
 * connection that failed at TLS (plog_transport_tls_failure); false when none. */
bool plog_discovery_tls_failure(plog_discovery *d, char *addr, size_t asize, char *why, size_t wsize);

/* plog_discovery_leave announces a graceful leave and waits a little (a few
 * gossip intervals, at most ~250 ms) for it to go out. Events stop. Idempotent. */
void plog_discovery_leave(plog_discovery *d);

/* plog_discovery_close stops the driver and the transport and frees d without
 * announcing anything (call plog_discovery_leave first for a graceful exit).
 * NULL does nothing. */
void plog_discovery_close(plog_discovery *d);

#endif
