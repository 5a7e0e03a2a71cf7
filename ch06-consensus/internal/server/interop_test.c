/* interop_test.c - talking to proglog with tools nobody here wrote: requests built
 * by `protoc --encode` from the chapter's own api/v1/log.proto, sent by `nngcat
 * --req` (nng-utils), replies decoded by `protoc --decode`. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal/err/err.h"
#include "internal/rpc/envelope.h"
#include "internal/server/testserver.h"

struct fixture {
    struct tserver srv;
    char protodir[512];
    char tmp[64];
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    f->srv.extra[0] = "--sync";
    f->srv.extra[1] = "never";
    tserver_start(&f->srv);
    const char *chapter = getenv("PLOG_CHAPTER");
    snprintf(f->protodir, sizeof f->protodir, "%s/api/v1", chapter ? chapter : ".");
    plog_test_tmpdir("interop", f->tmp, sizeof f->tmp);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    tserver_fini(&f->srv);
    plog_test_rmrf(f->tmp);
    free(f);
    return 0;
}

static char *sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* sh runs a shell command (printf-style) and returns its output; fails the test
 * when it exits non-zero. */
static char *sh(const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    char *out = NULL;
    int rc = plog_test_sh(cmd, 15000, &out);
    if (rc != 0)
        fail_msg("`%s` exited %d: %s", cmd, rc, out);
    return out;
}

static char *slurp(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    char *buf = malloc(1 << 16);
    *len = fread(buf, 1, 1 << 16, fp);
    fclose(fp);
    return buf;
}

/* octal renders bytes as a protobuf text-format string body ("\012\017..."). */
static void octal(const uint8_t *p, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        out += sprintf(out, "\\%03o", p[i]);
    *out = '\0';
}

/* rpc encodes `body_text` as message type body_type, wraps it in a Request for
 * method with protoc, sends it with nngcat and returns protoc's decoding of the
 * Reply; the raw reply stays in <tmp>/reply.bin. */
static char *rpc(struct fixture *f, const char *method, const char *body_type, const char *body_text)
{
    char *out = sh("printf '%%s' '%s' | protoc --proto_path=%s --encode=log.v1.%s log.proto "
                   "> %s/body.bin",
                   body_text, f->protodir, body_type, f->tmp);
    free(out);
    char path[128];
    snprintf(path, sizeof path, "%s/body.bin", f->tmp);
    size_t n;
    char *body = slurp(path, &n);
    char *esc = malloc(4 * n + 1);
    octal((const uint8_t *)body, n, esc);
    free(body);
    snprintf(path, sizeof path, "%s/request.txt", f->tmp);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fprintf(fp, "method: \"%s\"\nbody: \"%s\"\n", method, esc);
    fclose(fp);
    free(esc);
    out = sh("protoc --proto_path=%s --encode=log.v1.Request log.proto < %s/request.txt "
             "> %s/request.bin && nngcat --req --dial %s --raw --file %s/request.bin "
             "--recv-timeout 5 > %s/reply.bin",
             f->protodir, f->tmp, f->tmp, f->srv.addr, f->tmp, f->tmp);
    free(out);
    return sh("protoc --proto_path=%s --decode=log.v1.Reply log.proto < %s/reply.bin", f->protodir, f->tmp);
}

static void test_interop_protoc_and_nngcat_produce_and_consume(void **state)
{
    struct fixture *f = *state;
    char *out = rpc(f, "/log.v1.Log/Produce", "ProduceRequest", "record { value: \"first\" }");
    assert_null(strstr(out, "code:")); /* proto3 omits OK, the default */
    free(out);
    out = rpc(f, "/log.v1.Log/Produce", "ProduceRequest", "record { value: \"hello-interop\" }");
    assert_non_null(strstr(out, "body: \"\\010\\001\"")); /* ProduceResponse{offset: 1} */
    free(out);

    out = rpc(f, "/log.v1.Log/Consume", "ConsumeRequest", "offset: 1");
    assert_non_null(strstr(out, "hello-interop"));
    free(out);
    /* Decode the body too: cut it out of the raw reply, hand it to protoc. */
    char path[128];
    snprintf(path, sizeof path, "%s/reply.bin", f->tmp);
    size_t n;
    char *raw = slurp(path, &n);
    plog_rpc_reply rp;
    assert_int_equal(plog_rpc_reply_decode(raw, n, &rp), PLOG_OK);
    snprintf(path, sizeof path, "%s/response.bin", f->tmp);
    FILE *fp = fopen(path, "wb");
    fwrite(rp.body, 1, rp.body_len, fp);
    fclose(fp);
    free(raw);
    out = sh("protoc --proto_path=%s --decode=log.v1.ConsumeResponse log.proto < %s", f->protodir, path);
    assert_non_null(strstr(out, "record {"));
    assert_non_null(strstr(out, "value: \"hello-interop\""));
    assert_non_null(strstr(out, "offset: 1"));
    free(out);
}

static void test_interop_errors_decode_as_grpc_code_names(void **state)
{
    struct fixture *f = *state;
    char *out = rpc(f, "/log.v1.Log/Consume", "ConsumeRequest", "offset: 42");
    assert_non_null(strstr(out, "code: OUT_OF_RANGE"));
    assert_non_null(strstr(out, "message: \"offset out of range: 42\""));
    free(out);
    out = rpc(f, "/log.v1.Log/Nope", "ConsumeRequest", "offset: 0");
    assert_non_null(strstr(out, "code: UNIMPLEMENTED"));
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_interop_protoc_and_nngcat_produce_and_consume, setup, teardown),
        cmocka_unit_test_setup_teardown(test_interop_errors_decode_as_grpc_code_names, setup, teardown),
    };
    return cmocka_run_group_tests_name("interop", tests, NULL, NULL);
}
