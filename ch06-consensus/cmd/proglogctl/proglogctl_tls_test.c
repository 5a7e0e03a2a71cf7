/* proglogctl_tls_test.c - proglogctl as a shell user runs it against a secured
 * proglog process: with root's certificate it produces and consumes; with nobody's
 * it is told PERMISSION_DENIED in the book's words and exits 6; a refused
 * certificate and missing TLS flags say what is wrong. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>

#include "internal/rpc/envelope.h"
#include "internal/rpc/status.h"
#include "internal/server/testserver.h"
#include "internal/tls/config.h"

struct fixture {
    struct tserver srv;
    char ctl[512];
    char tmp[64];
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    f->srv.tls = true;
    tserver_start(&f->srv);
    snprintf(f->ctl, sizeof f->ctl, "%s", plog_test_bin("proglogctl"));
    plog_test_tmpdir("ctltls", f->tmp, sizeof f->tmp);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    bool clean = tserver_stop(&f->srv, SIGTERM);
    tserver_fini(&f->srv);
    plog_test_rmrf(f->tmp);
    free(f);
    assert_true(clean);
    return 0;
}

/* ctl runs "proglogctl --addr <server> --tls-ca-file ca.pem [who's cert] ARGS";
 * who NULL: no client certificate. *out gets stdout, *err (when not NULL)
 * stderr. Returns the exit status. */
static int ctl(struct fixture *f, const char *who, char **out, char **err, const char *args)
{
    char cmd[4096], certs[1400] = "";
    if (who != NULL) {
        char c[64], k[64];
        snprintf(c, sizeof c, "%s-client.pem", who);
        snprintf(k, sizeof k, "%s-client-key.pem", who);
        snprintf(certs, sizeof certs, "--tls-cert-file %s --tls-key-file %s", tserver_cert(c),
                 tserver_cert(k));
    }
    snprintf(cmd, sizeof cmd, "%s --addr %s --tls-ca-file %s %s %s 2>%s/stderr", f->ctl, f->srv.addr,
             tserver_cert("ca.pem"), certs, args, f->tmp);
    int rc = plog_test_sh(cmd, 15000, out);
    if (err != NULL) {
        snprintf(cmd, sizeof cmd, "cat %s/stderr", f->tmp);
        plog_test_sh(cmd, 5000, err);
    }
    return rc;
}

static void test_proglogctl_tls_root_produces_and_consumes(void **state)
{
    struct fixture *f = *state;
    char *out, *err;
    assert_int_equal(ctl(f, "root", &out, NULL, "produce hello world"), 0);
    assert_string_equal(out, "0\n1\n");
    free(out);
    assert_int_equal(ctl(f, "root", &out, NULL, "consume 1"), 0);
    assert_string_equal(out, "world\n");
    free(out);
    assert_int_equal(ctl(f, "root", &out, &err, "consume --from 0 --offsets"), 0);
    assert_string_equal(out, "0\thello\n1\tworld\n");
    free(out);
    free(err);
}

static void test_proglogctl_tls_nobody_is_denied(void **state)
{
    struct fixture *f = *state;
    char *out, *err;
    assert_int_equal(ctl(f, "nobody", &out, &err, "produce hello"), 6);
    assert_string_equal(out, "");
    assert_non_null(strstr(err, "proglogctl: PERMISSION_DENIED: nobody not permitted to produce to *"));
    free(out);
    free(err);
    assert_int_equal(ctl(f, "nobody", &out, &err, "consume 0"), 6);
    assert_non_null(strstr(err, "proglogctl: PERMISSION_DENIED: nobody not permitted to consume to *"));
    free(out);
    free(err);
    assert_int_equal(ctl(f, "nobody", &out, &err, "consume --from 0"), 6);
    assert_non_null(strstr(err, "PERMISSION_DENIED: nobody not permitted to consume to *"));
    free(out);
    free(err);
}

/* A server's message may quote what a client's certificate says (its CN): control
 * characters in it are printed as \xNN, never raw (before, an escape sequence in a
 * CN recoloured the terminal of the client it was denied to). */
