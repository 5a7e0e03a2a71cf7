/* http.h - serves a metrics registry as GET /metrics over HTTP (nng's HTTP server),
 * for Prometheus to scrape: the server's --metrics-addr.
 *
 *   GET /metrics   200, Content-Type: text/plain; version=0.0.4; charset=utf-8,
 *                  body = plog_metrics_render(); HEAD answers the headers only
 *   other paths    404;  other methods on /metrics: 405 (nng's own answers)
 *
 * Plain HTTP, no TLS: bind it to loopback or a management network. Wiring:
 *   char err[128];
 *   if (cfg->metrics_addr != NULL &&
 *       (rv = plog_metrics_http_open(m, cfg->metrics_addr, err, sizeof err, &srv->http)) != PLOG_OK)
 *       { plog_logger_log(logger, PLOG_LOGGER_ERROR, "metrics_listen", "err", err, NULL); goto fail; }
 *   ...
 *   plog_metrics_http_close(srv->http, logger);   // before plog_metrics_free(m)
 *
 * nng shares one HTTP server per host:port within a process: give the metrics
 * endpoint an address no other nng HTTP server of the process uses. */
#ifndef PLOG_METRICS_HTTP_H
#define PLOG_METRICS_HTTP_H

#include <stddef.h>

#include "internal/logger/logger.h"
#include "internal/metrics/metrics.h"

typedef struct plog_metrics_http plog_metrics_http;

/* plog_metrics_http_open listens on addr ("host:port", e.g. "127.0.0.1:9400", or
 * "http://host:port"; port 0 picks a free port, see plog_metrics_http_port) and
 * serves m's metrics at /metrics until closed. m is borrowed: it must outlive the
 * endpoint. On PLOG_OK *hp owns the listener until plog_metrics_http_close().
 * Otherwise, when errmsg is not NULL, it gets a NUL-terminated reason (errlen bytes
 * at most, e.g. "listen 127.0.0.1:9400: Address in use"): PLOG_EINVAL (bad
 * address), PLOG_EIO (cannot listen), PLOG_ENOMEM. */
int plog_metrics_http_open(plog_metrics *m, const char *addr, char *errmsg, size_t errlen,
                           plog_metrics_http **hp);

/* plog_metrics_http_port returns the TCP port the endpoint listens on. */
int plog_metrics_http_port(const plog_metrics_http *h);

/* plog_metrics_http_close stops listening, closes open scrapes and frees h. When it
 * returns no scrape reads m any more, so m may be freed. NULL is fine.
 * The stop runs on the process's closer thread (internal/rpc/closer.h), since it
 * waits for nng's reaper: close waits for it at most 2 s. If it is not done by
 * then (the reaper is stuck), close logs an error to lg (NULL: nothing) and
 * returns, leaving the listener and its connections to the closer: a scrape on
 * them gets 503 and h is freed whenever the stop ends. */
void plog_metrics_http_close(plog_metrics_http *h, plog_logger *lg);

#endif
