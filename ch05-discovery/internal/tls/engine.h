/* engine.h - an OpenSSL 3 TLS engine for nng 1.5.2, so that tls+tcp:// runs on OpenSSL.
 *
 * Debian's libnng 1.5.2 is built with mbedTLS (TLS 1.2 at most), but nng 1.5 lets a
 * program plug in its own TLS engine (nng/supplemental/tls/engine.h). This one does the
 * TLS with OpenSSL 3: TLS 1.2 to 1.3, 1.3 preferred; mutual authentication; the peer's
 * verified identity recorded per connection for authorization (see peer.h).
 *
 * How it plugs in:
 *   - nng allocates our per-config and per-connection state and calls our ops under its
 *     own per-connection lock (engine.h's "locking theory"), so one connection is never
 *     entered by two threads at once, but many connections run on many nng threads.
 *   - The ciphertext goes through a custom OpenSSL BIO whose read/write call
 *     nng_tls_engine_recv/_send on nng's 16 KiB buffers. NNG_EAGAIN becomes BIO retry,
 *     retry becomes SSL_ERROR_WANT_*, which becomes NNG_EAGAIN again for nng.
 *   - nng calls send/recv before the handshake has finished; SSL_write_ex/SSL_read_ex
 *     drive the handshake themselves.
 *   - Errors: certificate verification failures (ours or the peer's, reported to us by
 *     an alert) are NNG_EPEERAUTH, other TLS failures NNG_ECRYPTO, a closed stream
 *     NNG_ECLOSED/NNG_ECONNSHUT. The OpenSSL error queue is cleared before every SSL
 *     call and after every failure, because nng threads serve many connections.
 *
 * Registration order matters (nng 1.5.2): nng's own initialisation installs mbedTLS, a
 * TLS config binds the engine current when it is allocated, and every tls+tcp:// dialer
 * or listener allocates a default config when it is created. plog_tls_engine_register()
 * therefore forces nng's initialisation first, then registers; call it before creating
 * any TLS dialer, listener or config (plog_tls_config_* in config.h call it for you),
 * and again after any nng_fini().
 *
 * The one piece of global state is the engine registration itself plus the counters
 * below; everything else lives in nng's config and connection objects. */
#ifndef PLOG_TLS_ENGINE_H
#define PLOG_TLS_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <nng/nng.h>
#include <nng/supplemental/tls/tls.h>

/* PLOG_TLS_ENGINE_NAME is what nng_tls_engine_name() returns once we are registered. */
#define PLOG_TLS_ENGINE_NAME "proglog-openssl"

/* PLOG_TLS_CN_SIZE bounds a subject CN (UTF-8, with its NUL). X.509 limits a CN to 64
 * characters; 4 bytes each in UTF-8 and the NUL fit. */
#define PLOG_TLS_CN_SIZE 257

/* PLOG_TLS_ERRMSG_SIZE is the size of every error text buffer of this module. */
#define PLOG_TLS_ERRMSG_SIZE 256

/* plog_tls_cert_cn copies the subject CN of the first certificate in cert_file
 * (PEM) into cn (size bytes; PLOG_TLS_CN_SIZE always fits): PLOG_OK; PLOG_EIO when
 * the file cannot be read; PLOG_EINVAL when it holds no certificate, or one
 * without exactly one usable CN (the rule the engine applies to peers). A node's
 * name must be its certificate's CN: that is who the other nodes see. */
int plog_tls_cert_cn(const char *cert_file, char *cn, size_t size);

/* plog_tls_cert_names_host says whether the first certificate in cert_file (PEM)
 * names host (an IP literal or a DNS name) in its SANs, as a client dialing host
 * requires: PLOG_OK; PLOG_EPERM when it does not; PLOG_EIO when the file cannot be
 * read; PLOG_EINVAL when it holds no certificate. A node's certificate must name
 * the host of its bind address: the other nodes dial it there. */
int plog_tls_cert_names_host(const char *cert_file, const char *host);

/* plog_tls_engine_register makes this engine nng's TLS engine. Idempotent and
 * thread-safe: it does nothing when nng_tls_engine_name() already names it.
 * PLOG_OK, PLOG_ENOMEM, PLOG_ETLS (nng refused the engine). */
int plog_tls_engine_register(void);

/* plog_tls_config_alloc allocates an nng_tls_config (nng_tls_config_alloc) that is
 * bound to this engine, registering the engine first if needed, and remembers it so
 * that plog_tls_config_errmsg() can report why its handshakes fail. On PLOG_OK *cfgp
 * holds one reference, released by nng_tls_config_free(). PLOG_ENOMEM, PLOG_ETLS (the
 * config came out bound to another engine: someone registered one after us). */
int plog_tls_config_alloc(nng_tls_mode mode, nng_tls_config **cfgp);

