/* proglogctl - the command-line client of proglog.
 *
 *   proglogctl [--addr URL] [--timeout MS] produce VALUE...
 *   proglogctl [--addr URL] [--timeout MS] produce -          one record per stdin line
 *   proglogctl [--addr URL] [--timeout MS] consume OFFSET
 *   proglogctl [--addr URL] [--timeout MS] consume --from OFFSET [--follow] [--offsets]
 *   proglogctl [--addr URL] [--timeout MS] members
 *   proglogctl [--addr URL] [--timeout MS] offsets      "lowest N" and "next N" lines
 *
 * produce prints each record's offset, one per line, in input order; consume
 * prints each value on its own line (with --offsets: "OFFSET<TAB>VALUE").
 * consume --from reads from OFFSET to the log's end as the server answers:
 * OFFSET equal to that end prints nothing and succeeds, OFFSET past it is
 * OUT_OF_RANGE (exit 3) as for consume OFFSET; with --follow, OFFSET past the
 * end waits until the log reaches it, and a server that goes away after it
 * answered (a restart) is waited for. The whole command line is checked before
 * anything is dialed, so a usage error exits 2 whether or not a server answers.
 * Errors go to stderr as "proglogctl: CODE: message"; the exit status says which
 * kind (see usage()). --version prints the version; PROGLOG_ADDR in the
 * environment replaces the default address (a flag wins), as etcdctl's ETCDCTL_*;
 * so do PROGLOG_TLS_CERT_FILE, PROGLOG_TLS_KEY_FILE and PROGLOG_TLS_CA_FILE for
 * a tls+tcp:// address.
 *
 * ch04: over tls+tcp:// (the default) it authenticates with a client certificate
 * (--tls-cert-file, --tls-key-file) and checks the server's against --tls-ca-file
 * and the address's host (or --tls-server-name). The server's ACL decides what the
 * certificate's CN may do: PERMISSION_DENIED exits 6.
 *
 * ch05: members prints the cluster as the server's membership sees it (GetMembers),
 * one member per line: NAME STATUS INCARNATION TAGS (key=value,...), self marked
 * with "*"; control characters and backslashes in them print as C escapes.
 *
 * ch06: servers prints the Raft servers (GetServers), escaped as members. produce goes to the leader
 * whichever server --addr names (internal/loadbalance: GetServers, then the
 * leader; refreshed and retried on "not leader" or UNAVAILABLE, without
 * duplicates); consume reads committed records from the server --addr names, or
 * with --consistency linearizable, through ReadIndex on the leader (consume
 * OFFSET only: ConsumeStream has no such read, so with any other command the
 * option is a usage error rather than silently ignored). remove-server NAME asks
 * the leader (following --addr's "not leader; leader at ADDR" once) to remove a
 * server gone for good, then waits within --timeout until that server's
 * GetServers no longer lists it. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal/client/client.h"
#include "internal/client/stream.h"
#include "internal/config/flag.h"
#include "internal/loadbalance/router.h"
#include "internal/tls/config.h"

#define VERSION "0.6.0 (ch06-consensus)"

enum {
    EXIT_OK = 0,
    EXIT_FAIL = 1,        /* any other error (INTERNAL, DATA_LOSS, ...) */
    EXIT_USAGE = 2,       /* bad command line, including a malformed --addr */
    EXIT_NOT_FOUND = 3,   /* OUT_OF_RANGE, NOT_FOUND: no record at that offset */
    EXIT_UNAVAILABLE = 4, /* server unreachable or connection lost */
    EXIT_DEADLINE = 5,    /* no answer within --timeout */
    EXIT_REJECTED = 6,    /* the server refused the request: INVALID_ARGUMENT,
                           * RESOURCE_EXHAUSTED, PERMISSION_DENIED, ... */
};

static void usage(FILE *f)
{
    fprintf(f, "usage: proglogctl [--addr URL] [--timeout MS] [TLS options] COMMAND\n"
               "Client of proglog.\n\n"
               "Commands:\n"
               "  produce VALUE...                 append each VALUE; prints their offsets\n"
               "  produce -- VALUE...              the same, for values that start with --\n"
               "  produce -                        append each line of stdin\n"
               "  consume OFFSET                   print the record at OFFSET\n"
               "  consume --from OFFSET [--follow] print records from OFFSET to the log's end\n"
               "                                   (none when OFFSET is the end; OFFSET past\n"
               "                                   it exits 3, as for consume OFFSET)\n"
               "                                   --follow: keep waiting for new records;\n"
               "                                   from past the end, wait until the log\n"
               "                                   reaches OFFSET; a server restart is\n"
               "                                   waited out\n"
               "          [--offsets]              print \"OFFSET<TAB>VALUE\" lines\n"
               "  members                          print the cluster's members: name, status,\n"
               "                                   incarnation, tags (* marks the server)\n"
               "  servers                          print the Raft servers: id, RPC address,\n"
               "                                   leader, voter or learner\n"
               "  remove-server NAME               remove a server that is gone for good from\n"
               "                                   Raft's configuration (membership must see\n"
               "                                   it dead; needs the ACL's admin action);\n"
               "                                   waits until the leader lists it no more\n"
               "  offsets                          print the log's lowest offset and the\n"
               "                                   offset of its next record\n\n"
               "Options:\n"
               "  --addr URL     server address (default tls+tcp://127.0.0.1:8400)\n"
               "  --timeout MS   deadline of each request (default 5000, at most 2147483647)\n"
               "  --max-msg-bytes N  the largest request (default 4194304, at most 1073741824);\n"
               "                 a reply may be twice it: set it as the server's to consume\n"
               "                 larger records (a larger reply ends the connection)\n"
               "  --tls-cert-file F    our client certificate (PEM); its CN is who we are\n"
               "  --tls-key-file F     its private key (PEM, unencrypted)\n"
               "  --tls-ca-file F      the CA the server's certificate must chain to\n"
               "  --tls-server-name N  the name the server's certificate must carry\n"
               "                       (default: the host of --addr)\n"
               "  --consistency C      default (read what the server has applied) or\n"
               "                       linearizable (consume OFFSET only, through Raft's\n"
               "                       ReadIndex on the leader: sees every acknowledged\n"
               "                       produce; with any other command, a usage error)\n"
               "  --version      print proglogctl's version\n"
               "  --help\n\n"
               "Environment (a flag wins over its variable):\n"
               "  PROGLOG_ADDR          the default of --addr\n"
               "  PROGLOG_TLS_CERT_FILE, PROGLOG_TLS_KEY_FILE, PROGLOG_TLS_CA_FILE\n"
               "                        the defaults of the --tls-*-file options, used\n"
               "                        with a tls+tcp:// address only\n"
               "\n"
               "Exit status: 0 ok, 1 other error, 2 usage, 3 offset not found (out of\n"
               "range), 4 server unavailable, 5 deadline exceeded, 6 request rejected\n"
               "(including PERMISSION_DENIED and a refused certificate).\n");
}

