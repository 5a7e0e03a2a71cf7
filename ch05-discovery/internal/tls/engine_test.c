/* engine_test.c - the OpenSSL engine inside nng: it is the engine in use, mutual TLS
 * works and negotiates TLS 1.3, messages of every size arrive intact however they
 * interleave, a small SP message is one TLS write and other streams are never held, every bad certificate is
 * refused at the handshake with an error the client can read and without a hang, and tools nobody here wrote
 * (openssl s_client) agree. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <pthread.h>
#include <stdint.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <cmocka.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "internal/tls/engine_int.h"
#include "internal/tls/tlstest.h"

/* A refused handshake must end well within this; a hang kills the test binary. */
#define REFUSAL_DEADLINE_S 20

static void test_tls_engine_register_makes_nng_use_openssl(void **state)
{
    (void)state;
    assert_plog_ok(plog_tls_engine_register());
    assert_string_equal(nng_tls_engine_name(), PLOG_TLS_ENGINE_NAME);
    assert_non_null(strstr(nng_tls_engine_description(), "OpenSSL 3"));
    assert_plog_ok(plog_tls_engine_register()); /* idempotent */
    assert_string_equal(nng_tls_engine_name(), PLOG_TLS_ENGINE_NAME);
}

static void test_tls_config_missing_file_is_named_in_the_error(void **state)
{
    (void)state;
    char err[PLOG_TLS_ERRMSG_SIZE];
    nng_tls_config *cfg = NULL;
    int rv = plog_tls_config_server(tt_path("server.pem"), tt_path("server-key.pem"), "/nonexistent/ca.pem",
                                    &cfg, err, sizeof err);
    assert_int_equal(rv, PLOG_EIO);
    assert_null(cfg);
    assert_non_null(strstr(err, "/nonexistent/ca.pem"));
    assert_non_null(strstr(err, "No such file"));
    /* A FIFO is refused at once (before, the open waited for a writer: a SIGHUP
     * reload of the certificates never ended, nor did a SIGTERM after it). */
    char fifo[600];
    snprintf(fifo, sizeof fifo, "%s", tt_path("ca.fifo"));
    unlink(fifo);
    assert_int_equal(mkfifo(fifo, 0600), 0);
    alarm(10);
    rv =
        plog_tls_config_server(tt_path("server.pem"), tt_path("server-key.pem"), fifo, &cfg, err, sizeof err);
    alarm(0);
    unlink(fifo);
    assert_int_equal(rv, PLOG_EIO);
    assert_non_null(strstr(err, "CA file "));
    assert_non_null(strstr(err, "ca.fifo: nothing to read"));
}

static void test_tls_config_key_of_another_certificate_is_refused(void **state)
{
    (void)state;
    char err[PLOG_TLS_ERRMSG_SIZE];
    nng_tls_config *cfg = NULL;
    int rv = plog_tls_config_server(tt_path("server.pem"), tt_path("root-client-key.pem"), tt_path("ca.pem"),
                                    &cfg, err, sizeof err);
    assert_int_equal(rv, PLOG_ETLS);
    assert_null(cfg);
    assert_non_null(strstr(err, "does not match"));
}

/* An expired server certificate, which no client would accept, is refused when
 * the config is made (at start, and so kept on SIGHUP). */
static void test_tls_config_expired_server_certificate_is_refused(void **state)
{
    (void)state;
    char err[PLOG_TLS_ERRMSG_SIZE];
    nng_tls_config *cfg = NULL;
    int rv = plog_tls_config_server(tt_path("expired-client.pem"), tt_path("expired-client-key.pem"),
                                    tt_path("ca.pem"), &cfg, err, sizeof err);
    assert_int_equal(rv, PLOG_ETLS);
    assert_null(cfg);
    if (strstr(err, "expired-client.pem: expired on 2021-01-01 00:00:00 UTC") == NULL)
        fail_msg("expired: %s", err);
    /* A client may still present the expired one: the server's refusal is tested below. */
    nng_tls_config_free(tt_client_config("expired-client.pem", "expired-client-key.pem", "ca.pem", NULL));
}

/* An encrypted key is refused as such (no passphrase prompt), in both of
 * OpenSSL's PEM forms, not with OpenSSL's "interrupted or cancelled". */
static void test_tls_config_encrypted_key_is_named_as_such(void **state)
{
    (void)state;
    char dir[64], cmd[1024], path[128], err[PLOG_TLS_ERRMSG_SIZE];
    plog_test_tmpdir("tlskey", dir, sizeof dir);
    const char *forms[] = {"openssl pkey -in %s -aes256 -passout pass:secret -out %s",
                           "openssl pkey -in %s -traditional -aes256 -passout pass:secret -out %s"};
    for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++) {
        snprintf(path, sizeof path, "%s/key%zu.pem", dir, i);
        snprintf(cmd, sizeof cmd, forms[i], tt_path("server-key.pem"), path);
        char *out = NULL;
        if (plog_test_sh(cmd, 30000, &out) != 0)
            fail_msg("%s: %s", cmd, out);
        free(out);
        nng_tls_config *cfg = NULL;
        int rv =
            plog_tls_config_server(tt_path("server.pem"), path, tt_path("ca.pem"), &cfg, err, sizeof err);
        assert_int_not_equal(rv, PLOG_OK);
        assert_null(cfg);
        if (strstr(err, path) == NULL || strstr(err, "the key is encrypted") == NULL)
            fail_msg("%s: %s", forms[i], err);
    }
    plog_test_rmrf(dir);
}

static void test_tls_config_non_pem_file_is_refused(void **state)
{
    (void)state;
    char err[PLOG_TLS_ERRMSG_SIZE];
    nng_tls_config *cfg = NULL;
    /* policy.csv sits in the certs directory: a real file that is not PEM. */
    int rv = plog_tls_config_client(NULL, NULL, tt_path("policy.csv"), "127.0.0.1", &cfg, err, sizeof err);
    assert_int_equal(rv, PLOG_ETLS);
    assert_non_null(strstr(err, "not a PEM file"));
    rv = plog_tls_config_client(tt_path("root-client.pem"), NULL, tt_path("ca.pem"), "127.0.0.1", &cfg, err,
                                sizeof err);
    assert_int_equal(rv, PLOG_EINVAL);
    assert_null(cfg);
}

/* gencert's --help prints its usage and exits 0, an unknown option exits 2, and
 * neither is taken for the output directory (before: `gencert --help` ran
 * `mkdir -p --help`, which printed mkdir's help and failed). */
static void test_gencert_help_and_a_bad_option(void **state)
{
    (void)state;
    const char *chapter = getenv("PLOG_CHAPTER");
    char dir[64], cmd[1024], *out = NULL;
    plog_test_tmpdir("gencert", dir, sizeof dir);
    snprintf(cmd, sizeof cmd, "cd '%s' && '%s/../common/certs/gencert' --help", dir,
             chapter != NULL ? chapter : ".");
    assert_int_equal(plog_test_sh(cmd, 10000, &out), 0);
    assert_non_null(strstr(out, "Usage: gencert OUTDIR"));
    assert_non_null(strstr(out, "--node NAME"));
    free(out);
    snprintf(cmd, sizeof cmd, "cd '%s' && '%s/../common/certs/gencert' --nodes x", dir,
             chapter != NULL ? chapter : ".");
    assert_int_equal(plog_test_sh(cmd, 10000, &out), 2);
    assert_non_null(strstr(out, "usage: gencert OUTDIR"));
    free(out);
    snprintf(cmd, sizeof cmd, "ls -A '%s'", dir);
    assert_int_equal(plog_test_sh(cmd, 10000, &out), 0);
    assert_string_equal(out, ""); /* no directory named after an option */
    free(out);
    plog_test_rmrf(dir);
}

