/* proglog_test.c - the agent's command line: --config-file in YAML with the flags'
 * keys, a flag overriding the file, clear errors for what is missing or unknown,
 * --help (and that the ACL it asks of the nodes is all a cluster needs), a
 * warning for flags a cluster does not use, a start that fails leaving Raft's
 * state alone, the serving line after a restart, and a clean exit on SIGTERM. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "internal/agent/testcluster.h"
#include "testing/testing.h"

struct fixture {
    char dir[64], yaml[128], policy[128];
    int gport, rport_file, rport_flag;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    plog_test_tmpdir("cli", f->dir, sizeof f->dir);
    snprintf(f->yaml, sizeof f->yaml, "%s/node1.yaml", f->dir);
    snprintf(f->policy, sizeof f->policy, "%s/policy.csv", f->dir);
    FILE *p = fopen(f->policy, "w");
    assert_non_null(p);
    fprintf(p, "p, root, *, produce\np, root, *, consume\np, node1, *, gossip\np, node1, *, consume\n");
    fclose(p);
    f->gport = plog_test_free_port();
    f->rport_file = plog_test_free_port();
    f->rport_flag = plog_test_free_port();
    const char *c = tc_certs();
    FILE *y = fopen(f->yaml, "w");
    assert_non_null(y);
    fprintf(y,
            "data-dir: %s/data\n"
            "node-name: node1\n"
            "bind-addr: 127.0.0.1:%d\n"
            "rpc-port: %d\n"
            "server-tls-cert-file: %s/node1.pem\n"
            "server-tls-key-file: %s/node1-key.pem\n"
            "server-tls-ca-file: %s/ca.pem\n"
            "peer-tls-cert-file: %s/node1.pem\n"
            "peer-tls-key-file: %s/node1-key.pem\n"
            "peer-tls-ca-file: %s/ca.pem\n"
            "acl-model-file: %s/model.conf\n"
            "acl-policy-file: %s\n"
            "profile: fast\n"
            "raft-port: %d\n", /* not the default RPC port + 2, which nobody checked was free */
            f->dir, f->gport, f->rport_file, c, c, c, c, c, c, c, f->policy, plog_test_free_port());
    fclose(y);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    plog_test_rmrf(f->dir);
    free(f);
    return 0;
}

static void test_proglog_config_file_with_a_flag_overriding_it(void **state)
{
    struct fixture *f = *state;
    char port[16];
    snprintf(port, sizeof port, "%d", f->rport_flag);
    char bin[512];
    snprintf(bin, sizeof bin, "%s", plog_test_bin("proglog"));
    char *argv[] = {bin, "--config-file", f->yaml, "--rpc-port", port, NULL};
    plog_test_proc p = {0};
    plog_test_spawn(&p, argv);
    char want[128];
    snprintf(want, sizeof want, "node=node1 rpc_addr=tls+tcp://127.0.0.1:%d bind_addr=127.0.0.1:%d",
             f->rport_flag, f->gport);
    bool up = plog_test_wait_output(&p, want, 10000);
    char *out = plog_test_output(&p);
    if (!up) {
        plog_test_kill(&p, SIGKILL, 1000);
        fail_msg("want \"%s\" in: %s", want, out);
    }
    free(out);
    assert_true(plog_test_wait_port(f->rport_flag, 5000));
    assert_true(plog_test_kill(&p, SIGTERM, 10000));
    assert_true(WIFEXITED(p.status));
    assert_int_equal(WEXITSTATUS(p.status), 0);
    out = plog_test_output(&p);
    assert_non_null(strstr(out, "profile=fast"));
    assert_non_null(strstr(out, "msg=stopped node=node1"));
    free(out);
    unlink(p.out);
}

/* serve_once runs proglog with the fixture's config file and the args of extra
 * (NULL-terminated, at most 4) until it serves, stops it with SIGTERM and returns
 * what it wrote (the caller frees). */
static char *serve_once(struct fixture *f, const char *const *extra)
{
    char bin[512];
    snprintf(bin, sizeof bin, "%s", plog_test_bin("proglog"));
    char *argv[8] = {bin, "--config-file", f->yaml};
    for (int i = 0; extra[i] != NULL && i < 4; i++)
        argv[3 + i] = (char *)extra[i];
    plog_test_proc p = {0};
    plog_test_spawn(&p, argv);
    bool up = plog_test_wait_output(&p, "msg=serving", 10000);
    char *out = plog_test_output(&p);
    if (!up) {
        plog_test_kill(&p, SIGKILL, 1000);
        fail_msg("proglog %s did not serve: %s", extra[0] != NULL ? extra[0] : "", out);
    }
    free(out);
    assert_true(plog_test_kill(&p, SIGTERM, 10000));
    assert_true(WIFEXITED(p.status));
    assert_int_equal(WEXITSTATUS(p.status), 0);
    out = plog_test_output(&p);
    unlink(p.out);
    return out;
}

