/* replicator.c - exactly-once replication from each member's own records (see
 * replicator.h for the design).
 *
 * State:
 *   origins  name -> next origin offset, rebuilt from the log at open and advanced
 *            after each appended batch. Only the thread of member X writes X's
 *            entry, so a position never goes backwards or races.
 *   members  one per name ever joined: its RPC address, a thread, and flags.
 *            A member's thread lives while it is wanted: leave sets stop, the
 *            thread sees it after its current poll and exits; a join before that
 *            clears it again (restart), so one origin never has two threads.
 *
 * Each poll is a ConsumeStream long poll at the cursor with origin_only set; the
 * cursor is the member's log offset (equal to the origin offset of the records it
 * originated). The answer's records get origin = the member's name and
 * origin_offset = their offset there, and go into the local log as one batch.
 *
 * Appending and committing overlap: a member's thread appends a batch and polls
 * again at once, while one committer thread waits for the log's commit (a group
 * commit under the interval policy) of everything appended so far and then
 * publishes it. A position may thus run ahead of what is durable; that is safe
 * because after a crash the position is rebuilt from what is on disk. */
#include "internal/log/replicator.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal/client/client.h"
#include "internal/err/err.h"
#include "internal/rpc/wire.h"
#include "internal/tls/config.h"
#include "internal/tls/peer.h"

#define NAME_SIZE 128
#define ADDR_SIZE 272
#define PATH_SIZE 1024
#define BACKOFF_MIN_MS 50
#define BACKOFF_MAX_MS 1000

struct origin {
    char name[NAME_SIZE];
    uint64_t next;
};

enum mstate { M_RUNNING, M_EXITED };

struct member {
    plog_replicator *r;
    char name[NAME_SIZE];
    char addr[ADDR_SIZE]; /* guarded by r->mu */
    unsigned gen;         /* bumped when addr changes */
    bool stop, restart;
    bool joinable; /* thread was created and not yet joined */
    enum mstate state;
    pthread_t thread;
    bool told_impostor; /* warned that the server at addr is another node */
};

struct plog_replicator {
    plog_log *log;
    plog_replicator_config cfg;
    char self[NAME_SIZE], cert[PATH_SIZE], key[PATH_SIZE], ca[PATH_SIZE];
    char shared_cn[PLOG_TLS_CN_SIZE]; /* cfg.shared_server_cn, or "" */

    pthread_mutex_t mu; /* origins, members, the committer's fields */
    pthread_cond_t cv;  /* stop flags changed */
    pthread_cond_t ccv; /* committer: something to commit, or stop */
    uint64_t to_commit; /* records below it are appended: commit and publish them */
    bool committer_stop, committer_started;
    pthread_t committer;
    struct origin *origins;
    size_t norigins, corigins;
    struct member **members;
    size_t nmembers, cmembers;

    _Atomic uint64_t records, polls, errors;
};

static void *committer_main(void *arg);

/* origin_find returns name's entry, adding it (next 0) when add. Locked. */
static struct origin *origin_find(plog_replicator *r, const char *name, size_t len, bool add)
{
    for (size_t i = 0; i < r->norigins; i++)
        if (strlen(r->origins[i].name) == len && memcmp(r->origins[i].name, name, len) == 0)
            return &r->origins[i];
    if (!add || len >= NAME_SIZE)
        return NULL;
    if (r->norigins == r->corigins) {
        size_t c = r->corigins == 0 ? 8 : r->corigins * 2;
        struct origin *o = realloc(r->origins, c * sizeof *o);
        if (o == NULL)
            return NULL;
        r->origins = o;
        r->corigins = c;
    }
    struct origin *o = &r->origins[r->norigins++];
    memcpy(o->name, name, len);
    o->name[len] = '\0';
    o->next = 0;
    return o;
}

/* record_origin reads fields 5 (origin) and 6 (origin_offset) of an encoded
 * Record without decoding the value. *name is NULL when it has no origin. */
