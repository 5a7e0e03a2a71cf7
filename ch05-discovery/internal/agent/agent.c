/* agent.c - one node: log, server, membership, replicator (see agent.h).
 *
 * Data directory:
 *   DATA_DIR/node-name   the name the directory belongs to (one line), written
 *                        atomically (temp file, fsync, rename, fsync dir) once
 *   DATA_DIR/log/        the segments */
#include "internal/agent/agent.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal/agent/rejoin.h"
#include "internal/auth/authorizer.h"
#include "internal/discovery/gossip.h"
#include "internal/err/err.h"
#include "internal/log/dirsize.h"
#include "internal/metrics/http.h"
#include "internal/metrics/metrics.h"
#include "internal/rpc/closer.h"
#include "internal/server/server.h"
#include "internal/tls/config.h"
#include "internal/tls/engine.h"

#define PATH_SIZE 1024
#define NAME_SIZE 128
#define ADDR_SIZE 272

struct plog_agent {
    plog_agent_config cfg;
    char data_dir[PATH_SIZE], log_dir[PATH_SIZE + 8], name[NAME_SIZE], bind[ADDR_SIZE];
    char server_cert[PATH_SIZE], server_key[PATH_SIZE], server_ca[PATH_SIZE];
    char peer_cert[PATH_SIZE], peer_key[PATH_SIZE], peer_ca[PATH_SIZE];
    char acl_model[PATH_SIZE], acl_policy[PATH_SIZE]; /* read again by plog_agent_reload */
    char rpc_url[ADDR_SIZE + 16], rpc_hostport[ADDR_SIZE];

    int dir_fd; /* holds the lock on data_dir (lock_dir) */
    plog_log *log;
    nng_tls_config *server_tls;
    plog_auth *acl;
    plog_metrics *metrics;
    plog_metrics_http *http;
    plog_server *srv;
    plog_replicator *repl;
    pthread_mutex_t mu; /* disc, against GetMembers while stopping */
    plog_discovery *disc;
    plog_agent_rejoin known; /* the members seen, for the next start (rejoin.h) */
    size_t njoin;            /* join addresses tried at start (given and remembered) */
    bool joins_self;         /* each of them is our own --bind-addr */
};

/* lock_dir takes the node's exclusive lock on its data directory (flock, as
 * the log takes on its own directory: internal/log/log.h) before anything in
 * it is read or written: a second proglog started on the same directory (a
 * second `make run`, a mistyped port) must fail without touching the files of
 * the node that runs there. The kernel drops the lock with the descriptor,
 * so a node killed with kill -9 leaves none behind. */
static int lock_dir(const char *dir, int *fdp, char *err, size_t errsize)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        plog_errf(err, errsize, "open %s: %s", dir, strerror(errno));
        return PLOG_EIO;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        if (errno == EWOULDBLOCK)
            plog_errf(err, errsize, "data directory %s is in use by another process", dir);
        else
            plog_errf(err, errsize, "lock %s: %s", dir, strerror(errno));
        close(fd);
        return PLOG_EIO;
    }
    *fdp = fd;
    return PLOG_OK;
}

/* bind_name checks (or, the first time, records) the directory's node name. */
static int bind_name(const char *dir, const char *name, char *err, size_t errsize)
{
    char path[PATH_SIZE + 16], tmp[PATH_SIZE + 32], have[NAME_SIZE + 2] = "";
    snprintf(path, sizeof path, "%s/node-name", dir);
    FILE *f = fopen(path, "r");
    if (f != NULL) {
        bool read = fgets(have, sizeof have, f) != NULL || !ferror(f);
        int e = errno;
        fclose(f);
        if (!read) { /* a directory in its place: EISDIR */
            plog_errf(err, errsize, "%s: %s", path, strerror(e));
            return PLOG_EIO;
        }
        have[strcspn(have, "\n")] = '\0';
        /* Written whole through a rename, so empty means damaged. Before, this
         * said the directory belonged to node "", as if another node made it. */
        if (have[0] == '\0') {
            plog_errf(err, errsize,
                      "%s is empty (damaged): it names the node whose log %s holds; if that is \"%s\", "
                      "write the name there",
                      path, dir, name);
            return PLOG_ECORRUPT;
        }
        if (strcmp(have, name) != 0) {
            plog_errf(err, errsize,
                      "%s belongs to node \"%s\", not \"%s\": a node's log and name go together "
                      "(the other nodes' replication positions count its offsets)",
                      dir, have, name);
            return PLOG_EINVAL;
        }
        return PLOG_OK;
    }
    if (errno != ENOENT) {
        plog_errf(err, errsize, "%s: %s", path, strerror(errno));
        return PLOG_EIO;
    }
    snprintf(tmp, sizeof tmp, "%s/node-name.tmp", dir);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        plog_errf(err, errsize, "%s: %s", tmp, strerror(errno));
        return PLOG_EIO;
    }
    char line[NAME_SIZE + 2];
    int n = snprintf(line, sizeof line, "%s\n", name);
    bool ok = write(fd, line, (size_t)n) == n && fsync(fd) == 0;
    close(fd);
    if (!ok || rename(tmp, path) != 0) {
        plog_errf(err, errsize, "%s: %s", path, strerror(errno));
        unlink(tmp);
        return PLOG_EIO;
    }
    int dfd = open(dir, O_RDONLY | O_DIRECTORY);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    return PLOG_OK;
}

