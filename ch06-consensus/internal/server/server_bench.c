/* server_bench.c - `make bench`: one proglog process and this client process on
 * loopback, 100-byte values. Prints one line per result:
 *   rpc.baseline.echo      raw nng REQ/REP echo (no protobuf, no log), 1 and 16
 *                          contexts: the transport's floor, beside our numbers
 *   rpc.produce.unary      Produce round trips, clients=1 and 16 (threads sharing
 *                          one connection), with latency percentiles
 *                          (vs_echo: over the echo of the same rounds); and
 *                          16 threads making blocking calls through the library
 *                          (mode=threads, vs_async: over the 16 contexts)
 *   rpc.produce.pipelined  ProduceStream: batches of 512, 8 in flight
 *   rpc.consume.stream     ConsumeStream iterator over what was produced
 *   rpc.e2e.latency        produce -> a parked ConsumeStream consumer has it
 *   rpc.rss                the server's resident memory, idle and peak under load
 * The server runs with --sync never, as the book's Go server (which never
 * fsyncs) does; one extra line shows unary produce under the default group
 * commit.
 *
 * ch04: everything runs over mutual TLS (tls=1 on every line): the echo floor, the
 * server (with the book's ACL checking every request, as root) and the clients.
 * The server logs at --log-level warn, so that the numbers measure the RPC path,
 * not a log line per request written to a file; one extra line shows unary
 * produce with the request log on (log=info). The handshake rate and the
 * tcp:// vs tls+tcp:// echo floor are in internal/tls/engine_bench.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/prctl.h>
#include <sys/resource.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>

#include "internal/client/client.h"
#include "internal/client/stream.h"
#include "internal/server/testserver.h"

static double fsync_p50_us(double *cpu_us);

#define VALUE_SIZE 100
#define PHASE_MS 2000
#define ROUNDS 7
#define ROUND_MS 500

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Latency samples in ns; percentiles in µs. */
struct lat {
    int64_t *v;
    size_t n, cap;
    pthread_mutex_t mu;
};

static void lat_add_many(struct lat *l, const int64_t *v, size_t n)
{
    pthread_mutex_lock(&l->mu);
    if (l->n + n > l->cap) {
        l->cap = (l->n + n) * 2;
        l->v = realloc(l->v, l->cap * sizeof *l->v);
    }
    memcpy(l->v + l->n, v, n * sizeof *v);
    l->n += n;
    pthread_mutex_unlock(&l->mu);
}

static double pct(struct lat *l, double p)
{
    if (l->n == 0)
        return 0;
    size_t i = (size_t)(p * (double)(l->n - 1));
    return (double)l->v[i] / 1000.0;
}

/* lat_p50 sorts l's samples and gives their median in µs. */
static double lat_p50(struct lat *l)
{
    qsort(l->v, l->n, sizeof *l->v, cmp_i64);
    return pct(l, 0.50);
}

static void lat_print(const char *name, double rate, const char *unit, struct lat *l, const char *extra)
{
    lat_p50(l);
    printf("bench %s %.0f %s %s tls=1 p50_us=%.0f p99_us=%.0f p999_us=%.0f n=%zu\n", name, rate, unit, extra,
           pct(l, 0.50), pct(l, 0.99), pct(l, 0.999), l->n);
    fflush(stdout);
    free(l->v);
    l->v = NULL;
    l->n = l->cap = 0;
}

/* ---- raw echo baseline: a forked REP echo server, REQ contexts here ---- */

struct echo_ctx {
    nng_ctx ctx;
    nng_aio *aio;
    int sending;
};

static void echo_cb(void *arg)
{
    struct echo_ctx *e = arg;
    if (nng_aio_result(e->aio) != 0) {
        if (e->sending)
            nng_msg_free(nng_aio_get_msg(e->aio));
        e->sending = 0;
        nng_ctx_recv(e->ctx, e->aio);
        return;
    }
    if (e->sending) {
        e->sending = 0;
        nng_ctx_recv(e->ctx, e->aio);
    } else {
        e->sending = 1;
        nng_ctx_send(e->ctx, e->aio); /* the request's message goes straight back */
    }
}

