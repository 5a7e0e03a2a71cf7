/* gossip.c - wire codec of the membership messages (see gossip.h).
 *
 * All integers big-endian. A str8 is a u8 length then that many bytes (no NUL).
 *
 *   0: u8  version (1)          | 1: u8 type   | 2: u8 flags (push-pull only, else 0)
 *   3: u32 seq                  | 7: str8 from (1..64) | str8 from_addr (1..128)
 *   ping:      str8 target (1..64)
 *   ping-req:  str8 target (1..64) | str8 target_addr (1..128)
 *   then:      u16 nstates (<= 512) and nstates records:
 *     u8 status (1..4) | u64 incarnation | str8 name (1..64) | str8 from (0..64)
 *     | str8 addr (0..128) | u8 ntags (<= 16) | ntags x (str8 key (1..64), str8 value (0..255))
 *   nothing after the last record.
 *
 * Decoding runs the same parser twice: once to check and count (how many
 * records, tags and string bytes), then, after one malloc of exactly that
 * size, to fill the message. Nothing is allocated for input that fails. */
#include "internal/discovery/gossip.h"

#include <stdlib.h>
#include <string.h>

#include "internal/err/err.h"

const char *plog_gossip_type_name(int type)
{
    static const char *names[] = {"?", "ping", "ack", "ping-req", "nack", "gossip", "push-pull"};
    return type >= 1 && type <= PLOG_GOSSIP_PUSH_PULL ? names[type] : "?";
}

const char *plog_gossip_status_name(int status)
{
    static const char *names[] = {"?", "alive", "suspect", "dead", "left"};
    return status >= 1 && status <= PLOG_GOSSIP_LEFT ? names[status] : "?";
}

bool plog_gossip_is_valid_name(const char *s, size_t max)
{
    if (s == NULL)
        return false;
    size_t n = 0;
    for (; s[n] != '\0'; n++)
        if (n >= max || (unsigned char)s[n] < 0x21 || (unsigned char)s[n] > 0x7e)
            return false;
    return n > 0;
}

static size_t slen(const char *s)
{
    return s == NULL ? 0 : strlen(s);
}

size_t plog_gossip_state_size(const plog_gossip_state *s)
{
    size_t n = 1 + 8 + 1 + slen(s->name) + 1 + slen(s->from) + 1 + slen(s->addr) + 1;
    for (size_t i = 0; i < s->ntags; i++)
        n += 2 + slen(s->tags[i].key) + slen(s->tags[i].value);
    return n;
}

size_t plog_gossip_size(const plog_gossip_msg *m)
{
    size_t n = 7 + 1 + slen(m->from) + 1 + slen(m->from_addr) + 2;
    if (m->type == PLOG_GOSSIP_PING)
        n += 1 + slen(m->target);
    if (m->type == PLOG_GOSSIP_PING_REQ)
        n += 1 + slen(m->target) + 1 + slen(m->target_addr);
    for (size_t i = 0; i < m->nstates; i++)
        n += plog_gossip_state_size(&m->states[i]);
    return n;
}

/* ---- encoding ---- */

static bool valid_opt(const char *s, size_t max)
{
    return s == NULL || s[0] == '\0' || plog_gossip_is_valid_name(s, max);
}

static bool valid_state(const plog_gossip_state *s)
{
    if (s->status < PLOG_GOSSIP_ALIVE || s->status > PLOG_GOSSIP_LEFT)
        return false;
    if (!plog_gossip_is_valid_name(s->name, PLOG_GOSSIP_MAX_NAME) ||
        !valid_opt(s->from, PLOG_GOSSIP_MAX_NAME) || !valid_opt(s->addr, PLOG_GOSSIP_MAX_ADDR) ||
        s->ntags > PLOG_GOSSIP_MAX_TAGS)
        return false;
    size_t bytes = 0;
    for (size_t i = 0; i < s->ntags; i++) {
        size_t vl = slen(s->tags[i].value);
        if (!plog_gossip_is_valid_name(s->tags[i].key, PLOG_GOSSIP_MAX_KEY) || vl > PLOG_GOSSIP_MAX_VALUE)
            return false;
        bytes += strlen(s->tags[i].key) + vl;
    }
    return bytes <= PLOG_GOSSIP_MAX_TAG_BYTES;
}

