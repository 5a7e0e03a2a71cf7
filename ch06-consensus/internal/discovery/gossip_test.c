/* gossip_test.c - the wire codec: round trips of every message, the limits,
 * and strict rejection of truncated, padded, garbled, oversize and
 * wrong-version input, each with its own error. */
#define _GNU_SOURCE /* memmem */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "internal/discovery/gossip.h"
#include "internal/err/err.h"
#include "testing/testing.h"

static const plog_gossip_tag tags[] = {{"rpc_addr", "127.0.0.1:8400"}, {"dc", ""}};

static const plog_gossip_state states[] = {
    {PLOG_GOSSIP_ALIVE, 1, "node-1", "", "tls+tcp://127.0.0.1:8401", tags, 2},
    {PLOG_GOSSIP_SUSPECT, 7, "node-2", "node-1", "", NULL, 0},
    {PLOG_GOSSIP_DEAD, UINT64_MAX, "node-3", "node-2", "tls+tcp://127.0.0.1:8403", NULL, 0},
    {PLOG_GOSSIP_LEFT, 0, "node-4", "", "", NULL, 0},
};

static plog_gossip_msg sample(int type)
{
    plog_gossip_msg m = {.type = (uint8_t)type,
                         .seq = 0xdeadbeef,
                         .from = "node-1",
                         .from_addr = "tls+tcp://127.0.0.1:8401",
                         .states = states,
                         .nstates = 4};
    if (type == PLOG_GOSSIP_PING || type == PLOG_GOSSIP_PING_REQ)
        m.target = "node-2";
    if (type == PLOG_GOSSIP_PING_REQ)
        m.target_addr = "tls+tcp://127.0.0.1:8402";
    if (type == PLOG_GOSSIP_PUSH_PULL)
        m.flags = PLOG_GOSSIP_FLAG_JOIN | PLOG_GOSSIP_FLAG_REPLY;
    return m;
}

static void assert_same(const plog_gossip_msg *a, const plog_gossip_msg *b)
{
    assert_int_equal(a->type, b->type);
    assert_int_equal(a->flags, b->flags);
    assert_int_equal(a->seq, b->seq);
    assert_string_equal(a->from, b->from);
    assert_string_equal(a->from_addr, b->from_addr);
    assert_string_equal(a->target ? a->target : "", b->target);
    assert_string_equal(a->target_addr ? a->target_addr : "", b->target_addr);
    assert_int_equal(a->nstates, b->nstates);
    for (size_t i = 0; i < a->nstates; i++) {
        const plog_gossip_state *x = &a->states[i], *y = &b->states[i];
        assert_int_equal(x->status, y->status);
        assert_true(x->incarnation == y->incarnation);
        assert_string_equal(x->name, y->name);
        assert_string_equal(x->from, y->from);
        assert_string_equal(x->addr, y->addr);
        assert_int_equal(x->ntags, y->ntags);
        for (size_t t = 0; t < x->ntags; t++) {
            assert_string_equal(x->tags[t].key, y->tags[t].key);
            assert_string_equal(x->tags[t].value, y->tags[t].value);
        }
    }
}

static void test_gossip_every_message_type_round_trips(void **state)
{
    (void)state;
    for (int type = PLOG_GOSSIP_PING; type <= PLOG_GOSSIP_PUSH_PULL; type++) {
        plog_gossip_msg m = sample(type), d;
        uint8_t *buf;
        size_t len;
        assert_plog_ok(plog_gossip_encode_alloc(&m, &buf, &len));
        assert_int_equal(len, plog_gossip_size(&m));
        assert_int_equal(buf[0], PLOG_GOSSIP_VERSION);
        assert_plog_ok(plog_gossip_decode(buf, len, &d));
        assert_same(&m, &d);
        plog_gossip_release(&d);
        plog_gossip_release(&d); /* twice is harmless */
        free(buf);
    }
}

static void test_gossip_encode_refuses_what_decode_would_refuse(void **state)
{
    (void)state;
    uint8_t buf[4096];
    size_t len;
    plog_gossip_msg m = sample(PLOG_GOSSIP_PING);
    m.target = NULL;
    assert_int_equal(plog_gossip_encode(&m, buf, sizeof buf, &len), PLOG_EINVAL);
    m = sample(PLOG_GOSSIP_ACK);
    m.flags = PLOG_GOSSIP_FLAG_JOIN; /* flags are for push-pull */
    assert_int_equal(plog_gossip_encode(&m, buf, sizeof buf, &len), PLOG_EINVAL);
    m = sample(PLOG_GOSSIP_ACK);
    m.from = "two words";
    assert_int_equal(plog_gossip_encode(&m, buf, sizeof buf, &len), PLOG_EINVAL);
    plog_gossip_state s = states[0];
    plog_gossip_tag many[PLOG_GOSSIP_MAX_TAGS + 1];
    for (size_t i = 0; i <= PLOG_GOSSIP_MAX_TAGS; i++)
        many[i] = (plog_gossip_tag){"k", "v"};
    s.tags = many;
    s.ntags = PLOG_GOSSIP_MAX_TAGS + 1;
    m = sample(PLOG_GOSSIP_GOSSIP);
    m.states = &s;
    m.nstates = 1;
    assert_int_equal(plog_gossip_encode(&m, buf, sizeof buf, &len), PLOG_EINVAL);
    s.ntags = PLOG_GOSSIP_MAX_TAGS;
    assert_plog_ok(plog_gossip_encode(&m, buf, sizeof buf, &len));
    assert_int_equal(plog_gossip_encode(&m, buf, len - 1, &len), PLOG_ETOOBIG);
}

