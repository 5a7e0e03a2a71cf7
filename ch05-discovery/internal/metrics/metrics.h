/* metrics.h - request counters, latency histograms and gauges for operators
 * (book ch6 "Observe Your Systems"), rendered in the Prometheus text format 0.0.4.
 *
 * What it counts. Per (method, status code), one latency histogram with fixed
 * buckets from 25 us to 10 s; its count doubles as the request counter. Per method,
 * bytes received and sent. Four gauges (the table below), each either set by the
 * server or read through a callback at scrape time. Series rendered:
 *   proglog_requests_total{method,code}                   counter
 *   proglog_request_duration_seconds{method,code}         histogram (_bucket/_sum/_count)
 *   proglog_request_bytes_total{method}, proglog_response_bytes_total{method}
 *   proglog_log_lowest_offset, proglog_log_next_offset, proglog_log_size_bytes,
 *   proglog_open_connections                              gauges
 * Methods are the names given to plog_metrics_new (small integers index them); codes
 * are gRPC's numbers 0..16 (log.proto's Code), rendered by name ("OK", "NOT_FOUND").
 *
 * Cost. plog_metrics_observe is four relaxed atomic adds and no lock: each thread
 * writes to one of PLOG_METRICS_SHARDS cache-line-aligned copies of the counters
 * (picked once per thread), and a scrape sums the copies. Threads never share a
 * cache line unless there are more of them than shards, and even then only the
 * counters are shared, never a lock.
 *
 * Wiring it into the RPC server (internal/server/server.c does this; the request line
 * is reqlog.h, the endpoint http.h):
 *
 *   static const char *const methods[] = {"Produce", "Consume", "ConsumeStream", "ProduceStream"};
 *   plog_metrics_new(methods, 4, &srv->metrics);                      // server start
 *   plog_metrics_gauge_bind(srv->metrics, PLOG_GAUGE_LOG_NEXT_OFFSET, next_offset_fn, srv->log);
 *   if (metrics_addr) plog_metrics_http_open(srv->metrics, metrics_addr, err, sizeof err, &srv->http);
 *   // pipe notify: ADD_PRE  -> plog_metrics_gauge_add(m, PLOG_GAUGE_OPEN_CONNECTIONS, +1),
 *   //              REM_POST -> ... -1   (nng pairs these two: a pipe rejected after
 *   //              ADD_PRE still gets REM_POST; ADD_POST would miss such pipes)
 *   // per request: t0 = monotonic ns when the request is received; after the reply is sent:
 *   plog_metrics_observe(m, method_id, code, now_ns() - t0, req_len, rep_len);
 *   // shutdown: plog_metrics_http_close(srv->http, lg); unbind gauges; plog_metrics_free(m);
 *
 * Thread safety: every function may be called from any thread, except that
 * plog_metrics_free must come after the last use (and after plog_metrics_http_close). */
#ifndef PLOG_METRICS_H
#define PLOG_METRICS_H

#include <stddef.h>
#include <stdint.h>

/* Fixed sizes: gRPC has 17 status codes; a server has a handful of methods. */
#define PLOG_METRICS_CODES 17
#define PLOG_METRICS_MAX_METHODS 16
#define PLOG_METRICS_SHARDS 8
/* Finite histogram buckets (upper bounds 25us, 50us, 100us, ... 5s, 10s); +Inf is extra. */
#define PLOG_METRICS_BUCKETS 18

/* The gauges: enum name, metric name, Prometheus type, label set ("" or e.g.
 * result="ok"), help text. Rows of one name with different labels are one family
 * (they must be adjacent; the first row's type and help are used). A "counter"
 * row only grows (plog_metrics_gauge_add with delta >= 0, or a bound callback
 * returning a monotonic count). Later chapters add rows here. */
