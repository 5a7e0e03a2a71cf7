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

#include "internal/err/err.h"
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
        plog_segment **ns = realloc(l->segs, cap * sizeof *ns);
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
    int fd = fcntl(sfd, F_DUPFD_CLOEXEC, 0);
    if (fd < 0) {
        plog_log_set_err(l, "dup: %s", strerror(errno));
        plog_segment_remove(seg);
        return PLOG_EIO;
    }
    if (l->active_fd >= 0)
        close(l->active_fd);
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
    if (l->npending == l->pendcap) {
        size_t cap = l->pendcap ? l->pendcap * 2 : 8;
        uint64_t *np = realloc(l->pending, cap * sizeof *np);
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
    rv = plog_log_new_active(l, plog_segment_next(act));
    if (rv != PLOG_OK)
        return rv;
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

int plog_log_append_batch(plog_log *l, Log__V1__Record *const *recs, size_t n, uint64_t *first)
{
    int rv = PLOG_OK;
    uint64_t f = 0, o = 0;
    if (n == 0) {
        *first = plog_log_next_offset(l);
        return PLOG_OK;
    }
    pthread_rwlock_wrlock(&l->lock);
    for (size_t i = 0; i < n && rv == PLOG_OK; i++) {
        rv = append_locked(l, recs[i], &o);
        if (i == 0)
            f = o;
    }
    pthread_rwlock_unlock(&l->lock);
    if (rv != PLOG_OK)
        return rv;
    if (l->c.sync == PLOG_SYNC_ALWAYS && (rv = plog_log_commit(l, o)) != PLOG_OK)
        return rv;
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

int plog_log_read_batch(plog_log *l, uint64_t off, size_t max_n, size_t max_bytes,
                        plog_log_batch *b)
{
    char err[PLOG_ERRMSG_SIZE];
    err[0] = '\0';
    assert(max_n > 0);
    if (max_n > BATCH_MAX_N)
        max_n = BATCH_MAX_N;
    if (b->nalloc < max_n) {
        const uint8_t **rec = realloc(b->rec, max_n * sizeof *rec);
        if (rec == NULL)
            return PLOG_ENOMEM;
        b->rec = rec;
        size_t *len = realloc(b->len, max_n * sizeof *len);
        if (len == NULL)
            return PLOG_ENOMEM;
        b->len = len;
        b->nalloc = max_n;
    }
    pthread_rwlock_rdlock(&l->lock);
    int rv = check_range(l, off);
    if (rv == PLOG_OK) {
        rv = plog_segment_read_span(l->segs[find(l, off)], off, max_n, max_bytes, &b->buf,
                                    &b->cap, b->rec, b->len, &b->n, err, sizeof err);
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
        if (plog_segment_remove(l->segs[k]) != PLOG_OK) {
            plog_log_set_err(l, "remove segment %" PRIu64 ": %s", plog_segment_base(l->segs[k]),
                    strerror(errno));
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
    plog_log_reader *r = calloc(1, sizeof *r);
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
        close(l->dir_fd);
    if (l->active_fd >= 0)
        close(l->active_fd);
    pthread_rwlock_destroy(&l->lock);
    pthread_mutex_destroy(&l->sync_mu);
    pthread_mutex_destroy(&l->err_mu);
    pthread_cond_destroy(&l->durable_cond);
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
    if (l->dir_fd >= 0 && l->dir_dirty && fsync(l->dir_fd) != 0 && rv == PLOG_OK)
        rv = PLOG_EIO;
    if (rv == PLOG_OK)
        rv = l->sync_err;
    free_log(l);
    return rv;
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
                unlinkat(dirfd(d), e->d_name, 0);
        closedir(d);
    }
    if (rmdir(l->dir) != 0 && errno != ENOENT)
        rv = PLOG_EIO;
    l->dir_dirty = false;
    free_log(l);
    return rv;
}