static void test_proglogctl_tls_control_characters_from_the_server_are_escaped(void **state)
{
    struct fixture *f = *state;
    char cmd[2048], dir[600], *out, *err;
    snprintf(dir, sizeof dir, "%s", tserver_cert("ca.pem"));
    *strrchr(dir, '/') = '\0';
    snprintf(
        cmd, sizeof cmd,
        "cd '%s' && { [ -f esc-client.pem ] || { openssl req -new -newkey ec -pkeyopt "
        "ec_paramgen_curve:P-256 -nodes -keyout esc-client-key.pem -out esc.csr -subj "
        "\"/CN=$(printf 'evil\\033[31m')\" && openssl x509 -req -in esc.csr -CA ca.pem -CAkey ca-key.pem "
        "-set_serial 0x$(openssl rand -hex 8) -days 30 -out esc-client.pem && rm esc.csr; }; } 2>&1",
        dir);
    assert_int_equal(plog_test_sh(cmd, 20000, NULL), 0);
    assert_int_equal(ctl(f, "esc", &out, &err, "produce hello"), 6);
    if (strstr(err, "PERMISSION_DENIED: evil\\x1b[31m not permitted") == NULL || strchr(err, '\033') != NULL)
        fail_msg("stderr: %s", err);
    free(out);
    free(err);
}

static void test_proglogctl_tls_refused_certificate_says_why(void **state)
{
    struct fixture *f = *state;
    char *out, *err;
    assert_int_equal(ctl(f, "expired", &out, &err, "consume 0"), 6);
    assert_non_null(strstr(err, "proglogctl: UNAUTHENTICATED: cannot connect to"));
    assert_non_null(strstr(err, "certificate expired"));
    free(out);
    free(err);
    assert_int_equal(ctl(f, NULL, &out, &err, "consume 0"), 6);
    assert_non_null(strstr(err, "certificate required"));
    free(out);
    free(err);
}

static void test_proglogctl_tls_flags_are_checked(void **state)
{
    struct fixture *f = *state;
    char cmd[2048], *out;
    /* tls+tcp:// without a CA file: a usage error, before any connection. */
    snprintf(cmd, sizeof cmd, "%s --addr %s consume 0", f->ctl, f->srv.addr);
    assert_int_equal(plog_test_sh(cmd, 10000, &out), 2);
    assert_non_null(strstr(out, "needs --tls-ca-file"));
    free(out);
    /* An unreadable certificate is named. */
    snprintf(cmd, sizeof cmd,
             "%s --addr %s --tls-ca-file %s --tls-cert-file /nonexistent.pem "
             "--tls-key-file /nonexistent-key.pem consume 0",
             f->ctl, f->srv.addr, tserver_cert("ca.pem"));
    assert_int_equal(plog_test_sh(cmd, 10000, &out), 2);
    assert_non_null(strstr(out, "/nonexistent.pem"));
    free(out);
}

/* PROGLOG_ADDR and PROGLOG_TLS_*_FILE stand in for the flags; a flag wins. */
static void test_proglogctl_tls_files_come_from_the_environment_and_flags_win(void **state)
{
    struct fixture *f = *state;
    char env[2400], cmd[4096], *out;
    snprintf(env, sizeof env,
             "PROGLOG_ADDR=%s PROGLOG_TLS_CA_FILE=%s PROGLOG_TLS_CERT_FILE=%s PROGLOG_TLS_KEY_FILE=%s",
             f->srv.addr, tserver_cert("ca.pem"), tserver_cert("root-client.pem"),
             tserver_cert("root-client-key.pem"));
    snprintf(cmd, sizeof cmd, "%s %s produce from-env", env, f->ctl);
    assert_int_equal(plog_test_sh(cmd, 15000, &out), 0);
    assert_string_equal(out, "0\n");
    free(out);
    /* nobody's certificate on the command line replaces root's from the environment. */
    snprintf(cmd, sizeof cmd, "%s %s --tls-cert-file %s --tls-key-file %s consume 0", env, f->ctl,
             tserver_cert("nobody-client.pem"), tserver_cert("nobody-client-key.pem"));
    assert_int_equal(plog_test_sh(cmd, 15000, &out), 6);
    assert_non_null(strstr(out, "PERMISSION_DENIED: nobody not permitted to consume"));
    free(out);
    /* A plaintext --addr ignores the TLS variables instead of refusing them. */
    snprintf(cmd, sizeof cmd, "%s %s --addr tcp://127.0.0.1:%d --timeout 2000 consume 0", env, f->ctl,
             plog_test_free_port());
    assert_int_equal(plog_test_sh(cmd, 15000, &out), 4);
    free(out);
}

