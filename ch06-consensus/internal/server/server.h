/* server.h - the log as an RPC service over nng REQ/REP (Go: server.go).
 *
 * One REP socket listens; many nng contexts (workers) each receive a request,
 * answer it and receive again, driven by aio callbacks on nng's threads, so that a
 * slow request (a long poll, a produce waiting for its group commit) holds only
 * its own context. The wire protocol is in internal/rpc/envelope.h and api/v1/log.proto.
 *
 * Security (ch04, Go: the grpc.Creds and the authenticate/authorize middleware):
 * with a TLS config the server listens on tls+tcp:// and every client must present a
 * certificate from the CA (internal/tls). With an ACL, every request is authorized
 * before its handler runs: the subject is the CN of the client's verified
 * certificate, found through the connection the request came on
 * (internal/tls/peer.h), the object "*", the action "produce" for Produce and
 * ProduceStream, "consume" for Consume and ConsumeStream. A connection without a
 * verified identity gets UNAUTHENTICATED; a subject the policy does not allow gets
 * PERMISSION_DENIED "nobody not permitted to produce to *".
 *
 * Observability (ch04, book ch6): with a metrics registry every finished request is
 * counted and timed (internal/metrics/metrics.h) and open connections are a gauge;
 * with log_requests every finished request is one key=value line (method, status,
 * latency, peer CN, bytes). */
#ifndef PLOG_SERVER_H
#define PLOG_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <nng/nng.h>
#include <nng/supplemental/tls/tls.h>

#include "internal/auth/authorizer.h"
#include "internal/log/config.h"
#include "internal/log/log.h"
#include "internal/logger/logger.h"
#include "internal/metrics/metrics.h"

typedef struct plog_server plog_server;

typedef struct plog_server_config {
    const char *addr;               /* nng URL to listen on, e.g. "tcp://127.0.0.1:8400" */
    plog_sync_policy sync;          /* the log's policy: under INTERVAL and ALWAYS a committer
                                     * thread waits for fsyncs, never nng's threads */
    size_t max_msg_bytes;           /* 0: 4 MiB. A larger request is answered
                                     * RESOURCE_EXHAUSTED; beyond twice that, nng drops the
                                     * connection (NNG_OPT_RECVMAXSZ) without reading it */
    unsigned workers;               /* contexts; 0: 256 */
    uint32_t max_wait_ms;           /* upper bound of a ConsumeStream long poll; 0: 30000 */
    unsigned max_parked_per_client; /* parked ConsumeStream polls one client (its
                                     * verified identity, else its connection) may hold;
                                     * more are RESOURCE_EXHAUSTED. 0: 32 */
    size_t max_inflight_bytes;      /* budget for decoded requests in flight (a produce
                                     * is charged its estimated decoded size); beyond it
                                     * RESOURCE_EXHAUSTED. 0: 256 MiB, or twice a
                                     * larger max_msg_bytes; at least 2 * max_msg_bytes */
    uint32_t reply_timeout_ms;      /* a reply that waits this long for its connection
                                     * (its client reads no more, or too slowly for
                                     * what it asked) is dropped and the connection
                                     * closed; 0: 30000 */
    plog_logger *logger;            /* borrowed, outlives the server: where it logs (NULL: nowhere) */
    /* ch04. All borrowed: each must outlive the server. */
    nng_tls_config *tls;           /* required for a tls+tcp:// addr (internal/tls/config.h);
                                    * NULL with tcp:// serves plain text, unauthenticated */
    const plog_auth *acl;          /* every request is authorized against it; needs tls.
                                    * NULL is refused unless insecure is set */
    bool insecure;                 /* serve without an ACL: every request allowed. The
                                    * library fails closed: only this flag, never a NULL
                                    * acl alone, turns authorization off */
    unsigned max_connections;      /* TLS: connections at once, handshaking ones
                                    * included (plog_tls_config_limits); 0: 4096 */
    uint32_t handshake_timeout_ms; /* TLS: a handshake must finish within it; 0: 5000 */
    plog_metrics *metrics;         /* NULL: no metrics; from plog_server_metrics_new */
    bool log_requests;             /* one info line per finished request on logger
                                    * (internal/metrics/reqlog.h) */
    /* ch05: GetMembers. members(members_arg, &body, &len) encodes a
     * GetMembersResponse into a malloc'd body (the server frees it); NULL:
     * GetMembers is UNIMPLEMENTED. Runs on an nng thread; must be thread-safe. */
    int (*members)(void *arg, uint8_t **body, size_t *len);
    void *members_arg;
    /* ch06: GetServers, encoded by servers(members_arg, ...) like GetMembers.
     * With propose, Produce and ProduceStream go through Raft: propose(
     * members_arg, client_id, seq, values, lens, n, done, ctx) copies the values
     * and later calls done(ctx, rv, first, count) exactly once (any thread), or
     * returns an error and never calls it; on PLOG_ENOTLEADER the server answers
     * FAILED_PRECONDITION "not leader; leader at ADDR" with leader(members_arg,
     * buf, size)'s address. NULL: the server appends to the log itself. */
    int (*servers)(void *arg, uint8_t **body, size_t *len);
    int (*propose)(void *arg, uint64_t client_id, uint64_t seq, const uint8_t *const *values,
                   const size_t *lens, size_t n,
                   void (*done)(void *ctx, int rv, uint64_t first, uint64_t count), void *ctx);
    bool (*leader)(void *arg, char *buf, size_t size);
    /* ch06: a Consume with linearizable waits for read_index(members_arg, done,
     * ctx) to call done(ctx, rv, next) once (any thread): PLOG_OK when every
     * record acknowledged before the request is below next and readable here.
     * NULL: a linearizable Consume is served as any other (one server). */
    int (*read_index)(void *arg, void (*done)(void *ctx, int rv, uint64_t next), void *ctx);
    /* ch06: RemoveServer, for the ACL's PLOG_SERVER_ADMIN_ACTION only:
     * remove_server(members_arg, name, why, size) returns PLOG_OK once the
     * removal is under way; PLOG_ENOTLEADER, answered "not leader; leader at
     * ADDR" as a produce is; or, with why set, PLOG_ERANGE (no such server:
     * NOT_FOUND), PLOG_EINVAL (refused: FAILED_PRECONDITION) or another error.
     * NULL: RemoveServer is UNIMPLEMENTED. Runs on an nng thread. */
    int (*remove_server)(void *arg, const char *name, char *why, size_t size);
} plog_server_config;

