/* raftstore.c - a Raft server's durable state in one directory (see raftstore.h). */
#include "internal/raftstore/raftstore.h"

#include <assert.h>
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

#include "api/v1/log.pb-c.h"
#include "internal/err/err.h"
#include "internal/log/io.h"
#include "internal/log/log.h"
#include "internal/log/store.h"
#include "internal/log/suffix.h"

#define ERRSZ 256
#define SNAP_MAGIC 0x504c534eu       /* "PLSN" */
#define SNAP_HDR (4 + 8 + 8 + 8 + 4) /* magic, index, term, gen, conf length */
/* The files are written through the log's I/O seam (internal/log/io.h), so tests
 * can fail or hold their writes and syncs; rename has no entry there. */
#define IO plog_io_get()

struct plog_raftstore {
    char *dir;
    plog_log_config lc;
    plog_log *log;
    uint64_t gen; /* log-<gen> holds the log after the snapshot */
    plog_raft_hard_state hs;
    uint64_t cluster; /* the "cluster" file's id, 0: none */
    bool has_snap;
    /* The latest snapshot's meta; its bytes only as the file was last read (snap_buf,
     * snap.data points into it): the store keeps no copy of a snapshot it saved, boot
     * reads the file again (the driver and the core hold the bytes already). */
    plog_raft_snapshot snap;
    uint8_t *snap_buf;
    Log__V1__Record **recs; /* what the last boot read; entries point into them */
    plog_raft_entry *entries;
    size_t n_recs;
    bool writing; /* a snapshot job began and has not ended */
    char errmsg[ERRSZ];
};

/* A snapshot being written off the store's thread: what it needs of the store is
 * copied in when it begins, so the write reads nothing the store's thread changes. */
struct plog_raftstore_snapshot_job {
    char *dir;
    uint64_t gen;
    plog_raft_snapshot snap; /* the meta; the bytes come with the write */
    bool written;
    int rv;
    char errmsg[ERRSZ];
};

static void put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

static uint64_t get_be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