/* env_or returns the environment variable name when it is set and not empty,
 * else def. */
static const char *env_or(const char *name, const char *def)
{
    const char *v = getenv(name);
    return v != NULL && v[0] != '\0' ? v : def;
}

static int exit_code(int status)
{
    switch (status) {
    case PLOG_STATUS_OK:
        return EXIT_OK;
    case PLOG_STATUS_OUT_OF_RANGE:
    case PLOG_STATUS_NOT_FOUND:
        return EXIT_NOT_FOUND;
    case PLOG_STATUS_UNAVAILABLE:
        return EXIT_UNAVAILABLE;
    case PLOG_STATUS_DEADLINE_EXCEEDED:
        return EXIT_DEADLINE;
    case PLOG_STATUS_INVALID_ARGUMENT:
    case PLOG_STATUS_RESOURCE_EXHAUSTED:
    case PLOG_STATUS_FAILED_PRECONDITION:
    case PLOG_STATUS_PERMISSION_DENIED:
    case PLOG_STATUS_UNAUTHENTICATED:
    case PLOG_STATUS_UNIMPLEMENTED:
        return EXIT_REJECTED;
    default:
        return EXIT_FAIL;
    }
}

/* put_status writes "CODE: message" to stderr. The message may quote what a peer
 * sent (ch04: a certificate's CN): control characters go out as \xNN, so that
 * nothing a server says can move the cursor or recolour the terminal. */
static void put_status(int code, const char *msg)
{
    fprintf(stderr, "%s: ", plog_rpc_status_name(code));
    for (const unsigned char *p = (const unsigned char *)msg; *p != '\0'; p++) {
        if (*p < 0x20 || *p == 0x7f)
            fprintf(stderr, "\\x%02x", *p);
        else
            fputc(*p, stderr);
    }
}

/* fail prints st and returns its exit status. */
static int fail(const plog_rpc_status *st)
{
    fputs("proglogctl: ", stderr);
    put_status(st->code, st->msg);
    fputc('\n', stderr);
    return exit_code(st->code);
}

/* The errno of the first write to stdout that failed, 0 while none has. SIGPIPE
 * is ignored (main), so a reader that went away (consume --follow | head -1) is
 * EPIPE here, not a signal: without this check a follower wrote into the closed
 * pipe for good, and output lost to a full disk (consume --from 0 > backup) exited
 * 0 (a black-box run found both). */
static int out_errno;

/* out_ok says whether stdout took every byte so far (flush: pushed to the kernel
 * first, which is when a write fails); it keeps the first failure's errno. */
static bool out_ok(bool flush)
{
    if (out_errno != 0)
        return false;
    if (flush)
        errno = 0; /* else errno is the failed write's, checked right after it */
    if ((flush && fflush(stdout) != 0) || ferror(stdout))
        out_errno = errno != 0 ? errno : EIO;
    return out_errno == 0;
}

/* out_check ends a command: when stdout lost output, it says so on stderr (not for
 * EPIPE: a reader that stopped reading, as head does, knows) and turns success into
 * EXIT_FAIL; any other exit status stands. */
static int out_check(int rc)
{
    if (out_ok(true))
        return rc;
    if (out_errno != EPIPE)
        fprintf(stderr, "proglogctl: cannot write the output: %s\n", strerror(out_errno));
    return rc == EXIT_OK ? EXIT_FAIL : rc;
}

static void print_ack(void *arg, uint64_t first, size_t n, int code, const char *msg)
{
    (void)msg;
    if (code != PLOG_STATUS_OK)
        return;          /* reported once by the flush */
    *(size_t *)arg += n; /* records acknowledged */
    for (size_t i = 0; i < n; i++)
        printf("%" PRIu64 "\n", first + i);
    out_ok(true); /* at once, even into a pipe: a killed producer has told every offset it got */
}

/* The command and its arguments, checked whole before anything is dialed: a
 * usage error exits 2 at once, whether or not a server answers. */
enum command_kind { CMD_PRODUCE, CMD_CONSUME, CMD_MEMBERS, CMD_SERVERS, CMD_OFFSETS, CMD_REMOVE_SERVER };

struct command {
    enum command_kind kind;
    int argc; /* produce: the values, or "-"; remove-server: NAME */
    char **argv;
    bool literal; /* produce: after "--": "-" is a value too */
    uint64_t off; /* consume: OFFSET, or where --from starts */
    bool from, follow, offsets;
    bool help; /* COMMAND --help: the usage, and nothing sent */
};

/* parse_consume: consume OFFSET | consume --from OFFSET [--follow], either with
 * [--offsets]; argv[0] is "consume". */
static int parse_consume(int argc, char **argv, struct command *cmd)
{
    static const struct option opts[] = {
        {"from", required_argument, NULL, 'f'},
        {"follow", no_argument, NULL, 'F'},
        {"offsets", no_argument, NULL, 'o'},
        {NULL, 0, NULL, 0},
    };
    static char prog[] = "proglogctl consume"; /* what getopt's own messages name */
    int ch;
    argv[0] = prog;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (ch == 'f') {
            if (plog_config_flag_u64("proglogctl", "--from", optarg, &cmd->off) != 0)
                return EXIT_USAGE;
            cmd->from = true;
        } else if (ch == 'F') {
            cmd->follow = true;
        } else if (ch == 'o') {
            cmd->offsets = true;
        } else {
            return EXIT_USAGE;
        }
    }
    if (!cmd->from) {
        if (optind != argc - 1 || cmd->follow) {
            fprintf(stderr, "proglogctl: consume: want OFFSET, or --from OFFSET [--follow]\n");
            return EXIT_USAGE;
        }
        if (plog_config_flag_u64("proglogctl", "OFFSET", argv[optind], &cmd->off) != 0)
            return EXIT_USAGE;
        return EXIT_OK;
    }
    if (optind != argc) {
        fprintf(stderr, "proglogctl: consume: unexpected argument: %s\n", argv[optind]);
        return EXIT_USAGE;
    }
    return EXIT_OK;
}