/* --sync and --sync-interval-ms apply with --addr only (a cluster fsyncs Raft's
 * log per batch): given to a node, from the command line or the config file, they
 * get one warning line at start; left at their defaults, none. */
static void test_proglog_warns_once_that_sync_flags_are_unused_in_a_cluster(void **state)
{
    struct fixture *f = *state;
    static const char *const none[] = {NULL};
    char *out = serve_once(f, none);
    if (strstr(out, "ignored in cluster mode") != NULL)
        fail_msg("a warning without --sync: %s", out);
    free(out);

    static const char *const both[] = {"--sync", "always", "--sync-interval-ms", "5", NULL};
    out = serve_once(f, both);
    const char *w = strstr(out, "level=warn msg=\"ignored in cluster mode");
    if (w == NULL || strstr(w, "flags=--sync,--sync-interval-ms\n") == NULL)
        fail_msg("want one warning naming both flags: %s", out);
    assert_null(strstr(w + strcspn(w, "\n"), "ignored in cluster mode")); /* one line only */
    free(out);

    FILE *y = fopen(f->yaml, "a");
    assert_non_null(y);
    fprintf(y, "sync-interval-ms: 20\n");
    assert_int_equal(fclose(y), 0);
    out = serve_once(f, none);
    if (strstr(out, "flags=--sync-interval-ms\n") == NULL)
        fail_msg("want the warning for sync-interval-ms from the config file: %s", out);
    free(out);
}

/* A bind host the node's certificate does not name: the others dial it there and
 * refuse the certificate, and the node says so at start (before, it logged only
 * "peer refused our certificate", and was taken for dead within a second). */
static void test_proglog_warns_when_its_certificate_does_not_name_the_bind_host(void **state)
{
    struct fixture *f = *state;
    char bind[32], bin[512];
    snprintf(bind, sizeof bind, "127.0.0.2:%d", plog_test_free_port());
    snprintf(bin, sizeof bin, "%s", plog_test_bin("proglog"));
    char *argv[] = {bin, "--config-file", f->yaml, "--bind-addr", bind, NULL};
    plog_test_proc p = {0};
    plog_test_spawn(&p, argv);
    bool warned = plog_test_wait_output(
                      &p, "level=warn msg=\"the peer certificate does not name the bind host\"", 10000) &&
                  plog_test_wait_output(&p, "host=127.0.0.2 hint=", 1000);
    char *out = plog_test_output(&p);
    plog_test_kill(&p, SIGTERM, 10000);
    if (!warned)
        fail_msg("no warning for a bind host the certificate does not name: %s", out);
    free(out);
    unlink(p.out);
}

