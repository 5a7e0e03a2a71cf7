/* discovery_test.c - membership over the real transport, in one process (Go:
 * discovery/membership_test.go): three members join and see each other, a leave
 * is seen as left (never failed) within the book's 3 s; bad
 * membership messages (garbage, unknown version, oversize, a forged sender, a
 * client certificate) are dropped and counted and the node keeps working. Node
 * certificates from common/certs/gencert, the fast timing profile. A failure (a
 * member that stops without a word) is tested with real processes killed with
 * SIGKILL (cmd/proglog/cluster_test.c) and in the simulator (swim_test.c): closing
 * a member's sockets in this process while the others are still dialing it makes
 * nng 1.5.2 leak the half-open TLS connection. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal/agent/testcluster.h"
#include "internal/discovery/discovery.h"
#include "internal/err/err.h"
#include "testing/testing.h"

#define N 4

struct node {
    struct fixture *f;
    plog_discovery *d;
    char name[16], addr[32], rpc[32];
    pthread_mutex_t mu;
    plog_membership_event ev[64];
    int nev;
};

struct fixture {
    char dir[64], policy[128];
    plog_auth *acl;
    struct node n[N];
};

static void handler(void *arg, const plog_membership_event *ev)
{
    struct node *n = arg;
    pthread_mutex_lock(&n->mu);
    if (n->nev < 64)
        n->ev[n->nev++] = *ev;
    pthread_mutex_unlock(&n->mu);
}

static const char *cert(const char *name, const char *suffix)
{
    static char bufs[8][600];
    static int next;
    char *b = bufs[next++ % 8];
    snprintf(b, sizeof bufs[0], "%s/%s%s", tc_certs(), name, suffix);
    return b;
}

/* start opens member i, joining through member join (-1: none). */
static void start(struct fixture *f, int i, int join)
{
    struct node *n = &f->n[i];
    const char *seeds[1] = {join >= 0 ? f->n[join].addr : NULL};
    plog_gossip_tag tags[] = {{"rpc_addr", n->rpc}};
    plog_discovery_config dc = {
        .name = n->name,
        .bind_addr = n->addr,
        .tags = tags,
        .ntags = 1,
        .start_join_addrs = seeds,
        .njoin = join >= 0 ? 1 : 0,
        .cert_file = cert(n->name, ".pem"),
        .key_file = cert(n->name, "-key.pem"),
        .ca_file = cert("ca", ".pem"),
        .acl = f->acl,
        .fast = true,
        .handler = handler,
        .arg = n,
    };
    char err[256];
    if (plog_discovery_open(&dc, &n->d, err, sizeof err) != PLOG_OK)
        fail_msg("open %s: %s", n->name, err);
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    plog_test_tmpdir("disc", f->dir, sizeof f->dir);
    snprintf(f->policy, sizeof f->policy, "%s/policy.csv", f->dir);
    FILE *p = fopen(f->policy, "w");
    assert_non_null(p);
    for (int i = 1; i <= N; i++)
        fprintf(p, "p, node%d, *, gossip\n", i);
    fclose(p);
    char err[PLOG_AUTH_ERRMSG_SIZE];
    assert_plog_ok(plog_auth_new(NULL, f->policy, &f->acl, err, sizeof err));
    for (int i = 0; i < N; i++) {
        struct node *n = &f->n[i];
        n->f = f;
        pthread_mutex_init(&n->mu, NULL);
        snprintf(n->name, sizeof n->name, "node%d", i + 1);
        snprintf(n->addr, sizeof n->addr, "127.0.0.1:%d", plog_test_free_port());
        snprintf(n->rpc, sizeof n->rpc, "127.0.0.1:%d", 9000 + i);
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    /* Everyone leaves before anyone closes: nobody then dials a closing node
     * (nng 1.5.2 leaks a TLS connection whose peer in the same process closes
     * while it is being set up). */
    for (int i = 0; i < N; i++)
        if (f->n[i].d != NULL)
            plog_discovery_leave(f->n[i].d);
    for (int i = 0; i < N; i++) {
        plog_discovery_close(f->n[i].d);
        pthread_mutex_destroy(&f->n[i].mu);
    }
    plog_auth_free(f->acl);
    plog_test_rmrf(f->dir);
    free(f);
    return 0;
}

/* count_events counts n's events of type about name. */
static int count_events(struct node *n, int type, const char *name)
{
    int k = 0;
    pthread_mutex_lock(&n->mu);
    for (int i = 0; i < n->nev; i++)
        if (n->ev[i].type == type && strcmp(n->ev[i].member.name, name) == 0)
            k++;
    pthread_mutex_unlock(&n->mu);
    return k;
}

struct ev_arg {
    struct node *n;
    int type;
    const char *name;
};

static bool has_event(void *arg)
{
    struct ev_arg *a = arg;
    return count_events(a->n, a->type, a->name) > 0;
}

static bool wait_event(struct node *n, int type, const char *name, int timeout_ms)
{
    struct ev_arg a = {n, type, name};
    return plog_test_wait_until(has_event, &a, timeout_ms);
}

/* status_of returns name's status in n's view (0: unknown). */
static int status_of(struct node *n, const char *name)
{
    plog_membership_member *v;
    size_t k;
    assert_plog_ok(plog_discovery_members(n->d, &v, &k));
    int st = 0;
    for (size_t i = 0; i < k; i++)
        if (strcmp(v[i].name, name) == 0)
            st = v[i].status;
    free(v);
    return st;
}

static void join_three(struct fixture *f)
{
    start(f, 0, -1);
    start(f, 1, 0);
    start(f, 2, 0);
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++)
            if (i != j && !wait_event(&f->n[i], PLOG_MEMBERSHIP_JOIN, f->n[j].name, 3000)) {
                for (int k = 0; k < 3; k++) {
                    plog_membership_member *v;
                    size_t m;
                    plog_discovery_members(f->n[k].d, &v, &m);
                    for (size_t x = 0; x < m; x++)
                        print_message("%s sees %s status %d\n", f->n[k].name, v[x].name, v[x].status);
                    free(v);
                    plog_discovery_stats st;
                    plog_discovery_stats_get(f->n[k].d, &st);
                    print_message("%s sent %llu dropped %llu recv %llu unauth %llu denied %llu tlsfail %llu "
                                  "fmt %llu spoof %llu\n",
                                  f->n[k].name, (unsigned long long)st.transport.sent,
                                  (unsigned long long)st.transport.send_dropped,
                                  (unsigned long long)st.transport.received,
                                  (unsigned long long)st.transport.unauthenticated,
                                  (unsigned long long)st.transport.denied,
                                  (unsigned long long)st.transport.tls_failures,
                                  (unsigned long long)st.bad_format, (unsigned long long)st.spoofed);
                    for (int e = 0; e < f->n[k].nev; e++)
                        print_message("%s event %d %s\n", f->n[k].name, f->n[k].ev[e].type,
                                      f->n[k].ev[e].member.name);
                }
                fail_msg("%s does not see %s join", f->n[i].name, f->n[j].name);
            }
}

