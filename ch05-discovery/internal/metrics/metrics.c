/* metrics.c - the registry behind metrics.h: sharded atomic counters and the
 * Prometheus text exposition format 0.0.4.
 *
 * Memory. One block of PLOG_METRICS_SHARDS shards, each starting on a 64-byte
 * boundary (a cache line) so two threads writing their own shards never share a
 * line. A shard is
 *   cells[(nmethods + 1) * PLOG_METRICS_CODES]   one per (method, code); the extra
 *                                                 method row is "unknown"
 *     cell: bucket[PLOG_METRICS_BUCKETS + 1]      per-bucket counts, NOT cumulative;
 *                                                 the last one is (10 s, +Inf)
 *           sum_ns                                total latency in nanoseconds
 *   bytes[nmethods + 1]: in, out
 * A request's count is the sum of its cell's buckets over all shards, so
 * proglog_requests_total, _count and the +Inf bucket come from the same numbers.
 *
 * Exposition (https://prometheus.io/docs/instrumenting/exposition_formats/): per
 * family a "# HELP name text" and a "# TYPE name type" line, then samples
 * "name{label=\"value\",...} value". Histogram buckets are cumulative, each with an
 * "le" label, ending with le="+Inf"; then name_sum and name_count. A (method, code)
 * series appears once it has a request; the code="OK" series of every named method
 * appear from the start, so dashboards see zeros rather than gaps. */
#include "internal/metrics/metrics.h"

#include <assert.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal/err/err.h"
#include "internal/rpc/status.h"

#define CACHE_LINE 64
#define NSLOTS (PLOG_METRICS_BUCKETS + 1)

/* Upper bounds in nanoseconds, and the same bounds in seconds as Go's
 * strconv.FormatFloat(v, 'g', -1, 64) writes them (what client_golang emits). */
static const uint64_t bucket_ns[PLOG_METRICS_BUCKETS] = {
    25000,      50000,      100000,  /* 25 us .. */
    250000,     500000,     1000000, /* .. 1 ms .. */
    2500000,    5000000,    10000000,    25000000,   50000000,
    100000000,  250000000,  500000000,   1000000000, /* .. 1 s .. */
    2500000000, 5000000000, 10000000000,             /* .. 10 s */
};
static const char *const bucket_le[PLOG_METRICS_BUCKETS] = {
    "2.5e-05", "5e-05", "0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005", "0.01",
    "0.025",   "0.05",  "0.1",    "0.25",    "0.5",    "1",     "2.5",    "5",     "10",
};

#define CODE_UNKNOWN 2

static const struct {
    const char *name;
    const char *type;
    const char *labels;
    const char *help;
} gauge_info[PLOG_GAUGE_COUNT] = {
#define X(id, name, type, labels, help) {name, type, labels, help},
    PLOG_METRICS_GAUGES(X)
#undef X
};

struct cell {
    _Atomic uint64_t bucket[NSLOTS];
    _Atomic uint64_t sum_ns;
};

struct bytes {
    _Atomic uint64_t in;
    _Atomic uint64_t out;
};

struct gauge {
    _Atomic int64_t value;
    plog_metrics_gauge_fn fn; /* guarded by plog_metrics.gauge_mu */
    void *arg;
};

struct plog_metrics {
    size_t nmethods;
    char *methods[PLOG_METRICS_MAX_METHODS + 1]; /* [nmethods] is "unknown" */
    char *labels[PLOG_METRICS_MAX_METHODS + 1];  /* the same, escaped as label values */
    size_t shard_size;                           /* bytes, a multiple of CACHE_LINE */
    unsigned char *shards;                       /* PLOG_METRICS_SHARDS * shard_size */
    pthread_mutex_t gauge_mu;                    /* held while a callback runs, so unbinding waits for it */
    struct gauge gauges[PLOG_GAUGE_COUNT];
};

/* A thread's shard, chosen round-robin the first time it observes. Shared by every
 * registry in the process: the shard only spreads threads over cache lines. */
static _Atomic unsigned next_shard;
static _Thread_local unsigned my_shard = 0; /* 0: not chosen yet, else index + 1 */

static unsigned shard_index(void)
{
    if (my_shard == 0) {
        unsigned n = atomic_fetch_add_explicit(&next_shard, 1, memory_order_relaxed);
        my_shard = n % PLOG_METRICS_SHARDS + 1;
    }
    return my_shard - 1;
}

static size_t ncells(const plog_metrics *m)
{
    return (m->nmethods + 1) * PLOG_METRICS_CODES;
}

static struct cell *shard_cells(const plog_metrics *m, unsigned s)
{
    return (struct cell *)(m->shards + (size_t)s * m->shard_size);
}

static struct bytes *shard_bytes(const plog_metrics *m, unsigned s)
{
    return (struct bytes *)(m->shards + (size_t)s * m->shard_size + ncells(m) * sizeof(struct cell));
}

