/* http.c - JSON over HTTP on nng's HTTP server (Go: internal/server/http.go).
 *
 * One handler at "/" takes every method: POST produces, GET consumes, anything
 * else is 405. nng collects the body before calling us; bodies larger than
 * COLLECT_LIMIT are refused by nng itself, unread, with its 400 error page
 * (which we set to JSON: set_error_pages, as its 404 for another path), bodies
 * between PLOG_HTTP_MAX_BODY and that limit by us (400 "request body too large",
 * with both sizes), so the client reads why.
 * Base64 is OpenSSL's (EVP_EncodeBlock / EVP_DecodeBlock). */
#include "internal/server/http.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>
#include <nng/nng.h>
#include <nng/supplemental/http/http.h>
#include <openssl/evp.h>

#include "internal/err/err.h"

#define COLLECT_LIMIT (2 * PLOG_HTTP_MAX_BODY)

struct plog_server_http {
    nng_http_server *srv;
    nng_http_handler *h;
    plog_server_memlog *log;
};

/* A response under construction: status and a malloc'd JSON body. */
struct reply {
    uint16_t status;
    char *body;
};

static void reply_error(struct reply *r, uint16_t status, const char *msg)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "error", msg);
    r->status = status;
    r->body = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
}

/* base64_decode decodes standard, padded base64 (what Go's encoding/json writes
 * for []byte). Returns false for a bad length, a bad character or misplaced
 * padding; EVP_DecodeBlock alone would skip whitespace and count padding as data. */
static bool base64_decode(const char *s, uint8_t **out, size_t *outlen)
{
    size_t n = strlen(s);
    if (n % 4 != 0)
        return false;
    size_t pad = n > 0 && s[n - 1] == '=' ? (s[n - 2] == '=' ? 2 : 1) : 0;
    for (size_t i = 0; i < n - pad; i++) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
              c == '/'))
            return false;
    }
    uint8_t *buf = malloc(n / 4 * 3 + 1);
    if (buf == NULL)
        return false;
    int len = n > 0 ? EVP_DecodeBlock(buf, (const unsigned char *)s, (int)n) : 0;
    if (len < 0 || (size_t)len < pad) {
        free(buf);
        return false;
    }
    *out = buf;
    *outlen = (size_t)len - pad; /* EVP_DecodeBlock counts padding as zero bytes */
    return true;
}

static char *base64_encode(const uint8_t *p, size_t len)
{
    char *s = malloc((len + 2) / 3 * 4 + 1);
    if (s != NULL)
        EVP_EncodeBlock((unsigned char *)s, p, (int)len);
    return s;
}

/* Go: httpServer.handleProduce */
static void produce(plog_server_memlog *log, const cJSON *req, struct reply *r)
{
    const cJSON *rec = cJSON_GetObjectItemCaseSensitive(req, "record");
    const cJSON *val = cJSON_GetObjectItemCaseSensitive(rec, "value");
    if (!cJSON_IsObject(rec)) {
        reply_error(r, 400, "missing object field \"record\"");
        return;
    }
    if (!cJSON_IsString(val)) {
        reply_error(r, 400, "missing string field \"record.value\"");
        return;
    }
    Log__V1__Record record = LOG__V1__RECORD__INIT;
    if (!base64_decode(val->valuestring, &record.value.data, &record.value.len)) {
        reply_error(r, 400, "\"record.value\" is not valid base64");
        return;
    }
    uint64_t off;
    int rv = plog_server_memlog_append(log, &record, &off);
    free(record.value.data);
    if (rv != PLOG_OK) {
        reply_error(r, 500, plog_strerror(rv));
        return;
    }
    char body[48];
    snprintf(body, sizeof body, "{\"offset\":%llu}", (unsigned long long)off);
    r->status = 200;
    r->body = strdup(body);
}

/* blank: p[0..n) is only JSON whitespace (what may follow the body's object). */
static bool blank(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != ' ' && p[i] != '\t' && p[i] != '\r' && p[i] != '\n')
            return false;
    return true;
}

