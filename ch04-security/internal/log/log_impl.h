/* log_impl.h - what log.c, log_open.c and log_sync.c share: the log's struct
 * and the internal functions that cross those files. Not for other modules. */
#ifndef PLOG_LOG_IMPL_H
#define PLOG_LOG_IMPL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "internal/log/config.h"
#include "internal/log/log.h"
#include "internal/log/segment.h"
#include "internal/log/store.h"

#define DEFAULT_MAX_STORE_BYTES (1ull << 30)
#define DEFAULT_MAX_INDEX_BYTES (10ull << 20)
#define DEFAULT_SYNC_INTERVAL_MS 10
/* A read_batch never prepares more slots than this per call. */
#define BATCH_MAX_N 65536

struct plog_log {
    char *dir;
    plog_log_config c;

    pthread_rwlock_t lock;
    plog_segment **segs; /* by base offset; segs[nsegs-1] is active */
    size_t nsegs;
    size_t segcap;
    uint64_t flushed_next;
    int active_fd;     /* dup of the active store's fd, for syncs */
    uint64_t *pending; /* bases of sealed segments not yet fsynced */
    size_t npending;
    size_t pendcap;
    bool dir_dirty; /* segment files created or removed since the last sync */
    int dir_fd;

    pthread_mutex_t sync_mu;
    pthread_cond_t tick_cond; /* wakes the interval syncer early: stopping */
    uint64_t durable_next;
    int sync_err; /* sticky: after a failed fsync nothing is durable */
    bool stop;
    bool syncer_running;
    pthread_t syncer;

    pthread_mutex_t err_mu;
    char errmsg[PLOG_ERRMSG_SIZE];
    atomic_bool failed;             /* fail-stop: appends refused until reopen (set under err_mu) */
    char failmsg[PLOG_ERRMSG_SIZE]; /* the cause (under err_mu) */
};

/* plog_log_active: the active segment. Under lock (either side). */
static inline plog_segment *plog_log_active(const plog_log *l)
{
    return l->segs[l->nsegs - 1];
}

/* plog_log_set_err sets the text plog_log_errmsg returns. Any thread. */
void plog_log_set_err(plog_log *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* plog_log_fail puts the log in its failed state (once; later calls keep the
 * first cause): a write or fsync failed, so what the kernel holds no longer
 * matches what was acknowledged, and only a reopen (recovery from the files)
 * knows the truth. Reports the cause. Any thread, any lock. */
void plog_log_fail(plog_log *l, const char *cause);

/* plog_log_push_seg appends seg to the segment array (seg may be NULL to make
 * room: the caller then takes nsegs back down). Under lock. */
int plog_log_push_seg(plog_log *l, plog_segment *seg);

/* plog_log_new_active opens an empty segment at base as the active one;
 * plog_log_roll seals the active segment and starts the next. Under lock. */
int plog_log_new_active(plog_log *l, uint64_t base);
int plog_log_roll(plog_log *l);

/* plog_log_sync_locked makes every record appended so far durable. Holds
 * sync_mu, not lock. */
int plog_log_sync_locked(plog_log *l);

/* plog_log_syncer_start/stop run the group-commit thread (PLOG_SYNC_INTERVAL). */
int plog_log_syncer_start(plog_log *l);
void plog_log_syncer_stop(plog_log *l);

#endif
