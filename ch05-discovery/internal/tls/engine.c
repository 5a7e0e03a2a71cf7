/* engine.c - nng's TLS engine ops on OpenSSL 3 (see engine.h for the contract).
 *
 * Objects:
 *   struct nng_tls_engine_config  one per nng_tls_config: an SSL_CTX plus the client's
 *                                 server name and the last failure text (errmsg).
 *   struct nng_tls_engine_conn    one per TLS stream: an SSL whose BIO is bio_method,
 *                                 and the peer identity once the handshake is done.
 * nng allocates both (zeroed) behind its own objects and calls conn ops with the
 * connection's lock held, so a conn needs no lock of its own; a config is shared by
 * its connections, so its errmsg has a mutex. The same mutex guards its SSL_CTX
 * pointer, which a reload replaces (plog_tls_config_adopt): a connection takes the
 * context current at its init and keeps it (an SSL holds a reference to its
 * SSL_CTX), so new handshakes use the new certificate while open ones go on.
 *
 * BIO bridge: ciphertext <-> nng_tls_engine_send/_recv (nng's ring buffers in front of
 * the TCP stream). Both copy at most what fits and answer NNG_EAGAIN when nothing does;
 * the BIO turns that into a retry, OpenSSL into SSL_ERROR_WANT_*, we into NNG_EAGAIN,
 * and nng calls again when the TCP side made progress. */
#include "internal/tls/engine.h"

#include <arpa/inet.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <nng/supplemental/tls/engine.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "internal/err/err.h"
#include "internal/tls/engine_int.h"

struct nng_tls_engine_config {
    SSL_CTX *ctx; /* replaced under lock by plog_tls_config_adopt */
    nng_tls_mode mode;
    char *server_name;                  /* client: verified name; NULL = no check */
    nng_tls_config *owner;              /* set by plog_tls_config_alloc (registry key) */
    struct nng_tls_engine_config *next; /* registry list, under registry_lock */
    pthread_mutex_t lock;               /* guards errmsg, on_failure, failure_arg; ctx once live */
    char errmsg[PLOG_TLS_ERRMSG_SIZE];
    plog_tls_failure_fn on_failure;
    void *failure_arg;
    int64_t report_window_ms; /* hook reports: when the current second began */
    unsigned reports;         /* reports passed on in it */
    uint64_t unreported;      /* failures not passed on since the last report */
    /* Server admission (see "admission" below), under conns_lock. */
    pthread_mutex_t conns_lock;
    unsigned max_conns;     /* 0: no cap */
    uint32_t hs_timeout_ms; /* 0: NEGO_TIMEOUT_MS */
    unsigned nconns;        /* connections initialised and not yet finalised */
};

struct nng_tls_engine_conn {
    void *tls; /* nng's handle for nng_tls_engine_send/_recv */
    SSL *ssl;
    struct nng_tls_engine_config *cfg;
    int io_err;       /* the nng error our BIO last saw (not EAGAIN), 0 if none */
    bool established; /* handshake done and peer examined (once) */
    bool failed;      /* a fatal TLS error was reported; counted once */
    bool have_peer;   /* peer verified with exactly one usable CN */
    int lingering;    /* server: the refusal (NNG_EPEERAUTH) held back, see conn_linger */
    uint8_t *hsbuf;   /* handshake bytes held back until OpenSSL flushes a flight */
    size_t hslen;
    plog_tls_peer peer;
    /* Coalescing of SP messages (see conn_send): */
    int sp;                /* SP_UNKNOWN until the first application write, then see sp_classify */
    uint64_t sp_left;      /* bytes of the current SP message not yet seen; 0 at a boundary */
    uint8_t *co_buf;       /* CO_MAX bytes, allocated with the first gathered message */
    size_t co_len;         /* bytes gathered in co_buf; 0 when not gathering */
    char remote[64];       /* server: the client's address, for failure reports */
    bool counted;          /* admission (server): counted in cfg->nconns */
    nng_aio *deadline;     /* server: the handshake deadline (see conn_deadline) */
    uint8_t deadline_byte; /* its receive buffer, never filled */
    uint32_t deadline_ms;
    int64_t linger_since_ms; /* when the refusal linger began */
    nng_aio *kick;           /* server: runs nng's queues once the connection ended (conn_ended) */
    atomic_int ended;        /* server: why it ended, once the deadline aio saw it; 0 while alive */
    atomic_bool ending;      /* server: conn_ended ran (it runs once) */
    nng_aio *recheck;        /* server: asks again whether the stream is gone (see stream_gone) */
    atomic_bool rechecking;  /* recheck is armed */
    uint32_t recheck_ms;     /* its next delay */
};

/* SP framing (nng's tcp and tls transports): after an 8-byte connection header
 * 00 'S' 'P' 00 <proto u16 BE> 00 00, each message is an 8-byte big-endian length
 * followed by that many bytes (the protocol header, then the body). */
enum { SP_UNKNOWN, SP_HEADER, SP_YES, SP_NO };

/* The largest message (length prefix included) gathered into one record: TLS's
 * largest plaintext record, so that a gathered message is one SSL_write. */
#define CO_MAX 16384

/* A refusing connection lingers at most this long (see conn_linger). */
#define LINGER_MAX_MS 1000

/* A server handshake's deadline when its config sets none: the 10 s that nng
 * 1.5.2 means to give a negotiation but does not enforce (docs/NNG.md, pitfall 15). */
#define NEGO_TIMEOUT_MS 10000

/* A receive that waits on a stream that looks alive asks again this long after,
 * then twice as long each time, up to RECHECK_MAX_MS (see stream_gone). */
#define RECHECK_FIRST_MS 100
#define RECHECK_MAX_MS 10000

/* A config's failure hook hears of at most this many failures a second; the
 * next report it hears says how many it missed (a flood of refused or silent
 * connections must not flood the server's log; the counters count them all). */
#define REPORTS_PER_S 10

/* The largest handshake flight held back for one TCP segment (see bio_write_ex);
 * an EC certificate flight is ~1.5 KiB. Bigger flights go out in pieces. */
#define HSBUF_SIZE 8192

/* The thread-local slot of the identity hand-off (engine.h, peer.h). */
static _Thread_local bool slot_full;
static _Thread_local plog_tls_peer slot;

/* config_init runs synchronously inside nng_tls_config_alloc(); this is how
 * plog_tls_config_alloc learns which engine config belongs to the nng config. */
static _Thread_local struct nng_tls_engine_config *last_config_init;

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static struct nng_tls_engine_config *registry;

static pthread_mutex_t register_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t engine_once = PTHREAD_ONCE_INIT;
static BIO_METHOD *bio_method;

static atomic_uint_fast64_t stat_handshakes;
static atomic_uint_fast64_t stat_failures;
static atomic_uint_fast64_t stat_writes;
static atomic_uint_fast64_t stat_reason[PLOG_TLS_FAIL_COUNT];

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void count_failure(plog_tls_fail_reason r)
{
    atomic_fetch_add_explicit(&stat_reason[r], 1, memory_order_relaxed);
}

