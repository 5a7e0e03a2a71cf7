/* simfs_testlib.c - the power-loss and fault layer of simfs_testlib.h.
 *
 * The power-loss model (what a disk holds after the power went):
 *   - a file's durable content is what it held at its last fdatasync/fsync
 *     (empty for a file created since);
 *   - the writes, truncates and allocations made since then (in order) reach
 *     the disk as a prefix: the first j of them whole, then maybe part of the
 *     next: a prefix of its bytes, a prefix ending in garbage, or its full
 *     length of zeros (the size reached the disk, the data did not);
 *   - a file written through a shared mapping (the index) also gets any mix
 *     of its pages at the cut: each 512-byte sector holds either its content at
 *     the cut or the content the rule above gives;
 *   - a directory holds the names it had at its last fsync, then a prefix of
 *     the creations and removals made since (a journaling file system commits
 *     metadata in order, on its own schedule): a file created after the
 *     prefix is gone, a file removed after it is back (with the content above).
 * Files are tracked by identity, not name, so a removed file that comes back
 * carries its own content. */
#define _GNU_SOURCE /* fallocate */
#include "internal/log/simfs_testlib.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal/log/io.h"

#define MAX_FD 4096
#define PAGE 512 /* a sector: a torn page write keeps some of its sectors */

enum { OP_WRITE, OP_SIZE };

struct op {
    int kind;
    uint64_t off; /* OP_WRITE: where; OP_SIZE: the new size */
    uint64_t len;
    uint8_t *data;
};

struct sfile {
    char *name;       /* current name in the directory, NULL once removed */
    uint8_t *durable; /* content at the last sync */
    uint64_t dlen;
    struct op *ops; /* since then */
    size_t nops, opcap;
    bool mapped;    /* written through a shared writable mapping */
    uint8_t *atcut; /* mapped files: content at the cut */
    uint64_t atcutlen;
    bool have_atcut;
};

struct dentry {
    char *name;
    size_t file;
};

struct dirop {
    bool create; /* else a removal */
    char *name;
    size_t file;
};

static struct {
    pthread_mutex_t mu;
    bool recording;
    char *dir;
    uint64_t rng;
    struct sfile *files;
    size_t nfiles, filecap;
    struct dentry *ddir; /* the durable directory */
    size_t nddir;
    struct dirop *dops; /* since its last fsync */
    size_t ndops, dopcap;
    int fdfile[MAX_FD]; /* fd -> file index + 1; -1: the directory; 0: untracked */
    uint64_t calls;
    uint64_t cut_at; /* absolute call number, 0: none */
    bool cut;
    bool nosync;
    /* the image computed at the cut */
    struct image {
        char *name;
        uint8_t *data;
        uint64_t len;
    } * img;
    size_t nimg;
    bool have_img;
    /* faults */
    uint64_t fail_left;
    unsigned fail_kinds;
    int fail_err;
    bool fail_sticky;
    bool fired;
} S = {.mu = PTHREAD_MUTEX_INITIALIZER};

