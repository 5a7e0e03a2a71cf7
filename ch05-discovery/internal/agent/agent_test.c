/* agent_test.c - the book's agent test, in one process (Go: agent_test.go
 * TestAgent): three agents, the second and third joining the first; a record
 * produced on the first is readable on the other two within 3 s, and is not
 * replicated back (the first still holds one record); a leave is seen within 3 s.
 * Plus: an agent refuses a data directory made under another node name,
 * replication positions survive a restart, a node restarted without join
 * addresses rejoins the members it saw, the directories it makes are durable, and
 * a gossiped tag cannot forge a line of its log. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal/agent/agent.h"
#include "internal/agent/testcluster.h"
#include "internal/client/client.h"
#include "internal/discovery/gossip.h"
#include "internal/discovery/transport.h"
#include "internal/err/err.h"
#include "internal/log/io.h"
#include "internal/log/replicator.h"
#include "internal/tls/config.h"
#include "testing/testing.h"

#define N 3

struct fixture {
    char dir[64], policy[128];
    char data[N][128], name[N][16], bind[N][32];
    uint16_t rpc[N];
    plog_agent *a[N];
};

static const char *cert(const char *name)
{
    static char bufs[16][600];
    static int next;
    char *b = bufs[next++ % 16];
    snprintf(b, sizeof bufs[0], "%s/%s", tc_certs(), name);
    return b;
}

/* config_of: node i's configuration, joining nobody (the certificate paths live
 * in cert's buffers). */
static plog_agent_config config_of(struct fixture *f, int i)
{
    char c[64], k[64];
    snprintf(c, sizeof c, "%s.pem", f->name[i]);
    snprintf(k, sizeof k, "%s-key.pem", f->name[i]);
    return (plog_agent_config){
        .data_dir = f->data[i],
        .node_name = f->name[i],
        .bind_addr = f->bind[i],
        .rpc_port = f->rpc[i],
        .server_tls_cert_file = cert(c),
        .server_tls_key_file = cert(k),
        .server_tls_ca_file = cert("ca.pem"),
        .peer_tls_cert_file = cert(c),
        .peer_tls_key_file = cert(k),
        .peer_tls_ca_file = cert("ca.pem"),
        .acl_model_file = cert("model.conf"),
        .acl_policy_file = f->policy,
        .fast = true,
        .log = {.sync = PLOG_SYNC_INTERVAL},
    };
}

static void start(struct fixture *f, int i, int join)
{
    const char *seeds[1] = {join >= 0 ? f->bind[join] : NULL};
    plog_agent_config ac = config_of(f, i);
    ac.start_join_addrs = seeds;
    ac.njoin = join >= 0 ? 1 : 0;
    char err[512];
    if (plog_agent_open(&ac, &f->a[i], err, sizeof err) != PLOG_OK)
        fail_msg("agent %s: %s", f->name[i], err);
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    plog_test_tmpdir("agent", f->dir, sizeof f->dir);
    snprintf(f->policy, sizeof f->policy, "%s/policy.csv", f->dir);
    FILE *p = fopen(f->policy, "w");
    assert_non_null(p);
    fprintf(p, "p, root, *, produce\np, root, *, consume\n");
    for (int i = 0; i < N; i++) {
        snprintf(f->name[i], sizeof f->name[i], "node%d", i + 1);
        snprintf(f->data[i], sizeof f->data[i], "%s/%s", f->dir, f->name[i]);
        snprintf(f->bind[i], sizeof f->bind[i], "127.0.0.1:%d", plog_test_free_port());
        f->rpc[i] = (uint16_t)plog_test_free_port();
        fprintf(p, "p, %s, *, gossip\np, %s, *, consume\n", f->name[i], f->name[i]);
    }
    fclose(p);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    /* Everyone leaves before anyone closes, so nobody is dialing a closing node
     * (nng 1.5.2 leaks a TLS connection set up to a peer that closes meanwhile). */
    for (int i = 0; i < N; i++)
        if (f->a[i] != NULL)
            plog_discovery_leave(plog_agent_discovery(f->a[i]));
    for (int i = N - 1; i >= 0; i--)
        assert_plog_ok(plog_agent_shutdown(f->a[i]));
    plog_test_rmrf(f->dir);
    free(f);
    return 0;
}

