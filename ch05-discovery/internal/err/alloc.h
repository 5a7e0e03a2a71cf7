/* alloc.h - the allocator of the project's libraries, with a fault hook.
 *
 * Library code allocates through plog_malloc & co. so that a test can make the
 * n-th allocation fail (plog_alloc_fail_after) and walk every ENOMEM branch of
 * a workload: SQLite's OOM tests, cowsql's heap-fault-delay. Memory from these
 * functions is ordinary malloc memory: free() and plog_free() are the same.
 * Thread safety: any thread; the counters are atomic. */
#ifndef PLOG_ALLOC_H
#define PLOG_ALLOC_H

#include <stddef.h>

void *plog_malloc(size_t n);
void *plog_calloc(size_t n, size_t size);
void *plog_realloc(void *p, size_t n);
char *plog_strdup(const char *s);
void plog_free(void *p);

/* plog_alloc_fail_after(n): after n more allocations succeed, the next one
 * fails (returns NULL), and only that one: the code under test meets one
 * ENOMEM and must recover from it. n < 0 turns the hook off (the default). */
void plog_alloc_fail_after(long n);

/* plog_alloc_failed: whether the hook fired since plog_alloc_fail_after was
 * last called (a loop over n stops when a workload ran without meeting it). */
int plog_alloc_failed(void);

#endif
