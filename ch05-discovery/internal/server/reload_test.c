/* reload_test.c - SIGHUP against a real proglog process: it reloads the log level
 * from --log-level-file, says so in its log, keeps the old level when the file is
 * bad, and drops neither a connected client nor a consumer parked in a long poll.
 * ch04: over mutual TLS it also reloads the ACL policy (for new requests, also on
 * open connections) and the server certificate (for new connections, while open
 * ones go on), and a bad policy or certificate keeps the old one, saying why. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal/client/client.h"
#include "internal/client/stream.h"
#include "internal/server/testserver.h"

struct fixture {
    struct tserver srv;
    char level_file[128];
    char policy[128], cert[128], key[128]; /* TLS: the server's files, ours to change */
    plog_client *c;
};

static void write_file(const char *path, const char *text)
{
    /* Written beside and renamed, as an operator's editor or config tool would: the
     * server never reads half a file. */
    char tmp[160];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
    assert_int_equal(rename(tmp, path), 0);
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    plog_test_tmpdir("reload", f->srv.dir, sizeof f->srv.dir);
    f->srv.port = plog_test_free_port();
    snprintf(f->srv.addr, sizeof f->srv.addr, "tcp://127.0.0.1:%d", f->srv.port);
    snprintf(f->level_file, sizeof f->level_file, "%s/level", f->srv.dir);
    write_file(f->level_file, "info\n");
    f->srv.extra[0] = "--log-level-file";
    f->srv.extra[1] = f->level_file;
    f->srv.extra[2] = "--sync";
    f->srv.extra[3] = "never";
    tserver_start(&f->srv);
    plog_rpc_status st;
    if (plog_client_open(f->srv.addr, NULL, &f->c, &st) != PLOG_STATUS_OK)
        fail_msg("open client: %s", st.msg);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    plog_client_close(f->c);
    bool clean = tserver_stop(&f->srv, SIGTERM);
    tserver_fini(&f->srv);
    free(f);
    assert_true(clean);
    return 0;
}

/* hup sends SIGHUP and waits for the log line that answers it. */
static void hup(struct fixture *f, const char *expect)
{
    assert_int_equal(kill(f->srv.proc.pid, SIGHUP), 0);
    if (!plog_test_wait_output(&f->srv.proc, expect, 10000)) {
        char *out = plog_test_output(&f->srv.proc);
        fail_msg("no \"%s\" after SIGHUP in: %s", expect, out);
    }
}

/* A consumer parked in a long poll and an open connection both live through
 * SIGHUP: the parked poll is answered by the next produce, on the same connection. */
static void test_reload_keeps_connections_and_parked_consumers(void **state)
{
    struct fixture *f = *state;
    uint64_t off;
    assert_status_ok(plog_client_produce(f->c, "before", 6, &off, NULL));
    assert_int_equal(off, 0);
    struct tserver_follower fl = {.c = f->c, .from = 1, .wait_ms = 20000};
    tserver_follow_start(&fl);
    plog_test_sleep_ms(300); /* let it park */
    hup(f, "msg=reloaded log_level=info was=info");
    assert_status_ok(plog_client_produce(f->c, "after", 5, &off, NULL));
    assert_int_equal(off, 1);
    tserver_follow_join(&fl);
    assert_int_equal(fl.code, PLOG_STATUS_OK);
    assert_int_equal(fl.off, 1);
    assert_string_equal(fl.value, "after");
    Log__V1__Record *rec;
    assert_status_ok(plog_client_consume(f->c, 0, &rec, NULL));
    assert_int_equal(rec->value.len, 6);
    assert_memory_equal(rec->value.data, "before", 6);
    log__v1__record__free_unpacked(rec, NULL);
}

/* The new level filters at once: at warn, the info line of the shutdown is not
 * written; the reload that set it is (it is logged under the old level). */
