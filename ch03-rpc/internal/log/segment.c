/* segment.c - a store and an index with a base offset (Go: segment.go).
 *
 * Files: <dir>/<base>.store and <dir>/<base>.index, base written as 20 decimal
 * digits so that `ls` lists segments in offset order (00000000000000000016.store).
 * Record base + i is frame i of the store and entry i of the index.
 *
 * Recovery (plog_segment_open). The store is the truth and the index a cache of
 * it: the index is trusted only when it passes a check that reads the index and
 * the store's last frame only (entry 0 at 0, every entry in order inside the
 * store, the last entry numbered n-1 whose frame is valid and ends exactly at the
 * end of the store, and for a sealed segment exactly the records it must hold),
 * which is what a clean close leaves. Otherwise the store is scanned frame by frame and
 * the index rewritten from it. A frame that fails its checksum is either
 *   - damage inside the segment: a valid frame follows it (at the place its own
 *     length gives, at the place the old index gives for the next record, or,
 *     with neither, anywhere after it: scan_for_frame). It stays indexed,
 *     reading it returns PLOG_ECORRUPT, the scan goes on; or
 *   - the end of what survived: a torn write, with no valid frame anywhere
 *     after it (a crash leaves nothing written after its last write). In the
 *     last segment the store is cut back to the end of the last valid frame
 *     (logged as "truncated torn tail"). A sealed segment is never cut: its
 *     missing records read as PLOG_ECORRUPT.
 * When the last segment keeps fewer records than the index a close left listed
 * (whole frames cut from the store, torn or not) the loss is logged as "index
 * lists records the store lacks" with both counts. An index a crash left
 * preallocated is not compared (see plog_index_listed). */
#define _GNU_SOURCE /* MAP_POPULATE */
#include "internal/log/segment.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "internal/err/alloc.h"
#include "internal/err/err.h"
#include "internal/log/io.h"

#define IO plog_io_get()
#include "internal/log/index.h"

struct plog_segment {
    plog_store *store;
    plog_index *index;
    uint64_t base;
    uint64_t next; /* offset after the last record */
    uint64_t max_store_bytes;
    const plog_log_config *c; /* the log's, borrowed */
    bool sealed;
    bool dirty; /* changed since open: close(sync) must fsync it */
    char errmsg[PLOG_ERRMSG_SIZE];
};

void plog_log_report(const plog_log_config *c, plog_log_report_level level, const char *fmt, ...)
{
    static const char *const names[] = {"info", "info", "warn", "error"};
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (c->report.fn != NULL)
        c->report.fn(c->report.arg, level, msg);
    else
        fprintf(stderr, "level=%s %s\n", names[level <= PLOG_LOG_REPORT_ERROR ? level : PLOG_LOG_REPORT_INFO],
                msg);
}

/* record_offset finds the offset field (2, a varint) of the encoded Record
 * p[0..n): 0 when absent (proto3 leaves zero out), false when p does not parse.
 * Reads check it against the offset asked for, so that an index pointing at
 * the wrong frame (a stale or zeroed page after a power loss) is an error and
 * never serves another offset's record. */
static bool record_offset(const uint8_t *p, size_t n, uint64_t *off)
{
    uint64_t v = 0;
    size_t i = 0;
    *off = 0;
    while (i < n) {
        uint64_t key = 0, x = 0;
        for (int sh = 0;; sh += 7) {
            if (i >= n || sh > 63)
                return false;
            key |= (uint64_t)(p[i] & 0x7f) << sh;
            if ((p[i++] & 0x80) == 0)
                break;
        }
        switch (key & 7) {
        case 0: /* varint */
        case 2: /* length-delimited: a varint length, then the bytes */
            for (int sh = 0;; sh += 7) {
                if (i >= n || sh > 63)
                    return false;
                x |= (uint64_t)(p[i] & 0x7f) << sh;
                if ((p[i++] & 0x80) == 0)
                    break;
            }
            if ((key & 7) == 2) {
                if (x > n - i)
                    return false;
                i += (size_t)x;
            } else if (key >> 3 == 2) {
                v = x;
            }
            break;
        case 1:
            if (n - i < 8)
                return false;
            i += 8;
            break;
        case 5:
            if (n - i < 4)
                return false;
            i += 4;
            break;
        default:
            return false;
        }
    }
    *off = v;
    return true;
}

