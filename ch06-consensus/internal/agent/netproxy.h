/* netproxy.h - test-only: a TCP proxy in front of the nodes of a test cluster that
 * cuts links between them (netproxy_testlib.c, linked into tests only).
 *
 * Node i has a listener on 127.0.0.1:netproxy_port(p, i) that forwards every
 * connection to node i's real address (dst[i]). The node a connection comes from
 * is told by its source IP: node j's connections leave from src_ip[j] (the nodes
 * bind to distinct loopback addresses, 127.0.0.2, 127.0.0.3, ...: all of 127/8 is
 * local on Linux, no setup or root needed). A connection from any other address
 * is forwarded and never cut.
 *
 * A cut is per directed link: blocked[j][i] cuts the connections node j opened to
 * node i's listener. It is a black hole, like lost packets: the proxy keeps such a
 * connection open and reads and discards what either end sends (no reset, no
 * close), and new connections on that link are accepted and black-holed too. A
 * TLS stream that lost bytes cannot go on, so healing a link closes the
 * connections it black-holed, and the nodes dial again.
 *
 * One thread polls every socket; at most NETPROXY_MAX_CONNS connections at once
 * (more are closed when accepted). Failures abort the test (fail_msg). */
#ifndef PLOG_AGENT_NETPROXY_H
#define PLOG_AGENT_NETPROXY_H

#include <stdbool.h>
#include <stdint.h>

#define NETPROXY_MAX_NODES 8
#define NETPROXY_MAX_CONNS 64

typedef struct netproxy netproxy;

/* netproxy_open starts the proxy for n nodes: src_ip[i] (an IPv4 literal) is where
 * node i's connections come from, dst[i] ("IPv4:PORT") where its listener
 * forwards to. Returns the proxy; free it with netproxy_close. */
netproxy *netproxy_open(int n, const char *const *src_ip, const char *const *dst);

/* netproxy_port: the port of node i's listener on 127.0.0.1. */
int netproxy_port(const netproxy *p, int i);

/* netproxy_block cuts (blocked) or heals the link from node src to node dst.
 * Returns once the proxy applied it: after a cut nothing more crosses the link;
 * after a heal, the link's black-holed connections are closed. */
void netproxy_block(netproxy *p, int src, int dst, bool blocked);

/* netproxy_isolate cuts (or heals) every link to and from node i. */
void netproxy_isolate(netproxy *p, int i, bool blocked);

/* Bytes the link src -> dst has carried to dst's side (forwarded: both directions
 * of its connections) and thrown away while cut (dropped), and connections
 * accepted on it. */
typedef struct netproxy_stats {
    uint64_t forwarded, dropped, accepted;
} netproxy_stats;
void netproxy_link_stats(netproxy *p, int src, int dst, netproxy_stats *out);

/* netproxy_close stops the thread, closes every socket and frees p. NULL: nothing. */
void netproxy_close(netproxy *p);

#endif
