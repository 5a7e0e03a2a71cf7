/* broadcast.c - dissemination (Go: memberlist broadcast.go, queue.go, the
 * gossip and pushPull loops of state.go) and the outbox.
 *
 * Every accepted change to a member marks that member's state pending. A
 * member has at most one pending state, its current one, so a newer update
 * replaces an older one for free (memberlist's queue invalidates by name).
 * Pending states ride on every ping, ack, ping-req, nack and gossip message we
 * send, up to max_piggyback_bytes, fewest transmissions first and among those
 * the newest; a state stops after retransmit_mult * ceil(log10(n + 1))
 * messages, which is enough for an epidemic to reach all n members with high
 * probability. Gossip messages go every gossip interval to gossip_nodes random
 * members while anything is pending. The push-pull, every push_pull_interval
 * with one random alive member, exchanges whole member lists: the slow path
 * that repairs whatever piggybacking lost. */
#include "internal/discovery/membership_impl.h"

#include <stdlib.h>
#include <string.h>

#include "internal/err/err.h"

static uint32_t retransmit_limit(const plog_membership *m)
{
    size_t n = plog_membership_live_count(m) + 1;
    uint32_t digits = 0; /* ceil(log10(n)) */
    for (size_t x = 1; x < n; x *= 10)
        digits++;
    return m->cfg.retransmit_mult * (digits ? digits : 1);
}

void plog_membership_bcast(plog_membership *m, struct member *mb)
{
    mb->bcast_pending = true;
    mb->bcast_tx = 0;
    mb->bcast_id = ++m->bcast_next_id;
}

bool plog_membership_has_pending(const plog_membership *m)
{
    for (size_t i = 0; i < m->nmembers; i++)
        if (m->members[i]->bcast_pending)
            return true;
    return false;
}

static int by_tx_then_newest(const void *a, const void *b)
{
    const struct member *x = *(struct member *const *)a, *y = *(struct member *const *)b;
    if (x->bcast_tx != y->bcast_tx)
        return x->bcast_tx < y->bcast_tx ? -1 : 1;
    return x->bcast_id > y->bcast_id ? -1 : x->bcast_id < y->bcast_id;
}

static void outbox_push(plog_membership *m, const char *addr, uint8_t *data, size_t len)
{
    if (m->out_n == m->out_cap) {
        size_t cap = m->out_cap ? m->out_cap * 2 : 16;
        plog_membership_send *o = realloc(m->out, cap * sizeof *o);
        if (o == NULL) {
            free(data);
            return;
        }
        m->out = o;
        m->out_cap = cap;
    }
    plog_membership_send *s = &m->out[m->out_n++];
    size_t n = strlen(addr);
    memcpy(s->addr, addr, n + 1);
    s->data = data;
    s->len = len;
    m->stats.msgs_out++;
}

static void encode_and_queue(plog_membership *m, const char *addr, plog_gossip_msg *msg)
{
    uint8_t *data;
    size_t len;
    msg->from = m->self->name;
    msg->from_addr = m->self->addr;
    if (plog_gossip_encode_alloc(msg, &data, &len) == PLOG_OK)
        outbox_push(m, addr, data, len);
}

void plog_membership_send_msg(plog_membership *m, const char *addr, plog_gossip_msg *msg, bool piggyback)
{
    msg->from = m->self->name;
    msg->from_addr = m->self->addr;
    if (!piggyback) {
        encode_and_queue(m, addr, msg);
        return;
    }
    /* States already in msg go first; pending ones fill the rest. */
    size_t fixed = msg->nstates;
    struct member **pend = malloc(m->nmembers * sizeof *pend);
    plog_gossip_state *states = malloc((m->nmembers + fixed) * sizeof *states);
    if (pend == NULL || states == NULL) {
        free(pend);
        free(states);
        encode_and_queue(m, addr, msg);
        return;
    }
    size_t np = 0;
    for (size_t i = 0; i < m->nmembers; i++)
        if (m->members[i]->bcast_pending)
            pend[np++] = m->members[i];
    qsort(pend, np, sizeof *pend, by_tx_then_newest);
    size_t used = plog_gossip_size(msg), ns = fixed;
    if (fixed > 0)
        memcpy(states, msg->states, fixed * sizeof *states);
    uint32_t limit = retransmit_limit(m);
    for (size_t i = 0; i < np && ns < PLOG_GOSSIP_MAX_STATES; i++) {
        plog_gossip_state s;
        plog_membership_fill_state(pend[i], &s);
        bool dup = false;
        for (size_t j = 0; j < fixed; j++)
            dup |= strcmp(states[j].name, s.name) == 0;
        if (dup)
            continue;
        size_t sz = plog_gossip_state_size(&s);
        if (used + sz > m->cfg.max_piggyback_bytes)
            continue;
        used += sz;
        states[ns++] = s;
        if (++pend[i]->bcast_tx >= limit)
            pend[i]->bcast_pending = false;
    }
    msg->states = states;
    msg->nstates = ns;
    encode_and_queue(m, addr, msg);
    free(states);
    free(pend);
}

void plog_membership_send_push_pull(plog_membership *m, const char *addr, uint8_t flags)
{
    size_t n = m->nmembers < PLOG_GOSSIP_MAX_STATES ? m->nmembers : PLOG_GOSSIP_MAX_STATES;
    plog_gossip_state *states = malloc(n * sizeof *states);
    if (states == NULL)
        return;
    /* Ourselves first: when the list is cut at the limit, we are in it. */
    size_t ns = 0;
    plog_membership_fill_state(m->self, &states[ns++]);
    for (size_t i = 0; i < m->nmembers && ns < n; i++)
        if (m->members[i] != m->self)
            plog_membership_fill_state(m->members[i], &states[ns++]);
    plog_gossip_msg msg = {.type = PLOG_GOSSIP_PUSH_PULL, .flags = flags, .states = states, .nstates = ns};
    encode_and_queue(m, addr, &msg);
    free(states);
}

void plog_membership_gossip_tick(plog_membership *m, uint64_t now)
{
    if (now < m->next_gossip)
        return;
    m->next_gossip = now + m->cfg.gossip_interval_ms;
    if (!plog_membership_has_pending(m))
        return;
    struct member *pick[16];
    size_t k = m->cfg.gossip_nodes < 16 ? m->cfg.gossip_nodes : 16, n = 0, seen = 0;
    for (size_t i = 0; i < m->nmembers; i++) {
        struct member *mb = m->members[i];
        if (mb == m->self || (mb->status != PLOG_GOSSIP_ALIVE && mb->status != PLOG_GOSSIP_SUSPECT))
            continue;
        seen++;
        if (n < k) {
            pick[n++] = mb;
        } else {
            size_t j = (size_t)(plog_membership_rand(m) % seen);
            if (j < k)
                pick[j] = mb;
        }
    }
    for (size_t i = 0; i < n && plog_membership_has_pending(m); i++) {
        plog_gossip_msg msg = {.type = PLOG_GOSSIP_GOSSIP};
        plog_membership_send_msg(m, pick[i]->addr, &msg, true);
    }
}
