/* swim_cluster.h - a simulated cluster of membership cores for tests and benches
 * (test library only): N nodes over an in-memory network with a virtual
 * clock, per-message loss, latency, directional link cuts, crashes, restarts
 * and graceful leaves. Everything random comes from one seed, so a run is
 * replayed exactly from it.
 *
 * Nodes are numbered 0..n-1, named "n1".."nN", at addresses "sim://n1".. .
 * plog_swim_cluster_run_until() always runs the earliest thing next: a message
 * delivery or a node's deadline (cowsql test/lib/cluster.c's step). Messages
 * pass through the real codec both ways. With tracing on, every message sent
 * and every event is appended to a readable trace. */
#ifndef PLOG_SWIM_CLUSTER_H
#define PLOG_SWIM_CLUSTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "internal/discovery/membership.h"

#define PLOG_SWIM_CLUSTER_MAX 64

typedef struct plog_swim_cluster plog_swim_cluster;

typedef struct plog_swim_cluster_opts {
    size_t n; /* nodes, at most PLOG_SWIM_CLUSTER_MAX */
    uint64_t seed;
    plog_membership_config cfg; /* timings; name, addr, seed, incarnation are set per node */
    uint32_t min_latency_ms, max_latency_ms;
    double loss; /* probability that a message is lost */
} plog_swim_cluster_opts;

/* A recorded event: node saw subject do type at at_ms. */
typedef struct plog_swim_cluster_event {
    uint64_t at_ms;
    size_t node;
    int type; /* plog_membership_event_type */
    char subject[PLOG_GOSSIP_MAX_NAME + 1];
} plog_swim_cluster_event;

/* plog_swim_cluster_new makes the cluster with no node started (aborts on
 * failure: test code). Free with plog_swim_cluster_free. */
plog_swim_cluster *plog_swim_cluster_new(const plog_swim_cluster_opts *o);
void plog_swim_cluster_free(plog_swim_cluster *c);

/* plog_swim_cluster_start starts node i at incarnation inc with tags rpc_addr=sim-rpc://nI;
 * when seed is not i, it joins through node seed's address. */
void plog_swim_cluster_start(plog_swim_cluster *c, size_t i, uint64_t inc, size_t seed);

/* plog_swim_cluster_kill crashes node i: its core is freed without a word. */
void plog_swim_cluster_kill(plog_swim_cluster *c, size_t i);

/* plog_swim_cluster_leave makes node i leave gracefully; the driver keeps it
 * running for linger_ms (answering pings) and then stops it. */
void plog_swim_cluster_leave(plog_swim_cluster *c, size_t i, uint64_t linger_ms);

/* plog_swim_cluster_cut drops every message from i to j (directional) while cut. */
void plog_swim_cluster_cut(plog_swim_cluster *c, size_t i, size_t j, bool cut);

/* plog_swim_cluster_heal restores every link. */
void plog_swim_cluster_heal(plog_swim_cluster *c);

void plog_swim_cluster_set_loss(plog_swim_cluster *c, double loss);

/* plog_swim_cluster_run_until runs until virtual time t. */
void plog_swim_cluster_run_until(plog_swim_cluster *c, uint64_t t);

/* plog_swim_cluster_run_until_true runs until cond(c, arg) holds (checked after
 * every step; returns true) or time t passes (returns false). */
bool plog_swim_cluster_run_until_true(plog_swim_cluster *c, bool (*cond)(plog_swim_cluster *, void *),
                                      void *arg, uint64_t t);

uint64_t plog_swim_cluster_now(const plog_swim_cluster *c);
bool plog_swim_cluster_is_running(const plog_swim_cluster *c, size_t i);
plog_membership *plog_swim_cluster_node(plog_swim_cluster *c, size_t i);

/* plog_swim_cluster_status is what running node viewer thinks of node subject:
 * a plog_gossip_status, or 0 when it does not know it. */
int plog_swim_cluster_status(const plog_swim_cluster *c, size_t viewer, size_t subject);

/* plog_swim_cluster_converged: every running node sees every running node alive,
 * and no other node alive. */
bool plog_swim_cluster_converged(plog_swim_cluster *c, void *unused);

/* plog_swim_cluster_events returns the events recorded so far (borrowed, valid
 * until the next call on c) and their number in *n. */
const plog_swim_cluster_event *plog_swim_cluster_events(const plog_swim_cluster *c, size_t *n);

/* plog_swim_cluster_false_failures counts FAILED events whose subject was running
 * and had not begun to leave when the event happened. */
uint64_t plog_swim_cluster_false_failures(const plog_swim_cluster *c);

/* plog_swim_cluster_messages counts messages delivered so far. */
uint64_t plog_swim_cluster_messages(const plog_swim_cluster *c);

/* plog_swim_cluster_trace turns tracing on or off. plog_swim_cluster_trace_text returns
 * the trace so far (borrowed, NUL-terminated). */
void plog_swim_cluster_trace(plog_swim_cluster *c, bool on);
const char *plog_swim_cluster_trace_text(const plog_swim_cluster *c);

/* plog_swim_cluster_seed returns $SEED when set, else dflt; tests print it on
 * failure so the run can be replayed (SEED=n build/test/...). */
uint64_t plog_swim_cluster_seed(uint64_t dflt);

#endif
