/* peer_test.c - the identity hand-off (peer.h): the server learns each pipe's
 * verified CN before the pipe's first message, keeps it per pipe, forgets it when
 * the pipe goes, and never attributes a request to the wrong client, even with
 * several identities interleaving tens of thousands of requests over many contexts
 * and connections coming and going. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "internal/tls/tlstest.h"

static bool no_peers_left(void *arg)
{
    (void)arg;
    return plog_tls_peer_count() == 0;
}

static void test_peer_identity_of_plain_tcp_pipe_is_absent(void **state)
{
    (void)state;
    struct tt_server srv;
    char url[64];
    nng_socket c;
    tt_url("tcp", url, sizeof url);
    tt_server_start(&srv, url, NULL);
    assert_nng_ok(tt_client_dial(url, NULL, &c));
    char *reply = tt_echo(c, "plain");
    assert_string_equal(reply, "plain|-|-");
    free(reply);
    assert_int_equal(atomic_load(&srv.anonymous), 1);
    nng_close(c);
    tt_server_stop(&srv);
}

/* A certificate whose subject has two CNs is valid, but names no one: no identity
 * rather than a guess at which CN counts. */
static void test_peer_certificate_with_two_cns_has_no_identity(void **state)
{
    (void)state;
    struct tt_session s;
    tt_session_open(&s, tt_client_config("twocn-client.pem", "twocn-client-key.pem", "ca.pem", NULL));
    char *reply = tt_echo(s.c, "who");
    assert_string_equal(reply, "who|-|-");
    free(reply);
    tt_session_close(&s);
}

static void test_peer_identity_copies_cn_and_checks_buffer_size(void **state)
{
    (void)state;
    nng_socket s, c;
    char url[64], cn[PLOG_TLS_CN_SIZE];
    tt_url("tls+tcp", url, sizeof url);
    nng_tls_config *scfg;
    char err[PLOG_TLS_ERRMSG_SIZE];
    assert_plog_ok(plog_tls_config_server(tt_path("server.pem"), tt_path("server-key.pem"), tt_path("ca.pem"),
                                          &scfg, err, sizeof err));
    assert_nng_ok(nng_rep0_open(&s));
    assert_plog_ok(plog_tls_peer_track(s));
    nng_listener l;
    assert_nng_ok(nng_listener_create(&l, s, url));
    assert_nng_ok(nng_listener_set_ptr(l, NNG_OPT_TLS_CONFIG, scfg));
    assert_nng_ok(nng_listener_start(l, 0));
    nng_tls_config *ccfg = tt_client_config("nobody-client.pem", "nobody-client-key.pem", "ca.pem", NULL);
    assert_nng_ok(tt_client_dial(url, ccfg, &c));

    assert_nng_ok(nng_send(c, "x", 1, 0));
    nng_msg *msg;
    assert_nng_ok(nng_recvmsg(s, &msg, 0));
    assert_plog_ok(plog_tls_peer_identity(msg, cn, sizeof cn));
    assert_string_equal(cn, "nobody");
    assert_int_equal(plog_tls_peer_identity(msg, cn, 6), PLOG_EINVAL); /* "nobody" needs 7 */
    plog_tls_peer peer;
    assert_plog_ok(plog_tls_peer_lookup(nng_msg_get_pipe(msg), &peer));
    assert_string_equal(peer.version, "TLSv1.3");
    assert_int_equal(plog_tls_peer_count(), 1);
    nng_msg_free(msg);

    nng_close(c);
    nng_close(s);
    /* REM_POST ran for the pipe: nothing is left behind. */
    assert_true(plog_test_wait_until(no_peers_left, NULL, 10000));
    nng_tls_config_free(ccfg);
    nng_tls_config_free(scfg);
}

/* The identity must be there by the time ADD_PRE returns, before the pipe can
 * deliver anything. This also guards the one assumption nng does not promise: that
 * NNG_OPT_TLS_VERIFIED's getter runs the engine synchronously on the caller's thread. */
static atomic_int add_pre_seen, add_pre_with_identity;

static void checking_cb(nng_pipe p, nng_pipe_ev ev, void *arg)
{
    plog_tls_peer_on_event(p, ev, arg);
    if (ev == NNG_PIPE_EV_ADD_PRE) {
        plog_tls_peer peer;
        atomic_fetch_add(&add_pre_seen, 1);
        if (plog_tls_peer_lookup(p, &peer) == PLOG_OK && strcmp(peer.cn, "root") == 0)
            atomic_fetch_add(&add_pre_with_identity, 1);
    }
}

