/* runcluster_test.c - `make run`'s scripts/run-cluster as a terminal user meets
 * it: a second run on the same data directory fails at once, names the node and
 * why, and leaves the running cluster alone; closing the terminal (SIGHUP to the
 * process group) stops every node; a node that dies is reported while the
 * others go on, two that die together are both reported, and the last one's
 * death ends the script; and `make run` builds no test (cmocka is not in its
 * dependencies). The script runs in its own session (setsid), as under a
 * terminal, on ports picked free (PORT_BASE). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "internal/agent/testcluster.h"

struct fixture {
    char dir[64], data[128], script[512];
    int base; /* node i's RPC port is base + 10 i */
    plog_test_proc proc;
    bool running;
};

/* on_port: whether op (bind or connect) on a fresh TCP socket to 127.0.0.1:port
 * succeeds now. */
static bool on_port(int (*op)(int, const struct sockaddr *, socklen_t), int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bool ok = op(fd, (struct sockaddr *)&a, sizeof a) == 0;
    close(fd);
    return ok;
}

/* bindable: nothing listens on 127.0.0.1:port (TCP) at the moment. */
static bool bindable(int port)
{
    return on_port(bind, port);
}

/* accepting: something accepts TCP connections on 127.0.0.1:port. */
static bool accepting(int port)
{
    return on_port(connect, port);
}

/* free_base picks a base whose nine ports (base + 10 i + 0..2) are free, below the
 * kernel's ephemeral range: the nodes' own connections take source ports from that
 * range once they run, and one took node3's port after the check (a CI rehearsal:
 * "listen tls+tcp://127.0.0.1:34310: Address in use"). */
static int free_base(void)
{
    int ephemeral_lo = 32768;
    FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r");
    if (f != NULL) {
        if (fscanf(f, "%d", &ephemeral_lo) != 1)
            ephemeral_lo = 32768;
        fclose(f);
    }
    int blocks = (ephemeral_lo - 20000 - 30) / 10;
    if (blocks < 100)
        blocks = 3000; /* a range set unusually low: take the chance as before */
    srand((unsigned)getpid() ^ (unsigned)plog_test_now_ms());
    for (int tries = 0; tries < 200; tries++) {
        int base = 20000 + 10 * (rand() % blocks);
        bool ok = true;
        for (int i = 0; i < 3 && ok; i++)
            for (int k = 0; k < 3 && ok; k++)
                ok = bindable(base + 10 * i + k);
        if (ok)
            return base;
    }
    fail_msg("no free block of ports");
    return 0;
}

static int setup(void **state)
{
    /* The script runs as from a terminal: a shell started with SIGHUP or SIGINT
     * ignored (under nohup, or in the background) cannot trap it, and the test
     * is about those traps. */
    signal(SIGHUP, SIG_DFL);
    signal(SIGINT, SIG_DFL); /* ignored when the tests run in the background (CI) */
    struct fixture *f = calloc(1, sizeof *f);
    plog_test_tmpdir("runcluster", f->dir, sizeof f->dir);
    snprintf(f->data, sizeof f->data, "%s/data", f->dir);
    const char *chapter = getenv("PLOG_CHAPTER");
    snprintf(f->script, sizeof f->script, "%s/scripts/run-cluster", chapter != NULL ? chapter : ".");
    f->base = free_base();
    char base[16];
    snprintf(base, sizeof base, "%d", f->base);
    setenv("PORT_BASE", base, 1);
    setenv("PROFILE", "fast", 1);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    if (f->running) {
        kill(-f->proc.pid, SIGKILL); /* the script's session: the nodes too */
        plog_test_kill(&f->proc, SIGKILL, 5000);
    }
    if (f->proc.out[0] != '\0')
        unlink(f->proc.out);
    plog_test_rmrf(f->dir);
    free(f);
    return 0;
}

/* start runs the script in a session of its own (its pid is the group's) and
 * waits for its banner. */