static plog_client *client(struct fixture *f, int i)
{
    char err[PLOG_TLS_ERRMSG_SIZE];
    plog_client_config cfg = {.timeout_ms = 5000};
    if (plog_tls_config_client(cert("root-client.pem"), cert("root-client-key.pem"), cert("ca.pem"),
                               "127.0.0.1", &cfg.tls, err, sizeof err) != 0)
        fail_msg("%s", err);
    plog_client *c;
    plog_rpc_status st;
    int rv = plog_client_open(plog_agent_rpc_addr(f->a[i]), &cfg, &c, &st);
    nng_tls_config_free(cfg.tls);
    if (rv != PLOG_STATUS_OK)
        fail_msg("client: %s", st.msg);
    return c;
}

struct read_arg {
    plog_client *c;
    uint64_t off;
    const char *want;
};

static bool readable(void *arg)
{
    struct read_arg *a = arg;
    Log__V1__Record *rec;
    plog_rpc_status st;
    if (plog_client_consume(a->c, a->off, &rec, &st) != PLOG_STATUS_OK)
        return false;
    bool ok = rec->value.len == strlen(a->want) && memcmp(rec->value.data, a->want, rec->value.len) == 0;
    log__v1__record__free_unpacked(rec, NULL);
    return ok;
}

static bool all_alive(void *arg)
{
    struct fixture *f = arg;
    for (int i = 0; i < N; i++) {
        plog_discovery_stats st;
        plog_discovery_stats_get(plog_agent_discovery(f->a[i]), &st);
        if (st.alive != N)
            return false;
    }
    return true;
}

/* start_three starts three agents joining the first and waits until each sees all
 * three alive (the book's tests wait for the joins too). */
static void start_three(struct fixture *f)
{
    start(f, 0, -1);
    start(f, 1, 0);
    start(f, 2, 0);
    assert_true(plog_test_wait_until(all_alive, f, 3000));
}

/* Go: TestAgent. */
static void test_agent_record_produced_on_one_is_readable_on_the_others_within_3s(void **state)
{
    struct fixture *f = *state;
    start_three(f);
    plog_client *c0 = client(f, 0);
    uint64_t off;
    plog_rpc_status st;
    assert_int_equal(plog_client_produce(c0, "foo", 3, &off, &st), PLOG_STATUS_OK);
    assert_int_equal(off, 0);
    for (int i = 1; i < N; i++) {
        plog_client *c = client(f, i);
        struct read_arg a = {c, 0, "foo"};
        assert_true(plog_test_wait_until(readable, &a, 3000));
        /* The copy knows where it came from. */
        Log__V1__Record *rec;
        assert_int_equal(plog_client_consume(c, 0, &rec, &st), PLOG_STATUS_OK);
        assert_string_equal(rec->origin, "node1");
        assert_int_equal(rec->origin_offset, 0);
        log__v1__record__free_unpacked(rec, NULL);
        plog_client_close(c);
    }
    /* The book's version replicates the record back to the first agent (the
     * test's "Consume(offset 1)" would find a copy); this one never does. */
    plog_test_sleep_ms(1000);
    for (int i = 0; i < N; i++)
        assert_int_equal(plog_log_next_offset(plog_agent_log(f->a[i])), 1);
    Log__V1__Record *rec;
    assert_int_equal(plog_client_consume(c0, 1, &rec, &st), PLOG_STATUS_OUT_OF_RANGE);
    plog_client_close(c0);
}

struct repl_arg {
    plog_replicator *r;
    uint64_t records, errors; /* wanted at least */
};

/* repl_reached: a's records were copied, or (any) a's errors counted. */
static bool repl_reached(void *arg)
{
    struct repl_arg *a = arg;
    plog_replicator_stats st;
    plog_replicator_stats_get(a->r, &st);
    return a->records > 0 ? st.records >= a->records : st.errors >= a->errors || st.records > 0;
}

/* open_replicator opens a replicator as node2 on the log in f->dir/name (fresh
 * unless a test wrote it), with shared_cn as the nodes' shared server
 * certificate CN (NULL: none) and logger lg (NULL: none). */
