/* proglog - serves the log over nng REQ/REP (Go: cmd/server/main.go).
 *
 * Runs until SIGINT or SIGTERM, then answers what is in flight, closes the socket
 * and closes the log cleanly. Logs to stderr, one key=value event per line.
 * Exit status: 0 clean shutdown, 1 could not open the log or listen, 2 usage.
 *
 * ch04: mutual TLS and the ACL are on unless the operator explicitly asks for plain
 * text (--insecure-allow-plaintext with a tcp:// address): a tls+tcp:// address
 * needs the three TLS files and a policy; a tcp:// address without the flag is
 * refused. --metrics-addr serves Prometheus metrics; --log-level filters the log.
 *
 * SIGHUP reloads what can change without a restart: the ACL policy (and model), the
 * server's certificate, key and CA for connections accepted from then on, and the
 * log level from --log-level-file. Open connections and parked consumers are not
 * touched. One line says what was reloaded; a file that does not load leaves what it
 * would have replaced in force, with an error line naming the file and the reason. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdbool.h>
#include <string.h>
#include <unistd.h>

#include <dirent.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include "internal/auth/authorizer.h"
#include "internal/config/flag.h"
#include "internal/err/err.h"
#include "internal/log/log.h"
#include "internal/logger/logger.h"
#include "internal/metrics/http.h"
#include "internal/metrics/metrics.h"
#include "internal/server/server.h"
#include "internal/tls/config.h"

#define VERSION "0.4.0 (ch04-security)"

static void usage(FILE *f)
{
    fprintf(f, "usage: proglog [options]\n"
               "Serves the commit log over nng request/reply (protobuf envelopes).\n\n"
               "  --addr URL              listen address (default tls+tcp://127.0.0.1:8400)\n"
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
               "  --max-connections N     TLS connections at once, handshaking ones included\n"
               "                          (default 4096, at most 1048576); beyond it a new\n"
               "                          connection is closed\n"
               "  --handshake-timeout-ms N  a TLS handshake must finish within it (default 5000,\n"
               "                          at most 2147483647)\n"
               "  (every N is a whole number, at least 1 unless said otherwise)\n\n"
               "Security (a tls+tcp:// address needs all of the first four):\n"
               "  --server-tls-cert-file F   the server's certificate (PEM)\n"
               "  --server-tls-key-file F    its private key (PEM, unencrypted)\n"
               "  --server-tls-ca-file F     the CA that client certificates must chain to\n"
               "  --acl-policy-file F        who may do what: lines \"p, SUBJECT, *, ACTION\"\n"
               "                             (subject = client certificate CN; action =\n"
               "                             produce | consume; \"*\" matches anything)\n"
               "  --acl-model-file F         the Casbin model, checked to be the book's (optional)\n"
               "  --insecure-allow-plaintext serve a tcp:// address: no encryption, no\n"
               "                             client authentication, no ACL. Local experiments only\n\n"
               "Observability:\n"
               "  --metrics-addr HOST:PORT   serve Prometheus metrics at http://HOST:PORT/metrics\n"
               "  --log-level LEVEL          debug | info | warn | error (default info; one\n"
               "                             line per request at info)\n"
               "  --log-level-file F         a file holding the level (one word): read at\n"
               "                             start, where it wins over --log-level, and on SIGHUP\n"
               "  --help, --version\n\n"
               "Signals: SIGINT/SIGTERM stop; SIGHUP reloads the ACL policy and model, the\n"
               "server certificate, key and CA (for new connections) and --log-level-file.\n"
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

/* check_security enforces the flag rules of the header comment; 0 when they hold. */
static int check_security(const char *addr, const char *cert, const char *key, const char *ca,
                          const char *model, const char *policy, bool plaintext)
{
    bool tls = plog_tls_url_is_tls(addr);
    bool any_tls = cert != NULL || key != NULL || ca != NULL;
    bool any_acl = model != NULL || policy != NULL;
    if (plaintext) {
        if (tls || any_tls || any_acl) {
            fprintf(stderr, "proglog: --insecure-allow-plaintext serves a tcp:// address "
                            "without TLS or ACL flags\n");
            return -1;
        }
        return 0;
    }
    if (!tls) {
        fprintf(stderr,
                "proglog: refusing to serve %s in plain text: no encryption, no client "
                "authentication. Use a tls+tcp:// address with the TLS and ACL flags, "
                "or --insecure-allow-plaintext for a local experiment\n",
                addr);
        return -1;
    }
    if (cert == NULL || key == NULL || ca == NULL || policy == NULL) {
        fprintf(stderr,
                "proglog: %s needs --server-tls-cert-file, --server-tls-key-file, "
                "--server-tls-ca-file and --acl-policy-file\n",
                addr);
        return -1;
    }
    return 0;
}

