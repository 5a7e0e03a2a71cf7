/* picker.h - which server a call goes to (Go: internal/loadbalance/picker.go, the
 * book's chapter 9): produces to the leader, consumes round-robin over the
 * followers (the leader when there is none). A pure value type: no I/O, no locks
 * (the router holds it under its own). */
#ifndef PLOG_LOADBALANCE_PICKER_H
#define PLOG_LOADBALANCE_PICKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PLOG_LOADBALANCE_MAX_SERVERS 16

/* One server as GetServers reports it (Go: the resolver's resolver.Address with
 * its is_leader attribute). */
typedef struct plog_loadbalance_server {
    char id[64];
    char rpc_addr[128]; /* HOST:PORT */
    bool is_leader;
} plog_loadbalance_server;

typedef struct plog_loadbalance_picker {
    plog_loadbalance_server servers[PLOG_LOADBALANCE_MAX_SERVERS];
    size_t n;
    uint64_t next; /* round-robin position over the followers */
} plog_loadbalance_picker;

/* plog_loadbalance_picker_update replaces the picker's servers (n at most
 * PLOG_LOADBALANCE_MAX_SERVERS are kept). */
void plog_loadbalance_picker_update(plog_loadbalance_picker *p, const plog_loadbalance_server *v, size_t n);

/* plog_loadbalance_pick returns the index of the server for a produce (the
 * leader) or a consume (the next follower), -1 when there is none (no leader
 * known for a produce; no server at all for a consume). */
int plog_loadbalance_pick(plog_loadbalance_picker *p, bool produce);

#endif