static plog_replicator *open_replicator(struct fixture *f, const char *name, const char *shared_cn,
                                        plog_logger *lg, plog_log **logp)
{
    char dir[192], err[256];
    snprintf(dir, sizeof dir, "%s/%s", f->dir, name);
    plog_log_config lc = {0};
    assert_plog_ok(plog_log_open(dir, &lc, logp));
    plog_replicator_config rc = {.self = "node2",
                                 .shared_server_cn = shared_cn,
                                 .cert_file = cert("node2.pem"),
                                 .key_file = cert("node2-key.pem"),
                                 .ca_file = cert("ca.pem"),
                                 .logger = lg};
    plog_replicator *r;
    if (plog_replicator_open(*logp, &rc, &r, err, sizeof err) != PLOG_OK)
        fail_msg("replicator: %s", err);
    return r;
}

/* A member's server must be that member: a replicator told that node3 is at
 * node1's RPC address (what one forged gossip message claimed) copies nothing
 * from it, while the same replicator copies from node1 under node1's name.
 * Before, it copied node1's record as node3's: a black-box run forged such a
 * member, and every node's log held every record twice. With a server
 * certificate the nodes share (here: as if node1's were), the check cannot tell
 * them apart and copies as before. */
static void test_agent_replicator_copies_only_from_the_member_itself(void **state)
{
    struct fixture *f = *state;
    start(f, 0, -1);
    plog_client *c0 = client(f, 0);
    uint64_t off;
    plog_rpc_status st;
    assert_int_equal(plog_client_produce(c0, "foo", 3, &off, &st), PLOG_STATUS_OK);
    plog_client_close(c0);
    plog_log *log;
    plog_replicator *r = open_replicator(f, "copy", NULL, NULL, &log);
    assert_plog_ok(plog_replicator_join(r, "node3", plog_agent_rpc_addr(f->a[0])));
    struct repl_arg refused = {r, 0, 2}; /* two polls answered by node1, refused (or a copy) */
    if (!plog_test_wait_until(repl_reached, &refused, 10000))
        fail_msg("no poll of node1's server as node3 within 10 s");
    plog_replicator_stats rs;
    plog_replicator_stats_get(r, &rs);
    if (rs.records != 0 || plog_log_next_offset(log) != 0)
        fail_msg("from node1's server as node3: %llu records copied", (unsigned long long)rs.records);
    assert_plog_ok(plog_replicator_join(r, "node1", plog_agent_rpc_addr(f->a[0])));
    struct repl_arg one = {r, 1, 0};
    if (!plog_test_wait_until(repl_reached, &one, 10000))
        fail_msg("nothing copied from node1 as node1 within 10 s");
    plog_replicator_close(r);
    assert_plog_ok(plog_log_close(log));
    r = open_replicator(f, "shared", "node1", NULL, &log);
    assert_plog_ok(plog_replicator_join(r, "node3", plog_agent_rpc_addr(f->a[0])));
    struct repl_arg shared = {r, 1, 0};
    if (!plog_test_wait_until(repl_reached, &shared, 10000))
        fail_msg("nothing copied through a shared server certificate within 10 s");
    plog_replicator_close(r);
    assert_plog_ok(plog_log_close(log));
}

struct grep_arg {
    const char *path, *want;
};

static bool file_has(void *arg)
{
    struct grep_arg *g = arg;
    char buf[8192];
    FILE *fp = fopen(g->path, "r");
    if (fp == NULL)
        return false;
    size_t n = fread(buf, 1, sizeof buf - 1, fp);
    fclose(fp);
    buf[n] = '\0';
    return strstr(buf, g->want) != NULL;
}

/* A member whose log ends below what was copied from it lost its data: node1
 * came back under its name with an empty data directory, and the offsets of its
 * next records were copied before, so those records are never copied. Before,
 * nothing said so: a black-box run of five nodes lost the records produced on a
 * wiped node1 without a line anywhere. Here node2's log holds node1's offsets
 * 0..4, and node1 serves an empty log. */