static void test_reload_log_level_takes_effect(void **state)
{
    struct fixture *f = *state;
    write_file(f->level_file, "warn\n");
    hup(f, "msg=reloaded log_level=warn was=info");
    write_file(f->level_file, "  debug \n");
    hup(f, "msg=reloaded log_level=debug was=warn");
    write_file(f->level_file, "warn");
    hup(f, "msg=reloaded log_level=warn was=debug");
    bool clean = tserver_stop(&f->srv, SIGTERM);
    char *out = plog_test_output(&f->srv.proc);
    assert_true(clean);
    if (strstr(out, "shutting down") != NULL)
        fail_msg("an info line was written at warn: %s", out);
    free(out);
}

/* A bad level file keeps the level in force and says which file and why; fixing the
 * file and sending SIGHUP again applies it. */
static void test_reload_bad_level_file_keeps_the_old_level(void **state)
{
    struct fixture *f = *state;
    write_file(f->level_file, "loud\n");
    hup(f, "reload failed");
    char *out = plog_test_output(&f->srv.proc);
    assert_non_null(strstr(out, "level=error msg=\"reload failed, keeping the old log level\""));
    assert_non_null(strstr(out, f->level_file));
    assert_non_null(strstr(out, "got \\\"loud\\\""));
    assert_non_null(strstr(out, "log_level=info"));
    free(out);
    assert_int_equal(unlink(f->level_file), 0);
    hup(f, "No such file or directory");
    write_file(f->level_file, "error\n");
    hup(f, "msg=reloaded log_level=error was=info");
    /* Still serving. */
    uint64_t off;
    assert_status_ok(plog_client_produce(f->c, "x", 1, &off, NULL));
}

/* A level file that is bad at start is a usage error, before anything is opened. */
static void test_reload_bad_level_file_at_start_is_refused(void **state)
{
    struct fixture *f = *state;
    char bad[160], *out = NULL;
    snprintf(bad, sizeof bad, "%s/nolevel", f->srv.dir);
    char bin[512];
    snprintf(bin, sizeof bin, "%s", plog_test_bin("proglog"));
    char *argv[] = {bin, "--addr", "tcp://127.0.0.1:1", "--insecure-allow-plaintext", "--log-level-file",
                    bad, NULL};
    int rc = plog_test_run(argv, NULL, 10000, &out);
    assert_int_equal(rc, 2);
    assert_non_null(strstr(out, bad));
    free(out);
}

/* ---- over mutual TLS ----------------------------------------------------------- */

/* copy_file copies from to path by write_file (whole, renamed into place). */
static void copy_file(const char *from, const char *path)
{
    FILE *f = fopen(from, "r");
    assert_non_null(f);
    static char buf[16384];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    write_file(path, buf);
}

/* setup_tls serves tls+tcp:// with copies of the book's policy and of the server's
 * certificate and key in the test's directory, so that a test can change them. */
static int setup_tls(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    plog_test_tmpdir("reload", f->srv.dir, sizeof f->srv.dir);
    f->srv.port = plog_test_free_port();
    snprintf(f->srv.addr, sizeof f->srv.addr, "tls+tcp://127.0.0.1:%d", f->srv.port);
    snprintf(f->level_file, sizeof f->level_file, "%s/level", f->srv.dir);
    snprintf(f->policy, sizeof f->policy, "%s/policy.csv", f->srv.dir);
    snprintf(f->cert, sizeof f->cert, "%s/cert.pem", f->srv.dir);
    snprintf(f->key, sizeof f->key, "%s/key.pem", f->srv.dir);
    write_file(f->level_file, "info\n");
    copy_file(tserver_cert("policy.csv"), f->policy);
    copy_file(tserver_cert("server.pem"), f->cert);
    copy_file(tserver_cert("server-key.pem"), f->key);
    f->srv.tls = true;
    f->srv.policy = f->policy;
    /* Given after testserver's own certificate flags: the last one wins. */
    const char *extra[] = {"--server-tls-cert-file", f->cert,      "--server-tls-key-file", f->key,
                           "--log-level-file",       f->level_file};
    memcpy(f->srv.extra, extra, sizeof extra);
    tserver_start(&f->srv);
    f->c = tserver_client_as(&f->srv, "root");
    *state = f;
    return 0;
}

