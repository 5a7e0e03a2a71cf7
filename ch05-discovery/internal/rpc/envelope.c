/* envelope.c - Request and Reply envelopes (byte layout in envelope.h). */
#include "internal/rpc/envelope.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "internal/err/err.h"
#include "internal/rpc/wire.h"

static const struct {
    const char *name;
    size_t len;
} methods[] = {{"", 0},
#define X(m, name) {name, sizeof name - 1},
               PLOG_METHODS(X)
#undef X
};

plog_rpc_method plog_rpc_method_lookup(const char *name, size_t len)
{
    for (size_t i = 1; i < sizeof methods / sizeof methods[0]; i++)
        if (methods[i].len == len && memcmp(methods[i].name, name, len) == 0)
            return (plog_rpc_method)i;
    return PLOG_METHOD_UNKNOWN;
}

const char *plog_rpc_method_name(plog_rpc_method m)
{
    return (size_t)m < sizeof methods / sizeof methods[0] ? methods[m].name : "";
}

int plog_rpc_request_decode(const void *buf, size_t len, plog_rpc_request *rq)
{
    const uint8_t *p = buf, *end = p + len;
    plog_rpc_request r = {0};
    plog_rpc_wire_field f;
    int rv;
    while ((rv = plog_rpc_wire_next(&p, end, &f)) == 1) {
        switch (f.num) {
        case 1:
            if (f.type != PLOG_WT_LEN)
                return PLOG_EINVAL;
            r.method = (const char *)f.ptr;
            r.method_len = f.len;
            break;
        case 2:
            if (f.type != PLOG_WT_LEN)
                return PLOG_EINVAL;
            r.body = f.ptr;
            r.body_len = f.len;
            break;
        case 4:
            if (f.type != PLOG_WT_I64)
                return PLOG_EINVAL;
            r.client_id = f.v;
            break;
        case 5:
            if (f.type != PLOG_WT_VARINT)
                return PLOG_EINVAL;
            r.seq = f.v;
            break;
        case 6:
            if (f.type != PLOG_WT_VARINT)
                return PLOG_EINVAL;
            r.timeout_ms = f.v > UINT32_MAX ? UINT32_MAX : (uint32_t)f.v;
            break;
        default:
            break; /* unknown: skipped */
        }
    }
    if (rv < 0 || r.method == NULL || r.method_len == 0)
        return PLOG_EINVAL;
    if (r.body == NULL)
        r.body = (const uint8_t *)""; /* an empty body is a valid, all-default message */
    *rq = r;
    return PLOG_OK;
}

int plog_rpc_request_msg(const char *method, const ProtobufCMessage *body, uint64_t deadline_unix_ms,
                         uint64_t client_id, uint64_t seq, nng_msg **out)
{
    size_t mlen = strlen(method);
    size_t blen = body != NULL ? protobuf_c_message_get_packed_size(body) : 0;
    size_t size = plog_rpc_wire_len_size(1, mlen) + plog_rpc_wire_len_size(2, blen);
    uint64_t timeout = 0;
    if (deadline_unix_ms != 0) {
        uint64_t now = plog_rpc_now_unix_ms();
        timeout = deadline_unix_ms <= now               ? 1
                  : deadline_unix_ms - now > UINT32_MAX ? UINT32_MAX
                                                        : deadline_unix_ms - now;
        size += 1 + plog_rpc_wire_varint_size(timeout);
    }
    if (seq != 0)
        size += 1 + 8 + 1 + plog_rpc_wire_varint_size(seq);
    nng_msg *m;
    if (nng_msg_alloc(&m, size) != 0)
        return PLOG_ENOMEM;
    uint8_t *p = nng_msg_body(m);
    p = plog_rpc_wire_put_len(p, 1, mlen);
    memcpy(p, method, mlen);
    p += mlen;
    if (timeout != 0) {
        *p++ = 6 << 3 | PLOG_WT_VARINT;
        p = plog_rpc_wire_put_varint(p, timeout);
    }
    if (seq != 0) {
        *p++ = 4 << 3 | PLOG_WT_I64;
        for (int i = 0; i < 8; i++)
            *p++ = (uint8_t)(client_id >> (8 * i));
        *p++ = 5 << 3 | PLOG_WT_VARINT;
        p = plog_rpc_wire_put_varint(p, seq);
    }
    /* The body goes last so protobuf-c can pack it straight into the message. */
    p = plog_rpc_wire_put_len(p, 2, blen);
    if (body != NULL)
        protobuf_c_message_pack(body, p);
    *out = m;
    return PLOG_OK;
}

int plog_rpc_reply_decode(const void *buf, size_t len, plog_rpc_reply *rp)
{
    const uint8_t *p = buf, *end = p + len;
    plog_rpc_reply r = {.message = "", .body = (const uint8_t *)""};
    plog_rpc_wire_field f;
    int rv;
    while ((rv = plog_rpc_wire_next(&p, end, &f)) == 1) {
        if (f.num == 1 && f.type == PLOG_WT_VARINT) {
            r.code = (int)(f.v & 0x7fffffff);
        } else if (f.num == 2 && f.type == PLOG_WT_LEN) {
            r.message = (const char *)f.ptr;
            r.message_len = f.len;
        } else if (f.num == 3 && f.type == PLOG_WT_LEN) {
            r.body = f.ptr;
            r.body_len = f.len;
        } else if (f.num <= 3) {
            return PLOG_EINVAL;
        }
    }
    if (rv < 0)
        return PLOG_EINVAL;
    *rp = r;
    return PLOG_OK;
}

int plog_rpc_reply_begin(nng_msg *m, int code, const char *message, size_t body_len)
{
    size_t mlen = message != NULL ? strlen(message) : 0;
    uint8_t hdr[32];
    uint8_t *p = hdr;
    nng_msg_clear(m);
    if (code != 0) {
        *p++ = 1 << 3 | PLOG_WT_VARINT;
        p = plog_rpc_wire_put_varint(p, (uint64_t)code);
    }
    if (mlen > 0) {
        p = plog_rpc_wire_put_len(p, 2, mlen);
        if (nng_msg_append(m, hdr, (size_t)(p - hdr)) != 0 || nng_msg_append(m, message, mlen) != 0)
            return PLOG_ENOMEM;
        p = hdr;
    }
    if (body_len > 0 || code == 0)
        p = plog_rpc_wire_put_len(p, 3, body_len);
    if (p > hdr && nng_msg_append(m, hdr, (size_t)(p - hdr)) != 0)
        return PLOG_ENOMEM;
    return PLOG_OK;
}

int plog_rpc_reply_packed(nng_msg *m, const ProtobufCMessage *resp)
{
    size_t blen = protobuf_c_message_get_packed_size(resp);
    int rv = plog_rpc_reply_begin(m, 0, NULL, blen);
    if (rv != PLOG_OK)
        return rv;
    size_t at = nng_msg_len(m);
    if (nng_msg_realloc(m, at + blen) != 0)
        return PLOG_ENOMEM;
    protobuf_c_message_pack(resp, (uint8_t *)nng_msg_body(m) + at);
    return PLOG_OK;
}

int plog_rpc_reply_error(nng_msg *m, int code, const char *fmt, ...)
{
    char text[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    return plog_rpc_reply_begin(m, code, text, 0);
}

uint64_t plog_rpc_now_unix_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}