static void test_agent_replicator_reports_a_member_whose_log_is_shorter_than_what_was_copied(void **state)
{
    struct fixture *f = *state;
    start(f, 0, -1);
    char dir[192], path[192];
    snprintf(dir, sizeof dir, "%s/lost", f->dir);
    snprintf(path, sizeof path, "%s/replicator.log", f->dir);
    plog_log_config lc = {0};
    plog_log *log;
    assert_plog_ok(plog_log_open(dir, &lc, &log));
    for (uint64_t i = 0; i < 5; i++) {
        Log__V1__Record rec = LOG__V1__RECORD__INIT;
        rec.value.data = (uint8_t *)"old";
        rec.value.len = 3;
        rec.origin = "node1";
        rec.origin_offset = i;
        uint64_t off;
        assert_plog_ok(plog_log_append(log, &rec, &off));
    }
    assert_plog_ok(plog_log_close(log));
    FILE *lf = fopen(path, "w");
    assert_non_null(lf);
    plog_logger *lg;
    assert_plog_ok(plog_logger_new(fileno(lf), PLOG_LOGGER_INFO, &lg));
    plog_replicator *r = open_replicator(f, "lost", NULL, lg, &log);
    assert_plog_ok(plog_replicator_join(r, "node1", plog_agent_rpc_addr(f->a[0])));
    struct grep_arg g = {path,
                         "msg=\"replication: the member's log is shorter than what was copied from it\" "
                         "origin=node1 end_offset=0 copied=5"};
    bool told = plog_test_wait_until(file_has, &g, 10000);
    plog_replicator_close(r);
    assert_plog_ok(plog_log_close(log));
    plog_logger_free(lg);
    fclose(lf);
    if (!told)
        fail_msg("no line in %s within 10 s saying node1's log is shorter than what was copied", path);
}

struct left_arg {
    plog_agent *a;
    const char *name;
};

static bool has_left(void *arg)
{
    struct left_arg *l = arg;
    plog_membership_member *v;
    size_t n;
    if (plog_discovery_members(plog_agent_discovery(l->a), &v, &n) != PLOG_OK)
        return false;
    bool left = false;
    for (size_t i = 0; i < n; i++)
        if (strcmp(v[i].name, l->name) == 0 && v[i].status == PLOG_GOSSIP_LEFT)
            left = true;
    free(v);
    return left;
}

/* Go: TestMembership's leave, through the agent: shutdown leaves gracefully. */
static void test_agent_shutdown_is_seen_as_a_leave_within_3s(void **state)
{
    struct fixture *f = *state;
    start_three(f);
    plog_replicator_stats rs;
    for (int t = 0; t < 300; t++) {
        plog_replicator_stats_get(plog_agent_replicator(f->a[0]), &rs);
        if (rs.active == 2)
            break;
        plog_test_sleep_ms(10);
    }
    assert_int_equal(rs.active, 2);
    assert_plog_ok(plog_agent_shutdown(f->a[2]));
    f->a[2] = NULL;
    for (int i = 0; i < 2; i++) {
        struct left_arg l = {f->a[i], "node3"};
        if (!plog_test_wait_until(has_left, &l, 3000)) {
            plog_membership_member *v;
            size_t n;
            assert_plog_ok(plog_discovery_members(plog_agent_discovery(f->a[i]), &v, &n));
            for (size_t k = 0; k < n; k++)
                print_message("node%d sees %s status %d incarnation %llu\n", i + 1, v[k].name, v[k].status,
                              (unsigned long long)v[k].incarnation);
            free(v);
            fail_msg("node%d does not see node3 leave", i + 1);
        }
    }
    /* The leave stopped replication from node3. */
    for (int t = 0; t < 300; t++) {
        plog_replicator_stats_get(plog_agent_replicator(f->a[0]), &rs);
        if (rs.active == 1)
            break;
        plog_test_sleep_ms(10);
    }
    assert_int_equal(rs.active, 1);
}

/* The replicator's position comes from the log: after a restart node2 copies only
 * what it did not have, and node1's records arrive exactly once. */
