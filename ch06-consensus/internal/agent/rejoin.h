/* rejoin.h - the members a node has seen, remembered in its data directory
 * (DATA_DIR/members), so that a restarted node rejoins them at once, with or
 * without join addresses (Serf's snapshot does the same). Without it a node
 * restarted without join addresses after a graceful leave stays alone for good
 * (the others do not reconnect to a member that left), and after a crash it is
 * alone until another member's reconnect reaches it (30 s with the LAN timings).
 *
 * A hint, not state: the file is written again (a temporary file renamed over
 * it) when a member joins, changes its address or leaves; a missing, stale or
 * damaged file costs a slower rejoin, never data. Not thread-safe: the agent
 * calls it from membership's event thread only (after loading it before). */
#ifndef PLOG_AGENT_REJOIN_H
#define PLOG_AGENT_REJOIN_H

#include <stddef.h>

#include "internal/discovery/gossip.h"

#define PLOG_AGENT_REJOIN_MAX 64 /* members remembered: plog_discovery's join limit */

typedef struct plog_agent_rejoin {
    char path[1040];
    size_t n;
    struct {
        char name[PLOG_GOSSIP_MAX_NAME + 1];
        char addr[PLOG_GOSSIP_MAX_ADDR + 1]; /* the member's gossip address */
    } m[PLOG_AGENT_REJOIN_MAX];
} plog_agent_rejoin;

/* plog_agent_rejoin_load reads DIR/members into r (empty when there is none yet).
 * Lines it cannot read are skipped and counted in *skipped. PLOG_EINVAL when
 * dir is too long, PLOG_EIO when the file exists but cannot be read. */
int plog_agent_rejoin_load(plog_agent_rejoin *r, const char *dir, size_t *skipped);

/* plog_agent_rejoin_saw remembers member name at gossip address addr (a join or an
 * update); plog_agent_rejoin_left forgets it (it left on purpose). Each writes the
 * file when something changed: PLOG_OK, PLOG_EINVAL for a name or address
 * that does not fit, PLOG_EIO when the file could not be written (r keeps the
 * change). Beyond PLOG_AGENT_REJOIN_MAX members the newest is not remembered. */
int plog_agent_rejoin_saw(plog_agent_rejoin *r, const char *name, const char *addr);
int plog_agent_rejoin_left(plog_agent_rejoin *r, const char *name);

/* plog_agent_rejoin_join_list appends to out (holding *n of cap) every remembered
 * address it does not hold yet; the pointers are into r. */
void plog_agent_rejoin_join_list(const plog_agent_rejoin *r, const char **out, size_t cap, size_t *n);

#endif