static void test_proglog_refuses_bad_configuration_clearly(void **state)
{
    struct fixture *f = *state;
    const char *bin = plog_test_bin("proglog");
    char bad[160];
    snprintf(bad, sizeof bad, "%s/bad.yaml", f->dir);
    FILE *y = fopen(bad, "w");
    assert_non_null(y);
    fprintf(y, "node-name: node1\nrpc_port: 1\n");
    fclose(y);
    snprintf(bad, sizeof bad, "%s/list.yaml", f->dir);
    y = fopen(bad, "w");
    assert_non_null(y);
    fprintf(y, "data-dir: [a, b]\nstart-join-addrs: [127.0.0.1:9, 127.0.0.1:10]\n");
    fclose(y);
    snprintf(bad, sizeof bad, "%s/values.yaml", f->dir);
    y = fopen(bad, "w");
    assert_non_null(y);
    fprintf(y, "node-name: node1\nrpc-port: abc\nsync: sometimes\nbootstrap: yes\n");
    fclose(y);
    static const struct {
        const char *args;
        int code;
        const char *want;
    } cases[] = {
        {"--config-file %s/bad.yaml", 2, "bad.yaml:2: unknown key \"rpc_port\""},
        {"--config-file %s/none.yaml", 2, "none.yaml: No such file"},
        {"--node-name x --data-dir %s/d", 2, "--server-tls-cert-file is required"},
        {"--rpc-port 70000 --data-dir %s/d", 2, "--rpc-port: too large"},
        {"--raft-port 0 --data-dir %s/d", 2, "--raft-port: too small: 0 (at least 1)"},
        {"--sync-interval-ms 0 --data-dir %s/d", 2, "--sync-interval-ms: too small: 0 (at least 1)"},
        {"--max-connections 1048577 --data-dir %s/d", 2, "--max-connections: too large: 1048577"},
        {"--profile wan --data-dir %s/d", 2, "--profile: want lan or fast"},
        {"--raft-port 8400 --data-dir %s/d", 2,
         "--bind-addr's port (8401), --rpc-port (8400) and --raft-port (8400) must differ"},
        {"--rpc-port 8399 --data-dir %s/d", 2, "--raft-port (8401) must differ"},
        /* A bad value from the config file names the file, line and key (before:
         * "--rpc-port: not a number", a flag nobody gave); a flag given wins. */
        {"--config-file %s/values.yaml", 2, "values.yaml:2: rpc-port: not a number: abc"},
        {"--config-file %s/values.yaml --rpc-port 8400", 2,
         "values.yaml:3: sync: want never, always or interval: sometimes"},
        {"--config-file %s/values.yaml --rpc-port 70000", 2, "proglog: --rpc-port: too large"},
        {"--config-file %s/values.yaml --rpc-port 8400 --sync always", 2,
         "values.yaml:4: bootstrap: want true or false: yes"},
        /* In range alone, not with the message size (before: exit 1 once started). */
        {"--max-inflight-bytes 1 --data-dir %s/d", 2,
         "--max-inflight-bytes: an in-flight budget of 1 bytes is less than twice the largest message "
         "(4194304 bytes)"},
        /* single-server mode is this chapter's program too (it said 0.5.0 in ch06) */
        {"--addr tcp://127.0.0.1:1 --data-dir %s/d --version", 0, "proglog 0.6.0 (ch06-consensus)\n"},
        {"--config-file %s", 2, "Is a directory"},
        {"--bind-addr 127.0.0.1:0 --data-dir %s/d", 2,
         "--bind-addr: want HOST:PORT with a port in 1..65535 (the other nodes dial it): 127.0.0.1:0"},
        {"--raft-advertise-addr 127.0.0.1:0 --data-dir %s/d", 2,
         "--raft-advertise-addr: want HOST:PORT with a port in 1..65535 (the other nodes dial it): "
         "127.0.0.1:0"},
        {"--raft-advertise-addr 127.0.0.1:65536 --data-dir %s/d", 2, "--raft-advertise-addr: want HOST:PORT"},
        {"--raft-advertise-addr node1 --data-dir %s/d", 2, "--raft-advertise-addr: want HOST:PORT"},
        /* A usage error like any bad address (before: exit 1, nng's "Address invalid"). */
        {"--metrics-addr 127.0.0.1:99999 --data-dir %s/d", 2,
         "--metrics-addr: want HOST:PORT with a port in 1..65535: 127.0.0.1:99999"},
        {"--metrics-addr localhost --data-dir %s/d", 2, "--metrics-addr: want HOST:PORT"},
        {"--data-dir %s/d extra", 2, "unexpected argument: extra"},
        /* Before: exit 1, "mkdir : No such file or directory". */
        {"--data-dir ''", 2, "--data-dir: want a directory, not an empty string"},
        /* Before: exit 1, "the node name \"\" is not the CN of the peer certificate". */
        {"--node-name '' --data-dir %s/d", 2, "--node-name: want a name, not an empty string"},
        /* Names gossip cannot carry. Before: with a certificate of that CN, exit 1
         * once the data directory was made and bound to the name, "gossip on
         * --bind-addr ...: bad node name"; with another, "not the CN". */
        {"--config-file %s/node1.yaml --node-name 'node 1'", 2,
         "--node-name: want 1..64 printable ASCII characters without spaces: node 1"},
        {"--config-file %s/node1.yaml --node-name "
         "node1xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
         2, "--node-name: want 1..64 printable"},
        /* Before: a node on ./--profile, with the default profile. */
        {"--data-dir --profile fast", 2, "--data-dir: missing value (the next word is the flag --profile)"},
        /* Before: a data directory named "a,b". */
        {"--config-file %s/list.yaml", 2, "list.yaml:1: \"data-dir\" takes one value, not a list"},
        /* A usage error, before gossip starts (before: exit 1, blamed on --bind-addr). */
        {"--start-join-addrs tls+tcp://127.0.0.1:9,,x --data-dir %s/d", 2,
         "--start-join-addrs: want HOST:PORT with a port in 1..65535 (a member's gossip address): x"},
        {"--start-join-addrs 127.0.0.1:0 --data-dir %s/d", 2, "--start-join-addrs: want HOST:PORT"},
        /* A name the others would never accept (before: it started, and could not join). */
        {"--config-file %s/node1.yaml --node-name node2", 1,
         "node2\\\" is not the CN of the peer certificate"},
        /* --bootstrap's value as the next word or after '=' (before: "unexpected
         * argument: false"): taken, and the next check speaks. */
        {"--bootstrap false --node-name x --data-dir %s/d", 2, "--server-tls-cert-file is required"},
        {"--bootstrap true --node-name x --data-dir %s/d", 2, "--server-tls-cert-file is required"},
        {"--bootstrap=maybe --node-name x --data-dir %s/d", 2, "--bootstrap: want true or false: maybe"},
        {"--bootstrap --node-name x --data-dir %s/d", 2, "--server-tls-cert-file is required"},
        /* A word after it that is not a flag is its value (before: "unexpected argument"). */
        {"--bootstrap maybe --data-dir %s/d", 2, "--bootstrap: want true or false: maybe"},
        {"--leave-on-terminate yes --data-dir %s/d", 2, "--leave-on-terminate: want true or false: yes"},
        {"--leave-on-terminate --node-name x --data-dir %s/d", 2, "--server-tls-cert-file is required"},
        {"--help --data-dir %s/d", 0, "--start-join-addrs A,B"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char args[256], cmd[1024], *out = NULL;
        snprintf(args, sizeof args, cases[i].args, f->dir);
        snprintf(cmd, sizeof cmd, "%s %s", bin, args);
        int rc = plog_test_sh(cmd, 10000, &out);
        if (rc != cases[i].code || strstr(out, cases[i].want) == NULL)
            fail_msg("%s: exit %d (want %d), output: %s", args, rc, cases[i].code, out);
        free(out);
    }
    /* The flag names the missing file of the config too, after merging. */
    char cmd[1024], *out = NULL;
    snprintf(cmd, sizeof cmd, "%s --config-file %s --peer-tls-cert-file %s/missing.pem", bin, f->yaml,
             f->dir);
    assert_int_equal(plog_test_sh(cmd, 10000, &out), 1);
    assert_non_null(strstr(out, "missing.pem"));
    free(out);
    /* --metrics-addr on the node's own RPC port: the error names the flag. */
    snprintf(cmd, sizeof cmd, "%s --config-file %s --metrics-addr 127.0.0.1:%d", bin, f->yaml, f->rport_file);
    assert_int_equal(plog_test_sh(cmd, 10000, &out), 1);
    if (strstr(out, "err=\"--metrics-addr: listen 127.0.0.1:") == NULL ||
        strstr(out, "Address in use") == NULL)
        fail_msg("--metrics-addr on the RPC port: %s", out);
    free(out);
    /* On the gossip port, which opens after it here: the error names gossip's flag. */
    snprintf(cmd, sizeof cmd, "%s --config-file %s --metrics-addr 127.0.0.1:%d", bin, f->yaml, f->gport);
    assert_int_equal(plog_test_sh(cmd, 10000, &out), 1);
    char want[64];
    snprintf(want, sizeof want, "err=\"gossip on --bind-addr 127.0.0.1:%d: ", f->gport);
    if (strstr(out, want) == NULL || strstr(out, "Address in use") == NULL)
        fail_msg("--metrics-addr on the gossip port: %s", out);
    free(out);
}

/* A first start that fails on a file (a certificate, key, CA or policy) leaves
 * no data directory. Before, the agent made it, bound it to the node name and
 * created the log's first segment, then read the files and failed. */
static void test_proglog_a_start_that_fails_on_a_file_writes_no_data_directory(void **state)
{
    struct fixture *f = *state;
    const char *bin = plog_test_bin("proglog");
    const char *c = tc_certs();
    static const struct {
        const char *flag, *file, *want;
    } cases[] = {
        {"--server-tls-cert-file", "%s/missing.pem", "missing.pem: No such file"},
        {"--server-tls-key-file", "%s/node2-key.pem", "private key does not match the certificate"},
        {"--peer-tls-key-file", "%s/missing-key.pem", "missing-key.pem: No such file"},
        {"--peer-tls-ca-file", "%s/missing-ca.pem", "missing-ca.pem"},
        {"--acl-policy-file", "%s/missing.csv", "missing.csv: No such file"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char file[512], cmd[1536], data[128], *out = NULL;
        snprintf(file, sizeof file, cases[i].file, c);
        snprintf(data, sizeof data, "%s/data%zu", f->dir, i);
        snprintf(cmd, sizeof cmd, "%s --config-file %s --data-dir %s %s %s", bin, f->yaml, data,
                 cases[i].flag, file);
        int rc = plog_test_sh(cmd, 10000, &out);
        if (rc != 1 || strstr(out, cases[i].want) == NULL)
            fail_msg("%s %s: exit %d (want 1), output: %s", cases[i].flag, file, rc, out);
        free(out);
        if (access(data, F_OK) == 0)
            fail_msg("%s %s: the failed start made its data directory %s", cases[i].flag, file, data);
    }
}

/* listening returns a TCP socket listening on 127.0.0.1:port (the caller closes it). */
static int listening(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(fd, 8), 0);
    return fd;
}

/* A first start that fails on a port in use (the RPC, gossip, Raft or metrics
 * port) names the flag and leaves no data directory. Before, the agent
 * made the directory, bound it to the node name and created the log's first
 * segment, then failed at the listen ("listen tls+tcp://...: Address in use"). */
static void test_proglog_a_start_that_fails_on_a_port_in_use_writes_no_data_directory(void **state)
{
    struct fixture *f = *state;
    const char *bin = plog_test_bin("proglog");
    int port = plog_test_free_port();
    int fd = listening(port);
    static const char *const flags[] = {"--rpc-port %d", "--bind-addr 127.0.0.1:%d",
                                        "--metrics-addr 127.0.0.1:%d"};
    static const char *const wants[] = {"--rpc-port: cannot listen on 127.0.0.1:",
                                        "--bind-addr: cannot listen on", "--metrics-addr: cannot listen on"};
    for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++) {
        char flag[64], cmd[1024], data[128], *out = NULL;
        snprintf(flag, sizeof flag, flags[i], port);
        snprintf(data, sizeof data, "%s/port%zu", f->dir, i);
        snprintf(cmd, sizeof cmd, "%s --config-file %s --data-dir %s %s", bin, f->yaml, data, flag);
        int rc = plog_test_sh(cmd, 10000, &out);
        bool made = access(data, F_OK) == 0;
        if (rc != 1 || strstr(out, wants[i]) == NULL || strstr(out, "Address in use") == NULL || made) {
            close(fd);
            fail_msg("%s: exit %d (want 1), data directory %s, output: %s", flag, rc,
                     made ? "made" : "not made", out);
        }
        free(out);
    }
    close(fd);
}

