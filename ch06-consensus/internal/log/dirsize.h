/* dirsize.h - the bytes a log directory holds on disk, for the
 * proglog_log_size_bytes gauge (the single server's and the agent's). */
#ifndef PLOG_LOG_DIRSIZE_H
#define PLOG_LOG_DIRSIZE_H

#include <stdint.h>

/* plog_log_dir_bytes returns the sum of the sizes of the segment files
 * (*.store, *.index) in dir and in its subdirectories down to two levels (a
 * log's own directory is flat; a node's data directory may hold logs one or two
 * levels down, as Raft's log under raft/log-N). Indexes count at the size they
 * are preallocated to. Files that vanish while it looks (a segment removed, a
 * directory replaced) are skipped; 0 when dir cannot be read. It only reads
 * metadata, takes no lock and may run on any thread, beside a writer. */
int64_t plog_log_dir_bytes(const char *dir);

#endif
