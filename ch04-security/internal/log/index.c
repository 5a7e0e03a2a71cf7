/* index.c - maps a record's relative offset to its byte position in the store
 * (Go: index.go).
 *
 * The file is an array of 12-byte entries; entry i describes record base + i:
 *
 *   byte 0            4                          12
 *        +------------+--------------------------+
 *        | rel        | pos                      |  entry i+1 ...
 *        | u32 BE     | u64 BE                   |
 *        +------------+--------------------------+
 *
 *   rel  the record's offset relative to the segment's base offset (== i)
 *   pos  where the record's frame starts in the store file
 *
 * While the segment is active the file is grown to max_index_bytes and mapped
 * shared, so an append is a 12-byte store into the mapping; close() cuts it to
 * entries * 12 so the last entry is at size - 12. A crash skips that cut and
 * leaves trailing zero entries, or, after power loss, entries whose store frames
 * never reached the disk: the index is never trusted on its own, recovery in
 * segment.c checks it against the store. */
#include "internal/log/index.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal/err/alloc.h"
#include "internal/err/err.h"
#include "internal/log/io.h"

#define IO plog_io_get()

struct plog_index {
    int fd;
    uint8_t *map; /* NULL when mapsize is 0 */
    uint64_t mapsize;
    uint64_t n;        /* entries written */
    uint64_t cap;      /* entries that fit in the mapping */
    uint64_t reserved; /* bytes [0, reserved) have their blocks allocated */
    bool writable;
    bool cut_one; /* opened at one entry, not preallocated to it: a close's cut */
    char *path;
    char errmsg[256];
};

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static uint32_t get_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t get_be64(const uint8_t *p)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    uint64_t v;
    memcpy(&v, p, 8);
    return __builtin_bswap64(v);
#else
    return (uint64_t)get_be32(p) << 32 | get_be32(p + 4);
#endif
}

/* Blocks are reserved (fallocate) ahead of the entries in chunks of this
 * many bytes, not for the whole preallocated file at once: on tmpfs (and in
 * tests) reserving 10 MiB per segment costs a millisecond at every open. */
#define RESERVE_CHUNK (64u * 1024u)

/* reserve_for makes sure the blocks under bytes [0, end) of the file are
 * allocated, so that a full disk is ENOSPC here and never SIGBUS at the first
 * store into the mapping. A file system without fallocate is left sparse (and
 * the SIGBUS risk comes back). */
static int reserve_for(plog_index *x, uint64_t end)
{
    if (end <= x->reserved)
        return PLOG_OK;
    uint64_t to = (end + RESERVE_CHUNK - 1) / RESERVE_CHUNK * RESERVE_CHUNK;
    if (to > x->mapsize)
        to = x->mapsize;
    if (to < end)
        to = end;
    if (IO->fallocate(x->fd, (off_t)x->reserved, (off_t)(to - x->reserved)) != 0) {
        if (errno == EOPNOTSUPP || errno == ENOSYS) {
            x->reserved = UINT64_MAX;
            return PLOG_OK;
        }
        plog_errf(x->errmsg, sizeof x->errmsg, "reserve %s: %s", x->path, strerror(errno));
        return PLOG_EIO;
    }
    x->reserved = to;
    return PLOG_OK;
}

/* map_file replaces x's mapping with one of the file's first size bytes. The new
 * mapping is made before the old one goes, so on failure x is as it was. */
static int map_file(plog_index *x, uint64_t size, bool writable)
{
    void *m = NULL;
    if (size > 0) {
        m = IO->mmap(NULL, size, writable ? PROT_READ | PROT_WRITE : PROT_READ, MAP_SHARED, x->fd, 0);
        if (m == MAP_FAILED) {
            plog_errf(x->errmsg, sizeof x->errmsg, "mmap %s: %s", x->path, strerror(errno));
            return PLOG_EIO;
        }
    }
    if (x->map != NULL)
        IO->munmap(x->map, x->mapsize);
    x->map = m;
    x->mapsize = size;
    x->cap = size / PLOG_INDEX_ENTRY;
    x->writable = writable;
    return PLOG_OK;
}

