/* distributed_test.c - the replicated log in one process over the real transport
 * (Go: internal/log/distributed_test.go TestMultipleNodes, and more): three nodes
 * with node certificates and mutual TLS, each with its own Raft state on disk. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api/v1/log.pb-c.h"
#include "internal/agent/testcluster.h"
#include "internal/auth/authorizer.h"
#include "internal/distributed/distributed.h"
#include "internal/err/err.h"
#include "internal/log/io.h"
#include "internal/log/simfs_testlib.h"
#include "internal/raft/raft.h"
#include "internal/raftstore/raftstore.h"
#include "testing/testing.h"

/* LeakSanitizer (SAN=1) reads this. When leaders change under load, the nodes start
 * fresh Raft connections to silent peers and close the old ones on the closer
 * thread; nng 1.5.2's reaper can get stuck on such a TLS socket (README, "What is not
 * done yet"), and what that socket holds (nng's dialer, the TLS engine's OpenSSL
 * objects, whose stacks unwind no further than the library) is still held at exit:
 * seen in 1 of 3 runs of three of these binaries at once. Leaks allocated in those
 * libraries are not ours; the driver's own allocations are still checked, and
 * engine_test and the server tests check the engine's without suppression. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void)
{
    return "leak:libnng.so\nleak:libssl.so\nleak:libcrypto.so\n";
}

#define N 3

struct node {
    char name[16], raft[32], rpc[32], dir[128];
    plog_distributed *d;
    char failed[512];       /* what cfg.failed said, once has_failed is set */
    atomic_bool has_failed; /* cfg.failed was called (on the node's thread) */
};

struct fixture {
    char dir[64], policy[128];
    plog_auth *acl;
    struct node n[N];
    plog_distributed *dead[8]; /* stopped mid-test, closed by teardown */
    int ndead;
    bool simfs; /* the file layer is in place: removed after every node closed */
    bool gate;  /* the snapshot gate (below) is in place: opened, then removed */
};

/* fresh_raft_port gives node i a Raft port no listener of this process holds.
 * A node closed in this process may still hold its old one: once a case before
 * has left nng 1.5.2's reaper stuck (a TLS transport closed while peers in the
 * same process sent to it), transport.c leaves the listener open rather than
 * hang, and a listen on that port fails "Address in use" (seen under SAN=1 in
 * the cases after the fail-stop ones, and in a whole-cluster restart: the close
 * of the listening socket waits at most 2 s on the closer thread). A process that
 * exits lets go of it. */
static void fresh_raft_port(struct fixture *f, int i)
{
    snprintf(f->n[i].raft, sizeof f->n[i].raft, "127.0.0.1:%d", plog_test_free_port());
}

/* down takes node i away mid-test: stopped (a leader hands over first, as in
 * close) but closed only by teardown, after every node stopped: closing one TLS
 * transport while the others still send to it can hang nng 1.5.2 in one process.
 * A node brought back listens on a fresh Raft port (its peers learn it from its
 * messages and from membership), on a copy of its directory: the stopped one
 * still holds its logs open, and a log refuses a directory another holds (a
 * process that dies lets go of them; this one cannot yet). */
static void down(struct fixture *f, int i)
{
    struct node *n = &f->n[i];
    plog_distributed_stop(n->d);
    f->dead[f->ndead++] = n->d;
    n->d = NULL;
    fresh_raft_port(f, i);
    char to[sizeof n->dir], cmd[2 * sizeof n->dir + 16], *out = NULL;
    snprintf(to, sizeof to, "%s/%s-%d", f->dir, n->name, f->ndead);
    snprintf(cmd, sizeof cmd, "cp -a %s %s", n->dir, to);
    if (plog_test_sh(cmd, 30000, &out) != 0)
        fail_msg("%s: %s", cmd, out);
    free(out);
    memcpy(n->dir, to, sizeof to);
}

static const char *cert(const char *name, const char *suffix)
{
    static char bufs[8][600];
    static int next;
    char *b = bufs[next++ % 8];
    snprintf(b, sizeof bufs[0], "%s/%s%s", tc_certs(), name, suffix);
    return b;
}

static uint32_t g_snapshot_entries;    /* what start gives the next nodes */
static uint32_t g_follower_live_ms;    /* ... and this (0: the default) */
static uint32_t g_election_timeout_ms; /* ... and this (0: the default) */

static void on_failed(void *arg, const char *why)
{
    struct node *n = arg;
    snprintf(n->failed, sizeof n->failed, "%s", why[0] != '\0' ? why : "(no reason)");
    atomic_store(&n->has_failed, true); /* after the text: a reader that sees it reads it whole */
}

/* open_node opens node i without starting Raft (plog_distributed_open). */
static void open_node(struct fixture *f, int i, bool bootstrap)
{
    struct node *n = &f->n[i];
    plog_distributed_config c = {
        .name = n->name,
        .dir = n->dir,
        .raft_addr = n->raft,
        .rpc_addr = n->rpc,
        .cert_file = cert(n->name, ".pem"),
        .key_file = cert(n->name, "-key.pem"),
        .ca_file = cert("ca", ".pem"),
        .acl = f->acl,
        .bootstrap = bootstrap,
        .snapshot_entries = g_snapshot_entries,
        .follower_live_ms = g_follower_live_ms,
        .election_timeout_ms = g_election_timeout_ms,
        .failed = on_failed,
        .arg = n,
    };
    c.log.segment.max_index_bytes = 1024 * 12;
    char err[256];
    int rv = plog_distributed_open(&c, &n->d, err, sizeof err);
    if (rv != PLOG_OK)
        fail_msg("open %s: %s: %s", n->name, plog_strerror(rv), err);
}

static void start(struct fixture *f, int i, bool bootstrap)
{
    open_node(f, i, bootstrap);
    char err[256];
    int rv = plog_distributed_start(f->n[i].d, err, sizeof err);
    if (rv != PLOG_OK)
        fail_msg("start %s: %s: %s", f->n[i].name, plog_strerror(rv), err);
}

/* introduce tells every running node about every other (what membership does). */
static void introduce(struct fixture *f)
{
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++)
            if (f->n[i].d != NULL && i != j)
                plog_distributed_join(f->n[i].d, f->n[j].name, f->n[j].raft, f->n[j].rpc);
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    g_snapshot_entries = 0;
    g_follower_live_ms = 0;
    g_election_timeout_ms = 0;
    plog_test_tmpdir("distributed", f->dir, sizeof f->dir);
    snprintf(f->policy, sizeof f->policy, "%s/policy.csv", f->dir);
    FILE *p = fopen(f->policy, "w");
    assert_non_null(p);
    for (int i = 1; i <= N; i++)
        fprintf(p, "p, node%d, *, gossip\n", i);
    fclose(p);
    char err[PLOG_AUTH_ERRMSG_SIZE];
    assert_int_equal(plog_auth_new(NULL, f->policy, &f->acl, err, sizeof err), PLOG_OK);
    for (int i = 0; i < N; i++) {
        struct node *n = &f->n[i];
        snprintf(n->name, sizeof n->name, "node%d", i + 1);
        snprintf(n->raft, sizeof n->raft, "127.0.0.1:%d", plog_test_free_port());
        snprintf(n->rpc, sizeof n->rpc, "127.0.0.1:%d", 9100 + i);
        snprintf(n->dir, sizeof n->dir, "%s/%s", f->dir, n->name);
    }
    *state = f;
    return 0;
}

static void gate_open(void);
static void gate_uninstall(void);

static int teardown(void **state)
{
    struct fixture *f = *state;
    if (f->gate)
        gate_open(); /* a node stops only once its snapshot's writer is done */
    for (int i = 0; i < N; i++)
        if (f->n[i].d != NULL)
            plog_distributed_stop(f->n[i].d);
    plog_test_sleep_ms(100); /* what was sent drains while every peer listens */
    for (int i = 0; i < N; i++)
        plog_distributed_close(f->n[i].d);
    for (int i = 0; i < f->ndead; i++)
        plog_distributed_close(f->dead[i]);
    if (f->simfs)
        simfs_uninstall();
    if (f->gate)
        gate_uninstall();
    plog_auth_free(f->acl);
    plog_test_rmrf(f->dir);
    free(f);
    return 0;
}

