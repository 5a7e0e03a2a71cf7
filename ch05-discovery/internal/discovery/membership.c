/* membership.c - the member list and the rules that change it (Go: memberlist
 * state.go aliveNode/suspectNode/deadNode, mergeState), plus the API of
 * membership.h. Probing lives in probe.c, dissemination in broadcast.c.
 *
 * The rules, for an update "name is S at incarnation i" about a member we hold
 * at incarnation j:
 *   alive   i > j wins (a restart or refutation); so does a new name. From dead
 *           or left that is a JOIN event, from alive/suspect with other tags
 *           an UPDATE. From another address while the member is alive or
 *           suspect it is another process started under the same name: the
 *           claim is ignored, whatever its incarnation (a CONFLICT event), so
 *           that the member keeps the address the cluster knew first (memberlist
 *           does the same). A member that really moved is taken at its new
 *           address once the old one is found dead.
 *   suspect i >= j suspects an alive member (a suspect one gets a Lifeguard
 *           confirmation instead); dead and left members stay as they are.
 *   dead    i >= j kills an alive or suspect member: FAILED.
 *   left    i >= j: LEAVE, also over dead (the leave was the truth).
 *   Suspect, dead and left name the address they are about: from another
 *   address than the member's, they are about a namesake, and are ignored.
 * About ourselves, suspect, dead, left, or an alive with a higher incarnation
 * or different tags, is a rumour: we refute it by announcing ourselves alive
 * at one more than the rumour's incarnation. Only we raise our incarnation, so
 * an alive at incarnation i can only come from the member itself. An alive
 * about us from another address is a namesake's: not refuted (the two would
 * outbid each other for ever), but a CONFLICT event; found in the answer to our
 * join, it means the name was taken before we came: NAME_TAKEN.
 * A push-pull's dead entries are taken as suspect (memberlist does the same):
 * one node's old verdict must not kill a member that can still refute it. */
#include "internal/discovery/membership_impl.h"

#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "internal/err/err.h"

/* ---- helpers ---- */

