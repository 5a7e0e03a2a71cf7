/* transport_test.c - the transport against a peer that is killed with SIGKILL and
 * started again on the same address, again and again, while messages stream to it
 * (the Raft transport's life in cmd/proglog/cluster_test.c's kill loop, without
 * Raft). The peer is a real process: this binary run with --sink, which receives
 * and says "got" once it heard the first message. Closing the receiving transport in
 * this process instead would not do: nng 1.5.2 leaks or hangs on in-process TLS
 * peers that close while being dialed (discovery_test.c).
 *
 * What it guards (transport.c's top comment): nng 1.5.2's push protocol can leave a
 * pipe that closed as a send completed on the socket's ready list after freeing it,
 * so a later send on that socket, or a new pipe of its dialer, used freed memory;
 * and a pipe closed between the parts of a TLS send leaves nng's reaper waiting
 * forever, so an nng_close on the sending thread hung it. Before the transport gave
 * every connection its own socket and closed given-up sockets on threads of their
 * own, this test crashed in nng_sendmsg or found the sender stuck in nng_close
 * within a few dozen kills. nng's reaper may still get stuck (closing the transport
 * at the end then waits for it, so the teardown bounds that wait); what must hold is
 * that the sender never blocks and every restarted peer hears from it.
 *
 * A stuck reaper makes every nng_close wait for good. The last test stands one in
 * (this binary's nng_close, below, waits while told to) and closes a transport:
 * the close must return anyway. */
#define _GNU_SOURCE /* RTLD_NEXT */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <nng/nng.h>

#include "internal/agent/testcluster.h"
#include "internal/discovery/transport.h"
#include "internal/err/err.h"
#include "testing/testing.h"

#define MSG_BYTES 200

/* LeakSanitizer (SAN=1) reads this. On the paths this test drives, nng 1.5.2 loses
 * messages it had taken (a send handed to a pipe that closed, see transport.c) and
 * whatever its stuck reaper holds: leaks allocated inside libnng are not ours, while
 * the transport's own allocations are still checked. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void)
{
    return "leak:libnng.so\n";
}

/* ---- the peer (this binary with --sink ADDR CERT KEY CA) ---------------------- */

static atomic_int sink_count;

static void sink_recv(void *arg, const char *from, const uint8_t *buf, size_t len)
{
    (void)arg, (void)from, (void)buf, (void)len;
    if (atomic_fetch_add(&sink_count, 1) == 0) {
        printf("got\n");
        fflush(stdout);
    }
}

/* sink_slow_recv: a peer that answers, slower than its sender sends */
static void sink_slow_recv(void *arg, const char *from, const uint8_t *buf, size_t len)
{
    sink_recv(arg, from, buf, len);
    struct timespec ts = {0, 1000 * 1000};
    nanosleep(&ts, NULL);
}

static int sink_main(char **argv, bool slow)
{
    plog_transport_config cfg = {
        .bind_addr = argv[0],
        .cert_file = argv[1],
        .key_file = argv[2],
        .ca_file = argv[3],
        .recv = slow ? sink_slow_recv : sink_recv,
    };
    plog_transport *t;
    char err[256];
    if (plog_transport_open(&cfg, &t, err, sizeof err) != PLOG_OK) {
        fprintf(stderr, "sink: %s\n", err);
        return 1;
    }
    printf("ready\n");
    fflush(stdout);
    for (;;)
        pause(); /* until SIGKILL */
}

/* ---- the test -------------------------------------------------------------------- */

struct fixture {
    char addr[32], cert[600], key[600], ca[600], peer_cert[600], peer_key[600];
    plog_test_proc sink;
    bool sink_running;
    plog_transport *t;
    pthread_t th;
    bool th_running;
    atomic_bool stop, done, closed;
    atomic_long sent;
};

static struct fixture g_f;

static void nothing(void *arg, const char *from, const uint8_t *buf, size_t len)
{
    (void)arg, (void)from, (void)buf, (void)len;
}

/* sender streams messages to the peer, a few thousand a second, whatever happens
 * to it (as a Raft follower answers its leader). */
