/* raft_test.c - the core's API contract on a single core: configuration and event
 * validation, configuration encoding, booting from storage, what one step returns. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "internal/err/err.h"
#include "internal/raft/raft.h"
#include "testing/testing.h"

static plog_raft_config config_of(uint64_t id, unsigned n)
{
    plog_raft_config c;
    plog_raft_config_default(&c, id);
    c.initial.n = n;
    for (unsigned i = 0; i < n; i++)
        c.initial.servers[i] = (plog_raft_server){.id = i + 1, .role = PLOG_RAFT_VOTER};
    return c;
}

/* raft_of is a new core, id of n voters (config_of), with nothing stored. */
static plog_raft *raft_of(uint64_t id, unsigned n)
{
    plog_raft_config c = config_of(id, n);
    plog_raft *r;
    assert_plog_ok(plog_raft_new(&c, NULL, &r));
    return r;
}

static void test_raft_conf_encoding_round_trips(void **state)
{
    (void)state;
    plog_raft_conf c = {.n = 3};
    c.servers[0] = (plog_raft_server){.id = 1, .role = PLOG_RAFT_VOTER};
    c.servers[1] =
        (plog_raft_server){.id = 0x0102030405060708ULL, .role = PLOG_RAFT_LEARNER, .promote = true};
    c.servers[2] = (plog_raft_server){.id = 9, .role = PLOG_RAFT_LEARNER};
    uint8_t buf[PLOG_RAFT_CONF_MAX_BYTES];
    size_t len = plog_raft_conf_encode(&c, buf);
    assert_int_equal(len, 31);
    assert_int_equal(buf[1], 0);
    assert_int_equal(buf[11], 0x01); /* big-endian id of the second server */
    assert_int_equal(buf[18], 0x08);
    plog_raft_conf d;
    assert_plog_ok(plog_raft_conf_decode(buf, len, &d));
    assert_int_equal(d.n, 3);
    for (unsigned i = 0; i < 3; i++) {
        assert_int_equal(d.servers[i].id, c.servers[i].id);
        assert_int_equal(d.servers[i].role, c.servers[i].role);
        assert_int_equal(d.servers[i].promote, c.servers[i].promote);
    }
    assert_non_null(plog_raft_conf_find(&d, 9));
    assert_null(plog_raft_conf_find(&d, 2));
}

static void test_raft_conf_decode_rejects_malformed_bytes(void **state)
{
    (void)state;
    plog_raft_conf c = {.n = 2};
    c.servers[0] = (plog_raft_server){.id = 1};
    c.servers[1] = (plog_raft_server){.id = 2};
    uint8_t buf[PLOG_RAFT_CONF_MAX_BYTES];
    size_t len = plog_raft_conf_encode(&c, buf);
    plog_raft_conf d = {.n = 99};
    assert_int_equal(plog_raft_conf_decode(buf, len - 1, &d), PLOG_ECORRUPT);
    assert_int_equal(d.n, 99); /* untouched on failure */
    buf[9] = 5;                /* role */
    assert_int_equal(plog_raft_conf_decode(buf, len, &d), PLOG_ECORRUPT);
    buf[9] = 0;
    memcpy(buf + 11, buf + 1, 10); /* the same id twice */
    assert_int_equal(plog_raft_conf_decode(buf, len, &d), PLOG_ECORRUPT);
    assert_int_equal(plog_raft_conf_decode(buf, 0, &d), PLOG_ECORRUPT);
}

static void test_raft_new_rejects_a_bad_config(void **state)
{
    (void)state;
    plog_raft *r = NULL;
    plog_raft_config c = config_of(1, 3);
    c.id = 0;
    assert_int_equal(plog_raft_new(&c, NULL, &r), PLOG_EINVAL);
    c = config_of(1, 3);
    c.heartbeat_ms = c.election_timeout_ms;
    assert_int_equal(plog_raft_new(&c, NULL, &r), PLOG_EINVAL);
    c = config_of(1, 3);
    c.max_inflight = 65;
    assert_int_equal(plog_raft_new(&c, NULL, &r), PLOG_EINVAL);
    assert_null(r);
}

static void test_raft_new_rejects_a_boot_log_with_a_gap(void **state)
{
    (void)state;
    plog_raft_config c = config_of(1, 3);
    plog_raft_entry ents[2] = {{.term = 1, .index = 1}, {.term = 1, .index = 3}};
    plog_raft_boot boot = {.hs = {.term = 1}, .entries = ents, .n_entries = 2};
    plog_raft *r = NULL;
    assert_int_equal(plog_raft_new(&c, &boot, &r), PLOG_EINVAL);
    ents[1].index = 2;
    assert_plog_ok(plog_raft_new(&c, &boot, &r));
    plog_raft_status st;
    plog_raft_get_status(r, &st);
    assert_int_equal(st.last, 2);
    assert_int_equal(st.persisted, 2);
    assert_int_equal(st.commit, 0); /* commit is relearned from the leader */
    assert_int_equal(st.term, 1);
    plog_raft_free(r);
}

