/* segment.h - a store and an index with a base offset (Go: segment.go).
 *
 * One thread at a time may change a segment; the read functions change nothing
 * and may run together while nobody changes it (log.c's rwlock). */
#ifndef PLOG_SEGMENT_H
#define PLOG_SEGMENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "api/v1/log.pb-c.h"
#include "internal/log/config.h"
#include "internal/log/store.h"

typedef struct plog_segment plog_segment;

/* Passed as sealed_next to plog_segment_open for the last (active) segment. */
#define PLOG_SEGMENT_ACTIVE UINT64_MAX

/* plog_segment_open opens or creates <dir>/<base:020>.store and .index and
 * recovers them (see segment.c): the index is checked against the store and
 * rebuilt from it when they disagree.
 *   sealed_next == PLOG_SEGMENT_ACTIVE: the last segment; a torn or failing tail
 *     of its store is cut off (and logged), and it takes appends.
 *   otherwise: an older segment holding exactly the records [base, sealed_next);
 *     damage is never cut: reads of damaged or missing records return
 *     PLOG_ECORRUPT. Its index is sealed (read-only, cut to size).
 * c must have its defaults filled in (log.c does). On PLOG_OK *sp owns the files
 * until plog_segment_close(). PLOG_EIO, PLOG_ENOMEM; errmsg (may be NULL) names
 * the file. */
int plog_segment_open(const char *dir, uint64_t base, const plog_log_config *c, uint64_t sealed_next,
                      plog_segment **sp, char *errmsg, size_t errsz);

/* plog_segment_append sets rec->offset to the segment's next offset, encodes
 * rec into the store and indexes it; *off = its offset. rec is borrowed.
 * PLOG_EOF when the index is full (the log rolls before that happens). */
int plog_segment_append(plog_segment *seg, Log__V1__Record *rec, uint64_t *off);

/* plog_segment_read returns the encoded record at off (base <= off < next) in
 * *buf (malloc'd, the caller frees it), *len its size. PLOG_ECORRUPT when it is
 * damaged or missing; errmsg (may be NULL) names file and position. */
int plog_segment_read(const plog_segment *seg, uint64_t off, uint8_t **buf, size_t *len, char *errmsg,
                      size_t errsz);

/* plog_segment_read_span reads the frames of the records [off, off + k) with
 * one read, for the largest k <= max_n within the segment whose payloads fit in
 * max_bytes (k >= 1 always), into *buf (realloc'd, *cap its size), verifies
 * them and points rec[i]/len[i] (room for max_n each) at the payloads inside
 * *buf; *n = k. A damaged record ends the span before it; PLOG_ECORRUPT only
 * when the first one is damaged. */
int plog_segment_read_span(const plog_segment *seg, uint64_t off, size_t max_n, size_t max_bytes,
                           uint8_t **buf, size_t *cap, const uint8_t **rec, size_t *len, size_t *n,
                           char *errmsg, size_t errsz);

/* plog_segment_flush writes buffered appends to the kernel. */
int plog_segment_flush(plog_segment *seg);

/* plog_segment_seal flushes the store and seals the index: the segment is full
 * and takes no more appends. */
int plog_segment_seal(plog_segment *seg);

/* plog_segment_is_maxed: the store reached max_store_bytes or the index is full
 * (Go: IsMaxed). */
bool plog_segment_is_maxed(const plog_segment *seg);

uint64_t plog_segment_base(const plog_segment *seg);
/* plog_segment_next: the offset after the segment's last record. */
uint64_t plog_segment_next(const plog_segment *seg);
/* plog_segment_store: the segment's store, borrowed until close. */
const plog_store *plog_segment_store(const plog_segment *seg);
/* plog_segment_fds: the store's and the index's descriptors, borrowed. */
void plog_segment_fds(const plog_segment *seg, int *store_fd, int *index_fd);
const char *plog_segment_errmsg(const plog_segment *seg);

/* plog_segment_close flushes, fdatasyncs when sync is true and the segment
 * changed since it was opened, and frees seg (NULL does nothing). seg is gone
 * even when it fails. */
int plog_segment_close(plog_segment *seg, bool sync);

/* plog_segment_remove closes seg and deletes its two files (Go: Remove). */
int plog_segment_remove(plog_segment *seg);

/* plog_segment_sync fdatasyncs the store (flushed first) and the index. */
int plog_segment_sync(plog_segment *seg);

/* plog_segment_rewind drops every record from next on (base <= next <= the
 * segment's next): cuts the store back to where record next began and the
 * index to next - base entries, and makes a sealed segment active again (its
 * index writable at max_index_bytes). Undo of a failed batch. */
int plog_segment_rewind(plog_segment *seg, uint64_t next);

/* plog_report formats a message and hands it to c->report (see config.h). */
void plog_log_report(const plog_log_config *c, plog_log_report_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* plog_segment_path writes <dir>/<base:020><ext> into buf. */
void plog_segment_path(char *buf, size_t size, const char *dir, uint64_t base, const char *ext);

#endif