static void test_tls_url_host_strips_scheme_port_and_brackets(void **state)
{
    (void)state;
    char host[64];
    assert_plog_ok(plog_tls_url_host("tls+tcp://127.0.0.1:8400", host, sizeof host));
    assert_string_equal(host, "127.0.0.1");
    assert_plog_ok(plog_tls_url_host("tls+tcp://[::1]:8400", host, sizeof host));
    assert_string_equal(host, "::1");
    assert_plog_ok(plog_tls_url_host("tls+tcp://localhost:1", host, sizeof host));
    assert_string_equal(host, "localhost");
    assert_int_equal(plog_tls_url_host("tls+tcp://:1", host, sizeof host), PLOG_EINVAL);
    assert_int_equal(plog_tls_url_host("nonsense", host, sizeof host), PLOG_EINVAL);
    assert_true(plog_tls_url_is_tls("tls+tcp://127.0.0.1:1"));
    assert_false(plog_tls_url_is_tls("tcp://127.0.0.1:1"));
}

/* Go: TestServer "produce/consume a message to/from the log succeeeds", the TLS half:
 * both sides verified, the server sees the client's CN, TLS 1.3 was negotiated. */
static void test_tls_mutual_echo_negotiates_tls13_and_names_the_client(void **state)
{
    (void)state;
    struct tt_session s;
    tt_session_open(&s, tt_root_config(NULL));

    char *reply = tt_echo(s.c, "hello");
    assert_string_equal(reply, "hello|root|TLSv1.3");
    free(reply);

    /* The client verified the server too: its pipe says so. */
    nng_msg *msg;
    assert_nng_ok(nng_msg_alloc(&msg, 0));
    assert_nng_ok(nng_sendmsg(s.c, msg, 0));
    assert_nng_ok(nng_recvmsg(s.c, &msg, 0));
    bool verified = false;
    assert_nng_ok(nng_pipe_get_bool(nng_msg_get_pipe(msg), NNG_OPT_TLS_VERIFIED, &verified));
    assert_true(verified);
    nng_msg_free(msg);

    tt_session_close(&s);
}

static void test_tls_server_name_may_be_a_dns_name(void **state)
{
    (void)state;
    struct tt_session s;
    tt_session_open(&s, tt_root_config("localhost"));
    char *reply = tt_echo(s.c, "sni");
    assert_string_equal(reply, "sni|root|TLSv1.3");
    free(reply);
    tt_session_close(&s);
}

static void test_tls_client_limited_to_tls12_still_connects(void **state)
{
    (void)state;
    nng_tls_config *cfg = tt_root_config(NULL);
    assert_nng_ok(nng_tls_config_version(cfg, NNG_TLS_1_2, NNG_TLS_1_2));
    assert_int_equal(nng_tls_config_version(cfg, NNG_TLS_1_0, NNG_TLS_1_1), NNG_ENOTSUP);
    struct tt_session s;
    tt_session_open(&s, cfg);
    char *reply = tt_echo(s.c, "old");
    assert_string_equal(reply, "old|root|TLSv1.2");
    free(reply);
    tt_session_close(&s);
}

/* Messages far larger than a TLS record and than nng's 16 KiB buffers: partial
 * writes, retried writes from moved buffers, many records per read. */
static void test_tls_large_messages_arrive_intact(void **state)
{
    (void)state;
    struct tt_session s;
    tt_session_open(&s, tt_root_config(NULL));

    /* Around the largest message gathered into one record (engine.c CO_MAX: 8-byte
     * length, 4-byte REQ header and body <= 16384; the reply adds 13 bytes) too. */
    static const size_t sizes[] = {
        0, 1, 16359, 16360, 16371, 16372, 16373, 16383, 16384, 16385, 100000, 1 << 20, 3 * (1 << 20) + 7};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        size_t n = sizes[k];
        uint8_t *buf = malloc(n);
        for (size_t i = 0; i < n; i++)
            buf[i] = (uint8_t)(i * 31 + k);
        assert_nng_ok(nng_send(s.c, buf, n, 0));
        char *reply = NULL;
        size_t len = 0;
        assert_nng_ok(nng_recv(s.c, &reply, &len, NNG_FLAG_ALLOC));
        const char *tail = "|root|TLSv1.3";
        assert_int_equal(len, n + strlen(tail));
        assert_memory_equal(reply, buf, n);
        assert_memory_equal(reply + n, tail, strlen(tail));
        nng_free(reply, len);
        free(buf);
    }
    tt_session_close(&s);
}

/* big_certs makes, once, with the openssl CLI in the certs directory: big-client
 * (CN=root, 800 DNS names: ~18 KB), big-server (CN=server, IP 127.0.0.1 and 1600
 * DNS names: ~36 KB), both signed by the test CA; big-ca.pem, the CA followed by
 * 300 self-signed CAs, whose names a server lists in its certificate request
 * (~22 KB of names), and mid-ca.pem, the CA and the first 100 of them (~7 KB). */
static void big_certs(void)
{
    if (access(tt_path("mid-ca.pem"), R_OK) == 0)
        return;
    char cmd[4096], *out = NULL;
    snprintf(cmd, sizeof cmd,
             "set -e; cd '%s'; "
             "mk() { { printf '[req]\\ndistinguished_name=dn\\nprompt=no\\n[dn]\\nCN=%%s\\n[ext]\\n"
             "basicConstraints=CA:FALSE\\nkeyUsage=digitalSignature\\nextendedKeyUsage=%%s\\n"
             "subjectAltName=@alt\\n[alt]\\nIP.1=127.0.0.1\\n' $2 $3; "
             "seq 1 $4 | sed 's/.*/DNS.&=host-&.example.com/'; } > $1.cnf; "
             "openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout $1-key.pem "
             "-out $1.csr -config $1.cnf 2>/dev/null; "
             "openssl x509 -req -in $1.csr -CA ca.pem -CAkey ca-key.pem -set_serial 0x$(openssl rand -hex 8) "
             "-days 30 -extfile $1.cnf -extensions ext -out $1.pem 2>/dev/null; rm $1.cnf $1.csr; }; "
             "mk big-client root clientAuth 800; mk big-server server serverAuth 1600; "
             "openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out big-ca-key.tmp; "
             "cp ca.pem big-ca.tmp; for i in $(seq 1 300); do openssl req -x509 -key big-ca-key.tmp "
             "-subj \"/O=Example Org $i/CN=another certificate authority number $i\" -days 30; done >> "
             "big-ca.tmp; rm big-ca-key.tmp; mv big-ca.tmp big-ca.pem; "
             "awk '/BEGIN/{n++} n<=101' big-ca.pem > mid-ca.tmp; mv mid-ca.tmp mid-ca.pem",
             tt_certs());
    int rc = plog_test_sh(cmd, 120000, &out);
    if (rc != 0)
        fail_msg("making the big certificates: exit %d: %s", rc, out != NULL ? out : "");
    free(out);
}

/* Handshakes whose client flight outgrows nng's 16 KiB send buffer: an ~18 KB
 * client certificate, to a server whose CA file lists 101 CAs. Before, every such
 * connection failed ("Connection shutdown", nothing logged on the server): OpenSSL
 * 3.0's handshake buffer BIO lost our BIO's "retry" when its flush had to wait,
 * and nng's first send (the SP header) ran SSL_write while a handshake record was
 * half written ("bad length"). A server whose own flight could not fit that buffer
 * (a ~36 KB certificate, or 301 CA names) is refused when its config is made: a
 * client hanging up while the rest of such a flight waited made nng's listener
 * stop accepting for good (docs/NNG.md, pitfall 18; a black-box run found it). */