static size_t method_slot(const plog_metrics *m, int method)
{
    return method >= 0 && (size_t)method < m->nmethods ? (size_t)method : m->nmethods;
}

static size_t code_slot(int code)
{
    return code >= 0 && code < PLOG_METRICS_CODES ? (size_t)code : CODE_UNKNOWN;
}

/* escape_label returns a malloc'd copy of s escaped as the inside of a quoted label
 * value: the format escapes backslash, double quote and line feed. */
static char *escape_label(const char *s)
{
    char *out = malloc(2 * strlen(s) + 1), *o = out;

    if (out == NULL)
        return NULL;
    for (; *s != '\0'; s++) {
        if (*s == '\\' || *s == '"' || *s == '\n') {
            *o++ = '\\';
            *o++ = *s == '\n' ? 'n' : *s;
        } else {
            *o++ = *s;
        }
    }
    *o = '\0';
    return out;
}

int plog_metrics_new(const char *const *methods, size_t n, plog_metrics **mp)
{
    plog_metrics *m;
    size_t i, size;

    if (methods == NULL || n == 0 || n > PLOG_METRICS_MAX_METHODS)
        return PLOG_EINVAL;
    for (i = 0; i < n; i++) {
        size_t j;
        /* Two series with one name and label set would make the exposition invalid. */
        if (methods[i] == NULL || methods[i][0] == '\0' || strcmp(methods[i], "unknown") == 0)
            return PLOG_EINVAL;
        for (j = 0; j < i; j++)
            if (strcmp(methods[i], methods[j]) == 0)
                return PLOG_EINVAL;
    }
    if ((m = calloc(1, sizeof(*m))) == NULL)
        return PLOG_ENOMEM;
    m->nmethods = n;
    pthread_mutex_init(&m->gauge_mu, NULL);
    for (i = 0; i < n; i++)
        if ((m->methods[i] = strdup(methods[i])) == NULL)
            goto fail;
    if ((m->methods[n] = strdup("unknown")) == NULL)
        goto fail;
    for (i = 0; i <= n; i++)
        if ((m->labels[i] = escape_label(m->methods[i])) == NULL)
            goto fail;
    size = ncells(m) * sizeof(struct cell) + (n + 1) * sizeof(struct bytes);
    m->shard_size = (size + CACHE_LINE - 1) / CACHE_LINE * CACHE_LINE;
    /* aligned_alloc wants a size that is a multiple of the alignment: it is. */
    m->shards = aligned_alloc(CACHE_LINE, PLOG_METRICS_SHARDS * m->shard_size);
    if (m->shards == NULL)
        goto fail;
    /* All-zero bytes are a valid zero for these lock-free integer atomics. */
    memset(m->shards, 0, PLOG_METRICS_SHARDS * m->shard_size);
    *mp = m;
    return PLOG_OK;
fail:
    plog_metrics_free(m);
    return PLOG_ENOMEM;
}

void plog_metrics_free(plog_metrics *m)
{
    size_t i;

    if (m == NULL)
        return;
    for (i = 0; i <= PLOG_METRICS_MAX_METHODS; i++) {
        free(m->methods[i]);
        free(m->labels[i]);
    }
    free(m->shards);
    pthread_mutex_destroy(&m->gauge_mu);
    free(m);
}

int plog_metrics_method_id(const plog_metrics *m, const char *name)
{
    size_t i;

    for (i = 0; i < m->nmethods; i++)
        if (strcmp(m->methods[i], name) == 0)
            return (int)i;
    return PLOG_METRICS_MAX_METHODS;
}

void plog_metrics_observe(plog_metrics *m, int method, int code, uint64_t latency_ns, uint64_t bytes_in,
                          uint64_t bytes_out)
{
    unsigned s = shard_index();
    size_t ms = method_slot(m, method);
    struct cell *c = &shard_cells(m, s)[ms * PLOG_METRICS_CODES + code_slot(code)];
    struct bytes *b = &shard_bytes(m, s)[ms];
    size_t i = 0;

    /* Most requests are fast: a linear scan from the smallest bound ends early. */
    while (i < PLOG_METRICS_BUCKETS && latency_ns > bucket_ns[i])
        i++;
    /* Relaxed: these are independent counters; a scrape needs no ordering between
     * them, only that each add is atomic. */
    atomic_fetch_add_explicit(&c->bucket[i], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&c->sum_ns, latency_ns, memory_order_relaxed);
    atomic_fetch_add_explicit(&b->in, bytes_in, memory_order_relaxed);
    atomic_fetch_add_explicit(&b->out, bytes_out, memory_order_relaxed);
}

/* snapshot_cell sums cell index ci over the shards into bucket[] and *sum_ns and
 * returns the request count. */