static void config_set_errmsg(struct nng_tls_engine_config *cfg, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* ---- BIO bridge ---------------------------------------------------------------- */

/* hs_push hands the held-back handshake bytes to nng. 1 when all went, 0 with the
 * retry flag set when nng's buffer is full, 0 without it on a stream error. */
static int hs_push(BIO *b, struct nng_tls_engine_conn *c)
{
    size_t off = 0;
    int rv = 0;
    while (off < c->hslen) {
        size_t n = c->hslen - off;
        if ((rv = nng_tls_engine_send(c->tls, c->hsbuf + off, &n)) != 0)
            break;
        off += n;
    }
    memmove(c->hsbuf, c->hsbuf + off, c->hslen - off);
    c->hslen -= off;
    if (c->hslen == 0) {
        free(c->hsbuf);
        c->hsbuf = NULL;
        return 1;
    }
    if (rv == NNG_EAGAIN)
        BIO_set_retry_write(b);
    else
        c->io_err = rv;
    return 0;
}

/* bio_write_ex: during the handshake, bytes are held back until OpenSSL flushes at
 * the end of a flight, so that a flight leaves in one TCP segment. A peer that
 * refuses us after reading part of a flight would otherwise close its socket with
 * the rest unread, and the kernel's reset would destroy its alert before we read
 * it (then the client sees "connection reset" where it should see "certificate
 * expired"). Application data goes straight through. */
static int bio_write_ex(BIO *b, const char *buf, size_t len, size_t *written)
{
    struct nng_tls_engine_conn *c = BIO_get_data(b);

    BIO_clear_retry_flags(b);
    if (SSL_in_init(c->ssl) && c->hslen + len <= HSBUF_SIZE) {
        if (c->hsbuf == NULL && (c->hsbuf = malloc(HSBUF_SIZE)) == NULL) {
            c->io_err = NNG_ENOMEM;
            return 0;
        }
        memcpy(c->hsbuf + c->hslen, buf, len);
        c->hslen += len;
        *written = len;
        return 1;
    }
    if (c->hslen > 0 && hs_push(b, c) != 1)
        return 0; /* what was held back goes first */
    size_t n = len;
    int rv = nng_tls_engine_send(c->tls, (const uint8_t *)buf, &n);
    if (rv == 0) {
        *written = n;
        return 1;
    }
    if (rv == NNG_EAGAIN)
        BIO_set_retry_write(b);
    else
        c->io_err = rv;
    return 0;
}

static int bio_read_ex(BIO *b, char *buf, size_t len, size_t *readbytes)
{
    struct nng_tls_engine_conn *c = BIO_get_data(b);
    size_t n = len;

    BIO_clear_retry_flags(b);
    int rv = nng_tls_engine_recv(c->tls, (uint8_t *)buf, &n);
    if (rv == 0) {
        *readbytes = n;
        return 1;
    }
    if (rv == NNG_EAGAIN)
        BIO_set_retry_read(b);
    else
        c->io_err = rv;
    return 0;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    (void)num, (void)ptr;
    if (cmd != BIO_CTRL_FLUSH)
        return 0;
    /* Past us, nng's buffer sends by itself: a flush only pushes what we held. */
    struct nng_tls_engine_conn *c = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    return c->hslen == 0 ? 1 : hs_push(b, c);
}

static int bio_create(BIO *b)
{
    BIO_set_init(b, 1);
    return 1;
}

/* ---- errors ---------------------------------------------------------------------- */

static void config_set_errmsg(struct nng_tls_engine_config *cfg, const char *fmt, ...)
{
    va_list ap;
    pthread_mutex_lock(&cfg->lock);
    va_start(ap, fmt);
    vsnprintf(cfg->errmsg, sizeof cfg->errmsg, fmt, ap);
    va_end(ap);
    pthread_mutex_unlock(&cfg->lock);
}

/* conn_report_failure records text, this connection's failure, as the config's
 * latest and tells the config's failure hook, if any, with the connection's remote
 * address: the text passed on is this connection's own, never another's that
 * failed at the same time. The hook hears of at most REPORTS_PER_S failures a
 * second; the first report after a gap says how many it did not hear of. */
static void conn_report_failure(struct nng_tls_engine_conn *c, const char *text)
{
    struct nng_tls_engine_config *cfg = c->cfg;
    int64_t now = mono_ms();
    uint64_t missed = 0;
    pthread_mutex_lock(&cfg->lock);
    snprintf(cfg->errmsg, sizeof cfg->errmsg, "%s", text);
    plog_tls_failure_fn fn = cfg->on_failure;
    void *arg = cfg->failure_arg;
    if (now - cfg->report_window_ms >= 1000) {
        cfg->report_window_ms = now;
        cfg->reports = 0;
    }
    if (fn != NULL && cfg->reports >= REPORTS_PER_S) {
        cfg->unreported++;
        fn = NULL;
    } else if (fn != NULL) {
        cfg->reports++;
        missed = cfg->unreported;
        cfg->unreported = 0;
    }
    pthread_mutex_unlock(&cfg->lock);
    if (fn == NULL)
        return;
    if (missed == 0) {
        fn(arg, c->remote, text);
        return;
    }
    char more[PLOG_TLS_ERRMSG_SIZE + 96];
    snprintf(more, sizeof more, "%s (and %llu more failures not reported, over %d a second)", text,
             (unsigned long long)missed, REPORTS_PER_S);
    fn(arg, c->remote, more);
}

/* ssl_errtext writes OpenSSL's reason for the oldest queued error ("unknown ca"),
 * or what when the queue is empty. */
static void ssl_errtext(unsigned long e, const char *what, char *buf, size_t size)
{
    const char *r = e != 0 ? ERR_reason_error_string(e) : NULL;
    if (r != NULL)
        snprintf(buf, size, "%s", r);
    else if (e != 0)
        ERR_error_string_n(e, buf, size);
    else
        snprintf(buf, size, "%s", what);
}

/* is_auth_alert: the peer told us, by alert, that it rejected our certificate (or
 * that we sent none). These are authentication failures, not protocol errors. */
static bool is_auth_reason(int reason)
{
    switch (reason) {
    case SSL_R_SSLV3_ALERT_BAD_CERTIFICATE:
    case SSL_R_SSLV3_ALERT_UNSUPPORTED_CERTIFICATE:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_REVOKED:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN:
    case SSL_R_TLSV1_ALERT_UNKNOWN_CA:
    case SSL_R_TLSV1_ALERT_ACCESS_DENIED:
    case SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED:
        return true;
    default:
        return false;
    }
}

static int conn_linger(struct nng_tls_engine_conn *c);

/* clear_errors empties this thread's OpenSSL error queue, as every SSL call on a
 * connection needs first (nng's threads serve many connections) and every failure
 * after. The queue is empty nearly always, and ERR_clear_error resets all of its
 * slots regardless: about 800 instructions, several times per message on each
 * side. ERR_peek_error, which is also how SSL_get_error reads the queue, sees an
 * empty one for a fraction of that. */
static void clear_errors(void)
{
    if (ERR_peek_error() != 0)
        ERR_clear_error();
}

/* conn_error maps a failed SSL_* call to an nng error code, records the reason of a
 * fatal one in the config's errmsg and leaves the error queue empty. */
static int conn_error(struct nng_tls_engine_conn *c, int ret)
{
    int kind = SSL_get_error(c->ssl, ret);
    int rv;

    switch (kind) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE:
        clear_errors();
        return NNG_EAGAIN;
    case SSL_ERROR_ZERO_RETURN: /* close_notify: an orderly end */
        clear_errors();
        /* Not NNG_ECLOSED: nng 1.5.2's TLS transport hands a failed negotiation's
         * error to the listener's accept, and an accept that fails NNG_ECLOSED
         * means "listener closed": it never accepts again. A peer that finished
         * the handshake and hung up politely (openssl s_client </dev/null) would
         * stop the server accepting anyone. */
        return NNG_ECONNSHUT;
    case SSL_ERROR_SYSCALL: /* our BIO failed: the stream under us is gone */
        clear_errors();
        if (c->io_err == 0 && SSL_want(c->ssl) == SSL_WRITING && BIO_should_write(SSL_get_wbio(c->ssl)))
            /* Not gone: a flush that must wait for room in nng's send buffer. During
             * the handshake OpenSSL 3.0 writes through a buffering BIO whose flush,
             * when it holds nothing itself, does not pass on our BIO's retry flag,
             * and SSL_get_error reads the flag there: the connection failed when a
             * flight outgrew nng's 16 KiB buffer (a big certificate, a CA list of a
             * few hundred names). OpenSSL resumes the flush on the next call. */
            return NNG_EAGAIN;
        return c->io_err != 0 ? c->io_err : NNG_ECONNSHUT;
    default:
        break;
    }

    unsigned long e = ERR_peek_error();
    long verify = SSL_get_verify_result(c->ssl);
    char reason[160], text[PLOG_TLS_ERRMSG_SIZE];
    ssl_errtext(e, "TLS failure", reason, sizeof reason);
    bool we_are_server = c->cfg->mode == NNG_TLS_MODE_SERVER;
    plog_tls_fail_reason why;

    if (verify != X509_V_OK) {
        /* We checked the peer's certificate and it failed. */
        rv = NNG_EPEERAUTH;
        why = PLOG_TLS_FAIL_BAD_CERTIFICATE;
        snprintf(text, sizeof text, "certificate verify failed: %s (%s certificate)",
                 X509_verify_cert_error_string(verify), we_are_server ? "client" : "server");
    } else if (e != 0 && ERR_GET_LIB(e) == ERR_LIB_SSL &&
               ERR_GET_REASON(e) == SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE) {
        rv = NNG_EPEERAUTH;
        why = PLOG_TLS_FAIL_NO_CERTIFICATE;
        snprintf(text, sizeof text, "peer sent no certificate: %s", reason);
    } else if (e != 0 && ERR_GET_LIB(e) == ERR_LIB_SSL && is_auth_reason(ERR_GET_REASON(e))) {
        rv = NNG_EPEERAUTH;
        why = PLOG_TLS_FAIL_REFUSED_BY_PEER;
        snprintf(text, sizeof text, "peer refused our certificate: %s", reason);
    } else {
        rv = NNG_ECRYPTO;
        why = PLOG_TLS_FAIL_PROTOCOL;
        snprintf(text, sizeof text, "TLS handshake or record failure: %s", reason);
    }
    clear_errors();
    if (!c->failed) {
        c->failed = true;
        atomic_fetch_add_explicit(&stat_failures, 1, memory_order_relaxed);
        count_failure(why);
        conn_report_failure(c, text);
    }
    if (rv == NNG_EPEERAUTH && c->cfg->mode == NNG_TLS_MODE_SERVER && !c->established && c->io_err == 0 &&
        c->hslen == 0) {
        c->lingering = rv;
        c->linger_since_ms = mono_ms();
        return conn_linger(c);
    }
    return rv;
}