static void put_be32(uint8_t *p, uint32_t v)
{
    for (int i = 3; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

static uint32_t get_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* fail_at records in err (ERRSZ bytes) why a system call on path failed. */
static int fail_at(char *err, const char *what, const char *path)
{
    plog_errf(err, ERRSZ, "%s %s: %s", what, path, strerror(errno));
    return PLOG_EIO;
}

static int fail_errno(plog_raftstore *s, const char *what, const char *path)
{
    return fail_at(s->errmsg, what, path);
}

static int fsync_dir(const char *dir, char *err)
{
    int fd = IO->open(dir, O_RDONLY | O_DIRECTORY, 0);
    if (fd < 0)
        return fail_at(err, "open", dir);
    int rv = IO->fsync(fd) == 0 ? PLOG_OK : fail_at(err, "fsync", dir);
    IO->close(fd);
    return rv;
}

/* A file's content in pieces written one after the other: a snapshot's data goes
 * between its header and its checksum without being copied. */
struct piece {
    const uint8_t *p;
    size_t n;
};

/* A temporary is fdatasynced after every SYNC_EVERY bytes written. ext4 (data=
 * ordered) writes out the new data of every file before it commits a journal
 * transaction, so the node thread's fdatasync of Raft's log, which commits one,
 * waited for all the dirty data of a snapshot written meanwhile: a scratch run
 * measured a 100-byte append's fdatasync at up to 117-136 ms beside a 64 MB write
 * synced once, 8-11 ms with a sync every 1 MiB (the write took 1.5 times as long),
 * and a black-box run saw elections start while a 65-112 MB snapshot was written. */
#define SYNC_EVERY (1u << 20)

/* write_atomic replaces dir/name by the pieces pc[0..npc): write a temporary
 * (synced every SYNC_EVERY bytes), fsync it, rename it over the old file, fsync
 * the directory. A crash leaves the old file or the new one, whole (and maybe the
 * temporary: remove_temporaries). It touches no store (the reason goes to err,
 * ERRSZ bytes), so a snapshot job runs it on another thread. A write that fails
 * removes its temporary: on a full disk, a partial snapshot.tmp kept the space
 * the node needed until the next snapshot was written. */
static int write_atomic(const char *dir, const char *name, const struct piece *pc, size_t npc, char *err)
{
    char tmp[4096], path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    snprintf(tmp, sizeof tmp, "%s/%s.tmp", dir, name);
    int fd = IO->open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0)
        return fail_at(err, "open", tmp);
    int rv = PLOG_OK;
    off_t off = 0;
    size_t unsynced = 0;
    for (size_t i = 0; i < npc && rv == PLOG_OK; i++) {
        for (size_t done = 0; done < pc[i].n && rv == PLOG_OK;) {
            size_t n = pc[i].n - done < SYNC_EVERY - unsynced ? pc[i].n - done : SYNC_EVERY - unsynced;
            ssize_t w = IO->pwrite(fd, pc[i].p + done, n, off);
            if (w < 0 && errno == EINTR)
                continue;
            if (w < 0) {
                rv = fail_at(err, "write", tmp);
                break;
            }
            done += (size_t)w;
            off += w;
            if ((unsynced += (size_t)w) == SYNC_EVERY) {
                unsynced = 0;
                if (IO->fdatasync(fd) != 0)
                    rv = fail_at(err, "fdatasync", tmp);
            }
        }
    }
    if (rv == PLOG_OK && IO->fsync(fd) != 0)
        rv = fail_at(err, "fsync", tmp);
    IO->close(fd);
    if (rv == PLOG_OK && rename(tmp, path) != 0)
        rv = fail_at(err, "rename", tmp);
    if (rv != PLOG_OK) {
        unlink(tmp);
        return rv;
    }
    return fsync_dir(dir, err);
}

/* read_file reads dir/name into *p (malloc'd). PLOG_EOF when it does not exist. */
static int read_file(plog_raftstore *s, const char *name, uint8_t **p, size_t *n)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", s->dir, name);
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return errno == ENOENT ? PLOG_EOF : fail_errno(s, "open", path);
    struct stat st;
    if (fstat(fd, &st) != 0) {
        fail_errno(s, "stat", path);
        close(fd);
        return PLOG_EIO;
    }
    uint8_t *buf = malloc((size_t)st.st_size + 1);
    if (buf == NULL) {
        close(fd);
        return PLOG_ENOMEM;
    }
    size_t off = 0;
    while (off < (size_t)st.st_size) {
        ssize_t r = read(fd, buf + off, (size_t)st.st_size - off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            fail_errno(s, "read", path);
            free(buf);
            close(fd);
            return PLOG_EIO;
        }
        off += (size_t)r;
    }
    close(fd);
    *p = buf;
    *n = off;
    return PLOG_OK;
}

/* The small files (hardstate, cluster): len bytes of fields, then a CRC-32C of
 * them. MAX_SEALED: the largest len. */
#define MAX_SEALED 16

/* load_sealed reads file name into buf (len bytes); *found says whether there
 * is one. PLOG_ECORRUPT for a wrong size or checksum. */
static int load_sealed(plog_raftstore *s, const char *name, uint8_t *buf, size_t len, bool *found)
{
    uint8_t *p;
    size_t n;
    *found = false;
    int rv = read_file(s, name, &p, &n);
    if (rv == PLOG_EOF)
        return PLOG_OK;
    if (rv != PLOG_OK)
        return rv;
    if (n != len + 4 || plog_crc32c(0, p, len) != get_be32(p + len)) {
        plog_errf(s->errmsg, sizeof s->errmsg, "%s/%s: bad size or checksum", s->dir, name);
        free(p);
        return PLOG_ECORRUPT;
    }
    memcpy(buf, p, len);
    free(p);
    *found = true;
    return PLOG_OK;
}

/* save_sealed writes p (len bytes) and its CRC-32C to file name atomically. */
static int save_sealed(plog_raftstore *s, const char *name, const uint8_t *p, size_t len)
{
    uint8_t b[MAX_SEALED + 4];
    memcpy(b, p, len);
    put_be32(b + len, plog_crc32c(0, p, len));
    struct piece pc = {b, len + 4};
    return write_atomic(s->dir, name, &pc, 1, s->errmsg);
}

/* Hard state file: term u64, vote u64, CRC-32C u32. */
static int load_hard_state(plog_raftstore *s)
{
    uint8_t b[16];
    bool found;
    int rv = load_sealed(s, "hardstate", b, sizeof b, &found);
    if (rv == PLOG_OK && found) {
        s->hs.term = get_be64(b);
        s->hs.vote = get_be64(b + 8);
    }
    return rv;
}

