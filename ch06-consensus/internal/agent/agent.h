/* agent.h - one node of the cluster: the replicated log (Raft), its mTLS RPC server
 * and membership, wired together (Go: internal/agent/agent.go).
 *
 * plog_agent_open opens them in the book's order: the distributed log (Raft state
 * in DATA_DIR/raft, the record log in DATA_DIR/records, Raft messages on
 * BIND_HOST:RAFT_PORT, outgoing Raft connections from BIND_HOST when it is an IP
 * address), the RPC server on tls+tcp://BIND_HOST:RPC_PORT, whose produces go
 * through Raft, the metrics endpoint, then membership on BIND_ADDR with the tags
 * rpc_addr and raft_addr (the Raft advertise address, by default
 * BIND_HOST:RAFT_PORT), whose join and leave events drive Raft's configuration (a
 * failed member stays a voter). Raft itself starts last, once the ACL, the
 * certificates and every port are in place: a start that fails leaves Raft's
 * term, vote and log as they were (it never bootstraps or campaigns).
 * plog_agent_shutdown undoes it in reverse: a graceful leave, a leader's handover,
 * the server, the logs.
 *
 * Two TLS identities, as the book's ServerTLSConfig and PeerTLSConfig: the
 * server's certificate for the RPC server, and the node's peer certificate
 * (CN = node name) for everything the node does as a client of the others:
 * gossip and Raft messages, both ways.
 *
 * A data directory remembers the node name that created it (DATA_DIR/node-name):
 * a node's Raft id is its name's, so a node's name and its log belong together, and opening a directory under
 * another name is refused. It also keeps the members the node has seen (DATA_DIR/members, rejoin.h), joined
 * at the next start besides start_join_addrs. */
#ifndef PLOG_AGENT_H
#define PLOG_AGENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "internal/auth/authorizer.h"
#include "internal/discovery/discovery.h"
#include "internal/log/config.h"
#include "internal/log/log.h"
#include "internal/distributed/distributed.h"
#include "internal/logger/logger.h"

typedef struct plog_agent plog_agent;

typedef struct plog_agent_config {
    const char *data_dir;                /* required */
    const char *node_name;               /* required; the CN of the peer certificate */
    const char *bind_addr;               /* gossip "HOST:PORT"; the RPC server listens on HOST too */
    uint16_t rpc_port;                   /* required */
    const char *const *start_join_addrs; /* gossip addresses of members; may be empty */
    size_t njoin;
    const char *server_tls_cert_file, *server_tls_key_file, *server_tls_ca_file;
    const char *peer_tls_cert_file, *peer_tls_key_file, *peer_tls_ca_file;
    const char *acl_model_file;  /* optional */
    const char *acl_policy_file; /* required: produce/consume for clients, gossip and
                                  * consume for the nodes */
    bool fast;                   /* membership timing: fast (loopback) profile */
    plog_log_config log;         /* segment sizes, sync policy */
    const char *metrics_addr;    /* NULL: no metrics endpoint */
    plog_logger *logger;         /* borrowed; NULL: the agent logs nothing */
    bool log_requests;           /* one line per RPC on logger (internal/metrics/reqlog.h) */
    /* The RPC server's limits (plog_server_config's; 0: the server's default). */
    unsigned max_parked_per_client;
    size_t max_inflight_bytes;
    unsigned max_connections;
    uint32_t handshake_timeout_ms;
    /* ch06: Raft. */
    bool bootstrap;                  /* start a new cluster with this node as its only voter */
    uint16_t raft_port;              /* Raft listens on the bind host at this port; 0: rpc_port + 2 */
    const char *raft_advertise_addr; /* "HOST:PORT" the other nodes dial for this node's
                                      * Raft (gossiped as raft_addr; a proxy or NAT in
                                      * front of it); NULL: the bind host and raft port */
    uint32_t election_timeout_ms;    /* 0: 150 */
    uint32_t snapshot_entries;       /* snapshot every N applied entries; 0: never */
    /* failed(failed_arg, why): the node stopped for good, because a write to
     * Raft's log or to the record log failed (plog_distributed_config.failed),
     * or because its name was found taken when it joined (another node of that
     * name is alive; membership.h, NAME_TAKEN): it no longer leads, votes or
     * applies. Called on an agent thread, once per cause; the program should
     * plog_agent_stop the agent (without leaving: the others keep it as a voter,
     * and a leave in a taken name would be taken for the other node's) and exit,
     * so that a restart recovers from disk. NULL: nobody is told
     * (proglog_log_failed says 1 either way). */
    void (*failed)(void *arg, const char *why);
    void *failed_arg;
} plog_agent_config;

