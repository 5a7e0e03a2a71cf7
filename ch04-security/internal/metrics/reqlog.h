/* reqlog.h - the server's structured log: one event per line, key=value (logfmt),
 * with a level, filtered by an operator-chosen minimum level.
 *
 * A request line (one per RPC, written after the reply is sent):
 *   level=info msg=request method=Produce status=OK latency_us=93 peer=root bytes_in=120 bytes_out=8
 * and, when the request failed, err="<the reply's message>" at the end. Values
 * that are empty or hold a space, '=', '"', '\' or a control character are quoted
 * and escaped (\" \\ \n \r \t \xHH), so a certificate CN like "a\nlevel=error" can
 * never forge a line. Each value is cut at PLOG_REQLOG_MAX_VALUE bytes ("..." marks
 * the cut) and a line at PLOG_REQLOG_MAX_LINE bytes.
 *
 * Every line goes out in a single write(2) of at most PLOG_REQLOG_MAX_LINE (< PIPE_BUF)
 * bytes, so lines from concurrent threads never interleave, on a pipe, a terminal or
 * a file. Write errors are ignored: logging never fails a request.
 *
 * Wiring (server):
 *   plog_level lvl;  plog_reqlog_parse_level(flag_log_level ? flag_log_level : "info", &lvl);
 *   plog_reqlog_new(STDERR_FILENO, lvl, PLOG_LEVEL_INFO, &srv->log);   // or _DEBUG to hide requests at info
 *   plog_reqlog_request(srv->log, &(plog_reqlog_entry){.method = "Produce",
 *       .status = plog_rpc_status_name(code), .latency_ns = dt, .peer = cn,
 *       .bytes_in = req_len, .bytes_out = rep_len, .err = reply_message});
 *   plog_reqlog_event(srv->log, PLOG_LEVEL_WARN, "tls_handshake_failed", "peer=%s", addr);
 *   plog_reqlog_free(srv->log);                                          // after the last request
 *
 * Thread safety: all functions but _free may be called from any thread. */
#ifndef PLOG_REQLOG_H
#define PLOG_REQLOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PLOG_REQLOG_MAX_LINE 1024
#define PLOG_REQLOG_MAX_VALUE 256

typedef enum {
    PLOG_LEVEL_DEBUG,
    PLOG_LEVEL_INFO,
    PLOG_LEVEL_WARN,
    PLOG_LEVEL_ERROR,
} plog_level;

typedef struct plog_reqlog plog_reqlog;

/* One finished request. Every pointer is borrowed for the call; NULL strings print
 * as empty values (peer="" means no verified identity). */
typedef struct plog_reqlog_entry {
    const char *method;  /* short name: "Produce" */
    const char *status;  /* gRPC code name: "OK", "PERMISSION_DENIED" */
    uint64_t latency_ns; /* printed as latency_us */
    const char *peer;    /* the client certificate's CN */
    uint64_t bytes_in;   /* request message size */
    uint64_t bytes_out;  /* reply message size */
    const char *err;     /* the reply's message, printed as err=; omitted when NULL or "" */
} plog_reqlog_entry;

/* plog_reqlog_parse_level maps "debug", "info", "warn" (or "warning"), "error" (any
 * case) to *out. PLOG_EINVAL for anything else, *out untouched. */
int plog_reqlog_parse_level(const char *s, plog_level *out);

/* plog_reqlog_level_name returns "debug", "info", "warn" or "error". */
const char *plog_reqlog_level_name(plog_level l);

/* plog_reqlog_new makes a logger writing to fd (borrowed: the caller keeps it open
 * while the logger lives; usually STDERR_FILENO) that drops events below min, and
 * writes request lines at request_level (INFO, or DEBUG to see them only when the
 * operator asks for debug). On PLOG_OK *lp owns it until plog_reqlog_free().
 * PLOG_ENOMEM. */
int plog_reqlog_new(int fd, plog_level min, plog_level request_level, plog_reqlog **lp);

/* plog_reqlog_free frees l (the fd stays open). NULL is fine. */
void plog_reqlog_free(plog_reqlog *l);

/* plog_reqlog_set_level changes the minimum level at run time (e.g. on SIGHUP). */
void plog_reqlog_set_level(plog_reqlog *l, plog_level min);

/* plog_reqlog_enabled says whether an event at level would be written: check it
 * before building something costly to log. */
bool plog_reqlog_enabled(const plog_reqlog *l, plog_level level);

/* plog_reqlog_request writes e's request line if request lines are enabled. */
void plog_reqlog_request(plog_reqlog *l, const plog_reqlog_entry *e);

/* plog_reqlog_event writes "level=<level> msg=<msg>" and then, after a space, the
 * printf-formatted fields (fmt may be NULL for none): the caller writes them as
 * key=value pairs and quotes values that need it (plog_reqlog_quote). */
#ifdef __GNUC__
__attribute__((format(printf, 4, 5)))
#endif
void plog_reqlog_event(plog_reqlog *l, plog_level level, const char *msg, const char *fmt, ...);

/* plog_reqlog_quote writes s into buf (size bytes, NUL-terminated) as a logfmt
 * value: as is when it is safe bare, else quoted and escaped, cut at
 * PLOG_REQLOG_MAX_VALUE bytes of input or when buf is full. Returns buf. */
char *plog_reqlog_quote(const char *s, char *buf, size_t size);

#endif
