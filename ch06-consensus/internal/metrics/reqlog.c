/* reqlog.c - the request line (reqlog.h), written through the logger. */
#include "internal/metrics/reqlog.h"

#include <inttypes.h>
#include <stdio.h>

void plog_metrics_reqlog(plog_logger *l, plog_logger_level level, const plog_metrics_reqlog_entry *e)
{
    char latency[24], in[24], out[24];

    if (!plog_logger_enabled(l, level))
        return;
    snprintf(latency, sizeof latency, "%" PRIu64, e->latency_ns / 1000);
    snprintf(in, sizeof in, "%" PRIu64, e->bytes_in);
    snprintf(out, sizeof out, "%" PRIu64, e->bytes_out);
    if (e->err != NULL && e->err[0] != '\0')
        plog_logger_log(l, level, "request", "method", e->method, "status", e->status, "latency_us", latency,
                        "peer", e->peer, "bytes_in", in, "bytes_out", out, "err", e->err, NULL);
    else
        plog_logger_log(l, level, "request", "method", e->method, "status", e->status, "latency_us", latency,
                        "peer", e->peer, "bytes_in", in, "bytes_out", out, NULL);
}