int plog_index_open(const char *path, uint64_t max_bytes, plog_index **ip, char *errmsg, size_t errsz)
{
    plog_index *x = plog_calloc(1, sizeof *x);
    if (x == NULL)
        return PLOG_ENOMEM;
    x->fd = -1;
    x->path = plog_strdup(path);
    if (x->path == NULL) {
        free(x);
        return PLOG_ENOMEM;
    }
    struct stat st;
    x->fd = IO->open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (x->fd < 0 || IO->fstat(x->fd, &st) != 0) {
        plog_errf(errmsg, errsz, "open %s: %s", path, strerror(errno));
        goto fail;
    }
    uint64_t fsize = (uint64_t)st.st_size;
    /* Entries are written in order from the start, so none lies past the file's
     * first hole: after a crash skipped close()'s cut, the preallocated tail is
     * sparse, and reading a hole through the mapping needs a page, which tmpfs
     * takes from its own space (SIGBUS when that is full; ext4 reads zeros).
     * Recovery (segment.c) then reads no hole. */
    off_t hole = IO->seek_hole(x->fd);
    x->n = (hole >= 0 && (uint64_t)hole < fsize ? (uint64_t)hole : fsize) / PLOG_INDEX_ENTRY;
    uint64_t size = fsize;
    if (max_bytes > 0) {
        max_bytes -= max_bytes % PLOG_INDEX_ENTRY;
        x->cut_one = fsize == PLOG_INDEX_ENTRY && max_bytes != PLOG_INDEX_ENTRY;
        if (max_bytes > size)
            size = max_bytes;
        if (size != fsize && IO->ftruncate(x->fd, (off_t)size) != 0) {
            plog_errf(errmsg, errsz, "grow %s: %s", path, strerror(errno));
            goto fail;
        }
    }
    if (map_file(x, size, max_bytes > 0) != PLOG_OK) {
        plog_errf(errmsg, errsz, "%s", x->errmsg);
        goto fail;
    }
    *ip = x;
    return PLOG_OK;
fail:
    if (x->fd >= 0)
        IO->close(x->fd);
    free(x->path);
    free(x);
    return PLOG_EIO;
}

int plog_index_read(const plog_index *x, int64_t i, uint32_t *rel, uint64_t *pos)
{
    if (x->n == 0)
        return PLOG_EOF;
    uint64_t k = i == -1 ? x->n - 1 : (uint64_t)i;
    if (i < -1 || k >= x->n)
        return PLOG_EOF;
    const uint8_t *e = x->map + k * PLOG_INDEX_ENTRY;
    *rel = get_be32(e);
    *pos = get_be64(e + 4);
    return PLOG_OK;
}

uint64_t plog_index_pos(const plog_index *x, uint64_t i)
{
    return get_be64(x->map + i * PLOG_INDEX_ENTRY + 4);
}

int plog_index_prepare(plog_index *x)
{
    if (!x->writable || x->n >= x->cap)
        return PLOG_EOF;
    return reserve_for(x, (x->n + 1) * PLOG_INDEX_ENTRY);
}

int plog_index_write(plog_index *x, uint32_t rel, uint64_t pos)
{
    int rv = plog_index_prepare(x);
    if (rv != PLOG_OK)
        return rv;
    uint8_t *e = x->map + x->n * PLOG_INDEX_ENTRY;
    put_be32(e, rel);
    put_be32(e + 4, (uint32_t)(pos >> 32));
    put_be32(e + 8, (uint32_t)pos);
    x->n++;
    return PLOG_OK;
}

bool plog_index_consistent(const plog_index *x, uint64_t store_size)
{
    uint64_t prev = 0;
    for (uint64_t i = 0; i < x->n; i++) {
        const uint8_t *e = x->map + i * PLOG_INDEX_ENTRY;
        uint64_t pos = get_be64(e + 4);
        if (get_be32(e) != (uint32_t)i || pos >= store_size || (i > 0 && pos <= prev))
            return false;
        prev = pos;
    }
    return true;
}

uint64_t plog_index_listed(const plog_index *x)
{
    uint64_t k = 0, prev = 0;
    while (k < x->n) {
        const uint8_t *e = x->map + k * PLOG_INDEX_ENTRY;
        uint64_t pos = get_be64(e + 4);
        if (get_be32(e) != (uint32_t)k || (k == 0 ? pos != 0 : pos <= prev))
            break;
        prev = pos;
        k++;
    }
    return k == x->n && (k > 1 || (k == 1 && x->cut_one)) ? k : 0;
}