static void test_raft_follower_refuses_leader_only_events(void **state)
{
    (void)state;
    plog_raft *r = raft_of(1, 3);
    plog_raft_update up;
    plog_raft_buf b = {.data = (const uint8_t *)"x", .len = 1};
    plog_raft_event ev = {.type = PLOG_RAFT_EV_PROPOSE, .now_ms = 1, .bufs = &b, .n_bufs = 1};
    assert_int_equal(plog_raft_step(r, &ev, &up), PLOG_ENOTLEADER);
    assert_int_equal(up.n_entries, 0);
    assert_int_equal(up.n_msgs, 0);
    assert_true(up.deadline_ms >= 150 && up.deadline_ms < 300);
    ev = (plog_raft_event){.type = PLOG_RAFT_EV_READ, .now_ms = 1};
    assert_int_equal(plog_raft_step(r, &ev, &up), PLOG_ENOTLEADER);
    ev = (plog_raft_event){.type = 99, .now_ms = 1};
    assert_int_equal(plog_raft_step(r, &ev, &up), PLOG_EINVAL);
    plog_raft_msg m = {.type = PLOG_RAFT_MSG_APPEND, .from = 2, .to = 3, .term = 1};
    ev = (plog_raft_event){.type = PLOG_RAFT_EV_RECEIVE, .now_ms = 1, .msg = &m};
    assert_int_equal(plog_raft_step(r, &ev, &up), PLOG_EINVAL); /* not addressed to us */
    plog_raft_free(r);
}

/* §5.2 and Figure 2: a timeout makes a single server a candidate that persists its
 * term and vote, and - alone in its configuration - the leader, with a no-op to store. */
/* state_bytes: a snapshot's bytes as a driver hands them over (malloc'd). */
static uint8_t *state_bytes(void)
{
    uint8_t *p = malloc(5);
    assert_non_null(p);
    memcpy(p, "state", 5);
    return p;
}

static void test_raft_single_server_elects_itself_and_persists_its_vote(void **state)
{
    (void)state;
    plog_raft *r = raft_of(1, 1);
    plog_raft_update up;
    /* The only voter campaigns at its first tick (a clock that starts at the
     * machine's uptime, as the driver's does): it has nobody to wait for. */
    plog_raft_event ev = {.type = PLOG_RAFT_EV_TICK, .now_ms = 34000000};
    assert_plog_ok(plog_raft_step(r, &ev, &up));
    assert_true(up.flags & PLOG_RAFT_UPD_HARDSTATE);
    assert_int_equal(up.hs.term, 1);
    assert_int_equal(up.hs.vote, 1);
    assert_int_equal(up.n_entries, 1);
    assert_int_equal(up.entries[0].type, PLOG_RAFT_ENTRY_NOOP);
    assert_int_equal(up.n_committed, 0);               /* not before it is persisted */
    assert_false(up.flags & PLOG_RAFT_UPD_SEND_EARLY); /* its vote is in this update */
    ev = (plog_raft_event){.type = PLOG_RAFT_EV_PERSISTED, .now_ms = ev.now_ms, .index = 1, .term = 1};
    assert_plog_ok(plog_raft_step(r, &ev, &up));
    assert_int_equal(up.n_committed, 1);
    assert_int_equal(up.committed[0].index, 1);
    /* a stale persisted report (wrong term) is ignored */
    plog_raft_buf b = {.data = (const uint8_t *)"abc", .len = 3};
    ev = (plog_raft_event){.type = PLOG_RAFT_EV_PROPOSE, .now_ms = ev.now_ms, .bufs = &b, .n_bufs = 1};
    assert_plog_ok(plog_raft_step(r, &ev, &up));
    assert_int_equal(up.index, 2);
    assert_int_equal(up.term, 1);
    assert_int_equal(up.n_entries, 1);
    assert_memory_equal(up.entries[0].data, "abc", 3);
    ev = (plog_raft_event){.type = PLOG_RAFT_EV_PERSISTED, .now_ms = ev.now_ms, .index = 2, .term = 7};
    assert_plog_ok(plog_raft_step(r, &ev, &up));
    assert_int_equal(up.n_committed, 0);
    ev.term = 1;
    assert_plog_ok(plog_raft_step(r, &ev, &up));
    assert_int_equal(up.n_committed, 1);
    /* ReadIndex in a cluster of one is ready at once */
    ev = (plog_raft_event){.type = PLOG_RAFT_EV_READ, .now_ms = ev.now_ms, .ctx = 42};
    assert_plog_ok(plog_raft_step(r, &ev, &up));
    assert_int_equal(up.n_reads, 1);
    assert_int_equal(up.reads[0].ctx, 42);
    assert_int_equal(up.reads[0].index, 2);
    /* compaction: the meta a driver stores before it hands the bytes over is what
     * comes back; the core takes the bytes (freed with it), not a copy */
    plog_raft_snapshot meta;
    assert_plog_ok(plog_raft_snapshot_meta(r, 2, &meta));
    assert_int_equal(plog_raft_snapshot_meta(r, 3, &meta), PLOG_EINVAL); /* not applied yet */
    ev = (plog_raft_event){.type = PLOG_RAFT_EV_SNAPSHOT_TAKEN,
                           .now_ms = ev.now_ms,
                           .index = 2,
                           .snap_data = state_bytes(),
                           .snap_len = 5};
    assert_plog_ok(plog_raft_step(r, &ev, &up));
    assert_non_null(up.compacted);
    assert_int_equal(up.compacted->index, 2);
    assert_int_equal(up.compacted->term, 1);
    assert_int_equal(up.compacted->conf.n, 1);
    assert_int_equal(meta.index, up.compacted->index);
    assert_int_equal(meta.term, up.compacted->term);
    assert_int_equal(meta.conf.n, up.compacted->conf.n);
    assert_int_equal(meta.conf.servers[0].id, up.compacted->conf.servers[0].id);
    ev.index = 3; /* not applied yet: refused, the bytes stay the caller's */
    ev.snap_data = state_bytes();
    assert_int_equal(plog_raft_step(r, &ev, &up), PLOG_EINVAL);
    free(ev.snap_data);
    ev.snap_data = NULL; /* no bytes: refused */
    ev.index = 2;
    assert_int_equal(plog_raft_step(r, &ev, &up), PLOG_EINVAL);
    plog_raft_free(r);
}

