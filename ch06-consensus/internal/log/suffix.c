/* suffix.c - cutting the newest records off a closed log (see suffix.h).
 *
 * Every file operation goes through the I/O seam (io.h), the directory listing
 * aside (opendir, as log_open.c lists a log), so that tests can cut the power
 * or fail any call of a cut.
 *
 * The invariant. Let [lo, end) be the records plog_log_open finds in dir when
 * the call starts and cut = min(max(next, lo), end). Wherever the power goes
 * during the call, the directory reopens to [lo, e) with cut <= e <= end,
 * every record in it the one the old log held at that offset (no hole, no
 * record of another offset); once the call has returned PLOG_OK it reopens to
 * exactly [lo, cut). The steps, and what a crash after each one leaves:
 *
 *   1. For each segment whose base is >= next, newest first (never the
 *      oldest): unlink its store, unlink its index, fsync the directory.
 *      Open finds the stores only (an index without its store is deleted),
 *      so at any moment the log holds its segments up to some point: the
 *      segments not yet removed, which are whole (old sealed segments are not
 *      touched), all of them below `end` and the last still holding every
 *      record below next. The fsync after each segment is what makes "newest
 *      first" hold on disk: a file system may commit unlinks in any order, and
 *      a newer segment coming back after an older one went would be a hole
 *      (the older sealed segment would miss its records).
 *   2. The segment holding next, now the last one, is opened as the log's
 *      active segment would be (segment.c's recovery: its index checked
 *      against the store, rebuilt from the store when they disagree, a torn
 *      tail cut), so its records are exactly those open would find. A crash
 *      here changes nothing open would not change itself. (One exception to
 *      "exactly": a once-sealed segment whose store holds frames past its
 *      records, which open reports as "sealed segment longer than its
 *      records", shows them while it is last, until step 3 cuts them; all of
 *      them are at or above next.)
 *   3. Its store is cut where record next begins (ftruncate) and fdatasynced,
 *      then its index is cut to next - base entries (ftruncate; the index may
 *      be longer than its entries: preallocated to max_index_bytes while the
 *      segment was active, or left so by a crash) and fdatasynced. A crash
 *      between leaves a cut store with a longer index, or an index of either
 *      length with the old store: open trusts an index only when its last
 *      entry's frame ends exactly at the end of the store, so it rebuilds the
 *      index from the store in both cases, and the store alone decides: old
 *      (e = what step 2 found) or cut (e = cut).
 * After step 3 nothing at or above next is on disk in a name open reads. */
#include "internal/log/suffix.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal/err/alloc.h"
#include "internal/err/err.h"
#include "internal/log/io.h"
#include "internal/log/log_impl.h"

#define IO plog_io_get()
#include "internal/log/segment.h"

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* store_base: a store's name, parsed as log_open.c does. */
static bool store_base(const char *name, uint64_t *base)
{
    bool store;
    return plog_log_segment_name(name, base, &store) && store;
}

/* list_stores: the base offsets of the segments in dir (those with a store),
 * sorted. io.h has no directory listing: like log_open.c, readdir. */
static int list_stores(const char *dir, uint64_t **out, size_t *nout, char *errmsg, size_t errsz)
{
    DIR *d = opendir(dir);
    if (d == NULL) {
        plog_errf(errmsg, errsz, "opendir %s: %s", dir, strerror(errno));
        return PLOG_EIO;
    }
    uint64_t *v = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        uint64_t b;
        if (!store_base(e->d_name, &b))
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            uint64_t *nv = plog_realloc(v, cap * sizeof *nv);
            if (nv == NULL) {
                free(v);
                closedir(d);
                return PLOG_ENOMEM;
            }
            v = nv;
        }
        v[n++] = b;
    }
    closedir(d);
    if (n > 0)
        qsort(v, n, sizeof *v, cmp_u64);
    *out = v;
    *nout = n;
    return PLOG_OK;
}

/* remove_segment unlinks the store, then the index of segment base (step 1). */
static int remove_segment(const char *dir, uint64_t base, char *errmsg, size_t errsz)
{
    static const char *const exts[] = {".store", ".index"};
    for (int i = 0; i < 2; i++) {
        char path[4096];
        plog_segment_path(path, sizeof path, dir, base, exts[i]);
        if (IO->unlink(path) != 0 && errno != ENOENT) {
            plog_errf(errmsg, errsz, "unlink %s: %s", path, strerror(errno));
            return PLOG_EIO;
        }
    }
    return PLOG_OK;
}

/* cut_segment drops the records from next on of the segment at base, the last
 * one of the log (steps 2 and 3). next >= base. */
static int cut_segment(const char *dir, uint64_t base, uint64_t next, char *errmsg, size_t errsz)
{
    /* Zero sizes: the index is mapped at its size, not grown to a maximum
     * (nothing is appended), and recovery's reports go to stderr as those of
     * a log opened without a report function. */
    plog_log_config c = {0};
    plog_segment *seg;
    int rv = plog_segment_open(dir, base, &c, PLOG_SEGMENT_ACTIVE, &seg, errmsg, errsz);
    if (rv != PLOG_OK)
        return rv;
    /* Nothing from next on: no cut, but what recovery repaired is synced. */
    if (next < plog_segment_next(seg) && (rv = plog_segment_rewind(seg, next)) != PLOG_OK) {
        plog_errf(errmsg, errsz, "cut segment %020" PRIu64 " at %" PRIu64 ": %s", base, next,
                  plog_segment_errmsg(seg));
        plog_segment_close(seg, false);
        return rv;
    }
    /* The store's fdatasync, then the index cut to its entries and fdatasynced
     * (segment.c's close, in that order). */
    rv = plog_segment_close(seg, true);
    if (rv != PLOG_OK)
        plog_errf(errmsg, errsz, "sync segment %020" PRIu64 " after the cut at %" PRIu64 ": %s", base, next,
                  plog_strerror(rv));
    return rv;
}

int plog_log_truncate_suffix(const char *dir, uint64_t next, char *errmsg, size_t errsz)
{
    uint64_t *bases;
    size_t n;
    int dfd = -1;
    int rv = list_stores(dir, &bases, &n, errmsg, errsz);
    if (rv != PLOG_OK)
        return rv;
    size_t i = n;
    while (i > 1 && bases[i - 1] >= next) {
        if (dfd < 0 && (dfd = IO->open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0)) < 0) {
            plog_errf(errmsg, errsz, "open %s: %s", dir, strerror(errno));
            rv = PLOG_EIO;
            goto out;
        }
        rv = remove_segment(dir, bases[--i], errmsg, errsz);
        if (rv != PLOG_OK)
            goto out;
        if (IO->fsync(dfd) != 0) {
            plog_errf(errmsg, errsz, "fsync %s: %s", dir, strerror(errno));
            rv = PLOG_EIO;
            goto out;
        }
    }
    if (i > 0)
        rv = cut_segment(dir, bases[i - 1], next > bases[i - 1] ? next : bases[i - 1], errmsg, errsz);
out:
    if (dfd >= 0)
        IO->close(dfd);
    free(bases);
    return rv;
}
