/* log.c - the commit log: ordered segments in one directory, the last one
 * active (Go: log.go). Opening (and recovery) is in log_open.c, durability in
 * log_sync.c; log_impl.h holds what the three share.
 *
 * Locks. `lock` (a writer-preferring rwlock, Go's RWMutex) guards the segment
 * array and every segment: appends, rolls, truncate and reset take it for
 * writing, reads for reading. `sync_mu` serialises durability work: whoever
 * holds it may fsync. Lock order: sync_mu, then lock. An fsync runs holding
 * sync_mu only, on descriptors it owns (a dup of the active store, files of
 * sealed segments opened by name), so readers and the writer never wait for
 * the disk; they wait at most for a write() of the store's buffer. */
#include "internal/log/log.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "internal/err/alloc.h"
#include "internal/err/err.h"
#include "internal/log/io.h"

#define IO plog_io_get()
#include "internal/log/log_impl.h"
#include "internal/log/segment.h"
#include "internal/log/store.h"

struct plog_log_reader {
    plog_log *l;
    uint64_t base; /* segment being read */
    uint64_t pos;  /* position in its store */
};

void plog_log_set_err(plog_log *l, const char *fmt, ...)
{
    va_list ap;
    pthread_mutex_lock(&l->err_mu);
    va_start(ap, fmt);
    vsnprintf(l->errmsg, sizeof l->errmsg, fmt, ap);
    va_end(ap);
    pthread_mutex_unlock(&l->err_mu);
}

void plog_log_fail(plog_log *l, const char *cause)
{
    char msg[PLOG_ERRMSG_SIZE + 64];
    pthread_mutex_lock(&l->err_mu);
    bool first = !atomic_load(&l->failed);
    if (first) {
        snprintf(l->failmsg, sizeof l->failmsg, "%s", cause);
        atomic_store(&l->failed, true);
    }
    snprintf(l->errmsg, sizeof l->errmsg, "%s: %.200s", plog_strerror(PLOG_EFAILED), l->failmsg);
    snprintf(msg, sizeof msg, "msg=\"log failed; appends refused until restart\" dir=%s err=\"%s\"", l->dir,
             l->failmsg);
    pthread_mutex_unlock(&l->err_mu);
    if (first)
        plog_log_report(&l->c, PLOG_LOG_REPORT_ERROR, "%s", msg);
}

bool plog_log_failed(plog_log *l, char *buf, size_t size)
{
    if (!atomic_load(&l->failed)) {
        /* The common case, on every append: no lock. */
        if (buf != NULL && size > 0)
            buf[0] = '\0';
        return false;
    }
    pthread_mutex_lock(&l->err_mu);
    bool f = atomic_load(&l->failed);
    if (buf != NULL && size > 0)
        snprintf(buf, size, "%s", f ? l->failmsg : "");
    pthread_mutex_unlock(&l->err_mu);
    return f;
}

/* refuse_failed: PLOG_EFAILED (errmsg set) when the log failed, else PLOG_OK. */
static int refuse_failed(plog_log *l)
{
    if (!atomic_load(&l->failed))
        return PLOG_OK;
    pthread_mutex_lock(&l->err_mu);
    bool f = atomic_load(&l->failed);
    if (f)
        snprintf(l->errmsg, sizeof l->errmsg, "%s: %.200s", plog_strerror(PLOG_EFAILED), l->failmsg);
    pthread_mutex_unlock(&l->err_mu);
    return f ? PLOG_EFAILED : PLOG_OK;
}

void plog_log_errmsg(plog_log *l, char *buf, size_t size)
{
    if (size == 0)
        return;
    pthread_mutex_lock(&l->err_mu);
    snprintf(buf, size, "%s", l->errmsg);
    pthread_mutex_unlock(&l->err_mu);
}

/* find returns the index of the segment holding off (lowest <= off < next). */
static size_t find(const plog_log *l, uint64_t off)
{
    size_t lo = 0, hi = l->nsegs;
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (plog_segment_base(l->segs[mid]) <= off)
            lo = mid;
        else
            hi = mid;
    }
    return lo;
}

