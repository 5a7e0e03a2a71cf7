/* kill_test.c - kill -9 a real writer process at random moments and check that
 * the log it leaves keeps every record it acknowledged.
 *
 * Each round forks a child that opens the log (recovering what the last round
 * left), then appends records whose bytes are a function of their offset; after
 * plog_log_commit returns it writes the offset to a pipe: that is the
 * acknowledgement a server would send. The parent SIGKILLs it after a random
 * delay, reopens the log and checks: every acknowledged offset is present and
 * intact, offsets are contiguous, and records past the last acknowledgement, if
 * any survived, are intact too. Between rounds the parent truncates the log
 * to its last few thousand records, so the crashes also follow truncations.
 * The policy rotates through ALWAYS, INTERVAL and
 * NEVER: all three must survive a process crash (the kernel keeps what was
 * written to it), only the first two a power loss, which this test cannot do.
 * Rounds: $PLOG_KILL_ROUNDS, default 20 (`make check-long` runs 1000). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <signal.h>
#include <sys/wait.h>

#include "internal/log/log.h"
#include "internal/log/testrec.h"

static plog_log_config round_config(int round)
{
    plog_log_config c = {0};
    /* Small segments so that rolls (and their syncs) happen under fire, but
     * not so small that 1000 rounds make thousands of them. */
    c.segment.max_store_bytes = 128 * 1024;
    c.segment.max_index_bytes = 1000 * 12;
    c.sync = round % 3 == 0 ? PLOG_SYNC_ALWAYS : round % 3 == 1 ? PLOG_SYNC_INTERVAL : PLOG_SYNC_NEVER;
    c.sync_interval_ms = 1;
    return c;
}

/* child appends and acknowledges until killed. No cmocka in here. */
static void child(const char *dir, int round, int wfd)
{
    plog_log_config c = round_config(round);
    plog_log *l;
    if (plog_log_open(dir, &c, &l) != PLOG_OK)
        _exit(2);
    for (;;) {
        uint8_t v[256];
        Log__V1__Record r = LOG__V1__RECORD__INIT;
        uint64_t next = plog_log_next_offset(l), off;
        r.value.len = testrec_value(next, v);
        r.value.data = v;
        if (plog_log_append(l, &r, &off) != PLOG_OK || off != next)
            _exit(3);
        if (plog_log_commit(l, off) != PLOG_OK)
            _exit(4);
        if (write(wfd, &off, sizeof off) != (ssize_t)sizeof off)
            _exit(5);
    }
}

static void test_kill_writer_at_random_moments_loses_no_acknowledged_record(void **state)
{
    (void)state;
    char dir[64];
    plog_test_tmpdir("kill", dir, sizeof dir);
    const char *env = getenv("PLOG_KILL_ROUNDS");
    int rounds = env != NULL ? atoi(env) : 20;
    unsigned seed = (unsigned)plog_test_now_ms();
    const char *senv = getenv("PLOG_KILL_SEED");
    if (senv != NULL)
        seed = (unsigned)strtoul(senv, NULL, 10);
    print_message("kill test: %d rounds, PLOG_KILL_SEED=%u\n", rounds, seed);
    srand(seed);
    uint64_t verified = 0; /* records [lowest, verified) were checked in an earlier round */
    uint64_t lowest = 0;
    uint64_t acked_total = 0;
    for (int round = 0; round < rounds; round++) {
        int p[2];
        assert_int_equal(pipe(p), 0);
        fflush(stdout);
        fflush(stderr);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            close(p[0]);
            child(dir, round, p[1]);
        }
        close(p[1]);
        /* One round in four kills during the child's open (its recovery of
         * the last round's crash); the others once it acknowledged a record. */
        uint64_t off, last = 0, n = 0;
        if (rand() % 4 != 0) {
            if (read(p[0], &off, sizeof off) == (ssize_t)sizeof off)
                last = off, n = 1;
        }
        plog_test_sleep_ms(rand() % 25);
        kill(pid, SIGKILL);
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        if (!WIFSIGNALED(status))
            fail_msg("round %d: child exited with %d, not killed (seed %u)", round, WEXITSTATUS(status),
                     seed);
        /* Acknowledgements: contiguous, starting where the log was. */
        while (read(p[0], &off, sizeof off) == (ssize_t)sizeof off) {
            if (n > 0 && off != last + 1)
                fail_msg("round %d: ack %llu after %llu", round, (unsigned long long)off,
                         (unsigned long long)last);
            last = off;
            n++;
        }
        close(p[0]);
        acked_total += n;

        plog_log_config c = round_config(round);
        plog_log *l;
        fflush(stderr);
        assert_plog_ok(plog_log_open(dir, &c, &l));
        uint64_t next = plog_log_next_offset(l);
        if (n > 0 && next <= last)
            fail_msg("round %d: acked up to %llu but the log ends at %llu (seed %u)", round,
                     (unsigned long long)last, (unsigned long long)next, seed);
        if (next < verified)
            fail_msg("round %d: log shrank from %llu to %llu (seed %u)", round, (unsigned long long)verified,
                     (unsigned long long)next, seed);
        assert_int_equal(plog_log_lowest_offset(l), lowest);
        /* Recovery only touches the last segment: recheck a margin before the
         * records new in this round, and everything now and then. */
        uint64_t from = round % 50 == 49 || verified < lowest + 200 ? lowest : verified - 200;
        for (uint64_t i = from; i < next; i++)
            testrec_assert_read(l, i);
        verified = next;
        /* Keep the log small (and truncate between crashes too). */
        if (next > 5000) {
            assert_plog_ok(plog_log_truncate(l, next - 5000));
            lowest = plog_log_lowest_offset(l);
        }
        assert_plog_ok(plog_log_close(l));
    }
    print_message("kill test: %llu records acknowledged, log ends at %llu\n", (unsigned long long)acked_total,
                  (unsigned long long)verified);
    plog_test_rmrf(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kill_writer_at_random_moments_loses_no_acknowledged_record),
    };
    return cmocka_run_group_tests_name("kill", tests, NULL, NULL);
}