/* §5.2: a server starts as a follower and campaigns only after an election timeout
 * without a leader. The driver's clock is CLOCK_MONOTONIC (the machine's uptime), so
 * the first event's now_ms is far from 0: a core that counted its first timeout from
 * 0 campaigned at its first tick, and every restarted node of a black-box run logged
 * role=pre-candidate the moment it started. The timeout counts from the first event. */
static void test_raft_first_timeout_counts_from_the_first_event_not_from_zero(void **state)
{
    (void)state;
    plog_raft *r = raft_of(1, 3);
    plog_raft_update up;
    const uint64_t start = 34000000; /* 9.4 hours of uptime */
    plog_raft_event ev = {.type = PLOG_RAFT_EV_TICK, .now_ms = start};
    assert_plog_ok(plog_raft_step(r, &ev, &up));
    plog_raft_status st;
    plog_raft_get_status(r, &st);
    assert_int_equal(st.role, PLOG_RAFT_FOLLOWER);
    assert_int_equal(up.n_msgs, 0); /* no pre-vote requests */
    /* drawn from [T, 2T) after the first event */
    assert_in_range(up.deadline_ms, start + 150, start + 299);
    ev.now_ms = up.deadline_ms - 1;
    assert_plog_ok(plog_raft_step(r, &ev, &up));
    plog_raft_get_status(r, &st);
    assert_int_equal(st.role, PLOG_RAFT_FOLLOWER);
    ev.now_ms = up.deadline_ms;
    assert_plog_ok(plog_raft_step(r, &ev, &up));
    plog_raft_get_status(r, &st);
    assert_int_equal(st.role, PLOG_RAFT_PRECANDIDATE);
    assert_int_equal(up.n_msgs, 2); /* a pre-vote request to each of the others */
    plog_raft_free(r);
}

/* config_entry is a CONFIG entry at index, of term, holding c (encoded into buf). */
static plog_raft_entry config_entry(uint64_t index, uint64_t term, const plog_raft_conf *c, uint8_t *buf)
{
    plog_raft_entry e = {.term = term, .index = index, .type = PLOG_RAFT_ENTRY_CONFIG, .data = buf};
    e.len = plog_raft_conf_encode(c, buf);
    return e;
}

/* thesis §4.1: the configuration in force is the latest in the log. A server booted
 * with no cfg.initial, from a stored log whose entry 1 names it the one voter (how the
 * driver bootstraps, durably), elects itself and commits that entry with its no-op;
 * a server given nothing learns it from the leader's entry 1 and, not a voter there,
 * never campaigns, until the entry that adds it arrives. */
static void test_raft_configuration_comes_from_a_config_entry_at_index_1(void **state)
{
    (void)state;
    plog_raft_conf one = {.n = 1};
    one.servers[0] = (plog_raft_server){.id = 1, .role = PLOG_RAFT_VOTER};
    uint8_t buf[PLOG_RAFT_CONF_MAX_BYTES];
    plog_raft_entry e1 = config_entry(1, 1, &one, buf);
    plog_raft_config c;
    plog_raft_config_default(&c, 1);
    plog_raft_boot boot = {.hs = {.term = 1}, .entries = &e1, .n_entries = 1};
    plog_raft *r;
    assert_plog_ok(plog_raft_new(&c, &boot, &r));
    plog_raft_status st;
    plog_raft_get_status(r, &st);
    assert_int_equal(st.conf.n, 1);
    assert_int_equal(st.conf.servers[0].id, 1);
    plog_raft_update up;
    plog_raft_event ev = {.type = PLOG_RAFT_EV_TICK, .now_ms = 0};
    assert_plog_ok(plog_raft_step(r, &ev, &up)); /* the only voter: it campaigns at once */
    plog_raft_get_status(r, &st);
    assert_int_equal(st.role, PLOG_RAFT_LEADER);
    assert_int_equal(up.hs.term, 2);
    assert_int_equal(up.n_entries, 1);
    assert_int_equal(up.entries[0].index, 2);
    assert_int_equal(up.entries[0].type, PLOG_RAFT_ENTRY_NOOP);
    ev = (plog_raft_event){.type = PLOG_RAFT_EV_PERSISTED, .now_ms = ev.now_ms, .index = 2, .term = 2};
    assert_plog_ok(plog_raft_step(r, &ev, &up));
    assert_int_equal(up.n_committed, 2);
    assert_int_equal(up.committed[0].type, PLOG_RAFT_ENTRY_CONFIG);
    assert_int_equal(up.committed[1].type, PLOG_RAFT_ENTRY_NOOP);
    plog_raft_free(r);

    plog_raft_config_default(&c, 2);
    assert_plog_ok(plog_raft_new(&c, NULL, &r));
    plog_raft_msg m = {.type = PLOG_RAFT_MSG_APPEND,
                       .from = 1,
                       .to = 2,
                       .term = 2,
                       .entries = &e1,
                       .n_entries = 1,
                       .commit = 1};
    ev = (plog_raft_event){.type = PLOG_RAFT_EV_RECEIVE, .now_ms = 1, .msg = &m};
    assert_plog_ok(plog_raft_step(r, &ev, &up));
    plog_raft_get_status(r, &st);
    assert_int_equal(st.conf.n, 1);
    assert_int_equal(st.last, 1);
    for (uint64_t now = 10; now < 5000; now += 10) {
        ev = (plog_raft_event){.type = PLOG_RAFT_EV_TICK, .now_ms = now};
        assert_plog_ok(plog_raft_step(r, &ev, &up));
        for (size_t i = 0; i < up.n_msgs; i++)
            assert_true(up.msgs[i].type != PLOG_RAFT_MSG_PREVOTE && up.msgs[i].type != PLOG_RAFT_MSG_VOTE);
    }
    plog_raft_get_status(r, &st);
    assert_int_equal(st.role, PLOG_RAFT_FOLLOWER);
    plog_raft_conf two = one;
    two.servers[two.n++] = (plog_raft_server){.id = 2, .role = PLOG_RAFT_LEARNER, .promote = true};
    uint8_t buf2[PLOG_RAFT_CONF_MAX_BYTES];
    plog_raft_entry more[2] = {{.term = 2, .index = 2, .type = PLOG_RAFT_ENTRY_NOOP},
                               config_entry(3, 2, &two, buf2)};
    m = (plog_raft_msg){.type = PLOG_RAFT_MSG_APPEND,
                        .from = 1,
                        .to = 2,
                        .term = 2,
                        .index = 1,
                        .log_term = 1,
                        .entries = more,
                        .n_entries = 2,
                        .commit = 3};
    ev = (plog_raft_event){.type = PLOG_RAFT_EV_RECEIVE, .now_ms = 5000, .msg = &m};
    assert_plog_ok(plog_raft_step(r, &ev, &up));
    plog_raft_get_status(r, &st);
    assert_int_equal(st.conf.n, 2);
    assert_non_null(plog_raft_conf_find(&st.conf, 2));
    plog_raft_free(r);
}