/* parse_command checks argv[0..argc) (argv[0] is the command, argc >= 1) into
 * *cmd: EXIT_OK, or EXIT_USAGE once it has said why on stderr. */
static int parse_command(int argc, char **argv, struct command *cmd)
{
    *cmd = (struct command){0};
    for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++)
        if (strcmp(argv[i], "--help") == 0) {
            cmd->help = true;
            return EXIT_OK;
        }
    if (strcmp(argv[0], "produce") == 0) {
        /* A word that starts with "--" is far likelier a misplaced option (--help,
         * --timeout after the command) than a value, and an appended record cannot
         * be taken back: refused, unless the values follow a "--". */
        if (argc >= 2 && strcmp(argv[1], "--") == 0) {
            cmd->literal = true;
            argc--, argv++;
        }
        for (int i = 1; i < argc && !cmd->literal; i++)
            if (strncmp(argv[i], "--", 2) == 0) {
                fprintf(stderr,
                        "proglogctl: produce: %s looks like an option (to produce it: produce -- VALUE...)\n",
                        argv[i]);
                return EXIT_USAGE;
            }
        if (argc < 2) {
            fprintf(stderr, "proglogctl: produce: want VALUE... or -\n");
            return EXIT_USAGE;
        }
        for (int i = 1; i < argc && argc > 2 && !cmd->literal; i++)
            if (strcmp(argv[i], "-") == 0) {
                fprintf(stderr, "proglogctl: produce: - reads the records from standard input and takes no "
                                "VALUE besides (to produce \"-\": produce -- VALUE...)\n");
                return EXIT_USAGE;
            }
        cmd->kind = CMD_PRODUCE;
        cmd->argc = argc - 1;
        cmd->argv = argv + 1;
        return EXIT_OK;
    }
    if (strcmp(argv[0], "consume") == 0) {
        cmd->kind = CMD_CONSUME;
        return parse_consume(argc, argv, cmd);
    }
    if (strcmp(argv[0], "members") == 0 || strcmp(argv[0], "servers") == 0 ||
        strcmp(argv[0], "offsets") == 0) {
        if (argc != 1) {
            fprintf(stderr, "proglogctl: %s: takes no arguments\n", argv[0]);
            return EXIT_USAGE;
        }
        cmd->kind = strcmp(argv[0], "members") == 0   ? CMD_MEMBERS
                    : strcmp(argv[0], "servers") == 0 ? CMD_SERVERS
                                                      : CMD_OFFSETS;
        return EXIT_OK;
    }
    if (strcmp(argv[0], "remove-server") == 0) {
        if (argc != 2 || argv[1][0] == '\0') {
            fprintf(stderr, "proglogctl: remove-server: want NAME, the server's name as servers prints it\n");
            return EXIT_USAGE;
        }
        cmd->kind = CMD_REMOVE_SERVER;
        cmd->argc = 1;
        cmd->argv = argv + 1;
        return EXIT_OK;
    }
    fprintf(stderr, "proglogctl: unknown command: %s\n", argv[0]);
    usage(stderr);
    return EXIT_USAGE;
}

/* The TLS files and address, for the router (ch06). */
static const char *g_addr, *g_cert, *g_key, *g_ca;
static plog_client_config g_cfg;

/* lines reads standard input in chunks and splits it at newlines, as getline
 * does, but says when the next read would wait: produce - then sends what it
 * has batched (records typed or piped in slowly are not held back until a
 * batch fills or the input ends). */
struct lines {
    char *buf;
    size_t cap, start, end;
    bool eof;
};

/* next_line sets *line and *len to the next line (without its newline; the
 * last one may lack it). Before a read that would wait for the input it calls
 * idle(arg), which may fail. 1: a line; 0: the end; -1: idle failed or the
 * read did (errno). */
static int next_line(struct lines *in, char **line, size_t *len, int (*idle)(void *), void *arg)
{
    for (;;) {
        char *nl = in->end > in->start ? memchr(in->buf + in->start, '\n', in->end - in->start) : NULL;
        if (nl != NULL || (in->eof && in->end > in->start)) {
            char *end = nl != NULL ? nl : in->buf + in->end;
            *line = in->buf + in->start;
            *len = (size_t)(end - *line);
            in->start = nl != NULL ? (size_t)(nl + 1 - in->buf) : in->end;
            return 1;
        }
        if (in->eof)
            return 0;
        if (in->start > 0) {
            memmove(in->buf, in->buf + in->start, in->end - in->start);
            in->end -= in->start;
            in->start = 0;
        }
        if (in->end == in->cap) {
            size_t cap = in->cap == 0 ? 64 * 1024 : in->cap * 2;
            char *b = realloc(in->buf, cap);
            if (b == NULL)
                return -1;
            in->buf = b;
            in->cap = cap;
        }
        struct pollfd p = {.fd = STDIN_FILENO, .events = POLLIN};
        if (poll(&p, 1, 0) == 0 && idle(arg) != 0)
            return -1;
        ssize_t n = read(STDIN_FILENO, in->buf + in->end, in->cap - in->end);
        if (n < 0 && errno != EINTR)
            return -1;
        if (n == 0)
            in->eof = true;
        else if (n > 0)
            in->end += (size_t)n;
    }
}

struct flush_arg {
    plog_client_producer *p;
    plog_rpc_status *st;
    int code; /* the last flush's */
};

/* flush_batched is next_line's idle for produce -. */
static int flush_batched(void *arg)
{
    struct flush_arg *a = arg;
    a->code = plog_client_producer_flush(a->p, a->st);
    return a->code == PLOG_STATUS_OK ? 0 : -1;
}

/* produce_failed reports a produce that failed after the first stored records
 * (an offset printed for each) and returns the exit status. */
