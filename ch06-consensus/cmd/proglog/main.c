/* proglog - one node of the cluster: the agent (Go: cmd/proglog/main.go).
 *
 * Flags are the book's, and --config-file FILE (YAML, internal/config/file.h)
 * gives the same keys; a flag on the command line overrides the file's value.
 * Runs until SIGINT or SIGTERM, then stops: a leader hands over, and the node
 * stays a Raft voter, so that a restart (of it, or of the whole cluster) rejoins;
 * with --leave-on-terminate it leaves for good instead, and the leader removes it
 * (internal/agent/agent.h). SIGHUP reloads the ACL, the RPC server's certificate
 * and the log level (plog_agent_reload, reload.h), as single.c does. Logs to
 * stderr, one key=value event per line. Exit status: 0 clean shutdown, 1 could
 * not start, 2 usage.
 *
 * With --addr URL (or --insecure-allow-plaintext) it is the previous chapter's
 * server instead, one node alone (single.c). */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <malloc.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cmd/proglog/reload.h"
#include "internal/agent/agent.h"
#include "internal/config/file.h"
#include "internal/config/flag.h"
#include "internal/distributed/distributed.h"
#include "internal/err/err.h"
#include "internal/logger/logger.h"
#include "internal/server/server.h"

#define VERSION "0.6.0 (ch06-consensus)"
#define MAX_JOIN 64

/* Every flag that takes a value, by long name; index = getopt's val - 1. */
#define FLAGS(X)                                                                                           \
    X(CONFIG_FILE, "config-file", "FILE", "read these flags from a YAML file (flags win)")                 \
    X(DATA_DIR, "data-dir", "DIR", "where the node keeps its log (default ./data)")                        \
    X(NODE_NAME, "node-name", "NAME", "unique node name = its peer certificate's CN (default: host name)") \
    X(BIND_ADDR, "bind-addr", "HOST:PORT",                                                                 \
      "gossip address; the RPC server listens on HOST (default 127.0.0.1:8401)")                           \
    X(RPC_PORT, "rpc-port", "N", "RPC port on the bind host (default 8400)")                               \
    X(START_JOIN_ADDRS, "start-join-addrs", "A,B", "gossip addresses of members to join through")          \
    X(ACL_MODEL_FILE, "acl-model-file", "FILE", "the Casbin model, checked to be the book's (optional)")   \
    X(ACL_POLICY_FILE, "acl-policy-file", "FILE", "who may do what: \"p, SUBJECT, *, ACTION\"")            \
    X(SERVER_TLS_CERT_FILE, "server-tls-cert-file", "FILE", "the RPC server's certificate (PEM)")          \
    X(SERVER_TLS_KEY_FILE, "server-tls-key-file", "FILE", "its key")                                       \
    X(SERVER_TLS_CA_FILE, "server-tls-ca-file", "FILE", "the CA client certificates chain to")             \
    X(PEER_TLS_CERT_FILE, "peer-tls-cert-file", "FILE", "this node's certificate (gencert --node NAME)")   \
    X(PEER_TLS_KEY_FILE, "peer-tls-key-file", "FILE", "its key")                                           \
    X(PEER_TLS_CA_FILE, "peer-tls-ca-file", "FILE", "the CA other nodes' certificates chain to")           \
    X(PROFILE, "profile", "lan|fast", "membership timing: lan (default) or fast (loopback tests)")         \
    X(SYNC, "sync", "POLICY",                                                                              \
      "never | always | interval (default interval); with --addr only: "                                   \
      "a cluster fsyncs Raft's log per batch")                                                             \
    X(SYNC_INTERVAL_MS, "sync-interval-ms", "N",                                                           \
      "for --sync interval: how long a record nobody waits for\n"                                          \
      "                             may stay unsynced (default 10, at most 60000)")                        \
    X(MAX_STORE_BYTES, "max-store-bytes", "N", "segment store size before rolling (default 1 GiB)")        \
    X(MAX_INDEX_BYTES, "max-index-bytes", "N",                                                             \
      "segment index size before rolling (default 10 MiB, at least 12)")                                   \
    X(METRICS_ADDR, "metrics-addr", "HOST:PORT", "serve Prometheus metrics at http://HOST:PORT/metrics")   \
    X(LOG_LEVEL, "log-level", "LEVEL", "debug | info | warn | error (default info)")                       \
    X(LOG_LEVEL_FILE, "log-level-file", "FILE",                                                            \
      "the level, one word: read at start (it wins) and on SIGHUP")                                        \
    X(MAX_PARKED_PER_CLIENT, "max-parked-per-client", "N",                                                 \
      "ConsumeStream polls one client may park (default 32, at most 4096)")                                \
    X(MAX_INFLIGHT_BYTES, "max-inflight-bytes", "N",                                                       \
      "memory for decoded requests in flight (default 256 MiB)")                                           \
    X(MAX_CONNECTIONS, "max-connections", "N",                                                             \
      "RPC TLS connections at once, handshaking ones too (default 4096, at most 1048576)")                 \
    X(HANDSHAKE_TIMEOUT_MS, "handshake-timeout-ms", "N",                                                   \
      "an RPC TLS handshake must finish within it (default 5000, at most 2147483647)")                     \
    X(BOOTSTRAP, "bootstrap", "[true|false]", "start a new cluster with this node as its only voter")      \
    X(LEAVE_ON_TERMINATE, "leave-on-terminate", "[true|false]",                                            \
      "on SIGINT/SIGTERM leave for good: the leader removes the node from Raft (default false)")           \
    X(RAFT_PORT, "raft-port", "N", "Raft port on the bind host (default: RPC port + 2)")                   \
    X(RAFT_ADVERTISE_ADDR, "raft-advertise-addr", "HOST:PORT",                                             \
      "address the others dial for this node's Raft (default: bind host + Raft port)")                     \
    X(SNAPSHOT_ENTRIES, "snapshot-entries", "N",                                                           \
      "take a Raft snapshot every N applied entries, spaced by their cost (default 0: never)")