/* load_known reads the members seen before this start (rejoin.h); a list that
 * cannot be read only costs a slower rejoin. */
static void load_known(plog_agent *a)
{
    size_t skipped;
    int rv = plog_agent_rejoin_load(&a->known, a->data_dir, &skipped);
    if (rv == PLOG_OK && skipped == 0)
        return;
    char n[24];
    snprintf(n, sizeof n, "%zu", skipped);
    if (rv != PLOG_OK)
        plog_logger_log(a->cfg.logger, PLOG_LOGGER_WARN, "remembered members not all read", "file",
                        a->known.path, "err", plog_strerror(rv), "lines_skipped", n, NULL);
    else /* an err= here read "ok" */
        plog_logger_log(a->cfg.logger, PLOG_LOGGER_WARN, "remembered members not all read", "file",
                        a->known.path, "lines_skipped", n, NULL);
}

/* no_scheme: addr without its tls+tcp:// (a join address may carry it). */
static const char *no_scheme(const char *addr)
{
    const char *p = strstr(addr, "://");
    return p != NULL ? p + 3 : addr;
}

/* join_list is what membership joins through: the configured addresses, then
 * the remembered members' (at most PLOG_AGENT_REJOIN_MAX in all); it notes
 * whether they are all our own address. */
static size_t join_list(plog_agent *a, const char **join)
{
    size_t n = 0;
    for (size_t i = 0; i < a->cfg.njoin; i++) /* at most PLOG_AGENT_REJOIN_MAX: check_config */
        join[n++] = a->cfg.start_join_addrs[i];
    size_t given = n;
    plog_agent_rejoin_join_list(&a->known, join, PLOG_AGENT_REJOIN_MAX, &n);
    if (n > given) {
        char members[24];
        snprintf(members, sizeof members, "%zu", n - given);
        plog_logger_log(a->cfg.logger, PLOG_LOGGER_INFO, "rejoining the members seen before", "file",
                        a->known.path, "members", members, NULL);
    }
    a->joins_self = n > 0;
    for (size_t i = 0; i < n; i++)
        a->joins_self &= strcmp(no_scheme(join[i]), no_scheme(a->cfg.bind_addr)) == 0;
    return n;
}

/* remember keeps the member list of DATA_DIR/members up to date (rejoin.h): a
 * member that failed stays in it, one that left goes. */
static void remember(plog_agent *a, const plog_membership_event *ev)
{
    int rv = PLOG_OK;
    if (strcmp(ev->member.name, a->name) == 0)
        return;
    if (ev->type == PLOG_MEMBERSHIP_JOIN || ev->type == PLOG_MEMBERSHIP_UPDATE)
        rv = plog_agent_rejoin_saw(&a->known, ev->member.name, ev->member.addr);
    else if (ev->type == PLOG_MEMBERSHIP_LEAVE)
        rv = plog_agent_rejoin_left(&a->known, ev->member.name);
    if (rv != PLOG_OK)
        plog_logger_log(a->cfg.logger, PLOG_LOGGER_WARN, "cannot remember the members for the next start",
                        "file", a->known.path, "err", plog_strerror(rv), NULL);
}

/* name_part puts "what: " before err, the failure of one part of the node, so
 * that the operator knows which flag to look at (two ports clash, say). */
static void name_part(char *err, size_t errsize, const char *what)
{
    char was[512];
    snprintf(was, sizeof was, "%s", err);
    snprintf(err, errsize, "%s: %s", what, was);
}

/* on_failed: the node must stop for good; the program is told. */
static void on_failed(void *arg, const char *why)
{
    plog_agent *a = arg;
    if (a->cfg.failed != NULL)
        a->cfg.failed(a->cfg.failed_arg, why);
}

/* name_clash: another process runs under a node name (membership.h): a
 * namesake of ours or of another member, whose claims the cluster ignores, is
 * reported; a name found taken when this node joined stops this node. */
