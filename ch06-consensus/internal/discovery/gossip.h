/* gossip.h - the membership protocol's messages and their wire codec.
 *
 * Six messages (SWIM's ping, ack and ping-req, Lifeguard's nack, a gossip
 * message that carries only updates, and the full-state push-pull). Every
 * message carries a list of member states: on ping, ack, ping-req, nack and
 * gossip they are the piggybacked updates, on push-pull the sender's whole
 * member list. The codec is pure (no state, no I/O) and strict: decoding checks
 * every length against the buffer and against the limits below, rejects
 * trailing bytes, and answers with one of three distinct errors so a transport
 * can drop and count bad input by kind:
 *   PLOG_EVERSION  the first byte is not PLOG_GOSSIP_VERSION
 *   PLOG_ETOOBIG   more than PLOG_GOSSIP_MAX_MSG bytes
 *   PLOG_ECORRUPT  anything else that is not a well-formed message
 * The byte layout is drawn at the top of gossip.c. */
#ifndef PLOG_GOSSIP_H
#define PLOG_GOSSIP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PLOG_GOSSIP_VERSION 1

/* Limits. Names, addresses and tag keys are 1..N printable ASCII bytes without
 * spaces (0x21..0x7e); tag values any bytes but NUL. A state record is at most
 * PLOG_GOSSIP_MAX_STATE bytes, so a push-pull of PLOG_GOSSIP_MAX_STATES records
 * always fits in PLOG_GOSSIP_MAX_MSG. */
#define PLOG_GOSSIP_MAX_NAME 64       /* node name */
#define PLOG_GOSSIP_MAX_ADDR 128      /* gossip address, e.g. tls+tcp://10.0.0.1:8401 */
#define PLOG_GOSSIP_MAX_TAGS 16       /* key/value pairs per member */
#define PLOG_GOSSIP_MAX_KEY 64        /* one tag key */
#define PLOG_GOSSIP_MAX_VALUE 255     /* one tag value */
#define PLOG_GOSSIP_MAX_TAG_BYTES 512 /* sum of key and value lengths of one member */
#define PLOG_GOSSIP_MAX_STATES 512    /* state records in one message */
#define PLOG_GOSSIP_MAX_STATE                                                                         \
    (1 + 8 + 3 * 1 + 2 * PLOG_GOSSIP_MAX_NAME + PLOG_GOSSIP_MAX_ADDR + 1 + 2 * PLOG_GOSSIP_MAX_TAGS + \
     PLOG_GOSSIP_MAX_TAG_BYTES)
#define PLOG_GOSSIP_MAX_MSG (512 * 1024)

typedef enum {
    PLOG_GOSSIP_PING = 1,      /* are you alive? seq, target = the name expected */
    PLOG_GOSSIP_ACK = 2,       /* yes: seq of the ping (or of the ping-req it answers) */
    PLOG_GOSSIP_PING_REQ = 3,  /* please ping target at target_addr for me, ack me with seq */
    PLOG_GOSSIP_NACK = 4,      /* I relayed your ping-req seq and heard nothing (Lifeguard) */
    PLOG_GOSSIP_GOSSIP = 5,    /* updates only */
    PLOG_GOSSIP_PUSH_PULL = 6, /* my whole member list; flags say join and reply */
} plog_gossip_type;

#define PLOG_GOSSIP_FLAG_JOIN 0x01  /* push-pull: the sender is joining */
#define PLOG_GOSSIP_FLAG_REPLY 0x02 /* push-pull: this answers a push-pull */

typedef enum {
    PLOG_GOSSIP_ALIVE = 1,
    PLOG_GOSSIP_SUSPECT = 2,
    PLOG_GOSSIP_DEAD = 3,
    PLOG_GOSSIP_LEFT = 4,
} plog_gossip_status;

/* One tag: NUL-terminated key and value. */
typedef struct plog_gossip_tag {
    const char *key;
    const char *value;
} plog_gossip_tag;

/* One member state: "name is status at incarnation", said by from (the node
 * that suspects or declares dead; empty for alive and left), with the member's
 * gossip address and tags (addr may be empty on suspect/dead/left updates). */
typedef struct plog_gossip_state {
    uint8_t status; /* plog_gossip_status */
    uint64_t incarnation;
    const char *name;
    const char *from;
    const char *addr;
    const plog_gossip_tag *tags;
    size_t ntags;
} plog_gossip_state;

/* One message. from/from_addr: the sender's name and where to answer it.
 * target: ping (the name the sender expects at the address it pinged) and
 * ping-req (whom to probe), with target_addr on ping-req. Unused strings are ""
 * after decoding; NULL is accepted as "" when encoding. */
typedef struct plog_gossip_msg {
    uint8_t type;  /* plog_gossip_type */
    uint8_t flags; /* PLOG_GOSSIP_FLAG_* (push-pull only) */
    uint32_t seq;
    const char *from;
    const char *from_addr;
    const char *target;
    const char *target_addr;
    const plog_gossip_state *states;
    size_t nstates;
    void *mem_; /* decode: the one allocation behind every pointer above */
} plog_gossip_msg;

/* plog_gossip_state_size returns the encoded size of s in bytes. */
size_t plog_gossip_state_size(const plog_gossip_state *s);

/* plog_gossip_size returns the encoded size of m in bytes. */
size_t plog_gossip_size(const plog_gossip_msg *m);

/* plog_gossip_encode writes m into buf (cap bytes) and sets *len. PLOG_EINVAL
 * when m breaks a limit or a string rule (nothing is ever encoded that the
 * decoder would refuse), PLOG_ETOOBIG when it does not fit in cap or in
 * PLOG_GOSSIP_MAX_MSG. */
int plog_gossip_encode(const plog_gossip_msg *m, uint8_t *buf, size_t cap, size_t *len);

/* plog_gossip_encode_alloc encodes m into a malloc'd buffer of exactly the
 * encoded size; the caller frees *out with free(). */
int plog_gossip_encode_alloc(const plog_gossip_msg *m, uint8_t **out, size_t *len);

/* plog_gossip_decode parses buf[0..len) (borrowed) into *m. On PLOG_OK every
 * pointer in *m points into one allocation that plog_gossip_release() frees;
 * on error *m is untouched. PLOG_EVERSION, PLOG_ETOOBIG, PLOG_ECORRUPT (see
 * above), PLOG_ENOMEM. */
int plog_gossip_decode(const uint8_t *buf, size_t len, plog_gossip_msg *m);

/* plog_gossip_release frees what plog_gossip_decode allocated. NULL or an
 * already released message does nothing. */
void plog_gossip_release(plog_gossip_msg *m);

/* plog_gossip_type_name and plog_gossip_status_name return static names
 * ("ping", "suspect", ...) for traces and logs; "?" when unknown. */
const char *plog_gossip_type_name(int type);
const char *plog_gossip_status_name(int status);

/* plog_gossip_is_valid_name says whether s follows the rule for names,
 * addresses and tag keys: 1..max bytes, each 0x21..0x7e. */
bool plog_gossip_is_valid_name(const char *s, size_t max);

#endif