static int produce_failed(int code, plog_rpc_status *st, size_t stored)
{
    const char *leaderless = "";
    if (code == PLOG_STATUS_FAILED_PRECONDITION && strncmp(st->msg, "not leader", 10) == 0) {
        /* The router found no leader in time and the server --addr names follows:
         * nothing was appended, and a retry may find the leader (exit 4, not 6, the
         * exit of a request that cannot succeed as it is; a black-box run under
         * failovers with a short --timeout got 6). */
        code = PLOG_STATUS_UNAVAILABLE;
        leaderless = " (no leader could be asked in time)";
    }
    /* One offset was printed per record stored, in order: say how many, since the
     * failed request's records may or may not be in the log. */
    char why[sizeof st->msg], kept[96];
    memcpy(why, st->msg, sizeof why);
    if (stored == 0)
        snprintf(kept, sizeof kept, "no offset was printed: none of the records given is known to be stored");
    else
        snprintf(kept, sizeof kept, "the first %zu records given are stored (an offset printed for each)",
                 stored);
    plog_rpc_status_set(st, code, "%.150s%s; %s", why, leaderless, kept);
    return fail(st);
}

/* A batch of produce_routed keeps the producer's bounds (stream.h): at most
 * PLOG_CLIENT_BATCH_RECORDS records and PLOG_CLIENT_BATCH_BYTES of values unless one
 * alone is larger; with --max-msg-bytes, a request of at most half of it. */

struct routed_batch {
    plog_loadbalance_router *r;
    plog_rpc_status *st;
    char *buf; /* the values, packed */
    size_t used, cap;
    size_t lens[PLOG_CLIENT_BATCH_RECORDS];
    size_t n;
    size_t stored; /* records acknowledged: an offset printed for each */
    int code;      /* the first failure */
};

/* routed_flush sends the batch as one produce (a batch is appended in one piece,
 * at contiguous offsets) and prints its offsets at once; it is next_line's idle
 * too. 0, or -1 with b->code and *b->st saying why. */
static int routed_flush(void *arg)
{
    struct routed_batch *b = arg;
    if (b->n == 0)
        return 0;
    const void *v[PLOG_CLIENT_BATCH_RECORDS];
    for (size_t i = 0, pos = 0; i < b->n; pos += b->lens[i++])
        v[i] = b->buf + pos;
    uint64_t off;
    b->code = plog_loadbalance_router_produce(b->r, v, b->lens, b->n, &off, b->st);
    if (b->code != PLOG_STATUS_OK)
        return -1;
    for (size_t i = 0; i < b->n; i++)
        printf("%" PRIu64 "\n", off + i);
    out_ok(true); /* as print_ack does */
    b->stored += b->n;
    b->n = b->used = 0;
    return 0;
}

/* routed_add adds a record to the batch, sending the batch first when the record
 * would take it past its bounds. 0, or -1 as routed_flush. */
static int routed_add(struct routed_batch *b, const char *value, size_t len)
{
    size_t half = g_cfg.max_msg_bytes / 2; /* 0: the client's default, far above a batch */
    bool full =
        b->n == PLOG_CLIENT_BATCH_RECORDS ||
        (b->n > 0 && (b->used + len > PLOG_CLIENT_BATCH_BYTES ||
                      (half > 0 && b->used + len + PLOG_CLIENT_RECORD_FRAMING_MAX * (b->n + 1) > half)));
    if (full && routed_flush(b) != 0)
        return -1;
    if (b->used + len > b->cap) {
        size_t cap = b->cap > 0 ? b->cap : 4096;
        while (cap < b->used + len)
            cap *= 2;
        char *nb = realloc(b->buf, cap);
        if (nb == NULL) {
            b->code = plog_rpc_status_set(b->st, PLOG_STATUS_RESOURCE_EXHAUSTED, "out of memory");
            return -1;
        }
        b->buf = nb;
        b->cap = cap;
    }
    if (len > 0)
        memcpy(b->buf + b->used, value, len);
    b->used += len;
    b->lens[b->n++] = len;
    return 0;
}

/* produce_routed produces through the router (ch06): the leader, whichever
 * server --addr names, in batches as the producer sends them (before, one record
 * per request: a few hundred a second). 1: the router could not be used (a lone
 * server answers GetServers UNIMPLEMENTED, a tcp:// address, a caller who may not
 * see the cluster, or no answer within --timeout): produce there directly, and
 * let that server answer (cmd_produce: a follower's "not leader" is then
 * UNAVAILABLE). */
static int produce_routed(const struct command *cmd, int *rc)
{
    plog_loadbalance_router *r;
    plog_rpc_status st;
    if (plog_loadbalance_router_open(g_addr, &g_cfg, g_cert, g_key, g_ca, &r, &st) != PLOG_STATUS_OK)
        return 1;
    struct routed_batch b = {.r = r, .st = &st, .code = PLOG_STATUS_OK};
    if (cmd->argc == 1 && strcmp(cmd->argv[0], "-") == 0 && !cmd->literal) {
        struct lines in = {0};
        char *line;
        size_t n;
        int more = 0;
        while (out_errno == 0 && (more = next_line(&in, &line, &n, routed_flush, &b)) == 1 &&
               routed_add(&b, line, n) == 0)
            ;
        if (more < 0 && b.code == PLOG_STATUS_OK)
            b.code = plog_rpc_status_set(&st, PLOG_STATUS_INTERNAL, "reading the input: %s", strerror(errno));
        free(in.buf);
    } else {
        for (int i = 0; i < cmd->argc && routed_add(&b, cmd->argv[i], strlen(cmd->argv[i])) == 0; i++)
            ;
    }
    if (b.code == PLOG_STATUS_OK)
        routed_flush(&b);
    free(b.buf);
    plog_loadbalance_router_close(r);
    out_ok(true); /* its errno kept, for out_check */
    *rc = b.code == PLOG_STATUS_OK ? EXIT_OK : produce_failed(b.code, &st, b.stored);
    return 0;
}