/* Go: httpServer.handleConsume */
static void consume(plog_server_memlog *log, const cJSON *req, struct reply *r)
{
    const cJSON *o = cJSON_GetObjectItemCaseSensitive(req, "offset");
    /* JSON numbers are doubles: accept whole numbers below 2^53. From 2^53 on a
     * double no longer tells neighbours apart (2^53 + 1 reads as 2^53), so the
     * offset asked for might not be the one served. */
    if (o == NULL) {
        reply_error(r, 400, "missing field \"offset\" (a whole number >= 0)");
        return;
    }
    if (!cJSON_IsNumber(o) || o->valuedouble < 0 || o->valuedouble >= 9007199254740992.0 ||
        floor(o->valuedouble) != o->valuedouble) {
        reply_error(r, 400, "field \"offset\" must be a whole number from 0 to 2^53-1");
        return;
    }
    uint64_t off = (uint64_t)o->valuedouble;
    Log__V1__Record *rec;
    int rv = plog_server_memlog_read(log, off, &rec);
    if (rv == PLOG_ERANGE) {
        char msg[64];
        snprintf(msg, sizeof msg, "offset not found: %llu", (unsigned long long)off);
        reply_error(r, 404, msg);
        return;
    }
    if (rv != PLOG_OK) {
        reply_error(r, 500, plog_strerror(rv));
        return;
    }
    char *b64 = base64_encode(rec->value.data, rec->value.len);
    size_t size = (b64 ? strlen(b64) : 0) + 64;
    r->body = b64 ? malloc(size) : NULL;
    if (r->body == NULL) {
        reply_error(r, 500, plog_strerror(PLOG_ENOMEM));
    } else {
        snprintf(r->body, size, "{\"record\":{\"value\":\"%s\",\"offset\":%llu}}", b64,
                 (unsigned long long)rec->offset);
        r->status = 200;
    }
    free(b64);
    log__v1__record__free_unpacked(rec, NULL);
}

/* has_nul: whether the body holds a NUL character, raw or as the escape \u0000.
 * cJSON ends its strings at a NUL, so "QQ==\u0000AAAA" would read as "QQ==" (and a
 * key "record\u0000x" as "record"): a value would be stored cut short instead of
 * refused as bad base64. A raw NUL is never valid JSON; the escape is, but no field
 * of ours can hold it. A backslash always begins an escape of the next character,
 * so "\\u0000" (an escaped backslash, then "u0000") is not one. */
static bool has_nul(const char *p, size_t n)
{
    if (n > 0 && memchr(p, '\0', n) != NULL)
        return true;
    for (size_t i = 0; i + 1 < n; i++) {
        if (p[i] != '\\')
            continue;
        if (p[i + 1] == 'u' && n - i >= 6 && memcmp(p + i + 2, "0000", 4) == 0)
            return true;
        i++; /* the escaped character */
    }
    return false;
}

static void handle(nng_http_req *req, plog_server_memlog *log, struct reply *r)
{
    const char *method = nng_http_req_get_method(req);
    bool is_post = strcmp(method, "POST") == 0, is_get = strcmp(method, "GET") == 0;
    if (!is_post && !is_get) {
        reply_error(r, 405, "method not allowed: use POST to produce, GET to consume");
        return;
    }
    void *data;
    size_t len;
    nng_http_req_get_data(req, &data, &len);
    if (len > PLOG_HTTP_MAX_BODY) {
        char msg[96];
        snprintf(msg, sizeof msg, "request body too large: %zu bytes (a request may have %u)", len,
                 (unsigned)PLOG_HTTP_MAX_BODY);
        reply_error(r, 400, msg);
        return;
    }
    /* nng's server reads no chunked body: say so, rather than "not a JSON object". */
    if (nng_http_req_get_header(req, "Transfer-Encoding") != NULL) {
        reply_error(r, 400, "chunked request bodies are not supported: send a Content-Length");
        return;
    }
    if (has_nul(data, len)) {
        reply_error(r, 400, "request body has a NUL character (raw or \\u0000), which no field may hold");
        return;
    }
    const char *end = NULL;
    cJSON *json = cJSON_ParseWithLengthOpts(data, len, &end, false);
    if (!cJSON_IsObject(json))
        reply_error(r, 400, "request body is not a JSON object");
    else if (!blank(end, len - (size_t)(end - (const char *)data)))
        reply_error(r, 400, "request body has bytes after its JSON object");
    else if (is_post)
        produce(log, json, r);
    else
        consume(log, json, r);
    cJSON_Delete(json);
}

