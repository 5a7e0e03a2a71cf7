/* flag.h - command-line values that proglog and proglogctl parse alike. */
#ifndef PLOG_CONFIG_FLAG_H
#define PLOG_CONFIG_FLAG_H

#include <stdint.h>

/* The largest --workers: each is an nng context, parked while it long-polls. */
#define PLOG_CONFIG_MAX_WORKERS 4096

/* plog_config_flag_u64 parses s, the value given for what (a flag or argument name), as a
 * whole decimal number into *v. On failure it prints "<prog>: <what>: not a
 * number: <s>" to stderr, leaves *v untouched and returns PLOG_EINVAL. */
int plog_config_flag_u64(const char *prog, const char *what, const char *s, uint64_t *v);

/* plog_config_flag_range is plog_config_flag_u64 for a value that must lie in
 * min..max. Outside it, it prints "<prog>: <what>: too small: <s> (at least
 * <min>)" or "...: too large: <s> (at most <max>)" to stderr, leaves *v
 * untouched and returns PLOG_EINVAL. */
int plog_config_flag_range(const char *prog, const char *what, const char *s, uint64_t min, uint64_t max,
                           uint64_t *v);

/* plog_config_flag_server parses s, the value of proglog's numeric flag what
 * ("--workers"), with plog_config_flag_range and the range that flag has in
 * every chapter and mode (a table in flag.c, which --help repeats): 0 is no
 * flag's "default", and no count or size is so large that proglog cannot
 * honour it. A flag the table does not know takes any u64. */
int plog_config_flag_server(const char *prog, const char *what, const char *s, uint64_t *v);

/* plog_config_flag_url checks s, the value given for what, is an address of the
 * form SCHEME://HOST:PORT with SCHEME one of schemes (NULL-terminated, e.g.
 * {"tcp", NULL}), a HOST and a PORT in 1..65535. On failure it prints
 * "<prog>: <what>: want SCHEME://HOST:PORT (a port 1..65535), not <s>" to stderr
 * and returns PLOG_EINVAL: a usage error, found before anything starts. */
int plog_config_flag_url(const char *prog, const char *what, const char *s, const char *const *schemes);

/* plog_config_flag_hostport checks s, the value given for what, is an address of
 * the form HOST:PORT with a HOST and a PORT in 1..65535. On failure it prints
 * "<prog>: <what>: want HOST:PORT with a port in 1..65535 (<why>): <s>" to stderr
 * (without " (<why>)" when why is NULL) and returns PLOG_EINVAL: a usage error. */
int plog_config_flag_hostport(const char *prog, const char *what, const char *s, const char *why);

#endif
