/* err.h - the project's error codes and their messages.
 *
 * Functions return int: PLOG_OK (0) or one of these. I/O failures return
 * PLOG_EIO and keep the errno text in the object's errmsg. The table is an
 * X-macro so the enum and plog_strerror() can never disagree. */
#ifndef PLOG_ERR_H
#define PLOG_ERR_H

#include <stddef.h>
#include <stdio.h>

#define PLOG_ERRORS(X)                                                                   \
    X(PLOG_OK, "ok")                                                                     \
    X(PLOG_ENOMEM, "out of memory")                                                      \
    X(PLOG_EINVAL, "invalid argument")                                                   \
    X(PLOG_EOF, "end of file") /* Go: io.EOF */                                          \
    X(PLOG_EIO, "I/O error")                                                             \
    X(PLOG_ECORRUPT, "corrupt data")                                                     \
    X(PLOG_ERANGE, "offset out of range") /* Go: api.ErrOffsetOutOfRange */              \
    X(PLOG_EPERM, "permission denied")                                                   \
    X(PLOG_ETLS, "TLS error")                                                            \
    X(PLOG_ENOTLEADER, "not the leader")                                                 \
    X(PLOG_EFAILED, "log failed; restart to recover") /* fail-stop after an I/O error */ \
    X(PLOG_EFULL, "log is full: offsets end at 2^64-2")

typedef enum {
#define X(code, msg) code,
    PLOG_ERRORS(X)
#undef X
} plog_err;

/* plog_strerror returns a static message for rv ("unknown error" when rv is not
 * a plog_err). */
const char *plog_strerror(int rv);

/* plog_errf formats a message into buf (size bytes) the way snprintf does: the
 * errmsg an object keeps for its last failure. A NULL buf or size 0 does nothing. */
void plog_errf(char *buf, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* plog_fopen_read opens path to read, as fopen(path, "r") does, without ever
 * waiting for good: a FIFO with no writer blocked the open until someone wrote to
 * it, and with it the thread that reloads files on SIGHUP, the one that also hears
 * SIGTERM (the level file; from ch04 the policy and the certificates). A regular
 * file opens as it is; anything else (a FIFO, a process substitution such as
 * <(cat key.pem), /dev/stdin) is read whole first: at most 1 MiB, within 2 s, and
 * refused when it gives nothing (a FIFO nobody writes to). On failure NULL, with
 * why (size bytes) "PATH: reason". */
FILE *plog_fopen_read(const char *path, char *why, size_t size);

/* plog_err_stdout_done ends a program's output on stdout (--help, --version): it
 * flushes stdout and returns 0 when every byte was written, else 1 (the exit
 * status) after one line on stderr, "PROG: cannot write the output: REASON"; none
 * for EPIPE, a reader that stopped reading (head -1) on purpose. So a help text
 * lost to a full disk does not end the program with status 0. */
int plog_err_stdout_done(const char *prog);

#endif
