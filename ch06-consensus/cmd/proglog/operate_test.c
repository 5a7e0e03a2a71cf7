/* operate_test.c - what an operator does to a running node (agent mode, real
 * processes): SIGHUP reloads the ACL policy, for new requests on open connections
 * and for the membership transport's gossip checks alike; a bad policy keeps the
 * old one and says why; the log level file sets the level; a new server
 * certificate is served to new connections; --max-connections (here from the YAML
 * config file) refuses the next TLS connection while the open ones go on; the
 * log size gauge grows with the records. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "api/v1/log.pb-c.h"
#include "internal/agent/testcluster.h"
#include "internal/client/client.h"
#include "internal/rpc/status.h"

static int setup(void **state)
{
    *state = calloc(1, sizeof(struct tc));
    return 0;
}

static int teardown(void **state)
{
    tc_fini(*state);
    free(*state);
    return 0;
}

/* put writes text to path whole: beside it, then renamed, as a config tool would. */
static void put(const char *path, const char *text)
{
    char tmp[300];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    assert_non_null(f);
    assert_true(fputs(text, f) >= 0);
    assert_int_equal(fclose(f), 0);
    assert_int_equal(rename(tmp, path), 0);
}

/* in_dir writes the path of name in the cluster's directory into buf. */
static const char *in_dir(struct tc *c, const char *name, char *buf, size_t size)
{
    snprintf(buf, size, "%s/%s", c->dir, name);
    return buf;
}

/* start_one starts a one-node cluster whose node is given flag PATH, a file in the
 * cluster's directory (name; its path goes to path, size bytes) holding text. */
static void start_one(struct tc *c, const char *flag, const char *name, const char *text, char *path,
                      size_t size)
{
    tc_init(c, 1);
    put(in_dir(c, name, path, size), text);
    c->node[0].extra[0] = flag;
    c->node[0].extra[1] = path;
    tc_start(c, 0, -1);
}

/* reload_lines counts the lines a reload writes, and points *last at the last. */
static int reload_lines(const char *out, const char **last)
{
    int n = 0;
    for (const char *p = out; *p != '\0';) {
        size_t len = strcspn(p, "\n");
        const char *m = p + strcspn(p, " \n"); /* after "time=..." */
        if (*m == ' ')
            m += 1 + strcspn(m + 1, " \n"); /* after "level=..." */
        if (strncmp(m, " msg=reloaded", 13) == 0 || strncmp(m, " msg=\"reload failed", 19) == 0) {
            n++;
            *last = p;
        }
        p += len + (p[len] == '\n');
    }
    return n;
}

/* hup sends SIGHUP to node i and waits until the last line of the reload it
 * answers with holds want (the summary line, or at warn an error line). Returns the
 * node's output (the caller frees). */
static char *hup(struct tc *c, int i, const char *want)
{
    plog_test_proc *p = &c->node[i].proc;
    char *out = plog_test_output(p);
    const char *last = NULL;
    int before = reload_lines(out, &last);
    assert_int_equal(kill(p->pid, SIGHUP), 0);
    for (int64_t until = plog_test_now_ms() + 10000;; plog_test_sleep_ms(20)) {
        free(out);
        out = plog_test_output(p);
        if (reload_lines(out, &last) > before) {
            const char *w = strstr(last, want);
            if (w != NULL && w < last + strcspn(last, "\n"))
                return out;
        }
        if (plog_test_now_ms() > until)
            fail_msg("want \"%s\" in the last reload line after SIGHUP: %s", want, out);
    }
}

/* produce appends value through cl, waiting up to 10 s for a node that can take
 * it (a new cluster elects its leader first); returns the last status. */
static int produce(plog_client *cl, const char *value, plog_rpc_status *st)
{
    uint64_t off;
    int64_t until = plog_test_now_ms() + 10000;
    int rv;
    while ((rv = plog_client_produce(cl, value, strlen(value), &off, st)) == PLOG_STATUS_UNAVAILABLE &&
           plog_test_now_ms() < until)
        plog_test_sleep_ms(50);
    return rv;
}

/* metric returns the value of the sample line that starts with name in node i's
 * metrics, -1 when it is absent. */
static long metric(struct tc *c, int i, const char *name)
{
    char cmd[128], *out = NULL;
    snprintf(cmd, sizeof cmd, "curl -s http://127.0.0.1:%d/metrics", c->node[i].mport);
    assert_int_equal(plog_test_sh(cmd, 10000, &out), 0);
    long v = -1;
    size_t n = strlen(name);
    for (const char *p = out; (p = strstr(p, name)) != NULL; p += n)
        if ((p == out || p[-1] == '\n') && p[n] == ' ')
            v = strtol(p + n + 1, NULL, 10);
    free(out);
    return v;
}