static void test_tls_handshakes_larger_than_nng_buffers_complete(void **state)
{
    (void)state;
    big_certs();
    struct tt_session s;
    tt_session_open(&s, tt_client_config("big-client.pem", "big-client-key.pem", "ca.pem", NULL));
    char *reply = tt_echo(s.c, "big");
    assert_string_equal(reply, "big|root|TLSv1.3");
    free(reply);
    tt_session_close(&s);

    char err[PLOG_TLS_ERRMSG_SIZE];
    nng_tls_config *cfg;
    static const char *const refused[][2] = {{"big-server.pem", "ca.pem"}, {"server.pem", "big-ca.pem"}};
    for (int i = 0; i < 2; i++) {
        char key[64];
        snprintf(key, sizeof key, "%.*s-key.pem", (int)(strlen(refused[i][0]) - 4), refused[i][0]);
        assert_int_equal(plog_tls_config_server(tt_path(refused[i][0]), tt_path(key), tt_path(refused[i][1]),
                                                &cfg, err, sizeof err),
                         PLOG_ETLS);
        /* named: the file that makes it too large (the certificate, then the CA file) */
        if (strstr(err, refused[i][i]) == NULL ||
            strstr(err, "bytes of certificates and CA names (at most 14336") == NULL)
            fail_msg("%s with %s: %s", refused[i][0], refused[i][1], err);
    }

    struct tt_server srv;
    char url[64];
    tt_url("tls+tcp", url, sizeof url);
    if (plog_tls_config_server(tt_path("server.pem"), tt_path("server-key.pem"), tt_path("mid-ca.pem"), &cfg,
                               err, sizeof err) != PLOG_OK)
        fail_msg("server config: %s", err);
    tt_server_start(&srv, url, cfg);
    nng_tls_config_free(cfg);
    for (int i = 0; i < 8; i++) {
        nng_tls_config *cc = i % 2 == 0
                                 ? tt_root_config(NULL)
                                 : tt_client_config("big-client.pem", "big-client-key.pem", "ca.pem", NULL);
        nng_socket c;
        int rv = tt_client_dial(srv.url, cc, &c);
        if (rv != 0)
            fail_msg("connection %d (%s client certificate) to a server listing 101 CAs: %s", i,
                     i % 2 == 0 ? "the root" : "a big", nng_strerror(rv));
        reply = tt_echo(c, "both");
        assert_string_equal(reply, "both|root|TLSv1.3");
        free(reply);
        nng_close(c);
        nng_tls_config_free(cc);
    }
    tt_server_stop(&srv);
}

/* One SP message of 100 bytes is one TLS write (one record, one TCP write), not
 * three (length, header, body) as nng's TLS layer hands them over. */
static void test_tls_small_message_is_one_record(void **state)
{
    (void)state;
    struct tt_session s;
    tt_session_open(&s, tt_root_config(NULL));
    char *reply = tt_echo(s.c, "warm-up"); /* the handshake and both SP headers are done */
    free(reply);

    char body[101];
    memset(body, 'm', 100);
    body[100] = '\0';
    enum { N = 200 };
    plog_tls_stats before, after;
    plog_tls_stats_get(&before);
    for (int i = 0; i < N; i++) {
        reply = tt_echo(s.c, body);
        assert_int_equal(strlen(reply), 100 + strlen("|root|TLSv1.3"));
        free(reply);
    }
    plog_tls_stats_get(&after);
    /* Both ends are in this process: N requests and N replies. */
    uint64_t writes = after.writes - before.writes;
    print_message("    %d round trips: %llu TLS writes\n", N, (unsigned long long)writes);
    /* (a write is counted just after its bytes left: the last may not be yet) */
    assert_true(writes >= 2 * N - 2);
    assert_true(writes <= 2 * N + 2);
    tt_session_close(&s);
}

/* Many requests in flight on one connection, of sizes that are gathered and
 * sizes that are not, interleaved: nng's 16 KiB send buffer fills, so gathered
 * messages meet a full buffer and are written again later. Every reply is the
 * request it answers. */
#define MIX_THREADS 16
#define MIX_ROUNDS 40

struct mix {
    nng_socket sock;
    int id;
    int bad;
};

static void *mix_main(void *arg)
{
    static const size_t sizes[] = {1, 100, 4000, 16000, 16371, 16372, 16373, 40000, 200};
    struct mix *m = arg;
    nng_ctx ctx;
    nng_aio *aio;
    if (nng_ctx_open(&ctx, m->sock) != 0 || nng_aio_alloc(&aio, NULL, NULL) != 0) {
        m->bad++;
        return NULL;
    }
    nng_aio_set_timeout(aio, 20000);
    for (int r = 0; r < MIX_ROUNDS; r++) {
        size_t n = sizes[(size_t)(m->id + r) % (sizeof sizes / sizeof sizes[0])];
        nng_msg *msg;
        if (nng_msg_alloc(&msg, n) != 0) {
            m->bad++;
            break;
        }
        uint8_t *p = nng_msg_body(msg);
        for (size_t i = 0; i < n; i++)
            p[i] = (uint8_t)(i * 7 + (size_t)m->id * 13 + (size_t)r);
        nng_aio_set_msg(aio, msg);
        nng_ctx_send(ctx, aio);
        nng_aio_wait(aio);
        if (nng_aio_result(aio) != 0) {
            nng_msg_free(msg);
            m->bad++;
            break;
        }
        nng_ctx_recv(ctx, aio);
        nng_aio_wait(aio);
        if (nng_aio_result(aio) != 0) {
            m->bad++;
            break;
        }
        msg = nng_aio_get_msg(aio);
        const uint8_t *q = nng_msg_body(msg);
        size_t tail = strlen("|root|TLSv1.3");
        bool ok = nng_msg_len(msg) == n + tail && memcmp(q + n, "|root|TLSv1.3", tail) == 0;
        for (size_t i = 0; ok && i < n; i++)
            ok = q[i] == (uint8_t)(i * 7 + (size_t)m->id * 13 + (size_t)r);
        if (!ok)
            m->bad++;
        nng_msg_free(msg);
    }
    nng_aio_free(aio);
    nng_ctx_close(ctx);
    return NULL;
}

static void test_tls_interleaved_messages_of_mixed_sizes_arrive_intact(void **state)
{
    (void)state;
    struct tt_session s;
    tt_session_open(&s, tt_root_config(NULL));
    struct mix m[MIX_THREADS];
    pthread_t th[MIX_THREADS];
    for (int i = 0; i < MIX_THREADS; i++) {
        m[i] = (struct mix){.sock = s.c, .id = i};
        assert_int_equal(pthread_create(&th[i], NULL, mix_main, &m[i]), 0);
    }
    int bad = 0;
    for (int i = 0; i < MIX_THREADS; i++) {
        pthread_join(th[i], NULL);
        bad += m[i].bad;
    }
    assert_int_equal(bad, 0);
    assert_int_equal(atomic_load(&s.srv.served), MIX_THREADS * MIX_ROUNDS);
    tt_session_close(&s);
}

/* A TLS byte stream that is not an SP connection (nng_stream, as HTTPS or a
 * websocket use it) gets every write through at once, even writes of 8 bytes
 * that the SP framing would read as a length prefix; and so does an SP-looking
 * stream whose framing breaks. */
