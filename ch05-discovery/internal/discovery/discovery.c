/* discovery.c - the membership driver: core + clock + thread + transport (see
 * discovery.h).
 *
 * Locking: mu guards the core (m), the stop/leave flags and the wake flag. The
 * transport's receive callback and the driver thread both take it; neither sends
 * nor calls the handler while holding it (sending never blocks anyway, but a
 * handler might take its own locks). */
#include "internal/discovery/discovery.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "internal/err/err.h"

#define MAX_JOIN 64
#define LEAVE_LINGER_MS 150

struct plog_discovery {
    plog_discovery_config cfg;
    char name[PLOG_GOSSIP_MAX_NAME + 1];
    plog_membership *m;
    plog_transport *t;

    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool wake, stop, left;
    pthread_t thread;
    bool thread_started;

    _Atomic uint64_t bad_version, bad_size, bad_format, spoofed;
};

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* A batch of messages popped under the lock, sent after it. */
struct outbox {
    plog_membership_send *v;
    size_t n, cap;
};

/* drain pops every pending message of the core into o. Locked. */
static void drain(plog_discovery *d, struct outbox *o)
{
    plog_membership_send s;
    while (plog_membership_pop_send(d->m, &s)) {
        if (o->n == o->cap) {
            size_t c = o->cap == 0 ? 16 : o->cap * 2;
            plog_membership_send *v = realloc(o->v, c * sizeof *v);
            if (v == NULL) {
                free(s.data); /* lost, like any datagram */
                continue;
            }
            o->v = v;
            o->cap = c;
        }
        o->v[o->n++] = s;
    }
}

static void flush(plog_discovery *d, struct outbox *o)
{
    for (size_t i = 0; i < o->n; i++) {
        plog_transport_send(d->t, o->v[i].addr, o->v[i].data, o->v[i].len);
        free(o->v[i].data);
    }
    o->n = 0;
}

/* on_message runs on an nng thread for every authorized message. */
static void on_message(void *arg, const char *from, const uint8_t *buf, size_t len)
{
    plog_discovery *d = arg;
    plog_gossip_msg msg;
    int rv = plog_gossip_decode(buf, len, &msg);
    if (rv != PLOG_OK) {
        if (rv == PLOG_EVERSION)
            atomic_fetch_add(&d->bad_version, 1);
        else if (rv == PLOG_ETOOBIG)
            atomic_fetch_add(&d->bad_size, 1);
        else if (rv != PLOG_ENOMEM)
            atomic_fetch_add(&d->bad_format, 1);
        return;
    }
    /* A node speaks only for itself: the sender named in the message must be the
     * certificate's CN (relayed probes are sent by the relay in its own name). */
    bool own = strcmp(msg.from, from) == 0;
    plog_gossip_release(&msg);
    if (!own) {
        atomic_fetch_add(&d->spoofed, 1);
        return;
    }
    struct outbox o = {0};
    pthread_mutex_lock(&d->mu);
    if (!d->stop) {
        /* The core checks the sender again (recv_from): one rule, two guards. */
        plog_membership_recv_from(d->m, now_ms(), from, buf, len);
        drain(d, &o);
        d->wake = true; /* events, and maybe an earlier deadline */
        pthread_cond_signal(&d->cv);
    }
    pthread_mutex_unlock(&d->mu);
    flush(d, &o);
    free(o.v);
}

static void *driver_main(void *arg)
{
    plog_discovery *d = arg;
    struct outbox o = {0};
    plog_membership_event *ev = NULL;
    size_t nev = 0, cev = 0;
    pthread_mutex_lock(&d->mu);
    while (!d->stop) {
        uint64_t now = now_ms();
        plog_membership_tick(d->m, now);
        drain(d, &o);
        plog_membership_event e;
        while (plog_membership_pop_event(d->m, &e)) {
            if (nev == cev) {
                size_t c = cev == 0 ? 8 : cev * 2;
                plog_membership_event *v = realloc(ev, c * sizeof *v);
                if (v == NULL)
                    break;
                ev = v;
                cev = c;
            }
            ev[nev++] = e;
        }
        bool deliver = !d->left;
        pthread_mutex_unlock(&d->mu);
        flush(d, &o);
        for (size_t i = 0; i < nev; i++)
            if (deliver && d->cfg.handler != NULL)
                d->cfg.handler(d->cfg.arg, &ev[i]);
        nev = 0;
        pthread_mutex_lock(&d->mu);
        if (d->stop || d->wake) {
            d->wake = false;
            continue;
        }
        uint64_t deadline = plog_membership_next_deadline(d->m);
        now = now_ms();
        if (deadline > now) {
            /* The condition variable's clock is CLOCK_REALTIME: convert the wait. */
            uint64_t wait = deadline - now;
            if (wait > 1000)
                wait = 1000;
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += (time_t)(wait / 1000);
            ts.tv_nsec += (long)(wait % 1000) * 1000000L;
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            while (!d->wake && !d->stop && pthread_cond_timedwait(&d->cv, &d->mu, &ts) == 0)
                ;
        }
        d->wake = false;
    }
    pthread_mutex_unlock(&d->mu);
    for (size_t i = 0; i < o.n; i++)
        free(o.v[i].data);
    free(o.v);
    free(ev);
    return NULL;
}

