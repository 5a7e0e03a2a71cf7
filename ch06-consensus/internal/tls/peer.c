/* peer.c - the map pipe id -> verified identity (see peer.h for the mechanism).
 *
 * A chained hash table keyed by the 32-bit pipe id, doubled when it holds more than
 * two entries per bucket, under one mutex. Entries are malloc'd plog_tls_peer copies;
 * lookups copy out, so no pointer into the table ever leaves the lock. */
#include "internal/tls/peer.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "internal/err/err.h"
#include "internal/tls/engine_int.h"

struct entry {
    uint32_t id;
    struct entry *next;
    plog_tls_peer peer;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct entry **buckets; /* NULL until the first insert */
static size_t nbuckets;        /* a power of two */
static size_t count;

static size_t bucket_of(uint32_t id, size_t n)
{
    /* Pipe ids are sequential from a random start: a multiplicative hash spreads them. */
    return (size_t)((id * 2654435761u) & (uint32_t)(n - 1));
}

/* grow doubles the table (or creates it); on ENOMEM the old table stays. Locked. */
static void grow(void)
{
    size_t n = nbuckets == 0 ? 64 : nbuckets * 2;
    struct entry **b = calloc(n, sizeof *b);
    if (b == NULL)
        return;
    for (size_t i = 0; i < nbuckets; i++) {
        struct entry *e = buckets[i];
        while (e != NULL) {
            struct entry *next = e->next;
            size_t k = bucket_of(e->id, n);
            e->next = b[k];
            b[k] = e;
            e = next;
        }
    }
    free(buckets);
    buckets = b;
    nbuckets = n;
}

static void insert(uint32_t id, const plog_tls_peer *peer)
{
    struct entry *e = malloc(sizeof *e);
    if (e == NULL)
        return; /* no identity: the pipe's requests are denied */
    e->id = id;
    e->peer = *peer;
    pthread_mutex_lock(&lock);
    if (count >= nbuckets * 2)
        grow();
    if (buckets == NULL) {
        pthread_mutex_unlock(&lock);
        free(e);
        return;
    }
    size_t k = bucket_of(id, nbuckets);
    e->next = buckets[k];
    buckets[k] = e;
    count++;
    pthread_mutex_unlock(&lock);
}

static void erase(uint32_t id)
{
    struct entry *gone = NULL;
    pthread_mutex_lock(&lock);
    if (buckets != NULL) {
        for (struct entry **pp = &buckets[bucket_of(id, nbuckets)]; *pp != NULL; pp = &(*pp)->next) {
            if ((*pp)->id == id) {
                gone = *pp;
                *pp = gone->next;
                count--;
                break;
            }
        }
        if (count == 0) {
            /* An idle server holds no table (and leak checkers see none). */
            free(buckets);
            buckets = NULL;
            nbuckets = 0;
        }
    }
    pthread_mutex_unlock(&lock);
    free(gone);
}

void plog_tls_peer_on_event(nng_pipe pipe, nng_pipe_ev ev, void *arg)
{
    (void)arg;
    if (ev == NNG_PIPE_EV_ADD_PRE) {
        plog_tls_peer peer;
        bool verified = false;
        plog_tls_peer_slot_clear();
        /* The getter runs the engine's verified() on this thread; it fills the slot. */
        if (nng_pipe_get_bool(pipe, NNG_OPT_TLS_VERIFIED, &verified) != 0 || !verified)
            return;
        if (!plog_tls_peer_slot_take(&peer))
            return; /* verified, but no single usable CN */
        insert((uint32_t)nng_pipe_id(pipe), &peer);
    } else if (ev == NNG_PIPE_EV_REM_POST) {
        erase((uint32_t)nng_pipe_id(pipe));
    }
}

int plog_tls_peer_track(nng_socket sock)
{
    if (nng_pipe_notify(sock, NNG_PIPE_EV_ADD_PRE, plog_tls_peer_on_event, NULL) != 0 ||
        nng_pipe_notify(sock, NNG_PIPE_EV_REM_POST, plog_tls_peer_on_event, NULL) != 0)
        return PLOG_EINVAL;
    return PLOG_OK;
}

int plog_tls_peer_lookup(nng_pipe pipe, plog_tls_peer *out)
{
    int id = nng_pipe_id(pipe);
    int rv = PLOG_EPERM;
    if (id <= 0)
        return rv;
    pthread_mutex_lock(&lock);
    if (buckets != NULL) {
        for (struct entry *e = buckets[bucket_of((uint32_t)id, nbuckets)]; e != NULL; e = e->next) {
            if (e->id == (uint32_t)id) {
                *out = e->peer;
                rv = PLOG_OK;
                break;
            }
        }
    }
    pthread_mutex_unlock(&lock);
    return rv;
}

int plog_tls_peer_identity(const nng_msg *msg, char *cn, size_t size)
{
    plog_tls_peer peer;
    int rv = plog_tls_peer_lookup(nng_msg_get_pipe(msg), &peer);
    if (rv != PLOG_OK)
        return rv;
    size_t n = strlen(peer.cn);
    if (n >= size)
        return PLOG_EINVAL;
    memcpy(cn, peer.cn, n + 1);
    return PLOG_OK;
}

size_t plog_tls_peer_count(void)
{
    pthread_mutex_lock(&lock);
    size_t n = count;
    pthread_mutex_unlock(&lock);
    return n;
}
