/* http.c - GET /metrics on nng's HTTP server.
 *
 * Lifetime. nng runs the handler synchronously on the connection's receive
 * callback, and nng_http_server_stop() closes every connection and waits until
 * each is reaped, which first waits for that callback (nng 1.5.2
 * http_server.c http_server_stop / http_sc_reap). So once stop returns no handler
 * is running, and the handler and h can go. The reaping is nng's reaper thread's,
 * which can be stuck for good (internal/rpc/closer.h): close therefore stops the
 * server on the closer thread and waits for it at most CLOSE_MS. What the caller
 * owns is let go first: the handler reaches m only through h->m, under h->mu, and
 * close clears it before handing the stop over, so a scrape that comes late (its
 * connection still open while the stop waits, or queued behind another close)
 * answers 503 and touches nothing the caller freed. */
#include "internal/metrics/http.h"

#include <arpa/inet.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nng/nng.h>
#include <nng/supplemental/http/http.h>

#include "internal/err/err.h"
#include "internal/rpc/closer.h"
#include "internal/rpc/nngerr.h"

#define CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"
/* A scrape carries no body; refuse big ones rather than buffer them. */
#define MAX_BODY 4096
#define CLOSE_MS 2000 /* plog_metrics_http_close waits this long for the stop */

struct plog_metrics_http {
    pthread_mutex_t mu; /* guards m */
    plog_metrics *m;    /* NULL once close has begun */
    nng_http_server *server;
    nng_http_handler *handler;
    bool started;
    bool added;
    int port;
};

/* serve_metrics is the handler: nng passes the request as input 0 and the handler
 * as input 1, and takes the response from output 0. A failed render answers 500
 * rather than dropping the connection; a scrape once close has begun, 503. */
static void serve_metrics(nng_aio *aio)
{
    plog_metrics_http *h = nng_http_handler_get_data(nng_aio_get_input(aio, 1));
    nng_http_res *res = NULL;
    char *text = NULL;
    size_t len;
    int rv;

    pthread_mutex_lock(&h->mu);
    bool closing = h->m == NULL;
    rv = closing ? PLOG_EINVAL : plog_metrics_render(h->m, &text, &len);
    pthread_mutex_unlock(&h->mu);
    if (rv != PLOG_OK)
        goto fail;
    if ((rv = nng_http_res_alloc(&res)) != 0)
        goto fail;
    if ((rv = nng_http_res_set_header(res, "Content-Type", CONTENT_TYPE)) != 0 ||
        (rv = nng_http_res_copy_data(res, text, len)) != 0)
        goto fail;
    free(text);
    nng_aio_set_output(aio, 0, res);
    nng_aio_finish(aio, 0);
    return;
fail:
    free(text);
    nng_http_res_free(res);
    if (nng_http_res_alloc_error(&res, closing ? NNG_HTTP_STATUS_SERVICE_UNAVAILABLE
                                               : NNG_HTTP_STATUS_INTERNAL_SERVER_ERROR) != 0) {
        nng_aio_finish(aio, NNG_ENOMEM); /* nng closes the connection */
        return;
    }
    nng_aio_set_output(aio, 0, res);
    nng_aio_finish(aio, 0);
}

/* bound_port reads the port the listener got (the asked one, or the kernel's pick
 * for port 0). */
static int bound_port(nng_http_server *s, int *port)
{
    nng_sockaddr sa;
    int rv;

    if ((rv = nng_http_server_get_addr(s, &sa)) != 0)
        return rv;
    if (sa.s_family == NNG_AF_INET)
        *port = ntohs(sa.s_in.sa_port);
    else if (sa.s_family == NNG_AF_INET6)
        *port = ntohs(sa.s_in6.sa_port);
    else
        return NNG_EADDRINVAL;
    return 0;
}