/* A fake cluster node over mutual TLS that never answers GetServers (a node too
 * busy to, within the caller's deadline) and answers every Produce "not leader".
 * The library calls return 0 on success (PLOG_OK: internal/err is not a layer
 * cmd/proglogctl may include). */
struct mute_node {
    nng_socket sock;
    char url[64];
    atomic_int produces;
    pthread_t th;
};

static void *mute_main(void *arg)
{
    struct mute_node *m = arg;
    nng_msg *msg;
    while (nng_recvmsg(m->sock, &msg, 0) == 0) {
        plog_rpc_request rq;
        if (plog_rpc_request_decode(nng_msg_body(msg), nng_msg_len(msg), &rq) == 0 &&
            plog_rpc_method_lookup(rq.method, rq.method_len) == PLOG_METHOD_GET_SERVERS) {
            nng_msg_free(msg); /* no answer */
            continue;
        }
        atomic_fetch_add(&m->produces, 1);
        if (plog_rpc_reply_error(msg, PLOG_STATUS_FAILED_PRECONDITION, "not leader; leader at 127.0.0.1:1") !=
                0 ||
            nng_sendmsg(m->sock, msg, 0) != 0)
            nng_msg_free(msg);
    }
    return NULL;
}

/* A produce whose router finds no leader within --timeout (GetServers unanswered)
 * goes to the server --addr names, and when that one answers "not leader" it fails
 * UNAVAILABLE (exit 4: retry), not FAILED_PRECONDITION (exit 6: "cannot succeed
 * as it is"), as a black-box run saw during failovers with a short --timeout. A
 * lone server (GetServers unimplemented) and a caller who may not see the cluster
 * produce directly too (the tests above). */
static void test_proglogctl_tls_produce_that_meets_not_leader_is_unavailable(void **state)
{
    struct fixture *f = *state;
    struct mute_node m = {0};
    char err[256];
    nng_tls_config *tls;
    nng_listener l;
    snprintf(m.url, sizeof m.url, "tls+tcp://127.0.0.1:%d", plog_test_free_port());
    assert_int_equal(plog_tls_config_server(tserver_cert("server.pem"), tserver_cert("server-key.pem"),
                                            tserver_cert("ca.pem"), &tls, err, sizeof err),
                     0);
    assert_int_equal(nng_rep0_open(&m.sock), 0);
    assert_int_equal(nng_listener_create(&l, m.sock, m.url), 0);
    assert_int_equal(nng_listener_set_ptr(l, NNG_OPT_TLS_CONFIG, tls), 0);
    assert_int_equal(nng_listener_start(l, 0), 0);
    nng_tls_config_free(tls);
    pthread_create(&m.th, NULL, mute_main, &m);
    char cmd[4096], *out;
    snprintf(
        cmd, sizeof cmd,
        "%s --addr %s --timeout 500 --tls-ca-file %s --tls-cert-file %s --tls-key-file %s produce x 2>&1",
        f->ctl, m.url, tserver_cert("ca.pem"), tserver_cert("root-client.pem"),
        tserver_cert("root-client-key.pem"));
    int rc = plog_test_sh(cmd, 15000, &out);
    nng_close(m.sock);
    pthread_join(m.th, NULL);
    if (rc != 4 ||
        strstr(out, "proglogctl: UNAVAILABLE: not leader; leader at 127.0.0.1:1 (no leader could be asked "
                    "in time)") == NULL)
        fail_msg("exit %d, %d produce(s) sent: %s", rc, atomic_load(&m.produces), out);
    free(out);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_proglogctl_tls_root_produces_and_consumes),
        T(test_proglogctl_tls_produce_that_meets_not_leader_is_unavailable),
        T(test_proglogctl_tls_nobody_is_denied),
        T(test_proglogctl_tls_control_characters_from_the_server_are_escaped),
        T(test_proglogctl_tls_refused_certificate_says_why),
        T(test_proglogctl_tls_flags_are_checked),
        T(test_proglogctl_tls_files_come_from_the_environment_and_flags_win),
    };
#undef T
    tserver_certs();
    return cmocka_run_group_tests_name("proglogctl tls", tests, NULL, NULL);
}
