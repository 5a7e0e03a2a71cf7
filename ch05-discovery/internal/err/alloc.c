/* alloc.c - see alloc.h. The hook costs one relaxed atomic load per
 * allocation while it is off. */
#include "internal/err/alloc.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

static atomic_long countdown = -1; /* allocations left before the failing one */
static atomic_int fired;

static int should_fail(void)
{
    if (atomic_load_explicit(&countdown, memory_order_relaxed) < 0)
        return 0;
    long left = atomic_fetch_sub(&countdown, 1);
    if (left == 0) {
        atomic_store(&fired, 1);
        return 1;
    }
    if (left < 0)
        atomic_store(&countdown, -1); /* past the failure: off again */
    return 0;
}

void plog_alloc_fail_after(long n)
{
    atomic_store(&fired, 0);
    atomic_store(&countdown, n < 0 ? -1 : n);
}

int plog_alloc_failed(void)
{
    return atomic_load(&fired);
}

void *plog_malloc(size_t n)
{
    return should_fail() ? NULL : malloc(n);
}

void *plog_calloc(size_t n, size_t size)
{
    return should_fail() ? NULL : calloc(n, size);
}

void *plog_realloc(void *p, size_t n)
{
    return should_fail() ? NULL : realloc(p, n);
}

char *plog_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = plog_malloc(n);
    if (d != NULL)
        memcpy(d, s, n);
    return d;
}

void plog_free(void *p)
{
    free(p);
}