static uint64_t rnd(void)
{
    /* splitmix64 */
    uint64_t z = (S.rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (q == NULL)
        abort(); /* test code: out of memory is not what is being tested here */
    return q;
}

static const plog_io *R(void)
{
    return plog_io_real();
}

/* --- file contents ------------------------------------------------------ */

static bool read_fd(int fd, uint8_t **out, uint64_t *len)
{
    struct stat st;
    if (fstat(fd, &st) != 0)
        return false;
    uint8_t *b = xrealloc(NULL, (size_t)st.st_size);
    uint64_t done = 0;
    while (done < (uint64_t)st.st_size) {
        ssize_t r = pread(fd, b + done, (size_t)st.st_size - done, (off_t)done);
        if (r <= 0)
            break;
        done += (uint64_t)r;
    }
    *out = b;
    *len = done;
    return true;
}

static void set_size(uint8_t **b, uint64_t *len, uint64_t n)
{
    if (n > *len) {
        *b = xrealloc(*b, (size_t)n);
        memset(*b + *len, 0, (size_t)(n - *len));
    }
    *len = n;
}

static void apply_write(uint8_t **b, uint64_t *len, uint64_t off, const uint8_t *p, uint64_t n)
{
    if (n == 0)
        return;
    if (off + n > *len)
        set_size(b, len, off + n);
    memcpy(*b + off, p, (size_t)n);
}

static void clear_ops(struct sfile *f)
{
    for (size_t i = 0; i < f->nops; i++)
        free(f->ops[i].data);
    f->nops = 0;
}

static void add_op(struct sfile *f, int kind, uint64_t off, const void *p, uint64_t len)
{
    if (f->nops == f->opcap) {
        f->opcap = f->opcap ? f->opcap * 2 : 16;
        f->ops = xrealloc(f->ops, f->opcap * sizeof *f->ops);
    }
    struct op *o = &f->ops[f->nops++];
    o->kind = kind;
    o->off = off;
    o->len = len;
    o->data = NULL;
    if (kind == OP_WRITE) {
        o->data = xrealloc(NULL, (size_t)len);
        memcpy(o->data, p, (size_t)len);
    }
}

/* crash_content is the content file f has after the power loss (model above). */
static void crash_content(struct sfile *f, uint8_t **out, uint64_t *outlen)
{
    uint64_t len = f->dlen;
    uint8_t *b = xrealloc(NULL, (size_t)len);
    if (len > 0)
        memcpy(b, f->durable, (size_t)len);
    /* How many ops survive whole: all of them half of the time, else a
     * uniform choice, and then maybe part of the next. */
    size_t keep = rnd() % 2 ? f->nops : (size_t)(rnd() % (f->nops + 1));
    for (size_t i = 0; i < keep; i++) {
        struct op *o = &f->ops[i];
        if (o->kind == OP_WRITE)
            apply_write(&b, &len, o->off, o->data, o->len);
        else
            set_size(&b, &len, o->off);
    }
    if (keep < f->nops && f->ops[keep].kind == OP_WRITE && rnd() % 2) {
        struct op *o = &f->ops[keep];
        uint64_t n = o->len ? rnd() % o->len : 0;
        switch (rnd() % 3) {
        case 0: /* a prefix */
            apply_write(&b, &len, o->off, o->data, n);
            break;
        case 1: { /* a prefix ending in garbage */
            apply_write(&b, &len, o->off, o->data, n);
            uint64_t g = n < 16 ? n : 16;
            for (uint64_t j = 0; j < g; j++)
                b[o->off + n - 1 - j] = (uint8_t)rnd();
            break;
        }
        default: /* the size, not the data */
            if (o->off + o->len > len)
                set_size(&b, &len, o->off + o->len);
            break;
        }
    }
    if (f->mapped && f->have_atcut) {
        /* Any subset of the dirty pages made it. */
        for (uint64_t p = 0; p < len && p < f->atcutlen; p += PAGE) {
            if (rnd() % 2 == 0)
                continue;
            uint64_t n = PAGE;
            if (p + n > len)
                n = len - p;
            if (p + n > f->atcutlen)
                n = f->atcutlen - p;
            memcpy(b + p, f->atcut + p, (size_t)n);
        }
    }
    *out = b;
    *outlen = len;
}

/* --- the cut ------------------------------------------------------------ */

static void free_image(void)
{
    for (size_t i = 0; i < S.nimg; i++) {
        free(S.img[i].name);
        free(S.img[i].data);
    }
    free(S.img);
    S.img = NULL;
    S.nimg = 0;
    S.have_img = false;
}

/* make_image computes what the disk holds if the power goes now. */
static void make_image(void)
{
    free_image();
    /* Mapped files: their content at the cut, read through any open fd. */
    for (int fd = 0; fd < MAX_FD; fd++) {
        int k = S.fdfile[fd];
        if (k <= 0)
            continue;
        struct sfile *f = &S.files[k - 1];
        if (f->mapped && !f->have_atcut)
            f->have_atcut = read_fd(fd, &f->atcut, &f->atcutlen);
    }
    /* The durable names, then a prefix of the changes since. */
    size_t n = S.nddir;
    struct dentry *d = xrealloc(NULL, (S.nddir + S.ndops + 1) * sizeof *d);
    if (S.nddir > 0)
        memcpy(d, S.ddir, S.nddir * sizeof *d);
    size_t keep = rnd() % 2 ? 0 : (size_t)(rnd() % (S.ndops + 1));
    for (size_t i = 0; i < keep; i++) {
        struct dirop *o = &S.dops[i];
        size_t j = 0;
        while (j < n && strcmp(d[j].name, o->name) != 0)
            j++;
        if (o->create && j == n)
            d[n++] = (struct dentry){o->name, o->file};
        else if (!o->create && j < n)
            d[j] = d[--n];
    }
    S.img = xrealloc(NULL, (n + 1) * sizeof *S.img);
    for (size_t i = 0; i < n; i++) {
        struct image *m = &S.img[S.nimg++];
        m->name = strdup(d[i].name);
        crash_content(&S.files[d[i].file], &m->data, &m->len);
    }
    free(d);
    S.have_img = true;
}

/* --- bookkeeping -------------------------------------------------------- */

/* rel returns the name of path inside the watched directory, or NULL. */
static const char *rel(const char *path)
{
    if (!S.recording)
        return NULL;
    size_t n = strlen(S.dir);
    if (strncmp(path, S.dir, n) != 0 || path[n] != '/' || strchr(path + n + 1, '/') != NULL)
        return NULL;
    return path + n + 1;
}

static long find_name(const char *name)
{
    for (size_t i = 0; i < S.nfiles; i++)
        if (S.files[i].name != NULL && strcmp(S.files[i].name, name) == 0)
            return (long)i;
    return -1;
}

static size_t new_file(const char *name)
{
    if (S.nfiles == S.filecap) {
        S.filecap = S.filecap ? S.filecap * 2 : 16;
        S.files = xrealloc(S.files, S.filecap * sizeof *S.files);
    }
    struct sfile *f = &S.files[S.nfiles];
    memset(f, 0, sizeof *f);
    f->name = strdup(name);
    return S.nfiles++;
}

static void add_dirop(bool create, const char *name, size_t file)
{
    if (S.ndops == S.dopcap) {
        S.dopcap = S.dopcap ? S.dopcap * 2 : 16;
        S.dops = xrealloc(S.dops, S.dopcap * sizeof *S.dops);
    }
    S.dops[S.ndops++] = (struct dirop){create, strdup(name), file};
}

static void clear_dirops(void)
{
    for (size_t i = 0; i < S.ndops; i++)
        free(S.dops[i].name);
    S.ndops = 0;
}

static struct sfile *file_of(int fd)
{
    if (fd < 0 || fd >= MAX_FD || S.fdfile[fd] <= 0)
        return NULL;
    return &S.files[S.fdfile[fd] - 1];
}

static void snapshot_dir(void)
{
    clear_dirops();
    for (size_t i = 0; i < S.nddir; i++)
        free(S.ddir[i].name);
    S.nddir = 0;
    S.ddir = xrealloc(S.ddir, (S.nfiles + 1) * sizeof *S.ddir);
    for (size_t i = 0; i < S.nfiles; i++)
        if (S.files[i].name != NULL) {
            S.ddir[S.nddir].name = strdup(S.files[i].name);
            S.ddir[S.nddir++].file = i;
        }
}

static void reset(void)
{
    for (size_t i = 0; i < S.nfiles; i++) {
        clear_ops(&S.files[i]);
        free(S.files[i].ops);
        free(S.files[i].name);
        free(S.files[i].durable);
        free(S.files[i].atcut);
    }
    free(S.files);
    S.files = NULL;
    S.nfiles = S.filecap = 0;
    for (size_t i = 0; i < S.nddir; i++)
        free(S.ddir[i].name);
    free(S.ddir);
    S.ddir = NULL;
    S.nddir = 0;
    clear_dirops();
    free(S.dops);
    S.dops = NULL;
    S.dopcap = 0;
    free(S.dir);
    S.dir = NULL;
    memset(S.fdfile, 0, sizeof S.fdfile);
    free_image();
    S.recording = false;
    S.cut = false;
    S.cut_at = 0;
    S.nosync = false;
}

/* enter counts a call of the given kind and decides its fate: 0 to go on,
 * else the errno it fails with. Under S.mu. */
static int enter(unsigned kind)
{
    S.calls++;
    if (S.cut_at != 0 && S.calls >= S.cut_at && !S.cut) {
        make_image();
        S.cut = true;
    }
    if (S.cut)
        return EIO;
    if (S.fail_left > 0 && (S.fail_kinds & kind)) {
        if (S.fired && S.fail_sticky)
            return S.fail_err;
        if (--S.fail_left == 0) {
            S.fail_left = S.fail_sticky ? 1 : 0;
            S.fired = true;
            if (getenv("SIMFS_TRACE") != NULL)
                fprintf(stderr, "simfs: call %llu (kind %#x) fails with %s\n", (unsigned long long)S.calls,
                        kind, strerror(S.fail_err));
            return S.fail_err;
        }
    }
    return 0;
}

#define ENTER(kind, failval)         \
    pthread_mutex_lock(&S.mu);       \
    int e_ = enter(kind);            \
    if (e_ != 0) {                   \
        pthread_mutex_unlock(&S.mu); \
        errno = e_;                  \
        return failval;              \
    }

#define LEAVE(v)                     \
    do {                             \
        int se_ = errno;             \
        pthread_mutex_unlock(&S.mu); \
        errno = se_;                 \
        return v;                    \
    } while (0)

/* --- the calls ---------------------------------------------------------- */

static int s_open(const char *path, int flags, mode_t mode)
{
    ENTER(SIMFS_OPEN, -1);
    int fd = R()->open(path, flags, mode);
    if (fd >= 0 && fd < MAX_FD) {
        S.fdfile[fd] = 0;
        const char *name = rel(path);
        if (S.recording && strcmp(path, S.dir) == 0) {
            S.fdfile[fd] = -1;
        } else if (name != NULL) {
            long k = find_name(name);
            if (k < 0) {
                k = (long)new_file(name); /* created: not durable until the directory is */
                add_dirop(true, name, (size_t)k);
            }
            S.fdfile[fd] = (int)k + 1;
        }
    }
    LEAVE(fd);
}

static int s_close(int fd)
{
    /* Never fails: a close after the cut must still free the descriptor. */
    pthread_mutex_lock(&S.mu);
    S.calls++;
    if (fd >= 0 && fd < MAX_FD)
        S.fdfile[fd] = 0;
    int rv = R()->close(fd);
    LEAVE(rv);
}

static int s_dup(int fd)
{
    ENTER(SIMFS_OTHER, -1);
    int d = R()->dup(fd);
    if (d >= 0 && d < MAX_FD && fd >= 0 && fd < MAX_FD)
        S.fdfile[d] = S.fdfile[fd];
    LEAVE(d);
}

static int s_fstat(int fd, struct stat *st)
{
    ENTER(SIMFS_OTHER, -1);
    int rv = R()->fstat(fd, st);
    LEAVE(rv);
}

static ssize_t s_pread(int fd, void *p, size_t n, off_t off)
{
    ENTER(SIMFS_READ, -1);
    ssize_t rv = R()->pread(fd, p, n, off);
    LEAVE(rv);
}

static ssize_t s_pwrite(int fd, const void *p, size_t n, off_t off)
{
    ENTER(SIMFS_WRITE, -1);
    ssize_t rv = R()->pwrite(fd, p, n, off);
    struct sfile *f = file_of(fd);
    if (rv > 0 && f != NULL)
        add_op(f, OP_WRITE, (uint64_t)off, p, (uint64_t)rv);
    LEAVE(rv);
}

static int do_sync(int fd, int (*real)(int))
{
    ENTER(SIMFS_SYNC, -1);
    int rv = real(fd);
    if (rv == 0 && !S.nosync && fd >= 0 && fd < MAX_FD) {
        if (S.fdfile[fd] == -1) {
            snapshot_dir();
        } else if (S.fdfile[fd] > 0) {
            struct sfile *f = &S.files[S.fdfile[fd] - 1];
            free(f->durable);
            read_fd(fd, &f->durable, &f->dlen);
            clear_ops(f);
        }
    }
    LEAVE(rv);
}

static int s_fsync(int fd)
{
    return do_sync(fd, R()->fsync);
}

static int s_fdatasync(int fd)
{
    return do_sync(fd, R()->fdatasync);
}

static int s_ftruncate(int fd, off_t size)
{
    ENTER(SIMFS_TRUNCATE, -1);
    int rv = R()->ftruncate(fd, size);
    struct sfile *f = file_of(fd);
    if (rv == 0 && f != NULL)
        add_op(f, OP_SIZE, (uint64_t)size, NULL, 0);
    LEAVE(rv);
}

static int s_fallocate(int fd, off_t off, off_t len)
{
    ENTER(SIMFS_FALLOCATE, -1);
    int rv = R()->fallocate(fd, off, len);
    struct sfile *f = file_of(fd);
    struct stat st;
    if (rv == 0 && f != NULL && fstat(fd, &st) == 0)
        add_op(f, OP_SIZE, (uint64_t)st.st_size, NULL, 0);
    LEAVE(rv);
}

static off_t s_seek_hole(int fd)
{
    ENTER(SIMFS_OTHER, -1);
    off_t rv = R()->seek_hole(fd);
    LEAVE(rv);
}

static void *s_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
    ENTER(SIMFS_MMAP, MAP_FAILED);
    void *m = R()->mmap(addr, len, prot, flags, fd, off);
    struct sfile *f = file_of(fd);
    if (m != MAP_FAILED && f != NULL && (prot & PROT_WRITE) && (flags & MAP_SHARED))
        f->mapped = true;
    LEAVE(m);
}