/* conn_linger keeps a server connection that refused the client's certificate open
 * until the client hangs up. OpenSSL has handed the alert that says why ("certificate
 * expired") to nng's send buffer, but nng closes the TCP stream as soon as an op
 * fails, and when its previous send has not completed yet the alert is still in the
 * buffer and dies with it: the client would see a bare "connection shutdown". So we
 * answer NNG_EAGAIN, discard whatever the client sends, and keep a TCP receive
 * posted; the client reads the alert and closes, and nng sees that. The linger is
 * bounded: past LINGER_MAX_MS the next event on the connection ends it (with the
 * refusal's code); one that stays silent is cut by the handshake deadline
 * (conn_deadline), and counts against the connection cap meanwhile. */
static int conn_linger(struct nng_tls_engine_conn *c)
{
    if (mono_ms() - c->linger_since_ms > LINGER_MAX_MS) {
        count_failure(PLOG_TLS_FAIL_LINGER_ENDED);
        return c->lingering;
    }
    uint8_t scratch[512];
    size_t n;
    do {
        n = sizeof scratch;
    } while (nng_tls_engine_recv(c->tls, scratch, &n) == 0);
    return NNG_EAGAIN;
}

/* ---- peer identity ---------------------------------------------------------------- */

/* peer_cn copies the subject's CN when there is exactly one, it converts to UTF-8,
 * has no embedded NUL and fits: anything else is no identity rather than a guess. */
static bool peer_cn(X509 *cert, char *cn, size_t size)
{
    X509_NAME *name = X509_get_subject_name(cert);
    int i = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
    if (i < 0 || X509_NAME_get_index_by_NID(name, NID_commonName, i) >= 0)
        return false;
    ASN1_STRING *data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i));
    unsigned char *utf8 = NULL;
    int n = ASN1_STRING_to_UTF8(&utf8, data);
    bool ok = n > 0 && (size_t)n < size && memchr(utf8, '\0', (size_t)n) == NULL;
    if (ok) {
        memcpy(cn, utf8, (size_t)n);
        cn[n] = '\0';
    }
    OPENSSL_free(utf8);
    return ok;
}

/* read_cert reads the first certificate of cert_file (PEM): *rv is PLOG_EIO when
 * the file cannot be read, PLOG_EINVAL when it holds none (NULL returned). The
 * caller clears OpenSSL's error queue once it is done with the certificate. */
static X509 *read_cert(const char *cert_file, int *rv)
{
    BIO *b = BIO_new_file(cert_file, "r");
    X509 *x = b != NULL ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
    *rv = b == NULL ? PLOG_EIO : x == NULL ? PLOG_EINVAL : PLOG_OK;
    BIO_free(b);
    return x;
}

int plog_tls_cert_cn(const char *cert_file, char *cn, size_t size)
{
    int rv;
    X509 *x = read_cert(cert_file, &rv);
    if (x != NULL && !peer_cn(x, cn, size))
        rv = PLOG_EINVAL;
    X509_free(x);
    clear_errors();
    return rv;
}

/* See engine.h. The check a client makes (conn_init): an IP literal against the
 * iPAddress SANs, a name against the DNS ones. */
int plog_tls_cert_names_host(const char *cert_file, const char *host)
{
    int rv;
    X509 *x = read_cert(cert_file, &rv);
    if (x != NULL) {
        unsigned char addr[16];
        bool ip = inet_pton(AF_INET, host, addr) == 1 || inet_pton(AF_INET6, host, addr) == 1;
        int ok = ip ? X509_check_ip_asc(x, host, 0) : X509_check_host(x, host, strlen(host), 0, NULL);
        rv = ok == 1 ? PLOG_OK : PLOG_EPERM;
    }
    X509_free(x);
    clear_errors();
    return rv;
}

/* conn_established runs once, the first time an op sees the handshake finished:
 * it counts it and records the verified peer. */
static void conn_established(struct nng_tls_engine_conn *c)
{
    if (c->established || !SSL_is_init_finished(c->ssl))
        return;
    c->established = true;
    atomic_fetch_add_explicit(&stat_handshakes, 1, memory_order_relaxed);

    X509 *cert = SSL_get0_peer_certificate(c->ssl);
    if (cert == NULL || SSL_get_verify_result(c->ssl) != X509_V_OK)
        return;
    if (!peer_cn(cert, c->peer.cn, sizeof c->peer.cn))
        return;
    unsigned int len = 0;
    if (X509_digest(cert, EVP_sha256(), c->peer.sha256, &len) != 1 || len != 32) {
        clear_errors();
        return;
    }
    snprintf(c->peer.version, sizeof c->peer.version, "%s", SSL_get_version(c->ssl));
    c->have_peer = true;
}

void plog_tls_peer_slot_clear(void)
{
    slot_full = false;
}

bool plog_tls_peer_slot_take(plog_tls_peer *out)
{
    if (!slot_full)
        return false;
    *out = slot;
    slot_full = false;
    return true;
}

/* ---- admission (server) ---------------------------------------------------------- */
/* A client that never completes a handshake (no certificate, or just an open TCP
 * connection) holds a descriptor and nng's 32 KiB of buffers for as long as it
 * likes: nng 1.5.2's 10 s negotiation timeout never fires while the handshake
 * waits for the client (docs/NNG.md, pitfall 15). So a server config counts its
 * connections (from init to fini) and refuses one beyond max_conns at once, and
 * each connection gets a deadline, hs_timeout_ms after it was accepted, that
 * closes it if its handshake has not finished (conn_deadline). A refusal is
 * NNG_ECONNABORTED and a deadline NNG_ETIMEDOUT on purpose: nng 1.5.2 hands the
 * failure of a connection's negotiation to the listener's pending accept, and its
 * listener re-arms at once for those codes, backs off 100 ms for most others, and
 * stops accepting for good on NNG_ECLOSED. For the same reason connections are
 * never closed with nng_stream_close, which fails them with NNG_ECLOSED. */