/* served_fingerprint returns the SHA-256 fingerprint of the certificate the server
 * presents to a new connection, as openssl s_client (a peer nobody here wrote) sees
 * it while verifying it against the CA. malloc'd. s_client hangs up after the
 * handshake without speaking SP; the server must go on accepting (it once did not:
 * see conn_error in engine.c), which the tests check after it. */
static char *served_fingerprint(struct fixture *f)
{
    char cmd[2048], *out = NULL;
    snprintf(cmd, sizeof cmd,
             "openssl s_client -connect 127.0.0.1:%d -verify_return_error -CAfile '%s' -cert '%s' -key '%s' "
             "</dev/null 2>/dev/null | openssl x509 -noout -fingerprint -sha256",
             f->srv.port, tserver_cert("ca.pem"), tserver_cert("root-client.pem"),
             tserver_cert("root-client-key.pem"));
    int rc = plog_test_sh(cmd, 15000, &out);
    if (rc != 0 || strstr(out, "Fingerprint=") == NULL)
        fail_msg("%s: exit %d: %s", cmd, rc, out != NULL ? out : "");
    return out;
}

static char *file_fingerprint(const char *path)
{
    char cmd[1024], *out = NULL;
    snprintf(cmd, sizeof cmd, "openssl x509 -noout -fingerprint -sha256 -in '%s'", path);
    if (plog_test_sh(cmd, 10000, &out) != 0)
        fail_msg("%s: %s", cmd, out != NULL ? out : "");
    return out;
}

/* second_server_cert makes (once) another server certificate for 127.0.0.1 from the
 * same CA, and returns the path of its certificate (key: "-key" before ".pem"). */
static const char *second_server_cert(void)
{
    char cmd[1200], *out = NULL;
    const char *chapter = getenv("PLOG_CHAPTER");
    snprintf(cmd, sizeof cmd, "%s/../common/certs/gencert '%s' --node reload-server",
             chapter != NULL ? chapter : ".", tserver_certs());
    if (plog_test_sh(cmd, 30000, &out) != 0)
        fail_msg("%s: %s", cmd, out != NULL ? out : "");
    free(out);
    return tserver_cert("reload-server.pem");
}

/* A policy change decides every request after SIGHUP, also on connections opened
 * before it, and a consumer parked across the reload gets its record. */
static void test_reload_policy_change_applies_to_new_requests(void **state)
{
    struct fixture *f = *state;
    plog_client *nobody = tserver_client_as(&f->srv, "nobody");
    uint64_t off;
    plog_rpc_status st;
    assert_int_equal(plog_client_produce(nobody, "no", 2, &off, &st), PLOG_STATUS_PERMISSION_DENIED);
    assert_status_ok(plog_client_produce(f->c, "root", 4, &off, NULL));
    struct tserver_follower fl = {.c = f->c, .from = 1, .wait_ms = 20000};
    tserver_follow_start(&fl);
    plog_test_sleep_ms(300); /* let it park */

    write_file(f->policy, "p, nobody, *, produce\np, root, *, consume\n");
    hup(f, "msg=reloaded log_level=info was=info acl=reloaded acl_rules=2 tls=reloaded");
    assert_status_ok(plog_client_produce(nobody, "yes", 3, &off, NULL));
    assert_int_equal(off, 1);
    tserver_follow_join(&fl);
    assert_int_equal(fl.code, PLOG_STATUS_OK);
    assert_int_equal(fl.off, 1);
    assert_string_equal(fl.value, "yes");
    assert_int_equal(plog_client_produce(f->c, "root", 4, &off, &st), PLOG_STATUS_PERMISSION_DENIED);
    assert_non_null(strstr(st.msg, "root not permitted to produce"));
    plog_client_close(nobody);
}

/* A consumer parked before its consume right was taken away gets none of the
 * records written after the reload: its poll is checked again when it wakes
 * (before, it was answered with the new record, up to --max-wait-ms later). */