enum {
#define X(id, name, arg, help) F_##id,
    FLAGS(X)
#undef X
        NFLAGS
};

static const char *const flag_names[NFLAGS] = {
#define X(id, name, arg, help) name,
    FLAGS(X)
#undef X
};

/* flag_name[id] names flag id in messages: "--rpc-port", or, when the value came
 * from the config file and no flag overrode it, "--config-file: FILE:LINE: rpc-port"
 * (load_file). */
static char flag_name[NFLAGS][320];

static void usage(FILE *f)
{
    fprintf(f, "usage: proglog [options]\n"
               "Runs one node of the proglog cluster: the log, replicated through Raft on its\n"
               "own port, its mutual-TLS RPC server and gossip membership (SWIM).\n\n");
#define X(id, name, arg, help) fprintf(f, "  --%-24s %s\n", name " " arg, help);
    FLAGS(X)
#undef X
    fprintf(f, "  --help, --version\n\n"
               "proglog --addr URL ... runs one server alone, without a cluster, as in ch04\n"
               "(see proglog --addr x --help).\n\n"
               "Every flag may also be a key of the --config-file (e.g. \"rpc-port: 8400\";\n"
               "start-join-addrs as a list or \"a,b\"). The ACL policy must let every node's CN\n"
               "\"gossip\", e.g. \"p, node1, *, gossip\": membership and the Raft transport both\n"
               "check it. Nodes need nothing else (no \"consume\": Raft sends them the log).\n"
               "Clients need \"produce\" and \"consume\"; \"admin\" lets an operator remove a\n"
               "server gone for good (proglogctl remove-server NAME).\n"
               "SIGHUP reloads the ACL policy and model, the RPC server's certificate, key and\n"
               "CA (for new connections) and --log-level-file; peer certificates need a restart.\n"
               "Raft connections to the others leave from the bind host's IP when it is an IP\n"
               "address (not 0.0.0.0, 127.0.0.1 or a name: then the kernel picks the source).\n"
               "Exit status: 0 clean shutdown (SIGINT/SIGTERM), 1 failure, 2 usage.\n");
}

