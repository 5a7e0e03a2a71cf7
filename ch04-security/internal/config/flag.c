/* flag.c - see flag.h. strtoull alone would take "-1" (as 2^64-1), " 7" and "",
 * so those are refused here first. */
#include "internal/config/flag.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* url_ok: s is SCHEME://HOST:PORT with a scheme of schemes and a port 1..65535. */
static bool url_ok(const char *s, const char *const *schemes)
{
    const char *sep = strstr(s, "://");
    if (sep == NULL)
        return false;
    bool known = false;
    for (const char *const *k = schemes; *k != NULL && !known; k++)
        known = strlen(*k) == (size_t)(sep - s) && strncmp(s, *k, (size_t)(sep - s)) == 0;
    const char *host = sep + 3, *colon = strrchr(host, ':');
    if (!known || colon == NULL || colon == host || strpbrk(host, "/ ") != NULL)
        return false;
    const char *port = colon + 1;
    if (port[0] < '1' || port[0] > '9' || strlen(port) > 5)
        return false;
    for (const char *p = port; *p != '\0'; p++)
        if (*p < '0' || *p > '9')
            return false;
    return atoi(port) <= 65535;
}

int plog_config_flag_url(const char *prog, const char *what, const char *s, const char *const *schemes)
{
    if (url_ok(s, schemes))
        return PLOG_OK;
    fprintf(stderr, "%s: %s: want ", prog, what);
    for (const char *const *k = schemes; *k != NULL; k++)
        fprintf(stderr, "%s%s://HOST:PORT", k == schemes ? "" : " or ", *k);
    fprintf(stderr, " (a port 1..65535), not %s\n", s);
    return PLOG_EINVAL;
}
