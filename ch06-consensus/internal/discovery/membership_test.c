/* membership_test.c - one membership core driven by hand-made messages: the
 * state rules (incarnations, refutation, join/leave/failed/update events),
 * answering pings and ping-reqs, suspicion timing, joining, leaving, two
 * processes under one name, and the handling of bad input. The protocol as a whole is tested in swim_test.c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "internal/discovery/membership.h"
#include "internal/err/err.h"
#include "testing/testing.h"

static plog_membership *new_node(uint64_t now)
{
    plog_membership_config c;
    plog_membership_config_fast(&c);
    plog_gossip_tag tag = {"rpc_addr", "127.0.0.1:8400"};
    c.name = "a";
    c.addr = "sim://a";
    c.tags = &tag;
    c.ntags = 1;
    c.incarnation = 1;
    c.seed = 7;
    plog_membership *m = NULL;
    assert_plog_ok(plog_membership_new(&c, now, &m));
    return m;
}

static void deliver(plog_membership *m, uint64_t now, plog_gossip_msg *msg)
{
    uint8_t *buf;
    size_t len;
    assert_plog_ok(plog_gossip_encode_alloc(msg, &buf, &len));
    assert_plog_ok(plog_membership_recv(m, now, buf, len));
    free(buf);
}

/* alive builds "name is alive at inc" at sim://name with tag rpc_addr=rpc.
 * The strings live in a small ring, long enough for one say(). */
static plog_gossip_state alive(const char *name, uint64_t inc, const char *rpc)
{
    static plog_gossip_tag tags[8];
    static char addrs[8][64];
    static unsigned next;
    unsigned k = next++ % 8;
    tags[k] = (plog_gossip_tag){"rpc_addr", rpc};
    snprintf(addrs[k], sizeof addrs[k], "sim://%s", name);
    return (plog_gossip_state){.status = PLOG_GOSSIP_ALIVE,
                               .incarnation = inc,
                               .name = name,
                               .from = "",
                               .addr = addrs[k],
                               .tags = &tags[k],
                               .ntags = 1};
}

/* say delivers one state about a member, from node "x", as a gossip message. */
static void say(plog_membership *m, uint64_t now, plog_gossip_state s)
{
    if (s.addr == NULL)
        s.addr = "";
    if (s.from == NULL)
        s.from = "";
    plog_gossip_msg msg = {
        .type = PLOG_GOSSIP_GOSSIP, .from = "x", .from_addr = "sim://x", .states = &s, .nstates = 1};
    deliver(m, now, &msg);
}

static plog_gossip_state about(const char *name, int status, uint64_t inc, const char *from)
{
    return (plog_gossip_state){.status = (uint8_t)status, .incarnation = inc, .name = name, .from = from};
}

static void drain_sends(plog_membership *m)
{
    plog_membership_send s;
    while (plog_membership_pop_send(m, &s))
        free(s.data);
}

/* next_sent pops the next message and decodes it into *msg (release it). */
static bool next_sent(plog_membership *m, char *addr, plog_gossip_msg *msg)
{
    plog_membership_send s;
    if (!plog_membership_pop_send(m, &s))
        return false;
    if (addr != NULL)
        strcpy(addr, s.addr);
    assert_plog_ok(plog_gossip_decode(s.data, s.len, msg));
    free(s.data);
    return true;
}

static int next_event(plog_membership *m, const char *name)
{
    plog_membership_event e;
    if (!plog_membership_pop_event(m, &e))
        return 0;
    assert_string_equal(e.member.name, name);
    return e.type;
}

static int status_of(plog_membership *m, const char *name)
{
    plog_membership_member mb;
    return plog_membership_find(m, name, &mb) ? mb.status : 0;
}

