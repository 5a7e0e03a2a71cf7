/* distributed.c - the Raft driver of distributed.h.
 *
 * The node thread loops: take every queued event (messages received, proposals,
 * reads), step the core with each, and for each update, in the order the core's
 * contract asks (internal/raft/raft.h):
 *   1. persist: the hard state (its own atomic file, durable at once), the
 *      entries (appended to Raft's log, not yet fsynced);
 *   2. queue the messages, encoded: a leader's (PLOG_RAFT_UPD_SEND_EARLY) on the
 *      early queue, every other on the late one;
 *   3. apply the committed entries to the record log (which is rebuilt from
 *      Raft's log at start, so applying before this node's own fsync is safe)
 *      and answer the produces they complete;
 * then send the early queue (a leader's AppendEntries travel while its own disk
 * writes: thesis §10.2.1), one fsync for all the entries of the round (group
 * commit), send the late queue, then report PERSISTED, whose update is handled
 * the same way. No message leaves before the writes it depends on are durable. */
#define _GNU_SOURCE /* pthread_condattr_setclock, clock_gettime */
#include "internal/distributed/distributed.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>

#include "api/v1/log.pb-c.h"
#include "internal/discovery/transport.h"
#include "internal/distributed/codec.h"
#include "internal/err/err.h"
#include "internal/raft/raft.h"
#include "internal/log/log.h"
#include "internal/log/store.h"
#include "internal/raftstore/raftstore.h"

#define ENTRY_VERSION 1
#define DEDUP_BUCKETS 1024
#define MAX_PEERS PLOG_RAFT_MAX_SERVERS
#define RECONCILE_MS 20
/* The Raft core keeps this many bytes of entry data in memory; older entries, once
 * applied and fsynced, are read back from raftstore when a follower needs them. */
#define RAFT_MEM_LIMIT (2u << 20)

enum { EV_RECEIVE = 1, EV_PROPOSE, EV_READ };

struct proposal {
    struct proposal *next;
    uint8_t *data;
    size_t len;
    uint64_t index, term;
    plog_distributed_done_fn done;
    void *arg;
};

struct read_req {
    struct read_req *next;
    uint64_t ctx, index;
    bool released;
    plog_distributed_read_fn done;
    void *arg;
};

struct ev {
    struct ev *next;
    int kind;
    plog_distributed_decoded dec; /* RECEIVE */
    struct proposal *prop;        /* PROPOSE */
    struct read_req *read;        /* READ */
};

struct outmsg {
    uint64_t to;
    bool request; /* the peer answers it */
    uint8_t *buf;
    size_t len;
};

struct peer {
    uint64_t id;
    char name[64];
    char raft_addr[128];
    char rpc_addr[128];
    bool joined;            /* membership reported it (only those are added) */
    bool left;              /* left gracefully, or removed (plog_distributed_remove):
                             * the leader removes it */
    bool failed;            /* membership declared it dead (it may come back) */
    uint64_t last_heard_ms; /* a message from it arrived (any kind) */
    uint64_t asked_ms;      /* since then a request to it waits for an answer (0: none) */
    uint64_t last_reset_ms; /* its connection was last started afresh */
};

struct dedup {
    struct dedup *next;
    uint64_t client_id, seq, first, count;
};

/* A growing buffer (a snapshot's bytes). */
struct sbuf {
    uint8_t *p;
    size_t n, cap;
};

struct plog_distributed {
    char *name, *dir;
    uint64_t id;
    plog_distributed_config cfg;
    plog_raftstore *store;
    plog_log *records;
    plog_transport *tr;
    plog_raft *raft;

    pthread_t thread;
    bool started;
    pthread_mutex_t mu; /* queue, stop, peers, status */
    pthread_cond_t cv;
    struct ev *qhead, *qtail;
    bool stop, transferring;

    struct peer peers[MAX_PEERS + 8];
    size_t npeers;
    plog_raft_status st; /* a copy for other threads, under mu */
    _Atomic uint64_t applied_next;

    /* node thread only */
    struct proposal *pending, *pending_tail;
    struct read_req *reads;
    uint64_t read_ctx;
    struct outq {
        struct outmsg *m;
        size_t n, cap;
    } early, late; /* sent before / after the round's fsync */
    bool dirty;
    uint64_t last_index, last_term; /* last entry written this round */
    uint64_t deadline;
    uint64_t next_reconcile;
    struct dedup *dedup[DEDUP_BUCKETS];
    uint64_t applied_index;
    uint64_t snap_index;      /* the latest snapshot's (taken or installed) */
    uint64_t snap_not_before; /* no snapshot taken before this time (ms) */
    _Atomic uint64_t snaps_taken, snap_taken_index;
    /* The snapshot taken last, while its writer thread encodes and writes it
     * (maybe_snapshot, collect_snapshot); job == NULL: none. Set before the writer
     * starts, read by the node thread again only once it is joined; snap_written
     * is under mu. */
    struct {
        plog_raftstore_snapshot_job *job;
        pthread_t thread;
        bool threaded;
        uint64_t index, start_ms;
        uint64_t records; /* the record log's records at index: the writer's view */
        struct sbuf buf;  /* the snapshot's bytes: the dedup table, then the records */
    } snap_write;
    bool snap_written;
    int failed;                             /* a write failed: the node stops (fail-stop) */
    char failed_why[PLOG_ERRMSG_SIZE + 64]; /* what failed, for the log and cfg.failed */
    uint64_t opened_ms;
    char self_addr[128]; /* cfg->advertise_addr (else raft_addr), copied */

    /* The cluster this node belongs to (see foreign): its id, 0 until a bootstrap
     * made one or a leader's message brought one; node thread only once started. */
    uint64_t cluster;
    _Atomic uint64_t foreign;   /* messages from another cluster, dropped */
    uint64_t foreign_warned_ms; /* the last warning about them */
};

uint64_t plog_distributed_id(const char *name)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        h = (h ^ *p) * 0x100000001b3ull;
    return h != 0 ? h : 1;
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---- peers (under mu) ------------------------------------------------------- */

static struct peer *peer_by_id(plog_distributed *d, uint64_t id)
{
    for (size_t i = 0; i < d->npeers; i++)
        if (d->peers[i].id == id)
            return &d->peers[i];
    return NULL;
}

static void copy_str(char *dst, size_t size, const char *src)
{
    snprintf(dst, size, "%s", src != NULL ? src : "");
}

/* ---- the queue ---------------------------------------------------------------- */

/* enqueue queues e for the node thread; false (e not queued) once it stopped. */
static bool enqueue(plog_distributed *d, struct ev *e)
{
    pthread_mutex_lock(&d->mu);
    if (d->stop || !d->started) {
        pthread_mutex_unlock(&d->mu);
        return false;
    }
    e->next = NULL;
    if (d->qtail != NULL)
        d->qtail->next = e;
    else
        d->qhead = e;
    d->qtail = e;
    pthread_cond_signal(&d->cv);
    pthread_mutex_unlock(&d->mu);
    return true;
}

/* is_request: the peer answers it (a follower in its leader's lease ignores vote
 * requests: then no answer comes either, and its silence resets the link too) */
static bool is_request(int type)
{
    return type == PLOG_RAFT_MSG_PREVOTE || type == PLOG_RAFT_MSG_VOTE || type == PLOG_RAFT_MSG_APPEND ||
           type == PLOG_RAFT_MSG_SNAPSHOT;
}

static bool is_response(int type)
{
    return type == PLOG_RAFT_MSG_PREVOTE_RESP || type == PLOG_RAFT_MSG_VOTE_RESP ||
           type == PLOG_RAFT_MSG_APPEND_RESP || type == PLOG_RAFT_MSG_SNAPSHOT_RESP;
}

/* on_refused logs a peer the Raft listener refused: a failed handshake or a CN
 * the ACL does not let gossip (internal/discovery/transport.h). */
static void on_refused(void *arg, const char *remote, const char *why)
{
    plog_distributed *d = arg;
    plog_logger_log(d->cfg.logger, PLOG_LOGGER_WARN, "peer_refused", "listener", "raft", "remote", remote,
                    "err", why, NULL);
}

