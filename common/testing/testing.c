/* testing.c - see testing.h. */
#define _GNU_SOURCE
#include "testing/testing.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

void plog_test_tmpdir(const char *tag, char *buf, size_t size)
{
    int n = snprintf(buf, size, "/tmp/plog-%s-XXXXXX", tag);
    if (n < 0 || (size_t)n >= size)
        fail_msg("tmpdir: buffer too small for tag %s", tag);
    if (mkdtemp(buf) == NULL)
        fail_msg("mkdtemp %s: %s", buf, strerror(errno));
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path) == 0 || errno == ENOENT ? 0 : -1;
}

void plog_test_rmrf(const char *path)
{
    if (nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS) != 0 && errno != ENOENT)
        fail_msg("rm -rf %s: %s", path, strerror(errno));
}

/* bind_port binds a TCP socket to host:port (port 0: the kernel chooses), closes it
 * and returns the port it got, or -1 when the port is taken (no SO_REUSEADDR: a port
 * still in TIME_WAIT counts as taken too). */
static int bind_port(const char *host, int port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1)
        fail_msg("not an IPv4 address: %s", host);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        fail_msg("socket: %s", strerror(errno));
    socklen_t len = sizeof sa;
    int got =
        bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0 && getsockname(fd, (struct sockaddr *)&sa, &len) == 0
            ? ntohs(sa.sin_port)
            : -1;
    close(fd);
    return got;
}

int plog_test_free_port_on(const char *host)
{
    static atomic_uint start, taken; /* where this process starts in the range (0: not
                                        yet), and how many candidates it used */
    const int low = 10000;
    int ephemeral_lo = 32768;
    FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r");
    if (f != NULL) {
        if (fscanf(f, "%d", &ephemeral_lo) != 1)
            ephemeral_lo = 32768;
        fclose(f);
    }
    int span = ephemeral_lo - low;
    if (span >= 1000) {
        unsigned zero = 0, mine = 1 + (((unsigned)getpid() * 2654435761u) ^ (unsigned)time(NULL));
        atomic_compare_exchange_strong(&start, &zero, mine); /* processes start at different places */
        for (int tries = 0; tries < span; tries++) {
            /* Steps of 997 ports: two calls never return neighbours (a node's default
             * Raft port is its RPC port + 2). */
            unsigned k = atomic_load(&start) + 997u * atomic_fetch_add(&taken, 1);
            int port = low + (int)(k % (unsigned)span);
            if (bind_port(host, port) == port)
                return port;
        }
    }
    /* No room below the ephemeral range (or all taken): let the kernel choose. */
    int port = bind_port(host, 0);
    if (port < 0)
        fail_msg("bind %s:0: %s", host, strerror(errno));
    return port;
}

int plog_test_free_port(void)
{
    return plog_test_free_port_on("127.0.0.1");
}

int64_t plog_test_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void plog_test_sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

double plog_test_median(double *v, size_t n)
{
    if (n == 0)
        return 0;
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0 && v[j] < v[j - 1]; j--) {
            double x = v[j];
            v[j] = v[j - 1];
            v[j - 1] = x;
        }
    return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

bool plog_test_wait_until(bool (*cond)(void *), void *arg, int timeout_ms)
{
    int64_t deadline = plog_test_now_ms() + timeout_ms;
    for (;;) {
        if (cond(arg))
            return true;
        if (plog_test_now_ms() >= deadline)
            return false;
        plog_test_sleep_ms(5);
    }
}

const char *plog_test_bin(const char *name)
{
    static char path[512];
    const char *build = getenv("PLOG_BUILD");
    snprintf(path, sizeof path, "%s/%s", build ? build : "build", name);
    return path;
}

void plog_test_spawn(plog_test_proc *p, char *const argv[])
{
    memset(p, 0, sizeof *p);
    snprintf(p->out, sizeof p->out, "/tmp/plog-proc-XXXXXX");
    int fd = mkstemp(p->out);
    if (fd < 0)
        fail_msg("mkstemp: %s", strerror(errno));
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0)
        fail_msg("fork: %s", strerror(errno));
    if (pid == 0) {
        /* A test that dies (a crash, a signal, cmocka giving up) takes its
         * servers with it. The signal comes when the forking thread ends, so
         * spawn from a thread that outlives the child (every test does: main). */
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent)
            _exit(127);
        int devnull = open("/dev/null", O_RDONLY);
        dup2(devnull, 0);
        dup2(fd, 1);
        dup2(fd, 2);
        execv(argv[0], argv);
        fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    close(fd);
    p->pid = pid;
}