struct stream_pair {
    nng_stream_listener *l;
    nng_stream_dialer *d;
    nng_stream *cs, *ss;
    nng_tls_config *ccfg, *scfg;
};

static void stream_pair_open(struct stream_pair *p)
{
    char url[64], err[PLOG_TLS_ERRMSG_SIZE];
    nng_aio *acc, *dial;
    memset(p, 0, sizeof *p);
    tt_url("tls+tcp", url, sizeof url);
    if (plog_tls_config_server(tt_path("server.pem"), tt_path("server-key.pem"), tt_path("ca.pem"), &p->scfg,
                               err, sizeof err) != PLOG_OK)
        fail_msg("server config: %s", err);
    p->ccfg = tt_root_config(NULL);
    assert_nng_ok(nng_stream_listener_alloc(&p->l, url));
    assert_nng_ok(nng_stream_listener_set_ptr(p->l, NNG_OPT_TLS_CONFIG, p->scfg));
    assert_nng_ok(nng_stream_listener_listen(p->l));
    assert_nng_ok(nng_stream_dialer_alloc(&p->d, url));
    assert_nng_ok(nng_stream_dialer_set_ptr(p->d, NNG_OPT_TLS_CONFIG, p->ccfg));
    assert_nng_ok(nng_aio_alloc(&acc, NULL, NULL));
    assert_nng_ok(nng_aio_alloc(&dial, NULL, NULL));
    nng_aio_set_timeout(acc, 10000);
    nng_aio_set_timeout(dial, 10000);
    nng_stream_listener_accept(p->l, acc);
    nng_stream_dialer_dial(p->d, dial);
    nng_aio_wait(dial);
    nng_aio_wait(acc);
    assert_nng_ok(nng_aio_result(dial));
    assert_nng_ok(nng_aio_result(acc));
    p->cs = nng_aio_get_output(dial, 0);
    p->ss = nng_aio_get_output(acc, 0);
    /* The handshake runs inside the first reads and writes, and nng 1.5.2 cannot
     * time out a send that waits for it: finish it with one byte from the server
     * that the client reads at the same time. The client has written nothing. */
    uint8_t one = '!', got = 0;
    nng_iov out = {.iov_buf = &one, .iov_len = 1}, in = {.iov_buf = &got, .iov_len = 1};
    assert_nng_ok(nng_aio_set_iov(acc, 1, &out));
    assert_nng_ok(nng_aio_set_iov(dial, 1, &in));
    nng_stream_recv(p->cs, dial);
    nng_stream_send(p->ss, acc);
    nng_aio_wait(acc);
    nng_aio_wait(dial);
    assert_nng_ok(nng_aio_result(acc));
    assert_nng_ok(nng_aio_result(dial));
    assert_int_equal(got, '!');
    nng_aio_free(acc);
    nng_aio_free(dial);
}

static void stream_pair_close(struct stream_pair *p)
{
    nng_stream_free(p->cs);
    nng_stream_free(p->ss);
    nng_stream_dialer_free(p->d);
    nng_stream_listener_free(p->l);
    nng_tls_config_free(p->ccfg);
    nng_tls_config_free(p->scfg);
}

/* stream_io sends or receives exactly n bytes, each step within 5 s (the handshake
 * is done): nng's result. */
static int stream_io(nng_stream *s, bool send, void *buf, size_t n)
{
    nng_aio *aio;
    size_t done = 0;
    int rv = 0;
    assert_nng_ok(nng_aio_alloc(&aio, NULL, NULL));
    while (rv == 0 && done < n) {
        nng_iov iov = {.iov_buf = (uint8_t *)buf + done, .iov_len = n - done};
        assert_nng_ok(nng_aio_set_iov(aio, 1, &iov));
        nng_aio_set_timeout(aio, 5000);
        if (send)
            nng_stream_send(s, aio);
        else
            nng_stream_recv(s, aio);
        nng_aio_wait(aio);
        if ((rv = nng_aio_result(aio)) == 0)
            done += nng_aio_count(aio);
    }
    nng_aio_free(aio);
    return rv;
}

static void test_tls_stream_writes_that_are_not_sp_messages_go_out_at_once(void **state)
{
    (void)state;
    struct stream_pair p;
    uint8_t got[16];

    /* Not the SP header: every write is passed through. */
    stream_pair_open(&p);
    uint8_t hello[8] = {'G', 'E', 'T', ' ', '/', ' ', 'H', '\n'};
    uint8_t prefix[8] = {0, 0, 0, 0, 0, 0, 0, 100}; /* reads as "100 bytes follow" */
    assert_nng_ok(stream_io(p.cs, true, hello, 8));
    assert_nng_ok(stream_io(p.ss, false, got, 8));
    assert_memory_equal(got, hello, 8);
    assert_nng_ok(stream_io(p.cs, true, prefix, 8));
    assert_nng_ok(stream_io(p.ss, false, got, 8)); /* nothing waits for the 100 bytes */
    assert_memory_equal(got, prefix, 8);
    stream_pair_close(&p);

    /* The SP header, then a write that breaks SP framing: passed through too. */
    stream_pair_open(&p);
    uint8_t sp[8] = {0, 'S', 'P', 0, 0, 0x30, 0, 0};
    uint8_t odd[5] = {1, 2, 3, 4, 5};
    assert_nng_ok(stream_io(p.cs, true, sp, 8));
    assert_nng_ok(stream_io(p.ss, false, got, 8));
    assert_memory_equal(got, sp, 8);
    assert_nng_ok(stream_io(p.cs, true, odd, 5));
    assert_nng_ok(stream_io(p.ss, false, got, 5));
    assert_memory_equal(got, odd, 5);
    assert_nng_ok(stream_io(p.cs, true, prefix, 8));
    assert_nng_ok(stream_io(p.ss, false, got, 8));
    assert_memory_equal(got, prefix, 8);
    stream_pair_close(&p);
}

/* refused dials the server with the given client and expects the handshake to fail
 * with want (nng's code) and a client-side message containing needle; then checks
 * that the server served nothing and still serves a good client. */
static void refused(struct tt_server *srv, const char *cert, const char *key, const char *ca,
                    const char *server_name, int want, const char *needle)
{
    nng_socket c;
    char err[PLOG_TLS_ERRMSG_SIZE];
    nng_tls_config *cfg = tt_client_config(cert, key, ca, server_name);

    alarm(REFUSAL_DEADLINE_S); /* a hang ends the binary with SIGALRM */
    int64_t t0 = plog_test_now_ms();
    int rv = tt_client_dial(srv->url, cfg, &c);
    int64_t dt = plog_test_now_ms() - t0;
    alarm(0);
    if (rv == 0)
        nng_close(c);
    assert_int_equal(rv, want);
    assert_true(plog_tls_config_errmsg(cfg, err, sizeof err));
    if (strstr(err, needle) == NULL)
        fail_msg("client error \"%s\" (%s) does not say \"%s\"", err, nng_strerror(rv), needle);
    print_message("    refused in %lld ms: %s: %s\n", (long long)dt, nng_strerror(rv), err);
    nng_tls_config_free(cfg);
    assert_int_equal(atomic_load(&srv->served), 0);

    /* The server is unharmed. */
    cfg = tt_root_config(NULL);
    assert_nng_ok(tt_client_dial(srv->url, cfg, &c));
    char *reply = tt_echo(c, "after");
    assert_string_equal(reply, "after|root|TLSv1.3");
    free(reply);
    nng_close(c);
    nng_tls_config_free(cfg);
}