/* Go: TestMembership (joins). */
static void test_membership_three_members_join_and_see_each_other(void **state)
{
    struct fixture *f = *state;
    join_three(f);
    for (int i = 0; i < 3; i++) {
        plog_membership_member *v;
        size_t k;
        assert_plog_ok(plog_discovery_members(f->n[i].d, &v, &k));
        assert_int_equal(k, 3);
        for (size_t j = 0; j < k; j++) {
            assert_int_equal(v[j].status, PLOG_GOSSIP_ALIVE);
            assert_non_null(plog_membership_tag(&v[j], "rpc_addr"));
        }
        free(v);
        /* The join event carries the tags the handler needs. */
        pthread_mutex_lock(&f->n[i].mu);
        for (int e = 0; e < f->n[i].nev; e++) {
            const char *rpc = plog_membership_tag(&f->n[i].ev[e].member, "rpc_addr");
            assert_non_null(rpc);
            assert_true(strncmp(rpc, "127.0.0.1:900", 13) == 0);
        }
        pthread_mutex_unlock(&f->n[i].mu);
    }
}

/* Go: TestMembership (leave): a graceful leave is "left", not "failed". */
static void test_membership_leave_is_seen_as_left_within_3s(void **state)
{
    struct fixture *f = *state;
    join_three(f);
    int64_t t0 = plog_test_now_ms();
    plog_discovery_leave(f->n[2].d);
    int64_t t1 = plog_test_now_ms();
    plog_discovery_close(f->n[2].d);
    f->n[2].d = NULL;
    for (int i = 0; i < 2; i++) {
        assert_true(wait_event(&f->n[i], PLOG_MEMBERSHIP_LEAVE, "node3", 3000));
        print_message("%s saw the leave after %lld ms (leave returned after %lld ms)\n", f->n[i].name,
                      (long long)(plog_test_now_ms() - t0), (long long)(t1 - t0));
        assert_int_equal(status_of(&f->n[i], "node3"), PLOG_GOSSIP_LEFT);
        assert_int_equal(count_events(&f->n[i], PLOG_MEMBERSHIP_FAILED, "node3"), 0);
    }
}

static void ignore(void *arg, const char *from, const uint8_t *buf, size_t len)
{
    (void)arg, (void)from, (void)buf, (void)len;
}

/* sender opens a bare transport with the certificate files of who. */
static plog_transport *sender(const char *certbase)
{
    char addr[32], err[256];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", plog_test_free_port());
    plog_transport_config tc = {
        .bind_addr = addr,
        .cert_file = cert(certbase, ".pem"),
        .key_file = cert(certbase, "-key.pem"),
        .ca_file = cert("ca", ".pem"),
        .recv = ignore,
    };
    plog_transport *t;
    if (plog_transport_open(&tc, &t, err, sizeof err) != PLOG_OK)
        fail_msg("sender %s: %s", certbase, err);
    return t;
}