struct gauge_arg {
    struct tc *c;
    const char *name;
    long above;
};

static bool gauge_above(void *arg)
{
    struct gauge_arg *g = arg;
    return metric(g->c, 0, g->name) > g->above;
}

/* A new policy decides the next request on a connection opened before SIGHUP,
 * which stays open, and the gossip checks of the membership transport: node2,
 * out of the new policy, has its messages dropped by node1. */
static void test_agent_sighup_policy_applies_to_open_connections_and_gossip(void **state)
{
    struct tc *c = *state;
    tc_init(c, 2);
    tc_start(c, 0, -1);
    tc_start(c, 1, 0);
    char st[16] = "";
    for (int64_t until = plog_test_now_ms() + 10000; strcmp(st, "alive") != 0; plog_test_sleep_ms(50)) {
        assert_true(plog_test_now_ms() < until);
        tc_status_of(c, 0, "node2", st, sizeof st);
    }
    plog_client *cl = tc_client(c, 0);
    plog_rpc_status rs;
    assert_int_equal(produce(cl, "before", &rs), PLOG_STATUS_OK);
    long dropped = metric(c, 0, "proglog_gossip_messages_dropped_total");
    assert_true(dropped >= 0);
    assert_int_equal(metric(c, 0, "proglog_nng_reaper_stuck"), 0); /* exported, and nothing stuck */

    FILE *f = fopen(c->policy, "r");
    assert_non_null(f);
    static char was[4096];
    was[fread(was, 1, sizeof was - 1, f)] = '\0';
    fclose(f);
    put(c->policy, "p, root, *, consume\np, node1, *, gossip\np, node1, *, consume\n");
    free(hup(c, 0, "acl=reloaded acl_rules=3 tls=reloaded"));
    assert_int_equal(plog_client_produce(cl, "after", 5, &(uint64_t){0}, &rs), PLOG_STATUS_PERMISSION_DENIED);
    assert_non_null(strstr(rs.msg, "root not permitted to produce"));
    Log__V1__Record *rec;
    assert_int_equal(plog_client_consume(cl, 0, &rec, &rs), PLOG_STATUS_OK);
    assert_int_equal(rec->value.len, 6);
    assert_memory_equal(rec->value.data, "before", 6);
    log__v1__record__free_unpacked(rec, NULL);
    struct gauge_arg g = {c, "proglog_gossip_messages_dropped_total", dropped};
    assert_true(plog_test_wait_until(gauge_above, &g, 10000));

    put(c->policy, was); /* back, so that the nodes leave each other cleanly */
    free(hup(c, 0, "acl=reloaded acl_rules=19"));
    plog_client_close(cl);
}

/* A policy that does not load leaves the old one in force, and the log says which
 * file, which line and why; one that loads with a rule that never matches is
 * warned about. The lines name the node (make run's three share a terminal). */
static void test_agent_sighup_bad_policy_keeps_the_old_one(void **state)
{
    struct tc *c = *state;
    tc_init(c, 1);
    tc_start(c, 0, -1);
    put(c->policy, "p, root, *, consume\np, root\n");
    char *out = hup(c, 0, "acl=kept acl_rules=19 tls=reloaded node=");
    assert_non_null(strstr(out, "level=error msg=\"reload failed, keeping the old ACL\""));
    assert_non_null(strstr(out, "policy.csv:2: want 4 fields"));
    free(out);
    plog_client *cl = tc_client(c, 0);
    plog_rpc_status rs;
    assert_int_equal(produce(cl, "still allowed", &rs), PLOG_STATUS_OK);
    /* A policy that loads but holds a rule that never matches (a capital in an
     * action) is in force, with a warning naming the rule; the cluster's policy
     * at start drew none. */
    out = plog_test_output(&c->node[0].proc);
    assert_null(strstr(out, "never match"));
    free(out);
    put(c->policy, "p, root, *, produce\np, node2, *, Gossip\n");
    out = hup(c, 0, "acl=reloaded acl_rules=2");
    if (strstr(out, "level=warn msg=\"policy rules that never match\"") == NULL ||
        strstr(out, "rules=1 first=\"line 2: action \\\"Gossip\\\"\"") == NULL)
        fail_msg("no warning naming line 2: %s", out);
    free(out);
    assert_int_equal(produce(cl, "root still produces", &rs), PLOG_STATUS_OK);
    plog_client_close(cl);
}

