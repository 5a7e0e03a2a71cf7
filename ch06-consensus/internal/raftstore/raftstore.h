/* raftstore.h - where a Raft server keeps what it must not forget: its log, its
 * term and vote, and its latest snapshot (the book's logStore, StableStore and
 * snapshot store of internal/log/distributed.go).
 *
 * A directory holds:
 *   hardstate           term and vote: 8 + 8 bytes big-endian, a CRC-32C; replaced
 *                       atomically (write a temporary, fsync, rename, fsync the dir)
 *   cluster             the cluster id: 8 bytes big-endian, a CRC-32C; written
 *                       atomically the same way
 *   snapshot            the latest snapshot: header (magic, index, term, log
 *                       generation, configuration), the state machine's bytes, a
 *                       CRC-32C over all; replaced atomically the same way
 *   log-<generation>/   Raft's log in the chapter's segmented log: entry i is the
 *                       Record at offset i - 1 (value = data, term = field 3,
 *                       type = field 4). Installing a snapshot starts a new
 *                       generation: the new snapshot file names it, so a crash
 *                       leaves either the old snapshot with the old log or the new
 *                       one with an empty log, never a mix. Stray generations are
 *                       removed at open.
 *
 * Durability: plog_raftstore_save_hard_state and plog_raftstore_save_snapshot are
 * durable when they return, a snapshot job when plog_raftstore_snapshot_write
 * returns. Appended entries are durable after plog_raftstore_sync, one fsync for
 * everything appended since the last (group commit): a driver appends the entries
 * of every update it has, syncs once, then sends.
 *
 * Files are written through the log's I/O seam (internal/log/io.h).
 *
 * Thread safety: one thread uses a store at a time, except that a snapshot job's
 * plog_raftstore_snapshot_write (or _fail) may run on another thread meanwhile. */
#ifndef PLOG_RAFTSTORE_H
#define PLOG_RAFTSTORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "internal/log/config.h"
#include "internal/raft/raft.h"

typedef struct plog_raftstore plog_raftstore;
typedef struct plog_raftstore_snapshot_job plog_raftstore_snapshot_job;

/* plog_raftstore_open opens or creates the store in dir. lc configures Raft's
 * segmented log (its sync policy is ignored: the store syncs when told);
 * NULL takes the defaults. On PLOG_OK *sp owns the store until
 * plog_raftstore_close. PLOG_EIO, PLOG_ECORRUPT (a damaged hardstate or snapshot
 * file), PLOG_ENOMEM; the reason in errmsg. */
int plog_raftstore_open(const char *dir, const plog_log_config *lc, plog_raftstore **sp, char *errmsg,
                        size_t errsz);

/* plog_raftstore_boot fills boot with what the store holds, for plog_raft_new:
 * the hard state, the snapshot (or NULL) and the entries after it. The pointers
 * in boot are owned by the store and valid until the next call on it (the entries
 * are freed then). The store keeps no copy of a snapshot it saved: boot reads
 * the snapshot file (at open, or again after a save).
 * PLOG_ECORRUPT when a stored entry fails its checksum or the log has a gap. */
int plog_raftstore_boot(plog_raftstore *s, plog_raft_boot *boot);

/* plog_raftstore_save_hard_state replaces term and vote, durably. */
int plog_raftstore_save_hard_state(plog_raftstore *s, const plog_raft_hard_state *hs);

/* plog_raftstore_cluster: the id of the cluster this server belongs to, as
 * plog_raftstore_save_cluster saved it (durably, atomically); 0: none saved. */
uint64_t plog_raftstore_cluster(const plog_raftstore *s);
int plog_raftstore_save_cluster(plog_raftstore *s, uint64_t id);

/* plog_raftstore_append deletes every stored entry from e[0].index on (when
 * there is one) and appends e[0..n-1], which must be contiguous and start at
 * most one past the last stored entry. Not durable until plog_raftstore_sync. */
int plog_raftstore_append(plog_raftstore *s, const plog_raft_entry *e, size_t n);