static void on_receive(void *arg, const char *from, const uint8_t *buf, size_t len)
{
    plog_distributed *d = arg;
    struct ev *e = calloc(1, sizeof *e);
    if (e == NULL)
        return;
    e->kind = EV_RECEIVE;
    /* The sender speaks only for itself: its Raft id is its verified CN's. */
    if (plog_distributed_msg_decode(buf, len, &e->dec) != PLOG_OK ||
        e->dec.msg.from != plog_distributed_id(from) || e->dec.msg.to != d->id) {
        plog_distributed_decoded_fini(&e->dec);
        free(e);
        return;
    }
    /* Every message says where its sender listens, so a node answers a peer it has
     * not heard of through membership yet (a restarted node, or one whose join
     * event is late): the verified CN names the peer, the message its address. */
    pthread_mutex_lock(&d->mu);
    struct peer *p = peer_by_id(d, e->dec.msg.from);
    if (p == NULL && d->npeers < sizeof d->peers / sizeof d->peers[0]) {
        p = &d->peers[d->npeers++];
        *p = (struct peer){.id = e->dec.msg.from};
        copy_str(p->name, sizeof p->name, from);
    }
    if (p != NULL) {
        p->last_heard_ms = now_ms();
        if (is_response(e->dec.msg.type))
            p->asked_ms = 0;
        if (e->dec.from_addr[0] != '\0' && strcmp(p->raft_addr, e->dec.from_addr) != 0)
            copy_str(p->raft_addr, sizeof p->raft_addr, e->dec.from_addr);
    }
    pthread_mutex_unlock(&d->mu);
    if (!enqueue(d, e)) {
        plog_distributed_decoded_fini(&e->dec);
        free(e);
    }
}

/* ---- the state machine: applying entries to the record log ------------------- */

static struct dedup **dedup_find(plog_distributed *d, uint64_t cid)
{
    struct dedup **pp = &d->dedup[(cid * 0x9E3779B97F4A7C15ull) >> 54];
    while (*pp != NULL && (*pp)->client_id != cid)
        pp = &(*pp)->next;
    return pp;
}

static uint64_t get64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* apply_normal applies a produce entry: (first, count) of its records, either
 * appended now or, for a (client, seq) applied before, those of that time. A
 * malformed entry (a leader never proposes one) appends nothing. */
static int apply_normal(plog_distributed *d, const plog_raft_entry *e, uint64_t *first, uint64_t *count)
{
    *first = plog_log_next_offset(d->records);
    *count = 0;
    if (e->len < 21 || e->data[0] != ENTRY_VERSION)
        return PLOG_EINVAL;
    uint64_t cid = get64(e->data + 1), seq = get64(e->data + 9);
    uint32_t n = get32(e->data + 17);
    struct dedup **pp = NULL;
    if (seq != 0) {
        pp = dedup_find(d, cid);
        if (*pp != NULL && (*pp)->seq >= seq) {
            if ((*pp)->seq == seq) {
                *first = (*pp)->first;
                *count = (*pp)->count;
                return PLOG_OK;
            }
            return PLOG_EINVAL; /* older than the client's last: never retried */
        }
    }
    if (n == 0 || n > (e->len - 21) / 4)
        return PLOG_EINVAL;
    Log__V1__Record *recs = calloc(n, sizeof *recs);
    Log__V1__Record **ptrs = calloc(n, sizeof *ptrs);
    if (recs == NULL || ptrs == NULL) {
        free(recs);
        free(ptrs);
        return PLOG_ENOMEM;
    }
    const uint8_t *p = e->data + 21, *end = e->data + e->len;
    int rv = PLOG_OK;
    for (uint32_t i = 0; i < n; i++) {
        if (end - p < 4 || (size_t)(end - p - 4) < get32(p)) {
            rv = PLOG_EINVAL;
            break;
        }
        log__v1__record__init(&recs[i]);
        recs[i].value.len = get32(p);
        recs[i].value.data = (uint8_t *)p + 4;
        p += 4 + recs[i].value.len;
        ptrs[i] = &recs[i];
    }
    if (rv == PLOG_OK)
        rv = plog_log_append_batch(d->records, ptrs, n, first);
    free(recs);
    free(ptrs);
    if (rv != PLOG_OK)
        return rv;
    *count = n;
    if (seq != 0) {
        if (*pp == NULL && (*pp = calloc(1, sizeof **pp)) != NULL)
            (*pp)->client_id = cid;
        if (*pp != NULL) {
            (*pp)->seq = seq;
            (*pp)->first = *first;
            (*pp)->count = n;
        }
    }
    return PLOG_OK;
}

static void finish_proposal(struct proposal *p, int rv, uint64_t first, uint64_t count)
{
    if (p->done != NULL)
        p->done(p->arg, rv, first, count);
    free(p->data);
    free(p);
}

/* fail_pending answers every proposal waiting for its entry PLOG_EINDOUBT (its
 * entry is in the log and may commit under the next leader: the client retries
 * with the same (client, seq), which the dedup table answers if it did), and
 * every read waiting for its round "not leader". */
static void fail_pending(plog_distributed *d)
{
    while (d->pending != NULL) {
        struct proposal *p = d->pending;
        d->pending = p->next;
        finish_proposal(p, PLOG_EINDOUBT, 0, 0);
    }
    d->pending_tail = NULL;
    while (d->reads != NULL) {
        struct read_req *r = d->reads;
        d->reads = r->next;
        r->done(r->arg, PLOG_ENOTLEADER, 0);
        free(r);
    }
}

/* drop_events frees a list of queued events the node thread will not run,
 * answering each proposal and read in it "not leader" (the client retries). */
static void drop_events(struct ev *e)
{
    while (e != NULL) {
        struct ev *next = e->next;
        if (e->kind == EV_RECEIVE)
            plog_distributed_decoded_fini(&e->dec);
        else if (e->kind == EV_PROPOSE)
            finish_proposal(e->prop, PLOG_ENOTLEADER, 0, 0);
        else if (e->kind == EV_READ) {
            e->read->done(e->read->arg, PLOG_ENOTLEADER, 0);
            free(e->read);
        }
        free(e);
        e = next;
    }
}

static void apply(plog_distributed *d, const plog_raft_entry *e)
{
    uint64_t first = 0, count = 0;
    int rv = PLOG_OK;
    if (e->type == PLOG_RAFT_ENTRY_NORMAL)
        rv = apply_normal(d, e, &first, &count);
    if (rv != PLOG_OK && rv != PLOG_EINVAL && d->failed == PLOG_OK) {
        /* The record log failed (a malformed entry, PLOG_EINVAL, is skipped alike
         * on every node): this state machine can no longer follow the log. The
         * node stops. The entry is committed, but this node cannot say at
         * which offsets: its produce is answered PLOG_EINDOUBT, and retried with
         * the same (client id, seq) on the next leader it gets the offsets that
         * leader's state machine gave it. */
        d->failed = rv;
        char why[PLOG_ERRMSG_SIZE];
        plog_log_errmsg(d->records, why, sizeof why);
        snprintf(d->failed_why, sizeof d->failed_why, "record log: %s", why);
        rv = PLOG_EINDOUBT;
    }
    d->applied_index = e->index;
    atomic_store(&d->applied_next, plog_log_next_offset(d->records));
    /* Proposals of earlier indexes were overwritten by another leader's entries. */
    while (d->pending != NULL && d->pending->index <= e->index) {
        struct proposal *p = d->pending;
        d->pending = p->next;
        if (d->pending == NULL)
            d->pending_tail = NULL;
        if (p->index == e->index && p->term == e->term)
            finish_proposal(p, rv, first, count);
        else
            finish_proposal(p, PLOG_ENOTLEADER, 0, 0);
    }
}

static void release_reads(plog_distributed *d)
{
    struct read_req **pp = &d->reads;
    while (*pp != NULL) {
        struct read_req *r = *pp;
        if (r->released && d->applied_index >= r->index) {
            *pp = r->next;
            r->done(r->arg, PLOG_OK, atomic_load(&d->applied_next));
            free(r);
        } else {
            pp = &r->next;
        }
    }
}

/* ---- snapshots of the state machine -------------------------------------------- */

#define SM_MAGIC 0x504c534du /* "PLSM" */

/* sbuf_reserve makes room for n more bytes after b->n. */
static int sbuf_reserve(struct sbuf *b, size_t n)
{
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 65536;
        while (cap < b->n + n)
            cap *= 2;
        uint8_t *q = realloc(b->p, cap);
        if (q == NULL)
            return PLOG_ENOMEM;
        b->p = q;
        b->cap = cap;
    }
    return PLOG_OK;
}

static int sbuf_put(struct sbuf *b, const void *p, size_t n)
{
    int rv = sbuf_reserve(b, n);
    if (rv == PLOG_OK) {
        memcpy(b->p + b->n, p, n);
        b->n += n;
    }
    return rv;
}

static void put64(uint8_t *p, uint64_t v);
static void put32(uint8_t *p, uint32_t v);