/* The TLS config and the ACL: made before the log opens, so a bad file fails fast. */
struct security {
    nng_tls_config *tls;
    plog_auth *acl;
};

/* on_tls_failure logs a refused handshake: a refused client never becomes a
 * connection, so this line is the only trace of it. */
static void on_tls_failure(void *arg, const char *remote, const char *reason)
{
    plog_logger_log(arg, PLOG_LOGGER_WARN, "tls_handshake_failed", "remote", remote, "err", reason, NULL);
}

/* warn_unmatched says which policy rules can never allow anything here: a typo
 * such as "Consume" loads, and would otherwise only show as denials. A policy
 * with no rule at all (an emptied file) denies every client: said too. */
static void warn_unmatched(plog_logger *lg, const plog_auth *acl, const char *policy)
{
    static const char *const actions[] = {PLOG_AUTH_PRODUCE, PLOG_AUTH_CONSUME};
    char first[PLOG_AUTH_ERRMSG_SIZE], count[24];
    if (plog_auth_rules(acl) == 0) {
        plog_logger_log(lg, PLOG_LOGGER_WARN, "the policy has no rules: every request is denied", "file",
                        policy, NULL);
        return;
    }
    size_t n = plog_auth_unmatched(acl, actions, sizeof actions / sizeof actions[0], first, sizeof first);
    if (n == 0)
        return;
    snprintf(count, sizeof count, "%zu", n);
    plog_logger_log(lg, PLOG_LOGGER_WARN, "policy rules that never match", "file", policy, "rules", count,
                    "first", first, "matched", "object * and action produce, consume or *", NULL);
}

static int security_open(struct security *sec, const char *cert, const char *key, const char *ca,
                         const char *model, const char *policy, plog_logger *lg, char *why, size_t size)
{
    if (plog_tls_config_server(cert, key, ca, &sec->tls, why, size) != PLOG_OK)
        return -1;
    plog_tls_config_on_failure(sec->tls, on_tls_failure, lg);
    if (plog_auth_new(model, policy, &sec->acl, why, size) != PLOG_OK) {
        nng_tls_config_free(sec->tls);
        sec->tls = NULL;
        return -1;
    }
    warn_unmatched(lg, sec->acl, policy);
    return 0;
}

/* What SIGHUP reloads, and from where. */
struct reload {
    plog_logger *lg;
    const char *level_file; /* NULL: the level stays */
    struct security *sec;   /* plain text: NULL */
    const char *cert, *key, *ca, *model, *policy;
};

/* blamed: the file of r's that err names (the longest such path), else dflt. A key,
 * a CA or a model that fails names itself in err, and the error line's file= must
 * not say the certificate or the policy. */
static const char *blamed(const struct reload *r, const char *err, const char *dflt)
{
    const char *files[] = {r->cert, r->key, r->ca, r->model, r->policy}, *best = dflt;
    size_t best_len = 0;
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        if (files[i] != NULL && strlen(files[i]) > best_len && strstr(err, files[i]) != NULL) {
            best = files[i];
            best_len = strlen(files[i]);
        }
    }
    return best;
}