static int cmd_produce(plog_client *c, const struct command *cmd)
{
    int argc = cmd->argc;
    char **argv = cmd->argv;
    int rc;
    if (produce_routed(cmd, &rc) == 0)
        return rc;
    /* window 1: the records land in the order given, each batch after the last, and
     * none after a batch that failed (stream.h). */
    size_t acked = 0;
    plog_client_producer_config pc = {.window = 1, .ack = print_ack, .arg = &acked};
    plog_client_producer *p;
    plog_rpc_status st;
    if (plog_client_producer_open(c, &pc, &p, &st) != PLOG_STATUS_OK)
        return fail(&st);
    int code = PLOG_STATUS_OK;
    if (argc == 1 && strcmp(argv[0], "-") == 0 && !cmd->literal) {
        struct lines in = {0};
        struct flush_arg fa = {.p = p, .st = &st, .code = PLOG_STATUS_OK};
        char *line;
        size_t n;
        int more;
        size_t lineno = 0;
        while (code == PLOG_STATUS_OK && out_errno == 0 &&
               (more = next_line(&in, &line, &n, flush_batched, &fa)) == 1) {
            lineno++;
            if ((code = plog_client_producer_send(p, line, n, &st)) != PLOG_STATUS_OK) {
                char why[sizeof st.msg];
                memcpy(why, st.msg, sizeof why);
                plog_rpc_status_set(&st, code, "stopped at line %zu of the input: %.200s", lineno, why);
            }
        }
        if (code == PLOG_STATUS_OK && more < 0)
            code = fa.code != PLOG_STATUS_OK ? fa.code /* st says why */
                                             : plog_rpc_status_set(&st, PLOG_STATUS_INTERNAL,
                                                                   "reading the input: %s", strerror(errno));
        free(in.buf);
    } else {
        for (int i = 0; i < argc && code == PLOG_STATUS_OK; i++)
            code = plog_client_producer_send(p, argv[i], strlen(argv[i]), &st);
    }
    if (code == PLOG_STATUS_OK)
        code = plog_client_producer_flush(p, &st);
    plog_client_producer_close(p);
    out_ok(true); /* its errno kept, for out_check */
    return code == PLOG_STATUS_OK ? EXIT_OK : produce_failed(code, &st, acked);
}

static void print_record(const uint8_t *value, size_t len, uint64_t off, int offsets)
{
    if (offsets)
        printf("%" PRIu64 "\t", off);
    fwrite(value, 1, len, stdout);
    putchar('\n');
}

static bool g_linearizable; /* --consistency linearizable (ch06) */

/* A call on_leader makes: fn(c, arg, st) returns a PLOG_STATUS_* code. */
typedef int (*leader_fn)(plog_client *c, void *arg, plog_rpc_status *st);

/* on_leader makes fn's call through c and, when c's server answers "not leader;
 * leader at ADDR", once more through a client of ADDR, left in *other for the
 * caller to close (NULL when none was opened). "not leader" with no leader known
 * is UNAVAILABLE "no leader known": an election, or no majority, worth retrying,
 * and said as a produce says it (exit 4, not 6). */
static int on_leader(plog_client *c, plog_client **other, leader_fn fn, void *arg, plog_rpc_status *st)
{
    *other = NULL;
    int code = PLOG_STATUS_UNAVAILABLE;
    for (int attempt = 0; attempt < 2; attempt++) {
        code = fn(*other != NULL ? *other : c, arg, st);
        if (code != PLOG_STATUS_FAILED_PRECONDITION || strncmp(st->msg, "not leader", 10) != 0)
            break;
        const char *at = strstr(st->msg, "leader at ");
        if (at == NULL) {
            code = plog_rpc_status_set(st, PLOG_STATUS_UNAVAILABLE, "no leader known");
            break;
        }
        if (*other != NULL)
            break;
        char url[160], host[128], err[PLOG_TLS_ERRMSG_SIZE];
        snprintf(url, sizeof url, "%.*s%s", (int)(strstr(g_addr, "://") + 3 - g_addr), g_addr, at + 10);
        snprintf(host, sizeof host, "%s", at + 10);
        if (strrchr(host, ':') != NULL)
            *strrchr(host, ':') = '\0';
        plog_client_config cfg = g_cfg;
        if (g_ca != NULL && plog_tls_config_client(g_cert, g_key, g_ca, host, &cfg.tls, err, sizeof err) != 0)
            break;
        int rv = plog_client_open(url, &cfg, other, st);
        if (cfg.tls != NULL)
            nng_tls_config_free(cfg.tls);
        if (rv != PLOG_STATUS_OK) {
            code = rv;
            *other = NULL;
            break;
        }
    }
    return code;
}

struct read_args {
    uint64_t off;
    Log__V1__Record **rec;
};

static int read_linearizable(plog_client *c, void *arg, plog_rpc_status *st)
{
    struct read_args *r = arg;
    return plog_client_read(c, r->off, true, 0, r->rec, st);
}

/* consume_linearizable reads off through Raft's ReadIndex on the leader (ch06),
 * through the router: while an election goes on, or the leader cannot be
 * reached, it retries as a routed produce does, within --timeout (before, it
 * failed at once). Where the router cannot be used (see produce_routed) it asks
 * --addr's server, and follows a "not leader; leader at ADDR" answer once. */
static int consume_linearizable(plog_client *c, uint64_t off, Log__V1__Record **rec, plog_rpc_status *st)
{
    plog_loadbalance_router *r;
    if (plog_loadbalance_router_open(g_addr, &g_cfg, g_cert, g_key, g_ca, &r, st) == PLOG_STATUS_OK) {
        int code = plog_loadbalance_router_read(r, off, rec, st);
        plog_loadbalance_router_close(r);
        return code;
    }
    plog_client *other;
    struct read_args ra = {off, rec};
    int code = on_leader(c, &other, read_linearizable, &ra, st);
    plog_client_close(other);
    return code;
}

/* log_bounds asks the log's lowest offset and the offset of its next record: a
 * poll past any end reads nothing and answers at once with the bounds
 * (ConsumeResponse lowest_offset and end_offset). */