/* Figure 2: votedFor is persistent state: the update that carries a granted vote also
 * carries the hard state with that vote, so the driver writes it before answering. */
static void test_raft_granted_vote_is_in_the_hard_state_of_the_same_update(void **state)
{
    (void)state;
    plog_raft *r = raft_of(1, 3);
    plog_raft_update up;
    plog_raft_msg m = {.type = PLOG_RAFT_MSG_VOTE, .from = 2, .to = 1, .term = 1};
    plog_raft_event ev = {.type = PLOG_RAFT_EV_RECEIVE, .now_ms = 1000, .msg = &m};
    assert_plog_ok(plog_raft_step(r, &ev, &up));
    assert_int_equal(up.n_msgs, 1);
    assert_int_equal(up.msgs[0].type, PLOG_RAFT_MSG_VOTE_RESP);
    assert_false(up.msgs[0].reject);
    assert_true(up.flags & PLOG_RAFT_UPD_HARDSTATE);
    assert_int_equal(up.hs.term, 1);
    assert_int_equal(up.hs.vote, 2);
    /* §5.2: one vote per term: 3 asks in the same term and is refused */
    m.from = 3;
    assert_plog_ok(plog_raft_step(r, &ev, &up));
    assert_int_equal(up.n_msgs, 1);
    assert_true(up.msgs[0].reject);
    plog_raft_free(r);
}

/* §5.4.1: a candidate whose log is behind ours gets no vote, whatever its term. */
static void test_raft_vote_is_refused_to_a_candidate_with_an_older_log(void **state)
{
    (void)state;
    plog_raft_config c = config_of(1, 3);
    plog_raft_entry ents[2] = {{.term = 1, .index = 1}, {.term = 2, .index = 2}};
    plog_raft_boot boot = {.hs = {.term = 2}, .entries = ents, .n_entries = 2};
    plog_raft *r;
    assert_plog_ok(plog_raft_new(&c, &boot, &r));
    plog_raft_update up;
    /* longer log, older last term */
    plog_raft_msg m = {.type = PLOG_RAFT_MSG_VOTE, .from = 2, .to = 1, .term = 5, .index = 9, .log_term = 1};
    plog_raft_event ev = {.type = PLOG_RAFT_EV_RECEIVE, .now_ms = 1000, .msg = &m};
    assert_plog_ok(plog_raft_step(r, &ev, &up));
    assert_int_equal(up.n_msgs, 1);
    assert_true(up.msgs[0].reject);
    assert_int_equal(up.hs.term, 5); /* the term is adopted all the same */
    assert_int_equal(up.hs.vote, 0);
    /* same last term, shorter log */
    m = (plog_raft_msg){.type = PLOG_RAFT_MSG_VOTE, .from = 3, .to = 1, .term = 6, .index = 1, .log_term = 2};
    assert_plog_ok(plog_raft_step(r, &ev, &up));
    assert_true(up.msgs[0].reject);
    /* same last term, same length: granted */
    m.index = 2;
    m.term = 7;
    assert_plog_ok(plog_raft_step(r, &ev, &up));
    assert_false(up.msgs[0].reject);
    assert_int_equal(up.hs.vote, 3);
    plog_raft_free(r);
}

/* A server that knows no configuration (new, or its storage wiped) grants neither a
 * pre-vote nor a vote, whatever the candidate's log: restarted empty under a voter's
 * id, it could otherwise elect a server missing records it had helped commit. Once a
 * leader's entries give it a configuration, it votes as any voter does. */