static int s_munmap(void *addr, size_t len)
{
    pthread_mutex_lock(&S.mu);
    S.calls++;
    int rv = R()->munmap(addr, len);
    LEAVE(rv);
}

static int s_unlink(const char *path)
{
    ENTER(SIMFS_UNLINK, -1);
    int rv = R()->unlink(path);
    const char *name = rel(path);
    if (rv == 0 && name != NULL) {
        long k = find_name(name);
        if (k >= 0) {
            free(S.files[k].name);
            S.files[k].name = NULL; /* durable until the directory is synced */
            add_dirop(false, name, (size_t)k);
        }
    }
    LEAVE(rv);
}

static int s_mkdir(const char *path, mode_t mode)
{
    ENTER(SIMFS_OTHER, -1);
    int rv = R()->mkdir(path, mode);
    LEAVE(rv);
}

static int s_rmdir(const char *path)
{
    ENTER(SIMFS_OTHER, -1);
    int rv = R()->rmdir(path);
    LEAVE(rv);
}

static int s_flock(int fd, int op)
{
    ENTER(SIMFS_OTHER, -1);
    int rv = R()->flock(fd, op);
    LEAVE(rv);
}

static const plog_io sim = {
    .open = s_open,
    .close = s_close,
    .dup = s_dup,
    .fstat = s_fstat,
    .pread = s_pread,
    .pwrite = s_pwrite,
    .fsync = s_fsync,
    .fdatasync = s_fdatasync,
    .ftruncate = s_ftruncate,
    .fallocate = s_fallocate,
    .seek_hole = s_seek_hole,
    .mmap = s_mmap,
    .munmap = s_munmap,
    .unlink = s_unlink,
    .mkdir = s_mkdir,
    .rmdir = s_rmdir,
    .flock = s_flock,
};