static void test_reload_revoked_consumer_parked_gets_no_later_record(void **state)
{
    struct fixture *f = *state;
    uint64_t off;
    plog_rpc_status st;
    assert_status_ok(plog_client_produce(f->c, "old", 3, &off, NULL));
    struct tserver_follower fl = {.c = f->c, .from = 1, .wait_ms = 20000};
    tserver_follow_start(&fl);
    plog_test_sleep_ms(300); /* let it park */

    write_file(f->policy, "p, root, *, produce\n");
    hup(f, "msg=reloaded log_level=info was=info acl=reloaded acl_rules=1 tls=reloaded");
    assert_status_ok(plog_client_produce(f->c, "secret", 6, &off, NULL));
    assert_int_equal(off, 1);
    tserver_follow_join(&fl);
    if (fl.code != PLOG_STATUS_PERMISSION_DENIED)
        fail_msg("the revoked consumer's parked poll ended %s with value \"%s\"",
                 plog_rpc_status_name(fl.code), fl.value);
    Log__V1__Record *rec;
    assert_int_equal(plog_client_consume(f->c, 1, &rec, &st), PLOG_STATUS_PERMISSION_DENIED);
    assert_non_null(strstr(st.msg, "root not permitted to consume"));
}

/* A policy that does not load keeps the old one, and the log says which file, line
 * and why. */
static void test_reload_bad_policy_keeps_the_old_policy(void **state)
{
    struct fixture *f = *state;
    write_file(f->policy, "p, nobody, *, produce\np, nobody\n");
    hup(f, "acl=kept acl_rules=2");
    char *out = plog_test_output(&f->srv.proc);
    assert_non_null(strstr(out, "level=error msg=\"reload failed, keeping the old ACL\""));
    assert_non_null(strstr(out, "policy.csv:2: want 4 fields"));
    free(out);
    uint64_t off;
    plog_rpc_status st;
    assert_status_ok(plog_client_produce(f->c, "root", 4, &off, NULL));
    plog_client *nobody = tserver_client_as(&f->srv, "nobody");
    assert_int_equal(plog_client_produce(nobody, "no", 2, &off, &st), PLOG_STATUS_PERMISSION_DENIED);
    plog_client_close(nobody);
}

/* A policy whose rules load but can never match (a capital in an action, an
 * object other than "*") is in force after SIGHUP, and a warning counts those
 * rules and names the first; the book's policy at start drew none. */
static void test_reload_warns_about_rules_that_never_match(void **state)
{
    struct fixture *f = *state;
    char *out = plog_test_output(&f->srv.proc);
    assert_null(strstr(out, "never match"));
    free(out);
    write_file(f->policy, "p, root, *, produce\np, root, *, Consume\np, root, topic, consume\n");
    hup(f, "acl=reloaded acl_rules=3");
    out = plog_test_output(&f->srv.proc);
    const char *want = "level=warn msg=\"policy rules that never match\" file=";
    if (strstr(out, want) == NULL || strstr(out, "rules=2 first=\"line 2: action \\\"Consume\\\"\"") == NULL)
        fail_msg("no warning naming line 2's action: %s", out);
    free(out);
    uint64_t off;
    plog_rpc_status st;
    assert_status_ok(plog_client_produce(f->c, "root", 4, &off, NULL));
    Log__V1__Record *rec = NULL;
    assert_int_equal(plog_client_consume(f->c, off, &rec, &st), PLOG_STATUS_PERMISSION_DENIED);
    assert_null(rec);
}

/* A policy emptied of rules loads (no rule allows anything: fail closed) and
 * every client is denied; a warning says so, as a reload that locks everyone out
 * should not look like any other. Rules put back are in force at the next SIGHUP. */