static void name_clash(plog_agent *a, const plog_membership_event *ev)
{
    if (ev->type == PLOG_MEMBERSHIP_CONFLICT) {
        plog_logger_log(a->cfg.logger, PLOG_LOGGER_WARN, "node name conflict", "name", ev->member.name,
                        "other_addr", ev->member.addr, "hint",
                        "another process was started with this --node-name; the cluster keeps the node it "
                        "knew first and ignores the other: stop the other one",
                        NULL);
        return;
    }
    char why[PLOG_GOSSIP_MAX_NAME + PLOG_GOSSIP_MAX_ADDR + 64];
    snprintf(why, sizeof why, "node name %s is taken: a node of that name is alive at %s", ev->member.name,
             ev->member.addr);
    plog_logger_log(a->cfg.logger, PLOG_LOGGER_ERROR, "node name taken", "name", ev->member.name,
                    "holder_addr", ev->member.addr, "hint",
                    "node names must be unique in a cluster: give this node another --node-name and data "
                    "directory, or stop the other node first; if that is this node's own earlier run "
                    "(killed), start again once the others found it dead (seconds)",
                    NULL);
    on_failed(a, why);
}

/* on_event: membership drives replication (Go: the Handler's Join and Leave). A
 * failed member is stopped like a leaving one; its next join resumes it. */
static void on_event(void *arg, const plog_membership_event *ev)
{
    plog_agent *a = arg;
    if (ev->type == PLOG_MEMBERSHIP_CONFLICT || ev->type == PLOG_MEMBERSHIP_NAME_TAKEN) {
        name_clash(a, ev);
        return;
    }
    const char *rpc = plog_membership_tag(&ev->member, "rpc_addr");
    const char *kind = ev->type == PLOG_MEMBERSHIP_JOIN     ? "join"
                       : ev->type == PLOG_MEMBERSHIP_LEAVE  ? "leave"
                       : ev->type == PLOG_MEMBERSHIP_FAILED ? "failed"
                                                            : "update";
    /* Quoted and escaped by the logger: a tag value may be any bytes but NUL
     * (gossip.c), and a newline in it must not forge a line of this log. */
    char inc[24];
    snprintf(inc, sizeof inc, "%llu", (unsigned long long)ev->member.incarnation);
    plog_logger_log(a->cfg.logger, PLOG_LOGGER_INFO, "member", "event", kind, "name", ev->member.name, "addr",
                    ev->member.addr, "rpc_addr", rpc != NULL ? rpc : "", "incarnation", inc, NULL);
    remember(a, ev);
    switch (ev->type) {
    case PLOG_MEMBERSHIP_JOIN:
    case PLOG_MEMBERSHIP_UPDATE:
        if (rpc != NULL)
            plog_replicator_join(a->repl, ev->member.name, rpc);
        break;
    case PLOG_MEMBERSHIP_LEAVE:
    case PLOG_MEMBERSHIP_FAILED:
        plog_replicator_leave(a->repl, ev->member.name);
        break;
    default:
        break;
    }
}

/* on_published: the replicator appended and committed records below next. */
static void on_published(void *arg, uint64_t next)
{
    plog_agent *a = arg;
    plog_server_publish(a->srv, next);
}

static const char *status_name(int s)
{
    switch (s) {
    case PLOG_GOSSIP_ALIVE:
        return "alive";
    case PLOG_GOSSIP_SUSPECT:
        return "suspect";
    case PLOG_GOSSIP_DEAD:
        return "dead";
    case PLOG_GOSSIP_LEFT:
        return "left";
    default:
        return "unknown";
    }
}

