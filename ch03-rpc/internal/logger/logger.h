/* logger.h - the one structured log of the programs: one event per line, key=value
 * (logfmt), with a level, filtered by an operator-chosen minimum level.
 *
 *   time=2026-12-02T03:10:00.123Z level=info msg=listening addr=127.0.0.1:8080
 *   time=2026-12-02T03:10:00.125Z level=error msg="cannot serve" err="address in use"
 *
 * The time is the wall clock's, in UTC, to the millisecond (RFC 3339), so lines from
 * several nodes sort together.
 *
 * Values that are empty or hold a space, '=', '"', '\' or a control character are
 * quoted and escaped (\" \\ \n \r \t \xHH), so a value like "a\nlevel=error" can
 * never forge a line. Each value is cut at PLOG_LOGGER_MAX_VALUE bytes ("..." marks
 * the cut) and a line at PLOG_LOGGER_MAX_LINE bytes.
 *
 * Every line goes out in a single write(2) of at most PLOG_LOGGER_MAX_LINE (< PIPE_BUF)
 * bytes, so lines from concurrent threads never interleave, on a pipe, a terminal or
 * a file. Write errors are ignored: logging never fails the caller, and errno is kept.
 *
 * Use:
 *   plog_logger_level lvl;  plog_logger_parse_level("info", &lvl);
 *   plog_logger_new(STDERR_FILENO, lvl, &log);
 *   plog_logger_log(log, PLOG_LOGGER_INFO, "listening", "addr", addr, NULL);
 *   plog_logger_logf(log, PLOG_LOGGER_INFO, "stopped", "records=%llu", n);
 *   plog_logger_free(log);
 *
 * Every function accepts a NULL logger and then writes nothing, so a library can
 * take an optional one. Thread safety: all functions but _free may be called from
 * any thread; the level may change while others log (e.g. on SIGHUP). */
#ifndef PLOG_LOGGER_H
#define PLOG_LOGGER_H

#include <stdbool.h>
#include <stddef.h>

#define PLOG_LOGGER_MAX_LINE 1024
#define PLOG_LOGGER_MAX_VALUE 256

typedef enum {
    PLOG_LOGGER_DEBUG,
    PLOG_LOGGER_INFO,
    PLOG_LOGGER_WARN,
    PLOG_LOGGER_ERROR,
} plog_logger_level;

typedef struct plog_logger plog_logger;

/* plog_logger_parse_level maps "debug", "info", "warn" (or "warning"), "error" (any
 * case) to *out. PLOG_EINVAL for anything else, *out untouched. */
int plog_logger_parse_level(const char *s, plog_logger_level *out);

/* plog_logger_level_name returns "debug", "info", "warn" or "error". */
const char *plog_logger_level_name(plog_logger_level l);

/* plog_logger_new makes a logger writing to fd (borrowed: the caller keeps it open
 * while the logger lives; usually STDERR_FILENO) that drops events below min. On
 * PLOG_OK *lp owns it until plog_logger_free(). PLOG_ENOMEM. */
int plog_logger_new(int fd, plog_logger_level min, plog_logger **lp);

/* plog_logger_free frees l (the fd stays open). NULL is fine. */
void plog_logger_free(plog_logger *l);

/* plog_logger_set_level changes the minimum level at run time, atomically: lines
 * being written by other threads finish with the level they checked. */
void plog_logger_set_level(plog_logger *l, plog_logger_level min);

/* plog_logger_get_level returns the minimum level (ERROR for a NULL logger). */
plog_logger_level plog_logger_get_level(const plog_logger *l);

/* plog_logger_enabled says whether an event at level would be written: check it
 * before building something costly to log. */
bool plog_logger_enabled(const plog_logger *l, plog_logger_level level);

/* plog_logger_log writes "time=<time> level=<level> msg=<msg>" and then " key=value" for each
 * (const char *key, const char *value) pair that follows, up to a NULL key. Values
 * are quoted and escaped as needed (a NULL value prints as ""); keys are the
 * caller's constants and written as they are. */
#ifdef __GNUC__
__attribute__((sentinel))
#endif
void plog_logger_log(plog_logger *l, plog_logger_level level, const char *msg, ...);

/* plog_logger_logf writes "time=<time> level=<level> msg=<msg>" and then, after a space, the
 * printf-formatted fields (fmt may be NULL for none): the caller writes them as
 * key=value pairs and quotes values that may need it (plog_logger_quote). */
#ifdef __GNUC__
__attribute__((format(printf, 4, 5)))
#endif
void plog_logger_logf(plog_logger *l, plog_logger_level level, const char *msg, const char *fmt, ...);

/* plog_logger_report is an adapter for libraries that report through a callback of
 * the shape void (*)(void *arg, int level, const char *fields) (the log's
 * plog_log_report_fn): arg is the plog_logger (borrowed), level a plog_logger_level
 * (below DEBUG counts as DEBUG, above ERROR as ERROR) and fields a logfmt fragment
 * the library built with its values quoted (`msg="torn tail cut" file=...`). The
 * line is "time=<time> level=<level> <fields>", control bytes in fields written as \xNN so
 * that a fragment cannot forge a line. */
void plog_logger_report(void *arg, int level, const char *fields);

/* plog_logger_quote writes s into buf (size >= 8 bytes, NUL-terminated) as a logfmt
 * value: as is when it is safe bare, else quoted and escaped, cut at
 * PLOG_LOGGER_MAX_VALUE bytes of input or when buf is full. Returns buf. */
char *plog_logger_quote(const char *s, char *buf, size_t size);

#endif