int plog_log_push_seg(plog_log *l, plog_segment *seg)
{
    if (l->nsegs == l->segcap) {
        size_t cap = l->segcap ? l->segcap * 2 : 8;
        plog_segment **ns = plog_realloc(l->segs, cap * sizeof *ns);
        if (ns == NULL)
            return PLOG_ENOMEM;
        l->segs = ns;
        l->segcap = cap;
    }
    l->segs[l->nsegs++] = seg;
    return PLOG_OK;
}

/* new_active opens an empty segment at base as the active one. Under lock. */
int plog_log_new_active(plog_log *l, uint64_t base)
{
    char err[PLOG_ERRMSG_SIZE];
    err[0] = '\0';
    plog_segment *seg;
    if (l->nsegs == l->segcap) {
        int rv = plog_log_push_seg(l, NULL);
        if (rv != PLOG_OK)
            return rv;
        l->nsegs--;
    }
    int rv = plog_segment_open(l->dir, base, &l->c, PLOG_SEGMENT_ACTIVE, &seg, err, sizeof err);
    if (rv != PLOG_OK) {
        plog_log_set_err(l, "%s", err[0] != '\0' ? err : plog_strerror(rv));
        return rv;
    }
    int sfd, ifd;
    plog_segment_fds(seg, &sfd, &ifd);
    int fd = IO->dup(sfd);
    if (fd < 0) {
        plog_log_set_err(l, "dup: %s", strerror(errno));
        /* Closed, never removed: at open this segment holds the newest
         * records (removing it lost them on a mere EMFILE: found by
         * fault_test). An empty new one left behind is reused by the retry. */
        plog_segment_close(seg, false);
        return PLOG_EIO;
    }
    if (l->active_fd >= 0)
        IO->close(l->active_fd);
    l->active_fd = fd;
    plog_log_push_seg(l, seg); /* room was made above */
    l->dir_dirty = true;
    return PLOG_OK;
}

/* roll seals the active segment and starts a new one after it (Go: the
 * newSegment call in Append). Under lock. */
int plog_log_roll(plog_log *l)
{
    plog_segment *act = plog_log_active(l);
    /* A log whose next offset is 2^64-1 is full (append_batch refuses more):
     * it keeps its last segment, whose end, UINT64_MAX, would read as
     * PLOG_SEGMENT_ACTIVE if a segment followed it. */
    if (plog_segment_next(act) == UINT64_MAX)
        return PLOG_OK;
    if (l->npending == l->pendcap) {
        size_t cap = l->pendcap ? l->pendcap * 2 : 8;
        uint64_t *np = plog_realloc(l->pending, cap * sizeof *np);
        if (np == NULL)
            return PLOG_ENOMEM;
        l->pending = np;
        l->pendcap = cap;
    }
    int rv = plog_segment_seal(act);
    if (rv != PLOG_OK) {
        plog_log_set_err(l, "%s", plog_segment_errmsg(act));
        return rv;
    }
    /* The invariant that keeps offsets contiguous across a power loss: under
     * a sync policy, a segment's files are created only once every record of
     * the segment before it is on disk. Else a crash right after the roll
     * could keep the new (empty) files and lose the old segment's tail, and
     * the offsets in between would read as missing forever. Under
     * PLOG_SYNC_NEVER nothing is synced here; log_open.c drops an empty last
     * segment whose predecessor ends short, which covers the usual case. */
    bool synced = false;
    if (l->c.sync != PLOG_SYNC_NEVER) {
        rv = plog_segment_sync(act);
        if (rv != PLOG_OK) {
            plog_log_set_err(l, "%s", plog_segment_errmsg(act));
            return rv;
        }
        synced = true;
    }
    rv = plog_log_new_active(l, plog_segment_next(act));
    if (rv != PLOG_OK)
        return rv;
    if (!synced)
        l->pending[l->npending++] = plog_segment_base(act);
    l->flushed_next = plog_segment_next(act);
    return PLOG_OK;
}

/* append_locked appends one record, rolling before and after it as needed
 * (Go: Log.Append). Under lock. */
