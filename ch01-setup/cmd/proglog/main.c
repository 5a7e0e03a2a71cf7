/* main.c - proglog: serves the in-memory log as JSON over HTTP (Go: cmd/server/main.go).
 *
 * Signals: SIGINT and SIGTERM are blocked before nng starts its threads, so
 * every thread inherits the mask and only sigwait() below receives them; the
 * server then closes and the process exits 0. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal/err/err.h"
#include "internal/logger/logger.h"
#include "internal/server/http.h"
#include "internal/server/log.h"

#define PLOG_VERSION "0.1.0"

static const char usage[] =
    "usage: proglog [--addr HOST:PORT]\n"
    "\n"
    "Serves an in-memory commit log as JSON over HTTP.\n"
    "  POST / {\"record\":{\"value\":\"<base64>\"}}  -> {\"offset\":N}\n"
    "  GET  / {\"offset\":N}                     -> {\"record\":{\"value\":\"<base64>\",\"offset\":N}}\n"
    "\n"
    "options:\n"
    "  --addr HOST:PORT  address to listen on (default 127.0.0.1:8080)\n"
    "  --help            show this help and exit\n"
    "  --version         show the version and exit\n";

int main(int argc, char **argv)
{
    const char *addr = "127.0.0.1:8080";
    static const struct option opts[] = {
        {"addr", required_argument, NULL, 'a'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {0},
    };
    int c;
    static char prog[] = "proglog"; /* what getopt's own messages name, whatever path ran us */
    argv[0] = prog;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'a':
            addr = optarg;
            break;
        case 'h':
            fputs(usage, stdout);
            return plog_err_stdout_done(prog);
        case 'V':
            printf("proglog %s (ch01-setup)\n", PLOG_VERSION);
            return plog_err_stdout_done(prog);
        default:
            fputs(usage, stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "proglog: unexpected argument: %s\n%s", argv[optind], usage);
        return 2;
    }
    /* A malformed address is a usage error (exit 2) found before anything starts;
     * one that cannot be listened on (taken, no such host) is a failure (exit 1). */
    char err[256];
    if (plog_server_http_check_addr(addr, err, sizeof err) != PLOG_OK) {
        fprintf(stderr, "proglog: --addr: %s\n", err);
        return 2;
    }

    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);

    plog_logger *lg;
    if (plog_logger_new(STDERR_FILENO, PLOG_LOGGER_INFO, &lg) != PLOG_OK) {
        fputs("proglog: out of memory\n", stderr);
        return 1;
    }
    plog_server_memlog *log;
    int rv = plog_server_memlog_new(&log);
    if (rv != PLOG_OK) {
        plog_logger_log(lg, PLOG_LOGGER_ERROR, "cannot create log", "err", plog_strerror(rv), NULL);
        plog_logger_free(lg);
        return 1;
    }
    plog_server_http *srv;
    if ((rv = plog_server_http_open(addr, log, &srv, err, sizeof err)) != PLOG_OK) {
        plog_logger_log(lg, PLOG_LOGGER_ERROR, "cannot serve", "err", err, NULL);
        plog_server_memlog_free(log);
        plog_logger_free(lg);
        return 1;
    }
    plog_logger_log(lg, PLOG_LOGGER_INFO, "listening", "addr", addr, NULL);

    int sig;
    sigwait(&stop, &sig);
    plog_logger_log(lg, PLOG_LOGGER_INFO, "shutting down", "signal", sig == SIGINT ? "SIGINT" : "SIGTERM",
                    NULL);
    plog_server_http_close(srv);
    plog_logger_logf(lg, PLOG_LOGGER_INFO, "stopped", "records=%llu",
                     (unsigned long long)plog_server_memlog_len(log));
    plog_server_memlog_free(log);
    plog_logger_free(lg);
    return 0;
}