static int log_bounds(plog_client *c, uint64_t *lowest, uint64_t *end, plog_rpc_status *st)
{
    plog_client_consumer_config cc = {.max_records = 1};
    plog_client_consumer *it;
    if (plog_client_consumer_open(c, UINT64_MAX, &cc, &it) != PLOG_STATUS_OK)
        return plog_rpc_status_set(st, PLOG_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    const uint8_t *value;
    size_t len;
    uint64_t off;
    int code = plog_client_consumer_next(it, &value, &len, &off, st);
    if (code == PLOG_STATUS_OUT_OF_RANGE && plog_client_consumer_is_at_end(it))
        code = plog_rpc_status_set(st, PLOG_STATUS_OK, "%s", "");
    else if (code == PLOG_STATUS_OK)
        code = plog_rpc_status_set(st, PLOG_STATUS_INTERNAL, "a record past the end of the log");
    plog_client_consumer_bounds(it, lowest, end);
    plog_client_consumer_close(it);
    return code;
}

/* wait_for_server waits for the server of a follower whose connection broke (a
 * restart): it asks the log's bounds after 0.2 s, then at doubling intervals up to
 * 5 s, and says on stderr when the server answers again. A log that answers ending
 * before offset at, where the follower was, is said so too: a ch06 node serves
 * while it rebuilds its record log after a restart (so this is no error), but a
 * server restarted on another or an emptied data directory is not the log the
 * follower followed, and the records it prints from at on would not follow the
 * ones before. */
static int wait_for_server(plog_client *c, uint64_t at, plog_rpc_status *st)
{
    for (int wait_ms = 200;; wait_ms = wait_ms * 2 > 5000 ? 5000 : wait_ms * 2) {
        poll(NULL, 0, wait_ms);
        uint64_t lowest, end;
        int code = log_bounds(c, &lowest, &end, st);
        if (code == PLOG_STATUS_UNAVAILABLE || code == PLOG_STATUS_DEADLINE_EXCEEDED)
            continue;
        if (code != PLOG_STATUS_OK)
            return code;
        if (end < at)
            fprintf(
                stderr,
                "proglogctl: the server answers again, but its log ends at offset %llu, before offset %llu "
                "where this follower was; following from offset %llu once the log reaches it (a node still "
                "rebuilding its log after a restart, or not the log this follower followed)\n",
                (unsigned long long)end, (unsigned long long)at, (unsigned long long)at);
        else
            fprintf(stderr, "proglogctl: the server answers again; following from offset %llu\n",
                    (unsigned long long)at);
        return PLOG_STATUS_OK;
    }
}

/* next_following is plog_client_consumer_next; following, it waits out a server
 * that went away (a restart, a lost connection) with wait_for_server: the client's
 * open reached it, so it is worth waiting for. */
static int next_following(plog_client *c, plog_client_consumer *it, bool follow, const uint8_t **value,
                          size_t *len, uint64_t *off, plog_rpc_status *st)
{
    for (;;) {
        int code = plog_client_consumer_next(it, value, len, off, st);
        if (!follow || (code != PLOG_STATUS_UNAVAILABLE && code != PLOG_STATUS_DEADLINE_EXCEEDED))
            return code;
        fputs("proglogctl: ", stderr);
        put_status(code, st->msg);
        fputs("; waiting for the server (Ctrl-C stops)\n", stderr);
        if ((code = wait_for_server(c, plog_client_consumer_offset(it), st)) != PLOG_STATUS_OK)
            return code;
    }
}

static int cmd_consume(plog_client *c, const struct command *cmd)
{
    plog_rpc_status st;
    if (!cmd->from) {
        Log__V1__Record *rec;
        if ((g_linearizable ? consume_linearizable(c, cmd->off, &rec, &st)
                            : plog_client_consume(c, cmd->off, &rec, &st)) != PLOG_STATUS_OK)
            return fail(&st);
        print_record(rec->value.data, rec->value.len, rec->offset, cmd->offsets);
        log__v1__record__free_unpacked(rec, NULL);
        return EXIT_OK;
    }
    plog_client_consumer_config cc = {.follow = cmd->follow};
    plog_client_consumer *it;
    if (plog_client_consumer_open(c, cmd->off, &cc, &it) != PLOG_STATUS_OK) {
        fprintf(stderr, "proglogctl: out of memory\n");
        return EXIT_FAIL;
    }
    const uint8_t *value;
    size_t len;
    uint64_t off;
    int code;
    while ((code = next_following(c, it, cmd->follow, &value, &len, &off, &st)) == PLOG_STATUS_OK) {
        print_record(value, len, off, cmd->offsets);
        /* a follower's reader wants each record as it comes; once the output is
         * lost, reading on (or waiting for more) serves nobody */
        if (!out_ok(cmd->follow))
            break;
    }
    if (out_errno != 0) {
        plog_client_consumer_close(it);
        return EXIT_FAIL; /* main's out_check says why */
    }
    /* Reading to the end of the log is success; an offset below it (also
     * OUT_OF_RANGE, from the server) is not, nor one past the end: the server
     * answers a start there with no records and the end it has, which is below
     * the start (reading from the end itself gives nothing too, and succeeds). */
    bool at_end = code == PLOG_STATUS_OUT_OF_RANGE && plog_client_consumer_is_at_end(it);
    uint64_t lowest, end;
    plog_client_consumer_bounds(it, &lowest, &end);
    plog_client_consumer_close(it);
    out_ok(true); /* its errno kept, for out_check */
    if (!at_end)
        return fail(&st);
    if (cmd->off <= end)
        return EXIT_OK;
    plog_rpc_status_set(&st, PLOG_STATUS_OUT_OF_RANGE,
                        "offset out of range: %llu; the log's next offset is %llu",
                        (unsigned long long)cmd->off, (unsigned long long)end);
    return fail(&st);
}

/* offsets prints the log's bounds (log_bounds). */
static int cmd_offsets(plog_client *c)
{
    uint64_t lowest, end;
    plog_rpc_status st;
    if (log_bounds(c, &lowest, &end, &st) != PLOG_STATUS_OK)
        return fail(&st);
    printf("lowest %" PRIu64 "\nnext %" PRIu64 "\n", lowest, end);
    return EXIT_OK;
}

/* call sends req to method and unpacks the reply as a desc message (the
 * caller frees it with protobuf_c_message_free_unpacked). On failure it says
 * why on stderr, sets *rc to the exit status and returns NULL. */
static ProtobufCMessage *call(plog_client *c, plog_rpc_method method, const ProtobufCMessage *req,
                              const ProtobufCMessageDescriptor *desc, int *rc)
{
    nng_msg *reply;
    plog_rpc_reply rp;
    plog_rpc_status st;
    if (plog_client_call(c, plog_rpc_method_name(method), req, 0, 0, &reply, &rp, &st) != PLOG_STATUS_OK) {
        *rc = fail(&st);
        return NULL;
    }
    ProtobufCMessage *resp = protobuf_c_message_unpack(desc, NULL, rp.body_len, rp.body);
    nng_msg_free(reply);
    if (resp == NULL) {
        fprintf(stderr, "proglogctl: malformed %s\n", desc->short_name);
        *rc = EXIT_FAIL;
    }
    return resp;
}

/* put_escaped prints s with its control characters and backslashes as C escapes
 * (\n, \r, \t, \\, \xHH) and returns the bytes printed. A member's name and tags
 * come from gossip (a tag value may be any bytes but NUL) or from whatever
 * server answered: printed raw, a value could end the line and forge the next
 * member, or send the terminal escape sequences. */
static size_t put_escaped(const char *s)
{
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        const char *e = *p == '\n'   ? "\\n"
                        : *p == '\r' ? "\\r"
                        : *p == '\t' ? "\\t"
                        : *p == '\\' ? "\\\\"
                                     : NULL;
        if (e != NULL) {
            fputs(e, stdout);
            n += 2;
        } else if (*p < 0x20 || *p == 0x7f) {
            printf("\\x%02x", *p);
            n += 4;
        } else {
            putchar(*p);
            n++;
        }
    }
    return n;
}