/* --- the interface ------------------------------------------------------ */

void simfs_install(void)
{
    pthread_mutex_lock(&S.mu);
    reset();
    S.calls = 0;
    S.fail_left = 0;
    S.fired = false;
    pthread_mutex_unlock(&S.mu);
    plog_io_set(&sim);
}

void simfs_uninstall(void)
{
    plog_io_set(NULL);
    pthread_mutex_lock(&S.mu);
    reset();
    pthread_mutex_unlock(&S.mu);
}

int simfs_start(const char *dir, uint64_t seed)
{
    pthread_mutex_lock(&S.mu);
    reset();
    S.dir = strdup(dir);
    S.rng = seed;
    DIR *d = opendir(dir);
    if (d == NULL) {
        pthread_mutex_unlock(&S.mu);
        return -1;
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            continue;
        size_t k = new_file(e->d_name); /* may move S.files */
        struct sfile *f = &S.files[k];
        read_fd(fd, &f->durable, &f->dlen);
        close(fd);
    }
    closedir(d);
    snapshot_dir();
    S.recording = true;
    pthread_mutex_unlock(&S.mu);
    return 0;
}

void simfs_cut_at(uint64_t k)
{
    pthread_mutex_lock(&S.mu);
    S.cut_at = S.calls + k;
    pthread_mutex_unlock(&S.mu);
}