/* Cluster file: the id u64, CRC-32C u32. */
static int load_cluster(plog_raftstore *s)
{
    uint8_t b[8];
    bool found;
    int rv = load_sealed(s, "cluster", b, sizeof b, &found);
    if (rv == PLOG_OK && found)
        s->cluster = get_be64(b);
    return rv;
}

/* Snapshot file: magic u32, index u64, term u64, gen u64, conf length u32, conf,
 * data length u64, data, CRC-32C u32 of everything before it. */
static int load_snapshot(plog_raftstore *s)
{
    uint8_t *p;
    size_t n;
    int rv = read_file(s, "snapshot", &p, &n);
    if (rv == PLOG_EOF)
        return PLOG_OK;
    if (rv != PLOG_OK)
        return rv;
    size_t hdr = SNAP_HDR;
    if (n < hdr + 8 + 4 || get_be32(p) != SNAP_MAGIC || plog_crc32c(0, p, n - 4) != get_be32(p + n - 4))
        goto corrupt;
    uint32_t clen = get_be32(p + 28);
    if (clen > n - hdr - 12)
        goto corrupt;
    uint64_t dlen = get_be64(p + hdr + clen);
    if (dlen != n - hdr - clen - 12)
        goto corrupt;
    plog_raft_snapshot snap = {.index = get_be64(p + 4), .term = get_be64(p + 12)};
    if (plog_raft_conf_decode(p + hdr, clen, &snap.conf) != PLOG_OK)
        goto corrupt;
    s->gen = get_be64(p + 20);
    s->snap_buf = p;
    snap.data = p + hdr + clen + 8;
    snap.len = (size_t)dlen;
    s->snap = snap;
    s->has_snap = true;
    return PLOG_OK;
corrupt:
    plog_errf(s->errmsg, sizeof s->errmsg, "%s/snapshot: bad format or checksum", s->dir);
    free(p);
    return PLOG_ECORRUPT;
}

static void remove_tree(const char *path)
{
    DIR *d = opendir(path);
    if (d != NULL) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            char sub[4096];
            snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
            unlink(sub);
        }
        closedir(d);
    }
    rmdir(path);
}

/* holds_entries: whether the log directory path has a non-empty store file. */
static bool holds_entries(const char *path)
{
    DIR *d = opendir(path);
    if (d == NULL)
        return false;
    bool found = false;
    struct dirent *e;
    while (!found && (e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);
        if (n < 6 || strcmp(e->d_name + n - 6, ".store") != 0)
            continue;
        char sub[4096];
        struct stat st;
        if (snprintf(sub, sizeof sub, "%s/%s", path, e->d_name) >= (int)sizeof sub)
            continue;
        found = stat(sub, &st) == 0 && st.st_size > 0;
    }
    closedir(d);
    return found;
}

/* stray_log: whether the directory entry e is a log generation other than the
 * current one, with its path and whether it is newer. */
static bool stray_log(const plog_raftstore *s, const struct dirent *e, char *path, size_t size, bool *newer)
{
    unsigned long long g;
    char tail;
    if (sscanf(e->d_name, "log-%llu%c", &g, &tail) != 1 || g == s->gen)
        return false;
    snprintf(path, size, "%s/%s", s->dir, e->d_name);
    *newer = g > s->gen;
    return true;
}

/* remove_stray removes log generations other than the current one: what a crash
 * during a snapshot install left behind. An install makes the new generation's
 * log, empty, before the snapshot that names it, so a crash leaves a newer
 * generation only empty: one that holds entries means the snapshot naming it was
 * lost or replaced by an older one, and removing it would silently drop entries
 * this node acknowledged (PLOG_ECORRUPT, nothing removed). */
