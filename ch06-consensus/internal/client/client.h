/* client.h - the client library of the log service (Go: the generated
 * api.LogClient plus what gRPC gives it: dialing, reconnects, deadlines, streams).
 *
 * A plog_client is one nng REQ socket dialed to a server, safe to use from many
 * threads at once: each call takes its own context, so calls never wait for each
 * other. The dialer reconnects in the background (backoff up to
 * reconnect_max_ms). REQ's resend timer is off by default: a request whose
 * connection breaks fails with UNAVAILABLE ("may or may not have been applied")
 * instead of being sent again behind the caller's back. Every produce carries
 * (client_id, seq), and the server remembers recent ones, so turning resends on
 * (resend_ms) cannot append a record twice.
 *
 * Every RPC function returns a plog_rpc_code code (PLOG_STATUS_OK is 0) and, when st
 * is not NULL, fills it with the code and the server's or the library's message.
 * Streams are in stream.h. */
#ifndef PLOG_CLIENT_H
#define PLOG_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <nng/nng.h>
#include <nng/supplemental/tls/tls.h>
#include <protobuf-c/protobuf-c.h>

#include "api/v1/log.pb-c.h"
#include "internal/rpc/envelope.h"
#include "internal/rpc/status.h"

typedef struct plog_client plog_client;

/* The longest timeout_ms: nng's timers take milliseconds in an int32. */
#define PLOG_CLIENT_MAX_TIMEOUT_MS INT32_MAX

typedef struct plog_client_config {
    uint32_t timeout_ms;       /* deadline of each call, at most PLOG_CLIENT_MAX_TIMEOUT_MS; 0: 10000 */
    int32_t resend_ms;         /* NNG_OPT_REQ_RESENDTIME; 0: never resend */
    size_t max_msg_bytes;      /* 0: 4 MiB; larger requests fail locally with
                                * RESOURCE_EXHAUSTED; replies may be twice that */
    uint32_t reconnect_max_ms; /* 0: 1000 */
    bool wait_for_server;      /* open succeeds even when nothing listens yet (a TLS
                                * refusal is then retried silently: nng reports
                                * nothing about background dials) */
    nng_tls_config *tls;       /* ch04: required for tls+tcp:// (internal/tls/
                                * config.h plog_tls_config_client); the client
                                * takes its own reference: the caller may free its */
} plog_client_config;

/* plog_client_open dials addr (e.g. "tls+tcp://127.0.0.1:8400"); cfg may be NULL
 * for the defaults (then only tcp:// works). Unless cfg->wait_for_server, the first
 * connection must succeed now, within timeout_ms: UNAVAILABLE when the server
 * cannot be reached, DEADLINE_EXCEEDED when it does not complete the handshake in
 * time (a paused server accepts connections and says nothing), UNAUTHENTICATED when the TLS handshake fails
 * on a certificate (the message says why: "certificate verify failed: IP address mismatch (server
 * certificate)", "peer refused our certificate: sslv3 alert certificate expired"), INVALID_ARGUMENT for a bad
 * address or a tls+tcp:// address without cfg->tls. On OK *cp is the caller's until plog_client_close(). */
int plog_client_open(const char *addr, const plog_client_config *cfg, plog_client **cp, plog_rpc_status *st);

/* Over TLS (ch05) each reply's sender is known while its connection lasts:
 * plog_tls_peer_identity(reply, ...) (internal/tls/peer.h) gives the verified CN of
 * the server's certificate. */

/* plog_client_close gives c up: its socket is closed and c freed on the
 * process's closer thread (internal/rpc/closer.h), never on the caller's, since
 * in nng 1.5.2 that close can block for good after a lost TLS connection. The
 * caller may free everything else at once (the client holds its own TLS
 * reference and calls back into nothing of the caller's); c is gone on return.
 * No call may still be running on c, and the streams opened on it must be
 * closed first. A process that wants the connection gone before it goes on (or
 * exits) waits with plog_rpc_closer_wait(). NULL does nothing. */
void plog_client_close(plog_client *c);