static int record_origin(const uint8_t *buf, size_t len, const uint8_t **name, size_t *nlen, uint64_t *ooff)
{
    const uint8_t *p = buf, *end = buf + len;
    plog_rpc_wire_field f;
    int rv;
    *name = NULL;
    *nlen = 0;
    *ooff = 0;
    while ((rv = plog_rpc_wire_next(&p, end, &f)) == 1) {
        if (f.num == 5 && f.type == PLOG_WT_LEN) {
            *name = f.ptr;
            *nlen = f.len;
        } else if (f.num == 6 && f.type == PLOG_WT_VARINT)
            *ooff = f.v;
    }
    if (*nlen == 0)
        *name = NULL;
    return rv;
}

/* scan rebuilds the origins table from the whole log. */
static int scan(plog_replicator *r, char *err, size_t errsize)
{
    plog_log_batch b = {0};
    uint64_t off = plog_log_lowest_offset(r->log), end = plog_log_next_offset(r->log);
    int rv = PLOG_OK;
    while (off < end) {
        if ((rv = plog_log_read_batch(r->log, off, 4096, 4u << 20, &b)) != PLOG_OK) {
            char why[160];
            plog_log_errmsg(r->log, why, sizeof why);
            plog_errf(err, errsize, "replicator: reading offset %" PRIu64 " for the positions: %s: %s", off,
                      plog_strerror(rv), why);
            break;
        }
        for (size_t i = 0; i < b.n; i++) {
            const uint8_t *name;
            size_t nlen;
            uint64_t ooff;
            if (record_origin(b.rec[i], b.len[i], &name, &nlen, &ooff) < 0) {
                plog_errf(err, errsize, "replicator: record %" PRIu64 " is malformed", off + i);
                rv = PLOG_ECORRUPT;
                goto out;
            }
            if (name == NULL)
                continue;
            struct origin *o = origin_find(r, (const char *)name, nlen, true);
            if (o == NULL) {
                plog_errf(err, errsize, "replicator: origin name too long or out of memory");
                rv = PLOG_ENOMEM;
                goto out;
            }
            if (ooff + 1 > o->next)
                o->next = ooff + 1;
        }
        off += b.n;
    }
out:
    plog_log_batch_fini(&b);
    return rv;
}

int plog_replicator_open(plog_log *log, const plog_replicator_config *cfg, plog_replicator **rp, char *err,
                         size_t errsize)
{
    if (cfg->self == NULL || cfg->cert_file == NULL || cfg->key_file == NULL || cfg->ca_file == NULL ||
        strlen(cfg->self) >= NAME_SIZE || strlen(cfg->cert_file) >= PATH_SIZE ||
        strlen(cfg->key_file) >= PATH_SIZE || strlen(cfg->ca_file) >= PATH_SIZE) {
        plog_errf(err, errsize, "replicator: node name and peer TLS files are required");
        return PLOG_EINVAL;
    }
    plog_replicator *r = calloc(1, sizeof *r);
    if (r == NULL) {
        plog_errf(err, errsize, "out of memory");
        return PLOG_ENOMEM;
    }
    r->log = log;
    r->cfg = *cfg;
    snprintf(r->self, sizeof r->self, "%s", cfg->self);
    snprintf(r->shared_cn, sizeof r->shared_cn, "%s",
             cfg->shared_server_cn != NULL ? cfg->shared_server_cn : "");
    snprintf(r->cert, sizeof r->cert, "%s", cfg->cert_file);
    snprintf(r->key, sizeof r->key, "%s", cfg->key_file);
    snprintf(r->ca, sizeof r->ca, "%s", cfg->ca_file);
    if (r->cfg.batch_records == 0)
        r->cfg.batch_records = 32768;
    if (r->cfg.batch_bytes == 0)
        r->cfg.batch_bytes = 3u << 20;
    if (r->cfg.poll_wait_ms == 0)
        r->cfg.poll_wait_ms = 250;
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    pthread_cond_init(&r->ccv, NULL);
    int rv = scan(r, err, errsize);
    if (rv == PLOG_OK && pthread_create(&r->committer, NULL, committer_main, r) != 0) {
        plog_errf(err, errsize, "replicator: cannot start a thread");
        rv = PLOG_ENOMEM;
    }
    if (rv != PLOG_OK) {
        plog_replicator_close(r);
        return rv;
    }
    r->committer_started = true;
    *rp = r;
    return PLOG_OK;
}

