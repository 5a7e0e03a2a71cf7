/* raftstore_test.c - tests of raftstore.c: what a Raft server stores survives a
 * reopen, a conflicting suffix is cut, snapshots compact or replace the log, and
 * the states a crash can leave behind reopen to something the server once held. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal/err/err.h"
#include "internal/log/io.h"
#include "internal/raftstore/raftstore.h"
#include "testing/testing.h"

#ifndef assert_plog_ok
#define assert_plog_ok(x) assert_int_equal((x), PLOG_OK)
#endif

struct fixture {
    char dir[128];
    plog_log_config lc;
    plog_raftstore *s;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    plog_test_tmpdir("raftstore", f->dir, sizeof f->dir);
    /* Small segments: 4 entries each, so cuts cross segment boundaries. */
    f->lc.segment.max_index_bytes = 4 * 12;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    plog_raftstore_close(f->s);
    plog_test_rmrf(f->dir);
    free(f);
    return 0;
}

static void reopen(struct fixture *f)
{
    char err[256];
    plog_raftstore_close(f->s);
    f->s = NULL;
    int rv = plog_raftstore_open(f->dir, &f->lc, &f->s, err, sizeof err);
    if (rv != PLOG_OK)
        fail_msg("open: %s: %s", plog_strerror(rv), err);
}

/* entry data names index and term, so a read-back shows which write it came from */
static char bufs[256][32];
static plog_raft_entry ent(uint64_t index, uint64_t term)
{
    char *b = bufs[index % 256];
    int n = snprintf(b, 32, "i%llu-t%llu", (unsigned long long)index, (unsigned long long)term);
    return (plog_raft_entry){.index = index,
                             .term = term,
                             .type = PLOG_RAFT_ENTRY_NORMAL,
                             .data = (const uint8_t *)b,
                             .len = (size_t)n};
}

static void append_range(struct fixture *f, uint64_t from, uint64_t to, uint64_t term)
{
    plog_raft_entry e[64];
    size_t n = 0;
    for (uint64_t i = from; i <= to; i++)
        e[n++] = ent(i, term);
    assert_plog_ok(plog_raftstore_append(f->s, e, n));
    assert_plog_ok(plog_raftstore_sync(f->s));
}

/* check_boot: the stored log is exactly first..last with terms term_of(i) */
static void check_boot(struct fixture *f, uint64_t first, uint64_t last, uint64_t (*term_of)(uint64_t))
{
    plog_raft_boot b;
    assert_plog_ok(plog_raftstore_boot(f->s, &b));
    assert_int_equal(b.n_entries, last + 1 - first);
    for (size_t i = 0; i < b.n_entries; i++) {
        uint64_t idx = first + i;
        char want[32];
        snprintf(want, sizeof want, "i%llu-t%llu", (unsigned long long)idx, (unsigned long long)term_of(idx));
        assert_int_equal(b.entries[i].index, idx);
        assert_int_equal(b.entries[i].term, term_of(idx));
        assert_int_equal(b.entries[i].len, strlen(want));
        assert_memory_equal(b.entries[i].data, want, strlen(want));
    }
    assert_int_equal(plog_raftstore_last_index(f->s), last);
}

static uint64_t term1(uint64_t i)
{
    (void)i;
    return 1;
}

static uint64_t term_cut6(uint64_t i)
{
    return i < 6 ? 1 : 3;
}

static uint64_t term_cut9(uint64_t i)
{
    return i < 6 ? 1 : i < 9 ? 3 : 4;
}

static void test_hard_state_survives_a_reopen_and_a_new_store_starts_at_zero(void **state)
{
    struct fixture *f = *state;
    reopen(f);
    plog_raft_boot b;
    assert_plog_ok(plog_raftstore_boot(f->s, &b));
    assert_int_equal(b.hs.term, 0);
    assert_int_equal(b.hs.vote, 0);
    assert_null(b.snapshot);
    assert_int_equal(b.n_entries, 0);
    plog_raft_hard_state hs = {.term = 7, .vote = 3};
    assert_plog_ok(plog_raftstore_save_hard_state(f->s, &hs));
    hs = (plog_raft_hard_state){.term = 8, .vote = 0};
    assert_plog_ok(plog_raftstore_save_hard_state(f->s, &hs));
    reopen(f);
    assert_plog_ok(plog_raftstore_boot(f->s, &b));
    assert_int_equal(b.hs.term, 8);
    assert_int_equal(b.hs.vote, 0);
}