/* --log-level-file sets the level at SIGHUP: at warn the info lines of the
 * shutdown are not written; a bad file keeps the level and says why. */
static void test_agent_sighup_reloads_the_log_level_file(void **state)
{
    struct tc *c = *state;
    char level[200];
    start_one(c, "--log-level-file", "level", "info\n", level, sizeof level);
    put(level, " warn \n");
    free(hup(c, 0, "log_level=warn was=info acl=reloaded"));
    put(level, "loud\n");
    char *out = hup(c, 0, "msg=\"reload failed, keeping the old log level\"");
    assert_non_null(strstr(out, "got \\\"loud\\\"\" log_level=warn"));
    free(out);
    tc_stop(c, 0, SIGTERM);
    plog_test_proc *p = &c->node[0].proc;
    assert_true(WIFEXITED(p->status) && WEXITSTATUS(p->status) == 0);
    out = plog_test_output(p);
    if (strstr(out, "msg=stopping") != NULL || strstr(out, "msg=stopped") != NULL)
        fail_msg("an info line was written at warn: %s", out);
    free(out);
}

/* fingerprint returns the SHA-256 fingerprint of the certificate node i's RPC
 * server shows a new connection (openssl s_client, verifying it against the CA),
 * or, with i < 0, of the certificate file. malloc'd. */
static char *fingerprint(struct tc *c, int i, const char *file)
{
    const char *d = tc_certs();
    char cmd[2048], *out = NULL;
    if (i >= 0)
        snprintf(cmd, sizeof cmd,
                 "openssl s_client -connect 127.0.0.1:%d -verify_return_error -CAfile '%s/ca.pem' "
                 "-cert '%s/root-client.pem' -key '%s/root-client-key.pem' </dev/null 2>/dev/null | "
                 "openssl x509 -noout -fingerprint -sha256",
                 c->node[i].rport, d, d, d);
    else
        snprintf(cmd, sizeof cmd, "openssl x509 -noout -fingerprint -sha256 -in '%s/%s'", d, file);
    if (plog_test_sh(cmd, 15000, &out) != 0 || strstr(out, "Fingerprint=") == NULL)
        fail_msg("%s: %s", cmd, out != NULL ? out : "");
    return out;
}

/* copy_cert puts the certificate file name (in tc_certs()) at path. */
static void copy_cert(const char *name, const char *path)
{
    char from[700], buf[16384];
    snprintf(from, sizeof from, "%s/%s", tc_certs(), name);
    FILE *f = fopen(from, "r");
    assert_non_null(f);
    buf[fread(buf, 1, sizeof buf - 1, f)] = '\0';
    fclose(f);
    put(path, buf);
}

/* The server certificate reloads for new connections while an open one goes on;
 * a key that does not match keeps the pair in force, saying why. */
static void test_agent_sighup_serves_a_new_certificate_to_new_connections(void **state)
{
    struct tc *c = *state;
    tc_init(c, 1);
    char cert[200], key[200];
    copy_cert("node1.pem", in_dir(c, "server.pem", cert, sizeof cert));
    copy_cert("node1-key.pem", in_dir(c, "server-key.pem", key, sizeof key));
    const char *extra[] = {"--server-tls-cert-file", cert, "--server-tls-key-file", key};
    memcpy(c->node[0].extra, extra, sizeof extra);
    tc_start(c, 0, -1);
    plog_client *cl = tc_client(c, 0);
    char *a = fingerprint(c, 0, NULL), *want_a = fingerprint(c, -1, "node1.pem");
    char *want_b = fingerprint(c, -1, "node2.pem");
    assert_string_equal(a, want_a);

    copy_cert("node2.pem", cert);
    copy_cert("node2-key.pem", key);
    free(hup(c, 0, "acl=reloaded acl_rules=19 tls=reloaded"));
    char *b = fingerprint(c, 0, NULL);
    assert_string_equal(b, want_b);
    plog_rpc_status rs;
    assert_int_equal(produce(cl, "old connection", &rs), PLOG_STATUS_OK);
    plog_client *fresh = tc_client(c, 0);
    assert_int_equal(produce(fresh, "new connection", &rs), PLOG_STATUS_OK);

    copy_cert("node3-key.pem", key);
    char *out = hup(c, 0, "tls=kept");
    assert_non_null(strstr(out, "level=error msg=\"reload failed, keeping the old certificates\""));
    assert_non_null(strstr(out, "private key does not match the certificate"));
    free(out);
    char *still = fingerprint(c, 0, NULL);
    assert_string_equal(still, want_b);
    free(still);
    free(a);
    free(b);
    free(want_a);
    free(want_b);
    plog_client_close(fresh);
    plog_client_close(cl);
}

