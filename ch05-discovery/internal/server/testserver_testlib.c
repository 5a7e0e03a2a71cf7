/* testserver_testlib.c - run proglog as a real process for the tests (testserver.h), in the test library
 * (linked only into tests and benchmarks). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal/client/stream.h"
#include "internal/server/testserver.h"

#include "internal/client/client.h"

const char *tserver_certs(void)
{
    static char dir[512];
    if (dir[0] != '\0')
        return dir;
    const char *build = getenv("PLOG_BUILD"), *chapter = getenv("PLOG_CHAPTER");
    char cmd[1200], *out = NULL;
    snprintf(dir, sizeof dir, "%s/certs", build != NULL ? build : "build");
    snprintf(cmd, sizeof cmd, "%s/../common/certs/gencert '%s'", chapter != NULL ? chapter : ".", dir);
    int rc = plog_test_sh(cmd, 30000, &out);
    if (rc != 0)
        fail_msg("%s: exit %d: %s", cmd, rc, out != NULL ? out : "");
    free(out);
    return dir;
}

const char *tserver_cert(const char *name)
{
    static char bufs[8][600];
    static int next;
    char *b = bufs[next++ % 8];
    snprintf(b, sizeof bufs[0], "%s/%s", tserver_certs(), name);
    return b;
}

nng_tls_config *tserver_client_tls(const char *who)
{
    char cert[64], key[64], err[PLOG_TLS_ERRMSG_SIZE];
    nng_tls_config *cfg;
    snprintf(cert, sizeof cert, "%s-client.pem", who != NULL ? who : "");
    snprintf(key, sizeof key, "%s-client-key.pem", who != NULL ? who : "");
    const char *c = who != NULL ? tserver_cert(cert) : NULL;
    const char *k = who != NULL ? tserver_cert(key) : NULL;
    if (plog_tls_config_client(c, k, tserver_cert("ca.pem"), "127.0.0.1", &cfg, err, sizeof err) != 0)
        fail_msg("client TLS config for %s: %s", who != NULL ? who : "(none)", err);
    return cfg;
}

/* logs_quietly: the server was told to log only warnings and errors, so its
 * "serving" line (info) never comes. */
static bool logs_quietly(const struct tserver *s)
{
    for (int i = 0; i + 1 < 8 && s->extra[i] != NULL; i++)
        if (strcmp(s->extra[i], "--log-level") == 0 && s->extra[i + 1] != NULL &&
            (strcmp(s->extra[i + 1], "warn") == 0 || strcmp(s->extra[i + 1], "error") == 0))
            return true;
    return false;
}

plog_client *tserver_client_as(const struct tserver *s, const char *who)
{
    plog_client_config cfg = {.tls = tserver_client_tls(who)};
    plog_client *c;
    plog_rpc_status st;
    int code = plog_client_open(s->addr, &cfg, &c, &st);
    nng_tls_config_free(cfg.tls); /* the client holds its own reference */
    if (code != PLOG_STATUS_OK)
        fail_msg("open as %s: %s: %s", who, plog_rpc_status_name(code), st.msg);
    return c;
}