/* conn_admit counts c in and sets its deadline, or refuses it at the cap (and
 * reports that): 0 or NNG_ECONNABORTED. */
static int conn_admit(struct nng_tls_engine_config *cfg, struct nng_tls_engine_conn *c)
{
    unsigned open = 0;
    pthread_mutex_lock(&cfg->conns_lock);
    if (cfg->max_conns != 0 && cfg->nconns >= cfg->max_conns) {
        open = cfg->nconns;
    } else {
        cfg->nconns++;
        c->counted = true;
        c->deadline_ms = cfg->hs_timeout_ms != 0 ? cfg->hs_timeout_ms : NEGO_TIMEOUT_MS;
    }
    pthread_mutex_unlock(&cfg->conns_lock);
    if (c->counted)
        return 0;
    char text[96];
    snprintf(text, sizeof text, "refused: the server is at its limit of %u connections", open);
    count_failure(PLOG_TLS_FAIL_OVER_CAPACITY);
    conn_report_failure(c, text);
    return NNG_ECONNABORTED;
}

/* The handshake deadline. nng gives an engine no timer and no way to fail a
 * connection from outside but closing it (NNG_ECLOSED, see above). What it does
 * have (tls_common.c, 1.5.2): a receive on the TLS stream whose aio times out
 * makes nng abort the TCP receive under it (tls_cancel) when that receive is the
 * first one queued, and a failed TCP receive fails the whole connection, and with
 * it the transport's negotiation, with the same code (tls_tcp_error). So at init
 * a server connection posts a receive of its own, the deadline aio, with the
 * deadline as its timeout. While the handshake runs nobody else receives, and
 * OpenSSL, waiting for the client, keeps a TCP receive posted: when the deadline
 * expires the connection fails NNG_ETIMEDOUT, silent or not. Once the handshake
 * is done the first delivery of data goes to the deadline aio first (nng queues
 * receives in order); conn_recv recognises its buffer and finishes it with
 * NNG_ECANCELED without taking a byte, so the transport's own receives get every
 * byte. A connection's fini waits for the deadline aio's callback; by then nng
 * has finished it (every path that ends a connection fails its queued aios). */

/* conn_ended records that the connection ended under the engine, and fails every
 * op queued on it. A client that connects and hangs up at once makes nng 1.5.2 fail
 * the TCP stream before the SP transport has posted its first send (tls_tcp_error
 * fails only what is queued: the deadline aio), and leaves the TCP receive aio
 * closed: the transport's send then waits, through OpenSSL, for a TCP receive that
 * nng can never start, the 10 s negotiation timeout cannot abort it (pitfall 15),
 * and the connection, its descriptor and its slot under the cap were never freed.
 * So once the deadline aio has ended, every op answers why (conn_gone), and an
 * empty send and receive on the stream make nng run each queue once, so an op
 * that already waits gets that answer too. NNG_ECONNSHUT and NNG_ECLOSED are
 * answered NNG_ECONNRESET: the transport hands a negotiation's error to nng's
 * listener, which pauses 100 ms after the first and stops for good after the
 * second (see admission). */
static void conn_ended(struct nng_tls_engine_conn *c, int rv)
{
    if (atomic_exchange(&c->ending, true))
        return; /* the deadline's callback and a recheck may both see the end; kick is one aio */
    atomic_store(&c->ended, rv == NNG_ECONNSHUT || rv == NNG_ECLOSED ? NNG_ECONNRESET : rv);
    nng_stream_send((nng_stream *)c->tls, c->kick);
    nng_aio_wait(c->kick);
    nng_stream_recv((nng_stream *)c->tls, c->kick);
    nng_aio_wait(c->kick);
}

/* conn_gone: 0 while the connection lives, else the error every op answers. */
static int conn_gone(struct nng_tls_engine_conn *c)
{
    return atomic_load(&c->ended); /* nng zeroes a connection's memory */
}

/* deadline_cb runs when the deadline aio finishes: NNG_ECANCELED means the
 * handshake finished (conn_recv) or the connection is being finalised; anything
 * else, that the connection ended: on NNG_ETIMEDOUT the deadline failed it. It
 * runs outside nng's connection lock, after the connection's last op that could
 * change lingering, and reads only fields that no op changes any more. */
static void deadline_cb(void *arg)
{
    struct nng_tls_engine_conn *c = arg;
    int rv = nng_aio_result(c->deadline);
    if (rv == NNG_ECANCELED)
        return;
    conn_ended(c, rv);
    if (rv != NNG_ETIMEDOUT)
        return;
    if (c->lingering != 0) {
        count_failure(PLOG_TLS_FAIL_LINGER_ENDED); /* its refusal was reported */
        return;
    }
    char text[96];
    snprintf(text, sizeof text, "no TLS handshake within %u ms", (unsigned)c->deadline_ms);
    count_failure(PLOG_TLS_FAIL_TIMEOUT);
    conn_report_failure(c, text);
}

static void recheck_cb(void *arg);

/* conn_deadline posts the deadline aio of a server connection (see above). nng
 * answers the post at once with a call of conn_recv, which starts the handshake:
 * that posts the TCP receive that the deadline aborts. */
static int conn_deadline(struct nng_tls_engine_conn *c)
{
    int rv = nng_aio_alloc(&c->kick, NULL, NULL);
    if (rv != 0 || (rv = nng_aio_alloc(&c->recheck, recheck_cb, c)) != 0 ||
        (rv = nng_aio_alloc(&c->deadline, deadline_cb, c)) != 0)
        return rv;
    c->recheck_ms = RECHECK_FIRST_MS;
    nng_iov iov = {.iov_buf = &c->deadline_byte, .iov_len = 1};
    if ((rv = nng_aio_set_iov(c->deadline, 1, &iov)) != 0)
        return rv;
    nng_aio_set_timeout(c->deadline, (nng_duration)c->deadline_ms);
    nng_stream_recv((nng_stream *)c->tls, c->deadline);
    return 0;
}

static void conn_leave(struct nng_tls_engine_conn *c)
{
    if (c->cfg == NULL || c->cfg->mode != NNG_TLS_MODE_SERVER)
        return;
    pthread_mutex_lock(&c->cfg->conns_lock);
    if (c->counted)
        c->cfg->nconns--;
    c->counted = false;
    pthread_mutex_unlock(&c->cfg->conns_lock);
}

void plog_tls_addr_format(const nng_sockaddr *sa, char *buf, size_t size)
{
    char ip[INET6_ADDRSTRLEN];
    snprintf(buf, size, "?");
    if (sa->s_family == NNG_AF_INET && inet_ntop(AF_INET, &sa->s_in.sa_addr, ip, sizeof ip) != NULL)
        snprintf(buf, size, "%s:%u", ip, ntohs(sa->s_in.sa_port));
    else if (sa->s_family == NNG_AF_INET6 && inet_ntop(AF_INET6, sa->s_in6.sa_addr, ip, sizeof ip) != NULL)
        snprintf(buf, size, "[%s]:%u", ip, ntohs(sa->s_in6.sa_port));
}

/* remote_addr writes the peer's address of a server connection, "?" if unknown.
 * nng 1.5.2 hands conn init its TLS stream object (tls_common.c tls_start), whose
 * first member is the nng_stream, and the stream's getter asks the TCP stream
 * under it; engine_test checks that failure reports carry the address. */
static void remote_addr(void *tls, char *buf, size_t size)
{
    nng_sockaddr sa;
    if (nng_stream_get_addr((nng_stream *)tls, NNG_OPT_REMADDR, &sa) != 0)
        snprintf(buf, size, "?");
    else
        plog_tls_addr_format(&sa, buf, size);
}

/* ---- connection ops --------------------------------------------------------------- */