/* plog_client_produce appends one record (Produce) and sets *off to its offset.
 * value is borrowed. Returns once the server has committed it. Calls from many
 * threads are coalesced: while two produce requests of c are in flight, more
 * produces (values up to 4 KiB) queue and go as one ProduceStream request (at
 * most 16 KiB of values and half of max_msg_bytes) when one of those ends; each
 * call still gets its own record's offset, and a request that fails fails every
 * produce it carried, with the same status, except RESOURCE_EXHAUSTED (the
 * server's message limit or in-flight budget, before anything is appended):
 * then each produce is sent again alone. A produce still queued at its
 * deadline was never sent: DEADLINE_EXCEEDED. */
int plog_client_produce(plog_client *c, const void *value, size_t len, uint64_t *off, plog_rpc_status *st);

/* plog_client_produce_batch appends n records in one request (ProduceStream) and
 * sets *first to the offset of values[0]; the others follow contiguously. */
int plog_client_produce_batch(plog_client *c, const void *const *values, const size_t *lens, size_t n,
                              uint64_t *first, plog_rpc_status *st);

/* plog_client_consume reads the record at off (Consume). On OK *rec is the
 * caller's: free it with log__v1__record__free_unpacked(*rec, NULL). OUT_OF_RANGE
 * when off holds no record. */
int plog_client_consume(plog_client *c, uint64_t off, Log__V1__Record **rec, plog_rpc_status *st);

/* plog_client_read is plog_client_consume within timeout_ms (0: the client's);
 * with linearizable (ch06) the server reads through Raft's ReadIndex: a leader
 * confirms it still leads and serves off once it has applied that far, a
 * follower answers FAILED_PRECONDITION "not leader; leader at HOST:PORT" (or
 * "...; no leader known"). */
int plog_client_read(plog_client *c, uint64_t off, bool linearizable, uint32_t timeout_ms,
                     Log__V1__Record **rec, plog_rpc_status *st);

/* plog_client_call is one unary call: method (a wire name, envelope.h), req (NULL:
 * empty), seq (0: none; else the produce's deduplication number, see
 * plog_client_next_seq), timeout_ms (0: the client's). On OK *reply holds the
 * reply message (the caller frees it with nng_msg_free) and *rp its decoded
 * envelope, borrowing *reply; on an error status from the server *reply is NULL
 * and st holds the server's message. */
int plog_client_call(plog_client *c, const char *method, const ProtobufCMessage *req, uint64_t seq,
                     uint32_t timeout_ms, nng_msg **reply, plog_rpc_reply *rp, plog_rpc_status *st);

/* plog_client_next_seq returns a fresh sequence number for a produce (never 0). */
uint64_t plog_client_next_seq(plog_client *c);

/* plog_client_id returns the random id c's produces carry for deduplication. */
uint64_t plog_client_id(const plog_client *c);

/* plog_client_set_id makes c's produces carry id (ch06: a router's clients to
 * every server share one id, so a retry on a new leader is recognised). Call it
 * before c is used by other threads. */
void plog_client_set_id(plog_client *c, uint64_t id);

/* plog_client_config_of returns c's effective configuration (defaults filled). */
const plog_client_config *plog_client_config_of(const plog_client *c);

/* plog_client_connected: c has a live connection now (a request sent without one
 * waits for the dialer to reconnect). */
bool plog_client_connected(const plog_client *c);

/* plog_client_socket returns c's REQ socket, for the streams of stream.c. */
nng_socket plog_client_socket(const plog_client *c);

/* plog_client_finish_call turns the outcome of a request/reply on one context
 * (nng result rv and, when 0, the reply message) into a status: it maps nng
 * errors (a timeout with no connection is UNAVAILABLE), decodes the envelope into
 * *rp and returns the server's code. On OK the message stays in *reply; on any
 * other code it is freed and *reply is NULL. For stream.c's producer: a lost
 * connection says the produce may or may not have been applied. */
int plog_client_finish_call(plog_client *c, int rv, nng_msg **reply, plog_rpc_reply *rp, plog_rpc_status *st);

#endif
