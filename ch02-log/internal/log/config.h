/* config.h - configuration of the log (Go: config.go). A plain value type. */
#ifndef PLOG_LOG_CONFIG_H
#define PLOG_LOG_CONFIG_H

#include <stdint.h>

/* When appended records are forced to disk. Reads see every appended record
 * whatever the policy. */
typedef enum {
    PLOG_SYNC_NEVER = 0, /* the OS decides; plog_log_commit() writes to the kernel */
    PLOG_SYNC_ALWAYS,    /* fsync before plog_log_append returns */
    PLOG_SYNC_INTERVAL,  /* group commit: plog_log_commit fsyncs (one fsync for every
                          * commit waiting), else a background fsync every
                          * sync_interval_ms */
} plog_sync_policy;

/* How bad what the log reports is. The numbers are internal/logger's levels
 * (1 info, 2 warn, 3 error), so plog_logger_report can serve as the callback
 * without the log depending on the logger. */
typedef enum {
    PLOG_LOG_REPORT_INFO = 1,
    PLOG_LOG_REPORT_WARN,  /* recovery repaired or found damage: a torn tail cut, a corrupt record */
    PLOG_LOG_REPORT_ERROR, /* an operation failed: open, or the write or fsync that failed the log */
} plog_log_report_level;

/* plog_log_report_fn receives what the log has to tell an operator: msg is one
 * logfmt fragment without the level, `msg="truncated torn tail" file=... pos=...`,
 * valid during the call only. Called from any thread of the log (the opener,
 * an appender, the group-commit thread), possibly under the log's locks: it
 * must not call back into the log. */
typedef void plog_log_report_fn(void *arg, int level, const char *msg);

typedef struct plog_log_config {
    struct {
        uint64_t max_store_bytes; /* 0: default 1 GiB */
        uint64_t max_index_bytes; /* 0: default 10 MiB (a multiple of the entry size) */
        uint64_t initial_offset;  /* base offset of the first segment of a new log */
    } segment;
    plog_sync_policy sync;
    uint32_t sync_interval_ms; /* PLOG_SYNC_INTERVAL only; 0: default 10 */
    struct {
        plog_log_report_fn *fn; /* NULL: write `level=<level> <msg>` lines to stderr */
        void *arg;              /* passed to fn, borrowed while the log is open */
    } report;
} plog_log_config;

#endif