static bool reap(plog_test_proc *p, int timeout_ms)
{
    int64_t deadline = plog_test_now_ms() + timeout_ms;
    while (!p->reaped) {
        pid_t r = waitpid(p->pid, &p->status, WNOHANG);
        if (r == p->pid) {
            p->reaped = true;
            break;
        }
        if (r < 0 && errno != EINTR)
            fail_msg("waitpid %d: %s", (int)p->pid, strerror(errno));
        if (plog_test_now_ms() >= deadline)
            return false;
        plog_test_sleep_ms(2);
    }
    return true;
}

bool plog_test_wait(plog_test_proc *p, int timeout_ms)
{
    return reap(p, timeout_ms);
}

bool plog_test_kill(plog_test_proc *p, int sig, int timeout_ms)
{
    if (p->pid <= 0 || p->reaped)
        return true;
    kill(p->pid, sig);
    if (reap(p, timeout_ms))
        return true;
    kill(p->pid, SIGKILL);
    reap(p, 10000);
    return false;
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        fail_msg("open %s: %s", path, strerror(errno));
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    if (buf == NULL)
        fail_msg("read %s: out of memory", path);
    size_t n;
    while ((n = fread(buf + len, 1, cap - len - 1, f)) > 0) {
        len += n;
        if (cap - len < 2) {
            char *grown = realloc(buf, cap *= 2);
            if (grown == NULL)
                fail_msg("read %s: out of memory", path);
            buf = grown;
        }
    }
    fclose(f);
    buf[len] = '\0';
    return buf;
}

char *plog_test_output(const plog_test_proc *p)
{
    return slurp(p->out);
}

bool plog_test_wait_output(const plog_test_proc *p, const char *needle, int timeout_ms)
{
    int64_t deadline = plog_test_now_ms() + timeout_ms;
    for (;;) {
        char *out = plog_test_output(p);
        bool found = strstr(out, needle) != NULL;
        free(out);
        if (found)
            return true;
        if (plog_test_now_ms() >= deadline)
            return false;
        plog_test_sleep_ms(5);
    }
}

bool plog_test_wait_port(int port, int timeout_ms)
{
    int64_t deadline = plog_test_now_ms() + timeout_ms;
    for (;;) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        int rc = connect(fd, (struct sockaddr *)&sa, sizeof sa);
        close(fd);
        if (rc == 0)
            return true;
        if (plog_test_now_ms() >= deadline)
            return false;
        plog_test_sleep_ms(5);
    }
}

