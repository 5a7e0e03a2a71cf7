/* tlstest_testlib.c - the TLS tests' helpers (tlstest.h), in the test library
 * (linked only into tests and benchmarks). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "internal/tls/tlstest.h"

const char *tt_certs(void)
{
    static char dir[512];
    if (dir[0] != '\0')
        return dir;
    const char *build = getenv("PLOG_BUILD");
    const char *chapter = getenv("PLOG_CHAPTER");
    char cmd[1200];
    snprintf(dir, sizeof dir, "%s/certs", build != NULL ? build : "build");
    snprintf(cmd, sizeof cmd, "%s/../common/certs/gencert '%s'", chapter != NULL ? chapter : ".", dir);
    char *out = NULL;
    int rc = plog_test_sh(cmd, 30000, &out);
    if (rc != 0)
        fail_msg("%s: exit %d: %s", cmd, rc, out != NULL ? out : "");
    free(out);
    return dir;
}

const char *tt_path(const char *name)
{
    static char bufs[8][600];
    static int next;
    char *b = bufs[next++ % 8];
    snprintf(b, sizeof bufs[0], "%s/%s", tt_certs(), name);
    return b;
}

void tt_url(const char *scheme, char *buf, size_t size)
{
    snprintf(buf, size, "%s://127.0.0.1:%d", scheme, plog_test_free_port());
}

void tt_server_cb(void *arg)
{
    struct tt_ctx *c = arg;
    int rv = nng_aio_result(c->aio);
    if (c->sending) {
        c->sending = false;
        if (rv != 0)
            nng_msg_free(nng_aio_get_msg(c->aio));
    } else if (rv == 0) {
        nng_msg *msg = nng_aio_get_msg(c->aio);
        plog_tls_peer peer;
        char tail[PLOG_TLS_CN_SIZE + 32];
        if (plog_tls_peer_lookup(nng_msg_get_pipe(msg), &peer) == PLOG_OK) {
            snprintf(tail, sizeof tail, "|%s|%s", peer.cn, peer.version);
        } else {
            atomic_fetch_add(&c->srv->anonymous, 1);
            snprintf(tail, sizeof tail, "|-|-");
        }
        if (nng_msg_append(msg, tail, strlen(tail)) != 0) {
            nng_msg_free(msg);
        } else {
            atomic_fetch_add(&c->srv->served, 1);
            c->sending = true;
            nng_aio_set_msg(c->aio, msg);
            nng_ctx_send(c->ctx, c->aio);
            return;
        }
    } else {
        return; /* closed */
    }
    nng_ctx_recv(c->ctx, c->aio);
}

void tt_server_start(struct tt_server *s, const char *url, nng_tls_config *cfg)
{
    memset(s, 0, sizeof *s);
    snprintf(s->url, sizeof s->url, "%s", url);
    assert_plog_ok(plog_tls_engine_register());
    assert_nng_ok(nng_rep0_open(&s->sock));
    assert_plog_ok(plog_tls_peer_track(s->sock));
    assert_nng_ok(nng_listener_create(&s->listener, s->sock, url));
    if (cfg != NULL)
        assert_nng_ok(nng_listener_set_ptr(s->listener, NNG_OPT_TLS_CONFIG, cfg));
    assert_nng_ok(nng_listener_start(s->listener, 0));
    for (int i = 0; i < TT_CTXS; i++) {
        struct tt_ctx *c = &s->ctx[i];
        c->srv = s;
        assert_nng_ok(nng_aio_alloc(&c->aio, tt_server_cb, c));
        assert_nng_ok(nng_ctx_open(&c->ctx, s->sock));
        nng_ctx_recv(c->ctx, c->aio);
    }
}

void tt_server_start_files(struct tt_server *s, const char *scheme, const char *cert, const char *key)
{
    char url[64], err[PLOG_TLS_ERRMSG_SIZE];
    nng_tls_config *cfg;
    tt_url(scheme, url, sizeof url);
    int rv = plog_tls_config_server(tt_path(cert), tt_path(key), tt_path("ca.pem"), &cfg, err, sizeof err);
    if (rv != PLOG_OK)
        fail_msg("server config: %s", err);
    tt_server_start(s, url, cfg);
    nng_tls_config_free(cfg); /* the listener holds its own reference */
}

void tt_server_stop(struct tt_server *s)
{
    nng_close(s->sock);
    for (int i = 0; i < TT_CTXS; i++)
        nng_aio_free(s->ctx[i].aio); /* stops it: the callback has finished */
}

nng_tls_config *tt_client_config(const char *cert, const char *key, const char *ca, const char *server_name)
{
    char err[PLOG_TLS_ERRMSG_SIZE];
    nng_tls_config *cfg;
    int rv = plog_tls_config_client(cert != NULL ? tt_path(cert) : NULL, key != NULL ? tt_path(key) : NULL,
                                    tt_path(ca), server_name != NULL ? server_name : "127.0.0.1", &cfg, err,
                                    sizeof err);
    if (rv != PLOG_OK)
        fail_msg("client config: %s", err);
    return cfg;
}

nng_tls_config *tt_root_config(const char *server_name)
{
    return tt_client_config("root-client.pem", "root-client-key.pem", "ca.pem", server_name);
}

void tt_session_open(struct tt_session *s, nng_tls_config *cfg)
{
    s->cfg = cfg;
    tt_server_start_files(&s->srv, "tls+tcp", "server.pem", "server-key.pem");
    assert_nng_ok(tt_client_dial(s->srv.url, cfg, &s->c));
}

void tt_session_close(struct tt_session *s)
{
    nng_close(s->c);
    nng_tls_config_free(s->cfg);
    tt_server_stop(&s->srv);
}

int tt_client_dial(const char *url, nng_tls_config *cfg, nng_socket *sp)
{
    nng_socket s;
    nng_dialer d;
    int rv;
    assert_nng_ok(nng_req0_open(&s));
    assert_nng_ok(nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, 20000));
    assert_nng_ok(nng_socket_set_ms(s, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE));
    assert_nng_ok(nng_dialer_create(&d, s, url));
    if (cfg != NULL)
        assert_nng_ok(nng_dialer_set_ptr(d, NNG_OPT_TLS_CONFIG, cfg));
    if ((rv = nng_dialer_start(d, 0)) != 0) {
        nng_close(s);
        return rv;
    }
    *sp = s;
    return 0;
}

char *tt_echo(nng_socket s, const char *body)
{
    char *reply = NULL;
    size_t len = 0;
    assert_nng_ok(nng_send(s, (void *)body, strlen(body), 0));
    assert_nng_ok(nng_recv(s, &reply, &len, NNG_FLAG_ALLOC));
    char *str = malloc(len + 1);
    memcpy(str, reply, len);
    str[len] = '\0';
    nng_free(reply, len);
    return str;
}