static void *sender(void *arg)
{
    struct fixture *f = arg;
    uint8_t msg[MSG_BYTES];
    memset(msg, 'm', sizeof msg);
    struct timespec pause_ts = {0, 100 * 1000};
    while (!atomic_load(&f->stop)) {
        if (plog_transport_send(f->t, f->addr, msg, sizeof msg) == PLOG_OK)
            atomic_fetch_add(&f->sent, 1);
        nanosleep(&pause_ts, NULL);
    }
    atomic_store(&f->done, true);
    return NULL;
}

static void start_sink_as(struct fixture *f, char *mode)
{
    char *argv[] = {"/proc/self/exe", mode, f->addr, f->peer_cert, f->peer_key, f->ca, NULL};
    plog_test_spawn(&f->sink, argv);
    f->sink_running = true;
    if (!plog_test_wait_output(&f->sink, "ready", 10000)) {
        char *out = plog_test_output(&f->sink);
        fail_msg("the peer did not start: %s", out != NULL ? out : "");
    }
}

static void start_sink(struct fixture *f)
{
    start_sink_as(f, "--sink");
}

static void stop_sink(struct fixture *f)
{
    if (!f->sink_running)
        return;
    plog_test_kill(&f->sink, SIGKILL, 5000);
    unlink(f->sink.out);
    f->sink_running = false;
}

static void *closer(void *arg)
{
    struct fixture *f = arg;
    plog_transport_close(f->t);
    atomic_store(&f->closed, true);
    return NULL;
}

static int teardown(void **state)
{
    (void)state;
    struct fixture *f = &g_f;
    bool stopped = true;
    if (f->th_running) {
        atomic_store(&f->stop, true);
        for (int i = 0; i < 500 && !atomic_load(&f->done); i++)
            plog_test_sleep_ms(10);
        stopped = atomic_load(&f->done);
        if (stopped)
            pthread_join(f->th, NULL);
        else
            fprintf(stderr, "the sending thread is stuck: the transport is left open\n");
    }
    stop_sink(f);
    if (stopped && f->t != NULL) {
        /* A close waits for nng's reaper, which nng 1.5.2 can leave stuck after a
         * pipe closed mid-send (transport.c): bounded here, so the test reports
         * instead of hanging. */
        pthread_t th;
        atomic_init(&f->closed, false);
        assert_int_equal(pthread_create(&th, NULL, closer, f), 0);
        for (int i = 0; i < 300 && !atomic_load(&f->closed); i++)
            plog_test_sleep_ms(10);
        if (atomic_load(&f->closed))
            pthread_join(th, NULL);
        else
            fprintf(stderr, "closing the transport is stuck in nng (left to it)\n");
    }
    f->t = NULL; /* the next test opens its own */
    f->th_running = false;
    atomic_store(&f->sent, 0);
    return 0;
}

/* open_sender opens f->t on a free port and names a free port for the peer. */
static void open_sender(struct fixture *f)
{
    const char *certs = tc_certs();
    snprintf(f->addr, sizeof f->addr, "127.0.0.1:%d", plog_test_free_port());
    snprintf(f->cert, sizeof f->cert, "%s/node1.pem", certs);
    snprintf(f->key, sizeof f->key, "%s/node1-key.pem", certs);
    snprintf(f->ca, sizeof f->ca, "%s/ca.pem", certs);
    snprintf(f->peer_cert, sizeof f->peer_cert, "%s/node2.pem", certs);
    snprintf(f->peer_key, sizeof f->peer_key, "%s/node2-key.pem", certs);
    char bind[32], err[256];
    snprintf(bind, sizeof bind, "127.0.0.1:%d", plog_test_free_port());
    plog_transport_config cfg = {
        .bind_addr = bind,
        .cert_file = f->cert,
        .key_file = f->key,
        .ca_file = f->ca,
        .recv = nothing,
    };
    if (plog_transport_open(&cfg, &f->t, err, sizeof err) != PLOG_OK)
        fail_msg("open: %s", err);
}

/* Every restarted peer hears from a sender that never stopped sending, and the
 * sender's process survives every kill. A round takes about a second (one fresh
 * socket per address per RENEW_MS): 20 kills here, PLOG_TRANSPORT_KILLS=300 in
 * make check-long (the nng faults it guards against came every 2 to 22 kills). */