bool plog_index_file_lists(const char *path, uint64_t max_bytes)
{
    uint8_t e[2 * PLOG_INDEX_ENTRY];
    struct stat st;
    int fd = IO->open(path, O_RDONLY | O_CLOEXEC, 0);
    if (fd < 0)
        return false;
    ssize_t n = IO->pread(fd, e, sizeof e, 0);
    bool one = IO->fstat(fd, &st) == 0 && st.st_size == PLOG_INDEX_ENTRY;
    IO->close(fd);
    max_bytes -= max_bytes % PLOG_INDEX_ENTRY;
    if (one)
        return n == PLOG_INDEX_ENTRY && max_bytes != PLOG_INDEX_ENTRY && get_be32(e) == 0 &&
               get_be64(e + 4) == 0;
    return n == (ssize_t)sizeof e && get_be32(e) == 0 && get_be64(e + 4) == 0 &&
           get_be32(e + PLOG_INDEX_ENTRY) == 1 && get_be64(e + PLOG_INDEX_ENTRY + 4) > 0;
}

uint64_t plog_index_entries(const plog_index *x)
{
    return x->n;
}

uint64_t plog_index_capacity(const plog_index *x)
{
    return x->writable ? x->cap : x->n;
}

void plog_index_set_entries(plog_index *x, uint64_t n)
{
    if (n < x->n)
        x->n = n;
}

void plog_index_clear_dropped(plog_index *x, uint64_t upto)
{
    static const uint8_t zero[PLOG_INDEX_ENTRY];
    if (!x->writable)
        return;
    if (upto > x->cap)
        upto = x->cap;
    /* An entry that is zero already is not written: it may lie in a hole of
     * the file, and a store there would need a block the disk may not have. */
    for (uint64_t i = x->n; i < upto; i++) {
        uint8_t *e = x->map + i * PLOG_INDEX_ENTRY;
        if (memcmp(e, zero, PLOG_INDEX_ENTRY) != 0)
            memset(e, 0, PLOG_INDEX_ENTRY);
    }
}

int plog_index_seal(plog_index *x)
{
    uint64_t size = x->n * PLOG_INDEX_ENTRY;
    if (!x->writable && x->mapsize == size)
        return PLOG_OK; /* opened sealed, and nothing to cut */
    /* Cut first, then swap mappings: the old mapping stays valid for the
     * entries we read, so a failure anywhere leaves x usable. */
    if (IO->ftruncate(x->fd, (off_t)size) != 0) {
        plog_errf(x->errmsg, sizeof x->errmsg, "truncate %s: %s", x->path, strerror(errno));
        return PLOG_EIO;
    }
    return map_file(x, size, false);
}

int plog_index_fd(const plog_index *x)
{
    return x->fd;
}

const char *plog_index_errmsg(const plog_index *x)
{
    return x->errmsg;
}

int plog_index_grow(plog_index *x, uint64_t n)
{
    if (x->writable && n <= x->cap)
        return PLOG_OK;
    if (n < x->cap)
        n = x->cap;
    if (n == 0)
        n = 1;
    uint64_t size = n * PLOG_INDEX_ENTRY;
    if (IO->ftruncate(x->fd, (off_t)size) != 0) {
        plog_errf(x->errmsg, sizeof x->errmsg, "grow %s: %s", x->path, strerror(errno));
        return PLOG_EIO;
    }
    return map_file(x, size, true);
}

int plog_index_read_raw(const plog_index *x, uint64_t i, uint32_t *rel, uint64_t *pos)
{
    if (i >= x->mapsize / PLOG_INDEX_ENTRY)
        return PLOG_EOF;
    const uint8_t *e = x->map + i * PLOG_INDEX_ENTRY;
    *rel = get_be32(e);
    *pos = get_be64(e + 4);
    return PLOG_OK;
}

int plog_index_close(plog_index *x, bool sync)
{
    if (x == NULL)
        return PLOG_OK;
    int rv = PLOG_OK;
    if (x->map != NULL)
        IO->munmap(x->map, x->mapsize);
    if (x->fd >= 0) {
        /* The file is always as long as the mapping: cut it only when that
         * is longer than the entries (not for an untouched sealed index). */
        if (x->mapsize != x->n * PLOG_INDEX_ENTRY &&
            IO->ftruncate(x->fd, (off_t)(x->n * PLOG_INDEX_ENTRY)) != 0)
            rv = PLOG_EIO;
        if (sync && IO->fdatasync(x->fd) != 0)
            rv = PLOG_EIO;
        if (IO->close(x->fd) != 0)
            rv = PLOG_EIO;
    }
    free(x->path);
    free(x);
    return rv;
}
