/* log_sync.c - when appended records become durable (log.c's policy).
 *
 * flushed_next: records below it are in the kernel. durable_next: records
 * below it are on disk. A roll flushes the old segment, seals its index and
 * queues its base offset in `pending`; the next sync fdatasyncs the queued
 * segments, the directory (new files) and the active store before durable_next
 * moves, so a record is never reported durable while an older one is not.
 * The active index is not synced: recovery rebuilds it from the store.
 *   PLOG_SYNC_ALWAYS   append, then sync before returning (concurrent appenders
 *                      share an fsync: whoever syncs covers all appended so far).
 *   PLOG_SYNC_INTERVAL group commit: plog_log_commit fsyncs on the caller's
 *                      thread, as ALWAYS does, so one fsync covers everything
 *                      appended before it started; a background thread fsyncs
 *                      what nobody waited for within sync_interval_ms; see syncer().
 *   PLOG_SYNC_NEVER    plog_log_commit writes the buffer to the kernel only.
 * Readers never wait for an fsync: it runs holding sync_mu only, see log.c. */
#include "internal/log/log.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "internal/err/alloc.h"
#include "internal/err/err.h"
#include "internal/log/io.h"

#define IO plog_io_get()
#include "internal/log/log_impl.h"
#include "internal/log/segment.h"

static int fsync_path(plog_log *l, uint64_t base, const char *ext)
{
    char path[4096];
    plog_segment_path(path, sizeof path, l->dir, base, ext);
    /* By name: fsync covers the file's pages whichever descriptor wrote them. */
    int fd = IO->open(path, O_RDONLY | O_CLOEXEC, 0);
    if (fd < 0 && errno == ENOENT)
        return PLOG_OK; /* removed by truncate since: nothing to keep */
    if (fd < 0) {
        plog_log_set_err(l, "open %s: %s", path, strerror(errno));
        return PLOG_EIO;
    }
    int rv = IO->fdatasync(fd) == 0 ? PLOG_OK : PLOG_EIO;
    if (rv != PLOG_OK)
        plog_log_set_err(l, "fdatasync %s: %s", path, strerror(errno));
    IO->close(fd);
    return rv;
}

/* See log_impl.h. */
int plog_log_sync_locked(plog_log *l)
{
    if (l->sync_err != PLOG_OK)
        return l->sync_err;
    if (plog_log_failed(l, NULL, 0)) {
        /* A failed write (log.c): what is buffered may not be what was
         * appended. Every later commit gets the verdict. */
        l->sync_err = PLOG_EFAILED;
        return l->sync_err;
    }
    pthread_rwlock_wrlock(&l->lock);
    if (l->nsegs == 0) {
        pthread_rwlock_unlock(&l->lock);
        return PLOG_EIO;
    }
    plog_segment *act = plog_log_active(l);
    int rv = plog_segment_flush(act);
    if (rv != PLOG_OK) {
        plog_log_fail(l, plog_segment_errmsg(act));
        l->sync_err = PLOG_EFAILED;
        pthread_rwlock_unlock(&l->lock);
        return l->sync_err;
    }
    uint64_t target = plog_segment_next(act);
    l->flushed_next = target;
    if (target == l->durable_next && l->npending == 0 && !l->dir_dirty) {
        pthread_rwlock_unlock(&l->lock);
        return PLOG_OK;
    }
    int fd = IO->dup(l->active_fd);
    uint64_t *pending = l->pending;
    size_t npending = l->npending;
    bool dir = l->dir_dirty;
    l->pending = NULL;
    l->npending = l->pendcap = 0;
    l->dir_dirty = false;
    pthread_rwlock_unlock(&l->lock);

    if (fd < 0) {
        plog_log_set_err(l, "dup: %s", strerror(errno));
        rv = PLOG_EIO;
    }
    for (size_t i = 0; i < npending && rv == PLOG_OK; i++) {
        rv = fsync_path(l, pending[i], ".store");
        if (rv == PLOG_OK)
            rv = fsync_path(l, pending[i], ".index");
    }
    free(pending);
    if (rv == PLOG_OK && dir && IO->fsync(l->dir_fd) != 0) {
        plog_log_set_err(l, "fsync %s: %s", l->dir, strerror(errno));
        rv = PLOG_EIO;
    }
    if (rv == PLOG_OK && IO->fdatasync(fd) != 0) {
        plog_log_set_err(l, "fdatasync %s: %s", l->dir, strerror(errno));
        rv = PLOG_EIO;
    }
    if (fd >= 0)
        IO->close(fd);
    if (rv != PLOG_OK) {
        /* After a failed fsync the kernel may have dropped the dirty pages:
         * nothing more can be promised (PostgreSQL's "fsyncgate"), the log
         * fails; a reopen recovers from what is really on disk. */
        char cause[PLOG_ERRMSG_SIZE];
        plog_log_errmsg(l, cause, sizeof cause);
        plog_log_fail(l, cause);
        l->sync_err = PLOG_EFAILED;
        rv = PLOG_EFAILED;
    } else if (target > l->durable_next) {
        l->durable_next = target;
    }
    return rv;
}