struct stat_arg {
    plog_discovery *d;
    size_t field; /* offset into plog_discovery_stats of a uint64_t */
};

static bool stat_positive(void *arg)
{
    struct stat_arg *a = arg;
    plog_discovery_stats st;
    plog_discovery_stats_get(a->d, &st);
    uint64_t v;
    memcpy(&v, (const char *)&st + a->field, sizeof v);
    return v > 0;
}

#define WAIT_STAT(d, member)                        \
    assert_true(plog_test_wait_until(stat_positive, \
                                     &(struct stat_arg){(d), offsetof(plog_discovery_stats, member)}, 5000))

static void test_membership_drops_and_counts_bad_messages_and_keeps_working(void **state)
{
    struct fixture *f = *state;
    start(f, 0, -1);
    plog_discovery *d = f->n[0].d;
    /* node4's certificate is in the policy: its messages reach the decoder. */
    plog_transport *t = sender("node4");
    const char *to = f->n[0].addr;
    uint8_t garbage[64];
    for (size_t i = 0; i < sizeof garbage; i++)
        garbage[i] = (uint8_t)(i * 37 + 1);
    garbage[0] = PLOG_GOSSIP_VERSION;
    plog_gossip_msg ping = {.type = PLOG_GOSSIP_PING,
                            .seq = 7,
                            .from = "node4",
                            .from_addr = "tls+tcp://127.0.0.1:1",
                            .target = "node1"};
    uint8_t *good;
    size_t glen;
    assert_plog_ok(plog_gossip_encode_alloc(&ping, &good, &glen));
    uint8_t *versioned = malloc(glen);
    memcpy(versioned, good, glen);
    versioned[0] = PLOG_GOSSIP_VERSION + 1;
    plog_gossip_msg forged = ping;
    forged.from = "node2"; /* node4 speaking for node2 */
    uint8_t *fbuf;
    size_t flen;
    assert_plog_ok(plog_gossip_encode_alloc(&forged, &fbuf, &flen));
    size_t big = PLOG_GOSSIP_MAX_MSG + 100;
    uint8_t *oversize = calloc(1, big);
    oversize[0] = PLOG_GOSSIP_VERSION;
    /* Until each shows up (the first messages may wait for the connection). */
    for (int round = 0; round < 50; round++) {
        plog_transport_send(t, to, garbage, sizeof garbage);
        plog_transport_send(t, to, versioned, glen);
        plog_transport_send(t, to, fbuf, flen);
        plog_transport_send(t, to, oversize, big);
        plog_discovery_stats st;
        plog_discovery_stats_get(d, &st);
        if (st.bad_format > 0 && st.bad_version > 0 && st.spoofed > 0 && st.transport.oversize > 0)
            break;
        plog_test_sleep_ms(50);
    }
    WAIT_STAT(d, bad_format);
    WAIT_STAT(d, bad_version);
    WAIT_STAT(d, spoofed);
    WAIT_STAT(d, transport.oversize);
    /* A client certificate (root) may not gossip at all. */
    plog_transport *root = sender("root-client");
    for (int round = 0; round < 50; round++) {
        plog_transport_send(root, to, good, glen);
        plog_discovery_stats st;
        plog_discovery_stats_get(d, &st);
        if (st.transport.denied > 0)
            break;
        plog_test_sleep_ms(50);
    }
    WAIT_STAT(d, transport.denied);
    plog_discovery_stats st;
    plog_discovery_stats_get(d, &st);
    print_message("dropped: format=%llu version=%llu spoofed=%llu oversize=%llu denied=%llu\n",
                  (unsigned long long)st.bad_format, (unsigned long long)st.bad_version,
                  (unsigned long long)st.spoofed, (unsigned long long)st.transport.oversize,
                  (unsigned long long)st.transport.denied);
    /* None of it made a member, and the node still works: two real ones join. */
    assert_int_equal(status_of(&f->n[0], "node4"), 0);
    assert_int_equal(status_of(&f->n[0], "root"), 0);
    start(f, 1, 0);
    start(f, 2, 0);
    assert_true(wait_event(&f->n[0], PLOG_MEMBERSHIP_JOIN, "node2", 3000));
    assert_true(wait_event(&f->n[0], PLOG_MEMBERSHIP_JOIN, "node3", 3000));
    plog_transport_close(root);
    plog_transport_close(t);
    free(good);
    free(versioned);
    free(fbuf);
    free(oversize);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_membership_three_members_join_and_see_each_other, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_membership_leave_is_seen_as_left_within_3s, setup, teardown),
        cmocka_unit_test_setup_teardown(test_membership_drops_and_counts_bad_messages_and_keeps_working,
                                        setup, teardown),
    };
    return cmocka_run_group_tests_name("discovery", tests, NULL, NULL);
}
