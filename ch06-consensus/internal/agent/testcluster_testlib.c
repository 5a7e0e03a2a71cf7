/* testcluster_testlib.c - real proglog processes for the cluster tests and the
 * benchmark (see testcluster.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "internal/agent/testcluster.h"
#include "internal/agent/agent.h"
#include "internal/client/client.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api/v1/log.pb-c.h"
#include "internal/err/err.h"
#include "internal/rpc/envelope.h"
#include "internal/tls/config.h"

const char *tc_certs(void)
{
    static char dir[512];
    if (dir[0] != '\0')
        return dir;
    const char *build = getenv("PLOG_BUILD"), *chapter = getenv("PLOG_CHAPTER");
    char cmd[1800], *out = NULL;
    snprintf(dir, sizeof dir, "%s/certs", build != NULL ? build : "build");
    snprintf(cmd, sizeof cmd, "%s/../common/certs/gencert '%s'", chapter != NULL ? chapter : ".", dir);
    for (int i = 1; i <= TC_MAX; i++) {
        size_t l = strlen(cmd);
        snprintf(cmd + l, sizeof cmd - l, " --node node%d --loopback-node node%d", i, i);
    }
    int rc = plog_test_sh(cmd, 60000, &out);
    if (rc != 0)
        fail_msg("%s: exit %d: %s", cmd, rc, out != NULL ? out : "");
    free(out);
    return dir;
}

void tc_init(struct tc *c, int n)
{
    assert_true(n > 0 && n <= TC_MAX);
    const char *profile = c->profile;
    bool own_hosts = c->own_hosts;
    memset(c, 0, sizeof *c);
    c->profile = profile != NULL ? profile : "fast";
    c->own_hosts = own_hosts;
    c->n = n;
    tc_certs();
    plog_test_tmpdir("cluster", c->dir, sizeof c->dir);
    snprintf(c->policy, sizeof c->policy, "%s/policy.csv", c->dir);
    FILE *f = fopen(c->policy, "w");
    assert_non_null(f);
    fprintf(f, "p, root, *, produce\np, root, *, consume\np, root, *, admin\n");
    for (int i = 1; i <= TC_MAX; i++)
        fprintf(f, "p, node%d, *, gossip\np, node%d, *, consume\n", i, i);
    fclose(f);
    for (int i = 0; i < n; i++) {
        struct tc_node *nd = &c->node[i];
        snprintf(nd->name, sizeof nd->name, "node%d", i + 1);
        snprintf(nd->dir, sizeof nd->dir, "%s/%s", c->dir, nd->name);
        snprintf(nd->host, sizeof nd->host, "127.0.0.%d", own_hosts ? i + 2 : 1);
        nd->gport = plog_test_free_port_on(nd->host);
        nd->rport = plog_test_free_port_on(nd->host);
        nd->mport = plog_test_free_port();
        nd->aport = plog_test_free_port_on(nd->host);
    }
}

void tc_start(struct tc *c, int i, int join)
{
    struct tc_node *nd = &c->node[i];
    static char s[20][600];
    const char *certs = tc_certs();
    char own[48];
    snprintf(own, sizeof own, "%s%s", nd->name, c->own_hosts ? "-lo" : "");
    const char *peer = nd->peer != NULL && nd->peer[0] != '\0' ? nd->peer : own;
    snprintf(s[0], sizeof s[0], "%s", plog_test_bin("proglog"));
    snprintf(s[1], sizeof s[1], "%s:%d", nd->host, nd->gport);
    snprintf(s[2], sizeof s[2], "%d", nd->rport);
    snprintf(s[3], sizeof s[3], "%s/%s.pem", certs, own);
    snprintf(s[4], sizeof s[4], "%s/%s-key.pem", certs, own);
    snprintf(s[5], sizeof s[5], "%s/ca.pem", certs);
    snprintf(s[6], sizeof s[6], "%s/%s.pem", certs, peer);
    snprintf(s[7], sizeof s[7], "%s/%s-key.pem", certs, peer);
    snprintf(s[8], sizeof s[8], "%s:%d", join >= 0 ? c->node[join].host : "",
             join >= 0 ? c->node[join].gport : 0);
    snprintf(s[9], sizeof s[9], "127.0.0.1:%d", nd->mport);
    snprintf(s[10], sizeof s[10], "%d", nd->aport);
    char *argv[40] = {s[0],
                      "--node-name",
                      (char *)(nd->name_override != NULL ? nd->name_override : nd->name),
                      "--data-dir",
                      nd->dir,
                      "--bind-addr",
                      s[1],
                      "--rpc-port",
                      s[2],
                      "--server-tls-cert-file",
                      s[3],
                      "--server-tls-key-file",
                      s[4],
                      "--server-tls-ca-file",
                      s[5],
                      "--peer-tls-cert-file",
                      s[6],
                      "--peer-tls-key-file",
                      s[7],
                      "--peer-tls-ca-file",
                      s[5],
                      "--acl-policy-file",
                      c->policy,
                      "--profile",
                      (char *)c->profile,
                      "--metrics-addr",
                      s[9]};
    int n = 27;
    argv[n++] = "--raft-port";
    argv[n++] = s[10];
    if (nd->raft_advertise[0] != '\0') {
        argv[n++] = "--raft-advertise-addr";
        argv[n++] = nd->raft_advertise;
    }
    if (join >= 0) {
        argv[n++] = "--start-join-addrs";
        argv[n++] = s[8];
    } else {
        argv[n++] = "--bootstrap";
    }
    for (int k = 0; k < 8 && nd->extra[k] != NULL; k++) {
        assert_true(n + 1 < (int)(sizeof argv / sizeof argv[0]));
        argv[n++] = (char *)nd->extra[k];
    }
    argv[n] = NULL;
    if (nd->proc.out[0] != '\0')
        unlink(nd->proc.out);
    plog_test_spawn(&nd->proc, argv);
    if (!plog_test_wait_output(&nd->proc, "msg=serving", 15000)) {
        char *out = plog_test_output(&nd->proc);
        plog_test_kill(&nd->proc, SIGKILL, 1000);
        fail_msg("%s did not start: %s", nd->name, out);
    }
    nd->running = true;
}

void tc_stop(struct tc *c, int i, int sig)
{
    struct tc_node *nd = &c->node[i];
    if (!nd->running)
        return;
    nd->running = false;
    plog_test_kill(&nd->proc, sig, 10000);
}

void tc_fini(struct tc *c)
{
    for (int i = 0; i < c->n; i++) {
        tc_stop(c, i, SIGTERM);
        if (c->node[i].proc.out[0] != '\0')
            unlink(c->node[i].proc.out);
    }
    if (c->dir[0] != '\0')
        plog_test_rmrf(c->dir);
}

plog_client *tc_client(struct tc *c, int i)
{
    char url[64], err[PLOG_TLS_ERRMSG_SIZE], cert[600], key[600], ca[600];
    const char *certs = tc_certs();
    snprintf(url, sizeof url, "tls+tcp://%s:%d", c->node[i].host, c->node[i].rport);
    snprintf(cert, sizeof cert, "%s/root-client.pem", certs);
    snprintf(key, sizeof key, "%s/root-client-key.pem", certs);
    snprintf(ca, sizeof ca, "%s/ca.pem", certs);
    plog_client_config cfg = {.timeout_ms = 5000};
    if (plog_tls_config_client(cert, key, ca, c->node[i].host, &cfg.tls, err, sizeof err) != 0)
        fail_msg("client TLS: %s", err);
    plog_client *cl;
    plog_rpc_status st;
    int rv = plog_client_open(url, &cfg, &cl, &st);
    nng_tls_config_free(cfg.tls);
    if (rv != PLOG_STATUS_OK)
        fail_msg("client to %s: %s", c->node[i].name, st.msg);
    return cl;
}

void tc_status_of(struct tc *c, int i, const char *name, char *buf, size_t size)
{
    plog_client *cl = tc_client(c, i);
    tc_member_status(cl, name, buf, size);
    plog_client_close(cl);
}

void tc_member_status(plog_client *cl, const char *name, char *buf, size_t size)
{
    buf[0] = '\0';
    Log__V1__GetMembersRequest req = LOG__V1__GET_MEMBERS_REQUEST__INIT;
    nng_msg *reply;
    plog_rpc_reply rp;
    plog_rpc_status st;
    if (plog_client_call(cl, plog_rpc_method_name(PLOG_METHOD_GET_MEMBERS), &req.base, 0, 0, &reply, &rp,
                         &st) == PLOG_STATUS_OK) {
        Log__V1__GetMembersResponse *resp = log__v1__get_members_response__unpack(NULL, rp.body_len, rp.body);
        nng_msg_free(reply);
        assert_non_null(resp);
        for (size_t k = 0; k < resp->n_members; k++)
            if (strcmp(resp->members[k]->name, name) == 0)
                snprintf(buf, size, "%s", resp->members[k]->status);
        log__v1__get_members_response__free_unpacked(resp, NULL);
    }
}

static int rec_cmp(const void *a, const void *b)
{
    const struct tc_rec *x = a, *y = b;
    int d = strcmp(x->origin, y->origin);
    if (d != 0)
        return d;
    if (x->ooff != y->ooff)
        return x->ooff < y->ooff ? -1 : 1;
    return strcmp(x->value, y->value);
}

long tc_records(struct tc *c, int i, struct tc_rec **out)
{
    plog_client *cl = tc_client(c, i);
    struct tc_rec *v = NULL;
    long n = 0, cap = 0;
    uint64_t off = 0;
    for (;;) {
        Log__V1__ConsumeRequest req = LOG__V1__CONSUME_REQUEST__INIT;
        req.offset = off;
        req.max_records = 65536;
        nng_msg *reply;
        plog_rpc_reply rp;
        plog_rpc_status st;
        if (plog_client_call(cl, plog_rpc_method_name(PLOG_METHOD_CONSUME_STREAM), &req.base, 0, 0, &reply,
                             &rp, &st) != PLOG_STATUS_OK) {
            plog_client_close(cl);
            tc_records_free(v, n);
            return -1;
        }
        Log__V1__ConsumeResponse *resp = log__v1__consume_response__unpack(NULL, rp.body_len, rp.body);
        nng_msg_free(reply);
        assert_non_null(resp);
        for (size_t k = 0; k < resp->n_records; k++) {
            Log__V1__Record *r = resp->records[k];
            if (n == cap) {
                cap = cap == 0 ? 1024 : cap * 2;
                v = realloc(v, (size_t)cap * sizeof *v);
                assert_non_null(v);
            }
            bool local = r->origin == NULL || r->origin[0] == '\0';
            snprintf(v[n].origin, sizeof v[n].origin, "%s", local ? c->node[i].name : r->origin);
            v[n].ooff = local ? r->offset : r->origin_offset;
            v[n].value = strndup((const char *)r->value.data, r->value.len);
            n++;
        }
        size_t got = resp->n_records;
        uint64_t next = resp->next_offset;
        log__v1__consume_response__free_unpacked(resp, NULL);
        if (got == 0 || next <= off)
            break;
        off = next;
    }
    plog_client_close(cl);
    if (n > 0)
        qsort(v, (size_t)n, sizeof *v, rec_cmp);
    *out = v;
    return n;
}

void tc_records_free(struct tc_rec *v, long n)
{
    for (long i = 0; i < n; i++)
        free(v[i].value);
    free(v);
}

void tc_produce(struct tc *c, int i, const char *prefix, int first, int n)
{
    plog_client *cl = tc_client(c, i);
    char(*vals)[48] = calloc((size_t)n, sizeof *vals);
    const void **ptrs = calloc((size_t)n, sizeof *ptrs);
    size_t *lens = calloc((size_t)n, sizeof *lens);
    assert_true(vals != NULL && ptrs != NULL && lens != NULL);
    for (int k = 0; k < n; k++) {
        lens[k] = (size_t)snprintf(vals[k], sizeof vals[k], "%s-%d", prefix, first + k);
        ptrs[k] = vals[k];
    }
    uint64_t off;
    plog_rpc_status st;
    /* A node serves before Raft has a leader (a bootstrapped one elects itself an
     * election timeout later): "not leader" is retried for up to 10 s. */
    int64_t until = plog_test_now_ms() + 10000;
    int code;
    while ((code = plog_client_produce_batch(cl, (const void *const *)ptrs, lens, (size_t)n, &off, &st)) ==
               PLOG_STATUS_FAILED_PRECONDITION &&
           strstr(st.msg, "not leader") != NULL && plog_test_now_ms() < until)
        plog_test_sleep_ms(50);
    if (code != PLOG_STATUS_OK)
        fail_msg("produce to %s: %s", c->node[i].name, st.msg);
    free(vals);
    free(ptrs);
    free(lens);
    plog_client_close(cl);
}

