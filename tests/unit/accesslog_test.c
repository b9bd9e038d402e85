/*
 * accesslog_test.c - the access log's JSON (escaping, invalid UTF-8, bounds, the line's
 * fields), its sampling and errors-only choice, and the rings through the writer thread
 * to a file (every line written once, a full ring drops and counts).
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "accesslog.h"
#include "tap.h"

static const char *esc(const char *s, size_t len, size_t max)
{
    static char out[65536];
    size_t n = 0;
    accesslog_json_str(out, sizeof(out) - 1, &n, s, len, max);
    out[n] = 0;
    return out;
}

#define S(lit) lit, sizeof(lit) - 1

int main(void)
{
    /* escaping */
    is_str(esc(S("/a/b?c=d"), 100), "\"/a/b?c=d\"", "plain text as it is");
    is_str(esc(NULL, 0, 100), "\"-\"", "absent is \"-\"");
    is_str(esc(S(""), 100), "\"-\"", "empty is \"-\"");
    is_str(esc(S("a\"b\\c"), 100), "\"a\\\"b\\\\c\"", "quote and backslash escaped");
    is_str(esc(S("l1\nl2\r\t\b\f"), 100), "\"l1\\nl2\\r\\t\\b\\f\"", "short escapes");
    is_str(esc(S("\x01\x1f\x7f"), 100), "\"\\u0001\\u001f\\u007f\"", "other controls as \\u00XX");
    is_str(esc(S("a\0b"), 100), "\"a\\u0000b\"", "NUL escaped, not an end");
    is_str(esc(S("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"), 100),
           "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"", "valid UTF-8 copied");
    is_str(esc(S("\xff\xc3"), 100), "\"\\ufffd\\ufffd\"", "invalid bytes and a cut sequence");
    is_str(esc(S("\xc0\xaf"), 100), "\"\\ufffd\\ufffd\"", "overlong form refused");
    is_str(esc(S("\xed\xa0\x80"), 100), "\"\\ufffd\\ufffd\\ufffd\"", "surrogate refused");
    is_str(esc(S("\xf4\x90\x80\x80"), 100), "\"\\ufffd\\ufffd\\ufffd\\ufffd\"",
           "past U+10FFFF refused");
    is_str(esc(S("abcdefghij"), 4), "\"abcd...\"", "cut at max, marked");
    is_str(esc(S("ab\xe2\x82\xac"), 4), "\"ab...\"", "cut at a character boundary");
    is_str(esc(S("a\nb"), 2), "\"a...\"", "an escape is never split");
    /* bounded by cap too */
    char small[16];
    size_t n = 0;
    accesslog_json_str(small, sizeof(small), &n, S("0123456789abcdefghij"), 1000);
    ok(n <= sizeof(small) && small[0] == '"' && small[n - 1] == '"' &&
           !memcmp(small + n - 4, "...\"", 4),
       "cap: cut and closed within the buffer (%zu bytes)", n);

    /* a line */
    struct accesslog_entry e = {
        .start_unix_ms = 1764061200123LL, /* 2025-11-25T09:00:00.123Z */
        .duration_ms = 42,
        .method = {S("GET")},
        .path = {S("/x\"\n")},
        .protocol = {S("HTTP/2")},
        .authority = {S("web")},
        .response_code = 503,
        .response_flags = {S("UH")},
        .bytes_received = 10,
        .bytes_sent = 19,
        .direction = {S("outbound")},
        .x_request_id = {S("id-1")},
    };
    char line[ACCESSLOG_LINE_MAX];
    size_t len = accesslog_format(&e, line, sizeof(line));
    line[len] = 0;
    is_str(line,
           "{\"start_time\":\"2025-11-25T09:00:00.123Z\",\"method\":\"GET\",\"path\":\"/x\\\"\\n\","
           "\"protocol\":\"HTTP/2\",\"authority\":\"web\",\"response_code\":503,"
           "\"response_flags\":\"UH\",\"bytes_received\":10,\"bytes_sent\":19,\"duration\":42,"
           "\"upstream_host\":\"-\",\"upstream_cluster\":\"-\",\"downstream_remote_address\":\"-\","
           "\"direction\":\"outbound\",\"source_principal\":\"-\",\"destination_principal\":\"-\","
           "\"x_request_id\":\"id-1\",\"traceparent\":\"-\",\"user_agent\":\"-\"}\n",
           "every field, in order, one line");
    e.grpc = true;
    e.grpc_status = 14;
    len = accesslog_format(&e, line, sizeof(line));
    line[len] = 0;
    ok(strstr(line, ",\"grpc_status\":14}\n") != NULL, "gRPC: grpc_status");
    e.grpc_status = -1;
    len = accesslog_format(&e, line, sizeof(line));
    line[len] = 0;
    ok(strstr(line, ",\"grpc_status\":null}\n") != NULL, "gRPC without a status: null");

    /* the worst line still fits: every string field long and all escapes */
    static char big[100000];
    memset(big, 0x01, sizeof(big));
    struct accesslog_str b = {big, sizeof(big)};
    struct accesslog_entry w = {.method = b,
                                .path = b,
                                .protocol = b,
                                .authority = b,
                                .response_flags = b,
                                .upstream_host = b,
                                .upstream_cluster = b,
                                .downstream_remote_address = b,
                                .direction = b,
                                .source_principal = b,
                                .destination_principal = b,
                                .x_request_id = b,
                                .traceparent = b,
                                .user_agent = b,
                                .grpc = true,
                                .grpc_status = -1,
                                .response_code = -1,
                                .bytes_sent = UINT64_MAX / 2,
                                .duration_ms = UINT64_MAX / 2};
    len = accesslog_format(&w, line, sizeof(line));
    ok(len <= ACCESSLOG_LINE_MAX && line[len - 1] == '\n' && line[len - 2] == '}',
       "worst case: %zu bytes, whole", len);
    size_t quotes = 0;
    for (size_t i = 0; i < len; i++)
        quotes += line[i] == '"';
    is_int(quotes, 2 * 20 + 2 * 15, "...every name quoted (20) and every string value (15)");

    /* sampling and errors-only */
    char err[256], path[] = "/tmp/accesslog_test.XXXXXX";
    int fd = mkstemp(path);
    close(fd);
    struct accesslog *al = accesslog_open(path, 2, 1.0, false, err, sizeof(err));
    ok(al != NULL, "open %s", path);
    ok(accesslog_wants(al, false, UINT64_MAX) && accesslog_wants(al, true, 0), "sample 1: all");
    accesslog_close(al);
    al = accesslog_open(path, 1, 0.5, true, err, sizeof(err));
    ok(!accesslog_wants(al, false, 0), "errors-only: a success is not logged");
    ok(accesslog_wants(al, true, UINT64_MAX / 4) && !accesslog_wants(al, true, UINT64_MAX / 4 * 3),
       "sample 0.5 of the errors: low draws kept, high ones not");
    accesslog_close(al);
    ok(!accesslog_open("/nonexistent/dir/x.log", 1, 1, false, err, sizeof(err)) &&
           strstr(err, "--access-log /nonexistent/dir/x.log"),
       "a file that cannot be opened names the flag: %s", err);

    /* rings through the writer: 3000 lines from two rings, each once, in ring order */
    truncate(path, 0);
    al = accesslog_open(path, 2, 1.0, false, err, sizeof(err));
    is_int(accesslog_start(al), 0, "writer starts");
    int pushed = 0, dropped = 0;
    for (int i = 0; i < 1500; i++)
        for (int r = 0; r < 2; r++) {
            char l[64];
            int k = snprintf(l, sizeof(l), "{\"r\":%d,\"i\":%d}\n", r, i);
            if (accesslog_push(al, r, l, (size_t)k) == 0)
                pushed++;
            else
                dropped++;
        }
    accesslog_close(al);
    FILE *f = fopen(path, "r");
    int lines = 0, last[2] = {-1, -1}, order_ok = 1;
    char l[128];
    while (f && fgets(l, sizeof(l), f)) {
        int r, i;
        if (sscanf(l, "{\"r\":%d,\"i\":%d}", &r, &i) == 2 && r >= 0 && r < 2) {
            order_ok &= i > last[r];
            last[r] = i;
        }
        lines++;
    }
    if (f)
        fclose(f);
    is_int(lines, pushed, "every pushed line written once");
    is_int(pushed + dropped, 3000, "pushed + dropped = all");
    ok(order_ok, "each ring's lines in order");

    /* a full ring drops and counts (no writer running) */
    al = accesslog_open(path, 1, 1.0, false, err, sizeof(err));
    static char fill[4000];
    memset(fill, 'x', sizeof(fill) - 1);
    fill[sizeof(fill) - 1] = '\n';
    int ok_n = 0, full = 0;
    for (int i = 0; i < 200; i++) {
        int rc = accesslog_push(al, 0, fill, sizeof(fill));
        if (rc == 0)
            ok_n++;
        else if (rc == -ENOSPC)
            full++;
    }
    is_int(ok_n, ACCESSLOG_RING_SIZE / (sizeof(fill) + 4), "the ring holds what fits");
    is_int((int)accesslog_dropped(al), full, "the rest dropped and counted");
    ok(full > 0, "(%d dropped)", full);
    accesslog_close(al); /* drains without a thread */
    unlink(path);
    return tap_done();
}
