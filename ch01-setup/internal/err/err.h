/* err.h - the project's error codes and their messages.
 *
 * Functions return int: PLOG_OK (0) or one of these. I/O failures return
 * PLOG_EIO and keep the errno text in the object's errmsg. The table is an
 * X-macro so the enum and plog_strerror() can never disagree. */
#ifndef PLOG_ERR_H
#define PLOG_ERR_H

#define PLOG_ERRORS(X)                                                      \
    X(PLOG_OK, "ok")                                                        \
    X(PLOG_ENOMEM, "out of memory")                                         \
    X(PLOG_EINVAL, "invalid argument")                                      \
    X(PLOG_EOF, "end of file") /* Go: io.EOF */                             \
    X(PLOG_EIO, "I/O error")                                                \
    X(PLOG_ECORRUPT, "corrupt data")                                        \
    X(PLOG_ERANGE, "offset out of range") /* Go: api.ErrOffsetOutOfRange */ \
    X(PLOG_EPERM, "permission denied")                                      \
    X(PLOG_ETLS, "TLS error")                                               \
    X(PLOG_ENOTLEADER, "not the leader")

typedef enum {
#define X(code, msg) code,
    PLOG_ERRORS(X)
#undef X
} plog_err;

/* plog_strerror returns a static message for rv ("unknown error" when rv is not
 * a plog_err). */
const char *plog_strerror(int rv);

/* plog_err_stdout_done ends a program's output on stdout (--help, --version): it
 * flushes stdout and returns 0 when every byte was written, else 1 (the exit
 * status) after one line on stderr, "PROG: cannot write the output: REASON"; none
 * for EPIPE, a reader that stopped reading (head -1) on purpose. So a help text
 * lost to a full disk does not end the program with status 0. */
int plog_err_stdout_done(const char *prog);

#endif