static void test_reload_warns_about_a_policy_without_rules(void **state)
{
    struct fixture *f = *state;
    write_file(f->policy, "# emptied\n");
    hup(f, "acl=reloaded acl_rules=0");
    char *out = plog_test_output(&f->srv.proc);
    if (strstr(out, "level=warn msg=\"the policy has no rules: every request is denied\" file=") == NULL)
        fail_msg("no warning about the empty policy: %s", out);
    free(out);
    uint64_t off;
    plog_rpc_status st;
    assert_int_equal(plog_client_produce(f->c, "root", 4, &off, &st), PLOG_STATUS_PERMISSION_DENIED);
    write_file(f->policy, "p, root, *, produce\n");
    hup(f, "acl=reloaded acl_rules=1");
    assert_status_ok(plog_client_produce(f->c, "root", 4, &off, NULL));
}

/* A new certificate is served to connections made after SIGHUP; the connection
 * made before goes on with the old one; new clients verify the new one. */
static void test_reload_new_certificate_is_served_to_new_connections(void **state)
{
    struct fixture *f = *state;
    const char *cert2 = second_server_cert();
    char *before = served_fingerprint(f), *old = file_fingerprint(f->cert), *want = file_fingerprint(cert2);
    assert_string_equal(before, old);
    assert_string_not_equal(before, want);

    copy_file(cert2, f->cert);
    copy_file(tserver_cert("reload-server-key.pem"), f->key);
    hup(f, "tls=reloaded");
    char *after = served_fingerprint(f);
    assert_string_equal(after, want);

    uint64_t off;
    assert_status_ok(plog_client_produce(f->c, "old connection", 14, &off, NULL));
    plog_client *fresh = tserver_client_as(&f->srv, "root");
    Log__V1__Record *rec;
    assert_status_ok(plog_client_consume(fresh, off, &rec, NULL));
    assert_int_equal(rec->value.len, 14);
    log__v1__record__free_unpacked(rec, NULL);
    plog_client_close(fresh);
    free(before);
    free(old);
    free(want);
    free(after);
}

/* A key that does not match the certificate keeps the old pair in use, and the log
 * says which file and why. */
static void test_reload_bad_certificate_keeps_the_old_one(void **state)
{
    struct fixture *f = *state;
    second_server_cert();
    char *before = served_fingerprint(f);
    copy_file(tserver_cert("reload-server-key.pem"), f->key); /* not server.pem's key */
    hup(f, "tls=kept");
    char *out = plog_test_output(&f->srv.proc);
    assert_non_null(strstr(out, "level=error msg=\"reload failed, keeping the old certificates\""));
    assert_non_null(strstr(out, f->cert));
    assert_non_null(strstr(out, "private key does not match the certificate"));
    free(out);
    char *after = served_fingerprint(f);
    assert_string_equal(after, before);
    plog_client *fresh = tserver_client_as(&f->srv, "root");
    uint64_t off;
    assert_status_ok(plog_client_produce(fresh, "x", 1, &off, NULL));
    plog_client_close(fresh);
    free(before);
    free(after);
}

/* occurrences counts needle in the server's output so far. */
static int occurrences(struct fixture *f, const char *needle)
{
    char *out = plog_test_output(&f->srv.proc);
    int n = 0;
    for (const char *p = out; (p = strstr(p, needle)) != NULL; p++)
        n++;
    free(out);
    return n;
}

/* A key file that is not PEM, or whose PEM body is damaged, keeps the old pair too,
 * and the error line's file= (and its err=) names the key, which is at fault, not
 * the certificate (before, both named the certificate; a black-box run found the
 * damaged body still blamed on it). */
static void test_reload_bad_key_is_the_file_named(void **state)
{
    struct fixture *f = *state;
    const char *keys[] = {"not a key\n",
                          "-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5IGF0IGFsbA==\n-----END PRIVATE "
                          "KEY-----\n"};
    char want[256], wrong[256];
    snprintf(want, sizeof want, "keeping the old certificates\" file=%s err=", f->key);
    snprintf(wrong, sizeof wrong, "keeping the old certificates\" file=%s ", f->cert);
    for (int i = 0; i < 2; i++) {
        write_file(f->key, keys[i]);
        assert_int_equal(kill(f->srv.proc.pid, SIGHUP), 0);
        int64_t until = plog_test_now_ms() + 10000;
        while (occurrences(f, want) < i + 1 && plog_test_now_ms() < until)
            plog_test_sleep_ms(20);
        char *out = plog_test_output(&f->srv.proc);
        if (occurrences(f, want) != i + 1 || strstr(out, wrong) != NULL)
            fail_msg("key %d: want a line with [%s]: %s", i, want, out);
        free(out);
    }
}