/* get_members answers GetMembers: the membership's view, encoded. */
static int get_members(void *arg, uint8_t **buf, size_t *len)
{
    plog_agent *a = arg;
    plog_membership_member *v;
    size_t n;
    pthread_mutex_lock(&a->mu);
    int got = a->disc == NULL ? PLOG_EINVAL : plog_discovery_members(a->disc, &v, &n);
    pthread_mutex_unlock(&a->mu);
    if (got != PLOG_OK)
        return got;
    Log__V1__GetMembersResponse resp = LOG__V1__GET_MEMBERS_RESPONSE__INIT;
    Log__V1__Member *ms = calloc(n + 1, sizeof *ms);
    Log__V1__Member **mp = calloc(n + 1, sizeof *mp);
    size_t ntags = 0;
    for (size_t i = 0; i < n; i++)
        ntags += v[i].ntags;
    Log__V1__Tag *ts = calloc(ntags + 1, sizeof *ts);
    Log__V1__Tag **tp = calloc(ntags + 1, sizeof *tp);
    int rv = PLOG_ENOMEM;
    if (ms == NULL || mp == NULL || ts == NULL || tp == NULL)
        goto out;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        log__v1__member__init(&ms[i]);
        ms[i].name = v[i].name;
        ms[i].addr = v[i].addr;
        ms[i].status = (char *)status_name(v[i].status);
        ms[i].incarnation = v[i].incarnation;
        ms[i].is_self = strcmp(v[i].name, a->name) == 0;
        ms[i].tags = &tp[k];
        ms[i].n_tags = v[i].ntags;
        for (size_t j = 0; j < v[i].ntags; j++, k++) {
            log__v1__tag__init(&ts[k]);
            ts[k].key = v[i].tags[j].key;
            ts[k].value = v[i].tags[j].value;
            tp[k] = &ts[k];
        }
        mp[i] = &ms[i];
    }
    resp.members = mp;
    resp.n_members = n;
    *len = log__v1__get_members_response__get_packed_size(&resp);
    if ((*buf = malloc(*len + 1)) == NULL)
        goto out;
    log__v1__get_members_response__pack(&resp, *buf);
    rv = PLOG_OK;
out:
    free(tp);
    free(ts);
    free(mp);
    free(ms);
    free(v);
    return rv;
}

static int64_t gauge_failed(void *arg)
{
    return plog_log_failed(((plog_agent *)arg)->log, NULL, 0) ? 1 : 0;
}

static int64_t gauge_next(void *arg)
{
    return (int64_t)plog_log_next_offset(((plog_agent *)arg)->log);
}

static int64_t gauge_lowest(void *arg)
{
    return (int64_t)plog_log_lowest_offset(((plog_agent *)arg)->log);
}

/* gauge_size: the bytes of the log's segment files (internal/log/dirsize.h). */
static int64_t gauge_size(void *arg)
{
    return plog_log_dir_bytes(((plog_agent *)arg)->log_dir);
}

static int64_t gauge_alive(void *arg)
{
    plog_discovery_stats st;
    plog_discovery_stats_get(((plog_agent *)arg)->disc, &st);
    return (int64_t)st.alive;
}

/* A close of nng 1.5.2 takes milliseconds; one that has waited this long waits on a
 * stuck reaper, for good. */
#define REAPER_STUCK_MS 10000

bool plog_agent_reaper_stuck(const plog_agent *a)
{
    (void)a; /* nng's reaper is the process's */
    return plog_rpc_closer_busy_ms() > REAPER_STUCK_MS;
}

static int64_t gauge_reaper_stuck(void *arg)
{
    return plog_agent_reaper_stuck(arg);
}

static int64_t gauge_dropped(void *arg)
{
    plog_discovery_stats st;
    plog_discovery_stats_get(((plog_agent *)arg)->disc, &st);
    return (int64_t)(st.bad_version + st.bad_size + st.bad_format + st.spoofed + st.transport.denied +
                     st.transport.unauthenticated + st.transport.oversize);
}

static int64_t gauge_replicated(void *arg)
{
    plog_replicator_stats st;
    plog_replicator_stats_get(((plog_agent *)arg)->repl, &st);
    return (int64_t)st.records;
}

static void copy(char *dst, size_t size, const char *src)
{
    snprintf(dst, size, "%s", src != NULL ? src : "");
}

bool plog_agent_is_valid_name(const char *name)
{
    return plog_gossip_is_valid_name(name, PLOG_GOSSIP_MAX_NAME);
}