static int refusal_setup(void **state)
{
    struct tt_server *srv = malloc(sizeof *srv);
    tt_server_start_files(srv, "tls+tcp", "server.pem", "server-key.pem");
    *state = srv;
    return 0;
}

static int refusal_teardown(void **state)
{
    tt_server_stop(*state);
    free(*state);
    return 0;
}

static void test_tls_client_without_certificate_is_refused(void **state)
{
    refused(*state, NULL, NULL, "ca.pem", NULL, NNG_EPEERAUTH, "certificate required");
}

static void test_tls_client_certificate_from_another_ca_is_refused(void **state)
{
    refused(*state, "other-client.pem", "other-client-key.pem", "ca.pem", NULL, NNG_EPEERAUTH, "unknown ca");
}

static void test_tls_expired_client_certificate_is_refused(void **state)
{
    refused(*state, "expired-client.pem", "expired-client-key.pem", "ca.pem", NULL, NNG_EPEERAUTH,
            "certificate expired");
}

static void test_tls_not_yet_valid_client_certificate_is_refused(void **state)
{
    /* TLS has no "not yet valid" alert: OpenSSL sends bad_certificate. */
    refused(*state, "future-client.pem", "future-client-key.pem", "ca.pem", NULL, NNG_EPEERAUTH,
            "bad certificate");
}

static void test_tls_client_refuses_server_with_wrong_ip(void **state)
{
    /* The server holds a good certificate, but for 10.9.9.9: the client must say no. */
    struct tt_server *srv = *state;
    tt_server_stop(srv);
    tt_server_start_files(srv, "tls+tcp", "wrong-name-server.pem", "wrong-name-server-key.pem");
    nng_socket c;
    char err[PLOG_TLS_ERRMSG_SIZE];
    nng_tls_config *cfg = tt_root_config(NULL);
    alarm(REFUSAL_DEADLINE_S);
    int rv = tt_client_dial(srv->url, cfg, &c);
    alarm(0);
    assert_int_equal(rv, NNG_EPEERAUTH);
    assert_true(plog_tls_config_errmsg(cfg, err, sizeof err));
    assert_non_null(strstr(err, "IP address mismatch"));
    nng_tls_config_free(cfg);

    cfg = tt_root_config("localhost");
    alarm(REFUSAL_DEADLINE_S);
    rv = tt_client_dial(srv->url, cfg, &c);
    alarm(0);
    assert_int_equal(rv, NNG_EPEERAUTH);
    assert_true(plog_tls_config_errmsg(cfg, err, sizeof err));
    assert_non_null(strstr(err, "hostname mismatch"));
    nng_tls_config_free(cfg);
    assert_int_equal(atomic_load(&srv->served), 0);
}

static void test_tls_client_refuses_server_from_another_ca(void **state)
{
    refused(*state, "root-client.pem", "root-client-key.pem", "other-ca.pem", NULL, NNG_EPEERAUTH,
            "certificate verify failed");
}

static void test_tls_plain_tcp_client_gets_no_service_from_tls_listener(void **state)
{
    struct tt_server *srv = *state;
    char url[64];
    nng_socket c;
    /* Same port, tcp:// instead of tls+tcp://. */
    snprintf(url, sizeof url, "tcp://%s", strstr(srv->url, "://") + 3);
    alarm(REFUSAL_DEADLINE_S);
    int rv = tt_client_dial(url, NULL, &c);
    alarm(0);
    if (rv == 0)
        nng_close(c);
    assert_int_not_equal(rv, 0);
    print_message("    tcp:// against tls: %s\n", nng_strerror(rv));
    assert_int_equal(atomic_load(&srv->served), 0);
}

static void test_tls_client_gets_no_service_from_plain_tcp_listener(void **state)
{
    (void)state;
    struct tt_server srv;
    char url[64];
    nng_socket c;
    tt_url("tcp", url, sizeof url);
    tt_server_start(&srv, url, NULL);
    snprintf(url, sizeof url, "tls+tcp://%s", strstr(srv.url, "://") + 3);
    nng_tls_config *cfg = tt_root_config(NULL);
    alarm(REFUSAL_DEADLINE_S);
    int rv = tt_client_dial(url, cfg, &c);
    alarm(0);
    if (rv == 0)
        nng_close(c);
    assert_int_not_equal(rv, 0);
    nng_tls_config_free(cfg);
    tt_server_stop(&srv);
}

/* slurp returns the file at path, NUL-terminated (the caller frees it). */
static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    char *buf = calloc(1, 65536);
    size_t n = fread(buf, 1, 65535, f);
    fclose(f);
    assert_true(n > 0);
    return buf;
}

static void write_text(const char *path, const char *a, const char *b)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "%s%s", a, b);
    assert_int_equal(fclose(f), 0);
}

/* A CA bundle whose second certificate does not decode is refused, naming it (it
 * loaded with the first one only, failing the clients of the second); text after
 * the last certificate, outside any PEM block, is still allowed. A CA file with no
 * self-signed certificate (a leaf) is refused too. */
static void test_tls_config_damaged_or_rootless_ca_file_is_refused(void **state)
{
    (void)state;
    char dir[64], path[128], err[PLOG_TLS_ERRMSG_SIZE];
    plog_test_tmpdir("tlsca", dir, sizeof dir);
    snprintf(path, sizeof path, "%s/bundle.pem", dir);
    char *ca = slurp(tt_path("ca.pem")), *other = slurp(tt_path("other-ca.pem"));
    nng_tls_config *cfg = NULL;
    write_text(path, ca, "a comment after the certificate\n");
    assert_plog_ok(plog_tls_config_server(tt_path("server.pem"), tt_path("server-key.pem"), path, &cfg, err,
                                          sizeof err));
    nng_tls_config_free(cfg);
    cfg = NULL;
    char *body = strstr(other, "-----\n");
    assert_non_null(body);
    body[6 + 40] = '*'; /* not in base64's alphabet */
    write_text(path, ca, other);
    int rv =
        plog_tls_config_server(tt_path("server.pem"), tt_path("server-key.pem"), path, &cfg, err, sizeof err);
    assert_int_not_equal(rv, PLOG_OK);
    assert_null(cfg);
    if (strstr(err, path) == NULL || strstr(err, "PEM certificate 2 does not decode") == NULL)
        fail_msg("error names neither the file nor the certificate: %s", err);
    /* A leaf given as the CA file could verify nobody. */
    rv = plog_tls_config_server(tt_path("server.pem"), tt_path("server-key.pem"), tt_path("root-client.pem"),
                                &cfg, err, sizeof err);
    assert_int_not_equal(rv, PLOG_OK);
    assert_null(cfg);
    if (strstr(err, "root-client.pem") == NULL || strstr(err, "no self-signed (root) certificate") == NULL)
        fail_msg("a leaf as the CA file: %s", err);
    free(ca);
    free(other);
    plog_test_rmrf(dir);
}

/* A client must name the server it verifies: the config builder refuses none,
 * and a config made without one fails to connect, saying why, instead of
 * accepting any certificate of the CA. */
