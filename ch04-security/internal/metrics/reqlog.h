/* reqlog.h - the request log: one key=value line per finished RPC, written through
 * the program's logger (internal/logger), so it shares its level, escaping and
 * one-write(2)-per-line guarantee with every other line:
 *
 *   time=2026-12-02T03:10:00.123Z level=info msg=request method=Produce status=OK latency_us=93
 *       peer=root bytes_in=120 bytes_out=8
 *
 * and, when the request failed, err="<the reply's message>" at the end. The peer is
 * a certificate's CN, chosen by the client: the logger escapes it, so a CN like
 * "a\nlevel=error" can never forge a line.
 *
 * Wiring (server): after the reply is sent,
 *   plog_metrics_reqlog(cfg.logger, PLOG_LOGGER_INFO, &(plog_metrics_reqlog_entry){
 *       .method = "Produce", .status = plog_rpc_status_name(code), .latency_ns = dt,
 *       .peer = cn, .bytes_in = req_len, .bytes_out = rep_len, .err = reply_message});
 *
 * Thread safety: as the logger's, any thread. */
#ifndef PLOG_METRICS_REQLOG_H
#define PLOG_METRICS_REQLOG_H

#include <stdint.h>

#include "internal/logger/logger.h"

/* One finished request. Every pointer is borrowed for the call; NULL strings print
 * as empty values (peer="" means no verified identity). */
typedef struct plog_metrics_reqlog_entry {
    const char *method;  /* short name: "Produce" */
    const char *status;  /* gRPC code name: "OK", "PERMISSION_DENIED" */
    uint64_t latency_ns; /* printed as latency_us */
    const char *peer;    /* the client certificate's CN */
    uint64_t bytes_in;   /* request message size */
    uint64_t bytes_out;  /* reply message size */
    const char *err;     /* the reply's message, printed as err=; omitted when NULL or "" */
} plog_metrics_reqlog_entry;

/* plog_metrics_reqlog writes e's request line to l at level (INFO, or DEBUG to see
 * requests only when the operator asks for debug), if l logs at that level. A NULL
 * l writes nothing. */
void plog_metrics_reqlog(plog_logger *l, plog_logger_level level, const plog_metrics_reqlog_entry *e);

#endif
