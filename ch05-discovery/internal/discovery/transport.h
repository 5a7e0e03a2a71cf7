/* transport.h - the membership transport: one-way datagrams between nodes over nng
 * PUSH/PULL with mutual TLS and node certificates.
 *
 * SWIM speaks in one-way messages (a ping, an ack, a ping-req, a state exchange),
 * each of which may be lost; none waits for a reply on the same exchange. nng's
 * pipeline pattern fits that exactly: every node listens with one PULL socket on
 * its gossip address (tls+tcp://HOST:PORT) and sends with one PUSH socket per
 * destination, dialed in the background. REQ/REP would add a reply slot and a
 * resend timer we do not want; PAIR holds one peer per socket but needs two
 * directions we never use together; BUS/SURVEYOR broadcast, where SWIM picks its
 * targets. A lost message is what SWIM is built for, so sending never waits:
 * each PUSH socket buffers a few messages while its connection comes up
 * (NNG_OPT_SENDBUF) and a send into a full buffer is dropped and counted.
 *
 * Who may speak. Both directions present node certificates (CN = node name, issued
 * by common/certs/gencert --node NAME): the listener requires a client certificate
 * from the CA, and the dialer checks the listener's against the host it dialed.
 * Every received message is attributed to the verified CN of the connection it came
 * on (internal/tls/peer.h) and passed on only when the ACL allows that CN the
 * action "gossip" (PLOG_TRANSPORT_ACTION); a client certificate such as root or
 * nobody is not in the policy's gossip lines, so its messages are dropped and
 * counted. Messages larger than max_msg_bytes are dropped and counted; far larger
 * ones (beyond 4x) close the connection before they are read (NNG_OPT_RECVMAXSZ).
 *
 * Threads: receive callbacks run on nng's threads, one at a time (one receive is
 * outstanding). plog_transport_send may be called from any thread. */
#ifndef PLOG_DISCOVERY_TRANSPORT_H
#define PLOG_DISCOVERY_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "internal/auth/authorizer.h"

/* The ACL action a node certificate needs to send membership messages. */
#define PLOG_TRANSPORT_ACTION "gossip"

typedef struct plog_transport plog_transport;

/* plog_transport_recv_fn receives one authorized message: from is the sender's
 * verified CN, buf/len the payload; both borrowed for the call only. */
typedef void (*plog_transport_recv_fn)(void *arg, const char *from, const uint8_t *buf, size_t len);

/* plog_transport_refused_fn hears of a peer refused by this node's listener, with
 * its address ("ip:port") and why: a failed TLS handshake (the engine's failure
 * hook: at most 10 reports a second, engine.h) or, once per connection, a
 * message from a CN the ACL does not let gossip. Without it a refused node leaves
 * no trace here. Runs on an nng thread: be quick. */
typedef void (*plog_transport_refused_fn)(void *arg, const char *remote, const char *why);

typedef struct plog_transport_config {
    const char *bind_addr; /* "HOST:PORT" (or "tls+tcp://HOST:PORT") to listen on */
    const char *cert_file; /* this node's certificate (PEM), used both ways */
    const char *key_file;
    const char *ca_file;  /* the CA peers' certificates must chain to */
    const plog_auth *acl; /* borrowed; NULL: every verified CN may send */
    size_t max_msg_bytes; /* 0: 64 KiB */
    unsigned max_peers;   /* PUSH sockets kept; the least recently used goes; 0: 64 */
    unsigned sendbuf;     /* messages buffered per destination; 0: 64 */
    plog_transport_recv_fn recv;
    plog_transport_refused_fn refused; /* may be NULL */
    void *arg;                         /* of recv and refused */
} plog_transport_config;

/* Counters since open (monotonic). */
typedef struct plog_transport_stats {
    uint64_t sent;            /* handed to a PUSH socket */
    uint64_t send_dropped;    /* buffer full or no route: dropped */
    uint64_t received;        /* passed to recv */
    uint64_t unauthenticated; /* arrived on a connection without a verified CN */
    uint64_t denied;          /* from a CN the ACL does not allow to gossip */
    uint64_t oversize;        /* larger than max_msg_bytes */
    uint64_t tls_failures;    /* outgoing connections refused by a TLS check */
    uint64_t connected;       /* outgoing connections a send found up */
} plog_transport_stats;

/* plog_transport_open listens on cfg->bind_addr. The strings of cfg are copied;
 * acl, recv and arg are borrowed until plog_transport_close. On PLOG_OK *gp is the
 * caller's. On failure err says why: PLOG_EINVAL (bad address, missing file
 * name), PLOG_EIO (address in use), PLOG_ETLS (certificates), PLOG_ENOMEM. */
int plog_transport_open(const plog_transport_config *cfg, plog_transport **gp, char *err, size_t errsize);

/* plog_transport_send queues a copy of buf for addr ("HOST:PORT" or a tls+tcp:// URL), dialing it in the
 * background when this is the first message to it. Never blocks on the network.
 * PLOG_OK when queued. A message that cannot be queued (the destination's buffer
 * is full, its connection is gone and a fresh one may not be started yet, its
 * dialer could not be set up) is dropped, counted in send_dropped, and PLOG_EIO
 * returned; PLOG_EINVAL for a bad address. A destination gets at most one fresh
 * socket a second, and none while 128 given-up sockets of the process wait to be
 * closed (transport.c's top comment says why). */
int plog_transport_send(plog_transport *g, const char *addr, const void *buf, size_t len);

/* plog_transport_forget closes the PUSH socket to addr, if any (a member that left or
 * failed: stop redialing it; the next message dials afresh). It keeps the socket while
 * 128 given-up sockets of the process wait to be closed. */
void plog_transport_forget(plog_transport *g, const char *addr);

/* plog_transport_addr: the address it listens on (borrowed until close). */
const char *plog_transport_addr(const plog_transport *g);

void plog_transport_stats_get(plog_transport *g, plog_transport_stats *out);

/* plog_transport_tls_failure copies the address (addr, asize bytes) and the
 * engine's reason (why, wsize bytes) of the most recent outgoing connection that
 * failed at TLS: our certificate refused by the peer, or the peer's refused here.
 * False when none did. A node that finds nobody at its join addresses says why. */
bool plog_transport_tls_failure(plog_transport *g, char *addr, size_t asize, char *why, size_t wsize);

/* plog_transport_close stops receiving (no recv call runs once it returns), closes
 * every socket and frees g. NULL does nothing. It waits at most about two seconds
 * for the closes: when nng 1.5.2's reaper is stuck, what is still open is left to
 * it (leaked), the listening socket included. */
void plog_transport_close(plog_transport *g);

#endif