/* ctl_produce produces value to node i with proglogctl as root: its exit code,
 * and its output in *out (the caller frees). */
static int ctl_produce(struct tc *c, int i, const char *value, char **out)
{
    const char *d = tc_certs();
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "%s --addr tls+tcp://127.0.0.1:%d --tls-cert-file %s/root-client.pem --tls-key-file "
             "%s/root-client-key.pem --tls-ca-file %s/ca.pem produce %s",
             plog_test_bin("proglogctl"), c->node[i].rport, d, d, d, value);
    return plog_test_sh(cmd, 15000, out);
}

/* max-connections from the config file: with two clients connected the next TLS
 * connection is refused (and counted), the two go on, and once one leaves a new
 * client gets in. */
static void test_agent_max_connections_refuses_the_next_connection(void **state)
{
    struct tc *c = *state;
    char yaml[200];
    start_one(c, "--config-file", "limits.yaml", "max-connections: 2\nhandshake-timeout-ms: 3000\n", yaml,
              sizeof yaml);
    plog_client *one = tc_client(c, 0), *two = tc_client(c, 0);
    plog_rpc_status rs;
    assert_int_equal(produce(one, "one", &rs), PLOG_STATUS_OK);
    const char *refused = "proglog_tls_handshakes_total{result=\"over_capacity\"}";
    long before = metric(c, 0, refused);
    assert_int_equal(before, 0);
    char *out = NULL;
    int rc = ctl_produce(c, 0, "three", &out);
    if (rc == 0)
        fail_msg("a third connection was served: %s", out);
    free(out);
    assert_true(metric(c, 0, refused) > before);
    assert_int_equal(produce(one, "one again", &rs), PLOG_STATUS_OK);
    assert_int_equal(produce(two, "two", &rs), PLOG_STATUS_OK);
    plog_client_close(two);
    for (int64_t until = plog_test_now_ms() + 5000;; plog_test_sleep_ms(100)) {
        out = NULL;
        rc = ctl_produce(c, 0, "after", &out);
        if (rc == 0 || plog_test_now_ms() > until)
            break;
        free(out);
    }
    if (rc != 0)
        fail_msg("no connection once one left: %s", out);
    free(out);
    plog_client_close(one);
}

/* A client without a certificate is refused at the handshake, and the node says so
 * in a warning naming the remote address: a refused client never becomes a
 * connection, so that line is its only trace. */
static void test_agent_logs_a_refused_handshake(void **state)
{
    struct tc *c = *state;
    char level[200];
    start_one(c, "--log-level-file", "level", "info\n", level, sizeof level);
    char cmd[1024], *out = NULL;
    snprintf(cmd, sizeof cmd,
             "openssl s_client -connect 127.0.0.1:%d -CAfile '%s/ca.pem' </dev/null >/dev/null 2>&1",
             c->node[0].rport, tc_certs());
    plog_test_sh(cmd, 15000, &out);
    free(out);
    if (!plog_test_wait_output(&c->node[0].proc, "msg=tls_handshake_failed remote=127.0.0.1:", 10000)) {
        out = plog_test_output(&c->node[0].proc);
        fail_msg("no tls_handshake_failed line: %s", out);
    }
}

/* one_node_with_a_record starts node 0 alone and produces one record through the
 * client it returns (the caller closes it). A node bootstrapped alone serves once
 * it leads: it says it leads before it says it serves, and the first produce is
 * stored (a CI run got "not leader" when the produce beat its first election). */
static plog_client *one_node_with_a_record(struct tc *c)
{
    tc_init(c, 1);
    tc_start(c, 0, -1);
    char *out = plog_test_output(&c->node[0].proc);
    const char *led = strstr(out, "msg=raft role=leader");
    if (led == NULL || led > strstr(out, "msg=serving"))
        fail_msg("the node served before it led: %s", out);
    free(out);
    plog_client *cl = tc_client(c, 0);
    plog_rpc_status rs;
    assert_int_equal(produce(cl, "first", &rs), PLOG_STATUS_OK);
    return cl;
}