/* leader: the index of the node that leads (waits up to 5 s). */
static int leader(struct fixture *f)
{
    int64_t until = plog_test_now_ms() + 5000;
    while (plog_test_now_ms() < until) {
        for (int i = 0; i < N; i++)
            if (f->n[i].d != NULL && plog_distributed_leader(f->n[i].d, NULL, 0))
                return i;
        plog_test_sleep_ms(5);
    }
    fail_msg("no leader within 5 s");
    return -1;
}

struct voters_arg {
    plog_distributed *d;
    size_t want;
};

static bool has_voters(void *arg)
{
    struct voters_arg *a = arg;
    plog_distributed_server s[8];
    size_t n, v = 0;
    plog_distributed_servers(a->d, s, 8, &n);
    for (size_t i = 0; i < n; i++)
        v += s[i].voter;
    return v == a->want && n == a->want;
}

static void wait_voters(plog_distributed *d, size_t want)
{
    struct voters_arg a = {d, want};
    if (!plog_test_wait_until(has_voters, &a, 10000))
        fail_msg("configuration never reached %zu voters", want);
}

static uint64_t produce(plog_distributed *d, uint64_t cid, uint64_t seq, const char *v)
{
    const uint8_t *vals[1] = {(const uint8_t *)v};
    size_t lens[1] = {strlen(v)};
    uint64_t first = 0;
    int rv = plog_distributed_produce_wait(d, cid, seq, vals, lens, 1, &first, 5000);
    if (rv != PLOG_OK)
        fail_msg("produce %s: %s", v, plog_strerror(rv));
    return first;
}

struct has_arg {
    plog_distributed *d;
    uint64_t off;
    const char *value;
};

static bool has_record(void *arg)
{
    struct has_arg *a = arg;
    if (plog_distributed_applied_next(a->d) <= a->off)
        return false;
    Log__V1__Record *r;
    if (plog_log_read(plog_distributed_log(a->d), a->off, &r) != PLOG_OK)
        return false;
    bool ok = r->value.len == strlen(a->value) && memcmp(r->value.data, a->value, r->value.len) == 0;
    log__v1__record__free_unpacked(r, NULL);
    return ok;
}

static void start_cluster(struct fixture *f)
{
    start(f, 0, true);
    assert_int_equal(leader(f), 0);
    start(f, 1, false);
    start(f, 2, false);
    introduce(f);
    wait_voters(f->n[0].d, 3);
}

/* start_pair starts node1 (bootstrapped, the leader) and node2 as its voters; node3
 * is left for a test to add later. */
static void start_pair(struct fixture *f)
{
    start(f, 0, true);
    assert_int_equal(leader(f), 0);
    start(f, 1, false);
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 2; j++)
            if (i != j)
                plog_distributed_join(f->n[i].d, f->n[j].name, f->n[j].raft, f->n[j].rpc);
    wait_voters(f->n[0].d, 2);
}

/* Go: TestMultipleNodes. Records produced on the leader are on every node within
 * 500 ms; a node the leader removes (it left) stops receiving them. */
static void test_records_reach_every_node_and_a_node_that_left_stops_receiving(void **state)
{
    struct fixture *f = *state;
    start_cluster(f);
    const char *values[] = {"first", "second", "third"};
    for (int k = 0; k < 3; k++) {
        uint64_t off = produce(f->n[0].d, 0, 0, values[k]);
        assert_int_equal(off, (uint64_t)k);
        for (int i = 0; i < N; i++) {
            struct has_arg a = {f->n[i].d, off, values[k]};
            int64_t t0 = plog_test_now_ms();
            if (!plog_test_wait_until(has_record, &a, 500))
                fail_msg("%s: offset %llu not there within 500 ms", f->n[i].name, (unsigned long long)off);
            (void)t0;
        }
    }
    plog_distributed_leave(f->n[0].d, "node2");
    wait_voters(f->n[0].d, 2);
    uint64_t off = produce(f->n[0].d, 0, 0, "fourth");
    struct has_arg a3 = {f->n[2].d, off, "fourth"};
    assert_true(plog_test_wait_until(has_record, &a3, 500));
    struct has_arg a2 = {f->n[1].d, off, "fourth"};
    assert_false(plog_test_wait_until(has_record, &a2, 300));
    assert_int_equal(plog_distributed_applied_next(f->n[1].d), 3);
}

/* A produce with a (client, seq) the state machine applied before answers the
 * same offset and appends nothing; so does its retry on a new leader. */
static void test_a_retried_produce_is_applied_once_even_on_a_new_leader(void **state)
{
    struct fixture *f = *state;
    start_cluster(f);
    uint64_t a = produce(f->n[0].d, 42, 1, "once");
    uint64_t b = produce(f->n[0].d, 42, 1, "once");
    assert_int_equal(a, b);
    assert_int_equal(plog_distributed_applied_next(f->n[0].d), a + 1);
    /* The leader goes away (handing over); the new one knows (42, 1). */
    down(f, 0);
    int l = leader(f);
    assert_int_not_equal(l, 0);
    uint64_t c = produce(f->n[l].d, 42, 1, "once");
    assert_int_equal(c, a);
    uint64_t d2 = produce(f->n[l].d, 42, 2, "twice");
    assert_int_equal(d2, a + 1);
}

/* Closing the leader hands leadership over: another node leads within about an
 * election timeout, without waiting for the old one's heartbeats to stop. */
static void test_a_closing_leader_hands_over(void **state)
{
    struct fixture *f = *state;
    start_cluster(f);
    produce(f->n[0].d, 0, 0, "before");
    int64_t t0 = plog_test_now_ms();
    down(f, 0);
    int l = leader(f);
    int64_t took = plog_test_now_ms() - t0;
    print_message("new leader %s %lld ms after close began\n", f->n[l].name, (long long)took);
    uint64_t off = produce(f->n[l].d, 0, 0, "after");
    assert_int_equal(off, 1);
}

/* Everything acknowledged survives a restart of the whole cluster: Raft's log is
 * on disk, the record log is rebuilt from it. */
static void test_a_restarted_cluster_keeps_every_acknowledged_record(void **state)
{
    struct fixture *f = *state;
    start_cluster(f);
    char v[32];
    for (int k = 0; k < 50; k++) {
        snprintf(v, sizeof v, "r%d", k);
        assert_int_equal(produce(f->n[0].d, 7, (uint64_t)k + 1, v), (uint64_t)k);
    }
    for (int i = N - 1; i >= 0; i--)
        plog_distributed_stop(f->n[i].d); /* all stopped before any closes: see down */
    plog_test_sleep_ms(100);
    for (int i = N - 1; i >= 0; i--) {
        plog_distributed_close(f->n[i].d);
        f->n[i].d = NULL;
    }
    for (int i = 0; i < N; i++) {
        fresh_raft_port(f, i); /* the old listener may outlive its close here */
        start(f, i, i == 0);
    }
    introduce(f);
    int l = leader(f);
    /* A retry of the last produce after the restart is still recognised. */
    assert_int_equal(produce(f->n[l].d, 7, 50, "r49"), 49);
    assert_int_equal(produce(f->n[l].d, 7, 51, "r50"), 50);
    for (int i = 0; i < N; i++)
        for (int k = 0; k <= 50; k++) {
            snprintf(v, sizeof v, "r%d", k);
            struct has_arg a = {f->n[i].d, (uint64_t)k, v};
            if (!plog_test_wait_until(has_record, &a, 3000))
                fail_msg("%s: offset %d missing after restart", f->n[i].name, k);
        }
}

/* restart closes node i (a clean stop) and opens it again on the same directory,
 * listening on a fresh Raft port (fresh_raft_port). */
