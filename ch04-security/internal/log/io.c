/* io.c - the real system calls behind io.h. */
#define _GNU_SOURCE /* fallocate, SEEK_HOLE */
#include "internal/log/io.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <unistd.h>

static int real_open(const char *path, int flags, mode_t mode)
{
    return open(path, flags, mode);
}

static int real_dup(int fd)
{
    return fcntl(fd, F_DUPFD_CLOEXEC, 0);
}

static int real_fallocate(int fd, off_t off, off_t len)
{
    return fallocate(fd, 0, off, len);
}

static off_t real_seek_hole(int fd)
{
    return lseek(fd, 0, SEEK_HOLE);
}

static const plog_io real = {
    .open = real_open,
    .close = close,
    .dup = real_dup,
    .fstat = fstat,
    .pread = pread,
    .pwrite = pwrite,
    .fsync = fsync,
    .fdatasync = fdatasync,
    .ftruncate = ftruncate,
    .fallocate = real_fallocate,
    .seek_hole = real_seek_hole,
    .mmap = mmap,
    .munmap = munmap,
    .unlink = unlink,
    .mkdir = mkdir,
    .rmdir = rmdir,
    .flock = flock,
};

const plog_io *plog_io_cur = &real;

void plog_io_set(const plog_io *ops)
{
    plog_io_cur = ops != NULL ? ops : &real;
}

const plog_io *plog_io_real(void)
{
    return &real;
}