/* offset_ok: the payload p[0..n) is the record of offset want. */
static bool offset_ok(const uint8_t *p, size_t n, uint64_t want)
{
    uint64_t got;
    return record_offset(p, n, &got) && got == want;
}

void plog_segment_path(char *buf, size_t size, const char *dir, uint64_t base, const char *ext)
{
    snprintf(buf, size, "%s/%020" PRIu64 "%s", dir, base, ext);
}

/* clean_index reports whether the index may be trusted as it is (see the top
 * of the file). want: records the segment must hold, UINT64_MAX when unknown.
 * It reads one frame, not the store: a clean reopen costs no scan. */
static bool clean_index(const plog_segment *seg, uint64_t size, uint64_t want)
{
    uint64_t n = plog_index_entries(seg->index);
    if (want != UINT64_MAX && n != want)
        return false;
    if (n == 0)
        return size == 0;
    uint32_t rel;
    uint64_t pos;
    if (plog_index_read(seg->index, 0, &rel, &pos) != PLOG_OK || rel != 0 || pos != 0)
        return false;
    if (plog_index_read(seg->index, -1, &rel, &pos) != PLOG_OK || rel != n - 1 || pos >= size)
        return false;
    /* Every entry, not only the ends: after a power loss the middle of an
     * unsynced index can be zeros or stale while both ends look right. */
    if (!plog_index_consistent(seg->index, size))
        return false;
    uint8_t *buf;
    size_t len;
    if (plog_store_read(seg->store, pos, &buf, &len, NULL, 0) != PLOG_OK)
        return false;
    free(buf);
    return pos + PLOG_STORE_HDR + len == size;
}

static bool valid_at(const uint8_t *map, uint64_t size, uint64_t q)
{
    size_t len;
    return q < size && plog_store_frame_check(map + q, (size_t)(size - q), &len) == PLOG_OK;
}

/* scan_for_frame looks for the first valid frame after the damaged record at p
 * (offset first - 1) when neither its length nor an old index says where the
 * next one starts: a length field hit, and no index, or one a power loss left
 * unusable (the active segment's index is not fsynced). A frame at c counts
 * only if its Record carries an offset from first on, below limit, and no
 * further than the records [p, c) can hold (a frame takes at least
 * PLOG_STORE_HDR bytes): *q = c, *off = that offset. The offset is read
 * before the checksum is computed, so most positions cost a few comparisons;
 * the scan stops at the first frame, so it reads on past the damage only
 * when nothing valid follows it (a torn tail, cut as before). */
static bool scan_for_frame(const uint8_t *map, uint64_t size, uint64_t p, uint64_t first, uint64_t limit,
                           uint64_t *q, uint64_t *off)
{
    for (uint64_t c = p + PLOG_STORE_HDR; c + PLOG_STORE_HDR <= size; c++) {
        uint64_t len =
            (uint64_t)map[c] << 24 | (uint64_t)map[c + 1] << 16 | (uint64_t)map[c + 2] << 8 | map[c + 3];
        uint64_t o;
        size_t l;
        /* A Record from offset 1 on is at least 2 bytes (tag, varint). */
        if (len < 2 || len > size - c - PLOG_STORE_HDR ||
            !record_offset(map + c + PLOG_STORE_HDR, (size_t)len, &o) || o < first || o >= limit ||
            o - first >= (c - p) / PLOG_STORE_HDR ||
            plog_store_frame_check(map + c, (size_t)(size - c), &l) != PLOG_OK)
            continue;
        *q = c;
        *off = o;
        return true;
    }
    return false;
}