/* A snapshot of the state machine: magic u32, dedup count u32, each (client id,
 * seq, first, count) as 4 x u64, then the record log's store frames as its reader
 * streams them (Go: the book's fsm.Snapshot streams the log). The dedup table is
 * encoded on the node thread (snapshot_encode_dedup: 32 bytes a client), the records
 * on the writer thread (snapshot_encode_records), from a point-in-time view: the
 * record log is append-only, so the state at the snapshot's index is its first
 * records, as many as it held then. */
static int snapshot_encode_dedup(plog_distributed *d, struct sbuf *b)
{
    uint32_t nd = 0;
    for (size_t i = 0; i < DEDUP_BUCKETS; i++)
        for (struct dedup *x = d->dedup[i]; x != NULL; x = x->next)
            nd++;
    uint8_t hdr[8];
    put32(hdr, SM_MAGIC);
    put32(hdr + 4, nd);
    int rv = sbuf_put(b, hdr, 8);
    for (size_t i = 0; i < DEDUP_BUCKETS && rv == PLOG_OK; i++)
        for (struct dedup *x = d->dedup[i]; x != NULL && rv == PLOG_OK; x = x->next) {
            uint8_t e[32];
            put64(e, x->client_id);
            put64(e + 8, x->seq);
            put64(e + 16, x->first);
            put64(e + 24, x->count);
            rv = sbuf_put(b, e, 32);
        }
    return rv;
}

/* snapshot_encode_records appends the store frames of the first n records of
 * records to b, read in chunks straight into b; frames of records appended since
 * (the node thread goes on applying) are cut off. Nothing removes or rewrites
 * those n records meanwhile: the record log is reset only by a snapshot installed
 * from the leader, and closed only once the node stopped, both after waiting for
 * the writer; a failed append cuts back only its own records, after them. */
static int snapshot_encode_records(plog_log *records, uint64_t n, struct sbuf *b)
{
    plog_log_reader *r;
    int rv = plog_log_reader_open(records, &r);
    if (rv != PLOG_OK)
        return rv;
    size_t framed = b->n; /* the end of the last whole frame counted */
    uint64_t count = 0;
    while (count < n && rv == PLOG_OK) {
        size_t got, len;
        if ((rv = sbuf_reserve(b, 65536)) != PLOG_OK ||
            (rv = plog_log_reader_read(r, b->p + b->n, 65536, &got)) != PLOG_OK)
            break;
        b->n += got;
        while (count < n && (rv = plog_store_frame_check(b->p + framed, b->n - framed, &len)) == PLOG_OK) {
            framed += PLOG_STORE_HDR + len;
            count++;
        }
        if (rv == PLOG_EOF) /* a frame goes on in the next chunk */
            rv = PLOG_OK;
    }
    plog_log_reader_close(r);
    if (rv == PLOG_EOF) /* fewer records than the log held at the snapshot's index */
        rv = PLOG_ECORRUPT;
    b->n = framed;
    return rv;
}

static void dedup_clear(plog_distributed *d)
{
    for (size_t i = 0; i < DEDUP_BUCKETS; i++)
        while (d->dedup[i] != NULL) {
            struct dedup *x = d->dedup[i];
            d->dedup[i] = x->next;
            free(x);
        }
}

/* snapshot_restore replaces the state machine by the one p[0..n) holds. With
 * keep_prefix (a snapshot installed from the leader while the node serves), the
 * records the record log already holds are kept: they were applied from
 * committed entries, so they are the snapshot's first records, and readers may be
 * reading them (the server has published them). Resetting the log under them
 * answered OUT_OF_RANGE for offsets below the published end until the re-append
 * caught up. At boot (keep_prefix false) the record log is rebuilt: it is never
 * fsynced, so what a crash left of it is not trusted. */
static int snapshot_restore(plog_distributed *d, const uint8_t *p, size_t n, bool keep_prefix)
{
    if (n < 8 || get32(p) != SM_MAGIC)
        return PLOG_ECORRUPT;
    uint32_t nd = get32(p + 4);
    if (nd > (n - 8) / 32)
        return PLOG_ECORRUPT;
    dedup_clear(d);
    for (uint32_t i = 0; i < nd; i++) {
        const uint8_t *e = p + 8 + (size_t)i * 32;
        struct dedup **pp = dedup_find(d, get64(e));
        if (*pp != NULL)
            return PLOG_ECORRUPT; /* a client twice: overwriting its node lost the rest of its bucket */
        if ((*pp = calloc(1, sizeof **pp)) == NULL)
            return PLOG_ENOMEM;
        **pp = (struct dedup){
            .client_id = get64(e), .seq = get64(e + 8), .first = get64(e + 16), .count = get64(e + 24)};
    }
    const uint8_t *q = p + 8 + (size_t)nd * 32, *end = p + n;
    uint64_t keep = 0;
    if (keep_prefix) {
        /* Count the snapshot's records; keep ours only if they are a prefix. */
        uint64_t total = 0;
        for (const uint8_t *c = q; c < end;) {
            size_t len;
            if (plog_store_frame_check(c, (size_t)(end - c), &len) != PLOG_OK)
                return PLOG_ECORRUPT;
            c += PLOG_STORE_HDR + len;
            total++;
        }
        keep = plog_log_next_offset(d->records);
        if (keep > total)
            keep = 0;
    }
    int rv = keep > 0 ? PLOG_OK : plog_log_reset(d->records);
    for (uint64_t i = 0; rv == PLOG_OK && q < end; i++) {
        size_t len;
        if (plog_store_frame_check(q, (size_t)(end - q), &len) != PLOG_OK)
            return PLOG_ECORRUPT;
        if (i < keep) {
            q += PLOG_STORE_HDR + len;
            continue;
        }
        Log__V1__Record *rec = log__v1__record__unpack(NULL, len, q + PLOG_STORE_HDR);
        if (rec == NULL)
            return PLOG_ECORRUPT;
        Log__V1__Record copy = LOG__V1__RECORD__INIT;
        copy.value = rec->value;
        uint64_t off;
        rv = plog_log_append(d->records, &copy, &off);
        log__v1__record__free_unpacked(rec, NULL);
        q += PLOG_STORE_HDR + len;
    }
    atomic_store(&d->applied_next, plog_log_next_offset(d->records));
    return rv;
}

/* A snapshot is the whole state. The node thread only notes what it will hold (the
 * meta, the dedup table, how many records): a writer thread encodes the records,
 * as long as the record log takes to copy, and writes and fsyncs the file, longer
 * for a log of many MB than a follower's election timeout (snapshot_writer); the
 * core then takes the bytes, not a copy (collect_snapshot). The next one waits
 * SNAPSHOT_SPACING times as long as the last one took, encoding and write together,
 * so that snapshots take at most 1/SNAPSHOT_SPACING of the disk's time however
 * small snapshot_entries is. A black-box run at 200 produces a second with
 * --snapshot-entries 100 and a log of 10-20 MB snapshotted every half second,
 * written on the node thread then, elected a new leader every few seconds
 * (HashiCorp raft checks its SnapshotThreshold only every SnapshotInterval, for
 * the same reason); with the encoding and the core's copy still there, a
 * second one saw a node thread stall 60-430 ms for 50-84 MB and an election
 * after each stall on the leader. */
#define SNAPSHOT_SPACING 20

/* snapshot_writer encodes the records of the snapshot job in flight and writes it,
 * off the node thread, and wakes the node thread to collect it. */
static void *snapshot_writer(void *arg)
{
    plog_distributed *d = arg;
    struct sbuf *b = &d->snap_write.buf;
    int rv = snapshot_encode_records(d->records, d->snap_write.records, b);
    if (rv == PLOG_OK) {
        /* The core keeps the bytes until its next snapshot: no more than they need
         * (the buffer grew by doubling). */
        uint8_t *fit = realloc(b->p, b->n > 0 ? b->n : 1);
        if (fit != NULL) {
            b->p = fit;
            b->cap = b->n > 0 ? b->n : 1;
        }
        plog_raftstore_snapshot_write(d->snap_write.job, b->p, b->n);
    } else {
        char why[PLOG_ERRMSG_SIZE] = "";
        if (rv == PLOG_EIO)
            plog_log_errmsg(d->records, why, sizeof why);
        plog_raftstore_snapshot_fail(d->snap_write.job, rv, why[0] != '\0' ? why : plog_strerror(rv));
    }
    pthread_mutex_lock(&d->mu);
    d->snap_written = true;
    pthread_cond_signal(&d->cv);
    pthread_mutex_unlock(&d->mu);
    return NULL;
}

/* collect_snapshot ends the snapshot job in flight once its writer is done (with
 * wait: waits for it). Only then, the snapshot durable, does the core get it (with
 * adopt): it takes the bytes, compacts its log and may send them to followers; and
 * the stored entries before its keep_from go. A crash before leaves the previous
 * snapshot and the whole log. Without adopt (a snapshot installed from the leader,
 * newer, replaces it) the bytes are dropped. A failed encoding or write fails the
 * node as a failed save on the node thread did (the reason in raftstore's errmsg). */
