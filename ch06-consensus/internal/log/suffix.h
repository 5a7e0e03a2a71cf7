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
 * in dir, which must be closed (a log a crash left unclosed is fine: the
 * segment holding next is recovered as open would). The oldest segment is
 * emptied rather than removed, so the log keeps its base offset (next below it
 * empties the log). Crash-safe: the segments from next on go newest first,
 * each removal made durable (directory fsync) before the next, then the
 * segment holding next has its store cut and fdatasynced, then its index.
 * Wherever the power goes, the log reopens to a prefix of the old one that
 * holds every record below next; after PLOG_OK, to exactly the records below
 * next (suffix.c has the argument). All file I/O goes through io.h. PLOG_EIO
 * (reason in errmsg; the log is then somewhere between the old one and the
 * cut, and the call may be repeated), PLOG_ENOMEM. */
int plog_log_truncate_suffix(const char *dir, uint64_t next, char *errmsg, size_t errsz);

#endif