static int check_config(const plog_agent_config *c, char *err, size_t errsize)
{
    const char *missing = c->data_dir == NULL               ? "data dir"
                          : c->node_name == NULL            ? "node name"
                          : c->bind_addr == NULL            ? "bind address"
                          : c->rpc_port == 0                ? "RPC port"
                          : c->server_tls_cert_file == NULL ? "server TLS certificate"
                          : c->server_tls_key_file == NULL  ? "server TLS key"
                          : c->server_tls_ca_file == NULL   ? "server TLS CA"
                          : c->peer_tls_cert_file == NULL   ? "peer TLS certificate"
                          : c->peer_tls_key_file == NULL    ? "peer TLS key"
                          : c->peer_tls_ca_file == NULL     ? "peer TLS CA"
                          : c->acl_policy_file == NULL      ? "ACL policy"
                                                            : NULL;
    if (missing != NULL) {
        plog_errf(err, errsize, "agent: the %s is required", missing);
        return PLOG_EINVAL;
    }
    /* Before the data directory is bound to it (DATA_DIR/node-name): membership
     * would refuse it only once the log is open. */
    if (!plog_agent_is_valid_name(c->node_name)) {
        plog_errf(err, errsize,
                  "agent: bad node name \"%s\": want 1..%d printable ASCII characters without spaces",
                  c->node_name, PLOG_GOSSIP_MAX_NAME);
        return PLOG_EINVAL;
    }
    const char *colon = strrchr(c->bind_addr, ':');
    if (colon == NULL || colon == c->bind_addr || colon[1] == '\0' ||
        strlen(c->bind_addr) >= ADDR_SIZE - 16) {
        plog_errf(err, errsize, "agent: bad bind address \"%s\" (want HOST:PORT)", c->bind_addr);
        return PLOG_EINVAL;
    }
    if (c->njoin > PLOG_AGENT_REJOIN_MAX) {
        plog_errf(err, errsize, "agent: at most %d join addresses", PLOG_AGENT_REJOIN_MAX);
        return PLOG_EINVAL;
    }
    /* The others know a node by its certificate's CN (gossip from another name is
     * dropped as spoofed): a name that is not it could never join. An unreadable
     * file is reported where the transport loads it. */
    char cn[PLOG_TLS_CN_SIZE];
    if (plog_tls_cert_cn(c->peer_tls_cert_file, cn, sizeof cn) == PLOG_OK && strcmp(cn, c->node_name) != 0) {
        plog_errf(err, errsize,
                  "agent: the node name \"%s\" is not the CN of the peer certificate %s (\"%s\")",
                  c->node_name, c->peer_tls_cert_file, cn);
        return PLOG_EINVAL;
    }
    return PLOG_OK;
}

/* on_tls_failure logs a refused handshake on the RPC port (as single-server mode). */
static void on_tls_failure(void *arg, const char *remote, const char *reason)
{
    plog_logger_log(arg, PLOG_LOGGER_WARN, "tls_handshake_failed", "remote", remote, "err", reason, NULL);
}

/* on_gossip_refused logs a peer the gossip listener refused: a failed handshake
 * (an unknown CA, a bad certificate) or a CN the ACL does not let gossip. The
 * refused node never becomes a member: this line is its only trace here. */
static void on_gossip_refused(void *arg, const char *remote, const char *why)
{
    plog_agent *a = arg;
    plog_logger_log(a->cfg.logger, PLOG_LOGGER_WARN, "peer_refused", "listener", "gossip", "remote", remote,
                    "err", why, NULL);
}

/* warn_bind_host: the others dial the bind address and check the node's
 * certificate against its host, as any TLS client does, so a certificate that does
 * not name it is refused by every peer. Before, the node only logged "peer refused
 * our certificate" and was taken for dead within a second. A warning, not a
 * refusal: a process whose certificate no peer accepts still shows the cluster
 * refusing it (cluster_test). A wildcard such as 0.0.0.0 cannot be dialed, and no
 * certificate names it. */
static void warn_bind_host(const plog_agent_config *c)
{
    char url[ADDR_SIZE], host[ADDR_SIZE];
    snprintf(url, sizeof url, "%s%s", strstr(c->bind_addr, "://") != NULL ? "" : "tls+tcp://", c->bind_addr);
    if (plog_tls_url_host(url, host, sizeof host) == PLOG_OK &&
        plog_tls_cert_names_host(c->peer_tls_cert_file, host) == PLOG_EPERM)
        plog_logger_log(c->logger, PLOG_LOGGER_WARN, "the peer certificate does not name the bind host",
                        "file", c->peer_tls_cert_file, "host", host, "hint",
                        "the other nodes dial --bind-addr and check the certificate against its host: they "
                        "will refuse this one; bind to a host its SANs name, or make it with this host "
                        "(gencert's PLOG_SAN)",
                        NULL);
}

/* port_free fails unless HOST:PORT (a URL's scheme dropped) can be listened on
 * now: it listens there with nng's stream listener (nng's own resolution and
 * socket options, as the real listener has) and closes at once. So a port in
 * use stops a start before the data directory is touched. Before, a first start
 * made the directory, bound it to the node name and created the log's first
 * segment, then failed at the port. The port can still be taken between this
 * check and the real listen, which then fails as it did. */
static int port_free(const char *hostport, const char *what, char *err, size_t errsize)
{
    char url[ADDR_SIZE + 16];
    snprintf(url, sizeof url, "tcp://%s", no_scheme(hostport));
    nng_stream_listener *l;
    int rv = nng_stream_listener_alloc(&l, url);
    if (rv == 0) {
        rv = nng_stream_listener_listen(l);
        nng_stream_listener_free(l);
    }
    if (rv != 0) {
        plog_errf(err, errsize, "%s: cannot listen on %s: %s", what, hostport, nng_strerror(rv));
        return PLOG_EIO;
    }
    return PLOG_OK;
}

