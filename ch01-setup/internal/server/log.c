/* log.c - in-memory commit log (Go: internal/server/log.go).
 *
 * records[i] is the value of the record at offset i; the array doubles when
 * full. Appends take the write lock, reads the read lock, so readers never see a
 * half-grown array. */
#include "internal/server/log.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "internal/err/err.h"

struct value {
    uint8_t *data;
    size_t len;
};

struct plog_server_memlog {
    pthread_rwlock_t mu;
    struct value *records;
    uint64_t len;
    uint64_t cap;
};

int plog_server_memlog_new(plog_server_memlog **lp)
{
    plog_server_memlog *l = calloc(1, sizeof *l);
    if (l == NULL)
        return PLOG_ENOMEM;
    if (pthread_rwlock_init(&l->mu, NULL) != 0) {
        free(l);
        return PLOG_ENOMEM;
    }
    *lp = l;
    return PLOG_OK;
}

static int grow(plog_server_memlog *l)
{
    uint64_t cap = l->cap ? l->cap * 2 : 64;
    struct value *r = realloc(l->records, cap * sizeof *r);
    if (r == NULL)
        return PLOG_ENOMEM;
    l->records = r;
    l->cap = cap;
    return PLOG_OK;
}

int plog_server_memlog_append(plog_server_memlog *l, const Log__V1__Record *rec, uint64_t *off)
{
    /* Copy outside the lock: the value is the caller's and may be large. */
    uint8_t *data = malloc(rec->value.len ? rec->value.len : 1);
    if (data == NULL)
        return PLOG_ENOMEM;
    if (rec->value.len > 0)
        memcpy(data, rec->value.data, rec->value.len);

    pthread_rwlock_wrlock(&l->mu);
    if (l->len == l->cap && grow(l) != PLOG_OK) {
        pthread_rwlock_unlock(&l->mu);
        free(data);
        return PLOG_ENOMEM;
    }
    l->records[l->len] = (struct value){data, rec->value.len};
    *off = l->len++;
    pthread_rwlock_unlock(&l->mu);
    return PLOG_OK;
}

int plog_server_memlog_read(plog_server_memlog *l, uint64_t off, Log__V1__Record **out)
{
    /* Allocated with malloc, as protobuf-c's default allocator does, so that
     * log__v1__record__free_unpacked(r, NULL) frees it like an unpacked one. */
    Log__V1__Record *r = malloc(sizeof *r);
    if (r == NULL)
        return PLOG_ENOMEM;
    log__v1__record__init(r);

    pthread_rwlock_rdlock(&l->mu);
    if (off >= l->len) {
        pthread_rwlock_unlock(&l->mu);
        free(r);
        return PLOG_ERANGE;
    }
    const struct value *v = &l->records[off];
    r->value.data = malloc(v->len ? v->len : 1);
    if (r->value.data == NULL) {
        pthread_rwlock_unlock(&l->mu);
        free(r);
        return PLOG_ENOMEM;
    }
    memcpy(r->value.data, v->data, v->len);
    r->value.len = v->len;
    pthread_rwlock_unlock(&l->mu);

    r->offset = off;
    *out = r;
    return PLOG_OK;
}

uint64_t plog_server_memlog_len(plog_server_memlog *l)
{
    pthread_rwlock_rdlock(&l->mu);
    uint64_t n = l->len;
    pthread_rwlock_unlock(&l->mu);
    return n;
}

void plog_server_memlog_free(plog_server_memlog *l)
{
    if (l == NULL)
        return;
    for (uint64_t i = 0; i < l->len; i++)
        free(l->records[i].data);
    free(l->records);
    pthread_rwlock_destroy(&l->mu);
    free(l);
}