/* A node's log reports (here a torn tail cut at open) go through its logger, timed
 * like every other line (before: the log's own fallback, a "level=warn ..." line
 * on stderr without the time). */
static void test_proglog_log_reports_are_timed_lines(void **state)
{
    struct fixture *f = *state;
    char bin[512], cmd[512];
    snprintf(bin, sizeof bin, "%s", plog_test_bin("proglog"));
    char *argv[] = {bin, "--config-file", f->yaml, NULL};
    for (int run = 0; run < 2; run++) {
        plog_test_proc p = {0};
        plog_test_spawn(&p, argv);
        bool up = plog_test_wait_output(&p, "msg=serving", 10000);
        assert_true(plog_test_kill(&p, SIGTERM, 10000));
        char *out = plog_test_output(&p);
        unlink(p.out);
        if (!up)
            fail_msg("the node did not serve: %s", out);
        if (run == 0) { /* a torn write at the end of the last store file */
            snprintf(cmd, sizeof cmd,
                     "printf torn >> \"$(find %s/data/raft -name '*.store' | sort | tail -1)\"", f->dir);
            assert_int_equal(plog_test_sh(cmd, 5000, NULL), 0);
        } else {
            const char *line = strstr(out, "msg=\"truncated torn tail\"");
            if (line == NULL)
                fail_msg("no torn-tail report: %s", out);
            while (line > out && line[-1] != '\n')
                line--;
            if (strncmp(line, "time=", 5) != 0)
                fail_msg("a report without its time: %.*s", (int)strcspn(line, "\n"), line);
        }
        free(out);
    }
}