static void test_tls_client_without_server_name_is_an_error(void **state)
{
    (void)state;
    char url[64], err[PLOG_TLS_ERRMSG_SIZE];
    nng_tls_config *cfg;
    struct tt_server srv;
    nng_socket c;

    assert_int_equal(plog_tls_config_client(tt_path("root-client.pem"), tt_path("root-client-key.pem"),
                                            tt_path("ca.pem"), NULL, &cfg, err, sizeof err),
                     PLOG_EINVAL);
    assert_non_null(strstr(err, "server name"));
    assert_int_equal(plog_tls_config_client(tt_path("root-client.pem"), tt_path("root-client-key.pem"),
                                            tt_path("ca.pem"), "", &cfg, err, sizeof err),
                     PLOG_EINVAL);

    tt_server_start_files(&srv, "tls+tcp", "server.pem", "server-key.pem");
    snprintf(url, sizeof url, "%s", srv.url);
    assert_plog_ok(plog_tls_config_alloc(NNG_TLS_MODE_CLIENT, &cfg));
    char *ca = slurp(tt_path("ca.pem")), *cert = slurp(tt_path("root-client.pem")),
         *key = slurp(tt_path("root-client-key.pem"));
    assert_int_equal(nng_tls_config_ca_chain(cfg, ca, NULL), 0);
    assert_int_equal(nng_tls_config_own_cert(cfg, cert, key, NULL), 0);
    assert_int_equal(nng_tls_config_auth_mode(cfg, NNG_TLS_AUTH_MODE_REQUIRED), 0);
    free(ca);
    free(cert);
    free(key);
    assert_int_not_equal(tt_client_dial(url, cfg, &c), 0);
    assert_true(plog_tls_config_errmsg(cfg, err, sizeof err));
    assert_non_null(strstr(err, "no server name"));
    nng_tls_config_free(cfg);
    tt_server_stop(&srv);
}

struct failures {
    pthread_mutex_t mu;
    int n;
    char all[4 * PLOG_TLS_ERRMSG_SIZE]; /* every reason, ";"-separated */
};

static void on_failure(void *arg, const char *remote, const char *reason)
{
    struct failures *f = arg;
    pthread_mutex_lock(&f->mu);
    f->n++;
    size_t used = strlen(f->all);
    snprintf(f->all + used, sizeof f->all - used, "%s from %s;", reason, remote);
    pthread_mutex_unlock(&f->mu);
}

/* The server hears of every refused handshake (with the reason) and counts it:
 * a refused client never becomes a pipe, so this is the only trace of it. */
static void test_tls_server_reports_refused_handshakes(void **state)
{
    (void)state;
    struct failures f = {.mu = PTHREAD_MUTEX_INITIALIZER};
    struct tt_server srv;
    char url[64], err[PLOG_TLS_ERRMSG_SIZE], all[4 * PLOG_TLS_ERRMSG_SIZE];
    nng_tls_config *scfg, *ccfg;
    nng_socket c;
    plog_tls_stats before, after;

    tt_url("tls+tcp", url, sizeof url);
    assert_plog_ok(plog_tls_config_server(tt_path("server.pem"), tt_path("server-key.pem"), tt_path("ca.pem"),
                                          &scfg, err, sizeof err));
    assert_plog_ok(plog_tls_config_on_failure(scfg, on_failure, &f));
    tt_server_start(&srv, url, scfg);
    plog_tls_stats_get(&before);

    ccfg = tt_client_config("expired-client.pem", "expired-client-key.pem", "ca.pem", NULL);
    assert_int_equal(tt_client_dial(url, ccfg, &c), NNG_EPEERAUTH);
    nng_tls_config_free(ccfg);
    ccfg = tt_client_config(NULL, NULL, "ca.pem", NULL);
    assert_int_equal(tt_client_dial(url, ccfg, &c), NNG_EPEERAUTH);
    nng_tls_config_free(ccfg);

    /* The server's reports may land just after the clients' errors, in any order. */
    for (int i = 0; i < 200; i++) {
        pthread_mutex_lock(&f.mu);
        int n = f.n;
        snprintf(all, sizeof all, "%s", f.all);
        pthread_mutex_unlock(&f.mu);
        if (n >= 2)
            break;
        plog_test_sleep_ms(10);
    }
    pthread_mutex_lock(&f.mu);
    int nfail = f.n;
    pthread_mutex_unlock(&f.mu);
    if (nfail != 2)
        fail_msg("%d failures reported, want 2: %s", nfail, all);
    /* Each reason is its own connection's, with that client's address. */
    if (strstr(all, "peer sent no certificate: peer did not return a certificate from 127.0.0.1:") == NULL ||
        strstr(all,
               "certificate verify failed: certificate has expired (client certificate) from 127.0.0.1:") ==
            NULL)
        fail_msg("reported: %s", all);
    assert_true(plog_tls_config_errmsg(scfg, err, sizeof err));
    plog_tls_stats_get(&after);
    assert_true(after.failures >= before.failures + 4); /* both sides of both */
    assert_true(after.failed[PLOG_TLS_FAIL_NO_CERTIFICATE] >=
                before.failed[PLOG_TLS_FAIL_NO_CERTIFICATE] + 1);
    assert_true(after.failed[PLOG_TLS_FAIL_BAD_CERTIFICATE] >=
                before.failed[PLOG_TLS_FAIL_BAD_CERTIFICATE] + 1);
    assert_true(after.failed[PLOG_TLS_FAIL_REFUSED_BY_PEER] >=
                before.failed[PLOG_TLS_FAIL_REFUSED_BY_PEER] + 2);
    assert_true(after.handshakes >= before.handshakes);

    tt_server_stop(&srv);
    nng_tls_config_free(scfg);
}

/* silent_connect opens a TCP connection to the host:port of url and returns it. */
static int silent_connect(const char *url)
{
    const char *port = strrchr(url, ':') + 1;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(port))};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    return fd;
}

/* hung_up waits up to timeout_ms for the server to close fd: end of stream or a
 * reset, never data. */
static bool hung_up(int fd, int timeout_ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    char buf[64];
    if (poll(&p, 1, timeout_ms) != 1)
        return false;
    ssize_t n = read(fd, buf, sizeof buf);
    return n == 0 || (n < 0 && errno == ECONNRESET);
}

/* Connections that never finish a handshake hold the cap's slots only until the
 * handshake deadline: silent ones, and one that sent part of a ClientHello, are
 * closed (nng 1.5.2's own negotiation timeout never fires for them), counted and
 * reported with their address; then a client with a certificate is served. The
 * wait for each hang-up is bounded; without the deadline it ends in failure. */