/* count counts needle in the server's output so far. */
/* count_between counts needle in the server's output after the first from (from
 * the start when NULL) and before the first to after it (to the end when NULL). */
static int count_between(struct fixture *f, const char *needle, const char *from, const char *to)
{
    char *out = plog_test_output(&f->srv.proc);
    const char *p = from != NULL ? strstr(out, from) : out, *end = NULL;
    if (p != NULL && to != NULL)
        end = strstr(p, to);
    int n = 0;
    while (p != NULL && (p = strstr(p, needle)) != NULL && (end == NULL || p < end)) {
        n++;
        p++;
    }
    free(out);
    return n;
}

/* The request log follows the reloaded level: no request line at warn, lines again
 * at info. A request line is written when its reply's send completes, which may
 * be after the client has the reply: so "b", answered at warn, may be logged after
 * the level is back to info (and then is, legitimately). What must hold is that no
 * request line is written while the level is warn, and that "c" is logged. */
static void test_reload_log_level_filters_request_lines(void **state)
{
    struct fixture *f = *state;
    uint64_t off;
    assert_status_ok(plog_client_produce(f->c, "a", 1, &off, NULL));
    assert_true(plog_test_wait_output(&f->srv.proc, "msg=request method=Produce", 10000));
    write_file(f->level_file, "warn\n");
    hup(f, "msg=reloaded log_level=warn was=info");
    assert_status_ok(plog_client_produce(f->c, "b", 1, &off, NULL));
    plog_test_sleep_ms(100); /* time for b's line, were warn not filtering it */
    write_file(f->level_file, "info\n");
    hup(f, "msg=reloaded log_level=info was=warn");
    const char *at_warn = "msg=reloaded log_level=warn was=info",
               *at_info = "msg=reloaded log_level=info was=warn";
    assert_int_equal(count_between(f, "msg=request", at_warn, at_info), 0);
    int after = count_between(f, "msg=request", at_info, NULL); /* b's, if it came late */
    assert_status_ok(plog_client_produce(f->c, "c", 1, &off, NULL));
    for (int i = 0; i < 100 && count_between(f, "msg=request", at_info, NULL) == after; i++)
        plog_test_sleep_ms(50);
    assert_int_equal(count_between(f, "msg=request", at_info, NULL), after + 1);
    assert_int_equal(count_between(f, "msg=request", at_warn, at_info), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_reload_keeps_connections_and_parked_consumers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reload_log_level_takes_effect, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reload_bad_level_file_keeps_the_old_level, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reload_bad_level_file_at_start_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reload_policy_change_applies_to_new_requests, setup_tls,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_reload_revoked_consumer_parked_gets_no_later_record, setup_tls,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_reload_bad_policy_keeps_the_old_policy, setup_tls, teardown),
        cmocka_unit_test_setup_teardown(test_reload_warns_about_rules_that_never_match, setup_tls, teardown),
        cmocka_unit_test_setup_teardown(test_reload_warns_about_a_policy_without_rules, setup_tls, teardown),
        cmocka_unit_test_setup_teardown(test_reload_new_certificate_is_served_to_new_connections, setup_tls,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_reload_bad_key_is_the_file_named, setup_tls, teardown),
        cmocka_unit_test_setup_teardown(test_reload_bad_certificate_keeps_the_old_one, setup_tls, teardown),
        cmocka_unit_test_setup_teardown(test_reload_log_level_filters_request_lines, setup_tls, teardown),
    };
    return cmocka_run_group_tests_name("reload", tests, NULL, NULL);
}
