/* probe.c - failure detection: SWIM's probe and indirect probe, Lifeguard's
 * nacks, local health (awareness) and shrinking suspicion timeouts (Go:
 * memberlist state.go probeNode, suspicion.go, awareness.go).
 *
 * One probe per (scaled) probe interval, targets in round-robin order over a
 * list reshuffled every round:
 *
 *   t0                      t0 + probe_timeout           t0 + interval x (awareness+1)
 *   |- ping(seq) to target -|- no ack: ping-req(seq) to -|- still no ack: suspect target,
 *   |  ack(seq): done, ok    |  k others, each pings the  |  awareness += missing nacks
 *                            |  target and forwards its   |  (+1 when nobody was asked)
 *                            |  ack, or nacks us in time  |
 *
 * A suspicion lasts between min = suspicion_mult * max(1, log10 n) * interval
 * and max = suspicion_max_mult * min: it starts at max, and each independent
 * confirmation c (another member suspecting the same incarnation) brings it to
 * max - (max - min) * ln(c + 1) / ln(k + 1), with k = suspicion_mult - 2
 * confirmations expected (none in clusters under k + 2 members: then min). */
#include "internal/discovery/membership_impl.h"

#include <string.h>

#include "internal/err/err.h"

/* ln_approx is the natural logarithm for x > 0, close enough for timeouts;
 * here so the core needs no libm. */
static double ln_approx(double x)
{
    int e = 0;
    while (x >= 2.0)
        x /= 2.0, e++;
    while (x < 1.0)
        x *= 2.0, e--;
    double y = (x - 1.0) / (x + 1.0), y2 = y * y, term = y, sum = 0.0;
    for (int i = 1; i < 40; i += 2) {
        sum += term / i;
        term *= y2;
    }
    return 2.0 * sum + e * 0.6931471805599453;
}

static uint64_t suspicion_min_ms(const plog_membership_config *c, size_t n)
{
    double scale = n > 10 ? ln_approx((double)n) / ln_approx(10.0) : 1.0;
    return (uint64_t)((double)c->suspicion_mult * scale * c->probe_interval_ms);
}

uint64_t plog_membership_detect_bound_ms(const plog_membership_config *c, size_t n)
{
    uint64_t min = suspicion_min_ms(c, n);
    /* Probe round and failed probe, with the interval doubled by a local
     * health score of 1; the longest suspicion; a few gossip rounds. */
    return (uint64_t)(n + 1) * 2 * c->probe_interval_ms + min * c->suspicion_max_mult +
           10 * (uint64_t)c->gossip_interval_ms;
}

void plog_membership_awareness(plog_membership *m, int delta)
{
    int64_t v = (int64_t)m->awareness + delta;
    if (v < 0)
        v = 0;
    if (v > (int64_t)m->cfg.awareness_max - 1)
        v = (int64_t)m->cfg.awareness_max - 1;
    m->awareness = (uint32_t)v;
}

uint64_t plog_membership_scaled_interval(const plog_membership *m)
{
    return (uint64_t)m->cfg.probe_interval_ms * (m->awareness + 1);
}

void plog_membership_start_suspicion(plog_membership *m, struct member *mb, uint64_t now)
{
    size_t n = plog_membership_live_count(m);
    uint32_t k = m->cfg.suspicion_mult > 2 ? m->cfg.suspicion_mult - 2 : 0;
    if (k > MAX_CONFIRM - 1)
        k = MAX_CONFIRM - 1;
    if (n < (size_t)k + 2)
        k = 0;
    mb->susp_k = k;
    mb->susp_start = now;
    mb->susp_min = suspicion_min_ms(&m->cfg, n);
    mb->susp_max = mb->susp_min * m->cfg.suspicion_max_mult;
    mb->susp_deadline = now + (k == 0 ? mb->susp_min : mb->susp_max);
    /* The first accuser is remembered, not counted: confirmations are the
     * others who suspect independently. */
    mb->nconfirm = 1;
    memcpy(mb->confirm[0], mb->from, sizeof mb->confirm[0]);
    if (strcmp(mb->from, m->self->name) == 0)
        m->stats.suspicions++;
}