/* reload_all runs on SIGHUP, in main's thread. Each part is all or nothing: the
 * ACL swaps its rules whole (plog_auth_reload), the TLS config its OpenSSL context
 * (plog_tls_config_server_reload), the logger its level. The summary line is written
 * under whichever of the old and new levels shows it, so lowering the level to warn
 * still leaves a trace of the change that did it. */
static void reload_all(const struct reload *r)
{
    char why[PLOG_AUTH_ERRMSG_SIZE], rules[24] = "0";
    const char *acl = "off", *tls = "off";
    if (r->sec != NULL) {
        acl = "reloaded";
        if (plog_auth_reload(r->sec->acl, r->model, r->policy, why, sizeof why) != PLOG_OK) {
            acl = "kept";
            plog_logger_log(r->lg, PLOG_LOGGER_ERROR, "reload failed, keeping the old ACL", "file",
                            blamed(r, why, r->policy), "err", why, NULL);
        } else {
            warn_unmatched(r->lg, r->sec->acl, r->policy);
        }
        snprintf(rules, sizeof rules, "%zu", plog_auth_rules(r->sec->acl));
        tls = "reloaded";
        if (plog_tls_config_server_reload(r->sec->tls, r->cert, r->key, r->ca, why, sizeof why) != PLOG_OK) {
            tls = "kept";
            plog_logger_log(r->lg, PLOG_LOGGER_ERROR, "reload failed, keeping the old certificates", "file",
                            blamed(r, why, r->cert), "err", why, NULL);
        }
    }
    plog_logger_level old = plog_logger_get_level(r->lg), level = old;
    if (r->level_file != NULL && read_level(r->level_file, &level, why, sizeof why) != 0)
        plog_logger_log(r->lg, PLOG_LOGGER_ERROR, "reload failed, keeping the old log level", "file",
                        r->level_file, "err", why, "log_level", plog_logger_level_name(old), NULL);
    for (int pass = 0; pass < 2; pass++) {
        /* pass 0 before the change (when it raises the level), pass 1 after */
        if (pass == 1)
            plog_logger_set_level(r->lg, level);
        if ((pass == 0) == (level > old))
            plog_logger_log(r->lg, PLOG_LOGGER_INFO, "reloaded", "log_level", plog_logger_level_name(level),
                            "was", plog_logger_level_name(old), "acl", acl, "acl_rules", rules, "tls", tls,
                            NULL);
    }
}

static void security_close(struct security *sec)
{
    if (sec->tls != NULL) {
        /* The listener is gone; connections in their last moments may still
         * report a failure, so the hook goes before the log it writes to. */
        plog_tls_config_on_failure(sec->tls, NULL, NULL);
        nng_tls_config_free(sec->tls);
    }
    plog_auth_free(sec->acl);
}

/* Metrics: the registry, its endpoint, and the log gauges read at each scrape. */
struct observe {
    const char *dir;
    plog_log *log;
    plog_metrics *metrics;
    plog_metrics_http *http;
};

static int64_t gauge_lowest(void *arg)
{
    return (int64_t)plog_log_lowest_offset(((struct observe *)arg)->log);
}

static int64_t gauge_failed(void *arg)
{
    return plog_log_failed(((struct observe *)arg)->log, NULL, 0) ? 1 : 0;
}

static int64_t gauge_next(void *arg)
{
    return (int64_t)plog_log_next_offset(((struct observe *)arg)->log);
}

/* gauge_size sums the sizes of the segment files (*.store, *.index). */
static int64_t gauge_size(void *arg)
{
    struct observe *o = arg;
    DIR *d = opendir(o->dir);
    if (d == NULL)
        return 0;
    int64_t total = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);
        if (!(n > 6 && strcmp(e->d_name + n - 6, ".store") == 0) &&
            !(n > 6 && strcmp(e->d_name + n - 6, ".index") == 0))
            continue;
        char path[4096];
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", o->dir, e->d_name);
        if (stat(path, &st) == 0)
            total += (int64_t)st.st_size;
    }
    closedir(d);
    return total;
}