static void test_a_leftover_temporary_hard_state_is_ignored(void **state)
{
    struct fixture *f = *state;
    reopen(f);
    plog_raft_hard_state hs = {.term = 5, .vote = 2};
    assert_plog_ok(plog_raftstore_save_hard_state(f->s, &hs));
    /* A crash during the next save, before the rename: a torn temporary. */
    char path[256];
    snprintf(path, sizeof path, "%s/hardstate.tmp", f->dir);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs("torn", fp);
    fclose(fp);
    reopen(f);
    plog_raft_boot b;
    assert_plog_ok(plog_raftstore_boot(f->s, &b));
    assert_int_equal(b.hs.term, 5);
    assert_int_equal(b.hs.vote, 2);
}

/* refused_after closes the store, writes byte at off of file name, and checks
 * that the store then refuses to open with an error containing want. */
static void refused_after(struct fixture *f, const char *name, long off, int byte, const char *want)
{
    plog_raftstore_close(f->s);
    f->s = NULL;
    char path[256];
    snprintf(path, sizeof path, "%s/%s", f->dir, name);
    FILE *fp = fopen(path, "r+");
    assert_non_null(fp);
    fseek(fp, off, SEEK_SET);
    fputc(byte, fp);
    fclose(fp);
    char err[256];
    assert_int_equal(plog_raftstore_open(f->dir, &f->lc, &f->s, err, sizeof err), PLOG_ECORRUPT);
    assert_non_null(strstr(err, want));
}

static void test_a_damaged_hard_state_is_refused(void **state)
{
    struct fixture *f = *state;
    reopen(f);
    plog_raft_hard_state hs = {.term = 5, .vote = 2};
    assert_plog_ok(plog_raftstore_save_hard_state(f->s, &hs));
    refused_after(f, "hardstate", 7, 6, "hardstate"); /* term 5 -> 6: the checksum no longer matches */
}

/* The cluster id: none in a new store, saved, kept across a reopen; a damaged
 * file is refused. */
static void test_the_cluster_id_survives_a_reopen_and_a_damaged_one_is_refused(void **state)
{
    struct fixture *f = *state;
    reopen(f);
    assert_int_equal(plog_raftstore_cluster(f->s), 0);
    assert_plog_ok(plog_raftstore_save_cluster(f->s, 0x0123456789abcdefull));
    assert_int_equal(plog_raftstore_cluster(f->s), 0x0123456789abcdefull);
    reopen(f);
    assert_int_equal(plog_raftstore_cluster(f->s), 0x0123456789abcdefull);
    refused_after(f, "cluster", 0, 0xff, "cluster: bad size or checksum");
}

static void test_entries_carry_term_and_type_across_a_reopen(void **state)
{
    struct fixture *f = *state;
    reopen(f);
    plog_raft_entry e[3] = {ent(1, 1), ent(2, 1), ent(3, 2)};
    e[0].type = PLOG_RAFT_ENTRY_NOOP;
    e[2].type = PLOG_RAFT_ENTRY_CONFIG;
    assert_plog_ok(plog_raftstore_append(f->s, e, 3));
    assert_plog_ok(plog_raftstore_sync(f->s));
    reopen(f);
    plog_raft_boot b;
    assert_plog_ok(plog_raftstore_boot(f->s, &b));
    assert_int_equal(b.n_entries, 3);
    assert_int_equal(b.entries[0].type, PLOG_RAFT_ENTRY_NOOP);
    assert_int_equal(b.entries[1].type, PLOG_RAFT_ENTRY_NORMAL);
    assert_int_equal(b.entries[2].type, PLOG_RAFT_ENTRY_CONFIG);
    assert_int_equal(b.entries[2].term, 2);
    assert_memory_equal(b.entries[1].data, "i2-t1", 5);
}

