/* agent_test.c - the book's agent test, in one process (Go: agent_test.go
 * TestAgent, chapters 8 and 9): three agents, the first bootstrapping Raft, the
 * others joining through it; a record produced on the leader is readable on the
 * followers within 3 s and not copied back; followers refuse produces naming the
 * leader; GetServers; a graceful leave removes the member; a leader's shutdown
 * hands over. Plus: RemoveServer takes out a server gone for good, an agent
 * refuses a data directory made under another node name, a node restarted
 * without join addresses rejoins the members it saw, the directories an agent
 * makes are durable, and a gossiped tag cannot forge a line of its log. */
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
#include "internal/rpc/envelope.h"
#include "internal/err/err.h"
#include "internal/log/io.h"
#include "internal/tls/config.h"
#include "testing/testing.h"

#define N TC_AGENTS

static plog_client *client(struct tc_agents *f, int i)
{
    char err[PLOG_TLS_ERRMSG_SIZE];
    plog_client_config cfg = {.timeout_ms = 5000};
    if (plog_tls_config_client(tc_cert("root-client.pem"), tc_cert("root-client-key.pem"), tc_cert("ca.pem"),
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

/* servers asks node i for GetServers; *leader = index of the leader (-1: none). */
static size_t servers(struct tc_agents *f, int i, int *leader, size_t *voters)
{
    plog_client *c = client(f, i);
    Log__V1__GetServersRequest req = LOG__V1__GET_SERVERS_REQUEST__INIT;
    nng_msg *reply;
    plog_rpc_reply rp;
    plog_rpc_status st;
    size_t n = 0;
    *leader = -1;
    *voters = 0;
    if (plog_client_call(c, plog_rpc_method_name(PLOG_METHOD_GET_SERVERS), &req.base, 0, 0, &reply, &rp,
                         &st) == PLOG_STATUS_OK) {
        Log__V1__GetServersResponse *resp = log__v1__get_servers_response__unpack(NULL, rp.body_len, rp.body);
        nng_msg_free(reply);
        assert_non_null(resp);
        n = resp->n_servers;
        for (size_t k = 0; k < n; k++) {
            const Log__V1__Server *sv = resp->servers[k];
            *voters += sv->is_voter;
            for (int j = 0; j < N; j++) {
                char want[32];
                snprintf(want, sizeof want, "127.0.0.1:%u", (unsigned)f->rpc[j]);
                if (strcmp(sv->id, f->name[j]) == 0) {
                    assert_string_equal(sv->rpc_addr, want);
                    if (sv->is_leader)
                        *leader = j;
                }
            }
        }
        log__v1__get_servers_response__free_unpacked(resp, NULL);
    }
    plog_client_close(c);
    return n;
}

struct voters_arg {
    struct tc_agents *f;
    int node;
    size_t want;
};

static bool all_voters(void *arg)
{
    struct voters_arg *a = arg;
    int leader;
    size_t voters;
    size_t n = servers(a->f, a->node, &leader, &voters);
    return n == a->want && voters == a->want && leader >= 0;
}

static void start_three(struct tc_agents *f)
{
    tc_agents_start(f, 0, -1);
    tc_agents_start(f, 1, 0);
    tc_agents_start(f, 2, 0);
    struct voters_arg v = {f, 0, 3};
    assert_true(plog_test_wait_until(all_voters, &v, 10000));
}

/* Go: TestAgent (chapter 8): produce on the leader, consume on the followers; the
 * leader does not get the record back from them; a follower refuses a produce
 * and names the leader. */
static void test_agent_produce_on_leader_is_readable_on_followers_within_3s(void **state)
{
    struct tc_agents *f = *state;
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
        assert_int_equal(plog_client_produce(c, "bar", 3, &off, &st), PLOG_STATUS_FAILED_PRECONDITION);
        char want[64];
        snprintf(want, sizeof want, "not leader; leader at 127.0.0.1:%u", (unsigned)f->rpc[0]);
        assert_string_equal(st.msg, want);
        plog_client_close(c);
    }
    plog_test_sleep_ms(500);
    Log__V1__Record *rec;
    assert_int_equal(plog_client_consume(c0, 1, &rec, &st), PLOG_STATUS_OUT_OF_RANGE);
    for (int i = 0; i < N; i++)
        assert_int_equal(plog_log_next_offset(plog_agent_log(f->a[i])), 1);
    plog_client_close(c0);
}

/* Go: TestGetServers (chapter 9): every node reports the three servers, their
 * RPC addresses and the one leader. */
static void test_agent_get_servers_names_every_server_and_the_leader(void **state)
{
    struct tc_agents *f = *state;
    start_three(f);
    for (int i = 0; i < N; i++) {
        struct voters_arg v = {f, i, 3};
        assert_true(plog_test_wait_until(all_voters, &v, 5000));
        int leader;
        size_t voters;
        assert_int_equal(servers(f, i, &leader, &voters), 3);
        assert_int_equal(leader, 0);
    }
}

/* remove_server asks node i, as the client certificate who (its file name's
 * stem), to remove the server name. */
static int remove_server(struct tc_agents *f, int i, const char *who, const char *name, plog_rpc_status *st)
{
    char cert[64], key[64], err[PLOG_TLS_ERRMSG_SIZE];
    snprintf(cert, sizeof cert, "%s.pem", who);
    snprintf(key, sizeof key, "%s-key.pem", who);
    plog_client_config cfg = {.timeout_ms = 5000};
    if (plog_tls_config_client(tc_cert(cert), tc_cert(key), tc_cert("ca.pem"), "127.0.0.1", &cfg.tls, err,
                               sizeof err) != 0)
        fail_msg("%s", err);
    plog_client *c;
    int rv = plog_client_open(plog_agent_rpc_addr(f->a[i]), &cfg, &c, st);
    nng_tls_config_free(cfg.tls);
    if (rv != PLOG_STATUS_OK)
        fail_msg("client: %s", st->msg);
    Log__V1__RemoveServerRequest req = LOG__V1__REMOVE_SERVER_REQUEST__INIT;
    req.id = (char *)name;
    nng_msg *reply;
    plog_rpc_reply rp;
    int code = plog_client_call(c, plog_rpc_method_name(PLOG_METHOD_REMOVE_SERVER), &req.base, 0, 0, &reply,
                                &rp, st);
    if (code == PLOG_STATUS_OK)
        nng_msg_free(reply);
    plog_client_close(c);
    return code;
}

static void assert_refused(int code, int want, const plog_rpc_status *st, const char *says)
{
    if (code != want || strstr(st->msg, says) == NULL)
        fail_msg("want %d saying \"%s\", got %d: %s", want, says, code, st->msg);
}

struct removed_arg {
    struct tc_agents *f;
    const char *name;
};

static bool removed(void *arg)
{
    struct removed_arg *r = arg;
    plog_rpc_status st;
    return remove_server(r->f, 0, "root-client", r->name, &st) == PLOG_STATUS_OK;
}

/* names_leader: node 1, asked to remove node3, names the leader node 0. */
static bool names_leader(void *arg)
{
    struct tc_agents *f = arg;
    plog_rpc_status st;
    char want[64];
    snprintf(want, sizeof want, "not leader; leader at 127.0.0.1:%u", (unsigned)f->rpc[0]);
    return remove_server(f, 1, "root-client", "node3", &st) == PLOG_STATUS_FAILED_PRECONDITION &&
           strstr(st.msg, want) != NULL;
}

/* RemoveServer (not in the book): an operator with the ACL's "admin" takes a
 * server gone for good out of the configuration. Refused, saying why, for the
 * leader itself, a member that runs, a name no server has, on a follower (which
 * names the leader) and for a caller without "admin". A member stopped without
 * leaving stays a voter until membership declares it dead; then the leader
 * removes it, the two left commit produces, and the server, restarted, joins
 * again as a voter. */
static void test_agent_remove_server_takes_out_a_dead_server_and_a_rejoin_adds_it_back(void **state)
{
    struct tc_agents *f = *state;
    start_three(f);
    plog_rpc_status st;
    assert_refused(remove_server(f, 0, "root-client", "node1", &st), PLOG_STATUS_FAILED_PRECONDITION, &st,
                   "node1 is the leader");
    assert_refused(remove_server(f, 0, "root-client", "node3", &st), PLOG_STATUS_FAILED_PRECONDITION, &st,
                   "membership has not declared node3 dead");
    assert_refused(remove_server(f, 0, "root-client", "node9", &st), PLOG_STATUS_NOT_FOUND, &st,
                   "no server named \"node9\"");
    assert_true(plog_test_wait_until(names_leader, f, 5000)); /* once it heard of the leader's address */
    assert_refused(remove_server(f, 0, "node1", "node3", &st), PLOG_STATUS_PERMISSION_DENIED, &st, "admin");

    assert_plog_ok(plog_agent_stop(f->a[2]));
    f->a[2] = NULL;
    struct removed_arg r = {f, "node3"};
    assert_true(plog_test_wait_until(removed, &r, 15000));
    struct voters_arg v = {f, 0, 2};
    assert_true(plog_test_wait_until(all_voters, &v, 3000));
    plog_client *c0 = client(f, 0);
    uint64_t off;
    assert_int_equal(plog_client_produce(c0, "two", 3, &off, &st), PLOG_STATUS_OK);
    plog_client_close(c0);

    tc_agents_start(f, 2, 0);
    struct voters_arg three = {f, 0, 3};
    assert_true(plog_test_wait_until(all_voters, &three, 10000));
}

/* A member that shuts down leaves gracefully: membership sees a leave within 3 s
 * and the leader removes it from the configuration; the others go on. */
static void test_agent_shutdown_is_a_leave_and_the_leader_removes_it(void **state)
{
    struct tc_agents *f = *state;
    start_three(f);
    assert_plog_ok(plog_agent_shutdown(f->a[2]));
    f->a[2] = NULL;
    for (int i = 0; i < 2; i++) {
        struct left_arg l = {f->a[i], "node3"};
        assert_true(plog_test_wait_until(has_left, &l, 3000));
    }
    struct voters_arg v = {f, 0, 2};
    assert_true(plog_test_wait_until(all_voters, &v, 3000));
    plog_client *c0 = client(f, 0);
    uint64_t off;
    plog_rpc_status st;
    assert_int_equal(plog_client_produce(c0, "after", 5, &off, &st), PLOG_STATUS_OK);
    plog_client_close(c0);
}

/* The leader shuts down: it hands over, a follower leads and takes produces, and
 * every record is still there after the old leader restarts and catches up. */
static void test_agent_leader_shutdown_hands_over_and_restart_catches_up(void **state)
{
    struct tc_agents *f = *state;
    start_three(f);
    plog_client *c0 = client(f, 0);
    plog_rpc_status st;
    uint64_t off;
    for (int i = 0; i < 10; i++)
        assert_int_equal(plog_client_produce(c0, "x", 1, &off, &st), PLOG_STATUS_OK);
    plog_client_close(c0);
    assert_plog_ok(plog_agent_shutdown(f->a[0]));
    f->a[0] = NULL;
    int leader = -1;
    size_t voters;
    for (int t = 0; t < 300 && leader < 1; t++) {
        servers(f, 1, &leader, &voters);
        if (leader < 1)
            plog_test_sleep_ms(10);
    }
    assert_true(leader >= 1);
    plog_client *cl = client(f, leader);
    for (int i = 0; i < 5; i++)
        assert_int_equal(plog_client_produce(cl, "y", 1, &off, &st), PLOG_STATUS_OK);
    assert_int_equal(off, 14);
    plog_client_close(cl);
    tc_agents_start(f, 0, 1);
    plog_client *c = client(f, 0);
    struct read_arg a = {c, 14, "y"};
    assert_true(plog_test_wait_until(readable, &a, 5000));
    plog_client_close(c);
}

/* A node restarted without join addresses (node1, as `make run` starts it)
 * rejoins the members it saw (DATA_DIR/members, rejoin.h). After its graceful
 * leave the leader removed it and nobody reconnects to it: without the list it
 * would stay alone. With it, it is a voter again and its GetServers names every
 * server, with its address, and the leader. */
static void test_agent_restarted_without_join_addresses_rejoins_the_members_it_saw(void **state)
{
    struct tc_agents *f = *state;
    start_three(f);
    assert_plog_ok(plog_agent_shutdown(f->a[0]));
    f->a[0] = NULL;
    for (int i = 1; i < N; i++) {
        struct left_arg l = {f->a[i], "node1"};
        assert_true(plog_test_wait_until(has_left, &l, 3000));
    }
    tc_agents_start(f, 0, -1);
    struct voters_arg v = {f, 0, 3};
    assert_true(plog_test_wait_until(all_voters, &v, 10000));
}

/* consume_lin is a Consume with linearizable set. */
static int consume_lin(plog_client *c, uint64_t off, plog_rpc_status *st, char *value, size_t size)
{
    Log__V1__ConsumeRequest req = LOG__V1__CONSUME_REQUEST__INIT;
    req.offset = off;
    req.linearizable = true;
    nng_msg *reply;
    plog_rpc_reply rp;
    int code =
        plog_client_call(c, plog_rpc_method_name(PLOG_METHOD_CONSUME), &req.base, 0, 0, &reply, &rp, st);
    if (code != PLOG_STATUS_OK)
        return code;
    Log__V1__ConsumeResponse *resp = log__v1__consume_response__unpack(NULL, rp.body_len, rp.body);
    nng_msg_free(reply);
    assert_non_null(resp);
    assert_non_null(resp->record);
    snprintf(value, size, "%.*s", (int)resp->record->value.len, (const char *)resp->record->value.data);
    log__v1__consume_response__free_unpacked(resp, NULL);
    return code;
}

/* --consistency linearizable: on the leader, a Consume right after a produce's
 * acknowledgement finds it (ReadIndex); a follower names the leader instead. */
static void test_agent_linearizable_consume_reads_through_the_leader(void **state)
{
    struct tc_agents *f = *state;
    start_three(f);
    plog_client *c0 = client(f, 0), *c1 = client(f, 1);
    plog_rpc_status st;
    char v[32];
    for (int i = 0; i < 20; i++) {
        char want[16];
        snprintf(want, sizeof want, "lin%d", i);
        uint64_t off;
        assert_int_equal(plog_client_produce(c0, want, strlen(want), &off, &st), PLOG_STATUS_OK);
        assert_int_equal(consume_lin(c0, off, &st, v, sizeof v), PLOG_STATUS_OK);
        assert_string_equal(v, want);
    }
    assert_int_equal(consume_lin(c1, 0, &st, v, sizeof v), PLOG_STATUS_FAILED_PRECONDITION);
    char want[64];
    snprintf(want, sizeof want, "not leader; leader at 127.0.0.1:%u", (unsigned)f->rpc[0]);
    assert_string_equal(st.msg, want);
    plog_client_close(c0);
    plog_client_close(c1);
}

static void test_agent_refuses_a_data_dir_of_another_node(void **state)
{
    struct tc_agents *f = *state;
    tc_agents_start(f, 0, -1);
    assert_plog_ok(plog_agent_shutdown(f->a[0]));
    f->a[0] = NULL;
    snprintf(f->data[1], sizeof f->data[1], "%s", f->data[0]);
    plog_agent_config ac = tc_agents_config(f, 1, 0);
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
    struct tc_agents *f = *state;
    tc_agents_start(f, 0, -1);
    assert_plog_ok(plog_agent_shutdown(f->a[0]));
    f->a[0] = NULL;
    char path[192], err[512] = "";
    snprintf(path, sizeof path, "%s/node-name", f->data[0]);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fclose(fp);
    plog_agent_config ac = tc_agents_config(f, 0, -1);
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
 * run`, a mistyped port) fails before it reads or writes a file there (Raft's
 * state, the record log, the members file); the running node serves on. */
static void test_agent_refuses_a_data_dir_in_use(void **state)
{
    struct tc_agents *f = *state;
    tc_agents_start(f, 0, -1);
    struct voters_arg v = {f, 0, 1};
    assert_true(plog_test_wait_until(all_voters, &v, 10000));
    snprintf(f->data[1], sizeof f->data[1], "%s", f->data[0]);
    plog_agent_config ac = tc_agents_config(f, 1, 0);
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

/* The Raft advertise address is what the node gossips as raft_addr (the others dial
 * it); a malformed one is refused before anything starts. */
static void test_agent_gossips_its_raft_advertise_address_and_refuses_a_bad_one(void **state)
{
    struct tc_agents *f = *state;
    plog_agent_config ac = tc_agents_config(f, 0, -1);
    static const char *const bad[] = {"proxy", "proxy:", ":8402", "proxy:84o2"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char err[512] = "";
        plog_agent *a;
        ac.raft_advertise_addr = bad[i];
        assert_int_equal(plog_agent_open(&ac, &a, err, sizeof err), PLOG_EINVAL);
        assert_non_null(strstr(err, "bad Raft advertise address"));
    }
    ac.raft_advertise_addr = "127.0.0.1:1";
    char err[512] = "";
    assert_plog_ok(plog_agent_open(&ac, &f->a[0], err, sizeof err));
    plog_membership_member *v;
    size_t n;
    assert_plog_ok(plog_discovery_members(plog_agent_discovery(f->a[0]), &v, &n));
    assert_int_equal(n, 1);
    const char *raft = plog_membership_tag(&v[0], "raft_addr");
    assert_non_null(raft);
    assert_string_equal(raft, "127.0.0.1:1");
    free(v);
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

struct grep_arg {
    const char *path, *want;
};

static bool file_has(void *arg)
{
    struct grep_arg *g = arg;
    char *buf = read_all(g->path);
    bool yes = strstr(buf, g->want) != NULL;
    free(buf);
    return yes;
}

/* open_logged opens node1 with its log in DIR/node1.log (its path in path): the
 * caller shuts it down, then frees *lg and closes *lf. */
static void open_logged(struct tc_agents *f, char *path, size_t size, FILE **lf, plog_logger **lg)
{
    snprintf(path, size, "%s/node1.log", f->dir);
    *lf = fopen(path, "w");
    assert_non_null(*lf);
    assert_plog_ok(plog_logger_new(fileno(*lf), PLOG_LOGGER_INFO, lg));
    plog_agent_config ac = tc_agents_config(f, 0, -1);
    ac.logger = *lg;
    char err[512];
    if (plog_agent_open(&ac, &f->a[0], err, sizeof err) != PLOG_OK)
        fail_msg("agent node1: %s", err);
}

/* A member's tags come from gossip, where a value may be any bytes but NUL: the
 * agent's member line quotes and escapes rpc_addr as the logger does any value.
 * Before, the line was printf'd: node2's certificate (the policy lets it
 * gossip) telling node1 of a member "evil" (no raft_addr: Raft ignores it) with rpc_addr
 * "127.0.0.1:1\nlevel=error msg=forged" made a line of its own in node1's log. */
static void test_agent_member_line_escapes_a_gossiped_rpc_addr(void **state)
{
    struct tc_agents *f = *state;
    char path[192], err[512], bind[32];
    FILE *lf;
    plog_logger *lg;
    open_logged(f, path, sizeof path, &lf, &lg);

    snprintf(bind, sizeof bind, "127.0.0.1:%d", plog_test_free_port());
    plog_transport_config tc = {
        .bind_addr = bind,
        .cert_file = tc_cert("node2.pem"),
        .key_file = tc_cert("node2-key.pem"),
        .ca_file = tc_cert("ca.pem"),
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
    struct tc_agents *f = *state;
    tc_agents_start(f, 0, -1);
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
    struct stat st[64];
    int n;
} synced = {.mu = PTHREAD_MUTEX_INITIALIZER};

static int fsync_recording(int fd)
{
    struct stat st;
    if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
        pthread_mutex_lock(&synced.mu);
        if (synced.n < 64)
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

/* A data directory the agent creates, each missing parent and Raft's directory
 * in it are durable names (their parents fsynced) before the agent serves:
 * before, the agent, the distributed log and raftstore made them with plain
 * mkdir, so the log found them there, and a power loss could take a directory
 * back with the records acknowledged in it. */
static void test_agent_makes_its_new_data_directory_durable(void **state)
{
    struct tc_agents *f = *state;
    char parent[96];
    snprintf(parent, sizeof parent, "%s/new", f->dir);
    snprintf(f->data[0], sizeof f->data[0], "%s/node1", parent); /* neither exists */
    plog_io io = *plog_io_real();
    io.fsync = fsync_recording;
    synced.n = 0;
    plog_io_set(&io);
    tc_agents_start(f, 0, -1);
    plog_io_set(NULL);
    assert_true(dir_synced(f->data[0])); /* holds the name raft */
    assert_true(dir_synced(parent));     /* holds the name node1 */
    assert_true(dir_synced(f->dir));     /* holds the name new */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_agent_produce_on_leader_is_readable_on_followers_within_3s,
                                        tc_agents_setup, tc_agents_teardown),
        cmocka_unit_test_setup_teardown(test_agent_get_servers_names_every_server_and_the_leader,
                                        tc_agents_setup, tc_agents_teardown),
        cmocka_unit_test_setup_teardown(test_agent_makes_its_new_data_directory_durable, tc_agents_setup,
                                        tc_agents_teardown),
        cmocka_unit_test_setup_teardown(
            test_agent_remove_server_takes_out_a_dead_server_and_a_rejoin_adds_it_back, tc_agents_setup,
            tc_agents_teardown),
        cmocka_unit_test_setup_teardown(test_agent_shutdown_is_a_leave_and_the_leader_removes_it,
                                        tc_agents_setup, tc_agents_teardown),
        cmocka_unit_test_setup_teardown(test_agent_leader_shutdown_hands_over_and_restart_catches_up,
                                        tc_agents_setup, tc_agents_teardown),
        cmocka_unit_test_setup_teardown(
            test_agent_restarted_without_join_addresses_rejoins_the_members_it_saw, tc_agents_setup,
            tc_agents_teardown),
        cmocka_unit_test_setup_teardown(test_agent_linearizable_consume_reads_through_the_leader,
                                        tc_agents_setup, tc_agents_teardown),
        cmocka_unit_test_setup_teardown(test_agent_refuses_a_damaged_node_name_file_saying_so,
                                        tc_agents_setup, tc_agents_teardown),
        cmocka_unit_test_setup_teardown(test_agent_refuses_a_data_dir_of_another_node, tc_agents_setup,
                                        tc_agents_teardown),
        cmocka_unit_test_setup_teardown(test_agent_member_line_escapes_a_gossiped_rpc_addr, tc_agents_setup,
                                        tc_agents_teardown),
        cmocka_unit_test_setup_teardown(test_agent_says_how_many_remembered_lines_it_skipped, tc_agents_setup,
                                        tc_agents_teardown),
        cmocka_unit_test_setup_teardown(test_agent_refuses_a_data_dir_in_use, tc_agents_setup,
                                        tc_agents_teardown),
        cmocka_unit_test_setup_teardown(test_agent_gossips_its_raft_advertise_address_and_refuses_a_bad_one,
                                        tc_agents_setup, tc_agents_teardown),
    };
    return cmocka_run_group_tests_name("agent", tests, NULL, NULL);
}
