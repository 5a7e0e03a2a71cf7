/* rlog.c - the core's in-memory copy of the log after the latest snapshot.
 *
 * Each entry's data is a private malloc'd copy, dropped (plog_raft_log_evict) once
 * memory runs over the configured limit. Entries up to snap_index are gone;
 * snap_term remembers the term at snap_index so AppendEntries consistency checks
 * (§5.3) and up-to-date checks (§5.4.1) still work at the boundary. */
#include "internal/raft/core.h"

#include <stdlib.h>
#include <string.h>

#include "internal/err/err.h"

void plog_raft_log_init(rlog *l)
{
    memset(l, 0, sizeof *l);
}

static void free_range(rlog *l, size_t from, size_t to)
{
    for (size_t i = from; i < to; i++) {
        if (l->ents[i].data != NULL)
            l->mem -= l->ents[i].len;
        free((void *)l->ents[i].data);
    }
}

void plog_raft_log_fini(rlog *l)
{
    free_range(l, 0, l->n);
    free(l->ents);
    plog_raft_log_init(l);
}

uint64_t plog_raft_log_last(const rlog *l)
{
    return l->snap_index + l->n;
}

uint64_t plog_raft_log_last_term(const rlog *l)
{
    return l->n ? l->ents[l->n - 1].term : l->snap_term;
}

uint64_t plog_raft_log_term(const rlog *l, uint64_t index)
{
    if (index == l->snap_index)
        return l->snap_term;
    const plog_raft_entry *e = plog_raft_log_get(l, index);
    return e ? e->term : 0;
}

const plog_raft_entry *plog_raft_log_get(const rlog *l, uint64_t index)
{
    if (index <= l->snap_index || index > plog_raft_log_last(l))
        return NULL;
    return &l->ents[index - l->snap_index - 1];
}

int plog_raft_log_append(rlog *l, const plog_raft_entry *e)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        plog_raft_entry *p = realloc(l->ents, cap * sizeof *p);
        if (p == NULL)
            return PLOG_ENOMEM;
        l->ents = p;
        l->cap = cap;
    }
    uint8_t *data = NULL;
    if (e->len > 0) {
        data = malloc(e->len);
        if (data == NULL)
            return PLOG_ENOMEM;
        memcpy(data, e->data, e->len);
    }
    plog_raft_entry *d = &l->ents[l->n++];
    *d = *e;
    d->data = data;
    if (data != NULL)
        l->mem += e->len;
    return PLOG_OK;
}

void plog_raft_log_truncate(rlog *l, uint64_t index)
{
    if (index <= l->snap_index)
        index = l->snap_index + 1;
    if (index > plog_raft_log_last(l))
        return;
    size_t keep = index - l->snap_index - 1;
    free_range(l, keep, l->n);
    l->n = keep;
    if (l->evicted >= index)
        l->evicted = index - 1;
}

void plog_raft_log_compact(rlog *l, uint64_t index, uint64_t term)
{
    if (index <= l->snap_index)
        return;
    size_t drop = index - l->snap_index;
    if (drop > l->n)
        drop = l->n;
    free_range(l, 0, drop);
    memmove(l->ents, l->ents + drop, (l->n - drop) * sizeof *l->ents);
    l->n -= drop;
    l->snap_index = index;
    l->snap_term = term;
    if (l->evicted < index)
        l->evicted = index;
}

void plog_raft_log_reset(rlog *l, uint64_t index, uint64_t term)
{
    free_range(l, 0, l->n);
    l->n = 0;
    l->snap_index = index;
    l->snap_term = term;
    l->evicted = index;
}

bool plog_raft_log_has_data(const plog_raft_entry *e)
{
    return e->data != NULL || e->len == 0;
}

void plog_raft_log_evict(rlog *l, uint64_t index, size_t limit)
{
    if (l->evicted < l->snap_index)
        l->evicted = l->snap_index;
    if (index > plog_raft_log_last(l))
        index = plog_raft_log_last(l);
    while (l->mem > limit && l->evicted < index) {
        plog_raft_entry *e = &l->ents[l->evicted - l->snap_index];
        l->evicted++;
        if (e->type == PLOG_RAFT_ENTRY_CONFIG || e->data == NULL)
            continue; /* configurations are read back by the core itself */
        free((void *)e->data);
        e->data = NULL;
        l->mem -= e->len;
    }
}