static void restart(struct fixture *f, int i, bool bootstrap)
{
    plog_distributed_stop(f->n[i].d);
    plog_distributed_close(f->n[i].d);
    f->n[i].d = NULL;
    fresh_raft_port(f, i);
    start(f, i, bootstrap);
}

/* wait_leads waits up to 5 s until node i leads. */
static void wait_leads(struct fixture *f, int i)
{
    int64_t until = plog_test_now_ms() + 5000;
    while (!plog_distributed_leader(f->n[i].d, NULL, 0))
        if (plog_test_now_ms() > until)
            fail_msg("%s does not lead within 5 s", f->n[i].name);
        else
            plog_test_sleep_ms(5);
}

static void assert_record(struct fixture *f, int i, uint64_t off, const char *value)
{
    struct has_arg a = {f->n[i].d, off, value};
    if (!plog_test_wait_until(has_record, &a, 3000))
        fail_msg("%s: offset %llu is not %s", f->n[i].name, (unsigned long long)off, value);
}

/* A node whose data directory was emptied and that is started with bootstrap
 * again makes a cluster of its own, with a new cluster id: the nodes of the old
 * cluster drop its messages, and it drops theirs. Before cluster ids they took
 * them: node3 led a second cluster in the same term as node1, node2 followed
 * either, and the logs diverged. Here node2 never names node3 as its leader, the
 * records produced on each side stay on that side, and both sides count what
 * they dropped. */
static void test_a_node_bootstrapped_again_on_an_emptied_directory_stays_apart(void **state)
{
    struct fixture *f = *state;
    start_cluster(f);
    for (int k = 0; k < 3; k++)
        assert_int_equal(produce(f->n[0].d, 0, 0, "before"), (uint64_t)k);
    struct has_arg copied = {f->n[2].d, 2, "before"};
    assert_true(plog_test_wait_until(has_record, &copied, 3000));
    down(f, 2);
    snprintf(f->n[2].dir, sizeof f->n[2].dir, "%s/node3-emptied", f->dir);
    start(f, 2, true);
    introduce(f);
    wait_leads(f, 2);
    char v[32], leader2[128];
    for (int k = 0; k < 3; k++) {
        snprintf(v, sizeof v, "old-%d", k);
        assert_int_equal(produce(f->n[0].d, 0, 0, v), (uint64_t)(3 + k));
        snprintf(v, sizeof v, "new-%d", k);
        assert_int_equal(produce(f->n[2].d, 0, 0, v), (uint64_t)k);
    }
    /* Long enough for every side's heartbeats, elections and membership changes. */
    for (int64_t until = plog_test_now_ms() + 1500; plog_test_now_ms() < until; plog_test_sleep_ms(20)) {
        plog_distributed_leader(f->n[1].d, leader2, sizeof leader2);
        if (strcmp(leader2, f->n[2].rpc) == 0)
            fail_msg("node2 follows node3, the leader of another cluster");
    }
    assert_true(plog_distributed_leader(f->n[0].d, NULL, 0));
    assert_true(plog_distributed_leader(f->n[2].d, NULL, 0));
    for (int k = 0; k < 3; k++) {
        snprintf(v, sizeof v, "old-%d", k);
        assert_record(f, 1, (uint64_t)(3 + k), v);
        snprintf(v, sizeof v, "new-%d", k);
        assert_record(f, 2, (uint64_t)k, v);
    }
    assert_int_equal(plog_distributed_applied_next(f->n[1].d), 6);
    assert_int_equal(plog_distributed_applied_next(f->n[2].d), 3);
    assert_true(plog_distributed_foreign(f->n[0].d) + plog_distributed_foreign(f->n[1].d) > 0);
    assert_true(plog_distributed_foreign(f->n[2].d) > 0);
}

/* A cluster of one, bootstrapped, restarts: its configuration is in Raft's log from
 * the start (a CONFIG entry at index 1), not only in memory until a snapshot. After
 * each restart it elects itself, lists itself as the one voter, serves what it
 * acknowledged at the same offsets and appends after them; the second restart does
 * not pass bootstrap: the log alone holds the configuration. */
static void test_a_bootstrapped_node_alone_restarts_with_its_records(void **state)
{
    struct fixture *f = *state;
    start(f, 0, true);
    wait_leads(f, 0);
    wait_voters(f->n[0].d, 1);
    assert_int_equal(produce(f->n[0].d, 0, 0, "a"), 0);
    restart(f, 0, true);
    wait_leads(f, 0);
    wait_voters(f->n[0].d, 1);
    assert_record(f, 0, 0, "a");
    assert_int_equal(produce(f->n[0].d, 0, 0, "b"), 1);
    restart(f, 0, false);
    wait_leads(f, 0);
    assert_record(f, 0, 0, "a");
    assert_record(f, 0, 1, "b");
    assert_int_equal(produce(f->n[0].d, 0, 0, "c"), 2);
}

/* raft_store_of makes node i's data directory and opens Raft's storage in it, as a
 * node would find it before its first start. */
static plog_raftstore *raft_store_of(struct fixture *f, int i)
{
    char path[256], err[256];
    assert_int_equal(mkdir(f->n[i].dir, 0755), 0);
    snprintf(path, sizeof path, "%s/raft", f->n[i].dir);
    assert_int_equal(mkdir(path, 0755), 0);
    plog_raftstore *s;
    if (plog_raftstore_open(path, NULL, &s, err, sizeof err) != PLOG_OK)
        fail_msg("raftstore %s: %s", path, err);
    return s;
}

/* raft_state writes what a crash during a bootstrap can leave in node i's Raft
 * directory: the hard state hs and, with torn, the bootstrap's CONFIG entry
 * written all but its last byte (the power went before the write completed). */
static void raft_state(struct fixture *f, int i, plog_raft_hard_state hs, bool torn)
{
    char path[256];
    plog_raftstore *s = raft_store_of(f, i);
    assert_plog_ok(plog_raftstore_save_hard_state(s, &hs));
    if (torn) {
        plog_raft_conf c = {.n = 1};
        c.servers[0] = (plog_raft_server){.id = plog_distributed_id(f->n[i].name), .role = PLOG_RAFT_VOTER};
        uint8_t buf[PLOG_RAFT_CONF_MAX_BYTES];
        plog_raft_entry e = {.term = 1, .index = 1, .type = PLOG_RAFT_ENTRY_CONFIG, .data = buf};
        e.len = plog_raft_conf_encode(&c, buf);
        assert_plog_ok(plog_raftstore_append(s, &e, 1));
        assert_plog_ok(plog_raftstore_sync(s));
    }
    plog_raftstore_close(s);
    if (torn) {
        snprintf(path, sizeof path, "%s/raft/log-0/%020d.store", f->n[i].dir, 0);
        struct stat st;
        assert_int_equal(stat(path, &st), 0);
        assert_true(st.st_size > 1);
        assert_int_equal(truncate(path, st.st_size - 1), 0);
    }
}

/* A node killed in the middle of its bootstrap comes back bootstrapped, not as a
 * member of nothing: killed after the hard state was written and before the
 * configuration entry was (with the term 1 the bootstrap writes, or a higher one
 * stored before, which is kept), or while that entry was being written (torn). */