uint64_t plog_membership_rand(plog_membership *m)
{
    /* splitmix64 */
    uint64_t z = (m->rng += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static void copy_str(char *dst, size_t size, const char *src)
{
    size_t n = src == NULL ? 0 : strlen(src);
    if (n >= size)
        n = size - 1;
    if (n > 0)
        memcpy(dst, src, n);
    dst[n] = '\0';
}

static bool valid_tags(const plog_gossip_tag *tags, size_t n)
{
    if (n > PLOG_GOSSIP_MAX_TAGS || (n > 0 && tags == NULL))
        return false;
    size_t bytes = 0;
    for (size_t i = 0; i < n; i++) {
        if (!plog_gossip_is_valid_name(tags[i].key, PLOG_GOSSIP_MAX_KEY) || tags[i].value == NULL ||
            strlen(tags[i].value) > PLOG_GOSSIP_MAX_VALUE)
            return false;
        bytes += strlen(tags[i].key) + strlen(tags[i].value);
    }
    return bytes <= PLOG_GOSSIP_MAX_TAG_BYTES;
}

static bool tags_equal(const struct tagset *ts, const plog_gossip_tag *tags, size_t n)
{
    if (ts->n != n)
        return false;
    for (size_t i = 0; i < n; i++)
        if (strcmp(ts->t[i].key, tags[i].key) != 0 || strcmp(ts->t[i].value, tags[i].value) != 0)
            return false;
    return true;
}

/* tags_set copies tags into ts (one allocation). On ENOMEM ts is unchanged. */
static int tags_set(struct tagset *ts, const plog_gossip_tag *tags, size_t n)
{
    size_t size = 1;
    for (size_t i = 0; i < n; i++)
        size += strlen(tags[i].key) + strlen(tags[i].value) + 2;
    char *buf = malloc(size);
    if (buf == NULL)
        return PLOG_ENOMEM;
    char *p = buf;
    struct tagset nt = {.n = n, .buf = buf};
    for (size_t i = 0; i < n; i++) {
        size_t kl = strlen(tags[i].key) + 1, vl = strlen(tags[i].value) + 1;
        memcpy(p, tags[i].key, kl);
        nt.t[i].key = p;
        p += kl;
        memcpy(p, tags[i].value, vl);
        nt.t[i].value = p;
        p += vl;
    }
    free(ts->buf);
    *ts = nt;
    return PLOG_OK;
}

static void member_free(struct member *mb)
{
    if (mb != NULL)
        free(mb->tags.buf);
    free(mb);
}

/* copy_out fills out with a member's fields (tags beyond the limit dropped). */
static void copy_out(plog_membership_member *out, const char *name, const char *addr, uint8_t status,
                     uint64_t incarnation, const plog_gossip_tag *tags, size_t ntags)
{
    memset(out, 0, sizeof *out);
    copy_str(out->name, sizeof out->name, name);
    copy_str(out->addr, sizeof out->addr, addr);
    out->status = status;
    out->incarnation = incarnation;
    out->ntags = ntags < PLOG_GOSSIP_MAX_TAGS ? ntags : PLOG_GOSSIP_MAX_TAGS;
    for (size_t i = 0; i < out->ntags; i++) {
        copy_str(out->tags[i].key, sizeof out->tags[i].key, tags[i].key);
        copy_str(out->tags[i].value, sizeof out->tags[i].value, tags[i].value);
    }
}

static void member_copy_out(const struct member *mb, plog_membership_member *out)
{
    copy_out(out, mb->name, mb->addr, mb->status, mb->incarnation, mb->tags.t, mb->tags.n);
}

const char *plog_membership_tag(const plog_membership_member *mb, const char *key)
{
    for (size_t i = 0; i < mb->ntags; i++)
        if (strcmp(mb->tags[i].key, key) == 0)
            return mb->tags[i].value;
    return NULL;
}

void plog_membership_fill_state(const struct member *mb, plog_gossip_state *s)
{
    *s = (plog_gossip_state){
        .status = mb->status,
        .incarnation = mb->incarnation,
        .name = mb->name,
        .from = mb->status == PLOG_GOSSIP_SUSPECT || mb->status == PLOG_GOSSIP_DEAD ? mb->from : "",
        .addr = mb->addr,
        .tags = mb->tags.t,
        .ntags = mb->tags.n,
    };
}

struct member *plog_membership_lookup(const plog_membership *m, const char *name)
{
    for (size_t i = 0; i < m->nmembers; i++)
        if (strcmp(m->members[i]->name, name) == 0)
            return m->members[i];
    return NULL;
}

size_t plog_membership_live_count(const plog_membership *m)
{
    size_t n = 0;
    for (size_t i = 0; i < m->nmembers; i++)
        n += m->members[i]->status == PLOG_GOSSIP_ALIVE || m->members[i]->status == PLOG_GOSSIP_SUSPECT;
    return n;
}

/* event_new appends an event of type to the queue; NULL on ENOMEM (an event
 * lost; the member list itself is right). */
static plog_membership_event *event_new(plog_membership *m, uint64_t now, int type)
{
    if (m->ev_head > 0 && m->ev_head == m->ev_n)
        m->ev_head = m->ev_n = 0;
    if (m->ev_n == m->ev_cap) {
        size_t cap = m->ev_cap ? m->ev_cap * 2 : 16;
        plog_membership_event *ev = realloc(m->ev, cap * sizeof *ev);
        if (ev == NULL)
            return NULL;
        m->ev = ev;
        m->ev_cap = cap;
    }
    plog_membership_event *e = &m->ev[m->ev_n++];
    e->type = type;
    e->at_ms = now;
    return e;
}

static void emit(plog_membership *m, uint64_t now, int type, const struct member *mb)
{
    plog_membership_event *e = event_new(m, now, type);
    if (e != NULL)
        member_copy_out(mb, &e->member);
}

static void set_status(struct member *mb, uint8_t status, uint64_t now)
{
    if (mb->status != status)
        mb->change_ms = now;
    mb->status = status;
    if (status != PLOG_GOSSIP_SUSPECT)
        mb->nconfirm = 0, mb->susp_deadline = 0;
}

/* refute answers a rumour about us at incarnation inc. */
static void refute(plog_membership *m, uint64_t inc)
{
    struct member *self = m->self;
    if (inc >= self->incarnation)
        self->incarnation = inc + 1;
    else
        self->incarnation++;
    /* apply drops what only a wrap could answer (unanswerable). */
    assert(self->incarnation != 0);
    m->stats.refutations++;
    /* Lifeguard: being suspected hints that we are the slow one. */
    plog_membership_awareness(m, 1);
    plog_membership_bcast(m, self);
}

/* ---- the rules ---- */

/* conflict reports s, an alive claim to mb's name from another address, once
 * per claimant address: CONFLICT, or NAME_TAKEN when taken (mb is then ourselves
 * and s the holder's state, in the answer to our join). The event carries s. */
static void conflict(plog_membership *m, uint64_t now, struct member *mb, const plog_gossip_state *s,
                     bool taken)
{
    if (strcmp(mb->claimant, s->addr) == 0)
        return;
    copy_str(mb->claimant, sizeof mb->claimant, s->addr);
    plog_membership_event *e =
        event_new(m, now, taken ? PLOG_MEMBERSHIP_NAME_TAKEN : PLOG_MEMBERSHIP_CONFLICT);
    if (e != NULL)
        copy_out(&e->member, s->name, s->addr, s->status, s->incarnation, s->tags, s->ntags);
}

/* on_alive applies an alive claim; join_answer: it came in the answer to our
 * own push-pull before any other answer (our join). */
static void on_alive(plog_membership *m, uint64_t now, const plog_gossip_state *s, bool join_answer)
{
    struct member *mb = plog_membership_lookup(m, s->name);
    if (mb == m->self) {
        if (m->leaving)
            return;
        if (s->addr[0] != '\0' && strcmp(s->addr, mb->addr) != 0) {
            conflict(m, now, mb, s, join_answer);
            return;
        }
        if (s->incarnation > mb->incarnation ||
            (s->incarnation == mb->incarnation &&
             (strcmp(s->addr, mb->addr) != 0 || !tags_equal(&mb->tags, s->tags, s->ntags))))
            refute(m, s->incarnation);
        return;
    }
    if (s->addr[0] == '\0' || !valid_tags(s->tags, s->ntags))
        return; /* an alive must say where the member is */
    if (mb == NULL) {
        if (m->nmembers == MAX_MEMBERS)
            return;
        if (m->nmembers == m->capmembers) {
            size_t cap = m->capmembers * 2;
            struct member **a = realloc(m->members, cap * sizeof *a);
            if (a == NULL)
                return;
            m->members = a;
            m->capmembers = cap;
        }
        mb = calloc(1, sizeof *mb);
        if (mb == NULL || tags_set(&mb->tags, s->tags, s->ntags) != PLOG_OK) {
            free(mb);
            return;
        }
        copy_str(mb->name, sizeof mb->name, s->name);
        copy_str(mb->addr, sizeof mb->addr, s->addr);
        mb->incarnation = s->incarnation;
        mb->status = PLOG_GOSSIP_ALIVE;
        mb->change_ms = now;
        /* A random place in the probe order, so a newcomer is not always probed
         * last (memberlist: aliveNode's random offset). */
        size_t at = (size_t)(plog_membership_rand(m) % (m->nmembers + 1));
        m->members[m->nmembers++] = m->members[at];
        m->members[at] = mb;
        emit(m, now, PLOG_MEMBERSHIP_JOIN, mb);
        plog_membership_bcast(m, mb);
        return;
    }
    bool was_gone = mb->status == PLOG_GOSSIP_DEAD || mb->status == PLOG_GOSSIP_LEFT;
    if (!was_gone && strcmp(mb->addr, s->addr) != 0) {
        conflict(m, now, mb, s, false);
        return;
    }
    if (s->incarnation <= mb->incarnation)
        return;
    bool changed = !tags_equal(&mb->tags, s->tags, s->ntags);
    if (changed && tags_set(&mb->tags, s->tags, s->ntags) != PLOG_OK)
        return;
    copy_str(mb->addr, sizeof mb->addr, s->addr);
    mb->incarnation = s->incarnation;
    set_status(mb, PLOG_GOSSIP_ALIVE, now);
    if (was_gone)
        emit(m, now, PLOG_MEMBERSHIP_JOIN, mb);
    else if (changed)
        emit(m, now, PLOG_MEMBERSHIP_UPDATE, mb);
    plog_membership_bcast(m, mb);
}

/* namesake: s, a suspect, dead or left, is about another process than mb with
 * mb's name (another address; an empty one names none). */
static bool namesake(const struct member *mb, const plog_gossip_state *s)
{
    return s->addr[0] != '\0' && strcmp(s->addr, mb->addr) != 0;
}

/* rumour_about_self handles suspect, dead or left about us. */
static void rumour_about_self(plog_membership *m, const plog_gossip_state *s)
{
    if (m->leaving)
        return;
    if (s->incarnation >= m->self->incarnation)
        refute(m, s->incarnation);
    else
        /* Old news, but its sender missed our refutation (the refutation's
         * retransmits can all be lost): say it again, on the answer too. */
        plog_membership_bcast(m, m->self);
}

void plog_membership_on_suspect(plog_membership *m, uint64_t now, const plog_gossip_state *s)
{
    struct member *mb = plog_membership_lookup(m, s->name);
    if (mb == m->self) {
        rumour_about_self(m, s);
        return;
    }
    if (mb == NULL || s->incarnation < mb->incarnation || namesake(mb, s))
        return;
    if (mb->status == PLOG_GOSSIP_DEAD || mb->status == PLOG_GOSSIP_LEFT)
        return;
    if (mb->status == PLOG_GOSSIP_SUSPECT && s->incarnation == mb->incarnation) {
        /* Re-gossip only what changed our mind, so confirmations spread. */
        if (plog_membership_confirm_suspicion(m, mb, s->from)) {
            copy_str(mb->from, sizeof mb->from, s->from);
            plog_membership_bcast(m, mb);
        }
        return;
    }
    mb->incarnation = s->incarnation;
    copy_str(mb->from, sizeof mb->from, s->from);
    set_status(mb, PLOG_GOSSIP_SUSPECT, now);
    plog_membership_start_suspicion(m, mb, now);
    plog_membership_bcast(m, mb);
}

void plog_membership_on_dead(plog_membership *m, uint64_t now, const plog_gossip_state *s)
{
    struct member *mb = plog_membership_lookup(m, s->name);
    if (mb == m->self) {
        rumour_about_self(m, s);
        return;
    }
    if (mb == NULL || s->incarnation < mb->incarnation || namesake(mb, s))
        return;
    if (mb->status == PLOG_GOSSIP_LEFT)
        return;
    if (mb->status == PLOG_GOSSIP_DEAD && s->status == PLOG_GOSSIP_DEAD)
        return;
    mb->incarnation = s->incarnation;
    copy_str(mb->from, sizeof mb->from, s->from);
    set_status(mb, s->status, now);
    emit(m, now, s->status == PLOG_GOSSIP_LEFT ? PLOG_MEMBERSHIP_LEAVE : PLOG_MEMBERSHIP_FAILED, mb);
    plog_membership_bcast(m, mb);
}

/* unanswerable: s is a rumour no refutation can beat. A suspect, dead or left
 * at the largest incarnation, or an alive about us there, would need us at one
 * more: refute's sum wrapped to 0, and one message from any node allowed to
 * gossip (or a corrupted one) left a member dead everywhere for good, even
 * after its restart (its start incarnation is the clock's seconds). No member
 * reaches that incarnation by itself, so the rumour is dropped. */
static bool unanswerable(const plog_membership *m, const plog_gossip_state *s)
{
    if (s->incarnation != UINT64_MAX)
        return false;
    return s->status != PLOG_GOSSIP_ALIVE || strcmp(s->name, m->self->name) == 0;
}

/* apply applies one update; join_answer as for on_alive. */
static void apply(plog_membership *m, uint64_t now, const plog_gossip_state *s, bool from_push_pull,
                  bool join_answer)
{
    if (unanswerable(m, s))
        return;
    switch (s->status) {
    case PLOG_GOSSIP_ALIVE:
        on_alive(m, now, s, join_answer);
        break;
    case PLOG_GOSSIP_SUSPECT:
        plog_membership_on_suspect(m, now, s);
        break;
    case PLOG_GOSSIP_DEAD:
        if (from_push_pull)
            plog_membership_on_suspect(m, now, s);
        else
            plog_membership_on_dead(m, now, s);
        break;
    case PLOG_GOSSIP_LEFT:
        plog_membership_on_dead(m, now, s);
        break;
    }
}

/* plog_membership_reap_and_shuffle starts a probe round: members dead or left
 * for reap_ms are forgotten, the rest reshuffled (Fisher-Yates). */
void plog_membership_reap_and_shuffle(plog_membership *m, uint64_t now)
{
    size_t w = 0;
    for (size_t i = 0; i < m->nmembers; i++) {
        struct member *mb = m->members[i];
        if ((mb->status == PLOG_GOSSIP_DEAD || mb->status == PLOG_GOSSIP_LEFT) && mb != m->self &&
            now - mb->change_ms >= m->cfg.reap_ms)
            member_free(mb);
        else
            m->members[w++] = mb;
    }
    m->nmembers = w;
    for (size_t i = m->nmembers; i > 1; i--) {
        size_t j = (size_t)(plog_membership_rand(m) % i);
        struct member *t = m->members[i - 1];
        m->members[i - 1] = m->members[j];
        m->members[j] = t;
    }
    m->probe_index = 0;
}

/* ---- config ---- */

void plog_membership_config_lan(plog_membership_config *c)
{
    *c = (plog_membership_config){
        .probe_interval_ms = 1000,
        .probe_timeout_ms = 500,
        .indirect_checks = 3,
        .suspicion_mult = 4,
        .suspicion_max_mult = 6,
        .awareness_max = 8,
        .retransmit_mult = 4,
        .gossip_interval_ms = 200,
        .gossip_nodes = 3,
        .push_pull_interval_ms = 30000,
        .reconnect_interval_ms = 30000,
        .join_retry_ms = 1000,
        .reap_ms = 24u * 3600 * 1000,
        .max_piggyback_bytes = 1400,
    };
}

void plog_membership_config_fast(plog_membership_config *c)
{
    plog_membership_config_lan(c);
    c->probe_interval_ms = 100;
    c->probe_timeout_ms = 50;
    c->gossip_interval_ms = 30;
    c->push_pull_interval_ms = 2000;
    c->reconnect_interval_ms = 1000;
    c->join_retry_ms = 200;
    c->reap_ms = 60000;
}

static bool valid_config(const plog_membership_config *c)
{
    return plog_gossip_is_valid_name(c->name, PLOG_GOSSIP_MAX_NAME) &&
           plog_gossip_is_valid_name(c->addr, PLOG_GOSSIP_MAX_ADDR) && valid_tags(c->tags, c->ntags) &&
           c->probe_interval_ms > 0 && c->probe_timeout_ms > 0 &&
           c->probe_timeout_ms < c->probe_interval_ms && c->suspicion_mult > 0 &&
           c->suspicion_max_mult >= 1 && c->awareness_max >= 1 && c->retransmit_mult > 0 &&
           c->gossip_interval_ms > 0 && c->push_pull_interval_ms > 0 && c->reconnect_interval_ms > 0 &&
           c->join_retry_ms > 0 && c->reap_ms > 0 && c->max_piggyback_bytes >= 256 &&
           c->max_piggyback_bytes <= PLOG_GOSSIP_MAX_MSG;
}

/* ---- API ---- */

int plog_membership_new(const plog_membership_config *c, uint64_t now_ms, plog_membership **out)
{
    if (c == NULL || !valid_config(c))
        return PLOG_EINVAL;
    plog_membership *m = calloc(1, sizeof *m);
    if (m == NULL)
        return PLOG_ENOMEM;
    m->cfg = *c;
    m->rng = c->seed;
    m->capmembers = 16;
    m->members = calloc(m->capmembers, sizeof *m->members);
    m->self = calloc(1, sizeof *m->self);
    if (m->members == NULL || m->self == NULL || tags_set(&m->self->tags, c->tags, c->ntags) != PLOG_OK)
        goto fail;
    copy_str(m->self->name, sizeof m->self->name, c->name);
    copy_str(m->self->addr, sizeof m->self->addr, c->addr);
    m->self->status = PLOG_GOSSIP_ALIVE;
    m->self->incarnation = c->incarnation;
    m->self->change_ms = now_ms;
    m->members[m->nmembers++] = m->self;
    m->cfg.name = m->self->name;
    m->cfg.addr = m->self->addr;
    m->cfg.tags = m->self->tags.t;
    /* Spread the first probe and push-pull over an interval, so nodes started
     * together do not act in lockstep. */
    m->next_probe = now_ms + plog_membership_rand(m) % c->probe_interval_ms;
    m->next_gossip = now_ms;
    m->next_push_pull =
        now_ms + c->push_pull_interval_ms / 2 + plog_membership_rand(m) % (c->push_pull_interval_ms / 2 + 1);
    m->next_reconnect =
        now_ms + c->reconnect_interval_ms / 2 + plog_membership_rand(m) % (c->reconnect_interval_ms / 2 + 1);
    *out = m;
    return PLOG_OK;
fail:
    plog_membership_free(m);
    return PLOG_ENOMEM;
}

void plog_membership_free(plog_membership *m)
{
    if (m == NULL)
        return;
    bool self_listed = false;
    for (size_t i = 0; i < m->nmembers; i++) {
        self_listed |= m->members[i] == m->self;
        member_free(m->members[i]);
    }
    if (!self_listed)
        member_free(m->self);
    for (size_t i = m->out_head; i < m->out_n; i++)
        free(m->out[i].data);
    free(m->out);
    free(m->ev);
    free(m->members);
    free(m);
}

int plog_membership_join(plog_membership *m, uint64_t now_ms, const char *const *addrs, size_t n)
{
    if (n > MAX_SEEDS || (n > 0 && addrs == NULL))
        return PLOG_EINVAL;
    for (size_t i = 0; i < n; i++)
        if (!plog_gossip_is_valid_name(addrs[i], PLOG_GOSSIP_MAX_ADDR))
            return PLOG_EINVAL;
    m->nseeds = 0;
    for (size_t i = 0; i < n; i++)
        if (strcmp(addrs[i], m->self->addr) != 0)
            copy_str(m->seeds[m->nseeds++], sizeof m->seeds[0], addrs[i]);
    m->contacted = false;
    m->seed_cursor = 0;
    for (size_t i = 0; i < m->nseeds; i++)
        plog_membership_send_push_pull(m, m->seeds[i], PLOG_GOSSIP_FLAG_JOIN);
    m->next_join = now_ms + m->cfg.join_retry_ms;
    return PLOG_OK;
}

int plog_membership_recv(plog_membership *m, uint64_t now_ms, const uint8_t *buf, size_t len)
{
    return plog_membership_recv_from(m, now_ms, NULL, buf, len);
}

int plog_membership_recv_from(plog_membership *m, uint64_t now_ms, const char *peer, const uint8_t *buf,
                              size_t len)
{
    plog_gossip_msg msg;
    int rv = plog_gossip_decode(buf, len, &msg);
    if (rv != PLOG_OK) {
        if (rv != PLOG_ENOMEM)
            m->stats.bad_in++;
        return rv;
    }
    if (peer != NULL && strcmp(peer, msg.from) != 0) {
        m->stats.bad_in++;
        plog_gossip_release(&msg);
        return PLOG_EPERM;
    }
    m->stats.msgs_in++;
    bool pp = msg.type == PLOG_GOSSIP_PUSH_PULL;
    bool join_answer = pp && (msg.flags & PLOG_GOSSIP_FLAG_REPLY) && !m->contacted;
    for (size_t i = 0; i < msg.nstates; i++)
        apply(m, now_ms, &msg.states[i], pp, join_answer);
    switch (msg.type) {
    case PLOG_GOSSIP_PING:
        plog_membership_on_ping(m, now_ms, &msg);
        break;
    case PLOG_GOSSIP_PING_REQ:
        plog_membership_on_ping_req(m, now_ms, &msg);
        break;
    case PLOG_GOSSIP_ACK:
        plog_membership_on_ack(m, now_ms, &msg);
        break;
    case PLOG_GOSSIP_NACK:
        plog_membership_on_nack(m, &msg);
        break;
    case PLOG_GOSSIP_PUSH_PULL:
        /* Answer after merging, so the reply already carries our refutations
         * of whatever the sender believed about us. */
        if (msg.flags & PLOG_GOSSIP_FLAG_REPLY)
            m->contacted = true;
        else
            plog_membership_send_push_pull(m, msg.from_addr, PLOG_GOSSIP_FLAG_REPLY);
        break;
    default:
        break;
    }
    plog_gossip_release(&msg);
    return PLOG_OK;
}

void plog_membership_tick(plog_membership *m, uint64_t now_ms)
{
    /* Suspicion timeouts: our own verdict. */
    for (size_t i = 0; i < m->nmembers; i++) {
        struct member *mb = m->members[i];
        if (mb->status == PLOG_GOSSIP_SUSPECT && now_ms >= mb->susp_deadline) {
            plog_gossip_state s;
            plog_membership_fill_state(mb, &s);
            s.status = PLOG_GOSSIP_DEAD;
            s.from = m->self->name;
            plog_membership_on_dead(m, now_ms, &s);
        }
    }
    plog_membership_probe_tick(m, now_ms);
    if (m->leaving)
        return;
    plog_membership_gossip_tick(m, now_ms);
    if (!m->contacted && m->nseeds > 0 && now_ms >= m->next_join) {
        for (size_t i = 0; i < m->nseeds; i++)
            plog_membership_send_push_pull(m, m->seeds[i], PLOG_GOSSIP_FLAG_JOIN);
        m->next_join = now_ms + m->cfg.join_retry_ms;
    }
    if (now_ms >= m->next_push_pull) {
        m->next_push_pull = now_ms + m->cfg.push_pull_interval_ms;
        struct member *c = NULL;
        size_t n = 0;
        for (size_t i = 0; i < m->nmembers; i++)
            if (m->members[i] != m->self && m->members[i]->status == PLOG_GOSSIP_ALIVE)
                n++;
        if (n > 0) {
            size_t pick = (size_t)(plog_membership_rand(m) % n);
            for (size_t i = 0; i < m->nmembers; i++)
                if (m->members[i] != m->self && m->members[i]->status == PLOG_GOSSIP_ALIVE && pick-- == 0)
                    c = m->members[i];
            m->stats.push_pulls++;
            plog_membership_send_push_pull(m, c->addr, 0);
        }
    }
    if (now_ms >= m->next_reconnect) {
        m->next_reconnect = now_ms + m->cfg.reconnect_interval_ms;
        size_t live = plog_membership_live_count(m), dead = 0;
        for (size_t i = 0; i < m->nmembers; i++)
            dead += m->members[i]->status == PLOG_GOSSIP_DEAD;
        if (live <= 1 && m->nseeds > 0) {
            plog_membership_send_push_pull(m, m->seeds[m->seed_cursor++ % m->nseeds], PLOG_GOSSIP_FLAG_JOIN);
        } else if (dead > 0) {
            /* Serf's reconnect: a failed member may only be on the other
             * side of a partition. Left members chose to go; not them. */
            size_t pick = (size_t)(plog_membership_rand(m) % dead);
            for (size_t i = 0; i < m->nmembers; i++)
                if (m->members[i]->status == PLOG_GOSSIP_DEAD && pick-- == 0) {
                    plog_membership_send_push_pull(m, m->members[i]->addr, 0);
                    break;
                }
        }
    }
}

uint64_t plog_membership_next_deadline(const plog_membership *m)
{
    uint64_t d = plog_membership_probe_deadline(m);
    for (size_t i = 0; i < m->nmembers; i++)
        if (m->members[i]->status == PLOG_GOSSIP_SUSPECT && m->members[i]->susp_deadline < d)
            d = m->members[i]->susp_deadline;
    if (m->leaving)
        return d;
    if (plog_membership_has_pending(m) && m->next_gossip < d)
        d = m->next_gossip;
    if (!m->contacted && m->nseeds > 0 && m->next_join < d)
        d = m->next_join;
    if (m->next_push_pull < d)
        d = m->next_push_pull;
    if (m->next_reconnect < d)
        d = m->next_reconnect;
    return d;
}

int plog_membership_leave(plog_membership *m, uint64_t now_ms)
{
    if (m->leaving)
        return PLOG_OK;
    m->leaving = true;
    m->self->incarnation++;
    set_status(m->self, PLOG_GOSSIP_LEFT, now_ms);
    plog_membership_bcast(m, m->self);
    /* Tell everyone at once: a leave must not wait on gossip rounds. */
    for (size_t i = 0; i < m->nmembers; i++) {
        struct member *mb = m->members[i];
        if (mb == m->self || (mb->status != PLOG_GOSSIP_ALIVE && mb->status != PLOG_GOSSIP_SUSPECT))
            continue;
        plog_gossip_state s;
        plog_membership_fill_state(m->self, &s);
        plog_gossip_msg msg = {.type = PLOG_GOSSIP_GOSSIP, .states = &s, .nstates = 1};
        plog_membership_send_msg(m, mb->addr, &msg, false);
    }
    return PLOG_OK;
}

int plog_membership_set_tags(plog_membership *m, uint64_t now_ms, const plog_gossip_tag *tags, size_t ntags)
{
    (void)now_ms;
    if (!valid_tags(tags, ntags))
        return PLOG_EINVAL;
    int rv = tags_set(&m->self->tags, tags, ntags);
    if (rv != PLOG_OK)
        return rv;
    m->cfg.tags = m->self->tags.t;
    m->cfg.ntags = ntags;
    m->self->incarnation++;
    plog_membership_bcast(m, m->self);
    return PLOG_OK;
}

bool plog_membership_pop_send(plog_membership *m, plog_membership_send *out)
{
    if (m->out_head == m->out_n)
        return false;
    *out = m->out[m->out_head++];
    if (m->out_head == m->out_n)
        m->out_head = m->out_n = 0;
    return true;
}

bool plog_membership_pop_event(plog_membership *m, plog_membership_event *out)
{
    if (m->ev_head == m->ev_n)
        return false;
    *out = m->ev[m->ev_head++];
    if (m->ev_head == m->ev_n)
        m->ev_head = m->ev_n = 0;
    return true;
}

size_t plog_membership_count(const plog_membership *m)
{
    return m->nmembers;
}

void plog_membership_get(const plog_membership *m, size_t i, plog_membership_member *out)
{
    member_copy_out(m->members[i], out);
}

bool plog_membership_find(const plog_membership *m, const char *name, plog_membership_member *out)
{
    const struct member *mb = plog_membership_lookup(m, name);
    if (mb == NULL)
        return false;
    member_copy_out(mb, out);
    return true;
}

uint64_t plog_membership_self_incarnation(const plog_membership *m)
{
    return m->self->incarnation;
}

void plog_membership_get_stats(const plog_membership *m, plog_membership_stats *out)
{
    *out = m->stats;
    out->awareness = m->awareness;
}
