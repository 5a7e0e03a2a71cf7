/* raft_paper_test.c - one test per claim of the Raft paper and Ongaro's thesis, each
 * set up on the simulated cluster (which also checks the five safety properties after
 * every step of every test). Names say what the scenario proves (etcd
 * raft_paper_test.go). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>

#include <cmocka.h>

#include "internal/err/err.h"
#include "internal/raft/cluster_testlib.h"
#include "testing/testing.h"

static plog_sim *sim_start(plog_sim_opts *o)
{
    o->trace = true;
    o->trace_msgs = true;
    return plog_sim_new(o);
}

/* sim_end fails the test on a safety violation, printing the trace */
static void sim_end(plog_sim *s)
{
    const char *err = plog_sim_error(s);
    if (err != NULL) {
        fputs(plog_sim_trace(s), stderr);
        char copy[600];
        snprintf(copy, sizeof copy, "%s", err);
        plog_sim_free(s);
        fail_msg("%s", copy);
    }
    plog_sim_free(s);
}

static plog_raft_status status(plog_sim *s, uint64_t id)
{
    plog_raft_status st;
    plog_sim_status(s, id, &st);
    return st;
}

static void assert_logs_equal(plog_sim *s, uint64_t a, uint64_t b)
{
    plog_raft_status sa = status(s, a), sb = status(s, b);
    assert_int_equal(sa.last, sb.last);
    for (uint64_t i = sa.first > sb.first ? sa.first : sb.first; i <= sa.last; i++)
        assert_int_equal(plog_sim_term_of_index(s, a, i), plog_sim_term_of_index(s, b, i));
}

/* §5.2: two candidates split the vote; randomized timeouts elect a leader later. */
static void test_raft_split_vote_is_resolved_by_randomized_timeouts(void **state)
{
    (void)state;
    plog_sim_opts o;
    plog_sim_opts_default(&o);
    o.no_pre_vote = true;
    o.timeout_of[1] = o.timeout_of[2] = 150;
    plog_sim *s = sim_start(&o);
    plog_sim_isolate(s, 3); /* only 1 and 2 can vote: each votes for itself */
    plog_sim_timeout_now(s, 1);
    plog_sim_timeout_now(s, 2);
    plog_sim_run_for(s, 100);
    assert_int_equal(plog_sim_leader(s), 0);
    assert_int_equal(status(s, 1).term, 1);
    assert_int_equal(status(s, 2).term, 1);
    assert_int_equal(status(s, 1).vote, 1);
    assert_int_equal(status(s, 2).vote, 2);
    assert_true(plog_sim_wait_leader(s, 2000));
    assert_true(status(s, plog_sim_leader(s)).term >= 2);
    sim_end(s);
}

/* §5.1: a leader cut off from the others steps down when it sees a higher term, and
 * its uncommitted entries are discarded. */
static void test_raft_stale_leader_steps_down_on_higher_term(void **state)
{
    (void)state;
    plog_sim_opts o;
    plog_sim_opts_default(&o);
    o.no_check_quorum = true; /* the stale leader must learn from the term alone */
    plog_sim *s = sim_start(&o);
    assert_true(plog_sim_wait_leader(s, 2000));
    uint64_t old = plog_sim_leader(s), term = status(s, old).term;
    plog_sim_isolate(s, old);
    uint64_t pid;
    assert_plog_ok(plog_sim_propose(s, old, &pid));
    plog_sim_run_for(s, 1000);
    uint64_t lead = plog_sim_leader(s);
    assert_int_not_equal(lead, old);
    assert_int_equal(status(s, old).role, PLOG_RAFT_LEADER); /* still thinks so */
    assert_true(status(s, lead).term > term);
    plog_sim_heal(s);
    plog_sim_run_for(s, 500);
    assert_int_equal(status(s, old).role, PLOG_RAFT_FOLLOWER);
    assert_int_equal(status(s, old).term, status(s, lead).term);
    assert_false(plog_sim_acked(s, pid));
    assert_logs_equal(s, old, lead);
    sim_end(s);
}