static void test_raft_server_without_a_configuration_grants_no_vote(void **state)
{
    (void)state;
    plog_raft_config c;
    plog_raft_config_default(&c, 3);
    plog_raft *r;
    assert_plog_ok(plog_raft_new(&c, NULL, &r));
    plog_raft_update up;
    plog_raft_msg m = {
        .type = PLOG_RAFT_MSG_PREVOTE, .from = 1, .to = 3, .term = 5, .index = 4, .log_term = 4};
    plog_raft_event ev = {.type = PLOG_RAFT_EV_RECEIVE, .now_ms = 1000, .msg = &m};
    assert_plog_ok(plog_raft_step(r, &ev, &up));
    assert_int_equal(up.n_msgs, 1);
    assert_int_equal(up.msgs[0].type, PLOG_RAFT_MSG_PREVOTE_RESP);
    assert_true(up.msgs[0].reject);
    m.type = PLOG_RAFT_MSG_VOTE;
    assert_plog_ok(plog_raft_step(r, &ev, &up));
    assert_int_equal(up.n_msgs, 1);
    assert_int_equal(up.msgs[0].type, PLOG_RAFT_MSG_VOTE_RESP);
    assert_true(up.msgs[0].reject);
    assert_int_equal(up.hs.vote, 0);

    /* Leader 2 of term 6 gives it the configuration {1, 2, 3}. */
    plog_raft_conf three = {.n = 3};
    for (unsigned i = 0; i < 3; i++)
        three.servers[i] = (plog_raft_server){.id = i + 1, .role = PLOG_RAFT_VOTER};
    uint8_t buf[PLOG_RAFT_CONF_MAX_BYTES];
    plog_raft_entry e1 = config_entry(1, 1, &three, buf);
    m = (plog_raft_msg){.type = PLOG_RAFT_MSG_APPEND,
                        .from = 2,
                        .to = 3,
                        .term = 6,
                        .entries = &e1,
                        .n_entries = 1,
                        .commit = 1};
    ev.now_ms = 2000;
    assert_plog_ok(plog_raft_step(r, &ev, &up));
    /* Past the leader's lease, 1 campaigns in term 7 with a log as long as ours:
     * granted. */
    m = (plog_raft_msg){.type = PLOG_RAFT_MSG_VOTE, .from = 1, .to = 3, .term = 7, .index = 1, .log_term = 1};
    ev.now_ms = 5000;
    assert_plog_ok(plog_raft_step(r, &ev, &up));
    assert_int_equal(up.n_msgs, 1);
    assert_false(up.msgs[0].reject);
    assert_int_equal(up.hs.vote, 1);
    plog_raft_free(r);
}

/* append_of returns the APPEND to id in up, or NULL. */
static const plog_raft_msg *append_of(const plog_raft_update *up, uint64_t id)
{
    for (size_t i = 0; i < up->n_msgs; i++)
        if (up->msgs[i].type == PLOG_RAFT_MSG_APPEND && up->msgs[i].to == id)
            return &up->msgs[i];
    return NULL;
}

/* elect makes server 1 of three the leader of term 1 (pre-vote, vote) and returns the
 * update of the step that made it leader. */
static void elect(plog_raft *r, plog_raft_update *up, uint64_t now)
{
    plog_raft_event ev = {.type = PLOG_RAFT_EV_TICK, .now_ms = 0};
    assert_plog_ok(plog_raft_step(r, &ev, up));
    ev.now_ms = up->deadline_ms;
    assert_plog_ok(plog_raft_step(r, &ev, up)); /* pre-candidate */
    assert_false(up->flags & PLOG_RAFT_UPD_SEND_EARLY);
    plog_raft_msg m = {.type = PLOG_RAFT_MSG_PREVOTE_RESP, .from = 2, .to = 1, .term = 1};
    ev = (plog_raft_event){.type = PLOG_RAFT_EV_RECEIVE, .now_ms = now, .msg = &m};
    assert_plog_ok(plog_raft_step(r, &ev, up)); /* candidate: vote requests wait for the vote */
    assert_true(up->flags & PLOG_RAFT_UPD_HARDSTATE);
    assert_false(up->flags & PLOG_RAFT_UPD_SEND_EARLY);
    m = (plog_raft_msg){.type = PLOG_RAFT_MSG_VOTE_RESP, .from = 2, .to = 1, .term = 1};
    assert_plog_ok(plog_raft_step(r, &ev, up));
    plog_raft_status st;
    plog_raft_get_status(r, &st);
    assert_int_equal(st.role, PLOG_RAFT_LEADER);
}

/* thesis §10.2.1: a leader sends its entries before they are durable (its update says
 * so), and counts itself toward a commit only once they are reported PERSISTED. */
