/* main.c - proglog: serves the persistent log as JSON over HTTP (Go: cmd/server/main.go).
 *
 * Signals: SIGINT and SIGTERM are blocked before nng starts its threads, so
 * every thread inherits the mask and only sigwait() below receives them; the
 * server then stops, the log is closed (flushed and fsynced) and the process
 * exits 0. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/resource.h>

#include "internal/err/err.h"
#include "internal/logger/logger.h"
#include "internal/log/log.h"
#include "internal/server/http.h"

#define PLOG_VERSION "0.2.0"

static const char usage[] =
    "usage: proglog [--addr HOST:PORT] [--data-dir DIR] [--sync never|always|interval]\n"
    "               [--sync-interval-ms N] [--max-store-bytes N] [--max-index-bytes N]\n"
    "\n"
    "Serves a persistent commit log as JSON over HTTP.\n"
    "  POST / {\"record\":{\"value\":\"<base64>\"}}  -> {\"offset\":N}\n"
    "  GET  / {\"offset\":N}                     -> {\"record\":{\"value\":\"<base64>\",\"offset\":N}}\n"
    "\n"
    "options:\n"
    "  --addr HOST:PORT       address to listen on (default 127.0.0.1:8080)\n"
    "  --data-dir DIR         directory of the log's segments (default ./data)\n"
    "  --sync POLICY          when appends reach the disk before they are answered:\n"
    "                         never (default: the kernel has them; survives a crash of\n"
    "                         proglog, not of the machine), always (fsync each append),\n"
    "                         interval (group commit: an append is answered once an\n"
    "                         fsync covers it, one fsync for the appends waiting)\n"
    "  --sync-interval-ms N   for --sync interval: how long a record nobody waits for\n"
    "                         may stay unsynced (default 10, 1..60000)\n"
    "  --max-store-bytes N    roll to a new segment when its store reaches N bytes\n"
    "                         (default 1073741824)\n"
    "  --max-index-bytes N    ... or its index reaches N bytes (default 10485760)\n"
    "  --help                 show this help and exit\n"
    "  --version              show the version and exit\n";

/* parse_u64 takes only decimal digits: strtoull alone skips leading blanks and
 * takes a sign, so " -1" would read as 2^64-1 (s[0] is no '-' there) and " 5" or
 * "+5" as 5. */
static int parse_u64(const char *flag, const char *s, uint64_t min, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || s[0] < '0' || s[0] > '9' || v < min) {
        fprintf(stderr, "proglog: %s wants a whole number >= %llu, not \"%s\"\n", flag,
                (unsigned long long)min, s);
        return -1;
    }
    *out = v;
    return 0;
}

/* raise_nofile lifts the descriptor limit to its hard limit (as Go's runtime does):
 * the log holds two per segment (its store and its index), and under the usual soft
 * limit of 1024 a data directory of some 500 segments failed to open ("Too many
 * open files") while the hard limit allowed it. */
static void raise_nofile(plog_logger *lg)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= rl.rlim_max)
        return;
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
        plog_logger_log(lg, PLOG_LOGGER_WARN, "cannot raise the descriptor limit", "err", strerror(errno),
                        NULL);
}

