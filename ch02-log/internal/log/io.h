/* io.h - the log's seam to the file system.
 *
 * Every file operation of the log (store, index, segment, log) goes through
 * the table plog_io_get() returns: the real system calls unless a test put its
 * own table in place. Tests use it to simulate power loss (keep only what was
 * made durable) and to fail the n-th call (see simfs_testlib.h). Each entry
 * has the contract of the system call it is named after: -1 (or MAP_FAILED)
 * and errno on failure. fallocate reserves [off, off+len) and grows the file
 * over it (mode 0 of Linux fallocate); EOPNOTSUPP when the file system cannot.
 * Thread safety: the table is read on every call; set it while no log is open. */
#ifndef PLOG_LOG_IO_H
#define PLOG_LOG_IO_H

#include <stddef.h>
#include <sys/stat.h>
#include <sys/types.h>

typedef struct plog_io {
    int (*open)(const char *path, int flags, mode_t mode);
    int (*close)(int fd);
    int (*dup)(int fd); /* close-on-exec copy */
    int (*fstat)(int fd, struct stat *st);
    ssize_t (*pread)(int fd, void *p, size_t n, off_t off);
    ssize_t (*pwrite)(int fd, const void *p, size_t n, off_t off);
    int (*fsync)(int fd);     /* a directory */
    int (*fdatasync)(int fd); /* a file */
    int (*ftruncate)(int fd, off_t size);
    int (*fallocate)(int fd, off_t off, off_t len);
    off_t (*seek_hole)(int fd); /* lseek(fd, 0, SEEK_HOLE): where the first hole starts */
    void *(*mmap)(void *addr, size_t len, int prot, int flags, int fd, off_t off);
    int (*munmap)(void *addr, size_t len);
    int (*unlink)(const char *path);
    int (*mkdir)(const char *path, mode_t mode);
    int (*rmdir)(const char *path);
    int (*flock)(int fd, int op); /* flock(2): LOCK_EX | LOCK_NB on the directory */
} plog_io;

/* plog_io_get: the table in use. plog_io_set replaces it (NULL: the real
 * calls again), process-wide; ops is borrowed until it is replaced. */
extern const plog_io *plog_io_cur; /* read it through plog_io_get */
static inline const plog_io *plog_io_get(void)
{
    return plog_io_cur;
}
void plog_io_set(const plog_io *ops);
/* plog_io_real: the table of the real system calls. */
const plog_io *plog_io_real(void);

#endif
