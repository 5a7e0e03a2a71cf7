/* err.c - messages for the codes of err.h. */
#include "internal/err/err.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
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

FILE *plog_fopen_regular(const char *path, char *why, size_t size)
{
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    struct stat st;
    const char *reason = NULL;
    FILE *f = NULL;
    if (fd < 0 || fstat(fd, &st) != 0)
        reason = strerror(errno);
    else if (!S_ISREG(st.st_mode))
        reason = S_ISDIR(st.st_mode) ? strerror(EISDIR) : "not a regular file";
    else if ((f = fdopen(fd, "r")) == NULL)
        reason = strerror(errno);
    if (f == NULL) {
        if (fd >= 0)
            close(fd);
        plog_errf(why, size, "%s: %s", path, reason);
    }
    return f;
}
