/* netproxy_test.c - the cluster tests' link-cutting proxy (netproxy.h) against an
 * echo server: it forwards both ways, tells the nodes apart by source address, a cut
 * link swallows bytes without closing anything, and healing closes what it cut. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "internal/agent/netproxy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "testing/testing.h"

/* An echo server on 127.0.0.9: one thread, up to 16 connections. */
struct echo {
    int lfd, port;
    atomic_bool stop;
    pthread_t thread;
};

static void *echo_run(void *arg)
{
    struct echo *e = arg;
    int fds[16];
    int n = 0;
    while (!atomic_load(&e->stop)) {
        struct pollfd pf[17] = {{.fd = e->lfd, .events = POLLIN}};
        for (int i = 0; i < n; i++)
            pf[1 + i] = (struct pollfd){.fd = fds[i], .events = POLLIN};
        if (poll(pf, (nfds_t)(1 + n), 20) <= 0)
            continue;
        for (int i = n - 1; i >= 0; i--) {
            if (!(pf[1 + i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            char b[512];
            ssize_t r = recv(fds[i], b, sizeof b, 0);
            if (r <= 0 || send(fds[i], b, (size_t)r, MSG_NOSIGNAL) != r) {
                close(fds[i]);
                fds[i] = fds[--n];
            }
        }
        if ((pf[0].revents & POLLIN) && n < 16) {
            int fd = accept(e->lfd, NULL, NULL);
            if (fd >= 0)
                fds[n++] = fd;
        }
    }
    for (int i = 0; i < n; i++)
        close(fds[i]);
    return NULL;
}

static void echo_start(struct echo *e)
{
    struct sockaddr_in sa = {.sin_family = AF_INET};
    inet_pton(AF_INET, "127.0.0.9", &sa.sin_addr);
    socklen_t len = sizeof sa;
    e->lfd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(e->lfd >= 0);
    assert_int_equal(bind(e->lfd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(e->lfd, 16), 0);
    assert_int_equal(getsockname(e->lfd, (struct sockaddr *)&sa, &len), 0);
    e->port = ntohs(sa.sin_port);
    atomic_init(&e->stop, false);
    assert_int_equal(pthread_create(&e->thread, NULL, echo_run, e), 0);
}

static void echo_stop(struct echo *e)
{
    atomic_store(&e->stop, true);
    pthread_join(e->thread, NULL);
    close(e->lfd);
}

/* dial connects from the address src to 127.0.0.1:port. */
static int dial(const char *src, int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in from = {.sin_family = AF_INET}, to = {.sin_family = AF_INET};
    inet_pton(AF_INET, src, &from.sin_addr);
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    to.sin_port = htons((uint16_t)port);
    assert_int_equal(bind(fd, (struct sockaddr *)&from, sizeof from), 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&to, sizeof to), 0);
    return fd;
}

/* roundtrip sends msg and waits up to ms for it to come back: 1 it did, 0 nothing
 * came, -1 the connection was closed or reset. */
static int roundtrip(int fd, const char *msg, int ms)
{
    size_t len = strlen(msg);
    if (send(fd, msg, len, MSG_NOSIGNAL) != (ssize_t)len)
        return -1;
    char b[64];
    size_t got = 0;
    int64_t end = plog_test_now_ms() + ms;
    while (got < len) {
        int left = (int)(end - plog_test_now_ms());
        struct pollfd pf = {.fd = fd, .events = POLLIN};
        if (left <= 0 || poll(&pf, 1, left) == 0)
            return 0;
        ssize_t r = recv(fd, b + got, sizeof b - got, 0);
        if (r <= 0)
            return -1;
        got += (size_t)r;
    }
    assert_memory_equal(b, msg, len);
    return 1;
}

/* closed_within: the peer closes (or resets) fd within ms. */
static bool closed_within(int fd, int ms)
{
    int64_t end = plog_test_now_ms() + ms;
    for (;;) {
        int left = (int)(end - plog_test_now_ms());
        struct pollfd pf = {.fd = fd, .events = POLLIN};
        if (left <= 0 || poll(&pf, 1, left) == 0)
            return false;
        char b[64];
        ssize_t r = recv(fd, b, sizeof b, 0);
        if (r <= 0)
            return true;
    }
}

struct fixture {
    struct echo echo;
    netproxy *p;
};

static const char *const srcs[3] = {"127.0.0.2", "127.0.0.3", "127.0.0.4"};

static int setup(void **state)
{
    static struct fixture f;
    memset(&f, 0, sizeof f);
    echo_start(&f.echo);
    char dst[32];
    snprintf(dst, sizeof dst, "127.0.0.9:%d", f.echo.port);
    const char *dsts[3] = {dst, dst, dst};
    f.p = netproxy_open(3, srcs, dsts);
    *state = &f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    netproxy_close(f->p);
    echo_stop(&f->echo);
    return 0;
}

static void test_netproxy_forwards_both_ways_and_tells_nodes_by_source_address(void **state)
{
    struct fixture *f = *state;
    int a = dial("127.0.0.2", netproxy_port(f->p, 1)); /* node 0 to node 1 */
    int b = dial("127.0.0.7", netproxy_port(f->p, 2)); /* not a node */
    assert_int_equal(roundtrip(a, "hello", 2000), 1);
    assert_int_equal(roundtrip(b, "world", 2000), 1);
    netproxy_stats st;
    netproxy_link_stats(f->p, 0, 1, &st);
    assert_int_equal(st.accepted, 1);
    assert_int_equal(st.forwarded, 10); /* "hello" there and back */
    assert_int_equal(st.dropped, 0);
    for (int s = 0; s < 3; s++)
        for (int d = 0; d < 3; d++) {
            netproxy_link_stats(f->p, s, d, &st);
            if (s != 0 || d != 1)
                assert_int_equal(st.accepted, 0);
        }
    close(a);
    close(b);
}

static void test_netproxy_cut_link_swallows_bytes_and_heal_closes_its_connections(void **state)
{
    struct fixture *f = *state;
    int a = dial("127.0.0.2", netproxy_port(f->p, 1));     /* 0 -> 1: to be cut */
    int back = dial("127.0.0.3", netproxy_port(f->p, 0));  /* 1 -> 0: stays */
    int other = dial("127.0.0.4", netproxy_port(f->p, 1)); /* 2 -> 1: stays */
    assert_int_equal(roundtrip(a, "before", 2000), 1);
    netproxy_block(f->p, 0, 1, true);
    /* A black hole: nothing comes back, and nothing is closed. */
    assert_int_equal(roundtrip(a, "lost", 300), 0);
    assert_int_equal(roundtrip(a, "lost again", 100), 0);
    int late = dial("127.0.0.2", netproxy_port(f->p, 1)); /* accepted, then swallowed */
    assert_int_equal(roundtrip(late, "late", 300), 0);
    /* The other links carry on. */
    assert_int_equal(roundtrip(back, "back", 2000), 1);
    assert_int_equal(roundtrip(other, "other", 2000), 1);
    netproxy_stats st;
    netproxy_link_stats(f->p, 0, 1, &st);
    assert_true(st.dropped >= strlen("lostlost againlate"));
    assert_int_equal(st.accepted, 2);
    /* Healing closes the connections the cut swallowed bytes of; new ones work. */
    netproxy_block(f->p, 0, 1, false);
    assert_true(closed_within(a, 2000));
    assert_true(closed_within(late, 2000));
    assert_int_equal(roundtrip(back, "still", 2000), 1);
    assert_int_equal(roundtrip(other, "still", 2000), 1);
    int again = dial("127.0.0.2", netproxy_port(f->p, 1));
    assert_int_equal(roundtrip(again, "after", 2000), 1);
    /* isolate cuts both ways. */
    netproxy_isolate(f->p, 1, true);
    assert_int_equal(roundtrip(back, "cut", 300), 0);
    assert_int_equal(roundtrip(other, "cut", 300), 0);
    netproxy_isolate(f->p, 1, false);
    assert_true(closed_within(back, 2000));
    assert_true(closed_within(other, 2000));
    close(a);
    close(late);
    close(back);
    close(other);
    close(again);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_netproxy_forwards_both_ways_and_tells_nodes_by_source_address,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_netproxy_cut_link_swallows_bytes_and_heal_closes_its_connections,
                                        setup, teardown),
    };
    return cmocka_run_group_tests_name("netproxy", tests, NULL, NULL);
}