static int collect_snapshot(plog_distributed *d, bool wait, bool adopt)
{
    if (d->snap_write.job == NULL)
        return PLOG_OK;
    pthread_mutex_lock(&d->mu);
    bool written = d->snap_written;
    pthread_mutex_unlock(&d->mu);
    if (!written && !wait)
        return PLOG_OK;
    if (d->snap_write.threaded)
        pthread_join(d->snap_write.thread, NULL);
    pthread_mutex_lock(&d->mu);
    d->snap_written = false;
    pthread_mutex_unlock(&d->mu);
    int rv = plog_raftstore_snapshot_end(d->store, d->snap_write.job);
    d->snap_write.job = NULL;
    struct sbuf b = d->snap_write.buf;
    d->snap_write.buf = (struct sbuf){0};
    if (rv == PLOG_OK) {
        d->snap_index = d->snap_write.index;
        atomic_fetch_add(&d->snaps_taken, 1);
        atomic_store(&d->snap_taken_index, d->snap_write.index);
    }
    if (rv == PLOG_OK && adopt) {
        plog_raft_event ev = {.type = PLOG_RAFT_EV_SNAPSHOT_TAKEN,
                              .now_ms = now_ms(),
                              .index = d->snap_write.index,
                              .snap_data = b.p,
                              .snap_len = b.n};
        plog_raft_update up;
        int sv = plog_raft_step(d->raft, &ev, &up);
        if (sv == PLOG_OK) {
            b.p = NULL; /* the core's now */
            if (up.compacted != NULL)
                plog_raftstore_compact(d->store, up.keep_from);
        } else if (sv == PLOG_ENOMEM) {
            d->failed = rv = sv;
            snprintf(d->failed_why, sizeof d->failed_why, "raft: out of memory");
        }
    }
    free(b.p);
    uint64_t end = now_ms();
    d->snap_not_before = end + SNAPSHOT_SPACING * (end - d->snap_write.start_ms);
    return rv;
}

/* maybe_snapshot takes a snapshot once snapshot_entries entries were applied
 * since the last one: what it will hold is noted here (the core's meta, the dedup
 * table, the number of records) and a writer thread encodes and writes it
 * (collect_snapshot hands it to the core once it is durable). Not while the last
 * one is being written; not while the leader sends its snapshot to a follower: a
 * new one would restart that transfer (plog_raft_sending_snapshot); nor before
 * snap_not_before. */
static int maybe_snapshot(plog_distributed *d)
{
    if (d->cfg.snapshot_entries == 0 || d->snap_write.job != NULL ||
        d->applied_index < d->snap_index + d->cfg.snapshot_entries)
        return PLOG_OK;
    uint64_t start = now_ms();
    plog_raft_snapshot meta;
    if (start < d->snap_not_before || plog_raft_sending_snapshot(d->raft) ||
        plog_raft_snapshot_meta(d->raft, d->applied_index, &meta) != PLOG_OK)
        return PLOG_OK;
    struct sbuf b = {0};
    int rv = snapshot_encode_dedup(d, &b);
    if (rv == PLOG_OK &&
        (rv = plog_raftstore_snapshot_begin(d->store, &meta, &d->snap_write.job)) == PLOG_OK) {
        d->snap_write.index = meta.index;
        d->snap_write.start_ms = start;
        /* Every record applied up to the index is in the record log, and only those. */
        d->snap_write.records = plog_log_next_offset(d->records) - plog_log_lowest_offset(d->records);
        d->snap_write.buf = b;
        d->snap_write.threaded = pthread_create(&d->snap_write.thread, NULL, snapshot_writer, d) == 0;
        if (!d->snap_write.threaded)
            snapshot_writer(d); /* no thread to be had: written here */
        return PLOG_OK;
    }
    free(b.p);
    uint64_t end = now_ms();
    d->snap_not_before = end + SNAPSHOT_SPACING * (end - start);
    return rv;
}

/* ---- handling an update ------------------------------------------------------- */

static int queue_msg(plog_distributed *d, struct outq *q, const plog_raft_msg *m)
{
    if (q->n == q->cap) {
        size_t cap = q->cap ? q->cap * 2 : 32;
        struct outmsg *n = realloc(q->m, cap * sizeof *n);
        if (n == NULL)
            return PLOG_ENOMEM;
        q->m = n;
        q->cap = cap;
    }
    size_t len = plog_distributed_msg_size(m, d->self_addr);
    uint8_t *buf = malloc(len);
    if (buf == NULL)
        return PLOG_ENOMEM;
    plog_distributed_msg_encode(m, d->self_addr, d->cluster, buf);
    q->m[q->n++] = (struct outmsg){.to = m->to, .request = is_request(m->type), .buf = buf, .len = len};
    return PLOG_OK;
}

/* A peer silent for this long has its connection started afresh before the next
 * send, at most once per RECONNECT_MS: an nng 1.5.2 dialer whose peer was killed
 * again and again was seen never to reconnect (a fresh one always did), and two
 * followers that only exchange pre-votes would otherwise never hear each other. */
#define SILENT_FACTOR 2
#define RECONNECT_MS 1000

static void send_all(plog_distributed *d, struct outq *q)
{
    uint64_t now = now_ms();
    uint64_t silent =
        (uint64_t)SILENT_FACTOR * (d->cfg.election_timeout_ms ? d->cfg.election_timeout_ms : 150);
    for (size_t i = 0; i < q->n; i++) {
        char addr[128] = "";
        bool reset = false;
        pthread_mutex_lock(&d->mu);
        struct peer *p = peer_by_id(d, q->m[i].to);
        if (p != NULL) {
            copy_str(addr, sizeof addr, p->raft_addr);
            bool unanswered = p->asked_ms != 0 && now > p->asked_ms + silent;
            if ((now > p->last_heard_ms + silent || unanswered) && now > p->last_reset_ms + RECONNECT_MS) {
                p->last_reset_ms = now;
                p->asked_ms = 0;
                reset = unanswered || p->last_heard_ms != 0 || now > d->opened_ms + RECONNECT_MS;
            }
            if (q->m[i].request && p->asked_ms == 0)
                p->asked_ms = now;
        }
        pthread_mutex_unlock(&d->mu);
        if (reset && addr[0] != '\0')
            plog_transport_forget(d->tr, addr);
        if (addr[0] != '\0')
            plog_transport_send(d->tr, addr, q->m[i].buf, q->m[i].len);
        free(q->m[i].buf);
    }
    q->n = 0;
}

static void publish_status(plog_distributed *d)
{
    plog_raft_status st;
    plog_raft_get_status(d->raft, &st);
    pthread_mutex_lock(&d->mu);
    bool was_leader = d->st.role == PLOG_RAFT_LEADER;
    bool changed = d->st.role != st.role || d->st.term != st.term || d->st.leader != st.leader;
    d->st = st;
    pthread_mutex_unlock(&d->mu);
    if (changed) {
        plog_transport_stats ts = {0};
        if (d->tr != NULL)
            plog_transport_stats_get(d->tr, &ts);
        plog_logger_logf(
            d->cfg.logger, PLOG_LOGGER_INFO, "raft",
            "role=%s term=%llu leader=%016llx servers=%u commit=%llu last=%llu sent=%llu dropped=%llu "
            "received=%llu unauthenticated=%llu denied=%llu tls_failures=%llu",
            plog_raft_role_name(st.role), (unsigned long long)st.term, (unsigned long long)st.leader,
            st.conf.n, (unsigned long long)st.commit, (unsigned long long)st.last,
            (unsigned long long)ts.sent, (unsigned long long)ts.send_dropped, (unsigned long long)ts.received,
            (unsigned long long)ts.unauthenticated, (unsigned long long)ts.denied,
            (unsigned long long)ts.tls_failures);
    }
    if (was_leader && st.role != PLOG_RAFT_LEADER)
        fail_pending(d);
}

/* handle does steps 1-3 of the driver order for one update; fatal errors
 * (a failed write) return non-OK: the node stops serving. */