/* resync finds where the frame after the damaged one at p starts, or returns
 * false: the damage runs to the end. *k = records in [p, *q): 1, or more when
 * only scan_for_frame found the next frame and it is further on. old_n:
 * entries of the index before the scan began overwriting it (entries >= i are
 * still the old ones). limit: the offset after the segment's last record,
 * UINT64_MAX for the last segment. */
static bool resync(const plog_segment *seg, const uint8_t *map, uint64_t size, uint64_t p, uint64_t i,
                   uint64_t old_n, uint64_t limit, uint64_t *q, uint64_t *k)
{
    bool last_of_sealed = limit != UINT64_MAX && seg->base + i + 1 == limit;
    *k = 1;
    if (size - p >= PLOG_STORE_HDR) {
        uint64_t len =
            (uint64_t)map[p] << 24 | (uint64_t)map[p + 1] << 16 | (uint64_t)map[p + 2] << 8 | map[p + 3];
        uint64_t end = p + PLOG_STORE_HDR + len;
        if (end <= size && (valid_at(map, size, end) || (last_of_sealed && end == size))) {
            *q = end;
            return true;
        }
    }
    if (i + 1 < old_n) {
        uint32_t rel;
        uint64_t pos;
        if (plog_index_read_raw(seg->index, i + 1, &rel, &pos) == PLOG_OK && rel == i + 1 && pos > p &&
            (valid_at(map, size, pos) || (last_of_sealed && pos == size))) {
            *q = pos;
            return true;
        }
    }
    uint64_t off;
    if (!last_of_sealed && scan_for_frame(map, size, p, seg->base + i + 1, limit, q, &off)) {
        *k = off - (seg->base + i);
        return true;
    }
    return false;
}