static void test_a_conflicting_suffix_is_cut_within_and_across_segments(void **state)
{
    struct fixture *f = *state;
    reopen(f);
    append_range(f, 1, 10, 1); /* segments at offsets 0, 4, 8 */
    check_boot(f, 1, 10, term1);
    /* A new leader of term 3 disagrees from index 6 (offset 5, inside the
     * second segment): 6..10 go, the third segment with them. */
    append_range(f, 6, 12, 3);
    check_boot(f, 1, 12, term_cut6);
    reopen(f);
    check_boot(f, 1, 12, term_cut6);
    /* Cut exactly at a segment's base (index 9 = offset 8). */
    append_range(f, 9, 9, 4);
    reopen(f);
    check_boot(f, 1, 9, term_cut9);
}

static void test_a_cut_at_the_first_index_keeps_the_log_usable(void **state)
{
    struct fixture *f = *state;
    reopen(f);
    append_range(f, 1, 6, 1);
    append_range(f, 1, 2, 2);
    reopen(f);
    plog_raft_boot b;
    assert_plog_ok(plog_raftstore_boot(f->s, &b));
    assert_int_equal(b.n_entries, 2);
    assert_int_equal(b.entries[0].term, 2);
    assert_int_equal(b.entries[1].term, 2);
}

static void test_appends_that_would_leave_a_gap_are_refused(void **state)
{
    struct fixture *f = *state;
    reopen(f);
    append_range(f, 1, 3, 1);
    plog_raft_entry e = ent(5, 1);
    assert_int_equal(plog_raftstore_append(f->s, &e, 1), PLOG_EINVAL);
    check_boot(f, 1, 3, term1);
}

/* A crash in the middle of a cut: the newest segment's store gone, its index
 * left (the first unlink of suffix.c done, not the second). The log reopens to a
 * prefix of what it held. */
static void test_a_crash_in_the_middle_of_a_cut_leaves_a_prefix(void **state)
{
    struct fixture *f = *state;
    reopen(f);
    append_range(f, 1, 10, 1);
    plog_raftstore_close(f->s);
    f->s = NULL;
    char path[256];
    snprintf(path, sizeof path, "%s/log-0/00000000000000000008.store", f->dir);
    assert_int_equal(unlink(path), 0);
    reopen(f);
    check_boot(f, 1, 8, term1);
    append_range(f, 9, 9, 2); /* and it goes on from there */
    reopen(f);
    plog_raft_boot b;
    assert_plog_ok(plog_raftstore_boot(f->s, &b));
    assert_int_equal(b.n_entries, 9);
    assert_int_equal(b.entries[8].term, 2);
}

/* check_snapshot_boot: after a reopen, boot gives the snapshot at index and the n
 * entries after it. */
static void check_snapshot_boot(struct fixture *f, uint64_t index, size_t n)
{
    reopen(f);
    plog_raft_boot b;
    assert_plog_ok(plog_raftstore_boot(f->s, &b));
    assert_non_null(b.snapshot);
    assert_int_equal(b.snapshot->index, index);
    assert_int_equal(b.n_entries, n);
    assert_int_equal(b.entries[0].index, index + 1);
}

static void test_a_snapshot_taken_keeps_the_entries_after_it(void **state)
{
    struct fixture *f = *state;
    reopen(f);
    append_range(f, 1, 10, 1);
    plog_raft_snapshot snap = {.index = 9, .term = 1, .data = (const uint8_t *)"state@9", .len = 7};
    snap.conf.n = 1;
    snap.conf.servers[0] = (plog_raft_server){.id = 1, .role = PLOG_RAFT_VOTER};
    assert_plog_ok(plog_raftstore_save_snapshot(f->s, &snap, false));
    plog_raftstore_compact(f->s, 10);
    reopen(f);
    plog_raft_boot b;
    assert_plog_ok(plog_raftstore_boot(f->s, &b));
    assert_non_null(b.snapshot);
    assert_int_equal(b.snapshot->index, 9);
    assert_int_equal(b.snapshot->conf.n, 1);
    assert_int_equal(b.snapshot->conf.servers[0].id, 1);
    assert_int_equal(b.snapshot->len, 7);
    assert_memory_equal(b.snapshot->data, "state@9", 7);
    assert_int_equal(b.n_entries, 1);
    assert_int_equal(b.entries[0].index, 10);
    /* Whole segments below the snapshot went: offsets 0..7. */
    char path[256];
    struct stat st;
    snprintf(path, sizeof path, "%s/log-0/00000000000000000000.store", f->dir);
    assert_int_not_equal(stat(path, &st), 0);
}