/* to_url writes "tls+tcp://HOST:PORT" for "HOST:PORT" (a URL stays as is). */
static int to_url(const char *addr, char *url, size_t size)
{
    int n = strstr(addr, "://") != NULL ? snprintf(url, size, "%s", addr)
                                        : snprintf(url, size, "tls+tcp://%s", addr);
    return n > 0 && (size_t)n < size && strchr(addr, ':') != NULL ? PLOG_OK : PLOG_EINVAL;
}

static uint64_t default_seed(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return ((uint64_t)ts.tv_sec * 1000000007u) ^ (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 32);
}

/* on_refused passes a refusal of the transport's listener on to cfg.refused. */
static void on_refused(void *arg, const char *remote, const char *why)
{
    plog_discovery *d = arg;
    d->cfg.refused(d->cfg.arg, remote, why);
}

int plog_discovery_open(const plog_discovery_config *cfg, plog_discovery **dp, char *err, size_t errsize)
{
    if (cfg->name == NULL || cfg->name[0] == '\0' || strlen(cfg->name) > PLOG_GOSSIP_MAX_NAME) {
        plog_errf(err, errsize, "discovery: bad node name \"%s\" (1..64 printable characters, no spaces)",
                  cfg->name != NULL ? cfg->name : "");
        return PLOG_EINVAL;
    }
    if (cfg->bind_addr == NULL || cfg->njoin > MAX_JOIN) {
        plog_errf(err, errsize, "discovery: a bind address is required; at most %d join addresses", MAX_JOIN);
        return PLOG_EINVAL;
    }
    plog_discovery *d = calloc(1, sizeof *d);
    if (d == NULL) {
        plog_errf(err, errsize, "out of memory");
        return PLOG_ENOMEM;
    }
    d->cfg = *cfg;
    snprintf(d->name, sizeof d->name, "%s", cfg->name);
    pthread_mutex_init(&d->mu, NULL);
    pthread_cond_init(&d->cv, NULL);
    int rv;
    char self[PLOG_GOSSIP_MAX_ADDR + 1];
    char seeds[MAX_JOIN][PLOG_GOSSIP_MAX_ADDR + 1];
    const char *seedp[MAX_JOIN];
    if ((rv = to_url(cfg->bind_addr, self, sizeof self)) != PLOG_OK) {
        plog_errf(err, errsize, "discovery: bad bind address \"%s\" (want HOST:PORT)", cfg->bind_addr);
        goto fail;
    }
    for (size_t i = 0; i < cfg->njoin; i++) {
        if ((rv = to_url(cfg->start_join_addrs[i], seeds[i], sizeof seeds[i])) != PLOG_OK) {
            plog_errf(err, errsize, "discovery: bad join address \"%s\" (want HOST:PORT)",
                      cfg->start_join_addrs[i]);
            goto fail;
        }
        seedp[i] = seeds[i];
    }
    plog_membership_config mc;
    if (cfg->fast)
        plog_membership_config_fast(&mc);
    else
        plog_membership_config_lan(&mc);
    mc.name = d->name;
    mc.addr = self;
    mc.tags = cfg->tags;
    mc.ntags = cfg->ntags;
    mc.seed = cfg->seed != 0 ? cfg->seed : default_seed();
    /* A restarted node must come back newer than anything the cluster remembers
     * of its last life: start from the wall clock (membership.h "Restarts"). */
    mc.incarnation = (uint64_t)time(NULL);
    uint64_t now = now_ms();
    if ((rv = plog_membership_new(&mc, now, &d->m)) != PLOG_OK) {
        plog_errf(err, errsize,
                  "discovery: bad node name, address or tags (%s): names are 1..64 printable "
                  "characters without spaces",
                  plog_strerror(rv));
        goto fail;
    }
    plog_transport_config tc = {
        .bind_addr = self,
        .cert_file = cfg->cert_file,
        .key_file = cfg->key_file,
        .ca_file = cfg->ca_file,
        .acl = cfg->acl,
        .max_msg_bytes = PLOG_GOSSIP_MAX_MSG,
        .recv = on_message,
        .refused = cfg->refused != NULL ? on_refused : NULL,
        .arg = d,
    };
    if ((rv = plog_transport_open(&tc, &d->t, err, errsize)) != PLOG_OK)
        goto fail;
    if (cfg->njoin > 0) {
        pthread_mutex_lock(&d->mu);
        rv = plog_membership_join(d->m, now_ms(), seedp, cfg->njoin);
        pthread_mutex_unlock(&d->mu);
        if (rv != PLOG_OK) {
            plog_errf(err, errsize, "discovery: cannot join: %s", plog_strerror(rv));
            goto fail;
        }
    }
    if (pthread_create(&d->thread, NULL, driver_main, d) != 0) {
        plog_errf(err, errsize, "discovery: cannot start the driver thread");
        rv = PLOG_ENOMEM;
        goto fail;
    }
    d->thread_started = true;
    *dp = d;
    return PLOG_OK;
fail:
    plog_discovery_close(d);
    return rv;
}