static void echo_server(const char *addr)
{
    nng_socket s;
    nng_listener l;
    nng_tls_config *cfg;
    char err[PLOG_TLS_ERRMSG_SIZE];
    if (plog_tls_config_server(tserver_cert("server.pem"), tserver_cert("server-key.pem"),
                               tserver_cert("ca.pem"), &cfg, err, sizeof err) != 0 ||
        nng_rep0_open(&s) != 0 || nng_listener_create(&l, s, addr) != 0 ||
        nng_listener_set_ptr(l, NNG_OPT_TLS_CONFIG, cfg) != 0 || nng_listener_start(l, 0) != 0)
        _exit(1);
    static struct echo_ctx ctxs[64];
    for (int i = 0; i < 64; i++) {
        nng_ctx_open(&ctxs[i].ctx, s);
        nng_aio_alloc(&ctxs[i].aio, echo_cb, &ctxs[i]);
        nng_ctx_recv(ctxs[i].ctx, ctxs[i].aio);
    }
    for (;;)
        pause();
}

struct load {
    int kind; /* 0 echo, 1 produce */
    nng_socket sock;
    plog_client *c;
    int64_t until;
    uint64_t done;
    int errors;
    struct lat *lat;
};

static void *load_main(void *arg)
{
    struct load *ld = arg;
    char value[VALUE_SIZE];
    memset(value, 'x', sizeof value);
    size_t cap = 1 << 16, n = 0;
    int64_t *samples = malloc(cap * sizeof *samples);
    nng_ctx ctx;
    nng_aio *aio = NULL;
    if (ld->kind == 0) {
        nng_ctx_open(&ctx, ld->sock);
        nng_aio_alloc(&aio, NULL, NULL);
    }
    while (now_ns() < ld->until) {
        int64_t t0 = now_ns();
        if (ld->kind == 0) {
            nng_msg *m;
            nng_msg_alloc(&m, 0);
            nng_msg_append(m, value, sizeof value);
            nng_aio_set_msg(aio, m);
            nng_ctx_send(ctx, aio);
            nng_aio_wait(aio);
            if (nng_aio_result(aio) != 0) {
                nng_msg_free(m);
                ld->errors++;
                continue;
            }
            nng_ctx_recv(ctx, aio);
            nng_aio_wait(aio);
            if (nng_aio_result(aio) != 0) {
                ld->errors++;
                continue;
            }
            nng_msg_free(nng_aio_get_msg(aio));
        } else {
            uint64_t off;
            if (plog_client_produce(ld->c, value, sizeof value, &off, NULL) != PLOG_STATUS_OK) {
                ld->errors++;
                continue;
            }
        }
        if (n == cap)
            samples = realloc(samples, (cap *= 2) * sizeof *samples);
        samples[n++] = now_ns() - t0;
        ld->done++;
    }
    lat_add_many(ld->lat, samples, n);
    free(samples);
    if (aio != NULL) {
        nng_aio_free(aio);
        nng_ctx_close(ctx);
    }
    return NULL;
}

/* status_field reads a number from a /proc status file ("Name:\tvalue"); -1
 * when the file or the field is missing. */
static long status_field(const char *path, const char *field)
{
    char line[256];
    FILE *f = fopen(path, "r");
    long v = -1;
    if (f == NULL)
        return -1;
    size_t fl = strlen(field);
    while (fgets(line, sizeof line, f) != NULL)
        if (strncmp(line, field, fl) == 0)
            v = strtol(line + fl + 1, NULL, 10);
    fclose(f);
    return v;
}

static long rss_kib(pid_t pid, const char *field)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    return status_field(path, field);
}

/* ---- where the time goes: CPU and context switches per produce ----
 * Sampled around each run of a mode and summed over its rounds: this process
 * (the client: getrusage counts its exited threads too), the server process
 * (/proc: utime and stime of all its threads, and the switches of each) and the
 * whole machine's idle share (/proc/stat). Printed on the mode's line as
 * client_cpu_us, client_cs, server_cpu_us, server_cs (per request: a produce, or
 * an echo on the echo line) and idle_pct. */
struct usage {
    double client_us, client_cs, server_us, server_cs, idle, all;
};

struct cost {
    pid_t server;
    struct usage sum;
    double produces;
};