/* wait_stop sleeps up to ms unless m is told to stop; true when it was. */
static bool wait_stop(struct member *m, unsigned ms)
{
    plog_replicator *r = m->r;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&r->mu);
    while (!m->stop && pthread_cond_timedwait(&r->cv, &r->mu, &ts) == 0)
        ;
    bool stop = m->stop;
    pthread_mutex_unlock(&r->mu);
    return stop;
}

static int client_open(struct member *m, const char *addr, plog_client **cp, plog_rpc_status *st)
{
    plog_replicator *r = m->r;
    char url[ADDR_SIZE + 16], host[ADDR_SIZE], why[256];
    if (strstr(addr, "://") != NULL)
        snprintf(url, sizeof url, "%s", addr);
    else
        snprintf(url, sizeof url, "tls+tcp://%s", addr);
    if (plog_tls_url_host(url, host, sizeof host) != PLOG_OK)
        return plog_rpc_status_set(st, PLOG_STATUS_INVALID_ARGUMENT, "bad address %s", addr);
    nng_tls_config *tls;
    if (plog_tls_config_client(r->cert, r->key, r->ca, host, &tls, why, sizeof why) != PLOG_OK)
        return plog_rpc_status_set(st, PLOG_STATUS_UNAUTHENTICATED, "%s", why);
    plog_client_config cc = {
        .tls = tls,
        .wait_for_server = true,
        .timeout_ms = r->cfg.poll_wait_ms + 5000,
        .reconnect_max_ms = 1000,
        .max_msg_bytes = (size_t)r->cfg.batch_bytes + (1u << 20),
    };
    int code = plog_client_open(url, &cc, cp, st);
    nng_tls_config_free(tls);
    return code;
}

/* append_batch copies the records of one answer into the log. Returns false on
 * a local failure (then the member stops: the log cannot take writes). */
static bool append_batch(struct member *m, Log__V1__ConsumeResponse *resp, uint64_t *cursor)
{
    plog_replicator *r = m->r;
    pthread_mutex_lock(&r->mu);
    struct origin *o = origin_find(r, m->name, strlen(m->name), true);
    uint64_t pos = o != NULL ? o->next : UINT64_MAX;
    pthread_mutex_unlock(&r->mu);
    if (o == NULL)
        return false;
    Log__V1__Record **recs = malloc((resp->n_records + 1) * sizeof *recs);
    char **was = malloc((resp->n_records + 1) * sizeof *was);
    if (recs == NULL || was == NULL) {
        free(recs);
        free(was);
        return false;
    }
    size_t n = 0;
    uint64_t last = 0;
    for (size_t i = 0; i < resp->n_records; i++) {
        Log__V1__Record *rec = resp->records[i];
        /* Only what the member originated, in order, and never below the position. */
        if ((rec->origin != NULL && rec->origin[0] != '\0') || rec->offset < pos ||
            (n > 0 && rec->offset <= last))
            continue;
        was[n] = rec->origin;
        rec->origin = m->name;
        rec->origin_offset = rec->offset;
        last = rec->offset;
        recs[n++] = rec;
    }
    bool ok = true;
    if (n > 0) {
        uint64_t first;
        int rv = plog_log_append_batch(r->log, recs, n, &first);
        for (size_t i = 0; i < n; i++)
            recs[i]->origin = was[i]; /* m->name is not protobuf-c's to free */
        if (rv != PLOG_OK) {
            char why[160];
            plog_log_errmsg(r->log, why, sizeof why);
            plog_logger_log(r->cfg.logger, PLOG_LOGGER_ERROR, "replication append failed", "origin", m->name,
                            "err", plog_strerror(rv), "detail", why, NULL);
            ok = false;
        } else {
            pthread_mutex_lock(&r->mu);
            o = origin_find(r, m->name, strlen(m->name), false);
            if (o != NULL && last + 1 > o->next)
                o->next = last + 1;
            if (first + n > r->to_commit) {
                r->to_commit = first + n;
                pthread_cond_signal(&r->ccv);
            }
            pthread_mutex_unlock(&r->mu);
            atomic_fetch_add(&r->records, n);
        }
    }
    free(recs);
    free(was);
    if (resp->next_offset > *cursor)
        *cursor = resp->next_offset;
    return ok;
}

