/* err.c - messages for the codes of err.h, and plog_err_stdout_done. */
#include "internal/err/err.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

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
