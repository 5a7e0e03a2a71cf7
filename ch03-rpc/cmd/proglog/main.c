/* proglog - serves the log over nng REQ/REP (Go: cmd/server/main.go).
 *
 * Runs until SIGINT or SIGTERM, then answers what is in flight, closes the socket
 * and closes the log cleanly. Logs to stderr, one key=value event per line.
 * Exit status: 0 clean shutdown, 1 could not open the log or listen, 2 usage.
 *
 * SIGHUP reloads what can change without a restart: the log level, from
 * --log-level-file. Connections and parked consumers are not touched; the reload
 * is logged, and a bad file keeps the level in force and says why. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/resource.h>

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
               "  --sync-interval-ms N    for --sync interval: how long a record nobody waits\n"
               "                          for may stay unsynced (default 10, at most 60000)\n"
               "  --max-store-bytes N     segment store size before rolling (default 1 GiB)\n"
               "  --max-index-bytes N     segment index size before rolling (default 10 MiB,\n"
               "                          at least 12: one entry)\n"
               "  --initial-offset N      first offset of a new log (default 0, at most\n"
               "                          18446744073709551614: the log's last offset; once\n"
               "                          it is used, produces are RESOURCE_EXHAUSTED)\n"
               "  --max-msg-bytes N       largest request accepted (default 4 MiB, at most 1 GiB)\n"
               "  --workers N             concurrent requests (nng contexts, default 256,\n"
               "                          at most 4096)\n"
               "  --max-wait-ms N         longest ConsumeStream long poll (default 30000,\n"
               "                          at most 2147483647)\n"
               "  --max-parked-per-client N  ConsumeStream polls one client may park\n"
               "                          (default 32, at most 4096); more are\n"
               "                          RESOURCE_EXHAUSTED\n"
               "  --max-inflight-bytes N  memory for decoded requests in flight (default\n"
               "                          256 MiB, at least 2 x --max-msg-bytes); beyond it\n"
               "                          RESOURCE_EXHAUSTED\n"
               "  (every N is a whole number, at least 1 unless said otherwise)\n"
               "  --log-level LEVEL       debug | info | warn | error (default info)\n"
               "  --log-level-file F      a file holding the level (one word): read at start,\n"
               "                          where it wins over --log-level, and on SIGHUP\n"
               "  --help, --version\n\n"
               "Signals: SIGINT/SIGTERM stop; SIGHUP reloads --log-level-file.\n"
               "Exit status: 0 clean shutdown (SIGINT/SIGTERM), 1 failure, 2 usage.\n");
}

/* read_level reads the one word of a level file (blanks and a newline around it
 * are fine). 0, or -1 with why (size bytes) naming the file and the reason. */
static int read_level(const char *path, plog_logger_level *out, char *why, size_t size)
{
    char buf[64] = "";
    FILE *f = plog_fopen_read(path, why, size); /* a FIFO nobody writes to must not block the reload */
    if (f == NULL)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    int bad = ferror(f) ? errno : 0;
    fclose(f);
    if (bad != 0) {
        snprintf(why, size, "%s: %s", path, strerror(bad));
        return -1;
    }
    buf[n] = '\0';
    char *w = buf + strspn(buf, " \t\r\n");
    w[strcspn(w, " \t\r\n")] = '\0';
    if (plog_logger_parse_level(w, out) != PLOG_OK) {
        snprintf(why, size, "%s: want debug, info, warn or error, got \"%.20s\"", path, w);
        return -1;
    }
    return 0;
}

/* reload_level applies the level file on SIGHUP. The reload line is written under
 * whichever of the old and new levels shows it, so lowering the level to warn still
 * leaves a trace of the change that did it. */
static void reload_level(plog_logger *lg, const char *path)
{
    char why[256];
    plog_logger_level old = plog_logger_get_level(lg), level = old;
    if (path != NULL && read_level(path, &level, why, sizeof why) != 0)
        plog_logger_log(lg, PLOG_LOGGER_ERROR, "reload failed, keeping the old log level", "file", path,
                        "err", why, "log_level", plog_logger_level_name(old), NULL);
    for (int pass = 0; pass < 2; pass++) {
        /* pass 0 before the change (when it raises the level), pass 1 after */
        if (pass == 1)
            plog_logger_set_level(lg, level);
        if ((pass == 0) == (level > old))
            plog_logger_log(lg, PLOG_LOGGER_INFO, "reloaded", "log_level", plog_logger_level_name(level),
                            "was", plog_logger_level_name(old), NULL);
    }
}