static void test_a_node_that_crashed_mid_bootstrap_ends_up_bootstrapped(void **state)
{
    struct fixture *f = *state;
    const struct {
        uint64_t term;
        bool torn;
    } cases[N] = {{1, false}, {5, false}, {1, true}};
    for (int k = 0; k < N; k++) {
        raft_state(f, k, (plog_raft_hard_state){.term = cases[k].term}, cases[k].torn);
        start(f, k, true);
        wait_voters(f->n[k].d, 1);
        wait_leads(f, k);
        assert_int_equal(produce(f->n[k].d, 0, 0, "x"), 0);
        restart(f, k, true);
        wait_leads(f, k);
        assert_record(f, k, 0, "x");
        assert_int_equal(produce(f->n[k].d, 0, 0, "y"), 1);
        plog_distributed_stop(f->n[k].d); /* each its own cluster: none sends to another */
        plog_distributed_close(f->n[k].d);
        f->n[k].d = NULL;
        /* It elected itself in a term after the one stored (never below it). */
        char path[256], err[256];
        snprintf(path, sizeof path, "%s/raft", f->n[k].dir);
        plog_raftstore *s;
        if (plog_raftstore_open(path, NULL, &s, err, sizeof err) != PLOG_OK)
            fail_msg("raftstore %s: %s", path, err);
        plog_raft_boot boot;
        assert_plog_ok(plog_raftstore_boot(s, &boot));
        assert_true(boot.hs.term > cases[k].term);
        assert_true(boot.n_entries >= 1);
        assert_int_equal(boot.entries[0].type, PLOG_RAFT_ENTRY_CONFIG);
        assert_int_equal(boot.entries[0].term, 1);
        plog_raftstore_close(s);
    }
}

/* stored_boot reads what node i's Raft directory holds (the node closed) into
 * *term and *entries. */
static void stored_boot(struct fixture *f, int i, uint64_t *term, size_t *entries)
{
    char path[256], err[256];
    snprintf(path, sizeof path, "%s/raft", f->n[i].dir);
    plog_raftstore *s;
    if (plog_raftstore_open(path, NULL, &s, err, sizeof err) != PLOG_OK)
        fail_msg("raftstore %s: %s", path, err);
    plog_raft_boot boot;
    assert_plog_ok(plog_raftstore_boot(s, &boot));
    *term = boot.hs.term;
    *entries = boot.n_entries;
    plog_raftstore_close(s);
}

/* Opened, a bootstrapping node listens and has its storage, but writes nothing to
 * Raft's state and takes no produce until it is started: a program that fails to
 * start after the open (another port taken) leaves no term, vote or entry. Then
 * started, it bootstraps and leads in term 2. */
static void test_a_node_opened_but_not_started_writes_no_raft_state(void **state)
{
    struct fixture *f = *state;
    open_node(f, 0, true);
    const uint8_t *vals[1] = {(const uint8_t *)"x"};
    size_t lens[1] = {1};
    uint64_t first;
    assert_int_equal(plog_distributed_produce_wait(f->n[0].d, 0, 0, vals, lens, 1, &first, 1000),
                     PLOG_ENOTLEADER);
    plog_test_sleep_ms(500); /* past any election timeout: nothing campaigns */
    assert_false(plog_distributed_leader(f->n[0].d, NULL, 0));
    plog_distributed_close(f->n[0].d);
    f->n[0].d = NULL;
    uint64_t term;
    size_t entries;
    stored_boot(f, 0, &term, &entries);
    assert_int_equal(term, 0);
    assert_int_equal(entries, 0);

    fresh_raft_port(f, 0);
    start(f, 0, true);
    wait_leads(f, 0);
    assert_int_equal(produce(f->n[0].d, 0, 0, "x"), 0);
    plog_distributed_close(f->n[0].d);
    f->n[0].d = NULL;
    stored_boot(f, 0, &term, &entries);
    assert_int_equal(term, 2);
    assert_int_equal(entries, 3); /* the configuration, the no-op, the produce */
}

struct read_res {
    int rv;
    uint64_t next;
    bool done;
};

static void read_done(void *arg, int rv, uint64_t next)
{
    struct read_res *r = arg;
    r->rv = rv;
    r->next = next;
    __atomic_store_n(&r->done, true, __ATOMIC_SEQ_CST);
}

static bool read_finished(void *arg)
{
    struct read_res *r = arg;
    return __atomic_load_n(&r->done, __ATOMIC_SEQ_CST);
}

/* ReadIndex: the leader confirms it leads, then gives a read point covering every
 * acknowledged produce; a follower refuses. */
static void test_read_index_covers_every_acknowledged_produce(void **state)
{
    struct fixture *f = *state;
    start_cluster(f);
    uint64_t off = produce(f->n[0].d, 0, 0, "x");
    struct read_res r = {0};
    assert_int_equal(plog_distributed_read_index(f->n[0].d, read_done, &r), PLOG_OK);
    assert_true(plog_test_wait_until(read_finished, &r, 3000));
    assert_int_equal(r.rv, PLOG_OK);
    assert_true(r.next > off);
    struct read_res r2 = {0};
    assert_int_equal(plog_distributed_read_index(f->n[1].d, read_done, &r2), PLOG_OK);
    assert_true(plog_test_wait_until(read_finished, &r2, 3000));
    assert_int_equal(r2.rv, PLOG_ENOTLEADER);
}

/* produce_on_leader produces (client cid, seq) on whichever node leads, again on
 * the next leader when a leader change leaves it "not leader" or in doubt (the
 * dedup table applies it once): on a loaded machine an election can come at any
 * time. Returns the offset of its first record. */
static uint64_t produce_on_leader(struct fixture *f, uint64_t cid, uint64_t seq, const uint8_t *const *vals,
                                  const size_t *lens, size_t n)
{
    int64_t until = plog_test_now_ms() + 20000;
    int rv;
    do {
        uint64_t first;
        rv = plog_distributed_produce_wait(f->n[leader(f)].d, cid, seq, vals, lens, n, &first, 5000);
        if (rv == PLOG_OK)
            return first;
        plog_test_sleep_ms(20);
    } while ((rv == PLOG_ENOTLEADER || rv == PLOG_EINDOUBT || rv == PLOG_EBUSY) &&
             plog_test_now_ms() < until);
    fail_msg("produce %" PRIu64 ": %s", seq, plog_strerror(rv));
    return 0;
}

struct snapped_arg {
    struct fixture *f;
    uint64_t index;
};

/* leader_snapped: the node that leads has taken a snapshot at index or later */
static bool leader_snapped(void *arg)
{
    struct snapped_arg *a = arg;
    uint64_t at;
    plog_distributed_snapshots_taken(a->f->n[leader(a->f)].d, &at);
    return at >= a->index;
}

/* Snapshots (§7): with a snapshot every 25 entries, a node that joins after 200
 * produces gets the leader's snapshot (the record log streamed, the dedup table)
 * and then the entries after it; a node restarted on a compacted log restores
 * from its own snapshot; retries known before the snapshot are still recognised. */
static void test_a_late_node_catches_up_from_a_snapshot(void **state)
{
    struct fixture *f = *state;
    g_snapshot_entries = 25;
    start_pair(f);
    char v[32];
    for (int k = 0; k < 200; k++) {
        snprintf(v, sizeof v, "s%d", k);
        const uint8_t *vals[1] = {(const uint8_t *)v};
        size_t lens[1] = {strlen(v)};
        assert_int_equal(produce_on_leader(f, 9, (uint64_t)k + 1, vals, lens, 1), (uint64_t)k);
    }
    /* Snapshots are spaced by their cost: under load the last may come a little
     * after the last produce. Once one covers 150 entries, the leader's log starts
     * past entry 1 (it keeps 128 behind), so node3 needs the snapshot. */
    struct snapped_arg sa = {f, 150};
    if (!plog_test_wait_until(leader_snapped, &sa, 10000))
        fail_msg("no snapshot at index 150 or later on the leader within 10 s");
    start(f, 2, false);
    introduce(f);
    wait_voters(f->n[0].d, 3);
    for (int k = 0; k < 200; k++) {
        snprintf(v, sizeof v, "s%d", k);
        struct has_arg a = {f->n[2].d, (uint64_t)k, v};
        if (!plog_test_wait_until(has_record, &a, 5000))
            fail_msg("node3: offset %d missing", k);
    }
    /* It installed the leader's: an installed snapshot starts a new log generation
     * (raftstore.h), one taken locally does not. */
    char path[256];
    snprintf(path, sizeof path, "%s/raft/log-0", f->n[2].dir);
    struct stat st;
    assert_int_not_equal(stat(path, &st), 0);
    /* The dedup table came with it: node3 leads after a handover and knows (9, 200). */
    down(f, 1);
    start(f, 1, false);
    introduce(f);
    for (int k = 0; k < 200; k += 37) {
        snprintf(v, sizeof v, "s%d", k);
        struct has_arg a = {f->n[1].d, (uint64_t)k, v};
        assert_true(plog_test_wait_until(has_record, &a, 5000));
    }
    down(f, 0);
    int l = leader(f);
    assert_int_equal(produce(f->n[l].d, 9, 200, "s199"), 199);
    assert_int_equal(produce(f->n[l].d, 9, 201, "s200"), 200);
}