static void test_agent_restart_resumes_replication_without_duplicates(void **state)
{
    struct fixture *f = *state;
    start(f, 0, -1);
    start(f, 1, 0);
    plog_client *c0 = client(f, 0);
    plog_rpc_status st;
    uint64_t off;
    for (int i = 0; i < 10; i++)
        assert_int_equal(plog_client_produce(c0, "x", 1, &off, &st), PLOG_STATUS_OK);
    plog_client *c1 = client(f, 1);
    struct read_arg a = {c1, 9, "x"};
    assert_true(plog_test_wait_until(readable, &a, 3000));
    plog_client_close(c1);
    uint64_t pos;
    plog_replicator_position(plog_agent_replicator(f->a[1]), "node1", &pos);
    assert_int_equal(pos, 10);
    assert_plog_ok(plog_agent_shutdown(f->a[1]));
    f->a[1] = NULL;
    for (int i = 0; i < 5; i++)
        assert_int_equal(plog_client_produce(c0, "y", 1, &off, &st), PLOG_STATUS_OK);
    start(f, 1, 0);
    /* Rebuilt from the log at open, before anything was copied again. */
    plog_replicator_position(plog_agent_replicator(f->a[1]), "node1", &pos);
    assert_true(pos == 10 || pos == 15);
    c1 = client(f, 1);
    a = (struct read_arg){c1, 14, "y"};
    assert_true(plog_test_wait_until(readable, &a, 5000));
    plog_test_sleep_ms(500);
    assert_int_equal(plog_log_next_offset(plog_agent_log(f->a[1])), 15);
    plog_client_close(c1);
    plog_client_close(c0);
}

/* A node restarted without join addresses rejoins the members it saw before
 * (DATA_DIR/members, rejoin.h). After a graceful leave the others never
 * reconnect to it: without the list it would stay alone. */
static void test_agent_restarted_without_join_addresses_rejoins_the_members_it_saw(void **state)
{
    struct fixture *f = *state;
    start_three(f);
    assert_plog_ok(plog_agent_shutdown(f->a[0]));
    f->a[0] = NULL;
    for (int i = 1; i < N; i++) {
        struct left_arg l = {f->a[i], "node1"};
        assert_true(plog_test_wait_until(has_left, &l, 3000));
    }
    char path[160], list[1024] = "";
    snprintf(path, sizeof path, "%s/members", f->data[0]);
    FILE *fp = fopen(path, "r");
    assert_non_null(fp);
    size_t len = fread(list, 1, sizeof list - 1, fp);
    fclose(fp);
    list[len] = '\0';
    for (int i = 1; i < N; i++) {
        char line[96];
        snprintf(line, sizeof line, "%s tls+tcp://%s\n", f->name[i], f->bind[i]);
        if (strstr(list, line) == NULL)
            fail_msg("%s does not hold \"%s\": \"%s\"", path, f->name[i], list);
    }
    start(f, 0, -1);
    assert_true(plog_test_wait_until(all_alive, f, 5000));
}

/* node2_on_node1_dir: node2's configuration, its data directory node1's. */
static plog_agent_config node2_on_node1_dir(struct fixture *f)
{
    snprintf(f->data[1], sizeof f->data[1], "%s", f->data[0]);
    return config_of(f, 1);
}

static void test_agent_refuses_a_data_dir_of_another_node(void **state)
{
    struct fixture *f = *state;
    start(f, 0, -1);
    assert_plog_ok(plog_agent_shutdown(f->a[0]));
    f->a[0] = NULL;
    plog_agent_config ac = node2_on_node1_dir(f);
    char err[512] = "";
    plog_agent *a;
    assert_int_equal(plog_agent_open(&ac, &a, err, sizeof err), PLOG_EINVAL);
    assert_non_null(strstr(err, "belongs to node \"node1\", not \"node2\""));
}

/* A damaged node-name file is reported as such, and the node does not start:
 * empty, or a directory in its place. Before, both said the data directory
 * belonged to node "", as if another node had made it. */
static void test_agent_refuses_a_damaged_node_name_file_saying_so(void **state)
{
    struct fixture *f = *state;
    start(f, 0, -1);
    assert_plog_ok(plog_agent_shutdown(f->a[0]));
    f->a[0] = NULL;
    char path[192], err[512] = "";
    snprintf(path, sizeof path, "%s/node-name", f->data[0]);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fclose(fp);
    plog_agent_config ac = config_of(f, 0);
    plog_agent *a;
    assert_int_equal(plog_agent_open(&ac, &a, err, sizeof err), PLOG_ECORRUPT);
    if (strstr(err, "node-name is empty (damaged)") == NULL)
        fail_msg("empty node-name: %s", err);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(mkdir(path, 0755), 0);
    err[0] = '\0';
    assert_int_equal(plog_agent_open(&ac, &a, err, sizeof err), PLOG_EIO);
    if (strstr(err, "node-name: Is a directory") == NULL)
        fail_msg("a directory as node-name: %s", err);
}

