/* testrec.h - test-only helpers shared by the log's tests: records whose bytes
 * are a function of their offset, so any reader can check what it got, and
 * small file tools for damaging a log on purpose. Include after cmocka.h. */
#ifndef PLOG_LOG_TESTREC_H
#define PLOG_LOG_TESTREC_H

#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api/v1/log.pb-c.h"
#include "internal/err/err.h"
#include "testing/testing.h"

#ifndef assert_plog_ok
#define assert_plog_ok(expr)                                         \
    do {                                                             \
        int rv_ = (expr);                                            \
        if (rv_ != PLOG_OK)                                          \
            fail_msg("%s: %s (%d)", #expr, plog_strerror(rv_), rv_); \
    } while (0)

#endif

#define assert_plog_err(expr, want)                                                                    \
    do {                                                                                               \
        int rv_ = (expr);                                                                              \
        if (rv_ != (want))                                                                             \
            fail_msg("%s: got %s (%d), want %s", #expr, plog_strerror(rv_), rv_, plog_strerror(want)); \
    } while (0)

static inline uint64_t testrec_mix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return x;
}

/* testrec_value fills buf (>= 256 bytes) with the value of the record at off
 * and returns its length, 1..256. */
static inline size_t testrec_value(uint64_t off, uint8_t *buf)
{
    uint64_t h = testrec_mix(off + 1);
    size_t len = 1 + (size_t)(h % 256);
    for (size_t i = 0; i < len; i++) {
        if (i % 8 == 0)
            h = testrec_mix(h + i);
        buf[i] = (uint8_t)(h >> (8 * (i % 8)));
    }
    return len;
}

/* testrec_check reports whether the encoded record enc[0..n) is the one for off. */
static inline bool testrec_check(uint64_t off, const uint8_t *enc, size_t n)
{
    uint8_t want[256];
    size_t wl = testrec_value(off, want);
    Log__V1__Record *r = log__v1__record__unpack(NULL, n, enc);
    if (r == NULL)
        return false;
    bool ok = r->offset == off && r->value.len == wl && memcmp(r->value.data, want, wl) == 0;
    log__v1__record__free_unpacked(r, NULL);
    return ok;
}

/* testrec_append appends the record for the log's next offset and checks it
 * got the offset expected. */
#define testrec_append(l, expect)                       \
    do {                                                \
        uint8_t v_[256];                                \
        Log__V1__Record r_ = LOG__V1__RECORD__INIT;     \
        r_.value.len = testrec_value((expect), v_);     \
        r_.value.data = v_;                             \
        uint64_t o_;                                    \
        assert_plog_ok(plog_log_append((l), &r_, &o_)); \
        assert_int_equal(o_, (expect));                 \
    } while (0)

/* testrec_assert_read checks that the record at off is intact. */
#define testrec_assert_read(l, off)                              \
    do {                                                         \
        uint8_t *b_;                                             \
        size_t n_;                                               \
        assert_plog_ok(plog_log_read_raw((l), (off), &b_, &n_)); \
        assert_true(testrec_check((off), b_, n_));               \
        free(b_);                                                \
    } while (0)

static inline uint64_t testrec_file_size(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0)
        fail_msg("stat %s", path);
    return (uint64_t)st.st_size;
}

static inline void testrec_truncate(const char *path, uint64_t size)
{
    if (truncate(path, (off_t)size) != 0)
        fail_msg("truncate %s", path);
}

/* testrec_xor flips bits of the byte at pos in the file at path. */
static inline void testrec_xor(const char *path, uint64_t pos, uint8_t mask)
{
    int fd = open(path, O_RDWR);
    uint8_t b;
    if (fd < 0 || pread(fd, &b, 1, (off_t)pos) != 1)
        fail_msg("read %s at %llu", path, (unsigned long long)pos);
    b ^= mask;
    if (pwrite(fd, &b, 1, (off_t)pos) != 1)
        fail_msg("write %s", path);
    close(fd);
}

/* testrec_copy copies the file src to dst (a crash image of a file still open). */
static inline void testrec_copy(const char *src, const char *dst)
{
    FILE *in = fopen(src, "rb"), *out = fopen(dst, "wb");
    if (in == NULL || out == NULL)
        fail_msg("copy %s -> %s", src, dst);
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0)
        if (fwrite(buf, 1, n, out) != n)
            fail_msg("write %s", dst);
    fclose(in);
    fclose(out);
}

static inline void testrec_seg_path(char *buf, size_t size, const char *dir, uint64_t base, const char *ext)
{
    snprintf(buf, size, "%s/%020llu%s", dir, (unsigned long long)base, ext);
}

#endif