int plog_test_run(char *const argv[], const char *stdin_path, int timeout_ms, char **out)
{
    plog_test_proc p;
    memset(&p, 0, sizeof p);
    snprintf(p.out, sizeof p.out, "/tmp/plog-run-XXXXXX");
    int fd = mkstemp(p.out);
    if (fd < 0)
        fail_msg("mkstemp: %s", strerror(errno));
    pid_t pid = fork();
    if (pid < 0)
        fail_msg("fork: %s", strerror(errno));
    if (pid == 0) {
        int in = open(stdin_path ? stdin_path : "/dev/null", O_RDONLY);
        if (in < 0) {
            fprintf(stderr, "open %s: %s\n", stdin_path, strerror(errno));
            _exit(127);
        }
        dup2(in, 0);
        dup2(fd, 1);
        dup2(fd, 2);
        execvp(argv[0], argv);
        fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    close(fd);
    p.pid = pid;
    if (!reap(&p, timeout_ms)) {
        kill(pid, SIGKILL);
        reap(&p, 10000);
    }
    if (out != NULL)
        *out = slurp(p.out);
    unlink(p.out);
    if (WIFEXITED(p.status))
        return WEXITSTATUS(p.status);
    return 128 + WTERMSIG(p.status);
}

int plog_test_sh(const char *cmd, int timeout_ms, char **out)
{
    char *argv[] = {"/bin/sh", "-c", (char *)cmd, NULL};
    return plog_test_run(argv, NULL, timeout_ms, out);
}

void plog_test_capture_open(plog_test_capture *c, const char *tag)
{
    plog_test_tmpdir(tag, c->dir, sizeof c->dir);
    snprintf(c->path, sizeof c->path, "%s/out", c->dir);
    c->fd = open(c->path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (c->fd < 0)
        fail_msg("open %s: %s", c->path, strerror(errno));
}

char *plog_test_capture_read(const plog_test_capture *c)
{
    struct stat st;
    if (fstat(c->fd, &st) != 0)
        fail_msg("fstat %s: %s", c->path, strerror(errno));
    char *buf = malloc((size_t)st.st_size + 1);
    if (buf == NULL)
        fail_msg("out of memory");
    ssize_t n = pread(c->fd, buf, (size_t)st.st_size, 0);
    if (n != st.st_size)
        fail_msg("pread %s: %s", c->path, n < 0 ? strerror(errno) : "short read");
    buf[n] = '\0';
    return buf;
}

/* utc_stamp writes the time t seconds from now as the logger does, to the second. */
static void utc_stamp(time_t t, char *buf, size_t size)
{
    struct tm tm;
    if (gmtime_r(&t, &tm) == NULL || strftime(buf, size, "%Y-%m-%dT%H:%M:%S", &tm) == 0)
        fail_msg("cannot format the time");
}

char *plog_test_capture_read_untimed(const plog_test_capture *c)
{
    static const char shape[] = "dddd-dd-ddTdd:dd:dd.dddZ ";
    char *buf = plog_test_capture_read(c), *out = buf, lo[32], hi[32];
    time_t now = time(NULL);
    utc_stamp(now - 3600, lo, sizeof lo);
    utc_stamp(now + 1, hi, sizeof hi);
    for (char *line = buf; *line != '\0';) {
        char *stamp = line + strlen("time="), *end = strchr(line, '\n');
        size_t n = end != NULL ? (size_t)(end - line) + 1 : strlen(line);
        bool ok = strncmp(line, "time=", 5) == 0 && n > 5 + strlen(shape);
        for (size_t i = 0; ok && shape[i] != '\0'; i++)
            ok = shape[i] == 'd' ? isdigit((unsigned char)stamp[i]) != 0 : stamp[i] == shape[i];
        if (!ok || strncmp(stamp, lo, strlen(lo)) < 0 || strncmp(stamp, hi, strlen(hi)) > 0)
            fail_msg("log line without a UTC time of this hour: %.*s", (int)n, line);
        n -= 5 + strlen(shape);
        memmove(out, stamp + strlen(shape), n);
        out += n;
        line += 5 + strlen(shape) + n;
    }
    *out = '\0';
    return buf;
}

void plog_test_capture_clear(const plog_test_capture *c)
{
    if (ftruncate(c->fd, 0) != 0 || lseek(c->fd, 0, SEEK_SET) != 0)
        fail_msg("truncate %s: %s", c->path, strerror(errno));
}

void plog_test_capture_close(plog_test_capture *c)
{
    close(c->fd);
    plog_test_rmrf(c->dir);
}

int plog_test_capture_setup(void **state)
{
    plog_test_capture *c = calloc(1, sizeof *c);
    if (c == NULL)
        return -1;
    plog_test_capture_open(c, "capture");
    *state = c;
    return 0;
}

int plog_test_capture_teardown(void **state)
{
    plog_test_capture_close(*state);
    free(*state);
    return 0;
}

uint64_t plog_test_rand(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 0x2545f4914f6cdd1dull;
}

size_t plog_test_rand_bytes(uint64_t *state, uint8_t *buf, size_t max)
{
    size_t n = plog_test_rand(state) % 8 == 0 ? 0 : (size_t)(plog_test_rand(state) % (max + 1));
    for (size_t i = 0; i < n; i++)
        buf[i] = (uint8_t)plog_test_rand(state);
    return n;
}
