/* logger.c - logfmt lines, each built in a stack buffer and written with one
 * write(2).
 *
 * Line: "time=<t> level=<l> msg=<m>[ key=value]...\n", at most PLOG_LOGGER_MAX_LINE bytes
 * including the newline. 1024 < PIPE_BUF (4096), and POSIX makes a write of at
 * most PIPE_BUF bytes to a pipe atomic; for a regular file Linux serialises
 * write(2)s on one open file, so whole lines land one after another there too. */
#include "internal/logger/logger.h"

#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "internal/err/err.h"

struct plog_logger {
    int fd;
    _Atomic int min; /* a plog_logger_level; atomic so an operator can change it live */
};

static const char *const level_names[] = {"debug", "info", "warn", "error"};

const char *plog_logger_level_name(plog_logger_level l)
{
    assert(l >= PLOG_LOGGER_DEBUG && l <= PLOG_LOGGER_ERROR);
    return level_names[l];
}

int plog_logger_parse_level(const char *s, plog_logger_level *out)
{
    int l;

    if (s == NULL)
        return PLOG_EINVAL;
    if (strcasecmp(s, "warning") == 0) {
        *out = PLOG_LOGGER_WARN;
        return PLOG_OK;
    }
    for (l = PLOG_LOGGER_DEBUG; l <= PLOG_LOGGER_ERROR; l++)
        if (strcasecmp(s, level_names[l]) == 0) {
            *out = (plog_logger_level)l;
            return PLOG_OK;
        }
    return PLOG_EINVAL;
}

int plog_logger_new(int fd, plog_logger_level min, plog_logger **lp)
{
    plog_logger *l;

    assert(fd >= 0);
    if ((l = calloc(1, sizeof(*l))) == NULL)
        return PLOG_ENOMEM;
    l->fd = fd;
    atomic_init(&l->min, (int)min);
    *lp = l;
    return PLOG_OK;
}

void plog_logger_free(plog_logger *l)
{
    free(l);
}

void plog_logger_set_level(plog_logger *l, plog_logger_level min)
{
    if (l != NULL)
        atomic_store_explicit(&l->min, (int)min, memory_order_relaxed);
}

plog_logger_level plog_logger_get_level(const plog_logger *l)
{
    if (l == NULL)
        return PLOG_LOGGER_ERROR;
    return (plog_logger_level)atomic_load_explicit(&l->min, memory_order_relaxed);
}

bool plog_logger_enabled(const plog_logger *l, plog_logger_level level)
{
    return l != NULL && (int)level >= atomic_load_explicit(&l->min, memory_order_relaxed);
}

/* needs_quote: logfmt reads a bare value up to the next space, so anything empty or
 * holding a space, '=', '"', '\' or a control byte is quoted. Bytes >= 0x80 (UTF-8)
 * stay as they are. */
static bool needs_quote(const char *s, size_t n)
{
    size_t i;

    if (n == 0)
        return true;
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= ' ' || c == '=' || c == '"' || c == '\\' || c == 0x7f)
            return true;
    }
    return false;
}

/* escape writes c's escaped form into e (>= 5 bytes) and returns its length. */
static size_t escape(unsigned char c, char *e)
{
    switch (c) {
    case '"':
        memcpy(e, "\\\"", 2);
        return 2;
    case '\\':
        memcpy(e, "\\\\", 2);
        return 2;
    case '\n':
        memcpy(e, "\\n", 2);
        return 2;
    case '\r':
        memcpy(e, "\\r", 2);
        return 2;
    case '\t':
        memcpy(e, "\\t", 2);
        return 2;
    default:
        if (c < ' ' || c == 0x7f) {
            snprintf(e, 5, "\\x%02x", c);
            return 4;
        }
        e[0] = (char)c;
        return 1;
    }
}

char *plog_logger_quote(const char *s, char *buf, size_t size)
{
    size_t n, i, o = 0, tail;
    bool quote, cut;

    assert(size >= 8);
    if (s == NULL)
        s = "";
    n = strnlen(s, PLOG_LOGGER_MAX_VALUE + 1);
    cut = n > PLOG_LOGGER_MAX_VALUE;
    if (cut)
        n = PLOG_LOGGER_MAX_VALUE;
    quote = needs_quote(s, n);
    /* Room kept at the end: "..." when cut, the closing quote, the NUL. */
    tail = 3 + (quote ? 1 : 0) + 1;
    if (quote)
        buf[o++] = '"';
    for (i = 0; i < n; i++) {
        char e[5];
        size_t k = escape((unsigned char)s[i], e);
        if (o + k + tail > size) {
            cut = true;
            break;
        }
        memcpy(buf + o, e, k);
        o += k;
    }
    if (cut) {
        memcpy(buf + o, "...", 3);
        o += 3;
    }
    if (quote)
        buf[o++] = '"';
    buf[o] = '\0';
    return buf;
}

/* A line being built. One byte is always kept for the final '\n'. */
struct line {
    char buf[PLOG_LOGGER_MAX_LINE];
    size_t len;
};