int plog_agent_open(const plog_agent_config *cfg, plog_agent **ap, char *err, size_t errsize)
{
    int rv = check_config(cfg, err, errsize);
    if (rv != PLOG_OK)
        return rv;
    warn_bind_host(cfg);
    plog_agent *a = calloc(1, sizeof *a);
    if (a == NULL) {
        plog_errf(err, errsize, "out of memory");
        return PLOG_ENOMEM;
    }
    a->cfg = *cfg;
    a->dir_fd = -1;
    pthread_mutex_init(&a->mu, NULL);
    copy(a->data_dir, sizeof a->data_dir, cfg->data_dir);
    snprintf(a->log_dir, sizeof a->log_dir, "%s/log", a->data_dir);
    copy(a->name, sizeof a->name, cfg->node_name);
    copy(a->bind, sizeof a->bind, cfg->bind_addr);
    copy(a->server_cert, sizeof a->server_cert, cfg->server_tls_cert_file);
    copy(a->server_key, sizeof a->server_key, cfg->server_tls_key_file);
    copy(a->server_ca, sizeof a->server_ca, cfg->server_tls_ca_file);
    copy(a->peer_cert, sizeof a->peer_cert, cfg->peer_tls_cert_file);
    copy(a->peer_key, sizeof a->peer_key, cfg->peer_tls_key_file);
    copy(a->peer_ca, sizeof a->peer_ca, cfg->peer_tls_ca_file);
    copy(a->acl_model, sizeof a->acl_model, cfg->acl_model_file);
    copy(a->acl_policy, sizeof a->acl_policy, cfg->acl_policy_file);
    /* The RPC server listens on the bind host at the RPC port (Go: RPCAddr). */
    size_t hlen = (size_t)(strrchr(a->bind, ':') - a->bind);
    snprintf(a->rpc_hostport, sizeof a->rpc_hostport, "%.*s:%u", (int)hlen, a->bind, (unsigned)cfg->rpc_port);
    snprintf(a->rpc_url, sizeof a->rpc_url, "tls+tcp://%s", a->rpc_hostport);

    /* The files first: a start that fails on a certificate, key, CA or policy
     * leaves the data directory as it was (before, a first start made it, bound
     * it to the name and created the log's first segment, then failed). The peer
     * files are read here only to be checked; gossip reads them again. */
    nng_tls_config *peer_check = NULL;
    if ((rv = plog_tls_config_server(a->server_cert, a->server_key, a->server_ca, &a->server_tls, err,
                                     errsize)) != PLOG_OK ||
        (rv = plog_tls_config_server(a->peer_cert, a->peer_key, a->peer_ca, &peer_check, err, errsize)) !=
            PLOG_OK)
        goto fail;
    nng_tls_config_free(peer_check);
    if ((rv = plog_auth_new(cfg->acl_model_file, cfg->acl_policy_file, &a->acl, err, errsize)) != PLOG_OK)
        goto fail;
    /* An existing data directory is locked before the ports are tried: a second
     * node on it (a second `make run`) is told so, not that the first one holds
     * its ports. Locking it writes nothing there. */
    if (access(a->data_dir, F_OK) == 0 && (rv = lock_dir(a->data_dir, &a->dir_fd, err, errsize)) != PLOG_OK)
        goto fail;
    /* The ports too (port_free); a --metrics-addr on one of them is found at its
     * listen, below, naming the flag. */
    if ((rv = port_free(a->rpc_hostport, "--rpc-port", err, errsize)) != PLOG_OK ||
        (rv = port_free(a->bind, "--bind-addr", err, errsize)) != PLOG_OK ||
        (cfg->metrics_addr != NULL &&
         (rv = port_free(cfg->metrics_addr, "--metrics-addr", err, errsize)) != PLOG_OK))
        goto fail;
    /* 1. The log. */
    if (plog_log_mkdirs(a->data_dir) != 0) {
        plog_errf(err, errsize, "mkdir %s: %s", a->data_dir, strerror(errno));
        rv = PLOG_EIO;
        goto fail;
    }
    if ((a->dir_fd < 0 && (rv = lock_dir(a->data_dir, &a->dir_fd, err, errsize)) != PLOG_OK) ||
        (rv = bind_name(a->data_dir, a->name, err, errsize)) != PLOG_OK)
        goto fail;
    load_known(a);
    if ((rv = plog_log_open(a->log_dir, &cfg->log, &a->log)) != PLOG_OK) {
        plog_errf(err, errsize, "agent: cannot open the log in %s: %s", a->log_dir, plog_strerror(rv));
        goto fail;
    }
    /* 2. The RPC server, with mutual TLS and the ACL (loaded above). */
    /* A refused client never becomes a connection: this line is its only trace. */
    if (cfg->logger != NULL)
        plog_tls_config_on_failure(a->server_tls, on_tls_failure, cfg->logger);
    if ((rv = plog_server_metrics_new(&a->metrics)) != PLOG_OK) {
        plog_errf(err, errsize, "out of memory");
        goto fail;
    }
    plog_metrics_gauge_bind(a->metrics, PLOG_GAUGE_LOG_LOWEST_OFFSET, gauge_lowest, a);
    plog_metrics_gauge_bind(a->metrics, PLOG_GAUGE_LOG_NEXT_OFFSET, gauge_next, a);
    plog_metrics_gauge_bind(a->metrics, PLOG_GAUGE_LOG_FAILED, gauge_failed, a);
    plog_metrics_gauge_bind(a->metrics, PLOG_GAUGE_LOG_SIZE_BYTES, gauge_size, a);
    plog_server_config sc = {
        .addr = a->rpc_url,
        .sync = cfg->log.sync,
        .tls = a->server_tls,
        .acl = a->acl,
        .metrics = a->metrics,
        .logger = cfg->logger,
        .log_requests = cfg->log_requests,
        .members = get_members,
        .members_arg = a,
        .max_parked_per_client = cfg->max_parked_per_client,
        .max_inflight_bytes = cfg->max_inflight_bytes,
        .max_connections = cfg->max_connections,
        .handshake_timeout_ms = cfg->handshake_timeout_ms,
    };
    if ((rv = plog_server_open(a->log, &sc, &a->srv, err, errsize)) != PLOG_OK)
        goto fail;
    /* 3. Membership, whose events go to 4. the replicator (made first: see agent.h). */
    /* A server certificate that does not name this node is taken as one the nodes
     * share (the book's server.pem): the replicator then cannot tell them apart. */
    char server_cn[PLOG_TLS_CN_SIZE] = "";
    if (plog_tls_cert_cn(cfg->server_tls_cert_file, server_cn, sizeof server_cn) != PLOG_OK ||
        strcmp(server_cn, a->name) == 0)
        server_cn[0] = '\0';
    plog_replicator_config rc = {
        .self = a->name,
        .shared_server_cn = server_cn,
        .cert_file = a->peer_cert,
        .key_file = a->peer_key,
        .ca_file = a->peer_ca,
        .published = on_published,
        .arg = a,
        .logger = cfg->logger,
    };
    if ((rv = plog_replicator_open(a->log, &rc, &a->repl, err, errsize)) != PLOG_OK)
        goto fail;
    const char *join[PLOG_AGENT_REJOIN_MAX];
    size_t njoin = a->njoin = join_list(a, join);
    plog_gossip_tag tags[] = {{"rpc_addr", a->rpc_hostport}};
    plog_discovery_config dc = {
        .name = a->name,
        .bind_addr = a->bind,
        .tags = tags,
        .ntags = 1,
        .start_join_addrs = join,
        .njoin = njoin,
        .cert_file = a->peer_cert,
        .key_file = a->peer_key,
        .ca_file = a->peer_ca,
        .acl = a->acl,
        .fast = cfg->fast,
        .handler = on_event,
        .refused = on_gossip_refused,
        .arg = a,
    };
    plog_discovery *disc;
    if ((rv = plog_discovery_open(&dc, &disc, err, errsize)) != PLOG_OK) {
        char what[ADDR_SIZE + 32];
        snprintf(what, sizeof what, "gossip on --bind-addr %s", a->bind);
        name_part(err, errsize, what);
        goto fail;
    }
    pthread_mutex_lock(&a->mu);
    a->disc = disc;
    pthread_mutex_unlock(&a->mu);
    plog_metrics_gauge_bind(a->metrics, PLOG_GAUGE_MEMBERS_ALIVE, gauge_alive, a);
    plog_metrics_gauge_bind(a->metrics, PLOG_GAUGE_GOSSIP_DROPPED, gauge_dropped, a);
    plog_metrics_gauge_bind(a->metrics, PLOG_GAUGE_NNG_REAPER_STUCK, gauge_reaper_stuck, a);
    plog_metrics_gauge_bind(a->metrics, PLOG_GAUGE_REPLICATED_RECORDS, gauge_replicated, a);
    char why[256]; /* the metrics endpoint is the flag's: its error names it */
    if (cfg->metrics_addr != NULL &&
        (rv = plog_metrics_http_open(a->metrics, cfg->metrics_addr, why, sizeof why, &a->http)) != PLOG_OK) {
        plog_errf(err, errsize, "--metrics-addr: %s", why);
        goto fail;
    }
    *ap = a;
    return PLOG_OK;
fail:
    plog_agent_kill(a);
    return rv;
}