static int remove_stray(plog_raftstore *s)
{
    DIR *d = opendir(s->dir);
    if (d == NULL)
        return PLOG_OK;
    struct dirent *e;
    char path[4096];
    bool newer;
    while ((e = readdir(d)) != NULL) {
        if (stray_log(s, e, path, sizeof path, &newer) && newer && holds_entries(path)) {
            plog_errf(s->errmsg, sizeof s->errmsg,
                      "%s holds entries but %s/snapshot %s: restore the snapshot that names it, "
                      "or move the data directory aside and start the node with --start-join-addrs",
                      path, s->dir, s->has_snap ? "is older than it" : "is missing");
            closedir(d);
            return PLOG_ECORRUPT;
        }
    }
    rewinddir(d);
    while ((e = readdir(d)) != NULL) {
        if (stray_log(s, e, path, sizeof path, &newer))
            remove_tree(path);
    }
    closedir(d);
    return PLOG_OK;
}

/* remove_temporaries removes what a crash in the middle of write_atomic left:
 * nothing reads a temporary, and one of a snapshot may be as large as the state
 * machine (kept for good when snapshots were off after the restart). The store
 * is opened before any write of it, by the one process that holds the data
 * directory. */
static void remove_temporaries(plog_raftstore *s)
{
    static const char *const names[] = {"hardstate.tmp", "cluster.tmp", "snapshot.tmp"};
    char path[4096];
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", s->dir, names[i]);
        unlink(path);
    }
}

/* check_log_present: a store that holds Raft state (a term, a cluster id or a
 * snapshot) has its log generation's directory, made (durably) when the store was
 * first opened or before the snapshot naming it was written. Without it every
 * entry this node stored, and may have acknowledged, is gone, and a node that went
 * on from its snapshot alone could help elect a leader that lacks them
 * (PLOG_ECORRUPT; before, it started with no word of the loss). */
static int check_log_present(plog_raftstore *s)
{
    if (s->hs.term == 0 && s->cluster == 0 && !s->has_snap)
        return PLOG_OK;
    char path[4096];
    struct stat st;
    snprintf(path, sizeof path, "%s/log-%" PRIu64, s->dir, s->gen);
    if (stat(path, &st) == 0 || errno != ENOENT)
        return PLOG_OK;
    plog_errf(s->errmsg, sizeof s->errmsg,
              "%s is missing, yet %s holds this node's Raft state: the entries it stored are gone; restore "
              "it, or move the data directory aside and start the node with --start-join-addrs",
              path, s->dir);
    return PLOG_ECORRUPT;
}

static int open_log(plog_raftstore *s, uint64_t gen, uint64_t initial, plog_log **lp)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/log-%" PRIu64, s->dir, gen);
    plog_log_config c = s->lc;
    c.segment.initial_offset = initial;
    c.sync = PLOG_SYNC_NEVER; /* the store syncs when the driver says */
    int rv = plog_log_open(path, &c, lp);
    if (rv != PLOG_OK)
        plog_errf(s->errmsg, sizeof s->errmsg, "open log %s: %s", path, plog_strerror(rv));
    return rv;
}

int plog_raftstore_open(const char *dir, const plog_log_config *lc, plog_raftstore **sp, char *errmsg,
                        size_t errsz)
{
    plog_raftstore *s = calloc(1, sizeof *s);
    if (s == NULL || (s->dir = strdup(dir)) == NULL) {
        free(s);
        return PLOG_ENOMEM;
    }
    if (lc != NULL)
        s->lc = *lc;
    int rv = PLOG_OK;
    if (plog_log_mkdirs(dir) != 0) { /* a new directory, durable: its parent fsynced */
        rv = fail_errno(s, "mkdir", dir);
        goto fail;
    }
    remove_temporaries(s);
    if ((rv = load_hard_state(s)) != PLOG_OK || (rv = load_cluster(s)) != PLOG_OK ||
        (rv = load_snapshot(s)) != PLOG_OK)
        goto fail;
    if ((rv = remove_stray(s)) != PLOG_OK || (rv = check_log_present(s)) != PLOG_OK)
        goto fail;
    rv = open_log(s, s->gen, s->has_snap ? s->snap.index : 0, &s->log);
    if (rv != PLOG_OK)
        goto fail;
    *sp = s;
    return PLOG_OK;
fail:
    plog_errf(errmsg, errsz, "%s", s->errmsg[0] ? s->errmsg : plog_strerror(rv));
    plog_raftstore_close(s);
    return rv;
}

static void free_boot(plog_raftstore *s)
{
    for (size_t i = 0; i < s->n_recs; i++)
        log__v1__record__free_unpacked(s->recs[i], NULL);
    free(s->recs);
    free(s->entries);
    s->recs = NULL;
    s->entries = NULL;
    s->n_recs = 0;
}