static void server_usage(pid_t pid, struct usage *u)
{
    char path[96];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    char buf[1024];
    size_t n = f != NULL ? fread(buf, 1, sizeof buf - 1, f) : 0;
    if (f != NULL)
        fclose(f);
    buf[n] = '\0';
    unsigned long long ut = 0, st = 0;
    const char *p = strrchr(buf, ')'); /* the fields after the command name */
    if (p == NULL || sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        fail_msg("cannot read %s", path);
    u->server_us = (double)(ut + st) * 1e6 / (double)sysconf(_SC_CLK_TCK);
    u->server_cs = 0;
    snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
    DIR *d = opendir(path);
    if (d == NULL)
        fail_msg("cannot list %s", path);
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof path, "/proc/%d/task/%.16s/status", (int)pid, e->d_name);
        long v = status_field(path, "voluntary_ctxt_switches:");
        long nv = status_field(path, "nonvoluntary_ctxt_switches:");
        u->server_cs += (double)(v > 0 ? v : 0) + (double)(nv > 0 ? nv : 0);
    }
    closedir(d);
}

static void usage_now(pid_t server, struct usage *u)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    u->client_us = (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e6 +
                   (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
    u->client_cs = (double)(ru.ru_nvcsw + ru.ru_nivcsw);
    server_usage(server, u);
    unsigned long long v[8] = {0};
    FILE *f = fopen("/proc/stat", "r");
    if (f == NULL || fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3],
                            &v[4], &v[5], &v[6], &v[7]) != 8)
        fail_msg("cannot read /proc/stat");
    fclose(f);
    u->idle = (double)(v[3] + v[4]);
    u->all = 0;
    for (int i = 0; i < 8; i++)
        u->all += (double)v[i];
}

/* cost_add adds to k what changed since before, over a run of n produces. */
static void cost_add(struct cost *k, const struct usage *before, double n)
{
    struct usage a;
    usage_now(k->server, &a);
    k->sum.client_us += a.client_us - before->client_us;
    k->sum.client_cs += a.client_cs - before->client_cs;
    k->sum.server_us += a.server_us - before->server_us;
    k->sum.server_cs += a.server_cs - before->server_cs;
    k->sum.idle += a.idle - before->idle;
    k->sum.all += a.all - before->all;
    k->produces += n;
}

/* cost_fmt appends k's figures per produce to the line being built in buf. */
static void cost_fmt(const struct cost *k, char *buf, size_t size)
{
    size_t n = strlen(buf);
    double p = k->produces > 0 ? k->produces : 1;
    snprintf(buf + n, size - n,
             " client_cpu_us=%.1f client_cs=%.1f server_cpu_us=%.1f server_cs=%.1f idle_pct=%.0f",
             k->sum.client_us / p, k->sum.client_cs / p, k->sum.server_us / p, k->sum.server_cs / p,
             k->sum.all > 0 ? 100 * k->sum.idle / k->sum.all : 0);
}

/* Async load: n contexts on one socket, each sending its next request from the
 * callback of the last reply, so one client thread keeps n requests in flight
 * (how the server sees n busy clients, without n client threads competing with
 * the server for this machine's two cores). kind 0: echo; 1: Produce. */
struct actx {
    struct aload *al;
    nng_ctx ctx;
    nng_aio *aio;
    int sending;
    int64_t t0;
    int64_t *samples;
    size_t n, cap;
};

struct aload {
    int kind;
    plog_client *c;
    int64_t until;
    atomic_int running;
    atomic_int errors;
};

static nng_msg *next_request(struct aload *al)
{
    char value[VALUE_SIZE];
    memset(value, 'a', sizeof value);
    nng_msg *m = NULL;
    if (al->kind == 0) {
        nng_msg_alloc(&m, 0);
        nng_msg_append(m, value, sizeof value);
        return m;
    }
    Log__V1__Record rec = LOG__V1__RECORD__INIT;
    rec.value.data = (uint8_t *)value;
    rec.value.len = sizeof value;
    Log__V1__ProduceRequest req = LOG__V1__PRODUCE_REQUEST__INIT;
    req.record = &rec;
    plog_rpc_request_msg(plog_rpc_method_name(PLOG_METHOD_PRODUCE), &req.base, 0, plog_client_id(al->c),
                         plog_client_next_seq(al->c), &m);
    return m;
}

static void actx_send(struct actx *a)
{
    if (now_ns() >= a->al->until) {
        atomic_fetch_sub(&a->al->running, 1);
        return;
    }
    a->sending = 1;
    a->t0 = now_ns();
    nng_aio_set_msg(a->aio, next_request(a->al));
    nng_ctx_send(a->ctx, a->aio);
}