/* A second node started on a running node's data directory (a second `make
 * run`, a mistyped port) fails before it reads or writes a file there; the
 * running node serves on. */
static void test_agent_refuses_a_data_dir_in_use(void **state)
{
    struct fixture *f = *state;
    start(f, 0, -1);
    plog_agent_config ac = node2_on_node1_dir(f);
    char err[512] = "", want[sizeof f->data[0] + 64];
    plog_agent *a = NULL;
    assert_int_equal(plog_agent_open(&ac, &a, err, sizeof err), PLOG_EIO);
    assert_null(a);
    snprintf(want, sizeof want, "data directory %s is in use by another process", f->data[0]);
    if (strstr(err, want) == NULL)
        fail_msg("err: %s", err);
    plog_client *c0 = client(f, 0);
    uint64_t off;
    plog_rpc_status st;
    assert_int_equal(plog_client_produce(c0, "foo", 3, &off, &st), PLOG_STATUS_OK);
    struct read_arg r = {c0, off, "foo"};
    assert_true(readable(&r));
    plog_client_close(c0);
}

/* The failed hook of a node, for test_agent_second_node_of_a_name_is_told_it_is_taken. */
struct failure {
    pthread_mutex_t mu;
    char why[256];
};

static void record_failure(void *arg, const char *why)
{
    struct failure *fl = arg;
    pthread_mutex_lock(&fl->mu);
    snprintf(fl->why, sizeof fl->why, "%s", why);
    pthread_mutex_unlock(&fl->mu);
}

static bool failed(void *arg)
{
    struct failure *fl = arg;
    pthread_mutex_lock(&fl->mu);
    bool yes = fl->why[0] != '\0';
    pthread_mutex_unlock(&fl->mu);
    return yes;
}

static bool node2_alive_at_its_address(void *arg)
{
    struct fixture *f = arg;
    plog_membership_member *mb;
    size_t n;
    char want[64];
    snprintf(want, sizeof want, "tls+tcp://%s", f->bind[1]);
    assert_plog_ok(plog_discovery_members(plog_agent_discovery(f->a[0]), &mb, &n));
    bool yes = false;
    for (size_t i = 0; i < n; i++)
        if (strcmp(mb[i].name, "node2") == 0)
            yes = mb[i].status == PLOG_GOSSIP_ALIVE && strcmp(mb[i].addr, want) == 0;
    free(mb);
    return yes;
}

/* A second process started under a running node's name (its own address and
 * data directory) learns at its join that the name is taken (its failed hook
 * says so, naming the holder's address), and the cluster keeps the first one. */
static void test_agent_second_node_of_a_name_is_told_it_is_taken(void **state)
{
    struct fixture *f = *state;
    start(f, 0, -1);
    start(f, 1, 0);
    assert_true(plog_test_wait_until(node2_alive_at_its_address, f, 3000));
    struct failure fl = {.mu = PTHREAD_MUTEX_INITIALIZER};
    char data[160], bind[32];
    snprintf(data, sizeof data, "%s/node2-again", f->dir);
    snprintf(bind, sizeof bind, "127.0.0.1:%d", plog_test_free_port());
    const char *seeds[1] = {f->bind[0]};
    plog_agent_config ac = config_of(f, 1);
    ac.data_dir = data;
    ac.bind_addr = bind;
    ac.rpc_port = (uint16_t)plog_test_free_port();
    ac.start_join_addrs = seeds;
    ac.njoin = 1;
    ac.failed = record_failure;
    ac.failed_arg = &fl;
    plog_agent *dup = NULL;
    char err[512];
    if (plog_agent_open(&ac, &dup, err, sizeof err) != PLOG_OK)
        fail_msg("second node2: %s", err);
    bool told = plog_test_wait_until(failed, &fl, 5000);
    plog_agent_kill(dup);
    assert_true(told);
    char want[128];
    snprintf(want, sizeof want, "node name node2 is taken: a node of that name is alive at tls+tcp://%s",
             f->bind[1]);
    assert_string_equal(fl.why, want);
    assert_true(node2_alive_at_its_address(f));
}

static void ignore_gossip(void *arg, const char *from, const uint8_t *buf, size_t len)
{
    (void)arg, (void)from, (void)buf, (void)len;
}

