/* raft_trace_test.c - golden traces: what the protocol does, step by step, in four
 * scenarios (election, replication, partition, membership change) on a deterministic
 * 3-server cluster (5 ms links, instant disks, fixed seed). Each trace is compared with
 * internal/raft/testdata/<name>.trace; RAFT_GOLDEN_UPDATE=1 (make golden) rewrites
 * the files instead - review the diff before committing it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "internal/err/err.h"
#include "internal/raft/cluster_testlib.h"
#include "testing/testing.h"

static plog_sim *start(unsigned n_spare)
{
    plog_sim_opts o;
    plog_sim_opts_default(&o);
    o.seed = 7;
    o.n_spare = n_spare;
    o.trace = true;
    o.trace_msgs = true;
    return plog_sim_new(&o);
}

static void path_of(const char *name, char *buf, size_t size)
{
    const char *dir = getenv("PLOG_CHAPTER");
    snprintf(buf, size, "%s/internal/raft/testdata/%s.trace", dir ? dir : ".", name);
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    if (buf == NULL || fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        fclose(f);
        return NULL;
    }
    buf[n] = '\0';
    fclose(f);
    return buf;
}

/* check_golden compares the trace of s with the file, line by line, and frees s */
static void check_golden(plog_sim *s, const char *name)
{
    assert_null(plog_sim_error(s));
    char path[512];
    path_of(name, path, sizeof path);
    const char *got = plog_sim_trace(s);
    if (getenv("RAFT_GOLDEN_UPDATE") != NULL) {
        FILE *f = fopen(path, "wb");
        assert_non_null(f);
        fputs(got, f);
        fclose(f);
        fprintf(stderr, "wrote %s\n", path);
        plog_sim_free(s);
        return;
    }
    char *want = slurp(path);
    if (want == NULL) {
        plog_sim_free(s);
        fail_msg("cannot read %s (make golden writes it)", path);
    }
    const char *g = got, *w = want;
    unsigned line = 1;
    while (*g && *w && *g == *w) {
        if (*g == '\n')
            line++;
        g++;
        w++;
    }
    if (*g != *w) {
        char gl[200], wl[200];
        const char *gs = g, *ws = w;
        while (gs > got && gs[-1] != '\n')
            gs--;
        while (ws > want && ws[-1] != '\n')
            ws--;
        snprintf(gl, sizeof gl, "%.*s", (int)strcspn(gs, "\n"), gs);
        snprintf(wl, sizeof wl, "%.*s", (int)strcspn(ws, "\n"), ws);
        free(want);
        plog_sim_free(s);
        fail_msg("%s line %u differs:\n got: %s\nwant: %s\n(make golden rewrites it)", name, line, gl, wl);
    }
    free(want);
    plog_sim_free(s);
}

/* §5.2: timeouts, a pre-vote round, a vote round, the no-op commit. */
static void test_raft_trace_election(void **state)
{
    (void)state;
    plog_sim *s = start(0);
    assert_true(plog_sim_wait_leader(s, 1000));
    plog_sim_run_for(s, 60);
    check_golden(s, "election");
}

/* §5.3: proposals, pipelined AppendEntries, commit, followers learn the commit. */
static void test_raft_trace_replication(void **state)
{
    (void)state;
    plog_sim *s = start(0);
    assert_true(plog_sim_wait_leader(s, 1000));
    plog_sim_run_for(s, 60);
    uint64_t lead = plog_sim_leader(s);
    plog_sim_note(s, "client proposes 3 entries to %llu", (unsigned long long)lead);
    for (int i = 0; i < 3; i++)
        assert_plog_ok(plog_sim_propose(s, lead, NULL));
    plog_sim_run_for(s, 40);
    check_golden(s, "replication");
}

/* §5.4, thesis §6.2 and §9.6: the leader is cut off, steps down for lack of a quorum,
 * the others elect a new leader; after healing the old one follows. */
static void test_raft_trace_partition(void **state)
{
    (void)state;
    plog_sim *s = start(0);
    assert_true(plog_sim_wait_leader(s, 1000));
    plog_sim_run_for(s, 60);
    uint64_t lead = plog_sim_leader(s);
    plog_sim_isolate(s, lead);
    assert_plog_ok(plog_sim_propose(s, lead, NULL));
    plog_sim_run_for(s, 500);
    plog_sim_heal(s);
    plog_sim_run_for(s, 150);
    check_golden(s, "partition");
}

/* thesis §4.1 and §4.2.1: server 4 joins as a learner, catches up, is promoted. */
static void test_raft_trace_membership(void **state)
{
    (void)state;
    plog_sim *s = start(1);
    assert_true(plog_sim_wait_leader(s, 1000));
    plog_sim_run_for(s, 60);
    uint64_t lead = plog_sim_leader(s);
    assert_plog_ok(plog_sim_propose(s, lead, NULL));
    plog_sim_run_for(s, 20);
    assert_plog_ok(plog_sim_conf_change(s, lead, PLOG_RAFT_CONF_ADD_VOTER, 4));
    plog_sim_run_for(s, 80);
    check_golden(s, "membership");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_raft_trace_election),
        cmocka_unit_test(test_raft_trace_replication),
        cmocka_unit_test(test_raft_trace_partition),
        cmocka_unit_test(test_raft_trace_membership),
    };
    return cmocka_run_group_tests_name("raft_trace", tests, NULL, NULL);
}