/* A snapshot taken while a follower still needs entries behind it: the core keeps
 * them (up->keep_from), so they must stay readable, across a reopen too, while boot
 * still hands over only the entries after the snapshot. */
static void test_entries_behind_a_snapshot_stay_readable_until_compacted(void **state)
{
    struct fixture *f = *state;
    reopen(f);
    append_range(f, 1, 10, 1); /* segments at offsets 0, 4, 8 */
    plog_raft_snapshot snap = {.index = 9, .term = 1, .data = (const uint8_t *)"state@9", .len = 7};
    snap.conf.n = 1;
    snap.conf.servers[0] = (plog_raft_server){.id = 1, .role = PLOG_RAFT_VOTER};
    assert_plog_ok(plog_raftstore_save_snapshot(f->s, &snap, false));
    plog_raftstore_compact(f->s, 6); /* offsets 4.. stay: the segment holding index 6 */
    check_snapshot_boot(f, 9, 1);
    uint8_t buf[64];
    for (uint64_t i = 5; i <= 10; i++) {
        char want[32];
        int n = snprintf(want, sizeof want, "i%llu-t1", (unsigned long long)i);
        assert_plog_ok(plog_raftstore_read(f->s, i, buf, (size_t)n));
        assert_memory_equal(buf, want, (size_t)n);
    }
    assert_int_not_equal(plog_raftstore_read(f->s, 4, buf, 5), PLOG_OK); /* its segment went */
    plog_raftstore_compact(f->s, 10);
    assert_int_not_equal(plog_raftstore_read(f->s, 6, buf, 5), PLOG_OK);
    assert_plog_ok(plog_raftstore_read(f->s, 10, buf, 6));
}

/* A snapshot job and its bytes (state@index), made after it began, as a driver
 * encodes them on the writer thread. */
struct job {
    plog_raftstore_snapshot_job *j;
    char state[32];
};

static void *write_job(void *arg)
{
    struct job *w = arg;
    plog_raftstore_snapshot_write(w->j, (const uint8_t *)w->state, strlen(w->state));
    return NULL;
}

/* job_at begins a snapshot job at index (term 1): the meta only. */
static struct job job_at(struct fixture *f, uint64_t index)
{
    struct job w;
    plog_raft_snapshot meta = {.index = index, .term = 1};
    meta.conf.n = 1;
    meta.conf.servers[0] = (plog_raft_server){.id = 1, .role = PLOG_RAFT_VOTER};
    assert_plog_ok(plog_raftstore_snapshot_begin(f->s, &meta, &w.j));
    snprintf(w.state, sizeof w.state, "state@%llu", (unsigned long long)index);
    return w;
}

/* A counting file layer under the I/O seam: the most bytes the snapshot's
 * temporary took between two of its syncs, and how many syncs it had. */
static struct {
    plog_io io;
    int fd; /* the snapshot.tmp open, -1: none */
    size_t unsynced, max_unsynced, syncs;
} cnt;

static int cnt_open(const char *path, int flags, mode_t mode)
{
    int fd = plog_io_real()->open(path, flags, mode);
    size_t n = strlen(path), k = strlen("/snapshot.tmp");
    if (fd >= 0 && n > k && strcmp(path + n - k, "/snapshot.tmp") == 0) {
        cnt.fd = fd;
        cnt.unsynced = 0;
    }
    return fd;
}

static ssize_t cnt_pwrite(int fd, const void *p, size_t n, off_t off)
{
    ssize_t w = plog_io_real()->pwrite(fd, p, n, off);
    if (fd == cnt.fd && w > 0 && (cnt.unsynced += (size_t)w) > cnt.max_unsynced)
        cnt.max_unsynced = cnt.unsynced;
    return w;
}

static void cnt_synced(int fd)
{
    if (fd == cnt.fd) {
        cnt.syncs++;
        cnt.unsynced = 0;
    }
}

static int cnt_fsync(int fd)
{
    cnt_synced(fd);
    return plog_io_real()->fsync(fd);
}

static int cnt_fdatasync(int fd)
{
    cnt_synced(fd);
    return plog_io_real()->fdatasync(fd);
}