static void start(struct fixture *f)
{
    char *argv[] = {"/usr/bin/setsid",  f->script, (char *)plog_test_bin(""),
                    (char *)tc_certs(), f->data,   NULL};
    plog_test_spawn(&f->proc, argv);
    f->running = true;
    if (!plog_test_wait_output(&f->proc, "run-cluster: three nodes", 90000))
        fail_msg("no banner: %s", plog_test_output(&f->proc));
    for (int i = 0; i < 3; i++)
        assert_true(accepting(f->base + 10 * i));
}

/* stopped waits for the script to exit and checks that no node serves on. */
static int stopped(struct fixture *f)
{
    if (!plog_test_wait(&f->proc, 60000))
        fail_msg("run-cluster still running: %s", plog_test_output(&f->proc));
    f->running = false;
    for (int i = 0; i < 3; i++)
        if (accepting(f->base + 10 * i))
            fail_msg("node%d still serves after run-cluster exited", i + 1);
    return WIFEXITED(f->proc.status) ? WEXITSTATUS(f->proc.status) : 128 + WTERMSIG(f->proc.status);
}

/* ctl runs proglogctl as root against node 1; returns its exit status. */
static int ctl(struct fixture *f, const char *args, char **out)
{
    const char *certs = tc_certs();
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "%s --tls-cert-file %s/root-client.pem --tls-key-file %s/root-client-key.pem --tls-ca-file "
             "%s/ca.pem --addr tls+tcp://127.0.0.1:%d %s",
             plog_test_bin("proglogctl"), certs, certs, certs, f->base, args);
    return plog_test_sh(cmd, 15000, out);
}

/* node_pid is node i's pid, from the script's "nodeI is up (pid N)". */
static pid_t node_pid(struct fixture *f, int i)
{
    char want[64], *out = plog_test_output(&f->proc);
    snprintf(want, sizeof want, "run-cluster: node%d is up (pid ", i);
    const char *up = strstr(out, want);
    assert_non_null(up);
    pid_t pid = (pid_t)atoi(up + strlen(want));
    free(out);
    assert_true(pid > 1);
    return pid;
}

static void test_run_cluster_second_run_fails_and_hangup_stops_every_node(void **state)
{
    struct fixture *f = *state;
    start(f);
    char *out;
    /* A second `make run` on the same directory: node1 is refused, nothing
     * else starts, no banner, exit 1. */
    char *argv[] = {f->script, (char *)plog_test_bin(""), (char *)tc_certs(), f->data, NULL};
    int rc = plog_test_run(argv, NULL, 60000, &out);
    char want[256];
    snprintf(want, sizeof want, "data directory %s/node1 is in use by another process", f->data);
    if (rc != 1 || strstr(out, "run-cluster: node1 exited at start (exit status 1)") == NULL ||
        strstr(out, want) == NULL || strstr(out, "three nodes") != NULL)
        fail_msg("second run-cluster: exit %d: %s", rc, out);
    free(out);
    /* The first cluster serves on. */
    assert_int_equal(ctl(f, "produce hello", &out), 0);
    free(out);
    assert_int_equal(ctl(f, "consume 0", &out), 0);
    assert_string_equal(out, "hello\n");
    free(out);
    /* The terminal closes: SIGHUP to the whole process group, nodes included
     * (to a node, SIGHUP alone means "reload"). */
    assert_int_equal(kill(-f->proc.pid, SIGHUP), 0);
    assert_int_equal(stopped(f), 129);
    out = plog_test_output(&f->proc);
    assert_non_null(strstr(out, "run-cluster: stopping node1 node2 node3"));
    free(out);
}