/* A node that joins under steady writes, with a snapshot every five entries, catches
 * up while the writes go on: the leader takes no snapshot while it sends one, and
 * keeps the entries after it, in memory or in raftstore, until the node has them
 * (plog_raft_sending_snapshot, up->keep_from, plog_raftstore_compact). The entries
 * (16 KiB records) overflow the core's memory limit, so some are read back from the
 * leader's raftstore from behind its latest snapshot. On loopback the old code
 * mostly passed this too (a transfer here takes ~0.2 s); raft_paper_test's
 * test_raft_snapshot_under_steady_writes_is_not_overtaken is the deterministic case
 * that fails without the change. */
/* The produces of a test in flight, and how many failed (counted by their done). */
struct inflight {
    atomic_int n, failed;
};

static void inflight_done(void *arg, int rv, uint64_t first, uint64_t count)
{
    (void)first, (void)count;
    struct inflight *fl = arg;
    if (rv != PLOG_OK)
        atomic_fetch_add(&fl->failed, 1);
    atomic_fetch_sub(&fl->n, 1);
}

static void test_a_node_that_joins_under_steady_writes_catches_up(void **state)
{
    struct fixture *f = *state;
    g_snapshot_entries = 5;
    /* A snapshot of 4 MiB stalls its node thread (README, "What is not done yet"),
     * under SAN=1 past the default 150 ms: this test is about the catch-up, not
     * about elections, which produce_on_leader survives anyway. */
    g_election_timeout_ms = 1000;
    start_pair(f);
    /* 256 records of 16 KiB in entries of 8: a snapshot of 4 MiB */
    static char v[8][16384];
    const uint8_t *vals[8];
    size_t lens[8];
    for (int k = 0; k < 8; k++) {
        memset(v[k], 'a' + k, sizeof v[k] - 1);
        vals[k] = (const uint8_t *)v[k];
        lens[k] = sizeof v[k] - 1;
    }
    for (uint64_t seq = 1; seq <= 32; seq++)
        produce_on_leader(f, 7, seq, vals, lens, 8);
    start(f, 2, false);
    introduce(f);
    /* then entries of one record, 16 in flight on the leader (a snapshot every five
     * entries), for up to 20 s; node3 has caught up when it holds all but 16
     * entries' records. A produce that fails (a leader change under load) only
     * leaves the writes a little thinner: the records that count are the leader's. */
    struct inflight fl = {0};
    int64_t start_ms = plog_test_now_ms(), caught = -1;
    uint64_t sent = 0;
    int l = leader(f);
    while (plog_test_now_ms() - start_ms < 20000) {
        if (atomic_load(&fl.n) < 16) {
            atomic_fetch_add(&fl.n, 1);
            if (plog_distributed_produce(f->n[l].d, 0, 0, vals, lens, 1, inflight_done, &fl) != PLOG_OK) {
                inflight_done(&fl, PLOG_ENOTLEADER, 0, 0);
                l = leader(f);
            }
            sent++;
            continue;
        }
        l = leader(f);
        if (plog_distributed_applied_next(f->n[2].d) + 16 >= plog_distributed_applied_next(f->n[l].d)) {
            caught = plog_test_now_ms() - start_ms;
            break;
        }
        plog_test_sleep_ms(1);
    }
    while (atomic_load(&fl.n) > 0)
        plog_test_sleep_ms(1);
    if (caught < 0)
        fail_msg("node3 holds %" PRIu64 " of %" PRIu64 " records after 20 s of writes",
                 plog_distributed_applied_next(f->n[2].d), plog_distributed_applied_next(f->n[l].d));
    print_message("node3 caught up after %lld ms, %" PRIu64 " entries sent, %d failed\n", (long long)caught,
                  sent, atomic_load(&fl.failed));
    produce_on_leader(f, 7, 33, vals, lens, 1);
    uint64_t last = plog_distributed_applied_next(f->n[leader(f)].d) - 1;
    struct has_arg a = {f->n[2].d, last, v[0]};
    assert_true(plog_test_wait_until(has_record, &a, 5000));
}

/* Snapshots are spaced by their cost: with a snapshot asked for after every entry
 * and a log of 256 KiB records, a node takes far fewer than one per entry, since
 * each waits 20 times as long as the last one took (SNAPSHOT_SPACING), and still
 * takes some. Before, it took one per entry (40 here, each the whole log), the
 * stall behind a black-box run's election storm. */
static void test_snapshots_are_spaced_by_their_cost(void **state)
{
    struct fixture *f = *state;
    g_snapshot_entries = 1;
    start(f, 0, true);
    assert_int_equal(leader(f), 0);
    static char v[256 * 1024];
    memset(v, 's', sizeof v);
    const uint8_t *vals[1] = {(const uint8_t *)v};
    size_t lens[1] = {sizeof v};
    uint64_t first;
    for (uint64_t seq = 1; seq <= 40; seq++)
        assert_plog_ok(plog_distributed_produce_wait(f->n[0].d, 5, seq, vals, lens, 1, &first, 5000));
    uint64_t taken = plog_distributed_snapshots_taken(f->n[0].d, NULL);
    print_message("40 entries of 256 KiB, a snapshot asked for after each: %" PRIu64 " taken\n", taken);
    assert_true(taken >= 1);
    assert_true(taken <= 20);
}

/* A follower that was down while the leader compacted past it gets the leader's
 * snapshot while it serves the records it had: those stay where they are (the
 * record log's first store keeps its inode, its records their values) and the
 * rest are appended after them. Before, the install emptied the record log and
 * wrote every record again, under readers the node had told they were there (a
 * black-box run: OUT_OF_RANGE for offsets below the node's published end). The
 * window is a re-append: a reader looping here did not hit it, the inode shows it. */
static void test_a_snapshot_installed_under_readers_keeps_the_records_they_read(void **state)
{
    struct fixture *f = *state;
    enum { BEFORE = 400, AFTER = 2000, BATCH = 10 }; /* a Raft entry a batch */
    g_snapshot_entries = 25;
    g_follower_live_ms = 200; /* the leader holds no entries for node3 once it is down */
    start_cluster(f);
    const uint8_t *vals[BATCH];
    size_t lens[BATCH];
    char v[BATCH][16];
    uint64_t first;
    for (int k = 0; k < BEFORE + AFTER; k += BATCH) {
        if (k == BEFORE) {
            struct has_arg a = {f->n[2].d, BEFORE - 1, "b399"};
            assert_true(plog_test_wait_until(has_record, &a, 5000));
            down(f, 2);
            /* Until node3 is silent for follower_live_ms, the leader's snapshots
             * keep the entries it lacks (keep_from): on a fast run every snapshot
             * below came within that time, and node3 caught up from entries. */
            plog_test_sleep_ms((int)g_follower_live_ms + 100);
        }
        for (int j = 0; j < BATCH; j++) {
            lens[j] = (size_t)snprintf(v[j], sizeof v[j], "b%d", k + j);
            vals[j] = (const uint8_t *)v[j];
        }
        int rv =
            plog_distributed_produce_wait(f->n[0].d, 7, (uint64_t)k + 1, vals, lens, BATCH, &first, 5000);
        if (rv != PLOG_OK)
            fail_msg("produce at %d: %s", k, plog_strerror(rv));
    }
    /* node3 holds about BEFORE / BATCH entries; the leader keeps 128 behind its
     * snapshot, so node3 needs the snapshot only once one covers 128 more, plus a
     * margin (a snapshot is taken as soon as the spacing allows). Without the wait,
     * 3 runs in 8 caught up from entries: snapshots written off the node thread are
     * spaced by the whole job's time. */
    struct snapped_arg sa = {f, BEFORE / BATCH + 128 + 25};
    if (!plog_test_wait_until(leader_snapped, &sa, 10000))
        fail_msg("no snapshot at index %llu or later on the leader within 10 s",
                 (unsigned long long)sa.index);
    start(f, 2, false); /* rebuilds its record log from its own snapshot and log */
    char store[sizeof f->n[2].dir + 64];
    snprintf(store, sizeof store, "%s/records/00000000000000000000.store", f->n[2].dir);
    struct stat before, after;
    assert_int_equal(stat(store, &before), 0);
    introduce(f);
    struct has_arg last = {f->n[2].d, BEFORE + AFTER - 1, "b2399"};
    if (!plog_test_wait_until(has_record, &last, 10000))
        fail_msg("node3 never caught up");
    char path[256];
    snprintf(path, sizeof path, "%s/raft/log-0", f->n[2].dir);
    if (stat(path, &after) == 0)
        fail_msg("node3 caught up without installing the leader's snapshot");
    assert_int_equal(stat(store, &after), 0);
    if (after.st_ino != before.st_ino)
        fail_msg("the install replaced the record log's first store (the records node3 served)");
    for (int k = 0; k < BEFORE + AFTER; k += 97) {
        snprintf(v[0], sizeof v[0], "b%d", k);
        assert_record(f, 2, (uint64_t)k, v[0]);
    }
}