static void actx_cb(void *arg)
{
    struct actx *a = arg;
    int rv = nng_aio_result(a->aio);
    if (a->sending) {
        if (rv != 0) {
            nng_msg_free(nng_aio_get_msg(a->aio));
            atomic_fetch_add(&a->al->errors, 1);
            actx_send(a);
            return;
        }
        a->sending = 0;
        nng_ctx_recv(a->ctx, a->aio);
        return;
    }
    if (rv != 0) {
        atomic_fetch_add(&a->al->errors, 1);
    } else {
        nng_msg *m = nng_aio_get_msg(a->aio);
        if (a->al->kind == 1) {
            plog_rpc_reply rp;
            if (plog_rpc_reply_decode(nng_msg_body(m), nng_msg_len(m), &rp) != 0 || rp.code != 0)
                atomic_fetch_add(&a->al->errors, 1);
        }
        nng_msg_free(m);
        if (a->n == a->cap)
            a->samples = realloc(a->samples, (a->cap = a->cap ? a->cap * 2 : 4096) * sizeof(int64_t));
        a->samples[a->n++] = now_ns() - a->t0;
    }
    actx_send(a);
}

static double run_async(int kind, nng_socket sock, plog_client *c, int n, struct lat *lat, int *errors,
                        struct cost *k)
{
    struct usage before;
    if (k != NULL)
        usage_now(k->server, &before);
    struct aload al = {.kind = kind, .c = c};
    struct actx *a = calloc((size_t)n, sizeof *a);
    int64_t t0 = now_ns();
    al.until = t0 + (int64_t)ROUND_MS * 1000000;
    atomic_init(&al.running, n);
    for (int i = 0; i < n; i++) {
        a[i].al = &al;
        nng_ctx_open(&a[i].ctx, sock);
        nng_aio_alloc(&a[i].aio, actx_cb, &a[i]);
    }
    for (int i = 0; i < n; i++)
        actx_send(&a[i]);
    while (atomic_load(&al.running) > 0)
        plog_test_sleep_ms(5);
    double secs = (double)(now_ns() - t0) / 1e9;
    size_t total = 0;
    for (int i = 0; i < n; i++) {
        nng_aio_free(a[i].aio);
        nng_ctx_close(a[i].ctx);
        lat_add_many(lat, a[i].samples, a[i].n);
        total += a[i].n;
        free(a[i].samples);
    }
    free(a);
    *errors += atomic_load(&al.errors);
    if (k != NULL)
        cost_add(k, &before, (double)total);
    return (double)total / secs;
}

static double run_load(int kind, nng_socket sock, plog_client *c, int threads, struct lat *lat, int *errors,
                       struct cost *k)
{
    struct usage before;
    usage_now(k->server, &before);
    pthread_t th[64];
    struct load ld[64];
    int64_t t0 = now_ns();
    for (int i = 0; i < threads; i++) {
        ld[i] = (struct load){
            .kind = kind, .sock = sock, .c = c, .until = t0 + (int64_t)ROUND_MS * 1000000, .lat = lat};
        pthread_create(&th[i], NULL, load_main, &ld[i]);
    }
    uint64_t total = 0;
    for (int i = 0; i < threads; i++) {
        pthread_join(th[i], NULL);
        total += ld[i].done;
        *errors += ld[i].errors;
    }
    double secs = (double)(now_ns() - t0) / 1e9;
    cost_add(k, &before, (double)total);
    return (double)total / secs;
}

/* echo_start forks the raw echo server (before this process starts nng's
 * threads) and dials it over mutual TLS as root. */
static pid_t echo_start(nng_socket *s)
{
    char addr[64];
    snprintf(addr, sizeof addr, "tls+tcp://127.0.0.1:%d", plog_test_free_port());
    fflush(stdout);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0) {
        /* The echo server dies with the bench, also with one that fails. */
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent)
            _exit(1);
        echo_server(addr);
    }
    nng_tls_config *cfg = tserver_client_tls("root");
    nng_req0_open(s);
    nng_socket_set_ms(*s, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
    for (int i = 0; i < 200; i++) {
        nng_dialer d;
        if (nng_dialer_create(&d, *s, addr) == 0 && nng_dialer_set_ptr(d, NNG_OPT_TLS_CONFIG, cfg) == 0 &&
            nng_dialer_start(d, 0) == 0)
            break;
        plog_test_sleep_ms(10);
    }
    nng_tls_config_free(cfg);
    return pid;
}

