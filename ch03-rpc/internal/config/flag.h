/* flag.h - command-line values that proglog and proglogctl parse alike. */
#ifndef PLOG_CONFIG_FLAG_H
#define PLOG_CONFIG_FLAG_H

#include <stdint.h>

/* plog_config_flag_u64 parses s, the value given for what (a flag or argument name), as a
 * whole decimal number into *v. On failure it prints "<prog>: <what>: not a
 * number: <s>" to stderr, leaves *v untouched and returns PLOG_EINVAL. */
int plog_config_flag_u64(const char *prog, const char *what, const char *s, uint64_t *v);

/* plog_config_flag_url checks s, the value given for what, is an address of the
 * form SCHEME://HOST:PORT with SCHEME one of schemes (NULL-terminated, e.g.
 * {"tcp", NULL}), a HOST and a PORT in 1..65535. On failure it prints
 * "<prog>: <what>: want SCHEME://HOST:PORT (a port 1..65535), not <s>" to stderr
 * and returns PLOG_EINVAL: a usage error, found before anything starts. */
int plog_config_flag_url(const char *prog, const char *what, const char *s, const char *const *schemes);

#endif
