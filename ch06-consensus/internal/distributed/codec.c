/* codec.c - the Raft message codec of codec.h. */
#include "internal/distributed/codec.h"

#include <stdlib.h>
#include <string.h>

#include "internal/err/err.h"

#define FIXED (1 + 1 + 8 * 6 + 1 + 8 * 3 + 4)
#define ENTRY_HDR (8 + 8 + 1 + 4)
#define TAIL (4 + 8 + 8 + 4 + 1)

static size_t addr_len(const char *a)
{
    size_t n = a != NULL ? strlen(a) : 0;
    return n > PLOG_DISTRIBUTED_ADDR_MAX ? PLOG_DISTRIBUTED_ADDR_MAX : n;
}

size_t plog_distributed_msg_size(const plog_raft_msg *m, const char *from_addr)
{
    size_t n = FIXED + TAIL + m->len + 2 + addr_len(from_addr) + 8;
    for (size_t i = 0; i < m->n_entries; i++)
        n += ENTRY_HDR + m->entries[i].len;
    uint8_t conf[PLOG_RAFT_CONF_MAX_BYTES];
    return n + plog_raft_conf_encode(&m->conf, conf);
}

static uint8_t *put64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
    return p + 8;
}

static uint8_t *put32(uint8_t *p, uint32_t v)
{
    for (int i = 3; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
    return p + 4;
}

void plog_distributed_msg_encode(const plog_raft_msg *m, const char *from_addr, uint64_t cluster, uint8_t *p)
{
    *p++ = PLOG_DISTRIBUTED_CODEC_VERSION;
    *p++ = m->type;
    p = put64(p, m->from);
    p = put64(p, m->to);
    p = put64(p, m->term);
    p = put64(p, m->index);
    p = put64(p, m->log_term);
    p = put64(p, m->commit);
    *p++ = m->reject ? 1 : 0;
    p = put64(p, m->hint_index);
    p = put64(p, m->hint_term);
    p = put64(p, m->ctx);
    p = put32(p, (uint32_t)m->n_entries);
    for (size_t i = 0; i < m->n_entries; i++) {
        const plog_raft_entry *e = &m->entries[i];
        p = put64(p, e->term);
        p = put64(p, e->index);
        *p++ = e->type;
        p = put32(p, (uint32_t)e->len);
        if (e->len > 0)
            memcpy(p, e->data, e->len);
        p += e->len;
    }
    uint8_t conf[PLOG_RAFT_CONF_MAX_BYTES];
    size_t clen = plog_raft_conf_encode(&m->conf, conf);
    p = put32(p, (uint32_t)clen);
    memcpy(p, conf, clen);
    p += clen;
    p = put64(p, m->offset);
    p = put64(p, m->total);
    p = put32(p, (uint32_t)m->len);
    if (m->len > 0)
        memcpy(p, m->data, m->len);
    p += m->len;
    *p++ = m->done ? 1 : 0;
    size_t al = addr_len(from_addr);
    *p++ = (uint8_t)(al >> 8);
    *p++ = (uint8_t)al;
    if (al > 0)
        memcpy(p, from_addr, al);
    put64(p + al, cluster);
}

struct rd {
    const uint8_t *p, *end;
    bool bad;
};

static uint64_t get64(struct rd *r)
{
    if (r->end - r->p < 8) {
        r->bad = true;
        return 0;
    }
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | r->p[i];
    r->p += 8;
    return v;
}

static uint32_t get32(struct rd *r)
{
    if (r->end - r->p < 4) {
        r->bad = true;
        return 0;
    }
    uint32_t v = (uint32_t)r->p[0] << 24 | (uint32_t)r->p[1] << 16 | (uint32_t)r->p[2] << 8 | r->p[3];
    r->p += 4;
    return v;
}

static uint8_t get8(struct rd *r)
{
    if (r->p >= r->end) {
        r->bad = true;
        return 0;
    }
    return *r->p++;
}

static const uint8_t *getn(struct rd *r, size_t n)
{
    if ((size_t)(r->end - r->p) < n) {
        r->bad = true;
        return NULL;
    }
    const uint8_t *q = r->p;
    r->p += n;
    return q;
}

int plog_distributed_msg_decode(const uint8_t *src, size_t n, plog_distributed_decoded *d)
{
    memset(d, 0, sizeof *d);
    if (n < 1)
        return PLOG_EINVAL;
    if (src[0] != PLOG_DISTRIBUTED_CODEC_VERSION)
        return PLOG_EVERSION;
    if ((d->buf = malloc(n)) == NULL)
        return PLOG_ENOMEM;
    memcpy(d->buf, src, n);
    struct rd r = {.p = d->buf + 1, .end = d->buf + n};
    plog_raft_msg *m = &d->msg;
    m->type = get8(&r);
    m->from = get64(&r);
    m->to = get64(&r);
    m->term = get64(&r);
    m->index = get64(&r);
    m->log_term = get64(&r);
    m->commit = get64(&r);
    uint8_t reject = get8(&r);
    m->reject = reject == 1;
    m->hint_index = get64(&r);
    m->hint_term = get64(&r);
    m->ctx = get64(&r);
    uint32_t ne = get32(&r);
    if (r.bad || reject > 1 || m->type < PLOG_RAFT_MSG_PREVOTE || m->type > PLOG_RAFT_MSG_TIMEOUT_NOW ||
        ne > (size_t)(r.end - r.p) / ENTRY_HDR)
        goto bad;
    if (ne > 0 && (d->entries = calloc(ne, sizeof *d->entries)) == NULL) {
        plog_distributed_decoded_fini(d);
        return PLOG_ENOMEM;
    }
    for (uint32_t i = 0; i < ne; i++) {
        plog_raft_entry *e = &d->entries[i];
        e->term = get64(&r);
        e->index = get64(&r);
        e->type = get8(&r);
        e->len = get32(&r);
        e->data = getn(&r, e->len);
        if (r.bad || e->type > PLOG_RAFT_ENTRY_CONFIG)
            goto bad;
    }
    m->entries = d->entries;
    m->n_entries = ne;
    uint32_t clen = get32(&r);
    const uint8_t *conf = getn(&r, clen);
    if (r.bad || plog_raft_conf_decode(conf, clen, &m->conf) != PLOG_OK)
        goto bad;
    m->offset = get64(&r);
    m->total = get64(&r);
    m->len = get32(&r);
    m->data = getn(&r, m->len);
    uint8_t done = get8(&r);
    uint32_t al = (uint32_t)get8(&r) << 8;
    al |= get8(&r);
    const uint8_t *addr = getn(&r, al);
    d->cluster = get64(&r);
    if (r.bad || done > 1 || al > PLOG_DISTRIBUTED_ADDR_MAX || r.p != r.end || memchr(addr, 0, al) != NULL)
        goto bad;
    m->done = done == 1;
    memcpy(d->from_addr, addr, al);
    d->from_addr[al] = '\0';
    return PLOG_OK;
bad:
    plog_distributed_decoded_fini(d);
    return PLOG_EINVAL;
}

void plog_distributed_decoded_fini(plog_distributed_decoded *d)
{
    free(d->entries);
    free(d->buf);
    memset(d, 0, sizeof *d);
}
