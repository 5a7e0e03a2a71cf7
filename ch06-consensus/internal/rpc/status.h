/* status.h - the RPC status codes: gRPC's numbers and names (google.rpc.Code), the
 * same values as the Code enum of api/v1/log.proto, and the mapping from the
 * project's plog_err codes.
 *
 * Every RPC function of the client library returns one of these (OK is 0, like
 * PLOG_OK); the human-readable text travels beside it in a plog_rpc_status. */
#ifndef PLOG_RPC_STATUS_H
#define PLOG_RPC_STATUS_H

#include <stddef.h>

#define PLOG_STATUSES(X)      \
    X(OK, 0)                  \
    X(CANCELLED, 1)           \
    X(UNKNOWN, 2)             \
    X(INVALID_ARGUMENT, 3)    \
    X(DEADLINE_EXCEEDED, 4)   \
    X(NOT_FOUND, 5)           \
    X(ALREADY_EXISTS, 6)      \
    X(PERMISSION_DENIED, 7)   \
    X(RESOURCE_EXHAUSTED, 8)  \
    X(FAILED_PRECONDITION, 9) \
    X(ABORTED, 10)            \
    X(OUT_OF_RANGE, 11)       \
    X(UNIMPLEMENTED, 12)      \
    X(INTERNAL, 13)           \
    X(UNAVAILABLE, 14)        \
    X(DATA_LOSS, 15)          \
    X(UNAUTHENTICATED, 16)

typedef enum {
#define X(name, num) PLOG_STATUS_##name = num,
    PLOG_STATUSES(X)
#undef X
} plog_rpc_code;

/* The outcome of one RPC as a caller sees it: the code and the server's (or the
 * client library's) message, NUL-terminated, empty on OK. */
typedef struct plog_rpc_status {
    int code;
    char msg[256];
} plog_rpc_status;

/* plog_rpc_status_name returns the gRPC name of code ("OUT_OF_RANGE"), or "UNKNOWN"
 * for a number outside the table. Static string. */
const char *plog_rpc_status_name(int code);

/* plog_rpc_status_from_err maps a plog_err to the status a server answers with:
 * PLOG_ERANGE -> OUT_OF_RANGE, PLOG_EINVAL -> INVALID_ARGUMENT, PLOG_ECORRUPT ->
 * DATA_LOSS, PLOG_ENOMEM -> RESOURCE_EXHAUSTED, PLOG_EPERM -> PERMISSION_DENIED,
 * PLOG_ENOTLEADER -> UNAVAILABLE, anything else -> INTERNAL. */
int plog_rpc_status_from_err(int err);

/* plog_rpc_status_set fills st (when not NULL) with code and a printf-style message,
 * and returns code, so a function can `return plog_rpc_status_set(st, code, ...)`. */
int plog_rpc_status_set(plog_rpc_status *st, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