static int handle(plog_distributed *d, const plog_raft_update *up)
{
    int rv;
    if (up->snapshot != NULL) {
        /* From the leader (§7): persist it, drop the stored log, restore the state
         * machine. Produces waiting for entries it covers cannot know their
         * outcome here: the client retries, the dedup table answers. A snapshot
         * of ours still being written ends first: it writes the same file, and
         * its older one must not replace this one. */
        if ((rv = collect_snapshot(d, true, false)) != PLOG_OK ||
            (rv = plog_raftstore_save_snapshot(d->store, up->snapshot, true)) != PLOG_OK ||
            (rv = snapshot_restore(d, up->snapshot->data, up->snapshot->len, true)) != PLOG_OK)
            return rv;
        d->applied_index = d->snap_index = up->snapshot->index;
        while (d->pending != NULL && d->pending->index <= up->snapshot->index) {
            struct proposal *p = d->pending;
            d->pending = p->next;
            finish_proposal(p, PLOG_EINDOUBT, 0, 0);
        }
        if (d->pending == NULL)
            d->pending_tail = NULL;
        d->dirty = true;
        d->last_index = up->snapshot->index;
        d->last_term = up->snapshot->term;
        if (d->cfg.applied != NULL)
            d->cfg.applied(d->cfg.arg, atomic_load(&d->applied_next));
    }
    if ((up->flags & PLOG_RAFT_UPD_HARDSTATE) &&
        (rv = plog_raftstore_save_hard_state(d->store, &up->hs)) != PLOG_OK)
        return rv;
    if (up->n_entries > 0) {
        if ((rv = plog_raftstore_append(d->store, up->entries, up->n_entries)) != PLOG_OK)
            return rv;
        d->dirty = true;
        d->last_index = up->entries[up->n_entries - 1].index;
        d->last_term = up->entries[up->n_entries - 1].term;
    }
    /* the hard state is durable already (above): the early condition holds */
    struct outq *q = (up->flags & PLOG_RAFT_UPD_SEND_EARLY) ? &d->early : &d->late;
    for (size_t i = 0; i < up->n_msgs; i++)
        if ((rv = queue_msg(d, q, &up->msgs[i])) != PLOG_OK)
            return rv;
    for (size_t i = 0; i < up->n_committed; i++)
        apply(d, &up->committed[i]);
    for (size_t i = 0; i < up->n_reads; i++)
        for (struct read_req *r = d->reads; r != NULL; r = r->next)
            if (r->ctx == up->reads[i].ctx) {
                r->released = true;
                r->index = up->reads[i].index;
            }
    if (up->n_committed > 0 || up->n_reads > 0) {
        release_reads(d);
        if (d->cfg.applied != NULL)
            d->cfg.applied(d->cfg.arg, atomic_load(&d->applied_next));
    }
    d->deadline = up->deadline_ms;
    if (up->flags & PLOG_RAFT_UPD_ROLE)
        publish_status(d);
    return PLOG_OK;
}

static int step(plog_distributed *d, plog_raft_event *ev, plog_raft_update *up)
{
    ev->now_ms = now_ms();
    int rv = plog_raft_step(d->raft, ev, up);
    if (rv == PLOG_ENOMEM) {
        d->failed = rv;
        snprintf(d->failed_why, sizeof d->failed_why, "raft: out of memory");
        return PLOG_ENOTLEADER;
    }
    int hv = handle(d, up);
    if (hv != PLOG_OK && d->failed == PLOG_OK) {
        /* The core believes what this update asked is done: going on would let
         * memory and disk disagree. Stop instead; a restart boots from disk. */
        d->failed = hv;
        snprintf(d->failed_why, sizeof d->failed_why, "raft storage: %s", plog_raftstore_errmsg(d->store));
        plog_logger_logf(d->cfg.logger, PLOG_LOGGER_ERROR, "raft storage failed; node stops",
                         "err=\"%s\" detail=\"%s\"", plog_strerror(hv), plog_raftstore_errmsg(d->store));
    }
    /* A node that failed (fail-stop) leads nothing: what asked for this step is
     * answered "not leader", and retried with the same (client id, seq) on the
     * next leader. */
    return d->failed != PLOG_OK ? PLOG_ENOTLEADER : rv;
}

/* flush ends a round: the early messages, one fsync, the late messages, PERSISTED. */
static int flush(plog_distributed *d)
{
    int rv;
    while (d->dirty) {
        d->dirty = false;
        send_all(d, &d->early);
        if ((rv = plog_raftstore_sync(d->store)) != PLOG_OK)
            return rv;
        send_all(d, &d->late);
        plog_raft_event p = {.type = PLOG_RAFT_EV_PERSISTED, .index = d->last_index, .term = d->last_term};
        plog_raft_update up;
        rv = step(d, &p, &up);
        if (rv != PLOG_OK && rv != PLOG_EINVAL)
            return rv;
    }
    send_all(d, &d->early);
    send_all(d, &d->late);
    return PLOG_OK;
}

/* foreign says whether m comes from another cluster, to be dropped. A bootstrap
 * makes a cluster id at random and every message carries its sender's. Without
 * them, a node bootstrapped again on an emptied directory (or two nodes each
 * bootstrapped) made a second cluster whose messages the first one's nodes took:
 * two leaders in one term, nodes following both, logs that diverged. A node of
 * no cluster yet (a joiner) takes the id of the first leader that sends it
 * entries or a snapshot, durably before it answers. Id 0 (a node of no cluster,
 * or one bootstrapped before ids existed) is never refused. */
static bool foreign(plog_distributed *d, const plog_distributed_decoded *m)
{
    if (m->cluster == 0 || m->cluster == d->cluster)
        return false;
    if (d->cluster == 0) {
        if (m->msg.type != PLOG_RAFT_MSG_APPEND && m->msg.type != PLOG_RAFT_MSG_SNAPSHOT)
            return false;
        if (plog_raftstore_save_cluster(d->store, m->cluster) != PLOG_OK)
            return true; /* not answered: the leader sends again */
        d->cluster = m->cluster;
        plog_logger_logf(d->cfg.logger, PLOG_LOGGER_INFO, "raft cluster joined",
                         "cluster=%016llx leader_addr=%s", (unsigned long long)m->cluster, m->from_addr);
        return false;
    }
    atomic_fetch_add(&d->foreign, 1);
    uint64_t now = now_ms();
    if (now >= d->foreign_warned_ms + 10000) {
        d->foreign_warned_ms = now;
        plog_logger_logf(d->cfg.logger, PLOG_LOGGER_WARN, "raft message from another cluster dropped",
                         "from_addr=%s cluster=%016llx ours=%016llx dropped=%llu hint=\"two clusters: "
                         "one was made by a second bootstrap (an emptied data directory started with "
                         "--bootstrap?); move the data directories of that one's nodes aside and start "
                         "them with --start-join-addrs\"",
                         m->from_addr, (unsigned long long)m->cluster, (unsigned long long)d->cluster,
                         (unsigned long long)atomic_load(&d->foreign));
    }
    return true;
}

static void do_event(plog_distributed *d, struct ev *e)
{
    plog_raft_update up;
    plog_raft_event ev = {0};
    int rv;
    switch (e->kind) {
    case EV_RECEIVE:
        if (!foreign(d, &e->dec)) {
            ev.type = PLOG_RAFT_EV_RECEIVE;
            ev.msg = &e->dec.msg;
            step(d, &ev, &up);
        }
        plog_distributed_decoded_fini(&e->dec);
        break;
    case EV_PROPOSE: {
        plog_raft_buf b = {.data = e->prop->data, .len = e->prop->len};
        ev.type = PLOG_RAFT_EV_PROPOSE;
        ev.bufs = &b;
        ev.n_bufs = 1;
        rv = step(d, &ev, &up);
        if (rv != PLOG_OK) {
            finish_proposal(e->prop, rv, 0, 0);
            break;
        }
        e->prop->index = up.index;
        e->prop->term = up.term;
        if (d->pending_tail != NULL)
            d->pending_tail->next = e->prop;
        else
            d->pending = e->prop;
        d->pending_tail = e->prop;
        break;
    }
    case EV_READ:
        e->read->ctx = ++d->read_ctx;
        e->read->next = d->reads;
        d->reads = e->read;
        ev.type = PLOG_RAFT_EV_READ;
        ev.ctx = e->read->ctx;
        rv = step(d, &ev, &up);
        if (rv != PLOG_OK) {
            d->reads = e->read->next;
            e->read->done(e->read->arg, rv, 0);
            free(e->read);
        } else {
            release_reads(d);
        }
        break;
    }
    free(e);
}

/* reconcile: the leader makes the configuration follow membership, one change
 * at a time: members that joined are added (as learners, promoted once caught
 * up), members that left are removed; a leader that is leaving hands over first. */