int plog_raftstore_boot(plog_raftstore *s, plog_raft_boot *boot)
{
    free_boot(s);
    if (s->has_snap && s->snap_buf == NULL) {
        /* saved since the file was read: its bytes are read back (install_snapshot) */
        int rv = load_snapshot(s);
        if (rv == PLOG_OK && s->snap_buf == NULL) {
            plog_errf(s->errmsg, sizeof s->errmsg, "%s/snapshot: missing", s->dir);
            rv = PLOG_ECORRUPT;
        }
        if (rv != PLOG_OK)
            return rv;
    }
    uint64_t snap_index = s->has_snap ? s->snap.index : 0;
    uint64_t lo = plog_log_lowest_offset(s->log), next = plog_log_next_offset(s->log);
    /* Entry i is at offset i - 1: the first entry needed, snap_index + 1, is at
     * offset snap_index. */
    if (lo > snap_index) { /* an empty log there too: next - snap_index entries would be read */
        plog_errf(s->errmsg, sizeof s->errmsg,
                  "log starts at index %" PRIu64 ", after the snapshot's %" PRIu64 " + 1", lo + 1,
                  snap_index);
        return PLOG_ECORRUPT;
    }
    size_t n = next > snap_index ? (size_t)(next - snap_index) : 0;
    if (n > 0) {
        s->recs = calloc(n, sizeof *s->recs);
        s->entries = calloc(n, sizeof *s->entries);
        if (s->recs == NULL || s->entries == NULL) {
            free_boot(s);
            return PLOG_ENOMEM;
        }
    }
    for (size_t i = 0; i < n; i++) {
        Log__V1__Record *r;
        int rv = plog_log_read(s->log, snap_index + i, &r);
        if (rv != PLOG_OK) {
            plog_log_errmsg(s->log, s->errmsg, sizeof s->errmsg);
            free_boot(s);
            return rv;
        }
        s->recs[s->n_recs++] = r;
        s->entries[i] = (plog_raft_entry){.term = r->term,
                                          .index = snap_index + i + 1,
                                          .type = (uint8_t)r->type,
                                          .data = r->value.data,
                                          .len = r->value.len};
    }
    *boot = (plog_raft_boot){
        .hs = s->hs, .snapshot = s->has_snap ? &s->snap : NULL, .entries = s->entries, .n_entries = n};
    return PLOG_OK;
}

int plog_raftstore_read(plog_raftstore *s, uint64_t index, uint8_t *buf, size_t len)
{
    free_boot(s);
    if (index == 0)
        return PLOG_ERANGE;
    Log__V1__Record *r;
    int rv = plog_log_read(s->log, index - 1, &r); /* entry i is at offset i - 1 */
    if (rv != PLOG_OK) {
        plog_log_errmsg(s->log, s->errmsg, sizeof s->errmsg);
        return rv;
    }
    if (r->value.len != len) {
        plog_errf(s->errmsg, sizeof s->errmsg, "entry %" PRIu64 " holds %zu bytes, not %zu", index,
                  r->value.len, len);
        rv = PLOG_ECORRUPT;
    } else if (len > 0) {
        memcpy(buf, r->value.data, len);
    }
    log__v1__record__free_unpacked(r, NULL);
    return rv;
}

int plog_raftstore_save_hard_state(plog_raftstore *s, const plog_raft_hard_state *hs)
{
    free_boot(s);
    uint8_t b[16];
    put_be64(b, hs->term);
    put_be64(b + 8, hs->vote);
    int rv = save_sealed(s, "hardstate", b, sizeof b);
    if (rv == PLOG_OK)
        s->hs = *hs;
    return rv;
}

uint64_t plog_raftstore_cluster(const plog_raftstore *s)
{
    return s->cluster;
}

int plog_raftstore_save_cluster(plog_raftstore *s, uint64_t id)
{
    uint8_t b[8];
    put_be64(b, id);
    int rv = save_sealed(s, "cluster", b, sizeof b);
    if (rv == PLOG_OK)
        s->cluster = id;
    return rv;
}

uint64_t plog_raftstore_last_index(plog_raftstore *s)
{
    return plog_log_next_offset(s->log);
}

/* truncate_from deletes the stored entries from index on: close the log, cut
 * its files (suffix.h), reopen it. */
