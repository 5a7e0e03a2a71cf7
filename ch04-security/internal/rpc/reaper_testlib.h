/* reaper_testlib.h - wedges nng's reaper thread, for tests of closes that must not
 * hang on it (internal/rpc/closer.h).
 *
 * The reaper is wedged the way nng's own bug wedges it, by a pipe teardown that
 * does not end: a REM_POST pipe callback (nng runs it on its one reaper thread) of
 * a pair of sockets of its own that blocks until the test releases it. From then
 * on every nng close that waits for a reap (a socket with a connection, an HTTP
 * server with one) waits for that thread. Test code only; one wedge at a time. */
#ifndef PLOG_RPC_REAPER_TESTLIB_H
#define PLOG_RPC_REAPER_TESTLIB_H

#include <stdbool.h>

/* plog_rpc_reaper_wedge returns once the reaper is blocked. It fails the test
 * (cmocka) when the wedge cannot be set up within 10 s. */
void plog_rpc_reaper_wedge(void);

/* plog_rpc_reaper_release lets the reaper go on and closes the wedge's sockets. */
void plog_rpc_reaper_release(void);

/* plog_rpc_returns_within runs fn(arg) (a close) on a thread of its own and waits
 * at most timeout_ms for it to return: true when it did (the thread is joined),
 * false when it still runs (the thread is left to it: fail the test). */
bool plog_rpc_returns_within(void (*fn)(void *), void *arg, int timeout_ms);

#endif