bool plog_membership_confirm_suspicion(plog_membership *m, struct member *mb, const char *from)
{
    if (mb->susp_k == 0 || mb->nconfirm - 1 >= mb->susp_k || from[0] == '\0')
        return false;
    for (size_t i = 0; i < mb->nconfirm; i++)
        if (strcmp(mb->confirm[i], from) == 0)
            return false;
    strncpy(mb->confirm[mb->nconfirm], from, PLOG_GOSSIP_MAX_NAME);
    mb->confirm[mb->nconfirm][PLOG_GOSSIP_MAX_NAME] = '\0';
    mb->nconfirm++;
    if (strcmp(from, m->self->name) == 0)
        m->stats.suspicions++;
    double c = (double)(mb->nconfirm - 1);
    double frac = ln_approx(c + 1.0) / ln_approx((double)mb->susp_k + 1.0);
    double span = (double)(mb->susp_max - mb->susp_min);
    uint64_t timeout = mb->susp_max - (uint64_t)(span * frac);
    if (timeout < mb->susp_min)
        timeout = mb->susp_min;
    mb->susp_deadline = mb->susp_start + timeout;
    return true;
}

/* ---- our probe ---- */

static struct member *next_target(plog_membership *m, uint64_t now)
{
    for (size_t tries = 0; tries <= m->nmembers; tries++) {
        if (m->probe_index >= m->nmembers)
            plog_membership_reap_and_shuffle(m, now);
        struct member *mb = m->members[m->probe_index++];
        if (mb != m->self && (mb->status == PLOG_GOSSIP_ALIVE || mb->status == PLOG_GOSSIP_SUSPECT))
            return mb;
    }
    return NULL;
}

static void start_probe(plog_membership *m, uint64_t now)
{
    struct member *t = next_target(m, now);
    m->next_probe = now + plog_membership_scaled_interval(m);
    if (t == NULL)
        return;
    struct probe *p = &m->probe;
    *p = (struct probe){
        .active = true,
        .seq = ++m->seq,
        .start_ms = now,
        .direct_deadline = now + m->cfg.probe_timeout_ms,
        .final_deadline = m->next_probe,
    };
    memcpy(p->target, t->name, sizeof p->target);
    m->stats.probes++;
    plog_gossip_msg msg = {.type = PLOG_GOSSIP_PING, .seq = p->seq, .target = t->name};
    /* A suspect is told so on every probe, whatever the retransmit budget
     * says (memberlist probeNode): it may have missed the gossip. */
    plog_gossip_state s;
    if (t->status == PLOG_GOSSIP_SUSPECT) {
        plog_membership_fill_state(t, &s);
        msg.states = &s;
        msg.nstates = 1;
    }
    plog_membership_send_msg(m, t->addr, &msg, true);
}