/* hold_port listens on 127.0.0.1:port, so that a node cannot bind it. */
static int hold_port(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(fd, 1), 0);
    return fd;
}

/* stored_term is the Raft term in data/raft/hardstate (README.md, "What each
 * storage file holds": the term in 8 bytes big-endian first), 0 without one. */
static uint64_t stored_term(const char *data)
{
    char path[256];
    snprintf(path, sizeof path, "%s/raft/hardstate", data);
    FILE *h = fopen(path, "rb");
    if (h == NULL && errno == ENOENT)
        return 0;
    assert_non_null(h);
    uint8_t b[8];
    assert_int_equal(fread(b, 1, sizeof b, h), sizeof b);
    fclose(h);
    uint64_t term = 0;
    for (int i = 0; i < 8; i++)
        term = term << 8 | b[i];
    return term;
}

static bool term_is_2(void *arg)
{
    return stored_term(arg) == 2;
}

/* A bootstrapping node whose start fails (its server certificate missing; its
 * Raft, RPC, metrics or gossip port taken) exits 1 before Raft writes anything: no
 * term, no vote, no entry (before: it bootstrapped and elected itself first, so
 * every failed attempt raised the term on disk). Started again with all in order,
 * it bootstraps and elects itself in term 2, as a first start does. */
static void test_proglog_a_start_that_fails_leaves_raft_state_alone(void **state)
{
    struct fixture *f = *state;
    char bin[512], missing[160];
    snprintf(bin, sizeof bin, "%s", plog_test_bin("proglog"));
    snprintf(missing, sizeof missing, "%s/missing.pem", f->dir);
    int taken = plog_test_free_port();
    int fd = hold_port(taken);
    char port[16], addr[32];
    snprintf(port, sizeof port, "%d", taken);
    snprintf(addr, sizeof addr, "127.0.0.1:%d", taken);
    const struct {
        const char *flag, *value;
    } cases[] = {
        {"--server-tls-cert-file", missing},
        {"--raft-port", port},
        {"--rpc-port", port},
        {"--metrics-addr", addr},
        {"--bind-addr", addr},
    };
    char data[160];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(data, sizeof data, "%s/data-%zu", f->dir, i);
        char *argv[] = {bin,
                        "--config-file",
                        f->yaml,
                        "--bootstrap",
                        "--data-dir",
                        data,
                        (char *)cases[i].flag,
                        (char *)cases[i].value,
                        NULL};
        plog_test_proc p = {0};
        plog_test_spawn(&p, argv);
        bool exited = plog_test_wait(&p, 10000);
        char *out = plog_test_output(&p);
        if (!exited) {
            plog_test_kill(&p, SIGKILL, 1000);
            fail_msg("%s %s: still running: %s", cases[i].flag, cases[i].value, out);
        }
        if (!WIFEXITED(p.status) || WEXITSTATUS(p.status) != 1 || strstr(out, "cannot start") == NULL ||
            strstr(out, "raft bootstrapped") != NULL || strstr(out, "msg=raft ") != NULL)
            fail_msg("%s %s: want a failed start before Raft runs: %s", cases[i].flag, cases[i].value, out);
        if (stored_term(data) != 0)
            fail_msg("%s %s: term %llu stored: %s", cases[i].flag, cases[i].value,
                     (unsigned long long)stored_term(data), out);
        char store[256];
        struct stat st;
        snprintf(store, sizeof store, "%s/raft/log-0/%020d.store", data, 0);
        if (stat(store, &st) == 0 && st.st_size != 0)
            fail_msg("%s %s: %lld bytes of Raft's log written", cases[i].flag, cases[i].value,
                     (long long)st.st_size);
        free(out);
        unlink(p.out);
    }
    close(fd);

    /* data is the last case's: a good start after a failed one. */
    char *argv[] = {bin, "--config-file", f->yaml, "--bootstrap", "--data-dir", data, NULL};
    plog_test_proc p = {0};
    plog_test_spawn(&p, argv);
    bool led = plog_test_wait_output(&p, "role=leader", 10000) && plog_test_wait_until(term_is_2, data, 5000);
    char *out = plog_test_output(&p);
    bool stopped = plog_test_kill(&p, SIGTERM, 10000);
    if (!led || strstr(out, "raft bootstrapped") == NULL)
        fail_msg("want it bootstrapped and leading in term 2 (term %llu): %s",
                 (unsigned long long)stored_term(data), out);
    assert_true(stopped);
    assert_int_equal(stored_term(data), 2);
    free(out);
    unlink(p.out);
}