static void reconcile(plog_distributed *d)
{
    plog_raft_status st;
    plog_raft_get_status(d->raft, &st);
    if (st.role != PLOG_RAFT_LEADER)
        return;
    uint64_t add = 0, remove = 0;
    bool self_left = false;
    pthread_mutex_lock(&d->mu);
    for (size_t i = 0; i < d->npeers; i++) {
        const struct peer *p = &d->peers[i];
        bool in = plog_raft_conf_find(&st.conf, p->id) != NULL;
        if (p->left && in) {
            if (p->id == d->id)
                self_left = true;
            else if (remove == 0)
                remove = p->id;
        } else if (p->joined && !p->left && !in && add == 0) {
            add = p->id;
        }
    }
    pthread_mutex_unlock(&d->mu);
    plog_raft_update up;
    plog_raft_event ev = {.type = PLOG_RAFT_EV_CONF_CHANGE};
    if (self_left) {
        ev.type = PLOG_RAFT_EV_TRANSFER;
        ev.id = 0;
    } else if (remove != 0) {
        ev.conf_op = PLOG_RAFT_CONF_REMOVE;
        ev.id = remove;
    } else if (add != 0) {
        ev.conf_op = PLOG_RAFT_CONF_ADD_VOTER;
        ev.id = add;
    } else {
        return;
    }
    step(d, &ev, &up); /* EBUSY: one change at a time, retried next time */
}

static void *node_main(void *arg)
{
    plog_distributed *d = arg;
    bool stopped = false; /* by a failure, not by plog_distributed_stop */
    pthread_mutex_lock(&d->mu);
    for (;;) {
        while (d->qhead == NULL && !d->stop && !d->snap_written) {
            uint64_t now = now_ms();
            uint64_t until = d->deadline < d->next_reconcile ? d->deadline : d->next_reconcile;
            if (until <= now)
                break;
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            uint64_t wait = until - now;
            ts.tv_sec += (time_t)(wait / 1000);
            ts.tv_nsec += (long)(wait % 1000) * 1000000;
            if (ts.tv_nsec >= 1000000000) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000;
            }
            pthread_cond_timedwait(&d->cv, &d->mu, &ts);
        }
        if (d->stop)
            break;
        struct ev *batch = d->qhead;
        d->qhead = d->qtail = NULL;
        pthread_mutex_unlock(&d->mu);

        while (batch != NULL) {
            struct ev *e = batch;
            batch = e->next;
            do_event(d, e);
        }
        uint64_t now = now_ms();
        if (now >= d->deadline) {
            plog_raft_event t = {.type = PLOG_RAFT_EV_TICK};
            plog_raft_update up;
            step(d, &t, &up);
        }
        if (now >= d->next_reconcile) {
            reconcile(d);
            d->next_reconcile = now + RECONCILE_MS;
        }
        if (d->failed != PLOG_OK || flush(d) != PLOG_OK || collect_snapshot(d, false, true) != PLOG_OK ||
            maybe_snapshot(d) != PLOG_OK || flush(d) != PLOG_OK) {
            if (d->failed_why[0] == '\0')
                snprintf(d->failed_why, sizeof d->failed_why, "raft storage: %s",
                         plog_raftstore_errmsg(d->store));
            plog_logger_logf(d->cfg.logger, PLOG_LOGGER_ERROR, "raft node stops", "err=\"%s\" detail=\"%s\"",
                             plog_strerror(d->failed != PLOG_OK ? d->failed : PLOG_EIO), d->failed_why);
            pthread_mutex_lock(&d->mu);
            d->stop = true;
            /* What this node said of itself is over: it leads nothing now. */
            d->st.role = PLOG_RAFT_FOLLOWER;
            d->st.leader = 0;
            stopped = true;
            break;
        }
        publish_status(d);
        pthread_mutex_lock(&d->mu);
    }
    struct ev *rest = d->qhead;
    d->qhead = d->qtail = NULL;
    pthread_mutex_unlock(&d->mu);
    /* The writer of a snapshot taken last is waited for, so nothing outlives the
     * node thread (nor reads the record log once it is closed). */
    int sv = collect_snapshot(d, true, d->failed == PLOG_OK);
    if (sv != PLOG_OK)
        plog_logger_logf(d->cfg.logger, PLOG_LOGGER_ERROR, "raft snapshot not written",
                         "err=\"%s\" detail=\"%s\"", plog_strerror(sv), plog_raftstore_errmsg(d->store));
    drop_events(rest);
    fail_pending(d);
    if (stopped && d->cfg.failed != NULL)
        d->cfg.failed(d->cfg.arg, d->failed_why);
    return NULL;
}

/* ---- open and close -------------------------------------------------------------- */

/* load_entry: the core reads back an entry it dropped from memory (node thread). */
static int load_entry(void *arg, uint64_t index, uint8_t *buf, size_t len)
{
    return plog_raftstore_read(arg, index, buf, len);
}

/* bootstrap makes this node a new cluster with itself as the one voter, durably,
 * before the core starts (as HashiCorp raft's BootstrapCluster does): the term
 * becomes 1 (the hard state, written atomically), then the configuration goes to
 * Raft's log as entry 1 of term 1, a CONFIG entry, fsynced. The core then boots
 * from storage as on any restart and takes its configuration from that entry, so
 * the configuration outlives every restart, with or without a snapshot (the core's
 * cfg.initial would hold it in memory only). hs is what the store held: a crash
 * mid-bootstrap leaves a hard state and no entry, and the next start with bootstrap
 * does it again; a term stored before is kept (never lowered, its vote kept). */
static int bootstrap(plog_distributed *d, const plog_raft_hard_state *hs)
{
    int rv;
    if (plog_raftstore_cluster(d->store) == 0) {
        /* A new cluster, a new id (kept when a crash mid-bootstrap repeats it). */
        uint64_t id = 0;
        while (id == 0)
            if (getrandom(&id, sizeof id, 0) != (ssize_t)sizeof id)
                return PLOG_EIO;
        if ((rv = plog_raftstore_save_cluster(d->store, id)) != PLOG_OK)
            return rv;
    }
    if (hs->term == 0) {
        plog_raft_hard_state first = {.term = 1};
        if ((rv = plog_raftstore_save_hard_state(d->store, &first)) != PLOG_OK)
            return rv;
    }
    plog_raft_conf c = {.n = 1};
    c.servers[0] = (plog_raft_server){.id = d->id, .role = PLOG_RAFT_VOTER};
    uint8_t buf[PLOG_RAFT_CONF_MAX_BYTES];
    plog_raft_entry e = {.term = 1, .index = 1, .type = PLOG_RAFT_ENTRY_CONFIG, .data = buf};
    e.len = plog_raft_conf_encode(&c, buf);
    if ((rv = plog_raftstore_append(d->store, &e, 1)) != PLOG_OK ||
        (rv = plog_raftstore_sync(d->store)) != PLOG_OK)
        return rv;
    plog_logger_logf(d->cfg.logger, PLOG_LOGGER_INFO, "raft bootstrapped", "voter=%s index=1 cluster=%016llx",
                     d->name, (unsigned long long)plog_raftstore_cluster(d->store));
    return PLOG_OK;
}

int plog_distributed_open(const plog_distributed_config *cfg, plog_distributed **dp, char *err, size_t errsz)
{
    plog_distributed *d = calloc(1, sizeof *d);
    if (d == NULL)
        return PLOG_ENOMEM;
    pthread_mutex_init(&d->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&d->cv, &ca);
    pthread_condattr_destroy(&ca);
    atomic_init(&d->applied_next, 0);
    d->cfg = *cfg;
    d->name = strdup(cfg->name);
    d->dir = strdup(cfg->dir);
    int rv = PLOG_ENOMEM;
    if (d->name == NULL || d->dir == NULL)
        goto fail;
    d->cfg.name = d->name;
    d->cfg.dir = d->dir;
    d->id = plog_distributed_id(cfg->name);
    const char *advertised = cfg->advertise_addr != NULL ? cfg->advertise_addr : cfg->raft_addr;
    copy_str(d->self_addr, sizeof d->self_addr, advertised);
    d->peers[0] = (struct peer){.id = d->id, .joined = true};
    copy_str(d->peers[0].name, sizeof d->peers[0].name, cfg->name);
    copy_str(d->peers[0].raft_addr, sizeof d->peers[0].raft_addr, advertised);
    copy_str(d->peers[0].rpc_addr, sizeof d->peers[0].rpc_addr, cfg->rpc_addr);
    d->npeers = 1;

    /* The Raft port and the node certificate first: what fails most often fails
     * before the data directory is touched. Until plog_distributed_start, enqueue
     * drops what arrives (the senders retry). */
    plog_transport_config tc = {
        .bind_addr = cfg->raft_addr,
        .cert_file = cfg->cert_file,
        .key_file = cfg->key_file,
        .ca_file = cfg->ca_file,
        .acl = cfg->acl,
        .max_msg_bytes = 16u << 20,
        .sendbuf = 256,
        .dial_from_bind_host = true,
        .recv = on_receive,
        .refused = on_refused,
        .arg = d,
    };
    if ((rv = plog_transport_open(&tc, &d->tr, err, errsz)) != PLOG_OK)
        goto fail;
    char path[4096];
    if (plog_log_mkdirs(cfg->dir) != 0) {
        plog_errf(err, errsz, "mkdir %s: %s", cfg->dir, strerror(errno));
        rv = PLOG_EIO;
        goto fail;
    }
    snprintf(path, sizeof path, "%s/raft", cfg->dir);
    if ((rv = plog_raftstore_open(path, &cfg->log, &d->store, err, errsz)) != PLOG_OK)
        goto fail;
    /* The record log is derived state: rebuilt from Raft's log at every start. */
    snprintf(path, sizeof path, "%s/records", cfg->dir);
    plog_log_config lc = cfg->log;
    lc.sync = PLOG_SYNC_NEVER;
    lc.segment.initial_offset = 0;
    if ((rv = plog_log_open(path, &lc, &d->records)) != PLOG_OK ||
        (rv = plog_log_reset(d->records)) != PLOG_OK) {
        plog_errf(err, errsz, "record log %s: %s", path, plog_strerror(rv));
        goto fail;
    }
    *dp = d;
    return PLOG_OK;
fail:
    plog_distributed_close(d);
    return rv;
}