static int recover(plog_segment *seg, uint64_t sealed_next, char *errmsg, size_t errsz)
{
    const char *spath = plog_store_path(seg->store);
    bool last = sealed_next == PLOG_SEGMENT_ACTIVE;
    uint64_t want = last ? UINT64_MAX : sealed_next - seg->base;
    uint64_t size = plog_store_size(seg->store);
    if (clean_index(seg, size, want)) {
        seg->next = last ? seg->base + plog_index_entries(seg->index) : sealed_next;
        return PLOG_OK;
    }
    uint8_t *map = NULL;
    if (size > 0) {
        /* MAP_POPULATE: the scan touches every page anyway, one call is faster
         * than a fault per page. */
        map = IO->mmap(NULL, size, PROT_READ, MAP_PRIVATE | MAP_POPULATE, plog_store_fd(seg->store), 0);
        if (map == MAP_FAILED) {
            plog_errf(errmsg, errsz, "mmap %s: %s", spath, strerror(errno));
            return PLOG_EIO;
        }
    }
    int rv = PLOG_OK;

    uint64_t old_n = plog_index_entries(seg->index);
    /* Records the old index claims (if a close left it), counted before the
     * scan overwrites it. */
    uint64_t listed = last ? plog_index_listed(seg->index) : 0;
    /* A sealed segment's index was opened read-only at its size. */
    rv = plog_index_grow(seg->index, old_n);
    if (rv != PLOG_OK) {
        plog_errf(errmsg, errsz, "%s", plog_index_errmsg(seg->index));
        goto done;
    }
    plog_index_set_entries(seg->index, 0);
    seg->dirty = true;
    uint64_t p = 0, i = 0;
    while (p < size && i < want) {
        size_t len;
        uint64_t q, k = 1;
        int frv = plog_store_frame_check(map + p, (size_t)(size - p), &len);
        if (frv == PLOG_OK) {
            q = p + PLOG_STORE_HDR + len;
        } else if (resync(seg, map, size, p, i, old_n, last ? UINT64_MAX : sealed_next, &q, &k)) {
            if (k == 1)
                plog_log_report(seg->c, PLOG_LOG_REPORT_WARN,
                                "msg=\"corrupt record\" file=%s pos=%" PRIu64 " offset=%" PRIu64 "", spath, p,
                                seg->base + i);
            else
                plog_log_report(seg->c, PLOG_LOG_REPORT_WARN,
                                "msg=\"corrupt records\" file=%s pos=%" PRIu64 " offset=%" PRIu64
                                " count=%" PRIu64 " next=%" PRIu64 "",
                                spath, p, seg->base + i, k, q);
        } else {
            break;
        }
        /* k records in [p, q): the first at p, where the damage begins; the
         * others' frames cannot be found, so each gets the next byte (k <=
         * (q - p) / PLOG_STORE_HDR), keeping the positions rising. Each reads
         * as PLOG_ECORRUPT. */
        for (uint64_t j = 0; j < k; j++, i++) {
            if (i >= plog_index_capacity(seg->index)) {
                rv = plog_index_grow(seg->index, i < 1024 ? 1024 : i * 2);
                if (rv != PLOG_OK) {
                    plog_errf(errmsg, errsz, "%s", plog_index_errmsg(seg->index));
                    goto done;
                }
            }
            /* rel fits in a u32: log.c caps a segment at 2^32 records (and a
             * store would need over 32 GiB of frames to exceed it here). */
            rv = plog_index_write(seg->index, (uint32_t)i, p + j);
            if (rv != PLOG_OK) {
                plog_errf(errmsg, errsz, "%s", plog_index_errmsg(seg->index));
                goto done;
            }
        }
        p = q;
    }
    if (last) {
        if (p < size) {
            plog_log_report(seg->c, PLOG_LOG_REPORT_WARN,
                            "msg=\"truncated torn tail\" file=%s pos=%" PRIu64 " dropped=%" PRIu64 "", spath,
                            p, size - p);
            rv = plog_store_truncate(seg->store, p);
            if (rv != PLOG_OK) {
                plog_errf(errmsg, errsz, "%s", plog_store_errmsg(seg->store));
                goto done;
            }
        }
        /* Whole frames gone from the end of the store (cut at a frame
         * boundary, or emptied) leave no torn bytes to report: only the
         * index still knows they were there. */
        if (listed > i)
            plog_log_report(seg->c, PLOG_LOG_REPORT_WARN,
                            "msg=\"index lists records the store lacks\" "
                            "file=%s indexed=%" PRIu64 " stored=%" PRIu64 "",
                            spath, listed, i);
        /* Their entries are still in the mapping after the rewritten ones:
         * zeroed, a crash before the next close cannot show them (were the
         * index full, its file would end at them, as after a close). */
        plog_index_clear_dropped(seg->index, listed);
        seg->next = seg->base + i;
    } else {
        if (i < want)
            plog_log_report(seg->c, PLOG_LOG_REPORT_WARN,
                            "msg=\"damaged sealed segment\" file=%s pos=%" PRIu64 " missing=%" PRIu64 "",
                            spath, p, want - i);
        else if (p < size)
            plog_log_report(seg->c, PLOG_LOG_REPORT_WARN,
                            "msg=\"sealed segment longer than its records\" "
                            "file=%s pos=%" PRIu64 " extra=%" PRIu64 "",
                            spath, p, size - p);
        seg->next = sealed_next;
    }
done:
    if (map != NULL)
        IO->munmap(map, size);
    return rv;
}