static void test_run_cluster_reports_a_node_that_dies_and_the_others_serve_on(void **state)
{
    struct fixture *f = *state;
    start(f);
    pid_t node2 = node_pid(f, 2);
    char *out;
    assert_int_equal(kill(node2, SIGKILL), 0);
    if (!plog_test_wait_output(&f->proc, "still running: node1 node3", 15000))
        fail_msg("node2's death not reported: %s", plog_test_output(&f->proc));
    out = plog_test_output(&f->proc);
    assert_non_null(strstr(out, "node2 (pid "));
    assert_non_null(strstr(out, "stopped on its own (killed by signal 9)"));
    /* The script's report only: bash's own job notice ("line N: PID Killed
     * ...") is kept off the terminal. */
    if (strstr(out, " Killed") != NULL)
        fail_msg("bash's job notice reached the terminal: %s", out);
    free(out);
    assert_int_equal(ctl(f, "produce still", &out), 0);
    free(out);
    /* Ctrl-C: SIGINT to the whole process group. The script stops the two left,
     * and their last lines still reach the terminal (the tee of each node's
     * lines ignores SIGINT, as the nodes do; it died with it before). */
    assert_int_equal(kill(-f->proc.pid, SIGINT), 0);
    int st = stopped(f);
    out = plog_test_output(&f->proc);
    /* The nodes stop on SIGINT themselves too: when the script sees them gone
     * before its trap runs (a CI rehearsal, once), it reports them and exits 1. */
    if ((st != 0 && st != 1) || strstr(out, "msg=stopped node=node1") == NULL ||
        strstr(out, "msg=stopped node=node3") == NULL)
        fail_msg("Ctrl-C: exit %d: %s", st, out);
    free(out);
}

/* Two nodes killed at once are both reported, though the script is still
 * reporting the first when the second is gone; when the last one dies, the
 * script says so and exits 1. */
static void test_run_cluster_reports_nodes_that_die_together_and_exits_when_none_is_left(void **state)
{
    struct fixture *f = *state;
    start(f);
    pid_t pid[3] = {node_pid(f, 1), node_pid(f, 2), node_pid(f, 3)};
    assert_int_equal(kill(pid[1], SIGKILL), 0);
    assert_int_equal(kill(pid[2], SIGKILL), 0);
    if (!plog_test_wait_output(&f->proc, "still running: node1 (", 15000))
        fail_msg("node2's and node3's deaths not both reported: %s", plog_test_output(&f->proc));
    char *out = plog_test_output(&f->proc), want[128];
    for (int i = 1; i < 3; i++) {
        snprintf(want, sizeof want, "node%d (pid %d) stopped on its own (killed by signal 9)", i + 1,
                 (int)pid[i]);
        if (strstr(out, want) == NULL)
            fail_msg("no \"%s\": %s", want, out);
    }
    free(out);
    assert_int_equal(kill(pid[0], SIGKILL), 0);
    assert_int_equal(stopped(f), 1);
    out = plog_test_output(&f->proc);
    assert_non_null(strstr(out, "run-cluster: no node left"));
    free(out);
}

/* `make run` builds the programs and certificates only: the tests need cmocka,
 * which the run dependencies (common/scripts/deps.sh run) do not install. */
static void test_make_run_builds_no_test(void **state)
{
    struct fixture *f = *state;
    const char *chapter = getenv("PLOG_CHAPTER");
    char cmd[1024], *out;
    snprintf(cmd, sizeof cmd, "cd %s && env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make -n run BUILD=%s/build",
             chapter != NULL ? chapter : ".", f->dir);
    assert_int_equal(plog_test_sh(cmd, 60000, &out), 0);
    assert_non_null(strstr(out, "/proglog "));
    if (strstr(out, "_test") != NULL || strstr(out, "cmocka") != NULL)
        fail_msg("make run builds tests: %s", out);
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_run_cluster_second_run_fails_and_hangup_stops_every_node, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_run_cluster_reports_a_node_that_dies_and_the_others_serve_on,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_run_cluster_reports_nodes_that_die_together_and_exits_when_none_is_left, setup, teardown),
        cmocka_unit_test_setup_teardown(test_make_run_builds_no_test, setup, teardown),
    };
    return cmocka_run_group_tests_name("run-cluster", tests, NULL, NULL);
}
