/* flag.c - see flag.h. strtoull alone would take "-1" (as 2^64-1), " 7" and "",
 * so those are refused here first. */
#include "internal/config/flag.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "internal/err/err.h"

int plog_config_flag_u64(const char *prog, const char *what, const char *s, uint64_t *v)
{
    char *end;
    errno = 0;
    unsigned long long x = strtoull(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || s[0] < '0' || s[0] > '9') {
        fprintf(stderr, "%s: %s: not a number: %s\n", prog, what, s);
        return PLOG_EINVAL;
    }
    *v = x;
    return PLOG_OK;
}