void tserver_start(struct tserver *s)
{
    if (s->dir[0] == '\0') {
        plog_test_tmpdir("rpc", s->dir, sizeof s->dir);
        s->port = plog_test_free_port();
        snprintf(s->addr, sizeof s->addr, "%s://127.0.0.1:%d", s->tls ? "tls+tcp" : "tcp", s->port);
    }
    char bin[512], data[128];
    snprintf(bin, sizeof bin, "%s", plog_test_bin("proglog"));
    snprintf(data, sizeof data, "%s/data", s->dir);
    char *argv[32] = {bin, "--addr", s->addr, "--data-dir", data};
    int n = 5;
    if (!s->tls) {
        argv[n++] = "--insecure-allow-plaintext";
    } else {
        static char files[5][600];
        snprintf(files[0], sizeof files[0], "%s", tserver_cert("server.pem"));
        snprintf(files[1], sizeof files[1], "%s", tserver_cert("server-key.pem"));
        snprintf(files[2], sizeof files[2], "%s", tserver_cert("ca.pem"));
        snprintf(files[3], sizeof files[3], "%s", tserver_cert("model.conf"));
        snprintf(files[4], sizeof files[4], "%s", s->policy != NULL ? s->policy : tserver_cert("policy.csv"));
        static const char *flags[5] = {"--server-tls-cert-file", "--server-tls-key-file",
                                       "--server-tls-ca-file", "--acl-model-file", "--acl-policy-file"};
        for (int i = 0; i < 5; i++) {
            argv[n++] = (char *)flags[i];
            argv[n++] = files[i];
        }
    }
    for (int i = 0; i < 8 && s->extra[i] != NULL; i++)
        argv[n++] = (char *)s->extra[i];
    argv[n] = NULL;
    if (s->proc.out[0] != '\0')
        unlink(s->proc.out);
    plog_test_spawn(&s->proc, argv);
    /* Ready: the "serving" line, or, when the server logs quietly, its port (a
     * probe connection the server counts as a failed handshake). */
    bool ready = logs_quietly(s) ? plog_test_wait_port(s->port, 10000)
                                 : plog_test_wait_output(&s->proc, "msg=serving", 10000);
    if (!ready) {
        char *out = plog_test_output(&s->proc);
        plog_test_kill(&s->proc, SIGKILL, 1000);
        fail_msg("proglog did not start: %s", out);
    }
    s->running = true;
}

bool tserver_stop(struct tserver *s, int sig)
{
    if (!s->running)
        return true;
    s->running = false;
    bool exited = plog_test_kill(&s->proc, sig, 10000);
    if (sig == SIGKILL)
        return true;
    if (exited && WIFEXITED(s->proc.status) && WEXITSTATUS(s->proc.status) == 0)
        return true;
    /* Say why, with the end of what the server said. */
    char *out = plog_test_output(&s->proc);
    size_t n = out != NULL ? strlen(out) : 0;
    fprintf(stderr, "tserver_stop: proglog did not exit cleanly on signal %d: ", sig);
    if (!exited)
        fprintf(stderr, "still running after 10 s (killed)");
    else if (WIFEXITED(s->proc.status))
        fprintf(stderr, "exit status %d", WEXITSTATUS(s->proc.status));
    else
        fprintf(stderr, "killed by signal %d", WTERMSIG(s->proc.status));
    fprintf(stderr, "; its last output:\n%s\n", out != NULL ? out + (n > 2000 ? n - 2000 : 0) : "");
    free(out);
    return false;
}

void tserver_fini(struct tserver *s)
{
    if (s->running)
        tserver_stop(s, SIGTERM);
    if (s->proc.out[0] != '\0')
        unlink(s->proc.out);
    if (s->dir[0] != '\0')
        plog_test_rmrf(s->dir);
    memset(s, 0, sizeof *s);
}

long tserver_cpu_ticks(const struct tserver *s)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)s->proc.pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')'); /* the command name may hold spaces */
    long utime = 0, stime = 0;
    if (p == NULL ||
        sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %ld %ld", &utime, &stime) != 2)
        return -1;
    return utime + stime;
}

static void *follow_main(void *arg)
{
    struct tserver_follower *fl = arg;
    plog_client_consumer_config cc = {.follow = true, .wait_ms = fl->wait_ms};
    plog_client_consumer *it;
    const uint8_t *v;
    size_t len;
    int code = plog_client_consumer_open(fl->c, fl->from, &cc, &it);
    if (code == PLOG_STATUS_OK) {
        code = plog_client_consumer_next(it, &v, &len, &fl->off, NULL);
        fl->got_ms = plog_test_now_ms();
        if (code == PLOG_STATUS_OK)
            snprintf(fl->value, sizeof fl->value, "%.*s", (int)len, (const char *)v);
        plog_client_consumer_close(it);
    }
    fl->code = code;
    return NULL;
}

void tserver_follow_start(struct tserver_follower *fl)
{
    fl->code = -1;
    if (pthread_create(&fl->th, NULL, follow_main, fl) != 0)
        fail_msg("follower: pthread_create failed");
}

void tserver_follow_join(struct tserver_follower *fl)
{
    pthread_join(fl->th, NULL);
}