static void serve(nng_aio *aio)
{
    nng_http_req *req = nng_aio_get_input(aio, 0);
    nng_http_handler *h = nng_aio_get_input(aio, 1);
    plog_server_memlog *log = nng_http_handler_get_data(h);

    struct reply r = {0};
    handle(req, log, &r);

    nng_http_res *res;
    int rv = nng_http_res_alloc(&res);
    if (rv == 0 && r.body != NULL) {
        nng_http_res_set_status(res, r.status);
        rv = nng_http_res_set_header(res, "Content-Type", "application/json");
        if (rv == 0)
            rv = nng_http_res_copy_data(res, r.body, strlen(r.body));
        if (rv != 0)
            nng_http_res_free(res);
    } else if (rv == 0) {
        nng_http_res_free(res);
        rv = NNG_ENOMEM;
    }
    free(r.body);
    if (rv != 0) {
        nng_aio_finish(aio, rv);
        return;
    }
    nng_aio_set_output(aio, 0, res);
    nng_aio_finish(aio, 0);
}

/* Longest address taken: a DNS name (253) and ":65535". */
#define MAX_ADDR 260

int plog_server_http_check_addr(const char *addr, char *errbuf, size_t errsz)
{
    const char *colon = strrchr(addr, ':');
    const char *port = colon != NULL ? colon + 1 : "";
    size_t digits = strspn(port, "0123456789");
    if (colon == NULL || colon == addr || strlen(addr) > MAX_ADDR || digits == 0 || digits > 5 ||
        port[digits] != '\0' || atoi(port) < 1 || atoi(port) > 65535 ||
        strcspn(addr, "/?#@ \t\r\n") != strlen(addr)) {
        snprintf(errbuf, errsz, "bad address \"%.*s\" (want HOST:PORT, a port 1..65535)", MAX_ADDR, addr);
        return PLOG_EINVAL;
    }
    return PLOG_OK;
}

/* set_error_pages makes nng's own answers say why in our JSON: its 400s (a
 * request it could not parse, or a body over COLLECT_LIMIT, refused unread) and
 * its 404 for a path other than "/". nng still sends them as text/html. */
static int set_error_pages(nng_http_server *srv)
{
    char page[160];
    snprintf(page, sizeof page,
             "{\"error\":\"bad request: malformed, or a body over %u bytes (a request may have %u)\"}\n",
             (unsigned)COLLECT_LIMIT, (unsigned)PLOG_HTTP_MAX_BODY);
    int rv = nng_http_server_set_error_page(srv, NNG_HTTP_STATUS_BAD_REQUEST, page);
    if (rv == 0)
        rv = nng_http_server_set_error_page(srv, NNG_HTTP_STATUS_NOT_FOUND,
                                            "{\"error\":\"not found: the log is served at /\"}\n");
    return rv;
}

int plog_server_http_open(const char *addr, plog_server_memlog *log, plog_server_http **sp, char *errbuf,
                          size_t errsz)
{
    char url[300];
    if (plog_server_http_check_addr(addr, errbuf, errsz) != PLOG_OK)
        return PLOG_EINVAL;
    snprintf(url, sizeof url, "http://%s/", addr);
    plog_server_http *s = calloc(1, sizeof *s);
    if (s == NULL)
        return PLOG_ENOMEM;
    s->log = log;
    nng_url *u = NULL;
    int rv;
    if ((rv = nng_url_parse(&u, url)) != 0) {
        snprintf(errbuf, errsz, "bad address %s: %s", addr, nng_strerror(rv));
        free(s);
        return PLOG_EINVAL;
    }
    const char *step = "server";
    if ((rv = nng_http_server_hold(&s->srv, u)) != 0)
        goto fail;
    step = "error pages";
    if ((rv = set_error_pages(s->srv)) != 0)
        goto fail;
    step = "handler";
    if ((rv = nng_http_handler_alloc(&s->h, "/", serve)) != 0)
        goto fail;
    nng_http_handler_set_method(s->h, NULL); /* every method: 405 is ours to say */
    nng_http_handler_collect_body(s->h, true, COLLECT_LIMIT);
    nng_http_handler_set_data(s->h, log, NULL);
    if ((rv = nng_http_server_add_handler(s->srv, s->h)) != 0) {
        nng_http_handler_free(s->h);
        goto fail;
    }
    step = "listen";
    if ((rv = nng_http_server_start(s->srv)) != 0)
        goto fail;
    nng_url_free(u);
    *sp = s;
    return PLOG_OK;

fail:
    snprintf(errbuf, errsz, "http %s on %s: %s", step, addr, nng_strerror(rv));
    if (s->srv != NULL)
        nng_http_server_release(s->srv);
    nng_url_free(u);
    free(s);
    return rv == NNG_ENOMEM ? PLOG_ENOMEM : PLOG_EIO;
}

void plog_server_http_close(plog_server_http *s)
{
    if (s == NULL)
        return;
    nng_http_server_stop(s->srv);
    nng_http_server_release(s->srv);
    free(s);
}