static void test_tls_unfinished_handshakes_end_at_the_deadline(void **state)
{
    (void)state;
    enum { CAP = 3, TIMEOUT_MS = 300, HANGUP_WAIT_MS = 5000 };
    struct failures f = {.mu = PTHREAD_MUTEX_INITIALIZER};
    struct tt_server srv;
    char url[64], err[PLOG_TLS_ERRMSG_SIZE];
    nng_tls_config *scfg;
    plog_tls_stats before, after;
    int fds[CAP];

    tt_url("tls+tcp", url, sizeof url);
    assert_plog_ok(plog_tls_config_server(tt_path("server.pem"), tt_path("server-key.pem"), tt_path("ca.pem"),
                                          &scfg, err, sizeof err));
    assert_plog_ok(plog_tls_config_limits(scfg, CAP, TIMEOUT_MS));
    assert_plog_ok(plog_tls_config_on_failure(scfg, on_failure, &f));
    tt_server_start(&srv, url, scfg);
    plog_tls_stats_get(&before);

    for (int i = 0; i < CAP; i++)
        fds[i] = silent_connect(url);
    assert_int_equal(write(fds[0], "\x16\x03\x01", 3), 3); /* a ClientHello record's header, no more */
    for (int i = 0; i < CAP; i++) {
        if (!hung_up(fds[i], HANGUP_WAIT_MS))
            fail_msg("connection %d still open %d ms after its %d ms handshake deadline", i, HANGUP_WAIT_MS,
                     TIMEOUT_MS);
        close(fds[i]);
    }

    /* The slots are free again, and the listener still accepts: once nng has
     * finalised the closed connections, on its reaper a moment after the hang-ups
     * (a dial at once was refused as over the cap in a loaded CI run). */
    nng_tls_config *ccfg = tt_root_config(NULL);
    nng_socket c;
    int rv;
    int64_t until = plog_test_now_ms() + HANGUP_WAIT_MS;
    while ((rv = tt_client_dial(url, ccfg, &c)) != 0 && plog_test_now_ms() < until)
        plog_test_sleep_ms(200); /* few refusals: the hook reports 10 a second */
    assert_nng_ok(rv);
    char *reply = tt_echo(c, "served");
    assert_string_equal(reply, "served|root|TLSv1.3");
    free(reply);
    nng_close(c);
    nng_tls_config_free(ccfg);

    plog_tls_stats_get(&after);
    assert_true(after.failed[PLOG_TLS_FAIL_TIMEOUT] >= before.failed[PLOG_TLS_FAIL_TIMEOUT] + CAP);
    /* A dial refused while the slots were still taken is reported too (or folded
     * into a later "and N more" past the hook's 10 reports a second). */
    int refused =
        (int)(after.failed[PLOG_TLS_FAIL_OVER_CAPACITY] - before.failed[PLOG_TLS_FAIL_OVER_CAPACITY]);
    pthread_mutex_lock(&f.mu);
    int n = f.n;
    const char *line = strstr(f.all, "no TLS handshake within 300 ms from 127.0.0.1:");
    pthread_mutex_unlock(&f.mu);
    if (n < CAP || n > CAP + refused || line == NULL)
        fail_msg("%d failures reported, want %d timeouts and %d refusals: %s", n, CAP, refused, f.all);

    tt_server_stop(&srv);
    nng_tls_config_free(scfg);
}

/* start_capped starts an echo server on a fresh tls+tcp:// URL (written to url)
 * that admits cap connections at once, each with a handshake deadline of
 * timeout_ms; the caller frees the returned config after tt_server_stop. */
static nng_tls_config *start_capped(struct tt_server *srv, char *url, size_t size, unsigned cap,
                                    uint32_t timeout_ms)
{
    char err[PLOG_TLS_ERRMSG_SIZE];
    nng_tls_config *scfg;

    tt_url("tls+tcp", url, size);
    assert_plog_ok(plog_tls_config_server(tt_path("server.pem"), tt_path("server-key.pem"), tt_path("ca.pem"),
                                          &scfg, err, sizeof err));
    assert_plog_ok(plog_tls_config_limits(scfg, cap, timeout_ms));
    tt_server_start(srv, url, scfg);
    return scfg;
}

/* root_served dials url as root, retrying for up to within_ms while the cap
 * refuses it, and checks that root's echo is answered; after says what came
 * before, for the failure message. */
static void root_served(const char *url, int within_ms, int n, const char *after, int cap)
{
    nng_tls_config *ccfg = tt_root_config(NULL);
    nng_socket c;
    int rv = -1;
    for (int waited = 0; waited < within_ms && (rv = tt_client_dial(url, ccfg, &c)) != 0; waited += 100)
        plog_test_sleep_ms(100);
    if (rv != 0)
        fail_msg("root refused %d ms after %d %s (cap %d): %s", within_ms, n, after, cap, nng_strerror(rv));
    char *reply = tt_echo(c, "served");
    assert_string_equal(reply, "served|root|TLSv1.3");
    free(reply);
    nng_close(c);
    nng_tls_config_free(ccfg);
}

/* Clients that connect and hang up at once, before sending a byte, some with a
 * reset: each connection must be freed, though it ended before nng's transport
 * posted anything and its handshake deadline (a minute here) never comes. Before,
 * nng waited for ever for a TCP receive it could not start, and each such
 * connection kept its slot under the cap (and its descriptor): a root client was
 * refused for good. The wait for the service is bounded. */
static void test_tls_clients_that_hang_up_at_once_free_their_slots(void **state)
{
    (void)state;
    enum { CAP = 4, HANGUPS = 40, TIMEOUT_MS = 60000, SERVED_WITHIN_MS = 10000 };
    struct tt_server srv;
    char url[64];
    nng_tls_config *scfg = start_capped(&srv, url, sizeof url, CAP, TIMEOUT_MS);

    for (int i = 0; i < HANGUPS; i++) {
        int fd = silent_connect(url);
        if (i % 2 == 1) {
            struct linger reset = {.l_onoff = 1, .l_linger = 0};
            assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_LINGER, &reset, sizeof reset), 0);
        }
        close(fd);
    }
    root_served(url, SERVED_WITHIN_MS, HANGUPS, "clients hung up", CAP);

    tt_server_stop(&srv);
    nng_tls_config_free(scfg);
}

/* handshake_and_hang_up finishes a TLS handshake with root's certificate on a
 * connection of its own (OpenSSL driven directly), exchanges the SP headers when
 * sp, and hangs up at once, with a reset when reset. false: the server refused
 * the handshake (at its cap). */
static bool handshake_and_hang_up(SSL_CTX *ctx, const char *url, bool sp, bool reset)
{
    int fd = silent_connect(url);
    SSL *ssl = SSL_new(ctx);
    assert_non_null(ssl);
    assert_int_equal(SSL_set_fd(ssl, fd), 1);
    if (SSL_connect(ssl) != 1) {
        ERR_clear_error();
        SSL_free(ssl);
        close(fd);
        return false;
    }
    if (sp) {
        static const char req0[8] = {0, 'S', 'P', 0, 0, 0x30, 0, 0};
        char rep0[8];
        size_t got = 0, n;
        assert_int_equal(SSL_write(ssl, req0, sizeof req0), (int)sizeof req0);
        while (got < sizeof rep0 && SSL_read_ex(ssl, rep0 + got, sizeof rep0 - got, &n) == 1)
            got += n;
        assert_int_equal(got, sizeof rep0);
    }
    if (reset) {
        struct linger now = {.l_onoff = 1, .l_linger = 0};
        assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_LINGER, &now, sizeof now), 0);
    }
    SSL_free(ssl); /* no close_notify */
    close(fd);
    return true;
}

/* hang_ups_free_slots has 24 clients finish the handshake (every other one also the
 * SP header exchange) and hang up at once, against a server capped at 4
 * connections: every fourth pair with a reset when resets, else all with a FIN.
 * Each connection must be freed: a client refused for 10 s, or a root client not
 * served after them, fails the test. */
static void hang_ups_free_slots(bool resets, const char *what)
{
    enum { CAP = 4, HANGUPS = 24, SERVED_WITHIN_MS = 10000 };
    signal(SIGPIPE, SIG_IGN); /* a handshake the cap refuses writes to a closed socket */
    struct tt_server srv;
    char url[64];
    nng_tls_config *scfg = start_capped(&srv, url, sizeof url, CAP, 60000);
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    assert_non_null(ctx);
    assert_int_equal(SSL_CTX_use_certificate_file(ctx, tt_path("root-client.pem"), SSL_FILETYPE_PEM), 1);
    assert_int_equal(SSL_CTX_use_PrivateKey_file(ctx, tt_path("root-client-key.pem"), SSL_FILETYPE_PEM), 1);
    assert_int_equal(SSL_CTX_load_verify_locations(ctx, tt_path("ca.pem"), NULL), 1);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);

    for (int i = 0; i < HANGUPS; i++) {
        /* A handshake beyond the cap is refused: wait for the slots to free. */
        int waited = 0;
        while (!handshake_and_hang_up(ctx, url, i % 2 == 1, resets && i % 4 >= 2) &&
               waited < SERVED_WITHIN_MS) {
            plog_test_sleep_ms(100);
            waited += 100;
        }
        if (waited >= SERVED_WITHIN_MS)
            fail_msg("handshake %d refused for %d ms: the %d slots stay taken by %s", i, SERVED_WITHIN_MS,
                     CAP, what);
    }
    root_served(url, SERVED_WITHIN_MS, HANGUPS, what, CAP);
    SSL_CTX_free(ctx);

    tt_server_stop(&srv);
    nng_tls_config_free(scfg);
}

