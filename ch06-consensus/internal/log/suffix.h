/* suffix.h - cutting the newest records off a closed log (Raft: a follower drops
 * the entries that conflict with its leader's, paper §5.3).
 *
 * The log itself only ever grows at its end and loses whole segments at its
 * start; Raft's log also needs to lose a suffix. This works on the files of a
 * closed log (the store and index formats of segment.c), so the open log's
 * invariants never see a record disappear under a reader. */
#ifndef PLOG_LOG_SUFFIX_H
#define PLOG_LOG_SUFFIX_H

#include <stddef.h>
#include <stdint.h>

/* plog_log_truncate_suffix removes every record at offset >= next from the log
 * in dir, which must be closed. Crash-safe: segments after the cut go newest
 * first (store before index, as open removes an index without a store), then
 * the segment holding next is cut (store, then index: open repairs an index
 * longer than its store), then the files and the directory are fsynced. A crash
 * at any point leaves a prefix of the old log that still holds every record
 * below next. The oldest segment is emptied rather than removed, so the log keeps
 * its base offset. PLOG_EIO (reason in errmsg), PLOG_ECORRUPT (an index entry
 * past its store), PLOG_ENOMEM. */
int plog_log_truncate_suffix(const char *dir, uint64_t next, char *errmsg, size_t errsz);

#endif