static int truncate_from(plog_raftstore *s, uint64_t index)
{
    uint64_t initial = plog_log_lowest_offset(s->log);
    char path[4096];
    snprintf(path, sizeof path, "%s/log-%" PRIu64, s->dir, s->gen);
    int rv = plog_log_close(s->log);
    s->log = NULL;
    if (rv != PLOG_OK) {
        plog_errf(s->errmsg, sizeof s->errmsg, "close log %s: %s", path, plog_strerror(rv));
        return rv;
    }
    rv = plog_log_truncate_suffix(path, index - 1, s->errmsg, sizeof s->errmsg);
    if (rv != PLOG_OK)
        return rv;
    return open_log(s, s->gen, initial, &s->log);
}

int plog_raftstore_append(plog_raftstore *s, const plog_raft_entry *e, size_t n)
{
    free_boot(s);
    if (n == 0)
        return PLOG_OK;
    if (s->log == NULL)
        return PLOG_EIO; /* a truncation failed half-way: reopen the store */
    uint64_t last = plog_raftstore_last_index(s);
    uint64_t lo = plog_log_lowest_offset(s->log);
    if (e[0].index == 0 || e[0].index > last + 1 || e[0].index - 1 < lo) {
        plog_errf(s->errmsg, sizeof s->errmsg,
                  "append at index %" PRIu64 " to a log holding %" PRIu64 "..%" PRIu64, e[0].index, lo + 1,
                  last);
        return PLOG_EINVAL;
    }
    int rv;
    if (e[0].index <= last && (rv = truncate_from(s, e[0].index)) != PLOG_OK)
        return rv;
    Log__V1__Record *recs = calloc(n, sizeof *recs);
    Log__V1__Record **ptrs = calloc(n, sizeof *ptrs);
    if (recs == NULL || ptrs == NULL) {
        free(recs);
        free(ptrs);
        return PLOG_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        log__v1__record__init(&recs[i]);
        recs[i].value.data = (uint8_t *)e[i].data;
        recs[i].value.len = e[i].len;
        recs[i].term = e[i].term;
        recs[i].type = e[i].type;
        ptrs[i] = &recs[i];
    }
    uint64_t first;
    rv = plog_log_append_batch(s->log, ptrs, n, &first);
    if (rv != PLOG_OK)
        plog_log_errmsg(s->log, s->errmsg, sizeof s->errmsg);
    free(recs);
    free(ptrs);
    return rv;
}

int plog_raftstore_sync(plog_raftstore *s)
{
    if (s->log == NULL)
        return PLOG_EIO;
    int rv = plog_log_sync(s->log);
    if (rv != PLOG_OK)
        plog_log_errmsg(s->log, s->errmsg, sizeof s->errmsg);
    return rv;
}

/* write_snapshot_file writes the snapshot file of snap naming log generation gen
 * (the format above load_snapshot), durably. It touches no store, so it runs on
 * any thread. */
static int write_snapshot_file(const char *dir, const plog_raft_snapshot *snap, uint64_t gen, char *err)
{
    uint8_t h[SNAP_HDR + PLOG_RAFT_CONF_MAX_BYTES + 8], crc[4];
    size_t clen = plog_raft_conf_encode(&snap->conf, h + SNAP_HDR);
    put_be32(h, SNAP_MAGIC);
    put_be64(h + 4, snap->index);
    put_be64(h + 12, snap->term);
    put_be64(h + 20, gen);
    put_be32(h + 28, (uint32_t)clen);
    put_be64(h + SNAP_HDR + clen, snap->len);
    size_t hn = SNAP_HDR + clen + 8;
    put_be32(crc, plog_crc32c(plog_crc32c(0, h, hn), snap->data, snap->len));
    struct piece pc[3] = {{h, hn}, {snap->data, snap->len}, {crc, 4}};
    return write_atomic(dir, "snapshot", pc, 3, err);
}

/* install_snapshot makes snap's meta the store's latest snapshot; boot reads its
 * bytes back from the file (a copy kept here was one more copy of the whole state
 * machine, made on the driver's thread). */
static void install_snapshot(plog_raftstore *s, const plog_raft_snapshot *snap)
{
    free(s->snap_buf);
    s->snap_buf = NULL;
    s->snap = *snap;
    s->snap.data = NULL;
    s->has_snap = true;
}