static uint8_t *put_str(uint8_t *p, const char *s)
{
    size_t n = slen(s);
    *p++ = (uint8_t)n;
    if (n > 0)
        memcpy(p, s, n);
    return p + n;
}

static uint8_t *put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--)
        *p++ = (uint8_t)(v >> (8 * i));
    return p;
}

int plog_gossip_encode(const plog_gossip_msg *m, uint8_t *buf, size_t cap, size_t *len)
{
    if (m->type < PLOG_GOSSIP_PING || m->type > PLOG_GOSSIP_PUSH_PULL || m->nstates > PLOG_GOSSIP_MAX_STATES)
        return PLOG_EINVAL;
    if ((m->flags & ~(PLOG_GOSSIP_FLAG_JOIN | PLOG_GOSSIP_FLAG_REPLY)) != 0 ||
        (m->flags != 0 && m->type != PLOG_GOSSIP_PUSH_PULL))
        return PLOG_EINVAL;
    if (!plog_gossip_is_valid_name(m->from, PLOG_GOSSIP_MAX_NAME) ||
        !plog_gossip_is_valid_name(m->from_addr, PLOG_GOSSIP_MAX_ADDR))
        return PLOG_EINVAL;
    if ((m->type == PLOG_GOSSIP_PING || m->type == PLOG_GOSSIP_PING_REQ) &&
        !plog_gossip_is_valid_name(m->target, PLOG_GOSSIP_MAX_NAME))
        return PLOG_EINVAL;
    if (m->type == PLOG_GOSSIP_PING_REQ && !plog_gossip_is_valid_name(m->target_addr, PLOG_GOSSIP_MAX_ADDR))
        return PLOG_EINVAL;
    for (size_t i = 0; i < m->nstates; i++)
        if (!valid_state(&m->states[i]))
            return PLOG_EINVAL;
    size_t n = plog_gossip_size(m);
    if (n > PLOG_GOSSIP_MAX_MSG || n > cap)
        return PLOG_ETOOBIG;

    uint8_t *p = buf;
    *p++ = PLOG_GOSSIP_VERSION;
    *p++ = m->type;
    *p++ = m->flags;
    *p++ = (uint8_t)(m->seq >> 24), *p++ = (uint8_t)(m->seq >> 16), *p++ = (uint8_t)(m->seq >> 8);
    *p++ = (uint8_t)m->seq;
    p = put_str(p, m->from);
    p = put_str(p, m->from_addr);
    if (m->type == PLOG_GOSSIP_PING || m->type == PLOG_GOSSIP_PING_REQ)
        p = put_str(p, m->target);
    if (m->type == PLOG_GOSSIP_PING_REQ)
        p = put_str(p, m->target_addr);
    *p++ = (uint8_t)(m->nstates >> 8), *p++ = (uint8_t)m->nstates;
    for (size_t i = 0; i < m->nstates; i++) {
        const plog_gossip_state *s = &m->states[i];
        *p++ = s->status;
        p = put_u64(p, s->incarnation);
        p = put_str(p, s->name);
        p = put_str(p, s->from);
        p = put_str(p, s->addr);
        *p++ = (uint8_t)s->ntags;
        for (size_t t = 0; t < s->ntags; t++) {
            p = put_str(p, s->tags[t].key);
            p = put_str(p, s->tags[t].value);
        }
    }
    *len = (size_t)(p - buf);
    return PLOG_OK;
}

