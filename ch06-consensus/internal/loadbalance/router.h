/* router.h - client-side routing (Go: the book's chapter 9 resolver and picker
 * registered with gRPC): a client that knows one server's address finds every
 * server (GetServers), sends produces to the leader and spreads consumes over the
 * followers, and on "not leader", UNAVAILABLE or a deadline refreshes the list
 * and retries with backoff.
 *
 * Retries are idempotent: every produce gets one (client id, seq) before its
 * first attempt, and all the router's connections carry the same client id, so a
 * produce retried on a new leader after the old one committed it is answered with
 * the offsets of the first time, by the replicated state machine, not appended
 * twice.
 *
 * Thread safety: one thread at a time per router. */
#ifndef PLOG_LOADBALANCE_ROUTER_H
#define PLOG_LOADBALANCE_ROUTER_H

#include <stddef.h>
#include <stdint.h>

#include "api/v1/log.pb-c.h"
#include "internal/client/client.h"
#include "internal/loadbalance/picker.h"
#include "internal/rpc/status.h"

typedef struct plog_loadbalance_router plog_loadbalance_router;

/* plog_loadbalance_resolve asks c's server for GetServers (Go: the resolver's
 * ResolveNow) into v[0..*n), at most cap, waiting at most timeout_ms (0: the
 * client's timeout). Returns a status code. */
int plog_loadbalance_resolve(plog_client *c, plog_loadbalance_server *v, size_t cap, size_t *n,
                             uint32_t timeout_ms, plog_rpc_status *st);

/* plog_loadbalance_router_open resolves the servers through addr (a tls+tcp://
 * or tcp:// URL). cfg is copied (its tls config referenced; the server name each
 * connection checks is the host of that server's address). timeout_ms bounds each
 * routed call, retries included (0: the client's timeout). On OK *rp is the
 * caller's until plog_loadbalance_router_close. */
int plog_loadbalance_router_open(const char *addr, const plog_client_config *cfg, const char *cert_file,
                                 const char *key_file, const char *ca_file, plog_loadbalance_router **rp,
                                 plog_rpc_status *st);

/* plog_loadbalance_router_produce appends n records (one Produce for n == 1,
 * else one ProduceStream batch) on the leader; *first = offset of values[0].
 * A failure after an attempt that got no answer (connection lost, deadline) says
 * in st that the produce may or may not have been applied, whatever the last
 * attempt found: a new call is a new produce, which may append the values twice. */
int plog_loadbalance_router_produce(plog_loadbalance_router *r, const void *const *values, const size_t *lens,
                                    size_t n, uint64_t *first, plog_rpc_status *st);

/* plog_loadbalance_router_consume reads off from the next follower (Consume). */
int plog_loadbalance_router_consume(plog_loadbalance_router *r, uint64_t off, Log__V1__Record **rec,
                                    plog_rpc_status *st);

/* plog_loadbalance_router_read reads off linearizably (Consume with
 * linearizable set, Raft's ReadIndex) on the leader, retried as a produce is
 * while an election goes on or the leader is unreachable: the record, or
 * OUT_OF_RANGE, as of a moment after the call began. */
int plog_loadbalance_router_read(plog_loadbalance_router *r, uint64_t off, Log__V1__Record **rec,
                                 plog_rpc_status *st);

/* plog_loadbalance_router_servers: the servers as last resolved (borrowed). */
const plog_loadbalance_picker *plog_loadbalance_router_servers(const plog_loadbalance_router *r);

/* plog_loadbalance_router_retries: attempts beyond the first, since open. */
uint64_t plog_loadbalance_router_retries(const plog_loadbalance_router *r);

void plog_loadbalance_router_close(plog_loadbalance_router *r);

#endif