int plog_discovery_members(plog_discovery *d, plog_membership_member **out, size_t *n)
{
    pthread_mutex_lock(&d->mu);
    size_t k = plog_membership_count(d->m);
    plog_membership_member *v = malloc((k + 1) * sizeof *v);
    if (v == NULL) {
        pthread_mutex_unlock(&d->mu);
        return PLOG_ENOMEM;
    }
    for (size_t i = 0; i < k; i++)
        plog_membership_get(d->m, i, &v[i]);
    pthread_mutex_unlock(&d->mu);
    *out = v;
    *n = k;
    return PLOG_OK;
}

const char *plog_discovery_name(const plog_discovery *d)
{
    return d->name;
}

void plog_discovery_stats_get(plog_discovery *d, plog_discovery_stats *out)
{
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&d->mu);
    plog_membership_get_stats(d->m, &out->core);
    size_t k = plog_membership_count(d->m);
    for (size_t i = 0; i < k; i++) {
        plog_membership_member mb;
        plog_membership_get(d->m, i, &mb);
        switch (mb.status) {
        case PLOG_GOSSIP_ALIVE:
            out->alive++;
            break;
        case PLOG_GOSSIP_SUSPECT:
            out->suspect++;
            break;
        case PLOG_GOSSIP_DEAD:
            out->dead++;
            break;
        default:
            out->left++;
        }
    }
    pthread_mutex_unlock(&d->mu);
    plog_transport_stats_get(d->t, &out->transport);
    out->bad_version = atomic_load(&d->bad_version);
    out->bad_size = atomic_load(&d->bad_size);
    out->bad_format = atomic_load(&d->bad_format);
    out->spoofed = atomic_load(&d->spoofed);
}

bool plog_discovery_tls_failure(plog_discovery *d, char *addr, size_t asize, char *why, size_t wsize)
{
    return plog_transport_tls_failure(d->t, addr, asize, why, wsize);
}

void plog_discovery_leave(plog_discovery *d)
{
    struct outbox o = {0};
    pthread_mutex_lock(&d->mu);
    if (d->left || d->stop) {
        pthread_mutex_unlock(&d->mu);
        return;
    }
    d->left = true;
    plog_membership_leave(d->m, now_ms());
    drain(d, &o);
    d->wake = true;
    pthread_cond_signal(&d->cv);
    pthread_mutex_unlock(&d->mu);
    /* The leave goes out three times, 50 ms apart: a copy dropped by a full send
     * buffer or a connection still coming up costs the others a failure
     * detection otherwise, and a duplicate "left" is a no-op. The driver keeps
     * answering pings meanwhile (with the leave piggybacked), and a TLS send
     * completes before the bytes are on the wire, so the sockets stay open a
     * moment longer. */
    for (int round = 0; round < 3; round++) {
        for (size_t i = 0; i < o.n; i++)
            plog_transport_send(d->t, o.v[i].addr, o.v[i].data, o.v[i].len);
        struct timespec ts = {0, (LEAVE_LINGER_MS / 3) * 1000000L};
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
            ;
    }
    for (size_t i = 0; i < o.n; i++)
        free(o.v[i].data);
    free(o.v);
}

void plog_discovery_close(plog_discovery *d)
{
    if (d == NULL)
        return;
    pthread_mutex_lock(&d->mu);
    d->stop = true;
    pthread_cond_signal(&d->cv);
    pthread_mutex_unlock(&d->mu);
    if (d->thread_started)
        pthread_join(d->thread, NULL);
    /* The transport goes first: once it is closed no receive callback can touch
     * the core. */
    plog_transport_close(d->t);
    plog_membership_free(d->m);
    pthread_cond_destroy(&d->cv);
    pthread_mutex_destroy(&d->mu);
    free(d);
}