static void test_peer_identity_is_known_when_add_pre_returns(void **state)
{
    (void)state;
    struct tt_server srv;
    nng_socket c;
    tt_server_start_files(&srv, "tls+tcp", "server.pem", "server-key.pem");
    assert_nng_ok(nng_pipe_notify(srv.sock, NNG_PIPE_EV_ADD_PRE, checking_cb, NULL));
    nng_tls_config *cfg = tt_root_config(NULL);
    for (int i = 0; i < 5; i++) {
        assert_nng_ok(tt_client_dial(srv.url, cfg, &c));
        char *reply = tt_echo(c, "x");
        assert_string_equal(reply, "x|root|TLSv1.3");
        free(reply);
        nng_close(c);
    }
    assert_int_equal(atomic_load(&add_pre_seen), 5);
    assert_int_equal(atomic_load(&add_pre_with_identity), 5);
    nng_tls_config_free(cfg);
    tt_server_stop(&srv);
}

/* ---- identity under concurrency ----------------------------------------------------- */

#define SOCKS_PER_ID 2
#define CTXS_PER_SOCK 6
#define REQS_PER_CTX 900 /* 3 ids x 2 sockets x 6 contexts x 900 = 32,400 requests */
#define CHURN_CONNS 40

struct client {
    const char *cn;     /* who it is, as the server must see it ("-" for none) */
    const char *suffix; /* the version part of the expected reply */
    nng_socket sock;
    int index;
};

struct worker {
    struct client *cl;
    int id;
    int reqs;
    pthread_t thread;
};

static atomic_int requests_ok, mismatches, failures;
static char first_mismatch[512];
static pthread_mutex_t mismatch_lock = PTHREAD_MUTEX_INITIALIZER;

static void note_mismatch(const char *sent, const char *got)
{
    pthread_mutex_lock(&mismatch_lock);
    if (first_mismatch[0] == '\0')
        snprintf(first_mismatch, sizeof first_mismatch, "sent \"%s\" got \"%s\"", sent, got);
    pthread_mutex_unlock(&mismatch_lock);
    atomic_fetch_add(&mismatches, 1);
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    nng_ctx ctx;
    nng_aio *aio;
    if (nng_ctx_open(&ctx, w->cl->sock) != 0 || nng_aio_alloc(&aio, NULL, NULL) != 0) {
        atomic_fetch_add(&failures, 1);
        return NULL;
    }
    nng_aio_set_timeout(aio, 30000);
    for (int i = 0; i < w->reqs; i++) {
        char body[128], want[256];
        nng_msg *msg;
        /* Variable sizes so that requests of different clients straddle records. */
        int n = snprintf(body, sizeof body, "%s/%d/%d/%d/%.*s", w->cl->cn, w->cl->index, w->id, i, i % 40,
                         "........................................");
        snprintf(want, sizeof want, "%s|%s|%s", body, w->cl->cn, w->cl->suffix);
        if (nng_msg_alloc(&msg, 0) != 0 || nng_msg_append(msg, body, (size_t)n) != 0) {
            atomic_fetch_add(&failures, 1);
            break;
        }
        nng_aio_set_msg(aio, msg);
        nng_ctx_send(ctx, aio);
        nng_aio_wait(aio);
        if (nng_aio_result(aio) != 0) {
            nng_msg_free(msg);
            atomic_fetch_add(&failures, 1);
            break;
        }
        nng_ctx_recv(ctx, aio);
        nng_aio_wait(aio);
        if (nng_aio_result(aio) != 0) {
            atomic_fetch_add(&failures, 1);
            break;
        }
        msg = nng_aio_get_msg(aio);
        size_t len = nng_msg_len(msg);
        if (len != strlen(want) || memcmp(nng_msg_body(msg), want, len) != 0) {
            char got[256];
            snprintf(got, sizeof got, "%.*s", (int)(len < 255 ? len : 255), (char *)nng_msg_body(msg));
            note_mismatch(body, got);
        } else {
            atomic_fetch_add(&requests_ok, 1);
        }
        nng_msg_free(msg);
    }
    nng_aio_free(aio);
    nng_ctx_close(ctx);
    return NULL;
}

struct churn {
    const char *url;
    nng_tls_config *cfg;
    pthread_t thread;
    atomic_int done;
};

/* churn connects, asks once and hangs up, again and again, as "reader": pipes come
 * and go while the others' requests are in flight. */
static void *churn_main(void *arg)
{
    struct churn *ch = arg;
    for (int i = 0; i < CHURN_CONNS; i++) {
        nng_socket s;
        nng_dialer d;
        char body[64], *reply = NULL;
        size_t len = 0;
        if (nng_req0_open(&s) != 0) {
            atomic_fetch_add(&failures, 1);
            break;
        }
        nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, 30000);
        int n = snprintf(body, sizeof body, "reader/churn/%d", i);
        if (nng_dialer_create(&d, s, ch->url) != 0 ||
            nng_dialer_set_ptr(d, NNG_OPT_TLS_CONFIG, ch->cfg) != 0 || nng_dialer_start(d, 0) != 0 ||
            nng_send(s, body, (size_t)n, 0) != 0 || nng_recv(s, &reply, &len, NNG_FLAG_ALLOC) != 0) {
            atomic_fetch_add(&failures, 1);
            nng_close(s);
            break;
        }
        char want[128];
        snprintf(want, sizeof want, "%s|reader|TLSv1.3", body);
        if (len != strlen(want) || memcmp(reply, want, len) != 0)
            note_mismatch(body, "(churn reply)");
        else
            atomic_fetch_add(&requests_ok, 1);
        nng_free(reply, len);
        nng_close(s);
    }
    atomic_store(&ch->done, 1);
    return NULL;
}

