/* store.h - append-only file of checksummed frames (Go: store.go).
 *
 * One thread at a time may change a store (append, flush, truncate, close). The
 * read functions take a const store and change nothing, so any number of threads
 * may read at once while nobody changes it: log.c's rwlock arranges exactly that.
 * The frame layout is drawn at the top of store.c. */
#ifndef PLOG_STORE_H
#define PLOG_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Bytes before the payload of every frame: length u32 BE, CRC-32C u32 BE. */
#define PLOG_STORE_HDR 8
/* Largest payload a frame can carry. */
#define PLOG_STORE_MAX_RECORD ((size_t)UINT32_MAX - PLOG_STORE_HDR)
/* Size of the errmsg buffers the read functions fill. */
#define PLOG_ERRMSG_SIZE 256

typedef struct plog_store plog_store;

/* plog_store_open opens or creates the file at path; appends go to its end
 * (recovery may first cut a torn tail with plog_store_truncate). On PLOG_OK *sp
 * owns the file until plog_store_close(). PLOG_EIO (errmsg holds the reason when
 * errmsg is not NULL), PLOG_ENOMEM. */
int plog_store_open(const char *path, plog_store **sp, char *errmsg, size_t errsz);

/* plog_store_reserve makes room for one frame with a payload of len bytes and
 * points *payload at where the payload goes, inside the store's write buffer.
 * The caller writes exactly len bytes there and then calls plog_store_publish;
 * nothing is visible before. This lets the log encode a record in place. */
int plog_store_reserve(plog_store *s, size_t len, uint8_t **payload);

/* plog_store_publish checksums the len bytes reserved last and makes the frame
 * part of the store. *pos = where the frame starts, *n = its size (header
 * included). */
void plog_store_publish(plog_store *s, size_t len, uint64_t *n, uint64_t *pos);

/* plog_store_append writes one frame holding the len bytes at p (borrowed).
 * Buffered: see plog_store_flush. */
int plog_store_append(plog_store *s, const void *p, size_t len, uint64_t *n, uint64_t *pos);

/* plog_store_flush writes the buffered frames to the kernel (no fsync). */
int plog_store_flush(plog_store *s);

/* plog_store_sync flushes, then fdatasyncs the file. */
int plog_store_sync(plog_store *s);

/* plog_store_read returns a malloc'd copy of the payload of the frame at pos in
 * *out (the caller frees it), *len its size. Sees buffered frames too.
 * PLOG_EOF when pos is at or past the end, PLOG_ECORRUPT when the frame does not
 * fit in the store or fails its checksum, PLOG_EIO, PLOG_ENOMEM; errmsg (may be
 * NULL) gets the reason. */
int plog_store_read(const plog_store *s, uint64_t pos, uint8_t **out, size_t *len, char *errmsg,
                    size_t errsz);

/* plog_store_read_sized is plog_store_read for a caller that knows the frame's
 * size (the index does: the next entry's position minus this one's): one read
 * instead of two. When the frame's header disagrees with size it falls back
 * to plog_store_read. */
int plog_store_read_sized(const plog_store *s, uint64_t pos, uint64_t size, uint8_t **out, size_t *len,
                          char *errmsg, size_t errsz);

/* plog_store_read_at copies n raw bytes starting at pos into p (Go: ReadAt).
 * PLOG_EOF when [pos, pos+n) is not all inside the store. */
int plog_store_read_at(const plog_store *s, uint64_t pos, void *p, size_t n, char *errmsg, size_t errsz);

/* plog_store_frame_check validates the frame at the start of p[0..n): PLOG_OK
 * and *len = payload size when it is complete and its checksum holds,
 * PLOG_EOF when it runs past n, PLOG_ECORRUPT when the checksum fails. */
int plog_store_frame_check(const uint8_t *p, size_t n, size_t *len);

/* plog_store_frame_encode_header writes the 8-byte header of the payload p[0..len)
 * into hdr. */
void plog_store_frame_encode_header(uint8_t hdr[PLOG_STORE_HDR], const uint8_t *p, size_t len);

/* plog_store_size: bytes in the store, buffered frames included.
 * plog_store_flushed: bytes that reached the file (written to the kernel). */
uint64_t plog_store_size(const plog_store *s);
uint64_t plog_store_flushed(const plog_store *s);

/* plog_store_truncate cuts the store to size bytes (recovery of a torn tail).
 * Drops buffered frames past size too. */
int plog_store_truncate(plog_store *s, uint64_t size);

/* plog_store_fd: the file descriptor, borrowed (log.c dups it to fsync outside
 * its lock). plog_store_path: the file name, valid until close. */
int plog_store_fd(const plog_store *s);
const char *plog_store_path(const plog_store *s);

/* plog_store_errmsg: the reason of the last failed append, flush or truncate. */
const char *plog_store_errmsg(const plog_store *s);

/* plog_store_close flushes and frees s (NULL does nothing). s is gone even when
 * it fails (like fclose). */
int plog_store_close(plog_store *s);

/* plog_crc32c: CRC-32C (Castagnoli) of p[0..n), continuing from crc (start
 * with 0). Hardware-accelerated through ISA-L. */
uint32_t plog_crc32c(uint32_t crc, const void *p, size_t n);

#endif