int main(int argc, char **argv)
{
    const char *addr = "127.0.0.1:8080", *dir = "./data";
    plog_log_config cfg = {.sync = PLOG_SYNC_NEVER};
    uint64_t v;
    enum { O_ADDR = 1, O_DIR, O_SYNC, O_SYNC_MS, O_MAX_STORE, O_MAX_INDEX, O_HELP, O_VERSION };
    static const struct option opts[] = {
        {"addr", required_argument, NULL, O_ADDR},
        {"data-dir", required_argument, NULL, O_DIR},
        {"sync", required_argument, NULL, O_SYNC},
        {"sync-interval-ms", required_argument, NULL, O_SYNC_MS},
        {"max-store-bytes", required_argument, NULL, O_MAX_STORE},
        {"max-index-bytes", required_argument, NULL, O_MAX_INDEX},
        {"help", no_argument, NULL, O_HELP},
        {"version", no_argument, NULL, O_VERSION},
        {0},
    };
    int c;
    static char prog[] = "proglog"; /* what getopt's own messages name, whatever path ran us */
    argv[0] = prog;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case O_ADDR:
            addr = optarg;
            break;
        case O_DIR:
            if (optarg[0] == '\0') {
                fprintf(stderr, "proglog: --data-dir wants a directory, not \"\"\n");
                return 2;
            }
            dir = optarg;
            break;
        case O_SYNC:
            if (strcmp(optarg, "never") == 0)
                cfg.sync = PLOG_SYNC_NEVER;
            else if (strcmp(optarg, "always") == 0)
                cfg.sync = PLOG_SYNC_ALWAYS;
            else if (strcmp(optarg, "interval") == 0)
                cfg.sync = PLOG_SYNC_INTERVAL;
            else {
                fprintf(stderr, "proglog: --sync wants never, always or interval, not \"%s\"\n", optarg);
                return 2;
            }
            break;
        case O_SYNC_MS:
            if (parse_u64("--sync-interval-ms", optarg, 1, &v) != 0)
                return 2;
            if (v > 60000) {
                fprintf(stderr, "proglog: --sync-interval-ms wants at most 60000, not \"%s\"\n", optarg);
                return 2;
            }
            cfg.sync_interval_ms = (uint32_t)v;
            break;
        case O_MAX_STORE:
            if (parse_u64("--max-store-bytes", optarg, 1, &cfg.segment.max_store_bytes) != 0)
                return 2;
            break;
        case O_MAX_INDEX:
            if (parse_u64("--max-index-bytes", optarg, 12, &cfg.segment.max_index_bytes) != 0)
                return 2;
            break;
        case O_HELP:
            fputs(usage, stdout);
            return plog_err_stdout_done("proglog");
        case O_VERSION:
            printf("proglog %s (ch02-log)\n", PLOG_VERSION);
            return plog_err_stdout_done("proglog");
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
    int status = 1;
    /* What the log library has to say (recovery, a failed fsync) goes to the same log. */
    cfg.report.fn = plog_logger_report;
    cfg.report.arg = lg;
    raise_nofile(lg);
    plog_log *log;
    int rv = plog_log_open(dir, &cfg, &log);
    if (rv != PLOG_OK) {
        /* the log has logged why (plog_log_open's report) */
        goto out;
    }
    char lowest[24], next_off[24];
    snprintf(lowest, sizeof lowest, "%llu", (unsigned long long)plog_log_lowest_offset(log));
    snprintf(next_off, sizeof next_off, "%llu", (unsigned long long)plog_log_next_offset(log));
    plog_logger_log(lg, PLOG_LOGGER_INFO, "log opened", "dir", dir, "lowest", lowest, "next", next_off, NULL);

    plog_server_http *srv;
    if ((rv = plog_server_http_open(addr, log, &srv, err, sizeof err)) != PLOG_OK) {
        plog_logger_log(lg, PLOG_LOGGER_ERROR, "cannot serve", "err", err, NULL);
        plog_log_close(log);
        goto out;
    }
    plog_logger_log(lg, PLOG_LOGGER_INFO, "listening", "addr", addr, NULL);

    int sig;
    sigwait(&stop, &sig);
    plog_logger_log(lg, PLOG_LOGGER_INFO, "shutting down", "signal", sig == SIGINT ? "SIGINT" : "SIGTERM",
                    NULL);
    plog_server_http_close(srv);
    uint64_t next = plog_log_next_offset(log);
    if ((rv = plog_log_close(log)) != PLOG_OK) {
        plog_logger_log(lg, PLOG_LOGGER_ERROR, "closing log failed", "err", plog_strerror(rv), NULL);
        goto out;
    }
    plog_logger_logf(lg, PLOG_LOGGER_INFO, "stopped", "next_offset=%llu", (unsigned long long)next);
    status = 0;
out:
    plog_logger_free(lg);
    return status;
}