/* open_root opens a client of srv over mutual TLS as root. */
static plog_client *open_root(const struct tserver *srv)
{
    plog_client_config cfg = {.tls = tserver_client_tls("root")};
    plog_client *c = NULL;
    plog_rpc_status st;
    if (plog_client_open(srv->addr, &cfg, &c, &st) != PLOG_STATUS_OK)
        fail_msg("open %s: %s", srv->addr, st.msg);
    nng_tls_config_free(cfg.tls);
    return c;
}

/* ---- e2e: produce one record, time until a parked consumer has it ---- */

struct e2e {
    plog_client *c;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int64_t got_ns;
    uint64_t got_off; /* offset + 1 of the last record received */
    bool stop;
};

static void *e2e_consumer(void *arg)
{
    struct e2e *e = arg;
    plog_client_consumer_config cc = {.follow = true, .wait_ms = 1000};
    plog_client_consumer *it;
    plog_client_consumer_open(e->c, 0, &cc, &it);
    const uint8_t *v;
    size_t len;
    uint64_t off;
    for (;;) {
        int code = plog_client_consumer_next(it, &v, &len, &off, NULL);
        int64_t t = now_ns(); /* stamped here, so the producer's wake-up is not counted */
        pthread_mutex_lock(&e->mu);
        bool stop = e->stop || code != PLOG_STATUS_OK;
        if (code == PLOG_STATUS_OK) {
            e->got_ns = t;
            e->got_off = off + 1;
        }
        pthread_cond_broadcast(&e->cv);
        pthread_mutex_unlock(&e->mu);
        if (stop)
            break;
    }
    plog_client_consumer_close(it);
    return NULL;
}

static void bench_e2e(void)
{
    struct tserver srv = {.tls = true, .extra = {"--sync", "never", "--log-level", "warn"}};
    tserver_start(&srv);
    struct e2e e = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    plog_client *prod = open_root(&srv), *cons = open_root(&srv);
    e.c = cons;
    pthread_t th;
    pthread_create(&th, NULL, e2e_consumer, &e);
    plog_test_sleep_ms(100);
    struct lat lat = {.mu = PTHREAD_MUTEX_INITIALIZER};
    char value[VALUE_SIZE];
    memset(value, 'e', sizeof value);
    int n = 2000;
    int64_t *samples = malloc((size_t)n * sizeof *samples);
    int got = 0;
    for (int i = 0; i < n; i++) {
        int64_t t0 = now_ns();
        uint64_t off;
        if (plog_client_produce(prod, value, sizeof value, &off, NULL) != PLOG_STATUS_OK)
            continue;
        pthread_mutex_lock(&e.mu);
        while (e.got_off <= off && !e.stop)
            pthread_cond_wait(&e.cv, &e.mu);
        samples[got++] = e.got_ns - t0;
        pthread_mutex_unlock(&e.mu);
        plog_test_sleep_ms(1); /* let the consumer park again */
    }
    lat_add_many(&lat, samples, (size_t)got);
    free(samples);
    pthread_mutex_lock(&e.mu);
    e.stop = true;
    pthread_mutex_unlock(&e.mu);
    uint64_t off;
    plog_client_produce(prod, "x", 1, &off, NULL); /* release the consumer */
    pthread_join(th, NULL);
    qsort(lat.v, lat.n, sizeof *lat.v, cmp_i64);
    printf("bench rpc.e2e.latency %.0f us p50_us=%.0f p99_us=%.0f p999_us=%.0f n=%zu "
           "what=produce_call_to_parked_consumer tls=1\n",
           pct(&lat, 0.5), pct(&lat, 0.5), pct(&lat, 0.99), pct(&lat, 0.999), lat.n);
    fflush(stdout);
    free(lat.v);
    plog_client_close(prod);
    plog_client_close(cons);
    tserver_fini(&srv);
}

/* RSS sampler: the server's peak VmRSS (and its anonymous part) while a load runs. */
struct sampler {
    pid_t pid;
    atomic_bool stop;
    long max_rss, max_anon;
};

static void *sample_rss(void *arg)
{
    struct sampler *sm = arg;
    while (!atomic_load(&sm->stop)) {
        long rss = rss_kib(sm->pid, "VmRSS:"), anon = rss_kib(sm->pid, "RssAnon:");
        if (rss > sm->max_rss)
            sm->max_rss = rss;
        if (anon > sm->max_anon)
            sm->max_anon = anon;
        plog_test_sleep_ms(20);
    }
    return NULL;
}