/* The cluster of the next test, stopped by its teardown even after a failure. */
static struct tc g_tc;

static int teardown_cluster(void **state)
{
    (void)state;
    tc_fini(&g_tc);
    memset(&g_tc, 0, sizeof g_tc);
    return 0;
}

/* --help asks the ACL to let each node "gossip", and nothing else: a cluster whose
 * policy gives its nodes only that replicates (the Raft transport checks
 * "gossip"; no node reads another over RPC, so none needs "consume"). */
static void test_proglog_help_names_the_acl_a_cluster_needs_and_it_is_enough(void **state)
{
    (void)state;
    char cmd[1024], *out = NULL;
    snprintf(cmd, sizeof cmd, "%s --help", plog_test_bin("proglog"));
    assert_int_equal(plog_test_sh(cmd, 10000, &out), 0);
    assert_non_null(strstr(out, "replicated through Raft"));
    assert_non_null(strstr(out, "Nodes need nothing else (no \"consume\""));
    free(out);

    struct tc *c = &g_tc;
    tc_init(c, 2);
    FILE *p = fopen(c->policy, "w"); /* replaces tc_init's, which lets nodes consume */
    assert_non_null(p);
    fprintf(p, "p, root, *, produce\np, root, *, consume\np, node1, *, gossip\np, node2, *, gossip\n");
    assert_int_equal(fclose(p), 0);
    tc_start(c, 0, -1);
    tc_start(c, 1, 0);
    tc_produce(c, 0, "g", 0, 3);
    assert_true(tc_wait_count(c, 1, 3, 20000)); /* node2 has them only through Raft */
    struct tc_rec *v;
    assert_int_equal(tc_records(c, 1, &v), 3);
    for (int k = 0; k < 3; k++) {
        char want[8];
        snprintf(want, sizeof want, "g-%d", k);
        assert_int_equal(v[k].ooff, k);
        assert_string_equal(v[k].value, want);
    }
    tc_records_free(v, 3);
}

/* The serving line of a restarted node names what it restarts with: Raft's last
 * index (entry 1 the bootstrap's configuration, 2 the first term's no-op, one
 * entry per produce, perhaps already the new term's no-op) and the records
 * applied so far to the record log, which is rebuilt as entries commit again
 * (before: next_offset=0, the rebuilt log's end at that moment). */
static void test_proglog_serving_line_after_a_restart_names_raft_last_index(void **state)
{
    (void)state;
    struct tc *c = &g_tc;
    tc_init(c, 1);
    tc_start(c, 0, -1);
    for (int k = 0; k < 3; k++)
        tc_produce(c, 0, "r", 2 * k, 2);
    tc_stop(c, 0, SIGTERM);
    tc_start(c, 0, -1);
    char *out = plog_test_output(&c->node[0].proc);
    const char *line = strstr(out, "msg=serving");
    assert_non_null(line);
    const char *last = strstr(line, " raft_last_index="), *applied = strstr(line, " records_applied=");
    unsigned long long n_last = 0, n_applied = 99;
    if (last == NULL || applied == NULL || sscanf(last, " raft_last_index=%llu", &n_last) != 1 ||
        sscanf(applied, " records_applied=%llu", &n_applied) != 1 || n_last < 5 || n_last > 6 ||
        n_applied > 6 || (n_applied & 1) != 0)
        fail_msg("want raft_last_index=5 (or 6) and records_applied=0..6, by whole entries: %.*s",
                 (int)strcspn(line, "\n"), line);
    free(out);
    assert_true(tc_wait_count(c, 0, 6, 10000));
}

