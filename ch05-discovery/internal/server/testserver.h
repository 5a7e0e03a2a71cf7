/* testserver.h - test-only helpers for the chapter's tests (defined in
 * testserver_testlib.c, the test library):
 * run build/proglog as a real process on a free 127.0.0.1 port with a fresh data
 * directory, stop it, restart it on the same directory. Include after cmocka.h.
 *
 * ch04: by default the server runs as in ch03, on tcp:// with
 * --insecure-allow-plaintext, so the earlier chapters' tests keep testing the RPC
 * layer alone. With .tls set it serves tls+tcp:// with the test certificates of
 * $PLOG_BUILD/certs (made by common/certs/gencert), the book's model.conf and a
 * policy (.policy, default the book's policy.csv); tserver_client_tls makes the
 * matching client configs. */
#ifndef PLOG_TESTSERVER_H
#define PLOG_TESTSERVER_H

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/supplemental/tls/tls.h>

#include "internal/tls/config.h"
#include "testing/testing.h"

struct tserver {
    plog_test_proc proc;
    char dir[64];
    char addr[64];
    int port;
    const char *extra[8]; /* more proglog flags, NULL-terminated */
    bool running;
    bool tls;           /* mutual TLS + ACL instead of plain tcp:// */
    const char *policy; /* with tls: the ACL policy file (NULL: the book's) */
};

/* assert_status_ok fails the test unless expr is PLOG_STATUS_OK, naming the
 * status (internal/rpc/status.h). */
#define assert_status_ok(expr)                                              \
    do {                                                                    \
        int rv_ = (expr);                                                   \
        if (rv_ != PLOG_STATUS_OK)                                          \
            fail_msg("%s: %s (%d)", #expr, plog_rpc_status_name(rv_), rv_); \
    } while (0)

/* tserver_certs makes the test certificates (once per process) into
 * $PLOG_BUILD/certs and returns that directory. */
const char *tserver_certs(void);

/* tserver_cert returns certs/<name> in one of 8 rotating static buffers. */
const char *tserver_cert(const char *name);

/* tserver_client_tls makes a client config for the identity whose files are
 * <who>-client.pem and <who>-client-key.pem ("root", "nobody", "reader", "expired",
 * ...; NULL: no client certificate), verifying the server as 127.0.0.1. The caller
 * frees it with nng_tls_config_free (a client keeps its own reference). */
nng_tls_config *tserver_client_tls(const char *who);

/* tserver_client_as opens a client of s with who's certificate; fails the test
 * if it cannot. The caller closes it (plog_client_close). */
struct plog_client *tserver_client_as(const struct tserver *s,
                                      const char *who); /* internal/client/client.h */

/* tserver_start runs proglog (again, on the same port and directory when s was
 * started before) and waits until it serves. */
void tserver_start(struct tserver *s);

/* tserver_stop sends sig and returns whether it exited with status 0 (for
 * SIGTERM/SIGINT) within 10 s; SIGKILL counts as stopped. */
bool tserver_stop(struct tserver *s, int sig);

/* tserver_fini stops the server (SIGKILL if needed) and removes its files. */
void tserver_fini(struct tserver *s);

/* tserver_cpu_ticks returns the server's user+system CPU time in clock ticks. */
long tserver_cpu_ticks(const struct tserver *s);

/* A consumer on a thread of its own that follows c from offset from and takes
 * one record: code is its status, off/value/got_ms what it got and when. */
struct tserver_follower {
    struct plog_client *c; /* borrowed */
    uint64_t from;
    uint32_t wait_ms; /* the long poll's wait */
    pthread_t th;
    int code; /* -1 until the follower is done */
    uint64_t off;
    int64_t got_ms;
    char value[32];
};

/* tserver_follow_start starts fl's thread; tserver_follow_join waits for it. */
void tserver_follow_start(struct tserver_follower *fl);
void tserver_follow_join(struct tserver_follower *fl);

#endif