static void test_bench(void **state)
{
    (void)state;
    nng_socket echo;
    pid_t echo_pid = echo_start(&echo);

    struct tserver srv = {.tls = true, .extra = {"--sync", "never", "--log-level", "warn"}};
    tserver_start(&srv);
    plog_test_sleep_ms(200);
    long idle = rss_kib(srv.proc.pid, "VmRSS:");
    plog_client *c = open_root(&srv);
    struct lat lat = {.mu = PTHREAD_MUTEX_INITIALIZER};
    int errors = 0;
    struct sampler sm = {.pid = srv.proc.pid};
    pthread_t smt;
    int clients[] = {1, 16};
    struct lat tlat = {.mu = PTHREAD_MUTEX_INITIALIZER};
    double trates[ROUNDS], tratios[ROUNDS];
    int terrors = 0;
    struct cost acost = {.server = srv.proc.pid}, tcost = acost;
    struct cost ecost = {.server = echo_pid};
    for (int k = 0; k < 2; k++) {
        /* Echo and produce (and at 16 clients the blocking threads) take turns,
         * ROUNDS times each, the order rotating every round; the rates printed
         * are medians and each ratio is the median of the rounds' own ratios:
         * both sides of it ran on the same (shared, noisy) machine moments apart. */
        struct lat elat = {.mu = PTHREAD_MUTEX_INITIALIZER};
        double erates[ROUNDS], rates[ROUNDS], ratios[ROUNDS];
        int eerrors = 0;
        if (k == 1)
            pthread_create(&smt, NULL, sample_rss, &sm);
        for (int r = 0; r < ROUNDS; r++) {
            int runs = k == 1 ? 3 : 2;
            for (int i = 0; i < runs; i++) {
                switch ((i + r) % runs) {
                case 0:
                    erates[r] = run_async(0, echo, NULL, clients[k], &elat, &eerrors, k == 1 ? &ecost : NULL);
                    break;
                case 1:
                    rates[r] = run_async(1, plog_client_socket(c), c, clients[k], &lat, &errors,
                                         k == 1 ? &acost : NULL);
                    break;
                default: /* the same 16 clients as 16 threads making blocking calls */
                    trates[r] = run_load(1, plog_client_socket(c), c, 16, &tlat, &terrors, &tcost);
                }
            }
            ratios[r] = rates[r] / erates[r];
            if (k == 1)
                tratios[r] = trates[r] / rates[r];
        }
        double erate = plog_test_median(erates, ROUNDS), rate = plog_test_median(rates, ROUNDS);
        char extra[256];
        snprintf(extra, sizeof extra, "clients=%d size=%d rounds=%d errors=%d", clients[k], VALUE_SIZE,
                 ROUNDS, eerrors);
        if (k == 1)
            cost_fmt(&ecost, extra, sizeof extra);
        lat_print("rpc.baseline.echo", erate, "req/s", &elat, extra);
        snprintf(extra, sizeof extra, "clients=%d size=%d sync=never rounds=%d vs_echo=%.2f errors=%d",
                 clients[k], VALUE_SIZE, ROUNDS, plog_test_median(ratios, ROUNDS), errors);
        if (k == 1)
            cost_fmt(&acost, extra, sizeof extra);
        lat_print("rpc.produce.unary", rate, "req/s", &lat, extra);
    }
    atomic_store(&sm.stop, true);
    pthread_join(smt, NULL);
    nng_close(echo);
    kill(echo_pid, SIGKILL);
    waitpid(echo_pid, NULL, 0);
    double trate = plog_test_median(trates, ROUNDS);
    char textra[256];
    snprintf(textra, sizeof textra,
             "clients=16 size=%d sync=never mode=threads rounds=%d vs_async=%.2f errors=%d", VALUE_SIZE,
             ROUNDS, plog_test_median(tratios, ROUNDS), terrors);
    cost_fmt(&tcost, textra, sizeof textra);
    lat_print("rpc.produce.unary", trate, "req/s", &tlat, textra);

    /* Pipelined ProduceStream. */
    char value[VALUE_SIZE];
    memset(value, 'p', sizeof value);
    plog_client_producer_config pc = {.window = 8, .batch_records = 512};
    plog_client_producer *p;
    plog_client_producer_open(c, &pc, &p, NULL);
    int64_t t0 = now_ns();
    uint64_t sent = 0;
    while (now_ns() - t0 < (int64_t)PHASE_MS * 1000000) {
        for (int i = 0; i < 4096; i++)
            plog_client_producer_send(p, value, sizeof value, NULL);
        sent += 4096;
    }
    int code = plog_client_producer_flush(p, NULL);
    double secs = (double)(now_ns() - t0) / 1e9;
    plog_client_producer_close(p);
    printf("bench rpc.produce.pipelined %.0f records/s size=%d window=8 batch=512 sync=never "
           "status=%s n=%llu tls=1\n",
           (double)sent / secs, VALUE_SIZE, plog_rpc_status_name(code), (unsigned long long)sent);
    fflush(stdout);

    /* ConsumeStream over everything produced so far. */
    plog_client_consumer_config cc = {.max_records = 4096, .max_bytes = 1 << 20};
    plog_client_consumer *it;
    plog_client_consumer_open(c, 0, &cc, &it);
    const uint8_t *v;
    size_t len;
    uint64_t off, got = 0;
    t0 = now_ns();
    while (plog_client_consumer_next(it, &v, &len, &off, NULL) == PLOG_STATUS_OK)
        got++;
    secs = (double)(now_ns() - t0) / 1e9;
    plog_client_consumer_close(it);
    printf("bench rpc.consume.stream %.0f records/s size=%d max_records=4096 n=%llu tls=1\n",
           (double)got / secs, VALUE_SIZE, (unsigned long long)got);
    long peak = rss_kib(srv.proc.pid, "VmHWM:");
    long anon_now = rss_kib(srv.proc.pid, "RssAnon:"), file_now = rss_kib(srv.proc.pid, "RssFile:");
    printf("bench rpc.rss %ld KiB state=idle tls=1\n", idle);
    printf("bench rpc.rss %ld KiB state=load phase=unary_clients_16 anon_kib=%ld tls=1\n", sm.max_rss,
           sm.max_anon);
    printf("bench rpc.rss %ld KiB state=load phase=after_streams peak_hwm_kib=%ld anon_kib=%ld "
           "file_kib=%ld records=%llu tls=1\n",
           anon_now + file_now, peak, anon_now, file_now, (unsigned long long)got);
    fflush(stdout);
    plog_client_close(c);
    tserver_fini(&srv);

    /* Unary produce under the fsyncing policies: an fsync per committer batch
     * (always), then the group commit (interval, the default: a waiting commit
     * fsyncs at once, covering every produce appended before), compared with
     * always and with the time of one fdatasync on the same disk, measured in
     * the same run. The two servers run side by side and their rounds
     * alternate, so both see the same (shared, noisy) disk and machine. A third
     * turn in each round: 16 threads making blocking calls on the interval
     * server (mode=threads, vs_async: over the 16 contexts there), whose
     * produces the client coalesces. */
    const char *policies[][2] = {{"always", "always"}, {"interval", "interval_10ms"}};
    struct tserver gsrv[2] = {{.tls = true, .extra = {"--sync", "always", "--log-level", "warn"}},
                              {.tls = true, .extra = {"--sync", "interval", "--log-level", "warn"}}};
    plog_client *gc[2];
    struct lat glat[2] = {{.mu = PTHREAD_MUTEX_INITIALIZER}, {.mu = PTHREAD_MUTEX_INITIALIZER}};
    double grates[2][ROUNDS], gratios[ROUNDS], fsync_us[ROUNDS], fsync_cpu[ROUNDS], girates[ROUNDS],
        giratios[ROUNDS];
    int gerrors[2] = {0, 0}, gierrors = 0;
    struct lat gilat = {.mu = PTHREAD_MUTEX_INITIALIZER};
    struct cost gcost[2], gicost;
    for (int k = 0; k < 2; k++) {
        tserver_start(&gsrv[k]);
        gc[k] = open_root(&gsrv[k]);
        gcost[k] = (struct cost){.server = gsrv[k].proc.pid};
    }
    gicost = gcost[1];
    for (int r = 0; r < ROUNDS; r++) {
        fsync_us[r] = fsync_p50_us(&fsync_cpu[r]);
        for (int i = 0; i < 3; i++) {
            int k = (i + r) % 3;
            if (k < 2)
                grates[k][r] =
                    run_async(1, plog_client_socket(gc[k]), gc[k], 16, &glat[k], &gerrors[k], &gcost[k]);
            else
                girates[r] = run_load(1, plog_client_socket(gc[1]), gc[1], 16, &gilat, &gierrors, &gicost);
        }
        gratios[r] = grates[0][r] > 0 ? grates[1][r] / grates[0][r] : 0;
        giratios[r] = grates[1][r] > 0 ? girates[r] / grates[1][r] : 0;
    }
    for (int k = 0; k < 2; k++) {
        char extra[320];
        int n = snprintf(extra, sizeof extra, "clients=16 size=%d sync=%s rounds=%d errors=%d", VALUE_SIZE,
                         policies[k][1], ROUNDS, gerrors[k]);
        if (k == 1) {
            double fsync = plog_test_median(fsync_us, ROUNDS);
            snprintf(extra + n, sizeof extra - (size_t)n,
                     " vs_always=%.2f fsync_p50_us=%.0f fsync_cpu_us=%.0f p50_vs_fsync=%.1f",
                     plog_test_median(gratios, ROUNDS), fsync, plog_test_median(fsync_cpu, ROUNDS),
                     lat_p50(&glat[1]) / fsync);
        }
        cost_fmt(&gcost[k], extra, sizeof extra);
        lat_print("rpc.produce.unary", plog_test_median(grates[k], ROUNDS), "req/s", &glat[k], extra);
        plog_client_close(gc[k]);
        tserver_fini(&gsrv[k]);
    }
    char giextra[320];
    snprintf(giextra, sizeof giextra,
             "clients=16 size=%d sync=interval_10ms mode=threads rounds=%d vs_async=%.2f errors=%d",
             VALUE_SIZE, ROUNDS, plog_test_median(giratios, ROUNDS), gierrors);
    cost_fmt(&gicost, giextra, sizeof giextra);
    lat_print("rpc.produce.unary", plog_test_median(girates, ROUNDS), "req/s", &gilat, giextra);

    /* What the request log costs: one line per request, into a file. */
    struct tserver lsrv = {.tls = true, .extra = {"--sync", "never", "--log-level", "info"}};
    tserver_start(&lsrv);
    c = open_root(&lsrv);
    errors = 0;
    double lrate = run_async(1, plog_client_socket(c), c, 16, &lat, &errors, NULL);
    char lextra[96];
    snprintf(lextra, sizeof lextra, "clients=16 size=%d sync=never errors=%d log=info", VALUE_SIZE, errors);
    lat_print("rpc.produce.unary", lrate, "req/s", &lat, lextra);
    plog_client_close(c);
    tserver_fini(&lsrv);

    bench_e2e();
}