static uint64_t snapshot_cell(const plog_metrics *m, size_t ci, uint64_t bucket[NSLOTS], uint64_t *sum_ns)
{
    uint64_t count = 0;
    unsigned s;
    size_t i;

    memset(bucket, 0, NSLOTS * sizeof(bucket[0]));
    *sum_ns = 0;
    for (s = 0; s < PLOG_METRICS_SHARDS; s++) {
        struct cell *c = &shard_cells(m, s)[ci];
        for (i = 0; i < NSLOTS; i++)
            bucket[i] += atomic_load_explicit(&c->bucket[i], memory_order_relaxed);
        *sum_ns += atomic_load_explicit(&c->sum_ns, memory_order_relaxed);
    }
    for (i = 0; i < NSLOTS; i++)
        count += bucket[i];
    return count;
}

uint64_t plog_metrics_requests(const plog_metrics *m, int method, int code)
{
    uint64_t bucket[NSLOTS], sum_ns;

    return snapshot_cell(m, method_slot(m, method) * PLOG_METRICS_CODES + code_slot(code), bucket, &sum_ns);
}

void plog_metrics_gauge_set(plog_metrics *m, plog_metrics_gauge g, int64_t v)
{
    assert(g >= 0 && g < PLOG_GAUGE_COUNT);
    atomic_store_explicit(&m->gauges[g].value, v, memory_order_relaxed);
}

void plog_metrics_gauge_add(plog_metrics *m, plog_metrics_gauge g, int64_t delta)
{
    assert(g >= 0 && g < PLOG_GAUGE_COUNT);
    atomic_fetch_add_explicit(&m->gauges[g].value, delta, memory_order_relaxed);
}

/* gauge_read returns g's value; the caller holds gauge_mu. */
static int64_t gauge_read(plog_metrics *m, plog_metrics_gauge g)
{
    struct gauge *ga = &m->gauges[g];

    if (ga->fn != NULL)
        return ga->fn(ga->arg);
    return atomic_load_explicit(&ga->value, memory_order_relaxed);
}

int64_t plog_metrics_gauge_get(plog_metrics *m, plog_metrics_gauge g)
{
    int64_t v;

    assert(g >= 0 && g < PLOG_GAUGE_COUNT);
    pthread_mutex_lock(&m->gauge_mu);
    v = gauge_read(m, g);
    pthread_mutex_unlock(&m->gauge_mu);
    return v;
}

void plog_metrics_gauge_bind(plog_metrics *m, plog_metrics_gauge g, plog_metrics_gauge_fn fn, void *arg)
{
    assert(g >= 0 && g < PLOG_GAUGE_COUNT);
    pthread_mutex_lock(&m->gauge_mu);
    m->gauges[g].fn = fn;
    m->gauges[g].arg = fn != NULL ? arg : NULL;
    pthread_mutex_unlock(&m->gauge_mu);
}

/* A growable output buffer; once an allocation fails it stays failed. */
struct buf {
    char *p;
    size_t len, cap;
    bool failed;
};

static void buf_vprintf(struct buf *b, const char *fmt, va_list ap)
{
    va_list ap2;
    int n;

    if (b->failed)
        return;
    va_copy(ap2, ap);
    n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap2);
    va_end(ap2);
    if (n < 0) {
        b->failed = true;
        return;
    }
    if ((size_t)n >= b->cap - b->len) {
        size_t cap = b->cap;
        char *p;
        while ((size_t)n >= cap - b->len)
            cap *= 2;
        if ((p = realloc(b->p, cap)) == NULL) {
            b->failed = true;
            return;
        }
        b->p = p;
        b->cap = cap;
        vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
    }
    b->len += (size_t)n;
}

#ifdef __GNUC__
__attribute__((format(printf, 2, 3)))
#endif
static void
buf_printf(struct buf *b, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    buf_vprintf(b, fmt, ap);
    va_end(ap);
}

