/* netproxy_testlib.c - the link-cutting TCP proxy of the cluster tests (see
 * netproxy.h).
 *
 * One thread polls the wake pipe, the listeners and both sockets of every
 * connection. A connection carries two buffers: up (read from the node that dialed,
 * to write to the destination) and down (the other way). The thread owns the
 * connections; the other threads change only the blocked table, under mu, and
 * wait until the thread has taken the change in (req/done), so a test knows that
 * a cut is in force or that a healed link's connections are closed when the call
 * returns. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "internal/agent/netproxy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define BUF (64u << 10)

struct half {
    uint8_t buf[BUF];
    size_t len;
};

struct conn {
    bool used;
    int src, dst;    /* src -1: not a node's address (never cut) */
    int cfd, ufd;    /* the dialer's side, the destination's side */
    int ci, ui;      /* their slots in this round's pollfd array (-1: none) */
    bool connecting; /* ufd's connect is in progress */
    bool holed;      /* was cut: closed when the link heals */
    bool ceof, ueof; /* that side has closed its sending half */
    struct half up, down;
};

struct netproxy {
    int n;
    struct in_addr src[NETPROXY_MAX_NODES];
    struct sockaddr_in dst[NETPROXY_MAX_NODES];
    int lfd[NETPROXY_MAX_NODES];
    int port[NETPROXY_MAX_NODES];
    int wake[2];
    pthread_t thread;

    pthread_mutex_t mu; /* blocked, req, done, stop, stats */
    pthread_cond_t cv;
    bool blocked[NETPROXY_MAX_NODES][NETPROXY_MAX_NODES];
    uint64_t req, done;
    bool stop;
    netproxy_stats stats[NETPROXY_MAX_NODES][NETPROXY_MAX_NODES];

    struct conn conns[NETPROXY_MAX_CONNS]; /* the thread's */
};

static void count(netproxy *p, const struct conn *c, uint64_t fwd, uint64_t dropped, uint64_t accepted)
{
    if (c->src < 0)
        return;
    pthread_mutex_lock(&p->mu);
    netproxy_stats *s = &p->stats[c->src][c->dst];
    s->forwarded += fwd;
    s->dropped += dropped;
    s->accepted += accepted;
    pthread_mutex_unlock(&p->mu);
}

static void conn_close(struct conn *c)
{
    close(c->cfd);
    close(c->ufd);
    c->used = false;
}

static void nonblock(int fd)
{
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

/* on_accept takes a new connection on node dst's listener and starts connecting
 * to the node. */
static void on_accept(netproxy *p, int dst)
{
    struct sockaddr_in from;
    socklen_t len = sizeof from;
    int cfd = accept(p->lfd[dst], (struct sockaddr *)&from, &len);
    if (cfd < 0)
        return;
    struct conn *c = NULL;
    for (int k = 0; k < NETPROXY_MAX_CONNS && c == NULL; k++)
        if (!p->conns[k].used)
            c = &p->conns[k];
    int ufd = socket(AF_INET, SOCK_STREAM, 0);
    if (c == NULL || ufd < 0) {
        close(cfd);
        if (ufd >= 0)
            close(ufd);
        return;
    }
    nonblock(cfd);
    nonblock(ufd);
    memset(c, 0, offsetof(struct conn, up));
    c->up.len = c->down.len = 0;
    c->src = -1;
    for (int j = 0; j < p->n; j++)
        if (from.sin_family == AF_INET && from.sin_addr.s_addr == p->src[j].s_addr)
            c->src = j;
    c->dst = dst;
    c->cfd = cfd;
    c->ufd = ufd;
    c->used = true;
    if (connect(ufd, (struct sockaddr *)&p->dst[dst], sizeof p->dst[dst]) == 0)
        c->connecting = false;
    else if (errno == EINPROGRESS)
        c->connecting = true;
    else {
        conn_close(c); /* the node is down: the dialer sees its connection close */
        return;
    }
    count(p, c, 0, 0, 1);
}

/* pump moves bytes from fd into h, or discards them when cut; false when the
 * connection is to be closed (an error). */
static bool pump_in(netproxy *p, struct conn *c, int fd, struct half *h, bool cut, bool *eof)
{
    uint8_t scratch[4096];
    uint8_t *dst = cut ? scratch : h->buf + h->len;
    size_t room = cut ? sizeof scratch : BUF - h->len;
    if (room == 0)
        return true;
    ssize_t n = recv(fd, dst, room, 0);
    if (n > 0) {
        if (cut)
            count(p, c, 0, (uint64_t)n, 0);
        else
            h->len += (size_t)n;
    } else if (n == 0) {
        *eof = true;
    } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        return false;
    }
    return true;
}