static void test_transport_reaches_a_peer_killed_and_restarted_again_and_again(void **state)
{
    (void)state;
    struct fixture *f = &g_f;
    const char *env = getenv("PLOG_TRANSPORT_KILLS");
    int rounds = env != NULL && atoi(env) > 0 ? atoi(env) : 20;
    open_sender(f);
    start_sink(f);
    atomic_init(&f->stop, false);
    atomic_init(&f->done, false);
    assert_int_equal(pthread_create(&f->th, NULL, sender, f), 0);
    f->th_running = true;
    int64_t t0 = plog_test_now_ms();
    for (int k = 0; k < rounds; k++) {
        if (!plog_test_wait_output(&f->sink, "got", 10000))
            fail_msg("round %d: the restarted peer heard nothing within 10 s (%ld sent so far)", k,
                     (long)atomic_load(&f->sent));
        stop_sink(f);
        start_sink(f);
    }
    if (!plog_test_wait_output(&f->sink, "got", 10000))
        fail_msg("the last peer heard nothing within 10 s");
    print_message("%d kills in %lld ms, %ld messages sent\n", rounds, (long long)(plog_test_now_ms() - t0),
                  (long)atomic_load(&f->sent));
}

/* send_for sends a small message to addr every 100 ms for ms milliseconds. */
static void send_for(plog_transport *t, const char *addr, int64_t ms)
{
    uint8_t msg[8] = {0};
    for (int64_t until = plog_test_now_ms() + ms; plog_test_now_ms() < until;) {
        plog_transport_send(t, addr, msg, sizeof msg);
        plog_test_sleep_ms(100);
    }
}

/* A socket that never connected and was sent nothing more is given up, and its
 * dialer with it: one message to a port where nothing listens (a member gone
 * before this node reached it), then 8 s of messages elsewhere, then a listener
 * on that port must hear no dial for 2.5 s. Before, the dialer tried the address
 * once a second until the process ended: a black-box run found every node of a
 * cluster still dialing members reaped minutes before. It runs before the kill
 * test, whose given-up sockets can keep the closer busy for a while (a socket is
 * given up only while fewer than RETIRED_MAX wait for it). */
static void test_transport_stops_dialing_an_address_it_no_longer_sends_to(void **state)
{
    (void)state;
    struct fixture *f = &g_f;
    open_sender(f);
    int port = plog_test_free_port();
    char gone[32], other[32];
    snprintf(gone, sizeof gone, "127.0.0.1:%d", port);
    snprintf(other, sizeof other, "127.0.0.1:%d", plog_test_free_port());
    uint8_t msg[8] = {0};
    assert_int_equal(plog_transport_send(f->t, gone, msg, sizeof msg), PLOG_OK);
    send_for(f->t, other, 8000); /* well past IDLE_MS (5 s): the sweeps run on sends */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    int one = 1;
    assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one), 0);
    struct sockaddr_in sa = {
        .sin_family = AF_INET, .sin_port = htons((uint16_t)port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0)
        fail_msg("bind 127.0.0.1:%d: %s", port, strerror(errno));
    assert_int_equal(listen(fd, 64), 0);
    assert_int_equal(fcntl(fd, F_SETFL, O_NONBLOCK), 0);
    send_for(f->t, other, 2500);
    int dials = 0;
    for (int c; (c = accept(fd, NULL, NULL)) >= 0; dials++)
        close(c);
    close(fd);
    if (dials > 0)
        fail_msg("%d dials to %s, sent one message 10.5 s before", dials, gone);
}

/* connections_to counts this machine's TCP sockets whose remote port is port, in
 * any state (/proc/net/tcp): the sender's connections to the peer, open or closed
 * within the last minute (TIME_WAIT: the sender closes first). */
static int connections_to(int port)
{
    FILE *fp = fopen("/proc/net/tcp", "r");
    assert_non_null(fp);
    char line[512];
    int n = 0;
    if (fgets(line, sizeof line, fp) == NULL) { /* the header */
        fclose(fp);
        return 0;
    }
    while (fgets(line, sizeof line, fp) != NULL) {
        unsigned rport;
        if (sscanf(line, " %*d: %*x:%*x %*x:%x", &rport) == 1 && (int)rport == port)
            n++;
    }
    fclose(fp);
    return n;
}

/* A peer that answers, slower than its sender sends (a Raft follower rejecting
 * probes as fast as a leader sends them), fills the sender's buffer while its
 * connection is up. That is no reason for a fresh connection: the sender drops
 * what does not fit and keeps the connection. Before, every full buffer gave the
 * socket up and dialed again, hundreds of times a second, and the given-up sockets
 * piled up before the closer (the leader's thousands of connections to one
 * follower). */