static int conn_init(struct nng_tls_engine_conn *c, void *tls, struct nng_tls_engine_config *cfg)
{
    c->tls = tls;
    c->cfg = cfg;
    if (cfg->mode == NNG_TLS_MODE_SERVER) {
        remote_addr(tls, c->remote, sizeof c->remote);
        int rv = conn_admit(cfg, c);
        if (rv != 0)
            return rv;
    } else if (cfg->server_name == NULL) {
        /* A client that checks no name accepts any certificate of the CA for any
         * server: never a silent default. */
        config_set_errmsg(cfg, "no server name to verify: set one (the host of the address)");
        return NNG_EINVAL;
    }
    clear_errors();
    pthread_mutex_lock(&cfg->lock);
    SSL_CTX *ctx = cfg->ctx;
    SSL_CTX_up_ref(ctx); /* a reload may drop cfg's reference the moment we unlock */
    pthread_mutex_unlock(&cfg->lock);
    c->ssl = SSL_new(ctx); /* takes its own reference */
    SSL_CTX_free(ctx);
    if (c->ssl == NULL)
        goto fail;
    BIO *bio = BIO_new(bio_method);
    if (bio == NULL)
        goto fail;
    BIO_set_data(bio, c);
    SSL_set_bio(c->ssl, bio, bio); /* the SSL now owns bio */

    if (cfg->mode == NNG_TLS_MODE_SERVER) {
        SSL_set_accept_state(c->ssl);
    } else {
        SSL_set_connect_state(c->ssl);
        const char *name = cfg->server_name;
        unsigned char addr[16];
        if (inet_pton(AF_INET, name, addr) == 1 || inet_pton(AF_INET6, name, addr) == 1) {
            /* An IP literal is checked against the iPAddress SANs; SNI may not
             * carry an address (RFC 6066 §3). */
            if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl), name) != 1)
                goto fail;
        } else if (SSL_set_tlsext_host_name(c->ssl, name) != 1 || SSL_set1_host(c->ssl, name) != 1) {
            goto fail;
        }
    }
    if (cfg->mode == NNG_TLS_MODE_SERVER && conn_deadline(c) != 0)
        goto fail;
    return 0;

fail:
    clear_errors();
    SSL_free(c->ssl);
    c->ssl = NULL;
    conn_leave(c);
    return NNG_ENOMEM;
}

static void conn_fini(struct nng_tls_engine_conn *c)
{
    /* nng 1.5.2 finalises every connection, also one whose init failed or never ran. */
    if (c->deadline != NULL)
        nng_aio_free(c->deadline); /* waits for deadline_cb */
    c->deadline = NULL;
    nng_aio_free(c->recheck); /* waits for recheck_cb; one that runs uses kick */
    c->recheck = NULL;
    nng_aio_free(c->kick);
    c->kick = NULL;
    conn_leave(c);
    SSL_free(c->ssl);
    c->ssl = NULL;
    free(c->hsbuf);
    c->hsbuf = NULL;
    free(c->co_buf);
    c->co_buf = NULL;
}

static void conn_close(struct nng_tls_engine_conn *c)
{
    /* A close_notify, best effort: nng closes the TCP stream right after us. */
    if (c->ssl != NULL && SSL_is_init_finished(c->ssl) && !c->failed) {
        clear_errors();
        (void)SSL_shutdown(c->ssl);
        clear_errors();
    }
}

static int conn_handshake(struct nng_tls_engine_conn *c)
{
    int gone = conn_gone(c);
    if (gone != 0)
        return gone;
    if (c->lingering != 0)
        return conn_linger(c);
    clear_errors();
    int ret = SSL_do_handshake(c->ssl);
    if (ret == 1) {
        conn_established(c);
        return 0;
    }
    return conn_error(c, ret);
}

/* stream_gone says whether the TCP connection under c has ended: the kernel knows
 * no peer for it any more (getpeername fails in the CLOSE state: after a reset, or
 * once the peer acknowledged the FIN of nng's own shutdown). nng 1.5.2 fails a
 * connection's queued ops when its TCP stream fails, but a stream that fails while
 * none is queued (a client that hangs up just after the handshake or the SP header
 * exchange, before the transport or the protocol posts its next receive) closes
 * the TCP aios: the next receive then waits, through OpenSSL, for a TCP receive
 * that nng never starts, and the connection, its descriptor and its slot under the
 * cap are never freed (docs/NNG.md, pitfall 16). Asked when a receive must wait,
 * and again later (recheck_cb): a peer that hung up with a FIN leaves the socket
 * alive to getpeername until it acknowledges nng's FIN, a round trip later. */
static bool stream_gone(struct nng_tls_engine_conn *c)
{
    nng_sockaddr sa;
    return nng_stream_get_addr((nng_stream *)c->tls, NNG_OPT_REMADDR, &sa) != 0;
}

atomic_bool plog_tls_recheck_only;

/* recheck_cb asks stream_gone again, RECHECK_FIRST_MS after a server connection's
 * first waiting receive and then backing off to every RECHECK_MAX_MS for the
 * connection's life (one getpeername(2) per idle connection every 10 s), and ends
 * the connection once its stream is gone. Over a network with delay, the check a
 * waiting receive makes at once missed 7-8 of 10 clients that hung up with a FIN,
 * each leaking its connection for good. Its timer stops when the connection is
 * finalised (conn_fini frees the aio: nng_sleep_aio no longer starts it). */
static void recheck_cb(void *arg)
{
    struct nng_tls_engine_conn *c = arg;
    if (nng_aio_result(c->recheck) != 0 || conn_gone(c) != 0)
        return;
    if (stream_gone(c)) {
        conn_ended(c, NNG_ECONNRESET);
        return;
    }
    c->recheck_ms = c->recheck_ms >= RECHECK_MAX_MS / 2 ? RECHECK_MAX_MS : c->recheck_ms * 2;
    nng_sleep_aio((nng_duration)c->recheck_ms, c->recheck);
}

/* waiting_recv: what a receive that must wait answers (NNG_EAGAIN), or
 * NNG_ECONNRESET when the stream under it is gone; a server connection's recheck
 * timer starts with its first waiting receive. */
static int waiting_recv(struct nng_tls_engine_conn *c)
{
    if (!atomic_load(&plog_tls_recheck_only) && stream_gone(c))
        return NNG_ECONNRESET;
    if (c->recheck != NULL && !atomic_exchange(&c->rechecking, true))
        nng_sleep_aio((nng_duration)c->recheck_ms, c->recheck);
    return NNG_EAGAIN;
}

static int conn_recv(struct nng_tls_engine_conn *c, uint8_t *buf, size_t *len)
{
    if (buf == &c->deadline_byte) {
        /* The deadline aio (see admission): it drives the handshake when nng posts
         * it, and ends, taking no data, once the handshake is done. */
        int rv = SSL_is_init_finished(c->ssl) ? 0 : conn_handshake(c);
        return rv != 0 ? rv : NNG_ECANCELED;
    }
    int gone = conn_gone(c);
    if (gone != 0)
        return gone;
    if (c->lingering != 0)
        return conn_linger(c);
    size_t n = 0;
    clear_errors();
    int ret = SSL_read_ex(c->ssl, buf, *len, &n);
    if (ret == 1) {
        conn_established(c);
        *len = n;
        return 0;
    }
    int rv = conn_error(c, ret);
    return rv == NNG_EAGAIN ? waiting_recv(c) : rv;
}

/* ssl_send is one SSL_write_ex of len bytes at buf: 0 with *n written, or an nng
 * error (NNG_EAGAIN: call again later with the same bytes). */
static int ssl_send(struct nng_tls_engine_conn *c, const uint8_t *buf, size_t len, size_t *n)
{
    clear_errors();
    /* With SSL_MODE_ENABLE_PARTIAL_WRITE this returns after at least one record. */
    int ret = SSL_write_ex(c->ssl, buf, len, n);
    if (ret == 1) {
        conn_established(c);
        atomic_fetch_add_explicit(&stat_writes, 1, memory_order_relaxed);
        return 0;
    }
    return conn_error(c, ret);
}