/* proglog_log_size_bytes reports the node's segment files: above 0 once the node
 * holds a record, and growing as records arrive (a black-box run found it stuck
 * at 0 in agent mode, where nothing bound it). */
static void test_agent_log_size_gauge_grows_with_the_records(void **state)
{
    struct tc *c = *state;
    plog_client *cl = one_node_with_a_record(c);
    plog_rpc_status rs;
    struct gauge_arg g = {c, "proglog_log_size_bytes", 0};
    assert_true(plog_test_wait_until(gauge_above, &g, 10000));
    g.above = metric(c, 0, "proglog_log_size_bytes");
    static char value[16384];
    memset(value, 'v', sizeof value - 1);
    for (int i = 0; i < 4; i++)
        assert_int_equal(produce(cl, value, &rs), PLOG_STATUS_OK);
    if (!plog_test_wait_until(gauge_above, &g, 10000))
        fail_msg("proglog_log_size_bytes stayed at %ld after 64 KiB more records", g.above);
    plog_client_close(cl);
}

/* Raft's state is in the metrics (ch06; a black-box run found none, and ch05's
 * proglog_replicated_records_total left behind, always the count of applied records):
 * a node bootstrapped alone leads, in a term of at least 1, and its commit index
 * moves with every produce. */
static void test_agent_raft_gauges_show_the_leader_its_term_and_commits(void **state)
{
    struct tc *c = *state;
    plog_client *cl = one_node_with_a_record(c);
    plog_rpc_status rs;
    struct gauge_arg g = {c, "proglog_raft_leader", 0};
    assert_true(plog_test_wait_until(gauge_above, &g, 10000));
    assert_true(metric(c, 0, "proglog_raft_term") >= 1);
    assert_int_equal(metric(c, 0, "proglog_replicated_records_total"), -1);
    g.name = "proglog_raft_commit_index";
    g.above = metric(c, 0, g.name);
    assert_true(g.above >= 1);
    assert_int_equal(produce(cl, "second", &rs), PLOG_STATUS_OK);
    if (!plog_test_wait_until(gauge_above, &g, 10000))
        fail_msg("proglog_raft_commit_index stayed at %ld after a produce", g.above);
    plog_client_close(cl);
}

/* The new flags are listed, and a bad value is a usage error before anything
 * starts. */
static void test_agent_operator_flags_are_listed_and_checked(void **state)
{
    struct tc *c = *state;
    tc_init(c, 1);
    const char *bin = plog_test_bin("proglog");
    char cmd[1024], *out = NULL;
    snprintf(cmd, sizeof cmd, "%s --help", bin);
    assert_int_equal(plog_test_sh(cmd, 10000, &out), 0);
    static const char *const flags[] = {"--log-level-file FILE",    "--max-parked-per-client N",
                                        "--max-inflight-bytes N",   "--max-connections N",
                                        "--handshake-timeout-ms N", "SIGHUP reloads"};
    for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++)
        if (strstr(out, flags[i]) == NULL)
            fail_msg("no \"%s\" in --help: %s", flags[i], out);
    free(out);
    static const struct {
        const char *args, *want;
    } bad[] = {
        {"--max-connections many", "--max-connections"},
        {"--handshake-timeout-ms 5000000000", "--handshake-timeout-ms: too large"},
        {"--log-level-file %s/none", "/none: No such file"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char args[256];
        snprintf(args, sizeof args, bad[i].args, c->dir);
        snprintf(cmd, sizeof cmd, "%s --data-dir %s/d %s", bin, c->dir, args);
        int rc = plog_test_sh(cmd, 10000, &out);
        if (rc != 2 || strstr(out, bad[i].want) == NULL)
            fail_msg("%s: exit %d (want 2), output: %s", args, rc, out);
        free(out);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_agent_sighup_policy_applies_to_open_connections_and_gossip,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_agent_sighup_bad_policy_keeps_the_old_one, setup, teardown),
        cmocka_unit_test_setup_teardown(test_agent_sighup_reloads_the_log_level_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_agent_sighup_serves_a_new_certificate_to_new_connections, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_agent_max_connections_refuses_the_next_connection, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_agent_logs_a_refused_handshake, setup, teardown),
        cmocka_unit_test_setup_teardown(test_agent_log_size_gauge_grows_with_the_records, setup, teardown),
        cmocka_unit_test_setup_teardown(test_agent_raft_gauges_show_the_leader_its_term_and_commits, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_agent_operator_flags_are_listed_and_checked, setup, teardown),
    };
    return cmocka_run_group_tests_name("operate", tests, NULL, NULL);
}