/* pad ends a column of width that n bytes began: spaces up to width, then the
 * one that separates the columns. */
static void pad(size_t n, size_t width)
{
    for (; n < width; n++)
        putchar(' ');
    putchar(' ');
}

static int cmd_members(plog_client *c)
{
    Log__V1__GetMembersRequest req = LOG__V1__GET_MEMBERS_REQUEST__INIT;
    int rc;
    Log__V1__GetMembersResponse *resp = (Log__V1__GetMembersResponse *)call(
        c, PLOG_METHOD_GET_MEMBERS, &req.base, &log__v1__get_members_response__descriptor, &rc);
    if (resp == NULL)
        return rc;
    printf("%-20s %-8s %-12s %s\n", "NAME", "STATUS", "INCARNATION", "TAGS");
    for (size_t i = 0; i < resp->n_members; i++) {
        const Log__V1__Member *m = resp->members[i];
        size_t n = put_escaped(m->name);
        if (m->is_self) {
            putchar('*');
            n++;
        }
        pad(n, 20);
        pad(put_escaped(m->status), 8);
        printf("%-12" PRIu64 " ", m->incarnation);
        for (size_t j = 0; j < m->n_tags; j++) {
            if (j > 0)
                putchar(',');
            put_escaped(m->tags[j]->key);
            putchar('=');
            put_escaped(m->tags[j]->value);
        }
        putchar('\n');
    }
    log__v1__get_members_response__free_unpacked(resp, NULL);
    out_ok(true); /* its errno kept, for out_check */
    return EXIT_OK;
}

/* cmd_servers prints the Raft servers (GetServers, ch06). */
static int cmd_servers(plog_client *c)
{
    Log__V1__GetServersRequest req = LOG__V1__GET_SERVERS_REQUEST__INIT;
    int rc;
    Log__V1__GetServersResponse *resp = (Log__V1__GetServersResponse *)call(
        c, PLOG_METHOD_GET_SERVERS, &req.base, &log__v1__get_servers_response__descriptor, &rc);
    if (resp == NULL)
        return rc;
    printf("%-20s %-24s %-8s %s\n", "ID", "RPC_ADDR", "LEADER", "ROLE");
    for (size_t i = 0; i < resp->n_servers; i++) {
        const Log__V1__Server *s = resp->servers[i];
        /* A voter this node has not yet heard of through gossip has no name or
         * address. The address is a member's rpc_addr tag: escaped as in members. */
        pad(put_escaped(s->id[0] != '\0' ? s->id : "?"), 20);
        pad(put_escaped(s->rpc_addr[0] != '\0' ? s->rpc_addr : "?"), 24);
        printf("%-8s %s\n", s->is_leader ? "leader" : "-", s->is_voter ? "voter" : "learner");
    }
    log__v1__get_servers_response__free_unpacked(resp, NULL);
    out_ok(true); /* its errno kept, for out_check */
    return EXIT_OK;
}

static int remove_server(plog_client *c, void *arg, plog_rpc_status *st)
{
    Log__V1__RemoveServerRequest req = LOG__V1__REMOVE_SERVER_REQUEST__INIT;
    req.id = arg;
    nng_msg *reply;
    plog_rpc_reply rp;
    int code = plog_client_call(c, plog_rpc_method_name(PLOG_METHOD_REMOVE_SERVER), &req.base, 0, 0, &reply,
                                &rp, st);
    if (code == PLOG_STATUS_OK)
        nng_msg_free(reply);
    return code;
}

/* cmd_remove_server asks the leader to remove the server name (ch06), then
 * waits within --timeout until the leader's configuration lists it no more. */
