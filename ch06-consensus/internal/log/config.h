/* config.h - configuration of the log (Go: config.go). A plain value type. */
#ifndef PLOG_LOG_CONFIG_H
#define PLOG_LOG_CONFIG_H

#include <stdint.h>

/* When appended records are forced to disk. Reads see every appended record
 * whatever the policy. */
typedef enum {
    PLOG_SYNC_NEVER = 0, /* the OS decides; plog_log_commit() writes to the kernel */
    PLOG_SYNC_ALWAYS,    /* fsync before plog_log_append returns */
    PLOG_SYNC_INTERVAL,  /* group commit: a background fsync every sync_interval_ms */
} plog_sync_policy;

typedef struct plog_log_config {
    struct {
        uint64_t max_store_bytes; /* 0: default 1 GiB */
        uint64_t max_index_bytes; /* 0: default 10 MiB (a multiple of the entry size) */
        uint64_t initial_offset;  /* base offset of the first segment of a new log */
    } segment;
    plog_sync_policy sync;
    uint32_t sync_interval_ms; /* PLOG_SYNC_INTERVAL only; 0: default 10 */
} plog_log_config;

#endif
