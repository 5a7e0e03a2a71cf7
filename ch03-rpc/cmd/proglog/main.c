/* proglog - serves the log over nng REQ/REP (Go: cmd/server/main.go).
 *
 * Runs until SIGINT or SIGTERM, then answers what is in flight, closes the socket
 * and closes the log cleanly. Logs to stderr, one key=value event per line.
 * Exit status: 0 clean shutdown, 1 could not open the log or listen, 2 usage. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal/config/flag.h"
#include "internal/err/err.h"
#include "internal/log/log.h"
#include "internal/logger/logger.h"
#include "internal/server/server.h"

#define VERSION "0.3.0 (ch03-rpc)"

static void usage(FILE *f)
{
    fprintf(f, "usage: proglog [options]\n"
               "Serves the commit log over nng request/reply (protobuf envelopes).\n\n"
               "  --addr URL              listen address (default tcp://127.0.0.1:8400)\n"
               "  --data-dir DIR          where the segments live (default ./data)\n"
               "  --sync POLICY           never | always | interval (default interval):\n"
               "                          when appends are fsynced; a produce is answered\n"
               "                          only once it is as durable as the policy says\n"
               "  --sync-interval-ms N    group-commit period for --sync interval (default 10)\n"
               "  --max-store-bytes N     segment store size before rolling (default 1 GiB)\n"
               "  --max-index-bytes N     segment index size before rolling (default 10 MiB)\n"
               "  --initial-offset N      first offset of a new log (default 0)\n"
               "  --max-msg-bytes N       largest request accepted (default 4 MiB)\n"
               "  --workers N             concurrent requests (nng contexts, default 256)\n"
               "  --max-wait-ms N         longest ConsumeStream long poll (default 30000)\n"
               "  --max-parked-per-client N  ConsumeStream polls one client may park\n"
               "                          (default 32); more are RESOURCE_EXHAUSTED\n"
               "  --max-inflight-bytes N  memory for decoded requests in flight (default\n"
               "                          256 MiB, at least 2 x --max-msg-bytes); beyond it\n"
               "                          RESOURCE_EXHAUSTED\n"
               "  --help, --version\n\n"
               "Exit status: 0 clean shutdown (SIGINT/SIGTERM), 1 failure, 2 usage.\n");
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"addr", required_argument, NULL, 'a'},
        {"data-dir", required_argument, NULL, 'd'},
        {"sync", required_argument, NULL, 's'},
        {"sync-interval-ms", required_argument, NULL, 'i'},
        {"max-store-bytes", required_argument, NULL, 'S'},
        {"max-index-bytes", required_argument, NULL, 'I'},
        {"initial-offset", required_argument, NULL, 'o'},
        {"max-msg-bytes", required_argument, NULL, 'm'},
        {"workers", required_argument, NULL, 'w'},
        {"max-wait-ms", required_argument, NULL, 'W'},
        {"max-parked-per-client", required_argument, NULL, 'p'},
        {"max-inflight-bytes", required_argument, NULL, 'b'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    const char *addr = "tcp://127.0.0.1:8400", *dir = "./data";
    plog_log_config lc = {.sync = PLOG_SYNC_INTERVAL};
    plog_server_config sc = {0};
    uint64_t v;
    int c, li = 0;
    while ((c = getopt_long(argc, argv, "", opts, &li)) != -1) {
        char name[32];
        snprintf(name, sizeof name, "--%s", opts[li].name);
        switch (c) {
        case 'a':
            addr = optarg;
            break;
        case 'd':
            dir = optarg;
            break;
        case 's':
            if (strcmp(optarg, "never") == 0)
                lc.sync = PLOG_SYNC_NEVER;
            else if (strcmp(optarg, "always") == 0)
                lc.sync = PLOG_SYNC_ALWAYS;
            else if (strcmp(optarg, "interval") == 0)
                lc.sync = PLOG_SYNC_INTERVAL;
            else {
                fprintf(stderr, "proglog: --sync: want never, always or interval: %s\n", optarg);
                return 2;
            }
            break;
        case 'h':
            usage(stdout);
            return 0;
        case 'V':
            printf("proglog %s\n", VERSION);
            return 0;
        case '?':
            usage(stderr);
            return 2;
        default:
            if (plog_config_flag_u64("proglog", name, optarg, &v) != 0)
                return 2;
            if ((c == 'i' || c == 'w' || c == 'W' || c == 'p') && v > UINT32_MAX) {
                fprintf(stderr, "proglog: %s: too large: %s\n", name, optarg);
                return 2;
            }
            if (c == 'i')
                lc.sync_interval_ms = (uint32_t)v;
            else if (c == 'S')
                lc.segment.max_store_bytes = v;
            else if (c == 'I')
                lc.segment.max_index_bytes = v;
            else if (c == 'o')
                lc.segment.initial_offset = v;
            else if (c == 'm')
                sc.max_msg_bytes = (size_t)v;
            else if (c == 'w')
                sc.workers = (unsigned)v;
            else if (c == 'W')
                sc.max_wait_ms = (uint32_t)v;
            else if (c == 'p')
                sc.max_parked_per_client = (unsigned)v;
            else if (c == 'b')
                sc.max_inflight_bytes = (size_t)v;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "proglog: unexpected argument: %s\n", argv[optind]);
        usage(stderr);
        return 2;
    }

    /* Block the signals before any thread exists, so every thread inherits the
     * mask and only sigwait below sees them. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    plog_logger *lg;
    if (plog_logger_new(STDERR_FILENO, PLOG_LOGGER_INFO, &lg) != PLOG_OK) {
        fputs("proglog: out of memory\n", stderr);
        return 1;
    }
    plog_log *log;
    int rv = plog_log_open(dir, &lc, &log);
    if (rv != PLOG_OK) {
        plog_logger_log(lg, PLOG_LOGGER_ERROR, "cannot open the log", "data_dir", dir, "err", plog_strerror(rv),
                        NULL);
        plog_logger_free(lg);
        return 1;
    }
    sc.addr = addr;
    sc.sync = lc.sync;
    sc.logger = lg;
    plog_server *srv;
    char why[256] = "";
    if ((rv = plog_server_open(log, &sc, &srv, why, sizeof why)) != PLOG_OK) {
        plog_logger_log(lg, PLOG_LOGGER_ERROR, "cannot serve", "addr", addr, "err", why, NULL);
        plog_log_close(log);
        plog_logger_free(lg);
        return 1;
    }
    static const char *policies[] = {"never", "always", "interval"};
    char next[24];
    snprintf(next, sizeof next, "%" PRIu64, plog_log_next_offset(log));
    plog_logger_log(lg, PLOG_LOGGER_INFO, "serving", "addr", addr, "data_dir", dir, "sync", policies[lc.sync],
                    "next_offset", next, "version", VERSION, NULL);

    int sig = 0;
    sigwait(&set, &sig);
    plog_logger_log(lg, PLOG_LOGGER_INFO, "shutting down", "signal", sig == SIGINT ? "SIGINT" : "SIGTERM", NULL);
    plog_server_close(srv);
    rv = plog_log_close(log);
    if (rv != PLOG_OK) {
        plog_logger_log(lg, PLOG_LOGGER_ERROR, "closing the log failed", "err", plog_strerror(rv), NULL);
        plog_logger_free(lg);
        return 1;
    }
    plog_logger_log(lg, PLOG_LOGGER_INFO, "stopped", NULL);
    plog_logger_free(lg);
    return 0;
}