/* The snapshot gate: a file layer under the log's I/O seam (internal/log/io.h), where
 * raftstore writes its files too. While the gate is shut, an fsync or fdatasync of a
 * file opened as .../snapshot.tmp (raftstore writes a snapshot there, then renames
 * it into place) waits until the test opens the gate; at the latest after
 * GATE_MAX_MS, so that nothing can hang for good. While slow_ms is set, every pread
 * of a record log's store (.../records/....store) by another thread than the
 * test's takes slow_ms longer: what a snapshot's encoding reads (the test's own
 * reads stay fast). Every node of the process goes through it; a node's files are
 * told apart by their paths. */
#define GATE_FDS 4096
#define GATE_MAX_MS 30000

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool shut;
    char *path[GATE_FDS];    /* the path of each descriptor opened on a snapshot.tmp */
    bool waiting[GATE_FDS];  /* ... whose sync waits at the gate */
    char *records[GATE_FDS]; /* the path of each descriptor opened on a record log's store */
    bool slowed[GATE_FDS];   /* ... whose pread is being slowed */
    atomic_int slow_ms;
    pthread_t test_thread;
    plog_io io;
} gate = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

/* set_path keeps path in paths[fd] (NULL: forgets it). Under gate.mu. */
static void set_path(char **paths, int fd, const char *path)
{
    free(paths[fd]);
    paths[fd] = path != NULL ? strdup(path) : NULL;
}

static int gate_open_file(const char *path, int flags, mode_t mode)
{
    int fd = plog_io_real()->open(path, flags, mode);
    size_t n = strlen(path), k = strlen("/snapshot.tmp");
    if (fd >= 0 && fd < GATE_FDS) {
        bool tmp = n > k && strcmp(path + n - k, "/snapshot.tmp") == 0;
        bool records = strstr(path, "/records/") != NULL && n > 6 && strcmp(path + n - 6, ".store") == 0;
        pthread_mutex_lock(&gate.mu);
        set_path(gate.path, fd, tmp ? path : NULL);
        set_path(gate.records, fd, records ? path : NULL);
        pthread_mutex_unlock(&gate.mu);
    }
    return fd;
}

static int gate_close_file(int fd)
{
    if (fd >= 0 && fd < GATE_FDS) {
        pthread_mutex_lock(&gate.mu);
        set_path(gate.path, fd, NULL);
        set_path(gate.records, fd, NULL);
        pthread_mutex_unlock(&gate.mu);
    }
    return plog_io_real()->close(fd);
}

static ssize_t gate_pread(int fd, void *p, size_t n, off_t off)
{
    int ms = atomic_load(&gate.slow_ms);
    if (ms > 0 && fd >= 0 && fd < GATE_FDS && !pthread_equal(pthread_self(), gate.test_thread)) {
        pthread_mutex_lock(&gate.mu);
        bool slow = gate.slowed[fd] = gate.records[fd] != NULL;
        pthread_mutex_unlock(&gate.mu);
        if (slow) {
            plog_test_sleep_ms(ms);
            pthread_mutex_lock(&gate.mu);
            gate.slowed[fd] = false;
            pthread_mutex_unlock(&gate.mu);
        }
    }
    return plog_io_real()->pread(fd, p, n, off);
}

/* gate_pass waits while the gate is shut if fd is a snapshot.tmp. */
static void gate_pass(int fd)
{
    if (fd < 0 || fd >= GATE_FDS)
        return;
    pthread_mutex_lock(&gate.mu);
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += GATE_MAX_MS / 1000;
    gate.waiting[fd] = gate.path[fd] != NULL && gate.shut;
    while (gate.waiting[fd] && gate.shut)
        if (pthread_cond_timedwait(&gate.cv, &gate.mu, &until) == ETIMEDOUT)
            break;
    gate.waiting[fd] = false;
    pthread_mutex_unlock(&gate.mu);
}

static int gate_fsync(int fd)
{
    gate_pass(fd);
    return plog_io_real()->fsync(fd);
}

static int gate_fdatasync(int fd)
{
    gate_pass(fd);
    return plog_io_real()->fdatasync(fd);
}

/* gate_install puts the gate, open, under every log this process opens next. */
static void gate_install(struct fixture *f)
{
    gate.io = *plog_io_real();
    gate.io.open = gate_open_file;
    gate.io.close = gate_close_file;
    gate.io.fsync = gate_fsync;
    gate.io.fdatasync = gate_fdatasync;
    gate.io.pread = gate_pread;
    gate.shut = false;
    gate.test_thread = pthread_self();
    atomic_store(&gate.slow_ms, 0);
    plog_io_set(&gate.io);
    f->gate = true;
}

static void gate_shut(void)
{
    pthread_mutex_lock(&gate.mu);
    gate.shut = true;
    pthread_mutex_unlock(&gate.mu);
}

static void gate_open(void)
{
    pthread_mutex_lock(&gate.mu);
    gate.shut = false;
    pthread_cond_broadcast(&gate.cv);
    pthread_mutex_unlock(&gate.mu);
}

static void gate_uninstall(void)
{
    plog_io_set(NULL);
    atomic_store(&gate.slow_ms, 0);
    for (int fd = 0; fd < GATE_FDS; fd++) {
        set_path(gate.path, fd, NULL);
        set_path(gate.records, fd, NULL);
    }
}

/* gate_any: some descriptor marked in flags has a path under dir. */
static bool gate_any(const bool *flags, char *const *paths, const char *dir)
{
    size_t n = strlen(dir);
    bool any = false;
    pthread_mutex_lock(&gate.mu);
    for (int fd = 0; fd < GATE_FDS && !any; fd++)
        any = flags[fd] && paths[fd] != NULL && strncmp(paths[fd], dir, n) == 0 && paths[fd][n] == '/';
    pthread_mutex_unlock(&gate.mu);
    return any;
}

/* gate_holds: a sync of a snapshot.tmp under dir waits at the gate. */
static bool gate_holds(void *dir)
{
    return gate_any(gate.waiting, gate.path, dir);
}

/* gate_slows: a pread of a record log's store under dir is being slowed. */
static bool gate_slows(void *dir)
{
    return gate_any(gate.slowed, gate.records, dir);
}

/* The answers to produces that may come after their test gave up on them (static:
 * an answer can come as late as the node's close, after the test failed). */
static struct acked {
    atomic_bool done;
    int rv;
} g_acked[256];

