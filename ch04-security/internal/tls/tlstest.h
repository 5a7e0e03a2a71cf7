/* tlstest.h - test-only helpers shared by engine_test.c and peer_test.c: the test
 * certificates, an asynchronous REP echo server that tells each client who it
 * thinks the client is, and a REQ client over mutual TLS. Defined in
 * tlstest_testlib.c (the test library), so nothing here reaches libplog.a.
 * Include after cmocka.h.
 *
 * Echo protocol: the reply is the request's bytes followed by "|<cn>|<version>" as
 * the server's identity lookup saw them ("-|-" when the pipe has no identity). */
#ifndef PLOG_TLS_TLSTEST_H
#define PLOG_TLS_TLSTEST_H

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>

#include "internal/err/err.h"
#include "internal/tls/config.h"
#include "internal/tls/engine.h"
#include "internal/tls/peer.h"
#include "testing/testing.h"

#define assert_nng_ok(expr)                                         \
    do {                                                            \
        int rv_ = (expr);                                           \
        if (rv_ != 0)                                               \
            fail_msg("%s: %s (%d)", #expr, nng_strerror(rv_), rv_); \
    } while (0)

/* tt_certs makes the test certificates (once per process) with the chapter's
 * script into $PLOG_BUILD/certs and returns that directory. */
const char *tt_certs(void);

/* tt_path returns certs/<name> in one of 8 rotating static buffers. */
const char *tt_path(const char *name);

/* tt_url returns "<scheme>://127.0.0.1:<free port>" in buf. */
void tt_url(const char *scheme, char *buf, size_t size);

#define TT_CTXS 16

struct tt_server;
struct tt_ctx {
    struct tt_server *srv;
    nng_ctx ctx;
    nng_aio *aio;
    bool sending;
};

struct tt_server {
    nng_socket sock;
    nng_listener listener;
    char url[64];
    struct tt_ctx ctx[TT_CTXS];
    atomic_int served;
    atomic_int anonymous; /* requests whose pipe had no identity */
};

void tt_server_cb(void *arg);

/* tt_server_start listens on url with cfg (NULL for plain tcp://; borrowed) and
 * serves with TT_CTXS contexts. */
void tt_server_start(struct tt_server *s, const char *url, nng_tls_config *cfg);

/* tt_server_start_files: tt_server_start with a server config made of certs files. */
void tt_server_start_files(struct tt_server *s, const char *scheme, const char *cert, const char *key);

void tt_server_stop(struct tt_server *s);

/* tt_client_config makes a client config: cert/key names in certs (NULL for none),
 * ca name, server name (NULL: "127.0.0.1"). */
nng_tls_config *tt_client_config(const char *cert, const char *key, const char *ca, const char *server_name);

/* tt_client_dial opens a REQ socket and dials url synchronously with cfg (borrowed,
 * NULL for tcp://). Returns nng's result; on failure the socket is closed. */
int tt_client_dial(const char *url, nng_tls_config *cfg, nng_socket *sp);

/* tt_root_config: tt_client_config for the root client certificate. */
nng_tls_config *tt_root_config(const char *server_name);

/* A session: the echo server on tls+tcp with server.pem, and a REQ socket c
 * dialed to it. */
struct tt_session {
    struct tt_server srv;
    nng_tls_config *cfg; /* the client's, owned by the session */
    nng_socket c;
};

/* tt_session_open starts the server and dials it with cfg (the session takes
 * it); fails the test if the dial fails. */
void tt_session_open(struct tt_session *s, nng_tls_config *cfg);

/* tt_session_close closes the client, frees its config and stops the server. */
void tt_session_close(struct tt_session *s);

/* tt_echo sends body and returns the reply as a malloc'd string. */
char *tt_echo(nng_socket s, const char *body);

#endif
