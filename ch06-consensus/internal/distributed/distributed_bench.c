/* distributed_bench.c - what the second log costs: a produce is written to Raft's
 * log (appended, then one fsync per group) and, once committed, to the record log
 * (appended, never fsynced). Same records, same machine, same run. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/v1/log.pb-c.h"
#include "internal/err/err.h"
#include "internal/log/log.h"
#include "internal/raftstore/raftstore.h"
#include "testing/testing.h"

#define N 100000
#define BATCH 64
#define SIZE 100

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(void)
{
    char dir[128], path[256], err[256];
    plog_test_tmpdir("distbench", dir, sizeof dir);
    uint8_t value[SIZE];
    memset(value, 'v', sizeof value);

    snprintf(path, sizeof path, "%s/raft", dir);
    plog_raftstore *s;
    if (plog_raftstore_open(path, NULL, &s, err, sizeof err) != PLOG_OK) {
        fprintf(stderr, "raftstore: %s\n", err);
        return 1;
    }
    plog_raft_entry e[BATCH];
    double t0 = now_s();
    for (uint64_t i = 0; i < N; i += BATCH) {
        for (int k = 0; k < BATCH; k++)
            e[k] = (plog_raft_entry){.index = i + (uint64_t)k + 1, .term = 1, .data = value, .len = SIZE};
        if (plog_raftstore_append(s, e, BATCH) != PLOG_OK || plog_raftstore_sync(s) != PLOG_OK) {
            fprintf(stderr, "raftstore: %s\n", plog_raftstore_errmsg(s));
            return 1;
        }
    }
    double raft_s = now_s() - t0;
    plog_raftstore_close(s);

    snprintf(path, sizeof path, "%s/records", dir);
    plog_log_config lc = {.sync = PLOG_SYNC_NEVER};
    plog_log *l;
    if (plog_log_open(path, &lc, &l) != PLOG_OK)
        return 1;
    Log__V1__Record recs[BATCH], *ptrs[BATCH];
    t0 = now_s();
    for (uint64_t i = 0; i < N; i += BATCH) {
        for (int k = 0; k < BATCH; k++) {
            log__v1__record__init(&recs[k]);
            recs[k].value.data = value;
            recs[k].value.len = SIZE;
            ptrs[k] = &recs[k];
        }
        uint64_t first;
        if (plog_log_append_batch(l, ptrs, BATCH, &first) != PLOG_OK)
            return 1;
    }
    double rec_s = now_s() - t0;
    plog_log_close(l);
    plog_test_rmrf(dir);
    printf("bench raft.storage.raftlog %.0f records/s size=%d batch=%d fsync=per_batch\n", N / raft_s, SIZE,
           BATCH);
    printf("bench raft.storage.recordlog %.0f records/s size=%d batch=%d fsync=never\n", N / rec_s, SIZE,
           BATCH);
    printf("bench raft.storage.second_write_cost %.1f %% of_storage_time=%.3fs_of_%.3fs\n",
           100.0 * rec_s / (raft_s + rec_s), rec_s, raft_s + rec_s);
    return 0;
}