/* §5.3: after two leaders wrote different entries at the same indexes, the logs end up
 * identical: the newer leader's entries win and the others are truncated. */
static void test_raft_logs_match_after_divergent_leaders(void **state)
{
    (void)state;
    plog_sim_opts o;
    plog_sim_opts_default(&o);
    o.n = 5;
    plog_sim *s = sim_start(&o);
    assert_true(plog_sim_wait_leader(s, 2000));
    uint64_t a = plog_sim_leader(s);
    plog_sim_run_for(s, 100);
    plog_sim_isolate(s, a);
    for (int i = 0; i < 3; i++)
        assert_plog_ok(plog_sim_propose(s, a, NULL));
    plog_sim_run_for(s, 1000);
    uint64_t b = plog_sim_leader(s);
    assert_int_not_equal(a, b);
    for (int i = 0; i < 5; i++)
        assert_plog_ok(plog_sim_propose(s, b, NULL));
    plog_sim_run_for(s, 200);
    assert_true(status(s, a).last >= status(s, b).commit - 5);
    plog_sim_heal(s);
    plog_sim_run_for(s, 1000);
    for (uint64_t id = 1; id <= 5; id++)
        if (id != b)
            assert_logs_equal(s, id, b);
    sim_end(s);
}

/* §5.3, Figure 7: the leader of term 8 brings each of the followers (a)-(f) - missing
 * entries, extra entries, or both - to exactly its own log. */
static void test_raft_figure7_follower_logs_are_reconciled(void **state)
{
    (void)state;
    static const uint64_t leader[] = {1, 1, 1, 4, 4, 5, 5, 6, 6, 6};
    static const uint64_t a[] = {1, 1, 1, 4, 4, 5, 5, 6, 6};
    static const uint64_t b[] = {1, 1, 1, 4};
    static const uint64_t c[] = {1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 6};
    static const uint64_t d[] = {1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7};
    static const uint64_t e[] = {1, 1, 1, 4, 4, 4, 4};
    static const uint64_t f[] = {1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3};
    plog_sim_opts o;
    plog_sim_opts_default(&o);
    o.n = 7;
    o.heartbeat_ms = 20;
    o.election_timeout_ms = 2000;
    o.timeout_of[1] = 60;
    o.max_batch = 2; /* several round trips per follower */
    plog_sim *s = sim_start(&o);
    plog_sim_set_log(s, 1, 7, leader, 10);
    plog_sim_set_log(s, 2, 0, a, 9);
    plog_sim_set_log(s, 3, 0, b, 4);
    plog_sim_set_log(s, 4, 0, c, 11);
    plog_sim_set_log(s, 5, 0, d, 12);
    plog_sim_set_log(s, 6, 0, e, 7);
    plog_sim_set_log(s, 7, 0, f, 11);
    assert_true(plog_sim_wait_leader(s, 1000));
    assert_int_equal(plog_sim_leader(s), 1);
    assert_int_equal(status(s, 1).term, 8); /* the paper's "term 8" */
    plog_sim_run_for(s, 1000);
    for (uint64_t id = 2; id <= 7; id++) {
        assert_logs_equal(s, id, 1);
        assert_int_equal(plog_sim_term_of_index(s, id, 10), 6);
        assert_int_equal(plog_sim_term_of_index(s, id, 11), 8); /* the leader's no-op */
    }
    assert_int_equal(status(s, 1).commit, 11);
    sim_end(s);
}

/* §5.4.2, Figure 8: an entry of an earlier term stored on a majority is not committed
 * by counting replicas; and indeed a later leader may overwrite it. */
