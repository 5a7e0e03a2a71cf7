/* reqlog.c - logfmt lines, each built in a stack buffer and written with one
 * write(2).
 *
 * Line: "level=<l> msg=<m>[ key=value]...\n", at most PLOG_REQLOG_MAX_LINE bytes
 * including the newline. 1024 < PIPE_BUF (4096), and POSIX makes a write of at
 * most PIPE_BUF bytes to a pipe atomic; for a regular file Linux serialises
 * write(2)s on one open file, so whole lines land one after another there too. */
#include "internal/metrics/reqlog.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "internal/err/err.h"

struct plog_reqlog {
    int fd;
    _Atomic int min; /* a plog_level; atomic so an operator can change it live */
    plog_level request_level;
};

static const char *const level_names[] = {"debug", "info", "warn", "error"};

const char *plog_reqlog_level_name(plog_level l)
{
    assert(l >= PLOG_LEVEL_DEBUG && l <= PLOG_LEVEL_ERROR);
    return level_names[l];
}

int plog_reqlog_parse_level(const char *s, plog_level *out)
{
    int l;

    if (s == NULL)
        return PLOG_EINVAL;
    if (strcasecmp(s, "warning") == 0) {
        *out = PLOG_LEVEL_WARN;
        return PLOG_OK;
    }
    for (l = PLOG_LEVEL_DEBUG; l <= PLOG_LEVEL_ERROR; l++)
        if (strcasecmp(s, level_names[l]) == 0) {
            *out = (plog_level)l;
            return PLOG_OK;
        }
    return PLOG_EINVAL;
}

int plog_reqlog_new(int fd, plog_level min, plog_level request_level, plog_reqlog **lp)
{
    plog_reqlog *l;

    assert(fd >= 0);
    if ((l = calloc(1, sizeof(*l))) == NULL)
        return PLOG_ENOMEM;
    l->fd = fd;
    atomic_init(&l->min, (int)min);
    l->request_level = request_level;
    *lp = l;
    return PLOG_OK;
}

void plog_reqlog_free(plog_reqlog *l)
{
    free(l);
}

void plog_reqlog_set_level(plog_reqlog *l, plog_level min)
{
    atomic_store_explicit(&l->min, (int)min, memory_order_relaxed);
}

bool plog_reqlog_enabled(const plog_reqlog *l, plog_level level)
{
    return (int)level >= atomic_load_explicit(&l->min, memory_order_relaxed);
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
    case '"': memcpy(e, "\\\"", 2); return 2;
    case '\\': memcpy(e, "\\\\", 2); return 2;
    case '\n': memcpy(e, "\\n", 2); return 2;
    case '\r': memcpy(e, "\\r", 2); return 2;
    case '\t': memcpy(e, "\\t", 2); return 2;
    default:
        if (c < ' ' || c == 0x7f) {
            snprintf(e, 5, "\\x%02x", c);
            return 4;
        }
        e[0] = (char)c;
        return 1;
    }
}

char *plog_reqlog_quote(const char *s, char *buf, size_t size)
{
    size_t n, i, o = 0, tail;
    bool quote, cut;

    assert(size >= 8);
    if (s == NULL)
        s = "";
    n = strnlen(s, PLOG_REQLOG_MAX_VALUE + 1);
    cut = n > PLOG_REQLOG_MAX_VALUE;
    if (cut)
        n = PLOG_REQLOG_MAX_VALUE;
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
    char buf[PLOG_REQLOG_MAX_LINE];
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
static void line_printf(struct line *ln, const char *fmt, ...)
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
    plog_reqlog_quote(value, ln->buf + ln->len, line_room(ln) + 1);
    ln->len += strlen(ln->buf + ln->len);
}

static void line_start(struct line *ln, plog_level level, const char *msg)
{
    ln->len = 0;
    line_printf(ln, "level=%s msg=", plog_reqlog_level_name(level));
    plog_reqlog_quote(msg, ln->buf + ln->len, line_room(ln) + 1);
    ln->len += strlen(ln->buf + ln->len);
}

/* line_write ends the line and writes it in one write(2) (the loop only resumes
 * after a signal or a short write, which a pipe never does at this size). errno is
 * preserved: logging must not disturb the caller's error handling. */
static void line_write(const plog_reqlog *l, struct line *ln)
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

void plog_reqlog_request(plog_reqlog *l, const plog_reqlog_entry *e)
{
    struct line ln;

    if (!plog_reqlog_enabled(l, l->request_level))
        return;
    line_start(&ln, l->request_level, "request");
    line_kv(&ln, "method", e->method);
    line_kv(&ln, "status", e->status);
    line_printf(&ln, " latency_us=%" PRIu64, e->latency_ns / 1000);
    line_kv(&ln, "peer", e->peer);
    line_printf(&ln, " bytes_in=%" PRIu64 " bytes_out=%" PRIu64, e->bytes_in, e->bytes_out);
    if (e->err != NULL && e->err[0] != '\0')
        line_kv(&ln, "err", e->err);
    line_write(l, &ln);
}

void plog_reqlog_event(plog_reqlog *l, plog_level level, const char *msg, const char *fmt, ...)
{
    struct line ln;
    va_list ap;

    if (!plog_reqlog_enabled(l, level))
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
