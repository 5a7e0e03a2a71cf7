/* flag.c - see flag.h. strtoull alone would take "-1" (as 2^64-1), " 7" and "",
 * so those are refused here first. */
#include "internal/config/flag.h"

#include <errno.h>
#include <inttypes.h>
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
    bool digits = end != s && *end == '\0' && s[0] >= '0' && s[0] <= '9';
    if (digits && errno == ERANGE) {
        fprintf(stderr, "%s: %s: too large: %s (at most %" PRIu64 ")\n", prog, what, s, UINT64_MAX);
        return PLOG_EINVAL;
    }
    if (!digits || errno != 0) {
        fprintf(stderr, "%s: %s: not a number: %s\n", prog, what, s[0] != '\0' ? s : "\"\" (empty)");
        return PLOG_EINVAL;
    }
    *v = x;
    return PLOG_OK;
}

int plog_config_flag_range(const char *prog, const char *what, const char *s, uint64_t min, uint64_t max,
                           uint64_t *v)
{
    uint64_t x;
    if (plog_config_flag_u64(prog, what, s, &x) != PLOG_OK)
        return PLOG_EINVAL;
    if (x < min || x > max) {
        fprintf(stderr, "%s: %s: too %s: %s (at %s %" PRIu64 ")\n", prog, what, x < min ? "small" : "large",
                s, x < min ? "least" : "most", x < min ? min : max);
        return PLOG_EINVAL;
    }
    *v = x;
    return PLOG_OK;
}

/* The ranges of proglog's numeric flags (the chapters add flags, never change
 * a range). */
static const struct {
    const char *name;
    uint64_t min, max;
} server_flags[] = {
    {"--sync-interval-ms", 1, 60000},
    {"--max-store-bytes", 1, UINT64_MAX},
    {"--max-index-bytes", 12, UINT64_MAX}, /* one index entry */
    /* The log's last offset is 2^64-2 (internal/log/log.h): room for a record. */
    {"--initial-offset", 0, UINT64_MAX - 1},
    {"--max-msg-bytes", 1, 1u << 30}, /* the server's limit: 1 GiB */
    {"--workers", 1, PLOG_CONFIG_MAX_WORKERS},
    /* Timers are nng_durations: milliseconds in an int32. */
    {"--max-wait-ms", 1, INT32_MAX},
    /* A parked poll holds a worker. */
    {"--max-parked-per-client", 1, PLOG_CONFIG_MAX_WORKERS},
    {"--max-inflight-bytes", 1, SIZE_MAX},
    {"--max-connections", 1, 1u << 20}, /* Linux's most descriptors per process */
    {"--handshake-timeout-ms", 1, INT32_MAX},
};

int plog_config_flag_server(const char *prog, const char *what, const char *s, uint64_t *v)
{
    uint64_t min = 0, max = UINT64_MAX;
    for (size_t i = 0; i < sizeof server_flags / sizeof server_flags[0]; i++) {
        if (strcmp(what, server_flags[i].name) == 0) {
            min = server_flags[i].min;
            max = server_flags[i].max;
        }
    }
    return plog_config_flag_range(prog, what, s, min, max, v);
}

/* hostport_ok: s is HOST:PORT with a port 1..65535. */
static bool hostport_ok(const char *s)
{
    const char *colon = strrchr(s, ':');
    if (colon == NULL || colon == s || strpbrk(s, "/ ") != NULL)
        return false;
    const char *port = colon + 1;
    if (port[0] < '1' || port[0] > '9' || strlen(port) > 5)
        return false;
    for (const char *p = port; *p != '\0'; p++)
        if (*p < '0' || *p > '9')
            return false;
    return atoi(port) <= 65535;
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
    return known && hostport_ok(sep + 3);
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

int plog_config_flag_hostport(const char *prog, const char *what, const char *s, const char *why)
{
    if (hostport_ok(s))
        return PLOG_OK;
    fprintf(stderr, "%s: %s: want HOST:PORT with a port in 1..65535%s%s%s: %s\n", prog, what,
            why != NULL ? " (" : "", why != NULL ? why : "", why != NULL ? ")" : "", s);
    return PLOG_EINVAL;
}