/* worst_state fills s with a record at every limit. */
static void worst_state(plog_gossip_state *s, char *name, plog_gossip_tag *t,
                        char (*keys)[PLOG_GOSSIP_MAX_KEY + 1], char *value)
{
    static char addr[PLOG_GOSSIP_MAX_ADDR + 1], from[PLOG_GOSSIP_MAX_NAME + 1];
    memset(addr, 'a', PLOG_GOSSIP_MAX_ADDR);
    memset(from, 'f', PLOG_GOSSIP_MAX_NAME);
    /* 16 tags whose keys and values add up to exactly the byte limit. */
    size_t per = PLOG_GOSSIP_MAX_TAG_BYTES / PLOG_GOSSIP_MAX_TAGS; /* 32 = 8 key + 24 value */
    for (size_t i = 0; i < PLOG_GOSSIP_MAX_TAGS; i++) {
        snprintf(keys[i], PLOG_GOSSIP_MAX_KEY + 1, "key%05zu", i);
        t[i] = (plog_gossip_tag){keys[i], value};
    }
    memset(value, 'v', per - 8);
    value[per - 8] = '\0';
    *s = (plog_gossip_state){PLOG_GOSSIP_DEAD, UINT64_MAX, name, from, addr, t, PLOG_GOSSIP_MAX_TAGS};
}

static void test_gossip_a_full_push_pull_at_every_limit_fits(void **state)
{
    (void)state;
    static plog_gossip_state s[PLOG_GOSSIP_MAX_STATES + 1];
    static char names[PLOG_GOSSIP_MAX_STATES + 1][PLOG_GOSSIP_MAX_NAME + 1];
    static plog_gossip_tag t[PLOG_GOSSIP_MAX_TAGS];
    static char keys[PLOG_GOSSIP_MAX_TAGS][PLOG_GOSSIP_MAX_KEY + 1];
    static char value[PLOG_GOSSIP_MAX_VALUE + 1];
    for (size_t i = 0; i <= PLOG_GOSSIP_MAX_STATES; i++) {
        memset(names[i], 'n', PLOG_GOSSIP_MAX_NAME);
        snprintf(names[i], 8, "n%05zu", i);
        names[i][7] = 'n';
        worst_state(&s[i], names[i], t, keys, value);
        assert_true(plog_gossip_state_size(&s[i]) <= PLOG_GOSSIP_MAX_STATE);
    }
    plog_gossip_msg m = sample(PLOG_GOSSIP_PUSH_PULL), d;
    m.states = s;
    m.nstates = PLOG_GOSSIP_MAX_STATES;
    uint8_t *buf;
    size_t len;
    assert_plog_ok(plog_gossip_encode_alloc(&m, &buf, &len));
    assert_true(len <= PLOG_GOSSIP_MAX_MSG);
    assert_plog_ok(plog_gossip_decode(buf, len, &d));
    assert_same(&m, &d);
    plog_gossip_release(&d);
    free(buf);
    /* One record more is refused on both sides. */
    m.nstates = PLOG_GOSSIP_MAX_STATES + 1;
    assert_int_equal(plog_gossip_encode_alloc(&m, &buf, &len), PLOG_EINVAL);
}

static void test_gossip_every_truncation_and_any_padding_is_corrupt(void **state)
{
    (void)state;
    plog_gossip_msg m = sample(PLOG_GOSSIP_PING_REQ), d;
    uint8_t *buf;
    size_t len;
    assert_plog_ok(plog_gossip_encode_alloc(&m, &buf, &len));
    for (size_t n = 0; n < len; n++)
        assert_int_equal(plog_gossip_decode(buf, n, &d), PLOG_ECORRUPT);
    uint8_t *pad = malloc(len + 1);
    memcpy(pad, buf, len);
    pad[len] = 0;
    assert_int_equal(plog_gossip_decode(pad, len + 1, &d), PLOG_ECORRUPT);
    free(pad);
    free(buf);
}

