/* envelope.h - the envelope of every nng message (log.v1.Request, log.v1.Reply of
 * api/v1/log.proto), encoded and decoded by hand so that the server never
 * allocates to read one. The bodies inside are ordinary protobuf messages.
 *
 * Request (client -> server)               Reply (server -> client)
 *   1 method           string (required)     1 code     varint (gRPC Code; 0 omitted)
 *   2 body             bytes                 2 message  string (omitted when empty)
 *   4 client_id        fixed64               3 body     bytes  (the encoded response)
 *   5 seq              varint
 *   6 timeout_ms       varint (0: none)
 * Unknown fields are skipped, so later chapters can add some (field 3, the
 * wall-clock deadline of earlier versions, is one now). */
#ifndef PLOG_RPC_ENVELOPE_H
#define PLOG_RPC_ENVELOPE_H

#include <stddef.h>
#include <stdint.h>

#include <nng/nng.h>
#include <protobuf-c/protobuf-c.h>

/* The methods of service log.v1.Log, named as gRPC names them on the wire. */
#define PLOG_METHODS(X)                                        \
    X(PLOG_METHOD_PRODUCE, "/log.v1.Log/Produce")              \
    X(PLOG_METHOD_CONSUME, "/log.v1.Log/Consume")              \
    X(PLOG_METHOD_CONSUME_STREAM, "/log.v1.Log/ConsumeStream") \
    X(PLOG_METHOD_PRODUCE_STREAM, "/log.v1.Log/ProduceStream") \
    X(PLOG_METHOD_GET_MEMBERS, "/log.v1.Log/GetMembers")       \
    X(PLOG_METHOD_GET_SERVERS, "/log.v1.Log/GetServers")       \
    X(PLOG_METHOD_REMOVE_SERVER, "/log.v1.Log/RemoveServer")

typedef enum {
    PLOG_METHOD_UNKNOWN = 0,
#define X(m, name) m,
    PLOG_METHODS(X)
#undef X
} plog_rpc_method;

/* plog_rpc_method_lookup returns the method called name (len bytes, not
 * NUL-terminated), PLOG_METHOD_UNKNOWN when there is none. */
plog_rpc_method plog_rpc_method_lookup(const char *name, size_t len);

/* plog_rpc_method_name returns the wire name of m (static), "" for UNKNOWN. */
const char *plog_rpc_method_name(plog_rpc_method m);

/* A decoded Request; method and body borrow the buffer that was decoded. */
typedef struct plog_rpc_request {
    const char *method;
    size_t method_len;
    const uint8_t *body;
    size_t body_len;
    uint32_t timeout_ms; /* the client's time left when it sent the request; 0: none */
    uint64_t client_id;
    uint64_t seq;
} plog_rpc_request;

/* plog_rpc_request_decode parses the len bytes at buf into rq. PLOG_EINVAL when
 * they are not a Request: malformed wire format, a known field with the wrong
 * wire type, or no method. */
int plog_rpc_request_decode(const void *buf, size_t len, plog_rpc_request *rq);

/* plog_rpc_request_msg allocates an nng message holding a Request for method with
 * body packed in place by protobuf-c (NULL: empty body). deadline_unix_ms (0: none)
 * is the call's deadline on this machine's clock: it travels as the time left
 * (timeout_ms, at least 1), so that the server needs no clock in common with the
 * client (an absolute time made a server whose clock ran ahead refuse every
 * request). On PLOG_OK *out is the caller's (nng_msg_free, or hand it to nng).
 * PLOG_ENOMEM. */
int plog_rpc_request_msg(const char *method, const ProtobufCMessage *body, uint64_t deadline_unix_ms,
                         uint64_t client_id, uint64_t seq, nng_msg **out);

/* A decoded Reply; message and body borrow the decoded buffer. */
typedef struct plog_rpc_reply {
    int code;
    const char *message;
    size_t message_len;
    const uint8_t *body;
    size_t body_len;
} plog_rpc_reply;

/* plog_rpc_reply_decode parses a Reply. PLOG_EINVAL when malformed. */
int plog_rpc_reply_decode(const void *buf, size_t len, plog_rpc_reply *rp);

/* plog_rpc_reply_begin clears m's body and writes a Reply's code, message and the
 * key and length of a body of body_len bytes, which the caller appends next
 * (nng_msg_append) to complete the reply. PLOG_ENOMEM. */
int plog_rpc_reply_begin(nng_msg *m, int code, const char *message, size_t body_len);

/* plog_rpc_reply_packed writes into m (cleared first) an OK Reply whose body is
 * resp packed by protobuf-c. PLOG_ENOMEM. */
int plog_rpc_reply_packed(nng_msg *m, const ProtobufCMessage *resp);

/* plog_rpc_reply_error writes into m (cleared first) a Reply with code and a
 * printf-style message, no body. PLOG_ENOMEM. */
int plog_rpc_reply_error(nng_msg *m, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* plog_rpc_now_unix_ms returns the wall clock in Unix epoch milliseconds, the clock of
 * a client's deadline_unix_ms. */
uint64_t plog_rpc_now_unix_ms(void);

#endif
