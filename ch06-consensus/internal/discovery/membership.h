/* membership.h - cluster membership as SWIM with Lifeguard's refinements, as a
 * pure state machine (Go: Serf/memberlist under the book's membership.go).
 *
 * A node has a name, a gossip address and tags (notably "rpc_addr"). It joins
 * through any of a list of seed addresses and from then on knows every member
 * with a status (alive, suspect, dead, left) and an incarnation number.
 *
 * The core does no I/O: it has no sockets, clock, threads or randomness of its
 * own. A driver feeds it
 *   - received messages:  plog_membership_recv(m, now_ms, bytes, len)
 *   - the passing of time: plog_membership_tick(m, now_ms), at the latest by
 *                          plog_membership_next_deadline(m)
 *   - commands:           join, leave, set_tags
 * and after every call drains
 *   - messages to send:   plog_membership_pop_send() -> (address, encoded bytes)
 *   - events:             plog_membership_pop_event() -> join/leave/failed/update
 * Time is any monotonic millisecond clock (now_ms never goes backwards).
 * Randomness (probe order, whom to gossip to) comes from a PRNG seeded from the
 * config, so a run is a function of its inputs: the simulation in
 * membership_testlib.c replays any run from its seed.
 *
 * Not thread-safe: the driver serializes every call on one plog_membership. */
#ifndef PLOG_MEMBERSHIP_H
#define PLOG_MEMBERSHIP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "internal/discovery/gossip.h"

typedef struct plog_membership plog_membership;

/* Configuration, a plain value: fill one with plog_membership_config_lan() or
 * _fast(), then set name, addr, tags, seed and incarnation. Strings and tags
 * are copied by plog_membership_new. */
typedef struct plog_membership_config {
    const char *name;            /* unique in the cluster, 1..64 bytes 0x21..0x7e */
    const char *addr;            /* where others send to us, 1..128 bytes, e.g. tls+tcp://127.0.0.1:8401 */
    const plog_gossip_tag *tags; /* e.g. {"rpc_addr", "127.0.0.1:8400"}; limits in gossip.h */
    size_t ntags;
    uint64_t incarnation; /* first incarnation; see "Restarts" below */
    uint64_t seed;        /* PRNG seed */

    uint32_t probe_interval_ms;     /* one probe per interval (memberlist ProbeInterval) */
    uint32_t probe_timeout_ms;      /* direct ack wait before ping-req (ProbeTimeout) */
    uint32_t indirect_checks;       /* k members asked to ping-req (IndirectChecks) */
    uint32_t suspicion_mult;        /* suspicion timeout = mult * max(1, log10 n) * probe interval */
    uint32_t suspicion_max_mult;    /* Lifeguard: the timeout starts at max_mult x that, shrinks
                                     * with independent confirmations */
    uint32_t awareness_max;         /* Lifeguard local health: probe interval x (score+1), score < max */
    uint32_t retransmit_mult;       /* an update rides on mult * ceil(log10(n+1)) messages */
    uint32_t gossip_interval_ms;    /* send pending updates this often ... */
    uint32_t gossip_nodes;          /* ... to this many random members */
    uint32_t push_pull_interval_ms; /* full-state exchange with a random alive member */
    uint32_t reconnect_interval_ms; /* push-pull with a random dead member (or a seed when
                                     * no other member is alive): heals partitions */
    uint32_t join_retry_ms;         /* resend the join push-pull until a seed answers */
    uint32_t reap_ms;               /* forget dead and left members this long after */
    uint32_t max_piggyback_bytes;   /* updates per ping/ack/gossip message, in encoded bytes */
} plog_membership_config;

/* plog_membership_config_lan fills c with memberlist's DefaultLANConfig timings
 * (probe 1 s, timeout 500 ms, 3 indirect, suspicion mult 4 (max 6x), retransmit
 * mult 4, gossip 200 ms to 3, push-pull 30 s) and Serf's reconnect 30 s and
 * reap 24 h. Name, addr, tags, seed, incarnation are zeroed. */
void plog_membership_config_lan(plog_membership_config *c);