static void test_membership_new_rejects_bad_config(void **state)
{
    (void)state;
    plog_membership_config c;
    plog_membership *m = NULL;
    plog_membership_config_fast(&c);
    c.name = "a";
    c.addr = "sim://a";
    assert_int_equal(plog_membership_new(&c, 0, &m), PLOG_OK);
    plog_membership_free(m);
    c.name = "has space";
    assert_int_equal(plog_membership_new(&c, 0, &m), PLOG_EINVAL);
    c.name = "";
    assert_int_equal(plog_membership_new(&c, 0, &m), PLOG_EINVAL);
    c.name = "a";
    c.probe_timeout_ms = c.probe_interval_ms;
    assert_int_equal(plog_membership_new(&c, 0, &m), PLOG_EINVAL);
    plog_membership_config_lan(&c);
    c.name = "a";
    c.addr = "sim://a";
    char big[300];
    memset(big, 'v', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    plog_gossip_tag tag = {"k", big};
    c.tags = &tag;
    c.ntags = 1;
    assert_int_equal(plog_membership_new(&c, 0, &m), PLOG_EINVAL);
}

static void test_membership_ping_for_us_is_acked_with_its_seq_to_the_sender(void **state)
{
    (void)state;
    plog_membership *m = new_node(0);
    plog_gossip_msg ping = {
        .type = PLOG_GOSSIP_PING, .seq = 77, .from = "b", .from_addr = "sim://b", .target = "a"};
    deliver(m, 10, &ping);
    char addr[256];
    plog_gossip_msg got;
    assert_true(next_sent(m, addr, &got));
    assert_string_equal(addr, "sim://b");
    assert_int_equal(got.type, PLOG_GOSSIP_ACK);
    assert_int_equal(got.seq, 77);
    assert_string_equal(got.from, "a");
    plog_gossip_release(&got);
    /* A ping meant for someone who had our address before us: no answer. */
    ping.target = "old";
    deliver(m, 20, &ping);
    assert_false(next_sent(m, addr, &got));
    plog_membership_free(m);
}

static void test_membership_alive_about_a_new_member_adds_it_with_its_tags(void **state)
{
    (void)state;
    plog_membership *m = new_node(0);
    say(m, 1, alive("b", 3, "10.0.0.2:8400"));
    assert_int_equal(next_event(m, "b"), PLOG_MEMBERSHIP_JOIN);
    plog_membership_member mb;
    assert_true(plog_membership_find(m, "b", &mb));
    assert_int_equal(mb.status, PLOG_GOSSIP_ALIVE);
    assert_int_equal(mb.incarnation, 3);
    assert_string_equal(mb.addr, "sim://b");
    assert_string_equal(plog_membership_tag(&mb, "rpc_addr"), "10.0.0.2:8400");
    assert_null(plog_membership_tag(&mb, "nope"));
    assert_int_equal(plog_membership_count(m), 2);
    /* The same news again changes nothing. */
    say(m, 2, alive("b", 3, "10.0.0.2:8400"));
    assert_int_equal(next_event(m, "b"), 0);
    plog_membership_free(m);
}

static void test_membership_older_incarnations_are_ignored(void **state)
{
    (void)state;
    plog_membership *m = new_node(0);
    say(m, 1, alive("b", 5, "r"));
    next_event(m, "b");
    say(m, 2, about("b", PLOG_GOSSIP_SUSPECT, 4, "c"));
    say(m, 3, about("b", PLOG_GOSSIP_DEAD, 4, "c"));
    say(m, 4, alive("b", 4, "other"));
    assert_int_equal(status_of(m, "b"), PLOG_GOSSIP_ALIVE);
    assert_int_equal(next_event(m, "b"), 0);
    plog_membership_member mb;
    plog_membership_find(m, "b", &mb);
    assert_string_equal(plog_membership_tag(&mb, "rpc_addr"), "r");
    plog_membership_free(m);
}

static void test_membership_suspicion_about_us_is_refuted_with_a_higher_incarnation(void **state)
{
    (void)state;
    plog_membership *m = new_node(0);
    say(m, 1, alive("b", 1, "r"));
    next_event(m, "b");
    drain_sends(m);
    say(m, 2, about("a", PLOG_GOSSIP_SUSPECT, 7, "b"));
    assert_int_equal(plog_membership_self_incarnation(m), 8);
    /* The refutation rides on the next message we send. */
    plog_gossip_msg ping = {
        .type = PLOG_GOSSIP_PING, .seq = 1, .from = "b", .from_addr = "sim://b", .target = "a"};
    deliver(m, 3, &ping);
    plog_gossip_msg got;
    assert_true(next_sent(m, NULL, &got));
    bool found = false;
    for (size_t i = 0; i < got.nstates; i++)
        if (strcmp(got.states[i].name, "a") == 0) {
            assert_int_equal(got.states[i].status, PLOG_GOSSIP_ALIVE);
            assert_int_equal(got.states[i].incarnation, 8);
            found = true;
        }
    assert_true(found);
    plog_gossip_release(&got);
    /* Dead about us is refuted too, and an old rumour is not. */
    say(m, 4, about("a", PLOG_GOSSIP_DEAD, 8, "b"));
    assert_int_equal(plog_membership_self_incarnation(m), 9);
    drain_sends(m);
    say(m, 5, about("a", PLOG_GOSSIP_SUSPECT, 3, "b"));
    assert_int_equal(plog_membership_self_incarnation(m), 9);
    /* ... but its sender missed the refutation: the answer repeats it. */
    deliver(m, 6, &ping);
    assert_true(next_sent(m, NULL, &got));
    found = false;
    for (size_t i = 0; i < got.nstates; i++)
        found |= strcmp(got.states[i].name, "a") == 0 && got.states[i].status == PLOG_GOSSIP_ALIVE &&
                 got.states[i].incarnation == 9;
    assert_true(found);
    plog_gossip_release(&got);
    plog_membership_stats st;
    plog_membership_get_stats(m, &st);
    assert_int_equal(st.refutations, 2);
    assert_int_equal(status_of(m, "a"), PLOG_GOSSIP_ALIVE);
    plog_membership_free(m);
}

/* A rumour at the largest incarnation could only be refuted at one more: the
 * sum wrapped to 0, and one gossip message left a member dead everywhere. */
static void test_membership_rumours_at_the_largest_incarnation_are_dropped(void **state)
{
    (void)state;
    plog_membership *m = new_node(0);
    say(m, 1, alive("b", 5, "r"));
    next_event(m, "b");
    drain_sends(m);
    say(m, 2, about("a", PLOG_GOSSIP_DEAD, UINT64_MAX, "b"));
    say(m, 3, about("a", PLOG_GOSSIP_SUSPECT, UINT64_MAX, "b"));
    say(m, 4, about("a", PLOG_GOSSIP_LEFT, UINT64_MAX, "b"));
    say(m, 5, alive("a", UINT64_MAX, "127.0.0.1:8400"));
    assert_int_equal(plog_membership_self_incarnation(m), 1);
    assert_int_equal(status_of(m, "a"), PLOG_GOSSIP_ALIVE);
    say(m, 6, about("b", PLOG_GOSSIP_DEAD, UINT64_MAX, "c"));
    say(m, 7, about("b", PLOG_GOSSIP_SUSPECT, UINT64_MAX, "c"));
    assert_int_equal(status_of(m, "b"), PLOG_GOSSIP_ALIVE);
    assert_int_equal(next_event(m, "b"), 0);
    /* One below is answered, and the answer, an alive at the largest, is news. */
    say(m, 8, about("a", PLOG_GOSSIP_SUSPECT, UINT64_MAX - 1, "b"));
    assert_true(plog_membership_self_incarnation(m) == UINT64_MAX);
    say(m, 9, about("b", PLOG_GOSSIP_SUSPECT, UINT64_MAX - 1, "c"));
    assert_int_equal(status_of(m, "b"), PLOG_GOSSIP_SUSPECT);
    say(m, 10, alive("b", UINT64_MAX, "r"));
    assert_int_equal(status_of(m, "b"), PLOG_GOSSIP_ALIVE);
    plog_membership_free(m);
}

static void test_membership_dead_member_back_with_higher_incarnation_joins_again(void **state)
{
    (void)state;
    plog_membership *m = new_node(0);
    say(m, 1, alive("b", 2, "r1"));
    assert_int_equal(next_event(m, "b"), PLOG_MEMBERSHIP_JOIN);
    say(m, 2, about("b", PLOG_GOSSIP_DEAD, 2, "c"));
    assert_int_equal(next_event(m, "b"), PLOG_MEMBERSHIP_FAILED);
    assert_int_equal(status_of(m, "b"), PLOG_GOSSIP_DEAD);
    say(m, 3, alive("b", 2, "r1"));
    assert_int_equal(status_of(m, "b"), PLOG_GOSSIP_DEAD); /* not news */
    say(m, 4, alive("b", 3, "r2"));
    assert_int_equal(next_event(m, "b"), PLOG_MEMBERSHIP_JOIN);
    plog_membership_member mb;
    plog_membership_find(m, "b", &mb);
    assert_int_equal(mb.incarnation, 3);
    assert_string_equal(plog_membership_tag(&mb, "rpc_addr"), "r2");
    assert_int_equal(plog_membership_count(m), 2);
    plog_membership_free(m);
}

static void test_membership_new_tags_emit_update_and_leave_emits_leave(void **state)
{
    (void)state;
    plog_membership *m = new_node(0);
    say(m, 1, alive("b", 1, "r1"));
    next_event(m, "b");
    say(m, 2, alive("b", 2, "r2"));
    assert_int_equal(next_event(m, "b"), PLOG_MEMBERSHIP_UPDATE);
    say(m, 3, alive("b", 3, "r2"));
    assert_int_equal(next_event(m, "b"), 0); /* a refutation: no change to report */
    say(m, 4, about("b", PLOG_GOSSIP_LEFT, 4, ""));
    assert_int_equal(next_event(m, "b"), PLOG_MEMBERSHIP_LEAVE);
    assert_int_equal(status_of(m, "b"), PLOG_GOSSIP_LEFT);
    say(m, 5, about("b", PLOG_GOSSIP_DEAD, 4, "c"));
    assert_int_equal(next_event(m, "b"), 0);
    assert_int_equal(status_of(m, "b"), PLOG_GOSSIP_LEFT);
    plog_membership_free(m);
}

static void test_membership_push_pull_dead_entry_only_suspects(void **state)
{
    (void)state;
    plog_membership *m = new_node(0);
    say(m, 1, alive("b", 1, "r"));
    next_event(m, "b");
    drain_sends(m);
    plog_gossip_state s[2] = {about("c", PLOG_GOSSIP_ALIVE, 1, ""), about("b", PLOG_GOSSIP_DEAD, 1, "c")};
    s[0].addr = "sim://c";
    s[1].addr = "sim://b";
    plog_gossip_msg pp = {
        .type = PLOG_GOSSIP_PUSH_PULL, .from = "c", .from_addr = "sim://c", .states = s, .nstates = 2};
    deliver(m, 2, &pp);
    assert_int_equal(status_of(m, "b"), PLOG_GOSSIP_SUSPECT);
    assert_int_equal(status_of(m, "c"), PLOG_GOSSIP_ALIVE);
    /* ... and answers with its own full state. */
    char addr[256];
    plog_gossip_msg got;
    assert_true(next_sent(m, addr, &got));
    assert_string_equal(addr, "sim://c");
    assert_int_equal(got.type, PLOG_GOSSIP_PUSH_PULL);
    assert_int_equal(got.flags, PLOG_GOSSIP_FLAG_REPLY);
    assert_int_equal(got.nstates, 3);
    assert_string_equal(got.states[0].name, "a");
    plog_gossip_release(&got);
    plog_membership_free(m);
}

/* suspect_b_at_10 makes a node that knows b..j (10 members), suspects b at
 * t=1000 on c's word, adds confirmations from the given names, and returns
 * the node. */
static plog_membership *suspect_b_at_1000(const char *const *confirmers, size_t n)
{
    plog_membership *m = new_node(0);
    static const char *names[] = {"b", "c", "d", "e", "f", "g", "h", "i", "j"};
    for (size_t i = 0; i < 9; i++)
        say(m, 1, alive(names[i], 1, "r"));
    say(m, 1000, about("b", PLOG_GOSSIP_SUSPECT, 1, "c"));
    for (size_t i = 0; i < n; i++)
        say(m, 1000, about("b", PLOG_GOSSIP_SUSPECT, 1, confirmers[i]));
    return m;
}

/* assert_dead_at checks that b is still suspect at t - 1 and dead at t. Only
 * those two ticks run, so our own first probe (started at t - 1, failing a
 * probe interval later) cannot add a confirmation. */
static void assert_dead_at(plog_membership *m, uint64_t t)
{
    plog_membership_event e;
    while (plog_membership_pop_event(m, &e)) /* the JOINs of the setup */
        assert_int_equal(e.type, PLOG_MEMBERSHIP_JOIN);
    plog_membership_tick(m, t - 1);
    assert_int_equal(status_of(m, "b"), PLOG_GOSSIP_SUSPECT);
    plog_membership_tick(m, t);
    assert_int_equal(status_of(m, "b"), PLOG_GOSSIP_DEAD);
    assert_int_equal(next_event(m, "b"), PLOG_MEMBERSHIP_FAILED);
}

static void test_membership_suspicion_timeout_shrinks_with_independent_confirmations(void **state)
{
    (void)state;
    /* n = 10, probe 100 ms, mult 4, max mult 6: min 400, max 2400, k = 2. */
    plog_membership *m = suspect_b_at_1000(NULL, 0);
    assert_dead_at(m, 1000 + 2400);
    plog_membership_free(m);
    static const char *one[] = {"d"}, *dup[] = {"c", "c"}, *two[] = {"d", "e"};
    m = suspect_b_at_1000(one, 1); /* 2400 - 2000 * ln 2 / ln 3 = 1138.07 */
    assert_dead_at(m, 1000 + 1139);
    plog_membership_free(m);
    m = suspect_b_at_1000(dup, 2); /* the first accuser again is no confirmation */
    assert_dead_at(m, 1000 + 2400);
    plog_membership_free(m);
    m = suspect_b_at_1000(two, 2);
    assert_dead_at(m, 1000 + 400);
    plog_membership_free(m);
}

static void test_membership_ping_req_is_relayed_and_nacked_when_unanswered(void **state)
{
    (void)state;
    plog_membership *m = new_node(0);
    plog_gossip_msg req = {.type = PLOG_GOSSIP_PING_REQ,
                           .seq = 9,
                           .from = "b",
                           .from_addr = "sim://b",
                           .target = "c",
                           .target_addr = "sim://c"};
    deliver(m, 100, &req);
    char addr[256];
    plog_gossip_msg got;
    assert_true(next_sent(m, addr, &got));
    assert_string_equal(addr, "sim://c");
    assert_int_equal(got.type, PLOG_GOSSIP_PING);
    assert_string_equal(got.target, "c");
    uint32_t relay_seq = got.seq;
    plog_gossip_release(&got);
    /* c answers: the ack goes to b under b's sequence number. */
    plog_gossip_msg ack = {.type = PLOG_GOSSIP_ACK, .seq = relay_seq, .from = "c", .from_addr = "sim://c"};
    deliver(m, 105, &ack);
    assert_true(next_sent(m, addr, &got));
    assert_string_equal(addr, "sim://b");
    assert_int_equal(got.type, PLOG_GOSSIP_ACK);
    assert_int_equal(got.seq, 9);
    plog_gossip_release(&got);
    /* Unanswered: a nack to b before b's probe ends (3/4 of the timeout). */
    req.seq = 10;
    deliver(m, 200, &req);
    drain_sends(m);
    plog_membership_tick(m, 200 + 36);
    while (next_sent(m, addr, &got)) {
        assert_int_not_equal(got.type, PLOG_GOSSIP_NACK);
        plog_gossip_release(&got);
    }
    plog_membership_tick(m, 200 + 37);
    bool nacked = false;
    while (next_sent(m, addr, &got)) {
        if (got.type == PLOG_GOSSIP_NACK) {
            assert_string_equal(addr, "sim://b");
            assert_int_equal(got.seq, 10);
            nacked = true;
        }
        plog_gossip_release(&got);
    }
    assert_true(nacked);
    plog_membership_free(m);
}

static void test_membership_join_retries_until_a_seed_answers(void **state)
{
    (void)state;
    plog_membership *m = new_node(0);
    const char *seeds[] = {"sim://a", "sim://s1", "sim://s2"};
    assert_plog_ok(plog_membership_join(m, 0, seeds, 3));
    char addr[256];
    plog_gossip_msg got;
    int n = 0;
    while (next_sent(m, addr, &got)) {
        assert_int_equal(got.type, PLOG_GOSSIP_PUSH_PULL);
        assert_int_equal(got.flags, PLOG_GOSSIP_FLAG_JOIN);
        assert_string_not_equal(addr, "sim://a"); /* not to ourselves */
        plog_gossip_release(&got);
        n++;
    }
    assert_int_equal(n, 2);
    uint64_t t = plog_membership_next_deadline(m);
    assert_true(t <= 200);
    for (uint64_t now = 1; now <= 200; now++)
        plog_membership_tick(m, now);
    n = 0;
    while (next_sent(m, addr, &got)) {
        n += got.type == PLOG_GOSSIP_PUSH_PULL && got.flags == PLOG_GOSSIP_FLAG_JOIN;
        plog_gossip_release(&got);
    }
    assert_int_equal(n, 2);
    /* s1 answers: no more join retries. */
    plog_gossip_state s1 = about("s1", PLOG_GOSSIP_ALIVE, 1, "");
    s1.addr = "sim://s1";
    plog_gossip_msg reply = {.type = PLOG_GOSSIP_PUSH_PULL,
                             .flags = PLOG_GOSSIP_FLAG_REPLY,
                             .from = "s1",
                             .from_addr = "sim://s1",
                             .states = &s1,
                             .nstates = 1};
    deliver(m, 250, &reply);
    assert_int_equal(next_event(m, "s1"), PLOG_MEMBERSHIP_JOIN);
    drain_sends(m);
    /* (Not much longer: nobody answers our probes of s1, so it will be
     * declared dead, and a node with no live peer goes back to its seeds.) */
    for (uint64_t now = 251; now <= 650; now++)
        plog_membership_tick(m, now);
    while (next_sent(m, addr, &got)) {
        assert_false(got.type == PLOG_GOSSIP_PUSH_PULL && got.flags == PLOG_GOSSIP_FLAG_JOIN);
        plog_gossip_release(&got);
    }
    plog_membership_free(m);
}

static void test_membership_leave_tells_every_member_and_stops_probing(void **state)
{
    (void)state;
    plog_membership *m = new_node(0);
    say(m, 1, alive("b", 1, "r"));
    say(m, 1, alive("c", 1, "r"));
    drain_sends(m);
    uint64_t inc = plog_membership_self_incarnation(m);
    assert_plog_ok(plog_membership_leave(m, 10));
    assert_int_equal(plog_membership_self_incarnation(m), inc + 1);
    char addr[256];
    plog_gossip_msg got;
    int told = 0;
    while (next_sent(m, addr, &got)) {
        assert_int_equal(got.nstates, 1);
        assert_string_equal(got.states[0].name, "a");
        assert_int_equal(got.states[0].status, PLOG_GOSSIP_LEFT);
        plog_gossip_release(&got);
        told++;
    }
    assert_int_equal(told, 2);
    for (uint64_t now = 11; now < 3000; now += 5)
        plog_membership_tick(m, now);
    while (next_sent(m, addr, &got)) {
        assert_int_not_equal(got.type, PLOG_GOSSIP_PING);
        plog_gossip_release(&got);
    }
    /* Still answers pings, so the leave spreads on the acks. */
    plog_gossip_msg ping = {
        .type = PLOG_GOSSIP_PING, .seq = 3, .from = "b", .from_addr = "sim://b", .target = "a"};
    deliver(m, 3000, &ping);
    assert_true(next_sent(m, addr, &got));
    assert_int_equal(got.type, PLOG_GOSSIP_ACK);
    plog_gossip_release(&got);
    plog_membership_free(m);
}

static void test_membership_bad_messages_are_rejected_by_kind_and_counted(void **state)
{
    (void)state;
    plog_membership *m = new_node(0);
    uint8_t garbage[64];
    for (size_t i = 0; i < sizeof garbage; i++)
        garbage[i] = (uint8_t)(i * 37 + 1);
    garbage[0] = PLOG_GOSSIP_VERSION;
    assert_int_equal(plog_membership_recv(m, 1, garbage, sizeof garbage), PLOG_ECORRUPT);
    garbage[0] = 2;
    assert_int_equal(plog_membership_recv(m, 1, garbage, sizeof garbage), PLOG_EVERSION);
    uint8_t *huge = calloc(1, PLOG_GOSSIP_MAX_MSG + 1);
    huge[0] = PLOG_GOSSIP_VERSION;
    assert_int_equal(plog_membership_recv(m, 1, huge, PLOG_GOSSIP_MAX_MSG + 1), PLOG_ETOOBIG);
    free(huge);
    assert_int_equal(plog_membership_recv(m, 1, garbage, 0), PLOG_ECORRUPT);
    /* A well-formed message from someone speaking for another. */
    plog_gossip_state lie = {PLOG_GOSSIP_DEAD, 9, "c", "b", "", NULL, 0};
    plog_gossip_msg gossip = {
        .type = PLOG_GOSSIP_GOSSIP, .from = "b", .from_addr = "sim://b", .states = &lie, .nstates = 1};
    uint8_t *buf;
    size_t len;
    assert_plog_ok(plog_gossip_encode_alloc(&gossip, &buf, &len));
    assert_int_equal(plog_membership_recv_from(m, 1, "mallory", buf, len), PLOG_EPERM);
    assert_plog_ok(plog_membership_recv_from(m, 1, "b", buf, len));
    free(buf);
    plog_membership_stats st;
    plog_membership_get_stats(m, &st);
    assert_int_equal(st.bad_in, 5);
    assert_int_equal(st.msgs_in, 1);
    assert_int_equal(plog_membership_count(m), 1);
    /* Still works. */
    plog_gossip_msg ping = {
        .type = PLOG_GOSSIP_PING, .seq = 5, .from = "b", .from_addr = "sim://b", .target = "a"};
    deliver(m, 2, &ping);
    plog_gossip_msg got;
    assert_true(next_sent(m, NULL, &got));
    assert_int_equal(got.type, PLOG_GOSSIP_ACK);
    plog_gossip_release(&got);
    plog_membership_free(m);
}

static void test_membership_piggyback_stops_after_the_retransmit_limit(void **state)
{
    (void)state;
    plog_membership *m = new_node(0);
    say(m, 1, alive("b", 1, "r")); /* 2 live members: 4 * ceil(log10 3) = 4 */
    drain_sends(m);
    int carried = 0;
    for (uint32_t i = 0; i < 10; i++) {
        plog_gossip_msg ping = {
            .type = PLOG_GOSSIP_PING, .seq = i, .from = "c", .from_addr = "sim://c", .target = "a"};
        deliver(m, 2, &ping);
        plog_gossip_msg got;
        assert_true(next_sent(m, NULL, &got));
        for (size_t k = 0; k < got.nstates; k++)
            carried += strcmp(got.states[k].name, "b") == 0;
        plog_gossip_release(&got);
    }
    assert_int_equal(carried, 4);
    plog_membership_free(m);
}

/* at sets s's address (the strings of alive() are at sim://NAME). */
static plog_gossip_state at(plog_gossip_state s, const char *addr)
{
    s.addr = addr;
    return s;
}

/* next_event_at pops the next event, expecting it about name at addr. */
static int next_event_at(plog_membership *m, const char *name, const char *addr)
{
    plog_membership_event e;
    if (!plog_membership_pop_event(m, &e))
        return 0;
    assert_string_equal(e.member.name, name);
    assert_string_equal(e.member.addr, addr);
    return e.type;
}

/* Two processes started with one name: the second one's claims (any
 * incarnation) do not move the member, and its leave does not remove it. */
static void test_membership_a_namesake_at_another_address_is_reported_and_ignored(void **state)
{
    (void)state;
    plog_membership *m = new_node(0);
    say(m, 1, alive("b", 1, "r1"));
    assert_int_equal(next_event(m, "b"), PLOG_MEMBERSHIP_JOIN);
    say(m, 2, at(alive("b", 5, "r2"), "sim://b2"));
    assert_int_equal(next_event_at(m, "b", "sim://b2"), PLOG_MEMBERSHIP_CONFLICT);
    say(m, 3, at(alive("b", 6, "r2"), "sim://b2"));
    assert_int_equal(next_event(m, "b"), 0); /* once per claimant */
    say(m, 4, at(about("b", PLOG_GOSSIP_SUSPECT, 7, "c"), "sim://b2"));
    say(m, 5, at(about("b", PLOG_GOSSIP_LEFT, 7, ""), "sim://b2"));
    assert_int_equal(next_event(m, "b"), 0);
    plog_membership_member mb;
    assert_true(plog_membership_find(m, "b", &mb));
    assert_int_equal(mb.status, PLOG_GOSSIP_ALIVE);
    assert_string_equal(mb.addr, "sim://b");
    assert_int_equal(mb.incarnation, 1);
    assert_string_equal(plog_membership_tag(&mb, "rpc_addr"), "r1");
    /* About us, from elsewhere: reported, not refuted (the two would outbid each
     * other for ever). */
    say(m, 6, at(alive("a", 3, "r9"), "sim://a2"));
    assert_int_equal(next_event_at(m, "a", "sim://a2"), PLOG_MEMBERSHIP_CONFLICT);
    assert_int_equal(plog_membership_self_incarnation(m), 1);
    /* Once b is found dead, a b elsewhere is a member that moved. */
    say(m, 7, about("b", PLOG_GOSSIP_DEAD, 1, "c"));
    assert_int_equal(next_event(m, "b"), PLOG_MEMBERSHIP_FAILED);
    say(m, 8, at(alive("b", 8, "r2"), "sim://b2"));
    assert_int_equal(next_event_at(m, "b", "sim://b2"), PLOG_MEMBERSHIP_JOIN);
    assert_int_equal(status_of(m, "b"), PLOG_GOSSIP_ALIVE);
    plog_membership_free(m);
}

/* A node whose join is answered with its own name alive elsewhere was started
 * under a name already taken: NAME_TAKEN, naming the holder's address. */
static void test_membership_join_answer_with_our_name_elsewhere_is_name_taken(void **state)
{
    (void)state;
    plog_membership *m = new_node(0);
    const char *seeds[] = {"sim://s1"};
    assert_plog_ok(plog_membership_join(m, 0, seeds, 1));
    drain_sends(m);
    plog_gossip_state states[] = {at(alive("s1", 1, "r1"), "sim://s1"),
                                  at(alive("a", 4, "r0"), "sim://a-old")};
    plog_gossip_msg reply = {.type = PLOG_GOSSIP_PUSH_PULL,
                             .flags = PLOG_GOSSIP_FLAG_REPLY,
                             .from = "s1",
                             .from_addr = "sim://s1",
                             .states = states,
                             .nstates = 2};
    deliver(m, 10, &reply);
    assert_int_equal(next_event(m, "s1"), PLOG_MEMBERSHIP_JOIN);
    assert_int_equal(next_event_at(m, "a", "sim://a-old"), PLOG_MEMBERSHIP_NAME_TAKEN);
    assert_int_equal(plog_membership_self_incarnation(m), 1); /* no refutation */
    /* Once joined, a namesake that turns up is only a conflict. */
    states[1] = at(alive("a", 5, "r0"), "sim://a-new");
    deliver(m, 20, &reply);
    assert_int_equal(next_event_at(m, "a", "sim://a-new"), PLOG_MEMBERSHIP_CONFLICT);
    assert_int_equal(next_event(m, "a"), 0);
    plog_membership_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_membership_new_rejects_bad_config),
        cmocka_unit_test(test_membership_ping_for_us_is_acked_with_its_seq_to_the_sender),
        cmocka_unit_test(test_membership_alive_about_a_new_member_adds_it_with_its_tags),
        cmocka_unit_test(test_membership_older_incarnations_are_ignored),
        cmocka_unit_test(test_membership_suspicion_about_us_is_refuted_with_a_higher_incarnation),
        cmocka_unit_test(test_membership_rumours_at_the_largest_incarnation_are_dropped),
        cmocka_unit_test(test_membership_dead_member_back_with_higher_incarnation_joins_again),
        cmocka_unit_test(test_membership_new_tags_emit_update_and_leave_emits_leave),
        cmocka_unit_test(test_membership_push_pull_dead_entry_only_suspects),
        cmocka_unit_test(test_membership_suspicion_timeout_shrinks_with_independent_confirmations),
        cmocka_unit_test(test_membership_ping_req_is_relayed_and_nacked_when_unanswered),
        cmocka_unit_test(test_membership_join_retries_until_a_seed_answers),
        cmocka_unit_test(test_membership_leave_tells_every_member_and_stops_probing),
        cmocka_unit_test(test_membership_bad_messages_are_rejected_by_kind_and_counted),
        cmocka_unit_test(test_membership_piggyback_stops_after_the_retransmit_limit),
        cmocka_unit_test(test_membership_a_namesake_at_another_address_is_reported_and_ignored),
        cmocka_unit_test(test_membership_join_answer_with_our_name_elsewhere_is_name_taken),
    };
    return cmocka_run_group_tests_name("membership", tests, NULL, NULL);
}