static void test_raft_figure8_previous_term_entry_is_not_committed_by_counting_replicas(void **state)
{
    (void)state;
    static const uint64_t s1[] = {1, 2}, s23[] = {1}, s4[] = {1}, s5[] = {1, 3};
    plog_sim_opts o;
    plog_sim_opts_default(&o);
    o.n = 5;
    o.no_pre_vote = true;
    o.max_batch = 1;
    o.max_inflight = 1;
    o.election_timeout_ms = 2000;
    o.timeout_of[1] = 60;
    o.timeout_of[5] = 300;
    plog_sim *s = sim_start(&o);
    plog_sim_set_log(s, 1, 3, s1, 2); /* (c): S1 restarted, knows term 3 */
    plog_sim_set_log(s, 2, 2, s23, 1);
    plog_sim_set_log(s, 3, 2, s23, 1);
    plog_sim_set_log(s, 4, 3, s4, 1);
    plog_sim_set_log(s, 5, 3, s5, 2); /* S5 led term 3 and wrote index 2 */
    plog_sim_cut(s, 1, 4);
    plog_sim_cut(s, 4, 1);
    plog_sim_cut(s, 1, 5);
    plog_sim_cut(s, 5, 1);
    assert_true(plog_sim_wait_leader(s, 1000));
    assert_int_equal(plog_sim_leader(s), 1);
    assert_int_equal(status(s, 1).term, 4);
    /* run until S2 and S3 hold index 2 of term 2, then stop S1's later entries */
    while (!(status(s, 2).last == 2 && status(s, 3).last == 2))
        assert_true(plog_sim_step(s));
    plog_sim_cut(s, 1, 2);
    plog_sim_cut(s, 1, 3);
    plog_sim_run_for(s, 100);
    /* index 2 (term 2) is on S1, S2, S3: a majority, but not of S1's term */
    assert_int_equal(plog_sim_term_of_index(s, 2, 2), 2);
    assert_int_equal(plog_sim_term_of_index(s, 3, 2), 2);
    assert_true(status(s, 1).commit < 2);
    /* (d): S1 crashes; S5 wins with the votes of S2, S3, S4 and overwrites index 2 */
    plog_sim_crash(s, 1);
    plog_sim_heal(s);
    assert_true(plog_sim_wait_leader(s, 5000));
    assert_int_equal(plog_sim_leader(s), 5);
    plog_sim_run_for(s, 500);
    for (uint64_t id = 2; id <= 5; id++)
        assert_int_equal(plog_sim_term_of_index(s, id, 2), 3);
    sim_end(s);
}

/* thesis §9.6: a server that was partitioned away does not raise its term with
 * pre-vote, so when it comes back the leader keeps leading in the same term. */
static void test_raft_pre_vote_keeps_a_healthy_leader(void **state)
{
    (void)state;
    plog_sim_opts o;
    plog_sim_opts_default(&o);
    plog_sim *s = sim_start(&o);
    assert_true(plog_sim_wait_leader(s, 2000));
    uint64_t lead = plog_sim_leader(s), term = status(s, lead).term;
    uint64_t f = lead == 1 ? 2 : 1;
    plog_sim_isolate(s, f);
    plog_sim_run_for(s, 2000);
    assert_int_equal(status(s, f).term, term); /* pre-votes failed, term unchanged */
    plog_sim_heal(s);
    plog_sim_run_for(s, 1000);
    assert_int_equal(plog_sim_leader(s), lead);
    assert_int_equal(status(s, lead).term, term);
    assert_int_equal(status(s, f).leader, lead);
    sim_end(s);
}

/* ... and what pre-vote prevents: without it, the returning server's inflated term
 * deposes the leader. */
static void test_raft_without_pre_vote_a_returning_server_deposes_the_leader(void **state)
{
    (void)state;
    plog_sim_opts o;
    plog_sim_opts_default(&o);
    o.no_pre_vote = true;
    plog_sim *s = sim_start(&o);
    assert_true(plog_sim_wait_leader(s, 2000));
    uint64_t lead = plog_sim_leader(s), term = status(s, lead).term;
    uint64_t f = lead == 1 ? 2 : 1;
    plog_sim_isolate(s, f);
    plog_sim_run_for(s, 2000);
    assert_true(status(s, f).term > term + 2);
    plog_sim_heal(s);
    plog_sim_run_for(s, 1000);
    assert_true(plog_sim_wait_leader(s, 2000));
    assert_true(status(s, plog_sim_leader(s)).term > term + 2);
    sim_end(s);
}