int plog_distributed_start(plog_distributed *d, char *err, size_t errsz)
{
    assert(!d->started && d->raft == NULL);
    const plog_distributed_config *cfg = &d->cfg;
    plog_raft_boot boot;
    int rv = plog_raftstore_boot(d->store, &boot);
    if (rv != PLOG_OK) {
        plog_errf(err, errsz, "raft state: %s", plog_raftstore_errmsg(d->store));
        return rv;
    }
    /* A node belongs to a cluster once Raft's log or a snapshot holds something (the
     * configuration comes with it); a hard state alone is what a crash leaves
     * mid-bootstrap, or a joiner before its first entry. */
    bool fresh = boot.snapshot == NULL && boot.n_entries == 0;
    if (cfg->bootstrap && fresh) {
        if ((rv = bootstrap(d, &boot.hs)) != PLOG_OK ||
            (rv = plog_raftstore_boot(d->store, &boot)) != PLOG_OK) {
            plog_errf(err, errsz, "raft bootstrap: %s", plog_raftstore_errmsg(d->store));
            return rv;
        }
    }
    d->cluster = plog_raftstore_cluster(d->store);
    if (boot.snapshot != NULL) {
        if ((rv = snapshot_restore(d, boot.snapshot->data, boot.snapshot->len, false)) != PLOG_OK) {
            plog_errf(err, errsz, "restore the snapshot at %llu: %s",
                      (unsigned long long)boot.snapshot->index, plog_strerror(rv));
            return rv;
        }
        d->applied_index = d->snap_index = boot.snapshot->index;
        if (cfg->applied != NULL)
            cfg->applied(cfg->arg, atomic_load(&d->applied_next));
    }
    plog_raft_config rc;
    plog_raft_config_default(&rc, d->id);
    rc.seed = d->id ^ now_ms();
    rc.election_timeout_ms = cfg->election_timeout_ms ? cfg->election_timeout_ms : 150;
    rc.heartbeat_ms = cfg->heartbeat_ms ? cfg->heartbeat_ms : 10;
    if (cfg->follower_live_ms)
        rc.follower_live_ms = cfg->follower_live_ms;
    rc.max_batch = 256;
    rc.max_batch_bytes = 256u << 10;
    rc.max_inflight = 16;
    rc.mem_limit = RAFT_MEM_LIMIT;
    rc.load = load_entry;
    rc.load_arg = d->store;
    /* The hard state's term covers every stored entry's: a lost or foreign
     * hardstate file (term 0) under a log of later terms made the core refuse the
     * boot as an "invalid argument", naming no file. */
    if (boot.n_entries > 0 && boot.entries[boot.n_entries - 1].term > boot.hs.term) {
        plog_errf(err, errsz,
                  "raft state: Raft's log holds index %" PRIu64 " of term %" PRIu64
                  ", past the stored term %" PRIu64 ": %s/raft/hardstate is lost or not this log's",
                  boot.entries[boot.n_entries - 1].index, boot.entries[boot.n_entries - 1].term, boot.hs.term,
                  cfg->dir);
        return PLOG_ECORRUPT;
    }
    if ((rv = plog_raft_new(&rc, &boot, &d->raft)) != PLOG_OK) {
        plog_errf(err, errsz, "raft: %s", plog_strerror(rv));
        return rv;
    }
    d->opened_ms = now_ms();
    pthread_mutex_lock(&d->mu);
    plog_raft_get_status(d->raft, &d->st);
    if (pthread_create(&d->thread, NULL, node_main, d) != 0) {
        pthread_mutex_unlock(&d->mu);
        plog_errf(err, errsz, "cannot start the node thread");
        return PLOG_ENOMEM;
    }
    d->started = true;
    pthread_mutex_unlock(&d->mu);
    return PLOG_OK;
}

/* ---- the API -------------------------------------------------------------------------- */

plog_log *plog_distributed_log(plog_distributed *d)
{
    return d->records;
}

uint64_t plog_distributed_applied_next(plog_distributed *d)
{
    return atomic_load(&d->applied_next);
}

static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 3; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

int plog_distributed_produce(plog_distributed *d, uint64_t client_id, uint64_t seq,
                             const uint8_t *const *values, const size_t *lens, size_t n,
                             plog_distributed_done_fn done, void *arg)
{
    if (n == 0 || n > UINT32_MAX)
        return PLOG_EINVAL;
    pthread_mutex_lock(&d->mu);
    bool leader = d->st.role == PLOG_RAFT_LEADER, stopping = d->stop;
    pthread_mutex_unlock(&d->mu);
    if (!leader || stopping)
        return PLOG_ENOTLEADER;
    size_t len = 21;
    for (size_t i = 0; i < n; i++)
        len += 4 + lens[i];
    struct proposal *p = calloc(1, sizeof *p);
    struct ev *e = calloc(1, sizeof *e);
    uint8_t *buf = malloc(len);
    if (p == NULL || e == NULL || buf == NULL) {
        free(p);
        free(e);
        free(buf);
        return PLOG_ENOMEM;
    }
    buf[0] = ENTRY_VERSION;
    put64(buf + 1, client_id);
    put64(buf + 9, seq);
    put32(buf + 17, (uint32_t)n);
    uint8_t *q = buf + 21;
    for (size_t i = 0; i < n; i++) {
        put32(q, (uint32_t)lens[i]);
        if (lens[i] > 0)
            memcpy(q + 4, values[i], lens[i]);
        q += 4 + lens[i];
    }
    *p = (struct proposal){.data = buf, .len = len, .done = done, .arg = arg};
    e->kind = EV_PROPOSE;
    e->prop = p;
    if (!enqueue(d, e)) {
        free(buf);
        free(p);
        free(e);
        return PLOG_ENOTLEADER;
    }
    return PLOG_OK;
}

struct waiter {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
    int rv;
    uint64_t first;
};

