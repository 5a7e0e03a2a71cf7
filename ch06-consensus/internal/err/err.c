/* err.c - messages for the codes of err.h, plog_fopen_read and plog_err_stdout_done. */
#include "internal/err/err.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

const char *plog_strerror(int rv)
{
    switch (rv) {
#define X(code, msg) \
    case code:       \
        return msg;
        PLOG_ERRORS(X)
#undef X
    default:
        return "unknown error";
    }
}

void plog_errf(char *buf, size_t size, const char *fmt, ...)
{
    if (buf == NULL || size == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, size, fmt, ap);
    va_end(ap);
}

/* The bounds of reading a file that is not a regular one (plog_fopen_read). */
#define STREAM_MAX (1 << 20)
#define STREAM_WAIT_MS 2000

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* read_stream reads fd (non-blocking) to its end into a stream of its own, within
 * STREAM_MAX bytes and STREAM_WAIT_MS. NULL with *reason on failure. */
static FILE *read_stream(int fd, const char **reason)
{
    char *buf = malloc(STREAM_MAX + 1);
    if (buf == NULL) {
        *reason = strerror(ENOMEM);
        return NULL;
    }
    size_t n = 0;
    int64_t until = mono_ms() + STREAM_WAIT_MS;
    for (;;) {
        ssize_t r = read(fd, buf + n, STREAM_MAX + 1 - n);
        if (r > 0 && (n += (size_t)r) <= STREAM_MAX)
            continue;
        if (r > 0) {
            *reason = "larger than 1 MiB";
            break;
        }
        if (r == 0) {
            *reason = n == 0 ? "nothing to read (an empty pipe, or a FIFO nobody writes to?)" : NULL;
            break;
        }
        int64_t left = until - mono_ms();
        if ((errno != EAGAIN && errno != EINTR) || left <= 0) {
            *reason = left <= 0 ? "not read to its end within 2 s" : strerror(errno);
            break;
        }
        struct pollfd p = {.fd = fd, .events = POLLIN};
        poll(&p, 1, (int)left);
    }
    FILE *f = *reason == NULL ? fmemopen(NULL, n + 1, "w+") : NULL; /* + 1: its terminating NUL */
    if (f != NULL && (fwrite(buf, 1, n, f) != n || fseek(f, 0, SEEK_SET) != 0)) {
        fclose(f);
        f = NULL;
    }
    if (f == NULL && *reason == NULL)
        *reason = strerror(errno);
    free(buf);
    return f;
}

FILE *plog_fopen_read(const char *path, char *why, size_t size)
{
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC); /* a FIFO's open waits for no writer */
    struct stat st;
    const char *reason = NULL;
    FILE *f = NULL;
    if (fd < 0 || fstat(fd, &st) != 0)
        reason = strerror(errno);
    else if (S_ISDIR(st.st_mode))
        reason = strerror(EISDIR);
    else if (S_ISREG(st.st_mode)) {
        if ((f = fdopen(fd, "r")) == NULL)
            reason = strerror(errno);
        else
            fd = -1; /* the stream's now */
    } else
        f = read_stream(fd, &reason);
    if (fd >= 0)
        close(fd);
    if (f == NULL)
        plog_errf(why, size, "%s: %s", path, reason);
    return f;
}

int plog_err_stdout_done(const char *prog)
{
    errno = 0;
    if (fflush(stdout) == 0 && !ferror(stdout))
        return 0;
    int e = errno != 0 ? errno : EIO;
    if (e != EPIPE)
        fprintf(stderr, "%s: cannot write the output: %s\n", prog, strerror(e));
    return 1;
}
