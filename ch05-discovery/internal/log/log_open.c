/* log_open.c - opening a log directory: finding its segments, recovering
 * them (segment.c does the per-segment work) and starting the log (Go: log.go
 * setup). */
#define _GNU_SOURCE /* pthread_rwlockattr_setkind_np */
#include "internal/log/log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal/err/alloc.h"
#include "internal/err/err.h"
#include "internal/log/index.h"
#include "internal/log/io.h"

#define IO plog_io_get()
#include "internal/log/log_impl.h"
#include "internal/log/segment.h"

/* A segment file found in the directory. */
struct seg_file {
    uint64_t base;
    bool store; /* else the index */
};

/* cmp_seg_file orders by base, an index before its store. */
static int cmp_seg_file(const void *a, const void *b)
{
    const struct seg_file *x = a, *y = b;
    if (x->base != y->base)
        return x->base < y->base ? -1 : 1;
    return (int)x->store - (int)y->store;
}

/* segment_base parses "<20 digits>.store" or ".index"; *store tells which. */
static bool segment_base(const char *name, uint64_t *base, bool *store)
{
    size_t n = strlen(name);
    if (n != 26 || (strcmp(name + 20, ".store") != 0 && strcmp(name + 20, ".index") != 0))
        return false;
    uint64_t v = 0;
    for (int i = 0; i < 20; i++) {
        if (name[i] < '0' || name[i] > '9')
            return false;
        uint64_t d = (uint64_t)(name[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *base = v;
    *store = name[21] == 's';
    return true;
}

/* list_bases returns the sorted base offsets of the stores in dir (the whole
 * u64 range). An index without its store is deleted. Below every store it is
 * what a crash while removing the oldest segments may leave (truncation; the
 * index goes first, but the directory's unsynced removals can reach the disk in
 * any order): said as such. Above a store, an index that lists records lost
 * its store to something else (a file removed by hand, a file system that
 * dropped it): the records are gone, and said so; an index that lists none is
 * what a crash during a roll leaves. */
static int list_bases(plog_log *l, uint64_t **out, size_t *nout)
{
    DIR *d = opendir(l->dir);
    if (d == NULL) {
        plog_log_set_err(l, "opendir %s: %s", l->dir, strerror(errno));
        return PLOG_EIO;
    }
    struct seg_file *v = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        struct seg_file f;
        if (!segment_base(e->d_name, &f.base, &f.store))
            continue;
        /* A FIFO under a segment's name would block its open for good. */
        struct stat st;
        int rc = fstatat(dirfd(d), e->d_name, &st, 0);
        if (rc != 0 || !S_ISREG(st.st_mode)) {
            plog_log_set_err(l, "%s/%s: %s", l->dir, e->d_name,
                             rc != 0 ? strerror(errno) : "not a regular file");
            free(v);
            closedir(d);
            return PLOG_EIO;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            struct seg_file *nv = plog_realloc(v, cap * sizeof *nv);
            if (nv == NULL) {
                free(v);
                closedir(d);
                return PLOG_ENOMEM;
            }
            v = nv;
        }
        v[n++] = f;
    }
    closedir(d);
    uint64_t *bases = plog_malloc((n > 0 ? n : 1) * sizeof *bases);
    if (bases == NULL) {
        free(v);
        return PLOG_ENOMEM;
    }
    if (n > 0)
        qsort(v, n, sizeof *v, cmp_seg_file);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (i + 1 < n && v[i + 1].base == v[i].base)
            continue; /* the index, its store follows */
        if (!v[i].store) {
            char path[4096];
            plog_segment_path(path, sizeof path, l->dir, v[i].base, ".index");
            if (k > 0 && plog_index_file_lists(path, l->c.segment.max_index_bytes))
                plog_log_report(&l->c, PLOG_LOG_REPORT_WARN,
                                "msg=\"store missing: the records its index listed are lost\" file=%s "
                                "first_offset=%llu",
                                path, (unsigned long long)v[i].base);
            else
                plog_log_report(&l->c, PLOG_LOG_REPORT_WARN, "msg=\"removed index without store\" file=%s",
                                path);
            IO->unlink(path);
            l->dir_dirty = true;
            continue;
        }
        bases[k++] = v[i].base;
    }
    free(v);
    *out = bases;
    *nout = k;
    return PLOG_OK;
}

static void normalize(plog_log_config *c)
{
    if (c->segment.max_store_bytes == 0)
        c->segment.max_store_bytes = DEFAULT_MAX_STORE_BYTES;
    if (c->segment.max_index_bytes == 0)
        c->segment.max_index_bytes = DEFAULT_MAX_INDEX_BYTES;
    /* Whole entries, at least one, and relative offsets must fit in a u32. */
    uint64_t entries = c->segment.max_index_bytes / 12;
    if (entries == 0)
        entries = 1;
    if (entries > (uint64_t)UINT32_MAX + 1)
        entries = (uint64_t)UINT32_MAX + 1;
    c->segment.max_index_bytes = entries * 12;
    if (c->sync_interval_ms == 0)
        c->sync_interval_ms = DEFAULT_SYNC_INTERVAL_MS;
}

/* store_empty: the store of segment base exists and holds no byte. */
static bool store_empty(plog_log *l, uint64_t base)
{
    char path[4096];
    struct stat st;
    plog_segment_path(path, sizeof path, l->dir, base, ".store");
    int fd = IO->open(path, O_RDONLY | O_CLOEXEC, 0);
    if (fd < 0)
        return false;
    bool empty = IO->fstat(fd, &st) == 0 && st.st_size == 0;
    IO->close(fd);
    return empty;
}

/* drop_empty_last removes the last segment when its store is empty, its index
 * lists no records and there is a segment before it. That is what a crash
 * during a roll leaves when the new files reached the disk but not the old
 * segment's tail (possible under PLOG_SYNC_NEVER only; log.c's roll syncs first
 * otherwise): kept, the old segment would be sealed at the new base and the
 * records it lost would read as missing (PLOG_ECORRUPT) forever, a hole under
 * every later offset. Dropped, the old segment opens as the active one: its
 * torn tail is cut and appends continue right after its last record (open
 * rolls again if it is full). A store emptied under an index that lists
 * records is damage, not a roll: the segment is kept and opens as the active
 * one, whose recovery reports the records lost ("index lists records the store
 * lacks"); dropped, they vanished without a word. That holds for a single
 * record too: its index, cut by the close to one entry of zeros, is told from a
 * roll's preallocated one by its length (plog_index_file_lists). */
static void drop_empty_last(plog_log *l, uint64_t *bases, size_t *n)
{
    if (*n < 2 || !store_empty(l, bases[*n - 1]))
        return;
    char path[4096];
    plog_segment_path(path, sizeof path, l->dir, bases[*n - 1], ".index");
    if (plog_index_file_lists(path, l->c.segment.max_index_bytes))
        return;
    IO->unlink(path);
    plog_segment_path(path, sizeof path, l->dir, bases[*n - 1], ".store");
    if (IO->unlink(path) != 0)
        return;
    l->dir_dirty = true;
    (*n)--;
}

static int open_segments(plog_log *l)
{
    uint64_t *bases;
    size_t n;
    int rv = list_bases(l, &bases, &n);
    if (rv != PLOG_OK)
        return rv;
    drop_empty_last(l, bases, &n);
    for (size_t i = 0; i < n && rv == PLOG_OK; i++) {
        char err[PLOG_ERRMSG_SIZE];
        err[0] = '\0';
        plog_segment *seg;
        if (i + 1 == n) {
            rv = plog_log_new_active(l, bases[i]);
            break;
        }
        rv = plog_log_push_seg(l, NULL);
        if (rv != PLOG_OK)
            break;
        l->nsegs--;
        rv = plog_segment_open(l->dir, bases[i], &l->c, bases[i + 1], &seg, err, sizeof err);
        if (rv != PLOG_OK) {
            plog_log_set_err(l, "%s", err[0] != '\0' ? err : plog_strerror(rv));
            break;
        }
        plog_log_push_seg(l, seg);
    }
    if (rv == PLOG_OK && n == 0)
        rv = plog_log_new_active(l, l->c.segment.initial_offset);
    free(bases);
    return rv;
}

/* fsync_dir fsyncs the directory path. */
static int fsync_dir(const char *path)
{
    int fd = IO->open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int rv = IO->fsync(fd);
    int e = errno;
    IO->close(fd);
    errno = e;
    return rv;
}

/* See log.h. A directory it creates is a new name in its parent, on disk only
 * once the parent is fsynced (the fsync of the log's own directory covers the
 * segment files, not its name): the parent of each one it created is fsynced,
 * so that under a sync policy the first acknowledged records are not lost with
 * a directory a power loss took back. */
int plog_log_mkdirs(const char *dir)
{
    char path[4096], parent[4096];
    size_t n = strlen(dir), made[64];
    int nmade = 0;
    if (n >= sizeof path) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(path, dir, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (path[i] != '/' && path[i] != '\0')
            continue;
        char c = path[i];
        path[i] = '\0';
        int rv = IO->mkdir(path, 0755);
        path[i] = c;
        if (rv != 0 && errno != EEXIST)
            return -1;
        if (rv == 0 && nmade < 64)
            made[nmade++] = i; /* path[0, i) was created */
    }
    for (int k = 0; k < nmade; k++) {
        size_t j = made[k]; /* the parent ends before the last slash of path[0, j) */
        while (j > 0 && path[j - 1] != '/')
            j--;
        if (j <= 1) {
            snprintf(parent, sizeof parent, "%s", j == 0 ? "." : "/");
        } else {
            memcpy(parent, path, j - 1);
            parent[j - 1] = '\0';
        }
        if (fsync_dir(parent) != 0)
            return -1;
    }
    return 0;
}

int plog_log_open(const char *dir, const plog_log_config *c, plog_log **lp)
{
    plog_log *l = plog_calloc(1, sizeof *l);
    if (l == NULL)
        return PLOG_ENOMEM;
    l->active_fd = -1;
    l->dir_fd = -1;
    l->c = *c;
    normalize(&l->c);
    pthread_rwlockattr_t ra;
    pthread_rwlockattr_init(&ra);
    /* A steady stream of readers must not starve the one writer. */
    pthread_rwlockattr_setkind_np(&ra, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&l->lock, &ra);
    pthread_rwlockattr_destroy(&ra);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&l->tick_cond, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&l->sync_mu, NULL);
    pthread_mutex_init(&l->err_mu, NULL);

    int rv = PLOG_ENOMEM;
    l->dir = plog_strdup(dir);
    if (l->dir == NULL)
        goto fail;
    rv = PLOG_EIO;
    if (plog_log_mkdirs(l->dir) != 0) {
        plog_log_set_err(l, "mkdir %s: %s", dir, strerror(errno));
        goto fail;
    }
    l->dir_fd = IO->open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
    if (l->dir_fd < 0) {
        plog_log_set_err(l, "open %s: %s", dir, strerror(errno));
        goto fail;
    }
    /* One log per directory: a second one (another proglog on the same data
     * directory) would recover the files under the first one's feet: cut its
     * mmap'd index to the used size (a SIGBUS at its next append), drop what
     * it has not synced. The lock comes before any file is touched and goes
     * with the descriptor: at close, or when the process dies (kill -9
     * leaves no stale lock). flock locks an open file description, so a
     * second open in the same process is refused too. */
    if (IO->flock(l->dir_fd, LOCK_EX | LOCK_NB) != 0) {
        if (errno == EWOULDBLOCK)
            plog_log_set_err(l, "data directory %s is in use by another process", dir);
        else
            plog_log_set_err(l, "lock %s: %s", dir, strerror(errno));
        goto fail;
    }
    rv = open_segments(l);
    if (rv != PLOG_OK)
        goto fail;
    if (plog_segment_is_maxed(plog_log_active(l))) {
        rv = plog_log_roll(l);
        if (rv != PLOG_OK)
            goto fail;
    }
    l->flushed_next = l->durable_next = plog_segment_next(plog_log_active(l));
    /* What a crash (or an earlier run under PLOG_SYNC_NEVER) left in the page
     * cache may not be on disk: every sealed segment goes on the pending list
     * (the next sync fdatasyncs its store and index), and the directory is
     * marked. Under a sync policy that sync happens now, since from then on
     * every record found counts as durable; under NEVER the first
     * plog_log_sync does it, so that it covers them too. */
    for (size_t i = 0; i + 1 < l->nsegs; i++) {
        if (l->npending == l->pendcap) {
            size_t cap = l->pendcap ? l->pendcap * 2 : 8;
            uint64_t *np = plog_realloc(l->pending, cap * sizeof *np);
            if (np == NULL) {
                rv = PLOG_ENOMEM;
                goto fail;
            }
            l->pending = np;
            l->pendcap = cap;
        }
        l->pending[l->npending++] = plog_segment_base(l->segs[i]);
    }
    l->dir_dirty = true;
    if (l->c.sync != PLOG_SYNC_NEVER) {
        l->durable_next = plog_segment_base(l->segs[0]);
        pthread_mutex_lock(&l->sync_mu);
        rv = plog_log_sync_locked(l);
        pthread_mutex_unlock(&l->sync_mu);
        if (rv != PLOG_OK)
            goto fail;
    }
    if (l->c.sync == PLOG_SYNC_INTERVAL) {
        rv = plog_log_syncer_start(l);
        if (rv != PLOG_OK)
            goto fail;
    }
    *lp = l;
    return PLOG_OK;
fail:
    /* Tell the caller why before the text goes away with l: this line is the
     * one that names the cause, so callers need not log a second one. */
    plog_log_report(&l->c, PLOG_LOG_REPORT_ERROR, "msg=\"cannot open the log\" dir=%s err=\"%s\"", dir,
                    l->errmsg[0] != '\0' ? l->errmsg : plog_strerror(rv));
    plog_log_close(l);
    return rv;
}