int plog_gossip_encode_alloc(const plog_gossip_msg *m, uint8_t **out, size_t *len)
{
    if (m->nstates > PLOG_GOSSIP_MAX_STATES)
        return PLOG_EINVAL;
    size_t n = plog_gossip_size(m);
    if (n > PLOG_GOSSIP_MAX_MSG)
        return PLOG_ETOOBIG;
    uint8_t *buf = malloc(n);
    if (buf == NULL)
        return PLOG_ENOMEM;
    int rv = plog_gossip_encode(m, buf, n, len);
    if (rv != PLOG_OK) {
        free(buf);
        return rv;
    }
    *out = buf;
    return PLOG_OK;
}

/* ---- decoding ---- */

/* A parse: the input cursor, and in the second pass where records, tags and
 * strings go. In the first pass (fill false) only the counters move. */
struct parse {
    const uint8_t *p, *end;
    bool fill;
    size_t nstates, ntags, strbytes;
    plog_gossip_state *states;
    plog_gossip_tag *tags;
    char *str;
};

enum { NAME_RULE, VALUE_RULE };

/* get_str reads a str8 of min..max bytes following rule into *out (fill pass). */
static bool get_str(struct parse *ps, size_t min, size_t max, int rule, const char **out)
{
    if (ps->p >= ps->end)
        return false;
    size_t n = *ps->p++;
    if (n < min || n > max || n > (size_t)(ps->end - ps->p))
        return false;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = ps->p[i];
        if (rule == NAME_RULE ? (c < 0x21 || c > 0x7e) : c == 0)
            return false;
    }
    if (ps->fill) {
        memcpy(ps->str, ps->p, n);
        ps->str[n] = '\0';
        *out = ps->str;
        ps->str += n + 1;
    } else {
        ps->strbytes += n + 1;
    }
    ps->p += n;
    return true;
}

static bool get_u8(struct parse *ps, uint8_t *v)
{
    if (ps->p >= ps->end)
        return false;
    *v = *ps->p++;
    return true;
}

static bool get_be(struct parse *ps, int bytes, uint64_t *v)
{
    if ((ptrdiff_t)bytes > ps->end - ps->p)
        return false;
    uint64_t x = 0;
    for (int i = 0; i < bytes; i++)
        x = x << 8 | ps->p[i];
    ps->p += bytes;
    *v = x;
    return true;
}

static bool parse_state(struct parse *ps, plog_gossip_state *s)
{
    uint8_t status, ntags;
    uint64_t inc;
    if (!get_u8(ps, &status) || status < PLOG_GOSSIP_ALIVE || status > PLOG_GOSSIP_LEFT)
        return false;
    if (!get_be(ps, 8, &inc))
        return false;
    s->status = status;
    s->incarnation = inc;
    if (!get_str(ps, 1, PLOG_GOSSIP_MAX_NAME, NAME_RULE, &s->name) ||
        !get_str(ps, 0, PLOG_GOSSIP_MAX_NAME, NAME_RULE, &s->from) ||
        !get_str(ps, 0, PLOG_GOSSIP_MAX_ADDR, NAME_RULE, &s->addr))
        return false;
    if (!get_u8(ps, &ntags) || ntags > PLOG_GOSSIP_MAX_TAGS)
        return false;
    s->ntags = ntags;
    s->tags = ps->fill ? ps->tags : NULL;
    size_t bytes = 0;
    for (size_t t = 0; t < ntags; t++) {
        plog_gossip_tag tag = {NULL, NULL};
        const uint8_t *before = ps->p;
        if (!get_str(ps, 1, PLOG_GOSSIP_MAX_KEY, NAME_RULE, &tag.key) ||
            !get_str(ps, 0, PLOG_GOSSIP_MAX_VALUE, VALUE_RULE, &tag.value))
            return false;
        bytes += (size_t)(ps->p - before) - 2;
        if (ps->fill)
            *ps->tags++ = tag;
        else
            ps->ntags++;
    }
    return bytes <= PLOG_GOSSIP_MAX_TAG_BYTES;
}