static int cnt_close(int fd)
{
    if (fd == cnt.fd)
        cnt.fd = -1;
    return plog_io_real()->close(fd);
}

/* cnt_install puts the counting layer under the I/O seam, its counts zeroed, with
 * pwrite for the writes (cnt_pwrite, or one that fails); before the store opens
 * its log. */
static void cnt_install(ssize_t (*pwrite)(int, const void *, size_t, off_t))
{
    memset(&cnt, 0, sizeof cnt);
    cnt.io = *plog_io_real();
    cnt.io.open = cnt_open;
    cnt.io.pwrite = pwrite;
    cnt.io.fsync = cnt_fsync;
    cnt.io.fdatasync = cnt_fdatasync;
    cnt.io.close = cnt_close;
    cnt.fd = -1;
    plog_io_set(&cnt.io);
}

/* big_job begins a snapshot job at index 9 (one voter) whose state, len bytes of
 * 's', is in *data (the caller frees it). */
static plog_raftstore_snapshot_job *big_job(struct fixture *f, size_t len, uint8_t **data)
{
    *data = malloc(len);
    assert_non_null(*data);
    memset(*data, 's', len);
    plog_raft_snapshot snap = {.index = 9, .term = 1};
    snap.conf.n = 1;
    snap.conf.servers[0] = (plog_raft_server){.id = 1, .role = PLOG_RAFT_VOTER};
    plog_raftstore_snapshot_job *j;
    assert_plog_ok(plog_raftstore_snapshot_begin(f->s, &snap, &j));
    return j;
}

/* A large snapshot's temporary is synced every MiB as it is written, so that a
 * journal commit made by the fsync of Raft's log on the node thread never waits
 * for more than a MiB of it (ext4 writes out a transaction's new data first):
 * with one sync at the end, the fdatasync of a 100-byte append took up to 136 ms
 * beside a 64 MB snapshot in a scratch run, and a black-box run saw elections
 * while snapshots of 65-112 MB were written. */
static void test_a_large_snapshot_is_synced_as_it_is_written(void **state)
{
    struct fixture *f = *state;
    cnt_install(cnt_pwrite);
    reopen(f);
    append_range(f, 1, 10, 1);
    size_t len = (7u << 20) / 2; /* 3.5 MiB */
    uint8_t *data;
    plog_raftstore_snapshot_job *j = big_job(f, len, &data);
    assert_plog_ok(plog_raftstore_snapshot_write(j, data, len));
    assert_plog_ok(plog_raftstore_snapshot_end(f->s, j));
    free(data); /* the store kept no copy */
    plog_raftstore_close(f->s);
    f->s = NULL;
    plog_io_set(NULL);
    print_message("3.5 MiB snapshot: %zu syncs, at most %zu bytes unsynced\n", cnt.syncs, cnt.max_unsynced);
    assert_true(cnt.max_unsynced <= 1u << 20);
    assert_true(cnt.syncs >= 4); /* three whole MiB, then the end */
    check_snapshot_boot(f, 9, 1);
}

/* A snapshot job (a snapshot the driver took, made and written on another thread):
 * while it is in flight the store appends and syncs entries, and the snapshot file
 * is not there; once written (on another thread) and ended it is the store's
 * snapshot and the entries behind it may go. The store keeps no copy of the bytes:
 * boot, without a reopen, reads them back from the file. A job whose write fails
 * (its temporary cannot be made) ends in PLOG_EIO naming the file, one whose bytes
 * could not be made (the driver's encoding failed) in that error; the snapshot before
 * them and every entry stay. */