/* why_unanswered says why the join addresses may not have answered: only our own
 * address was given, or from what the transport saw: a handshake that failed (its
 * reason), a connection that came up but was never answered (the ACL there), or
 * neither (not gossip addresses). */
static void why_unanswered(plog_agent *a, const plog_discovery_stats *st, char *buf, size_t size)
{
    char addr[ADDR_SIZE], why[PLOG_TLS_ERRMSG_SIZE];
    if (a->joins_self)
        snprintf(buf, size, "%s",
                 "the only one is this node's own --bind-addr: give a running node's gossip address (the "
                 "first node of a cluster starts without --start-join-addrs)");
    else if (plog_discovery_tls_failure(a->disc, addr, sizeof addr, why, sizeof why))
        snprintf(buf, size, "the TLS handshake with %s failed: %s", addr, why);
    else if (st->transport.connected > 0)
        snprintf(buf, size, "a connection came up but nothing came back: the ACL there must let %s gossip",
                 a->name);
    else
        snprintf(buf, size, "they must be the gossip --bind-addr of running nodes, not their RPC port");
}

bool plog_agent_alone(plog_agent *a, char *hint, size_t size)
{
    plog_discovery_stats st;
    plog_discovery_stats_get(a->disc, &st);
    if (a->njoin == 0 || st.alive > 1)
        return false;
    char why[ADDR_SIZE + PLOG_TLS_ERRMSG_SIZE + 64];
    why_unanswered(a, &st, why, sizeof why);
    snprintf(hint, size, "no member answered at the %zu join address(es): %s", a->njoin, why);
    return true;
}