/* read_all returns the file at path, NUL-terminated (the caller frees it). */
static char *read_all(const char *path)
{
    FILE *fp = fopen(path, "r");
    assert_non_null(fp);
    size_t cap = 1 << 16, n = 0, got;
    char *buf = malloc(cap + 1);
    while ((got = fread(buf + n, 1, cap - n, fp)) > 0) {
        n += got;
        if (n == cap)
            buf = realloc(buf, (cap *= 2) + 1);
    }
    fclose(fp);
    buf[n] = '\0';
    return buf;
}

/* open_logged opens node1 with its log in DIR/node1.log (its path in path): the
 * caller shuts it down, then frees *lg and closes *lf. */
static void open_logged(struct fixture *f, char *path, size_t size, FILE **lf, plog_logger **lg)
{
    snprintf(path, size, "%s/node1.log", f->dir);
    *lf = fopen(path, "w");
    assert_non_null(*lf);
    assert_plog_ok(plog_logger_new(fileno(*lf), PLOG_LOGGER_INFO, lg));
    plog_agent_config ac = config_of(f, 0);
    ac.logger = *lg;
    char err[512];
    if (plog_agent_open(&ac, &f->a[0], err, sizeof err) != PLOG_OK)
        fail_msg("agent node1: %s", err);
}

/* A member's tags come from gossip, where a value may be any bytes but NUL: the
 * agent's member line quotes and escapes rpc_addr as the logger does any value.
 * Before, the line was printf'd: node2's certificate (the policy lets it
 * gossip) telling node1 of a member "evil" with rpc_addr "127.0.0.1:1\nlevel=error
 * msg=forged" made a line of its own in node1's log. */
static void test_agent_member_line_escapes_a_gossiped_rpc_addr(void **state)
{
    struct fixture *f = *state;
    char path[192], err[512], bind[32];
    FILE *lf;
    plog_logger *lg;
    open_logged(f, path, sizeof path, &lf, &lg);

    snprintf(bind, sizeof bind, "127.0.0.1:%d", plog_test_free_port());
    plog_transport_config tc = {
        .bind_addr = bind,
        .cert_file = cert("node2.pem"),
        .key_file = cert("node2-key.pem"),
        .ca_file = cert("ca.pem"),
        .recv = ignore_gossip,
    };
    plog_transport *t;
    if (plog_transport_open(&tc, &t, err, sizeof err) != PLOG_OK)
        fail_msg("transport as node2: %s", err);
    plog_gossip_tag tag = {"rpc_addr", "127.0.0.1:1\nlevel=error msg=forged"};
    plog_gossip_state evil = {.status = PLOG_GOSSIP_ALIVE,
                              .incarnation = 5,
                              .name = "evil",
                              .addr = "tls+tcp://127.0.0.1:1",
                              .tags = &tag,
                              .ntags = 1};
    plog_gossip_msg m = {.type = PLOG_GOSSIP_GOSSIP,
                         .from = "node2",
                         .from_addr = "tls+tcp://127.0.0.1:1", /* nothing answers there */
                         .states = &evil,
                         .nstates = 1};
    uint8_t *buf;
    size_t len;
    assert_plog_ok(plog_gossip_encode_alloc(&m, &buf, &len));
    struct grep_arg g = {path, "name=evil"};
    bool joined = false;
    for (int round = 0; round < 50 && !joined; round++) { /* the first may wait for the connection */
        plog_transport_send(t, f->bind[0], buf, len);
        joined = plog_test_wait_until(file_has, &g, 100);
    }
    plog_transport_close(t);
    free(buf);
    assert_plog_ok(plog_agent_shutdown(f->a[0])); /* before its logger goes */
    f->a[0] = NULL;
    plog_logger_free(lg);
    fclose(lf);
    assert_true(joined);
    char *log = read_all(path);
    if (strstr(log, "\nlevel=error msg=forged") != NULL ||
        strstr(log, "rpc_addr=\"127.0.0.1:1\\nlevel=error msg=forged\"") == NULL)
        fail_msg("the member line does not escape the rpc_addr:\n%s", log);
    free(log);
}

/* A members file with a line that does not parse: the node starts, skips it and
 * says how many lines it skipped, without an err (before: err=ok beside it). */