#define PLOG_METRICS_GAUGES(X)                                                                               \
    X(PLOG_GAUGE_LOG_LOWEST_OFFSET, "proglog_log_lowest_offset", "gauge", "",                                \
      "Offset of the oldest record the log holds.")                                                          \
    X(PLOG_GAUGE_LOG_NEXT_OFFSET, "proglog_log_next_offset", "gauge", "",                                    \
      "Offset the next appended record will get (highest offset + 1; 0 when empty).")                        \
    X(PLOG_GAUGE_LOG_SIZE_BYTES, "proglog_log_size_bytes", "gauge", "",                                      \
      "Bytes the log's segments (stores and indexes) hold.")                                                 \
    X(PLOG_GAUGE_LOG_FAILED, "proglog_log_failed", "gauge", "",                                              \
      "1 once a write or fsync of the log failed: produces are refused until a restart.")                    \
    X(PLOG_GAUGE_OPEN_CONNECTIONS, "proglog_open_connections", "gauge", "",                                  \
      "Client connections (nng pipes) open now.")                                                            \
    X(PLOG_GAUGE_RESENDS_DROPPED, "proglog_resends_dropped_total", "counter", "",                            \
      "Resent produces dropped because their first copy was still in flight (its reply answers).")           \
    X(PLOG_GAUGE_TLS_OK, "proglog_tls_handshakes_total", "counter", "result=\"ok\"",                         \
      "TLS connections accepted by result: ok, or why the handshake did not complete.")                      \
    X(PLOG_GAUGE_TLS_NO_CERTIFICATE, "proglog_tls_handshakes_total", "counter", "result=\"no_certificate\"", \
      "")                                                                                                    \
    X(PLOG_GAUGE_TLS_BAD_CERTIFICATE, "proglog_tls_handshakes_total", "counter",                             \
      "result=\"bad_certificate\"", "")                                                                      \
    X(PLOG_GAUGE_TLS_REFUSED_BY_PEER, "proglog_tls_handshakes_total", "counter",                             \
      "result=\"refused_by_peer\"", "")                                                                      \
    X(PLOG_GAUGE_TLS_PROTOCOL, "proglog_tls_handshakes_total", "counter", "result=\"protocol_error\"", "")   \
    X(PLOG_GAUGE_TLS_TIMEOUT, "proglog_tls_handshakes_total", "counter", "result=\"timeout\"", "")           \
    X(PLOG_GAUGE_TLS_LINGER_ENDED, "proglog_tls_handshakes_total", "counter", "result=\"linger_ended\"", "") \
    X(PLOG_GAUGE_TLS_OVER_CAPACITY, "proglog_tls_handshakes_total", "counter", "result=\"over_capacity\"",   \
      "")                                                                                                    \
    X(PLOG_GAUGE_MEMBERS_ALIVE, "proglog_members_alive", "gauge", "",                                        \
      "Cluster members this node sees alive, itself included (ch05).")                                       \
    X(PLOG_GAUGE_GOSSIP_DROPPED, "proglog_gossip_messages_dropped_total", "counter", "",                     \
      "Membership messages dropped since start: unauthorized, malformed, oversize (ch05).")                  \
    X(PLOG_GAUGE_REPLICATED_RECORDS, "proglog_replicated_records_total", "counter", "",                      \
      "Records copied from other nodes since start (ch05).")                                                 \
    X(PLOG_GAUGE_NNG_REAPER_STUCK, "proglog_nng_reaper_stuck", "gauge", "",                                  \
      "1 once a close has waited on nng's reaper for over 10 s: nng 1.5.2 never frees it, nor the "          \
      "connections closed after it (restart the node).")

typedef enum {
#define X(id, name, type, labels, help) id,
    PLOG_METRICS_GAUGES(X)
#undef X
        PLOG_GAUGE_COUNT
} plog_metrics_gauge;

typedef struct plog_metrics plog_metrics;

/* plog_metrics_gauge_fn returns a gauge's current value. It runs on the scraping
 * thread (an nng HTTP thread) with the registry's gauge lock held, so it must be
 * thread-safe and quick, and must not call plog_metrics_gauge_get, _gauge_bind or
 * _render (they take that lock). */
typedef int64_t (*plog_metrics_gauge_fn)(void *arg);

/* plog_metrics_new makes a registry for n methods (1 <= n <= PLOG_METRICS_MAX_METHODS)
 * named methods[0..n-1] (copied; used as label values, e.g. "Produce"). Every counter
 * starts at 0 and every gauge at 0 with no callback. On PLOG_OK *mp owns the registry
 * until plog_metrics_free(). PLOG_EINVAL (bad n; a NULL, empty, repeated or
 * "unknown" name), PLOG_ENOMEM. */
int plog_metrics_new(const char *const *methods, size_t n, plog_metrics **mp);

/* plog_metrics_free frees m. NULL is fine. */
void plog_metrics_free(plog_metrics *m);

/* plog_metrics_method_id returns the index of the method named name, or
 * PLOG_METRICS_MAX_METHODS when there is none (observe counts that as "unknown"). */
int plog_metrics_method_id(const plog_metrics *m, const char *name);

/* plog_metrics_observe records one finished request: method (an index from
 * plog_metrics_new; anything else is counted under method="unknown"), its gRPC status
 * code (outside 0..16 counts as UNKNOWN), the time it took and the bytes of the
 * request and reply messages. Lock-free; the hot path of the server. */
void plog_metrics_observe(plog_metrics *m, int method, int code, uint64_t latency_ns, uint64_t bytes_in,
                          uint64_t bytes_out);

/* plog_metrics_requests returns how many requests with this method and code were
 * observed so far (the same number proglog_requests_total shows). */
uint64_t plog_metrics_requests(const plog_metrics *m, int method, int code);

/* plog_metrics_gauge_set sets gauge g to v; plog_metrics_gauge_add adds delta (e.g.
 * +1/-1 for open connections). Atomic, lock-free. A bound callback takes precedence
 * at render time. */
void plog_metrics_gauge_set(plog_metrics *m, plog_metrics_gauge g, int64_t v);
void plog_metrics_gauge_add(plog_metrics *m, plog_metrics_gauge g, int64_t delta);

/* plog_metrics_gauge_get returns g's value: the callback's if one is bound, else the
 * last set/added one. */
int64_t plog_metrics_gauge_get(plog_metrics *m, plog_metrics_gauge g);

/* plog_metrics_gauge_bind makes g read fn(arg) at every scrape (arg is borrowed and
 * must stay valid while bound). fn == NULL unbinds. When it returns, no scrape is
 * still running the old callback: unbind before freeing what arg points to. */
void plog_metrics_gauge_bind(plog_metrics *m, plog_metrics_gauge g, plog_metrics_gauge_fn fn, void *arg);

/* plog_metrics_render writes every metric in the Prometheus text exposition format
 * 0.0.4 into a malloc'd, NUL-terminated buffer: *out (the caller frees it with
 * free()) of *len bytes, not counting the NUL. Each (method, code) histogram is
 * read as one snapshot, so its _count always equals its +Inf bucket. PLOG_ENOMEM. */
int plog_metrics_render(plog_metrics *m, char **out, size_t *len);

#endif
