/* testing.h - helpers every chapter's cmocka tests may use: temporary directories,
 * free loopback ports, waiting with a deadline, and child processes.
 *
 * Test-only code: failures here abort the test with a message (fail_msg), so
 * callers need no error handling. Include after cmocka.h's prerequisites. */
#ifndef PLOG_TESTING_H
#define PLOG_TESTING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* assert_plog_ok fails the test with the error's text unless expr is PLOG_OK.
 * Needs cmocka.h and the chapter's internal/err/err.h at the point of use. */
#define assert_plog_ok(expr)                                         \
    do {                                                             \
        int rv_ = (expr);                                            \
        if (rv_ != 0)                                                \
            fail_msg("%s: %s (%d)", #expr, plog_strerror(rv_), rv_); \
    } while (0)

/* plog_test_rand steps the seeded generator *state (xorshift64*, *state != 0)
 * and returns its next value: a randomized test replays exactly from its seed. */
uint64_t plog_test_rand(uint64_t *state);

/* plog_test_rand_bytes fills buf with n random bytes, n random in 0..max (0 an
 * eighth of the time), and returns n. */
size_t plog_test_rand_bytes(uint64_t *state, uint8_t *buf, size_t max);

/* plog_test_tmpdir creates a fresh directory /tmp/plog-<tag>-XXXXXX and writes its
 * path into buf (size >= 64). Remove it with plog_test_rmrf(). */
void plog_test_tmpdir(const char *tag, char *buf, size_t size);

/* plog_test_rmrf removes path and everything below it. Missing path is fine. */
void plog_test_rmrf(const char *path);

/* plog_test_free_port returns a TCP port on 127.0.0.1 that was free a moment ago
 * (bound, then closed), below the kernel's ephemeral range when there is room
 * there: a port the kernel hands out with bind(0) can be taken as the local port
 * of some outgoing connection before the test's server listens on it ("Address
 * in use"). A process never gets the same port twice. */
int plog_test_free_port(void);

/* plog_test_free_port_on is plog_test_free_port for another local address (a port
 * free on 127.0.0.1 may be taken on 127.0.0.3: a connection from there that ended
 * leaves its local port in TIME_WAIT, which blocks a listener even with
 * SO_REUSEADDR). */
int plog_test_free_port_on(const char *host);

/* plog_test_now_ms returns CLOCK_MONOTONIC in milliseconds. */
int64_t plog_test_now_ms(void);

/* plog_test_median sorts v[0..n) in place and returns its median (the mean of the
 * two middle values when n is even; 0 when n is 0). Benchmarks print medians of
 * alternating rounds, and ratios as the median of per-round ratios, so that both
 * sides of a ratio are measured on the same (shared, noisy) machine moments apart. */
double plog_test_median(double *v, size_t n);

/* plog_test_sleep_ms sleeps for ms milliseconds. */
void plog_test_sleep_ms(int ms);

/* plog_test_wait_until calls cond(arg) every few milliseconds until it returns
 * true (returns true) or timeout_ms passes (returns false). */
bool plog_test_wait_until(bool (*cond)(void *), void *arg, int timeout_ms);

/* plog_test_bin returns the path of a program built by this chapter, from
 * $PLOG_BUILD (set by the test runner), e.g. plog_test_bin("proglog").
 * The string is static: copy it before the next call. */
const char *plog_test_bin(const char *name);

/* A child process whose stdout and stderr go to a file (plog_test_proc.out). */
typedef struct plog_test_proc {
    pid_t pid;
    char out[128]; /* path of the captured output */
    int status;    /* wait status once reaped */
    bool reaped;
} plog_test_proc;

/* plog_test_spawn starts argv[0] with argv (NULL-terminated), output captured.
 * The child is killed (SIGKILL) when the calling thread ends, so a test that
 * dies leaves no server behind: spawn from a thread that outlives the child. */
void plog_test_spawn(plog_test_proc *p, char *const argv[]);

/* plog_test_kill sends sig and waits up to timeout_ms for the child to exit; if it
 * has not, sends SIGKILL and waits. Returns true when it exited within the timeout. */
bool plog_test_kill(plog_test_proc *p, int sig, int timeout_ms);

/* plog_test_wait waits up to timeout_ms for the child to exit by itself; true if it
 * did (then p->status holds the wait status). */
bool plog_test_wait(plog_test_proc *p, int timeout_ms);

/* plog_test_output returns the child's captured output so far, NUL-terminated,
 * malloc'd (the caller frees it). */
char *plog_test_output(const plog_test_proc *p);

/* plog_test_wait_output waits until the child's output contains needle. */
bool plog_test_wait_output(const plog_test_proc *p, const char *needle, int timeout_ms);

/* plog_test_wait_port waits until something accepts TCP connections on
 * 127.0.0.1:port. */
bool plog_test_wait_port(int port, int timeout_ms);

/* plog_test_run runs argv to completion (at most timeout_ms, then SIGKILL), with
 * stdin from the file stdin_path (or /dev/null when NULL). Returns the exit code
 * (128+signal when killed) and, when out is not NULL, the malloc'd combined
 * stdout+stderr in *out. */
int plog_test_run(char *const argv[], const char *stdin_path, int timeout_ms, char **out);

/* plog_test_sh runs a /bin/sh command line the same way as plog_test_run. */
int plog_test_sh(const char *cmd, int timeout_ms, char **out);

/* A file in a fresh temporary directory for code that writes to a descriptor (a
 * logger): the test hands it fd, then reads back what was written. */
typedef struct plog_test_capture {
    char dir[64];
    char path[128];
    int fd;
} plog_test_capture;

/* plog_test_capture_open creates the directory (tagged tag) and the empty file. */
void plog_test_capture_open(plog_test_capture *c, const char *tag);

/* plog_test_capture_read returns everything written so far, NUL-terminated; the
 * caller frees it. */
char *plog_test_capture_read(const plog_test_capture *c);

/* plog_test_capture_read_untimed is plog_test_capture_read for a logger's lines:
 * it fails the test unless every line starts with "time=<UTC time>Z " (RFC 3339,
 * to the millisecond, within the last hour and not in the future), and returns the
 * lines without it, so that a test can compare them whole. */
char *plog_test_capture_read_untimed(const plog_test_capture *c);

/* plog_test_capture_clear empties the file. */
void plog_test_capture_clear(const plog_test_capture *c);

/* plog_test_capture_close closes the file and removes the directory. */
void plog_test_capture_close(plog_test_capture *c);

/* cmocka setup and teardown whose state is a new plog_test_capture. */
int plog_test_capture_setup(void **state);
int plog_test_capture_teardown(void **state);

#endif
