/* err_test.c - every code has its own message; plog_fopen_read never waits for a
 * writer; plog_err_stdout_done reports output it could not write. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "internal/err/err.h"

static void test_err_every_code_has_a_distinct_message(void **state)
{
    (void)state;
    static const int codes[] = {
#define X(code, msg) code,
        PLOG_ERRORS(X)
#undef X
    };
    size_t n = sizeof codes / sizeof codes[0];
    for (size_t i = 0; i < n; i++) {
        assert_string_not_equal(plog_strerror(codes[i]), "unknown error");
        for (size_t j = 0; j < i; j++)
            assert_string_not_equal(plog_strerror(codes[i]), plog_strerror(codes[j]));
    }
    assert_string_equal(plog_strerror(PLOG_OK), "ok");
}

static void test_err_unknown_code_says_so(void **state)
{
    (void)state;
    assert_string_equal(plog_strerror(-1), "unknown error");
    assert_string_equal(plog_strerror(10000), "unknown error");
}

/* read_line opens path with plog_fopen_read and returns its first line (static),
 * or NULL with why. */
static const char *read_line(const char *path, char *why, size_t size)
{
    static char line[64];
    FILE *f = plog_fopen_read(path, why, size);
    if (f == NULL)
        return NULL;
    if (fgets(line, sizeof line, f) == NULL)
        line[0] = '\0';
    fclose(f);
    return line;
}

/* plog_fopen_read: a regular file as fopen opens it; what a pipe holds (as
 * <(cat file) gives it) read whole; a FIFO nobody writes to refused at once, where
 * fopen waits for a writer for good (alarm ends the test if it waits); a directory
 * refused as one. */
static void test_err_fopen_read_never_waits_for_a_writer(void **state)
{
    (void)state;
    char dir[] = "/tmp/plog-fopen-XXXXXX", path[96], why[256];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/level", dir);
    FILE *w = fopen(path, "w");
    assert_non_null(w);
    fputs("info\n", w);
    fclose(w);
    const char *line = read_line(path, why, sizeof why);
    assert_non_null(line);
    assert_string_equal(line, "info\n");
    unlink(path);

    int p[2];
    assert_int_equal(pipe(p), 0);
    assert_int_equal(write(p[1], "warn\n", 5), 5);
    close(p[1]);
    snprintf(path, sizeof path, "/proc/self/fd/%d", p[0]);
    line = read_line(path, why, sizeof why);
    close(p[0]);
    if (line == NULL || strcmp(line, "warn\n") != 0)
        fail_msg("a pipe's content: %s", line != NULL ? line : why);
    /* An empty pipe (say /dev/stdin fed nothing) is named as one too. */
    assert_int_equal(pipe(p), 0);
    close(p[1]);
    snprintf(path, sizeof path, "/proc/self/fd/%d", p[0]);
    line = read_line(path, why, sizeof why);
    close(p[0]);
    assert_null(line);
    assert_non_null(strstr(why, "nothing to read (an empty pipe"));

    snprintf(path, sizeof path, "%s/fifo", dir);
    assert_int_equal(mkfifo(path, 0600), 0);
    alarm(10);
    line = read_line(path, why, sizeof why);
    alarm(0);
    unlink(path);
    assert_null(line);
    assert_non_null(strstr(why, "/fifo: nothing to read"));

    assert_null(read_line(dir, why, sizeof why));
    assert_non_null(strstr(why, ": Is a directory"));
    rmdir(dir);
}

/* stdout_done_child runs plog_err_stdout_done("prog") after writing a line to
 * stdout opened on out (a path, or NULL: the write end of a pipe nobody reads),
 * with stderr in the file err; returns the child's exit status. */
static int stdout_done_child(const char *out, const char *err)
{
    int p[2];
    assert_int_equal(pipe(p), 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        signal(SIGPIPE, SIG_IGN);
        close(p[0]); /* the pipe's reader is gone: a write is EPIPE */
        if (freopen(err, "w", stderr) == NULL || setvbuf(stderr, NULL, _IONBF, 0) != 0)
            _exit(99); /* unbuffered, as a program's stderr is */
        if (out != NULL ? freopen(out, "w", stdout) == NULL : dup2(p[1], STDOUT_FILENO) < 0)
            _exit(98);
        fputs("usage: prog [flags]\n", stdout);
        _exit(plog_err_stdout_done("prog"));
    }
    close(p[0]);
    close(p[1]);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    return WEXITSTATUS(status);
}

static void test_err_stdout_done_reports_lost_output(void **state)
{
    (void)state;
    char err[] = "/tmp/plog-err-XXXXXX";
    int fd = mkstemp(err);
    assert_true(fd >= 0);
    close(fd);
    char said[256] = "";
    FILE *f;

    assert_int_equal(stdout_done_child("/dev/null", err), 0); /* written: silent */
    f = fopen(err, "r");
    assert_null(fgets(said, sizeof said, f));
    fclose(f);

    assert_int_equal(stdout_done_child("/dev/full", err), 1); /* a full disk */
    f = fopen(err, "r");
    assert_non_null(fgets(said, sizeof said, f));
    fclose(f);
    assert_string_equal(said, "prog: cannot write the output: No space left on device\n");

    assert_int_equal(stdout_done_child(NULL, err), 1); /* EPIPE: fails, quietly */
    f = fopen(err, "r");
    assert_null(fgets(said, sizeof said, f));
    fclose(f);
    unlink(err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_err_every_code_has_a_distinct_message),
        cmocka_unit_test(test_err_unknown_code_says_so),
        cmocka_unit_test(test_err_stdout_done_reports_lost_output),
        cmocka_unit_test(test_err_fopen_read_never_waits_for_a_writer),
    };
    return cmocka_run_group_tests_name("err", tests, NULL, NULL);
}
