/* nngerr.h - where libnng's NNG_E* codes enter the project (docs/CONVENTIONS.md §4): each is
 * translated once, here, to a plog_err (for setup calls: open, listen, dial) or to
 * an RPC status (for calls in flight). */
#ifndef PLOG_RPC_NNGERR_H
#define PLOG_RPC_NNGERR_H

#include <stddef.h>

/* plog_rpc_nngerr_err maps an NNG_E* code to a plog_err: NNG_ENOMEM -> PLOG_ENOMEM,
 * NNG_EINVAL/NNG_EADDRINVAL -> PLOG_EINVAL, 0 -> PLOG_OK, anything else ->
 * PLOG_EIO. When errmsg is not NULL it receives "what: nng's message". */
int plog_rpc_nngerr_err(int nng_rv, const char *what, char *errmsg, size_t size);

/* plog_rpc_nngerr_status maps an NNG_E* code from an RPC in flight to a status:
 * NNG_ETIMEDOUT -> DEADLINE_EXCEEDED; NNG_ECONNREFUSED, NNG_ECONNRESET,
 * NNG_ECONNSHUT, NNG_ECONNABORTED, NNG_ECLOSED, NNG_EUNREACHABLE,
 * NNG_EADDRINUSE -> UNAVAILABLE (pipe lost: the request may or may not have been
 * applied); NNG_EMSGSIZE, NNG_ENOMEM -> RESOURCE_EXHAUSTED; NNG_ECANCELED ->
 * CANCELLED; NNG_EINVAL, NNG_EADDRINVAL -> INVALID_ARGUMENT; NNG_EPERM,
 * NNG_EPEERAUTH -> UNAUTHENTICATED; anything else -> UNKNOWN. */
int plog_rpc_nngerr_status(int nng_rv);

#endif
