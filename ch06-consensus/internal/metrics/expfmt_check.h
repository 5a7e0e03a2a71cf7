/* expfmt_check.h - test-only: a strict reader of the Prometheus text exposition
 * format 0.0.4, used by metrics_test.c and http_test.c to check rendered and
 * scraped text without trusting the renderer. Defined in expfmt_check_testlib.c (the test
 * library), so it stays out of libplog.a.
 *
 * What it enforces, line by line:
 *   "# HELP <name> <text>"            at most once per family, before its samples
 *   "# TYPE <name> <type>"            counter|gauge|histogram|summary|untyped, once,
 *                                     before the family's first sample
 *   "# <anything else>"               a comment
 *   "<name>[{l="v",...}] <value>"     name [a-zA-Z_:][a-zA-Z0-9_:]*, label names
 *                                     [a-zA-Z_][a-zA-Z0-9_]*, values quoted with only
 *                                     \\ \" \n escapes, value a float or +Inf/-Inf/NaN
 * and across lines: a family's samples are contiguous and follow its TYPE; counter
 * and gauge samples carry the family's own name; a histogram's carry _bucket
 * (with le), _sum, _count, per series in that order, with le strictly increasing,
 * bucket counts non-decreasing, the last le "+Inf", and _count equal to it; counter
 * values are >= 0; no series appears twice; the text ends with a newline. */
#ifndef PLOG_EXPFMT_CHECK_H
#define PLOG_EXPFMT_CHECK_H

#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXPFMT_MAX_LABELS 8
#define EXPFMT_MAX_SERIES 4096

struct expfmt_sample {
    char name[128];
    int nlabels;
    char lname[EXPFMT_MAX_LABELS][64];
    char lval[EXPFMT_MAX_LABELS][256]; /* unescaped */
    double value;
};

/* What a successful check counted. */
struct expfmt_stats {
    int families;
    int samples;
    int histograms; /* histogram series (label sets) */
};

/* expfmt_msg formats a diagnostic (vsnprintf: truncation is fine here). */
#ifdef __GNUC__
__attribute__((format(printf, 3, 4)))
#endif
void expfmt_msg(char *buf, size_t size, const char *fmt, ...);

bool expfmt_name_char(char c, bool first, bool colon);

/* expfmt_name reads a name at *p into out; false if there is none. */
bool expfmt_name(const char **p, char *out, size_t size, bool colon);

bool expfmt_value(const char *s, double *v);

/* expfmt_parse_sample parses one sample line (no newline). */
bool expfmt_parse_sample(const char *line, struct expfmt_sample *s, char *why, size_t wlen);

const char *expfmt_label(const struct expfmt_sample *s, const char *name);

/* expfmt_key writes the sample's labels but le, in order, as a series key. */
void expfmt_key(const struct expfmt_sample *s, char *key, size_t size);

bool expfmt_has_suffix(const char *s, const char *fam, const char *suffix);

/* expfmt_check checks text (NUL-terminated). On failure it returns false and says
 * why, with the line number, in why. */
bool expfmt_check(const char *text, struct expfmt_stats *st, char *why, size_t wlen);

/* expfmt_find returns the value of the sample whose text up to the value is exactly
 * series (e.g. "proglog_requests_total{method=\"Produce\",code=\"OK\"}"), or -1. */
double expfmt_find(const char *text, const char *series);

/* expfmt_find_str is expfmt_find but returns the value's text (up to the newline)
 * copied into buf, or NULL when the series is missing. */
const char *expfmt_find_str(const char *text, const char *series, char *buf, size_t size);

#endif