int plog_metrics_http_open(plog_metrics *m, const char *addr, char *errmsg, size_t errlen,
                           plog_metrics_http **hp)
{
    plog_metrics_http *h;
    nng_url *url = NULL;
    char urlbuf[300];
    const char *step;
    int rv;

    if (errmsg != NULL && errlen > 0)
        errmsg[0] = '\0';
    if (addr == NULL || addr[0] == '\0' ||
        snprintf(urlbuf, sizeof(urlbuf), "%s%s", strstr(addr, "://") ? "" : "http://", addr) >=
            (int)sizeof(urlbuf)) {
        if (errmsg != NULL)
            snprintf(errmsg, errlen, "metrics address \"%s\": want host:port", addr ? addr : "");
        return PLOG_EINVAL;
    }
    if ((h = calloc(1, sizeof(*h))) == NULL)
        return PLOG_ENOMEM;
    pthread_mutex_init(&h->mu, NULL);
    h->m = m;
    step = "parse";
    if ((rv = nng_url_parse(&url, urlbuf)) != 0)
        goto fail;
    if (strcmp(url->u_scheme, "http") != 0 || (url->u_path[0] != '\0' && strcmp(url->u_path, "/") != 0)) {
        rv = NNG_EADDRINVAL;
        goto fail;
    }
    step = "listen";
    if ((rv = nng_http_server_hold(&h->server, url)) != 0)
        goto fail;
    if ((rv = nng_http_handler_alloc(&h->handler, "/metrics", serve_metrics)) != 0 ||
        (rv = nng_http_handler_set_data(h->handler, h, NULL)) != 0 ||
        (rv = nng_http_handler_collect_body(h->handler, true, MAX_BODY)) != 0)
        goto fail;
    if ((rv = nng_http_server_add_handler(h->server, h->handler)) != 0)
        goto fail;
    h->added = true;
    if ((rv = nng_http_server_start(h->server)) != 0)
        goto fail;
    h->started = true;
    if ((rv = bound_port(h->server, &h->port)) != 0)
        goto fail;
    nng_url_free(url);
    *hp = h;
    return PLOG_OK;
fail:;
    char what[300];
    snprintf(what, sizeof what, "%s %s", step, addr);
    int err = plog_rpc_nngerr_err(rv, what, errmsg, errlen); /* the one nng translation */
    nng_url_free(url);
    plog_metrics_http_close(h, NULL);
    return err;
}

int plog_metrics_http_port(const plog_metrics_http *h)
{
    return h->port;
}

/* stop_and_free undoes open in reverse (on the closer thread once the server has
 * started: the stop waits for nng's reaper); accepts a half-open h. */
static void stop_and_free(void *arg)
{
    plog_metrics_http *h = arg;
    if (h->started)
        nng_http_server_stop(h->server);
    /* Once deleted the handler is ours again (nng drops its reference). */
    if (h->added && nng_http_server_del_handler(h->server, h->handler) != 0)
        h->handler = NULL; /* not ours to free */
    if (h->handler != NULL)
        nng_http_handler_free(h->handler);
    if (h->server != NULL)
        nng_http_server_release(h->server);
    pthread_mutex_destroy(&h->mu);
    free(h);
}

void plog_metrics_http_close(plog_metrics_http *h, plog_logger *lg)
{
    if (h == NULL)
        return;
    /* From here on no scrape reads m: the caller may free it once close returns. */
    pthread_mutex_lock(&h->mu);
    h->m = NULL;
    pthread_mutex_unlock(&h->mu);
    if (!h->started) {
        stop_and_free(h);
        return;
    }
    /* A node told to stop must stop, reaper or not: if the stop is not done in
     * time, h is left to the closer (a leak, or a late stop that frees only h). */
    int port = h->port; /* h is the closer's once submitted */
    plog_rpc_closer_submit(stop_and_free, h);
    if (!plog_rpc_closer_wait(CLOSE_MS))
        plog_logger_logf(lg, PLOG_LOGGER_ERROR, "the metrics HTTP server did not close; left open",
                         "port=%d wait_ms=%d hint=\"nng's reaper is stuck\"", port, CLOSE_MS);
}