int plog_segment_open(const char *dir, uint64_t base, const plog_log_config *c, uint64_t sealed_next,
                      plog_segment **sp, char *errmsg, size_t errsz)
{
    char path[4096];
    plog_segment *seg = plog_calloc(1, sizeof *seg);
    if (seg == NULL)
        return PLOG_ENOMEM;
    seg->base = seg->next = base;
    seg->max_store_bytes = c->segment.max_store_bytes;
    seg->c = c;
    plog_segment_path(path, sizeof path, dir, base, ".store");
    int rv = plog_store_open(path, &seg->store, errmsg, errsz);
    if (rv != PLOG_OK)
        goto fail;
    plog_segment_path(path, sizeof path, dir, base, ".index");
    /* A sealed segment's index is mapped read-only at its size; only an active
     * one is grown to max_index_bytes (and cut back on close). */
    rv = plog_index_open(path, sealed_next == PLOG_SEGMENT_ACTIVE ? c->segment.max_index_bytes : 0,
                         &seg->index, errmsg, errsz);
    if (rv != PLOG_OK)
        goto fail;
    rv = recover(seg, sealed_next, errmsg, errsz);
    if (rv != PLOG_OK)
        goto fail;
    if (sealed_next != PLOG_SEGMENT_ACTIVE) {
        rv = plog_segment_seal(seg);
        if (rv != PLOG_OK) {
            plog_errf(errmsg, errsz, "%s", seg->errmsg);
            goto fail;
        }
    }
    *sp = seg;
    return PLOG_OK;
fail:
    plog_index_close(seg->index, false);
    plog_store_close(seg->store);
    free(seg);
    return rv;
}

static size_t varint_size(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80)
        v >>= 7, n++;
    return n;
}