static size_t line_room(const struct line *ln)
{
    return sizeof(ln->buf) - 1 - ln->len; /* -1: the newline */
}

static void line_vprintf(struct line *ln, const char *fmt, va_list ap)
{
    size_t room = line_room(ln);
    int n;

    /* vsnprintf needs room for its NUL too: the byte kept for '\n' serves. */
    n = vsnprintf(ln->buf + ln->len, room + 1, fmt, ap);
    if (n > 0)
        ln->len += (size_t)n < room ? (size_t)n : room;
}

#ifdef __GNUC__
__attribute__((format(printf, 2, 3)))
#endif
static void
line_printf(struct line *ln, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    line_vprintf(ln, fmt, ap);
    va_end(ap);
}

/* line_kv appends " key=value" with value quoted as needed, or nothing when even a
 * cut value would not fit. */
static void line_kv(struct line *ln, const char *key, const char *value)
{
    size_t klen = strlen(key);

    if (line_room(ln) < klen + 2 + 8)
        return;
    ln->buf[ln->len++] = ' ';
    memcpy(ln->buf + ln->len, key, klen);
    ln->len += klen;
    ln->buf[ln->len++] = '=';
    /* +1: the NUL of quote may use the byte kept for the newline. */
    plog_logger_quote(value, ln->buf + ln->len, line_room(ln) + 1);
    ln->len += strlen(ln->buf + ln->len);
}

/* line_begin starts a line with the wall-clock time, UTC, to the millisecond, and
 * the level. A clock that cannot be read leaves the time out. errno is kept: glibc's
 * first gmtime_r reads the time zone files, and a missing one sets it. */
static void line_begin(struct line *ln, plog_logger_level level)
{
    int saved = errno;
    struct timespec ts;
    struct tm tm;

    ln->len = 0;
    if (clock_gettime(CLOCK_REALTIME, &ts) == 0 && gmtime_r(&ts.tv_sec, &tm) != NULL)
        line_printf(ln, "time=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ ", tm.tm_year + 1900, tm.tm_mon + 1,
                    tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);
    line_printf(ln, "level=%s", plog_logger_level_name(level));
    errno = saved;
}

static void line_start(struct line *ln, plog_logger_level level, const char *msg)
{
    line_begin(ln, level);
    line_printf(ln, " msg=");
    plog_logger_quote(msg, ln->buf + ln->len, line_room(ln) + 1);
    ln->len += strlen(ln->buf + ln->len);
}

/* line_write ends the line and writes it in one write(2) (the loop only resumes
 * after a signal or a short write, which a pipe never does at this size). errno is
 * preserved: logging must not disturb the caller's error handling. */
static void line_write(const plog_logger *l, struct line *ln)
{
    int saved = errno;
    const char *p = ln->buf;
    size_t n;

    ln->buf[ln->len++] = '\n';
    n = ln->len;
    while (n > 0) {
        ssize_t w = write(l->fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        p += w;
        n -= (size_t)w;
    }
    errno = saved;
}

void plog_logger_log(plog_logger *l, plog_logger_level level, const char *msg, ...)
{
    struct line ln;
    const char *key;
    va_list ap;

    if (!plog_logger_enabled(l, level))
        return;
    line_start(&ln, level, msg);
    va_start(ap, msg);
    while ((key = va_arg(ap, const char *)) != NULL)
        line_kv(&ln, key, va_arg(ap, const char *));
    va_end(ap);
    line_write(l, &ln);
}

void plog_logger_logf(plog_logger *l, plog_logger_level level, const char *msg, const char *fmt, ...)
{
    struct line ln;
    va_list ap;

    if (!plog_logger_enabled(l, level))
        return;
    line_start(&ln, level, msg);
    if (fmt != NULL && fmt[0] != '\0') {
        line_printf(&ln, " ");
        va_start(ap, fmt);
        line_vprintf(&ln, fmt, ap);
        va_end(ap);
    }
    line_write(l, &ln);
}

void plog_logger_report(void *arg, int level, const char *fields)
{
    plog_logger *l = arg;
    struct line ln;

    if (level < PLOG_LOGGER_DEBUG)
        level = PLOG_LOGGER_DEBUG;
    if (level > PLOG_LOGGER_ERROR)
        level = PLOG_LOGGER_ERROR;
    if (!plog_logger_enabled(l, (plog_logger_level)level))
        return;
    line_begin(&ln, (plog_logger_level)level);
    line_printf(&ln, " ");
    /* The reporter quoted its values; a control byte is still escaped here, so
     * that no fragment can end the line and forge another. */
    for (const unsigned char *p = (const unsigned char *)fields; *p != '\0' && line_room(&ln) >= 4; p++) {
        if (*p < 0x20 || *p == 0x7f)
            line_printf(&ln, "\\x%02x", *p);
        else
            ln.buf[ln.len++] = (char)*p;
    }
    line_write(l, &ln);
}