static void acked_done(void *arg, int rv, uint64_t first, uint64_t count)
{
    (void)first, (void)count;
    struct acked *a = arg;
    a->rv = rv;
    atomic_store(&a->done, true);
}

static bool is_acked(void *arg)
{
    return atomic_load(&((struct acked *)arg)->done);
}

/* produce_acked produces value (the k-th record of a test) on d and fails the test
 * unless it is acknowledged within timeout_ms. Unlike produce, it does not wait for
 * an answer that does not come: a node thread stuck in an fsync gives none. */
static void produce_acked(plog_distributed *d, int k, const char *value, int timeout_ms)
{
    struct acked *a = &g_acked[k];
    const uint8_t *vals[1] = {(const uint8_t *)value};
    size_t lens[1] = {strlen(value)};
    assert_true(k >= 0 && k < (int)(sizeof g_acked / sizeof g_acked[0]));
    atomic_store(&a->done, false);
    assert_plog_ok(plog_distributed_produce(d, 0, 0, vals, lens, 1, acked_done, a));
    if (!plog_test_wait_until(is_acked, a, timeout_ms))
        fail_msg("produce %s not acknowledged within %d ms", value, timeout_ms);
    if (a->rv != PLOG_OK)
        fail_msg("produce %s: %s", value, plog_strerror(a->rv));
}

/* wait_taken waits up to timeout_ms until d has taken more than taken snapshots, and
 * returns the index of its last (at least g_snapshot_entries). */
static uint64_t wait_taken(plog_distributed *d, uint64_t taken, int timeout_ms)
{
    uint64_t at = 0;
    for (int64_t until = plog_test_now_ms() + timeout_ms;
         plog_distributed_snapshots_taken(d, &at) == taken && plog_test_now_ms() < until;)
        plog_test_sleep_ms(5);
    assert_true(plog_distributed_snapshots_taken(d, &at) > taken);
    assert_true(at >= g_snapshot_entries);
    return at;
}

/* A snapshot the leader took is written and fsynced off its node thread: while the
 * fsync of its snapshot file is held (the gate), the leader goes on leading, and 20
 * records produced meanwhile are acknowledged within 5 s each and reach every node.
 * The snapshot counts as taken, and its entries may go, only once it is durable:
 * none is counted while the fsync is held; after it, one is, and the snapshot file
 * holds its index. Before, the node thread wrote the snapshot: held in the fsync, it
 * answered no produce (a snapshot of 10-20 MB stalled it for longer than the
 * followers' election timeouts, and a black-box run saw a new leader every few
 * seconds). */
static void test_a_snapshot_is_written_off_the_node_thread(void **state)
{
    struct fixture *f = *state;
    g_snapshot_entries = 20;
    /* A produce goes to one leader: under a loaded machine's SAN=1 an election (a
     * follower timing out) would answer it "not leader". This is about the node
     * thread, whose stall in the old code lasted as long as the gate was shut. */
    g_election_timeout_ms = 1000;
    gate_install(f);
    start_cluster(f);
    int l = leader(f);
    uint64_t taken = plog_distributed_snapshots_taken(f->n[l].d, NULL);
    gate_shut();
    char v[32];
    int k = 0;
    for (; k < 100 && !gate_holds(f->n[l].dir); k++) {
        snprintf(v, sizeof v, "before-%d", k);
        produce_acked(f->n[l].d, k, v, 5000);
    }
    if (!plog_test_wait_until(gate_holds, f->n[l].dir, 5000))
        fail_msg("the leader took no snapshot after %d records", k);
    for (int j = 0; j < 20; j++) {
        snprintf(v, sizeof v, "during-%d", j);
        produce_acked(f->n[l].d, k + j, v, 5000);
    }
    for (int i = 0; i < N; i++)
        for (int j = 0; j < 20; j++) {
            snprintf(v, sizeof v, "during-%d", j);
            assert_record(f, i, (uint64_t)(k + j), v);
        }
    assert_true(gate_holds(f->n[l].dir)); /* all of it while the fsync was held */
    assert_true(plog_distributed_leader(f->n[l].d, NULL, 0));
    assert_int_equal(plog_distributed_snapshots_taken(f->n[l].d, NULL), taken);

    gate_open();
    uint64_t at = wait_taken(f->n[l].d, taken, 5000);
    /* Stopped, the node has no write in flight: its snapshot file is the last taken. */
    plog_distributed_stop(f->n[l].d);
    plog_distributed_snapshots_taken(f->n[l].d, &at);
    char path[sizeof f->n[l].dir + 32];
    snprintf(path, sizeof path, "%s/raft/snapshot", f->n[l].dir);
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    uint8_t hdr[12];
    size_t got = fread(hdr, 1, sizeof hdr, fp);
    fclose(fp);
    assert_int_equal(got, sizeof hdr);
    uint64_t index = 0;
    for (int i = 4; i < 12; i++) /* magic u32, then the index u64 (raftstore.h) */
        index = index << 8 | hdr[i];
    assert_int_equal(index, at);
}

/* A snapshot is encoded off the node thread too, from a point-in-time view of the
 * record log: while the snapshot's reads of the leader's record log are slowed
 * (150 ms a read, a few seconds for the ~4 MB of 128 KiB records that left the
 * store's buffer), the leader acknowledges 10 more records within 3 s each. The
 * snapshot holds exactly the records applied at its index, none of those appended
 * while it was encoded: the leader, restarted from it, has every record once, at
 * its offset. Before, the node thread encoded the snapshot (and the core copied
 * it): it answered nothing until the encoding was done (a black-box run saw the
 * node thread stall 60-430 ms for 50-84 MB, and an election after each stall on
 * the leader). */
static void test_a_snapshot_is_encoded_off_the_node_thread(void **state)
{
    struct fixture *f = *state;
    g_snapshot_entries = 40;
    g_election_timeout_ms = 1000; /* as in the test above: one leader throughout */
    gate_install(f);
    atomic_store(&gate.slow_ms, 150);
    start_cluster(f);
    int l = leader(f);
    uint64_t taken = plog_distributed_snapshots_taken(f->n[l].d, NULL);
    size_t big = 128u << 10;
    char *v = malloc(big + 1);
    assert_non_null(v);
    memset(v, 'x', big);
    v[big] = '\0';
    int k = 0;
    for (; k < 60 && !gate_slows(f->n[l].dir); k++) {
        snprintf(v, 32, "big-%03d", k); /* its NUL then ends the value: put an x back */
        v[strlen(v)] = 'x';
        produce_acked(f->n[l].d, k, v, 5000);
    }
    if (!plog_test_wait_until(gate_slows, f->n[l].dir, 5000))
        fail_msg("the leader took no snapshot after %d records", k);
    char small[32];
    for (int j = 0; j < 10; j++) {
        snprintf(small, sizeof small, "during-%d", j);
        produce_acked(f->n[l].d, k + j, small, 3000);
        if (j == 0) { /* acknowledged while the encoding went on (it takes seconds): */
            assert_int_equal(plog_distributed_snapshots_taken(f->n[l].d, NULL), taken);
            /* its reads go on (waited for: between two reads none is being slowed,
             * and a SAN run sampled such a gap) */
            assert_true(plog_test_wait_until(gate_slows, f->n[l].dir, 1000));
        }
    }
    atomic_store(&gate.slow_ms, 0);
    wait_taken(f->n[l].d, taken, 10000);

    /* Restarted, the node restores the records from its snapshot and applies the
     * entries after its index again: a record encoded past the index would come
     * twice. */
    down(f, l);
    start(f, l, false);
    introduce(f);
    for (int j = 0; j < 10; j++) {
        snprintf(small, sizeof small, "during-%d", j);
        assert_record(f, l, (uint64_t)(k + j), small);
    }
    snprintf(v, 32, "big-%03d", k - 1);
    v[strlen(v)] = 'x';
    assert_record(f, l, (uint64_t)k - 1, v);
    free(v);
    plog_test_sleep_ms(200);
    assert_int_equal(plog_distributed_applied_next(f->n[l].d), (uint64_t)k + 10);
}