/* A node that found nobody it should have says so once, this long after start. */
#define ALONE_AFTER_MS 5000

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* next_signal waits for the next signal of set and returns it (-1: error). Until
 * *check_at (monotonic ms; 0 once done) passes, it wakes then to log, once, why the
 * node is alone, when it is (plog_agent_alone): the usual mistakes are join
 * addresses that are RPC ports, or nodes that are not running. Every WATCH_MS it
 * looks whether nng's reaper is stuck, and says so once (before, only the node's
 * stop said it, after the node had refused clients for want of descriptors). */
#define WATCH_MS 5000

static int next_signal(const sigset_t *set, plog_agent *agent, plog_logger *lg, int64_t *check_at)
{
    static bool stuck_told;
    for (;;) {
        int64_t now = now_ms(), wake = now + WATCH_MS;
        if (*check_at != 0 && *check_at < wake)
            wake = *check_at;
        int64_t left = wake - now;
        struct timespec ts = {left > 0 ? left / 1000 : 0, left > 0 ? (long)(left % 1000) * 1000000 : 0};
        int sig = sigtimedwait(set, NULL, &ts);
        if (sig > 0)
            return sig;
        if (errno != EAGAIN)
            continue; /* EINTR */
        if (*check_at != 0 && now_ms() >= *check_at) {
            *check_at = 0;
            char hint[512]; /* a TLS reason and an address fit */
            if (plog_agent_alone(agent, hint, sizeof hint))
                plog_logger_log(lg, PLOG_LOGGER_WARN, "alone", "hint", hint, NULL);
        }
        if (!stuck_told && plog_agent_reaper_stuck(agent)) {
            stuck_told = true;
            plog_logger_log(
                lg, PLOG_LOGGER_ERROR, "nng's reaper is stuck", "hint",
                "nng 1.5.2 frees no connection closed from now on: restart this node before it runs "
                "out of descriptors or --max-connections (docs/NNG.md, pitfall 19)",
                NULL);
        }
    }
}

/* The node stopped for good (a write failed, e.g. a full disk, or its name is
 * taken): main's sigwait hears it as a SIGTERM, and exits 1 without leaving the
 * cluster. */
static atomic_bool node_failed;

static void on_node_failed(void *arg, const char *why)
{
    (void)arg;
    (void)why; /* the node logged it */
    atomic_store(&node_failed, true);
    kill(getpid(), SIGTERM);
}

/* split_addrs splits a comma list in place into addrs (at most MAX_JOIN), each
 * HOST:PORT or tls+tcp://HOST:PORT with a port in 1..65535; else it says why (a
 * usage error, before anything starts) and returns -1. */
static int split_addrs(char *s, const char **addrs, size_t *n)
{
    *n = 0;
    for (char *tok = strtok(s, ", "); tok != NULL; tok = strtok(NULL, ", ")) {
        if (*n == MAX_JOIN) {
            fprintf(stderr, "proglog: %s: at most %d addresses\n", flag_name[F_START_JOIN_ADDRS], MAX_JOIN);
            return -1;
        }
        const char *hostport = strncmp(tok, "tls+tcp://", 10) == 0 ? tok + 10 : tok;
        if (plog_config_flag_hostport("proglog", flag_name[F_START_JOIN_ADDRS], hostport,
                                      "a member's gossip address") != PLOG_OK)
            return -1;
        addrs[(*n)++] = tok;
    }
    return 0;
}

/* load_file puts the file's values into val (flags parsed later override them). */
static int load_file(const char *path, plog_config_file **fp, const char **val)
{
    char err[512];
    if (plog_config_file_read(path, fp, err, sizeof err) != PLOG_OK) {
        fprintf(stderr, "proglog: --config-file: %s\n", err);
        return -1;
    }
    for (size_t i = 0; i < plog_config_file_count(*fp); i++) {
        const char *k = plog_config_file_key(*fp, i);
        int id = -1;
        for (int j = 0; j < NFLAGS; j++)
            if (strcmp(k, flag_names[j]) == 0)
                id = j;
        if (id < 0 || id == F_CONFIG_FILE) {
            fprintf(stderr,
                    "proglog: --config-file: %s:%zu: unknown key \"%s\" (keys are the long flag names)\n",
                    path, plog_config_file_line(*fp, i), k);
            return -1;
        }
        if (plog_config_file_is_list(*fp, i) && id != F_START_JOIN_ADDRS) {
            fprintf(stderr, "proglog: --config-file: %s:%zu: \"%s\" takes one value, not a list\n", path,
                    plog_config_file_line(*fp, i), k);
            return -1;
        }
        val[id] = plog_config_file_get(*fp, k);
        snprintf(flag_name[id], sizeof flag_name[id], "--config-file: %s:%zu: %s", path,
                 plog_config_file_line(*fp, i), k);
    }
    return 0;
}