/* raise_nofile lifts the descriptor limit to its hard limit (as Go's runtime does):
 * the log holds two per segment (its store and its index) and every connection
 * one, and under the usual soft limit of 1024 a data directory of some 500
 * segments failed to open ("Too many open files") while the hard limit allowed it. */
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
    /* nng allocates a message's buffer as soon as its length arrives, and glibc
     * raises its mmap threshold to the size of each mmapped block freed: after one
     * 8 MiB message, the next ones came from its heap, whose pages stay resident.
     * Clients announcing large messages and sending nothing piled up memory (an
     * audit: 1.5 GB). With the threshold fixed, blocks of 1 MiB or more are always
     * mmapped: untouched pages cost nothing, and a freed block goes back at once. */
    mallopt(M_MMAP_THRESHOLD, 1 << 20);
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
        {"log-level", required_argument, NULL, 'L'},
        {"log-level-file", required_argument, NULL, 'F'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    const char *addr = "tcp://127.0.0.1:8400", *dir = "./data", *level_file = NULL;
    plog_logger_level level = PLOG_LOGGER_INFO;
    char why[256] = "";
    plog_log_config lc = {.sync = PLOG_SYNC_INTERVAL};
    plog_server_config sc = {0};
    uint64_t v;
    int c, li = 0;
    static char prog[] = "proglog"; /* what getopt's own messages name, whatever path ran us */
    argv[0] = prog;
    while ((c = getopt_long(argc, argv, "", opts, &li)) != -1) {
        char name[32];
        snprintf(name, sizeof name, "--%s", opts[li].name);
        if (c != '?' && optarg != NULL && strncmp(optarg, "--", 2) == 0) { /* "--data-dir --sync never" */
            fprintf(stderr, "proglog: %s: missing value (the next word is the flag %s)\n", name, optarg);
            return 2;
        }
        switch (c) {
        case 'a':
            addr = optarg;
            break;
        case 'd':
            if (optarg[0] == '\0') {
                fprintf(stderr, "proglog: --data-dir: want a directory, not an empty string\n");
                return 2;
            }
            dir = optarg;
            break;
        case 'L':
            if (plog_logger_parse_level(optarg, &level) != PLOG_OK) {
                fprintf(stderr, "proglog: --log-level: want debug, info, warn or error: %s\n", optarg);
                return 2;
            }
            break;
        case 'F':
            level_file = optarg;
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
            return plog_err_stdout_done("proglog");
        case 'V':
            printf("proglog %s\n", VERSION);
            return plog_err_stdout_done("proglog");
        case '?':
            usage(stderr);
            return 2;
        default:
            if (plog_config_flag_server("proglog", name, optarg, &v) != 0)
                return 2;
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
    static const char *const schemes[] = {"tcp", NULL};
    if (plog_config_flag_url("proglog", "--addr", addr, schemes) != PLOG_OK)
        return 2;
    if (plog_server_config_check(&sc, why, sizeof why) != PLOG_OK) {
        fprintf(stderr, "proglog: --max-msg-bytes, --max-inflight-bytes: %s\n", why);
        return 2;
    }
    if (level_file != NULL && read_level(level_file, &level, why, sizeof why) != 0) {
        fprintf(stderr, "proglog: --log-level-file %s\n", why);
        return 2;
    }

    /* Block the signals before any thread exists, so every thread inherits the
     * mask and only sigwait below sees them. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    plog_logger *lg;
    if (plog_logger_new(STDERR_FILENO, level, &lg) != PLOG_OK) {
        fputs("proglog: out of memory\n", stderr);
        return 1;
    }
    /* What the log library has to say (recovery, a failed fsync) goes to the same log. */
    lc.report.fn = plog_logger_report;
    lc.report.arg = lg;
    raise_nofile(lg);
    plog_log *log;
    int rv = plog_log_open(dir, &lc, &log);
    if (rv != PLOG_OK) {
        /* the log has logged why (plog_log_open's report) */
        plog_logger_free(lg);
        return 1;
    }
    sc.addr = addr;
    sc.sync = lc.sync;
    sc.logger = lg;
    plog_server *srv;
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
    while (sigwait(&set, &sig) == 0 && sig == SIGHUP)
        reload_level(lg, level_file);
    plog_logger_log(lg, PLOG_LOGGER_INFO, "shutting down", "signal", sig == SIGINT ? "SIGINT" : "SIGTERM",
                    NULL);
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