/* fail_stop makes the writes to the files of node1's (the leader's) dir/sub fail
 * with ENOSPC from now on, produces, and checks the fail-stop: the node stops for
 * good and says why (what), names no leader any more, and answers the produce
 * "outcome unknown" (its entry may commit under the next leader), so that a retry
 * with the same (client id, seq) on the new leader gets offset 1, once. */
static void fail_stop(struct fixture *f, const char *sub, const char *what)
{
    char dir[200];
    snprintf(dir, sizeof dir, "%s/%s", f->n[0].dir, sub);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "mkdir -p %s", dir);
    assert_int_equal(system(cmd), 0);
    simfs_install();
    f->simfs = true;
    assert_int_equal(simfs_start(dir, 1), 0); /* faults will hit these files only */
    start_cluster(f);
    assert_int_equal(produce(f->n[0].d, 7, 1, "a"), 0);

    simfs_fail_watched_only(true);
    simfs_fail_from(1, SIMFS_WRITE, ENOSPC);
    size_t big = 1u << 20; /* more than a store's buffer: written at once */
    char *v = malloc(big);
    memset(v, 'b', big);
    const uint8_t *vals[1] = {(const uint8_t *)v};
    size_t lens[1] = {big};
    uint64_t first = 0;
    assert_int_equal(plog_distributed_produce_wait(f->n[0].d, 7, 2, vals, lens, 1, &first, 5000),
                     PLOG_EINDOUBT);
    /* The fault may fire after the produce's answer: a CI rehearsal found it not
     * fired yet at this point, once. */
    for (int64_t until = plog_test_now_ms() + 5000; !simfs_fired() && plog_test_now_ms() < until;)
        plog_test_sleep_ms(5);
    assert_true(simfs_fired());
    for (int64_t until = plog_test_now_ms() + 5000;
         !atomic_load(&f->n[0].has_failed) && plog_test_now_ms() < until;)
        plog_test_sleep_ms(5);
    if (!atomic_load(&f->n[0].has_failed) || strstr(f->n[0].failed, what) == NULL ||
        strstr(f->n[0].failed, "No space left") == NULL)
        fail_msg("failed said: \"%s\"", f->n[0].failed);
    assert_false(plog_distributed_leader(f->n[0].d, NULL, 0));

    int l = leader(f); /* node1 is out: node2 or node3 */
    assert_int_not_equal(l, 0);
    assert_int_equal(plog_distributed_produce_wait(f->n[l].d, 7, 2, vals, lens, 1, &first, 5000), PLOG_OK);
    assert_int_equal(first, 1);
    assert_int_equal(produce(f->n[l].d, 7, 3, "c"), 2);
    free(v);
    assert_false(atomic_load(&f->n[1].has_failed));
    assert_false(atomic_load(&f->n[2].has_failed));
}

/* The leader's record log fails (its disk is full) after Raft committed an entry.
 * Before, the node went on leading with a dead state machine: every produce was
 * committed, and answered as failed. */
static void test_a_leader_whose_record_log_fails_stops_and_its_produce_is_retried_once(void **state)
{
    fail_stop(*state, "records", "record log");
}

/* The leader's Raft log fails. Before, the node thread stopped but the node went
 * on naming itself leader (GetServers, "not leader; leader at" itself). */
static void test_a_leader_whose_raft_log_fails_stops_and_names_no_leader(void **state)
{
    fail_stop(*state, "raft/log-0", "raft storage");
}

/* put_be writes v big-endian in n bytes at p, as the state machine's snapshot does. */
static void put_be(uint8_t *p, uint64_t v, int n)
{
    for (int i = n - 1; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

/* A snapshot that names a client twice in its deduplication table is refused as
 * corrupt when the node starts (before, the second copy overwrote the first one's
 * node in the table and lost the clients chained after it in the same bucket: a
 * leak, and their retries no longer recognised; a fuzzer's find). */
static void test_a_snapshot_naming_a_client_twice_is_refused(void **state)
{
    struct fixture *f = *state;
    char err[256];
    plog_raftstore *s = raft_store_of(f, 0);
    /* "PLSM", 3 clients (6, 616, 6 again), each (id, seq, first, count); no records */
    static const uint64_t clients[3][4] = {{6, 1, 0, 1}, {616, 1, 0, 1}, {6, 2, 0, 1}};
    uint8_t data[8 + 3 * 32];
    put_be(data, 0x504c534du, 4);
    put_be(data + 4, 3, 4);
    for (int i = 0; i < 3; i++)
        for (int k = 0; k < 4; k++)
            put_be(data + 8 + i * 32 + k * 8, clients[i][k], 8);
    plog_raft_snapshot snap = {.index = 10, .term = 1, .data = data, .len = sizeof data};
    snap.conf.n = 1;
    snap.conf.servers[0] =
        (plog_raft_server){.id = plog_distributed_id(f->n[0].name), .role = PLOG_RAFT_VOTER};
    assert_plog_ok(plog_raftstore_save_snapshot(s, &snap, true));
    plog_raftstore_close(s);
    open_node(f, 0, false);
    int rv = plog_distributed_start(f->n[0].d, err, sizeof err);
    if (rv != PLOG_ECORRUPT || strstr(err, "restore the snapshot at 10") == NULL)
        fail_msg("start on a snapshot naming a client twice: %s: %s", plog_strerror(rv), err);
}

/* A Raft log whose entries are of a later term than the stored hard state (its
 * hardstate file lost, or another directory's) is refused naming the file (before:
 * "raft: invalid argument"). */
static void test_a_log_past_its_hard_state_is_refused_naming_the_file(void **state)
{
    struct fixture *f = *state;
    char err[512];
    plog_raftstore *s = raft_store_of(f, 0);
    plog_raft_conf c = {.n = 1};
    c.servers[0] = (plog_raft_server){.id = plog_distributed_id(f->n[0].name), .role = PLOG_RAFT_VOTER};
    uint8_t buf[PLOG_RAFT_CONF_MAX_BYTES];
    plog_raft_entry e = {.term = 3, .index = 1, .type = PLOG_RAFT_ENTRY_CONFIG, .data = buf};
    e.len = plog_raft_conf_encode(&c, buf);
    assert_plog_ok(plog_raftstore_append(s, &e, 1));
    assert_plog_ok(plog_raftstore_sync(s));
    plog_raftstore_close(s); /* no hard state: term 0 */
    open_node(f, 0, false);
    int rv = plog_distributed_start(f->n[0].d, err, sizeof err);
    if (rv != PLOG_ECORRUPT || strstr(err, "index 1 of term 3, past the stored term 0") == NULL ||
        strstr(err, "/raft/hardstate is lost") == NULL)
        fail_msg("start on a log past its hard state: %s: %s", plog_strerror(rv), err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_records_reach_every_node_and_a_node_that_left_stops_receiving,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_node_bootstrapped_again_on_an_emptied_directory_stays_apart,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_retried_produce_is_applied_once_even_on_a_new_leader, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_a_closing_leader_hands_over, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_restarted_cluster_keeps_every_acknowledged_record, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_read_index_covers_every_acknowledged_produce, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_late_node_catches_up_from_a_snapshot, setup, teardown),
        cmocka_unit_test_setup_teardown(test_snapshots_are_spaced_by_their_cost, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_snapshot_is_written_off_the_node_thread, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_snapshot_is_encoded_off_the_node_thread, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_node_that_joins_under_steady_writes_catches_up, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_a_snapshot_installed_under_readers_keeps_the_records_they_read,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_a_leader_whose_record_log_fails_stops_and_its_produce_is_retried_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_leader_whose_raft_log_fails_stops_and_names_no_leader, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_a_bootstrapped_node_alone_restarts_with_its_records, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_a_node_opened_but_not_started_writes_no_raft_state, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_a_snapshot_naming_a_client_twice_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_log_past_its_hard_state_is_refused_naming_the_file, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_a_node_that_crashed_mid_bootstrap_ends_up_bootstrapped, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