/* observe_open makes the registry the server counts in; observe_serve, called once
 * the RPC server listens, serves it on addr. */
static int observe_open(struct observe *o, plog_log *log)
{
    o->log = log;
    if (plog_server_metrics_new(&o->metrics) != PLOG_OK)
        return -1;
    plog_metrics_gauge_bind(o->metrics, PLOG_GAUGE_LOG_LOWEST_OFFSET, gauge_lowest, o);
    plog_metrics_gauge_bind(o->metrics, PLOG_GAUGE_LOG_NEXT_OFFSET, gauge_next, o);
    plog_metrics_gauge_bind(o->metrics, PLOG_GAUGE_LOG_FAILED, gauge_failed, o);
    plog_metrics_gauge_bind(o->metrics, PLOG_GAUGE_LOG_SIZE_BYTES, gauge_size, o);
    return 0;
}

static int observe_serve(struct observe *o, const char *addr, char *why, size_t size)
{
    return plog_metrics_http_open(o->metrics, addr, why, size, &o->http) == PLOG_OK ? 0 : -1;
}

static void observe_close(struct observe *o, plog_logger *lg)
{
    plog_metrics_http_close(o->http, lg);
    plog_metrics_free(o->metrics);
    o->http = NULL;
    o->metrics = NULL;
}