static bool parse_msg(struct parse *ps, plog_gossip_msg *m)
{
    uint8_t type, flags;
    uint64_t seq, nstates;
    ps->p++; /* version, checked by the caller */
    if (!get_u8(ps, &type) || type < PLOG_GOSSIP_PING || type > PLOG_GOSSIP_PUSH_PULL)
        return false;
    if (!get_u8(ps, &flags) || (flags & ~(PLOG_GOSSIP_FLAG_JOIN | PLOG_GOSSIP_FLAG_REPLY)) != 0 ||
        (flags != 0 && type != PLOG_GOSSIP_PUSH_PULL))
        return false;
    if (!get_be(ps, 4, &seq))
        return false;
    m->type = type;
    m->flags = flags;
    m->seq = (uint32_t)seq;
    if (!get_str(ps, 1, PLOG_GOSSIP_MAX_NAME, NAME_RULE, &m->from) ||
        !get_str(ps, 1, PLOG_GOSSIP_MAX_ADDR, NAME_RULE, &m->from_addr))
        return false;
    if ((type == PLOG_GOSSIP_PING || type == PLOG_GOSSIP_PING_REQ) &&
        !get_str(ps, 1, PLOG_GOSSIP_MAX_NAME, NAME_RULE, &m->target))
        return false;
    if (type == PLOG_GOSSIP_PING_REQ && !get_str(ps, 1, PLOG_GOSSIP_MAX_ADDR, NAME_RULE, &m->target_addr))
        return false;
    if (!get_be(ps, 2, &nstates) || nstates > PLOG_GOSSIP_MAX_STATES)
        return false;
    m->nstates = (size_t)nstates;
    m->states = ps->states;
    for (size_t i = 0; i < nstates; i++) {
        plog_gossip_state s;
        if (!parse_state(ps, &s))
            return false;
        if (ps->fill)
            ps->states[i] = s;
        else
            ps->nstates++;
    }
    return ps->p == ps->end;
}

int plog_gossip_decode(const uint8_t *buf, size_t len, plog_gossip_msg *m)
{
    if (len > PLOG_GOSSIP_MAX_MSG)
        return PLOG_ETOOBIG;
    if (len == 0)
        return PLOG_ECORRUPT;
    if (buf[0] != PLOG_GOSSIP_VERSION)
        return PLOG_EVERSION;

    plog_gossip_msg tmp = {0};
    struct parse ps = {.p = buf, .end = buf + len};
    if (!parse_msg(&ps, &tmp))
        return PLOG_ECORRUPT;
    /* Each record and tag is at least a few input bytes, so this is bounded by
     * a small multiple of len. The empty string is shared: +1 byte. */
    size_t size =
        ps.nstates * sizeof(plog_gossip_state) + ps.ntags * sizeof(plog_gossip_tag) + ps.strbytes + 1;
    void *mem = malloc(size);
    if (mem == NULL)
        return PLOG_ENOMEM;
    struct parse fill = {.p = buf, .end = buf + len, .fill = true};
    fill.states = mem;
    fill.tags = (plog_gossip_tag *)(fill.states + ps.nstates);
    fill.str = (char *)(fill.tags + ps.ntags);
    char *empty = fill.str++;
    *empty = '\0';
    tmp = (plog_gossip_msg){.from = empty, .from_addr = empty, .target = empty, .target_addr = empty};
    bool ok = parse_msg(&fill, &tmp);
    (void)ok; /* the first pass accepted the same bytes */
    tmp.mem_ = mem;
    *m = tmp;
    return PLOG_OK;
}

void plog_gossip_release(plog_gossip_msg *m)
{
    if (m == NULL)
        return;
    free(m->mem_);
    m->mem_ = NULL;
    m->states = NULL;
    m->nstates = 0;
}