/* plog_agent_is_valid_name says whether name can be a node's name: 1..64
 * printable ASCII characters without spaces, the names gossip carries
 * (internal/discovery/gossip.h). plog_agent_open refuses any other before it
 * touches the data directory. */
bool plog_agent_is_valid_name(const char *name);

/* plog_agent_open starts a node. Strings of cfg are copied. On PLOG_OK *ap is the
 * caller's until plog_agent_shutdown. On failure err says which part failed and
 * why, and everything started is stopped again. */
int plog_agent_open(const plog_agent_config *cfg, plog_agent **ap, char *err, size_t errsize);

/* plog_agent_reaper_stuck says whether nng's reaper has been stuck for over 10 s (a
 * close waiting on it, internal/rpc/closer.h): nng 1.5.2 never frees what waits
 * behind it, the connections closed from then on included, so the node runs out of
 * descriptors or --max-connections and must be restarted. The gauge
 * proglog_nng_reaper_stuck says the same. */
bool plog_agent_reaper_stuck(const plog_agent *a);

/* plog_agent_alone says whether this node, a few seconds after it started, knows
 * no Raft leader, with the likely reason for the operator in hint (size bytes):
 * nothing to join and no --bootstrap, join addresses (given, or remembered from
 * an earlier run) that nobody answered at, or too few voters running. */
bool plog_agent_alone(plog_agent *a, char *hint, size_t size);

/* plog_agent_rpc_addr: the RPC server's URL, e.g. "tls+tcp://127.0.0.1:8400". */
const char *plog_agent_rpc_addr(const plog_agent *a);

/* Accessors for tests and the program: borrowed until shutdown. */
plog_log *plog_agent_log(plog_agent *a);
plog_discovery *plog_agent_discovery(plog_agent *a);
plog_distributed *plog_agent_distributed(plog_agent *a);
const plog_auth *plog_agent_acl(plog_agent *a);

/* The actions a node asks its ACL about: produce, consume and admin (the RPC
 * server) and gossip (the membership transport). */
#define PLOG_AGENT_ACL_ACTIONS 4
extern const char *const plog_agent_acl_actions[PLOG_AGENT_ACL_ACTIONS];

/* What plog_agent_reload did. Each part is all or nothing: PLOG_OK, or the old
 * state stays in force and *_err says which file and why. */
typedef struct plog_agent_reload_result {
    int acl;          /* the ACL policy (and model) */
    size_t acl_rules; /* rules in force after it */
    char acl_err[PLOG_AUTH_ERRMSG_SIZE];
    int tls; /* the RPC server's certificate, key and CA */
    char tls_err[PLOG_AUTH_ERRMSG_SIZE];
} plog_agent_reload_result;

/* plog_agent_reload reads the ACL files and the RPC server's TLS files again (on
 * SIGHUP). The new rules decide every check that starts after it: the RPC
 * server's, on connections already open too, and the "gossip" checks of the
 * membership and Raft transports, which share the one ACL. The new certificate
 * and CA serve the connections accepted from then on; open ones keep theirs. The
 * peer certificate files are not reloaded (the transports' listeners keep the one
 * they started with): replacing them takes a restart. From one thread at a time,
 * not during plog_agent_shutdown. */
void plog_agent_reload(plog_agent *a, plog_agent_reload_result *out);

/* plog_agent_shutdown leaves the cluster for good (the book's Shutdown): the
 * others hear a graceful leave and the leader removes the node from Raft's
 * configuration. It stops replication and the server, closes the log and frees a.
 * Returns the log's close result. NULL: PLOG_OK. */
int plog_agent_shutdown(plog_agent *a);

/* plog_agent_stop stops everything without leaving: the others see the member
 * fail, and a voter stays one, so the quorum does not shrink and a restart rejoins
 * (a leader still hands over first). What proglog does on SIGTERM unless told to
 * leave, what a node that stopped for good does (plog_agent_config.failed), and
 * what tests of failure detection use. Returns the log's close result; NULL:
 * PLOG_OK. */
int plog_agent_stop(plog_agent *a);

#endif
