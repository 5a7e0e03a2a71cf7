/* conf.c - cluster configurations: their byte encoding inside CONFIG entries and
 * which one a server uses.
 *
 * Encoding: 0: n (uint8) | then n times: id (uint64 BE) | role (uint8) | promote (uint8)
 *
 * thesis §4.1: a server uses the latest configuration in its log, committed or not;
 * when a conflicting leader truncates that entry away, it falls back to the previous
 * one, so plog_raft_conf_rebuild() scans the log backwards after every truncation. */
#include "internal/raft/core.h"

#include "internal/err/err.h"

size_t plog_raft_conf_encode(const plog_raft_conf *c, uint8_t *buf)
{
    size_t off = 0;
    buf[off++] = (uint8_t)c->n;
    for (unsigned i = 0; i < c->n; i++) {
        uint64_t id = c->servers[i].id;
        for (int b = 7; b >= 0; b--)
            buf[off++] = (uint8_t)(id >> (b * 8));
        buf[off++] = c->servers[i].role;
        buf[off++] = c->servers[i].promote ? 1 : 0;
    }
    return off;
}

int plog_raft_conf_decode(const uint8_t *p, size_t len, plog_raft_conf *c)
{
    if (len < 1 || p[0] > PLOG_RAFT_MAX_SERVERS || len != 1 + (size_t)p[0] * 10)
        return PLOG_ECORRUPT;
    plog_raft_conf out = {.n = p[0]};
    size_t off = 1;
    for (unsigned i = 0; i < out.n; i++) {
        uint64_t id = 0;
        for (int b = 0; b < 8; b++)
            id = (id << 8) | p[off++];
        uint8_t role = p[off++], promote = p[off++];
        if (id == 0 || role > PLOG_RAFT_LEARNER || promote > 1 || plog_raft_conf_find(&out, id) != NULL)
            return PLOG_ECORRUPT;
        out.servers[i] = (plog_raft_server){.id = id, .role = role, .promote = promote};
    }
    *c = out;
    return PLOG_OK;
}

const plog_raft_server *plog_raft_conf_find(const plog_raft_conf *c, uint64_t id)
{
    for (unsigned i = 0; i < c->n; i++)
        if (c->servers[i].id == id)
            return &c->servers[i];
    return NULL;
}

void plog_raft_conf_rebuild(plog_raft *r)
{
    for (uint64_t i = plog_raft_log_last(&r->log); i > r->log.snap_index; i--) {
        const plog_raft_entry *e = plog_raft_log_get(&r->log, i);
        if (e->type != PLOG_RAFT_ENTRY_CONFIG)
            continue;
        /* CONFIG entries are checked when they enter the log */
        if (plog_raft_conf_decode(e->data, e->len, &r->conf) == PLOG_OK) {
            r->conf_index = i;
            return;
        }
    }
    r->conf = r->snap_conf;
    r->conf_index = r->log.snap_index;
}