static int append_locked(plog_log *l, Log__V1__Record *rec, uint64_t *off)
{
    int rv;
    if (l->nsegs == 0)
        return PLOG_EIO; /* a reset failed half-way */
    /* A roll that failed after an earlier append is retried here. */
    if (plog_segment_is_maxed(plog_log_active(l)) && (rv = plog_log_roll(l)) != PLOG_OK)
        return rv;
    plog_segment *act = plog_log_active(l);
    rv = plog_segment_append(act, rec, off);
    if (rv != PLOG_OK) {
        plog_log_set_err(l, "%s", plog_segment_errmsg(act));
        return rv;
    }
    /* The record is in; a failed roll only delays the roll to the next append. */
    if (plog_segment_is_maxed(act))
        plog_log_roll(l);
    return PLOG_OK;
}

int plog_log_append(plog_log *l, Log__V1__Record *rec, uint64_t *off)
{
    return plog_log_append_batch(l, &rec, 1, off);
}

/* rollback undoes a failed batch: removes the segments it rolled into, past
 * segs[seg0], and cuts segs[seg0] back to next0 (making it active again).
 * Under a sync policy the cut is made durable too: a roll during the batch
 * fsynced its first records, which must not come back after a power loss.
 * A rollback that fails leaves the log failed. Under lock. */
static void rollback(plog_log *l, size_t seg0, uint64_t next0, size_t npending0)
{
    int rv = PLOG_OK;
    bool rolled = l->nsegs > seg0 + 1;
    while (l->nsegs > seg0 + 1) {
        plog_segment *seg = l->segs[--l->nsegs];
        if (plog_segment_remove(seg) != PLOG_OK && rv == PLOG_OK) {
            plog_log_set_err(l, "rollback: remove segment: %s", strerror(errno));
            rv = PLOG_EIO;
        }
        l->dir_dirty = true;
    }
    if (l->npending > npending0)
        l->npending = npending0;
    plog_segment *act = l->segs[seg0];
    if (rv == PLOG_OK && (rv = plog_segment_rewind(act, next0)) != PLOG_OK)
        plog_log_set_err(l, "rollback: %s", plog_segment_errmsg(act));
    if (rv == PLOG_OK && rolled) {
        int sfd, ifd;
        plog_segment_fds(act, &sfd, &ifd);
        int fd = IO->dup(sfd);
        if (fd < 0) {
            plog_log_set_err(l, "dup: %s", strerror(errno));
            rv = PLOG_EIO;
        } else {
            IO->close(l->active_fd);
            l->active_fd = fd;
        }
        if (rv == PLOG_OK && l->c.sync != PLOG_SYNC_NEVER) {
            if ((rv = plog_segment_sync(act)) != PLOG_OK)
                plog_log_set_err(l, "rollback: %s", plog_segment_errmsg(act));
            else if (IO->fsync(l->dir_fd) != 0) {
                plog_log_set_err(l, "rollback: fsync %s: %s", l->dir, strerror(errno));
                rv = PLOG_EIO;
            }
        }
    }
    if (l->flushed_next > next0)
        l->flushed_next = next0;
    if (rv != PLOG_OK) {
        char cause[PLOG_ERRMSG_SIZE];
        plog_log_errmsg(l, cause, sizeof cause);
        plog_log_fail(l, cause);
    }
}

int plog_log_append_batch(plog_log *l, Log__V1__Record *const *recs, size_t n, uint64_t *first)
{
    int rv = PLOG_OK;
    uint64_t f = 0, o = 0;
    if (n == 0) {
        *first = plog_log_next_offset(l);
        return PLOG_OK;
    }
    pthread_rwlock_wrlock(&l->lock);
    if ((rv = refuse_failed(l)) != PLOG_OK || l->nsegs == 0) {
        pthread_rwlock_unlock(&l->lock);
        return rv != PLOG_OK ? rv : PLOG_EIO;
    }
    size_t seg0 = l->nsegs - 1, npending0 = l->npending;
    uint64_t next0 = plog_segment_next(plog_log_active(l));
    /* The last record's offset is 2^64-2, so that the next offset still fits a
     * u64: one more would wrap it to 0 and lose the log on the next open. */
    if (n > UINT64_MAX - next0) {
        plog_log_set_err(l, "%s: %zu record(s) at offset %" PRIu64 " would pass it",
                         plog_strerror(PLOG_EFULL), n, next0);
        pthread_rwlock_unlock(&l->lock);
        return PLOG_EFULL;
    }
    for (size_t i = 0; i < n && rv == PLOG_OK; i++) {
        rv = append_locked(l, recs[i], &o);
        if (i == 0)
            f = o;
    }
    if (rv != PLOG_OK) {
        char cause[PLOG_ERRMSG_SIZE];
        plog_log_errmsg(l, cause, sizeof cause);
        rollback(l, seg0, next0, npending0);
        /* A write that failed may have left part of a frame in the file, or
         * lost buffered data: only recovery knows what is there now. */
        if (rv == PLOG_EIO)
            plog_log_fail(l, cause);
        else
            plog_log_set_err(l, "%s", cause);
    }
    pthread_rwlock_unlock(&l->lock);
    if (rv != PLOG_OK)
        return rv;
    if (l->c.sync == PLOG_SYNC_ALWAYS && (rv = plog_log_commit(l, o)) != PLOG_OK)
        return rv; /* log_sync.c failed the log */
    *first = f;
    return PLOG_OK;
}