int plog_raftstore_snapshot_begin(plog_raftstore *s, const plog_raft_snapshot *snap,
                                  plog_raftstore_snapshot_job **jp)
{
    assert(!s->writing); /* two jobs could rename their files in either order */
    if (s->log == NULL)
        return PLOG_EIO;
    plog_raftstore_snapshot_job *j = calloc(1, sizeof *j);
    if (j == NULL || (j->dir = strdup(s->dir)) == NULL) {
        free(j);
        return PLOG_ENOMEM;
    }
    j->gen = s->gen;
    j->snap = *snap;
    j->snap.data = NULL;
    j->snap.len = 0;
    s->writing = true;
    *jp = j;
    return PLOG_OK;
}

int plog_raftstore_snapshot_write(plog_raftstore_snapshot_job *j, const uint8_t *data, size_t len)
{
    plog_raft_snapshot snap = j->snap;
    snap.data = data;
    snap.len = len;
    j->rv = write_snapshot_file(j->dir, &snap, j->gen, j->errmsg);
    j->written = true;
    return j->rv;
}

void plog_raftstore_snapshot_fail(plog_raftstore_snapshot_job *j, int rv, const char *why)
{
    j->rv = rv;
    plog_errf(j->errmsg, sizeof j->errmsg, "snapshot at %" PRIu64 " not made: %s", j->snap.index, why);
    j->written = true;
}

int plog_raftstore_snapshot_end(plog_raftstore *s, plog_raftstore_snapshot_job *j)
{
    assert(s->writing && j->written);
    s->writing = false;
    int rv = j->rv;
    if (rv == PLOG_OK)
        install_snapshot(s, &j->snap);
    else
        memcpy(s->errmsg, j->errmsg, sizeof s->errmsg);
    free(j->dir);
    free(j);
    return rv;
}

void plog_raftstore_compact(plog_raftstore *s, uint64_t keep_from)
{
    /* Entry i is at offset i - 1: whole segments below keep_from's offset go. */
    if (s->log != NULL && keep_from > 1 && plog_log_truncate(s->log, keep_from - 1) != PLOG_OK)
        plog_log_errmsg(s->log, s->errmsg, sizeof s->errmsg); /* kept: harmless */
}

int plog_raftstore_save_snapshot(plog_raftstore *s, const plog_raft_snapshot *snap, bool drop_log)
{
    assert(!s->writing); /* a job's older snapshot could replace this one */
    if (s->log == NULL)
        return PLOG_EIO;
    int rv;
    if (!drop_log) {
        plog_raftstore_snapshot_job *j;
        if ((rv = plog_raftstore_snapshot_begin(s, snap, &j)) != PLOG_OK)
            return rv;
        plog_raftstore_snapshot_write(j, snap->data, snap->len);
        return plog_raftstore_snapshot_end(s, j);
    }
    /* A new generation: its empty log first, then the snapshot naming it (the
     * switch), then the old log goes. */
    plog_log *nl;
    if ((rv = open_log(s, s->gen + 1, snap->index, &nl)) != PLOG_OK)
        return rv;
    if ((rv = plog_log_sync(nl)) != PLOG_OK || (rv = fsync_dir(s->dir, s->errmsg)) != PLOG_OK ||
        (rv = write_snapshot_file(s->dir, snap, s->gen + 1, s->errmsg)) != PLOG_OK) {
        char path[4096];
        plog_log_close(nl);
        snprintf(path, sizeof path, "%s/log-%" PRIu64, s->dir, s->gen + 1);
        remove_tree(path);
        return rv;
    }
    install_snapshot(s, snap);
    plog_log_close(s->log);
    char old[4096];
    snprintf(old, sizeof old, "%s/log-%" PRIu64, s->dir, s->gen);
    remove_tree(old);
    s->log = nl;
    s->gen++;
    return PLOG_OK;
}

const char *plog_raftstore_errmsg(const plog_raftstore *s)
{
    return s->errmsg;
}

void plog_raftstore_close(plog_raftstore *s)
{
    if (s == NULL)
        return;
    free_boot(s);
    if (s->log != NULL)
        plog_log_close(s->log);
    free(s->snap_buf);
    free(s->dir);
    free(s);
}