static void test_a_snapshot_job_counts_only_once_written(void **state)
{
    struct fixture *f = *state;
    reopen(f);
    append_range(f, 1, 10, 1);
    struct job w = job_at(f, 9);
    append_range(f, 11, 12, 1);
    char path[256];
    struct stat st;
    snprintf(path, sizeof path, "%s/snapshot", f->dir);
    assert_int_not_equal(stat(path, &st), 0);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, write_job, &w), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    memset(w.state, 0, sizeof w.state); /* the bytes were borrowed for the write only */
    assert_plog_ok(plog_raftstore_snapshot_end(f->s, w.j));
    plog_raftstore_compact(f->s, 10);
    plog_raft_boot b;
    assert_plog_ok(plog_raftstore_boot(f->s, &b));
    assert_non_null(b.snapshot);
    assert_int_equal(b.snapshot->index, 9);
    assert_int_equal(b.snapshot->len, 7);
    assert_memory_equal(b.snapshot->data, "state@9", 7);
    check_snapshot_boot(f, 9, 3);

    w = job_at(f, 12);
    plog_raftstore_snapshot_fail(w.j, PLOG_ENOMEM, "the encoding ran out of memory");
    assert_int_equal(plog_raftstore_snapshot_end(f->s, w.j), PLOG_ENOMEM);
    if (strstr(plog_raftstore_errmsg(f->s), "ran out of memory") == NULL)
        fail_msg("error: %s", plog_raftstore_errmsg(f->s));
    check_snapshot_boot(f, 9, 3);

    snprintf(path, sizeof path, "%s/snapshot.tmp", f->dir);
    assert_int_equal(mkdir(path, 0755), 0);
    w = job_at(f, 12);
    assert_int_equal(plog_raftstore_snapshot_write(w.j, (const uint8_t *)w.state, strlen(w.state)), PLOG_EIO);
    assert_int_equal(plog_raftstore_snapshot_end(f->s, w.j), PLOG_EIO);
    if (strstr(plog_raftstore_errmsg(f->s), "snapshot.tmp") == NULL)
        fail_msg("error: %s", plog_raftstore_errmsg(f->s));
    check_snapshot_boot(f, 9, 3);
}

/* A disk that fills while a snapshot is written: the layer fails the temporary's
 * writes with ENOSPC once a MiB of it is written. */
static ssize_t full_pwrite(int fd, const void *p, size_t n, off_t off)
{
    if (fd == cnt.fd && (size_t)off + n > 1u << 20) {
        errno = ENOSPC;
        return -1;
    }
    return cnt_pwrite(fd, p, n, off);
}

/* A snapshot whose write fails (a full disk) leaves no temporary behind: the
 * partial snapshot.tmp held the very space the node needs (a black-box run on a
 * full disk left 1 MB of it, until the next snapshot); the snapshot before it
 * and every entry are kept. */
static void test_a_failed_snapshot_write_leaves_no_temporary(void **state)
{
    struct fixture *f = *state;
    cnt_install(full_pwrite);
    reopen(f);
    append_range(f, 1, 10, 1);
    size_t len = 3u << 20;
    uint8_t *data;
    plog_raftstore_snapshot_job *j = big_job(f, len, &data);
    assert_int_equal(plog_raftstore_snapshot_write(j, data, len), PLOG_EIO);
    assert_int_equal(plog_raftstore_snapshot_end(f->s, j), PLOG_EIO);
    free(data);
    plog_io_set(NULL);
    char path[256];
    struct stat st;
    snprintf(path, sizeof path, "%s/snapshot.tmp", f->dir);
    if (stat(path, &st) == 0)
        fail_msg("%s left behind: %lld bytes", path, (long long)st.st_size);
    snprintf(path, sizeof path, "%s/snapshot", f->dir);
    assert_int_not_equal(stat(path, &st), 0); /* none before it */
    reopen(f);
    plog_raft_boot b;
    assert_plog_ok(plog_raftstore_boot(f->s, &b));
    assert_null(b.snapshot);
    assert_int_equal(b.n_entries, 10);
}

/* A temporary left by a crash in the middle of a write (kill -9 while a snapshot
 * of many MB was written) is removed when the store opens: nothing else ever
 * removed it, and with snapshots off after the restart it stayed for good. */
static void test_a_temporary_left_by_a_crash_is_removed_at_open(void **state)
{
    struct fixture *f = *state;
    reopen(f);
    append_range(f, 1, 3, 1);
    plog_raftstore_close(f->s);
    f->s = NULL;
    const char *names[] = {"snapshot.tmp", "hardstate.tmp", "cluster.tmp"};
    char path[256];
    for (size_t i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/%s", f->dir, names[i]);
        FILE *fp = fopen(path, "w");
        assert_non_null(fp);
        for (int k = 0; k < 1000; k++)
            fputs("torn snapshot bytes ", fp);
        fclose(fp);
    }
    reopen(f);
    struct stat st;
    for (size_t i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/%s", f->dir, names[i]);
        if (stat(path, &st) == 0)
            fail_msg("%s left behind: %lld bytes", path, (long long)st.st_size);
    }
    plog_raft_boot b;
    assert_plog_ok(plog_raftstore_boot(f->s, &b));
    assert_int_equal(b.n_entries, 3);
}