/* plog_membership_config_fast fills c with a profile for loopback and tests:
 * probe 100 ms, timeout 50 ms, gossip 30 ms, push-pull 2 s, reconnect 1 s,
 * reap 60 s; the multipliers as in the LAN profile. */
void plog_membership_config_fast(plog_membership_config *c);

/* plog_membership_detect_bound_ms is how long after a member dies every other
 * member of an n-member cluster has declared it failed, at the latest, when
 * no message is lost: a full probe round, the failed probe, the longest
 * suspicion, and dissemination, with the probe interval stretched by the
 * worst local health score. Loss delays detection a little beyond it. */
uint64_t plog_membership_detect_bound_ms(const plog_membership_config *c, size_t n);

/* A member as a value: what an event carries and what member_get answers. */
typedef struct plog_membership_member {
    char name[PLOG_GOSSIP_MAX_NAME + 1];
    char addr[PLOG_GOSSIP_MAX_ADDR + 1];
    uint8_t status; /* plog_gossip_status */
    uint64_t incarnation;
    size_t ntags;
    struct {
        char key[PLOG_GOSSIP_MAX_KEY + 1];
        char value[PLOG_GOSSIP_MAX_VALUE + 1];
    } tags[PLOG_GOSSIP_MAX_TAGS];
} plog_membership_member;

/* plog_membership_tag returns the value of key in mb's tags, or NULL. */
const char *plog_membership_tag(const plog_membership_member *mb, const char *key);

typedef enum {
    PLOG_MEMBERSHIP_JOIN = 1,   /* a member became alive: new, or back after dead/left */
    PLOG_MEMBERSHIP_LEAVE = 2,  /* a member left gracefully */
    PLOG_MEMBERSHIP_FAILED = 3, /* a member was declared dead (it may come back) */
    PLOG_MEMBERSHIP_UPDATE = 4, /* an alive member changed its tags or address */
    /* Another node claims an alive (or suspect) member's name, ours included,
     * from another address: two processes were started with one name. The
     * claim is ignored (the member keeps its address, and we do not refute
     * it); member is the claim. Once per claimant address. */
    PLOG_MEMBERSHIP_CONFLICT = 5,
    /* The answer to our join says our name is alive at another address: the
     * name is taken, and this node should stop without leaving (a leave in our
     * name would be taken for the other's). member is the holder. */
    PLOG_MEMBERSHIP_NAME_TAKEN = 6,
} plog_membership_event_type;

/* An event, about another member, except CONFLICT and NAME_TAKEN, which may
 * be about a node holding our name. */
typedef struct plog_membership_event {
    int type; /* plog_membership_event_type */
    uint64_t at_ms;
    plog_membership_member member;
} plog_membership_event;

/* A message to send: addr is the destination, data the encoded message
 * (gossip.h), malloc'd; plog_membership_pop_send hands it to the caller. */
typedef struct plog_membership_send {
    char addr[PLOG_GOSSIP_MAX_ADDR + 1];
    uint8_t *data;
    size_t len;
} plog_membership_send;

/* Counters for operators and benchmarks. */
typedef struct plog_membership_stats {
    uint64_t msgs_in, msgs_out, bad_in; /* bad_in: dropped by recv (undecodable, or wrong sender) */
    uint64_t probes, probes_failed, indirect_probes;
    uint64_t suspicions, refutations; /* suspicions we started; times we refuted one about us */
    uint64_t push_pulls;
    uint32_t awareness; /* current local health score, 0 is healthy */
} plog_membership_stats;

/* plog_membership_new makes a node that knows only itself (alive at
 * c->incarnation). PLOG_EINVAL for a bad name, address, tags or timing (a zero
 * interval, timeout >= interval, ...), PLOG_ENOMEM. On PLOG_OK *out is owned by
 * the caller until plog_membership_free(). */
int plog_membership_new(const plog_membership_config *c, uint64_t now_ms, plog_membership **out);

/* plog_membership_free frees m and any messages and events not popped. */
void plog_membership_free(plog_membership *m);

/* plog_membership_join starts joining through addrs (copied; our own address
 * is skipped): a join push-pull to each, resent every join_retry_ms until one
 * answers. Later calls replace the seed list. Seeds are also whom an isolated
 * node (no other alive member) keeps reconnecting to. PLOG_EINVAL for a bad
 * address or n > 64. */