static int cmd_remove_server(plog_client *c, const char *name)
{
    plog_client *other;
    plog_rpc_status st;
    if (on_leader(c, &other, remove_server, (void *)name, &st) != PLOG_STATUS_OK) {
        plog_client_close(other);
        return fail(&st);
    }
    uint64_t until = plog_rpc_now_unix_ms() + g_cfg.timeout_ms;
    int rc = EXIT_OK;
    for (bool listed = true; listed && rc == EXIT_OK;) {
        Log__V1__GetServersRequest req = LOG__V1__GET_SERVERS_REQUEST__INIT;
        Log__V1__GetServersResponse *resp =
            (Log__V1__GetServersResponse *)call(other != NULL ? other : c, PLOG_METHOD_GET_SERVERS, &req.base,
                                                &log__v1__get_servers_response__descriptor, &rc);
        if (resp == NULL)
            break;
        listed = false;
        for (size_t i = 0; i < resp->n_servers; i++)
            listed |= strcmp(resp->servers[i]->id, name) == 0;
        log__v1__get_servers_response__free_unpacked(resp, NULL);
        if (listed && plog_rpc_now_unix_ms() >= until) {
            plog_rpc_status_set(&st, PLOG_STATUS_DEADLINE_EXCEEDED,
                                "the leader took the removal of %s on, but still lists it after %u ms (a "
                                "new leader drops it: see servers, and ask again)",
                                name, g_cfg.timeout_ms);
            rc = fail(&st);
        } else if (listed)
            poll(NULL, 0, 20);
    }
    plog_client_close(other);
    if (rc == EXIT_OK)
        printf("removed %s\n", name);
    return rc;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"addr", required_argument, NULL, 'a'},
        {"timeout", required_argument, NULL, 't'},
        {"max-msg-bytes", required_argument, NULL, 'm'},
        {"tls-cert-file", required_argument, NULL, 'C'},
        {"tls-key-file", required_argument, NULL, 'K'},
        {"tls-ca-file", required_argument, NULL, 'A'},
        {"tls-server-name", required_argument, NULL, 'N'},
        {"consistency", required_argument, NULL, 'c'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    const char *addr = env_or("PROGLOG_ADDR", NULL);
    const char *addr_from = addr != NULL ? "PROGLOG_ADDR" : "--addr"; /* named in its error */
    if (addr == NULL)
        addr = "tls+tcp://127.0.0.1:8400";
    const char *cert = NULL, *key = NULL, *ca = NULL, *server_name = NULL;
    plog_client_config cfg = {.timeout_ms = 5000};
    uint64_t v;
    int ch;
    static char prog[] = "proglogctl"; /* what getopt's own messages name, whatever path ran us */
    argv[0] = prog;
    /* "+": stop at the command; its own options are parsed by the command. */
    while ((ch = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
        switch (ch) {
        case 'a':
            addr = optarg;
            addr_from = "--addr";
            break;
        case 't':
            /* One line for either mistake, naming the range. */
            if (plog_config_flag_u64("proglogctl", "--timeout (1..2147483647 ms)", optarg, &v) != 0)
                return EXIT_USAGE;
            if (v == 0 || v > PLOG_CLIENT_MAX_TIMEOUT_MS) {
                fprintf(stderr, "proglogctl: --timeout (1..%d ms): out of range: %s\n",
                        PLOG_CLIENT_MAX_TIMEOUT_MS, optarg);
                return EXIT_USAGE;
            }
            cfg.timeout_ms = (uint32_t)v;
            break;
        case 'm': /* the server's range (internal/config/flag.c) */
            if (plog_config_flag_server("proglogctl", "--max-msg-bytes", optarg, &v) != 0)
                return EXIT_USAGE;
            cfg.max_msg_bytes = (size_t)v;
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
        case 'N':
            server_name = optarg;
            break;
        case 'c':
            if (strcmp(optarg, "linearizable") == 0)
                g_linearizable = true;
            else if (strcmp(optarg, "default") != 0) {
                fprintf(stderr, "proglogctl: --consistency: want default or linearizable: %s\n", optarg);
                return EXIT_USAGE;
            }
            break;
        case 'h':
            usage(stdout);
            return out_check(EXIT_OK);
        case 'V':
            printf("proglogctl %s\n", VERSION);
            return out_check(EXIT_OK);
        default:
            usage(stderr);
            return EXIT_USAGE;
        }
    }
    if (optind >= argc) {
        usage(stderr);
        return EXIT_USAGE;
    }
    struct command cmd;
    static const char *const schemes[] = {"tls+tcp", "tcp", NULL};
    if (parse_command(argc - optind, argv + optind, &cmd) != EXIT_OK)
        return EXIT_USAGE;
    if (cmd.help) {
        usage(stdout);
        return EXIT_OK;
    }
    if (plog_config_flag_url("proglogctl", addr_from, addr, schemes) != 0)
        return EXIT_USAGE;
    if (g_linearizable && (cmd.kind != CMD_CONSUME || cmd.from)) {
        /* Only Consume reads through ReadIndex; ConsumeStream reads what the
         * server has applied, and the other commands read no records. */
        fprintf(stderr, "proglogctl: --consistency linearizable applies to consume OFFSET only, not to %s\n",
                cmd.kind == CMD_CONSUME ? "consume --from" : argv[optind]);
        return EXIT_USAGE;
    }
    if (plog_tls_url_is_tls(addr)) {
        /* The environment fills in what no flag gave: flags win. */
        cert = cert != NULL ? cert : env_or("PROGLOG_TLS_CERT_FILE", NULL);
        key = key != NULL ? key : env_or("PROGLOG_TLS_KEY_FILE", NULL);
        ca = ca != NULL ? ca : env_or("PROGLOG_TLS_CA_FILE", NULL);
    }
    if (plog_tls_url_is_tls(addr) ? (ca == NULL || (cert == NULL) != (key == NULL))
                                  : (ca != NULL || cert != NULL || key != NULL)) {
        fprintf(stderr,
                plog_tls_url_is_tls(addr) ? "proglogctl: %s needs --tls-ca-file, and --tls-cert-file with "
                                            "--tls-key-file\n"
                                          : "proglogctl: TLS options need a tls+tcp:// address, not %s\n",
                addr);
        return EXIT_USAGE;
    }
    signal(SIGPIPE, SIG_IGN);
    char host[256], err[PLOG_TLS_ERRMSG_SIZE];
    if (ca != NULL) {
        if (server_name == NULL && plog_tls_url_host(addr, host, sizeof host) == 0)
            server_name = host;
        if (plog_tls_config_client(cert, key, ca, server_name, &cfg.tls, err, sizeof err) != 0) {
            fprintf(stderr, "proglogctl: %s\n", err);
            return EXIT_USAGE;
        }
    }
    g_addr = addr;
    g_cert = cert;
    g_key = key;
    g_ca = ca;
    g_cfg = cfg;
    g_cfg.tls = NULL;
    plog_client *c;
    plog_rpc_status st;
    int rv = plog_client_open(addr, &cfg, &c, &st);
    if (cfg.tls != NULL)
        nng_tls_config_free(cfg.tls); /* the client holds its own reference */
    if (rv != PLOG_STATUS_OK) {
        int rc = fail(&st);
        return st.code == PLOG_STATUS_INVALID_ARGUMENT ? EXIT_USAGE : rc; /* bad --addr */
    }
    int rc = cmd.kind == CMD_PRODUCE         ? cmd_produce(c, &cmd)
             : cmd.kind == CMD_MEMBERS       ? cmd_members(c)
             : cmd.kind == CMD_SERVERS       ? cmd_servers(c)
             : cmd.kind == CMD_OFFSETS       ? cmd_offsets(c)
             : cmd.kind == CMD_REMOVE_SERVER ? cmd_remove_server(c, cmd.argv[0])
                                             : cmd_consume(c, &cmd);
    plog_client_close(c);
    return out_check(rc);
}
