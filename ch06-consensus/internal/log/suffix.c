/* suffix.c - cutting the newest records off a closed log (see suffix.h). */
#include "internal/log/suffix.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal/err/err.h"
#include "internal/log/index.h"
#include "internal/log/segment.h"

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* list_stores: the base offsets of the segments in dir that have a store, sorted. */
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
        const char *name = e->d_name;
        if (strlen(name) != 26 || strcmp(name + 20, ".store") != 0)
            continue;
        char *end;
        errno = 0;
        unsigned long long b = strtoull(name, &end, 10);
        if (errno != 0 || end != name + 20)
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            uint64_t *nv = realloc(v, cap * sizeof *nv);
            if (nv == NULL) {
                free(v);
                closedir(d);
                return PLOG_ENOMEM;
            }
            v = nv;
        }
        v[n++] = (uint64_t)b;
    }
    closedir(d);
    if (n > 0)
        qsort(v, n, sizeof *v, cmp_u64);
    *out = v;
    *nout = n;
    return PLOG_OK;
}

static uint64_t get_be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

static int sync_path(const char *path, char *errmsg, size_t errsz)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0 || fsync(fd) != 0) {
        plog_errf(errmsg, errsz, "fsync %s: %s", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return PLOG_EIO;
    }
    close(fd);
    return PLOG_OK;
}

/* cut_segment cuts the segment at base to its first rel records. */
static int cut_segment(const char *dir, uint64_t base, uint64_t rel, char *errmsg, size_t errsz)
{
    char spath[4096], ipath[4096];
    plog_segment_path(spath, sizeof spath, dir, base, ".store");
    plog_segment_path(ipath, sizeof ipath, dir, base, ".index");
    uint64_t pos = 0;
    if (rel > 0) {
        int fd = open(ipath, O_RDONLY);
        uint8_t e[PLOG_INDEX_ENTRY];
        if (fd < 0 ||
            pread(fd, e, sizeof e, (off_t)(rel * PLOG_INDEX_ENTRY)) != (ssize_t)sizeof e) {
            /* The index does not reach rel: the segment holds no record at
             * rel (recovery cut it), so nothing of it is after the cut. */
            if (fd >= 0)
                close(fd);
            return PLOG_OK;
        }
        close(fd);
        pos = get_be64(e + 4);
        uint32_t r = (uint32_t)e[0] << 24 | (uint32_t)e[1] << 16 | (uint32_t)e[2] << 8 | e[3];
        if (r != rel) {
            /* Preallocated zeros or garbage past the last entry: the store
             * decides, and recovery already cut it there. */
            return PLOG_OK;
        }
    }
    struct stat st;
    if (stat(spath, &st) != 0) {
        plog_errf(errmsg, errsz, "stat %s: %s", spath, strerror(errno));
        return PLOG_EIO;
    }
    if ((uint64_t)st.st_size < pos) {
        plog_errf(errmsg, errsz, "%s: index entry %" PRIu64 " at %" PRIu64 " past the store's %lld bytes",
                  ipath, rel, pos, (long long)st.st_size);
        return PLOG_ECORRUPT;
    }
    if (truncate(spath, (off_t)pos) != 0 || truncate(ipath, (off_t)(rel * PLOG_INDEX_ENTRY)) != 0) {
        plog_errf(errmsg, errsz, "truncate segment %" PRIu64 ": %s", base, strerror(errno));
        return PLOG_EIO;
    }
    int rv = sync_path(spath, errmsg, errsz);
    if (rv == PLOG_OK)
        rv = sync_path(ipath, errmsg, errsz);
    return rv;
}

int plog_log_truncate_suffix(const char *dir, uint64_t next, char *errmsg, size_t errsz)
{
    uint64_t *bases;
    size_t n;
    int rv = list_stores(dir, &bases, &n, errmsg, errsz);
    if (rv != PLOG_OK)
        return rv;
    bool removed = false;
    size_t i = n;
    /* Newest first, so a crash leaves a prefix of the log. */
    while (i > 1 && bases[i - 1] >= next) {
        char path[4096];
        i--;
        plog_segment_path(path, sizeof path, dir, bases[i], ".store");
        if (unlink(path) != 0 && errno != ENOENT) {
            plog_errf(errmsg, errsz, "unlink %s: %s", path, strerror(errno));
            rv = PLOG_EIO;
            goto out;
        }
        plog_segment_path(path, sizeof path, dir, bases[i], ".index");
        if (unlink(path) != 0 && errno != ENOENT) {
            plog_errf(errmsg, errsz, "unlink %s: %s", path, strerror(errno));
            rv = PLOG_EIO;
            goto out;
        }
        removed = true;
    }
    if (removed && (rv = sync_path(dir, errmsg, errsz)) != PLOG_OK)
        goto out;
    if (i > 0) {
        uint64_t base = bases[i - 1];
        rv = cut_segment(dir, base, next > base ? next - base : 0, errmsg, errsz);
    }
out:
    free(bases);
    return rv;
}