/* thesis §3.10: the leader brings the target up to date and has it time out; the
 * target leads in the next term. Proposals wait meanwhile. */
static void test_raft_leadership_transfer_hands_over_to_the_target(void **state)
{
    (void)state;
    plog_sim_opts o;
    plog_sim_opts_default(&o);
    o.n = 5;
    plog_sim *s = sim_start(&o);
    assert_true(plog_sim_wait_leader(s, 2000));
    uint64_t lead = plog_sim_leader(s), term = status(s, lead).term;
    for (int i = 0; i < 10; i++)
        assert_plog_ok(plog_sim_propose(s, lead, NULL));
    uint64_t target = lead == 5 ? 4 : 5;
    assert_plog_ok(plog_sim_transfer(s, lead, target));
    assert_int_equal(plog_sim_propose(s, lead, NULL), PLOG_EBUSY);
    assert_int_equal(plog_sim_transfer(s, lead, target), PLOG_EBUSY);
    plog_sim_run_for(s, 300);
    assert_int_equal(plog_sim_leader(s), target);
    assert_int_equal(status(s, target).term, term + 1);
    assert_int_equal(status(s, lead).role, PLOG_RAFT_FOLLOWER);
    sim_end(s);
}

/* thesis §4.2.1: a new server joins as a learner (no vote, not counted for commit)
 * and becomes a voter once it has caught up. */
static void test_raft_learner_is_promoted_once_caught_up(void **state)
{
    (void)state;
    plog_sim_opts o;
    plog_sim_opts_default(&o);
    o.n_spare = 1;
    plog_sim *s = sim_start(&o);
    assert_true(plog_sim_wait_leader(s, 2000));
    uint64_t lead = plog_sim_leader(s);
    for (int i = 0; i < 200; i++)
        assert_plog_ok(plog_sim_propose(s, lead, NULL));
    plog_sim_run_for(s, 200);
    assert_int_equal(plog_sim_conf_change(s, lead, PLOG_RAFT_CONF_ADD_VOTER, 4), PLOG_OK);
    plog_raft_status st = status(s, lead);
    const plog_raft_server *sv = plog_raft_conf_find(&st.conf, 4);
    assert_non_null(sv);
    assert_int_equal(sv->role, PLOG_RAFT_LEARNER);
    /* one change at a time */
    assert_int_equal(plog_sim_conf_change(s, lead, PLOG_RAFT_CONF_REMOVE, 3), PLOG_EBUSY);
    plog_sim_run_for(s, 1000);
    st = status(s, lead);
    sv = plog_raft_conf_find(&st.conf, 4);
    assert_non_null(sv);
    assert_int_equal(sv->role, PLOG_RAFT_VOTER);
    assert_int_equal(st.commit, status(s, 4).commit);
    assert_int_equal(plog_sim_applied_count(s, 4), 200);
    sim_end(s);
}

/* snapshot_opts: the defaults, with a snapshot every 10 entries, none kept behind
 * it, sent in chunks of chunk bytes. */
static void snapshot_opts(plog_sim_opts *o, uint32_t chunk)
{
    plog_sim_opts_default(o);
    o->snapshot_every = 10;
    o->snapshot_trailing = 0;
    o->snapshot_chunk = chunk;
}

/* sim_lagging_follower starts a cluster whose follower *f is down while its leader
 * *lead commits 100 entries, one every 5 ms (compacted when o takes snapshots: the
 * leader holds entries for a follower it heard from within 300 ms, not for one
 * down for 700). */
