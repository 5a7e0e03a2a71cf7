/* wire.h - protobuf wire-format primitives for the hot paths that encode and decode
 * envelopes and record batches by hand, without allocating (protobuf-c handles
 * everything else).
 *
 * A protobuf message is a sequence of fields, each a key then a value:
 *   key   varint (field_number << 3 | wire_type)
 *   value wire type 0: varint | 1: 8 bytes little-endian | 2: varint length, then
 *         that many bytes | 5: 4 bytes little-endian (3 and 4, groups, are refused)
 * A varint is 7 bits per byte, least significant group first, high bit = more. */
#ifndef PLOG_RPC_WIRE_H
#define PLOG_RPC_WIRE_H

#include <stddef.h>
#include <stdint.h>

enum { PLOG_WT_VARINT = 0, PLOG_WT_I64 = 1, PLOG_WT_LEN = 2, PLOG_WT_I32 = 5 };

/* One decoded field. For LEN, ptr/len borrow the buffer being parsed; for the
 * numeric types, v holds the value. */
typedef struct plog_rpc_wire_field {
    uint32_t num;
    int type;
    uint64_t v;
    const uint8_t *ptr;
    size_t len;
} plog_rpc_wire_field;

/* plog_rpc_wire_varint_size: bytes the varint encoding of v takes (1..10). */
size_t plog_rpc_wire_varint_size(uint64_t v);

/* plog_rpc_wire_put_varint writes v at p and returns the byte after it. */
uint8_t *plog_rpc_wire_put_varint(uint8_t *p, uint64_t v);

/* plog_rpc_wire_len_size: bytes of a length-delimited field num of len bytes. */
size_t plog_rpc_wire_len_size(uint32_t num, size_t len);

/* plog_rpc_wire_put_len writes the key and length of a length-delimited field (the
 * caller writes the len bytes after it) and returns where they go. */
uint8_t *plog_rpc_wire_put_len(uint8_t *p, uint32_t num, size_t len);

/* plog_rpc_wire_next decodes the field at *p (before end) into f and advances *p.
 * Returns 1 for a field, 0 at end, -1 on malformed input (truncated, a varint
 * over 10 bytes, field number 0, group wire types). */
int plog_rpc_wire_next(const uint8_t **p, const uint8_t *end, plog_rpc_wire_field *f);

/* plog_rpc_wire_record_decode reads an encoded log.v1.Record: value (borrowing buf)
 * and offset. Unknown fields are skipped. 0, or -1 when malformed. */
int plog_rpc_wire_record_decode(const uint8_t *buf, size_t len, const uint8_t **value, size_t *vlen,
                                uint64_t *off);

/* plog_rpc_wire_produce_one recognises the common shape of a unary Produce body:
 * log.v1.ProduceRequest{record = Record{value, offset}}, each field at most once,
 * one-byte keys, lengths of at most 4 bytes, an offset of at most 9, nothing else.
 * Then it sets *value (borrowing buf; NULL when empty) and *vlen and returns 1.
 * Anything else returns 0 (more records, other or repeated fields, unusual
 * encodings, malformed input): the caller decodes it with protobuf-c, which reads
 * every shape recognised here as that one record (handcode_test.c checks it). */
int plog_rpc_wire_produce_one(const uint8_t *buf, size_t len, const uint8_t **value, size_t *vlen);

/* The hot replies, encoded by hand as protobuf-c would (fields in number order, zero
 * values omitted) so the server never decodes the stored records it sends back.
 * internal/rpc/handcode_test.c pins them to protobuf-c on random messages. */

/* PLOG_RPC_WIRE_PRODUCE_RESPONSE_MAX: bytes a ProduceResponse takes at most. */
#define PLOG_RPC_WIRE_PRODUCE_RESPONSE_MAX 22

/* plog_rpc_wire_produce_response writes log.v1.ProduceResponse{offset, count} into
 * buf (PLOG_RPC_WIRE_PRODUCE_RESPONSE_MAX bytes) and returns its length. */
size_t plog_rpc_wire_produce_response(uint8_t *buf, uint64_t offset, uint64_t count);

/* plog_rpc_wire_consume_record_header writes into hdr (16 bytes) the start of a
 * log.v1.ConsumeResponse{record} whose record is the rec_len bytes of an encoded
 * Record that follow it, and returns the header's length. */
size_t plog_rpc_wire_consume_record_header(uint8_t *hdr, size_t rec_len);

/* plog_rpc_wire_consume_batch_size returns the length of a log.v1.ConsumeResponse
 * {records, next_offset, lowest_offset, end_offset} holding the n encoded Records
 * of lens[i] bytes each. Zero offsets are omitted, as protobuf-c does. */
size_t plog_rpc_wire_consume_batch_size(const size_t *lens, size_t n, uint64_t next_offset,
                                        uint64_t lowest_offset, uint64_t end_offset);

/* plog_rpc_wire_consume_batch_put writes that response at p (exactly
 * plog_rpc_wire_consume_batch_size bytes) and returns the byte after it. */
uint8_t *plog_rpc_wire_consume_batch_put(uint8_t *p, const uint8_t *const *recs, const size_t *lens, size_t n,
                                         uint64_t next_offset, uint64_t lowest_offset, uint64_t end_offset);

#endif