struct count_arg {
    struct tc *c;
    int i;
    long want;
};

static bool has_count(void *arg)
{
    struct count_arg *a = arg;
    struct tc_rec *v;
    long n = tc_records(a->c, a->i, &v);
    if (n >= 0)
        tc_records_free(v, n);
    return n == a->want;
}

bool tc_wait_count(struct tc *c, int i, long want, int timeout_ms)
{
    struct count_arg a = {c, i, want};
    return plog_test_wait_until(has_count, &a, timeout_ms);
}

void tc_check_same(struct tc *c, long want)
{
    struct tc_rec *ref = NULL;
    long nref = -1;
    int iref = -1;
    for (int i = 0; i < c->n; i++) {
        if (!c->node[i].running)
            continue;
        struct tc_rec *v;
        long n = tc_records(c, i, &v);
        if (n != want)
            fail_msg("%s holds %ld records, want %ld", c->node[i].name, n, want);
        for (long k = 1; k < n; k++)
            if (strcmp(v[k].origin, v[k - 1].origin) == 0 && v[k].ooff == v[k - 1].ooff)
                fail_msg("%s holds (%s, %llu) twice", c->node[i].name, v[k].origin,
                         (unsigned long long)v[k].ooff);
        if (ref == NULL) {
            ref = v;
            nref = n;
            iref = i;
            continue;
        }
        for (long k = 0; k < n; k++)
            if (rec_cmp(&v[k], &ref[k]) != 0)
                fail_msg("%s and %s differ at %ld: (%s, %llu, %s) vs (%s, %llu, %s)", c->node[i].name,
                         c->node[iref].name, k, v[k].origin, (unsigned long long)v[k].ooff, v[k].value,
                         ref[k].origin, (unsigned long long)ref[k].ooff, ref[k].value);
        tc_records_free(v, n);
    }
    tc_records_free(ref, nref);
}