static void test_raft_leader_sends_before_persisting_and_counts_itself_after(void **state)
{
    (void)state;
    plog_raft *r = raft_of(1, 3);
    plog_raft_update up;
    uint64_t now = 1000;
    elect(r, &up, now);
    /* the no-op is handed out to persist and, in the same update, sent */
    assert_int_equal(up.n_entries, 1);
    assert_true(up.flags & PLOG_RAFT_UPD_SEND_EARLY);
    assert_false(up.flags & PLOG_RAFT_UPD_HARDSTATE);
    assert_non_null(append_of(&up, 2));
    assert_non_null(append_of(&up, 3));
    assert_int_equal(append_of(&up, 2)->n_entries, 1);
    /* one follower holds the no-op: with the leader's own copy not durable, that is
     * one voter of three, no quorum */
    plog_raft_msg m = {.type = PLOG_RAFT_MSG_APPEND_RESP, .from = 2, .to = 1, .term = 1, .index = 1};
    plog_raft_event ev = {.type = PLOG_RAFT_EV_RECEIVE, .now_ms = now, .msg = &m};
    assert_plog_ok(plog_raft_step(r, &ev, &up));
    assert_int_equal(up.n_committed, 0);
    /* a proposal goes out before it is written too */
    plog_raft_buf b = {.data = (const uint8_t *)"abc", .len = 3};
    ev = (plog_raft_event){.type = PLOG_RAFT_EV_PROPOSE, .now_ms = now, .bufs = &b, .n_bufs = 1};
    assert_plog_ok(plog_raft_step(r, &ev, &up));
    assert_int_equal(up.n_entries, 1);
    assert_true(up.flags & PLOG_RAFT_UPD_SEND_EARLY);
    assert_non_null(append_of(&up, 2));
    assert_int_equal(append_of(&up, 2)->n_entries, 1);
    m.index = 2;
    ev = (plog_raft_event){.type = PLOG_RAFT_EV_RECEIVE, .now_ms = now, .msg = &m};
    assert_plog_ok(plog_raft_step(r, &ev, &up));
    assert_int_equal(up.n_committed, 0);
    plog_raft_status st;
    plog_raft_get_status(r, &st);
    assert_int_equal(st.commit, 0);
    /* the leader's write of the no-op completes: index 1 commits, not 2 */
    ev = (plog_raft_event){.type = PLOG_RAFT_EV_PERSISTED, .now_ms = now, .index = 1, .term = 1};
    assert_plog_ok(plog_raft_step(r, &ev, &up));
    assert_int_equal(up.n_committed, 1);
    assert_int_equal(up.committed[0].index, 1);
    ev.index = 2;
    assert_plog_ok(plog_raft_step(r, &ev, &up));
    assert_int_equal(up.n_committed, 1);
    assert_int_equal(up.committed[0].index, 2);
    /* server 2 hears of the commit at once (it holds both entries), server 3 (which
     * has acknowledged nothing) does not */
    const plog_raft_msg *a = append_of(&up, 2);
    assert_non_null(a);
    assert_int_equal(a->commit, 2);
    assert_int_equal(a->index, 2);
    assert_null(append_of(&up, 3));
    /* two followers are a quorum without the leader's disk */
    b = (plog_raft_buf){.data = (const uint8_t *)"def", .len = 3};
    ev = (plog_raft_event){.type = PLOG_RAFT_EV_PROPOSE, .now_ms = now, .bufs = &b, .n_bufs = 1};
    assert_plog_ok(plog_raft_step(r, &ev, &up));
    assert_int_equal(up.index, 3);
    m.index = 3;
    ev = (plog_raft_event){.type = PLOG_RAFT_EV_RECEIVE, .now_ms = now, .msg = &m};
    assert_plog_ok(plog_raft_step(r, &ev, &up));
    assert_int_equal(up.n_committed, 0);
    m.from = 3;
    assert_plog_ok(plog_raft_step(r, &ev, &up));
    assert_int_equal(up.n_committed, 1);
    assert_int_equal(up.committed[0].index, 3);
    plog_raft_free(r);
}

/* A follower whose acknowledgement arrives after the entry committed (the other
 * follower made the quorum) is told the commit right away, not at the next heartbeat. */
static void test_raft_late_follower_hears_the_commit_without_a_heartbeat(void **state)
{
    (void)state;
    plog_raft_config c = config_of(1, 3);
    plog_raft *r;
    assert_plog_ok(plog_raft_new(&c, NULL, &r));
    plog_raft_update up;
    uint64_t now = 1000;
    elect(r, &up, now);
    plog_raft_event ev = {.type = PLOG_RAFT_EV_PERSISTED, .now_ms = now, .index = 1, .term = 1};
    assert_plog_ok(plog_raft_step(r, &ev, &up));
    plog_raft_msg m = {.type = PLOG_RAFT_MSG_APPEND_RESP, .from = 2, .to = 1, .term = 1, .index = 1};
    ev = (plog_raft_event){.type = PLOG_RAFT_EV_RECEIVE, .now_ms = now, .msg = &m};
    assert_plog_ok(plog_raft_step(r, &ev, &up));
    assert_int_equal(up.n_committed, 1);
    assert_null(append_of(&up, 3)); /* 3 has not got the entry yet as far as we know */
    uint64_t heartbeat_at = up.deadline_ms;
    /* 3 acknowledges later, before the heartbeat is due */
    m.from = 3;
    ev.now_ms = now + 1;
    assert_true(ev.now_ms < heartbeat_at);
    assert_plog_ok(plog_raft_step(r, &ev, &up));
    const plog_raft_msg *a = append_of(&up, 3);
    assert_non_null(a);
    assert_int_equal(a->commit, 1);
    assert_int_equal(a->index, 1); /* at its match: min(commit, match) = 1 */
    assert_int_equal(a->n_entries, 0);
    /* told once: a repeated acknowledgement sends nothing more */
    assert_plog_ok(plog_raft_step(r, &ev, &up));
    assert_null(append_of(&up, 3));
    /* a follower's own answers wait for its disk */
    plog_raft *f;
    c = config_of(2, 3);
    assert_plog_ok(plog_raft_new(&c, NULL, &f));
    plog_raft_entry e = {.term = 1, .index = 1, .type = PLOG_RAFT_ENTRY_NOOP};
    m = (plog_raft_msg){
        .type = PLOG_RAFT_MSG_APPEND, .from = 1, .to = 2, .term = 1, .entries = &e, .n_entries = 1};
    ev = (plog_raft_event){.type = PLOG_RAFT_EV_RECEIVE, .now_ms = now, .msg = &m};
    assert_plog_ok(plog_raft_step(f, &ev, &up));
    assert_int_equal(up.n_entries, 1);
    assert_int_equal(up.n_msgs, 1);
    assert_false(up.flags & PLOG_RAFT_UPD_SEND_EARLY);
    plog_raft_free(f);
    plog_raft_free(r);
}