/* The ACL action RemoveServer needs (ch06; not in the book's policy). */
#define PLOG_SERVER_ADMIN_ACTION "admin"

/* plog_server_open serves log (borrowed: it must outlive the server) on
 * cfg->addr. On PLOG_OK *sp is the caller's until plog_server_close(). On failure
 * errmsg (when not NULL) says why. PLOG_EINVAL (bad address; a tls+tcp:// address
 * without cfg->tls, or cfg->tls or cfg->acl with a plain address; no acl without
 * insecure; max_msg_bytes over 1 GiB; max_inflight_bytes below 2 * max_msg_bytes), PLOG_EIO
 * (address in use...), PLOG_ENOMEM. */
int plog_server_open(plog_log *log, const plog_server_config *cfg, plog_server **sp, char *errmsg,
                     size_t size);

/* plog_server_metrics_new makes a metrics registry whose methods are the server's
 * ("Produce", "Consume", "ConsumeStream", "ProduceStream"), for cfg->metrics. On
 * PLOG_OK *mp is the caller's: plog_metrics_free() after plog_server_close(). */
int plog_server_metrics_new(plog_metrics **mp);

/* plog_server_publish makes the records below next visible to consumers and wakes
 * the long polls waiting for them (ch05): the replicator appends to the log
 * directly and calls it once plog_log_commit covered them. Thread-safe. */
void plog_server_publish(plog_server *s, uint64_t next);

/* plog_server_config_check checks the sizes of cfg as plog_server_open does
 * (max_msg_bytes at most 1 GiB, max_inflight_bytes at least twice it), so that a
 * program can refuse them before it opens anything: PLOG_OK, or PLOG_EINVAL with
 * errmsg saying why. */
int plog_server_config_check(const plog_server_config *cfg, char *errmsg, size_t size);

/* plog_server_close answers new requests UNAVAILABLE, answers the parked long
 * polls with what they have, lets produces waiting for their commit finish (up to
 * a few seconds), then closes the socket and frees s. The log stays open. NULL
 * does nothing. It returns within seconds even when nng cannot close the socket
 * (internal/rpc/closer.h): then it logs an error and leaves the socket and s to
 * the closer thread, which uses nothing the server borrowed (the log, cfg's
 * pointers), so the caller may free those as usual. */
void plog_server_close(plog_server *s);

#endif
