/* simfs_testlib.h - a test file layer under the log's I/O seam (io.h), in the
 * spirit of SQLite's crash VFS (src/test6.c) and its I/O-error tests.
 *
 * Power loss. simfs_start(dir) watches the files of one directory (the
 * others pass through). Every write, truncate and allocation is passed to the
 * real file and also recorded; an fdatasync/fsync of a file makes its current
 * content its durable content; an fsync of the directory makes the current
 * set of names durable (creations and removals before it). simfs_cut_at(k)
 * cuts the power just before the k-th call from now: the state of the disk is
 * computed then (see simfs_testlib.c for the model) and every later call fails
 * with EIO, as a dead disk would; simfs_finish() writes that state into the
 * directory for real (or, without a cut, the state at the moment of the call),
 * after which the log can be reopened and checked.
 *
 * Faults. simfs_fail_at(n, kinds, err) makes the n-th call (from now) among
 * the given kinds fail once with errno err; the rest pass. Works with or
 * without simfs_start.
 *
 * Not thread-safe to configure; the calls themselves are serialised by a
 * mutex (the group-commit thread may sync concurrently). Test code only. */
#ifndef PLOG_LOG_SIMFS_TESTLIB_H
#define PLOG_LOG_SIMFS_TESTLIB_H

#include <stdbool.h>
#include <stdint.h>

/* Kinds of calls, for simfs_fail_at and the counters. */
enum {
    SIMFS_OPEN = 1 << 0,
    SIMFS_WRITE = 1 << 1,
    SIMFS_READ = 1 << 2,
    SIMFS_SYNC = 1 << 3, /* fdatasync and fsync */
    SIMFS_TRUNCATE = 1 << 4,
    SIMFS_FALLOCATE = 1 << 5,
    SIMFS_MMAP = 1 << 6,
    SIMFS_UNLINK = 1 << 7,
    SIMFS_OTHER = 1 << 8, /* dup, fstat, seek_hole, mkdir, rmdir, flock */
    SIMFS_ALL = (1 << 9) - 1,
};

/* simfs_install puts the layer under the log (plog_io_set); simfs_uninstall
 * restores the real calls and frees every recorded state. */
void simfs_install(void);
void simfs_uninstall(void);

/* simfs_start takes the files now in dir as durable and starts recording.
 * seed drives the random choices of the power-loss model. */
int simfs_start(const char *dir, uint64_t seed);

/* simfs_cut_at(k): the power goes before the k-th call from now (k >= 1). */
void simfs_cut_at(uint64_t k);
/* simfs_cut: whether the power is off. */
bool simfs_cut(void);

/* simfs_nosync(on): while on, fsyncs succeed without making anything
 * durable (what a process killed with its data in the page cache leaves,
 * when the power then goes). */
void simfs_nosync(bool on);

/* simfs_finish writes the state the disk holds after the power loss into
 * the directory (every file of the directory is replaced) and stops
 * recording. Close every log first. */
int simfs_finish(void);

/* simfs_fail_at(n, kinds, err): the n-th call (n >= 1, counted from now)
 * whose kind is in kinds fails with errno err, once. n == 0 turns it off.
 * simfs_fired: whether it happened. */
void simfs_fail_at(uint64_t n, unsigned kinds, int err);
/* simfs_fail_from: the n-th such call and every later one fail (a disk that
 * filled up stays full). */
void simfs_fail_from(uint64_t n, unsigned kinds, int err);
bool simfs_fired(void);

/* simfs_calls: calls made through the layer since install (all kinds). */
uint64_t simfs_calls(void);

#endif
