/* http.h - the log served as JSON over HTTP (Go: internal/server/http.go).
 *
 *   POST /  {"record":{"value":"<base64>"}}  -> 200 {"offset":N}
 *   GET  /  {"offset":N}                     -> 200 {"record":{"value":"<base64>","offset":N}}
 *
 * Errors answer {"error":"<message>"}: 400 for malformed JSON, missing or
 * mistyped fields, bad base64, a NUL in the body (raw or \u0000) or a body over
 * PLOG_HTTP_MAX_BODY; 404 for an offset with no record; 405 for other methods;
 * 500 when the log fails (a corrupt record names its file and position); 503 "log
 * failed; restart to recover" for a produce once an I/O error failed the log,
 * from the produce that met that error on. Runs on nng's HTTP server.
 *
 * A produce is answered only after plog_log_commit() for its offset: the record
 * has reached the kernel (and the disk under the fsync policies), so a kill -9 of
 * the server never loses a produce it answered. */
#ifndef PLOG_SERVER_HTTP_H
#define PLOG_SERVER_HTTP_H

#include "internal/log/log.h"

/* Largest request body accepted: a 1 MiB value is 1.4 MiB in base64. */
#define PLOG_HTTP_MAX_BODY (4u << 20)

typedef struct plog_server_http plog_server_http;

/* plog_server_http_check_addr checks that addr is HOST:PORT: a port 1..65535 in
 * decimal after the last ':', and no scheme, path or blank. HOST may not be empty
 * (":8080" would listen on every interface); whether it resolves is for
 * plog_server_http_open to find out.
 * PLOG_OK, or PLOG_EINVAL with the reason in errbuf (size errsz). */
int plog_server_http_check_addr(const char *addr, char *errbuf, size_t errsz);

/* plog_server_http_open starts serving log (borrowed; it must outlive the server)
 * on addr, "host:port". On PLOG_OK *sp owns the server until
 * plog_server_http_close(). PLOG_EINVAL for an address
 * plog_server_http_check_addr refuses, PLOG_EIO when it cannot listen (the host
 * does not resolve, the port is taken; errmsg in errbuf, size errsz), PLOG_ENOMEM. */
int plog_server_http_open(const char *addr, plog_log *log, plog_server_http **sp, char *errbuf, size_t errsz);

/* plog_server_http_close stops accepting, finishes and frees s. NULL does nothing. */
void plog_server_http_close(plog_server_http *s);

#endif