const char *tc_cert(const char *name)
{
    static char bufs[16][600];
    static int next;
    char *b = bufs[next++ % 16];
    snprintf(b, sizeof bufs[0], "%s/%s", tc_certs(), name);
    return b;
}

plog_agent_config tc_agents_config(struct tc_agents *f, int i, int join)
{
    char c[64], k[64];
    snprintf(c, sizeof c, "%s.pem", f->name[i]);
    snprintf(k, sizeof k, "%s-key.pem", f->name[i]);
    f->seed[i][0] = join >= 0 ? f->bind[join] : NULL;
    return (plog_agent_config){
        .data_dir = f->data[i],
        .node_name = f->name[i],
        .bind_addr = f->bind[i],
        .rpc_port = f->rpc[i],
        .start_join_addrs = f->seed[i],
        .njoin = join >= 0 ? 1 : 0,
        .server_tls_cert_file = tc_cert(c),
        .server_tls_key_file = tc_cert(k),
        .server_tls_ca_file = tc_cert("ca.pem"),
        .peer_tls_cert_file = tc_cert(c),
        .peer_tls_key_file = tc_cert(k),
        .peer_tls_ca_file = tc_cert("ca.pem"),
        .acl_model_file = tc_cert("model.conf"),
        .acl_policy_file = f->policy,
        .fast = true,
        .log = {.sync = PLOG_SYNC_INTERVAL},
        .bootstrap = join < 0,
        .raft_port = f->raft[i],
    };
}