bool simfs_cut(void)
{
    pthread_mutex_lock(&S.mu);
    bool c = S.cut;
    pthread_mutex_unlock(&S.mu);
    return c;
}

void simfs_nosync(bool on)
{
    pthread_mutex_lock(&S.mu);
    S.nosync = on;
    pthread_mutex_unlock(&S.mu);
}

int simfs_finish(void)
{
    pthread_mutex_lock(&S.mu);
    if (!S.have_img)
        make_image();
    int rv = 0;
    DIR *d = opendir(S.dir);
    if (d == NULL) {
        rv = -1;
    } else {
        struct dirent *e;
        while ((e = readdir(d)) != NULL)
            if (e->d_name[0] != '.')
                unlinkat(dirfd(d), e->d_name, 0);
        closedir(d);
    }
    for (size_t i = 0; i < S.nimg && rv == 0; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", S.dir, S.img[i].name);
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0 ||
            (S.img[i].len > 0 && write(fd, S.img[i].data, (size_t)S.img[i].len) != (ssize_t)S.img[i].len))
            rv = -1;
        if (fd >= 0)
            close(fd);
    }
    reset();
    pthread_mutex_unlock(&S.mu);
    return rv;
}

void simfs_fail_from(uint64_t n, unsigned kinds, int err)
{
    simfs_fail_at(n, kinds, err);
    pthread_mutex_lock(&S.mu);
    S.fail_sticky = true;
    pthread_mutex_unlock(&S.mu);
}

void simfs_fail_at(uint64_t n, unsigned kinds, int err)
{
    pthread_mutex_lock(&S.mu);
    S.fail_sticky = false;
    S.fail_left = n;
    S.fail_kinds = kinds;
    S.fail_err = err;
    S.fired = false;
    pthread_mutex_unlock(&S.mu);
}

bool simfs_fired(void)
{
    pthread_mutex_lock(&S.mu);
    bool f = S.fired;
    pthread_mutex_unlock(&S.mu);
    return f;
}

uint64_t simfs_calls(void)
{
    pthread_mutex_lock(&S.mu);
    uint64_t c = S.calls;
    pthread_mutex_unlock(&S.mu);
    return c;
}