static uint8_t *put_varint(uint8_t *p, uint64_t v)
{
    while (v >= 0x80) {
        *p++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *p++ = (uint8_t)v;
    return p;
}

/* The Record of this chapter (value = 1, offset = 2) encoded by hand, byte for
 * byte what protobuf-c writes (proto3: fields in number order, zero values
 * left out), because protobuf-c's table-driven get_packed_size + pack were a
 * quarter of the append profile. Used only while Record has exactly these two
 * fields and no unknown ones: a chapter that adds fields gets protobuf-c. */
static bool fast_record(const Log__V1__Record *rec)
{
    return log__v1__record__descriptor.n_fields == 2 && rec->base.n_unknown_fields == 0;
}

static size_t fast_size(const Log__V1__Record *rec)
{
    size_t n = 0;
    if (rec->value.len > 0)
        n += 1 + varint_size(rec->value.len) + rec->value.len;
    if (rec->offset != 0)
        n += 1 + varint_size(rec->offset);
    return n;
}

static void fast_pack(const Log__V1__Record *rec, uint8_t *p)
{
    if (rec->value.len > 0) {
        *p++ = 1 << 3 | 2; /* field 1, length-delimited */
        p = put_varint(p, rec->value.len);
        memcpy(p, rec->value.data, rec->value.len);
        p += rec->value.len;
    }
    if (rec->offset != 0) {
        *p++ = 2 << 3 | 0; /* field 2, varint */
        put_varint(p, rec->offset);
    }
}

int plog_segment_append(plog_segment *seg, Log__V1__Record *rec, uint64_t *off)
{
    if (seg->sealed)
        return PLOG_EOF;
    /* Room in the index first (it may need a block): then nothing can fail
     * after the frame is in the store. */
    int irv = plog_index_prepare(seg->index);
    if (irv != PLOG_OK) {
        if (irv == PLOG_EIO)
            plog_errf(seg->errmsg, sizeof seg->errmsg, "%s", plog_index_errmsg(seg->index));
        return irv;
    }
    rec->offset = seg->next;
    bool fast = fast_record(rec);
    size_t len = fast ? fast_size(rec) : log__v1__record__get_packed_size(rec);
    uint8_t *dst;
    int rv = plog_store_reserve(seg->store, len, &dst);
    if (rv != PLOG_OK) {
        if (rv == PLOG_EIO)
            plog_errf(seg->errmsg, sizeof seg->errmsg, "%s", plog_store_errmsg(seg->store));
        return rv;
    }
    if (fast)
        fast_pack(rec, dst);
    else
        log__v1__record__pack(rec, dst);
    uint64_t n, pos;
    plog_store_publish(seg->store, len, &n, &pos);
    /* Cannot fail: plog_index_prepare succeeded above. */
    plog_index_write(seg->index, (uint32_t)(seg->next - seg->base), pos);
    *off = seg->next++;
    seg->dirty = true;
    return PLOG_OK;
}

int plog_segment_read(const plog_segment *seg, uint64_t off, uint8_t **buf, size_t *len, char *errmsg,
                      size_t errsz)
{
    uint64_t rel = off - seg->base;
    if (rel >= plog_index_entries(seg->index)) {
        plog_errf(errmsg, errsz, "%s: record %" PRIu64 " is missing (damaged segment)",
                  plog_store_path(seg->store), off);
        return PLOG_ECORRUPT;
    }
    uint64_t pos = plog_index_pos(seg->index, rel);
    uint64_t end = rel + 1 < plog_index_entries(seg->index) ? plog_index_pos(seg->index, rel + 1)
                                                            : plog_store_size(seg->store);
    int rv = end > pos ? plog_store_read_sized(seg->store, pos, end - pos, buf, len, errmsg, errsz)
                       : plog_store_read(seg->store, pos, buf, len, errmsg, errsz);
    if (rv == PLOG_EOF) {
        plog_errf(errmsg, errsz, "%s: record %" PRIu64 " indexed at %" PRIu64 " past the end",
                  plog_store_path(seg->store), off, pos);
        return PLOG_ECORRUPT;
    }
    if (rv == PLOG_OK && !offset_ok(*buf, *len, off)) {
        free(*buf);
        *buf = NULL;
        plog_errf(errmsg, errsz,
                  "%s: the frame at %" PRIu64 " indexed for record %" PRIu64
                  " is another record (index out of step with the store)",
                  plog_store_path(seg->store), pos, off);
        return PLOG_ECORRUPT;
    }
    return rv;
}

int plog_segment_read_span(const plog_segment *seg, uint64_t off, size_t max_n, size_t max_bytes,
                           uint8_t **buf, size_t *cap, const uint8_t **rec, size_t *len, size_t *n,
                           char *errmsg, size_t errsz)
{
    const char *spath = plog_store_path(seg->store);
    uint64_t rel = off - seg->base;
    uint64_t nidx = plog_index_entries(seg->index);
    uint64_t size = plog_store_size(seg->store);
    if (rel >= nidx) {
        plog_errf(errmsg, errsz, "%s: record %" PRIu64 " is missing (damaged segment)", spath, off);
        return PLOG_ECORRUPT;
    }
    if (max_n == 0)
        max_n = 1;
    uint64_t k_max = nidx - rel < max_n ? nidx - rel : max_n;
    uint64_t start = plog_index_pos(seg->index, rel);
    uint64_t end = rel + k_max < nidx ? plog_index_pos(seg->index, rel + k_max) : size;
    uint64_t first_end = rel + 1 < nidx ? plog_index_pos(seg->index, rel + 1) : size;
    if (start >= size || end > size || end < start || first_end > size || first_end <= start) {
        /* An index that disagrees with its store: read record by record. */
        end = first_end = size;
        k_max = 1;
        if (start >= size) {
            plog_errf(errmsg, errsz, "%s: record %" PRIu64 " indexed at %" PRIu64 " past the end", spath, off,
                      start);
            return PLOG_ECORRUPT;
        }
    }
    uint64_t budget = max_bytes + k_max * PLOG_STORE_HDR;
    if (budget < max_bytes)
        budget = UINT64_MAX;
    uint64_t want = end - start;
    if (want > budget)
        want = budget > first_end - start ? budget : first_end - start;
    if (want > SIZE_MAX)
        return PLOG_ENOMEM;
    if (*cap < want) {
        uint8_t *nb = plog_realloc(*buf, (size_t)want);
        if (nb == NULL)
            return PLOG_ENOMEM;
        *buf = nb;
        *cap = (size_t)want;
    }
    int rv = plog_store_read_at(seg->store, start, *buf, (size_t)want, errmsg, errsz);
    if (rv != PLOG_OK)
        return rv == PLOG_EOF ? PLOG_ECORRUPT : rv;

    /* Frames are back to back, so the index is consulted only at the end of
     * the span; should it disagree (a damaged sealed segment), the span is
     * redone checking each record's position. */
    bool check_each = false;
again:;
    size_t p = 0, k = 0, total = 0;
    while (k < k_max) {
        size_t l;
        if (check_each && k > 0 && plog_index_pos(seg->index, rel + k) != start + p)
            break;
        int frv = plog_store_frame_check(*buf + p, (size_t)want - p, &l);
        if (frv == PLOG_OK && !offset_ok(*buf + p + PLOG_STORE_HDR, l, off + k))
            frv = PLOG_EINVAL; /* a valid frame, but another offset's */
        if (frv != PLOG_OK) {
            if (k > 0)
                break;
            plog_errf(errmsg, errsz, "%s: %s in frame at %" PRIu64, spath,
                      frv == PLOG_EOF        ? "truncated frame"
                      : frv == PLOG_ECORRUPT ? "checksum mismatch"
                                             : "another record (index out of step with the store)",
                      start);
            return PLOG_ECORRUPT;
        }
        if (k > 0 && total + l > max_bytes)
            break;
        rec[k] = *buf + p + PLOG_STORE_HDR;
        len[k] = l;
        total += l;
        p += PLOG_STORE_HDR + l;
        k++;
    }
    if (!check_each && rel + k < nidx && plog_index_pos(seg->index, rel + k) != start + p) {
        check_each = true;
        goto again;
    }
    *n = k;
    return PLOG_OK;
}

int plog_segment_flush(plog_segment *seg)
{
    int rv = plog_store_flush(seg->store);
    if (rv != PLOG_OK)
        plog_errf(seg->errmsg, sizeof seg->errmsg, "%s", plog_store_errmsg(seg->store));
    return rv;
}

int plog_segment_seal(plog_segment *seg)
{
    int rv = plog_segment_flush(seg);
    if (rv != PLOG_OK)
        return rv;
    rv = plog_index_seal(seg->index);
    if (rv != PLOG_OK) {
        plog_errf(seg->errmsg, sizeof seg->errmsg, "%s", plog_index_errmsg(seg->index));
        return rv;
    }
    seg->sealed = true;
    return PLOG_OK;
}

int plog_segment_sync(plog_segment *seg)
{
    int rv = plog_store_sync(seg->store);
    if (rv != PLOG_OK) {
        plog_errf(seg->errmsg, sizeof seg->errmsg, "%s", plog_store_errmsg(seg->store));
        return rv;
    }
    if (IO->fdatasync(plog_index_fd(seg->index)) != 0) {
        plog_errf(seg->errmsg, sizeof seg->errmsg, "fdatasync index of %s: %s", plog_store_path(seg->store),
                  strerror(errno));
        return PLOG_EIO;
    }
    return PLOG_OK;
}

int plog_segment_rewind(plog_segment *seg, uint64_t next)
{
    if (next >= seg->next && !seg->sealed)
        return PLOG_OK;
    uint64_t rel = next - seg->base;
    uint64_t size =
        rel < plog_index_entries(seg->index) ? plog_index_pos(seg->index, rel) : plog_store_size(seg->store);
    /* Unseal first, as it is the step that may need space: when it fails
     * the segment stays sealed (the next append rolls) and is cut anyway. */
    bool unseal = seg->sealed &&
                  plog_index_grow(seg->index, seg->c->segment.max_index_bytes / PLOG_INDEX_ENTRY) == PLOG_OK;
    int rv = plog_store_truncate(seg->store, size);
    if (rv != PLOG_OK) {
        plog_errf(seg->errmsg, sizeof seg->errmsg, "%s", plog_store_errmsg(seg->store));
        return rv;
    }
    uint64_t old_n = plog_index_entries(seg->index);
    plog_index_set_entries(seg->index, rel);
    plog_index_clear_dropped(seg->index, old_n);
    seg->next = next;
    seg->dirty = true;
    if (unseal) {
        seg->sealed = false;
    } else if (seg->sealed && (rv = plog_index_seal(seg->index)) != PLOG_OK) {
        plog_errf(seg->errmsg, sizeof seg->errmsg, "%s", plog_index_errmsg(seg->index));
        return rv;
    }
    return PLOG_OK;
}

bool plog_segment_is_maxed(const plog_segment *seg)
{
    return seg->sealed || plog_store_size(seg->store) >= seg->max_store_bytes ||
           plog_index_entries(seg->index) >= plog_index_capacity(seg->index);
}

uint64_t plog_segment_base(const plog_segment *seg)
{
    return seg->base;
}

uint64_t plog_segment_next(const plog_segment *seg)
{
    return seg->next;
}

const plog_store *plog_segment_store(const plog_segment *seg)
{
    return seg->store;
}

void plog_segment_fds(const plog_segment *seg, int *store_fd, int *index_fd)
{
    *store_fd = plog_store_fd(seg->store);
    *index_fd = plog_index_fd(seg->index);
}

const char *plog_segment_errmsg(const plog_segment *seg)
{
    return seg->errmsg;
}

/* drop_unwritten cuts the index and the store of seg to the whole frames that
 * reached the file, when a close could not write the rest (a full disk). Those
 * records were never acknowledged: the flush that failed is what a commit waits
 * for. Left in the index, they made the next open warn "index lists records
 * the store lacks" and "truncated torn tail", the words of real damage. */
static void drop_unwritten(plog_segment *seg)
{
    uint64_t in_file = plog_store_flushed(seg->store), end = plog_store_size(seg->store);
    uint64_t n = plog_index_entries(seg->index), keep = n;
    while (keep > 0 && end > in_file)
        end = plog_index_pos(seg->index, --keep); /* where frame keep starts and keep - 1 ends */
    if (end >= plog_store_size(seg->store))
        return;
    plog_index_set_entries(seg->index, keep);
    plog_store_truncate(seg->store, end);
    plog_log_report(seg->c, PLOG_LOG_REPORT_WARN,
                    "msg=\"dropped records never written\" file=%s records=%" PRIu64 " err=\"%s\"",
                    plog_store_path(seg->store), n - keep, plog_store_errmsg(seg->store));
}

int plog_segment_close(plog_segment *seg, bool sync)
{
    if (seg == NULL)
        return PLOG_OK;
    /* A segment untouched since open has nothing of ours to sync; with many
     * sealed segments that would be two fsyncs each on every close. */
    sync = sync && seg->dirty;
    int rv = sync ? plog_store_sync(seg->store) : plog_store_flush(seg->store);
    if (rv != PLOG_OK && !seg->sealed)
        drop_unwritten(seg);
    int rv2 = plog_store_close(seg->store);
    int rv3 = plog_index_close(seg->index, sync);
    free(seg);
    return rv != PLOG_OK ? rv : rv2 != PLOG_OK ? rv2 : rv3;
}

int plog_segment_remove(plog_segment *seg)
{
    char spath[4096], ipath[4096];
    snprintf(spath, sizeof spath, "%s", plog_store_path(seg->store));
    size_t l = strlen(spath);
    /* The index sits beside the store: same name, .index instead of .store. */
    snprintf(ipath, sizeof ipath, "%.*s.index", (int)(l - 6), spath);
    int rv = plog_segment_close(seg, false);
    /* Index first: a crash in between leaves a store, which reopens fine (its
     * index is rebuilt), never an index without its store. */
    if (IO->unlink(ipath) != 0 && errno != ENOENT)
        rv = PLOG_EIO;
    if (IO->unlink(spath) != 0 && errno != ENOENT)
        rv = PLOG_EIO;
    return rv;
}