static void test_an_installed_snapshot_replaces_the_log(void **state)
{
    struct fixture *f = *state;
    reopen(f);
    append_range(f, 1, 5, 1);
    plog_raft_snapshot snap = {.index = 20, .term = 3, .data = (const uint8_t *)"leader@20", .len = 9};
    assert_plog_ok(plog_raftstore_save_snapshot(f->s, &snap, true));
    assert_int_equal(plog_raftstore_last_index(f->s), 20);
    append_range(f, 21, 22, 3);
    reopen(f);
    plog_raft_boot b;
    assert_plog_ok(plog_raftstore_boot(f->s, &b));
    assert_int_equal(b.snapshot->index, 20);
    assert_int_equal(b.snapshot->term, 3);
    assert_int_equal(b.n_entries, 2);
    assert_int_equal(b.entries[0].index, 21);
    char path[256];
    struct stat st;
    snprintf(path, sizeof path, "%s/log-0", f->dir);
    assert_int_not_equal(stat(path, &st), 0); /* the old generation is gone */
}

/* A crash during an install after the new generation's log was made but before
 * the snapshot file named it: the old snapshot and log stay, the stray goes. */
static void test_a_crash_before_the_snapshot_switch_keeps_the_old_log(void **state)
{
    struct fixture *f = *state;
    reopen(f);
    append_range(f, 1, 5, 1);
    plog_raftstore_close(f->s);
    f->s = NULL;
    char path[256];
    snprintf(path, sizeof path, "%s/log-1", f->dir);
    assert_int_equal(mkdir(path, 0755), 0);
    reopen(f);
    check_boot(f, 1, 5, term1);
    struct stat st;
    assert_int_not_equal(stat(path, &st), 0);
}

/* The snapshot file lost (removed by hand, or a backup restored without it) while
 * a newer log generation holds entries: open refuses, naming both, and removes
 * nothing; with the snapshot back the node opens as it was. An install's crash
 * only ever leaves a newer generation empty (the previous test). Before, open
 * took generation 0 for the current one and deleted log-1 with its entries. */
static void test_a_lost_snapshot_file_is_refused_and_nothing_is_removed(void **state)
{
    struct fixture *f = *state;
    reopen(f);
    append_range(f, 1, 5, 1);
    plog_raft_snapshot snap = {.index = 20, .term = 3, .data = (const uint8_t *)"leader@20", .len = 9};
    assert_plog_ok(plog_raftstore_save_snapshot(f->s, &snap, true));
    append_range(f, 21, 22, 3);
    plog_raftstore_close(f->s);
    f->s = NULL;

    char snap_path[256], moved[256], err[512];
    snprintf(snap_path, sizeof snap_path, "%s/snapshot", f->dir);
    snprintf(moved, sizeof moved, "%s/snapshot.moved", f->dir);
    assert_int_equal(rename(snap_path, moved), 0);
    assert_int_equal(plog_raftstore_open(f->dir, &f->lc, &f->s, err, sizeof err), PLOG_ECORRUPT);
    assert_null(f->s);
    if (strstr(err, "/log-1 holds entries but ") == NULL || strstr(err, "/snapshot is missing") == NULL)
        fail_msg("error: %s", err);

    assert_int_equal(rename(moved, snap_path), 0);
    check_snapshot_boot(f, 20, 2);
}

/* A store that holds Raft state but whose log directory is gone (removed by
 * hand) is refused, naming it: the entries it stored, and may have acknowledged,
 * are lost. Before, it opened with an empty log and said nothing. */