static void send_ping_reqs(plog_membership *m, const struct member *t)
{
    struct probe *p = &m->probe;
    struct member *pick[16];
    size_t k = m->cfg.indirect_checks < 16 ? m->cfg.indirect_checks : 16, n = 0, seen = 0;
    /* Reservoir sampling of k alive members other than us and the target. */
    for (size_t i = 0; i < m->nmembers; i++) {
        struct member *mb = m->members[i];
        if (mb == m->self || mb == t || mb->status != PLOG_GOSSIP_ALIVE)
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
    p->indirect_sent = true;
    p->expected_nacks = (uint32_t)n;
    for (size_t i = 0; i < n; i++) {
        plog_gossip_msg msg = {
            .type = PLOG_GOSSIP_PING_REQ, .seq = p->seq, .target = t->name, .target_addr = t->addr};
        plog_membership_send_msg(m, pick[i]->addr, &msg, true);
    }
    if (n > 0)
        m->stats.indirect_probes++;
}

static void probe_failed(plog_membership *m, uint64_t now, struct member *t)
{
    struct probe *p = &m->probe;
    p->active = false;
    m->stats.probes_failed++;
    /* Lifeguard: a nack proves the asker could reach the intermediary, so a
     * missing nack counts against our own health; with nobody to ask, any
     * failed probe does. */
    if (p->expected_nacks > 0)
        plog_membership_awareness(m, p->nacks < p->expected_nacks ? (int)(p->expected_nacks - p->nacks) : 0);
    else
        plog_membership_awareness(m, 1);
    plog_gossip_state s;
    plog_membership_fill_state(t, &s);
    s.status = PLOG_GOSSIP_SUSPECT;
    s.from = m->self->name;
    plog_membership_on_suspect(m, now, &s);
}

void plog_membership_probe_tick(plog_membership *m, uint64_t now)
{
    for (size_t i = 0; i < MAX_RELAYS; i++) {
        struct relay *r = &m->relays[i];
        if (r->used && now >= r->nack_deadline) {
            r->used = false;
            plog_gossip_msg msg = {.type = PLOG_GOSSIP_NACK, .seq = r->orig_seq};
            plog_membership_send_msg(m, r->requester_addr, &msg, true);
        }
    }
    struct probe *p = &m->probe;
    if (m->leaving) {
        p->active = false;
        return;
    }
    if (p->active) {
        struct member *t = plog_membership_lookup(m, p->target);
        if (t == NULL || t->status == PLOG_GOSSIP_DEAD || t->status == PLOG_GOSSIP_LEFT) {
            p->active = false; /* decided meanwhile, by someone else's word */
        } else {
            if (!p->indirect_sent && now >= p->direct_deadline)
                send_ping_reqs(m, t);
            if (now >= p->final_deadline)
                probe_failed(m, now, t);
        }
    }
    if (!p->active && now >= m->next_probe)
        start_probe(m, now);
}

uint64_t plog_membership_probe_deadline(const plog_membership *m)
{
    uint64_t d = UINT64_MAX;
    for (size_t i = 0; i < MAX_RELAYS; i++)
        if (m->relays[i].used && m->relays[i].nack_deadline < d)
            d = m->relays[i].nack_deadline;
    if (m->leaving)
        return d;
    const struct probe *p = &m->probe;
    if (p->active) {
        uint64_t pd = p->indirect_sent ? p->final_deadline : p->direct_deadline;
        return pd < d ? pd : d;
    }
    return m->next_probe < d ? m->next_probe : d;
}

/* ---- answering others ---- */

void plog_membership_on_ping(plog_membership *m, uint64_t now, const plog_gossip_msg *msg)
{
    (void)now;
    /* A ping for a previous owner of our address is not ours to answer. */
    if (strcmp(msg->target, m->self->name) != 0)
        return;
    plog_gossip_msg ack = {.type = PLOG_GOSSIP_ACK, .seq = msg->seq};
    plog_membership_send_msg(m, msg->from_addr, &ack, true);
}

void plog_membership_on_ping_req(plog_membership *m, uint64_t now, const plog_gossip_msg *msg)
{
    struct relay *r = &m->relays[0];
    for (size_t i = 0; i < MAX_RELAYS; i++) {
        if (!m->relays[i].used) {
            r = &m->relays[i];
            break;
        }
        if (m->relays[i].nack_deadline < r->nack_deadline)
            r = &m->relays[i]; /* full: the oldest makes room */
    }
    /* The nack must reach the asker before its probe ends, a probe timeout
     * after it sent the ping-req: answer after three quarters of that. */
    *r = (struct relay){.used = true,
                        .seq = ++m->seq,
                        .orig_seq = msg->seq,
                        .nack_deadline = now + m->cfg.probe_timeout_ms * 3 / 4};
    memcpy(r->requester_addr, msg->from_addr, strlen(msg->from_addr) + 1);
    plog_gossip_msg ping = {.type = PLOG_GOSSIP_PING, .seq = r->seq, .target = msg->target};
    plog_membership_send_msg(m, msg->target_addr, &ping, true);
}

void plog_membership_on_ack(plog_membership *m, uint64_t now, const plog_gossip_msg *msg)
{
    (void)now;
    struct probe *p = &m->probe;
    if (p->active && msg->seq == p->seq) {
        p->active = false;
        plog_membership_awareness(m, -1);
        return;
    }
    for (size_t i = 0; i < MAX_RELAYS; i++) {
        struct relay *r = &m->relays[i];
        if (r->used && r->seq == msg->seq) {
            r->used = false;
            plog_gossip_msg ack = {.type = PLOG_GOSSIP_ACK, .seq = r->orig_seq};
            plog_membership_send_msg(m, r->requester_addr, &ack, true);
            return;
        }
    }
}

void plog_membership_on_nack(plog_membership *m, const plog_gossip_msg *msg)
{
    struct probe *p = &m->probe;
    if (p->active && msg->seq == p->seq)
        p->nacks++;
}