/* test storage for mem_limit: entry i holds 100 bytes of 'a' + i */
struct test_disk {
    unsigned loads;
};

static int test_load(void *arg, uint64_t index, uint8_t *buf, size_t len)
{
    struct test_disk *d = arg;
    if (len != 100)
        return PLOG_ECORRUPT;
    memset(buf, (int)('a' + index), len);
    d->loads++;
    return PLOG_OK;
}

/* mem_limit: entries applied and persisted leave memory, oldest first; a follower
 * that needs them gets them read back through load. */
static void test_raft_mem_limit_drops_applied_entries_and_reads_them_back(void **state)
{
    (void)state;
    struct test_disk disk = {0};
    plog_raft_config c = config_of(1, 3);
    c.mem_limit = 150;
    plog_raft *r;
    assert_int_equal(plog_raft_new(&c, NULL, &r), PLOG_EINVAL); /* no load function */
    c.load = test_load;
    c.load_arg = &disk;
    assert_plog_ok(plog_raft_new(&c, NULL, &r));
    plog_raft_update up;
    uint64_t now = 1000;
    elect(r, &up, now);
    uint8_t v[100];
    for (uint64_t i = 2; i <= 6; i++) {
        memset(v, (int)('a' + i), sizeof v);
        plog_raft_buf b = {.data = v, .len = sizeof v};
        plog_raft_event ev = {.type = PLOG_RAFT_EV_PROPOSE, .now_ms = now, .bufs = &b, .n_bufs = 1};
        assert_plog_ok(plog_raft_step(r, &ev, &up));
        assert_int_equal(up.index, i);
    }
    plog_raft_status st;
    plog_raft_get_status(r, &st);
    assert_int_equal(st.mem, 500); /* nothing applied yet: all kept */
    plog_raft_event ev = {.type = PLOG_RAFT_EV_PERSISTED, .now_ms = now, .index = 6, .term = 1};
    assert_plog_ok(plog_raft_step(r, &ev, &up));
    plog_raft_msg m = {.type = PLOG_RAFT_MSG_APPEND_RESP, .from = 2, .to = 1, .term = 1, .index = 6};
    ev = (plog_raft_event){.type = PLOG_RAFT_EV_RECEIVE, .now_ms = now, .msg = &m};
    assert_plog_ok(plog_raft_step(r, &ev, &up));
    assert_int_equal(up.n_committed, 6); /* handed out: applied by the next step */
    ev = (plog_raft_event){.type = PLOG_RAFT_EV_TICK, .now_ms = now};
    assert_plog_ok(plog_raft_step(r, &ev, &up));
    plog_raft_get_status(r, &st);
    assert_true(st.mem <= 150);
    assert_int_equal(st.first, 1); /* the entries themselves stay (no snapshot) */
    assert_int_equal(disk.loads, 0);
    /* server 3 answers its probe at index 1: it gets 2..6, data read back */
    m = (plog_raft_msg){.type = PLOG_RAFT_MSG_APPEND_RESP, .from = 3, .to = 1, .term = 1, .index = 1};
    ev = (plog_raft_event){.type = PLOG_RAFT_EV_RECEIVE, .now_ms = now, .msg = &m};
    assert_plog_ok(plog_raft_step(r, &ev, &up));
    const plog_raft_msg *a = append_of(&up, 3);
    assert_non_null(a);
    assert_int_equal(a->index, 1);
    assert_int_equal(a->n_entries, 5);
    for (size_t i = 0; i < 5; i++) {
        assert_int_equal(a->entries[i].index, i + 2);
        assert_int_equal(a->entries[i].len, 100);
        memset(v, (int)('a' + i + 2), sizeof v);
        assert_memory_equal(a->entries[i].data, v, sizeof v);
    }
    assert_int_equal(disk.loads, 4); /* 6 stayed in memory */
    plog_raft_get_status(r, &st);
    assert_true(st.mem <= 150); /* what was read back belongs to the update only */
    plog_raft_free(r);
}

/* max_batch_bytes: an AppendEntries carries entries up to that many bytes (at least
 * one), the rest go in the next ones of the pipeline. */