/* Clients that finish the handshake (some also the SP header exchange) and hang up
 * at once: each connection must be freed. Before, nng's TCP stream failed while no
 * receive was queued on the connection, the next receive waited for ever for a
 * TCP receive that nng never starts, and each such connection kept its slot under
 * the cap and its descriptor (a black-box run: 4,400 of them lock out every
 * client): a root client was refused for good. The wait for the service is bounded. */
static void test_tls_clients_that_hang_up_after_the_handshake_free_their_slots(void **state)
{
    (void)state;
    hang_ups_free_slots(true, "clients hung up after their handshake");
}

/* The same clients, each hanging up with a FIN, while the check a waiting receive
 * makes at once takes the stream for alive (plog_tls_recheck_only), as getpeername
 * does over a network for a round trip after a FIN: the connection's recheck
 * timer must find out. Before it, such connections leaked (a review measured 7-8
 * of 10 over a delayed link), and here the fifth client was refused for good. */
static void test_tls_clients_whose_fin_is_seen_late_free_their_slots(void **state)
{
    (void)state;
    atomic_store(&plog_tls_recheck_only, true);
    hang_ups_free_slots(false, "clients whose FIN the first check missed");
    atomic_store(&plog_tls_recheck_only, false);
}

/* s_client runs openssl s_client against the server, its stdin a pause so that a
 * refusal, which TLS 1.3 delivers after the client's handshake, can arrive. With a
 * certificate, stdin first carries the 8-byte SP header of a REQ peer, so that the
 * server's nng sees a real peer. (Without one, the client sends nothing after its
 * handshake: data sent meanwhile could turn the server's close into a reset that
 * destroys its alert, a TCP race, not a refusal that failed.) */
static int s_client(const struct tt_server *srv, bool with_cert, char **out)
{
    char cmd[2048];
    const char *hostport = strstr(srv->url, "://") + 3;
    char certopts[1200] = "";
    if (with_cert)
        snprintf(certopts, sizeof certopts, "-cert '%s' -key '%s'", tt_path("root-client.pem"),
                 tt_path("root-client-key.pem"));
    snprintf(cmd, sizeof cmd,
             "(%s sleep 1) | "
             "openssl s_client -connect %s -CAfile '%s' -verify_return_error -verify_ip 127.0.0.1 "
             "%s 2>&1",
             with_cert ? "printf '\\000SP\\000\\000\\060\\000\\000';" : "", hostport, tt_path("ca.pem"),
             certopts);
    return plog_test_sh(cmd, 20000, out);
}

static void test_tls_openssl_s_client_with_root_certificate_completes_tls13(void **state)
{
    char *out = NULL;
    int rc = s_client(*state, true, &out);
    if (rc != 0 || strstr(out, "Verify return code: 0 (ok)") == NULL || strstr(out, "New, TLSv1.3") == NULL ||
        strstr(out, "alert") != NULL)
        fail_msg("s_client exit %d:\n%s", rc, out);
    free(out);
}

static void test_tls_openssl_s_client_without_certificate_is_refused(void **state)
{
    char *out = NULL;
    int rc = s_client(*state, false, &out);
    if (strstr(out, "certificate required") == NULL)
        fail_msg("s_client exit %d, no refusal:\n%s", rc, out);
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tls_engine_register_makes_nng_use_openssl),
        cmocka_unit_test(test_tls_config_missing_file_is_named_in_the_error),
        cmocka_unit_test(test_tls_config_key_of_another_certificate_is_refused),
        cmocka_unit_test(test_tls_config_expired_server_certificate_is_refused),
        cmocka_unit_test(test_tls_config_encrypted_key_is_named_as_such),
        cmocka_unit_test(test_tls_config_non_pem_file_is_refused),
        cmocka_unit_test(test_tls_config_damaged_or_rootless_ca_file_is_refused),
        cmocka_unit_test(test_gencert_help_and_a_bad_option),
        cmocka_unit_test(test_tls_url_host_strips_scheme_port_and_brackets),
        cmocka_unit_test(test_tls_mutual_echo_negotiates_tls13_and_names_the_client),
        cmocka_unit_test(test_tls_server_name_may_be_a_dns_name),
        cmocka_unit_test(test_tls_client_without_server_name_is_an_error),
        cmocka_unit_test(test_tls_client_limited_to_tls12_still_connects),
        cmocka_unit_test(test_tls_large_messages_arrive_intact),
        cmocka_unit_test(test_tls_handshakes_larger_than_nng_buffers_complete),
        cmocka_unit_test(test_tls_small_message_is_one_record),
        cmocka_unit_test(test_tls_interleaved_messages_of_mixed_sizes_arrive_intact),
        cmocka_unit_test(test_tls_stream_writes_that_are_not_sp_messages_go_out_at_once),
        cmocka_unit_test_setup_teardown(test_tls_client_without_certificate_is_refused, refusal_setup,
                                        refusal_teardown),
        cmocka_unit_test_setup_teardown(test_tls_client_certificate_from_another_ca_is_refused, refusal_setup,
                                        refusal_teardown),
        cmocka_unit_test_setup_teardown(test_tls_expired_client_certificate_is_refused, refusal_setup,
                                        refusal_teardown),
        cmocka_unit_test_setup_teardown(test_tls_not_yet_valid_client_certificate_is_refused, refusal_setup,
                                        refusal_teardown),
        cmocka_unit_test_setup_teardown(test_tls_client_refuses_server_with_wrong_ip, refusal_setup,
                                        refusal_teardown),
        cmocka_unit_test_setup_teardown(test_tls_client_refuses_server_from_another_ca, refusal_setup,
                                        refusal_teardown),
        cmocka_unit_test_setup_teardown(test_tls_plain_tcp_client_gets_no_service_from_tls_listener,
                                        refusal_setup, refusal_teardown),
        cmocka_unit_test(test_tls_client_gets_no_service_from_plain_tcp_listener),
        cmocka_unit_test(test_tls_server_reports_refused_handshakes),
        cmocka_unit_test(test_tls_unfinished_handshakes_end_at_the_deadline),
        cmocka_unit_test(test_tls_clients_that_hang_up_at_once_free_their_slots),
        cmocka_unit_test(test_tls_clients_that_hang_up_after_the_handshake_free_their_slots),
        cmocka_unit_test(test_tls_clients_whose_fin_is_seen_late_free_their_slots),
        cmocka_unit_test_setup_teardown(test_tls_openssl_s_client_with_root_certificate_completes_tls13,
                                        refusal_setup, refusal_teardown),
        cmocka_unit_test_setup_teardown(test_tls_openssl_s_client_without_certificate_is_refused,
                                        refusal_setup, refusal_teardown),
    };
    tt_certs(); /* before any thread exists: the script runs in a child process */
    return cmocka_run_group_tests_name("tls engine", tests, NULL, NULL);
}
