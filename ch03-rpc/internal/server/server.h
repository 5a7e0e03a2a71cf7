/* server.h - the log as an RPC service over nng REQ/REP (Go: server.go).
 *
 * One REP socket listens; many nng contexts (workers) each receive a request,
 * answer it and receive again, driven by aio callbacks on nng's threads, so that a
 * slow request (a long poll, a produce waiting for its group commit) holds only
 * its own context. The wire protocol is in internal/rpc/envelope.h and api/v1/log.proto. */
#ifndef PLOG_SERVER_H
#define PLOG_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include "internal/log/config.h"
#include "internal/log/log.h"
#include "internal/logger/logger.h"

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
} plog_server_config;

/* plog_server_open serves log (borrowed: it must outlive the server) on
 * cfg->addr. On PLOG_OK *sp is the caller's until plog_server_close(). On failure
 * errmsg (when not NULL) says why. PLOG_EINVAL (bad address; max_msg_bytes over
 * 1 GiB; max_inflight_bytes below 2 * max_msg_bytes), PLOG_EIO (address in
 * use...), PLOG_ENOMEM. */
int plog_server_open(plog_log *log, const plog_server_config *cfg, plog_server **sp, char *errmsg,
                     size_t size);

/* plog_server_config_check checks the sizes of cfg as plog_server_open does
 * (max_msg_bytes at most 1 GiB, max_inflight_bytes at least twice it), so that a
 * program can refuse them before it opens anything: PLOG_OK, or PLOG_EINVAL with
 * errmsg saying why. */
int plog_server_config_check(const plog_server_config *cfg, char *errmsg, size_t size);

/* plog_server_close answers new requests UNAVAILABLE, answers the parked long
 * polls with what they have, lets produces waiting for their commit finish (up to
 * a few seconds), then closes the socket and frees s. The log stays open. NULL
 * does nothing. */
void plog_server_close(plog_server *s);

#endif