static bool pump_out(netproxy *p, struct conn *c, int fd, struct half *h)
{
    if (h->len == 0)
        return true;
    /* Counted under mu with the send, so a reader that has the bytes sees them
     * counted. */
    pthread_mutex_lock(&p->mu);
    ssize_t n = send(fd, h->buf, h->len, MSG_NOSIGNAL);
    if (n > 0 && c->src >= 0)
        p->stats[c->src][c->dst].forwarded += (uint64_t)n;
    pthread_mutex_unlock(&p->mu);
    if (n < 0)
        return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
    memmove(h->buf, h->buf + n, h->len - (size_t)n);
    h->len -= (size_t)n;
    return true;
}

static void *run(void *arg)
{
    netproxy *p = arg;
    struct pollfd fds[1 + NETPROXY_MAX_NODES + 2 * NETPROXY_MAX_CONNS];
    bool blocked[NETPROXY_MAX_NODES][NETPROXY_MAX_NODES];
    for (;;) {
        /* Take in the table: cut connections drop what they hold, healed ones that
         * were cut close. Then tell the waiting caller. */
        pthread_mutex_lock(&p->mu);
        if (p->stop) {
            pthread_mutex_unlock(&p->mu);
            break;
        }
        uint64_t req = p->req;
        memcpy(blocked, p->blocked, sizeof blocked);
        pthread_mutex_unlock(&p->mu);
        for (int k = 0; k < NETPROXY_MAX_CONNS; k++) {
            struct conn *c = &p->conns[k];
            if (!c->used)
                continue;
            if (c->src >= 0 && blocked[c->src][c->dst]) {
                count(p, c, 0, c->up.len + c->down.len, 0);
                c->up.len = c->down.len = 0;
                c->holed = true;
            } else if (c->holed) {
                conn_close(c);
            }
        }
        pthread_mutex_lock(&p->mu);
        p->done = req;
        pthread_cond_broadcast(&p->cv);
        pthread_mutex_unlock(&p->mu);

        nfds_t nfds = 0;
        fds[nfds++] = (struct pollfd){.fd = p->wake[0], .events = POLLIN};
        for (int i = 0; i < p->n; i++)
            fds[nfds++] = (struct pollfd){.fd = p->lfd[i], .events = POLLIN};
        for (int k = 0; k < NETPROXY_MAX_CONNS; k++) {
            struct conn *c = &p->conns[k];
            if (!c->used)
                continue;
            bool cut = c->holed;
            c->ci = (int)nfds;
            fds[nfds++] =
                (struct pollfd){.fd = c->cfd,
                                .events = (short)((!c->ceof && (cut || c->up.len < BUF) ? POLLIN : 0) |
                                                  (c->down.len > 0 ? POLLOUT : 0))};
            c->ui = (int)nfds;
            fds[nfds++] = (struct pollfd){
                .fd = c->ufd,
                .events = (short)(c->connecting ? POLLOUT
                                                : (!c->ueof && (cut || c->down.len < BUF) ? POLLIN : 0) |
                                                      (c->up.len > 0 ? POLLOUT : 0))};
        }
        if (poll(fds, nfds, -1) < 0 && errno != EINTR) {
            /* Not fail_msg: cmocka's jump belongs to the test's thread. */
            fprintf(stderr, "netproxy: poll: %s\n", strerror(errno));
            abort();
        }
        if (fds[0].revents & POLLIN) {
            char b[64];
            while (read(p->wake[0], b, sizeof b) > 0) {
            }
        }
        /* Connections first (the ones accepted below have no pollfd this round). */
        for (int k = 0; k < NETPROXY_MAX_CONNS; k++) {
            struct conn *c = &p->conns[k];
            if (!c->used)
                continue;
            short cr = fds[c->ci].revents, ur = fds[c->ui].revents;
            bool cut = c->holed, ok = true;
            if (c->connecting) {
                if (ur & (POLLOUT | POLLERR | POLLHUP)) {
                    int e = 0;
                    socklen_t el = sizeof e;
                    getsockopt(c->ufd, SOL_SOCKET, SO_ERROR, &e, &el);
                    ok = e == 0;
                    c->connecting = false;
                }
                ur = 0;
            }
            if (ok && !c->ceof && (cr & (POLLIN | POLLHUP | POLLERR)))
                ok = pump_in(p, c, c->cfd, &c->up, cut, &c->ceof);
            if (ok && !c->ueof && (ur & (POLLIN | POLLHUP | POLLERR)))
                ok = pump_in(p, c, c->ufd, &c->down, cut, &c->ueof);
            if (ok && !cut && !c->connecting && (cr & POLLOUT))
                ok = pump_out(p, c, c->cfd, &c->down);
            if (ok && !cut && !c->connecting && (ur & POLLOUT))
                ok = pump_out(p, c, c->ufd, &c->up);
            /* A side that closed is done once what it sent has been passed on. */
            if (!ok || (c->ceof && c->up.len == 0) || (c->ueof && c->down.len == 0))
                conn_close(c);
        }
        for (int i = 0; i < p->n; i++)
            if (fds[1 + i].revents & POLLIN)
                on_accept(p, i);
    }
    return NULL;
}

