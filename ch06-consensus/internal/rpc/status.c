/* status.c - names of the gRPC status codes and the plog_err mapping (status.h). */
#include "internal/rpc/status.h"

#include <stdarg.h>
#include <stdio.h>

#include "api/v1/log.pb-c.h"
#include "internal/err/err.h"

/* The table must agree with the Code enum of log.proto, which peers decode. */
#define X(name, num) _Static_assert(num == LOG__V1__CODE__##name, #name);
PLOG_STATUSES(X)
#undef X

const char *plog_rpc_status_name(int code)
{
    switch (code) {
#define X(name, num) \
    case num:        \
        return #name;
        PLOG_STATUSES(X)
#undef X
    default:
        return "UNKNOWN";
    }
}

int plog_rpc_status_from_err(int err)
{
    switch (err) {
    case PLOG_OK:
        return PLOG_STATUS_OK;
    case PLOG_ERANGE:
        return PLOG_STATUS_OUT_OF_RANGE;
    case PLOG_EINVAL:
        return PLOG_STATUS_INVALID_ARGUMENT;
    case PLOG_ECORRUPT:
        return PLOG_STATUS_DATA_LOSS;
    case PLOG_ENOMEM:
    case PLOG_EFULL: /* no offset left: the log takes no more records */
        return PLOG_STATUS_RESOURCE_EXHAUSTED;
    case PLOG_EPERM:
        return PLOG_STATUS_PERMISSION_DENIED;
    case PLOG_ENOTLEADER:
    case PLOG_EINDOUBT: /* retried with the same (client id, seq), it is applied once */
    case PLOG_EFAILED:  /* the log failed (fail-stop): a restart recovers it */
        return PLOG_STATUS_UNAVAILABLE;
    default:
        return PLOG_STATUS_INTERNAL;
    }
}

int plog_rpc_status_set(plog_rpc_status *st, int code, const char *fmt, ...)
{
    if (st != NULL) {
        st->code = code;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(st->msg, sizeof st->msg, fmt, ap);
        va_end(ap);
    }
    return code;
}