/* check_range is the OUT_OF_RANGE test of every read. Under lock. */
static int check_range(plog_log *l, uint64_t off)
{
    if (l->nsegs == 0) {
        plog_log_set_err(l, "log %s has no segment: a reset failed", l->dir);
        return PLOG_EIO;
    }
    uint64_t lo = plog_segment_base(l->segs[0]), next = plog_segment_next(plog_log_active(l));
    if (off < lo || off >= next) {
        plog_log_set_err(l, "offset %" PRIu64 " out of range [%" PRIu64 ", %" PRIu64 ")", off, lo, next);
        return PLOG_ERANGE;
    }
    return PLOG_OK;
}

int plog_log_read_raw(plog_log *l, uint64_t off, uint8_t **buf, size_t *len)
{
    char err[PLOG_ERRMSG_SIZE];
    err[0] = '\0';
    pthread_rwlock_rdlock(&l->lock);
    int rv = check_range(l, off);
    if (rv == PLOG_OK) {
        rv = plog_segment_read(l->segs[find(l, off)], off, buf, len, err, sizeof err);
        if (rv != PLOG_OK)
            plog_log_set_err(l, "%s", err[0] != '\0' ? err : plog_strerror(rv));
    }
    pthread_rwlock_unlock(&l->lock);
    return rv;
}

int plog_log_read(plog_log *l, uint64_t off, Log__V1__Record **out)
{
    uint8_t *buf;
    size_t len;
    int rv = plog_log_read_raw(l, off, &buf, &len);
    if (rv != PLOG_OK)
        return rv;
    Log__V1__Record *r = log__v1__record__unpack(NULL, len, buf);
    free(buf);
    if (r == NULL) {
        plog_log_set_err(l, "record at offset %" PRIu64 " does not decode", off);
        return PLOG_ECORRUPT;
    }
    if (r->offset != off) {
        /* A valid frame in the wrong place: an index that lies. */
        plog_log_set_err(l, "record at offset %" PRIu64 " says offset %" PRIu64, off, r->offset);
        log__v1__record__free_unpacked(r, NULL);
        return PLOG_ECORRUPT;
    }
    *out = r;
    return PLOG_OK;
}

int plog_log_read_batch(plog_log *l, uint64_t off, size_t max_n, size_t max_bytes, plog_log_batch *b)
{
    char err[PLOG_ERRMSG_SIZE];
    err[0] = '\0';
    assert(max_n > 0);
    if (max_n > BATCH_MAX_N)
        max_n = BATCH_MAX_N;
    if (b->nalloc < max_n) {
        const uint8_t **rec = plog_realloc(b->rec, max_n * sizeof *rec);
        if (rec == NULL)
            return PLOG_ENOMEM;
        b->rec = rec;
        size_t *len = plog_realloc(b->len, max_n * sizeof *len);
        if (len == NULL)
            return PLOG_ENOMEM;
        b->len = len;
        b->nalloc = max_n;
    }
    pthread_rwlock_rdlock(&l->lock);
    int rv = check_range(l, off);
    if (rv == PLOG_OK) {
        rv = plog_segment_read_span(l->segs[find(l, off)], off, max_n, max_bytes, &b->buf, &b->cap, b->rec,
                                    b->len, &b->n, err, sizeof err);
        if (rv != PLOG_OK)
            plog_log_set_err(l, "%s", err[0] != '\0' ? err : plog_strerror(rv));
    }
    pthread_rwlock_unlock(&l->lock);
    if (rv != PLOG_OK) {
        b->n = 0;
        return rv;
    }
    b->first = off;
    return PLOG_OK;
}

