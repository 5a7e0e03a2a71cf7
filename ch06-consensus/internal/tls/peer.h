/* peer.h - who sent this request? The verified TLS identity of an nng pipe.
 *
 * The server authorizes every request by the subject CN of the client's verified
 * certificate (the book's ACL subject). nng 1.5.2 cannot tell: a pipe exposes only
 * NNG_OPT_TLS_VERIFIED, a bool (the CN option came in nng 1.6). The hand-off:
 *
 *  1. The engine (engine.c), when a handshake completes, records the peer's subject
 *     CN (exactly one, valid UTF-8 without NUL), certificate fingerprint and protocol
 *     version in its per-connection state.
 *  2. nng runs the socket's NNG_PIPE_EV_ADD_PRE callback after the handshake and the
 *     SP header exchange, before the pipe can deliver a message (the protocol starts
 *     receiving only after the callback returns). Ours, plog_tls_peer_on_event, empties a
 *     thread-local slot, gets NNG_OPT_TLS_VERIFIED from the pipe - whose getter calls
 *     the engine's verified() synchronously on this thread, and verified() fills the
 *     slot with that connection's identity - and, when the answer is true and the
 *     slot was filled, stores pipe id -> identity in a map under a mutex.
 *  3. At NNG_PIPE_EV_REM_POST the entry goes away. nng runs REM_POST for every pipe
 *     that ran ADD_PRE.
 *  4. Per request, plog_tls_peer_identity(msg) looks up nng_pipe_id(nng_msg_get_pipe(msg)).
 *     A miss (plain tcp://, no certificate, a CN we would not trust, a pipe already
 *     gone) is "no identity", which the server treats as a denial.
 *
 * Why per pipe: a pipe is one TLS connection, so its identity cannot change, and a
 * map lookup per request costs ~100 ns where asking the engine per message cost a
 * quarter of the TLS throughput. Why it is sound: pipe ids are unique in the process
 * while the pipe exists; the slot is written and read on one thread with nothing in
 * between but the synchronous getter. What it leans on: that getter being
 * synchronous (true in nng 1.5.2, not promised by its API); peer_test.c would fail
 * if it changed, because no identity would ever arrive.
 *
 * nng keeps one pipe callback per event per socket. If the server needs its own
 * ADD_PRE or REM_POST callback (connection metrics), it calls plog_tls_peer_on_event from
 * it instead of plog_tls_peer_track. The map is process-wide and thread-safe. */
#ifndef PLOG_TLS_PEER_H
#define PLOG_TLS_PEER_H

#include <stddef.h>

#include <nng/nng.h>

#include "internal/tls/engine.h"

/* plog_tls_peer_track registers plog_tls_peer_on_event for NNG_PIPE_EV_ADD_PRE and
 * NNG_PIPE_EV_REM_POST on sock, replacing any callbacks sock had for those two
 * events. Call it before the socket listens or dials. PLOG_OK, or PLOG_EINVAL when
 * nng refuses (closed socket). */
int plog_tls_peer_track(nng_socket sock);

/* plog_tls_peer_on_event is the pipe callback itself (nng_pipe_cb; arg unused): ADD_PRE
 * records the pipe's verified identity, REM_POST forgets it, other events do nothing.
 * Memory exhaustion at ADD_PRE leaves the pipe without an identity (denied, never
 * misattributed). */
void plog_tls_peer_on_event(nng_pipe pipe, nng_pipe_ev ev, void *arg);

/* plog_tls_peer_lookup copies the identity of pipe into *out. PLOG_OK, or PLOG_EPERM when
 * the pipe has no verified identity. */
int plog_tls_peer_lookup(nng_pipe pipe, plog_tls_peer *out);

/* plog_tls_peer_identity copies the CN of the peer that sent msg (msg is borrowed) into
 * cn (size bytes). PLOG_OK; PLOG_EPERM when the sender has no verified identity;
 * PLOG_EINVAL when the CN does not fit in size (PLOG_TLS_CN_SIZE always does). */
int plog_tls_peer_identity(const nng_msg *msg, char *cn, size_t size);

/* plog_tls_peer_count returns how many pipes currently have an identity recorded. */
size_t plog_tls_peer_count(void);

#endif