/* committer_main commits what the members appended and publishes it. */
static void *committer_main(void *arg)
{
    plog_replicator *r = arg;
    uint64_t done = 0;
    pthread_mutex_lock(&r->mu);
    for (;;) {
        while (r->to_commit <= done && !r->committer_stop)
            pthread_cond_wait(&r->ccv, &r->mu);
        if (r->to_commit <= done)
            break; /* stopping, and nothing left */
        uint64_t target = r->to_commit;
        pthread_mutex_unlock(&r->mu);
        int rv = plog_log_commit(r->log, target - 1);
        if (rv == PLOG_OK) {
            if (r->cfg.published != NULL)
                r->cfg.published(r->cfg.arg, target);
        } else {
            char why[160];
            plog_log_errmsg(r->log, why, sizeof why);
            plog_logger_log(r->cfg.logger, PLOG_LOGGER_ERROR, "replication commit failed", "err",
                            plog_strerror(rv), "detail", why, NULL);
        }
        done = target;
        pthread_mutex_lock(&r->mu);
    }
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

/* from_member says whether reply came from m's own server: the verified CN of its
 * certificate is m's name (a node certificate serving RPC too, as gencert makes
 * them), or the CN of a server certificate the nodes share (which cannot tell
 * them apart: then the check is void). A member and its rpc_addr come from
 * gossip, which any node's key can sign for any name: before, one forged "alive
 * evil rpc_addr=<node1's RPC>" made every node copy node1's records once more
 * under the origin "evil", for good. A server that is another node is warned of
 * once per address, and nothing is copied from it. */
static bool from_member(struct member *m, const char *addr, const nng_msg *reply)
{
    char cn[PLOG_TLS_CN_SIZE];
    if (plog_tls_peer_identity(reply, cn, sizeof cn) != PLOG_OK)
        return false; /* its connection is already gone: ask again */
    if (strcmp(cn, m->name) == 0 || (m->r->shared_cn[0] != '\0' && strcmp(cn, m->r->shared_cn) == 0))
        return true;
    if (!m->told_impostor)
        plog_logger_log(m->r->cfg.logger, PLOG_LOGGER_WARN, "replication refused: the server is another node",
                        "origin", m->name, "addr", addr, "server_cn", cn, "hint",
                        "a member's rpc_addr must be its own RPC server, whose certificate names it: "
                        "a node claims another's address (a forged or stale gossip message)",
                        NULL);
    m->told_impostor = true;
    return false;
}

static void *member_main(void *arg)
{
    struct member *m = arg;
    plog_replicator *r = m->r;
    plog_client *c = NULL;
    char addr[ADDR_SIZE] = "";
    unsigned gen = 0, backoff = 0;
    uint64_t cursor = 0;
    bool have_cursor = false, told_lost = false;
    for (;;) {
        pthread_mutex_lock(&r->mu);
        if (m->stop && !m->restart) {
            m->state = M_EXITED;
            pthread_mutex_unlock(&r->mu);
            break;
        }
        m->stop = m->restart = false;
        bool moved = c == NULL || gen != m->gen;
        if (moved) {
            snprintf(addr, sizeof addr, "%s", m->addr);
            gen = m->gen;
            m->told_impostor = false;
        }
        struct origin *o = origin_find(r, m->name, strlen(m->name), false);
        uint64_t pos = o != NULL ? o->next : 0;
        pthread_mutex_unlock(&r->mu);
        if (!have_cursor || cursor < pos) {
            cursor = pos; /* resume at the position the log says */
            have_cursor = true;
        }
        plog_rpc_status st;
        if (moved) {
            plog_client_close(c);
            c = NULL;
            if (client_open(m, addr, &c, &st) != PLOG_STATUS_OK) {
                atomic_fetch_add(&r->errors, 1);
                plog_logger_log(r->cfg.logger, PLOG_LOGGER_WARN, "replication: cannot connect", "origin",
                                m->name, "addr", addr, "err", st.msg, NULL);
                c = NULL;
                backoff = backoff == 0                   ? BACKOFF_MIN_MS
                          : backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS
                                                         : backoff * 2;
                wait_stop(m, backoff);
                continue;
            }
        }
        Log__V1__ConsumeRequest req = LOG__V1__CONSUME_REQUEST__INIT;
        req.offset = cursor;
        req.max_records = r->cfg.batch_records;
        req.max_bytes = r->cfg.batch_bytes;
        req.wait_ms = r->cfg.poll_wait_ms;
        req.origin_only = 1;
        nng_msg *reply = NULL;
        plog_rpc_reply rp;
        int code = plog_client_call(c, plog_rpc_method_name(PLOG_METHOD_CONSUME_STREAM), &req.base, 0, 0,
                                    &reply, &rp, &st);
        if (code != PLOG_STATUS_OK) {
            atomic_fetch_add(&r->errors, 1);
            if (backoff == 0 && code != PLOG_STATUS_UNAVAILABLE)
                plog_logger_log(r->cfg.logger, PLOG_LOGGER_WARN, "replication poll failed", "origin", m->name,
                                "code", plog_rpc_status_name(code), "err", st.msg, NULL);
            backoff = backoff == 0                   ? BACKOFF_MIN_MS
                      : backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS
                                                     : backoff * 2;
            wait_stop(m, backoff);
            continue;
        }
        if (!from_member(m, addr, reply)) {
            nng_msg_free(reply);
            atomic_fetch_add(&r->errors, 1);
            wait_stop(m, BACKOFF_MAX_MS);
            continue;
        }
        backoff = 0;
        atomic_fetch_add(&r->polls, 1);
        Log__V1__ConsumeResponse *resp = log__v1__consume_response__unpack(NULL, rp.body_len, rp.body);
        nng_msg_free(reply);
        if (resp == NULL) {
            atomic_fetch_add(&r->errors, 1);
            wait_stop(m, BACKOFF_MAX_MS);
            continue;
        }
        /* The member's log ends below what was copied from it: it lost its data
         * (a wiped or replaced data directory under the same name). The offsets
         * it gives its next records were copied once already, so those records
         * are never copied: say so, once. A restart of the member, even kill -9,
         * keeps every record it served (it serves only durable ones). */
        if (resp->end_offset < cursor && !told_lost) {
            char end[24], copied[24];
            snprintf(end, sizeof end, "%" PRIu64, resp->end_offset);
            snprintf(copied, sizeof copied, "%" PRIu64, cursor);
            plog_logger_log(r->cfg.logger, PLOG_LOGGER_ERROR,
                            "replication: the member's log is shorter than what was copied from it", "origin",
                            m->name, "end_offset", end, "copied", copied, "hint",
                            "its data directory was lost or replaced: the records it takes at offsets below "
                            "copied will not be copied; start it under a new --node-name with an empty data "
                            "directory",
                            NULL);
        }
        told_lost = resp->end_offset < cursor;
        bool ok = append_batch(m, resp, &cursor);
        log__v1__consume_response__free_unpacked(resp, NULL);
        if (!ok) {
            pthread_mutex_lock(&r->mu);
            m->state = M_EXITED;
            pthread_mutex_unlock(&r->mu);
            break;
        }
    }
    plog_client_close(c);
    return NULL;
}

static struct member *member_find(plog_replicator *r, const char *name)
{
    for (size_t i = 0; i < r->nmembers; i++)
        if (strcmp(r->members[i]->name, name) == 0)
            return r->members[i];
    return NULL;
}

int plog_replicator_join(plog_replicator *r, const char *name, const char *rpc_addr)
{
    if (name == NULL || rpc_addr == NULL || name[0] == '\0' || strlen(name) >= NAME_SIZE ||
        strlen(rpc_addr) >= ADDR_SIZE)
        return PLOG_EINVAL;
    if (strcmp(name, r->self) == 0)
        return PLOG_OK;
    int rv = PLOG_OK;
    pthread_mutex_lock(&r->mu);
    struct member *m = member_find(r, name);
    if (m != NULL && m->state == M_RUNNING) {
        if (m->stop) {
            m->restart = true;
            m->stop = false;
        }
        if (strcmp(m->addr, rpc_addr) != 0) {
            snprintf(m->addr, sizeof m->addr, "%s", rpc_addr);
            m->gen++;
        }
        pthread_mutex_unlock(&r->mu);
        return PLOG_OK;
    }
    if (m != NULL) {
        if (m->joinable)
            pthread_join(m->thread, NULL); /* it has exited: this returns at once */
        m->joinable = false;
    } else {
        if (r->nmembers == r->cmembers) {
            size_t c = r->cmembers == 0 ? 8 : r->cmembers * 2;
            struct member **ms = realloc(r->members, c * sizeof *ms);
            if (ms == NULL) {
                rv = PLOG_ENOMEM;
                goto out;
            }
            r->members = ms;
            r->cmembers = c;
        }
        if ((m = calloc(1, sizeof *m)) == NULL) {
            rv = PLOG_ENOMEM;
            goto out;
        }
        m->r = r;
        snprintf(m->name, sizeof m->name, "%s", name);
        r->members[r->nmembers++] = m;
    }
    snprintf(m->addr, sizeof m->addr, "%s", rpc_addr);
    m->gen++;
    m->stop = m->restart = false;
    m->state = M_RUNNING;
    if (pthread_create(&m->thread, NULL, member_main, m) != 0) {
        m->state = M_EXITED;
        rv = PLOG_ENOMEM;
    } else
        m->joinable = true;
out:
    pthread_mutex_unlock(&r->mu);
    return rv;
}

void plog_replicator_leave(plog_replicator *r, const char *name)
{
    pthread_mutex_lock(&r->mu);
    struct member *m = member_find(r, name);
    if (m != NULL) {
        m->stop = true;
        m->restart = false;
        pthread_cond_broadcast(&r->cv);
    }
    pthread_mutex_unlock(&r->mu);
}

void plog_replicator_position(plog_replicator *r, const char *origin, uint64_t *next)
{
    pthread_mutex_lock(&r->mu);
    struct origin *o = origin_find(r, origin, strlen(origin), false);
    *next = o != NULL ? o->next : 0;
    pthread_mutex_unlock(&r->mu);
}

void plog_replicator_stats_get(plog_replicator *r, plog_replicator_stats *out)
{
    out->records = atomic_load(&r->records);
    out->polls = atomic_load(&r->polls);
    out->errors = atomic_load(&r->errors);
    out->active = 0;
    pthread_mutex_lock(&r->mu);
    for (size_t i = 0; i < r->nmembers; i++)
        if (r->members[i]->state == M_RUNNING && !r->members[i]->stop)
            out->active++;
    pthread_mutex_unlock(&r->mu);
}

void plog_replicator_close(plog_replicator *r)
{
    if (r == NULL)
        return;
    pthread_mutex_lock(&r->mu);
    for (size_t i = 0; i < r->nmembers; i++) {
        r->members[i]->stop = true;
        r->members[i]->restart = false;
    }
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    for (size_t i = 0; i < r->nmembers; i++) {
        struct member *m = r->members[i];
        if (m->joinable)
            pthread_join(m->thread, NULL);
        free(m);
    }
    /* After the members: what they appended last is committed and published. */
    pthread_mutex_lock(&r->mu);
    r->committer_stop = true;
    pthread_cond_signal(&r->ccv);
    pthread_mutex_unlock(&r->mu);
    if (r->committer_started)
        pthread_join(r->committer, NULL);
    free(r->members);
    free(r->origins);
    pthread_cond_destroy(&r->ccv);
    pthread_cond_destroy(&r->cv);
    pthread_mutex_destroy(&r->mu);
    free(r);
}