void plog_log_batch_fini(plog_log_batch *b)
{
    free(b->buf);
    free(b->rec);
    free(b->len);
    memset(b, 0, sizeof *b);
}

uint64_t plog_log_lowest_offset(plog_log *l)
{
    pthread_rwlock_rdlock(&l->lock);
    uint64_t v = l->nsegs ? plog_segment_base(l->segs[0]) : l->c.segment.initial_offset;
    pthread_rwlock_unlock(&l->lock);
    return v;
}

uint64_t plog_log_next_offset(plog_log *l)
{
    pthread_rwlock_rdlock(&l->lock);
    uint64_t v = l->nsegs ? plog_segment_next(plog_log_active(l)) : l->c.segment.initial_offset;
    pthread_rwlock_unlock(&l->lock);
    return v;
}

int plog_log_highest_offset(plog_log *l, uint64_t *off)
{
    pthread_rwlock_rdlock(&l->lock);
    uint64_t lo = 0, next = 0;
    if (l->nsegs > 0)
        lo = plog_segment_base(l->segs[0]), next = plog_segment_next(plog_log_active(l));
    pthread_rwlock_unlock(&l->lock);
    if (next == lo)
        return PLOG_ERANGE;
    *off = next - 1;
    return PLOG_OK;
}

int plog_log_truncate(plog_log *l, uint64_t lowest)
{
    int rv = PLOG_OK;
    pthread_mutex_lock(&l->sync_mu);
    pthread_rwlock_wrlock(&l->lock);
    if (l->nsegs == 0) {
        pthread_rwlock_unlock(&l->lock);
        pthread_mutex_unlock(&l->sync_mu);
        return PLOG_EIO;
    }
    /* The active segment goes too when all of it is below lowest; a fresh one
     * then continues at its next offset (Go would leave no active segment). */
    plog_segment *act = plog_log_active(l);
    if (plog_segment_next(act) <= lowest && plog_segment_next(act) > plog_segment_base(act))
        rv = plog_log_roll(l);
    size_t k = 0;
    while (rv == PLOG_OK && k + 1 < l->nsegs && plog_segment_next(l->segs[k]) <= lowest) {
        /* The base is read first: remove frees the segment even when it
         * fails (reading it after was a use-after-free, found by
         * powerloss_test under ASan). */
        uint64_t base = plog_segment_base(l->segs[k]);
        if (plog_segment_remove(l->segs[k]) != PLOG_OK) {
            plog_log_set_err(l, "remove segment %" PRIu64 ": %s", base, strerror(errno));
            rv = PLOG_EIO;
        }
        k++;
    }
    if (k > 0) {
        memmove(l->segs, l->segs + k, (l->nsegs - k) * sizeof *l->segs);
        l->nsegs -= k;
        l->dir_dirty = true;
    }
    pthread_rwlock_unlock(&l->lock);
    pthread_mutex_unlock(&l->sync_mu);
    return rv;
}

int plog_log_reader_open(plog_log *l, plog_log_reader **rp)
{
    plog_log_reader *r = plog_calloc(1, sizeof *r);
    if (r == NULL)
        return PLOG_ENOMEM;
    r->l = l;
    r->base = plog_log_lowest_offset(l);
    *rp = r;
    return PLOG_OK;
}