static void test_agent_says_how_many_remembered_lines_it_skipped(void **state)
{
    struct fixture *f = *state;
    start(f, 0, -1);
    assert_plog_ok(plog_agent_shutdown(f->a[0]));
    f->a[0] = NULL;
    char path[192];
    snprintf(path, sizeof path, "%s/members", f->data[0]);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs("garbage\n", fp);
    fclose(fp);
    FILE *lf;
    plog_logger *lg;
    open_logged(f, path, sizeof path, &lf, &lg);
    assert_plog_ok(plog_agent_shutdown(f->a[0])); /* before its logger goes */
    f->a[0] = NULL;
    plog_logger_free(lg);
    fclose(lf);
    char *log = read_all(path);
    char *line = strstr(log, "msg=\"remembered members not all read\"");
    char *end = line != NULL ? strchr(line, '\n') : NULL;
    if (end == NULL)
        fail_msg("no line about the members file:\n%s", log);
    *end = '\0';
    if (strstr(line, "lines_skipped=1") == NULL || strstr(line, "err=") != NULL)
        fail_msg("want one skipped line and no err: %s", line);
    free(log);
}

/* The directories fsynced while the seam below records them (the log's I/O
 * seam, internal/log/io.h, which plog_log_mkdirs goes through too). */
static struct {
    pthread_mutex_t mu;
    struct stat st[32];
    int n;
} synced = {.mu = PTHREAD_MUTEX_INITIALIZER};

static int fsync_recording(int fd)
{
    struct stat st;
    if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
        pthread_mutex_lock(&synced.mu);
        if (synced.n < 32)
            synced.st[synced.n++] = st;
        pthread_mutex_unlock(&synced.mu);
    }
    return plog_io_real()->fsync(fd);
}

static bool dir_synced(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    pthread_mutex_lock(&synced.mu);
    bool found = false;
    for (int i = 0; i < synced.n && !found; i++)
        found = synced.st[i].st_dev == st.st_dev && synced.st[i].st_ino == st.st_ino;
    pthread_mutex_unlock(&synced.mu);
    return found;
}

/* A data directory the agent creates, and each missing parent, is a durable name
 * (its parent fsynced) before the agent serves: before, the agent made them with
 * plain mkdir, so the log found its parent there and fsynced only that, and a
 * power loss could take the directory back with records acknowledged in it. */
static void test_agent_makes_its_new_data_directory_durable(void **state)
{
    struct fixture *f = *state;
    char parent[96];
    snprintf(parent, sizeof parent, "%s/new", f->dir);
    snprintf(f->data[0], sizeof f->data[0], "%s/node1", parent); /* neither exists */
    plog_io io = *plog_io_real();
    io.fsync = fsync_recording;
    synced.n = 0;
    plog_io_set(&io);
    start(f, 0, -1);
    plog_io_set(NULL);
    assert_true(dir_synced(parent)); /* holds the name node1 */
    assert_true(dir_synced(f->dir)); /* holds the name new */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_agent_record_produced_on_one_is_readable_on_the_others_within_3s,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_agent_replicator_copies_only_from_the_member_itself, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_agent_replicator_reports_a_member_whose_log_is_shorter_than_what_was_copied, setup,
            teardown),
        cmocka_unit_test_setup_teardown(test_agent_shutdown_is_seen_as_a_leave_within_3s, setup, teardown),
        cmocka_unit_test_setup_teardown(test_agent_makes_its_new_data_directory_durable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_agent_restart_resumes_replication_without_duplicates, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_agent_restarted_without_join_addresses_rejoins_the_members_it_saw, setup, teardown),
        cmocka_unit_test_setup_teardown(test_agent_refuses_a_data_dir_of_another_node, setup, teardown),
        cmocka_unit_test_setup_teardown(test_agent_refuses_a_damaged_node_name_file_saying_so, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_agent_refuses_a_data_dir_in_use, setup, teardown),
        cmocka_unit_test_setup_teardown(test_agent_second_node_of_a_name_is_told_it_is_taken, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_agent_member_line_escapes_a_gossiped_rpc_addr, setup, teardown),
        cmocka_unit_test_setup_teardown(test_agent_says_how_many_remembered_lines_it_skipped, setup,
                                        teardown),
    };
    return cmocka_run_group_tests_name("agent", tests, NULL, NULL);
}