static void buf_family(struct buf *b, const char *name, const char *type, const char *help)
{
    buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* buf_series_start writes `name{method="M",code="C"` (no closing brace). */
static void buf_series_start(struct buf *b, const plog_metrics *m, const char *name, size_t ms, size_t code)
{
    buf_printf(b, "%s{method=\"%s\",code=\"%s\"", name, m->labels[ms], plog_rpc_status_name(code));
}

struct snap {
    uint64_t bucket[NSLOTS];
    uint64_t sum_ns;
    uint64_t count;
};

/* shown says whether a (method, code) series is rendered: once it has requests, and
 * from the start for code OK of a named method. */
static bool shown(const plog_metrics *m, const struct snap *sn, size_t ms, size_t code)
{
    return sn->count > 0 || (code == 0 && ms < m->nmethods);
}

static void render_requests(struct buf *b, const plog_metrics *m, const struct snap *snaps)
{
    size_t ms, code;

    buf_family(b, "proglog_requests_total", "counter",
               "RPC requests handled, by method and gRPC status code.");
    for (ms = 0; ms <= m->nmethods; ms++)
        for (code = 0; code < PLOG_METRICS_CODES; code++) {
            const struct snap *sn = &snaps[ms * PLOG_METRICS_CODES + code];
            if (!shown(m, sn, ms, code))
                continue;
            buf_series_start(b, m, "proglog_requests_total", ms, code);
            buf_printf(b, "} %" PRIu64 "\n", sn->count);
        }
}

static void render_durations(struct buf *b, const plog_metrics *m, const struct snap *snaps)
{
    size_t ms, code, i;

    buf_family(b, "proglog_request_duration_seconds", "histogram",
               "Time from receiving a request to sending its reply, by method and gRPC "
               "status code.");
    for (ms = 0; ms <= m->nmethods; ms++)
        for (code = 0; code < PLOG_METRICS_CODES; code++) {
            const struct snap *sn = &snaps[ms * PLOG_METRICS_CODES + code];
            uint64_t cum = 0;
            if (!shown(m, sn, ms, code))
                continue;
            for (i = 0; i < NSLOTS; i++) {
                cum += sn->bucket[i];
                buf_series_start(b, m, "proglog_request_duration_seconds_bucket", ms, code);
                buf_printf(b, ",le=\"%s\"} %" PRIu64 "\n", i < PLOG_METRICS_BUCKETS ? bucket_le[i] : "+Inf",
                           cum);
            }
            /* Seconds as an exact decimal: whole seconds, then nine digits of ns. */
            buf_series_start(b, m, "proglog_request_duration_seconds_sum", ms, code);
            buf_printf(b, "} %" PRIu64 ".%09" PRIu64 "\n", sn->sum_ns / 1000000000u,
                       sn->sum_ns % 1000000000u);
            buf_series_start(b, m, "proglog_request_duration_seconds_count", ms, code);
            buf_printf(b, "} %" PRIu64 "\n", cum);
        }
}

static void render_bytes(struct buf *b, const plog_metrics *m, bool out)
{
    const char *name = out ? "proglog_response_bytes_total" : "proglog_request_bytes_total";
    size_t ms;
    unsigned s;

    buf_family(b, name, "counter",
               out ? "Bytes of reply messages sent, by method."
                   : "Bytes of request messages received, by method.");
    for (ms = 0; ms <= m->nmethods; ms++) {
        uint64_t v = 0;
        for (s = 0; s < PLOG_METRICS_SHARDS; s++) {
            struct bytes *by = &shard_bytes(m, s)[ms];
            v += atomic_load_explicit(out ? &by->out : &by->in, memory_order_relaxed);
        }
        if (ms == m->nmethods && v == 0)
            continue; /* the "unknown" row only once it means something */
        buf_printf(b, "%s{method=\"%s\"} %" PRIu64 "\n", name, m->labels[ms], v);
    }
}

static void render_gauges(struct buf *b, plog_metrics *m)
{
    int g;

    pthread_mutex_lock(&m->gauge_mu);
    for (g = 0; g < PLOG_GAUGE_COUNT; g++) {
        if (g == 0 || strcmp(gauge_info[g].name, gauge_info[g - 1].name) != 0)
            buf_family(b, gauge_info[g].name, gauge_info[g].type, gauge_info[g].help);
        if (gauge_info[g].labels[0] != '\0')
            buf_printf(b, "%s{%s} %" PRId64 "\n", gauge_info[g].name, gauge_info[g].labels, gauge_read(m, g));
        else
            buf_printf(b, "%s %" PRId64 "\n", gauge_info[g].name, gauge_read(m, g));
    }
    pthread_mutex_unlock(&m->gauge_mu);
}

int plog_metrics_render(plog_metrics *m, char **out, size_t *len)
{
    struct buf b = {.cap = 16384};
    struct snap *snaps;
    size_t ci;

    snaps = malloc(ncells(m) * sizeof(*snaps));
    b.p = malloc(b.cap);
    if (snaps == NULL || b.p == NULL)
        goto fail;
    b.p[0] = '\0';
    /* Snapshot every cell once so requests_total and the histogram agree. */
    for (ci = 0; ci < ncells(m); ci++)
        snaps[ci].count = snapshot_cell(m, ci, snaps[ci].bucket, &snaps[ci].sum_ns);
    render_requests(&b, m, snaps);
    render_durations(&b, m, snaps);
    render_bytes(&b, m, false);
    render_bytes(&b, m, true);
    render_gauges(&b, m);
    if (b.failed)
        goto fail;
    free(snaps);
    *out = b.p;
    *len = b.len;
    return PLOG_OK;
fail:
    free(snaps);
    free(b.p);
    return PLOG_ENOMEM;
}
