/* testcluster.h - test-only: a cluster of real proglog processes on 127.0.0.1
 * (testcluster_testlib.c, linked into tests and benchmarks only).
 *
 * Node i is named "node<i+1>", gossips and serves RPC on free ports, keeps its data
 * in a fresh temporary directory, and presents its node certificate
 * ($PLOG_BUILD/certs/node<i+1>.pem, made by common/certs/gencert --node) as both its
 * server and peer identity. With own_hosts, node i binds 127.0.0.<i+2> instead of
 * 127.0.0.1 (its connections then leave from there: netproxy.h tells the nodes
 * apart by it) and presents node<i+1>-lo.pem (gencert --loopback-node), valid for
 * those addresses. The policy lets root produce, consume and remove servers
 * (admin) and every node gossip and consume. Failures abort the test (fail_msg). */
#ifndef PLOG_AGENT_TESTCLUSTER_H
#define PLOG_AGENT_TESTCLUSTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct plog_client; /* internal/client/client.h */
#include "testing/testing.h"

#define TC_MAX 8

struct tc_node {
    char name[32];
    int gport, rport, mport, aport; /* gossip, RPC, metrics, Raft (ch06) */
    char dir[160];
    plog_test_proc proc;
    bool running;
    const char *peer;          /* certificate base name for the peer identity ("" = own node cert) */
    const char *name_override; /* --node-name other than name (NULL: name) */
    const char *extra[8];      /* more arguments, up to a NULL; a flag given again overrides */
    char host[24];             /* the address it binds (tc_init) */
    char raft_advertise[32];   /* --raft-advertise-addr when not empty */
};

struct tc {
    char dir[64];
    char policy[128];
    const char *profile; /* "fast" unless set before tc_init */
    bool own_hosts;      /* set before tc_init: node i binds 127.0.0.<i+2> */
    int n;
    struct tc_node node[TC_MAX];
};

/* tc_certs makes the test certificates with node1..node8 (and their -lo forms) once
 * per process and returns their directory. */
const char *tc_certs(void);

/* tc_init prepares n nodes (not started). */
void tc_init(struct tc *c, int n);

/* tc_start starts node i; it joins through the gossip address of node join (-1:
 * none, and then it bootstraps the Raft cluster). Waits for its "msg=serving" line. */
void tc_start(struct tc *c, int i, int join);

/* tc_stop sends sig to node i and waits for it (SIGKILL: no grace). */
void tc_stop(struct tc *c, int i, int sig);

/* tc_fini stops every node (SIGTERM) and removes the files. */
void tc_fini(struct tc *c);

/* tc_client opens a root client to node i (the caller closes it). */
struct plog_client *tc_client(struct tc *c, int i);

/* tc_status_of writes into buf the status ("alive", "suspect", "dead", "left") of
 * member name as node i sees it, "" when unknown or node i does not answer. */
void tc_status_of(struct tc *c, int i, const char *name, char *buf, size_t size);

/* tc_member_status is tc_status_of through an open client (to poll quickly). */
void tc_member_status(struct plog_client *cl, const char *name, char *buf, size_t size);

/* A record as the cluster checks it: where it was first appended, its offset
 * there, and its value. */
struct tc_rec {
    char origin[32];
    uint64_t ooff;
    char *value; /* NUL-terminated copy */
};

/* tc_records reads node i's whole log (origin "" becomes node i's name) into
 * *out (sorted by origin, origin offset; free with tc_records_free). Returns the
 * count, or -1 when node i does not answer. */
long tc_records(struct tc *c, int i, struct tc_rec **out);
void tc_records_free(struct tc_rec *v, long n);

/* tc_produce appends n records "<prefix>-<k>" (k from first) to node i in one
 * batch, retrying "not leader" for up to 10 s (a node serves before Raft has
 * elected a leader). */
void tc_produce(struct tc *c, int i, const char *prefix, int first, int n);

/* tc_wait_count waits until node i holds want records; false on timeout. */
bool tc_wait_count(struct tc *c, int i, long want, int timeout_ms);

/* tc_check_same fails the test unless every running node's records are exactly
 * the same multiset of (origin, origin offset, value), without duplicates, and
 * count want. */
void tc_check_same(struct tc *c, long want);

/* Three agents inside the test's own process, for tests that drive the agent
 * library directly: node1..node3 on free ports, node1 bootstrapping, a policy that
 * lets root produce and consume and the nodes gossip and consume. */
#define TC_AGENTS 3
struct tc_agents {
    char dir[64], policy[128];
    char data[TC_AGENTS][128], name[TC_AGENTS][16], bind[TC_AGENTS][32];
    uint16_t rpc[TC_AGENTS], raft[TC_AGENTS];
    struct plog_agent *a[TC_AGENTS]; /* NULL until started, or once shut down */
    const char *seed[TC_AGENTS][1];  /* agent i's join address (tc_agents_config) */
};

/* tc_agents_setup and tc_agents_teardown are cmocka's setup and teardown: *state is
 * a new struct tc_agents with none started; teardown shuts down every agent still
 * running (a failed shutdown fails the test) and removes the directory. */
int tc_agents_setup(void **state);
int tc_agents_teardown(void **state);

/* tc_agents_config returns agent i's configuration: its directory, name, ports and
 * node certificate, the policy, the fast profile; joining agent join's gossip
 * address, or with join < 0 bootstrapping the Raft cluster alone. Its strings live
 * in f and in tc_cert's buffers (use it before 9 more tc_cert calls). */
struct plog_agent_config tc_agents_config(struct tc_agents *f, int i, int join);

/* tc_agents_start starts agent i, joining agent join's gossip address; join < 0
 * bootstraps the Raft cluster with it alone. */
void tc_agents_start(struct tc_agents *f, int i, int join);

/* tc_cert returns the path of the test certificate file name (tc_certs()). */
const char *tc_cert(const char *name);

#endif
