/* testserver.h - test-only helpers for the chapter's tests (defined in
 * testserver_testlib.c, the test library):
 * run build/proglog as a real process on a free 127.0.0.1 port with a fresh data
 * directory, stop it, restart it on the same directory. Include after cmocka.h. */
#ifndef PLOG_TESTSERVER_H
#define PLOG_TESTSERVER_H

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testing/testing.h"

struct tserver {
    plog_test_proc proc;
    char dir[64];
    char addr[64];
    int port;
    const char *extra[8]; /* more proglog flags, NULL-terminated */
    bool running;
};

/* assert_status_ok fails the test unless expr is PLOG_STATUS_OK, naming the
 * status (internal/rpc/status.h). */
#define assert_status_ok(expr)                                              \
    do {                                                                    \
        int rv_ = (expr);                                                   \
        if (rv_ != PLOG_STATUS_OK)                                          \
            fail_msg("%s: %s (%d)", #expr, plog_rpc_status_name(rv_), rv_); \
    } while (0)

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
