/* log_fuzz.c - libFuzzer target: arbitrary bytes as the files of a log, opened
 * and read back in every way (`make fuzz`; `make check-long` runs it for a
 * fixed time). Nothing may crash or trip ASan/UBSan, and the log must keep its
 * promises on whatever it accepted: a record appended after opening reads back
 * byte-identical, and a reopen keeps the same offsets.
 *
 * Input: byte 0 flags, then up to four chunks, each a u16 BE length and that
 * many bytes: store 0, index 0, store 1, index 1 (segment 1 exists when flag
 * bit 0 is set; its base offset comes from byte 0 too). Flag bit 1 rewrites
 * the checksums of whatever frames the store bytes describe, so the fuzzer
 * reaches the code behind the CRC check; bit 2 replaces the index by the one
 * the store implies (then the index bytes are ignored); bit 3 picks small
 * segment limits. */
#define _GNU_SOURCE
#include <dirent.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal/err/err.h"
#include "internal/log/log.h"
#include "internal/log/store.h"

static char dir[64];

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* clear_dir empties (or creates) the log directory: only files live there. */
static void clear_dir(void)
{
    DIR *d = opendir(dir);
    if (d == NULL) {
        if (mkdir(dir, 0755) != 0)
            abort();
        return;
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            unlinkat(dirfd(d), e->d_name, 0);
    closedir(d);
}

static void remove_dir(void)
{
    clear_dir();
    rmdir(dir);
}

static void write_file(const char *name, const uint8_t *p, size_t n)
{
    char path[128];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (f == NULL)
        abort();
    if (n > 0 && fwrite(p, 1, n, f) != n)
        abort();
    fclose(f);
}

/* fix_crcs makes every complete frame in s[0..n) checksum-valid. */
static void fix_crcs(uint8_t *s, size_t n)
{
    size_t p = 0;
    while (n - p >= PLOG_STORE_HDR) {
        size_t len = (size_t)s[p] << 24 | (size_t)s[p + 1] << 16 | (size_t)s[p + 2] << 8 | s[p + 3];
        if (len > n - p - PLOG_STORE_HDR)
            break;
        plog_store_frame_encode_header(s + p, s + p + PLOG_STORE_HDR, len);
        p += PLOG_STORE_HDR + len;
    }
}

/* implied_index writes the index the frames of s[0..n) imply into out (cap
 * bytes); returns its size. */
static size_t implied_index(const uint8_t *s, size_t n, uint8_t *out, size_t cap)
{
    size_t p = 0, k = 0;
    while (n - p >= PLOG_STORE_HDR && (k + 1) * 12 <= cap) {
        size_t len = (size_t)s[p] << 24 | (size_t)s[p + 1] << 16 | (size_t)s[p + 2] << 8 | s[p + 3];
        if (len > n - p - PLOG_STORE_HDR)
            break;
        put_be32(out + k * 12, (uint32_t)k);
        put_be32(out + k * 12 + 4, 0);
        put_be32(out + k * 12 + 8, (uint32_t)p);
        k++;
        p += PLOG_STORE_HDR + len;
    }
    return k * 12;
}

static void read_everything(plog_log *l)
{
    uint64_t lo = plog_log_lowest_offset(l), next = plog_log_next_offset(l);
    if (next < lo)
        abort();
    for (uint64_t off = lo; off < next && off < lo + 5000; off++) {
        Log__V1__Record *r;
        if (plog_log_read(l, off, &r) == PLOG_OK) {
            if (r->offset != off)
                abort();
            log__v1__record__free_unpacked(r, NULL);
        }
        uint8_t *buf;
        size_t len;
        if (plog_log_read_raw(l, off, &buf, &len) == PLOG_OK)
            free(buf);
    }
    plog_log_batch b = {0};
    for (uint64_t off = lo; off < next && off < lo + 5000;) {
        int rv = plog_log_read_batch(l, off, 7, 300, &b);
        if (rv == PLOG_OK && (b.n == 0 || b.first != off))
            abort();
        off += rv == PLOG_OK ? b.n : 1;
    }
    plog_log_batch_fini(&b);
    plog_log_reader *rd;
    if (plog_log_reader_open(l, &rd) == PLOG_OK) {
        uint8_t chunk[333];
        size_t n;
        while (plog_log_reader_read(rd, chunk, sizeof chunk, &n) == PLOG_OK)
            ;
        plog_log_reader_close(rd);
    }
    char msg[PLOG_ERRMSG_SIZE];
    plog_log_errmsg(l, msg, sizeof msg);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    /* tmpfs: the log fsyncs on close, which would be the whole cost on disk.
     * `make fuzz` names the directory (and removes it: libFuzzer's time limit
     * ends the process without running atexit handlers). */
    const char *env = getenv("PLOG_FUZZ_DIR");
    if (env != NULL)
        snprintf(dir, sizeof dir, "%s", env);
    else
        snprintf(dir, sizeof dir, "/dev/shm/plog-fuzz-%d", (int)getpid());
    atexit(remove_dir);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t flags = data[0];
    const uint8_t *p = data + 1;
    size_t left = size - 1;
    uint8_t *chunk[4] = {0};
    size_t len[4] = {0};
    for (int i = 0; i < 4; i++) {
        size_t n = 0;
        if (left >= 2) {
            n = (size_t)p[0] << 8 | p[1];
            p += 2, left -= 2;
        }
        if (n > left || i == 3)
            n = left;
        chunk[i] = malloc(n + 1);
        memcpy(chunk[i], p, n);
        len[i] = n;
        p += n, left -= n;
    }
    bool two = flags & 1;
    uint64_t base1 = 1 + (flags >> 4);
    for (int s = 0; s < 2; s++) {
        if (flags & 2)
            fix_crcs(chunk[2 * s], len[2 * s]);
        if (flags & 4) {
            size_t cap = 12 * (len[2 * s] / PLOG_STORE_HDR + 1);
            free(chunk[2 * s + 1]);
            chunk[2 * s + 1] = malloc(cap);
            len[2 * s + 1] = implied_index(chunk[2 * s], len[2 * s], chunk[2 * s + 1], cap);
        }
    }

    clear_dir();
    char name[64];
    write_file("00000000000000000000.store", chunk[0], len[0]);
    write_file("00000000000000000000.index", chunk[1], len[1]);
    if (two) {
        snprintf(name, sizeof name, "%020llu.store", (unsigned long long)base1);
        write_file(name, chunk[2], len[2]);
        snprintf(name, sizeof name, "%020llu.index", (unsigned long long)base1);
        write_file(name, chunk[3], len[3]);
    }
    for (int i = 0; i < 4; i++)
        free(chunk[i]);

    plog_log_config c = {0};
    if (flags & 8) {
        c.segment.max_store_bytes = 256;
        c.segment.max_index_bytes = 5 * 12;
    }
    plog_log *l;
    if (plog_log_open(dir, &c, &l) != PLOG_OK)
        return 0;
    read_everything(l);

    /* Whatever was accepted, the log goes on correctly from there. */
    static const uint8_t value[] = "fuzz";
    Log__V1__Record r = LOG__V1__RECORD__INIT;
    r.value.data = (uint8_t *)value;
    r.value.len = 4;
    uint64_t off;
    if (plog_log_append(l, &r, &off) == PLOG_OK) {
        Log__V1__Record *got;
        if (plog_log_read(l, off, &got) != PLOG_OK || got->value.len != 4 ||
            memcmp(got->value.data, value, 4) != 0)
            abort();
        log__v1__record__free_unpacked(got, NULL);
    }
    uint64_t lo = plog_log_lowest_offset(l), next = plog_log_next_offset(l);
    if (plog_log_close(l) != PLOG_OK)
        return 0;
    if (plog_log_open(dir, &c, &l) != PLOG_OK)
        abort();
    if (plog_log_lowest_offset(l) != lo || plog_log_next_offset(l) != next)
        abort();
    read_everything(l);
    plog_log_close(l);
    return 0;
}
