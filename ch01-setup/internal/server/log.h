/* log.h - the in-memory commit log of chapter 1 (Go: internal/server/log.go).
 *
 * A slice of records that only grows: append returns the new record's offset,
 * read returns a copy of the record at an offset. Safe for concurrent use by any
 * number of threads (a read-write lock: reads run in parallel, appends alone).
 * Chapter 2 replaces it with the persistent log of internal/log/. */
#ifndef PLOG_SERVER_LOG_H
#define PLOG_SERVER_LOG_H

#include <stdint.h>

#include "api/v1/log.pb-c.h"

typedef struct plog_server_memlog plog_server_memlog;

/* plog_server_memlog_new makes an empty log in *lp, owned until plog_server_memlog_free().
 * PLOG_ENOMEM. */
int plog_server_memlog_new(plog_server_memlog **lp);

/* plog_server_memlog_append copies rec->value (rec is borrowed), gives it the next offset
 * and sets *off to it. PLOG_ENOMEM. Go: Log.Append */
int plog_server_memlog_append(plog_server_memlog *l, const Log__V1__Record *rec, uint64_t *off);

/* plog_server_memlog_read returns a copy of the record at off in *out; the caller frees
 * it with log__v1__record__free_unpacked(*out, NULL). PLOG_ERANGE when no record
 * has that offset (Go: ErrOffsetNotFound), PLOG_ENOMEM. Go: Log.Read */
int plog_server_memlog_read(plog_server_memlog *l, uint64_t off, Log__V1__Record **out);

/* plog_server_memlog_len returns how many records the log holds. */
uint64_t plog_server_memlog_len(plog_server_memlog *l);

/* plog_server_memlog_free frees l and every record in it. NULL does nothing. */
void plog_server_memlog_free(plog_server_memlog *l);

#endif