static uint64_t get_be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

/* sp_classify looks at the first application write of a connection: nng's SP
 * transports start with their 8-byte header (SP_HEADER until it is written, then
 * SP_YES); anything else (HTTP over TLS, a websocket) is SP_NO, left alone for good. */
static void sp_classify(struct nng_tls_engine_conn *c, const uint8_t *buf, size_t len)
{
    static const uint8_t magic[4] = {0, 'S', 'P', 0};
    c->sp = len == 8 && memcmp(buf, magic, 4) == 0 && buf[6] == 0 && buf[7] == 0 ? SP_HEADER : SP_NO;
}

/* conn_send: nng's TLS layer hands the engine one piece of the caller's send at a
 * time and completes the caller partially after each (tls_common.c tls_do_send),
 * so nng's SP transport, which sends [length, header, body], would cost three TLS
 * records, three TCP writes and their completions per message. On an SP
 * connection the engine knows from the length prefix exactly how many bytes make
 * up the message: it accepts the prefix and the header into co_buf without
 * writing, and the call that brings the last byte of the message writes the whole
 * message as one record (one TCP write). Nothing ever waits for bytes that are not
 * already promised: a message is gathered only when its length prefix arrived
 * alone at a message boundary, and nng's transport sends every message whole
 * (it abandons the connection when a send fails midway, and then nothing held
 * matters any more; an SP peer can do nothing with part of a message anyway).
 * Messages larger than CO_MAX, and connections that do not
 * start with the SP header or break the framing, go straight through. */
static int conn_send(struct nng_tls_engine_conn *c, const uint8_t *buf, size_t *len)
{
    int gone = conn_gone(c);
    if (gone != 0)
        return gone;
    if (c->lingering != 0)
        return conn_linger(c);
    size_t n = 0;
    int rv;

    /* nng 1.5.2 hands over the transport's first send (the SP header) before the
     * handshake has finished. SSL_write must not be what finishes it: when a
     * handshake record is still half written (a flight larger than nng's 16 KiB
     * send buffer: a big certificate, a CA list of a few hundred names), OpenSSL 3
     * refuses any write shorter than that record ("bad length") and the connection
     * fails. The handshake is driven on its own until it is done. */
    if (!SSL_is_init_finished(c->ssl) && (rv = conn_handshake(c)) != 0)
        return rv;
    if (c->sp == SP_UNKNOWN)
        sp_classify(c, buf, *len);
    if (c->sp == SP_HEADER) {
        /* The header goes alone (the handshake may make this call come again). */
        if ((rv = ssl_send(c, buf, *len, &n)) != 0)
            return rv;
        if (n == *len)
            c->sp = SP_YES;
        *len = n;
        return 0;
    }
    if (c->co_len > 0) {
        /* Gathering: take what the message still lacks. */
        size_t take = *len < c->sp_left ? *len : (size_t)c->sp_left;
        memcpy(c->co_buf + c->co_len, buf, take);
        if (c->sp_left > take) {
            c->co_len += take;
            c->sp_left -= take;
            *len = take;
            return 0;
        }
        /* The message is complete: one record. It is at most CO_MAX, TLS's
         * largest record, so the write is all or nothing (NNG_EAGAIN: nng's
         * buffer is full; nng calls again with the same bytes once TCP took
         * some, and they are gathered again into the same buffer). */
        if ((rv = ssl_send(c, c->co_buf, c->co_len + take, &n)) != 0)
            return rv;
        c->co_len = 0;
        c->sp_left = 0;
        *len = take;
        return 0;
    } else if (c->sp == SP_YES && c->sp_left == 0) {
        /* A message boundary: this must be the length prefix, alone. */
        uint64_t mlen;
        if (*len != 8) {
            c->sp = SP_NO; /* not the framing we know: stop interpreting */
        } else if ((mlen = get_be64(buf)) > 0 && mlen <= CO_MAX - 8) {
            if (c->co_buf == NULL && (c->co_buf = malloc(CO_MAX)) == NULL)
                return NNG_ENOMEM;
            memcpy(c->co_buf, buf, 8);
            c->co_len = 8;
            c->sp_left = mlen;
            return 0; /* *len stays 8: all taken */
        } else {
            /* Too large to gather (or empty): the prefix goes alone, and the
             * message's bytes are counted as they pass. */
            if ((rv = ssl_send(c, buf, 8, &n)) != 0)
                return rv;
            c->sp_left = mlen;
            *len = n;
            return 0;
        }
    }

    if ((rv = ssl_send(c, buf, *len, &n)) != 0)
        return rv;
    if (c->sp == SP_YES && c->sp_left > 0)
        c->sp_left -= n < c->sp_left ? n : c->sp_left;
    *len = n;
    return 0;
}

/* conn_verified answers NNG_OPT_TLS_VERIFIED. OpenSSL reports X509_V_OK when the peer
 * sent no certificate at all, so the certificate's presence is checked too. It also
 * hands the identity to this thread's slot: the getter runs synchronously on the
 * thread that asked (nng 1.5.2 tls_get_verified), which is what peer.c relies on;
 * peer_test.c fails if that ever stops being true. */
static bool conn_verified(struct nng_tls_engine_conn *c)
{
    if (c->ssl == NULL || !SSL_is_init_finished(c->ssl))
        return false;
    conn_established(c);
    bool ok = SSL_get0_peer_certificate(c->ssl) != NULL && SSL_get_verify_result(c->ssl) == X509_V_OK;
    if (ok && c->have_peer) {
        slot = c->peer;
        slot_full = true;
    }
    return ok;
}

/* ---- config ops ------------------------------------------------------------------- */

static int config_init(struct nng_tls_engine_config *cfg, nng_tls_mode mode)
{
    cfg->mode = mode;
    ERR_clear_error();
    cfg->ctx = SSL_CTX_new(mode == NNG_TLS_MODE_SERVER ? TLS_server_method() : TLS_client_method());
    if (cfg->ctx == NULL) {
        ERR_clear_error();
        return NNG_ENOMEM;
    }
    if (pthread_mutex_init(&cfg->lock, NULL) != 0) {
        SSL_CTX_free(cfg->ctx);
        return NNG_ENOMEM;
    }
    if (pthread_mutex_init(&cfg->conns_lock, NULL) != 0) {
        pthread_mutex_destroy(&cfg->lock);
        SSL_CTX_free(cfg->ctx);
        return NNG_ENOMEM;
    }
    SSL_CTX_set_min_proto_version(cfg->ctx, TLS1_2_VERSION);
    SSL_CTX_set_max_proto_version(cfg->ctx, TLS1_3_VERSION);
    /* nng may hand a shorter or moved buffer back after NNG_EAGAIN, and wants each
     * send to return after what fit. */
    SSL_CTX_set_mode(cfg->ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_CTX_set_options(cfg->ctx, SSL_OP_NO_RENEGOTIATION);
    if (mode == NNG_TLS_MODE_SERVER) {
        /* Connections are long-lived and nng never resumes sessions: no tickets,
         * no cache, two fewer messages per handshake. */
        SSL_CTX_set_num_tickets(cfg->ctx, 0);
        SSL_CTX_set_session_cache_mode(cfg->ctx, SSL_SESS_CACHE_OFF);
        SSL_CTX_set_verify(cfg->ctx, SSL_VERIFY_NONE, NULL); /* nng's server default */
    } else {
        SSL_CTX_set_verify(cfg->ctx, SSL_VERIFY_PEER, NULL); /* nng's client default */
    }
    last_config_init = cfg;
    return 0;
}

static void config_fini(struct nng_tls_engine_config *cfg)
{
    pthread_mutex_lock(&registry_lock);
    for (struct nng_tls_engine_config **pp = &registry; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == cfg) {
            *pp = cfg->next;
            break;
        }
    }
    pthread_mutex_unlock(&registry_lock);
    SSL_CTX_free(cfg->ctx);
    free(cfg->server_name);
    pthread_mutex_destroy(&cfg->conns_lock);
    pthread_mutex_destroy(&cfg->lock);
}