int plog_membership_join(plog_membership *m, uint64_t now_ms, const char *const *addrs, size_t n);

/* plog_membership_recv handles one received message (buf borrowed). PLOG_OK,
 * or the codec's PLOG_EVERSION / PLOG_ETOOBIG / PLOG_ECORRUPT (the message was
 * dropped and counted in bad_in; the node is unaffected), PLOG_ENOMEM. */
int plog_membership_recv(plog_membership *m, uint64_t now_ms, const uint8_t *buf, size_t len);

/* plog_membership_recv_from is plog_membership_recv for a transport that knows
 * who sent buf (the verified certificate's common name, say): a message whose
 * sender name is not peer is dropped, counted in bad_in, and answered with
 * PLOG_EPERM, so one member cannot speak as another. A NULL peer checks
 * nothing. */
int plog_membership_recv_from(plog_membership *m, uint64_t now_ms, const char *peer, const uint8_t *buf,
                              size_t len);

/* plog_membership_tick runs whatever is due at now_ms: probes and their
 * timeouts, suspicion timeouts, gossip, push-pull, reconnects, join retries,
 * reaping. Calling it early or often is harmless. */
void plog_membership_tick(plog_membership *m, uint64_t now_ms);

/* plog_membership_next_deadline returns the earliest time tick has work to do
 * (a driver sleeps until then or until a message arrives). */
uint64_t plog_membership_next_deadline(const plog_membership *m);

/* plog_membership_leave announces a graceful leave: our incarnation goes up,
 * and "left" is sent at once to every alive or suspect member and gossiped
 * further. Afterwards the node stops probing and gossiping but still answers
 * pings, so the driver should send what pop_send yields, keep receiving for a
 * gossip interval or two, and then free. */
int plog_membership_leave(plog_membership *m, uint64_t now_ms);

/* plog_membership_set_tags replaces our tags (copied) and announces them with
 * a new incarnation; the others get an UPDATE event. PLOG_EINVAL on bad tags. */
int plog_membership_set_tags(plog_membership *m, uint64_t now_ms, const plog_gossip_tag *tags, size_t ntags);

/* plog_membership_pop_send moves the oldest pending message into *out and
 * returns true (the caller frees out->data with free()), or returns false. */
bool plog_membership_pop_send(plog_membership *m, plog_membership_send *out);

/* plog_membership_pop_event copies the oldest pending event into *out and
 * returns true, or returns false. */
bool plog_membership_pop_event(plog_membership *m, plog_membership_event *out);

/* plog_membership_count returns how many members we know (ourselves included,
 * dead and left ones until reaped). */
size_t plog_membership_count(const plog_membership *m);

/* plog_membership_get copies member i (0 <= i < count, in no particular order)
 * into *out. */
void plog_membership_get(const plog_membership *m, size_t i, plog_membership_member *out);

/* plog_membership_find copies the member called name into *out; false if unknown. */
bool plog_membership_find(const plog_membership *m, const char *name, plog_membership_member *out);

/* plog_membership_self_incarnation returns our current incarnation. */
uint64_t plog_membership_self_incarnation(const plog_membership *m);

/* plog_membership_get_stats copies the counters. */
void plog_membership_get_stats(const plog_membership *m, plog_membership_stats *out);

/* Restarts. A node that restarts with the same name must come back with a
 * higher incarnation than any the cluster remembers, or its "alive" is ignored
 * as old news. Two mechanisms, both in place:
 *   1. the driver passes a start-time based incarnation (e.g. wall-clock
 *      seconds since the epoch), larger than anything the old run reached
 *      unless it refuted more than once a second;
 *   2. whatever it starts with, the join push-pull answers with the cluster's
 *      view of the name (alive/dead/left at incarnation N); the node treats
 *      that as a rumour about itself and refutes it with N + 1.
 * Prefer 1: with 2 alone, a member that hears the new "alive at N" before the
 * old "dead at N" (same incarnation, so dead wins) reports FAILED and then,
 * after the refutation, JOIN again. */

#endif