/* plog_raftstore_read copies the data of the stored entry at index (len bytes) into
 * buf: the Raft core's load, for entries it dropped from memory. PLOG_ERANGE when
 * the entry is not stored, PLOG_ECORRUPT when it fails its checksum or its data is
 * not len bytes. */
int plog_raftstore_read(plog_raftstore *s, uint64_t index, uint8_t *buf, size_t len);

/* plog_raftstore_sync makes every entry appended so far durable (one fsync). */
int plog_raftstore_sync(plog_raftstore *s);

/* plog_raftstore_save_snapshot stores snap (with its data, borrowed for the call)
 * durably. With
 * drop_log (a snapshot installed from the leader) the stored log is replaced by
 * an empty one after snap->index; without (a snapshot this server took) the log
 * stays as it is: plog_raftstore_compact then drops what the core no longer needs. */
int plog_raftstore_save_snapshot(plog_raftstore *s, const plog_raft_snapshot *snap, bool drop_log);

/* A snapshot this server took, made and written off the store's thread: encoding
 * the state machine and the fsync of a snapshot of many MB outlast a Raft election
 * timeout. It is saved as with plog_raftstore_save_snapshot(..., false), in three
 * steps:
 *   plog_raftstore_snapshot_begin   (the store's thread) makes the job of a meta
 *                                   (plog_raft_snapshot_meta), before the bytes exist;
 *   plog_raftstore_snapshot_write   (any thread, once) writes the file durably,
 *                                   touching nothing of the store; or
 *   plog_raftstore_snapshot_fail    (instead) when the bytes could not be made;
 *   plog_raftstore_snapshot_end     (the store's thread) records the result.
 * Between begin and end the store serves every other call except
 * plog_raftstore_save_snapshot and another begin (both write the snapshot file),
 * and plog_raftstore_close: end the job first. A crash before the write returns
 * leaves the previous snapshot, and the log as it was. */

/* plog_raftstore_snapshot_begin makes a job that writes a snapshot of meta (index,
 * term, configuration; meta->data is not read). PLOG_EIO when a failed truncation
 * left the store without its log, PLOG_ENOMEM. */
int plog_raftstore_snapshot_begin(plog_raftstore *s, const plog_raft_snapshot *meta,
                                  plog_raftstore_snapshot_job **jp);

/* plog_raftstore_snapshot_write writes j's snapshot file with the state machine's
 * bytes data[0..len) (borrowed for the call: the job keeps no copy): a temporary,
 * fsynced, renamed over the old one, the directory fsynced. Returns what
 * plog_raftstore_snapshot_end will (PLOG_EIO). */
int plog_raftstore_snapshot_write(plog_raftstore_snapshot_job *j, const uint8_t *data, size_t len);

/* plog_raftstore_snapshot_fail ends j's work without a file: its bytes could not be
 * made (rv, why). plog_raftstore_snapshot_end then returns rv, errmsg naming why. */
void plog_raftstore_snapshot_fail(plog_raftstore_snapshot_job *j, int rv, const char *why);

/* plog_raftstore_snapshot_end records a written job: on PLOG_OK its snapshot is
 * the store's latest (stored entries may then go: plog_raftstore_compact); on
 * error the store keeps the one before and errmsg says why. Frees j either way. */
int plog_raftstore_snapshot_end(plog_raftstore *s, plog_raftstore_snapshot_job *j);

/* plog_raftstore_compact lets stored entries before index keep_from go, whole
 * segments at a time (the core's up->keep_from: entries after it may still be read
 * back for a follower). Boot gives only the entries after the snapshot; a failure
 * leaves entries that are harmless, so it is not an error. */
void plog_raftstore_compact(plog_raftstore *s, uint64_t keep_from);

/* plog_raftstore_last_index: the index of the last stored entry (the snapshot's
 * index when the log is empty). */
uint64_t plog_raftstore_last_index(plog_raftstore *s);

/* plog_raftstore_errmsg: the reason of the last failure. */
const char *plog_raftstore_errmsg(const plog_raftstore *s);

/* plog_raftstore_close closes the store (NULL does nothing). */
void plog_raftstore_close(plog_raftstore *s);

#endif
