/* err.c - messages for the codes of err.h. */
#include "internal/err/err.h"

#include <stdarg.h>
#include <stdio.h>

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
