/* concurrency_test.c - one writer, many readers (log.h's thread-safety promise).
 * Four reader threads read random offsets, sequential batches and the raw
 * reader stream while one writer appends 200,000 records through small
 * segments (so rolls happen under the readers) with group commit running; no
 * reader may ever see a torn or wrong record. Run under TSAN=1 too. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>

#include "internal/log/log.h"
#include "internal/log/store.h"
#include "internal/log/testrec.h"

#define RECORDS 200000
#define READERS 4

struct shared {
    plog_log *l;
    atomic_bool done;
    atomic_ulong bad;
    atomic_ulong reads;
};

struct reader {
    struct shared *sh;
    int id;
};

static uint64_t rnd(uint64_t *s)
{
    *s = testrec_mix(*s + 0x9e3779b97f4a7c15ull);
    return *s;
}

static void *reader_main(void *arg)
{
    struct reader *r = arg;
    struct shared *sh = r->sh;
    uint64_t seed = (uint64_t)r->id;
    plog_log_batch b = {0};
    uint64_t seq = 0;
    while (!atomic_load(&sh->done)) {
        uint64_t next = plog_log_next_offset(sh->l);
        if (next == 0)
            continue;
        if (r->id % 2 == 0) {
            /* Random single reads, mostly near the tail where the writer is. */
            uint64_t off =
                rnd(&seed) % 4 == 0 ? rnd(&seed) % next : next - 1 - rnd(&seed) % (next < 64 ? next : 64);
            uint8_t *buf;
            size_t n;
            if (plog_log_read_raw(sh->l, off, &buf, &n) != PLOG_OK || !testrec_check(off, buf, n))
                atomic_fetch_add(&sh->bad, 1);
            else
                free(buf);
            atomic_fetch_add(&sh->reads, 1);
        } else {
            /* Follow the tail with batches, as a consumer would. */
            if (seq >= next)
                continue;
            if (plog_log_read_batch(sh->l, seq, 256, 64 * 1024, &b) != PLOG_OK || b.n == 0) {
                atomic_fetch_add(&sh->bad, 1);
                continue;
            }
            for (size_t i = 0; i < b.n; i++)
                if (!testrec_check(seq + i, b.rec[i], b.len[i]))
                    atomic_fetch_add(&sh->bad, 1);
            seq += b.n;
            atomic_fetch_add(&sh->reads, b.n);
        }
    }
    plog_log_batch_fini(&b);
    return NULL;
}

static void test_concurrency_readers_never_see_a_torn_or_wrong_record(void **state)
{
    (void)state;
    char dir[64];
    plog_test_tmpdir("concurrency", dir, sizeof dir);
    plog_log_config c = {0};
    c.segment.max_store_bytes = 1 << 20;
    c.sync = PLOG_SYNC_INTERVAL;
    c.sync_interval_ms = 5;
    struct shared sh = {0};
    assert_plog_ok(plog_log_open(dir, &c, &sh.l));
    pthread_t th[READERS];
    struct reader rs[READERS];
    for (int i = 0; i < READERS; i++) {
        rs[i] = (struct reader){.sh = &sh, .id = i};
        assert_int_equal(pthread_create(&th[i], NULL, reader_main, &rs[i]), 0);
    }
    for (uint64_t i = 0; i < RECORDS; i++) {
        uint8_t v[256];
        Log__V1__Record r = LOG__V1__RECORD__INIT;
        r.value.len = testrec_value(i, v);
        r.value.data = v;
        uint64_t off;
        assert_plog_ok(plog_log_append(sh.l, &r, &off));
        assert_int_equal(off, i);
        if (i % 10000 == 0)
            assert_plog_ok(plog_log_commit(sh.l, off));
    }
    atomic_store(&sh.done, true);
    for (int i = 0; i < READERS; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(atomic_load(&sh.bad), 0);
    assert_true(atomic_load(&sh.reads) > 0);
    /* And everything is there afterwards, through the raw stream too. */
    plog_log_reader *rd;
    assert_plog_ok(plog_log_reader_open(sh.l, &rd));
    size_t cap = 1 << 20, have = 0, n, p = 0;
    uint8_t *buf = malloc(cap);
    uint64_t off = 0;
    for (;;) {
        int rv = plog_log_reader_read(rd, buf + have, cap - have, &n);
        if (rv == PLOG_EOF)
            break;
        assert_plog_ok(rv);
        have += n;
        size_t len;
        while (plog_store_frame_check(buf + p, have - p, &len) == PLOG_OK) {
            if (!testrec_check(off, buf + p + PLOG_STORE_HDR, len))
                fail_msg("stream: record %llu wrong", (unsigned long long)off);
            p += PLOG_STORE_HDR + len;
            off++;
        }
        memmove(buf, buf + p, have - p);
        have -= p;
        p = 0;
    }
    assert_int_equal(have, 0);
    assert_int_equal(off, RECORDS);
    free(buf);
    plog_log_reader_close(rd);
    assert_plog_ok(plog_log_close(sh.l));
    plog_test_rmrf(dir);
}

struct appender {
    plog_log *l;
    uint64_t offs[200];
};

static void *appender_main(void *arg)
{
    struct appender *a = arg;
    for (size_t i = 0; i < 200; i++) {
        Log__V1__Record r = LOG__V1__RECORD__INIT;
        r.value.data = (uint8_t *)"x";
        r.value.len = 1;
        if (plog_log_append(a->l, &r, &a->offs[i]) != PLOG_OK)
            a->offs[i] = UINT64_MAX;
    }
    return NULL;
}

/* Several appenders under PLOG_SYNC_ALWAYS share fsyncs (group commit by
 * whoever holds sync_mu); every append returns only once durable, and the
 * offsets handed out are distinct and contiguous. */
static void test_concurrency_appenders_under_sync_always_get_distinct_offsets(void **state)
{
    (void)state;
    char dir[64];
    plog_test_tmpdir("always", dir, sizeof dir);
    plog_log_config c = {0};
    c.segment.max_store_bytes = 4096; /* rolls, and their pending syncs, too */
    c.sync = PLOG_SYNC_ALWAYS;
    plog_log *l;
    assert_plog_ok(plog_log_open(dir, &c, &l));
    struct appender a[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        a[i].l = l;
        assert_int_equal(pthread_create(&th[i], NULL, appender_main, &a[i]), 0);
    }
    static bool seen[800];
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        for (size_t k = 0; k < 200; k++) {
            assert_true(a[i].offs[k] < 800);
            assert_false(seen[a[i].offs[k]]);
            seen[a[i].offs[k]] = true;
            if (k > 0)
                assert_true(a[i].offs[k] > a[i].offs[k - 1]);
        }
    }
    assert_int_equal(plog_log_next_offset(l), 800);
    assert_plog_ok(plog_log_close(l));
    plog_test_rmrf(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_concurrency_readers_never_see_a_torn_or_wrong_record),
        cmocka_unit_test(test_concurrency_appenders_under_sync_always_get_distinct_offsets),
    };
    return cmocka_run_group_tests_name("concurrency", tests, NULL, NULL);
}