/* A node that knows no Raft leader a few seconds after it started says why, once:
 * here a node with nothing to join and no --bootstrap (before: nothing; produces
 * then failed "no leader known"), and one given only its own --bind-addr to join
 * (before: "not their RPC port"); a first node started with --bootstrap does not. */
static void test_proglog_says_when_it_knows_no_leader_and_why(void **state)
{
    struct fixture *f = *state;
    char bin[512], bind[32], rport[16], raft[16], data[128], sbind[32], srport[16], sraft[16], sdata[128];
    snprintf(bin, sizeof bin, "%s", plog_test_bin("proglog"));
    snprintf(bind, sizeof bind, "127.0.0.1:%d", plog_test_free_port());
    snprintf(rport, sizeof rport, "%d", f->rport_flag);
    snprintf(raft, sizeof raft, "%d", plog_test_free_port());
    snprintf(data, sizeof data, "%s/data-first", f->dir);
    snprintf(sbind, sizeof sbind, "127.0.0.1:%d", plog_test_free_port());
    snprintf(srport, sizeof srport, "%d", plog_test_free_port());
    snprintf(sraft, sizeof sraft, "%d", plog_test_free_port());
    snprintf(sdata, sizeof sdata, "%s/data-self", f->dir);
    char *alone[] = {bin, "--config-file", f->yaml, NULL};
    char *first[] = {bin,  "--config-file", f->yaml, "--bind-addr", bind, "--rpc-port", rport, "--raft-port",
                     raft, "--data-dir",    data,    "--bootstrap", NULL};
    char *self[] = {
        bin,   "--config-file", f->yaml, "--bind-addr",        sbind, "--rpc-port", srport, "--raft-port",
        sraft, "--data-dir",    sdata,   "--start-join-addrs", sbind, NULL};
    plog_test_proc a = {0}, b = {0}, c = {0};
    plog_test_spawn(&a, alone);
    plog_test_spawn(&b, first);
    plog_test_spawn(&c, self);
    bool warned = plog_test_wait_output(&a, "level=warn msg=alone", 15000) &&
                  plog_test_wait_output(&c, "level=warn msg=alone", 15000);
    bool served = plog_test_wait_output(&b, "msg=serving", 10000);
    plog_test_sleep_ms(1000); /* past the first node's check too */
    char *out_a = plog_test_output(&a), *out_b = plog_test_output(&b), *out_c = plog_test_output(&c);
    bool stopped = plog_test_kill(&a, SIGTERM, 10000) && plog_test_kill(&b, SIGTERM, 10000) &&
                   plog_test_kill(&c, SIGTERM, 10000);
    if (!warned || strstr(out_a, "nothing to join and no --bootstrap") == NULL)
        fail_msg("want the warning: %s", out_a);
    if (strstr(out_c, "the only one is this node's own --bind-addr") == NULL)
        fail_msg("want the warning about its own address: %s", out_c);
    if (!served || strstr(out_b, "msg=alone") != NULL)
        fail_msg("a first node warned: %s", out_b);
    assert_true(stopped);
    free(out_a);
    free(out_b);
    free(out_c);
    unlink(a.out);
    unlink(b.out);
    unlink(c.out);
}

/* spawn_node4 starts node4 from the fixture's config file with its own ports and
 * data directory, the peer certificate node4.pem of certs (signed by ca.pem
 * there), joining through join. */
static void spawn_node4(struct fixture *f, plog_test_proc *p, const char *tag, const char *certs,
                        const char *join)
{
    char bin[512], data[128], bind[32], rport[16], raft[16], cert[600], key[600], ca[600];
    snprintf(bin, sizeof bin, "%s", plog_test_bin("proglog"));
    snprintf(data, sizeof data, "%s/data-%s", f->dir, tag);
    snprintf(bind, sizeof bind, "127.0.0.1:%d", plog_test_free_port());
    snprintf(rport, sizeof rport, "%d", plog_test_free_port());
    snprintf(raft, sizeof raft, "%d", plog_test_free_port());
    snprintf(cert, sizeof cert, "%s/node4.pem", certs);
    snprintf(key, sizeof key, "%s/node4-key.pem", certs);
    snprintf(ca, sizeof ca, "%s/ca.pem", certs);
    char *argv[] = {bin,          "--config-file",
                    f->yaml,      "--node-name",
                    "node4",      "--data-dir",
                    data,         "--bind-addr",
                    bind,         "--rpc-port",
                    rport,        "--raft-port",
                    raft,         "--peer-tls-cert-file",
                    cert,         "--peer-tls-key-file",
                    key,          "--peer-tls-ca-file",
                    ca,           "--start-join-addrs",
                    (char *)join, NULL};
    plog_test_spawn(p, argv);
}

