/* membership_impl.h - the state behind plog_membership, shared by
 * membership.c (state rules, API), probe.c (failure detection) and
 * broadcast.c (dissemination). Not for use outside internal/discovery. */
#ifndef PLOG_MEMBERSHIP_IMPL_H
#define PLOG_MEMBERSHIP_IMPL_H

#include "internal/discovery/membership.h"

#define MAX_SEEDS 64
#define MAX_RELAYS 64
#define MAX_CONFIRM 8    /* Lifeguard k is suspicion_mult - 2; capped */
#define MAX_MEMBERS 4096 /* a bound on memory, whatever peers claim */

/* A member's tags: pointers into buf, which the member owns. */
struct tagset {
    size_t n;
    plog_gossip_tag t[PLOG_GOSSIP_MAX_TAGS];
    char *buf;
};

struct member {
    char name[PLOG_GOSSIP_MAX_NAME + 1];
    char addr[PLOG_GOSSIP_MAX_ADDR + 1];
    char from[PLOG_GOSSIP_MAX_NAME + 1];     /* who suspected or declared it dead */
    char claimant[PLOG_GOSSIP_MAX_ADDR + 1]; /* the last other address that claimed its name */
    struct tagset tags;
    uint8_t status;
    uint64_t incarnation;
    uint64_t change_ms; /* when status last changed */

    /* Suspicion (Lifeguard): the timeout starts at max and shrinks towards min
     * with each independent confirmation, k of them expected. */
    uint64_t susp_start, susp_min, susp_max, susp_deadline;
    uint32_t susp_k;
    size_t nconfirm;
    char confirm[MAX_CONFIRM][PLOG_GOSSIP_MAX_NAME + 1];

    /* Dissemination: the member's current state is pending broadcast while
     * bcast_pending; bcast_tx counts the messages it rode on. */
    bool bcast_pending;
    uint32_t bcast_tx;
    uint64_t bcast_id; /* newer updates go first among equal tx */
};

/* Our probe in flight (one at a time). */
struct probe {
    bool active;
    bool indirect_sent;
    uint32_t seq;
    char target[PLOG_GOSSIP_MAX_NAME + 1];
    uint64_t start_ms, direct_deadline, final_deadline;
    uint32_t expected_nacks, nacks;
};

/* A ping we relay for someone's ping-req. */
struct relay {
    bool used;
    uint32_t seq;      /* of our ping to the target */
    uint32_t orig_seq; /* of the requester's ping-req */
    char requester_addr[PLOG_GOSSIP_MAX_ADDR + 1];
    uint64_t nack_deadline;
};

struct plog_membership {
    plog_membership_config cfg; /* strings point into self */
    struct member *self;
    struct member **members; /* self included; the probe order, reshuffled each round */
    size_t nmembers, capmembers;
    size_t probe_index;
    uint64_t rng;
    uint32_t seq;
    uint64_t bcast_next_id;
    uint32_t awareness;
    bool leaving;

    struct probe probe;
    struct relay relays[MAX_RELAYS];

    uint64_t next_probe, next_gossip, next_push_pull, next_reconnect, next_join;
    char seeds[MAX_SEEDS][PLOG_GOSSIP_MAX_ADDR + 1];
    size_t nseeds, seed_cursor;
    bool contacted; /* a push-pull reply arrived */

    plog_membership_send *out; /* FIFO: out[out_head..out_n) */
    size_t out_head, out_n, out_cap;
    plog_membership_event *ev;
    size_t ev_head, ev_n, ev_cap;

    plog_membership_stats stats;
};

/* membership.c */
struct member *plog_membership_lookup(const plog_membership *m, const char *name);
uint64_t plog_membership_rand(plog_membership *m);
size_t plog_membership_live_count(const plog_membership *m); /* alive + suspect, self included */
void plog_membership_fill_state(const struct member *mb, plog_gossip_state *s);
void plog_membership_on_suspect(plog_membership *m, uint64_t now, const plog_gossip_state *s);
void plog_membership_on_dead(plog_membership *m, uint64_t now, const plog_gossip_state *s);
void plog_membership_reap_and_shuffle(plog_membership *m, uint64_t now);

/* broadcast.c */
void plog_membership_bcast(plog_membership *m, struct member *mb);
/* plog_membership_send_msg encodes msg (plus pending updates when piggyback)
 * and queues it for addr. Drops it quietly on ENOMEM. */
void plog_membership_send_msg(plog_membership *m, const char *addr, plog_gossip_msg *msg, bool piggyback);
void plog_membership_send_push_pull(plog_membership *m, const char *addr, uint8_t flags);
bool plog_membership_has_pending(const plog_membership *m);
void plog_membership_gossip_tick(plog_membership *m, uint64_t now);

/* probe.c */
void plog_membership_probe_tick(plog_membership *m, uint64_t now);
void plog_membership_on_ping(plog_membership *m, uint64_t now, const plog_gossip_msg *msg);
void plog_membership_on_ping_req(plog_membership *m, uint64_t now, const plog_gossip_msg *msg);
void plog_membership_on_ack(plog_membership *m, uint64_t now, const plog_gossip_msg *msg);
void plog_membership_on_nack(plog_membership *m, const plog_gossip_msg *msg);
uint64_t plog_membership_probe_deadline(const plog_membership *m);
void plog_membership_awareness(plog_membership *m, int delta);
uint64_t plog_membership_scaled_interval(const plog_membership *m);
void plog_membership_start_suspicion(plog_membership *m, struct member *mb, uint64_t now);
bool plog_membership_confirm_suspicion(plog_membership *m, struct member *mb, const char *from);

#endif
