/* wire.c - protobuf wire-format primitives (see wire.h for the format). */
#include "internal/rpc/wire.h"

#include <stdbool.h>
#include <string.h>

size_t plog_rpc_wire_varint_size(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

uint8_t *plog_rpc_wire_put_varint(uint8_t *p, uint64_t v)
{
    while (v >= 0x80) {
        *p++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *p++ = (uint8_t)v;
    return p;
}

size_t plog_rpc_wire_len_size(uint32_t num, size_t len)
{
    return plog_rpc_wire_varint_size((uint64_t)num << 3 | PLOG_WT_LEN) + plog_rpc_wire_varint_size(len) + len;
}

uint8_t *plog_rpc_wire_put_len(uint8_t *p, uint32_t num, size_t len)
{
    p = plog_rpc_wire_put_varint(p, (uint64_t)num << 3 | PLOG_WT_LEN);
    return plog_rpc_wire_put_varint(p, len);
}

static int get_varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
    uint64_t x = 0;
    for (int shift = 0; shift < 70; shift += 7) {
        if (*p >= end)
            return -1;
        uint8_t b = *(*p)++;
        x |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *v = x;
            return 0;
        }
    }
    return -1; /* more than 10 bytes */
}

static uint64_t get_le(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

int plog_rpc_wire_next(const uint8_t **p, const uint8_t *end, plog_rpc_wire_field *f)
{
    if (*p >= end)
        return 0;
    uint64_t key;
    if (get_varint(p, end, &key) != 0 || key >> 3 == 0 || key >> 3 > UINT32_MAX)
        return -1;
    f->num = (uint32_t)(key >> 3);
    f->type = (int)(key & 7);
    f->v = 0;
    f->ptr = NULL;
    f->len = 0;
    switch (f->type) {
    case PLOG_WT_VARINT:
        return get_varint(p, end, &f->v) == 0 ? 1 : -1;
    case PLOG_WT_I64:
        if (end - *p < 8)
            return -1;
        f->v = get_le(*p, 8);
        *p += 8;
        return 1;
    case PLOG_WT_I32:
        if (end - *p < 4)
            return -1;
        f->v = get_le(*p, 4);
        *p += 4;
        return 1;
    case PLOG_WT_LEN: {
        uint64_t n;
        if (get_varint(p, end, &n) != 0 || n > (uint64_t)(end - *p))
            return -1;
        f->ptr = *p;
        f->len = (size_t)n;
        *p += n;
        return 1;
    }
    default:
        return -1;
    }
}

int plog_rpc_wire_record_decode(const uint8_t *buf, size_t len, const uint8_t **value, size_t *vlen,
                                uint64_t *off)
{
    const uint8_t *p = buf, *end = buf + len;
    plog_rpc_wire_field f;
    int rv;
    *value = buf; /* any non-NULL pointer: an absent value is empty */
    *vlen = 0;
    *off = 0;
    while ((rv = plog_rpc_wire_next(&p, end, &f)) == 1) {
        if (f.num == 1 && f.type == PLOG_WT_LEN) {
            *value = f.ptr;
            *vlen = f.len;
        } else if (f.num == 2 && f.type == PLOG_WT_VARINT) {
            *off = f.v;
        } else if (f.num <= 2) {
            return -1; /* a known field with the wrong wire type */
        }
    }
    return rv;
}

/* short_len reads a length prefix of at most 4 bytes whose length fits before end.
 * protobuf-c reads up to 5; a longer prefix is left to it. */
static int short_len(const uint8_t **p, const uint8_t *end, size_t *len)
{
    size_t v = 0;
    for (int i = 0; i < 4 && *p < end; i++) {
        uint8_t b = *(*p)++;
        v |= (size_t)(b & 0x7f) << (7 * i);
        if (!(b & 0x80)) {
            if (v > (size_t)(end - *p))
                return -1;
            *len = v;
            return 0;
        }
    }
    return -1;
}

int plog_rpc_wire_produce_one(const uint8_t *buf, size_t len, const uint8_t **value, size_t *vlen)
{
    const uint8_t *p = buf, *end = buf + len, *v = NULL;
    size_t rlen, n = 0;
    bool seen_value = false, seen_offset = false;
    if (len < 2 || *p++ != (1 << 3 | PLOG_WT_LEN) || short_len(&p, end, &rlen) != 0 ||
        rlen != (size_t)(end - p))
        return 0;
    while (p < end) {
        uint8_t key = *p++;
        if (key == (1 << 3 | PLOG_WT_LEN) && !seen_value) {
            if (short_len(&p, end, &n) != 0)
                return 0;
            v = p;
            p += n;
            seen_value = true;
        } else if (key == (2 << 3 | PLOG_WT_VARINT) && !seen_offset) {
            /* The value is not needed (the log assigns offsets), only its end. */
            int i = 0;
            while (i < 9 && p < end && (*p & 0x80))
                p++, i++;
            if (i == 9 || p >= end)
                return 0;
            p++;
            seen_offset = true;
        } else {
            return 0;
        }
    }
    *value = n > 0 ? v : NULL;
    *vlen = n;
    return 1;
}

size_t plog_rpc_wire_produce_response(uint8_t *buf, uint64_t offset, uint64_t count)
{
    uint8_t *p = buf;
    if (offset != 0) {
        *p++ = 1 << 3 | PLOG_WT_VARINT;
        p = plog_rpc_wire_put_varint(p, offset);
    }
    if (count != 0) {
        *p++ = 2 << 3 | PLOG_WT_VARINT;
        p = plog_rpc_wire_put_varint(p, count);
    }
    return (size_t)(p - buf);
}

size_t plog_rpc_wire_consume_record_header(uint8_t *hdr, size_t rec_len)
{
    return (size_t)(plog_rpc_wire_put_len(hdr, 2, rec_len) - hdr);
}

static size_t varint_field_size(uint64_t v)
{
    return v != 0 ? 1 + plog_rpc_wire_varint_size(v) : 0;
}

static uint8_t *put_varint_field(uint8_t *p, uint32_t num, uint64_t v)
{
    if (v == 0)
        return p;
    *p++ = (uint8_t)(num << 3 | PLOG_WT_VARINT);
    return plog_rpc_wire_put_varint(p, v);
}

size_t plog_rpc_wire_consume_batch_size(const size_t *lens, size_t n, uint64_t next_offset,
                                        uint64_t lowest_offset, uint64_t end_offset)
{
    size_t size =
        varint_field_size(next_offset) + varint_field_size(lowest_offset) + varint_field_size(end_offset);
    for (size_t i = 0; i < n; i++)
        size += plog_rpc_wire_len_size(3, lens[i]);
    return size;
}

uint8_t *plog_rpc_wire_consume_batch_put(uint8_t *p, const uint8_t *const *recs, const size_t *lens, size_t n,
                                         uint64_t next_offset, uint64_t lowest_offset, uint64_t end_offset)
{
    for (size_t i = 0; i < n; i++) {
        p = plog_rpc_wire_put_len(p, 3, lens[i]);
        memcpy(p, recs[i], lens[i]);
        p += lens[i];
    }
    p = put_varint_field(p, 4, next_offset);
    p = put_varint_field(p, 5, lowest_offset);
    return put_varint_field(p, 6, end_offset);
}