static plog_sim *sim_lagging_follower(plog_sim_opts *o, uint64_t *lead, uint64_t *f)
{
    o->follower_live_ms = 300;
    plog_sim *s = sim_start(o);
    assert_true(plog_sim_wait_leader(s, 2000));
    *lead = plog_sim_leader(s);
    *f = *lead == 1 ? 2 : 1;
    plog_sim_crash(s, *f);
    for (int i = 0; i < 100; i++) {
        assert_plog_ok(plog_sim_propose(s, *lead, NULL));
        plog_sim_run_for(s, 5);
    }
    plog_sim_run_for(s, 200);
    return s;
}

/* §7: a follower that missed entries already compacted away gets the snapshot, in
 * chunks, and then the entries after it. */
static void test_raft_snapshot_brings_a_lagging_follower_up_to_date(void **state)
{
    (void)state;
    plog_sim_opts o;
    snapshot_opts(&o, 64);
    uint64_t lead, f;
    plog_sim *s = sim_lagging_follower(&o, &lead, &f);
    assert_true(status(s, lead).first > 50); /* compacted */
    assert_int_equal(plog_sim_snapshots_installed(s), 0);
    plog_sim_restart(s, f);
    plog_sim_run_for(s, 2000);
    assert_true(plog_sim_snapshots_installed(s) >= 1);
    assert_int_equal(plog_sim_applied_index(s, f), plog_sim_applied_index(s, lead));
    assert_int_equal(plog_sim_applied_count(s, f), 100);
    sim_end(s);
}

/* The same under steady writes, with snapshots taken more often than one can be sent:
 * the leader takes no new snapshot while it sends one to a follower that answers
 * (each would restart the transfer from its first byte), and keeps the entries after
 * it until that follower has them. Before, every snapshot taken overtook the one in
 * flight, then the entries after an installed one were compacted before they were
 * sent: the follower stayed behind until the writes stopped. */
static void test_raft_snapshot_under_steady_writes_is_not_overtaken(void **state)
{
    (void)state;
    plog_sim_opts o;
    snapshot_opts(&o, 16); /* ~100 chunks, one round trip each: about a second */
    uint64_t lead, f;
    plog_sim *s = sim_lagging_follower(&o, &lead, &f);
    assert_true(status(s, lead).first > 50);
    plog_sim_restart(s, f);
    /* a proposal every 5 ms for 4 s: a snapshot's worth of entries every 50 ms */
    int caught_up_at = -1;
    for (int i = 0; i < 800; i++) {
        assert_plog_ok(plog_sim_propose(s, lead, NULL));
        plog_sim_run_for(s, 5);
        if (caught_up_at < 0 && plog_sim_applied_index(s, f) + 5 >= plog_sim_applied_index(s, lead))
            caught_up_at = i;
    }
    assert_true(caught_up_at >= 0);  /* caught up while the writes went on */
    assert_true(caught_up_at < 400); /* within 2 s */
    assert_true(plog_sim_snapshots_installed(s) <= 2);
    assert_true(plog_sim_applied_index(s, f) + 5 >= plog_sim_applied_index(s, lead));
    /* and once it has caught up, the leader compacts again: nothing stays pinned */
    assert_true(status(s, lead).first + 20 > status(s, lead).last);
    plog_sim_run_for(s, 500);
    assert_int_equal(plog_sim_applied_count(s, f), 900);
    assert_true(plog_sim_check_final(s));
    sim_end(s);
}

/* A chunk in flight is sent again only once the follower has left it unanswered
 * for an election timeout, not at every heartbeat: with the driver's 10 ms
 * heartbeat and a round trip of tens of ms, each chunk went several times (a
 * black-box run: a restarted follower took 45 s to install a 36 MB snapshot). Here
 * a 10 ms heartbeat and 20-30 ms each way: every chunk is sent once. */
