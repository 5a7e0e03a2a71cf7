/* err.c - messages for the codes of err.h, and plog_err_stdout_done. */
#include "internal/err/err.h"

#include <errno.h>
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
