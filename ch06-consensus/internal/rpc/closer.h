/* closer.h - closes that must not block the caller: one closer thread per process.
 *
 * In nng 1.5.2, nng_close of a TLS socket can block for good: its TLS transport
 * sends a message in parts (length, then body), and when the pipe closes between
 * two parts the next part is handed to an aio the close has already stopped,
 * which drops it without a callback (tlstran_pipe_send_cb). The message's send
 * then never completes, the pipe's teardown waits for it forever on nng's one
 * reaper thread, and from then on every nng_close in the process waits for that
 * thread. A peer killed while messages stream to it does this now and then.
 * Whatever closes a socket while the process goes on (a client, the membership
 * transport) hands the close here, so no caller's thread hangs on it.
 *
 * Threads: the closer thread is detached, started on first use and never ends;
 * it runs the closes one at a time, in the order they were submitted. Once nng's
 * reaper is stuck it waits in nng_close for good and later closes stay queued:
 * the process goes on and leaks what nng can no longer reap. */
#ifndef PLOG_RPC_CLOSER_H
#define PLOG_RPC_CLOSER_H

#include <stdbool.h>
#include <stdint.h>

/* plog_rpc_closer_submit runs fn(arg) on the closer thread, later; arg is
 * fn's from now on. When the thread cannot be started (or the queue entry
 * not allocated) it runs fn(arg) on the caller's thread before returning.
 * Never call it with a lock held that fn takes. */
void plog_rpc_closer_submit(void (*fn)(void *), void *arg);

/* plog_rpc_closer_wait waits at most timeout_ms for every close submitted so
 * far (and any submitted meanwhile) to have returned. true when none is left;
 * false when some are still queued or running (e.g. stuck in nng_close). */
bool plog_rpc_closer_wait(int timeout_ms);

/* plog_rpc_closer_busy_ms says how long the close running now has been running, in
 * ms (0: none runs). A close takes milliseconds; one that has run for seconds waits
 * on a stuck reaper, for good: a node can say so while it runs (a gauge, a log
 * line), where before only its stop did, when nothing could be done any more. */
uint32_t plog_rpc_closer_busy_ms(void);

#endif