static void deadline_after_us(struct timespec *ts, uint64_t us)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += (time_t)(us / 1000000);
    ts->tv_nsec += (long)(us % 1000000) * 1000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

/* syncer bounds how long appended records nobody committed stay unsynced
 * under PLOG_SYNC_INTERVAL to sync_interval_ms. A waiting commit does not go
 * through it: plog_log_commit fsyncs on its own thread (the commit path and
 * the sync path are one), and the commits that queue on sync_mu meanwhile find
 * themselves covered, or share the next fsync, which covers everything
 * appended while the last one ran. Handing the fsync to this thread and
 * waiting for its answer (the earlier design) cost two thread hand-offs per
 * fsync, and the server's committer thread then sat idle between one fsync's
 * end and the next one's start: 0.68x the throughput of ALWAYS at 16 clients,
 * against >= 1x now (measured in server_bench).
 *
 * It ticks every half interval and fsyncs only the records that were already
 * appended at the previous tick and are still not durable: those are at most
 * one interval old at this tick (sealed segments and directory changes: at the
 * first tick). Records that commits keep durable are left alone. Fsyncing at
 * every tick whatever was new (the earlier rule) meant, under a steady stream
 * of commits, one fsync per tick for records a commit was about to fsync
 * anyway: ~3% of the server's fsyncs at 16 clients, each one making the commit
 * queued behind it on sync_mu wait for it (server_bench's throughput moved by
 * less than its noise). */
static void *syncer(void *arg)
{
    plog_log *l = arg;
    uint64_t seen = 0; /* the end of the log at the previous tick */
    pthread_mutex_lock(&l->sync_mu);
    while (!l->stop) {
        struct timespec ts;
        deadline_after_us(&ts, (uint64_t)l->c.sync_interval_ms * 500);
        while (!l->stop && pthread_cond_timedwait(&l->tick_cond, &l->sync_mu, &ts) != ETIMEDOUT)
            ;
        uint64_t old = seen;
        pthread_rwlock_rdlock(&l->lock); /* lock order: sync_mu, then lock */
        seen = l->nsegs > 0 ? plog_segment_next(plog_log_active(l)) : l->c.segment.initial_offset;
        bool files = l->npending > 0 || l->dir_dirty; /* a roll or a truncate: at once, as before */
        pthread_rwlock_unlock(&l->lock);
        if (!l->stop && l->sync_err == PLOG_OK && (l->durable_next < old || files))
            plog_log_sync_locked(l);
        if (l->sync_err != PLOG_OK && !l->stop) {
            /* Failed for good: nothing to sync, commits get the verdict from
             * sync_locked; idle until stopped. */
            pthread_cond_wait(&l->tick_cond, &l->sync_mu);
        }
    }
    pthread_mutex_unlock(&l->sync_mu);
    return NULL;
}

int plog_log_syncer_start(plog_log *l)
{
    if (pthread_create(&l->syncer, NULL, syncer, l) != 0) {
        plog_log_set_err(l, "pthread_create: %s", strerror(errno));
        return PLOG_ENOMEM;
    }
    l->syncer_running = true;
    return PLOG_OK;
}

int plog_log_commit(plog_log *l, uint64_t off)
{
    int rv = PLOG_OK;
    if (off >= plog_log_next_offset(l)) {
        /* Waiting for a record nobody appended would never end. */
        plog_log_set_err(l, "commit of offset %" PRIu64 ", not appended yet", off);
        return PLOG_ERANGE;
    }
    if (l->c.sync == PLOG_SYNC_NEVER) {
        pthread_rwlock_wrlock(&l->lock);
        if (off >= l->flushed_next) {
            plog_segment *act = plog_log_active(l);
            rv = plog_log_failed(l, NULL, 0) ? PLOG_EFAILED : plog_segment_flush(act);
            if (rv == PLOG_OK) {
                l->flushed_next = plog_segment_next(act);
            } else if (rv != PLOG_EFAILED) {
                plog_log_fail(l, plog_segment_errmsg(act));
                rv = PLOG_EFAILED;
            }
        }
        pthread_rwlock_unlock(&l->lock);
        return rv;
    }
    /* ALWAYS and INTERVAL alike: whoever holds sync_mu fsyncs, covering every
     * record appended before its fsync started; a commit that waited for the
     * mutex is often covered already. */
    pthread_mutex_lock(&l->sync_mu);
    if (off >= l->durable_next)
        rv = plog_log_sync_locked(l);
    if (rv == PLOG_OK && off >= l->durable_next)
        rv = l->sync_err != PLOG_OK ? l->sync_err : PLOG_EIO;
    pthread_mutex_unlock(&l->sync_mu);
    return rv;
}

int plog_log_sync(plog_log *l)
{
    pthread_mutex_lock(&l->sync_mu);
    int rv = plog_log_sync_locked(l);
    pthread_mutex_unlock(&l->sync_mu);
    return rv;
}

void plog_log_syncer_stop(plog_log *l)
{
    if (!l->syncer_running)
        return;
    pthread_mutex_lock(&l->sync_mu);
    l->stop = true;
    pthread_cond_broadcast(&l->tick_cond);
    pthread_mutex_unlock(&l->sync_mu);
    pthread_join(l->syncer, NULL);
    l->syncer_running = false;
}
