/* index.h - maps a record's relative offset to its position in the store
 * (Go: index.go). One thread at a time may change an index; the read
 * functions change nothing (see store.h for how log.c uses that). */
#ifndef PLOG_INDEX_H
#define PLOG_INDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Bytes per entry: relative offset u32 BE, store position u64 BE. */
#define PLOG_INDEX_ENTRY 12

typedef struct plog_index plog_index;

/* plog_index_open opens or creates the index file at path and maps it. The
 * entries already in the file count as written (recovery checks them against
 * the store and cuts them back with plog_index_set_entries). When max_bytes > 0
 * the file is grown to max_bytes (rounded down to whole entries, sparse) so that
 * appends write straight into the mapping, as the book does; max_bytes == 0
 * maps the file read-only at its size (a sealed segment). On PLOG_OK *ip owns
 * the file until plog_index_close(). PLOG_EIO (reason in errmsg, may be NULL),
 * PLOG_ENOMEM. */
int plog_index_open(const char *path, uint64_t max_bytes, plog_index **ip, char *errmsg, size_t errsz);

/* plog_index_read returns entry i (Go: Read; i == -1 is the last entry).
 * PLOG_EOF when there is no such entry. */
int plog_index_read(const plog_index *x, int64_t i, uint32_t *rel, uint64_t *pos);

/* plog_index_pos returns the position of entry i, which must exist (fast path
 * of plog_index_read for the log's reads, where rel == i by construction). */
uint64_t plog_index_pos(const plog_index *x, uint64_t i);

/* plog_index_prepare makes room for one more entry: PLOG_EOF when the index is
 * full, PLOG_EIO when the disk has no block for it (the file is preallocated
 * sparse; blocks are reserved with fallocate a chunk ahead, so that a full
 * disk is an error here, never a SIGBUS when the mapping is written). */
int plog_index_prepare(plog_index *x);

/* plog_index_write appends the entry (rel, pos). PLOG_EOF when the index is
 * full (Go returns io.EOF too), PLOG_EIO as plog_index_prepare. After
 * plog_index_prepare returned PLOG_OK it cannot fail. */
int plog_index_write(plog_index *x, uint32_t rel, uint64_t pos);

/* plog_index_consistent: every written entry i has rel == i and a position
 * below store_size, higher than the one before (a scan of the mapping, no I/O:
 * a zeroed or stale middle of the index fails it). */
bool plog_index_consistent(const plog_index *x, uint64_t store_size);

/* plog_index_entries: entries written. plog_index_capacity: entries that fit. */
uint64_t plog_index_entries(const plog_index *x);
uint64_t plog_index_capacity(const plog_index *x);

/* plog_index_grow maps the index writable (a sealed one too) with room for at
 * least n entries, growing the file as needed (recovery rewriting an index). */
int plog_index_grow(plog_index *x, uint64_t n);

/* plog_index_read_raw reads entry i of the mapping whether or not it counts
 * as written (recovery looks at the old entries while it rewrites them).
 * PLOG_EOF past the mapping. */
int plog_index_read_raw(const plog_index *x, uint64_t i, uint32_t *rel, uint64_t *pos);

/* plog_index_listed: the records an index left by a close claims, for recovery
 * to compare with what the store holds. A close cuts the file to its entries,
 * so every entry counted at open chains (entry i has rel == i, positions rise
 * from 0) and their number is returned. Otherwise 0: a crash leaves the file
 * preallocated, zeros after the entries, and the entries past the store's end
 * are then appends that never reached the kernel or the disk, which a crash
 * may drop (see config.h); a damaged index claims nothing either. A lone
 * entry 0 is all zeros, as is an empty segment's preallocated entry: it counts
 * as 1 only when the file was opened one entry long and max_bytes is larger
 * (a close cut it so; a roll would have grown it to max_bytes), else as 0. */
uint64_t plog_index_listed(const plog_index *x);

/* plog_index_file_lists: the index file at path lists records: it begins with
 * two chained entries (record 0 at 0, record 1 further on), or it is one entry
 * (zeros: record 0 at 0) long while the index of an active segment is
 * preallocated to max_bytes, larger, so a close cut it to that record. An index
 * a roll created, or a missing one, does not: it begins with zeros until the
 * first two appends. The file is only read. */
bool plog_index_file_lists(const char *path, uint64_t max_bytes);

/* plog_index_set_entries drops every entry from n on (n <= entries). */
void plog_index_set_entries(plog_index *x, uint64_t n);

/* plog_index_clear_dropped zeroes the entries from the written ones up to upto
 * (at most the mapping) in a writable index. Entries plog_index_set_entries
 * dropped stay in the file until a close cuts them off; should a crash come
 * first, the zeros after the entries are what tells plog_index_listed the file
 * was not cut (a full index would otherwise end at its dropped entries). A
 * read-only index is left as it is. */
void plog_index_clear_dropped(plog_index *x, uint64_t upto);

/* plog_index_seal cuts the file to the entries written and maps it read-only at
 * that size: the segment is full and will not grow again. */
int plog_index_seal(plog_index *x);

/* plog_index_fd: the file descriptor, borrowed (log.c dups it to fsync). */
int plog_index_fd(const plog_index *x);
const char *plog_index_errmsg(const plog_index *x);

/* plog_index_close unmaps the file, cuts it to the entries written (so that a
 * reopened index ends at its last entry, Go: Close), fdatasyncs it when sync is
 * true, and frees x (NULL does nothing); x is gone even when it fails. */
int plog_index_close(plog_index *x, bool sync);

#endif