/* plog_tls_config_errmsg copies into buf (size bytes, NUL-terminated) the text of the
 * most recent failure on cfg: a certificate or key that did not load, or a handshake
 * that failed on any connection using cfg ("certificate verify failed: IP address
 * mismatch", "peer refused our certificate: tlsv13 alert certificate required", ...).
 * nng's error codes alone cannot say which; a client prints this beside the code.
 * Returns false (and buf "") when nothing failed yet or cfg is not from
 * plog_tls_config_alloc. cfg is borrowed. */
bool plog_tls_config_errmsg(nng_tls_config *cfg, char *buf, size_t size);

/* plog_tls_config_clear_errmsg forgets cfg's recorded failure. */
void plog_tls_config_clear_errmsg(nng_tls_config *cfg);

/* plog_tls_failure_fn hears of the connections of a config that failed with a TLS
 * error (a refused certificate, a protocol error) or, on a server, were refused at
 * the connection cap or cut at the handshake deadline, with the same text as
 * plog_tls_config_errmsg, and (server) remote, the client's "ip:port" ("" on a
 * client, "?" when unknown). The text is that connection's own. A server logs it:
 * without it a refused client leaves no trace, since it never becomes a pipe. It
 * hears of at most 10 failures a second (a flood must not flood the log; the
 * counters of plog_tls_stats count every one): the first report after some were
 * left out ends "(and N more failures not reported, over 10 a second)". It runs
 * on an nng thread, possibly while nng holds that connection's lock: be quick, and
 * do not call nng on that connection. */
typedef void (*plog_tls_failure_fn)(void *arg, const char *remote, const char *reason);

/* plog_tls_addr_format writes sa as failure reports give a remote address,
 * "ip:port" ("[ip]:port" for IPv6), into buf (size bytes); "?" for any other
 * family. */
void plog_tls_addr_format(const nng_sockaddr *sa, char *buf, size_t size);

/* plog_tls_config_on_failure makes fn(arg, reason) run on each failure of a
 * connection using cfg (fn NULL: none). Set it before the config is in use. arg is
 * borrowed for as long as cfg may have connections. PLOG_OK, or PLOG_EINVAL when cfg
 * is not from plog_tls_config_alloc. */
int plog_tls_config_on_failure(nng_tls_config *cfg, plog_tls_failure_fn fn, void *arg);

/* plog_tls_peer is a verified peer: what authorization and request logs need. */
typedef struct plog_tls_peer {
    char cn[PLOG_TLS_CN_SIZE]; /* the subject's one CN, UTF-8, no embedded NUL */
    uint8_t sha256[32];        /* SHA-256 fingerprint of the peer's certificate (DER) */
    char version[16];          /* negotiated protocol: "TLSv1.3" or "TLSv1.2" */
} plog_tls_peer;

/* Why a connection did not become a verified TLS connection. */
typedef enum {
    PLOG_TLS_FAIL_NO_CERTIFICATE,  /* server: the client sent none */
    PLOG_TLS_FAIL_BAD_CERTIFICATE, /* the peer's certificate failed verification */
    PLOG_TLS_FAIL_REFUSED_BY_PEER, /* the peer's alert refused our certificate */
    PLOG_TLS_FAIL_PROTOCOL,        /* any other TLS error */
    PLOG_TLS_FAIL_TIMEOUT,         /* server: no handshake within the timeout */
    PLOG_TLS_FAIL_LINGER_ENDED,    /* server: a refused client kept the connection open */
    PLOG_TLS_FAIL_OVER_CAPACITY,   /* server: refused at the connection cap */
    PLOG_TLS_FAIL_COUNT
} plog_tls_fail_reason;

/* plog_tls_stats counts this process's TLS connections (all configs): handshakes
 * completed, connections that failed with a TLS error (verification, protocol:
 * the first four reasons), each reason of failed[], and application-data writes,
 * each one TLS record or more (one per SP message of up to 16 KiB: see conn_send
 * in engine.c). Counts are monotonic and read without locking. */
typedef struct plog_tls_stats {
    uint64_t handshakes;
    uint64_t failures;
    uint64_t failed[PLOG_TLS_FAIL_COUNT];
    uint64_t writes;
} plog_tls_stats;
void plog_tls_stats_get(plog_tls_stats *out);

/* plog_tls_config_limits bounds the connections of a server config: at most
 * max_conns at once (0: no cap), handshaking ones included (beyond it a new TCP
 * connection is closed at once, and reported to the failure hook), and a
 * connection whose handshake has not finished handshake_timeout_ms after it was
 * accepted is closed, whether the client sent nothing or part of a handshake
 * (0: 10 s, the deadline of every server config without limits). Set it before
 * the config is in use.
 * PLOG_OK, or PLOG_EINVAL when cfg is not a server config from
 * plog_tls_config_alloc. */
int plog_tls_config_limits(nng_tls_config *cfg, unsigned max_conns, uint32_t handshake_timeout_ms);

#endif