static void test_raft_append_entries_are_bounded_in_bytes(void **state)
{
    (void)state;
    plog_raft_config c = config_of(1, 3);
    c.max_batch_bytes = 250;
    plog_raft *r;
    assert_plog_ok(plog_raft_new(&c, NULL, &r));
    plog_raft_update up;
    uint64_t now = 1000;
    elect(r, &up, now);
    uint8_t v[100] = {0};
    for (int i = 0; i < 5; i++) {
        plog_raft_buf b = {.data = v, .len = sizeof v};
        plog_raft_event ev = {.type = PLOG_RAFT_EV_PROPOSE, .now_ms = now, .bufs = &b, .n_bufs = 1};
        assert_plog_ok(plog_raft_step(r, &ev, &up));
    }
    /* server 2 answers its probe at index 1: entries 2..6 (500 bytes) go 2 + 2 + 1 */
    plog_raft_msg m = {.type = PLOG_RAFT_MSG_APPEND_RESP, .from = 2, .to = 1, .term = 1, .index = 1};
    plog_raft_event ev = {.type = PLOG_RAFT_EV_RECEIVE, .now_ms = now, .msg = &m};
    assert_plog_ok(plog_raft_step(r, &ev, &up));
    size_t sizes[8], n = 0;
    uint64_t next = 2;
    for (size_t i = 0; i < up.n_msgs && n < 8; i++) {
        if (up.msgs[i].type != PLOG_RAFT_MSG_APPEND || up.msgs[i].to != 2)
            continue;
        assert_int_equal(up.msgs[i].index + 1, next);
        next += up.msgs[i].n_entries;
        sizes[n++] = up.msgs[i].n_entries;
    }
    assert_int_equal(n, 3);
    assert_int_equal(sizes[0], 2);
    assert_int_equal(sizes[1], 2);
    assert_int_equal(sizes[2], 1);
    plog_raft_free(r);
}

/* A snapshot whose last entry the follower does not hold is installed, not taken
 * for one it holds: before, a snapshot claiming term 0 matched the 0 the log reads
 * for an index it does not hold, and the commit index moved past the log's end (a
 * fuzzer's find: entries handed out beyond the array). Term 0 and index 0 are
 * refused; an empty snapshot (a leader with no state yet sends one) is taken. */
static void test_raft_snapshot_past_the_log_is_installed_not_taken_as_held(void **state)
{
    (void)state;
    plog_raft *r = raft_of(1, 3);
    plog_raft_update up;
    plog_raft_entry e = {.term = 1, .index = 1, .data = (const uint8_t *)"x", .len = 1};
    plog_raft_msg a = {
        .type = PLOG_RAFT_MSG_APPEND, .from = 2, .to = 1, .term = 1, .entries = &e, .n_entries = 1};
    plog_raft_event ev = {.type = PLOG_RAFT_EV_RECEIVE, .now_ms = 1, .msg = &a};
    assert_plog_ok(plog_raft_step(r, &ev, &up));
    plog_raft_event p = {.type = PLOG_RAFT_EV_PERSISTED, .now_ms = 1, .index = 1, .term = 1};
    assert_plog_ok(plog_raft_step(r, &p, &up));

    plog_raft_msg s = {.type = PLOG_RAFT_MSG_SNAPSHOT,
                       .from = 2,
                       .to = 1,
                       .term = 1,
                       .index = 100,
                       .log_term = 0,
                       .total = 1,
                       .data = (const uint8_t *)"S",
                       .len = 1,
                       .done = true};
    s.conf.n = 3;
    for (unsigned i = 0; i < 3; i++)
        s.conf.servers[i] = (plog_raft_server){.id = i + 1, .role = PLOG_RAFT_VOTER};
    ev.msg = &s;
    assert_int_equal(plog_raft_step(r, &ev, &up), PLOG_EINVAL);
    plog_raft_status st;
    plog_raft_get_status(r, &st);
    assert_true(st.commit <= st.last);
    assert_int_equal(st.last, 1);

    s.log_term = 1;
    assert_plog_ok(plog_raft_step(r, &ev, &up));
    plog_raft_get_status(r, &st);
    assert_int_equal(st.commit, 100);
    assert_int_equal(st.last, 100);
    assert_non_null(up.snapshot);
    assert_int_equal(up.snapshot->index, 100);
    assert_int_equal(up.n_committed, 0);

    plog_raft_msg empty = s;
    empty.index = 200;
    empty.data = NULL;
    empty.len = empty.total = 0;
    ev.msg = &empty;
    assert_plog_ok(plog_raft_step(r, &ev, &up));
    plog_raft_get_status(r, &st);
    assert_int_equal(st.commit, 200);
    assert_non_null(up.snapshot);
    assert_int_equal(up.snapshot->len, 0);
    plog_raft_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_raft_conf_encoding_round_trips),
        cmocka_unit_test(test_raft_conf_decode_rejects_malformed_bytes),
        cmocka_unit_test(test_raft_new_rejects_a_bad_config),
        cmocka_unit_test(test_raft_new_rejects_a_boot_log_with_a_gap),
        cmocka_unit_test(test_raft_follower_refuses_leader_only_events),
        cmocka_unit_test(test_raft_single_server_elects_itself_and_persists_its_vote),
        cmocka_unit_test(test_raft_first_timeout_counts_from_the_first_event_not_from_zero),
        cmocka_unit_test(test_raft_configuration_comes_from_a_config_entry_at_index_1),
        cmocka_unit_test(test_raft_granted_vote_is_in_the_hard_state_of_the_same_update),
        cmocka_unit_test(test_raft_vote_is_refused_to_a_candidate_with_an_older_log),
        cmocka_unit_test(test_raft_server_without_a_configuration_grants_no_vote),
        cmocka_unit_test(test_raft_leader_sends_before_persisting_and_counts_itself_after),
        cmocka_unit_test(test_raft_late_follower_hears_the_commit_without_a_heartbeat),
        cmocka_unit_test(test_raft_mem_limit_drops_applied_entries_and_reads_them_back),
        cmocka_unit_test(test_raft_append_entries_are_bounded_in_bytes),
        cmocka_unit_test(test_raft_snapshot_past_the_log_is_installed_not_taken_as_held),
    };
    return cmocka_run_group_tests_name("raft", tests, NULL, NULL);
}