static void test_raft_snapshot_chunks_are_not_resent_while_answers_come(void **state)
{
    (void)state;
    plog_sim_opts o;
    snapshot_opts(&o, 64);
    o.heartbeat_ms = 10;
    o.delay_min_ms = 20;
    o.delay_max_ms = 30;
    o.trace = o.trace_msgs = true;
    uint64_t lead, f;
    plog_sim *s = sim_lagging_follower(&o, &lead, &f);
    plog_sim_note(s, "restart");
    plog_sim_restart(s, f);
    plog_sim_run_for(s, 3000);
    assert_int_equal(plog_sim_applied_count(s, f), 100);
    /* count the chunks delivered to f, and the distinct offsets among them */
    char pat[32];
    snprintf(pat, sizeof pat, "-> %llu snapshot ", (unsigned long long)f);
    const char *t = strstr(plog_sim_trace(s), "restart");
    assert_non_null(t);
    size_t sent = 0, distinct = 0;
    char seen[64][48];
    for (const char *p = strstr(t, pat); p != NULL; p = strstr(p + 1, pat)) {
        const char *b = strstr(p, " bytes ");
        const char *e = b != NULL ? strchr(b + 7, '+') : NULL;
        if (e == NULL || strstr(p, "\n") < b)
            continue; /* an answer, not a chunk */
        sent++;
        char off[48];
        snprintf(off, sizeof off, "%.*s", (int)(e - b - 7), b + 7);
        bool dup = false;
        for (size_t i = 0; i < distinct && !dup; i++)
            dup = strcmp(seen[i], off) == 0;
        if (!dup && distinct < 64)
            snprintf(seen[distinct++], sizeof seen[0], "%s", off);
    }
    print_message("%zu chunks delivered, %zu distinct\n", sent, distinct);
    assert_true(distinct > 1);
    assert_int_equal(sent, distinct);
    assert_true(plog_sim_check_final(s));
    sim_end(s);
}

/* Beyond the paper, which assumes a server never loses what it wrote: a follower whose
 * log lost entries it had acknowledged (a torn tail after a power cut, a cut file)
 * rejects the heartbeats at the match the leader recorded for it. The leader lowers
 * match and next to what the follower reports and probes again, so the follower
 * catches up and the logs match (before, the leader took each such rejection for a
 * stale one, or probed at match + 1 again, and the follower stayed behind for good). */
static void test_raft_follower_that_lost_acknowledged_entries_catches_up(void **state)
{
    (void)state;
    plog_sim_opts o;
    plog_sim_opts_default(&o);
    plog_sim *s = sim_start(&o);
    assert_true(plog_sim_wait_leader(s, 2000));
    uint64_t lead = plog_sim_leader(s), f = lead == 1 ? 2 : 1;
    for (int i = 0; i < 10; i++)
        assert_plog_ok(plog_sim_propose(s, lead, NULL));
    plog_sim_run_for(s, 300);
    uint64_t acked = status(s, lead).last;
    assert_int_equal(status(s, f).last, acked);
    plog_sim_crash(s, f);
    plog_sim_lose_tail(s, f, 3);
    plog_sim_restart(s, f);
    assert_int_equal(status(s, f).last, acked - 3);
    uint64_t steps = plog_sim_steps(s);
    plog_sim_run_for(s, 300); /* heartbeats at the old match */
    for (int i = 0; i < 5; i++)
        assert_plog_ok(plog_sim_propose(s, lead, NULL));
    plog_sim_run_for(s, 1000);
    /* and without a storm: before, every rejection was answered by the same probe, and
     * each heartbeat period added one more such exchange (2,237 steps here against
     * about 200: heartbeats, the entries, the catch-up) */
    assert_true(plog_sim_steps(s) - steps < 600);
    assert_int_equal(plog_sim_leader(s), lead);
    assert_int_equal(status(s, f).last, acked + 5);
    assert_logs_equal(s, lead, f);
    assert_int_equal(plog_sim_applied_index(s, f), plog_sim_applied_index(s, lead));
    sim_end(s);
}