static int u64_of(const char *const *val, int id, uint64_t max, uint64_t *v)
{
    if (plog_config_flag_u64("proglog", flag_name[id], val[id], v) != PLOG_OK)
        return -1;
    if (*v > max) {
        fprintf(stderr, "proglog: %s: too large: %s\n", flag_name[id], val[id]);
        return -1;
    }
    return 0;
}

/* dialed_addr_of checks flag id's value, an address the other nodes dial: HOST:PORT
 * with a port in 1..65535 (port 0 asks the kernel for any port, which nobody could
 * be told). The agent checks the form again; a bad value here is a usage error. */
static int dialed_addr_of(const char *const *val, int id)
{
    if (val[id] == NULL)
        return 0;
    return plog_config_flag_hostport("proglog", flag_name[id], val[id], "the other nodes dial it") == PLOG_OK
               ? 0
               : -1;
}

/* bool_flag parses flag id, when given, into *b (else leaves it): true or false. */
static int bool_flag(const char *const *val, int id, bool *b)
{
    if (val[id] == NULL)
        return 0;
    if (strcmp(val[id], "true") != 0 && strcmp(val[id], "false") != 0) {
        fprintf(stderr, "proglog: %s: want true or false: %s\n", flag_name[id], val[id]);
        return -1;
    }
    *b = strcmp(val[id], "true") == 0;
    return 0;
}

/* u64_flag parses flag id, when given, into *v (else leaves it), within the
 * range it has in every mode (plog_config_flag_server). */
static int u64_flag(const char *const *val, int id, uint64_t *v)
{
    if (val[id] == NULL)
        return 0;
    return plog_config_flag_server("proglog", flag_name[id], val[id], v) == PLOG_OK ? 0 : -1;
}

/* single.c: the single-server mode of the previous chapter; version is this
 * program's (VERSION). */
int single_main(int argc, char **argv, const char *version);