const char *plog_agent_rpc_addr(const plog_agent *a)
{
    return a->rpc_url;
}

plog_log *plog_agent_log(plog_agent *a)
{
    return a->log;
}

plog_discovery *plog_agent_discovery(plog_agent *a)
{
    return a->disc;
}

const char *const plog_agent_acl_actions[PLOG_AGENT_ACL_ACTIONS] = {PLOG_AUTH_PRODUCE, PLOG_AUTH_CONSUME,
                                                                    PLOG_TRANSPORT_ACTION};

const plog_auth *plog_agent_acl(plog_agent *a)
{
    return a->acl;
}

plog_replicator *plog_agent_replicator(plog_agent *a)
{
    return a->repl;
}

void plog_agent_reload(plog_agent *a, plog_agent_reload_result *out)
{
    /* One plog_auth serves the server and the transports: one reload covers all. */
    const char *model = a->acl_model[0] != '\0' ? a->acl_model : NULL;
    out->acl = plog_auth_reload(a->acl, model, a->acl_policy, out->acl_err, sizeof out->acl_err);
    out->acl_rules = plog_auth_rules(a->acl);
    out->tls = plog_tls_config_server_reload(a->server_tls, a->server_cert, a->server_key, a->server_ca,
                                             out->tls_err, sizeof out->tls_err);
}

/* stop undoes plog_agent_open in reverse, leaving first when leave. */
static int stop(plog_agent *a, bool leave)
{
    /* Leave first: the others should hear it before anything slower happens. */
    if (a->disc != NULL && leave)
        plog_discovery_leave(a->disc);
    if (a->http != NULL)
        plog_metrics_http_close(a->http, a->cfg.logger);
    pthread_mutex_lock(&a->mu);
    plog_discovery *disc = a->disc;
    a->disc = NULL;
    pthread_mutex_unlock(&a->mu);
    plog_discovery_close(disc); /* no more events: the replicator can go */
    plog_replicator_close(a->repl);
    a->repl = NULL;
    plog_server_close(a->srv);
    int rv = plog_log_close(a->log);
    if (a->server_tls != NULL) {
        /* The listener is gone; a connection in its last moments may still report
         * a failure, so the hook goes before the logger it writes to. */
        plog_tls_config_on_failure(a->server_tls, NULL, NULL);
        nng_tls_config_free(a->server_tls);
    }
    plog_auth_free(a->acl);
    plog_metrics_free(a->metrics);
    pthread_mutex_destroy(&a->mu);
    if (a->dir_fd >= 0)
        close(a->dir_fd); /* last: everything under data_dir is closed */
    free(a);
    return rv;
}

int plog_agent_shutdown(plog_agent *a)
{
    return a == NULL ? PLOG_OK : stop(a, true);
}

void plog_agent_kill(plog_agent *a)
{
    if (a != NULL)
        stop(a, false);
}