/* raise_nofile lifts the descriptor limit to its hard limit (as Go's runtime does):
 * the log holds two per segment (its store and its index) and every connection,
 * handshaking or not, one; --max-connections, not a default soft limit of 1024,
 * should be what bounds the connections, and under that limit a data directory of
 * some 500 segments failed to open ("Too many open files"). */
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
        {"max-connections", required_argument, NULL, 'c'},
        {"handshake-timeout-ms", required_argument, NULL, 'H'},
        {"server-tls-cert-file", required_argument, NULL, 'C'},
        {"server-tls-key-file", required_argument, NULL, 'K'},
        {"server-tls-ca-file", required_argument, NULL, 'A'},
        {"acl-model-file", required_argument, NULL, 'M'},
        {"acl-policy-file", required_argument, NULL, 'P'},
        {"insecure-allow-plaintext", no_argument, NULL, 'X'},
        {"metrics-addr", required_argument, NULL, 'T'},
        {"log-level", required_argument, NULL, 'L'},
        {"log-level-file", required_argument, NULL, 'F'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    const char *addr = "tls+tcp://127.0.0.1:8400", *dir = "./data";
    const char *cert = NULL, *key = NULL, *ca = NULL, *model = NULL, *policy = NULL;
    const char *metrics_addr = NULL, *level_file = NULL;
    bool plaintext = false;
    plog_logger_level level = PLOG_LOGGER_INFO;
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
        case 'C':
            cert = optarg;
            break;
        case 'K':
            key = optarg;
            break;
        case 'A':
            ca = optarg;
            break;
        case 'M':
            model = optarg;
            break;
        case 'P':
            policy = optarg;
            break;
        case 'X':
            plaintext = true;
            break;
        case 'T':
            metrics_addr = optarg;
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
            else if (c == 'c')
                sc.max_connections = (unsigned)v;
            else if (c == 'H')
                sc.handshake_timeout_ms = (uint32_t)v;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "proglog: unexpected argument: %s\n", argv[optind]);
        usage(stderr);
        return 2;
    }
    static const char *const schemes[] = {"tls+tcp", "tcp", NULL};
    if (plog_config_flag_url("proglog", "--addr", addr, schemes) != 0 ||
        (metrics_addr != NULL &&
         plog_config_flag_hostport("proglog", "--metrics-addr", metrics_addr, NULL) != 0) ||
        check_security(addr, cert, key, ca, model, policy, plaintext) != 0)
        return 2;
    char why[PLOG_AUTH_ERRMSG_SIZE] = "";
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
    struct security sec = {0};
    if (!plaintext && security_open(&sec, cert, key, ca, model, policy, lg, why, sizeof why) != 0) {
        plog_logger_log(lg, PLOG_LOGGER_ERROR, "cannot set up security", "err", why, NULL);
        plog_logger_free(lg);
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
        security_close(&sec);
        plog_logger_free(lg);
        return 1;
    }
    struct observe obs = {.dir = dir};
    if (metrics_addr != NULL && observe_open(&obs, log) != 0) {
        plog_logger_log(lg, PLOG_LOGGER_ERROR, "out of memory", NULL);
        plog_log_close(log);
        security_close(&sec);
        plog_logger_free(lg);
        return 1;
    }
    sc.addr = addr;
    sc.sync = lc.sync;
    sc.tls = sec.tls;
    sc.acl = sec.acl;
    sc.insecure = plaintext;
    sc.metrics = obs.metrics;
    sc.logger = lg;
    sc.log_requests = true;
    plog_server *srv;
    if ((rv = plog_server_open(log, &sc, &srv, why, sizeof why)) != PLOG_OK) {
        plog_logger_log(lg, PLOG_LOGGER_ERROR, "cannot serve", "addr", addr, "err", why, NULL);
        observe_close(&obs, lg);
        plog_log_close(log);
        security_close(&sec);
        plog_logger_free(lg);
        return 1;
    }
    /* After the RPC server: an address both want is then --metrics-addr's to give up. */
    if (metrics_addr != NULL && observe_serve(&obs, metrics_addr, why, sizeof why) != 0) {
        plog_logger_log(lg, PLOG_LOGGER_ERROR, "cannot serve --metrics-addr", "addr", metrics_addr, "err",
                        why, NULL);
        plog_server_close(srv);
        observe_close(&obs, lg);
        plog_log_close(log);
        security_close(&sec);
        plog_logger_free(lg);
        return 1;
    }
    static const char *policies[] = {"never", "always", "interval"};
    char metrics_url[96] = "off";
    if (obs.http != NULL)
        snprintf(metrics_url, sizeof metrics_url, "http://%s/metrics", metrics_addr);
    char next[24];
    snprintf(next, sizeof next, "%" PRIu64, plog_log_next_offset(log));
    plog_logger_log(lg, PLOG_LOGGER_INFO, "serving", "addr", addr, "data_dir", dir, "sync", policies[lc.sync],
                    "next_offset", next, "tls", plaintext ? "off" : "mutual", "acl",
                    plaintext ? "off" : policy, "metrics", metrics_url, "version", VERSION, NULL);

    struct reload rl = {.lg = lg,
                        .level_file = level_file,
                        .sec = plaintext ? NULL : &sec,
                        .cert = cert,
                        .key = key,
                        .ca = ca,
                        .model = model,
                        .policy = policy};
    int sig = 0;
    while (sigwait(&set, &sig) == 0 && sig == SIGHUP)
        reload_all(&rl);
    plog_logger_log(lg, PLOG_LOGGER_INFO, "shutting down", "signal", sig == SIGINT ? "SIGINT" : "SIGTERM",
                    NULL);
    plog_server_close(srv);
    observe_close(&obs, lg); /* after the server: it observes until its last reply */
    rv = plog_log_close(log);
    security_close(&sec);
    if (rv != PLOG_OK) {
        plog_logger_log(lg, PLOG_LOGGER_ERROR, "closing the log failed", "err", plog_strerror(rv), NULL);
        plog_logger_free(lg);
        return 1;
    }
    plog_logger_log(lg, PLOG_LOGGER_INFO, "stopped", NULL);
    plog_logger_free(lg);
    return 0;
}