static void wait_done(void *arg, int rv, uint64_t first, uint64_t count)
{
    (void)count;
    struct waiter *w = arg;
    pthread_mutex_lock(&w->mu);
    w->done = true;
    w->rv = rv;
    w->first = first;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

int plog_distributed_produce_wait(plog_distributed *d, uint64_t client_id, uint64_t seq,
                                  const uint8_t *const *values, const size_t *lens, size_t n, uint64_t *first,
                                  int timeout_ms)
{
    struct waiter *w = calloc(1, sizeof *w);
    if (w == NULL)
        return PLOG_ENOMEM;
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    int rv = plog_distributed_produce(d, client_id, seq, values, lens, n, wait_done, w);
    if (rv != PLOG_OK) {
        pthread_mutex_destroy(&w->mu);
        pthread_cond_destroy(&w->cv);
        free(w);
        return rv;
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += timeout_ms / 1000;
    ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
    if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
    }
    pthread_mutex_lock(&w->mu);
    while (!w->done)
        if (pthread_cond_timedwait(&w->cv, &w->mu, &ts) == ETIMEDOUT)
            break;
    /* The callback always comes (at the latest when the node closes): wait for it
     * before freeing, even after the timeout. */
    bool timed_out = !w->done;
    while (!w->done)
        pthread_cond_wait(&w->cv, &w->mu);
    pthread_mutex_unlock(&w->mu);
    rv = timed_out ? PLOG_EIO : w->rv;
    if (rv == PLOG_OK)
        *first = w->first;
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    free(w);
    return rv;
}

int plog_distributed_read_index(plog_distributed *d, plog_distributed_read_fn done, void *arg)
{
    struct read_req *r = calloc(1, sizeof *r);
    struct ev *e = calloc(1, sizeof *e);
    if (r == NULL || e == NULL) {
        free(r);
        free(e);
        return PLOG_ENOMEM;
    }
    r->done = done;
    r->arg = arg;
    e->kind = EV_READ;
    e->read = r;
    if (!enqueue(d, e)) {
        free(r);
        free(e);
        return PLOG_ENOTLEADER;
    }
    return PLOG_OK;
}

void plog_distributed_join(plog_distributed *d, const char *name, const char *raft_addr, const char *rpc_addr)
{
    uint64_t id = plog_distributed_id(name);
    pthread_mutex_lock(&d->mu);
    struct peer *p = peer_by_id(d, id);
    if (p == NULL && d->npeers < sizeof d->peers / sizeof d->peers[0]) {
        p = &d->peers[d->npeers++];
        *p = (struct peer){.id = id};
    }
    if (p != NULL) {
        copy_str(p->name, sizeof p->name, name);
        copy_str(p->raft_addr, sizeof p->raft_addr, raft_addr);
        copy_str(p->rpc_addr, sizeof p->rpc_addr, rpc_addr);
        p->joined = true;
        p->left = false;
        p->failed = false;
    }
    pthread_cond_signal(&d->cv);
    pthread_mutex_unlock(&d->mu);
}

void plog_distributed_failed(plog_distributed *d, const char *name)
{
    pthread_mutex_lock(&d->mu);
    struct peer *p = peer_by_id(d, plog_distributed_id(name));
    if (p != NULL)
        p->failed = true;
    pthread_mutex_unlock(&d->mu);
}

int plog_distributed_remove(plog_distributed *d, const char *name, char *err, size_t errsz)
{
    uint64_t id = plog_distributed_id(name);
    int rv = PLOG_OK;
    pthread_mutex_lock(&d->mu);
    struct peer *p = peer_by_id(d, id);
    if (d->st.role != PLOG_RAFT_LEADER) {
        rv = PLOG_ENOTLEADER;
    } else if (plog_raft_conf_find(&d->st.conf, id) == NULL) {
        plog_errf(err, errsz, "no server named \"%.64s\" in the configuration", name);
        rv = PLOG_ERANGE;
    } else if (id == d->id) {
        plog_errf(err, errsz, "%.64s is the leader: stop it with --leave-on-terminate instead", name);
        rv = PLOG_EINVAL;
    } else if (p != NULL && p->joined && !p->failed && !p->left) {
        plog_errf(err, errsz,
                  "membership has not declared %.64s dead: a server that stopped for good can be "
                  "removed once it is (seconds after it stopped); one that runs leaves with "
                  "--leave-on-terminate and SIGTERM",
                  name);
        rv = PLOG_EINVAL;
    } else if (p == NULL && d->npeers == sizeof d->peers / sizeof d->peers[0]) {
        plog_errf(err, errsz, "too many servers known");
        rv = PLOG_ENOMEM;
    } else {
        if (p == NULL) { /* a voter this node never heard of through gossip */
            p = &d->peers[d->npeers++];
            *p = (struct peer){.id = id};
            copy_str(p->name, sizeof p->name, name);
        }
        p->left = true; /* reconcile removes it; a join adds it again */
        pthread_cond_signal(&d->cv);
    }
    pthread_mutex_unlock(&d->mu);
    return rv;
}

void plog_distributed_leave(plog_distributed *d, const char *name)
{
    pthread_mutex_lock(&d->mu);
    struct peer *p = peer_by_id(d, plog_distributed_id(name));
    if (p != NULL)
        p->left = true;
    pthread_cond_signal(&d->cv);
    pthread_mutex_unlock(&d->mu);
}

void plog_distributed_servers(plog_distributed *d, plog_distributed_server *out, size_t cap, size_t *n)
{
    size_t k = 0;
    pthread_mutex_lock(&d->mu);
    for (unsigned i = 0; i < d->st.conf.n && k < cap; i++) {
        const plog_raft_server *s = &d->st.conf.servers[i];
        plog_distributed_server *o = &out[k++];
        memset(o, 0, sizeof *o);
        o->id = s->id;
        o->voter = s->role == PLOG_RAFT_VOTER;
        o->is_leader = s->id == d->st.leader;
        const struct peer *p = peer_by_id(d, s->id);
        if (p != NULL) {
            copy_str(o->name, sizeof o->name, p->name);
            copy_str(o->rpc_addr, sizeof o->rpc_addr, p->rpc_addr);
        }
    }
    pthread_mutex_unlock(&d->mu);
    *n = k;
}

bool plog_distributed_leader(plog_distributed *d, char *buf, size_t size)
{
    pthread_mutex_lock(&d->mu);
    bool me = d->st.role == PLOG_RAFT_LEADER;
    const struct peer *p = d->st.leader != 0 ? peer_by_id(d, d->st.leader) : NULL;
    if (size > 0)
        copy_str(buf, size, p != NULL ? p->rpc_addr : "");
    pthread_mutex_unlock(&d->mu);
    return me;
}

uint64_t plog_distributed_foreign(plog_distributed *d)
{
    return atomic_load(&d->foreign);
}

uint64_t plog_distributed_snapshots_taken(plog_distributed *d, uint64_t *last_index)
{
    if (last_index != NULL)
        *last_index = atomic_load(&d->snap_taken_index);
    return atomic_load(&d->snaps_taken);
}

void plog_distributed_raft_state(plog_distributed *d, uint64_t *term, uint64_t *commit, uint64_t *last)
{
    pthread_mutex_lock(&d->mu);
    *term = d->st.term;
    *commit = d->st.commit;
    *last = d->st.last;
    pthread_mutex_unlock(&d->mu);
}

bool plog_distributed_wait_leader(plog_distributed *d, int timeout_ms)
{
    uint64_t until = now_ms() + (uint64_t)timeout_ms;
    for (;;) {
        pthread_mutex_lock(&d->mu);
        bool known = d->st.leader != 0;
        pthread_mutex_unlock(&d->mu);
        if (known)
            return true;
        if (now_ms() >= until)
            return false;
        struct timespec ts = {0, 5 * 1000000};
        nanosleep(&ts, NULL);
    }
}

void plog_distributed_stop(plog_distributed *d)
{
    if (d->started) {
        /* A leader hands over first (thesis §3.10), so the cluster does not wait
         * an election timeout for a new leader. */
        pthread_mutex_lock(&d->mu);
        bool leader = d->st.role == PLOG_RAFT_LEADER && d->st.conf.n > 1;
        struct peer *self = peer_by_id(d, d->id);
        if (leader && self != NULL)
            self->left = true;
        pthread_cond_signal(&d->cv);
        pthread_mutex_unlock(&d->mu);
        uint32_t et = d->cfg.election_timeout_ms ? d->cfg.election_timeout_ms : 150;
        uint64_t until = now_ms() + 2 * et;
        while (leader && now_ms() < until) {
            pthread_mutex_lock(&d->mu);
            leader = d->st.role == PLOG_RAFT_LEADER;
            pthread_mutex_unlock(&d->mu);
            struct timespec ts = {0, 5 * 1000000};
            nanosleep(&ts, NULL);
        }
        pthread_mutex_lock(&d->mu);
        d->stop = true;
        pthread_cond_signal(&d->cv);
        pthread_mutex_unlock(&d->mu);
        pthread_join(d->thread, NULL);
        pthread_mutex_lock(&d->mu);
        d->started = false;
        pthread_mutex_unlock(&d->mu);
    }

    /* Messages that arrived between the thread's stop and the transport's close. */
    drop_events(d->qhead);
    d->qhead = d->qtail = NULL;
}

void plog_distributed_close(plog_distributed *d)
{
    if (d == NULL)
        return;
    plog_distributed_stop(d);
    plog_transport_close(d->tr);
    d->tr = NULL;
    /* Messages that arrived after the thread stopped were dropped by enqueue. */
    struct outq *qs[] = {&d->early, &d->late};
    for (size_t k = 0; k < 2; k++) {
        for (size_t i = 0; i < qs[k]->n; i++)
            free(qs[k]->m[i].buf);
        free(qs[k]->m);
    }
    dedup_clear(d);
    plog_raft_free(d->raft);
    if (d->records != NULL)
        plog_log_close(d->records);
    plog_raftstore_close(d->store);
    pthread_mutex_destroy(&d->mu);
    pthread_cond_destroy(&d->cv);
    free(d->name);
    free(d->dir);
    free(d);
}