static int config_server(struct nng_tls_engine_config *cfg, const char *name)
{
    char *dup = strdup(name);
    if (dup == NULL)
        return NNG_ENOMEM;
    free(cfg->server_name);
    cfg->server_name = dup;
    return 0;
}

static int config_auth(struct nng_tls_engine_config *cfg, nng_tls_auth_mode mode)
{
    switch (mode) {
    case NNG_TLS_AUTH_MODE_NONE:
        SSL_CTX_set_verify(cfg->ctx, SSL_VERIFY_NONE, NULL);
        return 0;
    case NNG_TLS_AUTH_MODE_OPTIONAL:
        SSL_CTX_set_verify(cfg->ctx, SSL_VERIFY_PEER, NULL);
        return 0;
    case NNG_TLS_AUTH_MODE_REQUIRED:
        SSL_CTX_set_verify(cfg->ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
        return 0;
    default:
        return NNG_EINVAL;
    }
}

static int config_ca_chain(struct nng_tls_engine_config *cfg, const char *certs, const char *crl)
{
    X509_STORE *store = SSL_CTX_get_cert_store(cfg->ctx);
    int ncerts = 0, ncrls = 0, rv = 0;
    int nroots = 0;
    X509 *x;

    ERR_clear_error();
    BIO *b = BIO_new_mem_buf(certs, -1);
    if (b == NULL)
        return NNG_ENOMEM;
    while ((x = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL) {
        /* The server also names its CAs in its certificate request. */
        if (X509_STORE_add_cert(store, x) != 1 ||
            (cfg->mode == NNG_TLS_MODE_SERVER && SSL_CTX_add_client_CA(cfg->ctx, x) != 1))
            rv = NNG_ENOMEM;
        if (X509_self_signed(x, 0) == 1)
            nroots++;
        X509_free(x);
        ncerts++;
    }
    BIO_free(b);
    /* The loop ends on "no start line" when no certificate follows (text outside
     * the PEM blocks is allowed, as OpenSSL allows it). Any other error is a
     * block that does not decode: refused, or a damaged bundle would load with
     * the certificates before it only and fail clients of the rest. */
    unsigned long e = ERR_peek_last_error();
    bool clean = e == 0 || (ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE);
    char reason[160] = "";
    if (!clean)
        ERR_error_string_n(e, reason, sizeof reason);
    ERR_clear_error();
    if (rv != 0)
        return rv;
    if (!clean) {
        config_set_errmsg(cfg, "CA data: PEM certificate %d does not decode: %s", ncerts + 1, reason);
        return NNG_EINVAL;
    }
    if (ncerts == 0) {
        config_set_errmsg(cfg, "no PEM certificate in the CA data");
        return NNG_EINVAL;
    }
    if (nroots == 0) {
        /* Verification trusts a chain only up to a self-signed certificate of the
         * store (no partial chains here): with none, every peer would be refused,
         * each handshake failing later with "unable to get local issuer". */
        config_set_errmsg(cfg,
                          "no self-signed (root) certificate in the CA data, so no peer could be verified: "
                          "is it a leaf or an intermediate certificate?");
        return NNG_EINVAL;
    }

    if (crl != NULL && crl[0] != '\0') {
        X509_CRL *c;
        if ((b = BIO_new_mem_buf(crl, -1)) == NULL)
            return NNG_ENOMEM;
        while ((c = PEM_read_bio_X509_CRL(b, NULL, NULL, NULL)) != NULL) {
            if (X509_STORE_add_crl(store, c) != 1)
                rv = NNG_ENOMEM;
            X509_CRL_free(c);
            ncrls++;
        }
        BIO_free(b);
        ERR_clear_error();
        if (rv != 0)
            return rv;
        if (ncrls == 0) {
            config_set_errmsg(cfg, "no PEM CRL in the CRL data");
            return NNG_EINVAL;
        }
        X509_STORE_set_flags(store, X509_V_FLAG_CRL_CHECK | X509_V_FLAG_CRL_CHECK_ALL);
    }
    return 0;
}

/* pem_pass: never prompt on a terminal (OpenSSL's default): an encrypted key without
 * a password fails to load. */
static int pem_pass(char *buf, int size, int rwflag, void *u)
{
    (void)rwflag;
    const char *pass = u;
    if (pass == NULL)
        return -1;
    size_t n = strlen(pass);
    if (n > (size_t)size)
        return -1;
    memcpy(buf, pass, n);
    return (int)n;
}

static int config_own_cert(struct nng_tls_engine_config *cfg, const char *cert, const char *key,
                           const char *pass)
{
    char why[160];
    X509 *x = NULL;
    EVP_PKEY *pkey = NULL;
    BIO *b = NULL;
    int rv = NNG_EINVAL;

    ERR_clear_error();
    if ((b = BIO_new_mem_buf(cert, -1)) == NULL) {
        rv = NNG_ENOMEM;
        goto done;
    }
    if ((x = PEM_read_bio_X509(b, NULL, NULL, NULL)) == NULL) {
        config_set_errmsg(cfg, "no PEM certificate in the certificate data");
        goto done;
    }
    if (SSL_CTX_use_certificate(cfg->ctx, x) != 1) {
        ssl_errtext(ERR_peek_error(), "unusable", why, sizeof why);
        config_set_errmsg(cfg, "certificate not usable: %s", why);
        goto done;
    }
    /* Whatever follows the leaf is its chain, sent to the peer. */
    SSL_CTX_clear_chain_certs(cfg->ctx);
    X509 *chain;
    while ((chain = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL) {
        if (SSL_CTX_add0_chain_cert(cfg->ctx, chain) != 1) {
            X509_free(chain);
            rv = NNG_ENOMEM;
            goto done;
        }
    }
    ERR_clear_error();
    BIO_free(b);
    if ((b = BIO_new_mem_buf(key, -1)) == NULL) {
        rv = NNG_ENOMEM;
        goto done;
    }
    if ((pkey = PEM_read_bio_PrivateKey(b, NULL, pem_pass, (void *)pass)) == NULL) {
        /* Without a passphrase OpenSSL's reason for an encrypted key reads
         * "interrupted or cancelled". */
        if (pass == NULL && (strstr(key, "-----BEGIN ENCRYPTED PRIVATE KEY-----") != NULL ||
                             strstr(key, "Proc-Type: 4,ENCRYPTED") != NULL))
            snprintf(why, sizeof why, "%s",
                     "the key is encrypted and no passphrase is asked for: give it decrypted "
                     "(openssl pkey -in KEY -out KEY.plain)");
        else
            ssl_errtext(ERR_peek_error(), "no key", why, sizeof why);
        config_set_errmsg(cfg, "no usable PEM private key: %s", why);
        goto done;
    }
    if (SSL_CTX_use_PrivateKey(cfg->ctx, pkey) != 1 || SSL_CTX_check_private_key(cfg->ctx) != 1) {
        config_set_errmsg(cfg, "private key does not match the certificate");
        goto done;
    }
    rv = 0;
done:
    ERR_clear_error();
    EVP_PKEY_free(pkey);
    X509_free(x);
    BIO_free(b);
    return rv;
}

static int config_version(struct nng_tls_engine_config *cfg, nng_tls_version min, nng_tls_version max)
{
    /* TLS 1.0 and 1.1 are not offered: a range reaching below 1.2 is cut at 1.2, a
     * range entirely below it is not supported. */
    if (min > max || max < NNG_TLS_1_2)
        return NNG_ENOTSUP;
    int lo = min <= NNG_TLS_1_2 ? TLS1_2_VERSION : TLS1_3_VERSION;
    int hi = max >= NNG_TLS_1_3 ? TLS1_3_VERSION : TLS1_2_VERSION;
    if (SSL_CTX_set_min_proto_version(cfg->ctx, lo) != 1 ||
        SSL_CTX_set_max_proto_version(cfg->ctx, hi) != 1) {
        ERR_clear_error();
        return NNG_ENOTSUP;
    }
    return 0;
}

/* ---- registration ----------------------------------------------------------------- */

static nng_tls_engine_config_ops config_ops = {
    .size = sizeof(struct nng_tls_engine_config),
    .init = config_init,
    .fini = config_fini,
    .server = config_server,
    .auth = config_auth,
    .ca_chain = config_ca_chain,
    .own_cert = config_own_cert,
    .version = config_version,
};

static nng_tls_engine_conn_ops conn_ops = {
    .size = sizeof(struct nng_tls_engine_conn),
    .init = conn_init,
    .fini = conn_fini,
    .close = conn_close,
    .handshake = conn_handshake,
    .recv = conn_recv,
    .send = conn_send,
    .verified = conn_verified,
};

static nng_tls_engine engine = {
    .version = NNG_TLS_ENGINE_VERSION,
    .config_ops = &config_ops,
    .conn_ops = &conn_ops,
    .name = PLOG_TLS_ENGINE_NAME,
    .description = "OpenSSL",
    .fips_mode = false,
};

static void engine_once_init(void)
{
    /* No atexit cleanup: nng's reaper threads free TLS configs and connections
     * asynchronously, possibly while the process exits; OpenSSL's atexit handler
     * would free its global locks under them. The OS reclaims everything anyway.
     * This must be OpenSSL's first initialisation to count, so it comes before
     * any other OpenSSL call of this program. */
    OPENSSL_init_ssl(
        OPENSSL_INIT_NO_ATEXIT | OPENSSL_INIT_LOAD_SSL_STRINGS | OPENSSL_INIT_LOAD_CRYPTO_STRINGS, NULL);
    BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "nng-stream");
    if (m == NULL)
        return;
    if (BIO_meth_set_write_ex(m, bio_write_ex) != 1 || BIO_meth_set_read_ex(m, bio_read_ex) != 1 ||
        BIO_meth_set_ctrl(m, bio_ctrl) != 1 || BIO_meth_set_create(m, bio_create) != 1) {
        BIO_meth_free(m);
        return;
    }
    bio_method = m; /* lives as long as the process, like the engine registration */
    engine.description = OpenSSL_version(OPENSSL_VERSION);
}

int plog_tls_engine_register(void)
{
    pthread_once(&engine_once, engine_once_init);
    if (bio_method == NULL)
        return PLOG_ENOMEM;
    int rv = 0;
    pthread_mutex_lock(&register_lock);
    /* nng_tls_engine_name() runs nng's initialisation, which installs mbedTLS: ours
     * must come after it. */
    if (strcmp(nng_tls_engine_name(), PLOG_TLS_ENGINE_NAME) != 0)
        rv = nng_tls_engine_register(&engine);
    pthread_mutex_unlock(&register_lock);
    return rv == 0 ? PLOG_OK : PLOG_ETLS;
}

int plog_tls_config_alloc(nng_tls_mode mode, nng_tls_config **cfgp)
{
    int rv = plog_tls_engine_register();
    if (rv != PLOG_OK)
        return rv;
    nng_tls_config *cfg;
    last_config_init = NULL;
    if ((rv = nng_tls_config_alloc(&cfg, mode)) != 0)
        return rv == NNG_ENOMEM ? PLOG_ENOMEM : PLOG_ETLS;
    struct nng_tls_engine_config *ec = last_config_init;
    last_config_init = NULL;
    if (ec == NULL) {
        nng_tls_config_free(cfg);
        return PLOG_ETLS;
    }
    pthread_mutex_lock(&registry_lock);
    ec->owner = cfg;
    ec->next = registry;
    registry = ec;
    pthread_mutex_unlock(&registry_lock);
    *cfgp = cfg;
    return PLOG_OK;
}

/* registry_lock_find locks the registry and returns cfg's engine config, or NULL
 * (the registry stays locked either way: registry_unlock() after use). While the
 * registry is locked, config_fini cannot free what was found. */
static struct nng_tls_engine_config *registry_lock_find(nng_tls_config *cfg)
{
    pthread_mutex_lock(&registry_lock);
    struct nng_tls_engine_config *ec = registry;
    while (ec != NULL && ec->owner != cfg)
        ec = ec->next;
    return ec;
}

static void registry_unlock(void)
{
    pthread_mutex_unlock(&registry_lock);
}

bool plog_tls_config_errmsg(nng_tls_config *cfg, char *buf, size_t size)
{
    bool found = false;
    if (size > 0)
        buf[0] = '\0';
    struct nng_tls_engine_config *ec = registry_lock_find(cfg);
    if (ec != NULL) {
        pthread_mutex_lock(&ec->lock);
        found = ec->errmsg[0] != '\0';
        if (size > 0)
            snprintf(buf, size, "%s", ec->errmsg);
        pthread_mutex_unlock(&ec->lock);
    }
    registry_unlock();
    return found;
}

int plog_tls_config_on_failure(nng_tls_config *cfg, plog_tls_failure_fn fn, void *arg)
{
    struct nng_tls_engine_config *ec = registry_lock_find(cfg);
    if (ec != NULL) {
        pthread_mutex_lock(&ec->lock);
        ec->on_failure = fn;
        ec->failure_arg = arg;
        pthread_mutex_unlock(&ec->lock);
    }
    registry_unlock();
    return ec != NULL ? PLOG_OK : PLOG_EINVAL;
}

void plog_tls_config_clear_errmsg(nng_tls_config *cfg)
{
    struct nng_tls_engine_config *ec = registry_lock_find(cfg);
    if (ec != NULL) {
        pthread_mutex_lock(&ec->lock);
        ec->errmsg[0] = '\0';
        pthread_mutex_unlock(&ec->lock);
    }
    registry_unlock();
}

int plog_tls_config_adopt(nng_tls_config *live, nng_tls_config *fresh)
{
    struct nng_tls_engine_config *to = NULL, *from = NULL;
    pthread_mutex_lock(&registry_lock);
    for (struct nng_tls_engine_config *ec = registry; ec != NULL; ec = ec->next) {
        if (ec->owner == live)
            to = ec;
        if (ec->owner == fresh)
            from = ec;
    }
    if (to == NULL || from == NULL || to == from || to->mode != from->mode) {
        pthread_mutex_unlock(&registry_lock);
        return PLOG_EINVAL;
    }
    SSL_CTX_up_ref(from->ctx);
    pthread_mutex_lock(&to->lock);
    SSL_CTX *old = to->ctx;
    to->ctx = from->ctx;
    pthread_mutex_unlock(&to->lock);
    pthread_mutex_unlock(&registry_lock);
    SSL_CTX_free(old); /* connections made with it hold their own references */
    return PLOG_OK;
}

void plog_tls_stats_get(plog_tls_stats *out)
{
    out->handshakes = atomic_load_explicit(&stat_handshakes, memory_order_relaxed);
    out->failures = atomic_load_explicit(&stat_failures, memory_order_relaxed);
    out->writes = atomic_load_explicit(&stat_writes, memory_order_relaxed);
    for (int r = 0; r < PLOG_TLS_FAIL_COUNT; r++)
        out->failed[r] = atomic_load_explicit(&stat_reason[r], memory_order_relaxed);
}

int plog_tls_config_limits(nng_tls_config *cfg, unsigned max_conns, uint32_t handshake_timeout_ms)
{
    struct nng_tls_engine_config *ec = registry_lock_find(cfg);
    if (ec != NULL && ec->mode == NNG_TLS_MODE_SERVER) {
        pthread_mutex_lock(&ec->conns_lock);
        ec->max_conns = max_conns;
        ec->hs_timeout_ms = handshake_timeout_ms;
        pthread_mutex_unlock(&ec->conns_lock);
    }
    bool ok = ec != NULL && ec->mode == NNG_TLS_MODE_SERVER;
    registry_unlock();
    return ok ? PLOG_OK : PLOG_EINVAL;
}