static void parse_addr(const char *s, struct sockaddr_in *sa)
{
    char host[64];
    const char *colon = strrchr(s, ':');
    if (colon == NULL || (size_t)(colon - s) >= sizeof host)
        fail_msg("netproxy: bad address %s", s);
    snprintf(host, sizeof host, "%.*s", (int)(colon - s), s);
    memset(sa, 0, sizeof *sa);
    sa->sin_family = AF_INET;
    sa->sin_port = htons((uint16_t)atoi(colon + 1));
    if (inet_pton(AF_INET, host, &sa->sin_addr) != 1)
        fail_msg("netproxy: bad address %s", s);
}

netproxy *netproxy_open(int n, const char *const *src_ip, const char *const *dst)
{
    assert_true(n > 0 && n <= NETPROXY_MAX_NODES);
    netproxy *p = calloc(1, sizeof *p);
    assert_non_null(p);
    p->n = n;
    for (int i = 0; i < n; i++) {
        if (inet_pton(AF_INET, src_ip[i], &p->src[i]) != 1)
            fail_msg("netproxy: bad source address %s", src_ip[i]);
        parse_addr(dst[i], &p->dst[i]);
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        socklen_t len = sizeof sa;
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(fd, 64) != 0 ||
            getsockname(fd, (struct sockaddr *)&sa, &len) != 0)
            fail_msg("netproxy: listen: %s", strerror(errno));
        nonblock(fd);
        p->lfd[i] = fd;
        p->port[i] = ntohs(sa.sin_port);
    }
    if (pipe(p->wake) != 0)
        fail_msg("netproxy: pipe: %s", strerror(errno));
    nonblock(p->wake[0]);
    nonblock(p->wake[1]);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    if (pthread_create(&p->thread, NULL, run, p) != 0)
        fail_msg("netproxy: thread");
    return p;
}

int netproxy_port(const netproxy *p, int i)
{
    return p->port[i];
}

/* apply, with mu held after a change of the table, wakes the thread and waits
 * until it has taken the change in. */
static void apply(netproxy *p)
{
    uint64_t want = ++p->req;
    if (write(p->wake[1], "w", 1) < 0) {
        /* the pipe is full: the thread is awake anyway */
    }
    while (p->done < want)
        pthread_cond_wait(&p->cv, &p->mu);
}

void netproxy_block(netproxy *p, int src, int dst, bool blocked)
{
    assert_true(src >= 0 && src < p->n && dst >= 0 && dst < p->n);
    pthread_mutex_lock(&p->mu);
    p->blocked[src][dst] = blocked;
    apply(p);
    pthread_mutex_unlock(&p->mu);
}

void netproxy_isolate(netproxy *p, int i, bool blocked)
{
    assert_true(i >= 0 && i < p->n);
    pthread_mutex_lock(&p->mu);
    for (int j = 0; j < p->n; j++)
        if (j != i)
            p->blocked[i][j] = p->blocked[j][i] = blocked;
    apply(p);
    pthread_mutex_unlock(&p->mu);
}

void netproxy_link_stats(netproxy *p, int src, int dst, netproxy_stats *out)
{
    pthread_mutex_lock(&p->mu);
    *out = p->stats[src][dst];
    pthread_mutex_unlock(&p->mu);
}

void netproxy_close(netproxy *p)
{
    if (p == NULL)
        return;
    pthread_mutex_lock(&p->mu);
    p->stop = true;
    if (write(p->wake[1], "s", 1) < 0) {
        /* the thread is awake anyway */
    }
    pthread_mutex_unlock(&p->mu);
    pthread_join(p->thread, NULL);
    for (int k = 0; k < NETPROXY_MAX_CONNS; k++)
        if (p->conns[k].used)
            conn_close(&p->conns[k]);
    for (int i = 0; i < p->n; i++)
        close(p->lfd[i]);
    close(p->wake[0]);
    close(p->wake[1]);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    free(p);
}