/* §6.4: a read is released only after a quorum confirmed the leader after the read
 * arrived; a leader cut off from its quorum never releases it. */
static void test_raft_read_index_waits_for_a_quorum_round(void **state)
{
    (void)state;
    plog_sim_opts o;
    plog_sim_opts_default(&o);
    plog_sim *s = sim_start(&o);
    assert_true(plog_sim_wait_leader(s, 2000));
    uint64_t lead = plog_sim_leader(s), f = lead == 1 ? 2 : 1, index = 0;
    plog_sim_run_for(s, 100);
    assert_int_equal(plog_sim_read(s, f, 1), PLOG_ENOTLEADER);
    assert_plog_ok(plog_sim_read(s, lead, 7));
    assert_false(plog_sim_read_done(s, lead, 7, NULL)); /* needs a round trip */
    plog_sim_run_for(s, 50);
    assert_true(plog_sim_read_done(s, lead, 7, &index));
    assert_int_equal(index, status(s, lead).commit);
    plog_sim_isolate(s, lead);
    assert_plog_ok(plog_sim_read(s, lead, 8));
    plog_sim_run_for(s, 1000);
    assert_false(plog_sim_read_done(s, lead, 8, NULL));
    assert_int_not_equal(status(s, lead).role, PLOG_RAFT_LEADER); /* check-quorum */
    sim_end(s);
}

/* thesis §4.2.2: a leader that removes itself keeps leading until the removal commits,
 * then steps down; the others elect a leader among themselves. */
static void test_raft_removed_leader_steps_down(void **state)
{
    (void)state;
    plog_sim_opts o;
    plog_sim_opts_default(&o);
    plog_sim *s = sim_start(&o);
    assert_true(plog_sim_wait_leader(s, 2000));
    uint64_t lead = plog_sim_leader(s);
    plog_sim_run_for(s, 100);
    assert_plog_ok(plog_sim_conf_change(s, lead, PLOG_RAFT_CONF_REMOVE, lead));
    plog_sim_run_for(s, 1000);
    assert_int_equal(status(s, lead).role, PLOG_RAFT_FOLLOWER);
    uint64_t now = plog_sim_leader(s);
    assert_int_not_equal(now, 0);
    assert_int_not_equal(now, lead);
    plog_raft_status st = status(s, now);
    assert_int_equal(st.conf.n, 2);
    assert_null(plog_raft_conf_find(&st.conf, lead));
    assert_plog_ok(plog_sim_propose(s, now, NULL));
    sim_end(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_raft_split_vote_is_resolved_by_randomized_timeouts),
        cmocka_unit_test(test_raft_stale_leader_steps_down_on_higher_term),
        cmocka_unit_test(test_raft_logs_match_after_divergent_leaders),
        cmocka_unit_test(test_raft_figure7_follower_logs_are_reconciled),
        cmocka_unit_test(test_raft_figure8_previous_term_entry_is_not_committed_by_counting_replicas),
        cmocka_unit_test(test_raft_pre_vote_keeps_a_healthy_leader),
        cmocka_unit_test(test_raft_without_pre_vote_a_returning_server_deposes_the_leader),
        cmocka_unit_test(test_raft_leadership_transfer_hands_over_to_the_target),
        cmocka_unit_test(test_raft_learner_is_promoted_once_caught_up),
        cmocka_unit_test(test_raft_snapshot_brings_a_lagging_follower_up_to_date),
        cmocka_unit_test(test_raft_snapshot_under_steady_writes_is_not_overtaken),
        cmocka_unit_test(test_raft_snapshot_chunks_are_not_resent_while_answers_come),
        cmocka_unit_test(test_raft_follower_that_lost_acknowledged_entries_catches_up),
        cmocka_unit_test(test_raft_read_index_waits_for_a_quorum_round),
        cmocka_unit_test(test_raft_removed_leader_steps_down),
    };
    return cmocka_run_group_tests_name("raft_paper", tests, NULL, NULL);
}
