/* server_fuzz.c - libFuzzer target for the RPC layer: arbitrary bytes through the
 * server's real dispatch (envelope decoding, every method and its body,
 * deduplication, long polls, the in-flight budget), in process: a server made by
 * plog_server_open_inproc has no socket, and each input is served by the same
 * handle() a request off the wire is (`make fuzz`; `make check-long` runs
 * millions). Nothing may crash or trip ASan/UBSan, and every request must be
 * answered with a well-formed Reply, or (a resend of one in flight) dropped.
 *
 * Input: byte 0 picks the mode (sel % 6; the rest of it is ignored here, and picks
 * the sender's identity from ch04 on), byte 1 the envelope's
 * client_id (bits 3-7) and seq (bits 0-2: small, so resends happen), the rest is:
 *   mode 0      a whole Request envelope, as a client would send it;
 *   modes 1-4   the body of Produce, Consume, ConsumeStream, ProduceStream,
 *               wrapped in an envelope whose deadline is near, so a long poll
 *               answers at once instead of parking;
 *   mode 5      the body under a method no server has.
 * Every 20,000 inputs the log is emptied, so a long run does not fill the disk. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <nng/nng.h>

#include "internal/err/err.h"
#include "internal/log/log.h"
#include "internal/rpc/envelope.h"
#include "internal/rpc/wire.h"
#include "internal/server/server_int.h"

static char dir[64];
static plog_log *flog;
static plog_server *srv;
static unsigned long runs;

static void start(void)
{
    char why[256];
    plog_log_config lc = {.sync = PLOG_SYNC_NEVER,
                          .segment = {.max_store_bytes = 1 << 20, .max_index_bytes = 4096 * 12}};
    if (plog_log_open(dir, &lc, &flog) != PLOG_OK)
        abort();
    plog_server_config cfg = {.max_msg_bytes = 64 << 10, .max_wait_ms = 1, .max_inflight_bytes = 1 << 20};
    if (plog_server_open_inproc(flog, &cfg, &srv, why, sizeof why) != PLOG_OK) {
        fprintf(stderr, "server_fuzz: %s\n", why);
        abort();
    }
}

static void stop(void)
{
    plog_server_close(srv);
    if (plog_log_remove(flog) != PLOG_OK)
        abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    const char *base = getenv("PLOG_FUZZ_DIR"); /* make fuzz: a tmpfs directory */
    snprintf(dir, sizeof dir, "%s/srvfuzz-%d", base != NULL ? base : "/tmp", (int)getpid());
    start();
    return 0;
}

/* envelope writes a Request for method with body into buf (room for len + 64). */
static size_t envelope(uint8_t *buf, const char *method, const uint8_t *body, size_t len, uint64_t cid,
                       uint64_t seq)
{
    size_t mlen = strlen(method);
    uint8_t *p = plog_rpc_wire_put_len(buf, 1, mlen);
    memcpy(p, method, mlen);
    p += mlen;
    *p++ = 6 << 3 | PLOG_WT_VARINT; /* 10 ms left: long polls answer at once */
    p = plog_rpc_wire_put_varint(p, 10);
    if (seq != 0) {
        *p++ = 4 << 3 | PLOG_WT_I64;
        for (int i = 0; i < 8; i++)
            *p++ = (uint8_t)(cid >> (8 * i));
        *p++ = 5 << 3 | PLOG_WT_VARINT;
        p = plog_rpc_wire_put_varint(p, seq);
    }
    p = plog_rpc_wire_put_len(p, 2, len);
    memcpy(p, body, len);
    return (size_t)(p + len - buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    if (++runs % 20000 == 0) {
        stop();
        start();
    }
    unsigned mode = data[0] % 6;
    uint64_t cid = data[1] >> 3, seq = data[1] & 7;
    const uint8_t *body = data + 2;
    size_t len = size - 2;
    uint8_t *req = malloc(len + 64);
    if (req == NULL)
        abort();
    size_t n = len;
    if (mode == 0)
        memcpy(req, body, len);
    else
        n = envelope(req, mode == 5 ? "/log.v1.Log/Nothing" : plog_rpc_method_name((plog_rpc_method)mode),
                     body, len, cid, seq);
    nng_msg *reply = NULL;
    if (plog_server_inproc_call(srv, req, n, NULL, &reply) != PLOG_OK)
        abort();
    free(req);
    if (reply != NULL) {
        plog_rpc_reply rp;
        if (plog_rpc_reply_decode(nng_msg_body(reply), nng_msg_len(reply), &rp) != PLOG_OK)
            abort(); /* the server wrote a reply it cannot read back */
        nng_msg_free(reply);
    } else if (mode != 0 && seq == 0) {
        abort(); /* only a resend may go unanswered (or a raw envelope that is one) */
    }
    return 0;
}