int main(int argc, char **argv)
{
    /* nng allocates a message's buffer as soon as its length arrives, and glibc
     * raises its mmap threshold to the size of each mmapped block freed: after one
     * 8 MiB message, the next ones came from its heap, whose pages stay resident.
     * Clients announcing large messages and sending nothing piled up memory (an
     * audit: 1.5 GB). With the threshold fixed, blocks of 1 MiB or more are always
     * mmapped: untouched pages cost nothing, and a freed block goes back at once. */
    mallopt(M_MMAP_THRESHOLD, 1 << 20);
    static char prog[] = "proglog"; /* what getopt's own messages name, here and in single.c */
    argv[0] = prog;
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--addr") == 0 || strncmp(argv[i], "--addr=", 7) == 0 ||
            strcmp(argv[i], "--insecure-allow-plaintext") == 0)
            return single_main(argc, argv, VERSION);
    struct option opts[NFLAGS + 3];
    for (int i = 0; i < NFLAGS; i++)
        opts[i] = (struct option){flag_names[i], required_argument, NULL, i + 1};
    /* --bootstrap and --leave-on-terminate alone mean true */
    opts[F_BOOTSTRAP].has_arg = opts[F_LEAVE_ON_TERMINATE].has_arg = optional_argument;
    opts[NFLAGS] = (struct option){"help", no_argument, NULL, 'h'};
    opts[NFLAGS + 1] = (struct option){"version", no_argument, NULL, 'V'};
    opts[NFLAGS + 2] = (struct option){NULL, 0, NULL, 0};

    const char *flag[NFLAGS] = {0}, *val[NFLAGS] = {0};
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 'h') {
            usage(stdout);
            return plog_err_stdout_done("proglog");
        }
        if (c == 'V') {
            printf("proglog %s\n", VERSION);
            return plog_err_stdout_done("proglog");
        }
        if (c < 1 || c > NFLAGS) {
            usage(stderr);
            return 2;
        }
        if (optarg != NULL && strncmp(optarg, "--", 2) == 0) { /* "--data-dir --bootstrap" */
            fprintf(stderr, "proglog: --%s: missing value (the next word is the flag %s)\n", opts[c - 1].name,
                    optarg);
            return 2;
        }
        flag[c - 1] = optarg != NULL ? optarg : "true";
        /* --bootstrap true|false as --help shows it: the value as the next word. */
        if (opts[c - 1].has_arg == optional_argument && optarg == NULL && optind < argc &&
            argv[optind][0] != '-')
            flag[c - 1] = argv[optind++];
    }
    if (optind != argc) {
        fprintf(stderr, "proglog: unexpected argument: %s\n", argv[optind]);
        usage(stderr);
        return 2;
    }
    plog_config_file *file = NULL;
    int status = 2;
    for (int i = 0; i < NFLAGS; i++)
        snprintf(flag_name[i], sizeof flag_name[i], "--%s", flag_names[i]);
    if (flag[F_CONFIG_FILE] != NULL && load_file(flag[F_CONFIG_FILE], &file, val) != 0)
        goto out;
    for (int i = 0; i < NFLAGS; i++)
        if (flag[i] != NULL) {
            val[i] = flag[i];
            snprintf(flag_name[i], sizeof flag_name[i], "--%s", flag_names[i]);
        }

    if (val[F_DATA_DIR] != NULL && val[F_DATA_DIR][0] == '\0') {
        fprintf(stderr, "proglog: %s: want a directory, not an empty string\n", flag_name[F_DATA_DIR]);
        goto out;
    }
    if (val[F_NODE_NAME] != NULL && val[F_NODE_NAME][0] == '\0') {
        fprintf(stderr, "proglog: %s: want a name, not an empty string\n", flag_name[F_NODE_NAME]);
        goto out;
    }
    /* Gossip carries no other names: before, such a name was refused only once
     * the data directory was made and bound to it, blamed on --bind-addr. */
    if (val[F_NODE_NAME] != NULL && !plog_agent_is_valid_name(val[F_NODE_NAME])) {
        fprintf(stderr, "proglog: %s: want 1..64 printable ASCII characters without spaces: %s\n",
                flag_name[F_NODE_NAME], val[F_NODE_NAME]);
        goto out;
    }
    if (dialed_addr_of(val, F_BIND_ADDR) != 0)
        goto out;
    if (val[F_METRICS_ADDR] != NULL &&
        plog_config_flag_hostport("proglog", flag_name[F_METRICS_ADDR], val[F_METRICS_ADDR], NULL) != PLOG_OK)
        goto out;
    char host[256] = "localhost";
    gethostname(host, sizeof host - 1);
    plog_agent_config ac = {
        .data_dir = val[F_DATA_DIR] != NULL ? val[F_DATA_DIR] : "./data",
        .node_name = val[F_NODE_NAME] != NULL ? val[F_NODE_NAME] : host,
        .bind_addr = val[F_BIND_ADDR] != NULL ? val[F_BIND_ADDR] : "127.0.0.1:8401",
        .rpc_port = 8400,
        .server_tls_cert_file = val[F_SERVER_TLS_CERT_FILE],
        .server_tls_key_file = val[F_SERVER_TLS_KEY_FILE],
        .server_tls_ca_file = val[F_SERVER_TLS_CA_FILE],
        .peer_tls_cert_file = val[F_PEER_TLS_CERT_FILE],
        .peer_tls_key_file = val[F_PEER_TLS_KEY_FILE],
        .peer_tls_ca_file = val[F_PEER_TLS_CA_FILE],
        .acl_model_file = val[F_ACL_MODEL_FILE],
        .acl_policy_file = val[F_ACL_POLICY_FILE],
        .metrics_addr = val[F_METRICS_ADDR],
        .log = {.sync = PLOG_SYNC_INTERVAL},
    };
    uint64_t v;
    if (val[F_RPC_PORT] != NULL) {
        if (u64_of(val, F_RPC_PORT, 65535, &v) != 0)
            goto out;
        ac.rpc_port = (uint16_t)v;
    }
    if (ac.rpc_port == 0) {
        fprintf(stderr, "proglog: %s: must be 1..65535\n", flag_name[F_RPC_PORT]);
        goto out;
    }
    v = 0;
    if (u64_flag(val, F_SYNC_INTERVAL_MS, &v) != 0 ||
        u64_flag(val, F_MAX_STORE_BYTES, &ac.log.segment.max_store_bytes) != 0 ||
        u64_flag(val, F_MAX_INDEX_BYTES, &ac.log.segment.max_index_bytes) != 0)
        goto out;
    ac.log.sync_interval_ms = (uint32_t)v;
    if (val[F_SYNC] != NULL) {
        if (strcmp(val[F_SYNC], "never") == 0)
            ac.log.sync = PLOG_SYNC_NEVER;
        else if (strcmp(val[F_SYNC], "always") == 0)
            ac.log.sync = PLOG_SYNC_ALWAYS;
        else if (strcmp(val[F_SYNC], "interval") != 0) {
            fprintf(stderr, "proglog: %s: want never, always or interval: %s\n", flag_name[F_SYNC],
                    val[F_SYNC]);
            goto out;
        }
    }
    if (val[F_PROFILE] != NULL) {
        if (strcmp(val[F_PROFILE], "fast") == 0)
            ac.fast = true;
        else if (strcmp(val[F_PROFILE], "lan") != 0) {
            fprintf(stderr, "proglog: %s: want lan or fast: %s\n", flag_name[F_PROFILE], val[F_PROFILE]);
            goto out;
        }
    }
    bool leave_on_terminate = false;
    if (bool_flag(val, F_BOOTSTRAP, &ac.bootstrap) != 0 ||
        bool_flag(val, F_LEAVE_ON_TERMINATE, &leave_on_terminate) != 0)
        goto out;
    if (val[F_RAFT_PORT] != NULL) { /* 0 would not be "any port": the others dial it */
        if (plog_config_flag_range("proglog", flag_name[F_RAFT_PORT], val[F_RAFT_PORT], 1, 65535, &v) !=
            PLOG_OK)
            goto out;
        ac.raft_port = (uint16_t)v;
    }
    /* The RPC server and Raft listen on --bind-addr's host: a port each (before:
     * exit 1, "Address in use", once the data directory was made). */
    unsigned gossip_port = (unsigned)atoi(strrchr(ac.bind_addr, ':') + 1),
             raft_port = ac.raft_port != 0 ? ac.raft_port : (unsigned)ac.rpc_port + 2;
    if (ac.rpc_port == gossip_port || raft_port == gossip_port || raft_port == ac.rpc_port) {
        fprintf(stderr,
                "proglog: --bind-addr's port (%u), --rpc-port (%u) and --raft-port (%u) must differ: each "
                "listener needs its own\n",
                gossip_port, (unsigned)ac.rpc_port, raft_port);
        goto out;
    }
    if (dialed_addr_of(val, F_RAFT_ADVERTISE_ADDR) != 0)
        goto out;
    ac.raft_advertise_addr = val[F_RAFT_ADVERTISE_ADDR];
    if (val[F_SNAPSHOT_ENTRIES] != NULL) {
        if (u64_of(val, F_SNAPSHOT_ENTRIES, UINT32_MAX, &v) != 0)
            goto out;
        ac.snapshot_entries = (uint32_t)v;
    }
    plog_logger_level level = PLOG_LOGGER_INFO;
    if (val[F_LOG_LEVEL] != NULL && plog_logger_parse_level(val[F_LOG_LEVEL], &level) != PLOG_OK) {
        fprintf(stderr, "proglog: %s: want debug, info, warn or error: %s\n", flag_name[F_LOG_LEVEL],
                val[F_LOG_LEVEL]);
        goto out;
    }
    char why[PLOG_AUTH_ERRMSG_SIZE];
    if (val[F_LOG_LEVEL_FILE] != NULL &&
        reload_read_level(val[F_LOG_LEVEL_FILE], &level, why, sizeof why) != 0) {
        fprintf(stderr, "proglog: --log-level-file %s\n", why);
        goto out;
    }
    uint64_t lim[4] = {0}; /* the server's limits; 0: its defaults */
    if (u64_flag(val, F_MAX_PARKED_PER_CLIENT, &lim[0]) != 0 ||
        u64_flag(val, F_MAX_INFLIGHT_BYTES, &lim[1]) != 0 || u64_flag(val, F_MAX_CONNECTIONS, &lim[2]) != 0 ||
        u64_flag(val, F_HANDSHAKE_TIMEOUT_MS, &lim[3]) != 0)
        goto out;
    ac.max_parked_per_client = (unsigned)lim[0];
    ac.max_inflight_bytes = (size_t)lim[1];
    plog_server_config limits = {.max_inflight_bytes = ac.max_inflight_bytes};
    if (plog_server_config_check(&limits, why, sizeof why) != PLOG_OK) {
        fprintf(stderr, "proglog: %s: %s\n", flag_name[F_MAX_INFLIGHT_BYTES], why);
        goto out;
    }
    ac.max_connections = (unsigned)lim[2];
    ac.handshake_timeout_ms = (uint32_t)lim[3];
    char joins[4096] = "";
    const char *addrs[MAX_JOIN];
    if (val[F_START_JOIN_ADDRS] != NULL) {
        snprintf(joins, sizeof joins, "%s", val[F_START_JOIN_ADDRS]);
        if (split_addrs(joins, addrs, &ac.njoin) != 0)
            goto out;
        ac.start_join_addrs = addrs;
    }
    static const int required[] = {F_SERVER_TLS_CERT_FILE, F_SERVER_TLS_KEY_FILE, F_SERVER_TLS_CA_FILE,
                                   F_PEER_TLS_CERT_FILE,   F_PEER_TLS_KEY_FILE,   F_PEER_TLS_CA_FILE,
                                   F_ACL_POLICY_FILE};
    for (size_t i = 0; i < sizeof required / sizeof required[0]; i++) {
        if (val[required[i]] == NULL) {
            fprintf(stderr,
                    "proglog: --%s is required (a node serves mutual TLS and gossips with its node "
                    "certificate; see --help)\n",
                    flag_names[required[i]]);
            goto out;
        }
    }

    sigset_t set;
    reload_block_signals(&set); /* before any thread exists */

    status = 1;
    plog_logger *lg = NULL;
    if (plog_logger_new(STDERR_FILENO, level, &lg) != PLOG_OK) {
        fprintf(stderr, "level=error msg=\"out of memory\"\n");
        goto out;
    }
    ac.logger = lg;
    reload_raise_nofile(lg);
    ac.log.report.fn = plog_logger_report; /* the log's recovery reports, timed like the rest */
    ac.log.report.arg = lg;
    ac.failed = on_node_failed;
    /* Raft's log is fsynced per batch before a produce is answered, whatever the
     * policy: the flags would be silently unused (with --addr they apply). */
    if (val[F_SYNC] != NULL || val[F_SYNC_INTERVAL_MS] != NULL)
        plog_logger_log(
            lg, PLOG_LOGGER_WARN,
            "ignored in cluster mode: a cluster fsyncs Raft's log per batch; they apply with --addr", "flags",
            val[F_SYNC] == NULL               ? "--sync-interval-ms"
            : val[F_SYNC_INTERVAL_MS] == NULL ? "--sync"
                                              : "--sync,--sync-interval-ms",
            NULL);
    ac.log_requests = level == PLOG_LOGGER_DEBUG; /* request lines only when asked for */
    plog_agent *agent;
    char err[512] = "";
    if (plog_agent_open(&ac, &agent, err, sizeof err) != PLOG_OK) {
        plog_logger_log(lg, PLOG_LOGGER_ERROR, "cannot start", "node", ac.node_name, "err", err, NULL);
        plog_logger_free(lg);
        goto out;
    }
    reload_warn_unmatched(lg, ac.node_name, val[F_ACL_POLICY_FILE], plog_agent_acl(agent));
    /* The record log is rebuilt from Raft's log as entries commit again, so at
     * this moment it may hold none of them yet: the line names both. */
    uint64_t term, commit, last;
    plog_distributed_raft_state(plog_agent_distributed(agent), &term, &commit, &last);
    char raft_last[24], applied[24], join[24];
    snprintf(raft_last, sizeof raft_last, "%" PRIu64, last);
    snprintf(applied, sizeof applied, "%" PRIu64, plog_log_next_offset(plog_agent_log(agent)));
    snprintf(join, sizeof join, "%zu", ac.njoin);
    plog_logger_log(lg, PLOG_LOGGER_INFO, "serving", "node", ac.node_name, "rpc_addr",
                    plog_agent_rpc_addr(agent), "bind_addr", ac.bind_addr, "data_dir", ac.data_dir, "join",
                    join, "profile", ac.fast ? "fast" : "lan", "raft_last_index", raft_last,
                    "records_applied", applied, "metrics", ac.metrics_addr != NULL ? ac.metrics_addr : "off",
                    "version", VERSION, NULL);

    int sig = 0;
    int64_t check_at = now_ms() + ALONE_AFTER_MS;
    while ((sig = next_signal(&set, agent, lg, &check_at)) == SIGHUP) {
        plog_agent_reload_result r;
        plog_agent_reload(agent, &r);
        struct reload_security rs = {.policy_file = val[F_ACL_POLICY_FILE],
                                     .cert_file = val[F_SERVER_TLS_CERT_FILE],
                                     .files = {val[F_SERVER_TLS_CERT_FILE], val[F_SERVER_TLS_KEY_FILE],
                                               val[F_SERVER_TLS_CA_FILE], val[F_PEER_TLS_CERT_FILE],
                                               val[F_PEER_TLS_KEY_FILE], val[F_PEER_TLS_CA_FILE],
                                               val[F_ACL_MODEL_FILE], val[F_ACL_POLICY_FILE]},
                                     .acl = r.acl,
                                     .tls = r.tls,
                                     .acl_err = r.acl_err,
                                     .tls_err = r.tls_err,
                                     .acl_rules = r.acl_rules,
                                     .acl_now = plog_agent_acl(agent)};
        reload_finish(lg, ac.node_name, val[F_LOG_LEVEL_FILE], &rs);
    }
    if (atomic_load(&node_failed)) {
        /* Fail-stop: a node that can no longer write must not linger (a stale
         * leader, a voter that never votes). Not a leave: the others keep it as a
         * voter, and a restart recovers from what is on disk. */
        plog_logger_log(lg, PLOG_LOGGER_ERROR, "node failed; exiting without leaving the cluster", "node",
                        ac.node_name, "hint",
                        "the error above says why; once that is put right (a full disk freed, or another "
                        "--node-name for a name taken), a restart recovers from the data directory",
                        NULL);
        plog_agent_stop(agent);
        plog_logger_free(lg);
        status = 1;
        goto out;
    }
    const char *signame = sig == SIGINT ? "SIGINT" : "SIGTERM";
    int rv;
    if (leave_on_terminate) {
        plog_logger_log(lg, PLOG_LOGGER_INFO, "leaving", "node", ac.node_name, "signal", signame, "hint",
                        "--leave-on-terminate: the leader removes this node from Raft's configuration", NULL);
        rv = plog_agent_shutdown(agent);
    } else {
        plog_logger_log(
            lg, PLOG_LOGGER_INFO, "stopping", "node", ac.node_name, "signal", signame, "hint",
            "the node stays a Raft voter and a restart rejoins; --leave-on-terminate leaves for good", NULL);
        rv = plog_agent_stop(agent);
    }
    if (rv != PLOG_OK)
        plog_logger_log(lg, PLOG_LOGGER_ERROR, "closing the log failed", "err", plog_strerror(rv), NULL);
    else
        plog_logger_log(lg, PLOG_LOGGER_INFO, "stopped", "node", ac.node_name, NULL);
    plog_logger_free(lg);
    status = rv == PLOG_OK ? 0 : 1;
out:
    plog_config_file_free(file);
    return status;
}