static void test_transport_keeps_one_connection_to_a_slow_peer(void **state)
{
    (void)state;
    struct fixture *f = &g_f;
    open_sender(f);
    start_sink_as(f, "--sink-slow");
    int port = atoi(strchr(f->addr, ':') + 1);
    uint8_t msg[MSG_BYTES];
    memset(msg, 'm', sizeof msg);
    int64_t t0 = plog_test_now_ms();
    long ok = 0, dropped = 0;
    while (plog_test_now_ms() - t0 < 3000) {
        for (int i = 0; i < 100; i++) {
            if (plog_transport_send(f->t, f->addr, msg, sizeof msg) == PLOG_OK)
                ok++;
            else
                dropped++;
        }
        plog_test_sleep_ms(1);
    }
    int conns = connections_to(port);
    print_message("3 s of sends to a slow peer: %ld queued, %ld dropped, %d connections\n", ok, dropped,
                  conns);
    if (!plog_test_wait_output(&f->sink, "got", 10000))
        fail_msg("the slow peer heard nothing");
    /* one, or two if its buffer did not drain for 2 s (transport.c, STALL_MS); before:
     * 667 in one run, and the closes wedged nng */
    assert_in_range(conns, 1, 2);
    assert_true(dropped > 0); /* it was slower: the buffer did fill */
}

/* nng_close as a stuck reaper makes it: while close_blocks is set, every call
 * waits (the transport's, linked into this binary, come here; libnng is a shared
 * library, whose nng_close real_close is, found once by main). */
static atomic_bool close_blocks;
static int (*real_close)(nng_socket);

int nng_close(nng_socket s)
{
    while (atomic_load(&close_blocks))
        plog_test_sleep_ms(5);
    return real_close(s);
}

/* A node whose transport closes while nng's reaper is stuck must still stop, even
 * when the closer has nothing queued (the reaper stuck on a pipe nng tore down
 * itself): the PULL socket's nng_close would wait for good, so the close hands it
 * to the closer too and waits at most about 2 s. Before, it closed PULL on its own
 * thread once the closer was idle, and a node failed by a full disk never exited,
 * its data directory locked. */
static void test_transport_close_returns_while_nng_close_hangs(void **state)
{
    (void)state;
    struct fixture *f = &g_f;
    open_sender(f); /* listening, no connection of its own: the closer is idle */
    atomic_store(&close_blocks, true);
    pthread_t th;
    atomic_init(&f->closed, false);
    int64_t t0 = plog_test_now_ms();
    assert_int_equal(pthread_create(&th, NULL, closer, f), 0);
    while (!atomic_load(&f->closed) && plog_test_now_ms() - t0 < 5000)
        plog_test_sleep_ms(10);
    bool returned = atomic_load(&f->closed);
    atomic_store(&close_blocks, false); /* the stuck closes go on now */
    pthread_join(th, NULL);
    f->t = NULL;
    if (!returned)
        fail_msg("plog_transport_close still waited in nng_close after 5 s");
    print_message("closed in %lld ms with nng_close stuck\n", (long long)(plog_test_now_ms() - t0));
}

int main(int argc, char **argv)
{
    *(void **)&real_close = dlsym(RTLD_NEXT, "nng_close");
    if (real_close == NULL) {
        fprintf(stderr, "transport_test: no nng_close in the libraries: %s\n", dlerror());
        return 1;
    }
    if (argc == 6 && strcmp(argv[1], "--sink") == 0)
        return sink_main(argv + 2, false);
    if (argc == 6 && strcmp(argv[1], "--sink-slow") == 0)
        return sink_main(argv + 2, true);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_transport_stops_dialing_an_address_it_no_longer_sends_to, teardown),
        cmocka_unit_test_teardown(test_transport_keeps_one_connection_to_a_slow_peer, teardown),
        cmocka_unit_test_teardown(test_transport_reaches_a_peer_killed_and_restarted_again_and_again,
                                  teardown),
        cmocka_unit_test_teardown(test_transport_close_returns_while_nng_close_hangs, teardown),
    };
    return cmocka_run_group_tests_name("transport", tests, NULL, NULL);
}