static void test_gossip_unknown_version_and_oversize_have_their_own_errors(void **state)
{
    (void)state;
    plog_gossip_msg m = sample(PLOG_GOSSIP_ACK), d;
    uint8_t *buf;
    size_t len;
    assert_plog_ok(plog_gossip_encode_alloc(&m, &buf, &len));
    buf[0] = PLOG_GOSSIP_VERSION + 1;
    assert_int_equal(plog_gossip_decode(buf, len, &d), PLOG_EVERSION);
    buf[0] = 0;
    assert_int_equal(plog_gossip_decode(buf, len, &d), PLOG_EVERSION);
    free(buf);
    uint8_t *big = calloc(1, PLOG_GOSSIP_MAX_MSG + 1);
    big[0] = PLOG_GOSSIP_VERSION;
    assert_int_equal(plog_gossip_decode(big, PLOG_GOSSIP_MAX_MSG + 1, &d), PLOG_ETOOBIG);
    free(big);
}

static void test_gossip_field_rules_are_enforced_on_decode(void **state)
{
    (void)state;
    plog_gossip_msg m = sample(PLOG_GOSSIP_GOSSIP), d;
    uint8_t *buf;
    size_t len;
    assert_plog_ok(plog_gossip_encode_alloc(&m, &buf, &len));
    /* Find bytes by content and break them one at a time. */
    uint8_t *p = memmem(buf, len, "node-1", 6);
    assert_non_null(p);
    p[4] = ' ';
    assert_int_equal(plog_gossip_decode(buf, len, &d), PLOG_ECORRUPT);
    p[4] = '-';
    p = memmem(buf, len, "127.0.0.1:8400", 14);
    p[3] = '\0'; /* NUL inside a tag value */
    assert_int_equal(plog_gossip_decode(buf, len, &d), PLOG_ECORRUPT);
    p[3] = '.';
    buf[1] = 7; /* unknown type */
    assert_int_equal(plog_gossip_decode(buf, len, &d), PLOG_ECORRUPT);
    buf[1] = PLOG_GOSSIP_GOSSIP;
    buf[2] = PLOG_GOSSIP_FLAG_JOIN; /* flags outside push-pull */
    assert_int_equal(plog_gossip_decode(buf, len, &d), PLOG_ECORRUPT);
    buf[2] = 0;
    assert_plog_ok(plog_gossip_decode(buf, len, &d));
    plog_gossip_release(&d);
    free(buf);
}

static uint64_t rng = 0x1234;
static uint64_t next_rand(void)
{
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return rng;
}

static void test_gossip_random_garbage_and_mutations_never_decode_to_a_lie(void **state)
{
    (void)state;
    uint8_t buf[2048];
    plog_gossip_msg d;
    size_t accepted = 0;
    uint8_t *good;
    size_t goodlen;
    plog_gossip_msg m = sample(PLOG_GOSSIP_PUSH_PULL);
    assert_plog_ok(plog_gossip_encode_alloc(&m, &good, &goodlen));
    for (int round = 0; round < 20000; round++) {
        size_t len;
        if (round % 2 == 0) { /* pure garbage, with the right version half the time */
            len = next_rand() % sizeof buf;
            for (size_t i = 0; i < len; i++)
                buf[i] = (uint8_t)next_rand();
            if (len > 0 && round % 4 == 0)
                buf[0] = PLOG_GOSSIP_VERSION;
        } else { /* a valid message with a few bytes flipped */
            len = goodlen;
            memcpy(buf, good, len);
            for (int k = 0; k < 1 + (int)(next_rand() % 3); k++)
                buf[1 + next_rand() % (len - 1)] ^= (uint8_t)(1 + next_rand() % 255);
        }
        int rv = plog_gossip_decode(buf, len, &d);
        if (rv == PLOG_OK) {
            /* Whatever is accepted is canonical: it encodes to the same bytes. */
            uint8_t *again;
            size_t n;
            assert_plog_ok(plog_gossip_encode_alloc(&d, &again, &n));
            assert_int_equal(n, len);
            assert_memory_equal(again, buf, len);
            free(again);
            plog_gossip_release(&d);
            accepted++;
        } else {
            assert_true(rv == PLOG_ECORRUPT || rv == PLOG_EVERSION);
        }
    }
    free(good);
    print_message("accepted %zu of 20000 garbled inputs (each re-encoded identically)\n", accepted);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gossip_every_message_type_round_trips),
        cmocka_unit_test(test_gossip_encode_refuses_what_decode_would_refuse),
        cmocka_unit_test(test_gossip_a_full_push_pull_at_every_limit_fits),
        cmocka_unit_test(test_gossip_every_truncation_and_any_padding_is_corrupt),
        cmocka_unit_test(test_gossip_unknown_version_and_oversize_have_their_own_errors),
        cmocka_unit_test(test_gossip_field_rules_are_enforced_on_decode),
        cmocka_unit_test(test_gossip_random_garbage_and_mutations_never_decode_to_a_lie),
    };
    return cmocka_run_group_tests_name("gossip", tests, NULL, NULL);
}
