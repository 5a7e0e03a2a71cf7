/* engine_int.h - the TLS package's private seam between engine.c and peer.c: the
 * identity slot. Nothing outside internal/tls includes it. */
#ifndef PLOG_TLS_ENGINE_INT_H
#define PLOG_TLS_ENGINE_INT_H

#include <stdatomic.h>
#include <stdbool.h>

#include "internal/tls/engine.h"

/* The identity hand-off (used by peer.c; see peer.h for the whole mechanism). nng 1.5.2
 * has no option that returns the peer's certificate; it has NNG_OPT_TLS_VERIFIED, whose
 * getter calls our verified() op synchronously on the calling thread. verified() copies
 * the connection's plog_tls_peer into a thread-local slot when it returns true and the
 * certificate carries exactly one usable CN.
 *
 * plog_tls_peer_slot_clear empties this thread's slot.
 * plog_tls_peer_slot_take moves the slot into *out and empties it; false when empty. */
void plog_tls_peer_slot_clear(void);
bool plog_tls_peer_slot_take(plog_tls_peer *out);

/* The reload seam (used by config.c). plog_tls_config_adopt gives live, a config in
 * use by a listener, the OpenSSL context of fresh (certificate, key, CAs, verify
 * mode, versions): connections initialised from then on use it; connections already
 * made keep the context they started with. live keeps its failure hook and errmsg.
 * Both are borrowed; fresh may be freed at once. PLOG_OK, or PLOG_EINVAL when either
 * is not from plog_tls_config_alloc or their modes differ. */
int plog_tls_config_adopt(nng_tls_config *live, nng_tls_config *fresh);

/* The liveness seam (used by engine_test). While plog_tls_recheck_only is set, a
 * server receive that must wait takes its stream for alive without asking, as
 * getpeername answers over a network for a round trip after the peer's FIN: only
 * the connection's recheck timer finds out that the stream is gone. */
extern atomic_bool plog_tls_recheck_only;

#endif
