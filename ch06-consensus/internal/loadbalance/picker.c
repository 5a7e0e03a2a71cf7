/* picker.c - the picker of picker.h. */
#include "internal/loadbalance/picker.h"

#include <string.h>

void plog_loadbalance_picker_update(plog_loadbalance_picker *p, const plog_loadbalance_server *v, size_t n)
{
    if (n > PLOG_LOADBALANCE_MAX_SERVERS)
        n = PLOG_LOADBALANCE_MAX_SERVERS;
    memcpy(p->servers, v, n * sizeof *v);
    p->n = n;
}

int plog_loadbalance_pick(plog_loadbalance_picker *p, bool produce)
{
    int leader = -1;
    size_t followers = 0;
    for (size_t i = 0; i < p->n; i++) {
        if (p->servers[i].is_leader)
            leader = (int)i;
        else
            followers++;
    }
    if (produce || followers == 0)
        return leader;
    uint64_t k = p->next++ % followers;
    for (size_t i = 0; i < p->n; i++)
        if (!p->servers[i].is_leader && k-- == 0)
            return (int)i;
    return -1;
}
