/* log.h - the commit log: ordered segments in one directory, one of them active
 * (Go: log.go). CONTRACT DRAFT: these signatures are what later chapters use.
 *
 * Thread safety: one writer and many concurrent readers. Only log.c locks; readers
 * never wait for an fsync. Records are stored as encoded log.v1.Record messages
 * whose offset field is set by the log. */
#ifndef PLOG_LOG_H
#define PLOG_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "api/v1/log.pb-c.h"
#include "internal/log/config.h"

typedef struct plog_log plog_log;

/* plog_log_open opens the log in dir (created if missing, parents too),
 * rebuilding it from the segments found there and recovering from a crash (see
 * README and segment.c): a torn tail is cut and logged, damage in older
 * segments is left for reads to report as PLOG_ECORRUPT. c is copied.
 * On PLOG_OK *lp owns the log until plog_log_close(). PLOG_EIO, PLOG_ENOMEM;
 * as there is no log to ask, the reason of a failure goes to c->report (at
 * PLOG_LOG_REPORT_ERROR; stderr when it is NULL). Under PLOG_SYNC_ALWAYS and
 * INTERVAL every record found is fsynced (every segment, and the directory)
 * before open returns: from then on it counts as durable. The log holds an
 * exclusive lock on dir until it is closed: while another log has it open
 * (this process or another), open fails with PLOG_EIO ("data directory dir is
 * in use by another process") and touches no file. */
int plog_log_open(const char *dir, const plog_log_config *c, plog_log **lp);

/* plog_log_mkdirs creates dir and its missing parents as plog_log_open does,
 * each one it creates durable (its parent fsynced), for a caller that makes the
 * directories above a log's (ch05: the agent's data directory). Returns 0, or
 * -1 with errno set. */
int plog_log_mkdirs(const char *dir);

/* plog_log_append sets rec->offset, encodes rec and appends it. *off = its offset.
 * rec is borrowed. The record is readable at once; it is durable per the policy
 * only after plog_log_commit(l, *off) (or at once under PLOG_SYNC_ALWAYS). */
int plog_log_append(plog_log *l, Log__V1__Record *rec, uint64_t *off);

/* plog_log_append_batch appends n records under one lock (and one fsync under
 * PLOG_SYNC_ALWAYS); *first = offset of recs[0], the others follow contiguously.
 * All or nothing: when it fails, none of the n records stays in the log (the
 * store and index are cut back to where the batch began, segments it rolled
 * into are removed). PLOG_EFAILED once the log failed (plog_log_failed);
 * PLOG_EFULL, appending nothing, when a record would get an offset past
 * 2^64-2 (the last one: the next offset, 2^64-1 then, must fit a u64). */
int plog_log_append_batch(plog_log *l, Log__V1__Record *const *recs, size_t n, uint64_t *first);

/* plog_log_commit returns once every record up to and including off is as durable
 * as the policy promises: written to the kernel (NEVER), fsynced (ALWAYS, INTERVAL:
 * when no fsync covered it yet, the caller's thread fsyncs, covering every record
 * appended so far; concurrent commits share that fsync). A server acknowledges
 * after it.
 * PLOG_ERANGE when off was not appended yet; PLOG_EIO when an fsync failed (then
 * every later commit fails too: nothing more can be promised). */
int plog_log_commit(plog_log *l, uint64_t off);

/* plog_log_sync writes everything appended so far to the kernel and fsyncs it. */
int plog_log_sync(plog_log *l);

/* plog_log_read returns the record at off in *out; the caller frees it with
 * log__v1__record__free_unpacked(*out, NULL). PLOG_ERANGE when off is below the
 * lowest or at/after the next offset; PLOG_ECORRUPT when its frame fails the
 * checksum (plog_log_errmsg names file and position). */
int plog_log_read(plog_log *l, uint64_t off, Log__V1__Record **out);

/* plog_log_read_raw is plog_log_read without decoding: *buf (malloc'd, the caller
 * frees) holds the encoded Record, *len its size. */
int plog_log_read_raw(plog_log *l, uint64_t off, uint8_t **buf, size_t *len);

/* A batch of encoded records read in one call: rec[i]/len[i] point into buf. */
typedef struct plog_log_batch {
    uint8_t *buf; /* owned by the batch */
    size_t cap;
    const uint8_t **rec; /* encoded Record i */
    size_t *len;
    size_t n; /* records in the batch */
    size_t nalloc;
    uint64_t first; /* offset of rec[0] */
} plog_log_batch;

/* plog_log_read_batch reads up to max_n records starting at off, stopping before
 * the total would exceed max_bytes (but always at least one record), at the end
 * of a segment, and before a damaged record (read it alone to get its error), into b,
 * reusing b's buffers (zero-initialise b before the first call; free it with
 * plog_log_batch_fini). PLOG_ERANGE when off has no record. */
int plog_log_read_batch(plog_log *l, uint64_t off, size_t max_n, size_t max_bytes, plog_log_batch *b);
void plog_log_batch_fini(plog_log_batch *b);

/* plog_log_lowest_offset: the offset of the first record kept (the base offset of
 * the oldest segment). plog_log_next_offset: the offset the next append gets.
 * The log is empty when they are equal. */
uint64_t plog_log_lowest_offset(plog_log *l);
uint64_t plog_log_next_offset(plog_log *l);

/* plog_log_highest_offset: Go HighestOffset; PLOG_ERANGE when the log is empty. */
int plog_log_highest_offset(plog_log *l, uint64_t *off);

/* plog_log_truncate removes every segment whose records are all below lowest. */
int plog_log_truncate(plog_log *l, uint64_t lowest);

/* A reader streams the raw store frames of every segment in order (ch06 snapshots);
 * store.h's plog_store_frame_check parses them. It sees records appended after it
 * was opened; it must be closed before l. */
typedef struct plog_log_reader plog_log_reader;
int plog_log_reader_open(plog_log *l, plog_log_reader **rp);
/* Reads up to cap bytes into p; *n bytes read; PLOG_EOF at the end. */
int plog_log_reader_read(plog_log_reader *r, void *p, size_t cap, size_t *n);
void plog_log_reader_close(plog_log_reader *r);

/* plog_log_reset removes every segment and starts empty at
 * c.segment.initial_offset (not atomic: a crash during it may leave the newest
 * old segments behind). plog_log_remove closes l and removes its directory. */
int plog_log_reset(plog_log *l);
int plog_log_remove(plog_log *l);

/* plog_log_failed: whether the log failed (fail-stop). After a write, fsync or
 * other I/O error on the append path the log refuses every later append, batch
 * and commit with PLOG_EFAILED ("log failed; restart to recover") while reads
 * go on; closing and reopening the log runs recovery, which keeps what is on
 * disk. When buf is not NULL it gets the original cause (errno text, file). */
bool plog_log_failed(plog_log *l, char *buf, size_t size);

/* plog_log_errmsg copies the text of the last I/O or corruption error into buf. */
void plog_log_errmsg(plog_log *l, char *buf, size_t size);

/* plog_log_close flushes, fsyncs and frees l (NULL does nothing); l is gone even
 * when it fails. */
int plog_log_close(plog_log *l);

#endif