int plog_log_reader_read(plog_log_reader *r, void *p, size_t cap, size_t *n)
{
    char err[PLOG_ERRMSG_SIZE];
    err[0] = '\0';
    plog_log *l = r->l;
    uint8_t *dst = p;
    size_t done = 0;
    int rv = PLOG_OK;
    pthread_rwlock_rdlock(&l->lock);
    /* The first segment at or after the one being read: if truncate removed
     * it, the stream goes on with what follows. */
    size_t i = l->nsegs;
    if (l->nsegs > 0) {
        i = find(l, r->base);
        if (plog_segment_base(l->segs[i]) < r->base)
            i++;
    }
    while (done < cap && i < l->nsegs) {
        plog_segment *seg = l->segs[i];
        if (plog_segment_base(seg) != r->base) {
            r->base = plog_segment_base(seg);
            r->pos = 0;
        }
        const plog_store *s = plog_segment_store(seg);
        uint64_t size = plog_store_size(s);
        if (r->pos < size) {
            size_t k = cap - done;
            if (k > size - r->pos)
                k = (size_t)(size - r->pos);
            rv = plog_store_read_at(s, r->pos, dst + done, k, err, sizeof err);
            if (rv != PLOG_OK)
                break;
            r->pos += k;
            done += k;
        } else if (i + 1 < l->nsegs) {
            i++;
        } else {
            break;
        }
    }
    pthread_rwlock_unlock(&l->lock);
    if (rv != PLOG_OK) {
        plog_log_set_err(l, "%s", err[0] != '\0' ? err : plog_strerror(rv));
        return rv;
    }
    *n = done;
    return done == 0 && cap > 0 ? PLOG_EOF : PLOG_OK;
}

void plog_log_reader_close(plog_log_reader *r)
{
    free(r);
}

/* drop_all closes and deletes every segment. Under sync_mu and lock. */
static int drop_all(plog_log *l)
{
    int rv = PLOG_OK;
    for (size_t i = 0; i < l->nsegs; i++)
        if (plog_segment_remove(l->segs[i]) != PLOG_OK)
            rv = PLOG_EIO;
    l->nsegs = 0;
    l->npending = 0;
    return rv;
}

int plog_log_reset(plog_log *l)
{
    pthread_mutex_lock(&l->sync_mu);
    pthread_rwlock_wrlock(&l->lock);
    int rv = drop_all(l);
    if (rv != PLOG_OK)
        plog_log_set_err(l, "reset %s: cannot remove a segment file", l->dir);
    int rv2 = plog_log_new_active(l, l->c.segment.initial_offset);
    if (rv2 != PLOG_OK) {
        /* Without an active segment the log cannot go on: every later call
         * returns PLOG_EIO, close and remove still work. */
        rv = rv2;
    }
    l->flushed_next = l->durable_next = l->c.segment.initial_offset;
    pthread_rwlock_unlock(&l->lock);
    pthread_mutex_unlock(&l->sync_mu);
    return rv;
}

static void free_log(plog_log *l)
{
    if (l->dir_fd >= 0)
        IO->close(l->dir_fd);
    if (l->active_fd >= 0)
        IO->close(l->active_fd);
    pthread_rwlock_destroy(&l->lock);
    pthread_mutex_destroy(&l->sync_mu);
    pthread_mutex_destroy(&l->err_mu);
    pthread_cond_destroy(&l->tick_cond);
    free(l->segs);
    free(l->pending);
    free(l->dir);
    free(l);
}

int plog_log_close(plog_log *l)
{
    if (l == NULL)
        return PLOG_OK;
    plog_log_syncer_stop(l);
    int rv = PLOG_OK;
    for (size_t i = 0; i < l->nsegs; i++) {
        /* Every segment changed in this session is fsynced (segment.c). */
        int r = plog_segment_close(l->segs[i], true);
        if (r != PLOG_OK && rv == PLOG_OK)
            rv = r;
    }
    if (l->dir_fd >= 0 && l->dir_dirty && IO->fsync(l->dir_fd) != 0 && rv == PLOG_OK)
        rv = PLOG_EIO;
    if (rv == PLOG_OK)
        rv = l->sync_err;
    free_log(l);
    return rv;
}

/* remove_in unlinks dir/name. */
static void remove_in(const char *dir, const char *name)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    IO->unlink(path);
}

int plog_log_remove(plog_log *l)
{
    plog_log_syncer_stop(l);
    int rv = drop_all(l);
    DIR *d = opendir(l->dir);
    if (d != NULL) {
        /* Go: os.RemoveAll. Only files live in a log directory. */
        struct dirent *e;
        while ((e = readdir(d)) != NULL)
            if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
                remove_in(l->dir, e->d_name);
        closedir(d);
    }
    if (IO->rmdir(l->dir) != 0 && errno != ENOENT)
        rv = PLOG_EIO;
    l->dir_dirty = false;
    free_log(l);
    return rv;
}