/* A node the cluster refuses is logged where it knocks, with its address and the
 * reason, and told why it is alone: node4 with certificates of another CA fails
 * the TLS handshake; node4 of the right CA, which the policy does not let gossip,
 * is refused by the ACL. Before: nothing on node1, even at debug, and both were
 * told their join address might be an RPC port. */
static void test_proglog_logs_a_refused_node_and_tells_it_why(void **state)
{
    struct fixture *f = *state;
    char bin[512], join[32], other[128], cmd[1024], *out = NULL;
    snprintf(bin, sizeof bin, "%s", plog_test_bin("proglog"));
    snprintf(join, sizeof join, "127.0.0.1:%d", f->gport);
    snprintf(other, sizeof other, "%s/other", f->dir);
    const char *chapter = getenv("PLOG_CHAPTER");
    snprintf(cmd, sizeof cmd, "%s/../common/certs/gencert '%s' --node node4", chapter != NULL ? chapter : ".",
             other);
    if (plog_test_sh(cmd, 60000, &out) != 0)
        fail_msg("%s: %s", cmd, out);
    free(out);
    char *first[] = {bin, "--config-file", f->yaml, NULL};
    plog_test_proc n1 = {0}, foreign = {0}, denied = {0};
    plog_test_spawn(&n1, first);
    bool served = plog_test_wait_output(&n1, "msg=serving", 10000);
    spawn_node4(f, &foreign, "foreign", other, join);
    spawn_node4(f, &denied, "denied", tc_certs(), join);
    bool warned = plog_test_wait_output(&foreign, "msg=alone", 15000) &&
                  plog_test_wait_output(&denied, "msg=alone", 15000);
    char *out1 = plog_test_output(&n1), *out_f = plog_test_output(&foreign),
         *out_d = plog_test_output(&denied);
    bool stopped = plog_test_kill(&foreign, SIGTERM, 10000) && plog_test_kill(&denied, SIGTERM, 10000) &&
                   plog_test_kill(&n1, SIGTERM, 10000);
    if (!served || !warned)
        fail_msg("node1: %s\nforeign node4: %s\ndenied node4: %s", out1, out_f, out_d);
    /* node1: the ACL refusal, and a TLS one (its line has no "not permitted"). */
    const char *acl = strstr(out1, "level=warn msg=peer_refused listener=gossip remote=127.0.0.1:");
    if (acl == NULL || strstr(out1, "err=\"node4 is not permitted to gossip\"") == NULL)
        fail_msg("want node4's ACL refusal logged: %s", out1);
    bool tls = false;
    for (const char *l = out1; (l = strstr(l, "msg=peer_refused listener=gossip")) != NULL; l++) {
        size_t len = strcspn(l, "\n");
        char line[512];
        snprintf(line, sizeof line, "%.*s", (int)len, l);
        tls = tls || strstr(line, "not permitted") == NULL;
    }
    if (!tls)
        fail_msg("want the foreign node4's failed handshake logged: %s", out1);
    if (strstr(out_f, "the TLS handshake with tls+tcp://127.0.0.1:") == NULL ||
        strstr(out_f, "certificate verify failed") == NULL || strstr(out_f, "RPC port") != NULL)
        fail_msg("want the handshake's failure in the foreign node4's hint: %s", out_f);
    if (strstr(out_d, "the ACL there must let node4 gossip") == NULL || strstr(out_d, "RPC port") != NULL)
        fail_msg("want the ACL in the denied node4's hint: %s", out_d);
    assert_true(stopped);
    free(out1);
    free(out_f);
    free(out_d);
    unlink(n1.out);
    unlink(foreign.out);
    unlink(denied.out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_proglog_config_file_with_a_flag_overriding_it, setup, teardown),
        cmocka_unit_test_setup_teardown(test_proglog_warns_when_its_certificate_does_not_name_the_bind_host,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_proglog_refuses_bad_configuration_clearly, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_proglog_a_start_that_fails_on_a_port_in_use_writes_no_data_directory, setup, teardown),
        cmocka_unit_test_setup_teardown(test_proglog_a_start_that_fails_on_a_file_writes_no_data_directory,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_proglog_log_reports_are_timed_lines, setup, teardown),
        cmocka_unit_test_setup_teardown(test_proglog_says_when_it_knows_no_leader_and_why, setup, teardown),
        cmocka_unit_test_setup_teardown(test_proglog_logs_a_refused_node_and_tells_it_why, setup, teardown),
        cmocka_unit_test_setup_teardown(test_proglog_warns_once_that_sync_flags_are_unused_in_a_cluster,
                                        setup, teardown),
        cmocka_unit_test_teardown(test_proglog_help_names_the_acl_a_cluster_needs_and_it_is_enough,
                                  teardown_cluster),
        cmocka_unit_test_teardown(test_proglog_serving_line_after_a_restart_names_raft_last_index,
                                  teardown_cluster),
        cmocka_unit_test_setup_teardown(test_proglog_a_start_that_fails_leaves_raft_state_alone, setup,
                                        teardown),
    };
    return cmocka_run_group_tests_name("proglog", tests, NULL, NULL);
}
