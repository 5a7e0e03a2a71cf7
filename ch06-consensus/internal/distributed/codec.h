/* codec.h - Raft messages on the wire: a pinned hand codec.
 *
 * One message per transport datagram, fixed-width big-endian fields in the order
 * of plog_raft_msg, so the format is stated here once and checked by the tests:
 *   u8 version (1), u8 type, u64 from, to, term, index, log_term, commit,
 *   u8 reject, u64 hint_index, hint_term, ctx,
 *   u32 n_entries, then per entry: u64 term, u64 index, u8 type, u32 len, data,
 *   u32 conf length, conf (plog_raft_conf_encode),
 *   u64 offset, u64 total, u32 len, data, u8 done,
 *   u16 length, the sender's Raft address (HOST:PORT; version 2),
 *   u64 the sender's cluster id (0: none yet; version 3, see distributed.c).
 * Protobuf would do, but every field here is a fixed-size integer and the
 * decoder must be strict and bounded: a hand codec is smaller and faster, and
 * the version byte lets it change. */
#ifndef PLOG_DISTRIBUTED_CODEC_H
#define PLOG_DISTRIBUTED_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "internal/raft/raft.h"

#define PLOG_DISTRIBUTED_CODEC_VERSION 3
#define PLOG_DISTRIBUTED_ADDR_MAX 127

/* plog_distributed_msg_size: the encoded size of m sent from from_addr (at most
 * PLOG_DISTRIBUTED_ADDR_MAX bytes are kept). */
size_t plog_distributed_msg_size(const plog_raft_msg *m, const char *from_addr);

/* plog_distributed_msg_encode writes m, sent from from_addr by a node of cluster,
 * into buf (plog_distributed_msg_size bytes). */
void plog_distributed_msg_encode(const plog_raft_msg *m, const char *from_addr, uint64_t cluster,
                                 uint8_t *buf);

/* A decoded message: msg's entries and data point into the decoded buffer, which
 * the decoded struct owns (plog_distributed_decoded_fini frees it). */
typedef struct plog_distributed_decoded {
    plog_raft_msg msg;
    char from_addr[PLOG_DISTRIBUTED_ADDR_MAX + 1]; /* where the sender listens */
    uint64_t cluster;                              /* the sender's cluster id */
    plog_raft_entry *entries;
    uint8_t *buf;
} plog_distributed_decoded;

/* plog_distributed_msg_decode decodes p[0..n) into *d (copying it).
 * PLOG_EVERSION for another version, PLOG_EINVAL when malformed (truncated,
 * trailing bytes, an unknown type, a bad configuration), PLOG_ENOMEM. */
int plog_distributed_msg_decode(const uint8_t *p, size_t n, plog_distributed_decoded *d);
void plog_distributed_decoded_fini(plog_distributed_decoded *d);

#endif
