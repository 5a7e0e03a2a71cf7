/* agent.h - one node of the cluster: the log, its mTLS RPC server, membership and
 * the replicator, wired together (Go: internal/agent/agent.go).
 *
 * plog_agent_open starts them in the book's order: the log (in DATA_DIR/log), the
 * RPC server on tls+tcp://BIND_HOST:RPC_PORT, then membership on BIND_ADDR with
 * the tag rpc_addr=BIND_HOST:RPC_PORT, whose join/leave/failed events drive the
 * replicator (created just before membership, so that no event finds it
 * missing; it starts copying only on a join). plog_agent_shutdown undoes it in
 * reverse: a graceful leave, then the replicator, the server, the log.
 *
 * Two TLS identities, as the book's ServerTLSConfig and PeerTLSConfig: the
 * server's certificate for the RPC server, and the node's peer certificate
 * (CN = node name) for everything the node does as a client of the others:
 * gossip both ways, and replication's ConsumeStream calls.
 *
 * A data directory remembers the node name that created it (DATA_DIR/node-name):
 * the replicator's positions are origin offsets, so a node's name and its log
 * belong together, and opening a directory under another name is refused. It
 * also keeps the members the node has seen (DATA_DIR/members, rejoin.h), joined
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
#include "internal/log/replicator.h"
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
    /* failed(failed_arg, why): the node must stop for good: its name was found
     * taken when it joined (another node of that name is alive; membership.h,
     * NAME_TAKEN). Called on the membership thread; the program should
     * plog_agent_kill the agent (without leaving: a leave in this name would be
     * taken for the other node's) and exit. NULL: nobody is told. */
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

/* plog_agent_alone says whether this node, a few seconds after it started, has
 * found nobody through the join addresses it had (given, or remembered from an
 * earlier run), with a hint for the operator in hint (size bytes). A first node,
 * started with nothing to join, is not alone. */
bool plog_agent_alone(plog_agent *a, char *hint, size_t size);

/* plog_agent_rpc_addr: the RPC server's URL, e.g. "tls+tcp://127.0.0.1:8400". */
const char *plog_agent_rpc_addr(const plog_agent *a);

/* Accessors for tests and the program: borrowed until shutdown. */
plog_log *plog_agent_log(plog_agent *a);
plog_discovery *plog_agent_discovery(plog_agent *a);
plog_replicator *plog_agent_replicator(plog_agent *a);
const plog_auth *plog_agent_acl(plog_agent *a);

/* The actions a node asks its ACL about: produce and consume (the RPC server) and
 * gossip (the membership transport). */
#define PLOG_AGENT_ACL_ACTIONS 3
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
 * server's, on connections already open too, and the membership transport's
 * "gossip" checks, which share the one ACL. The new certificate and CA serve the
 * connections accepted from then on; open ones keep theirs. The peer certificate
 * files are not reloaded (the transport's listener keeps the one it started
 * with): replacing them takes a restart. From one thread at a time, not during
 * plog_agent_shutdown. */
void plog_agent_reload(plog_agent *a, plog_agent_reload_result *out);

/* plog_agent_shutdown leaves the cluster gracefully, stops replication and the
 * server, closes the log and frees a. Returns the log's close result. NULL: PLOG_OK. */
int plog_agent_shutdown(plog_agent *a);

/* plog_agent_kill stops everything without leaving (as if the process died, but
 * the log is closed cleanly), for tests of failure detection. */
void plog_agent_kill(plog_agent *a);

#endif