static void test_a_missing_log_directory_is_refused(void **state)
{
    struct fixture *f = *state;
    reopen(f);
    append_range(f, 1, 3, 1);
    plog_raft_hard_state hs = {.term = 1, .vote = 1};
    assert_plog_ok(plog_raftstore_save_hard_state(f->s, &hs));
    plog_raftstore_close(f->s);
    f->s = NULL;
    char path[256], err[512];
    snprintf(path, sizeof path, "%s/log-0", f->dir);
    plog_test_rmrf(path);
    assert_int_equal(plog_raftstore_open(f->dir, &f->lc, &f->s, err, sizeof err), PLOG_ECORRUPT);
    assert_null(f->s);
    if (strstr(err, "/log-0 is missing") == NULL || strstr(err, "--start-join-addrs") == NULL)
        fail_msg("error: %s", err);
}

/* plog_raftstore_read: an entry the core dropped from memory reads back as stored,
 * across a reopen; a wrong length or an index not stored is refused. */
static void test_an_entry_reads_back_by_index(void **state)
{
    struct fixture *f = *state;
    reopen(f);
    append_range(f, 1, 10, 1);
    append_range(f, 6, 7, 2); /* cuts 6..10 */
    reopen(f);
    uint8_t buf[32];
    for (uint64_t i = 1; i <= 7; i++) {
        plog_raft_entry e = ent(i, i <= 5 ? 1 : 2);
        memset(buf, 0, sizeof buf);
        assert_plog_ok(plog_raftstore_read(f->s, i, buf, e.len));
        assert_memory_equal(buf, e.data, e.len);
    }
    plog_raft_entry e = ent(3, 1);
    assert_int_equal(plog_raftstore_read(f->s, 3, buf, e.len + 1), PLOG_ECORRUPT);
    assert_int_equal(plog_raftstore_read(f->s, 8, buf, e.len), PLOG_ERANGE);
    assert_int_equal(plog_raftstore_read(f->s, 0, buf, e.len), PLOG_ERANGE);
}

/* An empty log whose first index lies past the snapshot's next (a stray segment
 * file) is refused as the gap it is, at once (before, boot allocated room for
 * every index up to it, 5 million here, and then failed "offset 0 out of range";
 * near 2^40 it ran out of memory; a fuzzer's find). */
static void test_an_empty_log_past_the_snapshot_is_refused_as_a_gap(void **state)
{
    struct fixture *f = *state;
    char path[256];
    snprintf(path, sizeof path, "%s/log-0", f->dir);
    assert_int_equal(mkdir(path, 0755), 0);
    snprintf(path, sizeof path, "%s/log-0/%020d.store", f->dir, 5000000);
    FILE *stray = fopen(path, "w");
    assert_non_null(stray);
    fclose(stray);
    reopen(f);
    plog_raft_boot b;
    assert_int_equal(plog_raftstore_boot(f->s, &b), PLOG_ECORRUPT);
    if (strstr(plog_raftstore_errmsg(f->s), "log starts at index 5000001, after the snapshot's 0 + 1") ==
        NULL)
        fail_msg("error: %s", plog_raftstore_errmsg(f->s));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_hard_state_survives_a_reopen_and_a_new_store_starts_at_zero,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_an_entry_reads_back_by_index, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_leftover_temporary_hard_state_is_ignored, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_damaged_hard_state_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_the_cluster_id_survives_a_reopen_and_a_damaged_one_is_refused,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_entries_carry_term_and_type_across_a_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_conflicting_suffix_is_cut_within_and_across_segments, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_a_cut_at_the_first_index_keeps_the_log_usable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_appends_that_would_leave_a_gap_are_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_crash_in_the_middle_of_a_cut_leaves_a_prefix, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_snapshot_taken_keeps_the_entries_after_it, setup, teardown),
        cmocka_unit_test_setup_teardown(test_entries_behind_a_snapshot_stay_readable_until_compacted, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_a_snapshot_job_counts_only_once_written, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_large_snapshot_is_synced_as_it_is_written, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_failed_snapshot_write_leaves_no_temporary, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_temporary_left_by_a_crash_is_removed_at_open, setup, teardown),
        cmocka_unit_test_setup_teardown(test_an_installed_snapshot_replaces_the_log, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_crash_before_the_snapshot_switch_keeps_the_old_log, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_an_empty_log_past_the_snapshot_is_refused_as_a_gap, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_a_lost_snapshot_file_is_refused_and_nothing_is_removed, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_a_missing_log_directory_is_refused, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