void tc_agents_start(struct tc_agents *f, int i, int join)
{
    plog_agent_config ac = tc_agents_config(f, i, join);
    char err[512];
    if (plog_agent_open(&ac, &f->a[i], err, sizeof err) != PLOG_OK)
        fail_msg("agent %s: %s", f->name[i], err);
}

int tc_agents_setup(void **state)
{
    struct tc_agents *f = calloc(1, sizeof *f);
    plog_test_tmpdir("agents", f->dir, sizeof f->dir);
    snprintf(f->policy, sizeof f->policy, "%s/policy.csv", f->dir);
    FILE *p = fopen(f->policy, "w");
    assert_non_null(p);
    fprintf(p, "p, root, *, produce\np, root, *, consume\np, root, *, admin\n");
    for (int i = 0; i < TC_AGENTS; i++) {
        snprintf(f->name[i], sizeof f->name[i], "node%d", i + 1);
        snprintf(f->data[i], sizeof f->data[i], "%s/%s", f->dir, f->name[i]);
        snprintf(f->bind[i], sizeof f->bind[i], "127.0.0.1:%d", plog_test_free_port());
        f->rpc[i] = (uint16_t)plog_test_free_port();
        f->raft[i] = (uint16_t)plog_test_free_port();
        fprintf(p, "p, %s, *, gossip\np, %s, *, consume\n", f->name[i], f->name[i]);
    }
    fclose(p);
    *state = f;
    return 0;
}

int tc_agents_teardown(void **state)
{
    struct tc_agents *f = *state;
    for (int i = TC_AGENTS - 1; i >= 0; i--)
        assert_plog_ok(plog_agent_shutdown(f->a[i]));
    plog_test_rmrf(f->dir);
    free(f);
    return 0;
}