/* Three identities, each on two connections with six contexts apiece, plus a client
 * whose certificate names no one, a plain tcp:// client on the same server socket,
 * and a client reconnecting over and over: every reply names its own sender. */
static void test_peer_identity_never_crosses_clients_under_concurrency(void **state)
{
    (void)state;
    static const char *ids[][3] = {
        {"root", "root-client.pem", "root-client-key.pem"},
        {"nobody", "nobody-client.pem", "nobody-client-key.pem"},
        {"reader", "reader-client.pem", "reader-client-key.pem"},
    };
    enum { NIDS = 3, NCLIENTS = NIDS * SOCKS_PER_ID + 2 };
    struct tt_server srv;
    struct client clients[NCLIENTS];
    struct worker workers[NCLIENTS * CTXS_PER_SOCK];
    nng_tls_config *cfgs[NIDS + 1];
    char tcp_url[64];
    int nworkers = 0, expected = 0;

    atomic_store(&requests_ok, 0);
    atomic_store(&mismatches, 0);
    atomic_store(&failures, 0);
    tt_server_start_files(&srv, "tls+tcp", "server.pem", "server-key.pem");
    tt_url("tcp", tcp_url, sizeof tcp_url);
    assert_nng_ok(nng_listen(srv.sock, tcp_url, NULL, 0));

    int k = 0;
    for (int i = 0; i < NIDS; i++) {
        cfgs[i] = tt_client_config(ids[i][1], ids[i][2], "ca.pem", NULL);
        for (int j = 0; j < SOCKS_PER_ID; j++, k++) {
            clients[k] = (struct client){.cn = ids[i][0], .suffix = "TLSv1.3", .index = j};
            assert_nng_ok(tt_client_dial(srv.url, cfgs[i], &clients[k].sock));
        }
    }
    cfgs[NIDS] = tt_client_config("twocn-client.pem", "twocn-client-key.pem", "ca.pem", NULL);
    clients[k] = (struct client){.cn = "-", .suffix = "-", .index = 0};
    assert_nng_ok(tt_client_dial(srv.url, cfgs[NIDS], &clients[k++].sock));
    clients[k] = (struct client){.cn = "-", .suffix = "-", .index = 1};
    assert_nng_ok(tt_client_dial(tcp_url, NULL, &clients[k++].sock));

    struct churn ch = {.url = srv.url, .cfg = cfgs[2]};
    assert_int_equal(pthread_create(&ch.thread, NULL, churn_main, &ch), 0);
    for (int i = 0; i < NCLIENTS; i++) {
        bool anonymous = strcmp(clients[i].cn, "-") == 0;
        for (int j = 0; j < CTXS_PER_SOCK; j++) {
            struct worker *w = &workers[nworkers++];
            *w = (struct worker){
                .cl = &clients[i], .id = j, .reqs = anonymous ? REQS_PER_CTX / 9 : REQS_PER_CTX};
            expected += w->reqs;
            assert_int_equal(pthread_create(&w->thread, NULL, worker_main, w), 0);
        }
    }
    int64_t t0 = plog_test_now_ms();
    for (int i = 0; i < nworkers; i++)
        pthread_join(workers[i].thread, NULL);
    int64_t dt = plog_test_now_ms() - t0;
    pthread_join(ch.thread, NULL);
    expected += CHURN_CONNS;

    if (atomic_load(&mismatches) != 0)
        fail_msg("%d misattributed replies; first: %s", atomic_load(&mismatches), first_mismatch);
    assert_int_equal(atomic_load(&failures), 0);
    assert_int_equal(atomic_load(&requests_ok), expected);
    assert_true(expected >= 30000);
    print_message("    %d requests from 5 identities in %lld ms, 0 misattributed\n", expected, (long long)dt);

    for (int i = 0; i < NCLIENTS; i++)
        nng_close(clients[i].sock);
    for (int i = 0; i <= NIDS; i++)
        nng_tls_config_free(cfgs[i]);
    assert_true(plog_test_wait_until(no_peers_left, NULL, 10000));
    tt_server_stop(&srv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_peer_identity_of_plain_tcp_pipe_is_absent),
        cmocka_unit_test(test_peer_certificate_with_two_cns_has_no_identity),
        cmocka_unit_test(test_peer_identity_copies_cn_and_checks_buffer_size),
        cmocka_unit_test(test_peer_identity_is_known_when_add_pre_returns),
        cmocka_unit_test(test_peer_identity_never_crosses_clients_under_concurrency),
    };
    tt_certs();
    return cmocka_run_group_tests_name("tls peer identity", tests, NULL, NULL);
}