/* fsync_p50_us: the median time of a 4 KiB write + fdatasync in a temporary
 * directory (where the test servers keep their data); *cpu_us: the CPU time one
 * of them took on average (on a virtual machine the disk's doorbell and
 * completion are CPU work of the guest). */
static double fsync_p50_us(double *cpu_us)
{
    char dir[64], path[96];
    plog_test_tmpdir("fsync", dir, sizeof dir);
    snprintf(path, sizeof path, "%s/f", dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    double t[41];
    char buf[4096] = {0};
    struct timespec cpu0, cpu1;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &cpu0);
    for (int i = 0; i < 41; i++) {
        struct timespec a, b;
        clock_gettime(CLOCK_MONOTONIC, &a);
        if (write(fd, buf, sizeof buf) != (ssize_t)sizeof buf || fdatasync(fd) != 0)
            fail_msg("fsync_p50_us: %s", strerror(errno));
        clock_gettime(CLOCK_MONOTONIC, &b);
        t[i] = (double)(b.tv_sec - a.tv_sec) * 1e6 + (double)(b.tv_nsec - a.tv_nsec) / 1e3;
    }
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &cpu1);
    *cpu_us = ((double)(cpu1.tv_sec - cpu0.tv_sec) * 1e6 + (double)(cpu1.tv_nsec - cpu0.tv_nsec) / 1e3) / 41;
    close(fd);
    plog_test_rmrf(dir);
    for (int i = 1; i < 41; i++)
        for (int j = i; j > 0 && t[j] < t[j - 1]; j--) {
            double x = t[j];
            t[j] = t[j - 1], t[j - 1] = x;
        }
    return t[20];
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_bench)};
    tserver_certs(); /* before the echo server forks */
    return cmocka_run_group_tests_name("bench", tests, NULL, NULL);
}
