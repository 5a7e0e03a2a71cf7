/* nngerr.c - translation of libnng 1.5.2's NNG_E* codes (nngerr.h). */
#include "internal/rpc/nngerr.h"

#include <stdio.h>

#include <nng/nng.h>

#include "internal/err/err.h"
#include "internal/rpc/status.h"

int plog_rpc_nngerr_err(int nng_rv, const char *what, char *errmsg, size_t size)
{
    if (nng_rv == 0)
        return PLOG_OK;
    if (errmsg != NULL)
        snprintf(errmsg, size, "%s: %s", what, nng_strerror(nng_rv));
    switch (nng_rv) {
    case NNG_ENOMEM:
        return PLOG_ENOMEM;
    case NNG_EINVAL:
    case NNG_EADDRINVAL:
        return PLOG_EINVAL;
    default:
        return PLOG_EIO;
    }
}

int plog_rpc_nngerr_status(int nng_rv)
{
    switch (nng_rv) {
    case 0:
        return PLOG_STATUS_OK;
    case NNG_ETIMEDOUT:
        return PLOG_STATUS_DEADLINE_EXCEEDED;
    case NNG_ECONNREFUSED:
    case NNG_ECONNRESET:
    case NNG_ECONNSHUT:
    case NNG_ECONNABORTED:
    case NNG_ECLOSED:
    case NNG_EUNREACHABLE:
    case NNG_EADDRINUSE:
        return PLOG_STATUS_UNAVAILABLE;
    case NNG_EMSGSIZE:
    case NNG_ENOMEM:
        return PLOG_STATUS_RESOURCE_EXHAUSTED;
    case NNG_ECANCELED:
        return PLOG_STATUS_CANCELLED;
    case NNG_EINVAL:
    case NNG_EADDRINVAL:
        return PLOG_STATUS_INVALID_ARGUMENT;
    case NNG_EPERM:
    case NNG_EPEERAUTH:
        return PLOG_STATUS_UNAUTHENTICATED;
    default:
        return PLOG_STATUS_UNKNOWN;
    }
}
