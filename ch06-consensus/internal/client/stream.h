/* stream.h - the book's two streams on top of request/reply (Go: the
 * Log_ConsumeStreamClient and Log_ProduceStreamClient of the generated code).
 *
 * A consumer is an iterator over ConsumeStream long polls: it asks for a batch
 * at its offset, hands the records out one by one, and asks again; following the
 * log, an empty batch after the server's wait is not an error, just another poll.
 *
 * A producer pipelines ProduceStream requests: it packs records into batches and
 * keeps up to `window` batches in flight on their own contexts; acknowledgements
 * are delivered in the order the records were sent, on the caller's thread (from
 * plog_client_producer_send or plog_client_producer_flush). Records inside one batch are
 * appended contiguously and in order; separate batches in flight may be appended
 * in another order (like concurrent Produce calls): use window 1 when the order of
 * all records must be the order of sending. Once a batch's failure has been
 * delivered, no later batch is sent (each is acknowledged ABORTED, "not sent");
 * with window > 1 the batches already in flight then still land. With window 1,
 * where a batch goes only after the one before it was acknowledged, the records in
 * the log are exactly the ones acknowledged, plus perhaps the failed batch's (a
 * lost connection cannot tell), never a later one. */
#ifndef PLOG_STREAM_H
#define PLOG_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "internal/client/client.h"

typedef struct plog_client_consumer plog_client_consumer;

typedef struct plog_client_consumer_config {
    uint32_t max_records; /* per poll; 0: the server's default (1024) */
    uint32_t max_bytes;   /* per poll; 0: the server's default (1 MiB) */
    uint32_t wait_ms;     /* long-poll wait while following; 0: 5000 */
    bool follow;          /* wait for new records instead of ending at the end */
} plog_client_consumer_config;

/* plog_client_consumer_open starts reading c's log at offset from; nothing is sent
 * until the first plog_client_consumer_next. c must outlive it. cfg may be NULL. */
int plog_client_consumer_open(plog_client *c, uint64_t from, const plog_client_consumer_config *cfg,
                              plog_client_consumer **out);

/* plog_client_consumer_next returns the next record: value and len borrow the consumer's
 * buffer until the next call or close; off is its offset. Without follow,
 * OUT_OF_RANGE at the end of the log ("end of log at N"). Following, it returns
 * only records or errors: each poll waits on the server, so this never spins
 * (a poll refused RESOURCE_EXHAUSTED, too many parked, is retried after 200 ms).
 * An error (UNAVAILABLE...) leaves the consumer usable: the next call polls again
 * from the same offset. */
int plog_client_consumer_next(plog_client_consumer *it, const uint8_t **value, size_t *len, uint64_t *off,
                              plog_rpc_status *st);

/* plog_client_consumer_is_at_end: true when the last plog_client_consumer_next returned
 * OUT_OF_RANGE because it read to the end of the log (not following); false
 * after any other result, including the server's OUT_OF_RANGE for an offset
 * below the log's lowest. Callers tell the two apart by this, not by the text. */
bool plog_client_consumer_is_at_end(const plog_client_consumer *it);

/* plog_client_consumer_bounds: the log's lowest offset and the offset its next record
 * will get (the end consumers can read up to), as the server saw them when it
 * answered the last poll; both 0 before the first. A consumer opened at
 * UINT64_MAX reads nothing and ends at once: a cheap way to ask for the bounds. */
void plog_client_consumer_bounds(const plog_client_consumer *it, uint64_t *lowest, uint64_t *end);

/* plog_client_consumer_offset: the offset the next record will have. */
uint64_t plog_client_consumer_offset(const plog_client_consumer *it);

void plog_client_consumer_close(plog_client_consumer *it);

typedef struct plog_client_producer plog_client_producer;

/* A producer's batch bounds by default: records, and bytes of values. */
#define PLOG_CLIENT_BATCH_RECORDS 512
#define PLOG_CLIENT_BATCH_BYTES (256u << 10)
/* A record's bytes in a ProduceRequest beyond its value's: the records field's and
 * the value field's tags (1 byte each) and lengths (varints, up to 10). A batch goes
 * before its request, so counted, would pass half the client's max_msg_bytes. */
#define PLOG_CLIENT_RECORD_FRAMING_MAX 22

/* Called in order for each batch: records [first, first + n) were appended
 * (code OK), or the batch of n records failed with code and msg. */
typedef void (*plog_client_producer_ack_fn)(void *arg, uint64_t first, size_t n, int code, const char *msg);

typedef struct plog_client_producer_config {
    unsigned window;                 /* batches in flight; 0: 8 */
    unsigned batch_records;          /* records per batch; 0: 512 */
    size_t batch_bytes;              /* value bytes per batch; 0: 256 KiB */
    plog_client_producer_ack_fn ack; /* may be NULL */
    void *arg;
} plog_client_producer_config;

/* plog_client_producer_open creates a producer on c (which must outlive it). */
int plog_client_producer_open(plog_client *c, const plog_client_producer_config *cfg,
                              plog_client_producer **out, plog_rpc_status *st);

/* plog_client_producer_send copies value into the current batch; a full batch is sent,
 * first waiting (and delivering acknowledgements) while the window is full.
 * Returns the first error any batch met so far (st says which), else OK. A value
 * whose request (value and envelope) would be over the client's max_msg_bytes is
 * refused at once, RESOURCE_EXHAUSTED, and not sent (the batches go on). */
int plog_client_producer_send(plog_client_producer *p, const void *value, size_t len, plog_rpc_status *st);

/* plog_client_producer_flush sends the partial batch and waits for every acknowledgement.
 * Returns the first error any batch met, else OK. */
int plog_client_producer_flush(plog_client_producer *p, plog_rpc_status *st);

/* plog_client_producer_close flushes (errors are dropped: flush first to see them) and
 * frees p. NULL does nothing. */
void plog_client_producer_close(plog_client_producer *p);

#endif
